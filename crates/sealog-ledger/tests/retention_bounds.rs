//! Retention's two bounds. An application measures at an instant that has come: a `now` past
//! the clock would prune records before their period ends, so it is refused and nothing
//! changes, while a status or a dry run may look ahead. And an application lists no more seq
//! ranges than its record holds within a record's 65,535 bytes: records due interleaved with
//! held ones make thousands of ranges, which several applications prune in turn, each record
//! within the limit, and the log verifies. A record of Sealog's own that its pack refuses is
//! reported as a refusal, never as a corrupted log.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;

use sealog_ledger::{
    Act, Author, Error, HoldAct, HoldScope, IngestResult, Ledger, Packs, Query,
    RETENTION_APPLIED_TYPE, Undeclared, VerifyOptions,
};
use sealog_model::limits::RECORD_BYTES_MAX;
use serde_json::{Value, json};

/// What the `brief` pack keeps its records, canonical and quarantined.
const BRIEF: i64 = 1_000_000_000;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn act() -> Act<'static> {
    Act {
        actor: json!({"type": "human", "id": "records-officer"}),
        time: "2026-12-01T00:00:00Z".into(),
        source: "sealog-test",
    }
}

/// The built-in packs and `brief`, whose one type, `brief.note` (`data.n` an integer), is kept
/// a second.
fn open(dir: &Path) -> Ledger {
    let packs_dir = tempfile::tempdir().unwrap();
    let manifest = json!({"pack": "brief", "retention": "PT1S",
        "types": {"brief.note": {"schema": "note.schema.json", "required": ["/data/n"]}}});
    std::fs::write(packs_dir.path().join("manifest.json"), manifest.to_string()).unwrap();
    let schema = json!({"$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object", "properties": {"n": {"type": "integer"}}});
    std::fs::write(
        packs_dir.path().join("note.schema.json"),
        schema.to_string(),
    )
    .unwrap();
    let packs = Packs::load(&[packs_dir.path()]).unwrap();
    Ledger::open(dir, support::config(packs, Undeclared::Quarantine)).unwrap()
}

fn note(i: usize, tenant: &str) -> Value {
    json!({"specversion": "1.0", "id": format!("n-{i}"), "source": "tests", "type": "brief.note",
           "time": "2026-03-01T00:00:00Z", "tenant": tenant, "data": {"n": i}})
}

fn ingest(ledger: &Ledger, events: &[Value]) -> Vec<IngestResult> {
    let raws: Vec<Vec<u8>> = events
        .iter()
        .map(|e| serde_json::to_vec(e).unwrap())
        .collect();
    let mut out = Vec::new();
    for chunk in raws.chunks(1000) {
        let items: Vec<_> = chunk.iter().map(|r| Ok(r.as_slice())).collect();
        out.extend(ledger.ingest(&items, &Author::ANYONE).unwrap());
    }
    out
}

fn ingested_at(record: &[u8]) -> i64 {
    let v: Value = serde_json::from_slice(record).unwrap();
    sealog_model::time::parse_rfc3339(v["ingested_at"].as_str().unwrap()).unwrap()
}

/// Waits until every record of both logs is past a retention of one second, and returns the
/// instant, which has come.
fn due_now(ledger: &Ledger) -> i64 {
    let mut newest = ingested_at(&ledger.get(ledger.len() - 1).unwrap().unwrap());
    if ledger.quarantine_len() > 0 {
        let mut q = Query {
            limit: sealog_ledger::LIMIT_MAX,
            ..Query::default()
        };
        loop {
            let page = ledger.quarantine_query(&q).unwrap();
            for (_, bytes) in &page.records {
                newest = newest.max(ingested_at(bytes));
            }
            match page.next_after {
                Some(a) => q.after = Some(a),
                None => break,
            }
        }
    }
    sealog_testkit::wait_for(10, "the records to be a second old", || {
        let t = now();
        (t > newest + BRIEF).then_some(t)
    })
}

fn is_pruned(ledger: &Ledger, seq: u64) -> bool {
    match ledger.get(seq) {
        Err(Error::Pruned(stub)) => stub.seq == seq,
        Ok(_) => false,
        Err(e) => panic!("record {seq}: {e}"),
    }
}

fn verify_full(dir: &Path) {
    Ledger::verify(
        dir,
        &VerifyOptions {
            full: true,
            ..VerifyOptions::default()
        },
    )
    .unwrap_or_else(|f| panic!("verify: {f}"));
}

fn retention_records(ledger: &Ledger) -> Vec<(u64, Vec<u8>)> {
    ledger
        .query(&Query {
            equals: vec![("type".into(), RETENTION_APPLIED_TYPE.into())],
            limit: 100,
            ..Query::default()
        })
        .unwrap()
        .records
}

/// A `now` to come: refused for an application, whether a minute or decades ahead, and
/// nothing changes; the status and a dry run at the same instant say what would be due then.
/// Within the clock's skew, or at an instant that has come, it applies.
#[test]
fn an_application_at_a_now_to_come_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open(tmp.path());
    let mut email = support::example("comms.email", 0);
    email["id"] = json!("m-kept");
    let results = ingest(&ledger, &[note(0, "t"), email]);
    let (fresh, kept) = (results[0].seq().unwrap(), results[1].seq().unwrap());
    let len = ledger.len();

    let future = sealog_model::time::parse_rfc3339("2099-01-01T00:00:00Z").unwrap();
    let status = ledger.retention_status(future).unwrap();
    assert_eq!(status.pruned, 2, "both are due by 2099: {status:?}");
    let dry = ledger.apply_retention(future, true, &act()).unwrap();
    assert_eq!((dry.pruned, dry.seq), (2, None), "{dry:?}");
    for ahead in [future, now() + 60 * BRIEF] {
        let e = ledger.apply_retention(ahead, false, &act()).unwrap_err();
        match &e {
            Error::InvalidArgument(m) => assert!(m.contains("later than this log's clock"), "{m}"),
            other => panic!("expected a refusal of the instant, got {other:?}"),
        }
    }
    assert_eq!(ledger.len(), len, "no retention record");
    assert!(!is_pruned(&ledger, fresh), "the note was a second from due");
    assert!(retention_records(&ledger).is_empty());

    // A few seconds ahead is the clock's skew: the note is due then, the email is not.
    let applied = ledger
        .apply_retention(now() + 3 * BRIEF, false, &act())
        .unwrap();
    assert_eq!(applied.pruned, 1, "{applied:?}");
    assert!(is_pruned(&ledger, fresh) && !is_pruned(&ledger, kept));
    let again = ledger
        .apply_retention(due_now(&ledger), false, &act())
        .unwrap();
    assert_eq!(again.pruned, 0, "{again:?}");
    drop(ledger);
    verify_full(tmp.path());
}

