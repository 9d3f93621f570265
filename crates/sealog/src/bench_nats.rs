//! `sealog bench nats`: ingest from NATS JetStream beside the other ways in, in one run, on
//! the same kind of events (complete decision-log records through the packs, fsync on):
//! `sealog append FILE` and `sealog bench ingest` (the embedded bulk paths), bulk NDJSON over
//! HTTP, and `sealog serve --nats` draining a stream that already holds every event. Each on a fresh data directory; a
//! `nats-server -js` of its own on a free loopback port unless `--nats` names one. Every
//! figure is one JSON line. Benchmarks report; they never assert.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_nats::jetstream;
use serde_json::json;

use crate::bench::{Gen, decision_event};
use crate::bench_http::serve_with_key;

#[derive(clap::Args)]
pub(crate) struct NatsArgs {
    /// Events in each run.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Events per bulk HTTP request.
    #[arg(long, default_value_t = 1000)]
    bulk_batch: usize,
    /// Messages the consumer commits together at most (`serve --nats-batch-max`).
    #[arg(long, default_value_t = 1000)]
    batch_max: usize,
    /// A running NATS server with JetStream (default: start `nats-server -js` on a free port).
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    /// Directory for the stores and the bus's files (default: a fresh temporary directory,
    /// removed after).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn event_bytes(i: u64) -> String {
    let mut g = Gen::new(0x0B05 ^ i.wrapping_mul(0x9E37_79B9));
    decision_event(i, &mut g, true)
}

