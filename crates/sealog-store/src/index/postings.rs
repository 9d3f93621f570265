//! A run's postings, compressed: (key, seq) pairs sorted by key then seq, cut into blocks
//! of [`BLOCK_POSTINGS`]. Inside a block, the consecutive postings of one key are a group:
//! the key once, how many there are, the first seq as an offset from the run's first, then
//! the gaps between seqs, all LEB128. A fixed-width block table holds each block's first
//! posting and where the block starts, so finding a posting is a binary search of the block
//! table and a walk of one block, and entry `i` is in block `i / BLOCK_POSTINGS`.
//!
//! ```text
//! .post  block*      block := (key[16] count:varint first:varint gap:varint×(count-1))+
//! .pidx  entry       key[16] seq:u64be offset:u64be   one per block, the block's first posting
//! ```
//!
//! Most keys of a log name one record (an id, an actor): those cost their 16 bytes and a few
//! more. A key on many records costs a byte or two per record instead of 24.

use std::path::Path;

use crate::error::StoreError;
use crate::io::Io;

use super::bitmaps::BitmapWriter;
use super::run::{Stream, Table, TableSum, TableWriter};

/// Postings per block: small enough that a lookup decodes little, large enough that the
/// block table stays a small fraction of the postings.
pub(crate) const BLOCK_POSTINGS: usize = 64;
pub(crate) const BLOCK_ENTRY_WIDTH: usize = 32;

/// A posting as it is compared: the key read as a big-endian number, then the seq.
pub(crate) type Posting = (u128, u64);

pub(crate) fn posting(key: &[u8; 16], seq: u64) -> Posting {
    (u128::from_be_bytes(*key), seq)
}

/// One decoded block, kept by a reader walking the table so that consecutive lookups in a
/// block decode it once. Which block it holds is only meaningful for the table it was
/// decoded from: a reader that moves to another run starts a new one.
#[derive(Default)]
pub(crate) struct Block {
    at: Option<usize>,
    keys: Vec<u128>,
    seqs: Vec<u64>,
}

/// A run's compressed postings: its `.post` bytes and `.pidx` block table, both checked
/// block by block against their sums as they are read.
pub(crate) struct Postings {
    data: Table,
    blocks: Table,
    len: usize,
    first: u64,
    end: u64,
}

impl Postings {
    pub(crate) fn open(
        data: Table,
        blocks: Table,
        len: u64,
        first: u64,
        end: u64,
    ) -> Result<Self, StoreError> {
        if blocks.len() as u64 != len.div_ceil(BLOCK_POSTINGS as u64) {
            return Err(StoreError::Corrupted(format!(
                "{}: {} blocks for {len} postings",
                blocks.path().display(),
                blocks.len()
            )));
        }
        Ok(Postings {
            data,
            blocks,
            len: len as usize,
            first,
            end,
        })
    }

    /// How many postings the run holds.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Checks every block of both files (for verification).
    pub(crate) fn check_all(&self) -> Result<(), StoreError> {
        self.data.check_all()?;
        self.blocks.check_all()
    }

    fn damaged(&self, why: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupted(format!("{}: {why}", self.data.path().display()))
    }

    /// Block `b`'s first posting and the offset of its bytes.
    fn block_entry(&self, b: usize) -> Result<(Posting, usize), StoreError> {
        Ok(parse_block_entry(self.blocks.entry(b)?))
    }

    /// Refuses a block whose bytes would not lie within `.post`.
    fn bounds(&self, b: usize, start: usize, stop: usize) -> Result<(), StoreError> {
        if start >= stop || stop > self.data.len() {
            return Err(self.damaged(format!("block {b} spans bytes {start}..{stop}")));
        }
        Ok(())
    }

    /// Block `b`'s first posting and the byte range of its bytes in `.post`.
    fn block_range(&self, b: usize) -> Result<(Posting, std::ops::Range<usize>), StoreError> {
        let (head, start) = self.block_entry(b)?;
        let stop = if b + 1 < self.blocks.len() {
            self.block_entry(b + 1)?.1
        } else {
            self.data.len()
        };
        self.bounds(b, start, stop)?;
        Ok((head, start..stop))
    }

