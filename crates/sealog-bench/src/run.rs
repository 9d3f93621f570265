//! The comparison: the same workloads against each engine in turn, one engine at a time so
//! that none competes with another for the machine.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::engines::{Engine, Hits, Tamper};
use crate::machine::nearest_rank;
use crate::workload::{self, SINGLE_BASE, SINGLE_LEVEL_SPAN};

/// What to run. Every size is a parameter so the same code runs at full size and, in the
/// test suite, at a tiny one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Options {
    /// Decision-log events of the bulk ingest.
    pub events: u64,
    /// Events (and entries) per batch.
    pub batch: usize,
    /// Threads appending batches at once.
    pub producers: usize,
    /// Key/value-like entries.
    pub entries: u64,
    /// Concurrent writers of each single-event level.
    pub single_writers: Vec<usize>,
    /// Each single-event level stops after this many events…
    pub single_events: u64,
    /// …or after this many seconds, whichever comes first.
    pub single_seconds: f64,
    /// Queries of each shape.
    pub queries: usize,
    /// Records a query may return.
    pub query_limit: usize,
    /// Width of the time-window query, seconds of event time.
    pub window_secs: i64,
    /// Batches of the ingest-method trial (engines that have a choice).
    pub tune_batches: usize,
    /// Events generated ahead of the timed ingest (memory bound).
    pub chunk: usize,
    /// fdatasync'd 4 KiB appends of each engine's own fsync-latency measurements.
    pub fsync_samples: usize,
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            events: 1_000_000,
            batch: 1000,
            producers: 2,
            entries: 1_000_000,
            single_writers: vec![1, 16, 64],
            single_events: 50_000,
            single_seconds: 10.0,
            queries: 1000,
            query_limit: 100,
            window_secs: 300,
            tune_batches: 10,
            chunk: 100_000,
            fsync_samples: crate::machine::FSYNC_SAMPLES,
            seed: 1,
        }
    }
}

/// An engine to compare, and where it keeps its data.
#[derive(Debug, Clone)]
pub enum EngineSpec {
    /// The embedded store's directory, and whether its sealed segments are compressed.
    Sealog(PathBuf, bool),
    /// Sealog on its PostgreSQL backend: the cluster's owner connection, a state directory for
    /// the logs' keys, and how many servers share the database.
    SealogPg(String, PathBuf, usize),
    Postgres(String),
    Sqlite(PathBuf),
}

