//! End-to-end tests of the packs over HTTP, against the real `sealog serve` with the ledger's
//! defaults (every event must pass its type's pack): ingest results (appended, duplicate,
//! quarantined with their evidence), corrections and the current view, pack axes, rebuilt
//! subject state with time travel, the quarantine log and its payloads, roles and tenant
//! isolation of both, and malformed parameters.

mod http_support;

use http_support::*;
use serde_json::{Value, json};

const RUN: &str = "run_20260103T110000Z_0001";
const DECISION: &str = "evt_txn_000000123";

/// The canonical AuditDecisionRecord of the decision-log seed's Appendix A.1, in the envelope.
fn decision(decision_id: &str, run_id: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": decision_id,
        "source": "decision-fabric",
        "type": "decision-log.audit_decision_record",
        "time": "2026-01-03T12:34:56.123Z",
        "tenant": run_id,
        "actor": {"type": "system", "id": "df-1"},
        "data": {
            "kind": "audit_decision_record",
            "contract_version": "dla_public_contracts_v0",
            "context_pins": {
                "scenario_id": "scn_baseline_v1",
                "run_id": run_id,
                "manifest_fingerprint": "mf_20251231T235959Z_8f3c2a1d",
                "parameter_hash": "ph_4b1d7a9c"
            },
            "decision_id": decision_id,
            "request_id": decision_id,
            "event_id": decision_id,
            "event": {
                "event_ref": "eb://admitted_events/partition=0/offset=9812399",
                "event_time_utc": "2026-01-03T12:34:56Z",
                "event_type": "transaction_event"
            },
            "degrade": {
                "mode": "NORMAL",
                "capabilities_mask": {
                    "allow_ieg": true,
                    "allowed_feature_groups": ["*"],
                    "allow_model_primary": true,
                    "allow_model_stage2": true,
                    "allow_fallback_heuristics": true,
                    "action_posture": "NORMAL"
                },
                "triggers": []
            },
            "features": {
                "feature_keys_used": [{"key_type": "account", "key_id": "e_account_7c31d9"}],
                "feature_snapshot_hash": "fsh_6d3c...a91b",
                "group_versions_used": [{"group_name": "txn_velocity", "group_version": "1.0"}],
                "freshness": [{
                    "group_name": "txn_velocity",
                    "group_version": "1.0",
                    "ttl_seconds": 600,
                    "last_update_event_time": "2026-01-03T12:34:30Z",
                    "age_seconds": 26,
                    "stale": false
                }],
                "input_basis": {
                    "stream_name": "admitted_events",
                    "watermark_basis": {"partition_0": 9812400}
                }
            },
            "ieg": {
                "used": true,
                "graph_version": {
                    "graph_version": "gv_admitted_events_run_20260103T110000Z_0001_000042",
                    "stream_name": "admitted_events",
                    "watermark_basis": {"partition_0": 9812400}
                }
            },
            "decision": {
                "decision_outcome": "APPROVE",
                "actions": [{
                    "action_type": "APPROVE_TRANSACTION",
                    "idempotency_key": "H(pins,evt_txn_000000123,APPROVE_TRANSACTION)",
                    "parameters": {"reason": "risk_below_threshold"}
                }]
            },
            "df_provenance": {
                "df_policy_ref": "df_policy_v0",
                "stage_summary": [
                    {"stage": "stage0_guardrails", "status": "ran"},
                    {"stage": "stage1_primary", "status": "ran"},
                    {"stage": "stage2_secondary", "status": "ran"}
                ],
                "timings": {
                    "started_at_utc": "2026-01-03T12:34:56Z",
                    "ended_at_utc": "2026-01-03T12:34:56Z"
                }
            }
        }
    })
}

