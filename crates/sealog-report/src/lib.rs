//! Reports: what a compliance officer or an investigator reads about a window of the log.
//! The window is on the event clock (PRODUCT §6): a period holds the records whose events
//! happened in it, however late they were appended, so a back-filled event lands in the report
//! of the period it describes. Quarantined events are the exception: theirs is the time the
//! quarantine log took them in, since a refused event's own time may be absent or wrong.
//!
//! Every count comes from the index (the event-time window's records, then postings per axis
//! value among them), never a scan of the log; the compliance tables read only the records of
//! the subjects they list. A report names the log size it was counted at: the same window of
//! the log at that size gives the same report.

mod compliance;
mod counts;
mod render;
mod window;

use serde_json::{Value, json};

use sealog_ledger::{Ledger, Log};
use sealog_model::time::format_micros;

pub use window::{Period, Window};

use counts::Counter;

const DAY: i64 = 24 * 3_600_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    Daily,
    Weekly,
    Monthly,
    Quarantine,
    Coordination,
    Popia,
}

impl Name {
    pub const ALL: [Name; 6] = [
        Name::Daily,
        Name::Weekly,
        Name::Monthly,
        Name::Quarantine,
        Name::Coordination,
        Name::Popia,
    ];

    pub fn parse(text: &str) -> Option<Name> {
        Self::ALL.into_iter().find(|n| n.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Name::Daily => "daily",
            Name::Weekly => "weekly",
            Name::Monthly => "monthly",
            Name::Quarantine => "quarantine",
            Name::Coordination => "coordination",
            Name::Popia => "popia",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Name::Daily => "Daily activity",
            Name::Weekly => "Weekly compliance",
            Name::Monthly => "Monthly audit summary",
            Name::Quarantine => "Quarantine by reason",
            Name::Coordination => "Coordination decisions by class and decision",
            Name::Popia => "POPIA request status",
        }
    }

    /// How far back a report reaches when no `from` is given.
    fn default_span(self) -> i64 {
        match self {
            Name::Daily => DAY,
            Name::Weekly => 7 * DAY,
            Name::Monthly | Name::Quarantine | Name::Coordination | Name::Popia => 30 * DAY,
        }
    }
}

/// What to report on: a window on the event clock and the caller's reach.
#[derive(Debug, Clone)]
pub struct Request {
    pub name: Name,
    /// Nanoseconds; `to` defaults to `now`, `from` to the report's usual span before `to`.
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub now: i64,
    /// Equality filters every count and table carries (a tenant-scoped key's tenant).
    pub filters: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] sealog_ledger::Error),
}

/// Counts of one thing per period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub name: String,
    pub values: Vec<u64>,
}

