//! Secondary indexes: record_id → seq (dedupe and lookup), posting → seqs (equality axes),
//! event time → seqs (windows). Everything here is derived from the log: it is written
//! without slowing acknowledgements and rebuilt from the log after a crash.
//!
//! Shape: a memtable for the newest records plus immutable sorted runs on disk (see `run`).
//! Runs are merged four at a time (a counter in base four), so there are O(log n) of them
//! and each entry is rewritten O(log n) times, half as often as merging two at a time would.
//! `MANIFEST` names the runs and ends with its own CRC-32C; it is replaced atomically after
//! the runs it names are durable. Every run carries checksums of its blocks (see `run`): a
//! damaged index answers an error where it is read, and a store that opens it finds the
//! damage and rebuilds the index from the log.
//!
//! A full memtable is frozen (still readable) and written as a run by a background flusher,
//! so the writer never waits for sorting, writing or merging unless the flusher falls a
//! whole memtable behind.

mod bitmaps;
mod chains;
mod memtable;
mod postings;
mod pruned;
mod run;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::contract::{Id, Key};

use crate::error::StoreError;
use crate::io::Io;
pub(crate) use memtable::Memtable;
use run::BloomWriter;
pub(crate) use run::{HeldFilters, Run};

/// Version 6: runs hold a Bloom filter of their posting keys (version 5: Bloom filters are
/// blocked, an id's bits in one 64-byte block; version 4: runs hold bitmaps of their dense
/// keys; version 3: postings are compressed; version 2: runs have sums files, the manifest
/// ends with its CRC); an index of an earlier version is rebuilt from the log.
const MANIFEST_HEADER: &str = "sealog-index 6";

/// Postings of the walked key taken from a run at a time by [`Index::intersect`].
const CHUNK: usize = 1024;

pub(crate) struct Index {
    io: Io,
    dir: PathBuf,
    memtable_records_max: u64,
    runs: Vec<Arc<Run>>,
    /// A full memtable being written as a run; covers the seqs just below `mem`'s.
    frozen: Option<Arc<Memtable>>,
    mem: Memtable,
    /// The last memtable flushed, emptied: the next one to freeze into.
    spare: Option<Memtable>,
    /// Records retention pruned since this index was built, each with the keys its stub
    /// keeps. Their other postings stay in the memtable and runs until the index is next
    /// rebuilt from the log, and are not answered meanwhile: a pruned record is found by its
    /// stub's keys alone, from the moment it is pruned.
    pruned: pruned::Pruned,
}

/// Where a walk of ascending seqs stands in one key's postings: the run it last searched
/// and its place there. Valid while the index's runs stay those it was made under (a query
/// holds the index lock).
pub(crate) struct Membership {
    key: Key,
    run: Option<usize>,
    /// The key's bitmap in that run, when it is dense there: then no walk is kept.
    dense: Option<usize>,
    at: usize,
    /// The posting at `at` (`None` past the run's end).
    here: Option<postings::Posting>,
    block: postings::Block,
}

impl Membership {
    pub(crate) fn new(key: &Key) -> Self {
        Membership {
            key: *key,
            run: None,
            dense: None,
            at: 0,
            here: None,
            block: postings::Block::default(),
        }
    }

    /// The walk of another key, from the start, keeping the decoding buffers.
    fn restart(&mut self, key: &Key) {
        self.key = *key;
        self.run = None;
        self.dense = None;
        self.at = 0;
        self.here = None;
        self.block.forget();
    }
}

/// Membership of many keys, each asked in ascending seq order (verification walks every
/// record's keys in seq order): a small direct-mapped cache of walks, so a key on many
/// records keeps its place and its decoded block from one record to the next, while the keys
/// of one record each pass through a slot.
pub(crate) struct Memberships {
    slots: Vec<Option<(Membership, u64)>>,
}

const MEMBERSHIP_SLOTS: usize = 4096;

impl Memberships {
    pub(crate) fn new() -> Self {
        Memberships {
            slots: (0..MEMBERSHIP_SLOTS).map(|_| None).collect(),
        }
    }

    pub(crate) fn contains(
        &mut self,
        index: &Index,
        key: &Key,
        seq: u64,
    ) -> Result<bool, StoreError> {
        // Keys are hash output: any of their bytes pick a slot evenly.
        let at = u64::from_le_bytes(key[..8].try_into().expect("8 bytes")) as usize;
        let slot = &mut self.slots[at % MEMBERSHIP_SLOTS];
        match slot {
            // A walk only moves forward: one asked for an earlier seq starts again.
            Some((m, last)) if m.key == *key && *last <= seq => {
                *last = seq;
                return index.contains_ascending(m, seq);
            }
            Some((m, last)) => {
                m.restart(key);
                *last = seq;
            }
            None => *slot = Some((Membership::new(key), seq)),
        }
        // A key seen for the first time is most often on this record alone: one search that
        // decodes no more than it reads; its walk starts if it is asked again.
        index.contains(key, seq)
    }
}

