//! The storage contract: what a log backend offers the ledger, split into a read side and a
//! write side. The embedded [`Store`](crate::Store) implements it; a second backend (a
//! database) implements the same traits and runs the same conformance suite
//! (`conformance`, behind the `conformance` feature).
//!
//! A backend knows nothing of events beyond their canonical bytes: it stores records, keeps
//! them in a Merkle tree with signed checkpoints, and indexes them under opaque keys its
//! caller computes. Which records may be appended — dedupe, supersedes chains, uniqueness —
//! is decided by the caller's [`Admission`], which the backend runs at its own serialization
//! point so that racing appends see one order.

use std::time::SystemTime;

use sealog_merkle::Hash;
use sealog_model::Canonical;
use sealog_model::record::Stored;

use crate::StoreError;
use crate::checkpoints::SignedCheckpoint;
use crate::prune::Prune;
use crate::recovery::Recovery;
use crate::segment::Stub;

/// An equality index key: a hash its caller computes (of an axis and a value, say). Fixed
/// width keeps index runs flat arrays; a collision can only add candidates, which callers
/// re-check against the record.
pub type Key = [u8; 16];

/// A record's identity: its `record_id`, the SHA-256 of its event's canonical bytes.
pub type Id = [u8; 32];

/// Largest page a scan may ask for.
pub const LIMIT_MAX: usize = 10_000;

/// One event to append, with everything the backend needs computed by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<C> {
    /// The event's canonical bytes and `record_id`; the backend adds `seq`, `record_id` and
    /// `ingested_at` to make the record.
    pub event: Canonical,
    /// The keys the record is found by, sorted, without repeats.
    pub keys: Vec<Key>,
    /// The event's own time, nanoseconds since the epoch, for event-time windows.
    pub event_ns: i64,
    /// What the caller's admission rule needs to decide this entry; the backend never looks.
    pub claim: C,
    /// A row the record is also kept as in a table of its own, for readers that use plain
    /// SQL: a database backend inserts it in the transaction that appends the record (never
    /// for a duplicate or a refusal); the embedded store has no tables and ignores it.
    pub row: Option<TableRow>,
}

/// A record as a row of a table readers query with plain SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableRow {
    /// Seed 004's `coordination_audit_records`, column by column.
    Coordination(Box<CoordinationRow>),
}

/// The columns of `coordination_audit_records` (seed 004 §3); `created_at` is the record's
/// ingest time, given by the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinationRow {
    /// A UUIDv5 of the record id: the same event never makes two rows.
    pub audit_id: String,
    pub envelope_id: String,
    pub envelope_class: String,
    pub decision: String,
    pub reason: String,
    /// Nanoseconds since the epoch.
    pub decision_ns: i64,
    pub conflicting_envelope_id: Option<String>,
    pub preempting_envelope_id: Option<String>,
    pub active_envelopes_count: i32,
    pub tenant_id: Option<String>,
}

impl<C> Entry<C> {
    pub fn id(&self) -> Id {
        self.event.record_id.0
    }
}

/// What an admission rule may ask about the log as committed before the group it decides
/// (entries earlier in the same group are the rule's own to remember, in its `Group`).
pub trait LogView {
    /// The seq of the record with this id.
    fn seq_of(&self, id: &Id) -> Result<Option<u64>, StoreError>;
    /// The lowest seq of a record indexed under `key`.
    fn first_with(&self, key: &Key) -> Result<Option<u64>, StoreError>;
    /// Whether record `seq` is indexed under `key`.
    fn has(&self, key: &Key, seq: u64) -> Result<bool, StoreError>;
}

/// An admission rule's answer for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<R> {
    /// Append it, at the seq it was offered.
    Admit,
    /// Do not append: the record at this seq already is it.
    Duplicate(u64),
    /// Do not append, for the rule's reason.
    Refuse(R),
}

/// Decides, entry by entry and in the one order the backend commits in, what is appended.
///
/// *Contract*: `admit` is called for every entry of every append, on one serialization point
/// of the backend (the embedded store's writer thread; a database's ingest transaction holding
/// the sequence lock), in the order the records would get their seqs. `seq` is the seq the
/// entry gets if admitted. `log` answers about records committed before the current group;
/// entries admitted earlier in the group are not in it, so a rule that must see them notes
/// them in `group`, which starts as `Default` for each group.
pub trait Admission: Send + Sync + 'static {
    type Claim: Send + 'static;
    type Refusal: Send + 'static;
    type Group: Default;

    fn admit(
        &self,
        group: &mut Self::Group,
        entry: &Entry<Self::Claim>,
        seq: u64,
        log: &dyn LogView,
    ) -> Result<Verdict<Self::Refusal>, StoreError>;

    /// The keys whose [`LogView::first_with`] deciding `entry` may ask: a backend that pays
    /// a round trip per question fetches them for a whole group at once. A hint only: a
    /// question not announced is answered all the same.
    fn asks(&self, _entry: &Entry<Self::Claim>) -> Vec<Key> {
        Vec::new()
    }
}

