//! Personal fields sealed per data subject, and erasure by destroying the subject's key
//! (PRODUCT §8; seed 003 INV-C005-05's legal-erasure exception; GDPR erasure, seed 003 §6.3):
//! no personal value is in any file in clear, the same event gives the same record, racing
//! first uses get one key, and after erasure every record and every proof made before still
//! holds while the subject's values read as erased and are found by nothing.

use crate::support;

use std::path::Path;
use std::sync::Arc;

use sealog_ledger::{
    Act, Author, EraseError, Erasure, HoldAct, HoldError, HoldScope, Ledger, Query, Sight,
    StateQuery, Undeclared, VerifyOptions,
};
use sealog_merkle::{leaf_hash, verify_consistency, verify_inclusion};
use sealog_testkit::files::files_holding;
use serde_json::{Value, json};
use support::{appended_seq, config, example, open, result_of};

/// Values of one customer that must be in no file of the data directory in clear.
const SECRETS: [&str; 6] = [
    "cust-secret-4711",
    "naledi.secret@example.co.za",
    "Naledi Secretname",
    "+27-82-555-0147",
    "14 Secret Lane, Soweto",
    "she asked about her refund, secretly",
];

fn email(id: &str, customer: &str) -> Value {
    let mut e = example("comms.email", 0);
    e["id"] = json!(id);
    e["data"]["email_id"] = json!(format!("<{id}@shop>"));
    e["data"]["recipient_details"]["customer_id"] = json!(customer);
    e["data"]["recipient_details"]["email"] = json!(SECRETS[1]);
    e["data"]["recipient_details"]["name"] = json!(SECRETS[2]);
    e
}

fn call(id: &str, customer: &str) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "call-centre", "type": "comms.phone_call",
        "time": "2026-04-11T09:00:00Z", "tenant": "shop-za",
        "actor": {"type": "human", "id": "agent-7"},
        "data": {"call_id": id, "customer_phone": SECRETS[3], "customer_id": customer,
                 "call_timestamp": "2026-04-11T09:00:00Z", "call_duration": 300,
                 "call_direction": "inbound", "staff_member": "agent-7",
                 "call_purpose": "complaint", "call_summary": SECRETS[5], "outcome": "resolved",
                 "follow_up_required": "no"}})
}

fn order(id: &str, customer: &str) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "shop", "type": "comms.order",
        "time": "2026-04-12T10:00:00Z", "tenant": "shop-za",
        "actor": {"type": "system", "id": "shop"},
        "data": {"order_id": "ord-77", "customer_id": customer,
                 "order_timestamp": "2026-04-12T10:00:00Z", "order_source": "website",
                 "event_type": "placed", "triggered_by": "customer", "new_status": "placed",
                 "shipping_audit": {"shipping_address": SECRETS[4]}}})
}

/// The quarantine record of the event with this id.
fn quarantined(ledger: &Ledger, id: &str) -> Value {
    let q = Query {
        equals: vec![("id".into(), id.into())],
        limit: 1,
        ..Query::default()
    };
    serde_json::from_slice(&ledger.quarantine_query(&q).unwrap().records[0].1).unwrap()
}

fn assert_nowhere_in_clear(dir: &Path) {
    for s in SECRETS {
        let found = files_holding(dir, s);
        assert!(found.is_empty(), "{s:?} is in clear in {found:?}");
    }
}

fn erasure<'a>(subject: &'a str, tenant: Option<&'a str>) -> Erasure<'a> {
    Erasure {
        data_subject: subject,
        tenant,
        reason: "GDPR Art. 17 request 2026-117",
        act: Act {
            actor: json!({"type": "human", "id": "dpo-1"}),
            time: "2026-05-01T12:00:00Z".into(),
            source: "sealog-test",
        },
    }
}

fn by_customer(ledger: &Ledger, axis: &str, customer: &str) -> Vec<u64> {
    let q = Query {
        equals: vec![(axis.into(), customer.into())],
        limit: 100,
        ..Query::default()
    };
    ledger
        .query(&q)
        .unwrap()
        .records
        .iter()
        .map(|r| r.0)
        .collect()
}

