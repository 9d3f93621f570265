//! Sealog's embedded append-only store.
//!
//! The log is a directory of segment files (the source of truth); everything else here —
//! positions, indexes — is derived from it and rebuilt after a crash. One writer thread
//! owns appends and commits them in groups that share one fsync; readers never block it
//! for longer than an index insert.
//!
//! *Invariant*: a record is acknowledged only after its frame is durable (or, with
//! `Durability::Os`, written), and no code path rewrites or deletes a committed frame.

mod checkpoints;
mod error;
mod index;
mod lock;
mod positions;
mod query;
mod recovery;
pub mod segment;
mod tree;
pub mod verify;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use sealog_model::{Deriver, PreparedEvent, RecordId};

pub use checkpoints::{SignedCheckpoint, open_checkpoint, read_log as read_checkpoint_log};
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

#[derive(Clone)]
pub struct Config {
    pub durability: Durability,
    /// A segment is sealed once it has grown past this many bytes.
    pub segment_bytes_max: u64,
    /// Events one commit may take; bounds a batch's memory and latency.
    pub batch_events_max: usize,
    /// Records indexed in memory before they are written as an index run: bounds memory
    /// and the replay after a crash.
    pub memtable_records_max: u64,
    /// How often the writer signs a checkpoint while appends arrive; one is always signed
    /// on close. Zero signs one per commit.
    pub checkpoint_interval: Duration,
    /// How scope, subject and axes are derived from an event, when writing and when
    /// rebuilding indexes from the log.
    pub deriver: Arc<dyn Deriver>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("durability", &self.durability)
            .field("segment_bytes_max", &self.segment_bytes_max)
            .field("batch_events_max", &self.batch_events_max)
            .field("memtable_records_max", &self.memtable_records_max)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("deriver", &self.deriver.fingerprint())
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            durability: Durability::Fsync,
            segment_bytes_max: 256 << 20,
            batch_events_max: 16_384,
            memtable_records_max: 131_072,
            checkpoint_interval: Duration::from_secs(1),
            deriver: Arc::new(sealog_model::EnvelopeOnly),
        }
    }
}

/// The result of appending one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Appended {
        seq: u64,
        record_id: RecordId,
    },
    Duplicate {
        seq: u64,
        record_id: RecordId,
    },
    /// Not appended: the event breaks the supersedes rules against the log as it stood.
    Refused {
        record_id: RecordId,
        refusal: ChainRefusal,
    },
}

/// Why a correction (or a would-be second record of a unique subject) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainRefusal {
    /// A second record for a `unique_per_subject` subject that does not name what it
    /// supersedes; `existing` is the seq of the subject's first record.
    MissingLink { existing: u64 },
    /// The named target does not exist, or is in another tenant, scope or subject.
    InvalidLink { why: &'static str },
    /// The named target was already superseded, by the record at seq `by`.
    StaleLink { by: u64 },
}

impl ChainRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            ChainRefusal::MissingLink { .. } => "MISSING_SUPERSEDES_LINK",
            ChainRefusal::InvalidLink { .. } => "INVALID_SUPERSEDES_LINK",
            ChainRefusal::StaleLink { .. } => "STALE_SUPERSEDES_LINK",
        }
    }

    pub fn message(&self) -> String {
        match self {
            ChainRefusal::MissingLink { existing } => format!(
                "this subject already has a record (seq {existing}); a different record for it must name the one it supersedes"
            ),
            ChainRefusal::InvalidLink { why } => (*why).to_string(),
            ChainRefusal::StaleLink { by } => {
                format!(
                    "the target was already superseded, by seq {by}; supersede the head of the chain"
                )
            }
        }
    }
}

