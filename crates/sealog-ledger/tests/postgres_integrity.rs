//! A ledger in PostgreSQL against rows a superuser changed with triggers off: `verify` names
//! the record whose row was planted twice, whose event time moved or whose id the map gives
//! another seq, and no read answers with another record; and seed 004's rows come out right
//! for counts spelt as whole floats and for leap seconds.

#[path = "support/mod.rs"]
mod support;

use sealog_ledger::{Author, Error, Ledger, Undeclared, VerifyFailure, VerifyOptions};
use sealog_model::RecordId;
use serde_json::{Value, json};
use support::{appended_seq, ingest, ingest_raw};

struct Database {
    cluster: sealog_testkit::pg::Cluster,
    state: tempfile::TempDir,
    ledger: Ledger,
    sql: sealog_testkit::pg::Sql,
}

/// A migrated cluster with a ledger on it; `None` (said loudly) where PostgreSQL is not
/// installed.
fn database() -> Option<Database> {
    let cluster = sealog_testkit::pg::Cluster::start()?;
    sealog_pg::migrate(&cluster.conninfo, sealog_pg::APP_ROLE).expect("migrated");
    let state = tempfile::tempdir().unwrap();
    let config = support::config(sealog_packs::Packs::builtin(), Undeclared::Quarantine);
    let ledger = Ledger::open_database(&cluster.url(), state.path(), config).expect("opened");
    let sql = sealog_testkit::pg::Sql::connect(&cluster.conninfo);
    Some(Database {
        cluster,
        state,
        ledger,
        sql,
    })
}

/// Coordination decision `n`, its envelope its own.
fn decision(n: usize) -> Value {
    let mut e = support::example("coordination.decision", 0);
    e["id"] = json!(format!("c4-integrity-{n}"));
    e["data"]["envelope_id"] = json!(format!("env-{n}"));
    e
}

/// Appends `count` decisions; their records are seqs 0 to `count - 1`.
fn decisions(ledger: &Ledger, count: usize) -> Vec<u64> {
    let events: Vec<Value> = (0..count).map(decision).collect();
    ingest(ledger, &events).iter().map(appended_seq).collect()
}

fn verify(db: &Database) -> Result<(), VerifyFailure> {
    Ledger::verify_database(
        &db.cluster.url(),
        db.state.path(),
        &VerifyOptions::default(),
    )
    .map(drop)
}

/// `verify` fails at `location`, with a message holding `said`.
fn damaged_at(db: &Database, location: &str, said: &str) {
    match verify(db) {
        Err(f) if f.location.contains(location) && f.message.contains(said) => {}
        Err(f) => panic!(
            "wanted {location} ({said}), found {}: {}",
            f.location, f.message
        ),
        Ok(()) => panic!("verify passed; wanted {location} ({said})"),
    }
}

/// A superuser's statements with triggers off.
fn behind_the_triggers(db: &Database, sql: &str) {
    db.sql
        .exec(&format!(
            "SET session_replication_role = replica; {sql}; RESET session_replication_role;"
        ))
        .unwrap();
}

fn refused_as_damage<T: std::fmt::Debug>(read: Result<T, Error>, said: &str) {
    let e = read.expect_err("a damaged row is never read as a record");
    assert!(e.to_string().contains(said), "wanted {said}: {e}");
}

#[test]
fn verify_names_a_second_row_planted_for_a_seq() {
    let Some(db) = database() else {
        return;
    };
    assert_eq!(decisions(&db.ledger, 12).len(), 12);
    verify(&db).expect("a log as written verifies");
    // The application role's insert is refused by the database; a superuser can still.
    behind_the_triggers(
        &db,
        "INSERT INTO sealog_records
           SELECT log, seq, record_id, ingested_at + interval '1 microsecond',
             event_ns + 365 * 86400000000000::bigint, leaf, body
           FROM sealog_records WHERE log = 'canonical' AND seq = 10",
    );
    damaged_at(&db, "canonical log: record 10", "2 rows");
    refused_as_damage(db.ledger.get(10), "record 10");
}

