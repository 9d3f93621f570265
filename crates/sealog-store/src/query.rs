//! Index-backed reads. Every query walks one index in seq order — the rarest equality key,
//! or a time window — and checks the other predicates against the index too, so its cost is
//! O(log n) per run plus the records it touches, never a scan of the log.

use std::sync::atomic::Ordering;

use crate::contract::{LIMIT_MAX, Page, Scan};
use crate::segment;
use crate::{Shared, StoreError};
use sealog_merkle::NodeReader;

/// Reads record `seq` and checks it before anyone sees it: its frame's checksum, and that it
/// hashes to the tree's leaf `seq` (so a record edited with its checksum fixed, or one read
/// through a wrong position, is an error here, not an answer).
pub(crate) fn read_record(shared: &Shared, seq: u64, buf: &mut Vec<u8>) -> Result<(), StoreError> {
    let (segment, offset) = read_frame(shared, seq, buf)?;
    check_leaf(shared, seq, buf, &segment, offset)
}

/// A pruned record's stub is checked as a record is (its kept leaf hash against the tree's)
/// and answered as [`StoreError::Pruned`].
fn check_leaf(
    shared: &Shared,
    seq: u64,
    buf: &[u8],
    segment: &std::path::Path,
    offset: u64,
) -> Result<(), StoreError> {
    let leaf = shared.tree.node(0, seq).map_err(|e| {
        StoreError::Corrupted(format!("the tree has no leaf for record {seq}: {e}"))
    })?;
    if let Some(stub) = segment::Stub::decode(buf) {
        let stub = stub.map_err(|m| {
            StoreError::Corrupted(format!("{} at offset {offset}: {m}", segment.display()))
        })?;
        if stub.leaf != leaf || stub.seq != seq {
            return Err(StoreError::Corrupted(format!(
                "the stub of pruned record {seq} (in {} at offset {offset}) does not keep the tree's leaf {seq}; `sealog verify` locates it",
                segment.display(),
            )));
        }
        return Err(StoreError::Pruned(Box::new(stub)));
    }
    if sealog_merkle::leaf_hash(buf) != leaf {
        return Err(StoreError::Corrupted(format!(
            "record {seq} (read from {} at offset {offset}) does not hash to the tree's leaf {seq}: the record, its position or the tree was changed; `sealog verify` locates it",
            segment.display(),
        )));
    }
    Ok(())
}

/// Reads a record's frame (its checksum checked), not compared with the tree; returns the
/// segment and offset it was read from.
pub(crate) fn read_frame(
    shared: &Shared,
    seq: u64,
    buf: &mut Vec<u8>,
) -> Result<(std::path::PathBuf, u64), StoreError> {
    read_frame_from(shared, seq, segment_of(shared, seq), buf)
}

/// [`read_frame`] from the segment `seg` looked up earlier.
fn read_frame_from(
    shared: &Shared,
    seq: u64,
    mut seg: SegmentOf,
    buf: &mut Vec<u8>,
) -> Result<(std::path::PathBuf, u64), StoreError> {
    let pos = shared.positions.get(seq)?;
    let mut read = seg.file.read_frame(seq, pos.offset, buf);
    if let Err(segment::ReadFrameError::Io(e)) = &read
        && crate::handles::is_replaced(e)
    {
        // Retention rewrote the segment after it was looked up: read the one in its place.
        seg = reopened(shared, seq, &seg)?;
        read = seg.file.read_frame(seq, pos.offset, buf);
    }
    let segment = seg.file.path().to_path_buf();
    read.map_err(|e| {
        StoreError::Corrupted(format!(
            "{} at offset {} (record {seq}): {e:?}",
            segment.display(),
            pos.offset
        ))
    })?;
    Ok((segment, pos.offset))
}

/// One record read alone: its frame, and unless `skip_leaf_check` its hash against the
/// tree's leaf.
fn read_one(shared: &Shared, seq: u64, skip_leaf_check: bool) -> Result<Vec<u8>, StoreError> {
    let mut buf = Vec::new();
    if skip_leaf_check {
        read_frame(shared, seq, &mut buf)?;
        if let Some(Ok(stub)) = segment::Stub::decode(&buf) {
            return Err(StoreError::Pruned(Box::new(stub)));
        }
    } else {
        read_record(shared, seq, &mut buf)?;
    }
    Ok(buf)
}

