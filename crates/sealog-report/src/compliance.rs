//! The compliance tables: POPIA data-subject requests and breach incidents, each judged on
//! its subject's state rebuilt as of the window's end. Only those records are read (found
//! through the type index); nothing else of the log is.

use serde_json::{Value, json};

use sealog_ledger::{Ledger, Log, Sight, StateError, StateQuery};
use sealog_model::time::{format_micros, parse_rfc3339};

use crate::{ReportError, Section, Window};

const HOUR: i64 = 3_600_000_000_000;
/// POPIA: a request answered within 30 days (customer-comms' `comms.popia_request_overdue`).
const POPIA_DAYS: i64 = 30;
/// A breach notified to the regulator within 72 hours (`comms.breach_not_notified`).
const BREACH_HOURS: i64 = 72;
/// Most subjects a table lists: the newest ones; the section says how many there were.
pub(crate) const ROWS_MAX: usize = 1000;

/// The latest states of the subjects of `event_type`'s records, as of the window's end.
struct Subjects {
    states: Vec<(String, Value)>,
    /// The records of the type, when they name more than [`ROWS_MAX`] subjects (only the
    /// newest subjects are read).
    of: Option<usize>,
}

fn subjects(
    ledger: &Ledger,
    event_type: &str,
    subject_field: &str,
    filters: &[(String, String)],
    below: u64,
) -> Result<Subjects, ReportError> {
    let mut equals = filters.to_vec();
    equals.push(("type".into(), event_type.into()));
    let seqs = ledger.seqs_where(Log::Canonical, &equals, 0, below)?;
    let mut names: Vec<String> = Vec::new();
    let mut of = None;
    for seq in seqs.iter().rev() {
        if names.len() == ROWS_MAX {
            of = Some(seqs.len());
            break;
        }
        let Some(bytes) = ledger.get(*seq)? else {
            continue;
        };
        let Ok(record) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        if record.get("type").and_then(Value::as_str) != Some(event_type) {
            continue;
        }
        if let Some(s) = record.pointer(subject_field).and_then(Value::as_str)
            && !names.iter().any(|n| n == s)
        {
            names.push(s.to_string());
        }
    }
    let mut states = Vec::new();
    for subject in names {
        let q = StateQuery {
            subject: subject.clone(),
            filters: filters.to_vec(),
            as_of_size: Some(below),
            sight: Sight::Nothing,
            ..StateQuery::default()
        };
        match ledger.state(&q) {
            Ok(v) => states.push((subject, v.get("state").cloned().unwrap_or(Value::Null))),
            // The same id in several scopes is several subjects; the table names the first.
            Err(StateError::AmbiguousScope(_)) => {}
            Err(StateError::Store(e)) => return Err(e.into()),
        }
    }
    states.reverse();
    Ok(Subjects { states, of })
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
    let found = subjects(
        ledger,
        "comms.popia_request",
        "/data/request_id",
        filters,
        below,
    )?;
    let judged_at = window.to.min(now);
    let mut rows = Vec::new();
    let mut standings: Vec<(&str, u64)> = ["open", "overdue", "completed", "completed late"]
        .into_iter()
        .map(|s| (s, 0))
        .collect();
    for (id, st) in &found.states {
        let Some(requested) = time_of(st, "request_timestamp") else {
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
    let found = subjects(
        ledger,
        "comms.breach_incident",
        "/data/incident_id",
        filters,
        below,
    )?;
    let judged_at = window.to.min(now);
    let mut rows = Vec::new();
    for (id, st) in &found.states {
        let Some(discovered) = time_of(st, "discovery_timestamp") else {
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
