use std::fmt;

#[derive(Debug)]
#[non_exhaustive]
pub enum CheckError {
    /// The log could not be read or written.
    Store(sealog_ledger::Error),
    /// A stored record did not read as the checker expects.
    Corrupted(String),
    /// Sealog's own record was refused by its pack: a bug, reported rather than lost.
    Refused(String),
    /// What the caller asked for cannot be done (an unknown rule, a bad row, a resolution
    /// its criterion does not decide).
    Invalid(String),
    /// No such conflict (within the caller's tenant).
    NotFound(String),
    /// The conflict is already resolved.
    Settled(String),
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Store(e) => e.fmt(f),
            CheckError::Corrupted(m) => write!(f, "corrupted: {m}"),
            CheckError::Refused(m) => write!(f, "a check record was refused: {m}"),
            CheckError::Invalid(m) | CheckError::NotFound(m) | CheckError::Settled(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for CheckError {}

impl From<sealog_ledger::Error> for CheckError {
    fn from(e: sealog_ledger::Error) -> Self {
        CheckError::Store(e)
    }
}

impl From<sealog_ledger::StateError> for CheckError {
    fn from(e: sealog_ledger::StateError) -> Self {
        match e {
            sealog_ledger::StateError::Store(e) => CheckError::Store(e),
            other => CheckError::Corrupted(other.to_string()),
        }
    }
}
