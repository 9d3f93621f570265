//! The segment format as `docs/format.md` describes it, read independently of the store, for
//! tests that damage or forge records on purpose:
//!
//! ```text
//! segment = "SEALOGS1" first_seq:u64le  frame*          (header: 16 bytes)
//! frame   = len:u32le crc:u32le payload[len]            crc = crc32c(len:u32le ‖ payload)
//! ```

use std::ops::Range;
use std::path::{Path, PathBuf};

use sealog_model::json::Json;
use sealog_model::{Canonical, jcs};
use serde_json::{Value, json};

pub const HEADER_BYTES: u64 = 16;
pub const FRAME_HEADER_BYTES: u64 = 8;

fn crc(payload: &[u8]) -> u32 {
    let len = (payload.len() as u32).to_le_bytes();
    crc32c::crc32c_append(crc32c::crc32c(&len), payload)
}

/// One frame holding `payload`, with a valid checksum.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// A pruned record's stub as `docs/format.md` gives it, with no link and no key, padded to
/// `len` bytes: `0x00 "PRUNED1" seq:u64le leaf[32] record_id[32] ingested_ns:i64le
/// event_ns:i64le has_link:u8 link[32] has_key:u8 key[16] 0x00*`.
pub fn stub(seq: u64, leaf: [u8; 32], id: [u8; 32], times: (i64, i64), len: usize) -> Vec<u8> {
    let mut out = b"\0PRUNED1".to_vec();
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&leaf);
    out.extend_from_slice(&id);
    out.extend_from_slice(&times.0.to_le_bytes());
    out.extend_from_slice(&times.1.to_le_bytes());
    out.extend_from_slice(&[0; 33 + 17]);
    out.resize(len, 0);
    out
}

/// The frame at the start of `bytes`: its payload and whole length, if it is whole and its
/// checksum holds.
pub fn decode_frame(bytes: &[u8]) -> Option<(&[u8], usize)> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let sum = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    let payload = bytes.get(8..8 + len)?;
    (len > 0 && crc(payload) == sum).then_some((payload, 8 + len))
}

/// The byte ranges of a segment's whole frames (headers included), from `start`.
pub fn frames(bytes: &[u8], start: usize) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    let mut at = start;
    while let Some((_, n)) = bytes.get(at..).and_then(decode_frame) {
        out.push(at as u64..(at + n) as u64);
        at += n;
    }
    out
}

/// The segment files of a log directory (`DATA/log`, or `DATA/quarantine/log`), by first seq.
pub fn segments(log_dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(log_dir)
        .expect("a log directory")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let digits = name.strip_suffix(".seg")?;
            (digits.len() == 20).then(|| Some((digits.parse().ok()?, e.path())))?
        })
        .collect();
    out.sort();
    out
}

/// Every note in a checkpoint log (framed like records), and where a torn last frame starts.
pub fn checkpoint_notes(path: &Path) -> (Vec<String>, Option<u64>) {
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut notes = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        match decode_frame(&bytes[at..]) {
            Some((payload, n)) => {
                notes.push(String::from_utf8(payload.to_vec()).expect("a note is UTF-8"));
                at += n;
            }
            None => return (notes, Some(at as u64)),
        }
    }
    (notes, None)
}

/// A stored record whose event `edit` changed, made whole again as a forger would: the
/// changed event's `record_id`, the server fields kept, canonical bytes.
pub fn forge(payload: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut record: Value = serde_json::from_slice(payload).expect("a stored record");
    let server: Vec<(&str, Value)> = ["seq", "record_id", "ingested_at"]
        .into_iter()
        .map(|f| {
            (
                f,
                record
                    .as_object_mut()
                    .expect("an object")
                    .remove(f)
                    .expect("a server field"),
            )
        })
        .collect();
    edit(&mut record);
    let id = Canonical::of_event(&Json::from_value(&record))
        .expect("a valid event")
        .record_id;
    for (k, v) in server {
        record[k] = v;
    }
    record["record_id"] = json!(id.to_string());
    jcs::to_vec(&record).expect("canonical JSON")
}
