//! `sealog bench check`: consistency checks over a store of N records of the built-in packs
//! (knowledge chunks and their relationships and edits, conversation links and relinks,
//! POPIA requests, decision records), fully and incrementally, in records per second.
//! Durable ingest, every rule on; the figures report, they never assert.

use std::path::PathBuf;
use std::time::Instant;

use sealog_ledger::{Author, Durability, Ledger};
use serde_json::{Value, json};

use crate::bench::{Gen, decision_event};

#[derive(clap::Args)]
pub(crate) struct CheckArgs {
    /// Records in the store before the full run.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Records appended before the incremental run (default: 1% of --records, at least 1,000).
    #[arg(long)]
    new_records: Option<u64>,
    /// Directory for the benchmark's store (default: a fresh temporary directory, removed after).
    #[arg(long)]
    dir: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// 2026-01-01T00:00:00Z: event i happens i seconds later.
const BASE_NS: i64 = 1_767_225_600_000_000_000;

/// What the generator has made so far, so edits name the current state and mostly agree.
pub(crate) struct World {
    g: Gen,
    chunks: Vec<String>,
    links: Vec<Option<String>>,
    popia: u64,
    /// POPIA requests not completed yet.
    open: Vec<u64>,
}

fn time(i: u64) -> String {
    sealog_model::time::format_micros(BASE_NS + i as i64 * 1_000_000_000)
}

fn knowledge(i: u64, kind: &str, data: Value) -> Value {
    let mut data = data;
    data["principal"] = json!({"type": "human", "id": "editor-1", "clearance": 3});
    json!({"specversion": "1.0", "id": format!("k{i}"), "source": "kb", "type": kind,
        "time": time(i), "tenant": "kb", "actor": {"type": "human", "id": "editor-1"}, "data": data})
}

impl World {
    pub(crate) fn new(seed: u64) -> Self {
        World {
            g: Gen::new(seed),
            chunks: Vec::new(),
            links: Vec::new(),
            popia: 0,
            open: Vec::new(),
        }
    }

