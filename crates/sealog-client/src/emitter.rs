//! The emitter: `emit` only enqueues; a background thread batches, sends, retries once and
//! spools; `emit_durable` waits for the server.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::durable::{Durable, Slot};
use crate::spool::{Spool, SpoolSync};
use crate::{Error, http};

/// How an emitter behaves. [`Config::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct Config {
    /// The server, `http://host:port`.
    pub url: String,
    /// An API key with the writer role.
    pub key: Option<String>,
    /// The dead-letter spool's directory (one emitter at a time).
    pub spool_dir: PathBuf,
    /// `false` is replay mode: `emit` and `emit_durable` do nothing but count.
    pub emit_traces: bool,
    /// Events held in memory before `emit` writes to the spool instead.
    pub queue_capacity: usize,
    /// A request carries at most this many events...
    pub batch_max_events: usize,
    /// ... and about this many bytes.
    pub batch_max_bytes: usize,
    /// How long the sender waits for more events before sending a batch that is not full.
    pub linger: Duration,
    /// The pause before the one retry of a failed request.
    pub retry_delay: Duration,
    /// How long one request may take.
    pub request_timeout: Duration,
    /// The longest pause between attempts to replay the spool while the server is away.
    pub backoff_max: Duration,
    /// The spool's size limit; events beyond it are dropped and counted (`dropped`).
    pub spool_cap_bytes: u64,
    /// When spool writes reach the disk.
    pub spool_sync: SpoolSync,
}

impl Config {
    pub fn new(url: &str, key: Option<&str>, spool_dir: impl Into<PathBuf>) -> Self {
        Config {
            url: url.to_string(),
            key: key.map(str::to_string),
            spool_dir: spool_dir.into(),
            emit_traces: true,
            queue_capacity: 10_000,
            batch_max_events: 1_000,
            batch_max_bytes: 4 << 20,
            linger: Duration::from_millis(5),
            retry_delay: Duration::from_millis(100),
            request_timeout: Duration::from_secs(10),
            backoff_max: Duration::from_secs(5),
            spool_cap_bytes: 1 << 30,
            spool_sync: SpoolSync::EveryWrite,
        }
    }
}

/// One event, as the JSON bytes that will be sent.
pub struct Event(pub(crate) Vec<u8>);

impl From<Vec<u8>> for Event {
    /// JSON text. A raw newline can only be whitespace in JSON, so it becomes a space: the
    /// event travels as one NDJSON line and means the same.
    fn from(mut bytes: Vec<u8>) -> Self {
        for b in bytes.iter_mut() {
            if *b == b'\n' || *b == b'\r' {
                *b = b' ';
            }
        }
        Event(bytes)
    }
}

impl From<String> for Event {
    fn from(s: String) -> Self {
        Event::from(s.into_bytes())
    }
}

impl From<&str> for Event {
    fn from(s: &str) -> Self {
        Event::from(s.as_bytes().to_vec())
    }
}

impl From<&serde_json::Value> for Event {
    fn from(v: &serde_json::Value) -> Self {
        Event(serde_json::to_vec(v).expect("a JSON value serializes"))
    }
}

impl From<serde_json::Value> for Event {
    fn from(v: serde_json::Value) -> Self {
        Event::from(&v)
    }
}

/// What the server did with an event it acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ack {
    Appended {
        seq: u64,
        record_id: String,
    },
    Duplicate {
        seq: u64,
        record_id: String,
    },
    /// Durable, but as a quarantine record: the event did not become canonical.
    Quarantined {
        quarantine_id: String,
        reason_code: String,
    },
    /// Replay mode (`emit_traces = false`): nothing was sent.
    Skipped,
}

