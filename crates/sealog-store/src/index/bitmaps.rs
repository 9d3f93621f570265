//! Bitmaps of a run's dense keys: for each key on at least one record in [`DENSE_RATIO`] of
//! the run (and on at least [`DENSE_MIN`] records), one bit per record of the run. An
//! intersection asks them two things a walk of postings answers slowly:
//! - "does record `seq` carry this key?": one word read, where checking 150,000 candidates
//!   of a tenant against an actor on every eighth record decoded the actor's 1.25M postings;
//! - "which records carry all of these keys?": when every key is dense, an AND a word at a
//!   time, where two large keys that never meet cost a walk of the rarer one's postings.
//!
//! The postings stay whole beside them.
//!
//! ```text
//! .bits  word*    u64 LE; bitmap k is words k·W .. (k+1)·W, W = ceil((end-first)/64),
//!                 bit i of word j = record first + 64·j + i carries the k-th dense key
//! ```
//!
//! Which keys are dense, in ascending order, is kept in the run's sums file. A bitmap costs
//! one bit a record of the run: at most 16 bytes a posting of its key, against the one or
//! two its compressed postings cost. Keys that dense are few (an axis whose every record has
//! one value has at most 128 of them), and sparser keys are cheap to walk.

use crate::error::StoreError;
use crate::io::Io;

use super::run::{Table, TableSum, TableWriter};

/// A key is dense when it is on at least one record in this many.
pub(crate) const DENSE_RATIO: u64 = 128;
/// ... and on at least this many records: a key with fewer is one block of postings.
pub(crate) const DENSE_MIN: u64 = 64;
pub(crate) const WORD_WIDTH: usize = 8;
/// Words of each bitmap read at a time when ANDing: one 4 KiB block.
const CHUNK_WORDS: usize = 512;

fn words_for(first: u64, end: u64) -> usize {
    (end - first).div_ceil(64) as usize
}

/// How many postings make a key dense in a run of `len` records.
fn threshold(len: u64) -> u64 {
    len.div_ceil(DENSE_RATIO).max(DENSE_MIN)
}

/// A run's bitmaps, checked block by block against their sums as they are read.
pub(crate) struct Bitmaps {
    keys: Vec<u128>,
    table: Table,
    words: usize,
    first: u64,
    end: u64,
}

impl Bitmaps {
    pub(crate) fn open(
        table: Table,
        keys: Vec<u128>,
        first: u64,
        end: u64,
    ) -> Result<Self, StoreError> {
        let words = words_for(first, end);
        let bad = |why: String| StoreError::Corrupted(format!("{}: {why}", table.path().display()));
        if table.len() != keys.len() * words {
            return Err(bad(format!(
                "{} words for {} bitmaps of {words}",
                table.len(),
                keys.len()
            )));
        }
        if keys.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad("dense keys out of order".into()));
        }
        Ok(Bitmaps {
            keys,
            table,
            words,
            first,
            end,
        })
    }

    /// The dense keys, ascending.
    pub(crate) fn keys(&self) -> &[u128] {
        &self.keys
    }

    /// Which bitmap is `key`'s, if it is dense here.
    pub(crate) fn find(&self, key: u128) -> Option<usize> {
        self.keys.binary_search(&key).ok()
    }

    /// Whether record `seq` carries the key of bitmap `k`; no record outside the run does.
    #[inline]
    pub(crate) fn has(&self, k: usize, seq: u64) -> Result<bool, StoreError> {
        if !(self.first..self.end).contains(&seq) {
            return Ok(false);
        }
        let i = (seq - self.first) as usize;
        let word = self.table.entry(k * self.words + i / 64)?;
        let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        Ok(word & (1 << (i % 64)) != 0)
    }

    /// Appends to `out` the records of `[from, below)` that every bitmap of `ks` marks,
    /// ascending, until it holds `want`; returns the record the search stopped before
    /// (`below`, or the run's end, when it got there). A word at a time: intersecting two keys
    /// on a million records each reads 16,000 words of each.
    pub(crate) fn and(
        &self,
        ks: &[usize],
        from: u64,
        below: u64,
        want: usize,
        out: &mut Vec<u64>,
    ) -> Result<u64, StoreError> {
        let (lo, hi) = (from.max(self.first), below.min(self.end));
        if lo >= hi || out.len() >= want {
            return Ok(hi.max(lo));
        }
        let (lo_bit, hi_bit) = ((lo - self.first) as usize, (hi - self.first) as usize);
        let mut j = lo_bit / 64;
        let last = (hi_bit - 1) / 64;
        let mut acc = vec![0u64; CHUNK_WORDS];
        while j <= last {
            let n = (last + 1 - j).min(CHUNK_WORDS);
            acc[..n].fill(!0);
            for &k in ks {
                let at = k * self.words + j;
                let bytes = self.table.entries(at..at + n)?;
                for (a, w) in acc[..n].iter_mut().zip(bytes.chunks_exact(WORD_WIDTH)) {
                    *a &= u64::from_le_bytes(w.try_into().expect("8 bytes"));
                }
            }
            for (i, &w) in acc[..n].iter().enumerate() {
                let word = j + i;
                let mut w = w;
                if word == lo_bit / 64 {
                    w &= !0u64 << (lo_bit % 64);
                }
                if word == last && hi_bit % 64 != 0 {
                    w &= !0u64 >> (64 - hi_bit % 64);
                }
                while w != 0 {
                    let seq = self.first + (word * 64) as u64 + u64::from(w.trailing_zeros());
                    out.push(seq);
                    if out.len() >= want {
                        return Ok(seq + 1);
                    }
                    w &= w - 1;
                }
            }
            j += n;
        }
        Ok(hi)
    }

    /// The records bitmap `k` marks, ascending (for verification): every bit is read, those
    /// past the run's end included, which [`Bitmaps::and`] masks, so that a stray one shows.
    pub(crate) fn ones(&self, k: usize) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        for j in 0..self.words {
            let mut w = u64::from_le_bytes(
                self.table
                    .entry(k * self.words + j)?
                    .try_into()
                    .expect("8 bytes"),
            );
            while w != 0 {
                out.push(self.first + (j * 64) as u64 + u64::from(w.trailing_zeros()));
                w &= w - 1;
            }
        }
        Ok(out)
    }

    pub(crate) fn check_all(&self) -> Result<(), StoreError> {
        self.table.check_all()
    }
}

