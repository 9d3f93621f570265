//! End-to-end tests of `sealog serve` over 127.0.0.1: the v1 API, keys taking effect without a
//! restart, access records, metrics, OpenAPI, graceful stop, and client mode.

mod http_support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use http_support::*;
use serde_json::{Value, json};

fn b64_hash(s: &Value) -> [u8; 32] {
    B64.decode(s.as_str().unwrap()).unwrap().try_into().unwrap()
}

#[test]
fn append_read_query_and_prove_over_http() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let srv = Server::start(&data);
    assert!(
        srv.log_text().contains("OPEN MODE"),
        "open mode is announced loudly"
    );
    let ready = srv.get("/readyz", None);
    assert_eq!(
        (ready.status, ready.json()["auth"].clone()),
        (200, json!("open"))
    );
    assert_eq!(srv.get("/healthz", None).status, 200);

    // One object, an array, NDJSON; a duplicate; a refused event in the middle.
    let r = srv.post_json("/v1/events", None, &event("e0", Some("acme"), "s0", "t.a"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["results"][0]["status"], "appended");
    let arr = json!([event("e1", Some("acme"), "s1", "t.a"), {"id": "bad"}, event("e0", Some("acme"), "s0", "t.a")]);
    let r = srv.post_json("/v1/events", None, &arr).json();
    let statuses: Vec<&str> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["status"].as_str().unwrap())
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
    let r = srv.req(
        "POST",
        "/v1/events",
        None,
        Some(("application/x-ndjson", nd.as_bytes())),
    );
    assert_eq!(r.json()["results"].as_array().unwrap().len(), 38);
    let all_bad = srv.post_json("/v1/events", None, &json!([{"x": 1}]));
    assert_eq!(
        (all_bad.status, all_bad.code()),
        (422, "NO_VALID_EVENTS".into())
    );
    assert_eq!(all_bad.json()["results"][0]["status"], "rejected");

    // Get by seq and by record_id.
    let rec = srv.get("/v1/records/1", None).json();
    assert_eq!(rec["id"], "e1");
    let by_id = srv
        .get(
            &format!("/v1/records/{}", rec["record_id"].as_str().unwrap()),
            None,
        )
        .json();
    assert_eq!(by_id, rec);
    assert_eq!(srv.get("/v1/records/999999", None).status, 404);
    assert_eq!(srv.get("/v1/records/nope", None).code(), "BAD_RECORD_ID");

    // Paging with cursors returns every match exactly once, in seq order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/records?type=t.b&limit=7&cursor={c}"),
            None => "/v1/records?type=t.b&limit=7".to_string(),
        };
        let page = srv.get(&path, None).json();
        for r in page["records"].as_array().unwrap() {
            seen.push(r["seq"].as_u64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 38);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    let c = cursor_of(&srv, "/v1/records?type=t.b&limit=7");
    let other = srv.get(&format!("/v1/records?type=t.a&limit=7&cursor={c}"), None);
    assert_eq!(
        (other.status, other.code()),
        (400, "BAD_CURSOR".into()),
        "a cursor is bound to its query"
    );
    let sub = srv
        .get("/v1/records?subject=s1&axis.type=t.b&limit=100", None)
        .json();
    assert!(
        sub["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["subject"] == "s1" && r["type"] == "t.b")
    );
    assert_eq!(sub["records"].as_array().unwrap().len(), 12);
    let as_of = srv.get("/v1/records?as_of=2&limit=100", None).json();
    assert_eq!(as_of["records"].as_array().unwrap().len(), 2);

    // Proofs verify against the served checkpoint, independently of the server's code path.
    let cp = srv.get("/checkpoint", None);
    assert_eq!(cp.status, 200);
    let size: u64 = cp.text().lines().nth(1).unwrap().parse().unwrap();
    let p = srv.get("/v1/proofs/inclusion?seq=5", None).json();
    assert_eq!(p["tree_size"].as_u64(), Some(size));
    let record = srv.get("/v1/records/5", None).body;
    let hashes: Vec<[u8; 32]> = p["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(b64_hash)
        .collect();
    sealog_merkle::verify_inclusion(
        &sealog_merkle::leaf_hash(&record),
        5,
        size,
        &b64_hash(&p["root"]),
        &hashes,
    )
    .unwrap();
    assert_eq!(
        cp.text().lines().nth(2).unwrap(),
        p["root"].as_str().unwrap()
    );
    let c = srv
        .get(&format!("/v1/proofs/consistency?from=3&to={size}"), None)
        .json();
    let hashes: Vec<[u8; 32]> = c["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(b64_hash)
        .collect();
    sealog_merkle::verify_consistency(
        3,
        size,
        &b64_hash(&c["from_root"]),
        &b64_hash(&c["to_root"]),
        &hashes,
    )
    .unwrap();
    assert_eq!(
        srv.get("/v1/proofs/inclusion?seq=5&size=3", None).status,
        422
    );
    // Tiles follow the latest checkpoint, which the server may sign anew at any moment.
    let (tile, width) = (0..10)
        .find_map(|_| {
            let size: u64 = srv
                .get("/checkpoint", None)
                .text()
                .lines()
                .nth(1)
                .unwrap()
                .parse()
                .unwrap();
            let width = size.min(256) as u16;
            let t = srv.get(
                &format!("/{}", sealog_merkle::tiles::tile_path(0, 0, width)),
                None,
            );
            (t.status == 200).then_some((t, width))
        })
        .expect("the partial tile of the latest checkpoint");
    assert_eq!(tile.body.len(), 32 * usize::from(width));
    assert_eq!(
        &tile.body[5 * 32..6 * 32],
        &sealog_merkle::leaf_hash(&record)
    );
    assert_eq!(srv.get("/tile/0/999", None).status, 404);

    // Reads were recorded as audit.access records.
    let access = srv
        .get("/v1/records?type=audit.access&limit=1000", None)
        .json();
    let actions: HashSet<&str> = access["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["data"]["action"].as_str().unwrap())
        .collect();
    for a in ["records.get", "records.query", "proofs.inclusion"] {
        assert!(actions.contains(a), "{a} not recorded: {actions:?}");
    }
    let forged = srv.post_json("/v1/events", None, &event("f", None, "x", "audit.access"));
    assert_eq!(forged.status, 403, "only the server writes audit.* records");
    assert_eq!(
        forged.json()["results"][0]["error"]["code"],
        "RESERVED_TYPE"
    );

    // Metrics and the API description.
    let m = srv.get("/metrics", None).text();
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
    let served = srv.get("/openapi.json", None).text();
    let checked_in = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../sealog-server/openapi.json"
    ))
    .unwrap();
    assert_eq!(served, checked_in);
    srv.stop();
    assert_verifies(&data);
}

fn cursor_of(srv: &Server, path: &str) -> String {
    srv.get(path, None).json()["next_cursor"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn keys_take_effect_without_restart_and_are_recorded() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let srv = Server::start(&data);
    assert_eq!(
        srv.get("/v1/records?limit=1", None).status,
        200,
        "open mode"
    );
    let (admin, admin_id) = create_key(&data, &["admin"], None, None);
    let r = srv.get("/v1/records?limit=1", None);
    assert_eq!((r.status, r.code()), (401, "UNAUTHENTICATED".into()));
    assert!(r.header("www-authenticate").is_some());
    assert_eq!(srv.get("/v1/records?limit=1", Some(&admin)).status, 200);
    assert_eq!(srv.get("/readyz", None).json()["auth"], "keys");
    assert_eq!(
        srv.get("/v1/records?limit=1", Some("slk_not-a-key")).status,
        401
    );

    // Keys made over HTTP work at once; a revoked key stops at once.
    let made = srv.post_json(
        "/v1/keys",
        Some(&admin),
        &json!({"roles": ["writer"], "tenant": "t1"}),
    );
    assert_eq!(made.status, 201, "{}", made.text());
    let writer = made.json()["key"].as_str().unwrap().to_string();
    let writer_id = made.json()["id"].as_str().unwrap().to_string();
    let ok = srv.post_json(
        "/v1/events",
        Some(&writer),
        &event("w1", Some("t1"), "s", "t"),
    );
    assert_eq!(ok.status, 200);
    let del = srv.req(
        "DELETE",
        &format!("/v1/keys/{writer_id}"),
        Some(&admin),
        None,
    );
    assert_eq!(del.status, 200);
    assert_eq!(
        srv.req(
            "DELETE",
            &format!("/v1/keys/{writer_id}"),
            Some(&admin),
            None
        )
        .status,
        409
    );
    assert_eq!(
        srv.post_json(
            "/v1/events",
            Some(&writer),
            &event("w2", Some("t1"), "s", "t")
        )
        .status,
        401
    );
    let out = sealog(&data, &["keys", "revoke", &admin_id]);
    assert!(out.status.success());
    assert_eq!(srv.get("/v1/records?limit=1", Some(&admin)).status, 401);
    let listed = sealog(&data, &["keys", "list"]);
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains(&writer[4..]),
        "secrets are never listed"
    );
    srv.stop();

    // Every key change is in the log; so is every refusal.
    let records = all_records(&data);
    let kinds: Vec<(String, String)> = records
        .iter()
        .filter(|r| r["type"].as_str().unwrap().starts_with("audit.key_"))
        .map(|r| {
            (
                r["type"].as_str().unwrap().to_string(),
                r["data"]["key_id"].as_str().unwrap().to_string(),
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
    let srv = Server::start(&data);
    srv.stop();
    assert_eq!(all_records(&data).len(), records.len());
    assert_verifies(&data);
}

#[test]
fn sigterm_drains_in_flight_appends_and_loses_nothing_acknowledged() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let srv = Server::start(&data);
    let addr = srv.addr;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (acked, stop) = (acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || i < 5 {
                    let body = event(&format!("w{w}-{i}"), Some("t"), "s", "t").to_string();
                    let hdr = [("Content-Type".to_string(), "application/json".to_string())];
                    let Some(r) = try_request(addr, &hdr, body.as_bytes()) else {
                        return;
                    };
                    if r.status == 200 {
                        let v = r.json()["results"][0].clone();
                        acked.lock().unwrap().push((
                            v["seq"].as_u64().unwrap(),
                            v["record_id"].as_str().unwrap().to_string(),
                        ));
                    } else {
                        assert_eq!(
                            r.status,
                            503,
                            "only a stopping server may refuse: {}",
                            r.text()
                        );
                        return;
                    }
                    i += 1;
                }
            })
        })
        .collect();
    while acked.lock().unwrap().len() < 200 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    srv.stop();
    for w in workers {
        w.join().unwrap();
    }
    let records = all_records(&data);
    for (seq, rid) in acked.lock().unwrap().iter() {
        let r = &records[*seq as usize];
        assert_eq!(
            r["record_id"].as_str().unwrap(),
            rid,
            "acknowledged record {seq} is on disk"
        );
    }
    assert_verifies(&data);
}

/// A request that tolerates the server going away (connection refused or closed).
fn try_request(
    addr: std::net::SocketAddr,
    headers: &[(String, String)],
    body: &[u8],
) -> Option<Resp> {
    let mut head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.write_all(&bytes).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    parse_response(&out)
}

#[test]
fn client_mode_prints_what_embedded_mode_prints() {
    let dir = tempdir();
    let (local, remote) = (dir.path().join("local"), dir.path().join("remote"));
    let input = dir.path().join("in.ndjson");
    let mut text: String = (0..20)
        .map(|i| {
            event(
                &format!("c{i}"),
                Some("acme"),
                &format!("s{}", i % 4),
                "t.c",
            )
            .to_string()
                + "\n"
        })
        .collect();
    text.push_str("{\"id\":\"broken\"}\n");
    std::fs::write(&input, &text).unwrap();
    // The server records its key as seq 0; give the embedded log one record too, so seqs match.
    let (key, _) = create_key(&remote, &["admin"], None, None);
    let filler = dir.path().join("filler.json");
    std::fs::write(&filler, event("filler", None, "x", "t").to_string()).unwrap();
    assert!(
        sealog(&local, &["append", filler.to_str().unwrap()])
            .status
            .success()
    );
    let embedded = sealog(&local, &["append", input.to_str().unwrap()]);
    let srv = Server::start(&remote);
    let url = srv.url();
    let client = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--url", &url]);
        std::process::Command::new(BIN)
            .args(&a)
            .env("SEALOG_KEY", &key)
            .output()
            .unwrap()
    };
    let over_http = client(&["append", input.to_str().unwrap()]);
    assert_eq!(over_http.status.code(), embedded.status.code());
    assert_eq!(
        String::from_utf8_lossy(&over_http.stdout),
        String::from_utf8_lossy(&embedded.stdout)
    );
    let got = client(&["get", "3"]);
    let missing = client(&["get", "99999"]);
    assert_eq!(missing.status.code(), Some(1));
    let q = client(&["query", "--subject", "s1", "--type", "t.c", "--limit", "3"]);
    assert!(
        String::from_utf8_lossy(&q.stderr).contains("--cursor"),
        "a next page is announced"
    );
    let unauth = std::process::Command::new(BIN)
        .args(["get", "3", "--url", &url])
        .env_remove("SEALOG_KEY")
        .output()
        .unwrap();
    assert_eq!(unauth.status.code(), Some(2));
    srv.stop();
    let offline_get = sealog(&remote, &["get", "3"]);
    assert_eq!(
        got.stdout, offline_get.stdout,
        "records are printed byte for byte"
    );
    let offline_q = sealog(
        &remote,
        &["query", "--subject", "s1", "--type", "t.c", "--limit", "3"],
    );
    assert_eq!(q.stdout, offline_q.stdout);
}

