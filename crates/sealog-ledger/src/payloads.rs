//! The restricted payload area: the raw bytes of quarantined events, kept as evidence apart
//! from the quarantine log (which holds only their hash, `payload_ref`). One append-only file
//! of frames `len: u32 LE | sha256: 32 B | bytes`, owner-only, synced once per batch before
//! the quarantine records that point into it are appended.
//!
//! *Invariant*: a `payload_ref` in a durable quarantine record names a durable frame here.
//! A torn tail (a crash mid-batch: the file ends inside a frame) is cut on open: no record
//! can point into it. A whole frame whose bytes no longer match their hash is damage: it is
//! refused on open and answered as an error when read, never cut or taken for "absent".

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
    /// Or the database's table, when the log is in PostgreSQL: each payload committed
    /// there before the quarantine record that names it.
    db: Option<std::sync::Arc<sealog_pg::Erasable>>,
}

/// The reference a quarantine record keeps for a payload.
pub(crate) fn payload_ref(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl Payloads {
    /// Opens the area for appending, cutting a torn tail (a crash mid-batch) unless the
    /// payload it starts is one a quarantine record names (`named`): that is damage, and the
    /// file is refused as it is.
    pub(crate) fn open(
        path: &Path,
        named: &dyn Fn(&str) -> Result<bool, StoreError>,
    ) -> Result<Self, StoreError> {
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
        let whole = frames(&bytes)
            .map_err(|at| damaged(path, at))?
            .last()
            .map_or(0, |f| f.end);
        if whole < bytes.len() {
            if let Some(head) = bytes.get(whole + 4..whole + HEAD_BYTES) {
                let reference = format!("sha256:{}", hex::encode(head));
                if named(&reference)? {
                    return Err(StoreError::Corrupted(format!(
                        "{} ends inside payload {reference} at offset {whole}, which a quarantine record names: the evidence was cut, not torn (run `sealog verify`)",
                        path.display()
                    )));
                }
            }
            file.set_len(whole as u64)
                .and_then(|()| file.sync_all())
                .map_err(io)?;
        }
        Ok(Payloads {
            path: path.to_path_buf(),
            file: Some(Mutex::new(file)),
            db: None,
        })
    }

    /// The payloads in the database's `sealog_quarantine_payloads`.
    pub(crate) fn database(db: std::sync::Arc<sealog_pg::Erasable>) -> Self {
        Payloads {
            path: PathBuf::from("sealog_quarantine_payloads"),
            file: None,
            db: Some(db),
        }
    }

    /// For reading beside the writer: nothing is cut or appended.
    pub(crate) fn open_read_only(path: &Path) -> Self {
        Payloads {
            path: path.to_path_buf(),
            file: None,
            db: None,
        }
    }

    /// The file open for appending, locked: only the writer has one.
    fn appender(&self) -> Result<std::sync::MutexGuard<'_, File>, StoreError> {
        Ok(self
            .file
            .as_ref()
            .ok_or(StoreError::ReadOnly)?
            .lock()
            .expect("payloads lock"))
    }

    /// Appends payloads and makes them durable with one sync.
    pub(crate) fn append_all<'a>(
        &self,
        payloads: impl Iterator<Item = &'a [u8]>,
    ) -> Result<(), StoreError> {
        if let Some(db) = &self.db {
            let rows: Vec<(String, &[u8])> = payloads.map(|p| (payload_ref(p), p)).collect();
            return db.add_payloads(&rows);
        }
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
        let mut file = self.appender()?;
        file.write_all(&buf)
            .and_then(|()| file.sync_data())
            .map_err(|e| StoreError::io(&self.path, e))
    }

    /// Deletes the payloads `references` name (an erased data subject's, or those of the
    /// quarantine records retention prunes): the file is
    /// rewritten without them aside, synced and renamed into place, so a crash leaves the old
    /// file or the new one. Answers how many were here.
    pub(crate) fn remove(&self, references: &[String]) -> Result<usize, StoreError> {
        if let Some(db) = &self.db {
            return db.remove_payloads(references);
        }
        let wanted: std::collections::HashSet<Vec<u8>> = references
            .iter()
            .filter_map(|r| r.strip_prefix("sha256:").and_then(|h| hex::decode(h).ok()))
            .collect();
        let mut file = self.appender()?;
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(StoreError::io(&self.path, e)),
        };
        let frames = frames(&bytes).map_err(|at| damaged(&self.path, at))?;
        let mut kept = Vec::with_capacity(bytes.len());
        let mut removed = 0;
        let mut start = 0;
        for f in &frames {
            if wanted.contains(&f.hash[..]) {
                removed += 1;
            } else {
                kept.extend_from_slice(&bytes[start..f.end]);
            }
            start = f.end;
        }
        if removed == 0 {
            return Ok(0);
        }
        crate::aside::replace(&self.path, &kept)?;
        *file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| StoreError::io(&self.path, e))?;
        Ok(removed)
    }

    /// The payload a `payload_ref` names, if it is here. A scan: this is evidence lookup for
    /// an auditor, not a hot path.
    pub(crate) fn get(&self, reference: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(db) = &self.db {
            // Checked like a frame: bytes that no longer hash to their reference are damage.
            let found = db.payload(reference)?;
            if found
                .as_deref()
                .is_some_and(|b| payload_ref(b) != reference)
            {
                return Err(StoreError::Corrupted(format!(
                    "quarantine payload {reference} no longer matches its hash"
                )));
            }
            return Ok(found);
        }
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
        let found = frames(&bytes)
            .map_err(|at| damaged(&self.path, at))?
            .into_iter()
            .find(|f| f.hash == want.as_slice())
            .map(|f| bytes[f.body].to_vec());
        Ok(found)
    }

    /// The `payload_ref` of every whole payload here, each checked against its hash (for
    /// verification), and the offset of a torn tail if the file ends inside a payload.
    pub(crate) fn refs(&self) -> Result<(Vec<String>, Option<usize>), StoreError> {
        if let Some(db) = &self.db {
            return Ok((db.payload_refs()?, None));
        }
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
            Err(e) => return Err(StoreError::io(&self.path, e)),
        };
        let frames = frames(&bytes).map_err(|at| damaged(&self.path, at))?;
        let whole = frames.last().map_or(0, |f| f.end);
        let refs = frames
            .iter()
            .map(|f| format!("sha256:{}", hex::encode(f.hash)))
            .collect();
        Ok((refs, (whole < bytes.len()).then_some(whole)))
    }
}

