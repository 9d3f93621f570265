//! Two file systems for tests, each over another one (usually the operating system's):
//!
//! - [`Faults`] fails a chosen operation — the Nth write, sync, truncation, rename, removal
//!   or directory sync from now, optionally only on paths containing some text — with EIO,
//!   ENOSPC, a torn write (some of the bytes written, then EIO), or a sync that ran and then
//!   reported EIO, as a failing disk does.
//! - [`Crashable`] passes everything through and remembers what the syncs promised: a file's
//!   bytes as of its last sync, and a directory's names as of its last sync. Its
//!   [`Crashable::crash_image`] writes the directory as a power cut would leave it: files
//!   with their synced bytes (and, by a seeded choice, some of the bytes written after, from
//!   the first one that changed),
//!   names only where their directory was synced, removals and renames undone where it was
//!   not.
//!
//! Files the store changes without the seam (keys, checkpoints, the lock) are copied as they
//! lie: the image is strict only about what goes through the seam.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::FileSystem;

/// An operation [`Faults`] can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `write_at` and `append`.
    Write,
    /// `sync_data` and `sync_all`.
    Sync,
    SetLen,
    Rename,
    Remove,
    SyncDir,
    /// Recovery's reads of a segment.
    Read,
}

/// How the chosen operation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Nothing is done; EIO.
    Eio,
    /// Nothing is done; ENOSPC.
    NoSpace,
    /// A write: its first `n` bytes (at most all of them) reach the file, then EIO. A read:
    /// at most `n` bytes are read (at least one), which read(2) may always do.
    Torn(usize),
    /// A sync runs, then reports EIO: the caller cannot know what is durable.
    AfterSync,
}

/// The one fault planned.
#[derive(Debug, Clone)]
pub struct Plan {
    pub op: Op,
    /// Counting from 1, among the operations of `op` on matching paths from now.
    pub nth: u64,
    pub fault: Fault,
    /// Only paths containing this text count (all paths when `None`).
    pub path_contains: Option<String>,
}

/// What [`Faults`] did.
#[derive(Debug, Clone)]
pub struct Fired {
    pub plan: Plan,
    pub path: PathBuf,
}

/// Fails the planned operation once.
pub struct Faults {
    inner: Arc<dyn FileSystem>,
    /// The planned fault, and every one fired so far.
    state: Mutex<(Option<Plan>, Vec<Fired>)>,
}

impl Faults {
    pub fn new(inner: Arc<dyn FileSystem>) -> Self {
        Faults {
            inner,
            state: Mutex::new((None, Vec::new())),
        }
    }

    /// Plans a fault, replacing any planned one.
    pub fn arm(&self, plan: Plan) {
        self.state.lock().expect("faults lock").0 = Some(plan);
    }

    pub fn disarm(&self) {
        self.state.lock().expect("faults lock").0 = None;
    }

    /// Every fault fired so far, the first first.
    pub fn fired(&self) -> Vec<Fired> {
        self.state.lock().expect("faults lock").1.clone()
    }

    /// The fault to apply to this operation, if it is the planned one.
    fn due(&self, op: Op, path: &Path) -> Option<Fault> {
        let mut state = self.state.lock().expect("faults lock");
        let plan = state.0.as_mut()?;
        let matches = plan.op == op
            && plan
                .path_contains
                .as_deref()
                .is_none_or(|t| path.to_string_lossy().contains(t));
        if !matches {
            return None;
        }
        plan.nth -= 1;
        if plan.nth > 0 {
            return None;
        }
        let plan = state.0.take().expect("planned");
        let fault = plan.fault;
        state.1.push(Fired {
            plan,
            path: path.to_path_buf(),
        });
        Some(fault)
    }
}

fn failure(fault: Fault) -> io::Error {
    match fault {
        Fault::NoSpace => io::Error::from_raw_os_error(libc::ENOSPC),
        _ => io::Error::from_raw_os_error(libc::EIO),
    }
}

