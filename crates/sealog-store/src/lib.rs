//! Sealog's embedded append-only store.
//!
//! The log is a directory of segment files (the source of truth); everything else here —
//! positions, indexes — is derived from it and rebuilt after a crash. One writer thread
//! owns appends and commits them in groups that share one fsync; readers never block it
//! for longer than an index insert.
//!
//! *Invariant*: a record is acknowledged only after its frame is durable (or, with
//! `Durability::Os`, written), and no code path rewrites or deletes a committed frame.

mod error;
mod index;
mod lock;
mod positions;
mod query;
mod recovery;
pub mod segment;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use sealog_model::{PreparedEvent, RecordId};

pub use error::StoreError;
pub use query::{LIMIT_MAX, Page, Query};
pub use recovery::{Cut, Recovery};

use index::Index;
use positions::Positions;

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// After fdatasync: the record survives power loss. The default.
    #[default]
    Fsync,
    /// After write(2) only: a crash of the machine (not of the process) can lose records.
    Os,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub durability: Durability,
    /// A segment is sealed once it has grown past this many bytes.
    pub segment_bytes_max: u64,
    /// Events one commit may take; bounds a batch's memory and latency.
    pub batch_events_max: usize,
    /// Records indexed in memory before they are written as an index run: bounds memory
    /// and the replay after a crash.
    pub memtable_records_max: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config { durability: Durability::Fsync, segment_bytes_max: 256 << 20, batch_events_max: 16_384, memtable_records_max: 131_072 }
    }
}

/// The result of appending one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Appended { seq: u64, record_id: RecordId },
    Duplicate { seq: u64, record_id: RecordId },
}

impl Outcome {
    pub fn seq(&self) -> u64 {
        match self {
            Outcome::Appended { seq, .. } | Outcome::Duplicate { seq, .. } => *seq,
        }
    }
}

/// Counters a benchmark or the metrics endpoint reads.
#[derive(Debug, Default)]
pub struct Stats {
    pub commits: AtomicU64,
    pub committed_events: AtomicU64,
    pub fsyncs: AtomicU64,
    /// Writer time by phase, nanoseconds: framing (dedupe, record text, checksums), write(2),
    /// fsync, index insert, and index flushes.
    pub frame_ns: AtomicU64,
    pub write_ns: AtomicU64,
    pub sync_ns: AtomicU64,
    pub index_ns: AtomicU64,
    pub flush_ns: AtomicU64,
}

pub(crate) struct Shared {
    pub(crate) log_dir: PathBuf,
    pub(crate) index: RwLock<Index>,
    pub(crate) positions: Positions,
    /// (first seq, read handle) per segment, ascending.
    pub(crate) segments: RwLock<Vec<(u64, Arc<File>)>>,
    /// Records visible to readers: every seq below is durable, indexed and positioned.
    pub(crate) committed: AtomicU64,
    pub(crate) poisoned: Mutex<Option<String>>,
    pub(crate) stats: Stats,
}

pub struct Store {
    shared: Arc<Shared>,
    tx: Option<SyncSender<writer::Request>>,
    writer: Option<JoinHandle<()>>,
    recovery: Recovery,
    dir: PathBuf,
    _lock: File,
}

impl Store {
    /// Opens (creating on first use) the store in `dir`, recovering from any crash.
    pub fn open(dir: &Path, config: Config) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let lock = lock::acquire(dir)?;
        let (shared, active, recovery) = recovery::recover(dir, config.memtable_records_max)?;
        let shared = Arc::new(shared);
        let (tx, rx) = mpsc::sync_channel(1024);
        let writer = writer::spawn(shared.clone(), active, config, rx)?;
        Ok(Store { shared, tx: Some(tx), writer: Some(writer), recovery, dir: dir.to_path_buf(), _lock: lock })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What opening found and repaired.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// Records in the log.
    pub fn len(&self) -> u64 {
        self.shared.committed.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends events, returning one outcome each in order, once they are durable.
    /// Safe to call from many threads at once: concurrent calls share commits.
    pub fn append(&self, events: Vec<PreparedEvent>) -> Result<Vec<Outcome>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = mpsc::sync_channel(1);
        let tx = self.tx.as_ref().ok_or(StoreError::Closed)?;
        tx.send(writer::Request { events, reply }).map_err(|_| StoreError::Closed)?;
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    /// One record's bytes by seq.
    pub fn get(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if seq >= self.len() {
            return Ok(None);
        }
        let mut buf = Vec::new();
        query::read_record(&self.shared, seq, &mut buf)?;
        Ok(Some(buf))
    }

    pub fn seq_of(&self, id: &RecordId) -> Option<u64> {
        let seq = self.shared.index.read().expect("index lock").lookup_rid(&id.0)?;
        (seq < self.len()).then_some(seq)
    }

    /// The size the log had at time `t` (ns): the records ingested at or before it.
    pub fn size_at(&self, t: i64) -> Result<u64, StoreError> {
        self.shared.positions.first_ingested_at_or_after(t.saturating_add(1), self.len())
    }

    pub fn query(&self, q: &Query) -> Result<Page, StoreError> {
        query::run(&self.shared, q)
    }

    /// Stops the writer after it has committed everything sent, and writes the index so the
    /// next open need not replay.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), StoreError> {
        drop(self.tx.take());
        if let Some(w) = self.writer.take() {
            w.join().map_err(|_| StoreError::Poisoned("the writer thread panicked".into()))?;
        }
        if self.shared.poisoned.lock().expect("poison lock").is_some() {
            return Ok(());
        }
        self.shared.positions.sync()?;
        self.shared.index.write().expect("index lock").flush()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
