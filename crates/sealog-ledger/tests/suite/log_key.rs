//! A key rotation stopped by a crash is finished, or dropped, by the next opening: a prepared
//! key a durable record names is handed over; one no record names is forgotten; a public key
//! file left naming the retired key is rewritten. Verify agrees each time.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sealog_ledger::{Author, IngestResult, LOG_KEY_ROTATED_TYPE, Ledger, VerifyOptions};
use sealog_merkle::note::Signer;
use serde_json::json;
use support::{decision, ingest, ingest_as, open};

fn vkey(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("keys/log.pub"))
        .unwrap()
        .trim()
        .to_string()
}

fn verify(dir: &Path) -> String {
    verify_from(dir, None)
}

/// What verify says of the key rotations, following the keys from `trusted` (by default the
/// directory's own key).
fn verify_from(dir: &Path, trusted: Option<&str>) -> String {
    let opts = VerifyOptions {
        key: trusted.map(str::to_string),
        ..VerifyOptions::default()
    };
    let (report, _) =
        Ledger::verify(dir, &opts).unwrap_or_else(|f| panic!("verify from {trusted:?}: {f}"));
    report
        .files
        .iter()
        .find(|(k, _)| k == "key rotations")
        .map(|(_, v)| v.clone())
        .unwrap()
}

/// What a crash right after the record leaves: the next key kept, the record durable.
fn prepared_and_announced(dir: &Path, announce: bool) -> String {
    let ledger = open(dir);
    ingest(&ledger, &[decision("d-1", "r-1"), decision("d-2", "r-1")]);
    let old = ledger.verifier_key();
    let origin = old.split('+').next().unwrap().to_string();
    let next = Signer::from_seed(&origin, [0x17; 32]).unwrap();
    let path = dir.join("keys/log.key.next");
    std::fs::write(&path, format!("{}\n", next.to_skey())).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let new = next.verifier().to_vkey();
    if announce {
        let record = json!({
            "specversion": "1.0", "id": "log-key:test", "source": "sealog-test",
            "type": LOG_KEY_ROTATED_TYPE, "time": "2026-12-01T00:00:00Z",
            "actor": {"type": "human", "id": "ops"},
            "data": {"old_verifier_key": old, "new_verifier_key": new},
        });
        let r = ingest_as(&ledger, &[record], &Author::Sealog);
        assert!(matches!(r[0], IngestResult::Appended { .. }), "{r:?}");
    }
    drop(ledger);
    new
}

#[test]
fn a_rotation_stopped_after_its_record_is_finished_on_opening() {
    let dir = tempfile::tempdir().unwrap();
    let new = prepared_and_announced(dir.path(), true);
    // Before the opening, verify sees the record with no hand-over yet.
    assert!(verify(dir.path()).contains("not handed over yet"));
    let ledger = open(dir.path());
    assert_eq!(ledger.verifier_key(), new);
    assert!(!dir.path().join("keys/log.key.next").exists());
    ingest(&ledger, &[decision("d-3", "r-1")]);
    ledger.close().unwrap();
    assert_eq!(vkey(dir.path()), new);
    assert!(verify(dir.path()).starts_with("1 key rotation(s), each announced"));
}

#[test]
fn a_prepared_key_no_record_names_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    prepared_and_announced(dir.path(), false);
    let before = vkey(dir.path());
    let ledger = open(dir.path());
    assert_eq!(ledger.verifier_key(), before);
    assert!(!dir.path().join("keys/log.key.next").exists());
    ledger.close().unwrap();
    assert_eq!(verify(dir.path()), "the log's key never changed");
}

/// An operator's act, for the rotations these tests make.
fn ops() -> sealog_ledger::Act<'static> {
    sealog_ledger::Act {
        actor: json!({"type": "human", "id": "ops"}),
        time: "2026-12-01T00:00:00Z".into(),
        source: "sealog-test",
    }
}

#[test]
fn a_public_key_left_naming_the_retired_key_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    ingest(&ledger, &[decision("d-1", "r-1")]);
    let old = ledger.verifier_key();
    let act = ops();
    let r = ledger.rotate_log_key(&act).unwrap();
    assert_eq!(r.old_key, old);
    ledger.close().unwrap();
    // The crash between the private key's rename and the public key's rewrite.
    std::fs::write(dir.path().join("keys/log.pub"), format!("{old}\n")).unwrap();
    let ledger = open(dir.path());
    assert_eq!(ledger.verifier_key(), r.new_key);
    ledger.close().unwrap();
    assert_eq!(vkey(dir.path()), r.new_key);
    assert!(verify(dir.path()).starts_with("1 key rotation(s)"));
}

/// Regression: verify following the keys forward from the first one stopped at the newest
/// checkpoint, so a rotation whose hand-over checkpoint (signed by both keys) was the newest
/// was "not followed by a checkpoint signed by both keys", and a second rotation still to be
/// handed over was compared with the first key rather than the key in force: both failed
/// `verify --verifier-key FIRST` after two rotations.
#[test]
fn two_rotations_verify_from_the_first_key_and_from_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    ingest(&ledger, &[decision("d-1", "r-1")]);
    let first = ledger.verifier_key();
    let act = ops();
    ledger.rotate_log_key(&act).unwrap();
    let second = ledger.rotate_log_key(&act).unwrap();
    assert_eq!(second.new_key, ledger.verifier_key());
    drop(ledger);
    let (one, two) = (Some(first.as_str()), Some(second.new_key.as_str()));
    for trusted in [None, one, Some(second.old_key.as_str()), two] {
        assert!(
            verify_from(dir.path(), trusted).starts_with("2 key rotation(s), each announced"),
            "from {trusted:?}"
        );
    }

    // A third announced but not handed over (the crash after its record): pending, from
    // every key.
    prepared_and_announced(dir.path(), true);
    for trusted in [None, one, two] {
        assert!(
            verify_from(dir.path(), trusted).contains("not handed over yet"),
            "from {trusted:?}"
        );
    }
    let ledger = open(dir.path());
    ledger.close().unwrap();
    for trusted in [None, one, two] {
        assert!(
            verify_from(dir.path(), trusted).starts_with("3 key rotation(s), each announced"),
            "from {trusted:?}"
        );
    }
}
