//! NATS JetStream ingestion: a durable pull consumer whose messages go through the ledger
//! exactly like HTTP appends, through the same append queue and group commit.
//!
//! *Invariants*: a message is acknowledged only once what the ledger made of it (its record,
//! a duplicate's original, or its quarantine record) is durable; a message that is not an
//! event, or is on another tenant's subject, is recorded (`NOT_AN_EVENT`, `TENANT_MISMATCH`)
//! and then terminated, never redelivered forever; a correction whose target has not arrived
//! is negatively acknowledged with a delay until its last allowed delivery, which quarantines
//! it; anything the ledger could not make durable is negatively acknowledged, so the bus
//! delivers it again. Batches are committed one after another, in stream order, so a
//! correction later in the stream than its target is admitted after it; the next batch is
//! prepared while one commits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures_util::{FutureExt, StreamExt};
use sealog_ledger::{Delivery, IngestResult, Prepared, Tenancy};
use serde::Serialize;
use tokio::sync::watch;

use crate::state::AppState;

/// How long a first connection, or a stream or consumer request, may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages prepared together on one thread of the blocking pool.
const PREPARE_CHUNK: usize = 32;
/// The longest wait between attempts to reach the bus again.
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Which tenants' events a consumer takes, and from which subjects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusTenancy {
    /// Every event names its own tenant.
    Any,
    /// Every event must be this tenant's.
    Fixed(String),
    /// The subject names the tenant (`audit.<tenant>.>`).
    FromSubject(SubjectPattern),
}

/// A subject pattern with one `<tenant>` token, and NATS wildcards (`*` one token, `>` the
/// rest) elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectPattern {
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(String),
    One,
    Rest,
    Tenant,
}

impl SubjectPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut tokens = Vec::new();
        let parts: Vec<&str> = text.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            tokens.push(match *part {
                "" => return Err(format!("{text}: an empty token")),
                "*" => Token::One,
                ">" if i + 1 == parts.len() => Token::Rest,
                ">" => return Err(format!("{text}: `>` may only end a subject")),
                "<tenant>" => Token::Tenant,
                t if t.contains(|c: char| c.is_whitespace() || "*><".contains(c)) => {
                    return Err(format!("{text}: {t:?} is not a subject token"));
                }
                t => Token::Literal(t.to_string()),
            });
        }
        match tokens.iter().filter(|t| **t == Token::Tenant).count() {
            1 => Ok(SubjectPattern { tokens }),
            _ => Err(format!("{text}: name the tenant's token once, as <tenant>")),
        }
    }

    /// The tenant a subject names, when it matches the pattern.
    pub fn tenant_of<'s>(&self, subject: &'s str) -> Option<&'s str> {
        let parts: Vec<&str> = subject.split('.').collect();
        let mut tenant = None;
        for (i, token) in self.tokens.iter().enumerate() {
            match (token, parts.get(i)) {
                (Token::Rest, Some(_)) => return tenant,
                (_, None) => return None,
                (Token::Literal(l), Some(p)) if l != p => return None,
                (Token::Tenant, Some(p)) => tenant = Some(*p),
                _ => {}
            }
        }
        (parts.len() == self.tokens.len())
            .then_some(tenant)
            .flatten()
    }
}

#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// `nats://host:port`.
    pub url: String,
    /// The JetStream stream, created over `subjects` when it does not exist.
    pub stream: String,
    /// The subjects consumed (`audit.>`).
    pub subjects: String,
    /// The durable consumer's name.
    pub consumer: String,
    pub tenancy: BusTenancy,
    /// Deliveries a correction whose target has not arrived gets; the last one quarantines it.
    pub deliveries_max: u32,
    /// How long the bus waits before delivering a deferred (or failed) message again.
    pub retry_delay: Duration,
    /// Messages committed together at most.
    pub batch_max: usize,
    /// How long the bus waits for an acknowledgement before it delivers a message again (to
    /// this server after a stall, or to another after this one died): longer than a batch's
    /// commit, or messages are delivered twice (harmless, but wasted work).
    pub ack_wait: Duration,
}

