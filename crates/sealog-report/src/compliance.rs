//! The compliance tables: POPIA data-subject requests and breach incidents, each judged on
//! its subject's state rebuilt as of the window's end. Only those records are read (found
//! through the type index); nothing else of the log is.

use serde_json::{Value, json};

use sealog_ledger::{Ledger, Log, Sight, StateError, StateQuery};
use sealog_model::time::{format_micros, parse_rfc3339};

use crate::{ReportError, Section, Window, clock};

const HOUR: i64 = 3_600_000_000_000;
/// POPIA: a request answered within 30 days (customer-comms' `comms.popia_request_overdue`).
const POPIA_DAYS: i64 = 30;
/// A breach notified to the regulator within 72 hours (`comms.breach_not_notified`).
const BREACH_HOURS: i64 = 72;
/// Most subjects a table lists: the newest ones; the section says how many there were.
pub(crate) const ROWS_MAX: usize = 1000;

/// A subject a compliance table lists: where it lives, its state as of the window's end and
/// when its deadline started counting.
struct Listed {
    scope: String,
    subject: String,
    state: Value,
    started: Option<i64>,
}

/// The subjects of `event_type`'s records, newest first: the same id in two tenants or
/// scopes is two subjects, each its own row.
struct Subjects {
    listed: Vec<Listed>,
    /// The records of the type, when they name more than [`ROWS_MAX`] subjects (only the
    /// newest subjects are read).
    of: Option<usize>,
}

/// A subject's place: tenant, scope and id.
type Place = (Option<String>, String, String);

fn subjects(
    ledger: &Ledger,
    event_type: &str,
    filters: &[(String, String)],
    below: u64,
) -> Result<Subjects, ReportError> {
    let mut equals = filters.to_vec();
    equals.push(("type".into(), event_type.into()));
    let seqs = ledger.seqs_where(Log::Canonical, &equals, 0, below)?;
    let mut places: Vec<Place> = Vec::new();
    let mut of = None;
    for seq in seqs.iter().rev() {
        if places.len() == ROWS_MAX {
            of = Some(seqs.len());
            break;
        }
        let Some(bytes) = ledger.get(*seq)? else {
            continue;
        };
        let Ok(r) = sealog_ledger::locate(ledger.packs(), &bytes) else {
            continue;
        };
        if r.event_type != event_type {
            continue;
        }
        if let Some(subject) = r.subject {
            let place = (r.tenant, r.scope, subject);
            if !places.contains(&place) {
                places.push(place);
            }
        }
    }
    let mut listed = Vec::new();
    for (tenant, scope, subject) in places {
        let state = state_in(ledger, (tenant, &scope, &subject), filters, below)?;
        listed.push(Listed {
            started: first_record(ledger, &state, event_type)?
                .as_ref()
                .and_then(clock::started),
            state: state.get("state").cloned().unwrap_or(Value::Null),
            scope,
            subject,
        });
    }
    listed.reverse();
    Ok(Subjects { listed, of })
}

/// A subject's state in its tenant and scope, within the caller's reach, as of `below`.
fn state_in(
    ledger: &Ledger,
    (tenant, scope, subject): (Option<String>, &str, &str),
    filters: &[(String, String)],
    below: u64,
) -> Result<Value, ReportError> {
    let mut filters = filters.to_vec();
    if let Some(t) = tenant
        && !filters.iter().any(|(axis, _)| axis == "tenant")
    {
        filters.push(("tenant".into(), t));
    }
    let q = StateQuery {
        subject: subject.to_string(),
        scope: Some(scope.to_string()),
        filters,
        as_of_size: Some(below),
        sight: Sight::Nothing,
        ..StateQuery::default()
    };
    match ledger.state(&q) {
        Ok(v) => Ok(v),
        Err(StateError::Store(e)) => Err(e.into()),
        // The scope is named, so the fold cannot meet another: the index disagrees with it.
        Err(e @ StateError::AmbiguousScope(_)) => {
            Err(sealog_ledger::Error::Corrupted(e.to_string()).into())
        }
    }
}

