//! Sealog's data model: the event envelope, RFC 8785 canonical JSON and record identity.
//!
//! Nothing here touches the outside world: every function is a pure transformation of bytes,
//! so it can fail only on bad input.
pub mod envelope;
pub mod input;
pub mod jcs;
pub mod json;
pub mod limits;
pub mod record;
pub mod time;

pub use envelope::{Envelope, EnvelopeError};
pub use record::{Derived, Deriver, EnvelopeOnly, Posting, PreparedEvent, RecordId};
