//! The single writer: takes every request waiting in the queue, commits them as one group
//! (one write, one fsync), then answers each. While it syncs, the next group gathers.

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sealog_model::{Posting, PreparedEvent, RecordId};

use crate::index::Index;
use crate::index::{self, Memtable, Run};
use crate::positions::Position;
use crate::segment::{self, ActiveSegment};
use crate::tree::Tree;
use crate::{ChainRefusal, Config, Durability, Outcome, Shared, StoreError};

pub(crate) struct Request {
    pub(crate) events: Vec<PreparedEvent>,
    pub(crate) reply: SyncSender<Result<Vec<Outcome>, StoreError>>,
}

struct Writer {
    shared: Arc<Shared>,
    config: Config,
    active: Option<ActiveSegment>,
    next_seq: u64,
    last_ingest_ns: i64,
    frames: Vec<u8>,
    record: Vec<u8>,
    tree: Tree,
    last_checkpoint: Instant,
    flush_tx: Option<Sender<FlushJob>>,
    flushed_rx: Option<Receiver<()>>,
}

type FlushJob = (Arc<Memtable>, Vec<Arc<Run>>);

/// Writes frozen memtables as runs off the writer's thread. Positions and tree nodes are
/// synced before the manifest names the new runs, as the manifest vouches for them too.
fn flusher(shared: &Shared, jobs: &Receiver<FlushJob>, done: &SyncSender<()>) {
    while let Ok((frozen, runs)) = jobs.recv() {
        let t0 = Instant::now();
        let dir = shared.index.read().expect("index lock").dir().to_path_buf();
        let result = index::build_runs(&dir, runs, &frozen).and_then(|flushed| {
            shared.positions.sync()?;
            shared.tree.sync()?;
            let text = shared.index.write().expect("index lock").install(flushed);
            index::write_manifest(&dir, &text)
        });
        if let Err(e) = result {
            *shared.poisoned.lock().expect("poison lock") = Some(format!("index flush: {e}"));
        }
        shared
            .stats
            .flush_ns
            .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let _ = done.try_send(());
    }
}

pub(crate) fn spawn(
    shared: Arc<Shared>,
    active: ActiveSegment,
    tree: Tree,
    config: Config,
    rx: Receiver<Request>,
) -> Result<JoinHandle<()>, StoreError> {
    let next_seq = shared.committed.load(Ordering::Acquire);
    let last_ingest_ns = match next_seq {
        0 => i64::MIN,
        n => shared.positions.get(n - 1)?.ingested_ns,
    };
    let mut w = Writer {
        shared,
        config,
        active: Some(active),
        next_seq,
        last_ingest_ns,
        frames: Vec::new(),
        record: Vec::new(),
        tree,
        last_checkpoint: Instant::now(),
        flush_tx: None,
        flushed_rx: None,
    };
    let (flush_tx, flush_rx) = mpsc::channel::<FlushJob>();
    let (flushed_tx, flushed_rx) = mpsc::sync_channel::<()>(1);
    w.flush_tx = Some(flush_tx);
    w.flushed_rx = Some(flushed_rx);
    let flusher_shared = w.shared.clone();
    std::thread::Builder::new()
        .name("sealog-writer".into())
        .spawn(move || {
            let flusher = std::thread::Builder::new()
                .name("sealog-flusher".into())
                .spawn(move || flusher(&flusher_shared, &flush_rx, &flushed_tx))
                .expect("cannot start the index flusher thread");
            while let Ok(first) = rx.recv() {
                let mut group = vec![first];
                let mut events = group[0].events.len();
                while events < w.config.batch_events_max {
                    match rx.try_recv() {
                        Ok(r) => {
                            events += r.events.len();
                            group.push(r);
                        }
                        Err(_) => break,
                    }
                }
                w.commit(group);
            }
            // Let the flusher finish what it holds before the store's final flush.
            drop(w.flush_tx.take());
            let _ = flusher.join();
        })
        .map_err(|e| StoreError::Poisoned(format!("cannot start the writer thread: {e}")))
}

