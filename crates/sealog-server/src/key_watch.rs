//! Whether the key file's directory changed since it was last asked, told by the kernel.
//!
//! The key ring must see a key revoked on disk from the very next request on. Asking the file
//! system for the file's signature on every request did that at the price of a path lookup
//! each time (some 4% of the server's own work on a single-event append). An inotify watch on
//! the file's directory gives the same guarantee more cheaply: the kernel queues the event
//! inside the call that changes the directory (the write, the rename, the unlink), before
//! that call returns, so a request that starts after the change finds it queued. Reading an
//! empty queue costs one system call that returns at once.
//!
//! Any event at all in the directory only sends the ring to compare the file's signature, as
//! it did before; the watch never decides by itself that the keys changed. When the kernel
//! can no longer tell (the directory was removed or moved, the watch dropped), the watch says
//! so and the ring goes back to comparing on every request. So does the ring when the file
//! can change without its directory hearing of it (a symbolic link, a second name).

use std::path::Path;

/// What the queue held since it was last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Nothing changed in the directory.
    Nothing,
    /// Something did (or the queue overflowed): compare the file's signature.
    Something,
    /// The watch no longer follows the directory: compare on every request from now on.
    Blind,
}

/// A watch on the directory that holds the key file.
pub(crate) struct KeyFileWatch {
    #[cfg(target_os = "linux")]
    fd: std::os::fd::OwnedFd,
}

impl KeyFileWatch {
    /// A watch on the directory of `file`, or `None` where none can be made (another
    /// system, no such directory, the process's watches used up): the ring then compares
    /// the file's signature on every request.
    pub(crate) fn new(file: &Path) -> Option<Self> {
        #[cfg(target_os = "linux")]
        {
            linux::watch(file.parent()?)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = file;
            None
        }
    }

    /// Empties the queue and says what was in it.
    pub(crate) fn seen(&self) -> Seen {
        #[cfg(target_os = "linux")]
        {
            linux::drain(&self.fd)
        }
        #[cfg(not(target_os = "linux"))]
        {
            Seen::Blind
        }
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod linux {
    use std::ffi::CString;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    use super::{KeyFileWatch, Seen};

    /// Every way a directory's entries or their contents change.
    const CHANGES: u32 = libc::IN_MODIFY
        | libc::IN_ATTRIB
        | libc::IN_CLOSE_WRITE
        | libc::IN_MOVED_FROM
        | libc::IN_MOVED_TO
        | libc::IN_CREATE
        | libc::IN_DELETE
        | libc::IN_DELETE_SELF
        | libc::IN_MOVE_SELF;

    /// Events after which the watch no longer follows the directory at its path.
    const GONE: u32 =
        libc::IN_DELETE_SELF | libc::IN_MOVE_SELF | libc::IN_IGNORED | libc::IN_UNMOUNT;

    pub(super) fn watch(dir: &Path) -> Option<KeyFileWatch> {
        let path = CString::new(dir.as_os_str().as_bytes()).ok()?;
        // SAFETY: inotify_init1 takes flags only and returns a new descriptor or -1.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return None;
        }
        // SAFETY: `raw` is a descriptor just made and owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: `path` is a NUL-terminated string that outlives the call.
        let wd = unsafe {
            libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), CHANGES | libc::IN_ONLYDIR)
        };
        (wd >= 0).then_some(KeyFileWatch { fd })
    }

    pub(super) fn drain(fd: &OwnedFd) -> Seen {
        // Room for many events with names; a queue longer than that is read in turns.
        let mut buf = [0u8; 4096];
        let mut seen = Seen::Nothing;
        loop {
            // SAFETY: `buf` is writable for its whole length, which is what is passed.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                return match e.kind() {
                    std::io::ErrorKind::WouldBlock => seen,
                    std::io::ErrorKind::Interrupted => continue,
                    _ => Seen::Blind,
                };
            }
            if n == 0 {
                return Seen::Blind;
            }
            // Each event: wd i32, mask u32, cookie u32, len u32, then `len` bytes of name.
            let events = &buf[..n as usize];
            let mut at = 0;
            while at + 16 <= events.len() {
                let word = |i: usize| {
                    u32::from_ne_bytes(events[at + i..at + i + 4].try_into().expect("4 bytes"))
                };
                if word(4) & GONE != 0 {
                    return Seen::Blind;
                }
                seen = Seen::Something;
                at += 16 + word(12) as usize;
            }
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The watch says nothing until the directory changes, something once for everything
    /// since it was last asked, and blind once the directory is gone: every way the key file
    /// is changed (written in place, replaced by a rename, its mode changed, removed) is seen.
    #[test]
    fn a_watch_sees_each_change_to_the_directory_once_and_knows_when_it_is_gone() {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let dir = tmp.path().join("access");
        std::fs::create_dir(&dir).expect("the directory");
        let file = dir.join("keys");
        std::fs::write(&file, b"first").expect("the file");
        let watch = KeyFileWatch::new(&file).expect("a watch");
        assert_eq!(watch.seen(), Seen::Nothing, "nothing changed yet");
        std::fs::write(&file, b"second").expect("written in place");
        assert_eq!(watch.seen(), Seen::Something, "written in place");
        assert_eq!(watch.seen(), Seen::Nothing, "each change is told once");
        std::fs::write(dir.join("keys.new"), b"third").expect("written aside");
        std::fs::rename(dir.join("keys.new"), &file).expect("renamed over");
        assert_eq!(watch.seen(), Seen::Something, "replaced by a rename");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(watch.seen(), Seen::Something, "its mode changed");
        std::fs::remove_file(&file).expect("removed");
        assert_eq!(watch.seen(), Seen::Something, "removed");
        assert_eq!(watch.seen(), Seen::Nothing);
        std::fs::remove_dir(&dir).expect("the directory removed");
        assert_eq!(watch.seen(), Seen::Blind, "the directory is gone");
    }

    #[test]
    fn no_watch_is_made_on_a_directory_that_does_not_exist() {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        assert!(KeyFileWatch::new(&tmp.path().join("missing").join("keys")).is_none());
    }
}
