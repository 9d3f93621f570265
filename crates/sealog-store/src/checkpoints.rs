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
use std::sync::Mutex;
use std::time::SystemTime;

use sealog_model::LogLayout;

use sealog_merkle::Hash;
use sealog_merkle::checkpoint::Checkpoint;
use sealog_merkle::note::{self, Signer, Verifier};

use crate::error::StoreError;
use crate::segment;

/// A checkpoint as published: its parsed body and the whole signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub size: u64,
    pub root: Hash,
    pub note: String,
}

pub(crate) struct Checkpoints {
    layout: LogLayout,
    verifier: Verifier,
    /// The signer and the checkpoint log open for appending; `None` when opened read-only.
    writer: Option<(Signer, Mutex<File>)>,
    /// The newest checkpoint and when it was signed (or, for one found on open, the time its
    /// file was last written).
    latest: Mutex<Option<(SignedCheckpoint, SystemTime)>>,
    /// Opening found `checkpoints/latest` missing or stale and wrote it again.
    pub(crate) restored_latest: bool,
    /// Serializes appends to `checkpoints/cosigned`.
    cosigned_lock: Mutex<()>,
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
            let origin = format!("sealog.local/{}", hex_lower(&random_bytes::<8>()?));
            let signer = Signer::from_seed(&origin, random_bytes::<32>()?)
                .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
            let tmp = keys.join("log.key.tmp");
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
            fs::rename(&tmp, &path).map_err(|e| StoreError::io(&path, e))?;
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

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
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
    pub(crate) fn open(layout: &LogLayout, signer: Signer) -> Result<Self, StoreError> {
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
        Self::check_latest_not_newer(layout, &verifier, latest.as_ref().map(|(cp, _)| cp))?;
        let restored_latest = match &latest {
            Some((cp, _)) => Self::restore_latest(layout, cp)?,
            None => false,
        };
        Self::cut_torn_cosigned(layout)?;
        Ok(Checkpoints {
            restored_latest,
            layout: layout.clone(),
            verifier,
            writer: Some((signer, Mutex::new(file))),
            latest: Mutex::new(latest),
            cosigned_lock: Mutex::new(()),
        })
    }

    /// `checkpoints/latest` is written after the log: a signed note there newer than the
    /// log's newest means the log lost checkpoints, and serving the older one as the newest
    /// would be a wrong answer.
    fn check_latest_not_newer(
        layout: &LogLayout,
        verifier: &Verifier,
        newest: Option<&SignedCheckpoint>,
    ) -> Result<(), StoreError> {
        let Ok(text) = fs::read_to_string(layout.latest_checkpoint()) else {
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
        let (latest, _) = Self::read_latest(layout, &verifier)?;
        Self::check_latest_not_newer(layout, &verifier, latest.as_ref().map(|(cp, _)| cp))?;
        Ok(Checkpoints {
            layout: layout.clone(),
            verifier,
            writer: None,
            latest: Mutex::new(latest),
            restored_latest: false,
            cosigned_lock: Mutex::new(()),
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
                open_checkpoint(n, &self.verifier).map_err(|m| {
                    StoreError::Corrupted(format!("{}: checkpoint {i}: {m}", path.display()))
                })
            })
            .collect()
    }

    /// A torn last frame of `checkpoints/cosigned` was never acknowledged: cut it.
    fn cut_torn_cosigned(layout: &LogLayout) -> Result<(), StoreError> {
        let path = layout.cosigned_log();
        if let (_, Some(at)) = read_log(&path)? {
            OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(at).and_then(|()| f.sync_all()))
                .map_err(|e| StoreError::io(&path, e))?;
        }
        Ok(())
    }

    /// Every cosigned checkpoint kept, oldest first, each a note this log signed.
    pub(crate) fn cosigned(&self) -> Result<Vec<String>, StoreError> {
        let path = self.layout.cosigned_log();
        let (notes, _) = read_log(&path)?;
        for (i, n) in notes.iter().enumerate() {
            open_checkpoint(n, &self.verifier).map_err(|m| {
                StoreError::Corrupted(format!("{}: cosigned checkpoint {i}: {m}", path.display()))
            })?;
        }
        Ok(notes)
    }

    /// Keeps `note`, a checkpoint of this log with cosignatures added, durably. The caller
    /// has checked that the checkpoint is one of this log's tree.
    pub(crate) fn add_cosigned(&self, note_text: &str) -> Result<SignedCheckpoint, StoreError> {
        if self.writer.is_none() {
            return Err(StoreError::ReadOnly);
        }
        let cp = open_checkpoint(note_text, &self.verifier).map_err(StoreError::InvalidArgument)?;
        let mut frame = Vec::with_capacity(note_text.len() + 8);
        segment::encode_frame(note_text.as_bytes(), &mut frame);
        let path = self.layout.cosigned_log();
        let _one = self.cosigned_lock.lock().expect("cosigned lock");
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        let created = f.metadata().map(|m| m.len() == 0).unwrap_or(true);
        f.write_all(&frame)
            .and_then(|()| f.sync_data())
            .map_err(|e| StoreError::io(&path, e))?;
        if created {
            segment::sync_dir(&self.layout.checkpoints())?;
        }
        Ok(cp)
    }

    pub(crate) fn verifier(&self) -> Verifier {
        self.verifier.clone()
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
        let body = Checkpoint {
            origin: signer.name().to_string(),
            size,
            root,
            extensions: Vec::new(),
        }
        .to_body();
        let note_text =
            note::sign(&body, &[signer]).map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
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
        fs::write(&tmp, &note_text).map_err(|e| StoreError::io(&tmp, e))?;
        fs::rename(&tmp, &latest_path).map_err(|e| StoreError::io(&tmp, e))?;
        let signed = SignedCheckpoint {
            size,
            root,
            note: note_text,
        };
        *latest = Some((signed.clone(), SystemTime::now()));
        Ok(signed)
    }
}
