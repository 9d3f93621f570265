//! Subject state rebuilt from canonical records: chunks with tombstones, conversation links,
//! order status; anomalies the consistency checks build on.

use crate::common;

use common::{check, examples, packs};
use serde_json::{Value, json};

/// Stored-record shape: the normalized event plus server fields.
fn records_of(subject_filter: impl Fn(&Value) -> bool) -> Vec<Value> {
    examples()
        .iter()
        .filter(|e| subject_filter(e))
        .enumerate()
        .map(|(i, e)| {
            let mut r = check(e).unwrap();
            r["seq"] = json!(i);
            r["record_id"] = json!(format!("sha256:{:064x}", i));
            r["ingested_at"] = json!("2026-06-01T00:00:00Z");
            r
        })
        .collect()
}

#[test]
fn a_deleted_chunk_is_a_tombstone_with_its_history() {
    let records = records_of(|e| e["data"]["resourceId"] == "chunk-7");
    assert_eq!(records.len(), 4);
    let s = packs().fold_state(&records);
    assert_eq!(s["status"], "deleted");
    assert_eq!(s["tombstone"]["seq"], records[3]["seq"]);
    assert_eq!(s["tombstone"]["reason"], records[3]["reason"]);
    assert_eq!(s["tombstone"]["actor"], records[3]["actor"]);
    assert_eq!(s["history"].as_array().unwrap().len(), 4);
    assert_eq!(s["state"]["authority"], "approved");
    assert_eq!(s["anomalies"], json!([]));

    let before_delete = packs().fold_state(&records[..3]);
    assert_eq!(before_delete["status"], "active");
    assert_eq!(before_delete["tombstone"], Value::Null);
    assert_eq!(
        before_delete["state"]["contentHash"],
        records[1]["data"]["after"]
    );
    assert_eq!(before_delete["version"], 3);
    assert_eq!(before_delete["created"]["seq"], records[0]["seq"]);
    assert_eq!(before_delete["updated"]["seq"], records[2]["seq"]);
}

#[test]
fn modifying_a_deleted_or_unknown_chunk_is_an_anomaly() {
    let records = records_of(|e| e["data"]["resourceId"] == "chunk-7");
    let mut after = records.clone();
    after.push(records[1].clone());
    let s = packs().fold_state(&after);
    let messages: Vec<&str> = s["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("after its deletion")),
        "{messages:?}"
    );

    let unknown = packs().fold_state(&records[1..2]);
    assert_eq!(
        unknown["anomalies"].as_array().unwrap().len(),
        1,
        "{unknown}"
    );
}

#[test]
fn a_conversation_link_follows_link_and_relink() {
    let records = records_of(|e| e["data"]["conversation_id"] == "conv-881");
    let s = packs().fold_state(&records);
    assert_eq!(s["status"], "active");
    assert_eq!(s["state"], json!({"customer_id": "cust-23"}));
    assert_eq!(s["anomalies"], json!([]));
    let ops: Vec<&str> = s["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["op"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["observe", "update", "update"]);

    let only_resolved = packs().fold_state(&records[..1]);
    assert_eq!(only_resolved["status"], "observed");
    assert_eq!(only_resolved["state"], json!({}));

    // A relink whose previous customer is not the current link is what §11 flags.
    let skipped_link = packs().fold_state(&[records[0].clone(), records[2].clone()]);
    assert_eq!(
        skipped_link["anomalies"].as_array().unwrap().len(),
        1,
        "{skipped_link}"
    );
}

#[test]
fn an_order_carries_its_latest_status() {
    let records = records_of(|e| e["data"]["order_id"] == "ord-5531");
    let s = packs().fold_state(&records);
    assert_eq!(s["state"]["status"], "shipped");
    assert_eq!(s["state"]["customer_id"], "cust-23");
    assert_eq!(s["version"], 2);
    assert_eq!(
        packs().fold_state(&records[..1])["state"]["status"],
        "placed"
    );
}

#[test]
fn no_records_is_absent_and_unknown_types_are_reported() {
    let s = packs().fold_state(&[]);
    assert_eq!(s["status"], "absent");
    assert_eq!(s["history"], json!([]));
    let odd = json!({"seq": 1, "record_id": "r", "type": "nobody.knows", "time": "2026-01-01T00:00:00Z", "data": {}});
    let s = packs().fold_state(&[odd]);
    assert_eq!(s["history"].as_array().unwrap().len(), 1);
    assert_eq!(s["anomalies"].as_array().unwrap().len(), 1);
}
