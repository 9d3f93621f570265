//! A corpus of malformed and adversarial requests at the level of what a request says, in
//! process: bad JSON, wrong media types, oversized bodies and events, deep nesting, invalid
//! UTF-8, bad parameters and cursors, unknown axes, paths and methods, bad key specs and
//! authorization headers. Each gets a 4xx with an error code, never a 5xx; the app keeps
//! serving; nothing malformed is stored; the log verifies afterwards. Requests that only a
//! socket can carry (broken framing, bytes in headers, slow clients) are tested against the
//! real process, in the `sealog` crate.

use crate::support;

use sealog_ledger::Undeclared;
use sealog_model::Canonical;
use sealog_model::json::Json;
use sealog_model::limits::{EVENT_BYTES_MAX, RECORD_BYTES_MAX};
use sealog_server::{Limits, ServerConfig};
use sealog_testkit::Api;
use sealog_testkit::events::event;
use sealog_testkit::{InProcess, tempdir};
use serde_json::json;
use support::{assert_verifies, offline_records};

/// The body limit in the corpus, small so that oversized bodies are cheap to send.
const BODY_MAX: usize = 256 << 10;

struct Case {
    name: String,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn corpus(key: &str) -> Vec<Case> {
    let auth = format!("Bearer {key}");
    let mut cases = Vec::new();
    let mut add = |name: String,
                   method: &'static str,
                   path: &str,
                   mut headers: Vec<(&'static str, String)>,
                   body: &[u8]| {
        headers.push(("Content-Length", body.len().to_string()));
        cases.push(Case {
            name,
            method,
            path: path.to_string(),
            headers,
            body: body.to_vec(),
        })
    };
    let with_auth = |ct: Option<&str>| {
        let mut h = vec![("Authorization", auth.clone())];
        if let Some(ct) = ct {
            h.push(("Content-Type", ct.to_string()));
        }
        h
    };

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
        ("large junk event in array", format!("[{{\"id\":\"{}\"}}]", "x".repeat(BODY_MAX - 20)).into_bytes()),
        ("body one byte over the limit", vec![b' '; BODY_MAX + 1]),
    ];
    for ct in [
        "application/json",
        "application/x-ndjson",
        "application/cloudevents-batch+json",
    ] {
        for (name, body) in &bad_bodies {
            add(
                format!("{ct}: {name}"),
                "POST",
                "/v1/events",
                with_auth(Some(ct)),
                body,
            );
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
        add(
            format!("content type {ct:?}"),
            "POST",
            "/v1/events",
            with_auth(Some(ct)),
            ev,
        );
    }
    add(
        "no content type".into(),
        "POST",
        "/v1/events",
        with_auth(None),
        ev,
    );

    // Parameters.
    let mut get = |name: String, path: &str| add(name, "GET", path, with_auth(None), b"");
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
        get(format!("query {q}"), &format!("/v1/records?{q}"));
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
        "after=x",
        "after=-1",
        "after=1&cursor=AQ",
        "after=99999999999999999999",
    ] {
        get(format!("quarantine {q}"), &format!("/v1/quarantine?{q}"));
    }
    for q in [
        "as_of=abc",
        "as_of=-1",
        "scope=a&scope=b",
        "view=current",
        "x=1",
    ] {
        get(format!("state {q}"), &format!("/v1/subjects/s1/state?{q}"));
    }
    for r in ["abc", "sha256:XYZ", "sha256:00", "blob:%2F%2Fx"] {
        get(
            format!("payload {r}"),
            &format!("/v1/quarantine/payloads/{r}"),
        );
    }
    get(
        "query too long".into(),
        &format!("/v1/records?subject={}", "a".repeat(20_000)),
    );
    for q in [
        "",
        "seq=abc",
        "seq=-1",
        "seq=99999999",
        "seq=0&size=0",
        "seq=0&size=99999999",
        "seq=1&seq=2",
        "seq=0&bogus=1",
        "record_id=abc",
        "record_id=sha256:00",
        "record_id=sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "seq=0&record_id=sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "record_id=a&record_id=b",
    ] {
        get(
            format!("inclusion {q}"),
            &format!("/v1/proofs/inclusion?{q}"),
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
        get(
            format!("consistency {q}"),
            &format!("/v1/proofs/consistency?{q}"),
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
        get(
            format!("cursor {c}"),
            &format!("/v1/records?limit=1&cursor={c}"),
        );
        get(
            format!("quarantine cursor {c}"),
            &format!("/v1/quarantine?limit=1&cursor={c}"),
        );
    }

    // Paths.
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
        "/checkpoint/key/x",
        "/nothing",
        "/v1/proofs",
        "/metrics/x",
    ] {
        get(format!("path {p}"), p);
    }
    get(
        "very long path".into(),
        &format!("/v1/records/{}", "9".repeat(8000)),
    );

    // Methods.
    for (m, p) in [
        ("PUT", "/v1/events"),
        ("DELETE", "/v1/events"),
        ("PATCH", "/v1/records"),
        ("POST", "/v1/records"),
        ("GET", "/v1/events"),
        ("OPTIONS", "/v1/events"),
        ("TRACE", "/v1/records"),
        ("POST", "/checkpoint"),
        ("POST", "/checkpoint/key"),
        ("DELETE", "/v1/records/0"),
        ("PUT", "/v1/keys"),
    ] {
        add(format!("method {m} {p}"), m, p, with_auth(None), b"");
    }

    // Key specs.
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
            "POST",
            "/v1/keys",
            with_auth(Some("application/json")),
            body.as_bytes(),
        );
    }
    add(
        "keys body wrong type".into(),
        "POST",
        "/v1/keys",
        with_auth(Some("text/plain")),
        b"{}",
    );

