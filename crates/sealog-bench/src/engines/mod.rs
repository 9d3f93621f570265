//! The engines under comparison, behind one interface. Each engine is its own module and
//! shares nothing with the others except the envelope columns the two SQL peers extract.
//!
//! *Contract*: every write method returns only once what it wrote is durable (fsync'd, or
//! the engine's equivalent of a synchronous commit), and dedupes: a record already stored
//! is not stored again and does not count as new.

use std::borrow::Cow;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::workload::Entry;

pub mod postgres;
pub mod sealog;
pub mod sqlite;

/// What a query found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hits {
    /// Records returned.
    Found(usize),
}

/// What an engine did with an attempt to change or remove a stored record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tamper {
    pub update: Attempt,
    pub delete: Attempt,
}

/// How one attempt to change or remove a stored record ended.
///
/// The first two keep the names reports written before `NotApplicable` existed used for
/// them (they were a `Result`), so `--render` still reads those reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Attempt {
    /// The engine refused the statement: its own words.
    #[serde(rename = "Ok")]
    Refused(String),
    /// It went through, or an edit went unnoticed: what happened.
    #[serde(rename = "Err")]
    Allowed(String),
    /// The engine has no such operation: what the nearest attempts came to, each of which
    /// was made and checked.
    NotApplicable(String),
}

impl Attempt {
    /// The record was not changed or removed (refused, or there is no way to do it that
    /// goes unnoticed).
    pub fn held(&self) -> bool {
        !matches!(self, Attempt::Allowed(_))
    }
}

pub trait Engine: Send + Sync {
    fn name(&self) -> &'static str;

    /// How the engine is configured (durability, ingest method), for the report.
    fn setup(&self) -> String;

    /// Engines with a choice of ingest method try each on `sample` (batches the measured
    /// run never sees) and keep the faster.
    fn tune(&mut self, _sample: &[Vec<String>]) -> anyhow::Result<()> {
        Ok(())
    }

    /// Opens whatever `writers` concurrent writers need, before they are timed.
    fn warm(&self, _writers: usize) -> anyhow::Result<()> {
        Ok(())
    }

    /// Stores a batch of events (producer bytes) in one durable commit; returns how many were
    /// new. Called from several threads at once.
    fn append_batch(&self, events: &[String]) -> anyhow::Result<u64>;

    /// Stores one event durably; `true` if it was new. Called from many threads at once.
    fn append_one(&self, event: &str) -> anyhow::Result<bool>;

    /// Stores a batch of key/value-like entries in one durable commit; returns how many
    /// were new.
    fn append_entries(&self, entries: &[Entry]) -> anyhow::Result<u64>;

    /// The identifier this engine dedupes `event` on (not timed: it is a query's input).
    fn record_id(&self, event: &str) -> anyhow::Result<Vec<u8>>;

    /// Reads the record with this id; `false` if there is none.
    fn get(&self, record_id: &[u8]) -> anyhow::Result<bool>;

    /// A subject's records in log order, at most `limit`.
    fn subject_history(&self, subject: &str, limit: usize) -> anyhow::Result<Hits>;

    /// Records whose `data.features.feature_keys_used` holds this key, in log order.
    fn by_feature_key(&self, key_type: &str, key_id: &str, limit: usize) -> anyhow::Result<Hits>;

    /// Records with event time in `[from_ns, to_ns)`, at most `limit`.
    fn time_window(&self, from_ns: i64, to_ns: i64, limit: usize) -> anyhow::Result<Hits>;

    /// Events and entries stored.
    fn counts(&self) -> anyhow::Result<(u64, u64)>;

    /// Brings the engine to the state a running deployment would be in after a bulk load
    /// (indexes flushed, statistics gathered), and returns the bytes on disk of its event
    /// store including every index.
    fn settle(&mut self) -> anyhow::Result<u64>;

    /// Tries to change, then to delete, one stored event. Called once, after everything
    /// else was measured.
    fn tamper(&mut self) -> anyhow::Result<Tamper>;

    fn close(self: Box<Self>) -> anyhow::Result<()>;
}

/// The envelope attributes the SQL peers keep in columns of their own, extracted by the
/// client the way an application writing to such a table would.
#[derive(Debug)]
pub(crate) struct Columns<'a> {
    /// SHA-256 of the producer's bytes: the dedupe key (exact-bytes idempotency, cheaper
    /// than Sealog's canonical-JSON record id).
    pub(crate) record_id: [u8; 32],
    pub(crate) event_id: Cow<'a, str>,
    pub(crate) tenant: Option<Cow<'a, str>>,
    /// The idempotency scope; like Sealog's default, the tenant (or "").
    pub(crate) scope: Cow<'a, str>,
    pub(crate) subject: Option<Cow<'a, str>>,
    pub(crate) event_type: Cow<'a, str>,
    pub(crate) source: Cow<'a, str>,
    pub(crate) actor: Option<Cow<'a, str>>,
    pub(crate) time_ns: i64,
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    source: Cow<'a, str>,
    #[serde(borrow, rename = "type")]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
    #[serde(borrow, default)]
    tenant: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    subject: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    actor: Option<Actor<'a>>,
}

#[derive(Deserialize)]
struct Actor<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
}

pub(crate) fn columns(text: &str) -> anyhow::Result<Columns<'_>> {
    let head: Head<'_> = serde_json::from_str(text)?;
    let time_ns = sealog_model::time::parse_rfc3339(&head.time).map_err(anyhow::Error::msg)?;
    Ok(Columns {
        record_id: Sha256::digest(text.as_bytes()).into(),
        scope: head.tenant.clone().unwrap_or(Cow::Borrowed("")),
        event_id: head.id,
        tenant: head.tenant,
        subject: head.subject,
        event_type: head.event_type,
        source: head.source,
        actor: head.actor.map(|a| a.id),
        time_ns,
    })
}

/// The id the SQL peers dedupe on.
pub(crate) fn peer_record_id(text: &str) -> Vec<u8> {
    Sha256::digest(text.as_bytes()).to_vec()
}

/// Bytes of every file under `dir`.
pub(crate) fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_read_reports_written_when_they_were_a_result() {
        let old: Tamper = serde_json::from_str(
            r#"{"update":{"Ok":"refused"},"delete":{"Err":"1 row(s) changed"}}"#,
        )
        .unwrap();
        assert_eq!(old.update, Attempt::Refused("refused".into()));
        assert_eq!(old.delete, Attempt::Allowed("1 row(s) changed".into()));
        assert!(old.update.held() && !old.delete.held());
        let na = Tamper {
            update: Attempt::NotApplicable("no update operation exists".into()),
            delete: Attempt::Refused("DELETE refused".into()),
        };
        let back: Tamper = serde_json::from_value(serde_json::to_value(&na).unwrap()).unwrap();
        assert_eq!(back, na);
        assert!(na.update.held());
    }

    #[test]
    fn columns_of_a_decision_event() {
        let e = crate::workload::decision_event(1, 7);
        let c = columns(&e.text).unwrap();
        assert_eq!(c.event_id, "evt_txn_000000000007");
        assert_eq!(c.subject.as_deref(), Some(e.subject.as_str()));
        assert_eq!(c.scope, c.tenant.clone().unwrap());
        assert_eq!(c.event_type, "decision-log.audit_decision_record");
        assert!(c.actor.as_deref().unwrap().starts_with("df-"));
        assert_eq!(c.time_ns, e.time_ns);
        assert_eq!(c.record_id.to_vec(), peer_record_id(&e.text));
    }
}