#[test]
fn https_with_rustls_when_a_certificate_is_given() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let srv = Server::start_with(
        &data,
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    // Plain HTTP to a TLS port gets no HTTP answer.
    assert!(
        raw(
            srv.addr,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .is_none()
    );
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let sock = std::net::TcpStream::connect(srv.addr).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    use std::io::{Read, Write};
    tls.write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    let resp = parse_response(&out).expect("an HTTPS answer");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["status"], "ready");
    srv.stop();
}

#[test]
fn one_key_cannot_hold_more_than_its_in_flight_slots() {
    use std::io::{Read, Write};
    let dir = tempdir();
    let data = dir.path().join("data");
    let (key, _) = create_key(&data, &["admin"], None, None);
    let (other, _) = create_key(&data, &["reader"], None, None);
    let srv = Server::start_with(&data, &["--key-inflight-max", "1", "--body-timeout-s", "2"]);
    // A request whose body never finishes holds the key's only slot.
    let mut stalled = std::net::TcpStream::connect(srv.addr).unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{"
    );
    stalled.write_all(head.as_bytes()).unwrap();
    let throttled = (0..200)
        .map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            srv.get("/v1/records?limit=1", Some(&key))
        })
        .find(|r| r.status == 429)
        .expect("a second request of the same key is throttled");
    assert_eq!(throttled.code(), "TOO_MANY_REQUESTS");
    assert_eq!(throttled.header("retry-after"), Some("1"));
    assert_eq!(
        srv.get("/v1/records?limit=1", Some(&other)).status,
        200,
        "other keys are not affected"
    );
    let mut out = Vec::new();
    let _ = stalled.read_to_end(&mut out);
    assert_eq!(parse_response(&out).unwrap().status, 408);
    assert_eq!(
        srv.get("/v1/records?limit=1", Some(&key)).status,
        200,
        "the slot is given back"
    );
    srv.stop();
}
