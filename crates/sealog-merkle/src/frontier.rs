//! Incremental construction of the tree's right edge.

use crate::error::ProofError;
use crate::hash::{Hash, empty_root, node_hash};
use crate::tree::{NodeReader, prefix_subtrees};

/// The right edge of a tree being appended to: the hashes of the perfect subtrees that
/// make up the first [`size`](Self::size) leaves, one per set bit of the size (so at most
/// 64). Lets storage integrate leaves one at a time without reading anything back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Largest (leftmost) subtree first.
    nodes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves integrated so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Hashes of the perfect subtrees covering the tree, largest (leftmost) first.
    pub fn hashes(&self) -> &[Hash] {
        &self.nodes
    }

    /// Appends a leaf hash. Returns every node completed by it as `(level, index, hash)`,
    /// starting with `(0, size_before, leaf)` and going up; these are exactly the nodes a
    /// [`NodeReader`] must be able to serve from now on.
    ///
    /// # Panics
    /// If the tree already holds `u64::MAX` leaves.
    pub fn push(&mut self, leaf: Hash) -> Vec<(u8, u64, Hash)> {
        let mut out = Vec::with_capacity(1 + self.size.trailing_ones() as usize);
        self.push_into(leaf, &mut out);
        out
    }

    /// Like [`push`](Self::push), but appends the completed nodes to `out`, so a caller
    /// integrating many leaves can reuse one buffer.
    ///
    /// # Panics
    /// If the tree already holds `u64::MAX` leaves.
    pub fn push_into(&mut self, leaf: Hash, out: &mut Vec<(u8, u64, Hash)>) {
        let index = self.size;
        let new_size = index.checked_add(1).expect("tree size overflows u64");
        out.push((0, index, leaf));
        // Each trailing one bit of the old size is a perfect subtree of the same height
        // as the one just completed, sitting immediately to its left: merge them.
        let mut h = leaf;
        let mut level = 0u8;
        while index & (1 << level) != 0 {
            let left = self.nodes.pop().expect("one node per set bit of size");
            h = node_hash(&left, &h);
            level += 1;
            out.push((level, index >> level, h));
        }
        self.nodes.push(h);
        self.size = new_size;
    }

    /// Tree head of the current tree ([`empty_root`] when empty).
    pub fn root(&self) -> Hash {
        let mut it = self.nodes.iter().rev();
        match it.next() {
            None => empty_root(),
            Some(last) => it.fold(*last, |acc, left| node_hash(left, &acc)),
        }
    }

    /// Rebuilds the frontier of the tree of `size` leaves from storage, reading one node
    /// per set bit of `size`.
    pub fn load(size: u64, r: &impl NodeReader) -> Result<Self, ProofError> {
        let nodes = prefix_subtrees(size)
            .map(|(level, index)| r.node(level, index))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { size, nodes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    #[test]
    fn push_reports_completed_nodes() {
        let mut f = Frontier::new();
        let l: Vec<Hash> = (0u8..4).map(|i| leaf_hash(&[i])).collect();
        assert_eq!(f.push(l[0]), vec![(0, 0, l[0])]);
        let n01 = node_hash(&l[0], &l[1]);
        assert_eq!(f.push(l[1]), vec![(0, 1, l[1]), (1, 0, n01)]);
        assert_eq!(f.push(l[2]), vec![(0, 2, l[2])]);
        let n23 = node_hash(&l[2], &l[3]);
        let n0123 = node_hash(&n01, &n23);
        assert_eq!(f.push(l[3]), vec![(0, 3, l[3]), (1, 1, n23), (2, 0, n0123)]);
        assert_eq!(f.size(), 4);
        assert_eq!(f.hashes(), &[n0123]);
        assert_eq!(f.root(), n0123);
    }

    #[test]
    fn empty_frontier_has_empty_root() {
        assert_eq!(Frontier::new().root(), empty_root());
        assert_eq!(Frontier::new().size(), 0);
    }
}