/// The segment holding a record: its first seq, the first seq past it, its file.
struct SegmentOf {
    end: u64,
    file: std::sync::Arc<segment::SegmentFile>,
}

fn segment_of(shared: &Shared, seq: u64) -> SegmentOf {
    let segs = shared.segments.read().expect("segments lock");
    let i = segs.partition_point(|(first, _)| *first <= seq) - 1;
    SegmentOf {
        end: segs.get(i + 1).map_or(u64::MAX, |s| s.0),
        file: segs[i].1.clone(),
    }
}

/// The segment holding `seq` in place of `stale`, whose file was replaced: the one the
/// writer put in its place, or, where no writer of this process did (a read-only opening
/// beside a writer), the file now at its path.
fn reopened(shared: &Shared, seq: u64, stale: &SegmentOf) -> Result<SegmentOf, StoreError> {
    let mut segs = shared.segments.write().expect("segments lock");
    let i = segs.partition_point(|(first, _)| *first <= seq) - 1;
    if std::sync::Arc::ptr_eq(&segs[i].1, &stale.file) {
        let fresh = segment::SegmentFile::open_path(stale.file.path(), segs[i].0)?;
        segs[i].1 = std::sync::Arc::new(fresh);
    }
    Ok(SegmentOf {
        end: segs.get(i + 1).map_or(u64::MAX, |s| s.0),
        file: segs[i].1.clone(),
    })
}

pub(crate) fn run(shared: &Shared, q: &Scan) -> Result<Page, StoreError> {
    if q.limit == 0 || q.limit > LIMIT_MAX {
        return Err(StoreError::InvalidArgument(format!(
            "limit must be between 1 and {LIMIT_MAX}"
        )));
    }
    let committed = shared.committed.load(Ordering::Acquire);
    let mut end = q.below.map_or(committed, |s| s.min(committed));
    let mut from = q.after.map_or(0, |a| a.saturating_add(1));
    // Ingest time grows with seq: a window is a seq range.
    if let Some(t) = q.ingest_from {
        from = from.max(shared.positions.first_ingested_at_or_after(t, end)?);
    }
    if let Some(t) = q.ingest_to {
        end = end.min(shared.positions.first_ingested_at_or_after(t, end)?);
    }
    let keys = &q.keys;
    let in_window = |seq: u64| -> Result<bool, StoreError> {
        if q.event_from.is_none() && q.event_to.is_none() {
            return Ok(true);
        }
        let t = shared.positions.get(seq)?.event_ns;
        Ok(q.event_from.is_none_or(|f| t >= f) && q.event_to.is_none_or(|e| t < e))
    };

    let mut hits: Vec<u64> = Vec::with_capacity(q.limit + 1);
    let index = shared.index.read().expect("index lock");
    // The rarest key is walked; with one key there is nothing to count.
    let rarest = match &keys[..] {
        [] => None,
        [only] => Some(only),
        _ => {
            let mut counted = Vec::with_capacity(keys.len());
            for k in keys {
                counted.push((index.count(k)?, k));
            }
            counted.into_iter().min_by_key(|(n, _)| *n).map(|(_, k)| k)
        }
    };
    if let Some(rarest) = rarest {
        // The rarest key is walked; the others are checked against each of its postings.
        let mut ordered = vec![*rarest];
        ordered.extend(keys.iter().filter(|k| *k != rarest));
        let mut cursor = from;
        'pages: while hits.len() <= q.limit && cursor < end {
            let (found, next) = index.intersect(&ordered, cursor, end, q.limit + 1 - hits.len())?;
            for seq in found {
                if in_window(seq)? {
                    hits.push(seq);
                    if hits.len() > q.limit {
                        break 'pages;
                    }
                }
            }
            cursor = next;
        }
    } else if q.event_from.is_some() || q.event_to.is_some() {
        let all = index.time_range(
            q.event_from.unwrap_or(i64::MIN),
            q.event_to.unwrap_or(i64::MAX),
        )?;
        hits.extend(
            all.into_iter()
                .filter(|s| (from..end).contains(s))
                .take(q.limit + 1),
        );
    } else {
        hits.extend((from..end).take(q.limit + 1));
    }
    drop(index);

    let more = hits.len() > q.limit;
    hits.truncate(q.limit);
    let mut records = Vec::with_capacity(hits.len());
    // A pruned record is no longer a record: a scan passes over its stub.
    for (&seq, read) in hits
        .iter()
        .zip(read_many(shared, &hits, q.skip_leaf_check)?)
    {
        match read {
            Some(Ok(bytes)) => records.push((seq, bytes)),
            Some(Err(_pruned)) => {}
            None => {
                return Err(StoreError::Corrupted(format!(
                    "record {seq} is not committed"
                )));
            }
        }
    }
    let next_after = if more { hits.last().copied() } else { None };
    Ok(Page {
        records,
        next_after,
    })
}

