//! `sealog demo`: the main job end to end on the shipped examples — one or more events of
//! every built-in pack, a duplicate round, a quarantined event, a correction, views and state.

use std::process::ExitCode;

use sealog_ledger::{Author, IngestResult, Ledger, Query, StateQuery, View};
use sealog_model::input;

const EXAMPLES: &str = include_str!("../../../examples/events.ndjson");

pub(crate) fn run(ledger: &Ledger) -> anyhow::Result<ExitCode> {
    println!(
        "Sealog demo — data directory {}",
        ledger.layout().root().display()
    );
    let raws = input::split(EXAMPLES.as_bytes())?;
    for round in ["first ingest", "same events again (idempotent)"] {
        let items: Vec<crate::stream::Item> =
            raws.iter().map(|r| r.clone().map(<[u8]>::to_vec)).collect();
        let results = ledger.commit(crate::append::prepare_parallel(ledger, &items))?;
        let count = |status: &str| results.iter().filter(|r| r.status() == status).count();
        println!(
            "{round}: {} events → {} appended, {} duplicates, {} quarantined, {} rejected",
            results.len(),
            count("appended"),
            count("duplicate"),
            count("quarantined"),
            count("rejected")
        );
        for r in &results {
            if let IngestResult::Quarantined { .. } | IngestResult::Rejected(_) = r {
                println!("  {}", r.to_json());
            }
        }
    }
    // An incomplete decision record: quarantined with the fields it lacks.
    let first = raws[0].as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut incomplete: serde_json::Value = serde_json::from_slice(first)?;
    incomplete["id"] = "evt_txn_demo_incomplete".into();
    for k in ["decision_id", "request_id", "event_id"] {
        incomplete["data"][k] = "evt_txn_demo_incomplete".into();
    }
    incomplete["subject"] = "evt_txn_demo_incomplete".into();
    if let Some(f) = incomplete["data"]["features"].as_object_mut() {
        f.remove("feature_snapshot_hash");
    }
    let bytes = serde_json::to_vec(&incomplete)?;
    let r = ledger.ingest(&[Ok(bytes.as_slice())], &Author::ANYONE)?;
    println!("an incomplete decision record: {}", r[0].to_json());

    println!(
        "log size: {} records; quarantine log: {} records",
        ledger.len(),
        ledger.quarantine_len()
    );
    for (axis, value) in [
        ("subject", "conv-881"),
        ("type", "decision-log.audit_decision_record"),
        ("feature_keys_used", "account:e_account_7c31d9"),
        ("tenant", "shop-za"),
    ] {
        let q = Query {
            equals: vec![(axis.into(), value.into())],
            limit: 100,
            ..Query::default()
        };
        let history = ledger.query(&q)?;
        let current = ledger.query(&Query {
            view: View::Current,
            ..q
        })?;
        println!(
            "query {axis}={value}: {} records ({} current)",
            history.records.len(),
            current.records.len()
        );
        for (seq, bytes) in &history.records {
            let v: serde_json::Value = serde_json::from_slice(bytes)?;
            println!(
                "  seq {seq} {} {} at {} ({})",
                v["type"], v["id"], v["time"], v["record_id"]
            );
        }
    }
    // The examples happened in March 2026 but were ingested now: the event-time clock
    // travels to what had happened then, the ingest-time clock to what the log knew.
    for (when, valid_at) in [("now", None), ("valid at 2026-03-04", Some("2026-03-04"))] {
        let state = ledger.state(&StateQuery {
            subject: "chunk-7".into(),
            valid_at: valid_at
                .map(sealog_model::time::parse_bound)
                .transpose()
                .map_err(|m| anyhow::anyhow!("{m}"))?,
            ..StateQuery::default()
        })?;
        println!(
            "state of chunk-7 {when}: {} after {} events",
            state["status"], state["version"]
        );
    }
    Ok(ExitCode::SUCCESS)
}
