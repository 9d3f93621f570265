//! System calls of the real binary made to fail, one at a time, with `strace -e inject=…`:
//! `fdatasync` and `fsync` with EIO, `write` and `pwrite64` with ENOSPC, `rename` with EIO.
//! For each call and each `N` of a sweep, the `N`th such call of `sealog append -` fails
//! (strace counts calls per thread, so the `N`th of every thread that makes that many). The
//! append is fed in chunks, each answered before the next is sent, on a data directory that
//! already holds records, so that the faults land in commits, in printing results and in
//! closing the store.
//!
//! After each run: a run whose call failed ended with a non-zero exit code and an error that
//! names the cause (unless the failed call was the one writing that error), and did not
//! panic; a run that ended well answered every event; every result line it printed names a
//! record that is in the log at that seq once the directory is opened again without faults;
//! past them the log holds at most the events sent, in order; `sealog verify` passes; and a
//! new append takes the next seq.
//!
//! The sweep runs `N` = 1..=`SEALOG_SYSCALL_FAULT_SWEEP` (default 4, and 8 under CI) for
//! each call, stopping early for a call once a run makes fewer than `N` of them;
//! `scripts/campaign` runs a wide sweep. Without strace the test is skipped loudly, except
//! under CI, where it fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use sealog_ledger::Undeclared;
use sealog_testkit::app::open_ledger;
use sealog_testkit::cli::{
    SYSCALL_FAULTS, assert_fails_cleanly, doubling, injected_calls, result_lines, run_failing,
    signal, strace_failing, strace_usable, sweep_syscall_faults, syscall_fault_sweep,
};
use sealog_testkit::events::{event, ndjson};
use sealog_testkit::{Cli, tempdir, wait_for};
use serde_json::Value;

/// Records in the directory before the faulted run.
const BEFORE: usize = 5;
/// Events per chunk, and chunks per run.
const CHUNK: usize = 10;
const CHUNKS: usize = 3;
/// How long one traced run may take: far beyond what it takes on a busy machine.
const RUN_SECS_MAX: u64 = 300;

/// The first `n` records of the log at `dir`, as stored.
fn first_records(dir: &Path, n: usize) -> Vec<Vec<u8>> {
    let ledger = open_ledger(dir, Undeclared::Accept);
    (0..n as u64)
        .map(|s| ledger.get(s).unwrap().unwrap())
        .collect()
}

fn cli(dir: &Path) -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_sealog"), dir).accepting_undeclared()
}

/// Where each faulted run starts: a data directory holding the `BEFORE` events, inside a
/// temporary directory that also takes the run's trace, and the CLI on it.
fn seeded() -> (tempfile::TempDir, PathBuf, Cli) {
    let tmp = tempdir();
    let dir = tmp.path().join("data");
    let cli = cli(&dir);
    cli.ok(&["append", "-"], &ndjson(&events("before", 0, BEFORE)));
    (tmp, dir, cli)
}

fn id(run: &str, n: usize) -> String {
    format!("{run}-{n:04}")
}

fn events(run: &str, from: usize, n: usize) -> Vec<Value> {
    (from..from + n)
        .map(|i| {
            event(
                &id(run, i),
                Some("acme"),
                &format!("s{}", i % 5),
                "test.fault",
            )
        })
        .collect()
}

/// What one faulted run did.
struct Faulted {
    /// The exit code; a run killed by a signal fails the test.
    code: i32,
    printed: Vec<Value>,
    sent: usize,
    stderr: String,
    /// The trace lines of the calls that were made to fail.
    injected: Vec<String>,
}

