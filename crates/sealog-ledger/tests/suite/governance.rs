//! Erasure, retention and legal holds at the same moment: whatever order they reach the log
//! in, the outcome is one a serial order gives. A hold recorded before an erasure stops it; a
//! hold recorded before retention's record keeps what it covers; of two erasures of one data
//! subject, one erases and the other answers that it was done already. Servers sharing one
//! PostgreSQL log are held to the same.

use crate::support;

use sealog_ledger::{
    Act, EraseError, Erasure, Error, Hold, HoldAct, HoldScope, Ledger, Undeclared,
};
use serde_json::{Value, json};
use support::{appended_seq, example, open, result_of};

/// Enough races that an unguarded check-then-act loses some of them (it lost most).
const RACES: usize = 40;

fn act(time: &str) -> Act<'static> {
    Act {
        actor: json!({"type": "human", "id": "dpo-1"}),
        time: time.to_string(),
        source: "sealog-test",
    }
}

fn email(id: &str, customer: &str) -> Value {
    let mut e = example("comms.email", 0);
    e["id"] = json!(id);
    e["data"]["email_id"] = json!(format!("<{id}@shop>"));
    e["data"]["recipient_details"]["customer_id"] = json!(customer);
    e
}

fn erasure<'a>(subject: &'a str, time: &str) -> Erasure<'a> {
    Erasure {
        data_subject: subject,
        tenant: None,
        reason: "GDPR Art. 17 request",
        act: act(time),
    }
}

fn hold(ledger: &Ledger, subject: &str) -> Hold {
    ledger
        .place_hold(
            &HoldScope {
                tenant: None,
                data_subject: Some(subject),
            },
            &HoldAct {
                reason: "litigation 2026-7",
                act: act("2026-05-01T12:00:00Z"),
            },
        )
        .expect("the hold is placed")
}

/// Runs `a` and `b` on two threads released together.
fn together<A: Send, B: Send>(
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    let start = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        let a = s.spawn(|| {
            start.wait();
            a()
        });
        let b = s.spawn(|| {
            start.wait();
            b()
        });
        (a.join().expect("a"), b.join().expect("b"))
    })
}

/// Either the erasure came first (the hold is recorded after its record) or the hold stopped
/// it, naming itself.
fn hold_and_erasure_in_one_order(
    subject: &str,
    held: &Hold,
    erased: Result<sealog_ledger::Erased, EraseError>,
) {
    match erased {
        Ok(e) => assert!(
            held.placed_seq > e.seq,
            "{subject}: erased (record {}) under a hold recorded before it ({})",
            e.seq,
            held.placed_seq
        ),
        Err(EraseError::Held(h)) => assert_eq!(h.hold_id, held.hold_id, "{subject}"),
        Err(other) => panic!("{subject}: {other}"),
    }
}

#[test]
fn a_hold_placed_while_an_erasure_runs_stops_it_or_comes_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open(tmp.path());
    for i in 0..RACES {
        let subject = format!("cust-{i}");
        appended_seq(&result_of(&ledger, &email(&format!("m-{i}"), &subject)));
        let (held, erased) = together(
            || hold(&ledger, &subject),
            || ledger.erase(&erasure(&subject, "2026-05-01T12:00:00Z")),
        );
        hold_and_erasure_in_one_order(&subject, &held, erased);
    }
}

/// A quarantined event of the subject sealed before the erasure and appended while it runs
/// or after it: its payload is not kept (deleted with the others, or never written), so
/// none sealed for the erased subject is left in the payload area.
#[test]
fn a_payload_sealed_before_an_erasure_and_appended_as_it_runs_is_not_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open(tmp.path());
    for i in 0..RACES {
        let subject = format!("cust-{i}");
        appended_seq(&result_of(&ledger, &email(&format!("m-{i}"), &subject)));
        let mut incomplete = email(&format!("q-{i}"), &subject);
        incomplete["data"]
            .as_object_mut()
            .unwrap()
            .remove("event_type");
        let prepared = ledger.prepare_value(&incomplete, &sealog_ledger::Author::ANYONE);
        let (committed, erased) = together(
            || ledger.commit(vec![prepared]),
            || ledger.erase(&erasure(&subject, "2026-05-01T12:00:00Z")),
        );
        erased.unwrap_or_else(|e| panic!("{subject}: {e}"));
        let result = committed.unwrap().pop().unwrap();
        assert_eq!(result.status(), "quarantined", "{subject}: {result:?}");
        let found = support::quarantine(&ledger, &[("id", &format!("q-{i}"))]);
        assert_eq!(found.len(), 1, "{subject}");
        if let Some(reference) = found[0]["data"]["payload_ref"].as_str() {
            assert!(
                ledger.quarantine_payload(reference).unwrap().is_none(),
                "{subject}: a payload sealed for them outlived their erasure"
            );
        }
    }
}

