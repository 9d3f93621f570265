//! RFC 9162's Merkle tree hash by its recursive definition (§2.1.1), written from the RFC
//! with SHA-256 alone: the model root that tests compare the store's trees and proofs with.

use sha2::{Digest, Sha256};

/// MTH of the records, each hashed as a leaf: `SHA-256(0x00 || record)`.
pub fn root_of<R: AsRef<[u8]>>(records: &[R]) -> [u8; 32] {
    let leaves: Vec<[u8; 32]> = records
        .iter()
        .map(|r| {
            Sha256::new()
                .chain_update([0])
                .chain_update(r)
                .finalize()
                .into()
        })
        .collect();
    mth(&leaves)
}

/// MTH of leaf hashes: the empty string's hash for no leaves; else the largest power of two
/// below `n` splits them, and a node is `SHA-256(0x01 || left || right)`.
pub fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = 1 << (usize::BITS - (n - 1).leading_zeros() - 1);
            Sha256::new()
                .chain_update([1])
                .chain_update(mth(&leaves[..k]))
                .chain_update(mth(&leaves[k..]))
                .finalize()
                .into()
        }
    }
}

/// A log's tree checked against the model of its `records`: the head at `size`, the
/// inclusion proof of leaf `index` in it, and the consistency proof from size `old` to it,
/// each produced by the log (`root`, `inclusion`, `consistency`) and verified with
/// `sealog-merkle`'s verifiers against the model's heads.
pub fn check_proofs<R: AsRef<[u8]>, E: std::fmt::Debug>(
    records: &[R],
    (size, index, old): (u64, u64, u64),
    root: impl Fn(u64) -> Result<[u8; 32], E>,
    inclusion: impl Fn(u64, u64) -> Result<Vec<[u8; 32]>, E>,
    consistency: impl Fn(u64, u64) -> Result<Vec<[u8; 32]>, E>,
) {
    let head = root_of(&records[..size as usize]);
    assert_eq!(root(size).unwrap(), head, "root of size {size}");
    let proof = inclusion(index, size).unwrap();
    let leaf = sealog_merkle::leaf_hash(records[index as usize].as_ref());
    sealog_merkle::verify_inclusion(&leaf, index, size, &head, &proof)
        .unwrap_or_else(|e| panic!("inclusion of {index} in {size}: {e}"));
    let proof = consistency(old, size).unwrap();
    let old_head = root_of(&records[..old as usize]);
    sealog_merkle::verify_consistency(old, size, &old_head, &head, &proof)
        .unwrap_or_else(|e| panic!("consistency {old} → {size}: {e}"));
}
