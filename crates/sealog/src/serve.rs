//! `sealog serve`: the HTTP server over the data directory's ledger (canonical and
//! quarantine logs).
//!
//! The first line on standard output is `listening on http://ADDR` (or `https://`), so a
//! supervisor or a test can start it on port 0 and learn the port. Logs go to standard error.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use sealog_ledger::Ledger;
use sealog_server::{LogFormat, Server, ServerConfig, TlsFiles};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    /// PEM certificate chain; with --tls-key, serve HTTPS (rustls).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Log format on standard error.
    #[arg(long, value_enum, default_value_t = LogArg::Text)]
    log_format: LogArg,
    /// Largest request body in bytes (one event is at most 1 MiB regardless).
    #[arg(long, default_value_t = 32 << 20)]
    body_bytes_max: usize,
    /// Bytes of request bodies the server holds in memory at once, all requests together
    /// (each append also reserves 256 bytes per event for its result); a request past it gets
    /// 503 with Retry-After instead of being read. A body larger than this is refused (413).
    #[arg(long, default_value_t = 256 << 20)]
    buffered_bytes_max: usize,
    /// Seconds a client has to send a request body.
    #[arg(long, default_value_t = 30.0)]
    body_timeout_s: f64,
    /// Seconds a request of an ordered stream (`Sealog-Stream`) waits for the one before it;
    /// then it, and the rest of its stream, are refused (409 STREAM_ORDER).
    #[arg(long, default_value_t = 10.0)]
    stream_wait_s: f64,
    /// Seconds a client has to send request headers (and finish a TLS handshake).
    #[arg(long, default_value_t = 10.0)]
    header_timeout_s: f64,
    /// Open connections at most; more are closed at once.
    #[arg(long, default_value_t = 4096)]
    connections_max: usize,
    /// Append requests that may wait; more get 503 with Retry-After.
    #[arg(long, default_value_t = 8192)]
    append_queue_max: usize,
    /// Threads handing combined appends to the ledger.
    #[arg(long, default_value_t = 4)]
    append_threads: usize,
    /// Requests one API key may have in flight; more get 429 with Retry-After.
    #[arg(long, default_value_t = 1024)]
    key_inflight_max: usize,
    /// Serve /metrics without an API key.
    #[arg(long)]
    public_metrics: bool,
    /// Seconds a stop waits for in-flight requests.
    #[arg(long, default_value_t = 30.0)]
    shutdown_grace_s: f64,
    /// Exports of more records than this wait until an admin other than the one who asked
    /// approves them (POST /v1/exports/{id}/approve, `sealog export approve ID`).
    #[arg(long, default_value_t = 1_000_000)]
    export_approval_above: u64,
    /// Exports of more records than this run in the background (answered 202, with progress).
    #[arg(long, default_value_t = 10_000)]
    export_background_above: u64,
    /// Hours an export made through the server is kept before its files are removed.
    #[arg(long, default_value_t = 24.0)]
    export_ttl_hours: f64,
    /// Apply retention this often (ISO 8601 duration in days, hours, minutes or seconds:
    /// `P1D`, `PT6H`); never without it.
    #[arg(long, value_name = "DURATION")]
    retention_every: Option<String>,
    /// A witness to submit each new checkpoint to (C2SP tlog-witness): its URL prefix and
    /// its cosignature verifier key (or a file holding it). Repeatable.
    #[arg(long = "witness", value_name = "URL=VKEY")]
    witnesses: Vec<String>,
    /// Cosignatures that make a checkpoint final, the one `/checkpoint` serves (default: every
    /// witness given).
    #[arg(long, value_name = "N")]
    witness_quorum: Option<usize>,
    /// Run the consistency checks this often (ISO 8601 duration: `PT1H`, `PT15M`), or `off`;
    /// the first run is one period after the start.
    #[arg(long, value_name = "DURATION", default_value = "PT1H")]
    check_every: String,
    /// POST an alert (JSON) here for each new finding at or above --alert-on; each delivery,
    /// retried, is recorded.
    #[arg(long, value_name = "URL")]
    alert_webhook: Option<String>,
    /// The lowest criticality alerted: critical, high, medium, low or info.
    #[arg(long, value_name = "CRITICALITY", default_value = "high")]
    alert_on: String,
    /// Also ingest from NATS JetStream (`nats://HOST:PORT`): a durable pull consumer whose
    /// messages go through the same checks and group commit as HTTP appends, each
    /// acknowledged once durable.
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    /// The JetStream stream consumed (created over --nats-subjects when missing).
    #[arg(long, value_name = "NAME", default_value = "AUDIT", requires = "nats")]
    nats_stream: String,
    /// The subjects consumed.
    #[arg(
        long,
        value_name = "SUBJECTS",
        default_value = "audit.>",
        requires = "nats"
    )]
    nats_subjects: String,
    /// The durable consumer's name.
    #[arg(long, value_name = "NAME", default_value = "sealog", requires = "nats")]
    nats_consumer: String,
    /// Every event consumed must be this tenant's; others are quarantined as TENANT_MISMATCH.
    #[arg(
        long,
        value_name = "TENANT",
        requires = "nats",
        conflicts_with = "nats_tenant_subject"
    )]
    nats_tenant: Option<String>,
    /// Which subject token names the tenant (`audit.<tenant>.>`); an event whose tenant is
    /// not its subject's is quarantined as TENANT_MISMATCH.
    #[arg(long, value_name = "PATTERN", requires = "nats")]
    nats_tenant_subject: Option<String>,
    /// Deliveries a correction whose target has not arrived gets (each after
    /// --nats-retry-delay-s) before it is quarantined.
    #[arg(long, value_name = "N", default_value_t = 5, requires = "nats")]
    nats_deliveries_max: u32,
    /// Seconds before a deferred or failed message is delivered again.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0, requires = "nats")]
    nats_retry_delay_s: f64,
    /// Messages committed together at most.
    #[arg(long, value_name = "N", default_value_t = 1000, requires = "nats")]
    nats_batch_max: usize,
    /// Seconds the bus waits for an acknowledgement before delivering a message again (set
    /// when the consumer is created; a message whose server died waits this long).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 30.0,
        requires = "nats"
    )]
    nats_ack_wait_s: f64,
}