/// A knowledge-audit chunk event (knowledge.chunk_created / _modified / _deleted).
fn chunk(id: &str, tenant: &str, chunk_id: &str, op: &str, time: &str) -> Value {
    let principal = json!({"type": "human", "id": "editor-3", "clearance": 3});
    let (kind, data, reason) = match op {
        "create" => (
            "knowledge.chunk_created",
            json!({"principal": principal, "operation": "CREATE", "resourceType": "CHUNK",
                   "resourceId": chunk_id, "chunkType": "policy", "after": "sha256:5f1d0c",
                   "authority": "draft"}),
            None,
        ),
        "modify" => (
            "knowledge.chunk_modified",
            json!({"principal": principal, "operation": "MODIFY", "resourceType": "CHUNK",
                   "resourceId": chunk_id, "before": "sha256:5f1d0c", "after": "sha256:9a0e44",
                   "changeSummary": "Refund window corrected from 14 to 30 days"}),
            None,
        ),
        _ => (
            "knowledge.chunk_deleted",
            json!({"principal": principal, "operation": "DELETE", "resourceType": "CHUNK",
                   "resourceId": chunk_id, "before": "sha256:9a0e44"}),
            Some("Superseded by chunk-9"),
        ),
    };
    let mut e = json!({
        "specversion": "1.0", "id": id, "source": "knowledge-base", "type": kind,
        "time": time, "tenant": tenant, "actor": {"type": "human", "id": "editor-3"},
        "data": data,
    });
    if let Some(r) = reason {
        e["reason"] = json!(r);
    }
    e
}

/// Posts one event and returns its single result.
fn post_one(srv: &Server, key: Option<&str>, event: &Value) -> Value {
    let r = srv.post_json("/v1/events", key, event);
    assert_eq!(r.status, 200, "{}", r.text());
    let results = r.json()["results"].clone();
    assert_eq!(results.as_array().unwrap().len(), 1, "{results}");
    results[0].clone()
}

fn records(srv: &Server, key: &str, query: &str) -> Vec<Value> {
    let r = srv.get(&format!("/v1/records?{query}"), Some(key));
    assert_eq!(r.status, 200, "{query}: {}", r.text());
    r.json()["records"].as_array().unwrap().clone()
}

fn quarantine(srv: &Server, key: &str, query: &str) -> Vec<Value> {
    let r = srv.get(&format!("/v1/quarantine?{query}"), Some(key));
    assert_eq!(r.status, 200, "{query}: {}", r.text());
    r.json()["records"].as_array().unwrap().clone()
}

fn seqs(records: &[Value]) -> Vec<u64> {
    records.iter().map(|r| r["seq"].as_u64().unwrap()).collect()
}

