//! The packs through the command line: quarantined results and exit codes, `sealog
//! quarantine`, `sealog state`, `query --view` and pack axes, user packs with `--packs`, and
//! clear errors for bad packs and bad arguments. No undeclared types are accepted here.

use std::path::Path;

use sealog_testkit::events::example;
use sealog_testkit::{Cli, Run};
use serde_json::{Value, json};

/// The binary on `dir` with the packs in force: undeclared types are quarantined.
fn sealog(dir: &Path, args: &[&str], stdin: &[u8]) -> Run {
    Cli::new(env!("CARGO_BIN_EXE_sealog"), dir).run(args, stdin)
}

#[test]
fn append_reports_quarantine_per_event_and_exits_1() {
    let dir = sealog_testkit::tempdir();
    let good = example("knowledge.chunk_created");
    let mut anonymous = good.clone();
    anonymous.as_object_mut().unwrap().remove("actor");
    anonymous["id"] = json!("ka-anon");
    let unknown = json!({"id": "u", "source": "s", "type": "made.up", "time": "2026-01-03T12:00:00Z", "data": {}});
    let input = format!("{good}\n{anonymous}\n{unknown}\nnot json\n");
    let run = sealog(dir.path(), &["append"], input.as_bytes());
    assert_eq!(run.code, 1, "{}", run.stderr);
    let lines = run.lines();
    let statuses: Vec<&str> = lines
        .iter()
        .map(|l| l["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["appended", "quarantined", "quarantined", "rejected"]
    );
    assert_eq!(lines[1]["reason_code"], "INCOMPLETE_PROVENANCE");
    assert_eq!(lines[2]["reason_code"], "UNKNOWN_EVENT_TYPE");

    let q = sealog(
        dir.path(),
        &["quarantine", "--reason", "INCOMPLETE_PROVENANCE"],
        b"",
    );
    assert_eq!(q.code, 0, "{}", q.stderr);
    let recs = q.lines();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["id"], "ka-anon");
    assert_eq!(recs[0]["record_id"], lines[1]["quarantine_id"]);
    let by_id = sealog(dir.path(), &["quarantine", "--id", "u"], b"").lines();
    assert_eq!(by_id.len(), 1);
    assert_eq!(by_id[0]["data"]["reason_code"], "UNKNOWN_EVENT_TYPE");
    let all = sealog(dir.path(), &["quarantine", "--from", "2000-01-01"], b"").lines();
    assert_eq!(all.len(), 2);
    let none = sealog(dir.path(), &["quarantine", "--to", "2000-01-01"], b"").lines();
    assert!(none.is_empty());

    let bad = sealog(dir.path(), &["quarantine", "--reason", "NOPE"], b"");
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("unknown reason code") && bad.stderr.contains("STALE_SUPERSEDES_LINK"),
        "{}",
        bad.stderr
    );
}

#[test]
fn views_axes_and_state_from_the_command_line() {
    let dir = sealog_testkit::tempdir();
    let d = example("decision-log.audit_decision_record");
    let first = sealog(dir.path(), &["append"], d.to_string().as_bytes()).lines();
    let mut fix = d.clone();
    fix["data"]["decision"]["decision_outcome"] = json!("REVIEW");
    fix["supersedes"] = first[0]["record_id"].clone();
    let mut missing = d.clone();
    missing["data"]["decision"]["decision_outcome"] = json!("DECLINE");
    let input = format!("{fix}\n{missing}\n");
    let out = sealog(dir.path(), &["append"], input.as_bytes()).lines();
    assert_eq!(out[0]["status"], "appended");
    assert_eq!(out[1]["reason_code"], "MISSING_SUPERSEDES_LINK");

    let subject = d["data"]["decision_id"].as_str().unwrap();
    let hist = sealog(dir.path(), &["query", "--subject", subject], b"").lines();
    assert_eq!(hist.len(), 2);
    let cur = sealog(
        dir.path(),
        &["query", "--subject", subject, "--view", "current"],
        b"",
    )
    .lines();
    assert_eq!(cur.len(), 1);
    assert_eq!(cur[0]["record_id"], out[0]["record_id"]);
    let key = &d["data"]["features"]["feature_keys_used"][0];
    let axis = format!(
        "feature_keys_used={}:{}",
        key["key_type"].as_str().unwrap(),
        key["key_id"].as_str().unwrap()
    );
    assert_eq!(
        sealog(dir.path(), &["query", "--axis", &axis], b"")
            .lines()
            .len(),
        2
    );
    assert_eq!(
        sealog(
            dir.path(),
            &["query", "--axis", &axis, "--view", "current"],
            b""
        )
        .lines()
        .len(),
        1
    );
    let bad_axis = sealog(dir.path(), &["query", "--axis", "no_such_axis=1"], b"");
    assert_eq!(bad_axis.code, 2);
    assert!(
        bad_axis.stderr.contains("feature_keys_used"),
        "lists the known axes: {}",
        bad_axis.stderr
    );
    assert_eq!(
        sealog(dir.path(), &["query", "--view", "sideways"], b"").code,
        2
    );

    for t in [
        "knowledge.chunk_created",
        "knowledge.chunk_modified",
        "knowledge.chunk_deleted",
    ] {
        assert_eq!(
            sealog(dir.path(), &["append"], example(t).to_string().as_bytes()).code,
            0
        );
    }
    let state = sealog(dir.path(), &["state", "--subject", "chunk-7"], b"");
    assert_eq!(state.code, 0, "{}", state.stderr);
    let s: Value = serde_json::from_str(state.stdout.trim()).unwrap();
    assert_eq!(s["status"], "deleted");
    let size_before_delete = (s["as_of_size"].as_u64().unwrap() - 1).to_string();
    let then: Value = serde_json::from_str(
        sealog(
            dir.path(),
            &[
                "state",
                "--subject",
                "chunk-7",
                "--as-of",
                &size_before_delete,
            ],
            b"",
        )
        .stdout
        .trim(),
    )
    .unwrap();
    assert_eq!(then["status"], "active", "{then}");
    let absent = sealog(dir.path(), &["state", "--subject", "nothing-here"], b"");
    assert_eq!(absent.code, 1, "an unknown subject is 'not found'");
    assert_eq!(
        sealog(
            dir.path(),
            &["state", "--subject", "chunk-7", "--as-of", "yesterday"],
            b""
        )
        .code,
        2
    );
}

