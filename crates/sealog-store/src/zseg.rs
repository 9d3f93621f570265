//! Compressed sealed segments: the same bytes as the plain segment they replace, in blocks
//! of a fixed number of records, each compressed alone so one record is read by
//! decompressing one block.
//!
//! ```text
//! zseg    = header block* index trailer
//! header  = "SEALOGZ1" first_seq:u64le records_per_block:u32le 0:u32le        (24 bytes)
//! block   = one zstd frame: the plain segment's frames of records_per_block records
//! index   = (plain_offset:u64le file_offset:u64le file_len:u32le plain_len:u32le
//!            crc32c(block):u32le) per block                                 (28 bytes each)
//! trailer = blocks:u64le plain_len:u64le crc32c(header ‖ index ‖ the two words):u32le
//!           "SEALOGZE"                                                       (28 bytes)
//! ```
//! The plain form is the segment header followed by every block's bytes, so a record keeps
//! the offset its position names: record `seq` is in block `(seq - first_seq) /
//! records_per_block` (one lookup, no search), at `offset - plain_offset` within it. Frames
//! keep their checksums and the tree's leaves stay over the uncompressed record, so
//! everything that checks a plain segment checks a compressed one the same way; the block
//! checksums only locate damage to the compressed bytes.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::StoreError;
use crate::handles::Handle;
use crate::segment::{
    self, FRAME_HEADER_BYTES, FRAME_PAYLOAD_BYTES_MAX, HEADER_BYTES, ReadFrameError,
};

pub const MAGIC: &[u8; 8] = b"SEALOGZ1";
const END_MAGIC: &[u8; 8] = b"SEALOGZE";
const HEADER: usize = 24;
const ENTRY: usize = 28;
const TRAILER: usize = 28;
/// The plain bytes a block aims at: a record read decompresses about this much, and the
/// records still compress several times over (docs/performance.md measured blocks of 4, 8
/// and 16 decision records, ~1.8 KB each). Each segment picks its records per block from
/// its first records' size, so small records share a block's fixed costs (a frame, its
/// entropy tables) with more of their neighbours.
const BLOCK_PLAIN_BYTES: usize = 16 << 10;
/// The fewest and most records a writer puts in a block.
const PER_BLOCK_MIN: u32 = 8;
const PER_BLOCK_WRITTEN_MAX: u32 = 128;
/// More records per block than any writer uses is damage, not a format.
const PER_BLOCK_MAX: u32 = 1024;
/// Fast enough to keep up with ingest on the side; the records compress ~3× at it.
const LEVEL: i32 = 1;
/// Decompressed blocks kept per segment, so a scan in seq order decompresses each once.
const CACHED_BLOCKS: usize = 4;

thread_local! {
    /// One decompression context per reading thread: making one costs more than a block.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

pub fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.zseg")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    plain_offset: u64,
    file_offset: u64,
    file_len: u32,
    plain_len: u32,
    crc: u32,
}

impl Block {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.plain_offset.to_le_bytes());
        out.extend_from_slice(&self.file_offset.to_le_bytes());
        out.extend_from_slice(&self.file_len.to_le_bytes());
        out.extend_from_slice(&self.plain_len.to_le_bytes());
        out.extend_from_slice(&self.crc.to_le_bytes());
    }

    fn decode(b: &[u8]) -> Block {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        Block {
            plain_offset: u64_at(0),
            file_offset: u64_at(8),
            file_len: u32_at(16),
            plain_len: u32_at(20),
            crc: u32_at(24),
        }
    }
}

/// The most plain bytes a block of `per_block` records can hold.
fn block_plain_max(per_block: u32) -> u64 {
    u64::from(per_block) * (FRAME_HEADER_BYTES + u64::from(FRAME_PAYLOAD_BYTES_MAX))
}

fn header(first_seq: u64, per_block: u32) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(MAGIC);
    h[8..16].copy_from_slice(&first_seq.to_le_bytes());
    h[16..20].copy_from_slice(&per_block.to_le_bytes());
    h
}

fn trailer(head: &[u8], index: &[u8], blocks: u64, plain_len: u64) -> Vec<u8> {
    let mut words = Vec::with_capacity(TRAILER);
    words.extend_from_slice(&blocks.to_le_bytes());
    words.extend_from_slice(&plain_len.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c_append(crc32c::crc32c(head), index), &words);
    words.extend_from_slice(&crc.to_le_bytes());
    words.extend_from_slice(END_MAGIC);
    words
}

