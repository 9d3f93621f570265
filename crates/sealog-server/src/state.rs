//! What every handler shares: the ledger, the append queue, the keys, the limits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusHandle;
use sealog_ledger::{DataLayout, IngestResult, Ledger, Prepared};

use crate::auth::KeyRing;
use crate::budget::Budget;
use crate::error::ApiError;
use crate::ingest::{Appender, Refused, Work};

/// Request limits, each named and configurable.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body (a bulk append); one event is still at most 1 MiB.
    pub body_bytes_max: usize,
    /// Request body bytes all requests together may hold in memory (with a share per event
    /// of an append, see the README); a request that would go past it gets 503 with
    /// `Retry-After` instead of being read.
    pub buffered_bytes_max: usize,
    /// How long a client may take to send its body.
    pub body_timeout: Duration,
    /// Records a query returns when it does not say.
    pub query_limit_default: usize,
    /// How long an append of an ordered stream waits for the request before it.
    pub stream_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes_max: 32 << 20,
            buffered_bytes_max: 256 << 20,
            body_timeout: Duration::from_secs(30),
            query_limit_default: 100,
            stream_wait: Duration::from_secs(10),
        }
    }
}

pub(crate) struct AppState {
    pub ledger: Arc<Ledger>,
    /// Witnessing, when the server was started with witnesses.
    pub witness: Option<Arc<Mutex<crate::witness::WitnessStatus>>>,
    pub witness_config: crate::witness::WitnessConfig,
    pub appender: Appender,
    pub keys: KeyRing,
    pub limits: Limits,
    /// The bytes of request bodies held in memory, against `limits.buffered_bytes_max`.
    pub budget: Arc<Budget>,
    pub metrics: PrometheusHandle,
    pub layout: DataLayout,
    pub exports: crate::exports::Exports,
    pub started: Instant,
    pub shutting_down: AtomicBool,
    /// Set when an append failed: the store refuses writes until restarted.
    pub store_failure: Mutex<Option<String>>,
    /// The key records already turned into `audit.key_*` records.
    pub(crate) keys_recorded: tokio::sync::Mutex<Vec<crate::keys::KeyRecord>>,
    /// Requests in flight per key id, and the most one key may have.
    pub(crate) inflight:
        Mutex<std::collections::HashMap<String, Arc<std::sync::atomic::AtomicU64>>>,
    pub(crate) key_inflight_max: usize,
    /// Ordered append streams (`Sealog-Stream`).
    pub(crate) streams: crate::streams::Streams,
    pub(crate) checks: crate::checks::Checks,
    /// The console's signed-in sessions.
    pub(crate) sessions: crate::sessions::Sessions,
    /// Set while a verification the console started runs.
    pub(crate) verifying: AtomicBool,
    /// The NATS consumer's state, when the server consumes one.
    pub(crate) bus: Option<Arc<Mutex<crate::nats::BusStatus>>>,
    /// The key ring generation `keys_recorded` reflects.
    pub(crate) keys_recorded_generation: std::sync::atomic::AtomicU64,
}

impl AppState {
    /// What `/readyz` shows of witnessing: each witness, the quorum, the final size and the
    /// signed records not yet final.
    pub(crate) fn witnessing(&self) -> Option<serde_json::Value> {
        let status = self
            .witness
            .as_ref()?
            .lock()
            .expect("witness status")
            .clone();
        let signed = self.ledger.latest_checkpoint().map_or(0, |c| c.size);
        let mut v = serde_json::to_value(&status).ok()?;
        v["signed_size"] = serde_json::json!(signed);
        v["unwitnessed_records"] =
            serde_json::json!(signed.saturating_sub(status.final_size.unwrap_or(0)));
        Some(v)
    }

    /// Commits prepared events — clients', or the server's own records — through the ledger
    /// and waits until they are durable.
    pub(crate) async fn ingest(
        &self,
        prepared: Vec<Prepared>,
    ) -> Result<Vec<IngestResult>, ApiError> {
        if prepared.is_empty() {
            return Ok(Vec::new());
        }
        self.ingest_with(prepared.into(), false).await
    }

    /// Like `ingest`, for work that may still be to prepare; with `wait`, a full queue is
    /// waited out rather than refused (for the later slices of a body whose first slice was
    /// already committed).
    pub(crate) async fn ingest_with(
        &self,
        work: Work,
        wait: bool,
    ) -> Result<Vec<IngestResult>, ApiError> {
        let queued = if wait {
            self.appender.submit_waiting(work).await
        } else {
            self.appender.submit(work)
        };
        let rx = queued.map_err(|r| {
            metrics::counter!("sealog_backpressure_total").increment(1);
            match r {
                Refused::Busy => ApiError::unavailable(
                    "BUSY",
                    "the append queue is full; retry after the indicated delay",
                    1,
                ),
                Refused::Closed => {
                    ApiError::unavailable("SHUTTING_DOWN", "the server is shutting down", 5)
                }
            }
        })?;
        match rx.await {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(e)) => {
                // A database that cannot be reached now is retried, not a failed store.
                if !matches!(e, sealog_ledger::Error::Unavailable(_)) {
                    *self.store_failure.lock().expect("failure lock") = Some(e.to_string());
                }
                Err(e.into())
            }
            // Left unanswered by a running server: preparing these events failed (logged).
            Err(_) if !self.is_shutting_down() => Err(ApiError::internal(
                "the events could not be prepared; nothing of them was stored",
            )),
            Err(_) => Err(ApiError::unavailable(
                "SHUTTING_DOWN",
                "the server is shutting down",
                5,
            )),
        }
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    pub(crate) fn store_failure(&self) -> Option<String> {
        self.store_failure.lock().expect("failure lock").clone()
    }
}
