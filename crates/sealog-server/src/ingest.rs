//! Between the async handlers and the ledger's blocking `commit`: a bounded queue and a few
//! threads that each take every request waiting, commit them as one call and answer each.
//!
//! Clients' events and the server's own records (`audit.*`) alike are committed through the
//! ledger (dedupe, supersedes rules, quarantine). A request's events may arrive prepared, or
//! raw with the work of preparing them: a thread then prepares every raw request it took back
//! to back before the one commit. One at a time on the async workers, between their network
//! calls, the same preparation ran about half as fast, its code and tables gone from the
//! caches each time; and what is prepared together reaches the writer together, so more
//! events share each fsync. The store's writer already shares one fsync among concurrent
//! calls; these threads keep several combined calls in flight so that while one group syncs
//! the next one gathers, without one OS thread per HTTP request.
//! A full queue is refused at once (503 with `Retry-After`) instead of growing without bound.
//!
//! *Invariant*: a reply is sent only with the ledger's results, i.e. once what they report
//! is durable (a request whose preparing panicked gets none: nothing of it was committed);
//! closing drains everything already queued before the threads exit.

use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use sealog_ledger::{Error, IngestResult, Ledger, Prepared};
use tokio::sync::{mpsc, oneshot};

/// Events one combined call may gather from several requests (a single request may exceed it).
const GATHER_EVENTS_MAX: usize = 8192;

type Reply = oneshot::Sender<Result<Vec<IngestResult>, Error>>;

/// A request's events: prepared, or to be prepared on the thread that commits them.
pub(crate) enum Work {
    Prepared(Vec<Prepared>),
    Raw {
        /// How many events preparing gives.
        events: usize,
        prepare: Box<dyn FnOnce() -> Vec<Prepared> + Send>,
    },
}

impl Work {
    fn events(&self) -> usize {
        match self {
            Work::Prepared(p) => p.len(),
            Work::Raw { events, .. } => *events,
        }
    }
}

impl From<Vec<Prepared>> for Work {
    fn from(prepared: Vec<Prepared>) -> Self {
        Work::Prepared(prepared)
    }
}

struct Job {
    work: Work,
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
    /// The latest appends' latencies, for the console's dashboard.
    pub(crate) recent: Arc<Recent>,
}

/// The latencies of the latest appends (queued to durable), newest last: the dashboard's
/// percentiles over the last minutes, without parsing the metrics' own text.
#[derive(Default)]
pub(crate) struct Recent {
    samples: Mutex<std::collections::VecDeque<(Instant, f64)>>,
}

impl Recent {
    const KEPT: usize = 8192;

    fn record(&self, secs: f64) {
        let mut s = self.samples.lock().expect("latency lock");
        if s.len() == Self::KEPT {
            s.pop_front();
        }
        s.push_back((Instant::now(), secs));
    }

    /// How many appends answered within `window`, and their median and 99th percentile
    /// latency in seconds.
    pub(crate) fn percentiles(
        &self,
        window: std::time::Duration,
    ) -> (usize, Option<f64>, Option<f64>) {
        let since = Instant::now().checked_sub(window);
        let mut v: Vec<f64> = self
            .samples
            .lock()
            .expect("latency lock")
            .iter()
            .filter(|(t, _)| since.is_none_or(|s| *t >= s))
            .map(|&(_, secs)| secs)
            .collect();
        v.sort_by(f64::total_cmp);
        let at = |q: f64| {
            v.get(((v.len() as f64 - 1.0) * q).round() as usize)
                .copied()
        };
        (v.len(), at(0.5), at(0.99))
    }
}