/// Writes a compressed segment block by block.
pub struct Encoder<W: Write> {
    out: W,
    head: [u8; HEADER],
    compressor: zstd::bulk::Compressor<'static>,
    index: Vec<u8>,
    blocks: u64,
    plain_offset: u64,
    file_offset: u64,
}

impl<W: Write> Encoder<W> {
    pub fn new(first_seq: u64, per_block: u32, mut out: W) -> Result<Self, String> {
        let head = header(first_seq, per_block);
        out.write_all(&head).map_err(|e| e.to_string())?;
        Ok(Encoder {
            out,
            head,
            compressor: zstd::bulk::Compressor::new(LEVEL).map_err(|e| e.to_string())?,
            index: Vec::new(),
            blocks: 0,
            plain_offset: HEADER_BYTES,
            file_offset: HEADER as u64,
        })
    }

    /// Appends the next block: the whole frames of the next `per_block` records.
    pub fn block(&mut self, plain: &[u8]) -> Result<(), String> {
        let bytes = self.compressor.compress(plain).map_err(|e| e.to_string())?;
        let block = Block {
            plain_offset: self.plain_offset,
            file_offset: self.file_offset,
            file_len: u32::try_from(bytes.len()).map_err(|_| "a block past 4 GiB")?,
            plain_len: u32::try_from(plain.len()).map_err(|_| "a block past 4 GiB")?,
            crc: crc32c::crc32c(&bytes),
        };
        self.out.write_all(&bytes).map_err(|e| e.to_string())?;
        block.encode(&mut self.index);
        self.plain_offset += plain.len() as u64;
        self.file_offset += bytes.len() as u64;
        self.blocks += 1;
        Ok(())
    }

    /// Writes the index and trailer; returns the writer.
    pub fn finish(mut self) -> Result<W, String> {
        self.out.write_all(&self.index).map_err(|e| e.to_string())?;
        let end = trailer(&self.head, &self.index, self.blocks, self.plain_offset);
        self.out.write_all(&end).map_err(|e| e.to_string())?;
        Ok(self.out)
    }
}

/// Writes the compressed form of a plain sealed segment held in memory (`plain`, header
/// included). Every frame must be whole: a sealed segment that is not is left for `verify`
/// to report, never compressed.
pub fn write(plain: &[u8], first_seq: u64, out: &mut impl Write) -> Result<(), String> {
    segment::check_header(plain, first_seq)?;
    let mut frames = &plain[HEADER_BYTES as usize..];
    let encoded = encode_frames(&mut frames, first_seq, out, &|| false).map_err(|f| match f {
        Fault::Plain(m) | Fault::Written(m) => m,
    })?;
    encoded.expect("never stopped").finish().map(drop)
}

/// What made [`encode_frames`] fail: the plain segment's frames, or the compressed output.
enum Fault {
    Plain(String),
    Written(String),
}

/// Compresses the frames of a plain segment, read from `src` past its header, into blocks of
/// as many records as its first records' size chooses; the encoder, to be finished, or
/// `None` if `stop` asked it to stop between blocks. Both writers, of a segment in memory
/// and of one streamed from its file, choose the same blocks this way.
fn encode_frames<W: Write>(
    src: &mut impl Read,
    first_seq: u64,
    out: W,
    stop: &dyn Fn() -> bool,
) -> Result<Option<Encoder<W>>, Fault> {
    let mut at = HEADER_BYTES;
    let mut block = Vec::new();
    let sampled = next_frames(src, &mut block, at, PER_BLOCK_MIN).map_err(Fault::Plain)?;
    let per_block = per_block_for(block.len(), sampled);
    let mut encoder = Encoder::new(first_seq, per_block, out).map_err(Fault::Written)?;
    if sampled == PER_BLOCK_MIN {
        next_frames(src, &mut block, at, per_block - sampled).map_err(Fault::Plain)?;
    }
    while !block.is_empty() {
        if stop() {
            return Ok(None);
        }
        encoder.block(&block).map_err(Fault::Written)?;
        at += block.len() as u64;
        block.clear();
        next_frames(src, &mut block, at, per_block).map_err(Fault::Plain)?;
    }
    Ok(Some(encoder))
}

/// Records per block for a segment whose first `frames` records (all of them when it has
/// fewer than [`PER_BLOCK_MIN`]) take `bytes`: as many as fill [`BLOCK_PLAIN_BYTES`].
fn per_block_for(bytes: usize, frames: u32) -> u32 {
    let fit = BLOCK_PLAIN_BYTES * frames as usize / bytes.max(1);
    u32::try_from(fit)
        .unwrap_or(u32::MAX)
        .clamp(PER_BLOCK_MIN, PER_BLOCK_WRITTEN_MAX)
}

