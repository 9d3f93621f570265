//! `sealog bench http`: a load generator against the real server on loopback. It starts
//! `sealog serve` on a fresh directory (or uses `--url`), then measures single-event appends
//! at several client counts (and, with `--rates`, at fixed offered rates), bulk NDJSON
//! appends, and subject / axis queries once the log holds `--query-records` records; last, a
//! memory attack (one huge array, then several huge bodies at once) against a fresh server,
//! reporting its resident memory before, at peak and 3 s after. Every figure is printed as one
//! JSON line, with an fsync measured in the same run beside it. Benchmarks report; they never
//! assert.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use crate::bench::{Gen, decision_event};

#[derive(clap::Args)]
pub(crate) struct HttpArgs {
    /// Client counts for the single-event append phase.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    clients: Vec<usize>,
    /// Seconds per client count (and per paced rate).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Offered rates, events a second, for paced single-event phases: requests go out on a
    /// fixed schedule whether or not earlier ones were answered, and a request that came due
    /// while its connection still waited is timed from when it was due, so a server that
    /// falls behind is charged for the wait.
    #[arg(long, value_delimiter = ',')]
    rates: Vec<u64>,
    /// Connections that share a paced phase's schedule.
    #[arg(long, default_value_t = 64)]
    paced_clients: usize,
    /// Events per bulk NDJSON request.
    #[arg(long, default_value_t = 1000)]
    bulk_batch: usize,
    /// Concurrent bulk clients.
    #[arg(long, default_value_t = 2)]
    bulk_clients: usize,
    /// Records in the log before the query phase (bulk-loaded if fewer).
    #[arg(long, default_value_t = 1_000_000)]
    query_records: u64,
    /// Queries of each kind.
    #[arg(long, default_value_t = 20_000)]
    query_samples: u64,
    /// Directory for the server's store (default: a fresh temporary directory, removed after).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Use a running server instead of starting one (with --key).
    #[arg(long, requires = "key")]
    url: Option<String>,
    /// API key for --url.
    #[arg(long, env = "SEALOG_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Events in the memory attack's single JSON array (383 bytes each: 60 000 make 23 MB);
    /// 0 skips the attack.
    #[arg(long, default_value_t = 60_000)]
    attack_events: usize,
    /// Bodies the memory attack then sends at once.
    #[arg(long, default_value_t = 6)]
    attack_clients: usize,
    /// Bytes of each of those bodies.
    #[arg(long, default_value_t = 22_500_000)]
    attack_body_bytes: usize,
    /// An argument for every `sealog serve` the benchmark starts (repeat it), e.g.
    /// `--serve-arg=--buffered-bytes-max=67108864`.
    #[arg(long, allow_hyphen_values = true)]
    serve_arg: Vec<String>,
}

/// A keep-alive connection through the client the CLI uses (sealog-client).
struct Conn(sealog_client::Client);

impl Conn {
    fn open(addr: SocketAddr, key: &str) -> anyhow::Result<Self> {
        Ok(Conn(sealog_client::Client::new(
            &format!("http://{addr}"),
            Some(key),
            None,
        )?))
    }

    /// Sends one request and reads the whole answer; returns the status and the body.
    fn call(
        &mut self,
        method: &str,
        path: &str,
        ct: &str,
        body: &[u8],
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let reply = match method {
            "GET" => self.0.get(path)?,
            _ => self.0.post(path, ct, body)?,
        };
        Ok((reply.status, reply.body))
    }
}

pub(crate) struct Spawned {
    child: Child,
    pub(crate) addr: SocketAddr,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A key of `role` in `dir`, then `sealog serve` on it: the server and the key's secret.
pub(crate) fn serve_with_key(
    dir: &Path,
    role: sealog_server::keys::Role,
    durability_os: bool,
    extra: &[String],
) -> anyhow::Result<(Spawned, String)> {
    let key = sealog_server::keys::create(
        dir,
        sealog_server::keys::KeySpec {
            roles: vec![role],
            label: Some("bench".into()),
            ..Default::default()
        },
        "bench",
    )?
    .secret;
    Ok((spawn_server(dir, durability_os, extra)?, key))
}

fn spawn_server(dir: &Path, durability_os: bool, extra: &[String]) -> anyhow::Result<Spawned> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--data").arg(dir);
    if durability_os {
        cmd.args(["--durability", "os"]);
    }
    let mut child = cmd
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("server stdout")?).read_line(&mut line)?;
    let addr = line
        .trim()
        .rsplit("://")
        .next()
        .and_then(|a| a.parse().ok())
        .with_context(|| format!("the server printed {line:?}"))?;
    Ok(Spawned { child, addr })
}