/// A `nats-server -js` of the benchmark's own, killed when dropped.
struct Bus(Child);

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_bus(dir: &Path) -> anyhow::Result<(Bus, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nats-server (Debian package `nats-server`), or give --nats URL")?;
    let bus = Bus(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("nats-server did not listen on {port}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok((bus, format!("nats://127.0.0.1:{port}")))
}

pub(crate) fn run(a: &NatsArgs, durability_os: bool) -> anyhow::Result<std::process::ExitCode> {
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = crate::bench::tempfile_dir()?;
            tmp.clone()
        }
    };
    std::fs::create_dir_all(&dir)?;
    let n = a.events;
    let mut file = String::with_capacity(n as usize * 1100);
    for i in 0..n {
        file.push_str(&event_bytes(i));
        file.push('\n');
    }
    let events_file = dir.join("events.ndjson");
    std::fs::write(&events_file, &file)?;
    // Written back now, so that the file's own writeback does not share the disk with the
    // timed append's fsyncs.
    std::fs::File::open(&events_file)?.sync_all()?;
    let mb = file.len() as f64 / 1e6;
    let report = |what: &str, secs: f64, extra: serde_json::Value| {
        let mut line = json!({"bench": what, "events": n, "seconds": secs,
                              "events_per_s": (n as f64 / secs).round(), "mb_per_s": (mb / secs * 10.0).round() / 10.0});
        if let (Some(l), Some(e)) = (line.as_object_mut(), extra.as_object()) {
            l.extend(e.clone());
        }
        println!("{line}");
        n as f64 / secs
    };
    let global = |cmd: &mut Command, data: &Path| {
        cmd.arg("--data").arg(data);
        if durability_os {
            cmd.args(["--durability", "os"]);
        }
    };

    // The embedded bulk path: `sealog append FILE`.
    let data = dir.join("append");
    let mut cmd = Command::new(std::env::current_exe()?);
    global(&mut cmd, &data);
    let begin = Instant::now();
    let out = cmd
        .arg("append")
        .arg(&events_file)
        .stdout(Stdio::null())
        .status()?;
    if !out.success() {
        bail!("sealog append exited with {out}");
    }
    let embedded = report("append.file", begin.elapsed().as_secs_f64(), json!({}));

    // The store's own figure: the same kind of events prepared on two threads and appended
    // in process, with no file to read and no results to print (`sealog bench ingest`).
    let mut cmd = Command::new(std::env::current_exe()?);
    if durability_os {
        cmd.args(["--durability", "os"]);
    }
    let out = cmd
        .args([
            "bench",
            "ingest",
            "--validate",
            "--incomplete-percent",
            "0",
            "--events",
        ])
        .arg(n.to_string())
        .arg("--dir")
        .arg(dir.join("store"))
        .stderr(Stdio::null())
        .output()?;
    let store: serde_json::Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .context("sealog bench ingest printed no figure")?;
    let store_rate = store["events_per_s"].as_f64().unwrap_or(0.0);
    println!(
        "{}",
        json!({"bench": "store.ingest", "events": n, "events_per_s": store_rate,
               "mean_commit_events": store["mean_commit_events"], "fsync_ms": store["machine"]["fsync_ms"]})
    );

    // Bulk NDJSON over HTTP, two clients.
    let data = dir.join("http");
    std::fs::create_dir_all(&data)?;
    let (server, key) =
        serve_with_key(&data, sealog_server::keys::Role::Admin, durability_os, &[])?;
    let lines: Vec<&str> = file.lines().collect();
    let chunks: Vec<String> = lines
        .chunks(a.bulk_batch.max(1))
        .map(|c| c.join("\n"))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let begin = Instant::now();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| -> anyhow::Result<()> {
                    let client = sealog_client::Client::new(
                        &format!("http://{}", server.addr),
                        Some(&key),
                        None,
                    )?;
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(body) = chunks.get(i) else {
                            return Ok(());
                        };
                        let reply =
                            client.post("/v1/events", "application/x-ndjson", body.as_bytes())?;
                        if reply.status != 200 {
                            bail!(
                                "bulk append answered {}: {}",
                                reply.status,
                                String::from_utf8_lossy(&reply.body)
                            );
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("bulk client")?;
        }
        Ok(())
    })?;
    let http = report(
        "http.append.bulk",
        begin.elapsed().as_secs_f64(),
        json!({"clients": 2, "batch": a.bulk_batch}),
    );
    drop(server);

    // The bus: every event published first, then `serve --nats` drains the stream.
    // Held to the end: dropping it stops the bus the benchmark started.
    let (_own_bus, url) = match &a.nats {
        Some(u) => (None, u.clone()),
        None => {
            let (bus, url) = start_bus(&dir.join("nats"))?;
            (Some(bus), url)
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stream_name = format!("BENCH{}", std::process::id());
    let subject = format!("bench{}.decisions", std::process::id());
    let js = rt.block_on(async {
        let client = async_nats::connect(url.as_str()).await?;
        let js = jetstream::new(client);
        js.get_or_create_stream(jetstream::stream::Config {
            name: stream_name.clone(),
            subjects: vec![format!("bench{}.>", std::process::id())],
            ..Default::default()
        })
        .await?;
        let begin = Instant::now();
        let mut acks = Vec::new();
        for line in &lines {
            acks.push(js.publish(subject.clone(), line.to_string().into()).await?);
            if acks.len() == 1024 {
                for a in acks.drain(..) {
                    a.await?;
                }
            }
        }
        for a in acks {
            a.await?;
        }
        eprintln!(
            "bench nats: {n} events published in {:.1} s",
            begin.elapsed().as_secs_f64()
        );
        anyhow::Ok(js)
    })?;
    let data = dir.join("bus");
    std::fs::create_dir_all(&data)?;
    let begin = Instant::now();
    let (server, key) = serve_with_key(
        &data,
        sealog_server::keys::Role::Admin,
        durability_os,
        &[
            "--nats".into(),
            url.clone(),
            "--nats-stream".into(),
            stream_name.clone(),
            "--nats-subjects".into(),
            format!("bench{}.>", std::process::id()),
            "--nats-batch-max".into(),
            a.batch_max.to_string(),
        ],
    )?;
    rt.block_on(async {
        loop {
            let stream = js.get_stream(&stream_name).await?;
            if let Ok(mut c) = stream
                .get_consumer::<jetstream::consumer::pull::Config>("sealog")
                .await
            {
                let info = c.info().await?;
                if info.num_pending == 0
                    && info.num_ack_pending == 0
                    && info.delivered.stream_sequence >= n
                {
                    return anyhow::Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })?;
    let secs = begin.elapsed().as_secs_f64();
    let mean_commit = mean_append_batch(server.addr, &key)?;
    let bus = report(
        "nats.consume",
        secs,
        json!({"batch_max": a.batch_max, "mean_commit_events": mean_commit}),
    );
    drop(server);
    println!(
        "{}",
        json!({"bench": "nats.ratio", "of_append_file": (bus / embedded * 100.0).round() / 100.0,
               "of_store_ingest": (bus / store_rate.max(1.0) * 100.0).round() / 100.0,
               "of_http_bulk": (bus / http * 100.0).round() / 100.0, "target_of_embedded": 0.7})
    );
    if a.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// The mean number of events the server committed per call, from its own metrics.
fn mean_append_batch(addr: std::net::SocketAddr, key: &str) -> anyhow::Result<f64> {
    let client = sealog_client::Client::new(&format!("http://{addr}"), Some(key), None)?;
    let text = client.text("/metrics")?;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let (sum, count) = (
        value("sealog_append_batch_events_sum"),
        value("sealog_append_batch_events_count"),
    );
    Ok((sum / count.max(1.0)).round())
}
