//! Witnessing (C2SP tlog-witness, tlog-cosignature): a witness server that cosigns a log's
//! checkpoints only when they extend what it cosigned before, and the log side that submits
//! each new checkpoint to the witnesses it is configured with and keeps their cosignatures.

mod state;
mod submit;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use sealog_merkle::witness::{AddCheckpoint, Refusal};

pub use state::{AddError, WitnessError, WitnessState, load_or_create_key};
pub use submit::{WitnessConfig, WitnessPeer};
pub(crate) use submit::{WitnessStatus, run_submitter};

/// Requests larger than this are not checkpoints with a proof.
const REQUEST_BYTES_MAX: usize = 64 * 1024;

/// The witness's routes: `POST /add-checkpoint`.
pub fn router(state: Arc<WitnessState>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such route\n") })
        .layer(axum::extract::DefaultBodyLimit::max(REQUEST_BYTES_MAX))
        .with_state(state)
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn add_checkpoint(State(w): State<Arc<WitnessState>>, body: Bytes) -> Response {
    let Ok(body) = std::str::from_utf8(&body) else {
        return text(StatusCode::BAD_REQUEST, "the body is not UTF-8\n".into());
    };
    let req = match AddCheckpoint::parse(body) {
        Ok(r) => r,
        Err(m) => return text(StatusCode::BAD_REQUEST, format!("{m}\n")),
    };
    let now = crate::keys::now_nanos().max(0) as u64 / 1_000_000_000;
    let answer = tokio::task::spawn_blocking(move || w.add_checkpoint(&req, now)).await;
    match answer {
        Ok(Ok(lines)) => text(StatusCode::OK, lines),
        Ok(Err(AddError::Refused(Refusal::Conflict { size, why }))) => {
            tracing::warn!(%why, "add-checkpoint refused (409)");
            (
                StatusCode::CONFLICT,
                [(header::CONTENT_TYPE, "text/x.tlog.size")],
                format!("{size}\n"),
            )
                .into_response()
        }
        Ok(Err(AddError::Refused(r))) => {
            tracing::warn!(
                status = r.status(),
                why = r.message(),
                "add-checkpoint refused"
            );
            let status = StatusCode::from_u16(r.status()).expect("a valid status");
            text(status, format!("{}\n", r.message()))
        }
        Ok(Err(AddError::Store(e))) => {
            tracing::error!(error = %e, "cannot store the witness state");
            text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n"))
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

/// Serves the witness on `listen` until `shutdown` completes.
pub async fn serve(
    listen: SocketAddr,
    state: Arc<WitnessState>,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WitnessError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| WitnessError(format!("cannot listen on {listen}: {e}")))?;
    on_bound(
        listener
            .local_addr()
            .map_err(|e| WitnessError(e.to_string()))?,
    );
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| WitnessError(e.to_string()))
}

/// How long a submission to one witness may take.
pub(crate) const SUBMIT_TIMEOUT: Duration = Duration::from_secs(10);
