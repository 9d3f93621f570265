//! Named limits on what an event may be. Each is a default; configuration may lower them.

/// Largest accepted event, in bytes of its JSON text.
pub const EVENT_BYTES_MAX: usize = 1 << 20;
/// Longest record, in bytes of its canonical text with the server's fields: a C2SP tlog-tiles
/// entry bundle gives each entry a 16-bit length, and every record must be readable there, by
/// any log client and by `verify --url`. An event is refused when its record could be longer.
pub const RECORD_BYTES_MAX: usize = u16::MAX as usize;
/// Deepest accepted nesting of arrays and objects (the event object itself is depth 1).
pub const DEPTH_MAX: usize = 64;
/// Longest accepted `id`, `source`, `type`, `tenant`, `subject` or actor id, in characters
/// (Unicode scalar values, as JSON Schema's `maxLength` counts them, so the OpenAPI document
/// can state the limit exactly).
pub const ATTRIBUTE_CHARS_MAX: usize = 1024;

/// Whether `s` is a whole attribute: not empty and at most `ATTRIBUTE_CHARS_MAX` characters.
pub fn attribute_fits(s: &str) -> bool {
    // A string of at most that many bytes has at most that many characters.
    !s.is_empty() && (s.len() <= ATTRIBUTE_CHARS_MAX || s.chars().count() <= ATTRIBUTE_CHARS_MAX)
}
