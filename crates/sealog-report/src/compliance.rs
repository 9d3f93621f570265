//! The compliance tables: POPIA data-subject requests and breach incidents. A subject is listed
//! when its own times place it in the window (received, discovered, recorded, answered in it,
//! or still open at its end) and judged at the report's `now` on its state in the log as it
//! is. How long each has, and from which moment, is its pack's deadline rule (`within`,
//! `from`), the rule `sealog check` judges too: a report never calls a request overdue that
//! the check passes. Only those records are read (found through the type index); nothing else
//! of the log is.

use serde_json::{Value, json};

use sealog_ledger::{Ledger, Log, Packs, Sight, StateError, StateQuery};
use sealog_model::time::{format_micros, parse_rfc3339};
use sealog_packs::{CheckKind, Deadline};

use crate::{ReportError, Section, Window};

const HOUR: i64 = 3_600_000_000_000;
/// customer-comms' rules the tables are judged by.
const POPIA_RULE: &str = "comms.popia_request_overdue";
const BREACH_RULE: &str = "comms.breach_not_notified";
/// Most subjects a table lists: the newest ones; the section says how many there were.
pub(crate) const ROWS_MAX: usize = 1000;

/// A deadline rule of the loaded packs, with the types it looks at.
struct Rule<'p> {
    types: &'p [String],
    deadline: &'p Deadline,
}

fn rule<'p>(packs: &'p Packs, name: &str) -> Result<Rule<'p>, ReportError> {
    packs
        .checks()
        .iter()
        .find(|r| r.name == name)
        .and_then(|r| match &r.kind {
            CheckKind::Deadline(deadline) => Some(Rule {
                types: &r.types,
                deadline,
            }),
            _ => None,
        })
        .ok_or_else(|| {
            sealog_ledger::Error::Corrupted(format!(
                "the loaded packs have no deadline rule {name}, which this report is judged by"
            ))
            .into()
        })
}

/// A rule's window in words, as deadlines are spoken of: "72 hours" up to four days, "30 days"
/// beyond.
fn spelt(within_ns: i64) -> String {
    let hours = within_ns / HOUR;
    match hours {
        h if h > 96 && h % 24 == 0 && within_ns % HOUR == 0 => format!("{} days", h / 24),
        h if h > 0 && within_ns % HOUR == 0 => format!("{h} hours"),
        _ => format!("{} minutes", within_ns / (60 * 1_000_000_000)),
    }
}

/// A subject a compliance table lists: where it lives, its state, when its deadline started
/// counting, and whether any of its records happened in the window.
struct Listed {
    tenant: Option<String>,
    scope: String,
    subject: String,
    state: Value,
    started: Option<i64>,
    recorded_in_window: bool,
}

/// The subjects of the rule's types, newest first: the same id in two tenants or scopes is
/// two subjects, each its own row.
struct Subjects {
    listed: Vec<Listed>,
    /// The records of the types, when they name more than [`ROWS_MAX`] subjects (only the
    /// newest subjects are read).
    of: Option<usize>,
}

/// A subject's place: tenant, scope and id.
type Place = (Option<String>, String, String);

fn subjects(
    ledger: &Ledger,
    rule: &Rule<'_>,
    filters: &[(String, String)],
    (window, size): (&Window, u64),
) -> Result<Subjects, ReportError> {
    let mut seqs = Vec::new();
    for event_type in rule.types {
        let mut equals = filters.to_vec();
        equals.push(("type".into(), event_type.clone()));
        seqs.extend(ledger.seqs_where(Log::Canonical, &equals, 0, size)?);
    }
    seqs.sort_unstable();
    seqs.dedup();
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
        if !rule.types.contains(&r.event_type) {
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
        let state = fold(
            ledger,
            (tenant.clone(), &scope, &subject),
            rule,
            filters,
            (size, None),
            false,
        )?;
        let history = history_of(&state, rule.types);
        listed.push(Listed {
            started: first_record(ledger, &history)?
                .map(|(record, time)| rule.deadline.starts(&record, time)),
            recorded_in_window: history.iter().any(|(time, _)| window.contains(*time)),
            state: state.get("state").cloned().unwrap_or(Value::Null),
            tenant,
            scope,
            subject,
        });
    }
    listed.reverse();
    Ok(Subjects { listed, of })
}

