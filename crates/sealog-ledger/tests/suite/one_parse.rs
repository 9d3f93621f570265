//! An event is parsed once: `Ledger::prepare` builds exactly one tree of it whatever becomes
//! of it (appended, quarantined by its pack, rejected), and `commit` builds none of the
//! events it is given again, not even of one the supersedes rules refuse. Counted with the
//! per-thread counter of trees `Json::parse` and `Json::from_value` build.
//!
//! And who may write what: producers never write Sealog's own types, a tenant-limited
//! producer is refused another tenant's event before anything else is looked at, and Sealog
//! writes its `audit.*` records through the `audit` pack like any other event.

use crate::support;

use std::collections::BTreeSet;

use sealog_ledger::{Author, IngestResult, Ledger, Prepared};
use sealog_model::json::trees_built_on_this_thread;
use serde_json::{Value, json};
use support::{decision, ingest, ingest_as, open, quarantine};

/// Runs `f`; returns what it returned and how many trees it built on this thread.
fn counting<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = trees_built_on_this_thread();
    let out = f();
    (out, trees_built_on_this_thread() - before)
}

/// What preparation made of an event: its kind and its reason or rejection code.
fn outcome(p: &Prepared) -> (&'static str, &'static str) {
    match p {
        Prepared::Event(_) => ("event", ""),
        Prepared::Quarantine { finding, .. } => ("quarantine", finding.reason_code),
        Prepared::Rejected(r) => ("rejected", r.code),
    }
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// A valid `audit.access` record, as the server writes one for a read.
fn access(request_id: &str) -> Value {
    json!({"specversion": "1.0", "id": format!("access:{request_id}"), "source": "sealog-server",
           "type": "audit.access", "time": "2026-05-01T10:00:00Z",
           "actor": {"type": "service", "id": "key-1"},
           "data": {"principal": {"key_id": "key-1", "roles": ["reader"]},
                    "action": "records.query", "resource": {"path": "/v1/records"},
                    "outcome": "allowed", "status": 200, "request_id": request_id}})
}

/// A second, different record for decision `d1`: the rules refuse it at commit
/// (MISSING_SUPERSEDES_LINK), after it passed every check of `prepare`.
fn unlinked_second_decision() -> Value {
    let mut e = decision("d1", "run_1");
    e["data"]["decision"]["decision_outcome"] = json!("DECLINE");
    e
}

fn incomplete_decision(d: &str) -> Value {
    let mut e = decision(d, "run_1");
    e["data"]["features"]
        .as_object_mut()
        .unwrap()
        .remove("feature_snapshot_hash");
    e
}

#[test]
fn prepare_builds_one_tree_for_each_valid_event_of_every_built_in_pack() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let mut prepared = Vec::new();
    let mut packs_seen = BTreeSet::new();
    let mut producer_events = sealog_testkit::events::examples();
    assert!(!producer_events.is_empty());
    for (event, author) in producer_events
        .drain(..)
        .map(|e| (e, Author::ANYONE))
        .chain([(access("req-1"), Author::Sealog)])
    {
        let raw = bytes(&event);
        let (p, trees) = counting(|| ledger.prepare(&raw, &author));
        assert_eq!(outcome(&p), ("event", ""), "{event}");
        assert_eq!(trees, 1, "prepare built {trees} trees of {event}");
        let kind = event["type"].as_str().unwrap();
        packs_seen.insert(ledger.packs().pack_of(kind).unwrap().to_string());
        prepared.push(p);
    }
    let all_packs: BTreeSet<String> = ledger
        .packs()
        .pack_names()
        .into_iter()
        .map(str::to_string)
        .collect();
    assert_eq!(packs_seen, all_packs, "an event of every built-in pack");
    assert_eq!(all_packs.len(), 6);

    // An event Sealog builds as a value is one tree too: borrowed, never re-parsed.
    let value = access("req-2");
    let (p, trees) = counting(|| ledger.prepare_value(&value, &Author::Sealog));
    assert_eq!((outcome(&p), trees), (("event", ""), 1));
    prepared.push(p);

    let n = prepared.len();
    let (results, trees) = counting(|| ledger.commit(prepared).unwrap());
    assert_eq!(trees, 0, "committing appended events builds no tree");
    assert!(
        results.iter().all(|r| r.status() == "appended"),
        "{:?}",
        results
            .iter()
            .map(IngestResult::to_json)
            .collect::<Vec<_>>()
    );
    assert_eq!(ledger.len(), n as u64);
}

