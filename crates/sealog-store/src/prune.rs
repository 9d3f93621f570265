//! Retention's rewrite of sealed segments: the one sanctioned change to committed bytes.
//!
//! A pruned record's payload becomes a [`Stub`] of the same length, so no frame moves, no
//! position changes and the tree is untouched. Each segment is rewritten aside
//! (`<segment>.prune`), synced, read back and checked frame by frame against the stored
//! tree, made read-only, and only then renamed over the old one; a crash at any step leaves
//! the old segment or the new, whole, and the next opening deletes a leftover. A compressed
//! segment is rewritten compressed. The index files keep the pruned records' postings until
//! the next opening rebuilds them (`index/PRUNED`); meanwhile the index in memory answers a
//! pruned record by its stub's keys alone.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sealog_merkle::NodeReader;
use sealog_model::record::read_stored;

use crate::contract::{Id, Indexer, Key};
use crate::segment::{self, HEADER_BYTES, SegmentFile, Stub};
use crate::{Shared, StoreError};

const LEFTOVER: &str = ".prune";

/// A record to prune, and what of its caller's its stub keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prune {
    pub seq: u64,
    /// The record it links to (for the ledger, the one it superseded).
    pub link: Option<Id>,
    /// One key it stays found by (for the ledger, its supersedes chain).
    pub key: Option<Key>,
}

fn aside(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(LEFTOVER);
    PathBuf::from(name)
}

/// Deletes what a rewrite or a compression interrupted by a crash left beside the
/// segments, and a plain segment whose compressed form was renamed into place before the
/// crash.
pub(crate) fn remove_leftovers(io: &crate::io::Io, log_dir: &Path) -> Result<(), StoreError> {
    let Ok(entries) = fs::read_dir(log_dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry.map_err(|e| StoreError::io(log_dir, e))?.path();
        let name = path.to_str().unwrap_or_default();
        if name.ends_with(LEFTOVER) || name.ends_with(crate::zseg::PART) {
            io.remove_file(&path)?;
        }
    }
    for plain in segment::superseded(log_dir)? {
        io.remove_file(&plain)?;
    }
    Ok(())
}

/// Prunes `records` (every one in a sealed segment, below `end`); returns how many were
/// records until now (a stub already there is left as it is).
pub(crate) fn prune(
    shared: &Shared,
    indexer: &dyn Indexer,
    records: &[Prune],
    end: u64,
) -> Result<u64, StoreError> {
    let _one_at_a_time = shared.pruning.lock().expect("prune lock");
    let segments: Vec<(u64, Arc<SegmentFile>)> =
        shared.segments.read().expect("segments lock").clone();
    let mut by_segment: BTreeMap<usize, BTreeMap<u64, Prune>> = BTreeMap::new();
    for p in records {
        let seq = p.seq;
        if seq >= end {
            return Err(StoreError::InvalidArgument(format!(
                "record {seq} is not in the log ({end} records)"
            )));
        }
        let i = segments.partition_point(|(first, _)| *first <= seq) - 1;
        if i + 1 == segments.len() {
            return Err(StoreError::InvalidArgument(format!(
                "record {seq} is in the segment being appended to; only sealed segments are rewritten"
            )));
        }
        by_segment.entry(i).or_default().insert(seq, *p);
    }
    let mut pruned = 0;
    for (i, wanted) in by_segment {
        let (first, seg) = &segments[i];
        let first = *first;
        let path = seg.path().to_path_buf();
        let plain = seg.plain_bytes().map_err(|e| StoreError::io(&path, e))?;
        let (bytes, stubs) = rewrite(shared, &path, first, plain, &wanted)?;
        if stubs.is_empty() {
            continue;
        }
        let kept: Vec<(u64, Vec<Key>)> = stubs
            .iter()
            .map(|stub| (stub.seq, indexer.stub_keys(stub)))
            .collect();
        // Before the segment changes: a kill after its rewrite must still leave the marker
        // that says the index holds keys the log no longer carries, and which.
        mark(shared, &kept)?;
        // A compressed segment stays compressed: the same blocks of the rewritten bytes.
        let compressed = segment::is_compressed(&path);
        let on_disk = if compressed {
            let mut out = Vec::with_capacity(bytes.len() / 2);
            crate::zseg::write(&bytes, first, &mut out)
                .map_err(|m| StoreError::Corrupted(format!("{}: {m}", path.display())))?;
            out
        } else {
            bytes
        };
        replace(&shared.io, &path, &on_disk, |written| {
            let back = if compressed {
                crate::zseg::Zseg::open(written, first)?.plain()
            } else {
                fs::read(written)
            };
            check(
                shared,
                &back.map_err(|e| StoreError::io(written, e))?,
                first,
            )
        })?;
        shared.segments.write().expect("segments lock")[i].1 =
            Arc::new(SegmentFile::open_path(&path, first)?);
        shared.index.write().expect("index lock").note_pruned(kept);
        pruned += stubs.len() as u64;
    }
    Ok(pruned)
}

/// The first line of `index/PRUNED`; each line after it is a record pruned since the index
/// was built: its seq, then the hex of each key its stub keeps.
const MARKER_HEADER: &str = "retention pruned records after this index was built";

