//! Immutable sorted runs: flat arrays of fixed-width entries, searched in place through a
//! read-only memory map. A run covers a contiguous seq range, so a key's postings across
//! runs read oldest to newest are already in seq order.
//!
//! ```text
//! .rid   entry = record_id[32] seq:u64be             sorted by record_id
//! .post, .pidx  the postings, compressed (see `postings`)
//! .time  entry = event_ns:u64be(sign flipped) seq:u64be   sorted by (time, seq)
//! .bits  the dense keys' bitmaps (see `bitmaps`)
//! .bloom a Bloom filter of the record ids; .kbloom one of the posting keys
//! .sum   "SEALSUM4" (entries:u64le blocks:u64le crc32c:u32le per 4 KiB block)×5
//!        (for .rid .post .time .pidx .bits) postings:u64le
//!        dense:u64le key[16]×dense bloom_crc:u32le
//!        keys:u64le keys_sized:u64le kbloom_crc:u32le crc:u32le
//! ```
//!
//! Nothing here is trusted as it lies on disk: every 4 KiB block of a table is checked
//! against its CRC-32C the first time a read touches it, and the Bloom filter and the sums
//! file are checked when the run is opened. A block that fails is an error where it is read,
//! never an entry taken as it is.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::Mmap;

use crate::error::StoreError;
use crate::io::Io;

use super::bitmaps::{self, Bitmaps};
use super::postings::{self, BLOCK_ENTRY_WIDTH, Block, Posting, Postings};

pub(crate) const RID_WIDTH: usize = 40;
pub(crate) const TIME_WIDTH: usize = 16;

/// Bytes covered by one checksum of a table.
const BLOCK_BYTES: usize = 4096;
const SUM_MAGIC: &[u8; 8] = b"SEALSUM4";

/// Maps signed nanoseconds onto unsigned ones with the same order.
pub(crate) fn time_key(ns: i64) -> [u8; 8] {
    ((ns as u64) ^ (1 << 63)).to_be_bytes()
}

/// A table's entry count and the CRC-32C of each of its blocks, as written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct TableSum {
    pub(crate) entries: u64,
    blocks: Vec<u32>,
}

/// A key's first eight bytes as a number: where it lies in the range of keys.
fn lead(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(b)
}

/// The entry of `[lo, hi)` where a key leading `want` would lie if the leads of those
/// entries, between `lo_lead` and `hi_lead`, were spread evenly.
fn interpolate(lo: usize, hi: usize, lo_lead: u64, hi_lead: u64, want: u64) -> usize {
    let span = u128::from(hi_lead.saturating_sub(lo_lead)).max(1);
    let into = u128::from(want.clamp(lo_lead, hi_lead) - lo_lead);
    let at = lo + (into * (hi - lo) as u128 / span) as usize;
    at.min(hi - 1)
}

