//! Exports that prove themselves. An export is a file of canonical records (JSONL, or
//! Parquet with the canonical text beside typed columns), ordered by (event time, subject,
//! seq), with two companions: `FILE.proof`, one RFC 9162 multiproof that every record is the
//! leaf `seq` of the tree at a signed checkpoint, and `FILE.manifest.json`, which names the
//! filters, the file's hash, the checkpoint and the verifier key. Nothing in them depends on
//! the wall clock, so the same selection proven by the same checkpoint gives the same bytes.
//!
//! [`verify`] checks an export with no data directory: the manifest is canonical, the
//! checkpoint is signed by the (pinned) key, each record is canonical with its own
//! `record_id`, satisfies the filters and comes in order, the file has the manifest's hash,
//! count and size, and the multiproof takes the records' leaf hashes to the signed root.
//!
//! *Invariants*: an export appears under its final name only whole (written aside, synced,
//! renamed; the manifest last); the proof is checked against the signed root before the
//! export is given its name.

mod bundle;
mod error;
mod files;
mod manifest;
mod parquet_file;
mod proof;
mod verify;
mod write;

pub use bundle::{BundleReport, BundleRequest, bundle};
pub use error::Error;
pub use manifest::{COMPLETENESS, Filters, Format, Manifest, ProofRef};
pub use parquet_file::{COLUMNS, record_texts};
pub use verify::{Failure, Verified, verify};
pub use write::{Pending, Request, export, prepare};

/// The manifest beside an export file.
pub fn manifest_path(file: &std::path::Path) -> std::path::PathBuf {
    files::sibling(file, ".manifest.json")
}

/// The proof beside an export file.
pub fn proof_path(file: &std::path::Path) -> std::path::PathBuf {
    files::sibling(file, ".proof")
}
