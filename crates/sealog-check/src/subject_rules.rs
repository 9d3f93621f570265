//! Rules over one subject's rebuilt state and the subjects it names: anomalies of the state
//! fold (a relink that names the wrong previous customer, a change to an unknown or deleted
//! chunk) and references to subjects that do not exist (a relationship to a missing chunk).

use std::collections::BTreeSet;

use sealog_packs::{CheckKind, CheckRule};

use crate::CheckError;
use crate::finding::Finding;
use crate::run::Window;
use crate::subjects::{Reader, State, SubjectKey};

/// State rules, together: each subject the window's records of any of their types touch is
/// rebuilt once, and each rule takes the anomalies of its kinds at a record of its types.
pub(crate) fn state(
    rules: &[(&CheckRule, &[String])],
    r: &Reader<'_>,
    w: &Window<'_>,
) -> Result<Vec<Finding>, CheckError> {
    let mut types: Vec<String> = rules
        .iter()
        .flat_map(|(rule, _)| rule.types.clone())
        .collect();
    types.sort();
    types.dedup();
    let mut out = Vec::new();
    for key in w.only(r.subjects(&types, w.from)?) {
        let state = r.state(&key)?;
        for (kind, at) in state.anomalies() {
            for (rule, anomalies) in rules {
                if anomalies.contains(&kind) && rule.types.contains(&at.event_type) {
                    out.push(Finding::about(rule, &key, vec![at.clone()]));
                }
            }
        }
    }
    Ok(out)
}

/// Whether a subject exists now: live, and made by one of `types`.
pub(crate) fn exists(state: &State, types: &[String]) -> bool {
    state.live()
        && state
            .history()
            .iter()
            .any(|c| types.contains(&c.event_type))
}

/// The subjects a live referring subject names, in its state's fields (the referring
/// record's values, as the pack's state keeps them).
fn named(state: &State, fields: &[String]) -> Vec<String> {
    fields.iter().filter_map(|f| state.text(f)).collect()
}

/// The state fields a reference rule's pointers fill: the fields whose `state.set` reads
/// each pointer in the rule's types.
pub(crate) fn pointer_fields(rule: &CheckRule, r: &Reader<'_>) -> Vec<String> {
    let (CheckKind::Reference { pointers, .. } | CheckKind::Orphan { pointers, .. }) = &rule.kind
    else {
        return Vec::new();
    };
    let packs = r.ledger.packs();
    let mut fields = Vec::new();
    let types: &[String] = match &rule.kind {
        CheckKind::Orphan { edges, .. } => edges,
        _ => &rule.types,
    };
    for p in pointers {
        for t in types {
            if let Some(f) = packs.state_field_of(t, p.text())
                && !fields.contains(&f.to_string())
            {
                fields.push(f.to_string());
            }
        }
    }
    fields
}

/// Reference rules: each live referring subject's named subjects exist. The window's
/// referring records, and the referrers of the window's target records, are checked.
pub(crate) fn reference(
    rule: &CheckRule,
    targets: &[String],
    axis: &str,
    r: &Reader<'_>,
    w: &Window<'_>,
) -> Result<Vec<Finding>, CheckError> {
    let fields = pointer_fields(rule, r);
    let mut referrers: BTreeSet<SubjectKey> =
        r.subjects(&rule.types, w.from)?.into_iter().collect();
    for target in r.subjects(targets, w.from)? {
        referrers.extend(r.subjects_with(axis, &target.subject, &target)?);
    }
    let mut out = Vec::new();
    for key in referrers {
        let state = r.state(&key)?;
        if !exists(&state, &rule.types) {
            continue;
        }
        for name in named(&state, &fields) {
            let target = key.sibling(&name);
            if w.subject.is_some_and(|s| s != key.subject && s != name) {
                continue;
            }
            let t = r.state(&target)?;
            if exists(&t, targets) {
                continue;
            }
            let mut evidence: Vec<_> = state.cited("created").into_iter().collect();
            evidence.extend(t.latest());
            out.push(Finding::new(
                rule,
                &key,
                vec![key.subject.clone(), name],
                evidence,
                None,
            ));
        }
    }
    Ok(out)
}

/// Whether any live subject of `edges` found through `axis` names `target`.
pub(crate) fn referred(
    target: &SubjectKey,
    edges: &[String],
    axis: &str,
    fields: &[String],
    r: &Reader<'_>,
) -> Result<bool, CheckError> {
    for edge in r.subjects_with(axis, &target.subject, target)? {
        let state = r.state(&edge)?;
        if exists(&state, edges) && named(&state, fields).contains(&target.subject) {
            return Ok(true);
        }
    }
    Ok(false)
}
