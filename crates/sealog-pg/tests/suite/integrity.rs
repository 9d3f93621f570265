//! What the database itself refuses, and what a read refuses when a superuser got past it:
//! a second row for a seq (the partitioned table's key cannot refuse it), a counter moved
//! past records never inserted, a TRUNCATE of a partition by name (the parent's statement
//! trigger does not fire for it, for partitions made later too), and record columns or
//! `sealog_record_ids` rows changed with triggers off. And partial tiles of every signed size.

use std::sync::Arc;

use sealog_pg::{APP_ROLE, LogName, PgConfig, PgLog, migrate, pending};
use sealog_store::conformance::{TestKeys, Unique, entry, event};
use sealog_store::{LogRead, LogWrite, StoreError};
use sealog_testkit::pg::{Cluster, Sql};

/// The server's login role: a member of the application role, nothing more.
const SERVER: &str = "sealog_server";

struct Setup {
    cluster: Cluster,
    /// The owner (the cluster's superuser).
    owner: Sql,
    /// The servers' login role.
    server: Sql,
    log: PgLog<Unique>,
    _keys: tempfile::TempDir,
}

/// A migrated cluster with `records` records appended by a server connected as a member of
/// the application role.
fn setup(records: u64) -> Option<Setup> {
    let cluster = Cluster::start()?;
    migrate(&cluster.conninfo, APP_ROLE).unwrap();
    let owner = Sql::connect(&cluster.conninfo);
    owner
        .exec(&format!("CREATE ROLE {SERVER} LOGIN IN ROLE {APP_ROLE}"))
        .unwrap();
    let as_server = format!("{} user={SERVER}", cluster.conninfo);
    let keys = sealog_testkit::tempdir();
    let config = PgConfig {
        checkpoint_interval: std::time::Duration::from_secs(3600),
        ..PgConfig::new(&as_server, LogName::Canonical, keys.path().join("log.key"))
    };
    let log = PgLog::open(config, Arc::new(TestKeys), Unique).unwrap();
    if records > 0 {
        log.append(
            (0..records)
                .map(|n| entry(&event(n, "acme", "s", None)))
                .collect(),
        )
        .unwrap();
    }
    let server = Sql::connect(&as_server);
    Some(Setup {
        cluster,
        owner,
        server,
        log,
        _keys: keys,
    })
}

/// Runs `sql` (which may open a transaction) expecting the database to refuse it, and ends
/// whatever transaction it left open; returns the refusal.
fn refused(db: &Sql, sql: &str) -> String {
    let e = db.exec(sql).expect_err(sql);
    db.exec("ROLLBACK").unwrap();
    e
}

fn count(db: &Sql, sql: &str) -> String {
    db.strings(sql)[0][0].clone().unwrap()
}

/// The row of record 10 again, a microsecond later and a year on in event time.
const PLANTED: &str = "INSERT INTO sealog_records
    SELECT log, seq, record_id, ingested_at + interval '1 microsecond',
        event_ns + 365 * 86400000000000::bigint, leaf, body
    FROM sealog_records WHERE log = 'canonical' AND seq = 10";