enum Holder<'a> {
    Memtable(&'a Memtable),
    Run(usize),
    Nowhere,
}

/// The runs that replace an index's runs once a frozen memtable is written, built without
/// holding the index lock.
pub(crate) struct Flushed {
    runs: Vec<Arc<Run>>,
}

impl Index {
    /// Opens the index; it covers records `0..end()` (runs only: the memtable starts empty).
    pub(crate) fn open(io: &Io, dir: &Path, memtable_records_max: u64) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        Ok(Index {
            io: io.clone(),
            ..Self::load(dir, memtable_records_max)?
        })
    }

    /// Opens the runs as the manifest names them now, beside a writer that may replace them:
    /// a run merged away between reading the manifest and opening it means reading again.
    pub(crate) fn open_read_only(
        dir: &Path,
        memtable_records_max: u64,
    ) -> Result<Self, StoreError> {
        if !dir.is_dir() {
            return Ok(Self::empty(dir, memtable_records_max));
        }
        let mut tries = 0;
        loop {
            match Self::load(dir, memtable_records_max) {
                Err(StoreError::Io { cause, .. })
                    if cause.kind() == std::io::ErrorKind::NotFound && tries < 100 =>
                {
                    tries += 1;
                    std::thread::yield_now();
                }
                other => return other,
            }
        }
    }

    /// An index of nothing, for a read-only rebuild in memory.
    pub(crate) fn empty(dir: &Path, memtable_records_max: u64) -> Self {
        Index {
            io: Io::default(),
            dir: dir.to_path_buf(),
            memtable_records_max,
            runs: Vec::new(),
            frozen: None,
            mem: Memtable::with_room(0, memtable_records_max),
            spare: None,
            pruned: pruned::Pruned::default(),
        }
    }

    fn load(dir: &Path, memtable_records_max: u64) -> Result<Self, StoreError> {
        let manifest = dir.join("MANIFEST");
        let mut runs = Vec::new();
        match fs::read(&manifest) {
            Ok(bytes) => {
                for (first, end) in parse_manifest(&bytes).map_err(|why| {
                    StoreError::Corrupted(format!("{}: {why}", manifest.display()))
                })? {
                    runs.push(Arc::new(Run::open(dir, first, end)?));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(&manifest, e)),
        }
        let end = runs.last().map_or(0, |r: &Arc<Run>| r.end);
        for w in runs.windows(2) {
            if w[0].end != w[1].first {
                return Err(StoreError::Corrupted(format!(
                    "{}: runs are not contiguous",
                    manifest.display()
                )));
            }
        }
        Ok(Index {
            io: Io::default(),
            dir: dir.to_path_buf(),
            memtable_records_max,
            runs,
            frozen: None,
            mem: Memtable::with_room(end, memtable_records_max),
            spare: None,
            pruned: pruned::Pruned::default(),
        })
    }

    /// Forgets everything, for a rebuild from the log.
    pub(crate) fn reset(
        io: &Io,
        dir: &Path,
        memtable_records_max: u64,
    ) -> Result<Self, StoreError> {
        let _ = io.remove_file(&dir.join("MANIFEST"));
        remove_unnamed_runs(io, dir, &[])?;
        Index::open(io, dir, memtable_records_max)
    }

    /// Records covered by durable runs.
    pub(crate) fn durable_end(&self) -> u64 {
        self.runs.last().map_or(0, |r| r.end)
    }

    /// Records covered in all.
    pub(crate) fn end(&self) -> u64 {
        self.mem.end
    }

    pub(crate) fn insert(&mut self, seq: u64, id: &Id, keys: &[Key], event_ns: i64) {
        self.mem.insert(seq, *id, keys, event_ns);
    }

    /// Brings into cache where the memtable keeps these keys, for a record inserted soon.
    pub(crate) fn prefetch(&self, keys: &[Key]) {
        self.mem.prefetch(keys);
    }

    pub(crate) fn needs_flush(&self) -> bool {
        self.mem.records() >= self.memtable_records_max
    }

    pub(crate) fn has_frozen(&self) -> bool {
        self.frozen.is_some()
    }

    /// Freezes the memtable for a flusher; `None` when it is empty or one is still frozen.
    pub(crate) fn freeze(&mut self) -> Option<(Arc<Memtable>, Vec<Arc<Run>>)> {
        if self.frozen.is_some() || self.mem.records() == 0 {
            return None;
        }
        let end = self.mem.end;
        let mut next = self
            .spare
            .take()
            .unwrap_or_else(|| Memtable::with_room(end, self.memtable_records_max));
        (next.first, next.end) = (end, end);
        let frozen = Arc::new(std::mem::replace(&mut self.mem, next));
        self.frozen = Some(frozen.clone());
        Some((frozen, self.runs.clone()))
    }

    /// Keeps a flushed memtable, emptied, to be the next one.
    pub(crate) fn keep_spare(&mut self, emptied: Memtable) {
        debug_assert_eq!(emptied.records(), 0, "a spare memtable is empty");
        self.spare = Some(emptied);
    }

    /// Swaps in the runs a flush built and forgets the frozen memtable they now hold; returns
    /// the manifest text naming them, for the caller to write outside the lock.
    pub(crate) fn install(&mut self, flushed: Flushed) -> String {
        self.runs = flushed.runs;
        self.frozen = None;
        let mut text = format!("{MANIFEST_HEADER}\n");
        for r in &self.runs {
            text.push_str(&format!("run {} {}\n", r.first, r.end));
        }
        text.push_str(&format!("crc {:08x}\n", crc32c::crc32c(text.as_bytes())));
        text
    }

    fn layers(&self) -> impl Iterator<Item = &Memtable> {
        self.frozen
            .as_deref()
            .into_iter()
            .chain(std::iter::once(&self.mem))
    }

    /// The lowest seq of a record with this id: layers are searched oldest first.
    pub(crate) fn lookup_rid(&self, rid: &[u8; 32]) -> Result<Option<u64>, StoreError> {
        for r in &self.runs {
            if let Some(seq) = r.lookup_rid(rid)? {
                return Ok(Some(seq));
            }
        }
        Ok(self.layers().find_map(|m| m.lookup_rid(rid)))
    }

    /// Notes that records were pruned, each with the keys its stub keeps: from now on each
    /// is found by those keys alone.
    pub(crate) fn note_pruned(&mut self, kept: Vec<(u64, Vec<Key>)>) {
        self.pruned.note(kept);
    }

    /// Whether `seq`'s posting under `key` is one a pruned record no longer has.
    fn hidden(&self, key: &Key, seq: u64) -> bool {
        self.pruned.get(seq).is_some_and(|kept| !kept.contains(key))
    }

    fn prunes_within(&self, from: u64, below: u64) -> bool {
        self.pruned.any_within(from, below)
    }

    /// Up to `limit` seqs in `[from, below)` with `key`, ascending.
    pub(crate) fn postings(
        &self,
        key: &Key,
        from: u64,
        below: u64,
        limit: usize,
    ) -> Result<Vec<u64>, StoreError> {
        if !self.prunes_within(from, below) {
            return self.stored_postings(key, from, below, limit);
        }
        // Asked in chunks, so a long stretch of pruned records costs few searches.
        let mut out = Vec::new();
        let mut from = from;
        loop {
            let want = (limit - out.len()).max(CHUNK);
            let chunk = self.stored_postings(key, from, below, want)?;
            let next = match chunk.last() {
                Some(&last) if chunk.len() >= want => Some(last + 1),
                _ => None,
            };
            out.extend(chunk.into_iter().filter(|&s| !self.hidden(key, s)));
            if out.len() >= limit {
                out.truncate(limit);
                return Ok(out);
            }
            match next {
                Some(n) => from = n,
                None => return Ok(out),
            }
        }
    }

    /// [`Index::postings`] as stored, pruned records' postings included.
    fn stored_postings(
        &self,
        key: &Key,
        from: u64,
        below: u64,
        limit: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        for r in self.runs.iter().filter(|r| r.end > from && r.first < below) {
            r.postings(key, from, limit, &mut out)?;
            if out.len() >= limit {
                break;
            }
        }
        for m in self.layers() {
            if out.len() < limit {
                m.postings(key, from, limit, &mut out);
            }
        }
        out.retain(|&s| s < below);
        Ok(out)
    }

    /// Where record `seq`'s postings are.
    fn holder(&self, seq: u64) -> Holder<'_> {
        if let Some(mem) = self
            .layers()
            .find(|mem| (mem.first..mem.end).contains(&seq))
        {
            return Holder::Memtable(mem);
        }
        let i = self.runs.partition_point(|r| r.end <= seq);
        match self.runs.get(i) {
            Some(_) => Holder::Run(i),
            None => Holder::Nowhere,
        }
    }

    pub(crate) fn contains(&self, key: &Key, seq: u64) -> Result<bool, StoreError> {
        if self.hidden(key, seq) {
            return Ok(false);
        }
        self.stores(key, seq)
    }

    /// [`Index::contains`] as stored, pruned records' postings included.
    fn stores(&self, key: &Key, seq: u64) -> Result<bool, StoreError> {
        match self.holder(seq) {
            Holder::Memtable(mem) => Ok(mem.contains(key, seq)),
            Holder::Run(i) => self.runs[i].contains(key, seq),
            Holder::Nowhere => Ok(false),
        }
    }

    /// [`Index::contains`] for seqs asked in ascending order: a key dense in a run is
    /// answered by its bitmap; otherwise the first search in a run is a binary search, each
    /// later one gallops from where the last stopped (`m` keeps the place).
    pub(crate) fn contains_ascending(
        &self,
        m: &mut Membership,
        seq: u64,
    ) -> Result<bool, StoreError> {
        Ok(self.stores_ascending(m, seq)? && !self.hidden(&m.key, seq))
    }

    fn stores_ascending(&self, m: &mut Membership, seq: u64) -> Result<bool, StoreError> {
        // Seqs ascend: while they stay in the run last searched, it is the one.
        if let Some(r) = m.run.and_then(|i| self.runs.get(i))
            && seq < r.end
        {
            if let Some(k) = m.dense {
                return r.bits.has(k, seq);
            }
            return r.contains_from(&m.key, seq, (&mut m.at, &mut m.here), &mut m.block);
        }
        let i = match self.holder(seq) {
            Holder::Memtable(mem) => return Ok(mem.contains(&m.key, seq)),
            Holder::Nowhere => return Ok(false),
            Holder::Run(i) => i,
        };
        let r = &self.runs[i];
        if m.run != Some(i) {
            m.run = Some(i);
            m.dense = r.bits.find(u128::from_be_bytes(m.key));
            if let Some(k) = m.dense {
                return r.bits.has(k, seq);
            }
            m.block.forget();
            (m.at, m.here) =
                r.post
                    .lower_bound_from(postings::posting(&m.key, seq), 0, &mut m.block)?;
        }
        r.contains_from(&m.key, seq, (&mut m.at, &mut m.here), &mut m.block)
    }

    /// Up to `want` seqs in `[from, below)` that carry every one of `keys`, ascending, and
    /// the seq the search stopped before (`below` when it got there). One key's postings are
    /// walked and the others checked by membership, each walk kept from one candidate to the
    /// next. The caller puts the rarest key first; in a run where it is dense, the first key
    /// that is not is walked instead, since it has fewer postings there. In a run where every
    /// key is dense, their bitmaps are ANDed a word at a time: two large keys that never meet
    /// cost a pass over their bitmaps, not a decode of the rarer one's postings.
    pub(crate) fn intersect(
        &self,
        keys: &[Key],
        from: u64,
        below: u64,
        want: usize,
    ) -> Result<(Vec<u64>, u64), StoreError> {
        let mut members: Vec<Membership> = keys.iter().map(Membership::new).collect();
        let mut out = Vec::new();
        let mut chunk = Vec::new();
        let mut cursor = from;
        for r in self.runs.iter().filter(|r| r.end > from && r.first < below) {
            let dense: Vec<Option<usize>> = keys
                .iter()
                .map(|k| r.bits.find(u128::from_be_bytes(*k)))
                .collect();
            let walked = match dense.iter().position(Option::is_none) {
                Some(w) => w,
                None if keys.len() == 1 => 0,
                None => {
                    let ks: Vec<usize> = dense.into_iter().flatten().collect();
                    let next = r.bits.and(&ks, cursor, below, want, &mut out)?;
                    if out.len() >= want {
                        return Ok((out, next));
                    }
                    cursor = cursor.max(r.end);
                    continue;
                }
            };
            loop {
                chunk.clear();
                r.postings(&keys[walked], cursor, CHUNK, &mut chunk)?;
                if let Some(next) =
                    self.check(&chunk, &mut members, walked, (below, want), &mut out)?
                {
                    return Ok((out, next));
                }
                match chunk.last() {
                    Some(&last) if chunk.len() == CHUNK && last + 1 < below => cursor = last + 1,
                    _ => break,
                }
            }
            cursor = cursor.max(r.end);
            if cursor >= below {
                return Ok((out, below));
            }
        }
        if let Some(walked) = keys.first() {
            for m in self.layers() {
                chunk.clear();
                m.postings(walked, cursor, usize::MAX, &mut chunk);
                if let Some(next) = self.check(&chunk, &mut members, 0, (below, want), &mut out)? {
                    return Ok((out, next));
                }
            }
        }
        Ok((out, below))
    }

    /// Moves the candidates of `chunk` below `below` that every member but the walked one
    /// holds to `out`; `Some` of the seq to go on from once `out` holds `want`.
    fn check(
        &self,
        chunk: &[u64],
        members: &mut [Membership],
        walked: usize,
        (below, want): (u64, usize),
        out: &mut Vec<u64>,
    ) -> Result<Option<u64>, StoreError> {
        'candidates: for &seq in chunk.iter().filter(|&&s| s < below) {
            for (i, m) in members.iter_mut().enumerate() {
                if i != walked && !self.contains_ascending(m, seq)? {
                    continue 'candidates;
                }
            }
            out.push(seq);
            if out.len() >= want {
                return Ok(Some(seq + 1));
            }
        }
        Ok(None)
    }

    /// How many records carry `key`: O(runs × log n), used to pick the rarest key to scan.
    pub(crate) fn count(&self, key: &Key) -> Result<u64, StoreError> {
        let mut n = self.layers().map(|m| m.count(key)).sum::<u64>();
        for r in &self.runs {
            n += r.count(key)?;
        }
        Ok(n)
    }

    /// How many records in `[from, below)` carry `key`, from the postings alone.
    pub(crate) fn count_in(&self, key: &Key, from: u64, below: u64) -> Result<u64, StoreError> {
        let stored = self.stored_count_in(key, from, below)?;
        if !self.prunes_within(from, below) {
            return Ok(stored);
        }
        let candidates: Vec<u64> = self
            .pruned
            .within(from, below)
            .filter(|(_, kept)| !kept.contains(key))
            .map(|(seq, _)| seq)
            .collect();
        // Whichever is shorter: each candidate looked up, or the key's postings listed.
        if candidates.len() as u64 > stored {
            return Ok(self.postings(key, from, below, usize::MAX)?.len() as u64);
        }
        let mut hidden = 0;
        for seq in candidates {
            hidden += u64::from(self.stores(key, seq)?);
        }
        Ok(stored - hidden)
    }

    fn stored_count_in(&self, key: &Key, from: u64, below: u64) -> Result<u64, StoreError> {
        let mut n = 0;
        for r in self.runs.iter().filter(|r| r.end > from && r.first < below) {
            n += r.count_in(key, from, below)?;
        }
        for m in self.layers() {
            n += m.count_in(key, from, below);
        }
        Ok(n)
    }

    /// Seqs whose event time is in `[from, to)`, ascending.
    pub(crate) fn time_range(&self, from: i64, to: i64) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        for r in &self.runs {
            r.time_range(from, to, &mut out)?;
        }
        for m in self.layers() {
            m.time_range(from, to, &mut out);
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The runs, for verification.
    pub(crate) fn runs(&self) -> &[Arc<Run>] {
        &self.runs
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the whole memtable as a run right now (recovery and close). The caller must
    /// have made positions and tree nodes durable up to `end()`.
    pub(crate) fn flush(&mut self) -> Result<(), StoreError> {
        debug_assert!(
            self.frozen.is_none(),
            "no flusher runs beside a synchronous flush"
        );
        let Some((frozen, runs)) = self.freeze() else {
            return Ok(());
        };
        let flushed = build_runs(&self.io, &self.dir, runs, &frozen)?;
        let text = self.install(flushed);
        write_manifest(&self.io, &self.dir, &text)?;
        if let Some(emptied) = Memtable::reclaim(frozen) {
            self.keep_spare(emptied);
        }
        Ok(())
    }
}

/// Runs merged into one at a time: the newest this many, once they are about one size. A
/// merge rewrites every entry of its runs, so each record is rewritten once for every merge
/// it takes part in: four at a time, about half as often as two at a time (a binary
/// counter), for at most three runs of each size to look through instead of one.
const MERGE_FANOUT: usize = 4;

/// Writes `frozen` as a run after `runs`, then merges the newest [`MERGE_FANOUT`] runs while
/// they are of similar size. Touches only new files: the runs given stay valid until the
/// result is installed.
pub(crate) fn build_runs(
    io: &Io,
    dir: &Path,
    mut runs: Vec<Arc<Run>>,
    frozen: &Memtable,
) -> Result<Flushed, StoreError> {
    runs.push(Arc::new(write_run(io, dir, frozen)?));
    while runs.len() >= MERGE_FANOUT {
        let n = runs.len();
        let group = &runs[n - MERGE_FANOUT..];
        let records = |r: &Run| r.end - r.first;
        if records(&group[0]) > 2 * records(&group[MERGE_FANOUT - 1]) {
            break;
        }
        let merged = merge(io, dir, group)?;
        runs.truncate(n - MERGE_FANOUT);
        runs.push(Arc::new(merged));
    }
    Ok(Flushed { runs })
}

/// Writes a memtable as one run. Its sorted tables (about half a memtable's size again) are
/// gone when this returns, not held through the merges that follow, the longest of a flush.
fn write_run(io: &Io, dir: &Path, frozen: &Memtable) -> Result<Run, StoreError> {
    let (first, end) = (frozen.first, frozen.end);
    let (rid, post, time) = frozen.sorted_tables();
    let s = run::stem(dir, first, end);
    let mut bloom = BloomWriter::create(io, &s.with_extension("bloom"), rid.len() as u64)?;
    let rid = run::write_table(
        io,
        &s.with_extension("rid"),
        rid.iter().map(|e| bloom.push(&e[..32]).map(|()| e)),
    )?;
    let mut bits = bitmaps::BitmapWriter::create(io, &s, (first, end))?;
    let mut keys = KeyFilter::create(io, &s, post.distinct_keys())?;
    let (post, blocks, n) = postings::write(
        io,
        &s,
        (first, end),
        keys.note(post.iter().map(Ok)),
        &mut bits,
    )?;
    let (bits, dense) = bits.finish()?;
    let time = run::write_table(io, &s.with_extension("time"), time.iter().map(Ok))?;
    Run::write_sums(
        io,
        dir,
        (first, end),
        (bloom.finish()?, keys.finish()?),
        [rid, post, time, blocks, bits],
        (n, dense),
    )?;
    Run::open(dir, first, end)
}

/// A run's key filter, written as its postings stream past in key order: each key is noted
/// once, where its postings begin.
struct KeyFilter<'a> {
    writer: BloomWriter<'a>,
    sized: u64,
    last: Option<u128>,
}

