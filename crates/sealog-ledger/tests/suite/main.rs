//! Every integration test of `sealog-ledger` but those that need a process of their own, in one
//! binary: one test binary per file linked the whole dependency tree again for each file,
//! which cost gigabytes of disk and minutes of linking on a clean build.

#[path = "../support/mod.rs"]
mod support;

mod anchored;
mod chains;
mod clocks;
mod delivered;
mod governance;
mod log_key;
mod numbers;
mod one_parse;
mod pipeline;
mod privacy;
mod props;
mod retention;
mod seed_acceptance;
