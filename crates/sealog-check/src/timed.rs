//! Rules about time passing: a deadline missed (a POPIA request not completed within 30
//! days, a breach without a regulator notification within 72 hours), a subject not changed
//! within its window (stale), a subject nothing refers to some time after its creation
//! (orphan). Each is judged once its window has closed by the run's clock: a run looks at the
//! records whose windows closed since the last run's clock, and at the new records.

use std::collections::BTreeSet;

use serde_json::Value;

use sealog_packs::{CheckRule, Done};

use crate::CheckError;
use crate::finding::Finding;
use crate::run::Window;
use crate::subject_rules::{exists, pointer_fields, referred};
use crate::subjects::{Reader, State, SubjectKey};

/// Where a type's records say when its deadline starts: the moment a POPIA request was
/// received, a breach discovered. `sealog-report` reads the same fields the same way (its
/// `clock` module): the dependency rules keep the two crates apart, and a report calling a
/// request overdue that the check passes leaves an officer not knowing which to trust.
const CLOCKS: [(&str, &str); 2] = [
    ("comms.popia_request", "/data/request_timestamp"),
    ("comms.breach_incident", "/data/discovery_timestamp"),
];

fn clock_field(event_type: &str) -> Option<&'static str> {
    CLOCKS
        .iter()
        .find(|(t, _)| *t == event_type)
        .map(|(_, pointer)| *pointer)
}

/// When the deadline of a subject whose first record is `record` (at event time `time_ns`)
/// starts: the record's clock field when it holds a time, but never later than the record
/// itself (a request is received before it is recorded, and a later start would let the
/// deadline slip past what the event time allows); the event time otherwise.
fn started(event_type: &str, record: &Value, time_ns: i64) -> i64 {
    clock_field(event_type)
        .and_then(|pointer| record.pointer(pointer))
        .and_then(Value::as_str)
        .and_then(|t| sealog_model::time::parse_rfc3339(t).ok())
        .map_or(time_ns, |c| c.min(time_ns))
}

/// The subjects with a record of `types` whose window (`within` from its event time) closed
/// since the last run, whose window on their own clock did, or with a record new in this run.
fn due(
    types: &[String],
    within: i64,
    r: &Reader<'_>,
    w: &Window<'_>,
) -> Result<Vec<SubjectKey>, CheckError> {
    let closed = w.now.saturating_sub(within);
    let mut subjects = r.subjects(types, w.from)?;
    match w.previous_now {
        Some(prev) if w.from > 0 => {
            let opened = prev.saturating_sub(within);
            if opened < closed {
                subjects.extend(r.subjects_by_time(types, (opened, closed))?);
            }
            subjects.extend(started_early(types, within, (prev, w.now), r)?);
        }
        _ => subjects.extend(r.subjects(types, 0)?),
    }
    let mut seen = std::collections::HashSet::new();
    subjects.retain(|k| seen.insert(k.clone()));
    Ok(w.only(subjects))
}

/// The subjects whose deadline on their own clock passed between the runs (`since`, `now`]
/// while their event-time window is still open: recorded some time after they started. Such a
/// start is never later than its record, so only the records whose event-time window is open
/// are read, each once, by their type's postings; no state is rebuilt for the others.
fn started_early(
    types: &[String],
    within: i64,
    (since, now): (i64, i64),
    r: &Reader<'_>,
) -> Result<Vec<SubjectKey>, CheckError> {
    let mut out = Vec::new();
    let open_from = now.saturating_sub(within);
    for t in types.iter().filter(|t| clock_field(t).is_some()) {
        let equals = vec![("type".to_string(), t.clone())];
        r.visit(equals, 0, Some((open_from, i64::MAX)), &mut |l, bytes| {
            let record: Value = serde_json::from_slice(bytes)
                .map_err(|e| CheckError::Corrupted(format!("record {}: {e}", l.seq)))?;
            let deadline = started(t, &record, l.time_ns).saturating_add(within);
            if deadline > since && deadline <= now {
                out.extend(SubjectKey::of(&l));
            }
            Ok(())
        })?;
    }
    Ok(out)
}

fn met(state: &State, done: &Done) -> bool {
    match (state.field(&done.field), &done.equals) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(v), Some(want)) => {
            v == want || matches!((v, want), (Value::String(a), Value::String(b)) if a == b)
        }
    }
}

pub(crate) fn deadline(
    rule: &CheckRule,
    within: i64,
    done: &Done,
    r: &Reader<'_>,
    w: &Window<'_>,
) -> Result<Vec<Finding>, CheckError> {
    let mut out = Vec::new();
    for key in due(&rule.types, within, r, w)? {
        let state = r.state(&key)?;
        let Some(first) = state
            .history()
            .into_iter()
            .filter(|c| rule.types.contains(&c.event_type))
            .min_by_key(|c| (c.time_ns, c.seq))
        else {
            continue;
        };
        let deadline =
            started(&first.event_type, &r.record(first.seq)?, first.time_ns).saturating_add(within);
        if deadline > w.now {
            continue;
        }
        if !met(&r.state_at(&key, deadline)?, done) {
            out.push(Finding::about(rule, &key, vec![first]));
        }
    }
    Ok(out)
}

pub(crate) fn stale(
    rule: &CheckRule,
    within: i64,
    r: &Reader<'_>,
    w: &Window<'_>,
) -> Result<Vec<Finding>, CheckError> {
    let mut out = Vec::new();
    for key in due(&rule.types, within, r, w)? {
        let state = r.state(&key)?;
        if !exists(&state, &rule.types) {
            continue;
        }
        let Some(last) = state.cited("updated") else {
            continue;
        };
        if last.time_ns.saturating_add(within) > w.now {
            continue;
        }
        out.push(Finding::about(rule, &key, vec![last]));
    }
    Ok(out)
}

pub(crate) fn orphan(
    rule: &CheckRule,
    (within, edges, axis): (i64, &[String], &str),
    r: &Reader<'_>,
    w: &Window<'_>,
) -> Result<Vec<Finding>, CheckError> {
    let fields = pointer_fields(rule, r);
    let mut candidates: BTreeSet<SubjectKey> =
        due(&rule.types, within, r, w)?.into_iter().collect();
    // An edge changed in this run may have been a subject's last.
    for edge in r.subjects(edges, w.from)? {
        let state = r.state(&edge)?;
        for f in &fields {
            if let Some(name) = state.text(f) {
                candidates.insert(edge.sibling(&name));
            }
        }
    }
    let mut out = Vec::new();
    for key in w.only(candidates.into_iter().collect()) {
        let state = r.state(&key)?;
        if !exists(&state, &rule.types) {
            continue;
        }
        let Some(created) = state.cited("created") else {
            continue;
        };
        if created.time_ns.saturating_add(within) > w.now
            || referred(&key, edges, axis, &fields, r)?
        {
            continue;
        }
        out.push(Finding::about(rule, &key, vec![created]));
    }
    Ok(out)
}
