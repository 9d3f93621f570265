//! The emitter's background thread: always sends the oldest unanswered event first, whether
//! it waits in the spool or in the queue.
//!
//! While the server answers, batches go from the queue; a batch that fails twice (the one
//! retry after `retry_delay`) goes to the spool and the server is considered away: until the
//! next attempt (backing off up to `backoff_max`) new events are moved to the spool behind
//! the older ones, so the queue never fills and `emit` never writes to disk itself. An
//! attempt replays the spool's oldest batch; once the spool is empty the queue is sent again.
//! A durable request never waits out a backoff: it makes the attempt at once, and fails if
//! the server still does not answer.
//!
//! When a second batch is ready behind the first, both go at once as consecutive requests of
//! an ordered stream (the server's `Sealog-Stream`): the server prepares the second while it
//! commits the first, and commits it after, so emission order holds at the throughput of two
//! connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::Digest;

use crate::Error;
use crate::emitter::{Ack, Item, Queue, Shared, add};

/// Why a request brought no answer for its events.
enum Failure {
    /// No answer, 408, 429, 5xx, or a key the server refuses: worth trying again later.
    Transient(String),
    /// The body was over the server's limit (a 413 without per-event results).
    TooLarge,
}

pub(crate) fn run(shared: &Arc<Shared>) {
    let s = shared.as_ref();
    let mut down_until: Option<Instant> = None;
    let first_backoff = s.config.retry_delay.max(Duration::from_millis(100)) * 2;
    let mut backoff = first_backoff;
    let mut stream = Stream::new();
    loop {
        let mut q = s.queue.lock().unwrap();
        if q.abandoned {
            return;
        }
        settle_mark(s, &mut q);
        if q.closing {
            let rest: Vec<Item> = q.items.drain(..).collect();
            park(s, &rest);
            fail_durables(s, &rest, || Error::Closed);
            settle_mark(s, &mut q);
            return;
        }
        let spool_head = s.spool.lock().unwrap().head_n();
        let queue_head = q.items.front().map(|i| i.n);
        let durable_waiting = q.items.iter().any(|i| i.durable.is_some());
        if let Some(until) = down_until
            && Instant::now() < until
            && !durable_waiting
        {
            // The server is away: new events join the spool behind the older ones, a batch
            // at a time.
            if q.items.len() >= s.config.batch_max_events || q.flushing > 0 {
                let rest: Vec<Item> = q.items.drain(..).collect();
                park(s, &rest);
                settle_mark(s, &mut q);
            }
            let left = until.saturating_duration_since(Instant::now());
            let _ = s.work.wait_timeout(q, left).unwrap();
            continue;
        }
        if let Some(h) = spool_head
            && queue_head.is_none_or(|qh| h < qh)
        {
            drop(q);
            match replay(s, queue_head) {
                Ok(()) => {
                    down_until = None;
                    backoff = first_backoff;
                }
                Err(why) => {
                    tracing::warn!(error = %why, retry_in_ms = backoff.as_millis() as u64, "the audit server is away; events wait in the spool");
                    down_until = Some(Instant::now() + backoff);
                    backoff = (backoff * 2).min(s.config.backoff_max);
                    let mut q = s.queue.lock().unwrap();
                    let rest: Vec<Item> = q.items.drain(..).collect();
                    park(s, &rest);
                    fail_durables(s, &rest, || Error::Unavailable(why.clone()));
                    settle_mark(s, &mut q);
                }
            }
            continue;
        }
        if queue_head.is_none() {
            // Nothing to do: sleep until an event arrives (or a spool attempt is due).
            let _ = s.work.wait_timeout(q, Duration::from_secs(1)).unwrap();
            continue;
        }
        // Let a batch fill for `linger`, unless it is full, or someone waits on it.
        if q.items.len() < s.config.batch_max_events && q.flushing == 0 && !durable_waiting {
            q = s.work.wait_timeout(q, s.config.linger).unwrap().0;
            if q.closing || q.abandoned {
                continue;
            }
        }
        let outcome = if spool_head.is_none() && q.items.len() > s.config.batch_max_events {
            // A backlog: a window of requests on an ordered stream.
            drop(q);
            pipeline(shared, &mut stream)
        } else {
            let items = Arc::new(take_batch(s, &mut q, spool_head));
            q.inflight.push(items.clone());
            drop(q);
            let events = events_of(&items);
            let outcome = deliver(s, &events, true);
            drop(events);
            finish(s, &items, outcome)
        };
        let mut q = s.queue.lock().unwrap();
        if q.abandoned {
            return;
        }
        if outcome.is_err() {
            down_until = Some(Instant::now() + backoff);
            backoff = (backoff * 2).min(s.config.backoff_max);
        } else {
            down_until = None;
            backoff = first_backoff;
        }
        settle_mark(s, &mut q);
    }
}