    // Authorization headers.
    for a in [
        String::new(),
        "Bearer".into(),
        "Bearer ".into(),
        "Basic dXNlcjpwYXNz".into(),
        "bearer slk_nope".into(),
        "Bearer slk_".into(),
        "Token abc".into(),
        format!("Bearer {}", "k".repeat(10_000)),
        format!("Bearer {key}x"),
        format!("Bearer  {key}zz"),
    ] {
        add(
            format!("auth {a:.30}"),
            "GET",
            "/v1/records?limit=1",
            vec![("Authorization", a.clone())],
            b"",
        );
    }
    add(
        "no auth".into(),
        "GET",
        "/v1/records?limit=1",
        Vec::new(),
        b"",
    );
    cases
}

#[test]
fn malformed_requests_get_4xx_with_a_code_and_nothing_is_stored() {
    let dir = tempdir();
    let config = ServerConfig {
        limits: Limits {
            body_bytes_max: BODY_MAX,
            ..Limits::default()
        },
        ..ServerConfig::default()
    };
    let app = InProcess::start_with(dir.path(), Undeclared::Accept, config);
    let (key, _) = app.create_key(&["admin"], None, None);
    let cases = corpus(&key);
    assert!(cases.len() >= 300, "the corpus has {} cases", cases.len());
    for case in &cases {
        let headers: Vec<(&str, &str)> =
            case.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = app.send(case.method, &case.path, &headers, Some(&case.body));
        assert!(
            (400..500).contains(&r.status),
            "{}: got {} {}",
            case.name,
            r.status,
            r.text()
        );
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{}: every error is JSON: {:?}",
            case.name,
            r.headers
        );
        assert!(
            !r.code().is_empty(),
            "{}: error body without a code: {}",
            case.name,
            r.text()
        );
        let ready = app.get("/readyz", None);
        assert_eq!(ready.status, 200, "still ready after {}", case.name);
    }

    // Nothing malformed was stored: besides the server's own records, only one good event.
    let ok = app.post_json(
        "/v1/events",
        Some(&key),
        &event("fine", Some("t"), "s", "t"),
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    app.stop();
    let stored: Vec<String> = offline_records(dir.path())
        .iter()
        .filter(|r| r["source"] != "sealog-server")
        .map(|r| r["id"].to_string())
        .collect();
    assert_eq!(stored, ["\"fine\""], "only the good event was stored");
    assert_verifies(dir.path());
}

