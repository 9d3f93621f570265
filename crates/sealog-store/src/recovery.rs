//! Opening a store: find where the log really ends, cut a torn tail, and bring the derived
//! files (positions, indexes) up to the log.
//!
//! Only the last segment can end in a torn frame: every earlier one was sealed with an
//! fsync before the next was created. A bad frame with whole frames after it is not a torn
//! write but damage, and is refused rather than cut, since cutting would drop records that
//! were acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use sealog_model::json::Json;
use sealog_model::{Deriver, PreparedEvent};

use crate::checkpoints::{Checkpoints, load_or_create_signer};
use crate::index::Index;
use crate::positions::{Position, Positions};
use crate::segment::{self, ActiveSegment, BadFrame, FRAME_HEADER_BYTES, HEADER_BYTES};
use crate::tree::{Tree, TreeFiles};
use crate::{Shared, Stats, StoreError};

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Records in the log after recovery.
    pub records: u64,
    /// Records re-indexed from the log because the index did not cover them.
    pub replayed: u64,
    /// A torn tail that was cut away, if any.
    pub cut: Option<Cut>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub segment: PathBuf,
    pub offset: u64,
    pub bytes: u64,
    pub reason: String,
}

pub(crate) fn recover(
    dir: &Path,
    memtable_records_max: u64,
    deriver: &dyn Deriver,
) -> Result<(Shared, ActiveSegment, Tree, Recovery), StoreError> {
    let log_dir = dir.join("log");
    let index_dir = dir.join("index");
    let tree_dir = dir.join("tree");
    std::fs::create_dir_all(&log_dir).map_err(|e| StoreError::io(&log_dir, e))?;
    let checkpoints = Checkpoints::open(dir, load_or_create_signer(&dir.join("keys"))?)?;
    let positions_path = index_dir.join("positions");
    // Postings depend on the derivation (the packs): built with another, the index is stale.
    let fingerprint_path = index_dir.join("DERIVER");
    let fingerprint = deriver.fingerprint();
    let current = std::fs::read_to_string(&fingerprint_path).ok();
    let stale = || -> Result<(), StoreError> {
        match &current {
            Some(f) if *f != fingerprint => Err(StoreError::Corrupted(
                "the index was built with other packs".into(),
            )),
            _ => Ok(()),
        }
    };
    let derived = stale()
        .and_then(|()| Index::open(&index_dir, memtable_records_max))
        .and_then(|i| {
            let p = Positions::open(&positions_path, i.durable_end())?;
            let t = TreeFiles::open(&tree_dir, i.durable_end())?;
            Ok((i, p, t))
        });
    let (mut index, positions, tree_files) = match derived {
        Ok(ipt) => ipt,
        // Indexes and tree are derived: if they cannot be read, rebuild them from the log.
        Err(StoreError::Corrupted(_)) => {
            TreeFiles::reset(&tree_dir)?;
            (
                Index::reset(&index_dir, memtable_records_max)?,
                Positions::open(&positions_path, 0)?,
                TreeFiles::open(&tree_dir, 0)?,
            )
        }
        Err(e) => return Err(e),
    };
    if current.as_deref() != Some(fingerprint.as_str()) {
        segment::write_atomic(&fingerprint_path, fingerprint.as_bytes())?;
    }
    let mut tree = Tree::load(&tree_files, index.end())?;

    let mut segments = segment::list(&log_dir)?;
    if segments.is_empty() {
        if index.end() > 0 {
            return Err(StoreError::Corrupted(format!(
                "the index covers {} records but {} has no segments",
                index.end(),
                log_dir.display()
            )));
        }
        let active = ActiveSegment::create(&log_dir, 0)?;
        segments.push((0, active.path.clone()));
        drop(active);
    }
    if segments[0].0 != 0 {
        return Err(StoreError::Corrupted(format!(
            "the first segment starts at seq {}, not 0",
            segments[0].0
        )));
    }

    // Resume after the last record the index knows, or from the start.
    let mut seq = index.end();
    let (mut seg_i, mut offset) = match seq {
        0 => (0, HEADER_BYTES),
        n => {
            let p = positions.get(n - 1)?;
            let i = segments.partition_point(|(first, _)| *first < n) - 1;
            let file = File::open(&segments[i].1).map_err(|e| StoreError::io(&segments[i].1, e))?;
            let mut buf = Vec::new();
            segment::read_frame_at(&file, p.offset, &mut buf).map_err(|e| {
                StoreError::Corrupted(format!(
                    "{} at offset {}: indexed record {} is unreadable: {e:?}",
                    segments[i].1.display(),
                    p.offset,
                    n - 1
                ))
            })?;
            (i, p.offset + FRAME_HEADER_BYTES + buf.len() as u64)
        }
    };
    let mut recovery = Recovery::default();
    let mut batch = Vec::new();
    loop {
        let (first, path) = segments[seg_i].clone();
        let mut file = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
        let meta = file.metadata().map_err(|e| StoreError::io(&path, e))?;
        let file_len = meta.len();
        // A read-only segment was sealed: whole and fsynced, so never a torn tail, even when
        // a crash came before its successor was created.
        let sealed = meta.permissions().readonly();
        let last = seg_i + 1 == segments.len() && !sealed;
        if offset == HEADER_BYTES {
            if first != seq {
                return Err(StoreError::Corrupted(format!(
                    "{} should start at seq {seq}",
                    path.display()
                )));
            }
            let mut header = [0u8; HEADER_BYTES as usize];
            let got = read_up_to(&mut file, &mut header).map_err(|e| StoreError::io(&path, e))?;
            if got < HEADER_BYTES as usize && last && file_len < HEADER_BYTES {
                // Created but its header never reached the disk: no record can be in it.
                drop(file);
                std::fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
                segments.pop();
                let active = ActiveSegment::create(&log_dir, seq)?;
                segments.push((seq, active.path.clone()));
                continue;
            }
            segment::check_header(&header, first)
                .map_err(|m| StoreError::Corrupted(format!("{}: {m}", path.display())))?;
        }
        let mut reader = BufReader::with_capacity(1 << 20, file);
        reader
            .seek(SeekFrom::Start(offset))
            .map_err(|e| StoreError::io(&path, e))?;
        let mut payload = Vec::new();
        loop {
            match next_frame(&mut reader, &mut payload).map_err(|e| StoreError::io(&path, e))? {
                Frame::End => break,
                Frame::Bad(why) => {
                    if !last {
                        return Err(StoreError::Corrupted(format!(
                            "{} at offset {offset} (seq {seq}): {why} in a sealed segment",
                            path.display()
                        )));
                    }
                    if let Some(cp) = checkpoints.latest().filter(|cp| cp.size > seq) {
                        return Err(StoreError::Corrupted(format!(
                            "{} at offset {offset} (seq {seq}): {why}, yet a signed checkpoint covers {} records: this is damage, not a torn write",
                            path.display(),
                            cp.size
                        )));
                    }
                    let bytes = std::fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
                    if let Some(at) = segment::whole_frame_after(&bytes, offset as usize) {
                        return Err(StoreError::Corrupted(format!(
                            "{} at offset {offset} (seq {seq}): {why}, yet a whole frame follows at offset {at}: this is damage, not a torn write",
                            path.display()
                        )));
                    }
                    let bytes = file_len - offset;
                    let f = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(|e| StoreError::io(&path, e))?;
                    f.set_len(offset)
                        .and_then(|()| f.sync_all())
                        .map_err(|e| StoreError::io(&path, e))?;
                    recovery.cut = Some(Cut {
                        segment: path.clone(),
                        offset,
                        bytes,
                        reason: why.to_string(),
                    });
                    break;
                }
                Frame::Whole => {
                    let position = reindex(&payload, seq, offset, &path, deriver, &mut batch)?;
                    positions.append(&[position])?;
                    let ev = batch.pop().expect("reindex pushed one event");
                    index.insert(seq, &ev);
                    tree.append(&tree_files, std::iter::once(payload.as_slice()))?;
                    if index.needs_flush() {
                        crate::flush_durably(&positions, &tree_files, &mut index)?;
                    }
                    offset += FRAME_HEADER_BYTES + payload.len() as u64;
                    seq += 1;
                    recovery.replayed += 1;
                }
            }
        }
        if seg_i + 1 == segments.len() {
            break;
        }
        seg_i += 1;
        offset = HEADER_BYTES;
    }
    recovery.records = seq;
    // The log must still hold everything a signed checkpoint vouched for, unchanged.
    if let Some(cp) = checkpoints.latest() {
        if cp.size > seq {
            return Err(StoreError::Corrupted(format!(
                "the log has {seq} records but a signed checkpoint covers {}",
                cp.size
            )));
        }
        let root = sealog_merkle::root(cp.size, &tree_files)
            .map_err(|e| StoreError::Corrupted(format!("tree: {e}")))?;
        if root != cp.root {
            return Err(StoreError::Corrupted(format!(
                "the tree of size {} does not match the signed checkpoint of that size",
                cp.size
            )));
        }
    }
    let (first, path) = segments.last().expect("at least one segment").clone();
    let sealed = std::fs::metadata(&path)
        .map_err(|e| StoreError::io(&path, e))?
        .permissions()
        .readonly();
    let active = if sealed {
        let next = ActiveSegment::create(&log_dir, seq)?;
        segments.push((seq, next.path.clone()));
        next
    } else {
        ActiveSegment::open(path, first, offset)?
    };
    let mut readers = Vec::with_capacity(segments.len());
    for (first, path) in &segments {
        readers.push((
            *first,
            Arc::new(File::open(path).map_err(|e| StoreError::io(path, e))?),
        ));
    }
    let shared = Shared {
        log_dir,
        index: RwLock::new(index),
        positions,
        segments: RwLock::new(readers),
        committed: AtomicU64::new(seq),
        poisoned: Mutex::new(None),
        stats: Stats::default(),
        tree: tree_files,
        checkpoints,
    };
    Ok((shared, active, tree, recovery))
}