impl Outcome {
    /// The record's seq in the log, unless it was refused.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Outcome::Appended { seq, .. } | Outcome::Duplicate { seq, .. } => Some(*seq),
            Outcome::Refused { .. } => None,
        }
    }

    pub fn record_id(&self) -> RecordId {
        match self {
            Outcome::Appended { record_id, .. }
            | Outcome::Duplicate { record_id, .. }
            | Outcome::Refused { record_id, .. } => *record_id,
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
    /// fsync, index and tree (insert, freeze, checkpoints); and the background flusher's time
    /// writing and merging index runs.
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
    pub(crate) tree: tree::TreeFiles,
    pub(crate) checkpoints: checkpoints::Checkpoints,
}

/// Writes the index memtable as a run. Everything the manifest will vouch for — positions
/// and tree nodes up to the index's end — is made durable first.
pub(crate) fn flush_durably(
    positions: &Positions,
    tree: &tree::TreeFiles,
    index: &mut Index,
) -> Result<(), StoreError> {
    positions.sync()?;
    tree.sync()?;
    index.flush()
}

impl Shared {
    pub(crate) fn root(&self, size: u64) -> Result<sealog_merkle::Hash, StoreError> {
        sealog_merkle::root(size, &self.tree)
            .map_err(|e| StoreError::Corrupted(format!("tree: {e}")))
    }
}

pub struct Store {
    shared: Arc<Shared>,
    tx: Option<SyncSender<writer::Request>>,
    writer: Option<JoinHandle<()>>,
    recovery: Recovery,
    dir: PathBuf,
    _lock: lock::DirLock,
}

impl Store {
    /// Opens (creating on first use) the store in `dir`, recovering from any crash.
    pub fn open(dir: &Path, config: Config) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let lock = lock::acquire(dir)?;
        let (shared, active, tree, recovery) =
            recovery::recover(dir, config.memtable_records_max, &*config.deriver)?;
        let shared = Arc::new(shared);
        let (tx, rx) = mpsc::sync_channel(1024);
        let writer = writer::spawn(shared.clone(), active, tree, config, rx)?;
        Ok(Store {
            shared,
            tx: Some(tx),
            writer: Some(writer),
            recovery,
            dir: dir.to_path_buf(),
            _lock: lock,
        })
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
        tx.send(writer::Request { events, reply })
            .map_err(|_| StoreError::Closed)?;
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
        let seq = self
            .shared
            .index
            .read()
            .expect("index lock")
            .lookup_rid(&id.0)?;
        (seq < self.len()).then_some(seq)
    }

    /// The size the log had at time `t` (ns): the records ingested at or before it.
    pub fn size_at(&self, t: i64) -> Result<u64, StoreError> {
        self.shared
            .positions
            .first_ingested_at_or_after(t.saturating_add(1), self.len())
    }

    pub fn query(&self, q: &Query) -> Result<Page, StoreError> {
        query::run(&self.shared, q)
    }

    /// The verifier key of this log's checkpoints, in C2SP note format.
    pub fn verifier_key(&self) -> String {
        self.shared.checkpoints.verifier().to_vkey()
    }

    /// The newest signed checkpoint, signing one first if the log has grown past it.
    pub fn checkpoint(&self) -> Result<SignedCheckpoint, StoreError> {
        let size = self.len();
        if let Some(latest) = self.shared.checkpoints.latest().filter(|l| l.size >= size) {
            return Ok(latest);
        }
        self.shared
            .checkpoints
            .publish(size, self.shared.root(size)?)
    }

    /// The tree head for any size up to the log's.
    pub fn root(&self, size: u64) -> Result<sealog_merkle::Hash, StoreError> {
        self.check_size(size)?;
        self.shared.root(size)
    }

    fn check_size(&self, size: u64) -> Result<(), StoreError> {
        if size > self.len() {
            return Err(StoreError::InvalidArgument(format!(
                "tree size {size} is larger than the log ({})",
                self.len()
            )));
        }
        Ok(())
    }

    /// RFC 9162 inclusion proof of record `seq` in the tree of `size` leaves.
    pub fn inclusion_proof(
        &self,
        seq: u64,
        size: u64,
    ) -> Result<Vec<sealog_merkle::Hash>, StoreError> {
        self.check_size(size)?;
        sealog_merkle::inclusion_proof(seq, size, &self.shared.tree)
            .map_err(|e| StoreError::InvalidArgument(e.to_string()))
    }

    /// RFC 9162 consistency proof between tree sizes `old` and `new`.
    pub fn consistency_proof(
        &self,
        old: u64,
        new: u64,
    ) -> Result<Vec<sealog_merkle::Hash>, StoreError> {
        self.check_size(new)?;
        sealog_merkle::consistency_proof(old, new, &self.shared.tree)
            .map_err(|e| StoreError::InvalidArgument(e.to_string()))
    }

    /// A C2SP tlog-tiles hash tile: `width` hashes of tree level `8·level` from `256·index`,
    /// for the tree of the latest checkpoint.
    pub fn tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<u8>, StoreError> {
        let size = self.shared.checkpoints.latest().map_or(0, |c| c.size);
        if sealog_merkle::tiles::tile_width(level, index, size) != Some(width) {
            return Err(StoreError::InvalidArgument(format!(
                "no tile {level}/{index} of width {width} in a tree of {size}"
            )));
        }
        self.shared
            .tree
            .read_range(usize::from(level) * 8, index * 256, u64::from(width))
    }

    /// A C2SP tlog-tiles entry bundle: records `256·index ..` (`width` of them), each
    /// prefixed by its length as a big-endian u16.
    pub fn entry_bundle(&self, index: u64, width: u16) -> Result<Vec<u8>, StoreError> {
        let size = self.shared.checkpoints.latest().map_or(0, |c| c.size);
        if sealog_merkle::tiles::tile_width(0, index, size) != Some(width) {
            return Err(StoreError::InvalidArgument(format!(
                "no entry bundle {index} of width {width} in a tree of {size}"
            )));
        }
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for seq in index * 256..index * 256 + u64::from(width) {
            query::read_record(&self.shared, seq, &mut buf)?;
            let len = u16::try_from(buf.len()).map_err(|_| {
                StoreError::InvalidArgument(format!(
                    "record {seq} is {} bytes, too long for a tlog-tiles entry bundle",
                    buf.len()
                ))
            })?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&buf);
        }
        Ok(out)
    }

    /// Stops the writer after it has committed everything sent, and writes the index so the
    /// next open need not replay.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.shutdown()
    }

    /// Runs once: `close` and then `Drop` both call it, and the second has nothing to do.
    fn shutdown(&mut self) -> Result<(), StoreError> {
        drop(self.tx.take());
        let Some(w) = self.writer.take() else {
            return Ok(());
        };
        w.join()
            .map_err(|_| StoreError::Poisoned("the writer thread panicked".into()))?;
        if self.shared.poisoned.lock().expect("poison lock").is_some() {
            return Ok(());
        }
        let mut index = self.shared.index.write().expect("index lock");
        flush_durably(&self.shared.positions, &self.shared.tree, &mut index)?;
        drop(index);
        self.checkpoint().map(drop)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
