//! Shared by the checker's tests: a ledger in a temp dir, events of the built-in packs built
//! to order, and runs at a chosen clock.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeSet;
use std::path::Path;

use sealog_check::{Finding, RunOptions, RunReport};
use sealog_ledger::{
    Act, Author, Durability, IngestResult, Ledger, LedgerConfig, StoreConfig, Undeclared,
};
use sealog_packs::Packs;
use serde_json::{Value, json};

pub fn open(dir: &Path) -> Ledger {
    open_with(dir, Packs::builtin())
}

pub fn open_with(dir: &Path, packs: Packs) -> Ledger {
    Ledger::open(
        dir,
        LedgerConfig {
            store: StoreConfig {
                durability: Durability::Os,
                memtable_records_max: 16,
                ..StoreConfig::default()
            },
            packs,
            undeclared: Undeclared::Quarantine,
        },
    )
    .unwrap()
}

/// A clock past every window of the crafted histories.
pub const LATER: &str = "2026-12-01T00:00:00Z";

pub fn t(text: &str) -> i64 {
    sealog_model::time::parse_rfc3339(text).unwrap()
}

pub fn day(d: u32) -> String {
    format!("2026-03-{d:02}T08:00:00Z")
}

pub fn ingest(ledger: &Ledger, events: &[Value]) -> Vec<u64> {
    ingest_as(ledger, events, &Author::ANYONE)
}

pub fn ingest_as(ledger: &Ledger, events: &[Value], author: &Author<'_>) -> Vec<u64> {
    let prepared = events
        .iter()
        .map(|e| ledger.prepare_value(e, author))
        .collect();
    ledger
        .commit(prepared)
        .unwrap()
        .into_iter()
        .map(|r| match r {
            IngestResult::Appended { seq, .. } => seq,
            other => panic!("not appended: {}", other.to_json()),
        })
        .collect()
}

pub fn act() -> Act<'static> {
    Act {
        actor: json!({"type": "human", "id": "auditor-1"}),
        time: "2026-12-01T00:00:00Z".into(),
        source: "sealog-cli",
    }
}

pub fn run_at(ledger: &Ledger, now: &str) -> RunReport {
    run_with(ledger, now, |_| {})
}

pub fn run_with(ledger: &Ledger, now: &str, f: impl FnOnce(&mut RunOptions<'_>)) -> RunReport {
    let mut opts = RunOptions {
        rules: Vec::new(),
        subject: None,
        full: false,
        now: t(now),
        act: act(),
        domain: None,
    };
    f(&mut opts);
    sealog_check::run(ledger, &opts).unwrap()
}

/// The run's findings of one rule.
pub fn of<'a>(report: &'a RunReport, rule: &str) -> Vec<&'a Finding> {
    report.findings.iter().filter(|f| f.rule == rule).collect()
}

pub fn rules_found(report: &RunReport) -> BTreeSet<String> {
    report.findings.iter().map(|f| f.rule.clone()).collect()
}

fn principal(kind: &str, id: &str) -> Value {
    match kind {
        "agent" => json!({"type": "agent", "id": id, "clearance": 3, "tier": 2}),
        _ => json!({"type": kind, "id": id, "clearance": 3}),
    }
}

fn knowledge(id: &str, kind: &str, time: &str, who: (&str, &str), data: Value) -> Value {
    let mut data = data;
    data["principal"] = principal(who.0, who.1);
    json!({
        "specversion": "1.0", "id": id, "source": "knowledge-base", "type": kind,
        "time": time, "tenant": "kb",
        "actor": {"type": who.0, "id": who.1},
        "data": data,
    })
}

/// A chunk created; `claim` is (key, value), `authority` its level.
pub fn chunk_created(
    id: &str,
    chunk: &str,
    time: &str,
    claim: Option<(&str, &str)>,
    authority: &str,
) -> Value {
    let mut d = json!({"operation": "CREATE", "resourceType": "CHUNK", "resourceId": chunk,
        "chunkType": "policy", "after": format!("h-{id}"), "authority": authority});
    if let Some((k, v)) = claim {
        d["claim"] = json!({"key": k, "value": v});
    }
    knowledge(
        id,
        "knowledge.chunk_created",
        time,
        ("human", "editor-3"),
        d,
    )
}

pub fn chunk_created_by(
    id: &str,
    chunk: &str,
    time: &str,
    claim: (&str, &str),
    who: (&str, &str),
) -> Value {
    let d = json!({"operation": "CREATE", "resourceType": "CHUNK", "resourceId": chunk,
        "chunkType": "policy", "after": format!("h-{id}"), "authority": "approved",
        "claim": {"key": claim.0, "value": claim.1}});
    knowledge(id, "knowledge.chunk_created", time, who, d)
}

