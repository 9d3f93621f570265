//! SIGKILL the real binary while it applies retention, then prove from what is left on disk
//! that each segment is whole (old or new), that the next opening finishes what the
//! retention record says and nothing else, that every kept record reads as before, that the
//! tree still has the root it had, and that `verify` passes.
//!
//! Half the trials kill at a seeded delay after the spawn; the other half as soon as the
//! first segment is being rewritten (its `.prune` file appears), which lands the kill inside
//! the rewrite. A failure prints the seed to replay with `SEALOG_RETENTION_CRASH_SEED`.
//!
//! Retention applies only at an instant that has come, so the trials' types are a user pack's
//! that keeps them a second, and each application runs once they are that old.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use sealog_ledger::{
    Author, Durability, Error, Ledger, LedgerConfig, Packs, StoreConfig, Undeclared, VerifyOptions,
};
use sealog_testkit::{Cli, Rng, format, wait_for};

const SEED_BASE: u64 = 0x5EA1_0C4A_7E7E_0000;
const EVENTS: usize = 1500;

/// Writes into `dir` the pack of the trials' types, `trial.kind0` to `trial.kind2`, kept a
/// second.
fn write_pack(dir: &Path) {
    let kind = serde_json::json!({"schema": "kind.schema.json"});
    let manifest = serde_json::json!({"pack": "trial", "retention": "PT1S", "types": {
        "trial.kind0": kind, "trial.kind1": kind, "trial.kind2": kind}});
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    std::fs::write(
        dir.join("kind.schema.json"),
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object"}"#,
    )
    .unwrap();
}

fn config(segment_bytes_max: u64, packs: &Path) -> LedgerConfig {
    LedgerConfig {
        store: StoreConfig {
            durability: Durability::Os,
            segment_bytes_max,
            ..StoreConfig::default()
        },
        packs: Packs::load(&[packs]).unwrap(),
        undeclared: Undeclared::Accept,
    }
}

fn trials() -> u64 {
    std::env::var("SEALOG_RETENTION_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if sealog_testkit::under_ci() { 12 } else { 6 })
}

/// A log of `EVENTS` records over many small segments; every record is due a second later but
/// those of one tenant, which a hold keeps. Returns once they are due.
fn fill(dir: &Path, packs: &Path, rng: &mut Rng) -> Vec<Vec<u8>> {
    let ledger = Ledger::open(dir, config(16 << 10, packs)).unwrap();
    let lines: Vec<Vec<u8>> = (0..EVENTS)
        .map(|i| {
            format!(
                r#"{{"specversion":"1.0","id":"r-{i}","source":"retention-crash","type":"trial.kind{}","time":"2026-03-01T00:00:00Z","tenant":"t{}","subject":"s{}","data":{{"i":{i},"pad":"{}"}}}}"#,
                rng.below(3),
                rng.below(3),
                rng.below(50),
                "x".repeat(200 + rng.below(200) as usize)
            )
            .into_bytes()
        })
        .collect();
    for chunk in lines.chunks(250) {
        let items: Vec<_> = chunk.iter().map(|l| Ok(l.as_slice())).collect();
        ledger.ingest(&items, &Author::ANYONE).unwrap();
    }
    ledger
        .place_hold(
            &sealog_ledger::HoldScope {
                tenant: Some("t2"),
                ..Default::default()
            },
            &sealog_ledger::HoldAct {
                reason: "kept through the trials",
                act: sealog_ledger::Act {
                    actor: serde_json::json!({"type": "human", "id": "counsel"}),
                    time: "2026-11-30T00:00:00Z".into(),
                    source: "sealog-test",
                },
            },
        )
        .unwrap();
    let records: Vec<Vec<u8>> = (0..ledger.len())
        .map(|s| ledger.get(s).unwrap().unwrap())
        .collect();
    ledger.close().unwrap();
    let newest: serde_json::Value = serde_json::from_slice(records.last().unwrap()).unwrap();
    let newest =
        sealog_model::time::parse_rfc3339(newest["ingested_at"].as_str().unwrap()).unwrap();
    wait_for(10, "the records to be a second old", || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        (now > newest + 1_000_000_000).then_some(())
    });
    records
}

