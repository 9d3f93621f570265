//! Sealog embedded, in-process and durable (every commit fdatasync'd). Events go through the
//! ledger as in production: the decision-log pack validates, normalizes and indexes them
//! (its axes included), dedupe and the supersedes rules apply. The 100-byte entries have no
//! pack; they go to a second ledger that accepts undeclared types after envelope checks
//! alone, like immudb's key/value entries. Everything this comparison knows about Sealog's
//! API lives in this file.

use std::path::{Path, PathBuf};

use sealog_ledger::{
    Author, IngestResult, Ledger, LedgerConfig, Query, StoreConfig as Config, Undeclared, View,
};
use sealog_model::RecordId;

use super::{Engine, Hits, Tamper};
use crate::workload::Entry;

pub struct Sealog {
    dir: PathBuf,
    /// `None` only while `settle` reopens it.
    events: Option<Ledger>,
    entries: Ledger,
    config: Config,
}

impl Sealog {
    /// Opens (creating) an events store and an entries store under `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let config = Config::default();
        anyhow::ensure!(
            config.durability == sealog_ledger::Durability::Fsync,
            "the comparison runs Sealog durable"
        );
        let events = open_ledger(&dir.join("events"), &config, Undeclared::Quarantine)?;
        let entries = open_ledger(&dir.join("entries"), &config, Undeclared::Accept)?;
        Ok(Sealog {
            dir: dir.to_path_buf(),
            events: Some(events),
            entries,
            config,
        })
    }

    fn ledger(&self) -> &Ledger {
        self.events.as_ref().expect("the events ledger is open")
    }
}

fn open_ledger(dir: &Path, config: &Config, undeclared: Undeclared) -> anyhow::Result<Ledger> {
    Ok(Ledger::open(
        dir,
        LedgerConfig {
            store: config.clone(),
            packs: sealog_ledger::Packs::builtin(),
            undeclared,
        },
    )?)
}

/// Appends through the ledger; the workload's events are all valid, so anything not
/// appended or a duplicate is a failure of the benchmark, not a figure.
fn ingest(ledger: &Ledger, events: &[String]) -> anyhow::Result<u64> {
    let prepared = events
        .iter()
        .map(|e| ledger.prepare(e.as_bytes(), &Author::ANYONE))
        .collect();
    let mut appended = 0;
    for r in ledger.commit(prepared)? {
        match r {
            IngestResult::Appended { .. } => appended += 1,
            IngestResult::Duplicate { .. } => {}
            other => anyhow::bail!("a workload event was not accepted: {}", other.to_json()),
        }
    }
    Ok(appended)
}

fn query(ledger: &Ledger, equals: Vec<(String, String)>, limit: usize) -> anyhow::Result<Hits> {
    let page = ledger.query(&Query {
        equals,
        limit,
        ..Query::default()
    })?;
    Ok(Hits::Found(page.records.len()))
}

impl Engine for Sealog {
    fn name(&self) -> &'static str {
        "sealog"
    }

    fn setup(&self) -> String {
        format!(
            "embedded ledger, durability {:?} (fdatasync per group commit); every event parsed, \
             checked by the decision-log pack (completeness, forbidden fields, JSON Schema), \
             normalized, canonicalized (RFC 8785), hashed, deduplicated, indexed on its envelope \
             and pack axes (feature_keys_used among them) and added to the Merkle tree; the \
             100-byte entries go to a second ledger as an undeclared type (envelope checks, no pack)",
            self.config.durability
        )
    }

    fn append_batch(&self, events: &[String]) -> anyhow::Result<u64> {
        ingest(self.ledger(), events)
    }

    fn append_one(&self, event: &str) -> anyhow::Result<bool> {
        Ok(ingest(self.ledger(), std::slice::from_ref(&event.to_string()))? == 1)
    }

    fn append_entries(&self, entries: &[Entry]) -> anyhow::Result<u64> {
        let texts: Vec<String> = entries.iter().map(|e| e.text.clone()).collect();
        ingest(&self.entries, &texts)
    }

    fn record_id(&self, event: &str) -> anyhow::Result<Vec<u8>> {
        match self.ledger().prepare(event.as_bytes(), &Author::ANYONE) {
            sealog_ledger::Prepared::Event(ev) => Ok(ev.id().to_vec()),
            _ => anyhow::bail!("a workload event does not pass its pack"),
        }
    }

    fn get(&self, record_id: &[u8]) -> anyhow::Result<bool> {
        let id = RecordId(record_id.try_into()?);
        let ledger = self.ledger();
        Ok(match ledger.seq_of(&id)? {
            Some(seq) => ledger.get(seq)?.is_some(),
            None => false,
        })
    }

    /// The decision's current view: the head of its supersedes chain (the workload writes no
    /// corrections, so it is the one record).
    fn subject_history(&self, subject: &str, limit: usize) -> anyhow::Result<Hits> {
        let q = Query {
            equals: vec![("subject".into(), subject.into())],
            view: View::Current,
            limit,
            ..Query::default()
        };
        Ok(Hits::Found(self.ledger().query(&q)?.records.len()))
    }

    /// The decision-log pack's `feature_keys_used` axis (`key_type:key_id`).
    fn by_feature_key(&self, key_type: &str, key_id: &str, limit: usize) -> anyhow::Result<Hits> {
        query(
            self.ledger(),
            vec![("feature_keys_used".into(), format!("{key_type}:{key_id}"))],
            limit,
        )
    }

    fn time_window(&self, from_ns: i64, to_ns: i64, limit: usize) -> anyhow::Result<Hits> {
        let page = self.ledger().query(&Query {
            event_from: Some(from_ns),
            event_to: Some(to_ns),
            limit,
            ..Query::default()
        })?;
        Ok(Hits::Found(page.records.len()))
    }

    fn counts(&self) -> anyhow::Result<(u64, u64)> {
        Ok((self.ledger().len(), self.entries.len()))
    }

    /// Closes the events ledger (writing its index memtables as runs, as on any shutdown)
    /// and reopens it.
    fn settle(&mut self) -> anyhow::Result<u64> {
        if let Some(ledger) = self.events.take() {
            ledger.close()?;
        }
        let dir = self.dir.join("events");
        let bytes = super::dir_bytes(&dir);
        self.events = Some(open_ledger(&dir, &self.config, Undeclared::Quarantine)?);
        Ok(bytes)
    }

    fn tamper(&self) -> anyhow::Result<Tamper> {
        let why = "no update or delete operation exists; committed frames are never rewritten"
            .to_string();
        Ok(Tamper {
            update: Ok(why.clone()),
            delete: Ok(why),
        })
    }

    fn close(mut self: Box<Self>) -> anyhow::Result<()> {
        if let Some(ledger) = self.events.take() {
            ledger.close()?;
        }
        self.entries.close()?;
        Ok(())
    }
}
