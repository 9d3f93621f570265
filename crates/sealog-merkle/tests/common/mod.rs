//! Shared test scaffolding: an in-memory node store and a naive RFC 9162 model.
#![allow(dead_code)]

use std::cell::Cell;

use sealog_merkle::{Hash, NodeReader, ReadError, empty_root, leaf_hash, node_hash};

/// Node store keeping every perfect subtree hash in memory, one Vec per level, and
/// counting reads so tests can bound them.
#[derive(Default)]
pub(crate) struct MemTree {
    pub(crate) levels: Vec<Vec<Hash>>,
    pub(crate) reads: Cell<usize>,
}

impl MemTree {
    pub(crate) fn from_leaves(leaves: &[Hash]) -> Self {
        let mut levels = vec![leaves.to_vec()];
        while levels.last().unwrap().len() > 1 {
            let below = levels.last().unwrap();
            let up: Vec<Hash> = below
                .chunks_exact(2)
                .map(|p| node_hash(&p[0], &p[1]))
                .collect();
            levels.push(up);
        }
        Self {
            levels,
            reads: Cell::new(0),
        }
    }

    pub(crate) fn take_reads(&self) -> usize {
        self.reads.replace(0)
    }
}

impl NodeReader for MemTree {
    fn node(&self, level: u8, index: u64) -> Result<Hash, ReadError> {
        self.reads.set(self.reads.get() + 1);
        self.levels
            .get(usize::from(level))
            .and_then(|l| l.get(usize::try_from(index).ok()?))
            .copied()
            .ok_or(ReadError::Missing { level, index })
    }
}

/// Deterministic distinct leaf hashes.
pub(crate) fn leaves(n: usize) -> Vec<Hash> {
    (0..n as u64).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH straight from the RFC 9162 §2.1.1 recursion.
pub(crate) fn mth(d: &[Hash]) -> Hash {
    match d.len() {
        0 => empty_root(),
        1 => d[0],
        n => {
            let k = split(n);
            node_hash(&mth(&d[..k]), &mth(&d[k..]))
        }
    }
}

/// PATH(m, D[n]) from RFC 9162 §2.1.3.1.
pub(crate) fn path(m: usize, d: &[Hash]) -> Vec<Hash> {
    let n = d.len();
    if n <= 1 {
        return vec![];
    }
    let k = split(n);
    if m < k {
        let mut p = path(m, &d[..k]);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = path(m - k, &d[k..]);
        p.push(mth(&d[..k]));
        p
    }
}

/// PROOF(m, D[n]) from RFC 9162 §2.1.4.1.
pub(crate) fn proof(m: usize, d: &[Hash]) -> Vec<Hash> {
    subproof(m, d, true)
}

fn subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { vec![] } else { vec![mth(d)] };
    }
    let k = split(n);
    if m <= k {
        let mut p = subproof(m, &d[..k], b);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = subproof(m - k, &d[k..], false);
        p.push(mth(&d[..k]));
        p
    }
}

/// Upper bound on node reads for one proof over a tree of `size` leaves: a perfect
/// sibling per level plus one right-edge sibling assembled from at most one node per level.
pub(crate) fn read_bound(size: u64) -> usize {
    2 * (64 - size.leading_zeros() as usize) + 1
}