/// 16,000 records alternating two tenants, one of them held, and 4,000 quarantined ones
/// alike: thousands of ranges in each log. Each application prunes what its record can list
/// (a dry run says the same beforehand) and says `more` until nothing due is left; every
/// record is within the limit; the held tenant's records are all kept, the other's all
/// pruned, and the log verifies.
#[test]
fn due_records_interleaved_with_held_ones_are_pruned_over_several_applications() {
    const RECORDS: usize = 16_000;
    const QUARANTINED: usize = 4_000;
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open(tmp.path());
    let tenant = |i: usize| format!("t{}", i % 2);
    let mut events: Vec<Value> = (0..RECORDS).map(|i| note(i, &tenant(i))).collect();
    events.extend((0..QUARANTINED).map(|i| {
        let mut e = note(RECORDS + i, &tenant(i));
        e["data"]["n"] = json!("not a number");
        e
    }));
    let results = ingest(&ledger, &events);
    assert_eq!(
        results
            .iter()
            .filter(|r| r.status() == "quarantined")
            .count(),
        QUARANTINED
    );
    ledger
        .place_hold(
            &HoldScope {
                tenant: Some("t0"),
                ..HoldScope::default()
            },
            &HoldAct {
                reason: "litigation 2026-9",
                act: act(),
            },
        )
        .unwrap();
    let mut at = due_now(&ledger);
    let status = ledger.retention_status(at).unwrap();
    assert_eq!(
        (
            status.due.iter().map(|d| d.records).sum::<u64>(),
            status.held
        ),
        (
            (RECORDS + QUARANTINED) as u64 / 2,
            (RECORDS + QUARANTINED) as u64 / 2
        ),
        "{status:?}"
    );
    assert!(status.more, "more is due than one application lists");

    let (mut pruned, mut quarantine_pruned, mut applications) = (0, 0, 0);
    loop {
        let dry = ledger.apply_retention(at, true, &act()).unwrap();
        let applied = ledger.apply_retention(at, false, &act()).unwrap();
        applications += 1;
        assert_eq!(
            (dry.pruned, dry.quarantine_pruned, dry.more),
            (applied.pruned, applied.quarantine_pruned, applied.more),
            "a dry run says what the application does"
        );
        let record = ledger.get(applied.seq.unwrap()).unwrap().unwrap();
        assert!(
            record.len() <= RECORD_BYTES_MAX,
            "application {applications}: a record of {} bytes",
            record.len()
        );
        pruned += applied.pruned;
        quarantine_pruned += applied.quarantine_pruned;
        if !applied.more {
            break;
        }
        assert!(applications < 10, "no end: {applied:?}");
        at = now();
    }
    assert!(applications >= 3, "{applications} applications");
    assert_eq!(
        (pruned, quarantine_pruned),
        (RECORDS as u64 / 2, QUARANTINED as u64 / 2)
    );
    for (i, r) in results.iter().enumerate().take(RECORDS) {
        let seq = r.seq().unwrap();
        assert_eq!(
            is_pruned(&ledger, seq),
            i % 2 == 1,
            "record {seq} of {}",
            tenant(i)
        );
    }
    let left = ledger
        .quarantine_query(&Query {
            limit: sealog_ledger::LIMIT_MAX,
            ..Query::default()
        })
        .unwrap()
        .records;
    assert_eq!(left.len(), QUARANTINED / 2);
    assert!(
        left.iter()
            .all(|(_, b)| { serde_json::from_slice::<Value>(b).unwrap()["tenant"] == "t0" }),
        "only the held tenant's quarantine records are left"
    );
    let end = ledger.retention_status(now()).unwrap();
    assert_eq!((end.pruned, end.quarantine_pruned, end.more), (0, 0, false));
    drop(ledger);
    verify_full(tmp.path());
}

/// Sealog's own record refused by its pack (here, an act whose actor alone passes the limit):
/// an error that says so, nothing pruned, no corruption; the next application prunes.
#[test]
fn a_refused_retention_record_is_no_corruption_and_prunes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open(tmp.path());
    let seq = ingest(&ledger, &[note(0, "t")])[0].seq().unwrap();
    let at = due_now(&ledger);
    let huge = Act {
        actor: json!({"type": "human", "id": "x".repeat(RECORD_BYTES_MAX)}),
        ..act()
    };
    let e = ledger.apply_retention(at, false, &huge).unwrap_err();
    match &e {
        Error::InvalidArgument(m) => assert!(m.contains("retention record was refused"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!is_pruned(&ledger, seq));
    assert!(retention_records(&ledger).is_empty());
    let applied = ledger.apply_retention(at, false, &act()).unwrap();
    assert_eq!(applied.pruned, 1, "{applied:?}");
    drop(ledger);
    verify_full(tmp.path());
}
