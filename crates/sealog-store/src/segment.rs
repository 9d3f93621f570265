//! Segment files: the log's source of truth.
//!
//! ```text
//! segment  = header frame*
//! header   = "SEALOGS1" first_seq:u64le                      (16 bytes)
//! frame    = len:u32le crc:u32le payload[len]                 crc = crc32c(len:u32le ‖ payload)
//! payload  = the record's RFC 8785 JSON (it names its own seq)
//! ```
//! Frames are only ever appended. A segment is sealed (cut to its last frame, fsynced, made
//! read-only) when the next one starts; only the last segment can have a torn tail, or zeros
//! past its frames ([`ActiveSegment`]). A sealed segment may then be
//! replaced by its compressed form ([`crate::zseg`]), the same bytes in blocks.
//!
//! Retention is the one sanctioned rewrite of a sealed segment: it replaces a pruned record's
//! payload with a [`Stub`] of exactly the same length, so no frame moves and every position
//! stays true.
//!
//! ```text
//! stub     = 0x00 "PRUNED1" seq:u64le leaf[32] record_id[32] ingested_ns:i64le
//!            event_ns:i64le has_link:u8 link[32] has_key:u8 key[16]
//!            0x00*                                             (as long as the record was)
//! ```
//! A record is canonical JSON and starts with `{`, so the first byte tells them apart; the
//! frame's checksum covers the stub and its zero padding.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::StoreError;
use crate::io::Io;

pub const MAGIC: &[u8; 8] = b"SEALOGS1";
pub const HEADER_BYTES: u64 = 16;
pub const FRAME_HEADER_BYTES: u64 = 8;
/// An event is at most 1 MiB; its record adds the server fields. Anything longer is corruption.
pub const FRAME_PAYLOAD_BYTES_MAX: u32 = 2 << 20;

pub fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn parse_compressed_name(name: &str) -> Option<u64> {
    parse_file_name(&format!("{}.seg", name.strip_suffix(".zseg")?))
}

/// Whether `path` names a compressed segment.
pub fn is_compressed(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "zseg")
}

/// The segments in a log directory, ordered by first seq: for a segment both plain and
/// compressed (a crash came between the compressed one's rename and the plain one's
/// removal), the compressed one, which was read back whole before it was renamed.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut out: Vec<(u64, PathBuf)> = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(first) = parse_file_name(name).or_else(|| parse_compressed_name(name)) {
            out.push((first, entry.path()));
        }
    }
    // Plain before compressed for one seq ("seg" < "zseg"), so the compressed one stays.
    out.sort();
    out.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            std::mem::swap(later, earlier);
        }
        same
    });
    Ok(out)
}

/// The uncompressed length of every segment in `dir` (what reading them all yields); a
/// segment that cannot be opened counts as nothing.
pub fn plain_bytes(dir: &Path) -> u64 {
    list(dir).map_or(0, |segments| {
        segments
            .iter()
            .map(
                |(first, path)| match SegmentFile::open_listed(path, *first) {
                    Ok(SegmentFile::Compressed(z)) => z.plain_len(),
                    Ok(SegmentFile::Plain { file, .. }) => written_len(&file),
                    Err(_) => 0,
                },
            )
            .sum()
    })
}

/// A plain segment's length without the zeros its writer may have laid down past its frames:
/// for the active segment, up to its last byte that is not zero, which its last record (`}`)
/// or its header always is. A sealed one (read-only) has none, and may end in a retention
/// stub's zero padding.
fn written_len(file: &File) -> u64 {
    let Ok(meta) = file.metadata() else { return 0 };
    let len = meta.len();
    if meta.permissions().readonly() {
        return len;
    }
    let mut end = len;
    let mut buf = vec![0u8; 64 << 10];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        if file.read_exact_at(chunk, start).is_err() {
            return len;
        }
        match chunk.iter().rposition(|&b| b != 0) {
            Some(i) => return (start + i as u64 + 1).max(HEADER_BYTES.min(len)),
            None => end = start,
        }
    }
    HEADER_BYTES.min(len)
}

/// Plain segments that also have their compressed form: what a crash between the rename
/// and the removal left.
pub fn superseded(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut out = Vec::new();
    for (first, path) in list(dir)? {
        let plain = dir.join(file_name(first));
        if is_compressed(&path) && plain.exists() {
            out.push(plain);
        }
    }
    Ok(out)
}

