//! Every integration test of `sealog` but those that need a process of their own, in one
//! binary: one test binary per file linked the whole dependency tree again for each file,
//! which cost gigabytes of disk and minutes of linking on a clean build.

mod bench_smoke;
mod checks;
mod cli;
mod cli_access;
mod cli_packs;
mod cli_serving;
mod cli_stream;
mod client_sdk;
mod console;
mod crash;
mod damage;
mod deploy;
mod derived;
mod erase;
mod exit_codes;
mod export;
mod export_kill;
mod faults;
mod fsync_order;
mod full_disk;
mod http_bench;
mod http_crash;
mod http_e2e;
mod logs;
mod manual;
mod migrate;
mod nats;
mod postgres;
mod proofs;
mod readme;
mod record_ids;
mod retention_crash;
mod serve_faults;
mod settings;
mod syscall_faults;
mod tamper;
mod witness;
