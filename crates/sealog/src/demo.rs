//! `sealog demo`: the main job end to end on the shipped examples — one or more events of
//! every built-in pack, a duplicate round, a quarantined event, a correction, views and state;
//! then the signed checkpoint, an inclusion proof checked, `verify`, and a flipped byte found.

use std::process::ExitCode;

use sealog_ledger::{Author, IngestResult, Ledger, Query, StateQuery, View};
use sealog_model::input;

const EXAMPLES: &str = include_str!("../../../examples/events.ndjson");

pub(crate) fn run(ledger: &Ledger) -> anyhow::Result<ExitCode> {
    say!(
        "Sealog demo — data directory {}",
        ledger.layout().root().display()
    )?;
    let raws = input::split(EXAMPLES.as_bytes())?;
    for round in ["first ingest", "same events again (idempotent)"] {
        let items: Vec<crate::stream::Item> =
            raws.iter().map(|r| r.clone().map(<[u8]>::to_vec)).collect();
        let prepared = items
            .iter()
            .map(|item| crate::append::prepare(ledger, item))
            .collect();
        let results = ledger.commit(prepared)?;
        let count = |status: &str| results.iter().filter(|r| r.status() == status).count();
        say!(
            "{round}: {} events → {} appended, {} duplicates, {} quarantined, {} rejected",
            results.len(),
            count("appended"),
            count("duplicate"),
            count("quarantined"),
            count("rejected")
        )?;
        for r in &results {
            if let IngestResult::Quarantined { .. } | IngestResult::Rejected(_) = r {
                say!("  {}", r.to_json())?;
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
    say!("an incomplete decision record: {}", r[0].to_json())?;

    say!(
        "log size: {} records; quarantine log: {} records",
        ledger.len(),
        ledger.quarantine_len()
    )?;
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
        say!(
            "query {axis}={value}: {} records ({} current)",
            history.records.len(),
            current.records.len()
        )?;
        for (seq, bytes) in &history.records {
            let v: serde_json::Value = serde_json::from_slice(bytes)?;
            say!(
                "  seq {seq} {} {} at {} ({})",
                v["type"],
                v["id"],
                v["time"],
                v["record_id"]
            )?;
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
        say!(
            "state of chunk-7 {when}: {} after {} events",
            state["status"],
            state["version"]
        )?;
    }
    proofs(ledger)?;
    Ok(ExitCode::SUCCESS)
}

/// What sets the log apart: a signed checkpoint, one record's inclusion proof checked
/// against it, the whole directory verified from its files, and a flipped byte in a copy of
/// the directory found and located.
fn proofs(ledger: &Ledger) -> anyhow::Result<()> {
    use base64::Engine;
    let b64 = |h: &[u8]| base64::engine::general_purpose::STANDARD.encode(h);
    let cp = ledger.checkpoint()?;
    say!(
        "signed checkpoint: {} records, root {}, signed by {}",
        cp.size,
        b64(&cp.root),
        cp.note.lines().next().unwrap_or_default()
    )?;
    let seq = cp.size / 2;
    let (record, _) = ledger
        .get_with_leaf(seq)?
        .ok_or_else(|| anyhow::anyhow!("record {seq} is missing"))?;
    let proof = ledger.inclusion_proof(seq, cp.size)?;
    // The leaf is hashed here from the record's bytes, not taken from the store.
    sealog_merkle::verify_inclusion(
        &sealog_merkle::leaf_hash(&record),
        seq,
        cp.size,
        &cp.root,
        &proof,
    )
    .map_err(|e| anyhow::anyhow!("the inclusion proof of record {seq} failed: {e:?}"))?;
    say!(
        "inclusion proof of record {seq}: {} hashes from its bytes to the signed root: checked",
        proof.len()
    )?;
    let dir = ledger.layout().root().to_path_buf();
    let options = sealog_ledger::VerifyOptions::default();
    match Ledger::verify(&dir, &options) {
        Ok((report, _)) => say!(
            "verify {}: intact: {} records rebuilt from {} segment file(s) and checked against {} signed checkpoints",
            dir.display(),
            report.records,
            report.segments,
            report.checkpoints
        )?,
        Err(f) => anyhow::bail!("verify failed at {}: {}", f.location, f.message),
    }
    // A copy with one byte changed in the middle of its first segment's records.
    let copy = dir.with_file_name(format!(
        "{}-tampered",
        dir.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = std::fs::remove_dir_all(&copy);
    copy_dir(&dir, &copy)?;
    let segments = copy.join(
        ledger
            .layout()
            .canonical()
            .segments()
            .strip_prefix(&dir)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let mut first = std::fs::read_dir(&segments)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect::<Vec<_>>();
    first.sort();
    let segment = first
        .first()
        .ok_or_else(|| anyhow::anyhow!("no segment in {}", segments.display()))?;
    let mut bytes = std::fs::read(segment)?;
    // The middle of what was written: an open log's last segment may end in zeros laid down
    // ahead of its records.
    let written = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let at = written / 2;
    bytes[at] ^= 0x01;
    let mut perms = std::fs::metadata(segment)?.permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(segment, perms)?;
    std::fs::write(segment, &bytes)?;
    match Ledger::verify(&copy, &options) {
        Ok(_) => anyhow::bail!("a flipped byte in {} went unnoticed", segment.display()),
        Err(f) => say!(
            "verify of a copy with byte {at} of {} flipped: FAILED at {}: {}",
            segment.display(),
            f.location,
            f.message
        )?,
    }
    std::fs::remove_dir_all(&copy)?;
    Ok(())
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
