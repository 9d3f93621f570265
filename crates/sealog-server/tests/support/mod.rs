//! What the API tests share beyond the test kit: the answers of the API read as values, and
//! the log read back offline once the app is stopped, through the ledger rather than the
//! code under test.
// Each test binary compiles this module and uses its own part of it.
#![allow(dead_code)]

use std::path::Path;

use sealog_ledger::{
    LIMIT_MAX, Ledger, LedgerConfig, Packs, Query, StoreConfig, Undeclared, VerifyOptions,
};
use sealog_testkit::Api;
use sealog_testkit::{InProcess, Resp};
use serde_json::Value;

/// Posts one event and returns its single result (the request itself must succeed).
pub(crate) fn post_one(app: &InProcess, key: Option<&str>, event: &Value) -> Value {
    let r = app.post_json("/v1/events", key, event);
    assert_eq!(r.status, 200, "{}", r.text());
    let results = r.json()["results"].clone();
    assert_eq!(
        results.as_array().map(Vec::len),
        Some(1),
        "one result: {results}"
    );
    results[0].clone()
}

/// Every page of a records-shaped answer (`records`, `next_cursor`), followed to the end.
/// `path` already carries a query string.
pub(crate) fn all_pages(app: &InProcess, key: Option<&str>, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut next = path.to_string();
    loop {
        let r = app.get(&next, key);
        assert_eq!(r.status, 200, "{next}: {}", r.text());
        let page = r.json();
        out.extend(page["records"].as_array().expect("records").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => next = format!("{path}&cursor={c}"),
            None => return out,
        }
    }
}

/// One page of canonical records.
pub(crate) fn records(app: &InProcess, key: &str, query: &str) -> Vec<Value> {
    page(app, key, &format!("/v1/records?{query}"))
}

/// One page of quarantine records.
pub(crate) fn quarantine(app: &InProcess, key: &str, query: &str) -> Vec<Value> {
    page(app, key, &format!("/v1/quarantine?{query}"))
}

fn page(app: &InProcess, key: &str, path: &str) -> Vec<Value> {
    let r = app.get(path, Some(key));
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()["records"].as_array().expect("records").clone()
}

pub(crate) fn seqs(records: &[Value]) -> Vec<u64> {
    records
        .iter()
        .map(|r| r["seq"].as_u64().expect("a seq"))
        .collect()
}

/// The access record written for one response, found by its request id.
pub(crate) fn access_of<'a>(access: &'a [Value], resp: &Resp) -> &'a Value {
    let id = resp.header("x-request-id").expect("a request id");
    access
        .iter()
        .find(|a| a["data"]["request_id"] == id)
        .unwrap_or_else(|| panic!("no access record for request {id}"))
}

/// The event a stored record was made from: the record without the fields the server adds.
pub(crate) fn event_of(record: &Value) -> Value {
    let mut event = record.clone();
    let fields = event.as_object_mut().expect("a record is an object");
    for server_field in ["seq", "record_id", "ingested_at"] {
        assert!(
            fields.remove(server_field).is_some(),
            "no {server_field} in {record}"
        );
    }
    event
}

/// The ledger of a stopped app's directory, opened without its lock.
pub(crate) fn reopen(dir: &Path) -> Ledger {
    Ledger::open_read_only(
        dir,
        LedgerConfig {
            store: StoreConfig::default(),
            packs: Packs::builtin(),
            undeclared: Undeclared::Quarantine,
        },
    )
    .expect("reopen the ledger")
}

/// Every canonical record of a stopped app's directory, in seq order.
pub(crate) fn offline_records(dir: &Path) -> Vec<Value> {
    let ledger = reopen(dir);
    let mut q = Query {
        limit: LIMIT_MAX,
        ..Query::default()
    };
    let mut out = Vec::new();
    loop {
        let page = ledger.query(&q).expect("query the log");
        for (seq, bytes) in &page.records {
            let r: Value = serde_json::from_slice(bytes).expect("a record is JSON");
            assert_eq!(r["seq"].as_u64(), Some(*seq));
            out.push(r);
        }
        match page.next_after {
            Some(a) => q.after = Some(a),
            None => return out,
        }
    }
}

/// Both logs of a stopped app's directory verify offline against their signed checkpoints,
/// and the last checkpoint covers every record: a clean stop signs what it committed.
pub(crate) fn assert_verifies(dir: &Path) {
    let opts = VerifyOptions::default();
    let (canonical, quarantine) =
        Ledger::verify(dir, &opts).unwrap_or_else(|f| panic!("verify failed: {f}"));
    assert_eq!(canonical.signed_records, canonical.records);
    if let Some(q) = quarantine {
        assert_eq!(q.signed_records, q.records);
    }
}
