//! Series counted from the index: each one the records carrying an axis value (and the
//! caller's reach) in each period of the window.
//!
//! A period holds the records of the canonical log whose event time falls in it (PRODUCT §6:
//! a report's window is on the event clock), found by the index's event-time window, or the
//! quarantine records the quarantine log took in during it. Either way a period is a set of
//! seqs kept as runs of consecutive ones, and a series counts its axis value's postings within
//! those runs: binary searches in the index, whatever the period holds.

use sealog_ledger::{Ledger, Log};

use crate::{ReportError, Section, Series};

/// Reason codes a quarantine record can carry: the packs' checks, the supersedes rules, and
/// input that is not an event. Anything else is counted as `other`.
const REASONS_OUTSIDE_PACKS: [&str; 7] = [
    "INVALID_ENVELOPE",
    "NOT_JSON",
    "DUPLICATE_KEY",
    "UNREPRESENTABLE_NUMBER",
    "TOO_LARGE",
    "INVALID_UTF8",
    "EMPTY",
];

/// Consecutive seqs `start..end`.
type Run = (u64, u64);

/// Runs a period may have and still be counted by binary searches run by run.
const FEW_RUNS: usize = 64;

/// Counts over one log and window, within the caller's reach.
pub(crate) struct Counter<'a> {
    pub ledger: &'a Ledger,
    pub log: Log,
    pub filters: &'a [(String, String)],
    /// Each period's seqs, ascending runs.
    pub periods: Vec<Vec<Run>>,
}

impl<'a> Counter<'a> {
    /// The canonical records of the log's first `size` whose event time falls in each period
    /// `edges[i]..edges[i + 1]`.
    pub(crate) fn by_event_time(
        ledger: &'a Ledger,
        filters: &'a [(String, String)],
        edges: &[i64],
        size: u64,
    ) -> Result<Self, ReportError> {
        let periods = edges
            .windows(2)
            .map(|period| happened(ledger, (period[0], period[1]), size))
            .collect::<Result<_, _>>()?;
        Ok(Counter {
            ledger,
            log: Log::Canonical,
            filters,
            periods,
        })
    }

    /// The records `log` took in during each period `edges[i]..edges[i + 1]`: ingest time
    /// grows with seq, so each period is one run.
    pub(crate) fn by_ingest_time(
        ledger: &'a Ledger,
        log: Log,
        filters: &'a [(String, String)],
        edges: &[i64],
    ) -> Result<Self, ReportError> {
        // A period [a, b) holds the records ingested before b and not before a.
        let before: Vec<i64> = edges.iter().map(|t| t.saturating_sub(1)).collect();
        let sizes = ledger.sizes_at(log, &before)?;
        Ok(Counter {
            ledger,
            log,
            filters,
            periods: sizes.windows(2).map(|s| vec![(s[0], s[1])]).collect(),
        })
    }

