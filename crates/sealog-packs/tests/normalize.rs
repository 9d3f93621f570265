//! Any permutation of declared arrays or of object members gives the same canonical bytes,
//! the same record_id and the same derivation; stored records derive like their events.

mod common;

use common::{canonical, check, derive, example, examples, packs};
use proptest::prelude::*;
use sealog_model::json::Json;
use sealog_model::{Canonical, Envelope};
use serde_json::{Map, Value, json};

fn prepared(event: &Value) -> Canonical {
    canonical(&check(event).unwrap())
}

/// Rebuilds every object with its members in a shuffled order (as a producer might send them).
fn shuffle_members(v: &Value, seed: &mut u64) -> Value {
    match v {
        Value::Object(m) => {
            let mut members: Vec<_> = m.iter().collect();
            for i in (1..members.len()).rev() {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                members.swap(i, (*seed >> 33) as usize % (i + 1));
            }
            let mut out = Map::new();
            for (k, v) in members {
                out.insert(k.clone(), shuffle_members(v, seed));
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| shuffle_members(i, seed)).collect())
        }
        other => other.clone(),
    }
}

fn permute(items: &mut [Value], order: &[usize]) {
    let copy: Vec<Value> = items.to_vec();
    for (slot, &from) in order.iter().enumerate() {
        items[slot] = copy[from % copy.len()].clone();
    }
}

fn rich_decision() -> Value {
    let mut e = example("decision-log.audit_decision_record");
    let d = &mut e["data"];
    d["features"]["feature_keys_used"] = json!([
        {"key_type": "account", "key_id": "a1"},
        {"key_type": "device", "key_id": "d9"},
        {"key_type": "account", "key_id": "a0"},
        {"key_type": "merchant", "key_id": "m1"},
        {"key_type": "account", "key_id": "a1", "note": "same key, different element"}
    ]);
    d["features"]["group_versions_used"] = json!([
        {"group_name": "txn_velocity", "group_version": "1.0"},
        {"group_name": "device_risk", "group_version": "2.1"},
        {"group_name": "txn_velocity", "group_version": "0.9"}
    ]);
    d["decision"]["actions"] = json!([
        {"action_type": "QUEUE_CASE", "idempotency_key": "k2", "parameters": {"queue": "ops"}},
        {"action_type": "HOLD", "idempotency_key": "k1"},
        {"action_type": "HOLD", "idempotency_key": "k0"}
    ]);
    e
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn permutations_of_declared_arrays_and_members_change_nothing(
        keys in Just((0..5).collect::<Vec<usize>>()).prop_shuffle(),
        groups in Just((0..3).collect::<Vec<usize>>()).prop_shuffle(),
        actions in Just((0..3).collect::<Vec<usize>>()).prop_shuffle(),
        stages in Just((0..3).collect::<Vec<usize>>()).prop_shuffle(),
        seed in any::<u64>(),
    ) {
        let base = rich_decision();
        let mut shuffled = base.clone();
        {
            let d = &mut shuffled["data"];
            permute(d["features"]["feature_keys_used"].as_array_mut().unwrap(), &keys);
            permute(d["features"]["group_versions_used"].as_array_mut().unwrap(), &groups);
            permute(d["decision"]["actions"].as_array_mut().unwrap(), &actions);
            permute(d["df_provenance"]["stage_summary"].as_array_mut().unwrap(), &stages);
        }
        let mut seed = seed;
        let shuffled = shuffle_members(&shuffled, &mut seed);
        let (a, b) = (prepared(&base), prepared(&shuffled));
        prop_assert_eq!(a.bytes(), b.bytes());
        prop_assert_eq!(a.record_id, b.record_id);
        let (na, nb) = (check(&base).unwrap(), check(&shuffled).unwrap());
        prop_assert_eq!(derive(&na), derive(&nb));
    }

    #[test]
    fn nested_declared_arrays_sort_before_their_parents(
        inner in Just((0..3).collect::<Vec<usize>>()).prop_shuffle(),
    ) {
        let mut base = example("comms.order");
        base["type"] = json!("comms.data_modification");
        base["data"] = json!({
            "data_id": "d-1", "data_type": "customer_data",
            "modification_events": [
                {"timestamp": "2026-01-01T00:00:00Z", "user_id": "u1", "modification_type": "update",
                 "field_changes": [{"field_name": "a"}, {"field_name": "b"}, {"field_name": "c"}]},
                {"timestamp": "2026-01-02T00:00:00Z", "user_id": "u2", "modification_type": "update",
                 "field_changes": [{"field_name": "z"}, {"field_name": "y"}, {"field_name": "x"}]}
            ]
        });
        let mut shuffled = base.clone();
        for ev in shuffled["data"]["modification_events"].as_array_mut().unwrap() {
            permute(ev["field_changes"].as_array_mut().unwrap(), &inner);
        }
        prop_assert_eq!(prepared(&base).record_id, prepared(&shuffled).record_id);
    }
}

#[test]
fn undeclared_arrays_keep_their_order() {
    let mut a = example("comms.order");
    a["type"] = json!("comms.support_ticket");
    a["data"] = json!({"ticket_id": "t-1", "customer_id": "c-1", "status_history": [
        {"timestamp": "2026-01-01T00:00:00Z", "new_status": "open"},
        {"timestamp": "2026-01-02T00:00:00Z", "new_status": "closed"}
    ]});
    let mut b = a.clone();
    b["data"]["status_history"]
        .as_array_mut()
        .unwrap()
        .reverse();
    assert_ne!(prepared(&a).record_id, prepared(&b).record_id);
}

#[test]
fn a_stored_record_derives_what_its_event_derived() {
    let p = packs();
    for event in examples() {
        let normalized = check(&event).unwrap();
        let fresh = canonical(&normalized);
        let mut record = Vec::new();
        fresh.write_record(41, "2026-11-23T00:00:00.000001Z", &mut record);
        let (seq, id, from_record) = sealog_model::record::read_stored(&record, |s| {
            (s.seq, s.record_id, p.derive(s.record, s.envelope))
        })
        .unwrap();
        assert_eq!((seq, id), (41, fresh.record_id), "{}", event["id"]);
        let j = Json::from_value(&normalized);
        let from_event = p.derive(&j, &Envelope::parse(&j).unwrap());
        assert_eq!(from_event, from_record, "{}", event["id"]);
    }
}

#[test]
fn normalization_is_idempotent() {
    for event in examples() {
        let once = check(&event).unwrap();
        assert_eq!(check(&once).unwrap(), once, "{}", event["id"]);
    }
}