impl Faults {
    /// Runs a write unless it is due to fail; a torn one writes the bytes `part` is given.
    fn write(
        &self,
        path: &Path,
        buf: &[u8],
        whole: impl FnOnce(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        match self.due(Op::Write, path) {
            None => whole(buf),
            Some(Fault::Torn(n)) => {
                whole(&buf[..n.min(buf.len())])?;
                Err(failure(Fault::Eio))
            }
            Some(f) => Err(failure(f)),
        }
    }

    /// Runs another operation unless it is due to fail.
    fn other(&self, op: Op, path: &Path, run: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        match self.due(op, path) {
            None => run(),
            Some(Fault::AfterSync) => {
                run()?;
                Err(failure(Fault::Eio))
            }
            Some(f) => Err(failure(f)),
        }
    }
}

impl FileSystem for Faults {
    fn write_at(&self, file: &File, path: &Path, buf: &[u8], offset: u64) -> io::Result<()> {
        self.write(path, buf, |b| self.inner.write_at(file, path, b, offset))
    }

    fn append(&self, file: &File, path: &Path, buf: &[u8]) -> io::Result<()> {
        self.write(path, buf, |b| self.inner.append(file, path, b))
    }

    fn sync_data(&self, file: &File, path: &Path) -> io::Result<()> {
        self.other(Op::Sync, path, || self.inner.sync_data(file, path))
    }

    fn sync_all(&self, file: &File, path: &Path) -> io::Result<()> {
        self.other(Op::Sync, path, || self.inner.sync_all(file, path))
    }

    fn set_len(&self, file: &File, path: &Path, len: u64) -> io::Result<()> {
        self.other(Op::SetLen, path, || self.inner.set_len(file, path, len))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.other(Op::Rename, to, || self.inner.rename(from, to))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.other(Op::Remove, path, || self.inner.remove_file(path))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.other(Op::SyncDir, dir, || self.inner.sync_dir(dir))
    }

    fn read(&self, file: &File, path: &Path, buf: &mut [u8]) -> io::Result<usize> {
        match self.due(Op::Read, path) {
            None | Some(Fault::AfterSync) => self.inner.read(file, path, buf),
            Some(Fault::Torn(n)) => {
                let short = n.clamp(1, buf.len().max(1)).min(buf.len());
                self.inner.read(file, path, &mut buf[..short])
            }
            Some(f) => Err(failure(f)),
        }
    }
}

/// A directory's names as of its last sync.
enum Name {
    /// A file the seam has changed: its identity.
    Tracked(u64),
    /// A file only ever changed outside the seam: copied as it lies.
    Untracked,
}

#[derive(Default)]
struct Promised {
    next_id: u64,
    /// Files the seam has changed, by their current path.
    live: HashMap<PathBuf, u64>,
    /// Each tracked file's bytes as of its last sync.
    synced: HashMap<u64, Vec<u8>>,
    /// Each directory's names as of its last sync.
    names: HashMap<PathBuf, HashMap<OsString, Name>>,
}

impl Promised {
    /// The identity of the file at `path`, tracking it from now on. Bytes it held before the
    /// seam first changed it were written before this file system looked, so they count as
    /// synced.
    fn track(&mut self, path: &Path) -> u64 {
        if let Some(&id) = self.live.get(path) {
            return id;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.live.insert(path.to_path_buf(), id);
        self.synced.insert(id, fs::read(path).unwrap_or_default());
        if let (Some(dir), Some(name)) = (path.parent(), path.file_name())
            && let Some(names) = self.names.get_mut(dir)
            && let Some(n) = names.get_mut(name)
        {
            *n = Name::Tracked(id);
        }
        id
    }
}

/// Passes every operation through and keeps what the syncs promised.
pub struct Crashable {
    inner: Arc<dyn FileSystem>,
    promised: Mutex<Promised>,
}

impl Crashable {
    /// Over the directory tree at `root` as it is now, all of it taken as durable.
    pub fn new(inner: Arc<dyn FileSystem>, root: &Path) -> io::Result<Self> {
        let mut promised = Promised::default();
        for dir in dirs_under(root)? {
            let mut names = HashMap::new();
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                if entry.file_type()?.is_file() {
                    names.insert(entry.file_name(), Name::Untracked);
                }
            }
            promised.names.insert(dir, names);
        }
        Ok(Crashable {
            inner,
            promised: Mutex::new(promised),
        })
    }

    fn promised(&self) -> std::sync::MutexGuard<'_, Promised> {
        self.promised.lock().expect("crashable lock")
    }

    /// The file's bytes now are what a sync of it promised.
    fn synced(&self, path: &Path) -> io::Result<()> {
        let mut p = self.promised();
        let id = p.track(path);
        p.synced.insert(id, fs::read(path)?);
        Ok(())
    }

