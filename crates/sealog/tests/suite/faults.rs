//! A write the operating system refuses, through the real binary: `sealog append` runs with
//! a file size limit (`RLIMIT_FSIZE`, `SIGXFSZ` ignored), so the segment write that crosses
//! it fails with `EFBIG`. The group it carried gets no result line, the command fails naming
//! the file and the cause, and every line printed before it reports a record that is in the
//! log at its seq once the directory is opened again without the limit; after them the log
//! holds at most the start of the group that failed, and `verify` passes.
//!
//! The store's side of it (every later append refused as poisoned, and the positions file
//! and index runs failing the same way) is in `sealog-store`'s `tests/faults.rs`.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use sealog_ledger::{Ledger, LedgerConfig, Packs, StoreConfig, Undeclared};
use sealog_model::RecordId;
use sealog_testkit::cli::result_lines;
use sealog_testkit::events::{event, ndjson};
use sealog_testkit::{Cli, wait_for};
use serde_json::Value;

/// Room for a few hundred events in the segment; every other file stays far below it.
const FILE_SIZE_LIMIT: u64 = 96 << 10;
/// Events sent at a time; the next are sent once these are answered.
const CHUNK: usize = 10;

#[allow(unsafe_code)]
fn limit_file_size(cmd: &mut Command, limit: u64) {
    // SAFETY: between fork and exec the closure calls only setrlimit(2) and signal(2), both
    // async-signal-safe, and touches no memory the parent's other threads could hold.
    unsafe {
        cmd.pre_exec(move || {
            let rl = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rl) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Without this the write that crosses the limit kills the process instead of
            // failing with EFBIG.
            if libc::signal(libc::SIGXFSZ, libc::SIG_IGN) == libc::SIG_ERR {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn id(n: usize) -> String {
    format!("fault-{n:05}")
}

#[test]
fn an_append_whose_write_fails_prints_nothing_for_it_and_keeps_what_it_printed() {
    let dir = sealog_testkit::tempdir();
    let cli = Cli::new(env!("CARGO_BIN_EXE_sealog"), dir.path()).accepting_undeclared();
    let mut cmd = cli.command(&["append"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    limit_file_size(&mut cmd, FILE_SIZE_LIMIT);
    let mut child = cmd.spawn().expect("start sealog append");
    let (lines, reader) = result_lines(child.stdout.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    let mut printed: Vec<Value> = Vec::new();
    let mut sent = 0usize;
    let status = loop {
        let events: Vec<Value> = (sent..sent + CHUNK)
            .map(|n| event(&id(n), Some("acme"), &format!("s{}", n % 7), "test.fault"))
            .collect();
        // A child that has stopped reading has failed: its status says how.
        if stdin
            .write_all(&ndjson(&events))
            .and_then(|()| stdin.flush())
            .is_err()
        {
            break child.wait().unwrap();
        }
        sent += CHUNK;
        let exited = wait_for(60, "the chunk's results or the end of sealog", || {
            printed.extend(lines.try_iter());
            if printed.len() == sent {
                return Some(None);
            }
            child.try_wait().unwrap().map(Some)
        });
        if let Some(status) = exited {
            break status;
        }
        assert!(sent < 100_000, "the file size limit was never reached");
    };
    drop(stdin);
    reader.join().unwrap();
    printed.extend(lines.try_iter());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();

    assert_eq!(status.code(), Some(2), "sealog append failed: {stderr}");
    assert!(
        stderr.contains("File too large") && stderr.contains(".seg"),
        "the error names the segment and the cause: {stderr}"
    );
    let acked = printed.len();
    assert!(
        acked >= CHUNK && acked < sent,
        "{acked} of {sent} events were answered before the failure"
    );
    let mut ids = Vec::new();
    for (n, line) in printed.iter().enumerate() {
        assert_eq!(line["status"], "appended", "{line}");
        assert_eq!(line["seq"], n as u64, "results come in input order: {line}");
        ids.push(RecordId::parse(line["record_id"].as_str().unwrap()).unwrap());
    }

    // Opened again without the limit, by the library: a CLI read would append its own
    // `audit.access` record.
    let ledger = Ledger::open(
        dir.path(),
        LedgerConfig {
            store: StoreConfig::default(),
            packs: Packs::builtin(),
            undeclared: Undeclared::Accept,
        },
    )
    .unwrap();
    let have = ledger.len() as usize;
    eprintln!(
        "{acked} of {sent} printed, {have} in the log; sealog said: {}",
        stderr.trim()
    );
    for (seq, rid) in ids.iter().enumerate() {
        assert_eq!(
            ledger.seq_of(rid).unwrap(),
            Some(seq as u64),
            "printed record {seq}"
        );
    }
    // Past the printed records: at most the whole frames of the group that failed, which was
    // the next chunk sent.
    assert!(
        have >= acked && have <= acked + CHUNK,
        "{have} records after reopening, {acked} printed"
    );
    for seq in acked..have {
        let record: Value =
            serde_json::from_slice(&ledger.get(seq as u64).unwrap().unwrap()).unwrap();
        assert_eq!(record["id"], id(seq), "record {seq} is the failed group's");
    }
    assert!(
        ledger.recovery().0.cut.is_some(),
        "the write cut short by the limit left a torn tail, cut on reopening"
    );
    ledger.close().unwrap();
    cli.assert_verifies();
}
