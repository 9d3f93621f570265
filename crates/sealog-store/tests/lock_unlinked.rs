//! `LOCK` holds a pid and looks like a stale pidfile, so someone may delete it beside a live
//! writer. The second opening for writing must still be refused: a second writer would
//! overwrite the first one's acknowledged records and break its checkpoint series.
//!
//! The second opening is made by another process (this test binary again): one process is
//! refused a second opening by its own registry before any lock is tried.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use sealog_model::LogLayout;
use sealog_store::conformance::{TestKeys, Unique, entry, event};
use sealog_store::{Config, LogRead, LogWrite, Outcome, Store};
use sealog_testkit::wait_for;

/// The directory the child opens, through its environment.
const CHILD_ENV: &str = "SEALOG_STORE_LOCK_UNLINKED_CHILD";

fn open(dir: &Path) -> Result<Store<Unique>, sealog_store::StoreError> {
    Store::open(
        &LogLayout::new(dir),
        Config::default(),
        Arc::new(TestKeys),
        Unique,
    )
}

fn append(store: &Store<Unique>, n: u64) {
    let out = store
        .append(vec![entry(&event(n, "t", "s", None))])
        .unwrap();
    assert!(
        matches!(out[..], [Outcome::Appended { .. }]),
        "appended: {out:?}"
    );
}

/// What the child's opening of `dir` answered: `Ok(())` if it opened it for writing, else
/// the error it gave.
fn second_opening(dir: &Path) -> Result<(), String> {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_opens_for_writing",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the child");
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the child failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("SECOND-OPENING ").map(|(_, r)| r.to_string()))
        .unwrap_or_else(|| panic!("no report from the child: {stdout}"));
    match line.as_str() {
        "opened" => Ok(()),
        refused => Err(refused.to_string()),
    }
}

#[test]
#[ignore = "the second process of the tests below"]
fn child_opens_for_writing() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let report = match open(Path::new(&dir)) {
        Ok(store) => {
            store.close().unwrap();
            "opened".to_string()
        }
        Err(e) => e.to_string(),
    };
    println!("SECOND-OPENING {report}");
}

/// Opens a store, does `tamper` to its `LOCK` while it is open, and checks that another
/// process is refused the directory, naming the holder, while the holder goes on appending.
fn refused_after(tamper: impl FnOnce(&Path)) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let first = open(dir).unwrap();
    append(&first, 0);
    tamper(&dir.join("LOCK"));

    let refused = second_opening(dir).expect_err("a second writer beside a live one");
    assert!(
        refused.contains("in use by another sealog process"),
        "{refused}"
    );
    assert!(
        refused.contains(&format!("(pid {})", std::process::id())),
        "the holder is named: {refused}"
    );

    // The holder was not disturbed, and once it closes the directory opens again.
    append(&first, 1);
    assert_eq!(first.len(), 2);
    first.close().unwrap();
    assert_eq!(second_opening(dir), Ok(()));
    let reopened = open(dir).unwrap();
    assert_eq!(reopened.len(), 2);
}

#[test]
fn a_second_writer_is_refused_after_lock_is_deleted() {
    refused_after(|lock| std::fs::remove_file(lock).unwrap());
}

#[test]
fn a_second_writer_is_refused_after_lock_is_replaced_by_an_empty_file() {
    refused_after(|lock| {
        std::fs::remove_file(lock).unwrap();
        std::fs::write(lock, "").unwrap();
    });
}

#[test]
fn a_second_writer_is_refused_after_lock_is_replaced_by_another_pid() {
    // A pid that names no live sealog process: what a stale pidfile would hold.
    refused_after(|lock| {
        std::fs::remove_file(lock).unwrap();
        std::fs::write(lock, "1").unwrap();
    });
}

#[test]
fn every_later_writer_is_refused_while_the_holder_of_a_deleted_lock_lives() {
    let tmp = tempfile::tempdir().unwrap();
    let first = open(tmp.path()).unwrap();
    std::fs::remove_file(tmp.path().join("LOCK")).unwrap();
    let mut tries = 0;
    wait_for(60, "three refusals in a row", || {
        tries += 1;
        second_opening(tmp.path()).expect_err("refused");
        (tries == 3).then_some(())
    });
    first.close().unwrap();
}