impl Series {
    pub fn total(&self) -> u64 {
        self.values.iter().sum()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Section {
    /// Series over the report's periods (a chart).
    Series {
        id: &'static str,
        title: String,
        series: Vec<Series>,
    },
    /// Rows of a table; `of`, when only the newest subjects are listed, is how many records
    /// of the type there were.
    Table {
        id: &'static str,
        title: String,
        columns: Vec<String>,
        rows: Vec<Vec<Value>>,
        of: Option<usize>,
    },
}

impl Section {
    fn series(id: &'static str, title: impl Into<String>, series: Vec<Series>) -> Section {
        Section::Series {
            id,
            title: title.into(),
            series,
        }
    }

    fn table(
        id: &'static str,
        title: impl Into<String>,
        columns: &[&'static str],
        rows: Vec<Vec<Value>>,
        of: Option<usize>,
    ) -> Section {
        Section::Table {
            id,
            title: title.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows,
            of,
        }
    }

    /// A table of each series' total (what a summary prints).
    fn totals(id: &'static str, title: &'static str, what: &'static str, s: &[Series]) -> Section {
        let rows = s
            .iter()
            .map(|s| vec![json!(s.name), json!(s.total())])
            .collect();
        Section::table(id, title, &[what, "count"], rows, None)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub name: Name,
    pub window: Window,
    pub now: i64,
    /// What was counted: the canonical log's size when the report was built (its records whose
    /// events happened in the window), and the quarantine log's at the window's end (the
    /// events it took in during the window).
    pub log_size: u64,
    pub quarantine_size: u64,
    pub sections: Vec<Section>,
}

/// Builds a report.
pub fn build(ledger: &Ledger, req: &Request) -> Result<Report, ReportError> {
    let to = req.to.unwrap_or(req.now);
    let from = req
        .from
        .unwrap_or(to.saturating_sub(req.name.default_span()));
    let window = Window::new(from, to)?;
    let edges = window.edges();
    // Every section reads the log at one size, so appends while it is built change none.
    let size = ledger.len();
    let canonical = Counter::by_event_time(ledger, &req.filters, &edges, size)?;
    let quarantine = Counter::by_ingest_time(ledger, Log::Quarantine, &req.filters, &edges)?;
    let quarantine_size = ledger.sizes_at(Log::Quarantine, &[to.saturating_sub(1)])?[0];
    let judged = (size, req.now);
    let mut sections = Vec::new();
    match req.name {
        Name::Daily => {
            sections.push(canonical.by_type("appended", APPENDED)?);
            sections.push(quarantine.by_reason("quarantined", QUARANTINED)?);
            sections.push(canonical.by_axis(
                "audit.access",
                "access_outcome",
                "access",
                "Reads and attempts recorded, by outcome",
            )?);
            sections.push(canonical.by_axis(
                "sealog.conflict",
                "criticality",
                "conflicts",
                "Conflicts found, by criticality",
            )?);
        }
        Name::Weekly => {
            sections.extend(compliance::popia(ledger, &req.filters, &window, judged)?);
            sections.push(canonical.by_axis(
                "comms.consent",
                "consent_status",
                "consent",
                "Consent changes, by the status they set",
            )?);
            sections.extend(compliance::breaches(ledger, &req.filters, &window, judged)?);
        }
        Name::Monthly => {
            let what: [(&str, &str); 13] = [
                ("access allowed", "allowed"),
                ("access denied", "denied"),
                ("erasures", sealog_ledger::LEGAL_ERASURE_TYPE),
                ("legal holds placed", sealog_ledger::HOLD_PLACED_TYPE),
                ("legal holds released", sealog_ledger::HOLD_RELEASED_TYPE),
                ("retention applied", sealog_ledger::RETENTION_APPLIED_TYPE),
                ("exports", "audit.export"),
                ("keys created", "audit.key_created"),
                ("keys revoked", "audit.key_revoked"),
                ("log key rotations", sealog_ledger::LOG_KEY_ROTATED_TYPE),
                ("conflicts found", "sealog.conflict"),
                ("conflicts resolved", "sealog.conflict_resolved"),
                ("check runs", "sealog.check_run"),
            ];
            let mut totals = vec![
                canonical.total("records")?,
                quarantine.total("events quarantined")?,
            ];
            for (name, value) in what {
                let axis = if matches!(value, "allowed" | "denied") {
                    "access_outcome"
                } else {
                    "type"
                };
                totals.push(canonical.series(name, &[(axis, value)])?);
            }
            sections.push(Section::totals(
                "summary",
                "The month in numbers",
                "what",
                &totals,
            ));
            sections.push(canonical.by_type("appended", APPENDED)?);
            sections.push(quarantine.by_reason("quarantined", QUARANTINED)?);
        }
        Name::Quarantine => {
            let by_reason = quarantine.by_reason("quarantined", QUARANTINED)?;
            if let Section::Series { series, .. } = &by_reason {
                sections.push(Section::totals(
                    "totals",
                    "Totals by reason",
                    "reason",
                    series,
                ));
            }
            sections.push(by_reason);
        }
        Name::Coordination => {
            let t = "coordination.decision";
            sections.push(canonical.by_axis(
                t,
                "envelope_class",
                "by_class",
                "Decisions by envelope class",
            )?);
            sections.push(canonical.by_axis(
                t,
                "decision",
                "by_decision",
                "Decisions by outcome",
            )?);
            sections.push(matrix(ledger, &canonical, t)?);
        }
        Name::Popia => {
            sections.extend(compliance::popia(ledger, &req.filters, &window, judged)?);
        }
    }
    Ok(Report {
        name: req.name,
        now: req.now,
        quarantine_size,
        log_size: size,
        window,
        sections,
    })
}

/// The two clocks a report counts on, as its sections' titles say.
const APPENDED: &str = "Records by type, by when their events happened";
const QUARANTINED: &str = "Events quarantined by reason, by when they were quarantined";

/// Decisions by class and outcome over the whole window: one row per class.
fn matrix(ledger: &Ledger, c: &Counter<'_>, t: &str) -> Result<Section, ReportError> {
    let packs = ledger.packs();
    let classes = packs.axis_values(t, "envelope_class").unwrap_or_default();
    let decisions = packs.axis_values(t, "decision").unwrap_or_default();
    let whole = c.whole();
    let mut rows = Vec::new();
    for class in &classes {
        let mut row = vec![json!(class)];
        for d in &decisions {
            let s = whole.series(d, &[("envelope_class", class), ("decision", d)])?;
            row.push(json!(s.total()));
        }
        rows.push(row);
    }
    let mut columns = vec!["envelope_class".to_string()];
    columns.extend(decisions);
    Ok(Section::Table {
        id: "matrix",
        title: "Decisions by class and outcome, whole window".into(),
        columns,
        rows,
        of: None,
    })
}

/// What a report counts, on which clock: what its JSON states as `basis`.
const BASIS: &str = "counted from the index, within the caller's reach: the records whose events happened in the window (event time), in the log at log_size; events quarantined by when the quarantine log took them in (quarantine ingest time)";

impl Report {
    pub fn to_json(&self) -> Value {
        let sections: Vec<Value> = self.sections.iter().map(Section::to_json).collect();
        json!({
            "report": self.name.as_str(),
            "title": self.name.title(),
            "from": format_micros(self.window.from),
            "to": format_micros(self.window.to),
            "period": self.window.period.as_str(),
            "periods": self.window.starts.iter().map(|&t| format_micros(t)).collect::<Vec<_>>(),
            "generated_at": format_micros(self.now),
            "log_size": self.log_size,
            "quarantine_size": self.quarantine_size,
            "basis": BASIS,
            "sections": sections,
        })
    }
}

impl Section {
    pub fn to_json(&self) -> Value {
        match self {
            Section::Series { id, title, series } => json!({
                "id": id, "title": title, "kind": "series",
                "series": series.iter().map(|s| json!({"name": s.name, "values": s.values, "total": s.total()})).collect::<Vec<_>>(),
            }),
            Section::Table {
                id,
                title,
                columns,
                rows,
                of,
            } => json!({
                "id": id, "title": title, "kind": "table",
                "columns": columns, "rows": rows, "of": of,
            }),
        }
    }
}