/// Builds the bitmaps of a run from its postings as they are written, in order. A key's seqs
/// are held until it proves dense, then set straight into one bitmap's worth of words, so
/// the memory is a bitmap and at most a threshold's worth of seqs, whatever the run's size.
pub(crate) struct BitmapWriter<'a> {
    out: TableWriter<'a>,
    first: u64,
    threshold: u64,
    words: Vec<u64>,
    key: Option<u128>,
    pending: Vec<u64>,
    dense: bool,
    keys: Vec<u128>,
    bytes: Vec<u8>,
}

impl<'a> BitmapWriter<'a> {
    pub(crate) fn create(
        io: &'a Io,
        stem: &std::path::Path,
        (first, end): (u64, u64),
    ) -> Result<Self, StoreError> {
        Ok(BitmapWriter {
            out: TableWriter::create(io, &stem.with_extension("bits"))?,
            first,
            threshold: threshold(end - first),
            words: vec![0; words_for(first, end)],
            key: None,
            pending: Vec::new(),
            dense: false,
            keys: Vec::new(),
            bytes: Vec::new(),
        })
    }

    fn set(&mut self, seq: u64) {
        let i = (seq - self.first) as usize;
        self.words[i / 64] |= 1 << (i % 64);
    }

    /// The next posting; postings come sorted by key, then seq, all inside the run.
    pub(crate) fn push(&mut self, key: u128, seq: u64) -> Result<(), StoreError> {
        if self.key != Some(key) {
            self.end_key()?;
            self.key = Some(key);
        }
        if self.dense {
            self.set(seq);
            return Ok(());
        }
        self.pending.push(seq);
        if self.pending.len() as u64 >= self.threshold {
            self.dense = true;
            for i in 0..self.pending.len() {
                self.set(self.pending[i]);
            }
            self.pending.clear();
        }
        Ok(())
    }

    fn end_key(&mut self) -> Result<(), StoreError> {
        self.pending.clear();
        if !std::mem::take(&mut self.dense) {
            return Ok(());
        }
        self.keys.push(self.key.expect("a dense key was pushed"));
        self.bytes.clear();
        self.bytes
            .extend(self.words.iter().flat_map(|w| w.to_le_bytes()));
        self.out.push_entries(&self.bytes, WORD_WIDTH)?;
        self.words.fill(0);
        Ok(())
    }

