//! The offline check of an export: everything it needs is in the three files and, for the
//! key, what the caller pins. Records are checked as they stream by; only each record's seq
//! and leaf hash (40 bytes) are kept, to check the multiproof at the end.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use sealog_ledger::{Located, Packs, Query, Unplaced, locate, place, satisfies};
use sealog_merkle::checkpoint::Checkpoint;
use sealog_merkle::note::{self, Verifier};
use sealog_merkle::{Hash, leaf_hash, root_from_multiproof};

use crate::files::{dir_of, sha256_hex};
use crate::manifest::{Format, Manifest};
use crate::{parquet_file, proof};

/// What a verified export holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub format: Format,
    pub count: u64,
    pub bytes: u64,
    pub tree_size: u64,
    /// The checkpoint's origin (the log's name).
    pub origin: String,
    /// The key was given by the caller, not only taken from the manifest.
    pub key_pinned: bool,
    /// Every byte of the file was checked, not only its rows: true of JSON Lines, and of a
    /// Parquet file this release wrote (its footer and page index are written again from the
    /// rows and compared); a Parquet file of an earlier release has its rows checked alone.
    pub metadata_checked: bool,
    /// Records of the log below the cut that the file does not hold: none means it holds the
    /// whole log as of its cut, which is the one completeness a file can prove. A manifest's
    /// filters are not signed, so a filtered export passed off as unfiltered shows here.
    pub missing: u64,
    /// The manifest names no filter but the cut (history view, no window, no axis).
    pub unfiltered: bool,
}

/// The first thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Failure(pub String);

fn fail<T>(m: impl Into<String>) -> Result<T, Failure> {
    Err(Failure(m.into()))
}

/// Checks an export from its manifest, offline. `pinned` is the verifier key to trust (C2SP
/// vkey); without it the manifest's own key is used, which proves integrity but not origin.
pub fn verify(
    manifest_path: &Path,
    pinned: Option<&str>,
    packs: &Packs,
) -> Result<Verified, Failure> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| Failure(format!("{}: {e}", p.display())));
    let m = Manifest::from_bytes(&read(manifest_path)?)
        .map_err(|e| Failure(format!("{}: {e}", manifest_path.display())))?;
    if m.packs != packs.fingerprint() {
        return fail(
            "the export was made with other packs than these; pass the same --packs DIR as the log it came from, so its records' axes can be derived again",
        );
    }
    // FILE.manifest.json describes FILE and FILE.proof beside it, whatever FILE is called.
    let manifest_name = manifest_path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy();
    let Some(stem) = manifest_name
        .strip_suffix(".manifest.json")
        .filter(|s| !s.is_empty())
    else {
        return fail("a manifest is named FILE.manifest.json, beside the export FILE");
    };
    let data_path = dir_of(manifest_path).join(stem);
    let proof_file = crate::proof_path(&data_path);

    let vkey = pinned.unwrap_or(&m.verifier_key);
    if pinned.is_some_and(|p| p.trim() != m.verifier_key.trim()) {
        return fail("the manifest names another verifier key than the one pinned");
    }
    let verifier =
        Verifier::parse(vkey.trim()).map_err(|e| Failure(format!("the verifier key: {e}")))?;
    let opened = note::open(&m.checkpoint, &[&verifier])
        .map_err(|e| Failure(format!("the checkpoint's signature: {e}")))?;
    let cp =
        Checkpoint::parse(&opened.text).map_err(|e| Failure(format!("the checkpoint: {e}")))?;
    if cp.origin != verifier.name() {
        return fail(format!(
            "the checkpoint is of log {:?}, the key of {:?}",
            cp.origin,
            verifier.name()
        ));
    }
    if cp.size != m.tree_size {
        return fail(format!(
            "the manifest says tree size {}, the checkpoint {}",
            m.tree_size, cp.size
        ));
    }

    let proof_bytes = read(&proof_file)?;
    if sha256_hex(&proof_bytes) != m.proof.sha256 {
        return fail("the proof file's SHA-256 is not the manifest's");
    }
    if m.proof.kind != proof::KIND {
        return fail(format!("unknown proof kind {:?}", m.proof.kind));
    }
    let multiproof = proof::read(&proof_bytes).map_err(Failure)?;
    if multiproof.len() as u64 != m.proof.hashes {
        return fail("the proof holds another number of hashes than the manifest says");
    }

    let query = m.filters.query().map_err(Failure)?;
    if m.filters.as_of > cp.size {
        return fail("the export's cut is past the checkpoint");
    }
    let mut checker = Checker {
        packs,
        query,
        cut: m.filters.as_of,
        prev: None,
        leaves: Vec::with_capacity(m.count.min(1 << 24) as usize),
        types: BTreeSet::new(),
    };
    let path = data_path;
    let same_release = m.sealog_version == env!("CARGO_PKG_VERSION");
    let (bytes, sha256) = match m.format {
        Format::Jsonl => jsonl(&path, &mut checker)?,
        Format::Parquet => {
            // Only this release's writer can be run again; a file of an earlier one has its
            // rows checked, and the answer says its metadata was not.
            let read = parquet_file::read(&path, &mut |b| checker.check(b), same_release)
                .map_err(Failure)?;
            if read.axis_names != parquet_file::axis_names(packs, &checker.types) {
                return fail(
                    "its axis columns are not those the packs declare for its records' types",
                );
            }
            let found = hash_file(&path)?;
            if read.rewritten.as_ref().is_some_and(|again| *again != found) {
                return fail(format!(
                    "{}: its rows are sound, but the rest of the file (the footer's statistics, the page index, its other metadata) is not what Sealog writes for them: it was changed, and a reader that skips rows by those statistics would be misled",
                    path.display()
                ));
            }
            found
        }
    };
    if bytes != m.bytes || sha256 != m.sha256 {
        return fail(format!(
            "{}: its size or SHA-256 is not the manifest's",
            path.display()
        ));
    }
    if checker.leaves.len() as u64 != m.count {
        return fail(format!(
            "it holds {} records, the manifest says {}",
            checker.leaves.len(),
            m.count
        ));
    }
    checker.leaves.sort_unstable_by_key(|l| l.0);
    if let Some(w) = checker.leaves.windows(2).find(|w| w[0].0 == w[1].0) {
        return fail(format!("seq {} appears twice", w[0].0));
    }
    let (seqs, hashes): (Vec<u64>, Vec<Hash>) = checker.leaves.into_iter().unzip();
    let root = root_from_multiproof(&seqs, &hashes, cp.size, &multiproof)
        .map_err(|e| Failure(format!("the proof: {e}")))?;
    if root != cp.root {
        return fail(
            "the records and the proof do not give the checkpoint's root: a record or the proof was changed",
        );
    }
    Ok(Verified {
        format: m.format,
        count: m.count,
        bytes,
        tree_size: cp.size,
        origin: cp.origin,
        key_pinned: pinned.is_some(),
        metadata_checked: m.format == Format::Jsonl || same_release,
        // Every seq is below the cut and none repeats, so the count tells what is left out.
        missing: m.filters.as_of.saturating_sub(seqs.len() as u64),
        unfiltered: m.filters.names_none(),
    })
}

