//! Time travel on both clocks: `as_of` (what the log knew: a tree size) and `valid_at` (what
//! had happened: the events' own times), alone and together, in the history and current
//! views and in a subject's rebuilt state. Back-filled and late events, late corrections and
//! equal timestamps (ties broken by seq), and a seeded model of random chains against which
//! every paged query must agree.

use crate::support;

use std::path::Path;

use sealog_ledger::{IngestResult, Ledger, Query, StateQuery, Undeclared, View};
use sealog_model::RecordId;
use sealog_model::time::parse_rfc3339;
use sealog_testkit::Rng;
use serde_json::{Value, json};
use support::{example, ingest, seqs};

fn t(text: &str) -> i64 {
    parse_rfc3339(text).unwrap()
}

fn day(d: u32) -> String {
    format!("2026-03-{d:02}T08:00:00Z")
}

/// Index runs every few records, so queries read runs and the memtable alike.
fn open(dir: &Path, undeclared: Undeclared) -> Ledger {
    support::open_small(dir, undeclared)
}

fn appended(r: &IngestResult) -> (u64, RecordId) {
    match r {
        IngestResult::Appended { seq, record_id } => (*seq, *record_id),
        other => panic!("expected appended, got {}", other.to_json()),
    }
}

/// The chunk-7 events of the examples (create 03-01, modify 03-02, authority 03-03, delete
/// 03-05), by their id.
fn chunk(id: &str) -> Value {
    let kind = match id {
        "ka-1" => "knowledge.chunk_created",
        "ka-2" => "knowledge.chunk_modified",
        "ka-3" => "knowledge.authority_changed",
        "ka-4" => "knowledge.chunk_deleted",
        other => panic!("no example {other}"),
    };
    let e = example(kind, 0);
    assert_eq!(e["id"], id, "the examples changed");
    e
}

fn state(ledger: &Ledger, as_of_size: Option<u64>, valid_at: Option<&str>) -> Value {
    ledger
        .state(&StateQuery {
            subject: "chunk-7".into(),
            as_of_size,
            valid_at: valid_at.map(t),
            ..StateQuery::default()
        })
        .unwrap()
}

fn history_ids(state: &Value) -> Vec<String> {
    state["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["record_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn back_filled_history_is_travelled_by_the_time_things_happened() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path(), Undeclared::Quarantine);
    // Logged out of order: the deletion first, then the history that led to it.
    let order = ["ka-4", "ka-2", "ka-1", "ka-3"];
    let results = ingest(&ledger, &order.map(chunk));
    let ids: Vec<RecordId> = results.iter().map(|r| appended(r).1).collect();
    let id_of = |name: &str| ids[order.iter().position(|o| *o == name).unwrap()].to_string();

    let now = state(&ledger, None, None);
    assert_eq!(now["status"], "deleted");
    assert_eq!(
        history_ids(&now),
        ["ka-1", "ka-2", "ka-3", "ka-4"].map(id_of),
        "folded in the order things happened, not the order they were logged"
    );
    assert_eq!(
        now["anomalies"],
        json!([]),
        "in event-time order the chunk's history is consistent: {now}"
    );
    let late: Vec<u64> = now["arrived_late"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        late,
        [1, 2, 3],
        "everything logged after the deletion was late"
    );
    assert_eq!(now["arrived_late"][0]["after"]["seq"], 0);

    for (when, status, version) in [
        ("2026-02-28T00:00:00Z", "absent", 0),
        ("2026-03-01T08:00:00Z", "active", 1),
        ("2026-03-02T12:00:00Z", "active", 2),
        ("2026-03-04T00:00:00Z", "active", 3),
        ("2026-03-05T08:00:00Z", "deleted", 4),
    ] {
        let s = state(&ledger, None, Some(when));
        assert_eq!(s["status"], status, "valid at {when}: {s}");
        assert_eq!(s["version"], version, "valid at {when}");
        assert_eq!(s["valid_at"], format!("{}.000000Z", &when[..19]));
    }
    let before_approval = state(&ledger, None, Some("2026-03-02T12:00:00Z"));
    assert_eq!(before_approval["state"]["authority"], "draft");
    assert_eq!(
        state(&ledger, None, Some("2026-03-04T00:00:00Z"))["state"]["authority"],
        "approved"
    );

    // Both clocks: what the log knew after two records (the deletion and the modification)
    // about the world on 03-04 — a modification of a chunk it had not yet heard created.
    let knew = state(&ledger, Some(2), Some("2026-03-04T00:00:00Z"));
    assert_eq!(knew["as_of_size"], 2);
    assert_eq!(history_ids(&knew), [id_of("ka-2")]);
    let knew_all = state(&ledger, Some(2), None);
    assert_eq!(knew_all["status"], "deleted");
    assert_eq!(history_ids(&knew_all), [id_of("ka-2"), id_of("ka-4")]);

    // Queries by event time: history keeps what had happened; as_of cuts what was logged.
    let q = |as_of_size, valid_at: &str| Query {
        equals: vec![("subject".into(), "chunk-7".into())],
        as_of_size,
        valid_at: Some(t(valid_at)),
        limit: 100,
        ..Query::default()
    };
    assert_eq!(seqs(ledger.query(&q(None, &day(2))).unwrap()), [1, 2]);
    assert_eq!(seqs(ledger.query(&q(Some(2), &day(2))).unwrap()), [1]);
    assert_eq!(seqs(ledger.query(&q(None, &day(5))).unwrap()), [0, 1, 2, 3]);
}

