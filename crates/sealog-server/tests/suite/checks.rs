//! Consistency checks over HTTP: running them, listing and resolving conflicts within a key's
//! tenant, the errors of each route, and the reads recorded with whose data they returned.

use crate::support;

use sealog_testkit::Api;
use sealog_testkit::{InProcess, tempdir};
use serde_json::{Value, json};
use support::{offline_records, post_one};

fn chunk(id: &str, tenant: &str, chunk: &str, time: &str, value: &str, authority: &str) -> Value {
    json!({
        "specversion": "1.0", "id": id, "source": "knowledge-base",
        "type": "knowledge.chunk_created", "time": time, "tenant": tenant,
        "actor": {"type": "human", "id": "editor-3"},
        "data": {"principal": {"type": "human", "id": "editor-3", "clearance": 3},
            "operation": "CREATE", "resourceType": "CHUNK", "resourceId": chunk,
            "chunkType": "policy", "after": format!("h-{id}"), "authority": authority,
            "claim": {"key": "refund_days", "value": value}},
    })
}

fn run(app: &InProcess, key: &str, body: &Value) -> Value {
    let r = app.post_json("/v1/checks", Some(key), body);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn conflicts(app: &InProcess, key: &str, query: &str) -> Vec<Value> {
    let r = app.get(&format!("/v1/conflicts{query}"), Some(key));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["conflicts"].as_array().unwrap().clone()
}

#[test]
fn conflicts_are_found_listed_within_a_tenant_and_resolved_by_records() {
    let dir = tempdir();
    let app = InProcess::start_packs(dir.path());
    let (admin, _) = app.create_key(&["admin"], None, None);
    let (auditor_a, _) = app.create_key(&["auditor"], Some("kb-a"), None);
    let (auditor_b, _) = app.create_key(&["auditor"], Some("kb-b"), None);
    for e in [
        // Equal authority and time, both by humans: escalated to a person.
        chunk(
            "a1",
            "kb-a",
            "chunk-1",
            "2026-03-01T08:00:00Z",
            "30",
            "approved",
        ),
        chunk(
            "a2",
            "kb-a",
            "chunk-2",
            "2026-03-01T08:00:00Z",
            "14",
            "approved",
        ),
        // Different authority: settled at once.
        chunk(
            "b1",
            "kb-b",
            "chunk-1",
            "2026-03-01T08:00:00Z",
            "30",
            "approved",
        ),
        chunk(
            "b2",
            "kb-b",
            "chunk-2",
            "2026-03-01T08:00:00Z",
            "14",
            "draft",
        ),
    ] {
        assert_eq!(post_one(&app, Some(&admin), &e)["status"], "appended");
    }
    let report = run(&app, &admin, &json!({"rules": ["knowledge.contradiction"]}));
    assert_eq!(report["partial"], true);
    assert_eq!(report["new_findings"], 2, "{report}");
    assert_eq!(report["integrity"]["ok"], true);
    let ours = conflicts(&app, &auditor_a, "");
    assert_eq!(ours.len(), 1, "a tenant sees only its own conflicts");
    assert_eq!(ours[0]["tenant"], "kb-a");
    assert_eq!(ours[0]["status"], "escalated");
    let theirs = conflicts(&app, &auditor_b, "?status=resolved");
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0]["resolutions"][0]["resolution"], "authority_wins");
    assert_eq!(theirs[0]["resolutions"][0]["winner"], "chunk-1");
    assert_eq!(conflicts(&app, &admin, "?criticality=high").len(), 0);
    assert_eq!(conflicts(&app, &admin, "?criticality=medium").len(), 2);
    assert_eq!(
        conflicts(&app, &admin, "?rule=knowledge.redundancy").len(),
        0
    );

    let id = ours[0]["conflict_id"].as_str().unwrap().to_string();
    let path = format!("/v1/conflicts/{id}/resolve");
    // Out of reach answers like absent.
    let r = app.post_json(
        &path,
        Some(&auditor_b),
        &json!({"resolution": "dismissed", "reason": "x"}),
    );
    assert_eq!(
        (r.status, r.code()),
        (404, "NOT_FOUND".to_string()),
        "{}",
        r.text()
    );
    // A criterion that does not decide is refused.
    let r = app.post_json(
        &path,
        Some(&auditor_a),
        &json!({"resolution": "recency_wins", "reason": "x"}),
    );
    assert_eq!(
        (r.status, r.code()),
        (422, "CHECK_REFUSED".to_string()),
        "{}",
        r.text()
    );
    for (body, status) in [
        (json!({"resolution": "maybe", "reason": "x"}), 400),
        (json!({"resolution": "dismissed", "reason": " "}), 400),
        (json!({"resolution": "dismissed"}), 400),
        (
            json!({"resolution": "dismissed", "reason": "x", "extra": 1}),
            400,
        ),
    ] {
        let r = app.post_json(&path, Some(&auditor_a), &body);
        assert_eq!(r.status, status, "{body}: {}", r.text());
    }
    let r = app.req(
        "POST",
        &path,
        Some(&auditor_a),
        Some(("application/json", b"{not json")),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let r = app.req("POST", &path, Some(&auditor_a), Some(("text/plain", b"{}")));
    assert_eq!(r.status, 415, "{}", r.text());
    let huge = vec![b' '; 2 << 20];
    let r = app.req(
        "POST",
        &path,
        Some(&auditor_a),
        Some(("application/json", &huge)),
    );
    assert_eq!(r.status, 413, "{}", r.text());

    let r = app.post_json(
        &path,
        Some(&auditor_a),
        &json!({"resolution": "dismissed", "reason": "regional rules differ"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let record = r.json();
    assert_eq!(record["type"], "sealog.conflict_resolved");
    assert_eq!(record["tenant"], "kb-a");
    let r = app.post_json(
        &path,
        Some(&auditor_a),
        &json!({"resolution": "dismissed", "reason": "again"}),
    );
    assert_eq!((r.status, r.code()), (409, "ALREADY_RESOLVED".to_string()));
    assert_eq!(conflicts(&app, &auditor_a, "?status=resolved").len(), 1);
    let r = app.get("/v1/conflicts?status=closed", Some(&admin));
    assert_eq!(r.status, 400);
    let r = app.get("/v1/conflicts?sort=x", Some(&admin));
    assert_eq!(r.status, 400);
    let r = app.post_json("/v1/checks", Some(&admin), &json!({"rules": ["no.such"]}));
    assert_eq!((r.status, r.code()), (422, "CHECK_REFUSED".to_string()));
    let r = app.post_json("/v1/checks", Some(&admin), &json!({"rules": "one"}));
    assert_eq!(r.status, 400);

    // The open-conflicts gauge follows the log.
    let metrics = app.get("/metrics", Some(&admin)).text();
    assert!(
        metrics.contains("sealog_conflicts_open{criticality=\"medium\"} 0"),
        "{metrics}"
    );
    app.stop();
    let records = offline_records(dir.path());
    let of = |t: &str| records.iter().filter(|r| r["type"] == t).count();
    assert_eq!(of("sealog.conflict"), 2);
    // The escalation, the automatic settlement, and the person's dismissal.
    assert_eq!(of("sealog.conflict_resolved"), 3);
    assert_eq!(of("sealog.check_run"), 1);
    let superseded = records
        .iter()
        .filter(|r| r["data"]["relationshipType"] == "SUPERSEDED_BY")
        .count();
    assert_eq!(superseded, 1);
}

#[test]
fn a_read_is_recorded_with_the_data_subjects_it_returned() {
    let dir = tempdir();
    let app = InProcess::start_packs(dir.path());
    let (admin, _) = app.create_key(&["admin"], None, None);
    let mut seq = 0;
    for (n, customer) in ["cust-1", "cust-2", "cust-1"].iter().enumerate() {
        let mut e = sealog_testkit::events::example("comms.popia_request");
        e["id"] = json!(format!("p{n}"));
        e["data"]["request_id"] = json!(format!("popia-{n}"));
        e["data"]["customer_id"] = json!(customer);
        let result = post_one(&app, Some(&admin), &e);
        assert_eq!(result["status"], "appended");
        seq = result["seq"].as_u64().unwrap();
    }
    let r = app.get("/v1/records?type=comms.popia_request", Some(&admin));
    assert_eq!(r.status, 200);
    let r = app.get(&format!("/v1/records/{seq}"), Some(&admin));
    assert_eq!(r.status, 200);
    app.stop();
    let reads: Vec<Value> = offline_records(dir.path())
        .into_iter()
        .filter(|r| r["type"] == "audit.access" && r["data"]["outcome"] == "allowed")
        .collect();
    let query = reads
        .iter()
        .find(|r| r["data"]["action"] == "records.query")
        .unwrap();
    let named = query["data"]["data_subjects"].as_array().unwrap();
    assert_eq!(named.len(), 2, "{query}");
    assert!(
        named.iter().all(|p| p.as_str().unwrap().starts_with("ps:")),
        "pseudonyms only: {query}"
    );
    assert!(!query.to_string().contains("cust-"));
    let get = reads
        .iter()
        .find(|r| r["data"]["action"] == "records.get")
        .unwrap();
    assert_eq!(get["data"]["data_subjects"].as_array().unwrap().len(), 1);
}