/// A segment as readers hold it: plain (the one being appended to, or sealed and not yet
/// compressed) or compressed.
pub enum SegmentFile {
    Plain { file: File, path: PathBuf },
    Compressed(crate::zseg::Zseg),
}

impl SegmentFile {
    /// Opens segment `first` in `dir`, compressed if it has been.
    pub fn open(dir: &Path, first: u64) -> Result<Self, StoreError> {
        let compressed = dir.join(crate::zseg::file_name(first));
        if compressed.exists() {
            return Self::open_path(&compressed, first);
        }
        Self::open_listed(&dir.join(file_name(first)), first)
    }

    /// Opens the segment a listing named at `path`. A plain segment the writer compressed
    /// since (and then removed) is opened in its compressed form: every reader beside a
    /// writer — queries, recovery, `verify` — finds it here.
    pub fn open_listed(path: &Path, first: u64) -> Result<Self, StoreError> {
        let compressed = path.with_file_name(crate::zseg::file_name(first));
        match Self::open_path(path, first) {
            Err(StoreError::Io { cause, .. })
                if cause.kind() == io::ErrorKind::NotFound && compressed.exists() =>
            {
                Self::open_path(&compressed, first)
            }
            opened => opened,
        }
    }

    /// Opens the segment file at `path`, of either kind.
    pub fn open_path(path: &Path, first: u64) -> Result<Self, StoreError> {
        if is_compressed(path) {
            return crate::zseg::Zseg::open(path, first).map(SegmentFile::Compressed);
        }
        let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
        Ok(SegmentFile::Plain {
            file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        match self {
            SegmentFile::Plain { path, .. } => path,
            SegmentFile::Compressed(z) => z.path(),
        }
    }

    /// The plain file, for reads of a span of frames with one call.
    pub fn plain_file(&self) -> Option<&File> {
        match self {
            SegmentFile::Plain { file, .. } => Some(file),
            SegmentFile::Compressed(_) => None,
        }
    }

    /// The payload of record `seq`'s frame at `offset`, its checksum checked.
    pub fn read_frame(
        &self,
        seq: u64,
        offset: u64,
        buf: &mut Vec<u8>,
    ) -> Result<(), ReadFrameError> {
        match self {
            SegmentFile::Plain { file, .. } => read_frame_at(file, offset, buf),
            SegmentFile::Compressed(z) => z.read_frame(seq, offset, buf),
        }
    }

    /// The whole segment in its plain form, header included.
    pub fn plain_bytes(&self) -> io::Result<Vec<u8>> {
        match self {
            SegmentFile::Plain { path, .. } => fs::read(path),
            SegmentFile::Compressed(z) => z.plain(),
        }
    }
}

pub fn frame_crc(payload: &[u8]) -> u32 {
    let len = (payload.len() as u32).to_le_bytes();
    crc32c::crc32c_append(crc32c::crc32c(&len), payload)
}

/// Appends one frame for `payload` to `buf`.
pub fn encode_frame(payload: &[u8], buf: &mut Vec<u8>) {
    assert!(
        payload.len() as u64 <= u64::from(FRAME_PAYLOAD_BYTES_MAX),
        "record larger than a frame may be"
    );
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&frame_crc(payload).to_le_bytes());
    buf.extend_from_slice(payload);
}

/// Checks a group of frames about to be written at `base`: they lie end to end, each starts
/// at the offset its position will name, and there is one per offset. The read side has its
/// own check (every record read is compared with its leaf); this one stops a writer bug
/// before it reaches the disk.
pub(crate) fn check_group(
    frames: &[u8],
    base: u64,
    offsets: impl ExactSizeIterator<Item = u64>,
) -> Result<(), String> {
    let count = offsets.len();
    let mut at = 0usize;
    for (i, offset) in offsets.enumerate() {
        if base + at as u64 != offset {
            return Err(format!(
                "frame {i} of {count} starts at {} but its position says {offset}",
                base + at as u64
            ));
        }
        let len = frames
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
            .ok_or_else(|| format!("frame {i} of {count} is past the group's end"))?;
        if len == 0 || len > FRAME_PAYLOAD_BYTES_MAX {
            return Err(format!("frame {i} of {count} has length {len}"));
        }
        at += FRAME_HEADER_BYTES as usize + len as usize;
    }
    if at != frames.len() {
        return Err(format!(
            "{count} frames take {at} bytes but the group holds {}",
            frames.len()
        ));
    }
    Ok(())
}

/// What is wrong with the bytes at some offset, when they are not a whole frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadFrame {
    /// The file ends inside the frame.
    Short,
    /// The length field is zero or larger than any record can be.
    Length(u32),
    /// The checksum does not match.
    Checksum,
}

