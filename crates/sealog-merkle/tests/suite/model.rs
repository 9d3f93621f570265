//! Tree heads, proofs and the frontier checked against the naive RFC 9162 recursion.

use crate::common;

use common::{MemTree, leaves, mth, path, read_bound};
use proptest::prelude::*;
use sealog_merkle::{
    Frontier, Hash, NodeReader, ProofError, ReadError, VerifyError, consistency_proof, empty_root,
    inclusion_proof, leaf_hash, node_hash, root, subtree_proof, verify_consistency,
    verify_inclusion, verify_subtree,
};

const MAX: usize = 600;

fn flip(h: &Hash, bit: usize) -> Hash {
    let mut h = *h;
    h[bit / 8] ^= 1 << (bit % 8);
    h
}

#[test]
fn roots_and_frontier_match_model_for_every_size() {
    let leaves = leaves(MAX);
    let tree = MemTree::from_leaves(&leaves);
    let mut f = Frontier::new();
    let mut emitted = vec![Vec::<u64>::new(); tree.levels.len()];
    for size in 0..=MAX {
        let want = mth(&leaves[..size]);
        assert_eq!(f.size(), size as u64);
        assert_eq!(f.root(), want, "frontier root at {size}");
        tree.take_reads();
        assert_eq!(root(size as u64, &tree).unwrap(), want, "root at {size}");
        assert_eq!(tree.take_reads(), (size as u64).count_ones() as usize);
        let loaded = Frontier::load(size as u64, &tree).unwrap();
        assert_eq!(tree.take_reads(), (size as u64).count_ones() as usize);
        assert_eq!(loaded, f, "loaded frontier at {size}");
        assert_eq!(loaded.root(), want);
        if size == MAX {
            break;
        }
        let mut buffered = f.clone();
        let mut out = Vec::new();
        buffered.push_into(leaves[size], &mut out);
        let completed = f.push(leaves[size]);
        assert_eq!(completed, out);
        assert_eq!(buffered, f);
        assert_eq!(completed[0], (0, size as u64, leaves[size]));
        for (level, index, hash) in completed {
            assert_eq!(
                tree.levels[usize::from(level)][index as usize],
                hash,
                "node {level}/{index}"
            );
            emitted[usize::from(level)].push(index);
        }
    }
    // Every stored node was reported exactly once, in order.
    for (level, nodes) in tree.levels.iter().enumerate() {
        assert_eq!(
            emitted[level],
            (0..nodes.len() as u64).collect::<Vec<_>>(),
            "level {level}"
        );
    }
}

#[test]
fn empty_tree() {
    let tree = MemTree::default();
    assert_eq!(root(0, &tree).unwrap(), empty_root());
    assert_eq!(tree.take_reads(), 0);
    assert_eq!(Frontier::load(0, &tree).unwrap(), Frontier::new());
    assert!(matches!(
        inclusion_proof(0, 0, &tree),
        Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
    ));
    assert!(matches!(
        consistency_proof(0, 0, &tree),
        Err(ProofError::EmptyOldTree)
    ));
    assert_eq!(
        verify_inclusion(&empty_root(), 0, 0, &empty_root(), &[]),
        Err(VerifyError::IndexOutOfRange { index: 0, size: 0 })
    );
    assert_eq!(
        verify_consistency(0, 0, &empty_root(), &empty_root(), &[]),
        Err(VerifyError::EmptyOldTree)
    );
}

