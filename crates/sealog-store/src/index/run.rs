//! Immutable sorted runs: flat arrays of fixed-width entries, searched in place through a
//! read-only memory map. A run covers a contiguous seq range, so a key's postings across
//! runs read oldest to newest are already in seq order.
//!
//! ```text
//! .rid   entry = record_id[32] seq:u64be             sorted by record_id
//! .post  entry = posting[16]   seq:u64be             sorted by (posting, seq)
//! .time  entry = event_ns:u64be(sign flipped) seq:u64be   sorted by (time, seq)
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::StoreError;

pub(crate) const RID_WIDTH: usize = 40;
pub(crate) const POST_WIDTH: usize = 24;
pub(crate) const TIME_WIDTH: usize = 16;

/// Maps signed nanoseconds onto unsigned ones with the same order.
pub(crate) fn time_key(ns: i64) -> [u8; 8] {
    ((ns as u64) ^ (1 << 63)).to_be_bytes()
}

pub(crate) struct Table {
    map: Option<Mmap>,
    file: File,
    width: usize,
}

impl Table {
    pub(crate) fn open(path: &Path, width: usize, entries: u64) -> Result<Self, StoreError> {
        // A run is derived data: one that is missing is rebuilt from the log, like a damaged one.
        let file = File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                StoreError::Corrupted(format!("{} is missing", path.display()))
            }
            _ => StoreError::io(path, e),
        })?;
        let len = file.metadata().map_err(|e| StoreError::io(path, e))?.len();
        if len != entries * width as u64 {
            return Err(StoreError::Corrupted(format!(
                "{} is {len} bytes, expected {} entries of {width}",
                path.display(),
                entries
            )));
        }
        let map = if len == 0 {
            None
        } else {
            Some(map_read_only(&file, path)?)
        };
        Ok(Table { map, file, width })
    }

    /// Finds the entry starting with `key` by reading the file rather than the map. Used for
    /// lookups the Bloom filter lets through (about 1% of them for new ids): faulting their
    /// random pages into the map would grow the resident set with the log.
    pub(crate) fn find_by_reading(&self, key: &[u8]) -> Option<Vec<u8>> {
        let mut entry = vec![0u8; self.width];
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            self.file
                .read_exact_at(&mut entry, (mid * self.width) as u64)
                .ok()?;
            match entry[..key.len()].cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(entry),
            }
        }
        None
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes().len() / self.width
    }

    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    pub(crate) fn entry(&self, i: usize) -> &[u8] {
        &self.bytes()[i * self.width..(i + 1) * self.width]
    }

    /// Index of the first entry whose leading bytes are `>= key`.
    pub(crate) fn lower_bound(&self, key: &[u8]) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if &self.entry(mid)[..key.len()] < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    pub(crate) fn seq_at(&self, i: usize) -> u64 {
        let e = self.entry(i);
        u64::from_be_bytes(e[self.width - 8..].try_into().expect("8 bytes"))
    }
}

#[allow(unsafe_code)]
fn map_read_only(file: &File, path: &Path) -> Result<Mmap, StoreError> {
    // SAFETY: run files are written once, fsynced, and never modified afterwards; they live in
    // a directory this process holds the exclusive lock on. Another process truncating one
    // would be tampering, which the log's own verification is there to find.
    unsafe { Mmap::map(file) }.map_err(|e| StoreError::io(path, e))
}

/// Writes sorted fixed-width entries to a new file and makes it durable.
pub(crate) fn write_table(
    path: &Path,
    entries: impl Iterator<Item = impl AsRef<[u8]>>,
) -> Result<u64, StoreError> {
    let file = File::create(path).map_err(|e| StoreError::io(path, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut n = 0u64;
    for e in entries {
        w.write_all(e.as_ref())
            .map_err(|e| StoreError::io(path, e))?;
        n += 1;
    }
    let file = w
        .into_inner()
        .map_err(|e| StoreError::io(path, e.into_error()))?;
    file.sync_all().map_err(|e| StoreError::io(path, e))?;
    Ok(n)
}

/// One run: the three tables for records `first..end`.
pub(crate) struct Run {
    pub(crate) first: u64,
    pub(crate) end: u64,
    pub(crate) rid: Table,
    pub(crate) post: Table,
    pub(crate) time: Table,
    bloom: Bloom,
}

/// A Bloom filter over a run's record ids (10 bits each, 7 probes: ~1% false positives).
/// Almost every append asks "is this id new?", and without it each run's binary search
/// would fault in pages of its `.rid` table, growing the resident set with the log.
struct Bloom {
    words: Vec<u64>,
}

const BLOOM_BITS_PER_KEY: u64 = 10;
const BLOOM_PROBES: u64 = 7;

impl Bloom {
    fn for_keys(n: u64) -> Self {
        Bloom {
            words: vec![0; (n * BLOOM_BITS_PER_KEY).div_ceil(64).max(1) as usize],
        }
    }

    /// Record ids are SHA-256 output, so two slices of one are independent hashes.
    fn probes(rid: &[u8], words: usize) -> impl Iterator<Item = usize> {
        let h1 = u64::from_le_bytes(rid[0..8].try_into().expect("8 bytes"));
        let h2 = u64::from_le_bytes(rid[8..16].try_into().expect("8 bytes")) | 1;
        let m = words as u64 * 64;
        (0..BLOOM_PROBES).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % m) as usize)
    }

    fn insert(&mut self, rid: &[u8]) {
        for bit in Self::probes(rid, self.words.len()) {
            self.words[bit / 64] |= 1 << (bit % 64);
        }
    }

    fn may_contain(&self, rid: &[u8]) -> bool {
        Self::probes(rid, self.words.len()).all(|bit| self.words[bit / 64] & (1 << (bit % 64)) != 0)
    }

    fn read(path: &Path, keys: u64) -> Result<Self, StoreError> {
        let bytes = std::fs::read(path).map_err(|e| StoreError::io(path, e))?;
        let expected = Bloom::for_keys(keys).words.len() * 8;
        if bytes.len() != expected {
            return Err(StoreError::Corrupted(format!(
                "{} is {} bytes, expected {expected}",
                path.display(),
                bytes.len()
            )));
        }
        Ok(Bloom {
            words: bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        })
    }

    fn write(&self, path: &Path) -> Result<(), StoreError> {
        write_table(path, self.words.iter().map(|w| w.to_le_bytes())).map(drop)
    }
}