/// `sealog append -` under strace with the `n`th `call` of each thread failing with `errno`;
/// with `path`, only calls on that path count and fail.
fn run_faulted(
    cli: &Cli,
    trace: &Path,
    (call, errno): (&str, &str),
    n: usize,
    path: Option<&Path>,
) -> Faulted {
    let mut cmd = strace_failing(
        &cli.command(&["append", "-"]),
        (call, errno),
        n,
        path,
        trace,
    );
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start strace");
    // Kills the traced run if the test fails before it ends.
    struct Reap(u32);
    impl Drop for Reap {
        fn drop(&mut self) {
            if std::thread::panicking() {
                signal(self.0, libc::SIGKILL);
            }
        }
    }
    let _reap = Reap(child.id());
    let (lines, reader) = result_lines(child.stdout.take().expect("stdout"));
    let mut stdin = child.stdin.take().expect("stdin");
    let mut printed: Vec<Value> = Vec::new();
    let mut sent = 0;
    let mut status = None;
    for c in 0..CHUNKS {
        let chunk = events(&format!("n{n}"), c * CHUNK, CHUNK);
        // A child that stopped reading has ended: its status says how.
        if stdin
            .write_all(&ndjson(&chunk))
            .and_then(|()| stdin.flush())
            .is_err()
        {
            break;
        }
        sent += CHUNK;
        status = wait_for(
            RUN_SECS_MAX,
            "the chunk's results or the end of sealog",
            || {
                printed.extend(lines.try_iter());
                if printed.len() == sent {
                    return Some(None);
                }
                child.try_wait().expect("wait for strace").map(Some)
            },
        );
        if status.is_some() {
            break;
        }
    }
    drop(stdin);
    let status = status.unwrap_or_else(|| {
        wait_for(RUN_SECS_MAX, "the faulted append to end", || {
            child.try_wait().expect("wait for strace")
        })
    });
    reader.join().expect("the result reader");
    printed.extend(lines.try_iter());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("standard error");
    let code = status
        .code()
        .unwrap_or_else(|| panic!("append under strace ended by {status:?}: {stderr}"));
    let injected = injected_calls(trace);
    Faulted {
        code,
        printed,
        sent,
        stderr,
        injected,
    }
}

/// Checks one faulted run against the directory it left; returns a one-line account.
fn check(dir: &Path, cli: &Cli, f: &Faulted, cause: &str, n: usize) -> String {
    assert!(
        !f.stderr.contains("panicked") && !f.stderr.contains("backtrace"),
        "the binary panicked: {}",
        f.stderr
    );
    if f.injected.is_empty() {
        assert_eq!(
            f.code, 0,
            "no call failed, yet the run failed: {}",
            f.stderr
        );
        assert_eq!(
            f.printed.len(),
            f.sent,
            "a run that ended well answers every event: {}",
            f.stderr
        );
    } else {
        assert_ne!(
            f.code, 0,
            "a call failed, yet the run ended well: {}",
            f.stderr
        );
        // Unless the call made to fail was the one writing the error (each thread counts its
        // own calls, so the main thread's nth write may be the message itself).
        let message_failed = f.injected.iter().any(|l| l.contains(" write(2<"));
        assert!(
            message_failed || f.stderr.contains(cause),
            "the error names the cause ({cause}): {}",
            f.stderr
        );
    }
    // Opened again without faults, by the library: a CLI read would append its own
    // `audit.access` record.
    let ledger = open_ledger(dir, Undeclared::Accept);
    let have = ledger.len() as usize;
    for (i, line) in f.printed.iter().enumerate() {
        assert_eq!(line["status"], "appended", "{line}");
        let seq = (BEFORE + i) as u64;
        assert_eq!(line["seq"], seq, "results come in input order: {line}");
        let record: Value = serde_json::from_slice(
            &ledger
                .get(seq)
                .unwrap()
                .unwrap_or_else(|| panic!("acknowledged seq {seq} is lost ({have} records)")),
        )
        .unwrap();
        assert_eq!(record["record_id"], line["record_id"], "seq {seq}");
    }
    assert!(
        have >= BEFORE + f.printed.len() && have <= BEFORE + f.sent,
        "{have} records after reopening: {BEFORE} before, {} printed, {} sent",
        f.printed.len(),
        f.sent
    );
    for seq in BEFORE..have {
        let record: Value =
            serde_json::from_slice(&ledger.get(seq as u64).unwrap().unwrap()).unwrap();
        assert_eq!(
            record["id"],
            id(&format!("n{n}"), seq - BEFORE),
            "record {seq} is the event sent in that place"
        );
    }
    ledger.close().unwrap();
    cli.assert_verifies();
    let next = cli.ok(
        &["append", "-"],
        &ndjson(&events(&format!("after{n}"), 0, 1)),
    );
    let line = &next.lines()[0];
    assert_eq!(line["status"], "appended", "{line}");
    assert_eq!(
        line["seq"], have as u64,
        "the next append takes the next seq"
    );
    format!(
        "exit {}, {} of {} answered, {have} records; failed: {}; said: {}",
        f.code,
        f.printed.len(),
        f.sent,
        f.injected
            .first()
            .map_or("nothing", |l| l.split(", ").next().unwrap_or(l)),
        f.stderr.lines().last().unwrap_or("").trim()
    )
}

