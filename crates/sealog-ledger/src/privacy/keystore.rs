//! The data subjects' keys: one owner-only file, a header that names the master key it was
//! made under, then checksummed frames, each a subject's key wrapped by the master key or the
//! mark that the subject was erased.
//!
//! ```text
//! header: "SEALOG SUBJECT KEYS 1\n" | check: 16 B (a MAC of the master key)
//! frame:  len: u32 LE | crc32c(body): u32 LE | body
//! body:   kind: u8 (1 key, 2 erased) | pseudonym: 16 B | tenant len: u16 LE | tenant
//!         | wrapped key: 80 B (kind 1 only; AES-SIV of the 64-byte key)
//! ```
//!
//! New keys are appended and synced before any record sealed under them is written. Erasure
//! rewrites the file without the subject's key (written aside, synced, renamed, the directory
//! synced), so the key's bytes are in no file the store keeps; what the disk does with freed
//! blocks is in docs/format.md.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sealog_store::StoreError;

const MAGIC: &[u8] = b"SEALOG SUBJECT KEYS 1\n";
const HEADER_BYTES: usize = MAGIC.len() + 16;
const KIND_KEY: u8 = 1;
const KIND_ERASED: u8 = 2;
pub(crate) const WRAPPED_BYTES: usize = 80;

/// A subject's key as the store keeps it.
#[derive(Clone)]
pub(crate) enum Slot {
    /// Wrapped by the master key.
    Live([u8; WRAPPED_BYTES]),
    Erased,
}

/// (tenant, pseudonym): keys are per tenant and data subject.
pub(crate) type SubjectId = (String, [u8; 16]);

pub(crate) struct FileKeys {
    path: PathBuf,
    /// Open for appending; `None` when read beside the writer.
    file: Option<File>,
    slots: HashMap<SubjectId, Slot>,
    /// Frames of keys made since the last sync, written by it: one write and one sync for
    /// all the keys a group of events made.
    pending: Vec<u8>,
    /// The file's length when last read.
    read_len: u64,
    /// Which file was last read, and as it was then: readers reload when it changes. Its
    /// length alone would miss an erasure, which renames a new file into place, should the
    /// keys made since make up the bytes the erased ones took.
    read_stamp: Option<Stamp>,
}

/// A file's identity and state: device and inode, length, last change.
type Stamp = (u64, u64, u64, Option<std::time::SystemTime>);

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.len(), m.modified().ok()))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::io(path, e)
}

fn corrupted(path: &Path, why: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupted(format!("{}: {why}", path.display()))
}

impl FileKeys {
    /// A store of nothing yet read, at `path`.
    fn at(path: &Path) -> Self {
        FileKeys {
            path: path.to_path_buf(),
            file: None,
            slots: HashMap::new(),
            pending: Vec::new(),
            read_len: 0,
            read_stamp: None,
        }
    }

    /// Opens the store, creating it (empty, under `check`) when `writable` and absent.
    pub(crate) fn open(path: &Path, check: &[u8; 16], writable: bool) -> Result<Self, StoreError> {
        let mut store = FileKeys::at(path);
        if !path.exists() {
            if writable {
                store.rewrite(check)?;
            }
            return Ok(store);
        }
        let whole = store.load(check)?;
        if writable {
            let file = OpenOptions::new()
                .read(true)
                .append(true)
                .open(path)
                .map_err(io(path))?;
            if (whole as u64) < store.read_len {
                // A torn tail: a key whose frame was never synced, so no record was sealed
                // under it.
                file.set_len(whole as u64)
                    .and_then(|()| file.sync_all())
                    .map_err(io(path))?;
                store.read_len = whole as u64;
            }
            store.file = Some(file);
        }
        Ok(store)
    }

