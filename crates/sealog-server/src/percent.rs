//! Strict percent-decoding, for query strings and CloudEvents headers: an escape that is not
//! `%` and two hex digits is refused rather than passed through, and so is text that is not
//! UTF-8 once decoded.

/// Why text could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Undecodable {
    Escape,
    Utf8,
}

/// Decodes `%XX` escapes, and `+` as a space when `plus_is_space` (query strings).
pub(crate) fn decode(text: &str, plus_is_space: bool) -> Result<String, Undecodable> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let digits = bytes.get(i + 1..i + 3).ok_or(Undecodable::Escape)?;
                let mut byte = [0u8];
                hex::decode_to_slice(digits, &mut byte).map_err(|_| Undecodable::Escape)?;
                out.push(byte[0]);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| Undecodable::Utf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_decode_and_anything_else_is_refused() {
        assert_eq!(decode("a%20b+c%2B", true).unwrap(), "a b c+");
        assert_eq!(decode("a%20b+c", false).unwrap(), "a b+c");
        assert_eq!(decode("%C3%A9%c3%a9", false).unwrap(), "éé");
        for bad in ["%", "%4", "%zz", "%+f", "a%g0", "%%41"] {
            assert_eq!(decode(bad, true), Err(Undecodable::Escape), "{bad}");
        }
        assert_eq!(decode("%ff", false), Err(Undecodable::Utf8));
        assert_eq!(decode("%C3", false), Err(Undecodable::Utf8));
    }
}
