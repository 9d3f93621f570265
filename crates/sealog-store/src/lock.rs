//! One process per data directory: an exclusive advisory lock on `LOCK`, released by the
//! kernel when the process dies, so a crash never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::error::StoreError;

pub(crate) fn acquire(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join("LOCK");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| StoreError::io(&path, e))?;
    if file.try_lock().is_err() {
        let mut pid = String::new();
        let _ = file.read_to_string(&mut pid);
        let holder = match pid.trim() {
            "" => String::new(),
            p => format!(" (pid {p})"),
        };
        return Err(StoreError::Locked {
            dir: dir.to_path_buf(),
            holder,
        });
    }
    let stamp = |f: &mut File| -> std::io::Result<()> {
        f.set_len(0)?;
        f.rewind()?;
        write!(f, "{}", std::process::id())
    };
    stamp(&mut file).map_err(|e| StoreError::io(&path, e))?;
    Ok(file)
}
