//! NATS JetStream ingestion against a real `nats-server -js` and the real binary: at least
//! once from the bus, each event exactly once in the log, through SIGKILLs of Sealog and
//! restarts of the bus; what is not an event recorded and terminated; binary-mode messages
//! and their HTTP twins one record; corrections that arrive before their targets waiting.

use std::collections::{BTreeMap, BTreeSet};

use sealog_testkit::nats::{NatsServer, PAYLOAD_MAX, Publisher};
use sealog_testkit::{Api, Cli, Rng, ServerProcess, events, wait_for};
use serde_json::{Value, json};

const STREAM: &str = "AUDIT";
const CONSUMER: &str = "sealog";

/// A bus, a temporary directory and the CLI on its data directory (accepting undeclared
/// types for tests about the bus rather than the packs); `None` when the bus is not installed.
fn setup(undeclared: bool) -> Option<(NatsServer, tempfile::TempDir, Cli)> {
    let nats = NatsServer::start()?;
    let tmp = sealog_testkit::tempdir();
    let cli = Cli::new(env!("CARGO_BIN_EXE_sealog"), &tmp.path().join("data"));
    let cli = if undeclared {
        cli.accepting_undeclared()
    } else {
        cli
    };
    Some((nats, tmp, cli))
}

fn serve(cli: &Cli, nats: &NatsServer, extra: &[&str]) -> ServerProcess {
    let url = nats.url();
    let mut args = vec!["--nats", url.as_str(), "--nats-retry-delay-s", "0.05"];
    args.extend(extra);
    let server = ServerProcess::start(cli, &args);
    wait_for(60, "the consumer to consume", || {
        (bus(&server)["state"] == "consuming").then_some(())
    });
    server
}

/// The consumer's state as `/readyz` shows it.
fn bus(server: &ServerProcess) -> Value {
    server.send("GET", "/readyz", &[], None).json()["nats"].clone()
}

/// The bus's counters once `done` holds of them: the server counts a batch's messages after
/// it has acknowledged them, so the bus may be drained a moment before the counts say so.
fn counted(server: &ServerProcess, done: impl Fn(&Value) -> bool) -> Value {
    wait_for(60, "the server to count what it acknowledged", || {
        let b = bus(server);
        done(&b).then_some(b)
    })
}

/// Waits until the bus holds nothing for the consumer: every message delivered and
/// acknowledged or terminated.
fn drained(publisher: &Publisher) {
    wait_for(300, "the consumer to take every message", || {
        publisher
            .consumer(STREAM, CONSUMER)
            .filter(|c| c.pending == 0 && c.ack_pending == 0)
            .map(|_| ())
    });
}