#[test]
fn verify_names_a_record_whose_event_time_was_moved() {
    let Some(db) = database() else {
        return;
    };
    decisions(&db.ledger, 6);
    behind_the_triggers(
        &db,
        "UPDATE sealog_records SET event_ns = event_ns - 86400000000000
           WHERE log = 'canonical' AND seq = 3",
    );
    damaged_at(&db, "canonical log: record 3", "event_ns");
    refused_as_damage(db.ledger.get(3), "event_ns");
}

#[test]
fn verify_names_a_record_the_id_map_gives_another_seq_and_no_read_answers_another() {
    let Some(db) = database() else {
        return;
    };
    decisions(&db.ledger, 6);
    let record: Value = serde_json::from_slice(&db.ledger.get(1).unwrap().unwrap()).unwrap();
    let id = RecordId::parse(record["record_id"].as_str().unwrap()).unwrap();
    assert_eq!(db.ledger.seq_of(&id).unwrap(), Some(1));
    // Records 1 and 2 swap their ids in the map.
    behind_the_triggers(
        &db,
        "UPDATE sealog_record_ids SET seq = -1 WHERE log = 'canonical' AND seq = 1;
         UPDATE sealog_record_ids SET seq = 1 WHERE log = 'canonical' AND seq = 2;
         UPDATE sealog_record_ids SET seq = 2 WHERE log = 'canonical' AND seq = -1",
    );
    damaged_at(&db, "canonical log: record 1", "sealog_record_ids");
    refused_as_damage(db.ledger.get_by_id(&id), "another record");
    refused_as_damage(db.ledger.seq_of(&id), "another record");
    // Sent again, the event is neither called a duplicate of record 2 nor appended twice.
    let sent = serde_json::to_vec(&decision(1)).unwrap();
    let again = db.ledger.ingest(&[Ok(sent.as_slice())], &Author::ANYONE);
    refused_as_damage(again, "another record");
    assert_eq!(db.ledger.len(), 6, "nothing appended");
}

/// The `coordination_audit_records` row of the record with this envelope id: its count and
/// decision time (UTC, microseconds).
fn row(db: &Database, envelope: &str) -> Vec<Option<String>> {
    let rows = db.sql.strings(&format!(
        "SELECT active_envelopes_count::text,
                to_char(decision_timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')
         FROM coordination_audit_records WHERE envelope_id = '{envelope}'"
    ));
    assert_eq!(rows.len(), 1, "one row for {envelope}: {rows:?}");
    rows.into_iter().next().unwrap()
}

#[test]
fn whole_float_counts_and_leap_seconds_make_rows_with_their_values() {
    let Some(db) = database() else {
        return;
    };
    // Sent as text, so the count stays the float the producer wrote.
    let raw = |n: usize, count: &str, at: &str| -> Vec<u8> {
        let mut e = decision(n);
        e["data"]["decision_timestamp"] = json!(at);
        e["data"]["active_envelopes_count"] = json!("COUNT");
        serde_json::to_string(&e)
            .unwrap()
            .replace("\"COUNT\"", count)
            .into_bytes()
    };
    let results = ingest_raw(
        &db.ledger,
        &[
            raw(1, "3.0", "2026-01-02T03:04:05.123456789Z"),
            raw(2, "4", "2016-12-31T23:59:60Z"),
            raw(3, "2.5e1", "2026-01-02T05:04:05+02:00"),
        ],
    );
    for r in &results {
        appended_seq(r);
    }
    let want = |count: &str, at: &str| vec![Some(count.to_string()), Some(at.to_string())];
    assert_eq!(row(&db, "env-1"), want("3", "2026-01-02T03:04:05.123456"));
    // A leap second is the last instant of the second before it, as every event time is.
    assert_eq!(row(&db, "env-2"), want("4", "2016-12-31T23:59:59.999999"));
    assert_eq!(row(&db, "env-3"), want("25", "2026-01-02T03:04:05.000000"));
    verify(&db).expect("verifies");
}
