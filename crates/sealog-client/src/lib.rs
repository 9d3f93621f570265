//! Sealog's client, for programs that emit audit events and for those that check the log.
//!
//! - [`Emitter`]: `emit` never blocks and never fails its caller (a bounded queue, batches
//!   sent by a background thread, one retry after 100 ms, then a dead-letter spool on disk
//!   that is replayed in emission order once the server answers again); `emit_traces =
//!   false` makes it a counted no-op (replay mode); `emit_durable` is the fail-closed path.
//! - [`LogVerifier`]: keeps the last checkpoint it verified and checks every newer one
//!   against it with a consistency proof, so a server that rewrites history, or shows
//!   different clients different logs, is caught; checks records against it.
//! - [`Client`]: the HTTP API, as the `sealog` command's client mode uses it.
//!
//! The client speaks the server's HTTP API only; it never opens a data directory.

mod content_id;
mod durable;
mod emitter;
mod http;
mod sender;
mod spool;
mod verify;

pub use content_id::content_id;
pub use durable::Durable;
pub use emitter::{Ack, Config, Emitter, Event, Stats};
pub use http::{Client, DEFAULT_TIMEOUT, Reply, encode, query_string};
pub use spool::{SpoolSync, replay_spool};
pub use verify::{LogVerifier, TreeReport, Trusted, VerifiedRecord, verify_tree};

/// What can go wrong talking to a server.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    /// No answer: refused, reset, timed out.
    #[error("{0}")]
    Transport(String),
    #[error("the server answered {status}: {message}")]
    Status { status: u16, message: String },
    /// An answer that is not what the API promises.
    #[error("an unexpected answer: {0}")]
    Protocol(String),
    /// `emit_durable`: the server did not take the event (it was not spooled).
    #[error("the server did not take the event: {0}")]
    Unavailable(String),
    /// The server answered that it will never take this event.
    #[error("the server refused the event ({code}): {message}")]
    Rejected { code: String, message: String },
    #[error("the emitter is closed")]
    Closed,
    #[error("no answer before the deadline")]
    Timeout,
    /// A signature, proof or record did not check.
    #[error("verification failed: {0}")]
    Verification(String),
    /// The log the server shows is not an extension of the one verified before.
    #[error("the log is not consistent with the checkpoint verified before: {0}")]
    Inconsistent(String),
}