/// An event whose JSON text is exactly `len` bytes.
fn event_of_len(id: &str, len: usize) -> Vec<u8> {
    let mut e = event(id, None, "s", "t");
    e["data"] = json!({"pad": ""});
    let base = e.to_string().len();
    e["data"]["pad"] = json!("x".repeat(len - base));
    let text = e.to_string().into_bytes();
    assert_eq!(text.len(), len);
    text
}

/// An event whose record can be at most `len` bytes long.
fn event_of_record_len(id: &str, len: usize) -> Vec<u8> {
    let mut e = event(id, None, "s", "t");
    e["data"] = json!({"pad": ""});
    let longest = |e: &serde_json::Value| {
        Canonical::of_event(&Json::from_value(e))
            .unwrap()
            .record_len_max()
    };
    e["data"]["pad"] = json!("x".repeat(len - longest(&e)));
    assert_eq!(longest(&e), len);
    e.to_string().into_bytes()
}

#[test]
fn events_over_the_size_limit_are_refused_alone() {
    let dir = tempdir();
    let app = InProcess::start(dir.path());
    let over = event_of_len("over", EVENT_BYTES_MAX + 1);
    // Text within the limit, but a record that no tlog-tiles entry could hold.
    let record_over = event_of_record_len("record-over", RECORD_BYTES_MAX + 1);
    let at_limit = event_of_record_len("at-limit", RECORD_BYTES_MAX);
    let small = event("small", None, "s", "t").to_string().into_bytes();
    let json_body = |ct: &str, body: &[u8]| app.req("POST", "/v1/events", None, Some((ct, body)));

    for alone in [&over, &record_over] {
        let r = json_body("application/json", alone);
        assert_eq!(
            (r.status, r.code()),
            (413, "TOO_LARGE".into()),
            "{}",
            r.text()
        );
        assert_eq!(r.json()["results"][0]["error"]["code"], "TOO_LARGE");
    }

    let mut array = b"[".to_vec();
    array.extend_from_slice(&over);
    array.push(b',');
    array.extend_from_slice(&small);
    array.push(b']');
    let ndjson_body = [
        record_over.clone(),
        b"\n".to_vec(),
        at_limit.clone(),
        b"\n".to_vec(),
    ]
    .concat();
    for (ct, body, second) in [
        ("application/json", array, "small"),
        ("application/x-ndjson", ndjson_body, "at-limit"),
    ] {
        let r = json_body(ct, &body);
        assert_eq!(r.status, 200, "{ct}: {}", r.text());
        let results = r.json()["results"].clone();
        assert_eq!(results[0]["error"]["code"], "TOO_LARGE", "{ct}: {results}");
        assert_eq!(results[1]["status"], "appended", "{ct}: {second}");
    }
    // The longest record a log may hold is served in its entry bundle, as C2SP asks.
    app.get("/checkpoint", None);
    let bundle = app.get("/tile/entries/000.p/2", None);
    assert_eq!(bundle.status, 200, "{}", bundle.text());
    let second =
        &bundle.body[2 + usize::from(u16::from_be_bytes([bundle.body[0], bundle.body[1]]))..];
    let len = usize::from(u16::from_be_bytes([second[0], second[1]]));
    assert!(
        len > RECORD_BYTES_MAX - 64,
        "the record at the limit: {len} bytes"
    );
    app.stop();
    let ids: Vec<String> = offline_records(dir.path())
        .iter()
        .map(|r| r["id"].to_string())
        .collect();
    assert_eq!(
        ids[..2],
        ["\"small\"", "\"at-limit\""],
        "then the entry bundle's access record"
    );
    assert_verifies(dir.path());
}

#[test]
fn a_request_head_over_its_limit_gets_our_error() {
    let dir = tempdir();
    let app = InProcess::start(dir.path());
    let long = "x".repeat(70 << 10);
    let r = app.send("GET", "/v1/records", &[("x-padding", long.as_str())], None);
    assert_eq!(
        (r.status, r.code()),
        (431, "HEADERS_TOO_LARGE".to_string()),
        "{}",
        r.text()
    );
    let fits = "x".repeat(60 << 10);
    let r = app.send("GET", "/v1/records", &[("x-padding", fits.as_str())], None);
    assert_eq!(r.status, 200, "{}", r.text());
}
