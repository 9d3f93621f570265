//! A run's integrity check against the signed checkpoints: the newest checkpoint verifies
//! under the log's key, it extends the one the last run checked (a consistency proof between
//! the two roots), and every record new since then hashes to a leaf of it (multiproofs over
//! runs of leaves recomputed from the records' bytes). O(new records), like the rest of a run.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use sealog_ledger::{Ledger, SignedCheckpoint};
use sealog_merkle::Hash;

use crate::CheckError;

/// What a run's integrity check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integrity {
    pub ok: bool,
    /// Records whose leaves were checked.
    pub records: u64,
    pub message: Option<String>,
}

impl Integrity {
    pub fn to_json(&self) -> Value {
        let mut v = json!({"ok": self.ok, "records": self.records});
        if let Some(m) = &self.message {
            v["message"] = json!(m);
        }
        v
    }
}

/// Leaves proven per multiproof.
const LEAVES_PER_PROOF: u64 = 16_384;

pub(crate) fn root_text(root: &Hash) -> String {
    STANDARD.encode(root)
}

fn parse_root(text: &str) -> Option<Hash> {
    STANDARD.decode(text).ok()?.try_into().ok()
}

/// The leaf hashes of `seqs`, recomputed from each record's bytes; a record retention pruned
/// gives the leaf its stub keeps (the store has checked it against the tree's, and `verify`
/// checks that a signed retention record accounts for it).
fn leaves_of(ledger: &Ledger, seqs: &[u64]) -> Result<Vec<Option<Hash>>, CheckError> {
    match ledger.get_many_with_leaves(seqs) {
        Ok(records) => Ok(records
            .into_iter()
            .map(|r| r.map(|(_, leaf)| leaf))
            .collect()),
        Err(sealog_ledger::Error::Pruned(_)) => seqs
            .iter()
            .map(|&seq| match ledger.get_with_leaf(seq) {
                Ok(r) => Ok(r.map(|(_, leaf)| leaf)),
                Err(sealog_ledger::Error::Pruned(stub)) => Ok(Some(stub.leaf)),
                Err(e) => Err(e.into()),
            })
            .collect(),
        Err(e) => Err(e.into()),
    }
}

/// Checks `cp` and the records `from..cp.size` against it, given the size and root the last
/// run checked. `Err` only when the log could not be read; a mismatch is `ok: false`.
pub(crate) fn check(
    ledger: &Ledger,
    cp: &SignedCheckpoint,
    from: u64,
    previous: Option<(u64, &str)>,
) -> Result<Integrity, CheckError> {
    let failed = |records, message: String| Integrity {
        ok: false,
        records,
        message: Some(message),
    };
    let verifier = match sealog_merkle::note::Verifier::parse(&ledger.verifier_key()) {
        Ok(v) => v,
        Err(e) => {
            return Ok(failed(
                0,
                format!("the log's verifier key does not parse: {e}"),
            ));
        }
    };
    let opened = match sealog_merkle::note::open(&cp.note, &[&verifier]) {
        Ok(o) => o,
        Err(e) => {
            return Ok(failed(
                0,
                format!("the newest checkpoint does not verify: {e}"),
            ));
        }
    };
    match sealog_merkle::checkpoint::Checkpoint::parse(&opened.text) {
        Ok(c) if c.size == cp.size && c.root == cp.root => {}
        _ => {
            return Ok(failed(
                0,
                "the newest checkpoint's signed text does not name its size and root".into(),
            ));
        }
    }
    if let Some((size, root)) = previous.filter(|(s, _)| *s > 0) {
        let Some(root) = parse_root(root) else {
            return Ok(failed(
                0,
                format!("the last run's root at size {size} does not parse"),
            ));
        };
        if size > cp.size {
            return Ok(failed(
                0,
                format!(
                    "the log has {} records; the last run checked {size}",
                    cp.size
                ),
            ));
        }
        let proof = ledger.consistency_proof(size, cp.size)?;
        if let Err(e) = sealog_merkle::verify_consistency(size, cp.size, &root, &cp.root, &proof) {
            return Ok(failed(
                0,
                format!(
                    "the checkpoint at size {} does not extend the tree the last run checked at size {size}: {e}",
                    cp.size
                ),
            ));
        }
    }
    let mut start = from;
    while start < cp.size {
        let end = (start + LEAVES_PER_PROOF).min(cp.size);
        let seqs: Vec<u64> = (start..end).collect();
        let mut leaves = Vec::with_capacity(seqs.len());
        for (seq, got) in seqs.iter().zip(leaves_of(ledger, &seqs)?) {
            match got {
                Some(leaf) => leaves.push(leaf),
                None => return Ok(failed(start, format!("record {seq} is missing"))),
            }
        }
        let proof = ledger.multiproof(&seqs, cp.size)?;
        if let Err(e) = sealog_merkle::verify_multiproof(&seqs, &leaves, cp.size, &cp.root, &proof)
        {
            return Ok(failed(
                start,
                format!(
                    "records {start}..{end} do not hash to the signed root at size {}: {e}",
                    cp.size
                ),
            ));
        }
        start = end;
    }
    Ok(Integrity {
        ok: true,
        records: cp.size - from,
        message: None,
    })
}
