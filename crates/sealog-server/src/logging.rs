//! Structured logs via `tracing`: text for people, JSON for collectors. `RUST_LOG` (or
//! `SEALOG_LOG`) selects levels; the default is `info`.
//!
//! A JSON line follows the OpenTelemetry log data model: `timestamp`, `severity_text`,
//! `severity_number`, `body` (the message), `attributes` (the event's fields and those of
//! the spans it is in, named by OpenTelemetry's semantic conventions where one applies:
//! `http.route`, `http.request.method`, `http.response.status_code`), `trace_id` when the
//! request carried a W3C trace context, and `resource` (`service.name`, `service.version`).

use std::fmt;

use serde_json::{Map, Value, json};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber, writing to standard error. Safe to call twice.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("SEALOG_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(OtelJson)
            .try_init(),
    };
}

/// One JSON object per event, in the OpenTelemetry log data model's names.
struct OtelJson;

/// An event's fields as JSON values; `message` is the body.
#[derive(Default)]
struct Fields {
    body: Option<String>,
    attributes: Map<String, Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.body = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.attributes.insert(field.name().to_string(), value);
        }
    }
}

/// OpenTelemetry's severity numbers for tracing's levels.
fn severity(level: &Level) -> (&'static str, u8) {
    match *level {
        Level::TRACE => ("TRACE", 1),
        Level::DEBUG => ("DEBUG", 5),
        Level::INFO => ("INFO", 9),
        Level::WARN => ("WARN", 13),
        Level::ERROR => ("ERROR", 17),
    }
}

impl<S, N> FormatEvent<S, N> for OtelJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        // The spans' fields first, outermost first: an event's own field of the same name wins.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(text) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) {
                    fields.attributes.extend(map);
                }
            }
        }
        event.record(&mut fields);
        let meta = event.metadata();
        fields
            .attributes
            .insert("code.namespace".into(), Value::from(meta.target()));
        let (text, number) = severity(meta.level());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let mut line = json!({
            "timestamp": sealog_model::time::format_nanos(now),
            "severity_text": text,
            "severity_number": number,
            "body": fields.body.unwrap_or_default(),
            "resource": {"service.name": "sealog", "service.version": env!("CARGO_PKG_VERSION")},
        });
        if let Some(trace) = fields.attributes.remove("trace_id") {
            line["trace_id"] = trace;
        }
        line["attributes"] = Value::Object(fields.attributes);
        writeln!(writer, "{line}")
    }
}
