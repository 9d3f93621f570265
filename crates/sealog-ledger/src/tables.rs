//! Records a database backend also keeps as rows of tables that readers query with plain SQL:
//! seed 004's `coordination_audit_records`, one row per `coordination.decision` that passed
//! its pack (whose schema bounds every column to the table's constraints).

use sealog_model::envelope::Envelope;
use sealog_model::json::Json;
use sealog_store::{CoordinationRow, TableRow};

/// The type whose records fill `coordination_audit_records`.
const COORDINATION: &str = "coordination.decision";

/// The namespace of the rows' `audit_id`s: a UUIDv5 of this name, so the same record id
/// always gives the same `audit_id` and a replay never clashes.
fn namespace() -> uuid::Uuid {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        b"urn:sealog:coordination_audit_records",
    )
}

/// The `audit_id` of the record with this id.
pub(crate) fn audit_id(record_id: &[u8; 32]) -> String {
    uuid::Uuid::new_v5(&namespace(), record_id).to_string()
}

/// The row of an event, if its type has a table.
pub(crate) fn row_of(
    env: &Envelope<'_>,
    tree: &Json<'_>,
    record_id: &[u8; 32],
) -> Option<TableRow> {
    if env.event_type != COORDINATION {
        return None;
    }
    let data = tree.get("data")?;
    let text = |name: &str| data.get(name).and_then(Json::as_str).map(str::to_string);
    let decision_ns = sealog_model::time::parse_rfc3339(&text("decision_timestamp")?).ok()?;
    let count = data.get("active_envelopes_count").and_then(Json::as_u64);
    Some(TableRow::Coordination(Box::new(CoordinationRow {
        audit_id: audit_id(record_id),
        envelope_id: text("envelope_id")?,
        envelope_class: text("envelope_class")?,
        decision: text("decision")?,
        reason: text("reason")?,
        decision_ns,
        conflicting_envelope_id: text("conflicting_envelope_id"),
        preempting_envelope_id: text("preempting_envelope_id"),
        active_envelopes_count: i32::try_from(count.unwrap_or(0)).ok()?,
        tenant_id: text("tenant_id"),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audit_id_is_a_version_5_uuid_of_the_record_id() {
        let a = audit_id(&[1; 32]);
        assert_eq!(a, audit_id(&[1; 32]), "the same record, the same id");
        assert_ne!(a, audit_id(&[2; 32]));
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 5);
    }
}
