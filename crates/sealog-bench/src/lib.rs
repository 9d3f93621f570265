//! Sealog side by side with the audit tables people build today — PostgreSQL (seed 004's
//! table with an immutability trigger) and SQLite (an append-only table) — on the same
//! machine, in the same run, with the same durability: every acknowledged write is on disk.
//!
//! The workloads are generated from a seed ([`workload`]), run against each engine in turn
//! ([`run`]), beside the machine's own limits measured in the same run ([`machine`]), and
//! reported as markdown and JSON with Sealog's ratio to each peer and each target
//! ([`report`]). Benchmarks report; nothing here asserts a timing.
//!
//! *Boundary*: all knowledge of Sealog's API is in `engines/sealog.rs`.

pub mod engines;
pub mod machine;
pub mod report;
pub mod run;
pub mod workload;

use std::path::Path;

pub use engines::{Attempt, Engine, Hits, Tamper};
pub use report::Report;
pub use run::{EngineSpec, Options};

/// Measures the machine in `work` (the file system the engines write to), runs every engine
/// in `engines` in turn, and assembles the report. `command` is what to print as the way
/// to reproduce the run.
pub fn compare(
    options: &Options,
    engines: &[EngineSpec],
    work: &Path,
    command: &str,
) -> anyhow::Result<Report> {
    let load_before = machine::load();
    let machine = machine::probe(work)?;
    eprintln!("machine: {machine:?}; {load_before}");
    let sample = options.events.clamp(1, 1000);
    let event_bytes_mean = (0..sample)
        .map(|i| workload::decision_event(options.seed, i).text.len() as f64)
        .sum::<f64>()
        / sample as f64;
    let mut results = Vec::new();
    for spec in engines {
        let mut engine = spec.open()?;
        let result = run::run_engine(&mut *engine, options, work);
        engine.close()?;
        results.push(result?);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_nanos() as i64;
    let date = sealog_model::time::format_micros(now)[..16].replace('T', " ") + " UTC";
    Ok(Report::new(
        date,
        command.to_string(),
        load_before,
        machine::load(),
        options.clone(),
        machine,
        event_bytes_mean.round(),
        results,
    ))
}
