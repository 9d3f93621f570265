//! Failure rates (seed 004 §8, "alert on failure rate > 1%"): the share of a type's events
//! that reached the log only to be quarantined. It is judged at each new quarantine record,
//! over the window ending there, and fires where it crosses the rate — the window ending at
//! the previous quarantine record was under it — so a bad hour is one finding.

use sealog_ledger::{LIMIT_MAX, Query};
use sealog_packs::CheckRule;

use crate::CheckError;
use crate::finding::Finding;
use crate::run::Window;
use crate::subjects::{Reader, SubjectKey};

/// (ingest time in ns, seq, tenant) of the records matching `q`, paged through.
type Stamp = (i64, u64, Option<String>);

fn times(
    mut q: Query,
    page: &dyn Fn(&Query) -> Result<sealog_ledger::Page, sealog_ledger::Error>,
) -> Result<Vec<Stamp>, CheckError> {
    q.limit = LIMIT_MAX;
    let mut out = Vec::new();
    loop {
        let p = page(&q)?;
        for (seq, bytes) in &p.records {
            let v: serde_json::Value = serde_json::from_slice(bytes)
                .map_err(|e| CheckError::Corrupted(format!("record {seq}: {e}")))?;
            let at = v["ingested_at"]
                .as_str()
                .and_then(|t| sealog_model::time::parse_rfc3339(t).ok())
                .ok_or_else(|| CheckError::Corrupted(format!("record {seq} has no ingest time")))?;
            out.push((at, *seq, v["tenant"].as_str().map(str::to_string)));
        }
        match p.next_after {
            Some(a) => q.after = Some(a),
            None => return Ok(out),
        }
    }
}

pub(crate) fn failure_rate(
    rule: &CheckRule,
    (within, percent, threshold): (i64, f64, u64),
    r: &Reader<'_>,
    w: &Window<'_>,
) -> Result<Vec<Finding>, CheckError> {
    let ledger = r.ledger;
    let mut out = Vec::new();
    for t in &rule.types {
        let by_type = ("event_type".to_string(), t.clone());
        let fresh = Query {
            equals: vec![by_type.clone()],
            after: w.quarantine.0.checked_sub(1),
            as_of_size: Some(w.quarantine.1),
            ..Query::default()
        };
        let fresh = times(fresh, &|q| ledger.quarantine_query(q))?;
        let Some(earliest) = fresh.iter().map(|(at, _, _)| *at).min() else {
            continue;
        };
        // The windows of the new records, and of the quarantine record before each.
        let back = earliest.saturating_sub(within.saturating_mul(2));
        let window = |equals: Vec<(String, String)>, size| Query {
            equals,
            ingest_from: Some(back),
            as_of_size: Some(size),
            ..Query::default()
        };
        let mut failed = times(window(vec![by_type], w.quarantine.1), &|q| {
            ledger.quarantine_query(q)
        })?;
        let mut good = times(window(vec![("type".into(), t.clone())], r.size), &|q| {
            ledger.query(q)
        })?;
        failed.sort();
        good.sort();
        let rate_at = |end: i64| {
            let start = end.saturating_sub(within);
            let inside = |v: &[Stamp]| {
                v.iter()
                    .filter(|(at, _, _)| *at > start && *at <= end)
                    .count() as u64
            };
            let (bad, ok) = (inside(&failed), inside(&good));
            let total = bad + ok;
            (
                total >= threshold && bad as f64 * 100.0 > percent * total as f64,
                bad,
                total,
            )
        };
        for i in 0..failed.len() {
            let (at, seq, tenant) = &failed[i];
            if *seq < w.quarantine.0 {
                continue;
            }
            let (over, bad, total) = rate_at(*at);
            let before = i > 0 && rate_at(failed[i - 1].0).0;
            if over && !before {
                let place = SubjectKey::place(tenant.clone(), tenant.clone().unwrap_or_default());
                out.push(Finding::new(
                    rule,
                    &place,
                    Vec::new(),
                    Vec::new(),
                    Some(format!(
                        "{t}: {bad} of {total} quarantined in the window ending {}",
                        sealog_model::time::format_micros(*at)
                    )),
                ));
            }
        }
    }
    Ok(out)
}
