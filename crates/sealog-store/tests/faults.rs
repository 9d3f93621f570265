//! "A failed write or fsync poisons the store until reopened": real failures, and what the
//! store answers after them.
//!
//! A failed write is made by the operating system: the store runs in a child process whose
//! file size limit (`RLIMIT_FSIZE`, with `SIGXFSZ` ignored) makes the write that crosses it
//! fail with `EFBIG`, first in a segment, then in the positions file (segments kept small by
//! rolling), then in an index run (merged runs outgrow both). The tree's level files grow by
//! 32 bytes a record exactly like the positions file and are written just after it, so the
//! limit can never reach them first. No system fails an fsync on demand, so a failed fsync
//! comes from the store's I/O seam (`io::testing::Faults`), which reports the Nth segment fsync as
//! failed after it ran.
//!
//! Either way: the failed append is answered with an error, and every later one is refused
//! as poisoned, even once the disk would take writes again (the child lifts its limit after
//! the first failure), so nothing after the failure is acknowledged; reopened without the
//! fault, the log holds every acknowledged record, then at most the failed group's records
//! that reached the disk, and nothing else, and `verify` passes.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use sealog_model::LogLayout;
use sealog_store::conformance::{TestKeys, Unique, entry, event};
use sealog_store::io::testing::{Fault, Faults, Op, Plan};
use sealog_store::io::{Io, operating_system};
use sealog_store::{Config, Durability, Id, LogRead, LogWrite, Outcome, Store, StoreError};
use sealog_testkit::wait_for;

/// What the child is told through its environment.
const CHILD_ENV: &str = "SEALOG_STORE_FAULTS_CHILD";
/// Batches the child still sends once an append has failed: each must be refused.
const AFTER_FAILURE: usize = 4;

fn open(dir: &Path, config: Config) -> Store<Unique> {
    Store::open(&LogLayout::new(dir), config, Arc::new(TestKeys), Unique)
        .unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

/// Event `n` of a run: its tenant and subject vary, so index runs hold several postings.
fn event_text(n: u64) -> String {
    event(n, &format!("t{}", n % 3), &format!("s{}", n % 11), None)
}

fn id_of(n: u64) -> Id {
    entry(&event_text(n)).id()
}

/// How one trial runs: the store's configuration and the child's file size limit.
#[derive(Debug, Clone, Copy)]
struct Trial {
    segment_bytes_max: u64,
    memtable_records_max: u64,
    file_size_limit: u64,
    batch: u64,
}

impl Trial {
    fn config(&self) -> Config {
        Config {
            durability: Durability::Fsync,
            segment_bytes_max: self.segment_bytes_max,
            memtable_records_max: self.memtable_records_max,
            ..Config::default()
        }
    }

    fn encode(&self, dir: &Path) -> String {
        format!(
            "{} {} {} {} {}",
            self.segment_bytes_max,
            self.memtable_records_max,
            self.file_size_limit,
            self.batch,
            dir.display()
        )
    }

    fn decode(text: &str) -> (Trial, std::path::PathBuf) {
        let mut parts = text.splitn(5, ' ');
        let mut num = || parts.next().unwrap().parse::<u64>().unwrap();
        let trial = Trial {
            segment_bytes_max: num(),
            memtable_records_max: num(),
            file_size_limit: num(),
            batch: num(),
        };
        (trial, parts.next().unwrap().into())
    }
}

/// What the child reported, line by line.
#[derive(Debug, Default)]
struct Report {
    /// (seq, event number) of every record whose append was answered.
    acked: Vec<(u64, u64)>,
    /// The event numbers of each batch whose append failed, the first one first.
    failed_batches: Vec<Vec<u64>>,
    /// The error of each failed append, the first one first.
    errors: Vec<String>,
    /// The store's length once the first append had failed.
    len_after_failure: Option<u64>,
    /// What the final close said: `ok`, or its error.
    closed: Option<String>,
}

/// The child: appends batches until one fails, then a few more, printing what each got.
#[test]
#[ignore = "the child process of the file size limit trials; the trials start it"]
fn child_appends_under_a_file_size_limit() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        eprintln!("run only by the file size limit trials, with {CHILD_ENV} set");
        return;
    };
    let (trial, dir) = Trial::decode(&spec);
    let out = &mut std::io::stdout().lock();
    let store = open(&dir, trial.config());
    let mut next = 0u64;
    // Batches sent since the first failure, that one included.
    let mut since_failure = 0;
    // Bounded: a limit that is never reached fails the trial rather than filling the disk.
    while next < 100_000 && since_failure <= AFTER_FAILURE {
        let numbers: Vec<u64> = (next..next + trial.batch).collect();
        next += trial.batch;
        let entries = numbers.iter().map(|&n| entry(&event_text(n))).collect();
        let result = store.append(entries);
        if result.is_err() && since_failure == 0 {
            // The disk would take writes again: the store must still refuse them.
            lift_file_size_limit();
        }
        if result.is_err() || since_failure > 0 {
            since_failure += 1;
        }
        match result {
            Ok(outcomes) => {
                for (o, n) in outcomes.iter().zip(&numbers) {
                    match o {
                        Outcome::Appended { seq, .. } => writeln!(out, "FAULTS ack {seq} {n}"),
                        other => panic!("event {n} was not appended: {other:?}"),
                    }
                    .unwrap();
                }
            }
            Err(e) => {
                let list: Vec<String> = numbers.iter().map(u64::to_string).collect();
                writeln!(out, "FAULTS failed-batch {}", list.join(" ")).unwrap();
                writeln!(out, "FAULTS err {}", one_line(&e)).unwrap();
                writeln!(out, "FAULTS len {}", store.len()).unwrap();
            }
        }
        out.flush().unwrap();
    }
    let closed = store
        .close()
        .map_or_else(|e| one_line(&e), |()| "ok".into());
    writeln!(out, "FAULTS closed {closed}").unwrap();
}