    fn postings_in(&self, b: usize) -> usize {
        (self.len - b * BLOCK_POSTINGS).min(BLOCK_POSTINGS)
    }

    /// Decodes block `b` into `out` unless it already holds it.
    fn decode(&self, b: usize, out: &mut Block) -> Result<(), StoreError> {
        if out.at == Some(b) {
            return Ok(());
        }
        let (head, range) = self.block_range(b)?;
        out.fill(
            self.data.entries(range)?,
            self.postings_in(b),
            (self.first, self.end),
            head,
        )
        .map_err(|why| self.damaged(format!("block {b}: {why}")))?;
        out.at = Some(b);
        Ok(())
    }

    /// Hands block `b`'s postings in order to `visit` until it answers false.
    fn scan(&self, b: usize, visit: impl FnMut(Posting) -> bool) -> Result<(), StoreError> {
        let (head, range) = self.block_range(b)?;
        let bytes = self.data.entries(range)?;
        decode_block(
            bytes,
            self.postings_in(b),
            (self.first, self.end),
            head,
            visit,
        )
        .map_err(|why| self.damaged(format!("block {b}: {why}")))
    }

    /// The posting at index `i` (which must be below `len()`).
    pub(crate) fn get(&self, i: usize, block: &mut Block) -> Result<Posting, StoreError> {
        self.decode(i / BLOCK_POSTINGS, block)?;
        let at = i % BLOCK_POSTINGS;
        Ok((block.keys[at], block.seqs[at]))
    }

    /// The block holding the first posting `>= target`, or the block before it when that
    /// posting starts the next; searched from index `from`, whose posting must be below
    /// `target` (or `from` is 0). `None` when no posting at or after `from` is below
    /// `target`. A search from 0 is a binary search of the block table; from further on it
    /// gallops, so a walk of ascending targets costs the log of the distance moved.
    fn locate(&self, target: Posting, from: usize) -> Result<Option<usize>, StoreError> {
        let n = self.blocks.len();
        let below = |b: usize| -> Result<bool, StoreError> { Ok(self.block_entry(b)?.0 < target) };
        let start = from / BLOCK_POSTINGS;
        if start >= n || !below(start)? {
            return Ok(None);
        }
        // Blocks up to `lo` start below the target; the one at `hi` does not (or is past the end).
        let (mut lo, mut hi) = (start, n);
        if start > 0 {
            let mut step = 1;
            hi = loop {
                let next = lo.saturating_add(step);
                if next >= n || !below(next)? {
                    break next.min(n);
                }
                lo = next;
                step *= 2;
            };
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if below(mid)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(Some(lo))
    }

    /// Index of the first posting `>= target`, searched from index `from` (see `locate`), and
    /// that posting (`None` past the end); `block` is left holding the block decoded there,
    /// for the next search.
    pub(crate) fn lower_bound_from(
        &self,
        target: Posting,
        from: usize,
        block: &mut Block,
    ) -> Result<(usize, Option<Posting>), StoreError> {
        let (at, found) = match self.locate(target, from)? {
            None => ((from / BLOCK_POSTINGS * BLOCK_POSTINGS).min(self.len), None),
            Some(b) => {
                self.decode(b, block)?;
                let (keys, seqs) = (&block.keys, &block.seqs);
                let (mut lo, mut hi) = (0, keys.len());
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    if (keys[mid], seqs[mid]) < target {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                let found = (lo < keys.len()).then(|| (keys[lo], seqs[lo]));
                (b * BLOCK_POSTINGS + lo, found)
            }
        };
        self.at(at, found)
    }

    /// `found` if it is known, else the posting at `at` when that starts a block (or none
    /// past the end), read from the block table without decoding anything.
    fn at(
        &self,
        at: usize,
        found: Option<Posting>,
    ) -> Result<(usize, Option<Posting>), StoreError> {
        if found.is_some() || at >= self.len {
            return Ok((at, found));
        }
        debug_assert_eq!(at % BLOCK_POSTINGS, 0, "only a block's start is unknown");
        Ok((at, Some(self.block_entry(at / BLOCK_POSTINGS)?.0)))
    }

    /// Index of the first posting `>= target`, and that posting if there is one: one block
    /// decoded only as far as the answer, nothing kept.
    fn seek(&self, target: Posting) -> Result<(usize, Option<Posting>), StoreError> {
        let Some(b) = self.locate(target, 0)? else {
            // The first posting, if any, is already at or after the target.
            return self.at(0, None);
        };
        let (mut within, mut found) = (0, None);
        self.scan(b, |p| {
            if p >= target {
                found = Some(p);
                return false;
            }
            within += 1;
            true
        })?;
        self.at(b * BLOCK_POSTINGS + within, found)
    }

    pub(crate) fn lower_bound(&self, target: Posting) -> Result<usize, StoreError> {
        Ok(self.seek(target)?.0)
    }

    pub(crate) fn contains(&self, target: Posting) -> Result<bool, StoreError> {
        Ok(self.seek(target)?.1 == Some(target))
    }

    /// The postings in order, read through buffers and checked as they arrive (for merges).
    pub(crate) fn stream(&self) -> PostingStream<'_> {
        PostingStream {
            postings: self,
            data: self.data.stream(),
            blocks: self.blocks.stream(),
            block: Block::default(),
            next_block: 0,
            at: 0,
        }
    }
}

/// A [`Postings`] table read in order, block after block.
pub(crate) struct PostingStream<'a> {
    postings: &'a Postings,
    data: Stream<'a>,
    blocks: Stream<'a>,
    block: Block,
    next_block: usize,
    /// The next posting's place in `block`.
    at: usize,
}

