//! A PostgreSQL log's signing key. The private key lives in a file outside the database, the
//! same file on every server that writes the log (distributed like a TLS key); the database
//! keeps only verifier keys, in `sealog_log_keys`. A dump of the database therefore cannot
//! sign a checkpoint, and a server whose file is not the database's key is refused.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use sealog_merkle::note::Signer;
use sealog_store::StoreError;

/// The signer in `path`, if the file exists: owner-only and in the C2SP signer-key form.
pub(crate) fn read_signer(path: &Path) -> Result<Option<Signer>, StoreError> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(path, e)),
    };
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(StoreError::InvalidArgument(format!(
            "{} is readable by others (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        )));
    }
    let text = fs::read_to_string(path).map_err(|e| StoreError::io(path, e))?;
    Signer::parse(text.trim()).map(Some).map_err(|e| {
        StoreError::InvalidArgument(format!("{}: not a signer key: {e}", path.display()))
    })
}

/// A new key pair for a new log (a random origin), written owner-only, aside, synced and
/// renamed into place.
pub(crate) fn create_signer(path: &Path) -> Result<Signer, StoreError> {
    let id: [u8; 8] = random()?;
    create_next(&format!("sealog.pg/{}", hex::encode(id)), path)
}

/// A new key pair named `origin` in `path`: a new log's first key, or the next key of a log
/// whose key is rotated (the same origin).
pub(crate) fn create_next(origin: &str, path: &Path) -> Result<Signer, StoreError> {
    let signer = Signer::from_seed(origin, random()?)
        .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
    write_signer(&signer, path)?;
    Ok(signer)
}

fn random<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| StoreError::Poisoned(format!("no randomness for key generation: {e}")))?;
    Ok(bytes)
}

/// Where a rotation keeps the next key until it hands over: beside the key file.
pub(crate) fn next_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".next");
    std::path::PathBuf::from(name)
}

/// Puts the next key in the key file's place (and syncs the directory).
pub(crate) fn hand_over(path: &Path) -> Result<(), StoreError> {
    let next = next_path(path);
    fs::rename(&next, path).map_err(|e| StoreError::io(path, e))?;
    sync_parent(path)
}

fn sync_parent(path: &Path) -> Result<(), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StoreError::io(dir, e))?;
    }
    Ok(())
}

/// A signer key file, owner-only from its creation, written aside, synced and renamed into
/// place, its directory synced.
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
    fs::rename(&tmp, path).map_err(|e| StoreError::io(path, e))?;
    sync_parent(path)
}