/// The first of `n` entries, in key order, whose leading bytes are `>= key`: found by halving,
/// each entry read through `entry`.
fn lower_bound_of<'e>(
    n: usize,
    key: &[u8],
    entry: impl Fn(usize) -> Result<&'e [u8], StoreError>,
) -> Result<usize, StoreError> {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if &entry(mid)?[..key.len()] < key {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// Which blocks have been checked, so each is checked once.
struct Checked(Vec<AtomicU64>);

impl Checked {
    fn new(blocks: usize) -> Self {
        Checked(
            (0..blocks.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
        )
    }

    fn has(&self, b: usize) -> bool {
        self.0[b / 64].load(Ordering::Relaxed) & (1 << (b % 64)) != 0
    }

    fn mark(&self, b: usize) {
        self.0[b / 64].fetch_or(1 << (b % 64), Ordering::Relaxed);
    }
}

pub(crate) struct Table {
    map: Option<Mmap>,
    file: File,
    path: PathBuf,
    width: usize,
    sum: TableSum,
    checked: Checked,
}

impl Table {
    pub(crate) fn open(path: &Path, width: usize, sum: TableSum) -> Result<Self, StoreError> {
        // A run is derived data: one that is missing is rebuilt from the log, like a damaged one.
        let file = File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                StoreError::Corrupted(format!("{} is missing", path.display()))
            }
            _ => StoreError::io(path, e),
        })?;
        let len = file.metadata().map_err(|e| StoreError::io(path, e))?.len();
        if len != sum.entries * width as u64
            || sum.blocks.len() != (len as usize).div_ceil(BLOCK_BYTES)
        {
            return Err(StoreError::Corrupted(format!(
                "{} is {len} bytes, its sums describe {} entries of {width}",
                path.display(),
                sum.entries
            )));
        }
        let map = if len == 0 {
            None
        } else {
            Some(map_read_only(&file, path)?)
        };
        let checked = Checked::new(sum.blocks.len());
        Ok(Table {
            map,
            file,
            path: path.to_path_buf(),
            width,
            sum,
            checked,
        })
    }

    fn damaged(&self, block: usize) -> StoreError {
        StoreError::Corrupted(format!(
            "{} block {block} (bytes {}..) does not match its checksum",
            self.path.display(),
            block * BLOCK_BYTES
        ))
    }

    /// Checks the blocks holding bytes `range` of the mapped table, once each.
    fn check(&self, range: std::ops::Range<usize>) -> Result<(), StoreError> {
        let bytes = self.bytes();
        for b in range.start / BLOCK_BYTES..range.end.div_ceil(BLOCK_BYTES) {
            if self.checked.has(b) {
                continue;
            }
            let block = &bytes[b * BLOCK_BYTES..((b + 1) * BLOCK_BYTES).min(bytes.len())];
            if crc32c::crc32c(block) != self.sum.blocks[b] {
                return Err(self.damaged(b));
            }
            self.checked.mark(b);
        }
        Ok(())
    }

    /// Checks every block (for verification).
    pub(crate) fn check_all(&self) -> Result<(), StoreError> {
        self.check(0..self.bytes().len())
    }

    /// Finds the entry starting with `key` by reading the file rather than the map. Used for
    /// lookups the Bloom filter lets through (about 1% of them for new ids): faulting their
    /// random pages into the map would grow the resident set with the log. Each block read is
    /// checked as it is read.
    pub(crate) fn find_by_reading(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.search_by_reading(key).map(|(found, _)| found)
    }

    /// [`Self::find_by_reading`], and how many reads it took. The keys are record ids,
    /// uniform over their range, so where `key` falls between the keys that bound the part
    /// still searched says where to read: two or three reads of a million-entry table, where
    /// halving took twenty. Each read narrows the part past every whole entry its blocks
    /// hold, and a read that did not halve the part is followed by one at its middle, so
    /// keys of any spread take at most twice the reads halving does.
    fn search_by_reading(&self, key: &[u8]) -> Result<(Option<Vec<u8>>, usize), StoreError> {
        let mut buf = Vec::with_capacity(2 * BLOCK_BYTES);
        let w = self.width;
        let want = lead(key);
        // Entries [lo, hi) may hold `key`; their leads lie within [lo_lead, hi_lead].
        let (mut lo, mut hi) = (0, self.len());
        let (mut lo_lead, mut hi_lead) = (0, u64::MAX);
        let (mut halve, mut reads) = (false, 0);
        while lo < hi {
            let at = if halve {
                lo + (hi - lo) / 2
            } else {
                interpolate(lo, hi, lo_lead, hi_lead, want)
            };
            let (first, whole) = self.read_around(at, &mut buf)?;
            reads += 1;
            let entry = |i: usize| &whole[i * w..(i + 1) * w];
            let n = whole.len() / w;
            // How many of the entries read lie below `key`.
            let below = lower_bound_of(n, key, |i| Ok(entry(i)))?;
            if below < n && &entry(below)[..key.len()] == key {
                return Ok((Some(entry(below).to_vec()), reads));
            }
            let before = hi - lo;
            if below > 0 {
                lo = lo.max(first + below);
                lo_lead = lead(entry(below - 1));
            }
            if below < n {
                hi = hi.min(first + below);
                hi_lead = lead(entry(below));
            }
            halve = !halve && (hi.saturating_sub(lo)) * 2 > before;
        }
        Ok((None, reads))
    }

    /// Reads the blocks holding entry `i`; returns the index of the first whole entry they
    /// hold, and those whole entries.
    fn read_around<'b>(
        &self,
        i: usize,
        buf: &'b mut Vec<u8>,
    ) -> Result<(usize, &'b [u8]), StoreError> {
        let w = self.width;
        let start = self.read_blocks(i * w, buf)?;
        let first = start.div_ceil(w);
        let end = (start + buf.len()) / w;
        Ok((first, &buf[first * w - start..end * w - start]))
    }

    /// Reads into `buf` the whole blocks the entry at byte `at` lies in, checking each unless
    /// it was already; returns the byte where they start.
    fn read_blocks(&self, at: usize, buf: &mut Vec<u8>) -> Result<usize, StoreError> {
        let first = at / BLOCK_BYTES;
        let last = (at + self.width - 1) / BLOCK_BYTES;
        let start = first * BLOCK_BYTES;
        let stop = ((last + 1) * BLOCK_BYTES).min(self.len() * self.width);
        buf.resize(stop - start, 0);
        self.file
            .read_exact_at(buf, start as u64)
            .map_err(|e| StoreError::io(&self.path, e))?;
        for b in first..=last {
            if self.checked.has(b) {
                continue;
            }
            let from = (b - first) * BLOCK_BYTES;
            let block = &buf[from..(from + BLOCK_BYTES).min(buf.len())];
            if crc32c::crc32c(block) != self.sum.blocks[b] {
                return Err(self.damaged(b));
            }
            self.checked.mark(b);
        }
        Ok(start)
    }

    pub(crate) fn len(&self) -> usize {
        self.sum.entries as usize
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Entries `range`, back to back, checked (bytes, of a table of single bytes).
    pub(crate) fn entries(&self, range: std::ops::Range<usize>) -> Result<&[u8], StoreError> {
        let bytes = range.start * self.width..range.end * self.width;
        if range.end > self.len() {
            return Err(StoreError::Corrupted(format!(
                "{}: entries {range:?} asked of {}",
                self.path.display(),
                self.len()
            )));
        }
        self.check(bytes.clone())?;
        Ok(&self.bytes()[bytes])
    }

    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    #[inline]
    pub(crate) fn entry(&self, i: usize) -> Result<&[u8], StoreError> {
        let range = i * self.width..(i + 1) * self.width;
        // Most entries lie in one block, already checked: answer those without the loop.
        let block = range.start / BLOCK_BYTES;
        if !(block == (range.end - 1) / BLOCK_BYTES && self.checked.has(block)) {
            self.check(range.clone())?;
        }
        Ok(&self.bytes()[range])
    }

    /// Index of the first entry whose leading bytes are `>= key`.
    pub(crate) fn lower_bound(&self, key: &[u8]) -> Result<usize, StoreError> {
        lower_bound_of(self.len(), key, |i| self.entry(i))
    }

    pub(crate) fn seq_at(&self, i: usize) -> Result<u64, StoreError> {
        let e = self.entry(i)?;
        Ok(u64::from_be_bytes(
            e[self.width - 8..].try_into().expect("8 bytes"),
        ))
    }
}

/// One entry of any table, copied out of a [`Stream`].
#[derive(Clone, Copy)]
pub(crate) struct Entry {
    bytes: [u8; RID_WIDTH],
    len: usize,
}

impl Entry {
    pub(crate) fn of(bytes: &[u8]) -> Self {
        let mut e = Entry {
            bytes: [0; RID_WIDTH],
            len: bytes.len(),
        };
        e.bytes[..bytes.len()].copy_from_slice(bytes);
        e
    }
}

impl AsRef<[u8]> for Entry {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.as_ref() == other.as_ref()
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_ref().cmp(other.as_ref())
    }
}

impl super::InOrder for Stream<'_> {
    type Item = Entry;

    fn head(&mut self) -> Result<Option<Entry>, StoreError> {
        Ok(self.peek()?.map(Entry::of))
    }

    fn skip(&mut self) {
        self.advance();
    }
}

/// Bytes a [`Stream`] reads at a time: whole checksummed blocks.
const STREAM_BYTES: usize = 256 * BLOCK_BYTES;

/// A table's entries in order, read from its file through a buffer, each block checked
/// against its sum as it arrives. A merge reads runs this way rather than through their
/// mappings: a mapping's pages count as the process's own while it reads them, and the
/// largest merges read gigabytes.
pub(crate) struct Stream<'a> {
    table: &'a Table,
    buf: Vec<u8>,
    /// The table's byte at which `buf` starts.
    buf_start: usize,
    /// The next entry.
    at: usize,
}

impl Table {
    pub(crate) fn stream(&self) -> Stream<'_> {
        Stream {
            table: self,
            buf: Vec::new(),
            buf_start: 0,
            at: 0,
        }
    }
}