/// The subject's earliest record of `event_type` by event time (its deadline runs from it),
/// as stored.
fn first_record(
    ledger: &Ledger,
    state: &Value,
    event_type: &str,
) -> Result<Option<Value>, ReportError> {
    let first = state
        .get("history")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c.get("type").and_then(Value::as_str) == Some(event_type))
        .filter_map(|c| {
            Some((
                time_of(c, "time").unwrap_or(i64::MIN),
                c.get("seq")?.as_u64()?,
            ))
        })
        .min();
    let Some((_, seq)) = first else {
        return Ok(None);
    };
    Ok(ledger
        .get(seq)?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

fn time_of(state: &Value, field: &str) -> Option<i64> {
    state
        .get(field)
        .and_then(Value::as_str)
        .and_then(|t| parse_rfc3339(t).ok())
}

fn text(state: &Value, field: &str) -> Value {
    state.get(field).cloned().unwrap_or(Value::Null)
}

fn shown(t: Option<i64>) -> Value {
    t.map_or(Value::Null, |t| Value::String(format_micros(t)))
}

/// POPIA requests received in the window, answered in it, or still open at its end; and how
/// many of each standing.
pub(crate) fn popia(
    ledger: &Ledger,
    filters: &[(String, String)],
    window: &Window,
    below: u64,
    now: i64,
) -> Result<Vec<Section>, ReportError> {
    let found = subjects(ledger, "comms.popia_request", filters, below)?;
    let judged_at = window.to.min(now);
    let mut rows = Vec::new();
    let mut standings: Vec<(&str, u64)> = ["open", "overdue", "completed", "completed late"]
        .into_iter()
        .map(|s| (s, 0))
        .collect();
    for Listed {
        scope,
        subject: id,
        state: st,
        started,
    } in &found.listed
    {
        let Some(requested) = *started else {
            continue;
        };
        let due = requested + POPIA_DAYS * 24 * HOUR;
        let completed = (text(st, "status") == json!("completed"))
            .then(|| time_of(st, "actual_completion").unwrap_or(judged_at));
        let standing = match completed {
            Some(c) if c <= due => "completed",
            Some(_) => "completed late",
            None if judged_at >= due => "overdue",
            None => "open",
        };
        let relevant = window.contains(requested)
            || completed.is_some_and(|c| window.contains(c))
            || (completed.is_none() && requested < window.to);
        if !relevant {
            continue;
        }
        if let Some(n) = standings.iter_mut().find(|(s, _)| *s == standing) {
            n.1 += 1;
        }
        rows.push(vec![
            json!(id),
            json!(scope),
            text(st, "request_type"),
            shown(Some(requested)),
            shown(Some(due)),
            text(st, "status"),
            shown(completed),
            json!(standing),
        ]);
    }
    let summary = standings
        .into_iter()
        .map(|(s, n)| vec![json!(s), json!(n)])
        .collect();
    Ok(vec![
        Section::table(
            "popia_summary",
            "POPIA requests by standing (30 days to answer)",
            &["standing", "requests"],
            summary,
            None,
        ),
        Section::table(
            "popia_requests",
            "POPIA requests",
            &[
                "request_id",
                "scope",
                "request_type",
                "requested_at",
                "due_at",
                "status",
                "completed_at",
                "standing",
            ],
            rows,
            found.of,
        ),
    ])
}

/// Breaches discovered in the window or not notified to the regulator by its end, with how
/// long the notification took.
pub(crate) fn breaches(
    ledger: &Ledger,
    filters: &[(String, String)],
    window: &Window,
    below: u64,
    now: i64,
) -> Result<Vec<Section>, ReportError> {
    let found = subjects(ledger, "comms.breach_incident", filters, below)?;
    let judged_at = window.to.min(now);
    let mut rows = Vec::new();
    for Listed {
        scope,
        subject: id,
        state: st,
        started,
    } in &found.listed
    {
        let Some(discovered) = *started else {
            continue;
        };
        let notified = time_of(st, "regulator_notification");
        let deadline = discovered + BREACH_HOURS * HOUR;
        let standing = match notified {
            Some(n) if n <= deadline => "notified in time",
            Some(_) => "notified late",
            None if judged_at >= deadline => "not notified, overdue",
            None => "not notified yet",
        };
        if discovered >= window.to
            || !(window.contains(discovered) || notified.is_none_or(|n| n >= window.to))
        {
            continue;
        }
        let hours = notified.map_or(Value::Null, |n| {
            json!(((n - discovered) as f64 / HOUR as f64 * 10.0).round() / 10.0)
        });
        rows.push(vec![
            json!(id),
            json!(scope),
            text(st, "incident_type"),
            shown(Some(discovered)),
            shown(notified),
            hours,
            json!(standing),
        ]);
    }
    Ok(vec![Section::table(
        "breaches",
        "Breaches and their regulator notification (72 hours)",
        &[
            "incident_id",
            "scope",
            "incident_type",
            "discovered_at",
            "regulator_notified_at",
            "hours_to_notify",
            "standing",
        ],
        rows,
        found.of,
    )])
}