impl super::InOrder for PostingStream<'_> {
    type Item = Posting;

    fn head(&mut self) -> Result<Option<Posting>, StoreError> {
        if self.at >= self.block.keys.len() {
            let p = self.postings;
            let b = self.next_block;
            let Some(entry) = self.blocks.peek()? else {
                return Ok(None);
            };
            let (head, start) = parse_block_entry(entry);
            self.blocks.advance();
            let stop = match self.blocks.peek()? {
                Some(next) => parse_block_entry(next).1,
                None => p.data.len(),
            };
            p.bounds(b, start, stop)?;
            let bytes = self.data.range(start..stop)?;
            self.block
                .fill(bytes, p.postings_in(b), (p.first, p.end), head)
                .map_err(|why| p.damaged(format!("block {b}: {why}")))?;
            self.next_block += 1;
            self.at = 0;
        }
        Ok(Some((self.block.keys[self.at], self.block.seqs[self.at])))
    }

    fn skip(&mut self) {
        self.at += 1;
    }
}

fn parse_block_entry(e: &[u8]) -> (Posting, usize) {
    let key = u128::from_be_bytes(e[..16].try_into().expect("16 bytes"));
    let seq = u64::from_be_bytes(e[16..24].try_into().expect("8 bytes"));
    let offset = u64::from_be_bytes(e[24..32].try_into().expect("8 bytes"));
    ((key, seq), offset as usize)
}

impl Block {
    /// Holds no block any more (a reader moving to another table), keeping its buffers.
    pub(crate) fn forget(&mut self) {
        self.at = None;
    }

    /// Holds the postings of one block's `bytes`, decoded whole; which block it is, the
    /// caller records.
    fn fill(
        &mut self,
        bytes: &[u8],
        n: usize,
        run: (u64, u64),
        head: Posting,
    ) -> Result<(), String> {
        self.at = None;
        self.keys.clear();
        self.seqs.clear();
        decode_block(bytes, n, run, head, |(k, s)| {
            self.keys.push(k);
            self.seqs.push(s);
            true
        })
    }
}

