//! The log's signing key and its signed checkpoints.
//!
//! `keys/log.key` holds the C2SP signer key (mode 0600), created at init; `keys/log.pub` the
//! verifier key. Every published checkpoint is appended, framed like a segment record, to
//! `checkpoints/log` and fsynced — they are kept, so anyone can later prove the log only
//! grew — and the newest is also `checkpoints/latest`, the tlog-tiles `checkpoint` file.
//! `checkpoints/cosigned` keeps, framed the same way, checkpoints of the series with the
//! cosignatures witnesses returned for them (C2SP tlog-cosignature).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Mutex, RwLock};
use std::time::SystemTime;

use sealog_model::LogLayout;

use sealog_merkle::Hash;
use sealog_merkle::checkpoint::Checkpoint;
use sealog_merkle::note::{self, Signer, Verifier};

use crate::error::StoreError;
use crate::segment;

/// A line every checkpoint a log signs carries after its root, asked for at signing: what
/// another log vouches for through this one (the ledger's quarantine log's newest signed tree
/// head, in the canonical log's checkpoints). `None`: no line this time.
#[derive(Clone)]
pub struct Extension(pub std::sync::Arc<dyn Fn() -> Option<String> + Send + Sync>);

impl std::fmt::Debug for Extension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Extension(..)")
    }
}

/// The extension lines of a signed note's checkpoint (none if it does not parse).
pub fn extensions_of(note_text: &str) -> Vec<String> {
    sealog_merkle::cosignature::split_note(note_text)
        .ok()
        .and_then(|(text, _)| Checkpoint::parse(text).ok())
        .map(|c| c.extensions)
        .unwrap_or_default()
}

/// A checkpoint as published: its parsed body and the whole signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub size: u64,
    pub root: Hash,
    pub note: String,
}

pub(crate) struct Checkpoints {
    layout: LogLayout,
    /// The key in force: it signs every new checkpoint.
    verifier: RwLock<Verifier>,
    /// The log's former keys (`keys/retired`), oldest first: they signed older checkpoints.
    retired: RwLock<Vec<Verifier>>,
    /// The signer and the checkpoint log open for appending; `None` when opened read-only.
    writer: Option<(Mutex<Signer>, Mutex<File>)>,
    /// Where the private key lives: `keys/log.key`, or the file given from outside.
    key_path: std::path::PathBuf,
    /// The newest checkpoint and when it was signed (or, for one found on open, the time its
    /// file was last written).
    latest: Mutex<Option<(SignedCheckpoint, SystemTime)>>,
    /// Opening found `checkpoints/latest` missing or stale and wrote it again.
    pub(crate) restored_latest: bool,
    /// Serializes appends to `checkpoints/cosigned`.
    cosigned_lock: Mutex<()>,
    /// The line each new checkpoint carries after its root, if any.
    extension: Option<Extension>,
}

fn random_bytes<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b)
        .map_err(|e| StoreError::Poisoned(format!("no randomness for key generation: {e}")))?;
    Ok(b)
}

