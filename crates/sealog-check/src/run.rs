//! One check run: integrity against the signed checkpoint, every selected rule over the
//! records new since the last complete run (or the whole log), new findings recorded as
//! conflicts, and the run itself recorded.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use sealog_ledger::{Act, Ledger};
use sealog_packs::{CheckKind, CheckRule, Criticality};

use crate::conflicts::{CONFLICT_TYPE, auto_resolve, declared, recorded};
use crate::finding::Finding;
use crate::integrity::{self, Integrity};
use crate::reconcile::DomainRow;
use crate::subjects::{Reader, SubjectKey};
use crate::{CheckError, INTEGRITY_RULE, access, claims, rates, reconcile, subject_rules, timed};

pub const CHECK_RUN_TYPE: &str = "sealog.check_run";

pub struct RunOptions<'a> {
    /// Only these rules (all when empty); a run limited so is partial.
    pub rules: Vec<String>,
    /// Only findings about this subject (or key, for the access rules); partial too.
    pub subject: Option<String>,
    /// From the start of the log, not from where the last run ended.
    pub full: bool,
    /// The run's clock (ns): deadlines and windows are measured to it.
    pub now: i64,
    /// Who runs it (the records' actor, time and source).
    pub act: Act<'a>,
    /// A domain snapshot for the reconcile rules (`--reconcile FILE`); they are skipped
    /// without one.
    pub domain: Option<Vec<DomainRow>>,
}

#[derive(Debug, Clone)]
pub struct RunReport {
    pub run_id: String,
    pub from_size: u64,
    pub tree_size: u64,
    pub partial: bool,
    pub rules: Vec<String>,
    pub integrity: Integrity,
    /// Every finding of the run, new or recorded before.
    pub findings: Vec<Finding>,
    pub seq: u64,
}

impl RunReport {
    /// The highest criticality among the run's findings (`new_only`: those it recorded).
    pub fn worst(&self, new_only: bool) -> Option<Criticality> {
        self.findings
            .iter()
            .filter(|f| f.new || !new_only)
            .map(|f| f.criticality)
            .max()
    }

    pub fn new_findings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.new)
    }

    /// New findings by criticality.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        let mut m = BTreeMap::new();
        for f in self.new_findings() {
            *m.entry(f.criticality.as_str()).or_default() += 1;
        }
        m
    }

    pub fn summary(&self) -> Value {
        json!({
            "run_id": self.run_id,
            "seq": self.seq,
            "from_size": self.from_size,
            "tree_size": self.tree_size,
            "partial": self.partial,
            "rules": self.rules.len(),
            "integrity": self.integrity.to_json(),
            "findings": self.findings.len(),
            "new_findings": self.new_findings().count(),
            "counts": self.counts(),
        })
    }
}

/// Where a run looks.
pub(crate) struct Window<'a> {
    /// The first seq new to this run.
    pub(crate) from: u64,
    pub(crate) now: i64,
    /// The last complete run's clock, when this run continues it.
    pub(crate) previous_now: Option<i64>,
    /// The quarantine log's records new to this run (seq range).
    pub(crate) quarantine: (u64, u64),
    pub(crate) subject: Option<&'a str>,
}

impl Window<'_> {
    pub(crate) fn only(&self, keys: Vec<SubjectKey>) -> Vec<SubjectKey> {
        match self.subject {
            None => keys,
            Some(s) => keys.into_iter().filter(|k| k.subject == s).collect(),
        }
    }
}

/// The last complete run whose integrity held.
struct LastRun {
    size: u64,
    root: String,
    now: i64,
    quarantine_size: u64,
}

