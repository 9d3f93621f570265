//! Structured logs via `tracing`: text for people, JSON for collectors. `RUST_LOG` (or
//! `SEALOG_LOG`) selects levels; the default is `info`.

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber, writing to standard error. Safe to call twice.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("SEALOG_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
}
