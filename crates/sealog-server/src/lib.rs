//! Sealog's HTTP server: the v1 API over an embedded ledger (canonical log, quarantine log,
//! packs), API keys with roles and tenant scope, access auditing, Prometheus metrics, TLS,
//! and ingestion from a NATS JetStream consumer through the same append queue.
//!
//! *Boundary*: this is the only crate that knows HTTP, or a bus. It reaches the data directory only
//! through `sealog-ledger`, except for the key file (`DATA/access/keys`), which it owns.
//!
//! *Invariant*: a response that reports an append, or that carries records, is sent only
//! after the appended events — or the read's own `audit.access` record — are durable.

mod access;
mod aside;
mod auth;
mod budget;
mod checks;
mod context;
mod error;
mod exports;
mod formats;
mod ingest;
mod key_history;
mod key_watch;
pub mod keys;
mod logging;
mod metrics;
mod nats;
mod openapi;
mod params;
mod percent;
mod routes;
mod server;
mod sessions;
mod state;
mod streams;
pub mod witness;

pub use auth::Principal;
pub use checks::CheckConfig;
pub use exports::ExportConfig;
pub use logging::{LogFormat, init_logging};
pub use nats::{BusTenancy, NatsConfig, SubjectPattern};
pub use openapi::document_json as openapi_json;
pub use server::{App, Server, ServerConfig, ServerError, TlsFiles};
pub use state::Limits;