fn events_of(items: &[Item]) -> Vec<(u64, &[u8])> {
    items.iter().map(|i| (i.n, i.bytes.as_slice())).collect()
}

/// Settles a batch that left the queue: its answers, or its failure (spooled, unless `close`
/// spooled it already; its durable callers answered).
fn finish(
    s: &Shared,
    items: &Arc<Vec<Item>>,
    outcome: Result<Vec<Value>, String>,
) -> Result<(), String> {
    let mut q = s.queue.lock().unwrap();
    q.inflight.retain(|b| !Arc::ptr_eq(b, items));
    let abandoned = q.abandoned;
    drop(q);
    match outcome {
        Ok(results) => {
            settle(s, items, &results, false);
            Ok(())
        }
        Err(why) => {
            if !abandoned {
                tracing::warn!(error = %why, events = items.len(), "audit events could not be sent; spooled");
                park(s, items);
            }
            fail_durables(s, items, || Error::Unavailable(why.clone()));
            Err(why)
        }
    }
}

/// A request's answer, as its thread brought it.
type Answer = Result<Vec<Value>, Failure>;

/// Requests in flight, oldest first: their batches and the threads awaiting their answers.
type Window = std::collections::VecDeque<(Arc<Vec<Item>>, std::thread::JoinHandle<Answer>)>;

/// Batches sent at once on an ordered stream, at most.
const PIPELINE_DEPTH: usize = 4;

/// Sends the backlog as a window of up to [`PIPELINE_DEPTH`] consecutive requests of an
/// ordered stream (the server's `Sealog-Stream`): the server commits each only after the one
/// before, and prepares it meanwhile; as the oldest is answered, the next batch goes. On a
/// failure the window is drained in order: a request answered stands (the server committed
/// it after all before it), the failed one gets its one retry, and those behind a batch that
/// failed for good are given up with it; the stream is replaced.
fn pipeline(shared: &Arc<Shared>, stream: &mut Stream) -> Result<(), String> {
    let s = shared.as_ref();
    let mut window = Window::new();
    loop {
        {
            let mut q = s.queue.lock().unwrap();
            while window.len() < PIPELINE_DEPTH && !q.closing && !q.abandoned {
                let ready = q.items.len() >= s.config.batch_max_events
                    || (!q.items.is_empty()
                        && (q.flushing > 0 || q.items.iter().any(|i| i.durable.is_some())));
                if !ready {
                    break;
                }
                let spool_head = s.spool.lock().unwrap().head_n();
                let batch = take_batch(s, &mut q, spool_head);
                if batch.is_empty() {
                    break;
                }
                let items = Arc::new(batch);
                q.inflight.push(items.clone());
                let place = (stream.id.clone(), stream.next);
                stream.next += 1;
                let (sh, it) = (shared.clone(), items.clone());
                let sent = std::thread::Builder::new()
                    .name("sealog-emitter-send".into())
                    .spawn(move || post(&sh, &events_of(&it), Some((&place.0, place.1))));
                match sent {
                    Ok(handle) => window.push_back((items, handle)),
                    Err(e) => {
                        drop(q);
                        // The older requests first, then this one, never sent, after them.
                        let before = drain(s, None, window, stream);
                        let why = format!("starting a sender thread: {e}");
                        let this = finish(s, &items, Err(why));
                        return before.and(this);
                    }
                }
            }
        }
        let Some((items, handle)) = window.pop_front() else {
            return Ok(());
        };
        match handle.join().expect("a sender thread") {
            Ok(results) => {
                finish(s, &items, Ok(results))?;
                let mut q = s.queue.lock().unwrap();
                settle_mark(s, &mut q);
            }
            Err(f) => return drain(s, Some((items, Err(f))), window, stream),
        }
    }
}

/// The rest of a window after a failure (`first`, already answered, then those still in
/// flight), in order: an answered request stands, a failed one gets its one retry, and those
/// behind one that failed for good are given up with it. What follows uses a new stream.
fn drain(
    s: &Shared,
    first: Option<(Arc<Vec<Item>>, Answer)>,
    mut window: Window,
    stream: &mut Stream,
) -> Result<(), String> {
    *stream = Stream::new();
    let mut next = first;
    loop {
        let (items, answer) = match next.take() {
            Some(answered) => answered,
            None => match window.pop_front() {
                Some((items, handle)) => (items, handle.join().expect("a sender thread")),
                None => return Ok(()),
            },
        };
        let outcome = answer.or_else(|f| again(s, &events_of(&items), f));
        if let Err(why) = finish(s, &items, outcome) {
            give_up(s, window);
            return Err(why);
        }
    }
}

