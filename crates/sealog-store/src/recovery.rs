//! Opening a store: find where the log really ends, cut a torn tail, and bring the derived
//! files (positions, indexes) up to the log.
//!
//! Only the last segment can end in a torn frame: every earlier one was sealed with an
//! fsync before the next was created. A bad frame with whole frames after it is not a torn
//! write but damage, and is refused rather than cut, since cutting would drop records that
//! were acknowledged.

use std::fs::OpenOptions;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use sealog_model::LogLayout;
use sealog_model::record::read_stored;

use crate::checkpoints::{Checkpoints, SignedCheckpoint, load_or_create_signer};
use crate::contract::Indexer;
use crate::index::Index;
use crate::positions::{Position, Positions};
use crate::segment::{
    self, ActiveSegment, BadFrame, FRAME_HEADER_BYTES, HEADER_BYTES, SegmentFile, Stub,
};
use crate::tree::{Tree, TreeFiles};
use crate::{Counters, Shared, StoreError};

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Records in the log after recovery.
    pub records: u64,
    /// Records re-indexed from the log because the index did not cover them.
    pub replayed: u64,
    /// A torn tail that was cut away, if any.
    pub cut: Option<Cut>,
    /// Why the derived files (index, positions, tree) were rebuilt from the log, if they were:
    /// found damaged, of another version, built with other packs, or marked by a reader.
    pub rebuilt: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub segment: PathBuf,
    pub offset: u64,
    pub bytes: u64,
    pub reason: String,
}

