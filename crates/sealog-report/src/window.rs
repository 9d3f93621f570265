//! A report's time window and the periods it is counted in: hours for a window of up to two
//! days, days for longer ones, aligned to UTC so two reports' periods line up.

use crate::ReportError;

const HOUR: i64 = 3_600_000_000_000;
const DAY: i64 = 24 * HOUR;
/// Longest window a report counts: past it, per-day periods stop being readable.
const SPAN_MAX: i64 = 400 * DAY;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Hour,
    Day,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Hour => "hour",
            Period::Day => "day",
        }
    }

    fn nanos(self) -> i64 {
        match self {
            Period::Hour => HOUR,
            Period::Day => DAY,
        }
    }
}

/// `[from, to)`, nanoseconds, cut into periods: on the event clock, but for the quarantine's
/// sections, on its ingest clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub from: i64,
    pub to: i64,
    pub period: Period,
    /// Each period's start; the first is `from`, the others on UTC boundaries.
    pub starts: Vec<i64>,
}

impl Window {
    pub fn new(from: i64, to: i64) -> Result<Window, ReportError> {
        if from >= to {
            return Err(ReportError::Invalid(
                "the window is empty: from must be before to".into(),
            ));
        }
        // Far-apart ends overflow the difference: such a window is too long too.
        if to.checked_sub(from).is_none_or(|span| span > SPAN_MAX) {
            return Err(ReportError::Invalid(
                "the window is longer than 400 days: report on a shorter one".into(),
            ));
        }
        let period = if to - from <= 2 * DAY {
            Period::Hour
        } else {
            Period::Day
        };
        let step = period.nanos();
        let mut starts = vec![from];
        let mut t = (from.div_euclid(step) + 1) * step;
        while t < to {
            starts.push(t);
            match t.checked_add(step) {
                Some(next) => t = next,
                None => break,
            }
        }
        Ok(Window {
            from,
            to,
            period,
            starts,
        })
    }

    /// Every period's start, then the window's end.
    pub fn edges(&self) -> Vec<i64> {
        let mut e = self.starts.clone();
        e.push(self.to);
        e
    }

    pub fn contains(&self, t: i64) -> bool {
        (self.from..self.to).contains(&t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_hours_up_to_two_days_and_days_after_aligned_to_utc() {
        let w = Window::new(90 * 60 * 1_000_000_000, DAY).unwrap();
        assert_eq!(w.period, Period::Hour);
        assert_eq!(
            w.starts.len(),
            23,
            "a partial first hour, then 22 whole ones"
        );
        assert_eq!(w.starts[1], 2 * HOUR);
        let w = Window::new(DAY / 2, 7 * DAY).unwrap();
        assert_eq!(w.period, Period::Day);
        assert_eq!(
            w.starts,
            [DAY / 2, DAY, 2 * DAY, 3 * DAY, 4 * DAY, 5 * DAY, 6 * DAY]
        );
        assert_eq!(w.edges().last(), Some(&(7 * DAY)));
        assert!(Window::new(5, 5).is_err());
        assert!(Window::new(0, 401 * DAY).is_err());
    }

    /// Found by schemathesis: `from=1678-01-01` with `to` now overflowed `to - from` and the
    /// server answered 500.
    #[test]
    fn a_window_whose_span_overflows_is_refused_as_too_long() {
        assert!(matches!(
            Window::new(i64::MIN + 1, i64::MAX - 1),
            Err(ReportError::Invalid(_))
        ));
        assert!(Window::new(i64::MAX - DAY, i64::MAX).is_ok());
    }
}