    /// Makes the file durable; returns its sums and the dense keys, ascending.
    pub(crate) fn finish(mut self) -> Result<(TableSum, Vec<u128>), StoreError> {
        self.end_key()?;
        Ok((self.out.finish()?, self.keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Writes `postings` (sorted) as a run's bitmaps and opens them.
    fn written(dir: &std::path::Path, range: (u64, u64), postings: &[(u128, u64)]) -> Bitmaps {
        let io = Io::default();
        let stem = dir.join("run");
        let mut w = BitmapWriter::create(&io, &stem, range).unwrap();
        for &(k, s) in postings {
            w.push(k, s).unwrap();
        }
        let (sum, keys) = w.finish().unwrap();
        let table = Table::open(&stem.with_extension("bits"), WORD_WIDTH, sum).unwrap();
        Bitmaps::open(table, keys, range.0, range.1).unwrap()
    }

    #[test]
    fn exactly_the_dense_keys_get_bitmaps_marking_exactly_their_records() {
        let dir = tempfile::tempdir().unwrap();
        for (first, end) in [(0, 0), (3, 70), (1_000, 1_100), (40_000, 50_017)] {
            let len: u64 = end - first;
            let mut state = end | 1;
            // Keys of every density: on every record, every 2nd … every 40th, one in a few
            // thousand at random, and keys on exactly the threshold and one below it.
            let mut by_key: BTreeMap<u128, Vec<u64>> = BTreeMap::new();
            for seq in first..end {
                for step in [1u64, 2, 3, 8, 16, 40, 100, 127, 128, 129, 200] {
                    if (seq - first).is_multiple_of(step) {
                        by_key.entry(u128::from(step) << 96).or_default().push(seq);
                    }
                }
                if next(&mut state).is_multiple_of(3000) {
                    by_key.entry(u128::MAX).or_default().push(seq);
                }
                by_key.entry(u128::from(seq) << 32).or_default().push(seq);
            }
            let t = threshold(len);
            for (key, count) in [(7u128, t), (9, t - 1)] {
                let seqs: Vec<u64> = (first..end).take(count as usize).collect();
                if seqs.len() as u64 == count {
                    by_key.insert(key, seqs);
                }
            }
            let postings: Vec<(u128, u64)> = by_key
                .iter()
                .flat_map(|(&k, seqs)| seqs.iter().map(move |&s| (k, s)))
                .collect();
            let bits = written(dir.path(), (first, end), &postings);
            let dense: Vec<u128> = by_key
                .iter()
                .filter(|(_, s)| s.len() as u64 >= t)
                .map(|(&k, _)| k)
                .collect();
            assert_eq!(bits.keys(), &dense[..], "run {first}..{end}");
            if t <= len {
                assert!(bits.find(7).is_some(), "a key on exactly {t} records");
            }
            assert!(bits.find(9).is_none(), "a key on {} records", t - 1);
            for (k, &key) in dense.iter().enumerate() {
                assert_eq!(bits.find(key), Some(k));
                assert_eq!(bits.ones(k).unwrap(), by_key[&key], "key {key:x}");
                for seq in first.saturating_sub(2)..end + 2 {
                    let expected = by_key[&key].binary_search(&seq).is_ok();
                    assert_eq!(bits.has(k, seq).unwrap(), expected, "key {key:x} seq {seq}");
                }
            }
            bits.check_all().unwrap();
        }
    }

    #[test]
    fn a_damaged_bitmap_is_an_error_where_it_is_read_and_a_short_file_refused() {
        let dir = tempfile::tempdir().unwrap();
        // 100,000 records: a bitmap of four 4 KiB blocks.
        let postings: Vec<(u128, u64)> = (0..100_000).map(|s| (1, s)).collect();
        let bits = written(dir.path(), (0, 100_000), &postings);
        assert_eq!(bits.keys(), &[1]);
        drop(bits);
        let path = dir.path().join("run.bits");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[1_000] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        // Sums as the writer made them, read back through the same path a run uses.
        let io = Io::default();
        let stem = dir.path().join("again");
        let mut w = BitmapWriter::create(&io, &stem, (0, 100_000)).unwrap();
        for &(k, s) in &postings {
            w.push(k, s).unwrap();
        }
        let (sum, keys) = w.finish().unwrap();
        let table = Table::open(&path, WORD_WIDTH, sum.clone()).unwrap();
        let damaged = Bitmaps::open(table, keys.clone(), 0, 100_000).unwrap();
        assert!(damaged.has(0, 8_000).is_err(), "the damaged block answered");
        assert!(damaged.check_all().is_err());
        // A block the damage is not in still answers.
        assert!(damaged.has(0, 99_999).unwrap());

        let table = Table::open(&stem.with_extension("bits"), WORD_WIDTH, sum).unwrap();
        assert!(
            Bitmaps::open(table, vec![1, 2], 0, 100_000).is_err(),
            "two keys named for one bitmap's words"
        );
    }
}
