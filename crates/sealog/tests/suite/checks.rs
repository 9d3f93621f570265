//! `sealog check` and `sealog conflicts` end to end: seed 003 §6.2's contradiction found by
//! the server's scheduled check and alerted to a webhook (retried, each delivery recorded),
//! the CLI's findings, exit codes, incremental runs and resolutions, reconciliation with a
//! domain snapshot, and client mode against a running server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

use sealog_testkit::{Api, Cli, ServerProcess, tempdir, wait_for};
use serde_json::{Value, json};

fn cli(dir: &std::path::Path) -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_sealog"), dir)
}

fn chunk(id: &str, chunk: &str, time: &str, value: &str, authority: &str) -> Value {
    json!({
        "specversion": "1.0", "id": id, "source": "knowledge-base",
        "type": "knowledge.chunk_created", "time": time, "tenant": "kb",
        "actor": {"type": "human", "id": "editor-3"},
        "data": {"principal": {"type": "human", "id": "editor-3", "clearance": 3},
            "operation": "CREATE", "resourceType": "CHUNK", "resourceId": chunk,
            "chunkType": "policy", "after": format!("h-{id}"), "authority": authority,
            "mutability": "locked", "claim": {"key": "refund_days", "value": value}},
    })
}

fn link(id: &str, kind: &str, conv: &str, previous: Option<&str>, new: Option<&str>) -> Value {
    let mut e = json!({
        "specversion": "1.0", "id": id, "source": "crm-linker",
        "type": format!("conversation.customer_{kind}"), "time": "2026-02-01T09:00:00Z",
        "tenant": "instructor-42", "subject": conv,
        "actor": {"type": "human", "id": "instructor-42"},
        "data": {"conversation_id": conv, "instructor_id": "instructor-42",
            "context": {"channel": "whatsapp"}},
    });
    if let Some(p) = previous {
        e["data"]["previous_customer_id"] = json!(p);
    }
    if let Some(n) = new {
        e["data"]["new_customer_id"] = json!(n);
    }
    if kind != "linked" {
        e["reason"] = json!("changed");
    }
    e
}

/// A webhook receiver on loopback: answers 500 to the first alert and 200 after, and hands
/// every body it got to the test.
fn webhook() -> (String, mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/hooks/sealog?token=s3cret",
        listener.local_addr().unwrap()
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let status = if n == 0 {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            if let Ok(v) = serde_json::from_slice(&body) {
                let _ = tx.send(v);
            }
        }
    });
    (url, rx)
}

