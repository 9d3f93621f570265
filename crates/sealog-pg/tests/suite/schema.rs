//! The PostgreSQL schema against a real server (`scripts/pg-cluster`): seed 004's
//! acceptance criteria for `coordination_audit_records` (AC-A1 the table as specified, AC-A2
//! UPDATE raises the seed's message, AC-A3 the indexes), migrations applied once and checked
//! ever after, and Sealog's record tables append-only for the owner and refused to the
//! application role.

use sealog_pg::{APP_ROLE, MIGRATIONS, PgError, migrate, pending};
use sealog_testkit::pg::{Cluster, Sql as Db};

fn migrated() -> Option<(Cluster, Db)> {
    let cluster = Cluster::start()?;
    let done = migrate(&cluster.conninfo, APP_ROLE).unwrap();
    assert!(done.applied.iter().all(|(_, _, now)| *now));
    let db = Db::connect(&cluster.conninfo);
    Some((cluster, db))
}

const DECISION: &str = "INSERT INTO coordination_audit_records
    (envelope_id, envelope_class, decision, reason, decision_timestamp, tenant_id)
    VALUES ('env-1', 'SAFETY', 'APPLIED', 'test', '2026-11-28T14:00:00Z', 'tenant-a')";

#[test]
fn ac_a1_the_coordination_table_exists_as_specified() {
    let Some((_cluster, db)) = migrated() else {
        return;
    };
    let columns = db.strings(
        "SELECT column_name::text, data_type::text, character_maximum_length::text,
                is_nullable::text, column_default::text
         FROM information_schema.columns WHERE table_name = 'coordination_audit_records'
         ORDER BY ordinal_position",
    );
    let s = |v: &str| Some(v.to_string());
    let want = vec![
        vec![
            s("audit_id"),
            s("uuid"),
            None,
            s("NO"),
            s("gen_random_uuid()"),
        ],
        vec![
            s("envelope_id"),
            s("character varying"),
            s("100"),
            s("NO"),
            None,
        ],
        vec![
            s("envelope_class"),
            s("character varying"),
            s("20"),
            s("NO"),
            None,
        ],
        vec![
            s("decision"),
            s("character varying"),
            s("20"),
            s("NO"),
            None,
        ],
        vec![s("reason"), s("text"), None, s("NO"), None],
        vec![
            s("decision_timestamp"),
            s("timestamp with time zone"),
            None,
            s("NO"),
            None,
        ],
        vec![
            s("created_at"),
            s("timestamp with time zone"),
            None,
            s("NO"),
            s("now()"),
        ],
        vec![
            s("conflicting_envelope_id"),
            s("character varying"),
            s("100"),
            s("YES"),
            None,
        ],
        vec![
            s("preempting_envelope_id"),
            s("character varying"),
            s("100"),
            s("YES"),
            None,
        ],
        vec![
            s("active_envelopes_count"),
            s("integer"),
            None,
            s("NO"),
            s("0"),
        ],
        vec![
            s("tenant_id"),
            s("character varying"),
            s("100"),
            s("YES"),
            None,
        ],
    ];
    assert_eq!(columns, want);
    let checks = db.strings(
        "SELECT conname::text FROM pg_constraint
         WHERE conrelid = 'coordination_audit_records'::regclass AND contype = 'c' ORDER BY 1",
    );
    assert_eq!(
        checks,
        vec![
            vec![s("audit_decision_valid")],
            vec![s("audit_envelope_class_valid")]
        ]
    );
    // The constraints hold.
    db.exec(DECISION).unwrap();
    let bad = db.exec(&DECISION.replace("'SAFETY'", "'FUN'")).unwrap_err();
    assert!(bad.contains("audit_envelope_class_valid"), "{bad}");
    let bad = db
        .exec(&DECISION.replace("'APPLIED'", "'MAYBE'"))
        .unwrap_err();
    assert!(bad.contains("audit_decision_valid"), "{bad}");
}

#[test]
fn ac_a2_an_update_raises_the_seeds_message() {
    let Some((_cluster, db)) = migrated() else {
        return;
    };
    db.exec(DECISION).unwrap();
    let e = db
        .exec("UPDATE coordination_audit_records SET reason = 'rewritten'")
        .unwrap_err();
    assert_eq!(
        e,
        "coordination_audit_records are immutable. Updates forbidden."
    );
    let e = db
        .exec("DELETE FROM coordination_audit_records")
        .unwrap_err();
    assert!(e.contains("append-only"), "{e}");
    let e = db.exec("TRUNCATE coordination_audit_records").unwrap_err();
    assert!(e.contains("append-only"), "{e}");
    let reasons = db.strings("SELECT reason FROM coordination_audit_records");
    assert_eq!(reasons, vec![vec![Some("test".to_string())]]);
}