    /// Event `i`: a tenth decision records (checked by no rule: hashed only), the rest
    /// spread over the rules' types, about one in a hundred contradicting what came before.
    pub(crate) fn event(&mut self, i: u64) -> Vec<u8> {
        let r = self.g.next() % 100;
        let odd = self.g.next().is_multiple_of(100);
        let v = match r {
            0..10 => return decision_event(i, &mut self.g, true).into_bytes(),
            10..25 => {
                let c = self.chunks.len();
                let key = if odd && c > 0 {
                    format!("fact-{}", c - 1)
                } else {
                    format!("fact-{c}")
                };
                self.chunks.push(format!("h{i}"));
                knowledge(
                    i,
                    "knowledge.chunk_created",
                    json!({"operation": "CREATE",
                    "resourceType": "CHUNK", "resourceId": format!("chunk-{c}"), "chunkType": "policy",
                    "after": format!("h{i}"), "authority": "approved",
                    "claim": {"key": key, "value": format!("v{i}")}}),
                )
            }
            25..50 if self.chunks.len() > 1 => {
                // Mostly from the newest chunk, so few are left without a relationship.
                let n = self.chunks.len() as u64;
                let a = if self.g.next().is_multiple_of(4) {
                    self.g.next() % n
                } else {
                    n - 1
                };
                let b = self.g.next() % n;
                knowledge(
                    i,
                    "knowledge.relationship_created",
                    json!({"operation": "CREATE",
                    "resourceType": "EDGE", "resourceId": format!("edge-{i}"),
                    "from": format!("chunk-{a}"), "to": format!("chunk-{b}"), "relationshipType": "REFERENCES"}),
                )
            }
            50..60 if !self.chunks.is_empty() => {
                let c = (self.g.next() % self.chunks.len() as u64) as usize;
                let before = if odd {
                    "stale".to_string()
                } else {
                    self.chunks[c].clone()
                };
                self.chunks[c] = format!("h{i}");
                knowledge(
                    i,
                    "knowledge.chunk_modified",
                    json!({"operation": "MODIFY",
                    "resourceType": "CHUNK", "resourceId": format!("chunk-{c}"),
                    "before": before, "after": format!("h{i}"), "changeSummary": "edit"}),
                )
            }
            60..90 => {
                let n = self.links.len() as u64;
                let c = if n == 0 || self.g.next().is_multiple_of(3) {
                    n
                } else {
                    self.g.next() % n
                } as usize;
                if c == self.links.len() {
                    self.links.push(None);
                }
                let mut customer = format!("cust-{}", self.g.next() % 100_000);
                let current = self.links[c].clone();
                if current.as_deref() == Some(customer.as_str()) {
                    customer.push_str("-b");
                }
                let kind = if current.is_some() {
                    "relinked"
                } else {
                    "linked"
                };
                let previous = match current {
                    Some(_) if odd => Some("cust-x".to_string()),
                    other => other,
                };
                self.links[c] = Some(customer.clone());
                let mut e = json!({"specversion": "1.0", "id": format!("l{i}"), "source": "crm",
                    "type": format!("conversation.customer_{kind}"), "time": time(i),
                    "tenant": "instructor-1", "subject": format!("conv-{c}"),
                    "actor": {"type": "human", "id": "instructor-1"},
                    "data": {"conversation_id": format!("conv-{c}"), "instructor_id": "instructor-1",
                        "context": {"channel": "web"}, "new_customer_id": customer}});
                if let Some(p) = previous {
                    e["data"]["previous_customer_id"] = json!(p);
                    e["reason"] = json!("moved");
                }
                e
            }
            _ => {
                // Most requests are completed in time: two in three records complete one.
                let (id, status) = match self.open.len() {
                    n if n > 0 && !self.g.next().is_multiple_of(3) => (
                        self.open.swap_remove((self.g.next() % n as u64) as usize),
                        "completed",
                    ),
                    _ => {
                        self.popia += 1;
                        self.open.push(self.popia);
                        (self.popia, "in_progress")
                    }
                };
                json!({"specversion": "1.0", "id": format!("p{i}"), "source": "shop",
                    "type": "comms.popia_request", "time": time(i), "tenant": "shop",
                    "actor": {"type": "human", "id": "agent-1"},
                    "data": {"request_id": format!("popia-{id}"), "request_type": "access",
                        "customer_id": format!("cust-{}", id % 100_000), "request_timestamp": time(i),
                        "processing_timeline": {"status": status}}})
            }
        };
        v.to_string().into_bytes()
    }
}

fn ingest(ledger: &Ledger, world: &mut World, from: u64, n: u64) -> anyhow::Result<u64> {
    let mut appended = 0;
    let mut i = from;
    while i < from + n {
        let end = (i + 1000).min(from + n);
        let prepared = (i..end)
            .map(|j| ledger.prepare(&world.event(j), &Author::ANYONE))
            .collect();
        for r in ledger.commit(prepared)? {
            if matches!(r, sealog_ledger::IngestResult::Appended { .. }) {
                appended += 1;
            }
        }
        i = end;
    }
    Ok(appended)
}

fn check(ledger: &Ledger, full: bool, now: i64) -> anyhow::Result<(sealog_check::RunReport, f64)> {
    let started = Instant::now();
    let report = sealog_check::run(
        ledger,
        &sealog_check::RunOptions {
            rules: Vec::new(),
            subject: None,
            full,
            now,
            act: sealog_ledger::Act {
                actor: json!({"type": "system", "id": "bench"}),
                time: sealog_model::time::format_micros(now),
                source: "sealog-bench",
            },
            domain: None,
        },
    )?;
    Ok((report, started.elapsed().as_secs_f64()))
}

pub(crate) fn run(a: &CheckArgs, durability: Durability) -> anyhow::Result<std::process::ExitCode> {
    let (ledger, _, scratch) = crate::bench::packs_store(a.dir.as_deref(), durability)?;
    let mut world = World::new(a.seed);
    let started = Instant::now();
    let appended = ingest(&ledger, &mut world, 0, a.records)?;
    let ingest_s = started.elapsed().as_secs_f64();
    // The clock 40 days after the first event: deadlines have passed, staleness has not.
    let now = BASE_NS + 40 * 86_400_000_000_000;
    let (full, full_s) = check(&ledger, true, now)?;
    // The next run checks what the full one appended (its conflicts, resolutions and the
    // SUPERSEDED_BY relationships of the contradictions it settled).
    let idle_now = now + 1_000_000_000;
    let (next, next_s) = check(&ledger, false, idle_now)?;
    let more = a.new_records.unwrap_or((a.records / 100).max(1000));
    ingest(&ledger, &mut world, a.records, more)?;
    let (inc, inc_s) = check(&ledger, false, idle_now + 3_600_000_000_000)?;
    let rate = |n: u64, s: f64| if s > 0.0 { (n as f64 / s).round() } else { 0.0 };
    let summary = json!({
        "bench": "check",
        "records": full.tree_size,
        "appended": appended,
        "ingest_s": (ingest_s * 1000.0).round() / 1000.0,
        "full": {"records": full.tree_size - full.from_size, "seconds": (full_s * 1000.0).round() / 1000.0,
            "records_per_s": rate(full.tree_size - full.from_size, full_s),
            "findings": full.findings.len(), "integrity": full.integrity.ok},
        "after_full": {"records": next.tree_size - next.from_size, "seconds": (next_s * 1000.0).round() / 1000.0},
        "incremental": {"records": inc.tree_size - inc.from_size, "seconds": (inc_s * 1000.0).round() / 1000.0,
            "records_per_s": rate(inc.tree_size - inc.from_size, inc_s),
            "new_findings": inc.new_findings().count(), "integrity": inc.integrity.ok},
        "durability": format!("{durability:?}"),
    });
    ledger.close()?;
    if let Some(d) = scratch {
        std::fs::remove_dir_all(d)?;
    }
    println!("{summary}");
    Ok(std::process::ExitCode::SUCCESS)
}
