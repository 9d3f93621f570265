//! The event envelope (CloudEvents 1.0 structured mode plus Sealog's attributes) and its
//! validation. An event that passes has every attribute the log indexes in a known shape.

use crate::json::Json;
use crate::limits::{ATTRIBUTE_CHARS_MAX, DEPTH_MAX};

/// Top-level names the server adds to a record; an event may not carry them itself.
pub const SERVER_FIELDS: [&str; 3] = ["ingested_at", "record_id", "seq"];

/// The kinds of principal an event may be attributed to.
pub const ACTOR_TYPES: [&str; 4] = ["human", "system", "agent", "service"];

/// A validated view of one event's envelope attributes, borrowed from the parsed JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub id: &'a str,
    pub source: &'a str,
    pub event_type: &'a str,
    pub time: &'a str,
    pub time_nanos: i64,
    pub tenant: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub actor_type: Option<&'a str>,
    pub actor_id: Option<&'a str>,
    pub supersedes: Option<&'a str>,
    pub reason: Option<&'a str>,
}

/// Why an event's envelope was refused: the field (a JSON pointer) and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct EnvelopeError {
    pub field: String,
    pub message: String,
}

impl EnvelopeError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        EnvelopeError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl<'a> Envelope<'a> {
    /// Validates a parsed event. Checks the whole value's depth first so later code may recurse.
    pub fn parse(value: &'a Json<'a>) -> Result<Self, EnvelopeError> {
        Self::parse_object(value, true)
    }

    /// Like `parse`; a stored record carries the server fields, so they may be allowed.
    pub fn parse_object(
        value: &'a Json<'a>,
        refuse_server_fields: bool,
    ) -> Result<Self, EnvelopeError> {
        check_depth(value)?;
        Self::read(value, refuse_server_fields)
    }

    /// The envelope of a stored record (server fields allowed), whose nesting depth — the
    /// most containers open at once — was measured while its text was read.
    pub fn of_record(value: &'a Json<'a>, depth: usize) -> Result<Self, EnvelopeError> {
        if depth > DEPTH_MAX {
            return Err(too_deep());
        }
        Self::read(value, false)
    }

    /// The attributes of an event whose envelope `parse` has already checked, read again
    /// after the event's body was normalized (which never touches them); the depth of the
    /// whole value is not walked again.
    pub fn fields(value: &'a Json<'a>) -> Result<Self, EnvelopeError> {
        Self::read(value, true)
    }

    fn read(value: &'a Json<'a>, refuse_server_fields: bool) -> Result<Self, EnvelopeError> {
        let Json::Object(members) = value else {
            return Err(EnvelopeError::new("", "an event must be a JSON object"));
        };
        let m = Members::find(members);
        if refuse_server_fields && let Some(name) = m.server_field() {
            return Err(EnvelopeError::new(
                format!("/{name}"),
                "is set by the server and may not be sent",
            ));
        }
        if m.specversion.is_some_and(|v| v.as_str() != Some("1.0")) {
            return Err(EnvelopeError::new(
                "/specversion",
                "must be \"1.0\" when present",
            ));
        }
        let id = required_str(m.id, "id")?;
        let source = required_str(m.source, "source")?;
        let event_type = required_str(m.event_type, "type")?;
        let time = required_str(m.time, "time")?;
        let time_nanos =
            crate::time::parse_rfc3339(time).map_err(|m| EnvelopeError::new("/time", m))?;
        match m.data {
            // Binary data, kept as sent (`cloudevents::normalize_data` decoded JSON data).
            None if m.data_base64.and_then(Json::as_str).is_some() => {}
            None => return Err(EnvelopeError::new("/data", "is required")),
            Some(Json::Object(_)) => {}
            Some(_) => return Err(EnvelopeError::new("/data", "must be a JSON object")),
        }
        let (actor_type, actor_id) = actor(m.actor)?;
        let supersedes = optional_str(m.supersedes, "supersedes")?;
        if supersedes.is_some_and(|s| crate::record::RecordId::parse(s).is_none()) {
            return Err(EnvelopeError::new(
                "/supersedes",
                "must be a record id (\"sha256:\" and 64 lowercase hex digits)",
            ));
        }
        Ok(Envelope {
            id,
            source,
            event_type,
            time,
            time_nanos,
            tenant: optional_str(m.tenant, "tenant")?,
            subject: optional_str(m.subject, "subject")?,
            actor_type,
            actor_id,
            supersedes,
            reason: optional_text(m.reason, "reason")?,
        })
    }

