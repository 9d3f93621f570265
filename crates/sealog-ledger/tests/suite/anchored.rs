//! The quarantine log is vouched for through the canonical log: each canonical checkpoint
//! carries the quarantine log's newest signed head, so a quarantine log rewritten and signed
//! again with its own key (which lives in the data directory) no longer verifies.

use std::path::Path;

use sealog_ledger::{Ledger, VerifyOptions};
use serde_json::{Value, json};

use crate::support::*;

fn unknown(id: &str) -> Value {
    json!({
        "specversion": "1.0", "id": id, "source": "test", "type": "x.unknown",
        "time": "2026-01-01T00:00:00Z", "subject": "s1", "data": {"n": id},
    })
}

/// What verify says of the quarantine log's anchoring, or why it failed.
fn verify(dir: &Path) -> Result<String, String> {
    Ledger::verify(dir, &VerifyOptions::default())
        .map(|(_, q)| {
            q.into_iter()
                .flat_map(|q| q.files)
                .filter(|(f, _)| f == "anchored in the canonical log")
                .map(|(_, what)| what)
                .collect()
        })
        .map_err(|f| f.to_string())
}

fn statuses(ledger: &Ledger, events: &[Value]) -> Vec<String> {
    ingest(ledger, events)
        .iter()
        .map(|r| r.status().to_string())
        .collect()
}

#[test]
fn a_quarantine_log_rewritten_and_signed_again_is_found_through_the_canonical_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let ledger = open(&dir);
    assert_eq!(
        statuses(&ledger, &[decision("d-1", "run-1"), unknown("q-1")]),
        ["appended", "quarantined"]
    );
    ledger.close().unwrap();
    // What a rewrite starts from: the same keys, the same first record.
    let other = tmp.path().join("other");
    sealog_testkit::files::copy_dir(&dir, &other);

    let ledger = open(&dir);
    assert_eq!(statuses(&ledger, &[unknown("q-2")]), ["quarantined"]);
    assert_eq!(statuses(&ledger, &[decision("d-2", "run-1")]), ["appended"]);
    ledger.close().unwrap();
    let canonical = sealog_model::Layout::new(&dir).canonical();
    let latest = std::fs::read_to_string(canonical.latest_checkpoint()).unwrap();
    assert!(latest.contains("\nquarantine 2 "), "{latest}");
    let anchored = verify(&dir).unwrap();
    assert!(anchored.contains("the newest of 2 records"), "{anchored}");

    let rewritten = open(&other);
    assert_eq!(
        statuses(&rewritten, &[unknown("q-2-other")]),
        ["quarantined"]
    );
    rewritten.close().unwrap();
    verify(&other).expect("a quarantine log that agrees with itself");

    // The quarantine log swapped for the one signed again with the same key.
    let q = sealog_model::Layout::new(&dir).quarantine();
    let q_other = sealog_model::Layout::new(&other).quarantine();
    let root = |l: &sealog_model::LogLayout| l.root().to_path_buf();
    std::fs::remove_dir_all(root(&q)).unwrap();
    sealog_testkit::files::copy_dir(&root(&q_other), &root(&q));
    let e = verify(&dir).expect_err("a rewritten quarantine log");
    assert!(e.contains("quarantine log"), "{e}");
    assert!(e.contains("the quarantine head the canonical log's"), "{e}");

    // Removed altogether: found too.
    std::fs::remove_dir_all(root(&q)).unwrap();
    let e = verify(&dir).expect_err("a removed quarantine log");
    assert!(e.contains("the quarantine log was removed"), "{e}");
}
