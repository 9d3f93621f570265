//! Strict lexical rules shared by the text formats (checkpoints, notes, tile paths).

/// ASCII decimal without sign or superfluous leading zeros, so every number has exactly
/// one spelling.
pub(crate) fn parse_decimal(s: &str) -> Option<u64> {
    let canonical = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s.len() == 1 || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

/// Signed notes may contain no ASCII control character other than newline.
pub(crate) fn has_forbidden_control(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 && b != b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_canonical() {
        assert_eq!(parse_decimal("0"), Some(0));
        assert_eq!(parse_decimal("255"), Some(255));
        assert_eq!(parse_decimal("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "00",
            "01",
            "+1",
            "-0",
            " 1",
            "1 ",
            "18446744073709551616",
            "1e3",
            "\u{661}",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn control_characters() {
        assert!(!has_forbidden_control("a\nb \u{7f}\u{85}"));
        assert!(has_forbidden_control("a\rb"));
        assert!(has_forbidden_control("\t"));
        assert!(has_forbidden_control("\0"));
    }
}
