//! Segment files: the log's source of truth.
//!
//! ```text
//! segment  = header frame*
//! header   = "SEALOGS1" first_seq:u64le                      (16 bytes)
//! frame    = len:u32le crc:u32le payload[len]                 crc = crc32c(len:u32le ‖ payload)
//! payload  = the record's RFC 8785 JSON (it names its own seq)
//! ```
//! Frames are only ever appended. A segment is sealed (fsynced, made read-only) when the next
//! one starts; only the last segment can have a torn tail.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::StoreError;

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

/// The segments in a log directory, ordered by first seq.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        if let Some(first) = entry.file_name().to_str().and_then(parse_file_name) {
            out.push((first, entry.path()));
        }
    }
    out.sort();
    Ok(out)
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

/// The one segment being appended to.
pub struct ActiveSegment {
    pub first_seq: u64,
    pub path: PathBuf,
    pub file: File,
    /// Bytes in the file that are whole, written frames.
    pub len: u64,
}

impl ActiveSegment {
    /// Creates a new, empty segment and makes its existence durable.
    pub fn create(dir: &Path, first_seq: u64) -> Result<Self, StoreError> {
        let path = dir.join(file_name(first_seq));
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        file.write_all(&encode_header(first_seq))
            .map_err(|e| StoreError::io(&path, e))?;
        file.sync_all().map_err(|e| StoreError::io(&path, e))?;
        sync_dir(dir)?;
        Ok(ActiveSegment {
            first_seq,
            path,
            file,
            len: HEADER_BYTES,
        })
    }

    pub fn open(path: PathBuf, first_seq: u64, len: u64) -> Result<Self, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        Ok(ActiveSegment {
            first_seq,
            path,
            file,
            len,
        })
    }

    /// Writes whole frames. Durability is the caller's `sync` to choose.
    pub fn write(&mut self, frames: &[u8]) -> io::Result<()> {
        self.file.write_all(frames)?;
        self.len += frames.len() as u64;
        Ok(())
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Makes the segment durable and read-only: committed bytes are never rewritten.
    pub fn seal(self) -> Result<(), StoreError> {
        self.file
            .sync_all()
            .map_err(|e| StoreError::io(&self.path, e))?;
        fs::set_permissions(&self.path, fs::Permissions::from_mode(0o444))
            .map_err(|e| StoreError::io(&self.path, e))
    }
}

/// Replaces `path` with `bytes` atomically and durably: a crash leaves the old or the new.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| StoreError::io(&tmp, e))?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| StoreError::io(path, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
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
    fn file_names_sort_by_seq() {
        assert_eq!(file_name(42), "00000000000000000042.seg");
        assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_file_name("42.seg"), None);
        assert_eq!(parse_file_name("0000000000000000004x.seg"), None);
    }
}
