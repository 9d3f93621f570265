//! Series counted from the index: each one the records carrying an axis value (and the
//! caller's reach) in each period of the window.

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

/// Counts over one log and window, within the caller's reach.
pub(crate) struct Counter<'a> {
    pub ledger: &'a Ledger,
    pub log: Log,
    pub filters: &'a [(String, String)],
    /// The seq bounds of the periods: period `i` is `bounds[i]..bounds[i + 1]`.
    pub bounds: Vec<u64>,
}

impl<'a> Counter<'a> {
    pub(crate) fn new(
        ledger: &'a Ledger,
        log: Log,
        filters: &'a [(String, String)],
        edges: &[i64],
    ) -> Result<Self, ReportError> {
        // A period [a, b) holds the records ingested before b and not before a.
        let before: Vec<i64> = edges.iter().map(|t| t.saturating_sub(1)).collect();
        Ok(Counter {
            ledger,
            log,
            filters,
            bounds: ledger.sizes_at(log, &before)?,
        })
    }

    pub(crate) fn series(
        &self,
        name: &str,
        equals: &[(&str, &str)],
    ) -> Result<Series, ReportError> {
        let mut all: Vec<(String, String)> = self.filters.to_vec();
        all.extend(equals.iter().map(|(a, v)| (a.to_string(), v.to_string())));
        let values = self.ledger.tally(self.log, &all, &self.bounds)?;
        Ok(Series {
            name: name.to_string(),
            values,
        })
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
