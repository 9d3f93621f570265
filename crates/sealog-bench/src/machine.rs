//! The machine's own limits, measured in the same run (and on the same file system) as the
//! figures they bound.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// fsync'd 4 KiB appends measured for the latency figure.
pub const FSYNC_SAMPLES: usize = 200;
/// Bytes written (then fdatasync'd once) for the bandwidth figure.
pub const SEQ_WRITE_MIB: usize = 256;
/// Inputs hashed for the SHA-256 figure.
pub const SHA_ROUNDS: u64 = 400_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    /// fdatasync of a 4 KiB append, milliseconds.
    pub fsync_ms_p50: f64,
    pub fsync_ms_p99: f64,
    /// `SEQ_WRITE_MIB` MiB written through the page cache and one fdatasync, MiB/s.
    pub seq_write_fsync_mib_s: f64,
    /// SHA-256 of 600-byte inputs on one core (the Merkle leaf path), MiB/s.
    pub sha256_mib_s_per_core: f64,
}

/// Measures fsync latency, sequential fsync'd write bandwidth and single-core SHA-256 in `dir`.
pub fn probe(dir: &Path) -> std::io::Result<Machine> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("machine-probe");
    let mut f = std::fs::File::create(&path)?;
    let syncs = fsync_samples(&mut f, FSYNC_SAMPLES)?;
    let mib = vec![0xa5u8; 1 << 20];
    let t = Instant::now();
    for _ in 0..SEQ_WRITE_MIB {
        f.write_all(&mib)?;
    }
    f.sync_data()?;
    let seq_write_fsync_mib_s = SEQ_WRITE_MIB as f64 / t.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path)?;
    let input = [0x42u8; 600];
    let t = Instant::now();
    for i in 0..SHA_ROUNDS {
        std::hint::black_box(sealog_merkle::leaf_hash(std::hint::black_box(
            &input[..600 - (i % 2) as usize],
        )));
    }
    let sha256_mib_s_per_core =
        (SHA_ROUNDS * 600) as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64();
    Ok(Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        fsync_ms_p50: nearest_rank(&syncs, 0.5) as f64 / 1e6,
        fsync_ms_p99: nearest_rank(&syncs, 0.99) as f64 / 1e6,
        seq_write_fsync_mib_s: seq_write_fsync_mib_s.round(),
        sha256_mib_s_per_core: sha256_mib_s_per_core.round(),
    })
}

/// `samples` fdatasync latencies of 4 KiB appends to `f`, nanoseconds, sorted.
fn fsync_samples(f: &mut std::fs::File, samples: usize) -> std::io::Result<Vec<u64>> {
    let block = vec![0x5au8; 4096];
    let mut syncs = Vec::with_capacity(samples);
    for _ in 0..samples.max(1) {
        f.write_all(&block)?;
        let t = Instant::now();
        f.sync_data()?;
        syncs.push(t.elapsed().as_nanos() as u64);
    }
    syncs.sort_unstable();
    Ok(syncs)
}

/// fdatasync latency of a 4 KiB append in `dir` right now (`samples` of them), milliseconds (p50, p99): the
/// disk's fsync cost drifts over minutes on shared machines, so phases that are bound by it
/// get a measurement of their own.
pub fn fsync_latency_ms(dir: &Path, samples: usize) -> std::io::Result<(f64, f64)> {
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path)?;
    let syncs = fsync_samples(&mut f, samples)?;
    drop(f);
    std::fs::remove_file(&path)?;
    Ok((
        nearest_rank(&syncs, 0.5) as f64 / 1e6,
        nearest_rank(&syncs, 0.99) as f64 / 1e6,
    ))
}

/// The `p` quantile of sorted samples (nearest rank); 0 for none.
pub fn nearest_rank(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The load averages and uptime as `uptime` prints them, from `/proc/loadavg`.
pub fn load() -> String {
    let avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut parts = avg.split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), Some(c)) => format!("load average: {a}, {b}, {c}"),
        _ => "load average: unknown".to_string(),
    }
}
