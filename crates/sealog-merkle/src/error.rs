use thiserror::Error;

/// Failure of a [`NodeReader`](crate::NodeReader).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReadError {
    /// The node has not been written (or was truncated away).
    #[error("node {level}/{index} is not available")]
    Missing { level: u8, index: u64 },
    /// Any other storage failure, described for humans.
    #[error("{0}")]
    Other(String),
}

/// Why a root, proof or frontier could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProofError {
    /// Inclusion proof asked for a leaf that is not in the tree.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// Consistency proof asked for a tree that shrank.
    #[error("old tree size {old} is larger than new tree size {new}")]
    OldLargerThanNew { old: u64, new: u64 },
    /// RFC 9162 §2.1.4 defines no consistency proof from the empty tree: every
    /// tree is trivially consistent with it, so such a proof would prove nothing.
    #[error("no consistency proof exists from the empty tree")]
    EmptyOldTree,
    /// The node store failed.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Why a proof was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The claimed leaf index is not in a tree of the claimed size.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// The claimed old size exceeds the claimed new size.
    #[error("old tree size {old} is larger than new tree size {new}")]
    OldLargerThanNew { old: u64, new: u64 },
    /// Consistency with the empty tree is not provable (see [`ProofError::EmptyOldTree`]).
    #[error("no consistency proof exists from the empty tree")]
    EmptyOldTree,
    /// The proof does not have the number of hashes the sizes dictate.
    #[error("proof has {actual} hashes, expected {expected}")]
    WrongProofLength { expected: usize, actual: usize },
    /// The proof does not lead to the claimed old tree head.
    #[error("proof does not match the old root")]
    OldRootMismatch,
    /// The proof does not lead to the claimed (new) tree head.
    #[error("proof does not match the root")]
    RootMismatch,
}
