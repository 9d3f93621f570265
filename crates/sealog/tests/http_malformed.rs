//! A corpus of malformed and adversarial requests against the real server: bad JSON, wrong
//! content types, huge bodies, deep nesting, invalid UTF-8, bad parameters and cursors,
//! header abuse, slow partial requests. Each gets a 4xx (or, for bytes that are not HTTP
//! at all, a closed connection) and never a 5xx; the server keeps serving; nothing bad is
//! stored; the log verifies afterwards.

mod http_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use http_support::*;

/// The server's body limit in this test, small so that oversized bodies are cheap to send.
const BODY_MAX: usize = 256 << 10;

struct Case {
    name: String,
    bytes: Vec<u8>,
    /// A closed connection without an answer is acceptable (not HTTP at all, slow headers).
    may_close: bool,
}

fn http(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut h = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    for (k, v) in headers {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut b = h.into_bytes();
    b.extend_from_slice(body);
    b
}

fn corpus(key: &str) -> Vec<Case> {
    let auth = format!("Bearer {key}");
    let mut cases = Vec::new();
    let mut add = |name: String, bytes: Vec<u8>, may_close: bool| {
        cases.push(Case {
            name,
            bytes,
            may_close,
        })
    };
    let post = |ct: &str, body: &[u8]| {
        http(
            "POST",
            "/v1/events",
            &[("Authorization", &auth), ("Content-Type", ct)],
            body,
        )
    };
    let get = |path: &str| http("GET", path, &[("Authorization", &auth)], b"");

    // Bodies that are not events, sent as each accepted media type.
    let deep_arr = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let deep_obj = format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200));
    let deep_data = format!(
        "{{\"id\":\"d\",\"source\":\"s\",\"type\":\"t\",\"time\":\"2026-01-03T00:00:00Z\",\"data\":{}1{}}}",
        "{\"a\":".repeat(70),
        "}".repeat(70)
    );
    let bad_bodies: Vec<(&str, Vec<u8>)> = vec![
        ("empty", b"".to_vec()),
        ("spaces", b"   \n\t ".to_vec()),
        ("open brace", b"{".to_vec()),
        ("close brace", b"}".to_vec()),
        ("open bracket", b"[".to_vec()),
        ("empty array", b"[]".to_vec()),
        ("nested empty", b"[[]]".to_vec()),
        ("bad array", b"[{]".to_vec()),
        ("truncated array", b"[{\"a\":1},".to_vec()),
        ("null", b"null".to_vec()),
        ("number", b"42".to_vec()),
        ("string", b"\"event\"".to_vec()),
        ("true", b"true".to_vec()),
        ("single quotes", b"{'id':'x'}".to_vec()),
        ("trailing comma", b"{\"id\":\"x\",}".to_vec()),
        ("missing value", b"{\"id\":}".to_vec()),
        ("bare word", b"nul".to_vec()),
        ("two objects", b"{\"a\":1}{\"b\":2}".to_vec()),
        ("huge exponent", b"{\"id\":1e999}".to_vec()),
        ("NaN", b"{\"id\":NaN}".to_vec()),
        ("BOM", b"\xef\xbb\xbf{\"id\":\"x\"}".to_vec()),
        ("control char", b"{\"id\":\"a\x01b\"}".to_vec()),
        ("lone surrogate", br#"{"id":"\ud800","source":"s","type":"t","time":"2026-01-03T00:00:00Z","data":{}}"#.to_vec()),
        ("duplicate keys", br#"{"id":"a","id":"b","source":"s","type":"t","time":"2026-01-03T00:00:00Z","data":{}}"#.to_vec()),
        ("unsafe integer", br#"{"id":"a","source":"s","type":"t","time":"2026-01-03T00:00:00Z","data":{"n":9007199254740993}}"#.to_vec()),
        ("server field", br#"{"id":"a","source":"s","type":"t","time":"2026-01-03T00:00:00Z","data":{},"seq":1}"#.to_vec()),
        ("bad time", br#"{"id":"a","source":"s","type":"t","time":"yesterday","data":{}}"#.to_vec()),
        ("data not object", br#"{"id":"a","source":"s","type":"t","time":"2026-01-03T00:00:00Z","data":[]}"#.to_vec()),
        ("bad actor", br#"{"id":"a","source":"s","type":"t","time":"2026-01-03T00:00:00Z","data":{},"actor":{"type":"robot"}}"#.to_vec()),
        ("bad supersedes", br#"{"id":"a","source":"s","type":"t","time":"2026-01-03T00:00:00Z","data":{},"supersedes":"x"}"#.to_vec()),
        ("empty tenant", br#"{"id":"a","source":"s","type":"t","time":"2026-01-03T00:00:00Z","data":{},"tenant":""}"#.to_vec()),
        ("wrong specversion", br#"{"specversion":"0.3","id":"a","source":"s","type":"t","time":"2026-01-03T00:00:00Z","data":{}}"#.to_vec()),
        ("reserved type", br#"{"id":"a","source":"s","type":"audit.access","time":"2026-01-03T00:00:00Z","data":{}}"#.to_vec()),
        ("array of numbers", b"[1,2,3]".to_vec()),
        ("ndjson of junk", b"{\"a\":1}\nnot json\n[1]\n".to_vec()),
        ("deep arrays", deep_arr.into_bytes()),
        ("deep objects", deep_obj.into_bytes()),
        ("deep data", deep_data.into_bytes()),
        ("invalid utf8 in string", b"{\"id\":\"\xff\xfe\"}".to_vec()),
        ("overlong utf8", b"{\"id\":\"\xc0\xaf\"}".to_vec()),
        ("truncated utf8", b"{\"id\":\"\xc3\"}".to_vec()),
        ("invalid utf8 in array", b"[{\"id\":\"\xed\xa0\x80\"}]".to_vec()),
        ("invalid utf8 ndjson", b"{\"a\":\"\xff\"}\n{\"b\":\"\xfe\"}\n".to_vec()),
        ("event over 1 MiB in array", format!("[{{\"id\":\"{}\"}}]", "x".repeat(BODY_MAX - 20)).into_bytes()),
    ];
    for ct in [
        "application/json",
        "application/x-ndjson",
        "application/cloudevents-batch+json",
    ] {
        for (name, body) in &bad_bodies {
            add(format!("{ct}: {name}"), post(ct, body), false);
        }
    }

    // Media types.
    let ev = br#"{"id":"m","source":"s","type":"t","time":"2026-01-03T00:00:00Z","data":{}}"#;
    for ct in [
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin1",
        "application/json;charset=utf-16",
        "",
        "json",
        "application/",
        "*/*",
        "application/octet-stream",
        "image/png",
        "application/json, text/plain",
    ] {
        add(format!("content type {ct:?}"), post(ct, ev), false);
    }
    add(
        "no content type".into(),
        http("POST", "/v1/events", &[("Authorization", &auth)], ev),
        false,
    );
    add(
        "non-ascii content type".into(),
        {
            let mut b =
                b"POST /v1/events HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: "
                    .to_vec();
            b.extend_from_slice(auth.as_bytes());
            b.extend_from_slice(
                b"\r\nContent-Type: appl\xe9cation/json\r\nContent-Length: 2\r\n\r\n{}",
            );
            b
        },
        false,
    );

    // Parameters.
    for q in [
        "limit=0",
        "limit=-1",
        "limit=abc",
        "limit=10001",
        "limit=99999999999999999999",
        "limit=",
        "limit=1.5",
        "unknown=1",
        "subject=a&subject=b",
        "axis.nope=1",
        "axis.=1",
        "axis=1",
        "from=yesterday",
        "to=2026-13-01",
        "from=2026-01-03T25:00:00Z",
        "as_of=-1",
        "as_of=abc",
        "as_of=2026-02-30",
        "view=latest",
        "view=CURRENT",
        "view=",
        "cursor=garbage",
        "cursor=AAAA",
        "cursor=%ff",
        "subject=%zz",
        "subject=%",
        "subject=%e9",
        "cursor=",
        "after=x",
        "after=1&cursor=AQ",
        "limit=%00",
        "tenant=%ff%fe",
        "&&&=&",
        "=1",
        "ingested_from=nope",
        "type=a&type=b",
        "view=current&view=history",
    ] {
        add(
            format!("query {q}"),
            get(&format!("/v1/records?{q}")),
            false,
        );
    }
    for q in [
        "reason=NOPE",
        "reason=",
        "reason=incomplete_provenance",
        "reason=INCOMPLETE_PROVENANCE&reason=SCHEMA_VIOLATION",
        "from=yesterday",
        "to=2026-13-01",
        "limit=0",
        "cursor=garbage",
        "view=current",
        "as_of=3",
        "bogus=1",
        "id=%ff",
    ] {
        add(
            format!("quarantine {q}"),
            get(&format!("/v1/quarantine?{q}")),
            false,
        );
    }
    for q in [
        "as_of=abc",
        "as_of=-1",
        "scope=a&scope=b",
        "view=current",
        "x=1",
    ] {
        add(
            format!("state {q}"),
            get(&format!("/v1/subjects/s1/state?{q}")),
            false,
        );
    }
    for r in ["abc", "sha256:XYZ", "sha256:00", "blob:%2F%2Fx"] {
        add(
            format!("payload {r}"),
            get(&format!("/v1/quarantine/payloads/{r}")),
            false,
        );
    }
    let long_q = format!("/v1/records?subject={}", "a".repeat(20_000));
    add("query too long".into(), get(&long_q), false);
    for q in [
        "",
        "seq=abc",
        "seq=-1",
        "seq=99999999",
        "seq=0&size=0",
        "seq=0&size=99999999",
        "seq=1&seq=2",
        "seq=0&bogus=1",
    ] {
        add(
            format!("inclusion {q}"),
            get(&format!("/v1/proofs/inclusion?{q}")),
            false,
        );
    }
    for q in [
        "",
        "from=0",
        "from=5&to=1",
        "from=1&to=999999999",
        "from=x",
        "to=3",
    ] {
        add(
            format!("consistency {q}"),
            get(&format!("/v1/proofs/consistency?{q}")),
            false,
        );
    }

    // Cursors: well-formed base64 that this server never issued.
    for c in [
        "AQAAAAAAAAAAAAAAAAAAAAAA",
        "AgAAAAAAAAAAAAAAAAAAAAAA",
        "AQAAAAAAAAAFAQIDBAUGBwg",
        "_____________________w",
        "AQ",
        "AQAAAAAAAAAA",
        "AQAAAAAAAAAAAAAAAAAAAA%3D%3D",
        "%2B%2F%2B%2F",
    ] {
        add(
            format!("cursor {c}"),
            get(&format!("/v1/records?limit=1&cursor={c}")),
            false,
        );
    }

    // Paths and methods.
    for p in [
        "/v1/records/abc",
        "/v1/records/sha256:XYZ",
        "/v1/records/sha256:",
        "/v1/records/%ff",
        "/v1/records/-1",
        "/v1/records/99999999999999999999999",
        "/v1/records/1.0",
        "/v1/records/%20",
        "/tile/x",
        "/tile/0/abc",
        "/tile/99/000",
        "/tile/0/000.p/0",
        "/tile/0/000.p/256",
        "/tile/entries/000.p/0",
        "/tile/0/x000/001",
        "/tile/-1/000",
        "/v1/keys/%00",
        "/../../etc/passwd",
        "/v1//records",
        "/v2/records",
        "/v1/events/1",
        "/v1/records/1/extra",
        "/checkpoint/x",
        "/nothing",
        "/v1/proofs",
        "/metrics/x",
    ] {
        add(format!("path {p}"), get(p), false);
    }
    let long_path = format!("/v1/records/{}", "9".repeat(8000));
    add("very long path".into(), get(&long_path), false);
    for (m, p) in [
        ("PUT", "/v1/events"),
        ("DELETE", "/v1/events"),
        ("PATCH", "/v1/records"),
        ("POST", "/v1/records"),
        ("GET", "/v1/events"),
        ("OPTIONS", "/v1/events"),
        ("TRACE", "/v1/records"),
        ("POST", "/checkpoint"),
        ("DELETE", "/v1/records/0"),
        ("PUT", "/v1/keys"),
    ] {
        add(
            format!("method {m} {p}"),
            http(m, p, &[("Authorization", &auth)], b""),
            false,
        );
    }

    // Keys routes with bad bodies.
    for body in [
        "",
        "{",
        "[]",
        "{\"roles\":[]}",
        "{\"roles\":[\"root\"]}",
        "{\"roles\":[\"subject\"]}",
        "{\"roles\":[\"reader\"],\"extra\":1}",
        "{\"roles\":\"reader\"}",
        "{\"roles\":[\"reader\"],\"tenant\":\"\"}",
    ] {
        add(
            format!("keys body {body:?}"),
            http(
                "POST",
                "/v1/keys",
                &[
                    ("Authorization", &auth),
                    ("Content-Type", "application/json"),
                ],
                body.as_bytes(),
            ),
            false,
        );
    }
    add(
        "keys body wrong type".into(),
        http(
            "POST",
            "/v1/keys",
            &[("Authorization", &auth), ("Content-Type", "text/plain")],
            b"{}",
        ),
        false,
    );

    // Authentication.
    for a in [
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "bearer slk_nope",
        "Bearer slk_",
        "Token abc",
        &format!("Bearer {}", "k".repeat(10_000)),
        &format!("Bearer {key}x"),
        &format!("Bearer  {key}zz"),
    ] {
        add(
            format!("auth {:.30}", a),
            http("GET", "/v1/records?limit=1", &[("Authorization", a)], b""),
            false,
        );
    }
    add(
        "no auth".into(),
        http("GET", "/v1/records?limit=1", &[], b""),
        false,
    );
    add("non-utf8 auth".into(), b"GET /v1/records HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer \xff\xfe\r\n\r\n".to_vec(), false);

    // Header abuse and broken framing.
    let big_header = format!("X-Big: {}", "h".repeat(200_000));
    add(
        "huge header".into(),
        format!("GET /healthz HTTP/1.1\r\nHost: t\r\n{big_header}\r\nConnection: close\r\n\r\n")
            .into_bytes(),
        true,
    );
    let many: String = (0..300).map(|i| format!("X-H{i}: v\r\n")).collect();
    add(
        "300 headers".into(),
        format!("GET /healthz HTTP/1.1\r\nHost: t\r\n{many}Connection: close\r\n\r\n").into_bytes(),
        true,
    );
    add(
        "bad header name".into(),
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nBad Header: x\r\nConnection: close\r\n\r\n".to_vec(),
        true,
    );
    add(
        "header without colon".into(),
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nnocolon\r\nConnection: close\r\n\r\n".to_vec(),
        true,
    );
    add("non-numeric length".into(), format!("POST /v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: ten\r\nConnection: close\r\n\r\n{{}}").into_bytes(), true);
    add("two lengths".into(), format!("POST /v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{{}}").into_bytes(), true);
    add("length and chunked".into(), format!("POST /v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n").into_bytes(), true);
    add("bad chunk size".into(), format!("POST /v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n").into_bytes(), true);
    add("declared huge body".into(), format!("POST /v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\nConnection: close\r\n\r\n{{").into_bytes(), true);
    let big = vec![b' '; BODY_MAX + 1];
    add(
        "body one byte over".into(),
        post("application/json", &big),
        true,
    );
    let mut chunked = format!("POST /v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: {auth}\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").into_bytes();
    for _ in 0..40 {
        chunked.extend_from_slice(format!("{:x}\r\n{}\r\n", 10_000, "x".repeat(10_000)).as_bytes());
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    add("chunked body over the limit".into(), chunked, true);
    add("bad request line".into(), b"GARBAGE\r\n\r\n".to_vec(), true);
    add(
        "binary garbage".into(),
        (0..=255u8).cycle().take(4096).collect(),
        true,
    );
    add("http/0.9".into(), b"GET /healthz\r\n\r\n".to_vec(), true);
    add(
        "lowercase method".into(),
        b"get /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_vec(),
        true,
    );
    add(
        "absolute uri elsewhere".into(),
        b"GET http://example.invalid/v1/records HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            .to_vec(),
        true,
    );
    add(
        "nul in path".into(),
        b"GET /v1/records/\x00 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_vec(),
        true,
    );
    add(
        "space in path".into(),
        b"GET /v1/rec ords HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_vec(),
        true,
    );
    cases
}

#[test]
fn malformed_requests_get_4xx_and_the_server_keeps_serving() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let (key, _) = create_key(&data, &["admin"], None, None);
    let body_max = BODY_MAX.to_string();
    let srv = Server::start_with(
        &data,
        &[
            "--body-bytes-max",
            &body_max,
            "--body-timeout-s",
            "1",
            "--header-timeout-s",
            "1",
        ],
    );
    let checkpoint = srv.get("/checkpoint", Some(&key)).text();
    let before: u64 = checkpoint.lines().nth(1).unwrap().parse().unwrap();
    let cases = corpus(&key);
    assert!(cases.len() >= 200, "the corpus has {} cases", cases.len());
    let mut answered = 0;
    for case in &cases {
        match raw(srv.addr, &case.bytes) {
            Some(r) => {
                assert!(
                    (400..500).contains(&r.status),
                    "{}: got {} {}",
                    case.name,
                    r.status,
                    r.text()
                );
                if r.header("content-type")
                    .is_some_and(|c| c.starts_with("application/json"))
                {
                    assert!(
                        !r.code().is_empty(),
                        "{}: error body without a code: {}",
                        case.name,
                        r.text()
                    );
                }
                answered += 1;
            }
            None => assert!(
                case.may_close,
                "{}: connection closed without an answer",
                case.name
            ),
        }
        assert_eq!(
            srv.get("/healthz", None).status,
            200,
            "still serving after {}",
            case.name
        );
    }
    assert!(
        answered * 10 >= cases.len() * 9,
        "most cases get an HTTP answer ({answered})"
    );

    // Slow clients: headers that never finish are cut off; a body that stalls gets 408.
    let mut slow = TcpStream::connect(srv.addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut out = Vec::new();
    let _ = slow.read_to_end(&mut out);
    assert!(parse_response(&out).is_none_or(|r| (400..500).contains(&r.status)));
    let mut stall = TcpStream::connect(srv.addr).unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 500\r\nConnection: close\r\n\r\n{{\"id\":"
    );
    stall.write_all(head.as_bytes()).unwrap();
    stall
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut out = Vec::new();
    let _ = stall.read_to_end(&mut out);
    let r = parse_response(&out).expect("a stalled body is answered");
    assert_eq!((r.status, r.code()), (408, "REQUEST_TIMEOUT".to_string()));
    // Many idle connections at once do not stop others from being served.
    let idle: Vec<TcpStream> = (0..50)
        .map(|_| TcpStream::connect(srv.addr).unwrap())
        .collect();
    assert_eq!(srv.get("/healthz", None).status, 200);
    drop(idle);

    // Nothing malformed was stored: only access records were added.
    let ok = srv.post_json(
        "/v1/events",
        Some(&key),
        &event("fine", Some("t"), "s", "t"),
    );
    assert_eq!(ok.status, 200);
    srv.stop();
    let records = all_records(&data);
    let added: Vec<&serde_json::Value> = records[before as usize..]
        .iter()
        .filter(|r| !r["type"].as_str().unwrap().starts_with("audit."))
        .collect();
    assert_eq!(
        added.len(),
        1,
        "only the one good event was stored: {added:?}"
    );
    assert_verifies(&data);
}