impl std::fmt::Display for BadFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadFrame::Short => write!(f, "file ends inside a frame"),
            BadFrame::Length(n) => write!(f, "impossible frame length {n}"),
            BadFrame::Checksum => write!(f, "frame checksum mismatch"),
        }
    }
}

/// Decodes the frame starting at `bytes[0]`: its payload and total length.
pub fn decode_frame(bytes: &[u8]) -> Result<(&[u8], usize), BadFrame> {
    if bytes.len() < FRAME_HEADER_BYTES as usize {
        return Err(BadFrame::Short);
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if len == 0 || len > FRAME_PAYLOAD_BYTES_MAX {
        return Err(BadFrame::Length(len));
    }
    let end = FRAME_HEADER_BYTES as usize + len as usize;
    if bytes.len() < end {
        return Err(BadFrame::Short);
    }
    let payload = &bytes[FRAME_HEADER_BYTES as usize..end];
    if frame_crc(payload) != crc {
        return Err(BadFrame::Checksum);
    }
    Ok((payload, end))
}

/// The offset of the first whole frame that starts after `offset` in `bytes`, if any. A bad
/// frame with a whole one after it is damage, not a torn write: only a tail can be torn.
pub fn whole_frame_after(bytes: &[u8], offset: usize) -> Option<usize> {
    (offset + 1..bytes.len()).find(|&i| decode_frame(&bytes[i..]).is_ok())
}

pub fn encode_header(first_seq: u64) -> [u8; HEADER_BYTES as usize] {
    let mut h = [0u8; HEADER_BYTES as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..].copy_from_slice(&first_seq.to_le_bytes());
    h
}

/// Checks a segment header against the seq its file name promises.
pub fn check_header(bytes: &[u8], first_seq: u64) -> Result<(), String> {
    if bytes.len() < HEADER_BYTES as usize || &bytes[..8] != MAGIC {
        return Err("not a sealog segment (bad magic)".into());
    }
    let named = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if named != first_seq {
        return Err(format!(
            "header says first seq {named}, file name says {first_seq}"
        ));
    }
    Ok(())
}

pub const STUB_MAGIC: &[u8; 8] = b"\0PRUNED1";
/// A stub's length before its padding.
pub const STUB_BYTES: usize = 8 + 8 + 32 + 32 + 8 + 8 + 1 + 32 + 1 + 16;

/// What retention leaves of a pruned record: enough to keep proving the tree (its leaf
/// hash), deduplicating (its id), following its caller's link (for the ledger, the record it
/// superseded) and finding it by one key its caller keeps (for the ledger, its supersedes
/// chain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stub {
    pub seq: u64,
    pub leaf: [u8; 32],
    pub id: [u8; 32],
    pub ingested_ns: i64,
    pub event_ns: i64,
    pub link: Option<[u8; 32]>,
    pub key: Option<[u8; 16]>,
}

