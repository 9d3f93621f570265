//! What Sealog's tests share (see README.md). Test support panics on anything unexpected:
//! a failure here is a failure of the test that called it.
#![allow(clippy::missing_panics_doc)]

pub mod app;
pub mod cli;
pub mod events;
pub mod files;
pub mod format;
pub mod http;
pub mod rng;

pub use app::InProcess;
pub use cli::{Cli, Run};
pub use http::{Api, Resp, ServerProcess};
pub use rng::Rng;

/// A fresh temporary directory, removed when dropped.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

/// Polls `f` until it returns `Some`, for at most `secs` seconds: tests wait for a condition,
/// never for a fixed time.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
