//! Every role (and tenant-scoped variant, and no key at all) against every route: allowed
//! routes answer, denied ones answer 403 (401 without a key), and every refusal is recorded
//! as an `audit.access` record with outcome `denied`.

use crate::support;

use sealog_testkit::Api;
use sealog_testkit::events::event;
use sealog_testkit::{InProcess, tempdir};
use serde_json::{Value, json};
use support::{assert_verifies, offline_records};

struct Who {
    name: &'static str,
    key: Option<String>,
}

const READERS: &[&str] = &[
    "reader",
    "auditor",
    "admin",
    "reader@a",
    "auditor@a",
    "admin@a",
    "subject@a",
];
const AUDITORS: &[&str] = &["auditor", "admin", "auditor@a", "admin@a"];
const UNSCOPED_AUDITORS: &[&str] = &["auditor", "admin"];
/// Who may check the log's growth and a record it names by record_id (a writer verifies what
/// it wrote).
const VERIFIERS: &[&str] = &[
    "writer",
    "auditor",
    "admin",
    "writer@a",
    "auditor@a",
    "admin@a",
];
const ADMINS: &[&str] = &["admin", "admin@a"];
const UNSCOPED_ADMINS: &[&str] = &["admin"];
const EVERYONE: &[&str] = &["*"];
const EXPORTERS: &[&str] = &["auditor", "admin", "auditor@a", "admin@a", "subject@a"];

/// Appends one event of tenant `a`, subject `s1`; its result.
fn seed(app: &InProcess, admin: &str) -> serde_json::Value {
    app.post_json(
        "/v1/events",
        Some(admin),
        &event("seed", Some("a"), "s1", "t"),
    )
    .json()["results"][0]
        .clone()
}

