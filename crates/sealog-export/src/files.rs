//! Writing aside and renaming into place, and hashing what is written.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::Error;

/// `file` with `suffix` appended to its name.
pub(crate) fn sibling(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    file.with_file_name(name)
}

/// The directory a file is in (`.` for a bare name).
pub(crate) fn dir_of(file: &Path) -> &Path {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A file written under a temporary name beside its final one; dropped before `commit`, it
/// is removed, so an interrupted export leaves nothing under the final name.
pub(crate) struct Aside {
    tmp: PathBuf,
    final_path: PathBuf,
    done: bool,
}

impl Aside {
    /// The guard and the file to write, owner-only.
    pub(crate) fn create(final_path: &Path) -> Result<(Self, File), Error> {
        let name = final_path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = final_path.with_file_name(format!(".{name}.{}.partial", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        let guard = Aside {
            tmp,
            final_path: final_path.to_path_buf(),
            done: false,
        };
        Ok((guard, file))
    }

    /// Writes `bytes` as a whole file aside and syncs it.
    pub(crate) fn whole(final_path: &Path, bytes: &[u8]) -> Result<Self, Error> {
        let (guard, mut file) = Self::create(final_path)?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(&guard.tmp, e))?;
        Ok(guard)
    }

    pub(crate) fn tmp(&self) -> &Path {
        &self.tmp
    }

    /// Gives the (already synced) file its final name.
    pub(crate) fn commit(mut self) -> Result<(), Error> {
        fs::rename(&self.tmp, &self.final_path).map_err(|e| Error::io(&self.final_path, e))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Aside {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Makes renames in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// A writer that counts and hashes what passes through it.
pub(crate) struct Hashing<W> {
    pub(crate) inner: W,
    pub(crate) sha: Sha256,
    pub(crate) bytes: u64,
}

impl<W: Write> Hashing<W> {
    pub(crate) fn new(inner: W) -> Self {
        Hashing {
            inner,
            sha: Sha256::new(),
            bytes: 0,
        }
    }

    pub(crate) fn digest(&self) -> String {
        hex::encode(self.sha.clone().finalize())
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
