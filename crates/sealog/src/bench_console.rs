//! `sealog bench console`: the console's pages over a store of N records of the built-in
//! packs, timed as a browser would ask for them (each page's API requests, in turn, on a
//! keep-alive connection to a real `sealog serve`), and every report over a one-month
//! window. The figures report, they never assert.

use std::path::PathBuf;
use std::time::Instant;

use sealog_ledger::{Durability, Ledger};
use serde_json::{Value, json};

use crate::bench::Gen;
use crate::bench_check::World;

#[derive(clap::Args)]
pub(crate) struct ConsoleArgs {
    /// Records in the store.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Times each page is loaded.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Directory for the benchmark's store (default: a fresh temporary directory, removed
    /// after); an existing store there is used as it is.
    #[arg(long)]
    dir: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

const CLASSES: [&str; 4] = ["SAFETY", "RELIABILITY", "COST", "PERFORMANCE"];
const DECISIONS: [&str; 3] = ["APPLIED", "REJECTED", "PREEMPTED"];

/// A quarter of the events are coordination decisions of four tenants (so the reports'
/// class and decision counts have something to intersect); the rest are the check
/// benchmark's mix of every other pack.
fn ingest(ledger: &Ledger, seed: u64, from: u64, n: u64) -> anyhow::Result<()> {
    let mut world = World::new(seed);
    let mut g = Gen::new(seed ^ 0xC0);
    let mut i = from;
    while i < from + n {
        let end = (i + 1000).min(from + n);
        let prepared = (i..end)
            .map(|j| {
                let bytes = if j % 4 == 3 {
                    coordination(j, &mut g)
                } else {
                    world.event(j)
                };
                ledger.prepare(&bytes, &sealog_ledger::Author::ANYONE)
            })
            .collect();
        ledger.commit(prepared)?;
        i = end;
    }
    Ok(())
}

/// When the decisions happened: inside the month of events the other packs' records span
/// (from 2026-01-01), so the reports' month, on the event clock, holds every record.
const DECIDED_AT: &str = "2026-01-05T14:00:00Z";
/// The reports' window: that month.
const MONTH: (&str, &str) = ("2026-01-01T00:00:00Z", "2026-01-31T00:00:00Z");

fn coordination(i: u64, g: &mut Gen) -> Vec<u8> {
    let tenant = format!("tenant-{}", g.next() % 4);
    let decision = DECISIONS[(g.next() % 3) as usize];
    let mut data = json!({"envelope_id": format!("env-{i}"),
        "envelope_class": CLASSES[(g.next() % 4) as usize], "decision": decision,
        "reason": "bench", "decision_timestamp": DECIDED_AT, "tenant_id": tenant});
    match decision {
        "REJECTED" => data["conflicting_envelope_id"] = json!(format!("env-{}", i / 2)),
        "PREEMPTED" => data["preempting_envelope_id"] = json!(format!("env-{}", i / 2)),
        _ => {}
    }
    json!({"specversion": "1.0", "id": format!("c{i}"), "source": "c4", "type": "coordination.decision",
        "time": DECIDED_AT, "tenant": tenant,
        "actor": {"type": "service", "id": "coordination-manager"}, "data": data})
    .to_string()
    .into_bytes()
}

/// Milliseconds of each load of a page: every request it makes, in turn.
fn time_page(
    c: &sealog_client::Client,
    paths: &[String],
    repeat: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        let started = Instant::now();
        for p in paths {
            let reply = c.get(p)?;
            anyhow::ensure!(reply.status == 200, "{p}: {}", reply.status);
        }
        out.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    out.sort_by(f64::total_cmp);
    Ok(out)
}

fn figures(ms: &[f64]) -> Value {
    let r = |x: f64| (x * 10.0).round() / 10.0;
    json!({"median_ms": r(ms[ms.len() / 2]), "max_ms": r(ms[ms.len() - 1])})
}

pub(crate) fn run(
    a: &ConsoleArgs,
    durability: Durability,
) -> anyhow::Result<std::process::ExitCode> {
    let (ledger, dir, scratch) = crate::bench::packs_store(a.dir.as_deref(), durability)?;
    let started = Instant::now();
    if ledger.len() < a.records {
        ingest(&ledger, a.seed, ledger.len(), a.records - ledger.len())?;
    }
    let ingest_s = started.elapsed().as_secs_f64();
    let size = ledger.len();
    ledger.close()?;
    let (server, key) = crate::bench_http::serve_with_key(
        &dir,
        sealog_server::keys::Role::Admin,
        durability == Durability::Os,
        &["--check-every".into(), "off".into()],
    )?;
    let c = sealog_client::Client::new(&format!("http://{}", server.addr), Some(&key), None)?;
    // A record and a subject of the middle of the log, as an investigator would open them.
    let mid = size / 2;
    let record: Value = serde_json::from_slice(&c.get(&format!("/v1/records/{mid}"))?.body)?;
    let subject = record["subject"].as_str().unwrap_or("chunk-1").to_string();
    let checkpoint = String::from_utf8(c.get("/checkpoint")?.body)?;
    let tree = checkpoint.lines().nth(1).unwrap_or("1").to_string();
    let enc = crate::client::encode;
    let pages: Vec<(&str, Vec<String>)> = vec![
        (
            "records explorer (50 per page)",
            vec!["/v1/session".into(), "/v1/records?limit=50".into()],
        ),
        (
            "records explorer, filtered by type",
            vec!["/v1/records?type=knowledge.chunk_modified&limit=50".into()],
        ),
        (
            "records explorer, next page",
            vec![format!("/v1/records?limit=50&after={mid}")],
        ),
        (
            "record with in-browser proof",
            vec![
                format!("/v1/records/{mid}"),
                format!("/v1/records/{mid}?form=sealed"),
                "/checkpoint".into(),
                "/checkpoint/key".into(),
                format!("/v1/proofs/inclusion?seq={mid}&size={tree}"),
            ],
        ),
        (
            "subject timeline",
            vec![format!("/v1/subjects/{}/timeline", enc(&subject))],
        ),
        (
            "quarantine browser",
            vec!["/v1/quarantine?limit=100".into()],
        ),
        ("integrity panel", vec!["/v1/integrity".into()]),
        ("dashboard refresh", vec!["/v1/dashboard".into()]),
    ];
    let mut out = serde_json::Map::new();
    for (name, paths) in &pages {
        out.insert(name.to_string(), figures(&time_page(&c, paths, a.repeat)?));
    }
    let mut reports = serde_json::Map::new();
    for name in sealog_report::Name::ALL.map(sealog_report::Name::as_str) {
        let path = format!(
            "/v1/reports/{name}?from={}&to={}",
            enc(MONTH.0),
            enc(MONTH.1)
        );
        reports.insert(
            name.to_string(),
            figures(&time_page(&c, &[path], a.repeat)?),
        );
    }
    drop(server);
    let summary = json!({
        "bench": "console",
        "records": size,
        "ingest_s": (ingest_s * 10.0).round() / 10.0,
        "pages": out,
        "reports_one_month": reports,
        "note": "each figure is the client's wall time for all of the page's API requests over loopback, so it bounds the server's time from above",
    });
    println!("{summary}");
    if let Some(s) = scratch {
        let _ = std::fs::remove_dir_all(s);
    }
    Ok(std::process::ExitCode::SUCCESS)
}
