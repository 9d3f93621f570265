//! `/v1/exports`: who may export what (role × tenant × data subject), downloads that match
//! their manifest and verify offline, `audit.export` records, approval of bulk exports by a
//! second admin, expiry, and bad requests.

use crate::support;

use std::time::Duration;

use sealog_ledger::{Packs, Undeclared};
use sealog_server::{ExportConfig, ServerConfig};
use sealog_testkit::events::{event, example};
use sealog_testkit::{Api, InProcess, Resp, tempdir, wait_for};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{assert_verifies, offline_records};

fn start(dir: &std::path::Path, exports: ExportConfig) -> InProcess {
    let config = ServerConfig {
        exports,
        ..ServerConfig::default()
    };
    InProcess::start_with(dir, Undeclared::Accept, config)
}

/// Tenants `a` and `b`, three ad-hoc events each, and per tenant one support ticket of
/// customer `c1` and one of `c2` (their data subjects).
fn seed(app: &InProcess, admin: &str) {
    let mut events = Vec::new();
    for tenant in ["a", "b"] {
        for i in 0..3 {
            events.push(event(
                &format!("{tenant}{i}"),
                Some(tenant),
                &format!("s{i}"),
                "t",
            ));
        }
        for customer in ["c1", "c2"] {
            let mut e = example("comms.order");
            e["id"] = json!(format!("ticket-{tenant}-{customer}"));
            e["tenant"] = json!(tenant);
            e["data"]["order_id"] = json!(format!("T-{tenant}-{customer}"));
            e["data"]["customer_id"] = json!(customer);
            events.push(e);
        }
    }
    let body = sealog_testkit::events::ndjson(&events);
    let r = app.req(
        "POST",
        "/v1/events",
        Some(admin),
        Some(("application/x-ndjson", &body)),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.json()["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["status"] == "appended"),
        "{}",
        r.text()
    );
}

fn export(app: &InProcess, key: &str, body: Value) -> Resp {
    app.post_json("/v1/exports", Some(key), &body)
}

/// The records of a finished export, downloaded; its headers checked against the body and
/// the manifest, and the three files verified offline.
fn download(app: &InProcess, key: &str, status: &Value) -> Vec<Value> {
    let id = status["id"].as_str().unwrap();
    let file = app.get(&format!("/v1/exports/{id}"), Some(key));
    assert_eq!(file.status, 200, "{}", file.text());
    let sha = hex::encode(Sha256::digest(&file.body));
    assert_eq!(file.header("x-sealog-sha256"), Some(sha.as_str()));
    assert_eq!(
        file.header("content-length")
            .map(|l| l.parse::<usize>().unwrap()),
        Some(file.body.len())
    );
    assert_eq!(status["manifest"]["sha256"], sha);
    let manifest = app.get(&format!("/v1/exports/{id}/manifest"), Some(key));
    assert_eq!(manifest.status, 200);
    assert_eq!(manifest.json(), status["manifest"]);
    let proof_name = status["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f.as_str().unwrap().ends_with(".proof"))
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let proof = app.get(&format!("/v1/exports/{id}/files/{proof_name}"), Some(key));
    assert_eq!(proof.status, 200);

    let dir = tempdir();
    let local = dir
        .path()
        .join(format!("download.{}", status["format"].as_str().unwrap()));
    std::fs::write(&local, &file.body).unwrap();
    std::fs::write(sealog_export::proof_path(&local), &proof.body).unwrap();
    std::fs::write(sealog_export::manifest_path(&local), &manifest.body).unwrap();
    let v = sealog_export::verify(
        &sealog_export::manifest_path(&local),
        None,
        &Packs::builtin(),
    )
    .expect("the downloaded export verifies offline");
    assert_eq!(v.count, status["count"].as_u64().unwrap());
    sealog_export::record_texts(&local)
        .unwrap_or_else(|_| {
            String::from_utf8(file.body)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        })
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn each_key_exports_exactly_what_it_may_read() {
    let dir = tempdir();
    let app = start(dir.path(), ExportConfig::default());
    let key = |roles: &[&str], tenant: Option<&str>, subject: Option<&str>| {
        app.create_key(roles, tenant, subject).0
    };
    let admin = key(&["admin"], None, None);
    seed(&app, &admin);
    let auditor = key(&["auditor"], None, None);
    let auditor_a = key(&["auditor"], Some("a"), None);
    let auditor_b = key(&["auditor"], Some("b"), None);
    let admin_a = key(&["admin"], Some("a"), None);
    let subject_a = key(&["subject"], Some("a"), Some("c1"));
    let reader = key(&["reader"], None, None);
    let writer = key(&["writer"], None, None);

    let ad_hoc = json!({"format": "jsonl", "filters": {"type": "t"}});
    let tickets = json!({"format": "jsonl", "filters": {"type": "comms.order"}});
    // (who, request, records it must hold as (tenant, id))
    let cases: Vec<(&str, &str, &Value, Vec<&str>)> = vec![
        (
            "auditor",
            &auditor,
            &ad_hoc,
            vec!["a0", "a1", "a2", "b0", "b1", "b2"],
        ),
        (
            "admin",
            &admin,
            &ad_hoc,
            vec!["a0", "a1", "a2", "b0", "b1", "b2"],
        ),
        ("auditor@a", &auditor_a, &ad_hoc, vec!["a0", "a1", "a2"]),
        ("admin@a", &admin_a, &ad_hoc, vec!["a0", "a1", "a2"]),
        ("auditor@b", &auditor_b, &ad_hoc, vec!["b0", "b1", "b2"]),
        ("subject@a/c1", &subject_a, &ad_hoc, vec![]),
        ("subject@a/c1", &subject_a, &tickets, vec!["ticket-a-c1"]),
        (
            "auditor@a",
            &auditor_a,
            &tickets,
            vec!["ticket-a-c1", "ticket-a-c2"],
        ),
    ];
    let mut made = Vec::new();
    for (who, k, body, want) in cases {
        let r = export(&app, k, body.clone());
        assert_eq!(r.status, 201, "{who}: {}", r.text());
        let status = r.json();
        assert_eq!(status["state"], "done");
        let mut ids: Vec<String> = download(&app, k, &status)
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        assert_eq!(ids, want, "{who} exports {body}");
        made.push((who, status["id"].as_str().unwrap().to_string()));
    }
    // A tenant key asking for another tenant gets nothing of it.
    let r = export(
        &app,
        &auditor_a,
        json!({"format": "jsonl", "filters": {"tenant": "b"}}),
    );
    assert_eq!(r.json()["count"], 0, "{}", r.text());

    // Only auditors, admins and subject keys export.
    for (who, k) in [("reader", &reader), ("writer", &writer)] {
        let r = export(&app, k, ad_hoc.clone());
        assert_eq!(
            (r.status, r.code()),
            (403, "FORBIDDEN".to_string()),
            "{who}"
        );
    }
    // An export is seen by keys of the same reach and by unscoped ones, by no one else.
    let (_, of_a) = made.iter().find(|(w, _)| *w == "auditor@a").unwrap();
    for (who, k, sees) in [
        ("auditor", &auditor, true),
        ("admin@a", &admin_a, true),
        ("auditor@b", &auditor_b, false),
        ("subject@a/c1", &subject_a, false),
    ] {
        let r = app.get(&format!("/v1/exports/{of_a}/status"), Some(k));
        assert_eq!(
            r.status,
            if sees { 200 } else { 404 },
            "{who}: {}",
            r.text()
        );
        let f = app.get(&format!("/v1/exports/{of_a}"), Some(k));
        assert_eq!(f.status, if sees { 200 } else { 404 }, "{who}");
    }
    app.stop();

    // Every export is itself a record: who, what, how many, the file's hash.
    let records = offline_records(dir.path());
    let exports: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "audit.export")
        .collect();
    assert_eq!(exports.len(), made.len() + 1);
    for (_, id) in &made {
        let r = exports
            .iter()
            .find(|r| r["data"]["export_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no audit.export of {id}"));
        assert!(r["data"]["sha256"].as_str().unwrap().len() == 64);
        assert!(r["data"]["principal"]["key_id"].is_string());
        assert!(r["data"]["filters"].is_object());
    }
    let of_tenant = exports
        .iter()
        .find(|r| r["data"]["export_id"] == of_a.as_str())
        .unwrap();
    assert_eq!(
        of_tenant["tenant"], "a",
        "a tenant's export is recorded in its tenant"
    );
    assert_verifies(dir.path());
}

#[test]
fn a_bulk_export_waits_for_a_second_admin() {
    let dir = tempdir();
    let config = ExportConfig {
        approval_above: 2,
        background_above: 0,
        ..ExportConfig::default()
    };
    let app = start(dir.path(), config);
    let (admin, admin_id) = app.create_key(&["admin"], None, None);
    let (second, second_id) = app.create_key(&["admin"], None, None);
    let auditor = app.create_key(&["auditor"], None, None).0;
    seed(&app, &admin);

    let r = export(
        &app,
        &auditor,
        json!({"format": "parquet", "filters": {"type": "t"}}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let status = r.json();
    assert_eq!(
        (status["state"].as_str(), status["count"].as_u64()),
        (Some("pending"), Some(6))
    );
    let id = status["id"].as_str().unwrap().to_string();
    let f = app.get(&format!("/v1/exports/{id}"), Some(&auditor));
    assert_eq!((f.status, f.code()), (409, "EXPORT_NOT_READY".to_string()));

    // An auditor may not approve; an admin may not approve an export it asked for.
    let approve = |k: &str| app.req("POST", &format!("/v1/exports/{id}/approve"), Some(k), None);
    assert_eq!(approve(&auditor).status, 403);
    let mine = export(
        &app,
        &admin,
        json!({"format": "jsonl", "filters": {"type": "t"}}),
    )
    .json();
    let own = app.req(
        "POST",
        &format!("/v1/exports/{}/approve", mine["id"].as_str().unwrap()),
        Some(&admin),
        None,
    );
    assert_eq!(own.status, 403, "{}", own.text());
    assert!(own.text().contains("second admin"));
    // Nor by admin keys it made itself over HTTP, or that those made: one holder may hold
    // them all.
    let mint = |by: &str| {
        let r = app.post_json("/v1/keys", Some(by), &json!({"roles": ["admin"]}));
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()["key"].as_str().unwrap().to_string()
    };
    let minted = mint(&admin);
    let minted_again = mint(&minted);
    for k in [&minted, &minted_again] {
        let r = app.req(
            "POST",
            &format!("/v1/exports/{}/approve", mine["id"].as_str().unwrap()),
            Some(k),
            None,
        );
        assert_eq!(r.status, 403, "{}", r.text());
        assert!(
            r.text().contains("one holder may hold both"),
            "{}",
            r.text()
        );
    }

    let r = approve(&admin);
    assert_eq!(r.status, 202, "{}", r.text());
    let done = wait_for(60, "the approved export to finish", || {
        let s = app
            .get(&format!("/v1/exports/{id}/status"), Some(&auditor))
            .json();
        (s["state"] == "done").then_some(s)
    });
    assert_eq!(done["approved_by"], admin_id.as_str());
    assert_eq!(done["written"], 6);
    assert_eq!(download(&app, &auditor, &done).len(), 6);
    let again = approve(&second);
    assert_eq!(
        (again.status, again.code()),
        (409, "NOT_PENDING".to_string())
    );
    app.stop();

    let records = offline_records(dir.path());
    let approved: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "audit.export_approved")
        .collect();
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0]["data"]["approved_by"], admin_id.as_str());
    assert_eq!(approved[0]["data"]["export_id"], id.as_str());
    let exported = records
        .iter()
        .find(|r| r["type"] == "audit.export" && r["data"]["export_id"] == id.as_str())
        .expect("the approved export is recorded");
    assert_eq!(exported["data"]["approved_by"], admin_id.as_str());
    assert_ne!(second_id, admin_id);
}

#[test]
fn the_same_request_cut_at_the_same_size_gives_the_same_export() {
    let dir = tempdir();
    let app = start(dir.path(), ExportConfig::default());
    let auditor = app.create_key(&["auditor"], None, None).0;
    let admin = app.create_key(&["admin"], None, None).0;
    seed(&app, &admin);
    let size = app
        .get("/checkpoint", Some(&auditor))
        .text()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    let body = json!({"format": "jsonl", "filters": {"type": "t", "as_of": size}});
    let first = export(&app, &auditor, body.clone()).json();
    // Unrelated appends, and reads that append their own access records, in between.
    app.post_json(
        "/v1/events",
        Some(&admin),
        &event("late", Some("c"), "s9", "t"),
    );
    let second = export(&app, &auditor, body).json();
    assert_ne!(first["id"], second["id"], "two exports, two jobs");
    assert_eq!(first["manifest"], second["manifest"], "the same manifest");
    let a = app.get(
        &format!("/v1/exports/{}", first["id"].as_str().unwrap()),
        Some(&auditor),
    );
    let b = app.get(
        &format!("/v1/exports/{}", second["id"].as_str().unwrap()),
        Some(&auditor),
    );
    assert_eq!(a.body, b.body, "the same bytes");
    app.stop();
}

#[test]
fn a_bundle_holds_one_subjects_history_and_everything_to_check_it() {
    let dir = tempdir();
    let app = start(dir.path(), ExportConfig::default());
    let auditor = app.create_key(&["auditor"], None, None).0;
    let admin = app.create_key(&["admin"], None, None).0;
    seed(&app, &admin);
    let r = export(
        &app,
        &auditor,
        json!({"format": "bundle", "filters": {"data_subject": "c1"}}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let status = r.json();
    assert_eq!(status["count"], 2, "one ticket of c1 per tenant");
    let files: Vec<String> = serde_json::from_value(status["files"].clone()).unwrap();
    for f in [
        "bundle/records.jsonl",
        "bundle/checkpoint",
        "bundle/log.pub",
        "bundle/README.md",
        "bundle/schemas/comms.order.schema.json",
    ] {
        assert!(files.iter().any(|x| x == f), "{f} in {files:?}");
        let r = app.get(
            &format!("/v1/exports/{}/files/{f}", status["id"].as_str().unwrap()),
            Some(&auditor),
        );
        assert_eq!(r.status, 200, "{f}");
    }
    let outside = app.get(
        &format!(
            "/v1/exports/{}/files/../../keys/log.key",
            status["id"].as_str().unwrap()
        ),
        Some(&auditor),
    );
    assert_eq!(outside.status, 404, "only the export's own files");
    let r = export(
        &app,
        &auditor,
        json!({"format": "bundle", "filters": {"type": "t"}}),
    );
    assert_eq!(
        (r.status, r.code()),
        (400, "BAD_EXPORT_REQUEST".to_string())
    );
    app.stop();
}

#[test]
fn bad_export_requests_get_clear_errors_and_change_nothing() {
    let dir = tempdir();
    let app = start(dir.path(), ExportConfig::default());
    let auditor = app.create_key(&["auditor"], None, None).0;
    let post = |body: &[u8]| {
        app.req(
            "POST",
            "/v1/exports",
            Some(&auditor),
            Some(("application/json", body)),
        )
    };
    for (body, status, code, says) in [
        (
            &b"not json"[..],
            400,
            "BAD_EXPORT_REQUEST",
            "not an export request",
        ),
        (br#"{"format":"csv"}"#, 400, "BAD_EXPORT_REQUEST", "csv"),
        (
            br#"{"format":"jsonl","filters":{"colour":"red"}}"#,
            400,
            "BAD_EXPORT_REQUEST",
            "colour",
        ),
        (
            br#"{"format":"jsonl","extra":1}"#,
            400,
            "BAD_EXPORT_REQUEST",
            "extra",
        ),
        (
            br#"{"format":"jsonl","filters":{"axes":{"nope":"1"}}}"#,
            400,
            "UNKNOWN_AXIS",
            "nope",
        ),
        (
            br#"{"format":"jsonl","filters":{"view":"sideways"}}"#,
            400,
            "BAD_EXPORT_REQUEST",
            "view",
        ),
        (
            br#"{"format":"jsonl","filters":{"from":"yesterday"}}"#,
            400,
            "BAD_EXPORT_REQUEST",
            "from",
        ),
        (
            br#"{"format":"jsonl","filters":{"as_of":"999999"}}"#,
            409,
            "AS_OF_PAST_END",
            "past the end",
        ),
        (
            br#"{"format":"jsonl","filters":{"checkpoint":"forged\n"}}"#,
            422,
            "INVALID_ARGUMENT",
            "not this log's",
        ),
    ] {
        let r = post(body);
        assert_eq!(
            (r.status, r.code()),
            (status, code.to_string()),
            "{}: {}",
            String::from_utf8_lossy(body),
            r.text()
        );
        assert!(r.text().contains(says), "{}", r.text());
    }
    let huge = format!(
        r#"{{"format":"jsonl","filters":{{"subject":"{}"}}}}"#,
        "x".repeat(3 << 20)
    );
    let r = post(huge.as_bytes());
    assert!(r.status == 413 || r.status == 400, "{}", r.status);
    let unknown = app.get("/v1/exports/exp_nope/status", Some(&auditor));
    assert_eq!(unknown.status, 404);
    assert_eq!(
        std::fs::read_dir(dir.path().join("exports"))
            .unwrap()
            .count(),
        0,
        "no files made"
    );
    app.stop();
}

#[test]
fn an_export_expires_with_its_files() {
    let dir = tempdir();
    let config = ExportConfig {
        ttl: Duration::ZERO,
        ..ExportConfig::default()
    };
    let app = start(dir.path(), config);
    let auditor = app.create_key(&["auditor"], None, None).0;
    let r = export(&app, &auditor, json!({"format": "jsonl"}));
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.get(&format!("/v1/exports/{id}/status"), Some(&auditor))
            .status,
        404
    );
    assert!(
        !dir.path().join("exports").join(&id).exists(),
        "its files are gone"
    );
    app.stop();
}