impl<'a> KeyFilter<'a> {
    fn create(io: &'a Io, stem: &Path, sized: u64) -> Result<Self, StoreError> {
        Ok(KeyFilter {
            writer: BloomWriter::at_most(io, &stem.with_extension("kbloom"), sized)?,
            sized,
            last: None,
        })
    }

    /// The postings as they were, each new key noted on the way.
    fn note<'s>(
        &'s mut self,
        postings: impl Iterator<Item = Result<postings::Posting, StoreError>> + 's,
    ) -> impl Iterator<Item = Result<postings::Posting, StoreError>> + 's {
        postings.map(move |p| {
            let p = p?;
            if self.last != Some(p.0) {
                self.last = Some(p.0);
                self.writer.push(&p.0.to_be_bytes())?;
            }
            Ok(p)
        })
    }

    fn finish(self) -> Result<run::KeyFilterSum, StoreError> {
        let (keys, crc) = self.writer.finish()?;
        Ok(run::KeyFilterSum {
            keys,
            sized: self.sized,
            crc,
        })
    }
}

/// Replaces `MANIFEST` atomically, then deletes run files it does not name.
pub(crate) fn write_manifest(io: &Io, dir: &Path, text: &str) -> Result<(), StoreError> {
    io.write_atomic(&dir.join("MANIFEST"), text.as_bytes())?;
    let keep = parse_manifest(text.as_bytes())
        .map_err(|why| StoreError::Corrupted(format!("the manifest just made: {why}")))?;
    remove_unnamed_runs(io, dir, &keep)
}

