//! Offline verification: rebuild everything from the files and check it against the signed
//! checkpoints. Needs nothing but the data directory (and, for an adversarial audit, a
//! verifier key and an old checkpoint kept somewhere else).
//!
//! Every record is re-read, its checksum checked, re-parsed, re-canonicalized (the stored
//! bytes must be exactly the RFC 8785 form), its `record_id` recomputed from its event, its
//! seq checked against its position; every tree node is recomputed and compared with the
//! stored one; every checkpoint's signature and root is checked against the rebuilt tree.

use std::fs;

use sealog_merkle::note::Verifier;
use sealog_merkle::{Frontier, Hash, NodeReader};
use sealog_model::LogLayout;
use sealog_model::record::read_stored;

use crate::checkpoints::{SignedCheckpoint, open_checkpoint, read_log};
use crate::segment::{self, HEADER_BYTES};
use crate::tree::TreeFiles;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub records: u64,
    pub bytes: u64,
    pub segments: usize,
    pub checkpoints: usize,
    pub root: Hash,
    pub verifier: String,
    /// The old checkpoint `--since` proved the log extends, if one was given.
    pub since_size: Option<u64>,
    /// Records the newest signed checkpoint covers; those after it are not yet signed (a
    /// crash before the next checkpoint, or checkpoints removed: `--since` tells which).
    pub signed_records: u64,
    /// Set when a process was writing the log: verification stopped at the records it had
    /// made durable, since frames after them may be half-written at this very moment.
    pub writer_durable: Option<u64>,
}

/// The first thing found wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct Failure {
    pub location: String,
    pub message: String,
}

fn fail<T>(location: impl Into<String>, message: impl Into<String>) -> Result<T, Failure> {
    Err(Failure {
        location: location.into(),
        message: message.into(),
    })
}

#[derive(Default)]
pub struct Options<'a> {
    /// The verifier key to trust; by default `keys/log.pub` of the directory itself.
    pub key: Option<String>,
    /// A checkpoint note saved earlier: the log must extend it.
    pub since: Option<String>,
    /// Called now and then with (records, bytes) checked so far.
    pub progress: Option<&'a dyn Fn(u64, u64)>,
}