/// Appends up to `n` whole frames from a plain segment to `block`, which starts at the
/// segment's offset `block_at`; returns how many it read (fewer at the segment's end).
fn next_frames(
    src: &mut impl Read,
    block: &mut Vec<u8>,
    block_at: u64,
    n: u32,
) -> Result<u32, String> {
    for read in 0..n {
        let at = block_at + block.len() as u64;
        let mut head = [0u8; FRAME_HEADER_BYTES as usize];
        match segment::read_up_to(src, &mut head).map_err(|e| e.to_string())? {
            0 => return Ok(read),
            n if n < head.len() => {
                return Err(format!(
                    "at offset {at}: a frame cut short in a sealed segment"
                ));
            }
            _ => {}
        }
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
        if len == 0 || len > segment::FRAME_PAYLOAD_BYTES_MAX {
            return Err(format!("at offset {at}: impossible frame length {len}"));
        }
        let start = block.len();
        block.extend_from_slice(&head);
        block.resize(start + FRAME_HEADER_BYTES as usize + len as usize, 0);
        if segment::read_up_to(src, &mut block[start + FRAME_HEADER_BYTES as usize..])
            .map_err(|e| e.to_string())?
            < len as usize
        {
            return Err(format!(
                "at offset {at}: a frame cut short in a sealed segment"
            ));
        }
        segment::decode_frame(&block[start..])
            .map_err(|e| format!("at offset {at}: {e}; a sealed segment must be whole"))?;
    }
    Ok(n)
}

/// An opened compressed segment: its index checked whole when opened, then read an entry at a
/// time (an index in memory for every segment would grow the process with the log), its
/// blocks checked as they are read. Its file is open only while it is read often enough
/// ([`crate::handles`]), for the same reason.
pub struct Zseg {
    handle: Arc<Handle>,
    path: PathBuf,
    first_seq: u64,
    per_block: u32,
    plain_len: u64,
    blocks: usize,
    index_at: u64,
    cache: Mutex<Vec<Cached>>,
}

/// A decompressed block: its number, its index entry and its bytes.
type Cached = (usize, Block, Arc<Vec<u8>>);

impl Zseg {
    /// Opens `path`, checking its header, trailer and index against each other.
    pub fn open(path: &Path, first_seq: u64) -> Result<Zseg, StoreError> {
        let (handle, file) = Handle::open(path).map_err(|e| StoreError::io(path, e))?;
        let len = file.metadata().map_err(|e| StoreError::io(path, e))?.len();
        let bad = |m: String| StoreError::Corrupted(format!("{}: {m}", path.display()));
        if len < (HEADER + TRAILER) as u64 {
            return Err(bad(format!(
                "{len} bytes is too short for a compressed segment"
            )));
        }
        let mut head = [0u8; HEADER];
        file.read_exact_at(&mut head, 0)
            .map_err(|e| StoreError::io(path, e))?;
        let mut tail = [0u8; TRAILER];
        file.read_exact_at(&mut tail, len - TRAILER as u64)
            .map_err(|e| StoreError::io(path, e))?;
        if &head[..8] != MAGIC || &tail[20..] != END_MAGIC {
            return Err(bad("not a compressed sealog segment (bad magic)".into()));
        }
        let word = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8"));
        let named = word(&head, 8);
        if named != first_seq {
            return Err(bad(format!(
                "header says first seq {named}, file name says {first_seq}"
            )));
        }
        let per_block = u32::from_le_bytes(head[16..20].try_into().expect("4 bytes"));
        let (count, plain_len) = (word(&tail, 0), word(&tail, 8));
        let index_bytes = count
            .checked_mul(ENTRY as u64)
            .filter(|&n| n <= len - (HEADER + TRAILER) as u64)
            .ok_or_else(|| bad(format!("its trailer names {count} blocks")))?;
        let index_at = len - TRAILER as u64 - index_bytes;
        let mut index = vec![0u8; index_bytes as usize];
        file.read_exact_at(&mut index, index_at)
            .map_err(|e| StoreError::io(path, e))?;
        let crc = u32::from_le_bytes(tail[16..20].try_into().expect("4 bytes"));
        if trailer(&head, &index, count, plain_len)[16..20] != crc.to_le_bytes()
            || head[20..] != [0; 4]
            || !(1..=PER_BLOCK_MAX).contains(&per_block)
        {
            return Err(bad(
                "its header, index or trailer does not match its checksum".into(),
            ));
        }
        let (mut plain, mut at) = (HEADER_BYTES, HEADER as u64);
        for (k, b) in index.chunks_exact(ENTRY).map(Block::decode).enumerate() {
            if b.plain_offset != plain || b.file_offset != at || b.plain_len == 0 {
                return Err(bad(format!("block {k} does not follow the one before it")));
            }
            // Checked before anything is allocated for it: its frames cannot be longer.
            if u64::from(b.plain_len) > block_plain_max(per_block) {
                return Err(bad(format!(
                    "block {k} claims {} bytes, more than {per_block} records can be",
                    b.plain_len
                )));
            }
            plain += u64::from(b.plain_len);
            at += u64::from(b.file_len);
        }
        if plain != plain_len || at != index_at {
            return Err(bad("its blocks do not add up to its index".into()));
        }
        Ok(Zseg {
            handle,
            path: path.to_path_buf(),
            first_seq,
            per_block,
            plain_len,
            blocks: count as usize,
            index_at,
            cache: Mutex::new(Vec::new()),
        })
    }

