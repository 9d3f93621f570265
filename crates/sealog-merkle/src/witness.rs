//! C2SP tlog-witness `add-checkpoint`: the request a log sends, and the witness's decision
//! over it, as pure functions. Storage of what the witness saw and the HTTP around it are the
//! caller's; the decision and the update must be one atomic step there.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::checkpoint::Checkpoint;
use crate::hash::Hash;
use crate::note::{self, Verifier};
use crate::proof::verify_consistency;

/// The spec's bound on consistency proof lines.
pub const MAX_PROOF_LINES: usize = 63;

/// An `add-checkpoint` request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size of the checkpoint the submitter believes the witness cosigned last.
    pub old: u64,
    /// An RFC 6962 consistency proof from `old` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note.
    pub checkpoint: String,
}

impl AddCheckpoint {
    pub fn to_body(&self) -> String {
        let mut s = format!("old {}\n", self.old);
        for h in &self.proof {
            s.push_str(&STANDARD.encode(h));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.checkpoint);
        s
    }

    pub fn parse(body: &str) -> Result<Self, String> {
        let (first, mut rest) = body.split_once('\n').ok_or("no old size line")?;
        let old = first
            .strip_prefix("old ")
            .ok_or("the first line is not `old <size>`")?;
        if old.is_empty()
            || !old.bytes().all(|b| b.is_ascii_digit())
            || (old.len() > 1 && old.starts_with('0'))
        {
            return Err(format!(
                "old size {old:?} is not a decimal without leading zeroes"
            ));
        }
        let old: u64 = old
            .parse()
            .map_err(|_| format!("old size {old:?} is out of range"))?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest
                .split_once('\n')
                .ok_or("no empty line before the checkpoint")?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(format!(
                    "more than {MAX_PROOF_LINES} consistency proof lines"
                ));
            }
            let bytes = STANDARD
                .decode(line)
                .map_err(|_| format!("proof line {} is not base64", proof.len() + 1))?;
            let hash: Hash = bytes
                .try_into()
                .map_err(|_| format!("proof line {} is not a 32-byte hash", proof.len() + 1))?;
            proof.push(hash);
        }
        Ok(AddCheckpoint {
            old,
            proof,
            checkpoint: rest.to_string(),
        })
    }
}

/// Why a witness refuses a request, with the status code the spec gives each case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 400: malformed, or an old size past the checkpoint's.
    BadRequest(String),
    /// 403: no signature by a key trusted for the origin.
    Forbidden(String),
    /// 404: a log this witness does not follow.
    UnknownLog(String),
    /// 409: the old size is not the size last cosigned (which is given), or the same size
    /// with another root.
    Conflict { size: u64, why: String },
    /// 422: the consistency proof does not verify.
    BadProof(String),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BadRequest(_) => 400,
            Refusal::Forbidden(_) => 403,
            Refusal::UnknownLog(_) => 404,
            Refusal::Conflict { .. } => 409,
            Refusal::BadProof(_) => 422,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Refusal::BadRequest(m)
            | Refusal::Forbidden(m)
            | Refusal::UnknownLog(m)
            | Refusal::BadProof(m) => m,
            Refusal::Conflict { why, .. } => why,
        }
    }
}

/// The checkpoint's origin line, read before any signature is checked (to find its keys).
pub fn origin_of(note_text: &str) -> Option<&str> {
    note_text.split('\n').next().filter(|o| !o.is_empty())
}