struct Checker<'a> {
    packs: &'a Packs,
    query: Query,
    cut: u64,
    prev: Option<(i64, Option<String>, u64)>,
    leaves: Vec<(u64, Hash)>,
    types: BTreeSet<String>,
}

/// What one record contributes once checked on its own: its order key, type and leaf.
struct Row {
    time_ns: i64,
    subject: Option<String>,
    seq: u64,
    event_type: String,
    leaf: Hash,
}

/// Checks record number `n` on its own: canonical, its own `record_id`, within the filters.
fn check_one(packs: &Packs, query: &Query, cut: u64, n: u64, bytes: &[u8]) -> Result<Row, String> {
    let p = place(packs, bytes, query, cut).map_err(|e| match e {
        Unplaced::Unsound(e) => format!("record {n}: {e}"),
        Unplaced::Outside { seq, why } => {
            format!("record {n} (seq {seq}) is outside the filters: {why}")
        }
    })?;
    Ok(Row {
        time_ns: p.time_ns,
        subject: p.subject,
        seq: p.seq,
        event_type: p.event_type,
        leaf: leaf_hash(bytes),
    })
}

impl Checker<'_> {
    /// Checks the next record of a Parquet file, whose columns are compared with what the
    /// record itself says: all of it is read.
    fn check(&mut self, bytes: &[u8]) -> Result<Located, String> {
        let n = self.leaves.len() as u64 + 1;
        let r = locate(self.packs, bytes).map_err(|e| format!("record {n}: {e}"))?;
        satisfies(&r, &self.query, self.cut)
            .map_err(|e| format!("record {n} (seq {}) is outside the filters: {e}", r.seq))?;
        self.absorb(Row {
            time_ns: r.time_ns,
            subject: r.subject.clone(),
            seq: r.seq,
            event_type: r.event_type.clone(),
            leaf: leaf_hash(bytes),
        })?;
        Ok(r)
    }

    /// Takes the next record's row, in file order: the order between records, the types
    /// seen, the leaves for the proof.
    fn absorb(&mut self, row: Row) -> Result<(), String> {
        let n = self.leaves.len() + 1;
        let key = (row.time_ns, row.subject, row.seq);
        if self.prev.as_ref().is_some_and(|p| *p >= key) {
            return Err(format!(
                "record {n} (seq {}) is out of order (event time, subject, seq)",
                row.seq
            ));
        }
        self.prev = Some(key);
        if !self.types.contains(&row.event_type) {
            self.types.insert(row.event_type);
        }
        self.leaves.push((row.seq, row.leaf));
        Ok(())
    }
}

