//! Shared by the `http_*` tests: the real `sealog serve` process on 127.0.0.1 with a random
//! port, a raw HTTP/1.1 client (so malformed requests can be sent as bytes), keys made with
//! the real `sealog keys` command, and events.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_sealog");

/// A running `sealog serve`; killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub log: PathBuf,
}

impl Server {
    pub fn start(dir: &Path) -> Server {
        Self::start_with(dir, &[])
    }

    /// Started with `--accept-undeclared-types`, so events of ad-hoc types (`t`, `test.*`)
    /// are appended instead of quarantined: the tests about the API, not about packs.
    pub fn start_with(dir: &Path, extra: &[&str]) -> Server {
        Self::spawn(dir, &["--accept-undeclared-types"], extra)
    }

    /// With the ledger's defaults: every event must pass its type's pack.
    pub fn start_packs(dir: &Path, extra: &[&str]) -> Server {
        Self::spawn(dir, &[], extra)
    }

    fn spawn(dir: &Path, global: &[&str], extra: &[&str]) -> Server {
        std::fs::create_dir_all(dir).unwrap();
        let log = dir.with_extension(format!("log-{}", rand_u64() % 1_000_000));
        let mut child = Command::new(BIN)
            .args(["--data", dir.to_str().unwrap()])
            .args(global)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start sealog serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .rsplit("://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "serve printed {line:?}; log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        Server {
            child,
            addr,
            dir: dir.to_path_buf(),
            log,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn req(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<(&str, &[u8])>,
    ) -> Resp {
        let mut headers = Vec::new();
        if let Some(k) = key {
            headers.push(("Authorization".to_string(), format!("Bearer {k}")));
        }
        if let Some((ct, _)) = body {
            headers.push(("Content-Type".to_string(), ct.to_string()));
        }
        request(self.addr, method, path, &headers, body.map(|b| b.1))
    }

    pub fn get(&self, path: &str, key: Option<&str>) -> Resp {
        self.req("GET", path, key, None)
    }

    pub fn post_json(&self, path: &str, key: Option<&str>, body: &Value) -> Resp {
        self.req(
            "POST",
            path,
            key,
            Some(("application/json", body.to_string().as_bytes())),
        )
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) {
        let pid = self.child.id() as i32;
        signal(pid, libc::SIGTERM);
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "serve exited with {status}; log: {}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[allow(unsafe_code)]
pub fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

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

/// Sends raw bytes and parses the response; `None` if the server closed without one.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Option<Resp> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    // The server may answer (e.g. 413) and close before it reads everything we send.
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    parse_response(&out)
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
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

/// Runs the CLI.
/// The CLI on a data directory, accepting ad-hoc event types like the test server.
pub fn sealog(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data")
        .arg(dir)
        .args(args)
        .env("SEALOG_ACCEPT_UNDECLARED_TYPES", "1")
        .env_remove("SEALOG_URL")
        .env_remove("SEALOG_KEY")
        .output()
        .unwrap()
}

/// Creates a key with `sealog keys create`; returns (secret, id).
pub fn create_key(
    dir: &Path,
    roles: &[&str],
    tenant: Option<&str>,
    subject: Option<&str>,
) -> (String, String) {
    let mut args = vec!["keys", "create"];
    for r in roles {
        args.extend(["--role", r]);
    }
    if let Some(t) = tenant {
        args.extend(["--tenant", t]);
    }
    if let Some(s) = subject {
        args.extend(["--data-subject", s]);
    }
    let out = sealog(dir, &args);
    assert!(
        out.status.success(),
        "keys create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["key"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
    )
}

/// A valid event.
pub fn event(id: &str, tenant: Option<&str>, subject: &str, kind: &str) -> Value {
    let mut e = json!({
        "specversion": "1.0", "id": id, "source": "test", "type": kind,
        "time": "2026-01-03T12:34:56.123Z", "subject": subject,
        "actor": {"type": "human", "id": "u1"}, "data": {"n": id},
    });
    if let Some(t) = tenant {
        e["tenant"] = json!(t);
    }
    e
}

pub fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom_fill(&mut b);
    u64::from_le_bytes(b)
}

fn getrandom_fill(b: &mut [u8]) {
    let mut f = std::fs::File::open("/dev/urandom").unwrap();
    f.read_exact(b).unwrap();
}

/// SplitMix64, for reproducible random choices.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Every record in the log, read offline with the embedded CLI (the server must be stopped).
pub fn all_records(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let mut args = vec!["query".to_string(), "--limit".into(), "10000".into()];
        if let Some(a) = after {
            args.extend(["--after".into(), a.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = sealog(dir, &args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let page: Vec<Value> = o
            .stdout
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        let Some(last) = page.last() else { break };
        after = last["seq"].as_u64();
        let full = page.len() == 10000;
        out.extend(page);
        if !full {
            break;
        }
    }
    out
}

/// `sealog verify` passes on the directory (the server must be stopped).
pub fn assert_verifies(dir: &Path) {
    let o = sealog(dir, &["verify"]);
    assert!(
        o.status.success(),
        "verify failed: {} {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