    /// The idempotency and supersession scope. Packs may derive it; by default it is the tenant.
    pub fn default_scope(&self) -> &'a str {
        self.tenant.unwrap_or("")
    }
}

/// The members the envelope reads, found in one pass over the event's members rather than
/// one search each: an event has a dozen top-level members and the envelope reads as many.
/// An event's member names are unique (the parser refuses a repeated one); the first is kept
/// all the same, as `Json::get` finds it.
#[derive(Default)]
struct Members<'a> {
    /// Which of [`SERVER_FIELDS`] the event carries.
    server: [bool; SERVER_FIELDS.len()],
    specversion: Option<&'a Json<'a>>,
    id: Option<&'a Json<'a>>,
    source: Option<&'a Json<'a>>,
    event_type: Option<&'a Json<'a>>,
    time: Option<&'a Json<'a>>,
    data: Option<&'a Json<'a>>,
    data_base64: Option<&'a Json<'a>>,
    actor: Option<&'a Json<'a>>,
    supersedes: Option<&'a Json<'a>>,
    tenant: Option<&'a Json<'a>>,
    subject: Option<&'a Json<'a>>,
    reason: Option<&'a Json<'a>>,
}

impl<'a> Members<'a> {
    fn find(members: &'a [(std::borrow::Cow<'a, str>, Json<'a>)]) -> Self {
        let mut m = Members::default();
        for (name, value) in members {
            let slot = match name.as_ref() {
                "specversion" => &mut m.specversion,
                "id" => &mut m.id,
                "source" => &mut m.source,
                "type" => &mut m.event_type,
                "time" => &mut m.time,
                "data" => &mut m.data,
                "data_base64" => &mut m.data_base64,
                "actor" => &mut m.actor,
                "supersedes" => &mut m.supersedes,
                "tenant" => &mut m.tenant,
                "subject" => &mut m.subject,
                "reason" => &mut m.reason,
                other => {
                    if let Some(i) = SERVER_FIELDS.iter().position(|s| *s == other) {
                        m.server[i] = true;
                    }
                    continue;
                }
            };
            slot.get_or_insert(value);
        }
        m
    }

    /// The first of [`SERVER_FIELDS`], in their order, that the event carries.
    fn server_field(&self) -> Option<&'static str> {
        SERVER_FIELDS
            .into_iter()
            .zip(self.server)
            .find(|(_, carried)| *carried)
            .map(|(name, _)| name)
    }
}

fn check_attribute(name: &str, s: &str) -> Result<(), EnvelopeError> {
    if s.is_empty() {
        return Err(EnvelopeError::new(format!("/{name}"), "must not be empty"));
    }
    if !crate::limits::attribute_fits(s) {
        return Err(EnvelopeError::new(
            format!("/{name}"),
            format!("is longer than {ATTRIBUTE_CHARS_MAX} characters"),
        ));
    }
    Ok(())
}

fn required_str<'a>(value: Option<&'a Json<'a>>, name: &str) -> Result<&'a str, EnvelopeError> {
    match value {
        None | Some(Json::Null) => Err(EnvelopeError::new(format!("/{name}"), "is required")),
        Some(Json::String(s)) => check_attribute(name, s).map(|()| s.as_ref()),
        Some(_) => Err(EnvelopeError::new(format!("/{name}"), "must be a string")),
    }
}

fn optional_str<'a>(
    value: Option<&'a Json<'a>>,
    name: &str,
) -> Result<Option<&'a str>, EnvelopeError> {
    match value {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => check_attribute(name, s).map(|()| Some(s.as_ref())),
        Some(_) => Err(EnvelopeError::new(
            format!("/{name}"),
            "must be a string or null",
        )),
    }
}

/// Like `optional_str` but free text: no length limit beyond the event's own.
fn optional_text<'a>(
    value: Option<&'a Json<'a>>,
    name: &str,
) -> Result<Option<&'a str>, EnvelopeError> {
    match value {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.as_ref())),
        Some(_) => Err(EnvelopeError::new(
            format!("/{name}"),
            "must be a string or null",
        )),
    }
}