#[test]
fn a_failed_system_call_fails_the_append_cleanly_and_loses_nothing_acknowledged() {
    if !strace_usable() {
        return;
    }
    let sweep = syscall_fault_sweep(4, 8);
    let (mut runs, mut injected) = (0, 0);
    for &(call, errno, cause) in SYSCALL_FAULTS {
        for n in 1..=sweep {
            let (tmp, dir, cli) = seeded();
            let f = run_faulted(&cli, &tmp.path().join("trace"), (call, errno), n, None);
            runs += 1;
            let hit = !f.injected.is_empty();
            injected += usize::from(hit);
            let account = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                check(&dir, &cli, &f, cause, n)
            }))
            .unwrap_or_else(|e| {
                panic!(
                    "{call} failing with {errno} at call {n}: {}\nfailed calls: {:?}",
                    sealog_testkit::panic_text(&*e),
                    f.injected
                )
            });
            eprintln!("{call}={errno} when={n}: {account}");
            if !hit {
                // No thread made `n` such calls: a larger `n` fails none either.
                break;
            }
        }
    }
    eprintln!("syscall faults: {runs} runs, {injected} with a failed call, 0 failures");
    assert!(injected > 0, "no run had a call fail");
}

/// Regression: `sealog append` dropped its ledger without closing it, and a store closed
/// after its final checkpoint failed said nothing, so a failed fsync or rename of the
/// closing checkpoint ended the command with exit code 0 and no message (and `verify` then
/// failed until the next writer rewrote `checkpoints/latest`).
#[test]
fn append_reports_a_failed_final_checkpoint() {
    if !strace_usable() {
        return;
    }
    for (call, errno, cause, file) in [
        ("fdatasync", "EIO", "Input/output error", "log"),
        ("rename", "EIO", "Input/output error", "latest.tmp"),
        ("write", "ENOSPC", "No space left on device", "latest.tmp"),
    ] {
        let (tmp, dir, cli) = seeded();
        let path = dir.join("checkpoints").join(file);
        let f = run_faulted(
            &cli,
            &tmp.path().join("trace"),
            (call, errno),
            1,
            Some(&path),
        );
        assert!(
            !f.injected.is_empty(),
            "{call} of checkpoints/{file} never ran"
        );
        assert_eq!(
            f.printed.len(),
            f.sent,
            "{call}: the records were durable before the checkpoint: {}",
            f.stderr
        );
        assert_ne!(f.code, 0, "{call} of checkpoints/{file} failed unreported");
        assert!(
            f.stderr.contains(cause) && f.stderr.contains("checkpoints"),
            "{call}: the error names the file and the cause: {}",
            f.stderr
        );
        check(&dir, &cli, &f, cause, 1);
    }
}

