//! The restricted payload area: the raw bytes of quarantined events, kept as evidence apart
//! from the quarantine log (which holds only their hash, `payload_ref`). One append-only file
//! of frames `len: u32 LE | sha256: 32 B | bytes`, owner-only, synced once per batch before
//! the quarantine records that point into it are appended.
//!
//! *Invariant*: a `payload_ref` in a durable quarantine record names a durable frame here.
//! A torn tail (a crash mid-batch) is cut on open: no record can point into it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use sealog_store::StoreError;

const HEAD_BYTES: usize = 4 + 32;

pub(crate) struct Payloads {
    path: PathBuf,
    /// The file open for appending; `None` when opened read-only beside the writer.
    file: Option<Mutex<File>>,
}

/// The reference a quarantine record keeps for a payload.
pub(crate) fn payload_ref(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl Payloads {
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let io = |e| StoreError::io(path, e);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let whole = whole_prefix(&bytes);
        if whole < bytes.len() {
            file.set_len(whole as u64)
                .and_then(|()| file.sync_all())
                .map_err(io)?;
        }
        Ok(Payloads {
            path: path.to_path_buf(),
            file: Some(Mutex::new(file)),
        })
    }

    /// For reading beside the writer: nothing is cut or appended.
    pub(crate) fn open_read_only(path: &Path) -> Self {
        Payloads {
            path: path.to_path_buf(),
            file: None,
        }
    }

    /// Appends payloads and makes them durable with one sync.
    pub(crate) fn append_all<'a>(
        &self,
        payloads: impl Iterator<Item = &'a [u8]>,
    ) -> Result<(), StoreError> {
        let mut buf = Vec::new();
        for p in payloads {
            let len = u32::try_from(p.len()).expect("payloads are bounded by the event limit");
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(&Sha256::digest(p));
            buf.extend_from_slice(p);
        }
        if buf.is_empty() {
            return Ok(());
        }
        let mut file = self
            .file
            .as_ref()
            .ok_or(StoreError::ReadOnly)?
            .lock()
            .expect("payloads lock");
        file.write_all(&buf)
            .and_then(|()| file.sync_data())
            .map_err(|e| StoreError::io(&self.path, e))
    }

    /// The payload a `payload_ref` names, if it is here. A scan: this is evidence lookup for
    /// an auditor, not a hot path.
    pub(crate) fn get(&self, reference: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(want) = reference
            .strip_prefix("sha256:")
            .and_then(|h| hex::decode(h).ok())
        else {
            return Ok(None);
        };
        let _guard = self.file.as_ref().map(|f| f.lock().expect("payloads lock"));
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(&self.path, e)),
        };
        let mut at = 0;
        while let Some((hash, body)) = frame_at(&bytes, at) {
            if hash == want.as_slice() {
                return Ok(Some(body.to_vec()));
            }
            at += HEAD_BYTES + body.len();
        }
        Ok(None)
    }
}

fn frame_at(bytes: &[u8], at: usize) -> Option<(&[u8], &[u8])> {
    let head = bytes.get(at..at + HEAD_BYTES)?;
    let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
    let body = bytes.get(at + HEAD_BYTES..at + HEAD_BYTES + len)?;
    let hash = &head[4..];
    (Sha256::digest(body).as_slice() == hash).then_some((hash, body))
}

/// Length of the longest prefix made of whole, intact frames.
fn whole_prefix(bytes: &[u8]) -> usize {
    let mut at = 0;
    while let Some((_, body)) = frame_at(bytes, at) {
        at += HEAD_BYTES + body.len();
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_tail_is_cut_and_whole_frames_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payloads");
        let p = Payloads::open(&path).unwrap();
        p.append_all([&b"first"[..], b"second"].into_iter())
            .unwrap();
        drop(p);
        let whole = std::fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 2, 3]).unwrap();
        drop(f);
        let p = Payloads::open(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
        assert_eq!(
            p.get(&payload_ref(b"second")).unwrap().as_deref(),
            Some(&b"second"[..])
        );
        assert_eq!(p.get(&payload_ref(b"third")).unwrap(), None);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "payloads are readable by the owner only"
        );
    }
}
