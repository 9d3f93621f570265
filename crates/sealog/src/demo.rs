//! `sealog demo`: the main job end to end on the shipped examples.

use std::process::ExitCode;

use sealog_model::input;
use sealog_store::{Outcome, Query, Store};

const EXAMPLES: &str = include_str!("../../../examples/events.ndjson");

pub(crate) fn run(store: &Store) -> anyhow::Result<ExitCode> {
    println!("Sealog demo — data directory {}", store.dir().display());
    let raws = input::split(EXAMPLES.as_bytes())?;
    for round in ["first ingest", "same events again (idempotent)"] {
        let prepared = crate::append::prepare_parallel(&raws)
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let outcomes = store.append(prepared)?;
        let appended = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Appended { .. }))
            .count();
        println!(
            "{round}: {} events → {appended} appended, {} duplicates",
            outcomes.len(),
            outcomes.len() - appended
        );
    }
    println!("log size: {} records", store.len());
    for (axis, value) in [
        ("subject", "conv-881"),
        ("type", "decision-log.audit_decision_record"),
        ("tenant", "shop-za"),
    ] {
        let q = Query {
            equals: vec![(axis.into(), value.into())],
            limit: 100,
            ..Query::default()
        };
        let page = store.query(&q)?;
        println!("query {axis}={value}: {} records", page.records.len());
        for (seq, bytes) in page.records.iter().take(3) {
            let v: serde_json::Value = serde_json::from_slice(bytes)?;
            println!(
                "  seq {seq} {} {} at {} ({})",
                v["type"], v["id"], v["time"], v["record_id"]
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