#[test]
fn of_two_erasures_of_one_subject_at_once_one_erases() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open(tmp.path());
    for i in 0..RACES {
        let subject = format!("cust-{i}");
        appended_seq(&result_of(&ledger, &email(&format!("m-{i}"), &subject)));
        let (first, second) = together(
            || ledger.erase(&erasure(&subject, "2026-05-01T12:00:00Z")),
            || ledger.erase(&erasure(&subject, "2026-05-01T12:00:01Z")),
        );
        let done = [&first, &second].iter().filter(|r| r.is_ok()).count();
        assert_eq!(done, 1, "{subject}: {first:?} and {second:?}");
        for r in [first, second] {
            assert!(
                matches!(r, Ok(_) | Err(EraseError::AlreadyErased(_))),
                "{subject}: {r:?}"
            );
        }
    }
}

#[test]
fn a_hold_placed_while_retention_applies_keeps_its_record_or_comes_after_the_pruning() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = crate::retention::open_brief(tmp.path());
    // Records kept a second, each ingested after the one before (ingest times are in
    // microseconds); once the last is a second old, each round applies retention a second and
    // a microsecond past its own record's ingest time, which has come: each round's record is
    // due at its own, later moment, so every round prunes anew.
    let seqs: Vec<(u64, i64)> = (0..RACES)
        .map(|round| {
            let subject = format!("cust-{round}");
            let e = crate::retention::email_of(
                "brief.email",
                &format!("m-{round}"),
                &subject,
                "shop-za",
            );
            let seq = appended_seq(&result_of(&ledger, &e));
            let t = ingested(&ledger, seq);
            sealog_testkit::wait_for(5, "the clock to pass the record's ingest time", || {
                (crate::retention::now() / 1000 > t / 1000).then_some(())
            });
            (seq, t)
        })
        .collect();
    let due_at = |t: i64| t + 1_000_000_000 + 1_000;
    let last = due_at(seqs[RACES - 1].1);
    sealog_testkit::wait_for(10, "the last record to come due", || {
        (crate::retention::now() >= last).then_some(())
    });
    for (round, &(seq, t)) in seqs.iter().enumerate() {
        let subject = format!("cust-{round}");
        let due = due_at(t);
        let (held, applied) = together(
            || hold(&ledger, &subject),
            || ledger.apply_retention(due, false, &act("2034-01-01T00:00:00Z")),
        );
        let applied = applied.expect("retention applies");
        let pruned = matches!(ledger.get(seq), Err(Error::Pruned(_)));
        match applied.seq {
            Some(record) if held.placed_seq < record => {
                assert!(!pruned, "{subject}: pruned under a hold recorded before");
            }
            // Its own moment: due, and held only after.
            _ => assert!(pruned, "{subject}: due, not held, yet kept: {applied:?}"),
        }
        // Released, so the next rounds prune what is theirs.
        let released = ledger.release_holds(
            Some(&held.hold_id),
            &HoldScope {
                tenant: None,
                data_subject: None,
            },
            &HoldAct {
                reason: "settled",
                act: act("2026-06-01T00:00:00Z"),
            },
        );
        assert!(released.is_ok(), "{subject}: {released:?}");
    }
}

fn ingested(ledger: &Ledger, seq: u64) -> i64 {
    let v: Value = serde_json::from_slice(&ledger.get(seq).unwrap().unwrap()).unwrap();
    sealog_model::time::parse_rfc3339(v["ingested_at"].as_str().unwrap()).unwrap()
}

/// Two servers on one PostgreSQL log, the second with the first's keys as an operator copies
/// them; `None` (said loudly) where PostgreSQL is not installed.
fn two_servers() -> Option<(
    sealog_testkit::pg::Cluster,
    tempfile::TempDir,
    Ledger,
    Ledger,
)> {
    let cluster = sealog_testkit::pg::Cluster::start()?;
    sealog_pg::migrate(&cluster.conninfo, sealog_pg::APP_ROLE).expect("migrated");
    let dirs = tempfile::tempdir().unwrap();
    let (a_state, b_state) = (dirs.path().join("a"), dirs.path().join("b"));
    let config = || support::config(sealog_packs::Packs::builtin(), Undeclared::Quarantine);
    let a = Ledger::open_database(&cluster.url(), &a_state, config()).expect("server a");
    sealog_testkit::files::copy_dir(&a_state, &b_state);
    let b = Ledger::open_database(&cluster.url(), &b_state, config()).expect("server b");
    Some((cluster, dirs, a, b))
}

#[test]
fn a_hold_placed_on_one_server_while_another_erases_stops_it_or_comes_after_it() {
    let Some((_cluster, _dirs, a, b)) = two_servers() else {
        return;
    };
    for i in 0..RACES / 2 {
        let subject = format!("cust-{i}");
        appended_seq(&result_of(&a, &email(&format!("m-{i}"), &subject)));
        let (held, erased) = together(
            || hold(&a, &subject),
            || b.erase(&erasure(&subject, "2026-05-01T12:00:00Z")),
        );
        hold_and_erasure_in_one_order(&subject, &held, erased);
    }
}
