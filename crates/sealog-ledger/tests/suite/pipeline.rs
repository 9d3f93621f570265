//! The ingest pipeline end to end: every reason code from one table, races between
//! duplicates and corrections, and a large mixed batch where nothing is lost.

use crate::support;

use std::collections::HashMap;
use std::sync::Arc;

use sealog_ledger::{IngestResult, Ledger, Undeclared, VerifyOptions, View};
use serde_json::{Value, json};
use support::*;

#[test]
fn every_reason_code_from_one_table() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let base = one(&ledger, &decision("d1", "run_1"));
    let mut fixed = decision("d1", "run_1");
    fixed["data"]["decision"]["decision_outcome"] = json!("REVIEW");
    fixed["supersedes"] = base["record_id"].clone();
    assert_eq!(one(&ledger, &fixed)["status"], "appended");

    let with = |f: &dyn Fn(&mut Value)| {
        let mut e = decision("d1", "run_1");
        e["data"]["decision"]["decision_outcome"] = json!("DECLINE");
        f(&mut e);
        e
    };
    let table: Vec<(&str, Value)> = vec![
        (
            "INCOMPLETE_PROVENANCE",
            with(&|e| {
                e["data"]["df_provenance"]
                    .as_object_mut()
                    .unwrap()
                    .remove("df_policy_ref");
            }),
        ),
        (
            "SCHEMA_VIOLATION",
            with(&|e| e["data"]["ieg"]["used"] = json!("yes")),
        ),
        (
            "UNKNOWN_EVENT_TYPE",
            with(&|e| e["type"] = json!("decision-log.unheard_of")),
        ),
        (
            "FORBIDDEN_FIELD",
            with(&|e| e["data"]["raw_event"] = json!("…")),
        ),
        ("MISSING_SUPERSEDES_LINK", with(&|_| {})),
        (
            "INVALID_SUPERSEDES_LINK",
            with(&|e| e["supersedes"] = json!(format!("sha256:{}", "1".repeat(64)))),
        ),
        (
            "STALE_SUPERSEDES_LINK",
            with(&|e| e["supersedes"] = base["record_id"].clone()),
        ),
    ];
    for (code, ev) in &table {
        let r = one(&ledger, ev);
        assert_eq!(r["status"], "quarantined", "{code}: {r}");
        assert_eq!(r["reason_code"], *code, "{r}");
        let q = quarantine(&ledger, &[("reason", code)]);
        assert_eq!(q.len(), 1, "{code} is queryable by reason");
        assert_eq!(q[0]["record_id"], r["quarantine_id"]);
        assert_eq!(q[0]["data"]["event_type"], ev["type"]);
    }
    assert_eq!(ledger.len(), 2, "nothing of the table is canonical");
    // Quarantine records are append-only and dedupe like events: the same failure again is
    // the same quarantine record.
    let again = one(&ledger, &table[0].1);
    assert_eq!(
        again["quarantine_id"],
        quarantine(&ledger, &[("reason", table[0].0)])[0]["record_id"]
    );
    assert_eq!(ledger.quarantine_len(), table.len() as u64);
    // The quarantine log has its own tree and signed checkpoints, verified apart.
    ledger.close().unwrap();
    let (canonical, quarantine) = Ledger::verify(dir.path(), &VerifyOptions::default()).unwrap();
    assert_eq!((canonical.records, canonical.signed_records), (2, 2));
    let quarantine = quarantine.expect("a quarantine log");
    let n = table.len() as u64;
    assert_eq!((quarantine.records, quarantine.signed_records), (n, n));
    assert_ne!(
        quarantine.verifier, canonical.verifier,
        "each log has its own key"
    );
    // Progress counts both logs together: it never goes back, and it ends at every record
    // and every byte of both logs' segments.
    let seen = std::cell::RefCell::new(Vec::new());
    let progress = |records: u64, bytes: u64| seen.borrow_mut().push((records, bytes));
    let opts = VerifyOptions {
        progress: Some(&progress),
        ..VerifyOptions::default()
    };
    Ledger::verify(dir.path(), &opts).unwrap();
    let seen = seen.into_inner();
    assert!(
        seen.windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1),
        "{seen:?}"
    );
    let layout = sealog_model::Layout::new(dir.path());
    let segment_bytes: u64 = [
        layout.canonical().segments(),
        layout.quarantine().segments(),
    ]
    .iter()
    .flat_map(|d| std::fs::read_dir(d).unwrap())
    .map(|e| e.unwrap().metadata().unwrap().len())
    .sum();
    assert_eq!(seen.last(), Some(&(2 + n, segment_bytes)));
}

