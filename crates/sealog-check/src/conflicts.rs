//! The conflict lifecycle (seed 003 §5.3): a conflict is open from its `sealog.conflict`
//! record until a `sealog.conflict_resolved` record settles it; `escalate` hands it to a
//! person and leaves it unsettled. Nothing is edited: the status is read from the records.
//!
//! Where a rule declares resolution rules, a contradiction is settled as it is recorded:
//! higher authority, then the more recent change, then a human's change over an agent's, else
//! escalated; the loser gains a SUPERSEDED_BY relationship to the winner.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Value, json};

use sealog_ledger::{Act, Author, IngestResult, Ledger, Query};
use sealog_packs::{CheckKind, CheckRule, Criticality, Resolve};

use crate::CheckError;
use crate::finding::Finding;
use crate::subjects::{Reader, SubjectKey};

pub const CONFLICT_TYPE: &str = "sealog.conflict";
pub const RESOLVED_TYPE: &str = "sealog.conflict_resolved";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Open,
    /// Handed to a person; still unsettled.
    Escalated,
    Resolved,
}

impl Status {
    pub fn parse(text: &str) -> Result<Status, String> {
        match text {
            "open" => Ok(Status::Open),
            "escalated" => Ok(Status::Escalated),
            "resolved" => Ok(Status::Resolved),
            other => Err(format!(
                "\"{other}\" is not a conflict status (open, escalated, resolved)"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Escalated => "escalated",
            Status::Resolved => "resolved",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    AuthorityWins,
    RecencyWins,
    HumanWins,
    Escalate,
    Dismissed,
}

impl Resolution {
    pub const NAMES: &'static str = "authority_wins, recency_wins, human_wins, escalate, dismissed";

    pub fn parse(text: &str) -> Result<Resolution, String> {
        Ok(match text {
            "authority_wins" => Resolution::AuthorityWins,
            "recency_wins" => Resolution::RecencyWins,
            "human_wins" => Resolution::HumanWins,
            "escalate" => Resolution::Escalate,
            "dismissed" => Resolution::Dismissed,
            other => {
                return Err(format!(
                    "\"{other}\" is not a resolution ({})",
                    Resolution::NAMES
                ));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::AuthorityWins => "authority_wins",
            Resolution::RecencyWins => "recency_wins",
            Resolution::HumanWins => "human_wins",
            Resolution::Escalate => "escalate",
            Resolution::Dismissed => "dismissed",
        }
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A conflict as its records tell it.
#[derive(Debug, Clone)]
pub struct Conflict {
    pub seq: u64,
    pub tenant: Option<String>,
    /// The `sealog.conflict` record.
    pub record: Value,
    /// Its `sealog.conflict_resolved` records, oldest first.
    pub resolutions: Vec<Value>,
}

impl Conflict {
    pub fn id(&self) -> &str {
        self.record["data"]["conflict_id"].as_str().unwrap_or("")
    }

    pub fn criticality(&self) -> &str {
        self.record["data"]["criticality"].as_str().unwrap_or("")
    }

    pub fn rule(&self) -> &str {
        self.record["data"]["rule"].as_str().unwrap_or("")
    }

    /// The subjects the conflict is about.
    pub fn subjects(&self) -> Vec<String> {
        self.record["data"]["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    }

    pub fn status(&self) -> Status {
        match self
            .resolutions
            .last()
            .and_then(|r| r["data"]["resolution"].as_str())
        {
            None => Status::Open,
            Some("escalate") => Status::Escalated,
            Some(_) => Status::Resolved,
        }
    }

    /// As `sealog conflicts` and `GET /v1/conflicts` show it.
    pub fn to_json(&self) -> Value {
        let mut v = self.record["data"].clone();
        v["status"] = json!(self.status().as_str());
        v["seq"] = json!(self.seq);
        v["record_id"] = self.record["record_id"].clone();
        v["detected_at"] = self.record["time"].clone();
        v["tenant"] = json!(self.tenant);
        v["resolutions"] = Value::Array(
            self.resolutions
                .iter()
                .map(|r| {
                    let mut d = r["data"].clone();
                    d["seq"] = r["seq"].clone();
                    d["record_id"] = r["record_id"].clone();
                    d["time"] = r["time"].clone();
                    d["actor"] = r["actor"].clone();
                    d
                })
                .collect(),
        );
        v
    }
}

/// The records matching `equals`, parsed (the record carries its own seq).
fn all_of(ledger: &Ledger, equals: Vec<(String, String)>) -> Result<Vec<Value>, CheckError> {
    Ok(ledger
        .records_where(equals)?
        .into_iter()
        .map(|(_, v)| v)
        .collect())
}

fn typed(t: &str) -> (String, String) {
    ("type".to_string(), t.to_string())
}

/// Which conflicts a listing keeps; each criterion applies when given.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter<'a> {
    pub status: Option<Status>,
    /// Only this tenant's (a tenant-scoped caller's reach).
    pub tenant: Option<&'a str>,
    pub rule: Option<&'a str>,
    /// Only conflicts at least this critical.
    pub at_least: Option<Criticality>,
}

impl Filter<'_> {
    fn keeps(&self, c: &Conflict) -> bool {
        self.tenant.is_none_or(|t| c.tenant.as_deref() == Some(t))
            && self.rule.is_none_or(|r| c.rule() == r)
            && self
                .at_least
                .is_none_or(|min| Criticality::parse(c.criticality()).is_ok_and(|have| have >= min))
            && self.status.is_none_or(|s| c.status() == s)
    }
}

/// Every conflict the filter keeps, oldest first.
pub fn conflicts(ledger: &Ledger, filter: &Filter<'_>) -> Result<Vec<Conflict>, CheckError> {
    let mut resolutions: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in all_of(ledger, vec![typed(RESOLVED_TYPE)])? {
        if let Some(id) = r["data"]["conflict_id"].as_str() {
            resolutions.entry(id.to_string()).or_default().push(r);
        }
    }
    let mut out = Vec::new();
    for record in all_of(ledger, vec![typed(CONFLICT_TYPE)])? {
        let id = record["data"]["conflict_id"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let c = Conflict {
            seq: record["seq"].as_u64().unwrap_or(0),
            tenant: record["tenant"].as_str().map(str::to_string),
            resolutions: resolutions.remove(&id).unwrap_or_default(),
            record,
        };
        if filter.keeps(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

/// One conflict by id, within `tenant` when given.
pub(crate) fn find(
    ledger: &Ledger,
    id: &str,
    tenant: Option<&str>,
) -> Result<Option<Conflict>, CheckError> {
    let subject = ("subject".to_string(), id.to_string());
    let Some(record) = all_of(ledger, vec![typed(CONFLICT_TYPE), subject.clone()])?
        .into_iter()
        .find(|r| r["data"]["conflict_id"].as_str() == Some(id))
    else {
        return Ok(None);
    };
    let t = record["tenant"].as_str().map(str::to_string);
    if tenant.is_some_and(|want| t.as_deref() != Some(want)) {
        return Ok(None);
    }
    let resolutions = all_of(ledger, vec![typed(RESOLVED_TYPE), subject])?
        .into_iter()
        .filter(|r| r["data"]["conflict_id"].as_str() == Some(id))
        .collect();
    Ok(Some(Conflict {
        seq: record["seq"].as_u64().unwrap_or(0),
        tenant: t,
        record,
        resolutions,
    }))
}

/// Whether a conflict with this id has been recorded.
pub(crate) fn recorded(ledger: &Ledger, id: &str) -> Result<bool, CheckError> {
    let q = Query {
        equals: vec![typed(CONFLICT_TYPE), ("subject".into(), id.into())],
        limit: 1,
        ..Query::default()
    };
    Ok(!ledger.query(&q)?.records.is_empty())
}

/// How one side of a contradiction ranks under seed 003 §5.3.
struct Standing {
    subject: String,
    /// Position in the authority order (lower is higher; unknown levels rank last).
    authority: usize,
    changed_ns: i64,
    human: bool,
}

fn standings(
    r: &Reader<'_>,
    resolve: &Resolve,
    at: &SubjectKey,
    subjects: &[String],
) -> Result<Vec<Standing>, CheckError> {
    let mut out = Vec::new();
    for s in subjects {
        let state = r.state(&at.sibling(s))?;
        let authority = state
            .text(&resolve.authority)
            .and_then(|a| resolve.authority_order.iter().position(|o| *o == a))
            .unwrap_or(resolve.authority_order.len());
        let updated = state.cited("updated");
        let human = match &updated {
            Some(c) => r
                .ledger
                .get(c.seq)?
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| resolve.principal_type.get(&v).cloned())
                .is_some_and(|t| t == "human"),
            None => false,
        };
        out.push(Standing {
            subject: s.clone(),
            authority,
            changed_ns: updated.map_or(i64::MIN, |c| c.time_ns),
            human,
        });
    }
    Ok(out)
}

/// The winner by one criterion, or why it does not decide.
fn winner_by(standings: &[Standing], by: Resolution) -> Result<&Standing, String> {
    let rank = |s: &Standing| -> i128 {
        match by {
            Resolution::AuthorityWins => -(s.authority as i128),
            Resolution::RecencyWins => i128::from(s.changed_ns),
            _ => i128::from(s.human),
        }
    };
    let mut sorted: Vec<&Standing> = standings.iter().collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(rank(s)));
    match sorted.as_slice() {
        [best, second, ..] if rank(best) == rank(second) => Err(format!(
            "{by} does not decide between {} and {}: they are equal on it",
            best.subject, second.subject
        )),
        [best, ..] => Ok(best),
        [] => Err("the conflict names no subjects".into()),
    }
}

/// Seed 003 §5.3 in order: the first criterion that decides.
fn automatic(standings: &[Standing]) -> (Resolution, Option<&Standing>) {
    for by in [
        Resolution::AuthorityWins,
        Resolution::RecencyWins,
        Resolution::HumanWins,
    ] {
        if let Ok(w) = winner_by(standings, by) {
            return (by, Some(w));
        }
    }
    (Resolution::Escalate, None)
}

/// The rule named `rule`, if it declares resolution rules.
fn resolving(ledger: &Ledger, rule: &str) -> Option<std::sync::Arc<CheckRule>> {
    ledger
        .packs()
        .checks()
        .iter()
        .find(|r| r.name == rule && declared(r).is_some())
        .cloned()
}

/// The resolution rules a rule declares, if any.
pub(crate) fn declared(rule: &CheckRule) -> Option<&Resolve> {
    match &rule.kind {
        CheckKind::Claims {
            resolve: Some(res), ..
        } => Some(res),
        _ => None,
    }
}

/// Fills the rule's relationship template for one loser and appends it.
fn supersede(
    ledger: &Ledger,
    resolve: &Resolve,
    (conflict, tenant, winner, loser): (&str, Option<&str>, &str, &str),
    (act, principal): (&Act<'_>, (&str, &str)),
) -> Result<String, CheckError> {
    let edge = format!("superseded-by:{conflict}:{loser}");
    let fill = |text: &str| -> Option<String> {
        Some(
            match text {
                "{loser}" => loser,
                "{winner}" => winner,
                "{conflict}" => conflict,
                "{edge}" => &edge,
                "{principal_type}" => principal.0,
                "{principal_id}" => principal.1,
                _ => return None,
            }
            .to_string(),
        )
    };
    fn walk(v: &mut Value, fill: &dyn Fn(&str) -> Option<String>) {
        match v {
            Value::String(s) => {
                if let Some(t) = fill(s) {
                    *s = t;
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, fill)),
            Value::Object(m) => m.values_mut().for_each(|x| walk(x, fill)),
            _ => {}
        }
    }
    let mut event = resolve.superseded_by.clone();
    walk(&mut event, &fill);
    event["specversion"] = json!("1.0");
    event["id"] = json!(edge);
    event["source"] = json!(act.source);
    event["time"] = json!(act.time);
    if let Some(t) = tenant {
        event["tenant"] = json!(t);
    }
    let prepared = ledger.prepare_value(&event, &Author::Producer { tenant });
    match ledger.commit(vec![prepared])?.pop() {
        Some(
            IngestResult::Appended { record_id, .. } | IngestResult::Duplicate { record_id, .. },
        ) => Ok(record_id.to_string()),
        other => Err(CheckError::Refused(format!(
            "the SUPERSEDED_BY record: {}",
            other.map_or_else(|| "no result".into(), |r| r.to_json().to_string())
        ))),
    }
}

/// Appends the resolution record (and, for a winner, the losers' SUPERSEDED_BY records from
/// the rule's template).
fn settle(
    ledger: &Ledger,
    c: &Conflict,
    (resolution, winner, automatic): (Resolution, Option<(&Resolve, &str)>, bool),
    reason: &str,
    (act, principal): (&Act<'_>, (&str, &str)),
) -> Result<Value, CheckError> {
    let mut data = json!({
        "conflict_id": c.id(),
        "resolution": resolution.as_str(),
        "reason": reason,
        "automatic": automatic,
    });
    if let Some((resolve, w)) = winner {
        let losers: Vec<String> = c.subjects().into_iter().filter(|s| s != w).collect();
        let mut records = Vec::new();
        for loser in &losers {
            records.push(supersede(
                ledger,
                resolve,
                (c.id(), c.tenant.as_deref(), w, loser),
                (act, principal),
            )?);
        }
        data["winner"] = json!(w);
        data["losers"] = json!(losers);
        data["superseded_by"] = json!(records);
    }
    let id = format!("{}:resolved:{}", c.id(), c.resolutions.len());
    match ledger.append_own(id, RESOLVED_TYPE, act, c.tenant.as_deref(), data)? {
        Ok((seq, record_id)) => Ok(ledger
            .get(seq)?
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .unwrap_or_else(|| json!({"seq": seq, "record_id": record_id.to_string()}))),
        Err(why) => Err(CheckError::Refused(why)),
    }
}

/// Resolves a conflict by hand: `why` is the resolver's reason. A `*_wins` resolution names
/// the winner by that criterion alone, and is refused when it does not decide.
pub fn resolve(
    ledger: &Ledger,
    id: &str,
    (resolution, reason): (Resolution, &str),
    act: &Act<'_>,
    tenant: Option<&str>,
) -> Result<Value, CheckError> {
    if reason.trim().is_empty() {
        return Err(CheckError::Invalid("a resolution gives its reason".into()));
    }
    let Some(c) = find(ledger, id, tenant)? else {
        return Err(CheckError::NotFound(format!("no conflict {id}")));
    };
    if c.status() == Status::Resolved {
        return Err(CheckError::Settled(format!(
            "conflict {id} is already resolved"
        )));
    }
    let by = act.actor["id"].as_str().unwrap_or("unknown").to_string();
    let rule = match resolution {
        Resolution::Escalate | Resolution::Dismissed => None,
        _ => Some(resolving(ledger, c.rule()).ok_or_else(|| {
            CheckError::Invalid(format!(
                "rule {} declares no resolution rules: resolve conflict {id} as escalate or dismissed",
                c.rule()
            ))
        })?),
    };
    let winner = match rule.as_deref().and_then(|r| Some((r, declared(r)?))) {
        None => None,
        Some((rule, res)) => {
            let at = SubjectKey::place_of(
                c.tenant.clone(),
                c.record["data"]["scope"].as_str().unwrap_or("").to_string(),
                ledger,
                &rule.types,
            );
            let reader = Reader::new(ledger, ledger.len());
            let standings = standings(&reader, res, &at, &c.subjects())?;
            let w = winner_by(&standings, resolution).map_err(CheckError::Invalid)?;
            Some((res, w.subject.clone()))
        }
    };
    settle(
        ledger,
        &c,
        (
            resolution,
            winner.as_ref().map(|(res, w)| (*res, w.as_str())),
            false,
        ),
        reason,
        (act, ("human", &by)),
    )
}

/// Settles a newly recorded contradiction by the rule's declared resolution rules.
pub(crate) fn auto_resolve(
    ledger: &Ledger,
    resolve: &Resolve,
    f: &Finding,
    act: &Act<'_>,
) -> Result<Resolution, CheckError> {
    let Some(c) = find(ledger, &f.conflict_id, None)? else {
        return Err(CheckError::Corrupted(format!(
            "conflict {} was just recorded but cannot be read",
            f.conflict_id
        )));
    };
    let types = resolving(ledger, &f.rule).map_or_else(Vec::new, |r| r.types.clone());
    let at = SubjectKey::place_of(f.tenant.clone(), f.scope.clone(), ledger, &types);
    let reader = Reader::new(ledger, ledger.len());
    let standings = standings(&reader, resolve, &at, &f.subjects)?;
    let (resolution, winner) = automatic(&standings);
    let reason = match (resolution, winner) {
        (Resolution::AuthorityWins, Some(w)) => format!("{} has the highest authority", w.subject),
        (Resolution::RecencyWins, Some(w)) => {
            format!("equal authority; {} changed most recently", w.subject)
        }
        (Resolution::HumanWins, Some(w)) => {
            format!(
                "equal authority and time; {} was changed by a human",
                w.subject
            )
        }
        _ => "authority, recency and principal type do not decide: escalated to a person".into(),
    };
    settle(
        ledger,
        &c,
        (
            resolution,
            winner.map(|w| (resolve, w.subject.as_str())),
            true,
        ),
        &reason,
        (act, ("system", "sealog-check")),
    )?;
    Ok(resolution)
}