    /// Block `k`'s index entry, read from the file. The index was checked whole when the
    /// segment was opened; an entry read later is held to the bounds any entry must keep, so
    /// a file changed since can make a read fail (or its block's checksum, frame or leaf
    /// check fail), never allocate past a block's size or read outside the blocks.
    fn entry(&self, k: usize) -> io::Result<Block> {
        if k >= self.blocks {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: no block {k}", self.path.display()),
            ));
        }
        let mut raw = [0u8; ENTRY];
        self.handle
            .file()?
            .read_exact_at(&mut raw, self.index_at + (k * ENTRY) as u64)?;
        let b = Block::decode(&raw);
        let within_file = b
            .file_offset
            .checked_add(u64::from(b.file_len))
            .is_some_and(|end| b.file_offset >= HEADER as u64 && end <= self.index_at);
        let within_plain = b
            .plain_offset
            .checked_add(u64::from(b.plain_len))
            .is_some_and(|end| end <= self.plain_len);
        if !within_file
            || !within_plain
            || b.plain_len == 0
            || u64::from(b.plain_len) > block_plain_max(self.per_block)
        {
            return Err(self.damaged(k, &b, "its index entry was changed since it was opened"));
        }
        Ok(b)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes its file now, as the process does when too many are open.
    #[cfg(test)]
    pub(crate) fn close_file(&self) {
        self.handle.close();
    }

    /// The plain segment's length.
    pub fn plain_len(&self) -> u64 {
        self.plain_len
    }

    fn damaged(&self, k: usize, b: &Block, why: &str) -> io::Error {
        let first = self.first_seq + k as u64 * u64::from(self.per_block);
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} block {k} (records {first}.., bytes {}..{} of the file): {why}",
                self.path.display(),
                b.file_offset,
                b.file_offset + u64::from(b.file_len)
            ),
        )
    }

    /// Block `k` decompressed, its checksum checked first, with its index entry.
    fn block(&self, k: usize) -> io::Result<(Block, Arc<Vec<u8>>)> {
        if let Some((_, b, hit)) = self
            .cache
            .lock()
            .expect("block cache")
            .iter()
            .find(|(i, _, _)| *i == k)
        {
            return Ok((*b, hit.clone()));
        }
        let b = self.entry(k)?;
        let mut plain = vec![0; b.plain_len as usize];
        DECOMPRESSOR.with(|d| {
            let mut d = d.borrow_mut();
            if d.is_none() {
                *d = Some(zstd::bulk::Decompressor::new()?);
            }
            let d = d.as_mut().expect("made just above");
            self.decompress_block(k, &b, d, &mut Vec::new(), &mut plain)
        })?;
        let plain = Arc::new(plain);
        let mut cache = self.cache.lock().expect("block cache");
        if cache.len() == CACHED_BLOCKS {
            cache.remove(0);
        }
        cache.push((k, b, plain.clone()));
        Ok((b, plain))
    }

    /// The frame's payload of record `seq`, at `offset` of the plain segment.
    pub fn read_frame(
        &self,
        seq: u64,
        offset: u64,
        buf: &mut Vec<u8>,
    ) -> Result<(), ReadFrameError> {
        let k = seq
            .checked_sub(self.first_seq)
            .map(|i| (i / u64::from(self.per_block)) as usize)
            .filter(|&k| k < self.blocks)
            .ok_or(ReadFrameError::Bad(segment::BadFrame::Short))?;
        let (b, block) = self.block(k).map_err(ReadFrameError::Io)?;
        let within = offset
            .checked_sub(b.plain_offset)
            .filter(|&w| w + FRAME_HEADER_BYTES <= u64::from(b.plain_len))
            .ok_or(ReadFrameError::Bad(segment::BadFrame::Short))?;
        let (payload, _) =
            segment::decode_frame(&block[within as usize..]).map_err(ReadFrameError::Bad)?;
        buf.clear();
        buf.extend_from_slice(payload);
        Ok(())
    }

    /// A reader of the plain segment from `offset` on, one block in memory at a time.
    pub fn reader_at(&self, offset: u64) -> io::Result<PlainReader<'_>> {
        // The first block that ends after `offset`.
        let (mut lo, mut hi) = (0, self.blocks);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let b = self.entry(mid)?;
            if b.plain_offset + u64::from(b.plain_len) <= offset {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let within = match lo < self.blocks {
            true => offset.saturating_sub(self.entry(lo)?.plain_offset) as usize,
            false => 0,
        };
        Ok(PlainReader {
            zseg: self,
            next: lo,
            block: Arc::new(Vec::new()),
            at: within,
            skip: within,
        })
    }

    /// The whole plain segment, header included, every block checked.
    pub fn plain(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.plain_into(&mut out)?;
        Ok(out)
    }

    /// [`Zseg::plain`] into `out`, whose allocation is reused (its contents are replaced).
    /// The blocks are independent, so the second half of them is decompressed on a thread of
    /// its own, into its own part of `out`.
    pub fn plain_into(&self, out: &mut Vec<u8>) -> io::Result<()> {
        let blocks = (0..self.blocks)
            .map(|k| self.entry(k))
            .collect::<io::Result<Vec<Block>>>()?;
        let total: u64 = blocks.iter().map(|b| u64::from(b.plain_len)).sum::<u64>() + HEADER_BYTES;
        if total != self.plain_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: its blocks no longer add up to its length: its index was changed since it was opened",
                    self.path.display()
                ),
            ));
        }
        // Bytes left from a segment read before are written over, not zeroed first: only
        // what this segment has beyond them is.
        out.resize(total as usize, 0);
        let (head, body) = out.split_at_mut(HEADER_BYTES as usize);
        head.copy_from_slice(&segment::encode_header(self.first_seq));
        let half = blocks.len() / 2;
        if half == 0 {
            return self.decompress_blocks(0, &blocks, body);
        }
        let cut: usize = blocks[..half].iter().map(|b| b.plain_len as usize).sum();
        let (first, second) = body.split_at_mut(cut);
        std::thread::scope(|s| {
            let later = s.spawn(|| self.decompress_blocks(half, &blocks[half..], second));
            // The earlier block's failure is the one reported, as reading in order would.
            let earlier = self.decompress_blocks(0, &blocks[..half], first);
            let later = later.join().expect("a decompressing thread");
            earlier.and(later)
        })
    }

    /// Decompresses `blocks` (the first of them block `first`) into `out`, which holds
    /// exactly their plain bytes.
    fn decompress_blocks(
        &self,
        first: usize,
        blocks: &[Block],
        mut out: &mut [u8],
    ) -> io::Result<()> {
        let mut decompressor = zstd::bulk::Decompressor::new()?;
        let mut packed = Vec::new();
        for (i, b) in blocks.iter().enumerate() {
            let (this, rest) = std::mem::take(&mut out).split_at_mut(b.plain_len as usize);
            self.decompress_block(first + i, b, &mut decompressor, &mut packed, this)?;
            out = rest;
        }
        Ok(())
    }

    /// Reads block `k` (its index entry `b`) into `packed`, checks its checksum, and
    /// decompresses it into `out`, which it must fill exactly.
    fn decompress_block(
        &self,
        k: usize,
        b: &Block,
        decompressor: &mut zstd::bulk::Decompressor<'_>,
        packed: &mut Vec<u8>,
        out: &mut [u8],
    ) -> io::Result<()> {
        packed.resize(b.file_len as usize, 0);
        self.handle.file()?.read_exact_at(packed, b.file_offset)?;
        if crc32c::crc32c(packed) != b.crc {
            return Err(self.damaged(k, b, "does not match its checksum"));
        }
        let n = decompressor
            .decompress_to_buffer(packed, out)
            .map_err(|e| self.damaged(k, b, &e.to_string()))?;
        if n != out.len() {
            return Err(self.damaged(k, b, "decompresses to another length than its index says"));
        }
        Ok(())
    }
}

