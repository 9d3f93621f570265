//! Offline verification: rebuild everything from the files and check every file of a log
//! against the log and the signed checkpoints. Needs nothing but the data directory (and, for
//! an adversarial audit, a verifier key and an old checkpoint kept somewhere else).
//!
//! - **Segments**: every record is re-read, its checksum checked, re-parsed, re-canonicalized
//!   (the stored bytes must be exactly the RFC 8785 form), its `record_id` recomputed from its
//!   event, its seq checked against its place; no `record_id` appears twice.
//! - **Tree**: every stored node is recomputed and compared; every checkpoint's signature and
//!   root is checked against the rebuilt tree; `checkpoints/latest` is the newest note.
//! - **Keys**: the verifier key parses, the private key (if present) is owner-only and is the
//!   verifier key's pair.
//! - **Positions**: every entry the index manifest vouches for has its checksum and names its
//!   record's frame, ingest time and event time.
//! - **Index**: the manifest's checksum, every run's sums and every block of its tables, its
//!   Bloom filter; and its agreement with the log: each record's id, keys and time are where
//!   they belong, for a sample of records (every record with `full`), and with `full` the runs
//!   hold nothing else.
//! - **Hints**: `index/DURABLE` and `index/DERIVER` are well formed; a rebuild marker is noted.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use sealog_merkle::cosignature::{CosignatureVerifier, split_note};
use sealog_merkle::note::{Signer, Verifier};
use sealog_merkle::{Frontier, HASH_SIZE, Hash};
use sealog_model::LogLayout;
use sealog_model::record::{Stored, read_stored, read_stored_head};

use crate::checkpoints::{SignedCheckpoint, open_any, open_checkpoint, read_log};
use crate::contract::{Id, Indexer, Key};
use crate::frame_windows::{FrameSpan, FrameWindows, Window, WindowError};
use crate::index::Index;
use crate::segment::{self, HEADER_BYTES};
use crate::tree::TreeFiles;
use crate::unique_ids::{self, UniqueIds};

/// Records whose index entries are checked when not `full`: spread over the log.
const SAMPLE_RECORDS: u64 = 1024;

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
    /// Each kind of file and what was checked of it.
    pub files: Vec<(String, String)>,
    /// The stubs retention left, in seq order: well formed and keeping the tree's leaves
    /// (which pruning is authorized is the caller's to decide).
    pub stubs: Vec<crate::segment::Stub>,
    /// Checkpoints kept with witnesses' cosignatures.
    pub cosigned: usize,
    /// Where the signing key changed: a checkpoint signed by the old key and the new one,
    /// after which only the new one signs (the caller checks a record announced it).
    pub key_changes: Vec<KeyChange>,
    /// With witnesses to require: the records a quorum of them cosigned; those after are an
    /// unwitnessed tail.
    pub witnessed_records: Option<u64>,
    /// The records [`Options::select`] picked, as checked: their seqs and bytes, in seq order.
    pub selected: Vec<(u64, Vec<u8>)>,
    /// The extension lines of every checkpoint checked against the tree (kept, cosigned,
    /// given): (its size, the line, which checkpoint). What they vouch for is the caller's.
    pub extensions: Vec<(u64, String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    /// The size of the checkpoint both keys signed.
    pub at_size: u64,
    pub old_key: String,
    pub new_key: String,
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
    /// More checkpoint notes kept outside the data directory (possibly cosigned): the log
    /// must extend each.
    pub trusted: Vec<String>,
    /// Witnesses whose cosignatures are required, and how many of them must have cosigned
    /// (default: all).
    pub witnesses: Vec<CosignatureVerifier>,
    pub witness_quorum: Option<usize>,
    /// Called now and then with (records, bytes) checked so far.
    pub progress: Option<&'a dyn Fn(u64, u64)>,
    /// Recomputes each record's index keys, to check the index agrees with the log; without
    /// one the index is checked for damage only.
    pub indexer: Option<&'a dyn Indexer>,
    /// Check the index's agreement with every record (not a sample), and that it holds
    /// nothing else.
    pub full: bool,
    /// Picks, by event type, the records handed back whole in [`Report::selected`]: rare
    /// records the caller checks further (key rotations, retention, erasures) without reading
    /// the log a second time.
    pub select: Option<&'a (dyn Fn(&str) -> bool + Sync)>,
    /// Tree heads vouched for from elsewhere, (size, root, by what): the log's tree must
    /// pass through each (the quarantine log's heads that the canonical log's checkpoints
    /// carry).
    pub anchors: Vec<(u64, Hash, String)>,
}

