//! Accepting connections: HTTP/1.1 over TCP or TLS, bounded connections, header and
//! handshake timeouts, and a graceful stop that drains in-flight requests (and with them
//! every queued append) before the ledger (both logs) is closed.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use sealog_ledger::Ledger;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use crate::auth::KeyRing;
use crate::ingest::Appender;
use crate::state::{AppState, Limits};

/// The most a request's head (request line and headers) may take: the HTTP layer answers a
/// bare 431 when a head overflows its read buffer before it is parsed, and `observe` answers
/// one that got through with our JSON error.
pub(crate) const HEADER_BYTES_MAX: usize = 64 << 10;
/// How often the key file is checked for changes to record, when no request did it first.
const KEY_WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// How often freed memory may be given back to the system, after large requests.
const TRIM_INTERVAL: Duration = Duration::from_secs(1);
/// Ticks after a large request on which freed memory is given back.
const TRIMS_AFTER_LARGE_REQUEST: u32 = 3;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub limits: Limits,
    /// Time a client has to send a request's headers (and, with TLS, to finish the handshake).
    pub header_timeout: Duration,
    pub connections_max: usize,
    /// Threads that hand combined appends to the store.
    pub append_threads: usize,
    /// Append requests that may wait before new ones are refused with 503.
    pub append_queue_max: usize,
    pub tls: Option<TlsFiles>,
    /// Requests one key may have in flight; more get 429 with `Retry-After`.
    pub key_inflight_max: usize,
    /// Serve `/metrics` without a key.
    pub public_metrics: bool,
    /// How long a stop waits for in-flight requests.
    pub shutdown_grace: Duration,
    pub exports: crate::exports::ExportConfig,
    /// Apply retention this often (never when `None`, the default: pruning is an operator's
    /// decision).
    pub retention_every: Option<Duration>,
    /// Witnesses each new checkpoint is submitted to, and how many cosignatures make it final.
    pub witnesses: crate::witness::WitnessConfig,
    /// Consistency checks: their schedule and alerts.
    pub checks: crate::checks::CheckConfig,
    /// A NATS JetStream consumer to ingest from, beside HTTP.
    pub nats: Option<crate::nats::NatsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            limits: Limits::default(),
            header_timeout: Duration::from_secs(10),
            connections_max: 4096,
            append_threads: 4,
            append_queue_max: 8192,
            tls: None,
            key_inflight_max: 1024,
            public_metrics: false,
            shutdown_grace: Duration::from_secs(30),
            exports: Default::default(),
            retention_every: None,
            witnesses: Default::default(),
            checks: Default::default(),
            nats: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error(transparent)]
    Store(#[from] sealog_ledger::Error),
    #[error("recording key changes at start: {0}")]
    Audit(String),
    /// The key file is missing, damaged or contradicts the log's key records.
    #[error("{0}")]
    KeyFile(String),
    #[error("exports directory: {0}")]
    Exports(String),
    #[error("witnesses: {0}")]
    Witness(String),
    /// The server stopped as asked, but its store had failed on the way and refused writes
    /// from then on: a supervisor must see a failure, not a clean stop.
    #[error(
        "the store stopped taking writes while serving ({0}); check the disk, then start again"
    )]
    StoreFailed(String),
}

pub struct Server {
    listener: TcpListener,
    app: App,
    tls: Option<TlsAcceptor>,
    config: ServerConfig,
}

/// The whole HTTP API over a ledger, without a socket: what a [`Server`] serves, and what
/// tests drive in process (`tower::ServiceExt::oneshot` on [`App::router`]).
pub struct App {
    state: Arc<AppState>,
    router: Router,
}

impl App {
    /// Loads the keys and records any key change not yet in the log.
    pub async fn new(config: &ServerConfig, ledger: Ledger) -> Result<Self, ServerError> {
        let app = match Self::build(config, ledger) {
            Ok(app) => app,
            Err(refused) => return Err(refused.release().await),
        };
        if let Err(e) = record_key_changes_at_start(&app.state).await {
            app.close_after_refusal().await;
            return Err(e);
        }
        Ok(app)
    }

