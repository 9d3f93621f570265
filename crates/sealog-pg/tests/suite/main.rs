//! Every integration test of `sealog-pg` in one binary: one test binary per file linked the
//! whole dependency tree again for each file, which cost disk and linking time on a clean
//! build.

mod conformance;
mod integrity;
mod schema;
mod servers;
mod tree;
