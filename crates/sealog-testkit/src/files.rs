//! File surgery: what a crash or an attacker leaves behind, done by hand to a copy.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Copies a data directory, even while a store writes it: a file the store removes
/// mid-copy (an index run merged away) is skipped, as a crash at that moment would lose it.
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
        match fs::copy(entry.path(), &target) {
            Ok(_) => {
                if let Ok(meta) = entry.metadata() {
                    let _ = fs::set_permissions(&target, meta.permissions());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("copy {}: {e}", entry.path().display()),
        }
    }
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