/// A paced phase's schedule: the `k`th request is due `k / per_s` seconds after `start`,
/// whichever connection takes it.
struct Pace {
    start: Instant,
    per_s: f64,
    taken: AtomicU64,
}

impl Pace {
    fn new(per_s: u64) -> Self {
        Pace {
            start: Instant::now(),
            per_s: per_s as f64,
            taken: AtomicU64::new(0),
        }
    }

    fn next_due(&self) -> Instant {
        let k = self.taken.fetch_add(1, Ordering::Relaxed);
        self.start + Duration::from_secs_f64(k as f64 / self.per_s)
    }
}

/// Runs `clients` keep-alive connections on one thread (so the load generator itself costs
/// little CPU and few context switches); each sends `next(n)` while `more(n)` holds, `n` being
/// its own request count: at once, or when `pace` says the next request is due. Returns every
/// request's latency in microseconds, counted from when it was due if that was before the
/// connection was free to send it.
fn async_clients(
    addr: SocketAddr,
    key: &str,
    clients: usize,
    pace: Option<&Pace>,
    next: impl Fn(u64) -> (&'static str, String, String) + Sync,
    more: impl Fn(u64) -> bool + Sync,
) -> anyhow::Result<Vec<u32>> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let auth = format!("Bearer {key}");
    let (next, more, auth) = (&next, &more, &auth);
    let one = |_: usize| async move {
        let s = tokio::net::TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let mut s = tokio::io::BufReader::with_capacity(1 << 16, s);
        let mut lat = Vec::new();
        let mut line = String::new();
        let mut n = 0u64;
        while more(n) {
            // A request that came due while this connection waited for an answer is charged
            // from when it was due; one due later, from when it went out: the timer that wakes
            // the connection is the load generator's lateness, not the server's.
            let due = match pace {
                Some(p) => {
                    let due = p.next_due();
                    if due > Instant::now() {
                        tokio::time::sleep_until(due.into()).await;
                        None
                    } else {
                        Some(due)
                    }
                }
                None => None,
            };
            let (method, path, body) = next(n);
            n += 1;
            let mut req =
                format!("{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: {auth}\r\n");
            if !body.is_empty() {
                req.push_str(&format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n",
                    body.len()
                ));
            }
            req.push_str("\r\n");
            req.push_str(&body);
            let t0 = due.unwrap_or_else(Instant::now);
            s.get_mut().write_all(req.as_bytes()).await?;
            line.clear();
            s.read_line(&mut line).await?;
            let status = line.split(' ').nth(1).unwrap_or("").to_string();
            let mut len = 0usize;
            loop {
                line.clear();
                s.read_line(&mut line).await?;
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    len = v.trim().parse()?;
                }
            }
            let mut out = vec![0u8; len];
            s.read_exact(&mut out).await?;
            if status != "200" {
                bail!(
                    "{method} {path} answered {status}: {}",
                    String::from_utf8_lossy(&out)
                );
            }
            lat.push(t0.elapsed().as_micros() as u32);
        }
        anyhow::Ok(lat)
    };
    rt.block_on(async {
        let all = futures_join_all((0..clients).map(one).collect()).await;
        let mut out = Vec::new();
        for r in all {
            out.extend(r?);
        }
        Ok(out)
    })
}

/// Polls every future to completion on the current task.
async fn futures_join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..futs.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("every future completed"))
        .collect()
}

/// What the server counts of its appends, from `/metrics`: the store's fsyncs, and the append
/// queue's calls (each from queueing a request to its durable outcome, and each combined
/// commit's events). A phase's figures are the difference of two readings.
struct ServerCounts {
    fsyncs: f64,
    fsync_seconds: f64,
    appends: f64,
    append_seconds: f64,
    commits: f64,
    committed_events: f64,
}