impl Stream<'_> {
    /// The next entry, without moving past it.
    pub(crate) fn peek(&mut self) -> Result<Option<&[u8]>, StoreError> {
        let t = self.table;
        if self.at >= t.len() {
            return Ok(None);
        }
        let start = self.at * t.width;
        self.range(start..start + t.width).map(Some)
    }

    pub(crate) fn advance(&mut self) {
        self.at += 1;
    }

    /// Bytes `range` of the table; ranges asked in ascending order are read once.
    pub(crate) fn range(&mut self, range: std::ops::Range<usize>) -> Result<&[u8], StoreError> {
        if range.start < self.buf_start || range.end > self.buf_start + self.buf.len() {
            self.fill(range.start, range.end)?;
        }
        Ok(&self.buf[range.start - self.buf_start..range.end - self.buf_start])
    }

    /// Reads whole blocks from the one holding byte `from`, at least up to byte `to`.
    fn fill(&mut self, from: usize, to: usize) -> Result<(), StoreError> {
        let t = self.table;
        let first = from / BLOCK_BYTES;
        let start = first * BLOCK_BYTES;
        let total = t.len() * t.width;
        if to > total {
            return Err(StoreError::Corrupted(format!(
                "{}: bytes {from}..{to} asked of a {total}-byte table",
                t.path.display()
            )));
        }
        let stop = (start + STREAM_BYTES)
            .max(to.next_multiple_of(BLOCK_BYTES))
            .min(total);
        self.buf.resize(stop - start, 0);
        t.file
            .read_exact_at(&mut self.buf, start as u64)
            .map_err(|e| StoreError::io(&t.path, e))?;
        for (i, block) in self.buf.chunks(BLOCK_BYTES).enumerate() {
            if crc32c::crc32c(block) != t.sum.blocks[first + i] {
                return Err(t.damaged(first + i));
            }
        }
        self.buf_start = start;
        Ok(())
    }
}

#[allow(unsafe_code)]
fn map_read_only(file: &File, path: &Path) -> Result<Mmap, StoreError> {
    // SAFETY: run files are written once, fsynced, and never modified afterwards; they live in
    // a directory this process holds the exclusive lock on (or, read-only beside the writer,
    // that only its writer changes, and only by deleting whole runs it no longer names).
    // Another process rewriting one would be tampering, which the block checksums find.
    unsafe { Mmap::map(file) }.map_err(|e| StoreError::io(path, e))
}

/// Writes sorted fixed-width entries to a new file, makes it durable, and returns its sums.
pub(crate) fn write_table<E: AsRef<[u8]>>(
    io: &Io,
    path: &Path,
    entries: impl Iterator<Item = Result<E, StoreError>>,
) -> Result<TableSum, StoreError> {
    let mut w = TableWriter::create(io, path)?;
    for e in entries {
        w.push_entry(e?.as_ref())?;
    }
    w.finish()
}

/// A table being written: its bytes go to the file and into the checksums of its blocks.
pub(crate) struct TableWriter<'a> {
    io: &'a Io,
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    sum: TableSum,
    block: Vec<u8>,
}

/// Bytes a [`TableWriter`] gathers before writing them.
const WRITE_BYTES: usize = 1 << 20;

impl<'a> TableWriter<'a> {
    pub(crate) fn create(io: &'a Io, path: &Path) -> Result<Self, StoreError> {
        let file = File::create(path).map_err(|e| StoreError::io(path, e))?;
        Ok(TableWriter {
            io,
            path: path.to_path_buf(),
            file,
            buf: Vec::with_capacity(WRITE_BYTES),
            sum: TableSum::default(),
            block: Vec::with_capacity(BLOCK_BYTES),
        })
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= WRITE_BYTES {
            self.write_out()?;
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            let take = (BLOCK_BYTES - self.block.len()).min(rest.len());
            self.block.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.block.len() == BLOCK_BYTES {
                self.sum.blocks.push(crc32c::crc32c(&self.block));
                self.block.clear();
            }
        }
        Ok(())
    }

    fn write_out(&mut self) -> Result<(), StoreError> {
        self.io
            .appender(&self.file, &self.path)
            .write_all(&self.buf)
            .map_err(|e| StoreError::io(&self.path, e))?;
        self.buf.clear();
        Ok(())
    }

    /// Appends one entry of a table whose entries are `bytes.len()` wide.
    pub(crate) fn push_entry(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.push(bytes)?;
        self.sum.entries += 1;
        Ok(())
    }

    /// Appends entries `width` bytes wide, back to back.
    pub(crate) fn push_entries(&mut self, bytes: &[u8], width: usize) -> Result<(), StoreError> {
        debug_assert_eq!(bytes.len() % width, 0);
        self.push(bytes)?;
        self.sum.entries += (bytes.len() / width) as u64;
        Ok(())
    }

    /// Appends bytes to a table of single bytes.
    pub(crate) fn push_bytes(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.push(bytes)?;
        self.sum.entries += bytes.len() as u64;
        Ok(())
    }

    /// Makes the file durable and returns its sums.
    pub(crate) fn finish(mut self) -> Result<TableSum, StoreError> {
        if !self.block.is_empty() {
            self.sum.blocks.push(crc32c::crc32c(&self.block));
        }
        self.write_out()?;
        self.io.sync_all(&self.file, &self.path)?;
        Ok(self.sum)
    }
}

/// Everything a run's `.sum` file holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct RunSums {
    /// `.rid`, `.post`, `.time`, `.pidx`, `.bits`.
    pub(crate) tables: [TableSum; 5],
    /// How many postings `.post` holds.
    pub(crate) postings: u64,
    /// The keys `.bits` holds bitmaps of, ascending.
    pub(crate) dense: Vec<u128>,
    pub(crate) bloom: u32,
    /// The key filter: how many distinct keys it holds, how many it was sized for, its sum.
    pub(crate) keys: KeyFilterSum,
}

/// What a run's `.sum` says of its key filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct KeyFilterSum {
    pub(crate) keys: u64,
    pub(crate) sized: u64,
    pub(crate) crc: u32,
}

