//! Every integration test of `sealog-merkle` but those that need a process of their own, in one
//! binary: one test binary per file linked the whole dependency tree again for each file,
//! which cost gigabytes of disk and minutes of linking on a clean build.

#[path = "../common/mod.rs"]
mod common;

mod checkpoint;
mod ct_merkle_oracle;
mod model;
mod multiproof;
mod note;
mod rfc_vectors;
mod tiles;
