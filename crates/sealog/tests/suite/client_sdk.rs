//! The Rust client against real `sealog serve` processes: emission never waits for the
//! network (a server stalled with SIGSTOP), survives a SIGKILL and a restart through its
//! spool with every event in the log exactly once and in emission order, retries once and
//! then spools on 5xx / 429 / 503, skips in replay mode, fails closed when asked, steps over
//! a damaged spool frame, and catches a server that forks its log.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sealog_client::{Ack, Client, Config, Emitter, Error, LogVerifier, SpoolSync};
use sealog_testkit::proxy::{FaultProxy, Mode};
use sealog_testkit::{Cli, ServerProcess};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(120);

fn cli(dir: &Path) -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_sealog"), dir).accepting_undeclared()
}

/// `sealog serve` on `listen` (`127.0.0.1:0` for any port).
fn serve(c: &Cli, listen: &str) -> ServerProcess {
    ServerProcess::spawn(c.command(&["serve", "--listen", listen]), &c.dir)
}

fn config(url: &str, key: &str, spool: &Path) -> Config {
    let mut c = Config::new(url, Some(key), spool);
    c.request_timeout = Duration::from_secs(2);
    c.backoff_max = Duration::from_millis(500);
    c
}

fn event(id: &str) -> Value {
    sealog_testkit::events::event(id, None, &format!("s-{id}"), "test.sdk")
}

