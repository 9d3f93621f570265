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
    // The pack defaults it to 0 and bounds it to the column's range.
    let count = match data.get("active_envelopes_count") {
        Some(n) => int4(n)?,
        None => 0,
    };
    Some(TableRow::Coordination(Box::new(CoordinationRow {
        audit_id: audit_id(record_id),
        envelope_id: text("envelope_id")?,
        envelope_class: text("envelope_class")?,
        decision: text("decision")?,
        reason: text("reason")?,
        decision_ns,
        conflicting_envelope_id: text("conflicting_envelope_id"),
        preempting_envelope_id: text("preempting_envelope_id"),
        active_envelopes_count: count,
        tenant_id: text("tenant_id"),
    })))
}

/// A JSON Schema integer as an `INTEGER` column holds it: `3.0` is the integer 3 (JSON
/// Schema counts a number with no fractional part an integer, whatever its spelling).
fn int4(value: &Json<'_>) -> Option<i32> {
    let Json::Number(n) = value else {
        return None;
    };
    if let Some(i) = n.as_i64() {
        return i32::try_from(i).ok();
    }
    let f = n.as_f64()?;
    let whole = f.fract() == 0.0 && (f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&f);
    // Whole and within the column's range, so the cast is exact.
    whole.then_some(f as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The row of a decision whose count and decision time are spelt `count` and `at`.
    fn row(count: &str, at: &str) -> Option<CoordinationRow> {
        let text = format!(
            r#"{{"id":"c4-1","source":"c4","type":"coordination.decision","time":"2026-01-01T00:00:00Z","actor":{{"type":"service","id":"cm"}},"data":{{"envelope_id":"env-1","envelope_class":"SAFETY","decision":"APPLIED","reason":"r","decision_timestamp":"{at}","active_envelopes_count":{count}}}}}"#
        );
        let tree = Json::parse(text.as_bytes()).unwrap();
        let env = Envelope::parse(&tree).unwrap();
        row_of(&env, &tree, &[7; 32]).map(|TableRow::Coordination(r)| *r)
    }

    #[test]
    fn a_count_is_the_integer_however_it_is_spelt() {
        let at = "2026-01-01T00:00:00Z";
        for (spelt, count) in [
            ("3", 3),
            ("3.0", 3),
            ("2.5e1", 25),
            ("-0.0", 0),
            ("2147483647", i32::MAX),
        ] {
            assert_eq!(
                row(spelt, at).unwrap().active_envelopes_count,
                count,
                "{spelt}"
            );
        }
    }

    #[test]
    fn a_leap_second_is_the_last_instant_of_the_second_before_it() {
        let leap = row("1", "2016-12-31T23:59:60Z").unwrap().decision_ns;
        let before = sealog_model::time::parse_rfc3339("2017-01-01T00:00:00Z").unwrap();
        assert_eq!(leap, before - 1);
    }

    #[test]
    fn an_audit_id_is_a_version_5_uuid_of_the_record_id() {
        let a = audit_id(&[1; 32]);
        assert_eq!(a, audit_id(&[1; 32]), "the same record, the same id");
        assert_ne!(a, audit_id(&[2; 32]));
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 5);
    }
}