    /// Writes into `into` (an empty directory) what a power cut at this moment would leave
    /// of `root`. `seed` chooses, per file, how much of what was written after its last
    /// sync reached the disk anyway (often nothing, sometimes a torn part, sometimes all).
    pub fn crash_image(&self, root: &Path, into: &Path, seed: u64) -> io::Result<()> {
        let p = self.promised();
        let mut rng = seed | 1;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for dir in dirs_under(root)? {
            let rel = dir.strip_prefix(root).expect("under root");
            let out = into.join(rel);
            fs::create_dir_all(&out)?;
            // What the directory durably names, then files outside the seam it names now.
            let mut files: Vec<(OsString, Option<u64>)> = match p.names.get(&dir) {
                Some(names) => names
                    .iter()
                    .map(|(n, what)| {
                        let id = match what {
                            Name::Tracked(id) => Some(*id),
                            Name::Untracked => None,
                        };
                        (n.clone(), id)
                    })
                    .collect(),
                None => Vec::new(),
            };
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                let tracked = p.live.contains_key(&entry.path());
                if entry.file_type()?.is_file()
                    && !tracked
                    && !files.iter().any(|(n, _)| *n == entry.file_name())
                {
                    files.push((entry.file_name(), None));
                }
            }
            for (name, id) in files {
                let now = dir.join(&name);
                let bytes = match id {
                    None => match fs::read(&now) {
                        Ok(b) => b,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    },
                    Some(id) => {
                        let mut bytes = p.synced.get(&id).cloned().unwrap_or_default();
                        // Bytes written after the sync may have reached the disk too.
                        let current = p
                            .live
                            .iter()
                            .find(|(_, i)| **i == id)
                            .and_then(|(path, _)| fs::read(path).ok());
                        // From the first byte that changed since the sync (an append past
                        // its end, or an overwrite of synced bytes, such as the zeros a
                        // segment's writer lays down ahead of its frames), none, a prefix or
                        // all of what is there now.
                        if let Some(current) = current {
                            let from = bytes
                                .iter()
                                .zip(&current)
                                .position(|(a, b)| a != b)
                                .unwrap_or(bytes.len().min(current.len()));
                            if current.len() > from {
                                let changed = current.len() - from;
                                let keep = match next() % 4 {
                                    0 | 1 => 0,
                                    2 => (next() as usize) % (changed + 1),
                                    _ => changed,
                                };
                                let mut image = current[..from + keep].to_vec();
                                if image.len() < bytes.len() {
                                    image.extend_from_slice(&bytes[image.len()..]);
                                }
                                bytes = image;
                            }
                        }
                        bytes
                    }
                };
                let target = out.join(&name);
                fs::write(&target, &bytes)?;
                if let Ok(meta) = fs::metadata(&now) {
                    fs::set_permissions(&target, meta.permissions())?;
                }
            }
        }
        Ok(())
    }
}

/// `root` and every directory below it.
fn dirs_under(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        for entry in fs::read_dir(&out[i])? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                out.push(entry.path());
            }
        }
        i += 1;
    }
    Ok(out)
}

impl FileSystem for Crashable {
    fn write_at(&self, file: &File, path: &Path, buf: &[u8], offset: u64) -> io::Result<()> {
        self.promised().track(path);
        self.inner.write_at(file, path, buf, offset)
    }

    fn append(&self, file: &File, path: &Path, buf: &[u8]) -> io::Result<()> {
        self.promised().track(path);
        self.inner.append(file, path, buf)
    }

    fn sync_data(&self, file: &File, path: &Path) -> io::Result<()> {
        self.inner.sync_data(file, path)?;
        self.synced(path)
    }

    fn sync_all(&self, file: &File, path: &Path) -> io::Result<()> {
        self.inner.sync_all(file, path)?;
        self.synced(path)
    }