#[test]
fn racing_first_records_of_one_decision_have_exactly_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(open(dir.path()));
    let out: Vec<Value> = race(&ledger, 8, |i| {
        let mut e = decision("d-race", "run_1");
        e["data"]["decision"]["decision_outcome"] = json!(format!("OUTCOME_{}", i % 4));
        vec![e]
    })
    .iter()
    .map(|r| r[0].to_json())
    .collect();
    let appended: Vec<&Value> = out.iter().filter(|r| r["status"] == "appended").collect();
    assert_eq!(appended.len(), 1, "{out:?}");
    let winner = appended[0];
    for r in &out {
        match r["status"].as_str().unwrap() {
            "appended" => {}
            // Same outcome as the winner: the same record, so a duplicate of it.
            "duplicate" => assert_eq!(r["seq"], winner["seq"]),
            "quarantined" => assert_eq!(r["reason_code"], "MISSING_SUPERSEDES_LINK"),
            other => panic!("unexpected {other}: {r}"),
        }
    }
    assert_eq!(ledger.len(), 1);
    assert_eq!(
        records(&ledger, &[("decision_id", "d-race")], View::Current).len(),
        1
    );
}

#[test]
fn ten_thousand_mixed_events_each_get_exactly_one_result_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let mut raws: Vec<Vec<u8>> = Vec::new();
    let mut kinds: Vec<&str> = Vec::new();
    for i in 0..10_000usize {
        let (kind, bytes) = match i % 10 {
            0 => ("not_json", b"{\"id\": oops".to_vec()),
            1 => {
                let mut e = decision(&format!("d{}", i - 1), "run_m");
                e["data"]["features"]
                    .as_object_mut()
                    .unwrap()
                    .remove("feature_snapshot_hash");
                ("incomplete", serde_json::to_vec(&e).unwrap())
            }
            2 => {
                let mut e = decision(&format!("u{i}"), "run_m");
                e["type"] = json!("nobody.declares_this");
                ("unknown", serde_json::to_vec(&e).unwrap())
            }
            9 => (
                "dup",
                serde_json::to_vec(&decision(&format!("d{}", i - 4), "run_m")).unwrap(),
            ),
            4 => {
                let mut e = example("knowledge.chunk_created", 0);
                e["id"] = json!(format!("k{i}"));
                e["data"]["resourceId"] = json!(format!("chunk-{i}"));
                ("good", serde_json::to_vec(&e).unwrap())
            }
            _ => (
                "good",
                serde_json::to_vec(&decision(&format!("d{i}"), "run_m")).unwrap(),
            ),
        };
        kinds.push(kind);
        raws.push(bytes);
    }
    // Several chunks, as a client sending batches would.
    let mut results: Vec<IngestResult> = Vec::new();
    for chunk in raws.chunks(1_000) {
        results.extend(ingest_raw(&ledger, chunk));
    }
    assert_eq!(results.len(), raws.len());
    let mut counts: HashMap<(&str, &str), usize> = HashMap::new();
    for (k, r) in kinds.iter().zip(&results) {
        *counts.entry((k, r.status())).or_default() += 1;
    }
    assert_eq!(counts[&("not_json", "rejected")], 1000);
    assert_eq!(counts[&("incomplete", "quarantined")], 1000);
    assert_eq!(counts[&("unknown", "quarantined")], 1000);
    assert_eq!(
        counts.get(&("dup", "duplicate")).copied().unwrap_or(0),
        1000,
        "{counts:?}"
    );
    assert_eq!(counts[&("good", "appended")], 6000, "{counts:?}");
    assert_eq!(counts.len(), 5, "no other outcome: {counts:?}");

    let check = |ledger: &Ledger| {
        assert_eq!(ledger.len(), 6000);
        assert_eq!(ledger.quarantine_len(), 2000);
        for (r, raw) in results.iter().zip(&raws) {
            match r {
                IngestResult::Appended { seq, record_id } => {
                    let rec: Value =
                        serde_json::from_slice(&ledger.get(*seq).unwrap().unwrap()).unwrap();
                    assert_eq!(rec["record_id"], json!(record_id.to_string()));
                    let sent: Value = serde_json::from_slice(raw).unwrap();
                    assert_eq!(rec["id"], sent["id"]);
                }
                IngestResult::Quarantined { quarantine_id, .. } => {
                    let sent: Value = serde_json::from_slice(raw).unwrap();
                    let found = quarantine(ledger, &[("id", sent["id"].as_str().unwrap())]);
                    let ids: Vec<&Value> = found.iter().map(|q| &q["record_id"]).collect();
                    assert_eq!(ids, [&json!(quarantine_id.to_string())]);
                }
                _ => {}
            }
        }
    };
    check(&ledger);
    drop(ledger);
    check(&open(dir.path()));
}

