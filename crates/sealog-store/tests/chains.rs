//! The supersedes rules the writer enforces and the current view, through the public API,
//! with envelope-only derivation (chain = tenant, scope = tenant, subject).

use std::path::Path;
use std::sync::{Arc, Barrier};

use sealog_model::{PreparedEvent, RecordId};
use sealog_store::{ChainRefusal, Config, Durability, Outcome, Query, Store};
use serde_json::json;

fn ev(id: &str, tenant: &str, subject: &str, supersedes: Option<RecordId>) -> PreparedEvent {
    let mut v = json!({"id": id, "source": "tests", "type": "test.chain", "time": "2026-01-03T12:00:00Z",
                       "tenant": tenant, "subject": subject, "data": {"v": id}});
    if let Some(t) = supersedes {
        v["supersedes"] = json!(t.to_string());
    }
    PreparedEvent::from_value(&v).unwrap()
}

fn open(dir: &Path) -> Store {
    Store::open(
        dir,
        Config {
            durability: Durability::Os,
            memtable_records_max: 4,
            ..Config::default()
        },
    )
    .unwrap()
}

fn current(store: &Store, subject: &str, as_of: Option<u64>) -> Vec<u64> {
    let q = Query {
        equals: vec![("subject".into(), subject.into())],
        as_of_size: as_of,
        current_only: true,
        limit: 100,
        ..Query::default()
    };
    seqs(store, &q)
}

fn seqs(store: &Store, q: &Query) -> Vec<u64> {
    store
        .query(q)
        .unwrap()
        .records
        .iter()
        .map(|r| r.0)
        .collect()
}

fn refusal(o: &Outcome) -> ChainRefusal {
    match o {
        Outcome::Refused { refusal, .. } => *refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn corrections_must_name_the_head_of_their_own_chain() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = ev("a", "t1", "s", None);
    let other = ev("o", "t1", "other", None);
    let foreign = ev("f", "t2", "s", None);
    let out = store
        .append(vec![a.clone(), other.clone(), foreign.clone()])
        .unwrap();
    assert!(out.iter().all(|o| matches!(o, Outcome::Appended { .. })));

    // Unknown target, another subject, another tenant: invalid.
    let ghost = RecordId([7; 32]);
    for (bad, what) in [
        (ev("x1", "t1", "s", Some(ghost)), "missing target"),
        (ev("x2", "t1", "s", Some(other.record_id)), "other subject"),
        (ev("x3", "t1", "s", Some(foreign.record_id)), "other tenant"),
    ] {
        let out = store.append(vec![bad]).unwrap();
        assert!(
            matches!(refusal(&out[0]), ChainRefusal::InvalidLink { .. }),
            "{what}: {out:?}"
        );
        assert_eq!(refusal(&out[0]).code(), "INVALID_SUPERSEDES_LINK");
    }
    assert_eq!(store.len(), 3, "refusals append nothing");

    // A valid correction, then a second correction of the same (now stale) target.
    let b = ev("b", "t1", "s", Some(a.record_id));
    let stale = ev("b2", "t1", "s", Some(a.record_id));
    let out = store.append(vec![b.clone(), stale]).unwrap();
    assert_eq!(
        out[0],
        Outcome::Appended {
            seq: 3,
            record_id: b.record_id
        }
    );
    assert_eq!(refusal(&out[1]), ChainRefusal::StaleLink { by: 3 });
    assert_eq!(
        current(&store, "s", None),
        vec![2, 3],
        "t2's s and t1's head"
    );

    // Correcting the head works; the view follows the chain and time travel sees the past.
    let c = ev("c", "t1", "s", Some(b.record_id));
    assert!(matches!(
        store.append(vec![c]).unwrap()[0],
        Outcome::Appended { seq: 4, .. }
    ));
    assert_eq!(current(&store, "s", None), vec![2, 4]);
    assert_eq!(current(&store, "s", Some(4)), vec![2, 3]);
    assert_eq!(current(&store, "s", Some(3)), vec![0, 2]);
    drop(store);
    let store = open(dir.path());
    assert_eq!(current(&store, "s", None), vec![2, 4], "after reopen");
    let again = store
        .append(vec![ev("b3", "t1", "s", Some(b.record_id))])
        .unwrap();
    assert_eq!(
        refusal(&again[0]),
        ChainRefusal::StaleLink { by: 4 },
        "rules hold across reopen"
    );
}

#[test]
fn racing_corrections_of_one_head_have_exactly_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let head = ev("h", "t", "race", None);
    store.append(vec![head.clone()]).unwrap();
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                let fix = ev(&format!("fix{i}"), "t", "race", Some(head.record_id));
                barrier.wait();
                // Each thread also resends its correction: a duplicate, never a second winner.
                store.append(vec![fix.clone(), fix]).unwrap()
            })
        })
        .collect();
    let results: Vec<Vec<Outcome>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners: Vec<&Vec<Outcome>> = results
        .iter()
        .filter(|r| matches!(r[0], Outcome::Appended { .. }))
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let win_seq = winners[0][0].seq().unwrap();
    for r in &results {
        match r[0] {
            Outcome::Appended { .. } => {
                assert!(matches!(r[1], Outcome::Duplicate { seq, .. } if seq == win_seq))
            }
            _ => {
                assert_eq!(refusal(&r[0]), ChainRefusal::StaleLink { by: win_seq });
                assert_eq!(refusal(&r[1]), ChainRefusal::StaleLink { by: win_seq });
            }
        }
    }
    assert_eq!(store.len(), 2);
    assert_eq!(current(&store, "race", None), vec![win_seq]);
}