impl EngineSpec {
    pub fn open(&self) -> anyhow::Result<Box<dyn Engine>> {
        Ok(match self {
            EngineSpec::Sealog(dir, compress) => {
                Box::new(crate::engines::sealog::Sealog::open(dir, *compress)?)
            }
            EngineSpec::SealogPg(owner, state, servers) => Box::new(
                crate::engines::sealog::SealogPg::open(owner, state, *servers)?,
            ),
            EngineSpec::Postgres(conninfo) => {
                Box::new(crate::engines::postgres::Postgres::open(conninfo)?)
            }
            EngineSpec::Sqlite(dir) => Box::new(crate::engines::sqlite::Sqlite::open(dir)?),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Throughput {
    /// Items offered.
    pub items: u64,
    /// Items the engine stored as new.
    pub added: u64,
    pub seconds: f64,
    pub per_s: f64,
    /// Producer bytes per second, MiB.
    pub mib_s: f64,
}

impl Throughput {
    fn new(items: u64, added: u64, bytes: u64, seconds: f64) -> Self {
        let s = seconds.max(1e-9);
        Throughput {
            items,
            added,
            seconds,
            per_s: (items as f64 / s).round(),
            mib_s: (bytes as f64 / (1 << 20) as f64 / s * 10.0).round() / 10.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryFigure {
    pub shape: String,
    /// `None` only in saved reports of engines that could not answer the shape; `note` says why.
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub samples: usize,
    /// Records returned over all samples.
    pub hits: u64,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SingleFigure {
    pub writers: usize,
    pub events: u64,
    pub added: u64,
    pub seconds: f64,
    pub per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineReport {
    pub name: String,
    pub setup: String,
    /// fdatasync latency of a 4 KiB append (p50, p99, ms) measured just before the bulk
    /// ingest and just before the single-event levels.
    pub fsync_ms_before_bulk: (f64, f64),
    pub fsync_ms_before_single: (f64, f64),
    pub bulk: Throughput,
    /// New records when the first batch was ingested a second time (dedupe: must be 0).
    pub dedupe_readded: u64,
    pub bytes_on_disk: u64,
    pub bytes_per_record: f64,
    pub queries: Vec<QueryFigure>,
    pub single: Vec<SingleFigure>,
    pub entries: Throughput,
    pub events_stored: u64,
    pub events_expected: u64,
    pub entries_stored: u64,
    pub entries_expected: u64,
    pub tamper: Tamper,
}

/// The query shapes, in report order.
pub const SHAPES: [&str; 4] = ["record_id", "subject_history", "feature_key", "time_window"];

fn log(engine: &str, what: impl std::fmt::Display) {
    eprintln!("[{engine}] {what}");
}

/// Runs every workload against one engine.
/// `probe_dir` is on the file system the engine writes to; fsync latency is measured there.
pub fn run_engine(
    engine: &mut dyn Engine,
    o: &Options,
    probe_dir: &std::path::Path,
) -> anyhow::Result<EngineReport> {
    let name = engine.name().to_string();
    anyhow::ensure!(
        o.batch > 0 && o.producers > 0,
        "batch and producers must be positive"
    );

    if o.tune_batches > 0 {
        let sample: Vec<Vec<String>> = (0..o.tune_batches as u64)
            .map(|b| {
                (0..o.batch as u64)
                    .map(|k| {
                        workload::decision_event(
                            o.seed,
                            (SINGLE_BASE >> 1) + b * o.batch as u64 + k,
                        )
                        .text
                    })
                    .collect()
            })
            .collect();
        engine.tune(&sample)?;
    }
    log(&name, engine.setup());

    let fsync_ms_before_bulk = crate::machine::fsync_latency_ms(probe_dir, o.fsync_samples)?;
    let bulk = bulk_ingest(&*engine, o)?;
    log(
        &name,
        format!(
            "bulk: {} events in {:.1} s, {} events/s, {} MiB/s",
            bulk.items, bulk.seconds, bulk.per_s, bulk.mib_s
        ),
    );
    let first: Vec<String> = (0..o.batch.min(o.events as usize) as u64)
        .map(|i| workload::decision_event(o.seed, i).text)
        .collect();
    let dedupe_readded = if first.is_empty() {
        0
    } else {
        engine.append_batch(&first)?
    };

    let bytes_on_disk = engine.settle()?;
    let bytes_per_record = (bytes_on_disk as f64 / bulk.added.max(1) as f64).round();
    log(
        &name,
        format!("{bytes_on_disk} bytes on disk, {bytes_per_record} per record"),
    );

    if o.events > 0 {
        // Untimed, with targets of their own: every engine's caches meet the queries warm.
        query_all(&*engine, o, o.queries.div_ceil(10), 0x3A3A)?;
    }
    let queries = if o.events > 0 {
        query_all(&*engine, o, o.queries, 0)?
    } else {
        Vec::new()
    };
    for q in &queries {
        log(
            &name,
            format!(
                "query {}: p50 {:?} µs, p99 {:?} µs, {} hits{}",
                q.shape,
                q.p50_us,
                q.p99_us,
                q.hits,
                q.note
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            ),
        );
    }

    let mut single = Vec::new();
    engine.warm(o.single_writers.iter().copied().max().unwrap_or(0))?;
    let fsync_ms_before_single = crate::machine::fsync_latency_ms(probe_dir, o.fsync_samples)?;
    log(
        &name,
        format!(
            "fdatasync p50 {:.3} ms before bulk, {:.3} ms before single-event levels",
            fsync_ms_before_bulk.0, fsync_ms_before_single.0
        ),
    );
    for (level, &writers) in o.single_writers.iter().enumerate() {
        let f = single_events(&*engine, o, level as u64, writers)?;
        log(
            &name,
            format!(
                "single-event, {writers} writers: {} events in {:.1} s, {} events/s, p50 {} ms, p99 {} ms",
                f.events, f.seconds, f.per_s, f.p50_ms, f.p99_ms
            ),
        );
        single.push(f);
    }

    let entries = ingest_entries(&*engine, o)?;
    log(
        &name,
        format!(
            "entries: {} in {:.1} s, {} entries/s",
            entries.items, entries.seconds, entries.per_s
        ),
    );

    let (events_stored, entries_stored) = engine.counts()?;
    let tamper = engine.tamper()?;
    log(
        &name,
        format!("UPDATE: {:?}; DELETE: {:?}", tamper.update, tamper.delete),
    );
    Ok(EngineReport {
        setup: engine.setup(),
        name,
        fsync_ms_before_bulk,
        fsync_ms_before_single,
        events_expected: bulk.added + single.iter().map(|s| s.added).sum::<u64>(),
        entries_expected: entries.added,
        bulk,
        dedupe_readded,
        bytes_on_disk,
        bytes_per_record,
        queries,
        single,
        entries,
        events_stored,
        entries_stored,
        tamper,
    })
}

/// Runs `work(batch index)` on `o.producers` threads over `batches` batches; returns the
/// sum of what each call returned.
fn on_producers(
    producers: usize,
    batches: usize,
    work: impl Fn(usize) -> anyhow::Result<u64> + Sync,
) -> anyhow::Result<u64> {
    let next = AtomicU64::new(0);
    let added = AtomicU64::new(0);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..producers)
            .map(|_| {
                // Named, so that a profile tells the producers from the generator.
                let named = std::thread::Builder::new().name("producer".into());
                named.spawn_scoped(s, || -> anyhow::Result<()> {
                    loop {
                        let b = next.fetch_add(1, Ordering::Relaxed) as usize;
                        if b >= batches {
                            return Ok(());
                        }
                        added.fetch_add(work(b)?, Ordering::Relaxed);
                    }
                })
            })
            .collect::<std::io::Result<_>>()?;
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("producer thread panicked"))
    })?;
    Ok(added.into_inner())
}

fn bulk_ingest(engine: &dyn Engine, o: &Options) -> anyhow::Result<Throughput> {
    let chunk = o.chunk.max(o.batch) as u64 / o.batch as u64 * o.batch as u64;
    let (mut added, mut bytes, mut timed) = (0, 0u64, Duration::ZERO);
    let mut start = 0;
    while start < o.events {
        let end = (start + chunk).min(o.events);
        let events: Vec<String> = (start..end)
            .map(|i| workload::decision_event(o.seed, i).text)
            .collect();
        bytes += events.iter().map(|e| e.len() as u64).sum::<u64>();
        let t = Instant::now();
        added += on_producers(o.producers, events.len().div_ceil(o.batch), |b| {
            let lo = b * o.batch;
            engine.append_batch(&events[lo..(lo + o.batch).min(events.len())])
        })?;
        timed += t.elapsed();
        start = end;
    }
    Ok(Throughput::new(o.events, added, bytes, timed.as_secs_f64()))
}

fn ingest_entries(engine: &dyn Engine, o: &Options) -> anyhow::Result<Throughput> {
    let chunk = o.chunk.max(o.batch) as u64 / o.batch as u64 * o.batch as u64;
    let (mut added, mut bytes, mut timed) = (0, 0u64, Duration::ZERO);
    let mut start = 0;
    while start < o.entries {
        let end = (start + chunk).min(o.entries);
        let entries: Vec<workload::Entry> =
            (start..end).map(|i| workload::entry(o.seed, i)).collect();
        bytes += entries
            .iter()
            .map(|e| (e.key.len() + e.value.len()) as u64)
            .sum::<u64>();
        let t = Instant::now();
        added += on_producers(o.producers, entries.len().div_ceil(o.batch), |b| {
            let lo = b * o.batch;
            engine.append_entries(&entries[lo..(lo + o.batch).min(entries.len())])
        })?;
        timed += t.elapsed();
        start = end;
    }
    Ok(Throughput::new(
        o.entries,
        added,
        bytes,
        timed.as_secs_f64(),
    ))
}

fn single_events(
    engine: &dyn Engine,
    o: &Options,
    level: u64,
    writers: usize,
) -> anyhow::Result<SingleFigure> {
    let base = SINGLE_BASE + level * SINGLE_LEVEL_SPAN;
    let events: Vec<String> = (0..o.single_events)
        .map(|k| workload::decision_event(o.seed, base + k).text)
        .collect();
    let next = AtomicU64::new(0);
    let added = AtomicU64::new(0);
    let latencies = Mutex::new(Vec::with_capacity(events.len()));
    let deadline = Duration::from_secs_f64(o.single_seconds);
    let t = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|_| {
                let named = std::thread::Builder::new().name("single-writer".into());
                named.spawn_scoped(s, || -> anyhow::Result<()> {
                    let mut mine = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed) as usize;
                        if k >= events.len() || t.elapsed() >= deadline {
                            break;
                        }
                        let t0 = Instant::now();
                        let new = engine.append_one(&events[k])?;
                        mine.push(t0.elapsed().as_nanos() as u64);
                        added.fetch_add(u64::from(new), Ordering::Relaxed);
                    }
                    latencies.lock().expect("latency lock").extend(mine);
                    Ok(())
                })
            })
            .collect::<std::io::Result<_>>()?;
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("writer thread panicked"))
    })?;
    let seconds = t.elapsed().as_secs_f64();
    let mut lat = latencies.into_inner().expect("latency lock");
    lat.sort_unstable();
    let done = lat.len() as u64;
    let ms = |p| (nearest_rank(&lat, p) as f64 / 1e4).round() / 100.0;
    Ok(SingleFigure {
        writers,
        events: done,
        added: added.into_inner(),
        seconds,
        per_s: (done as f64 / seconds.max(1e-9)).round(),
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
    })
}

