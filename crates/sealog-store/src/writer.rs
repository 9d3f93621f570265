//! The single writer: takes every request waiting in the queue, runs the admission rule on
//! each entry in order, commits the admitted ones as one group (one write, one fsync), then
//! answers each request. While it syncs, the next group gathers.

use std::fs::{File, OpenOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::contract::{Admission, Entry, Id, Key, LogView, Outcome, Outcomes, Verdict};
use crate::index::Index;
use crate::index::{self, Memtable, Run};
use crate::positions::Position;
use crate::segment::{self, ActiveSegment, SegmentFile};
use crate::tree::Tree;
use crate::zseg;
use crate::{Config, Durability, Shared, StoreError};

type Reply<A> = SyncSender<Result<Outcomes<A>, StoreError>>;

pub(crate) struct Request<A: Admission> {
    pub(crate) entries: Vec<Entry<A::Claim>>,
    /// Sign a checkpoint of everything committed once this group is: only the writer's own
    /// frontier is trusted to give the root it signs, not the tree files.
    pub(crate) sign: bool,
    /// Seal the active segment once this group is committed (if it holds a record), so
    /// retention may rewrite what it held.
    pub(crate) roll: bool,
    pub(crate) reply: Reply<A>,
}

struct Writer<A: Admission> {
    shared: Arc<Shared>,
    config: Config,
    admission: A,
    /// Where the writer says how many records are durable, for readers beside it.
    durable: File,
    active: Option<ActiveSegment>,
    next_seq: u64,
    last_ingest_ns: i64,
    frames: Vec<u8>,
    record: Vec<u8>,
    tree: Tree,
    last_checkpoint: Instant,
    flush_tx: Option<Sender<FlushJob>>,
    flushed_rx: Option<Receiver<()>>,
    /// Sealed segments to compress, by first seq (none when compression is off).
    compress_tx: Option<Sender<u64>>,
}

type FlushJob = (Arc<Memtable>, Vec<Arc<Run>>);

/// Writes frozen memtables as runs off the writer's thread. Positions and tree nodes are
/// synced before the manifest names the new runs, as the manifest vouches for them too.
fn flusher(shared: &Shared, jobs: &Receiver<FlushJob>, done: &SyncSender<()>) {
    while let Ok((frozen, runs)) = jobs.recv() {
        let t0 = Instant::now();
        let dir = shared.index.read().expect("index lock").dir().to_path_buf();
        let result = index::build_runs(&shared.io, &dir, runs, &frozen).and_then(|flushed| {
            shared.positions.sync()?;
            shared.tree.sync()?;
            let text = shared.index.write().expect("index lock").install(flushed);
            index::write_manifest(&shared.io, &dir, &text)
        });
        // Installed, the runs answer for it; emptied outside the index lock.
        if result.is_ok()
            && let Some(emptied) = Memtable::reclaim(frozen)
        {
            shared
                .index
                .write()
                .expect("index lock")
                .keep_spare(emptied);
        }
        if let Err(e) = result {
            *shared.poisoned.lock().expect("poison lock") = Some(format!("index flush: {e}"));
        }
        shared
            .counters
            .flush_ns
            .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let _ = done.try_send(());
    }
}

/// Compresses sealed segments off the writer's thread, one at a time and never while
/// retention rewrites one. A failure leaves the plain segment as it was and is reported in
/// the store's stats; only a closing store's `stop` ends a compression half way, leaving
/// nothing of it.
fn compressor(shared: &Shared, jobs: &Receiver<u64>, stop: &AtomicBool) {
    crate::priority::lower_this_thread(crate::priority::COMPRESSING);
    while let Ok(first) = jobs.recv() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        compress_one(shared, first, stop);
        shared
            .counters
            .compress_pending
            .fetch_sub(1, Ordering::Relaxed);
    }
}

