//! RFC 9162 §2.1.1 hashing with SHA-256.

use sha2::{Digest, Sha256};

/// A SHA-256 output: a leaf hash, an interior node hash or a tree head.
pub type Hash = [u8; 32];

/// Length in bytes of a [`type@Hash`].
pub const HASH_SIZE: usize = 32;

// Domain separation prefixes: without them an interior node could be passed
// off as a leaf (second-preimage attack on the tree).
const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// Hash of a leaf: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(data);
    h.finalize().into()
}

/// Hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Tree head of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(s: &str) -> Hash {
        let v = hex::decode(s).unwrap();
        v.try_into().unwrap()
    }

    #[test]
    fn known_values() {
        assert_eq!(
            empty_root(),
            hex32("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        // RFC 6962 reference tree: leaf "" and leaf "\x00".
        let l0 = leaf_hash(b"");
        let l1 = leaf_hash(b"\x00");
        assert_eq!(
            l0,
            hex32("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
        );
        assert_eq!(
            l1,
            hex32("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7")
        );
        assert_eq!(
            node_hash(&l0, &l1),
            hex32("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")
        );
    }
}