/// Decodes one block of `n` postings, handing each to `visit` until it answers false, and
/// refuses anything the writer could not have written: the checksums already vouch for the
/// bytes, this keeps a decoder from trusting them blindly. A block read to its end is
/// checked whole; one left early, as far as it was read.
fn decode_block(
    bytes: &[u8],
    n: usize,
    (first, end): (u64, u64),
    head: Posting,
    mut visit: impl FnMut(Posting) -> bool,
) -> Result<(), String> {
    let mut r = bytes;
    let mut last: Option<Posting> = None;
    let mut done = 0usize;
    while done < n {
        let key = r.get(..16).ok_or("cut short in a key")?;
        let key = u128::from_be_bytes(key.try_into().expect("16 bytes"));
        r = &r[16..];
        let count = varint(&mut r)?;
        if count == 0 || count > (n - done) as u64 {
            return Err(format!("a group of {count} postings"));
        }
        if last.is_some_and(|(k, _)| k >= key) {
            return Err("keys out of order".into());
        }
        let mut seq = first
            .checked_add(varint(&mut r)?)
            .ok_or("a seq past the range")?;
        for i in 0..count {
            if i > 0 {
                let gap = varint(&mut r)?;
                if gap == 0 {
                    return Err("a posting repeated".into());
                }
                seq = seq.checked_add(gap).ok_or("a seq past the range")?;
            }
            if seq >= end {
                return Err(format!("seq {seq} outside the run's {first}..{end}"));
            }
            if done == 0 && (key, seq) != head {
                return Err("its first posting is not the one the block table names".into());
            }
            done += 1;
            if !visit((key, seq)) {
                return Ok(());
            }
        }
        last = Some((key, seq));
    }
    if !r.is_empty() {
        return Err(format!("{} bytes after its postings", r.len()));
    }
    Ok(())
}