impl ServerCounts {
    fn read(addr: SocketAddr, key: &str) -> Self {
        let text = Conn::open(addr, key)
            .and_then(|mut c| c.call("GET", "/metrics", "", b""))
            .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        ServerCounts {
            fsyncs: value("sealog_store_fsyncs"),
            fsync_seconds: value("sealog_store_fsync_seconds"),
            appends: value("sealog_append_seconds_count"),
            append_seconds: value("sealog_append_seconds_sum"),
            commits: value("sealog_append_batch_events_count"),
            committed_events: value("sealog_append_batch_events_sum"),
        }
    }

    /// Since `before`: the fsyncs, the mean fsync and the mean wait inside the server from
    /// queueing to durable (ms), and the mean events of a combined commit.
    fn since(&self, before: &Self) -> (f64, f64, f64, f64) {
        let mean = |sum: f64, n: f64| (sum / n.max(1.0) * 1000.0).round() / 1000.0;
        let fsyncs = self.fsyncs - before.fsyncs;
        (
            fsyncs,
            mean((self.fsync_seconds - before.fsync_seconds) * 1e3, fsyncs),
            mean(
                (self.append_seconds - before.append_seconds) * 1e3,
                self.appends - before.appends,
            ),
            mean(
                self.committed_events - before.committed_events,
                self.commits - before.commits,
            ),
        )
    }
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    crate::bench::nearest_rank(sorted, p).map_or(0.0, |v| f64::from(v) / 1000.0)
}

/// Median fdatasync of a 4 KiB write on the benchmark's filesystem, in milliseconds.
fn fsync_ms(dir: &Path) -> anyhow::Result<f64> {
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path)?;
    let mut t = Vec::new();
    for _ in 0..100 {
        f.write_all(&[7u8; 4096])?;
        let t0 = Instant::now();
        f.sync_data()?;
        t.push(t0.elapsed().as_micros() as u32);
    }
    std::fs::remove_file(&path)?;
    t.sort_unstable();
    Ok(pct(&t, 0.5))
}

