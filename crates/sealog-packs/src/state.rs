//! Rebuilding a subject's state from its canonical records (event sourcing, C005 §7.2): the
//! state at any moment is the fold of the records up to it, so time travel is a shorter fold.

use serde_json::{Map, Value, json};

use crate::Packs;
use crate::manifest::Op;
use crate::pointer::Node;

/// A value the fold is given but cannot read: its data subject was erased. An expectation
/// that meets it on either side decides nothing, since what the value said is gone; finding
/// it unmet would report an erasure as a broken link.
pub const UNREADABLE: &str = "\u{2}unreadable";

fn unreadable(v: Option<&Value>) -> bool {
    v.and_then(Value::as_str) == Some(UNREADABLE)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Absent,
    Observed,
    Active,
    Deleted,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Absent => "absent",
            Status::Observed => "observed",
            Status::Active => "active",
            Status::Deleted => "deleted",
        }
    }
}

/// Where a record sits, as the state's `created` / `updated` / `tombstone` cite it.
fn citation(record: &Value) -> Map<String, Value> {
    let mut m = Map::new();
    for k in ["seq", "record_id", "time"] {
        m.insert(k.into(), record.get(k).cloned().unwrap_or(Value::Null));
    }
    m.insert(
        "actor".into(),
        record.get("actor").cloned().unwrap_or(Value::Null),
    );
    m
}

pub(crate) fn fold(packs: &Packs, records: &[Value]) -> Value {
    let mut status = Status::Absent;
    let mut state = Map::new();
    let mut version = 0u64;
    let mut created = Value::Null;
    let mut updated = Value::Null;
    let mut tombstone = Value::Null;
    let mut history = Vec::with_capacity(records.len());
    let mut anomalies = Vec::new();

    for record in records {
        let ty = record.get("type").and_then(Value::as_str).unwrap_or("");
        let rules = packs.rules(ty);
        let op = rules.map_or(Op::Observe, |r| r.state.op);
        let mut anomaly = |kind: &str, message: String| {
            let mut m = citation(record);
            m.remove("actor");
            m.remove("time");
            m.insert("kind".into(), Value::String(kind.into()));
            m.insert("message".into(), Value::String(message));
            anomalies.push(Value::Object(m));
        };
        if rules.is_none() {
            anomaly(
                "undeclared",
                format!("type \"{ty}\" is not declared by any loaded pack"),
            );
        }
        let mut entry = citation(record);
        entry.insert("type".into(), Value::String(ty.into()));
        entry.insert("op".into(), Value::String(op.as_str().into()));
        history.push(Value::Object(entry));
        let Some(rules) = rules else { continue };

        for (field, pointer) in &rules.state.expect {
            let expected = pointer.get(record).filter(|v| !v.is_null());
            let actual = state.get(field);
            if expected != actual && !unreadable(expected) && !unreadable(actual) {
                let show = |v: Option<&Value>| v.and_then(Node::text).unwrap_or("nothing".into());
                // An expectation unmet because there is nothing to meet it is about the
                // subject's existence, not its value.
                let kind = match status {
                    Status::Active => "expect",
                    Status::Deleted => "deleted",
                    Status::Absent | Status::Observed if actual.is_none() => "unknown",
                    Status::Absent | Status::Observed => "expect",
                };
                anomaly(
                    kind,
                    format!(
                        "expects {field} = {} (from {}) but the state holds {}",
                        show(expected),
                        pointer.text,
                        show(actual)
                    ),
                );
            }
        }
        match (op, status) {
            (Op::Create, Status::Active) => {
                anomaly("recreated", "created while already active".into())
            }
            (Op::Update, Status::Deleted) => {
                anomaly("deleted", "updated after its deletion".into())
            }
            (Op::Delete, Status::Deleted) => anomaly("deleted", "deleted while deleted".into()),
            (Op::Delete, s) if s != Status::Active => {
                anomaly("unknown", format!("deleted while {}", s.as_str()))
            }
            _ => {}
        }
        let here = Value::Object(citation(record));
        match op {
            Op::Observe => {
                if status == Status::Absent {
                    status = Status::Observed;
                }
                continue;
            }
            Op::Create => {
                state.clear();
                tombstone = Value::Null;
                created = here.clone();
                status = Status::Active;
            }
            Op::Update => {
                if status != Status::Active && status != Status::Deleted {
                    created = here.clone();
                    status = Status::Active;
                }
            }
            Op::Delete => {
                let mut t = citation(record);
                t.insert(
                    "reason".into(),
                    record.get("reason").cloned().unwrap_or(Value::Null),
                );
                tombstone = Value::Object(t);
                status = Status::Deleted;
            }
        }
        for (field, pointer) in &rules.state.set {
            match pointer.get(record) {
                None => {}
                Some(Value::Null) => {
                    state.remove(field);
                }
                Some(v) => {
                    state.insert(field.clone(), v.clone());
                }
            }
        }
        for field in &rules.state.unset {
            state.remove(field);
        }
        version += 1;
        updated = here;
    }

    json!({
        "status": status.as_str(),
        "state": state,
        "version": version,
        "created": created,
        "updated": updated,
        "tombstone": tombstone,
        "history": history,
        "anomalies": anomalies,
    })
}
