//! Consistency checks (PRODUCT §11, seed 003 §5): the rules packs declare, evaluated over the
//! log; each finding recorded once as a `sealog.conflict` record, each run as a
//! `sealog.check_run`; conflicts resolved by appending `sealog.conflict_resolved` records.
//!
//! Runs are incremental: a run starts at the tree size the last complete run ended at and
//! looks only at the subjects the new records touch, the windows that closed since the last
//! run's clock (deadlines, staleness, orphans), and the access records written since. A
//! finding's id is a hash of its rule and evidence, so the same finding is never recorded
//! twice, and a full run over the log agrees with the incremental ones.
//!
//! Boundary: reads and writes the log only through `sealog-ledger`; no I/O of its own.

mod access;
mod claims;
mod conflicts;
mod error;
mod finding;
mod integrity;
mod rates;
mod reconcile;
mod run;
mod subject_rules;
mod subjects;
mod timed;

pub use conflicts::{
    CONFLICT_TYPE, Conflict, Filter, RESOLVED_TYPE, Resolution, Status, conflicts, resolve,
};
pub use error::CheckError;
pub use finding::Finding;
pub use integrity::Integrity;
pub use reconcile::{DomainRow, parse_domain};
pub use run::{CHECK_RUN_TYPE, RunOptions, RunReport, run};
pub use sealog_packs::Criticality;

/// The rule that reports a log that does not match its signed checkpoints.
pub const INTEGRITY_RULE: &str = "sealog.integrity";
