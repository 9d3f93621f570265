//! A subject's state rebuilt from its events (event sourcing): the current view of its
//! records as of a log size, folded by the packs' state rules in the order things happened
//! (event time; a correction at its chain's start; ties by seq). Nothing is materialized, so
//! the state on either clock is exactly what the log said: `as_of_size` cuts what the log
//! knew, `valid_at` what had happened. A record whose time is earlier than a record already
//! logged for the subject arrived late; the state names it.

use std::fmt;

use serde_json::{Value, json};

use sealog_store::{LIMIT_MAX, StoreError};

use crate::facts::{ChainStart, Facts, chain_start};
use crate::privacy::{Sight, Tokens};
use crate::{Ledger, Query, View, keys, query};

/// Whose state, on which clocks, under which filters.
#[derive(Debug, Clone, Default)]
pub struct StateQuery {
    pub subject: String,
    /// Needed when the subject has records in more than one scope.
    pub scope: Option<String>,
    /// An event type whose kind of subject is meant (its pack and subject field): needed
    /// when the subject's id names resources of more than one kind (an order and a chunk).
    pub of_type: Option<String>,
    /// (axis, value) pairs every folded record must match: a caller's reach (tenant, data
    /// subject).
    pub filters: Vec<(String, String)>,
    /// What the log knew: records `0..size`.
    pub as_of_size: Option<u64>,
    /// What had happened: chains that start at or before this event time (ns).
    pub valid_at: Option<i64>,
    /// What the caller may see of personal values (the server sets it per key).
    pub sight: Sight,
}

#[derive(Debug)]
pub enum StateError {
    Store(StoreError),
    /// The subject has records in several scopes: which one is meant must be said.
    AmbiguousScope(Vec<String>),
    /// The subject's id names resources of several kinds: one type of each, sorted; which
    /// kind is meant must be said.
    AmbiguousKind(Vec<String>),
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Store(e) => e.fmt(f),
            StateError::AmbiguousScope(scopes) => write!(
                f,
                "the subject has records in {} scopes ({}); name one with scope",
                scopes.len(),
                scopes.join(", ")
            ),
            StateError::AmbiguousKind(types) => write!(
                f,
                "the subject's id names {} kinds of resource (records of {}); name one with a type of its kind",
                types.len(),
                types.join(", ")
            ),
        }
    }
}

impl std::error::Error for StateError {}

impl From<StoreError> for StateError {
    fn from(e: StoreError) -> Self {
        StateError::Store(e)
    }
}

struct Folded {
    seq: u64,
    facts: Facts,
    record: Value,
    bytes: Vec<u8>,
}

pub(crate) fn rebuild(ledger: &Ledger, sq: &StateQuery) -> Result<Value, StateError> {
    fold(ledger, sq, false)
}

/// The subject's records in the order the fold applies them, each with the state it left,
/// and the records a later one superseded (which the fold skips): what a timeline shows.
pub(crate) fn timeline(ledger: &Ledger, sq: &StateQuery) -> Result<Value, StateError> {
    fold(ledger, sq, true)
}

