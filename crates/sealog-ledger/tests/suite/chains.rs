//! The supersedes rules and the current view, through the ledger. The events are of an
//! undeclared type accepted on their envelope alone, so a chain is (tenant, scope = tenant,
//! subject) and nothing but the rules decides what is appended. A refused correction is
//! quarantined with the rule's reason.

use crate::support;

use std::path::Path;
use std::sync::Arc;

use sealog_ledger::{ChainRefusal, IngestResult, Ledger, Query, Undeclared, View};
use sealog_model::RecordId;
use serde_json::{Value, json};
use support::{ingest, race, seqs};

fn ev(id: &str, tenant: &str, subject: &str, supersedes: Option<RecordId>) -> Value {
    ev_at(id, tenant, subject, supersedes, "2026-01-03T12:00:00Z")
}

fn ev_at(id: &str, tenant: &str, subject: &str, supersedes: Option<RecordId>, time: &str) -> Value {
    let mut v = json!({"id": id, "source": "tests", "type": "test.chain", "time": time,
                       "tenant": tenant, "subject": subject, "data": {"v": id}});
    if let Some(t) = supersedes {
        v["supersedes"] = json!(t.to_string());
    }
    v
}

/// Index runs every few records, so the rules read the log through runs and memtable alike.
fn open(dir: &Path) -> Ledger {
    support::open_small(dir, Undeclared::Accept)
}

fn appended(r: &IngestResult) -> (u64, RecordId) {
    match r {
        IngestResult::Appended { seq, record_id } => (*seq, *record_id),
        other => panic!("expected appended, got {}", other.to_json()),
    }
}

/// The reason code and message a refused correction was quarantined with.
fn refused(r: &IngestResult) -> (&'static str, String) {
    match r {
        IngestResult::Quarantined { finding, .. } => (
            finding.reason_code,
            finding.message.clone().expect("a refusal says why"),
        ),
        other => panic!("expected a refusal, got {}", other.to_json()),
    }
}

fn current(ledger: &Ledger, subject: &str, as_of: Option<u64>) -> Vec<u64> {
    let q = Query {
        equals: vec![("subject".into(), subject.into())],
        as_of_size: as_of,
        view: View::Current,
        limit: 100,
        ..Query::default()
    };
    seqs(ledger.query(&q).unwrap())
}

#[test]
fn corrections_must_name_the_head_of_their_own_chain() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let out = ingest(
        &ledger,
        &[
            ev("a", "t1", "s", None),
            ev("o", "t1", "other", None),
            ev("f", "t2", "s", None),
        ],
    );
    let [(_, a), (_, other), (_, foreign)] = [0, 1, 2].map(|i| appended(&out[i]));

    // Unknown target, another subject, another tenant, no subject at all: invalid. The first
    // three get one answer, so that a producer of one tenant cannot tell from it whether
    // another tenant holds a record id.
    let mut no_subject = ev("x4", "t1", "s", Some(a));
    no_subject.as_object_mut().unwrap().remove("subject");
    let not_in_chain = "not in this correction's chain";
    let mut answers = Vec::new();
    for (bad, what) in [
        (ev("x1", "t1", "s", Some(RecordId([7; 32]))), not_in_chain),
        (ev("x2", "t1", "s", Some(other)), not_in_chain),
        (ev("x3", "t1", "s", Some(foreign)), not_in_chain),
        (no_subject, "must have a subject"),
    ] {
        let (code, message) = refused(&ingest(&ledger, &[bad])[0]);
        assert_eq!(code, "INVALID_SUPERSEDES_LINK", "{what}");
        assert!(message.contains(what), "{what}: {message}");
        answers.push(message);
    }
    assert_eq!(
        answers[0], answers[2],
        "an absent target and another tenant's alike"
    );
    assert_eq!(ledger.len(), 3, "refusals append nothing");
    assert_eq!(ledger.quarantine_len(), 4, "each refusal is quarantined");

    // A valid correction, then a second correction of the same (now stale) target.
    let out = ingest(
        &ledger,
        &[ev("b", "t1", "s", Some(a)), ev("b2", "t1", "s", Some(a))],
    );
    let (seq_b, b) = appended(&out[0]);
    assert_eq!(seq_b, 3);
    assert_eq!(
        refused(&out[1]),
        (
            "STALE_SUPERSEDES_LINK",
            ChainRefusal::StaleLink { by: 3 }.message()
        )
    );
    assert_eq!(current(&ledger, "s", None), [2, 3], "t2's s and t1's head");

    // Correcting the head works; the view follows the chain and time travel sees the past.
    let (seq_c, _) = appended(&ingest(&ledger, &[ev("c", "t1", "s", Some(b))])[0]);
    assert_eq!(seq_c, 4);
    assert_eq!(current(&ledger, "s", None), [2, 4]);
    assert_eq!(current(&ledger, "s", Some(4)), [2, 3]);
    assert_eq!(current(&ledger, "s", Some(3)), [0, 2]);
    ledger.close().unwrap();

    let ledger = open(dir.path());
    assert_eq!(current(&ledger, "s", None), [2, 4], "after reopen");
    let again = ingest(&ledger, &[ev("b3", "t1", "s", Some(b))]);
    assert_eq!(
        refused(&again[0]),
        (
            "STALE_SUPERSEDES_LINK",
            ChainRefusal::StaleLink { by: 4 }.message()
        ),
        "the rules hold across reopen"
    );
    let (code, _) = refused(&ingest(&ledger, &[ev("x5", "t1", "s", Some(other))])[0]);
    assert_eq!(code, "INVALID_SUPERSEDES_LINK", "across reopen too");
    assert_eq!(ledger.len(), 5);
}