/// Polls `f` until it holds or the deadline passes.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !f() {
        assert!(Instant::now() < end, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Each event id in the log, with the seqs it was appended at.
fn seqs_by_id(c: &Cli) -> HashMap<String, Vec<u64>> {
    let mut out: HashMap<String, Vec<u64>> = HashMap::new();
    for r in producers_records(c) {
        if let (Some(id), Some(seq)) = (r["id"].as_str(), r["seq"].as_u64()) {
            out.entry(id.to_string()).or_default().push(seq);
        }
    }
    out
}

/// The records of producers: not Sealog's own (`audit.*`: keys, access).
fn producers_records(c: &Cli) -> Vec<Value> {
    c.all_records()
        .into_iter()
        .filter(|r| !r["type"].as_str().is_some_and(|t| t.starts_with("audit.")))
        .collect()
}

/// An address nothing listens on.
fn dead_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

fn writer_key(c: &Cli) -> String {
    c.create_key(&["writer"], None, None).0
}

/// A fresh data directory (undeclared types accepted) and a writer key for it.
fn log_with_writer() -> (tempfile::TempDir, Cli, String) {
    let tmp = tempfile::tempdir().unwrap();
    let c = cli(&tmp.path().join("data"));
    let key = writer_key(&c);
    (tmp, c, key)
}

/// An emitter with the tests' configuration.
fn start_emitter(url: &str, key: &str, spool: &Path) -> Emitter {
    Emitter::new(config(url, key, spool)).unwrap()
}

fn http_client(url: &str, key: &str) -> Client {
    Client::new(url, Some(key), Some(Duration::from_secs(30))).unwrap()
}

#[test]
fn a_stalled_then_killed_server_blocks_no_emit_and_loses_no_event() {
    let (tmp, c, key) = log_with_writer();
    let server = serve(&c, "127.0.0.1:0");
    let addr: SocketAddr = server.addr;
    let mut cfg = config(&server.url(), &key, &tmp.path().join("spool"));
    cfg.queue_capacity = 500;
    cfg.batch_max_events = 200;
    cfg.spool_sync = SpoolSync::Os;
    let emitter = Arc::new(Emitter::new(cfg).unwrap());

    // 8 threads emit 10,000 events; a third of the way in, the server stops answering
    // (SIGSTOP: connections are accepted by the kernel, no response ever comes).
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 1_250;
    let emitted = Arc::new(AtomicU64::new(0));
    let stalled = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (e, emitted, stalled) = (emitter.clone(), emitted.clone(), stalled.clone());
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    if i == PER_THREAD / 3 {
                        // Wait until the server is frozen, so the rest is emitted against it.
                        while stalled.load(Ordering::SeqCst) == 0 {
                            std::thread::yield_now();
                        }
                    }
                    e.emit(event(&format!("t{t}-{i:05}")));
                    emitted.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    eventually("a third of the events emitted", || {
        emitted.load(Ordering::SeqCst) >= THREADS * (PER_THREAD / 3)
    });
    sealog_testkit::cli::signal(server.child.id(), libc::SIGSTOP);
    stalled.store(1, Ordering::SeqCst);
    // Every emit call returns while the server is still frozen: none waited for it.
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(emitter.stats().emitted, THREADS * PER_THREAD);
    eventually("events reach the spool", || emitter.stats().spooled > 0);

    // The frozen server is killed outright, then started again on the same address.
    let mut server = server;
    sealog_testkit::cli::signal(server.child.id(), libc::SIGKILL);
    let _ = server.child.wait();
    drop(server);
    let server = serve(&c, &addr.to_string());
    assert!(
        emitter.flush(DEADLINE),
        "the spool drains: {:?}",
        emitter.stats()
    );
    let stats = emitter.close(DEADLINE);
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(stats.spool_pending, 0, "{stats:?}");
    assert!(stats.replayed > 0 && stats.failures > 0, "{stats:?}");
    server.stop();

    // Every event is in the log exactly once, and each thread's in the order it emitted.
    let seqs = seqs_by_id(&c);
    for t in 0..THREADS {
        let mut last = None;
        for i in 0..PER_THREAD {
            let id = format!("t{t}-{i:05}");
            let s = seqs.get(&id).unwrap_or_else(|| panic!("{id} is missing"));
            assert_eq!(s.len(), 1, "{id} appended {} times", s.len());
            assert!(
                last < Some(s[0]),
                "{id} overtook an older event of its thread"
            );
            last = Some(s[0]);
        }
    }
    assert_eq!(seqs.len() as u64, THREADS * PER_THREAD);
    c.assert_verifies();
}

#[test]
fn server_errors_and_throttling_get_one_retry_then_the_spool() {
    let (tmp, c, key) = log_with_writer();
    let server = serve(&c, "127.0.0.1:0");
    for (k, status) in [500u16, 503, 429].into_iter().enumerate() {
        let proxy = FaultProxy::start(server.addr, Mode::Answer(status));
        let mut cfg = config(&proxy.url(), &key, &tmp.path().join(format!("spool-{k}")));
        cfg.backoff_max = Duration::from_secs(3600);
        // The ten events go as one batch however the threads are scheduled: the tenth
        // fills it and wakes the sender, which otherwise lingers.
        cfg.batch_max_events = 10;
        cfg.linger = Duration::from_secs(60);
        let emitter = Emitter::new(cfg).unwrap();
        for i in 0..10 {
            emitter.emit(event(&format!("r{status}-{i}")));
        }
        eventually("the batch is spooled", || emitter.stats().spooled == 10);
        // The events wait in clear: the owner's alone.
        let dir = tmp.path().join(format!("spool-{k}"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        for f in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.starts_with("spool-") || name == "LOCK" {
                assert_eq!(mode(&f.path()), 0o600, "{name}");
            }
        }
        let s = emitter.stats();
        // One attempt and exactly one retry of the same 10 events, then the spool.
        assert_eq!(
            (s.retried, s.failures, s.acknowledged),
            (10, 2, 0),
            "{status}: {s:?}"
        );
        assert!(proxy.requests() >= 2, "{status}");
        assert!(s.failure_rate() > 0.99, "{status}: {s:?}");
        // The server answers again: a new emitter on the spool replays it.
        drop(emitter);
        proxy.set(Mode::Forward);
        let emitter = start_emitter(&proxy.url(), &key, &tmp.path().join(format!("spool-{k}")));
        assert!(emitter.flush(DEADLINE), "{status}: {:?}", emitter.stats());
        let s = emitter.close(DEADLINE);
        assert_eq!((s.replayed, s.appended), (10, 10), "{status}: {s:?}");
    }
    server.stop();
    let seqs = seqs_by_id(&c);
    assert_eq!(seqs.len(), 30);
    assert!(seqs.values().all(|s| s.len() == 1));
}

/// A 200 whose results are not what the API promises is no answer: its events are sent
/// again, then spooled, never counted as refused and dropped.
#[test]
fn an_answer_with_malformed_results_is_a_failed_request_and_loses_no_event() {
    let (tmp, c, key) = log_with_writer();
    let server = serve(&c, "127.0.0.1:0");
    let bodies = [
        r#"{"results":[null]}"#,
        r#"{"results":[1]}"#,
        r#"{"results":[{"status":"appended"}]}"#,
        r#"{"results":[{"status":"rejected"}]}"#,
        r#"{"results":[{"status":"deferred"}]}"#,
    ];
    for (k, body) in bodies.into_iter().enumerate() {
        let proxy = FaultProxy::start(
            server.addr,
            Mode::Paths(vec![("POST /v1/events".into(), 200, body.into())]),
        );
        let spool = tmp.path().join(format!("spool-malformed-{k}"));
        let mut cfg = config(&proxy.url(), &key, &spool);
        cfg.backoff_max = Duration::from_secs(3600);
        cfg.batch_max_events = 1;
        let emitter = Emitter::new(cfg).unwrap();
        emitter.emit(event(&format!("malformed-{k}")));
        eventually("the event is spooled", || emitter.stats().spooled == 1);
        let s = emitter.stats();
        assert_eq!(
            (s.failures, s.acknowledged, s.rejected),
            (2, 0, 0),
            "{body}: {s:?}"
        );
        drop(emitter);
        proxy.set(Mode::Forward);
        let emitter = start_emitter(&proxy.url(), &key, &spool);
        assert!(emitter.flush(DEADLINE), "{body}: {:?}", emitter.stats());
        let s = emitter.close(DEADLINE);
        assert_eq!((s.replayed, s.appended), (1, 1), "{body}: {s:?}");
    }
    server.stop();
    let seqs = seqs_by_id(&c);
    assert_eq!(seqs.len(), bodies.len());
    assert!(seqs.values().all(|s| s.len() == 1));
}

#[test]
fn a_dropped_emitter_frees_its_spool_even_with_its_sender_stuck_in_a_request() {
    let (tmp, c, key) = log_with_writer();
    // A server that takes connections (the kernel's backlog) and never answers one.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let spool = tmp.path().join("spool");
    let mut cfg = config(
        &format!("http://{}", silent.local_addr().unwrap()),
        &key,
        &spool,
    );
    cfg.request_timeout = Duration::from_secs(3600);
    cfg.batch_max_events = 3;
    let emitter = Emitter::new(cfg).unwrap();
    for i in 0..3 {
        emitter.emit(event(&format!("stuck-{i}")));
    }
    eventually("the batch is in flight", || emitter.stats().requests == 1);
    // The sender cannot stop within the drop's grace: it is left behind in its request, and
    // its events go to the spool.
    drop(emitter);

    let server = serve(&c, "127.0.0.1:0");
    let emitter = start_emitter(&server.url(), &key, &spool);
    assert!(emitter.flush(DEADLINE), "{:?}", emitter.stats());
    let s = emitter.close(DEADLINE);
    assert_eq!((s.replayed, s.appended), (3, 3), "{s:?}");
    server.stop();
    drop(silent);
    let seqs = seqs_by_id(&c);
    assert_eq!(seqs.len(), 3);
    assert!(seqs.values().all(|s| s.len() == 1));
}

#[test]
fn c4_ac_a5_replay_mode_sends_nothing() {
    let (tmp, c, key) = log_with_writer();
    let server = serve(&c, "127.0.0.1:0");
    let proxy = FaultProxy::start(server.addr, Mode::Forward);
    let mut cfg = config(&proxy.url(), &key, &tmp.path().join("spool"));
    cfg.emit_traces = false;
    let emitter = Emitter::new(cfg).unwrap();
    for i in 0..100 {
        emitter.emit(sealog_testkit::events::example("coordination.decision"));
        emitter.emit(event(&format!("replayed-{i}")));
    }
    let durable = emitter
        .emit_durable(event("replayed-durable"))
        .wait(DEADLINE);
    assert_eq!(durable.unwrap(), Ack::Skipped);
    assert!(emitter.flush(DEADLINE));
    let s = emitter.close(DEADLINE);
    assert_eq!(
        (s.skipped, s.emitted, s.sent, s.requests),
        (201, 0, 0, 0),
        "{s:?}"
    );
    assert_eq!(proxy.requests(), 0);
    server.stop();
    assert!(seqs_by_id(&c).is_empty(), "nothing was appended");
}

#[test]
fn emit_durable_fails_closed_and_verifies_what_it_wrote() {
    let (tmp, c, key) = log_with_writer();

    // The server is down: an error, and nothing claimed (not spooled either).
    let emitter = start_emitter(&dead_url(), &key, &tmp.path().join("spool-down"));
    let err = emitter.emit_durable(event("must-not-pass")).wait(DEADLINE);
    assert!(matches!(err, Err(Error::Unavailable(_))), "{err:?}");
    let s = emitter.close(Duration::from_secs(5));
    assert_eq!(
        (s.durable_failed, s.acknowledged, s.spooled),
        (1, 0, 0),
        "{s:?}"
    );

    // The server is up: the durable answer, then the writer key proves its record.
    let server = serve(&c, "127.0.0.1:0");
    let emitter = start_emitter(&server.url(), &key, &tmp.path().join("spool-up"));
    emitter.emit(event("first"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ack = rt.block_on(emitter.emit_durable(event("durable"))).unwrap();
    let Ack::Appended { seq, record_id } = ack else {
        panic!("{ack:?}")
    };
    let mut incomplete = sealog_testkit::events::example("decision-log.audit_decision_record");
    incomplete["data"]["features"]
        .as_object_mut()
        .unwrap()
        .remove("feature_snapshot_hash");
    let quarantined = emitter.emit_durable(incomplete).wait(DEADLINE).unwrap();
    assert!(
        matches!(quarantined, Ack::Quarantined { .. }),
        "{quarantined:?}"
    );
    // An event the server will never take is an error for the durable caller.
    let refused = emitter
        .emit_durable(json!({"type": "no envelope"}))
        .wait(DEADLINE);
    assert!(
        matches!(refused, Err(Error::Rejected { .. })),
        "{refused:?}"
    );
    let client = http_client(&server.url(), &key);
    let vkey = client.text("/checkpoint/key").unwrap();
    let verifier = LogVerifier::new(client.clone(), vkey.trim(), None).unwrap();
    let proved = verifier.verify_inclusion(&record_id).unwrap();
    assert_eq!(
        (proved.seq, proved.record_id.as_str()),
        (seq, record_id.as_str())
    );
    // A writer names its records by record_id; by seq it may not walk the log.
    let by_seq = client.get("/v1/proofs/inclusion?seq=0").unwrap();
    assert_eq!(by_seq.status, 403, "{}", by_seq.message());
    let unknown = verifier.verify_inclusion(&format!("sha256:{}", "0".repeat(64)));
    assert!(
        matches!(unknown, Err(Error::Status { status: 404, .. })),
        "{unknown:?}"
    );
    emitter.close(DEADLINE);
    server.stop();
    let seqs = seqs_by_id(&c);
    assert!(
        seqs["first"][0] < seqs["durable"][0],
        "sent after what was emitted before it"
    );
}

#[test]
fn a_damaged_spool_frame_is_skipped_and_reported_and_the_rest_replayed() {
    let (tmp, c, key) = log_with_writer();
    let spool = tmp.path().join("spool");
    let emitter = start_emitter(&dead_url(), &key, &spool);
    for i in 0..20 {
        emitter.emit(event(&format!("d-{i:02}")));
    }
    let s = emitter.close(Duration::from_secs(1));
    assert_eq!(s.spooled, 20, "{s:?}");
    drop(emitter);
    // Flip one byte inside the sixth frame's event.
    let file = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "sls"))
        .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let starts: Vec<usize> = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"SLS1")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len(), 20);
    bytes[starts[5] + 40] ^= 0x01;
    std::fs::write(&file, bytes).unwrap();

    let server = serve(&c, "127.0.0.1:0");
    let emitter = start_emitter(&server.url(), &key, &spool);
    assert!(emitter.flush(DEADLINE));
    let s = emitter.close(DEADLINE);
    assert_eq!((s.spool_damaged, s.replayed), (1, 19), "{s:?}");
    server.stop();
    let seqs = seqs_by_id(&c);
    assert_eq!(seqs.len(), 19);
    assert!(!seqs.contains_key("d-05"));
}

