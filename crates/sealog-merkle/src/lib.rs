//! RFC 9162 Merkle tree hashing and proofs, C2SP checkpoints, signed notes and tile paths.
//!
//! The crate is pure: it never touches files or the network. Storage hands it node hashes
//! through [`NodeReader`] and receives the nodes to persist from [`Frontier::push`].

mod error;
mod frontier;
mod hash;
mod multiproof;
mod proof;
mod text;
mod tree;

pub mod checkpoint;
pub mod cosignature;
pub mod note;
pub mod tiles;
pub mod witness;

pub use error::{ProofError, ReadError, VerifyError};
pub use frontier::Frontier;
pub use hash::{HASH_SIZE, Hash, empty_root, leaf_hash, node_hash};
pub use multiproof::{multiproof, root_from_multiproof, verify_multiproof};
pub use proof::{
    consistency_proof, inclusion_proof, subtree_proof, verify_consistency, verify_inclusion,
    verify_subtree,
};
pub use tree::{NodeReader, prefix_subtrees, root};