#[test]
fn create_contradictory_chunks_contradiction_detected_within_1_hour() {
    let dir = tempdir();
    let log = cli(&dir.path().join("data"));
    let (admin, _) = log.create_key(&["admin"], None, None);
    let (auditor, _) = log.create_key(&["auditor"], None, None);
    let (hook, alerts) = webhook();
    let server = ServerProcess::start(
        &log,
        &[
            "--check-every",
            "PT1S",
            "--alert-webhook",
            &hook,
            "--alert-on",
            "high",
        ],
    );
    for e in [
        chunk("c1", "chunk-1", "2026-03-01T08:00:00Z", "30", "approved"),
        chunk("c2", "chunk-2", "2026-03-02T08:00:00Z", "14", "draft"),
    ] {
        let r = server.post_json("/v1/events", Some(&admin), &e);
        assert_eq!(r.json()["results"][0]["status"], "appended", "{}", r.text());
    }
    // The scheduled check finds it: polled with a deadline, never slept for. Its settlement
    // is a second record, appended right after the finding's.
    let found = wait_for(
        60,
        "the contradiction found and settled by the scheduled check",
        || {
            let r = server.get("/v1/conflicts?rule=knowledge.contradiction", Some(&auditor));
            assert_eq!(r.status, 200, "{}", r.text());
            r.json()["conflicts"]
                .as_array()
                .and_then(|c| c.first().cloned())
                .filter(|c| c["status"] != "open")
        },
    );
    assert_eq!(found["subjects"], json!(["chunk-1", "chunk-2"]));
    // Locked chunks: high (seed 003 §5.4); higher authority wins (§5.3).
    assert_eq!(found["criticality"], "high");
    assert_eq!(found["status"], "resolved");
    assert_eq!(found["resolutions"][0]["resolution"], "authority_wins");
    assert_eq!(found["resolutions"][0]["winner"], "chunk-1");
    // Alerted: the first delivery failed, the retry got through, and both tries are one
    // recorded delivery.
    let alert = alerts
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("an alert");
    assert_eq!(alert["conflict"]["conflict_id"], found["conflict_id"]);
    let delivered = wait_for(60, "the alert's delivery record", || {
        let r = server.get("/v1/records?type=sealog.alert_delivered", Some(&auditor));
        r.json()["records"]
            .as_array()
            .and_then(|a| a.first().cloned())
    });
    assert_eq!(delivered["data"]["delivered"], true);
    assert_eq!(delivered["data"]["attempts"], 2);
    assert_eq!(delivered["data"]["conflict_id"], found["conflict_id"]);
    let target = delivered["data"]["target"].as_str().unwrap();
    assert!(
        target.ends_with("/hooks/sealog") && !target.contains("s3cret"),
        "{target}"
    );
    let metrics = server.get("/metrics", Some(&admin)).text();
    assert!(
        metrics.contains("sealog_check_findings_total{criticality=\"high\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("sealog_check_runs_total"), "{metrics}");
    // Reads over a socket name the address they came from.
    let r = server.get("/v1/records?type=audit.access&limit=1000", Some(&auditor));
    let reads = r.json()["records"].as_array().unwrap().clone();
    assert!(
        reads
            .iter()
            .any(|a| a["data"]["source_address"] == "127.0.0.1"),
        "{reads:?}"
    );
    server.stop();
    log.assert_verifies();
}

#[test]
fn the_cli_checks_records_runs_and_resolves_conflicts() {
    let dir = tempdir();
    let log = cli(dir.path());
    let events: Vec<String> = [
        link("l1", "linked", "conv-1", None, Some("cust-1")),
        link("l2", "relinked", "conv-1", Some("cust-9"), Some("cust-2")),
        link("l3", "linked", "conv-2", None, Some("cust-3")),
    ]
    .iter()
    .map(Value::to_string)
    .collect();
    log.ok(&["append", "-"], events.join("\n").as_bytes());
    let first = log.run(&["check", "--fail-on", "high"], b"");
    assert_eq!(
        first.code, 1,
        "a high finding fails the run: {}",
        first.stderr
    );
    let findings = first.lines();
    assert_eq!(findings.len(), 1, "{}", first.stdout);
    assert_eq!(findings[0]["rule"], "conversation.relink_mismatch");
    assert_eq!(findings[0]["new"], true);
    assert!(
        first.stderr.contains("\"integrity\":{\"ok\":true"),
        "{}",
        first.stderr
    );
    // Nothing new since: the next run starts where this one ended and finds nothing.
    let again = log.run(&["check", "--fail-on", "info"], b"");
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.stdout, "");
    // A full run sees it again, already recorded.
    let full = log.run(&["check", "--full"], b"");
    assert_eq!(full.code, 0);
    assert_eq!(full.lines()[0]["new"], false);
    let listed = log.ok(&["conflicts", "--status", "open"], b"").lines();
    assert_eq!(listed.len(), 1);
    let id = listed[0]["conflict_id"].as_str().unwrap().to_string();
    // Refused before anything is written.
    for (args, code) in [
        (
            vec![
                "conflicts",
                "resolve",
                &id,
                "--resolution",
                "maybe",
                "--reason",
                "x",
            ],
            2,
        ),
        (
            vec![
                "conflicts",
                "resolve",
                &id,
                "--resolution",
                "dismissed",
                "--reason",
                " ",
            ],
            2,
        ),
        (
            vec![
                "conflicts",
                "resolve",
                &id,
                "--resolution",
                "authority_wins",
                "--reason",
                "x",
            ],
            1,
        ),
        (
            vec![
                "conflicts",
                "resolve",
                "cf-none",
                "--resolution",
                "dismissed",
                "--reason",
                "x",
            ],
            1,
        ),
        (vec!["check", "--fail-on", "severe"], 2),
        (vec!["check", "--rule", "no.such_rule"], 1),
        (vec!["check", "--now", "yesterday"], 2),
    ] {
        let r = log.run(&args, b"");
        assert_eq!(r.code, code, "{args:?}: {} {}", r.stdout, r.stderr);
    }
    let resolved = log.ok(
        &[
            "conflicts",
            "resolve",
            &id,
            "--resolution",
            "dismissed",
            "--reason",
            "the relink was typed by hand",
        ],
        b"",
    );
    assert_eq!(resolved.json()["data"]["resolution"], "dismissed");
    let twice = log.run(
        &[
            "conflicts",
            "resolve",
            &id,
            "--resolution",
            "dismissed",
            "--reason",
            "again",
        ],
        b"",
    );
    assert_eq!(twice.code, 1);
    assert!(
        twice.stderr.contains("already resolved"),
        "{}",
        twice.stderr
    );
    assert_eq!(
        log.ok(&["conflicts", "--status", "open"], b"")
            .lines()
            .len(),
        0
    );
    assert_eq!(
        log.ok(&["conflicts", "--status", "resolved"], b"")
            .lines()
            .len(),
        1
    );

    // Reconciliation: the domain holds conv-2 → cust-7 (not audited) and lacks conv-1.
    let snapshot = dir.path().join("domain.ndjson");
    std::fs::write(
        &snapshot,
        "{\"tenant\":\"instructor-42\",\"conversation_id\":\"conv-2\",\"customer_id\":\"cust-7\"}\n",
    )
    .unwrap();
    let rec = log.run(&["check", "--reconcile", snapshot.to_str().unwrap()], b"");
    assert_eq!(rec.code, 0, "{}", rec.stderr);
    let mut found: Vec<(String, String)> = rec
        .lines()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["subjects"][0].as_str().unwrap().to_string(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            (
                "conversation.link_missing_from_domain".to_string(),
                "conv-1".to_string()
            ),
            (
                "conversation.link_missing_from_domain".to_string(),
                "conv-2".to_string()
            ),
            (
                "conversation.unaudited_link".to_string(),
                "conv-2".to_string()
            ),
        ]
    );
    assert!(
        !rec.stdout.contains("cust-"),
        "no personal value is printed: {}",
        rec.stdout
    );
    // Not NDJSON objects: refused as bad usage; a row without the rule's key: refused by
    // the run. Either way nothing is recorded.
    for (bad, code) in [
        ("[1,2]\n", 2),
        ("{\"conversation_id\": \n", 2),
        ("{\"customer_id\":\"c\"}\n", 1),
    ] {
        std::fs::write(&snapshot, bad).unwrap();
        let r = log.run(&["check", "--reconcile", snapshot.to_str().unwrap()], b"");
        assert_eq!(r.code, code, "{bad}: {}", r.stderr);
        assert!(r.stderr.contains("line 1"), "{}", r.stderr);
    }
    let missing = log.run(&["check", "--reconcile", "/nonexistent/domain.ndjson"], b"");
    assert_eq!(missing.code, 2);
    log.assert_verifies();
}

