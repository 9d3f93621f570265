//! What Sealog's tests share (see README.md). Test support panics on anything unexpected:
//! a failure here is a failure of the test that called it.
#![allow(clippy::missing_panics_doc)]

pub mod app;
pub mod browser;
pub mod cli;
pub mod events;
pub mod files;
pub mod format;
pub mod fuzz;
pub mod http;
pub mod nats;
pub mod pg;
pub mod props;
pub mod proxy;
pub mod rng;
pub mod shuffle;
pub mod tree;

pub use app::InProcess;
pub use cli::{Cli, Run};
pub use http::{Api, Resp, ServerProcess};
pub use rng::Rng;

/// Whether the tests run under CI: `CI` set to anything but empty, `false` or `0`. The one
/// predicate every test uses; `.ci/run` sets `CI=true`. Under CI a missing server or tool
/// fails its test instead of skipping it.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "false" | "0"))
}

/// Called when `what` (a server or tool a test needs) is missing: under CI the test fails,
/// naming how CI must install it; elsewhere it prints a loud banner and the caller skips.
pub fn missing(what: &str, install: &str) {
    assert!(
        !under_ci(),
        "CI is set but {what} is missing: CI must install it ({install})"
    );
    eprintln!(
        "\n**********************************************************************\n\
         {what} is missing: this test is SKIPPED.\n\
         Install it ({install}) or run scripts/test, which does.\n\
         **********************************************************************\n"
    );
}

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

/// A caught panic's message, for a test that gathers every failure before it fails.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}