#[test]
fn a_second_row_for_a_seq_is_refused_to_the_application_role_and_the_owner() {
    let Some(s) = setup(20) else {
        return;
    };
    for db in [&s.server, &s.owner] {
        let e = refused(db, PLANTED);
        assert!(
            e.contains("records 10 to 10 of the canonical log were not all assigned"),
            "{e}"
        );
        // Moving the counter first assigns the next seq, not one taken.
        let e = refused(
            db,
            &format!(
                "BEGIN;
                 UPDATE sealog_log_state SET next_seq = next_seq + 1 WHERE log = 'canonical';
                 {PLANTED}; COMMIT;"
            ),
        );
        assert!(e.contains("were not all assigned"), "{e}");
        // The seq assigned, twice in one statement or in two.
        let twice = "INSERT INTO sealog_records
            SELECT log, 20, record_id, ingested_at + d * interval '1 microsecond', event_ns, leaf, body
            FROM sealog_records, generate_series(1, 2) d WHERE log = 'canonical' AND seq = 10";
        let e = refused(
            db,
            &format!(
                "BEGIN;
                 UPDATE sealog_log_state SET next_seq = 21 WHERE log = 'canonical';
                 {twice}; COMMIT;"
            ),
        );
        assert!(
            e.contains("moved from 20 to 21 over 2 records: it moves only over records inserted, one per seq"),
            "{e}"
        );
        let one = twice.replace("generate_series(1, 2)", "generate_series(1, 1)");
        let other = twice.replace("generate_series(1, 2)", "generate_series(2, 2)");
        let e = refused(
            db,
            &format!(
                "BEGIN;
                 UPDATE sealog_log_state SET next_seq = 22 WHERE log = 'canonical';
                 {one}; {other}; COMMIT;"
            ),
        );
        assert!(
            e.contains("moves only over records inserted, one per seq"),
            "{e}"
        );
    }
    assert_eq!(
        count(
            &s.owner,
            "SELECT count(*)::text FROM sealog_records WHERE seq = 10"
        ),
        "1"
    );
    // The log goes on: appends, reads and the counter as they were.
    s.log
        .append(vec![entry(&event(20, "acme", "s", None))])
        .unwrap();
    assert_eq!(s.log.len(), 21);
    assert!(s.log.get(10).unwrap().is_some());
}

#[test]
fn the_counter_moves_only_over_records_inserted() {
    let Some(s) = setup(5) else {
        return;
    };
    for db in [&s.server, &s.owner] {
        let e = refused(
            db,
            "UPDATE sealog_log_state SET next_seq = next_seq + 3 WHERE log = 'canonical'",
        );
        assert!(
            e.contains("the canonical log's counter moved from 5 to 8 over 0 records"),
            "{e}"
        );
        // Nor over a record at its end alone.
        let e = refused(
            db,
            "BEGIN;
             UPDATE sealog_log_state SET next_seq = 8 WHERE log = 'canonical';
             INSERT INTO sealog_records
               SELECT log, 7, record_id, ingested_at, event_ns, leaf, body
               FROM sealog_records WHERE log = 'canonical' AND seq = 4;
             COMMIT;",
        );
        assert!(e.contains("over 1 records"), "{e}");
    }
    assert_eq!(
        count(
            &s.owner,
            "SELECT next_seq::text FROM sealog_log_state WHERE log = 'canonical'"
        ),
        "5"
    );
    let out = s
        .log
        .append(vec![entry(&event(5, "acme", "s", None))])
        .unwrap();
    assert_eq!(out[0].seq(), Some(5), "writes go on, dense");
}