#[test]
fn check_and_conflicts_work_through_a_server() {
    let dir = tempdir();
    let log = cli(&dir.path().join("data"));
    let (admin, _) = log.create_key(&["admin"], None, None);
    let (reader, _) = log.create_key(&["reader"], None, None);
    let server = ServerProcess::start(&log, &["--check-every", "off"]);
    let url = server.url();
    let body = link("l2", "relinked", "conv-1", Some("cust-9"), Some("cust-2")).to_string();
    let through = |key: &str, args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--url", &url, "--key", key]);
        log.run(&all, body.as_bytes())
    };
    assert_eq!(through(&admin, &["append", "-"]).code, 0);
    let checked = through(&admin, &["check", "--fail-on", "high"]);
    assert_eq!(checked.code, 1, "{}", checked.stderr);
    assert_eq!(checked.lines()[0]["rule"], "conversation.relink_mismatch");
    let denied = through(&reader, &["check"]);
    assert_eq!(denied.code, 1);
    assert!(denied.stderr.contains("403"), "{}", denied.stderr);
    assert_eq!(
        through(&admin, &["check", "--now", "2026-01-01T00:00:00Z"]).code,
        2
    );
    let listed = through(&admin, &["conflicts"]).lines();
    assert_eq!(listed.len(), 1);
    let id = listed[0]["conflict_id"].as_str().unwrap();
    let resolved = through(
        &admin,
        &[
            "conflicts",
            "resolve",
            id,
            "--resolution",
            "escalate",
            "--reason",
            "ask the instructor",
        ],
    );
    assert_eq!(resolved.code, 0, "{}", resolved.stderr);
    let escalated = through(&admin, &["conflicts", "--status", "escalated"]).lines();
    assert_eq!(escalated.len(), 1);
    assert_eq!(
        escalated[0]["resolutions"][0]["reason"],
        "ask the instructor"
    );
    assert_eq!(through(&reader, &["conflicts"]).code, 1);
    server.stop();
    log.assert_verifies();
}

