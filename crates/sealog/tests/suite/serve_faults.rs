//! `sealog serve` with one system call made to fail by `strace -e inject=…`: the `N`th
//! `fdatasync` of each thread with EIO, or the `N`th `pwrite64` on the log's segment with
//! ENOSPC (a group's frames, or the zeros laid down ahead of them, whose failure fails
//! nothing). Events are appended one per request, each answered before the next is sent, on a
//! data directory that already holds records.
//!
//! Every answer is 200 with the event appended, or 503 with `Retry-After`, never another
//! status, and the server does not panic. Once a write failed, the store is poisoned: every
//! later append is refused the same way and `/readyz` says why, until a restart; stopped by
//! SIGTERM, the server exits with a failure that says so, for its supervisor. Opened again
//! without faults, every acknowledged event is in the log at the seq it was given, past them
//! the log holds at most the events sent, in order, `sealog verify` passes, and the next
//! append takes the next seq. Without strace the test is skipped loudly, except under CI.

use std::path::Path;
use std::process::Command;

use sealog_ledger::Undeclared;
use sealog_testkit::app::open_ledger;
use sealog_testkit::cli::{child_of, signal, strace_failing, strace_usable};
use sealog_testkit::events::{event, ndjson};
use sealog_testkit::http::{Api, ServerProcess};
use sealog_testkit::{Cli, tempdir, wait_for};
use serde_json::Value;

/// The call, its error, and the file it is counted on (any, when `None`): writes are counted
/// on the log's segment, since the server's first write elsewhere prints its address.
const FAULTS: &[(&str, &str, Option<&str>)] = &[
    ("fdatasync", "EIO", None),
    ("pwrite64", "ENOSPC", Some("log/00000000000000000000.seg")),
];
/// Records in the directory before the server starts.
const BEFORE: usize = 3;
/// Events sent to the faulted server, one per request.
const SENT: usize = 12;

fn cli(dir: &Path) -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_sealog"), dir).accepting_undeclared()
}

fn id(n: usize, i: usize) -> String {
    format!("f{n}-{i:03}")
}

fn faulted(
    cli: &Cli,
    trace: &Path,
    (call, errno, file): (&str, &str, Option<&str>),
    n: usize,
) -> Command {
    let path = file.map(|f| cli.dir.join(f));
    strace_failing(
        &cli.command(&["serve", "--listen", "127.0.0.1:0"]),
        (call, errno),
        n,
        path.as_deref(),
        trace,
    )
}

/// What the faulted server answered: each acknowledged event's (index, seq, record id), and
/// whether a refusal came.
struct Answers {
    acked: Vec<(usize, u64, String)>,
    refused: usize,
}

fn append_each(server: &ServerProcess, n: usize) -> Answers {
    let mut out = Answers {
        acked: Vec::new(),
        refused: 0,
    };
    for i in 0..SENT {
        let e = event(&id(n, i), Some("acme"), "s1", "test.fault");
        let r = server.send(
            "POST",
            "/v1/events",
            &[("content-type", "application/x-ndjson")],
            Some(&ndjson(std::slice::from_ref(&e))),
        );
        match r.status {
            200 => {
                assert_eq!(
                    out.refused, 0,
                    "an append succeeded after one was refused: the store must stay poisoned"
                );
                let result = &r.json()["results"][0];
                assert_eq!(result["status"], "appended", "{result}");
                out.acked.push((
                    i,
                    result["seq"].as_u64().expect("a seq"),
                    result["record_id"]
                        .as_str()
                        .expect("a record id")
                        .to_string(),
                ));
            }
            503 => {
                assert!(
                    r.header("retry-after").is_some(),
                    "a 503 says when to retry: {}",
                    r.text()
                );
                out.refused += 1;
            }
            other => panic!("append answered {other}: {}", r.text()),
        }
    }
    out
}

