//! A finding: what a rule found, on which subjects, with the records that show it. Its id
//! is a hash of exactly that, so it is recorded once however many runs see it.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use sealog_packs::{CheckRule, Criticality};

use crate::subjects::{Cited, SubjectKey};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub conflict_id: String,
    pub rule: String,
    pub kind: String,
    pub criticality: Criticality,
    pub message: String,
    pub tenant: Option<String>,
    pub scope: String,
    pub subjects: Vec<String>,
    /// The evidence: (seq, record_id), by seq.
    pub records: Vec<(u64, String)>,
    /// What the finding is about beyond its subjects (a claim's key, a key id).
    pub key: Option<String>,
    /// Whether this run recorded it (false: an earlier run had).
    pub new: bool,
    /// An automatic resolution made when it was recorded.
    pub auto_resolution: Option<String>,
}

/// The most evidence records a finding carries: enough to investigate, bounded in size.
pub(crate) const EVIDENCE_MAX: usize = 100;

impl Finding {
    pub(crate) fn new(
        rule: &CheckRule,
        at: &SubjectKey,
        subjects: Vec<String>,
        evidence: Vec<Cited>,
        key: Option<String>,
    ) -> Finding {
        Finding::of(
            (
                &rule.name,
                rule.kind.name(),
                rule.criticality,
                &rule.message,
            ),
            at,
            subjects,
            evidence,
            key,
        )
    }

    /// A finding about one subject, with no key beyond it.
    pub(crate) fn about(rule: &CheckRule, at: &SubjectKey, evidence: Vec<Cited>) -> Finding {
        Finding::new(rule, at, vec![at.subject.clone()], evidence, None)
    }

    pub(crate) fn of(
        (rule, kind, criticality, message): (&str, &str, Criticality, &str),
        at: &SubjectKey,
        mut subjects: Vec<String>,
        evidence: Vec<Cited>,
        key: Option<String>,
    ) -> Finding {
        subjects.sort();
        subjects.dedup();
        let mut records: Vec<(u64, String)> =
            evidence.into_iter().map(|c| (c.seq, c.record_id)).collect();
        records.sort();
        records.dedup();
        records.truncate(EVIDENCE_MAX);
        let mut h = Sha256::new();
        let mut part = |p: &str| {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p.as_bytes());
        };
        part(rule);
        part(at.tenant.as_deref().unwrap_or("\u{0}"));
        part(&at.scope);
        for s in &subjects {
            part(s);
        }
        part(key.as_deref().unwrap_or("\u{0}"));
        for (_, id) in &records {
            part(id);
        }
        let conflict_id = format!("cf-{}", &hex::encode(h.finalize())[..32]);
        Finding {
            conflict_id,
            rule: rule.to_string(),
            kind: kind.to_string(),
            criticality,
            message: message.to_string(),
            tenant: at.tenant.clone(),
            scope: at.scope.clone(),
            subjects,
            records,
            key,
            new: false,
            auto_resolution: None,
        }
    }

    /// The `sealog.conflict` record's data.
    pub(crate) fn record_data(&self, run_id: &str) -> Value {
        let mut d = json!({
            "conflict_id": self.conflict_id,
            "rule": self.rule,
            "kind": self.kind,
            "criticality": self.criticality.as_str(),
            "status": "open",
            "message": self.message,
            "scope": self.scope,
            "subjects": self.subjects,
            "records": self.records.iter().map(|(s, _)| s).collect::<Vec<_>>(),
            "record_ids": self.records.iter().map(|(_, id)| id).collect::<Vec<_>>(),
            "run_id": run_id,
        });
        if let Some(k) = &self.key {
            d["key"] = json!(k);
        }
        d
    }

    /// The finding as `sealog check` prints it.
    pub fn to_json(&self) -> Value {
        let mut v = self.record_data("");
        let m = v.as_object_mut().expect("an object");
        m.remove("run_id");
        m.remove("status");
        m.insert("tenant".into(), json!(self.tenant));
        m.insert("new".into(), json!(self.new));
        if let Some(r) = &self.auto_resolution {
            m.insert("auto_resolution".into(), json!(r));
        }
        v
    }
}