/// Adds `kept` to `index/PRUNED`, creating it on the first prune since the index was built.
fn mark(shared: &Shared, kept: &[(u64, Vec<Key>)]) -> Result<(), StoreError> {
    let path = shared.layout.pruned_marker();
    let mut lines = String::new();
    for (seq, keys) in kept {
        lines.push_str(&seq.to_string());
        for k in keys {
            lines.push(' ');
            lines.push_str(&hex::encode(k));
        }
        lines.push('\n');
    }
    if !path.exists() {
        return shared
            .io
            .write_atomic(&path, format!("{MARKER_HEADER}\n{lines}").as_bytes());
    }
    let file = fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|e| StoreError::io(&path, e))?;
    shared.io.append(&file, &path, lines.as_bytes())?;
    shared.io.sync_data(&file, &path)
}

/// The records `index/PRUNED` lists and the keys each keeps; a line that does not parse or
/// end (the last, torn by a crash or still being written) is passed over.
pub(crate) fn marked(text: &str) -> Vec<(u64, Vec<Key>)> {
    let key = |h: &str| -> Option<Key> {
        let mut k = [0u8; 16];
        hex::decode_to_slice(h, &mut k).ok()?;
        Some(k)
    };
    text.split_inclusive('\n')
        .skip(1)
        .filter_map(|line| {
            let mut parts = line.strip_suffix('\n')?.split(' ');
            let seq = parts.next()?.parse().ok()?;
            let keys = parts.map(key).collect::<Option<Vec<Key>>>()?;
            Some((seq, keys))
        })
        .collect()
}

/// The segment's bytes with `wanted` records replaced by stubs, and the stubs written.
fn rewrite(
    shared: &Shared,
    path: &Path,
    first: u64,
    mut bytes: Vec<u8>,
    wanted: &BTreeMap<u64, Prune>,
) -> Result<(Vec<u8>, Vec<Stub>), StoreError> {
    segment::check_header(&bytes, first)
        .map_err(|m| StoreError::Corrupted(format!("{}: {m}", path.display())))?;
    let mut at = HEADER_BYTES as usize;
    let mut seq = first;
    let mut stubs = Vec::new();
    let bad = |at: usize, seq: u64, m: String| {
        StoreError::Corrupted(format!(
            "{} at offset {at} (seq {seq}): {m}; nothing was pruned there",
            path.display()
        ))
    };
    while at < bytes.len() {
        let (payload, len) =
            segment::decode_frame(&bytes[at..]).map_err(|e| bad(at, seq, e.to_string()))?;
        if let Some(p) = wanted.get(&seq)
            && Stub::decode(payload).is_none()
        {
            let leaf = sealog_merkle::leaf_hash(payload);
            let in_tree = tree_leaf(shared, seq)?;
            if leaf != in_tree {
                return Err(bad(at, seq, "the record does not hash to its leaf".into()));
            }
            let (stored_seq, id, ingested_ns, event_ns) = read_stored(payload, |s| {
                (s.seq, s.record_id.0, s.ingested_ns, s.envelope.time_nanos)
            })
            .map_err(|m| bad(at, seq, m))?;
            if stored_seq != seq {
                return Err(bad(at, seq, format!("the record says seq {stored_seq}")));
            }
            let stub = Stub {
                seq,
                leaf,
                id,
                ingested_ns,
                event_ns,
                link: p.link,
                key: p.key,
            };
            let encoded = stub
                .encode(payload.len())
                .ok_or_else(|| bad(at, seq, "the record is shorter than a stub".into()))?;
            let mut frame = Vec::with_capacity(len);
            segment::encode_frame(&encoded, &mut frame);
            bytes[at..at + len].copy_from_slice(&frame);
            stubs.push(stub);
        }
        at += len;
        seq += 1;
    }
    Ok((bytes, stubs))
}

fn tree_leaf(shared: &Shared, seq: u64) -> Result<[u8; 32], StoreError> {
    shared
        .tree
        .node(0, seq)
        .map_err(|e| StoreError::Corrupted(format!("the tree has no leaf for record {seq}: {e}")))
}

/// Every frame of a rewritten segment, read back from the disk, against the stored tree.
fn check(shared: &Shared, bytes: &[u8], first: u64) -> Result<(), StoreError> {
    let mut at = HEADER_BYTES as usize;
    let mut seq = first;
    while at < bytes.len() {
        let fault = |m: String| {
            StoreError::Corrupted(format!(
                "the rewritten segment {first} read back wrong at offset {at} (seq {seq}): {m}"
            ))
        };
        let (payload, len) =
            segment::decode_frame(&bytes[at..]).map_err(|e| fault(e.to_string()))?;
        if segment::leaf_of(payload).map_err(fault)? != tree_leaf(shared, seq)? {
            return Err(fault("it does not hash to its leaf".into()));
        }
        at += len;
        seq += 1;
    }
    Ok(())
}

/// Writes `bytes` aside, syncs them and has `check` read them back, makes the file
/// read-only, and renames it over `path`: a crash leaves one whole version.
fn replace(
    io: &crate::io::Io,
    path: &Path,
    bytes: &[u8],
    check: impl Fn(&Path) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let tmp = aside(path);
    let _ = fs::remove_file(&tmp);
    io.write_file(&tmp, bytes)?;
    if let Err(e) = check(&tmp) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o444))
        .map_err(|e| StoreError::io(&tmp, e))?;
    io.rename(&tmp, path)?;
    io.sync_dir(path.parent().unwrap_or(Path::new(".")))
}
