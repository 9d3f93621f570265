//! Where each record is: a flat file of fixed-width entries indexed by seq.
//!
//! ```text
//! entry(seq) = offset_in_segment:u64le ingested_at_ns:i64le event_time_ns:i64le
//!              crc32c(seq:u64le ‖ the 24 bytes before):u32le  reserved:u32 = 0   (32 bytes)
//! ```
//! Derived from the log and rebuilt from it after a crash; only the prefix covered by the
//! index manifest is trusted on open, since it is fsynced before the manifest names it. Each
//! entry is checked when it is read: its checksum covers its own seq, so a changed entry,
//! or two entries swapped, is an error where it is read, never a record taken for another.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::StoreError;
use crate::io::Io;

pub(crate) const ENTRY_BYTES: u64 = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) offset: u64,
    pub(crate) ingested_ns: i64,
    pub(crate) event_ns: i64,
}

impl Position {
    fn encode(&self, seq: u64, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.ingested_ns.to_le_bytes());
        out.extend_from_slice(&self.event_ns.to_le_bytes());
        let crc = entry_crc(seq, &out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
    }

    /// The entry of `seq`, if its checksum holds and its reserved bytes are clear.
    fn decode(seq: u64, b: &[u8; ENTRY_BYTES as usize]) -> Option<Self> {
        let word = |i: usize| <[u8; 8]>::try_from(&b[i * 8..i * 8 + 8]).expect("8 bytes");
        let crc = u32::from_le_bytes(b[24..28].try_into().expect("4 bytes"));
        let reserved_clear = b[28..] == [0; 4];
        (reserved_clear && entry_crc(seq, &b[..24]) == crc).then(|| Position {
            offset: u64::from_le_bytes(word(0)),
            ingested_ns: i64::from_le_bytes(word(1)),
            event_ns: i64::from_le_bytes(word(2)),
        })
    }
}

/// The entry of `seq` read from raw bytes, if it is whole and its checksum holds.
pub(crate) fn decode_entry(seq: u64, bytes: &[u8]) -> Option<Position> {
    let b: &[u8; ENTRY_BYTES as usize] = bytes.try_into().ok()?;
    Position::decode(seq, b)
}

fn entry_crc(seq: u64, fields: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&seq.to_le_bytes()), fields)
}

pub(crate) struct Positions {
    io: Io,
    path: PathBuf,
    /// `None` only for a read-only opening of a log whose file was never written.
    file: Option<File>,
    /// Entries readers may use: every one below this is written.
    count: AtomicU64,
    /// Opened read-only: entries from `trusted` on are kept here, not written.
    memory: Option<(u64, RwLock<Vec<Position>>)>,
}

impl Positions {
    /// Opens the file keeping only the first `trusted` entries.
    pub(crate) fn open(io: &Io, path: &Path, trusted: u64) -> Result<Self, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StoreError::io(path, e))?;
        let len = file.metadata().map_err(|e| StoreError::io(path, e))?.len();
        if len < trusted * ENTRY_BYTES {
            return Err(StoreError::Corrupted(format!(
                "{} holds {} entries but the index manifest promises {trusted}",
                path.display(),
                len / ENTRY_BYTES
            )));
        }
        io.set_len(&file, path, trusted * ENTRY_BYTES)?;
        Ok(Positions {
            io: io.clone(),
            path: path.to_path_buf(),
            file: Some(file),
            count: AtomicU64::new(trusted),
            memory: None,
        })
    }

    /// Opens the file read-only beside its writer, trusting the first `trusted` entries;
    /// later ones are appended in memory.
    pub(crate) fn read_only(path: &Path, trusted: u64) -> Result<Self, StoreError> {
        let file = match File::open(path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && trusted == 0 => None,
            Err(e) => return Err(StoreError::io(path, e)),
        };
        Ok(Positions {
            io: Io::default(),
            path: path.to_path_buf(),
            file,
            count: AtomicU64::new(trusted),
            memory: Some((trusted, RwLock::new(Vec::new()))),
        })
    }

    fn file(&self) -> Result<&File, StoreError> {
        self.file
            .as_ref()
            .ok_or_else(|| StoreError::Corrupted(format!("{} is missing", self.path.display())))
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Appends entries for the seqs starting at `count()`. Only the writer calls this.
    pub(crate) fn append(&self, entries: &[Position]) -> Result<(), StoreError> {
        if let Some((_, tail)) = &self.memory {
            tail.write()
                .expect("positions lock")
                .extend_from_slice(entries);
            self.count
                .fetch_add(entries.len() as u64, Ordering::Release);
            return Ok(());
        }
        let count = self.count();
        let mut buf = Vec::with_capacity(entries.len() * ENTRY_BYTES as usize);
        for (i, e) in entries.iter().enumerate() {
            e.encode(count + i as u64, &mut buf);
        }
        self.io
            .write_at(self.file()?, &self.path, &buf, count * ENTRY_BYTES)?;
        self.count
            .store(count + entries.len() as u64, Ordering::Release);
        Ok(())
    }

    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        if self.memory.is_some() {
            return Ok(());
        }
        self.io.sync_data(self.file()?, &self.path)
    }

    pub(crate) fn get(&self, seq: u64) -> Result<Position, StoreError> {
        debug_assert!(seq < self.count(), "position {seq} is not written yet");
        if let Some((base, tail)) = &self.memory
            && seq >= *base
        {
            let tail = tail.read().expect("positions lock");
            return tail
                .get((seq - base) as usize)
                .copied()
                .ok_or_else(|| StoreError::Corrupted(format!("no position for record {seq}")));
        }
        let mut b = [0u8; ENTRY_BYTES as usize];
        self.file()?
            .read_exact_at(&mut b, seq * ENTRY_BYTES)
            .map_err(|e| StoreError::io(&self.path, e))?;
        Position::decode(seq, &b).ok_or_else(|| {
            StoreError::Corrupted(format!(
                "{} entry {seq} does not match its checksum",
                self.path.display()
            ))
        })
    }

    /// The first seq below `end` whose ingest time is at or after `t`: ingest times never
    /// decrease with seq, so a binary search answers it.
    pub(crate) fn first_ingested_at_or_after(&self, t: i64, end: u64) -> Result<u64, StoreError> {
        let (mut lo, mut hi) = (0u64, end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid)?.ingested_ns < t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }
}