impl Ack {
    /// Reads one entry of the server's `results`.
    pub(crate) fn from_result(r: &serde_json::Value) -> Result<Ack, Error> {
        let malformed = || Error::Protocol(format!("a malformed result: {r}"));
        let s = |k: &str| r[k].as_str().map(str::to_string).ok_or_else(malformed);
        match r["status"].as_str() {
            Some(status @ ("appended" | "duplicate")) => {
                let seq = r["seq"].as_u64().ok_or_else(malformed)?;
                let record_id = s("record_id")?;
                Ok(if status == "appended" {
                    Ack::Appended { seq, record_id }
                } else {
                    Ack::Duplicate { seq, record_id }
                })
            }
            Some("quarantined") => Ok(Ack::Quarantined {
                quarantine_id: s("quarantine_id")?,
                reason_code: s("reason_code")?,
            }),
            Some("rejected") => {
                let e = &r["error"];
                match (e["code"].as_str(), e["message"].as_str()) {
                    (Some(code), Some(message)) => Err(Error::Rejected {
                        code: code.to_string(),
                        message: message.to_string(),
                    }),
                    _ => Err(malformed()),
                }
            }
            _ => Err(Error::Protocol(format!("an unknown result: {r}"))),
        }
    }

    /// Whether `r` is one of the results the API promises, whatever it says of its event:
    /// an answer with any other is no answer, and its events are sent again or spooled.
    pub(crate) fn well_formed(r: &serde_json::Value) -> bool {
        !matches!(Ack::from_result(r), Err(Error::Protocol(_)))
    }
}

/// The emitter's counters since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// `emit` and `emit_durable` calls that took an event (not skipped).
    pub emitted: u64,
    /// Events put in requests, every attempt counted.
    pub sent: u64,
    /// Events the server answered for durably (appended, duplicate or quarantined).
    pub acknowledged: u64,
    pub appended: u64,
    pub duplicates: u64,
    pub quarantined: u64,
    /// Events the server refused outright (not events, over its size limit, outside the
    /// key's tenant): answered, logged, and not retried, since no retry would change it.
    pub rejected: u64,
    /// Events sent a second time after a failed request.
    pub retried: u64,
    /// Events written to the spool.
    pub spooled: u64,
    /// Spooled events sent again and answered.
    pub replayed: u64,
    /// Calls made in replay mode (`emit_traces = false`).
    pub skipped: u64,
    /// Events lost because the spool was at its size cap (0 unless it was).
    pub dropped: u64,
    /// `emit_durable` calls answered with an error.
    pub durable_failed: u64,
    /// Requests made, and those that failed (no answer, 408, 429, 5xx, or a refused key).
    pub requests: u64,
    pub failures: u64,
    /// Damaged spool regions skipped (each reported once).
    pub spool_damaged: u64,
    /// Events waiting in the spool.
    pub spool_pending: u64,
}

impl Stats {
    /// Failed requests over all requests (0 before the first).
    pub fn failure_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.failures as f64 / self.requests as f64
        }
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) emitted: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) acknowledged: AtomicU64,
    pub(crate) appended: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) quarantined: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) spooled: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) skipped: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) durable_failed: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) spool_damaged: AtomicU64,
    pub(crate) spool_pending: AtomicU64,
}

pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// One queued event.
pub(crate) struct Item {
    pub(crate) n: u64,
    pub(crate) bytes: Vec<u8>,
    pub(crate) durable: Option<Arc<Slot>>,
}

#[derive(Default)]
pub(crate) struct Queue {
    pub(crate) items: VecDeque<Item>,
    pub(crate) next_n: u64,
    /// Callers waiting in `flush`: the sender sends without lingering.
    pub(crate) flushing: usize,
    /// `close` was called: the sender spools what is left and stops.
    pub(crate) closing: bool,
    /// The emitter gave up waiting for the sender: it must not touch the spool again.
    pub(crate) abandoned: bool,
    /// The events of the request in flight (shared with the sender, spooled by `close` if
    /// the sender is stuck in the network).
    pub(crate) inflight: Vec<Arc<Vec<Item>>>,
    /// Every event numbered below this has been answered.
    pub(crate) settled_below: u64,
}

pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) client: http::Client,
    pub(crate) queue: Mutex<Queue>,
    /// Wakes the sender.
    pub(crate) work: Condvar,
    /// Wakes `flush` and `close`.
    pub(crate) progress: Condvar,
    pub(crate) spool: Mutex<Spool>,
    pub(crate) counters: Counters,
}

