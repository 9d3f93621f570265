//! `sealog bench http` at a tiny size, so the load generator keeps working; figures are not
//! checked (tests never assert timings), only that every phase reports.

use std::process::Command;

#[test]
fn bench_http_runs_every_phase_at_a_tiny_size() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sealog"))
        .args([
            "bench",
            "http",
            "--clients",
            "1,4",
            "--seconds",
            "0.2",
            "--bulk-batch",
            "10",
        ])
        .args(["--query-records", "300", "--query-samples", "32"])
        .args(["--attack-events", "200", "--attack-clients", "2"])
        .args(["--attack-body-bytes", "40000", "--dir"])
        .arg(dir.path().join("bench"))
        .env_remove("SEALOG_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let phases: Vec<&str> = lines.iter().map(|l| l["bench"].as_str().unwrap()).collect();
    assert_eq!(
        phases,
        [
            "http.append.single",
            "http.append.single",
            "http.append.bulk",
            "http.query.subject",
            "http.query.axis",
            "http.query.subject",
            "http.query.axis",
            "http.attack.memory"
        ]
    );
    let attack = &lines[7];
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
    assert!(lines[2]["events"].as_u64().unwrap() >= 200);
}