impl Stub {
    /// The stub padded to `len` bytes, the length of the record it replaces; `None` if the
    /// record is shorter than a stub (no record is: it carries its id in hex and more).
    pub fn encode(&self, len: usize) -> Option<Vec<u8>> {
        if len < STUB_BYTES {
            return None;
        }
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(STUB_MAGIC);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.leaf);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&self.ingested_ns.to_le_bytes());
        out.extend_from_slice(&self.event_ns.to_le_bytes());
        out.push(u8::from(self.link.is_some()));
        out.extend_from_slice(&self.link.unwrap_or([0; 32]));
        out.push(u8::from(self.key.is_some()));
        out.extend_from_slice(&self.key.unwrap_or([0; 16]));
        out.resize(len, 0);
        Some(out)
    }

    /// `None` if `payload` is not a stub (a record); otherwise the stub, or why it is not a
    /// well-formed one.
    pub fn decode(payload: &[u8]) -> Option<Result<Stub, String>> {
        if !payload.starts_with(STUB_MAGIC) {
            return None;
        }
        Some(Self::parse(payload))
    }

    fn parse(p: &[u8]) -> Result<Stub, String> {
        if p.len() < STUB_BYTES {
            return Err(format!(
                "a pruned record's stub of {} bytes is cut short",
                p.len()
            ));
        }
        let word = |at: usize| <[u8; 8]>::try_from(&p[at..at + 8]).expect("8 bytes");
        let hash = |at: usize| <[u8; 32]>::try_from(&p[at..at + 32]).expect("32 bytes");
        let link = match p[96] {
            0 if p[97..129] == [0; 32] => None,
            1 => Some(hash(97)),
            _ => return Err("a pruned record's stub has a malformed link".into()),
        };
        let key = match p[129] {
            0 if p[130..STUB_BYTES] == [0; 16] => None,
            1 => Some(<[u8; 16]>::try_from(&p[130..STUB_BYTES]).expect("16 bytes")),
            _ => return Err("a pruned record's stub has a malformed key".into()),
        };
        if p[STUB_BYTES..].iter().any(|&b| b != 0) {
            return Err("a pruned record's stub has bytes after it that are not padding".into());
        }
        Ok(Stub {
            seq: u64::from_le_bytes(word(8)),
            leaf: hash(16),
            id: hash(48),
            ingested_ns: i64::from_le_bytes(word(80)),
            event_ns: i64::from_le_bytes(word(88)),
            link,
            key,
        })
    }
}

/// The Merkle leaf hash a frame's payload stands for: a record's own, or the one its stub
/// keeps.
pub fn leaf_of(payload: &[u8]) -> Result<[u8; 32], String> {
    match Stub::decode(payload) {
        None => Ok(sealog_merkle::leaf_hash(payload)),
        Some(stub) => stub.map(|s| s.leaf),
    }
}

/// Groups up to this size are written into zeros laid down ahead of them (see
/// [`ActiveSegment`]); a larger group grows the file itself, its own data outweighing the
/// metadata write that costs.
const ZEROED_GROUP_BYTES_MAX: usize = 256 << 10;
/// When fewer zeroed bytes than this are left ahead of the frames, more are laid down.
const ZEROED_AHEAD_MIN: u64 = 256 << 10;
/// How many zeroed bytes are laid down at once.
const ZEROED_CHUNK: u64 = 1 << 20;
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

/// The one segment being appended to.
///
/// Past its frames the file may end in zeros the writer laid down ahead of them: an
/// fdatasync of a file that grew must also write its inode (its size, and the blocks just
/// allocated) before the disk's cache is flushed, which on this class of machine doubles what a
/// small group's sync costs; overwriting bytes already written and synced does not. A frame's
/// length is never zero, so the first zero length at a frame's start ends the frames, and
/// recovery cuts such a tail as it cuts a torn one (without reporting it, as it held nothing,
/// unless the writer had said records there were durable).
/// Sealing and a clean close cut it too, so a sealed segment is frames only.
pub struct ActiveSegment {
    pub first_seq: u64,
    pub path: PathBuf,
    pub file: File,
    /// Bytes in the file that are whole, written frames.
    pub len: u64,
    /// Where the file ends: past `len`, zeros. `u64::MAX` once laying zeros down failed (a
    /// full disk, a file size limit): none are laid again, the frames grow the file
    /// themselves, and a seal or a clean close cuts whatever zeros were written.
    end: u64,
    /// No zeros are laid down past this: where the writer moves on to the next segment.
    zeros_until: u64,
    io: Io,
}

impl ActiveSegment {
    /// Creates a new, empty segment and makes its existence durable.
    pub(crate) fn create(io: &Io, dir: &Path, first_seq: u64) -> Result<Self, StoreError> {
        let path = dir.join(file_name(first_seq));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        io.write_at(&file, &path, &encode_header(first_seq), 0)?;
        io.sync_all(&file, &path)?;
        io.sync_dir(dir)?;
        Ok(ActiveSegment {
            first_seq,
            path,
            file,
            len: HEADER_BYTES,
            end: HEADER_BYTES,
            zeros_until: 0,
            io: io.clone(),
        })
    }

