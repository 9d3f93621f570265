//! Sealog embedded: the store in-process, durable by default (every commit fdatasync'd).
//! Everything this comparison knows about Sealog's API lives in this file.

use std::path::{Path, PathBuf};

use sealog_model::{PreparedEvent, RecordId};
use sealog_store::{Config, Outcome, Query, Store};

use super::{Engine, Hits, Tamper};
use crate::workload::Entry;

pub struct Sealog {
    dir: PathBuf,
    /// `None` only while `settle` reopens it.
    events: Option<Store>,
    entries: Store,
    config: Config,
}

impl Sealog {
    /// Opens (creating) an events store and an entries store under `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let config = Config::default();
        anyhow::ensure!(
            config.durability == sealog_store::Durability::Fsync,
            "the comparison runs Sealog durable"
        );
        let events = Store::open(&dir.join("events"), config.clone())?;
        let entries = Store::open(&dir.join("entries"), config.clone())?;
        Ok(Sealog {
            dir: dir.to_path_buf(),
            events: Some(events),
            entries,
            config,
        })
    }

    fn events(&self) -> &Store {
        self.events.as_ref().expect("the events store is open")
    }
}

fn prepare(text: &str) -> anyhow::Result<PreparedEvent> {
    PreparedEvent::from_bytes(text.as_bytes()).map_err(|e| anyhow::anyhow!("refused: {e}"))
}

fn new_records(outcomes: &[Outcome]) -> u64 {
    outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Appended { .. }))
        .count() as u64
}

fn query(store: &Store, equals: Vec<(String, String)>, limit: usize) -> anyhow::Result<Hits> {
    let page = store.query(&Query {
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
            "embedded store, durability {:?} (fdatasync per group commit), every event parsed, \
             validated, canonicalized (RFC 8785), hashed, indexed on its envelope axes and added \
             to the Merkle tree",
            self.config.durability
        )
    }

    fn append_batch(&self, events: &[String]) -> anyhow::Result<u64> {
        let batch = events
            .iter()
            .map(|e| prepare(e))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(new_records(&self.events().append(batch)?))
    }

    fn append_one(&self, event: &str) -> anyhow::Result<bool> {
        Ok(new_records(&self.events().append(vec![prepare(event)?])?) == 1)
    }

    fn append_entries(&self, entries: &[Entry]) -> anyhow::Result<u64> {
        let batch = entries
            .iter()
            .map(|e| prepare(&e.text))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(new_records(&self.entries.append(batch)?))
    }

    fn record_id(&self, event: &str) -> anyhow::Result<Vec<u8>> {
        Ok(prepare(event)?.record_id.0.to_vec())
    }

    fn get(&self, record_id: &[u8]) -> anyhow::Result<bool> {
        let id = RecordId(record_id.try_into()?);
        let store = self.events();
        Ok(match store.seq_of(&id) {
            Some(seq) => store.get(seq)?.is_some(),
            None => false,
        })
    }

    /// The subject's history through the built-in `subject` axis. The decision-log "current
    /// view" (the head of each correction chain) needs the pack's supersession rules; this
    /// workload writes no corrections, so history and current view hold the same records.
    fn subject_history(&self, subject: &str, limit: usize) -> anyhow::Result<Hits> {
        query(
            self.events(),
            vec![("subject".into(), subject.into())],
            limit,
        )
    }

    /// `feature_keys_used` is a pack-declared axis and the store indexes only the envelope's
    /// axes so far: answering would mean scanning the log, which is not what this measures.
    fn by_feature_key(
        &self,
        _key_type: &str,
        _key_id: &str,
        _limit: usize,
    ) -> anyhow::Result<Hits> {
        Ok(Hits::NotIndexed("n/a (not indexed yet)"))
    }

    fn time_window(&self, from_ns: i64, to_ns: i64, limit: usize) -> anyhow::Result<Hits> {
        let page = self.events().query(&Query {
            event_from: Some(from_ns),
            event_to: Some(to_ns),
            limit,
            ..Query::default()
        })?;
        Ok(Hits::Found(page.records.len()))
    }

    fn counts(&self) -> anyhow::Result<(u64, u64)> {
        Ok((self.events().len(), self.entries.len()))
    }

    /// Closes the events store (writing its index memtable as a run, as on any shutdown)
    /// and reopens it.
    fn settle(&mut self) -> anyhow::Result<u64> {
        if let Some(store) = self.events.take() {
            store.close()?;
        }
        let dir = self.dir.join("events");
        let bytes = super::dir_bytes(&dir);
        self.events = Some(Store::open(&dir, self.config.clone())?);
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
        if let Some(store) = self.events.take() {
            store.close()?;
        }
        self.entries.close()?;
        Ok(())
    }
}