impl Shared {
    /// Writes events to the spool, counting what was written and what the cap dropped.
    pub(crate) fn spool_items(&self, items: &[(u64, &[u8])]) {
        if items.is_empty() {
            return;
        }
        let mut spool = self.spool.lock().unwrap();
        match spool.append(items) {
            Ok(written) => {
                add(&self.counters.spooled, written as u64);
                add(&self.counters.spool_pending, written as u64);
                let lost = (items.len() - written) as u64;
                if lost > 0 {
                    add(&self.counters.dropped, lost);
                    tracing::error!(
                        lost,
                        cap = self.config.spool_cap_bytes,
                        spool = %self.config.spool_dir.display(),
                        "the audit spool is full: events dropped"
                    );
                }
            }
            Err(e) => {
                add(&self.counters.dropped, items.len() as u64);
                tracing::error!(
                    lost = items.len(),
                    spool = %self.config.spool_dir.display(),
                    error = %e,
                    "the audit spool could not be written: events dropped"
                );
            }
        }
    }
}

/// Emits events to a Sealog server without ever blocking or failing its caller.
///
/// `emit` puts the event in a bounded queue (or, when the queue is full, in the spool) and
/// returns. A background thread sends batches; a failed request (no answer, 408, 429, 5xx,
/// a refused key) is retried once after `retry_delay`, then its events go to the spool,
/// which is replayed in emission order, before any newer event, once the server answers
/// again. Ingest is idempotent, so an event sent twice is answered `duplicate`.
pub struct Emitter {
    shared: Arc<Shared>,
    sender: Mutex<Option<JoinHandle<()>>>,
}

impl Emitter {
    /// Opens the spool (replaying what a previous emitter left in it) and starts the sender.
    pub fn new(config: Config) -> Result<Self, Error> {
        let client = http::Client::new(
            &config.url,
            config.key.as_deref(),
            Some(config.request_timeout),
        )?;
        let opened = Spool::open(&config.spool_dir, config.spool_cap_bytes, config.spool_sync)
            .map_err(|e| Error::Config(format!("spool {}: {e}", config.spool_dir.display())))?;
        let counters = Counters::default();
        add(&counters.spool_pending, opened.pending);
        add(&counters.spool_damaged, opened.spool.damage_found);
        let mut spool = opened.spool;
        spool.damage_found = 0;
        if opened.pending > 0 {
            tracing::info!(pending = opened.pending, spool = %config.spool_dir.display(), "replaying the audit spool");
        }
        let shared = Arc::new(Shared {
            client,
            queue: Mutex::new(Queue {
                next_n: opened.next_n,
                ..Queue::default()
            }),
            work: Condvar::new(),
            progress: Condvar::new(),
            spool: Mutex::new(spool),
            counters,
            config,
        });
        let s = shared.clone();
        let sender = std::thread::Builder::new()
            .name("sealog-emitter".into())
            .spawn(move || crate::sender::run(&s))
            .map_err(|e| Error::Config(format!("starting the sender thread: {e}")))?;
        Ok(Emitter {
            shared,
            sender: Mutex::new(Some(sender)),
        })
    }

    /// Hands an event to the sender and returns at once; never fails. In replay mode it
    /// only counts the call.
    pub fn emit(&self, event: impl Into<Event>) {
        let c = &self.shared.counters;
        if !self.shared.config.emit_traces {
            add(&c.skipped, 1);
            return;
        }
        let Event(bytes) = event.into();
        add(&c.emitted, 1);
        let mut q = self.shared.queue.lock().unwrap();
        let n = q.next_n;
        q.next_n += 1;
        if q.items.len() < self.shared.config.queue_capacity && !q.closing {
            let wake = q.items.is_empty()
                || (q.items.len() + 1).is_multiple_of(self.shared.config.batch_max_events.max(1));
            q.items.push_back(Item {
                n,
                bytes,
                durable: None,
            });
            drop(q);
            if wake {
                self.shared.work.notify_one();
            }
            return;
        }
        // The queue is full (the sender is behind, or waiting on the server), or closed:
        // the spool keeps the event, under the queue's lock so spooled events stay in order.
        self.shared.spool_items(&[(n, &bytes)]);
        drop(q);
        self.shared.work.notify_one();
    }