    /// Opens the segment to append after its frame ending at `len`, which recovery found
    /// to be the file's end.
    pub(crate) fn open(
        io: &Io,
        path: PathBuf,
        first_seq: u64,
        len: u64,
    ) -> Result<Self, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        let end = file.metadata().map_err(|e| StoreError::io(&path, e))?.len();
        Ok(ActiveSegment {
            first_seq,
            path,
            file,
            len,
            end: end.max(len),
            zeros_until: 0,
            io: io.clone(),
        })
    }

    /// Writes whole frames after the last ones, and for a small group zeros ahead of them
    /// when few are left. Durability is the caller's `sync` to choose: it covers both.
    pub fn write(&mut self, frames: &[u8]) -> Result<(), StoreError> {
        self.io.write_at(&self.file, &self.path, frames, self.len)?;
        self.len += frames.len() as u64;
        self.end = self.end.max(self.len);
        if frames.len() <= ZEROED_GROUP_BYTES_MAX && self.end - self.len < ZEROED_AHEAD_MIN {
            self.lay_zeros();
        }
        Ok(())
    }

    /// Lays zeros ahead of the frames up to `limit` bytes from the segment's start (the
    /// size at which the writer moves on to the next segment); none by default.
    pub(crate) fn zero_up_to(&mut self, limit: u64) {
        self.zeros_until = limit;
    }

    /// Zeros past the file's end. Only a speed-up: a failure never fails the group, whose
    /// frames are written already.
    fn lay_zeros(&mut self) {
        let until = self.zeros_until.min(self.end + ZEROED_CHUNK);
        let mut at = self.end;
        while at < until {
            let n = (until - at).min(ZEROS.len() as u64) as usize;
            if self
                .io
                .write_at(&self.file, &self.path, &ZEROS[..n], at)
                .is_err()
            {
                // Some of them may be there: cut at the next seal or clean close.
                self.end = u64::MAX;
                return;
            }
            at += n as u64;
        }
        self.end = at;
    }

    pub fn sync(&self) -> Result<(), StoreError> {
        self.io.sync_data(&self.file, &self.path)
    }

    /// Cuts the zeros past the frames and makes that durable: the file is its frames.
    fn cut_zeros(&mut self) -> Result<(), StoreError> {
        if self.end > self.len {
            self.io.set_len(&self.file, &self.path, self.len)?;
            self.end = self.len;
        }
        self.io.sync_all(&self.file, &self.path)
    }

    /// Makes the segment durable and read-only: committed bytes are never rewritten.
    pub fn seal(mut self) -> Result<(), StoreError> {
        self.cut_zeros()?;
        fs::set_permissions(&self.path, fs::Permissions::from_mode(0o444))
            .map_err(|e| StoreError::io(&self.path, e))
    }

    /// A clean close: the segment stays the active one, without the zeros past its frames.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.cut_zeros()
    }
}

/// Whether everything in `bytes` is zero: what the writer laid down ahead of its frames.
pub fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// Replaces `path` with `bytes` atomically and durably: a crash leaves the old or the new.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    Io::default().write_atomic(path, bytes)
}

pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    Io::default().sync_dir(dir)
}

