//! The real `sealog serve` process on 127.0.0.1 with a random port, and a raw HTTP/1.1
//! client, so malformed requests can be sent as bytes.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::{Cli, signal};

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The error code of an error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

/// Sealog's HTTP API as a test talks to it, in process ([`crate::InProcess`]) or over a
/// socket ([`ServerProcess`]): one required method, the conveniences on top.
pub trait Api {
    /// One request with these headers and body.
    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>)
    -> Resp;

    /// One request with a bearer key and a body of a content type.
    fn req(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<(&str, &[u8])>,
    ) -> Resp {
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut headers = Vec::new();
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        if let Some((ct, _)) = body {
            headers.push(("Content-Type", ct));
        }
        self.send(method, path, &headers, body.map(|b| b.1))
    }

    fn get(&self, path: &str, key: Option<&str>) -> Resp {
        self.req("GET", path, key, None)
    }

    fn post_json(&self, path: &str, key: Option<&str>, body: &Value) -> Resp {
        self.req(
            "POST",
            path,
            key,
            Some(("application/json", body.to_string().as_bytes())),
        )
    }
}

/// How long a starting server may take to print its address, and a stopping one to exit: far
/// beyond what either takes on a loaded machine, so that only a hang reaches it.
pub const SERVER_SECS_MAX: u64 = 120;

/// A running `sealog serve`; killed when dropped.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub log: PathBuf,
}

impl ServerProcess {
    /// Starts `sealog [global…] serve --listen 127.0.0.1:0 [extra…]` and waits for its
    /// address; standard error goes to a log file beside the data directory.
    pub fn start(cli: &Cli, extra: &[&str]) -> ServerProcess {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend(extra);
        ServerProcess::spawn(cli.command(&args), &cli.dir)
    }

    /// Starts a `serve` command the caller built (run under another program, say) whose
    /// standard output begins with the server's address line, for the data directory `dir`.
    pub fn spawn(mut command: Command, dir: &Path) -> ServerProcess {
        std::fs::create_dir_all(dir).expect("create the data directory");
        let log = dir.with_extension(format!(
            "log-{}",
            std::process::id() as u64 * 1000 + serial()
        ));
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("the server log"))
            .spawn()
            .expect("start sealog serve");
        let stdout = child.stdout.take().expect("stdout");
        // Read on a thread so that a server that never prints its address fails the test.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = tx.send(read);
        });
        let line = match rx.recv_timeout(Duration::from_secs(SERVER_SECS_MAX)) {
            Ok(read) => read.expect("the address line"),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "serve printed no address within {SERVER_SECS_MAX} s; log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        let addr = line
            .trim()
            .rsplit("://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "serve printed {line:?}; log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        ServerProcess {
            child,
            addr,
            dir: dir.to_path_buf(),
            log,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends SIGTERM and waits for a clean exit; a server that has not exited after
    /// [`SERVER_SECS_MAX`] fails the test.
    pub fn stop(mut self) {
        signal(self.child.id(), libc::SIGTERM);
        let status = self.wait_exit(SERVER_SECS_MAX);
        assert!(
            status.success(),
            "serve exited with {status}; log: {}",
            self.log_text()
        );
    }

    /// Waits for the process to exit by itself (after a signal the test sent), for at most
    /// `secs` seconds; past that it is killed and the test fails.
    pub fn wait_exit(&mut self, secs: u64) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "serve did not exit within {secs} s; log: {}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }
}

impl Api for ServerProcess {
    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        request(self.addr, method, path, &headers, body)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serial() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// One request on a fresh connection (`Connection: close`).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
) -> Resp {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b);
    }
    raw(addr, &bytes).unwrap_or_else(|| panic!("no response to {method} {path}"))
}

/// How long [`raw`] waits for the server to answer and close the connection.
pub const CLOSE_SECS_MAX: u64 = 60;

/// A connection the server neither closed nor stopped sending on within the time allowed.
#[derive(Debug)]
pub struct NotClosed {
    pub within: Duration,
    /// What the server had sent by then.
    pub got: Vec<u8>,
}

impl std::fmt::Display for NotClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the server did not close the connection within {} s (it had sent {} bytes: {:?})",
            self.within.as_secs_f64(),
            self.got.len(),
            String::from_utf8_lossy(&self.got[..self.got.len().min(200)])
        )
    }
}

/// Reads until the server closes the connection (end of stream, or a reset, which discards
/// what was not yet read), for at most `within` in all: a server that keeps the connection
/// open is an error, never an empty answer.
pub fn read_to_close(s: &mut TcpStream, within: Duration) -> Result<Vec<u8>, NotClosed> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 64 << 10];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(NotClosed { within, got: out });
        }
        s.set_read_timeout(Some(left)).expect("a read timeout");
        match s.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(NotClosed { within, got: out });
            }
            // Reset or aborted: the server closed, and what it sent before is all there is.
            Err(_) => return Ok(out),
        }
    }
}

/// Sends raw bytes on a fresh connection and parses the response; `None` if the server
/// closed without one. A server that has not closed the connection `within` is an error.
pub fn raw_within(
    addr: SocketAddr,
    bytes: &[u8],
    within: Duration,
) -> Result<Option<Resp>, NotClosed> {
    let mut s = TcpStream::connect_timeout(&addr, within)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    // The server may answer (e.g. 413) and close before it reads everything we send.
    let _ = s.write_all(bytes);
    Ok(parse_response(&read_to_close(&mut s, within)?))
}

/// [`raw_within`] with [`CLOSE_SECS_MAX`]; a server that keeps the connection open fails the
/// test.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Option<Resp> {
    raw_within(addr, bytes, Duration::from_secs(CLOSE_SECS_MAX)).unwrap_or_else(|e| panic!("{e}"))
}

pub fn parse_response(out: &[u8]) -> Option<Resp> {
    let end = out.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&out[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = out[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Some(Resp {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if n == 0 || b.len() < eol + 2 + n {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[(eol + 2 + n + 2).min(b.len())..];
    }
}