/// The plain bytes of a compressed segment, read in order from some offset.
pub struct PlainReader<'a> {
    zseg: &'a Zseg,
    next: usize,
    block: Arc<Vec<u8>>,
    at: usize,
    /// Bytes of the first block before the starting offset.
    skip: usize,
}

impl Read for PlainReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at >= self.block.len() {
            if self.next >= self.zseg.blocks {
                return Ok(0);
            }
            self.block = self.zseg.block(self.next)?.1;
            self.next += 1;
            self.at = std::mem::take(&mut self.skip);
        }
        let n = buf.len().min(self.block.len() - self.at);
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Writes the compressed form of the plain segment at `plain_path` beside it, syncs it,
/// reads it back and compares every byte with the plain segment, and only then renames it
/// into place (read-only). The plain segment is left for the caller to remove once readers
/// use the new one. `Ok(None)` if `stop` said stop (nothing is left behind).
pub fn compress_file(
    plain_path: &Path,
    first_seq: u64,
    stop: &dyn Fn() -> bool,
) -> Result<Option<(PathBuf, Zseg)>, StoreError> {
    compress_with(&crate::io::Io::default(), plain_path, first_seq, stop)
}

/// [`compress_file`] through the store's I/O seam.
pub(crate) fn compress_with(
    sys: &crate::io::Io,
    plain_path: &Path,
    first_seq: u64,
    stop: &dyn Fn() -> bool,
) -> Result<Option<(PathBuf, Zseg)>, StoreError> {
    let dir = plain_path.parent().unwrap_or(Path::new("."));
    let target = dir.join(file_name(first_seq));
    let part = leftover(&target);
    let bad = |m: String| StoreError::Corrupted(format!("{}: {m}", plain_path.display()));
    let source = File::open(plain_path).map_err(|e| StoreError::io(plain_path, e))?;
    let result = (|| {
        // Read in order, a block at a time: memory stays one block whatever the segment's size.
        let mut src = io::BufReader::with_capacity(1 << 20, &source);
        let mut head = [0u8; HEADER_BYTES as usize];
        segment::read_up_to(&mut src, &mut head).map_err(|e| StoreError::io(plain_path, e))?;
        segment::check_header(&head, first_seq).map_err(bad)?;
        let file = File::create(&part).map_err(|e| StoreError::io(&part, e))?;
        let out = BufWriter::with_capacity(1 << 20, sys.appender(&file, &part));
        let written = |m: String| StoreError::Corrupted(format!("{}: {m}", part.display()));
        let encoder = match encode_frames(&mut src, first_seq, out, stop) {
            Ok(Some(encoder)) => encoder,
            Ok(None) => return Ok(None),
            Err(Fault::Plain(m)) => return Err(bad(m)),
            Err(Fault::Written(m)) => return Err(written(m)),
        };
        // The plain segment's length, as far as its frames were read.
        let read = encoder.plain_offset;
        encoder
            .finish()
            .map_err(written)?
            .into_inner()
            .map_err(|e| StoreError::io(&part, e.into_error()))?;
        sys.sync_all(&file, &part)?;
        drop(file);
        // Read back from the disk and compared with the plain segment, block by block.
        let back = Zseg::open(&part, first_seq)?;
        let differs = || {
            StoreError::Corrupted(format!(
                "{} does not read back as {}",
                part.display(),
                plain_path.display()
            ))
        };
        if back.plain_len() != read {
            return Err(differs());
        }
        let mut original = Vec::new();
        for k in 0..back.blocks {
            let (b, block) = back.block(k).map_err(|e| StoreError::io(&part, e))?;
            original.resize(b.plain_len as usize, 0);
            source
                .read_exact_at(&mut original, b.plain_offset)
                .map_err(|e| StoreError::io(plain_path, e))?;
            if *block != original {
                return Err(differs());
            }
        }
        fs::set_permissions(&part, fs::Permissions::from_mode(0o444))
            .map_err(|e| StoreError::io(&part, e))?;
        sys.rename(&part, &target)?;
        sys.sync_dir(dir)?;
        // The same file, checked whole above, now under its own name.
        let (path, handle) = (target.clone(), back.handle.renamed(&target));
        Ok(Some((
            target.clone(),
            Zseg {
                path,
                handle,
                ..back
            },
        )))
    })();
    if !matches!(result, Ok(Some(_))) {
        let _ = fs::remove_file(&part);
    }
    result
}

