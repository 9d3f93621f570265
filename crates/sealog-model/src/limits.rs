//! Named limits on what an event may be. Each is a default; configuration may lower them.

/// Largest accepted event, in bytes of its JSON text.
pub const EVENT_BYTES_MAX: usize = 1 << 20;
/// Deepest accepted nesting of arrays and objects (the event object itself is depth 1).
pub const DEPTH_MAX: usize = 64;
/// Longest accepted `id`, `source`, `type`, `tenant`, `subject` or actor id, in bytes.
pub const ATTRIBUTE_BYTES_MAX: usize = 1024;