#[test]
fn ac_a3_the_indexes_exist() {
    let Some((_cluster, db)) = migrated() else {
        return;
    };
    let indexes = db.strings(
        "SELECT indexname::text, indexdef::text FROM pg_indexes
         WHERE tablename = 'coordination_audit_records' AND indexname LIKE 'ix_coord_audit_%'
         ORDER BY 1",
    );
    let names: Vec<&str> = indexes.iter().map(|r| r[0].as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "ix_coord_audit_class",
            "ix_coord_audit_decision",
            "ix_coord_audit_envelope_id",
            "ix_coord_audit_tenant",
            "ix_coord_audit_timestamp"
        ]
    );
    for (name, column) in [
        ("ix_coord_audit_class", "(envelope_class)"),
        ("ix_coord_audit_decision", "(decision)"),
        ("ix_coord_audit_envelope_id", "(envelope_id)"),
        ("ix_coord_audit_tenant", "(tenant_id)"),
        ("ix_coord_audit_timestamp", "(decision_timestamp)"),
    ] {
        let def = indexes
            .iter()
            .find(|r| r[0].as_deref() == Some(name))
            .unwrap()[1]
            .clone();
        assert!(def.unwrap().ends_with(column), "{name}");
    }
}

#[test]
fn migrations_apply_once_and_a_changed_one_is_refused() {
    let Some((cluster, db)) = migrated() else {
        return;
    };
    let again = migrate(&cluster.conninfo, APP_ROLE).unwrap();
    assert_eq!(again.applied.len(), MIGRATIONS.len());
    assert!(
        again.applied.iter().all(|(_, _, now)| !*now),
        "nothing applied twice"
    );
    assert!(pending(&cluster.conninfo).unwrap().is_empty());
    db.exec("UPDATE sealog_schema_migrations SET sha256 = 'edited' WHERE version = 1")
        .unwrap();
    assert!(matches!(
        migrate(&cluster.conninfo, APP_ROLE),
        Err(PgError::Changed { version: 1, .. })
    ));
    assert!(matches!(
        pending(&cluster.conninfo),
        Err(PgError::Changed { .. })
    ));
    assert!(matches!(
        migrate(&cluster.conninfo, "Bad Role"),
        Err(PgError::BadRole(_))
    ));
    // An empty database lacks every migration.
    db.exec("CREATE DATABASE fresh").unwrap();
    let fresh = cluster.conninfo.replace("dbname=postgres", "dbname=fresh");
    let all: Vec<i32> = MIGRATIONS.iter().map(|m| m.0).collect();
    assert_eq!(pending(&fresh).unwrap(), all);
}

const RECORD: &str = "INSERT INTO sealog_records (log, seq, record_id, ingested_at, event_ns, leaf, body)
    VALUES ('canonical', 0, decode(repeat('ab', 32), 'hex'), now(), 0, decode(repeat('cd', 32), 'hex'), '\\x7b7d')";

/// `RECORD` at `seq`, in a transaction that moves the counter over it first (the database
/// takes a record only at a seq its transaction assigned).
fn record_at(seq: u64) -> String {
    format!(
        "BEGIN;
         UPDATE sealog_log_state SET next_seq = {} WHERE log = 'canonical';
         {};
         COMMIT;",
        seq + 1,
        RECORD.replace("'canonical', 0,", &format!("'canonical', {seq},"))
    )
}

