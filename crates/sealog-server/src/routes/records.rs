//! `GET /v1/records/{id}` and `GET /v1/records?…`: canonical records within the caller's reach,
//! through the history or the current view; and the paging shared with the quarantine log.
//!
//! *Invariant*: a tenant- or subject-scoped key's queries always carry its scope as equality
//! filters, and every record is checked against the scope again before it leaves; a record
//! out of reach answers exactly like one that does not exist.

use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sealog_ledger::{ENVELOPE_AXES, LIMIT_MAX, Ledger, Query, Sight, View};
use sealog_model::RecordId;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::access::{Access, DATA_SUBJECTS_MAX, unparsed_query};
use crate::auth::{Action, Principal};
use crate::context::{Ctx, blocking, json_bytes};
use crate::error::ApiError;
use crate::formats::{
    AS_OF, AsOf, CURSOR, Count, Cursor, FILTER, Filter, Limit, RECORD_FORMS, RECORD_REF,
    RecordForm, RecordRef, TIME_BOUND, TimeBound, VIEWS, ViewName,
};
use crate::params::{Params, parse_u64};

/// Whether a stored record is within the principal's reach (its tenant, and for the subject
/// role the data subject its pack derives).
pub(crate) fn visible(principal: &Principal, ledger: &Ledger, record: &[u8]) -> bool {
    principal.sees_record(ledger, record)
}

fn no_record(id: &str) -> ApiError {
    ApiError::not_found(format!("no record {}", crate::access::clip(id)))
}

/// Resolves `{id}` (a seq or a record id) to a seq.
fn parse_id(id: &str) -> Result<Result<u64, RecordId>, ApiError> {
    RECORD_REF.check_as("BAD_RECORD_ID", "id", id)?;
    match RecordId::parse(id) {
        Some(rid) => Ok(Err(rid)),
        // Twenty digits past u64::MAX have the form of a seq that no log reaches.
        None => parse_u64(id).map(Ok).ok_or_else(|| no_record(id)),
    }
}

/// Whether the caller asked for records as stored (`form=sealed`: the bytes proofs cover,
/// personal values sealed) rather than opened as its role may see them (`form=opened`, the
/// default). The stored form is for those who may see personal data anyway (auditors,
/// admins): it names data subjects by pseudonym, which a reader is not shown.
async fn stored_form(
    ctx: &Ctx,
    p: &Params,
    action: Action,
    resource: &Value,
) -> Result<bool, ApiError> {
    let form = p.get("form").unwrap_or("opened");
    crate::formats::check_one_of("form", form, &RECORD_FORMS)?;
    if form == "opened" {
        return Ok(false);
    }
    if ctx.principal.sight(&ctx.state.ledger) == Sight::All {
        return Ok(true);
    }
    let err = ApiError::forbidden(
        "records as stored (form=sealed) are for keys that may see personal data: auditor or admin",
    );
    ctx.record(Access::of(action, resource.clone(), Err(&err)))
        .await?;
    Err(err)
}

