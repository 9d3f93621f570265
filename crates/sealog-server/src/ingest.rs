//! Between the async handlers and the store's blocking `append`: a bounded queue and a few
//! threads that each take every request waiting, append them as one call and answer each.
//!
//! The store's writer already shares one fsync among concurrent calls; these threads keep
//! several combined calls in flight so that while one group syncs the next one gathers,
//! without one OS thread per HTTP request. A full queue is refused at once (503 with
//! `Retry-After`) instead of growing without bound.
//!
//! *Invariant*: a reply is sent only with the store's outcomes, i.e. once the events are
//! durable; closing drains everything already queued before the threads exit.

use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use sealog_model::PreparedEvent;
use sealog_store::{Outcome, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

/// Events one combined call may gather from several requests (a single request may exceed it).
const GATHER_EVENTS_MAX: usize = 8192;

type Reply = oneshot::Sender<Result<Vec<Outcome>, StoreError>>;

struct Job {
    events: Vec<PreparedEvent>,
    reply: Reply,
    queued: Instant,
}

/// Why an append could not even be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue is full: backpressure.
    Busy,
    /// The server is shutting down.
    Closed,
}

pub(crate) struct Appender {
    tx: RwLock<Option<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Appender {
    pub(crate) fn start(store: Arc<Store>, threads: usize, queue_requests_max: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>(queue_requests_max.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let handles = (0..threads.max(1))
            .map(|i| {
                let (store, rx) = (store.clone(), rx.clone());
                std::thread::Builder::new()
                    .name(format!("sealog-append-{i}"))
                    .spawn(move || run(&store, &rx))
                    .expect("spawn an append thread")
            })
            .collect();
        Appender {
            tx: RwLock::new(Some(tx)),
            threads: Mutex::new(handles),
        }
    }

    /// Queues events; the receiver yields their outcomes once durable.
    pub(crate) fn submit(
        &self,
        events: Vec<PreparedEvent>,
    ) -> Result<oneshot::Receiver<Result<Vec<Outcome>, StoreError>>, Refused> {
        let (reply, rx) = oneshot::channel();
        let guard = self.tx.read().expect("appender lock");
        let tx = guard.as_ref().ok_or(Refused::Closed)?;
        let job = Job {
            events,
            reply,
            queued: Instant::now(),
        };
        tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Refused::Busy,
            mpsc::error::TrySendError::Closed(_) => Refused::Closed,
        })?;
        Ok(rx)
    }

    /// Requests waiting for a thread.
    pub(crate) fn queued(&self) -> usize {
        self.tx
            .read()
            .expect("appender lock")
            .as_ref()
            .map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }

    /// Stops taking new events, appends everything queued, and waits for the threads.
    pub(crate) fn close(&self) {
        drop(self.tx.write().expect("appender lock").take());
        let handles = std::mem::take(&mut *self.threads.lock().expect("appender lock"));
        for h in handles {
            let _ = h.join();
        }
    }
}

fn run(store: &Store, rx: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let jobs = {
            let mut rx = rx.lock().expect("append queue lock");
            let Some(first) = rx.blocking_recv() else {
                return;
            };
            let mut events = first.events.len();
            let mut jobs = vec![first];
            while events < GATHER_EVENTS_MAX {
                match rx.try_recv() {
                    Ok(j) => {
                        events += j.events.len();
                        jobs.push(j);
                    }
                    Err(_) => break,
                }
            }
            jobs
        };
        let sizes: Vec<usize> = jobs.iter().map(|j| j.events.len()).collect();
        let total: usize = sizes.iter().sum();
        let mut all = Vec::with_capacity(total);
        let mut replies = Vec::with_capacity(jobs.len());
        for j in jobs {
            all.extend(j.events);
            replies.push((j.reply, j.queued));
        }
        metrics::histogram!("sealog_append_batch_events").record(total as f64);
        match store.append(all) {
            Ok(outcomes) => {
                let mut it = outcomes.into_iter();
                for ((reply, queued), n) in replies.into_iter().zip(sizes) {
                    let mine: Vec<Outcome> = it.by_ref().take(n).collect();
                    metrics::histogram!("sealog_append_seconds")
                        .record(queued.elapsed().as_secs_f64());
                    let _ = reply.send(Ok(mine));
                }
            }
            Err(e) => {
                let message = e.to_string();
                tracing::error!(error = %message, "append failed");
                for (reply, _) in replies {
                    let _ = reply.send(Err(StoreError::Poisoned(message.clone())));
                }
            }
        }
    }
}