pub(crate) fn recover(
    layout: &LogLayout,
    config: &crate::Config,
    indexer: &dyn Indexer,
) -> Result<(Shared, ActiveSegment, Tree, Recovery), StoreError> {
    let memtable_records_max = config.memtable_records_max;
    let io = &config.io;
    let log_dir = layout.segments();
    let index_dir = layout.index();
    let tree_dir = layout.tree();
    std::fs::create_dir_all(&log_dir).map_err(|e| StoreError::io(&log_dir, e))?;
    let checkpoints = Checkpoints::open(
        layout,
        load_or_create_signer(layout, config.signing_key.as_deref())?,
        config
            .signing_key
            .clone()
            .unwrap_or_else(|| layout.signer_key()),
        config.extension.clone(),
    )?;
    let positions_path = layout.positions();
    // Keys depend on the derivation (the packs): built with another, the index is stale.
    let fingerprint_path = layout.index_fingerprint();
    let fingerprint = indexer.fingerprint();
    let current = std::fs::read_to_string(&fingerprint_path).ok();
    // An index whose derivation is not recorded is not known to be this one's.
    let has_index = index_dir.join("MANIFEST").exists();
    let stale = || -> Result<(), StoreError> {
        match &current {
            Some(f) if *f != fingerprint => Err(StoreError::Corrupted(
                "the index was built with other packs".into(),
            )),
            None if has_index => Err(StoreError::Corrupted(
                "the index does not say which derivation built it (index/DERIVER is gone)".into(),
            )),
            _ => Ok(()),
        }
    };
    // A reader that found damage left this: nothing derived is trusted then.
    let marker = layout.rebuild_marker();
    let marked = std::fs::read_to_string(&marker).ok();
    let pruned_marker = layout.pruned_marker();
    let pruned = std::fs::read_to_string(&pruned_marker).ok();
    crate::prune::remove_leftovers(io, &log_dir)?;
    let derived = match (&marked, &pruned) {
        (Some(why), _) => Err(StoreError::Corrupted(format!(
            "damage found while reading: {why}"
        ))),
        (None, Some(listed)) => Err(StoreError::Corrupted(format!(
            "{}: their keys leave the index",
            listed.lines().next().unwrap_or_default()
        ))),
        (None, None) => stale(),
    }
    .and_then(|()| Index::open(io, &index_dir, memtable_records_max))
    .and_then(|i| {
        let p = Positions::open(io, &positions_path, i.durable_end())?;
        let t = TreeFiles::open(io, &tree_dir, i.durable_end())?;
        Ok((i, p, t))
    });
    let mut rebuilt = None;
    let (index, positions, tree_files) = match derived {
        Ok(ipt) => ipt,
        // Indexes and tree are derived: if they cannot be trusted, rebuild them from the log,
        // once the log is known to be what the signed checkpoint vouches for. A log that is
        // not keeps every file as it is: the stored tree still shows where it was changed.
        Err(StoreError::Corrupted(why)) => {
            if let Some(cp) = checkpoints.latest()
                && let Err(changed) = log_matches(&log_dir, &cp)
            {
                return Err(StoreError::Corrupted(format!(
                    "{why}; and {changed}: nothing was rebuilt (run `sealog verify` to find where)"
                )));
            }
            TreeFiles::reset(&tree_dir)?;
            let reset = (
                Index::reset(io, &index_dir, memtable_records_max)?,
                Positions::open(io, &positions_path, 0)?,
                TreeFiles::open(io, &tree_dir, 0)?,
            );
            for (was, path) in [(&marked, &marker), (&pruned, &pruned_marker)] {
                if was.is_some() {
                    io.remove_file(path)?;
                }
            }
            rebuilt = Some(why);
            reset
        }
        Err(e) => return Err(e),
    };
    if current.as_deref() != Some(fingerprint.as_str()) {
        io.write_atomic(&fingerprint_path, fingerprint.as_bytes())?;
    }
    let tree = Tree::load(&tree_files, index.end())?;

    let mut segments = segment::list(&log_dir)?;
    if segments.is_empty() {
        if index.end() > 0 {
            return Err(StoreError::Corrupted(format!(
                "the index covers {} records but {} has no segments",
                index.end(),
                log_dir.display()
            )));
        }
        let active = ActiveSegment::create(io, &log_dir, 0)?;
        segments.push((0, active.path.clone()));
        drop(active);
    }
    let reported_durable = std::fs::read(layout.durable())
        .ok()
        .and_then(|b| crate::durable::decode(&b));
    let mut replay = Replay {
        mode: Mode::Repair,
        io: io.clone(),
        indexer,
        checkpoints,
        index,
        positions,
        tree_files,
        tree,
        horizon: u64::MAX,
        reported_durable: reported_durable.unwrap_or(0),
    };
    let (seq, offset, mut recovery) = replay.run(&mut segments, &log_dir)?;
    recovery.rebuilt = rebuilt;
    let mut noted = |note: &str| {
        recovery.rebuilt = Some(match recovery.rebuilt.take() {
            Some(why) => format!("{why}; {note}"),
            None => note.to_string(),
        });
    };
    if replay.checkpoints.restored_latest {
        noted(
            "checkpoints/latest did not hold the newest checkpoint: written again from checkpoints/log",
        );
    }
    if seq > 0 && reported_durable.is_none() {
        noted("index/DURABLE was missing or damaged: written again");
    }
    replay.check_size(seq)?;
    if let Err(why) = replay.check_root() {
        // The stored tree is derived: it may be the damaged one. Rebuild it from the log once
        // and check again; a log whose rebuilt tree still disagrees was changed.
        if recovery.rebuilt.is_none() {
            drop(replay);
            io.write_atomic(&marker, why.as_bytes())?;
            return recover(layout, config, indexer);
        }
        return Err(StoreError::Corrupted(format!(
            "{why}, rebuilt from the log: records were changed (run `sealog verify` to find where)"
        )));
    }
    replay.sign_creation(seq)?;
    let (first, path) = segments.last().expect("at least one segment").clone();
    let sealed = std::fs::metadata(&path)
        .map_err(|e| StoreError::io(&path, e))?
        .permissions()
        .readonly();
    let active = if sealed {
        let next = ActiveSegment::create(io, &log_dir, seq)?;
        segments.push((seq, next.path.clone()));
        next
    } else {
        ActiveSegment::open(io, path, first, offset)?
    };
    let (shared, tree) = replay.into_shared(layout, &segments, seq)?;
    Ok((shared, active, tree, recovery))
}