impl NatsConfig {
    pub fn new(url: &str, stream: &str, subjects: &str) -> Self {
        NatsConfig {
            url: url.to_string(),
            stream: stream.to_string(),
            subjects: subjects.to_string(),
            consumer: "sealog".into(),
            tenancy: BusTenancy::Any,
            deliveries_max: 5,
            retry_delay: Duration::from_secs(2),
            batch_max: 1000,
            ack_wait: Duration::from_secs(30),
        }
    }

    fn tenancy_of<'s>(&'s self, subject: &'s str) -> Tenancy<'s> {
        match &self.tenancy {
            BusTenancy::Any => Tenancy::Any,
            BusTenancy::Fixed(t) => Tenancy::Only(t),
            BusTenancy::FromSubject(p) => {
                p.tenant_of(subject).map_or(Tenancy::Unnamed, Tenancy::Only)
            }
        }
    }
}

/// What `/readyz` shows of the consumer, and its counters since the start.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BusStatus {
    pub transport: &'static str,
    pub url: String,
    pub stream: String,
    pub consumer: String,
    pub subjects: String,
    /// `connecting`, `consuming` or `disconnected`.
    pub state: &'static str,
    /// Messages the bus still holds for the consumer, as of the latest delivery.
    pub pending: u64,
    pub delivered: u64,
    pub acknowledged: u64,
    pub redelivered: u64,
    pub terminated: u64,
    pub deferred: u64,
    pub last_error: Option<String>,
}

impl BusStatus {
    pub(crate) fn new(config: &NatsConfig) -> Self {
        BusStatus {
            transport: "nats",
            url: config.url.clone(),
            stream: config.stream.clone(),
            consumer: config.consumer.clone(),
            subjects: config.subjects.clone(),
            state: "connecting",
            pending: 0,
            delivered: 0,
            acknowledged: 0,
            redelivered: 0,
            terminated: 0,
            deferred: 0,
            last_error: None,
        }
    }
}

type Status = Arc<Mutex<BusStatus>>;

fn update(status: &Status, f: impl FnOnce(&mut BusStatus)) {
    f(&mut status.lock().expect("bus status"));
}

