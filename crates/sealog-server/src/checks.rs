//! Consistency checks in the server (PRODUCT §11): a run on a schedule and on request (one
//! at a time), its findings in the metrics, and an alert to a webhook for each new finding at
//! or above a criticality — retried, and each delivery (or giving up) recorded as a
//! `sealog.alert_delivered` record.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use sealog_check::{Criticality, Finding, RunOptions, RunReport, Status};
use sealog_ledger::{Act, Ledger};

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Clone)]
pub struct CheckConfig {
    /// Run the checks this often (never when `None`); the first run is one period after
    /// the start.
    pub every: Option<Duration>,
    /// Where alerts are POSTed (JSON), if anywhere.
    pub webhook: Option<String>,
    /// New findings at or above this criticality are alerted.
    pub alert_on: Criticality,
    /// Deliveries tried per alert before giving up, and the wait before the first retry
    /// (doubling).
    pub alert_attempts: u32,
    pub alert_backoff: Duration,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            every: Some(Duration::from_secs(3600)),
            webhook: None,
            alert_on: Criticality::High,
            alert_attempts: 3,
            alert_backoff: Duration::from_secs(1),
        }
    }
}

/// The server's checker: its configuration and the lock that keeps runs one at a time.
pub(crate) struct Checks {
    pub(crate) config: CheckConfig,
    running: tokio::sync::Mutex<()>,
    /// Unresolved conflicts by criticality, as last counted (the gauge's figures).
    pub(crate) open: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Checks {
    pub(crate) fn new(config: CheckConfig) -> Self {
        Checks {
            config,
            running: tokio::sync::Mutex::new(()),
            open: Default::default(),
        }
    }
}

/// What a run on request is limited to.
#[derive(Debug, Default, Clone)]
pub(crate) struct RunRequest {
    pub(crate) rules: Vec<String>,
    pub(crate) subject: Option<String>,
    pub(crate) full: bool,
}

pub(crate) fn to_api(e: sealog_check::CheckError) -> ApiError {
    use sealog_check::CheckError as E;
    match e {
        E::Store(s) => s.into(),
        E::Invalid(m) => ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "CHECK_REFUSED",
            m,
        ),
        E::NotFound(m) => ApiError::not_found(m),
        E::Settled(m) => ApiError::new(axum::http::StatusCode::CONFLICT, "ALREADY_RESOLVED", m),
        other => ApiError::internal(other.to_string()),
    }
}

/// Runs the checks now (after any run in progress), then updates the metrics and sends the
/// alerts of its new findings.
pub(crate) async fn run_now(
    state: &Arc<AppState>,
    request: RunRequest,
    act: Act<'static>,
) -> Result<RunReport, ApiError> {
    let _one_at_a_time = state.checks.running.lock().await;
    let ledger = state.ledger.clone();
    let report = tokio::task::spawn_blocking(move || {
        sealog_check::run(
            &ledger,
            &RunOptions {
                rules: request.rules,
                subject: request.subject,
                full: request.full,
                now: crate::keys::now_nanos(),
                act,
                domain: None,
            },
        )
    })
    .await
    .map_err(ApiError::internal)?;
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            metrics::counter!("sealog_check_runs_total", "outcome" => "failed").increment(1);
            return Err(to_api(e));
        }
    };
    let outcome = if report.integrity.ok {
        "ok"
    } else {
        "integrity_failed"
    };
    metrics::counter!("sealog_check_runs_total", "outcome" => outcome).increment(1);
    for f in report.new_findings() {
        metrics::counter!("sealog_check_findings_total", "criticality" => f.criticality.as_str())
            .increment(1);
    }
    refresh_open(state).await;
    let alerts: Vec<Finding> = report
        .new_findings()
        .filter(|f| f.criticality >= state.checks.config.alert_on)
        .cloned()
        .collect();
    if let (Some(url), false) = (&state.checks.config.webhook, alerts.is_empty()) {
        tokio::spawn(deliver_all(
            state.ledger.clone(),
            state.checks.config.clone(),
            url.clone(),
            alerts,
        ));
    }
    Ok(report)
}

