//! The proof file: the multiproof's hashes, lowercase hex, one per line, in the order
//! `sealog_merkle::multiproof` gives them. The leaves are the records' seqs, ascending; the
//! tree size is the manifest's.

use sealog_merkle::Hash;

pub(crate) const KIND: &str = "rfc9162-multiproof";

pub(crate) fn write(hashes: &[Hash]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hashes.len() * 65);
    for h in hashes {
        out.extend_from_slice(hex::encode(h).as_bytes());
        out.push(b'\n');
    }
    out
}

pub(crate) fn read(bytes: &[u8]) -> Result<Vec<Hash>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the proof is not text".to_string())?;
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the proof's last line is not ended".into());
    }
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let bad = || format!("proof line {}: not 64 lowercase hex digits", i + 1);
            if line.len() != 64 || !line.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return Err(bad());
            }
            let mut h = [0u8; 32];
            hex::decode_to_slice(line, &mut h).map_err(|_| bad())?;
            Ok(h)
        })
        .collect()
}
