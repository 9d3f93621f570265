//! Rules about time passing: a deadline missed (a POPIA request not completed within 30
//! days of its receipt, a breach without a regulator notification within 72 hours of its
//! discovery: each from where its rule's `from` says it started), a subject not changed
//! within its window (stale), a subject nothing refers to some time after its creation
//! (orphan). Each is judged once its window has closed by the run's clock: a run looks at the
//! records whose windows closed since the last run's clock, and at the new records.

use std::collections::BTreeSet;

use serde_json::Value;

use sealog_packs::{CheckRule, Deadline};

use crate::CheckError;
use crate::finding::Finding;
use crate::run::Window;
use crate::subject_rules::{exists, pointer_fields, referred};
use crate::subjects::{Reader, SubjectKey};

/// The subjects with a record of `types` whose window (`within` from its event time) closed
/// since the last run, whose deadline (`early`, when it starts before the event time) did, or
/// with a record new in this run.
fn due(
    types: &[String],
    within: i64,
    early: Option<&Deadline>,
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
            if let Some(deadline) = early.filter(|d| d.from.is_some()) {
                subjects.extend(started_early(types, deadline, (prev, w.now), r)?);
            }
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
    deadline: &Deadline,
    (since, now): (i64, i64),
    r: &Reader<'_>,
) -> Result<Vec<SubjectKey>, CheckError> {
    let mut out = Vec::new();
    let open_from = now.saturating_sub(deadline.within_ns);
    for t in types {
        let equals = vec![("type".to_string(), t.clone())];
        r.visit(equals, 0, Some((open_from, i64::MAX)), &mut |l, bytes| {
            let record: Value = serde_json::from_slice(bytes)
                .map_err(|e| CheckError::Corrupted(format!("record {}: {e}", l.seq)))?;
            let due = deadline.due(&record, l.time_ns);
            if due > since && due <= now {
                out.extend(SubjectKey::of(&l));
            }
            Ok(())
        })?;
    }
    Ok(out)
}

pub(crate) fn deadline(
    rule: &CheckRule,
    deadline: &Deadline,
    r: &Reader<'_>,
    w: &Window<'_>,
) -> Result<Vec<Finding>, CheckError> {
    let mut out = Vec::new();
    for key in due(&rule.types, deadline.within_ns, Some(deadline), r, w)? {
        let state = r.state(&key)?;
        let Some(first) = state
            .history()
            .into_iter()
            .filter(|c| rule.types.contains(&c.event_type))
            .min_by_key(|c| (c.time_ns, c.seq))
        else {
            continue;
        };
        let due = deadline.due(&r.record(first.seq)?, first.time_ns);
        if due > w.now {
            continue;
        }
        let state = r.state_at(&key, due)?;
        if !deadline
            .done
            .met_by(state.0.get("state").unwrap_or(&Value::Null))
        {
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
    for key in due(&rule.types, within, None, r, w)? {
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
        due(&rule.types, within, None, r, w)?.into_iter().collect();
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
