//! The key file against the log's key records, in process: once the log records that a key
//! existed, a deleted, emptied or damaged key file keeps the server closed (it does not
//! start, and says how to recover), and so does a file edited to revive a revoked key or to
//! widen one; recreating the file with `keys create` is the explicit way to start over; a
//! directory whose log has no key record still starts in open mode.

use crate::support;

use std::path::Path;

use sealog_ledger::Undeclared;
use sealog_server::keys::{self, KeySpec, Role};
use sealog_server::{App, ServerConfig};
use sealog_testkit::Api;
use sealog_testkit::events::event;
use sealog_testkit::{InProcess, tempdir};
use serde_json::Value;
use support::offline_records;

/// Starts the app on `dir` as `sealog serve` does, then stops it: the error it refused with.
fn start_error(dir: &Path) -> Option<String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let ledger = sealog_testkit::app::open_ledger(dir, Undeclared::Accept);
    rt.block_on(async {
        match App::new(&ServerConfig::default(), ledger).await {
            Ok(app) => {
                app.close().await.expect("close");
                None
            }
            Err(e) => Some(e.to_string()),
        }
    })
}

/// The keys of [`with_recorded_keys`]: secrets and ids.
struct Keys {
    admin: String,
    admin_id: String,
    writer_id: String,
    reader: String,
    reader_id: String,
}