#[test]
fn no_personal_value_is_on_disk_in_clear_before_or_after_erasure() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open(tmp.path());
    let customer = SECRETS[0];
    appended_seq(&result_of(&ledger, &email("e-1", customer)));
    appended_seq(&result_of(&ledger, &call("c-1", customer)));
    appended_seq(&result_of(&ledger, &order("o-1", customer)));
    // Quarantined with its personal values: the payload is kept, sealed.
    let mut bad = call("c-2", customer);
    bad["data"]["call_direction"] = json!("sideways");
    let q = result_of(&ledger, &bad);
    assert_eq!(
        q.to_json()["reason_code"],
        "SCHEMA_VIOLATION",
        "{}",
        q.to_json()
    );
    // Personal values without their data subject: refused, and the payload is not kept.
    let mut nobody = call("c-3", customer);
    nobody["data"]
        .as_object_mut()
        .unwrap()
        .remove("customer_id");
    let r = result_of(&ledger, &nobody).to_json();
    assert_eq!(r["reason_code"], "INCOMPLETE_PROVENANCE", "{r}");
    assert_eq!(r["missing_fields"], json!(["data.customer_id"]), "{r}");
    let record = |id: &str| quarantined(&ledger, id);
    assert_eq!(
        record("c-3")["data"]["payload_ref"],
        Value::Null,
        "not kept"
    );
    // The sealed payload opens for those who may see the subject's personal data.
    let sealed_ref = record("c-2")["data"]["payload_ref"]
        .as_str()
        .unwrap()
        .to_string();
    let bytes = ledger.quarantine_payload(&sealed_ref).unwrap().unwrap();
    let opened = ledger.reveal_payload(bytes.clone(), &Sight::All).unwrap();
    let sent: Value = serde_json::from_slice(&opened).unwrap();
    assert_eq!(sent, bad, "the payload is the event as it was sent");
    assert_eq!(ledger.reveal_payload(bytes.clone(), &Sight::Nothing), None);
    let own = Sight::Own(ledger.pseudonym(customer));
    assert!(ledger.reveal_payload(bytes, &own).is_some());
    // An index rebuilt from the log, tree files and a signed checkpoint are all there.
    ledger.checkpoint().unwrap();
    ledger.close().unwrap();
    let ledger = open(tmp.path());
    assert_nowhere_in_clear(tmp.path());

    // Readers who may see personal data read it back.
    let record = ledger.get(1).unwrap().unwrap();
    let shown: Value = serde_json::from_slice(&ledger.reveal(&record, &Sight::All)).unwrap();
    assert_eq!(shown["data"]["customer_phone"], SECRETS[3]);
    assert_eq!(shown["data"]["customer_id"], customer);
    let hidden: Value = serde_json::from_slice(&ledger.reveal(&record, &Sight::Nothing)).unwrap();
    assert_eq!(
        hidden["data"]["customer_phone"],
        json!({"$personal": "hidden"})
    );
    assert_eq!(
        hidden["data"]["staff_member"], "agent-7",
        "what is not personal stays"
    );
    let own = Sight::Own(ledger.pseudonym(customer));
    let theirs: Value = serde_json::from_slice(&ledger.reveal(&record, &own)).unwrap();
    assert_eq!(theirs["data"]["call_summary"], SECRETS[5]);
    let other = Sight::Own(ledger.pseudonym("cust-other"));
    let not_theirs: Value = serde_json::from_slice(&ledger.reveal(&record, &other)).unwrap();
    assert_eq!(
        not_theirs["data"]["call_summary"],
        json!({"$personal": "hidden"})
    );

    ledger.erase(&erasure(customer, None)).unwrap();
    ledger.close().unwrap();
    assert_nowhere_in_clear(tmp.path());
}

#[test]
fn the_same_event_seals_to_the_same_record_and_dedupes() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open(tmp.path());
    let first = result_of(&ledger, &email("e-1", "cust-1"));
    let seq = appended_seq(&first);
    let again = result_of(&ledger, &email("e-1", "cust-1"));
    assert_eq!(
        again.to_json()["status"],
        "duplicate",
        "{}",
        again.to_json()
    );
    assert_eq!(again.seq(), Some(seq));
    // The same values for another customer are sealed under another key.
    let other = result_of(&ledger, &email("e-1", "cust-2")).to_json();
    assert_eq!(other["status"], "appended");
    assert_ne!(other["record_id"], first.to_json()["record_id"]);
    // And in another data directory (another master key) too: nothing links them.
    let tmp2 = tempfile::tempdir().unwrap();
    let elsewhere = open(tmp2.path());
    let there = result_of(&elsewhere, &email("e-1", "cust-1")).to_json();
    assert_ne!(there["record_id"], first.to_json()["record_id"]);
}

/// A user pack's personal fields may nest — a field listed before the one around it, every
/// element's field beside one element — and a reader who may see them reads the event back
/// as it was sent, with none of it in clear on disk.
#[test]
fn nested_personal_fields_read_back_as_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let packs_dir = tempfile::tempdir().unwrap();
    let manifest = json!({"pack": "crm", "types": {"crm.contact": {
        "schema": "contact.schema.json",
        "data_subject": "/data/customer_id",
        "personal": ["/data/profile/email", "/data/profile", "/data/contacts/*/phone",
                     "/data/contacts/0", "/data/notes", "/data/notes/0"]}}});
    std::fs::write(packs_dir.path().join("manifest.json"), manifest.to_string()).unwrap();
    let schema =
        json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"});
    std::fs::write(
        packs_dir.path().join("contact.schema.json"),
        schema.to_string(),
    )
    .unwrap();
    let packs = sealog_packs::Packs::load(&[packs_dir.path()]).unwrap();
    let ledger = Ledger::open(tmp.path(), config(packs, Undeclared::Quarantine)).unwrap();
    let event = json!({"specversion": "1.0", "id": "c-1", "source": "crm", "type": "crm.contact",
        "time": "2026-04-10T07:30:00Z", "tenant": "shop-za", "actor": {"type": "system", "id": "crm"},
        "data": {"customer_id": "cust-nested",
                 "profile": {"email": "nested@example.org", "city": "Durban"},
                 "contacts": [{"phone": "+27-31-555-0001", "kind": "home"},
                              {"phone": "+27-31-555-0002", "kind": "work"}],
                 "notes": ["first note", "second note"]}});
    let seq = appended_seq(&result_of(&ledger, &event));
    let record = ledger.get(seq).unwrap().unwrap();
    let shown: Value = serde_json::from_slice(&ledger.reveal(&record, &Sight::All)).unwrap();
    assert_eq!(shown["data"], event["data"], "{shown}");
    ledger.close().unwrap();
    for secret in [
        "cust-nested",
        "nested@example.org",
        "Durban",
        "+27-31-555-0001",
        "+27-31-555-0002",
        "second note",
    ] {
        let found = files_holding(tmp.path(), secret);
        assert!(found.is_empty(), "{secret:?} is in clear in {found:?}");
    }
}

