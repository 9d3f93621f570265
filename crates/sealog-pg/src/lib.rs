//! Sealog's PostgreSQL schema: versioned migrations kept in this crate (`migrations/`),
//! applied in order by `sealog migrate`, each once, each checked against its SHA-256 ever
//! after, under an advisory lock so two servers starting together do not race.
//!
//! Roles: whoever runs the migrations owns the tables (the *owner*); the servers connect as
//! the *application role* (`sealog_app` by default), which may read, insert, move the log's
//! counter forward (over the records it inserts, one per seq) and delete only erasable rows
//! (subject keys, quarantined payloads) — never UPDATE, DELETE or TRUNCATE a record. The
//! append-only triggers raise for the owner too, on every partition of the records.

mod conn;
mod erasable;
mod keys;
mod log;
mod said;
mod tree;

use sha2::{Digest, Sha256};
use tokio_postgres::{Client, NoTls};

pub use erasable::{Erasable, Governing, SubjectKey};
pub use log::{PgConfig, PgLog};
pub use tree::LogName;

/// One connection to the database, used from synchronous code (the storage contract is
/// synchronous): its own small runtime drives the driver.
pub struct Db {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl Db {
    pub fn connect(conninfo: &str) -> Result<Db, PgError> {
        let rt = runtime()?;
        let client = rt.block_on(connect(conninfo))?;
        Ok(Db { rt, client })
    }
}

/// The migrations, in order: (version, name, SQL).
pub const MIGRATIONS: [(i32, &str, &str); 10] = [
    (1, "schema", include_str!("../migrations/0001_schema.sql")),
    (2, "log", include_str!("../migrations/0002_log.sql")),
    (3, "privacy", include_str!("../migrations/0003_privacy.sql")),
    (
        4,
        "rotation",
        include_str!("../migrations/0004_rotation.sql"),
    ),
    (
        5,
        "key runs",
        include_str!("../migrations/0005_key_runs.sql"),
    ),
    (6, "lz4", include_str!("../migrations/0006_lz4.sql")),
    (
        7,
        "uuid keys",
        include_str!("../migrations/0007_uuid_keys.sql"),
    ),
    (
        8,
        "event seq",
        include_str!("../migrations/0008_event_seq.sql"),
    ),
    (
        9,
        "assigned seqs",
        include_str!("../migrations/0009_assigned_seqs.sql"),
    ),
    (
        10,
        "partition truncate",
        include_str!("../migrations/0010_partition_truncate.sql"),
    ),
];

/// The application role's name when none is given.
pub const APP_ROLE: &str = "sealog_app";

/// Tables the application role reads and inserts into; no UPDATE, DELETE or TRUNCATE.
const APPEND_ONLY: [&str; 10] = [
    "sealog_records",
    "sealog_record_ids",
    "sealog_key_runs",
    "sealog_tree_nodes",
    "sealog_checkpoints",
    "sealog_log_keys",
    "sealog_cosigned",
    "sealog_privacy",
    "sealog_erased_subjects",
    "coordination_audit_records",
];
/// Tables whose rows erasure and retention may delete.
const ERASABLE: [&str; 2] = ["sealog_subject_keys", "sealog_quarantine_payloads"];

/// A key no other application's advisory lock is likely to use ("sealog" in ASCII).
const LOCK_KEY: i64 = 0x7365_616c_6f67;

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(String),
    #[error("PostgreSQL: {0}")]
    Sql(String),
    #[error(
        "migration {version} ({name}) was applied with other contents than this version of Sealog has: the schema was changed by hand or by another version"
    )]
    Changed { version: i32, name: &'static str },
    #[error(
        "the database has migration {0}, which this version of Sealog does not know: it is older than the schema"
    )]
    Newer(i32),
    #[error(
        "invalid role name {0:?}: lowercase letters, digits and _, starting with a letter or _"
    )]
    BadRole(String),
    #[error(
        "partition(s) {} of sealog_records lack the trigger that refuses TRUNCATE: run sealog migrate, which adds it",
        .0.join(", ")
    )]
    Unprotected(Vec<String>),
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The server's own message (a trigger's, a constraint's) says more than the driver's.
        match e.as_db_error() {
            Some(db) if transient(db.code()) => PgError::Connect(db.message().to_string()),
            Some(db) => PgError::Sql(db.message().to_string()),
            None => PgError::Connect(e.to_string()),
        }
    }
}