#[test]
fn bad_arguments_are_rejected_precisely() {
    let leaves = leaves(10);
    let tree = MemTree::from_leaves(&leaves);
    assert!(matches!(
        inclusion_proof(10, 10, &tree),
        Err(ProofError::IndexOutOfRange {
            index: 10,
            size: 10
        })
    ));
    assert!(matches!(
        consistency_proof(0, 5, &tree),
        Err(ProofError::EmptyOldTree)
    ));
    assert!(matches!(
        consistency_proof(6, 5, &tree),
        Err(ProofError::OldLargerThanNew { old: 6, new: 5 })
    ));
    assert_eq!(consistency_proof(7, 7, &tree).unwrap(), Vec::<Hash>::new());

    let r10 = mth(&leaves);
    let r7 = mth(&leaves[..7]);
    let p = inclusion_proof(3, 10, &tree).unwrap();
    assert_eq!(p.len(), 4);
    let mut long = p.clone();
    long.push(r10);
    assert_eq!(
        verify_inclusion(&leaves[3], 3, 10, &r10, &long),
        Err(VerifyError::WrongProofLength {
            expected: 4,
            actual: 5
        })
    );
    assert_eq!(
        verify_inclusion(&leaves[3], 3, 10, &r10, &p[..3]),
        Err(VerifyError::WrongProofLength {
            expected: 4,
            actual: 3
        })
    );
    assert_eq!(
        verify_inclusion(&leaves[4], 3, 10, &r10, &p),
        Err(VerifyError::RootMismatch)
    );

    let c = consistency_proof(7, 10, &tree).unwrap();
    assert_eq!(
        verify_consistency(7, 10, &r7, &r10, &c[1..]),
        Err(VerifyError::WrongProofLength {
            expected: c.len(),
            actual: c.len() - 1
        })
    );
    assert_eq!(
        verify_consistency(7, 10, &r10, &r10, &c),
        Err(VerifyError::OldRootMismatch)
    );
    assert_eq!(
        verify_consistency(7, 10, &r7, &r7, &c),
        Err(VerifyError::RootMismatch)
    );
    assert_eq!(
        verify_consistency(10, 7, &r10, &r7, &c),
        Err(VerifyError::OldLargerThanNew { old: 10, new: 7 })
    );
    assert_eq!(verify_consistency(7, 7, &r7, &r7, &[]), Ok(()));
    assert_eq!(
        verify_consistency(7, 7, &r7, &r10, &[]),
        Err(VerifyError::RootMismatch)
    );
    assert_eq!(
        verify_consistency(7, 7, &r7, &r7, &[r7]),
        Err(VerifyError::WrongProofLength {
            expected: 0,
            actual: 1
        })
    );
}

/// Documents why callers must take the size from a signed tree head: the audit path for
/// leaf 0 of a 3-leaf tree has the same shape as one in a 4-leaf tree.
#[test]
fn inclusion_proofs_do_not_bind_tree_size() {
    let leaves = leaves(3);
    let tree = MemTree::from_leaves(&leaves);
    let r3 = mth(&leaves);
    let p = inclusion_proof(0, 3, &tree).unwrap();
    assert_eq!(verify_inclusion(&leaves[0], 0, 3, &r3, &p), Ok(()));
    assert_eq!(verify_inclusion(&leaves[0], 0, 4, &r3, &p), Ok(()));
}

#[test]
fn read_errors_propagate() {
    let leaves = leaves(9);
    let mut tree = MemTree::from_leaves(&leaves);
    tree.levels[0].pop();
    assert!(matches!(
        root(9, &tree),
        Err(ProofError::Read(ReadError::Missing { level: 0, index: 8 }))
    ));
    assert!(matches!(Frontier::load(9, &tree), Err(ProofError::Read(_))));
    assert!(matches!(
        inclusion_proof(0, 9, &tree),
        Err(ProofError::Read(_))
    ));
    assert!(matches!(
        consistency_proof(3, 9, &tree),
        Err(ProofError::Read(_))
    ));
    // Nothing beyond size 8 is needed for these.
    assert!(inclusion_proof(0, 8, &tree).is_ok());
    assert!(consistency_proof(3, 8, &tree).is_ok());
}