#[test]
fn user_packs_load_from_a_directory_and_broken_packs_are_named() {
    let dir = sealog_testkit::tempdir();
    let pack = sealog_testkit::tempdir();
    std::fs::write(
        pack.path().join("manifest.json"),
        json!({"pack": "hr", "types": {"hr.leave_approved": {
            "schema": "leave.json", "required": ["/data/employee_id"], "subject": "/data/employee_id",
            "axes": [{"name": "approver", "pointer": "/data/approver"}]}}})
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        pack.path().join("leave.json"),
        r#"{"type":"object","properties":{"days":{"type":"integer","minimum":1}}}"#,
    )
    .unwrap();
    let ev = json!({"id": "l1", "source": "hr", "type": "hr.leave_approved", "time": "2026-05-01T09:00:00Z",
                    "data": {"employee_id": "e-9", "approver": "m-1", "days": 3}});
    let packs = pack.path().to_str().unwrap();
    let without = sealog(dir.path(), &["append"], ev.to_string().as_bytes()).lines();
    assert_eq!(without[0]["reason_code"], "UNKNOWN_EVENT_TYPE");
    let with = sealog(
        dir.path(),
        &["--packs", packs, "append"],
        ev.to_string().as_bytes(),
    )
    .lines();
    assert_eq!(with[0]["status"], "appended", "{:?}", with);
    let found = sealog(
        dir.path(),
        &["--packs", packs, "query", "--axis", "approver=m-1"],
        b"",
    )
    .lines();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], "l1");

    std::fs::write(
        pack.path().join("manifest.json"),
        r#"{"pack": "hr", "types": {"hr.x": {"schema": "leave.json", "subjekt": "/data/a"}}}"#,
    )
    .unwrap();
    let broken = sealog(dir.path(), &["--packs", packs, "query"], b"");
    assert_eq!(broken.code, 2);
    assert!(
        broken.stderr.contains("subjekt") && broken.stderr.contains("manifest.json"),
        "{}",
        broken.stderr
    );
    let missing = sealog(dir.path(), &["--packs", "/nonexistent/pack", "query"], b"");
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("/nonexistent/pack"),
        "{}",
        missing.stderr
    );
}

#[test]
fn verify_covers_the_quarantine_log_too() {
    let dir = sealog_testkit::tempdir();
    let mut bad = example("knowledge.chunk_created");
    bad.as_object_mut().unwrap().remove("actor");
    let input = format!("{}\n{bad}\n", example("coordination.decision"));
    assert_eq!(sealog(dir.path(), &["append"], input.as_bytes()).code, 1);
    let ok = sealog(dir.path(), &["verify"], b"");
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(
        !ok.stderr.contains('\r') && !ok.stderr.contains("verify ["),
        "progress is drawn on a terminal only, not into a pipe: {:?}",
        ok.stderr
    );
    let report: Value = serde_json::from_str(ok.stdout.trim()).unwrap();
    assert_eq!(report["records"], 1);
    assert_eq!(report["quarantine"]["records"], 1, "{report}");

    // Flip one byte inside the quarantine record's reason code.
    let segments = sealog_testkit::format::segments(&dir.path().join("quarantine").join("log"));
    let seg = &segments
        .first()
        .expect("the quarantine log has a segment")
        .1;
    let at = std::fs::read(seg)
        .unwrap()
        .windows(b"INCOMPLETE".len())
        .position(|w| w == b"INCOMPLETE")
        .expect("the reason code is in the segment");
    sealog_testkit::files::flip_byte(seg, at as u64);
    let damaged = sealog(dir.path(), &["verify"], b"");
    assert_eq!(damaged.code, 1, "{}", damaged.stdout);
    let report: Value = serde_json::from_str(damaged.stdout.trim()).unwrap();
    assert_eq!(report["status"], "damaged");
    assert!(
        report["location"]
            .as_str()
            .unwrap()
            .starts_with("quarantine log"),
        "{report}"
    );
}