/// What is sent, its bytes, who sends it, and what preparation must make of it.
type Case<'a> = (&'a str, Vec<u8>, Author<'a>, (&'a str, &'a str));

#[test]
fn prepare_builds_one_tree_for_a_quarantined_or_rejected_event_and_none_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let run_1_only = Author::Producer {
        tenant: Some("run_1"),
    };
    let mut unknown = decision("d2", "run_1");
    unknown["type"] = json!("decision-log.unheard_of");
    let mut forbidden = decision("d3", "run_1");
    forbidden["data"]["raw_event"] = json!("…");
    let mut bad_schema = decision("d4", "run_1");
    bad_schema["data"]["ieg"]["used"] = json!("yes");
    let mut no_time = decision("d5", "run_1");
    no_time.as_object_mut().unwrap().remove("time");
    let mut server_field = decision("d6", "run_1");
    server_field["seq"] = json!(0);
    let mut reserved = access("req-3");
    reserved["tenant"] = json!("run_1");
    let duplicate_member =
        br#"{"id":"a","id":"b","source":"s","type":"t","time":"2026-01-03T12:00:00Z","data":{}}"#;
    let cases: Vec<Case<'_>> = vec![
        (
            "incomplete decision record",
            bytes(&incomplete_decision("d1")),
            Author::ANYONE,
            ("quarantine", "INCOMPLETE_PROVENANCE"),
        ),
        (
            "schema violation",
            bytes(&bad_schema),
            Author::ANYONE,
            ("quarantine", "SCHEMA_VIOLATION"),
        ),
        (
            "undeclared type",
            bytes(&unknown),
            Author::ANYONE,
            ("quarantine", "UNKNOWN_EVENT_TYPE"),
        ),
        (
            "forbidden field",
            bytes(&forbidden),
            Author::ANYONE,
            ("quarantine", "FORBIDDEN_FIELD"),
        ),
        (
            "not JSON",
            b"{\"id\": oops".to_vec(),
            Author::ANYONE,
            ("rejected", "NOT_JSON"),
        ),
        (
            "a repeated member",
            duplicate_member.to_vec(),
            Author::ANYONE,
            ("rejected", "DUPLICATE_KEY"),
        ),
        (
            "no time",
            bytes(&no_time),
            Author::ANYONE,
            ("rejected", "INVALID_ENVELOPE"),
        ),
        (
            "a server field",
            bytes(&server_field),
            Author::ANYONE,
            ("rejected", "INVALID_ENVELOPE"),
        ),
        (
            "another tenant's event",
            bytes(&decision("d7", "run_2")),
            run_1_only,
            ("rejected", "FORBIDDEN_TENANT"),
        ),
        (
            "a reserved type from a producer",
            bytes(&reserved),
            run_1_only,
            ("rejected", "RESERVED_TYPE"),
        ),
        (
            "a producer's type from Sealog",
            bytes(&decision("d8", "run_1")),
            Author::Sealog,
            ("rejected", "NOT_RESERVED_TYPE"),
        ),
    ];
    for (what, raw, author, expected) in &cases {
        let (p, trees) = counting(|| ledger.prepare(raw, author));
        assert_eq!(outcome(&p), *expected, "{what}");
        assert_eq!(trees, 1, "{what}: prepare built {trees} trees");
    }
    // Bytes that are no event at all are refused before a tree is built.
    let too_large = vec![b' '; sealog_model::limits::EVENT_BYTES_MAX + 1];
    for (what, raw) in [
        ("not UTF-8", &b"{\"id\": \"\xff\"}"[..]),
        ("too large", &too_large[..]),
    ] {
        let (p, trees) = counting(|| ledger.prepare(raw, &Author::ANYONE));
        assert_eq!(outcome(&p).0, "rejected", "{what}");
        assert_eq!(trees, 0, "{what}");
    }
}