/// What became of one entry.
#[derive(Debug)]
pub enum Outcome<C, R> {
    Appended {
        seq: u64,
        id: Id,
    },
    Duplicate {
        seq: u64,
        id: Id,
    },
    /// Not appended; the entry is handed back (its bytes may be wanted as evidence).
    Refused {
        refusal: R,
        entry: Entry<C>,
    },
}

/// The outcomes of one append under admission rule `A`.
pub type Outcomes<A> = Vec<Outcome<<A as Admission>::Claim, <A as Admission>::Refusal>>;

impl<C, R> Outcome<C, R> {
    pub fn seq(&self) -> Option<u64> {
        match self {
            Outcome::Appended { seq, .. } | Outcome::Duplicate { seq, .. } => Some(*seq),
            Outcome::Refused { .. } => None,
        }
    }
}

/// Computes a stored record's keys again, when an index is rebuilt from the log. It must
/// give exactly the keys the record was appended with.
pub trait Indexer: Send + Sync + 'static {
    fn keys(&self, stored: &Stored<'_, '_>) -> Vec<Key>;
    /// The keys a pruned record keeps: those its stub's link implies (for the ledger, the
    /// record it supersedes), so what the log still says about other records holds. Each is
    /// one of the record's own keys: a backend answers a pruned record by these alone at
    /// once, and an index rebuilt from stubs must agree with it.
    fn stub_keys(&self, _stub: &Stub) -> Vec<Key> {
        Vec::new()
    }
    /// Names the derivation: when it changes, indexes built with the old one are rebuilt.
    fn fingerprint(&self) -> String;
}

/// Records matching every key and window, in seq order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Keys a record must all carry.
    pub keys: Vec<Key>,
    /// Event time window `[from, to)`, nanoseconds.
    pub event_from: Option<i64>,
    pub event_to: Option<i64>,
    /// Ingest time window `[from, to)`, nanoseconds.
    pub ingest_from: Option<i64>,
    pub ingest_to: Option<i64>,
    /// Only records with seq greater than this (the previous page's cursor).
    pub after: Option<u64>,
    /// Only records below this seq (the log as it was at this size).
    pub below: Option<u64>,
    pub limit: usize,
    /// Read the records without comparing each with the stored tree's leaf: only for a
    /// caller that reads every record it keeps again through a checked or proven read (an
    /// export's ordering pass).
    pub skip_leaf_check: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub records: Vec<(u64, Vec<u8>)>,
    /// The cursor for the next page, when there may be one.
    pub next_after: Option<u64>,
}

/// Figures a benchmark or the metrics endpoint reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub records: u64,
    pub commits: u64,
    pub committed_events: u64,
    pub fsyncs: u64,
    /// Writer time by phase, nanoseconds: framing, write(2), fsync, index and tree; and the
    /// background flusher's time writing and merging index runs.
    pub frame_ns: u64,
    pub write_ns: u64,
    pub sync_ns: u64,
    pub index_ns: u64,
    pub flush_ns: u64,
    /// Sealed segments compressed by this opening, the time it took, and the last failure
    /// (the segment then stays plain, as correct as before).
    pub compressed_segments: u64,
    /// Sealed segments waiting for (or in) compression.
    pub compress_pending: u64,
    pub compress_ns: u64,
    pub compress_failed: Option<String>,
    /// The newest signed checkpoint's size and when it was signed (or found, on open).
    pub checkpoint_size: Option<u64>,
    pub checkpoint_at: Option<SystemTime>,
}

/// A record's bytes and its leaf hash, of exactly those bytes.
pub type WithLeaf = (Vec<u8>, Hash);

/// A record's bytes with their leaf hash (RFC 9162).
pub fn with_leaf(bytes: Vec<u8>) -> WithLeaf {
    let leaf = sealog_merkle::leaf_hash(&bytes);
    (bytes, leaf)
}

/// The read side.
///
/// *Contract*: every read sees a prefix of the log that is durable (acknowledged appends),
/// and a read never returns a record that is not in the log; `len` never decreases while the
/// backend is open. Proofs and tiles are for tree sizes up to `len` (tiles: up to the newest
/// checkpoint), and verify with `sealog-merkle` against that size's root.
/// See [`LogRead::checkpoint_source`].
pub type CheckpointSource = std::sync::Arc<dyn Fn() -> Option<SignedCheckpoint> + Send + Sync>;

