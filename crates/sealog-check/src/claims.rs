//! Claims across subjects (seed 003 §5.2, rule-based): live subjects whose state holds the
//! same key must agree on its value (a contradiction), and two that assert the same value
//! are reported as potential duplicates (redundancy).

use std::collections::{BTreeMap, BTreeSet};

use sealog_packs::{CheckRule, Criticality, CriticalityBy};

use crate::CheckError;
use crate::finding::Finding;
use crate::run::Window;
use crate::subjects::{Reader, SubjectKey};

pub(crate) struct Claims<'r> {
    pub(crate) same: bool,
    pub(crate) axis: &'r str,
    pub(crate) key: &'r str,
    pub(crate) value: &'r str,
    pub(crate) criticality_by: Option<&'r CriticalityBy>,
}

pub(crate) fn evaluate(
    rule: &CheckRule,
    c: &Claims<'_>,
    r: &Reader<'_>,
    w: &Window<'_>,
) -> Result<Vec<Finding>, CheckError> {
    // Each (tenant, scope, key) is judged once, whichever of its subjects the window touched.
    let mut groups: BTreeSet<(Option<String>, String, String)> = BTreeSet::new();
    for key in w.only(r.subjects(&rule.types, w.from)?) {
        let state = r.state(&key)?;
        if let (true, Some(k)) = (state.live(), state.text(c.key)) {
            groups.insert((key.tenant.clone(), key.scope.clone(), k));
        }
    }
    let mut out = Vec::new();
    for (tenant, scope, claim) in groups {
        let at = SubjectKey::place(tenant, scope);
        // value → the live subjects asserting it
        let mut by_value: BTreeMap<String, Vec<SubjectKey>> = BTreeMap::new();
        for s in r.subjects_with(c.axis, &claim, &at)? {
            let state = r.state(&s)?;
            if !state.live() || state.text(c.key).as_deref() != Some(claim.as_str()) {
                continue;
            }
            if !state
                .history()
                .iter()
                .any(|h| rule.types.contains(&h.event_type))
            {
                continue;
            }
            if let Some(v) = state.text(c.value) {
                by_value.entry(v).or_default().push(s);
            }
        }
        let groups: Vec<Vec<SubjectKey>> = if c.same {
            by_value.into_values().filter(|s| s.len() > 1).collect()
        } else if by_value.len() > 1 {
            vec![by_value.into_values().flatten().collect()]
        } else {
            Vec::new()
        };
        for subjects in groups {
            let mut evidence = Vec::new();
            let mut criticality = None::<Criticality>;
            for s in &subjects {
                let state = r.state(s)?;
                evidence.extend(state.cited("updated"));
                if let Some(by) = c.criticality_by {
                    let level = state
                        .text(&by.field)
                        .and_then(|v| by.values.get(&v).copied());
                    criticality = criticality.max(level);
                }
            }
            let mut f = Finding::new(
                rule,
                &at,
                subjects.iter().map(|s| s.subject.clone()).collect(),
                evidence,
                Some(claim.clone()),
            );
            if let Some(level) = criticality {
                f.criticality = level;
            }
            out.push(f);
        }
    }
    Ok(out)
}