/// The witness's decision: given the keys it trusts for the checkpoint's origin and the
/// checkpoint it cosigned last for that origin (size, root), either the checkpoint to cosign
/// (its note text without signatures, and its parsed body) or a refusal.
pub fn check(
    req: &AddCheckpoint,
    keys: &[Verifier],
    last: Option<(u64, Hash)>,
) -> Result<(String, Checkpoint), Refusal> {
    let opened =
        note::open(&req.checkpoint, &keys.iter().collect::<Vec<_>>()).map_err(|e| match e {
            note::NoteError::NoKnownSignature | note::NoteError::InvalidSignature { .. } => {
                Refusal::Forbidden(format!(
                    "no valid signature by a key trusted for this log: {e}"
                ))
            }
            _ => Refusal::BadRequest(format!("not a signed note: {e}")),
        })?;
    let cp = Checkpoint::parse(&opened.text)
        .map_err(|e| Refusal::BadRequest(format!("not a checkpoint: {e}")))?;
    if req.old > cp.size {
        return Err(Refusal::BadRequest(format!(
            "old size {} is past the checkpoint's size {}",
            req.old, cp.size
        )));
    }
    let (last_size, last_root) = last.unwrap_or((0, crate::empty_root()));
    if req.old != last_size {
        return Err(Refusal::Conflict {
            size: last_size,
            why: format!(
                "old size {} is not the size last cosigned for this log ({last_size})",
                req.old
            ),
        });
    }
    if req.old == 0 {
        if !req.proof.is_empty() {
            return Err(Refusal::BadProof(
                "a proof from size 0 must be empty".into(),
            ));
        }
    } else if req.old == cp.size {
        if cp.root != last_root {
            return Err(Refusal::Conflict {
                size: last_size,
                why: format!(
                    "a different root for size {} than the one cosigned",
                    cp.size
                ),
            });
        }
        if !req.proof.is_empty() {
            return Err(Refusal::BadProof(
                "a proof between equal sizes must be empty".into(),
            ));
        }
    } else {
        verify_consistency(req.old, cp.size, &last_root, &cp.root, &req.proof).map_err(|e| {
            Refusal::BadProof(format!(
                "no consistency from the cosigned size {} to {}: {e}",
                req.old, cp.size
            ))
        })?;
    }
    Ok((opened.text, cp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::Signer;
    use crate::{Frontier, NodeReader, consistency_proof, leaf_hash};

    struct Tree(Vec<Vec<Hash>>);
    impl NodeReader for Tree {
        fn node(&self, level: u8, index: u64) -> Result<Hash, crate::ReadError> {
            Ok(self.0[usize::from(level)][index as usize])
        }
    }

    fn tree(n: u64, salt: u8) -> (Tree, Vec<Hash>) {
        let mut f = Frontier::new();
        let mut levels: Vec<Vec<Hash>> = Vec::new();
        let mut roots = vec![crate::empty_root()];
        for i in 0..n {
            let leaf = leaf_hash(&[salt, i as u8]);
            for (level, index, h) in f.push(leaf) {
                let l = usize::from(level);
                if levels.len() <= l {
                    levels.resize(l + 1, Vec::new());
                }
                assert_eq!(levels[l].len() as u64, index);
                levels[l].push(h);
            }
            roots.push(f.root());
        }
        (Tree(levels), roots)
    }

    fn signed(log: &Signer, size: u64, root: Hash) -> String {
        let body = Checkpoint {
            origin: log.name().into(),
            size,
            root,
            extensions: vec![],
        }
        .to_body();
        note::sign(&body, &[log]).unwrap()
    }

    #[test]
    fn requests_round_trip_and_bad_ones_are_refused() {
        let req = AddCheckpoint {
            old: 3,
            proof: vec![[1; 32], [2; 32]],
            checkpoint: "o\n1\nAAAA\n\n— o AAAA\n".into(),
        };
        assert_eq!(AddCheckpoint::parse(&req.to_body()).unwrap(), req);
        for bad in [
            "",
            "old 01\n\nx",
            "old -1\n\nx",
            "new 1\n\nx",
            "old 1\nnot base64!\n\nx",
            "old 1\nAQID\n\nx",
            "old 1\nabc",
        ] {
            assert!(AddCheckpoint::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!(
            "old 1\n{}\nx",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n".repeat(64)
        );
        assert!(AddCheckpoint::parse(&long).unwrap_err().contains("63"));
    }

    #[test]
    fn the_witness_follows_the_spec_status_codes() {
        let log = Signer::from_seed("example.com/log", [1; 32]).unwrap();
        let stranger = Signer::from_seed("example.com/log", [2; 32]).unwrap();
        let keys = [log.verifier()];
        let (t, roots) = tree(9, 0);
        let req = |old: u64, size: u64, proof: Vec<Hash>, by: &Signer| AddCheckpoint {
            old,
            proof,
            checkpoint: signed(by, size, roots[size as usize]),
        };
        // First sight: old 0, empty proof.
        let (_, cp) = check(&req(0, 5, vec![], &log), &keys, None).unwrap();
        assert_eq!(cp.size, 5);
        // Growth with a proof from the cosigned size.
        let proof = consistency_proof(5, 9, &t).unwrap();
        assert!(check(&req(5, 9, proof.clone(), &log), &keys, Some((5, roots[5]))).is_ok());
        // Replaying the old request once the witness moved on: 409 naming its size.
        assert_eq!(
            check(&req(0, 5, vec![], &log), &keys, Some((9, roots[9]))).unwrap_err(),
            Refusal::Conflict {
                size: 9,
                why: "old size 0 is not the size last cosigned for this log (9)".into()
            }
        );
        // A wrong proof: 422.
        let mut wrong = proof.clone();
        wrong[0][0] ^= 1;
        assert_eq!(
            check(&req(5, 9, wrong, &log), &keys, Some((5, roots[5])))
                .unwrap_err()
                .status(),
            422
        );
        // A fork: another tree's checkpoint of a larger size, proof from its own history.
        let (ft, froots) = tree(9, 1);
        let forked = AddCheckpoint {
            old: 5,
            proof: consistency_proof(5, 9, &ft).unwrap(),
            checkpoint: signed(&log, 9, froots[9]),
        };
        assert_eq!(
            check(&forked, &keys, Some((5, roots[5])))
                .unwrap_err()
                .status(),
            422
        );
        // The same size with another root: 409.
        let same = AddCheckpoint {
            old: 5,
            proof: vec![],
            checkpoint: signed(&log, 5, froots[5]),
        };
        assert_eq!(
            check(&same, &keys, Some((5, roots[5])))
                .unwrap_err()
                .status(),
            409
        );
        // Old past the checkpoint: 400. Signed by no trusted key: 403.
        assert_eq!(
            check(&req(6, 5, vec![], &log), &keys, None)
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            check(&req(0, 5, vec![], &stranger), &keys, None)
                .unwrap_err()
                .status(),
            403
        );
        // A proof from size 0 must be empty.
        assert_eq!(
            check(&req(0, 5, proof, &log), &keys, None)
                .unwrap_err()
                .status(),
            422
        );
    }
}