/// Opens a log for reading beside its writer (or without one), changing nothing on disk.
/// The index runs, positions and tree nodes the index manifest vouches for are used as
/// they are; the records after them, up to what the writer has said is durable, are
/// re-indexed in memory.
pub(crate) fn read_only(
    layout: &LogLayout,
    memtable_records_max: u64,
    indexer: &dyn Indexer,
) -> Result<(Shared, Recovery), StoreError> {
    let log_dir = layout.segments();
    if !log_dir.is_dir() {
        return Err(StoreError::InvalidArgument(format!(
            "{} holds no log",
            layout.root().display()
        )));
    }
    // Checkpoints first, then the durable count: a checkpoint is signed only after the count
    // that covers it was written, so the count read after it is never below it.
    let checkpoints = Checkpoints::read_only(layout)?;
    let horizon = std::fs::read(layout.durable())
        .ok()
        .and_then(|b| crate::durable::decode(&b))
        .unwrap_or(u64::MAX);
    let fingerprint = std::fs::read_to_string(layout.index_fingerprint()).ok();
    let index_dir = layout.index();
    let usable = fingerprint.as_deref() == Some(indexer.fingerprint().as_str());
    let derived = if usable {
        Index::open_read_only(&index_dir, memtable_records_max).and_then(|i| {
            let end = i.durable_end();
            let p = Positions::read_only(&layout.positions(), end)?;
            Ok((i, p, end))
        })
    } else {
        Err(StoreError::Corrupted(
            "the index was built with other packs".into(),
        ))
    };
    let (mut index, positions) = match derived {
        Ok((i, p, _)) => (i, p),
        Err(StoreError::Corrupted(_)) => (
            Index::empty(&index_dir, memtable_records_max),
            Positions::read_only(&layout.positions(), 0)?,
        ),
        Err(e) => return Err(e),
    };
    // The writer pruned records since its index files were built: answer them as it does.
    if let Ok(listed) = std::fs::read_to_string(layout.pruned_marker()) {
        index.note_pruned(crate::prune::marked(&listed));
    }
    let tree_files = TreeFiles::read_only_with_memory(&layout.tree());
    let tree = Tree::load(&tree_files, index.end())?;
    let mut segments = segment::list(&log_dir)?;
    if segments.is_empty() {
        return Err(StoreError::InvalidArgument(format!(
            "{} holds no log",
            layout.root().display()
        )));
    }
    let mut replay = Replay {
        mode: Mode::ReadOnly,
        io: crate::io::Io::default(),
        indexer,
        checkpoints,
        index,
        positions,
        tree_files,
        tree,
        horizon,
        reported_durable: 0,
    };
    let (seq, _, recovery) = replay.run(&mut segments, &log_dir)?;
    replay.check_size(seq)?;
    replay.check_root().map_err(|why| {
        StoreError::Corrupted(format!(
            "{why}: the tree files or the log are damaged (run `sealog verify` to find which)"
        ))
    })?;
    let (shared, _) = replay.into_shared(layout, &segments, seq)?;
    Ok((shared, recovery))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The writer's own opening: cut a torn tail, write what is rebuilt.
    Repair,
    /// Beside the writer: stop at the horizon or at the first frame that is not whole, write
    /// nothing.
    ReadOnly,
}

/// Brings the derived state up to the log by reading the records after what it covers.
struct Replay<'a> {
    /// Changes the disk only when repairing.
    io: crate::io::Io,
    mode: Mode,
    indexer: &'a dyn Indexer,
    checkpoints: Checkpoints,
    index: Index,
    positions: Positions,
    tree_files: TreeFiles,
    tree: Tree,
    /// Read no record at or past this seq.
    horizon: u64,
    /// What the writer last said was durable (`index/DURABLE`, written after each group's
    /// sync, so never past what is): zeros before it replaced records, and a cut of them is
    /// reported. Repairing only.
    reported_durable: u64,
}