#[test]
fn every_role_reaches_exactly_its_routes_and_every_refusal_is_recorded() {
    let dir = tempdir();
    let app = InProcess::start(dir.path());
    let mut who: Vec<Who> = Vec::new();
    for (name, role, tenant, subject) in [
        ("writer", "writer", None, None),
        ("reader", "reader", None, None),
        ("auditor", "auditor", None, None),
        ("admin", "admin", None, None),
        ("writer@a", "writer", Some("a"), None),
        ("reader@a", "reader", Some("a"), None),
        ("auditor@a", "auditor", Some("a"), None),
        ("admin@a", "admin", Some("a"), None),
        ("subject@a", "subject", Some("a"), Some("s1")),
    ] {
        let (key, _) = app.create_key(&[role], tenant, subject);
        who.push(Who {
            name,
            key: Some(key),
        });
    }
    who.push(Who {
        name: "none",
        key: None,
    });
    let admin = who[3].key.clone().expect("the admin key");
    let seeded = seed(&app, &admin);
    let seq = seeded["seq"].as_u64().expect("a seq");
    let record_id = seeded["record_id"]
        .as_str()
        .expect("a record id")
        .to_string();

    let event_body = event("m", Some("a"), "s1", "t").to_string();
    let key_body = json!({"roles": ["reader"], "tenant": "a"}).to_string();
    let payload = format!("/v1/quarantine/payloads/sha256:{}", "0".repeat(64));
    // (method, path, body, who may); `*` = every caller, keyless included.
    let routes: Vec<(&str, String, Option<&str>, &[&str])> = vec![
        (
            "POST",
            "/v1/events".into(),
            Some(event_body.as_str()),
            &["writer", "admin", "writer@a", "admin@a"],
        ),
        ("GET", format!("/v1/records/{seq}"), None, READERS),
        ("GET", "/v1/records?limit=5".into(), None, READERS),
        ("GET", "/v1/subjects/s1/state".into(), None, READERS),
        // A subject key may ask for any subject's state: it folds only its own records.
        ("GET", "/v1/subjects/s2/state".into(), None, READERS),
        ("GET", "/v1/quarantine?limit=5".into(), None, AUDITORS),
        ("GET", "/v1/quarantine?after=0".into(), None, AUDITORS),
        ("GET", payload, None, AUDITORS),
        (
            "GET",
            format!("/v1/proofs/inclusion?seq={seq}"),
            None,
            AUDITORS,
        ),
        (
            "GET",
            "/v1/proofs/consistency?from=1".into(),
            None,
            VERIFIERS,
        ),
        (
            "GET",
            format!("/v1/proofs/inclusion?record_id={record_id}"),
            None,
            VERIFIERS,
        ),
        ("GET", "/checkpoint".into(), None, VERIFIERS),
        ("GET", "/checkpoint/key".into(), None, VERIFIERS),
        ("GET", "/tile/0/000.p/1".into(), None, AUDITORS),
        (
            "GET",
            "/tile/entries/000.p/1".into(),
            None,
            UNSCOPED_AUDITORS,
        ),
        ("GET", "/metrics".into(), None, UNSCOPED_AUDITORS),
        ("GET", "/v1/keys".into(), None, ADMINS),
        ("POST", "/v1/keys".into(), Some(key_body.as_str()), ADMINS),
        (
            "DELETE",
            "/v1/keys/key_0000000000000000".into(),
            None,
            ADMINS,
        ),
        (
            "POST",
            "/v1/exports".into(),
            Some(r#"{"format":"jsonl","filters":{"type":"t"}}"#),
            EXPORTERS,
        ),
        ("GET", "/v1/exports/exp_none/status".into(), None, EXPORTERS),
        ("GET", "/v1/exports/exp_none".into(), None, EXPORTERS),
        (
            "GET",
            "/v1/exports/exp_none/manifest".into(),
            None,
            EXPORTERS,
        ),
        (
            "GET",
            "/v1/exports/exp_none/files/x".into(),
            None,
            EXPORTERS,
        ),
        ("POST", "/v1/exports/exp_none/approve".into(), None, ADMINS),
        (
            "POST",
            "/v1/holds".into(),
            Some(r#"{"tenant":"a","reason":"matter 1"}"#),
            ADMINS,
        ),
        ("GET", "/v1/holds".into(), None, AUDITORS),
        // No such hold: an admin is answered 404, everyone else refused first.
        (
            "POST",
            "/v1/holds/release".into(),
            Some(r#"{"hold_id":"hold_none","reason":"done"}"#),
            ADMINS,
        ),
        // Nobody by that name: an admin is answered 404, everyone else refused first.
        (
            "POST",
            "/v1/erasures".into(),
            Some(r#"{"data_subject":"nobody","reason":"test"}"#),
            ADMINS,
        ),
        // Retention crosses tenants: an admin of every tenant only.
        ("GET", "/v1/retention".into(), None, UNSCOPED_ADMINS),
        (
            "POST",
            "/v1/retention/apply".into(),
            Some(r#"{"dry_run":true}"#),
            UNSCOPED_ADMINS,
        ),
        ("GET", "/v1/conflicts".into(), None, AUDITORS),
        ("GET", "/v1/conflicts?status=open".into(), None, AUDITORS),
        // No such conflict: an auditor is answered 404, everyone else refused first.
        (
            "POST",
            "/v1/conflicts/cf-none/resolve".into(),
            Some(r#"{"resolution":"dismissed","reason":"not one"}"#),
            AUDITORS,
        ),
        // Checks read every tenant's records: an admin of every tenant only.
        ("POST", "/v1/checks".into(), Some("{}"), UNSCOPED_ADMINS),
        ("GET", "/healthz".into(), None, EVERYONE),
        ("GET", "/readyz".into(), None, EVERYONE),
        ("GET", "/openapi.json".into(), None, EVERYONE),
    ];
    let mut denials = 0;
    for (method, path, body, allowed) in &routes {
        for w in &who {
            let r = app.req(
                method,
                path,
                w.key.as_deref(),
                body.map(|b| ("application/json", b.as_bytes())),
            );
            let may = allowed.contains(&"*") || allowed.contains(&w.name);
            let ctx = format!("{} {method} {path} -> {} {}", w.name, r.status, r.text());
            if may {
                // Allowed: anything but an auth refusal (a missing tile or key is a 404).
                assert!(
                    ![401, 403].contains(&r.status) && r.status < 500,
                    "should be allowed: {ctx}"
                );
            } else if w.key.is_none() {
                assert_eq!(
                    (r.status, r.code()),
                    (401, "UNAUTHENTICATED".to_string()),
                    "{ctx}"
                );
                denials += 1;
            } else {
                assert_eq!(
                    (r.status, r.code()),
                    (403, "FORBIDDEN".to_string()),
                    "{ctx}"
                );
                denials += 1;
            }
        }
    }
    app.stop();
    let denied: Vec<_> = offline_records(dir.path())
        .into_iter()
        .filter(|r| r["type"] == "audit.access" && r["data"]["outcome"] == "denied")
        .collect();
    assert_eq!(denied.len(), denials, "every refusal is recorded once");
    assert!(
        denied
            .iter()
            .all(|r| r["data"]["status"] == 401 || r["data"]["status"] == 403)
    );
    assert_verifies(dir.path());
}

/// Every read an admin of every tenant is answered is recorded first, found or not; the only
/// answers left unrecorded name no record: the tree's own hashes (checkpoints, the verifier
/// key, consistency proofs, hash tiles), which a verifying client polls, and figures (the
/// dashboard, metrics, health).
#[test]
fn every_read_is_recorded_but_the_trees_own_hashes_and_figures() {
    let dir = tempdir();
    let app = InProcess::start(dir.path());
    let (admin, _) = app.create_key(&["admin"], None, None);
    let seq = seed(&app, &admin)["seq"].as_u64().expect("a seq");
    let recorded = [
        (format!("/v1/records/{seq}"), "records.get"),
        ("/v1/records?limit=5".into(), "records.query"),
        ("/v1/subjects/s1/state".into(), "subjects.state"),
        ("/v1/subjects/s1/timeline".into(), "subjects.state"),
        ("/v1/quarantine?limit=5".into(), "quarantine.query"),
        (
            format!("/v1/quarantine/payloads/sha256:{}", "0".repeat(64)),
            "quarantine.payload",
        ),
        (
            format!("/v1/proofs/inclusion?seq={seq}"),
            "proofs.inclusion",
        ),
        ("/tile/entries/000.p/1".into(), "tiles.entries"),
        ("/v1/keys".into(), "keys.list"),
        ("/v1/holds?all=true".into(), "holds.list"),
        ("/v1/retention".into(), "retention.status"),
        ("/v1/exports/exp_none/status".into(), "exports.read"),
        ("/v1/conflicts".into(), "conflicts.list"),
        ("/v1/reports/daily".into(), "reports.get"),
        ("/v1/integrity".into(), "integrity.get"),
    ];
    let unrecorded = [
        ("/checkpoint", "checkpoint.get"),
        ("/checkpoint/key", "checkpoint.get"),
        ("/v1/proofs/consistency?from=1", "proofs.consistency"),
        ("/tile/0/000.p/1", "tiles.hashes"),
        ("/v1/dashboard", "dashboard.get"),
        ("/metrics", "metrics.get"),
    ];
    for (path, _) in &recorded {
        let r = app.req("GET", path, Some(&admin), None);
        assert!(
            r.status < 500 && ![401, 403].contains(&r.status),
            "{path}: {}",
            r.status
        );
    }
    for (path, _) in &unrecorded {
        let r = app.req("GET", path, Some(&admin), None);
        assert!(
            r.status < 500 && ![401, 403].contains(&r.status),
            "{path}: {}",
            r.status
        );
    }
    app.stop();
    let actions: Vec<String> = offline_records(dir.path())
        .into_iter()
        .filter(|r| r["type"] == "audit.access")
        .map(|r| r["data"]["action"].as_str().unwrap_or_default().to_string())
        .collect();
    for (path, action) in &recorded {
        assert!(
            actions.iter().any(|a| a == action),
            "GET {path} left no {action} record: {actions:?}"
        );
    }
    for (path, action) in &unrecorded {
        assert!(
            !actions.iter().any(|a| a == action),
            "GET {path} was recorded as {action}"
        );
    }
}

/// A change allowed by the key's role may still be refused by what it asks for: another
/// tenant's hold, key or conflict, a malformed body. Its success is a record of its own (a
/// hold, a key, a resolution), so the refusal is recorded as an access record, as every
/// refused attempt is.
#[test]
fn a_change_refused_past_its_role_check_is_recorded() {
    let dir = tempdir();
    let app = InProcess::start(dir.path());
    let (admin, _) = app.create_key(&["admin"], None, None);
    let (tenant_admin, _) = app.create_key(&["admin"], Some("shop-za"), None);
    let (_, other_tenants_key) = app.create_key(&["reader"], Some("shop-b"), None);
    seed(&app, &admin);
    let (a, t) = (admin.as_str(), tenant_admin.as_str());
    let refused = [
        (
            t,
            "POST",
            "/v1/holds".to_string(),
            json!({"tenant": "shop-b", "reason": "x"}),
            "holds.change",
        ),
        (
            t,
            "POST",
            "/v1/holds/release".into(),
            json!({"hold_id": "hold_none", "reason": "x"}),
            "holds.change",
        ),
        (
            t,
            "DELETE",
            format!("/v1/keys/{other_tenants_key}"),
            Value::Null,
            "keys.revoke",
        ),
        (
            t,
            "POST",
            "/v1/keys".into(),
            json!({"roles": ["no-such-role"]}),
            "keys.create",
        ),
        (
            a,
            "POST",
            "/v1/conflicts/cf-none/resolve".into(),
            json!({"resolution": "dismissed", "reason": "x"}),
            "conflicts.resolve",
        ),
        (
            a,
            "POST",
            "/v1/checks".into(),
            json!({"rules": ["no.such_rule"]}),
            "checks.run",
        ),
        (
            a,
            "POST",
            "/v1/retention/apply".into(),
            json!({"now": "yesterday"}),
            "retention.apply",
        ),
        (
            a,
            "POST",
            "/v1/erasures".into(),
            json!({"data_subject": "", "reason": "x"}),
            "erasures.create",
        ),
    ];
    for (key, method, path, body, _) in &refused {
        let body = (!body.is_null()).then(|| body.to_string().into_bytes());
        let r = app.req(
            method,
            path,
            Some(key),
            body.as_deref().map(|b| ("application/json", b)),
        );
        assert!(
            (400..500).contains(&r.status) && r.status != 401,
            "{method} {path}: {} {}",
            r.status,
            r.text()
        );
    }
    app.stop();
    let actions: Vec<String> = offline_records(dir.path())
        .into_iter()
        .filter(|r| r["type"] == "audit.access" && r["data"]["outcome"] != "allowed")
        .map(|r| r["data"]["action"].as_str().unwrap_or_default().to_string())
        .collect();
    for (_, _, _, _, action) in &refused {
        let asked = refused.iter().filter(|r| r.4 == *action).count();
        let recorded = actions.iter().filter(|a| a == action).count();
        assert_eq!(
            recorded, asked,
            "{action}: each refusal is recorded once: {actions:?}"
        );
    }
}

/// A revoked key of a tenant is refused before it is anyone's principal; the attempt is
/// still its tenant's, and that tenant's auditors read it.
#[test]
fn a_refused_attempt_with_a_tenants_revoked_key_is_in_that_tenants_record() {
    let dir = tempdir();
    let app = InProcess::start(dir.path());
    let (admin, _) = app.create_key(&["admin"], None, None);
    let (auditor, _) = app.create_key(&["auditor"], Some("shop-za"), None);
    let (other_auditor, _) = app.create_key(&["auditor"], Some("shop-b"), None);
    let (reader, reader_id) = app.create_key(&["reader"], Some("shop-za"), None);
    let r = app.req(
        "DELETE",
        &format!("/v1/keys/{reader_id}"),
        Some(&admin),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let refused = app.get("/v1/records", Some(&reader));
    assert_eq!(refused.status, 401, "{}", refused.text());
    let seen_by = |key: &str| -> Vec<Value> {
        support::records(&app, key, "type=audit.access&limit=1000")
            .into_iter()
            .filter(|a| a["data"]["presented_key_id"] == reader_id.as_str())
            .collect()
    };
    let theirs = seen_by(&auditor);
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert_eq!(theirs[0]["tenant"], "shop-za");
    assert_eq!(theirs[0]["data"]["status"], 401);
    assert_eq!(seen_by(&other_auditor), Vec::<Value>::new());
}

/// A refusal names its reason: the key's roles, or its tenant scope over an action that
/// shows every tenant at once.
#[test]
fn a_refusal_says_whether_the_role_or_the_tenant_scope_refused() {
    let dir = tempdir();
    let app = InProcess::start(dir.path());
    app.create_key(&["admin"], None, None);
    let (reader, _) = app.create_key(&["reader"], Some("shop-za"), None);
    let (tenant_admin, _) = app.create_key(&["admin"], Some("shop-za"), None);
    let role = app.get("/checkpoint", Some(&reader));
    assert_eq!(role.status, 403);
    assert!(
        role.text().contains("roles do not allow"),
        "{}",
        role.text()
    );
    assert!(!role.text().contains("tenant-scoped"), "{}", role.text());
    let scope = app.get("/metrics", Some(&tenant_admin));
    assert_eq!(scope.status, 403);
    assert!(
        scope.text().contains("a tenant-scoped key may not"),
        "{}",
        scope.text()
    );
}
