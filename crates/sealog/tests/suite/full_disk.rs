//! A full disk under the real binary: the data directory lives on a small tmpfs (8 MiB),
//! `sealog append -` is fed chunk after chunk until the file system is full. The append must
//! end with a non-zero exit code and an error naming the cause (no panic); so must, or else
//! succeed, the appends tried while the disk is still full. Then the file system grows
//! (`mount -o remount,size=64m`) and the directory recovers: every result line printed
//! before is a record at its seq, the log holds nothing but the events sent in order,
//! `sealog verify` passes and new appends take the next seqs.
//!
//! Mounting needs root. The test is skipped loudly when it cannot mount, except under CI
//! (which runs as root), where that fails. Trial `t` draws the event size and the chunk
//! length from seed `SEALOG_FULL_DISK_SEED + t`; `SEALOG_FULL_DISK_TRIALS` (default 1) sets
//! how many trials run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use sealog_ledger::Undeclared;
use sealog_testkit::app::open_ledger;
use sealog_testkit::cli::result_lines;
use sealog_testkit::events::{event, ndjson};
use sealog_testkit::{Cli, Rng, tempdir, wait_for};
use serde_json::Value;

const SEED: u64 = 0xF011_D15C;
const SMALL: &str = "size=8m";
const LARGE: &str = "size=64m";
const ENOSPC: &str = "No space left on device";
/// How long one run may take: far beyond what it takes on a busy machine.
const SECS_MAX: u64 = 300;