/// Raises this process's soft file size limit back to its hard limit (none).
#[allow(unsafe_code)]
fn lift_file_size_limit() {
    let rl = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit(2) reads the struct it is handed and nothing else.
    let lifted = unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &rl) };
    assert_eq!(lifted, 0, "{}", std::io::Error::last_os_error());
}

fn one_line(e: &StoreError) -> String {
    e.to_string().replace('\n', " ")
}

/// A child process that is killed and reaped if the test ends before it does.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if self.0.try_wait().is_ok_and(|s| s.is_none()) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Reads a pipe to its end on a thread of its own, so that neither pipe can fill and stall
/// the child.
fn read_all(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        pipe.read_to_end(&mut out).unwrap();
        out
    })
}

/// Runs the child under `trial`'s file size limit, on `dir`, and reads its report.
#[allow(unsafe_code)]
fn run_child(trial: Trial, dir: &Path) -> Report {
    let limit = trial.file_size_limit;
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "child_appends_under_a_file_size_limit",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, trial.encode(dir))
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    // SAFETY: between fork and exec the closure calls only setrlimit(2) and signal(2), both
    // async-signal-safe, and touches no memory the parent's other threads could hold.
    unsafe {
        cmd.pre_exec(move || {
            // Only the soft limit: the child lifts it once an append has failed.
            let rl = libc::rlimit {
                rlim_cur: limit,
                rlim_max: libc::RLIM_INFINITY,
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
    let mut child = Reaped(cmd.spawn().expect("start the child"));
    let stdout = read_all(child.0.stdout.take().unwrap());
    let stderr = read_all(child.0.stderr.take().unwrap());
    // A store that stops answering would hang the trial: it fails instead.
    let status = wait_for(120, "the child to finish", || child.0.try_wait().unwrap());
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(status.success(), "the child failed ({status:?}): {stderr}");
    let mut report = Report::default();
    for line in BufReader::new(&stdout[..]).lines() {
        let line = line.unwrap();
        // The harness may print its own words on the line before the first report.
        let Some(at) = line.find("FAULTS ") else {
            continue;
        };
        let rest = &line[at + "FAULTS ".len()..];
        let (what, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let nums = || rest.split(' ').map(|n| n.parse::<u64>().unwrap());
        match what {
            "ack" => {
                let v: Vec<u64> = nums().collect();
                report.acked.push((v[0], v[1]));
            }
            "failed-batch" => report.failed_batches.push(nums().collect()),
            "err" => report.errors.push(rest.to_string()),
            "len" => {
                report
                    .len_after_failure
                    .get_or_insert(rest.parse().unwrap());
            }
            "closed" => report.closed = Some(rest.to_string()),
            other => panic!("unknown report line {other}: {line}"),
        }
    }
    report
}

/// What every trial holds to, whichever file failed: the failure is an error, every later
/// append is refused as poisoned with the first failure's cause, nothing after it was
/// acknowledged, and the reopened log is the acknowledged records, then at most the failed
/// batch's records (in order, from its start), then nothing; `verify` passes.
fn check_poisoned(report: &Report, dir: &Path, config: Config, failed_file: &str, torn: bool) {
    let first = report
        .errors
        .first()
        .unwrap_or_else(|| panic!("no append failed: {report:?}"));
    assert!(
        report.acked.len() > 10,
        "records were acknowledged before the failure: {report:?}"
    );
    assert!(
        first.contains(failed_file) && first.contains("File too large"),
        "the failure names the file and the cause ({failed_file}): {first}"
    );
    assert_eq!(
        report.errors.len(),
        AFTER_FAILURE + 1,
        "every append after the failure was answered with an error: {report:?}"
    );
    assert!(
        first.starts_with("the store stopped accepting writes after an I/O failure: "),
        "the failed append is answered as poisoning the store: {first}"
    );
    for later in &report.errors[1..] {
        assert_eq!(
            later, first,
            "a later append is refused with the first cause"
        );
    }
    // Acknowledged seqs are dense from 0, and every acknowledged event was sent before the
    // batch that failed: nothing after the failure was acknowledged.
    let seqs: Vec<u64> = report.acked.iter().map(|a| a.0).collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    let failed_batch = &report.failed_batches[0];
    assert!(
        report.acked.iter().all(|&(_, n)| n < failed_batch[0]),
        "an append after the failure was acknowledged: {report:?}"
    );
    assert_eq!(report.closed.as_deref(), Some("ok"), "{report:?}");
    let len = report.len_after_failure.unwrap();
    assert!(
        len >= report.acked.len() as u64 && len <= (report.acked.len() + failed_batch.len()) as u64,
        "readers of the poisoned store saw {len} records, {} acknowledged",
        report.acked.len()
    );

    let store = open(dir, config);
    assert_eq!(
        store.recovery().cut.is_some(),
        torn,
        "a write cut short by the limit leaves a torn tail for reopening to cut: {:?}",
        store.recovery()
    );
    let have = store.len();
    let acked = report.acked.len() as u64;
    assert!(
        have >= acked,
        "only {have} of {acked} acknowledged records survived"
    );
    for &(seq, n) in &report.acked {
        let got = store.seq_of(&id_of(n)).unwrap();
        assert_eq!(got, Some(seq), "acknowledged event {n} is record {seq}");
    }
    let extra = have - acked;
    eprintln!(
        "{acked} acknowledged, {extra} of the failed batch of {} on the disk; then: {first}",
        failed_batch.len()
    );
    assert!(
        extra <= failed_batch.len() as u64,
        "the log holds {extra} records past the acknowledged ones, more than the failed batch ({report:?})"
    );
    for (i, n) in failed_batch.iter().enumerate() {
        let seq = store.seq_of(&id_of(*n)).unwrap();
        let want = ((i as u64) < extra).then_some(acked + i as u64);
        assert_eq!(seq, want, "event {n} of the failed batch");
    }
    for n in report.failed_batches[1..].iter().flatten() {
        assert_eq!(store.seq_of(&id_of(*n)).unwrap(), None, "refused event {n}");
    }
    // The reopened store takes appends again, and a clean close signs everything.
    let more = store
        .append(vec![entry(&event_text(1_000_000))])
        .expect("a reopened store appends");
    assert_eq!(more[0].seq(), Some(have));
    store.close().unwrap();
    let report = sealog_store::verify::verify(
        &LogLayout::new(dir),
        &sealog_store::verify::Options {
            indexer: Some(&TestKeys),
            full: true,
            ..Default::default()
        },
    )
    .unwrap_or_else(|f| panic!("verify after the failure: {f}"));
    assert_eq!(report.records, have + 1);
    assert_eq!(report.signed_records, have + 1);
}

/// Runs `trial` and checks it failed in `failed_file`; `torn` when that file is the segment,
/// whose write the limit cuts short.
fn trial(trial: Trial, failed_file: &str, torn: bool) {
    let dir = sealog_testkit::tempdir();
    let report = run_child(trial, dir.path());
    check_poisoned(&report, dir.path(), trial.config(), failed_file, torn);
}

#[test]
fn a_segment_write_that_fails_poisons_the_store() {
    // One segment: it outgrows every other file.
    trial(
        Trial {
            segment_bytes_max: 1 << 30,
            memtable_records_max: 1 << 20,
            file_size_limit: 48 << 10,
            batch: 7,
        },
        ".seg",
        true,
    );
}

#[test]
fn a_positions_write_that_fails_poisons_the_store() {
    // Small segments roll; positions grow by 32 bytes a record, ahead of the tree's level 0.
    trial(
        Trial {
            segment_bytes_max: 4 << 10,
            memtable_records_max: 1 << 20,
            file_size_limit: 12 << 10,
            batch: 5,
        },
        "index/positions",
        false,
    );
}

#[test]
fn an_index_run_write_that_fails_poisons_the_store() {
    // Memtables of 18 records (six batches of 3) merge four at a time: into runs of 72, of
    // 288, and at the 64th memtable of 1,152 records, whose 46,080 bytes of record ids (40 a
    // record) cross the limit while the positions and the tree's leaves (32 a record) reach
    // it only at 1,313 records, eight memtables later. No run before that one holds more than
    // 288 records.
    trial(
        Trial {
            segment_bytes_max: 4 << 10,
            memtable_records_max: 16,
            file_size_limit: 42_000,
            batch: 3,
        },
        "index/run-",
        false,
    );
}

/// A segment fsync reported as failed (after it ran, so the group is on the disk): the store
/// answers it as poisoned, signs no checkpoint past what it acknowledged, refuses every later
/// append, and the reopened log is the acknowledged records and that group.
#[test]
fn a_failed_segment_fsync_poisons_the_store() {
    for nth in [1u64, 5] {
        let dir = sealog_testkit::tempdir();
        let faults = Arc::new(Faults::new(operating_system()));
        let config = Config {
            durability: Durability::Fsync,
            io: Io::new(faults.clone()),
            ..Config::default()
        };
        let store = open(dir.path(), config);
        // Counted from here: the segment's creation synced it once already.
        faults.arm(Plan {
            op: Op::Sync,
            nth,
            fault: Fault::AfterSync,
            path_contains: Some(".seg".into()),
        });
        let batch = |b: u64| (b * 4..b * 4 + 4).collect::<Vec<u64>>();
        let append = |b: u64| {
            let entries = batch(b).iter().map(|&n| entry(&event_text(n))).collect();
            store.append(entries)
        };
        for b in 0..nth - 1 {
            let out = append(b).unwrap();
            let seqs: Vec<_> = out.iter().map(Outcome::seq).collect();
            let want: Vec<_> = (b * 4..b * 4 + 4).map(Some).collect();
            assert_eq!(seqs, want, "fsync {nth}: batch {b}");
        }
        let acked = (nth - 1) * 4;
        let failed = append(nth - 1).expect_err("the append whose fsync failed");
        let text = failed.to_string();
        assert!(
            matches!(failed, StoreError::Poisoned(_))
                && text.contains("Input/output error")
                && text.contains(".seg"),
            "fsync {nth}: {text}"
        );
        assert_eq!(store.len(), acked, "fsync {nth}: readers see nothing new");
        for b in nth..nth + 3 {
            let later = append(b).expect_err("an append after the failure");
            assert!(
                matches!(later, StoreError::Poisoned(_)) && later.to_string() == text,
                "fsync {nth}: batch {b} is refused with the first cause: {later}"
            );
        }
        // A checkpoint already covering what readers see may be handed out; a new one is
        // refused, since only the writer's poisoned frontier could give its root.
        match store.checkpoint() {
            Ok(c) => assert_eq!(c.size, acked, "fsync {nth}: an existing checkpoint"),
            Err(e) => assert!(
                matches!(e, StoreError::Poisoned(_)),
                "fsync {nth}: a poisoned store signs nothing: {e}"
            ),
        }
        assert!(
            store.latest_checkpoint().is_none_or(|c| c.size <= acked),
            "fsync {nth}: no checkpoint covers what was not acknowledged"
        );
        assert_eq!(store.len(), acked);
        store.close().unwrap();

        let store = open(dir.path(), Config::default());
        assert_eq!(
            store.len(),
            acked + 4,
            "fsync {nth}: the acknowledged records and the group whose fsync ran"
        );
        for n in 0..acked + 4 {
            assert_eq!(store.seq_of(&id_of(n)).unwrap(), Some(n), "fsync {nth}");
        }
        for n in acked + 4..acked + 16 {
            assert_eq!(store.seq_of(&id_of(n)).unwrap(), None, "fsync {nth}");
        }
        store.close().unwrap();
        let report = sealog_store::verify::verify(
            &LogLayout::new(dir.path()),
            &sealog_store::verify::Options {
                indexer: Some(&TestKeys),
                full: true,
                ..Default::default()
            },
        )
        .unwrap_or_else(|f| panic!("fsync {nth}: verify: {f}"));
        assert_eq!(report.records, acked + 4);
    }
}