    /// Builds the app, or refuses and hands the ledger back; the refusals come before the
    /// ledger is shared with the append threads, so it can be handed back whole.
    fn build(config: &ServerConfig, ledger: Ledger) -> Result<Self, Refusal> {
        let Started {
            keys,
            exports,
            witness,
        } = match Self::start_checks(config, &ledger) {
            Ok(started) => started,
            Err(error) => {
                return Err(Refusal {
                    error,
                    ledger: Box::new(ledger),
                });
            }
        };
        let layout = ledger.layout().clone();
        let ledger = Arc::new(ledger);
        let appender = Appender::start(
            ledger.clone(),
            config.append_threads,
            config.append_queue_max,
        );
        let state = Arc::new(AppState {
            witness,
            witness_config: config.witnesses.clone(),
            exports,
            ledger,
            appender,
            keys,
            limits: config.limits.clone(),
            budget: crate::budget::Budget::new(config.limits.buffered_bytes_max),
            metrics: crate::metrics::install(),
            layout,
            started: Instant::now(),
            shutting_down: Default::default(),
            store_failure: Default::default(),
            keys_recorded: Default::default(),
            keys_recorded_generation: Default::default(),
            inflight: Default::default(),
            key_inflight_max: config.key_inflight_max,
            streams: Default::default(),
            checks: crate::checks::Checks::new(config.checks.clone()),
            sessions: crate::sessions::Sessions::new(config.tls.is_some()),
            verifying: Default::default(),
            bus: config
                .nats
                .as_ref()
                .map(|c| Arc::new(std::sync::Mutex::new(crate::nats::BusStatus::new(c)))),
        });
        let (router, _) = crate::openapi::api(config.public_metrics);
        let router = router
            .fallback(|| async { crate::error::ApiError::not_found("no such route") })
            .layer(axum::middleware::from_fn(crate::context::observe))
            .with_state(state.clone());
        Ok(App { state, router })
    }

    /// What may refuse a start: the key file against the log's key records (the one
    /// decision about open mode at start), the exports directory and the witnesses' state.
    fn start_checks(config: &ServerConfig, ledger: &Ledger) -> Result<Started, ServerError> {
        let layout = ledger.layout();
        let root = layout.root().to_path_buf();
        let keys = KeyRing::load(root.clone())
            .map_err(|e| ServerError::KeyFile(crate::key_history::damaged(&e, &root)))?;
        let (history, warnings) = crate::key_history::check_at_start(ledger, &keys.keys(), &root)
            .map_err(ServerError::KeyFile)?;
        for w in warnings {
            tracing::warn!("{w}");
        }
        keys.remember(history);
        let exports_dir = layout.exports();
        let exports = crate::exports::Exports::open(exports_dir.clone(), config.exports.clone())
            .map_err(|e| ServerError::Exports(format!("{}: {e}", exports_dir.display())))?;
        let witness = if config.witnesses.peers.is_empty() {
            None
        } else {
            let status = crate::witness::WitnessStatus::load(&config.witnesses, ledger)
                .map_err(ServerError::Witness)?;
            Some(Arc::new(std::sync::Mutex::new(status)))
        };
        Ok(Started {
            keys,
            exports,
            witness,
        })
    }

    /// Closes an app that will not serve: what is logged here comes second to the error
    /// that stopped it, which the caller returns.
    async fn close_after_refusal(self) {
        if let Err(e) = self.close().await {
            tracing::error!(error = %e, "closing the ledger of a refused start");
        }
    }

    /// The routes, ready to serve requests.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Stops taking appends, commits what is queued, records the last key changes and
    /// closes the ledger. Requests still running keep it open until they end.
    pub async fn close(self) -> Result<(), ServerError> {
        let App { state, router } = self;
        state.shutting_down.store(true, Ordering::Release);
        drop(router);
        state.keys.refresh();
        if let Err(e) = state.record_key_changes().await {
            tracing::error!(error = %e.message, "cannot record the last key changes; the next start will");
        }
        let st = state.clone();
        tokio::task::spawn_blocking(move || st.appender.close())
            .await
            .map_err(|e| ServerError::Audit(e.to_string()))?;
        match Arc::try_unwrap(state) {
            Ok(state) => match Arc::try_unwrap(state.ledger) {
                Ok(ledger) => tokio::task::spawn_blocking(move || ledger.close())
                    .await
                    .map_err(|e| ServerError::Audit(e.to_string()))??,
                Err(_) => tracing::warn!("the ledger is still shared; it closes when released"),
            },
            Err(_) => {
                tracing::warn!("requests are still running; the ledger closes when they end")
            }
        }
        Ok(())
    }
}