/// Consumes until `stop` says so, reaching the bus again whenever it is lost.
pub(crate) async fn consume(
    state: Arc<AppState>,
    config: NatsConfig,
    status: Status,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(50);
    while !*stop.borrow() {
        update(&status, |s| s.state = "connecting");
        match session(&state, &config, &status, &mut stop).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, url = %config.url, "NATS consumer lost; reconnecting");
                update(&status, |s| {
                    s.state = "disconnected";
                    s.last_error = Some(e);
                });
                tokio::select! {
                    _ = stop.changed() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// One batch being committed: its messages, and the receiver of the ledger's results.
struct InFlight {
    messages: Vec<jetstream::Message>,
    results: tokio::sync::oneshot::Receiver<Committed>,
}

/// One connection's life: set up the stream and consumer, then commit batches until stopped
/// (`Ok`) or the bus is lost (`Err`). A batch in flight is settled either way.
async fn session(
    state: &Arc<AppState>,
    config: &NatsConfig,
    status: &Status,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let client = async_nats::ConnectOptions::new()
        .name("sealog")
        .connection_timeout(REQUEST_TIMEOUT)
        .request_timeout(Some(REQUEST_TIMEOUT))
        .connect(config.url.as_str())
        .await
        .map_err(|e| format!("connecting to {}: {e}", config.url))?;
    let js = jetstream::new(client.clone());
    let stream = js
        .get_or_create_stream(jetstream::stream::Config {
            name: config.stream.clone(),
            subjects: vec![config.subjects.clone()],
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("stream {}: {e}", config.stream))?;
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(
            &config.consumer,
            pull::Config {
                durable_name: Some(config.consumer.clone()),
                filter_subject: config.subjects.clone(),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: config.ack_wait,
                max_ack_pending: (config.batch_max * 4) as i64,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("consumer {}: {e}", config.consumer))?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(config.batch_max)
        .messages()
        .await
        .map_err(|e| format!("consuming {}: {e}", config.consumer))?;
    update(status, |s| {
        s.state = "consuming";
        s.last_error = None;
    });
    tracing::info!(url = %config.url, stream = %config.stream, consumer = %config.consumer, "consuming from NATS");
    let mut pipe = Pipeline {
        state,
        config,
        status,
        batch: Vec::new(),
        preparing: Vec::new(),
        prepared_upto: 0,
        inflight: None,
        committed: None,
    };
    // The client reconnects by itself; what `/readyz` says follows its connection.
    let mut watch = tokio::time::interval(Duration::from_millis(250));
    let ended = loop {
        // Nothing committing and something gathered: commit it now, with whatever else has
        // already arrived. While a commit runs, messages gather (and are prepared) instead.
        if pipe.inflight.is_none() && !pipe.batch.is_empty() {
            while pipe.batch.len() < config.batch_max {
                match messages.next().now_or_never() {
                    Some(Some(Ok(m))) => pipe.batch.push(m),
                    _ => break,
                }
            }
            if !pipe.submit().await {
                break Ok(());
            }
            continue;
        }
        if let Some((messages, results)) = pipe.committed.take() {
            settle(config, status, messages, results).await;
        }
        tokio::select! {
            biased;
            _ = stop.changed() => break Ok(()),
            _ = watch.tick() => {
                let connected =
                    client.connection_state() == async_nats::connection::State::Connected;
                update(status, |s| {
                    s.state = if connected { "consuming" } else { "disconnected" };
                });
            }
            done = async { (&mut pipe.inflight.as_mut().expect("guarded").results).await },
                if pipe.inflight.is_some() =>
            {
                let f = pipe.inflight.take().expect("guarded");
                pipe.committed = Some((f.messages, done.ok()));
            }
            next = messages.next(), if pipe.batch.len() < config.batch_max => match next {
                Some(Ok(m)) => {
                    pipe.batch.push(m);
                    if pipe.batch.len() - pipe.prepared_upto >= PREPARE_CHUNK {
                        pipe.prepare_gathered(false);
                    }
                }
                Some(Err(e)) => break Err(format!("receiving: {e}")),
                None => break Err("the bus ended the consumer's message stream".to_string()),
            },
        }
    };
    pipe.finish().await;
    ended
}

/// Messages on their way to the log: those gathered (some already being prepared), the
/// batch being committed, and the one just committed whose acknowledgements are still due.
struct Pipeline<'a> {
    state: &'a Arc<AppState>,
    config: &'a NatsConfig,
    status: &'a Status,
    batch: Vec<jetstream::Message>,
    /// Preparations of `batch[..prepared_upto]`, chunk by chunk, in order.
    preparing: Vec<tokio::task::JoinHandle<Vec<Prepared>>>,
    prepared_upto: usize,
    inflight: Option<InFlight>,
    committed: Option<(Vec<jetstream::Message>, Option<Committed>)>,
}

type Committed = Result<Vec<IngestResult>, sealog_ledger::Error>;

impl Pipeline<'_> {
    /// Starts preparing what was gathered and is not yet being prepared, in chunks (all of
    /// it with `all`, or only whole chunks).
    fn prepare_gathered(&mut self, all: bool) {
        while self.prepared_upto < self.batch.len() {
            let end = (self.prepared_upto + PREPARE_CHUNK).min(self.batch.len());
            if !all && end - self.prepared_upto < PREPARE_CHUNK {
                break;
            }
            let chunk = &self.batch[self.prepared_upto..end];
            self.preparing
                .push(prepare(self.state, self.config, self.status, chunk));
            self.prepared_upto = end;
        }
    }

    /// Hands the gathered batch to the append queue once the one before it is committed (so
    /// the log keeps the stream's order), then acknowledges that one. False when the queue
    /// is closed (the server is stopping).
    async fn submit(&mut self) -> bool {
        self.prepare_gathered(true);
        let mut prepared = Vec::with_capacity(self.batch.len());
        for p in self.preparing.drain(..) {
            prepared.extend(p.await.expect("preparing does not panic"));
        }
        self.prepared_upto = 0;
        let batch = std::mem::take(&mut self.batch);
        let submitted = self.state.appender.submit_waiting(prepared.into()).await;
        if let Some((messages, results)) = self.committed.take() {
            settle(self.config, self.status, messages, results).await;
        }
        match submitted {
            Ok(results) => {
                self.inflight = Some(InFlight {
                    messages: batch,
                    results,
                });
                true
            }
            Err(_) => {
                settle(self.config, self.status, batch, None).await;
                false
            }
        }
    }

    /// Settles everything still held: what was committed is acknowledged, what was only
    /// gathered is handed back to the bus to deliver again.
    async fn finish(mut self) {
        if let Some((messages, results)) = self.committed.take() {
            settle(self.config, self.status, messages, results).await;
        }
        if let Some(f) = self.inflight.take() {
            let done = f.results.await;
            settle(self.config, self.status, f.messages, done.ok()).await;
        }
        let gathered = std::mem::take(&mut self.batch);
        if !gathered.is_empty() {
            settle(self.config, self.status, gathered, None).await;
        }
    }
}

/// Prepares messages on the blocking pool (it is CPU work, and chunks run in parallel, as
/// concurrent HTTP requests do): each as the event its body or its binary-mode headers carry.
fn prepare(
    state: &Arc<AppState>,
    config: &NatsConfig,
    status: &Status,
    chunk: &[jetstream::Message],
) -> tokio::task::JoinHandle<Vec<Prepared>> {
    let mut pending = None;
    let mut redelivered = 0;
    let inputs: Vec<Input> = chunk
        .iter()
        .map(|m| {
            let input = Input::of(m);
            pending = Some(input.pending);
            if input.delivered > 1 {
                redelivered += 1;
            }
            input
        })
        .collect();
    metrics::counter!("sealog_nats_messages_total", "outcome" => "delivered")
        .increment(chunk.len() as u64);
    metrics::counter!("sealog_nats_messages_total", "outcome" => "redelivered")
        .increment(redelivered);
    if let Some(p) = pending {
        metrics::gauge!("sealog_nats_pending").set(p as f64);
    }
    update(status, |s| {
        s.delivered += chunk.len() as u64;
        s.redelivered += redelivered;
        if let Some(p) = pending {
            s.pending = p;
        }
    });
    let (ledger, config) = (state.ledger.clone(), config.clone());
    tokio::task::spawn_blocking(move || {
        inputs
            .iter()
            .map(|i| {
                let delivery = Delivery {
                    transport: "nats",
                    stream: &i.stream,
                    subject: &i.subject,
                    stream_seq: i.stream_seq,
                    published: &i.published,
                    tenancy: config.tenancy_of(&i.subject),
                    may_wait: i.delivered < i64::from(config.deliveries_max),
                };
                match &i.body {
                    Ok(event) => ledger.prepare_delivered(event, &delivery),
                    Err((raw, why)) => ledger.prepare_not_an_event(raw, &delivery, why.clone()),
                }
            })
            .collect()
    })
}

/// What the ledger needs of one message, owned so it can cross to the blocking pool.
struct Input {
    /// The event, or the message as it came and why it is not one.
    body: Result<Vec<u8>, (Vec<u8>, String)>,
    subject: String,
    stream: String,
    stream_seq: u64,
    published: String,
    delivered: i64,
    pending: u64,
}

impl Input {
    fn of(m: &jetstream::Message) -> Input {
        let subject = m.subject.as_str().to_string();
        let (stream, stream_seq, published, delivered, pending) = match m.info() {
            Ok(i) => (
                i.stream.to_string(),
                i.stream_sequence,
                sealog_model::time::format_nanos(
                    i64::try_from(i.published.unix_timestamp_nanos()).unwrap_or(0),
                ),
                i.delivered,
                i.pending,
            ),
            // Not a JetStream delivery's reply subject: recorded, with what is known.
            Err(_) => (String::new(), 0, String::new(), 1, 0),
        };
        Input {
            body: event_bytes(m),
            subject,
            stream,
            stream_seq,
            published,
            delivered,
            pending,
        }
    }
}

/// The event a message carries: its body in structured mode, or the structured event its
/// `ce-*` headers and body map to in binary mode (headers in name order, so a redelivery maps
/// to the same bytes). A binary message that maps to nothing is the body as it came and why.
fn event_bytes(m: &jetstream::Message) -> Result<Vec<u8>, (Vec<u8>, String)> {
    let mut headers: Vec<(&str, &str)> = m
        .headers
        .iter()
        .flat_map(|h| h.iter())
        .flat_map(|(name, values)| {
            let name: &str = name.as_ref();
            values.iter().map(move |v| (name, v.as_str()))
        })
        .collect();
    if !sealog_model::cloudevents::is_binary(headers.iter().copied()) {
        return Ok(m.payload.to_vec());
    }
    headers.sort_unstable();
    sealog_model::cloudevents::structured_from_binary(headers.iter().copied(), &m.payload)
        .map_err(|e| (m.payload.to_vec(), format!("CloudEvents binary mode: {e}")))
}

/// Acknowledges each message by what the ledger made of it; without results (the ledger
/// failed, or the server is stopping), asks for each to be delivered again.
async fn settle(
    config: &NatsConfig,
    status: &Status,
    messages: Vec<jetstream::Message>,
    results: Option<Committed>,
) {
    let again = AckKind::Nak(Some(config.retry_delay));
    let (kinds, failure): (Vec<AckKind>, Option<String>) = match results {
        Some(Ok(rs)) => (
            rs.iter()
                .map(|r| match r {
                    IngestResult::Appended { .. } | IngestResult::Duplicate { .. } => AckKind::Ack,
                    IngestResult::Quarantined { finding, .. } if finding.delivery.is_some() => {
                        AckKind::Term
                    }
                    IngestResult::Quarantined { .. } => AckKind::Ack,
                    IngestResult::Deferred { .. } | IngestResult::Rejected(_) => again,
                })
                .collect(),
            rs.iter().find_map(|r| match r {
                IngestResult::Rejected(r) => Some(format!("{}: {}", r.code, r.message)),
                _ => None,
            }),
        ),
        Some(Err(e)) => (vec![again; messages.len()], Some(e.to_string())),
        None => (
            vec![again; messages.len()],
            Some("the append queue closed".into()),
        ),
    };
    if let Some(f) = &failure {
        tracing::error!(error = %f, "NATS messages not taken; the bus delivers them again");
    }
    let (mut acked, mut terminated, mut deferred) = (0u64, 0u64, 0u64);
    for (m, kind) in messages.iter().zip(&kinds) {
        match kind {
            AckKind::Ack => acked += 1,
            AckKind::Term => terminated += 1,
            _ => deferred += 1,
        }
        // A lost acknowledgement only means a redelivery, which is a duplicate.
        if let Err(e) = m.ack_with(*kind).await {
            tracing::warn!(error = %e, "acknowledging a NATS message");
        }
    }
    for (outcome, n) in [
        ("acknowledged", acked),
        ("terminated", terminated),
        ("deferred", deferred),
    ] {
        metrics::counter!("sealog_nats_messages_total", "outcome" => outcome).increment(n);
    }
    update(status, |s| {
        s.acknowledged += acked;
        s.terminated += terminated;
        s.deferred += deferred;
        if failure.is_some() {
            s.last_error = failure;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_pattern_names_the_tenant_where_it_says() {
        let p = SubjectPattern::parse("audit.<tenant>.>").unwrap();
        assert_eq!(p.tenant_of("audit.t1.orders"), Some("t1"));
        assert_eq!(p.tenant_of("audit.t1.orders.eu"), Some("t1"));
        assert_eq!(p.tenant_of("audit.t1"), None);
        assert_eq!(p.tenant_of("other.t1.orders"), None);
        let p = SubjectPattern::parse("*.<tenant>").unwrap();
        assert_eq!(p.tenant_of("x.t2"), Some("t2"));
        assert_eq!(p.tenant_of("x.t2.y"), None);
        for bad in [
            "audit.>",
            "audit.<tenant>.<tenant>",
            "a..<tenant>",
            "a.>.<tenant>",
            "a.b c.<tenant>",
        ] {
            assert!(SubjectPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