pub fn verify(layout: &LogLayout, opts: &Options<'_>) -> Result<Report, Failure> {
    let mut files = Vec::new();
    let verifier = check_keys(layout, opts, &mut files)?;
    let known = known_keys(layout, &verifier)?;
    let (checkpoints, since, key_changes) = check_checkpoints(layout, opts, &known, &mut files)?;

    // Expected roots, by tree size, to compare as the rebuilt tree passes each size.
    let mut expected: Vec<(u64, Hash, String)> = checkpoints
        .iter()
        .enumerate()
        .map(|(i, c)| (c.size, c.root, format!("checkpoint #{i}")))
        .collect();
    if let Some(s) = &since {
        expected.push((s.size, s.root, "--since checkpoint".into()));
    }
    let vouching = vouching_notes(layout, opts, &known, &mut files)?;
    let newest_signed = checkpoints.last().map_or(0, |c| c.size);
    for (label, cp, _) in &vouching {
        // Kept cosignatures of a checkpoint the series no longer reaches: it was cut back.
        if label.starts_with("checkpoints/cosigned") && cp.size > newest_signed {
            return fail(
                layout.checkpoint_log().display().to_string(),
                format!(
                    "the series was rewound: {label} is a checkpoint of size {} that witnesses cosigned, newer than any here ({newest_signed})",
                    cp.size
                ),
            );
        }
        expected.push((cp.size, cp.root, label.clone()));
    }
    let mut extensions: Vec<(u64, String, String)> = Vec::new();
    let mut note_lines = |size: u64, note: &str, label: &str| {
        for line in crate::checkpoints::extensions_of(note) {
            extensions.push((size, line, label.to_string()));
        }
    };
    for (i, c) in checkpoints.iter().enumerate() {
        note_lines(c.size, &c.note, &format!("checkpoint #{i}"));
    }
    if let Some(s) = &since {
        note_lines(s.size, &s.note, "--since checkpoint");
    }
    for (label, cp, note) in &vouching {
        note_lines(cp.size, note, label);
    }
    expected.extend(opts.anchors.iter().cloned());
    expected.sort_by_key(|e| e.0);
    let mut next_expected = 0usize;
    // Read after the checkpoints: every checkpoint was signed below the count read here.
    let durable = fs::read(layout.durable()).ok();
    let durable_count = durable.as_deref().and_then(crate::durable::decode);
    if durable.is_some() && durable_count.is_none() {
        return fail(
            layout.durable().display().to_string(),
            "damaged: no valid count",
        );
    }
    let writer_durable = crate::lock::writer_alive(layout)
        .then_some(durable_count)
        .flatten();
    let horizon = writer_durable.unwrap_or(u64::MAX);

    let derived = Derived::open(layout, opts, &mut files).map_err(|f| rebuild(layout, f))?;
    let tree_dir = layout.tree();
    let stored_tree = tree_dir.is_dir().then(|| TreeFiles::read_only(&tree_dir));
    let mut stored_nodes = stored_tree.as_ref().map(NodeRuns::new);
    let log_dir = layout.segments();
    let segments =
        segment::list(&log_dir).or_else(|e| fail(log_dir.display().to_string(), e.to_string()))?;
    let mut frontier = Frontier::new();
    let mut nodes = Vec::new();
    let mut bytes_total = 0u64;
    let mut ids = UniqueIds::new(unique_ids::RUN_MAX);
    let mut stubs = Vec::new();
    let mut selected = Vec::new();
    // The first disagreement between a record and a derived file. It is the derived file's
    // fault only if the log still matches the signed checkpoints; if the log does not, it
    // shows which record was changed.
    let mut deferred: Option<(String, Failure)> = None;
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
    // One buffer for every segment read into memory, and one for each checking thread's
    // findings: pages already touched are not faulted in and cleared again for each segment.
    let mut spare = Vec::new();
    let mut facts: Vec<Vec<RecordFacts>> = (0..checking_threads()).map(|_| Vec::new()).collect();
    for (i, (first, path)) in segments.iter().enumerate() {
        if frontier.size() >= horizon {
            break;
        }
        let loc =
            |offset: u64, seq: u64| format!("{} at offset {offset} (seq {seq})", path.display());
        let sealed = i + 1 < segments.len();
        let mut windows = FrameWindows::open(path, *first, sealed, &mut spare)
            .or_else(|e| fail(path.display().to_string(), e.to_string()))?;
        if *first != frontier.size() {
            return fail(
                path.display().to_string(),
                format!(
                    "segment starts at seq {first}, expected {}",
                    frontier.size()
                ),
            );
        }
        segment::check_header(windows.head(), *first)
            .or_else(|m| fail(path.display().to_string(), m))?;
        let mut segment_end = HEADER_BYTES;
        let mut held = 0u64;
        loop {
            let wanted = horizon - frontier.size();
            let window = match windows.next(wanted) {
                Ok(Some(w)) => w,
                Ok(None) => break,
                Err(WindowError::Io(e)) => return fail(path.display().to_string(), e.to_string()),
                Err(WindowError::Frame { offset, whole, why }) => {
                    return fail(loc(offset, frontier.size() + whole), why);
                }
            };
            let Window { data, frames } = window;
            held += frames.len() as u64;
            // The zeros past the active segment's frames are not read as records.
            if let Some((offset, range)) = frames.last() {
                segment_end = offset + (range.len() + segment::FRAME_HEADER_BYTES as usize) as u64;
            }
            let sample = derived.sample();
            check_records(
                data,
                frames,
                frontier.size(),
                &|seq| sample.wants(seq),
                opts.indexer,
                opts.select,
                &mut facts,
            )
            .or_else(|(k, why)| fail(loc(frames[k].0, frontier.size() + k as u64), why))?;
            for (k, record) in facts.iter_mut().flat_map(|f| f.drain(..)).enumerate() {
                let seq = frontier.size();
                let here = || loc(frames[k].0, seq);
                if deferred.is_none()
                    && let Err(f) = derived.check_record(seq, frames[k].0, &record)
                {
                    deferred = Some((here(), f));
                }
                ids.push(record.id, seq).or_else(|e| scratch_failed(&e))?;
                stubs.extend(record.stub);
                selected.extend(record.selected.map(|bytes| (seq, bytes)));
                nodes.clear();
                frontier.push_into(record.leaf, &mut nodes);
                if let Some(tree) = stored_nodes.as_mut().filter(|_| deferred.is_none()) {
                    for &(level, index, hash) in &nodes {
                        let why = match tree.node(level, index) {
                            Some(stored) if stored == hash => continue,
                            Some(_) => "stored tree node differs from the one rebuilt from the log",
                            // Nodes past what the index vouches for may not be written yet.
                            None if (index + 1) << level > derived.end => continue,
                            None => "stored tree node is missing or unreadable",
                        };
                        let at = format!("{}/level-{level:02} node {index}", tree_dir.display());
                        deferred = Some((
                            here(),
                            Failure {
                                location: at,
                                message: format!("{why} (seq {seq})"),
                            },
                        ));
                        break;
                    }
                }
                check_roots(&frontier, &mut next_expected, &here)
                    .map_err(|f| attribute(f, deferred.take()))?;
            }
            if let Some(p) = opts.progress {
                p(frontier.size(), bytes_total + segment_end);
            }
        }
        bytes_total += segment_end;
        if held == 0 && sealed && horizon == u64::MAX {
            return fail(
                path.display().to_string(),
                "a sealed segment holds no records",
            );
        }
        windows.recycle(&mut spare);
    }
    if let Some((size, _, what)) = expected.get(next_expected) {
        return Err(attribute(
            Failure {
                location: format!("{} (end of log)", log_dir.display()),
                message: format!(
                    "the log holds {} records but {what} covers {size}: records were removed",
                    frontier.size()
                ),
            },
            deferred,
        ));
    }
    if checkpoints.is_empty() && frontier.size() > 0 {
        return fail(
            layout.checkpoint_log().display().to_string(),
            format!(
                "holds no signed checkpoint but the log holds {} records (a log is signed when it is created): the checkpoints were removed",
                frontier.size()
            ),
        );
    }
    files.push((
        "log/*.seg, log/*.zseg".into(),
        format!(
            "{} segments, {} records: frames, canonical form, record ids, seqs",
            segments.len(),
            frontier.size()
        ),
    ));
    check_unique(ids, layout)?;
    files.push(("record ids".into(), "no record_id appears twice".into()));
    if let Some((_, f)) = deferred {
        return Err(rebuild(layout, f));
    }
    if stored_tree.is_some() {
        files.push((
            "tree/level-NN".into(),
            "every stored node equals the one rebuilt from the log".into(),
        ));
    }
    if writer_durable.is_none()
        && let Some(n) = durable_count
        && n > frontier.size()
    {
        return fail(
            layout.durable().display().to_string(),
            format!(
                "says {n} records are durable but the log holds {}",
                frontier.size()
            ),
        );
    }
    if durable_count.is_none() && frontier.size() > 0 {
        return fail(
            layout.durable().display().to_string(),
            format!(
                "missing, yet the log holds {} records (a writer writes it before its first record)",
                frontier.size()
            ),
        );
    }
    files.push((
        "index/DURABLE".into(),
        match durable_count {
            Some(n) => format!("a checked count ({n}) within the log"),
            None => "absent (no record written yet)".into(),
        },
    ));
    derived
        .finish(frontier.size(), &mut files)
        .map_err(|f| rebuild(layout, f))?;
    let witnessed_records = witnessed(opts, &vouching, frontier.size(), &mut files)?;
    Ok(Report {
        cosigned: vouching
            .iter()
            .filter(|(l, _, _)| l.starts_with("checkpoints/cosigned"))
            .count(),
        witnessed_records,
        key_changes,
        selected,
        extensions,
        records: frontier.size(),
        bytes: bytes_total,
        segments: segments.len(),
        checkpoints: checkpoints.len(),
        root: frontier.root(),
        verifier: verifier.to_vkey(),
        since_size: since.map(|s| s.size),
        signed_records: checkpoints.last().map_or(0, |c| c.size),
        writer_durable,
        files,
        stubs,
    })
}

