//! Files the ledger keeps beside the logs (the payload area, the privacy files) are replaced
//! whole: written aside, synced, renamed into place, the directory synced, so a crash leaves
//! the old file or the new one.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use sealog_store::StoreError;

/// Writes a new owner-only file aside and renames it into place, durably.
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().expect("a file in a directory");
    fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    let aside = path.with_extension("new");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&aside)
        .map_err(|e| StoreError::io(&aside, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| StoreError::io(&aside, e))?;
    fs::rename(&aside, path).map_err(|e| StoreError::io(path, e))?;
    sealog_store::segment::sync_dir(dir)
}
