//! The on-disk shape of `manifest.json`. Unknown members are errors, so a misspelt rule
//! fails at load instead of silently checking nothing.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    pub(crate) pack: String,
    #[serde(default)]
    pub(crate) version: Option<String>,
    #[serde(default)]
    pub(crate) description: Option<String>,
    /// How long its types' records are kept, by ingest time (ISO 8601 duration, or
    /// "forever"); a type may say otherwise. Seven years when absent.
    #[serde(default)]
    pub(crate) retention: Option<String>,
    /// How long quarantine records of its types are kept; the type's retention when absent.
    #[serde(default)]
    pub(crate) quarantine_retention: Option<String>,
    pub(crate) types: BTreeMap<String, TypeDecl>,
    /// Consistency rules over the records of its types (`sealog check`).
    #[serde(default)]
    pub(crate) checks: Vec<CheckDecl>,
}

/// One consistency rule as a manifest spells it. Which members a rule may carry depends on
/// its `kind`; the compiler refuses the others, so a rule never silently ignores a member.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckDecl {
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) criticality: String,
    pub(crate) message: String,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) types: Vec<String>,
    #[serde(default)]
    pub(crate) anomalies: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) pointers: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) targets: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) edges: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) axis: Option<String>,
    #[serde(default)]
    pub(crate) key: Option<String>,
    #[serde(default)]
    pub(crate) value: Option<String>,
    #[serde(default)]
    pub(crate) within: Option<String>,
    #[serde(default)]
    pub(crate) threshold: Option<u64>,
    #[serde(default)]
    pub(crate) percent: Option<f64>,
    #[serde(default)]
    pub(crate) done: Option<DoneDecl>,
    #[serde(default)]
    pub(crate) from: Option<String>,
    #[serde(default)]
    pub(crate) criticality_by: Option<CriticalityBy>,
    #[serde(default)]
    pub(crate) resolve: Option<ResolveDecl>,
    #[serde(default)]
    pub(crate) side: Option<String>,
}

/// When an obligation counts as met: a field of the subject's state equals a value, or
/// holds any value at all.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DoneDecl {
    pub(crate) field: String,
    #[serde(default)]
    pub(crate) equals: Option<Value>,
}

/// A finding's criticality from a field of the subjects' state (the highest wins).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CriticalityBy {
    pub(crate) field: String,
    pub(crate) values: BTreeMap<String, String>,
}

/// Seed 003 §5.3's automatic resolution: higher authority, then more recent, then human over
/// agent, else escalate; the loser is marked by a relationship record from this template.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResolveDecl {
    pub(crate) authority: String,
    pub(crate) authority_order: Vec<String>,
    pub(crate) principal_type: String,
    pub(crate) superseded_by: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TypeDecl {
    pub(crate) schema: String,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) actor_required: bool,
    #[serde(default)]
    pub(crate) actor_types: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) required: Vec<String>,
    #[serde(default)]
    pub(crate) required_when: Vec<RequiredWhen>,
    #[serde(default)]
    pub(crate) forbidden: Vec<String>,
    #[serde(default)]
    pub(crate) equal: Vec<Vec<String>>,
    #[serde(default)]
    pub(crate) distinct: Vec<Vec<String>>,
    #[serde(default)]
    pub(crate) normalize: NormalizeDecl,
    #[serde(default)]
    pub(crate) subject: Option<String>,
    #[serde(default)]
    pub(crate) scope: Option<String>,
    /// Whose personal data the record is (the person a subject-role key stands for); null or
    /// absent: nobody's.
    #[serde(default)]
    pub(crate) data_subject: Option<String>,
    #[serde(default)]
    pub(crate) supersedes: Option<String>,
    #[serde(default)]
    pub(crate) unique_per_subject: bool,
    #[serde(default)]
    pub(crate) axes: Vec<AxisDecl>,
    /// Fields sealed whole for the data subject, in this order (they may nest). An axis may
    /// read one of them (it indexes a keyed hash), never a field inside one.
    #[serde(default)]
    pub(crate) personal: Vec<String>,
    #[serde(default)]
    pub(crate) retention: Option<String>,
    #[serde(default)]
    pub(crate) state: StateDecl,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequiredWhen {
    pub(crate) when: Condition,
    pub(crate) required: Vec<String>,
}

/// Holds when the value at `pointer` equals (or does not equal) the given JSON value; an
/// absent member equals nothing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Condition {
    pub(crate) pointer: String,
    #[serde(default)]
    pub(crate) equals: Option<Value>,
    #[serde(default)]
    pub(crate) not_equals: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NormalizeDecl {
    #[serde(default)]
    pub(crate) sort: Vec<SortDecl>,
    #[serde(default)]
    pub(crate) defaults: Vec<DefaultDecl>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SortDecl {
    pub(crate) array: String,
    #[serde(default)]
    pub(crate) by: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DefaultDecl {
    pub(crate) pointer: String,
    pub(crate) value: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AxisDecl {
    pub(crate) name: String,
    pub(crate) pointer: String,
    #[serde(default)]
    pub(crate) join: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateDecl {
    #[serde(default)]
    pub(crate) op: Op,
    #[serde(default)]
    pub(crate) set: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) unset: Vec<String>,
    #[serde(default)]
    pub(crate) expect: BTreeMap<String, String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Op {
    Create,
    Update,
    Delete,
    #[default]
    Observe,
}

impl Op {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Observe => "observe",
        }
    }
}