type Actor<'a> = (Option<&'a str>, Option<&'a str>);

fn actor<'a>(value: Option<&'a Json<'a>>) -> Result<Actor<'a>, EnvelopeError> {
    let actor = match value {
        None | Some(Json::Null) => return Ok((None, None)),
        Some(a @ Json::Object(_)) => a,
        Some(_) => {
            return Err(EnvelopeError::new(
                "/actor",
                "must be an object {\"type\",\"id\"} or null",
            ));
        }
    };
    let kind = match actor.get("type") {
        Some(Json::String(t)) if ACTOR_TYPES.contains(&t.as_ref()) => t.as_ref(),
        Some(Json::String(t)) => {
            return Err(EnvelopeError::new(
                "/actor/type",
                format!("\"{t}\" is not one of {}", ACTOR_TYPES.join(", ")),
            ));
        }
        None | Some(Json::Null) => {
            return Err(EnvelopeError::new("/actor/type", "is required in an actor"));
        }
        Some(_) => return Err(EnvelopeError::new("/actor/type", "must be a string")),
    };
    let id = match actor.get("id") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => {
            check_attribute("actor/id", s)?;
            Some(s.as_ref())
        }
        Some(_) => return Err(EnvelopeError::new("/actor/id", "must be a string or null")),
    };
    Ok((Some(kind), id))
}

fn too_deep() -> EnvelopeError {
    EnvelopeError::new("", format!("nesting deeper than {DEPTH_MAX} levels"))
}

