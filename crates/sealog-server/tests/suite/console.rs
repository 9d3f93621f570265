//! The console's server side: sessions (an API key exchanged for an HttpOnly cookie), CSRF on
//! every state-changing request made with the cookie, the page and its assets under a strict
//! policy, reports within a key's reach, the subject timeline, the integrity panel, the
//! dashboard, and a verification started by an admin and recorded.

use crate::support;

use sealog_testkit::events::{an_hour_ago, event};
use sealog_testkit::{Api, InProcess, Resp, tempdir, wait_for};
use serde_json::{Value, json};
use support::{offline_records, post_one};

fn sign_in(app: &InProcess, key: &str) -> Resp {
    app.send(
        "POST",
        "/v1/session",
        &[("Content-Type", "application/json")],
        Some(json!({"key": key}).to_string().as_bytes()),
    )
}

/// Signs in and returns the cookie header value and the CSRF token.
fn session(app: &InProcess, key: &str) -> (String, String) {
    let r = sign_in(app, key);
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = r.header("set-cookie").expect("a cookie").to_string();
    let pair = cookie.split(';').next().unwrap().to_string();
    (pair, r.json()["csrf_token"].as_str().unwrap().to_string())
}

fn with_cookie(
    app: &InProcess,
    method: &str,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
) -> Resp {
    let mut headers = vec![("Cookie", cookie)];
    if let Some(t) = csrf {
        headers.push(("X-CSRF-Token", t));
    }
    app.send(method, path, &headers, None)
}

fn decision(n: usize, tenant: &str, class: &str) -> Value {
    json!({"specversion": "1.0", "id": format!("d{n}-{tenant}"), "source": "c4",
           "type": "coordination.decision", "time": an_hour_ago(), "tenant": tenant,
           "actor": {"type": "service", "id": "coordination-manager"},
           "data": {"envelope_id": format!("env-{n}"), "envelope_class": class, "decision": "APPLIED",
                    "reason": "test", "decision_timestamp": an_hour_ago(), "tenant_id": tenant}})
}

