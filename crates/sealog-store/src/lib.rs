//! Sealog's embedded log engine.
//!
//! The log is a directory of segment files (the source of truth); everything else here —
//! positions, indexes over opaque keys, the Merkle tree's nodes — is derived from it and
//! rebuilt after a crash. One writer thread owns appends and commits them in groups that
//! share one fsync, running the caller's admission rule for each entry on that thread;
//! readers never block it for longer than an index insert.
//!
//! *Boundary*: no ingest semantics. What an event means, which keys it is found by and which
//! events may be appended are the caller's (`Indexer`, `Admission`); this crate stores,
//! proves, indexes and verifies.
//!
//! *Invariant*: a record is acknowledged only after its frame is durable (or, with
//! `Durability::Os`, written), and no code path rewrites or deletes a committed frame but
//! retention's, which replaces a pruned record with a stub of the same length that keeps its
//! leaf hash (`prune`).

mod checkpoints;
#[cfg(feature = "conformance")]
pub mod conformance;
mod contract;
mod durable;
mod error;
mod frame_windows;
pub mod handles;
mod index;
pub mod io;
mod lock;
mod positions;
mod priority;
mod prune;
mod query;
mod recovery;
pub mod segment;
mod tree;
mod uniform;
mod unique_ids;
pub mod verify;
mod writer;
pub mod zseg;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use sealog_model::LogLayout;

pub use checkpoints::{
    Extension, SignedCheckpoint, extensions_of, open_checkpoint, read_log as read_checkpoint_log,
};
pub use contract::{
    Admission, CheckpointSource, CoordinationRow, Entry, Id, Indexer, Key, LIMIT_MAX, LogRead,
    LogView, LogWrite, Outcome, Outcomes, Page, Postings, Scan, Stats, TableRow, Verdict, WithLeaf,
    with_leaf,
};
pub use error::StoreError;
pub use priority::prepare_below_the_writer;
pub use prune::Prune;
pub use recovery::{Cut, Recovery};
pub use segment::Stub;
pub use uniform::UniformMap;

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

/// How the engine runs; none of it changes what is stored.
#[derive(Debug, Clone)]
pub struct Config {
    pub durability: Durability,
    /// A segment is sealed once it has grown past this many bytes.
    pub segment_bytes_max: u64,
    /// Sealed segments are compressed in the background (blocks of records, each found by
    /// seq without a search; see `zseg`). Off, they stay as they were written.
    pub compress_sealed: bool,
    /// Events one commit may take; bounds a batch's memory and latency.
    pub batch_events_max: usize,
    /// Records indexed in memory before they are written as an index run: bounds memory
    /// and the replay after a crash.
    pub memtable_records_max: u64,
    /// How often the writer signs a checkpoint while appends arrive; one is always signed
    /// on close. Zero signs one per commit.
    pub checkpoint_interval: Duration,
    /// The log's signing key kept outside its directory (a file in the C2SP signer-key form,
    /// owner-only): the data directory then needs only `keys/log.pub`, so the data and the key
    /// can be held by different people.
    pub signing_key: Option<std::path::PathBuf>,
    /// The file operations that change the disk: the operating system's, or a test's.
    pub io: io::Io,
    /// A line each checkpoint the log signs carries after its root (see [`Extension`]).
    pub extension: Option<Extension>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            durability: Durability::Fsync,
            segment_bytes_max: 256 << 20,
            compress_sealed: true,
            batch_events_max: 16_384,
            memtable_records_max: 131_072,
            checkpoint_interval: Duration::from_secs(1),
            signing_key: None,
            io: io::Io::default(),
            extension: None,
        }
    }
}

/// The writer's counters, read by [`LogRead::stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) commits: AtomicU64,
    pub(crate) committed_events: AtomicU64,
    pub(crate) fsyncs: AtomicU64,
    pub(crate) frame_ns: AtomicU64,
    pub(crate) write_ns: AtomicU64,
    pub(crate) sync_ns: AtomicU64,
    pub(crate) index_ns: AtomicU64,
    pub(crate) flush_ns: AtomicU64,
    pub(crate) compressed_segments: AtomicU64,
    pub(crate) compress_pending: AtomicU64,
    pub(crate) compress_ns: AtomicU64,
    pub(crate) compress_failed: Mutex<Option<String>>,
}