/// `samples` queries of each shape; `salt` picks their targets.
fn query_all(
    engine: &dyn Engine,
    o: &Options,
    samples: usize,
    salt: u64,
) -> anyhow::Result<Vec<QueryFigure>> {
    let mut out = Vec::new();
    for (s, shape) in SHAPES.into_iter().enumerate() {
        let mut g = workload::Gen::new(o.seed ^ salt ^ (0xC0FFEE + s as u64));
        let mut lat = Vec::with_capacity(samples);
        let mut hits = 0u64;
        for _ in 0..samples {
            let i = g.below(o.events);
            let ev = workload::decision_event(o.seed, i);
            let found = match shape {
                "record_id" => {
                    let id = engine.record_id(&ev.text)?;
                    let t = Instant::now();
                    let found = engine.get(&id)?;
                    lat.push(t.elapsed().as_nanos() as u64);
                    anyhow::ensure!(found, "{}: record of event {i} not found", engine.name());
                    Hits::Found(1)
                }
                "subject_history" => {
                    let t = Instant::now();
                    let h = engine.subject_history(&ev.subject, o.query_limit)?;
                    lat.push(t.elapsed().as_nanos() as u64);
                    h
                }
                "feature_key" => {
                    let (key_type, key_id) = &ev.feature_keys[0];
                    let t = Instant::now();
                    let h = engine.by_feature_key(key_type, key_id, o.query_limit)?;
                    lat.push(t.elapsed().as_nanos() as u64);
                    h
                }
                _ => {
                    let from = ev.time_ns - ev.time_ns.rem_euclid(1_000_000_000);
                    let t = Instant::now();
                    let h = engine.time_window(
                        from,
                        from + o.window_secs * 1_000_000_000,
                        o.query_limit,
                    )?;
                    lat.push(t.elapsed().as_nanos() as u64);
                    h
                }
            };
            let Hits::Found(n) = found;
            hits += n as u64;
        }
        lat.sort_unstable();
        let us = |p| (nearest_rank(&lat, p) as f64 / 100.0).round() / 10.0;
        out.push(QueryFigure {
            shape: shape.to_string(),
            p50_us: Some(us(0.5)),
            p99_us: Some(us(0.99)),
            samples: lat.len(),
            hits,
            note: None,
        });
    }
    Ok(out)
}
