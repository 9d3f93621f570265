//! Index-backed reads. Every query walks one index in seq order — the rarest equality key,
//! or a time window — and checks the other predicates against the index too, so its cost is
//! O(log n) per run plus the records it touches, never a scan of the log.

use std::sync::atomic::Ordering;

use sealog_model::Posting;

use crate::segment;
use crate::{Shared, StoreError};

/// Largest page a query may ask for.
pub const LIMIT_MAX: usize = 10_000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// (axis, value) pairs that must all hold; see `sealog_model::record::BUILTIN_AXES`.
    pub equals: Vec<(String, String)>,
    /// Event time window `[from, to)`, nanoseconds.
    pub event_from: Option<i64>,
    pub event_to: Option<i64>,
    /// Ingest time window `[from, to)`, nanoseconds.
    pub ingest_from: Option<i64>,
    pub ingest_to: Option<i64>,
    /// Only records with seq greater than this (the cursor of the previous page).
    pub after: Option<u64>,
    /// Only the log as it was at this size (records `0..size`).
    pub as_of_size: Option<u64>,
    /// The current view: only records no record (within `as_of_size`) supersedes.
    pub current_only: bool,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub records: Vec<(u64, Vec<u8>)>,
    /// The cursor for the next page, when there may be one.
    pub next_after: Option<u64>,
}

pub(crate) fn read_record(shared: &Shared, seq: u64, buf: &mut Vec<u8>) -> Result<(), StoreError> {
    let pos = shared.positions.get(seq)?;
    let file = {
        let segs = shared.segments.read().expect("segments lock");
        let i = segs.partition_point(|(first, _)| *first <= seq) - 1;
        segs[i].1.clone()
    };
    segment::read_frame_at(&file, pos.offset, buf)
        .map_err(|e| StoreError::Corrupted(format!("record {seq} at offset {}: {e:?}", pos.offset)))
}

pub(crate) fn run(shared: &Shared, q: &Query) -> Result<Page, StoreError> {
    if q.limit == 0 || q.limit > LIMIT_MAX {
        return Err(StoreError::InvalidArgument(format!(
            "limit must be between 1 and {LIMIT_MAX}"
        )));
    }
    let committed = shared.committed.load(Ordering::Acquire);
    let end = q.as_of_size.map_or(committed, |s| s.min(committed));
    let mut from = q.after.map_or(0, |a| a.saturating_add(1));
    let mut end = end;
    // Ingest time grows with seq: a window is a seq range.
    if let Some(t) = q.ingest_from {
        from = from.max(shared.positions.first_ingested_at_or_after(t, end)?);
    }
    if let Some(t) = q.ingest_to {
        end = end.min(shared.positions.first_ingested_at_or_after(t, end)?);
    }
    let keys: Vec<Posting> = q
        .equals
        .iter()
        .map(|(a, v)| sealog_model::record::posting(a, v))
        .collect();
    let in_window = |seq: u64| -> Result<bool, StoreError> {
        if q.event_from.is_none() && q.event_to.is_none() {
            return Ok(true);
        }
        let t = shared.positions.get(seq)?.event_ns;
        Ok(q.event_from.is_none_or(|f| t >= f) && q.event_to.is_none_or(|e| t < e))
    };

    // Each hit with its bytes when the current view already had to read them.
    let mut hits: Vec<(u64, Option<Vec<u8>>)> = Vec::with_capacity(q.limit + 1);
    let index = shared.index.read().expect("index lock");
    // `None`: not in the view; `Some(bytes)`: in it, with the record if it was read.
    let current = |seq: u64| -> Result<Option<Option<Vec<u8>>>, StoreError> {
        if !q.current_only {
            return Ok(Some(None));
        }
        let mut buf = Vec::new();
        read_record(shared, seq, &mut buf)?;
        let rid = record_id_of(&buf)
            .ok_or_else(|| StoreError::Corrupted(format!("record {seq} has no record_id")))?;
        let key = sealog_model::record::supersedes_posting(&rid);
        Ok(index
            .postings(&key, 0, end, 1)
            .is_empty()
            .then_some(Some(buf)))
    };
    if let Some(rarest) = keys.iter().min_by_key(|k| index.count(k)) {
        // Walk the rarest key's postings, checking the others by membership.
        let mut cursor = from;
        'pages: while hits.len() <= q.limit && cursor < end {
            let chunk = index.postings(rarest, cursor, end, 1024);
            let Some(&last) = chunk.last() else { break };
            for seq in chunk {
                if !(keys.iter().all(|k| k == rarest || index.contains(k, seq)) && in_window(seq)?)
                {
                    continue;
                }
                if let Some(bytes) = current(seq)? {
                    hits.push((seq, bytes));
                    if hits.len() > q.limit {
                        break 'pages;
                    }
                }
            }
            cursor = last + 1;
        }
    } else {
        let candidates: Box<dyn Iterator<Item = u64>> =
            if q.event_from.is_some() || q.event_to.is_some() {
                let all = index.time_range(
                    q.event_from.unwrap_or(i64::MIN),
                    q.event_to.unwrap_or(i64::MAX),
                );
                Box::new(all.into_iter().filter(|s| (from..end).contains(s)))
            } else {
                Box::new(from..end)
            };
        for seq in candidates {
            if hits.len() > q.limit {
                break;
            }
            if let Some(bytes) = current(seq)? {
                hits.push((seq, bytes));
            }
        }
    }
    drop(index);

    let more = hits.len() > q.limit;
    hits.truncate(q.limit);
    let mut records = Vec::with_capacity(hits.len());
    for (seq, bytes) in hits {
        let bytes = match bytes {
            Some(b) => b,
            None => {
                let mut buf = Vec::new();
                read_record(shared, seq, &mut buf)?;
                buf
            }
        };
        records.push((seq, bytes));
    }
    let next_after = if more {
        records.last().map(|r| r.0)
    } else {
        None
    };
    Ok(Page {
        records,
        next_after,
    })
}

/// The `record_id` of a stored record. Records are canonical JSON whose top-level members
/// are sorted, so the top-level `record_id` is found by parsing, not by searching bytes.
fn record_id_of(record: &[u8]) -> Option<sealog_model::RecordId> {
    let json = sealog_model::json::Json::parse(record).ok()?;
    sealog_model::RecordId::parse(json.get("record_id")?.as_str()?)
}
