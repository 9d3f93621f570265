//! What a producer's key may write, decided before the envelope or any pack looks at the
//! event: never the server's own types (`audit.*`, `sealog.*`), and, for a tenant-scoped
//! key, only its own tenant's events. Refused events are stored nowhere, in either log.

use crate::support;

use sealog_ledger::Undeclared;
use sealog_server::{Limits, ServerConfig};
use sealog_testkit::Api;
use sealog_testkit::events::{event, example};
use sealog_testkit::{InProcess, tempdir};
use serde_json::{Value, json};
use std::time::Duration;
use support::{access_of, all_pages, assert_verifies, event_of, offline_records};

/// Both ways the app treats undeclared types: the checks here come before either matters.
fn each_mode(test: impl Fn(InProcess)) {
    for packs in [false, true] {
        let dir = tempdir();
        let app = if packs {
            InProcess::start_packs(dir.path())
        } else {
            InProcess::start(dir.path())
        };
        test(app);
        assert_verifies(dir.path());
    }
}

/// Posts a body and returns the status and each event's error code (`""` when none).
fn post(app: &InProcess, key: &str, body: &Value) -> (u16, Vec<String>) {
    let r = app.post_json("/v1/events", Some(key), body);
    let codes = r.json()["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {}", r.text()))
        .iter()
        .map(|x| x["error"]["code"].as_str().unwrap_or("").to_string())
        .collect();
    (r.status, codes)
}