/// `sealog keys rotate-log` with its `n`th write, fsync or rename of each thread failing
/// (`n` = 1, 2, 4, …): a run whose call failed ends with an error naming the cause, one whose
/// calls all succeeded ends well; opened again by a writer, the rotation is either finished
/// (its record in the log, `keys/log.pub` the new key) or absent (no record, the old key, no
/// key prepared and left behind), the log verifies from the old key and from the directory's,
/// and rotating again works.
#[test]
fn a_log_key_rotation_whose_system_calls_fail_is_finished_or_absent() {
    if !strace_usable() {
        return;
    }
    let vkey = |dir: &Path| {
        std::fs::read_to_string(dir.join("keys/log.pub"))
            .unwrap()
            .trim()
            .to_string()
    };
    let rotations = |cli: &Cli| {
        cli.ok(&["query", "--type", "audit.log_key_rotated"], b"")
            .lines()
    };
    sweep_syscall_faults(
        "keys rotate-log",
        &doubling(syscall_fault_sweep(6, 8)),
        |f| {
            let (tmp, dir, cli) = seeded();
            let old = vkey(&dir);
            let (run, failed) =
                run_failing(&cli, &["keys", "rotate-log"], f, &tmp.path().join("trace"));
            let ctx = format!("{f}: exit {}: {}", run.code, run.stderr.trim());
            eprintln!("{ctx}");
            assert_fails_cleanly(&run, &failed, f.cause, &ctx);

            // A writable opening finishes a rotation its record announced.
            cli.ok(&["append", "-"], &ndjson(&events("after", 0, 1)));
            let recorded = rotations(&cli);
            match recorded.as_slice() {
                [] => {
                    assert_ne!(run.code, 0, "{ctx}: rotated without its record");
                    assert_eq!(vkey(&dir), old, "{ctx}");
                    assert!(!dir.join("keys/log.key.next").exists(), "{ctx}");
                }
                [r] => {
                    assert_eq!(r["data"]["old_verifier_key"], old.as_str(), "{ctx}");
                    assert_eq!(r["data"]["new_verifier_key"], vkey(&dir).as_str(), "{ctx}");
                }
                more => panic!("{ctx}: {} rotation records", more.len()),
            }
            cli.ok(&["verify", "--strict"], b"");
            cli.ok(&["verify", "--strict", "--verifier-key", &old], b"");

            let again = cli.ok(&["keys", "rotate-log"], b"").json();
            assert_eq!(again["new_verifier_key"], vkey(&dir).as_str(), "{ctx}");
            cli.ok(&["verify", "--strict", "--verifier-key", &old], b"");
            !failed.is_empty()
        },
    );
}

/// `sealog hold place`, the reads (`get`, `query`, each appending its `audit.access` record)
/// and `check` (appending its run's record) with their `n`th write, fsync or rename of each
/// thread failing (`n` = 1, 2, 4, …): a run whose call failed ends with an error naming the
/// cause; a read that printed anything left its access record in the log (an unrecorded read
/// is not served); opened again, the records before are as they were, a hold is placed whole
/// or not at all, `verify` passes, and the command run again without faults works.
#[test]
fn holds_reads_and_checks_whose_system_calls_fail_fail_cleanly() {
    if !strace_usable() {
        return;
    }
    let commands: [&[&str]; 4] = [
        &["hold", "place", "--tenant", "acme", "--reason", "inquiry 4"],
        &["get", "2"],
        &["query", "--subject", "s1", "--limit", "5"],
        &["check"],
    ];
    for args in commands {
        let what = format!("{args:?}");
        sweep_syscall_faults(&what, &doubling(syscall_fault_sweep(5, 7)), |f| {
            let (tmp, dir, cli) = seeded();
            let before = first_records(&dir, BEFORE);
            let (run, failed) = run_failing(&cli, args, f, &tmp.path().join("trace"));
            let ctx = format!("{what} with {f}: exit {}: {}", run.code, run.stderr.trim());
            assert_fails_cleanly(&run, &failed, f.cause, &ctx);

            assert_eq!(first_records(&dir, BEFORE), before, "{ctx}");
            let ledger = open_ledger(&dir, Undeclared::Accept);
            let recorded = (BEFORE as u64..ledger.len()).any(|s| {
                let r: Value = serde_json::from_slice(&ledger.get(s).unwrap().unwrap()).unwrap();
                r["type"] == "audit.access"
            });
            drop(ledger);
            if matches!(args[0], "get" | "query") && !run.stdout.is_empty() {
                // What was printed was read after its access record was durable (a later
                // failure, of the final checkpoint say, still fails the command).
                assert!(recorded, "{ctx}: a read served without its record");
            }
            if args[0] == "hold" {
                let holds = cli.ok(&["hold", "list"], b"").lines().len();
                assert!(holds <= 1, "{ctx}: {holds} holds");
                assert!(run.code != 0 || holds == 1, "{ctx}: placed, yet not held");
            }
            cli.assert_verifies();
            cli.ok(args, b"");
            !failed.is_empty()
        });
    }
}

