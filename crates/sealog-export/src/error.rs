use std::path::PathBuf;

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{} exists; pass --force to replace it", .0.display())]
    Exists(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Ledger(#[from] sealog_ledger::Error),
    #[error("parquet: {0}")]
    Parquet(String),
    /// The log gave something that does not prove itself: nothing was exported.
    #[error("{0}")]
    Corrupted(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// The caller refused to let the export be given its name.
    #[error("{0}")]
    Refused(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
