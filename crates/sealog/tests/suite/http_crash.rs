//! The real `sealog serve` stopped while many clients append single events. SIGTERM drains:
//! every request the server had begun is answered (200, or 503 once it is stopping), every
//! append it acknowledged is on disk and the log verifies. SIGKILL loses nothing
//! acknowledged either: every record the server acknowledged is on disk afterwards at the
//! seq it was given, the log verifies, and the server restarts on the same directory and
//! takes appends again. Kill trials continue in one directory, so each recovery also
//! recovers from the previous one.
//!
//! A client never takes silence for an answer: a request that is neither answered nor cut
//! off within a bound fails the test, and so does a refusal or a cut-off connection before
//! the test stopped the server.
//!
//! `SEALOG_HTTP_CRASH_TRIALS` sets how many SIGKILL trials run (a fresh directory every
//! few), `SEALOG_HTTP_TERM_TRIALS` how many SIGTERM drains, and `SEALOG_HTTP_CRASH_SEED` the
//! seed of the kill points; `scripts/campaign` runs many of both.

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sealog_testkit::cli::signal;
use sealog_testkit::events::event;
use sealog_testkit::http::{parse_response, read_to_close};
use sealog_testkit::{Api, Cli, Resp, Rng, ServerProcess, tempdir, wait_for};

/// SIGKILL trials unless `SEALOG_HTTP_CRASH_TRIALS` says otherwise.
const TRIALS: usize = 3;
/// SIGKILL trials that share one data directory before a fresh one starts.
const TRIALS_PER_DIR: usize = 10;
const CLIENTS: usize = 12;
const SEED: u64 = 97;
/// How long one append may take to be answered or cut off: far beyond what it takes on a
/// loaded machine, so that only a hang reaches it.
const ANSWER_SECS_MAX: u64 = 60;

/// How one append on its own connection ended.
enum Outcome {
    /// The connection was refused: no listener, so nothing was sent.
    Refused,
    /// The request was sent (or sending it failed on a connection the server closed), and the
    /// server closed the connection without a whole answer.
    Cut,
    Answered(Resp),
}

/// One append on its own connection, with a bearer key if given.
fn append(addr: SocketAddr, key: Option<&str>, body: &[u8]) -> Outcome {
    let within = Duration::from_secs(ANSWER_SECS_MAX);
    let mut s = match TcpStream::connect_timeout(&addr, within) {
        Ok(s) => s,
        // Reset while connecting: the stopping server closed its listener with this
        // connection still in the kernel's queue; nothing was sent.
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
            ) =>
        {
            return Outcome::Refused;
        }
        Err(e) => panic!("connect to the server: {e}"),
    };
    let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: t\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // A write that fails means the server closed the connection; what it sent before, if
    // anything, is read below.
    let _ = s
        .write_all(head.as_bytes())
        .and_then(|()| s.write_all(body));
    let out = read_to_close(&mut s, within).unwrap_or_else(|e| panic!("an append: {e}"));
    match parse_response(&out) {
        Some(r) if whole(&r) => Outcome::Answered(r),
        _ => Outcome::Cut,
    }
}

/// Whether the body is as long as the response says.
fn whole(r: &Resp) -> bool {
    r.header("content-length")
        .and_then(|n| n.parse::<usize>().ok())
        .is_none_or(|n| r.body.len() == n)
}

/// (seq, record_id) of acknowledged appends.
type Acked = Arc<Mutex<Vec<(u64, String)>>>;

fn record(acked: &Acked, r: &Resp) {
    let v = &r.json()["results"][0];
    acked.lock().expect("the acknowledged list").push((
        v["seq"].as_u64().expect("a seq"),
        v["record_id"].as_str().expect("a record_id").to_string(),
    ));
}

/// Every acknowledged record is in the log, at the seq it was given.
fn assert_on_disk(cli: &Cli, acked: &[(u64, String)], when: &str) {
    let records = cli.all_records();
    for (seq, rid) in acked {
        let r = records
            .get(*seq as usize)
            .unwrap_or_else(|| panic!("{when}: acknowledged seq {seq} is missing"));
        assert_eq!(
            r["record_id"].as_str(),
            Some(rid.as_str()),
            "{when}: seq {seq}"
        );
    }
    cli.assert_verifies();
}

/// A POST whose body is held back after its first byte: the server has taken the key's
/// only in-flight slot for it and waits for the rest.
struct Held {
    stream: TcpStream,
    id: String,
    rest: Vec<u8>,
}

fn hold(addr: SocketAddr, key: &str, id: &str) -> Held {
    let body = event(id, Some("t"), "s", "t").to_string().into_bytes();
    let mut stream = TcpStream::connect(addr).expect("connect");
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("the head");
    stream.write_all(&body[..1]).expect("the first byte");
    Held {
        stream,
        id: id.to_string(),
        rest: body[1..].to_vec(),
    }
}

