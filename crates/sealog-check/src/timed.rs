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

/// The subjects with a record of `types` whose window (`within` from its event time) closed
/// since the last run, or a record new in this run.
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
        }
        _ => subjects.extend(r.subjects(types, 0)?),
    }
    let mut seen = std::collections::HashSet::new();
    subjects.retain(|k| seen.insert(k.clone()));
    Ok(w.only(subjects))
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
        let deadline = first.time_ns.saturating_add(within);
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