#[test]
fn every_single_bit_mutation_fails_on_small_trees() {
    let leaves = leaves(21);
    let tree = MemTree::from_leaves(&leaves);
    for size in [1u64, 2, 5, 13, 16, 21] {
        let r = mth(&leaves[..size as usize]);
        for index in 0..size {
            let p = inclusion_proof(index, size, &tree).unwrap();
            let leaf = &leaves[index as usize];
            for bit in 0..256 {
                assert!(verify_inclusion(&flip(leaf, bit), index, size, &r, &p).is_err());
                assert!(verify_inclusion(leaf, index, size, &flip(&r, bit), &p).is_err());
                for j in 0..p.len() {
                    let mut q = p.clone();
                    q[j] = flip(&q[j], bit);
                    assert!(verify_inclusion(leaf, index, size, &r, &q).is_err());
                }
            }
            for bit in 0..64 {
                assert!(verify_inclusion(leaf, index ^ (1 << bit), size, &r, &p).is_err());
            }
        }
        for old in 1..=size {
            let p = consistency_proof(old, size, &tree).unwrap();
            let r1 = mth(&leaves[..old as usize]);
            for bit in 0..256 {
                assert!(verify_consistency(old, size, &flip(&r1, bit), &r, &p).is_err());
                assert!(verify_consistency(old, size, &r1, &flip(&r, bit), &p).is_err());
                for j in 0..p.len() {
                    let mut q = p.clone();
                    q[j] = flip(&q[j], bit);
                    assert!(verify_consistency(old, size, &r1, &r, &q).is_err());
                }
            }
        }
    }
}

// Derived rather than flat-mapped, so shrinking can never break `index < size`.
fn inclusion_case() -> impl Strategy<Value = (u64, u64)> {
    (1..=MAX as u64, any::<u64>()).prop_map(|(size, seed)| (seed % size, size))
}

fn consistency_case() -> impl Strategy<Value = (u64, u64)> {
    (1..=MAX as u64, any::<u64>()).prop_map(|(new, seed)| (1 + seed % new, new))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5ea1_0101),
        ..ProptestConfig::default()
    })]

    #[test]
    fn inclusion_matches_model(
        (index, size) in inclusion_case(),
        elem in any::<prop::sample::Index>(),
        bit in 0usize..256,
        index_bit in 0u32..64,
    ) {
        let leaves = leaves(size as usize);
        let tree = MemTree::from_leaves(&leaves);
        let p = inclusion_proof(index, size, &tree).unwrap();
        prop_assert!(tree.take_reads() <= read_bound(size));
        prop_assert_eq!(&p, &path(index as usize, &leaves));
        let r = mth(&leaves);
        let leaf = &leaves[index as usize];
        prop_assert_eq!(verify_inclusion(leaf, index, size, &r, &p), Ok(()));

        prop_assert!(verify_inclusion(&flip(leaf, bit), index, size, &r, &p).is_err());
        prop_assert!(verify_inclusion(leaf, index, size, &flip(&r, bit), &p).is_err());
        // Another index inside the tree where there is one (an index past it is refused
        // before any hashing), else past it.
        let bits = 64 - size.leading_zeros();
        let other = index ^ (1 << (index_bit % bits));
        let other = if other < size { other } else { index ^ (1 << index_bit) };
        prop_assert!(verify_inclusion(leaf, other, size, &r, &p).is_err());
        if !p.is_empty() {
            let mut q = p.clone();
            let j = elem.index(q.len());
            q[j] = flip(&q[j], bit);
            prop_assert_eq!(verify_inclusion(leaf, index, size, &r, &q), Err(VerifyError::RootMismatch));
        }
    }

    #[test]
    fn consistency_matches_model(
        (old, new) in consistency_case(),
        elem in any::<prop::sample::Index>(),
        bit in 0usize..256,
    ) {
        let leaves = leaves(new as usize);
        let tree = MemTree::from_leaves(&leaves);
        let p = consistency_proof(old, new, &tree).unwrap();
        prop_assert!(tree.take_reads() <= read_bound(new));
        prop_assert_eq!(&p, &common::proof(old as usize, &leaves));
        let r1 = mth(&leaves[..old as usize]);
        let r2 = mth(&leaves);
        prop_assert_eq!(verify_consistency(old, new, &r1, &r2, &p), Ok(()));

        prop_assert!(verify_consistency(old, new, &flip(&r1, bit), &r2, &p).is_err());
        prop_assert!(verify_consistency(old, new, &r1, &flip(&r2, bit), &p).is_err());
        if !p.is_empty() {
            let mut q = p.clone();
            let j = elem.index(q.len());
            q[j] = flip(&q[j], bit);
            prop_assert!(verify_consistency(old, new, &r1, &r2, &q).is_err());
        }
    }
}

/// A store for trees of any size in which every leaf is the same, so the node at a
/// level has the same hash wherever it sits: lets proofs run at sizes near `u64::MAX`.
struct Uniform {
    by_level: Vec<Hash>,
}