/// The runs a manifest names, as (first, end), after checking its header and its CRC.
pub(crate) fn parse_manifest(bytes: &[u8]) -> Result<Vec<(u64, u64)>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not text".to_string())?;
    // Exactly as written, to the last byte: any change is damage.
    let whole = text
        .strip_suffix('\n')
        .ok_or("cut short (no final newline)")?;
    let body_end = whole.rfind('\n').map_or(0, |i| i + 1);
    let (body, last) = text.split_at(body_end);
    let crc = last
        .strip_prefix("crc ")
        .and_then(|h| h.strip_suffix('\n'))
        .filter(|h| {
            h.len() == 8
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or("no checksum line")?;
    if crc32c::crc32c(body.as_bytes()) != crc {
        return Err("does not match its checksum".into());
    }
    let mut lines = body.lines();
    if lines.next() != Some(MANIFEST_HEADER) {
        return Err(format!("not a {MANIFEST_HEADER} manifest"));
    }
    lines
        .map(|line| {
            let mut f = line.strip_prefix("run ").ok_or("bad line")?.split(' ');
            let mut num = || {
                f.next()
                    .and_then(|x| x.parse::<u64>().ok())
                    .ok_or("bad line")
            };
            let run = (num()?, num()?);
            match f.next() {
                None => Ok(run),
                Some(_) => Err("bad line"),
            }
        })
        .collect::<Result<_, &str>>()
        .map_err(str::to_string)
}

/// Merges adjacent runs (two or more, oldest first) into one; every entry read is checked on
/// the way. The Bloom filter is written as the ids stream past: neither the ids of large runs
/// nor the merged run's filter is ever held whole, so a merge's memory does not grow with the
/// log.
fn merge(io: &Io, dir: &Path, runs: &[Arc<Run>]) -> Result<Run, StoreError> {
    let (first, end) = match runs {
        [oldest, .., newest] => (oldest.first, newest.end),
        _ => unreachable!("a merge takes two runs or more"),
    };
    let s = run::stem(dir, first, end);
    let ids = runs.iter().map(|r| r.rid.len() as u64).sum();
    let mut bloom = BloomWriter::create(io, &s.with_extension("bloom"), ids)?;
    let rids = merge_sorted(runs.iter().map(|r| r.rid.stream()).collect()).map(|e| {
        let e = e?;
        bloom.push(&e.as_ref()[..32])?;
        Ok(e)
    });
    let rid = run::write_table(io, &s.with_extension("rid"), rids)?;
    let mut bits = bitmaps::BitmapWriter::create(io, &s, (first, end))?;
    // Keys the runs share are counted once for each: the filter is sized for at most that many.
    let distinct = runs.iter().map(|r| r.distinct_keys).sum();
    let mut keys = KeyFilter::create(io, &s, distinct)?;
    let (post, blocks, n) = postings::write(
        io,
        &s,
        (first, end),
        keys.note(merge_sorted(runs.iter().map(|r| r.post.stream()).collect())),
        &mut bits,
    )?;
    let (bits, dense) = bits.finish()?;
    let time = run::write_table(
        io,
        &s.with_extension("time"),
        merge_sorted(runs.iter().map(|r| r.time.stream()).collect()),
    )?;
    Run::write_sums(
        io,
        dir,
        (first, end),
        (bloom.finish()?, keys.finish()?),
        [rid, post, time, blocks, bits],
        (n, dense),
    )?;
    Run::open(dir, first, end)
}

/// A table read in order, one entry at a time, for a merge.
pub(crate) trait InOrder {
    type Item: Ord;
    /// The next entry, without moving past it.
    fn head(&mut self) -> Result<Option<Self::Item>, StoreError>;
    fn skip(&mut self);
}

/// The entries of adjacent runs' tables (oldest first) in order. Of equal entries the older
/// run's come first: its seqs are all below a newer run's, so postings of one key stay in seq
/// order.
fn merge_sorted<S: InOrder>(
    mut streams: Vec<S>,
) -> impl Iterator<Item = Result<S::Item, StoreError>> {
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        let next = (|| {
            let mut least: Option<(usize, S::Item)> = None;
            for (i, s) in streams.iter_mut().enumerate() {
                if let Some(x) = s.head()?
                    && least.as_ref().is_none_or(|(_, l)| x < *l)
                {
                    least = Some((i, x));
                }
            }
            Ok(least.map(|(i, x)| {
                streams[i].skip();
                x
            }))
        })();
        failed = next.is_err();
        next.transpose()
    })
}

