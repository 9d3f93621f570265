//! Reconciliation with the domain (seed 000 §9: "no customer link exists without a
//! corresponding audit record"): a snapshot of the domain's links, one JSON object per line,
//! against the subjects' current audited state, both ways.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use sealog_packs::{CheckRule, ReconcileSide};

use crate::CheckError;
use crate::finding::Finding;
use crate::run::Window;
use crate::subjects::{Reader, SubjectKey};

/// One line of a domain snapshot.
#[derive(Debug, Clone)]
pub struct DomainRow {
    /// 1-based, for messages.
    pub line: usize,
    pub fields: Map<String, Value>,
}

/// The longest line a snapshot may have.
const LINE_BYTES_MAX: usize = 64 * 1024;

/// Parses a snapshot: NDJSON objects; blank lines are skipped, anything else is an error
/// that names its line.
pub fn parse_domain(text: &str) -> Result<Vec<DomainRow>, CheckError> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        if line.len() > LINE_BYTES_MAX {
            return Err(CheckError::Invalid(format!(
                "line {line_no}: longer than {LINE_BYTES_MAX} bytes"
            )));
        }
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(fields)) => rows.push(DomainRow {
                line: line_no,
                fields,
            }),
            Ok(_) => {
                return Err(CheckError::Invalid(format!(
                    "line {line_no}: a domain row is a JSON object"
                )));
            }
            Err(e) => {
                return Err(CheckError::Invalid(format!(
                    "line {line_no}: not JSON ({e})"
                )));
            }
        }
    }
    Ok(rows)
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// (tenant, subject) → (its link, the line naming it).
type Links = BTreeMap<(Option<String>, String), (Option<String>, usize)>;

/// (tenant, subject) → (the audited subject, its current link).
type Audited = BTreeMap<(Option<String>, String), (SubjectKey, Option<String>)>;

/// The domain's links by (tenant, subject); a subject named twice with different links is
/// an error.
fn domain_links(
    rows: &[DomainRow],
    (key, value): (&str, &str),
    audited: &Audited,
) -> Result<Links, CheckError> {
    let holders = tenants_by_subject(audited);
    let mut links = BTreeMap::new();
    for row in rows {
        let Some(subject) = text(row.fields.get(key)) else {
            return Err(CheckError::Invalid(format!(
                "line {}: no \"{key}\"",
                row.line
            )));
        };
        let tenant = match text(row.fields.get("tenant")) {
            Some(t) => Some(t),
            None => tenant_holding(row.line, &subject, &holders)?,
        };
        let link = text(row.fields.get(value));
        if let Some((other, line)) =
            links.insert((tenant, subject.clone()), (link.clone(), row.line))
            && other != link
        {
            return Err(CheckError::Invalid(format!(
                "line {}: \"{subject}\" is linked differently on line {line}",
                row.line
            )));
        }
    }
    Ok(links)
}

/// Each audited subject id → the tenants holding it.
fn tenants_by_subject(audited: &Audited) -> HashMap<&str, Vec<Option<&str>>> {
    let mut holders: HashMap<&str, Vec<Option<&str>>> = HashMap::new();
    for (tenant, subject) in audited.keys() {
        holders
            .entry(subject.as_str())
            .or_default()
            .push(tenant.as_deref());
    }
    holders
}

/// The tenant a row without one means: the one tenant whose log holds the subject (none
/// when no tenant does: the link is then unaudited everywhere). When several do, guessing
/// would report a link that is there as missing, so the row must say.
fn tenant_holding(
    line: usize,
    subject: &str,
    holders: &HashMap<&str, Vec<Option<&str>>>,
) -> Result<Option<String>, CheckError> {
    match holders.get(subject).map(Vec::as_slice) {
        None | Some([]) => Ok(None),
        Some([only]) => Ok(only.map(str::to_string)),
        Some(several) => Err(CheckError::Invalid(format!(
            "line {line}: \"{subject}\" is audited in {} tenants ({}); give the row its \"tenant\"",
            several.len(),
            several
                .iter()
                .map(|t| t.unwrap_or("none"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

pub(crate) fn evaluate(
    rule: &CheckRule,
    (side, key, value): (ReconcileSide, &str, &str),
    rows: &[DomainRow],
    r: &Reader<'_>,
    w: &Window<'_>,
) -> Result<Vec<Finding>, CheckError> {
    let mut audited = Audited::new();
    for s in w.only(r.subjects(&rule.types, 0)?) {
        let link = r.state(&s)?.text(value);
        audited.insert((s.tenant.clone(), s.subject.clone()), (s, link));
    }
    let domain = domain_links(rows, (key, value), &audited)?;
    let mut out = Vec::new();
    let mut finding = |at: &SubjectKey, evidence| out.push(Finding::about(rule, at, evidence));
    match side {
        ReconcileSide::Domain => {
            for ((tenant, subject), (link, _)) in &domain {
                if w.subject.is_some_and(|s| s != subject) {
                    continue;
                }
                let Some(link) = link else { continue };
                match audited.get(&(tenant.clone(), subject.clone())) {
                    Some((_, Some(a))) if a == link => {}
                    Some((at, _)) => finding(at, r.state(at)?.latest().into_iter().collect()),
                    None => finding(
                        &SubjectKey::place_of(
                            tenant.clone(),
                            tenant.clone().unwrap_or_default(),
                            r.ledger,
                            &rule.types,
                        )
                        .sibling(subject),
                        Vec::new(),
                    ),
                }
            }
        }
        ReconcileSide::Audit => {
            for ((tenant, subject), (at, link)) in &audited {
                let Some(link) = link else { continue };
                match domain.get(&(tenant.clone(), subject.clone())) {
                    Some((Some(d), _)) if d == link => {}
                    _ => finding(at, r.state(at)?.latest().into_iter().collect()),
                }
            }
        }
    }
    Ok(out)
}