impl Uniform {
    fn new() -> Self {
        let mut by_level = vec![leaf_hash(b"same")];
        for l in 1..64 {
            let below = by_level[l - 1];
            by_level.push(node_hash(&below, &below));
        }
        Self { by_level }
    }
}

impl NodeReader for Uniform {
    fn node(&self, level: u8, index: u64) -> Result<Hash, ReadError> {
        // Only nodes that fit inside u64 leaves exist.
        if level >= 64
            || index
                .checked_shl(u32::from(level))
                .is_none_or(|s| s >> level != index)
        {
            return Err(ReadError::Missing { level, index });
        }
        Ok(self.by_level[usize::from(level)])
    }
}

#[test]
fn huge_trees_near_u64_max() {
    let u = Uniform::new();
    let leaf = u.by_level[0];
    let sizes = [
        u64::MAX,
        u64::MAX - 1,
        1 << 63,
        (1 << 63) + 1,
        (1 << 40) + 12_345,
        3,
    ];
    for &size in &sizes {
        let r = root(size, &u).unwrap();
        assert_eq!(Frontier::load(size, &u).unwrap().root(), r);
        for index in [0, 1, size / 2, size - 2, size - 1] {
            if index >= size {
                continue;
            }
            let p = inclusion_proof(index, size, &u).unwrap();
            assert!(p.len() <= 64);
            verify_inclusion(&leaf, index, size, &r, &p).unwrap();
        }
        for old in [1, 2, size / 3, size / 2, size - 1, size] {
            if old == 0 || old > size {
                continue;
            }
            let p = consistency_proof(old, size, &u).unwrap();
            verify_consistency(old, size, &root(old, &u).unwrap(), &r, &p).unwrap();
        }
    }
}

#[test]
fn frontier_fills_up_to_u64_max() {
    let u = Uniform::new();
    let mut f = Frontier::load(u64::MAX - 1, &u).unwrap();
    let completed = f.push(u.by_level[0]);
    assert_eq!(completed, vec![(0, u64::MAX - 1, u.by_level[0])]);
    assert_eq!(f.size(), u64::MAX);
    assert_eq!(f.hashes().len(), 64);
    assert_eq!(f.root(), root(u64::MAX, &u).unwrap());
}

#[test]
#[should_panic(expected = "overflows")]
fn frontier_push_past_u64_max_panics() {
    let mut f = Frontier::load(u64::MAX, &Uniform::new()).unwrap();
    f.push(leaf_hash(b""));
}

/// Every perfect subtree of every tree up to a size: its proof verifies against the root,
/// and a changed node, index, level or root does not.
#[test]
fn every_perfect_subtree_proves_against_the_root_and_nothing_else_does() {
    const SIZES: usize = 140;
    let leaves = leaves(SIZES);
    let tree = MemTree::from_leaves(&leaves);
    for size in 1..=SIZES as u64 {
        let head = mth(&leaves[..size as usize]);
        for level in 0..8u8 {
            for index in 0..(size >> level) {
                let span = (index << level) as usize..((index + 1) << level) as usize;
                let node = mth(&leaves[span]);
                let proof = subtree_proof(level, index, size, &tree).unwrap();
                verify_subtree(&node, level, index, size, &head, &proof)
                    .unwrap_or_else(|e| panic!("{level}/{index} in {size}: {e}"));
                assert!(
                    verify_subtree(&flip(&node, 3), level, index, size, &head, &proof).is_err()
                );
                assert!(
                    verify_subtree(&node, level, index, size, &flip(&head, 0), &proof).is_err()
                );
                if index > 0 {
                    assert!(verify_subtree(&node, level, index - 1, size, &head, &proof).is_err());
                }
                if level > 0 && size > 1 << level {
                    let lower = verify_subtree(&node, level - 1, index * 2, size, &head, &proof);
                    assert!(
                        lower.is_err(),
                        "{level}/{index} in {size} passed one level down"
                    );
                }
            }
            let beyond = size >> level;
            assert!(subtree_proof(level, beyond, size, &tree).is_err());
            assert!(verify_subtree(&head, level, beyond, size, &head, &[]).is_err());
        }
    }
}
