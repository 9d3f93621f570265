//! Every integration test of `sealog-server` but those that need a process of their own, in one
//! binary: one test binary per file linked the whole dependency tree again for each file,
//! which cost gigabytes of disk and minutes of linking on a clean build.

#[path = "../support/mod.rs"]
mod support;

mod api;
mod checks;
mod clocks;
mod console;
mod exports;
mod isolation;
mod key_file;
mod malformed;
mod packs;
mod privacy;
mod producers;
mod roles;
mod subject_role;
mod witness_state;