#[test]
fn a_correction_spooled_with_its_target_never_overtakes_it() {
    let (tmp, c, key) = log_with_writer();
    let spool = tmp.path().join("spool");
    let server = serve(&c, "127.0.0.1:0");
    let proxy = FaultProxy::start(server.addr, Mode::Answer(503));
    let mut cfg = config(&proxy.url(), &key, &spool);
    // A queue of two: the third event overflows to the spool while the first batch is
    // still being retried, and the failed batch is spooled after it.
    cfg.queue_capacity = 2;
    cfg.linger = Duration::from_millis(50);
    let emitter = Emitter::new(cfg).unwrap();
    let mut chain = Vec::new();
    let mut target: Option<String> = None;
    for i in 0..6 {
        let mut e =
            sealog_testkit::events::event(&format!("v{i}"), None, "one-subject", "test.sdk");
        if let Some(t) = &target {
            e["supersedes"] = json!(t);
        }
        let mut canonical = Vec::new();
        sealog_model::jcs::write_value(&e, &mut canonical).unwrap();
        let id = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&canonical))
        );
        target = Some(id.clone());
        chain.push(id);
        emitter.emit(e);
    }
    eventually("all spooled", || emitter.stats().spooled == 6);
    proxy.set(Mode::Forward);
    assert!(emitter.flush(DEADLINE), "{:?}", emitter.stats());
    let s = emitter.close(DEADLINE);
    assert_eq!((s.appended, s.quarantined), (6, 0), "{s:?}");
    server.stop();
    let records = producers_records(&c);
    let ids: Vec<&str> = records
        .iter()
        .filter_map(|r| r["record_id"].as_str())
        .collect();
    assert_eq!(ids, chain.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn a_server_that_forks_its_log_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let a = cli(&tmp.path().join("a"));
    let key = writer_key(&a);
    let first: Vec<Value> = (0..5).map(|i| event(&format!("common-{i}"))).collect();
    a.ok(&["append", "-"], &sealog_testkit::events::ndjson(&first));
    // The operator copies the data directory (key included) and serves two histories.
    let b = cli(&tmp.path().join("b"));
    let copied = std::process::Command::new("cp")
        .args(["-a", a.dir.to_str().unwrap(), b.dir.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(copied.success());
    let only = |tag: &str, n: usize| -> Vec<u8> {
        sealog_testkit::events::ndjson(
            &(0..n)
                .map(|i| event(&format!("{tag}-{i}")))
                .collect::<Vec<_>>(),
        )
    };
    a.ok(&["append", "-"], &only("a", 3));
    b.ok(&["append", "-"], &only("b", 3));
    let (sa, sb) = (serve(&a, "127.0.0.1:0"), serve(&b, "127.0.0.1:0"));
    let client_a = http_client(&sa.url(), &key);
    let client_b = http_client(&sb.url(), &key);
    let vkey = client_a.text("/checkpoint/key").unwrap();
    assert_eq!(
        vkey,
        client_b.text("/checkpoint/key").unwrap(),
        "one key, two logs"
    );

    // A client that saw A's log is shown B's checkpoint of the same size.
    let state = tmp.path().join("trusted-checkpoint");
    let va = LogVerifier::new(client_a, vkey.trim(), Some(&state)).unwrap();
    let trusted = va.refresh().unwrap();
    let trusted_size = trusted.size;
    let note_b = client_b.text("/checkpoint").unwrap();
    let err = va.accept(&note_b).unwrap_err();
    assert!(matches!(err, Error::Inconsistent(_)), "{err}");

    // B grows; a client that remembers A's checkpoint asks B for a consistency proof.
    drop(sb);
    b.ok(&["append", "-"], &only("b-more", 2));
    let sb = serve(&b, "127.0.0.1:0");
    let client_b = http_client(&sb.url(), &key);
    let vb = LogVerifier::new(client_b, vkey.trim(), Some(&state)).unwrap();
    assert_eq!(
        vb.trusted(),
        Some(trusted.clone()),
        "the saved checkpoint is read back"
    );
    let err = vb.refresh().unwrap_err();
    assert!(matches!(err, Error::Inconsistent(_)), "{err}");
    assert_eq!(
        vb.trusted(),
        Some(trusted),
        "nothing inconsistent is remembered"
    );

    // A's own growth is accepted.
    drop(sa);
    a.ok(&["append", "-"], &only("a-more", 2));
    let sa = serve(&a, "127.0.0.1:0");
    let client_a = http_client(&sa.url(), &key);
    let va = LogVerifier::new(client_a, vkey.trim(), Some(&state)).unwrap();
    assert_eq!(va.refresh().unwrap().size, trusted_size + 2);
    sa.stop();
    sb.stop();
}

/// Customer-comms seed, CM-2.5 §9: "Audit failures never block core flows". The linking
/// flow runs while the audit server is away; every call returns, and the audit trail
/// arrives, in order, once the server is back.
#[test]
fn cm_2_5_audit_failures_never_block_core_flows() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Cli::new(env!("CARGO_BIN_EXE_sealog"), &tmp.path().join("data"));
    let key = writer_key(&c);
    let server = serve(&c, "127.0.0.1:0");
    let proxy = FaultProxy::start(server.addr, Mode::Answer(503));
    let emitter = start_emitter(&proxy.url(), &key, &tmp.path().join("spool"));
    let flow: Vec<Value> = sealog_testkit::events::examples()
        .into_iter()
        .filter(|e| {
            e["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("conversation."))
        })
        .collect();
    assert!(flow.len() >= 3);
    let mut linked = 0;
    for e in &flow {
        emitter.emit(e);
        linked += 1; // the core flow goes on
    }
    assert_eq!(linked, flow.len());
    eventually("the failure is counted", || emitter.stats().failures >= 2);
    proxy.set(Mode::Forward);
    assert!(emitter.flush(DEADLINE));
    let s = emitter.close(DEADLINE);
    assert_eq!(s.appended as usize, flow.len(), "{s:?}");
    server.stop();
    let types: Vec<String> = producers_records(&c)
        .iter()
        .map(|r| r["type"].as_str().unwrap().to_string())
        .collect();
    let sent: Vec<String> = flow
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(types, sent);
}

/// Coordination seed, C4 AC-A6: "Audit failure non-blocking — mock failure, verify
/// coordination continues". Here the failure is real: the server is gone.
#[test]
fn c4_ac_a6_audit_failure_is_non_blocking() {
    let tmp = tempfile::tempdir().unwrap();
    let emitter = start_emitter(&dead_url(), "k", &tmp.path().join("spool"));
    let decision = sealog_testkit::events::example("coordination.decision");
    let mut decisions = 0;
    for i in 0..1_000 {
        let mut d = decision.clone();
        d["id"] = json!(format!("c4-{i}"));
        emitter.emit(d);
        decisions += 1;
    }
    assert_eq!(decisions, 1_000);
    eventually("the failure is counted", || {
        let s = emitter.stats();
        s.failures >= 2 && s.spooled == 1_000
    });
    let s = emitter.close(Duration::from_secs(1));
    assert!(s.failure_rate() > 0.01, "alert threshold crossed: {s:?}");
    assert_eq!(s.dropped, 0);
}

/// The server side of the pipelined sender: `Sealog-Stream: ID/n` commits request n after
/// request n − 1 whatever order they arrive in, and a failed request fails the rest of its
/// stream with nothing committed.
#[test]
fn an_ordered_stream_commits_in_the_order_it_names() {
    let tmp = tempfile::tempdir().unwrap();
    let c = cli(&tmp.path().join("data"));
    let server = serve(&c, "127.0.0.1:0");
    let addr = server.addr;
    let post = move |place: &str, ids: &[&str], ct: &str| {
        let body =
            sealog_testkit::events::ndjson(&ids.iter().map(|i| event(i)).collect::<Vec<_>>());
        sealog_testkit::http::request(
            addr,
            "POST",
            "/v1/events",
            &[
                ("Content-Type".into(), ct.into()),
                ("Sealog-Stream".into(), place.into()),
            ],
            Some(&body),
        )
    };
    // The second request is sent first; it waits for the first.
    let second =
        std::thread::spawn(move || post("s1/2", &["second-a", "second-b"], "application/x-ndjson"));
    let first = post("s1/1", &["first-a", "first-b"], "application/x-ndjson");
    assert_eq!(first.status, 200, "{}", first.text());
    let second = second.join().unwrap();
    assert_eq!(second.status, 200, "{}", second.text());
    // A request refused before its turn fails those after it: nothing of theirs is committed.
    let refused = post("s2/1", &["never-1"], "text/plain");
    assert_eq!(refused.status, 415);
    let after = post("s2/2", &["never-2"], "application/x-ndjson");
    assert_eq!(
        (after.status, after.code()),
        (409, "STREAM_ORDER".to_string()),
        "{}",
        after.text()
    );
    let malformed = post("s3/0", &["never-3"], "application/x-ndjson");
    assert_eq!(
        (malformed.status, malformed.code()),
        (400, "BAD_STREAM".to_string())
    );
    server.stop();
    let seqs = seqs_by_id(&c);
    let at = |id: &str| seqs[id][0];
    assert!(
        at("first-a") < at("first-b")
            && at("first-b") < at("second-a")
            && at("second-a") < at("second-b")
    );
    assert!(!seqs.keys().any(|k| k.starts_with("never")), "{seqs:?}");
}