#[test]
fn committing_an_event_the_rules_refuse_builds_only_the_quarantine_record_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    assert_eq!(
        ingest(&ledger, &[decision("d1", "run_1")])[0].status(),
        "appended"
    );

    let refused = unlinked_second_decision();
    let (p, trees) = counting(|| ledger.prepare(&bytes(&refused), &Author::ANYONE));
    assert_eq!(
        (outcome(&p), trees),
        (("event", ""), 1),
        "it passes every check of prepare"
    );
    let (results, trees) = counting(|| ledger.commit(vec![p]).unwrap());
    match &results[..] {
        [IngestResult::Quarantined { finding, .. }] => {
            assert_eq!(finding.reason_code, "MISSING_SUPERSEDES_LINK")
        }
        other => panic!("expected one quarantined result, got {other:?}"),
    }
    // The one tree is the quarantine record: Sealog's own event about the refusal, built
    // once from a `Value` to pass the audit pack. The refused event is not built again.
    assert_eq!(trees, 1, "commit built {trees} trees");
    let q = quarantine(&ledger, &[("reason", "MISSING_SUPERSEDES_LINK")]);
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["type"], "sealog.quarantine");
    assert!(refused["actor"].is_object());
    assert_eq!(q[0]["actor"], refused["actor"], "the refused event's actor");
    assert_eq!(ledger.len(), 1);

    // A batch: a refused correction, an appended event, one its pack quarantined: one tree
    // per quarantine record written (two), none for the three events themselves.
    let mut other_refused = unlinked_second_decision();
    other_refused["data"]["decision"]["decision_outcome"] = json!("REVIEW");
    let batch = [
        other_refused,
        decision("d2", "run_1"),
        incomplete_decision("d3"),
    ];
    let prepared: Vec<Prepared> = batch
        .iter()
        .map(|e| ledger.prepare(&bytes(e), &Author::ANYONE))
        .collect();
    let (results, trees) = counting(|| ledger.commit(prepared).unwrap());
    let statuses: Vec<&str> = results.iter().map(IngestResult::status).collect();
    assert_eq!(statuses, ["quarantined", "appended", "quarantined"]);
    let written = results
        .iter()
        .filter(|r| r.status() == "quarantined")
        .count() as u64;
    assert_eq!(
        trees, written,
        "one tree per quarantine record, commit built {trees}"
    );
    assert_eq!(ledger.quarantine_len(), 3);
}

#[test]
fn producers_never_write_sealogs_own_types() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let mut events = Vec::new();
    for kind in [
        "audit.access",
        "audit.key_created",
        "audit.not_declared",
        "sealog.quarantine",
        "sealog.anything",
    ] {
        let mut e = access(&format!("req-{kind}"));
        e["type"] = json!(kind);
        e["tenant"] = json!("acme");
        events.push(e);
    }
    for author in [
        Author::ANYONE,
        Author::Producer {
            tenant: Some("acme"),
        },
    ] {
        let results = ingest_as(&ledger, &events, &author);
        assert_eq!(results.len(), events.len(), "one result per event");
        for (event, result) in events.iter().zip(results) {
            let IngestResult::Rejected(r) = result else {
                panic!("{author:?} wrote {}: {}", event["type"], result.to_json())
            };
            assert_eq!(r.code, "RESERVED_TYPE", "{author:?}: {}", event["type"]);
            assert!(r.denied, "refused for who sent it, not for its content");
            assert_eq!(r.field.as_deref(), Some("/type"));
        }
    }
    assert_eq!(
        (ledger.len(), ledger.quarantine_len()),
        (0, 0),
        "nothing stored"
    );
}

