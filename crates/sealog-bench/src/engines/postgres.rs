//! PostgreSQL as seed 004 would build an audit log, generalised to the envelope: one table
//! with the event as JSONB and the envelope in columns, a unique index on `record_id` for
//! dedupe, the indexes Sealog keeps (plus a GIN index for `feature_keys_used`), and a
//! `BEFORE UPDATE OR DELETE` trigger that raises. The server must run with `fsync=on` and
//! `synchronous_commit=on`; the engine refuses to run otherwise.
//!
//! Batches go in one transaction each, by binary COPY or by one multi-row
//! `INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING`; `tune` measures both and keeps
//! the faster. COPY cannot skip duplicates, so a batch COPY refuses with a unique violation
//! is retried as the INSERT, which can.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bytes::{BufMut, BytesMut};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, GenericClient, NoTls, Statement, Transaction};

use super::{Attempt, Columns, Engine, Hits, Tamper, columns};
use crate::workload::Entry;

/// The schema the comparison owns (dropped and created afresh on open).
pub const SCHEMA: &str = "sealog_bench";

/// How batches are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum BulkMethod {
    /// Binary COPY straight into the table; a batch with a duplicate falls back to `Insert`.
    Copy,
    /// `INSERT … SELECT FROM unnest($1, …) ON CONFLICT (record_id) DO NOTHING`.
    Insert,
}

pub struct Postgres {
    rt: tokio::runtime::Runtime,
    config: tokio_postgres::Config,
    pool: Mutex<Vec<Conn>>,
    method: Mutex<BulkMethod>,
    settings: String,
    tuning: Mutex<String>,
}

/// One connection with its prepared statements.
struct Conn {
    client: Client,
    insert_many: Statement,
    insert_one: Statement,
    insert_entries: Statement,
    /// Query statements, prepared on first use (one round trip saved per query after).
    queries: HashMap<&'static str, Statement>,
}

fn events_ddl(t: &str) -> String {
    format!(
        r#"
CREATE TABLE {t} (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    record_id   BYTEA NOT NULL,
    event_id    TEXT NOT NULL,
    tenant      TEXT,
    scope       TEXT NOT NULL,
    subject     TEXT,
    type        TEXT NOT NULL,
    source      TEXT NOT NULL,
    actor       TEXT,
    event_time  TIMESTAMPTZ NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    body        JSONB NOT NULL
);
CREATE UNIQUE INDEX {t}_record_id ON {t} (record_id);
CREATE INDEX {t}_event_id ON {t} (event_id);
CREATE INDEX {t}_tenant ON {t} (tenant);
CREATE INDEX {t}_scope ON {t} (scope);
CREATE INDEX {t}_subject ON {t} (subject);
CREATE INDEX {t}_type ON {t} (type);
CREATE INDEX {t}_source ON {t} (source);
CREATE INDEX {t}_actor ON {t} (actor);
CREATE INDEX {t}_chain ON {t} (tenant, scope, subject);
CREATE INDEX {t}_event_time ON {t} (event_time);
CREATE INDEX {t}_feature_keys ON {t}
    USING GIN ((body -> 'data' -> 'features' -> 'feature_keys_used') jsonb_path_ops);
CREATE TRIGGER {t}_immutable BEFORE UPDATE OR DELETE ON {t}
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t}
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
"#
    )
}

const FUNCTIONS: &str = r#"
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END
$$;
"#;

const ENTRIES_DDL: &str = r#"
CREATE TABLE entries (
    seq   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key   TEXT NOT NULL UNIQUE,
    value BYTEA NOT NULL
);
CREATE TRIGGER entries_immutable BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
"#;

const EVENT_COLUMNS: &str =
    "record_id, event_id, tenant, scope, subject, type, source, actor, event_time, body";

fn insert_many_sql(table: &str) -> String {
    format!(
        "INSERT INTO {table} ({EVENT_COLUMNS}) \
         SELECT r, i, te, sc, su, ty, so, ac, et, b::jsonb \
         FROM unnest($1::bytea[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                     $7::text[], $8::text[], $9::timestamptz[], $10::text[]) \
              AS u(r, i, te, sc, su, ty, so, ac, et, b) \
         ON CONFLICT (record_id) DO NOTHING"
    )
}