#[test]
fn decision_log_ingest_corrections_views_and_quarantine() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let (writer, _) = create_key(&data, &["writer"], None, None);
    let (reader, _) = create_key(&data, &["reader"], None, None);
    let (auditor, _) = create_key(&data, &["auditor"], None, None);
    let (auditor_run, _) = create_key(&data, &["auditor"], Some(RUN), None);
    let (auditor_other, _) = create_key(&data, &["auditor"], Some("other"), None);
    let (reader_run, _) = create_key(&data, &["reader"], Some(RUN), None);
    let srv = Server::start_packs(&data, &[]);

    // A complete record is appended; the same content again is a duplicate with the same seq.
    let first = post_one(&srv, Some(&writer), &decision(DECISION, RUN));
    assert_eq!(first["status"], "appended", "{first}");
    let seq = first["seq"].as_u64().unwrap();
    let first_id = first["record_id"].as_str().unwrap().to_string();
    let again = post_one(&srv, Some(&writer), &decision(DECISION, RUN));
    assert_eq!(again["status"], "duplicate", "{again}");
    assert_eq!(again["seq"].as_u64(), Some(seq));
    assert_eq!(again["record_id"].as_str(), Some(first_id.as_str()));

    // Missing provenance: quarantined with the dotted path of what is missing.
    let mut incomplete = decision("evt_txn_000000200", RUN);
    incomplete["data"]["features"]
        .as_object_mut()
        .unwrap()
        .remove("feature_snapshot_hash");
    let q = post_one(&srv, Some(&writer), &incomplete);
    assert_eq!(q["status"], "quarantined", "{q}");
    assert_eq!(q["reason_code"], "INCOMPLETE_PROVENANCE");
    assert_eq!(
        q["missing_fields"],
        json!(["data.features.feature_snapshot_hash"])
    );
    assert!(q["quarantine_id"].as_str().unwrap().starts_with("sha256:"));
    assert!(
        q.get("seq").is_none(),
        "a quarantined event has no canonical seq"
    );
    let found = records(&srv, &reader, "id=evt_txn_000000200");
    assert!(
        found.is_empty(),
        "nothing quarantined is canonical: {found:?}"
    );

    // Visible to auditors in the quarantine log; not to readers or writers.
    let inc = quarantine(&srv, &auditor, "reason=INCOMPLETE_PROVENANCE");
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
        let r = srv.get("/v1/quarantine?reason=INCOMPLETE_PROVENANCE", Some(key));
        assert_eq!(r.status, 403, "{}", r.text());
        assert_eq!(r.code(), "FORBIDDEN");
    }
    assert_eq!(
        srv.get("/v1/quarantine", None).status,
        401,
        "keys exist: no key, no access"
    );
    // Filters: by id, by type, by a reason nothing has.
    assert_eq!(quarantine(&srv, &auditor, "id=evt_txn_000000200").len(), 1);
    assert_eq!(
        quarantine(
            &srv,
            &auditor,
            "type=decision-log.audit_decision_record&reason=INCOMPLETE_PROVENANCE"
        )
        .len(),
        1
    );
    assert!(quarantine(&srv, &auditor, "reason=SCHEMA_VIOLATION").is_empty());
    assert!(quarantine(&srv, &auditor, "to=2000-01-01").is_empty());

    // The raw payload is kept as restricted evidence, byte for byte.
    let payload_ref = inc[0]["data"]["payload_ref"].as_str().unwrap().to_string();
    let p = srv.get(
        &format!("/v1/quarantine/payloads/{payload_ref}"),
        Some(&auditor),
    );
    assert_eq!(p.status, 200, "{}", p.text());
    assert_eq!(p.body, incomplete.to_string().as_bytes());
    let p = srv.get(
        &format!("/v1/quarantine/payloads/{payload_ref}"),
        Some(&reader),
    );
    assert_eq!(p.status, 403);
    let missing = format!("sha256:{}", "0".repeat(64));
    let p = srv.get(
        &format!("/v1/quarantine/payloads/{missing}"),
        Some(&auditor),
    );
    assert_eq!(p.status, 404, "{}", p.text());
    let p = srv.get("/v1/quarantine/payloads/blob:1", Some(&auditor));
    assert_eq!(p.status, 400);
    assert_eq!(p.code(), "BAD_PAYLOAD_REF");

    // Tenant isolation of the quarantine log and its payloads.
    assert_eq!(
        quarantine(&srv, &auditor_run, "reason=INCOMPLETE_PROVENANCE").len(),
        1
    );
    assert!(quarantine(&srv, &auditor_other, "reason=INCOMPLETE_PROVENANCE").is_empty());
    assert!(
        quarantine(&srv, &auditor_other, &format!("tenant={RUN}")).is_empty(),
        "a scoped key cannot widen its tenant"
    );
    let p = srv.get(
        &format!("/v1/quarantine/payloads/{payload_ref}"),
        Some(&auditor_other),
    );
    assert_eq!(p.status, 404, "another tenant's payload is not found");
    let p = srv.get(
        &format!("/v1/quarantine/payloads/{payload_ref}"),
        Some(&auditor_run),
    );
    assert_eq!(p.status, 200);

    // A second, different record of the same decision without supersedes.
    let mut second = decision(DECISION, RUN);
    second["data"]["decision"]["decision_outcome"] = json!("REVIEW");
    let r = post_one(&srv, Some(&writer), &second);
    assert_eq!(r["status"], "quarantined", "{r}");
    assert_eq!(r["reason_code"], "MISSING_SUPERSEDES_LINK");
    let link = quarantine(&srv, &auditor, "reason=MISSING_SUPERSEDES_LINK");
    assert_eq!(link.len(), 1);
    assert_eq!(link[0]["id"], DECISION);

    // A correction naming the record it supersedes is appended.
    let mut correction = second.clone();
    correction["data"]["supersedes_audit_record_id"] = json!(first_id);
    correction["data"]["correction_reason"] = json!("manual review");
    let c = post_one(&srv, Some(&writer), &correction);
    assert_eq!(c["status"], "appended", "{c}");
    let c_seq = c["seq"].as_u64().unwrap();
    // Superseding the old head again is stale.
    let mut stale = correction.clone();
    stale["data"]["correction_reason"] = json!("a second opinion");
    let s = post_one(&srv, Some(&writer), &stale);
    assert_eq!(s["status"], "quarantined", "{s}");
    assert_eq!(s["reason_code"], "STALE_SUPERSEDES_LINK");

    // Views: current shows only the head, history both (also the default).
    let by_decision = format!("axis.decision_id={DECISION}");
    let current = records(&srv, &reader, &format!("{by_decision}&view=current"));
    assert_eq!(seqs(&current), vec![c_seq], "{current:?}");
    assert_eq!(current[0]["data"]["decision"]["decision_outcome"], "REVIEW");
    let history = records(&srv, &reader, &format!("{by_decision}&view=history"));
    assert_eq!(seqs(&history), vec![seq, c_seq]);
    let default = records(&srv, &reader, &by_decision);
    assert_eq!(seqs(&default), vec![seq, c_seq]);
    // The current view as of before the correction still shows the original.
    let before = records(
        &srv,
        &reader,
        &format!("{by_decision}&view=current&as_of={c_seq}"),
    );
    assert_eq!(seqs(&before), vec![seq]);
    // Paging through the current view: the cursor is bound to the view.
    let r = srv.get(
        &format!("/v1/records?{by_decision}&view=history&limit=1"),
        Some(&reader),
    );
    let cursor = r.json()["next_cursor"].as_str().unwrap().to_string();
    let r = srv.get(
        &format!("/v1/records?{by_decision}&view=current&limit=1&cursor={cursor}"),
        Some(&reader),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.code(), "BAD_CURSOR");

    // Pack axes.
    let by_key = records(
        &srv,
        &reader,
        "axis.feature_keys_used=account:e_account_7c31d9",
    );
    assert_eq!(seqs(&by_key), vec![seq, c_seq]);
    assert!(
        records(
            &srv,
            &reader,
            "axis.feature_keys_used=device:e_device_91aa02"
        )
        .is_empty()
    );
    let normal = records(&srv, &reader, "axis.degrade_mode=NORMAL&view=current");
    assert_eq!(seqs(&normal), vec![c_seq]);
    assert!(records(&srv, &reader, "axis.degrade_mode=DEGRADED_NO_IEG").is_empty());
    assert_eq!(
        seqs(&records(&srv, &reader, "axis.decision_outcome=APPROVE")),
        vec![seq]
    );
    assert_eq!(
        seqs(&records(&srv, &reader_run, &format!("axis.run_id={RUN}"))),
        vec![seq, c_seq]
    );
    let r = srv.get("/v1/records?axis.no_such_axis=1", Some(&reader));
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "UNKNOWN_AXIS");
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
        let r = srv.get(path, Some(&auditor));
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert_eq!(r.code(), code, "{path}: {}", r.text());
    }
    let r = srv.get("/v1/quarantine?reason=NOT_A_REASON", Some(&auditor));
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
    let access = records(&srv, &auditor, "type=audit.access&limit=10000");
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
    srv.stop();
    assert_verifies(&data);
}

