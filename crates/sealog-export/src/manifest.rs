//! `FILE.manifest.json`: what an export holds and what proves it, as RFC 8785 canonical
//! JSON, so that it too is byte-identical for the same export. It names no time of its own.

use serde::{Deserialize, Serialize};

use sealog_ledger::{Query, View};
use sealog_model::time::{format_nanos, parse_rfc3339};

/// What a filtered export proves, and what it does not.
pub const COMPLETENESS: &str = "membership: every record in this export is the leaf `seq` of the log's tree at the signed checkpoint, and satisfies the filters as far as a record alone can show; a filtered export does not prove that no matching record was left out";

/// The order records are written in.
pub(crate) const ORDER: &str = "event time, subject (absent first), seq";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Jsonl,
    Parquet,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Parquet => "parquet",
        }
    }
}

/// The selection an export was made with, in the terms an offline check re-applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    /// (axis, value) pairs every record has, sorted.
    pub equals: Vec<(String, String)>,
    /// Event time at or after (RFC 3339, nanoseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Event time before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_at: Option<String>,
    /// `history` or `current`.
    pub view: String,
    /// The log was cut at this tree size: every record's seq is below it.
    pub as_of: u64,
}

impl Filters {
    /// Whether these select the whole log as of the cut: the history view, no window, no
    /// axis.
    pub fn names_none(&self) -> bool {
        self.equals.is_empty()
            && self.from.is_none()
            && self.to.is_none()
            && self.valid_at.is_none()
            && self.view == "history"
    }

    pub fn of(q: &Query, as_of: u64) -> Self {
        let mut equals = q.equals.clone();
        equals.sort();
        equals.dedup();
        Filters {
            equals,
            from: q.event_from.map(format_nanos),
            to: q.event_to.map(format_nanos),
            valid_at: q.valid_at.map(format_nanos),
            view: match q.view {
                View::History => "history",
                View::Current => "current",
            }
            .to_string(),
            as_of,
        }
    }

    /// The query these filters describe.
    pub fn query(&self) -> Result<Query, String> {
        let view = match self.view.as_str() {
            "history" => View::History,
            "current" => View::Current,
            v => return Err(format!("unknown view {v:?}")),
        };
        let time = |name: &str, v: &Option<String>| {
            v.as_deref()
                .map(|t| parse_rfc3339(t).map_err(|e| format!("filters.{name} {t:?}: {e}")))
                .transpose()
        };
        Ok(Query {
            equals: self.equals.clone(),
            event_from: time("from", &self.from)?,
            event_to: time("to", &self.to)?,
            valid_at: time("valid_at", &self.valid_at)?,
            view,
            ..Query::default()
        })
    }
}

/// Where an export's proof is, relative to the export file: the manifest names no file of
/// its own, so it is the same whatever the export is called.
pub(crate) const PROOF_FILE: &str = "FILE.proof, beside the export FILE (and FILE.manifest.json)";

/// Where the proof is and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofRef {
    /// Where the proof is: always [`PROOF_FILE`].
    pub file: String,
    pub kind: String,
    pub hashes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The manifest's own format version.
    pub sealog_export: u32,
    pub format: Format,
    pub bytes: u64,
    pub count: u64,
    /// SHA-256 of the export file, lowercase hex.
    pub sha256: String,
    pub order: String,
    pub filters: Filters,
    /// The tree size of the checkpoint, which every proof is against.
    pub tree_size: u64,
    /// The signed checkpoint (a C2SP signed note) the export was cut at, as text.
    pub checkpoint: String,
    /// The key that signed it (C2SP verifier key). Pin it from elsewhere when verifying.
    pub verifier_key: String,
    pub proof: ProofRef,
    /// The packs' fingerprint: what the records' axes were derived with.
    pub packs: String,
    pub completeness: String,
    pub sealog_version: String,
    /// SHA-256 of this manifest's canonical JSON without this member: damage anywhere in
    /// the manifest is found, even in what the records cannot contradict (a window widened).
    /// It guards against damage, not forgery; what proves the records is the checkpoint.
    #[serde(default)]
    pub manifest_sha256: String,
}

pub(crate) const VERSION: u32 = 1;

fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let mut it = v.split('.').map(|p| {
        (!p.is_empty()
            && p.len() <= 6
            && p.bytes().all(|b| b.is_ascii_digit())
            && (p == "0" || !p.starts_with('0')))
        .then(|| p.parse::<u64>().ok())
        .flatten()
    });
    let v = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(v)
}

/// Releases from the first that wrote exports (0.1.0) to this one.
fn known_version(v: &str) -> bool {
    let (Some(v), Some(me)) = (parse_version(v), parse_version(env!("CARGO_PKG_VERSION"))) else {
        return false;
    };
    (0, 1, 0) <= v && v <= me
}

impl Manifest {
    /// The manifest's bytes: RFC 8785 canonical JSON and a newline, its `manifest_sha256`
    /// computed over the rest.
    pub fn to_bytes(&self) -> Vec<u8> {
        let sealed = Manifest {
            manifest_sha256: self.digest(),
            ..self.clone()
        };
        let value = serde_json::to_value(&sealed).expect("a manifest is JSON");
        let mut out = sealog_model::jcs::to_vec(&value).expect("a manifest has no unsafe numbers");
        out.push(b'\n');
        out
    }

    /// The manifest with its `manifest_sha256` set.
    pub(crate) fn sealed(self) -> Self {
        Manifest {
            manifest_sha256: self.digest(),
            ..self
        }
    }

    /// SHA-256 of the canonical manifest without `manifest_sha256`.
    fn digest(&self) -> String {
        let mut value = serde_json::to_value(self).expect("a manifest is JSON");
        if let Some(m) = value.as_object_mut() {
            m.remove("manifest_sha256");
        }
        let bytes = sealog_model::jcs::to_vec(&value).expect("a manifest has no unsafe numbers");
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
    }

    /// Parses a manifest, refusing any spelling but the canonical one.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| format!("the manifest is not one: {e}"))?;
        if m.sealog_export != VERSION {
            return Err(format!(
                "manifest format {} is not {VERSION}, the one this Sealog reads",
                m.sealog_export
            ));
        }
        if m.manifest_sha256 != m.digest() {
            return Err(
                "its manifest_sha256 is not its content's: the manifest was changed".into(),
            );
        }
        if m.to_bytes() != bytes {
            return Err("the manifest is not in its canonical form (was it edited?)".into());
        }
        // The fixed texts are what this format says they are; a version is one that made
        // this format (this one or an earlier release).
        for (field, got, want) in [
            ("order", &m.order, ORDER),
            ("completeness", &m.completeness, COMPLETENESS),
            ("proof.file", &m.proof.file, PROOF_FILE),
        ] {
            if got != want {
                return Err(format!("its {field} is not this format's: {got:?}"));
            }
        }
        if !known_version(&m.sealog_version) {
            return Err(format!(
                "it names Sealog {:?}, not a release that writes this format (0.1.0 to {})",
                m.sealog_version,
                env!("CARGO_PKG_VERSION")
            ));
        }
        Ok(m)
    }
}