/// Refuses values nested deeper than `DEPTH_MAX`. The walk recurses, but never more than
/// `DEPTH_MAX` calls deep: it stops at the first container beyond the limit, so hostile input
/// cannot exhaust the stack here. Only containers are descended into.
fn check_depth(value: &Json<'_>) -> Result<(), EnvelopeError> {
    /// Whether the containers below `v`, itself a container at `depth`, are all within the
    /// limit.
    fn within(v: &Json<'_>, depth: usize) -> bool {
        let fits = |child: &Json<'_>| {
            !matches!(child, Json::Array(_) | Json::Object(_)) || within(child, depth + 1)
        };
        depth <= DEPTH_MAX
            && match v {
                Json::Array(items) => items.iter().all(fits),
                Json::Object(members) => members.iter().all(|(_, child)| fits(child)),
                _ => true,
            }
    }
    if within(value, 1) {
        Ok(())
    } else {
        Err(too_deep())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value, json};

    fn parse(v: &Value) -> Result<(), EnvelopeError> {
        Envelope::parse(&Json::from_value(v)).map(drop)
    }

    fn good() -> Value {
        json!({"specversion":"1.0","id":"e1","source":"s","type":"t.x","time":"2026-01-03T12:34:56.123Z",
               "tenant":"acme","subject":"sub","actor":{"type":"human","id":"u1"},"data":{"a":1}})
    }

    fn err(mut edit: impl FnMut(&mut Map<String, Value>)) -> EnvelopeError {
        let mut v = good();
        edit(v.as_object_mut().unwrap());
        parse(&v).unwrap_err()
    }

    #[test]
    fn accepts_a_complete_event() {
        let v = good();
        let j = Json::from_value(&v);
        let e = Envelope::parse(&j).unwrap();
        assert_eq!(
            (e.id, e.source, e.event_type, e.tenant, e.actor_id),
            ("e1", "s", "t.x", Some("acme"), Some("u1"))
        );
        assert_eq!(e.default_scope(), "acme");
    }

    #[test]
    fn names_the_field_that_is_wrong() {
        for f in ["id", "source", "type", "time", "data"] {
            assert_eq!(err(|o| drop(o.remove(f))).field, format!("/{f}"), "{f}");
        }
        assert_eq!(
            err(|o| drop(o.insert("id".into(), json!(7)))).message,
            "must be a string"
        );
        assert_eq!(
            err(|o| drop(o.insert("id".into(), json!("")))).message,
            "must not be empty"
        );
        assert_eq!(
            err(|o| drop(o.insert("time".into(), json!("soon")))).field,
            "/time"
        );
        assert_eq!(
            err(|o| drop(o.insert("data".into(), json!("x")))).field,
            "/data"
        );
        assert_eq!(
            err(|o| drop(o.insert("specversion".into(), json!("0.3")))).field,
            "/specversion"
        );
        assert_eq!(
            err(|o| drop(o.insert("actor".into(), json!({"type":"robot"})))).field,
            "/actor/type"
        );
        assert_eq!(
            err(|o| drop(o.insert("actor".into(), json!({"id":"x"})))).field,
            "/actor/type"
        );
        assert_eq!(
            err(|o| drop(o.insert("supersedes".into(), json!("abc")))).field,
            "/supersedes"
        );
        assert_eq!(
            err(|o| drop(o.insert("seq".into(), json!(1)))).field,
            "/seq"
        );
        assert_eq!(
            err(|o| drop(o.insert("tenant".into(), json!("x".repeat(2000))))).field,
            "/tenant"
        );
    }

    #[test]
    fn refuses_deep_nesting_at_the_limit() {
        let mut v = json!(1);
        for _ in 0..DEPTH_MAX - 1 {
            v = json!([v]);
        }
        let mut ok = good();
        ok["data"] = json!({ "x": v.clone() });
        assert!(
            parse(&ok).is_err(),
            "event, data and 63 arrays make 65 levels"
        );
        ok["data"] = json!({ "x": v[0].clone() });
        assert!(parse(&ok).is_ok(), "64 levels are allowed");
    }

    #[test]
    fn the_first_fault_in_the_envelopes_order_is_named_whatever_the_members_order() {
        // Members in the parser's order, so the body's order is what the reader meets.
        let refusal = |text: &str| {
            let tree = Json::parse(text.as_bytes()).unwrap();
            Envelope::parse(&tree).unwrap_err()
        };
        let tail = r#""specversion":"1.0","source":"s","type":"t.x","time":"2026-01-03T12:34:56Z","data":{}"#;
        // Server fields first, in SERVER_FIELDS' order, then the attributes in theirs.
        let e = refusal(&format!(r#"{{"seq":1,"record_id":"x","id":"e",{tail}}}"#));
        assert_eq!(e.field, "/record_id");
        let e = refusal(&format!(r#"{{"id":7,"seq":1,{tail}}}"#));
        assert_eq!(e.field, "/seq");
        let e = refusal(&format!(r#"{{"tenant":7,"actor":"x","id":"e",{tail}}}"#));
        assert_eq!(e.field, "/actor");
        let e = refusal(&format!(r#"{{"reason":7,"subject":7,"id":"e",{tail}}}"#));
        assert_eq!(e.field, "/subject");
        // Unknown members are extensions, wherever they fall.
        let extended = format!(r#"{{"zz":1,"id":"e","aa":[],{tail}}}"#);
        let tree = Json::parse(extended.as_bytes()).unwrap();
        let env = Envelope::parse(&tree).unwrap();
        assert_eq!((env.id, env.source, env.event_type), ("e", "s", "t.x"));
        // A stored record may carry them.
        let record = format!(r#"{{"seq":1,"ingested_at":"x","record_id":"x","id":"e",{tail}}}"#);
        let tree = Json::parse(record.as_bytes()).unwrap();
        assert_eq!(Envelope::parse_object(&tree, false).unwrap().id, "e");
    }

    #[test]
    fn nesting_is_counted_in_objects_too_and_in_every_member() {
        let nest = |levels: usize| {
            let mut v = json!("leaf");
            for _ in 0..levels {
                v = json!({ "k": v });
            }
            v
        };
        // The event and `data` are two levels; the deep value is the last of several members.
        let mut ok = good();
        ok["data"] = json!({ "a": 1, "b": [nest(3)], "z": nest(DEPTH_MAX - 2) });
        assert!(parse(&ok).is_ok(), "64 levels of objects are allowed");
        ok["data"] = json!({ "a": 1, "b": [nest(3)], "z": nest(DEPTH_MAX - 1) });
        assert_eq!(
            parse(&ok).unwrap_err().message,
            format!("nesting deeper than {DEPTH_MAX} levels")
        );
        let mut beside = good();
        beside["data"] = json!({ "a": nest(1) });
        beside["extension"] = nest(DEPTH_MAX);
        assert!(
            parse(&beside).is_err(),
            "a top-level member beside data counts too"
        );
    }
}