#[test]
fn subject_state_time_travel_and_isolation() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let (writer, _) = create_key(&data, &["writer"], None, None);
    let (reader, _) = create_key(&data, &["reader"], None, None);
    let (reader_kb, _) = create_key(&data, &["reader"], Some("kb-main"), None);
    let (reader_other, _) = create_key(&data, &["reader"], Some("other"), None);
    let (subject_key, _) = create_key(&data, &["subject"], Some("kb-main"), Some("chunk-8"));
    let (auditor, _) = create_key(&data, &["auditor"], None, None);
    let srv = Server::start_packs(&data, &[]);

    let state =
        |key: &str, query: &str| srv.get(&format!("/v1/subjects/chunk-7/state{query}"), Some(key));
    let r = state(&reader, "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "absent", "{}", r.text());

    let created = post_one(
        &srv,
        Some(&writer),
        &chunk(
            "ka-1",
            "kb-main",
            "chunk-7",
            "create",
            "2026-03-01T08:00:00Z",
        ),
    );
    assert_eq!(created["status"], "appended", "{created}");
    let modified = post_one(
        &srv,
        Some(&writer),
        &chunk(
            "ka-2",
            "kb-main",
            "chunk-7",
            "modify",
            "2026-03-02T08:00:00Z",
        ),
    );
    assert_eq!(modified["status"], "appended", "{modified}");
    let deleted = post_one(
        &srv,
        Some(&writer),
        &chunk(
            "ka-4",
            "kb-main",
            "chunk-7",
            "delete",
            "2026-03-05T08:00:00Z",
        ),
    );
    assert_eq!(deleted["status"], "appended", "{deleted}");
    let deleted_seq = deleted["seq"].as_u64().unwrap();

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
    // A subject-role key reads only its own data subject.
    let r = state(&subject_key, "");
    assert_eq!(r.status, 403, "{}", r.text());
    let r = srv.get("/v1/subjects/chunk-8/state", Some(&subject_key));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "absent");
    // Writers do not read.
    assert_eq!(state(&writer, "").status, 403);

    // The same subject in two scopes: ambiguous until a scope is named.
    let run_b = "run_20260104T090000Z_0002";
    let a = post_one(&srv, Some(&writer), &decision(DECISION, RUN));
    assert_eq!(a["status"], "appended", "{a}");
    let b = post_one(&srv, Some(&writer), &decision(DECISION, run_b));
    assert_eq!(b["status"], "appended", "{b}");
    let r = srv.get(&format!("/v1/subjects/{DECISION}/state"), Some(&reader));
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.code(), "AMBIGUOUS_SCOPE");
    let scopes = r.json()["scopes"].as_array().unwrap().clone();
    assert_eq!(scopes.len(), 2, "{}", r.text());
    let scope = scopes[0].as_str().unwrap();
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
    let r = srv.get(
        &format!("/v1/subjects/{DECISION}/state?scope={enc}"),
        Some(&reader),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["scope"].as_str(), Some(scope));
    assert_eq!(r.json()["status"], "observed", "{}", r.text());

    // Every state read is an access record, denied ones included.
    let access = records(&srv, &auditor, "type=audit.access&limit=10000");
    let count = |outcome: &str| {
        access
            .iter()
            .filter(|r| r["data"]["action"] == "subjects.state" && r["data"]["outcome"] == outcome)
            .count()
    };
    assert!(count("allowed") >= 8, "{access:?}");
    assert!(count("denied") >= 2);
    srv.stop();
    assert_verifies(&data);
}