    fn set_len(&self, file: &File, path: &Path, len: u64) -> io::Result<()> {
        self.promised().track(path);
        self.inner.set_len(file, path, len)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut p = self.promised();
        // Both keep their bytes for the names the directory still durably gives them.
        p.track(from);
        if to.exists() {
            p.track(to);
        }
        self.inner.rename(from, to)?;
        match p.live.remove(from) {
            Some(id) => p.live.insert(to.to_path_buf(), id),
            None => p.live.remove(to),
        };
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut p = self.promised();
        // Its bytes stay for as long as the directory durably names it.
        p.track(path);
        self.inner.remove_file(path)?;
        p.live.remove(path);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut p = self.promised();
        self.inner.sync_dir(dir)?;
        let mut names = HashMap::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                let name = match p.live.get(&entry.path()) {
                    Some(&id) => Name::Tracked(id),
                    None => Name::Untracked,
                };
                names.insert(entry.file_name(), name);
            }
        }
        p.names.insert(dir.to_path_buf(), names);
        Ok(())
    }

    fn read(&self, file: &File, path: &Path, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(file, path, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::operating_system;

    fn image(c: &Crashable, root: &Path, seed: u64) -> tempfile::TempDir {
        let out = tempfile::tempdir().unwrap();
        c.crash_image(root, out.path(), seed).unwrap();
        out
    }

    #[test]
    fn a_cut_keeps_only_what_syncs_promised() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::write(r.join("before"), b"old").unwrap();
        let c = Crashable::new(operating_system(), r).unwrap();
        // Written and synced, its name never synced: gone.
        let a = File::create(r.join("a")).unwrap();
        c.append(&a, &r.join("a"), b"aaaa").unwrap();
        c.sync_data(&a, &r.join("a")).unwrap();
        let img = image(&c, r, 1);
        assert!(!img.path().join("a").exists());
        assert_eq!(fs::read(img.path().join("before")).unwrap(), b"old");
        // Its name synced: there, with what was synced; a later write not yet (seed 1
        // keeps none of the unsynced bytes).
        c.sync_dir(r).unwrap();
        c.append(&a, &r.join("a"), b"bbbb").unwrap();
        let img = image(&c, r, 1);
        assert_eq!(fs::read(img.path().join("a")).unwrap(), b"aaaa");
        // Some seed keeps all of the unsynced bytes, some a part: never other bytes.
        let kept: Vec<Vec<u8>> = (1..40)
            .map(|s| fs::read(image(&c, r, s).path().join("a")).unwrap())
            .collect();
        assert!(
            kept.iter()
                .all(|k| b"aaaabbbb".starts_with(k) && k.len() >= 4)
        );
        assert!(kept.iter().any(|k| k.len() == 8));
        // A rename and a removal are undone until the directory is synced.
        c.sync_data(&a, &r.join("a")).unwrap();
        c.rename(&r.join("a"), &r.join("b")).unwrap();
        c.remove_file(&r.join("before")).unwrap();
        let img = image(&c, r, 1);
        assert_eq!(fs::read(img.path().join("a")).unwrap(), b"aaaabbbb");
        assert!(!img.path().join("b").exists());
        assert_eq!(fs::read(img.path().join("before")).unwrap(), b"old");
        c.sync_dir(r).unwrap();
        let img = image(&c, r, 1);
        assert!(!img.path().join("a").exists() && !img.path().join("before").exists());
        assert_eq!(fs::read(img.path().join("b")).unwrap(), b"aaaabbbb");
    }

    #[test]
    fn the_planned_fault_fires_once_on_its_nth_matching_operation() {
        let root = tempfile::tempdir().unwrap();
        let f = Faults::new(operating_system());
        let (x, y) = (root.path().join("x.seg"), root.path().join("y.run"));
        let (fx, fy) = (File::create(&x).unwrap(), File::create(&y).unwrap());
        f.arm(Plan {
            op: Op::Write,
            nth: 2,
            fault: Fault::Torn(3),
            path_contains: Some(".seg".into()),
        });
        f.append(&fy, &y, b"other").unwrap();
        f.append(&fx, &x, b"first").unwrap();
        let e = f.append(&fx, &x, b"second").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO));
        assert_eq!(fs::read(&x).unwrap(), b"firstsec");
        f.append(&fx, &x, b"!").unwrap();
        assert_eq!(f.fired().len(), 1);
        assert_eq!(f.fired()[0].path, x);
        f.arm(Plan {
            op: Op::Sync,
            nth: 1,
            fault: Fault::NoSpace,
            path_contains: None,
        });
        let e = f.sync_data(&fy, &y).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        f.sync_data(&fy, &y).unwrap();
    }
}