#[test]
fn a_tenant_limited_producer_is_refused_another_tenants_event_before_its_envelope_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let author = Author::Producer {
        tenant: Some("run_1"),
    };
    let mut bad_time = decision("d2", "run_2");
    bad_time["time"] = json!("yesterday");
    let mut no_tenant = decision("d3", "run_1");
    no_tenant.as_object_mut().unwrap().remove("tenant");
    let mut own_bad_time = bad_time.clone();
    own_bad_time["tenant"] = json!("run_1");
    let events = [
        decision("d1", "run_1"),
        decision("d1", "run_2"),
        bad_time.clone(),
        no_tenant,
        own_bad_time,
    ];
    let results = ingest_as(&ledger, &events, &author);
    assert_eq!(results[0].status(), "appended", "its own tenant's event");
    for (i, what) in [
        (1, "valid"),
        (2, "with an invalid envelope"),
        (3, "without a tenant"),
    ] {
        let IngestResult::Rejected(r) = &results[i] else {
            panic!("{what}: {}", results[i].to_json())
        };
        assert_eq!(
            (r.code, r.denied, r.field.as_deref()),
            ("FORBIDDEN_TENANT", true, Some("/tenant")),
            "another tenant's event, {what}"
        );
    }
    // The same invalid envelope in the producer's own tenant is refused for what it is.
    let IngestResult::Rejected(r) = &results[4] else {
        panic!("{}", results[4].to_json())
    };
    assert_eq!(
        (r.code, r.denied, r.field.as_deref()),
        ("INVALID_ENVELOPE", false, Some("/time"))
    );
    let IngestResult::Rejected(r) = &ingest(&ledger, &[bad_time])[0] else {
        panic!("an invalid envelope from any producer is rejected")
    };
    assert_eq!(r.code, "INVALID_ENVELOPE");
    assert_eq!((ledger.len(), ledger.quarantine_len()), (1, 0));
}

#[test]
fn sealog_writes_audit_records_that_the_audit_pack_validates() {
    let dir = tempfile::tempdir().unwrap();
    let ledger: Ledger = open(dir.path());
    let record = access("req-1");
    let results = ingest_as(&ledger, std::slice::from_ref(&record), &Author::Sealog);
    let IngestResult::Appended { seq, .. } = results[0] else {
        panic!("{}", results[0].to_json())
    };
    let stored: Value = serde_json::from_slice(&ledger.get(seq).unwrap().unwrap()).unwrap();
    assert_eq!(stored["type"], "audit.access");
    assert_eq!(stored["data"], record["data"]);
    let found = support::records(
        &ledger,
        &[
            ("access_action", "records.query"),
            ("access_outcome", "allowed"),
        ],
        sealog_ledger::View::History,
    );
    assert_eq!(found.len(), 1, "indexed on the audit pack's axes");

    let mut bad_outcome = access("req-2");
    bad_outcome["data"]["outcome"] = json!("maybe");
    let mut no_request = access("req-3");
    no_request["data"]
        .as_object_mut()
        .unwrap()
        .remove("request_id");
    let prepared = [&bad_outcome, &no_request]
        .map(|e| ledger.prepare_value(e, &Author::Sealog))
        .into_iter()
        .collect();
    let results = ledger.commit(prepared).unwrap();
    let reasons: Vec<&str> = results
        .iter()
        .map(|r| match r {
            IngestResult::Quarantined { finding, .. } => finding.reason_code,
            other => panic!(
                "an invalid audit record was not quarantined: {}",
                other.to_json()
            ),
        })
        .collect();
    assert_eq!(reasons, ["SCHEMA_VIOLATION", "INCOMPLETE_PROVENANCE"]);
    assert_eq!(ledger.len(), 1, "neither was appended");
    assert_eq!(ledger.quarantine_len(), 2);
}