/// A worker's answer for a batch: its rows, and the batch back to be filled again.
type Checked = (Result<Vec<Row>, String>, Vec<u8>);

/// Lines checked per batch handed to a worker.
const BATCH_BYTES: usize = 1 << 20;
/// Threads checking records, beside the one reading and hashing the file.
const WORKERS: usize = 2;

/// Reads a JSONL export in batches of whole lines, hashing it as it goes; workers check the
/// records of each batch on their own, and this thread takes their rows back in file order.
fn jsonl(path: &Path, checker: &mut Checker<'_>) -> Result<(u64, String), Failure> {
    let mut file = File::open(path).map_err(|e| Failure(format!("{}: {e}", path.display())))?;
    let io = |e: std::io::Error| Failure(format!("{}: {e}", path.display()));
    let (packs, query, cut) = (checker.packs, checker.query.clone(), checker.cut);
    let query = &query;
    std::thread::scope(|scope| -> Result<(u64, String), Failure> {
        let mut to = Vec::with_capacity(WORKERS);
        let mut from = Vec::with_capacity(WORKERS);
        for _ in 0..WORKERS {
            let (batch_tx, batch_rx) = std::sync::mpsc::sync_channel::<(u64, Vec<u8>)>(2);
            let (rows_tx, rows_rx) = std::sync::mpsc::sync_channel::<Checked>(2);
            scope.spawn(move || {
                for (first, batch) in batch_rx {
                    // A batch is whole lines, each ended by a newline.
                    let body = &batch[..batch.len() - 1];
                    let mut at = 0;
                    let lines = std::iter::from_fn(|| {
                        (at <= body.len()).then(|| {
                            let end =
                                memchr::memchr(b'\n', &body[at..]).map_or(body.len(), |i| at + i);
                            let line = &body[at..end];
                            at = end + 1;
                            line
                        })
                    });
                    let rows = lines
                        .enumerate()
                        .map(|(k, line)| check_one(packs, query, cut, first + k as u64, line))
                        .collect::<Result<Vec<Row>, String>>();
                    if rows_tx.send((rows, batch)).is_err() {
                        break;
                    }
                }
            });
            to.push(batch_tx);
            from.push(rows_rx);
        }
        let mut sha = Sha256::new();
        let mut bytes = 0u64;
        let (mut sent, mut received) = (0usize, 0usize);
        let mut next_record = 1u64;
        // The part of a line read past a batch's last newline, for the next batch.
        let mut carry: Vec<u8> = Vec::new();
        // Batches come back from the workers to be filled again.
        let mut spare: Vec<Vec<u8>> = Vec::new();
        let take = |received: &mut usize,
                    checker: &mut Checker<'_>,
                    spare: &mut Vec<Vec<u8>>|
         -> Result<(), Failure> {
            let (rows, batch) = from[*received % WORKERS]
                .recv()
                .map_err(|_| Failure("a checking thread stopped".into()))?;
            *received += 1;
            spare.push(batch);
            for row in rows.map_err(Failure)? {
                checker.absorb(row).map_err(Failure)?;
            }
            Ok(())
        };
        loop {
            let mut buf = spare.pop().unwrap_or_default();
            buf.clear();
            buf.reserve(carry.len() + BATCH_BYTES);
            buf.extend_from_slice(&carry);
            let start = buf.len();
            let n = (&mut file)
                .take(BATCH_BYTES as u64)
                .read_to_end(&mut buf)
                .map_err(io)?;
            sha.update(&buf[start..]);
            bytes += n as u64;
            let eof = n == 0;
            let whole = match memchr::memrchr(b'\n', &buf) {
                Some(i) => i + 1,
                None if eof && !buf.is_empty() => {
                    return Err(Failure(format!(
                        "record {next_record}: the file ends inside it"
                    )));
                }
                None if eof => break,
                None => {
                    carry = buf;
                    continue;
                }
            };
            carry.clear();
            carry.extend_from_slice(&buf[whole..]);
            buf.truncate(whole);
            let lines = memchr::memchr_iter(b'\n', &buf).count() as u64;
            if sent - received == 2 * WORKERS {
                take(&mut received, checker, &mut spare)?;
            }
            to[sent % WORKERS]
                .send((next_record, buf))
                .map_err(|_| Failure("a checking thread stopped".into()))?;
            sent += 1;
            next_record += lines;
            if eof && carry.is_empty() {
                break;
            }
        }
        drop(to);
        while received < sent {
            take(&mut received, checker, &mut spare)?;
        }
        Ok((bytes, hex::encode(sha.finalize())))
    })
}

fn hash_file(path: &Path) -> Result<(u64, String), Failure> {
    let mut file = File::open(path).map_err(|e| Failure(format!("{}: {e}", path.display())))?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Failure(format!("{}: {e}", path.display())))?;
        if n == 0 {
            return Ok((bytes, hex::encode(sha.finalize())));
        }
        sha.update(&buf[..n]);
        bytes += n as u64;
    }
}