#[test]
fn records_are_append_only_for_the_owner_and_refused_to_the_application_role() {
    let Some((_cluster, db)) = migrated() else {
        return;
    };
    db.exec(&record_at(0)).unwrap();
    db.exec(
        "INSERT INTO sealog_checkpoints (log, size, note) VALUES ('canonical', 1, 'n');
         INSERT INTO sealog_key_runs (log, key, first_seq, last_seq, seqs) VALUES ('canonical', repeat('ee', 16)::uuid, 0, 0, '{0}');
         INSERT INTO sealog_tree_nodes (log, level, idx, hash) VALUES ('canonical', 0, 0, decode(repeat('cd', 32), 'hex'))",
    )
    .unwrap();
    for sql in [
        "UPDATE sealog_records SET body = '\\x00'",
        "DELETE FROM sealog_records",
        "TRUNCATE sealog_records",
        "UPDATE sealog_checkpoints SET note = ''",
        "DELETE FROM sealog_key_runs",
        "TRUNCATE sealog_tree_nodes",
    ] {
        let e = db.exec(sql).expect_err(sql);
        assert!(e.contains("append-only"), "{sql}: {e}");
    }
    let e = db
        .exec("UPDATE sealog_log_state SET next_seq = next_seq - 1 WHERE log = 'canonical'")
        .unwrap_err();
    assert!(e.contains("only moves forward"), "{e}");
    db.exec("UPDATE sealog_log_state SET next_seq = 1 WHERE log = 'canonical'")
        .unwrap();
    // As the application role: inserts and the counter, but no UPDATE, DELETE or TRUNCATE
    // of a record even before a trigger is reached.
    db.exec(&format!("SET ROLE {APP_ROLE}")).unwrap();
    db.exec(&record_at(1)).unwrap();
    for sql in [
        "UPDATE sealog_records SET body = '\\x00'",
        "DELETE FROM sealog_records",
        "TRUNCATE sealog_records",
        "DELETE FROM coordination_audit_records",
    ] {
        let e = db.exec(sql).expect_err(sql);
        assert!(e.contains("permission denied"), "{sql}: {e}");
    }
    db.exec(
        "INSERT INTO sealog_subject_keys (tenant, pseudonym, wrapped) VALUES ('t', 'p', '\\x00')",
    )
    .unwrap();
    db.exec("DELETE FROM sealog_subject_keys WHERE pseudonym = 'p'")
        .unwrap();
    // Retention's one sanctioned change: the application role empties a record's body
    // through sealog_prune, which records who did it; once only.
    let prune = "SELECT sealog_prune('canonical', 1, NULL, NULL, '{}')::text";
    assert_eq!(db.strings(prune), vec![vec![Some("true".to_string())]]);
    assert_eq!(db.strings(prune), vec![vec![Some("false".to_string())]]);
    let e = db
        .exec("SELECT sealog_prune('canonical', 7, NULL, NULL, '{}')")
        .unwrap_err();
    assert!(e.contains("has no record 7"), "{e}");
    db.exec("RESET ROLE").unwrap();
    let pruned = db.strings(
        "SELECT length(r.body)::text, p.pruned_by FROM sealog_records r
         JOIN sealog_pruned p USING (log, seq) WHERE r.seq = 1",
    );
    assert_eq!(
        pruned,
        vec![vec![Some("0".to_string()), Some("postgres".to_string())]]
    );
    // The owner cannot empty a body by hand, nor change the pruned record again.
    for sql in [
        "UPDATE sealog_records SET body = '' WHERE seq = 0",
        "UPDATE sealog_records SET body = '\x01' WHERE seq = 1",
        "DELETE FROM sealog_pruned",
    ] {
        let e = db.exec(sql).expect_err(sql);
        assert!(e.contains("append-only"), "{sql}: {e}");
    }
    let count = db.strings("SELECT count(*)::text FROM sealog_records");
    assert_eq!(count, vec![vec![Some("2".to_string())]]);
}

#[test]
fn postings_written_before_key_runs_become_runs_of_one_under_the_same_keys_and_bodies_lz4() {
    use sha2::{Digest, Sha256};
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let db = Db::connect(&cluster.conninfo);
    db.exec(
        "CREATE TABLE sealog_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
         sha256 TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .unwrap();
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 < 5) {
        db.exec(sql).unwrap();
        let sha = hex::encode(Sha256::digest(sql.as_bytes()));
        db.exec(&format!(
            "INSERT INTO sealog_schema_migrations (version, name, sha256) VALUES ({version}, '{name}', '{sha}')"
        ))
        .unwrap();
    }
    db.exec(
        "INSERT INTO sealog_record_keys (log, key, seq) VALUES
           ('canonical', decode(repeat('ee', 16), 'hex'), 0),
           ('canonical', decode(repeat('ee', 16), 'hex'), 3),
           ('quarantine', decode(repeat('ee', 16), 'hex'), 0)",
    )
    .unwrap();
    let later: Vec<i32> = MIGRATIONS.iter().map(|m| m.0).filter(|&v| v >= 5).collect();
    assert_eq!(pending(&cluster.conninfo).unwrap(), later);
    migrate(&cluster.conninfo, APP_ROLE).unwrap();
    let runs: Vec<String> = db
        .strings(
            "SELECT log || ':' || encode(uuid_send(key), 'hex') || ':' || first_seq || ':'
               || last_seq || ':' || array_to_string(seqs, ',')
             FROM sealog_key_runs ORDER BY log, last_seq",
        )
        .into_iter()
        .flat_map(|row| row.into_iter().flatten())
        .collect();
    let ee = "ee".repeat(16);
    assert_eq!(
        runs,
        [
            format!("canonical:{ee}:0:0:0"),
            format!("canonical:{ee}:3:3:3"),
            format!("quarantine:{ee}:0:0:0")
        ]
    );
    let e = db.exec("SELECT 1 FROM sealog_record_keys").unwrap_err();
    assert!(e.contains("does not exist"), "{e}");
    // Record bodies are compressed with LZ4 (Debian's PostgreSQL has it).
    let compression = db.strings(
        "SELECT attcompression::text FROM pg_attribute
         WHERE attrelid = 'sealog_records_default'::regclass AND attname = 'body'",
    );
    assert_eq!(compression, [[Some("l".to_string())]]);
}