/// How many `evt_txn_{i}` subjects the log holds, given that it holds at least `known` and
/// that they run from 0 without gaps. The checkpoint's size cannot say: it also counts
/// access and other records. Searches by subject, doubling then halving.
fn subjects_in_log(conn: &mut Conn, known: u64) -> anyhow::Result<u64> {
    let mut has = |i: u64| -> anyhow::Result<bool> {
        let path = format!("/v1/records?subject=evt_txn_{i:012}&limit=1");
        let (status, out) = conn.call("GET", &path, "", b"")?;
        if status != 200 {
            bail!("query answered {status}: {}", String::from_utf8_lossy(&out));
        }
        Ok(
            serde_json::from_slice::<serde_json::Value>(&out)?["records"]
                .as_array()
                .is_some_and(|r| !r.is_empty()),
        )
    };
    // Invariant: subject `lo - 1` exists (or lo is 0), subject `hi` does not.
    let (mut lo, mut step) = (known, 1u64);
    let mut hi = loop {
        let probe = lo + step - 1;
        if !has(probe)? {
            break probe;
        }
        lo = probe + 1;
        step *= 2;
    };
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if has(mid)? {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

fn event_bytes(i: u64) -> String {
    let mut g = Gen::new(0xB0B ^ i.wrapping_mul(0x9E37_79B9));
    decision_event(i, &mut g, true)
}

pub(crate) fn run(a: &HttpArgs, durability_os: bool) -> anyhow::Result<std::process::ExitCode> {
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = std::env::temp_dir().join(format!("sealog-bench-http-{}", std::process::id()));
            tmp.clone()
        }
    };
    std::fs::create_dir_all(&dir)?;
    let spawned;
    let mut server_pid = None;
    let (addr, key) = if let Some(url) = &a.url {
        let addr: SocketAddr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .with_context(|| format!("--url {url:?}: expected http://IP:PORT"))?;
        (addr, a.key.clone().unwrap_or_default())
    } else {
        let key;
        (spawned, key) = serve_with_key(
            &dir,
            sealog_server::keys::Role::Admin,
            durability_os,
            &a.serve_arg,
        )?;
        server_pid = Some(spawned.child.id());
        (spawned.addr, key)
    };
    let fsync = fsync_ms(&dir)?;
    let wake = crate::bench::wake_round_trip_us();
    eprintln!(
        "bench http: server at {addr}, dir {}, fsync p50 {fsync:.3} ms, thread wake round trip {wake}",
        dir.display()
    );
    let next = AtomicU64::new(0);

    // Single-event appends: each client sends its next event once answered; then, at each
    // offered rate, on the schedule.
    let phases = (a.clients.iter().map(|&c| (c, None)))
        .chain(a.rates.iter().map(|&r| (a.paced_clients, Some(r))));
    for (clients, rate) in phases {
        let pace = rate.map(Pace::new);
        let deadline = Instant::now() + Duration::from_secs_f64(a.seconds);
        let counts0 = ServerCounts::read(addr, &key);
        let cpu0 = CpuSplit::now(server_pid);
        let waits0 = CoreWaits::now(server_pid);
        let begin = Instant::now();
        let counter = &next;
        let lat = async_clients(
            addr,
            &key,
            clients,
            pace.as_ref(),
            move |_| {
                let body = event_bytes(counter.fetch_add(1, Ordering::Relaxed));
                ("POST", "/v1/events".to_string(), body)
            },
            move |_| Instant::now() < deadline,
        )?;
        let secs = begin.elapsed().as_secs_f64();
        let cores = CpuSplit::now(server_pid).cores_since(&cpu0, secs);
        let core_waits = CoreWaits::now(server_pid).since(&waits0, secs);
        let (fsyncs, fsync_ms_mean, queued_ms_mean, commit_events) =
            ServerCounts::read(addr, &key).since(&counts0);
        let mut all = lat;
        all.sort_unstable();
        let mut line = json!({"bench": "http.append.single", "clients": clients, "events": all.len(), "seconds": secs,
                   "events_per_s": (all.len() as f64 / secs).round(), "p50_ms": pct(&all, 0.5), "p99_ms": pct(&all, 0.99),
                   "max_ms": pct(&all, 1.0), "fsync_p50_ms": fsync, "store_fsyncs": fsyncs,
                   "store_fsync_mean_ms": fsync_ms_mean, "server_queued_to_durable_mean_ms": queued_ms_mean,
                   "commit_mean_events": commit_events, "cores": cores, "waiting_for_a_core": core_waits,
                   "thread_wake_round_trip_us": wake});
        if let Some(r) = rate {
            line["bench"] = json!("http.append.paced");
            line["offered_per_s"] = json!(r);
            line["p99_over_fsync_p50"] = json!(pct(&all, 0.99) / fsync);
        }
        println!("{line}");
    }

    // Bulk NDJSON appends until the log holds the records the query phase needs.
    let (_, note) = Conn::open(addr, &key)?.call("GET", "/checkpoint", "", b"")?;
    let have: u64 = String::from_utf8_lossy(&note)
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let bulk_target = a
        .query_records
        .saturating_sub(have)
        .max(a.bulk_batch as u64 * 20);
    let start_i = next.fetch_add(bulk_target, Ordering::Relaxed);
    let taken = AtomicU64::new(0);
    let begin = Instant::now();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..a.bulk_clients)
            .map(|_| {
                let (key, taken) = (&key, &taken);
                s.spawn(move || -> anyhow::Result<()> {
                    let mut c = Conn::open(addr, key)?;
                    loop {
                        let first = taken.fetch_add(a.bulk_batch as u64, Ordering::Relaxed);
                        if first >= bulk_target {
                            return Ok(());
                        }
                        let last = (first + a.bulk_batch as u64).min(bulk_target);
                        let mut body = String::with_capacity(a.bulk_batch * 700);
                        for i in first..last {
                            body.push_str(&event_bytes(start_i + i));
                            body.push('\n');
                        }
                        let (status, out) = c.call(
                            "POST",
                            "/v1/events",
                            "application/x-ndjson",
                            body.as_bytes(),
                        )?;
                        if status != 200 {
                            bail!(
                                "bulk append answered {status}: {}",
                                String::from_utf8_lossy(&out)
                            );
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("bulk thread")?;
        }
        Ok(())
    })?;
    let secs = begin.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"bench": "http.append.bulk", "clients": a.bulk_clients, "batch": a.bulk_batch, "events": bulk_target,
               "seconds": secs, "events_per_s": (bulk_target as f64 / secs).round()})
    );

    // Queries: one subject (one record), and an axis page, over the loaded log.
    // Subjects are drawn from the whole log: one left by `bench ingest` or by this benchmark
    // names its records' subjects `evt_txn_{i}` from 0 on. Each query's records are counted,
    // so a log without them shows as queries that found nothing.
    let in_log = subjects_in_log(&mut Conn::open(addr, &key)?, start_i + bulk_target)?;
    let mut g = Gen::new(7);
    for (kind, clients) in [
        ("subject", 1usize),
        ("axis", 1),
        ("axis_apart", 1),
        ("subject", 16),
        ("axis", 16),
    ] {
        // At least one query a client: fewer samples than clients would print an empty line.
        let per = (a.query_samples / clients as u64).max(1);
        let begin = Instant::now();
        let lat: Vec<(Vec<u32>, u64)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..clients)
                .map(|c| {
                    let key = &key;
                    let seed = g.next() ^ c as u64;
                    s.spawn(move || -> anyhow::Result<(Vec<u32>, u64)> {
                        let mut g = Gen::new(seed);
                        let mut conn = Conn::open(addr, key)?;
                        let mut lat = Vec::with_capacity(per as usize);
                        let mut found = 0u64;
                        for _ in 0..per {
                            let i = g.next() % in_log;
                            let path = match kind {
                                "subject" => {
                                    format!("/v1/records?subject=evt_txn_{i:012}&limit=10")
                                }
                                // The generator gives tenant `run_T` the actor `df-{T % 8}`
                                // only: "axis" asks for a pair that meets, "axis_apart" for one
                                // that never does (every record of the tenant checked).
                                _ => {
                                    let tenant = g.next() % 64;
                                    let actor = match kind {
                                        "axis" => tenant % 8,
                                        _ => (tenant + 1) % 8,
                                    };
                                    format!("/v1/records?axis.tenant=run_{tenant:04}&axis.actor=df-{actor}&limit=10")
                                }
                            };
                            let t0 = Instant::now();
                            let (status, out) = conn.call("GET", &path, "", b"")?;
                            if status != 200 {
                                bail!("query answered {status}: {}", String::from_utf8_lossy(&out));
                            }
                            lat.push(t0.elapsed().as_micros() as u32);
                            found += serde_json::from_slice::<serde_json::Value>(&out)?["records"]
                                .as_array()
                                .map_or(0, |r| r.len() as u64);
                        }
                        Ok((lat, found))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("query thread"))
                .collect::<anyhow::Result<Vec<_>>>()
        })?;
        let secs = begin.elapsed().as_secs_f64();
        let found: u64 = lat.iter().map(|(_, f)| f).sum();
        let mut all: Vec<u32> = lat.into_iter().flat_map(|(l, _)| l).collect();
        all.sort_unstable();
        println!(
            "{}",
            json!({"bench": format!("http.query.{kind}"), "clients": clients, "events_in_log": in_log, "queries": all.len(),
                   "records_per_query": found as f64 / all.len().max(1) as f64,
                   "queries_per_s": (all.len() as f64 / secs).round(), "p50_ms": pct(&all, 0.5), "p99_ms": pct(&all, 0.99),
                   "max_ms": pct(&all, 1.0), "fsync_p50_ms": fsync,
                   "note": "each query waits for its own audit.access record to be durable (group commit)"})
        );
    }
    if a.attack_events > 0 {
        let target = match &a.url {
            Some(_) => Target::Running { addr, key },
            None => Target::Fresh {
                dir: dir.join("attack"),
                durability_os,
            },
        };
        println!("{}", memory_attack(a, target)?);
    }
    if a.dir.is_none() && a.url.is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// The size of each event of the memory attack: 60 000 of them make a 23 MB array.
