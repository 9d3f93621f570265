//! The OpenAPI 3.1 description, generated from the handlers' annotations and the response
//! types below; the router is built from the same list, so a route cannot exist without
//! its description. `openapi.json` beside this crate's manifest is the checked-in copy, and a
//! test fails when it differs from what the code generates.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::routing::get;
use serde::Serialize;
use utoipa::openapi::OpenApi as Doc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

mod exact;

use crate::keys::Role;
use crate::routes::{
    conflicts, console, erasures, events, exports, holds, integrity, keys, ops, quarantine,
    records, reports, retention, subjects, tlog,
};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

/// What retention found due (by log and type), and what an application did.
#[derive(Serialize, ToSchema)]
pub(crate) struct RetentionReportBody {
    #[schema(format = DateTime)]
    pub now: String,
    pub dry_run: bool,
    pub due: Vec<RetentionDue>,
    /// Canonical records pruned (in a dry run: that would be).
    pub pruned: u64,
    pub quarantine_pruned: u64,
    /// Records past their retention that a legal hold keeps.
    pub held: u64,
    pub payloads_deleted: u64,
    /// The `audit.retention_applied` record (absent in a dry run).
    pub seq: Option<u64>,
    pub record_id: Option<String>,
    /// More is due than one application prunes: apply again for the rest.
    pub more: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RetentionDue {
    /// `canonical` or `quarantine`.
    pub log: String,
    pub event_type: String,
    /// ISO 8601 duration, or `forever`.
    pub retention: String,
    pub records: u64,
    pub held: u64,
    #[schema(format = DateTime)]
    pub oldest_ingested_at: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// Stable, machine-readable.
    pub code: String,
    pub message: String,
}

/// One event's result.
#[derive(Serialize, ToSchema)]
pub(crate) struct AppendResult {
    /// `appended`, `duplicate`, `quarantined` or `rejected`.
    pub status: String,
    pub seq: Option<u64>,
    pub record_id: Option<String>,
    /// For `quarantined`: the quarantine record's id.
    pub quarantine_id: Option<String>,
    /// For `quarantined`: INCOMPLETE_PROVENANCE, SCHEMA_VIOLATION, UNKNOWN_EVENT_TYPE,
    /// FORBIDDEN_FIELD, MISSING_SUPERSEDES_LINK, INVALID_SUPERSEDES_LINK or
    /// STALE_SUPERSEDES_LINK.
    pub reason_code: Option<String>,
    /// For INCOMPLETE_PROVENANCE: the absent fields as dotted paths.
    pub missing_fields: Option<Vec<String>>,
    /// For SCHEMA_VIOLATION: `{pointer, message}` per violation.
    pub violations: Option<Vec<serde_json::Value>>,
    /// For FORBIDDEN_FIELD: the paths of the forbidden fields (their content is stored nowhere).
    pub forbidden_fields: Option<Vec<String>>,
    /// For `rejected`: code, message and, when there is one, the JSON pointer `field`.
    pub error: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AppendResults {
    pub results: Vec<AppendResult>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RecordsPage {
    /// Records in seq order, each RFC 8785 JSON of the event plus seq, record_id, ingested_at.
    pub records: Vec<serde_json::Value>,
    /// Pass as `cursor` for the next page; null when there are no more.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct InclusionProof {
    pub leaf_index: u64,
    pub tree_size: u64,
    /// Base64 root hash of the tree of `tree_size` leaves.
    pub root: String,
    /// Base64 RFC 9162 leaf hash of the record.
    pub leaf_hash: String,
    /// Base64 audit path.
    pub hashes: Vec<String>,
    /// The signed checkpoint note, when `tree_size` is the latest checkpoint's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// Base64 of the record as stored (the bytes `leaf_hash` covers), when it was named by
    /// record_id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    pub from_root: String,
    pub to_root: String,
    pub hashes: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct KeyInfo {
    pub id: String,
    pub roles: Vec<Role>,
    pub tenant: Option<String>,
    pub data_subject: Option<String>,
    pub label: Option<String>,
    pub created_at: String,
    pub created_by: String,
    pub revoked_at: Option<String>,
    pub revoked_by: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct KeyCreated {
    /// The secret: send as `Authorization: Bearer KEY`. Shown once, stored only as a hash.
    pub key: String,
    #[serde(flatten)]
    pub info: KeyInfo,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct KeyList {
    pub keys: Vec<KeyInfo>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Ready {
    /// `ready` or `not_ready`.
    pub status: String,
    /// `keys`, or `open` while no API key exists.
    pub auth: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    pub uptime_s: u64,
    pub reasons: Vec<String>,
    /// With witnesses: each one's newest cosigned size and last error, the quorum and the
    /// newest final checkpoint's size. A witness that is down delays finality; it never
    /// makes the server unready.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub witnessing: Option<serde_json::Value>,
    /// With a NATS consumer: its state (`connecting`, `consuming`, `disconnected`), the
    /// messages the bus still holds for it (`pending`), its counters since the start and its
    /// last error. Like a witness, a bus that is down never makes the server unready: HTTP
    /// appends go on, and the consumer resumes by itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub nats: Option<serde_json::Value>,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut Doc) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key from `sealog keys create`; not needed in open mode (no key exists yet)",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sealog",
        description = "An append-only, tamper-evident audit log. Every error body is {\"error\":{\"code\",\"message\"}}.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(tlog::tile, exports::named_file),
    components(schemas(ErrorBody, ErrorDetail, Role)),
    modifiers(&BearerAuth),
    tags(
        (name = "events", description = "Ingest"),
        (name = "records", description = "Canonical records and subjects' rebuilt state within the key's reach"),
        (name = "quarantine", description = "Events that could not become canonical, with their reason (auditor)"),
        (name = "proofs", description = "RFC 9162 proofs"),
        (name = "tlog", description = "C2SP tlog-checkpoint and tlog-tiles"),
        (name = "keys", description = "API keys (admin)"),
        (name = "exports", description = "Deterministic, self-proving exports and evidence bundles (auditor, admin; a subject key of its own records)"),
        (name = "checks", description = "Consistency checks and the conflicts they found (auditor, admin)"),
        (name = "reports", description = "Reports counted from the index over a window (auditor, admin)"),
        (name = "console", description = "The web console's session (an API key exchanged for an HttpOnly cookie and a CSRF token), integrity panel and dashboard"),
        (name = "ops", description = "Health, readiness, metrics"),
    )
)]
struct ApiDoc;

/// The routes and their description, from one list. `public_metrics` serves `/metrics`
/// without a key.
pub(crate) fn api(public_metrics: bool) -> (Router<Arc<AppState>>, Doc) {
    let mut version = ApiDoc::openapi();
    version.info.version = env!("CARGO_PKG_VERSION").to_string();
    let (router, doc) = OpenApiRouter::with_openapi(version)
        .routes(routes!(events::append))
        .routes(routes!(records::query_records))
        .routes(routes!(records::get_record))
        .routes(routes!(subjects::state))
        .routes(routes!(subjects::timeline))
        .routes(routes!(quarantine::query))
        .routes(routes!(quarantine::payload))
        .routes(routes!(tlog::inclusion))
        .routes(routes!(tlog::consistency))
        .routes(routes!(tlog::checkpoint))
        .routes(routes!(tlog::verifier_key))
        .routes(routes!(keys::create, keys::list))
        .routes(routes!(keys::revoke))
        .routes(routes!(exports::create))
        .routes(routes!(exports::file))
        .routes(routes!(exports::status))
        .routes(routes!(exports::manifest))
        .routes(routes!(exports::approve))
        .routes(routes!(erasures::erase))
        .routes(routes!(holds::place, holds::list))
        .routes(routes!(holds::release))
        .routes(routes!(retention::status))
        .routes(routes!(retention::apply))
        .routes(routes!(conflicts::list))
        .routes(routes!(conflicts::resolve))
        .routes(routes!(conflicts::run_checks))
        .routes(routes!(reports::report))
        .routes(routes!(
            console::sign_in,
            console::current,
            console::sign_out
        ))
        .routes(routes!(integrity::integrity))
        .routes(routes!(integrity::start_verify))
        .routes(routes!(integrity::dashboard))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::openapi))
        .split_for_parts();
    let metrics = if public_metrics {
        get(ops::metrics_public)
    } else {
        get(ops::metrics)
    };
    let router = router
        .route("/tile/{*path}", get(tlog::tile))
        .route("/v1/exports/{id}/files/{*name}", get(exports::named_file))
        .route("/metrics", metrics)
        .route("/", get(console::index))
        .route("/console/{name}", get(console::asset));
    let mut doc = doc;
    // `/metrics` is routed by hand (its handler depends on configuration); describe it too.
    let (_, metrics_doc) = OpenApiRouter::<Arc<AppState>>::new()
        .routes(routes!(ops::metrics))
        .split_for_parts();
    doc.merge(metrics_doc);
    (router, doc)
}

/// The description as served at `/openapi.json` and checked in as `openapi.json`.
pub fn document_json() -> String {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(api(false).1).expect("the description serializes");
        complete(&mut doc);
        let mut text = serde_json::to_string_pretty(&doc).expect("a value serializes");
        text.push('\n');
        text
    })
    .clone()
}

/// Lays `exact`'s schemas over what the annotations generated.
fn complete(doc: &mut serde_json::Value) {
    use serde_json::json;
    let event = json!({"$ref": "#/components/schemas/Event"});
    // Each item of a batch is answered on its own (PRODUCT.md §4): a batch is taken when at
    // least one item is an event, and refused (422, with every item's reason) when none is.
    let batch = json!({
        "type": "array",
        "minItems": 1,
        "contains": event.clone(),
        "description": "Events, each answered in `results`: an item that is not an event is `rejected` with its reason while the others are appended",
    });
    doc["components"]["schemas"]["Event"] = exact::event();
    doc["components"]["schemas"]["JsonValue"] = exact::json_value();
    let content = &mut doc["paths"]["/v1/events"]["post"]["requestBody"]["content"];
    content["application/json"]["schema"] = json!({"oneOf": [event.clone(), batch.clone()]});
    content["application/cloudevents+json"]["schema"] = event;
    content["application/cloudevents-batch+json"]["schema"] = batch;
    doc["components"]["schemas"]["CreateKey"] = exact::create_key();
    for (path, release) in [("/v1/holds", false), ("/v1/holds/release", true)] {
        doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"] =
            exact::hold(release);
    }
    let axes = sealog_ledger::Packs::builtin();
    let axis_names = axes.axis_names();
    doc["components"]["schemas"]["CreateExport"] = exact::create_export(axis_names);
    for p in doc["paths"]["/v1/events"]["post"]["parameters"]
        .as_array_mut()
        .expect("the append describes its header")
    {
        if p["name"] == "Sealog-Stream" {
            p["schema"] = exact::stream_header();
        }
    }
    // What a new key's and a new export's ids lead to.
    doc["paths"]["/v1/keys"]["post"]["responses"]["201"]["links"] = json!({
        "revoke": {"operationId": "revoke", "parameters": {"id": "$response.body#/id"}},
    });
    let export_links = json!({
        "status": {"operationId": "export_status", "parameters": {"id": "$response.body#/id"}},
        "manifest": {"operationId": "manifest", "parameters": {"id": "$response.body#/id"}},
        "file": {"operationId": "file", "parameters": {"id": "$response.body#/id"}},
        "approve": {"operationId": "approve", "parameters": {"id": "$response.body#/id"}},
    });
    for status in ["201", "202"] {
        doc["paths"]["/v1/exports"]["post"]["responses"][status]["links"] = export_links.clone();
    }
    // Every keyed request takes one of its key's in-flight slots (429 past them), and every
    // one may append (its access record, or what it was for), so may meet a full append
    // queue, a stopping server or a store that refuses writes (503); both say when to retry.
    let retry_after = json!({
        "description": "seconds to wait before sending the request again",
        "schema": {"type": "integer", "minimum": 0},
    });
    let error = json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}});
    for item in doc["paths"].as_object_mut().expect("paths").values_mut() {
        for op in item.as_object_mut().expect("a path item").values_mut() {
            if op.get("security").is_none() {
                continue;
            }
            let responses = op["responses"].as_object_mut().expect("responses");
            for (status, description) in [
                (
                    "429",
                    "`TOO_MANY_REQUESTS`: this key has as many requests in flight as it may",
                ),
                (
                    "503",
                    "`BUSY` (the append queue is full), `SHUTTING_DOWN`, or `STORE_UNAVAILABLE`; nothing was acknowledged",
                ),
            ] {
                let r = responses
                    .entry(status)
                    .or_insert_with(|| json!({"description": description, "content": error}));
                r["headers"]["Retry-After"] = retry_after.clone();
            }
        }
    }
    // Pack axes are query parameters too (`axis.NAME`); they are not listed one by one, since
    // packs name them: a query string of every axis at its longest would pass any URI limit.
    let query = &mut doc["paths"]["/v1/records"]["get"];
    query["description"] = json!(format!(
        "Also `axis.NAME=VALUE` (at most 1024 characters) for any indexed axis, the envelope's or a pack's; the built-in packs' axes are {}. An unknown axis is refused (`UNKNOWN_AXIS`).",
        axis_names.join(", ")
    ));
}

