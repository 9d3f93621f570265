//! `sealog bench http` at a tiny size, so the load generator keeps working; figures are not
//! checked (tests never assert timings), only that every phase reports.

use std::process::Command;

#[test]
fn bench_http_runs_every_phase_at_a_tiny_size() {
    let dir = tempfile::tempdir().unwrap();
    let bench_dir = dir.path().join("bench");
    let lines = bench(&[
        "http",
        "--clients",
        "1,4",
        "--seconds",
        "0.2",
        "--rates",
        "200",
        "--paced-clients",
        "4",
        "--bulk-batch",
        "10",
        "--query-records",
        "300",
        "--query-samples",
        "32",
        "--attack-events",
        "200",
        "--attack-clients",
        "2",
        "--attack-body-bytes",
        "40000",
        "--dir",
        bench_dir.to_str().unwrap(),
    ]);
    let phases: Vec<&str> = lines.iter().map(|l| l["bench"].as_str().unwrap()).collect();
    assert_eq!(
        phases,
        [
            "http.append.single",
            "http.append.single",
            "http.append.paced",
            "http.append.bulk",
            "http.query.subject",
            "http.query.axis",
            "http.query.axis_apart",
            "http.query.subject",
            "http.query.axis",
            "http.attack.memory"
        ]
    );
    // The two cores' split between the load generator (this process) and the server (its
    // child) is reported for every single-event phase.
    for single in &lines[..3] {
        for side in ["load_generator", "server"] {
            assert!(
                single["cores"][side].as_f64().is_some_and(|c| c >= 0.0),
                "{side}: {single}"
            );
        }
        // And what the server counted of the phase's appends: every event was committed, in
        // calls of at least one event, each waited for inside the server.
        assert!(
            single["commit_mean_events"].as_f64() >= Some(1.0),
            "{single}"
        );
        assert!(
            single["server_queued_to_durable_mean_ms"].as_f64() > Some(0.0),
            "{single}"
        );
        assert!(single["store_fsyncs"].as_f64() >= Some(1.0), "{single}");
        // The machine's own cost of a hand-off between threads, beside them.
        let wake = &single["thread_wake_round_trip_us"];
        assert!(wake["p50"].as_f64() > Some(0.0), "{single}");
        assert!(wake["p99"].as_f64() >= wake["p50"].as_f64(), "{single}");
        // How long the server's threads waited for a core each time they were given one:
        // its append threads and writer were given one at least once in a phase that
        // committed something, so they are named.
        if !std::path::Path::new("/proc/self/schedstat").exists() {
            eprintln!("SKIPPED: this kernel keeps no schedstat, so no waits for a core to check");
        } else {
            let server = &single["waiting_for_a_core"]["server"];
            assert!(server["mean_wait_us"].as_f64() >= Some(0.0), "{single}");
            assert!(
                server["thread_seconds_per_s"].as_f64() >= Some(0.0),
                "{single}"
            );
            for kind in ["sealog-append", "sealog-writer"] {
                assert!(
                    server["mean_wait_us_by_thread"][kind].as_f64() >= Some(0.0),
                    "{kind}: {single}"
                );
            }
        }
    }
    // Subjects are drawn from the whole log and each has its record; a tenant meets one
    // actor only, so the pair that never meets finds nothing.
    for (i, found) in [(4, 1.0), (6, 0.0), (7, 1.0)] {
        assert_eq!(
            lines[i]["records_per_query"].as_f64(),
            Some(found),
            "{}",
            lines[i]
        );
    }
    assert!(
        lines[5]["records_per_query"].as_f64() > Some(0.0),
        "{}",
        lines[5]
    );
    let attack = &lines[9];
    assert_eq!(attack["single_status"], 200, "{attack}");
    assert_eq!(attack["statuses"]["200"], 2, "{attack}");
    for figure in ["rss_before_mib", "rss_peak_mib", "rss_after_3s_mib"] {
        assert!(
            attack[figure].as_f64().is_some_and(|m| m > 0.0),
            "{figure}: {attack}"
        );
    }
    assert!(lines.iter().all(|l| l["p99_ms"].as_f64().is_some()
        || ["http.append.bulk", "http.attack.memory"].contains(&l["bench"].as_str().unwrap())));
    assert!(lines[3]["events"].as_u64().unwrap() >= 200);
    // The paced phase offered its rate and says how its p99 compares with an fsync.
    let paced = &lines[2];
    assert_eq!(paced["offered_per_s"], 200, "{paced}");
    assert!(paced["events"].as_u64() > Some(0), "{paced}");
    assert!(
        paced["p99_over_fsync_p50"]
            .as_f64()
            .is_some_and(|r| r > 0.0),
        "{paced}"
    );
}

/// Runs `sealog bench ARGS…` and returns the JSON lines it printed.
fn bench(args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_sealog"))
        .arg("bench")
        .args(args)
        .env_remove("SEALOG_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn bench_client_reports_the_emitter_beside_the_server_at_a_tiny_size() {
    for kind in ["decision", "coordination"] {
        let lines = bench(&["client", "--events", "300", "--batch", "50", "--kind", kind]);
        let phases: Vec<&str> = lines.iter().map(|l| l["bench"].as_str().unwrap()).collect();
        assert_eq!(phases, ["client.server_bulk_http", "client.emit"]);
        assert_eq!(
            lines[1]["acknowledged"], 300,
            "{kind}: every event answered"
        );
    }
}