fn fold(ledger: &Ledger, sq: &StateQuery, steps: bool) -> Result<Value, StateError> {
    let mut sq = sq.clone();
    ledger.pseudonymise_filters(&mut sq.filters);
    let sq = &sq;
    let size = query::end_of(&*ledger.canonical, sq.as_of_size)?;
    let mut q = Query {
        equals: vec![("subject".into(), sq.subject.clone())],
        as_of_size: Some(size),
        view: View::History,
        limit: LIMIT_MAX,
        ..Query::default()
    };
    if let Some(s) = &sq.scope {
        q.equals.push(("scope".into(), s.clone()));
    }
    q.equals.extend(sq.filters.iter().cloned());
    let mut records: Vec<Folded> = Vec::new();
    let mut scopes: Vec<String> = Vec::new();
    // The kind asked for: a type no pack declares names the kind of every such type.
    let wanted = (sq.of_type.as_deref()).map(|t| ledger.packs().kind_of(t).unwrap_or(""));
    // One type of each kind met, to name them when the caller must choose.
    let mut kinds: Vec<(std::sync::Arc<str>, String)> = Vec::new();
    loop {
        let page = ledger.query(&q)?;
        for (seq, bytes) in page.records {
            let facts = Facts::of(ledger.deriver(), seq, &bytes)?;
            // Postings are hashes: re-check the subject and the caller's reach so a collision
            // cannot leak a record in.
            if facts.subject.as_deref() != Some(sq.subject.as_str()) || !within(&facts, sq) {
                continue;
            }
            let kind = facts.kind.clone().unwrap_or_else(|| "".into());
            if wanted.is_some_and(|w| w != &*kind) {
                continue;
            }
            if !kinds.iter().any(|(k, _)| *k == kind) {
                kinds.push((kind, facts.event_type.clone()));
            }
            if !scopes.contains(&facts.scope) {
                scopes.push(facts.scope.clone());
            }
            let record = serde_json::from_slice::<Value>(&bytes)
                .map_err(|e| StoreError::Corrupted(format!("record {seq}: {e}")))?;
            records.push(Folded {
                seq,
                facts,
                record,
                bytes,
            });
        }
        match page.next_after {
            Some(after) => q.after = Some(after),
            None => break,
        }
    }
    if kinds.len() > 1 {
        let mut types: Vec<String> = kinds.into_iter().map(|(_, t)| t).collect();
        types.sort();
        return Err(StateError::AmbiguousKind(types));
    }
    if scopes.len() > 1 {
        return Err(StateError::AmbiguousScope(scopes));
    }
    let late = arrived_late(&records);
    // The current view as of `size`, each head placed at its chain's start.
    let mut heads: Vec<(ChainStart, &Folded)> = Vec::new();
    let mut superseded = Vec::new();
    for r in &records {
        if let Some(by) = ledger
            .canonical
            .first_with(&keys::supersedes(&r.facts.record_id), size)?
        {
            // The correction is named only to a caller who may read it: it may be about
            // another data subject than the record it corrects.
            let named = sq.filters.is_empty()
                || match ledger.canonical.get(by) {
                    Ok(Some(bytes)) => within(&Facts::of(ledger.deriver(), by, &bytes)?, sq),
                    Ok(None) | Err(StoreError::Pruned(_)) => false,
                    Err(e) => return Err(e.into()),
                };
            superseded.push(
                json!({"seq": r.seq, "record_id": r.facts.record_id.to_string(),
                                   "superseded_by": named.then_some(by)}),
            );
            continue;
        }
        let start = chain_start(&*ledger.canonical, ledger.deriver(), r.seq, &r.facts)?;
        if sq.valid_at.is_none_or(|t| start.time_ns <= t) {
            heads.push((start, r));
        }
    }
    heads.sort_by_key(|(start, _)| *start);
    // State rules compare personal values by what they say, not by whose key sealed them.
    let mut tokens = Tokens::new();
    let folded: Vec<Value> = heads
        .iter()
        .map(|(_, r)| {
            let mut v = r.record.clone();
            let tenant = r.facts.tenant.as_deref().unwrap_or("");
            ledger.privacy.tokenize(&mut v, tenant, &mut tokens);
            v
        })
        .collect();
    let mut state = ledger.packs().fold_state(&folded);
    ledger.privacy.untokenize(&mut state, &tokens, &sq.sight);
    if steps {
        // Each prefix folded again: a subject's records are few, and the fold stays the one
        // definition of what a record does to the state.
        let steps: Vec<Value> = heads
            .iter()
            .enumerate()
            .map(|(i, (_, r))| {
                let mut after = ledger.packs().fold_state(&folded[..=i]);
                ledger.privacy.untokenize(&mut after, &tokens, &sq.sight);
                let record = ledger.reveal(&r.bytes, &sq.sight);
                let record = serde_json::from_slice::<Value>(&record).unwrap_or(Value::Null);
                json!({"seq": r.seq, "record": record,
                       "status": after.get("status"), "state": after.get("state"),
                       "anomalies": after.get("anomalies").and_then(|a| a.as_array())
                           .map_or(0, Vec::len)})
            })
            .collect();
        if let Value::Object(m) = &mut state {
            m.insert("steps".into(), Value::Array(steps));
            m.insert("superseded".into(), Value::Array(superseded));
            m.remove("history");
        }
    }
    if let Value::Object(m) = &mut state {
        m.insert("subject".into(), Value::String(sq.subject.clone()));
        let scope = sq.scope.clone().or_else(|| scopes.pop());
        m.insert("scope".into(), scope.map_or(Value::Null, Value::String));
        m.insert("as_of_size".into(), Value::from(size));
        m.insert(
            "valid_at".into(),
            sq.valid_at
                .map_or(Value::Null, |t| sealog_model::time::format_micros(t).into()),
        );
        m.insert("arrived_late".into(), Value::Array(late));
    }
    Ok(state)
}

/// Whether a record holds the tenant and data subject the query's filters name.
fn within(facts: &Facts, sq: &StateQuery) -> bool {
    sq.filters.iter().all(|(axis, value)| match axis.as_str() {
        "tenant" => facts.tenant.as_deref() == Some(value.as_str()),
        "data_subject" => facts.data_subject.as_deref() == Some(value.as_str()),
        _ => true,
    })
}

/// The records whose event time is earlier than that of a record logged before them for the
/// subject, each with the latest such record: history that was back-filled or delayed.
fn arrived_late(records: &[Folded]) -> Vec<Value> {
    let mut latest: Option<&Folded> = None;
    let mut late = Vec::new();
    for r in records {
        match latest {
            Some(l) if r.facts.time_ns < l.facts.time_ns => late.push(json!({
                "seq": r.seq,
                "record_id": r.facts.record_id.to_string(),
                "time": r.record.get("time"),
                "after": {"seq": l.seq, "time": l.record.get("time")},
            })),
            _ => latest = Some(r),
        }
    }
    late
}