/// Deletes run files the manifest does not name: leftovers of a flush or merge that a crash
/// interrupted, or runs a merge replaced. Index files are derived; log files are never touched.
fn remove_unnamed_runs(io: &Io, dir: &Path, keep: &[(u64, u64)]) -> Result<(), StoreError> {
    for entry in fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_prefix("run-").and_then(|n| n.split('.').next()) else {
            continue;
        };
        let named = stem
            .split_once('-')
            .and_then(|(f, e)| Some((f.parse::<u64>().ok()?, e.parse::<u64>().ok()?)))
            .is_some_and(|fe| keep.contains(&fe));
        if !named {
            io.remove_file(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic generator, so a failure names its case.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn an_intersection_finds_exactly_the_records_carrying_every_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut index = Index::open(&Io::default(), dir.path(), 2_000).expect("index");
        // Key k is on about one record in 2^k, but key 5 on one in 512 (never dense); keys 6
        // and 7 never meet (even and odd records); key 8 is on every record of the first
        // 5,000 and on none after.
        let keys: Vec<Key> = (0..9u8).map(|k| [k; 16]).collect();
        let mut carries: Vec<Vec<bool>> = Vec::new();
        let mut state = 0x2545_f491_4f6c_dd1d;
        // Five memtables' worth: four merged into one run, and the fifth a run of its own.
        for seq in 0..11_300u64 {
            let r = next(&mut state);
            let on: Vec<bool> = (0..9)
                .map(|k| match k {
                    6 => seq % 2 == 0,
                    7 => seq % 2 == 1,
                    8 => seq < 5_000,
                    5 => r.is_multiple_of(512),
                    _ => r.is_multiple_of(1 << k),
                })
                .collect();
            let with: Vec<Key> = (0..9).filter(|&k| on[k]).map(|k| keys[k]).collect();
            let id = sealog_model::RecordId::of_canonical(&seq.to_le_bytes()).0;
            index.insert(seq, &id, &with, seq as i64);
            carries.push(on);
            if index.needs_flush() {
                index.flush().expect("flush");
            }
        }
        // The memtable now filling is a flushed one emptied, so the model checks it too.
        assert!(
            index.spare.is_some(),
            "a flushed memtable is kept to be the next"
        );
        let runs = index.runs();
        assert!(runs.len() >= 2, "runs: {}", runs.len());
        assert!(
            runs.iter().any(|r| [6u8, 7, 8]
                .iter()
                .all(|&k| r.bits.find(u128::from_be_bytes([k; 16])).is_some())),
            "some run has bitmaps for every key of a never-meeting pair"
        );
        assert!(
            runs.iter()
                .all(|r| r.bits.find(u128::from_be_bytes([5; 16])).is_none())
        );
        let sets: [&[usize]; 9] = [
            &[0, 3],
            &[6, 7],
            &[1, 6],
            &[5, 2],
            &[8, 1, 0],
            &[6, 8],
            &[4],
            &[0],
            &[0, 5],
        ];
        for set in sets {
            let asked: Vec<Key> = set.iter().map(|&k| keys[k]).collect();
            let model: Vec<u64> = (0..carries.len() as u64)
                .filter(|&s| set.iter().all(|&k| carries[s as usize][k]))
                .collect();
            for _ in 0..40 {
                let from = next(&mut state) % 11_400;
                let below = from + next(&mut state) % 11_400;
                // Sometimes more than one chunk of a walk holds.
                let want = match next(&mut state) % 4 {
                    0 => 2_000 + (next(&mut state) % 3_000) as usize,
                    _ => 1 + (next(&mut state) % 300) as usize,
                };
                let (found, stop) = index
                    .intersect(&asked, from, below, want)
                    .expect("intersect");
                let expected: Vec<u64> = model
                    .iter()
                    .copied()
                    .filter(|s| (from..below).contains(s))
                    .take(want)
                    .collect();
                assert_eq!(
                    found, expected,
                    "keys {set:?} in {from}..{below}, {want} wanted"
                );
                // It stops right after its last find when it has enough, else at `below`.
                if found.len() == want {
                    assert_eq!(stop, found[want - 1] + 1);
                } else {
                    assert_eq!(stop, below);
                }
            }
        }
    }

    /// After n memtables of one size, the runs are n written in base four, largest first:
    /// each digit d is d runs of that power of four memtables. Every posting is still found.
    #[test]
    fn runs_merge_four_at_a_time_into_the_base_four_digits_of_the_memtables_flushed() {
        const MEMTABLE: u64 = 10;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut index = Index::open(&Io::default(), dir.path(), MEMTABLE).expect("index");
        let key: Key = [7; 16];
        for n in 1..=70u64 {
            for seq in (n - 1) * MEMTABLE..n * MEMTABLE {
                let id = sealog_model::RecordId::of_canonical(&seq.to_le_bytes()).0;
                index.insert(seq, &id, &[key], seq as i64);
            }
            assert!(index.needs_flush());
            index.flush().expect("flush");
            let mut want = Vec::new();
            let (mut rest, mut power) = (n, 1u64);
            while rest > 0 {
                want.extend(std::iter::repeat_n(power * MEMTABLE, (rest % 4) as usize));
                (rest, power) = (rest / 4, power * 4);
            }
            want.reverse();
            let got: Vec<u64> = index.runs().iter().map(|r| r.end - r.first).collect();
            assert_eq!(got, want, "after {n} memtables");
            let found = index
                .postings(&key, 0, u64::MAX, usize::MAX)
                .expect("postings");
            assert!(
                found.iter().copied().eq(0..n * MEMTABLE),
                "after {n} memtables"
            );
        }
    }

    #[test]
    fn membership_asked_in_ascending_order_agrees_with_the_postings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut index = Index::open(&Io::default(), dir.path(), 1_000).expect("index");
        // Keys in pairs that share their first eight bytes, and so a slot of `Memberships`.
        let keys: Vec<Key> = (0..8u8)
            .map(|k| {
                let mut key = [k / 2; 16];
                key[15] = k;
                key
            })
            .collect();
        let mut state = 0x9e37_79b9_7f4a_7c15;
        // Two runs (four memtables merged, and a fifth) and a memtable: key k is on about one
        // record in 2^k.
        for seq in 0..5_500u64 {
            let r = next(&mut state);
            let on: Vec<Key> = keys
                .iter()
                .enumerate()
                .filter(|(k, _)| r.is_multiple_of(1 << k))
                .map(|(_, key)| *key)
                .collect();
            let id = sealog_model::RecordId::of_canonical(&seq.to_le_bytes()).0;
            index.insert(seq, &id, &on, seq as i64);
            if index.needs_flush() {
                index.flush().expect("flush");
            }
        }
        assert!(index.runs().len() >= 2, "the walk must cross runs");
        // The denser keys are answered by bitmaps, the sparser by walks of their postings.
        let dense: Vec<usize> = index.runs().iter().map(|r| r.bits.keys().len()).collect();
        assert!(
            dense.iter().all(|&n| n > 0 && n < keys.len()),
            "dense keys by run: {dense:?}"
        );
        for run in index.runs() {
            run.check_bitmaps()
                .expect("bitmaps agree with the postings");
        }
        // Every key of every record, as verification asks them, in one cache of walks; then
        // once more from an earlier seq, which restarts the walks it meets.
        let mut cache = Memberships::new();
        for start in [0u64, 2_000] {
            for seq in start..4_600 {
                for key in &keys {
                    let want = index.postings(key, seq, seq + 1, 1).expect("postings") == [seq];
                    assert_eq!(index.contains(key, seq).expect("contains"), want);
                    assert_eq!(
                        cache.contains(&index, key, seq).expect("cached"),
                        want,
                        "key {} seq {seq}",
                        key[15]
                    );
                }
            }
        }
        for key in &keys {
            for stride in [1u64, 3, 17, 400] {
                let mut m = Membership::new(key);
                let mut seq = next(&mut state) % stride;
                while seq < 4_600 {
                    assert_eq!(
                        index.contains_ascending(&mut m, seq).expect("ascending"),
                        index.postings(key, seq, seq + 1, 1).expect("postings") == [seq],
                        "key {} seq {seq} stride {stride}",
                        key[15]
                    );
                    seq += 1 + next(&mut state) % stride;
                }
            }
        }
    }
}