/// Loads the signer, creating the key pair on first use only: a log that has a public key or
/// signed checkpoints never gets a new pair in place of a missing or damaged private key,
/// since that would overwrite the key every checkpoint so far was signed with.
pub(crate) fn load_or_create_signer(
    layout: &LogLayout,
    outside: Option<&Path>,
) -> Result<Signer, StoreError> {
    let keys = &layout.keys();
    fs::create_dir_all(keys).map_err(|e| StoreError::io(keys, e))?;
    if let Some(path) = outside {
        return load_outside(layout, path);
    }
    let path = layout.signer_key();
    let public = layout.verifier_key();
    let restore = "restore keys/ from a backup of this data directory, or give the key kept elsewhere (--signing-key FILE)";
    match fs::read(&path) {
        Ok(bytes) => {
            let mode = fs::metadata(&path)
                .map_err(|e| StoreError::io(&path, e))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(StoreError::InvalidArgument(format!(
                    "{} is readable by others (mode {:o}); chmod 600 it",
                    path.display(),
                    mode & 0o777
                )));
            }
            let damaged = |why: String| {
                StoreError::Corrupted(format!("{} is damaged ({why}); {restore}", path.display()))
            };
            let text = String::from_utf8(bytes).map_err(|_| damaged("not text".into()))?;
            let signer = Signer::parse(text.trim()).map_err(|e| damaged(e.to_string()))?;
            // Both files exactly as written: a change of any byte is damage.
            if text != format!("{}\n", signer.to_skey()) {
                return Err(damaged("not exactly the key as written".into()));
            }
            match fs::read_to_string(&public) {
                Ok(vkey) if rotated_out(layout, &vkey)? => {
                    // A rotation stopped between the private and the public key.
                    segment::write_atomic(
                        &public,
                        format!("{}\n", signer.verifier().to_vkey()).as_bytes(),
                    )?;
                    Ok(signer)
                }
                Ok(vkey) if vkey != format!("{}\n", signer.verifier().to_vkey()) => {
                    Err(StoreError::Corrupted(format!(
                        "{} does not match {}: one of them was changed; {restore}",
                        path.display(),
                        public.display()
                    )))
                }
                _ => Ok(signer),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let signed = fs::metadata(layout.checkpoint_log()).is_ok_and(|m| m.len() > 0);
            let evidence: Vec<&str> = [
                (public.exists(), "keys/log.pub"),
                (signed, "signed checkpoints"),
            ]
            .into_iter()
            .filter_map(|(present, what)| present.then_some(what))
            .collect();
            if !evidence.is_empty() {
                return Err(StoreError::NoSigningKey(format!(
                    "{} is missing, but this log already has a key ({}): a new one would orphan every checkpoint signed so far; {restore}",
                    path.display(),
                    evidence.join(" and ")
                )));
            }
            let origin = format!("sealog.local/{}", hex::encode(random_bytes::<8>()?));
            let signer = Signer::from_seed(&origin, random_bytes::<32>()?)
                .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
            write_signer(&signer, &path)?;
            // Aside and renamed like the key: a crash leaves the public key whole or absent,
            // never a partial file that would read as a changed one.
            let public_tmp = keys.join("log.pub.tmp");
            fs::write(&public_tmp, format!("{}\n", signer.verifier().to_vkey()))
                .and_then(|()| File::open(&public_tmp)?.sync_all())
                .map_err(|e| StoreError::io(&public_tmp, e))?;
            fs::rename(&public_tmp, &public).map_err(|e| StoreError::io(&public, e))?;
            segment::sync_dir(keys)?;
            Ok(signer)
        }
        Err(e) => Err(StoreError::io(&path, e)),
    }
}