/// An export whose system calls fail leaves a whole export or none: no `.partial` file, and
/// a manifest under the final name only beside the files it proves. The log is unchanged
/// but for the export's own records, and the export made again completes.
#[test]
fn an_export_whose_system_calls_fail_is_whole_or_absent() {
    if !strace_usable() {
        return;
    }
    for format in ["jsonl", "parquet"] {
        let what = format!("{format} export");
        sweep_syscall_faults(&what, &doubling(syscall_fault_sweep(5, 7)), |f| {
            let (tmp, dir, cli) = seeded();
            let vkey = cli
                .ok(&["checkpoint", "--verifier-key"], b"")
                .stdout
                .trim()
                .to_string();
            let before = first_records(&dir, BEFORE);
            let out_dir = tmp.path().join("out");
            std::fs::create_dir(&out_dir).unwrap();
            let out = out_dir.join(format!("acme.{format}"));
            let out_s = out.to_str().unwrap();
            let args = [
                "export", "--format", format, "--out", out_s, "--tenant", "acme",
            ];
            let (run, failed) = run_failing(&cli, &args, f, &tmp.path().join("trace"));
            let ctx = format!("{what} with {f}: exit {}: {}", run.code, run.stderr.trim());
            assert_fails_cleanly(&run, &failed, f.cause, &ctx);

            let left: Vec<String> = std::fs::read_dir(&out_dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert!(
                left.iter().all(|f| !f.ends_with(".partial")),
                "{ctx}: a partial file was left: {left:?}"
            );
            let manifest = out_dir.join(format!("acme.{format}.manifest.json"));
            if run.code == 0 {
                assert!(manifest.exists(), "{ctx}: exported, yet no manifest");
            }
            if manifest.exists() {
                let checked = cli.ok(
                    &[
                        "verify-export",
                        manifest.to_str().unwrap(),
                        "--verifier-key",
                        &vkey,
                    ],
                    b"",
                );
                assert_eq!(checked.json()["count"], BEFORE, "{ctx}");
            }

            assert_eq!(first_records(&dir, BEFORE), before, "{ctx}");
            cli.assert_verifies();
            let mut again = args.to_vec();
            again.push("--force");
            cli.ok(&again, b"");
            !failed.is_empty()
        });
    }
}

/// A read of the input file that fails part way through (`read` of that file only, its
/// `n`th, with EIO): the events read whole before it are appended and answered, in input
/// order; the command then fails naming the read; nothing is appended that was not answered.
#[test]
fn a_failed_read_of_the_input_appends_what_came_before_and_fails() {
    if !strace_usable() {
        return;
    }
    // Several of the reader's 1 MiB reads: 1,200 events of about 3 KiB.
    let pad = "p".repeat(3000);
    let all: Vec<Value> = events("read", 0, 1_200)
        .into_iter()
        .map(|mut e| {
            e["data"]["pad"] = Value::from(pad.as_str());
            e
        })
        .collect();
    for n in [1, 2, 3] {
        let tmp = tempdir();
        let cli = cli(&tmp.path().join("data"));
        let input = tmp.path().join("input.ndjson");
        std::fs::write(&input, ndjson(&all)).unwrap();
        let trace = tmp.path().join("trace");
        let command = strace_failing(
            &cli.command(&["append", input.to_str().unwrap()]),
            ("read", "EIO"),
            n,
            Some(&input),
            &trace,
        );
        let run = sealog_testkit::cli::run_command(
            command,
            b"",
            std::time::Duration::from_secs(RUN_SECS_MAX),
        );
        assert!(
            !injected_calls(&trace).is_empty(),
            "read {n} of the input was not made to fail"
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        assert_ne!(run.code, 0, "a failed read, yet the run ended well");
        assert!(
            run.stderr.contains("reading the input") && run.stderr.contains("Input/output error"),
            "the error names the read: {}",
            run.stderr
        );
        let printed = run.lines();
        if n == 1 {
            assert!(printed.is_empty(), "nothing was read: {printed:?}");
        } else {
            assert!(
                !printed.is_empty() && printed.len() < all.len(),
                "read {n}: {} of {} answered",
                printed.len(),
                all.len()
            );
        }
        let ledger = open_ledger(&tmp.path().join("data"), Undeclared::Accept);
        assert_eq!(
            ledger.len() as usize,
            printed.len(),
            "read {n}: what is appended is what was answered"
        );
        for (i, line) in printed.iter().enumerate() {
            assert_eq!(line["status"], "appended", "{line}");
            assert_eq!(line["seq"], i as u64, "results come in input order: {line}");
            let record: Value =
                serde_json::from_slice(&ledger.get(i as u64).unwrap().unwrap()).unwrap();
            assert_eq!(record["id"], id("read", i), "seq {i}");
        }
        ledger.close().unwrap();
    }
}

/// An email of customer `customer`, complete or missing its `event_type` (quarantined, its
/// payload sealed for the customer).
fn email(id: &str, customer: &str, complete: bool) -> Value {
    let mut e = sealog_testkit::events::examples()
        .into_iter()
        .find(|e| e["id"] == "comms-email-1")
        .expect("the email example");
    e["id"] = id.into();
    e["data"]["email_id"] = format!("<{id}@shop.example>").into();
    e["data"]["recipient_details"]["customer_id"] = customer.into();
    if !complete {
        e["data"].as_object_mut().unwrap().remove("event_type");
    }
    e
}

/// `sealog erase` with its `n`th write, fsync or rename of each thread failing (`n` = 1, 2,
/// 4, …): a run whose call failed ends with an error naming the cause; opened again by a
/// writer, the erasure is finished — its record, the person's values erased, and their
/// quarantined payload deleted and named by a deletion record — or absent, with the person's
/// values still readable and their payload kept; the log verifies either way.
#[test]
fn an_erasure_whose_system_calls_fail_is_finished_or_absent() {
    if !strace_usable() {
        return;
    }
    // The payload area's frames: `len u32 LE | sha256 | bytes`.
    let payloads = |dir: &Path| -> usize {
        let bytes = std::fs::read(dir.join("quarantine/payloads")).unwrap_or_default();
        let (mut at, mut n) = (0, 0);
        while let Some(len) = bytes.get(at..at + 4) {
            at += 36 + u32::from_le_bytes(len.try_into().unwrap()) as usize;
            n += 1;
        }
        n
    };
    sweep_syscall_faults("erase", &doubling(syscall_fault_sweep(5, 7)), |f| {
        let (tmp, dir, cli) = seeded();
        let kept = [email("m-1", "cust-1", true), email("m-2", "cust-1", false)];
        // One event quarantined: the append exits 1 and says so.
        let appended = cli.run(&["append", "-"], &ndjson(&kept)).lines();
        assert_eq!(appended[1]["status"], "quarantined", "{appended:?}");
        let seq = appended[0]["seq"].as_u64().unwrap().to_string();
        assert_eq!(payloads(&dir), 1);
        let args = [
            "erase",
            "--data-subject",
            "cust-1",
            "--reason",
            "request 12",
        ];
        let (run, failed) = run_failing(&cli, &args, f, &tmp.path().join("trace"));
        let ctx = format!("erase with {f}: exit {}: {}", run.code, run.stderr.trim());
        eprintln!("{ctx}");
        assert_fails_cleanly(&run, &failed, f.cause, &ctx);

        // A writable opening finishes an erasure its record announced.
        cli.ok(&["append", "-"], &ndjson(&events("after", 0, 1)));
        let of = |t: &str| cli.ok(&["query", "--type", t], b"").lines();
        let email = cli.ok(&["get", &seq], b"").json();
        let customer = &email["data"]["recipient_details"]["customer_id"];
        match of("audit.legal_erasure").as_slice() {
            [] => {
                assert_ne!(run.code, 0, "{ctx}: erased without its record");
                assert_eq!(customer, "cust-1", "{ctx}");
                assert_eq!(payloads(&dir), 1, "{ctx}: a payload deleted, no erasure");
            }
            [_] => {
                assert_eq!(customer["$personal"], "erased", "{ctx}: {email}");
                assert_eq!(
                    payloads(&dir),
                    0,
                    "{ctx}: the person's payload outlived the erasure"
                );
                let deleted = of("audit.payload_deleted");
                assert_eq!(deleted.len(), 1, "{ctx}: {deleted:?}");
            }
            more => panic!("{ctx}: {} erasure records", more.len()),
        }
        cli.assert_verifies();
        !failed.is_empty()
    });
}
