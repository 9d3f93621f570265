//! RFC 3339 timestamps as nanoseconds since the Unix epoch.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Parses an RFC 3339 timestamp (any offset, any sub-second precision up to nanoseconds).
pub fn parse_rfc3339(text: &str) -> Result<i64, String> {
    // Every event's time and every record's `ingested_at` is read here, nearly all of them
    // in UTC with `Z`: that shape is read by hand, and everything else (offsets, lowercase
    // letters, leap seconds, more than nine digits, and every refusal) by the calendar
    // crate, whose answer the hand path is tested to give.
    if let Some(nanos) = utc_nanos(text.as_bytes()) {
        return Ok(nanos);
    }
    let t = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|e| format!("not an RFC 3339 timestamp ({e})"))?;
    i64::try_from(t.unix_timestamp_nanos()).map_err(|_| "timestamp out of range".to_string())
}

/// `YYYY-MM-DDTHH:MM:SS[.F…]Z` with one to nine digits of fraction, a real calendar date and
/// a second below 60, as nanoseconds since the epoch; `None` for anything else, including an
/// instant beyond i64 nanoseconds.
fn utc_nanos(b: &[u8]) -> Option<i64> {
    let (head, tail) = b.split_at_checked(19)?;
    let digits = |at: usize, n: usize| decimal(&head[at..at + n]);
    let punctuated = head[4] == b'-'
        && head[7] == b'-'
        && head[10] == b'T'
        && head[13] == b':'
        && head[16] == b':';
    if !punctuated {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let (&zone, fraction) = tail.split_last()?;
    if zone != b'Z' {
        return None;
    }
    let sub = match fraction {
        [] => 0,
        [b'.', figures @ ..] if (1..=9).contains(&figures.len()) => {
            decimal(figures)? * 10i64.pow(9 - figures.len() as u32)
        }
        _ => return None,
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    secs.checked_mul(1_000_000_000)?.checked_add(sub)
}

/// The value of a few ASCII decimal digits; `None` if any byte is not one.
fn decimal(digits: &[u8]) -> Option<i64> {
    digits.iter().try_fold(0i64, |acc, &d| {
        d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date: the inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + of_year;
    era * 146_097 + of_era - 719_468
}

/// Formats nanoseconds since the epoch as UTC with microsecond precision and a fixed width,
/// so that the text sorts like the number.
pub fn format_micros(nanos: i64) -> String {
    // By hand rather than through a calendar type and `format!`: it stamps every line the
    // server logs and every event a benchmark generates, where the general path took a
    // twentieth of the producers' time with small events.
    let secs = nanos.div_euclid(1_000_000_000);
    let micros = nanos.rem_euclid(1_000_000_000) / 1000;
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let of_day = secs.rem_euclid(86_400);
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut n: i64| {
        for i in (at..at + width).rev() {
            text[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    // i64 nanoseconds span the years 1677 to 2262: four digits, never a sign.
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, of_day / 3600);
    put(14, 2, of_day / 60 % 60);
    put(17, 2, of_day % 60);
    put(20, 6, micros);
    text.iter().map(|&b| char::from(b)).collect()
}

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01, by the
/// era arithmetic of Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let of_era = z.rem_euclid(146_097);
    let year_of_era = (of_era - of_era / 1460 + of_era / 36_524 - of_era / 146_096) / 365;
    let of_year = of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * of_year + 2) / 153;
    let day = of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
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

/// An ISO 8601 duration (`P7Y`, `P6M`, `P30D`, `PT72H`, `P1Y2M3DT4H5M6S`, `P2W`): calendar
/// years and months, and exact days and seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub months: u32,
    pub days: u32,
    pub seconds: u64,
}

impl Period {
    pub fn parse(text: &str) -> Result<Period, String> {
        let bad = || format!("\"{text}\" is not an ISO 8601 duration such as P7Y, P90D or PT72H");
        let rest = text.strip_prefix('P').ok_or_else(bad)?;
        let (date, time) = match rest.split_once('T') {
            Some((d, t)) if !t.is_empty() => (d, Some(t)),
            Some(_) => return Err(bad()),
            None => (rest, None),
        };
        let mut p = Period {
            months: 0,
            days: 0,
            seconds: 0,
        };
        let mut any = false;
        let mut parts = |s: &str, units: &[(char, u64)], time: bool| -> Result<(), String> {
            let mut num = String::new();
            let mut next = 0;
            for c in s.chars() {
                if c.is_ascii_digit() {
                    num.push(c);
                    continue;
                }
                let at = units[next..]
                    .iter()
                    .position(|(u, _)| *u == c)
                    .ok_or_else(bad)?;
                next += at + 1;
                let n: u64 = num.parse().map_err(|_| bad())?;
                let n = n.checked_mul(units[next - 1].1).ok_or_else(bad)?;
                num.clear();
                any = true;
                match (time, c) {
                    (false, 'Y' | 'M') => {
                        p.months = p
                            .months
                            .checked_add(u32::try_from(n).map_err(|_| bad())?)
                            .ok_or_else(bad)?
                    }
                    (false, _) => {
                        p.days = p
                            .days
                            .checked_add(u32::try_from(n).map_err(|_| bad())?)
                            .ok_or_else(bad)?
                    }
                    (true, _) => p.seconds = p.seconds.checked_add(n).ok_or_else(bad)?,
                }
            }
            if num.is_empty() { Ok(()) } else { Err(bad()) }
        };
        parts(date, &[('Y', 12), ('M', 1), ('W', 7), ('D', 1)], false)?;
        if let Some(t) = time {
            parts(t, &[('H', 3600), ('M', 60), ('S', 1)], true)?;
        }
        if !any {
            return Err(bad());
        }
        Ok(p)
    }

    /// The instant this period before `now` (ns): months back on the calendar (the 31st of a
    /// shorter month is its last day), then days and seconds.
    pub fn before(&self, now: i64) -> i64 {
        let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(now))
            .expect("i64 nanoseconds are always in range");
        let total = t.year() * 12 + (i32::from(u8::from(t.month())) - 1) - self.months as i32;
        let (year, month0) = (total.div_euclid(12), total.rem_euclid(12));
        let month = time::Month::try_from(month0 as u8 + 1).expect("a month");
        let day = t.day().min(month.length(year));
        let date = time::Date::from_calendar_date(year, month, day);
        let moved = match date {
            Ok(d) => t.replace_date(d),
            Err(_) => return i64::MIN,
        };
        let nanos = moved.unix_timestamp_nanos()
            - i128::from(self.days) * 86_400_000_000_000
            - i128::from(self.seconds) * 1_000_000_000;
        i64::try_from(nanos).unwrap_or(i64::MIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Formatting by hand agrees with the calendar type on the whole range of i64
    /// nanoseconds: both ends, the epoch, either side of it, leap days and century years,
    /// and 200,000 seeded instants between.
    #[test]
    fn microsecond_text_agrees_with_the_calendar_everywhere() {
        let by_calendar = |nanos: i64| {
            let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos)).unwrap();
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
        };
        let day = 86_400 * 1_000_000_000i64;
        let mut cases = vec![i64::MIN, i64::MAX, 0, -1, 1, 999, 1000, -1000, -1001];
        for text in [
            "2000-02-29T23:59:59.999999999Z",
            "1900-02-28T00:00:00Z",
            "2100-03-01T00:00:00Z",
            "1969-12-31T23:59:59.999999Z",
            "2262-04-11T23:47:16.854775807Z",
            "1677-09-21T00:12:43.145224192Z",
        ] {
            let n = parse_rfc3339(text).unwrap();
            cases.extend([
                n,
                n.saturating_sub(1),
                n.saturating_add(1),
                n.saturating_sub(day),
            ]);
        }
        let mut r = crate::test_rng::Rng::new(0x5EA1_0617);
        cases.extend((0..200_000).map(|_| r.next() as i64));
        for n in cases {
            assert_eq!(format_micros(n), by_calendar(n), "{n}");
        }
    }

    /// The hand-read UTC shape gives the calendar crate's answer wherever it answers, and
    /// leaves to it every text it does not take: every day of the months around each kind
    /// of year (leap, century, 400th, the ends of i64 nanoseconds), impossible dates and
    /// times, every fraction length, and 100,000 seeded timestamps, each also mangled at one
    /// byte.
    #[test]
    fn utc_timestamps_read_by_hand_agree_with_the_calendar() {
        let by_calendar = |text: &str| {
            OffsetDateTime::parse(text, &Rfc3339)
                .ok()
                .and_then(|t| i64::try_from(t.unix_timestamp_nanos()).ok())
        };
        let mut texts = Vec::new();
        for year in [
            0, 1, 1600, 1677, 1678, 1900, 1969, 1970, 2000, 2023, 2024, 2100, 2262, 9999,
        ] {
            for month in 0..=13 {
                for day in 0..=32 {
                    texts.push(format!("{year:04}-{month:02}-{day:02}T12:34:56Z"));
                }
            }
        }
        for time in [
            "00:00:00", "23:59:59", "24:00:00", "23:60:00", "23:59:60", "99:99:99",
        ] {
            texts.push(format!("2026-06-30T{time}Z"));
        }
        for figures in 0..=11 {
            texts.push(format!("2026-01-03T12:34:56.{}Z", "7".repeat(figures)));
        }
        texts.extend(
            [
                "1677-09-21T00:12:43.145224192Z",
                "1677-09-21T00:12:43.145224191Z",
                "2262-04-11T23:47:16.854775807Z",
                "2262-04-11T23:47:16.854775808Z",
                "2026-01-03t12:34:56Z",
                "2026-01-03T12:34:56z",
                "2026-01-03T12:34:56+00:00",
                "2026-01-03T12:34:56.5+02:00",
                "2026-01-03 12:34:56Z",
                "2026-01-03T12:34:56",
                "2026-01-03T12:34:56.Z",
                "+026-01-03T12:34:56Z",
                "2026-1-03T12:34:56Z",
            ]
            .map(String::from),
        );
        let mut r = crate::test_rng::Rng::new(0x7153_3339);
        for _ in 0..100_000 {
            let nanos = r.next() as i64;
            let digits = r.below(10);
            let text = format_nanos(nanos);
            let cut = if digits == 0 {
                format!("{}Z", &text[..19])
            } else {
                format!("{}Z", &text[..20 + digits])
            };
            let mut mangled = cut.clone().into_bytes();
            let at = r.below(mangled.len());
            mangled[at] = b"0123456789-:.TZ+x"[r.below(17)];
            texts.push(cut);
            texts.extend(String::from_utf8(mangled).ok());
        }
        let mut by_hand = 0;
        for text in &texts {
            let fast = utc_nanos(text.as_bytes());
            if let Some(n) = fast {
                by_hand += 1;
                assert_eq!(Some(n), by_calendar(text), "{text}");
            }
            assert_eq!(parse_rfc3339(text).ok(), by_calendar(text), "{text}");
        }
        assert!(by_hand > 100_000, "the hand path took {by_hand} texts");
    }

    #[test]
    fn iso_durations_parse_and_count_back_on_the_calendar() {
        let p = Period::parse("P7Y").unwrap();
        assert_eq!(
            p,
            Period {
                months: 84,
                days: 0,
                seconds: 0
            }
        );
        assert_eq!(
            Period::parse("P1Y2M3W4DT5H6M7S").unwrap(),
            Period {
                months: 14,
                days: 25,
                seconds: 5 * 3600 + 6 * 60 + 7
            }
        );
        assert_eq!(Period::parse("PT72H").unwrap().seconds, 72 * 3600);
        for bad in [
            "",
            "P",
            "7Y",
            "PT",
            "P1H",
            "P1M1Y",
            "PY",
            "P1.5Y",
            "P-1D",
            "P99999999999Y",
        ] {
            assert!(Period::parse(bad).is_err(), "{bad}");
        }
        let now = parse_rfc3339("2026-03-31T12:00:00Z").unwrap();
        assert_eq!(format_micros(p.before(now)), "2019-03-31T12:00:00.000000Z");
        let month = Period::parse("P1M").unwrap();
        assert_eq!(
            format_micros(month.before(now)),
            "2026-02-28T12:00:00.000000Z"
        );
        let leap = parse_rfc3339("2024-02-29T00:00:00Z").unwrap();
        assert_eq!(
            format_micros(Period::parse("P1Y").unwrap().before(leap)),
            "2023-02-28T00:00:00.000000Z"
        );
        assert_eq!(
            format_micros(Period::parse("P30DT1S").unwrap().before(now)),
            "2026-03-01T11:59:59.000000Z"
        );
    }

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
