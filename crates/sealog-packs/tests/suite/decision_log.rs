//! The decision-log pack against the seed's own appendix examples and DoD scenarios.

use crate::common;

use common::{canonical, check, derive, dla_a1_data, dla_a3_literal, dla_event};
use sealog_packs::ReasonCode;
use serde_json::{Value, json};

#[test]
fn appendix_a1_is_a_valid_canonical_record() {
    let event = dla_event(dla_a1_data());
    let normalized = check(&event).unwrap();
    let d = derive(&normalized);
    assert_eq!(d.subject.as_deref(), Some("evt_txn_000000123"));
    let pins = sealog_model::jcs::to_vec(&normalized["data"]["context_pins"]).unwrap();
    assert_eq!(
        d.scope.as_deref(),
        Some(std::str::from_utf8(&pins).unwrap())
    );
    assert!(d.unique_per_subject);
    assert_eq!(d.supersedes, None);
    for (axis, value) in [
        ("feature_keys_used", "account:e_account_7c31d9"),
        ("degrade_mode", "NORMAL"),
        ("run_id", "run_20260103T110000Z_0001"),
        ("manifest_fingerprint", "mf_20251231T235959Z_8f3c2a1d"),
        ("scenario_id", "scn_baseline_v1"),
        ("parameter_hash", "ph_4b1d7a9c"),
        ("decision_outcome", "APPROVE"),
        ("decision_id", "evt_txn_000000123"),
        ("request_id", "evt_txn_000000123"),
        ("event_id", "evt_txn_000000123"),
    ] {
        assert!(
            d.axes.contains(&(axis.to_string(), value.to_string())),
            "{axis}={value} in {:?}",
            d.axes
        );
    }
}

#[test]
fn appendix_a2_missing_snapshot_hash_and_group_versions_is_incomplete_provenance() {
    let mut data = dla_a1_data();
    let features = data["features"].as_object_mut().unwrap();
    features.remove("feature_snapshot_hash");
    features.remove("group_versions_used");
    let q = check(&dla_event(data)).unwrap_err();
    assert_eq!(q.reason, ReasonCode::IncompleteProvenance);
    assert_eq!(
        q.missing_fields,
        [
            "data.features.feature_snapshot_hash",
            "data.features.group_versions_used"
        ]
    );
}

#[test]
fn every_required_field_group_of_5_4_is_enforced() {
    for pointer in [
        "/context_pins/run_id",
        "/decision_id",
        "/event/event_ref",
        "/event/event_time_utc",
        "/degrade/capabilities_mask",
        "/degrade/triggers",
        "/features/freshness",
        "/features/input_basis",
        "/ieg/graph_version",
        "/decision/actions/0/idempotency_key",
        "/df_provenance/df_policy_ref",
        "/df_provenance/stage_summary",
        "/df_provenance/timings/started_at_utc",
    ] {
        let mut data = dla_a1_data();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        data.pointer_mut(parent)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove(key);
        let q = check(&dla_event(data)).unwrap_err();
        let dotted = format!("data{}", pointer.replace('/', "."));
        assert_eq!(
            (q.reason, q.missing_fields),
            (ReasonCode::IncompleteProvenance, vec![dotted])
        );
    }
}

#[test]
fn appendix_a3_as_printed_lacks_the_blocks_a_correction_must_repeat() {
    let q = check(&dla_event(dla_a3_literal())).unwrap_err();
    assert_eq!(q.reason, ReasonCode::IncompleteProvenance);
    assert_eq!(
        q.missing_fields,
        [
            "data.degrade",
            "data.features",
            "data.ieg",
            "data.df_provenance"
        ]
    );
}

/// A.3's changes applied to A.1's complete record, pointing at A.1's real record id.
fn a3_completed() -> (Value, sealog_model::RecordId) {
    let original = check(&dla_event(dla_a1_data())).unwrap();
    let target = canonical(&original).record_id;
    let a3 = dla_a3_literal();
    let mut data = dla_a1_data();
    data["decision"] = a3["decision"].clone();
    data["correction_reason"] = a3["correction_reason"].clone();
    data["supersedes_audit_record_id"] = json!(target.to_string());
    (dla_event(data), target)
}

#[test]
fn appendix_a3_completed_is_a_valid_correction_that_derives_its_target() {
    let (event, target) = a3_completed();
    let normalized = check(&event).unwrap();
    let d = derive(&normalized);
    assert_eq!(d.supersedes, Some(target.to_string()));
    assert_eq!(d.subject.as_deref(), Some("evt_txn_000000123"));
}

#[test]
fn envelope_and_body_supersedes_must_agree() {
    let (mut event, target) = a3_completed();
    event["supersedes"] = json!(target.to_string());
    assert!(check(&event).is_ok(), "the same target twice is fine");
    event["supersedes"] = json!(format!("sha256:{}", "0".repeat(64)));
    let q = check(&event).unwrap_err();
    assert_eq!(q.reason, ReasonCode::SchemaViolation);
    assert_eq!(q.violations[0].pointer, "/data/supersedes_audit_record_id");
}