#[test]
fn racing_first_uses_of_a_data_subject_get_one_key() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = Arc::new(open(tmp.path()));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let ledger = ledger.clone();
            std::thread::spawn(move || {
                // Half send the same event, half one of their own, all for a new customer.
                let id = if i % 2 == 0 {
                    "e-same".to_string()
                } else {
                    format!("e-{i}")
                };
                result_of(&ledger, &email(&id, "cust-new")).to_json()
            })
        })
        .collect();
    let results: Vec<Value> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let same: Vec<&Value> = results.iter().step_by(2).collect();
    assert_eq!(
        same.iter().filter(|r| r["status"] == "appended").count(),
        1,
        "one key, so one record for the same event: {results:?}"
    );
    assert!(same.iter().all(|r| r["record_id"] == same[0]["record_id"]));
    assert_eq!(by_customer(&ledger, "customer_id", "cust-new").len(), 5);
    for seq in 0..5 {
        let r = ledger.get(seq).unwrap().unwrap();
        let v: Value = serde_json::from_slice(&ledger.reveal(&r, &Sight::All)).unwrap();
        assert_eq!(
            v["data"]["recipient_details"]["customer_id"], "cust-new",
            "{v}"
        );
    }
}

#[test]
fn gdpr_erasure_keeps_every_record_and_every_proof_made_before() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open(tmp.path());
    let customer = "cust-erase-1";
    let mut seqs = vec![
        appended_seq(&result_of(&ledger, &email("e-1", customer))),
        appended_seq(&result_of(&ledger, &call("c-1", customer))),
        appended_seq(&result_of(&ledger, &order("o-1", customer))),
    ];
    let kept = appended_seq(&result_of(&ledger, &email("e-2", "cust-kept")));
    let mut bad = call("c-2", customer);
    bad["data"]["call_direction"] = json!("sideways");
    let quarantined = result_of(&ledger, &bad).to_json();
    let before = ledger.checkpoint().unwrap();
    let root = ledger.root(before.size).unwrap();
    let proofs: Vec<_> = seqs
        .iter()
        .map(|s| {
            let record = ledger.get(*s).unwrap().unwrap();
            (
                *s,
                leaf_hash(&record),
                ledger.inclusion_proof(*s, before.size).unwrap(),
            )
        })
        .collect();
    assert_eq!(by_customer(&ledger, "customer_id", customer), seqs);
    assert_eq!(by_customer(&ledger, "data_subject", customer), seqs);
    let state = ledger
        .state(&StateQuery {
            subject: "ord-77".into(),
            ..StateQuery::default()
        })
        .unwrap();
    assert_eq!(state["state"]["customer_id"], customer, "{state}");

    let done = ledger.erase(&erasure(customer, None)).unwrap();
    assert_eq!(done.records, 3);
    assert_eq!(done.tenants, ["shop-za"]);
    assert_eq!(done.pseudonym, ledger.pseudonym(customer));

    // Every record is still there, byte for byte, and every proof made before holds.
    for (seq, leaf, proof) in &proofs {
        let record = ledger.get(*seq).unwrap().unwrap();
        assert_eq!(leaf_hash(&record), *leaf);
        verify_inclusion(leaf, *seq, before.size, &root, proof).unwrap();
    }
    let after = ledger.checkpoint().unwrap();
    let new_root = ledger.root(after.size).unwrap();
    let consistency = ledger.consistency_proof(before.size, after.size).unwrap();
    verify_consistency(before.size, after.size, &root, &new_root, &consistency).unwrap();
    // Reads show the fields as erased; what is not personal is still there.
    let call_record = ledger.get(seqs[1]).unwrap().unwrap();
    let shown: Value = serde_json::from_slice(&ledger.reveal(&call_record, &Sight::All)).unwrap();
    assert_eq!(
        shown["data"]["customer_phone"],
        json!({"$personal": "erased"})
    );
    assert_eq!(shown["data"]["customer_id"], json!({"$personal": "erased"}));
    assert_eq!(shown["data"]["call_purpose"], "complaint");
    // The rebuilt state shows them erased.
    let state = ledger
        .state(&StateQuery {
            subject: "ord-77".into(),
            ..StateQuery::default()
        })
        .unwrap();
    assert_eq!(
        state["state"]["customer_id"],
        json!({"$personal": "erased"}),
        "{state}"
    );
    assert_eq!(state["state"]["status"], "placed");
    // Queries by the subject's personal axes find nothing; others are untouched.
    assert!(by_customer(&ledger, "customer_id", customer).is_empty());
    assert!(by_customer(&ledger, "data_subject", customer).is_empty());
    assert_eq!(by_customer(&ledger, "customer_id", "cust-kept"), [kept]);
    assert_eq!(
        by_customer(&ledger, "type", "comms.phone_call"),
        [seqs[1]],
        "the record itself is still found by what is not personal"
    );
    // The erasure record names the pseudonym, never the person.
    let record = ledger.get(done.seq).unwrap().unwrap();
    let text = String::from_utf8(record.clone()).unwrap();
    assert!(!text.contains(customer), "{text}");
    let v: Value = serde_json::from_slice(&record).unwrap();
    assert_eq!(v["type"], "audit.legal_erasure");
    assert_eq!(v["data"]["data_subject_pseudonym"], done.pseudonym);
    assert_eq!(v["data"]["records_affected"], 3);
    assert_eq!(v["actor"]["id"], "dpo-1");
    // The subject's quarantined payload is deleted, and the deletion recorded first.
    let reference = quarantined["quarantine_id"].as_str().unwrap();
    let page = ledger
        .quarantine_query(&Query {
            equals: vec![("id".into(), "c-2".into())],
            limit: 1,
            ..Query::default()
        })
        .unwrap();
    let qr: Value = serde_json::from_slice(&page.records[0].1).unwrap();
    assert_eq!(
        qr["data"]["data_subject_pseudonym"], done.pseudonym,
        "{qr} {reference}"
    );
    let payload_ref = qr["data"]["payload_ref"].as_str().unwrap();
    assert_eq!(done.payloads_deleted, [payload_ref]);
    assert_eq!(ledger.quarantine_payload(payload_ref).unwrap(), None);
    let deleted = by_customer(&ledger, "type", "audit.payload_deleted");
    assert_eq!(deleted.len(), 1);
    let d: Value = serde_json::from_slice(&ledger.get(deleted[0]).unwrap().unwrap()).unwrap();
    assert_eq!(d["data"]["payload_refs"], json!([payload_ref]));
    assert!(deleted[0] > done.seq, "after the erasure record");

    // Erasing twice answers clearly and changes nothing.
    let len = ledger.len();
    match ledger.erase(&erasure(customer, None)) {
        Err(EraseError::AlreadyErased(ps)) => assert_eq!(ps, done.pseudonym),
        other => panic!("expected already erased, got {other:?}"),
    }
    assert_eq!(ledger.len(), len);
    match ledger.erase(&erasure("cust-never-seen", None)) {
        Err(EraseError::Unknown(_)) => {}
        other => panic!("expected unknown, got {other:?}"),
    }
    // Re-ingesting the subject's event never brings the plaintext back under a new key.
    let again = result_of(&ledger, &email("e-9", customer)).to_json();
    assert_eq!(again["status"], "quarantined", "{again}");
    assert_eq!(again["reason_code"], "DATA_SUBJECT_ERASED", "{again}");
    let replay = result_of(&ledger, &email("e-1", customer)).to_json();
    assert_eq!(replay["reason_code"], "DATA_SUBJECT_ERASED", "{replay}");
    seqs.push(done.seq);

    ledger.close().unwrap();
    assert_nowhere_in_clear_of(tmp.path(), customer);
    let (report, _) = Ledger::verify(
        tmp.path(),
        &VerifyOptions {
            full: true,
            ..VerifyOptions::default()
        },
    )
    .unwrap_or_else(|f| panic!("verify after erasure: {f:?}"));
    assert_eq!(report.records, len);
}

