//! Every integration test of `sealog-packs` but those that need a process of their own, in one
//! binary: one test binary per file linked the whole dependency tree again for each file,
//! which cost gigabytes of disk and minutes of linking on a clean build.

#[path = "../common/mod.rs"]
mod common;

mod broken_packs;
mod data_subject;
mod decision_log;
mod examples;
mod normalize;
mod reasons;
mod state;
