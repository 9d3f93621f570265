//! Connections from synchronous code: each backend object owns a small runtime; a connection
//! the server dropped (a restart) is made again on next use, and what the driver reports is
//! sorted into "unavailable, retry" and "refused".

use std::sync::{Arc, RwLock};

use sealog_store::StoreError;
use tokio_postgres::Client;

use crate::block_on;

/// A connection that is made again when the server dropped it (a restart).
pub(crate) struct Conn {
    pub(crate) conninfo: String,
    pub(crate) client: RwLock<Arc<Client>>,
}

impl Conn {
    pub(crate) fn open(rt: &tokio::runtime::Runtime, conninfo: &str) -> Result<Conn, StoreError> {
        Ok(Conn {
            conninfo: conninfo.to_string(),
            client: RwLock::new(Arc::new(connect_on(rt, conninfo)?)),
        })
    }

    pub(crate) fn get(&self, rt: &tokio::runtime::Runtime) -> Result<Arc<Client>, StoreError> {
        let current = self.client.read().expect("connection lock").clone();
        if !current.is_closed() {
            return Ok(current);
        }
        let mut slot = self.client.write().expect("connection lock");
        if slot.is_closed() {
            *slot = Arc::new(connect_on(rt, &self.conninfo)?);
        }
        Ok(slot.clone())
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