fn count(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    /// Mounts a small tmpfs at `at`, or says why it cannot (failing under CI).
    fn small(at: &Path) -> Option<Mount> {
        std::fs::create_dir_all(at).expect("the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", SMALL, "tmpfs"])
            .arg(at)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Mount(at.to_path_buf())),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    !sealog_testkit::under_ci(),
                    "CI is set but a tmpfs cannot be mounted (uid {}): {why}",
                    uid()
                );
                eprintln!(
                    "\n**********************************************************************\n\
                     A tmpfs cannot be mounted here (uid {}): {why}\n\
                     The full-disk test is SKIPPED: run it as root, where mount(8) works.\n\
                     **********************************************************************\n",
                    uid()
                );
                None
            }
        }
    }

    fn grow(&self) {
        let o = Command::new("mount")
            .args(["-o", &format!("remount,{LARGE}")])
            .arg(&self.0)
            .output()
            .expect("run mount");
        assert!(
            o.status.success(),
            "remount: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[allow(unsafe_code)]
fn uid() -> u32 {
    // SAFETY: getuid(2) has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// One event of about `pad` bytes more than the bare event.
fn padded(id: &str, pad: usize, rng: &mut Rng) -> Value {
    let mut e = event(id, Some("acme"), &format!("s{}", rng.below(9)), "test.full");
    let text: String = (0..pad)
        .map(|_| char::from(b"0123456789abcdef"[rng.below(16) as usize]))
        .collect();
    e["data"]["pad"] = Value::String(text);
    e
}

/// What the appends acknowledged, in order: (event id, seq, record id).
type Acked = Vec<(String, u64, String)>;

/// Feeds one `sealog append -` chunk after chunk until it ends; returns its exit code, its
/// error text and how many events were sent.
fn append_until_full(
    cli: &Cli,
    trial: u64,
    chunk: usize,
    pad: usize,
    rng: &mut Rng,
    acked: &mut Acked,
    sent_ids: &mut Vec<String>,
) -> (i32, String) {
    let mut child = cli.spawn(&["append", "-"]);
    let (lines, reader) = result_lines(child.stdout.take().expect("stdout"));
    let mut stdin = child.stdin.take().expect("stdin");
    let start = sent_ids.len();
    let mut printed: Vec<Value> = Vec::new();
    let status = loop {
        let events: Vec<Value> = (0..chunk)
            .map(|i| padded(&format!("full-{trial}-{}", sent_ids.len() + i), pad, rng))
            .collect();
        if stdin
            .write_all(&ndjson(&events))
            .and_then(|()| stdin.flush())
            .is_err()
        {
            break wait_for(SECS_MAX, "append to end", || child.try_wait().unwrap());
        }
        sent_ids.extend(events.iter().map(|e| e["id"].as_str().unwrap().to_string()));
        let sent = sent_ids.len() - start;
        let ended = wait_for(SECS_MAX, "the chunk's results or the end of sealog", || {
            printed.extend(lines.try_iter());
            if printed.len() == sent {
                return Some(None);
            }
            child.try_wait().unwrap().map(Some)
        });
        if let Some(status) = ended {
            break status;
        }
        assert!(sent < 1_000_000, "the disk never filled");
    };
    drop(stdin);
    reader.join().unwrap();
    printed.extend(lines.try_iter());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    for (i, line) in printed.iter().enumerate() {
        assert_eq!(line["status"], "appended", "{line}");
        acked.push((
            sent_ids[start + i].clone(),
            line["seq"].as_u64().expect("a seq"),
            line["record_id"].as_str().expect("a record_id").to_string(),
        ));
    }
    let code = status
        .code()
        .unwrap_or_else(|| panic!("append ended by {status:?}: {stderr}"));
    (code, stderr)
}

fn assert_clean_failure(code: i32, stderr: &str, what: &str) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{what} panicked: {stderr}"
    );
    assert_ne!(code, 0, "{what} succeeded on a full disk: {stderr}");
    assert!(
        stderr.contains(ENOSPC),
        "{what}: the error names the cause: {stderr}"
    );
}

fn trial(t: u64, seed: u64) {
    let mut rng = Rng::new(seed);
    let pad = 100 + rng.below(1500) as usize;
    let chunk = 1 + rng.below(200) as usize;
    eprintln!("full disk trial {t} (seed {seed}): events of +{pad} bytes, {chunk} a chunk");
    let tmp = tempdir();
    let Some(mount) = Mount::small(&tmp.path().join("mnt")) else {
        return;
    };
    let dir = mount.0.join("data");
    let cli = Cli::new(env!("CARGO_BIN_EXE_sealog"), &dir).accepting_undeclared();
    let mut acked: Acked = Vec::new();
    let mut sent: Vec<String> = Vec::new();
    let (code, stderr) = append_until_full(&cli, t, chunk, pad, &mut rng, &mut acked, &mut sent);
    assert_clean_failure(code, &stderr, "the append that filled the disk");
    let filled = acked.len();
    // While the disk is still full, more appends fail cleanly, or succeed if they fit.
    let mut full_runs = Vec::new();
    for _ in 0..3 {
        let (code, stderr) = append_until_full(&cli, t, 1, pad, &mut rng, &mut acked, &mut sent);
        if code != 0 {
            assert_clean_failure(code, &stderr, "an append on the full disk");
        }
        full_runs.push(code);
    }
    let verify_full = cli.run(&["verify"], b"");
    assert!(
        !verify_full.stderr.contains("panicked"),
        "verify on the full disk panicked: {}",
        verify_full.stderr
    );

    mount.grow();
    let ledger = open_ledger(&dir, Undeclared::Accept);
    let have = ledger.len();
    for (id, seq, rid) in &acked {
        let record: Value = serde_json::from_slice(
            &ledger
                .get(*seq)
                .unwrap()
                .unwrap_or_else(|| panic!("acknowledged {id} at {seq} is lost ({have} records)")),
        )
        .unwrap();
        assert_eq!(
            record["record_id"].as_str(),
            Some(rid.as_str()),
            "seq {seq}"
        );
        assert_eq!(record["id"].as_str(), Some(id.as_str()), "seq {seq}");
    }
    // Nothing but the events sent, each once, in the order sent.
    let mut next = 0;
    for seq in 0..have {
        let record: Value = serde_json::from_slice(&ledger.get(seq).unwrap().unwrap()).unwrap();
        let id = record["id"].as_str().unwrap();
        let at = sent[next..]
            .iter()
            .position(|s| s == id)
            .unwrap_or_else(|| panic!("record {seq} ({id}) was not sent, or not in this order"));
        next += at + 1;
    }
    ledger.close().unwrap();
    cli.assert_verifies();
    let more: Vec<Value> = (0..50)
        .map(|i| padded(&format!("after-{t}-{i}"), pad, &mut rng))
        .collect();
    let run = cli.ok(&["append", "-"], &ndjson(&more));
    let lines = run.lines();
    assert_eq!(lines.len(), 50);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["status"], "appended", "{line}");
        assert_eq!(line["seq"], have + i as u64, "{line}");
    }
    cli.assert_verifies();
    eprintln!(
        "full disk trial {t}: {filled} acknowledged before the disk filled ({}), then appends \
         on the full disk exited {full_runs:?}; {have} records after growing it, all \
         acknowledged present, verify passed, 50 more appended",
        stderr.trim().lines().last().unwrap_or("")
    );
}

#[test]
fn a_full_disk_fails_appends_cleanly_and_recovers_when_space_returns() {
    let base = count("SEALOG_FULL_DISK_SEED", SEED);
    let trials = count("SEALOG_FULL_DISK_TRIALS", 1);
    eprintln!(
        "full disk: {trials} trials from seed {base}; replay with SEALOG_FULL_DISK_SEED={base}"
    );
    for t in 0..trials {
        trial(t, base.wrapping_add(t));
    }
    eprintln!("full disk: {trials} trials, 0 failures");
}
