//! A fault-injecting HTTP proxy in front of a real server: it forwards each request, or
//! answers it with a chosen status instead, and counts what it saw. Clients under test meet
//! the failures a real deployment shows (a 503 from a load balancer, a 429, a 500), and the
//! real server behind it still decides everything it is asked.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does with the next requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Forward,
    /// Answer with this status and a JSON error body, forwarding nothing.
    Answer(u16),
    /// Answer requests whose request line contains a pattern with that pattern's status and
    /// body (the first pattern that matches), forwarding the others: a cache or a server
    /// that differs from the log behind it in a few paths.
    Paths(Vec<(String, u16, String)>),
}

pub struct FaultProxy {
    pub addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// A proxy on 127.0.0.1 in front of `upstream`, starting in `mode`.
    pub fn start(upstream: SocketAddr, mode: Mode) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(mode));
        let requests = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, r, s) = (mode.clone(), requests.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (m, r) = (m.clone(), r.clone());
                std::thread::spawn(move || serve(conn, upstream, &m, &r));
            }
        });
        FaultProxy {
            addr,
            mode,
            requests,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Requests seen so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

/// One message (a request or a response): its head and its `Content-Length` body, or `None`
/// when the connection ended first.
fn read_message(r: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).ok()? == 0 {
            return None;
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    head.extend_from_slice(&body);
    Some(head)
}

fn serve(conn: TcpStream, upstream: SocketAddr, mode: &Mutex<Mode>, requests: &AtomicU64) {
    let mut out = conn.try_clone().expect("clone the connection");
    let mut r = BufReader::new(conn);
    while let Some(request) = read_message(&mut r) {
        requests.fetch_add(1, Ordering::SeqCst);
        let current = mode.lock().unwrap().clone();
        let answer = match current {
            Mode::Answer(status) => {
                let body = format!(
                    r#"{{"error":{{"code":"INJECTED","message":"the proxy answers {status}"}}}}"#
                );
                format!(
                    "HTTP/1.1 {status} Injected\r\ncontent-type: application/json\r\nretry-after: 0\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            }
            Mode::Paths(paths) => {
                let line = request.split(|&b| b == b'\n').next().unwrap_or_default();
                let line = String::from_utf8_lossy(line);
                match paths.iter().find(|(p, _, _)| line.contains(p.as_str())) {
                    Some((_, status, body)) => format!(
                        "HTTP/1.1 {status} Injected\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .into_bytes(),
                    None => match forward(upstream, &request) {
                        Some(a) => a,
                        None => return,
                    },
                }
            }
            Mode::Forward => match forward(upstream, &request) {
                Some(a) => a,
                None => return,
            },
        };
        if out.write_all(&answer).is_err() {
            return;
        }
    }
}

/// Sends the request on a connection of its own and returns the whole response.
fn forward(upstream: SocketAddr, request: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(upstream).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(120))).ok()?;
    s.write_all(request).ok()?;
    read_message(&mut BufReader::new(s))
}