enum Frame {
    Whole,
    End,
    Bad(BadFrame),
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn next_frame(r: &mut impl Read, payload: &mut Vec<u8>) -> std::io::Result<Frame> {
    let mut head = [0u8; FRAME_HEADER_BYTES as usize];
    match read_up_to(r, &mut head)? {
        0 => return Ok(Frame::End),
        n if n < head.len() => return Ok(Frame::Bad(BadFrame::Short)),
        _ => {}
    }
    let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
    if len == 0 || len > segment::FRAME_PAYLOAD_BYTES_MAX {
        return Ok(Frame::Bad(BadFrame::Length(len)));
    }
    payload.resize(len as usize, 0);
    if read_up_to(r, payload)? < len as usize {
        return Ok(Frame::Bad(BadFrame::Short));
    }
    if segment::frame_crc(payload) != u32::from_le_bytes(head[4..].try_into().expect("4 bytes")) {
        return Ok(Frame::Bad(BadFrame::Checksum));
    }
    Ok(Frame::Whole)
}

/// Rebuilds one record's index entries from its stored bytes, checking that the bytes are
/// the record they claim to be.
fn reindex(
    payload: &[u8],
    seq: u64,
    offset: u64,
    path: &Path,
    deriver: &dyn Deriver,
    out: &mut Vec<PreparedEvent>,
) -> Result<Position, StoreError> {
    let bad = |m: String| {
        StoreError::Corrupted(format!(
            "{} at offset {offset} (seq {seq}): {m}",
            path.display()
        ))
    };
    let value = Json::parse(payload).map_err(|e| bad(format!("record is not JSON: {e}")))?;
    let (ev, stored_seq, id, ingested_at) =
        PreparedEvent::from_record_with(&value, Some(deriver)).map_err(bad)?;
    if stored_seq != seq {
        return Err(bad(format!("record says seq {stored_seq}")));
    }
    let ingested_ns = sealog_model::time::parse_rfc3339(ingested_at).map_err(bad)?;
    if ev.record_id != id {
        return Err(bad(format!(
            "record_id {id} does not match its content ({})",
            ev.record_id
        )));
    }
    let position = Position {
        offset,
        ingested_ns,
        event_ns: ev.event_time_nanos,
    };
    out.push(ev);
    Ok(position)
}