/// A subject's state (or, with `steps`, its timeline) in its tenant and scope, within the
/// caller's reach, as of `size`, valid at `valid_at` if given.
fn fold(
    ledger: &Ledger,
    (tenant, scope, subject): (Option<String>, &str, &str),
    rule: &Rule<'_>,
    filters: &[(String, String)],
    (size, valid_at): (u64, Option<i64>),
    steps: bool,
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
        // The rule's types are of one kind: the subject is a request, not whatever else
        // shares its id.
        of_type: rule.types.first().cloned(),
        filters,
        as_of_size: Some(size),
        valid_at,
        sight: Sight::Nothing,
    };
    let folded = if steps {
        ledger.timeline(&q)
    } else {
        ledger.state(&q)
    };
    match folded {
        Ok(v) => Ok(v),
        Err(StateError::Store(e)) => Err(e.into()),
        // The scope and kind are named, so the fold cannot meet another: the index disagrees.
        Err(e @ (StateError::AmbiguousScope(_) | StateError::AmbiguousKind(_))) => {
            Err(sealog_ledger::Error::Corrupted(e.to_string()).into())
        }
    }
}

/// The subject's records of `types`: (event time, seq), earliest first.
fn history_of(state: &Value, types: &[String]) -> Vec<(i64, u64)> {
    let mut history: Vec<(i64, u64)> = state
        .get("history")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| {
            c.get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| types.iter().any(|want| want == t))
        })
        .filter_map(|c| {
            Some((
                time_of(c, "time").unwrap_or(i64::MIN),
                c.get("seq")?.as_u64()?,
            ))
        })
        .collect();
    history.sort_unstable();
    history
}

/// The subject's earliest record by event time (its deadline runs from it), as stored, with
/// its event time.
fn first_record(
    ledger: &Ledger,
    history: &[(i64, u64)],
) -> Result<Option<(Value, i64)>, ReportError> {
    let Some((_, seq)) = history.first() else {
        return Ok(None);
    };
    Ok(ledger
        .get(*seq)?
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|record| {
            let time = time_of(&record, "time")?;
            Some((record, time))
        }))
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

