//! The store's errors. `Corrupted` is its own kind: it means the files disagree with
//! themselves, never that the caller did something wrong.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        // Not `source`: the message already carries it, and a source would print it twice.
        cause: std::io::Error,
    },
    #[error("data directory {dir} is in use by another sealog process{holder}")]
    Locked { dir: PathBuf, holder: String },
    #[error("corrupted log: {0}")]
    Corrupted(String),
    #[error("the store stopped accepting writes after an I/O failure: {0}")]
    Poisoned(String),
    #[error("the store is closed")]
    Closed,
    #[error("the store is open read-only (another process writes it)")]
    ReadOnly,
    #[error("{0}")]
    InvalidArgument(String),
    /// A cut at a tree size the log has not reached: no moment of it, though the log may
    /// reach it later.
    #[error("as of tree size {size}: past the end of the log ({len} records)")]
    PastTheEnd { size: u64, len: u64 },
    /// The record was pruned by retention: its stub (here) keeps its leaf hash, id, times
    /// and link, not its body.
    #[error("record {} (sha256:{}) was pruned by retention", .0.seq, hex::encode(.0.id))]
    Pruned(Box<crate::segment::Stub>),
    /// The backend cannot be reached now (a database restarting, a lost connection): nothing
    /// was acknowledged, and the same request may be sent again (appends dedupe by id).
    #[error("the log's database is unavailable: {0}")]
    Unavailable(String),
    /// The log has a key but its private half is not here (a backup restored without
    /// secrets): it can be read and verified, not written.
    #[error("{0}")]
    NoSigningKey(String),
}

impl StoreError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.to_path_buf(),
            cause: source,
        }
    }
}
