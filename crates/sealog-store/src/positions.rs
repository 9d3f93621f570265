//! Where each record is: a flat file of fixed-width entries indexed by seq.
//!
//! ```text
//! entry(seq) = offset_in_segment:u64le ingested_at_ns:i64le event_time_ns:i64le   (24 bytes)
//! ```
//! Derived from the log and rebuilt from it after a crash; only the prefix covered by the
//! index manifest is trusted on open, since it is fsynced before the manifest names it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::StoreError;

pub(crate) const ENTRY_BYTES: u64 = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) offset: u64,
    pub(crate) ingested_ns: i64,
    pub(crate) event_ns: i64,
}

impl Position {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.ingested_ns.to_le_bytes());
        out.extend_from_slice(&self.event_ns.to_le_bytes());
    }

    fn decode(b: &[u8; ENTRY_BYTES as usize]) -> Self {
        let word = |i: usize| <[u8; 8]>::try_from(&b[i * 8..i * 8 + 8]).expect("8 bytes");
        Position {
            offset: u64::from_le_bytes(word(0)),
            ingested_ns: i64::from_le_bytes(word(1)),
            event_ns: i64::from_le_bytes(word(2)),
        }
    }
}

pub(crate) struct Positions {
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
    pub(crate) fn open(path: &Path, trusted: u64) -> Result<Self, StoreError> {
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
        file.set_len(trusted * ENTRY_BYTES)
            .map_err(|e| StoreError::io(path, e))?;
        Ok(Positions {
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
        let mut buf = Vec::with_capacity(entries.len() * ENTRY_BYTES as usize);
        for e in entries {
            e.encode(&mut buf);
        }
        let count = self.count();
        self.file()?
            .write_all_at(&buf, count * ENTRY_BYTES)
            .map_err(|e| StoreError::io(&self.path, e))?;
        self.count
            .store(count + entries.len() as u64, Ordering::Release);
        Ok(())
    }

    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        if self.memory.is_some() {
            return Ok(());
        }
        self.file()?
            .sync_data()
            .map_err(|e| StoreError::io(&self.path, e))
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
        Ok(Position::decode(&b))
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
