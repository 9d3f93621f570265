//! `sealog get` and `sealog query`.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use sealog_ledger::ReasonCode;
use sealog_ledger::{Ledger, Page, Query, Sight, StateQuery, View};
use sealog_model::RecordId;
use serde_json::json;

use crate::access::{Outcome, Reader};

pub(crate) fn get(reader: &Reader, id: &str, sealed: bool) -> anyhow::Result<ExitCode> {
    let ledger = &reader.ledger;
    let read = match (id.parse::<u64>(), RecordId::parse(id)) {
        (Ok(seq), _) => ledger.get(seq),
        (_, Some(rid)) => ledger.get_by_id(&rid),
        _ => bail!("{id:?} is neither a seq nor a record id (sha256: and 64 lowercase hex digits)"),
    };
    // A record retention pruned is gone like an absent one, and says so.
    let mut pruned = None;
    let found = match read {
        Err(sealog_ledger::Error::Pruned(stub)) => {
            pruned = Some(stub);
            None
        }
        other => other?,
    };
    let outcome = match &found {
        Some(_) => Outcome::Allowed(1),
        None => Outcome::NotFound,
    };
    reader.record("records.get", json!({ "id": id }), &outcome)?;
    if let Some(stub) = pruned {
        tell!(
            "sealog: record {} (sha256:{}) was pruned by retention: its stub keeps its leaf hash, so its proofs still verify",
            stub.seq,
            hex::encode(stub.id)
        );
        return Ok(ExitCode::from(1));
    }
    match found {
        Some(bytes) => {
            let mut out = io::stdout().lock();
            out.write_all(&shown(ledger, &bytes, sealed))?;
            out.write_all(b"\n")?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            tell!("sealog: no record {id}");
            Ok(ExitCode::from(1))
        }
    }
}

#[derive(clap::Args)]
pub(crate) struct QueryArgs {
    #[arg(long)]
    scope: Option<String>,
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long)]
    subject: Option<String>,
    #[arg(long = "type")]
    event_type: Option<String>,
    #[arg(long)]
    source: Option<String>,
    /// Actor id.
    #[arg(long)]
    actor: Option<String>,
    /// Event id (the producer's `id`).
    #[arg(long)]
    id: Option<String>,
    /// NAME=VALUE on an indexed axis; repeatable.
    #[arg(long = "axis", value_name = "NAME=VALUE")]
    axes: Vec<String>,
    /// Event time at or after (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    from: Option<String>,
    /// Event time before.
    #[arg(long)]
    to: Option<String>,
    /// Ingest time at or after.
    #[arg(long)]
    ingested_from: Option<String>,
    /// Ingest time before.
    #[arg(long)]
    ingested_to: Option<String>,
    /// What the log knew: the log as it was at an ingest time (RFC 3339) or a tree size (a
    /// number).
    #[arg(long)]
    as_of: Option<String>,
    /// What had happened: records whose event time is at or before this time (RFC 3339 or
    /// YYYY-MM-DD); with `--view current`, the chain heads whose chain starts by then (a
    /// correction counts from its target's time).
    #[arg(long)]
    valid_at: Option<String>,
    /// Continue after this seq (the cursor printed for the previous page).
    #[arg(long)]
    after: Option<u64>,
    /// Client mode: the cursor printed for the previous page.
    #[arg(long)]
    cursor: Option<String>,
    /// `history`: every record; `current`: per subject, only the head of its supersedes chain.
    #[arg(long, value_enum, default_value_t = ViewArg::History)]
    view: ViewArg,
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// Print records exactly as stored (personal values sealed): the bytes their proofs cover.
    #[arg(long)]
    sealed: bool,
    #[command(flatten)]
    pub(crate) remote: crate::client::Remote,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ViewArg {
    History,
    Current,
}

impl From<ViewArg> for View {
    fn from(v: ViewArg) -> View {
        match v {
            ViewArg::History => View::History,
            ViewArg::Current => View::Current,
        }
    }
}

/// `--axis NAME=VALUE` arguments as (axis, value) pairs, each axis one the ledger indexes.
pub(crate) fn axis_pairs(
    ledger: &Ledger,
    axes: &[String],
) -> anyhow::Result<Vec<(String, String)>> {
    let known = ledger.axis_names();
    axes.iter()
        .map(|pair| {
            let (name, value) = pair
                .split_once('=')
                .with_context(|| format!("--axis {pair:?}: expected NAME=VALUE"))?;
            if !known.iter().any(|k| k == name) {
                bail!(
                    "--axis {name:?}: unknown axis; indexed axes are {}",
                    known.join(", ")
                );
            }
            Ok((name.to_string(), value.to_string()))
        })
        .collect()
}

/// The (axis, value) equalities of the filters that were given.
pub(crate) fn given(filters: &[(&str, &Option<String>)]) -> Vec<(String, String)> {
    filters
        .iter()
        .filter_map(|(axis, v)| Some((axis.to_string(), (*v).clone()?)))
        .collect()
}

