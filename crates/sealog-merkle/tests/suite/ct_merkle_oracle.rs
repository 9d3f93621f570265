//! Cross-check against ct-merkle, an independent RFC 6962 implementation.

use crate::common;

use common::MemTree;
use ct_merkle::mem_backed_tree::MemoryBackedTree;
use sealog_merkle::{Hash, consistency_proof, inclusion_proof, leaf_hash, root};
use sha2::Sha256;

fn concat(p: &[Hash]) -> Vec<u8> {
    p.concat()
}

#[test]
fn roots_and_proofs_agree_for_sizes_up_to_300() {
    let data: Vec<Vec<u8>> = (0u32..300)
        .map(|i| format!("entry {i}").into_bytes())
        .collect();
    let hashes: Vec<Hash> = data.iter().map(|d| leaf_hash(d)).collect();
    let tree = MemTree::from_leaves(&hashes);
    let mut oracle = MemoryBackedTree::<Sha256, Vec<u8>>::new();
    for (i, d) in data.iter().enumerate() {
        oracle.push(d.clone());
        let size = i as u64 + 1;
        assert_eq!(
            oracle.root().as_bytes().as_slice(),
            root(size, &tree).unwrap(),
            "root at {size}"
        );
        for index in 0..size {
            let ours = inclusion_proof(index, size, &tree).unwrap();
            let theirs = oracle.prove_inclusion(index as usize);
            assert_eq!(theirs.as_bytes(), concat(&ours), "inclusion {index}/{size}");
        }
        for old in 1..=size {
            let ours = consistency_proof(old, size, &tree).unwrap();
            let theirs = oracle.prove_consistency((size - old) as usize);
            assert_eq!(
                theirs.as_bytes(),
                concat(&ours),
                "consistency {old}->{size}"
            );
        }
    }
}