    /// The same records as one period: the whole window.
    pub(crate) fn whole(&self) -> Counter<'a> {
        let mut runs: Vec<Run> = self.periods.concat();
        runs.sort_unstable();
        Counter {
            ledger: self.ledger,
            log: self.log,
            filters: self.filters,
            periods: vec![runs],
        }
    }

    pub(crate) fn series(
        &self,
        name: &str,
        equals: &[(&str, &str)],
    ) -> Result<Series, ReportError> {
        let mut all: Vec<(String, String)> = self.filters.to_vec();
        all.extend(equals.iter().map(|(a, v)| (a.to_string(), v.to_string())));
        let values = self
            .periods
            .iter()
            .map(|runs| self.within(&all, runs))
            .collect::<Result<_, _>>()?;
        Ok(Series {
            name: name.to_string(),
            values,
        })
    }

    /// How many of the seqs in `runs` carry every (axis, value) of `equals`.
    fn within(&self, equals: &[(String, String)], runs: &[Run]) -> Result<u64, ReportError> {
        let (Some(first), Some(last)) = (runs.first(), runs.last()) else {
            return Ok(0);
        };
        if equals.is_empty() {
            return Ok(runs.iter().map(|(start, end)| end - start).sum());
        }
        if runs.len() <= FEW_RUNS {
            // Every run's edges as bounds: the ranges between two runs are counted and
            // dropped. Binary searches per run, whatever the runs hold.
            let bounds: Vec<u64> = runs.iter().flat_map(|&(start, end)| [start, end]).collect();
            let counts = self.ledger.tally(self.log, equals, &bounds)?;
            return Ok(counts.into_iter().step_by(2).sum());
        }
        // Back-filled events leave a period in many runs: the postings across them are read
        // once and merged with the runs, rather than searched for run by run.
        let seqs = self.ledger.seqs_where(self.log, equals, first.0, last.1)?;
        let mut run = runs.iter().peekable();
        let mut n = 0;
        for seq in seqs {
            while run.next_if(|&&(_, end)| end <= seq).is_some() {}
            match run.peek() {
                Some(&&(start, _)) if start <= seq => n += 1,
                Some(_) => {}
                None => break,
            }
        }
        Ok(n)
    }

    /// Every record in reach, per period.
    pub(crate) fn total(&self, name: &str) -> Result<Series, ReportError> {
        self.series(name, &[])
    }

    /// One series per value of `axis` its event type's schema enumerates (one total series
    /// for the type when it enumerates none), empty series left out.
    pub(crate) fn by_axis(
        &self,
        event_type: &str,
        axis: &str,
        id: &'static str,
        title: &'static str,
    ) -> Result<Section, ReportError> {
        let series = match self.ledger.packs().axis_values(event_type, axis) {
            Some(values) => values
                .iter()
                .map(|v| self.series(v, &[(axis, v)]))
                .collect::<Result<Vec<_>, _>>()?,
            None => vec![self.series(event_type, &[("type", event_type)])?],
        };
        Ok(Section::series(id, title, series))
    }

    /// One series per event type the packs declare, empty ones left out.
    pub(crate) fn by_type(
        &self,
        id: &'static str,
        title: &'static str,
    ) -> Result<Section, ReportError> {
        let packs = self.ledger.packs();
        let mut series = Vec::new();
        for pack in packs.pack_names() {
            for t in packs.pack_types(pack) {
                series.push(self.series(t, &[("type", t)])?);
            }
        }
        let total = self.total("all")?;
        with_other(&mut series, &total);
        Ok(Section::series(id, title, series))
    }

    /// One series per reason code, `other` for any code not listed, empty ones left out.
    pub(crate) fn by_reason(
        &self,
        id: &'static str,
        title: &'static str,
    ) -> Result<Section, ReportError> {
        let codes = sealog_ledger::ReasonCode::ALL
            .iter()
            .map(|c| c.as_str())
            .chain(REASONS_OUTSIDE_PACKS);
        let mut series = Vec::new();
        for code in codes {
            series.push(self.series(code, &[("reason", code)])?);
        }
        let total = self.total("all")?;
        with_other(&mut series, &total);
        Ok(Section::series(id, title, series))
    }
}

/// The seqs of the canonical records below `size` whose event time is in `[from, to)`, as
/// ascending runs: from the index's event-time window alone, no record read.
fn happened(ledger: &Ledger, window: (i64, i64), size: u64) -> Result<Vec<Run>, ReportError> {
    let mut runs: Vec<Run> = Vec::new();
    for seq in ledger.seqs_in_event_window(window, size)? {
        match runs.last_mut() {
            Some(run) if run.1 == seq => run.1 += 1,
            _ => runs.push((seq, seq + 1)),
        }
    }
    Ok(runs)
}

/// Adds an `other` series for what `total` holds beyond the named series (records of a type
/// no loaded pack declares, a reason code added later), so a report's rows always sum to its
/// total; drops the empty ones.
fn with_other(series: &mut Vec<Series>, total: &Series) {
    let other: Vec<u64> = (0..total.values.len())
        .map(|i| {
            let named: u64 = series.iter().map(|s| s.values[i]).sum();
            total.values[i].saturating_sub(named)
        })
        .collect();
    series.push(Series {
        name: "other".into(),
        values: other,
    });
    series.retain(|s| s.total() > 0);
}