pub(crate) fn time_arg(name: &str, v: &Option<String>) -> anyhow::Result<Option<i64>> {
    v.as_deref()
        .map(|t| {
            sealog_model::time::parse_bound(t).map_err(|m| anyhow::anyhow!("--{name} {t:?}: {m}"))
        })
        .transpose()
}

impl QueryArgs {
    /// The filters as `GET /v1/records` parameters, for client mode.
    pub(crate) fn to_params(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        for (name, v) in [
            ("scope", &self.scope),
            ("tenant", &self.tenant),
            ("subject", &self.subject),
            ("type", &self.event_type),
            ("source", &self.source),
            ("actor", &self.actor),
            ("id", &self.id),
            ("from", &self.from),
            ("to", &self.to),
            ("ingested_from", &self.ingested_from),
            ("ingested_to", &self.ingested_to),
            ("as_of", &self.as_of),
            ("valid_at", &self.valid_at),
            ("cursor", &self.cursor),
        ] {
            if let Some(v) = v {
                p.push((name.to_string(), v.clone()));
            }
        }
        for pair in &self.axes {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            p.push((format!("axis.{name}"), value.to_string()));
        }
        if let Some(a) = self.after {
            p.push(("after".into(), a.to_string()));
        }
        if self.view == ViewArg::Current {
            p.push(("view".into(), "current".into()));
        }
        p.push(("limit".into(), self.limit.to_string()));
        if self.sealed {
            p.push(("form".into(), "sealed".into()));
        }
        p
    }
}

pub(crate) fn query(reader: &Reader, a: &QueryArgs) -> anyhow::Result<ExitCode> {
    let ledger = &reader.ledger;
    if a.cursor.is_some() {
        bail!("--cursor continues a query against a server (--url); here use --after");
    }
    let mut equals = given(&[
        ("scope", &a.scope),
        ("tenant", &a.tenant),
        ("subject", &a.subject),
        ("type", &a.event_type),
        ("source", &a.source),
        ("actor", &a.actor),
        ("id", &a.id),
    ]);
    equals.extend(axis_pairs(ledger, &a.axes)?);
    let as_of_size = as_of_size(ledger, a.as_of.as_deref())?;
    let view = a.view.into();
    let q = Query {
        equals,
        event_from: time_arg("from", &a.from)?,
        event_to: time_arg("to", &a.to)?,
        ingest_from: time_arg("ingested-from", &a.ingested_from)?,
        ingest_to: time_arg("ingested-to", &a.ingested_to)?,
        after: a.after,
        as_of_size,
        valid_at: time_arg("valid-at", &a.valid_at)?,
        view,
        limit: a.limit,
    };
    let page = ledger.query(&q)?;
    reader.record(
        "records.query",
        json!({ "filter": filter_json(ledger, &a.to_params()) }),
        &Outcome::Allowed(page.records.len()),
    )?;
    print_page(ledger, &page, a.sealed)
}

/// The filters a read was given, as its access record states them: a personal filter by its
/// keyed hash, so the record names no person.
fn filter_json(ledger: &Ledger, params: &[(String, String)]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (k, v) in params {
        let axis = k.strip_prefix("axis.").unwrap_or(k);
        m.insert(k.clone(), json!(ledger.filter_value(axis, v)));
    }
    serde_json::Value::Object(m)
}

pub(crate) fn as_of_size(ledger: &Ledger, as_of: Option<&str>) -> anyhow::Result<Option<u64>> {
    Ok(match as_of {
        None => None,
        // Digits alone are a size, as over HTTP: `+5` is no size.
        Some(s) => match s.parse::<u64>() {
            Ok(size) if s.bytes().all(|b| b.is_ascii_digit()) => Some(size),
            _ => Some(ledger.size_at(time_arg("as-of", &Some(s.to_string()))?.expect("present"))?),
        },
    })
}

/// A record as an admin reads it (the local CLI acts as admin): personal values opened, or,
/// `sealed`, exactly as stored.
fn shown<'a>(ledger: &Ledger, bytes: &'a [u8], sealed: bool) -> std::borrow::Cow<'a, [u8]> {
    if sealed {
        std::borrow::Cow::Borrowed(bytes)
    } else {
        ledger.reveal(bytes, &Sight::All)
    }
}