/// Requests behind a batch that failed for good: answered ones stand, the others go to the
/// spool after it.
fn give_up(s: &Shared, window: Window) {
    for (items, handle) in window {
        let outcome = handle
            .join()
            .expect("a sender thread")
            .map_err(|_| "not sent: a batch before it failed".to_string());
        let _ = finish(s, &items, outcome);
    }
}

/// An ordered stream of requests (the server's `Sealog-Stream`): a fresh id after any failure.
struct Stream {
    id: String,
    next: u64,
}

impl Stream {
    fn new() -> Self {
        static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut h = sha2::Sha256::new();
        h.update(std::process::id().to_le_bytes());
        h.update(
            COUNT
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .to_le_bytes(),
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        h.update(now.as_nanos().to_le_bytes());
        let d = h.finalize();
        Stream {
            id: d[..16].iter().map(|b| format!("{b:02x}")).collect(),
            next: 1,
        }
    }
}

/// The one retry of a request that failed, or its halves when it was too large.
fn again(s: &Shared, events: &[(u64, &[u8])], first: Failure) -> Result<Vec<Value>, String> {
    match first {
        Failure::TooLarge => split(s, events, true),
        Failure::Transient(why) => {
            std::thread::sleep(s.config.retry_delay);
            add(&s.counters.retried, events.len() as u64);
            match post(s, events, None) {
                Ok(r) => Ok(r),
                Err(Failure::TooLarge) => split(s, events, false),
                Err(Failure::Transient(again)) => Err(format!("{why}; then, retried: {again}")),
            }
        }
    }
}

/// Takes the next batch from the queue: the oldest events, below the spool's oldest.
fn take_batch(s: &Shared, q: &mut Queue, spool_head: Option<u64>) -> Vec<Item> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    while let Some(front) = q.items.front() {
        if out.len() >= s.config.batch_max_events
            || spool_head.is_some_and(|h| front.n >= h)
            || (!out.is_empty() && bytes + front.bytes.len() > s.config.batch_max_bytes)
        {
            break;
        }
        bytes += front.bytes.len() + 1;
        out.push(q.items.pop_front().unwrap());
    }
    out
}

/// Writes the ordinary events among `items` to the spool (durable ones are answered, not
/// spooled).
fn park(s: &Shared, items: &[Item]) {
    let keep: Vec<(u64, &[u8])> = items
        .iter()
        .filter(|i| i.durable.is_none())
        .map(|i| (i.n, i.bytes.as_slice()))
        .collect();
    s.spool_items(&keep);
}

pub(crate) fn fail_durables(s: &Shared, items: &[Item], err: impl Fn() -> Error) {
    for slot in items.iter().filter_map(|i| i.durable.as_ref()) {
        add(&s.counters.durable_failed, 1);
        slot.fill(Err(err()));
    }
}

/// Records where the oldest unanswered event stands, and wakes `flush`.
fn settle_mark(s: &Shared, q: &mut Queue) {
    let mut low = q.next_n;
    if let Some(i) = q.items.front() {
        low = low.min(i.n);
    }
    if let Some(i) = q.inflight.first().and_then(|b| b.first()) {
        low = low.min(i.n);
    }
    if let Some(h) = s.spool.lock().unwrap().head_n() {
        low = low.min(h);
    }
    q.settled_below = low;
    s.progress.notify_all();
}

/// Counts the server's answers and hands durable callers theirs.
fn settle(s: &Shared, items: &[Item], results: &[Value], replayed: bool) {
    let c = &s.counters;
    for (item, r) in items.iter().zip(results) {
        let ack = Ack::from_result(r);
        count(s, item.n, &ack, replayed);
        if let Some(slot) = &item.durable {
            if ack.is_err() {
                add(&c.durable_failed, 1);
            }
            slot.fill(ack);
        }
    }
}

fn count(s: &Shared, n: u64, ack: &Result<Ack, Error>, replayed: bool) {
    let c = &s.counters;
    match ack {
        Ok(a) => {
            add(&c.acknowledged, 1);
            add(&c.replayed, u64::from(replayed));
            match a {
                Ack::Appended { .. } => add(&c.appended, 1),
                Ack::Duplicate { .. } => add(&c.duplicates, 1),
                Ack::Quarantined { reason_code, .. } => {
                    add(&c.quarantined, 1);
                    tracing::warn!(emission = n, reason = %reason_code, "an audit event was quarantined");
                }
                Ack::Skipped => {}
            }
        }
        Err(e) => {
            add(&c.rejected, 1);
            add(&c.replayed, u64::from(replayed));
            tracing::error!(emission = n, error = %e, "the audit server refused an event");
        }
    }
}

