//! Shared by the ledger's tests: a ledger in a temp dir with the built-in packs, the
//! example events shipped in `examples/events.ndjson`, and decision records built from them.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;

use sealog_ledger::{
    Author, Durability, IngestResult, Ledger, LedgerConfig, Page, Query, StoreConfig, Undeclared,
    View,
};
use sealog_packs::Packs;
use serde_json::{Value, json};

pub(crate) fn config(packs: Packs, undeclared: Undeclared) -> LedgerConfig {
    LedgerConfig {
        store: StoreConfig {
            durability: Durability::Os,
            memtable_records_max: 64,
            ..StoreConfig::default()
        },
        packs,
        undeclared,
    }
}

/// A ledger with the built-in packs that quarantines undeclared types.
pub(crate) fn open(dir: &Path) -> Ledger {
    open_with(dir, Undeclared::Quarantine)
}

pub(crate) fn open_with(dir: &Path, undeclared: Undeclared) -> Ledger {
    Ledger::open(dir, config(Packs::builtin(), undeclared))
        .unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

/// A ledger whose memtable holds four records, so reads and rules cross index runs and the
/// memtable alike.
pub(crate) fn open_small(dir: &Path, undeclared: Undeclared) -> Ledger {
    let mut config = config(Packs::builtin(), undeclared);
    config.store.memtable_records_max = 4;
    Ledger::open(dir, config).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

/// The n-th example event of a type.
pub(crate) fn example(event_type: &str, n: usize) -> Value {
    sealog_testkit::events::examples()
        .into_iter()
        .filter(|e| e["type"] == event_type)
        .nth(n)
        .unwrap_or_else(|| panic!("no example {n} of {event_type}"))
}

/// A complete decision record (Appendix A.1 shape) for decision `d` of run `run`.
pub(crate) fn decision(d: &str, run: &str) -> Value {
    let mut e = example("decision-log.audit_decision_record", 0);
    e["id"] = json!(d);
    e["subject"] = json!(d);
    e["tenant"] = json!(run);
    let data = &mut e["data"];
    for k in ["decision_id", "request_id", "event_id"] {
        data[k] = json!(d);
    }
    data["context_pins"]["run_id"] = json!(run);
    e
}

pub(crate) fn ingest(ledger: &Ledger, events: &[Value]) -> Vec<IngestResult> {
    ingest_as(ledger, events, &Author::ANYONE)
}

pub(crate) fn ingest_as(
    ledger: &Ledger,
    events: &[Value],
    author: &Author<'_>,
) -> Vec<IngestResult> {
    let raws: Vec<Vec<u8>> = events
        .iter()
        .map(|e| serde_json::to_vec(e).unwrap())
        .collect();
    ingest_raw_as(ledger, &raws, author)
}

pub(crate) fn ingest_raw(ledger: &Ledger, raws: &[Vec<u8>]) -> Vec<IngestResult> {
    ingest_raw_as(ledger, raws, &Author::ANYONE)
}

fn ingest_raw_as(ledger: &Ledger, raws: &[Vec<u8>], author: &Author<'_>) -> Vec<IngestResult> {
    let raws: Vec<_> = raws.iter().map(|r| Ok(r.as_slice())).collect();
    let out = ledger.ingest(&raws, author).unwrap();
    assert_eq!(out.len(), raws.len(), "one result per event");
    out
}

/// What became of one event, ingested alone.
pub(crate) fn result_of(ledger: &Ledger, event: &Value) -> IngestResult {
    ingest(ledger, std::slice::from_ref(event)).pop().unwrap()
}

/// The seq of an event that must have been appended.
pub(crate) fn appended_seq(r: &IngestResult) -> u64 {
    match r {
        IngestResult::Appended { seq, .. } => *seq,
        other => panic!("expected appended, got {}", other.to_json()),
    }
}

pub(crate) fn one(ledger: &Ledger, event: &Value) -> Value {
    ingest(ledger, std::slice::from_ref(event))[0].to_json()
}

/// Every record (or the first 10,000) matching `equals`, through a view.
pub(crate) fn matching(equals: &[(&str, &str)], view: View) -> Query {
    Query {
        equals: equals
            .iter()
            .map(|(a, v)| (a.to_string(), v.to_string()))
            .collect(),
        view,
        limit: 10_000,
        ..Query::default()
    }
}

/// Records matching `equals`, as JSON, through a view.
pub(crate) fn records(ledger: &Ledger, equals: &[(&str, &str)], view: View) -> Vec<Value> {
    values(ledger.query(&matching(equals, view)).unwrap())
}

/// Quarantine records matching `equals`, as JSON.
pub(crate) fn quarantine(ledger: &Ledger, equals: &[(&str, &str)]) -> Vec<Value> {
    values(
        ledger
            .quarantine_query(&matching(equals, View::History))
            .unwrap(),
    )
}

pub(crate) fn values(page: Page) -> Vec<Value> {
    page.records
        .iter()
        .map(|(_, b)| serde_json::from_slice(b).unwrap())
        .collect()
}

pub(crate) fn seqs(page: Page) -> Vec<u64> {
    page.records.iter().map(|r| r.0).collect()
}

pub(crate) fn rid(result: &Value) -> String {
    result["record_id"]
        .as_str()
        .expect("a record_id")
        .to_string()
}

/// Ingests `events(i)` from `threads` threads released together; each thread's results, in
/// thread order. The ledger's admission rules must give these racing appends one order.
pub fn race(
    ledger: &std::sync::Arc<Ledger>,
    threads: usize,
    events: impl Fn(usize) -> Vec<Value> + Send + Sync + 'static,
) -> Vec<Vec<IngestResult>> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(threads));
    let events = std::sync::Arc::new(events);
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (ledger, barrier, events) = (ledger.clone(), barrier.clone(), events.clone());
            std::thread::spawn(move || {
                let batch = events(i);
                barrier.wait();
                ingest(&ledger, &batch)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}
