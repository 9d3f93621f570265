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