const ATTACK_EVENT_BYTES: usize = 383;

/// A valid event (of the conversation-linking pack) of exactly [`ATTACK_EVENT_BYTES`] bytes.
fn attack_event(i: u64) -> String {
    let head = format!(
        concat!(
            r#"{{"specversion":"1.0","id":"mem-{i:09}","source":"bench-attack","type":"conversation.customer_resolved","#,
            r#""time":"2026-02-01T09:00:00Z","tenant":"instructor-42","subject":"conv-{i:09}","actor":{{"type":"system"}},"#,
            r#""data":{{"conversation_id":"conv-{i:09}","instructor_id":"instructor-42","new_customer_id":"cust-17","context":{{"pad":""#
        ),
        i = i
    );
    let tail = r#""}}}"#;
    let pad = ATTACK_EVENT_BYTES.saturating_sub(head.len() + tail.len());
    format!("{head}{}{tail}", "x".repeat(pad))
}

/// A JSON array of the attack events `first..first + n`.
fn attack_body(first: u64, n: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(n * (ATTACK_EVENT_BYTES + 1) + 2);
    body.push(b'[');
    for i in 0..n as u64 {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(attack_event(first + i).as_bytes());
    }
    body.push(b']');
    body
}

/// CPU time used so far by this process (the load generator) and by the server, when it is
/// a child whose /proc entry can be read.
struct CpuSplit {
    generator: Option<f64>,
    server: Option<f64>,
}

