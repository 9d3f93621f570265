//! Queries by axis and window, through a view: the store scans its index under the keys
//! the axes hash to; the current view then drops every record a later one supersedes (as of
//! the query's size), page by page, so it too costs the records it touches.

use sealog_model::RecordId;
use sealog_store::{LIMIT_MAX, LogRead, Page, Scan, StoreError};

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
        }
    }
}

pub(crate) fn quarantine(log: &dyn LogRead, q: &Query) -> Result<Page, StoreError> {
    log.scan(&q.scan())
}

pub(crate) fn canonical(log: &dyn LogRead, q: &Query) -> Result<Page, StoreError> {
    let scan = q.scan();
    if q.view == View::History {
        return log.scan(&scan);
    }
    if q.limit == 0 || q.limit > LIMIT_MAX {
        return log.scan(&scan);
    }
    let end = q.as_of_size.map_or(log.len(), |s| s.min(log.len()));
    let mut hits: Vec<(u64, Vec<u8>)> = Vec::with_capacity(q.limit + 1);
    let mut s = Scan {
        below: Some(end),
        limit: (q.limit + 1).clamp(64, LIMIT_MAX),
        ..scan
    };
    loop {
        let page = log.scan(&s)?;
        for (seq, bytes) in page.records {
            let id = record_id_of(&bytes).ok_or_else(|| {
                StoreError::Corrupted(format!("record {seq} has no readable record_id"))
            })?;
            if log.first_with(&keys::supersedes(&id), end)?.is_none() {
                hits.push((seq, bytes));
                if hits.len() > q.limit {
                    break;
                }
            }
        }
        match page.next_after {
            Some(a) if hits.len() <= q.limit => s.after = Some(a),
            _ => break,
        }
    }
    let more = hits.len() > q.limit;
    hits.truncate(q.limit);
    let next_after = if more { hits.last().map(|r| r.0) } else { None };
    Ok(Page {
        records: hits,
        next_after,
    })
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
