//! A witness's own durable state: its cosigning key and, per log origin, the checkpoint it
//! cosigned last.
//!
//! ```text
//! STATE/witness.key        PRIVATE+KEY+<name>+<id>+<base64(0x04 || seed)>   (mode 0600)
//! STATE/logs/<sha256(origin), hex>   the checkpoint text cosigned last for that origin
//! ```
//! Kept per origin, never per key: a log that rotates its key keeps its history here. Each
//! update is written aside, synced and renamed while the check that allowed it still holds
//! the lock, so two racing requests can never roll the state back.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sealog_merkle::Hash;
use sealog_merkle::checkpoint::Checkpoint;
use sealog_merkle::cosignature::Cosigner;
use sealog_merkle::note::Verifier;
use sealog_merkle::witness::{self, AddCheckpoint, Refusal};
use sha2::{Digest, Sha256};

/// What could not be loaded or stored.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WitnessError(pub String);

fn io(path: &Path, e: std::io::Error) -> WitnessError {
    WitnessError(format!("{}: {e}", path.display()))
}

pub struct WitnessState {
    dir: PathBuf,
    cosigner: Cosigner,
    /// The keys trusted for each origin.
    logs: HashMap<String, Vec<Verifier>>,
    /// The checkpoint cosigned last, per origin: held while a request is checked and stored.
    last: Mutex<HashMap<String, (u64, Hash)>>,
}

/// The witness key in `dir`, created (with `name`, or a random one) on first use.
pub fn load_or_create_key(dir: &Path, name: Option<&str>) -> Result<Cosigner, WitnessError> {
    fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let path = dir.join("witness.key");
    match fs::read_to_string(&path) {
        Ok(text) => {
            let mode = fs::metadata(&path)
                .map_err(|e| io(&path, e))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(WitnessError(format!(
                    "{} is readable by others (mode {:o}); chmod 600 it",
                    path.display(),
                    mode & 0o777
                )));
            }
            let key = Cosigner::parse(text.trim())
                .map_err(|e| WitnessError(format!("{}: {e}", path.display())))?;
            if let Some(n) = name.filter(|n| *n != key.name()) {
                return Err(WitnessError(format!(
                    "{} is the key of witness {:?}, not {n:?}: a witness keeps its name",
                    path.display(),
                    key.name()
                )));
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| WitnessError(format!("randomness: {e}")))?;
            let name = match name {
                Some(n) => n.to_string(),
                None => {
                    let mut id = [0u8; 6];
                    getrandom::fill(&mut id)
                        .map_err(|e| WitnessError(format!("randomness: {e}")))?;
                    format!("sealog.witness/{}", hex::encode(id))
                }
            };
            let key = Cosigner::from_seed(&name, seed)
                .map_err(|e| WitnessError(format!("witness name: {e}")))?;
            replace(&path, format!("{}\n", key.to_skey()).as_bytes())?;
            Ok(key)
        }
        Err(e) => Err(io(&path, e)),
    }
}

fn replace(path: &Path, bytes: &[u8]) -> Result<(), WitnessError> {
    crate::aside::replace(path, bytes).map_err(|(p, e)| io(&p, e))
}

fn origin_file(dir: &Path, origin: &str) -> PathBuf {
    dir.join("logs")
        .join(hex::encode(Sha256::digest(origin.as_bytes())))
}

impl WitnessState {
    /// Opens the state in `dir` for the logs given (origin → trusted keys).
    pub fn open(
        dir: &Path,
        name: Option<&str>,
        logs: HashMap<String, Vec<Verifier>>,
    ) -> Result<Self, WitnessError> {
        let cosigner = load_or_create_key(dir, name)?;
        let logs_dir = dir.join("logs");
        fs::create_dir_all(&logs_dir).map_err(|e| io(&logs_dir, e))?;
        let mut last = HashMap::new();
        for origin in logs.keys() {
            let path = origin_file(dir, origin);
            let text = match fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&path, e)),
            };
            let cp = Checkpoint::parse(&text)
                .ok()
                .filter(|cp| cp.origin == *origin)
                .ok_or_else(|| {
                    WitnessError(format!(
                        "{} is damaged: not the checkpoint of {origin:?} it was written as; restore it from a backup (starting over would let that log roll back)",
                        path.display()
                    ))
                })?;
            last.insert(origin.clone(), (cp.size, cp.root));
        }
        Ok(WitnessState {
            dir: dir.to_path_buf(),
            cosigner,
            logs,
            last: Mutex::new(last),
        })
    }

    pub fn cosigner(&self) -> &Cosigner {
        &self.cosigner
    }

    /// The size and root cosigned last for `origin`.
    pub fn last(&self, origin: &str) -> Option<(u64, Hash)> {
        self.last.lock().expect("witness lock").get(origin).copied()
    }

    /// Checks a request and, when it passes, stores the checkpoint durably and returns the
    /// cosignature line(s); one atomic step under the lock.
    pub fn add_checkpoint(&self, req: &AddCheckpoint, now: u64) -> Result<String, AddError> {
        let origin = witness::origin_of(&req.checkpoint)
            .ok_or_else(|| Refusal::BadRequest("the checkpoint has no origin line".into()))?;
        let keys = self.logs.get(origin).ok_or_else(|| {
            Refusal::UnknownLog(format!("this witness does not follow {origin:?}"))
        })?;
        let mut last = self.last.lock().expect("witness lock");
        let (text, cp) = witness::check(req, keys, last.get(origin).copied())?;
        let path = origin_file(&self.dir, origin);
        if last.get(origin) != Some(&(cp.size, cp.root)) {
            replace(&path, text.as_bytes()).map_err(AddError::Store)?;
            last.insert(cp.origin.clone(), (cp.size, cp.root));
        }
        Ok(self.cosigner.cosign(&text, now))
    }
}

/// A refusal the spec names, or a failure to store.
#[derive(Debug)]
pub enum AddError {
    Refused(Refusal),
    Store(WitnessError),
}

impl From<Refusal> for AddError {
    fn from(r: Refusal) -> Self {
        AddError::Refused(r)
    }
}