pub trait LogRead: Send + Sync {
    /// Records in the log.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// One record's bytes by seq ([`StoreError::Pruned`] if retention pruned it).
    fn get(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// One record's bytes and its leaf hash (RFC 9162, of exactly those bytes), *not*
    /// compared with the stored tree: for a caller that proves every record it reads against
    /// a signed root itself (an export checks its multiproof before it names its file).
    fn get_with_leaf(&self, seq: u64) -> Result<Option<WithLeaf>, StoreError> {
        Ok(self.get(seq)?.map(with_leaf))
    }
    /// [`LogRead::get_with_leaf`] for each of `seqs`, in the order given (`None` where the
    /// log holds no such record): for a caller reading many records at once, which a store
    /// may read together.
    fn get_many_with_leaves(&self, seqs: &[u64]) -> Result<Vec<Option<WithLeaf>>, StoreError> {
        seqs.iter().map(|&s| self.get_with_leaf(s)).collect()
    }
    fn seq_of(&self, id: &Id) -> Result<Option<u64>, StoreError>;
    /// One record's bytes by its id: [`LogRead::seq_of`] then [`LogRead::get`], which a
    /// store may answer at once.
    fn get_by_id(&self, id: &Id) -> Result<Option<Vec<u8>>, StoreError> {
        match self.seq_of(id)? {
            Some(seq) => self.get(seq),
            None => Ok(None),
        }
    }
    /// The lowest seq below `below` of a record indexed under `key`.
    fn first_with(&self, key: &Key, below: u64) -> Result<Option<u64>, StoreError>;
    /// [`first_with`](LogRead::first_with) of each of `keys`, in their order. A backend that
    /// pays a round trip per call answers them all with one.
    fn firsts_with(&self, keys: &[Key], below: u64) -> Result<Vec<Option<u64>>, StoreError> {
        keys.iter().map(|k| self.first_with(k, below)).collect()
    }
    /// How many records in `[from, below)` are indexed under `key`, from the index alone
    /// (no record is read): what a report counts.
    fn count_with(&self, key: &Key, from: u64, below: u64) -> Result<u64, StoreError>;
    /// The seqs in `[from, below)` indexed under `key`, ascending, from the index alone.
    fn seqs_with(&self, key: &Key, from: u64, below: u64) -> Result<Vec<u64>, StoreError>;
    /// The seqs below `below` whose event time is in `[from, to)`, ascending, from the
    /// event-time index alone (no record is read): what a report counts a period by.
    fn seqs_in_event_window(&self, from: i64, to: i64, below: u64) -> Result<Vec<u64>, StoreError>;
    /// Index-backed: O(log n) per index layer plus the records touched, never a scan of the log.
    fn scan(&self, scan: &Scan) -> Result<Page, StoreError>;
    /// The size the log had at time `t` (ns): the records ingested at or before it.
    fn size_at(&self, t: i64) -> Result<u64, StoreError>;
    /// The tree head for any size up to the log's.
    fn root(&self, size: u64) -> Result<Hash, StoreError>;
    fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<Hash>, StoreError>;
    fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, StoreError>;
    /// One proof for the records at `seqs` (strictly increasing) in the tree of `size`
    /// (`sealog_merkle::multiproof`). Unlike the proofs above it is not checked here: that
    /// needs every record's leaf hash, which its caller computes as it reads them, and it
    /// checks the proof against the signed root before anything leaves.
    fn multiproof(&self, seqs: &[u64], size: u64) -> Result<Vec<Hash>, StoreError>;
    /// The newest signed checkpoint, signing one first if the log has grown past it and this
    /// side may sign (a read-only opening returns the newest there is).
    fn checkpoint(&self) -> Result<SignedCheckpoint, StoreError>;
    fn latest_checkpoint(&self) -> Option<SignedCheckpoint>;
    /// Answers, from any thread and without a round trip, the newest checkpoint this opening
    /// signed or read: what another log's checkpoints carry of this one (which may lag the
    /// newest another server signed).
    fn checkpoint_source(&self) -> CheckpointSource;
    /// Every stored signed checkpoint up to the log's size, oldest first, each checked
    /// against this log's verifier key.
    fn checkpoints(&self) -> Result<Vec<SignedCheckpoint>, StoreError>;
    /// The checkpoints kept with witnesses' cosignatures ([`LogWrite::add_cosigned`]): for each
    /// cosigner the newest it cosigned, oldest first, as signed notes (the log's signature and
    /// the cosignatures).
    fn cosigned(&self) -> Result<Vec<String>, StoreError>;
    /// The verifier key of this log's checkpoints, in C2SP note format.
    fn verifier_key(&self) -> String;
    /// A C2SP tlog-tiles hash tile of the newest checkpoint's tree.
    fn tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<u8>, StoreError>;
    /// A C2SP tlog-tiles entry bundle of the newest checkpoint's tree.
    fn entry_bundle(&self, index: u64, width: u16) -> Result<Vec<u8>, StoreError>;
    fn stats(&self) -> Stats;
    /// What opening found and repaired.
    fn recovery(&self) -> Recovery;
    /// Digests of the index's postings of records in `[from, below)` (a pruned record's only
    /// where its stub keeps the key), one per `width` seqs from `from`, for `verify` to
    /// compare with the keys the records themselves give. `None`: this backend checks its
    /// index with its own verifier.
    fn postings_digests(
        &self,
        _from: u64,
        _below: u64,
        _width: u64,
    ) -> Result<Option<Vec<Postings>>, StoreError> {
        Ok(None)
    }
}

/// An order-free digest of a set of postings `(key, seq)`: how many, and two 64-bit lanes of
/// each posting's SHA-256 (of the key's 16 bytes, then the seq as 8 big-endian bytes), one
/// XORed and one summed. Two sets with the same digest hold the same postings unless someone
/// searched for a collision; a posting missing, added or moved changes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Postings {
    pub count: u64,
    pub xor: u64,
    pub sum: u128,
}

