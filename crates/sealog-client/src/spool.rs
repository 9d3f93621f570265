//! The dead-letter spool: events the server did not take yet, kept on disk in the order they
//! were emitted until they are replayed.
//!
//! A spool is a directory of append-only files (`spool-<first n>.sls`) of checksummed frames
//! (format in docs/clients.md, "The spool"). Every event carries its emission number `n`;
//! frames within a file are in increasing `n`, and replay merges the files by `n`, so an
//! event spooled late (a batch that failed after newer events had already overflowed to
//! disk) still goes out before every newer one. What has been replayed is remembered in
//! `cursor` (rewritten aside, unsynced: losing it only sends some events again, which ingest
//! answers `duplicate`); a file wholly replayed is deleted. `LOCK` keeps a second emitter
//! out of the directory.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Every frame starts with these bytes; after damage, reading resumes at the next frame that
/// starts with them and checks.
pub(crate) const MAGIC: &[u8; 4] = b"SLS1";
/// Magic, `n` (u64 LE), payload length (u32 LE), checksum (8 bytes).
pub(crate) const HEADER_BYTES: u64 = 24;
/// A frame announcing more than this is damage (the server takes events up to 1 MiB).
const PAYLOAD_BYTES_MAX: u32 = 16 << 20;
/// A file is not appended to past this size.
const ROTATE_BYTES: u64 = 16 << 20;

/// When spool writes reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpoolSync {
    /// Each write is synced before it returns (the default): a spooled event survives a
    /// crash of the machine.
    EveryWrite,
    /// Left to the operating system: a spooled event survives a crash of the process, not
    /// of the machine.
    Os,
}

/// First 8 bytes of SHA-256 over `n`, the length and the payload.
fn checksum(n: u64, payload: &[u8]) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(n.to_le_bytes());
    h.update((payload.len() as u32).to_le_bytes());
    h.update(payload);
    let d = h.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

/// One frame's bytes.
pub(crate) fn frame(n: u64, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(HEADER_BYTES as usize + payload.len());
    f.extend_from_slice(MAGIC);
    f.extend_from_slice(&n.to_le_bytes());
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(&checksum(n, payload));
    f.extend_from_slice(payload);
    f
}

/// A frame read back.
pub(crate) struct Frame {
    pub(crate) n: u64,
    pub(crate) payload: Vec<u8>,
    /// Which file, and the offset just past the frame.
    file: u64,
    end: u64,
}

struct SpoolFile {
    path: PathBuf,
    file: File,
    size: u64,
    /// Everything before this offset has been replayed.
    read_at: u64,
    last_n: u64,
    /// Damaged regions found so far: start → the next good frame's offset (or the end).
    skips: BTreeMap<u64, u64>,
}

/// What a read found at one offset.
enum Read {
    Frame(u64, Vec<u8>, u64),
    /// Damage: resume at this offset.
    Skip(u64),
    End,
}

impl SpoolFile {
    fn new(path: PathBuf, file: File, size: u64, read_at: u64, first: u64) -> Self {
        SpoolFile {
            path,
            file,
            size,
            read_at,
            last_n: first,
            skips: BTreeMap::new(),
        }
    }

    fn header_at(&self, at: u64) -> Option<(u64, u32, [u8; 8])> {
        if at + HEADER_BYTES > self.size {
            return None;
        }
        let mut h = [0u8; HEADER_BYTES as usize];
        self.file.read_exact_at(&mut h, at).ok()?;
        if &h[..4] != MAGIC {
            return None;
        }
        let n = u64::from_le_bytes(h[4..12].try_into().unwrap());
        let len = u32::from_le_bytes(h[12..16].try_into().unwrap());
        let sum: [u8; 8] = h[16..24].try_into().unwrap();
        (len <= PAYLOAD_BYTES_MAX && at + HEADER_BYTES + u64::from(len) <= self.size)
            .then_some((n, len, sum))
    }