/// The event text as a JSONB value in binary COPY (format version 1, then the text).
#[derive(Debug)]
struct Jsonb<'a>(&'a str);

impl ToSql for Jsonb<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        out.put_u8(1);
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }

    to_sql_checked!();
}

fn time_of(ns: i64) -> SystemTime {
    if ns >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

async fn insert_many(
    client: &impl GenericClient,
    stmt: &Statement,
    rows: &[Columns<'_>],
    bodies: &[&str],
) -> Result<u64, tokio_postgres::Error> {
    let rid: Vec<&[u8]> = rows.iter().map(|c| &c.record_id[..]).collect();
    let id: Vec<&str> = rows.iter().map(|c| &*c.event_id).collect();
    let tenant: Vec<Option<&str>> = rows.iter().map(|c| c.tenant.as_deref()).collect();
    let scope: Vec<&str> = rows.iter().map(|c| &*c.scope).collect();
    let subject: Vec<Option<&str>> = rows.iter().map(|c| c.subject.as_deref()).collect();
    let ty: Vec<&str> = rows.iter().map(|c| &*c.event_type).collect();
    let source: Vec<&str> = rows.iter().map(|c| &*c.source).collect();
    let actor: Vec<Option<&str>> = rows.iter().map(|c| c.actor.as_deref()).collect();
    let time: Vec<SystemTime> = rows.iter().map(|c| time_of(c.time_ns)).collect();
    client
        .execute(
            stmt,
            &[
                &rid, &id, &tenant, &scope, &subject, &ty, &source, &actor, &time, &bodies,
            ],
        )
        .await
}

async fn copy_events(
    client: &Transaction<'_>,
    table: &str,
    rows: &[Columns<'_>],
    bodies: &[&str],
) -> Result<u64, tokio_postgres::Error> {
    let sink = client
        .copy_in(&format!(
            "COPY {table} ({EVENT_COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let types = [
        Type::BYTEA,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::JSONB,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    let mut writer = std::pin::pin!(writer);
    for (c, body) in rows.iter().zip(bodies) {
        writer
            .as_mut()
            .write(&[
                &&c.record_id[..],
                &&*c.event_id,
                &c.tenant.as_deref(),
                &&*c.scope,
                &c.subject.as_deref(),
                &&*c.event_type,
                &&*c.source,
                &c.actor.as_deref(),
                &time_of(c.time_ns),
                &Jsonb(body),
            ])
            .await?;
    }
    writer.as_mut().finish().await
}

impl Conn {
    async fn connect(
        config: &tokio_postgres::Config,
        rt: &tokio::runtime::Handle,
    ) -> anyhow::Result<Conn> {
        let (client, connection) = config.connect(NoTls).await?;
        rt.spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("postgres connection closed: {e}");
            }
        });
        Ok(Conn {
            insert_many: client.prepare(&insert_many_sql("events")).await?,
            insert_one: client
                .prepare(&format!(
                    "INSERT INTO events ({EVENT_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::jsonb) \
                     ON CONFLICT (record_id) DO NOTHING"
                ))
                .await?,
            insert_entries: client
                .prepare(
                    "INSERT INTO entries (key, value) SELECT k, v FROM unnest($1::text[], $2::bytea[]) AS u(k, v) \
                     ON CONFLICT (key) DO NOTHING",
                )
                .await?,
            queries: HashMap::new(),
            client,
        })
    }

    /// One batch in one transaction, by `method`; returns the rows that were new.
    async fn write_events(
        &mut self,
        method: BulkMethod,
        table: &str,
        rows: &[Columns<'_>],
        bodies: &[&str],
    ) -> anyhow::Result<u64> {
        if method == BulkMethod::Copy {
            let tx = self.client.transaction().await?;
            match copy_events(&tx, table, rows, bodies).await {
                Ok(n) => {
                    tx.commit().await?;
                    return Ok(n);
                }
                Err(e) if is_unique_violation(&e) => tx.rollback().await?,
                Err(e) => return Err(e.into()),
            }
        }
        let stmt = if table == "events" {
            self.insert_many.clone()
        } else {
            self.client.prepare(&insert_many_sql(table)).await?
        };
        let tx = self.client.transaction().await?;
        let n = insert_many(&tx, &stmt, rows, bodies).await?;
        tx.commit().await?;
        Ok(n)
    }
}

impl Postgres {
    /// Connects (`conninfo` in libpq key=value form) and creates the schema afresh.
    pub fn open(conninfo: &str) -> anyhow::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let mut config: tokio_postgres::Config = conninfo.parse()?;
        let settings = rt.block_on(async {
            let (client, connection) = config.connect(NoTls).await?;
            let task = tokio::spawn(connection);
            let show = |name: &'static str| {
                let client = &client;
                async move {
                    let rows = client.simple_query(&format!("SHOW {name}")).await?;
                    let value = rows
                        .iter()
                        .find_map(|m| match m {
                            tokio_postgres::SimpleQueryMessage::Row(r) => {
                                r.get(0).map(str::to_string)
                            }
                            _ => None,
                        })
                        .unwrap_or_default();
                    anyhow::Ok(value)
                }
            };
            let fsync = show("fsync").await?;
            let sync_commit = show("synchronous_commit").await?;
            anyhow::ensure!(
                fsync == "on" && sync_commit == "on",
                "PostgreSQL must run durable for this comparison: fsync={fsync}, \
                 synchronous_commit={sync_commit}"
            );
            let mut settings = format!(
                "PostgreSQL {}, fsync={fsync}, synchronous_commit={sync_commit}",
                show("server_version").await?
            );
            for name in [
                "full_page_writes",
                "wal_sync_method",
                "shared_buffers",
                "max_wal_size",
            ] {
                settings.push_str(&format!(", {name}={}", show(name).await?));
            }
            client
                .batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}; \
                     SET search_path TO {SCHEMA}; {FUNCTIONS} {} {ENTRIES_DDL}",
                    events_ddl("events")
                ))
                .await?;
            drop(client);
            let _ = task.await;
            anyhow::Ok(settings)
        })?;
        config.options(format!("-c search_path={SCHEMA}"));
        Ok(Postgres {
            rt,
            config,
            pool: Mutex::new(Vec::new()),
            method: Mutex::new(BulkMethod::Insert),
            settings,
            tuning: Mutex::new(String::new()),
        })
    }

    /// Runs `f` on a pooled connection (opening one if none is free) and returns it after.
    fn with_conn<T>(
        &self,
        f: impl AsyncFnOnce(&mut Conn) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let conn = self.pool.lock().expect("pool lock").pop();
        self.rt.block_on(async {
            let mut conn = match conn {
                Some(c) => c,
                None => Conn::connect(&self.config, self.rt.handle()).await?,
            };
            let out = f(&mut conn).await;
            if !conn.client.is_closed() {
                self.pool.lock().expect("pool lock").push(conn);
            }
            out
        })
    }

    pub fn method(&self) -> BulkMethod {
        *self.method.lock().expect("method lock")
    }

    pub fn set_method(&self, method: BulkMethod) {
        *self.method.lock().expect("method lock") = method;
    }

    fn rows(&self, query: &'static str, params: &[&(dyn ToSql + Sync)]) -> anyhow::Result<Hits> {
        self.with_conn(async |c| {
            let stmt = match c.queries.get(query) {
                Some(s) => s.clone(),
                None => {
                    let s = c.client.prepare(query).await?;
                    c.queries.insert(query, s.clone());
                    s
                }
            };
            let rows = c.client.query(&stmt, params).await?;
            for r in &rows {
                std::hint::black_box(r.get::<_, &str>(0));
            }
            Ok(Hits::Found(rows.len()))
        })
    }
}