pub fn chunk_modified(id: &str, chunk: &str, time: &str, before: &str, after: &str) -> Value {
    knowledge(
        id,
        "knowledge.chunk_modified",
        time,
        ("human", "editor-3"),
        json!({"operation": "MODIFY", "resourceType": "CHUNK", "resourceId": chunk,
            "before": before, "after": after, "changeSummary": "edited"}),
    )
}

pub fn chunk_deleted(id: &str, chunk: &str, time: &str) -> Value {
    with_reason(knowledge(
        id,
        "knowledge.chunk_deleted",
        time,
        ("human", "editor-3"),
        json!({"operation": "DELETE", "resourceType": "CHUNK", "resourceId": chunk}),
    ))
}

pub fn relationship(id: &str, edge: &str, time: &str, from: &str, to: &str) -> Value {
    knowledge(
        id,
        "knowledge.relationship_created",
        time,
        ("human", "editor-3"),
        json!({"operation": "CREATE", "resourceType": "EDGE", "resourceId": edge,
            "from": from, "to": to, "relationshipType": "REFERENCES"}),
    )
}

pub fn relationship_deleted(id: &str, edge: &str, time: &str) -> Value {
    with_reason(knowledge(
        id,
        "knowledge.relationship_deleted",
        time,
        ("human", "editor-3"),
        json!({"operation": "DELETE", "resourceType": "EDGE", "resourceId": edge}),
    ))
}

fn with_reason(mut e: Value) -> Value {
    e["reason"] = json!("no longer true");
    e
}

/// A conversation-linking event: `kind` is linked / relinked / unlinked.
pub fn link(
    id: &str,
    kind: &str,
    conv: &str,
    time: &str,
    previous: Option<&str>,
    new: Option<&str>,
) -> Value {
    let mut d = json!({"conversation_id": conv, "instructor_id": "instructor-42",
        "context": {"channel": "whatsapp"}});
    if let Some(p) = previous {
        d["previous_customer_id"] = json!(p);
    }
    if let Some(n) = new {
        d["new_customer_id"] = json!(n);
    }
    let mut e = json!({
        "specversion": "1.0", "id": id, "source": "crm-linker",
        "type": format!("conversation.customer_{kind}"),
        "time": time, "tenant": "instructor-42", "subject": conv,
        "actor": {"type": "human", "id": "instructor-42"},
        "data": d,
    });
    if kind != "linked" {
        e["reason"] = json!("test");
    }
    e
}

pub fn popia(id: &str, request: &str, time: &str, status: &str) -> Value {
    json!({
        "specversion": "1.0", "id": id, "source": "shop-comms", "type": "comms.popia_request",
        "time": time, "tenant": "shop-za", "actor": {"type": "human", "id": "agent-5"},
        "data": {"request_id": request, "request_type": "access", "customer_id": "cust-23",
            "request_timestamp": time, "request_channel": "email", "verification_status": "verified",
            "processing_timeline": {"target_completion": "2026-05-11T11:00:00Z", "status": status}},
    })
}

pub fn breach(id: &str, incident: &str, time: &str, notified: Option<&str>) -> Value {
    let mut e = json!({
        "specversion": "1.0", "id": id, "source": "shop-comms", "type": "comms.breach_incident",
        "time": time, "tenant": "shop-za", "actor": {"type": "human", "id": "dpo-1"},
        "data": {"incident_id": incident, "discovery_timestamp": time,
            "incident_type": "unauthorized_access", "affected_records": {"count": 3}},
    });
    if let Some(n) = notified {
        e["data"]["notification_timeline"] = json!({"regulator_notification": n});
    }
    e
}

/// One of the server's access records, written as Sealog writes them.
pub fn access(
    n: usize,
    key: &str,
    outcome: &str,
    time: &str,
    address: Option<&str>,
    subjects: &[&str],
) -> Value {
    let mut e = json!({
        "specversion": "1.0", "id": format!("access:req-{n}"), "source": "sealog-server",
        "type": "audit.access", "time": time,
        "actor": {"type": "service", "id": key},
        "data": {"principal": {"key_id": key, "roles": ["reader"]}, "action": "records.query",
            "resource": {}, "outcome": outcome, "status": if outcome == "allowed" { 200 } else { 403 },
            "request_id": format!("req-{n}")},
    });
    if let Some(a) = address {
        e["data"]["source_address"] = json!(a);
    }
    if !subjects.is_empty() {
        e["data"]["data_subjects"] = json!(subjects);
    }
    e
}

pub fn own(ledger: &Ledger, events: &[Value]) -> Vec<u64> {
    ingest_as(ledger, events, &Author::Sealog)
}

/// Every record of a type, parsed.
pub fn records_of(ledger: &Ledger, kind: &str) -> Vec<Value> {
    let page = ledger
        .query(&sealog_ledger::Query {
            equals: vec![("type".into(), kind.into())],
            limit: sealog_ledger::LIMIT_MAX,
            ..Default::default()
        })
        .unwrap();
    page.records
        .iter()
        .map(|(_, b)| serde_json::from_slice(b).unwrap())
        .collect()
}