fn varint(r: &mut &[u8]) -> Result<u64, String> {
    // Most numbers here are gaps and counts below 128: one byte.
    if let Some(&b) = r.first()
        && b < 0x80
    {
        *r = &r[1..];
        return Ok(u64::from(b));
    }
    let mut v = 0u64;
    for (i, &b) in r.iter().enumerate().take(10) {
        let bits = u64::from(b & 0x7f);
        if i == 9 && b > 1 {
            return Err("a number over 64 bits".into());
        }
        v |= bits << (7 * i);
        if b & 0x80 == 0 {
            *r = &r[i + 1..];
            return Ok(v);
        }
    }
    Err("cut short in a number".into())
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Writes postings given in order as a run's `.post` and `.pidx`, makes both durable, and
/// returns their sums and how many postings there are; each posting also goes to `bitmaps`.
pub(crate) fn write(
    io: &Io,
    stem: &Path,
    (first, end): (u64, u64),
    postings: impl Iterator<Item = Result<Posting, StoreError>>,
    bitmaps: &mut BitmapWriter,
) -> Result<(TableSum, TableSum, u64), StoreError> {
    let data_path = stem.with_extension("post");
    let mut data = TableWriter::create(io, &data_path)?;
    let mut blocks = TableWriter::create(io, &stem.with_extension("pidx"))?;
    let mut pending: Vec<Posting> = Vec::with_capacity(BLOCK_POSTINGS);
    let mut encoded = Vec::with_capacity(BLOCK_POSTINGS * 24);
    let (mut written, mut count) = (0u64, 0u64);
    let mut last: Option<Posting> = None;
    let mut flush = |pending: &mut Vec<Posting>,
                     data: &mut TableWriter,
                     blocks: &mut TableWriter|
     -> Result<(), StoreError> {
        let Some(&(key, seq)) = pending.first() else {
            return Ok(());
        };
        encode_block(pending, first, &mut encoded);
        let mut entry = [0u8; BLOCK_ENTRY_WIDTH];
        entry[..16].copy_from_slice(&key.to_be_bytes());
        entry[16..24].copy_from_slice(&seq.to_be_bytes());
        entry[24..].copy_from_slice(&written.to_be_bytes());
        blocks.push_entry(&entry)?;
        data.push_bytes(&encoded)?;
        written += encoded.len() as u64;
        pending.clear();
        Ok(())
    };
    for p in postings {
        let p = p?;
        // The order and range are what the reader relies on; a caller that broke them would
        // write a run that answers wrongly, so it is refused here.
        if last.is_some_and(|l| l >= p) || !(first..end).contains(&p.1) {
            return Err(StoreError::Corrupted(format!(
                "{}: posting {p:?} out of order or outside {first}..{end}",
                data_path.display()
            )));
        }
        last = Some(p);
        bitmaps.push(p.0, p.1)?;
        pending.push(p);
        count += 1;
        if pending.len() == BLOCK_POSTINGS {
            flush(&mut pending, &mut data, &mut blocks)?;
        }
    }
    flush(&mut pending, &mut data, &mut blocks)?;
    Ok((data.finish()?, blocks.finish()?, count))
}

fn encode_block(postings: &[Posting], first: u64, out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < postings.len() {
        let key = postings[i].0;
        let n = postings[i..].iter().take_while(|p| p.0 == key).count();
        out.extend_from_slice(&key.to_be_bytes());
        put_varint(out, n as u64);
        put_varint(out, postings[i].1 - first);
        for w in postings[i..i + n].windows(2) {
            put_varint(out, w[1].1 - w[0].1);
        }
        i += n;
    }
}

#[cfg(test)]
mod tests {
    use super::super::InOrder;
    use super::*;

    /// A deterministic generator, so a failure names its case.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Postings of a run `first..end`: a few keys on many records, many on one.
    fn sample(first: u64, end: u64, seed: u64) -> Vec<Posting> {
        let mut state = seed;
        let mut all = Vec::new();
        for seq in first..end {
            all.push((u128::from(next(&mut state) % 5) << 100, seq));
            all.push((u128::from(next(&mut state)) << 64 | 7, seq));
            if seq % 97 == 0 {
                all.push((u128::MAX, seq));
            }
        }
        all.sort_unstable();
        all
    }

    /// Postings written with their bitmaps, which `bitmaps` tests.
    fn write_plain(
        stem: &Path,
        range: (u64, u64),
        all: &[Posting],
    ) -> Result<(TableSum, TableSum, u64), StoreError> {
        let io = Io::default();
        let mut bits = BitmapWriter::create(&io, stem, range)?;
        write(&io, stem, range, all.iter().map(|&p| Ok(p)), &mut bits)
    }

    fn written(dir: &Path, range: (u64, u64), all: &[Posting]) -> Postings {
        let stem = dir.join("run");
        let (d, b, n) = write_plain(&stem, range, all).unwrap();
        let data = Table::open(&stem.with_extension("post"), 1, d).unwrap();
        let blocks = Table::open(&stem.with_extension("pidx"), BLOCK_ENTRY_WIDTH, b).unwrap();
        Postings::open(data, blocks, n, range.0, range.1).unwrap()
    }

    #[test]
    fn every_posting_reads_back_by_index_by_search_and_in_a_stream() {
        let dir = tempfile::tempdir().unwrap();
        for (first, end) in [(0, 0), (5, 6), (1_000, 1_064), (70_000, 73_001)] {
            let all = sample(first, end, first + 1);
            let table = written(dir.path(), (first, end), &all);
            assert_eq!(table.len(), all.len());
            let mut block = Block::default();
            for (i, &p) in all.iter().enumerate() {
                assert_eq!(table.get(i, &mut block).unwrap(), p, "posting {i}");
            }
            let mut stream = table.stream();
            for &p in &all {
                assert_eq!(stream.head().unwrap(), Some(p));
                stream.skip();
            }
            assert_eq!(stream.head().unwrap(), None);
            // Every probe, present or not, lands where a search of the plain list does.
            let mut state = end ^ 0x5555;
            let probes = all
                .iter()
                .flat_map(|&(k, s)| [(k, s), (k, s + 1), (k.wrapping_add(1), 0), (k, 0)])
                .chain((0..200).map(|_| (u128::from(next(&mut state)) << 64, first)))
                .chain([(0, 0), (u128::MAX, u64::MAX)]);
            for probe in probes {
                let want = all.partition_point(|&p| p < probe);
                assert_eq!(table.lower_bound(probe).unwrap(), want, "{probe:?}");
                assert_eq!(
                    table.contains(probe).unwrap(),
                    all.get(want) == Some(&probe),
                    "{probe:?}"
                );
                // From any earlier posting below it, the gallop agrees.
                if want > 0 {
                    let from = (want - 1) / 3;
                    assert_eq!(
                        table.lower_bound_from(probe, from, &mut block).unwrap(),
                        (want, all.get(want).copied()),
                        "{probe:?} from {from}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_key_on_many_records_costs_a_byte_or_two_a_posting() {
        let dir = tempfile::tempdir().unwrap();
        let all: Vec<Posting> = (0..100_000).map(|s| (42, s)).collect();
        let table = written(dir.path(), (0, 100_000), &all);
        let bytes = table.data.len() + table.blocks.len() * BLOCK_ENTRY_WIDTH;
        assert!(
            bytes < 100_000 * 2,
            "{bytes} bytes for 100,000 postings of one key"
        );
    }

    #[test]
    fn postings_out_of_order_or_outside_the_run_are_refused_when_written() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("run");
        for bad in [
            vec![(1, 3), (1, 3)],
            vec![(2, 3), (1, 4)],
            vec![(1, 3), (1, 2)],
            vec![(1, 10)],
        ] {
            let r = write_plain(&stem, (0, 10), &bad);
            assert!(
                matches!(r, Err(StoreError::Corrupted(_))),
                "{bad:?} was written"
            );
        }
    }

    #[test]
    fn a_decoder_refuses_what_no_writer_wrote() {
        let mut good = Vec::new();
        encode_block(&[(1, 3), (1, 5), (2, 4)], 0, &mut good);
        let mut seqs = Vec::new();
        decode_block(&good, 3, (0, 10), (1, 3), |(_, s)| {
            seqs.push(s);
            true
        })
        .unwrap();
        assert_eq!(seqs, [3, 5, 4]);
        /// Bytes, postings in the block, the run's range, the block table's first posting.
        type Case = (Vec<u8>, usize, (u64, u64), Posting);
        let cases: Vec<Case> = vec![
            (good[..good.len() - 1].to_vec(), 3, (0, 10), (1, 3)),
            ([&good[..], &[0]].concat(), 3, (0, 10), (1, 3)),
            (good.clone(), 4, (0, 10), (1, 3)),
            (good.clone(), 2, (0, 10), (1, 3)),
            (good.clone(), 3, (0, 5), (1, 3)),
            (good.clone(), 3, (0, 10), (1, 5)),
            // A gap of zero: the same posting twice.
            (
                {
                    let mut b = Vec::new();
                    b.extend_from_slice(&1u128.to_be_bytes());
                    b.extend_from_slice(&[2, 3, 0]);
                    b
                },
                2,
                (0, 10),
                (1, 3),
            ),
            // An eleven-byte number.
            (
                {
                    let mut b = Vec::new();
                    b.extend_from_slice(&1u128.to_be_bytes());
                    b.extend_from_slice(&[1; 1]);
                    b.extend_from_slice(&[0xff; 10]);
                    b.push(1);
                    b
                },
                1,
                (0, u64::MAX),
                (1, 3),
            ),
        ];
        for (i, (bytes, n, range, head)) in cases.into_iter().enumerate() {
            assert!(
                decode_block(&bytes, n, range, head, |_| true).is_err(),
                "case {i} decoded"
            );
        }
    }
}
