//! Queries by axis and window, through a view: the store scans its index under the keys
//! the axes hash to; the current view then drops every record a later one supersedes (as of
//! the query's size), page by page, so it too costs the records it touches.
//!
//! Two clocks: `as_of_size` cuts the log (what it knew), `valid_at` the world by the events'
//! own time. On the event-time clock a record counts from its own time, and a chain's head
//! from the time its chain starts (a correction restates its target's moment).

use crate::keys::Deriver;
use sealog_model::RecordId;
use sealog_store::{LIMIT_MAX, LogRead, Page, Scan, StoreError};

use crate::facts::{Facts, chain_start};
use crate::keys;

/// Which records a query sees of each supersedes chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// Every canonical record, in append order.
    #[default]
    History,
    /// Per chain, only its head: records nothing (as of the query's size) supersedes.
    Current,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// (axis, value) pairs that must all hold: an envelope axis or one a pack declares.
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
    /// Only the world as the events describe it at this event time (ns): history, the
    /// records whose time is at or before it; current, the chain heads whose chain starts at
    /// or before it.
    pub valid_at: Option<i64>,
    pub view: View,
    pub limit: usize,
}

impl Query {
    fn scan(&self) -> Scan {
        Scan {
            keys: self.equals.iter().map(|(a, v)| keys::key(a, v)).collect(),
            event_from: self.event_from,
            event_to: self.event_to,
            ingest_from: self.ingest_from,
            ingest_to: self.ingest_to,
            after: self.after,
            below: self.as_of_size,
            limit: self.limit,
            skip_leaf_check: false,
        }
    }
}

/// The size of the canonical log a read sees: `as_of_size`, or the whole log. A size past
/// the log's end is refused: the log never had it, so there is no such moment to show, and
/// answering with the log as it is now would pass that off as one.
pub(crate) fn end_of(log: &dyn LogRead, as_of_size: Option<u64>) -> Result<u64, StoreError> {
    let len = log.len();
    match as_of_size {
        Some(size) if size > len => Err(StoreError::PastTheEnd { size, len }),
        Some(size) => Ok(size),
        None => Ok(len),
    }
}

pub(crate) fn quarantine(log: &dyn LogRead, q: &Query) -> Result<Page, StoreError> {
    log.scan(&q.scan())
}

/// The end of an event-time window that keeps what happened at or before `t`.
fn until(to: Option<i64>, t: i64) -> Option<i64> {
    let end = t.saturating_add(1);
    Some(to.map_or(end, |to| to.min(end)))
}

pub(crate) fn canonical(log: &dyn LogRead, packs: &Deriver, q: &Query) -> Result<Page, StoreError> {
    canonical_reading(log, packs, q, false)
}

/// [`canonical`]; with `unchecked`, records are read without comparing each with the stored
/// tree, for a caller that proves every record it keeps by reading it again.
pub(crate) fn canonical_reading(
    log: &dyn LogRead,
    packs: &Deriver,
    q: &Query,
    unchecked: bool,
) -> Result<Page, StoreError> {
    if let Some(size) = q.as_of_size {
        // The log's length is a database round trip on PostgreSQL: asked for only to refuse
        // a cut past it, or to cut the current view.
        end_of(log, Some(size))?;
    }
    let mut scan = q.scan();
    scan.skip_leaf_check = unchecked;
    if q.view == View::History || q.limit == 0 || q.limit > LIMIT_MAX {
        if let Some(t) = q.valid_at {
            scan.event_to = until(scan.event_to, t);
        }
        return log.scan(&scan);
    }
    let end = q.as_of_size.unwrap_or_else(|| log.len());
    scan.below = Some(end);
    let Some(t) = q.valid_at else {
        let hits = heads(log, scan, end, q.limit, |_, _| Ok(true))?;
        return Ok(page_of(hits, q.limit));
    };
    // Heads of chains that start by `t`: among records of their own time by `t` (a
    // correction there must still start by `t`), and among corrections dated later, whose
    // chains may start earlier. The two windows are disjoint; both are index walks.
    let starts_by = |seq: u64, bytes: &[u8]| -> Result<bool, StoreError> {
        let f = Facts::of(packs, seq, bytes)?;
        Ok(f.supersedes.is_none() || chain_start(log, packs, seq, &f)?.time_ns <= t)
    };
    let on_time = Scan {
        event_to: until(scan.event_to, t),
        ..scan.clone()
    };
    let after_t = t.saturating_add(1);
    let mut later = Scan {
        event_from: Some(scan.event_from.map_or(after_t, |f| f.max(after_t))),
        ..scan
    };
    later.keys.push(keys::correction());
    later.keys.sort_unstable();
    let mut hits = heads(log, on_time, end, q.limit, starts_by)?;
    hits.extend(heads(log, later, end, q.limit, |seq, bytes| {
        let f = Facts::of(packs, seq, bytes)?;
        Ok(f.supersedes.is_some() && chain_start(log, packs, seq, &f)?.time_ns <= t)
    })?);
    hits.sort_unstable_by_key(|h| h.0);
    Ok(page_of(hits, q.limit))
}

/// Up to `limit + 1` records of `scan` that nothing below `end` supersedes and `keep` keeps,
/// in seq order: one more than a page, to know whether another follows.
fn heads(
    log: &dyn LogRead,
    scan: Scan,
    end: u64,
    limit: usize,
    keep: impl Fn(u64, &[u8]) -> Result<bool, StoreError>,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let mut hits: Vec<(u64, Vec<u8>)> = Vec::with_capacity(limit + 1);
    let mut s = Scan {
        limit: (limit + 1).clamp(64, LIMIT_MAX),
        ..scan
    };
    loop {
        let page = log.scan(&s)?;
        let superseding: Vec<_> = page
            .records
            .iter()
            .map(|(seq, bytes)| {
                record_id_of(bytes)
                    .map(|id| keys::supersedes(&id))
                    .ok_or_else(|| {
                        StoreError::Corrupted(format!("record {seq} has no readable record_id"))
                    })
            })
            .collect::<Result<_, _>>()?;
        // Whether anything supersedes each record of the page, asked at once.
        let superseded = log.firsts_with(&superseding, end)?;
        for ((seq, bytes), by) in page.records.into_iter().zip(superseded) {
            if by.is_none() && keep(seq, &bytes)? {
                hits.push((seq, bytes));
                if hits.len() > limit {
                    return Ok(hits);
                }
            }
        }
        match page.next_after {
            Some(a) => s.after = Some(a),
            None => return Ok(hits),
        }
    }
}

fn page_of(mut hits: Vec<(u64, Vec<u8>)>, limit: usize) -> Page {
    let more = hits.len() > limit;
    hits.truncate(limit);
    let next_after = if more { hits.last().map(|r| r.0) } else { None };
    Page {
        records: hits,
        next_after,
    }
}

/// The `record_id` of a stored record. Its members are sorted, but a body may hold the same
/// text, so the top-level member is found by parsing, not by searching bytes.
fn record_id_of(record: &[u8]) -> Option<RecordId> {
    #[derive(serde::Deserialize)]
    struct Id<'a> {
        #[serde(borrow)]
        record_id: &'a str,
    }
    let id: Id<'_> = serde_json::from_slice(record).ok()?;
    RecordId::parse(id.record_id)
}
