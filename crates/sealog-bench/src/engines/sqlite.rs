//! SQLite as an append-only audit table: WAL, `synchronous=FULL` (every commit fsyncs the
//! WAL), the envelope in columns beside the event text, triggers that refuse UPDATE and
//! DELETE, the indexes Sealog keeps, and a side table (filled by a trigger) for
//! `feature_keys_used`. SQLite has one writer; a mutex in front of one connection serialises
//! writers without the busy-wait backoff several connections would add, and the client
//! work (parsing, hashing) happens outside it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Attempt, Engine, Hits, Tamper, columns};
use crate::workload::Entry;

pub struct Sqlite {
    path: PathBuf,
    conn: Mutex<Connection>,
}

const SCHEMA: &str = r#"
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY,
    record_id   BLOB NOT NULL,
    event_id    TEXT NOT NULL,
    tenant      TEXT,
    scope       TEXT NOT NULL,
    subject     TEXT,
    type        TEXT NOT NULL,
    source      TEXT NOT NULL,
    actor       TEXT,
    event_time  TEXT NOT NULL,
    ingested_at TEXT NOT NULL,
    body        TEXT NOT NULL
);
CREATE UNIQUE INDEX events_record_id ON events (record_id);
CREATE INDEX events_event_id ON events (event_id);
CREATE INDEX events_tenant ON events (tenant);
CREATE INDEX events_scope ON events (scope);
CREATE INDEX events_subject ON events (subject);
CREATE INDEX events_type ON events (type);
CREATE INDEX events_source ON events (source);
CREATE INDEX events_actor ON events (actor);
CREATE INDEX events_chain ON events (tenant, scope, subject);
CREATE INDEX events_event_time ON events (event_time);

CREATE TABLE event_feature_keys (
    feature_key TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    PRIMARY KEY (feature_key, seq)
) WITHOUT ROWID;

CREATE TRIGGER events_feature_keys AFTER INSERT ON events BEGIN
    INSERT INTO event_feature_keys (feature_key, seq)
    SELECT json_extract(k.value, '$.key_type') || ':' || json_extract(k.value, '$.key_id'), NEW.seq
    FROM json_each(NEW.body, '$.data.features.feature_keys_used') AS k;
END;

CREATE TABLE entries (
    seq   INTEGER PRIMARY KEY,
    key   TEXT NOT NULL UNIQUE,
    value BLOB NOT NULL
);
"#;

/// The immutability triggers of one table.
fn immutable(table: &str) -> String {
    format!(
        "CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} BEGIN \
             SELECT RAISE(ABORT, '{table} are immutable: UPDATE refused'); END;\n\
         CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} BEGIN \
             SELECT RAISE(ABORT, '{table} are immutable: DELETE refused'); END;\n"
    )
}

const INSERT_EVENT: &str = "INSERT INTO events \
    (record_id, event_id, tenant, scope, subject, type, source, actor, event_time, ingested_at, body) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (record_id) DO NOTHING";

const INSERT_ENTRY: &str =
    "INSERT INTO entries (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING";

struct Row<'a> {
    c: super::Columns<'a>,
    event_time: String,
    body: &'a str,
}

fn row(text: &str) -> anyhow::Result<Row<'_>> {
    let c = columns(text)?;
    Ok(Row {
        event_time: sealog_model::time::format_micros(c.time_ns),
        c,
        body: text,
    })
}

fn now_text() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_nanos() as i64;
    sealog_model::time::format_micros(ns)
}

fn insert(
    stmt: &mut rusqlite::CachedStatement<'_>,
    r: &Row<'_>,
    now: &str,
) -> rusqlite::Result<usize> {
    stmt.execute(params![
        &r.c.record_id[..],
        r.c.event_id,
        r.c.tenant,
        r.c.scope,
        r.c.subject,
        r.c.event_type,
        r.c.source,
        r.c.actor,
        r.event_time,
        now,
        r.body,
    ])
}

impl Sqlite {
    /// Creates a fresh database in `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("audit.db");
        anyhow::ensure!(!path.exists(), "{} already exists", path.display());
        let conn = Connection::open(&path)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        anyhow::ensure!(mode == "wal", "SQLite refused WAL mode ({mode})");
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA cache_size = -65536;")?;
        let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
        anyhow::ensure!(sync == 2, "SQLite synchronous is {sync}, not FULL (2)");
        conn.execute_batch(SCHEMA)?;
        for table in ["events", "event_feature_keys", "entries"] {
            conn.execute_batch(&immutable(table))?;
        }
        conn.set_prepared_statement_cache_capacity(16);
        Ok(Sqlite {
            path,
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().expect("sqlite connection lock")
    }
}

fn count_found(
    stmt: &mut rusqlite::CachedStatement<'_>,
    p: impl rusqlite::Params,
) -> anyhow::Result<Hits> {
    let mut rows = stmt.query(p)?;
    let mut n = 0;
    while let Some(r) = rows.next()? {
        let body: String = r.get(0)?;
        std::hint::black_box(body);
        n += 1;
    }
    Ok(Hits::Found(n))
}

impl Engine for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn setup(&self) -> String {
        format!(
            "SQLite {} (bundled), WAL, synchronous=FULL, one transaction per batch, \
             multi-row INSERT … ON CONFLICT DO NOTHING, 10 indexes + feature-key side table, \
             UPDATE/DELETE triggers",
            rusqlite::version()
        )
    }

