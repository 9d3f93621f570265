//! Compressed segments' file handles, opened when read and closed when not used for a while.
//!
//! A sealed segment is read rarely once compressed, and a long-lived process would otherwise
//! keep one open file per segment the log ever sealed: its descriptors grew with the log
//! (docs/reliability.md, the 45-minute soak). At most [`OPEN_MAX`] are open at once across
//! the process; the one used longest ago is closed first. A reader holding a handle keeps it
//! until it is done, so closing never fails a read in progress.
//!
//! A file is opened again by its path, so it must still be the file first opened there:
//! retention renames a rewritten segment over the old one, and a reader of the old one must
//! not read the new one's blocks through the old one's index. Such a read fails with
//! [`Replaced`], and the caller asks for the segment again.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Compressed segments open at once in the process. Reads near the log's end, the usual
/// ones, touch the newest few; an older segment costs one `open` when it is read again.
pub const OPEN_MAX: usize = 8;

/// The handles open now, to pick the one to close.
static OPEN: Mutex<Vec<Weak<Handle>>> = Mutex::new(Vec::new());
/// Each use takes the next tick; the smallest is the least recently used.
static TICK: AtomicU64 = AtomicU64::new(0);

/// A file at `path` that closes itself when the process has too many such files open.
pub struct Handle {
    path: PathBuf,
    /// (device, inode) when first opened.
    identity: (u64, u64),
    file: Mutex<Option<Arc<File>>>,
    used: AtomicU64,
}

/// The file at a handle's path is not the one it opened first.
#[derive(Debug)]
pub struct Replaced(PathBuf);

impl std::fmt::Display for Replaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} was replaced since it was opened", self.0.display())
    }
}

impl std::error::Error for Replaced {}

/// Whether `e` says the file was replaced (and the read may be asked again of its successor).
pub fn is_replaced(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Replaced>())
}

impl Handle {
    /// Opens `path`; the file returned is the handle's until it is closed.
    pub fn open(path: &Path) -> io::Result<(Arc<Handle>, Arc<File>)> {
        let file = Arc::new(File::open(path)?);
        let meta = file.metadata()?;
        let handle = Arc::new(Handle {
            path: path.to_path_buf(),
            identity: (meta.dev(), meta.ino()),
            file: Mutex::new(Some(file.clone())),
            used: AtomicU64::new(TICK.fetch_add(1, Ordering::Relaxed)),
        });
        admit(&handle);
        Ok((handle, file))
    }

    /// The same file, renamed to `to`: opened again from there.
    pub fn renamed(&self, to: &Path) -> Arc<Handle> {
        let handle = Arc::new(Handle {
            path: to.to_path_buf(),
            identity: self.identity,
            file: Mutex::new(self.file.lock().expect("handle lock").clone()),
            used: AtomicU64::new(TICK.fetch_add(1, Ordering::Relaxed)),
        });
        if handle.is_open() {
            admit(&handle);
        }
        handle
    }

    /// The file, opened again if it was closed.
    pub fn file(self: &Arc<Self>) -> io::Result<Arc<File>> {
        self.used
            .store(TICK.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        let mut slot = self.file.lock().expect("handle lock");
        if let Some(file) = &*slot {
            return Ok(file.clone());
        }
        let file = File::open(&self.path)?;
        let meta = file.metadata()?;
        if (meta.dev(), meta.ino()) != self.identity {
            return Err(io::Error::other(Replaced(self.path.clone())));
        }
        let file = Arc::new(file);
        *slot = Some(file.clone());
        // Not under this handle's lock: closing takes other handles' locks under `OPEN`.
        drop(slot);
        admit(self);
        Ok(file)
    }

    pub(crate) fn close(&self) {
        *self.file.lock().expect("handle lock") = None;
    }

    fn is_open(&self) -> bool {
        self.file.lock().expect("handle lock").is_some()
    }
}

/// Counts `handle` as open, closing the least recently used ones past [`OPEN_MAX`].
fn admit(handle: &Arc<Handle>) {
    let mut open = OPEN.lock().expect("open handles lock");
    open.retain(|h| h.upgrade().is_some_and(|h| h.is_open()));
    if !open.iter().any(|h| h.as_ptr() == Arc::as_ptr(handle)) {
        open.push(Arc::downgrade(handle));
    }
    while open.len() > OPEN_MAX {
        let oldest = (0..open.len())
            .filter(|&i| open[i].as_ptr() != Arc::as_ptr(handle))
            .min_by_key(|&i| {
                open[i]
                    .upgrade()
                    .map_or(0, |h| h.used.load(Ordering::Relaxed))
            })
            .expect("more than one handle is open");
        if let Some(h) = open.swap_remove(oldest).upgrade() {
            h.close();
        }
    }
}

/// How many handles are open now.
pub fn open_count() -> usize {
    OPEN.lock()
        .expect("open handles lock")
        .iter()
        .filter(|h| h.upgrade().is_some_and(|h| h.is_open()))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn read_all(h: &Arc<Handle>) -> io::Result<String> {
        let mut s = String::new();
        (&*h.file()?).read_to_string(&mut s)?;
        Ok(s)
    }

    #[test]
    fn no_more_than_the_limit_stay_open_and_a_closed_one_opens_again() {
        let dir = tempfile::tempdir().unwrap();
        let handles: Vec<Arc<Handle>> = (0..OPEN_MAX * 3)
            .map(|i| {
                let path = dir.path().join(format!("f{i}"));
                std::fs::write(&path, format!("file {i}")).unwrap();
                Handle::open(&path).unwrap().0
            })
            .collect();
        // Other tests in this process open handles too; ours alone are counted.
        let ours = || handles.iter().filter(|h| h.is_open()).count();
        assert!(ours() <= OPEN_MAX, "{} open", ours());
        assert!(!handles[0].is_open(), "the least recently used was closed");
        for (i, h) in handles.iter().enumerate() {
            assert_eq!(read_all(h).unwrap(), format!("file {i}"));
            assert!(h.is_open());
            assert!(ours() <= OPEN_MAX, "{} open", ours());
        }
        assert!(open_count() <= OPEN_MAX);
    }

    #[test]
    fn a_file_held_by_a_reader_survives_its_handle_closing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("held");
        std::fs::write(&path, "held").unwrap();
        let (handle, held) = Handle::open(&path).unwrap();
        handle.close();
        let mut s = String::new();
        (&*held).read_to_string(&mut s).unwrap();
        assert_eq!(s, "held");
    }

    #[test]
    fn a_file_renamed_over_a_closed_handle_is_refused_as_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        std::fs::write(&path, "old").unwrap();
        let (handle, _) = Handle::open(&path).unwrap();
        let new = dir.path().join("segment.new");
        std::fs::write(&new, "new").unwrap();
        std::fs::rename(&new, &path).unwrap();
        // Still open: it reads what it opened.
        assert_eq!(read_all(&handle).unwrap(), "old");
        handle.close();
        let e = read_all(&handle).unwrap_err();
        assert!(is_replaced(&e), "{e}");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(handle.file().unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_renamed_file_opens_again_from_its_new_name() {
        let dir = tempfile::tempdir().unwrap();
        let (part, path) = (dir.path().join("a.part"), dir.path().join("a"));
        std::fs::write(&part, "whole").unwrap();
        let (handle, _) = Handle::open(&part).unwrap();
        std::fs::rename(&part, &path).unwrap();
        let moved = handle.renamed(&path);
        drop(handle);
        moved.close();
        assert_eq!(read_all(&moved).unwrap(), "whole");
    }
}
