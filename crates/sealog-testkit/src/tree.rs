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