impl Postings {
    pub fn add(&mut self, key: &Key, seq: u64) {
        use sha2::{Digest, Sha256};
        let h = Sha256::new()
            .chain_update(key)
            .chain_update(seq.to_be_bytes())
            .finalize();
        let lane = |i: usize| u64::from_be_bytes(h[i..i + 8].try_into().expect("8 bytes"));
        self.count += 1;
        self.xor ^= lane(0);
        self.sum = self.sum.wrapping_add(u128::from(lane(8)));
    }

    /// [`Postings::add`] of each key under one seq.
    pub fn add_all(&mut self, keys: &[Key], seq: u64) {
        for k in keys {
            self.add(k, seq);
        }
    }
}

/// The write side.
///
/// *Contract*: `append` answers once every appended record of the call is durable (or, with
/// `Durability::Os`, written), with one outcome per entry in order. Seqs are dense and
/// assigned in commit order; ingest time never decreases along the log; admitted records
/// are decided by the backend's [`Admission`] at its serialization point. Concurrent calls
/// are safe and may share a commit. After an I/O failure the backend refuses writes until
/// reopened. `close` commits what was sent, makes the derived state durable and signs a
/// final checkpoint.
pub trait LogWrite<A: Admission>: LogRead {
    fn append(&self, entries: Vec<Entry<A::Claim>>) -> Result<Outcomes<A>, StoreError>;
    /// Retention: replaces each record named with a stub keeping its seq, leaf hash, id,
    /// times and the link given, so every proof of the tree still holds and no other record
    /// moves; returns how many were records until now (pruning twice changes nothing).
    /// Reads of a pruned record answer [`StoreError::Pruned`]; scans skip it. Crash-safe: a
    /// crash leaves each rewritten unit (a segment, a row) old or new, never torn.
    fn prune(&self, records: &[Prune]) -> Result<u64, StoreError>;
    /// Keeps a checkpoint of this log's tree together with the cosignatures witnesses gave
    /// it, durably, for [`LogRead::cosigned`] and `verify`; what a cosigner's newer checkpoint
    /// supersedes is dropped in the same atomic write. Refuses a note this log did not
    /// sign or whose root is not its tree's at that size.
    fn add_cosigned(&self, note: &str) -> Result<(), StoreError>;
    /// Key rotation, step one: makes the next signing key (same origin) and keeps it durably
    /// beside the current one; returns its verifier key. A prepared key is reused.
    fn prepare_key_rotation(&self) -> Result<String, StoreError>;
    /// Step two, once a record naming the new key is durable: signs a checkpoint of
    /// everything committed with both keys, then signs with the new key only. Returns the
    /// retired verifier key. Crash-safe: each step is done once, and rerunning finishes it.
    fn finish_key_rotation(&self) -> Result<String, StoreError>;
    /// Forgets a prepared key no record names.
    fn abandon_key_rotation(&self) -> Result<(), StoreError>;
    /// The verifier key of a prepared, unfinished rotation.
    fn pending_key_rotation(&self) -> Result<Option<String>, StoreError>;
    fn close(self: Box<Self>) -> Result<(), StoreError>;
}