#[test]
fn racing_corrections_of_one_head_have_exactly_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(open(dir.path()));
    let (_, head) = appended(&ingest(&ledger, &[ev("h", "t", "race", None)])[0]);
    // Each thread also resends its correction: a duplicate, never a second winner.
    let threads = 8;
    let results = race(&ledger, threads, move |i| {
        let fix = ev(&format!("fix{i}"), "t", "race", Some(head));
        vec![fix.clone(), fix]
    });
    let winners: Vec<&Vec<IngestResult>> = results
        .iter()
        .filter(|r| matches!(r[0], IngestResult::Appended { .. }))
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let win_seq = winners[0][0].seq().unwrap();
    let stale = (
        "STALE_SUPERSEDES_LINK",
        ChainRefusal::StaleLink { by: win_seq }.message(),
    );
    for r in &results {
        match (&r[0], &r[1]) {
            (IngestResult::Appended { .. }, second) => {
                assert!(
                    matches!(second, IngestResult::Duplicate { seq, .. } if *seq == win_seq),
                    "{second:?}"
                );
            }
            (
                IngestResult::Quarantined {
                    quarantine_id: q0, ..
                },
                IngestResult::Quarantined {
                    quarantine_id: q1, ..
                },
            ) => {
                assert_eq!(refused(&r[0]), stale);
                assert_eq!(refused(&r[1]), stale);
                assert_eq!(q0, q1, "the same refusal of the same event is one record");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger.quarantine_len(), threads as u64 - 1);
    assert_eq!(current(&ledger, "race", None), [win_seq]);
}

#[test]
fn the_current_view_hides_superseded_records_with_and_without_time_windows() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let (_, a) = appended(
        &ingest(
            &ledger,
            &[ev_at("a", "t", "s", None, "2026-01-03T12:00:00Z")],
        )[0],
    );
    let out = ingest(
        &ledger,
        &[
            ev_at("b", "t", "s", Some(a), "2026-01-03T12:05:00Z"),
            ev_at("z", "t", "z", None, "2026-01-03T12:10:00Z"),
        ],
    );
    assert_eq!([appended(&out[0]).0, appended(&out[1]).0], [1, 2]);
    let t = |text: &str| sealog_model::time::parse_rfc3339(text).unwrap();
    let query = |view: View, from: &str, to: &str, as_of_size: Option<u64>| Query {
        event_from: Some(t(from)),
        event_to: Some(t(to)),
        as_of_size,
        view,
        limit: 10,
        ..Query::default()
    };
    let all = |q: Query| seqs(ledger.query(&q).unwrap());
    let whole_day = ("2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z");
    let unfiltered = Query {
        view: View::Current,
        limit: 10,
        ..Query::default()
    };
    assert_eq!(all(unfiltered.clone()), [1, 2]);
    assert_eq!(
        all(query(View::Current, whole_day.0, whole_day.1, None)),
        [1, 2]
    );
    assert_eq!(
        all(query(View::History, whole_day.0, whole_day.1, None)),
        [0, 1, 2]
    );
    // A window holding only the superseded original shows nothing of its chain...
    let (a_from, a_to) = ("2026-01-03T12:00:00Z", "2026-01-03T12:01:00Z");
    assert_eq!(
        all(query(View::Current, a_from, a_to, None)),
        Vec::<u64>::new()
    );
    assert_eq!(all(query(View::History, a_from, a_to, None)), [0]);
    // ...unless the log is read as it was before the correction.
    assert_eq!(all(query(View::Current, a_from, a_to, Some(1))), [0]);
    assert_eq!(
        all(query(View::Current, a_from, "2026-01-03T12:06:00Z", None)),
        [1]
    );

    // Paged one record at a time, the current view still skips what is superseded.
    let first = ledger
        .query(&Query {
            limit: 1,
            ..unfiltered.clone()
        })
        .unwrap();
    assert_eq!(seqs(first.clone()), [1]);
    assert_eq!(first.next_after, Some(1));
    let rest = ledger
        .query(&Query {
            limit: 1,
            after: first.next_after,
            ..unfiltered
        })
        .unwrap();
    assert_eq!((seqs(rest.clone()), rest.next_after), (vec![2], None));
}