fn damaged(path: &Path, at: usize) -> StoreError {
    StoreError::Corrupted(format!(
        "{} at offset {at}: a payload no longer matches its hash",
        path.display()
    ))
}

/// One whole frame: its hash and where its bytes are.
struct Frame {
    hash: [u8; 32],
    body: std::ops::Range<usize>,
    end: usize,
}

/// The whole frames of the file, in order, stopping where it ends inside one (a torn
/// tail); a whole frame that fails its hash is damage, reported with its offset.
fn frames(bytes: &[u8]) -> Result<Vec<Frame>, usize> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(head) = bytes.get(at..at + HEAD_BYTES) {
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        let body = at + HEAD_BYTES..at + HEAD_BYTES + len;
        let Some(content) = bytes.get(body.clone()) else {
            break;
        };
        let hash: [u8; 32] = head[4..].try_into().expect("32 bytes");
        if Sha256::digest(content).as_slice() != hash {
            return Err(at);
        }
        out.push(Frame {
            hash,
            end: body.end,
            body,
        });
        at = out.last().expect("just pushed").end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_tail_is_cut_and_whole_frames_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payloads");
        let p = Payloads::open(&path, &|_| Ok(false)).unwrap();
        p.append_all([&b"first"[..], b"second"].into_iter())
            .unwrap();
        drop(p);
        let whole = std::fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 2, 3]).unwrap();
        drop(f);
        let p = Payloads::open(&path, &|_| Ok(false)).unwrap();
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

    #[test]
    fn a_damaged_payload_is_refused_on_open_and_an_error_when_read_never_absent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payloads");
        let p = Payloads::open(&path, &|_| Ok(false)).unwrap();
        p.append_all([&b"first"[..], b"second", b"third"].into_iter())
            .unwrap();
        drop(p);
        let mut bytes = std::fs::read(&path).unwrap();
        let second = HEAD_BYTES + b"first".len() + HEAD_BYTES;
        bytes[second] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let err = Payloads::open(&path, &|_| Ok(false))
            .err()
            .expect("damage is not cut");
        assert!(
            err.to_string().contains("no longer matches its hash"),
            "{err}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "nothing was cut: the evidence after the damage is still there"
        );
        let reader = Payloads::open_read_only(&path);
        let err = reader.get(&payload_ref(b"third")).unwrap_err();
        assert!(matches!(err, StoreError::Corrupted(_)), "{err}");
        assert!(reader.refs().is_err());
    }
}