fn ev(id: &str, subject: &str, time: &str, supersedes: Option<RecordId>) -> Value {
    let mut v = json!({"id": id, "source": "tests", "type": "test.clock", "time": time,
                       "tenant": "t", "subject": subject, "data": {"v": id}});
    if let Some(s) = supersedes {
        v["supersedes"] = json!(s.to_string());
    }
    v
}

#[test]
fn a_late_correction_replaces_its_target_from_the_targets_own_time() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path(), Undeclared::Accept);
    let (a, a_id) = appended(&ingest(&ledger, &[ev("a", "s", &day(1), None)])[0]);
    let (b, _) = appended(&ingest(&ledger, &[ev("b", "other", &day(3), None)])[0]);
    // Written on the 10th, about what `a` should have said on the 1st.
    let (c, _) = appended(&ingest(&ledger, &[ev("c", "s", &day(10), Some(a_id))])[0]);
    let query = |view, as_of_size, valid_at: u32| {
        let valid_at = if valid_at == 0 {
            "2026-02-28T00:00:00Z".to_string()
        } else {
            day(valid_at)
        };
        seqs(
            ledger
                .query(&Query {
                    view,
                    as_of_size,
                    valid_at: Some(t(&valid_at)),
                    limit: 100,
                    ..Query::default()
                })
                .unwrap(),
        )
    };
    assert_eq!(query(View::History, None, 2), [a], "history: by own time");
    assert_eq!(query(View::History, None, 10), [a, b, c]);
    assert_eq!(
        query(View::Current, None, 2),
        [c],
        "current: the correction speaks for the 1st"
    );
    assert_eq!(query(View::Current, None, 3), [b, c]);
    assert_eq!(
        query(View::Current, Some(2), 2),
        [a],
        "before the correction was logged, the log knew the original"
    );
    assert!(
        query(View::Current, None, 0).is_empty(),
        "nothing had happened in February"
    );
    let s = ledger
        .state(&StateQuery {
            subject: "s".into(),
            valid_at: Some(t(&day(2))),
            ..StateQuery::default()
        })
        .unwrap();
    assert_eq!(s["history"].as_array().unwrap().len(), 1, "{s}");
    assert_eq!(s["history"][0]["seq"], c);
    assert_eq!(
        s["arrived_late"],
        json!([]),
        "a correction is not late: it is dated after what it corrects"
    );
}

