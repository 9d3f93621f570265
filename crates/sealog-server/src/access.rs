//! `audit.access` and `audit.key_*` records: the log's own account of who read what, who
//! was refused, and how the keys changed.
//!
//! An access record is appended through the same batched queue as any event and the read
//! is answered only once it is durable: a read that cannot be recorded is not served.
//!
//! *Invariant*: an access record holds only what the caller sent and what it was told, and
//! carries the caller's own tenant, so reading one never reveals anything about another
//! tenant — a cross-tenant attempt is recorded exactly as the `not_found` its caller saw.
//! A value that may name a person is held by its keyed hash: a personal filter, and every
//! value of a request that did not parse (whose values cannot be told apart).

use std::borrow::Cow;

use sealog_ledger::{Author, IngestResult, Ledger, Prepared};
use serde_json::{Value, json};

use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::keys::KeyRecord;
use crate::state::AppState;

/// Most data subjects an access record names: a read of more is named by its first ones and
/// its count (the burst rules measure reads spread across reads, not one bulk read).
pub(crate) const DATA_SUBJECTS_MAX: usize = 1000;

/// The client's address, as the connection's acceptor saw it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub std::net::IpAddr);

/// The `source` of every record the server writes about itself.
pub(crate) const SOURCE: &str = "sealog-server";
/// Longest text copied from a request into an access record.
const TEXT_BYTES_MAX: usize = 512;

/// One access to record.
pub(crate) struct Access {
    pub action: Cow<'static, str>,
    pub resource: Value,
    pub outcome: &'static str,
    pub status: u16,
    /// Records returned, for reads that return several.
    pub count: Option<usize>,
    pub message: Option<String>,
    /// Pseudonyms of the data subjects whose records a read returned.
    pub data_subjects: Vec<String>,
}

impl Access {
    pub(crate) fn of(
        action: Action,
        resource: Value,
        result: Result<Option<usize>, &ApiError>,
    ) -> Self {
        match result {
            Ok(count) => Access {
                action: action.name().into(),
                resource,
                outcome: "allowed",
                status: 200,
                count,
                message: None,
                data_subjects: Vec::new(),
            },
            Err(e) => Access {
                action: action.name().into(),
                resource,
                outcome: e.outcome(),
                status: e.status.as_u16(),
                count: None,
                message: Some(e.recorded_message().to_string()),
                data_subjects: Vec::new(),
            },
        }
    }
}

impl Access {
    /// A refusal before any route ran (no key, an ended session, no CSRF token): named by
    /// the request's method and route, with the path it asked for.
    pub(crate) fn denied(action: String, path: &str, status: u16, message: &str) -> Self {
        Access {
            action: action.into(),
            resource: json!({"path": clip(path)}),
            outcome: "denied",
            status,
            count: None,
            message: Some(message.to_string()),
            data_subjects: Vec::new(),
        }
    }
}

/// Text from a request, cut to a bounded length at a character boundary.
pub(crate) fn clip(text: &str) -> String {
    if text.len() <= TEXT_BYTES_MAX {
        return text.to_string();
    }
    let mut end = TEXT_BYTES_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Most parameters of a query string that did not parse its access record names.
const UNPARSED_PARAMETERS_MAX: usize = 32;
/// Longest body that did not parse whose JSON shape its access record keeps, and longest
/// shape kept: a hash is longer than most values, so the shape can be many times the body.
const UNPARSED_BODY_BYTES_MAX: usize = 4 << 10;
const UNPARSED_SHAPE_BYTES_MAX: usize = 16 << 10;

/// A query string that did not parse, as its access record states it: each parameter's name
/// and its value's keyed hash, in the order sent. A refused query is often a filter under a
/// wrong name whose value is a customer id, and an access record is kept for good and read by
/// every reader of the tenant: no value is kept as sent, but its hash is the pseudonym that
/// names the same person in every other record.
pub(crate) fn unparsed_query(ledger: &Ledger, raw: Option<&str>) -> Value {
    let pairs = raw
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .take(UNPARSED_PARAMETERS_MAX)
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            json!([clip(&decoded(name)), hashed(ledger, &decoded(value))])
        });
    Value::Array(pairs.collect())
}

/// A request body that did not parse, as its access record states it: its length, and when it
/// is JSON its member names with every string and number by its keyed hash. Text that is not
/// JSON has no names to keep apart from its values.
pub(crate) fn unparsed_body(ledger: &Ledger, body: &[u8]) -> Value {
    let mut out = json!({"bytes": body.len()});
    if let Some(shape) = json_shape(ledger, body) {
        out["json"] = shape;
    }
    out
}

/// The body's members with their values hashed, if it is JSON and both fit their bounds.
fn json_shape(ledger: &Ledger, body: &[u8]) -> Option<Value> {
    if body.len() > UNPARSED_BODY_BYTES_MAX {
        return None;
    }
    let shape = leaves_hashed(ledger, serde_json::from_slice(body).ok()?);
    (shape.to_string().len() <= UNPARSED_SHAPE_BYTES_MAX).then_some(shape)
}

/// Percent-decoded as a query string is, so a value hashes to the same pseudonym however it
/// was escaped; text that does not decode is taken as sent.
fn decoded(text: &str) -> String {
    crate::percent::decode(text, true).unwrap_or_else(|_| text.to_string())
}

/// A value sent by a caller, by its keyed hash; an empty one stays empty (it names no one).
fn hashed(ledger: &Ledger, value: &str) -> String {
    if value.is_empty() {
        String::new()
    } else {
        ledger.pseudonym(value)
    }
}