#[test]
fn a_truncate_of_any_partition_raises_for_the_owner() {
    let Some(s) = setup(3) else {
        return;
    };
    let truncated = |table: &str| {
        let e = refused(&s.owner, &format!("TRUNCATE {table}"));
        assert!(
            e.contains(&format!("TRUNCATE on {table} is forbidden")),
            "{table}: {e}"
        );
    };
    truncated("sealog_records_default");
    truncated("sealog_records");
    // Made later: by hand (the superuser's event trigger protects it), by the function, and
    // attached.
    s.owner
        .exec(
            "CREATE TABLE sealog_records_2030_01 PARTITION OF sealog_records
               FOR VALUES FROM ('2030-01-01') TO ('2030-02-01');
             SELECT sealog_create_partition('sealog_records_2030_02', '2030-02-01', '2030-03-01');
             CREATE TABLE sealog_records_2030_03 (LIKE sealog_records INCLUDING ALL);
             ALTER TABLE sealog_records ATTACH PARTITION sealog_records_2030_03
               FOR VALUES FROM ('2030-03-01') TO ('2030-04-01');",
        )
        .unwrap();
    for month in ["01", "02", "03"] {
        truncated(&format!("sealog_records_2030_{month}"));
    }
    assert!(pending(&s.cluster.conninfo).unwrap().is_empty());
    // Where no event trigger could be made (an owner that is not a superuser), a partition
    // made by hand is refused by every command until `sealog migrate` protects it.
    s.owner
        .exec(
            "DROP EVENT TRIGGER sealog_partitions_changed;
             CREATE TABLE sealog_records_2030_04 PARTITION OF sealog_records
               FOR VALUES FROM ('2030-04-01') TO ('2030-05-01');",
        )
        .unwrap();
    let e = pending(&s.cluster.conninfo).unwrap_err().to_string();
    assert!(
        e.contains("sealog_records_2030_04") && e.contains("run sealog migrate"),
        "{e}"
    );
    migrate(&s.cluster.conninfo, APP_ROLE).unwrap();
    assert!(pending(&s.cluster.conninfo).unwrap().is_empty());
    truncated("sealog_records_2030_04");
    assert_eq!(s.log.len(), 3);
}

#[test]
fn an_owner_that_is_not_a_superuser_migrates_and_makes_protected_partitions() {
    let Some(s) = setup(0) else {
        return;
    };
    s.owner
        .exec("CREATE ROLE plain_owner LOGIN CREATEROLE")
        .unwrap();
    s.owner
        .exec("CREATE DATABASE owned OWNER plain_owner")
        .unwrap();
    let conninfo = s
        .cluster
        .conninfo
        .replace("dbname=postgres", "dbname=owned")
        .replace("user=postgres", "user=plain_owner");
    migrate(&conninfo, "owned_app").unwrap();
    let owner = Sql::connect(&conninfo);
    assert_eq!(
        count(
            &owner,
            "SELECT count(*)::text FROM pg_event_trigger WHERE evtname = 'sealog_partitions_changed'"
        ),
        "0"
    );
    owner
        .exec(
            "SELECT sealog_create_partition('sealog_records_2030_01', '2030-01-01', '2030-02-01')",
        )
        .unwrap();
    for table in ["sealog_records_default", "sealog_records_2030_01"] {
        let e = refused(&owner, &format!("TRUNCATE {table}"));
        assert!(e.contains("append-only"), "{table}: {e}");
    }
    assert!(pending(&conninfo).unwrap().is_empty());
}

/// A superuser's statements with triggers off.
fn behind_the_triggers(owner: &Sql, sql: &str) {
    owner
        .exec(&format!(
            "SET session_replication_role = replica; {sql}; RESET session_replication_role;"
        ))
        .unwrap();
}

fn corrupted<T: std::fmt::Debug>(read: Result<T, StoreError>, wanted: &[&str]) {
    match read {
        Err(StoreError::Corrupted(m)) if wanted.iter().all(|w| m.contains(w)) => {}
        other => panic!("wanted a refusal naming {wanted:?}, got {other:?}"),
    }
}

#[test]
fn a_second_row_planted_with_triggers_off_is_refused_where_read() {
    let Some(s) = setup(20) else {
        return;
    };
    behind_the_triggers(&s.owner, PLANTED);
    corrupted(s.log.get(10), &["record 10", "2 rows"]);
    corrupted(
        s.log.get_many_with_leaves(&[9, 10, 11]),
        &["record 10", "2 rows"],
    );
    assert!(s.log.get(9).unwrap().is_some(), "the others still read");
}

#[test]
fn an_event_time_changed_behind_the_triggers_is_refused_where_read() {
    let Some(s) = setup(8) else {
        return;
    };
    behind_the_triggers(
        &s.owner,
        "UPDATE sealog_records SET event_ns = event_ns + 86400000000000
           WHERE log = 'canonical' AND seq = 4",
    );
    corrupted(s.log.get(4), &["record 4", "event_ns"]);
    corrupted(
        s.log.get_many_with_leaves(&[3, 4]),
        &["record 4", "event_ns"],
    );
    assert!(s.log.get(3).unwrap().is_some());
}