fn nats(a: &Args) -> anyhow::Result<Option<sealog_server::NatsConfig>> {
    let Some(url) = &a.nats else {
        return Ok(None);
    };
    let mut c = sealog_server::NatsConfig::new(url, &a.nats_stream, &a.nats_subjects);
    c.consumer = a.nats_consumer.clone();
    c.tenancy = match (&a.nats_tenant, &a.nats_tenant_subject) {
        (Some(t), _) => sealog_server::BusTenancy::Fixed(t.clone()),
        (None, Some(p)) => sealog_server::BusTenancy::FromSubject(
            sealog_server::SubjectPattern::parse(p)
                .map_err(|m| anyhow::anyhow!("--nats-tenant-subject {m}"))?,
        ),
        (None, None) => sealog_server::BusTenancy::Any,
    };
    if a.nats_deliveries_max == 0 || a.nats_batch_max == 0 {
        anyhow::bail!("--nats-deliveries-max and --nats-batch-max must be at least 1");
    }
    c.deliveries_max = a.nats_deliveries_max;
    c.retry_delay = secs(a.nats_retry_delay_s, "nats-retry-delay-s")?;
    c.batch_max = a.nats_batch_max;
    c.ack_wait = secs(a.nats_ack_wait_s, "nats-ack-wait-s")?;
    if c.ack_wait.is_zero() {
        anyhow::bail!("--nats-ack-wait-s must be positive");
    }
    Ok(Some(c))
}

fn witnesses(a: &Args) -> anyhow::Result<sealog_server::witness::WitnessConfig> {
    let peers = crate::witness::peers(&a.witnesses)?;
    let quorum = a.witness_quorum.unwrap_or(0);
    if a.witness_quorum.is_some() && (quorum == 0 || quorum > peers.len()) {
        anyhow::bail!(
            "--witness-quorum {quorum}: give between 1 and the {} witnesses given",
            peers.len()
        );
    }
    Ok(sealog_server::witness::WitnessConfig { peers, quorum })
}

