//! A record row's columns against what its bytes say of it. The bytes are the record (its
//! leaf covers them); `seq`, `record_id`, `ingested_at` and `event_ns` are copies the database
//! keeps beside them for its keys and indexes, which windows, reports and lookups by id go by
//! without reading the bytes. A copy changed behind the triggers would place the record
//! wrongly there while the record itself still verifies, so where a record is read its
//! columns are held to its bytes.

use sealog_model::canonical_text::parse_object_leaving;
use sealog_model::json::Json;
use sealog_model::record::RecordId;
use sealog_model::time::parse_rfc3339;
use sealog_store::StoreError;

/// Refuses a row whose columns are not what its bytes `body` (already checked against its
/// leaf) say: its seq, id, ingest time (microseconds) and event time (nanoseconds).
pub(crate) fn check(
    seq: u64,
    body: &[u8],
    id: &[u8; 32],
    ingested_us: i64,
    event_ns: i64,
) -> Result<(), StoreError> {
    // The event's `data` is only checked for form, never built: nothing here is read from it.
    let object = parse_object_leaving(body, Some("data")).map_err(|e| {
        StoreError::Corrupted(format!("record {seq}: its bytes are not a record ({e})"))
    })?;
    let tree = &object.tree;
    let text = |name: &str| tree.get(name).and_then(Json::as_str);
    let time = |name: &str| text(name).and_then(|t| parse_rfc3339(t).ok());
    let altered = |column: &str, kept: String, said: String| {
        Err(StoreError::Corrupted(format!(
            "record {seq}: its {column} column holds {kept}, its bytes say {said} (the row was altered)"
        )))
    };
    let said_seq = tree.get("seq").and_then(Json::as_u64);
    if said_seq != Some(seq) {
        return altered("seq", seq.to_string(), shown(said_seq));
    }
    let said_id = text("record_id").and_then(RecordId::parse);
    if said_id.as_ref().map(|r| &r.0) != Some(id) {
        return altered(
            "record_id",
            format!("sha256:{}", hex::encode(id)),
            shown(said_id.map(|r| format!("sha256:{}", hex::encode(r.0)))),
        );
    }
    let said_ingested = time("ingested_at");
    if said_ingested != ingested_us.checked_mul(1000) {
        return altered(
            "ingested_at",
            format!("{} ns", i128::from(ingested_us) * 1000),
            shown(said_ingested.map(|ns| format!("{ns} ns"))),
        );
    }
    let said_time = time("time");
    if said_time != Some(event_ns) {
        return altered("event_ns", event_ns.to_string(), shown(said_time));
    }
    Ok(())
}

fn shown<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "nothing readable".to_string(), |v| v.to_string())
}
