//! What the handlers' annotations cannot state, written as JSON Schema 2020-12 and laid over
//! the generated document: request bodies whose members depend on one another (an event's
//! `data` or `data_base64`, a key's roles and data subject, a hold's scope), and the axes of
//! the built-in packs as `/v1/records` parameters. Each body schema says exactly what the
//! handler takes: what it allows is taken, what it refuses is refused.

use serde_json::{Value, json};

use sealog_model::envelope::{ACTOR_TYPES, SERVER_FIELDS};
use sealog_model::limits::ATTRIBUTE_CHARS_MAX;

use crate::formats::{AS_OF, DATE_TIME, Form, LABEL, NONBLANK, RECORD_ID, SCOPE_NAME, TIME_BOUND};

fn pattern_of(form: &Form) -> Value {
    serde_json::to_value(form.schema()).expect("a schema serializes")
}

fn attribute() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": ATTRIBUTE_CHARS_MAX})
}

fn nullable(mut schema: Value) -> Value {
    schema["type"] = json!([schema["type"].clone(), "null"]);
    schema
}

/// One event as `POST /v1/events` takes it (PRODUCT.md §2): the envelope's attributes, `data`
/// (an object) or else binary `data_base64` (kept as sent when no `datacontenttype` says it is
/// JSON), and any extension attribute beside them.
pub(crate) fn event() -> Value {
    let mut properties = json!({
        "specversion": {"const": "1.0"},
        "id": attribute(),
        "source": attribute(),
        "type": {
            "allOf": [attribute()],
            "not": {"pattern": format!("^(?:{})", sealog_ledger::RESERVED_TYPE_PREFIXES.map(|p| p.replace('.', "[.]")).join("|"))},
            "description": "the event type; `audit.*` and `sealog.*` are Sealog's own"
        },
        "time": pattern_of(&DATE_TIME),
        "tenant": nullable(attribute()),
        "subject": nullable(attribute()),
        "actor": {
            "type": ["object", "null"],
            "required": ["type"],
            "properties": {
                "type": {"enum": ACTOR_TYPES},
                "id": nullable(attribute()),
            }
        },
        "supersedes": nullable(pattern_of(&RECORD_ID)),
        "reason": {"type": ["string", "null"]},
        "data": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/JsonValue"}, "description": "the event's payload"},
        "data_base64": {"type": "string", "description": "binary data, kept as sent (without `datacontenttype`; a JSON `datacontenttype` would have it decoded into `data`)"},
    });
    for field in SERVER_FIELDS {
        properties[field] = json!(false);
    }
    json!({
        "type": "object",
        "description": "A CloudEvents 1.0 event with Sealog's envelope attributes. `seq`, `record_id` and `ingested_at` are the server's. Nested at most 64 levels deep, at most 1 MiB of JSON.",
        "required": ["id", "source", "type", "time"],
        "properties": properties,
        "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
        "oneOf": [
            {"required": ["data"], "not": {"required": ["data_base64"]}},
            {"required": ["data_base64"], "not": {"anyOf": [{"required": ["data"]}, {"required": ["datacontenttype"]}]}},
        ],
    })
}

/// `POST /v1/keys`: at least one role; the subject role alone, and exactly then a data subject.
pub(crate) fn create_key() -> Value {
    let scope = pattern_of(&SCOPE_NAME);
    let common = json!({
        "tenant": nullable(scope.clone()),
        "label": nullable(pattern_of(&LABEL)),
    });
    let mut staff = common.clone();
    staff["roles"] = json!({"type": "array", "minItems": 1, "items": {"enum": ["writer", "reader", "auditor", "admin"]}});
    staff["data_subject"] = json!({"type": "null"});
    let mut subject = common;
    subject["roles"] = json!({"type": "array", "minItems": 1, "items": {"const": "subject"}});
    subject["data_subject"] = scope;
    json!({
        "description": "A key's roles and reach. A tenant admin's keys are always of its own tenant.",
        "oneOf": [
            {"type": "object", "required": ["roles"], "properties": staff, "additionalProperties": false},
            {"type": "object", "required": ["roles", "data_subject"], "properties": subject, "additionalProperties": false},
        ],
    })
}