fn assert_nowhere_in_clear_of(dir: &Path, value: &str) {
    let found = files_holding(dir, value);
    assert!(found.is_empty(), "{value:?} is in clear in {found:?}");
}

#[test]
fn erasure_in_one_tenant_leaves_the_subjects_other_tenants() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open(tmp.path());
    let here = appended_seq(&result_of(&ledger, &email("e-1", "cust-1")));
    let mut elsewhere = email("e-2", "cust-1");
    elsewhere["tenant"] = json!("shop-ke");
    let there = appended_seq(&result_of(&ledger, &elsewhere));
    let done = ledger.erase(&erasure("cust-1", Some("shop-ke"))).unwrap();
    assert_eq!(done.tenants, ["shop-ke"]);
    assert_eq!(done.records, 1);
    let v = |seq| -> Value {
        let r = ledger.get(seq).unwrap().unwrap();
        serde_json::from_slice(&ledger.reveal(&r, &Sight::All)).unwrap()
    };
    assert_eq!(
        v(here)["data"]["recipient_details"]["customer_id"],
        "cust-1"
    );
    assert_eq!(
        v(there)["data"]["recipient_details"]["customer_id"],
        json!({"$personal": "erased"})
    );
    let erased: Value = serde_json::from_slice(&ledger.get(done.seq).unwrap().unwrap()).unwrap();
    assert_eq!(
        erased["tenant"], "shop-ke",
        "a tenant's admin sees its erasures"
    );
}