pub(crate) struct Shared {
    pub(crate) layout: LogLayout,
    pub(crate) index: RwLock<Index>,
    pub(crate) positions: Positions,
    /// (first seq, read handle) per segment, ascending.
    pub(crate) segments: RwLock<Vec<(u64, Arc<segment::SegmentFile>)>>,
    /// Records visible to readers: every seq below is durable, indexed and positioned.
    pub(crate) committed: AtomicU64,
    pub(crate) poisoned: Mutex<Option<String>>,
    /// Held while retention rewrites segments: one rewrite at a time.
    pub(crate) pruning: Mutex<()>,
    pub(crate) counters: Counters,
    pub(crate) tree: tree::TreeFiles,
    pub(crate) checkpoints: checkpoints::Checkpoints,
    /// Opened by the writer (not read-only beside it).
    pub(crate) writable: bool,
    pub(crate) io: io::Io,
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

    /// What a read that found damage does before answering the error: in the writer, it
    /// stops writes (nothing derived can be trusted until the next opening) and leaves the
    /// marker that makes that opening rebuild every derived file from the log.
    pub(crate) fn noted<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(StoreError::Corrupted(why)) = &result
            && self.writable
        {
            let _ = std::fs::write(self.layout.rebuild_marker(), why.as_bytes());
            let mut poisoned = self.poisoned.lock().expect("poison lock");
            if poisoned.is_none() {
                *poisoned = Some(format!(
                    "a derived file is damaged ({why}); reopen the data directory (restart the server) to rebuild it from the log"
                ));
            }
        }
        result
    }

    /// The nodes of a tile of the newest checkpoint's tree (for an entry bundle, its
    /// records' leaf hashes), checked against its signed root before they leave: grouped
    /// into the fewest perfect subtrees, each proven with an audit path.
    fn check_tile(
        &self,
        level: u8,
        index: u64,
        nodes: Vec<sealog_merkle::Hash>,
    ) -> Result<(), StoreError> {
        let Some(cp) = self.checkpoints.latest() else {
            return Ok(());
        };
        sealog_merkle::tiles::verify_tile(level, index, &nodes, cp.size, &cp.root, &self.tree)
            .map_err(|e| {
                StoreError::Corrupted(format!(
                    "tile {level}/{index} does not agree with the signed checkpoint of size {} ({e}): the stored tree is damaged",
                    cp.size
                ))
            })
    }

    /// The root of the tree of `size` leaves, checked against the newest signed checkpoint:
    /// its own root at that size, or a consistency proof between the two. Stored nodes that
    /// no longer agree with the signature are an error, never a root handed out.
    pub(crate) fn trusted_root(&self, size: u64) -> Result<sealog_merkle::Hash, StoreError> {
        let computed = self.root(size)?;
        let Some(cp) = self.checkpoints.latest() else {
            return Ok(computed);
        };
        let disagree = |what: &str| {
            StoreError::Corrupted(format!(
                "the stored tree of size {size} {what} the signed checkpoint of size {}",
                cp.size
            ))
        };
        let proof = |old: u64, new: u64| {
            sealog_merkle::consistency_proof(old, new, &self.tree)
                .map_err(|e| StoreError::Corrupted(format!("tree: {e}")))
        };
        use std::cmp::Ordering::*;
        match size.cmp(&cp.size) {
            _ if size == 0 => {}
            Equal if computed != cp.root => return Err(disagree("does not match")),
            Equal => {}
            Less => sealog_merkle::verify_consistency(
                size,
                cp.size,
                &computed,
                &cp.root,
                &proof(size, cp.size)?,
            )
            .map_err(|_| disagree("is not a prefix of"))?,
            Greater if cp.size > 0 => sealog_merkle::verify_consistency(
                cp.size,
                size,
                &cp.root,
                &computed,
                &proof(cp.size, size)?,
            )
            .map_err(|_| disagree("does not extend"))?,
            Greater => {}
        }
        Ok(computed)
    }
}

/// The embedded store, generic over its caller's admission rule.
pub struct Store<A: Admission> {
    shared: Arc<Shared>,
    tx: Option<SyncSender<writer::Request<A>>>,
    writer: Option<JoinHandle<()>>,
    recovery: Recovery,
    /// What retention's stubs keep of a record's keys.
    indexer: Arc<dyn Indexer>,
    /// Held by the one process that writes; a read-only opening holds none.
    _lock: Option<lock::DirLock>,
}

