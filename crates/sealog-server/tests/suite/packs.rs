//! The packs over HTTP, in process with the ledger's defaults (every event must pass its
//! type's pack): ingest results (appended, duplicate, quarantined with their evidence),
//! corrections and the current view, pack axes, rebuilt subject state with time travel, the
//! quarantine log, its paging and its payloads, roles and tenant isolation of both, and
//! malformed parameters.

use crate::support;

use sealog_testkit::Api;
use sealog_testkit::events::{event, example};
use sealog_testkit::{InProcess, tempdir};
use serde_json::{Value, json};
use support::{all_pages, assert_verifies, post_one, quarantine, records, seqs};

const RUN: &str = "run_20260103T110000Z_0001";
const DECISION: &str = "evt_txn_000000123";

/// The shipped example of a complete AuditDecisionRecord, for another decision or run.
fn decision(decision_id: &str, run_id: &str) -> Value {
    let mut e = example("decision-log.audit_decision_record");
    e["id"] = json!(decision_id);
    e["subject"] = json!(decision_id);
    e["tenant"] = json!(run_id);
    for field in ["decision_id", "request_id", "event_id"] {
        e["data"][field] = json!(decision_id);
    }
    e["data"]["context_pins"]["run_id"] = json!(run_id);
    e
}

#[test]
fn decision_records_are_appended_corrected_viewed_and_quarantined_with_evidence() {
    let dir = tempdir();
    let app = InProcess::start_packs(dir.path());
    let (writer, _) = app.create_key(&["writer"], None, None);
    let (reader, _) = app.create_key(&["reader"], None, None);
    let (auditor, _) = app.create_key(&["auditor"], None, None);
    let (auditor_run, _) = app.create_key(&["auditor"], Some(RUN), None);
    let (auditor_other, _) = app.create_key(&["auditor"], Some("other"), None);
    let (reader_run, _) = app.create_key(&["reader"], Some(RUN), None);

    // A complete record is appended; the same content again is a duplicate with the same seq.
    let first = post_one(&app, Some(&writer), &decision(DECISION, RUN));
    assert_eq!(first["status"], "appended", "{first}");
    let seq = first["seq"].as_u64().expect("a seq");
    let first_id = first["record_id"]
        .as_str()
        .expect("a record_id")
        .to_string();
    let again = post_one(&app, Some(&writer), &decision(DECISION, RUN));
    assert_eq!(again["status"], "duplicate", "{again}");
    assert_eq!(again["seq"].as_u64(), Some(seq));
    assert_eq!(again["record_id"].as_str(), Some(first_id.as_str()));

    // Missing provenance: quarantined with the dotted path of what is missing.
    let mut incomplete = decision("evt_txn_000000200", RUN);
    incomplete["data"]["features"]
        .as_object_mut()
        .expect("features")
        .remove("feature_snapshot_hash");
    let q = post_one(&app, Some(&writer), &incomplete);
    assert_eq!(q["status"], "quarantined", "{q}");
    assert_eq!(q["reason_code"], "INCOMPLETE_PROVENANCE");
    assert_eq!(
        q["missing_fields"],
        json!(["data.features.feature_snapshot_hash"])
    );
    assert!(
        q["quarantine_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("sha256:"))
    );
    assert!(
        q.get("seq").is_none(),
        "a quarantined event has no canonical seq"
    );
    let found = records(&app, &reader, "id=evt_txn_000000200");
    assert!(
        found.is_empty(),
        "nothing quarantined is canonical: {found:?}"
    );

    // Visible to auditors in the quarantine log; not to readers or writers.
    let inc = quarantine(&app, &auditor, "reason=INCOMPLETE_PROVENANCE");
    assert_eq!(inc.len(), 1, "{inc:?}");
    assert_eq!(inc[0]["id"], "evt_txn_000000200");
    assert_eq!(inc[0]["data"]["reason_code"], "INCOMPLETE_PROVENANCE");
    assert_eq!(
        inc[0]["data"]["missing_fields"],
        json!(["data.features.feature_snapshot_hash"])
    );
    assert_eq!(
        inc[0]["data"]["event_type"],
        "decision-log.audit_decision_record"
    );
    assert_eq!(inc[0]["record_id"], q["quarantine_id"]);
    for key in [&reader, &writer, &reader_run] {
        let r = app.get("/v1/quarantine?reason=INCOMPLETE_PROVENANCE", Some(key));
        assert_eq!(
            (r.status, r.code()),
            (403, "FORBIDDEN".into()),
            "{}",
            r.text()
        );
    }
    assert_eq!(
        app.get("/v1/quarantine", None).status,
        401,
        "keys exist: no key, no access"
    );
    // Filters: by id, by type, by a reason nothing has.
    assert_eq!(quarantine(&app, &auditor, "id=evt_txn_000000200").len(), 1);
    assert_eq!(
        quarantine(
            &app,
            &auditor,
            "type=decision-log.audit_decision_record&reason=INCOMPLETE_PROVENANCE"
        )
        .len(),
        1
    );
    assert!(quarantine(&app, &auditor, "reason=SCHEMA_VIOLATION").is_empty());
    assert!(quarantine(&app, &auditor, "to=2000-01-01").is_empty());

    // The raw payload is kept as restricted evidence, byte for byte.
    let payload = format!(
        "/v1/quarantine/payloads/{}",
        inc[0]["data"]["payload_ref"]
            .as_str()
            .expect("a payload_ref")
    );
    let p = app.get(&payload, Some(&auditor));
    assert_eq!(p.status, 200, "{}", p.text());
    assert_eq!(p.body, incomplete.to_string().as_bytes());
    assert_eq!(app.get(&payload, Some(&reader)).status, 403);
    let missing = format!("/v1/quarantine/payloads/sha256:{}", "0".repeat(64));
    let p = app.get(&missing, Some(&auditor));
    assert_eq!(p.status, 404, "{}", p.text());
    let p = app.get("/v1/quarantine/payloads/blob:1", Some(&auditor));
    assert_eq!((p.status, p.code()), (400, "BAD_PAYLOAD_REF".into()));

    // Tenant isolation of the quarantine log and its payloads.
    assert_eq!(
        quarantine(&app, &auditor_run, "reason=INCOMPLETE_PROVENANCE").len(),
        1
    );
    assert!(quarantine(&app, &auditor_other, "reason=INCOMPLETE_PROVENANCE").is_empty());
    assert!(
        quarantine(&app, &auditor_other, &format!("tenant={RUN}")).is_empty(),
        "a scoped key cannot widen its tenant"
    );
    assert_eq!(
        app.get(&payload, Some(&auditor_other)).status,
        404,
        "another tenant's payload is not found"
    );
    assert_eq!(app.get(&payload, Some(&auditor_run)).status, 200);

    // A second, different record of the same decision without supersedes.
    let mut second = decision(DECISION, RUN);
    second["data"]["decision"]["decision_outcome"] = json!("REVIEW");
    let r = post_one(&app, Some(&writer), &second);
    assert_eq!(r["status"], "quarantined", "{r}");
    assert_eq!(r["reason_code"], "MISSING_SUPERSEDES_LINK");
    let link = quarantine(&app, &auditor, "reason=MISSING_SUPERSEDES_LINK");
    assert_eq!(link.len(), 1);
    assert_eq!(link[0]["id"], DECISION);

    // A correction naming the record it supersedes is appended.
    let mut correction = second.clone();
    correction["data"]["supersedes_audit_record_id"] = json!(first_id);
    correction["data"]["correction_reason"] = json!("manual review");
    let c = post_one(&app, Some(&writer), &correction);
    assert_eq!(c["status"], "appended", "{c}");
    let c_seq = c["seq"].as_u64().expect("a seq");
    // Superseding the old head again is stale.
    let mut stale = correction.clone();
    stale["data"]["correction_reason"] = json!("a second opinion");
    let s = post_one(&app, Some(&writer), &stale);
    assert_eq!(s["status"], "quarantined", "{s}");
    assert_eq!(s["reason_code"], "STALE_SUPERSEDES_LINK");

    // Views: current shows only the head, history both (also the default).
    let by_decision = format!("axis.decision_id={DECISION}");
    let current = records(&app, &reader, &format!("{by_decision}&view=current"));
    assert_eq!(seqs(&current), vec![c_seq], "{current:?}");
    assert_eq!(current[0]["data"]["decision"]["decision_outcome"], "REVIEW");
    let history = records(&app, &reader, &format!("{by_decision}&view=history"));
    assert_eq!(seqs(&history), vec![seq, c_seq]);
    let default = records(&app, &reader, &by_decision);
    assert_eq!(seqs(&default), vec![seq, c_seq]);
    // The current view as of before the correction still shows the original.
    let before = records(
        &app,
        &reader,
        &format!("{by_decision}&view=current&as_of={c_seq}"),
    );
    assert_eq!(seqs(&before), vec![seq]);
    // The cursor is bound to the view.
    let r = app.get(
        &format!("/v1/records?{by_decision}&view=history&limit=1"),
        Some(&reader),
    );
    let cursor = r.json()["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let r = app.get(
        &format!("/v1/records?{by_decision}&view=current&limit=1&cursor={cursor}"),
        Some(&reader),
    );
    assert_eq!(
        (r.status, r.code()),
        (400, "BAD_CURSOR".into()),
        "{}",
        r.text()
    );

    // Pack axes.
    let by_key = records(
        &app,
        &reader,
        "axis.feature_keys_used=account:e_account_7c31d9",
    );
    assert_eq!(seqs(&by_key), vec![seq, c_seq]);
    assert!(
        records(
            &app,
            &reader,
            "axis.feature_keys_used=device:e_device_91aa02"
        )
        .is_empty()
    );
    let normal = records(&app, &reader, "axis.degrade_mode=NORMAL&view=current");
    assert_eq!(seqs(&normal), vec![c_seq]);
    assert!(records(&app, &reader, "axis.degrade_mode=DEGRADED_NO_IEG").is_empty());
    assert_eq!(
        seqs(&records(&app, &reader, "axis.decision_outcome=APPROVE")),
        vec![seq]
    );
    assert_eq!(
        seqs(&records(&app, &reader_run, &format!("axis.run_id={RUN}"))),
        vec![seq, c_seq]
    );
    let r = app.get("/v1/records?axis.no_such_axis=1", Some(&reader));
    assert_eq!((r.status, r.code()), (400, "UNKNOWN_AXIS".into()));
    assert!(r.text().contains("feature_keys_used"), "{}", r.text());

    // Malformed parameters.
    for (path, code) in [
        ("/v1/records?view=latest", "BAD_PARAMETER"),
        ("/v1/records?as_of=yesterday", "BAD_PARAMETER"),
        ("/v1/quarantine?reason=NOT_A_REASON", "UNKNOWN_REASON"),
        (
            "/v1/quarantine?reason=incomplete_provenance",
            "UNKNOWN_REASON",
        ),
        ("/v1/quarantine?view=current", "UNKNOWN_PARAMETER"),
        ("/v1/quarantine?from=soon", "BAD_PARAMETER"),
        ("/v1/quarantine?limit=0", "BAD_PARAMETER"),
        (
            "/v1/subjects/chunk-7/state?as_of=yesterday",
            "BAD_PARAMETER",
        ),
        (
            "/v1/subjects/chunk-7/state?view=current",
            "UNKNOWN_PARAMETER",
        ),
    ] {
        let r = app.get(path, Some(&auditor));
        assert_eq!(
            (r.status, r.code()),
            (400, code.into()),
            "{path}: {}",
            r.text()
        );
    }
    let r = app.get("/v1/quarantine?reason=NOT_A_REASON", Some(&auditor));
    for valid in [
        "INCOMPLETE_PROVENANCE",
        "SCHEMA_VIOLATION",
        "UNKNOWN_EVENT_TYPE",
        "FORBIDDEN_FIELD",
        "MISSING_SUPERSEDES_LINK",
        "INVALID_SUPERSEDES_LINK",
        "STALE_SUPERSEDES_LINK",
    ] {
        assert!(r.text().contains(valid), "{valid} is listed: {}", r.text());
    }

    // Every read above, allowed or not, is an access record.
    let access = all_pages(
        &app,
        Some(&auditor),
        "/v1/records?type=audit.access&limit=10000",
    );
    let actions = |action: &str, outcome: &str| {
        access
            .iter()
            .filter(|r| r["data"]["action"] == action && r["data"]["outcome"] == outcome)
            .count()
    };
    assert!(actions("quarantine.query", "allowed") >= 5);
    assert!(actions("quarantine.query", "denied") >= 3);
    assert!(actions("quarantine.query", "invalid") >= 3);
    assert!(actions("quarantine.payload", "allowed") >= 2);
    assert!(actions("quarantine.payload", "denied") >= 1);
    assert!(actions("quarantine.payload", "not_found") >= 2);
    assert!(actions("subjects.state", "invalid") >= 1);
    app.stop();
    assert_verifies(dir.path());
}

#[test]
fn subject_state_travels_in_time_and_stays_within_its_tenant() {
    let dir = tempdir();
    let app = InProcess::start_packs(dir.path());
    let (writer, _) = app.create_key(&["writer"], None, None);
    let (reader, _) = app.create_key(&["reader"], None, None);
    let (reader_kb, _) = app.create_key(&["reader"], Some("kb-main"), None);
    let (reader_other, _) = app.create_key(&["reader"], Some("other"), None);
    let (subject_key, _) = app.create_key(&["subject"], Some("kb-main"), Some("chunk-8"));
    let (auditor, _) = app.create_key(&["auditor"], None, None);

    let state =
        |key: &str, query: &str| app.get(&format!("/v1/subjects/chunk-7/state{query}"), Some(key));
    let r = state(&reader, "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "absent", "{}", r.text());

    // chunk-7 is created, modified, then deleted.
    let mut deleted_seq = 0;
    for kind in [
        "knowledge.chunk_created",
        "knowledge.chunk_modified",
        "knowledge.chunk_deleted",
    ] {
        let r = post_one(&app, Some(&writer), &example(kind));
        assert_eq!(r["status"], "appended", "{kind}: {r}");
        deleted_seq = r["seq"].as_u64().expect("a seq");
    }

    // Now: deleted, with a tombstone; what was deleted stays readable.
    let now = state(&reader, "").json();
    assert_eq!(now["status"], "deleted", "{now}");
    assert_eq!(now["subject"], "chunk-7");
    assert_eq!(now["tombstone"]["seq"].as_u64(), Some(deleted_seq), "{now}");
    assert_eq!(now["tombstone"]["reason"], "Superseded by chunk-9", "{now}");
    assert_eq!(now["state"]["contentHash"], "sha256:9a0e44", "{now}");

    // As of the log before the delete: the modified chunk, no tombstone.
    let before = state(&reader, &format!("?as_of={deleted_seq}")).json();
    assert_eq!(before["status"], "active", "{before}");
    assert_eq!(before["state"]["contentHash"], "sha256:9a0e44", "{before}");
    assert!(before["tombstone"].is_null(), "{before}");
    assert_eq!(before["as_of_size"].as_u64(), Some(deleted_seq));
    // As of a time before anything was ingested, and far in the future.
    let past = state(&reader, "?as_of=2000-01-01T00:00:00Z").json();
    assert_eq!(past["status"], "absent", "{past}");
    let future = state(&reader, "?as_of=2200-01-01T00:00:00Z").json();
    assert_eq!(future["status"], "deleted", "{future}");

    // Tenant isolation: the chunk's tenant sees it, another tenant sees nothing of it.
    assert_eq!(state(&reader_kb, "").json()["status"], "deleted");
    let other = state(&reader_other, "");
    assert_eq!(other.status, 200);
    assert_eq!(other.json()["status"], "absent", "{}", other.text());
    assert!(
        !other.text().contains("9a0e44"),
        "another tenant's content never leaks: {}",
        other.text()
    );
    // A subject-role key folds only the records whose data subject is its own: a chunk is
    // nobody's personal data, so it sees nothing of it.
    let r = state(&subject_key, "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "absent", "{}", r.text());
    assert!(!r.text().contains("9a0e44"), "{}", r.text());
    // Writers do not read.
    assert_eq!(state(&writer, "").status, 403);

    // The same subject in two scopes: ambiguous until a scope is named.
    let run_b = "run_20260104T090000Z_0002";
    let a = post_one(&app, Some(&writer), &decision(DECISION, RUN));
    assert_eq!(a["status"], "appended", "{a}");
    let b = post_one(&app, Some(&writer), &decision(DECISION, run_b));
    assert_eq!(b["status"], "appended", "{b}");
    let r = app.get(&format!("/v1/subjects/{DECISION}/state"), Some(&reader));
    assert_eq!(
        (r.status, r.code()),
        (409, "AMBIGUOUS_SCOPE".into()),
        "{}",
        r.text()
    );
    let scopes = r.json()["scopes"].as_array().expect("scopes").clone();
    assert_eq!(scopes.len(), 2, "{}", r.text());
    let scope = scopes[0].as_str().expect("a scope");
    let enc: String = scope
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let r = app.get(
        &format!("/v1/subjects/{DECISION}/state?scope={enc}"),
        Some(&reader),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["scope"].as_str(), Some(scope));
    assert_eq!(r.json()["status"], "observed", "{}", r.text());

    // Every state read is an access record, denied ones included.
    let access = all_pages(
        &app,
        Some(&auditor),
        "/v1/records?type=audit.access&limit=10000",
    );
    let count = |outcome: &str| {
        access
            .iter()
            .filter(|r| r["data"]["action"] == "subjects.state" && r["data"]["outcome"] == outcome)
            .count()
    };
    assert!(count("allowed") >= 8, "{access:?}");
    assert!(count("denied") >= 1, "the writer's attempt: {access:?}");
    app.stop();
    assert_verifies(dir.path());
}

#[test]
fn undeclared_types_are_quarantined_by_default() {
    let dir = tempdir();
    let app = InProcess::start_packs(dir.path());
    let r = post_one(&app, None, &event("e1", None, "s1", "t"));
    assert_eq!(r["status"], "quarantined", "{r}");
    assert_eq!(r["reason_code"], "UNKNOWN_EVENT_TYPE");
    let q = app.get("/v1/quarantine?reason=UNKNOWN_EVENT_TYPE", None);
    assert_eq!(q.status, 200, "open mode is admin: {}", q.text());
    let recs = q.json()["records"].as_array().expect("records").clone();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["data"]["event_type"], "t");
    assert_eq!(recs[0]["subject"], "s1");
    // Nothing reached the canonical log but the server's own records.
    let canonical = app.get("/v1/records?type=t", None).json();
    assert_eq!(canonical["records"], json!([]));
    app.stop();
    assert_verifies(dir.path());
}

#[test]
fn with_undeclared_types_accepted_they_are_appended() {
    let dir = tempdir();
    let app = InProcess::start(dir.path());
    let r = post_one(&app, None, &event("e1", None, "s1", "t"));
    assert_eq!(r["status"], "appended", "{r}");
    assert_eq!(app.get("/v1/quarantine", None).json()["records"], json!([]));
    app.stop();
}

#[test]
fn quarantine_pages_with_after_as_with_cursors() {
    let dir = tempdir();
    let app = InProcess::start_packs(dir.path());
    let (auditor, _) = app.create_key(&["auditor"], None, None);
    let (writer, _) = app.create_key(&["writer"], None, None);
    let batch: Vec<Value> = (0..7)
        .map(|i| {
            event(
                &format!("q{i}"),
                None,
                "s",
                if i % 2 == 0 { "even" } else { "odd" },
            )
        })
        .collect();
    let r = app.post_json("/v1/events", Some(&writer), &json!(batch));
    assert_eq!(r.status, 200, "{}", r.text());
    let everything = quarantine(&app, &auditor, "limit=100");
    assert_eq!(everything.len(), 7);
    let all = seqs(&everything);

    // `after` continues after any seq of the quarantine log, like the cursor it stands for.
    for (i, after) in all.iter().enumerate() {
        let rest = quarantine(&app, &auditor, &format!("after={after}&limit=100"));
        assert_eq!(seqs(&rest), all[i + 1..], "after={after}");
    }
    let mut paged = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let query = match after {
            Some(a) => format!("after={a}&limit=2"),
            None => "limit=2".to_string(),
        };
        let page = quarantine(&app, &auditor, &query);
        let Some(last) = page.last() else { break };
        after = last["seq"].as_u64();
        paged.extend(seqs(&page));
    }
    assert_eq!(paged, all, "pages by after cover the log once, in order");
    assert_eq!(
        seqs(&all_pages(&app, Some(&auditor), "/v1/quarantine?limit=3")),
        all,
        "cursors agree"
    );
    // With a filter, `after` pages within the filter.
    let odd = quarantine(&app, &auditor, &format!("type=odd&after={}", all[0]));
    assert_eq!(
        odd.iter().map(|r| r["id"].clone()).collect::<Vec<_>>(),
        [json!("q1"), json!("q3"), json!("q5")]
    );
    for query in ["after=x", "after=-1", "after=1&cursor=AQ"] {
        let r = app.get(&format!("/v1/quarantine?{query}"), Some(&auditor));
        assert_eq!(
            (r.status, r.code()),
            (400, "BAD_PARAMETER".into()),
            "{query}"
        );
    }
}