impl Replay<'_> {
    /// The log must still hold everything a signed checkpoint vouched for, and a log with
    /// records has been signed at least once (at its creation).
    fn check_size(&self, records: u64) -> Result<(), StoreError> {
        match self.checkpoints.latest() {
            Some(cp) if cp.size > records => Err(StoreError::Corrupted(format!(
                "the log has {records} records but a signed checkpoint covers {}",
                cp.size
            ))),
            None if records > 0 => Err(StoreError::Corrupted(format!(
                "the log holds {records} records but {} holds no signed checkpoint: the checkpoints were removed",
                self.checkpoints.log_path().display()
            ))),
            _ => Ok(()),
        }
    }

    /// What looks like a torn write at `seq` is damage when a signed checkpoint covers that
    /// record: refused, and nothing cut, so the evidence stays on disk.
    fn refuse_cutting_signed(
        &self,
        path: &Path,
        offset: u64,
        seq: u64,
        why: &str,
    ) -> Result<(), StoreError> {
        match self.checkpoints.latest().filter(|cp| cp.size > seq) {
            Some(cp) => Err(StoreError::Corrupted(format!(
                "{} at offset {offset} (seq {seq}): {why}, yet a signed checkpoint covers {} records: this is damage, not a torn write",
                path.display(),
                cp.size
            ))),
            None => Ok(()),
        }
    }

    /// The stored tree's root at the newest checkpoint's size is the signed one.
    fn check_root(&self) -> Result<(), String> {
        let Some(cp) = self.checkpoints.latest() else {
            return Ok(());
        };
        match sealog_merkle::root(cp.size, &self.tree_files) {
            Ok(root) if root == cp.root => Ok(()),
            Ok(_) => Err(format!(
                "the tree of size {} does not match the signed checkpoint of that size",
                cp.size
            )),
            Err(e) => Err(format!("the tree of size {} cannot be read: {e}", cp.size)),
        }
    }

    /// A new log signs its empty tree, so that a log holding records without any checkpoint
    /// is known to have lost them.
    fn sign_creation(&self, records: u64) -> Result<(), StoreError> {
        if records == 0 && self.checkpoints.latest().is_none() {
            self.checkpoints.publish(0, sealog_merkle::empty_root())?;
        }
        Ok(())
    }

    /// Hands the rebuilt state over to the store, with a read handle on every segment.
    fn into_shared(
        self,
        layout: &LogLayout,
        segments: &[(u64, PathBuf)],
        records: u64,
    ) -> Result<(Shared, Tree), StoreError> {
        let mut readers = Vec::with_capacity(segments.len());
        for (first, path) in segments {
            let dir = path.parent().expect("a segment is in the log directory");
            readers.push((*first, Arc::new(SegmentFile::open(dir, *first)?)));
        }
        let shared = Shared {
            layout: layout.clone(),
            index: RwLock::new(self.index),
            positions: self.positions,
            segments: RwLock::new(readers),
            committed: AtomicU64::new(records),
            poisoned: Mutex::new(None),
            pruning: Mutex::new(()),
            counters: Counters::default(),
            tree: self.tree_files,
            checkpoints: self.checkpoints,
            writable: self.mode == Mode::Repair,
            io: self.io,
        };
        Ok((shared, self.tree))
    }

    /// Returns the records in the log, the end offset of the last segment's whole frames,
    /// and what was found.
    fn run(
        &mut self,
        segments: &mut Vec<(u64, PathBuf)>,
        log_dir: &Path,
    ) -> Result<(u64, u64, Recovery), StoreError> {
        if segments[0].0 != 0 {
            return Err(StoreError::Corrupted(format!(
                "the first segment starts at seq {}, not 0",
                segments[0].0
            )));
        }
        let repair = self.mode == Mode::Repair;
        // Resume after the last record the index knows, or from the start.
        let mut seq = self.index.end();
        let (mut seg_i, mut offset) = match seq {
            0 => (0, HEADER_BYTES),
            n => {
                let p = self.positions.get(n - 1)?;
                let i = segments.partition_point(|(first, _)| *first < n) - 1;
                let file = SegmentFile::open(log_dir, segments[i].0)?;
                let mut buf = Vec::new();
                file.read_frame(n - 1, p.offset, &mut buf).map_err(|e| {
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
        'segments: loop {
            let (first, listed) = segments[seg_i].clone();
            let opened = SegmentFile::open_listed(&listed, first)?;
            let path = opened.path().to_path_buf();
            if offset == HEADER_BYTES && seq < self.horizon && first != seq {
                return Err(StoreError::Corrupted(format!(
                    "{} should start at seq {seq}",
                    path.display()
                )));
            }
            let zseg;
            let (mut reader, last, file_len): (Box<dyn Read + '_>, bool, u64) = match opened {
                // Sealed, and read back whole before it was renamed into place.
                SegmentFile::Compressed(z) => {
                    zseg = z;
                    let reader = zseg
                        .reader_at(offset)
                        .map_err(|e| StoreError::io(&path, e))?;
                    (Box::new(reader), false, zseg.plain_len())
                }
                SegmentFile::Plain { file, .. } => {
                    let meta = file.metadata().map_err(|e| StoreError::io(&path, e))?;
                    let mut file = self.io.reader(file, &path);
                    let file_len = meta.len();
                    // A read-only segment was sealed: whole and fsynced, so never a torn
                    // tail, even when a crash came before its successor was created.
                    let sealed = meta.permissions().readonly();
                    let last = seg_i + 1 == segments.len() && !sealed;
                    // The header is checked even when replay resumes inside the segment:
                    // the writer is about to append to it.
                    if seq < self.horizon {
                        let mut header = [0u8; HEADER_BYTES as usize];
                        let got = segment::read_up_to(&mut file, &mut header)
                            .map_err(|e| StoreError::io(&path, e))?;
                        if offset == HEADER_BYTES
                            && got < HEADER_BYTES as usize
                            && last
                            && file_len < HEADER_BYTES
                        {
                            if !repair {
                                // Being created by the writer right now: no record in it yet.
                                break 'segments;
                            }
                            self.refuse_cutting_signed(&path, 0, seq, "a torn header")?;
                            // Created but its header never reached the disk: no record can
                            // be in it.
                            drop(file);
                            self.io.remove_file(&path)?;
                            segments.pop();
                            let active = ActiveSegment::create(&self.io, log_dir, seq)?;
                            segments.push((seq, active.path.clone()));
                            continue;
                        }
                        segment::check_header(&header, first).map_err(|m| {
                            StoreError::Corrupted(format!("{}: {m}", path.display()))
                        })?;
                    }
                    let mut reader = BufReader::with_capacity(1 << 20, file);
                    reader
                        .seek(SeekFrom::Start(offset))
                        .map_err(|e| StoreError::io(&path, e))?;
                    (Box::new(reader), last, file_len)
                }
            };
            let mut payload = Vec::new();
            while seq < self.horizon {
                match next_frame(&mut reader, &mut payload).map_err(|e| StoreError::io(&path, e))? {
                    Frame::End => break,
                    Frame::Bad(why) => {
                        if !last {
                            return Err(StoreError::Corrupted(format!(
                                "{} at offset {offset} (seq {seq}): {why} in a sealed segment",
                                path.display()
                            )));
                        }
                        self.refuse_cutting_signed(&path, offset, seq, &why.to_string())?;
                        if !repair {
                            // A frame the writer is writing now, or a torn tail it will cut
                            // when it next opens: either way not durable.
                            if self.horizon != u64::MAX {
                                return Err(StoreError::Corrupted(format!(
                                    "{} at offset {offset} (seq {seq}): {why}, yet the writer reported {} records durable",
                                    path.display(),
                                    self.horizon
                                )));
                            }
                            break;
                        }
                        let acknowledged = seq < self.reported_durable;
                        recovery.cut =
                            cut_torn_tail(&self.io, &path, offset, file_len, why, acknowledged)?;
                        break;
                    }
                    Frame::Whole => {
                        self.replay_one(&payload, seq, offset, &path)?;
                        offset += FRAME_HEADER_BYTES + payload.len() as u64;
                        seq += 1;
                        recovery.replayed += 1;
                    }
                }
            }
            if seg_i + 1 == segments.len() || seq >= self.horizon {
                break;
            }
            seg_i += 1;
            offset = HEADER_BYTES;
        }
        if !repair && self.horizon != u64::MAX && seq < self.horizon {
            return Err(StoreError::Corrupted(format!(
                "the writer reported {} records durable but the log holds {seq}",
                self.horizon
            )));
        }
        recovery.records = seq;
        Ok((seq, offset, recovery))
    }

    fn replay_one(
        &mut self,
        payload: &[u8],
        seq: u64,
        offset: u64,
        path: &Path,
    ) -> Result<(), StoreError> {
        let bad = |m: String| {
            StoreError::Corrupted(format!(
                "{} at offset {offset} (seq {seq}): {m}",
                path.display()
            ))
        };
        let (stored_seq, id, ingested_ns, event_ns, keys, leaf) = match Stub::decode(payload) {
            Some(stub) => {
                let stub = stub.map_err(bad)?;
                let keys = self.indexer.stub_keys(&stub);
                (
                    stub.seq,
                    stub.id,
                    stub.ingested_ns,
                    stub.event_ns,
                    keys,
                    stub.leaf,
                )
            }
            None => {
                let (seq, id, ingested_ns, event_ns, keys) = read_stored(payload, |s| {
                    (
                        s.seq,
                        s.record_id.0,
                        s.ingested_ns,
                        s.envelope.time_nanos,
                        self.indexer.keys(s),
                    )
                })
                .map_err(bad)?;
                let leaf = sealog_merkle::leaf_hash(payload);
                (seq, id, ingested_ns, event_ns, keys, leaf)
            }
        };
        if stored_seq != seq {
            return Err(bad(format!("record says seq {stored_seq}")));
        }
        self.positions.append(&[Position {
            offset,
            ingested_ns,
            event_ns,
        }])?;
        self.index.insert(seq, &id, &keys, event_ns);
        self.tree.append(&self.tree_files, std::iter::once(leaf))?;
        if self.mode == Mode::Repair && self.index.needs_flush() {
            crate::flush_durably(&self.positions, &self.tree_files, &mut self.index)?;
        }
        Ok(())
    }
}

/// Cuts a torn tail of the active segment back to its last whole frame, unless whole
/// frames follow the bad one (then it is damage, refused). A tail of zeros is what the
/// writer laid down ahead of its frames: it is cut too, and not reported, as it held nothing,
/// unless it starts where the writer had `acknowledged` records.
fn cut_torn_tail(
    io: &crate::io::Io,
    path: &Path,
    offset: u64,
    file_len: u64,
    why: BadFrame,
    acknowledged: bool,
) -> Result<Option<Cut>, StoreError> {
    let bytes = std::fs::read(path).map_err(|e| StoreError::io(path, e))?;
    let zeros = bytes.get(offset as usize..).is_some_and(segment::all_zero);
    if !zeros && let Some(at) = segment::whole_frame_after(&bytes, offset as usize) {
        return Err(StoreError::Corrupted(format!(
            "{} at offset {offset}: {why}, yet a whole frame follows at offset {at}: this is damage, not a torn write",
            path.display()
        )));
    }
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io(path, e))?;
    io.set_len(&f, path, offset)?;
    io.sync_all(&f, path)?;
    Ok((!zeros || acknowledged).then(|| Cut {
        segment: path.to_path_buf(),
        offset,
        bytes: file_len - offset,
        reason: why.to_string(),
    }))
}

enum Frame {
    Whole,
    End,
    Bad(BadFrame),
}

fn next_frame(r: &mut impl Read, payload: &mut Vec<u8>) -> std::io::Result<Frame> {
    let mut head = [0u8; FRAME_HEADER_BYTES as usize];
    match segment::read_up_to(r, &mut head)? {
        0 => return Ok(Frame::End),
        n if n < head.len() => return Ok(Frame::Bad(BadFrame::Short)),
        _ => {}
    }
    let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
    if len == 0 || len > segment::FRAME_PAYLOAD_BYTES_MAX {
        return Ok(Frame::Bad(BadFrame::Length(len)));
    }
    payload.resize(len as usize, 0);
    if segment::read_up_to(r, payload)? < len as usize {
        return Ok(Frame::Bad(BadFrame::Short));
    }
    if segment::frame_crc(payload) != u32::from_le_bytes(head[4..].try_into().expect("4 bytes")) {
        return Ok(Frame::Bad(BadFrame::Checksum));
    }
    Ok(Frame::Whole)
}

/// Whether the log's first `cp.size` records hash to the checkpoint's root: a streaming
/// pass over the segments, writing nothing.
fn log_matches(log_dir: &Path, cp: &SignedCheckpoint) -> Result<(), String> {
    let mut frontier = sealog_merkle::Frontier::new();
    let segments = segment::list(log_dir).map_err(|e| e.to_string())?;
    'segments: for (first, path) in &segments {
        let bytes = SegmentFile::open_listed(path, *first)
            .map_err(|e| e.to_string())?
            .plain_bytes()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut at = segment::HEADER_BYTES as usize;
        while frontier.size() < cp.size && at < bytes.len() {
            match segment::decode_frame(&bytes[at..]) {
                Ok((payload, n)) => {
                    frontier.push(segment::leaf_of(payload)?);
                    at += n;
                }
                Err(_) => break 'segments,
            }
        }
        if frontier.size() == cp.size {
            break;
        }
    }
    if frontier.size() < cp.size {
        return Err(format!(
            "the log holds {} whole records but a signed checkpoint covers {}",
            frontier.size(),
            cp.size
        ));
    }
    if frontier.root() != cp.root {
        return Err(format!(
            "the log's first {} records do not hash to the signed checkpoint of that size: records were changed",
            cp.size
        ));
    }
    Ok(())
}