impl RunSums {
    pub(crate) fn write(&self, io: &Io, path: &Path) -> Result<(), StoreError> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(SUM_MAGIC);
        for t in &self.tables {
            out.extend_from_slice(&t.entries.to_le_bytes());
            out.extend_from_slice(&(t.blocks.len() as u64).to_le_bytes());
            for c in &t.blocks {
                out.extend_from_slice(&c.to_le_bytes());
            }
        }
        out.extend_from_slice(&self.postings.to_le_bytes());
        out.extend_from_slice(&(self.dense.len() as u64).to_le_bytes());
        for k in &self.dense {
            out.extend_from_slice(&k.to_be_bytes());
        }
        out.extend_from_slice(&self.bloom.to_le_bytes());
        out.extend_from_slice(&self.keys.keys.to_le_bytes());
        out.extend_from_slice(&self.keys.sized.to_le_bytes());
        out.extend_from_slice(&self.keys.crc.to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&out).to_le_bytes());
        io.write_file(path, &out)
    }

    pub(crate) fn read(path: &Path) -> Result<Self, StoreError> {
        let bad = |why: &str| StoreError::Corrupted(format!("{}: {why}", path.display()));
        let bytes = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => bad("missing"),
            _ => StoreError::io(path, e),
        })?;
        if bytes.len() < SUM_MAGIC.len() + 8 || &bytes[..8] != SUM_MAGIC {
            return Err(bad("not a sums file"));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        if crc32c::crc32c(body) != u32::from_le_bytes(tail.try_into().expect("4 bytes")) {
            return Err(bad("does not match its checksum"));
        }
        let mut at = SUM_MAGIC.len();
        let mut word = |n: usize| -> Result<&[u8], StoreError> {
            let w = body.get(at..at + n).ok_or_else(|| bad("cut short"))?;
            at += n;
            Ok(w)
        };
        let mut sums = RunSums::default();
        for t in &mut sums.tables {
            t.entries = u64::from_le_bytes(word(8)?.try_into().expect("8 bytes"));
            let blocks = u64::from_le_bytes(word(8)?.try_into().expect("8 bytes"));
            for _ in 0..blocks {
                t.blocks
                    .push(u32::from_le_bytes(word(4)?.try_into().expect("4 bytes")));
            }
        }
        sums.postings = u64::from_le_bytes(word(8)?.try_into().expect("8 bytes"));
        let dense = u64::from_le_bytes(word(8)?.try_into().expect("8 bytes"));
        for _ in 0..dense {
            sums.dense
                .push(u128::from_be_bytes(word(16)?.try_into().expect("16 bytes")));
        }
        sums.bloom = u32::from_le_bytes(word(4)?.try_into().expect("4 bytes"));
        sums.keys.keys = u64::from_le_bytes(word(8)?.try_into().expect("8 bytes"));
        sums.keys.sized = u64::from_le_bytes(word(8)?.try_into().expect("8 bytes"));
        sums.keys.crc = u32::from_le_bytes(word(4)?.try_into().expect("4 bytes"));
        if sums.keys.keys > sums.keys.sized {
            return Err(bad("a key filter holding more keys than it was sized for"));
        }
        if at != body.len() {
            return Err(bad("bytes after its sums"));
        }
        Ok(sums)
    }
}

/// One run: the tables for records `first..end`.
pub(crate) struct Run {
    pub(crate) first: u64,
    pub(crate) end: u64,
    pub(crate) rid: Table,
    pub(crate) post: Postings,
    pub(crate) bits: Bitmaps,
    pub(crate) time: Table,
    bloom: Filter,
    /// The distinct posting keys: a key the run does not hold (most often asked by the
    /// ingest rules, "has this subject a record yet?") is answered without a search of its
    /// postings, which decoded blocks in every run. Not asked by `contains`: a membership is
    /// asked of a record that most often carries the key, so the probe (a read, for a filter
    /// kept in its file) would be spent for nothing.
    keys: Filter,
    /// How many distinct keys it holds, to size a merged run's filter.
    pub(crate) distinct_keys: u64,
}

/// A blocked Bloom filter over a run's record ids (or its posting keys, as uniform): each id
/// sets 7 bits of one 64-byte block (10 bits an id in all: ~1% false positives), so a probe
/// reads one block wherever the filter lies. Almost every append asks "is this id new?", and without it each run's
/// binary search would fault in pages of its `.rid` table, growing the resident set with
/// the log.
#[derive(Clone)]
pub(crate) struct Bloom {
    words: Vec<u64>,
}

const BLOOM_BITS_PER_KEY: u64 = 10;
const BLOOM_PROBES: usize = 7;
const BLOOM_BLOCK_WORDS: usize = 8;
const BLOOM_BLOCK_BYTES: usize = BLOOM_BLOCK_WORDS * 8;
/// Runs of at least this many ids keep their filter in its file (checked whole when the run
/// opens) and read one block a probe from the page cache: held in memory, the filters of
/// the largest runs were what grew with the log (12 MB at ten million records).
const BLOOM_ON_DISK_KEYS: u64 = 1 << 22;

impl Bloom {
    #[cfg(test)]
    pub(crate) fn for_keys(n: u64) -> Self {
        Bloom {
            words: vec![0; Self::blocks_for(n) * BLOOM_BLOCK_WORDS],
        }
    }

    fn blocks_for(keys: u64) -> usize {
        (keys * BLOOM_BITS_PER_KEY)
            .div_ceil(64 * BLOOM_BLOCK_WORDS as u64)
            .max(1) as usize
    }

    /// The block an id falls in and its bits there. Record ids are SHA-256 output, so their
    /// first eight bytes choose the block and the next eight, nine bits a probe, the bits.
    /// The block is the first eight bytes scaled to the filter (big-endian), so ids in
    /// ascending order fall in ascending blocks and a filter is written a block at a time.
    fn place(rid: &[u8], blocks: usize) -> (usize, [u16; BLOOM_PROBES]) {
        let h1 = u64::from_be_bytes(rid[0..8].try_into().expect("8 bytes"));
        let h2 = u64::from_le_bytes(rid[8..16].try_into().expect("8 bytes"));
        let block = ((u128::from(h1) * blocks as u128) >> 64) as usize;
        (
            block,
            std::array::from_fn(|i| ((h2 >> (9 * i)) & 511) as u16),
        )
    }

    fn block_admits(block: &[u64], bits: &[u16; BLOOM_PROBES]) -> bool {
        bits.iter()
            .all(|&b| block[usize::from(b) / 64] & (1 << (b % 64)) != 0)
    }

    fn set_bits(block: &mut [u64], bits: &[u16; BLOOM_PROBES]) {
        for &b in bits {
            block[usize::from(b) / 64] |= 1 << (b % 64);
        }
    }

