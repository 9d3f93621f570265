//! Quarantine records: what the quarantine log stores for an ingest that could not become
//! canonical. Each is itself an event (type `sealog.quarantine`) in a second append-only log
//! with its own Merkle tree, so it is as tamper-evident as the canonical log and queryable by
//! the same index: by event id, tenant, subject, and the reason and event-type axes.
//!
//! *Invariant*: a quarantine record never carries the content it was quarantined for — only
//! correlation attributes, the reason, paths, and `payload_ref`. For FORBIDDEN_FIELD not even
//! the payload is kept.

use serde_json::{Map, Value, json};

use sealog_model::Envelope;
use sealog_model::json::Json;
use sealog_packs::Derived;

/// The event type of quarantine records.
pub const QUARANTINE_TYPE: &str = "sealog.quarantine";

/// The correlation attributes a quarantine record keeps of the event it stands for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Correlation {
    pub id: String,
    pub event_type: String,
    pub source: String,
    pub time: String,
    pub tenant: Option<String>,
    pub subject: Option<String>,
    pub scope: Option<String>,
    /// The event's actor, when it is an object, as JSON text.
    pub actor: Option<String>,
    /// The data subject's pseudonym, when the payload is sealed for them (so an erasure
    /// finds it) or they were erased.
    pub data_subject: Option<String>,
}

impl Correlation {
    pub(crate) fn of(env: &Envelope<'_>, event: &Json<'_>, derived: &Derived) -> Self {
        let actor = event
            .get("actor")
            .filter(|a| matches!(a, Json::Object(_)))
            .map(actor_text);
        Packed::of(env, actor.as_deref(), derived).unpack()
    }
}

/// A [`Correlation`] in one allocation. Every event the rules might refuse carries one to
/// the writer, and nearly all are appended: its nine strings, made by a producer and freed
/// by the writer, cost more than the one buffer does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Packed {
    text: String,
    /// Where each field ends in `text`, in [`Correlation`]'s order; an absent optional
    /// field is empty and its bit in `absent` set.
    ends: [u32; 9],
    absent: u16,
}

impl Packed {
    /// The attributes of an event whose actor, when it is an object, has the JSON text `actor`.
    pub(crate) fn of(env: &Envelope<'_>, actor: Option<&str>, derived: &Derived) -> Self {
        let subject = env.subject.or(derived.subject.as_deref());
        let scope = derived.scope.as_deref().or(env.tenant);
        let fields: [Option<&str>; 9] = [
            Some(env.id),
            Some(env.event_type),
            Some(env.source),
            Some(env.time),
            env.tenant,
            subject,
            scope,
            actor,
            derived.data_subject.as_deref(),
        ];
        let mut text = String::with_capacity(fields.iter().flatten().map(|f| f.len()).sum());
        let mut ends = [0; 9];
        let mut absent = 0;
        for (i, field) in fields.iter().enumerate() {
            match field {
                Some(f) => text.push_str(f),
                None => absent |= 1 << i,
            }
            ends[i] = u32::try_from(text.len()).expect("an event's attributes fit in 4 GiB");
        }
        Packed { text, ends, absent }
    }

    fn field(&self, i: usize) -> Option<String> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        (self.absent & (1 << i) == 0).then(|| self.text[start..self.ends[i] as usize].to_string())
    }

    pub(crate) fn unpack(&self) -> Correlation {
        let given = |i| self.field(i).unwrap_or_default();
        Correlation {
            id: given(0),
            event_type: given(1),
            source: given(2),
            time: given(3),
            tenant: self.field(4),
            subject: self.field(5),
            scope: self.field(6),
            actor: self.field(7),
            data_subject: self.field(8),
        }
    }
}

fn actor_text(actor: &Json<'_>) -> String {
    let mut text = Vec::with_capacity(64);
    match sealog_model::jcs::write_json(actor, &mut text) {
        Ok(()) => String::from_utf8(text).expect("JSON text is UTF-8"),
        // A number RFC 8785 cannot write: kept as serde_json writes it.
        Err(_) => actor.to_value().to_string(),
    }
}

/// Why an event was quarantined, with the evidence the result and the record carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub reason_code: &'static str,
    pub message: Option<String>,
    pub missing_fields: Vec<String>,
    pub violations: Vec<(String, String)>,
    pub forbidden_fields: Vec<String>,
    /// Where a bus had the message, and its payload's hash and size (bus input only).
    pub delivery: Option<Value>,
}