impl Engine for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn setup(&self) -> String {
        let method = match self.method() {
            BulkMethod::Copy => {
                "binary COPY per batch (duplicates: INSERT … ON CONFLICT DO NOTHING)"
            }
            BulkMethod::Insert => {
                "multi-row INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING per batch"
            }
        };
        let tuning = self.tuning.lock().expect("tuning lock");
        format!(
            "{}; JSONB body + envelope columns, 12 indexes incl. GIN (jsonb_path_ops) on \
             feature_keys_used, BEFORE UPDATE OR DELETE trigger; {method}{}",
            self.settings,
            if tuning.is_empty() {
                String::new()
            } else {
                format!("; {tuning}")
            }
        )
    }

    fn tune(&mut self, sample: &[Vec<String>]) -> anyhow::Result<()> {
        if sample.is_empty() {
            return Ok(());
        }
        let mut seconds = [0.0f64; 2];
        let methods = [BulkMethod::Copy, BulkMethod::Insert];
        // Alternate, so neither method is favoured by a warmer cache.
        for round in 0..2 {
            for (m, method) in methods.into_iter().enumerate() {
                let table = format!("tune_{}_{round}", m);
                self.with_conn(async |c| {
                    c.client.batch_execute(&events_ddl(&table)).await?;
                    let t = Instant::now();
                    for batch in sample {
                        let rows = batch
                            .iter()
                            .map(|e| columns(e))
                            .collect::<anyhow::Result<Vec<_>>>()?;
                        let bodies: Vec<&str> = batch.iter().map(String::as_str).collect();
                        c.write_events(method, &table, &rows, &bodies).await?;
                    }
                    seconds[m] += t.elapsed().as_secs_f64();
                    c.client
                        .batch_execute(&format!("DROP TABLE {table}"))
                        .await?;
                    Ok(())
                })?;
            }
        }
        let events: usize = sample.iter().map(Vec::len).sum::<usize>() * 2;
        let rate = |s: f64| (events as f64 / s).round();
        let best = if seconds[0] <= seconds[1] {
            BulkMethod::Copy
        } else {
            BulkMethod::Insert
        };
        self.set_method(best);
        *self.tuning.lock().expect("tuning lock") = format!(
            "tuned on {events} events: COPY {} ev/s, INSERT {} ev/s",
            rate(seconds[0]),
            rate(seconds[1])
        );
        Ok(())
    }

    fn warm(&self, connections: usize) -> anyhow::Result<()> {
        let missing = connections.saturating_sub(self.pool.lock().expect("pool lock").len());
        for _ in 0..missing {
            let conn = self
                .rt
                .block_on(Conn::connect(&self.config, self.rt.handle()))?;
            self.pool.lock().expect("pool lock").push(conn);
        }
        Ok(())
    }

    fn append_batch(&self, events: &[String]) -> anyhow::Result<u64> {
        let rows = events
            .iter()
            .map(|e| columns(e))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let bodies: Vec<&str> = events.iter().map(String::as_str).collect();
        let method = self.method();
        self.with_conn(async |c| c.write_events(method, "events", &rows, &bodies).await)
    }

    fn append_one(&self, event: &str) -> anyhow::Result<bool> {
        let c = columns(event)?;
        let time = time_of(c.time_ns);
        self.with_conn(async |conn| {
            let n = conn
                .client
                .execute(
                    &conn.insert_one,
                    &[
                        &&c.record_id[..],
                        &&*c.event_id,
                        &c.tenant.as_deref(),
                        &&*c.scope,
                        &c.subject.as_deref(),
                        &&*c.event_type,
                        &&*c.source,
                        &c.actor.as_deref(),
                        &time,
                        &event,
                    ],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn append_entries(&self, entries: &[Entry]) -> anyhow::Result<u64> {
        let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
        let values: Vec<&[u8]> = entries.iter().map(|e| e.value.as_bytes()).collect();
        let method = self.method();
        self.with_conn(async |c| {
            let tx = c.client.transaction().await?;
            if method == BulkMethod::Copy {
                let sink = tx
                    .copy_in("COPY entries (key, value) FROM STDIN (FORMAT binary)")
                    .await?;
                let writer = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::BYTEA]);
                let mut writer = std::pin::pin!(writer);
                let mut copied = Ok(());
                for (k, v) in keys.iter().zip(&values) {
                    copied = writer.as_mut().write(&[k, v]).await;
                    if copied.is_err() {
                        break;
                    }
                }
                match copied.and(writer.as_mut().finish().await.map(|_| ())) {
                    Ok(()) => {
                        tx.commit().await?;
                        return Ok(entries.len() as u64);
                    }
                    Err(e) if is_unique_violation(&e) => tx.rollback().await?,
                    Err(e) => return Err(e.into()),
                }
                let tx = c.client.transaction().await?;
                let n = tx.execute(&c.insert_entries, &[&keys, &values]).await?;
                tx.commit().await?;
                return Ok(n);
            }
            let n = tx.execute(&c.insert_entries, &[&keys, &values]).await?;
            tx.commit().await?;
            Ok(n)
        })
    }

    fn record_id(&self, event: &str) -> anyhow::Result<Vec<u8>> {
        Ok(super::peer_record_id(event))
    }

    fn get(&self, record_id: &[u8]) -> anyhow::Result<bool> {
        let hits = self.rows(
            "SELECT body::text FROM events WHERE record_id = $1",
            &[&record_id],
        )?;
        Ok(hits == Hits::Found(1))
    }

    fn subject_history(&self, subject: &str, limit: usize) -> anyhow::Result<Hits> {
        self.rows(
            "SELECT body::text FROM events WHERE subject = $1 ORDER BY seq LIMIT $2",
            &[&subject, &(limit as i64)],
        )
    }

    fn by_feature_key(&self, key_type: &str, key_id: &str, limit: usize) -> anyhow::Result<Hits> {
        let probe = serde_json::json!([{"key_type": key_type, "key_id": key_id}]).to_string();
        self.rows(
            "SELECT body::text FROM events \
             WHERE body -> 'data' -> 'features' -> 'feature_keys_used' @> $1::text::jsonb \
             ORDER BY seq LIMIT $2",
            &[&probe, &(limit as i64)],
        )
    }

    fn time_window(&self, from_ns: i64, to_ns: i64, limit: usize) -> anyhow::Result<Hits> {
        self.rows(
            "SELECT body::text FROM events WHERE event_time >= $1 AND event_time < $2 \
             ORDER BY event_time LIMIT $3",
            &[&time_of(from_ns), &time_of(to_ns), &(limit as i64)],
        )
    }

    fn counts(&self) -> anyhow::Result<(u64, u64)> {
        self.with_conn(async |c| {
            let events: i64 = c
                .client
                .query_one("SELECT count(*) FROM events", &[])
                .await?
                .get(0);
            let entries: i64 = c
                .client
                .query_one("SELECT count(*) FROM entries", &[])
                .await?
                .get(0);
            Ok((events as u64, entries as u64))
        })
    }

    /// `VACUUM (ANALYZE)`: what autovacuum would do after a bulk load (statistics, the
    /// visibility map, the GIN pending list merged). No forced checkpoint: after one, the
    /// first change to every page logs a full-page image, which would slow the single-event
    /// appends that follow. The size is the table's heap, TOAST and every index.
    fn settle(&mut self) -> anyhow::Result<u64> {
        self.with_conn(async |c| {
            c.client.batch_execute("VACUUM (ANALYZE) events").await?;
            let bytes: i64 = c
                .client
                .query_one("SELECT pg_total_relation_size('events')", &[])
                .await?
                .get(0);
            Ok(bytes as u64)
        })
    }

    fn tamper(&mut self) -> anyhow::Result<Tamper> {
        self.with_conn(async |c| {
            let outcome = async |sql: &str| match c.client.execute(sql, &[]).await {
                Err(e) => Ok::<_, anyhow::Error>(Attempt::Refused(
                    e.as_db_error()
                        .map_or_else(|| e.to_string(), |d| d.message().to_string()),
                )),
                Ok(n) => Ok(Attempt::Allowed(format!("{n} row(s) changed"))),
            };
            let update =
                outcome("UPDATE events SET body = '{}' WHERE seq = (SELECT min(seq) FROM events)")
                    .await?;
            let delete =
                outcome("DELETE FROM events WHERE seq = (SELECT min(seq) FROM events)").await?;
            Ok(Tamper { update, delete })
        })
    }

    fn close(self: Box<Self>) -> anyhow::Result<()> {
        let pool = std::mem::take(&mut *self.pool.lock().expect("pool lock"));
        drop(pool);
        self.rt.shutdown_timeout(Duration::from_secs(5));
        Ok(())
    }
}