    /// The fail-closed path: resolves to the server's durable answer for this event, or to
    /// an error (nothing was appended that the caller may count on; the event is not
    /// spooled). It is sent in emission order, after everything emitted before it.
    pub fn emit_durable(&self, event: impl Into<Event>) -> Durable {
        let c = &self.shared.counters;
        if !self.shared.config.emit_traces {
            add(&c.skipped, 1);
            return Durable::ready(Ok(Ack::Skipped));
        }
        let Event(bytes) = event.into();
        add(&c.emitted, 1);
        let slot = Arc::new(Slot::default());
        let mut q = self.shared.queue.lock().unwrap();
        if q.closing {
            add(&c.durable_failed, 1);
            return Durable::ready(Err(Error::Closed));
        }
        let n = q.next_n;
        q.next_n += 1;
        // Past the queue's capacity if need be: the caller waits for this one anyway.
        q.items.push_back(Item {
            n,
            bytes,
            durable: Some(slot.clone()),
        });
        drop(q);
        self.shared.work.notify_one();
        Durable { slot }
    }

    /// Waits until every event emitted before this call has been answered by the server
    /// (true), or `timeout` passes (false: the rest stays queued or spooled).
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut q = self.shared.queue.lock().unwrap();
        let target = q.next_n;
        q.flushing += 1;
        self.shared.work.notify_one();
        let done = loop {
            if q.settled_below >= target {
                break true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break false;
            }
            q = self.shared.progress.wait_timeout(q, left).unwrap().0;
        };
        q.flushing -= 1;
        done
    }

    /// Flushes for up to `timeout`, then stops the sender: whatever is still unanswered is
    /// left in the spool for the next emitter on this directory. Returns the final counters.
    pub fn close(&self, timeout: Duration) -> Stats {
        let deadline = Instant::now() + timeout;
        self.flush(timeout);
        self.shutdown(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(200)),
        );
        self.stats()
    }

    fn shutdown(&self, grace: Duration) {
        let Some(handle) = self.sender.lock().unwrap().take() else {
            return;
        };
        self.shared.queue.lock().unwrap().closing = true;
        self.shared.work.notify_all();
        let deadline = Instant::now() + grace;
        let mut q = self.shared.queue.lock().unwrap();
        while !handle.is_finished() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                // The sender is stuck in a request: spool its events (a duplicate, if the
                // request does land, is harmless) and leave it behind.
                q.abandoned = true;
                let inflight = std::mem::take(&mut q.inflight);
                let rest: Vec<Item> = q.items.drain(..).collect();
                let mut keep: Vec<(u64, &[u8])> = inflight
                    .iter()
                    .flat_map(|b| b.iter())
                    .chain(&rest)
                    .filter(|i| i.durable.is_none())
                    .map(|i| (i.n, i.bytes.as_slice()))
                    .collect();
                keep.sort_by_key(|(n, _)| *n);
                self.shared.spool_items(&keep);
                crate::sender::fail_durables(&self.shared, &rest, || Error::Closed);
                tracing::warn!("the audit sender did not stop in time: its events were spooled");
                return;
            }
            q = self
                .shared
                .progress
                .wait_timeout(q, left.min(Duration::from_millis(50)))
                .unwrap()
                .0;
        }
        drop(q);
        let _ = handle.join();
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            emitted: g(&c.emitted),
            sent: g(&c.sent),
            acknowledged: g(&c.acknowledged),
            appended: g(&c.appended),
            duplicates: g(&c.duplicates),
            quarantined: g(&c.quarantined),
            rejected: g(&c.rejected),
            retried: g(&c.retried),
            spooled: g(&c.spooled),
            replayed: g(&c.replayed),
            skipped: g(&c.skipped),
            dropped: g(&c.dropped),
            durable_failed: g(&c.durable_failed),
            requests: g(&c.requests),
            failures: g(&c.failures),
            spool_damaged: g(&c.spool_damaged),
            spool_pending: g(&c.spool_pending),
        }
    }
}

impl Drop for Emitter {
    /// Stops without flushing: what is unsent goes to the spool. Call
    /// [`close`](Emitter::close) first to give it time to reach the server.
    ///
    /// The spool directory is free for a new emitter once this returns, even when the sender
    /// was left behind in a request that has not answered yet.
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(1));
        self.shared.spool.lock().unwrap().release();
    }
}