#[test]
fn undeclared_types_are_quarantined_by_default() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let srv = Server::start_packs(&data, &[]);
    let r = post_one(&srv, None, &event("e1", None, "s1", "t"));
    assert_eq!(r["status"], "quarantined", "{r}");
    assert_eq!(r["reason_code"], "UNKNOWN_EVENT_TYPE");
    let q = srv.get("/v1/quarantine?reason=UNKNOWN_EVENT_TYPE", None);
    assert_eq!(q.status, 200, "open mode is admin: {}", q.text());
    let recs = q.json()["records"].as_array().unwrap().clone();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["data"]["event_type"], "t");
    assert_eq!(recs[0]["subject"], "s1");
    // Nothing reached the canonical log but the server's own records.
    let canonical = srv.get("/v1/records?type=t", None).json();
    assert!(canonical["records"].as_array().unwrap().is_empty());
    // The server's own types are reserved to it, whatever the packs say.
    let r = srv.post_json(
        "/v1/events",
        None,
        &event("e2", None, "s1", "sealog.quarantine"),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["results"][0]["error"]["code"], "RESERVED_TYPE");
    srv.stop();
    assert_verifies(&data);
}

#[test]
fn with_accept_undeclared_types_they_are_appended() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let srv = Server::start(&data);
    let r = post_one(&srv, None, &event("e1", None, "s1", "t"));
    assert_eq!(r["status"], "appended", "{r}");
    srv.stop();
}
