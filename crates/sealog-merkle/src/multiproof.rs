//! One proof for many leaves: the hashes that, with the leaves themselves, give the head of
//! a tree. Walking the RFC 9162 recursion, every subtree that holds none of the leaves is
//! one hash of the proof, taken left to right; a subtree holding some is split again. The
//! parts that the leaves' separate inclusion proofs share appear once, so `k` leaves of a
//! tree of `n` cost about `k · log2(n / k)` hashes instead of `k · log2(n)`.

use crate::error::{ProofError, VerifyError};
use crate::hash::{Hash, empty_root, node_hash};
use crate::tree::{NodeReader, range_hash, split};

/// The multiproof of the leaves at `indices` (strictly increasing, each below `size`) in the
/// tree of the first `size` leaves.
pub fn multiproof(
    indices: &[u64],
    size: u64,
    r: &impl NodeReader,
) -> Result<Vec<Hash>, ProofError> {
    check_indices(indices, size).map_err(|index| ProofError::IndexOutOfRange { index, size })?;
    let mut proof = Vec::new();
    if size > 0 {
        collect(0, size, indices, r, &mut proof)?;
    }
    Ok(proof)
}

fn collect(
    lo: u64,
    hi: u64,
    indices: &[u64],
    r: &impl NodeReader,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    if indices.is_empty() {
        out.push(range_hash(lo, hi, r)?);
        return Ok(());
    }
    if hi - lo == 1 {
        return Ok(());
    }
    let mid = lo + split(hi - lo);
    let cut = indices.partition_point(|&i| i < mid);
    collect(lo, mid, &indices[..cut], r, out)?;
    collect(mid, hi, &indices[cut..], r, out)
}

/// The first index that breaks "strictly increasing, below `size`", if any.
fn check_indices(indices: &[u64], size: u64) -> Result<(), u64> {
    let mut prev: Option<u64> = None;
    for &i in indices {
        if i >= size || prev.is_some_and(|p| i <= p) {
            return Err(i);
        }
        prev = Some(i);
    }
    Ok(())
}

/// The head of the tree of `size` leaves that `leaves` (the hashes of the leaves at
/// `indices`, in that order) and `proof` give, using every hash of the proof exactly once.
pub fn root_from_multiproof(
    indices: &[u64],
    leaves: &[Hash],
    size: u64,
    proof: &[Hash],
) -> Result<Hash, VerifyError> {
    if let Err(index) = check_indices(indices, size) {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    if leaves.len() != indices.len() {
        return Err(VerifyError::WrongProofLength {
            expected: indices.len(),
            actual: leaves.len(),
        });
    }
    if size == 0 {
        return match proof.len() {
            0 => Ok(empty_root()),
            n => Err(VerifyError::WrongProofLength {
                expected: 0,
                actual: n,
            }),
        };
    }
    let mut next = 0;
    let root = fold(0, size, indices, leaves, proof, &mut next)?;
    if next != proof.len() {
        return Err(VerifyError::WrongProofLength {
            expected: next,
            actual: proof.len(),
        });
    }
    Ok(root)
}

fn fold(
    lo: u64,
    hi: u64,
    indices: &[u64],
    leaves: &[Hash],
    proof: &[Hash],
    next: &mut usize,
) -> Result<Hash, VerifyError> {
    if indices.is_empty() {
        let h = proof.get(*next).ok_or(VerifyError::WrongProofLength {
            expected: *next + 1,
            actual: proof.len(),
        })?;
        *next += 1;
        return Ok(*h);
    }
    if hi - lo == 1 {
        return Ok(leaves[0]);
    }
    let mid = lo + split(hi - lo);
    let cut = indices.partition_point(|&i| i < mid);
    let left = fold(lo, mid, &indices[..cut], &leaves[..cut], proof, next)?;
    let right = fold(mid, hi, &indices[cut..], &leaves[cut..], proof, next)?;
    Ok(node_hash(&left, &right))
}

/// Checks that `proof` shows `leaves` at `indices` in the tree of `size` leaves with head
/// `root`.
pub fn verify_multiproof(
    indices: &[u64],
    leaves: &[Hash],
    size: u64,
    root: &Hash,
    proof: &[Hash],
) -> Result<(), VerifyError> {
    if root_from_multiproof(indices, leaves, size, proof)? == *root {
        Ok(())
    } else {
        Err(VerifyError::RootMismatch)
    }
}