    fn blocks(&self) -> usize {
        self.words.len() / BLOOM_BLOCK_WORDS
    }

    #[cfg(test)]
    pub(crate) fn insert(&mut self, rid: &[u8]) {
        let (block, bits) = Self::place(rid, self.blocks());
        Self::set_bits(
            &mut self.words[block * BLOOM_BLOCK_WORDS..][..BLOOM_BLOCK_WORDS],
            &bits,
        );
    }

    pub(crate) fn may_contain(&self, rid: &[u8]) -> bool {
        let (block, bits) = Self::place(rid, self.blocks());
        Self::block_admits(
            &self.words[block * BLOOM_BLOCK_WORDS..][..BLOOM_BLOCK_WORDS],
            &bits,
        )
    }

    #[cfg(test)]
    fn write(&self, io: &Io, path: &Path) -> Result<u32, StoreError> {
        let bytes: Vec<u8> = self.words.iter().flat_map(|w| w.to_le_bytes()).collect();
        io.write_file(path, &bytes)?;
        Ok(crc32c::crc32c(&bytes))
    }
}

/// Writes a run's Bloom filter as its ids stream past in ascending order (the order of its
/// `.rid` table): their blocks come in order, so only the block being filled is held, never
/// the filter, however large the run or the merge.
pub(crate) struct BloomWriter<'a> {
    out: TableWriter<'a>,
    path: PathBuf,
    blocks: usize,
    /// The block being filled, and its words.
    at: usize,
    block: [u64; BLOOM_BLOCK_WORDS],
    pending: Vec<u8>,
    crc: u32,
    ids: u64,
    declared: u64,
    /// Whether `declared` is the exact count (record ids) or a bound (a merge's keys).
    exact: bool,
}

impl<'a> BloomWriter<'a> {
    /// A filter for a run of `ids` record ids.
    pub(crate) fn create(io: &'a Io, path: &Path, ids: u64) -> Result<Self, StoreError> {
        Ok(BloomWriter {
            out: TableWriter::create(io, path)?,
            path: path.to_path_buf(),
            blocks: Bloom::blocks_for(ids),
            at: 0,
            block: [0; BLOOM_BLOCK_WORDS],
            pending: Vec::with_capacity(WRITE_BYTES),
            crc: 0,
            ids: 0,
            declared: ids,
            exact: true,
        })
    }

    /// A filter sized for at most `keys` keys (a merge knows its keys only as it writes them).
    pub(crate) fn at_most(io: &'a Io, path: &Path, keys: u64) -> Result<Self, StoreError> {
        Ok(BloomWriter {
            exact: false,
            ..Self::create(io, path, keys)?
        })
    }

    pub(crate) fn push(&mut self, rid: &[u8]) -> Result<(), StoreError> {
        let (block, bits) = Bloom::place(rid, self.blocks);
        if block < self.at {
            // A filter written out of order would leave ids looking absent: dedupe's guard.
            return Err(StoreError::Corrupted(format!(
                "{}: record ids out of order",
                self.path.display()
            )));
        }
        while self.at < block {
            self.next_block()?;
        }
        Bloom::set_bits(&mut self.block, &bits);
        self.ids += 1;
        Ok(())
    }

    fn next_block(&mut self) -> Result<(), StoreError> {
        for w in std::mem::take(&mut self.block) {
            self.pending.extend_from_slice(&w.to_le_bytes());
        }
        self.at += 1;
        if self.pending.len() >= WRITE_BYTES {
            self.write_pending()?;
        }
        Ok(())
    }

    fn write_pending(&mut self) -> Result<(), StoreError> {
        self.crc = crc32c::crc32c_append(self.crc, &self.pending);
        self.out.push_bytes(&self.pending)?;
        self.pending.clear();
        Ok(())
    }

    /// Makes the file durable; returns how many ids it holds and its CRC-32C.
    pub(crate) fn finish(mut self) -> Result<(u64, u32), StoreError> {
        if self.ids > self.declared || (self.exact && self.ids != self.declared) {
            // Sized for another count, the filter would be refused when its run opens.
            return Err(StoreError::Corrupted(format!(
                "{}: {} ids written to a filter for {}",
                self.path.display(),
                self.ids,
                self.declared
            )));
        }
        while self.at < self.blocks {
            self.next_block()?;
        }
        self.write_pending()?;
        self.out.finish()?;
        Ok((self.ids, self.crc))
    }
}

/// A run's two filters, read into memory.
pub(crate) struct HeldFilters {
    pub(crate) ids: Bloom,
    pub(crate) keys: Bloom,
}

/// A run's Bloom filter, in memory or, for the largest runs, in its file.
enum Filter {
    Memory(Bloom),
    File {
        file: File,
        path: PathBuf,
        blocks: usize,
        crc: u32,
    },
}

impl Filter {
    /// Opens the filter written for `keys` ids, kept in its file when `on_disk`. It is
    /// checked against its sum first, whole: a cleared bit would make an id look absent,
    /// and dedupe would append it again.
    fn open(path: &Path, (keys, crc): (u64, u32), on_disk: bool) -> Result<Self, StoreError> {
        let blocks = Bloom::blocks_for(keys);
        let bytes = blocks * BLOOM_BLOCK_BYTES;
        let wrong =
            || StoreError::Corrupted(format!("{} does not match its checksum", path.display()));
        let file = File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                StoreError::Corrupted(format!("{} is missing", path.display()))
            }
            _ => StoreError::io(path, e),
        })?;
        let len = file.metadata().map_err(|e| StoreError::io(path, e))?.len();
        if len != bytes as u64 {
            return Err(wrong());
        }
        // A filter left in its file is never held whole.
        let words = Self::read_checked(&file, path, bytes, crc, !on_disk)?;
        Ok(if on_disk {
            Filter::File {
                file,
                path: path.to_path_buf(),
                blocks,
                crc,
            }
        } else {
            Filter::Memory(Bloom { words })
        })
    }

    /// Reads a filter's `bytes` a piece at a time, checking them against `crc`; their words
    /// when `keep`, else none.
    fn read_checked(
        file: &File,
        path: &Path,
        bytes: usize,
        crc: u32,
        keep: bool,
    ) -> Result<Vec<u64>, StoreError> {
        let mut words = Vec::with_capacity(if keep { bytes / 8 } else { 0 });
        let (mut sum, mut at, mut piece) = (0u32, 0usize, vec![0u8; (1 << 20).min(bytes)]);
        while at < bytes {
            let n = piece.len().min(bytes - at);
            file.read_exact_at(&mut piece[..n], at as u64)
                .map_err(|e| StoreError::io(path, e))?;
            sum = crc32c::crc32c_append(sum, &piece[..n]);
            if keep {
                words.extend(
                    piece[..n]
                        .chunks_exact(8)
                        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))),
                );
            }
            at += n;
        }
        if sum != crc {
            return Err(StoreError::Corrupted(format!(
                "{} does not match its checksum",
                path.display()
            )));
        }
        Ok(words)
    }

    /// The filter in memory: read whole, and checked again, when it is kept in its file.
    fn held(&self) -> Result<Bloom, StoreError> {
        match self {
            Filter::Memory(b) => Ok(b.clone()),
            Filter::File {
                file,
                path,
                blocks,
                crc,
            } => Ok(Bloom {
                words: Self::read_checked(file, path, blocks * BLOOM_BLOCK_BYTES, *crc, true)?,
            }),
        }
    }

    fn admits(&self, rid: &[u8]) -> Result<bool, StoreError> {
        match self {
            Filter::Memory(b) => Ok(b.may_contain(rid)),
            Filter::File {
                file, path, blocks, ..
            } => {
                let (block, bits) = Bloom::place(rid, *blocks);
                let mut bytes = [0u8; BLOOM_BLOCK_BYTES];
                file.read_exact_at(&mut bytes, (block * BLOOM_BLOCK_BYTES) as u64)
                    .map_err(|e| StoreError::io(path, e))?;
                let words: [u64; BLOOM_BLOCK_WORDS] = std::array::from_fn(|i| {
                    u64::from_le_bytes(bytes[i * 8..][..8].try_into().expect("8 bytes"))
                });
                Ok(Bloom::block_admits(&words, &bits))
            }
        }
    }
}

