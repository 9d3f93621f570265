//! The segment format as `docs/format.md` describes it, read independently of the store, for
//! tests that damage or forge records on purpose:
//!
//! ```text
//! segment = "SEALOGS1" first_seq:u64le  frame*          (header: 16 bytes)
//! frame   = len:u32le crc:u32le payload[len]            crc = crc32c(len:u32le ‖ payload)
//! ```
//!
//! A sealed segment may be compressed (`.zseg`): [`read_segment`] gives its plain bytes and
//! [`write_segment`] writes plain bytes back in the file's own form, so surgery is the same
//! on both.

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

/// The segment files of a log directory (`DATA/log`, or `DATA/quarantine/log`), by first
/// seq: plain or compressed, the compressed one where both are (as the store reads them).
pub fn segments(log_dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, bool, PathBuf)> = std::fs::read_dir(log_dir)
        .expect("a log directory")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let (digits, compressed) = match name.strip_suffix(".zseg") {
                Some(d) => (d, true),
                None => (name.strip_suffix(".seg")?, false),
            };
            (digits.len() == 20).then(|| Some((digits.parse().ok()?, compressed, e.path())))?
        })
        .collect();
    out.sort();
    out.reverse();
    out.dedup_by_key(|(first, _, _)| *first);
    out.reverse();
    out.into_iter()
        .map(|(first, _, path)| (first, path))
        .collect()
}

fn is_compressed(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "zseg")
}

/// A segment's plain bytes (header and frames), decompressing a compressed one block by
/// block through its index: `"SEALOGZ1" first_seq:u64le per_block:u32le 0:u32le`, the
/// blocks, 28-byte index entries `plain_offset:u64le file_offset:u64le file_len:u32le
/// plain_len:u32le crc:u32le`, and the trailer `blocks:u64le plain_len:u64le crc:u32le
/// "SEALOGZE"`.
pub fn read_segment(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).expect("a segment");
    if !is_compressed(path) {
        return bytes;
    }
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let half = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    assert_eq!(&bytes[..8], b"SEALOGZ1", "{}", path.display());
    let trailer = bytes.len() - 28;
    let blocks = word(trailer) as usize;
    let index = trailer - 28 * blocks;
    let mut plain = b"SEALOGS1".to_vec();
    plain.extend_from_slice(&bytes[8..16]);
    for k in 0..blocks {
        let e = index + 28 * k;
        let (at, len, plain_len) = (word(e + 8) as usize, half(e + 16), half(e + 20));
        let block = zstd::bulk::decompress(&bytes[at..at + len], plain_len).expect("a block");
        plain.extend_from_slice(&block);
    }
    plain
}

/// Writes a segment's plain bytes to `path` as the file's kind has them: as they are, or
/// compressed in blocks of 8 records with a valid index and checksums, as a forger who
/// knows the format would.
pub fn write_segment(path: &Path, plain: &[u8]) {
    crate::files::make_writable(path);
    if !is_compressed(path) {
        std::fs::write(path, plain).unwrap();
        return;
    }
    let mut out = b"SEALOGZ1".to_vec();
    out.extend_from_slice(&plain[8..16]);
    out.extend_from_slice(&8u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    let head = out.clone();
    let mut index = Vec::new();
    let ranges = frames(plain, HEADER_BYTES as usize);
    for group in ranges.chunks(8) {
        let (start, end) = (group[0].start as usize, group[group.len() - 1].end as usize);
        let block = zstd::bulk::compress(&plain[start..end], 1).unwrap();
        index.extend_from_slice(&(start as u64).to_le_bytes());
        index.extend_from_slice(&(out.len() as u64).to_le_bytes());
        index.extend_from_slice(&(block.len() as u32).to_le_bytes());
        index.extend_from_slice(&((end - start) as u32).to_le_bytes());
        index.extend_from_slice(&crc32c::crc32c(&block).to_le_bytes());
        out.extend_from_slice(&block);
    }
    let mut words = (ranges.len().div_ceil(8) as u64).to_le_bytes().to_vec();
    words.extend_from_slice(&(plain.len() as u64).to_le_bytes());
    let sum = crc32c::crc32c_append(crc32c::crc32c_append(crc32c::crc32c(&head), &index), &words);
    out.extend_from_slice(&index);
    out.extend_from_slice(&words);
    out.extend_from_slice(&sum.to_le_bytes());
    out.extend_from_slice(b"SEALOGZE");
    std::fs::write(path, out).unwrap();
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

/// Points the id entry of the index run `rid_table` (a `run-*.rid` file: 32-byte record ids,
/// each with its seq, 8 bytes big-endian, in id order) for `id` at `seq`, and makes the
/// checksums over it again in the run's `.sum` (an 8-byte header; per table its entries and
/// blocks, 8 bytes each, and a CRC-32C of each 4 KiB block, ids first; then a CRC-32C of all
/// before it): the surgery anyone who can write the directory can do. Whether the id was there.
pub fn point_id_entry(rid_table: &Path, id: &[u8; 32], seq: u64) -> bool {
    const ENTRY: usize = 40;
    const BLOCK: usize = 4096;
    let mut table = std::fs::read(rid_table).expect("the ids of the run");
    let Some(i) = table.chunks_exact(ENTRY).position(|e| e[..32] == id[..]) else {
        return false;
    };
    let at = i * ENTRY;
    table[at + 32..at + ENTRY].copy_from_slice(&seq.to_be_bytes());
    std::fs::write(rid_table, &table).expect("written");
    let sum_path = rid_table.with_extension("sum");
    let mut sum = std::fs::read(&sum_path).expect("the run's checksums");
    let block = at / BLOCK;
    let crc_at = 8 + 16 + 4 * block;
    let crc = crc32c::crc32c(&table[BLOCK * block..(BLOCK * (block + 1)).min(table.len())]);
    sum[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
    let end = sum.len() - 4;
    let whole = crc32c::crc32c(&sum[..end]);
    sum[end..].copy_from_slice(&whole.to_le_bytes());
    std::fs::write(&sum_path, &sum).expect("written");
    true
}
