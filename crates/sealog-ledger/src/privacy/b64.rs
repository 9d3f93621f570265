//! base64url without padding (RFC 4648 §5), appended to the bytes of a sealed value as it is
//! built (tested below against the `base64` crate, which reads them back).
//!
//! Why not that crate here: a sealed value is a few dozen bytes, and its `encode_slice` wants
//! room zeroed first and sets up more than it encodes. Twelve bits at a time from one table,
//! straight into the buffer the value is built in, and the whole value checked as UTF-8 once,
//! cost some 900 instructions an event less (`scripts/bench-sealing --instructions`).

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The two characters of every 12 bits.
static PAIRS: [[u8; 2]; 4096] = {
    let mut pairs = [[0u8; 2]; 4096];
    let mut i = 0;
    while i < 4096 {
        pairs[i] = [ALPHABET[i >> 6], ALPHABET[i & 63]];
        i += 1;
    }
    pairs
};

/// How many characters `n` bytes take.
pub(super) const fn encoded_len(n: usize) -> usize {
    n / 3 * 4 + [0, 2, 3][n % 3]
}

/// Appends `bytes` in base64url without padding to `out`.
pub(super) fn encode_into(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(encoded_len(bytes.len()));
    // Twelve bytes at a time, their sixteen characters written out at once.
    let mut twelves = bytes.chunks_exact(12);
    for t in &mut twelves {
        let mut chars = [0u8; 16];
        for (three, c) in t.chunks_exact(3).zip(chars.chunks_exact_mut(4)) {
            c.copy_from_slice(&four(three[0], three[1], three[2]));
        }
        out.extend_from_slice(&chars);
    }
    let rest = twelves.remainder();
    let mut threes = rest.chunks_exact(3);
    for t in &mut threes {
        out.extend_from_slice(&four(t[0], t[1], t[2]));
    }
    match *threes.remainder() {
        // Eight bits, then four zero bits: two characters.
        [x] => out.extend_from_slice(&PAIRS[usize::from(x) << 4]),
        // Sixteen bits, then two zero bits: three characters.
        [x, y] => {
            let n = usize::from(x) << 10 | usize::from(y) << 2;
            let [a, b] = PAIRS[n >> 6];
            out.extend_from_slice(&[a, b, ALPHABET[n & 63]]);
        }
        _ => {}
    }
}

/// The four characters of three bytes.
#[inline(always)]
fn four(a: u8, b: u8, c: u8) -> [u8; 4] {
    let n = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
    let ([w, x], [y, z]) = (PAIRS[n >> 12 & 0xfff], PAIRS[n & 0xfff]);
    [w, x, y, z]
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    #[test]
    fn every_length_and_every_byte_encodes_as_the_base64_crate_reads_it() {
        // Seeded, so a failure repeats: a byte stream from a fixed linear congruence.
        let mut state = 0x5ea1_0600_u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 56) as u8
        };
        for len in 0..200 {
            for _ in 0..8 {
                let bytes: Vec<u8> = (0..len).map(|_| next()).collect();
                let mut out = b"head:".to_vec();
                encode_into(&bytes, &mut out);
                let text = std::str::from_utf8(&out[5..]).expect("ASCII");
                assert_eq!(text, URL_SAFE_NO_PAD.encode(&bytes), "{bytes:?}");
                assert_eq!(text.len(), encoded_len(len));
                assert_eq!(URL_SAFE_NO_PAD.decode(text).expect("decodes"), bytes);
            }
        }
        // Every byte value in every position of a three, and at each short tail.
        for b in 0..=255u8 {
            for bytes in [
                vec![b],
                vec![b, !b],
                vec![b, 0, 255],
                vec![255, b, 0],
                vec![0, 255, b],
            ] {
                let mut out = Vec::new();
                encode_into(&bytes, &mut out);
                assert_eq!(out, URL_SAFE_NO_PAD.encode(&bytes).into_bytes());
            }
        }
    }
}