/// `value` with every string and number by its keyed hash, its member names kept.
fn leaves_hashed(ledger: &Ledger, value: Value) -> Value {
    match value {
        Value::String(s) => hashed(ledger, &s).into(),
        Value::Number(n) => hashed(ledger, &n.to_string()).into(),
        Value::Array(items) => items
            .into_iter()
            .map(|v| leaves_hashed(ledger, v))
            .collect(),
        Value::Object(members) => members
            .into_iter()
            .map(|(k, v)| (clip(&k), leaves_hashed(ledger, v)))
            .collect(),
        other @ (Value::Bool(_) | Value::Null) => other,
    }
}

/// A principal acting through the server, now: who and when Sealog's own records of an act
/// (an erasure, a hold) name.
pub(crate) fn act_of(principal: &Principal) -> sealog_ledger::Act<'static> {
    sealog_ledger::Act {
        actor: actor(Some(principal)),
        time: crate::keys::now_text(),
        source: "sealog-server",
    }
}

pub(crate) fn actor(principal: Option<&Principal>) -> Value {
    match principal {
        Some(p) if p.key_id == "open" => json!({"type": "system", "id": "open-mode"}),
        Some(p) => json!({"type": "service", "id": p.key_id}),
        None => json!({"type": "service", "id": "unauthenticated"}),
    }
}

impl AppState {
    /// Appends an access record and waits until it is durable.
    pub(crate) async fn record_access(
        &self,
        principal: Option<&Principal>,
        (key_id_hint, peer): (Option<&str>, Option<std::net::IpAddr>),
        (request_id, trace): (&str, Option<&crate::context::Trace>),
        access: Access,
    ) -> Result<(), ApiError> {
        let mut event = json!({
            "specversion": "1.0",
            "id": format!("access:{request_id}"),
            "source": SOURCE,
            "type": "audit.access",
            "time": crate::keys::now_text(),
            "actor": actor(principal),
            "data": {
                "principal": principal.map(Principal::to_json),
                "action": access.action,
                "resource": access.resource,
                "outcome": access.outcome,
                "status": access.status,
                "request_id": request_id,
            },
        });
        let tenant = match principal {
            Some(p) => p.tenant.clone(),
            // Refused before it became a principal (revoked, a session's missing CSRF token):
            // the attempt is its key's tenant's to see.
            None => key_id_hint.and_then(|k| self.keys.tenant_of(k)),
        };
        if let Some(t) = tenant {
            event["tenant"] = json!(t);
        }
        if let Some(n) = access.count {
            event["data"]["count"] = json!(n);
        }
        if let Some(m) = access.message {
            event["data"]["message"] = json!(clip(&m));
        }
        if let Some(k) = key_id_hint {
            event["data"]["presented_key_id"] = json!(k);
        }
        if let Some(ip) = peer {
            event["data"]["source_address"] = json!(ip.to_string());
        }
        if !access.data_subjects.is_empty() {
            event["data"]["data_subjects"] = json!(access.data_subjects);
        }
        if let Some(t) = trace {
            event["data"]["trace"] =
                json!({"trace_id": t.trace_id, "parent_id": t.parent_id, "flags": t.flags});
        }
        metrics::counter!("sealog_access_records_total", "outcome" => access.outcome).increment(1);
        self.record_own(vec![event]).await
    }

    /// Appends the server's own records through the ledger (the `audit` pack checks them)
    /// and waits until they are durable. One that does not become canonical is a bug here:
    /// the request fails rather than go unrecorded.
    pub(crate) async fn record_own(&self, events: Vec<Value>) -> Result<(), ApiError> {
        let prepared: Vec<Prepared> = events
            .iter()
            .map(|e| self.ledger.prepare_value(e, &Author::Sealog))
            .collect();
        for r in self.ingest(prepared).await? {
            match r {
                IngestResult::Appended { .. } | IngestResult::Duplicate { .. } => {}
                other => {
                    return Err(ApiError::internal(format!(
                        "the server's own record was not accepted: {}",
                        other.to_json()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Turns key-file changes into records. Each record's content is fixed by the key file
    /// alone, so recording the same history twice appends nothing new: the log dedupes it.
    pub(crate) async fn record_key_changes(&self) -> Result<(), ApiError> {
        let mut recorded = self.keys_recorded.lock().await;
        let generation = self.keys.generation();
        let current = self.keys.keys();
        if *recorded == current {
            self.keys_recorded_generation
                .store(generation, std::sync::atomic::Ordering::Release);
            return Ok(());
        }
        let mut events = Vec::new();
        for k in &current {
            if recorded.contains(k) {
                continue;
            }
            events.push(key_event(k, "created"));
            if k.is_revoked() {
                events.push(key_event(k, "revoked"));
            }
        }
        self.record_own(events).await?;
        *recorded = current;
        self.keys_recorded_generation
            .store(generation, std::sync::atomic::Ordering::Release);
        Ok(())
    }
}

fn key_event(k: &KeyRecord, what: &str) -> Value {
    let (time, by) = match what {
        "revoked" => (
            k.revoked_at.clone().unwrap_or_default(),
            k.revoked_by.clone().unwrap_or_default(),
        ),
        _ => (k.created_at.clone(), k.created_by.clone()),
    };
    let mut event = json!({
        "specversion": "1.0",
        "id": format!("{}:{what}", k.id),
        "source": SOURCE,
        "type": format!("audit.key_{what}"),
        "time": time,
        "actor": {"type": "service", "id": by},
        "subject": k.id,
        "data": {
            "key_id": k.id,
            "roles": k.roles,
            "tenant": k.tenant,
            "data_subject": k.data_subject,
            "label": k.label,
        },
    });
    if let Some(t) = &k.tenant {
        event["tenant"] = json!(t);
    }
    event
}