fn last_complete(ledger: &Ledger) -> Result<Option<LastRun>, CheckError> {
    let mut last = None;
    for (seq, v) in ledger.records_where(vec![("type".into(), CHECK_RUN_TYPE.into())])? {
        let d = &v["data"];
        if d["partial"] == json!(true) || d["integrity"]["ok"] != json!(true) {
            continue;
        }
        let (Some(size), Some(root), Some(at)) = (
            d["tree_size"].as_u64(),
            d["root"].as_str(),
            d["checked_at"]
                .as_str()
                .and_then(|t| sealog_model::time::parse_rfc3339(t).ok()),
        ) else {
            return Err(CheckError::Corrupted(format!(
                "check run record {seq} lacks its size, root or clock"
            )));
        };
        last = Some(LastRun {
            size,
            root: root.to_string(),
            now: at,
            quarantine_size: d["quarantine_size"].as_u64().unwrap_or(0),
        });
    }
    Ok(last)
}

pub fn run(ledger: &Ledger, opts: &RunOptions<'_>) -> Result<RunReport, CheckError> {
    let packs = ledger.packs();
    let known: Vec<&str> = packs.checks().iter().map(|r| r.name.as_str()).collect();
    if let Some(bad) = opts
        .rules
        .iter()
        .find(|r| !known.contains(&r.as_str()) && r.as_str() != INTEGRITY_RULE)
    {
        return Err(CheckError::Invalid(format!(
            "no rule {bad}; the rules are {}, {INTEGRITY_RULE}",
            known.join(", ")
        )));
    }
    let partial = !opts.rules.is_empty() || opts.subject.is_some();
    let selected = |name: &str| opts.rules.is_empty() || opts.rules.iter().any(|r| r == name);
    let last = last_complete(ledger)?;
    let cp = ledger.checkpoint()?;
    let quarantine_size = ledger.quarantine_len();
    let continues = last.as_ref().filter(|l| l.size <= cp.size);
    let from = match continues {
        Some(l) if !opts.full && !partial => l.size,
        _ => 0,
    };
    let integrity = integrity::check(
        ledger,
        &cp,
        from,
        last.as_ref().map(|l| (l.size, l.root.as_str())),
    )?;
    let reader = Reader::new(ledger, cp.size);
    let w = Window {
        from,
        now: opts.now,
        previous_now: continues.filter(|_| from > 0).map(|l| l.now),
        quarantine: (
            continues
                .filter(|_| from > 0)
                .map_or(0, |l| l.quarantine_size.min(quarantine_size)),
            quarantine_size,
        ),
        subject: opts.subject.as_deref(),
    };
    let mut findings = Vec::new();
    let root_place = SubjectKey::place(None, String::new());
    if !integrity.ok && selected(INTEGRITY_RULE) {
        findings.push(Finding::of(
            (
                INTEGRITY_RULE,
                "integrity",
                Criticality::Critical,
                integrity
                    .message
                    .as_deref()
                    .unwrap_or("the log does not match its signed checkpoint"),
            ),
            &root_place,
            Vec::new(),
            Vec::new(),
            Some(format!("size {}", cp.size)),
        ));
    }
    let mut rules = Vec::new();
    let state_rules: Vec<(&CheckRule, &[String])> = packs
        .checks()
        .iter()
        .filter(|r| selected(&r.name))
        .filter_map(|r| match &r.kind {
            CheckKind::State { anomalies } => Some((&**r, anomalies.as_slice())),
            _ => None,
        })
        .collect();
    if !state_rules.is_empty() {
        findings.extend(subject_rules::state(&state_rules, &reader, &w)?);
        rules.extend(state_rules.iter().map(|(r, _)| r.name.clone()));
    }
    for rule in packs.checks().iter().filter(|r| selected(&r.name)) {
        let found = match &rule.kind {
            CheckKind::State { .. } => continue,
            CheckKind::Reference { targets, axis, .. } => {
                subject_rules::reference(rule, targets, axis, &reader, &w)?
            }
            CheckKind::Claims {
                same,
                axis,
                key,
                value,
                criticality_by,
                ..
            } => claims::evaluate(
                rule,
                &claims::Claims {
                    same: *same,
                    axis,
                    key,
                    value,
                    criticality_by: criticality_by.as_ref(),
                },
                &reader,
                &w,
            )?,
            CheckKind::Orphan {
                within_ns,
                edges,
                axis,
                ..
            } => timed::orphan(rule, (*within_ns, edges, axis), &reader, &w)?,
            CheckKind::Stale { within_ns } => timed::stale(rule, *within_ns, &reader, &w)?,
            CheckKind::Deadline(deadline) => timed::deadline(rule, deadline, &reader, &w)?,
            CheckKind::DeniedBurst {
                within_ns,
                threshold,
            } => access::windowed(rule, ("denied", *within_ns, *threshold), &reader, &w)?,
            CheckKind::ReadSpread {
                within_ns,
                threshold,
            } => access::windowed(rule, ("allowed", *within_ns, *threshold), &reader, &w)?,
            CheckKind::NewSource => access::new_source(rule, &reader, &w)?,
            CheckKind::FailureRate {
                within_ns,
                percent,
                threshold,
            } => rates::failure_rate(rule, (*within_ns, *percent, *threshold), &reader, &w)?,
            CheckKind::Reconcile { side, key, value } => match &opts.domain {
                None => continue,
                Some(rows) => {
                    let seeing = Reader::seeing(ledger, cp.size);
                    reconcile::evaluate(rule, (*side, key, value), rows, &seeing, &w)?
                }
            },
        };
        rules.push(rule.name.clone());
        findings.extend(found);
    }
    let mut seen = HashSet::new();
    findings.retain(|f| seen.insert(f.conflict_id.clone()));

    let run_id = {
        let mut h = Sha256::new();
        h.update(cp.size.to_le_bytes());
        h.update(opts.now.to_le_bytes());
        h.update(from.to_le_bytes());
        h.update(opts.rules.join("\n").as_bytes());
        h.update(opts.subject.as_deref().unwrap_or("").as_bytes());
        format!("run-{}", &hex::encode(h.finalize())[..24])
    };
    let mut fresh = Vec::new();
    for (i, f) in findings.iter().enumerate() {
        if !recorded(ledger, &f.conflict_id)? {
            fresh.push(i);
        }
    }
    let records = fresh
        .iter()
        .map(|&i| {
            let f = &findings[i];
            (
                f.conflict_id.clone(),
                CONFLICT_TYPE.to_string(),
                f.tenant.clone(),
                f.record_data(&run_id),
            )
        })
        .collect();
    for (&i, result) in fresh
        .iter()
        .zip(ledger.append_own_many(&opts.act, records)?)
    {
        result.map_err(CheckError::Refused)?;
        findings[i].new = true;
    }
    for &i in &fresh {
        let resolve = packs
            .checks()
            .iter()
            .find(|r| r.name == findings[i].rule)
            .and_then(|r| declared(r));
        if let Some(res) = resolve {
            let resolution = auto_resolve(ledger, res, &findings[i], &opts.act)?;
            findings[i].auto_resolution = Some(resolution.as_str().to_string());
        }
    }
    let mut report = RunReport {
        run_id: run_id.clone(),
        from_size: from,
        tree_size: cp.size,
        partial,
        rules,
        integrity,
        findings,
        seq: 0,
    };
    // The record is the summary with the rules named and what the next run starts from.
    let mut data = report.summary();
    let d = data.as_object_mut().expect("an object");
    d.remove("seq");
    d.insert("rules".into(), json!(report.rules));
    d.insert("quarantine_size".into(), json!(quarantine_size));
    d.insert("root".into(), json!(integrity::root_text(&cp.root)));
    d.insert(
        "checked_at".into(),
        json!(sealog_model::time::format_nanos(opts.now)),
    );
    d.insert(
        "previous_checked_at".into(),
        json!(w.previous_now.map(sealog_model::time::format_nanos)),
    );
    d.insert("full".into(), json!(from == 0));
    let (seq, _) = ledger
        .append_own(run_id, CHECK_RUN_TYPE, &opts.act, None, data)?
        .map_err(CheckError::Refused)?;
    report.seq = seq;
    Ok(report)
}