/// A frame's offset in its segment and its payload.
type Framed = (u64, Vec<u8>);

/// The frames of records `first..=last` of one segment, with their offsets, checksums
/// checked: all but the last with one read, since they lie back to back from the first's
/// position to the last's. `None`, with nothing kept, when they do not; the caller then
/// reads each alone, so that a damaged frame is reported as the record it is.
fn read_span(
    shared: &Shared,
    seg: &SegmentOf,
    first: u64,
    last: u64,
) -> Result<Option<Vec<Framed>>, StoreError> {
    let (start, end) = (
        shared.positions.get(first)?.offset,
        shared.positions.get(last)?.offset,
    );
    // A compressed segment's records are read one by one from its cached blocks.
    let Some(file) = seg.file.plain_file().filter(|_| end > start) else {
        return Ok(None);
    };
    let mut span = vec![0u8; (end - start) as usize];
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(&mut span, start)
            .map_err(|e| StoreError::io(seg.file.path(), e))?;
    }
    let mut frames = Vec::with_capacity((last - first + 1) as usize);
    let mut at = 0usize;
    for _ in first..last {
        let Ok((payload, n)) = segment::decode_frame(&span[at..]) else {
            return Ok(None);
        };
        frames.push((start + at as u64, payload.to_vec()));
        at += n;
    }
    let mut tail = Vec::new();
    if at != span.len() || segment::read_frame_at(file, end, &mut tail).is_err() {
        return Ok(None);
    }
    frames.push((end, tail));
    Ok(Some(frames))
}

/// Seqs this close together are read together, the records between them with them: copying
/// a few unwanted records costs less than a read of its own for each wanted one.
const GAP: u64 = 4;

/// A record's bytes, or the error that says retention pruned it.
pub(crate) type Read = Result<Vec<u8>, StoreError>;

/// Keeps [`StoreError::Pruned`] as an answer for its seq; any other error is the read's.
fn answer(read: Result<Vec<u8>, StoreError>) -> Result<Read, StoreError> {
    match read {
        Err(e @ StoreError::Pruned(_)) => Ok(Err(e)),
        Err(e) => Err(e),
        Ok(bytes) => Ok(Ok(bytes)),
    }
}

fn copy(read: &Read) -> Read {
    match read {
        Ok(b) => Ok(b.clone()),
        Err(StoreError::Pruned(stub)) => Err(StoreError::Pruned(stub.clone())),
        Err(e) => unreachable!("only a pruned record is an answer: {e}"),
    }
}