impl<A: Admission> Store<A> {
    /// Opens (creating on first use) the store at `layout`, recovering from any crash. Holds
    /// the directory's lock until closed.
    pub fn open(
        layout: &LogLayout,
        config: Config,
        indexer: Arc<dyn Indexer>,
        admission: A,
    ) -> Result<Self, StoreError> {
        let dir = layout.root();
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let lock = lock::acquire(layout)?;
        let (shared, active, tree, recovery) = recovery::recover(layout, &config, &*indexer)?;
        let shared = Arc::new(shared);
        let (tx, rx) = mpsc::sync_channel(1024);
        let writer = writer::spawn(shared.clone(), active, tree, config, admission, rx)?;
        Ok(Store {
            shared,
            tx: Some(tx),
            writer: Some(writer),
            recovery,
            indexer,
            _lock: Some(lock),
        })
    }

    /// Opens the store for reading beside the process that writes it (or without one): takes
    /// no lock, changes no file, and sees the records that process had made durable when
    /// this call ran. What the index files do not cover is re-indexed in memory.
    pub fn open_read_only(
        layout: &LogLayout,
        config: &Config,
        indexer: Arc<dyn Indexer>,
    ) -> Result<Self, StoreError> {
        let (shared, recovery) =
            recovery::read_only(layout, config.memtable_records_max, &*indexer)?;
        Ok(Store {
            shared: Arc::new(shared),
            tx: None,
            writer: None,
            recovery,
            indexer,
            _lock: None,
        })
    }

    pub fn layout(&self) -> &LogLayout {
        &self.shared.layout
    }

    /// Whether this opening may append.
    pub fn is_writable(&self) -> bool {
        self.writer.is_some()
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

    /// The newest checkpoint's tree size, which bounds what tiles are served.
    fn tiled_size(&self) -> u64 {
        self.shared.checkpoints.latest().map_or(0, |c| c.size)
    }

    /// Commits what was sent, makes the derived state durable and signs a final checkpoint.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.shutdown()
    }

    /// Runs once: `close` and then `Drop` both call it, and the second has nothing to do.
    fn shutdown(&mut self) -> Result<(), StoreError> {
        // A store poisoned before the close has said why to the append that failed; one
        // poisoned while closing (the final checkpoint's write, fsync or rename failed) says
        // it here, or the failure would go unreported. Read before the channel closes: the
        // writer signs that checkpoint as soon as it sees the channel closed.
        let poisoned_before = self.shared.poisoned.lock().expect("poison lock").is_some();
        drop(self.tx.take());
        let Some(w) = self.writer.take() else {
            return Ok(());
        };
        w.join()
            .map_err(|_| StoreError::Poisoned("the writer thread panicked".into()))?;
        if let Some(why) = self.shared.poisoned.lock().expect("poison lock").clone() {
            return if poisoned_before {
                Ok(())
            } else {
                Err(StoreError::Poisoned(why))
            };
        }
        let mut index = self.shared.index.write().expect("index lock");
        flush_durably(&self.shared.positions, &self.shared.tree, &mut index)
    }
}

/// Whether a tile (or entry bundle) of `width` is the tile of `index`, or a prefix of it,
/// in the signed tree of `size`: a partial tile of every earlier checkpoint stays served (C2SP
/// tlog-tiles), so a client that read an older checkpoint never meets a 404 for its tiles.
fn signed_prefix(level: u8, index: u64, width: u16, size: u64) -> bool {
    sealog_merkle::tiles::tile_width(level, index, size).is_some_and(|w| (1..=w).contains(&width))
}

impl<A: Admission> Drop for Store<A> {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl<A: Admission> LogRead for Store<A> {
    fn len(&self) -> u64 {
        self.shared.committed.load(Ordering::Acquire)
    }

    fn get(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if seq >= self.len() {
            return Ok(None);
        }
        let mut buf = Vec::new();
        self.shared
            .noted(query::read_record(&self.shared, seq, &mut buf))?;
        Ok(Some(buf))
    }

    fn get_with_leaf(&self, seq: u64) -> Result<Option<WithLeaf>, StoreError> {
        Ok(self.get_many_with_leaves(&[seq])?.pop().flatten())
    }

