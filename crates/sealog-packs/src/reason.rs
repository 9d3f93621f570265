//! What a refused event carries into quarantine: a reason code and its evidence.

use std::fmt;

/// Why an event could not become canonical. The first four are decided by a pack's checks;
/// the supersedes codes by the store's writer, against the records already in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReasonCode {
    IncompleteProvenance,
    SchemaViolation,
    UnknownEventType,
    ForbiddenField,
    MissingSupersedesLink,
    InvalidSupersedesLink,
    StaleSupersedesLink,
    /// The event's data subject was erased: sealing its personal values would need a key
    /// nobody may make again.
    DataSubjectErased,
    /// A bus delivered something that is not an event (only its hash, size and where the bus
    /// had it are kept).
    NotAnEvent,
    /// A bus delivered an event whose tenant disagrees with its subject.
    TenantMismatch,
}

impl ReasonCode {
    pub const ALL: [ReasonCode; 10] = [
        ReasonCode::IncompleteProvenance,
        ReasonCode::SchemaViolation,
        ReasonCode::UnknownEventType,
        ReasonCode::ForbiddenField,
        ReasonCode::MissingSupersedesLink,
        ReasonCode::InvalidSupersedesLink,
        ReasonCode::StaleSupersedesLink,
        ReasonCode::DataSubjectErased,
        ReasonCode::NotAnEvent,
        ReasonCode::TenantMismatch,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ReasonCode::IncompleteProvenance => "INCOMPLETE_PROVENANCE",
            ReasonCode::SchemaViolation => "SCHEMA_VIOLATION",
            ReasonCode::UnknownEventType => "UNKNOWN_EVENT_TYPE",
            ReasonCode::ForbiddenField => "FORBIDDEN_FIELD",
            ReasonCode::MissingSupersedesLink => "MISSING_SUPERSEDES_LINK",
            ReasonCode::InvalidSupersedesLink => "INVALID_SUPERSEDES_LINK",
            ReasonCode::StaleSupersedesLink => "STALE_SUPERSEDES_LINK",
            ReasonCode::DataSubjectErased => "DATA_SUBJECT_ERASED",
            ReasonCode::NotAnEvent => "NOT_AN_EVENT",
            ReasonCode::TenantMismatch => "TENANT_MISMATCH",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One schema or constraint failure: where (an RFC 6901 pointer from the event root) and what.
/// Messages never quote the offending value, so quarantine evidence holds no content.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    pub pointer: String,
    pub message: String,
}

/// A refused event's reason and evidence. Only the field that matches the reason is filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantine {
    pub reason: ReasonCode,
    /// Dotted paths from the event root, e.g. `data.features.feature_snapshot_hash`.
    pub missing_fields: Vec<String>,
    pub violations: Vec<Violation>,
    /// JSON pointers of forbidden members that were present (never their content).
    pub forbidden_fields: Vec<String>,
}

impl Quarantine {
    pub fn new(reason: ReasonCode) -> Self {
        Quarantine {
            reason,
            missing_fields: Vec::new(),
            violations: Vec::new(),
            forbidden_fields: Vec::new(),
        }
    }
}

impl fmt::Display for Quarantine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.reason)?;
        if !self.missing_fields.is_empty() {
            write!(f, ": missing {}", self.missing_fields.join(", "))?;
        }
        if !self.forbidden_fields.is_empty() {
            write!(f, ": forbidden {}", self.forbidden_fields.join(", "))?;
        }
        for v in &self.violations {
            write!(f, "; {}: {}", v.pointer, v.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for Quarantine {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_distinct() {
        for c in ReasonCode::ALL {
            assert_eq!(ReasonCode::parse(c.as_str()), Some(c));
        }
        let mut names: Vec<_> = ReasonCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ReasonCode::ALL.len());
        assert_eq!(ReasonCode::parse("incomplete_provenance"), None);
    }
}