impl Finding {
    /// The reason and evidence as JSON members (for results and records alike).
    pub fn members(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("reason_code".into(), json!(self.reason_code));
        if let Some(msg) = &self.message {
            m.insert("message".into(), json!(msg));
        }
        if !self.missing_fields.is_empty() {
            m.insert("missing_fields".into(), json!(self.missing_fields));
        }
        if !self.violations.is_empty() {
            let v: Vec<Value> = self
                .violations
                .iter()
                .map(|(p, m)| json!({"pointer": p, "message": m}))
                .collect();
            m.insert("violations".into(), Value::Array(v));
        }
        if !self.forbidden_fields.is_empty() {
            m.insert("forbidden_fields".into(), json!(self.forbidden_fields));
        }
        if let Some(d) = &self.delivery {
            m.insert("delivery".into(), d.clone());
        }
        m
    }
}

/// The quarantine record's event for a finding about the event `corr` describes.
pub(crate) fn record_event(
    corr: &Correlation,
    finding: &Finding,
    payload_ref: Option<&str>,
) -> Value {
    let mut data = finding.members();
    data.insert("event_type".into(), json!(corr.event_type));
    if let Some(scope) = &corr.scope {
        data.insert("scope".into(), json!(scope));
    }
    if let Some(ps) = &corr.data_subject {
        data.insert("data_subject_pseudonym".into(), json!(ps));
    }
    data.insert(
        "payload_ref".into(),
        payload_ref.map_or(Value::Null, |r| json!(r)),
    );
    let mut ev = json!({
        "specversion": "1.0",
        "id": corr.id,
        "source": corr.source,
        "type": QUARANTINE_TYPE,
        "time": corr.time,
    });
    if let Some(t) = &corr.tenant {
        ev["tenant"] = json!(t);
    }
    match &corr.subject {
        // A derived subject may exceed the envelope's attribute limit: keep it in the body.
        Some(s) if sealog_model::limits::attribute_fits(s) => ev["subject"] = json!(s),
        Some(s) => {
            data.insert("subject".into(), json!(s));
        }
        None => {}
    }
    let actor = corr
        .actor
        .as_deref()
        .and_then(|a| serde_json::from_str::<Value>(a).ok());
    if let Some(actor) = actor.filter(Value::is_object) {
        ev["actor"] = actor;
    }
    ev["data"] = Value::Object(data);
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(event: &str, derived: &Derived) -> Correlation {
        let tree = Json::parse_str(event).unwrap();
        let env = Envelope::parse(&tree).unwrap();
        Correlation::of(&env, &tree, derived)
    }

    /// Packed and unpacked, a correlation holds each attribute as it was, an absent one
    /// apart from an empty one, the derived ones where the envelope has none.
    #[test]
    fn a_packed_correlation_unpacks_to_every_attribute_as_it_was() {
        let base = r#"{"specversion":"1.0","id":"e-1","source":"s","type":"t.x","time":"2026-01-02T03:04:05Z","data":{}"#;
        let full = format!(
            r#"{base},"tenant":"t0","subject":"sub é","actor":{{"type":"human","id":"u\"1"}}}}"#
        );
        let derived = Derived {
            scope: Some("scope-9".into()),
            subject: Some("derived".into()),
            data_subject: Some(String::new()),
            ..Derived::default()
        };
        // What every event here carries, in a tenant of its own.
        let sent = |tenant: &str| Correlation {
            id: "e-1".into(),
            event_type: "t.x".into(),
            source: "s".into(),
            time: "2026-01-02T03:04:05Z".into(),
            tenant: Some(tenant.into()),
            ..Correlation::default()
        };
        assert_eq!(
            packed(&full, &derived),
            Correlation {
                subject: Some("sub é".into()),
                scope: Some("scope-9".into()),
                actor: Some(r#"{"id":"u\"1","type":"human"}"#.into()),
                data_subject: Some(String::new()),
                ..sent("t0")
            }
        );
        let bare = format!(r#"{base},"tenant":"t1"}}"#);
        let only_subject = Derived {
            subject: Some("derived".into()),
            ..Derived::default()
        };
        assert_eq!(
            packed(&bare, &only_subject),
            Correlation {
                subject: Some("derived".into()),
                scope: Some("t1".into()),
                ..sent("t1")
            }
        );
        assert_eq!(
            packed(&format!("{base}}}"), &Derived::default()).tenant,
            None
        );
    }
}