pub(crate) fn stem(dir: &Path, first: u64, end: u64) -> PathBuf {
    dir.join(format!("run-{first:020}-{end:020}"))
}

impl Run {
    /// Opens a run whose files were written and named in the manifest; its sums file and
    /// Bloom filter are checked now, its tables block by block as they are read.
    pub(crate) fn open(dir: &Path, first: u64, end: u64) -> Result<Self, StoreError> {
        let s = stem(dir, first, end);
        let sums = RunSums::read(&s.with_extension("sum"))?;
        let key_filter = sums.keys;
        let [rid, post, time, blocks, bits] = sums.tables;
        let keys = rid.entries;
        let bits = Bitmaps::open(
            Table::open(&s.with_extension("bits"), bitmaps::WORD_WIDTH, bits)?,
            sums.dense,
            first,
            end,
        )?;
        let post = Postings::open(
            Table::open(&s.with_extension("post"), 1, post)?,
            Table::open(&s.with_extension("pidx"), BLOCK_ENTRY_WIDTH, blocks)?,
            sums.postings,
            first,
            end,
        )?;
        Ok(Run {
            first,
            end,
            rid: Table::open(&s.with_extension("rid"), RID_WIDTH, rid)?,
            post,
            bits,
            time: Table::open(&s.with_extension("time"), TIME_WIDTH, time)?,
            bloom: Filter::open(
                &s.with_extension("bloom"),
                (keys, sums.bloom),
                keys >= BLOOM_ON_DISK_KEYS,
            )?,
            keys: Filter::open(
                &s.with_extension("kbloom"),
                (key_filter.sized, key_filter.crc),
                key_filter.sized >= BLOOM_ON_DISK_KEYS,
            )?,
            distinct_keys: key_filter.keys,
        })
    }

    /// Writes the sums file of a run whose tables and Bloom filters (`(ids, crc)`, written
    /// over the ids as they streamed past, and the key filter's) were just written; before
    /// `open`.
    pub(crate) fn write_sums(
        io: &Io,
        dir: &Path,
        (first, end): (u64, u64),
        ((ids, bloom), keys): ((u64, u32), KeyFilterSum),
        tables: [TableSum; 5],
        (postings, dense): (u64, Vec<u128>),
    ) -> Result<(), StoreError> {
        if ids != tables[0].entries {
            return Err(StoreError::Corrupted(format!(
                "a Bloom filter of {ids} ids for run {first}..{end} of {} ids",
                tables[0].entries
            )));
        }
        let s = stem(dir, first, end);
        RunSums {
            tables,
            postings,
            dense,
            bloom,
            keys,
        }
        .write(io, &s.with_extension("sum"))
    }

    /// Checks every block of every table (for verification).
    pub(crate) fn check_all(&self) -> Result<(), StoreError> {
        self.rid.check_all()?;
        self.post.check_all()?;
        self.bits.check_all()?;
        self.time.check_all()
    }

    /// Whether `(key, seq)` is a posting: one word of a bitmap for a dense key, else one
    /// search decoding no more of a block than it reads.
    pub(crate) fn contains(&self, key: &[u8; 16], seq: u64) -> Result<bool, StoreError> {
        let target = postings::posting(key, seq);
        match self.bits.find(target.0) {
            Some(k) => self.bits.has(k, seq),
            None => self.post.contains(target),
        }
    }

