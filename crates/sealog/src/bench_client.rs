//! `sealog bench client`: the Rust client against a real server on loopback, beside the
//! server's own bulk HTTP ingest in the same run. It reports `emit()` latency in process (it
//! only enqueues), one emitter's sustained throughput (first emit to a completed flush), and
//! that throughput as a share of bulk NDJSON posts of the same events and batch size.
//! Benchmarks report; they never assert.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use crate::bench::{Gen, decision_event};

#[derive(clap::Args)]
pub(crate) struct ClientArgs {
    /// Events per phase.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Events per request (the emitter's batch and the bulk posts').
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Directory for the server's store (default: a fresh temporary directory, removed after).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The events: complete decision-log records (~2.2 KB, seed 002) or coordination
    /// decisions (~450 bytes, seed 004's emitter).
    #[arg(long, value_enum, default_value_t = Kind::Decision)]
    kind: Kind,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Kind {
    Decision,
    Coordination,
}

fn events(kind: Kind, from: u64, n: u64) -> Vec<Vec<u8>> {
    (from..from + n)
        .map(|i| match kind {
            Kind::Decision => {
                let mut g = Gen::new(0xC11E ^ i.wrapping_mul(0x9E37_79B9));
                decision_event(i, &mut g, true).into_bytes()
            }
            Kind::Coordination => json!({
                "specversion": "1.0", "id": format!("c4-{i}"), "source": "c4-coordinator",
                "type": "coordination.decision", "time": "2025-12-28T14:00:00.250Z",
                "tenant": "tenant-a", "actor": {"type": "service", "id": "coordination-manager"},
                "data": {"envelope_id": format!("env-{i}"), "envelope_class": "SAFETY",
                         "decision": "PREEMPTED", "reason": "higher-priority safety envelope",
                         "decision_timestamp": "2025-12-28T14:00:00.250Z",
                         "preempting_envelope_id": "env-990", "active_envelopes_count": 3,
                         "tenant_id": "tenant-a"}})
            .to_string()
            .into_bytes(),
        })
        .collect()
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    crate::bench::nearest_rank(sorted, p).map_or(0.0, |v| v as f64 / 1000.0)
}

/// Posts `events` as NDJSON batches on `clients` connections; events per second.
fn bulk(
    url: &str,
    key: &str,
    events: &[Vec<u8>],
    batch: usize,
    clients: usize,
) -> anyhow::Result<f64> {
    let begin = Instant::now();
    let chunks: Vec<&[Vec<u8>]> = events.chunks(batch).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let chunks = &chunks;
                s.spawn(move || -> anyhow::Result<()> {
                    let client = sealog_client::Client::new(url, Some(key), None)?;
                    for chunk in chunks.iter().skip(c).step_by(clients) {
                        let mut body = Vec::with_capacity(chunk.iter().map(|e| e.len() + 1).sum());
                        for e in *chunk {
                            body.extend_from_slice(e);
                            body.push(b'\n');
                        }
                        let reply = client.post("/v1/events", "application/x-ndjson", &body)?;
                        anyhow::ensure!(reply.status == 200, "bulk post: {}", reply.message());
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("a bulk client panicked"))
    })?;
    Ok(events.len() as f64 / begin.elapsed().as_secs_f64())
}

pub(crate) fn run(a: &ClientArgs, durability_os: bool) -> anyhow::Result<std::process::ExitCode> {
    let dir = a.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("sealog-bench-client-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    let (server, key) = crate::bench_http::serve_with_key(
        &dir,
        sealog_server::keys::Role::Writer,
        durability_os,
        &[],
    )?;
    let url = format!("http://{}", server.addr);
    eprintln!("bench client: server at {url}, dir {}", dir.display());

    // The ceiling: the server's own bulk ingest of the same kind of events, one connection
    // (as the emitter's one sender) before and after the emitter's phase, so that neither
    // meets a larger log than the other, then two connections.
    let n = a.events;
    let one_before = bulk(&url, &key, &events(a.kind, 0, n), a.batch, 1)?;
    // One emitter: every emit timed; throughput from the first emit to a completed flush.
    let spool = dir.join("bench-spool");
    let mut config = sealog_client::Config::new(&url, Some(&key), &spool);
    config.batch_max_events = a.batch;
    config.queue_capacity = n as usize;
    let emitter = sealog_client::Emitter::new(config)?;
    let batch = events(a.kind, 2 * n, n);
    let mut lat = Vec::with_capacity(n as usize);
    let begin = Instant::now();
    for e in batch {
        let t = Instant::now();
        emitter.emit(e);
        lat.push(t.elapsed().as_nanos() as u64);
    }
    let emitted_in = begin.elapsed().as_secs_f64();
    anyhow::ensure!(
        emitter.flush(Duration::from_secs(600)),
        "the emitter did not drain: {:?}",
        emitter.stats()
    );
    let secs = begin.elapsed().as_secs_f64();
    let stats = emitter.close(Duration::from_secs(10));
    lat.sort_unstable();
    let rate = n as f64 / secs;
    let one_after = bulk(&url, &key, &events(a.kind, 3 * n, n), a.batch, 1)?;
    let two = bulk(&url, &key, &events(a.kind, 4 * n, n), a.batch, 2)?;
    let one = (one_before + one_after) / 2.0;
    println!(
        "{}",
        json!({"bench": "client.server_bulk_http", "events": n, "batch": a.batch,
               "events_per_s_1_client_before": one_before.round(),
               "events_per_s_1_client_after": one_after.round(),
               "events_per_s_2_clients": two.round()})
    );
    println!(
        "{}",
        json!({"bench": "client.emit", "events": n, "batch": a.batch,
               "emit_p50_us": pct(&lat, 0.5), "emit_p99_us": pct(&lat, 0.99),
               "emit_p999_us": pct(&lat, 0.999), "emit_max_us": pct(&lat, 1.0),
               "all_emitted_in_s": emitted_in, "drained_in_s": secs,
               "events_per_s": rate.round(),
               "share_of_server_bulk_1_client": (rate / one * 100.0).round() / 100.0,
               "share_of_server_bulk_2_clients": (rate / two * 100.0).round() / 100.0,
               "acknowledged": stats.acknowledged, "spooled": stats.spooled,
               "failures": stats.failures})
    );
    drop(server);
    if a.dir.is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(std::process::ExitCode::SUCCESS)
}