#[test]
fn undeclared_types_are_accepted_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let ev = json!({"id": "x", "source": "s", "type": "custom.thing", "time": "2026-01-03T12:00:00Z",
                    "tenant": "t", "data": {"k": 1}});
    {
        let ledger = open(dir.path());
        assert_eq!(one(&ledger, &ev)["reason_code"], "UNKNOWN_EVENT_TYPE");
    }
    let ledger = open_with(dir.path(), Undeclared::Accept);
    assert_eq!(one(&ledger, &ev)["status"], "appended");
    // Declared types still go through their pack.
    let mut bad = decision("d", "r");
    bad["data"].as_object_mut().unwrap().remove("ieg");
    assert_eq!(one(&ledger, &bad)["reason_code"], "INCOMPLETE_PROVENANCE");
}

#[test]
fn a_user_pack_adds_types_and_axes_and_reindexes_old_records() {
    let dir = tempfile::tempdir().unwrap();
    let packs_dir = tempfile::tempdir().unwrap();
    let write_pack = |axis_pointer: &str| {
        std::fs::write(
            packs_dir.path().join("manifest.json"),
            json!({"pack": "shop", "types": {"shop.refund": {
                "schema": "refund.schema.json",
                "required": ["/data/order_id", "/data/amount"],
                "subject": "/data/order_id",
                "axes": [{"name": "refund_reason", "pointer": axis_pointer}]}}})
            .to_string(),
        )
        .unwrap();
        std::fs::write(
            packs_dir.path().join("refund.schema.json"),
            json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                   "properties": {"amount": {"type": "integer", "minimum": 1}}})
            .to_string(),
        )
        .unwrap();
    };
    let open_with_pack = || {
        let packs = sealog_packs::Packs::load(&[packs_dir.path()]).unwrap();
        Ledger::open(dir.path(), config(packs, Undeclared::Quarantine)).unwrap()
    };
    write_pack("/data/why");
    let refund = json!({"id": "r1", "source": "shop", "type": "shop.refund", "time": "2026-01-03T12:00:00Z",
                        "tenant": "t", "data": {"order_id": "o-1", "amount": 5, "why": "damaged", "code": "D1"}});
    let ledger = open_with_pack();
    assert_eq!(one(&ledger, &refund)["status"], "appended");
    let mut zero = refund.clone();
    zero["data"]["amount"] = json!(0);
    let r = one(&ledger, &zero);
    assert_eq!(r["reason_code"], "SCHEMA_VIOLATION");
    assert_eq!(r["violations"][0]["pointer"], "/data/amount", "{r}");
    assert_eq!(
        records(&ledger, &[("refund_reason", "damaged")], View::History).len(),
        1
    );
    assert_eq!(
        records(&ledger, &[("subject", "o-1")], View::History).len(),
        1
    );
    drop(ledger);
    // The pack's axis now reads another field: the index follows on the next open.
    write_pack("/data/code");
    let ledger = open_with_pack();
    assert_eq!(
        records(&ledger, &[("refund_reason", "D1")], View::History).len(),
        1
    );
    assert_eq!(
        records(&ledger, &[("refund_reason", "damaged")], View::History).len(),
        0
    );
}
