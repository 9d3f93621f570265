//! The whole comparison at a tiny size — a real throw-away PostgreSQL cluster started here,
//! real SQLite and Sealog in temporary directories — and the report checked for
//! completeness and sanity. No timing is asserted.
//!
//! Without PostgreSQL's server binaries the PostgreSQL part is skipped with a loud message,
//! except under CI (`sealog_testkit::under_ci`), where CI installs them and their absence fails the test.

use sealog_bench::{Attempt, EngineSpec, Options, Report};
use sealog_ledger::{Ledger, VerifyOptions};

fn tiny() -> Options {
    Options {
        events: 2000,
        batch: 1000,
        producers: 2,
        entries: 200,
        single_writers: vec![1, 16, 64],
        single_events: 64,
        single_seconds: 10.0,
        queries: 10,
        query_limit: 100,
        window_secs: 300,
        tune_batches: 1,
        // Two chunks of generated events, so the chunking is exercised too.
        chunk: 1000,
        fsync_samples: 10,
        seed: seed(),
    }
}

/// The workload's seed: fixed, printed, and replaced by `SEALOG_BENCH_SEED` to replay another.
fn seed() -> u64 {
    let seed = std::env::var("SEALOG_BENCH_SEED").map_or(7, |s| {
        let s = s.trim();
        s.strip_prefix("0x")
            .map_or_else(|| s.parse(), |hex| u64::from_str_radix(hex, 16))
            .expect("SEALOG_BENCH_SEED must be a u64 (decimal or 0x-hex)")
    });
    eprintln!("workload seed {seed} (replay with SEALOG_BENCH_SEED={seed})");
    seed
}

#[test]
fn tiny_comparison_gives_a_complete_and_sane_report() {
    let cluster = sealog_testkit::pg::Cluster::start();
    let work = tempfile::tempdir().unwrap();
    let mut engines = vec![EngineSpec::Sealog(work.path().join("sealog"), true)];
    if let Some(c) = &cluster {
        for servers in [1, 2] {
            let state = work.path().join(format!("sealog-pg-{servers}"));
            engines.push(EngineSpec::SealogPg(c.conninfo.clone(), state, servers));
        }
        engines.push(EngineSpec::Postgres(c.conninfo.clone()));
    }
    engines.push(EngineSpec::Sqlite(work.path().join("sqlite")));
    let o = tiny();
    let report = sealog_bench::compare(&o, &engines, work.path(), "test").unwrap();
    check(&report, &o, cluster.is_some());

    // Sealog's edits were undone and its store verifies as it is: verify's refusals in the
    // report were of the edits, not of something else in the directory.
    let events = work.path().join("sealog/events");
    if let Err(f) = Ledger::verify(&events, &VerifyOptions::default()) {
        panic!("the store the benchmark edited and restored does not verify: {f}");
    }
}

