//! The store through its I/O seam, under random appends, reads, injected faults and power
//! cuts, against a model of what it acknowledged.
//!
//! Every file operation the store makes on its log goes through [`Faults`] (which fails the
//! one it is told to: a write, sync, truncation, rename, removal or directory sync, with EIO,
//! ENOSPC, a torn write or a sync that ran and then failed; or a read of recovery's, with EIO
//! or fewer bytes than asked) over [`Crashable`] (which keeps
//! what each sync promised). A power cut writes the image a cut at that moment would leave
//! (only synced bytes and names, with a seeded part of the unsynced ones) into a new
//! directory, and the store is opened there, sometimes with a fault planned during its
//! recovery too (then opened again without it).
//!
//! What must hold, whatever the order:
//! - an acknowledged record survives every cut, whole, at its seq, found by its id;
//! - an append that failed was answered with an error, and every later one is refused until
//!   the store is reopened (it never acknowledges on a disk it can no longer trust);
//! - after a cut the log is the acknowledged records, then at most a prefix of the first
//!   failed batch (records that reached the disk though their append failed), then nothing;
//!   never part of a record, never a record out of place;
//! - reads answer correctly or refuse, never a wrong record;
//! - once closed, `verify` passes on the last directory.
//!
//! Cases come from a fixed seed; `PROPTEST_RNG_SEED=<n>` explores others and
//! `PROPTEST_CASES=<n>` runs more.

use std::path::PathBuf;
use std::sync::Arc;

use proptest::prelude::*;
use sealog_model::LogLayout;
use sealog_model::record::read_stored;
use sealog_store::conformance::{TestKeys, Unique, entry, event};
use sealog_store::io::testing::{Crashable, Fault, Faults, Op, Plan};
use sealog_store::io::{Io, operating_system};
use sealog_store::{Config, Durability, LogRead, LogWrite, Outcome, Store, StoreError};

const SEED: u64 = 0x0C4A_5E5E;

type TestStore = Store<Unique>;

fn event_text(n: u64) -> String {
    event(n, &format!("t{}", n % 3), &format!("s{}", n % 7), None)
}

#[derive(Debug, Clone)]
enum Step {
    Append(u64),
    Read,
    Fault(Plan),
    /// A power cut; the seed picks what unsynced bytes survive, and a fault may be planned
    /// for the recovery that follows.
    Cut(u64, Option<Plan>),
}

/// A fault for a running store, or (`recovery`) for the opening after a cut: only recovery
/// reads through the seam, so only its plans fail reads.
fn plan(recovery: bool) -> impl Strategy<Value = Plan> {
    let op = prop_oneof![
        4 => Just(Op::Write),
        4 => Just(Op::Sync),
        1 => Just(Op::SetLen),
        1 => Just(Op::Rename),
        1 => Just(Op::Remove),
        2 => Just(Op::SyncDir),
        if recovery { 6 } else { 0 } => Just(Op::Read),
    ];
    let fault = prop_oneof![
        Just(Fault::Eio),
        Just(Fault::NoSpace),
        (0usize..600).prop_map(Fault::Torn),
        Just(Fault::AfterSync),
    ];
    let target = prop_oneof![
        Just(None),
        Just(Some("segments".to_string())),
        Just(Some("index".to_string())),
    ];
    (op, 1u64..6, fault, target).prop_map(|(op, nth, fault, path_contains)| Plan {
        op,
        nth,
        fault,
        path_contains,
    })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (1u64..9).prop_map(Step::Append),
        2 => Just(Step::Read),
        2 => plan(false).prop_map(Step::Fault),
        3 => (any::<u64>(), proptest::option::weighted(0.3, plan(true)))
            .prop_map(|(s, p)| Step::Cut(s, p)),
    ]
}

fn config_strategy() -> impl Strategy<Value = (u64, u64)> {
    // Small segments and memtables: rolls, compressions, flushes and merges all happen.
    (
        prop_oneof![Just(1_500u64), Just(4_000), Just(64 << 10)],
        4u64..40,
    )
}

/// The file systems of one directory's life: faults over a crash record over the OS.
struct Disk {
    dir: PathBuf,
    faults: Arc<Faults>,
    crashable: Arc<Crashable>,
}

impl Disk {
    fn over(dir: PathBuf) -> Disk {
        let crashable = Arc::new(Crashable::new(operating_system(), &dir).expect("crashable"));
        let faults = Arc::new(Faults::new(crashable.clone()));
        Disk {
            dir,
            faults,
            crashable,
        }
    }

    fn config(&self, segment_bytes_max: u64, memtable_records_max: u64) -> Config {
        Config {
            durability: Durability::Fsync,
            segment_bytes_max,
            memtable_records_max,
            io: Io::new(self.faults.clone()),
            ..Config::default()
        }
    }
}

/// What the store acknowledged, and the first batch it refused since it last opened.
#[derive(Default)]
struct Model {
    /// Event number per seq.
    acked: Vec<u64>,
    failed: Option<Vec<u64>>,
}

