//! `sealog bench query`: query latency in the ledger (no HTTP, no access record) over a log
//! left by `bench ingest --dir`, warm and, where the machine lets the page cache be dropped,
//! cold. Benchmarks report; they never assert.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use sealog_ledger::{Ledger, Query, View};
use serde_json::json;

use crate::bench::Gen;

#[derive(clap::Args)]
pub(crate) struct QueryArgs {
    /// The log to query (one left by `sealog bench ingest --dir`: its generated tenants,
    /// actors, subjects and times are what the queries ask for).
    #[arg(long)]
    dir: PathBuf,
    /// Warm queries of each kind: after every file of the log has been read once (so the
    /// OS's cache holds it) and as many queries again.
    #[arg(long, default_value_t = 4_000)]
    samples: u64,
    /// Cold queries of each kind: the page cache is dropped before each one (needs root;
    /// 0 to skip).
    #[arg(long, default_value_t = 0)]
    cold: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Only these kinds (id, subject, one_axis, two_axes_meeting, two_axes_apart,
    /// event_second); all when none is given.
    #[arg(long = "only", value_delimiter = ',')]
    only: Vec<String>,
}

/// What the generator of `bench ingest` gives record `i`: its tenant is `run_{r % 64}` and its
/// actor `df-{r % 8}` for one random `r`, so a tenant meets exactly one actor.
#[derive(Clone, Copy)]
enum Kind {
    /// One record by its id.
    Id,
    /// A subject's records (one here).
    Subject,
    /// A page of one actor's records, from a random place in the log.
    OneAxis,
    /// A page of a tenant's records by the one actor they meet, from a random place.
    TwoAxesMeeting,
    /// A tenant and an actor they never meet: every record of the tenant after a random
    /// place is checked and none found (the worst case of an intersection).
    TwoAxesApart,
    /// A page of records in one second of event time.
    EventSecond,
}

const KINDS: [(Kind, &str); 6] = [
    (Kind::Id, "id"),
    (Kind::Subject, "subject"),
    (Kind::OneAxis, "one_axis"),
    (Kind::TwoAxesMeeting, "two_axes_meeting"),
    (Kind::TwoAxesApart, "two_axes_apart"),
    (Kind::EventSecond, "event_second"),
];

pub(crate) fn run(a: &QueryArgs) -> anyhow::Result<std::process::ExitCode> {
    if let Some(bad) = a.only.iter().find(|o| !KINDS.iter().any(|(_, n)| n == o)) {
        anyhow::bail!("--only {bad}: not a kind of query this benchmark asks");
    }
    let ledger = crate::open_for_reading(&a.dir, sealog_ledger::Packs::builtin())?;
    let size = ledger.len();
    anyhow::ensure!(size > 0, "the log at {} is empty", a.dir.display());
    let t0 = Instant::now();
    let cached = read_every_file(&a.dir)?;
    eprintln!(
        "read {} MiB of {} in {:.1} s to warm the cache",
        cached >> 20,
        a.dir.display(),
        t0.elapsed().as_secs_f64()
    );
    let mut g = Gen::new(a.seed);
    let kinds: Vec<(Kind, &str)> = KINDS
        .into_iter()
        .filter(|(_, name)| a.only.is_empty() || a.only.iter().any(|o| o == name))
        .collect();
    // Every kind warm first: a cold query drops the whole cache, and the queries of the next
    // kind would start without it.
    let mut warm = Vec::new();
    for &(kind, _) in &kinds {
        for _ in 0..a.samples {
            ask(&ledger, kind, size, &mut g)?;
        }
        warm.push(timed(a.samples, || ask(&ledger, kind, size, &mut g))?);
    }
    let mut cold = Vec::new();
    for &(kind, _) in kinds.iter().filter(|_| a.cold > 0) {
        cold.push(timed(a.cold, || {
            drop_page_cache()?;
            ask(&ledger, kind, size, &mut g)
        })?);
    }
    let figures = |lat: &Lat| {
        json!({"p50_us": pct(&lat.0, 0.5), "p99_us": pct(&lat.0, 0.99), "max_us": pct(&lat.0, 1.0),
               "records_per_query": lat.1 as f64 / lat.0.len() as f64})
    };
    for (i, (_, name)) in kinds.iter().enumerate() {
        println!(
            "{}",
            json!({"bench": format!("query.{name}"), "records_in_log": size, "warm": figures(&warm[i]),
                   "cold": cold.get(i).map(figures),
                   "note": "in the ledger: index walk, reads and leaf checks; no HTTP, no access record"})
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Latencies in µs, sorted, and the records the queries returned in all.
struct Lat(Vec<u64>, u64);

/// Times `n` queries only; whatever a query does first (dropping the cache) is not timed.
fn timed(n: u64, mut query: impl FnMut() -> anyhow::Result<Timed>) -> anyhow::Result<Lat> {
    let mut lat = Vec::with_capacity(n as usize);
    let mut records = 0;
    for _ in 0..n {
        let t = query()?;
        lat.push(t.micros);
        records += t.records;
    }
    lat.sort_unstable();
    Ok(Lat(lat, records))
}

struct Timed {
    micros: u64,
    records: u64,
}

fn ask(ledger: &Ledger, kind: Kind, size: u64, g: &mut Gen) -> anyhow::Result<Timed> {
    let i = g.next() % size;
    let tenant = g.next() % 64;
    let page = |equals: Vec<(&str, String)>| Query {
        equals: equals
            .into_iter()
            .map(|(a, v)| (a.to_string(), v))
            .collect(),
        after: Some(i),
        view: View::History,
        limit: 10,
        ..Query::default()
    };
    let q = match kind {
        Kind::Id => {
            let record = ledger.get(i)?.context("a seq below the size")?;
            let id = record_id(&record)?;
            let t0 = Instant::now();
            let found = ledger.get_by_id(&id)?.is_some();
            let micros = t0.elapsed().as_micros() as u64;
            anyhow::ensure!(found, "record {i} not found by its id");
            return Ok(Timed { micros, records: 1 });
        }
        Kind::Subject => Query {
            equals: vec![("subject".into(), format!("evt_txn_{i:012}"))],
            limit: 10,
            ..Query::default()
        },
        Kind::OneAxis => page(vec![("actor", format!("df-{}", g.next() % 8))]),
        Kind::TwoAxesMeeting => page(vec![
            ("tenant", format!("run_{tenant:04}")),
            ("actor", format!("df-{}", tenant % 8)),
        ]),
        Kind::TwoAxesApart => page(vec![
            ("tenant", format!("run_{tenant:04}")),
            ("actor", format!("df-{}", (tenant + 1) % 8)),
        ]),
        Kind::EventSecond => {
            let ns = (1_767_400_000 + i as i64 / 50) * 1_000_000_000;
            Query {
                event_from: Some(ns),
                event_to: Some(ns + 1_000_000_000),
                limit: 10,
                ..Query::default()
            }
        }
    };
    let t0 = Instant::now();
    let page = ledger.query(&q)?;
    let micros = t0.elapsed().as_micros() as u64;
    Ok(Timed {
        micros,
        records: page.records.len() as u64,
    })
}

fn record_id(record: &[u8]) -> anyhow::Result<sealog_model::RecordId> {
    #[derive(serde::Deserialize)]
    struct Head {
        record_id: String,
    }
    let head: Head = serde_json::from_slice(record)?;
    sealog_model::RecordId::parse(&head.record_id).context("a record_id")
}

/// Reads every file under `dir` once; returns the bytes read.
fn read_every_file(dir: &std::path::Path) -> anyhow::Result<u64> {
    let mut total = 0;
    let mut buf = vec![0u8; 1 << 20];
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            total += read_every_file(&path)?;
        } else if let Ok(mut f) = std::fs::File::open(&path) {
            use std::io::Read;
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
        }
    }
    Ok(total)
}

fn drop_page_cache() -> anyhow::Result<()> {
    std::fs::write("/proc/sys/vm/drop_caches", "1\n")
        .context("dropping the page cache for --cold needs root (/proc/sys/vm/drop_caches)")
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    crate::bench::nearest_rank(sorted, p).expect("samples")
}