/// Sets the gauge of unresolved conflicts by criticality from the log.
pub(crate) async fn refresh_open(state: &Arc<AppState>) {
    let ledger = state.ledger.clone();
    let counted = tokio::task::spawn_blocking(move || {
        let mut counts = std::collections::BTreeMap::new();
        for c in sealog_check::conflicts(&ledger, &sealog_check::Filter::default())? {
            if c.status() != Status::Resolved {
                *counts.entry(c.criticality().to_string()).or_insert(0u64) += 1;
            }
        }
        Ok::<_, sealog_check::CheckError>(counts)
    })
    .await;
    if let Ok(Ok(counts)) = counted {
        for c in Criticality::ALL {
            let n = counts.get(c.as_str()).copied().unwrap_or(0);
            metrics::gauge!("sealog_conflicts_open", "criticality" => c.as_str()).set(n as f64);
        }
        *state.checks.open.lock().expect("checks lock") = counts;
    }
}

/// Runs the checks every `every`, as the server's own act.
pub(crate) async fn schedule(state: Arc<AppState>, every: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let act = Act {
            actor: json!({"type": "system", "id": "check-schedule"}),
            time: crate::keys::now_text(),
            source: "sealog-server",
        };
        match run_now(&state, RunRequest::default(), act).await {
            Ok(r) => tracing::info!(
                run = %r.run_id,
                from = r.from_size,
                to = r.tree_size,
                new_findings = r.new_findings().count(),
                integrity = r.integrity.ok,
                "checks ran"
            ),
            Err(e) => tracing::error!(error = %e.message, "checks could not run"),
        }
    }
}

/// The webhook target as records name it: without its query string or credentials, which
/// may carry a secret.
fn target_of(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    match no_query.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{rest}")
        }
        None => no_query.to_string(),
    }
}

async fn deliver_all(ledger: Arc<Ledger>, config: CheckConfig, url: String, alerts: Vec<Finding>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    for f in alerts {
        let alert_id = {
            let mut h = Sha256::new();
            h.update(f.conflict_id.as_bytes());
            h.update(b"\0");
            h.update(target_of(&url).as_bytes());
            format!("alert-{}", &hex::encode(h.finalize())[..24])
        };
        let body = json!({
            "alert_id": alert_id,
            "conflict": f.to_json(),
        })
        .to_string();
        let mut wait = config.alert_backoff;
        let mut attempts = 0;
        let mut last: (Option<u16>, Option<String>) = (None, None);
        let mut delivered = false;
        while attempts < config.alert_attempts.max(1) {
            attempts += 1;
            let (agent, url, body) = (agent.clone(), url.clone(), body.clone());
            let answer = tokio::task::spawn_blocking(move || {
                agent
                    .post(&url)
                    .content_type("application/json")
                    .send(body.as_bytes())
                    .map(|r| r.status().as_u16())
                    .map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            match answer {
                Ok(status) if (200..300).contains(&status) => {
                    last = (Some(status), None);
                    delivered = true;
                    break;
                }
                Ok(status) => last = (Some(status), Some(format!("answered {status}"))),
                Err(e) => last = (None, Some(e)),
            }
            if attempts < config.alert_attempts {
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2);
            }
        }
        metrics::counter!("sealog_alerts_total", "delivered" => if delivered { "true" } else { "false" })
            .increment(1);
        if !delivered {
            tracing::error!(alert = %alert_id, error = ?last.1, "an alert could not be delivered");
        }
        let mut data = json!({
            "alert_id": alert_id,
            "conflict_id": f.conflict_id,
            "target": target_of(&url),
            "delivered": delivered,
            "attempts": attempts,
            "status": last.0,
        });
        if let Some(e) = last.1.filter(|_| !delivered) {
            data["error"] = Value::String(crate::access::clip(&e));
        }
        let act = Act {
            actor: json!({"type": "system", "id": "alerts"}),
            time: crate::keys::now_text(),
            source: "sealog-server",
        };
        let (l, tenant, id) = (
            ledger.clone(),
            f.tenant.clone(),
            format!("{alert_id}:{attempts}"),
        );
        let recorded = tokio::task::spawn_blocking(move || {
            l.append_own(id, "sealog.alert_delivered", &act, tenant.as_deref(), data)
        })
        .await;
        match recorded {
            Ok(Ok(Ok(_))) => {}
            other => {
                tracing::error!(alert = %alert_id, result = ?other.map(|r| r.map(|x| x.is_ok())), "an alert's delivery could not be recorded")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::target_of;

    #[test]
    fn targets_are_named_without_secrets() {
        assert_eq!(
            target_of("https://user:pw@hooks.example/alerts?token=s3cret"),
            "https://hooks.example/alerts"
        );
        assert_eq!(target_of("http://127.0.0.1:9/a"), "http://127.0.0.1:9/a");
    }
}