impl Appender {
    pub(crate) fn start(ledger: Arc<Ledger>, threads: usize, queue_requests_max: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>(queue_requests_max.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let recent = Arc::new(Recent::default());
        let handles = (0..threads.max(1))
            .map(|i| {
                let (ledger, rx, recent) = (ledger.clone(), rx.clone(), recent.clone());
                std::thread::Builder::new()
                    .name(format!("sealog-append-{i}"))
                    .spawn(move || run(&ledger, &rx, &recent))
                    .expect("spawn an append thread")
            })
            .collect();
        Appender {
            tx: RwLock::new(Some(tx)),
            threads: Mutex::new(handles),
            recent,
        }
    }

    /// Queues work; the receiver yields its results once durable (and closes unanswered
    /// if preparing the work panicked).
    pub(crate) fn submit(
        &self,
        work: Work,
    ) -> Result<oneshot::Receiver<Result<Vec<IngestResult>, Error>>, Refused> {
        let (reply, rx) = oneshot::channel();
        let guard = self.tx.read().expect("appender lock");
        let tx = guard.as_ref().ok_or(Refused::Closed)?;
        let job = Job {
            work,
            reply,
            queued: Instant::now(),
        };
        tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Refused::Busy,
            mpsc::error::TrySendError::Closed(_) => Refused::Closed,
        })?;
        Ok(rx)
    }

    /// Queues work, waiting for room when the queue is full: for the later slices of a large
    /// body, whose first slice was already let in (and committed) and whose reservation of
    /// the memory budget is already held.
    pub(crate) async fn submit_waiting(
        &self,
        work: Work,
    ) -> Result<oneshot::Receiver<Result<Vec<IngestResult>, Error>>, Refused> {
        let (reply, rx) = oneshot::channel();
        // A clone, so the lock is not held across the wait; it is dropped once sent, so a
        // close still ends the threads when the queue drains.
        let tx = self
            .tx
            .read()
            .expect("appender lock")
            .clone()
            .ok_or(Refused::Closed)?;
        let job = Job {
            work,
            reply,
            queued: Instant::now(),
        };
        tx.send(job).await.map_err(|_| Refused::Closed)?;
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

fn run(ledger: &Ledger, rx: &Mutex<mpsc::Receiver<Job>>, recent: &Recent) {
    loop {
        let jobs = {
            let mut rx = rx.lock().expect("append queue lock");
            let Some(first) = rx.blocking_recv() else {
                return;
            };
            let mut events = first.work.events();
            let mut jobs = vec![first];
            while events < GATHER_EVENTS_MAX {
                match rx.try_recv() {
                    Ok(j) => {
                        events += j.work.events();
                        jobs.push(j);
                    }
                    Err(_) => break,
                }
            }
            jobs
        };
        let total: usize = jobs.iter().map(|j| j.work.events()).sum();
        let mut prepared = Vec::with_capacity(total);
        let mut replies = Vec::with_capacity(jobs.len());
        for j in jobs {
            let Some(work) = prepared_work(j.work) else {
                // Its reply is dropped unanswered: the request fails, the others go on.
                continue;
            };
            replies.push((j.reply, j.queued, work.len()));
            prepared.extend(work);
        }
        metrics::histogram!("sealog_append_batch_events").record(prepared.len() as f64);
        answer(ledger.commit(prepared), replies, recent);
    }
}

/// A job's prepared events; `None` when preparing them panicked (a bug, logged), so that one
/// request fails rather than the thread that serves every request.
fn prepared_work(work: Work) -> Option<Vec<Prepared>> {
    match work {
        Work::Prepared(p) => Some(p),
        Work::Raw { prepare, .. } => {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(prepare)) {
                Ok(p) => Some(p),
                Err(_) => {
                    tracing::error!("preparing a request's events panicked");
                    None
                }
            }
        }
    }
}