/// A schedule's period: days and seconds only, since a month has no fixed length.
fn every(flag: &str, text: &str) -> anyhow::Result<Duration> {
    let p =
        sealog_model::time::Period::parse(text).map_err(|m| anyhow::anyhow!("--{flag}: {m}"))?;
    if p.months != 0 {
        anyhow::bail!("--{flag} {text}: give days, hours, minutes or seconds (P1D, PT6H)");
    }
    let secs = u64::from(p.days) * 86_400 + p.seconds;
    if secs == 0 {
        anyhow::bail!("--{flag} {text}: must be longer than zero");
    }
    Ok(Duration::from_secs(secs))
}

fn checks(a: &Args) -> anyhow::Result<sealog_server::CheckConfig> {
    let alert_on = sealog_check::Criticality::parse(&a.alert_on)
        .map_err(|m| anyhow::anyhow!("--alert-on: {m}"))?;
    if let Some(url) = &a.alert_webhook
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        anyhow::bail!("--alert-webhook {url}: give an http:// or https:// URL");
    }
    Ok(sealog_server::CheckConfig {
        every: match a.check_every.as_str() {
            "off" => None,
            text => Some(every("check-every", text)?),
        },
        webhook: a.alert_webhook.clone(),
        alert_on,
        ..Default::default()
    })
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogArg {
    Text,
    Json,
}

fn secs(s: f64, name: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| anyhow::anyhow!("--{name} must be a non-negative number of seconds"))
}

pub(crate) fn run(ledger: Ledger, a: &Args) -> anyhow::Result<ExitCode> {
    sealog_server::init_logging(match a.log_format {
        LogArg::Text => LogFormat::Text,
        LogArg::Json => LogFormat::Json,
    });
    if a.buffered_bytes_max == 0 {
        anyhow::bail!("--buffered-bytes-max must be positive: no request body could be read");
    }
    let config = ServerConfig {
        listen: a.listen,
        limits: sealog_server::Limits {
            body_bytes_max: a.body_bytes_max,
            buffered_bytes_max: a.buffered_bytes_max,
            body_timeout: secs(a.body_timeout_s, "body-timeout-s")?,
            stream_wait: secs(a.stream_wait_s, "stream-wait-s")?,
            ..Default::default()
        },
        header_timeout: secs(a.header_timeout_s, "header-timeout-s")?,
        connections_max: a.connections_max,
        append_threads: a.append_threads,
        append_queue_max: a.append_queue_max,
        tls: match (&a.tls_cert, &a.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
        key_inflight_max: a.key_inflight_max.max(1),
        public_metrics: a.public_metrics,
        shutdown_grace: secs(a.shutdown_grace_s, "shutdown-grace-s")?,
        exports: sealog_server::ExportConfig {
            approval_above: a.export_approval_above,
            background_above: a.export_background_above,
            ttl: secs(a.export_ttl_hours * 3600.0, "export-ttl-hours")?,
        },
        retention_every: a
            .retention_every
            .as_deref()
            .map(|t| every("retention-every", t))
            .transpose()?,
        checks: checks(a)?,
        witnesses: witnesses(a)?,
        nats: nats(a)?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sealog-http")
        .build()?;
    let json_logs = matches!(a.log_format, LogArg::Json);
    runtime.block_on(async move {
        // Handlers first: a stop requested as soon as the address is printed must be graceful.
        let stop = stop_signal()?;
        let server = Server::bind(config, ledger).await?;
        if server.open_mode() {
            let msg = "OPEN MODE: no API key exists, so every request is served as admin without authentication; create a key with `sealog keys create --role admin` to require keys";
            tracing::warn!("{msg}");
            // Said plainly too, unless standard error is for a collector's JSON only.
            if !json_logs {
                tell!("sealog: WARNING: {msg}");
            }
        }
        let scheme = if server.is_tls() { "https" } else { "http" };
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on {scheme}://{}", server.local_addr())?;
            out.flush()?;
        }
        tracing::info!(addr = %server.local_addr(), tls = server.is_tls(), "listening");
        server.run(stop).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM or SIGINT; the handlers are installed when this is called.
pub(crate) fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = int.recv() => tracing::info!("SIGINT"),
        }
    })
}
