//! A brand-new data directory opened by several processes at once: whichever of them makes
//! the master key, every one ends with the same one, and the directory they leave opens and
//! takes personal data ever after. Two first openings that each made a master key, the last
//! write winning, would leave a key store made under the other one, and no later opening
//! could ever open it.
//!
//! The openers are processes (this test binary again): one process is refused a second
//! opening of a directory by its own registry.

#[path = "support/mod.rs"]
mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use sealog_ledger::{Ledger, Undeclared, VerifyOptions};
use sealog_packs::Packs;
use sealog_testkit::wait_for;
use serde_json::{Value, json};
use support::{appended_seq, config, result_of};

/// The directory, the start signal and the opener's number, through its environment.
const CHILD_ENV: &str = "SEALOG_LEDGER_FIRST_OPEN_CHILD";
/// Processes racing each directory's first opening.
const OPENERS: usize = 8;
/// New directories raced over: one race of first openings does not always interleave badly.
const ROUNDS: usize = 6;
/// The data subject every opener names.
const SUBJECT: &str = "cust-4711";

/// A call with `customer` as its data subject: sealed under that subject's key.
fn call(id: &str, customer: &str) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "call-centre", "type": "comms.phone_call",
        "time": "2026-04-11T09:00:00Z", "tenant": "shop-za",
        "actor": {"type": "human", "id": "agent-7"},
        "data": {"call_id": id, "customer_phone": "+27-82-555-0147", "customer_id": customer,
                 "call_timestamp": "2026-04-11T09:00:00Z", "call_duration": 300,
                 "call_direction": "inbound", "staff_member": "agent-7",
                 "call_purpose": "complaint", "call_summary": "a refund", "outcome": "resolved",
                 "follow_up_required": "no"}})
}

fn open(dir: &Path) -> Result<Ledger, sealog_ledger::Error> {
    Ledger::open(dir, config(Packs::builtin(), Undeclared::Quarantine))
}

/// Kills a child the test gave up on rather than leaving it running.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if self.0.try_wait().is_ok_and(|s| s.is_none()) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn spawn_opener(dir: &Path, go: &Path, n: usize) -> Reaped {
    let spec = format!("{}\n{}\n{n}", dir.display(), go.display());
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_opens_the_new_directory",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, spec)
        .env_remove("SEALOG_MASTER_KEY")
        .env_remove("SEALOG_MASTER_KEY_FILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start an opener");
    Reaped(child)
}

fn ready_file(go: &Path, n: usize) -> PathBuf {
    go.with_file_name(format!("ready-{n}"))
}

#[test]
#[ignore = "one of the openers of the test below"]
fn child_opens_the_new_directory() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.lines();
    let (dir, go) = (
        PathBuf::from(parts.next().unwrap()),
        PathBuf::from(parts.next().unwrap()),
    );
    let n: usize = parts.next().unwrap().parse().unwrap();
    std::fs::write(ready_file(&go, n), "").unwrap();
    wait_for(60, "the start signal", || go.exists().then_some(()));
    let outcome = match open(&dir) {
        Ok(ledger) => {
            appended_seq(&result_of(&ledger, &call(&format!("call-{n}"), SUBJECT)));
            ledger.close().unwrap();
            "opened".to_string()
        }
        Err(e) if Ledger::is_locked_elsewhere(&e) => "refused".to_string(),
        Err(e) => panic!("opener {n}: {e}"),
    };
    let pseudonym = sealog_ledger::pseudonym_in(&dir, SUBJECT)
        .unwrap_or_else(|e| panic!("opener {n}: pseudonym: {e}"));
    println!("FIRST-OPEN {outcome} {pseudonym}");
}

/// Starts `OPENERS` processes on the new directory `dir` together; what each reported.
fn race(tmp: &Path, dir: &Path) -> Vec<(String, String)> {
    let go = tmp.join("go");
    let mut openers: Vec<Reaped> = (0..OPENERS).map(|n| spawn_opener(dir, &go, n)).collect();
    wait_for(120, "every opener to be ready", || {
        (0..OPENERS)
            .all(|n| ready_file(&go, n).exists())
            .then_some(())
    });
    std::fs::write(&go, "").unwrap();
    let statuses: Vec<_> = openers
        .iter_mut()
        .map(|o| wait_for(120, "an opener to finish", || o.0.try_wait().unwrap()))
        .collect();
    openers
        .into_iter()
        .zip(statuses)
        .map(|(mut o, status)| {
            let mut out = String::new();
            let mut err = String::new();
            o.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
            o.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            assert!(status.success(), "an opener failed: {out}{err}");
            let report = out
                .lines()
                .find_map(|l| l.split_once("FIRST-OPEN ").map(|(_, r)| r.to_string()))
                .unwrap_or_else(|| panic!("no report from an opener: {out}{err}"));
            let (outcome, pseudonym) = report.split_once(' ').expect("outcome and pseudonym");
            (outcome.to_string(), pseudonym.to_string())
        })
        .collect()
}

#[test]
fn racing_first_openings_of_a_new_directory_leave_one_master_key() {
    for round in 0..ROUNDS {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let reports = race(tmp.path(), &dir);
        assert!(
            reports.iter().any(|(outcome, _)| outcome == "opened"),
            "round {round}: some opener opened the directory: {reports:?}"
        );
        let pseudonyms: std::collections::BTreeSet<&str> =
            reports.iter().map(|(_, p)| p.as_str()).collect();
        assert_eq!(
            pseudonyms.len(),
            1,
            "round {round}: one master key names the subject for every opener: {reports:?}"
        );

        // Every later opening accepts the directory and seals for the subject under the key
        // the openers made.
        let ledger = open(&dir)
            .unwrap_or_else(|e| panic!("round {round}: the directory no longer opens: {e}"));
        appended_seq(&result_of(&ledger, &call("call-after", SUBJECT)));
        appended_seq(&result_of(&ledger, &call("call-new", "cust-new")));
        ledger.close().unwrap();
        assert_eq!(
            sealog_ledger::pseudonym_in(&dir, SUBJECT).unwrap(),
            *pseudonyms.first().unwrap()
        );
        Ledger::verify(&dir, &VerifyOptions::default())
            .unwrap_or_else(|f| panic!("round {round}: verify: {f}"));
        let reopened = open(&dir).unwrap();
        reopened.close().unwrap();
    }
}