#[test]
fn current_view_without_filters_and_by_time_hides_superseded_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = ev("a", "t", "s", None);
    let b = ev("b", "t", "s", Some(a.record_id));
    let z = ev("z", "t", "z", None);
    store.append(vec![a, b, z]).unwrap();
    let all = |q: Query| seqs(&store, &q);
    let base = Query {
        limit: 10,
        current_only: true,
        ..Query::default()
    };
    assert_eq!(all(base.clone()), vec![1, 2]);
    let windowed = Query {
        event_from: Some(0),
        event_to: Some(i64::MAX),
        ..base.clone()
    };
    assert_eq!(all(windowed), vec![1, 2]);
    let history = Query {
        current_only: false,
        ..base
    };
    assert_eq!(all(history), vec![0, 1, 2]);
}

/// Derives one axis from `data.v`, under a given axis name.
struct AxisFromV(&'static str);

impl sealog_model::Deriver for AxisFromV {
    fn derive(
        &self,
        event: &sealog_model::json::Json<'_>,
        _: &sealog_model::Envelope<'_>,
    ) -> sealog_model::Derived {
        let v = event
            .get("data")
            .and_then(|d| d.get("v"))
            .and_then(|v| v.as_str());
        sealog_model::Derived {
            axes: v
                .map(|v| (self.0.to_string(), v.to_string()))
                .into_iter()
                .collect(),
            ..Default::default()
        }
    }

    fn fingerprint(&self) -> String {
        format!("axis-from-v:{}", self.0)
    }
}

#[test]
fn reopening_with_another_derivation_rebuilds_the_index_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let with = |axis: &'static str| {
        Store::open(
            dir.path(),
            Config {
                durability: Durability::Os,
                memtable_records_max: 4,
                deriver: Arc::new(AxisFromV(axis)),
                ..Config::default()
            },
        )
        .unwrap()
    };
    let hits = |store: &Store, axis: &str, v: &str| -> usize {
        let q = Query {
            equals: vec![(axis.into(), v.into())],
            limit: 100,
            ..Query::default()
        };
        store.query(&q).unwrap().records.len()
    };
    let store = with("old");
    let events: Vec<PreparedEvent> = (0..10)
        .map(|i| {
            let v = json!({"id": format!("e{i}"), "source": "s", "type": "t", "time": "2026-01-03T12:00:00Z",
                           "data": {"v": "x"}});
            PreparedEvent::from_json_with(&sealog_model::json::Json::from_value(&v), &AxisFromV("old"))
                .unwrap()
        })
        .collect();
    store.append(events).unwrap();
    assert_eq!(hits(&store, "old", "x"), 10);
    drop(store);
    let store = with("new");
    assert_eq!(
        hits(&store, "new", "x"),
        10,
        "the new axis covers old records"
    );
    assert_eq!(
        hits(&store, "old", "x"),
        0,
        "postings of the old derivation are gone"
    );
}
