//! Every integration test of `sealog-model` in one binary: one test binary per file linked the
//! whole dependency tree again for each file, which cost disk and linking time on a clean
//! build.

mod jcs_errors;
mod jcs_props;
mod jcs_vectors;
mod numbers;