fn open(disk: &Disk, config: Config) -> Result<TestStore, StoreError> {
    Store::open(
        &LogLayout::new(&disk.dir),
        config,
        Arc::new(TestKeys),
        Unique,
    )
}

/// The record at `seq` is exactly event `n`'s.
fn check_record(store: &TestStore, seq: u64, n: u64) {
    let bytes = store
        .get(seq)
        .unwrap_or_else(|e| panic!("read {seq}: {e}"))
        .unwrap_or_else(|| panic!("record {seq} (event {n}) is missing"));
    let (s, rid) = read_stored(&bytes, |r| (r.seq, r.record_id.0))
        .unwrap_or_else(|e| panic!("record {seq} is not a whole record: {e}"));
    let id = entry(&event_text(n)).id();
    assert_eq!((s, rid), (seq, id), "record {seq} should be event {n}");
    assert_eq!(store.seq_of(&id).unwrap(), Some(seq), "event {n} by id");
}

fn check_all(store: &TestStore, model: &Model) {
    assert_eq!(store.len(), model.acked.len() as u64);
    for (seq, &n) in model.acked.iter().enumerate() {
        check_record(store, seq as u64, n);
    }
}

/// After a cut: every acknowledged record, then at most a prefix of the failed batch.
fn reconcile(store: &TestStore, model: &mut Model) {
    let len = store.len();
    let acked = model.acked.len() as u64;
    assert!(
        len >= acked,
        "{} acknowledged records lost: the log holds {len} of {acked}",
        acked - len.min(acked)
    );
    let failed = model.failed.take().unwrap_or_default();
    let extra = len - acked;
    assert!(
        extra <= failed.len() as u64,
        "{extra} records after the acknowledged ones, but only {} were ever sent unacknowledged",
        failed.len()
    );
    for (i, &n) in failed.iter().take(extra as usize).enumerate() {
        check_record(store, acked + i as u64, n);
        model.acked.push(n);
    }
    check_all(store, model);
}

