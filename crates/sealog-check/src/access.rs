//! Rules over the log's own `audit.access` records (seed 001's suspicious activity): a burst
//! of refused requests by one key, one key reading many data subjects in a short window, a
//! key used from an address it was never used from before.
//!
//! A windowed rule fires at the record that takes its key's window over the threshold — the
//! window ending at the key's previous record was under it — so a burst is one finding
//! whichever runs it falls across.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use sealog_ledger::Located;
use sealog_packs::CheckRule;

use crate::CheckError;
use crate::finding::Finding;
use crate::run::Window;
use crate::subjects::{Cited, Reader, SubjectKey};

const ACCESS: &str = "audit.access";

/// Who made a request: its key, the key it presented, or nobody.
fn who(record: &Value) -> String {
    let d = &record["data"];
    d["principal"]["key_id"]
        .as_str()
        .or_else(|| d["presented_key_id"].as_str())
        .unwrap_or("unauthenticated")
        .to_string()
}

fn data_subjects(record: &Value) -> Vec<String> {
    record["data"]["data_subjects"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn place(l: &Located) -> SubjectKey {
    SubjectKey::place(l.tenant.clone(), l.scope.clone())
}

/// What a window measures: requests, or distinct data subjects read.
#[derive(Default)]
struct Measure {
    distinct: bool,
    requests: u64,
    subjects: BTreeMap<String, u64>,
}

impl Measure {
    fn add(&mut self, v: &Value, by: i64) {
        self.requests = self.requests.saturating_add_signed(by);
        if self.distinct {
            for s in data_subjects(v) {
                let n = self.subjects.entry(s.clone()).or_default();
                *n = n.saturating_add_signed(by);
                if *n == 0 {
                    self.subjects.remove(&s);
                }
            }
        }
    }

    fn value(&self) -> u64 {
        if self.distinct {
            self.subjects.len() as u64
        } else {
            self.requests
        }
    }
}

/// Over one outcome's access records (`denied`: refusals counted; `allowed`: the distinct
/// data subjects read): for each key, the new records at which the window ending there
/// (`within`, by event time) measures at least `threshold` while the window ending at the
/// key's previous record did not.
pub(crate) fn windowed(
    rule: &CheckRule,
    (outcome, within, threshold): (&str, i64, u64),
    r: &Reader<'_>,
    w: &Window<'_>,
) -> Result<Vec<Finding>, CheckError> {
    let distinct = outcome == "allowed";
    let fresh = r.records(
        vec![
            ("type".into(), ACCESS.into()),
            ("access_outcome".into(), outcome.into()),
        ],
        w.from,
    )?;
    let Some(earliest) = fresh.iter().map(|(l, _)| l.time_ns).min() else {
        return Ok(Vec::new());
    };
    // The windows of the new records, and of the record before each, reach back at most
    // two windows from the earliest new record.
    let back = earliest.saturating_sub(within.saturating_mul(2));
    // Read through the event-time index: the window's records, not the key's whole history.
    let mut by_key: BTreeMap<String, Vec<(Located, Value)>> = BTreeMap::new();
    r.visit(Vec::new(), 0, Some((back, i64::MAX)), &mut |l, bytes| {
        if l.event_type != ACCESS {
            return Ok(());
        }
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| CheckError::Corrupted(format!("record {}: {e}", l.seq)))?;
        if v["data"]["outcome"] == outcome {
            by_key.entry(who(&v)).or_default().push((l, v));
        }
        Ok(())
    })?;
    let mut out = Vec::new();
    for (key, mut records) in by_key {
        if w.subject.is_some_and(|s| s != key) {
            continue;
        }
        records.sort_by_key(|(l, _)| (l.time_ns, l.seq));
        let mut m = Measure {
            distinct,
            ..Measure::default()
        };
        let mut start = 0;
        let mut before = 0;
        for i in 0..records.len() {
            let end = records[i].0.time_ns;
            m.add(&records[i].1, 1);
            while records[start].0.time_ns <= end.saturating_sub(within) {
                m.add(&records[start].1, -1);
                start += 1;
            }
            let now = m.value();
            if records[i].0.seq >= w.from && now >= threshold && before < threshold {
                out.push(Finding::new(
                    rule,
                    &place(&records[i].0),
                    Vec::new(),
                    records[start..=i]
                        .iter()
                        .map(|(l, _)| Cited::of(l))
                        .collect(),
                    Some(key.clone()),
                ));
            }
            before = now;
        }
    }
    Ok(out)
}

/// A key's request from an address none of its earlier requests came from (its very first
/// request is not "new": there is nothing to compare with).
pub(crate) fn new_source(
    rule: &CheckRule,
    r: &Reader<'_>,
    w: &Window<'_>,
) -> Result<Vec<Finding>, CheckError> {
    let mut out = Vec::new();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    for (l, v) in r.records(vec![("type".into(), ACCESS.into())], w.from)? {
        let (Some(key), Some(address)) = (
            v["data"]["principal"]["key_id"].as_str(),
            v["data"]["source_address"].as_str(),
        ) else {
            continue;
        };
        if w.subject.is_some_and(|s| s != key) || !seen.insert((key.into(), address.into())) {
            continue;
        }
        let before = |equals: Vec<(String, String)>| r.any_below(equals, l.seq);
        let by_key = vec![
            ("type".to_string(), ACCESS.to_string()),
            ("access_key".to_string(), key.to_string()),
        ];
        let mut from_here = by_key.clone();
        from_here.push(("access_source".into(), address.into()));
        if before(by_key)? && !before(from_here)? {
            out.push(Finding::new(
                rule,
                &place(&l),
                Vec::new(),
                vec![Cited::of(&l)],
                Some(key.to_string()),
            ));
        }
    }
    Ok(out)
}