    /// Reads every frame; answers where the whole frames end.
    fn load(&mut self, check: &[u8; 16]) -> Result<usize, StoreError> {
        let path = self.path.clone();
        // Taken before the read: a change during it leaves a stamp the next look finds stale.
        self.read_stamp = stamp(&path);
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(io(&path))?;
        self.read_len = bytes.len() as u64;
        if bytes.len() < HEADER_BYTES || !bytes.starts_with(MAGIC) {
            return Err(corrupted(&path, "not a subject key store"));
        }
        if bytes[MAGIC.len()..HEADER_BYTES] != check[..] {
            return Err(StoreError::InvalidArgument(format!(
                "{}: the master key given is not the one these subject keys were made under (set SEALOG_MASTER_KEY_FILE to the right one)",
                path.display()
            )));
        }
        let mut at = HEADER_BYTES;
        self.slots.clear();
        while at + 8 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4")) as usize;
            let sum = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4"));
            let Some(body) = bytes.get(at + 8..at + 8 + len) else {
                break;
            };
            if crc32c::crc32c(body) != sum {
                return Err(corrupted(
                    &path,
                    format!("frame at {at} fails its checksum"),
                ));
            }
            let (id, slot) = decode(body)
                .ok_or_else(|| corrupted(&path, format!("frame at {at} is not a subject key")))?;
            self.slots.insert(id, slot);
            at += 8 + len;
        }
        Ok(at)
    }

    /// Reads the store for `verify`: how many subjects it names (live, erased) and, when
    /// the file ends inside a frame, where the whole frames end.
    pub(crate) fn inspect(
        path: &Path,
        check: &[u8; 16],
    ) -> Result<(usize, usize, Option<usize>), StoreError> {
        let mut store = FileKeys::at(path);
        let whole = store.load(check)?;
        let torn = ((whole as u64) < store.read_len).then_some(whole);
        let live = store
            .slots
            .values()
            .filter(|s| matches!(s, Slot::Live(_)))
            .count();
        Ok((live, store.slots.len() - live, torn))
    }

    /// For a reader beside the writer: picks up keys made since it last looked.
    /// For a reader beside the writer: picks up keys made and erased since it last looked;
    /// answers whether it read the store again.
    pub(crate) fn refresh(&mut self, check: &[u8; 16]) -> Result<bool, StoreError> {
        if self.file.is_some() {
            return Ok(false);
        }
        let now = stamp(&self.path);
        if now.is_none_or(|s| s.2 == 0) || now == self.read_stamp {
            return Ok(false);
        }
        self.load(check)?;
        Ok(true)
    }

    pub(crate) fn get(&self, id: &SubjectId) -> Option<&Slot> {
        self.slots.get(id)
    }

    pub(crate) fn subjects(&self) -> impl Iterator<Item = (&SubjectId, &Slot)> {
        self.slots.iter()
    }

    /// Adds a new key, written and durable at the next [`FileKeys::sync`], unless the subject
    /// has one (or was erased): answers the slot in force.
    pub(crate) fn insert(
        &mut self,
        id: SubjectId,
        wrapped: [u8; WRAPPED_BYTES],
    ) -> Result<Slot, StoreError> {
        if self.file.is_none() {
            return Err(StoreError::ReadOnly);
        }
        if let Some(slot) = self.slots.get(&id) {
            return Ok(slot.clone());
        }
        self.pending
            .extend_from_slice(&frame(&id, &Slot::Live(wrapped)));
        self.slots.insert(id, Slot::Live(wrapped));
        Ok(Slot::Live(wrapped))
    }

    pub(crate) fn sync(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let file = self.file.as_mut().ok_or(StoreError::ReadOnly)?;
        let before = file.metadata().map_err(io(&path))?.len();
        if let Err(e) = file
            .write_all(&self.pending)
            .and_then(|()| file.sync_data())
        {
            // Cut what a failed write left, so the next sync writes the same frames whole
            // rather than after a torn one.
            let _ = file.set_len(before);
            return Err(StoreError::io(&path, e));
        }
        self.pending.clear();
        Ok(())
    }

    /// Marks the subjects erased and rewrites the file without their keys.
    pub(crate) fn erase(&mut self, ids: &[SubjectId], check: &[u8; 16]) -> Result<(), StoreError> {
        if self.file.is_none() {
            return Err(StoreError::ReadOnly);
        }
        for id in ids {
            self.slots.insert(id.clone(), Slot::Erased);
        }
        self.rewrite(check)
    }

    /// Writes every slot to a new file beside the old one and puts it in its place.
    fn rewrite(&mut self, check: &[u8; 16]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let mut bytes = Vec::with_capacity(HEADER_BYTES + self.slots.len() * 128);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(check);
        let mut ids: Vec<&SubjectId> = self.slots.keys().collect();
        ids.sort();
        for id in ids {
            bytes.extend_from_slice(&frame(id, &self.slots[id]));
        }
        crate::aside::replace(&path, &bytes)?;
        self.file = Some(
            OpenOptions::new()
                .read(true)
                .append(true)
                .open(&path)
                .map_err(io(&path))?,
        );
        self.read_len = bytes.len() as u64;
        // Every slot is in the new file, the pending ones too.
        self.pending.clear();
        Ok(())
    }
}