#[test]
fn a_lost_key_store_never_mints_new_keys_for_subjects_the_log_knows() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open(tmp.path());
    appended_seq(&result_of(&ledger, &email("e-1", "cust-1")));
    ledger.close().unwrap();
    let keys = tmp.path().join("privacy").join("subject-keys");
    std::fs::remove_file(&keys).unwrap();

    let ledger = open(tmp.path());
    let r = result_of(&ledger, &email("e-2", "cust-1")).to_json();
    assert_eq!(r["status"], "rejected", "{r}");
    assert_eq!(r["error"]["code"], "SUBJECT_KEY_MISSING", "{r}");
    // A subject the log never knew still gets a key.
    assert_eq!(
        result_of(&ledger, &email("e-3", "cust-2")).to_json()["status"],
        "appended"
    );
    // The old record's values are unreadable, not mistaken for anything.
    let r = ledger.get(0).unwrap().unwrap();
    let v: Value = serde_json::from_slice(&ledger.reveal(&r, &Sight::All)).unwrap();
    assert_eq!(
        v["data"]["recipient_details"]["name"],
        json!({"$personal": "unavailable"})
    );
    ledger.close().unwrap();

    // Subject keys without their master key: refused, never replaced by a new master key.
    std::fs::remove_file(tmp.path().join("privacy").join("master.key")).unwrap();
    let config = support::config(
        sealog_packs::Packs::builtin(),
        sealog_ledger::Undeclared::Quarantine,
    );
    let err = Ledger::open(tmp.path(), config).err().expect("refused");
    assert!(err.to_string().contains("no master key"), "{err}");
    assert!(!tmp.path().join("privacy").join("master.key").exists());
}

#[test]
fn an_erasure_record_whose_key_a_crash_left_is_finished_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open(tmp.path());
    appended_seq(&result_of(&ledger, &email("e-1", "cust-1")));
    // The record of an erasure, as if the process died before destroying the key.
    let ps = ledger.pseudonym("cust-1");
    let event = json!({"specversion": "1.0", "id": "erasure-crashed", "source": "sealog-test",
        "type": "audit.legal_erasure", "time": "2026-05-01T12:00:00Z",
        "actor": {"type": "human", "id": "dpo-1"},
        "data": {"data_subject_pseudonym": ps, "reason": "GDPR", "records_affected": 1,
                 "tenants": ["shop-za"]}});
    let prepared = ledger.prepare_value(&event, &Author::Sealog);
    assert_eq!(
        ledger.commit(vec![prepared]).unwrap()[0].to_json()["status"],
        "appended"
    );
    let r = ledger.get(0).unwrap().unwrap();
    let v: Value = serde_json::from_slice(&ledger.reveal(&r, &Sight::All)).unwrap();
    assert_eq!(
        v["data"]["recipient_details"]["customer_id"], "cust-1",
        "still live"
    );
    ledger.close().unwrap();

    let ledger = open(tmp.path());
    let r = ledger.get(0).unwrap().unwrap();
    let v: Value = serde_json::from_slice(&ledger.reveal(&r, &Sight::All)).unwrap();
    assert_eq!(
        v["data"]["recipient_details"]["customer_id"],
        json!({"$personal": "erased"}),
        "finished on open"
    );

    // A deletion record whose payloads a crash left: deleted on the next opening.
    let mut bad = email("e-2", "cust-2");
    bad["data"]["event_type"] = json!("teleported");
    let q = result_of(&ledger, &bad).to_json();
    assert_eq!(q["status"], "quarantined", "{q}");
    let page = ledger
        .quarantine_query(&Query {
            equals: vec![("id".into(), "e-2".into())],
            limit: 1,
            ..Query::default()
        })
        .unwrap();
    let qr: Value = serde_json::from_slice(&page.records[0].1).unwrap();
    let payload_ref = qr["data"]["payload_ref"].as_str().unwrap().to_string();
    assert!(ledger.quarantine_payload(&payload_ref).unwrap().is_some());
    let event = json!({"specversion": "1.0", "id": "deleted-crashed", "source": "sealog-test",
        "type": "audit.payload_deleted", "time": "2026-05-01T12:00:00Z",
        "actor": {"type": "human", "id": "dpo-1"},
        "data": {"payload_refs": [payload_ref], "reason": "erasure"}});
    let prepared = ledger.prepare_value(&event, &Author::Sealog);
    assert_eq!(
        ledger.commit(vec![prepared]).unwrap()[0].to_json()["status"],
        "appended"
    );
    ledger.close().unwrap();
    let ledger = open(tmp.path());
    assert_eq!(ledger.quarantine_payload(&payload_ref).unwrap(), None);
    ledger.close().unwrap();
    Ledger::verify(tmp.path(), &VerifyOptions::default()).unwrap_or_else(|f| panic!("{f:?}"));
}

fn act(reason: &str) -> HoldAct<'_> {
    HoldAct {
        reason,
        act: Act {
            actor: json!({"type": "human", "id": "counsel-1"}),
            time: "2026-05-02T09:00:00Z".into(),
            source: "sealog-test",
        },
    }
}