/// The frames of `seqs` (checksums checked, and unless `skip_leaf_check` each hash against
/// the tree's leaf), in the order given; `None` for a seq not committed, `Some(Err(Pruned))`
/// for a pruned one. Wanted seqs that lie close together in one segment are read with one
/// read; the records read between them are only framed, never checked, so damage there
/// fails no read that did not ask for them.
pub(crate) fn read_many(
    shared: &Shared,
    seqs: &[u64],
    skip_leaf_check: bool,
) -> Result<Vec<Option<Read>>, StoreError> {
    let committed = shared.committed.load(Ordering::Acquire);
    let mut by_seq: Vec<usize> = (0..seqs.len()).filter(|&i| seqs[i] < committed).collect();
    by_seq.sort_unstable_by_key(|&i| seqs[i]);
    let mut out: Vec<Option<Read>> = (0..seqs.len()).map(|_| None).collect();
    let mut rest = &by_seq[..];
    while let Some(&i) = rest.first() {
        let first = seqs[i];
        let seg = segment_of(shared, first);
        let near = 1 + rest
            .windows(2)
            .take_while(|w| seqs[w[1]] - seqs[w[0]] <= GAP && seqs[w[1]] < seg.end)
            .count();
        let (group, later) = rest.split_at(near);
        rest = later;
        let last = seqs[group[near - 1]];
        let mut span = if last > first {
            read_span(shared, &seg, first, last)?
        } else {
            None
        };
        for (w, &i) in group.iter().enumerate() {
            let seq = seqs[i];
            out[i] = Some(if w > 0 && seqs[group[w - 1]] == seq {
                copy(out[group[w - 1]].as_ref().expect("read just before"))
            } else if let Some(frames) = span.as_mut() {
                let (offset, bytes) = std::mem::take(&mut frames[(seq - first) as usize]);
                let checked = if skip_leaf_check {
                    match segment::Stub::decode(&bytes) {
                        Some(Ok(stub)) => Err(StoreError::Pruned(Box::new(stub))),
                        _ => Ok(()),
                    }
                } else {
                    check_leaf(shared, seq, &bytes, seg.file.path(), offset)
                };
                answer(checked.map(|()| bytes))?
            } else {
                answer(read_one(shared, seq, skip_leaf_check))?
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{TestKeys, Unique, entry, event};
    use crate::{Config, Durability, LogRead, LogWrite, Prune, Store};
    use std::sync::Arc;

    /// A reader that looked a compressed segment up just before retention renamed its rewrite
    /// over it, and whose file was closed meanwhile, reads the record from the rewrite.
    #[test]
    fn a_read_of_a_segment_replaced_since_it_was_looked_up_reads_its_successor() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            durability: Durability::Os,
            // Blocks enough that the rewrite's reads leave the first one out of the old
            // segment's cache, so the read below goes to its file.
            segment_bytes_max: 128 << 10,
            ..Config::default()
        };
        let layout = sealog_model::LogLayout::new(dir.path());
        let store = Store::open(&layout, config, Arc::new(TestKeys), Unique).unwrap();
        for chunk in (0..1200u64).collect::<Vec<_>>().chunks(10) {
            let group = chunk.iter().map(|&n| entry(&event(n, "t", "s", None)));
            store.append(group.collect()).unwrap();
        }
        sealog_testkit::wait_for(30, "a segment compressed", || {
            (store.stats().compressed_segments > 0).then_some(())
        });
        let beside =
            Store::<Unique>::open_read_only(&layout, &Config::default(), Arc::new(TestKeys))
                .unwrap();
        let old = segment_of(&store.shared, 1);
        let segment::SegmentFile::Compressed(z) = &*old.file else {
            panic!("segment 0 is not compressed");
        };
        let prune = Prune {
            seq: 5,
            link: None,
            key: None,
        };
        assert_eq!(store.prune(&[prune]).unwrap(), 1);
        z.close_file();
        let offset = store.shared.positions.get(1).unwrap().offset;
        let mut buf = Vec::new();
        match old.file.read_frame(1, offset, &mut buf) {
            Err(segment::ReadFrameError::Io(e)) if crate::handles::is_replaced(&e) => {}
            other => panic!("the old segment read {:?}", other.map(|()| buf.len())),
        }
        read_frame_from(&store.shared, 1, old, &mut buf).unwrap();
        assert_eq!(buf, store.get(1).unwrap().unwrap());
        assert!(matches!(store.get(5), Err(StoreError::Pruned(_))));

        // A read-only opening from before the rewrite: nothing puts the new file in its place
        // but the read that finds the old one gone.
        let seen = segment_of(&beside.shared, 1);
        let segment::SegmentFile::Compressed(z) = &*seen.file else {
            panic!("segment 0 is not compressed where the reader opened it");
        };
        z.close_file();
        assert_eq!(beside.get(1).unwrap().unwrap(), buf);
        assert!(matches!(beside.get(5), Err(StoreError::Pruned(_))));
    }
}
