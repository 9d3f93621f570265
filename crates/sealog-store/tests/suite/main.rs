//! Every integration test of `sealog-store` but those that need a process of their own, in one
//! binary: one test binary per file linked the whole dependency tree again for each file,
//! which cost gigabytes of disk and minutes of linking on a clean build.

mod compression;
mod conformance;
mod crashes;
mod index_only;
mod props;
mod read_only;
mod store;
mod tree;