#[test]
fn producers_get_reserved_type_for_the_servers_own_types_and_nothing_is_stored() {
    each_mode(|app| {
        let (admin, _) = app.create_key(&["admin"], None, None);
        let (writer, _) = app.create_key(&["writer"], None, None);
        let (writer_acme, _) = app.create_key(&["writer"], Some("acme"), None);
        // A perfect copy of one of the server's own records is still not a producer's to write.
        assert_eq!(app.get("/v1/records?limit=1", Some(&admin)).status, 200);
        let record = app
            .get("/v1/records?type=audit.access&limit=1", Some(&admin))
            .json()["records"][0]
            .clone();
        assert_eq!(record["type"], "audit.access", "the read above is recorded");
        let mut copy = event_of(&record);
        copy["id"] = json!("forged-copy");
        let mut forged = vec![copy];
        for kind in ["audit.access", "sealog.quarantine", "audit.key_created"] {
            forged.push(event(&format!("forged-{kind}"), Some("acme"), "s", kind));
        }
        for key in [&admin, &writer, &writer_acme] {
            for e in &forged {
                let r = app.post_json("/v1/events", Some(key), e);
                assert_eq!(r.status, 403, "{}", r.text());
                assert_eq!(r.code(), "FORBIDDEN");
                let result = &r.json()["results"][0];
                assert_eq!(result["status"], "rejected");
                assert_eq!(result["error"]["code"], "RESERVED_TYPE", "{result}");
                assert_eq!(result["error"]["field"], "/type");
            }
        }
        // Beside a good event, the forged ones are refused alone, and the refusal recorded.
        let mut good = example("knowledge.chunk_created");
        good["tenant"] = json!("acme");
        let r = app.post_json(
            "/v1/events",
            Some(&writer_acme),
            &json!([forged[1], good, forged[2]]),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let results = r.json()["results"].clone();
        assert_eq!(results[1]["status"], "appended", "{results}");
        for i in [0, 2] {
            assert_eq!(results[i]["error"]["code"], "RESERVED_TYPE", "{results}");
        }
        let access = all_pages(
            &app,
            Some(&admin),
            "/v1/records?type=audit.access&limit=1000",
        );
        let denied = access_of(&access, &r);
        assert_eq!(denied["data"]["action"], "events.append");
        assert_eq!(denied["data"]["outcome"], "denied");
        assert_eq!(denied["data"]["resource"], json!({"denied_events": [0, 2]}));
        assert_eq!(denied["tenant"], "acme");

        for e in &forged {
            let id = e["id"].as_str().expect("an id");
            for log in ["records", "quarantine"] {
                let r = app.get(&format!("/v1/{log}?id={id}"), Some(&admin));
                assert_eq!(r.json()["records"], json!([]), "{id} is in the {log}");
            }
        }
        let dir = app.dir.clone();
        app.stop();
        let records = offline_records(&dir);
        assert!(
            records
                .iter()
                .all(|r| !r["id"].as_str().is_some_and(|id| id.starts_with("forged"))),
            "nothing forged is in the log"
        );
        assert!(
            records
                .iter()
                .filter(|r| r["type"].as_str().is_some_and(|t| t.starts_with("audit.")))
                .all(|r| r["source"] == "sealog-server"),
            "every audit record is the server's own"
        );
    });
}

#[test]
fn a_tenant_keys_event_for_another_tenant_is_forbidden_before_its_envelope_is_checked() {
    each_mode(|app| {
        let (admin, _) = app.create_key(&["admin"], None, None);
        let (writer, _) = app.create_key(&["writer"], Some("acme"), None);
        let mut incomplete = example("decision-log.audit_decision_record");
        incomplete["data"]
            .as_object_mut()
            .expect("data")
            .remove("features");
        let denied = [
            // Neither source, type nor time: an invalid envelope, and another tenant's.
            json!({"id": "x1", "tenant": "other"}),
            json!({"id": "x2", "type": "t"}),
            json!({"id": "x3", "tenant": 42, "source": "s", "type": "t"}),
            json!({"id": "x4", "tenant": "other", "time": "yesterday", "data": []}),
            // A pack would quarantine it (its tenant is a run id, not acme); it is refused.
            incomplete,
        ];
        for e in &denied {
            let (status, codes) = post(&app, &writer, e);
            assert_eq!(
                (status, codes),
                (403, vec!["FORBIDDEN_TENANT".to_string()]),
                "{e}"
            );
        }
        let (status, codes) = post(&app, &writer, &json!(denied));
        assert_eq!(status, 403);
        assert!(codes.iter().all(|c| c == "FORBIDDEN_TENANT"), "{codes:?}");
        // The same invalid envelope in the key's own tenant reaches the envelope check.
        let (status, codes) = post(&app, &writer, &json!({"id": "x5", "tenant": "acme"}));
        assert_eq!((status, codes), (422, vec!["INVALID_ENVELOPE".to_string()]));
        // Of the two refusals, the reserved type is decided first.
        let reserved = event("x6", Some("other"), "s", "audit.access");
        assert_eq!(
            post(&app, &writer, &reserved),
            (403, vec!["RESERVED_TYPE".to_string()])
        );
        // Nothing reached either log; each refused request was recorded as denied.
        assert_eq!(
            app.get("/v1/quarantine?limit=100", Some(&admin)).json()["records"],
            json!([])
        );
        let access = all_pages(
            &app,
            Some(&admin),
            "/v1/records?type=audit.access&limit=1000",
        );
        let denials = access
            .iter()
            .filter(|a| a["data"]["action"] == "events.append" && a["data"]["outcome"] == "denied")
            .count();
        assert_eq!(denials, denied.len() + 2);
        let dir = app.dir.clone();
        app.stop();
        assert!(
            offline_records(&dir)
                .iter()
                .all(|r| !r["id"].as_str().is_some_and(|id| id.starts_with('x'))),
            "no refused event is stored"
        );
    });
}

/// An ordered stream is the key's that sends it: another key naming the same stream id,
/// of another tenant, neither fails it (even a key that may not append at all) nor takes
/// its next place; its request waits for its own stream's predecessor, which never comes.
#[test]
fn another_keys_request_neither_fails_nor_takes_over_a_keys_ordered_stream() {
    let dir = tempdir();
    let config = ServerConfig {
        limits: Limits {
            stream_wait: Duration::from_millis(200),
            ..Limits::default()
        },
        ..ServerConfig::default()
    };
    let app = InProcess::start_with(dir.path(), Undeclared::Accept, config);
    let (writer_a, _) = app.create_key(&["writer"], Some("shop-a"), None);
    let (reader_b, _) = app.create_key(&["reader"], Some("shop-b"), None);
    let (writer_b, _) = app.create_key(&["writer"], Some("shop-b"), None);
    let send = |key: &str, place: &str, e: &Value| {
        let auth = format!("Bearer {key}");
        let r = app.send(
            "POST",
            "/v1/events",
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
                ("sealog-stream", place),
            ],
            Some(e.to_string().as_bytes()),
        );
        (r.status, r.code())
    };
    let ok = (200, String::new());

    assert_eq!(
        send(
            &writer_a,
            "orders/1",
            &event("a1", Some("shop-a"), "s", "ty")
        ),
        ok
    );
    let refused = send(
        &reader_b,
        "orders/2",
        &event("x", Some("shop-b"), "s", "ty"),
    );
    assert_eq!(refused.0, 403, "a reader may not append");
    assert_eq!(
        send(
            &writer_a,
            "orders/2",
            &event("a2", Some("shop-a"), "s", "ty")
        ),
        ok,
        "another key's refused request did not fail the stream"
    );

    let taken = send(
        &writer_b,
        "orders/3",
        &event("b1", Some("shop-b"), "s", "ty"),
    );
    assert_eq!(
        taken,
        (409, "STREAM_ORDER".to_string()),
        "its own stream orders has no request 2"
    );
    assert_eq!(
        send(
            &writer_a,
            "orders/3",
            &event("a3", Some("shop-a"), "s", "ty")
        ),
        ok,
        "another key's request did not take the stream's next place"
    );
    app.stop();
    let ids: Vec<Value> = offline_records(dir.path())
        .into_iter()
        .filter(|r| r["type"] == "ty")
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(ids, json!(["a1", "a2", "a3"]).as_array().unwrap().clone());
}
