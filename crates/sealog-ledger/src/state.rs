//! A subject's state rebuilt from its events (event sourcing): the current view of its
//! records as of a log size, folded by the packs' state rules. Nothing is materialized, so
//! the state at any past size is exactly what the log said then.

use std::fmt;

use serde_json::Value;

use sealog_model::Envelope;
use sealog_model::json::Json;
use sealog_store::{LIMIT_MAX, StoreError};

use crate::{Ledger, Query, View};

#[derive(Debug)]
pub enum StateError {
    Store(StoreError),
    /// The subject has records in several scopes: which one is meant must be said.
    AmbiguousScope(Vec<String>),
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
        }
    }
}

impl std::error::Error for StateError {}

impl From<StoreError> for StateError {
    fn from(e: StoreError) -> Self {
        StateError::Store(e)
    }
}

pub(crate) fn rebuild(
    ledger: &Ledger,
    subject: &str,
    scope: Option<&str>,
    tenant: Option<&str>,
    as_of_size: Option<u64>,
) -> Result<Value, StateError> {
    let size = as_of_size.map_or(ledger.len(), |s| s.min(ledger.len()));
    let mut q = Query {
        equals: vec![("subject".into(), subject.into())],
        as_of_size: Some(size),
        view: View::Current,
        limit: LIMIT_MAX,
        ..Query::default()
    };
    if let Some(s) = scope {
        q.equals.push(("scope".into(), s.into()));
    }
    if let Some(t) = tenant {
        q.equals.push(("tenant".into(), t.into()));
    }
    let mut records = Vec::new();
    let mut scopes: Vec<String> = Vec::new();
    loop {
        let page = ledger.query(&q)?;
        for (seq, bytes) in &page.records {
            let json = Json::parse(bytes)
                .map_err(|e| StoreError::Corrupted(format!("record {seq}: {e}")))?;
            let env = Envelope::parse_object(&json, false)
                .map_err(|e| StoreError::Corrupted(format!("record {seq}: {e}")))?;
            // Postings are hashes: re-check the subject so a collision cannot leak in.
            let derived = ledger.packs().derive(&json, &env);
            if env.subject.or(derived.subject.as_deref()) != Some(subject) {
                continue;
            }
            let record_scope = derived
                .scope
                .unwrap_or_else(|| env.default_scope().to_string());
            if !scopes.contains(&record_scope) {
                scopes.push(record_scope);
            }
            records.push(
                serde_json::from_slice::<Value>(bytes)
                    .map_err(|e| StoreError::Corrupted(format!("record {seq}: {e}")))?,
            );
        }
        match page.next_after {
            Some(after) => q.after = Some(after),
            None => break,
        }
    }
    if scopes.len() > 1 {
        return Err(StateError::AmbiguousScope(scopes));
    }
    let mut state = ledger.packs().fold_state(&records);
    if let Value::Object(m) = &mut state {
        m.insert("subject".into(), Value::String(subject.into()));
        let scope = scope.map(str::to_string).or_else(|| scopes.pop());
        m.insert("scope".into(), scope.map_or(Value::Null, Value::String));
        m.insert("as_of_size".into(), Value::from(size));
    }
    Ok(state)
}