impl CpuSplit {
    fn now(server: Option<u32>) -> Self {
        CpuSplit {
            generator: cpu_seconds("self"),
            server: server.and_then(|pid| cpu_seconds(&pid.to_string())),
        }
    }

    /// How many cores each used on average over `secs` since `before` (`null` when unknown).
    fn cores_since(&self, before: &CpuSplit, secs: f64) -> serde_json::Value {
        let cores = |now: Option<f64>, then: Option<f64>| {
            Some(((now? - then?) / secs * 100.0).round() / 100.0)
        };
        json!({"load_generator": cores(self.generator, before.generator),
               "server": cores(self.server, before.server)})
    }
}

/// What each thread of the load generator and of the server has run and waited for a core so
/// far: on two busy cores a request's every hand-off between threads can wait behind the
/// others, and this shows how long. Empty where the kernel keeps no `schedstat`.
struct CoreWaits {
    generator: Vec<ThreadSched>,
    server: Vec<ThreadSched>,
}

/// What a thread's `/proc/PID/task/TID/schedstat` says of its waits: nanoseconds runnable but
/// waiting for a core, and times it was given one (the file's first field, time run, is not
/// kept).
struct ThreadSched {
    tid: String,
    name: String,
    waited_ns: u64,
    runs: u64,
}

impl CoreWaits {
    fn now(server: Option<u32>) -> Self {
        CoreWaits {
            generator: thread_sched("self"),
            server: server.map_or_else(Vec::new, |pid| thread_sched(&pid.to_string())),
        }
    }

    /// Per process over `secs` since `before`, counting threads present at both: the mean
    /// wait for a core each time a thread was given one (µs), and thread-seconds waited per
    /// second; for the server also the mean wait of each kind of thread (its name without
    /// the number). `null` where nothing was read.
    fn since(&self, before: &CoreWaits, secs: f64) -> serde_json::Value {
        let side = |now: &[ThreadSched], then: &[ThreadSched], by_kind: bool| {
            let mut kinds: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
            let (mut waited, mut runs) = (0u64, 0u64);
            for t in now {
                let Some(t0) = then.iter().find(|b| b.tid == t.tid) else {
                    continue;
                };
                let (w, r) = (
                    t.waited_ns.saturating_sub(t0.waited_ns),
                    t.runs.saturating_sub(t0.runs),
                );
                waited += w;
                runs += r;
                let kind = t
                    .name
                    .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
                let k = kinds.entry(kind.to_string()).or_default();
                k.0 += w;
                k.1 += r;
            }
            let mean_us =
                |w: u64, r: u64| (r > 0).then(|| (w as f64 / r as f64 / 10.0).round() / 100.0);
            if runs == 0 {
                return serde_json::Value::Null;
            }
            let mut v = json!({"mean_wait_us": mean_us(waited, runs),
                               "thread_seconds_per_s": (waited as f64 / 1e9 / secs * 100.0).round() / 100.0});
            if by_kind {
                v["mean_wait_us_by_thread"] = kinds
                    .into_iter()
                    .filter_map(|(k, (w, r))| Some((k, json!(mean_us(w, r)?))))
                    .collect::<serde_json::Map<_, _>>()
                    .into();
            }
            v
        };
        json!({"load_generator": side(&self.generator, &before.generator, false),
               "server": side(&self.server, &before.server, true)})
    }
}