#[utoipa::path(
    get, path = "/v1/records/{id}", tag = "records",
    params(
        ("id" = inline(RecordRef), Path, description = "seq (digits) or record_id (`sha256:` + 64 lowercase hex)"),
        ("form" = inline(Option<RecordForm>), Query),
    ),
    responses(
        (status = 200, description = "The record: RFC 8785 JSON of the event plus seq, record_id, ingested_at", body = Object),
        (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody), (status = 404, description = "No such record within this key's reach", body = crate::openapi::ErrorBody),
        (status = 410, description = "`PRUNED_BY_RETENTION`: the record's body was pruned; `pruned` names its seq and record id, whose stub keeps its proofs. Only to a key of every tenant bound to no data subject: the stub does not say whose the record was, so any other key gets the 404 of a record that does not exist", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_record(
    ctx: Ctx,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let resource = json!({"record": crate::access::clip(&id)});
    ctx.authorize(Action::GetRecord, &resource).await?;
    let p = Params::parse(raw.as_deref(), &["form"])?;
    let sealed = stored_form(&ctx, &p, Action::GetRecord, &resource).await?;
    let result = read_one(&ctx, &id, sealed).await;
    let mut access = Access::of(
        Action::GetRecord,
        resource,
        result.as_ref().map(|_| Some(1)),
    );
    if let Ok((_, Some(subject))) = &result {
        access.data_subjects.push(subject.clone());
    }
    ctx.record(access).await?;
    Ok(json_bytes(StatusCode::OK, result?.0))
}

/// The record as the caller may see it, and the pseudonym of its data subject.
async fn read_one(
    ctx: &Ctx,
    id: &str,
    sealed: bool,
) -> Result<(Vec<u8>, Option<String>), ApiError> {
    let which = parse_id(id)?;
    let ledger = ctx.state.ledger.clone();
    let principal = ctx.principal.clone();
    let started = std::time::Instant::now();
    let found = blocking(move || {
        let stored = match which {
            Ok(seq) => ledger.get(seq),
            Err(rid) => ledger.get_by_id(&rid),
        };
        let record = unless_pruned_out_of_reach(stored, &principal)?;
        let sight = principal.sight(&ledger);
        Ok(record.filter(|r| visible(&principal, &ledger, r)).map(|r| {
            let subject = ledger.data_subject_of(&r);
            if sealed {
                (r, subject)
            } else {
                (ledger.reveal(&r, &sight).into_owned(), subject)
            }
        }))
    })
    .await?;
    metrics::histogram!("sealog_query_seconds", "endpoint" => "records.get")
        .record(started.elapsed().as_secs_f64());
    found.ok_or_else(|| no_record(id))
}

/// A stored record as read, with a pruned one taken for absent by a key that does not reach
/// every record: its stub keeps no tenant or data subject, so whether it was in the key's
/// reach is unknown, and a 410 would tell the key that a record it may never have reached
/// existed, and its ids.
fn unless_pruned_out_of_reach(
    stored: Result<Option<Vec<u8>>, sealog_ledger::Error>,
    principal: &Principal,
) -> Result<Option<Vec<u8>>, sealog_ledger::Error> {
    match stored {
        Err(sealog_ledger::Error::Pruned(_)) if !principal.sees_every_record() => Ok(None),
        other => other,
    }
}

/// The parameters `GET /v1/records` takes: each envelope axis by its own name, `axis.NAME`
/// for any axis, and the windows, view and paging.
fn query_params() -> &'static [&'static str] {
    static PARAMS: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    PARAMS.get_or_init(|| {
        let mut p = ENVELOPE_AXES.to_vec();
        p.extend([
            "axis.",
            "from",
            "to",
            "ingested_from",
            "ingested_to",
            "view",
            "as_of",
            "valid_at",
            "cursor",
            "limit",
            "after",
            "form",
        ]);
        p
    })
}

#[utoipa::path(
    get, path = "/v1/records", tag = "records",
    params(
        ("scope" = inline(Option<Filter>), Query), ("tenant" = inline(Option<Filter>), Query), ("subject" = inline(Option<Filter>), Query),
        ("type" = inline(Option<Filter>), Query), ("source" = inline(Option<Filter>), Query), ("actor" = inline(Option<Filter>), Query, description = "actor id"),
        ("id" = inline(Option<Filter>), Query, description = "the producer's event id"),
        ("form" = inline(Option<RecordForm>), Query),
        ("data_subject" = inline(Option<Filter>), Query, description = "whose personal data the record is, as its pack declares it (a customer id)"),
        ("from" = inline(Option<TimeBound>), Query, description = "event time at or after"),
        ("to" = inline(Option<TimeBound>), Query, description = "event time before"),
        ("ingested_from" = inline(Option<TimeBound>), Query, description = "ingest time at or after"),
        ("ingested_to" = inline(Option<TimeBound>), Query, description = "ingest time before"),
        ("view" = inline(Option<ViewName>), Query),
        ("as_of" = inline(Option<AsOf>), Query, description = "what the log knew: the log as it was at an ingest time or a tree size (a size past the log's end is refused)"),
        ("valid_at" = inline(Option<TimeBound>), Query, description = "what had happened: the world as the events' own times describe it at this event time; history: records whose time is at or before it; current: chain heads whose chain starts at or before it (a correction counts from its target's time)"),
        ("cursor" = inline(Option<Cursor>), Query, description = "`next_cursor` of the previous page of the same query (not with `after`): every page reads the log at the size the first page read, so records appended meanwhile join no later page"),
        ("after" = inline(Option<Count>), Query, description = "only records after this seq (not with `cursor`)"),
        ("limit" = inline(Option<Limit>), Query, description = "records per page (default 100)"),
    ),
    responses(
        (status = 200, description = "Matching records in seq order", body = crate::openapi::RecordsPage),
        (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody),
        (status = 409, description = "`AS_OF_PAST_END`: `as_of` names a tree size the log has not reached", body = crate::openapi::ErrorBody),
        (status = 422, body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn query_records(ctx: Ctx, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let parsed = Params::parse(raw.as_deref(), query_params());
    let resource = match &parsed {
        Ok(p) => json!({"filter": echoed(&ctx.state.ledger, p)}),
        Err(_) => json!({"query": unparsed_query(&ctx.state.ledger, raw.as_deref())}),
    };
    ctx.authorize(Action::QueryRecords, &resource).await?;
    let result = match parsed {
        Ok(p) => match stored_form(&ctx, &p, Action::QueryRecords, &resource).await {
            Ok(sealed) => run_query(&ctx, &p, sealed).await,
            Err(e) => return Err(e),
        },
        Err(e) => Err(e),
    };
    let mut access = Access::of(
        Action::QueryRecords,
        resource,
        result.as_ref().map(|r| Some(r.1)),
    );
    if let Ok((_, _, subjects)) = &result {
        access.data_subjects.clone_from(subjects);
    }
    ctx.record(access).await?;
    Ok(json_bytes(StatusCode::OK, result?.0))
}

/// The query as its access record states it: personal filters, and filters on axes no pack
/// declares, by their keyed hash, so the record names no person.
pub(crate) fn echoed(ledger: &Ledger, p: &Params) -> serde_json::Value {
    let mut v = p.to_json();
    if let Some(m) = v.as_object_mut() {
        for (name, value) in m.iter_mut() {
            let Some(text) = value.as_str() else { continue };
            match name.strip_prefix("axis.") {
                Some(axis) => *value = ledger.echoed_value(axis, text).into(),
                None if ledger.is_personal_axis(name) => {
                    *value = ledger.filter_value(name, text).into();
                }
                None => {}
            }
        }
    }
    v
}

pub(crate) fn time_param(p: &Params, name: &str) -> Result<Option<i64>, ApiError> {
    p.get(name)
        .map(|t| {
            TIME_BOUND.check(name, t)?;
            sealog_model::time::parse_bound(t)
                .map_err(|m| ApiError::bad_request("BAD_PARAMETER", format!("{name}: {m}")))
        })
        .transpose()
}

/// Returns the response body and the number of records in it.
async fn run_query(
    ctx: &Ctx,
    p: &Params,
    sealed: bool,
) -> Result<(Vec<u8>, usize, Vec<String>), ApiError> {
    let names = ctx.state.ledger.axis_names();
    let known = |name: &str| names.iter().any(|a| a == name);
    let mut equals: Vec<(String, String)> = Vec::new();
    for (k, v) in p.iter() {
        let axis = match k.strip_prefix("axis.") {
            Some(name) if known(name) => name,
            Some(name) => {
                return Err(ApiError::bad_request(
                    "UNKNOWN_AXIS",
                    format!(
                        "unknown axis {:?}; indexed axes are {}",
                        crate::access::clip(name),
                        names.join(", ")
                    ),
                ));
            }
            None if ENVELOPE_AXES.contains(&k) => k,
            None => continue,
        };
        FILTER.check(k, v)?;
        equals.push((axis.to_string(), v.to_string()));
    }
    let view = p.get("view").unwrap_or("history");
    crate::formats::check_one_of("view", view, &VIEWS)?;
    let view = if view == "current" {
        View::Current
    } else {
        View::History
    };
    let q = Query {
        equals,
        event_from: time_param(p, "from")?,
        event_to: time_param(p, "to")?,
        ingest_from: time_param(p, "ingested_from")?,
        ingest_to: time_param(p, "ingested_to")?,
        valid_at: time_param(p, "valid_at")?,
        view,
        ..Query::default()
    };
    run_paged(ctx, p, q, Log::Canonical(view), sealed, "records.query").await
}

/// Which log a paged query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Log {
    Canonical(View),
    Quarantine,
}

impl Log {
    /// Part of the cursor's binding: a cursor of one log or view is refused by another.
    fn tag(self) -> u8 {
        match self {
            Log::Canonical(View::History) => 0,
            Log::Canonical(View::Current) => 1,
            Log::Quarantine => 2,
        }
    }
}

/// A tree size from `as_of`: digits are a size, anything else a time (RFC 3339 or a date)
/// whose size is the canonical log's at that time. (A size the log has not reached is the
/// ledger's to refuse, as `AS_OF_PAST_END`.)
pub(crate) fn as_of_size(ledger: &Ledger, text: &str) -> Result<u64, ApiError> {
    AS_OF.check("as_of", text)?;
    match parse_u64(text) {
        Some(size) => Ok(size),
        None => {
            let t = sealog_model::time::parse_bound(text).map_err(|m| {
                ApiError::bad_request(
                    "BAD_PARAMETER",
                    format!("as_of: {m}; give an RFC 3339 time or a tree size (digits)"),
                )
            })?;
            Ok(ledger.size_at(t)?)
        }
    }
}

/// Runs a query page by page: adds the principal's forced scope, applies `limit`, `as_of`
/// (canonical log only), `cursor`/`after`, re-checks every record's reach, and answers
/// `{"records":[…],"next_cursor":…}` with the number of records in it.
pub(crate) async fn run_paged(
    ctx: &Ctx,
    p: &Params,
    mut q: Query,
    log: Log,
    sealed: bool,
    endpoint: &'static str,
) -> Result<(Vec<u8>, usize, Vec<String>), ApiError> {
    for f in ctx.principal.forced_filters() {
        if !q.equals.contains(&f) {
            q.equals.push(f);
        }
    }
    q.equals.sort();
    q.limit = match p.u64("limit")? {
        None => ctx.state.limits.query_limit_default,
        Some(n) if (1..=LIMIT_MAX as u64).contains(&n) => n as usize,
        Some(_) => {
            return Err(ApiError::bad_request(
                "BAD_PARAMETER",
                format!("limit must be between 1 and {LIMIT_MAX}"),
            ));
        }
    };
    let ledger = ctx.state.ledger.clone();
    let as_of = p.get("as_of").map(str::to_string);
    let cursor = p.get("cursor").map(str::to_string);
    let after = p.u64("after")?;
    if after.is_some() && cursor.is_some() {
        return Err(ApiError::bad_request(
            "BAD_PARAMETER",
            "give either cursor or after, not both",
        ));
    }
    let principal = ctx.principal.clone();
    let started = std::time::Instant::now();
    let out = blocking(move || {
        // Every page of one answer reads the canonical log at the size its first page read:
        // a correction appended while a client pages could otherwise show its subject twice
        // in the current view, and `as_of` given as a time is not read again.
        let (resume, size) = match &cursor {
            Some(c) => {
                let (after, size) = decode_cursor(c)?;
                (Some(after), size)
            }
            None => {
                let given = as_of
                    .as_deref()
                    .map(|s| as_of_size(&ledger, s))
                    .transpose()?;
                let size = match log {
                    Log::Canonical(_) => Some(given.unwrap_or_else(|| ledger.len())),
                    Log::Quarantine => given,
                };
                (after, size)
            }
        };
        q.as_of_size = size;
        let digest = query_digest(&q, log, as_of.as_deref());
        if let Some(c) = &cursor {
            check_cursor(c, &digest)?;
        }
        q.after = resume;
        let page = match log {
            Log::Canonical(_) => ledger.query(&q)?,
            Log::Quarantine => ledger.quarantine_query(&q)?,
        };
        let mut body =
            Vec::with_capacity(page.records.iter().map(|r| r.1.len() + 1).sum::<usize>() + 64);
        body.extend_from_slice(b"{\"records\":[");
        let mut n = 0;
        let mut subjects = std::collections::BTreeSet::new();
        let sight = principal.sight(&ledger);
        for (seq, bytes) in &page.records {
            if !visible(&principal, &ledger, bytes) {
                tracing::error!(
                    seq,
                    "a query candidate outside the caller's scope was dropped"
                );
                continue;
            }
            if n > 0 {
                body.push(b',');
            }
            if matches!(log, Log::Canonical(_)) && subjects.len() < DATA_SUBJECTS_MAX {
                subjects.extend(ledger.data_subject_of(bytes));
            }
            if sealed {
                body.extend_from_slice(bytes);
            } else {
                body.extend_from_slice(&ledger.reveal(bytes, &sight));
            }
            n += 1;
        }
        body.extend_from_slice(b"],\"next_cursor\":");
        match page.next_after {
            Some(a) => {
                body.push(b'"');
                body.extend_from_slice(encode_cursor(a, q.as_of_size, &digest).as_bytes());
                body.push(b'"');
            }
            None => body.extend_from_slice(b"null"),
        }
        body.push(b'}');
        Ok((body, n, subjects.into_iter().collect()))
    })
    .await;
    metrics::histogram!("sealog_query_seconds", "endpoint" => endpoint)
        .record(started.elapsed().as_secs_f64());
    out
}

const CURSOR_VERSION: u8 = 3;
/// A cursor's size for a read of no size (the quarantine log's).
const NO_SIZE: u64 = u64::MAX;

/// Binds a cursor to the query it continues (scope filters included, `as_of` as given, and
/// the size its pages read), so a cursor from one query cannot be replayed against another.
fn query_digest(q: &Query, log: Log, as_of: Option<&str>) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update([log.tag()]);
    for (a, v) in &q.equals {
        h.update(a.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    for t in [q.event_from, q.event_to, q.ingest_from, q.ingest_to] {
        h.update(t.map_or([0xff; 8], i64::to_be_bytes));
    }
    h.update(q.as_of_size.unwrap_or(NO_SIZE).to_be_bytes());
    h.update(q.valid_at.map_or([0xff; 8], i64::to_be_bytes));
    match as_of {
        Some(text) => {
            h.update([1]);
            h.update(text.as_bytes());
        }
        None => h.update([0]),
    }
    let d = h.finalize();
    d[..8].try_into().expect("8 bytes")
}

/// version, the seq the next page starts after, the size every page reads, the digest.
const CURSOR_LEN: usize = 1 + 8 + 8 + 8;

fn encode_cursor(after: u64, size: Option<u64>, digest: &[u8; 8]) -> String {
    let mut b = Vec::with_capacity(CURSOR_LEN);
    b.push(CURSOR_VERSION);
    b.extend_from_slice(&after.to_be_bytes());
    b.extend_from_slice(&size.unwrap_or(NO_SIZE).to_be_bytes());
    b.extend_from_slice(digest);
    URL_SAFE_NO_PAD.encode(b)
}

fn bad_cursor(m: &str) -> ApiError {
    ApiError::bad_request("BAD_CURSOR", m.to_string())
}

fn cursor_bytes(text: &str) -> Result<Vec<u8>, ApiError> {
    let bad = || bad_cursor("the cursor is not one this server issued");
    if !CURSOR.matches(text) {
        return Err(bad());
    }
    let b = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    if b.len() != CURSOR_LEN || b[0] != CURSOR_VERSION {
        return Err(bad());
    }
    Ok(b)
}

/// The seq a cursor's page starts after, and the size its pages read.
fn decode_cursor(text: &str) -> Result<(u64, Option<u64>), ApiError> {
    let b = cursor_bytes(text)?;
    let after = u64::from_be_bytes(b[1..9].try_into().expect("8 bytes"));
    let size = u64::from_be_bytes(b[9..17].try_into().expect("8 bytes"));
    Ok((after, (size != NO_SIZE).then_some(size)))
}

fn check_cursor(text: &str, digest: &[u8; 8]) -> Result<(), ApiError> {
    if &cursor_bytes(text)?[17..] != digest {
        return Err(bad_cursor("the cursor belongs to a different query"));
    }
    Ok(())
}
