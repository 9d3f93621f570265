//! `index/DURABLE`: how many records the writer has made durable, for readers beside it.
//!
//! ```text
//! count:u64le crc32c(count):u32le      (12 bytes)
//! ```
//! Written after each group's fsync without a sync of its own: it is a hint for readers,
//! never read by recovery. A value that fails its checksum is no hint at all.

pub(crate) const BYTES: usize = 12;

pub(crate) fn encode(count: u64) -> [u8; BYTES] {
    let mut out = [0u8; BYTES];
    out[..8].copy_from_slice(&count.to_le_bytes());
    let crc = crc32c::crc32c(&out[..8]);
    out[8..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The count, if the bytes are one.
pub(crate) fn decode(bytes: &[u8]) -> Option<u64> {
    let count = bytes.get(..8)?;
    let crc = u32::from_le_bytes(bytes.get(8..BYTES)?.try_into().ok()?);
    (crc32c::crc32c(count) == crc).then(|| u64::from_le_bytes(count.try_into().expect("8 bytes")))
}