/// `POST /v1/holds` (a tenant, a data subject or both, and a reason) and `/v1/holds/release`
/// (the hold's id, or its scope, and a reason).
pub(crate) fn hold(release: bool) -> Value {
    let mut properties = json!({
        "tenant": nullable(attribute()),
        "data_subject": nullable(attribute()),
        "reason": pattern_of(&NONBLANK),
    });
    let mut schema = json!({
        "type": "object",
        "required": ["reason"],
        "additionalProperties": false,
    });
    if release {
        properties["hold_id"] = json!({"type": ["string", "null"]});
    } else {
        let named =
            |field: &str| json!({"required": [field], "properties": {field: {"type": "string"}}});
        schema["anyOf"] = json!([named("tenant"), named("data_subject")]);
    }
    schema["properties"] = properties;
    schema
}

/// `POST /v1/exports`: a format and the filters of `GET /v1/records`; a bundle is the history
/// of exactly one subject or one data subject.
pub(crate) fn create_export(axis_names: &[String]) -> Value {
    let text = json!({"type": ["string", "null"]});
    let named =
        |field: &str| json!({"required": [field], "properties": {field: {"type": "string"}}});
    let filters = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "scope": text, "tenant": text, "subject": text, "data_subject": text,
            "type": text, "source": text, "actor": text,
            "axes": {
                "type": "object",
                "description": "pack axes: NAME → VALUE (a user pack's axes too)",
                "propertyNames": {"enum": axis_names},
                "additionalProperties": {"type": "string"},
            },
            "from": nullable(pattern_of(&TIME_BOUND)),
            "to": nullable(pattern_of(&TIME_BOUND)),
            "valid_at": nullable(pattern_of(&TIME_BOUND)),
            "view": {"enum": ["history", "current", null]},
            "as_of": nullable(pattern_of(&AS_OF)),
            "checkpoint": {"type": ["string", "null"], "description": "prove against this signed checkpoint of the log (its note text) instead of a stored one"},
        },
    });
    json!({
        "type": "object",
        "required": ["format"],
        "additionalProperties": false,
        "properties": {
            "format": {"enum": ["jsonl", "parquet", "bundle"]},
            "filters": filters,
        },
        "anyOf": [
            {"properties": {"format": {"enum": ["jsonl", "parquet"]}}},
            {
                "required": ["filters"],
                "properties": {
                    "format": {"const": "bundle"},
                    "filters": {"oneOf": [named("subject"), named("data_subject")]},
                },
            },
        ],
    })
}

/// `Sealog-Stream: <stream id>/<n>`.
pub(crate) fn stream_header() -> Value {
    json!({
        "type": "string",
        "pattern": "^(?:[A-Za-z0-9_-]{1,64}/0*[1-9][0-9]{0,18})?$",
        "description": "`<stream id>/<n>`: this request is the n-th of an ordered stream (n from 1) and is committed only after request n − 1 of the stream was, which is waited for (`serve --stream-wait-s`); a refused request fails the rest of its stream (409 STREAM_ORDER): start a new one. Empty: no stream.",
    })
}

/// Any JSON value an event may hold: numbers as RFC 8785 writes them back, so integers within
/// ±(2^53 − 1) (a larger one would be sealed as another number; send it as a string).
pub(crate) fn json_value() -> Value {
    let value = json!({"$ref": "#/components/schemas/JsonValue"});
    json!({
        "anyOf": [
            {"type": ["string", "boolean", "null"]},
            {"type": "number", "minimum": -9007199254740991_i64, "maximum": 9007199254740991_i64},
            {"type": "array", "items": value},
            {"type": "object", "additionalProperties": value},
        ]
    })
}
