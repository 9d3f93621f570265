//! The offline check of an export: everything it needs is in the three files and, for the
//! key, what the caller pins. Records are checked as they stream by; only each record's seq
//! and leaf hash (40 bytes) are kept, to check the multiproof at the end.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use sealog_ledger::{Located, Packs, Query, locate, satisfies};
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
    let (bytes, sha256) = match m.format {
        Format::Jsonl => jsonl(&path, &mut checker)?,
        Format::Parquet => {
            let columns = parquet_file::read(&path, &mut |b| checker.check(b)).map_err(Failure)?;
            if columns != parquet_file::axis_names(packs, &checker.types) {
                return fail(
                    "its axis columns are not those the packs declare for its records' types",
                );
            }
            hash_file(&path)?
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

impl Checker<'_> {
    fn check(&mut self, bytes: &[u8]) -> Result<Located, String> {
        let n = self.leaves.len() + 1;
        let r = locate(self.packs, bytes).map_err(|e| format!("record {n}: {e}"))?;
        satisfies(&r, &self.query, self.cut)
            .map_err(|e| format!("record {n} (seq {}) is outside the filters: {e}", r.seq))?;
        let key = (r.time_ns, r.subject.clone(), r.seq);
        if self.prev.as_ref().is_some_and(|p| *p >= key) {
            return Err(format!(
                "record {n} (seq {}) is out of order (event time, subject, seq)",
                r.seq
            ));
        }
        self.prev = Some(key);
        if !self.types.contains(&r.event_type) {
            self.types.insert(r.event_type.clone());
        }
        self.leaves.push((r.seq, leaf_hash(bytes)));
        Ok(r)
    }
}

fn jsonl(path: &Path, checker: &mut Checker<'_>) -> Result<(u64, String), Failure> {
    let file = File::open(path).map_err(|e| Failure(format!("{}: {e}", path.display())))?;
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut sha = Sha256::new();
    let mut bytes = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|e| Failure(format!("{}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        sha.update(&line);
        bytes += n as u64;
        let Some(record) = line.strip_suffix(b"\n") else {
            return fail(format!(
                "record {}: the file ends inside it",
                checker.leaves.len() + 1
            ));
        };
        checker.check(record).map_err(Failure)?;
    }
    Ok((bytes, hex::encode(sha.finalize())))
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
