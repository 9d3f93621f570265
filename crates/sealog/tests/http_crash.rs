//! SIGKILL the server while many clients append single events: every record the server
//! acknowledged is on disk afterwards at the seq it was given, the log verifies, and the
//! server restarts on the same directory and takes appends again. Trials continue in one
//! directory, so each recovery also recovers from the previous one.

mod http_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_support::*;

const TRIALS: usize = 3;
const CLIENTS: usize = 12;

/// One append on its own connection; `None` once the server is gone.
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

#[test]
fn sigkill_during_concurrent_appends_loses_nothing_acknowledged() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let mut rng = Rng(rand_u64());
    let mut acked_total: Vec<(u64, String)> = Vec::new();
    for trial in 0..TRIALS {
        let srv = Server::start(&data);
        let addr = srv.addr;
        let acked = Arc::new(Mutex::new(Vec::new()));
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
                        let v = &r.json()["results"][0];
                        acked.lock().unwrap().push((
                            v["seq"].as_u64().unwrap(),
                            v["record_id"].as_str().unwrap().to_string(),
                        ));
                    }
                })
            })
            .collect();
        let kill_after = 50 + rng.below(300) as usize;
        while acked.lock().unwrap().len() < kill_after {
            std::thread::sleep(Duration::from_millis(1));
        }
        signal(srv.child.id() as i32, libc::SIGKILL);
        gone.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
        drop(srv);
        acked_total.extend(acked.lock().unwrap().iter().cloned());

        let records = all_records(&data);
        for (seq, rid) in &acked_total {
            let r = records
                .get(*seq as usize)
                .unwrap_or_else(|| panic!("trial {trial}: acknowledged seq {seq} is missing"));
            assert_eq!(
                r["record_id"].as_str().unwrap(),
                rid,
                "trial {trial}: seq {seq}"
            );
        }
        assert_verifies(&data);
    }
    let srv = Server::start(&data);
    let r = srv.post_json("/v1/events", None, &event("after", Some("t"), "s", "t"));
    assert_eq!(r.json()["results"][0]["status"], "appended");
    srv.stop();
}