/// The signing key from a file outside the data directory: owner-only, the pair of
/// `keys/log.pub` (written from it for a new log), and never beside a different
/// `keys/log.key`.
fn load_outside(layout: &LogLayout, path: &Path) -> Result<Signer, StoreError> {
    let meta = fs::metadata(path).map_err(|e| StoreError::io(path, e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(StoreError::InvalidArgument(format!(
            "{} is readable by others (mode {:o}); chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        )));
    }
    let text = fs::read_to_string(path).map_err(|e| StoreError::io(path, e))?;
    let signer = Signer::parse(text.trim()).map_err(|e| {
        StoreError::InvalidArgument(format!("{}: not a signer key: {e}", path.display()))
    })?;
    let vkey = format!("{}\n", signer.verifier().to_vkey());
    let public = layout.verifier_key();
    match fs::read_to_string(&public) {
        Ok(have) if rotated_out(layout, &have)? => {
            segment::write_atomic(&public, vkey.as_bytes())?;
        }
        Ok(have) if have != vkey => {
            return Err(StoreError::InvalidArgument(format!(
                "{} is not the signing key of this log: {} names {}",
                path.display(),
                public.display(),
                have.trim()
            )));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if fs::metadata(layout.checkpoint_log()).is_ok_and(|m| m.len() > 0) {
                return Err(StoreError::Corrupted(format!(
                    "{} is missing, yet the log has signed checkpoints; restore keys/ from a backup",
                    public.display()
                )));
            }
            segment::write_atomic(&public, vkey.as_bytes())?;
        }
        Err(e) => return Err(StoreError::io(&public, e)),
    }
    if let Ok(inside) = fs::read_to_string(layout.signer_key())
        && inside.trim() != signer.to_skey()
    {
        return Err(StoreError::InvalidArgument(format!(
            "{} differs from the signing key given ({})",
            layout.signer_key().display(),
            path.display()
        )));
    }
    Ok(signer)
}

/// A signer key file, owner-only from its creation, written aside, synced and renamed into
/// place (the caller syncs the directory).
fn write_signer(signer: &Signer, path: &Path) -> Result<(), StoreError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| StoreError::io(&tmp, e))?;
    writeln!(f, "{}", signer.to_skey())
        .and_then(|()| f.sync_all())
        .map_err(|e| StoreError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| StoreError::io(path, e))
}

/// `keys/log.pub` names the key a rotation retired last: the rotation renamed the new private
/// key into place and stopped before rewriting the public one.
fn rotated_out(layout: &LogLayout, public_text: &str) -> Result<bool, StoreError> {
    Ok(read_retired(layout)?
        .last()
        .is_some_and(|r| r.to_vkey() == public_text.trim()))
}

/// Reads every checkpoint note in a checkpoint log, in order. A torn last frame (a crash
/// while publishing) ends the list; it is reported as the byte offset where it starts.
pub fn read_log(path: &Path) -> Result<(Vec<String>, Option<u64>), StoreError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
        Err(e) => return Err(StoreError::io(path, e)),
    };
    let mut notes = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        match segment::decode_frame(&bytes[at..]) {
            Ok((payload, n)) => {
                let text = String::from_utf8(payload.to_vec()).map_err(|_| {
                    StoreError::Corrupted(format!(
                        "{} at offset {at}: checkpoint is not UTF-8",
                        path.display()
                    ))
                })?;
                notes.push(text);
                at += n;
            }
            // Only a last frame can be torn; damage with whole frames after it is refused.
            Err(why) => match segment::whole_frame_after(&bytes, at) {
                None => return Ok((notes, Some(at as u64))),
                Some(next) => {
                    return Err(StoreError::Corrupted(format!(
                        "{} at offset {at}: {why}, yet a whole checkpoint follows at offset {next}",
                        path.display()
                    )));
                }
            },
        }
    }
    Ok((notes, None))
}

