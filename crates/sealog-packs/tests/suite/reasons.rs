//! Table-driven: each reason code a pack produces, for each built-in pack, starting from a
//! valid example and changing one thing.

use crate::common;

use common::{check, example};
use sealog_packs::ReasonCode;
use serde_json::{Value, json};

enum Edit {
    Remove(&'static str),
    Set(&'static str, Value),
}

use Edit::{Remove, Set};

fn apply(mut event: Value, edits: Vec<Edit>) -> Value {
    for edit in edits {
        let (pointer, value) = match edit {
            Remove(p) => (p, None),
            Set(p, v) => (p, Some(v)),
        };
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let parent = if parent.is_empty() {
            &mut event
        } else {
            event.pointer_mut(parent).unwrap()
        };
        let m = parent.as_object_mut().unwrap();
        match value {
            None => {
                m.remove(key);
            }
            Some(v) => {
                m.insert(key.to_string(), v);
            }
        }
    }
    event
}

enum Expect {
    Missing(&'static [&'static str]),
    Violation(&'static str),
    Forbidden(&'static [&'static str]),
    Unknown,
}

fn cases() -> Vec<(&'static str, &'static str, Vec<Edit>, Expect)> {
    use Expect::*;
    vec![
        // unknown types, whatever the pack's prefix looks like
        (
            "conversation.customer_linked",
            "unknown type",
            vec![Set("/type", json!("conversation.customer_merged"))],
            Unknown,
        ),
        (
            "comms.email",
            "unknown type",
            vec![Set("/type", json!("comms.fax"))],
            Unknown,
        ),
        // decision-log
        (
            "decision-log.audit_decision_record",
            "raw event",
            vec![Set("/data/event/raw", json!("..."))],
            Forbidden(&["/data/event/raw"]),
        ),
        (
            "decision-log.audit_decision_record",
            "no outcome",
            vec![Remove("/data/decision/decision_outcome")],
            Missing(&["data.decision.decision_outcome"]),
        ),
        (
            "decision-log.audit_decision_record",
            "bad kind",
            vec![Set("/data/kind", json!("audit_quarantine_record"))],
            Violation("/data/kind"),
        ),
        // conversation-linking
        (
            "conversation.customer_linked",
            "human without id",
            vec![Set("/actor", json!({"type": "human"}))],
            Missing(&["actor.id"]),
        ),
        (
            "conversation.customer_linked",
            "no instructor",
            vec![Remove("/data/instructor_id")],
            Missing(&["data.instructor_id"]),
        ),
        (
            "conversation.customer_linked",
            "no tenant",
            vec![Remove("/tenant")],
            Missing(&["tenant"]),
        ),
        (
            "conversation.customer_linked",
            "no customer",
            vec![Remove("/data/new_customer_id")],
            Missing(&["data.new_customer_id"]),
        ),
        (
            "conversation.customer_relinked",
            "no previous",
            vec![Remove("/data/previous_customer_id")],
            Missing(&["data.previous_customer_id"]),
        ),
        (
            "conversation.customer_relinked",
            "same customer",
            vec![Set("/data/new_customer_id", json!("cust-17"))],
            Violation("/data/new_customer_id"),
        ),
        (
            "conversation.customer_linked",
            "agent actor",
            vec![Set("/actor", json!({"type": "agent", "id": "bot"}))],
            Violation("/actor/type"),
        ),
        (
            "coordination.decision",
            "a tenant_id without the envelope's tenant",
            vec![Remove("/tenant")],
            Violation("/tenant"),
        ),
        (
            "conversation.customer_resolution_skipped",
            "an instructor without the envelope's tenant",
            vec![Remove("/tenant")],
            Violation("/tenant"),
        ),
        (
            "conversation.customer_linked",
            "other instructor's tenant",
            vec![Set("/tenant", json!("instructor-7"))],
            Violation("/data/instructor_id"),
        ),
        (
            "conversation.customer_linked",
            "previous on first link",
            vec![Set("/data/previous_customer_id", json!("cust-1"))],
            Violation("/data/previous_customer_id"),
        ),
        (
            "conversation.customer_resolution_skipped",
            "no reason",
            vec![Remove("/reason")],
            Missing(&["reason"]),
        ),
        // knowledge-audit
        (
            "knowledge.chunk_created",
            "anonymous write",
            vec![Remove("/actor")],
            Missing(&["actor.id"]),
        ),
        (
            "knowledge.chunk_modified",
            "agent without tier",
            vec![Remove("/data/principal/tier")],
            Missing(&["data.principal.tier"]),
        ),
        (
            "knowledge.chunk_deleted",
            "delete without reason",
            vec![Remove("/reason")],
            Missing(&["reason"]),
        ),
        (
            "knowledge.chunk_modified",
            "no before hash",
            vec![Remove("/data/before")],
            Missing(&["data.before"]),
        ),
        (
            "knowledge.chunk_created",
            "principal is not the actor",
            vec![Set("/data/principal/id", json!("someone"))],
            Violation("/data/principal/id"),
        ),
        (
            "knowledge.chunk_created",
            "wrong operation",
            vec![Set("/data/operation", json!("DELETE"))],
            Violation("/data/operation"),
        ),
        // coordination
        (
            "coordination.decision",
            "bad class",
            vec![Set("/data/envelope_class", json!("SPEED"))],
            Violation("/data/envelope_class"),
        ),
        (
            "coordination.decision",
            "long envelope id",
            vec![Set("/data/envelope_id", json!("e".repeat(101)))],
            Violation("/data/envelope_id"),
        ),
        (
            "coordination.decision",
            "a decision time past what the table's row carries",
            vec![Set(
                "/data/decision_timestamp",
                json!("2300-01-01T00:00:00Z"),
            )],
            Violation("/data/decision_timestamp"),
        ),
        (
            "coordination.decision",
            "a decision time before what the table's row carries",
            vec![Set(
                "/data/decision_timestamp",
                json!("0001-01-01T00:00:00Z"),
            )],
            Violation("/data/decision_timestamp"),
        ),
        (
            "coordination.decision",
            "no reason",
            vec![Remove("/data/reason")],
            Missing(&["data.reason"]),
        ),
        (
            "coordination.decision",
            "random audit id",
            vec![Set("/data/audit_id", json!("not-a-uuid"))],
            Violation("/data/audit_id"),
        ),
        (
            "coordination.decision",
            "created_at column",
            vec![Set("/data/created_at", json!("2025-12-28T14:00:00Z"))],
            Violation("/data"),
        ),
        (
            "coordination.decision",
            "negative count",
            vec![Set("/data/active_envelopes_count", json!(-1))],
            Violation("/data/active_envelopes_count"),
        ),
        // customer-comms
        (
            "comms.email",
            "no customer",
            vec![Remove("/data/recipient_details/customer_id")],
            Missing(&["data.recipient_details.customer_id"]),
        ),
        (
            "comms.email",
            "bad address",
            vec![Set("/data/sender_details/email", json!("not an address"))],
            Violation("/data/sender_details/email"),
        ),
        (
            "comms.order",
            "bad status event",
            vec![Set("/data/event_type", json!("teleported"))],
            Violation("/data/event_type"),
        ),
        (
            "comms.order",
            "no order id",
            vec![Remove("/data/order_id")],
            Missing(&["data.order_id"]),
        ),
        (
            "comms.popia_request",
            "bad request type",
            vec![Set("/data/request_type", json!("erase_everything"))],
            Violation("/data/request_type"),
        ),
        (
            "comms.popia_request",
            "no status",
            vec![Remove("/data/processing_timeline")],
            Missing(&["data.processing_timeline.status"]),
        ),
    ]
}

#[test]
fn each_reason_code_for_each_pack() {
    let mut seen = std::collections::BTreeSet::new();
    for (ty, what, edits, expect) in cases() {
        let event = apply(example(ty), edits);
        let q = check(&event).expect_err(&format!("{ty} / {what} must be refused"));
        seen.insert(q.reason);
        let ctx = format!("{ty} / {what}: {q}");
        match expect {
            Expect::Unknown => assert_eq!(q.reason, ReasonCode::UnknownEventType, "{ctx}"),
            Expect::Missing(fields) => {
                assert_eq!(q.reason, ReasonCode::IncompleteProvenance, "{ctx}");
                assert_eq!(q.missing_fields, fields, "{ctx}");
            }
            Expect::Forbidden(fields) => {
                assert_eq!(q.reason, ReasonCode::ForbiddenField, "{ctx}");
                assert_eq!(q.forbidden_fields, fields, "{ctx}");
            }
            Expect::Violation(pointer) => {
                assert_eq!(q.reason, ReasonCode::SchemaViolation, "{ctx}");
                assert!(
                    q.violations
                        .iter()
                        .any(|v| v.pointer == pointer && !v.message.is_empty()),
                    "{ctx}"
                );
            }
        }
    }
    assert_eq!(seen.len(), 4, "every pack-decided reason code is exercised");
}

#[test]
fn checks_run_in_order_forbidden_then_completeness_then_schema() {
    let event = apply(
        example("decision-log.audit_decision_record"),
        vec![
            Set("/data/features/feature_vector", json!([1, 2])),
            Remove("/data/decision_id"),
            Set("/data/degrade/mode", json!(3)),
        ],
    );
    assert_eq!(
        check(&event).unwrap_err().reason,
        ReasonCode::ForbiddenField
    );
    let event = apply(event, vec![Remove("/data/features/feature_vector")]);
    assert_eq!(
        check(&event).unwrap_err().reason,
        ReasonCode::IncompleteProvenance
    );
    let event = apply(
        event,
        vec![Set("/data/decision_id", json!("evt_txn_000000123"))],
    );
    assert_eq!(
        check(&event).unwrap_err().reason,
        ReasonCode::SchemaViolation
    );
}

#[test]
fn system_actors_may_omit_their_id_in_conversation_events() {
    let event = apply(
        example("conversation.customer_resolved"),
        vec![Set("/actor", json!({"type": "system"}))],
    );
    assert!(check(&event).is_ok());
}

#[test]
fn a_skipped_resolution_may_lack_the_instructor_it_could_not_find() {
    let event = apply(
        example("conversation.customer_resolution_skipped"),
        vec![
            Remove("/data/instructor_id"),
            Set("/tenant", json!("crm-unscoped")),
        ],
    );
    assert!(check(&event).is_ok());
}

#[test]
fn coordination_count_defaults_to_zero_like_the_column() {
    let with = example("coordination.decision");
    let explicit = apply(
        with.clone(),
        vec![Set("/data/active_envelopes_count", json!(0))],
    );
    let implicit = apply(with, vec![Remove("/data/active_envelopes_count")]);
    assert_eq!(check(&explicit).unwrap(), check(&implicit).unwrap());
}