/// The suffix of a compression in progress, deleted on opening if a crash interrupted it.
pub const PART: &str = ".zseg.part";

fn leftover(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records of about 2 KB, so blocks hold the fewest records a writer puts in one.
    fn plain_segment(first: u64, records: u64) -> Vec<u8> {
        plain_segment_of(first, records, 2100)
    }

    fn plain_segment_of(first: u64, records: u64, pad: u64) -> Vec<u8> {
        let mut out = segment::encode_header(first).to_vec();
        for seq in first..first + records {
            let body = format!(
                "{{\"seq\":{seq},\"pad\":\"{}\"}}",
                "x".repeat((pad + seq % 50) as usize)
            );
            segment::encode_frame(body.as_bytes(), &mut out);
        }
        out
    }

    fn per_block_written(z: &[u8]) -> u32 {
        u32::from_le_bytes(z[16..20].try_into().unwrap())
    }

    #[test]
    fn blocks_hold_about_sixteen_kib_of_records_within_bounds() {
        assert_eq!(per_block_for(8 * 2100, 8), PER_BLOCK_MIN);
        assert_eq!(per_block_for(8 * 700, 8), 23);
        assert_eq!(per_block_for(8 * 60, 8), PER_BLOCK_WRITTEN_MAX);
        assert_eq!(per_block_for(3 * 700, 3), 23);
        assert_eq!(per_block_for(0, 0), PER_BLOCK_MIN);
        for (records, pad, per_block) in
            [(100, 0, 128), (100, 700, 22), (3, 700, 22), (20, 2100, 8)]
        {
            let plain = plain_segment_of(7, records, pad);
            let mut out = Vec::new();
            write(&plain, 7, &mut out).unwrap();
            assert_eq!(
                per_block_written(&out),
                per_block,
                "{records} records of {pad}"
            );
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(segment::file_name(7));
            fs::write(&path, &plain).unwrap();
            let (at, z) = compress_file(&path, 7, &|| false).unwrap().unwrap();
            assert_eq!(
                fs::read(&at).unwrap(),
                out,
                "both writers choose the same blocks"
            );
            assert_eq!(z.plain().unwrap(), plain);
            let mut buf = Vec::new();
            for (i, at) in offsets(&plain).into_iter().enumerate() {
                z.read_frame(7 + i as u64, at, &mut buf).unwrap();
                assert_eq!(
                    &buf[..],
                    segment::decode_frame(&plain[at as usize..]).unwrap().0
                );
            }
        }
    }

    fn offsets(plain: &[u8]) -> Vec<u64> {
        let mut at = HEADER_BYTES as usize;
        let mut out = Vec::new();
        while at < plain.len() {
            out.push(at as u64);
            at += segment::decode_frame(&plain[at..]).unwrap().1;
        }
        out
    }

    fn compressed(plain: &[u8], first: u64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(first));
        let mut out = Vec::new();
        write(plain, first, &mut out).unwrap();
        fs::write(&path, out).unwrap();
        (dir, path)
    }

    #[test]
    fn every_record_reads_back_by_seq_and_offset_and_the_whole_is_the_plain_segment() {
        for records in [1, 7, 8, 9, 100] {
            let plain = plain_segment(40, records);
            let (_dir, path) = compressed(&plain, 40);
            let z = Zseg::open(&path, 40).unwrap();
            assert_eq!(z.plain().unwrap(), plain);
            assert_eq!(z.plain_len(), plain.len() as u64);
            let mut buf = Vec::new();
            for (i, at) in offsets(&plain).into_iter().enumerate() {
                let seq = 40 + i as u64;
                z.read_frame(seq, at, &mut buf).unwrap();
                assert_eq!(
                    &buf[..],
                    segment::decode_frame(&plain[at as usize..]).unwrap().0
                );
            }
            assert!(
                z.read_frame(40 + records, plain.len() as u64, &mut buf)
                    .is_err()
            );
        }
    }

    #[test]
    fn a_flipped_byte_anywhere_is_refused_where_it_is_read() {
        let plain = plain_segment(0, 40);
        let (_dir, path) = compressed(&plain, 0);
        let good = fs::read(&path).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x20;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            fs::write(&path, &bad).unwrap();
            let read = Zseg::open(&path, 0)
                .and_then(|z| z.plain().map_err(|e| StoreError::Corrupted(e.to_string())));
            assert!(
                read.is_err(),
                "flip at byte {i} of {} went unnoticed",
                good.len()
            );
        }
    }

    #[test]
    fn an_index_claiming_an_impossible_block_is_refused_before_anything_is_allocated() {
        let plain = plain_segment(0, 10);
        let (_dir, path) = compressed(&plain, 0);
        let mut bytes = fs::read(&path).unwrap();
        // Block 0 claims 4 GiB, its index and trailer made consistent again.
        let blocks = 2;
        let index_at = bytes.len() - TRAILER - ENTRY * blocks;
        bytes[index_at + 20..index_at + 24].copy_from_slice(&u32::MAX.to_le_bytes());
        let index = bytes[index_at..index_at + ENTRY * blocks].to_vec();
        let plain_len = u64::from_le_bytes(
            bytes[bytes.len() - 20..bytes.len() - 12]
                .try_into()
                .unwrap(),
        );
        let end = trailer(&bytes[..HEADER], &index, blocks as u64, plain_len);
        let at = bytes.len() - TRAILER;
        bytes[at..].copy_from_slice(&end);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&path, &bytes).unwrap();
        let e = Zseg::open(&path, 0).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("block 0 claims"), "{e}");
    }

    #[test]
    fn an_index_entry_changed_after_opening_fails_the_read_that_uses_it() {
        let plain = plain_segment(0, 40);
        let (_dir, path) = compressed(&plain, 0);
        let good = fs::read(&path).unwrap();
        let blocks = 5;
        let index_at = good.len() - TRAILER - ENTRY * blocks;
        let at = offsets(&plain);
        // Block 2's entry: each field in turn made to point elsewhere or claim too much.
        for (field, value) in [
            (0, 1u64 << 40),
            (8, good.len() as u64),
            (8, 0),
            (16, u64::from(u32::MAX)),
            (20, u64::from(u32::MAX)),
            (20, 0),
            (24, 7),
        ] {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            fs::write(&path, &good).unwrap();
            let z = Zseg::open(&path, 0).unwrap();
            let mut bad = good.clone();
            let e = index_at + 2 * ENTRY + field;
            let width = if field < 16 { 8 } else { 4 };
            bad[e..e + width].copy_from_slice(&value.to_le_bytes()[..width]);
            fs::write(&path, &bad).unwrap();
            let mut buf = Vec::new();
            assert!(
                z.read_frame(16, at[16], &mut buf).is_err(),
                "field at {field} set to {value} went unnoticed"
            );
            z.read_frame(0, at[0], &mut buf).unwrap();
            assert!(z.plain().is_err(), "field at {field} set to {value}");
        }
    }

    #[test]
    fn the_plain_reader_reads_from_any_record_to_the_end() {
        let plain = plain_segment(0, 40);
        let (_dir, path) = compressed(&plain, 0);
        let z = Zseg::open(&path, 0).unwrap();
        for at in offsets(&plain).into_iter().chain([HEADER_BYTES]) {
            let mut got = Vec::new();
            z.reader_at(at).unwrap().read_to_end(&mut got).unwrap();
            assert_eq!(got, &plain[at as usize..], "from offset {at}");
        }
    }

    #[test]
    fn a_segment_with_a_bad_frame_is_not_compressed() {
        let dir = tempfile::tempdir().unwrap();
        let mut plain = plain_segment(0, 30);
        let at = offsets(&plain)[20] as usize + 12;
        plain[at] ^= 1;
        let path = dir.path().join(segment::file_name(0));
        fs::write(&path, &plain).unwrap();
        let e = compress_file(&path, 0, &|| false).map(|_| ()).unwrap_err();
        assert!(
            e.to_string().contains("a sealed segment must be whole"),
            "{e}"
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "nothing left beside it"
        );
        let mut plain = plain_segment(0, 3);
        let last = plain.len() - 1;
        plain[last] ^= 1;
        assert!(write(&plain, 0, &mut Vec::new()).is_err());
        assert!(write(&plain_segment(0, 3), 1, &mut Vec::new()).is_err());
    }

    #[test]
    fn compressing_a_file_replaces_nothing_until_it_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let plain = plain_segment(0, 50);
        let path = dir.path().join(segment::file_name(0));
        fs::write(&path, &plain).unwrap();
        assert!(compress_file(&path, 0, &|| true).unwrap().is_none());
        assert!(!dir.path().join(file_name(0)).exists());
        assert!(!leftover(&dir.path().join(file_name(0))).exists());
        let (at, z) = compress_file(&path, 0, &|| false).unwrap().unwrap();
        assert_eq!(at, dir.path().join(file_name(0)));
        assert_eq!(z.plain().unwrap(), plain);
        assert!(fs::metadata(&at).unwrap().permissions().readonly());
        assert!(path.exists(), "the plain segment is the caller's to remove");
    }
}