#[test]
fn a_legal_hold_keeps_a_subject_from_erasure_until_released() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open(tmp.path());
    appended_seq(&result_of(&ledger, &email("e-1", "cust-1")));
    let mut elsewhere = email("e-2", "cust-1");
    elsewhere["tenant"] = json!("shop-ke");
    appended_seq(&result_of(&ledger, &elsewhere));

    // Nothing to hold, no reason: refused, nothing written.
    let len = ledger.len();
    assert!(matches!(
        ledger.place_hold(&HoldScope::default(), &act("matter 7")),
        Err(HoldError::Invalid(_))
    ));
    let subject = HoldScope {
        data_subject: Some("cust-1"),
        ..HoldScope::default()
    };
    assert!(matches!(
        ledger.place_hold(&subject, &act(" ")),
        Err(HoldError::Invalid(_))
    ));
    assert_eq!(ledger.len(), len);

    let hold = ledger
        .place_hold(&subject, &act("litigation 2026-7"))
        .unwrap();
    assert_eq!(
        hold.data_subject_pseudonym.as_deref(),
        Some(ledger.pseudonym("cust-1").as_str())
    );
    assert_eq!(ledger.holds(false).unwrap(), std::slice::from_ref(&hold));
    match ledger.erase(&erasure("cust-1", None)) {
        Err(e @ EraseError::Held(_)) => assert!(e.to_string().contains(&hold.hold_id), "{e}"),
        other => panic!("expected the hold to refuse it, got {other:?}"),
    }
    // A tenant's hold covers its tenant only.
    let tenant = HoldScope {
        tenant: Some("shop-ke"),
        ..HoldScope::default()
    };
    let ke = ledger
        .place_hold(&tenant, &act("regulator inquiry KE-3"))
        .unwrap();
    let released = ledger
        .release_holds(Some(&hold.hold_id), &HoldScope::default(), &act("settled"))
        .unwrap();
    assert_eq!(released.len(), 1);
    assert!(matches!(
        ledger.release_holds(Some(&hold.hold_id), &HoldScope::default(), &act("again")),
        Err(HoldError::NotFound(_))
    ));
    match ledger.erase(&erasure("cust-1", Some("shop-ke"))) {
        Err(EraseError::Held(h)) => assert_eq!(h.hold_id, ke.hold_id),
        other => panic!("expected the tenant hold, got {other:?}"),
    }
    let done = ledger.erase(&erasure("cust-1", Some("shop-za"))).unwrap();
    assert_eq!(done.tenants, ["shop-za"]);
    // Released by scope; the history keeps both.
    assert_eq!(
        ledger
            .release_holds(None, &tenant, &act("closed"))
            .unwrap()
            .len(),
        1
    );
    assert!(ledger.holds(false).unwrap().is_empty());
    let all = ledger.holds(true).unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|h| h.released_seq.is_some()));
    let done = ledger.erase(&erasure("cust-1", None)).unwrap();
    assert_eq!(done.tenants, ["shop-ke"]);
    let types: Vec<u64> = by_customer(&ledger, "type", "audit.hold_placed");
    assert_eq!(types.len(), 2);
    ledger.close().unwrap();
    let ledger = open(tmp.path());
    assert_eq!(ledger.holds(true).unwrap(), all, "read back from the log");
}

/// A blank data subject names nobody: `sealog erase` and subject keys refuse such a name, so
/// personal values sealed for it could never be erased or read back by their owner. An event
/// carrying personal values beside one is quarantined as missing it, and nothing of it is
/// kept in clear, nor sealed under a key nobody can name.
#[test]
fn personal_values_beside_a_blank_data_subject_are_quarantined_and_kept_nowhere() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open(tmp.path());
    for (i, blank) in ["", "   ", "\t\n"].into_iter().enumerate() {
        let id = format!("blank-{i}");
        let r = result_of(&ledger, &email(&id, blank)).to_json();
        assert_eq!(r["status"], "quarantined", "{blank:?}: {r}");
        assert_eq!(r["reason_code"], "INCOMPLETE_PROVENANCE", "{r}");
        assert_eq!(
            r["missing_fields"],
            json!(["data.recipient_details.customer_id"]),
            "{r}"
        );
        let q = Query {
            equals: vec![("id".into(), id.clone())],
            limit: 1,
            ..Query::default()
        };
        let page = ledger.quarantine_query(&q).unwrap();
        let record: Value = serde_json::from_slice(&page.records[0].1).unwrap();
        assert_eq!(record["data"]["payload_ref"], Value::Null, "{record}");
    }
    // A customer who is somebody is sealed as before, and the log holds nothing else.
    appended_seq(&result_of(&ledger, &email("named", "cust-named")));
    assert_eq!(ledger.len(), 1);
    ledger.close().unwrap();
    for secret in &SECRETS[1..3] {
        let found = files_holding(tmp.path(), secret);
        assert!(found.is_empty(), "{secret:?} is in clear in {found:?}");
    }
}

#[test]
fn a_reader_beside_the_writer_sees_an_erasure_made_after_it_opened_a_value() {
    let tmp = tempfile::tempdir().unwrap();
    let writer = open(tmp.path());
    let seq = appended_seq(&result_of(&writer, &email("m-1", "cust-1")));
    let reader = Ledger::open_read_only(
        tmp.path(),
        config(sealog_packs::Packs::builtin(), Undeclared::Quarantine),
    )
    .unwrap();
    let record = reader.get(seq).unwrap().expect("the record");
    let shown = |l: &Ledger| -> Value {
        let v: Value = serde_json::from_slice(&l.reveal(&record, &Sight::All)).unwrap();
        v["data"]["recipient_details"]["customer_id"].clone()
    };
    assert_eq!(shown(&reader), json!("cust-1"), "opened before the erasure");
    writer.erase(&erasure("cust-1", None)).unwrap();
    assert_eq!(shown(&writer), json!({"$personal": "erased"}));
    assert_eq!(
        shown(&reader),
        json!({"$personal": "erased"}),
        "a reader that opened the key before the erasure reads it erased after"
    );
}

