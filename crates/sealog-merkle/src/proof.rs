//! RFC 9162 §2.1.3 inclusion and §2.1.4 consistency proofs.
//!
//! Generation follows the recursive PATH / SUBPROOF definitions iteratively, always
//! expressing the nodes it needs as ranges that decompose into stored perfect subtrees.
//! Verification is the RFC's bit-walking algorithm and allocates nothing.

use crate::error::{ProofError, VerifyError};
use crate::hash::{Hash, node_hash};
use crate::tree::{NodeReader, range_hash, split};

/// Audit path for leaf `index` in the tree of the first `size` leaves, ordered from the
/// leaf's sibling up to the root's child (RFC 9162 §2.1.3.1).
///
/// Reads O(log size) nodes: every sibling is a perfect subtree except at most one on the
/// right edge of the tree, which is assembled from at most log2(size) perfect subtrees.
pub fn inclusion_proof(
    index: u64,
    size: u64,
    r: &impl NodeReader,
) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut proof = Vec::with_capacity(inclusion_proof_len(index, size));
    let (mut lo, mut hi) = (0, size);
    // Descends from the root, so hashes come out root-side first.
    while hi - lo > 1 {
        let mid = lo + split(hi - lo);
        if index < mid {
            proof.push(range_hash(mid, hi, r)?);
            hi = mid;
        } else {
            proof.push(range_hash(lo, mid, r)?);
            lo = mid;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Audit path of the perfect subtree at `level` and `index` (the node over leaves
/// `index << level ..(index + 1) << level`, all below `size`) in the tree of `size`
/// leaves: the part of any of its leaves' inclusion proofs above it.
pub fn subtree_proof(
    level: u8,
    index: u64,
    size: u64,
    r: &impl NodeReader,
) -> Result<Vec<Hash>, ProofError> {
    let first = index << level;
    if (index + 1) << level > size {
        return Err(ProofError::IndexOutOfRange { index: first, size });
    }
    let mut proof = inclusion_proof(first, size, r)?;
    proof.drain(..usize::from(level));
    Ok(proof)
}

/// Checks that `proof` shows `node` as the perfect subtree at `level` and `index` of the
/// tree of `size` leaves with head `root`. Above `level`, that tree is the tree over its
/// nodes at `level` (the last one possibly partial): RFC 9162 splits a tree at the largest
/// power of two below its size, which for any size beyond one subtree is a whole number of
/// subtrees, so the node is a leaf of that smaller tree.
pub fn verify_subtree(
    node: &Hash,
    level: u8,
    index: u64,
    size: u64,
    root: &Hash,
    proof: &[Hash],
) -> Result<(), VerifyError> {
    if (index + 1) << level > size {
        return Err(VerifyError::IndexOutOfRange {
            index: index << level,
            size,
        });
    }
    verify_inclusion(node, index, size.div_ceil(1 << level), root, proof)
}

/// Proof that the tree of the first `old` leaves is a prefix of the tree of the first
/// `new` leaves (RFC 9162 §2.1.4.1).
///
/// `old == new` gives an empty proof. `old == 0` is an error
/// ([`ProofError::EmptyOldTree`]), as in the RFC, even when `new` is 0 too.
pub fn consistency_proof(old: u64, new: u64, r: &impl NodeReader) -> Result<Vec<Hash>, ProofError> {
    if old > new {
        return Err(ProofError::OldLargerThanNew { old, new });
    }
    if old == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    let mut proof = Vec::with_capacity(consistency_proof_len(old, new));
    let (mut lo, mut hi) = (0, new);
    // `old_is_node` is SUBPROOF's flag b: while true, the old tree is itself a node
    // on the current path, and the verifier already knows its hash.
    let mut old_is_node = true;
    while old != hi {
        let mid = lo + split(hi - lo);
        if old <= mid {
            proof.push(range_hash(mid, hi, r)?);
            hi = mid;
        } else {
            proof.push(range_hash(lo, mid, r)?);
            lo = mid;
            old_is_node = false;
        }
    }
    if !old_is_node {
        proof.push(range_hash(lo, hi, r)?);
    }
    proof.reverse();
    Ok(proof)
}

/// Number of hashes in the inclusion proof of `index` in a tree of `size` (`index < size`).
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    // Below the level where the paths to `index` and to the last leaf meet, every
    // level contributes a sibling; above it only levels where the path turns right.
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// Number of hashes in the consistency proof for `0 < old < new`.
fn consistency_proof_len(old: u64, new: u64) -> usize {
    // The proof is the inclusion path of the old tree's last perfect subtree,
    // preceded by that subtree's hash unless it is the whole old tree.
    let shift = old.trailing_zeros();
    let index = (old - 1) >> shift;
    let last = (new - 1) >> shift;
    let inner = 64 - (index ^ last).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize + usize::from(!old.is_power_of_two())
}

/// Checks that `proof` shows `leaf` at `index` in the tree of `size` leaves with head `root`.
///
/// The proof does not pin down `size` on its own (a proof for leaf 0 of a 3-leaf tree also
/// passes with size 4 and the same root), so `size` and `root` must come together from an
/// authenticated tree head such as a signed checkpoint.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    root: &Hash,
    proof: &[Hash],
) -> Result<(), VerifyError> {
    if index >= size {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(VerifyError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    // `fn_` walks the leaf's position up the tree and `sn` the last leaf's; where they
    // coincide the node is on the right edge and may have no right sibling.
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    debug_assert_eq!(sn, 0, "proof length check disagrees with the path walk");
    if r != *root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}

/// Checks that `proof` shows the tree of `old` leaves with head `old_root` to be a prefix
/// of the tree of `new` leaves with head `new_root` (RFC 9162 §2.1.4.2).
///
/// `old == new` requires an empty proof and equal roots; `old == 0` is always rejected
/// ([`VerifyError::EmptyOldTree`]).
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), VerifyError> {
    if old > new {
        return Err(VerifyError::OldLargerThanNew { old, new });
    }
    if old == 0 {
        return Err(VerifyError::EmptyOldTree);
    }
    if old == new {
        if !proof.is_empty() {
            return Err(VerifyError::WrongProofLength {
                expected: 0,
                actual: proof.len(),
            });
        }
        if old_root != new_root {
            return Err(VerifyError::RootMismatch);
        }
        return Ok(());
    }
    let expected = consistency_proof_len(old, new);
    if proof.len() != expected {
        return Err(VerifyError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    // When the old tree is a perfect subtree of the new one its head is the
    // starting node and the proof leaves it out.
    let (seed, rest) = if old.is_power_of_two() {
        (old_root, proof)
    } else {
        (&proof[0], &proof[1..])
    };
    let (mut fn_, mut sn) = (old - 1, new - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*seed, *seed);
    for c in rest {
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    debug_assert_eq!(sn, 0, "proof length check disagrees with the path walk");
    if fr != *old_root {
        return Err(VerifyError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proof_lengths_match_known_proofs() {
        assert_eq!(inclusion_proof_len(0, 1), 0);
        assert_eq!(inclusion_proof_len(0, 8), 3);
        assert_eq!(inclusion_proof_len(5, 8), 3);
        assert_eq!(inclusion_proof_len(2, 3), 1);
        assert_eq!(inclusion_proof_len(1, 5), 3);
        assert_eq!(consistency_proof_len(1, 8), 3);
        assert_eq!(consistency_proof_len(6, 8), 3);
        assert_eq!(consistency_proof_len(2, 5), 2);
        assert_eq!(consistency_proof_len(6, 7), 3);
    }

    #[test]
    fn lengths_do_not_overflow_at_the_top_of_the_range() {
        // index ^ (size - 1) has its top bit set: the border shift is by 64.
        assert_eq!(inclusion_proof_len(0, (1 << 63) + 1), 64);
        assert_eq!(inclusion_proof_len(u64::MAX - 1, u64::MAX), 63);
        assert_eq!(consistency_proof_len(1, u64::MAX), 64);
        assert_eq!(consistency_proof_len(1 << 63, u64::MAX), 1);
    }
}