/// A directory whose log records an admin key, a writer key of tenant `t1`, and a reader
/// key of `t1` that was revoked (the admin's use records them all).
fn with_recorded_keys(dir: &Path) -> Keys {
    let app = InProcess::start(dir);
    let (admin, admin_id) = app.create_key(&["admin"], None, None);
    let (_, writer_id) = app.create_key(&["writer"], Some("t1"), None);
    let (reader, reader_id) = app.create_key(&["reader"], Some("t1"), None);
    keys::revoke(dir, &reader_id, "tests", None).expect("revoke");
    let r = app.post_json(
        "/v1/events",
        Some(&admin),
        &event("e1", Some("t1"), "s", "t"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    app.stop();
    let recorded = offline_records(dir)
        .into_iter()
        .filter(|r| {
            r["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("audit.key_"))
        })
        .count();
    assert_eq!(recorded, 4, "three creations and a revocation");
    Keys {
        admin,
        admin_id,
        writer_id,
        reader,
        reader_id,
    }
}

fn assert_refused(dir: &Path, what: &str, says: &[&str]) {
    let err = start_error(dir).unwrap_or_else(|| panic!("{what}: the app started"));
    for s in ["refusing to start", "restore", "keys create --role admin"]
        .iter()
        .chain(says)
    {
        assert!(err.contains(s), "{what}: {s:?} not in {err}");
    }
}

#[test]
fn deleting_the_key_file_does_not_reopen_the_server() {
    let dir = tempdir();
    let k = with_recorded_keys(dir.path());
    let path = keys::file_path(dir.path());
    std::fs::remove_file(&path).expect("delete the key file");
    assert_refused(
        dir.path(),
        "deleted",
        &["missing or holds no key", "open mode"],
    );
    // Still refused the next time: nothing was written, nothing was reopened.
    assert!(start_error(dir.path()).is_some());
    assert!(!path.exists());

    // Starting over is explicit: a new key file, made with `keys create`. Only its key works.
    let new = keys::create(
        dir.path(),
        KeySpec {
            roles: vec![Role::Admin],
            ..KeySpec::default()
        },
        "operator",
    )
    .expect("create a key");
    let app = InProcess::start(dir.path());
    assert_eq!(app.get("/readyz", None).json()["auth"], "keys");
    assert_eq!(app.get("/v1/records?limit=1", None).status, 401);
    assert_eq!(app.get("/v1/records?limit=1", Some(&k.admin)).status, 401);
    assert_eq!(
        app.get("/v1/records?limit=1", Some(&new.secret)).status,
        200
    );
    app.stop();
    assert!(
        offline_records(dir.path()).iter().any(|r| {
            r["type"] == "audit.key_created" && r["data"]["key_id"] == new.record.id.as_str()
        }),
        "the new key is in the log"
    );
}

/// The key file of a directory as JSON, to write back edited.
struct KeyFile(Value);

impl KeyFile {
    fn read(dir: &Path) -> Self {
        let bytes = std::fs::read(keys::file_path(dir)).expect("the key file");
        KeyFile(serde_json::from_slice(&bytes).expect("JSON"))
    }

    /// The file's bytes after `edit`.
    fn edited(&self, edit: &dyn Fn(&mut Value)) -> Vec<u8> {
        let mut v = self.0.clone();
        edit(&mut v);
        serde_json::to_vec(&v).expect("JSON")
    }
}

fn index_of(file: &Value, id: &str) -> usize {
    file["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .position(|k| k["id"] == id)
        .expect("the key")
}

#[test]
fn a_damaged_key_file_never_falls_back_to_open_mode() {
    let dir = tempdir();
    with_recorded_keys(dir.path());
    let path = keys::file_path(dir.path());
    let good = std::fs::read(&path).expect("the key file");
    let file = KeyFile::read(dir.path());
    let edited = |edit: &dyn Fn(&mut Value)| file.edited(edit);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "not JSON",
            b"{\"format\": \"sealog-keys 1\", \"ke".to_vec(),
            "damaged",
        ),
        ("empty", Vec::new(), "damaged"),
        (
            "other format",
            edited(&|v| v["format"] = "sealog-keys 9".into()),
            "unknown format",
        ),
        (
            "no key",
            edited(&|v| v["keys"] = Value::Array(Vec::new())),
            "holds no key",
        ),
        (
            "a key that fails its checks",
            edited(&|v| v["keys"][0]["sha256"] = "00".repeat(32).into()),
            "does not match",
        ),
    ];
    for (what, bytes, says) in cases {
        std::fs::write(&path, &bytes).expect("write the key file");
        assert_refused(dir.path(), what, &[says]);
    }
    std::fs::write(&path, &good).expect("restore the key file");
    assert_eq!(start_error(dir.path()), None, "restored from the backup");

    // On a directory that never had a key record, a damaged file refuses all the same.
    let fresh = tempdir();
    let fresh_path = keys::file_path(fresh.path());
    std::fs::create_dir_all(fresh_path.parent().expect("access/")).expect("mkdir");
    std::fs::write(&fresh_path, b"not json").expect("write");
    assert_refused(fresh.path(), "damaged, fresh", &["damaged"]);
}

#[test]
fn a_key_file_edited_to_widen_a_key_is_refused_at_start_and_while_running() {
    let dir = tempdir();
    let k = with_recorded_keys(dir.path());
    let path = keys::file_path(dir.path());
    let good = std::fs::read(&path).expect("the key file");
    let file = KeyFile::read(dir.path());
    let edited = |edit: &dyn Fn(&mut Value)| file.edited(edit);
    let (a, w, r) = (
        index_of(&file.0, &k.admin_id),
        index_of(&file.0, &k.writer_id),
        index_of(&file.0, &k.reader_id),
    );
    let revive = move |v: &mut Value| {
        v["keys"][r]["revoked_at"] = Value::Null;
        v["keys"][r]["revoked_by"] = Value::Null;
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("revoked key revived", edited(&revive), "revoked"),
        (
            "roles grown",
            edited(&|v| v["keys"][w]["roles"] = serde_json::json!(["admin", "writer"])),
            "roles",
        ),
        (
            "tenant scope dropped",
            edited(&|v| v["keys"][w]["tenant"] = Value::Null),
            "tenant",
        ),
        (
            "tenant scope moved",
            edited(&|v| v["keys"][w]["tenant"] = "t2".into()),
            "tenant",
        ),
    ];
    for (what, bytes, says) in cases {
        std::fs::write(&path, &bytes).expect("write the key file");
        assert_refused(
            dir.path(),
            what,
            &["grants more than the log records", says],
        );
    }
    // A narrower file is fine: the admin key made a reader and writer.
    let narrow = |v: &mut Value| v["keys"][a]["roles"] = serde_json::json!(["reader", "writer"]);
    std::fs::write(&path, edited(&narrow)).expect("write the key file");
    assert_eq!(start_error(dir.path()), None);
    // Once the log has recorded it, widening it back is refused.
    std::fs::write(&path, &good).expect("write the key file");
    assert_refused(dir.path(), "admin widened back", &["roles"]);
    std::fs::write(&path, edited(&narrow)).expect("write the key file");

    // While running, a version of the file that revives the revoked key is not loaded.
    let app = InProcess::start(dir.path());
    assert_eq!(app.get("/v1/records?limit=1", Some(&k.admin)).status, 200);
    assert_eq!(app.get("/v1/records?limit=1", Some(&k.reader)).status, 401);
    std::fs::write(
        &path,
        edited(&|v| {
            narrow(v);
            revive(v);
        }),
    )
    .expect("write the key file");
    let still = app.get("/v1/records?limit=1", Some(&k.reader));
    assert_eq!(
        (still.status, still.code()),
        (401, "UNAUTHENTICATED".to_string())
    );
    assert_eq!(app.get("/v1/records?limit=1", Some(&k.admin)).status, 200);
    app.stop();
    assert_refused(dir.path(), "revived while running", &["revoked"]);
}

#[test]
fn a_directory_without_key_records_still_starts_in_open_mode() {
    let dir = tempdir();
    assert_eq!(start_error(dir.path()), None);
    let app = InProcess::start(dir.path());
    assert_eq!(app.get("/readyz", None).json()["auth"], "open");
    let r = app.post_json("/v1/events", None, &event("e1", None, "s", "t"));
    assert_eq!(r.status, 200, "{}", r.text());
    app.stop();
    // Records, but none about keys: still open, and no key file was written.
    assert_eq!(start_error(dir.path()), None);
    let app = InProcess::start(dir.path());
    assert_eq!(app.get("/readyz", None).json()["auth"], "open");
    app.stop();
    assert!(!keys::file_path(dir.path()).exists());
}
