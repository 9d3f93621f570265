//! Events for tests that are about the log, not about a pack.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A valid event of an ad-hoc type (accepted only with `--accept-undeclared-types`).
pub fn event(id: &str, tenant: Option<&str>, subject: &str, kind: &str) -> Value {
    let mut e = json!({
        "specversion": "1.0", "id": id, "source": "test", "type": kind,
        "time": "2026-01-03T12:34:56.123Z", "subject": subject,
        "actor": {"type": "human", "id": "u1"}, "data": {"n": id},
    });
    if let Some(t) = tenant {
        e["tenant"] = json!(t);
    }
    e
}

/// An hour before now, as an event's `time`: inside any report's default window, which ends
/// now, on the event clock reports count by.
pub fn an_hour_ago() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_nanos();
    sealog_model::time::format_micros(i64::try_from(now).expect("before 2262") - 3_600_000_000_000)
}

/// An event's RFC 8785 text by an independent implementation (`serde_json_canonicalizer`),
/// never Sealog's own: what tests hold Sealog's canonical forms and record ids to.
pub fn oracle_jcs(v: &Value) -> String {
    serde_json_canonicalizer::to_string(v).expect("the oracle canonicalizes the event")
}

/// The `record_id` bytes of an event (no pack normalizes it): SHA-256 of [`oracle_jcs`].
pub fn oracle_record_id(v: &Value) -> [u8; 32] {
    Sha256::digest(oracle_jcs(v).as_bytes()).into()
}

/// NDJSON text of some events.
pub fn ndjson(events: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        out.extend_from_slice(e.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// The example events shipped with Sealog: valid events of every built-in pack.
pub fn examples() -> Vec<Value> {
    include_str!("../../../examples/events.ndjson")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("an example is JSON"))
        .collect()
}

/// The first example event of a type: a valid baseline to change.
pub fn example(kind: &str) -> Value {
    examples()
        .into_iter()
        .find(|e| e["type"] == kind)
        .unwrap_or_else(|| panic!("no example of {kind}"))
}
