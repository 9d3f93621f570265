#![allow(dead_code, unreachable_pub)]

use sealog_model::json::Json;
use sealog_model::{Canonical, Envelope};
use sealog_packs::{Derived, Packs, Quarantine, ReasonCode};
use serde_json::{Value, json};

pub fn packs() -> Packs {
    Packs::builtin()
}

/// Appendix A.1 of the decision-log seed as an event body: the record minus the fields the
/// server computes (`audit_record_id`, `ingested_at_utc`).
pub fn dla_a1_data() -> Value {
    let mut v: Value = serde_json::from_str(include_str!("../data/dla_a1.json")).unwrap();
    let m = v.as_object_mut().unwrap();
    m.remove("audit_record_id");
    m.remove("ingested_at_utc");
    v
}

/// Appendix A.3 exactly as the seed prints it.
pub fn dla_a3_literal() -> Value {
    serde_json::from_str(include_str!("../data/dla_a3.json")).unwrap()
}

pub fn envelope(ty: &str, data: Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": "e-1",
        "source": "test",
        "type": ty,
        "time": "2026-01-03T12:34:56.123Z",
        "tenant": "t-1",
        "actor": {"type": "system", "id": "sys-1"},
        "data": data,
    })
}

pub fn dla_event(data: Value) -> Value {
    let mut e = envelope("decision-log.audit_decision_record", data);
    e["tenant"] = json!("run_20260103T110000Z_0001");
    e
}

pub fn examples() -> Vec<Value> {
    include_str!("../../../../examples/events.ndjson")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The first example event of a type: a valid baseline that tests mutate.
pub fn example(ty: &str) -> Value {
    examples()
        .into_iter()
        .find(|e| e["type"] == ty)
        .unwrap_or_else(|| panic!("no example of {ty}"))
}

/// Runs the pack checks on an event's tree; on success, the normalized event.
pub fn check(event: &Value) -> Result<Value, Quarantine> {
    check_with(&packs(), event)
}

pub fn check_with(packs: &Packs, event: &Value) -> Result<Value, Quarantine> {
    let mut tree = Json::from_value(event);
    let ty = event["type"].as_str().unwrap_or_default();
    packs.check(ty, &mut tree).map(|()| tree.to_value())
}

/// The canonical form of an event that passed its pack.
pub fn canonical(normalized: &Value) -> Canonical {
    Canonical::of_event(&Json::from_value(normalized)).expect("a canonical form")
}

/// What the packs derive from an event.
pub fn derive(event: &Value) -> Derived {
    let j = Json::from_value(event);
    let env = Envelope::parse(&j).unwrap();
    packs().derive(&j, &env)
}

pub fn reason(event: &Value) -> Option<ReasonCode> {
    check(event).err().map(|q| q.reason)
}