fn check(report: &Report, o: &Options, with_pg: bool) {
    let names: Vec<&str> = report.engines.iter().map(|e| e.name.as_str()).collect();
    let mut expected = vec!["sealog"];
    if with_pg {
        expected.extend(["sealog-pg", "sealog-pg-2", "postgres"]);
    }
    expected.push("sqlite");
    assert_eq!(names, expected);
    assert!(report.machine.seq_write_fsync_mib_s > 0.0);
    assert!(report.machine.sha256_mib_s_per_core > 0.0);
    assert!(report.event_bytes_mean > 500.0);

    for e in &report.engines {
        let n = &e.name;
        assert_eq!(e.bulk.items, o.events, "{n}");
        assert_eq!(e.bulk.added, o.events, "{n}: every bulk event is new");
        assert!(e.bulk.per_s > 0.0, "{n}");
        assert_eq!(
            e.dedupe_readded, 0,
            "{n}: re-ingesting a batch adds nothing"
        );
        assert!(e.bytes_on_disk > 0 && e.bytes_per_record > 0.0, "{n}");
        assert_eq!(e.single.len(), o.single_writers.len(), "{n}");
        for s in &e.single {
            assert!(s.events > 0, "{n}: {} writers appended nothing", s.writers);
            assert_eq!(s.added, s.events, "{n}: single events are all new");
            assert!(s.p50_ms > 0.0 && s.p99_ms >= s.p50_ms, "{n}");
        }
        assert_eq!(e.events_stored, e.events_expected, "{n}: events counted");
        assert_eq!(
            e.events_expected,
            o.events + e.single.iter().map(|s| s.events).sum::<u64>(),
            "{n}"
        );
        assert_eq!(e.entries.added, o.entries, "{n}");
        assert_eq!(e.entries_stored, o.entries, "{n}: entries counted");
        assert_eq!(e.queries.len(), 4, "{n}");
        for q in &e.queries {
            match (q.p50_us, &q.note) {
                (Some(p50), None) => {
                    assert_eq!(q.samples, o.queries, "{n} {}", q.shape);
                    assert!(q.p99_us.unwrap() >= p50, "{n} {}", q.shape);
                    assert!(
                        q.hits >= o.queries as u64,
                        "{n} {}: each target exists",
                        q.shape
                    );
                }
                other => panic!("{n} {}: {other:?}", q.shape),
            }
        }
        assert!(
            e.tamper.update.held(),
            "{n} let an UPDATE through: {:?}",
            e.tamper
        );
        assert!(
            e.tamper.delete.held(),
            "{n} let a DELETE through: {:?}",
            e.tamper
        );
    }
    for e in &report.engines {
        match (e.name.as_str(), &e.tamper.update, &e.tamper.delete) {
            // The immutability triggers themselves refused (their own messages), not some
            // other error.
            ("postgres" | "sqlite", Attempt::Refused(update), Attempt::Refused(delete)) => {
                assert!(update.contains("UPDATE refused"), "{}: {update}", e.name);
                assert!(delete.contains("DELETE refused"), "{}: {delete}", e.name);
            }
            // Sealog's own tables in PostgreSQL: its triggers refuse, even for the owner.
            ("sealog-pg" | "sealog-pg-2", Attempt::Refused(update), Attempt::Refused(delete)) => {
                for said in [update, delete] {
                    assert!(
                        said.contains("the log is append-only"),
                        "{}: {said}",
                        e.name
                    );
                }
            }
            // No such operation; the attempts that stand in for them were made: the event
            // sent again with other content is a second record of a `unique_per_subject`
            // decision without a supersedes link, and the file edits are found by verify.
            ("sealog", Attempt::NotApplicable(update), Attempt::NotApplicable(delete)) => {
                for needle in [
                    "no update operation exists",
                    "was quarantined MISSING_SUPERSEDES_LINK, seq 0 unchanged",
                    "rewritten in its segment file",
                    "refused by verify: ",
                ] {
                    assert!(
                        update.contains(needle),
                        "sealog UPDATE lacks {needle:?}: {update}"
                    );
                }
                for needle in ["no delete operation exists", "refused by verify: "] {
                    assert!(
                        delete.contains(needle),
                        "sealog DELETE lacks {needle:?}: {delete}"
                    );
                }
            }
            (name, update, delete) => panic!("{name}: UPDATE {update:?}, DELETE {delete:?}"),
        }
    }
    // Every engine answers every measured query shape with the same number of records.
    for shape in sealog_bench::run::SHAPES {
        let hits: Vec<(String, u64)> = report
            .engines
            .iter()
            .filter_map(|e| {
                let q = e.queries.iter().find(|q| q.shape == shape)?;
                q.p50_us.map(|_| (e.name.clone(), q.hits))
            })
            .collect();
        assert!(
            hits.windows(2).all(|w| w[0].1 == w[1].1),
            "{shape}: {hits:?}"
        );
    }

    // The table has every figure for every engine, or says why not.
    for f in &report.figures {
        for name in &expected {
            assert!(
                f.value(name).is_some() || f.notes.iter().any(|(e, _)| e == name),
                "{}: no value or reason for {name}",
                f.name
            );
        }
        for peer in expected.iter().filter(|n| **n != "sealog") {
            if f.value("sealog").is_some() {
                assert!(
                    f.advantage(peer).is_some(),
                    "{}: no ratio to {peer}",
                    f.name
                );
            }
        }
    }
    assert_eq!(report.machine_fractions.len(), 3);
    assert!(
        report
            .machine_fractions
            .iter()
            .all(|f| f.fraction.is_some())
    );
    // Ten for Sealog embedded; with PostgreSQL, six more for each of its backend's runs.
    assert_eq!(report.targets.len(), if with_pg { 22 } else { 10 });
    let unmeasured: Vec<&str> = report
        .targets
        .iter()
        .filter(|t| t.met.is_none())
        .map(|t| t.name.as_str())
        .collect();
    if with_pg {
        assert!(
            unmeasured.is_empty(),
            "every target has a verdict: {unmeasured:?}"
        );
    }

    let md = report.markdown(3);
    for needle in [
        "### Figures",
        "### Targets",
        "### Machine limits",
        "sealog",
        "sqlite",
    ] {
        assert!(md.contains(needle), "markdown lacks {needle}");
    }
    if with_pg {
        assert!(md.contains("| postgres |"));
    }
    let json: serde_json::Value = serde_json::to_value(report).unwrap();
    assert_eq!(json["engines"].as_array().unwrap().len(), expected.len());
    assert!(json["machine"]["fsync_ms_p50"].as_f64().unwrap() > 0.0);
    // `--render` rebuilds the same report from the JSON alone.
    let back: Report = serde_json::from_value(json).unwrap();
    let again = Report::new(
        back.date,
        back.command,
        back.load_before,
        back.load_after,
        back.options,
        back.machine,
        back.event_bytes_mean,
        back.engines,
    );
    assert_eq!(again.markdown(3), md);
}