/// Runs one case; returns the operations that faults failed in it.
fn run(segment_bytes_max: u64, memtable_records_max: u64, steps: &[Step]) -> Vec<Op> {
    let mut fired = Vec::new();
    let base = sealog_testkit::tempdir();
    let mut generation = 0;
    let fresh = |g: u32| {
        let d = base.path().join(format!("g{g}"));
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let mut disk = Disk::over(fresh(generation));
    let config = |d: &Disk| d.config(segment_bytes_max, memtable_records_max);
    let mut store = Some(open(&disk, config(&disk)).expect("a new store opens"));
    let mut model = Model::default();
    let mut next = 0u64;
    for step in steps {
        let s = store.as_ref().expect("open");
        match step {
            Step::Append(k) => {
                let batch: Vec<u64> = (next..next + k).collect();
                next += k;
                let entries = batch.iter().map(|&n| entry(&event_text(n))).collect();
                match s.append(entries) {
                    Ok(outcomes) => {
                        assert!(
                            model.failed.is_none(),
                            "an append was acknowledged after one failed, without a reopen"
                        );
                        for (o, &n) in outcomes.iter().zip(&batch) {
                            match o {
                                Outcome::Appended { seq, .. } => {
                                    assert_eq!(*seq, model.acked.len() as u64, "dense seqs");
                                    model.acked.push(n);
                                }
                                other => panic!("event {n}: {other:?}"),
                            }
                        }
                    }
                    Err(e) => {
                        assert!(
                            !disk.faults.fired().is_empty(),
                            "an append failed with no fault injected: {e}"
                        );
                        model.failed.get_or_insert(batch);
                    }
                }
            }
            Step::Read => {
                // Reads do not go through the seam: they must stay right even when writes
                // have failed, up to what was acknowledged.
                assert!(s.len() >= model.acked.len() as u64);
                for (seq, &n) in model.acked.iter().enumerate() {
                    check_record(s, seq as u64, n);
                }
            }
            Step::Fault(plan) => disk.faults.arm(plan.clone()),
            Step::Cut(seed, during_recovery) => {
                generation += 1;
                let cut = fresh(generation);
                disk.crashable
                    .crash_image(&disk.dir, &cut, *seed)
                    .expect("crash image");
                // The old process is gone: whatever it still does lands in the old directory.
                disk.faults.disarm();
                drop(store.take());
                fired.extend(disk.faults.fired().iter().map(|f| f.plan.op));
                disk = Disk::over(cut);
                let reopened = match during_recovery {
                    Some(plan) => {
                        disk.faults.arm(plan.clone());
                        let first = open(&disk, config(&disk));
                        disk.faults.disarm();
                        match first {
                            Ok(s) => Ok(s),
                            // A recovery that failed leaves what it did; the next must cope.
                            Err(_) => {
                                drop(first);
                                open(&disk, config(&disk))
                            }
                        }
                    }
                    None => open(&disk, config(&disk)),
                };
                let s = reopened.unwrap_or_else(|e| panic!("reopen after a cut: {e}"));
                reconcile(&s, &mut model);
                store = Some(s);
            }
        }
    }
    let s = store.take().unwrap();
    disk.faults.disarm();
    if model.failed.is_none() {
        check_all(&s, &model);
    }
    let closed = s.close();
    if disk.faults.fired().is_empty() {
        closed.expect("a store that met no fault closes cleanly");
    }
    fired.extend(disk.faults.fired().iter().map(|f| f.plan.op));
    // Whatever the last opening did, a clean reopening holds every acknowledged record and
    // the directory verifies.
    let plain = Disk::over(disk.dir.clone());
    let s = open(&plain, config(&plain)).expect("reopen to verify");
    reconcile(&s, &mut model);
    s.close().unwrap();
    let report = sealog_store::verify::verify(
        &LogLayout::new(&disk.dir),
        &sealog_store::verify::Options {
            indexer: Some(&TestKeys),
            full: true,
            ..Default::default()
        },
    )
    .unwrap_or_else(|f| panic!("verify: {f}"));
    assert_eq!(report.records, model.acked.len() as u64);
    fired
}

/// Every case, and then a check that the faults the cases planned really fired: a write, a
/// sync and a recovery's read at least, so that no kind of fault is planned for nothing.
#[test]
fn acknowledged_records_survive_faults_and_power_cuts() {
    let mut config = sealog_testkit::props::config(32, SEED);
    config.source_file = Some(file!());
    let fired = std::sync::Mutex::new(std::collections::BTreeMap::<String, u64>::new());
    let cases = (config_strategy(), proptest::collection::vec(step(), 1..40));
    proptest::test_runner::TestRunner::new(config)
        .run(&cases, |((segment, memtable), steps)| {
            for op in run(segment, memtable, &steps) {
                *fired.lock().unwrap().entry(format!("{op:?}")).or_default() += 1;
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let fired = fired.into_inner().unwrap();
    eprintln!("faults fired, by operation: {fired:?}");
    for op in [Op::Write, Op::Sync, Op::Read] {
        assert!(
            fired.contains_key(&format!("{op:?}")),
            "no {op:?} fault fired in any case: {fired:?}"
        );
    }
}

/// Appends from several threads gather into shared groups, and each is answered only once
/// the fsync covering its group returned: power cut images taken while four threads append
/// (segments roll, memtables freeze and checkpoints are signed meanwhile) each hold every
/// record acknowledged before the cut, at the seq it was acknowledged with.
#[test]
fn power_cuts_under_concurrent_appends_keep_every_acknowledged_record() {
    use std::sync::Mutex;
    const THREADS: u64 = 4;
    const APPENDS: u64 = 120;
    let base = sealog_testkit::tempdir();
    let dir = base.path().join("live");
    std::fs::create_dir_all(&dir).unwrap();
    let disk = Disk::over(dir);
    let config = Config {
        checkpoint_interval: std::time::Duration::from_millis(2),
        ..disk.config(4_096, 64)
    };
    let store = open(&disk, config).expect("a new store opens");
    let acked: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());
    let mut cuts: Vec<(PathBuf, Vec<(u64, u64)>)> = Vec::new();
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (store, acked) = (&store, &acked);
            scope.spawn(move || {
                for i in 0..APPENDS {
                    // One to three events a call, numbered apart per thread.
                    let batch: Vec<u64> = (0..1 + (t + i) % 3)
                        .map(|k| (t * APPENDS + i) * 3 + k)
                        .collect();
                    let entries = batch.iter().map(|&n| entry(&event_text(n))).collect();
                    let outcomes = store.append(entries).expect("no fault is injected");
                    let mut acked = acked.lock().unwrap();
                    for (o, &n) in outcomes.iter().zip(&batch) {
                        match o {
                            Outcome::Appended { seq, .. } => acked.push((*seq, n)),
                            other => panic!("event {n}: {other:?}"),
                        }
                    }
                }
            });
        }
        let total = THREADS * APPENDS * 2;
        for (c, at) in [total / 8, total / 4, total / 2, total * 3 / 4]
            .into_iter()
            .enumerate()
        {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while (acked.lock().unwrap().len() as u64) < at {
                assert!(std::time::Instant::now() < deadline, "appends stalled");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            // What was acknowledged is read before the image is taken.
            let before = acked.lock().unwrap().clone();
            let image = base.path().join(format!("cut{c}"));
            std::fs::create_dir_all(&image).unwrap();
            disk.crashable
                .crash_image(&disk.dir, &image, SEED + c as u64)
                .expect("crash image");
            cuts.push((image, before));
        }
    });
    store.close().expect("closes cleanly");
    for (image, before) in cuts {
        let plain = Disk::over(image.clone());
        let s = open(&plain, plain.config(4_096, 64))
            .unwrap_or_else(|e| panic!("reopen {}: {e}", image.display()));
        assert!(!before.is_empty());
        for &(seq, n) in &before {
            check_record(&s, seq, n);
        }
        s.close().unwrap();
    }
}