fn print_page(ledger: &Ledger, page: &Page, sealed: bool) -> anyhow::Result<ExitCode> {
    let mut out = io::stdout().lock();
    for (_, bytes) in &page.records {
        out.write_all(&shown(ledger, bytes, sealed))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    if let Some(after) = page.next_after {
        tell!("sealog: more records: continue with --after {after}");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub(crate) struct QuarantineArgs {
    /// A reason code: INCOMPLETE_PROVENANCE, SCHEMA_VIOLATION, UNKNOWN_EVENT_TYPE,
    /// FORBIDDEN_FIELD, MISSING_SUPERSEDES_LINK, INVALID_SUPERSEDES_LINK, STALE_SUPERSEDES_LINK.
    #[arg(long)]
    reason: Option<String>,
    /// Quarantined at or after (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    from: Option<String>,
    /// Quarantined before.
    #[arg(long)]
    to: Option<String>,
    /// The quarantined event's id.
    #[arg(long)]
    id: Option<String>,
    #[arg(long)]
    subject: Option<String>,
    #[arg(long)]
    tenant: Option<String>,
    /// The quarantined event's type.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Continue after this seq of the quarantine log.
    #[arg(long)]
    after: Option<u64>,
    /// Client mode: the cursor printed for the previous page.
    #[arg(long)]
    cursor: Option<String>,
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    #[command(flatten)]
    pub(crate) remote: crate::client::Remote,
}

impl QuarantineArgs {
    /// The filters as `GET /v1/quarantine` parameters, for client mode.
    pub(crate) fn to_params(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = [
            ("reason", &self.reason),
            ("from", &self.from),
            ("to", &self.to),
            ("id", &self.id),
            ("subject", &self.subject),
            ("tenant", &self.tenant),
            ("type", &self.event_type),
            ("cursor", &self.cursor),
        ]
        .into_iter()
        .filter_map(|(name, v)| Some((name.to_string(), v.clone()?)))
        .collect();
        if let Some(a) = self.after {
            p.push(("after".into(), a.to_string()));
        }
        p.push(("limit".into(), self.limit.to_string()));
        p
    }
}

pub(crate) fn quarantine(reader: &Reader, a: &QuarantineArgs) -> anyhow::Result<ExitCode> {
    let ledger = &reader.ledger;
    if a.cursor.is_some() {
        bail!("--cursor continues a query against a server (--url); here use --after");
    }
    if let Some(r) = &a.reason
        && ReasonCode::parse(r).is_none()
    {
        let codes: Vec<&str> = ReasonCode::ALL.iter().map(|c| c.as_str()).collect();
        bail!(
            "--reason {r:?}: unknown reason code; one of {}",
            codes.join(", ")
        );
    }
    let equals = given(&[
        ("reason", &a.reason),
        ("id", &a.id),
        ("subject", &a.subject),
        ("tenant", &a.tenant),
        ("event_type", &a.event_type),
    ]);
    let q = Query {
        equals,
        ingest_from: time_arg("from", &a.from)?,
        ingest_to: time_arg("to", &a.to)?,
        after: a.after,
        limit: a.limit,
        ..Query::default()
    };
    let page = ledger.quarantine_query(&q)?;
    reader.record(
        "quarantine.query",
        json!({ "filter": filter_json(ledger, &a.to_params()) }),
        &Outcome::Allowed(page.records.len()),
    )?;
    print_page(ledger, &page, true)
}

#[derive(clap::Args)]
pub(crate) struct StateArgs {
    #[arg(long)]
    subject: String,
    /// Needed when the subject has records in more than one scope.
    #[arg(long)]
    scope: Option<String>,
    /// An event type of the kind of resource meant (its pack and subject field): needed when
    /// the subject's id names resources of more than one kind, such as an order and a chunk.
    #[arg(long = "type", value_name = "TYPE")]
    of_type: Option<String>,
    #[arg(long)]
    tenant: Option<String>,
    /// What the log knew: the state as the log had it at an ingest time (RFC 3339) or a tree
    /// size (a number).
    #[arg(long)]
    as_of: Option<String>,
    /// What had happened: the state as of this event time (RFC 3339 or YYYY-MM-DD), folding
    /// the records whose chain starts by then.
    #[arg(long)]
    valid_at: Option<String>,
    #[command(flatten)]
    pub(crate) remote: crate::client::Remote,
}

impl StateArgs {
    /// The subject's state route and its parameters, for client mode.
    pub(crate) fn to_request(&self) -> (String, Vec<(String, String)>) {
        let params = [
            ("scope", &self.scope),
            ("type", &self.of_type),
            ("as_of", &self.as_of),
            ("valid_at", &self.valid_at),
        ]
        .into_iter()
        .filter_map(|(name, v)| Some((name.to_string(), v.clone()?)))
        .collect();
        (
            format!(
                "/v1/subjects/{}/state",
                crate::client::path_segment(&self.subject)
            ),
            params,
        )
    }
}

pub(crate) fn state(reader: &Reader, a: &StateArgs) -> anyhow::Result<ExitCode> {
    let ledger = &reader.ledger;
    let state = ledger.state(&StateQuery {
        subject: a.subject.clone(),
        scope: a.scope.clone(),
        of_type: a.of_type.clone(),
        filters: given(&[("tenant", &a.tenant)]),
        as_of_size: as_of_size(ledger, a.as_of.as_deref())?,
        valid_at: time_arg("valid-at", &a.valid_at)?,
        sight: Sight::All,
    })?;
    let absent = state["status"] == "absent";
    let (_, params) = a.to_request();
    reader.record(
        "subjects.state",
        json!({ "subject": a.subject, "filter": filter_json(ledger, &params) }),
        &Outcome::Allowed(1),
    )?;
    say!("{state}")?;
    Ok(if absent {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
