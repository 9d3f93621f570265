//! The v1 API in process: appends in every shape, reads, paged queries, proofs that verify
//! against the served checkpoint, tiles, access records, metrics and the API description;
//! keys taking effect at once, with their history in the log; the checkpoint's verifier key;
//! and the server's own records as canonical records of the `audit` pack.

use crate::support;

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sealog_ledger::{Author, Prepared};
use sealog_merkle::note;
use sealog_testkit::Api;
use sealog_testkit::events::event;
use sealog_testkit::{InProcess, tempdir};
use serde_json::{Value, json};
use support::{access_of, all_pages, assert_verifies, event_of, offline_records, reopen};

fn b64_hash(s: &Value) -> [u8; 32] {
    B64.decode(s.as_str().expect("base64 text"))
        .expect("base64")
        .try_into()
        .expect("32 bytes")
}

fn hashes(v: &Value) -> Vec<[u8; 32]> {
    v.as_array().expect("hashes").iter().map(b64_hash).collect()
}

/// The tree size a checkpoint note states (its second line).
fn note_size(note: &str) -> u64 {
    note.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("a tree size")
}

#[test]
fn appends_reads_paged_queries_and_proofs_agree_with_the_served_checkpoint() {
    let dir = tempdir();
    let app = InProcess::start(dir.path());
    let ready = app.get("/readyz", None).json();
    assert_eq!(ready["auth"], "open");
    assert!(
        ready["warning"]
            .as_str()
            .is_some_and(|w| w.contains("OPEN MODE")),
        "open mode is announced: {ready}"
    );
    assert_eq!(app.get("/healthz", None).status, 200);

    // One object, an array, NDJSON; a duplicate; a refused event in the middle.
    let r = app.post_json("/v1/events", None, &event("e0", Some("acme"), "s0", "t.a"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["results"][0]["status"], "appended");
    let arr = json!([event("e1", Some("acme"), "s1", "t.a"), {"id": "bad"}, event("e0", Some("acme"), "s0", "t.a")]);
    let r = app.post_json("/v1/events", None, &arr).json();
    let statuses: Vec<&str> = r["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|x| x["status"].as_str().expect("a status"))
        .collect();
    assert_eq!(statuses, ["appended", "rejected", "duplicate"]);
    assert_eq!(r["results"][1]["error"]["code"], "INVALID_ENVELOPE");
    assert_eq!(r["results"][2]["seq"], 0);
    let nd: String = (2..40)
        .map(|i| {
            event(
                &format!("e{i}"),
                Some("acme"),
                &format!("s{}", i % 3),
                "t.b",
            )
            .to_string()
                + "\n"
        })
        .collect();
    let r = app.req(
        "POST",
        "/v1/events",
        None,
        Some(("application/x-ndjson", nd.as_bytes())),
    );
    assert_eq!(r.json()["results"].as_array().map(Vec::len), Some(38));
    let all_bad = app.post_json("/v1/events", None, &json!([{"x": 1}]));
    assert_eq!(
        (all_bad.status, all_bad.code()),
        (422, "NO_VALID_EVENTS".into())
    );
    assert_eq!(all_bad.json()["results"][0]["status"], "rejected");

    // Get by seq and by record_id.
    let rec = app.get("/v1/records/1", None).json();
    assert_eq!(rec["id"], "e1");
    let rid = rec["record_id"].as_str().expect("a record_id");
    assert_eq!(app.get(&format!("/v1/records/{rid}"), None).json(), rec);
    assert_eq!(app.get("/v1/records/999999", None).status, 404);
    assert_eq!(app.get("/v1/records/nope", None).code(), "BAD_RECORD_ID");

    // Paging with cursors returns every match exactly once, in seq order.
    let seen = support::seqs(&all_pages(&app, None, "/v1/records?type=t.b&limit=7"));
    assert_eq!(seen.len(), 38);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    let c = app.get("/v1/records?type=t.b&limit=7", None).json()["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let other = app.get(&format!("/v1/records?type=t.a&limit=7&cursor={c}"), None);
    assert_eq!(
        (other.status, other.code()),
        (400, "BAD_CURSOR".into()),
        "a cursor is bound to its query"
    );
    let sub = app
        .get("/v1/records?subject=s1&axis.type=t.b&limit=100", None)
        .json();
    let sub = sub["records"].as_array().expect("records");
    assert!(
        sub.iter()
            .all(|r| r["subject"] == "s1" && r["type"] == "t.b")
    );
    assert_eq!(sub.len(), 12);
    let as_of = app.get("/v1/records?as_of=2&limit=100", None).json();
    assert_eq!(as_of["records"].as_array().map(Vec::len), Some(2));

    // Proofs verify against the served checkpoint, independently of the server's code path.
    let cp = app.get("/checkpoint", None);
    assert_eq!(cp.status, 200);
    let size = note_size(&cp.text());
    let p = app.get("/v1/proofs/inclusion?seq=5", None).json();
    assert_eq!(p["tree_size"].as_u64(), Some(size));
    let record = app.get("/v1/records/5", None).body;
    sealog_merkle::verify_inclusion(
        &sealog_merkle::leaf_hash(&record),
        5,
        size,
        &b64_hash(&p["root"]),
        &hashes(&p["hashes"]),
    )
    .expect("the inclusion proof verifies");
    assert_eq!(
        cp.text().lines().nth(2),
        p["root"].as_str(),
        "the proof's root is the checkpoint's"
    );
    let c = app
        .get(&format!("/v1/proofs/consistency?from=3&to={size}"), None)
        .json();
    sealog_merkle::verify_consistency(
        3,
        size,
        &b64_hash(&c["from_root"]),
        &b64_hash(&c["to_root"]),
        &hashes(&c["hashes"]),
    )
    .expect("the consistency proof verifies");
    // Record 5 is not in the tree of size 3: that proof does not exist.
    assert_eq!(
        app.get("/v1/proofs/inclusion?seq=5&size=3", None).status,
        404
    );
    // The partial tile of the latest checkpoint holds the record's leaf hash.
    let width = note_size(&app.get("/checkpoint", None).text()).min(256) as u16;
    let tile = app.get(
        &format!("/{}", sealog_merkle::tiles::tile_path(0, 0, width)),
        None,
    );
    assert_eq!(tile.status, 200, "{}", tile.text());
    assert_eq!(tile.body.len(), 32 * usize::from(width));
    assert_eq!(
        &tile.body[5 * 32..6 * 32],
        &sealog_merkle::leaf_hash(&record)
    );
    assert_eq!(app.get("/tile/0/999", None).status, 404);

    // Reads were recorded as audit.access records.
    let access = all_pages(&app, None, "/v1/records?type=audit.access&limit=1000");
    let actions: HashSet<&str> = access
        .iter()
        .map(|r| r["data"]["action"].as_str().expect("an action"))
        .collect();
    for a in ["records.get", "records.query", "proofs.inclusion"] {
        assert!(actions.contains(a), "{a} not recorded: {actions:?}");
    }
    let forged = app.post_json("/v1/events", None, &event("f", None, "x", "audit.access"));
    assert_eq!(forged.status, 403, "only the server writes audit.* records");
    assert_eq!(
        forged.json()["results"][0]["error"]["code"],
        "RESERVED_TYPE"
    );

    // Metrics and the API description.
    let m = app.get("/metrics", None).text();
    for series in [
        "sealog_ingest_events_total",
        "sealog_append_seconds_bucket",
        "sealog_query_seconds_bucket",
        "sealog_tree_size",
        "sealog_http_requests_total",
        "sealog_append_batch_events_bucket",
        "sealog_checkpoint_age_seconds",
    ] {
        assert!(m.contains(series), "{series} missing from /metrics");
    }
    let served = app.get("/openapi.json", None).text();
    let checked_in = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .expect("the checked-in description");
    assert!(
        served == checked_in,
        "/openapi.json serves the checked-in description"
    );
    app.stop();
    assert_verifies(dir.path());
}

#[test]
fn keys_take_effect_at_once_and_every_change_and_refusal_is_recorded() {
    let dir = tempdir();
    let app = InProcess::start(dir.path());
    assert_eq!(
        app.get("/v1/records?limit=1", None).status,
        200,
        "open mode"
    );
    let (admin, admin_id) = app.create_key(&["admin"], None, None);
    let r = app.get("/v1/records?limit=1", None);
    assert_eq!((r.status, r.code()), (401, "UNAUTHENTICATED".into()));
    assert!(r.header("www-authenticate").is_some());
    assert_eq!(app.get("/v1/records?limit=1", Some(&admin)).status, 200);
    assert_eq!(app.get("/readyz", None).json()["auth"], "keys");
    assert_eq!(
        app.get("/v1/records?limit=1", Some("slk_not-a-key")).status,
        401
    );

    // Keys made over HTTP work at once; a revoked key stops at once.
    let made = app.post_json(
        "/v1/keys",
        Some(&admin),
        &json!({"roles": ["writer"], "tenant": "t1"}),
    );
    assert_eq!(made.status, 201, "{}", made.text());
    let writer = made.json()["key"].as_str().expect("a secret").to_string();
    let writer_id = made.json()["id"].as_str().expect("an id").to_string();
    let ok = app.post_json(
        "/v1/events",
        Some(&writer),
        &event("w1", Some("t1"), "s", "t"),
    );
    assert_eq!(ok.status, 200);
    let listed = app.get("/v1/keys", Some(&admin));
    assert_eq!(listed.status, 200);
    assert!(listed.text().contains(&writer_id));
    let key_file =
        std::fs::read_to_string(sealog_server::keys::file_path(dir.path())).expect("the key file");
    for secret in [&admin, &writer] {
        assert!(
            !listed.text().contains(&secret[4..]) && !key_file.contains(&secret[4..]),
            "secrets are neither listed nor stored"
        );
    }
    let revoke = format!("/v1/keys/{writer_id}");
    assert_eq!(app.req("DELETE", &revoke, Some(&admin), None).status, 200);
    assert_eq!(app.req("DELETE", &revoke, Some(&admin), None).status, 409);
    assert_eq!(
        app.post_json(
            "/v1/events",
            Some(&writer),
            &event("w2", Some("t1"), "s", "t")
        )
        .status,
        401
    );
    // Revoked in the key file, as `sealog keys revoke` does beside a running server.
    sealog_server::keys::revoke(dir.path(), &admin_id, "tests", None).expect("revoke");
    assert_eq!(app.get("/v1/records?limit=1", Some(&admin)).status, 401);
    app.stop();

    // Every key change is in the log; so is every refusal.
    let records = offline_records(dir.path());
    let kinds: Vec<(String, String)> = records
        .iter()
        .filter(|r| {
            r["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("audit.key_"))
        })
        .map(|r| {
            (
                r["type"].as_str().expect("a type").to_string(),
                r["data"]["key_id"].as_str().expect("a key id").to_string(),
            )
        })
        .collect();
    for want in [
        ("audit.key_created", &admin_id),
        ("audit.key_created", &writer_id),
        ("audit.key_revoked", &writer_id),
        ("audit.key_revoked", &admin_id),
    ] {
        assert!(
            kinds.contains(&(want.0.to_string(), want.1.clone())),
            "{want:?} not in {kinds:?}"
        );
    }
    let denied = records
        .iter()
        .filter(|r| r["type"] == "audit.access" && r["data"]["outcome"] == "denied")
        .count();
    assert_eq!(denied, 4, "each 401 is recorded");
    // A restart records nothing twice.
    InProcess::start(dir.path()).stop();
    assert_eq!(offline_records(dir.path()).len(), records.len());
    assert_verifies(dir.path());
}

#[test]
fn checkpoint_key_verifies_the_served_checkpoint_and_is_guarded_like_it() {
    let dir = tempdir();
    let app = InProcess::start(dir.path());
    let (auditor, _) = app.create_key(&["auditor"], Some("acme"), None);
    let (writer, _) = app.create_key(&["writer"], None, None);
    let (reader, _) = app.create_key(&["reader"], None, None);
    let (subject, _) = app.create_key(&["subject"], Some("acme"), Some("s1"));
    let r = app.post_json(
        "/v1/events",
        Some(&writer),
        &event("e1", Some("acme"), "s1", "t"),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    let key = app.get("/checkpoint/key", Some(&auditor));
    assert_eq!(key.status, 200, "{}", key.text());
    assert!(
        key.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{:?}",
        key.headers
    );
    let verifier = note::Verifier::parse(key.text().trim()).expect("a C2SP verifier key");
    let cp = app.get("/checkpoint", Some(&auditor)).text();
    let opened = note::open(&cp, &[&verifier]).expect("the checkpoint verifies");
    assert_eq!(opened.verified_by, [verifier.name()]);
    assert!(cp.starts_with(&opened.text));
    assert!(
        note_size(&opened.text) >= 1,
        "the signed text is the checkpoint"
    );
    // A key of the same name that is not the log's does not verify it.
    let stranger = note::Signer::from_seed(verifier.name(), [7; 32])
        .expect("a signer")
        .verifier();
    assert!(note::open(&cp, &[&stranger]).is_err());

    // Refused exactly where the checkpoint is; a writer reads both, to verify what it wrote.
    assert_eq!(app.get("/checkpoint", Some(&writer)).status, 200);
    assert_eq!(app.get("/checkpoint/key", Some(&writer)).status, 200);
    for who in [Some(reader.as_str()), Some(&subject), None] {
        let a = app.get("/checkpoint", who);
        let b = app.get("/checkpoint/key", who);
        assert!([401, 403].contains(&a.status), "{}", a.text());
        assert_eq!((b.status, b.code()), (a.status, a.code()));
    }
    app.stop();
    assert_eq!(
        reopen(dir.path()).verifier_key().trim(),
        key.text().trim(),
        "the served key is the log's own"
    );
}

#[test]
fn own_access_and_key_records_are_canonical_records_of_the_audit_pack() {
    let dir = tempdir();
    let app = InProcess::start(dir.path());
    let (admin, _) = app.create_key(&["admin"], None, None);
    let (auditor, auditor_id) = app.create_key(&["auditor"], Some("acme"), None);
    let (writer, writer_id) = app.create_key(&["writer"], Some("acme"), None);

    let allowed = app.get("/v1/records?type=t&limit=1", Some(&auditor));
    let refused = app.get("/metrics", Some(&auditor));
    let unknown = app.get("/v1/records?limit=1", Some("slk_nope"));
    let missing = app.get("/v1/records/999999", Some(&admin));
    assert_eq!(
        [
            allowed.status,
            refused.status,
            unknown.status,
            missing.status
        ],
        [200, 403, 401, 404]
    );

    let access = all_pages(&app, Some(&admin), "/v1/records?type=audit.access&limit=3");
    for r in &access {
        assert_eq!(r["type"], "audit.access");
        assert_eq!(r["source"], "sealog-server");
        assert_eq!(
            r["id"],
            format!("access:{}", r["data"]["request_id"].as_str().expect("id"))
        );
    }
    let a = access_of(&access, &allowed);
    assert_eq!(a["tenant"], "acme", "recorded in the caller's tenant");
    assert_eq!(a["actor"], json!({"type": "service", "id": auditor_id}));
    assert_eq!(
        a["data"]["principal"],
        json!({"key_id": auditor_id, "roles": ["auditor"], "tenant": "acme", "data_subject": null})
    );
    assert_eq!(a["data"]["action"], "records.query");
    assert_eq!(
        a["data"]["resource"],
        json!({"filter": {"type": "t", "limit": "1"}})
    );
    assert_eq!(
        (
            a["data"]["outcome"].clone(),
            a["data"]["status"].clone(),
            a["data"]["count"].clone()
        ),
        (json!("allowed"), json!(200), json!(0))
    );
    let d = access_of(&access, &refused);
    assert_eq!(
        (
            d["data"]["action"].clone(),
            d["data"]["outcome"].clone(),
            d["data"]["status"].clone()
        ),
        (json!("metrics.get"), json!("denied"), json!(403))
    );
    assert!(d["data"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    let u = access_of(&access, &unknown);
    assert_eq!(
        u["actor"],
        json!({"type": "service", "id": "unauthenticated"})
    );
    assert!(u["data"]["principal"].is_null());
    assert!(u.get("tenant").is_none(), "an unknown caller has no tenant");
    assert_eq!(
        (
            u["data"]["action"].clone(),
            u["data"]["outcome"].clone(),
            u["data"]["status"].clone()
        ),
        (json!("GET /v1/records"), json!("denied"), json!(401))
    );
    let m = access_of(&access, &missing);
    assert_eq!(
        (m["data"]["outcome"].clone(), m["data"]["status"].clone()),
        (json!("not_found"), json!(404))
    );
    // A tenant's auditor reads its own tenant's access records, and no other.
    let own = all_pages(
        &app,
        Some(&auditor),
        "/v1/records?type=audit.access&limit=100",
    );
    assert!(own.iter().all(|r| r["tenant"] == "acme"), "{own:?}");
    access_of(&own, &allowed);

    let created = all_pages(
        &app,
        Some(&admin),
        "/v1/records?type=audit.key_created&limit=100",
    );
    assert_eq!(created.len(), 3, "{created:?}");
    let w = created
        .iter()
        .find(|r| r["data"]["key_id"] == writer_id.as_str())
        .expect("the writer's key record");
    assert_eq!(w["subject"], writer_id);
    assert_eq!(w["tenant"], "acme");
    assert_eq!(w["data"]["roles"], json!(["writer"]));
    assert_eq!(w["actor"], json!({"type": "service", "id": "tests"}));
    let audit_text = format!("{access:?}{created:?}");
    for secret in [&admin, &auditor, &writer] {
        assert!(!audit_text.contains(&secret[4..]), "no secret is recorded");
    }
    app.stop();

    // Read back offline: each is exactly what the audit pack makes of its event, and a
    // producer could not have written it.
    let ledger = reopen(dir.path());
    for r in access.iter().chain(&created) {
        let event = event_of(r);
        let kind = r["type"].as_str().expect("a type");
        assert_eq!(ledger.packs().pack_of(kind), Some("audit"));
        match ledger.prepare_value(&event, &Author::Sealog) {
            Prepared::Event(e) => {
                assert_eq!(r["record_id"], e.event.record_id.to_string(), "{r}")
            }
            other => panic!("{r} does not pass the audit pack: {other:?}"),
        }
        match ledger.prepare_value(&event, &Author::ANYONE) {
            Prepared::Rejected(rej) => assert_eq!(rej.code, "RESERVED_TYPE"),
            other => panic!("a producer could write {r}: {other:?}"),
        }
    }
}

/// A request's W3C `traceparent` is carried into its access record, where the trace finds
/// it; one that is not valid is ignored (the request is served, the record names no trace).
#[test]
fn a_requests_trace_context_is_in_its_access_record_and_finds_it() {
    let dir = tempdir();
    let app = InProcess::start(dir.path());
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traced = app.send(
        "GET",
        "/v1/records?limit=1",
        &[("traceparent", &format!("00-{trace_id}-00f067aa0ba902b7-01"))],
        None,
    );
    assert_eq!(traced.status, 200, "{}", traced.text());
    let request_id = traced
        .header("x-request-id")
        .expect("a request id")
        .to_string();
    for bad in [
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "nonsense",
    ] {
        let r = app.send("GET", "/v1/records?limit=1", &[("traceparent", bad)], None);
        assert_eq!(r.status, 200, "{bad}: {}", r.text());
    }
    let found = all_pages(
        &app,
        None,
        &format!("/v1/records?type=audit.access&axis.access_trace={trace_id}&limit=100"),
    );
    assert_eq!(found.len(), 1, "{found:?}");
    let data = &found[0]["data"];
    assert_eq!(data["request_id"], request_id.as_str());
    assert_eq!(
        data["trace"],
        json!({"trace_id": trace_id, "parent_id": "00f067aa0ba902b7", "flags": "01"})
    );
    let traced_records = all_pages(&app, None, "/v1/records?type=audit.access&limit=1000")
        .into_iter()
        .filter(|r| r["data"].get("trace").is_some())
        .count();
    assert_eq!(traced_records, 1, "invalid trace contexts are not recorded");
}

/// CloudEvents binary mode over HTTP: attributes in `ce-*` headers (percent-decoded), the
/// body of any media type is the data; the same event structured is the same record. Bad
/// headers are refused with a reason, and nothing is stored for them.
#[test]
fn binary_mode_is_the_structured_event_and_bad_headers_are_refused() {
    let dir = tempdir();
    let app = InProcess::start_with(
        dir.path(),
        sealog_ledger::Undeclared::Accept,
        Default::default(),
    );
    let attrs = [
        ("ce-specversion", "1.0"),
        ("ce-id", "bin-1"),
        ("ce-source", "test"),
        ("ce-type", "t.binary"),
        ("ce-time", "2026-01-03T12:34:56.123Z"),
        ("ce-subject", "caf%C3%A9"),
    ];
    let send = |extra: &[(&str, &str)], body: &[u8]| {
        let mut h: Vec<(&str, &str)> = attrs.to_vec();
        h.extend_from_slice(extra);
        app.send("POST", "/v1/events", &h, Some(body))
    };
    let raw: Vec<u8> = (0u8..=255).collect();
    let first = send(&[("content-type", "application/octet-stream")], &raw);
    assert_eq!(first.status, 200, "{}", first.text());
    let first = first.json()["results"][0].clone();
    assert_eq!(first["status"], "appended", "{first}");
    let structured = json!({"specversion": "1.0", "id": "bin-1", "source": "test",
        "type": "t.binary", "time": "2026-01-03T12:34:56.123Z", "subject": "café",
        "datacontenttype": "application/octet-stream", "data_base64": B64.encode(&raw)});
    let again = app.req(
        "POST",
        "/v1/events",
        None,
        Some((
            "application/cloudevents+json",
            structured.to_string().as_bytes(),
        )),
    );
    let again = again.json()["results"][0].clone();
    assert_eq!(again["status"], "duplicate", "{again}");
    assert_eq!(again["record_id"], first["record_id"]);
    let record = app
        .get(&format!("/v1/records/{}", first["seq"]), None)
        .json();
    assert_eq!(record["subject"], "café", "{record}");
    assert_eq!(record["data_base64"], B64.encode(&raw));

    for (extra, body, says) in [
        (
            &[
                ("ce-datacontenttype", "text/plain"),
                ("content-type", "text/plain"),
            ][..],
            &b"x"[..],
            "Content-Type header says it",
        ),
        (
            &[("ce-reason", "%zz"), ("content-type", "application/json")][..],
            &b"{}"[..],
            "percent-encoded",
        ),
        (
            &[("content-type", "application/json")][..],
            &b"{\"a\":1} trailing"[..],
            "one JSON value",
        ),
        (
            &[("content-type", "application/json")][..],
            &b"[1]"[..],
            "object",
        ),
    ] {
        let r = send(extra, body);
        assert!(
            r.status == 400 || r.status == 422,
            "{extra:?}: {} {}",
            r.status,
            r.text()
        );
        assert!(r.text().contains(says), "{extra:?}: {}", r.text());
    }
    // Nothing was appended for them (the refusals' own access records aside).
    let producers = all_pages(&app, None, "/v1/records?type=t.binary&limit=100");
    assert_eq!(producers.len(), 1);
}