fn thread_sched(pid: &str) -> Vec<ThreadSched> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let path = task.path();
            let stat = std::fs::read_to_string(path.join("schedstat")).ok()?;
            let mut f = stat.split_whitespace().map(str::parse::<u64>);
            let (_ran, waited_ns, runs) = (f.next()?.ok()?, f.next()?.ok()?, f.next()?.ok()?);
            Some(ThreadSched {
                tid: task.file_name().to_string_lossy().into_owned(),
                name: std::fs::read_to_string(path.join("comm"))
                    .ok()?
                    .trim()
                    .to_string(),
                waited_ns,
                runs,
            })
        })
        .collect()
}

/// User and system CPU seconds of a process, all its threads (`/proc/PID/stat`).
#[allow(unsafe_code)]
pub(crate) fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields are counted after its end.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // Fields 14 and 15 of the line (utime, stime), 11 and 12 after the name.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf reads a constant of the system and has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| ticks / per_second as f64)
}

/// A field of `/proc/PID/status` in MiB (`VmRSS`, `VmHWM`).
fn proc_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}

enum Target {
    /// A server of its own, so its memory is the attack's alone and can be read from /proc.
    Fresh { dir: PathBuf, durability_os: bool },
    /// `--url`: its memory is not ours to read.
    Running { addr: SocketAddr, key: String },
}

/// One huge array of small events, then several huge bodies at once, from one writer key,
/// as a tamper campaign sent them: the server's resident memory before, at its peak after
/// each step (the kernel's high-water mark), and 3 s after the last answer.
fn memory_attack(a: &HttpArgs, target: Target) -> anyhow::Result<serde_json::Value> {
    let spawned;
    let (addr, key, pid) = match target {
        Target::Fresh { dir, durability_os } => {
            std::fs::create_dir_all(&dir)?;
            let key = sealog_server::keys::create(
                &dir,
                sealog_server::keys::KeySpec {
                    roles: vec![sealog_server::keys::Role::Writer],
                    label: Some("bench-attack".into()),
                    ..Default::default()
                },
                "bench",
            )?
            .secret;
            spawned = spawn_server(&dir, durability_os, &a.serve_arg)?;
            (spawned.addr, key, Some(spawned.child.id()))
        }
        Target::Running { addr, key } => (addr, key, None),
    };
    let per_body = (a.attack_body_bytes / (ATTACK_EVENT_BYTES + 1)).max(1);
    let single = attack_body(0, a.attack_events);
    let bodies: Vec<Vec<u8>> = (0..a.attack_clients)
        .map(|c| attack_body((a.attack_events + c * per_body) as u64, per_body))
        .collect();
    let mib = |field| pid.and_then(|p| proc_mib(p, field));
    // A status, or 0 when the server closed the connection without answering.
    let send = |body: &[u8]| -> u16 {
        Conn::open(addr, &key)
            .and_then(|mut c| c.call("POST", "/v1/events", "application/json", body))
            .map_or(0, |(status, _)| status)
    };
    let before = mib("VmRSS");
    let begin = Instant::now();
    let first = send(&single);
    let peak_single = mib("VmHWM");
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = bodies.iter().map(|b| s.spawn(|| send(b))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("attack thread"))
            .collect()
    });
    let secs = begin.elapsed().as_secs_f64();
    let peak = mib("VmHWM");
    let at_end = mib("VmRSS");
    // A benchmark measures what is left after a while; 3 s is the campaign's figure.
    std::thread::sleep(Duration::from_secs(3));
    let after = mib("VmRSS");
    let mut counts = std::collections::BTreeMap::new();
    for s in &statuses {
        *counts.entry(s.to_string()).or_insert(0u32) += 1;
    }
    Ok(
        json!({"bench": "http.attack.memory", "single_events": a.attack_events,
              "single_body_mb": single.len() as f64 / 1e6, "single_status": first,
              "clients": a.attack_clients, "body_mb": bodies.first().map_or(0.0, |b| b.len() as f64 / 1e6),
              "statuses": counts, "seconds": secs,
              "rss_before_mib": before, "rss_peak_single_mib": peak_single, "rss_peak_mib": peak,
              "rss_at_end_mib": at_end, "rss_after_3s_mib": after,
              "note": "status 0: closed without an answer; RSS is null against --url"}),
    )
}
