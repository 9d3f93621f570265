//! One process per data directory: an exclusive advisory lock on the directory itself and on
//! `LOCK` in it, released by the kernel when the process dies, so a crash never leaves a
//! stale lock behind.
//!
//! `LOCK` holds the holder's pid and so looks like a stale pidfile; deleting it must not let a
//! second writer in beside a live one. A lock on a file that has been unlinked guards nothing
//! (the next process creates a new file and locks that), while the directory cannot be
//! unlinked from under a live holder without first removing everything in it. So the
//! directory's lock is the one that excludes; `LOCK`'s is kept for a writer that locks only
//! the file, and the file for people reading who holds the directory.
//!
//! A `flock` belongs to the open file, and a child process forked by any thread of ours holds
//! a copy of every descriptor until it execs. So if the lock is held by this very process
//! while no store of ours has the directory open, the holder is such a short-lived copy: wait
//! for it rather than report the directory busy. The holder is the one the kernel's table of
//! locks names; where it names none, the pid in `LOCK`, and a held lock on an empty `LOCK` is
//! such a copy too: closing empties it before the descriptor goes, so a copy forked just
//! before a close holds it with no pid in it (another process taking the lock leaves it empty
//! only until it writes its pid, which the wait then reads).

use std::collections::HashSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Seek, Write};
use std::os::unix::fs::MetadataExt;
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
    /// Held for its lock, the one a deleted `LOCK` cannot take away.
    _dir: File,
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

/// Whether a live process holds the log's lock. Used only to decide how much of a log is
/// settled enough to verify; it takes no lock itself.
pub(crate) fn writer_alive(layout: &LogLayout) -> bool {
    // Probing the lock itself could make a writer starting at that instant fail to take it:
    // the kernel's table of locks is read instead. A pid in `LOCK` is a claim anyone who can
    // write the file can make (`LOCK` naming a process that always runs would stop
    // `verify --strict` short of an injected tail), and a live writer's `LOCK` may have been
    // deleted: the table says who holds the directory or the file.
    let inodes: Vec<u64> = [layout.root().to_path_buf(), layout.lock()]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok().map(|m| m.ino()))
        .collect();
    if let Some(holders) = lock_holders(&inodes) {
        return holders
            .iter()
            .any(|pid| Path::new("/proc").join(pid).exists());
    }
    // Where the table cannot be read, the claim stands: a stale pid that happens to run
    // again only makes verification stop at the last count a writer published, which is
    // still a proof of that prefix.
    let Ok(pid) = std::fs::read_to_string(layout.lock()) else {
        return false;
    };
    let pid = pid.trim();
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && Path::new("/proc").join(pid).exists()
}

/// The pids `/proc/locks` lists as holding a lock on a file whose inode is one of `inodes`
/// (`None` where the table cannot be read).
fn lock_holders(inodes: &[u64]) -> Option<Vec<String>> {
    let table = std::fs::read_to_string("/proc/locks").ok()?;
    // "1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF"; a waiter's line has "->" after
    // its number, shifting its fields, and holds nothing. Only the inode is compared: the
    // device is written as the kernel numbers it, which `stat` does not always give.
    Some(
        table
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let inode = fields.get(5)?.rsplit(':').next()?.parse::<u64>().ok()?;
                (fields[1] != "->" && inodes.contains(&inode)).then(|| fields[4].to_string())
            })
            .collect(),
    )
}

/// Who holds the lock on `locked`: the process the kernel's table names, else the pid in
/// `LOCK` (empty if neither says).
fn holder(locked: &File, layout: &LogLayout) -> String {
    let listed = locked
        .metadata()
        .ok()
        .and_then(|m| lock_holders(&[m.ino()]))
        // A holder in another pid namespace is listed as a pid of none here.
        .and_then(|pids| {
            pids.into_iter()
                .find(|p| p.parse::<u32>().is_ok_and(|p| p > 0))
        });
    listed.unwrap_or_else(|| {
        std::fs::read_to_string(layout.lock())
            .map(|pid| pid.trim().to_string())
            .unwrap_or_default()
    })
}

/// Takes the exclusive lock on `locked` (at `path`), waiting only while its holder is a copy
/// of this process's own descriptor.
fn take(locked: &File, path: &Path, layout: &LogLayout) -> Result<(), StoreError> {
    let started = Instant::now();
    loop {
        match locked.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => return Err(StoreError::io(path, e)),
        }
        let pid = holder(locked, layout);
        let ours = pid.is_empty() || pid == std::process::id().to_string();
        if !ours || started.elapsed() > INHERITED_WAIT_MAX {
            return Err(StoreError::Locked {
                dir: layout.root().to_path_buf(),
                holder: match pid.as_str() {
                    "" => String::new(),
                    p => format!(" (pid {p})"),
                },
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub(crate) fn acquire(layout: &LogLayout) -> Result<DirLock, StoreError> {
    let dir = layout.root();
    let key = dir.canonicalize().map_err(|e| StoreError::io(dir, e))?;
    let path = layout.lock();
    {
        let mut open = OPEN.lock().expect("lock registry");
        if !open.get_or_insert_with(HashSet::new).insert(key.clone()) {
            return Err(StoreError::Locked {
                dir: dir.to_path_buf(),
                holder: format!(" (pid {}, this process)", std::process::id()),
            });
        }
    }
    let result = (|| {
        let dir_file = File::open(dir).map_err(|e| StoreError::io(dir, e))?;
        take(&dir_file, dir, layout)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        take(&file, &path, layout)?;
        let stamp = |f: &mut File| -> std::io::Result<()> {
            f.set_len(0)?;
            f.rewind()?;
            write!(f, "{}", std::process::id())
        };
        stamp(&mut file).map_err(|e| StoreError::io(&path, e))?;
        Ok((file, dir_file))
    })();
    match result {
        Ok((file, dir)) => Ok(DirLock {
            file,
            _dir: dir,
            key,
        }),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_whose_lock_file_was_deleted_is_still_alive_to_verify() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = LogLayout::new(tmp.path());
        assert!(!writer_alive(&layout), "no writer yet");
        let held = acquire(&layout).unwrap();
        assert!(writer_alive(&layout));
        std::fs::remove_file(layout.lock()).unwrap();
        assert!(writer_alive(&layout), "still holds the directory");
        drop(held);
        assert!(!writer_alive(&layout), "closed");
        let again = acquire(&layout).unwrap();
        assert_eq!(
            std::fs::read_to_string(layout.lock()).unwrap(),
            std::process::id().to_string(),
            "a new LOCK names the new holder"
        );
        drop(again);
    }
}