/// The verifier key to trust, and the data directory's own key files checked against it.
fn check_keys(
    layout: &LogLayout,
    opts: &Options<'_>,
    files: &mut Vec<(String, String)>,
) -> Result<Verifier, Failure> {
    let public = layout.verifier_key();
    let own = fs::read(&public).ok();
    let key_text = match (&opts.key, &own) {
        (Some(k), _) => k.clone(),
        (None, Some(bytes)) => String::from_utf8(bytes.clone())
            .or_else(|_| fail(public.display().to_string(), "not text"))?,
        (None, None) => return fail(public.display().to_string(), "missing"),
    };
    let key_location = match &opts.key {
        Some(_) => "--verifier-key".to_string(),
        None => public.display().to_string(),
    };
    let verifier = Verifier::parse(key_text.trim())
        .or_else(|e| fail(key_location.clone(), format!("not a verifier key: {e}")))?;
    if opts.key.is_none() && own.as_deref() != Some(format!("{}\n", verifier.to_vkey()).as_bytes())
    {
        return fail(
            key_location,
            "damaged: not exactly the verifier key as written",
        );
    }
    let own_matches = own
        .as_deref()
        .map(|b| std::str::from_utf8(b).map(str::trim) == Ok(verifier.to_vkey().as_str()));
    let private = layout.signer_key();
    let mut checked = "the verifier key parses".to_string();
    if let Ok(bytes) = fs::read(&private) {
        let at = private.display().to_string();
        let mode = fs::metadata(&private)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        if mode & 0o077 != 0 {
            return fail(at, format!("readable by others (mode {mode:o})"));
        }
        let signer = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|t| Signer::parse(t.trim()).ok());
        let Some(signer) = signer.filter(|s| bytes == format!("{}\n", s.to_skey()).as_bytes())
        else {
            return fail(at, "damaged: not exactly a signer key as written");
        };
        if own.is_some() && opts.key.is_none() && signer.verifier().to_vkey() != verifier.to_vkey()
        {
            // The one that still signs the checkpoints is the one left alone.
            let signs_checkpoints = read_log(&layout.checkpoint_log())
                .ok()
                .and_then(|(notes, _)| notes.last().cloned())
                .is_some_and(|n| open_checkpoint(&n, &signer.verifier()).is_ok());
            if signs_checkpoints {
                return fail(
                    public.display().to_string(),
                    format!(
                        "is not the verifier key of {}, which signed the checkpoints: it was replaced",
                        private.display()
                    ),
                );
            }
            return fail(at, format!("is not the pair of {}", public.display()));
        }
        checked.push_str("; keys/log.key is owner-only and");
        checked.push_str(if signer.verifier().to_vkey() == verifier.to_vkey() {
            " its pair"
        } else {
            " not this key's pair (a trusted key from outside was given)"
        });
    }
    if own_matches == Some(false) && opts.key.is_some() {
        checked.push_str("; keys/log.pub differs from the trusted key");
    }
    files.push(("keys/".into(), checked));
    Ok(verifier)
}