/// Producer records (not Sealog's own), by event id: how many times each is in the log.
fn counts(cli: &Cli) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in cli.all_records() {
        if !r["type"].as_str().unwrap().starts_with("audit.") {
            *out.entry(r["id"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
    }
    out
}

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// `n` distinct events, and those events again with duplicates sprinkled in at random
/// places (one in ten messages is a duplicate).
fn with_duplicates(rng: &mut Rng, n: usize, tag: &str) -> (BTreeSet<String>, Vec<Vec<u8>>) {
    let events: Vec<Value> = (0..n)
        .map(|i| {
            events::event(
                &format!("{tag}-{i}"),
                Some("t1"),
                &format!("s{}", i % 97),
                "bus.test",
            )
        })
        .collect();
    let mut messages: Vec<Vec<u8>> = events.iter().map(body).collect();
    for _ in 0..n / 9 {
        let dup = body(&events[rng.below(n as u64) as usize]);
        let at = rng.below(messages.len() as u64 + 1) as usize;
        messages.insert(at, dup);
    }
    let ids = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    (ids, messages)
}

fn exactly_once(cli: &Cli, ids: &BTreeSet<String>) {
    let counts = counts(cli);
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "in the log more than once: {twice:?}");
    let have: BTreeSet<String> = counts.keys().cloned().collect();
    let lost: Vec<_> = ids.difference(&have).collect();
    assert!(
        lost.is_empty(),
        "{} lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert_eq!(have.len(), ids.len());
}

#[test]
fn ten_thousand_messages_with_duplicates_are_each_in_the_log_once() {
    let Some((nats, _tmp, cli)) = setup(true) else {
        return;
    };
    let server = serve(&cli, &nats, &[]);
    let publisher = Publisher::connect(&nats.url());
    let mut rng = Rng::new(0x0B05_0001);
    let (ids, messages) = with_duplicates(&mut rng, 9_000, "e");
    assert_eq!(messages.len(), 10_000);
    publisher.publish_bodies("audit.t1.orders", &messages);
    drained(&publisher);
    exactly_once(&cli, &ids);
    let b = counted(&server, |b| b["acknowledged"] == 10_000);
    assert_eq!(b["delivered"], 10_000, "{b}");
    assert_eq!(b["acknowledged"], 10_000, "{b}");
    assert_eq!(b["terminated"], 0, "{b}");
    assert_eq!(b["pending"], 0, "{b}");
    let metrics = server.send("GET", "/metrics", &[], None).text();
    for outcome in ["delivered", "acknowledged"] {
        let line = format!("sealog_nats_messages_total{{outcome=\"{outcome}\"}} 10000");
        assert!(metrics.contains(&line), "no {line:?} in /metrics");
    }
    assert!(metrics.contains("sealog_nats_pending 0"));
    server.stop();
    cli.assert_verifies();
}

#[test]
fn sealog_killed_mid_stream_loses_nothing_and_doubles_nothing() {
    let Some((nats, _tmp, cli)) = setup(true) else {
        return;
    };
    let publisher = Publisher::connect(&nats.url());
    let mut rng = Rng::new(0x0B05_0002);
    let mut all = BTreeSet::new();
    for round in 0..3 {
        // Small batches, so a kill lands between a commit and its acknowledgements.
        let server = serve(
            &cli,
            &nats,
            &["--nats-batch-max", "64", "--nats-ack-wait-s", "1"],
        );
        let (ids, messages) = with_duplicates(&mut rng, 1_500, &format!("k{round}"));
        all.extend(ids);
        publisher.publish_bodies("audit.t1.orders", &messages);
        let taken = 200 + rng.below(800);
        wait_for(120, "some messages to be acknowledged", || {
            (bus(&server)["acknowledged"].as_u64().unwrap_or(0) >= taken).then_some(())
        });
        drop(server); // SIGKILL
    }
    let server = serve(&cli, &nats, &["--nats-ack-wait-s", "1"]);
    drained(&publisher);
    exactly_once(&cli, &all);
    server.stop();
    cli.assert_verifies();
}

#[test]
fn the_consumer_resumes_by_itself_when_the_bus_restarts() {
    let Some((mut nats, _tmp, cli)) = setup(true) else {
        return;
    };
    let server = serve(&cli, &nats, &[]);
    let mut rng = Rng::new(0x0B05_0003);
    let (mut ids, messages) = with_duplicates(&mut rng, 300, "before");
    Publisher::connect(&nats.url()).publish_bodies("audit.t1.orders", &messages);
    drained(&Publisher::connect(&nats.url()));
    nats.stop();
    wait_for(60, "the consumer to report the bus lost", || {
        (bus(&server)["state"] == "disconnected").then_some(())
    });
    assert_eq!(
        server.send("GET", "/readyz", &[], None).status,
        200,
        "a bus that is down does not make the server unready"
    );
    nats.start_again();
    let (after, messages) = with_duplicates(&mut rng, 300, "after");
    ids.extend(after);
    let publisher = Publisher::connect(&nats.url());
    publisher.publish_bodies("audit.t1.orders", &messages);
    drained(&publisher);
    wait_for(60, "the consumer to report consuming", || {
        (bus(&server)["state"] == "consuming").then_some(())
    });
    exactly_once(&cli, &ids);
    server.stop();
}

#[test]
fn what_is_not_an_event_is_recorded_and_terminated() {
    let Some((nats, _tmp, cli)) = setup(true) else {
        return;
    };
    let server = serve(&cli, &nats, &["--nats-tenant-subject", "audit.<tenant>.>"]);
    let publisher = Publisher::connect(&nats.url());
    let good = events::event("fine", Some("t1"), "s", "bus.test");
    let oversized = events::event("big", Some("t1"), "s", "bus.test");
    let mut oversized = oversized;
    oversized["data"]["pad"] = json!("x".repeat((1 << 20) + 10));
    let poison: Vec<(&str, Vec<u8>)> = vec![
        ("not json", b"SECRET-PAYLOAD not json".to_vec()),
        ("not UTF-8", b"{\"SECRET-PAYLOAD\": \"\xff\"}".to_vec()),
        ("no envelope", br#"{"hello": "SECRET-PAYLOAD"}"#.to_vec()),
        ("an array", br#"[1, 2, "SECRET-PAYLOAD"]"#.to_vec()),
        ("a reserved type", {
            let mut e = events::event("r", Some("t1"), "s", "audit.access");
            e["data"]["n"] = json!("SECRET-PAYLOAD");
            body(&e)
        }),
        ("empty", Vec::new()),
        ("over 1 MiB", body(&oversized)),
    ];
    assert!(poison.iter().all(|(_, b)| b.len() < PAYLOAD_MAX));
    let mut messages: Vec<_> = poison
        .iter()
        .map(|(_, b)| ("audit.t1.orders".to_string(), Vec::new(), b.clone()))
        .collect();
    // An event on another tenant's subject, and on a subject that names no tenant.
    messages.push(("audit.t2.orders".into(), Vec::new(), body(&good)));
    messages.push(("audit.t1".into(), Vec::new(), body(&good)));
    // A binary-mode message whose headers are not CloudEvents attributes.
    messages.push((
        "audit.t1.orders".into(),
        vec![
            ("ce-specversion".into(), "1.0".into()),
            ("ce-Bad_Name".into(), "x".into()),
        ],
        b"{}".to_vec(),
    ));
    messages.push(("audit.t1.orders".into(), Vec::new(), body(&good)));
    publisher.publish_all(&messages);
    drained(&publisher);

    let state = publisher.consumer(STREAM, CONSUMER).unwrap();
    assert_eq!(
        state.redelivered, 0,
        "nothing is delivered again: {state:?}"
    );
    let b = counted(&server, |b| b["terminated"] == messages.len() - 1);
    assert_eq!(b["terminated"], messages.len() - 1, "{b}");
    assert_eq!(b["acknowledged"], 1, "{b}");
    let quarantine = cli
        .ok(&["quarantine", "--reason", "NOT_AN_EVENT"], b"")
        .lines();
    assert_eq!(quarantine.len(), poison.len() + 1, "{quarantine:?}");
    for q in &quarantine {
        let d = &q["data"]["delivery"];
        assert_eq!(d["transport"], "nats");
        assert_eq!(d["stream"], STREAM);
        assert!(d["payload_sha256"].as_str().unwrap().starts_with("sha256:"));
        assert!(d["payload_bytes"].is_u64());
        assert_eq!(q["data"]["payload_ref"], Value::Null);
    }
    assert!(
        quarantine.iter().any(|q| q["data"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("ce-Bad_Name"))),
        "the bad header is named: {quarantine:?}"
    );
    let sizes: BTreeSet<u64> = quarantine
        .iter()
        .map(|q| q["data"]["delivery"]["payload_bytes"].as_u64().unwrap())
        .collect();
    for (what, b) in &poison {
        assert!(
            sizes.contains(&(b.len() as u64)),
            "{what}: no record of its size"
        );
    }
    let mismatched = cli
        .ok(&["quarantine", "--reason", "TENANT_MISMATCH"], b"")
        .lines();
    assert_eq!(mismatched.len(), 2, "{mismatched:?}");
    assert_eq!(counts(&cli).keys().collect::<Vec<_>>(), ["fine"]);
    server.stop();
    let holding = sealog_testkit::files::files_holding(&cli.dir, "SECRET-PAYLOAD");
    assert!(
        holding.is_empty(),
        "payloads that were not events, in {holding:?}"
    );
    cli.assert_verifies();
}

/// A decision record (decision-log pack) for decision `d`.
fn decision(d: &str) -> Value {
    let mut e = events::example("decision-log.audit_decision_record");
    e["id"] = json!(d);
    e["subject"] = json!(d);
    for k in ["decision_id", "request_id", "event_id"] {
        e["data"][k] = json!(d);
    }
    e
}

#[test]
fn binary_mode_messages_and_their_http_twins_are_one_record() {
    let Some((nats, _tmp, cli)) = setup(false) else {
        return;
    };
    let server = serve(&cli, &nats, &[]);
    let publisher = Publisher::connect(&nats.url());
    let event = decision("bin-1");
    let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
    for (k, v) in event.as_object().unwrap() {
        match (k.as_str(), v) {
            ("data", _) => {}
            ("actor", a) => {
                headers.push(("ce-actortype".into(), a["type"].as_str().unwrap().into()));
                headers.push(("ce-actorid".into(), a["id"].as_str().unwrap().into()));
            }
            (k, Value::String(s)) => headers.push((format!("ce-{k}"), s.clone())),
            (k, other) => panic!("{k}: {other} has no header form"),
        }
    }
    publisher.publish_all(&[("audit.decisions".into(), headers, body(&event["data"]))]);
    drained(&publisher);
    let twin = server.send(
        "POST",
        "/v1/events",
        &[("content-type", "application/json")],
        Some(&body(&event)),
    );
    assert_eq!(twin.status, 200, "{}", twin.text());
    let result = &twin.json()["results"][0];
    assert_eq!(result["status"], "duplicate", "{result}");
    assert_eq!(counts(&cli).get("bin-1"), Some(&1));
    server.stop();
}

#[test]
fn a_correction_before_its_target_waits_for_it_and_an_orphan_is_quarantined() {
    let Some((nats, tmp, cli)) = setup(false) else {
        return;
    };
    // The target's record id, from a log of its own.
    let scratch = Cli::new(env!("CARGO_BIN_EXE_sealog"), &tmp.path().join("scratch"));
    let target = decision("d-1");
    let target_id = scratch.ok(&["append", "-"], &body(&target)).json()["record_id"].clone();
    let mut correction = decision("d-1");
    correction["data"]["decision"]["decision_outcome"] = json!("DECLINE");
    correction["supersedes"] = target_id.clone();
    correction["reason"] = json!("re-scored");
    let mut orphan = correction.clone();
    orphan["id"] = json!("orphan");
    orphan["supersedes"] = json!(format!("sha256:{}", "ab".repeat(32)));

    let server = serve(&cli, &nats, &["--nats-deliveries-max", "3"]);
    let publisher = Publisher::connect(&nats.url());
    publisher.publish_bodies("audit.decisions", &[body(&correction), body(&orphan)]);
    wait_for(60, "the correction to be deferred", || {
        (bus(&server)["deferred"].as_u64().unwrap_or(0) >= 2).then_some(())
    });
    publisher.publish_bodies("audit.decisions", &[body(&target)]);
    drained(&publisher);
    let records: Vec<Value> = cli
        .all_records()
        .into_iter()
        .filter(|r| r["type"] == "decision-log.audit_decision_record")
        .collect();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0]["record_id"], target_id, "the target first");
    assert_eq!(records[1]["supersedes"], target_id, "then its correction");
    let q = cli
        .ok(&["quarantine", "--reason", "INVALID_SUPERSEDES_LINK"], b"")
        .lines();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0]["id"], "orphan");
    let b = counted(&server, |b| b["acknowledged"] == 3);
    assert!(b["redelivered"].as_u64().unwrap() >= 3, "{b}");
    assert_eq!(b["acknowledged"], 3, "{b}");
    server.stop();
}