impl Server {
    /// Binds the address and loads the keys; nothing is served until [`Server::run`].
    pub async fn bind(config: ServerConfig, ledger: Ledger) -> Result<Self, ServerError> {
        let (tls, listener) = match listen(&config).await {
            Ok(bound) => bound,
            Err(error) => {
                let ledger = Box::new(ledger);
                return Err(Refusal { error, ledger }.release().await);
            }
        };
        let app = match App::build(&config, ledger) {
            Ok(app) => app,
            Err(refused) => return Err(refused.release().await),
        };
        Ok(Server {
            listener,
            app,
            tls,
            config,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// True while no API key exists: every request is served as admin.
    pub fn open_mode(&self) -> bool {
        self.app.state.keys.open_mode()
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` completes, then drains and closes the ledger.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Server {
            listener,
            app,
            tls,
            config,
        } = self;
        if let Err(e) = record_key_changes_at_start(&app.state).await {
            app.close_after_refusal().await;
            return Err(e);
        }
        let (state, router) = (app.state.clone(), app.router.clone());
        let watcher = tokio::spawn(watch_keys(state.clone()));
        // The dashboard's open conflicts, counted once now and after every run and resolution.
        tokio::spawn({
            let state = state.clone();
            async move { crate::checks::refresh_open(&state).await }
        });
        let trimmer = tokio::spawn(return_free_memory(state.budget.clone()));
        let retention = config
            .retention_every
            .map(|every| tokio::spawn(apply_retention(state.clone(), every)));
        let checking = config
            .checks
            .every
            .map(|every| tokio::spawn(crate::checks::schedule(state.clone(), every)));
        let witnessing = match &state.witness {
            Some(status) => crate::witness::run_submitter(
                state.witness_config.clone(),
                state.ledger.clone(),
                status.clone(),
            ),
            None => Vec::new(),
        };
        let (stop_bus, bus_stopped) = tokio::sync::watch::channel(false);
        let bus = match (&config.nats, &state.bus) {
            (Some(nats), Some(status)) => Some(tokio::spawn(crate::nats::consume(
                state.clone(),
                nats.clone(),
                status.clone(),
                bus_stopped,
            ))),
            _ => None,
        };
        let graceful = GracefulShutdown::new();
        let slots = Arc::new(Semaphore::new(config.connections_max));
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors or a connection reset before accept: keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                metrics::counter!("sealog_connections_refused_total").increment(1);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let service = TowerToHyperService::new(
                router
                    .clone()
                    .layer(axum::Extension(crate::access::Peer(peer.ip()))),
            );
            let mut http = http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(config.header_timeout)
                .max_buf_size(HEADER_BYTES_MAX)
                .keep_alive(true);
            let watch = graceful.watcher();
            let tls = tls.clone();
            let handshake_timeout = config.header_timeout;
            tokio::spawn(async move {
                let _slot = slot;
                match tls {
                    None => {
                        let conn = http.serve_connection(TokioIo::new(stream), service);
                        let _ = watch.watch(conn).await;
                    }
                    Some(acceptor) => {
                        let Ok(Ok(stream)) =
                            tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await
                        else {
                            return;
                        };
                        let conn = http.serve_connection(TokioIo::new(stream), service);
                        let _ = watch.watch(conn).await;
                    }
                }
            });
        }
        tracing::info!("stopping: no new connections; draining in-flight requests");
        state.shutting_down.store(true, Ordering::Release);
        // The consumer settles the batch it has in flight before the append queue closes.
        let _ = stop_bus.send(true);
        if let Some(b) = bus
            && tokio::time::timeout(config.shutdown_grace, b)
                .await
                .is_err()
        {
            tracing::warn!("the NATS consumer was still settling after the grace period");
        }
        drop(listener);
        watcher.abort();
        trimmer.abort();
        // Awaited so their shares of the state are gone before the ledger closes.
        let _ = watcher.await;
        if let Some(r) = retention {
            r.abort();
            let _ = r.await;
        }
        if let Some(c) = checking {
            c.abort();
            let _ = c.await;
        }
        for w in witnessing {
            w.abort();
            let _ = w.await;
        }
        if tokio::time::timeout(config.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("some connections were still open after the grace period");
        }
        let failed = state.store_failure();
        drop((router, state));
        let closed = app.close().await;
        tracing::info!("stopped");
        match (failed, closed) {
            (Some(f), closed) => {
                if let Err(e) = closed {
                    tracing::error!(error = %e, "closing the failed store");
                }
                Err(ServerError::StoreFailed(f))
            }
            (None, closed) => closed,
        }
    }
}

/// What [`App::start_checks`] found and opened.
struct Started {
    keys: KeyRing,
    exports: crate::exports::Exports,
    witness: Option<Arc<std::sync::Mutex<crate::witness::WitnessStatus>>>,
}

/// A start refused, with the ledger it was given.
struct Refusal {
    error: ServerError,
    ledger: Box<Ledger>,
}

impl Refusal {
    /// Lets the ledger go off the async threads and gives the error back. A ledger on
    /// PostgreSQL owns a runtime of its own, and a runtime dropped on an async task panics,
    /// which would replace the refusal's message (what the operator must read) by a panic.
    async fn release(self) -> ServerError {
        let Refusal { error, ledger } = self;
        if let Err(e) = tokio::task::spawn_blocking(move || drop(ledger)).await {
            tracing::error!(error = %e, "releasing the ledger of a refused start");
        }
        error
    }
}

/// The listening socket, and TLS when configured.
async fn listen(config: &ServerConfig) -> Result<(Option<TlsAcceptor>, TcpListener), ServerError> {
    let tls = config.tls.as_ref().map(load_tls).transpose()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    Ok((tls, listener))
}

/// Records the key changes not yet in the log. A database that cannot be reached just now
/// (a restart, a fail-over) is no reason to stop: the changes stay pending, every request
/// records them before it is served, and the key watcher retries each second.
async fn record_key_changes_at_start(state: &AppState) -> Result<(), ServerError> {
    match state.record_key_changes().await {
        Err(e) if e.status == axum::http::StatusCode::SERVICE_UNAVAILABLE => {
            tracing::warn!(error = %e.message, "cannot record key changes yet; they stay pending");
            Ok(())
        }
        other => other.map_err(|e| ServerError::Audit(e.message)),
    }
}

async fn watch_keys(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(KEY_WATCH_INTERVAL);
    loop {
        tick.tick().await;
        state.keys.refresh();
        if let Err(e) = state.record_key_changes().await {
            tracing::error!(error = %e.message, "cannot record key changes yet");
        }
    }
}

/// Applies retention every `every`, measured by the server's clock, as the server's own act.
async fn apply_retention(state: Arc<AppState>, every: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tick.tick().await;
        let ledger = state.ledger.clone();
        let done = tokio::task::spawn_blocking(move || {
            let now = crate::keys::now_nanos();
            let act = sealog_ledger::Act {
                actor: serde_json::json!({"type": "system", "id": "retention-schedule"}),
                time: sealog_model::time::format_micros(now),
                source: "sealog-server",
            };
            ledger.apply_retention(now, false, &act)
        })
        .await;
        match done {
            Ok(Ok(r)) => tracing::info!(
                pruned = r.pruned,
                quarantine_pruned = r.quarantine_pruned,
                held = r.held,
                seq = r.seq,
                "retention applied"
            ),
            Ok(Err(e)) => tracing::error!(error = %e, "retention could not be applied"),
            Err(e) => tracing::error!(error = %e, "retention task failed"),
        }
    }
}

/// Gives freed memory back to the system after large requests, at most once a second (see
/// [`crate::budget::return_free_memory`] for why it is needed): on the next few ticks after
/// one ended, as work it caused (the store's flushes, answers still being sent) frees more.
async fn return_free_memory(budget: Arc<crate::budget::Budget>) {
    let mut tick = tokio::time::interval(TRIM_INTERVAL);
    let mut due = 0;
    loop {
        tick.tick().await;
        if budget.take_trim_request() {
            due = TRIMS_AFTER_LARGE_REQUEST;
        }
        if due > 0 {
            due -= 1;
            let _ = tokio::task::spawn_blocking(crate::budget::return_free_memory).await;
        }
    }
}

fn load_tls(files: &TlsFiles) -> Result<TlsAcceptor, ServerError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| ServerError::Tls(format!("{}: {e}", files.cert.display())))?;
    if certs.is_empty() {
        return Err(ServerError::Tls(format!(
            "{}: no certificate found",
            files.cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| ServerError::Tls(format!("{}: {e}", files.key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