#[test]
fn equal_timestamps_are_ordered_by_seq() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path(), Undeclared::Quarantine);
    let mut events = [chunk("ka-1"), chunk("ka-2"), chunk("ka-4")];
    for e in &mut events {
        e["time"] = json!(day(4));
    }
    let seqs_logged: Vec<u64> = ingest(&ledger, &events)
        .iter()
        .map(|r| appended(r).0)
        .collect();
    let s = state(&ledger, None, Some(&day(4)));
    let folded: Vec<u64> = s["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(folded, seqs_logged);
    assert_eq!(s["status"], "deleted");
    assert_eq!(s["arrived_late"], json!([]), "equal times are not late");
    assert_eq!(
        state(&ledger, None, Some("2026-03-04T07:59:59Z"))["status"],
        "absent"
    );
}

#[test]
fn a_correction_takes_its_targets_place_among_records_of_the_same_time() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path(), Undeclared::Quarantine);
    let [mut created, mut modified] = [chunk("ka-1"), chunk("ka-2")];
    created["time"] = json!(day(4));
    modified["time"] = json!(day(4));
    let results = ingest(&ledger, &[created.clone(), modified]);
    let (create_seq, create_id) = appended(&results[0]);
    let modify_seq = appended(&results[1]).0;
    let before = state(&ledger, None, None);
    // The creation corrected, at its own time: only its authority differs.
    let mut fixed = created;
    fixed["id"] = json!("ka-1-fixed");
    fixed["supersedes"] = json!(create_id.to_string());
    fixed["data"]["authority"] = json!("approved");
    let fix_seq = appended(&ingest(&ledger, &[fixed])[0]).0;
    assert!(create_seq < modify_seq && modify_seq < fix_seq);

    let after = state(&ledger, None, None);
    let folded: Vec<u64> = after["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        folded,
        [fix_seq, modify_seq],
        "the correction replaces the creation before the modification: {after}"
    );
    assert_eq!(after["anomalies"], json!([]), "{after}");
    assert_eq!(after["state"]["authority"], "approved", "{after}");
    assert_eq!(
        after["state"]["contentHash"], before["state"]["contentHash"],
        "the modification still applies after the corrected creation"
    );
}

#[test]
fn a_window_that_opens_after_valid_at_keeps_its_first_instant() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path(), Undeclared::Quarantine);
    let created = chunk("ka-1");
    let create_id = appended(&ingest(&ledger, std::slice::from_ref(&created))[0]).1;
    // A correction dated long after the creation it restates.
    let mut fixed = created;
    fixed["id"] = json!("ka-1-fixed");
    fixed["time"] = json!(day(10));
    fixed["supersedes"] = json!(create_id.to_string());
    fixed["data"]["authority"] = json!("approved");
    let fix_seq = appended(&ingest(&ledger, &[fixed])[0]).0;
    for (from, want) in [
        (day(9), vec![fix_seq]),
        (day(10), vec![fix_seq]),
        (day(11), vec![]),
    ] {
        let page = ledger
            .query(&Query {
                valid_at: Some(t(&day(2))),
                event_from: Some(t(&from)),
                view: View::Current,
                limit: 10,
                ..Query::default()
            })
            .unwrap();
        assert_eq!(
            seqs(page),
            want,
            "from {from}: the window is at or after it"
        );
    }
}

#[test]
fn a_tree_size_the_log_never_had_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path(), Undeclared::Quarantine);
    ingest(&ledger, &[chunk("ka-1"), chunk("ka-2")]);
    let len = ledger.len();
    for view in [View::History, View::Current] {
        let at = |size| {
            ledger.query(&Query {
                as_of_size: Some(size),
                view,
                limit: 10,
                ..Query::default()
            })
        };
        assert_eq!(
            at(len).unwrap().records.len(),
            2,
            "the whole log is a moment of it"
        );
        let err = at(len + 1).expect_err("a size past the end").to_string();
        assert!(err.contains("past the end of the log (2 records)"), "{err}");
    }
    let err = ledger
        .state(&StateQuery {
            subject: "chunk-7".into(),
            as_of_size: Some(len + 1),
            ..StateQuery::default()
        })
        .expect_err("a size past the end")
        .to_string();
    assert!(err.contains("past the end of the log"), "{err}");
}

