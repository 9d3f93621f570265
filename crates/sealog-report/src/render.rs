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

/// What a spreadsheet may read as the start of a formula (OWASP, CSV injection): a tab or a
/// carriage return is skipped before the formula is read.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// RFC 4180 quoting, and a leading `'` for text a spreadsheet would run as a formula (a
/// number keeps its sign).
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(FORMULA_STARTS) && text.parse::<f64>().is_err() {
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

/// A table cell's text as Markdown keeps it in its cell: a pipe is escaped, and so is a
/// backslash (else `\|` in the text would end as an escaped backslash and a cell boundary);
/// a line ending (CommonMark counts a lone CR as one) would end the row, so it reads as a
/// space.
fn md_cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.replace("\r\n", "\n").chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
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

fn id_title(s: &Section) -> (&'static str, &str) {
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
            "# {}\n\n{} to {} (UTC) on the events' own time (quarantined events: when they were quarantined), by {}; log size {} (quarantine {}); generated {}.\n",
            self.name.title(),
            format_micros(self.window.from),
            format_micros(self.window.to),
            self.window.period.as_str(),
            self.log_size,
            self.quarantine_size,
            format_micros(self.now),
        );
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
                header
                    .iter()
                    .map(|h| md_cell(h))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
            for row in rows {
                let _ = writeln!(
                    out,
                    "| {} |",
                    row.iter()
                        .map(|c| md_cell(c))
                        .collect::<Vec<_>>()
                        .join(" | ")
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{Name, Window};

    #[test]
    fn csv_cells_a_spreadsheet_would_run_as_formulas_are_prefixed() {
        for start in FORMULA_STARTS {
            let text = format!("{start}1+2");
            let field = csv_field(&text);
            assert!(
                field.starts_with("'") || field.starts_with("\"'"),
                "{text:?} became {field:?}"
            );
        }
        assert_eq!(csv_field("\t=1+2"), "'\t=1+2");
        assert_eq!(csv_field("\r=1+2"), "\"'\r=1+2\"");
        assert_eq!(csv_field("-12.5"), "-12.5", "a number keeps its sign");
        assert_eq!(csv_field("a=b"), "a=b");
    }

    #[test]
    fn csv_cells_are_quoted_as_rfc_4180_says() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("a\rb"), "\"a\rb\"");
        assert_eq!(csv_field("a\nb"), "\"a\nb\"");
    }

    #[test]
    fn markdown_cells_keep_pipes_backslashes_and_line_endings_inside_the_cell() {
        assert_eq!(md_cell("a|b"), "a\\|b");
        assert_eq!(md_cell("x\\|y"), "x\\\\\\|y");
        assert_eq!(md_cell("x\\"), "x\\\\");
        assert_eq!(md_cell("a\rb"), "a b");
        assert_eq!(md_cell("a\nb"), "a b");
        assert_eq!(md_cell("a\r\nb"), "a b");
    }

    fn popia_ids(ids: &[&str]) -> Report {
        let day = 24 * 3_600_000_000_000;
        Report {
            name: Name::Popia,
            window: Window::new(0, 2 * day).expect("a window"),
            now: 2 * day,
            log_size: ids.len() as u64,
            quarantine_size: 0,
            sections: vec![Section::table(
                "popia_requests",
                "POPIA requests",
                &["request_id", "standing"],
                ids.iter()
                    .map(|id| vec![json!(id), json!("open")])
                    .collect(),
                None,
            )],
        }
    }

    #[test]
    fn hostile_request_ids_stay_in_their_cell_and_are_never_run_as_formulas() {
        let report = popia_ids(&["a\rb", "x\\|y", "\t=1+2"]);
        let md = report.to_markdown();
        assert!(!md.contains('\r'), "{md:?}");
        let rows: Vec<&str> = md.lines().filter(|l| l.ends_with("| open |")).collect();
        assert_eq!(
            rows,
            [
                "| a b | open |",
                "| x\\\\\\|y | open |",
                "| \t=1+2 | open |"
            ]
        );
        let csv = report.to_csv();
        assert!(csv.contains("popia_requests,'\t=1+2,open\r\n"), "{csv:?}");
        assert!(csv.contains("popia_requests,\"a\rb\",open\r\n"), "{csv:?}");
    }
}