#[cfg(test)]
mod tests {
    /// `sealog_testkit::under_ci`'s predicate (a unit test of this crate cannot use the
    /// testkit, which depends on it): `CI` set to anything but empty, `false` or `0`.
    fn under_ci() -> bool {
        std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "false" | "0"))
    }

    /// Regenerate with `UPDATE_OPENAPI=1 cargo test -p sealog-server openapi`.
    #[test]
    fn checked_in_openapi_matches_the_code() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
        let generated = super::document_json();
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            // Regenerating makes the comparison below pass whatever the file said, so CI,
            // which must catch a stale file, never does it.
            assert!(
                !under_ci(),
                "UPDATE_OPENAPI is set under CI: the check of {} would pass whatever it says",
                path.display()
            );
            std::fs::write(&path, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "{} is stale: run UPDATE_OPENAPI=1 cargo test -p sealog-server openapi",
            path.display()
        );
        let v: serde_json::Value = serde_json::from_str(&generated).unwrap();
        assert_eq!(v["openapi"], "3.1.0");
        // Every operation is one the router serves, named once: what `complete` lays over
        // the document lands on operations that exist.
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in v["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str();
                assert!(id.is_some(), "{method} {path} has no operationId");
                assert!(ids.insert(id), "operationId {id:?} is used twice");
            }
        }
        for schema in ["Event", "JsonValue", "CreateKey", "CreateExport"] {
            assert!(
                v["components"]["schemas"][schema]["description"].is_string()
                    || v["components"]["schemas"][schema]["anyOf"].is_array(),
                "{schema} is not the exact schema"
            );
        }
        for p in [
            "/v1/events",
            "/v1/records",
            "/v1/records/{id}",
            "/v1/subjects/{subject}/state",
            "/v1/quarantine",
            "/v1/quarantine/payloads/{payload_ref}",
            "/v1/proofs/inclusion",
            "/checkpoint",
            "/tile/{path}",
            "/metrics",
            "/v1/keys/{id}",
            "/v1/exports",
            "/v1/exports/{id}",
            "/v1/exports/{id}/status",
            "/v1/exports/{id}/manifest",
            "/v1/exports/{id}/files/{name}",
            "/v1/exports/{id}/approve",
        ] {
            assert!(v["paths"].get(p).is_some(), "{p} is not described");
        }
    }
}
