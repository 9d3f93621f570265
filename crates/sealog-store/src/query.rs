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
    let pos = shared.positions.get(seq)?;
    let (first, file) = {
        let segs = shared.segments.read().expect("segments lock");
        let i = segs.partition_point(|(first, _)| *first <= seq) - 1;
        (segs[i].0, segs[i].1.clone())
    };
    let segment = shared.layout.segments().join(segment::file_name(first));
    segment::read_frame_at(&file, pos.offset, buf).map_err(|e| {
        StoreError::Corrupted(format!(
            "{} at offset {} (record {seq}): {e:?}",
            segment.display(),
            pos.offset
        ))
    })?;
    Ok((segment, pos.offset))
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
    let mut counted = Vec::with_capacity(keys.len());
    for k in keys {
        counted.push((index.count(k)?, k));
    }
    if let Some(&(_, rarest)) = counted.iter().min_by_key(|(n, _)| *n) {
        // Walk the rarest key's postings, checking the others by membership.
        let mut cursor = from;
        'pages: while hits.len() <= q.limit && cursor < end {
            let chunk = index.postings(rarest, cursor, end, 1024)?;
            let Some(&last) = chunk.last() else { break };
            for seq in chunk {
                let mut all = true;
                for k in keys.iter().filter(|k| *k != rarest) {
                    if !index.contains(k, seq)? {
                        all = false;
                        break;
                    }
                }
                if all && in_window(seq)? {
                    hits.push(seq);
                    if hits.len() > q.limit {
                        break 'pages;
                    }
                }
            }
            cursor = last + 1;
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
    let mut rest = &hits[..];
    while !rest.is_empty() {
        let run = consecutive_in_one_segment(shared, rest);
        let (now, later) = rest.split_at(run);
        rest = later;
        if run > 1 && read_run(shared, now, q.skip_leaf_check, &mut records)? {
            continue;
        }
        // One at a time, so that a damaged frame is reported as the record it is.
        for &seq in now {
            let mut buf = Vec::new();
            if q.skip_leaf_check {
                read_frame(shared, seq, &mut buf)?;
            } else {
                read_record(shared, seq, &mut buf)?;
            }
            records.push((seq, buf));
        }
    }
    let next_after = if more {
        records.last().map(|r| r.0)
    } else {
        None
    };
    Ok(Page {
        records,
        next_after,
    })
}

/// How many of `seqs`, from the first, are consecutive and in the first one's segment.
fn consecutive_in_one_segment(shared: &Shared, seqs: &[u64]) -> usize {
    let segs = shared.segments.read().expect("segments lock");
    let i = segs.partition_point(|(first, _)| *first <= seqs[0]) - 1;
    let segment_end = segs.get(i + 1).map_or(u64::MAX, |s| s.0);
    1 + seqs
        .windows(2)
        .take_while(|w| w[1] == w[0] + 1 && w[1] < segment_end)
        .count()
}

/// Reads a run of consecutive records of one segment, all but the last with one read: their
/// frames lie back to back, from the first's position to the last's. Each frame's checksum
/// is checked, and with `checked` its hash against the tree's leaf. `false`, with nothing
/// read, when the frames do not fill that span exactly; the caller then reads each alone.
fn read_run(
    shared: &Shared,
    seqs: &[u64],
    skip_leaf_check: bool,
    out: &mut Vec<(u64, Vec<u8>)>,
) -> Result<bool, StoreError> {
    let (first, last) = (seqs[0], seqs[seqs.len() - 1]);
    let (start, end) = (
        shared.positions.get(first)?.offset,
        shared.positions.get(last)?.offset,
    );
    if end <= start {
        return Ok(false);
    }
    let (seg_first, file) = {
        let segs = shared.segments.read().expect("segments lock");
        let i = segs.partition_point(|(f, _)| *f <= first) - 1;
        (segs[i].0, segs[i].1.clone())
    };
    let segment = shared.layout.segments().join(segment::file_name(seg_first));
    let mut span = vec![0u8; (end - start) as usize];
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(&mut span, start)
            .map_err(|e| StoreError::io(&segment, e))?;
    }
    let mut frames = Vec::with_capacity(seqs.len());
    let mut at = 0usize;
    for &seq in &seqs[..seqs.len() - 1] {
        let Ok((payload, n)) = segment::decode_frame(&span[at..]) else {
            return Ok(false);
        };
        frames.push((seq, start + at as u64, payload));
        at += n;
    }
    if at != span.len() {
        return Ok(false);
    }
    let before = out.len();
    for (seq, offset, payload) in frames {
        if !skip_leaf_check {
            check_leaf(shared, seq, payload, &segment, offset)?;
        }
        out.push((seq, payload.to_vec()));
    }
    let mut buf = Vec::new();
    let read = if skip_leaf_check {
        read_frame(shared, last, &mut buf).map(drop)
    } else {
        read_record(shared, last, &mut buf)
    };
    if let Err(e) = read {
        out.truncate(before);
        return Err(e);
    }
    out.push((last, buf));
    Ok(true)
}

/// Seqs this close together are read together, the records between them with them: copying
/// a few unwanted records costs less than a read of its own for each wanted one.
const GAP: u64 = 4;

/// The frames of `seqs` (checksums checked, not compared with the tree), in the order given;
/// `None` for a seq not committed. Wanted seqs that lie close together in one segment are
/// read with one read.
pub(crate) fn read_many(shared: &Shared, seqs: &[u64]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
    let committed = shared.committed.load(Ordering::Acquire);
    let mut by_seq: Vec<usize> = (0..seqs.len()).filter(|&i| seqs[i] < committed).collect();
    by_seq.sort_unstable_by_key(|&i| seqs[i]);
    let mut out: Vec<Option<Vec<u8>>> = vec![None; seqs.len()];
    let mut rest = &by_seq[..];
    while let Some(&i) = rest.first() {
        let first = seqs[i];
        let segment_end = {
            let segs = shared.segments.read().expect("segments lock");
            let k = segs.partition_point(|(f, _)| *f <= first);
            segs.get(k).map_or(u64::MAX, |s| s.0)
        };
        let near = 1 + rest
            .windows(2)
            .take_while(|w| seqs[w[1]] - seqs[w[0]] <= GAP && seqs[w[1]] < segment_end)
            .count();
        let (group, later) = rest.split_at(near);
        rest = later;
        let last = seqs[group[near - 1]];
        let mut run = Vec::new();
        if last > first {
            let all: Vec<u64> = (first..=last).collect();
            if !read_run(shared, &all, true, &mut run)? {
                run.clear();
            }
        }
        for (w, &i) in group.iter().enumerate() {
            let seq = seqs[i];
            out[i] = if w > 0 && seqs[group[w - 1]] == seq {
                out[group[w - 1]].clone()
            } else if run.is_empty() {
                let mut buf = Vec::new();
                read_frame(shared, seq, &mut buf)?;
                Some(buf)
            } else {
                Some(std::mem::take(&mut run[(seq - first) as usize].1))
            };
        }
    }
    Ok(out)
}