/// Splits one combined call's results among the requests it served, in order.
fn answer(
    results: Result<Vec<IngestResult>, Error>,
    replies: Vec<(Reply, Instant, usize)>,
    recent: &Recent,
) {
    match results {
        Ok(results) => {
            let mut it = results.into_iter();
            for (reply, queued, n) in replies {
                let mine: Vec<IngestResult> = it.by_ref().take(n).collect();
                let secs = queued.elapsed().as_secs_f64();
                metrics::histogram!("sealog_append_seconds").record(secs);
                recent.record(secs);
                let _ = reply.send(Ok(mine));
            }
        }
        Err(e) => {
            let message = e.to_string();
            tracing::error!(error = %message, "append failed");
            for (reply, _, _) in replies {
                // A database that cannot be reached now is a retry, not a broken store.
                let each = match &e {
                    Error::Unavailable(m) => Error::Unavailable(m.clone()),
                    _ => Error::Poisoned(message.clone()),
                };
                let _ = reply.send(Err(each));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealog_ledger::{Author, LedgerConfig, Packs, Undeclared};
    use serde_json::json;

    fn ledger(dir: &std::path::Path) -> Arc<Ledger> {
        let config = LedgerConfig {
            store: sealog_ledger::StoreConfig {
                durability: sealog_ledger::Durability::Os,
                ..sealog_ledger::StoreConfig::default()
            },
            packs: Packs::builtin(),
            undeclared: Undeclared::Accept,
        };
        Arc::new(Ledger::open(dir, config).unwrap())
    }

    fn event(id: &str) -> Vec<u8> {
        json!({"specversion": "1.0", "id": id, "source": "test", "type": "app.thing",
               "time": "2026-04-10T07:30:00Z", "data": {"n": 1}})
        .to_string()
        .into_bytes()
    }

    /// Raw work that prepares `events` (each a valid event, or `None` for bytes that are not
    /// JSON) and counts that it ran on an append thread.
    fn raw(ledger: &Arc<Ledger>, events: Vec<Option<Vec<u8>>>) -> Work {
        let ledger = ledger.clone();
        Work::Raw {
            events: events.len(),
            prepare: Box::new(move || {
                let on = std::thread::current().name().unwrap_or("").to_string();
                assert!(on.starts_with("sealog-append-"), "prepared on {on}");
                events
                    .iter()
                    .map(|e| ledger.prepare(e.as_deref().unwrap_or(b"{not json"), &Author::ANYONE))
                    .collect()
            }),
        }
    }

    #[test]
    fn raw_work_is_prepared_and_committed_on_an_append_thread_and_a_panic_fails_only_its_request() {
        let tmp = sealog_testkit::tempdir();
        let ledger = ledger(tmp.path());
        let appender = Appender::start(ledger.clone(), 1, 64);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // Queued together, so one thread takes them as one combined commit.
        let first = appender
            .submit(raw(&ledger, vec![Some(event("a")), None, Some(event("b"))]))
            .unwrap();
        let panicking = appender
            .submit(Work::Raw {
                events: 1,
                prepare: Box::new(|| panic!("a bug in preparing")),
            })
            .unwrap();
        let ready = appender
            .submit(Work::Prepared(vec![
                ledger.prepare(&event("c"), &Author::ANYONE),
            ]))
            .unwrap();
        let again = appender
            .submit(raw(&ledger, vec![Some(event("a"))]))
            .unwrap();

        let statuses = |rx: oneshot::Receiver<Result<Vec<IngestResult>, Error>>| {
            rt.block_on(rx)
                .expect("answered")
                .expect("committed")
                .iter()
                .map(|r| r.to_json()["status"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(statuses(first), ["appended", "rejected", "appended"]);
        assert!(
            rt.block_on(panicking).is_err(),
            "a request whose preparation panicked is left unanswered"
        );
        assert_eq!(statuses(ready), ["appended"]);
        assert_eq!(statuses(again), ["duplicate"]);
        assert_eq!(ledger.len(), 3, "a, b and c, each once");
        // The thread lived through the panic and serves what comes next.
        let later = appender
            .submit(raw(&ledger, vec![Some(event("d"))]))
            .unwrap();
        assert_eq!(statuses(later), ["appended"]);
        appender.close();
    }
}