/// Reads into `buf` until it is full or the input ends; returns how much was read.
pub(crate) fn read_up_to(r: &mut impl io::Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Reads one frame's payload at `offset` of `file`.
pub fn read_frame_at(file: &File, offset: u64, buf: &mut Vec<u8>) -> Result<(), ReadFrameError> {
    let mut head = [0u8; FRAME_HEADER_BYTES as usize];
    file.read_exact_at(&mut head, offset)
        .map_err(ReadFrameError::Io)?;
    let len = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes"));
    if len == 0 || len > FRAME_PAYLOAD_BYTES_MAX {
        return Err(ReadFrameError::Bad(BadFrame::Length(len)));
    }
    buf.clear();
    buf.resize(len as usize, 0);
    file.read_exact_at(buf, offset + FRAME_HEADER_BYTES)
        .map_err(ReadFrameError::Io)?;
    let crc = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
    if frame_crc(buf) != crc {
        return Err(ReadFrameError::Bad(BadFrame::Checksum));
    }
    Ok(())
}

#[derive(Debug)]
pub enum ReadFrameError {
    Io(io::Error),
    Bad(BadFrame),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_is_checked_against_its_positions_before_it_is_written() {
        let mut frames = Vec::new();
        let mut offsets = Vec::new();
        for payload in [&b"{\"a\":1}"[..], b"{\"b\":22}", b"{}"] {
            offsets.push(100 + frames.len() as u64);
            encode_frame(payload, &mut frames);
        }
        let check =
            |frames: &[u8], offsets: &[u64]| check_group(frames, 100, offsets.iter().copied());
        assert_eq!(check(&frames, &offsets), Ok(()));
        let shifted: Vec<u64> = offsets.iter().map(|o| o + 1).collect();
        assert!(
            check(&frames, &shifted)
                .unwrap_err()
                .contains("frame 0 of 3 starts at 100")
        );
        assert!(
            check(&frames, &offsets[..2])
                .unwrap_err()
                .contains("2 frames take")
        );
        let mut longer = frames.clone();
        longer.push(0);
        assert!(
            check(&longer, &offsets)
                .unwrap_err()
                .contains("the group holds")
        );
        let mut extra = offsets.clone();
        extra.push(100 + frames.len() as u64);
        assert!(
            check(&frames, &extra)
                .unwrap_err()
                .contains("past the group's end")
        );
        let mut zero = frames.clone();
        zero[..4].copy_from_slice(&0u32.to_le_bytes());
        assert!(check(&zero, &offsets).unwrap_err().contains("length 0"));
    }

    #[test]
    fn frames_round_trip_and_every_damage_is_seen() {
        let mut buf = Vec::new();
        encode_frame(b"{\"seq\":0}", &mut buf);
        let (p, n) = decode_frame(&buf).unwrap();
        assert_eq!((p, n), (&b"{\"seq\":0}"[..], buf.len()));
        for cut in 0..buf.len() {
            assert_eq!(
                decode_frame(&buf[..cut]).unwrap_err(),
                BadFrame::Short,
                "cut at {cut}"
            );
        }
        for i in 0..buf.len() {
            for bit in 0..8 {
                let mut b = buf.clone();
                b[i] ^= 1 << bit;
                assert!(
                    decode_frame(&b).is_err(),
                    "flip at byte {i} bit {bit} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn a_stub_round_trips_keeps_its_length_and_refuses_damage() {
        let stub = Stub {
            seq: 7,
            leaf: [1; 32],
            id: [2; 32],
            ingested_ns: 3,
            event_ns: -4,
            link: Some([5; 32]),
            key: Some([6; 16]),
        };
        let bytes = stub.encode(300).unwrap();
        assert_eq!(bytes.len(), 300);
        assert_eq!(Stub::decode(&bytes), Some(Ok(stub)));
        assert_eq!(leaf_of(&bytes), Ok([1; 32]));
        assert_eq!(stub.encode(STUB_BYTES - 1), None);
        let unlinked = Stub {
            link: None,
            key: None,
            ..stub
        };
        assert_eq!(
            Stub::decode(&unlinked.encode(STUB_BYTES).unwrap()),
            Some(Ok(unlinked))
        );
        let mut padded = bytes.clone();
        padded[299] = 1;
        assert!(matches!(Stub::decode(&padded), Some(Err(_))));
        let mut flag = bytes.clone();
        flag[96] = 2;
        assert!(matches!(Stub::decode(&flag), Some(Err(_))));
        let mut flag = bytes;
        flag[129] = 0;
        assert!(
            matches!(Stub::decode(&flag), Some(Err(_))),
            "a key after a cleared flag"
        );
        assert_eq!(Stub::decode(b"{\"seq\":0}"), None);
        assert_eq!(leaf_of(b"{}"), Ok(sealog_merkle::leaf_hash(b"{}")));
    }

    #[test]
    fn file_names_sort_by_seq() {
        assert_eq!(file_name(42), "00000000000000000042.seg");
        assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_file_name("42.seg"), None);
        assert_eq!(parse_file_name("0000000000000000004x.seg"), None);
    }
}
