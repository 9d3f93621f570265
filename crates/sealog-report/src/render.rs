//! A report as CSV (one table per section, a blank line between them, the section's id in
//! the first column so a spreadsheet filter separates them) and as Markdown.

use std::fmt::Write as _;

use serde_json::Value;

use sealog_model::time::format_micros;

use crate::{Report, Section};

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// RFC 4180 quoting, and a leading `'` for text a spreadsheet would run as a formula.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) && text.parse::<f64>().is_err() {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn csv_line(out: &mut String, cells: impl IntoIterator<Item = String>) {
    let line: Vec<String> = cells.into_iter().map(|c| csv_field(&c)).collect();
    out.push_str(&line.join(","));
    out.push_str("\r\n");
}

/// Each section as (header, rows) of text cells: series become one row per period.
fn grid(report: &Report, section: &Section) -> (Vec<String>, Vec<Vec<String>>) {
    match section {
        Section::Series { series, .. } => {
            let mut header = vec!["period_start".to_string()];
            header.extend(series.iter().map(|s| s.name.clone()));
            let mut rows: Vec<Vec<String>> = report
                .window
                .starts
                .iter()
                .enumerate()
                .map(|(i, &t)| {
                    let mut row = vec![format_micros(t)];
                    row.extend(series.iter().map(|s| s.values[i].to_string()));
                    row
                })
                .collect();
            let mut total = vec!["total".to_string()];
            total.extend(series.iter().map(|s| s.total().to_string()));
            rows.push(total);
            (header, rows)
        }
        Section::Table { columns, rows, .. } => (
            columns.clone(),
            rows.iter().map(|r| r.iter().map(cell).collect()).collect(),
        ),
    }
}

fn id_title(s: &Section) -> (&'static str, &'static str) {
    match s {
        Section::Series { id, title, .. } | Section::Table { id, title, .. } => (id, title),
    }
}

impl Report {
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.sections.iter().enumerate() {
            if i > 0 {
                out.push_str("\r\n");
            }
            let (id, _) = id_title(s);
            let (header, rows) = grid(self, s);
            csv_line(
                &mut out,
                std::iter::once("section".to_string()).chain(header),
            );
            for row in rows {
                csv_line(&mut out, std::iter::once(id.to_string()).chain(row));
            }
        }
        out
    }

    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "# {}\n\n{} to {} (UTC), by {}; log size {} (quarantine {}); generated {}.\n",
            self.name.title(),
            format_micros(self.window.from),
            format_micros(self.window.to),
            self.window.period.as_str(),
            self.log_size,
            self.quarantine_size,
            format_micros(self.now),
        );
        let md = |t: &str| t.replace('|', "\\|").replace('\n', " ");
        for s in &self.sections {
            let (_, title) = id_title(s);
            let (header, rows) = grid(self, s);
            let _ = write!(out, "\n## {title}\n\n");
            if rows.is_empty() || header.len() == 1 {
                out.push_str("Nothing in this window.\n");
                continue;
            }
            let _ = writeln!(
                out,
                "| {} |",
                header.iter().map(|h| md(h)).collect::<Vec<_>>().join(" | ")
            );
            let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
            for row in rows {
                let _ = writeln!(
                    out,
                    "| {} |",
                    row.iter().map(|c| md(c)).collect::<Vec<_>>().join(" | ")
                );
            }
            if let Section::Table {
                of: Some(n), rows, ..
            } = s
            {
                let _ = writeln!(out, "\nThe newest {} subjects, of {n} records.", rows.len());
            }
        }
        out
    }
}