pub(crate) fn stem(dir: &Path, first: u64, end: u64) -> PathBuf {
    dir.join(format!("run-{first:020}-{end:020}"))
}

impl Run {
    pub(crate) fn open(
        dir: &Path,
        first: u64,
        end: u64,
        counts: [u64; 3],
    ) -> Result<Self, StoreError> {
        let s = stem(dir, first, end);
        Ok(Run {
            first,
            end,
            rid: Table::open(&s.with_extension("rid"), RID_WIDTH, counts[0])?,
            post: Table::open(&s.with_extension("post"), POST_WIDTH, counts[1])?,
            time: Table::open(&s.with_extension("time"), TIME_WIDTH, counts[2])?,
            bloom: Bloom::read(&s.with_extension("bloom"), counts[0])
                .or_else(|_| Self::rebuild_bloom(dir, first, end, counts[0]))?,
        })
    }

    /// A missing or damaged filter is derived data: rebuild it from the run's own ids.
    fn rebuild_bloom(dir: &Path, first: u64, end: u64, keys: u64) -> Result<Bloom, StoreError> {
        let rid = Table::open(
            &stem(dir, first, end).with_extension("rid"),
            RID_WIDTH,
            keys,
        )?;
        Self::write_bloom(
            dir,
            first,
            end,
            (0..rid.len()).map(|i| &rid.entry(i)[..32]),
            keys,
        )?;
        Bloom::read(&stem(dir, first, end).with_extension("bloom"), keys)
    }

    /// Writes the Bloom filter file of a run whose tables were just written; must come
    /// before `open`.
    pub(crate) fn write_bloom(
        dir: &Path,
        first: u64,
        end: u64,
        rids: impl Iterator<Item = impl AsRef<[u8]>>,
        keys: u64,
    ) -> Result<(), StoreError> {
        let mut bloom = Bloom::for_keys(keys);
        for r in rids {
            bloom.insert(r.as_ref());
        }
        bloom.write(&stem(dir, first, end).with_extension("bloom"))
    }

    pub(crate) fn counts(&self) -> [u64; 3] {
        [
            self.rid.len() as u64,
            self.post.len() as u64,
            self.time.len() as u64,
        ]
    }

    pub(crate) fn lookup_rid(&self, rid: &[u8; 32]) -> Option<u64> {
        if !self.bloom.may_contain(rid) {
            return None;
        }
        let entry = self.rid.find_by_reading(rid)?;
        Some(u64::from_be_bytes(entry[32..].try_into().expect("8 bytes")))
    }

    /// Seqs of `key` greater than or equal to `from`, ascending, appended to `out` until it holds `limit`.
    pub(crate) fn postings(&self, key: &[u8; 16], from: u64, limit: usize, out: &mut Vec<u64>) {
        let mut probe = [0u8; POST_WIDTH];
        probe[..16].copy_from_slice(key);
        probe[16..].copy_from_slice(&from.to_be_bytes());
        let mut i = self.post.lower_bound(&probe);
        while i < self.post.len() && out.len() < limit && &self.post.entry(i)[..16] == key {
            out.push(self.post.seq_at(i));
            i += 1;
        }
    }

    pub(crate) fn contains(&self, key: &[u8; 16], seq: u64) -> bool {
        let mut probe = [0u8; POST_WIDTH];
        probe[..16].copy_from_slice(key);
        probe[16..].copy_from_slice(&seq.to_be_bytes());
        let i = self.post.lower_bound(&probe);
        i < self.post.len() && self.post.entry(i) == probe
    }

    pub(crate) fn count(&self, key: &[u8; 16]) -> u64 {
        let lo = self.post.lower_bound(key);
        let mut next = *key;
        // The first key after `key`: increment it as a big-endian number.
        let hi = match increment(&mut next) {
            true => self.post.lower_bound(&next),
            false => self.post.len(),
        };
        (hi - lo) as u64
    }

    /// Seqs whose event time is in `[from, to)`.
    pub(crate) fn time_range(&self, from: i64, to: i64, out: &mut Vec<u64>) {
        let mut i = self.time.lower_bound(&time_key(from));
        let stop = time_key(to);
        while i < self.time.len() && self.time.entry(i)[..8] < stop[..] {
            out.push(self.time.seq_at(i));
            i += 1;
        }
    }
}

fn increment(key: &mut [u8; 16]) -> bool {
    for b in key.iter_mut().rev() {
        if *b == 0xff {
            *b = 0;
        } else {
            *b += 1;
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealog_model::RecordId;

    fn rid(i: u64) -> [u8; 32] {
        RecordId::of_canonical(&i.to_le_bytes()).0
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
}