impl Writer {
    fn commit(&mut self, group: Vec<Request>) {
        let result = self.poisoned().and_then(|()| self.write_group(&group));
        match result {
            Ok(mut outcomes) => {
                for r in group.into_iter().rev() {
                    let mine = outcomes.split_off(outcomes.len() - r.events.len());
                    let _ = r.reply.send(Ok(mine));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for r in group {
                    let _ = r.reply.send(Err(StoreError::Poisoned(message.clone())));
                }
            }
        }
    }

    fn poisoned(&self) -> Result<(), StoreError> {
        match &*self.shared.poisoned.lock().expect("poison lock") {
            Some(why) => Err(StoreError::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    /// After a failed write or fsync the file's state is unknown (a failed fsync may have
    /// dropped dirty pages), so the store refuses further writes until it is reopened and
    /// recovery has re-read what is really on disk.
    fn poison(&self, e: StoreError) -> StoreError {
        *self.shared.poisoned.lock().expect("poison lock") = Some(e.to_string());
        e
    }

    fn write_group(&mut self, group: &[Request]) -> Result<Vec<Outcome>, StoreError> {
        if self
            .active
            .as_ref()
            .is_some_and(|a| a.len >= self.config.segment_bytes_max)
        {
            self.roll().map_err(|e| self.poison(e))?;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        // Ingest time never decreases along the log, even if the clock steps back; the text
        // form has microseconds, so the number is truncated to match it.
        let ingested_ns = (now / 1000 * 1000).max(self.last_ingest_ns);
        let ingested_at = sealog_model::time::format_micros(ingested_ns);

        let t_frame = Instant::now();
        let active = self.active.as_mut().expect("an active segment");
        let base = active.len;
        let mut outcomes = Vec::with_capacity(group.iter().map(|r| r.events.len()).sum());
        let mut fresh: Vec<&PreparedEvent> = Vec::new();
        let mut positions = Vec::new();
        let mut spans = Vec::new();
        let mut chains = GroupChains::default();
        self.frames.clear();
        {
            let index = self.shared.index.read().expect("index lock");
            for ev in group.iter().flat_map(|r| &r.events) {
                let rid = ev.record_id;
                if let Some(seq) = chains.seq_of(&rid).or_else(|| index.lookup_rid(&rid.0)) {
                    outcomes.push(Outcome::Duplicate {
                        seq,
                        record_id: rid,
                    });
                    continue;
                }
                let seq = self.next_seq + fresh.len() as u64;
                if let Some(refusal) = chains.check(ev, &index, self.next_seq) {
                    outcomes.push(Outcome::Refused {
                        record_id: rid,
                        refusal,
                    });
                    continue;
                }
                chains.admit(ev, seq);
                positions.push(Position {
                    offset: base + self.frames.len() as u64,
                    ingested_ns,
                    event_ns: ev.event_time_nanos,
                });
                self.record.clear();
                ev.write_record(seq, &ingested_at, &mut self.record);
                let start = self.frames.len() + segment::FRAME_HEADER_BYTES as usize;
                segment::encode_frame(&self.record, &mut self.frames);
                spans.push(start..self.frames.len());
                fresh.push(ev);
                outcomes.push(Outcome::Appended {
                    seq,
                    record_id: rid,
                });
            }
        }
        if fresh.is_empty() {
            return Ok(outcomes);
        }
        let path = active.path.clone();
        let io = |e| StoreError::io(&path, e);
        let t_write = Instant::now();
        let written = active.write(&self.frames).map_err(io);
        let t_sync = Instant::now();
        let synced = written.and_then(|()| match self.config.durability {
            Durability::Fsync => active.sync().map_err(io),
            Durability::Os => Ok(()),
        });
        synced.map_err(|e| self.poison(e))?;
        let t_index = Instant::now();
        let stats = &self.shared.stats;
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats
            .committed_events
            .fetch_add(fresh.len() as u64, Ordering::Relaxed);
        if self.config.durability == Durability::Fsync {
            stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        }

        self.shared
            .positions
            .append(&positions)
            .map_err(|e| self.poison(e))?;
        let frames = &self.frames;
        let appended = self
            .tree
            .append(&self.shared.tree, spans.iter().map(|r| &frames[r.clone()]));
        appended.map_err(|e| self.poison(e))?;
        let mut index = self.shared.index.write().expect("index lock");
        for (i, ev) in fresh.iter().enumerate() {
            index.insert(self.next_seq + i as u64, ev);
        }
        self.next_seq += fresh.len() as u64;
        self.last_ingest_ns = ingested_ns;
        self.shared
            .committed
            .store(self.next_seq, Ordering::Release);
        let t_flush = Instant::now();
        if index.needs_flush() {
            // Only if the flusher is a whole memtable behind does the writer wait for it.
            while index.has_frozen() {
                drop(index);
                self.poisoned()?;
                let _ = self
                    .flushed_rx
                    .as_ref()
                    .expect("flusher channel")
                    .recv_timeout(Duration::from_millis(50));
                index = self.shared.index.write().expect("index lock");
            }
            if let Some(job) = index.freeze() {
                let sent = self.flush_tx.as_ref().expect("flusher channel").send(job);
                sent.map_err(|_| {
                    self.poison(StoreError::Poisoned("the index flusher stopped".into()))
                })?;
            }
        }
        drop(index);
        if self.last_checkpoint.elapsed() >= self.config.checkpoint_interval {
            let (size, root) = (self.tree.frontier.size(), self.tree.frontier.root());
            self.shared
                .checkpoints
                .publish(size, root)
                .map_err(|e| self.poison(e))?;
            self.last_checkpoint = Instant::now();
        }
        let ns = |a: Instant, b: Instant| (b - a).as_nanos() as u64;
        stats
            .frame_ns
            .fetch_add(ns(t_frame, t_write), Ordering::Relaxed);
        stats
            .write_ns
            .fetch_add(ns(t_write, t_sync), Ordering::Relaxed);
        stats
            .sync_ns
            .fetch_add(ns(t_sync, t_index), Ordering::Relaxed);
        stats
            .index_ns
            .fetch_add(ns(t_index, t_flush), Ordering::Relaxed);
        stats
            .flush_ns
            .fetch_add(ns(t_flush, Instant::now()), Ordering::Relaxed);
        Ok(outcomes)
    }

    /// Seals the active segment and starts the next one at `next_seq`.
    fn roll(&mut self) -> Result<(), StoreError> {
        let old = self.active.take().expect("an active segment");
        let dir = self.shared.log_dir.clone();
        old.seal()?;
        let new = ActiveSegment::create(&dir, self.next_seq)?;
        let read = File::open(&new.path).map_err(|e| StoreError::io(&new.path, e))?;
        self.shared
            .segments
            .write()
            .expect("segments lock")
            .push((self.next_seq, Arc::new(read)));
        self.active = Some(new);
        Ok(())
    }
}

/// The records a group has admitted so far, for dedupe and for the supersedes rules, decided
/// here on the writer's thread so that racing corrections and duplicates of a subject see one
/// order: exactly one of them wins. Records admitted earlier in the same group count as if
/// already in the log.
#[derive(Default)]
struct GroupChains {
    /// Admitted this group: record id → (seq, chain).
    records: HashMap<[u8; 32], (u64, Option<Posting>)>,
    /// Targets superseded this group → the superseding seq.
    superseded: HashMap<[u8; 32], u64>,
    /// Chains that gained their first record this group → that seq.
    started: HashMap<Posting, u64>,
}

impl GroupChains {
    fn seq_of(&self, rid: &RecordId) -> Option<u64> {
        self.records.get(&rid.0).map(|&(seq, _)| seq)
    }

    fn check(&self, ev: &PreparedEvent, index: &Index, end: u64) -> Option<ChainRefusal> {
        match ev.supersedes {
            Some(target) => self.check_link(ev, &target, index, end),
            None if ev.unique_per_subject => {
                let chain = ev.chain?;
                let existing = self
                    .started
                    .get(&chain)
                    .copied()
                    .or_else(|| index.postings(&chain, 0, end, 1).first().copied())?;
                Some(ChainRefusal::MissingLink { existing })
            }
            None => None,
        }
    }

    fn check_link(
        &self,
        ev: &PreparedEvent,
        target: &RecordId,
        index: &Index,
        end: u64,
    ) -> Option<ChainRefusal> {
        let invalid = |why| Some(ChainRefusal::InvalidLink { why });
        let in_group = self.records.get(&target.0).copied();
        let Some(seq) = in_group
            .map(|(seq, _)| seq)
            .or_else(|| index.lookup_rid(&target.0).filter(|&s| s < end))
        else {
            return invalid("the superseded record does not exist in the log");
        };
        let Some(chain) = ev.chain else {
            return invalid("a correction must have a subject");
        };
        let same_chain = match in_group {
            Some((_, target_chain)) => target_chain == Some(chain),
            None => index.contains(&chain, seq),
        };
        if !same_chain {
            return invalid("the superseded record belongs to another tenant, scope or subject");
        }
        let by = self.superseded.get(&target.0).copied().or_else(|| {
            let key = sealog_model::record::supersedes_posting(target);
            index.postings(&key, 0, end, 1).first().copied()
        });
        by.map(|by| ChainRefusal::StaleLink { by })
    }

    fn admit(&mut self, ev: &PreparedEvent, seq: u64) {
        self.records.insert(ev.record_id.0, (seq, ev.chain));
        if let Some(target) = ev.supersedes {
            self.superseded.insert(target.0, seq);
        }
        if let Some(chain) = ev.chain {
            self.started.entry(chain).or_insert(seq);
        }
    }
}
