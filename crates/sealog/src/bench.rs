//! `sealog bench …`: throughput and latency figures. Benchmarks report; they never assert.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sealog_ledger::{Author, Durability, Ledger, LedgerConfig, StoreConfig, Undeclared};
use serde_json::json;

#[derive(clap::Subcommand)]
pub(crate) enum Bench {
    /// Durable bulk ingest of complete decision-log records (~1 KiB), raw or through the packs.
    Ingest(IngestArgs),
    /// Inclusion-proof latency on an existing store: produce from the disk-backed tree, and verify.
    Proofs(ProofArgs),
    /// Export throughput on an existing store: JSONL and Parquet export, then `verify-export`
    /// of each, in MB/s of the export file.
    Export(ExportArgs),
}

#[derive(clap::Args)]
pub(crate) struct ExportArgs {
    /// The store to export (e.g. one left by `bench ingest --dir`).
    #[arg(long)]
    dir: PathBuf,
    /// Where the export files go (default: a fresh temporary directory, removed after).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Export only records of this type (default: all).
    #[arg(long = "type")]
    event_type: Option<String>,
}

#[derive(clap::Args)]
pub(crate) struct ProofArgs {
    /// The store to read (e.g. one left by `bench ingest --dir`).
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value_t = 100_000)]
    samples: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(clap::Args)]
pub(crate) struct IngestArgs {
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Events per append call.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Threads generating and preparing batches; as many committer threads append them, so
    /// each producer has a batch in flight while it prepares the next.
    #[arg(long, default_value_t = 2)]
    producers: usize,
    /// Directory for the benchmark's store (default: a fresh temporary directory, removed after).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seed for the deterministic generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Ingest through the decision-log pack (validation, quarantine) instead of as an
    /// undeclared type that passes envelope checks only.
    #[arg(long)]
    validate: bool,
    /// With --validate: the percentage of events that lack a required field, to be quarantined.
    #[arg(long, default_value_t = 10, requires = "validate")]
    incomplete_percent: u64,
    /// Keep sealed segments as they were written instead of compressing them, to measure
    /// what compression costs ingest and saves on disk.
    #[arg(long)]
    plain_segments: bool,
    /// Events of about 600 bytes (the envelope and a short data object) instead of the
    /// ~1.8 KB decision records: the size the raw-append target names.
    #[arg(long, conflicts_with = "validate")]
    small: bool,
}