#[test]
fn a_resolution_candidates_customer_id_is_sealed_and_erased_with_them() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open(tmp.path());
    let resolved = example("conversation.customer_resolved", 0);
    let customer = resolved["data"]["new_customer_id"]
        .as_str()
        .expect("the candidate")
        .to_string();
    let seq = appended_seq(&result_of(&ledger, &resolved));
    assert_nowhere_in_clear_of(tmp.path(), &customer);
    let record = ledger.get(seq).unwrap().expect("the record");
    let shown = |l: &Ledger| -> Value {
        let v: Value = serde_json::from_slice(&l.reveal(&record, &Sight::All)).unwrap();
        v["data"]["new_customer_id"].clone()
    };
    assert_eq!(shown(&ledger), json!(customer));
    ledger.erase(&erasure(&customer, None)).unwrap();
    assert_eq!(shown(&ledger), json!({"$personal": "erased"}));
}

/// A data directory made by its first writable opening is its owner's alone: it holds the
/// keys, and records other users of the machine have no business reading. One that exists
/// keeps the permissions it was given.
#[test]
fn a_new_data_directory_is_the_owners_alone() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let fresh = tmp.path().join("fresh");
    drop(open(&fresh));
    assert_eq!(mode(&fresh), 0o700);
    let given = tmp.path().join("given");
    std::fs::create_dir(&given).unwrap();
    std::fs::set_permissions(&given, std::fs::Permissions::from_mode(0o750)).unwrap();
    drop(open(&given));
    assert_eq!(mode(&given), 0o750);
}

/// A correction may name another data subject than the record it corrects: a timeline read
/// within the first subject's reach shows their record superseded, and names the correction
/// only to a caller who may read it.
#[test]
fn a_timeline_names_a_correction_only_to_who_may_read_it() {
    use sealog_ledger::StateQuery;
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open(tmp.path());
    let first = appended_seq(&result_of(&ledger, &order("o-1", "cust-a")));
    let stored: Value = serde_json::from_slice(&ledger.get(first).unwrap().unwrap()).unwrap();
    let mut correction = order("o-2", "cust-b");
    correction["supersedes"] = stored["record_id"].clone();
    let by = appended_seq(&result_of(&ledger, &correction));
    let timeline = |filters: Vec<(String, String)>| {
        let q = StateQuery {
            subject: "ord-77".to_string(),
            filters,
            ..StateQuery::default()
        };
        ledger.timeline(&q).unwrap()["superseded"].clone()
    };
    let tenant = ("tenant".to_string(), "shop-za".to_string());
    let everyone = timeline(vec![tenant.clone()]);
    assert_eq!(everyone[0]["seq"], first, "{everyone}");
    assert_eq!(everyone[0]["superseded_by"], by, "{everyone}");
    let theirs = timeline(vec![
        tenant,
        ("data_subject".to_string(), ledger.pseudonym("cust-a")),
    ]);
    assert_eq!(theirs[0]["seq"], first, "{theirs}");
    assert_eq!(theirs[0]["superseded_by"], Value::Null, "{theirs}");
}

