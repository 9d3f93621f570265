//! The one result each event gets, and why an event was refused before the log.

use serde_json::{Value, json};

use sealog_model::{PrepareError, RecordId};

use crate::quarantine::Finding;

/// Why an event was refused outright: nothing is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: &'static str,
    pub message: String,
    /// The JSON pointer of the offending field, when there is one.
    pub field: Option<String>,
    /// Refused by who may write what (the key's tenant, a reserved type), not for its content.
    pub denied: bool,
}

impl From<PrepareError> for Rejection {
    fn from(e: PrepareError) -> Self {
        Rejection {
            code: e.code(),
            message: e.to_string(),
            field: e.field().map(str::to_string),
            denied: false,
        }
    }
}

impl Rejection {
    pub(crate) fn denied(code: &'static str, message: String, field: &str) -> Self {
        Rejection {
            code,
            message,
            field: Some(field.to_string()),
            denied: true,
        }
    }

    pub fn to_json(&self) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(f) = &self.field {
            error["field"] = json!(f);
        }
        json!({"status": "rejected", "error": error})
    }
}

/// The one result each event gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestResult {
    Appended {
        seq: u64,
        record_id: RecordId,
    },
    Duplicate {
        seq: u64,
        record_id: RecordId,
    },
    Quarantined {
        quarantine_id: RecordId,
        finding: Finding,
    },
    Rejected(Rejection),
    /// A correction whose target is not in the log yet, from a sender that will deliver it
    /// again (a bus): nothing was recorded.
    Deferred {
        record_id: RecordId,
        reason_code: &'static str,
        message: String,
    },
}

impl IngestResult {
    pub fn to_json(&self) -> Value {
        match self {
            IngestResult::Appended { seq, record_id } => {
                json!({"status": "appended", "seq": seq, "record_id": record_id.to_string()})
            }
            IngestResult::Duplicate { seq, record_id } => {
                json!({"status": "duplicate", "seq": seq, "record_id": record_id.to_string()})
            }
            IngestResult::Quarantined {
                quarantine_id,
                finding,
            } => {
                let mut m = serde_json::Map::new();
                m.insert("status".into(), json!("quarantined"));
                m.insert("quarantine_id".into(), json!(quarantine_id.to_string()));
                m.extend(finding.members());
                Value::Object(m)
            }
            IngestResult::Rejected(r) => r.to_json(),
            IngestResult::Deferred {
                record_id,
                reason_code,
                message,
            } => json!({
                "status": "deferred",
                "record_id": record_id.to_string(),
                "reason_code": reason_code,
                "message": message,
            }),
        }
    }

    /// `to_json`'s text, written straight to `out` for the answers most events get (appended,
    /// duplicate) instead of built as a value first: `sealog append` prints one per event.
    pub fn write_json(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        match self {
            IngestResult::Appended { seq, record_id }
            | IngestResult::Duplicate { seq, record_id } => write!(
                out,
                r#"{{"record_id":"{record_id}","seq":{seq},"status":"{}"}}"#,
                self.status()
            ),
            other => write!(out, "{}", other.to_json()),
        }
    }

    pub fn status(&self) -> &'static str {
        match self {
            IngestResult::Appended { .. } => "appended",
            IngestResult::Duplicate { .. } => "duplicate",
            IngestResult::Quarantined { .. } => "quarantined",
            IngestResult::Rejected(_) => "rejected",
            IngestResult::Deferred { .. } => "deferred",
        }
    }

    /// The record's seq, when it is in the canonical log.
    pub fn seq(&self) -> Option<u64> {
        match self {
            IngestResult::Appended { seq, .. } | IngestResult::Duplicate { seq, .. } => Some(*seq),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_written_directly_is_the_text_of_its_json_value() {
        let id = RecordId::of_canonical(b"{}");
        let results = [
            IngestResult::Appended {
                seq: 0,
                record_id: id,
            },
            IngestResult::Duplicate {
                seq: u64::MAX,
                record_id: id,
            },
            IngestResult::Deferred {
                record_id: id,
                reason_code: "SUPERSEDES_TARGET_NOT_FOUND",
                message: "a \"quoted\" target\n".into(),
            },
            IngestResult::Rejected(Rejection {
                code: "INVALID_JSON",
                message: "expected value".into(),
                field: Some("/a".into()),
                denied: false,
            }),
        ];
        for r in results {
            let mut out = Vec::new();
            r.write_json(&mut out).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), r.to_json().to_string());
        }
    }
}