fn compress_one(shared: &Shared, first: u64, stop: &AtomicBool) {
    let _one_at_a_time = shared.pruning.lock().expect("prune lock");
    let plain = {
        let segments = shared.segments.read().expect("segments lock");
        match segments
            .iter()
            .find(|(f, _)| *f == first)
            .map(|(_, s)| &**s)
        {
            Some(SegmentFile::Plain { path, .. }) => path.clone(),
            _ => return,
        }
    };
    let t0 = Instant::now();
    let counters = &shared.counters;
    let failed = |e: StoreError| {
        *counters.compress_failed.lock().expect("counters lock") = Some(e.to_string());
    };
    match zseg::compress_with(&shared.io, &plain, first, &|| stop.load(Ordering::Relaxed)) {
        Ok(None) => {}
        Ok(Some((_, z))) => {
            let mut segments = shared.segments.write().expect("segments lock");
            if let Some(entry) = segments.iter_mut().find(|(f, _)| *f == first) {
                entry.1 = Arc::new(SegmentFile::Compressed(z));
            }
            drop(segments);
            // Readers that hold the plain file keep reading it until they let it go.
            let removed = shared
                .io
                .remove_file(&plain)
                .and_then(|()| shared.io.sync_dir(plain.parent().expect("a log directory")));
            if let Err(e) = removed {
                failed(e);
            }
            counters.compressed_segments.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => failed(e),
    }
    counters
        .compress_ns
        .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
}

/// Hands a sealed segment to the compressor.
fn queue_compression(shared: &Shared, tx: &Sender<u64>, first: u64) {
    shared
        .counters
        .compress_pending
        .fetch_add(1, Ordering::Relaxed);
    if tx.send(first).is_err() {
        shared
            .counters
            .compress_pending
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// How far the active segment is zeroed ahead of its frames: to where it is sealed, when each
/// group is synced (the zeros only make those syncs cheaper).
fn zeros_until(config: &Config) -> u64 {
    match config.durability {
        Durability::Fsync => config.segment_bytes_max,
        Durability::Os => 0,
    }
}

pub(crate) fn spawn<A: Admission>(
    shared: Arc<Shared>,
    mut active: ActiveSegment,
    tree: Tree,
    config: Config,
    admission: A,
    rx: Receiver<Request<A>>,
) -> Result<JoinHandle<()>, StoreError> {
    let next_seq = shared.committed.load(Ordering::Acquire);
    let last_ingest_ns = match next_seq {
        0 => i64::MIN,
        n => shared.positions.get(n - 1)?.ingested_ns,
    };
    let path = shared.layout.durable();
    let durable = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| StoreError::io(&path, e))?;
    // Synced once here, so a log with records always has the file (verify holds it to that).
    let io = &shared.io;
    io.write_at(&durable, &path, &crate::durable::encode(next_seq), 0)?;
    io.sync_all(&durable, &path)?;
    io.sync_dir(&shared.layout.index())?;
    active.zero_up_to(zeros_until(&config));
    let mut w = Writer {
        shared,
        config,
        admission,
        durable,
        active: Some(active),
        next_seq,
        last_ingest_ns,
        frames: Vec::new(),
        record: Vec::new(),
        tree,
        last_checkpoint: Instant::now(),
        flush_tx: None,
        flushed_rx: None,
        compress_tx: None,
    };
    let (flush_tx, flush_rx) = mpsc::channel::<FlushJob>();
    let (flushed_tx, flushed_rx) = mpsc::sync_channel::<()>(1);
    w.flush_tx = Some(flush_tx);
    w.flushed_rx = Some(flushed_rx);
    let flusher_shared = w.shared.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let compressing = if w.config.compress_sealed {
        let (tx, jobs) = mpsc::channel::<u64>();
        // Sealed segments an earlier opening did not get to (the last one is being written).
        let segments = w.shared.segments.read().expect("segments lock").clone();
        for (first, seg) in &segments[..segments.len().saturating_sub(1)] {
            if matches!(**seg, SegmentFile::Plain { .. }) {
                queue_compression(&w.shared, &tx, *first);
            }
        }
        w.compress_tx = Some(tx);
        let (shared, stop) = (w.shared.clone(), stop.clone());
        Some(
            std::thread::Builder::new()
                .name("sealog-compressor".into())
                .spawn(move || compressor(&shared, &jobs, &stop))
                .map_err(|e| {
                    StoreError::Poisoned(format!("cannot start the compressor thread: {e}"))
                })?,
        )
    } else {
        None
    };
    std::thread::Builder::new()
        .name("sealog-writer".into())
        .spawn(move || {
            let flusher = std::thread::Builder::new()
                .name("sealog-flusher".into())
                .spawn(move || flusher(&flusher_shared, &flush_rx, &flushed_tx))
                .expect("cannot start the index flusher thread");
            while let Ok(first) = rx.recv() {
                let mut group = vec![first];
                let mut events = group[0].entries.len();
                while events < w.config.batch_events_max {
                    match rx.try_recv() {
                        Ok(r) => {
                            events += r.entries.len();
                            group.push(r);
                        }
                        Err(_) => break,
                    }
                }
                w.commit(group);
            }
            // A clean close signs a final checkpoint of everything committed, and leaves the
            // active segment its frames only.
            if w.poisoned().is_ok() {
                let _ = w.sign_if_grown();
                // Should this fail, the next opening cuts them.
                if let Some(active) = w.active.take() {
                    let _ = active.close();
                }
            }
            // Let the flusher finish what it holds before the store's final flush.
            drop(w.flush_tx.take());
            let _ = flusher.join();
            // A compression under way is abandoned: the next opening starts it again.
            stop.store(true, Ordering::Relaxed);
            drop(w.compress_tx.take());
            if let Some(c) = compressing {
                let _ = c.join();
            }
        })
        .map_err(|e| StoreError::Poisoned(format!("cannot start the writer thread: {e}")))
}

impl<A: Admission> Writer<A> {
    /// Signs a checkpoint of the frontier when the newest one is smaller.
    fn sign_if_grown(&mut self) -> Result<(), StoreError> {
        let size = self.tree.frontier.size();
        if self
            .shared
            .checkpoints
            .latest()
            .is_none_or(|l| l.size < size)
        {
            let root = self.tree.frontier.root();
            self.shared
                .checkpoints
                .publish(size, root)
                .map_err(|e| self.poison(e))?;
            self.last_checkpoint = Instant::now();
        }
        Ok(())
    }

    fn commit(&mut self, group: Vec<Request<A>>) {
        let sign = group.iter().any(|r| r.sign);
        let roll = group.iter().any(|r| r.roll);
        let result = self
            .poisoned()
            .and_then(|()| self.write_group(&group))
            .and_then(|verdicts| {
                if sign {
                    self.sign_if_grown()?;
                }
                if roll
                    && self
                        .active
                        .as_ref()
                        .is_some_and(|a| a.len > crate::segment::HEADER_BYTES)
                {
                    self.roll().map_err(|e| self.poison(e))?;
                }
                Ok(verdicts)
            });
        match result {
            Ok(verdicts) => {
                let mut verdicts = verdicts.into_iter();
                for r in group {
                    let outcomes = r
                        .entries
                        .into_iter()
                        .zip(verdicts.by_ref())
                        .map(|(entry, v)| match v {
                            Decided::Appended(seq) => Outcome::Appended {
                                seq,
                                id: entry.id(),
                            },
                            Decided::Duplicate(seq) => Outcome::Duplicate {
                                seq,
                                id: entry.id(),
                            },
                            Decided::Refused(refusal) => Outcome::Refused { refusal, entry },
                        })
                        .collect();
                    let _ = r.reply.send(Ok(outcomes));
                }
            }
            Err(e) => {
                // A store poisoned earlier already says why: wrapping that again would
                // repeat "stopped accepting writes" once more for every refused append.
                let message = match e {
                    StoreError::Poisoned(why) => why,
                    e => e.to_string(),
                };
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

    fn write_group(
        &mut self,
        group: &[Request<A>],
    ) -> Result<Vec<Decided<A::Refusal>>, StoreError> {
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
        let mut decided = Vec::with_capacity(group.iter().map(|r| r.entries.len()).sum());
        let mut fresh: Vec<&Entry<A::Claim>> = Vec::new();
        let mut positions = Vec::new();
        let mut spans = Vec::new();
        let mut rule_group = A::Group::default();
        self.frames.clear();
        {
            let index = self.shared.index.read().expect("index lock");
            let view = Committed {
                index: &index,
                end: self.next_seq,
            };
            for entry in group.iter().flat_map(|r| &r.entries) {
                let seq = self.next_seq + fresh.len() as u64;
                // A rule's answer rests on the index: damage found there stops writes.
                let verdict = self.admission.admit(&mut rule_group, entry, seq, &view);
                match self.shared.noted(verdict)? {
                    Verdict::Admit => {}
                    Verdict::Duplicate(seq) => {
                        decided.push(Decided::Duplicate(seq));
                        continue;
                    }
                    Verdict::Refuse(r) => {
                        decided.push(Decided::Refused(r));
                        continue;
                    }
                }
                positions.push(Position {
                    offset: base + self.frames.len() as u64,
                    ingested_ns,
                    event_ns: entry.event_ns,
                });
                self.record.clear();
                entry
                    .event
                    .write_record(seq, &ingested_at, &mut self.record);
                let start = self.frames.len() + segment::FRAME_HEADER_BYTES as usize;
                segment::encode_frame(&self.record, &mut self.frames);
                spans.push(start..self.frames.len());
                fresh.push(entry);
                decided.push(Decided::Appended(seq));
            }
        }
        if fresh.is_empty() {
            return Ok(decided);
        }
        segment::check_group(&self.frames, base, positions.iter().map(|p| p.offset))
            .and_then(|()| match self.tree.frontier.size() == self.next_seq {
                true => Ok(()),
                false => Err(format!(
                    "the tree holds {} leaves but the next seq is {}",
                    self.tree.frontier.size(),
                    self.next_seq
                )),
            })
            .map_err(|why| {
                let why = format!("a group failed its check before it was written: {why}");
                *self.shared.poisoned.lock().expect("poison lock") = Some(why.clone());
                StoreError::Poisoned(why)
            })?;
        let t_write = Instant::now();
        let written = active.write(&self.frames);
        let t_sync = Instant::now();
        let synced = written.and_then(|()| match self.config.durability {
            Durability::Fsync => active.sync(),
            Durability::Os => Ok(()),
        });
        synced.map_err(|e| self.poison(e))?;
        let t_index = Instant::now();
        let counters = &self.shared.counters;
        counters.commits.fetch_add(1, Ordering::Relaxed);
        counters
            .committed_events
            .fetch_add(fresh.len() as u64, Ordering::Relaxed);
        if self.config.durability == Durability::Fsync {
            counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        let end = self.next_seq + fresh.len() as u64;
        let durable_path = self.shared.layout.durable();
        self.shared
            .io
            .write_at(
                &self.durable,
                &durable_path,
                &crate::durable::encode(end),
                0,
            )
            .map_err(|e| self.poison(e))?;

        self.shared
            .positions
            .append(&positions)
            .map_err(|e| self.poison(e))?;
        let frames = &self.frames;
        let appended = self.tree.append(
            &self.shared.tree,
            spans
                .iter()
                .map(|r| sealog_merkle::leaf_hash(&frames[r.clone()])),
        );
        appended.map_err(|e| self.poison(e))?;
        let mut index = self.shared.index.write().expect("index lock");
        for (i, entry) in fresh.iter().enumerate() {
            // The next record's keys are fetched while this one's are inserted: each
            // posting's slot is a cache miss, and the misses then overlap.
            if let Some(next) = fresh.get(i + 1) {
                index.prefetch(&next.keys);
            }
            index.insert(
                self.next_seq + i as u64,
                &entry.id(),
                &entry.keys,
                entry.event_ns,
            );
        }
        self.next_seq = end;
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
        counters
            .frame_ns
            .fetch_add(ns(t_frame, t_write), Ordering::Relaxed);
        counters
            .write_ns
            .fetch_add(ns(t_write, t_sync), Ordering::Relaxed);
        counters
            .sync_ns
            .fetch_add(ns(t_sync, t_index), Ordering::Relaxed);
        counters
            .index_ns
            .fetch_add(ns(t_index, t_flush), Ordering::Relaxed);
        counters
            .flush_ns
            .fetch_add(ns(t_flush, Instant::now()), Ordering::Relaxed);
        Ok(decided)
    }

    /// Seals the active segment and starts the next one at `next_seq`.
    fn roll(&mut self) -> Result<(), StoreError> {
        let old = self.active.take().expect("an active segment");
        let old_first = old.first_seq;
        let dir = self.shared.layout.segments();
        old.seal()?;
        let mut new = ActiveSegment::create(&self.shared.io, &dir, self.next_seq)?;
        new.zero_up_to(zeros_until(&self.config));
        let read = SegmentFile::open_path(&new.path, self.next_seq)?;
        self.shared
            .segments
            .write()
            .expect("segments lock")
            .push((self.next_seq, Arc::new(read)));
        self.active = Some(new);
        if let Some(tx) = &self.compress_tx {
            queue_compression(&self.shared, tx, old_first);
        }
        Ok(())
    }
}

/// What the writer decided for one entry.
enum Decided<R> {
    Appended(u64),
    Duplicate(u64),
    Refused(R),
}

/// The log as committed before the group being decided, for the admission rule.
struct Committed<'a> {
    index: &'a Index,
    end: u64,
}

impl LogView for Committed<'_> {
    fn seq_of(&self, id: &Id) -> Result<Option<u64>, StoreError> {
        Ok(self.index.lookup_rid(id)?.filter(|&s| s < self.end))
    }

    fn first_with(&self, key: &Key) -> Result<Option<u64>, StoreError> {
        Ok(self.index.postings(key, 0, self.end, 1)?.first().copied())
    }

    fn has(&self, key: &Key, seq: u64) -> Result<bool, StoreError> {
        Ok(seq < self.end && self.index.contains(key, seq)?)
    }
}