    fn get_many_with_leaves(&self, seqs: &[u64]) -> Result<Vec<Option<WithLeaf>>, StoreError> {
        let records = self
            .shared
            .noted(query::read_many(&self.shared, seqs, true))?;
        records
            .into_iter()
            .map(|r| r.transpose().map(|b| b.map(with_leaf)))
            .collect()
    }

    fn seq_of(&self, id: &Id) -> Result<Option<u64>, StoreError> {
        let seq = self
            .shared
            .noted(self.shared.index.read().expect("index lock").lookup_rid(id))?;
        Ok(seq.filter(|&s| s < self.len()))
    }

    /// The record answers for itself: an index that names another record for the id (damage
    /// its checksums do not show, their having been made again) is an error, never the other
    /// record.
    fn get_by_id(&self, id: &Id) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(seq) = self.seq_of(id)? else {
            return Ok(None);
        };
        let Some(bytes) = self.get(seq)? else {
            return Ok(None);
        };
        let holds = sealog_model::record::read_stored(&bytes, |s| s.record_id.0 == *id);
        if matches!(holds, Ok(true)) {
            return Ok(Some(bytes));
        }
        self.shared.noted(Err(StoreError::Corrupted(format!(
            "the index names record {seq} for the id sha256:{}, which is not that record's",
            hex::encode(id)
        ))))
    }

    fn first_with(&self, key: &Key, below: u64) -> Result<Option<u64>, StoreError> {
        let below = below.min(self.len());
        let index = self.shared.index.read().expect("index lock");
        let found = self.shared.noted(index.postings(key, 0, below, 1))?;
        Ok(found.first().copied())
    }

    fn count_with(&self, key: &Key, from: u64, below: u64) -> Result<u64, StoreError> {
        let below = below.min(self.len());
        let index = self.shared.index.read().expect("index lock");
        self.shared.noted(index.count_in(key, from, below))
    }

    fn seqs_with(&self, key: &Key, from: u64, below: u64) -> Result<Vec<u64>, StoreError> {
        let below = below.min(self.len());
        let index = self.shared.index.read().expect("index lock");
        self.shared
            .noted(index.postings(key, from, below, usize::MAX))
    }

    fn seqs_in_event_window(&self, from: i64, to: i64, below: u64) -> Result<Vec<u64>, StoreError> {
        let below = below.min(self.len());
        let index = self.shared.index.read().expect("index lock");
        let mut seqs = self.shared.noted(index.time_range(from, to))?;
        seqs.retain(|&s| s < below);
        Ok(seqs)
    }

    fn scan(&self, scan: &Scan) -> Result<Page, StoreError> {
        self.shared.noted(query::run(&self.shared, scan))
    }

    fn size_at(&self, t: i64) -> Result<u64, StoreError> {
        self.shared.noted(
            self.shared
                .positions
                .first_ingested_at_or_after(t.saturating_add(1), self.len()),
        )
    }

    fn root(&self, size: u64) -> Result<sealog_merkle::Hash, StoreError> {
        self.check_size(size)?;
        self.shared.noted(self.shared.trusted_root(size))
    }

    /// Checked before it leaves: the proof must take the record's own leaf hash to the root
    /// the signed checkpoint vouches for.
    fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<sealog_merkle::Hash>, StoreError> {
        self.check_size(size)?;
        let proof = sealog_merkle::inclusion_proof(seq, size, &self.shared.tree)
            .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
        let checked = (|| {
            let mut record = Vec::new();
            let leaf = match query::read_record(&self.shared, seq, &mut record) {
                Ok(()) => sealog_merkle::leaf_hash(&record),
                // Its stub was just checked to keep the tree's leaf: a pruned record is
                // still proven.
                Err(StoreError::Pruned(_)) => {
                    use sealog_merkle::NodeReader;
                    self.shared
                        .tree
                        .node(0, seq)
                        .map_err(|e| StoreError::Corrupted(format!("tree: {e}")))?
                }
                Err(e) => return Err(e),
            };
            let root = self.shared.trusted_root(size)?;
            sealog_merkle::verify_inclusion(
                &leaf,
                seq,
                size,
                &root,
                &proof,
            )
            .map_err(|e| {
                StoreError::Corrupted(format!(
                    "the stored tree gives a wrong inclusion proof of record {seq} in size {size}: {e}"
                ))
            })
        })();
        self.shared.noted(checked)?;
        Ok(proof)
    }

