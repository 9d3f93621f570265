//! Errors loading a pack: always located, so a pack author can fix the file without guessing.

/// A pack that cannot be loaded: which pack, which file, where in it, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pack {pack}: {file}: {at}: {message}")]
pub struct PackError {
    /// The pack's name, or its directory when the manifest could not be read.
    pub pack: String,
    pub file: String,
    /// A path into the file (`types."t".axes[0].pointer`) or a `line L column C`.
    pub at: String,
    pub message: String,
}

impl PackError {
    pub(crate) fn new(
        pack: impl Into<String>,
        file: impl Into<String>,
        at: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        PackError {
            pack: pack.into(),
            file: file.into(),
            at: at.into(),
            message: message.into(),
        }
    }
}