/// Replays the spool's oldest batch (below `below`): one attempt.
fn replay(s: &Shared, below: Option<u64>) -> Result<(), String> {
    let frames = {
        let mut spool = s.spool.lock().unwrap();
        let read = spool.read_batch(below, s.config.batch_max_events, s.config.batch_max_bytes);
        report_damage(s, &mut spool);
        read
    };
    if frames.is_empty() {
        return Ok(());
    }
    let events: Vec<(u64, &[u8])> = frames.iter().map(|f| (f.n, f.payload.as_slice())).collect();
    let results = deliver(s, &events, false)?;
    for (f, r) in frames.iter().zip(&results) {
        count(s, f.n, &Ack::from_result(r), true);
    }
    s.counters
        .spool_pending
        .fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |p| Some(p.saturating_sub(frames.len() as u64)),
        )
        .ok();
    let mut spool = s.spool.lock().unwrap();
    if let Err(e) = spool.consume(&frames) {
        tracing::warn!(error = %e, "the spool's cursor could not be written; those events may be sent again");
    }
    report_damage(s, &mut spool);
    Ok(())
}

fn report_damage(s: &Shared, spool: &mut crate::spool::Spool) {
    if spool.damage_found > 0 {
        add(&s.counters.spool_damaged, spool.damage_found);
        tracing::error!(
            regions = spool.damage_found,
            spool = %s.config.spool_dir.display(),
            "damaged frames in the audit spool were skipped"
        );
        spool.damage_found = 0;
    }
}

/// Sends events and returns one result per event. With `retry`, a failed request is tried
/// once more after `retry_delay`. A body over the server's limit is sent in halves.
fn deliver(s: &Shared, events: &[(u64, &[u8])], retry: bool) -> Result<Vec<Value>, String> {
    match post(s, events, None) {
        Ok(r) => Ok(r),
        Err(Failure::TooLarge) => split(s, events, retry),
        Err(f) if retry => again(s, events, f),
        Err(Failure::Transient(why)) => Err(why),
    }
}

fn split(s: &Shared, events: &[(u64, &[u8])], retry: bool) -> Result<Vec<Value>, String> {
    if events.len() == 1 {
        // One event alone is over the body limit: the server would never take it.
        return Ok(vec![serde_json::json!({"status": "rejected", "error": {
            "code": "TOO_LARGE", "message": "the event alone is over the server's body limit"}})]);
    }
    let (a, b) = events.split_at(events.len() / 2);
    let mut out = deliver(s, a, retry)?;
    out.extend(deliver(s, b, retry)?);
    Ok(out)
}

fn post(
    s: &Shared,
    events: &[(u64, &[u8])],
    stream: Option<(&str, u64)>,
) -> Result<Vec<Value>, Failure> {
    let mut body = Vec::with_capacity(events.iter().map(|(_, b)| b.len() + 1).sum());
    for (_, b) in events {
        body.extend_from_slice(b);
        body.push(b'\n');
    }
    let c = &s.counters;
    add(&c.requests, 1);
    add(&c.sent, events.len() as u64);
    let fail = |why: String| {
        add(&c.failures, 1);
        Failure::Transient(why)
    };
    let place = stream.map(|(id, n)| format!("{id}/{n}"));
    let headers: Vec<(&str, &str)> = place
        .iter()
        .map(|p| ("Sealog-Stream", p.as_str()))
        .collect();
    let reply = match s
        .client
        .post_with("/v1/events", "application/x-ndjson", &body, &headers)
    {
        Ok(r) => r,
        Err(e) => return Err(fail(e.to_string())),
    };
    #[derive(serde::Deserialize)]
    struct Answer {
        results: Vec<Value>,
    }
    if matches!(reply.status, 200 | 403 | 413 | 422)
        && let Ok(a) = serde_json::from_slice::<Answer>(&reply.body)
        && a.results.len() == events.len()
        && a.results.iter().all(Ack::well_formed)
    {
        return Ok(a.results);
    }
    match reply.status {
        413 => Err(Failure::TooLarge),
        401 | 403 => {
            tracing::error!(status = reply.status, message = %reply.message(), "the audit server refuses this emitter's key");
            Err(fail(format!("{}: {}", reply.status, reply.message())))
        }
        status => Err(fail(format!(
            "the server answered {status}: {}",
            reply.message()
        ))),
    }
}