/// The data subjects' keys in the database several servers share (`sealog_pg::Erasable`):
/// a key made there is committed at once; a cache of what was read, dropped whenever the
/// count of erased subjects changes, checked at most once a second (so an erasure made on
/// one server is in force on every other within a second).
pub(crate) struct DbKeys {
    db: std::sync::Arc<sealog_pg::Erasable>,
    slots: HashMap<SubjectId, Slot>,
    erased: u64,
    checked: std::time::Instant,
}

const RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

impl DbKeys {
    pub(crate) fn open(db: std::sync::Arc<sealog_pg::Erasable>) -> Result<Self, StoreError> {
        let erased = db.subject_counts()?.1;
        Ok(DbKeys {
            db,
            slots: HashMap::new(),
            erased,
            checked: std::time::Instant::now(),
        })
    }

    /// Drops the cache when a subject was erased since it was filled; answers whether it did.
    fn recheck(&mut self, now: bool) -> Result<bool, StoreError> {
        if !now && self.checked.elapsed() < RECHECK {
            return Ok(false);
        }
        let erased = self.db.subject_counts()?.1;
        self.checked = std::time::Instant::now();
        if erased == self.erased {
            return Ok(false);
        }
        self.erased = erased;
        self.slots.clear();
        Ok(true)
    }

    fn slot_of(key: sealog_pg::SubjectKey) -> Result<Slot, StoreError> {
        match key {
            sealog_pg::SubjectKey::Erased => Ok(Slot::Erased),
            sealog_pg::SubjectKey::Wrapped(w) => w.try_into().map(Slot::Live).map_err(|_| {
                StoreError::Corrupted("a data subject's wrapped key is not 80 bytes".into())
            }),
        }
    }
}

/// Where the data subjects' keys are: a file of the data directory, or the database.
pub(crate) enum KeyStore {
    File(FileKeys),
    Database(DbKeys),
}

impl KeyStore {
    /// The key of `id`, if there is one (live or erased).
    pub(crate) fn get(&mut self, id: &SubjectId) -> Result<Option<Slot>, StoreError> {
        match self {
            KeyStore::File(f) => Ok(f.get(id).cloned()),
            KeyStore::Database(d) => {
                d.recheck(false)?;
                if let Some(s) = d.slots.get(id) {
                    return Ok(Some(s.clone()));
                }
                let found = d.db.subject_key(&id.0, &hex::encode(id.1))?;
                let slot = found.map(DbKeys::slot_of).transpose()?;
                if let Some(s) = &slot {
                    d.slots.insert(id.clone(), s.clone());
                }
                Ok(slot)
            }
        }
    }

