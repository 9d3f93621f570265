//! Multiproofs checked against the naive RFC 9162 recursion: for every tree up to 140 leaves
//! and seeded random sets of its leaves, the proof gives the tree head, holds exactly the
//! hashes of the largest subtrees without a chosen leaf, shares what the separate inclusion
//! proofs would repeat, and fails for any changed, missing, extra or misplaced hash or leaf.

use crate::common;

use common::{MemTree, leaves, mth};
use sealog_merkle::{
    Hash, ProofError, VerifyError, empty_root, inclusion_proof, multiproof, root,
    root_from_multiproof, verify_multiproof,
};

const MAX: usize = 140;

/// A small seeded generator (xorshift), so every run draws the same sets.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The number of largest subtrees of `[lo, hi)` without a chosen leaf: the proof's length.
fn gaps(lo: usize, hi: usize, chosen: &[u64]) -> usize {
    let inside = chosen
        .iter()
        .filter(|&&i| (lo as u64..hi as u64).contains(&i))
        .count();
    if inside == 0 {
        return 1;
    }
    if hi - lo == 1 {
        return 0;
    }
    let mut k = 1;
    while k * 2 < hi - lo {
        k *= 2;
    }
    gaps(lo, lo + k, chosen) + gaps(lo + k, hi, chosen)
}

fn flip(h: &Hash) -> Hash {
    let mut h = *h;
    h[7] ^= 0x10;
    h
}

#[test]
fn multiproofs_give_the_tree_head_for_every_size_and_random_sets_of_leaves() {
    let seed = 0x5ea1_0a11_u64;
    eprintln!("multiproof seed {seed:#x}");
    let mut draw = Draw(seed);
    let all = leaves(MAX);
    let tree = MemTree::from_leaves(&all);
    let mut checked = 0;
    for size in 0..=MAX {
        let head = mth(&all[..size]);
        assert_eq!(root(size as u64, &tree).unwrap(), head);
        for round in 0..6 {
            // Sets from empty to every leaf, sparse and dense.
            let chosen: Vec<u64> = match round {
                0 => Vec::new(),
                1 => (0..size as u64).collect(),
                _ => {
                    let keep = 1 + draw.next() % 4;
                    (0..size as u64)
                        .filter(|_| draw.next() % 8 < keep)
                        .collect()
                }
            };
            let hashes: Vec<Hash> = chosen.iter().map(|&i| all[i as usize]).collect();
            let proof = multiproof(&chosen, size as u64, &tree).unwrap();
            let expected_len = if size == 0 { 0 } else { gaps(0, size, &chosen) };
            assert_eq!(proof.len(), expected_len, "size {size}, {chosen:?}");
            assert_eq!(
                root_from_multiproof(&chosen, &hashes, size as u64, &proof).unwrap(),
                head,
                "size {size}, {chosen:?}"
            );
            verify_multiproof(&chosen, &hashes, size as u64, &head, &proof).unwrap();
            // No more hashes than the separate inclusion proofs hold together.
            let separate: usize = chosen
                .iter()
                .map(|&i| inclusion_proof(i, size as u64, &tree).unwrap().len())
                .sum();
            assert!(chosen.is_empty() || proof.len() <= separate);
            if chosen.len() == 1 {
                let mut a = proof.clone();
                let mut b = inclusion_proof(chosen[0], size as u64, &tree).unwrap();
                a.sort_unstable();
                b.sort_unstable();
                assert_eq!(a, b, "one leaf: the same hashes as its inclusion proof");
            }
            if size == 0 {
                continue;
            }
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i] = flip(&bad[i]);
                assert_eq!(
                    verify_multiproof(&chosen, &hashes, size as u64, &head, &bad),
                    Err(VerifyError::RootMismatch)
                );
                let mut short = proof.clone();
                short.remove(i);
                assert!(verify_multiproof(&chosen, &hashes, size as u64, &head, &short).is_err());
            }
            let mut long = proof.clone();
            long.push(head);
            assert!(verify_multiproof(&chosen, &hashes, size as u64, &head, &long).is_err());
            for i in 0..hashes.len() {
                let mut bad = hashes.clone();
                bad[i] = flip(&bad[i]);
                assert!(verify_multiproof(&chosen, &bad, size as u64, &head, &proof).is_err());
            }
            if proof.len() >= 2 {
                let mut swapped = proof.clone();
                swapped.swap(0, 1);
                if swapped != proof {
                    assert!(
                        verify_multiproof(&chosen, &hashes, size as u64, &head, &swapped).is_err()
                    );
                }
            }
            // A leaf claimed at the next index over is another statement: it fails.
            if let Some(&last) = chosen.last()
                && last + 1 < size as u64
            {
                let mut moved = chosen.clone();
                *moved.last_mut().unwrap() = last + 1;
                let moved_hashes: Vec<Hash> = hashes.clone();
                assert!(
                    verify_multiproof(&moved, &moved_hashes, size as u64, &head, &proof).is_err(),
                    "size {size}: leaf {last} claimed at {}",
                    last + 1
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 700, "only {checked} sets checked");
}

#[test]
fn bad_index_sets_are_refused() {
    let all = leaves(8);
    let tree = MemTree::from_leaves(&all);
    for bad in [&[3, 3][..], &[4, 2], &[8], &[0, 9]] {
        assert!(
            matches!(
                multiproof(bad, 8, &tree),
                Err(ProofError::IndexOutOfRange { size: 8, .. })
            ),
            "{bad:?}"
        );
        let hashes: Vec<Hash> = bad.iter().map(|_| all[0]).collect();
        assert!(matches!(
            root_from_multiproof(bad, &hashes, 8, &[]),
            Err(VerifyError::IndexOutOfRange { size: 8, .. })
        ));
    }
    // Leaves and indices must pair up.
    assert!(root_from_multiproof(&[1, 2], &[all[1]], 8, &[]).is_err());
    // The empty tree: no leaves, no hashes, the empty root.
    assert_eq!(root_from_multiproof(&[], &[], 0, &[]), Ok(empty_root()));
    assert!(root_from_multiproof(&[], &[], 0, &[all[0]]).is_err());
    assert_eq!(multiproof(&[], 0, &tree), Ok(Vec::new()));
}
