//! The benchmarks run at a tiny size so they keep working; nothing here looks at timings.

use std::path::Path;

use sealog_testkit::Cli;

/// Runs a benchmark (which takes its own `--dir`) and returns its summary line.
fn run(args: &[&str]) -> serde_json::Value {
    // `--data` is not what a benchmark reads; it names a directory that is never created.
    let unused = sealog_testkit::tempdir();
    let cli = Cli::new(env!("CARGO_BIN_EXE_sealog"), &unused.path().join("unused"));
    let out = cli.ok(args, b"");
    serde_json::from_str(out.stdout.lines().last().expect("a summary line"))
        .expect("summary is JSON")
}

#[test]
fn ingest_and_proof_benchmarks_run_and_report() {
    let tmp = sealog_testkit::tempdir();
    let dir = tmp.path().join("bench");
    let dir = dir.to_str().unwrap();
    let ingest = run(&[
        "bench", "ingest", "--events", "3000", "--batch", "250", "--dir", dir,
    ]);
    assert_eq!(ingest["appended"], 3000, "{ingest}");
    assert_eq!(ingest["durability"], "Fsync");
    assert!(
        ingest["commits"].as_u64().unwrap() >= 3000 / 250 / 2,
        "{ingest}"
    );
    assert!(ingest["machine"]["fsync_ms"]["p50"].is_number(), "{ingest}");
    let wake = &ingest["machine"]["thread_wake_round_trip_us"];
    assert!(wake["p50"].as_f64() > Some(0.0), "{ingest}");
    assert!(wake["p90"].as_f64() >= wake["p50"].as_f64(), "{ingest}");
    // The same seed gives the same events: a second run over the same store appends nothing.
    let again = run(&[
        "bench", "ingest", "--events", "3000", "--batch", "250", "--dir", dir,
    ]);
    assert_eq!(again["appended"], 0, "{again}");
    let proofs = run(&["bench", "proofs", "--dir", dir, "--samples", "500"]);
    assert_eq!(
        (proofs["tree_size"].as_u64(), proofs["samples"].as_u64()),
        (Some(3000), Some(500)),
        "{proofs}"
    );
    assert!(
        ingest["rss_by_tenth"]
            .as_array()
            .is_some_and(|t| !t.is_empty() && t.iter().all(|l| l["max_mib"].as_u64() > Some(0))),
        "resident memory sampled while ingesting: {ingest}"
    );
    let unused = sealog_testkit::tempdir();
    let cli = Cli::new(env!("CARGO_BIN_EXE_sealog"), &unused.path().join("unused"));
    let out = cli.ok(&["bench", "query", "--dir", dir, "--samples", "20"], b"");
    let kinds: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect();
    let found = |name: &str| {
        let k = kinds
            .iter()
            .find(|k| k["bench"] == format!("query.{name}"))
            .unwrap_or_else(|| panic!("no query.{name} in {kinds:?}"));
        assert!(k["warm"]["p99_us"].is_u64(), "{k}");
        k["warm"]["records_per_query"].as_f64().unwrap()
    };
    // What each kind finds follows from the generator: an id or a subject is one record, a
    // tenant meets one actor and never the others.
    assert_eq!(found("id"), 1.0);
    assert_eq!(found("subject"), 1.0);
    assert!(found("one_axis") > 0.0);
    assert!(found("two_axes_meeting") > 0.0);
    assert_eq!(found("two_axes_apart"), 0.0);
    assert!(found("event_second") > 0.0);
    let bad = cli.run(
        &["bench", "query", "--dir", dir, "--only", "everything"],
        b"",
    );
    assert!(
        bad.code != 0 && bad.stderr.contains("not a kind of query"),
        "{}",
        bad.stderr
    );
    Cli::new(env!("CARGO_BIN_EXE_sealog"), Path::new(dir)).assert_verifies();
}

#[test]
fn the_check_benchmark_runs_full_and_incremental() {
    let tmp = sealog_testkit::tempdir();
    let dir = tmp.path().join("bench");
    let report = run(&[
        "bench",
        "check",
        "--records",
        "3000",
        "--new-records",
        "300",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(report["full"]["records"], 3000, "{report}");
    assert_eq!(report["full"]["integrity"], true, "{report}");
    assert!(report["full"]["findings"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["incremental"]["records"].as_u64().unwrap() >= 300,
        "{report}"
    );
    assert!(
        report["incremental"]["records"].as_u64().unwrap() < 3000,
        "{report}"
    );
    Cli::new(env!("CARGO_BIN_EXE_sealog"), &dir).assert_verifies();
}

#[test]
fn the_console_benchmark_times_every_page_and_report() {
    let report = run(&["bench", "console", "--records", "2000", "--repeat", "1"]);
    assert_eq!(report["records"], 2000, "{report}");
    for page in [
        "records explorer (50 per page)",
        "record with in-browser proof",
        "subject timeline",
        "integrity panel",
        "dashboard refresh",
    ] {
        assert!(
            report["pages"][page]["median_ms"].as_f64().is_some(),
            "{page}: {report}"
        );
    }
    for name in [
        "daily",
        "weekly",
        "monthly",
        "quarantine",
        "coordination",
        "popia",
    ] {
        assert!(
            report["reports_one_month"][name]["median_ms"]
                .as_f64()
                .is_some(),
            "{name}: {report}"
        );
    }
}

#[test]
fn the_nats_benchmark_drains_its_stream_and_compares() {
    // It starts a nats-server of its own: without one installed there is nothing to run.
    let Some(bus) = sealog_testkit::nats::NatsServer::start() else {
        return;
    };
    let tmp = sealog_testkit::tempdir();
    let dir = tmp.path().join("bench");
    let ratio = run(&[
        "bench",
        "nats",
        "--events",
        "500",
        "--bulk-batch",
        "100",
        "--nats",
        &bus.url(),
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(ratio["bench"], "nats.ratio", "{ratio}");
    for k in ["of_append_file", "of_store_ingest", "of_http_bulk"] {
        assert!(ratio[k].as_f64().is_some_and(|r| r > 0.0), "{ratio}");
    }
    // Every event published is in the bus run's log.
    let bus_log = Cli::new(env!("CARGO_BIN_EXE_sealog"), &dir.join("bus"));
    let records = bus_log.all_records();
    let decisions = records
        .iter()
        .filter(|r| r["type"] == "decision-log.audit_decision_record")
        .count();
    assert_eq!(decisions, 500);
}