/// The trusted key first, then every other key this log names (`keys/log.pub`, the retired
/// ones): a key other than the trusted one counts only where a chain of checkpoints signed by
/// both hands over to it.
fn known_keys(layout: &LogLayout, trusted: &Verifier) -> Result<Vec<Verifier>, Failure> {
    let mut keys = vec![trusted.clone()];
    let retired = crate::checkpoints::read_retired(layout)
        .or_else(|e| fail(layout.retired_keys().display().to_string(), e.to_string()))?;
    let own = fs::read_to_string(layout.verifier_key())
        .ok()
        .and_then(|t| Verifier::parse(t.trim()).ok());
    for k in retired.into_iter().chain(own) {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    Ok(keys)
}

/// The note opened, and which of `keys` sign it: each key's signature is checked once.
fn open_by(note_text: &str, keys: &[Verifier]) -> Result<(SignedCheckpoint, Vec<usize>), String> {
    let mut opened = None;
    let mut first_err = None;
    let mut by = Vec::new();
    for (k, key) in keys.iter().enumerate() {
        match open_checkpoint(note_text, key) {
            Ok(cp) => {
                opened.get_or_insert(cp);
                by.push(k);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    opened
        .map(|cp| (cp, by))
        .ok_or_else(|| first_err.unwrap_or_else(|| "no key".into()))
}

/// Follows the key in force through the series from the trusted key (`keys[0]`): from the
/// newest checkpoint back when it signs that one, else from the oldest forward. The key
/// changes only at a checkpoint signed by both the key before and the key after.
fn key_chain(
    sizes: &[u64],
    signers: &[Vec<usize>],
    keys: &[Verifier],
) -> Result<Vec<KeyChange>, (usize, String)> {
    let n = signers.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let change = |i: usize, old: usize, new: usize| KeyChange {
        at_size: sizes[i],
        old_key: keys[old].to_vkey(),
        new_key: keys[new].to_vkey(),
    };
    let other = |i: usize, j: usize, cur: usize| {
        signers[i]
            .iter()
            .copied()
            .find(|k| *k != cur && signers[j].contains(k))
    };
    let mut changes: Vec<KeyChange> = Vec::new();
    // The key in force at the newest checkpoint.
    let mut end = 0;
    if signers[n - 1].contains(&0) {
        let mut cur = 0;
        for i in (0..n).rev() {
            if !signers[i].contains(&cur) {
                return Err((
                    i,
                    format!(
                        "not signed by {}, the key in force there",
                        keys[cur].to_vkey()
                    ),
                ));
            }
            if i > 0 && !signers[i - 1].contains(&cur) {
                let Some(k) = other(i, i - 1, cur) else {
                    return Err((
                        i - 1,
                        "signed by another key, with no checkpoint signed by both to hand over"
                            .into(),
                    ));
                };
                changes.push(change(i, k, cur));
                cur = k;
            }
        }
        changes.reverse();
    } else if signers[0].contains(&0) {
        let mut cur = 0;
        for i in 0..n {
            if !signers[i].contains(&cur) {
                return Err((
                    i,
                    format!(
                        "not signed by {}, the key in force there",
                        keys[cur].to_vkey()
                    ),
                ));
            }
            if i + 1 < n && !signers[i + 1].contains(&cur) {
                let Some(k) = other(i, i + 1, cur) else {
                    return Err((
                        i + 1,
                        "signed by another key, with no checkpoint signed by both to hand over"
                            .into(),
                    ));
                };
                changes.push(change(i, cur, k));
                cur = k;
            }
        }
        end = cur;
    } else if signers.iter().all(|s| !s.contains(&0)) {
        return Err((
            0,
            format!(
                "signature: not by the trusted key {}, and no checkpoint here is",
                keys[0].to_vkey()
            ),
        ));
    } else {
        return Err((
            n - 1,
            "the trusted key signs neither the newest checkpoint nor the first".into(),
        ));
    }
    // The newest checkpoint signed by the key in force and by one it did not take over from
    // is a hand-over no later checkpoint shows yet: a rotation that ended as it signed it.
    let took_over_from = changes.last().map(|c| c.old_key.clone());
    if let Some(&k) = signers[n - 1]
        .iter()
        .find(|&&k| k != end && Some(keys[k].to_vkey()) != took_over_from)
    {
        changes.push(change(n - 1, end, k));
    }
    Ok(changes)
}

/// Every checkpoint of the series, checked; the `--since` one; and where the key changed.
///
/// A writer beside verification publishes a checkpoint in two steps: its frame appended to
/// the log and synced, then `latest` replaced. Read while one is under way, the log can end
/// in a frame half written, or `latest` can still hold the checkpoint before. So `latest` is
/// read before the log (a note in `latest` was in the log first: one newer than the log's
/// newest is lost checkpoints, whatever a writer is doing) and again after it: one that
/// moved on meanwhile must be among the log's notes; one that did not must be the newest.
/// A torn last frame, or a `latest` that stayed behind the log, is read again until it
/// agrees or [`PUBLISH_SETTLES`] has passed.
fn check_checkpoints(
    layout: &LogLayout,
    opts: &Options<'_>,
    keys: &[Verifier],
    files: &mut Vec<(String, String)>,
) -> Result<Series, Failure> {
    let deadline = std::time::Instant::now() + PUBLISH_SETTLES;
    loop {
        match check_checkpoints_once(layout, opts, keys, files) {
            Err((_, Settling::Maybe)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return other.map_err(|(failure, _)| failure),
        }
    }
}

/// The checkpoints of the series, the `--since` one, and where the key changed.
type Series = (
    Vec<SignedCheckpoint>,
    Option<SignedCheckpoint>,
    Vec<KeyChange>,
);

/// How long a checkpoint log and `latest` that disagree as a publication would are read
/// again before the disagreement is reported.
const PUBLISH_SETTLES: std::time::Duration = std::time::Duration::from_millis(500);

/// Whether a failure may be a publication caught half way.
enum Settling {
    Maybe,
    No,
}

/// A failure no publication explains.
fn settled<T>(r: Result<T, Failure>) -> Result<T, (Failure, Settling)> {
    r.map_err(|f| (f, Settling::No))
}

/// A failure a publication under way may explain.
fn settling<T>(r: Result<T, Failure>) -> Result<T, (Failure, Settling)> {
    r.map_err(|f| (f, Settling::Maybe))
}

fn check_checkpoints_once(
    layout: &LogLayout,
    opts: &Options<'_>,
    keys: &[Verifier],
    files: &mut Vec<(String, String)>,
) -> Result<Series, (Failure, Settling)> {
    let latest_path = layout.latest_checkpoint();
    let latest = fs::read(&latest_path);
    let cp_path = layout.checkpoint_log();
    let (notes, torn) = settled(
        read_log(&cp_path).or_else(|e| fail(cp_path.display().to_string(), e.to_string())),
    )?;
    if let Some(at) = torn {
        return settling(fail(
            format!("{} at offset {at}", cp_path.display()),
            "damaged checkpoint frame",
        ));
    }
    let mut checkpoints: Vec<SignedCheckpoint> = Vec::with_capacity(notes.len());
    let mut signers = Vec::with_capacity(notes.len());
    for (i, n) in notes.iter().enumerate() {
        let (cp, by) = settled(
            open_by(n, keys).or_else(|m| fail(format!("{} checkpoint #{i}", cp_path.display()), m)),
        )?;
        signers.push(by);
        if let Some(prev) = checkpoints.last().filter(|p| p.size > cp.size) {
            return settled(fail(
                format!("{} checkpoint #{i}", cp_path.display()),
                format!(
                    "size {} is smaller than the previous {}",
                    cp.size, prev.size
                ),
            ));
        }
        checkpoints.push(cp);
    }
    let sizes: Vec<u64> = checkpoints.iter().map(|c| c.size).collect();
    let key_changes = settled(
        key_chain(&sizes, &signers, keys)
            .or_else(|(i, m)| fail(format!("{} checkpoint #{i}", cp_path.display()), m)),
    )?;
    // `latest` is what tlog clients fetch; it must be the newest note of the log, byte for byte.
    let latest_after = fs::read(&latest_path).ok();
    match latest {
        Ok(latest) if notes.last().map(String::as_bytes) != Some(latest.as_slice()) => {
            // A valid note newer than the log's newest means the log lost checkpoints.
            let newer = std::str::from_utf8(&latest)
                .ok()
                .and_then(|t| open_any(t, keys).ok())
                .filter(|cp| checkpoints.last().is_none_or(|last| cp.size > last.size));
            if let Some(cp) = newer {
                return settled(fail(
                    cp_path.display().to_string(),
                    format!(
                        "lost checkpoints: checkpoints/latest holds a signed checkpoint of size {} newer than any here",
                        cp.size
                    ),
                ));
            }
            // A writer publishing all along moves `latest` on while the log is read: then
            // the note read first must be one of the log's, as each was before it was there.
            let moved_on = latest_after.as_deref() != Some(latest.as_slice());
            if !(moved_on && notes.iter().any(|n| n.as_bytes() == latest.as_slice())) {
                return settling(fail(
                    latest_path.display().to_string(),
                    "differs from the newest checkpoint in checkpoints/log",
                ));
            }
        }
        // Missing while the log holds notes: written with the log's first, so never settling.
        Err(e) if e.kind() != std::io::ErrorKind::NotFound || !notes.is_empty() => {
            return settled(fail(latest_path.display().to_string(), e.to_string()));
        }
        _ => {}
    }
    files.push((
        "checkpoints/".into(),
        format!(
            "{} signed checkpoints, each signature and size, by the key in force{}; latest is the newest",
            checkpoints.len(),
            match key_changes.len() {
                0 => String::new(),
                n => format!(" ({n} key rotation(s), each under a checkpoint both keys signed)"),
            }
        ),
    ));
    let since = match &opts.since {
        None => None,
        Some(text) => Some(settled(open_any(text, keys).or_else(|m| {
            fail(
                "--since checkpoint",
                format!(
                    "{m} (the log's key is {}; was the log re-keyed?)",
                    keys[0].to_vkey()
                ),
            )
        }))?),
    };
    Ok((checkpoints, since, key_changes))
}

/// The cosigned checkpoints kept in the directory and the trusted ones given: each signed by
/// this log, as (label, checkpoint, note). Their roots are checked against the rebuilt tree
/// like the series'.
fn vouching_notes(
    layout: &LogLayout,
    opts: &Options<'_>,
    keys: &[Verifier],
    files: &mut Vec<(String, String)>,
) -> Result<Vec<(String, SignedCheckpoint, String)>, Failure> {
    let path = layout.cosigned_log();
    let (notes, torn) =
        read_log(&path).or_else(|e| fail(path.display().to_string(), e.to_string()))?;
    if let Some(at) = torn {
        // The file is only ever replaced whole: a bad frame is damage, not a crash.
        return fail(
            format!("{} at offset {at}", path.display()),
            "damaged cosigned checkpoint frame",
        );
    }
    let mut out = Vec::new();
    for (i, n) in notes.into_iter().enumerate() {
        let label = format!("checkpoints/cosigned #{i}");
        let cp = open_any(&n, keys).or_else(|m| fail(label.clone(), m))?;
        out.push((label, cp, n));
    }
    if !out.is_empty() {
        files.push((
            "checkpoints/cosigned".into(),
            format!(
                "{} checkpoints with witnesses' cosignatures, each signed by this log",
                out.len()
            ),
        ));
    }
    for (i, n) in opts.trusted.iter().enumerate() {
        let label = format!("--trusted checkpoint #{}", i + 1);
        let cp = open_any(n, keys).or_else(|m| {
            fail(
                label.clone(),
                format!(
                    "{m} (the log's key is {}; was the log re-keyed?)",
                    keys[0].to_vkey()
                ),
            )
        })?;
        out.push((label, cp, n.clone()));
    }
    Ok(out)
}

/// With witnesses required (`opts.witnesses`, `opts.witness_quorum`): each one's newest
/// cosigned checkpoint among `vouching` (those kept and trusted, each as (label, checkpoint,
/// note), all already matched against the tree), and the size a quorum of them vouch for.
pub fn witnessed(
    opts: &Options<'_>,
    vouching: &[(String, SignedCheckpoint, String)],
    records: u64,
    files: &mut Vec<(String, String)>,
) -> Result<Option<u64>, Failure> {
    if opts.witnesses.is_empty() {
        return Ok(None);
    }
    let quorum = opts.witness_quorum.unwrap_or(opts.witnesses.len());
    if quorum == 0 || quorum > opts.witnesses.len() {
        return fail(
            "--witness-quorum",
            format!(
                "must be between 1 and the {} witnesses given",
                opts.witnesses.len()
            ),
        );
    }
    let given: Vec<_> = opts.witnesses.iter().collect();
    if let Some((a, b)) = CosignatureVerifier::repeated(&given) {
        return fail(
            "--witness",
            format!(
                "{} and {} are one witness (the same name or key): each witness counts once toward a quorum",
                a.to_vkey(),
                b.to_vkey()
            ),
        );
    }
    let mut sizes = Vec::new();
    for w in &opts.witnesses {
        let mut newest: Option<u64> = None;
        for (label, cp, note) in vouching {
            let (text, _) = split_note(note).or_else(|e| fail(label.clone(), e.to_string()))?;
            let found = w
                .find(text, note)
                .or_else(|e| fail(label.clone(), format!("witness {}: {e}", w.name())))?;
            if found.is_some() && newest.is_none_or(|n| cp.size > n) {
                newest = Some(cp.size);
            }
        }
        sizes.push((w.name().to_string(), newest));
    }
    let mut cosigned: Vec<u64> = sizes.iter().filter_map(|(_, s)| *s).collect();
    cosigned.sort_unstable_by(|a, b| b.cmp(a));
    let witnessed = cosigned.get(quorum - 1).copied();
    let named = sizes
        .iter()
        .map(|(n, s)| match s {
            Some(s) => format!("{n}: {s}"),
            None => format!("{n}: nothing"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let Some(witnessed) = witnessed else {
        return fail(
            "witnesses",
            format!(
                "no checkpoint of this log is cosigned by {quorum} of the {} witnesses required ({named})",
                opts.witnesses.len()
            ),
        );
    };
    files.push((
        "witnesses".into(),
        format!(
            "{quorum} of {} witnesses cosigned the tree up to {witnessed} of {records} records ({named})",
            opts.witnesses.len()
        ),
    ));
    Ok(Some(witnessed))
}

/// A failure of the log against a signed checkpoint, located at the first record a derived
/// file disagreed with, if one did: the stored tree and index were made from the log as it
/// was, so that record is where it changed.
fn attribute(f: Failure, deferred: Option<(String, Failure)>) -> Failure {
    match deferred {
        None => f,
        Some((record, d)) => Failure {
            location: record,
            message: format!(
                "{}; this is the first record the files derived from the log disagree with ({}: {}): it was changed, or records before it were",
                f.message, d.location, d.message
            ),
        },
    }
}

/// A derived file found wrong is marked for rebuilding (`index/REBUILD`): the next opening
/// rebuilds the index, positions and tree from the log instead of trusting them.
fn rebuild(layout: &LogLayout, mut f: Failure) -> Failure {
    let marker = layout.rebuild_marker();
    let note = match fs::write(&marker, f.to_string()) {
        Ok(()) => "derived from the log: the next opening rebuilds it".to_string(),
        Err(e) => format!(
            "derived from the log; could not mark it for rebuilding ({}: {e})",
            marker.display()
        ),
    };
    f.message = format!("{} ({note})", f.message);
    f
}

/// A `record_id` that appears twice breaks dedupe: its second record was appended as new.
fn check_unique(ids: UniqueIds, layout: &LogLayout) -> Result<(), Failure> {
    if let Some((id, first, again)) = ids.first_repeat().or_else(|e| scratch_failed(&e))? {
        return fail(
            format!("{} (seq {again})", layout.segments().display()),
            format!(
                "record_id sha256:{} appears at seq {first} and again at seq {again}: a duplicate was appended",
                hex::encode(id),
            ),
        );
    }
    Ok(())
}

/// The record ids did not fit in memory and could not be written out to be checked.
fn scratch_failed<T>(e: &std::io::Error) -> Result<T, Failure> {
    fail(
        std::env::temp_dir().display().to_string(),
        format!("cannot keep the log's record ids in a scratch file here to check them: {e}"),
    )
}

/// What verification knows of one record, from its bytes.
struct RecordFacts {
    id: Id,
    leaf: Hash,
    ingested_ns: i64,
    event_ns: i64,
    /// Its index keys, for the records whose index entries are checked.
    keys: Option<Vec<Key>>,
    /// Set when retention pruned it.
    stub: Option<crate::segment::Stub>,
    /// Its bytes, when the caller selected its type.
    selected: Option<Vec<u8>>,
}

#[derive(Clone, Copy)]
struct Sample {
    checked: bool,
    end: u64,
    full: bool,
}

impl Sample {
    fn wants(self, seq: u64) -> bool {
        self.checked
            && seq < self.end
            && (self.full || seq.is_multiple_of((self.end / SAMPLE_RECORDS).max(1)))
    }
}

/// The derived files of a log, opened as they are, to be checked against its records.
struct Derived<'a> {
    layout: &'a LogLayout,
    opts: &'a Options<'a>,
    /// Entries the manifest vouches for (records `0..end`).
    end: u64,
    index: Option<Index>,
    positions: Option<std::cell::RefCell<PositionsFile>>,
    /// Keys recomputed for checked records, total, to compare with the runs' entries.
    keys_seen: std::cell::Cell<u64>,
    /// Where each recent key's membership walk stands, for the record after this one.
    memberships: std::cell::RefCell<crate::index::Memberships>,
    /// The filters of the run the walk is in (by its first seq), held while its records are
    /// checked: every record probes both, and a filter kept in its file costs a read a probe.
    held: std::cell::RefCell<Option<(u64, crate::index::HeldFilters)>>,
    /// The index's fingerprint is the indexer's (else its keys are another derivation's).
    same_derivation: bool,
    /// Retention pruned records since the index was built: it may hold more keys than the
    /// stubs keep.
    pruned_since_built: bool,
}

/// The positions file, read a window at a time as records are checked in seq order (held
/// whole, it was 32 bytes a record in memory: 320 MB at ten million records).
struct PositionsFile {
    file: fs::File,
    window: Vec<u8>,
    /// The seq of the window's first entry.
    first: u64,
    /// Entries the manifest vouches for: none past them is read.
    end: u64,
    /// Entries read at once.
    window_max: u64,
}

impl PositionsFile {
    fn new(file: fs::File, end: u64) -> Self {
        PositionsFile {
            file,
            window: Vec::new(),
            first: 0,
            end,
            window_max: 1 << 15,
        }
    }

    fn entry(&mut self, seq: u64) -> std::io::Result<&[u8]> {
        use std::os::unix::fs::FileExt;
        let size = crate::positions::ENTRY_BYTES;
        let held = self.window.len() as u64 / size;
        if seq < self.first || seq >= self.first + held {
            let count = self.window_max.min(self.end.saturating_sub(seq)).max(1);
            self.window.resize((count * size) as usize, 0);
            if let Err(e) = self.file.read_exact_at(&mut self.window, seq * size) {
                self.window.clear();
                return Err(e);
            }
            self.first = seq;
        }
        let at = ((seq - self.first) * size) as usize;
        Ok(&self.window[at..at + size as usize])
    }
}

impl<'a> Derived<'a> {
    fn open(
        layout: &'a LogLayout,
        opts: &'a Options<'a>,
        files: &mut Vec<(String, String)>,
    ) -> Result<Self, Failure> {
        let dir = layout.index();
        let manifest = dir.join("MANIFEST");
        let index = match fs::read(&manifest) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return fail(manifest.display().to_string(), e.to_string()),
            Ok(bytes) => {
                crate::index::parse_manifest(&bytes)
                    .or_else(|why| fail(manifest.display().to_string(), why))?;
                let index = Index::open_read_only(&dir, 1)
                    .or_else(|e| fail(dir.display().to_string(), e.to_string()))?;
                for run in index.runs() {
                    run.check_all()
                        .or_else(|e| fail(dir.display().to_string(), e.to_string()))?;
                }
                Some(index)
            }
        };
        let end = index.as_ref().map_or(0, Index::durable_end);
        let positions = match fs::File::open(layout.positions()) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return fail(layout.positions().display().to_string(), e.to_string()),
        };
        let len = match &positions {
            Some(f) => f
                .metadata()
                .or_else(|e| fail(layout.positions().display().to_string(), e.to_string()))?
                .len(),
            None => 0,
        };
        let need = end * crate::positions::ENTRY_BYTES;
        if len < need {
            return fail(
                layout.positions().display().to_string(),
                format!("holds fewer entries than the index manifest vouches for ({end})"),
            );
        }
        let fingerprint = fs::read_to_string(layout.index_fingerprint()).ok();
        let same_derivation = match (opts.indexer, &fingerprint) {
            (Some(ix), Some(f)) => *f == ix.fingerprint(),
            _ => false,
        };
        if let Ok(why) = fs::read_to_string(layout.rebuild_marker()) {
            files.push((
                "index/REBUILD".into(),
                format!("a reader found damage ({why}); the next opening rebuilds the index"),
            ));
        }
        let pruned_since_built = layout.pruned_marker().exists();
        if pruned_since_built {
            files.push((
                "index/PRUNED".into(),
                "retention pruned records since the index was built: it still holds their keys, which the next opening drops".into(),
            ));
        }
        Ok(Derived {
            layout,
            opts,
            end,
            index,
            positions: positions.map(|file| std::cell::RefCell::new(PositionsFile::new(file, end))),
            keys_seen: std::cell::Cell::new(0),
            memberships: std::cell::RefCell::new(crate::index::Memberships::new()),
            held: std::cell::RefCell::new(None),
            same_derivation,
            pruned_since_built,
        })
    }

    /// Which records' index entries are checked (so their keys are wanted).
    fn sample(&self) -> Sample {
        Sample {
            checked: self.index.is_some() && self.same_derivation,
            end: self.end,
            full: self.opts.full,
        }
    }

    /// Record `seq` at `offset` against its position and, when checked, its index entries.
    fn check_record(&self, seq: u64, offset: u64, r: &RecordFacts) -> Result<(), Failure> {
        if seq >= self.end {
            return Ok(());
        }
        let at = seq * crate::positions::ENTRY_BYTES;
        let loc = || {
            format!(
                "{} entry {seq} (byte {at})",
                self.layout.positions().display()
            )
        };
        let mut positions = self
            .positions
            .as_ref()
            .expect("checked in open")
            .borrow_mut();
        let entry = positions
            .entry(seq)
            .or_else(|e| fail(loc(), format!("cannot be read: {e}")))?;
        let Some(p) = crate::positions::decode_entry(seq, entry) else {
            return fail(loc(), "does not match its checksum");
        };
        if (p.offset, p.ingested_ns, p.event_ns) != (offset, r.ingested_ns, r.event_ns) {
            return fail(
                loc(),
                format!(
                    "says offset {}, ingested {}, event time {}; the record is at {offset}, ingested {}, event time {}",
                    p.offset, p.ingested_ns, p.event_ns, r.ingested_ns, r.event_ns
                ),
            );
        }
        let (Some(index), Some(keys)) = (&self.index, &r.keys) else {
            return Ok(());
        };
        let dir = self.layout.index().display().to_string();
        let at_index = |e: crate::StoreError| Failure {
            location: dir.clone(),
            message: e.to_string(),
        };
        // Admission takes an id once, so the index finds each record by its id alone: an
        // earlier seq there would answer a read by id with another record.
        match index.lookup_rid(&r.id).map_err(at_index)? {
            Some(s) if s == seq => {}
            Some(other) => {
                return fail(
                    dir,
                    format!(
                        "record {seq}'s id sha256:{} is record {other}'s in the index (a read by id would answer another record)",
                        hex::encode(r.id)
                    ),
                );
            }
            None => {
                return fail(
                    dir,
                    format!(
                        "record {seq}'s id sha256:{} is not in the index (dedupe would append it again)",
                        hex::encode(r.id)
                    ),
                );
            }
        }
        let mut memberships = self.memberships.borrow_mut();
        for k in keys {
            if !memberships.contains(index, k, seq).map_err(at_index)? {
                return fail(
                    dir,
                    format!(
                        "record {seq} is missing from a key it carries ({})",
                        hex::encode(k)
                    ),
                );
            }
        }
        let run = index
            .runs()
            .iter()
            .find(|run| (run.first..run.end).contains(&seq));
        if !run
            .map_or(Ok(false), |run| run.has_time(r.event_ns, seq))
            .map_err(at_index)?
        {
            return fail(
                dir,
                format!("record {seq} is missing from the event-time index"),
            );
        }
        for run in index
            .runs()
            .iter()
            .filter(|run| (run.first..run.end).contains(&seq))
        {
            let mut held = self.held.borrow_mut();
            if held.as_ref().is_none_or(|(first, _)| *first != run.first) {
                *held = Some((run.first, run.held_filters().map_err(at_index)?));
            }
            let (_, filters) = held.as_ref().expect("held just above");
            if !filters.ids.may_contain(&r.id) {
                return fail(
                    dir,
                    format!(
                        "the Bloom filter of run {}..{} does not admit record {seq}",
                        run.first, run.end
                    ),
                );
            }
            for k in keys {
                if !filters.keys.may_contain(k) {
                    return fail(
                        dir,
                        format!(
                            "the key filter of run {}..{} does not admit key {} of record {seq}",
                            run.first,
                            run.end,
                            hex::encode(k)
                        ),
                    );
                }
            }
        }
        self.keys_seen.set(self.keys_seen.get() + keys.len() as u64);
        Ok(())
    }

    /// The summary lines, and with `full` that the runs hold nothing but the log's entries.
    fn finish(&self, records: u64, files: &mut Vec<(String, String)>) -> Result<(), Failure> {
        let dir = self.layout.index().display().to_string();
        if records < self.end {
            return fail(
                dir,
                format!(
                    "the index manifest vouches for {} records but the log holds {records}",
                    self.end
                ),
            );
        }
        files.push((
            "index/positions".into(),
            format!(
                "{} entries: checksums, offsets, ingest and event times against the records",
                self.end
            ),
        ));
        let Some(index) = &self.index else {
            files.push((
                "index/".into(),
                "no runs yet (rebuilt from the log on open)".into(),
            ));
            return Ok(());
        };
        if self.opts.full && self.same_derivation {
            let (mut posts, mut rids, mut times) = (0u64, 0u64, 0u64);
            for run in index.runs() {
                run.check_bitmaps()
                    .or_else(|e| fail(dir.clone(), e.to_string()))?;
                posts += run.post.len() as u64;
                rids += run.rid.len() as u64;
                times += run.time.len() as u64;
            }
            let extra_keys = if self.pruned_since_built {
                posts < self.keys_seen.get()
            } else {
                posts != self.keys_seen.get()
            };
            if extra_keys || times != self.end || rids != self.end {
                return fail(
                    dir,
                    format!(
                        "the runs hold {posts} key entries, {rids} ids and {times} times for {} records carrying {} keys: the index holds entries the log does not",
                        self.end,
                        self.keys_seen.get()
                    ),
                );
            }
        }
        let agreement = match (self.same_derivation, self.opts.full) {
            (false, _) => {
                "built with other packs or checked without them: damage only (rebuilt on open)"
                    .to_string()
            }
            (true, true) => "every record's id, keys and time, and nothing else".to_string(),
            (true, false) => format!(
                "a sample of {} records' ids, keys and times (every record with --full)",
                self.end.min(SAMPLE_RECORDS)
            ),
        };
        files.push((
            "index/MANIFEST, run-*".into(),
            format!(
                "{} runs over {} records: manifest checksum, every block and Bloom filter; agreement with the log: {agreement}",
                index.runs().len(),
                self.end
            ),
        ));
        Ok(())
    }
}

/// Nodes of the stored tree read in runs, a buffer per level: verification asks for each
/// level's nodes in ascending order, and one read per node was a tenth of its time.
struct NodeRuns<'t> {
    tree: &'t TreeFiles,
    /// Per level: the index of the first node held, how many are held, their bytes.
    levels: Vec<(u64, usize, Vec<u8>)>,
}

/// Nodes read at a time from one level: 64 KiB.
const NODE_RUN: usize = 2048;

impl<'t> NodeRuns<'t> {
    fn new(tree: &'t TreeFiles) -> Self {
        NodeRuns {
            tree,
            levels: Vec::new(),
        }
    }

    /// The stored node, or `None` if the level's file does not hold it (yet).
    fn node(&mut self, level: u8, index: u64) -> Option<Hash> {
        let l = usize::from(level);
        if self.levels.len() <= l {
            self.levels
                .resize_with(l + 1, || (0, 0, vec![0; NODE_RUN * HASH_SIZE]));
        }
        let (first, held, buf) = &mut self.levels[l];
        if !(*first..*first + *held as u64).contains(&index) {
            // A node past those held may have been written since they were read.
            *first = index;
            *held = self.tree.read_run(level, index, buf);
            if *held == 0 {
                return None;
            }
        }
        let at = (index - *first) as usize * HASH_SIZE;
        Some(buf[at..at + HASH_SIZE].try_into().expect("one hash"))
    }
}

/// Checks each record (in parallel) and leaves what verification needs of it in `out`, one
/// vector per thread holding its run of frames in order (emptied first, their room kept from
/// window to window); on failure, the index of the first bad record and why.
fn check_records(
    data: &[u8],
    frames: &[FrameSpan],
    first_seq: u64,
    wants_keys: &(dyn Fn(u64) -> bool + Sync),
    indexer: Option<&dyn Indexer>,
    select: Option<&(dyn Fn(&str) -> bool + Sync)>,
    out: &mut [Vec<RecordFacts>],
) -> Result<(), (usize, String)> {
    out.iter_mut().for_each(Vec::clear);
    let per = frames.len().div_ceil(out.len()).max(1);
    let results: Vec<Result<(), (usize, String)>> = std::thread::scope(|s| {
        let handles: Vec<_> = frames
            .chunks(per)
            .zip(out.iter_mut())
            .enumerate()
            .map(|(c, (chunk, facts))| {
                s.spawn(move || {
                    facts.reserve(chunk.len());
                    for (k, (_, range)) in chunk.iter().enumerate() {
                        let i = c * per + k;
                        let seq = first_seq + i as u64;
                        let keys = indexer.filter(|_| wants_keys(seq));
                        facts.push(
                            check_record(&data[range.clone()], seq, keys, select)
                                .map_err(|m| (i, m))?,
                        );
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("verify thread"))
            .collect()
    });
    results.into_iter().collect()
}

/// The threads that check a segment's records.
fn checking_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(16)
}

fn check_record(
    payload: &[u8],
    seq: u64,
    indexer: Option<&dyn Indexer>,
    select: Option<&(dyn Fn(&str) -> bool + Sync)>,
) -> Result<RecordFacts, String> {
    if let Some(stub) = crate::segment::Stub::decode(payload) {
        let stub = stub?;
        if stub.seq != seq {
            return Err(format!(
                "a pruned record's stub says seq {}: records were reordered, removed or inserted",
                stub.seq
            ));
        }
        return Ok(RecordFacts {
            id: stub.id,
            leaf: stub.leaf,
            ingested_ns: stub.ingested_ns,
            event_ns: stub.event_ns,
            keys: indexer.map(|ix| ix.stub_keys(&stub)),
            stub: Some(stub),
            selected: None,
        });
    }
    // Every byte is checked either way; a record's `data` is built only when its keys are
    // to be compared with the index's.
    let picked = |s: &Stored<'_, '_>| select.is_some_and(|f| f(s.envelope.event_type));
    let (stored_seq, id, ingested_ns, event_ns, keys, picked) = match indexer {
        Some(ix) => read_stored(payload, |s| {
            (
                s.seq,
                s.record_id.0,
                s.ingested_ns,
                s.envelope.time_nanos,
                Some(ix.keys(s)),
                picked(s),
            )
        })?,
        None => read_stored_head(payload, |s| {
            (
                s.seq,
                s.record_id.0,
                s.ingested_ns,
                s.envelope.time_nanos,
                None,
                picked(s),
            )
        })?,
    };
    if stored_seq != seq {
        return Err(format!(
            "record says seq {stored_seq}: records were reordered, removed or inserted"
        ));
    }
    Ok(RecordFacts {
        id,
        leaf: sealog_merkle::leaf_hash(payload),
        ingested_ns,
        event_ns,
        keys,
        stub: None,
        selected: picked.then(|| payload.to_vec()),
    })
}

/// Hands each of the first `count` records of a log to `f`, checked as `verify` checks
/// them, for callers that check their own files against a log (the ledger's quarantine
/// payloads against the quarantine records that name them).
pub fn for_each_record(
    layout: &LogLayout,
    count: u64,
    mut f: impl FnMut(&Stored<'_, '_>) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let log_dir = layout.segments();
    let mut seen = 0u64;
    let segments =
        segment::list(&log_dir).or_else(|e| fail(log_dir.display().to_string(), e.to_string()))?;
    let mut spare = Vec::new();
    for (i, (first, path)) in segments.iter().enumerate() {
        let sealed = i + 1 < segments.len();
        let mut windows = FrameWindows::open(path, *first, sealed, &mut spare)
            .or_else(|e| fail(path.display().to_string(), e.to_string()))?;
        loop {
            let Window { data, frames } = match windows.next(count - seen) {
                Ok(Some(w)) => w,
                Ok(None) => break,
                Err(WindowError::Io(e)) => return fail(path.display().to_string(), e.to_string()),
                Err(WindowError::Frame { offset, why, .. }) => {
                    return fail(format!("{} at offset {offset}", path.display()), why);
                }
            };
            for (offset, range) in frames {
                seen += 1;
                if crate::segment::Stub::decode(&data[range.clone()]).is_some() {
                    continue;
                }
                read_stored(&data[range.clone()], &mut f)
                    .or_else(|m| fail(format!("{} at offset {offset}", path.display()), m))??;
            }
        }
        windows.recycle(&mut spare);
        if seen == count {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealog_merkle::NodeReader;
    use std::io::Write;

    fn node(level: u8, index: u64) -> Hash {
        let mut h = [level; 32];
        h[..8].copy_from_slice(&index.to_le_bytes());
        h
    }

    #[test]
    fn nodes_read_in_runs_are_the_stored_nodes_and_a_node_written_later_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let counts = [NODE_RUN as u64 * 2 + 5, 700, 3];
        for (level, &n) in counts.iter().enumerate() {
            let bytes: Vec<u8> = (0..n).flat_map(|i| node(level as u8, i)).collect();
            fs::write(dir.path().join(format!("level-{level:02}")), bytes).unwrap();
        }
        let tree = TreeFiles::read_only(dir.path());
        let mut runs = NodeRuns::new(&tree);
        // Levels interleaved as verification asks them, each ascending with gaps.
        for i in (0..counts[0]).step_by(3) {
            for (level, &n) in counts.iter().enumerate() {
                let (level, index) = (level as u8, i >> level);
                let want = (index < n).then(|| node(level, index));
                assert_eq!(runs.node(level, index), want, "level {level} node {index}");
                assert_eq!(tree.node(level, index).ok(), want);
            }
        }
        assert_eq!(runs.node(7, 0), None, "a level with no file");

        // Nodes appended after a run was read are found: a miss reads again.
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("level-02"))
            .unwrap();
        assert_eq!(runs.node(2, 3), None);
        f.write_all(&node(2, 3)).unwrap();
        assert_eq!(runs.node(2, 3), Some(node(2, 3)));
    }

    #[test]
    fn positions_read_a_window_at_a_time_are_the_file_s_entries_wherever_a_read_lands() {
        let size = crate::positions::ENTRY_BYTES as usize;
        let entry = |seq: u64| -> Vec<u8> { (0..size).map(|i| (seq as u8) ^ (i as u8)).collect() };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("positions");
        let mut f = fs::File::create(&path).unwrap();
        for seq in 0..100 {
            f.write_all(&entry(seq)).unwrap();
        }
        let mut positions = PositionsFile::new(fs::File::open(&path).unwrap(), 100);
        positions.window_max = 7;
        // In order across windows, then back, then the last entry alone.
        for seq in (0..100).chain([3, 50, 6, 99, 0]) {
            assert_eq!(positions.entry(seq).unwrap(), entry(seq), "entry {seq}");
        }
        // A file cut short (a writer's recovery trimming it) is an error, and what is read
        // after it is read again rather than taken from the failed window.
        f.set_len(60 * size as u64).unwrap();
        let mut positions = PositionsFile::new(fs::File::open(&path).unwrap(), 100);
        positions.window_max = 7;
        assert_eq!(positions.entry(0).unwrap(), entry(0));
        assert!(positions.entry(56).is_err());
        assert_eq!(
            positions.entry(57).unwrap_err().kind(),
            std::io::ErrorKind::UnexpectedEof
        );
        assert_eq!(positions.entry(49).unwrap(), entry(49));
    }
}
