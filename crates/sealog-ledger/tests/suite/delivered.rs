//! Messages a bus delivered: nothing is refused silently, since no caller can be told. What is
//! not an event is a `NOT_AN_EVENT` quarantine record keeping only the payload's hash, size
//! and where the bus had it; an event on another tenant's subject is `TENANT_MISMATCH`; a
//! correction whose target has not arrived waits while the bus may deliver it again; and a
//! delivered event is the same record as its HTTP twin.

use crate::support;

use sealog_ledger::{Delivery, IngestResult, Ledger, Prepared, Tenancy};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{decision, ingest, one, open, quarantine, rid};

fn delivery(seq: u64, tenancy: Tenancy<'_>) -> Delivery<'_> {
    Delivery {
        transport: "nats",
        stream: "AUDIT",
        subject: "audit.run_1.decisions",
        stream_seq: seq,
        published: "2026-06-01T10:00:00.123456789Z",
        tenancy,
        may_wait: false,
    }
}

fn deliver(ledger: &Ledger, raw: &[u8], d: &Delivery<'_>) -> IngestResult {
    let prepared = ledger.prepare_delivered(raw, d);
    ledger.commit(vec![prepared]).unwrap().pop().unwrap()
}

fn quarantined(r: &IngestResult) -> (&'static str, Value) {
    match r {
        IngestResult::Quarantined { finding, .. } => (
            finding.reason_code,
            finding.delivery.clone().unwrap_or(Value::Null),
        ),
        other => panic!("expected quarantined, got {}", other.to_json()),
    }
}

#[test]
fn what_is_not_an_event_is_recorded_by_its_hash_and_size_never_its_payload() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let secret = "card 4111-1111-1111-1111";
    let reserved = json!({"specversion": "1.0", "id": "x", "source": "s", "type": "audit.access",
                          "time": "2026-01-01T00:00:00Z", "data": {"note": secret}});
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (format!("not json {secret}").into_bytes(), "INVALID_JSON"),
        ([secret.as_bytes(), b"\xff\xfe"].concat(), "INVALID_UTF8"),
        (
            format!(r#"{{"id": "e", "data": {{"n": "{secret}"}}}}"#).into_bytes(),
            "INVALID_ENVELOPE",
        ),
        (serde_json::to_vec(&reserved).unwrap(), "RESERVED_TYPE"),
        (
            format!(r#"{{"pad": "{}", "s": "{secret}"}}"#, "x".repeat(1 << 20)).into_bytes(),
            "TOO_LARGE",
        ),
    ];
    for (i, (raw, code)) in cases.iter().enumerate() {
        let d = delivery(100 + i as u64, Tenancy::Any);
        let r = deliver(&ledger, raw, &d);
        let (reason, evidence) = quarantined(&r);
        assert_eq!(reason, "NOT_AN_EVENT", "case {code}");
        assert_eq!(
            evidence["payload_sha256"],
            format!("sha256:{}", hex::encode(Sha256::digest(raw))),
            "case {code}"
        );
        assert_eq!(evidence["payload_bytes"], raw.len(), "case {code}");
        assert_eq!(evidence["stream_seq"], 100 + i as u64);
        assert_eq!(evidence["subject"], "audit.run_1.decisions");
        let IngestResult::Quarantined { finding, .. } = &r else {
            unreachable!()
        };
        let message = finding.message.as_deref().unwrap_or("");
        assert!(
            !message.contains("4111"),
            "case {code}: the message quotes the payload: {message}"
        );
        // Delivered again (the bus had no ack): the same record, not a second one.
        let before = ledger.quarantine_len();
        let again = deliver(&ledger, raw, &d);
        assert_eq!(ledger.quarantine_len(), before, "case {code}");
        assert_eq!(again, r, "case {code}");
    }
    let records = quarantine(&ledger, &[("reason", "NOT_AN_EVENT")]);
    assert_eq!(records.len(), cases.len());
    for r in &records {
        assert_eq!(r["data"]["payload_ref"], Value::Null);
        assert!(r["id"].as_str().unwrap().starts_with("nats:AUDIT:"));
        assert_eq!(r["time"], "2026-06-01T10:00:00.123456789Z");
    }
    // The card number itself: bare digits may turn up by chance in a hash or a timestamp.
    assert!(!records.iter().any(|r| r.to_string().contains("4111-1111")));
    ledger.close().unwrap();
    let holding = sealog_testkit::files::files_holding(dir.path(), "4111-1111");
    assert!(holding.is_empty(), "these hold the payload: {holding:?}");
}

#[test]
fn an_event_on_another_tenants_subject_is_a_tenant_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let event = decision("d1", "run_1");
    let raw = serde_json::to_vec(&event).unwrap();
    let (reason, evidence) = quarantined(&deliver(
        &ledger,
        &raw,
        &delivery(1, Tenancy::Only("run_2")),
    ));
    assert_eq!(reason, "TENANT_MISMATCH");
    assert_eq!(evidence["payload_bytes"], raw.len());
    let (reason, _) = quarantined(&deliver(&ledger, &raw, &delivery(2, Tenancy::Unnamed)));
    assert_eq!(reason, "TENANT_MISMATCH");
    let records = quarantine(&ledger, &[("reason", "TENANT_MISMATCH")]);
    assert_eq!(records.len(), 2);
    // Kept where the bus had it: the subject's tenant, the event's own id and type.
    assert_eq!(records[0]["tenant"], "run_2");
    assert_eq!(records[0]["id"], "d1");
    assert_eq!(records[0]["data"]["event_type"], event["type"]);
    assert_eq!(records[0]["data"]["payload_ref"], Value::Null);
    assert!(records[1].get("tenant").is_none());
    assert_eq!(ledger.len(), 0);
    // On its own tenant's subject it is appended.
    let r = deliver(&ledger, &raw, &delivery(3, Tenancy::Only("run_1")));
    assert!(
        matches!(r, IngestResult::Appended { .. }),
        "{}",
        r.to_json()
    );
}