/// A knowledge chunk and an order that share an id in one tenant are two resources: each
/// has its own chain and state, and a record of one kind cannot supersede the other.
#[test]
fn resources_of_different_kinds_that_share_an_id_are_kept_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open(tmp.path());
    let chunk = |id: &str, authority: &str| {
        json!({"specversion": "1.0", "id": id, "source": "kb", "type": "knowledge.chunk_created",
            "time": "2026-03-01T08:00:00Z", "tenant": "T", "actor": {"type": "human", "id": "ed"},
            "data": {"principal": {"type": "human", "id": "ed", "clearance": 3},
                "operation": "CREATE", "resourceType": "CHUNK", "resourceId": "X",
                "chunkType": "policy", "after": "sha256:aa", "authority": authority}})
    };
    let order = |id: &str, status: &str| {
        json!({"specversion": "1.0", "id": id, "source": "shop", "type": "comms.order",
            "time": "2026-04-10T07:25:00Z", "tenant": "T",
            "actor": {"type": "system", "id": "webshop"},
            "data": {"order_id": "X", "customer_id": "cust-1", "event_type": "placed",
                "triggered_by": "customer", "new_status": status, "order_source": "website"}})
    };
    let results = ingest(&ledger, &[chunk("k1", "draft"), order("o1", "placed")]);
    let (k1, chunk_id) = appended(&results[0]);
    let (o1, order_id) = appended(&results[1]);
    assert_eq!(
        current(&ledger, "X", None),
        [k1, o1],
        "one head of each kind"
    );

    // An order that names the chunk as what it corrects is not in the chunk's chain.
    let mut wrong = order("o2", "shipped");
    wrong["supersedes"] = json!(chunk_id.to_string());
    let (reason, _) = refused(&ingest(&ledger, &[wrong])[0]);
    assert_eq!(reason, "INVALID_SUPERSEDES_LINK");
    assert_eq!(
        current(&ledger, "X", None),
        [k1, o1],
        "the chunk stays current"
    );
    // Its own kind's correction is.
    let mut right = order("o3", "shipped");
    right["supersedes"] = json!(order_id.to_string());
    let (o3, _) = appended(&ingest(&ledger, &[right])[0]);
    assert_eq!(current(&ledger, "X", None), [k1, o3]);

    // The state of an id two kinds share must say which one it is.
    let state = |of_type: Option<&str>| {
        ledger.state(&sealog_ledger::StateQuery {
            subject: "X".into(),
            of_type: of_type.map(str::to_string),
            filters: vec![("tenant".into(), "T".into())],
            ..sealog_ledger::StateQuery::default()
        })
    };
    match state(None) {
        Err(sealog_ledger::StateError::AmbiguousKind(types)) => {
            assert_eq!(types, ["comms.order", "knowledge.chunk_created"]);
        }
        other => panic!("expected AmbiguousKind, got {other:?}"),
    }
    // Any type of the kind names it: the chunk's state holds nothing of the order's.
    let chunk_state = state(Some("knowledge.chunk_modified")).unwrap();
    assert_eq!(chunk_state["state"]["authority"], "draft", "{chunk_state}");
    assert!(
        chunk_state["state"].get("customer_id").is_none(),
        "{chunk_state}"
    );
    let order_state = state(Some("comms.order")).unwrap();
    assert!(
        order_state["state"].get("authority").is_none(),
        "{order_state}"
    );
}
