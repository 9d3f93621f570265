//! Sealog's data model: the event envelope, the strict JSON tree every event is parsed into
//! once, RFC 8785 canonical JSON, record identity and the record format, the layout of a
//! data directory.
//!
//! Nothing here touches the outside world: every function is a pure transformation of bytes
//! (or of paths), so it can fail only on bad input.
pub mod canonical_text;
pub mod cloudevents;
pub mod envelope;
pub mod input;
pub mod jcs;
pub mod json;
pub mod layout;
pub mod limits;
mod literals;
pub mod record;
#[cfg(test)]
mod test_rng;
pub mod time;

pub use envelope::{Envelope, EnvelopeError};
pub use layout::{Layout, LogLayout};
pub use record::{Canonical, PrepareError, RecordId};