fn leftovers(dir: &Path) -> Vec<std::path::PathBuf> {
    sealog_testkit::files::all_files(dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".prune"))
        .collect()
}

/// Pruned frames found on disk, read independently of the store.
fn stubs_on_disk(dir: &Path) -> usize {
    format::segments(&dir.join("log"))
        .iter()
        .map(|(_, path)| {
            let bytes = format::read_segment(path);
            format::frames(&bytes, format::HEADER_BYTES as usize)
                .iter()
                .filter(|r| bytes[r.start as usize + 8] == 0)
                .count()
        })
        .sum()
}

#[test]
fn a_retention_killed_at_any_step_leaves_whole_segments_and_is_finished_on_open() {
    let base = std::env::var("SEALOG_RETENTION_CRASH_SEED")
        .ok()
        .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
        .unwrap_or(SEED_BASE);
    let mut inside_rewrite = 0;
    for t in 0..trials() {
        let seed = base.wrapping_add(t);
        let mut rng = Rng::new(seed);
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let pack = tempfile::tempdir().unwrap();
        let packs = pack.path();
        write_pack(packs);
        let records = fill(dir, packs, &mut rng);
        let root_before = {
            let l = Ledger::open_read_only(dir, config(16 << 10, packs)).unwrap();
            l.root(records.len() as u64).unwrap()
        };

        let cli = Cli::new(env!("CARGO_BIN_EXE_sealog"), dir).accepting_undeclared();
        let packs_arg = packs.to_str().unwrap();
        let mut child = cli.spawn(&["--packs", packs_arg, "retention", "apply"]);
        if t % 2 == 0 {
            // Not a wait for anything: where the kill lands is the trial's random choice.
            std::thread::sleep(Duration::from_millis(rng.below(400)));
        } else {
            wait_for(60, "a segment being rewritten, or the end", || {
                let ended = child.try_wait().unwrap().is_some();
                (ended || !leftovers(&dir.join("log")).is_empty()).then_some(())
            });
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        let killed = status.signal() == Some(libc::SIGKILL);
        let stubs = stubs_on_disk(dir);
        let ctx = format!("trial {t} (seed {seed:#x}, killed: {killed}, stubs on disk: {stubs})");
        eprintln!("{ctx}");
        if killed && t % 2 == 1 {
            inside_rewrite += 1;
        }
        check_left(dir, packs, &records, &root_before, stubs, &ctx);
    }
    assert!(
        inside_rewrite > 0,
        "no trial was killed while a segment was being rewritten"
    );
}

/// `sealog retention apply` with its `n`th write, fsync or rename of each thread failing
/// (strace; `n` = 1, 2, 4, … up to 2^(`SEALOG_SYSCALL_FAULT_SWEEP` - 1)): a run whose call failed ends with an error naming the cause, one whose calls all
/// succeeded ends well having pruned; either way what is left passes [`check_left`], and
/// applying again without faults prunes every record not held.
#[test]
fn a_retention_whose_system_calls_fail_leaves_whole_segments() {
    use sealog_testkit::cli::{
        assert_fails_cleanly, doubling, run_failing, strace_usable, sweep_syscall_faults,
        syscall_fault_sweep,
    };
    if !strace_usable() {
        return;
    }
    let mut amid_pruning = 0;
    // The opening's calls come first, the rewrite's later: `n` doubles so that a few runs
    // reach the calls of segments being rewritten.
    let ns = doubling(syscall_fault_sweep(8, 10));
    sweep_syscall_faults("retention", &ns, |f| {
        let mut rng = Rng::new(SEED_BASE ^ (f.n as u64));
        let tmp = tempfile::tempdir().unwrap();
        let dir = &tmp.path().join("data");
        let packs = &tmp.path().join("packs");
        write_pack(packs);
        let records = fill(dir, packs, &mut rng);
        let root_before = Ledger::open_read_only(dir, config(16 << 10, packs))
            .unwrap()
            .root(records.len() as u64)
            .unwrap();
        let cli = Cli::new(env!("CARGO_BIN_EXE_sealog"), dir).accepting_undeclared();
        let apply = ["--packs", packs.to_str().unwrap(), "retention", "apply"];
        let (run, failed) = run_failing(&cli, &apply, f, &tmp.path().join("trace"));
        let stubs = stubs_on_disk(dir);
        let ctx = format!(
            "{f}: exit {}, stubs on disk {stubs}: {}",
            run.code,
            run.stderr.trim()
        );
        eprintln!("{ctx}");
        assert_fails_cleanly(&run, &failed, f.cause, &ctx);
        let pruned = check_left(dir, packs, &records, &root_before, stubs, &ctx);
        amid_pruning += usize::from(!failed.is_empty() && pruned > 0);
        assert!(
            run.code != 0 || pruned > 0,
            "{ctx}: applied, yet nothing pruned"
        );

        cli.ok(&apply, b"");
        let ledger = Ledger::open_read_only(dir, config(16 << 10, packs)).unwrap();
        for (seq, bytes) in records.iter().enumerate() {
            let held =
                serde_json::from_slice::<serde_json::Value>(bytes).unwrap()["tenant"] == "t2";
            match ledger.get(seq as u64) {
                Ok(Some(b)) if held => assert_eq!(&b, bytes, "{ctx}: record {seq}"),
                Err(Error::Pruned(_)) if !held => {}
                other => {
                    panic!("{ctx}: record {seq} (held: {held}) after applying again: {other:?}")
                }
            }
        }
        drop(ledger);
        cli.assert_verifies();
        !failed.is_empty()
    });
    eprintln!(
        "retention amid pruning: {amid_pruning} runs had a call fail after records were pruned"
    );
    assert!(amid_pruning > 0, "no call failed once pruning had begun");
}

/// What a retention that did not finish (killed, or a system call failed) must leave: stubs
/// only with the index's marker, no leftover rewrite once opened again, the tree's root as it
/// was, every kept record byte for byte, pruned exactly what the one retention record says
/// (nothing without one), held records never pruned, and a log that verifies. Returns how
/// many records are pruned.
fn check_left(
    dir: &Path,
    packs: &Path,
    records: &[Vec<u8>],
    root_before: &[u8; 32],
    stubs: usize,
    ctx: &str,
) -> usize {
    // Whenever a stub is on disk the index still holds that record's keys, so the marker
    // that says so must already be there, whichever step the kill landed on.
    assert!(
        stubs == 0 || dir.join("index").join("PRUNED").exists(),
        "{ctx}: stubs on disk but no index/PRUNED marker"
    );

    let ledger =
        Ledger::open(dir, config(16 << 10, packs)).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
    assert!(
        leftovers(dir).is_empty(),
        "{ctx}: a leftover rewrite survived the opening"
    );
    assert_eq!(
        ledger.root(records.len() as u64).unwrap(),
        *root_before,
        "{ctx}"
    );
    let applied = ledger
        .query(&sealog_ledger::Query {
            equals: vec![("type".into(), "audit.retention_applied".into())],
            limit: 10,
            ..Default::default()
        })
        .unwrap()
        .records;
    let mut pruned = 0;
    for (seq, bytes) in records.iter().enumerate() {
        let held = serde_json::from_slice::<serde_json::Value>(bytes).unwrap()["tenant"] == "t2";
        match ledger.get(seq as u64) {
            Ok(Some(b)) => assert_eq!(&b, bytes, "{ctx}: record {seq} changed"),
            Err(Error::Pruned(stub)) => {
                assert!(!held, "{ctx}: held record {seq} was pruned");
                assert_eq!(stub.seq, seq as u64, "{ctx}");
                pruned += 1;
            }
            other => panic!("{ctx}: record {seq}: {other:?}"),
        }
    }
    // The record decides: all of what it names is pruned after the opening, or, without
    // one, nothing is.
    match applied.len() {
        0 => assert_eq!((pruned, stubs), (0, 0), "{ctx}"),
        1 => {
            let v: serde_json::Value = serde_json::from_slice(&applied[0].1).unwrap();
            assert_eq!(v["data"]["pruned"], pruned, "{ctx}");
            assert!(pruned > 0, "{ctx}");
        }
        n => panic!("{ctx}: {n} retention records from one application"),
    }
    ledger.close().unwrap();
    let verified = Ledger::verify(
        dir,
        &VerifyOptions {
            full: true,
            ..VerifyOptions::default()
        },
    );
    assert!(verified.is_ok(), "{ctx}: verify: {:?}", verified.err());
    pruned
}
