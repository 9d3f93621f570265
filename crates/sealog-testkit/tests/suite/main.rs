//! Every integration test of `sealog-testkit` in one binary: one test binary per file linked the
//! whole dependency tree again for each file, which cost disk and linking time on a clean
//! build.

mod browser;
mod fuzz_replay;
mod tidy;
