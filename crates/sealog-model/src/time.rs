//! RFC 3339 timestamps as nanoseconds since the Unix epoch.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Parses an RFC 3339 timestamp (any offset, any sub-second precision up to nanoseconds).
pub fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let t = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|e| format!("not an RFC 3339 timestamp ({e})"))?;
    i64::try_from(t.unix_timestamp_nanos()).map_err(|_| "timestamp out of range".to_string())
}

/// Formats nanoseconds since the epoch as UTC with microsecond precision and a fixed width,
/// so that the text sorts like the number.
pub fn format_micros(nanos: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .expect("i64 nanoseconds are always in range");
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// Formats nanoseconds since the epoch as UTC with nanosecond precision: exact, so that
/// parsing it gives the same number back.
pub fn format_nanos(nanos: i64) -> String {
    let micros = format_micros(nanos);
    let sub = nanos.rem_euclid(1000);
    format!("{}{sub:03}Z", &micros[..micros.len() - 1])
}

/// Parses a query bound: an RFC 3339 timestamp, or a bare date (`2026-01-03`, meaning its midnight UTC).
pub fn parse_bound(text: &str) -> Result<i64, String> {
    if text.len() == 10 {
        return parse_rfc3339(&format!("{text}T00:00:00Z"));
    }
    parse_rfc3339(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanoseconds_round_trip_exactly() {
        for n in [0, 1, -1, 1_767_225_600_123_456_789, -86_400_000_000_001] {
            let text = format_nanos(n);
            assert_eq!(parse_rfc3339(&text).unwrap(), n, "{text}");
        }
        assert_eq!(
            format_nanos(1_000_000_001),
            "1970-01-01T00:00:01.000000001Z"
        );
    }

    #[test]
    fn round_trips_microseconds_and_keeps_offsets() {
        let n = parse_rfc3339("2026-01-03T12:34:56.123456Z").unwrap();
        assert_eq!(format_micros(n), "2026-01-03T12:34:56.123456Z");
        assert_eq!(
            parse_rfc3339("2026-01-03T14:34:56.123456+02:00").unwrap(),
            n
        );
        assert_eq!(
            parse_rfc3339("2026-01-03T12:34:56.000000001Z").unwrap() % 1000,
            1
        );
    }

    #[test]
    fn refuses_what_is_not_rfc3339() {
        for bad in [
            "",
            "2026-01-03",
            "2026-13-03T12:34:56Z",
            "yesterday",
            "2026-01-03T12:34:56",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_bound("2026-01-03").unwrap(),
            parse_rfc3339("2026-01-03T00:00:00Z").unwrap()
        );
    }
}
