//! The real `sealog serve` stopped while many clients append single events. SIGTERM drains:
//! every append it acknowledged is on disk and the log verifies. SIGKILL loses nothing
//! acknowledged either: every record the server acknowledged is on disk afterwards at the
//! seq it was given, the log verifies, and the server restarts on the same directory and
//! takes appends again. Kill trials continue in one directory, so each recovery also
//! recovers from the previous one.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sealog_testkit::Api;
use sealog_testkit::cli::signal;
use sealog_testkit::events::event;
use sealog_testkit::http::parse_response;
use sealog_testkit::{Cli, Resp, Rng, ServerProcess, tempdir, wait_for};

const TRIALS: usize = 3;
const CLIENTS: usize = 12;
const SEED: u64 = 97;

/// One append on its own connection; `None` once the server is gone (refused, reset or
/// closed without an answer), which the test kit's client treats as a failure.
fn append(addr: SocketAddr, body: &[u8]) -> Option<Resp> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    parse_response(&out)
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

#[test]
fn sigterm_drains_in_flight_appends_and_loses_nothing_acknowledged() {
    let dir = tempdir();
    let cli =
        Cli::new(env!("CARGO_BIN_EXE_sealog"), &dir.path().join("data")).accepting_undeclared();
    let srv = ServerProcess::start(&cli, &[]);
    let addr = srv.addr;
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (acked, stop) = (acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                // A few appends after the stop began, so some race the drain.
                while !stop.load(Ordering::Relaxed) || i < 5 {
                    let body = event(&format!("w{w}-{i}"), Some("t"), "s", "t").to_string();
                    let Some(r) = append(addr, body.as_bytes()) else {
                        return;
                    };
                    if r.status != 200 {
                        assert_eq!(
                            r.status,
                            503,
                            "only a stopping server may refuse: {}",
                            r.text()
                        );
                        return;
                    }
                    record(&acked, &r);
                    i += 1;
                }
            })
        })
        .collect();
    wait_for(60, "200 acknowledged appends", || {
        (acked.lock().expect("the acknowledged list").len() >= 200).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    srv.stop();
    for w in workers {
        w.join().expect("a worker");
    }
    assert_on_disk(
        &cli,
        &acked.lock().expect("the acknowledged list"),
        "after SIGTERM",
    );
}

#[test]
fn sigkill_during_concurrent_appends_loses_nothing_acknowledged() {
    let dir = tempdir();
    let cli =
        Cli::new(env!("CARGO_BIN_EXE_sealog"), &dir.path().join("data")).accepting_undeclared();
    let mut rng = Rng::new(SEED);
    let mut acked_total: Vec<(u64, String)> = Vec::new();
    for trial in 0..TRIALS {
        let srv = ServerProcess::start(&cli, &[]);
        let addr = srv.addr;
        let acked: Acked = Arc::default();
        let gone = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (acked, gone) = (acked.clone(), gone.clone());
                std::thread::spawn(move || {
                    for i in 0.. {
                        if gone.load(Ordering::Relaxed) {
                            return;
                        }
                        let body =
                            event(&format!("t{trial}-c{c}-{i}"), Some("t"), "s", "t").to_string();
                        let Some(r) = append(addr, body.as_bytes()) else {
                            return;
                        };
                        assert_eq!(r.status, 200, "{}", r.text());
                        record(&acked, &r);
                    }
                })
            })
            .collect();
        let kill_after = 50 + rng.below(300) as usize;
        wait_for(60, "acknowledged appends before the kill", || {
            (acked.lock().expect("the acknowledged list").len() >= kill_after).then_some(())
        });
        signal(srv.child.id(), libc::SIGKILL);
        gone.store(true, Ordering::Relaxed);
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
}