    fn multiproof(&self, seqs: &[u64], size: u64) -> Result<Vec<sealog_merkle::Hash>, StoreError> {
        self.check_size(size)?;
        let proof = sealog_merkle::multiproof(seqs, size, &self.shared.tree)
            .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
        Ok(proof)
    }

    /// Checked before it leaves, against the trusted roots of both sizes.
    fn consistency_proof(
        &self,
        old: u64,
        new: u64,
    ) -> Result<Vec<sealog_merkle::Hash>, StoreError> {
        self.check_size(new)?;
        let proof = sealog_merkle::consistency_proof(old, new, &self.shared.tree)
            .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
        if old > 0 {
            let checked = (|| {
                let (a, b) = (
                    self.shared.trusted_root(old)?,
                    self.shared.trusted_root(new)?,
                );
                sealog_merkle::verify_consistency(old, new, &a, &b, &proof).map_err(|e| {
                    StoreError::Corrupted(format!(
                        "the stored tree gives a wrong consistency proof from {old} to {new}: {e}"
                    ))
                })
            })();
            self.shared.noted(checked)?;
        }
        Ok(proof)
    }

    fn checkpoint(&self) -> Result<SignedCheckpoint, StoreError> {
        let size = self.len();
        let latest = self.shared.checkpoints.latest();
        if let Some(l) = latest.as_ref().filter(|l| l.size >= size) {
            return Ok(l.clone());
        }
        let Some(tx) = self.tx.as_ref() else {
            // Read beside a writer: the newest it signed vouches for what it has made durable.
            return latest.ok_or_else(|| {
                StoreError::InvalidArgument(
                    "the log has no signed checkpoint yet; the process that writes it signs one within a second of its next append, and on close".into(),
                )
            });
        };
        ask_writer(tx, false)?;
        self.shared
            .checkpoints
            .latest()
            .ok_or_else(|| StoreError::Poisoned("the writer signed no checkpoint".into()))
    }

    fn latest_checkpoint(&self) -> Option<SignedCheckpoint> {
        self.shared.checkpoints.latest()
    }

    fn checkpoint_source(&self) -> CheckpointSource {
        let shared = self.shared.clone();
        Arc::new(move || shared.checkpoints.latest())
    }

    fn checkpoints(&self) -> Result<Vec<SignedCheckpoint>, StoreError> {
        let all = self.shared.noted(self.shared.checkpoints.all())?;
        Ok(all.into_iter().filter(|c| c.size <= self.len()).collect())
    }

    fn verifier_key(&self) -> String {
        self.shared.checkpoints.verifier().to_vkey()
    }

    fn cosigned(&self) -> Result<Vec<String>, StoreError> {
        self.shared.noted(self.shared.checkpoints.cosigned())
    }

    fn tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<u8>, StoreError> {
        let size = self.tiled_size();
        if !signed_prefix(level, index, width, size) {
            return Err(StoreError::InvalidArgument(format!(
                "no tile {level}/{index} of width {width} in a tree of {size}"
            )));
        }
        let tile =
            self.shared
                .tree
                .read_range(usize::from(level) * 8, index * 256, u64::from(width))?;
        let nodes: Vec<sealog_merkle::Hash> = tile
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32 bytes"))
            .collect();
        self.shared
            .noted(self.shared.check_tile(level, index, nodes))?;
        Ok(tile)
    }

    fn entry_bundle(&self, index: u64, width: u16) -> Result<Vec<u8>, StoreError> {
        let size = self.tiled_size();
        if !signed_prefix(0, index, width, size) {
            return Err(StoreError::InvalidArgument(format!(
                "no entry bundle {index} of width {width} in a tree of {size}"
            )));
        }
        let mut out = Vec::new();
        let mut buf = Vec::new();
        let mut leaves = Vec::with_capacity(usize::from(width));
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
            leaves.push(sealog_merkle::leaf_hash(&buf));
        }
        self.shared
            .noted(self.shared.check_tile(0, index, leaves))?;
        Ok(out)
    }

    fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (checkpoint_size, checkpoint_at) = match self.shared.checkpoints.latest_with_time() {
            Some((cp, at)) => (Some(cp.size), Some(at)),
            None => (None, None),
        };
        Stats {
            records: self.len(),
            commits: load(&c.commits),
            committed_events: load(&c.committed_events),
            fsyncs: load(&c.fsyncs),
            frame_ns: load(&c.frame_ns),
            write_ns: load(&c.write_ns),
            sync_ns: load(&c.sync_ns),
            index_ns: load(&c.index_ns),
            flush_ns: load(&c.flush_ns),
            compressed_segments: load(&c.compressed_segments),
            compress_pending: load(&c.compress_pending),
            compress_ns: load(&c.compress_ns),
            compress_failed: c.compress_failed.lock().expect("counters lock").clone(),
            checkpoint_size,
            checkpoint_at,
        }
    }

    fn recovery(&self) -> Recovery {
        self.recovery.clone()
    }
}