/// Opens a note with the first of `keys` that signed it; else the first key's reason.
pub(crate) fn open_any<'a>(
    note_text: &str,
    keys: impl IntoIterator<Item = &'a Verifier>,
) -> Result<SignedCheckpoint, String> {
    let mut first_err = None;
    for k in keys {
        match open_checkpoint(note_text, k) {
            Ok(cp) => return Ok(cp),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or_else(|| "no key".into()))
}

/// Parses and verifies one note with `verifier`.
pub fn open_checkpoint(note_text: &str, verifier: &Verifier) -> Result<SignedCheckpoint, String> {
    let opened = note::open(note_text, &[verifier]).map_err(|e| format!("signature: {e}"))?;
    let cp = Checkpoint::parse(&opened.text).map_err(|e| format!("checkpoint body: {e}"))?;
    if cp.origin != verifier.name() {
        return Err(format!(
            "origin {:?} is not this log's ({:?})",
            cp.origin,
            verifier.name()
        ));
    }
    Ok(SignedCheckpoint {
        size: cp.size,
        root: cp.root,
        note: note_text.to_string(),
    })
}

impl Checkpoints {
    pub(crate) fn open(
        layout: &LogLayout,
        signer: Signer,
        key_path: std::path::PathBuf,
        extension: Option<Extension>,
    ) -> Result<Self, StoreError> {
        let cp_dir = layout.checkpoints();
        fs::create_dir_all(&cp_dir).map_err(|e| StoreError::io(&cp_dir, e))?;
        let path = layout.checkpoint_log();
        let verifier = signer.verifier();
        let (latest, torn) = Self::read_latest(layout, &verifier)?;
        if let Some(at) = torn {
            Self::check_torn(layout, latest.as_ref().map(|(cp, _)| cp), at)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        if let Some(at) = torn {
            file.set_len(at)
                .and_then(|()| file.sync_all())
                .map_err(|e| StoreError::io(&path, e))?;
        }
        // The writer holds the directory: nothing publishes beside it.
        let latest_text = fs::read_to_string(layout.latest_checkpoint()).ok();
        let newest = latest.as_ref().map(|(cp, _)| cp);
        Self::check_latest_not_newer(layout, latest_text, &verifier, newest)?;
        let restored_latest = match &latest {
            Some((cp, _)) => Self::restore_latest(layout, cp)?,
            None => false,
        };
        Ok(Checkpoints {
            restored_latest,
            layout: layout.clone(),
            verifier: RwLock::new(verifier),
            retired: RwLock::new(read_retired(layout)?),
            key_path,
            writer: Some((Mutex::new(signer), Mutex::new(file))),
            latest: Mutex::new(latest),
            cosigned_lock: Mutex::new(()),
            extension,
        })
    }

    /// `checkpoints/latest` is written after the log: a signed note there newer than the
    /// log's newest means the log lost checkpoints, and serving the older one as the newest
    /// would be a wrong answer. `latest` is `checkpoints/latest` as read before the log, so a
    /// writer publishing beside a reader never makes it look newer.
    fn check_latest_not_newer(
        layout: &LogLayout,
        latest: Option<String>,
        verifier: &Verifier,
        newest: Option<&SignedCheckpoint>,
    ) -> Result<(), StoreError> {
        let Some(text) = latest else {
            return Ok(());
        };
        match open_checkpoint(&text, verifier) {
            Ok(cp)
                if newest.is_none_or(|n| {
                    cp.size > n.size || (cp.size == n.size && cp.root != n.root)
                }) =>
            {
                Err(StoreError::Corrupted(format!(
                    "{} lost checkpoints: {} holds a signed checkpoint of size {} that it does not (run `sealog verify`)",
                    layout.checkpoint_log().display(),
                    layout.latest_checkpoint().display(),
                    cp.size
                )))
            }
            _ => Ok(()),
        }
    }

    /// `checkpoints/latest` is a copy of the newest note for clients to fetch: one that is
    /// missing or differs is written again from the log.
    fn restore_latest(layout: &LogLayout, newest: &SignedCheckpoint) -> Result<bool, StoreError> {
        let path = layout.latest_checkpoint();
        if fs::read(&path).ok().as_deref() == Some(newest.note.as_bytes()) {
            return Ok(false);
        }
        segment::write_atomic(&path, newest.note.as_bytes())?;
        Ok(true)
    }

    /// A bad last frame of the checkpoint log is a torn write only if `checkpoints/latest`
    /// still holds the checkpoint before it: `latest` is replaced only after a new frame is
    /// whole and synced. Anything else means a whole checkpoint was damaged: cutting it would
    /// erase a signed statement someone may hold, so the log is refused instead.
    fn check_torn(
        layout: &LogLayout,
        last_whole: Option<&SignedCheckpoint>,
        at: u64,
    ) -> Result<(), StoreError> {
        let latest = match fs::read(layout.latest_checkpoint()) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(StoreError::io(&layout.latest_checkpoint(), e)),
        };
        let torn = match (last_whole, &latest) {
            (None, None) => true,
            (Some(cp), Some(bytes)) => cp.note.as_bytes() == bytes.as_slice(),
            _ => false,
        };
        if torn {
            return Ok(());
        }
        Err(StoreError::Corrupted(format!(
            "{} at offset {at}: the last checkpoint frame is damaged, yet {} shows it was written whole",
            layout.checkpoint_log().display(),
            layout.latest_checkpoint().display()
        )))
    }

    /// The checkpoints as they are, for reading beside the writer: nothing is signed or cut.
    pub(crate) fn read_only(layout: &LogLayout) -> Result<Self, StoreError> {
        let path = layout.verifier_key();
        let text = fs::read_to_string(&path).map_err(|e| StoreError::io(&path, e))?;
        let verifier = Verifier::parse(text.trim())
            .map_err(|e| StoreError::Corrupted(format!("{}: {e}", path.display())))?;
        let latest_text = fs::read_to_string(layout.latest_checkpoint()).ok();
        let (latest, _) = Self::read_latest(layout, &verifier)?;
        let newest = latest.as_ref().map(|(cp, _)| cp);
        Self::check_latest_not_newer(layout, latest_text, &verifier, newest)?;
        Ok(Checkpoints {
            layout: layout.clone(),
            verifier: RwLock::new(verifier),
            retired: RwLock::new(read_retired(layout)?),
            key_path: layout.signer_key(),
            writer: None,
            latest: Mutex::new(latest),
            restored_latest: false,
            cosigned_lock: Mutex::new(()),
            extension: None,
        })
    }

    /// The newest checkpoint in the log (checked), and where a torn last frame starts.
    #[allow(clippy::type_complexity)]
    fn read_latest(
        layout: &LogLayout,
        verifier: &Verifier,
    ) -> Result<(Option<(SignedCheckpoint, SystemTime)>, Option<u64>), StoreError> {
        let path = layout.checkpoint_log();
        let (notes, torn) = read_log(&path)?;
        let latest = match notes.last() {
            Some(n) => {
                let cp = open_checkpoint(n, verifier).map_err(|m| {
                    StoreError::Corrupted(format!("{}: last checkpoint: {m}", path.display()))
                })?;
                let at = fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .unwrap_or_else(|_| SystemTime::now());
                Some((cp, at))
            }
            None => None,
        };
        Ok((latest, torn))
    }

    /// Every checkpoint in the log, oldest first, each opened with this log's verifier.
    pub(crate) fn all(&self) -> Result<Vec<SignedCheckpoint>, StoreError> {
        let path = self.layout.checkpoint_log();
        let (notes, _) = read_log(&path)?;
        notes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                self.open_known(n).map_err(|m| {
                    StoreError::Corrupted(format!("{}: checkpoint {i}: {m}", path.display()))
                })
            })
            .collect()
    }

    /// Every cosigned checkpoint kept, oldest first, each a note this log signed. The file is
    /// only ever replaced whole, so a bad frame in it is damage, not a crash's leftover.
    pub(crate) fn cosigned(&self) -> Result<Vec<String>, StoreError> {
        let path = self.layout.cosigned_log();
        let (notes, torn) = read_log(&path)?;
        if let Some(at) = torn {
            return Err(StoreError::Corrupted(format!(
                "{} at offset {at}: a damaged frame in a file only ever replaced whole",
                path.display()
            )));
        }
        for (i, n) in notes.iter().enumerate() {
            self.open_known(n).map_err(|m| {
                StoreError::Corrupted(format!("{}: cosigned checkpoint {i}: {m}", path.display()))
            })?;
        }
        Ok(notes)
    }

    /// Keeps `note_text` (the checkpoint `cp`, opened by the caller, who has checked it is one
    /// of this log's tree) with the cosignatures it carries, durably, dropping what a
    /// cosigner's newer checkpoint supersedes.
    pub(crate) fn add_cosigned(
        &self,
        note_text: &str,
        cp: &SignedCheckpoint,
    ) -> Result<(), StoreError> {
        let _one = self.cosigned_lock.lock().expect("cosigned lock");
        let mut notes = self.cosigned()?;
        notes.push(note_text.to_string());
        let origin = cp.note.split('\n').next().unwrap_or_default();
        let mut bytes = Vec::new();
        for n in sealog_merkle::cosignature::newest_per_cosigner(&notes, origin) {
            segment::encode_frame(n.as_bytes(), &mut bytes);
        }
        segment::write_atomic(&self.layout.cosigned_log(), &bytes)
    }

    pub(crate) fn verifier(&self) -> Verifier {
        self.verifier.read().expect("key lock").clone()
    }

    /// Opens a note signed by the key in force or a former one.
    pub(crate) fn open_known(&self, note_text: &str) -> Result<SignedCheckpoint, String> {
        let current = self.verifier();
        let retired = self.retired.read().expect("key lock");
        open_any(
            note_text,
            std::iter::once(&current).chain(retired.iter().rev()),
        )
    }

    fn next_key_path(&self) -> std::path::PathBuf {
        let mut p = self.key_path.as_os_str().to_owned();
        p.push(".next");
        p.into()
    }

    /// The key a rotation prepared and did not finish, if any.
    pub(crate) fn pending_rotation(&self) -> Result<Option<Signer>, StoreError> {
        let path = self.next_key_path();
        match fs::read_to_string(&path) {
            Ok(text) => Signer::parse(text.trim())
                .map(Some)
                .map_err(|e| StoreError::Corrupted(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }

    /// Makes the next key (same origin), durable beside the current one, before anything
    /// names it; a prepared one is reused.
    pub(crate) fn prepare_rotation(&self) -> Result<Signer, StoreError> {
        if self.writer.is_none() {
            return Err(StoreError::ReadOnly);
        }
        if let Some(next) = self.pending_rotation()? {
            return Ok(next);
        }
        let origin = self.verifier().name().to_string();
        let next = Signer::from_seed(&origin, random_bytes::<32>()?)
            .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
        let path = self.next_key_path();
        write_signer(&next, &path)?;
        segment::sync_dir(path.parent().unwrap_or(Path::new(".")))?;
        Ok(next)
    }

    /// Forgets a prepared key that no record names.
    pub(crate) fn abandon_rotation(&self) -> Result<(), StoreError> {
        let path = self.next_key_path();
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }

    /// Hands signing to the prepared key: the old key is listed as retired, a checkpoint of
    /// the newest tree head is signed by both, and only then do the key files name the new
    /// key. Each step is skipped when a crashed earlier run did it. The caller has had the
    /// newest checkpoint cover the record that announces the new key.
    pub(crate) fn finish_rotation(&self) -> Result<Verifier, StoreError> {
        let (signer, log) = self.writer.as_ref().ok_or(StoreError::ReadOnly)?;
        let next = self
            .pending_rotation()?
            .ok_or_else(|| StoreError::InvalidArgument("no key rotation is prepared".into()))?;
        let mut latest = self.latest.lock().expect("checkpoint lock");
        let mut signer = signer.lock().expect("signer lock");
        let old = signer.verifier();
        let retired_path = self.layout.retired_keys();
        let listed = read_retired(&self.layout)?;
        if listed.last() != Some(&old) {
            let mut f = OpenOptions::new()
                .append(true)
                .create(true)
                .open(&retired_path)
                .map_err(|e| StoreError::io(&retired_path, e))?;
            writeln!(f, "{}", old.to_vkey())
                .and_then(|()| f.sync_all())
                .map_err(|e| StoreError::io(&retired_path, e))?;
            segment::sync_dir(&self.layout.keys())?;
        }
        let (cp, _) = latest
            .clone()
            .ok_or_else(|| StoreError::Poisoned("no checkpoint to hand over with".into()))?;
        if open_checkpoint(&cp.note, &next.verifier()).is_err() {
            // The same checkpoint, its extension lines kept: one size, one body.
            let note_text = note::sign_tree_head_with(
                cp.size,
                cp.root,
                extensions_of(&cp.note),
                &[&*signer, &next],
            )
            .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
            self.append_note(log, &note_text)?;
            *latest = Some((
                SignedCheckpoint {
                    size: cp.size,
                    root: cp.root,
                    note: note_text,
                },
                SystemTime::now(),
            ));
        }
        // The private key first: a crash before the public key is rewritten leaves a
        // `log.pub` naming the retired key, which the next opening rewrites.
        fs::rename(self.next_key_path(), &self.key_path)
            .map_err(|e| StoreError::io(&self.key_path, e))?;
        segment::sync_dir(self.key_path.parent().unwrap_or(Path::new(".")))?;
        segment::write_atomic(
            &self.layout.verifier_key(),
            format!("{}\n", next.verifier().to_vkey()).as_bytes(),
        )?;
        self.retired.write().expect("key lock").push(old.clone());
        *self.verifier.write().expect("key lock") = next.verifier();
        *signer = next;
        Ok(old)
    }

    /// Appends a signed note to the checkpoint log, synced, and makes it `latest`.
    fn append_note(&self, log: &Mutex<File>, note_text: &str) -> Result<(), StoreError> {
        let mut frame = Vec::with_capacity(note_text.len() + 8);
        segment::encode_frame(note_text.as_bytes(), &mut frame);
        let path = self.layout.checkpoint_log();
        {
            let mut log = log.lock().expect("checkpoint log lock");
            log.write_all(&frame)
                .and_then(|()| log.sync_data())
                .map_err(|e| StoreError::io(&path, e))?;
        }
        let latest_path = self.layout.latest_checkpoint();
        let tmp = latest_path.with_extension("tmp");
        fs::write(&tmp, note_text).map_err(|e| StoreError::io(&tmp, e))?;
        fs::rename(&tmp, &latest_path).map_err(|e| StoreError::io(&tmp, e))
    }

    pub(crate) fn log_path(&self) -> std::path::PathBuf {
        self.layout.checkpoint_log()
    }

    pub(crate) fn latest(&self) -> Option<SignedCheckpoint> {
        self.latest_with_time().map(|(cp, _)| cp)
    }

    pub(crate) fn latest_with_time(&self) -> Option<(SignedCheckpoint, SystemTime)> {
        self.latest.lock().expect("checkpoint lock").clone()
    }

    /// Signs and durably records a checkpoint for a tree of `size` leaves with `root`.
    /// Callers publish only sizes whose records are durable.
    pub(crate) fn publish(&self, size: u64, root: Hash) -> Result<SignedCheckpoint, StoreError> {
        let (signer, log) = self.writer.as_ref().ok_or(StoreError::ReadOnly)?;
        let mut latest = self.latest.lock().expect("checkpoint lock");
        if let Some((l, _)) = latest.as_ref().filter(|(l, _)| l.size >= size) {
            // Another publisher got there first; checkpoints only move forward.
            assert!(
                l.size > size || l.root == root,
                "two roots for one tree size"
            );
            return Ok(l.clone());
        }
        let signer = signer.lock().expect("signer lock");
        let lines = self.extension.as_ref().and_then(|e| (e.0)());
        let note_text =
            note::sign_tree_head_with(size, root, lines.into_iter().collect(), &[&*signer])
                .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
        self.append_note(log, &note_text)?;
        let signed = SignedCheckpoint {
            size,
            root,
            note: note_text,
        };
        *latest = Some((signed.clone(), SystemTime::now()));
        Ok(signed)
    }
}

/// The log's former verifier keys, oldest first.
pub(crate) fn read_retired(layout: &LogLayout) -> Result<Vec<Verifier>, StoreError> {
    let path = layout.retired_keys();
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(&path, e)),
    };
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            Verifier::parse(l)
                .map_err(|e| StoreError::Corrupted(format!("{}: {e}", path.display())))
        })
        .collect()
}