#[test]
fn an_id_map_changed_behind_the_triggers_answers_no_other_record() {
    let Some(s) = setup(6) else {
        return;
    };
    let first = entry(&event(1, "acme", "s", None));
    let id = first.id();
    assert_eq!(s.log.seq_of(&id).unwrap(), Some(1));
    // Records 1 and 2 swap their ids in the map.
    behind_the_triggers(
        &s.owner,
        "UPDATE sealog_record_ids SET seq = -1 WHERE log = 'canonical' AND seq = 1;
         UPDATE sealog_record_ids SET seq = 1 WHERE log = 'canonical' AND seq = 2;
         UPDATE sealog_record_ids SET seq = 2 WHERE log = 'canonical' AND seq = -1",
    );
    let elsewhere = [
        "sealog_record_ids maps",
        "to record 2, which is another record",
    ];
    corrupted(s.log.get_by_id(&id), &elsewhere);
    corrupted(s.log.seq_of(&id), &elsewhere);
    // Dedupe asks the same map: the event is neither appended again nor called a
    // duplicate of another record.
    let again = s.log.append(vec![first]);
    assert!(
        matches!(&again, Err(StoreError::Corrupted(m)) if m.contains("to record 2")),
        "{again:?}"
    );
    corrupted(
        s.log.get(1),
        &["record 1", "sealog_record_ids gives its seq the id"],
    );
    // A map row for a seq past the log names no record either.
    behind_the_triggers(
        &s.owner,
        "UPDATE sealog_record_ids SET seq = 50 WHERE log = 'canonical' AND seq = 5",
    );
    let fifth = entry(&event(5, "acme", "s", None)).id();
    corrupted(s.log.seq_of(&fifth), &["which the log does not hold"]);
    assert_eq!(s.log.len(), 6);
}

#[test]
fn partial_tiles_of_any_signed_size_are_served() {
    let Some(s) = setup(300) else {
        return;
    };
    assert_eq!(s.log.checkpoint().unwrap().size, 300);
    s.log
        .append(
            (300..400)
                .map(|n| entry(&event(n, "acme", "s", None)))
                .collect(),
        )
        .unwrap();
    assert_eq!(s.log.checkpoint().unwrap().size, 400);
    let newest = s.log.tile(0, 1, 144).unwrap();
    assert_eq!(newest.len(), 144 * 32);
    // The partial tile the checkpoint of 300 had, and any other prefix of what is signed.
    for width in [44, 1, 143] {
        let earlier = s.log.tile(0, 1, width).unwrap();
        assert_eq!(earlier, newest[..usize::from(width) * 32], "width {width}");
    }
    assert_eq!(s.log.tile(0, 0, 256).unwrap().len(), 256 * 32);
    assert_eq!(s.log.tile(0, 0, 100).unwrap().len(), 100 * 32);
    assert_eq!(s.log.tile(1, 0, 1).unwrap().len(), 32);
    let bundle = s.log.entry_bundle(1, 44).unwrap();
    let mut expected = Vec::new();
    for seq in 256..300 {
        let body = s.log.get(seq).unwrap().unwrap();
        expected.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        expected.extend_from_slice(&body);
    }
    assert_eq!(bundle, expected);
    // Nothing past the newest signed size, and no tile of no width.
    for (level, index, width) in [(0, 1, 145), (0, 2, 1), (1, 0, 2), (0, 0, 0)] {
        assert!(
            matches!(
                s.log.tile(level, index, width),
                Err(StoreError::InvalidArgument(_))
            ),
            "{level}/{index} of width {width}"
        );
    }
    assert!(matches!(
        s.log.entry_bundle(1, 145),
        Err(StoreError::InvalidArgument(_))
    ));
}