pub(crate) fn run(b: &Bench, durability: Durability) -> anyhow::Result<std::process::ExitCode> {
    match b {
        Bench::Ingest(a) => ingest(a, durability)?,
        Bench::Proofs(a) => proofs(a)?,
        Bench::Export(a) => export(a)?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// A small deterministic generator (xorshift64*), so every engine and run sees the same data.
pub(crate) struct Gen(u64);

impl Gen {
    pub(crate) fn new(seed: u64) -> Self {
        Gen(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Decision-log event number `i` as the bytes a producer would send: a complete record of
/// seed 002 §5.4 (every required block, ~1 KiB; no complete record fits in 600 bytes), with
/// keys in producer order (not canonical). With `complete = false` the OFP snapshot hash is
/// missing, so the decision-log pack quarantines it (INCOMPLETE_PROVENANCE).
pub(crate) fn decision_event(i: u64, g: &mut Gen, complete: bool) -> String {
    typed_decision_event(DECISION_TYPE, i, g, complete)
}

/// The decision-log pack's type.
const DECISION_TYPE: &str = "decision-log.audit_decision_record";
/// The same record as a type no pack declares: appended after envelope checks alone.
const UNDECLARED_TYPE: &str = "bench.undeclared_decision";

fn typed_decision_event(event_type: &str, i: u64, g: &mut Gen, complete: bool) -> String {
    const OUTCOMES: [&str; 4] = ["APPROVE", "DECLINE", "REVIEW", "STEP_UP"];
    const MODES: [&str; 3] = ["NORMAL", "DEGRADED_1", "DEGRADED_2"];
    let r = g.next();
    let run = r % 64;
    let t = event_time(i, r);
    let fsh = complete.then(|| g.next());
    let idem = g.next();
    let (part, outcome) = (r % 4, OUTCOMES[(r >> 24) as usize % 4]);
    // Written piece by piece rather than with `format!`, whose machinery cost about a twelfth
    // of what preparing the event does, on the cores the benchmark measures.
    let mut e = Text(String::with_capacity(1800));
    let id = |e: &mut Text| {
        e.s("evt_txn_");
        e.dec(i, 12);
    };
    envelope(&mut e, i, r, event_type, &t, &id);
    e.s(r#""kind":"audit_decision_record","contract_version":"dla_public_contracts_v0","context_pins":{"scenario_id":"scn_"#);
    e.dec(run % 3, 1);
    e.s(r#"","run_id":"run_"#);
    e.dec(run, 4);
    e.s(r#"","manifest_fingerprint":"mf_"#);
    e.hex(run * 7919, 8);
    e.s(r#"","parameter_hash":"ph_"#);
    e.hex(run * 104_729, 8);
    for name in ["decision_id", "request_id", "event_id"] {
        e.s(if name == "decision_id" {
            r#""},""#
        } else {
            r#"",""#
        });
        e.s(name);
        e.s(r#"":""#);
        id(&mut e);
    }
    e.s(r#"","event":{"event_ref":"eb://admitted_events/"#);
    e.dec(part, 1);
    e.s("/");
    e.dec(i, 1);
    e.s(r#"","event_time_utc":""#);
    e.s(&t);
    e.s(r#"","event_type":"transaction_event"},"degrade":{"mode":""#);
    e.s(MODES[(r >> 8) as usize % 3]);
    e.s(r#"","capabilities_mask":{"allow_ieg":false,"allowed_feature_groups":["*"],"allow_model_primary":true,"allow_model_stage2":true,"allow_fallback_heuristics":true,"action_posture":"NORMAL"},"triggers":[]},"#);
    e.s(r#""features":{"feature_keys_used":[{"key_type":"account","key_id":"e_"#);
    e.hex((r >> 16) % 100_000, 6);
    e.s(r#""},{"key_type":"device","key_id":"d_"#);
    e.hex((r >> 40) % 100_000, 6);
    e.s(r#""}],"#);
    if let Some(fsh) = fsh {
        e.s(r#""feature_snapshot_hash":"fsh_"#);
        e.hex(fsh, 16);
        e.s(r#"","#);
    }
    e.s(r#""group_versions_used":[{"group_name":"txn_velocity","group_version":"1.0"}],"#);
    e.s(r#""freshness":[{"group_name":"txn_velocity","group_version":"1.0","ttl_seconds":600,"age_seconds":"#);
    e.dec((r >> 32) % 600, 1);
    e.s(r#","stale":false}],"input_basis":{"stream_name":"admitted_events","watermark_basis":{"partition_"#);
    e.dec(part, 1);
    e.s(r#"":"#);
    e.dec(i, 1);
    e.s(r#"}}},"ieg":{"used":false,"reason":"DISALLOWED"},"decision":{"decision_outcome":""#);
    e.s(outcome);
    e.s(r#"","actions":[{"action_type":""#);
    e.s(outcome);
    e.s(r#"_TRANSACTION","idempotency_key":""#);
    e.hex(idem, 16);
    e.s(r#""}]},"df_provenance":{"df_policy_ref":"df_policy_v0","stage_summary":[{"stage":"stage0_guardrails","status":"ran"}],"#);
    e.s(r#""timings":{"started_at_utc":""#);
    e.s(&t);
    e.s(r#"","ended_at_utc":""#);
    e.s(&t);
    e.s(r#""}}}}"#);
    e.0
}

/// Event `i`'s time: fifty events a second, microseconds drawn from `r`.
fn event_time(i: u64, r: u64) -> String {
    let secs = 1_767_400_000 + i / 50;
    sealog_model::time::format_micros((secs as i64) * 1_000_000_000 + (r % 1_000_000) as i64 * 1000)
}

/// The envelope of generated event `i`, up to the opening of its `data`: its tenant and
/// actor drawn from `r`, its subject written by `subject`.
fn envelope(e: &mut Text, i: u64, r: u64, event_type: &str, t: &str, subject: &dyn Fn(&mut Text)) {
    e.s(r#"{"specversion":"1.0","id":"evt_txn_"#);
    e.dec(i, 12);
    e.s(r#"","source":"decision-fabric","type":""#);
    e.s(event_type);
    e.s(r#"","time":""#);
    e.s(t);
    e.s(r#"","tenant":"run_"#);
    e.dec(r % 64, 4);
    e.s(r#"","subject":""#);
    subject(e);
    e.s(r#"","actor":{"type":"system","id":"df-"#);
    e.dec(r % 8, 1);
    e.s(r#""},"data":{"#);
}

/// An event of about 600 bytes of an undeclared type: the envelope of
/// [`typed_decision_event`] and a short data object.
fn small_event(i: u64, g: &mut Gen) -> String {
    let r = g.next();
    let t = event_time(i, r);
    let mut e = Text(String::with_capacity(700));
    envelope(&mut e, i, r, UNDECLARED_TYPE, &t, &|e: &mut Text| {
        e.s("acct_");
        e.hex((r >> 16) % 100_000, 6);
    });
    e.s(r#""kind":"payment_decision","decision_id":"dec_"#);
    e.dec(i, 12);
    e.s(r#"","outcome":""#);
    e.s(["APPROVE", "DECLINE", "REVIEW", "STEP_UP"][(r >> 24) as usize % 4]);
    e.s(r#"","amount_minor":"#);
    e.dec((r >> 8) % 1_000_000, 1);
    e.s(r#","currency":"ZAR","channel":"card_present","merchant_id":"m_"#);
    e.hex((r >> 32) % 50_000, 5);
    e.s(r#"","device_id":"d_"#);
    e.hex((r >> 40) % 100_000, 6);
    e.s(r#"","score":0."#);
    e.dec((r >> 20) % 1000, 3);
    e.s(r#","model":"risk_v7","reasons":["velocity_ok","device_known"],"idempotency_key":""#);
    e.hex(g.next(), 16);
    e.s(r#"","decided_at":""#);
    e.s(&t);
    e.s(r#""}}"#);
    e.0
}

/// A generated event's text as it is written.
struct Text(String);

impl Text {
    fn s(&mut self, piece: &str) {
        self.0.push_str(piece);
    }

    /// `v` in decimal, zero-padded to at least `width` digits.
    fn dec(&mut self, v: u64, width: usize) {
        self.digits::<10>(v, width);
    }

    /// `v` in lowercase hexadecimal, zero-padded to at least `width` digits.
    fn hex(&mut self, v: u64, width: usize) {
        self.digits::<16>(v, width);
    }

    fn digits<const BASE: u64>(&mut self, mut v: u64, width: usize) {
        let mut buf = [b'0'; 20];
        let mut at = buf.len();
        while v > 0 || at == buf.len() {
            at -= 1;
            buf[at] = b"0123456789abcdef"[(v % BASE) as usize];
            v /= BASE;
        }
        let from = at.min(buf.len() - width);
        self.0
            .push_str(std::str::from_utf8(&buf[from..]).expect("ASCII digits"));
    }
}

/// Counts a producer out when it stops, however it stops.
struct Finished<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Median and highest RSS of the samples taken while each tenth of the events was appended.
fn rss_levels(samples: &[(u64, u64)], every: u64) -> Vec<serde_json::Value> {
    let mut tenths: std::collections::BTreeMap<u64, Vec<u64>> = Default::default();
    for &(at, mib) in samples {
        tenths.entry(at / every).or_default().push(mib);
    }
    tenths
        .into_iter()
        .filter(|(k, v)| *k < 10 && !v.is_empty())
        .map(|(k, mut v)| {
            v.sort_unstable();
            json!({"events": (k + 1) * every, "median_mib": v[v.len() / 2],
                   "max_mib": v[v.len() - 1], "samples": v.len()})
        })
        .collect()
}

fn rss() -> (u64, u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    (
        field("VmRSS:") / 1024,
        field("RssAnon:") / 1024,
        field("RssFile:") / 1024,
    )
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// This machine's own limits, measured in the same run as the figures they bound: fsync
/// latency (4 KiB appends, each fdatasync'd), sequential write bandwidth with a final
/// fdatasync, single-core SHA-256 on 600-byte inputs (the Merkle leaf path), and how long one
/// thread takes to wake another and be woken back.
pub(crate) fn machine(dir: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    use std::io::Write;
    let path = dir.join("machine-probe");
    let mut f = std::fs::File::create(&path)?;
    let block = vec![0x5au8; 4096];
    let mut syncs = Vec::with_capacity(200);
    for _ in 0..200 {
        f.write_all(&block)?;
        let t = Instant::now();
        f.sync_data()?;
        syncs.push(t.elapsed().as_nanos() as u64);
    }
    syncs.sort_unstable();
    let mib = vec![0xa5u8; 1 << 20];
    let t = Instant::now();
    for _ in 0..256 {
        f.write_all(&mib)?;
    }
    f.sync_data()?;
    let write_mib_s = 256.0 / t.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path)?;
    let input = [0x42u8; 600];
    let rounds = 400_000u64;
    let t = Instant::now();
    for i in 0..rounds {
        std::hint::black_box(sealog_merkle::leaf_hash(std::hint::black_box(
            &input[..600 - (i % 2) as usize],
        )));
    }
    let sha_mib_s = (rounds * 600) as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64();
    Ok(json!({
        "fsync_ms": {"p50": percentile(&syncs, 0.5) / 1000.0, "p99": percentile(&syncs, 0.99) / 1000.0},
        "seq_write_fsync_mib_s": write_mib_s.round(),
        "sha256_600b_mib_s_per_core": sha_mib_s.round(),
        "thread_wake_round_trip_us": wake_round_trip_us(),
    }))
}

/// Percentiles (µs) of a round trip between two threads that each block until the other
/// hands them a token: two wake-ups of a sleeping thread, what every hand-off of a request
/// between threads costs at least. Where a core sleeps when idle (a virtual machine's halted
/// core), the wake-up waits for it and the figure grows. A pause now and then lets the cores
/// fall idle as they do between requests.
pub(crate) fn wake_round_trip_us() -> serde_json::Value {
    let (there, echo_rx) = std::sync::mpsc::channel::<u32>();
    let (echo, back) = std::sync::mpsc::channel::<u32>();
    let echoing = std::thread::spawn(move || {
        for token in echo_rx {
            if echo.send(token).is_err() {
                break;
            }
        }
    });
    let mut trips: Vec<u64> = Vec::with_capacity(5000);
    for i in 0..5000u32 {
        if i % 100 == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
        let t = Instant::now();
        if there.send(i).is_err() || back.recv().is_err() {
            break;
        }
        trips.push(t.elapsed().as_nanos() as u64);
    }
    drop(there);
    let _ = echoing.join();
    if trips.is_empty() {
        return serde_json::Value::Null;
    }
    trips.sort_unstable();
    let us = |p: f64| (percentile(&trips, p) * 100.0).round() / 100.0;
    json!({"p50": us(0.5), "p90": us(0.9), "p99": us(0.99)})
}

fn ingest(a: &IngestArgs, durability: Durability) -> anyhow::Result<()> {
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile_dir()?;
            tmp.clone()
        }
    };
    std::fs::create_dir_all(&dir)?;
    let machine = machine(&dir)?;
    eprintln!("machine: {machine}");
    let ledger = Ledger::open(
        &dir,
        LedgerConfig {
            store: StoreConfig {
                durability,
                compress_sealed: !a.plain_segments,
                ..StoreConfig::default()
            },
            packs: sealog_ledger::Packs::builtin(),
            undeclared: if a.validate {
                Undeclared::Quarantine
            } else {
                Undeclared::Accept
            },
        },
    )?;
    let start_len = ledger.len();
    let quarantined = AtomicU64::new(0);
    let next = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let prepare_ns = AtomicU64::new(0);
    let append_ns = AtomicU64::new(0);
    let cpu_before = crate::bench_http::cpu_seconds("self");
    let begin = Instant::now();
    let report_every = (a.events / 10).max(1);
    let reported = AtomicU64::new(0);
    // Resident memory sampled all along, not only at each tenth: a flush or merge that
    // happens to run at a tenth's mark would otherwise be taken for the level.
    let done = AtomicU64::new(0);
    // Producers and committers: resident memory is sampled until the last of them stops.
    let live = std::sync::atomic::AtomicUsize::new(2 * a.producers);
    let samples = std::sync::Mutex::new(Vec::<(u64, u64)>::new());
    eprintln!(
        "bench ingest: {} events, batch {}, {} producers, durability {durability:?}, {}, dir {}",
        a.events,
        a.batch,
        a.producers,
        if a.validate {
            format!(
                "validated by the packs, {}% incomplete",
                a.incomplete_percent
            )
        } else {
            "an undeclared type: envelope checks only, no pack".to_string()
        },
        dir.display()
    );
    // Producers hand each prepared batch to a committer and go on with the next, as a bulk
    // client that keeps a batch in flight does: no core waits for a group's fsync.
    let (to_commit, batches) =
        std::sync::mpsc::sync_channel::<Vec<sealog_ledger::Prepared>>(a.producers);
    let batches = std::sync::Mutex::new(batches);
    // The first commit that fails stops the producers and is the run's error.
    let failed = std::sync::atomic::AtomicBool::new(false);
    let failure = std::sync::Mutex::new(None::<anyhow::Error>);
    std::thread::scope(|s| {
        s.spawn(|| {
            while live.load(Ordering::Relaxed) > 0 {
                let at = done.load(Ordering::Relaxed);
                samples.lock().expect("samples").push((at, rss().0));
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        for _ in 0..a.producers {
            let (ledger, next, bytes, prepare_ns) = (&ledger, &next, &bytes, &prepare_ns);
            let (to_commit, live) = (to_commit.clone(), &live);
            let failed = &failed;
            s.spawn(move || {
                let _finished = Finished(live);
                // As `sealog append`'s preparers do.
                sealog_ledger::prepare_below_the_writer();
                loop {
                    let first = next.fetch_add(a.batch as u64, Ordering::Relaxed);
                    if first >= a.events || failed.load(Ordering::Relaxed) {
                        return;
                    }
                    let last = (first + a.batch as u64).min(a.events);
                    let t0 = Instant::now();
                    let raws: Vec<String> = (first..last)
                        .map(|i| {
                            // Seeded per event, so the data does not depend on how producers interleave.
                            let mut g = Gen::new(a.seed ^ i.wrapping_mul(0x9E37_79B9));
                            let complete = !a.validate || (i * 7919) % 100 >= a.incomplete_percent;
                            let ty = if a.validate {
                                DECISION_TYPE
                            } else {
                                UNDECLARED_TYPE
                            };
                            if a.small {
                                small_event(i, &mut g)
                            } else {
                                typed_decision_event(ty, i, &mut g, complete)
                            }
                        })
                        .collect();
                    let n: u64 = raws.iter().map(|e| e.len() as u64 + 120).sum();
                    let prepared = raws
                        .iter()
                        .map(|r| ledger.prepare(r.as_bytes(), &Author::ANYONE))
                        .collect();
                    bytes.fetch_add(n, Ordering::Relaxed);
                    prepare_ns.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    if to_commit.send(prepared).is_err() {
                        return;
                    }
                }
            });
        }
        drop(to_commit);
        for _ in 0..a.producers {
            let (ledger, append_ns, reported, quarantined) =
                (&ledger, &append_ns, &reported, &quarantined);
            let (batches, done) = (&batches, &done);
            let (live, failed, failure) = (&live, &failed, &failure);
            s.spawn(move || {
                let _finished = Finished(live);
                let commit = |prepared: Vec<sealog_ledger::Prepared>| -> anyhow::Result<()> {
                    let n = prepared.len() as u64;
                    let t1 = Instant::now();
                    let results = ledger.commit(prepared)?;
                    let q = results.iter().filter(|r| r.status() == "quarantined").count();
                    anyhow::ensure!(
                        results.iter().all(|r| matches!(r.status(), "appended" | "quarantined" | "duplicate")),
                        "a generated event was rejected: {:?}",
                        results.iter().find(|r| r.status() == "rejected")
                    );
                    quarantined.fetch_add(q as u64, Ordering::Relaxed);
                    let at = done.fetch_add(n, Ordering::Relaxed) + n;
                    append_ns.fetch_add(t1.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    let step = at / report_every;
                    if reported.fetch_max(step, Ordering::Relaxed) < step {
                        let (rss, anon, file) = rss();
                        let secs = begin.elapsed().as_secs_f64();
                        eprintln!("  {at:>10} events  {:>9.0} ev/s  RSS {rss} MiB (anon {anon}, file {file})", at as f64 / secs);
                    }
                    Ok(())
                };
                loop {
                    let next = batches.lock().expect("batches").recv();
                    let Ok(prepared) = next else { return };
                    // After a failure the batches still in flight are taken and dropped, so
                    // no producer waits on a full channel.
                    if failed.load(Ordering::Relaxed) {
                        continue;
                    }
                    if let Err(e) = commit(prepared) {
                        failed.store(true, Ordering::Relaxed);
                        failure.lock().expect("failure").get_or_insert(e);
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().expect("failure") {
        return Err(e.context("bench ingest stopped"));
    }
    let elapsed = begin.elapsed();
    // How much of the cores the ingest kept busy: what the producers and the writer leave
    // idle no faster stage turns into events per second.
    let cores_used = crate::bench_http::cpu_seconds("self")
        .zip(cpu_before)
        .map(|(after, before)| ((after - before) / elapsed.as_secs_f64() * 100.0).round() / 100.0);
    let rss_by_tenth = rss_levels(&samples.into_inner().expect("samples"), report_every);
    for t in &rss_by_tenth {
        eprintln!(
            "  RSS up to {:>10} events: median {:>5} MiB, max {:>5} MiB over {} samples",
            t["events"], t["median_mib"], t["max_mib"], t["samples"]
        );
    }
    // The bytes on disk of a log at rest: every sealed segment compressed.
    let waited = Instant::now();
    ledger.await_compression(Duration::from_secs(300));
    let compress_wait_s = waited.elapsed().as_secs_f64();
    let (stats, _) = ledger.stats();
    let commits = stats.commits.max(1);
    let committed = stats.committed_events;
    let fsyncs = stats.fsyncs;
    let phase = |ns: u64| (ns as f64 / 1e7).round() / 100.0;
    let writer_s = json!({"frame": phase(stats.frame_ns), "write": phase(stats.write_ns), "fsync": phase(stats.sync_ns),
                          "index": phase(stats.index_ns), "index_flush": phase(stats.flush_ns)});
    let (rss, anon, file) = rss();
    let appended = ledger.len() - start_len;
    ledger.close()?;
    let on_disk = dir_bytes(&dir);
    let secs = elapsed.as_secs_f64();
    let mib = bytes.load(Ordering::Relaxed) as f64 / (1 << 20) as f64;
    let summary = json!({
        "bench": "ingest",
        "events": a.events,
        "appended": appended,
        "quarantined": quarantined.load(Ordering::Relaxed),
        "validated": a.validate,
        "seconds": secs,
        "events_per_s": (a.events as f64 / secs).round(),
        "record_mib_per_s": (mib / secs * 10.0).round() / 10.0,
        "cores_used": cores_used,
        "commits": commits,
        "fsyncs": fsyncs,
        "writer_seconds": writer_s,
        "mean_commit_events": committed / commits,
        "producer_prepare_s": prepare_ns.load(Ordering::Relaxed) as f64 / 1e9,
        "producer_append_wait_s": append_ns.load(Ordering::Relaxed) as f64 / 1e9,
        "rss_mib": rss, "rss_anon_mib": anon, "rss_file_mib": file,
        "rss_by_tenth": rss_by_tenth,
        "bytes_on_disk_per_record": on_disk / appended.max(1),
        "compressed_segments": stats.compressed_segments,
        "compress_s": phase(stats.compress_ns),
        "compress_wait_after_s": (compress_wait_s * 100.0).round() / 100.0,
        "durability": format!("{durability:?}"),
        "machine": machine,
    });
    println!("{summary}");
    if a.dir.is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

/// The nearest-rank percentile `p` (0 to 1) of sorted samples; `None` when there are none.
pub(crate) fn nearest_rank<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * p).round() as usize)
        .copied()
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    nearest_rank(sorted, p).expect("samples") as f64 / 1000.0
}

fn export(a: &ExportArgs) -> anyhow::Result<()> {
    use sealog_export::{Format, Request};
    let store = crate::open_for_reading(&a.dir, sealog_ledger::Packs::builtin())?;
    let out_dir = match &a.out {
        Some(d) => d.clone(),
        None => tempfile_dir()?,
    };
    std::fs::create_dir_all(&out_dir)?;
    let query = sealog_ledger::Query {
        equals: a
            .event_type
            .iter()
            .map(|t| ("type".to_string(), t.clone()))
            .collect(),
        ..Default::default()
    };
    for format in [Format::Jsonl, Format::Parquet] {
        let out = out_dir.join(format!("bench.{}", format.name()));
        let req = Request {
            selection: sealog_ledger::Selection {
                query: query.clone(),
                ..Default::default()
            },
            format,
            out: out.clone(),
            force: true,
            must_have: Vec::new(),
        };
        let t0 = Instant::now();
        let m = sealog_export::export(&store, &req, &mut |_, _| {})?;
        let export_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let v = sealog_export::verify(&sealog_export::manifest_path(&out), None, store.packs())
            .map_err(|f| anyhow::anyhow!("verify-export: {}", f.0))?;
        let verify_s = t1.elapsed().as_secs_f64();
        let mb = m.bytes as f64 / 1e6;
        println!(
            "{}",
            json!({
                "bench": "export", "format": format.name(), "records": m.count, "bytes": m.bytes,
                "export_s": export_s, "export_mb_per_s": mb / export_s,
                "export_records_per_s": m.count as f64 / export_s,
                "verify_s": verify_s, "verify_mb_per_s": mb / verify_s,
                "verify_records_per_s": v.count as f64 / verify_s,
            })
        );
    }
    if a.out.is_none() {
        std::fs::remove_dir_all(&out_dir)?;
    }
    Ok(())
}

fn proofs(a: &ProofArgs) -> anyhow::Result<()> {
    let store = crate::open_for_reading(&a.dir, sealog_ledger::Packs::builtin())?;
    let cp = store.checkpoint()?;
    let (size, root) = (cp.size, cp.root);
    anyhow::ensure!(size > 0, "the store at {} is empty", a.dir.display());
    let mut g = Gen::new(a.seed);
    let mut produce = Vec::with_capacity(a.samples as usize);
    let mut check = Vec::with_capacity(a.samples as usize);
    let mut record = Vec::new();
    for _ in 0..a.samples {
        let seq = g.next() % size;
        record.clear();
        record.extend(store.get(seq)?.expect("seq below size"));
        let t0 = Instant::now();
        let proof = store.inclusion_proof(seq, size)?;
        let t1 = Instant::now();
        sealog_merkle::verify_inclusion(
            &sealog_merkle::leaf_hash(&record),
            seq,
            size,
            &root,
            &proof,
        )
        .map_err(|e| anyhow::anyhow!("proof of {seq} failed: {e}"))?;
        let t2 = Instant::now();
        produce.push((t1 - t0).as_nanos() as u64);
        check.push((t2 - t1).as_nanos() as u64);
    }
    produce.sort_unstable();
    check.sort_unstable();
    println!(
        "{}",
        json!({
            "bench": "proofs", "tree_size": size, "samples": a.samples,
            "produce_us": {"p50": percentile(&produce, 0.5), "p99": percentile(&produce, 0.99), "max": percentile(&produce, 1.0)},
            "verify_us": {"p50": percentile(&check, 0.5), "p99": percentile(&check, 0.99)},
        })
    );
    Ok(())
}

/// A benchmark's store with the built-in packs, in `dir` or, when none is given, in a fresh
/// scratch directory (returned, for the caller to remove).
pub(crate) fn packs_store(
    dir: Option<&Path>,
    durability: Durability,
) -> anyhow::Result<(sealog_ledger::Ledger, PathBuf, Option<PathBuf>)> {
    let scratch = match dir {
        Some(_) => None,
        None => Some(tempfile_dir()?),
    };
    let dir = dir
        .map(Path::to_path_buf)
        .or_else(|| scratch.clone())
        .expect("a directory");
    let ledger = sealog_ledger::Ledger::open(
        &dir,
        sealog_ledger::LedgerConfig {
            store: sealog_ledger::StoreConfig {
                durability,
                ..sealog_ledger::StoreConfig::default()
            },
            packs: sealog_ledger::Packs::builtin(),
            undeclared: sealog_ledger::Undeclared::Quarantine,
        },
    )?;
    Ok((ledger, dir, scratch))
}

pub(crate) fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::var_os("TMPDIR").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    let dir = base.join(format!(
        "sealog-bench-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_decision_records_pass_the_decision_log_pack_unless_made_incomplete() {
        let packs = sealog_ledger::Packs::builtin();
        for i in 0..200 {
            for complete in [true, false] {
                let text = decision_event(i, &mut Gen::new(i + 1), complete);
                let mut tree = sealog_model::json::Json::parse(text.as_bytes()).unwrap();
                let checked = packs.check(DECISION_TYPE, &mut tree);
                if complete {
                    assert!(checked.is_ok(), "{text}: {checked:?}");
                } else {
                    let q = checked.unwrap_err();
                    assert_eq!(q.missing_fields, ["data.features.feature_snapshot_hash"]);
                }
            }
        }
    }
}
