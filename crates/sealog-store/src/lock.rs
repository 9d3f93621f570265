//! One process per data directory: an exclusive advisory lock on `LOCK`, released by the
//! kernel when the process dies, so a crash never leaves a stale lock behind.
//!
//! A `flock` belongs to the open file, and a child process forked by any thread of ours holds
//! a copy of every descriptor until it execs. So if the lock is held and `LOCK` names this
//! very process while no store of ours has the directory open, the holder is such a
//! short-lived copy: wait for it rather than report the directory busy. So is a held lock on
//! an empty `LOCK`: closing empties it before the descriptor goes, so a copy forked just
//! before a close holds it with no pid in it (another process taking the lock leaves it
//! empty only until it writes its pid, which the wait then reads).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sealog_model::LogLayout;

use crate::error::StoreError;

/// Directories this process has open, by canonical path.
static OPEN: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// How long to wait out a descriptor inherited by a child that has not exec'd yet.
const INHERITED_WAIT_MAX: Duration = Duration::from_secs(5);

pub(crate) struct DirLock {
    file: File,
    key: PathBuf,
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // The pid goes with the lock: a closed log must not look as if its last writer (which
        // may still run, or whose pid may be reused) were writing it.
        let _ = self.file.set_len(0);
        if let Some(open) = OPEN.lock().expect("lock registry").as_mut() {
            open.remove(&self.key);
        }
    }
}

/// Whether a live process holds the log's lock (the pid it wrote there still runs). Used only
/// to decide how much of a log is settled enough to verify; it takes no lock itself.
pub(crate) fn writer_alive(layout: &LogLayout) -> bool {
    let Ok(pid) = std::fs::read_to_string(layout.lock()) else {
        return false;
    };
    let pid = pid.trim();
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    // Probing the lock itself could make a writer starting at that instant fail to take it;
    // a stale pid that happens to run again only makes verification stop at the last count
    // a writer published, which is still a proof of that prefix.
    if !Path::new("/proc").join(pid).exists() {
        return false;
    }
    // A pid in the file is a claim anyone who can write it can make (`LOCK` naming a process
    // that always runs would stop `verify --strict` short of an injected tail): the kernel's
    // table of locks says whether that process holds one on this file. Where the table
    // cannot be read, the claim stands.
    holds_lock(pid, &layout.lock()).unwrap_or(true)
}

/// Whether `/proc/locks` lists a lock that the process `pid` holds on the file at `path`.
fn holds_lock(pid: &str, path: &Path) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(path).ok()?.ino().to_string();
    let table = std::fs::read_to_string("/proc/locks").ok()?;
    // "1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF"; a waiter's line has "->" after
    // its number, shifting its fields, and holds nothing.
    Some(table.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() >= 6
            && fields[4] == pid
            && fields[5].rsplit(':').next() == Some(inode.as_str())
    }))
}

pub(crate) fn acquire(layout: &LogLayout) -> Result<DirLock, StoreError> {
    let dir = layout.root();
    let key = dir.canonicalize().map_err(|e| StoreError::io(dir, e))?;
    let path = layout.lock();
    let locked = |holder: String| StoreError::Locked {
        dir: dir.to_path_buf(),
        holder,
    };
    {
        let mut open = OPEN.lock().expect("lock registry");
        if !open.get_or_insert_with(HashSet::new).insert(key.clone()) {
            return Err(locked(format!(
                " (pid {}, this process)",
                std::process::id()
            )));
        }
    }
    let result = (|| {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        let started = Instant::now();
        while file.try_lock().is_err() {
            let mut pid = String::new();
            let _ = file.rewind().and_then(|()| file.read_to_string(&mut pid));
            let pid = pid.trim();
            let ours = pid.is_empty() || pid == std::process::id().to_string();
            if !ours || started.elapsed() > INHERITED_WAIT_MAX {
                return Err(locked(match pid {
                    "" => String::new(),
                    p => format!(" (pid {p})"),
                }));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let stamp = |f: &mut File| -> std::io::Result<()> {
            f.set_len(0)?;
            f.rewind()?;
            write!(f, "{}", std::process::id())
        };
        stamp(&mut file).map_err(|e| StoreError::io(&path, e))?;
        Ok(file)
    })();
    match result {
        Ok(file) => Ok(DirLock { file, key }),
        Err(e) => {
            OPEN.lock()
                .expect("lock registry")
                .as_mut()
                .expect("registered above")
                .remove(&key);
            Err(e)
        }
    }
}