/// One record of the model: what the log holds, as the test wrote it.
struct Rec {
    subject: usize,
    time: i64,
    /// The model seq of the record it corrects.
    corrects: Option<u64>,
}

#[test]
fn paged_queries_on_both_clocks_agree_with_a_model_of_random_chains() {
    let seed = std::env::var("SEALOG_CLOCKS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00c1_0c45);
    eprintln!("clocks seed {seed} (replay with SEALOG_CLOCKS_SEED={seed})");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path(), Undeclared::Accept);
    let base = t("2026-01-01T00:00:00Z");
    let hour = 3_600_000_000_000i64;
    let mut model: Vec<Rec> = Vec::new();
    let mut ids: Vec<RecordId> = Vec::new();
    for i in 0..120u64 {
        let subject = rng.below(6) as usize;
        // A head of this subject's chains, maybe, to correct.
        let heads: Vec<u64> = (0..model.len() as u64)
            .filter(|&s| {
                model[s as usize].subject == subject && !model.iter().any(|r| r.corrects == Some(s))
            })
            .collect();
        let corrects = (!heads.is_empty() && rng.below(3) == 0)
            .then(|| heads[rng.below(heads.len() as u64) as usize]);
        let time = base + rng.below(48) as i64 * hour;
        let time_text = sealog_model::time::format_micros(time);
        let e = ev(
            &format!("e{i}"),
            &format!("s{subject}"),
            &time_text,
            corrects.map(|c| ids[c as usize]),
        );
        let (seq, id) = appended(&ingest(&ledger, &[e])[0]);
        assert_eq!(seq, i);
        ids.push(id);
        model.push(Rec {
            subject,
            time,
            corrects,
        });
    }
    let start = |mut s: u64| {
        while let Some(c) = model[s as usize].corrects {
            s = c;
        }
        model[s as usize].time
    };
    let mut checked = 0;
    for _ in 0..150 {
        let size = rng.below(model.len() as u64 + 1);
        let valid_at = base + rng.below(50) as i64 * hour - hour;
        let subject = (rng.below(3) == 0).then(|| rng.below(6) as usize);
        // An event-time window's start, on each record's own time, on either side of
        // `valid_at`.
        let from = (rng.below(3) == 0).then(|| base + rng.below(50) as i64 * hour - hour);
        let view = if rng.below(2) == 0 {
            View::History
        } else {
            View::Current
        };
        let expected: Vec<u64> = (0..size)
            .filter(|&s| {
                let r = &model[s as usize];
                subject.is_none_or(|x| x == r.subject)
                    && from.is_none_or(|f| r.time >= f)
                    && match view {
                        View::History => r.time <= valid_at,
                        View::Current => {
                            !model[..size as usize].iter().any(|o| o.corrects == Some(s))
                                && start(s) <= valid_at
                        }
                    }
            })
            .collect();
        let mut q = Query {
            equals: subject
                .map(|x| vec![("subject".to_string(), format!("s{x}"))])
                .unwrap_or_default(),
            as_of_size: Some(size),
            valid_at: Some(valid_at),
            event_from: from,
            view,
            limit: 1 + rng.below(4) as usize,
            ..Query::default()
        };
        let mut got = Vec::new();
        loop {
            let page = ledger.query(&q).unwrap();
            assert!(page.records.len() <= q.limit);
            got.extend(page.records.iter().map(|r| r.0));
            match page.next_after {
                Some(a) => q.after = Some(a),
                None => break,
            }
        }
        assert_eq!(
            got, expected,
            "size {size}, valid_at {valid_at}, from {from:?}, subject {subject:?}, view {view:?}"
        );
        checked += expected.len();
    }
    assert!(
        checked > 100,
        "the model's queries found too little to prove anything"
    );
}