fn check(dir: &Path, cli: &Cli, answers: &Answers, n: usize) {
    let ledger = open_ledger(dir, Undeclared::Accept);
    let have = ledger.len() as usize;
    for (i, seq, record_id) in &answers.acked {
        let record: Value = serde_json::from_slice(
            &ledger
                .get(*seq)
                .unwrap()
                .unwrap_or_else(|| panic!("acknowledged seq {seq} is lost ({have} records)")),
        )
        .unwrap();
        assert_eq!(record["record_id"], record_id.as_str(), "seq {seq}");
        assert_eq!(record["id"], id(n, *i), "seq {seq}");
    }
    // Past what was there before, the faulted run's events in the order sent (the server's
    // own records between them).
    let mut last = None;
    for seq in BEFORE..have {
        let record: Value =
            serde_json::from_slice(&ledger.get(seq as u64).unwrap().unwrap()).unwrap();
        if record["type"] != "test.fault" {
            continue;
        }
        let i: usize = record["id"]
            .as_str()
            .and_then(|s| s.strip_prefix(&format!("f{n}-")))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("record {seq} is not one of the events sent: {record}"));
        assert!(
            last.is_none_or(|l| i > l),
            "record {seq}: events out of order"
        );
        last = Some(i);
    }
    ledger.close().unwrap();
    cli.assert_verifies();
    let next = cli.ok(
        &["append", "-"],
        &ndjson(&[event("after", Some("acme"), "s1", "test.fault")]),
    );
    let line = &next.lines()[0];
    assert_eq!(line["status"], "appended", "{line}");
    assert_eq!(
        line["seq"], have as u64,
        "the next append takes the next seq"
    );
}

#[test]
fn a_failed_write_or_sync_under_the_server_refuses_appends_and_loses_nothing_acknowledged() {
    if !strace_usable() {
        return;
    }
    let (mut runs, mut hit) = (0, 0);
    for &(call, errno, file) in FAULTS {
        let mut refusing = 0;
        for n in 1..=4 {
            let tmp = tempdir();
            let dir = tmp.path().join("data");
            let cli = cli(&dir);
            let before: Vec<Value> = (0..BEFORE)
                .map(|i| event(&format!("before-{i}"), Some("acme"), "s1", "test.fault"))
                .collect();
            cli.ok(&["append", "-"], &ndjson(&before));
            let trace = tmp.path().join("trace");
            let mut server =
                ServerProcess::spawn(faulted(&cli, &trace, (call, errno, file), n), &dir);
            // strace holds off fatal signals: they go to the server, its child.
            let server_pid = wait_for(30, "the traced server's pid", || {
                child_of(server.child.id())
            });
            let answers = append_each(&server, n);
            if answers.refused > 0 {
                let ready = server.get("/readyz", None);
                assert_eq!(ready.status, 503, "{}", ready.text());
                assert!(
                    ready.json()["reasons"]
                        .to_string()
                        .contains("refuses writes"),
                    "{}",
                    ready.text()
                );
            }
            signal(server_pid, libc::SIGTERM);
            let status = server.wait_exit(sealog_testkit::http::SERVER_SECS_MAX);
            let log = server.log_text();
            if answers.refused > 0 {
                assert!(
                    !status.success()
                        && log.contains("the store stopped taking writes while serving"),
                    "{call}={errno} when={n}: a server whose store failed stopped with {status}: {log}"
                );
            }
            assert!(
                !log.contains("panicked"),
                "{call}={errno} when={n}: the server panicked: {log}"
            );
            let injected = wait_for(30, "the trace to be written", || {
                std::fs::read_to_string(&trace).ok()
            })
            .lines()
            .filter(|l| l.contains("(INJECTED)"))
            .count();
            if answers.refused > 0 {
                assert!(
                    injected > 0,
                    "appends were refused with no call failing: {log}"
                );
            }
            check(&dir, &cli, &answers, n);
            runs += 1;
            hit += usize::from(injected > 0);
            refusing += usize::from(answers.refused > 0);
            eprintln!(
                "{call}={errno} when={n}: {} acknowledged, {} refused, {injected} calls failed, {status}",
                answers.acked.len(),
                answers.refused
            );
        }
        assert!(
            refusing > 0,
            "{call}={errno}: no run had an append refused: the fault never reached the store's writes"
        );
    }
    eprintln!("serve faults: {runs} runs, {hit} with a failed call, 0 failures");
    assert!(hit > 0, "no run had a call fail");
}
