//! Tree heads of arbitrary sizes, computed from perfect-subtree hashes.

use crate::error::{ProofError, ReadError};
use crate::hash::{Hash, empty_root, node_hash};

/// Source of hashes of *complete* (perfect) subtrees.
///
/// The node at `level` and `index` covers leaves `[index << level, (index + 1) << level)`;
/// level 0 holds leaf hashes. Storage implements this (for example one append-only file
/// per level with node `i` at offset `32 * i`); this crate never does I/O itself.
pub trait NodeReader {
    /// Returns the hash of the perfect subtree at (`level`, `index`).
    fn node(&self, level: u8, index: u64) -> Result<Hash, ReadError>;
}

impl<R: NodeReader + ?Sized> NodeReader for &R {
    fn node(&self, level: u8, index: u64) -> Result<Hash, ReadError> {
        (**self).node(level, index)
    }
}

/// Largest power of two strictly below `n` (`n >= 2`): the split point of RFC 9162 §2.1.1.
pub(crate) fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The perfect subtrees that make up leaves `[0, size)`, largest (leftmost) first,
/// as (level, index).
pub fn prefix_subtrees(size: u64) -> impl Iterator<Item = (u8, u64)> {
    let mut start = 0u64;
    (0..64u8).rev().filter_map(move |level| {
        if size & (1 << level) == 0 {
            return None;
        }
        let index = start >> level;
        start += 1 << level;
        Some((level, index))
    })
}

/// MTH of leaves `[start, end)` for a node of the RFC 9162 recursion: `start` must be
/// a multiple of the smallest power of two >= `end - start`, which makes every piece of
/// the binary decomposition of the range a stored perfect subtree. Reads one node per
/// set bit of `end - start`.
pub(crate) fn range_hash(start: u64, end: u64, r: &impl NodeReader) -> Result<Hash, ReadError> {
    debug_assert!(start < end);
    let len = end - start;
    // Fold from the right so the result nests as MTH does: the leftmost,
    // largest subtree ends up outermost.
    let mut cursor = end;
    let mut acc: Option<Hash> = None;
    for level in 0..64u8 {
        if len & (1 << level) == 0 {
            continue;
        }
        cursor -= 1 << level;
        let h = r.node(level, cursor >> level)?;
        acc = Some(match acc {
            None => h,
            Some(right) => node_hash(&h, &right),
        });
    }
    Ok(acc.expect("non-empty range has at least one subtree"))
}

/// Tree head (RFC 9162 MTH) of the first `size` leaves; [`empty_root`] for size 0.
/// Reads at most 64 nodes.
pub fn root(size: u64, r: &impl NodeReader) -> Result<Hash, ProofError> {
    if size == 0 {
        return Ok(empty_root());
    }
    Ok(range_hash(0, size, r)?)
}