pub fn verify(layout: &LogLayout, opts: &Options<'_>) -> Result<Report, Failure> {
    let key_text = match &opts.key {
        Some(k) => k.clone(),
        None => {
            let p = layout.verifier_key();
            fs::read_to_string(&p).or_else(|e| fail(p.display().to_string(), e.to_string()))?
        }
    };
    let verifier =
        Verifier::parse(key_text.trim()).or_else(|e| fail("verifier key", e.to_string()))?;

    let cp_path = layout.checkpoint_log();
    let (notes, torn) =
        read_log(&cp_path).or_else(|e| fail(cp_path.display().to_string(), e.to_string()))?;
    if let Some(at) = torn {
        return fail(
            format!("{} at offset {at}", cp_path.display()),
            "damaged checkpoint frame",
        );
    }
    let mut checkpoints: Vec<SignedCheckpoint> = Vec::with_capacity(notes.len());
    for (i, n) in notes.iter().enumerate() {
        let cp = open_checkpoint(n, &verifier)
            .or_else(|m| fail(format!("{} checkpoint #{i}", cp_path.display()), m))?;
        if let Some(prev) = checkpoints.last().filter(|p| p.size > cp.size) {
            return fail(
                format!("{} checkpoint #{i}", cp_path.display()),
                format!(
                    "size {} is smaller than the previous {}",
                    cp.size, prev.size
                ),
            );
        }
        checkpoints.push(cp);
    }
    // `latest` is what tlog clients fetch; it must be the newest note of the log.
    let latest_path = layout.latest_checkpoint();
    if let Ok(latest) = fs::read_to_string(&latest_path)
        && notes.last() != Some(&latest)
    {
        return fail(
            latest_path.display().to_string(),
            "differs from the newest checkpoint in checkpoints/log",
        );
    }
    let since = match &opts.since {
        None => None,
        Some(text) => Some(open_checkpoint(text, &verifier).or_else(|m| {
            fail(
                "--since checkpoint",
                format!(
                    "{m} (the log's key is {}; was the log re-keyed?)",
                    verifier.to_vkey()
                ),
            )
        })?),
    };

    // Expected roots, by tree size, to compare as the rebuilt tree passes each size.
    let mut expected: Vec<(u64, Hash, String)> = checkpoints
        .iter()
        .enumerate()
        .map(|(i, c)| (c.size, c.root, format!("checkpoint #{i}")))
        .collect();
    if let Some(s) = &since {
        expected.push((s.size, s.root, "--since checkpoint".into()));
    }
    expected.sort_by_key(|e| e.0);
    let mut next_expected = 0usize;
    // Read after the checkpoints: every checkpoint was signed below the count read here.
    let writer_durable = crate::lock::writer_alive(layout)
        .then(|| fs::read(layout.durable()).ok())
        .flatten()
        .and_then(|b| Some(u64::from_le_bytes(b.get(..8)?.try_into().ok()?)));
    let horizon = writer_durable.unwrap_or(u64::MAX);

    let tree_dir = layout.tree();
    let stored_tree = tree_dir.is_dir().then(|| TreeFiles::read_only(&tree_dir));
    let log_dir = layout.segments();
    let segments =
        segment::list(&log_dir).or_else(|e| fail(log_dir.display().to_string(), e.to_string()))?;
    let mut frontier = Frontier::new();
    let mut nodes = Vec::new();
    let mut bytes_total = 0u64;
    let check_roots = |frontier: &Frontier,
                       next: &mut usize,
                       loc: &dyn Fn() -> String|
     -> Result<(), Failure> {
        while *next < expected.len() && expected[*next].0 == frontier.size() {
            let (size, root, what) = &expected[*next];
            if frontier.root() != *root {
                return fail(
                    loc(),
                    format!(
                        "the log's tree of size {size} does not match {what}: history was changed at or before this point"
                    ),
                );
            }
            *next += 1;
        }
        Ok(())
    };
    check_roots(&frontier, &mut next_expected, &|| "log start".into())?;
    for (i, (first, path)) in segments.iter().enumerate() {
        if frontier.size() >= horizon {
            break;
        }
        let loc =
            |offset: u64, seq: u64| format!("{} at offset {offset} (seq {seq})", path.display());
        let data = fs::read(path).or_else(|e| fail(path.display().to_string(), e.to_string()))?;
        bytes_total += data.len() as u64;
        if *first != frontier.size() {
            return fail(
                path.display().to_string(),
                format!(
                    "segment starts at seq {first}, expected {}",
                    frontier.size()
                ),
            );
        }
        segment::check_header(&data, *first).or_else(|m| fail(path.display().to_string(), m))?;
        let wanted = horizon - frontier.size();
        let frames = split_frames(&data, wanted)
            .or_else(|(offset, whole, why)| fail(loc(offset, frontier.size() + whole), why))?;
        if frames.is_empty() && i + 1 < segments.len() && horizon == u64::MAX {
            return fail(
                path.display().to_string(),
                "a sealed segment holds no records",
            );
        }
        let leaves = check_records(&data, &frames, frontier.size())
            .or_else(|(k, why)| fail(loc(frames[k].0, frontier.size() + k as u64), why))?;
        for (k, leaf) in leaves.into_iter().enumerate() {
            nodes.clear();
            frontier.push_into(leaf, &mut nodes);
            if let Some(tree) = &stored_tree {
                for &(level, index, hash) in &nodes {
                    if let Ok(stored) = tree.node(level, index)
                        && stored != hash
                    {
                        {
                            return fail(
                                format!("{}/level-{level:02} node {index}", tree_dir.display()),
                                format!(
                                    "stored tree node differs from the one rebuilt from the log (seq {})",
                                    frontier.size() - 1
                                ),
                            );
                        }
                    }
                }
            }
            check_roots(&frontier, &mut next_expected, &|| {
                loc(frames[k].0, frontier.size() - 1)
            })?;
        }
        if let Some(p) = opts.progress {
            p(frontier.size(), bytes_total);
        }
    }
    if let Some((size, _, what)) = expected.get(next_expected) {
        return fail(
            format!("{} (end of log)", log_dir.display()),
            format!(
                "the log holds {} records but {what} covers {size}: records were removed",
                frontier.size()
            ),
        );
    }
    Ok(Report {
        records: frontier.size(),
        bytes: bytes_total,
        segments: segments.len(),
        checkpoints: checkpoints.len(),
        root: frontier.root(),
        verifier: verifier.to_vkey(),
        since_size: since.map(|s| s.size),
        signed_records: checkpoints.last().map_or(0, |c| c.size),
        writer_durable,
    })
}

/// A frame's offset in its segment and its payload's byte range.
type FrameSpan = (u64, std::ops::Range<usize>);

/// The frames of a segment, up to `max` of them; a damaged one is an error giving its offset
/// and how many whole frames came before it.
fn split_frames(data: &[u8], max: u64) -> Result<Vec<FrameSpan>, (u64, u64, String)> {
    let mut out = Vec::new();
    let mut at = HEADER_BYTES as usize;
    while at < data.len() && (out.len() as u64) < max {
        match segment::decode_frame(&data[at..]) {
            Ok((payload, n)) => {
                out.push((at as u64, at + 8..at + 8 + payload.len()));
                at += n;
            }
            Err(why) => return Err((at as u64, out.len() as u64, why.to_string())),
        }
    }
    Ok(out)
}

/// Checks each record (in parallel) and returns its leaf hash; on failure, the index of the
/// first bad record and why.
fn check_records(
    data: &[u8],
    frames: &[(u64, std::ops::Range<usize>)],
    first_seq: u64,
) -> Result<Vec<Hash>, (usize, String)> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(16);
    let per = frames.len().div_ceil(threads).max(1);
    let results: Vec<Result<Vec<Hash>, (usize, String)>> = std::thread::scope(|s| {
        let handles: Vec<_> = frames
            .chunks(per)
            .enumerate()
            .map(|(c, chunk)| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .enumerate()
                        .map(|(k, (_, range))| {
                            let i = c * per + k;
                            check_record(&data[range.clone()], first_seq + i as u64)
                                .map_err(|m| (i, m))
                        })
                        .collect::<Result<Vec<Hash>, _>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("verify thread"))
            .collect()
    });
    let mut leaves = Vec::with_capacity(frames.len());
    for r in results {
        leaves.extend(r?);
    }
    Ok(leaves)
}

fn check_record(payload: &[u8], seq: u64) -> Result<Hash, String> {
    let stored_seq = read_stored(payload, |s| s.seq)?;
    if stored_seq != seq {
        return Err(format!(
            "record says seq {stored_seq}: records were reordered, removed or inserted"
        ));
    }
    Ok(sealog_merkle::leaf_hash(payload))
}