impl<A: Admission> LogWrite<A> for Store<A> {
    fn append(&self, entries: Vec<Entry<A::Claim>>) -> Result<Outcomes<A>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let tx = self.tx.as_ref().ok_or(StoreError::ReadOnly)?;
        let (reply, rx) = mpsc::sync_channel(1);
        tx.send(writer::Request {
            entries,
            sign: false,
            roll: false,
            reply,
        })
        .map_err(|_| StoreError::Closed)?;
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    fn add_cosigned(&self, note: &str) -> Result<(), StoreError> {
        if self.tx.is_none() {
            return Err(StoreError::ReadOnly);
        }
        let cp = self
            .shared
            .checkpoints
            .open_known(note)
            .map_err(StoreError::InvalidArgument)?;
        if cp.size > self.len() || self.shared.trusted_root(cp.size)? != cp.root {
            return Err(StoreError::InvalidArgument(format!(
                "the cosigned checkpoint of size {} is not one of this log's tree",
                cp.size
            )));
        }
        self.shared.checkpoints.add_cosigned(note, &cp)
    }

    fn prepare_key_rotation(&self) -> Result<String, StoreError> {
        if self.tx.is_none() {
            return Err(StoreError::ReadOnly);
        }
        let next = self.shared.checkpoints.prepare_rotation()?;
        Ok(next.verifier().to_vkey())
    }

    fn finish_key_rotation(&self) -> Result<String, StoreError> {
        let tx = self.tx.as_ref().ok_or(StoreError::ReadOnly)?;
        // The checkpoint both keys sign covers everything committed, the record too.
        ask_writer(tx, false)?;
        let old = self.shared.checkpoints.finish_rotation()?;
        Ok(old.to_vkey())
    }

    fn abandon_key_rotation(&self) -> Result<(), StoreError> {
        if self.tx.is_none() {
            return Err(StoreError::ReadOnly);
        }
        self.shared.checkpoints.abandon_rotation()
    }

    fn pending_key_rotation(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .shared
            .checkpoints
            .pending_rotation()?
            .map(|s| s.verifier().to_vkey()))
    }

    fn prune(&self, records: &[Prune]) -> Result<u64, StoreError> {
        let tx = self.tx.as_ref().ok_or(StoreError::ReadOnly)?;
        let newest = records.iter().map(|r| r.seq).max();
        let active = self
            .shared
            .segments
            .read()
            .expect("segments lock")
            .last()
            .map_or(0, |s| s.0);
        if newest.is_some_and(|s| s >= active) {
            // Seal the segment being appended to, so what it holds may be rewritten.
            ask_writer(tx, true)?;
        }
        let pruned = prune::prune(&self.shared, &*self.indexer, records, self.len());
        self.shared.noted(pruned)
    }

    fn close(self: Box<Self>) -> Result<(), StoreError> {
        Store::close(*self)
    }
}

/// Has the writer sign a checkpoint of everything committed (and, with `roll`, seal the
/// segment being appended to), and waits until it has.
fn ask_writer<A: Admission>(
    tx: &SyncSender<writer::Request<A>>,
    roll: bool,
) -> Result<(), StoreError> {
    let (reply, rx) = mpsc::sync_channel(1);
    tx.send(writer::Request {
        entries: Vec::new(),
        sign: true,
        roll,
        reply,
    })
    .map_err(|_| StoreError::Closed)?;
    rx.recv().map_err(|_| StoreError::Closed)??;
    Ok(())
}

/// Opens read-only if another process holds the directory, for reads beside a server.
pub fn is_locked_elsewhere(e: &StoreError) -> bool {
    matches!(e, StoreError::Locked { .. })
}

/// Whether a data directory holds a log at all (a read-only opening needs one).
pub fn exists(layout: &LogLayout) -> bool {
    layout.segments().is_dir()
}