/// An error that says the server cannot answer now, not that the request or the data is
/// wrong: connection (08), rollback for serialization (40), resources (53), an operator's
/// shutdown (57), a lock not available (55P03).
pub(crate) fn transient(code: &tokio_postgres::error::SqlState) -> bool {
    let code = code.code();
    ["08", "40", "53", "57"].iter().any(|c| code.starts_with(c)) || code == "55P03"
}

/// What `migrate` did: each migration and whether it was applied now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    pub applied: Vec<(i32, &'static str, bool)>,
    pub app_role: String,
}

/// Runs `f` to completion on `rt` from synchronous code, also when that code was itself
/// called on a runtime's worker thread (a server's handler): the worker is handed over first.
pub(crate) fn block_on<F: std::future::Future>(rt: &tokio::runtime::Runtime, f: F) -> F::Output {
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::task::block_in_place(|| rt.block_on(f))
    } else {
        rt.block_on(f)
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, PgError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PgError::Connect(e.to_string()))
}

pub(crate) async fn connect(conninfo: &str) -> Result<Client, PgError> {
    let (client, connection) = tokio_postgres::connect(conninfo, NoTls)
        .await
        .map_err(|e| PgError::Connect(e.to_string()))?;
    tokio::spawn(connection);
    Ok(client)
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn valid_role(role: &str) -> bool {
    let mut chars = role.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && role.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Applies every migration not applied yet, in one transaction under an advisory lock, then
/// (again, so a new table is covered) grants the application role what it may do.
pub fn migrate(conninfo: &str, app_role: &str) -> Result<Migrated, PgError> {
    if !valid_role(app_role) {
        return Err(PgError::BadRole(app_role.to_string()));
    }
    runtime()?.block_on(async {
        let mut client = connect(conninfo).await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS sealog_schema_migrations (
                version INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                sha256 TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await?;
        let rows = tx
            .query("SELECT version, sha256 FROM sealog_schema_migrations", &[])
            .await?;
        let done: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let mut applied = Vec::new();
        for (version, name, sql, missing) in plan(&done)? {
            if missing {
                tx.batch_execute(sql).await?;
                tx.execute(
                    "INSERT INTO sealog_schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
                    &[&version, &name, &sha256_hex(sql)],
                )
                .await?;
            }
            applied.push((version, name, missing));
        }
        // Partitions made by hand since the last run get the trigger their parent's cannot
        // give them.
        tx.execute("SELECT sealog_protect_partitions()", &[]).await?;
        grant(&tx, app_role).await?;
        tx.commit().await?;
        Ok(Migrated {
            applied,
            app_role: app_role.to_string(),
        })
    })
}

async fn grant(tx: &tokio_postgres::Transaction<'_>, role: &str) -> Result<(), PgError> {
    let exists = tx
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .await?
        .is_some();
    let mut sql = String::new();
    if !exists {
        // NOLOGIN: the servers' login role is made a member of it by the DBA.
        sql.push_str(&format!("CREATE ROLE {role} NOLOGIN;\n"));
    }
    let append_only = APPEND_ONLY.join(", ");
    let erasable = ERASABLE.join(", ");
    sql.push_str(&format!(
        "REVOKE ALL ON {append_only}, {erasable}, sealog_log_state, sealog_pruned, sealog_schema_migrations FROM {role};
         GRANT SELECT, INSERT ON {append_only} TO {role};
         GRANT SELECT ON sealog_pruned TO {role};
         GRANT EXECUTE ON FUNCTION sealog_prune(TEXT, BIGINT, BYTEA, BYTEA, BYTEA[]) TO {role};
         GRANT SELECT, INSERT, DELETE ON {erasable} TO {role};
         GRANT SELECT, UPDATE ON sealog_log_state TO {role};
         GRANT SELECT ON sealog_schema_migrations TO {role};"
    ));
    tx.batch_execute(&sql).await?;
    Ok(())
}

/// The migrations a database lacks (checked when a server starts: it refuses to run on a
/// schema that is behind, or was changed, or that has a partition of the records no trigger
/// keeps from TRUNCATE).
pub fn pending(conninfo: &str) -> Result<Vec<i32>, PgError> {
    runtime()?.block_on(async {
        let client = connect(conninfo).await?;
        let known = client
            .query_opt(
                "SELECT 1 FROM pg_tables WHERE tablename = 'sealog_schema_migrations'",
                &[],
            )
            .await?
            .is_some();
        let done: Vec<(i32, String)> = if known {
            client
                .query("SELECT version, sha256 FROM sealog_schema_migrations", &[])
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        } else {
            Vec::new()
        };
        let missing: Vec<i32> = plan(&done)?
            .into_iter()
            .filter(|m| m.3)
            .map(|m| m.0)
            .collect();
        if missing.is_empty() {
            let bare: Vec<String> = client
                .query(UNPROTECTED, &[])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if !bare.is_empty() {
                return Err(PgError::Unprotected(bare));
            }
        }
        Ok(missing)
    })
}

/// The partitions of the records without their own BEFORE TRUNCATE trigger (a statement
/// trigger of the partitioned parent does not fire for a partition truncated by name).
const UNPROTECTED: &str =
    "SELECT t.relid::regclass::text FROM pg_partition_tree('sealog_records') t
    WHERE t.parentrelid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_trigger g
      WHERE g.tgrelid = t.relid AND g.tgname = 'sealog_records_no_truncate')
    ORDER BY 1";

/// Each known migration and whether the database lacks it, given the (version, SHA-256)
/// pairs it has applied: one applied with other contents, or one this version does not
/// know, is refused.
fn plan(done: &[(i32, String)]) -> Result<Vec<(i32, &'static str, &'static str, bool)>, PgError> {
    if let Some((v, _)) = done
        .iter()
        .find(|(v, _)| !MIGRATIONS.iter().any(|m| m.0 == *v))
    {
        return Err(PgError::Newer(*v));
    }
    MIGRATIONS
        .iter()
        .map(
            |&(version, name, sql)| match done.iter().find(|(v, _)| *v == version) {
                Some((_, sum)) if *sum == sha256_hex(sql) => Ok((version, name, sql, false)),
                Some(_) => Err(PgError::Changed { version, name }),
                None => Ok((version, name, sql, true)),
            },
        )
        .collect()
}

/// A connection URL or string with its password replaced, for messages and logs.
pub fn redacted(conninfo: &str) -> String {
    if let Some((scheme, rest)) = conninfo.split_once("://")
        && let Some((auth, host)) = rest.split_once('@')
    {
        let user = auth.split(':').next().unwrap_or_default();
        let hidden = if auth.contains(':') { ":***" } else { "" };
        return format!("{scheme}://{user}{hidden}@{host}");
    }
    conninfo
        .split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***"
            } else {
                kv
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `--data` names a PostgreSQL database rather than a data directory.
pub fn is_database_url(data: &str) -> bool {
    data.starts_with("postgresql://") || data.starts_with("postgres://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_plain_identifiers() {
        assert!(valid_role("sealog_app"));
        assert!(valid_role("_x9"));
        assert!(!valid_role("App"));
        assert!(!valid_role("x; DROP TABLE sealog_records"));
        assert!(!valid_role(""));
        assert!(!valid_role(&"a".repeat(64)));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redacted("postgresql://u:secret@h:5432/db"),
            "postgresql://u:***@h:5432/db"
        );
        assert_eq!(redacted("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redacted("host=h user=u password=secret dbname=d"),
            "host=h user=u password=*** dbname=d"
        );
    }

    #[test]
    fn database_urls_are_told_from_directories() {
        assert!(is_database_url("postgresql://u@h/db"));
        assert!(is_database_url("postgres://h/db"));
        assert!(!is_database_url("./sealog-data"));
        assert!(!is_database_url("postgresql-data"));
    }
}
