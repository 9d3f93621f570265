//! Connections from synchronous code: each backend object owns a small runtime; a connection
//! the server dropped (a restart) is made again on next use, and what the driver reports is
//! sorted into "unavailable, retry" and "refused".

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use sealog_store::StoreError;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use crate::block_on;

/// A connection that is made again when the server dropped it (a restart), with the
/// statements prepared on it: a read then costs one round trip, not a parse first.
pub(crate) struct Conn {
    pub(crate) conninfo: String,
    session: RwLock<Arc<Session>>,
}

pub(crate) struct Session {
    pub(crate) client: Client,
    statements: Mutex<HashMap<String, Statement>>,
}

/// Distinct statements kept per connection (a scan's text varies with its filters).
const STATEMENTS_MAX: usize = 256;

impl Session {
    fn new(client: Client) -> Arc<Session> {
        Arc::new(Session {
            client,
            statements: Mutex::new(HashMap::new()),
        })
    }

    /// `sql` prepared on this connection, once.
    pub(crate) fn prepared(
        &self,
        rt: &tokio::runtime::Runtime,
        sql: &str,
    ) -> Result<Statement, StoreError> {
        if let Some(s) = self.statements.lock().expect("statements lock").get(sql) {
            return Ok(s.clone());
        }
        let statement = block_on(rt, self.client.prepare(sql)).map_err(unavailable)?;
        let mut cache = self.statements.lock().expect("statements lock");
        if cache.len() >= STATEMENTS_MAX {
            cache.clear();
        }
        cache.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

impl Conn {
    pub(crate) fn open(rt: &tokio::runtime::Runtime, conninfo: &str) -> Result<Conn, StoreError> {
        Ok(Conn {
            conninfo: conninfo.to_string(),
            session: RwLock::new(Session::new(connect_on(rt, conninfo)?)),
        })
    }

    pub(crate) fn session(&self, rt: &tokio::runtime::Runtime) -> Result<Arc<Session>, StoreError> {
        let current = self.session.read().expect("connection lock").clone();
        if !current.client.is_closed() {
            return Ok(current);
        }
        let mut slot = self.session.write().expect("connection lock");
        if slot.client.is_closed() {
            *slot = Session::new(connect_on(rt, &self.conninfo)?);
        }
        Ok(slot.clone())
    }

    pub(crate) fn query(
        &self,
        rt: &tokio::runtime::Runtime,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let session = self.session(rt)?;
        let statement = session.prepared(rt, sql)?;
        block_on(rt, session.client.query(&statement, params)).map_err(unavailable)
    }
}

pub(crate) fn connect_on(
    rt: &tokio::runtime::Runtime,
    conninfo: &str,
) -> Result<Client, StoreError> {
    block_on(rt, async {
        let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
            .await
            .map_err(unavailable)?;
        rt.spawn(connection);
        // Every statement is a few index probes; compiling one (JIT, which the planner
        // turns on by cost estimates that a fresh log's missing statistics inflate) took
        // hundreds of milliseconds to save microseconds.
        client
            .batch_execute("SET jit = off")
            .await
            .map_err(unavailable)?;
        Ok(client)
    })
}

/// A driver error as the contract's: the server gone or refusing for now is `Unavailable`
/// (nothing acknowledged; retry), anything else a fault of the database's contents.
pub(crate) fn unavailable(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) if !crate::transient(db.code()) => {
            StoreError::Corrupted(format!("the database refused: {}", db.message()))
        }
        Some(db) => StoreError::Unavailable(db.message().to_string()),
        None => StoreError::Unavailable(e.to_string()),
    }
}

/// The runtime that drives a backend object's connections: one worker, so any number of
/// threads may block on it at once.
pub(crate) fn io_runtime() -> Result<tokio::runtime::Runtime, StoreError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sealog-pg-io")
        .enable_all()
        .build()
        .map_err(|e| StoreError::Poisoned(format!("cannot start a runtime: {e}")))
}