/// A relink names the customer before, sealed for the customer after. Once the customer
/// before is erased, what the link said is gone: the state's expectation that the relink
/// names the current link decides nothing, rather than reporting the erasure as a relink
/// that names the wrong customer (which `check` would record as a conflict).
#[test]
fn an_erased_link_is_no_mismatch_for_the_relink_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let linked = example("conversation.customer_linked", 0);
    let relinked = example("conversation.customer_relinked", 0);
    let (before, after) = (
        linked["data"]["new_customer_id"]
            .as_str()
            .unwrap()
            .to_string(),
        relinked["data"]["new_customer_id"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    assert_eq!(relinked["data"]["previous_customer_id"], before.as_str());
    let state = |ledger: &Ledger| {
        ledger
            .state(&StateQuery {
                subject: "conv-881".into(),
                ..StateQuery::default()
            })
            .unwrap()
    };
    appended_seq(&result_of(&ledger, &linked));
    ledger.erase(&erasure(&before, None)).unwrap();
    appended_seq(&result_of(&ledger, &relinked));
    let s = state(&ledger);
    assert_eq!(s["anomalies"], json!([]), "{s}");
    assert_eq!(s["state"]["customer_id"], after.as_str(), "{s}");
    // A link that is not erased and names another customer is still a mismatch.
    let mut wrong = relinked.clone();
    wrong["id"] = json!("cm25-3-again");
    wrong["data"]["previous_customer_id"] = json!("cust-not-linked");
    wrong["data"]["new_customer_id"] = json!("cust-99");
    appended_seq(&result_of(&ledger, &wrong));
    let s = state(&ledger);
    let kinds: Vec<&str> = s["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["expect"], "{s}");
}

/// A payload may hold personal values outside the fields that declare them: sent under a
/// misspelt field name, or under a misspelt type of a pack that declares personal fields. It
/// is kept only sealed for its data subject, so erasure reaches it, or not at all.
#[test]
fn personal_values_outside_declared_fields_are_kept_in_no_quarantine_payload_in_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open(tmp.path());
    let customer = "cust-misnamed-88";
    let phone = "+27-82-555-0199";
    let name = "Thandi Misnamedfield";
    let record = |id: &str| quarantined(&ledger, id);
    // A known type whose personal values sit in fields its schema does not have.
    let mut misnamed = call("c-misnamed", customer);
    let data = misnamed["data"].as_object_mut().unwrap();
    data.remove("customer_phone");
    data.insert("customer_phone_number".into(), json!(phone));
    data.insert("caller_name".into(), json!(name));
    let r = result_of(&ledger, &misnamed).to_json();
    assert_eq!(r["reason_code"], "SCHEMA_VIOLATION", "{r}");
    let sealed_ref = record("c-misnamed")["data"]["payload_ref"]
        .as_str()
        .expect("kept, sealed for its data subject")
        .to_string();
    let bytes = ledger.quarantine_payload(&sealed_ref).unwrap().unwrap();
    assert_eq!(ledger.reveal_payload(bytes.clone(), &Sight::Nothing), None);
    let opened = ledger.reveal_payload(bytes, &Sight::All).unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&opened).unwrap(), misnamed);
    // A misspelt type of the same pack (in any case): no pack says whose it is, so it is not
    // kept at all; a type of a namespace no personal pack uses keeps its payload.
    for (id, kind) in [("t-typo", "comms.emial"), ("t-case", "Comms.Email")] {
        let mut typo = email(id, customer);
        typo["type"] = json!(kind);
        let r = result_of(&ledger, &typo).to_json();
        assert_eq!(r["reason_code"], "UNKNOWN_EVENT_TYPE", "{r}");
        assert_eq!(record(id)["data"]["payload_ref"], Value::Null, "{kind}");
    }
    let mut elsewhere = email("t-other", customer);
    elsewhere["type"] = json!("warehouse.pallet_moved");
    result_of(&ledger, &elsewhere);
    assert!(record("t-other")["data"]["payload_ref"].is_string());

    ledger.close().unwrap();
    for value in [phone, name] {
        assert_nowhere_in_clear_of(tmp.path(), value);
    }
    let ledger = open(tmp.path());
    ledger.erase(&erasure(customer, None)).unwrap();
    assert_eq!(ledger.quarantine_payload(&sealed_ref).unwrap(), None);
    ledger.close().unwrap();
}

/// An erasure named for no one tenant holds in every tenant, those the subject appears in
/// only later too: no later event brings their values back under a key nobody asked for. One
/// named for a tenant holds there alone.
#[test]
fn an_erasure_of_every_tenant_holds_in_tenants_the_subject_reaches_later() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open(tmp.path());
    let in_tenant = |id: &str, customer: &str, tenant: Option<&str>| {
        let mut e = email(id, customer);
        match tenant {
            Some(t) => e["tenant"] = json!(t),
            None => {
                e.as_object_mut().unwrap().remove("tenant");
            }
        }
        result_of(&ledger, &e).to_json()
    };
    for (id, tenant) in [("a1", "tA"), ("b1", "tB")] {
        assert_eq!(
            in_tenant(id, "cust-everywhere", Some(tenant))["status"],
            "appended"
        );
    }
    assert_eq!(
        in_tenant("k1", "cust-kept", Some("tA"))["status"],
        "appended"
    );
    let done = ledger.erase(&erasure("cust-everywhere", None)).unwrap();
    assert_eq!(done.tenants, ["tA", "tB"]);
    let erased_reason = |r: &Value| r["reason_code"].clone();
    for (id, tenant) in [("a2", Some("tA")), ("c1", Some("tC")), ("n1", None)] {
        let r = in_tenant(id, "cust-everywhere", tenant);
        assert_eq!(erased_reason(&r), "DATA_SUBJECT_ERASED", "{tenant:?}: {r}");
    }
    // Others are untouched, in the new tenant too.
    assert_eq!(
        in_tenant("k2", "cust-kept", Some("tC"))["status"],
        "appended"
    );
    // A tenant's own erasure holds there alone.
    ledger.erase(&erasure("cust-kept", Some("tA"))).unwrap();
    let r = in_tenant("k3", "cust-kept", Some("tA"));
    assert_eq!(erased_reason(&r), "DATA_SUBJECT_ERASED", "{r}");
    assert_eq!(
        in_tenant("k4", "cust-kept", Some("tD"))["status"],
        "appended"
    );
    // The mark survives reopening.
    ledger.close().unwrap();
    let ledger = open(tmp.path());
    let mut e = email("d1", "cust-everywhere");
    e["tenant"] = json!("tD");
    let r = result_of(&ledger, &e).to_json();
    assert_eq!(r["reason_code"], "DATA_SUBJECT_ERASED", "{r}");
    ledger.close().unwrap();
}
