//! The file operations by which the store changes what is on disk, behind one trait.
//!
//! Every write, truncation, sync, rename and removal of the log's segments, positions, tree
//! nodes, index runs and their manifest goes through an [`Io`], so a test can fail any one of
//! them or keep only what a sync promised (`testing`, with the `fault-injection` feature).
//! Reads, and the files the store only creates once (keys, the lock, checkpoints), go to the
//! operating system directly: a failing read already answers an error where it happens.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use crate::StoreError;

#[cfg(feature = "fault-injection")]
pub mod testing;

/// The operations, each on a file the caller opened at `path` (named for errors and for
/// implementations that keep state per file).
pub trait FileSystem: Send + Sync {
    /// Writes all of `buf` at `offset`.
    fn write_at(&self, file: &File, path: &Path, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at the file's position (its end, for files opened to append).
    fn append(&self, file: &File, path: &Path, buf: &[u8]) -> io::Result<()>;
    /// fdatasync: the file's bytes are durable.
    fn sync_data(&self, file: &File, path: &Path) -> io::Result<()>;
    /// fsync: the file's bytes and metadata are durable.
    fn sync_all(&self, file: &File, path: &Path) -> io::Result<()>;
    fn set_len(&self, file: &File, path: &Path, len: u64) -> io::Result<()>;
    /// Durable only once the directory is synced.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Durable only once the directory is synced.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (created, renamed, removed files) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Reads at the file's position, as read(2): fewer bytes than asked is no error.
    fn read(&self, file: &File, path: &Path, buf: &mut [u8]) -> io::Result<usize>;
}

/// The operating system itself.
struct Os;

/// The operating system, for a test's file system to pass operations on to.
pub fn operating_system() -> Arc<dyn FileSystem> {
    Arc::new(Os)
}

impl FileSystem for Os {
    fn write_at(&self, file: &File, _: &Path, buf: &[u8], offset: u64) -> io::Result<()> {
        file.write_all_at(buf, offset)
    }

    fn append(&self, mut file: &File, _: &Path, buf: &[u8]) -> io::Result<()> {
        file.write_all(buf)
    }

    fn sync_data(&self, file: &File, _: &Path) -> io::Result<()> {
        file.sync_data()
    }

    fn sync_all(&self, file: &File, _: &Path) -> io::Result<()> {
        file.sync_all()
    }

    fn set_len(&self, file: &File, _: &Path, len: u64) -> io::Result<()> {
        file.set_len(len)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn read(&self, mut file: &File, _: &Path, buf: &mut [u8]) -> io::Result<usize> {
        file.read(buf)
    }
}

/// The store's handle on a [`FileSystem`]: the operating system unless a test says otherwise.
/// Its methods name the file in their errors.
#[derive(Clone)]
pub struct Io(Arc<dyn FileSystem>);

impl Default for Io {
    fn default() -> Self {
        Io(Arc::new(Os))
    }
}

impl fmt::Debug for Io {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Io")
    }
}

impl Io {
    pub fn new(fs: Arc<dyn FileSystem>) -> Self {
        Io(fs)
    }

    pub(crate) fn write_at(
        &self,
        file: &File,
        path: &Path,
        buf: &[u8],
        offset: u64,
    ) -> Result<(), StoreError> {
        self.0
            .write_at(file, path, buf, offset)
            .map_err(|e| StoreError::io(path, e))
    }

    pub(crate) fn append(&self, file: &File, path: &Path, buf: &[u8]) -> Result<(), StoreError> {
        self.0
            .append(file, path, buf)
            .map_err(|e| StoreError::io(path, e))
    }

    pub(crate) fn sync_data(&self, file: &File, path: &Path) -> Result<(), StoreError> {
        self.0
            .sync_data(file, path)
            .map_err(|e| StoreError::io(path, e))
    }

    pub(crate) fn sync_all(&self, file: &File, path: &Path) -> Result<(), StoreError> {
        self.0
            .sync_all(file, path)
            .map_err(|e| StoreError::io(path, e))
    }

    pub(crate) fn set_len(&self, file: &File, path: &Path, len: u64) -> Result<(), StoreError> {
        self.0
            .set_len(file, path, len)
            .map_err(|e| StoreError::io(path, e))
    }

    pub(crate) fn rename(&self, from: &Path, to: &Path) -> Result<(), StoreError> {
        self.0.rename(from, to).map_err(|e| StoreError::io(to, e))
    }

    pub(crate) fn remove_file(&self, path: &Path) -> Result<(), StoreError> {
        self.0
            .remove_file(path)
            .map_err(|e| StoreError::io(path, e))
    }

    pub(crate) fn sync_dir(&self, dir: &Path) -> Result<(), StoreError> {
        self.0.sync_dir(dir).map_err(|e| StoreError::io(dir, e))
    }

    /// A `Write` that appends to `file` through this handle, for buffered writers.
    pub(crate) fn appender<'a>(&'a self, file: &'a File, path: &'a Path) -> Appender<'a> {
        Appender {
            io: self,
            file,
            path,
        }
    }

    /// Replaces `path` with `bytes` atomically and durably: a crash leaves the old or the new.
    pub(crate) fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        self.write_file(&tmp, bytes)?;
        self.rename(&tmp, path)?;
        self.sync_dir(path.parent().unwrap_or(Path::new(".")))
    }

    /// Creates (or empties) the file at `path`, writes `bytes` and syncs it.
    pub(crate) fn write_file(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let file = File::create(path).map_err(|e| StoreError::io(path, e))?;
        self.append(&file, path, bytes)?;
        self.sync_all(&file, path)
    }
}

/// A file read from its start through an [`Io`] (recovery's pass over a segment).
pub(crate) struct Reader {
    io: Io,
    file: File,
    path: PathBuf,
}

impl Io {
    pub(crate) fn reader(&self, file: File, path: &Path) -> Reader {
        Reader {
            io: self.clone(),
            file,
            path: path.to_path_buf(),
        }
    }
}

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.0.read(&self.file, &self.path, buf)
    }
}

impl Seek for Reader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.file.seek(to)
    }
}

pub(crate) struct Appender<'a> {
    io: &'a Io,
    file: &'a File,
    path: &'a Path,
}

impl Write for Appender<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.io.0.append(self.file, self.path, buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
