//! File surgery: what a crash or an attacker leaves behind, done by hand to a copy.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sealog_model::LogLayout;

/// Copies a data directory, even while a store writes it: a file the store removes
/// mid-copy (an index run merged away) is skipped, as a crash at that moment would lose it.
///
/// A copy taken while the background index flush runs may hold a manifest whose runs were
/// merged away before the copy reached them, which no crash leaves behind; a test that needs
/// a crash state waits for [`settled_index_end`] first.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create the copy");
    let Ok(entries) = fs::read_dir(from) else {
        return;
    };
    for entry in entries.flatten() {
        let target = to.join(entry.file_name());
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            copy_dir(&entry.path(), &target);
            continue;
        }
        match copy_retrying(&entry.path(), &target) {
            Ok(_) => {
                if let Ok(meta) = entry.metadata() {
                    let _ = fs::set_permissions(&target, meta.permissions());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A segment compressed while the copy was made: its compressed form was
                // renamed into place before the plain one went, so a crash keeps one of them.
                let compressed = entry.path().with_extension("zseg");
                if entry.path().extension().is_some_and(|x| x == "seg")
                    && fs::copy(&compressed, target.with_extension("zseg")).is_ok()
                {
                    let _ = fs::set_permissions(
                        target.with_extension("zseg"),
                        fs::Permissions::from_mode(0o444),
                    );
                }
            }
            Err(e) => panic!("copy {}: {e}", entry.path().display()),
        }
    }
}

/// `fs::copy`, again when a signal interrupted it (libFuzzer's timer, say).
fn copy_retrying(from: &Path, to: &Path) -> std::io::Result<u64> {
    loop {
        match fs::copy(from, to) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            done => return done,
        }
    }
}

/// The uid and gid a test drops to when a file's mode must bind it: `nobody`'s.
pub const NOBODY: u32 = 65_534;

/// Whether this process may open `path` for writing. A mode without write permission binds
/// every user but root (and holders of `CAP_DAC_OVERRIDE`), so a test that relies on it
/// checks this first.
pub fn opens_for_writing(path: &Path) -> bool {
    OpenOptions::new().write(true).open(path).is_ok()
}

/// Hands `dir` and everything under it to `uid`:`gid`, for a child process run as that user.
pub fn chown_tree(dir: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", dir.display()));
    for entry in fs::read_dir(dir).expect("read the directory").flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            chown_tree(&entry.path(), uid, gid);
        } else {
            std::os::unix::fs::chown(entry.path(), Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {}: {e}", entry.path().display()));
        }
    }
}

/// The running test binary, where another user can run it: hard-linked (or, across file
/// systems, copied) into a temporary directory anyone may enter, since the checkout may sit
/// where only its owner may go (`/root`). The directory must outlive the child.
pub fn current_exe_for_another_user() -> (tempfile::TempDir, std::path::PathBuf) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = tempfile::Builder::new()
        .prefix("sealog-test-exe-")
        .tempdir_in(std::env::temp_dir())
        .expect("a temporary directory");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let linked = dir.path().join(exe.file_name().expect("a file name"));
    if fs::hard_link(&exe, &linked).is_err() {
        fs::copy(&exe, &linked).expect("copy the test binary");
        fs::set_permissions(&linked, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    (dir, linked)
}

/// Makes a (sealed, read-only) file writable so a test can damage it; returns its old mode.
pub fn make_writable(path: &Path) -> u32 {
    let mode = fs::metadata(path).expect("metadata").permissions().mode();
    fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o200)).expect("chmod");
    mode
}

/// Flips every bit of the byte at `at`.
pub fn flip_byte(path: &Path, at: u64) {
    let mode = make_writable(path);
    let mut bytes = fs::read(path).expect("read");
    bytes[at as usize] ^= 0xff;
    fs::write(path, bytes).expect("write");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod back");
}

/// Cuts a file to `len` bytes.
pub fn truncate(path: &Path, len: u64) {
    let mode = make_writable(path);
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(len))
        .expect("truncate");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod back");
}

/// Appends bytes to a file (a torn write, or junk).
pub fn append_bytes(path: &Path, bytes: &[u8]) {
    let mode = make_writable(path);
    OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .expect("append");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod back");
}

/// Every file under `dir` whose bytes hold `needle` anywhere.
pub fn files_holding(dir: &Path, needle: &str) -> Vec<std::path::PathBuf> {
    all_files(dir)
        .into_iter()
        .filter(|p| {
            fs::read(p).is_ok_and(|b| {
                b.windows(needle.len().max(1))
                    .any(|w| w == needle.as_bytes())
            })
        })
        .collect()
}

/// Every regular file under `dir`, sorted.
pub fn all_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Where the index runs that `index/MANIFEST` names end, once the run files in `index/` are
/// exactly those it names (both as `docs/format.md` describes them): the background flush
/// is then done, and the writer writes no index file until its next commit. `None` while a
/// flush or merge is under way, and before the first run.
pub fn settled_index_end(layout: &LogLayout) -> Option<u64> {
    let manifest = fs::read_to_string(layout.index().join("MANIFEST")).ok()?;
    let mut lines = manifest.lines();
    assert_eq!(lines.next(), Some("sealog-index 6"), "{manifest}");
    let named: BTreeSet<(u64, u64)> = lines
        .filter_map(|l| l.strip_prefix("run "))
        .map(|l| {
            let f: Vec<u64> = l
                .split(' ')
                .map(|x| x.parse().unwrap_or_else(|_| panic!("manifest line {l:?}")))
                .collect();
            (f[0], f[1])
        })
        .collect();
    let on_disk: BTreeSet<(u64, u64)> = all_files(&layout.index())
        .iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.strip_prefix("run-")?;
            let (first, end) = name.split('.').next()?.split_once('-')?;
            Some((first.parse().ok()?, end.parse().ok()?))
        })
        .collect();
    if named != on_disk {
        return None;
    }
    named.last().map(|&(_, end)| end)
}