#[test]
fn a3_literal_supersedes_value_is_not_a_record_id() {
    let (mut event, _) = a3_completed();
    event["data"]["supersedes_audit_record_id"] = json!("ar_9b2c...sha256...11aa");
    let q = check(&event).unwrap_err();
    assert_eq!(q.reason, ReasonCode::SchemaViolation);
    assert!(
        q.violations
            .iter()
            .all(|v| v.pointer == "/data/supersedes_audit_record_id"),
        "{q}"
    );
}

#[test]
fn server_computed_fields_may_not_be_sent_in_the_body() {
    let mut data = dla_a1_data();
    data["audit_record_id"] = json!("ar_9b2c...sha256...11aa");
    let q = check(&dla_event(data)).unwrap_err();
    assert_eq!(q.reason, ReasonCode::SchemaViolation);
    assert_eq!(q.violations[0].pointer, "/data");
    assert!(q.violations[0].message.contains("audit_record_id"), "{q}");
}

#[test]
fn raw_payloads_and_feature_vectors_are_forbidden_and_never_echoed() {
    for (pointer, value) in [
        ("/event/payload", json!({"card_number": "4111111111111111"})),
        ("/features/feature_vector", json!([0.1, 0.7, 0.33])),
        ("/payload", json!("raw")),
    ] {
        let mut data = dla_a1_data();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let parent = if parent.is_empty() {
            &mut data
        } else {
            data.pointer_mut(parent).unwrap()
        };
        parent[key] = value;
        let q = check(&dla_event(data)).unwrap_err();
        assert_eq!(q.reason, ReasonCode::ForbiddenField);
        assert_eq!(q.forbidden_fields, [format!("/data{pointer}")]);
        assert!(!format!("{q:?}").contains("4111"), "content must not leak");
    }
}

#[test]
fn ieg_and_ofp_not_used_blocks() {
    let mut data = dla_a1_data();
    data["ieg"] = json!({"used": false, "reason": "UNAVAILABLE"});
    data["features"] = json!({"used": false, "reason": "DISALLOWED"});
    assert!(check(&dla_event(data.clone())).is_ok());

    data["ieg"] = json!({"used": false});
    let q = check(&dla_event(data.clone())).unwrap_err();
    assert_eq!(q.missing_fields, ["data.ieg.reason"]);

    data["ieg"] = json!({"used": false, "reason": "BECAUSE"});
    let q = check(&dla_event(data.clone())).unwrap_err();
    assert_eq!(q.reason, ReasonCode::SchemaViolation);
    assert!(
        q.violations.iter().any(|v| v.pointer == "/data/ieg/reason"),
        "{q}"
    );

    data["ieg"] =
        json!({"used": false, "reason": "UNAVAILABLE", "graph_version": {"graph_version": "gv"}});
    let q = check(&dla_event(data)).unwrap_err();
    assert_eq!(
        q.reason,
        ReasonCode::SchemaViolation,
        "not-used blocks carry no version"
    );
}

#[test]
fn v0_identity_posture_decision_request_and_event_ids_are_one_value() {
    let mut data = dla_a1_data();
    data["request_id"] = json!("req-other");
    let q = check(&dla_event(data)).unwrap_err();
    assert_eq!(q.reason, ReasonCode::SchemaViolation);
    assert_eq!(q.violations[0].pointer, "/data/request_id");
    assert_eq!(q.violations[0].message, "must equal /data/decision_id");
}

#[test]
fn a_given_subject_must_match_the_derived_one() {
    let mut event = dla_event(dla_a1_data());
    event["subject"] = json!("evt_txn_000000123");
    assert!(check(&event).is_ok());
    event["subject"] = json!("something-else");
    let q = check(&event).unwrap_err();
    assert_eq!(q.reason, ReasonCode::SchemaViolation);
    assert_eq!(q.violations[0].pointer, "/subject");
}

#[test]
fn ordering_rules_of_7_3_are_applied() {
    let mut data = dla_a1_data();
    data["features"]["feature_keys_used"] = json!([
        {"key_type": "device", "key_id": "d1"},
        {"key_type": "account", "key_id": "a2"},
        {"key_type": "account", "key_id": "a1"}
    ]);
    data["df_provenance"]["stage_summary"]
        .as_array_mut()
        .unwrap()
        .reverse();
    let out = check(&dla_event(data)).unwrap();
    let keys: Vec<String> = out["data"]["features"]["feature_keys_used"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            format!(
                "{}:{}",
                k["key_type"].as_str().unwrap(),
                k["key_id"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(keys, ["account:a1", "account:a2", "device:d1"]);
    let stages: Vec<&str> = out["data"]["df_provenance"]["stage_summary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        ["stage0_guardrails", "stage1_primary", "stage2_secondary"]
    );
}

#[test]
fn invalid_formats_are_schema_violations_with_pointers() {
    let mut data = dla_a1_data();
    data["event"]["event_time_utc"] = json!("yesterday");
    data["degrade"]["mode"] = json!(7);
    let q = check(&dla_event(data)).unwrap_err();
    assert_eq!(q.reason, ReasonCode::SchemaViolation);
    let pointers: Vec<&str> = q.violations.iter().map(|v| v.pointer.as_str()).collect();
    assert!(pointers.contains(&"/data/event/event_time_utc"), "{q}");
    assert!(pointers.contains(&"/data/degrade/mode"), "{q}");
    assert!(
        q.violations
            .iter()
            .all(|v| !v.message.contains("yesterday")),
        "messages name the rule, not the value: {q}"
    );
}