/// Whether the server has answered or closed `s` (without waiting).
fn ended(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).expect("non-blocking");
    let mut buf = [0u8; 64];
    let ended = !matches!(
        std::io::Read::read(s, &mut buf),
        Err(e) if e.kind() == ErrorKind::WouldBlock
    );
    s.set_nonblocking(false).expect("blocking");
    ended
}

/// A count from the environment variable `name`, or `default`.
fn count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn sigterm_drains_in_flight_appends_and_loses_nothing_acknowledged() {
    let trials = count("SEALOG_HTTP_TERM_TRIALS", 1);
    for trial in 0..trials {
        eprintln!("SIGTERM trial {trial} of {trials}");
        sigterm_trial();
    }
}

fn sigterm_trial() {
    const WORKERS: usize = 8;
    const HELD: usize = 3;
    let dir = tempdir();
    let cli =
        Cli::new(env!("CARGO_BIN_EXE_sealog"), &dir.path().join("data")).accepting_undeclared();
    // A key per client: with one in-flight slot per key, a second request of a held key is
    // refused (429) exactly while its held request is in flight. The long body timeout keeps
    // held requests waiting however slowly the test runs.
    let worker_keys: Vec<String> = (0..WORKERS)
        .map(|_| cli.create_key(&["writer"], None, None).0)
        .collect();
    let held_keys: Vec<String> = (0..HELD)
        .map(|_| cli.create_key(&["writer", "reader"], None, None).0)
        .collect();
    let srv = ServerProcess::start(
        &cli,
        &["--key-inflight-max", "1", "--body-timeout-s", "600"],
    );
    let addr = srv.addr;
    let acked: Acked = Arc::default();
    let stopping = Arc::new(AtomicBool::new(false));
    // Worker requests answered after the stop began, and ones cut off.
    let (after_stop, cut) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(Mutex::new(Vec::new())),
    );
    let workers: Vec<_> = worker_keys
        .into_iter()
        .enumerate()
        .map(|(w, key)| {
            let (acked, stopping) = (acked.clone(), stopping.clone());
            let (after_stop, cut) = (after_stop.clone(), cut.clone());
            std::thread::spawn(move || {
                // Appends go on after the stop began, until the server turns them away, so
                // that some race the drain.
                for i in 0.. {
                    let id = format!("w{w}-{i}");
                    let body = event(&id, Some("t"), "s", "t").to_string();
                    let outcome = append(addr, Some(&key), body.as_bytes());
                    let stopped = stopping.load(Ordering::SeqCst);
                    match outcome {
                        Outcome::Refused => {
                            assert!(stopped, "{id}: connection refused before the stop");
                            return;
                        }
                        Outcome::Cut => {
                            assert!(stopped, "{id}: cut off without an answer before the stop");
                            cut.lock().expect("the cut list").push(id);
                            return;
                        }
                        Outcome::Answered(r) if r.status == 200 => {
                            after_stop.fetch_add(usize::from(stopped), Ordering::SeqCst);
                            record(&acked, &r);
                        }
                        Outcome::Answered(r) => {
                            assert!(
                                stopped && r.status == 503,
                                "{id}: only a stopping server may refuse: {} {}",
                                r.status,
                                r.text()
                            );
                            after_stop.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    wait_for(120, "200 acknowledged appends", || {
        (acked.lock().expect("the acknowledged list").len() >= 200).then_some(())
    });

    // Requests certainly in flight when the stop begins: each holds its key's slot, which a
    // second request of the key, refused with 429, shows.
    let mut held: Vec<Held> = held_keys
        .iter()
        .enumerate()
        .map(|(h, key)| hold(addr, key, &format!("held-{h}")))
        .collect();
    for (h, key) in held_keys.iter().enumerate() {
        wait_for(60, "a held request to take its key's slot", || {
            let r = srv.get("/v1/records?limit=1", Some(key));
            if r.status == 429 {
                return Some(());
            }
            assert_eq!(r.status, 200, "{}", r.text());
            // The probe held the slot when the held request came, which was refused: again.
            if ended(&mut held[h].stream) {
                held[h] = hold(addr, key, &format!("held-{h}-again"));
            }
            None
        });
    }

    stopping.store(true, Ordering::SeqCst);
    signal(srv.child.id(), libc::SIGTERM);
    // The listener closes when the drain begins.
    wait_for(60, "the listener to close", || {
        TcpStream::connect(addr).is_err().then_some(())
    });
    let (mut held_answered, mut held_acked) = (0, Vec::new());
    for mut h in held {
        let _ = h.stream.write_all(&h.rest);
        let out = read_to_close(&mut h.stream, Duration::from_secs(ANSWER_SECS_MAX))
            .unwrap_or_else(|e| panic!("{}: {e}", h.id));
        let r = parse_response(&out)
            .filter(whole)
            .unwrap_or_else(|| panic!("{}: in flight at the stop, cut off unanswered", h.id));
        match r.status {
            200 => {
                record(&acked, &r);
                held_acked.push(h.id);
            }
            503 => {}
            other => panic!("{}: {other} {}", h.id, r.text()),
        }
        held_answered += 1;
    }
    assert_eq!(held_answered, HELD, "every held request raced the drain");
    let mut srv = srv;
    let status = srv.wait_exit(120);
    assert!(
        status.success(),
        "serve exited with {status}: {}",
        srv.log_text()
    );
    for w in workers {
        w.join().expect("a worker");
    }
    assert_on_disk(
        &cli,
        &acked.lock().expect("the acknowledged list"),
        "after SIGTERM",
    );
    // A request cut off during the stop was never begun (the connection was queued, or
    // accepted but not yet read, when the listener closed): the log must not hold it.
    let cut = cut.lock().expect("the cut list").clone();
    let stored: Vec<String> = cli
        .all_records()
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect();
    for id in &cut {
        assert!(
            !stored.contains(id),
            "{id} was stored, but its request was cut off without an answer"
        );
    }
    eprintln!(
        "SIGTERM: {HELD} held requests answered ({} with 200), {} worker answers after the \
         stop, {} worker requests cut off unbegun",
        held_acked.len(),
        after_stop.load(Ordering::SeqCst),
        cut.len()
    );
}

fn seed() -> u64 {
    std::env::var("SEALOG_HTTP_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SEED)
}

#[test]
fn sigkill_during_concurrent_appends_loses_nothing_acknowledged() {
    let seed = seed();
    let trials = count("SEALOG_HTTP_CRASH_TRIALS", TRIALS);
    eprintln!(
        "{trials} kill trials, kill points drawn from seed {seed}; replay with \
         SEALOG_HTTP_CRASH_SEED={seed} SEALOG_HTTP_CRASH_TRIALS={trials}"
    );
    let mut dir = tempdir();
    let mut cli =
        Cli::new(env!("CARGO_BIN_EXE_sealog"), &dir.path().join("data")).accepting_undeclared();
    let mut rng = Rng::new(seed);
    let mut acked_total: Vec<(u64, String)> = Vec::new();
    let mut kills = 0;
    for trial in 0..trials {
        if trial > 0 && trial % TRIALS_PER_DIR == 0 {
            let srv = ServerProcess::start(&cli, &[]);
            let r = srv.post_json("/v1/events", None, &event("after", Some("t"), "s", "t"));
            assert_eq!(r.json()["results"][0]["status"], "appended");
            srv.stop();
            dir = tempdir();
            cli = Cli::new(env!("CARGO_BIN_EXE_sealog"), &dir.path().join("data"))
                .accepting_undeclared();
            acked_total.clear();
        }
        let srv = ServerProcess::start(&cli, &[]);
        let addr = srv.addr;
        let acked: Acked = Arc::default();
        let gone = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (acked, gone) = (acked.clone(), gone.clone());
                std::thread::spawn(move || {
                    for i in 0.. {
                        if gone.load(Ordering::SeqCst) {
                            return;
                        }
                        let id = format!("t{trial}-c{c}-{i}");
                        let body = event(&id, Some("t"), "s", "t").to_string();
                        match append(addr, None, body.as_bytes()) {
                            Outcome::Answered(r) => {
                                assert_eq!(r.status, 200, "{id}: {}", r.text());
                                record(&acked, &r);
                            }
                            // The kill closes the listener and every connection.
                            Outcome::Refused | Outcome::Cut => {
                                assert!(
                                    gone.load(Ordering::SeqCst),
                                    "{id}: refused or cut off before the kill"
                                );
                                return;
                            }
                        }
                    }
                })
            })
            .collect();
        let kill_after = 50 + rng.below(300) as usize;
        wait_for(120, "acknowledged appends before the kill", || {
            (acked.lock().expect("the acknowledged list").len() >= kill_after).then_some(())
        });
        gone.store(true, Ordering::SeqCst);
        signal(srv.child.id(), libc::SIGKILL);
        kills += 1;
        for c in clients {
            c.join().expect("a client");
        }
        drop(srv);
        acked_total.extend(acked.lock().expect("the acknowledged list").iter().cloned());
        assert_on_disk(&cli, &acked_total, &format!("trial {trial}"));
    }
    let srv = ServerProcess::start(&cli, &[]);
    let r = srv.post_json("/v1/events", None, &event("after", Some("t"), "s", "t"));
    assert_eq!(r.json()["results"][0]["status"], "appended");
    srv.stop();
    eprintln!(
        "SIGKILL: {kills} kills of sealog serve under {CLIENTS} clients, nothing acknowledged lost"
    );
}