#[test]
fn a_delivered_event_and_its_http_twin_are_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let event = decision("d1", "run_1");
    let first = deliver(
        &ledger,
        &serde_json::to_vec(&event).unwrap(),
        &delivery(1, Tenancy::Any),
    );
    let IngestResult::Appended { seq, record_id } = first else {
        panic!("{}", first.to_json())
    };
    let twin = one(&ledger, &event);
    assert_eq!(twin["status"], "duplicate");
    assert_eq!(twin["seq"], seq);
    assert_eq!(rid(&twin), record_id.to_string());
    // A pack's quarantine is the same as over HTTP, with the payload kept as evidence.
    let mut incomplete = decision("d2", "run_1");
    incomplete["data"]
        .as_object_mut()
        .unwrap()
        .remove("features");
    let r = deliver(
        &ledger,
        &serde_json::to_vec(&incomplete).unwrap(),
        &delivery(2, Tenancy::Any),
    );
    let IngestResult::Quarantined { finding, .. } = &r else {
        panic!("{}", r.to_json())
    };
    assert_eq!(finding.reason_code, "INCOMPLETE_PROVENANCE");
    assert!(finding.delivery.is_none());
    assert_eq!(
        one(&ledger, &incomplete)["quarantine_id"],
        r.to_json()["quarantine_id"]
    );
}

#[test]
fn a_correction_before_its_target_waits_while_the_bus_may_deliver_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let target = decision("d1", "run_1");
    // The target's id, learnt from a ledger of its own.
    let scratch = tempfile::tempdir().unwrap();
    let target_id = rid(&one(&open(scratch.path()), &target));
    let mut correction = decision("d1", "run_1");
    correction["data"]["decision"]["decision_outcome"] = json!("DECLINE");
    correction["supersedes"] = json!(target_id);
    correction["reason"] = json!("re-scored");
    let raw = serde_json::to_vec(&correction).unwrap();

    let waiting = Delivery {
        may_wait: true,
        ..delivery(2, Tenancy::Any)
    };
    let prepared = ledger.prepare_delivered(&raw, &waiting);
    assert!(matches!(prepared, Prepared::Event(_)));
    let r = ledger.commit(vec![prepared]).unwrap().pop().unwrap();
    let IngestResult::Deferred { reason_code, .. } = &r else {
        panic!("{}", r.to_json())
    };
    assert_eq!(*reason_code, "INVALID_SUPERSEDES_LINK");
    assert_eq!(r.to_json()["status"], "deferred");
    assert_eq!(
        (ledger.len(), ledger.quarantine_len()),
        (0, 0),
        "nothing recorded"
    );

    // The target arrives; the correction's next delivery is appended after it.
    assert_eq!(ingest(&ledger, &[target])[0].status(), "appended");
    let r = deliver(&ledger, &raw, &waiting);
    assert_eq!(r.status(), "appended", "{}", r.to_json());

    // Out of deliveries, a correction whose target never came is quarantined.
    let mut orphan = correction.clone();
    orphan["supersedes"] = json!(format!("sha256:{}", "ab".repeat(32)));
    let r = deliver(
        &ledger,
        &serde_json::to_vec(&orphan).unwrap(),
        &delivery(3, Tenancy::Any),
    );
    let (reason, evidence) = quarantined(&r);
    assert_eq!(reason, "INVALID_SUPERSEDES_LINK");
    assert_eq!(evidence, Value::Null);
}

#[test]
fn whatever_the_bus_says_its_records_are_valid_events() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let long = "t".repeat(5000);
    let subject = format!("audit.{long}.x");
    let event = serde_json::to_vec(&decision("d1", "run_1")).unwrap();
    for (raw, tenancy, published) in [
        (&b"not json"[..], Tenancy::Any, "not a time"),
        (&event[..], Tenancy::Only(&long), "2026-06-01T10:00:00Z"),
        (&b"{}"[..], Tenancy::Only(&long), ""),
    ] {
        let d = Delivery {
            subject: &subject,
            published,
            tenancy,
            ..delivery(7, Tenancy::Any)
        };
        let r = deliver(&ledger, raw, &d);
        let (_, evidence) = quarantined(&r);
        assert_eq!(evidence["subject"], subject.as_str());
    }
    assert_eq!(ledger.quarantine_len(), 3);
}