/// POPIA requests received, recorded or answered in the window, or still open at its end;
/// and how many of each standing, judged at `now`.
pub(crate) fn popia(
    ledger: &Ledger,
    filters: &[(String, String)],
    window: &Window,
    (size, now): (u64, i64),
) -> Result<Vec<Section>, ReportError> {
    let rule = rule(ledger.packs(), POPIA_RULE)?;
    let found = subjects(ledger, &rule, filters, (window, size))?;
    let mut rows = Vec::new();
    let mut standings: Vec<(&str, u64)> = ["open", "overdue", "completed", "completed late"]
        .into_iter()
        .map(|s| (s, 0))
        .collect();
    for listed in &found.listed {
        let (st, id) = (&listed.state, &listed.subject);
        let Some(requested) = listed.started else {
            continue;
        };
        let due = requested.saturating_add(rule.deadline.within_ns);
        let completed = if rule.deadline.done.met_by(st) {
            Some(completion(ledger, listed, filters, (size, due), &rule)?)
        } else {
            None
        };
        let standing = match completed {
            Some((_, true)) => "completed",
            Some((_, false)) => "completed late",
            None if now >= due => "overdue",
            None => "open",
        };
        let completed = completed.map(|(at, _)| at);
        let open_at_end = requested < window.to && completed.is_none_or(|c| c >= window.to);
        let relevant = window.contains(requested)
            || listed.recorded_in_window
            || completed.is_some_and(|c| window.contains(c))
            || open_at_end;
        if !relevant {
            continue;
        }
        if let Some(n) = standings.iter_mut().find(|(s, _)| *s == standing) {
            n.1 += 1;
        }
        rows.push(vec![
            json!(id),
            json!(listed.scope),
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
    let within = spelt(rule.deadline.within_ns);
    Ok(vec![
        Section::table(
            "popia_summary",
            format!("POPIA requests by standing ({within} to answer)"),
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

/// When a completed request was completed, and whether by `due`. On time means what the
/// check means: the state as of `due` on the event clock was already done. The moment shown
/// is the request's own `actual_completion`, or else the event time of the first record after
/// which the state was done: never the time the report runs.
fn completion(
    ledger: &Ledger,
    listed: &Listed,
    filters: &[(String, String)],
    (size, due): (u64, i64),
    rule: &Rule<'_>,
) -> Result<(i64, bool), ReportError> {
    let place = (
        listed.tenant.clone(),
        listed.scope.as_str(),
        listed.subject.as_str(),
    );
    let at_due = fold(
        ledger,
        place.clone(),
        rule,
        filters,
        (size, Some(due)),
        false,
    )?;
    let in_time = at_due
        .get("state")
        .is_some_and(|s| rule.deadline.done.met_by(s));
    if let Some(t) = time_of(&listed.state, "actual_completion") {
        return Ok((t, in_time));
    }
    let timeline = fold(ledger, place, rule, filters, (size, None), true)?;
    let first_done = timeline
        .get("steps")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|step| {
            step.get("state")
                .is_some_and(|s| rule.deadline.done.met_by(s))
        })
        .and_then(|step| time_of(&step["record"], "time"));
    Ok((first_done.unwrap_or(due), in_time))
}

/// Breaches discovered or recorded in the window, or not notified to the regulator by its
/// end, with how long the notification took, judged at `now`.
pub(crate) fn breaches(
    ledger: &Ledger,
    filters: &[(String, String)],
    window: &Window,
    (size, now): (u64, i64),
) -> Result<Vec<Section>, ReportError> {
    let rule = rule(ledger.packs(), BREACH_RULE)?;
    let found = subjects(ledger, &rule, filters, (window, size))?;
    let mut rows = Vec::new();
    for listed in &found.listed {
        let (st, id) = (&listed.state, &listed.subject);
        let Some(discovered) = listed.started else {
            continue;
        };
        let notified = time_of(st, "regulator_notification");
        let deadline = discovered.saturating_add(rule.deadline.within_ns);
        let standing = match notified {
            Some(n) if n <= deadline => "notified in time",
            Some(_) => "notified late",
            None if now >= deadline => "not notified, overdue",
            None => "not notified yet",
        };
        let unnotified_at_end = discovered < window.to && notified.is_none_or(|n| n >= window.to);
        if !(window.contains(discovered) || listed.recorded_in_window || unnotified_at_end) {
            continue;
        }
        let hours = notified.map_or(Value::Null, |n| {
            json!(((n - discovered) as f64 / HOUR as f64 * 10.0).round() / 10.0)
        });
        rows.push(vec![
            json!(id),
            json!(listed.scope),
            text(st, "incident_type"),
            shown(Some(discovered)),
            shown(notified),
            hours,
            json!(standing),
        ]);
    }
    Ok(vec![Section::table(
        "breaches",
        format!(
            "Breaches and their regulator notification ({})",
            spelt(rule.deadline.within_ns)
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rules_window_is_spelt_in_its_own_unit() {
        assert_eq!(spelt(30 * 24 * HOUR), "30 days");
        assert_eq!(spelt(72 * HOUR), "72 hours");
        assert_eq!(spelt(7 * 24 * HOUR), "7 days");
        assert_eq!(spelt(HOUR / 2), "30 minutes");
    }
}