/// A producer's record cannot take the place of a conflict the checks recorded, even one
/// whose subject names the conflict's id: Sealog's own records are a kind of their own.
#[test]
fn a_producers_correction_cannot_supersede_a_recorded_conflict() {
    let dir = tempdir();
    let log = cli(dir.path());
    let events: Vec<String> = [
        link("l1", "linked", "conv-1", None, Some("cust-1")),
        link("l2", "relinked", "conv-1", Some("cust-9"), Some("cust-2")),
    ]
    .iter()
    .map(Value::to_string)
    .collect();
    log.ok(&["append", "-"], events.join("\n").as_bytes());
    log.run(&["check"], b"");
    let conflicts = log.ok(&["query", "--type", "sealog.conflict"], b"").lines();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    let target = conflicts[0]["record_id"].as_str().unwrap().to_string();
    let conflict_id = conflicts[0]["data"]["conflict_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut hide = link("hide", "resolution_skipped", &conflict_id, None, None);
    hide["subject"] = json!(conflict_id);
    hide["data"]["conversation_id"] = json!(conflict_id);
    hide["supersedes"] = json!(target);
    hide["reason"] = json!("tidying up");
    let result = log
        .run(&["append", "-"], hide.to_string().as_bytes())
        .lines();
    assert_eq!(result[0]["status"], "quarantined", "{:?}", result[0]);
    assert_eq!(result[0]["reason_code"], "INVALID_SUPERSEDES_LINK");
    let current = log
        .ok(
            &["query", "--type", "sealog.conflict", "--view", "current"],
            b"",
        )
        .lines();
    assert_eq!(current.len(), 1, "the conflict stays in the current view");

    // A subject whose id two kinds share asks which one is meant, locally and over HTTP.
    let order = json!({"specversion": "1.0", "id": "o1", "source": "shop", "type": "comms.order",
        "time": "2026-02-01T10:00:00Z", "tenant": "instructor-42",
        "actor": {"type": "system", "id": "webshop"},
        "data": {"order_id": "conv-1", "customer_id": "cust-1", "event_type": "placed",
            "triggered_by": "customer", "new_status": "placed"}});
    let appended = log
        .ok(&["append", "-"], order.to_string().as_bytes())
        .lines();
    assert_eq!(appended[0]["status"], "appended", "{:?}", appended[0]);
    let ambiguous = log.run(&["state", "--subject", "conv-1"], b"");
    assert_ne!(ambiguous.code, 0);
    assert!(
        ambiguous.stderr.contains("comms.order") && ambiguous.stderr.contains("conversation."),
        "{}",
        ambiguous.stderr
    );
    let named = log
        .ok(
            &["state", "--subject", "conv-1", "--type", "comms.order"],
            b"",
        )
        .json();
    assert_eq!(named["state"]["status"], "placed", "{named}");
    let server = ServerProcess::start(&log, &[]);
    let resp = server.req("GET", "/v1/subjects/conv-1/state", None, None);
    assert_eq!(resp.status, 409, "{}", resp.text());
    assert_eq!(resp.json()["error"]["code"], "AMBIGUOUS_KIND");
    let resp = server.req(
        "GET",
        "/v1/subjects/conv-1/state?type=conversation.customer_linked",
        None,
        None,
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.json()["state"]["customer_id"],
        "cust-2",
        "{}",
        resp.text()
    );
    server.stop();
}