    fn append_batch(&self, events: &[String]) -> anyhow::Result<u64> {
        let rows = events
            .iter()
            .map(|e| row(e))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let now = now_text();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut added = 0;
        {
            let mut stmt = tx.prepare_cached(INSERT_EVENT)?;
            for r in &rows {
                added += insert(&mut stmt, r, &now)? as u64;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    fn append_one(&self, event: &str) -> anyhow::Result<bool> {
        let r = row(event)?;
        let now = now_text();
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(INSERT_EVENT)?;
        Ok(insert(&mut stmt, &r, &now)? == 1)
    }

    fn append_entries(&self, entries: &[Entry]) -> anyhow::Result<u64> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut added = 0;
        {
            let mut stmt = tx.prepare_cached(INSERT_ENTRY)?;
            for e in entries {
                added += stmt.execute(params![e.key, e.value.as_bytes()])? as u64;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    fn record_id(&self, event: &str) -> anyhow::Result<Vec<u8>> {
        Ok(super::peer_record_id(event))
    }

    fn get(&self, record_id: &[u8]) -> anyhow::Result<bool> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT body FROM events WHERE record_id = ?1")?;
        let body: Option<String> = stmt.query_row([record_id], |r| r.get(0)).optional()?;
        Ok(body.is_some())
    }

    fn subject_history(&self, subject: &str, limit: usize) -> anyhow::Result<Hits> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT body FROM events WHERE subject = ?1 ORDER BY seq LIMIT ?2")?;
        count_found(&mut stmt, params![subject, limit as i64])
    }

    fn by_feature_key(&self, key_type: &str, key_id: &str, limit: usize) -> anyhow::Result<Hits> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT e.body FROM event_feature_keys f JOIN events e ON e.seq = f.seq \
             WHERE f.feature_key = ?1 ORDER BY f.seq LIMIT ?2",
        )?;
        count_found(
            &mut stmt,
            params![format!("{key_type}:{key_id}"), limit as i64],
        )
    }

    fn time_window(&self, from_ns: i64, to_ns: i64, limit: usize) -> anyhow::Result<Hits> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT body FROM events WHERE event_time >= ?1 AND event_time < ?2 \
             ORDER BY event_time LIMIT ?3",
        )?;
        count_found(
            &mut stmt,
            params![
                sealog_model::time::format_micros(from_ns),
                sealog_model::time::format_micros(to_ns),
                limit as i64
            ],
        )
    }

    fn counts(&self) -> anyhow::Result<(u64, u64)> {
        let conn = self.conn();
        let events: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
        let entries: i64 = conn.query_row("SELECT count(*) FROM entries", [], |r| r.get(0))?;
        Ok((events as u64, entries as u64))
    }

    /// Checkpoints the WAL into the database and gathers statistics (`ANALYZE`); the file
    /// holds nothing but the events, their indexes and the (still empty) entries table.
    fn settle(&mut self) -> anyhow::Result<u64> {
        let conn = self.conn();
        conn.execute_batch("ANALYZE;")?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        let mut bytes = std::fs::metadata(&self.path)?.len();
        for suffix in ["-wal", "-shm"] {
            let mut p = self.path.clone().into_os_string();
            p.push(suffix);
            bytes += std::fs::metadata(&p).map_or(0, |m| m.len());
        }
        Ok(bytes)
    }

    fn tamper(&mut self) -> anyhow::Result<Tamper> {
        let conn = self.conn();
        let seq: i64 = conn.query_row("SELECT min(seq) FROM events", [], |r| r.get(0))?;
        let outcome = |sql: &str| match conn.execute(sql, [seq]) {
            Err(e) => Attempt::Refused(e.to_string()),
            Ok(n) => Attempt::Allowed(format!("{n} row(s) changed")),
        };
        Ok(Tamper {
            update: outcome("UPDATE events SET body = '{}' WHERE seq = ?1"),
            delete: outcome("DELETE FROM events WHERE seq = ?1"),
        })
    }

    fn close(self: Box<Self>) -> anyhow::Result<()> {
        let conn = self.conn.into_inner().expect("sqlite connection lock");
        conn.close().map_err(|(_, e)| e)?;
        Ok(())
    }
}