    /// The whole frame at `at`, if one starts there and checks.
    fn frame_at(&self, at: u64) -> Option<(u64, Vec<u8>, u64)> {
        let (n, len, sum) = self.header_at(at)?;
        let mut payload = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut payload, at + HEADER_BYTES)
            .ok()?;
        (checksum(n, &payload) == sum).then(|| (n, payload, at + HEADER_BYTES + u64::from(len)))
    }

    fn read(&mut self, at: u64) -> (Read, bool) {
        if at >= self.size {
            return (Read::End, false);
        }
        if let Some(&next) = self.skips.get(&at) {
            return (Read::Skip(next), false);
        }
        if let Some((n, payload, end)) = self.frame_at(at) {
            return (Read::Frame(n, payload, end), false);
        }
        let next = self.resync(at + 1);
        self.skips.insert(at, next);
        (Read::Skip(next), true)
    }

    /// The offset of the first good frame at or after `from`, or the end of the file.
    fn resync(&self, mut from: u64) -> u64 {
        const CHUNK: u64 = 64 << 10;
        while from < self.size {
            let len = CHUNK.min(self.size - from) as usize;
            let mut buf = vec![0u8; len];
            if self.file.read_exact_at(&mut buf, from).is_err() {
                return self.size;
            }
            let mut i = 0;
            while let Some(k) = find(&buf[i..], MAGIC) {
                let at = from + (i + k) as u64;
                if self.frame_at(at).is_some() {
                    return at;
                }
                i += k + 1;
            }
            // A magic cut by the chunk's end is found by the next chunk.
            from += (len as u64).saturating_sub(MAGIC.len() as u64 - 1).max(1);
        }
        self.size
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// How long opening a spool waits for its lock before calling it taken. The lock belongs to
/// an open file, and a child process forked by any thread of this program holds a copy of
/// every descriptor until it execs: a spool closed a moment ago can still look taken.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Takes `lock`'s exclusive lock, trying again until `wait` has passed.
fn lock_within(lock: &File, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if lock.try_lock().is_ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What opening a spool found.
pub(crate) struct Opened {
    pub(crate) spool: Spool,
    /// One past the largest `n` in it: the emitter's first number.
    pub(crate) next_n: u64,
    /// Events waiting in it.
    pub(crate) pending: u64,
}

pub(crate) struct Spool {
    dir: PathBuf,
    /// Held while this spool is the directory's writer; `None` once released.
    lock: Option<File>,
    files: BTreeMap<u64, SpoolFile>,
    /// The file appended to, by its first `n`.
    tail: Option<u64>,
    bytes: u64,
    cap: u64,
    sync: SpoolSync,
    /// Damaged regions found, not yet taken by the emitter's counters.
    pub(crate) damage_found: u64,
}

impl Spool {
    /// Opens (creating) the spool in `dir`, taking its lock, and reads what it holds.
    pub(crate) fn open(dir: &Path, cap: u64, sync: SpoolSync) -> std::io::Result<Opened> {
        // The events wait here as the application sent them, personal values in clear:
        // the owner's alone, as the server's data directory is.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(dir.join("LOCK"))?;
        if !lock_within(&lock, LOCK_WAIT) {
            return Err(std::io::Error::other(format!(
                "the spool {} is in use by another emitter",
                dir.display()
            )));
        }
        let cursor = read_cursor(&dir.join("cursor"));
        let mut files = BTreeMap::new();
        let mut bytes = 0;
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(first) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("spool-"))
                .and_then(|n| n.strip_suffix(".sls"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let file = OpenOptions::new().read(true).append(true).open(&path)?;
            let size = file.metadata()?.len();
            bytes += size;
            let read_at = cursor.get(&first).copied().unwrap_or(0).min(size);
            files.insert(first, SpoolFile::new(path, file, size, read_at, first));
        }
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            lock: Some(lock),
            files,
            tail: None,
            bytes,
            cap,
            sync,
            damage_found: 0,
        };
        let (mut next_n, mut pending) = (0u64, 0u64);
        let keys: Vec<u64> = spool.files.keys().copied().collect();
        for k in keys {
            let f = spool.files.get_mut(&k).unwrap();
            next_n = next_n.max(k + 1);
            let mut at = 0;
            loop {
                let (read, damaged) = f.read(at);
                spool.damage_found += u64::from(damaged && at >= f.read_at);
                match read {
                    Read::Frame(n, _, end) => {
                        f.last_n = f.last_n.max(n);
                        next_n = next_n.max(n + 1);
                        pending += u64::from(at >= f.read_at);
                        at = end;
                    }
                    Read::Skip(next) => at = next,
                    Read::End => break,
                }
            }
        }
        spool.drop_consumed();
        Ok(Opened {
            spool,
            next_n,
            pending,
        })
    }

    /// Whether any event waits in the spool.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.files.values().all(|f| f.read_at >= f.size)
    }

    /// Gives the directory up to the next emitter: the lock is let go and this spool
    /// neither reads nor writes it again (an append is an error, a batch is empty).
    pub(crate) fn release(&mut self) {
        self.files.clear();
        self.tail = None;
        self.bytes = 0;
        self.lock = None;
    }

    fn released_error(&self) -> std::io::Error {
        std::io::Error::other(format!(
            "the spool {} was given up by its emitter",
            self.dir.display()
        ))
    }

    /// Appends events (in increasing `n`) and syncs them by the policy. Returns how many
    /// were written; the rest did not fit under the size cap.
    pub(crate) fn append(&mut self, items: &[(u64, &[u8])]) -> std::io::Result<usize> {
        if self.lock.is_none() {
            return Err(self.released_error());
        }
        let mut written = 0;
        let mut touched: Vec<u64> = Vec::new();
        let mut created = false;
        for &(n, payload) in items {
            let bytes = frame(n, payload);
            if self.bytes + bytes.len() as u64 > self.cap {
                continue;
            }
            let usable = self
                .tail
                .and_then(|t| self.files.get(&t))
                .is_some_and(|f| n > f.last_n && f.size < ROTATE_BYTES);
            if !usable {
                self.create(n)?;
                created = true;
            }
            let key = self.tail.expect("a tail file after create");
            let f = self.files.get_mut(&key).unwrap();
            f.file.write_all(&bytes)?;
            f.size += bytes.len() as u64;
            f.last_n = n;
            self.bytes += bytes.len() as u64;
            written += 1;
            if !touched.contains(&key) {
                touched.push(key);
            }
        }
        if self.sync == SpoolSync::EveryWrite {
            for k in touched {
                self.files[&k].file.sync_data()?;
            }
            if created {
                File::open(&self.dir)?.sync_all()?;
            }
        }
        Ok(written)
    }

    fn create(&mut self, first: u64) -> std::io::Result<()> {
        let path = self.dir.join(format!("spool-{first:020}.sls"));
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        self.files
            .insert(first, SpoolFile::new(path, file, 0, 0, first));
        self.tail = Some(first);
        Ok(())
    }

    /// The emission number of the oldest event waiting, if any.
    pub(crate) fn head_n(&mut self) -> Option<u64> {
        self.drop_consumed();
        let keys: Vec<u64> = self.files.keys().copied().collect();
        keys.into_iter()
            .filter_map(|k| self.frame_from(k, self.files[&k].read_at))
            .map(|(n, _, _)| n)
            .min()
    }

    /// The first good frame of file `k` at or after `at`: its `n`, payload and end offset.
    /// Damage on the way is stepped over (and counted once); damage with nothing unreplayed
    /// before it is passed for good.
    fn frame_from(&mut self, k: u64, mut at: u64) -> Option<(u64, Vec<u8>, u64)> {
        let f = self.files.get_mut(&k)?;
        loop {
            let (read, damaged) = f.read(at);
            self.damage_found += u64::from(damaged);
            match read {
                Read::Skip(next) => {
                    if f.read_at == at {
                        f.read_at = next;
                    }
                    at = next;
                }
                Read::End => return None,
                Read::Frame(n, payload, end) => return Some((n, payload, end)),
            }
        }
    }

    /// Up to `max_events` / `max_bytes` of the oldest events with `n` below `below`, in `n`
    /// order, without consuming them: the files' next frames merged, each file read again
    /// only when its frame was taken.
    pub(crate) fn read_batch(
        &mut self,
        below: Option<u64>,
        max_events: usize,
        max_bytes: usize,
    ) -> Vec<Frame> {
        let keys: Vec<u64> = self.files.keys().copied().collect();
        let mut heads: BTreeMap<u64, (u64, Vec<u8>, u64)> = keys
            .into_iter()
            .filter_map(|k| Some((k, self.frame_from(k, self.files[&k].read_at)?)))
            .collect();
        let mut out = Vec::new();
        let mut bytes = 0;
        while out.len() < max_events {
            let Some(file) = heads.iter().min_by_key(|(_, h)| h.0).map(|(k, _)| *k) else {
                break;
            };
            let (n, payload, end) = heads.remove(&file).expect("the chosen head");
            if below.is_some_and(|b| n >= b)
                || (!out.is_empty() && bytes + payload.len() > max_bytes)
            {
                break;
            }
            bytes += payload.len() + 1;
            if let Some(next) = self.frame_from(file, end) {
                heads.insert(file, next);
            }
            out.push(Frame {
                n,
                payload,
                file,
                end,
            });
        }
        out
    }

    /// Marks `frames` replayed: remembered in `cursor`; files wholly replayed
    /// are deleted.
    pub(crate) fn consume(&mut self, frames: &[Frame]) -> std::io::Result<()> {
        if self.lock.is_none() {
            // The next emitter owns the cursor now; these frames are sent again by it, and
            // the server answers the repeat as a duplicate.
            return Err(self.released_error());
        }
        for f in frames {
            if let Some(file) = self.files.get_mut(&f.file) {
                file.read_at = file.read_at.max(f.end);
            }
        }
        // Damage passed over at the start of a file is consumed with it.
        for f in self.files.values_mut() {
            while let Some(&next) = f.skips.get(&f.read_at) {
                f.read_at = next;
            }
        }
        self.drop_consumed();
        let mut text = String::new();
        for (k, f) in &self.files {
            text.push_str(&format!("{k} {}\n", f.read_at));
        }
        let tmp = self.dir.join("cursor.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(tmp, self.dir.join("cursor"))
    }

    fn drop_consumed(&mut self) {
        let done: Vec<u64> = self
            .files
            .iter()
            .filter(|(_, f)| f.read_at >= f.size)
            .map(|(k, _)| *k)
            .collect();
        for k in done {
            let f = self.files.remove(&k).unwrap();
            self.bytes -= f.size;
            let _ = std::fs::remove_file(&f.path);
            if self.tail == Some(k) {
                self.tail = None;
            }
        }
    }
}

/// Every event the spool in `dir` holds, replayed as a restarted emitter replays them: merged
/// by emission number, damage stepped over, each batch consumed before the next is read.
/// Public (and hidden) so that the fuzz targets and their replay test drive the reader the
/// emitter uses on bytes nobody wrote through it.
#[doc(hidden)]
pub fn replay_spool(dir: &Path) -> std::io::Result<Vec<(u64, Vec<u8>)>> {
    let mut spool = Spool::open(dir, u64::MAX, SpoolSync::Os)?.spool;
    let mut out = Vec::new();
    loop {
        let frames = spool.read_batch(None, 3, usize::MAX);
        if frames.is_empty() {
            return Ok(out);
        }
        out.extend(frames.iter().map(|f| (f.n, f.payload.clone())));
        spool.consume(&frames)?;
    }
}

fn read_cursor(path: &Path) -> BTreeMap<u64, u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once(' ')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> Opened {
        Spool::open(dir, u64::MAX, SpoolSync::Os).unwrap()
    }

    fn drain(s: &mut Spool) -> Vec<u64> {
        let mut all = Vec::new();
        loop {
            let frames = s.read_batch(None, 3, usize::MAX);
            if frames.is_empty() {
                return all;
            }
            all.extend(frames.iter().map(|f| f.n));
            s.consume(&frames).unwrap();
        }
    }

    #[test]
    fn a_spool_still_locked_a_moment_after_its_emitter_closed_it_opens_once_let_go() {
        let d = tempfile::tempdir().unwrap();
        drop(open(d.path()));
        // Another holder of the lock's open file (a forked child that has not exec'd yet).
        let holder = File::options()
            .write(true)
            .open(d.path().join("LOCK"))
            .unwrap();
        holder.try_lock().unwrap();
        let err = Spool::open(d.path(), u64::MAX, SpoolSync::Os)
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("in use by another emitter"),
            "{err}"
        );
        let released = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(holder);
        });
        open(d.path());
        released.join().unwrap();
    }

    #[test]
    fn replay_merges_files_by_emission_number() {
        let d = tempfile::tempdir().unwrap();
        let mut s = open(d.path()).spool;
        s.append(&[(10, b"a"), (11, b"b"), (60, b"x")]).unwrap();
        // A failed batch older than what overflowed: a file of its own, replayed first.
        s.append(&[(50, b"m"), (51, b"n")]).unwrap();
        s.append(&[(61, b"y")]).unwrap();
        assert_eq!(s.head_n(), Some(10));
        assert_eq!(drain(&mut s), vec![10, 11, 50, 51, 60, 61]);
        assert!(s.is_empty());
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            2,
            "LOCK and cursor"
        );
    }

    #[test]
    fn a_reopened_spool_resumes_after_what_was_replayed() {
        let d = tempfile::tempdir().unwrap();
        {
            let mut s = open(d.path()).spool;
            s.append(&[(1, b"a"), (2, b"b"), (3, b"c")]).unwrap();
            let frames = s.read_batch(None, 2, usize::MAX);
            s.consume(&frames).unwrap();
        }
        let o = open(d.path());
        assert_eq!((o.next_n, o.pending), (4, 1));
        let mut s = o.spool;
        assert_eq!(drain(&mut s), vec![3]);
    }

    #[test]
    fn a_damaged_frame_is_skipped_once_and_the_rest_replayed() {
        let d = tempfile::tempdir().unwrap();
        {
            let mut s = open(d.path()).spool;
            s.append(&[(1, b"first"), (2, b"second"), (3, b"third")])
                .unwrap();
        }
        let path = d.path().join(format!("spool-{:020}.sls", 1));
        let mut bytes = std::fs::read(&path).unwrap();
        let second = (HEADER_BYTES as usize) + 5 + HEADER_BYTES as usize + 2;
        bytes[second] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let o = open(d.path());
        assert_eq!(o.pending, 2);
        let mut s = o.spool;
        assert_eq!(s.damage_found, 1);
        assert_eq!(drain(&mut s), vec![1, 3]);
        assert_eq!(s.damage_found, 1, "counted once");
    }

    #[test]
    fn a_torn_tail_is_damage_at_the_end() {
        let d = tempfile::tempdir().unwrap();
        {
            let mut s = open(d.path()).spool;
            s.append(&[(1, b"whole"), (2, b"torn-off")]).unwrap();
        }
        let path = d.path().join(format!("spool-{:020}.sls", 1));
        let len = std::fs::metadata(&path).unwrap().len();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let o = open(d.path());
        assert_eq!((o.pending, o.next_n), (1, 2));
        let mut s = o.spool;
        assert_eq!(drain(&mut s), vec![1]);
        assert!(s.is_empty());
    }

    #[test]
    fn the_cap_refuses_what_does_not_fit() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Spool::open(d.path(), 100, SpoolSync::EveryWrite)
            .unwrap()
            .spool;
        let written = s.append(&[(1, &[b'x'; 40]), (2, &[b'y'; 40])]).unwrap();
        assert_eq!(written, 1);
    }

    #[test]
    fn a_second_emitter_is_kept_out() {
        let d = tempfile::tempdir().unwrap();
        let _first = open(d.path());
        let err = Spool::open(d.path(), u64::MAX, SpoolSync::Os)
            .err()
            .unwrap();
        assert!(err.to_string().contains("in use"), "{err}");
    }
}