    /// Every tenant's key of one pseudonym.
    pub(crate) fn of_pseudonym(
        &mut self,
        ps: &[u8; 16],
    ) -> Result<Vec<(String, Slot)>, StoreError> {
        match self {
            KeyStore::File(f) => Ok(f
                .subjects()
                .filter(|((_, p), _)| p == ps)
                .map(|((t, _), s)| (t.clone(), s.clone()))
                .collect()),
            KeyStore::Database(d) => {
                d.db.subject_keys_of(&hex::encode(ps))?
                    .into_iter()
                    .map(|(t, k)| Ok((t, DbKeys::slot_of(k)?)))
                    .collect()
            }
        }
    }

    /// Keeps a new key (durable at the next [`KeyStore::sync`]); answers the key in force,
    /// which may be another's, made first (by a racing first use in this process, or by
    /// another server sharing the database).
    pub(crate) fn insert(
        &mut self,
        id: SubjectId,
        wrapped: [u8; WRAPPED_BYTES],
    ) -> Result<Slot, StoreError> {
        match self {
            KeyStore::File(f) => f.insert(id, wrapped),
            KeyStore::Database(d) => {
                let key = d.db.add_subject_key(&id.0, &hex::encode(id.1), &wrapped)?;
                let slot = DbKeys::slot_of(key)?;
                d.slots.insert(id, slot.clone());
                Ok(slot)
            }
        }
    }

    pub(crate) fn sync(&mut self) -> Result<(), StoreError> {
        match self {
            KeyStore::File(f) => f.sync(),
            // Each key was committed when it was made.
            KeyStore::Database(_) => Ok(()),
        }
    }

    /// Picks up keys made (and, in a database, subjects erased) elsewhere; answers whether
    /// cached keys must be forgotten.
    /// Picks up what another process or server changed: at once when `now`, else when it
    /// is cheap to tell (a file's stamp; the database at most once a [`RECHECK`]). Answers
    /// whether a key this process holds may have been erased meanwhile.
    pub(crate) fn refresh(&mut self, check: &[u8; 16], now: bool) -> Result<bool, StoreError> {
        match self {
            KeyStore::File(f) => f.refresh(check),
            KeyStore::Database(d) => d.recheck(now),
        }
    }

    pub(crate) fn erase(&mut self, ids: &[SubjectId], check: &[u8; 16]) -> Result<(), StoreError> {
        match self {
            KeyStore::File(f) => f.erase(ids, check),
            KeyStore::Database(d) => {
                let subjects: Vec<(String, String)> = ids
                    .iter()
                    .map(|(t, p)| (t.clone(), hex::encode(p)))
                    .collect();
                d.db.erase_subjects(&subjects)?;
                for id in ids {
                    d.slots.insert(id.clone(), Slot::Erased);
                }
                Ok(())
            }
        }
    }
}

fn frame(id: &SubjectId, slot: &Slot) -> Vec<u8> {
    let (tenant, ps) = id;
    let mut body = Vec::with_capacity(1 + 16 + 2 + tenant.len() + WRAPPED_BYTES);
    body.push(match slot {
        Slot::Live(_) => KIND_KEY,
        Slot::Erased => KIND_ERASED,
    });
    body.extend_from_slice(ps);
    body.extend_from_slice(&(tenant.len() as u16).to_le_bytes());
    body.extend_from_slice(tenant.as_bytes());
    if let Slot::Live(w) = slot {
        body.extend_from_slice(w);
    }
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn decode(body: &[u8]) -> Option<(SubjectId, Slot)> {
    let kind = *body.first()?;
    let ps: [u8; 16] = body.get(1..17)?.try_into().ok()?;
    let tlen = u16::from_le_bytes(body.get(17..19)?.try_into().ok()?) as usize;
    let tenant = std::str::from_utf8(body.get(19..19 + tlen)?)
        .ok()?
        .to_string();
    let rest = body.get(19 + tlen..)?;
    let slot = match (kind, rest.len()) {
        (KIND_KEY, WRAPPED_BYTES) => Slot::Live(rest.try_into().ok()?),
        (KIND_ERASED, 0) => Slot::Erased,
        _ => return None,
    };
    Some(((tenant, ps), slot))
}