    /// That every bitmap marks exactly its key's postings (for verification: a membership
    /// answered by a bitmap is then one the postings would give).
    pub(crate) fn check_bitmaps(&self) -> Result<(), StoreError> {
        for (k, &key) in self.bits.keys().iter().enumerate() {
            let mut listed = Vec::new();
            self.postings(&key.to_be_bytes(), 0, usize::MAX, &mut listed)?;
            if self.bits.ones(k)? != listed {
                return Err(StoreError::Corrupted(format!(
                    "run {}..{}: the bitmap of key {key:032x} does not mark exactly its {} postings",
                    self.first,
                    self.end,
                    listed.len()
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn lookup_rid(&self, rid: &[u8; 32]) -> Result<Option<u64>, StoreError> {
        if !self.bloom.admits(rid)? {
            return Ok(None);
        }
        Ok(self
            .rid
            .find_by_reading(rid)?
            .map(|entry| u64::from_be_bytes(entry[32..].try_into().expect("8 bytes"))))
    }

    /// Both filters in memory, for a walk that probes them for every record of the run
    /// (verification: every id and key of the run must pass). A filter kept in its file
    /// would cost a read a probe.
    pub(crate) fn held_filters(&self) -> Result<HeldFilters, StoreError> {
        Ok(HeldFilters {
            ids: self.bloom.held()?,
            keys: self.keys.held()?,
        })
    }

    /// Seqs of `key` greater than or equal to `from`, ascending, appended to `out` until it holds `limit`.
    pub(crate) fn postings(
        &self,
        key: &[u8; 16],
        from: u64,
        limit: usize,
        out: &mut Vec<u64>,
    ) -> Result<(), StoreError> {
        if !self.keys.admits(key)? {
            return Ok(());
        }
        let mut block = Block::default();
        let want = u128::from_be_bytes(*key);
        let mut i = self.post.lower_bound(postings::posting(key, from))?;
        while i < self.post.len() && out.len() < limit {
            let (k, seq) = self.post.get(i, &mut block)?;
            if k != want {
                break;
            }
            out.push(seq);
            i += 1;
        }
        Ok(())
    }

    /// Whether `(key, seq)` is a posting, searched forward from `*at`, which must not be past
    /// it and whose posting `*here` is (`None` past the end); both are left on the first
    /// posting at or after it, and `block` keeps the block decoded there. Asked for
    /// ascending seqs, each answer costs the log of the distance moved rather than of the
    /// run: intersecting two large postings decodes the blocks around each candidate once.
    pub(crate) fn contains_from(
        &self,
        key: &[u8; 16],
        seq: u64,
        (at, here): (&mut usize, &mut Option<Posting>),
        block: &mut Block,
    ) -> Result<bool, StoreError> {
        let target = postings::posting(key, seq);
        if here.is_some_and(|p| p < target) {
            (*at, *here) = self.post.lower_bound_from(target, *at, block)?;
        }
        Ok(*here == Some(target))
    }

    /// Whether the event-time table holds record `seq` at time `ns`.
    pub(crate) fn has_time(&self, ns: i64, seq: u64) -> Result<bool, StoreError> {
        let mut probe = [0u8; TIME_WIDTH];
        probe[..8].copy_from_slice(&time_key(ns));
        probe[8..].copy_from_slice(&seq.to_be_bytes());
        let i = self.time.lower_bound(&probe)?;
        Ok(i < self.time.len() && self.time.entry(i)? == probe)
    }

    pub(crate) fn count(&self, key: &[u8; 16]) -> Result<u64, StoreError> {
        if !self.keys.admits(key)? {
            return Ok(0);
        }
        let lo = self.post.lower_bound(postings::posting(key, 0))?;
        let hi = match u128::from_be_bytes(*key).checked_add(1) {
            Some(next) => self.post.lower_bound((next, 0))?,
            None => self.post.len(),
        };
        Ok((hi - lo) as u64)
    }

    /// How many records in `[from, below)` carry `key`: two binary searches.
    pub(crate) fn count_in(
        &self,
        key: &[u8; 16],
        from: u64,
        below: u64,
    ) -> Result<u64, StoreError> {
        if from >= below {
            return Ok(0);
        }
        let lo = self.post.lower_bound(postings::posting(key, from))?;
        let hi = self.post.lower_bound(postings::posting(key, below))?;
        Ok((hi - lo) as u64)
    }

    /// Seqs whose event time is in `[from, to)`.
    pub(crate) fn time_range(
        &self,
        from: i64,
        to: i64,
        out: &mut Vec<u64>,
    ) -> Result<(), StoreError> {
        let mut i = self.time.lower_bound(&time_key(from))?;
        let stop = time_key(to);
        while i < self.time.len() && self.time.entry(i)?[..8] < stop[..] {
            out.push(self.time.seq_at(i)?);
            i += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealog_model::RecordId;
    use std::fs;

    fn rid(i: u64) -> [u8; 32] {
        RecordId::of_canonical(&i.to_le_bytes()).0
    }

    #[test]
    fn a_stream_reads_every_entry_across_blocks_and_buffers_and_refuses_a_damaged_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.post");
        // Entries of 24 bytes straddle 4 KiB blocks; enough of them to refill the buffer.
        const WIDTH: usize = 24;
        let n = STREAM_BYTES / WIDTH * 2 + 77;
        let entry = |i: usize| {
            let mut e = [(i % 251) as u8; WIDTH];
            e[16..].copy_from_slice(&(i as u64).to_be_bytes());
            e
        };
        let sum = write_table(
            &crate::io::Io::default(),
            &path,
            (0..n).map(|i| Ok(entry(i))),
        )
        .unwrap();
        let table = Table::open(&path, WIDTH, sum.clone()).unwrap();
        let mut stream = table.stream();
        for i in 0..n {
            assert_eq!(stream.peek().unwrap(), Some(&entry(i)[..]), "entry {i}");
            stream.advance();
        }
        assert_eq!(stream.peek().unwrap(), None);

        let mut bytes = fs::read(&path).unwrap();
        let at = STREAM_BYTES + 5 * BLOCK_BYTES + 9;
        bytes[at] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let table = Table::open(&path, WIDTH, sum).unwrap();
        let mut stream = table.stream();
        let mut read = 0;
        let e = loop {
            match stream.peek() {
                Ok(Some(_)) => {
                    read += 1;
                    stream.advance();
                }
                Ok(None) => panic!("the damaged block went unnoticed"),
                Err(e) => break e,
            }
        };
        assert!(e.to_string().contains("block 261"), "{e}");
        assert_eq!(
            read,
            STREAM_BYTES / WIDTH,
            "entries before the damaged buffer"
        );
    }

    /// Found by reading, a table answers as a search of its entries in memory does, for keys
    /// it holds and keys it lacks, whether its keys are spread evenly (record ids) or
    /// bunched; the even ones take a few reads where halving takes about seventeen.
    #[test]
    fn a_search_by_reading_answers_as_one_in_memory_in_few_reads_of_even_keys() {
        let dir = tempfile::tempdir().unwrap();
        let io = Io::default();
        let n = 100_000u64;
        let uniform: Vec<[u8; RID_WIDTH]> = (0..n)
            .map(|i| {
                let mut e = [0u8; RID_WIDTH];
                e[..32].copy_from_slice(&rid(i));
                e[32..].copy_from_slice(&i.to_be_bytes());
                e
            })
            .collect();
        // Keys sharing their first eight bytes, then bunched in two clusters.
        let bunched: Vec<[u8; RID_WIDTH]> = (0..n)
            .map(|i| {
                let mut e = [7u8; RID_WIDTH];
                let v = if i % 2 == 0 { i } else { u64::MAX - i };
                e[8..16].copy_from_slice(&v.to_be_bytes());
                e[16..24].copy_from_slice(&rid(i)[..8]);
                e[32..].copy_from_slice(&i.to_be_bytes());
                e
            })
            .collect();
        for (name, mut entries) in [("uniform", uniform), ("bunched", bunched)] {
            entries.sort_unstable();
            let path = dir.path().join(format!("{name}.rid"));
            let sum = write_table(&io, &path, entries.iter().map(|e| Ok(*e))).unwrap();
            let table = Table::open(&path, RID_WIDTH, sum).unwrap();
            let mut reads = 0;
            let mut asked = 0;
            for e in entries.iter().step_by(97) {
                let (found, r) = table.search_by_reading(&e[..32]).unwrap();
                assert_eq!(found.as_deref(), Some(&e[..]), "{name}");
                reads += r;
                asked += 1;
            }
            for e in entries.iter().step_by(89) {
                // Keys just above and below one it holds, which it lacks.
                let mut near = *e;
                near[31] ^= 1;
                let held = entries
                    .binary_search_by(|x| x[..32].cmp(&near[..32]))
                    .is_ok();
                let (found, r) = table.search_by_reading(&near[..32]).unwrap();
                assert_eq!(found.is_some(), held, "{name}");
                assert!(r <= 2 * 17 + 2, "{name}: {r} reads");
                reads += r;
                asked += 1;
            }
            for k in [[0u8; 32], [0xff; 32]] {
                assert_eq!(table.search_by_reading(&k).unwrap().0, None, "{name}");
            }
            if name == "uniform" {
                assert!(
                    reads <= 4 * asked,
                    "{reads} reads for {asked} searches of even keys"
                );
            }
        }
        let path = dir.path().join("empty.rid");
        let sum =
            write_table(&io, &path, std::iter::empty::<Result<[u8; RID_WIDTH], _>>()).unwrap();
        let table = Table::open(&path, RID_WIDTH, sum).unwrap();
        assert_eq!(table.search_by_reading(&rid(1)).unwrap(), (None, 0));
    }

    #[test]
    fn bloom_never_misses_a_key_and_rarely_admits_a_stranger() {
        let mut b = Bloom::for_keys(10_000);
        for i in 0..10_000 {
            b.insert(&rid(i));
        }
        assert!((0..10_000).all(|i| b.may_contain(&rid(i))));
        let strangers = (10_000..110_000)
            .filter(|&i| b.may_contain(&rid(i)))
            .count();
        assert!(
            strangers < 3_000,
            "{strangers} false positives in 100k: the filter is not doing its job"
        );
        let empty = Bloom::for_keys(0);
        assert!(!empty.may_contain(&rid(1)));
    }

    /// The filter written as sorted ids stream past is, byte for byte, the one made by
    /// setting each id's bits in memory; ids out of order are refused, not written.
    #[test]
    fn a_filter_written_as_ids_stream_past_is_the_one_built_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let io = Io::default();
        for n in [0u64, 1, 2, 51, 52, 1_000, 25_000] {
            let mut ids: Vec<[u8; 32]> = (0..n).map(rid).collect();
            ids.sort_unstable();
            let mut b = Bloom::for_keys(n);
            ids.iter().for_each(|id| b.insert(id));
            let path = dir.path().join(format!("{n}.bloom"));
            let mut w = BloomWriter::create(&io, &path, n).unwrap();
            for id in &ids {
                w.push(id).unwrap();
            }
            let (written, crc) = w.finish().unwrap();
            let want: Vec<u8> = b.words.iter().flat_map(|w| w.to_le_bytes()).collect();
            assert_eq!(written, n);
            assert_eq!(fs::read(&path).unwrap(), want, "{n} ids");
            assert_eq!(crc, crc32c::crc32c(&want), "{n} ids");
        }
        let mut ids: Vec<[u8; 32]> = (0..1_000).map(rid).collect();
        ids.sort_unstable();
        ids.swap(100, 900);
        let mut w = BloomWriter::create(&io, &dir.path().join("x.bloom"), 1_000).unwrap();
        let refused = ids.iter().map(|id| w.push(id)).find_map(Result::err);
        assert!(
            matches!(refused, Some(StoreError::Corrupted(ref m)) if m.contains("out of order")),
            "{refused:?}"
        );
        let mut w = BloomWriter::create(&io, &dir.path().join("y.bloom"), 1_000).unwrap();
        ids.sort_unstable();
        for id in &ids[..999] {
            w.push(id).unwrap();
        }
        assert!(
            w.finish().is_err(),
            "fewer ids than the filter was made for"
        );
    }

    /// A filter probed in its file answers as the same filter in memory, and one whose file
    /// was damaged, cut or lost, or is sized for another run, is refused when it is opened,
    /// in either place.
    #[test]
    fn a_filter_in_its_file_answers_as_in_memory_and_damage_is_refused_on_opening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.bloom");
        let mut b = Bloom::for_keys(10_000);
        for i in 0..10_000 {
            b.insert(&rid(i));
        }
        let crc = b.write(&Io::default(), &path).unwrap();
        let sum = (10_000, crc);
        let from_file = Filter::open(&path, sum, true).unwrap();
        let read_in = Filter::open(&path, sum, false).unwrap();
        assert!(matches!(from_file, Filter::File { .. }));
        assert!(matches!(read_in, Filter::Memory(_)));
        let mut admitted = 0;
        for i in 0..60_000 {
            let want = b.may_contain(&rid(i));
            assert_eq!(from_file.admits(&rid(i)).unwrap(), want, "id {i}");
            assert_eq!(read_in.admits(&rid(i)).unwrap(), want, "id {i}");
            admitted += usize::from(want);
        }
        assert!((10_000..12_000).contains(&admitted), "{admitted}");
        assert!(
            Filter::open(&path, (20_000, crc), true).is_err(),
            "sized for another run"
        );
        let bytes = fs::read(&path).unwrap();
        for on_disk in [true, false] {
            let mut flipped = bytes.clone();
            flipped[bytes.len() / 3] ^= 0x10;
            fs::write(&path, &flipped).unwrap();
            assert!(Filter::open(&path, sum, on_disk).is_err(), "flipped");
            fs::write(&path, &bytes[..bytes.len() - 64]).unwrap();
            assert!(Filter::open(&path, sum, on_disk).is_err(), "cut");
            fs::remove_file(&path).unwrap();
            assert!(Filter::open(&path, sum, on_disk).is_err(), "lost");
            fs::write(&path, &bytes).unwrap();
            assert!(Filter::open(&path, sum, on_disk).is_ok());
        }
    }
}