#[test]
fn signing_in_turns_a_key_into_a_cookie_session_that_signing_out_ends() {
    let dir = tempdir();
    let app = InProcess::start_packs(dir.path());
    let (reader, reader_id) = app.create_key(&["reader"], Some("tenant-a"), None);
    // Not JSON: a cross-site form cannot sign anyone in.
    let r = app.send(
        "POST",
        "/v1/session",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(b"key=x"),
    );
    assert_eq!(r.status, 415, "{}", r.text());
    let r = sign_in(&app, "slk_not-a-key");
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());
    let r = sign_in(&app, &reader);
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = r.header("set-cookie").unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP: no Secure attribute"
    );
    assert_eq!(r.json()["principal"]["key_id"], reader_id.as_str());
    assert!(
        r.json()["axes"]
            .as_array()
            .unwrap()
            .contains(&json!("envelope_class"))
    );
    let (cookie, csrf) = session(&app, &reader);
    assert_eq!(
        with_cookie(&app, "GET", "/v1/records", &cookie, None).status,
        200
    );
    let me = with_cookie(&app, "GET", "/v1/session", &cookie, None).json();
    assert_eq!(
        me["csrf_token"],
        csrf.as_str(),
        "a reloaded page gets its token back"
    );
    // Signing out is state-changing: it needs the token too.
    let r = with_cookie(&app, "DELETE", "/v1/session", &cookie, None);
    assert_eq!((r.status, r.code()), (403, "CSRF".into()));
    let r = with_cookie(&app, "DELETE", "/v1/session", &cookie, Some(&csrf));
    assert_eq!(r.status, 204);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    let r = with_cookie(&app, "GET", "/v1/records", &cookie, None);
    assert_eq!(r.status, 401, "an ended session is no credential");
    // A revoked key's sessions end at once.
    let (cookie, _) = session(&app, &reader);
    sealog_server::keys::revoke(&app.dir, &reader_id, "tests", None).unwrap();
    assert_eq!(
        with_cookie(&app, "GET", "/v1/records", &cookie, None).status,
        401
    );
    app.stop();
    let records = offline_records(dir.path());
    let actions: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r["type"] == "audit.access")
        .map(|r| {
            (
                r["data"]["action"].as_str().unwrap(),
                r["data"]["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        actions.contains(&("session.start", "allowed")),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("session.start", "denied")),
        "{actions:?}"
    );
    assert!(actions.contains(&("session.end", "allowed")), "{actions:?}");
}

#[test]
fn state_changing_requests_with_the_cookie_need_the_sessions_csrf_token() {
    let dir = tempdir();
    let app = InProcess::start_packs(dir.path());
    let (admin, _) = app.create_key(&["admin"], None, None);
    let (cookie, csrf) = session(&app, &admin);
    for (method, path) in [
        ("POST", "/v1/verify"),
        ("POST", "/v1/checks"),
        ("POST", "/v1/conflicts/c/resolve"),
    ] {
        let r = with_cookie(&app, method, path, &cookie, None);
        assert_eq!(
            (r.status, r.code()),
            (403, "CSRF".into()),
            "{method} {path}"
        );
        let r = with_cookie(&app, method, path, &cookie, Some(&"0".repeat(64)));
        assert_eq!(
            (r.status, r.code()),
            (403, "CSRF".into()),
            "a wrong token: {method} {path}"
        );
    }
    // With the token the request goes through to the route's own rules.
    let r = with_cookie(&app, "POST", "/v1/verify", &cookie, Some(&csrf));
    assert_eq!(r.status, 202, "{}", r.text());
    // A bearer key carries no ambient credential: no token needed.
    let r = app.post_json("/v1/checks", Some(&admin), &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    wait_for(60, "the verification's record", || {
        let i = app.get("/v1/integrity", Some(&admin)).json();
        (!i["verifying"].as_bool().unwrap() && !i["verify_runs"].as_array().unwrap().is_empty())
            .then_some(())
    });
    app.stop();
    let denied = offline_records(dir.path())
        .into_iter()
        .filter(|r| r["type"] == "audit.access" && r["data"]["status"] == 403)
        .filter(|r| r["data"]["message"].as_str().unwrap_or("").contains("CSRF"))
        .count();
    assert_eq!(denied, 6, "every refusal is recorded");
}

#[test]
fn the_console_is_served_from_the_binary_under_a_strict_policy() {
    let dir = tempdir();
    let app = InProcess::start_packs(dir.path());
    app.create_key(&["reader"], None, None);
    let r = app.get("/", None);
    assert_eq!(r.status, 200, "the page itself needs no key");
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let csp = r.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    for (file, ty) in [
        ("app.js", "text/javascript"),
        ("verify.js", "text/javascript"),
        ("style.css", "text/css"),
    ] {
        let r = app.get(&format!("/console/{file}"), None);
        assert_eq!(r.status, 200, "{file}");
        assert!(r.header("content-type").unwrap().starts_with(ty), "{file}");
        let text = r.text();
        // The one absolute URL allowed is SVG's namespace name, which is never fetched.
        let svg = text.matches("http://www.w3.org/2000/svg").count();
        assert!(
            text.matches("http://").count() == svg && !text.contains("https://"),
            "{file} fetches nothing from elsewhere"
        );
    }
    assert_eq!(app.get("/console/../Cargo.toml", None).status, 404);
    assert_eq!(app.get("/console/nope.js", None).status, 404);
    app.stop();
}

#[test]
fn reports_are_an_auditors_counted_within_its_tenant_in_three_formats() {
    let dir = tempdir();
    let app = InProcess::start_packs(dir.path());
    let (auditor_a, _) = app.create_key(&["auditor"], Some("tenant-a"), None);
    let (auditor, _) = app.create_key(&["auditor"], None, None);
    let (reader, _) = app.create_key(&["reader"], None, None);
    let (subject, _) = app.create_key(&["subject"], None, Some("cust-1"));
    let (writer, _) = app.create_key(&["writer"], None, None);
    for n in 0..6 {
        let tenant = if n < 4 { "tenant-a" } else { "tenant-b" };
        let r = post_one(&app, Some(&writer), &decision(n, tenant, "SAFETY"));
        assert_eq!(r["status"], "appended", "{r}");
    }
    let safety = |key: &str| -> u64 {
        let r = app.get("/v1/reports/coordination", Some(key));
        assert_eq!(r.status, 200, "{}", r.text());
        let body = r.json();
        let section = body["sections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == "by_class")
            .unwrap()
            .clone();
        section["series"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "SAFETY")
            .map_or(0, |s| s["total"].as_u64().unwrap())
    };
    assert_eq!(safety(&auditor), 6);
    assert_eq!(
        safety(&auditor_a),
        4,
        "a tenant-scoped auditor counts its tenant only"
    );
    for key in [&reader, &subject] {
        assert_eq!(app.get("/v1/reports/daily", Some(key)).status, 403);
    }
    let csv = app.get("/v1/reports/coordination?format=csv", Some(&auditor));
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    assert!(
        csv.header("content-disposition")
            .unwrap()
            .contains("sealog-coordination-report.csv")
    );
    assert!(
        csv.text().starts_with("section,period_start,"),
        "{}",
        csv.text()
    );
    let md = app.get("/v1/reports/monthly?format=md", Some(&auditor));
    assert!(
        md.text().starts_with("# Monthly audit summary"),
        "{}",
        md.text()
    );
    for name in [
        "daily",
        "weekly",
        "monthly",
        "quarantine",
        "coordination",
        "popia",
    ] {
        assert_eq!(
            app.get(&format!("/v1/reports/{name}"), Some(&auditor))
                .status,
            200,
            "{name}"
        );
    }
    assert_eq!(app.get("/v1/reports/yearly", Some(&auditor)).status, 404);
    assert_eq!(
        app.get("/v1/reports/daily?format=pdf", Some(&auditor))
            .status,
        400
    );
    assert_eq!(
        app.get(
            "/v1/reports/daily?from=2026-02-01&to=2026-01-01",
            Some(&auditor)
        )
        .status,
        400
    );
    assert_eq!(
        app.get("/v1/reports/daily?from=yesterday", Some(&auditor))
            .status,
        400
    );
    assert_eq!(
        app.get("/v1/reports/daily?colour=red", Some(&auditor))
            .status,
        400
    );
    app.stop();
}

fn knowledge(id: &str, kind: &str, chunk: &str, data: Value) -> Value {
    let mut d = json!({"principal": {"type": "human", "id": "editor-3", "clearance": 3},
                       "resourceType": "CHUNK", "resourceId": chunk});
    for (k, v) in data.as_object().unwrap() {
        d[k] = v.clone();
    }
    json!({"specversion": "1.0", "id": id, "source": "knowledge-base", "type": kind,
           "time": "2026-03-01T08:00:00Z", "tenant": "kb", "actor": {"type": "human", "id": "editor-3"},
           "data": d})
}

/// A tenant-scoped auditor's report states the sizes of the logs within its tenant, not the
/// whole logs' (which would tell it how much every other tenant logs and has quarantined);
/// an auditor of every tenant is told the whole logs' sizes.
#[test]
fn a_tenant_auditors_report_states_the_log_sizes_of_its_tenant_only() {
    let dir = tempdir();
    let app = InProcess::start_packs(dir.path());
    let (auditor, _) = app.create_key(&["auditor"], None, None);
    let (auditor_a, _) = app.create_key(&["auditor"], Some("tenant-a"), None);
    let (writer, _) = app.create_key(&["writer"], None, None);
    let r = post_one(&app, Some(&writer), &decision(0, "tenant-a", "COST"));
    assert_eq!(r["status"], "appended", "{r}");
    for n in 1..4 {
        let r = post_one(&app, Some(&writer), &decision(n, "tenant-b", "COST"));
        assert_eq!(r["status"], "appended", "{r}");
        let unknown = event(
            &format!("q{n}"),
            Some("tenant-b"),
            "s",
            "nobody.declares_this",
        );
        let r = post_one(&app, Some(&writer), &unknown);
        assert_eq!(r["status"], "quarantined", "{r}");
    }
    let sizes = |key: &str| {
        let r = app.get("/v1/reports/quarantine", Some(key));
        assert_eq!(r.status, 200, "{}", r.text());
        let body = r.json();
        (body["log_size"].clone(), body["quarantine_size"].clone())
    };
    // What tenant-a's auditor reaches: its decision and its tenant's key and access records.
    let own = app.get("/v1/records?limit=1000", Some(&auditor_a)).json()["records"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        sizes(&auditor_a),
        (json!(own + 1), json!(0)),
        "the records it listed and the access record of that listing, no quarantine"
    );
    let (whole, quarantined) = sizes(&auditor);
    assert_eq!(quarantined, 3);
    assert!(whole.as_u64().unwrap() > own as u64 + 4, "{whole}");
    app.stop();
}

#[test]
fn the_timeline_gives_each_record_with_the_state_it_left() {
    let dir = tempdir();
    let app = InProcess::start_packs(dir.path());
    let (writer, _) = app.create_key(&["writer"], None, None);
    let (reader, _) = app.create_key(&["reader"], Some("kb"), None);
    let (other, _) = app.create_key(&["reader"], Some("elsewhere"), None);
    let created = knowledge(
        "k1",
        "knowledge.chunk_created",
        "chunk-7",
        json!({"operation": "CREATE", "chunkType": "policy", "after": "h-1", "authority": "approved"}),
    );
    let mut modified = knowledge(
        "k2",
        "knowledge.chunk_modified",
        "chunk-7",
        json!({"operation": "MODIFY", "before": "h-1", "after": "h-2", "changeSummary": "edited"}),
    );
    modified["time"] = json!("2026-03-02T08:00:00Z");
    modified["reason"] = json!("typo");
    let mut seqs = Vec::new();
    for e in [&created, &modified] {
        let r = post_one(&app, Some(&writer), e);
        assert_eq!(r["status"], "appended", "{r}");
        seqs.push(r["seq"].as_u64().unwrap());
    }
    let r = app.get("/v1/subjects/chunk-7/timeline", Some(&reader));
    assert_eq!(r.status, 200, "{}", r.text());
    let t = r.json();
    let steps = t["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["record"]["type"], "knowledge.chunk_created");
    assert_ne!(
        steps[0]["state"], steps[1]["state"],
        "the modification changed the state"
    );
    assert_eq!(
        steps[1]["state"], t["state"],
        "the last step leaves the rebuilt state"
    );
    // As of the first record, the timeline ends there.
    let r = app.get(
        &format!("/v1/subjects/chunk-7/timeline?as_of={}", seqs[0] + 1),
        Some(&reader),
    );
    assert_eq!(r.json()["steps"].as_array().unwrap().len(), 1);
    // Another tenant's key sees no record of it.
    let r = app.get("/v1/subjects/chunk-7/timeline", Some(&other));
    assert_eq!(r.json()["steps"].as_array().unwrap().len(), 0);
    assert_eq!(
        app.get("/v1/subjects/chunk-7/timeline?as_of=never", Some(&reader))
            .status,
        400
    );
    app.stop();
}

#[test]
fn the_integrity_panel_and_dashboard_are_for_keys_of_every_tenant() {
    let dir = tempdir();
    let app = InProcess::start_packs(dir.path());
    let (admin, _) = app.create_key(&["admin"], None, None);
    let (auditor, _) = app.create_key(&["auditor"], None, None);
    let (auditor_a, _) = app.create_key(&["auditor"], Some("tenant-a"), None);
    let (writer, _) = app.create_key(&["writer"], None, None);
    for n in 0..3 {
        post_one(&app, Some(&writer), &decision(n, "tenant-a", "COST"));
    }
    let i = app.get("/v1/integrity", Some(&auditor));
    assert_eq!(i.status, 200, "{}", i.text());
    let i = i.json();
    assert!(
        i["checkpoint"]["note"]
            .as_str()
            .unwrap()
            .contains('\u{2014}'),
        "a signed note"
    );
    assert_eq!(i["growth"].as_array().unwrap().len(), 31);
    assert!(i["verifier_key"].as_str().unwrap().contains('+'));
    for path in ["/v1/integrity", "/v1/dashboard"] {
        assert_eq!(app.get(path, Some(&auditor_a)).status, 403, "{path}");
        assert_eq!(app.get(path, Some(&writer)).status, 403, "{path}");
    }
    let d = app.get("/v1/dashboard", Some(&auditor));
    assert_eq!(d.status, 200, "{}", d.text());
    let d = d.json();
    assert_eq!(d["appended_per_minute"].as_array().unwrap().len(), 60);
    let appended: u64 = d["appended_per_minute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(appended >= 3, "{d}");
    assert!(d["append_latency"]["samples"].as_u64().unwrap() >= 3, "{d}");
    // Only an admin starts a verification; one at a time; its outcome is a record.
    assert_eq!(
        app.post_json("/v1/verify", Some(&auditor), &json!({}))
            .status,
        403
    );
    let r = app.post_json("/v1/verify", Some(&admin), &json!({}));
    assert_eq!(r.status, 202, "{}", r.text());
    let run = wait_for(60, "the verification's record", || {
        let i = app.get("/v1/integrity", Some(&auditor)).json();
        let runs = i["verify_runs"].as_array().unwrap().clone();
        (!i["verifying"].as_bool().unwrap() && !runs.is_empty()).then(|| runs[0].clone())
    });
    assert_eq!(run["outcome"], "intact", "{run}");
    assert!(run["records"].as_u64().unwrap() >= 3, "{run}");
    app.stop();
}
