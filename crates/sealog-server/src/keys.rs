//! API keys: `DATA/access/keys`, a JSON file holding each key's SHA-256, roles, tenant scope
//! and history. The secret itself is shown once at creation and never stored.
//!
//! The file is outside the store and is not covered by the store's `LOCK`, so `sealog keys`
//! can manage keys while a server runs. Writers serialize on `DATA/access/keys.lock` and
//! replace the file atomically (write a temporary file, fsync, rename, fsync the directory);
//! readers never lock and always see a whole file.
//!
//! *Invariant*: a key is never deleted from the file, only revoked, so the file is the full
//! history the server turns into `audit.key_created` / `audit.key_revoked` records.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The first line of defence against a key pasted into the wrong place: every key says what it is.
pub const SECRET_PREFIX: &str = "slk_";
const FORMAT: &str = "sealog-keys 1";

/// What a key may do (PRODUCT.md §9).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Append events.
    Writer,
    /// Read canonical records in scope.
    Reader,
    /// Reader, plus proofs, checkpoints and tiles.
    Auditor,
    /// Everything, including key management.
    Admin,
    /// One data subject's own records.
    Subject,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Writer,
        Role::Reader,
        Role::Auditor,
        Role::Admin,
        Role::Subject,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Writer => "writer",
            Role::Reader => "reader",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
            Role::Subject => "subject",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                KeyError::Invalid(format!(
                    "unknown role {s:?}; roles are writer, reader, auditor, admin, subject"
                ))
            })
    }
}

/// One key as stored. `sha256` is the hex SHA-256 of the whole secret text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    pub sha256: String,
    pub roles: Vec<Role>,
    pub tenant: Option<String>,
    pub data_subject: Option<String>,
    pub label: Option<String>,
    pub created_at: String,
    pub created_by: String,
    pub revoked_at: Option<String>,
    pub revoked_by: Option<String>,
}

impl KeyRecord {
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// What a new key may do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySpec {
    pub roles: Vec<Role>,
    pub tenant: Option<String>,
    pub data_subject: Option<String>,
    pub label: Option<String>,
}

impl KeySpec {
    /// Checks the combination §9 allows: at least one role; `subject` alone and always with
    /// its data subject; non-empty, bounded scope strings.
    pub fn validate(&mut self) -> Result<(), KeyError> {
        self.roles.sort_unstable();
        self.roles.dedup();
        if self.roles.is_empty() {
            return Err(KeyError::Invalid("a key needs at least one role".into()));
        }
        let subject = self.roles.contains(&Role::Subject);
        if subject && self.roles.len() > 1 {
            return Err(KeyError::Invalid(
                "the subject role cannot be combined with other roles".into(),
            ));
        }
        if subject != self.data_subject.is_some() {
            return Err(KeyError::Invalid(
                "a data subject is given exactly when the role is subject".into(),
            ));
        }
        for (name, v, form) in [
            ("tenant", &self.tenant, &crate::formats::SCOPE_NAME),
            (
                "data subject",
                &self.data_subject,
                &crate::formats::SCOPE_NAME,
            ),
            ("label", &self.label, &crate::formats::LABEL),
        ] {
            if let Some(v) = v
                && !form.matches(v)
            {
                return Err(KeyError::Invalid(format!(
                    "the {name} must be {}",
                    form.description()
                )));
            }
        }
        Ok(())
    }
}

/// A freshly created key: the only time its secret exists outside its holder.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub secret: String,
    pub record: KeyRecord,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("{0}")]
    Invalid(String),
    #[error("no key {0}")]
    NotFound(String),
    #[error("key {0} is already revoked")]
    AlreadyRevoked(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged: {message}")]
    Corrupted { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Serialize, Deserialize)]
struct FileBody {
    format: String,
    keys: Vec<KeyRecord>,
}

/// `DATA/access/keys`.
pub fn file_path(data_dir: &Path) -> PathBuf {
    sealog_ledger::DataLayout::new(data_dir).access_keys()
}

/// Every key ever created, revoked ones included, in creation order.
pub fn load(data_dir: &Path) -> Result<Vec<KeyRecord>, KeyError> {
    parse_file(&file_path(data_dir))
}

pub(crate) fn parse_file(path: &Path) -> Result<Vec<KeyRecord>, KeyError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(path)(e)),
    };
    // Said plainly: the parser's "EOF while parsing a value" hides that the file is empty
    // (truncated, or emptied by a redirection), which is not the same as holding no key.
    if bytes.trim_ascii().is_empty() {
        return Err(KeyError::Corrupted {
            path: path.to_path_buf(),
            message: "it is empty".into(),
        });
    }
    let body: FileBody = serde_json::from_slice(&bytes).map_err(|e| KeyError::Corrupted {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let damaged = |message: String| KeyError::Corrupted {
        path: path.to_path_buf(),
        message,
    };
    if body.format != FORMAT {
        return Err(damaged(format!("unknown format {:?}", body.format)));
    }
    let mut ids = std::collections::HashSet::new();
    let mut hashes = std::collections::HashSet::new();
    for k in &body.keys {
        k.check()
            .map_err(|m| damaged(format!("key {:?}: {m}", k.id)))?;
        if !ids.insert(&k.id) || !hashes.insert(&k.sha256) {
            return Err(damaged(format!("key {:?} appears twice", k.id)));
        }
    }
    Ok(body.keys)
}

impl KeyRecord {
    /// What every stored key must satisfy: a SHA-256 and the id derived from it (so a hash
    /// cannot be swapped under a known id), roles and scope as `KeySpec::validate` allows,
    /// and a revocation that is whole.
    fn check(&self) -> Result<(), String> {
        let mut digest = [0u8; 32];
        hex::decode_to_slice(&self.sha256, &mut digest)
            .map_err(|_| "its sha256 is not 64 hex digits".to_string())?;
        if self.id != key_id(&digest) {
            return Err(format!(
                "its id does not match its sha256 (expected {})",
                key_id(&digest)
            ));
        }
        KeySpec {
            roles: self.roles.clone(),
            tenant: self.tenant.clone(),
            data_subject: self.data_subject.clone(),
            label: self.label.clone(),
        }
        .validate()
        .map_err(|e| e.to_string())?;
        if self.revoked_at.is_some() != self.revoked_by.is_some() {
            return Err("revoked_at and revoked_by must be both set or both absent".into());
        }
        if self.created_at.is_empty() || self.created_by.is_empty() {
            return Err("created_at and created_by must be set".into());
        }
        Ok(())
    }
}

/// Creates a key and records it; returns the secret, which is not kept anywhere.
pub fn create(data_dir: &Path, mut spec: KeySpec, created_by: &str) -> Result<NewKey, KeyError> {
    spec.validate()?;
    // The key file and the key's records name the person by pseudonym only.
    if let Some(s) = &spec.data_subject {
        spec.data_subject = Some(
            sealog_ledger::pseudonym_in(data_dir, s)
                .map_err(|e| KeyError::Invalid(format!("the data subject's pseudonym: {e}")))?,
        );
    }
    update(data_dir, |keys| {
        let (secret, digest) = loop {
            let mut raw = [0u8; 32];
            getrandom::fill(&mut raw)
                .map_err(|e| KeyError::Invalid(format!("no randomness for a key: {e}")))?;
            let secret = format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw));
            let digest = hash_secret(&secret);
            if !keys.iter().any(|k| k.id == key_id(&digest)) {
                break (secret, digest);
            }
        };
        let record = KeyRecord {
            id: key_id(&digest),
            sha256: hex::encode(digest),
            roles: spec.roles.clone(),
            tenant: spec.tenant.clone(),
            data_subject: spec.data_subject.clone(),
            label: spec.label.clone(),
            created_at: now_text(),
            created_by: created_by.to_string(),
            revoked_at: None,
            revoked_by: None,
        };
        keys.push(record.clone());
        Ok(NewKey { secret, record })
    })
}

/// Revokes a key. `in_tenant` limits which keys may be revoked (a tenant admin's).
pub fn revoke(
    data_dir: &Path,
    id: &str,
    revoked_by: &str,
    in_tenant: Option<&str>,
) -> Result<KeyRecord, KeyError> {
    update(data_dir, |keys| {
        let key = keys
            .iter_mut()
            .find(|k| k.id == id && (in_tenant.is_none() || k.tenant.as_deref() == in_tenant))
            .ok_or_else(|| KeyError::NotFound(id.to_string()))?;
        if key.is_revoked() {
            return Err(KeyError::AlreadyRevoked(id.to_string()));
        }
        key.revoked_at = Some(now_text());
        key.revoked_by = Some(revoked_by.to_string());
        Ok(key.clone())
    })
}

/// The SHA-256 of a secret, as stored and as looked up.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A key's public name: derived from its hash, so it can be shown and logged freely.
fn key_id(digest: &[u8; 32]) -> String {
    format!("key_{}", hex::encode(&digest[..8]))
}

pub(crate) fn now_text() -> String {
    sealog_model::time::format_micros(now_nanos())
}

pub(crate) fn now_nanos() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Read-modify-write of the key file under its lock.
fn update<T>(
    data_dir: &Path,
    change: impl FnOnce(&mut Vec<KeyRecord>) -> Result<T, KeyError>,
) -> Result<T, KeyError> {
    let layout = sealog_ledger::DataLayout::new(data_dir);
    let dir = layout.access();
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    let lock_path = layout.access_keys_lock();
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    lock.lock().map_err(io(&lock_path))?;
    let path = file_path(data_dir);
    let mut keys = parse_file(&path)?;
    let out = change(&mut keys)?;
    let body = FileBody {
        format: FORMAT.to_string(),
        keys,
    };
    let mut text = serde_json::to_vec_pretty(&body).expect("key records serialize");
    text.push(b'\n');
    crate::aside::replace(&path, &text).map_err(|(p, e)| io(&p)(e))?;
    drop(lock);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(roles: &[Role], tenant: Option<&str>, subject: Option<&str>) -> KeySpec {
        KeySpec {
            roles: roles.to_vec(),
            tenant: tenant.map(str::to_string),
            data_subject: subject.map(str::to_string),
            label: None,
        }
    }

    #[test]
    fn create_stores_only_the_hash_and_revoke_keeps_history() {
        let dir = tempfile::tempdir().unwrap();
        let k = create(dir.path(), spec(&[Role::Reader], Some("a"), None), "cli").unwrap();
        assert!(k.secret.starts_with(SECRET_PREFIX));
        let text = fs::read_to_string(file_path(dir.path())).unwrap();
        assert!(!text.contains(&k.secret[SECRET_PREFIX.len()..]));
        assert!(text.contains(&hex::encode(hash_secret(&k.secret))));
        let r = revoke(dir.path(), &k.record.id, "cli", None).unwrap();
        assert!(r.is_revoked());
        assert!(matches!(
            revoke(dir.path(), &k.record.id, "cli", None),
            Err(KeyError::AlreadyRevoked(_))
        ));
        let keys = load(dir.path()).unwrap();
        assert_eq!(keys.len(), 1);
        assert!(keys[0].is_revoked());
    }

    #[test]
    fn tenant_admins_revoke_only_their_tenants_keys() {
        let dir = tempfile::tempdir().unwrap();
        let k = create(dir.path(), spec(&[Role::Writer], Some("b"), None), "cli").unwrap();
        assert!(matches!(
            revoke(dir.path(), &k.record.id, "x", Some("a")),
            Err(KeyError::NotFound(_))
        ));
    }

    #[test]
    fn a_key_record_that_fails_its_checks_makes_the_file_damaged() {
        let dir = tempfile::tempdir().unwrap();
        create(dir.path(), spec(&[Role::Reader], None, None), "cli").unwrap();
        create(dir.path(), spec(&[Role::Writer], None, None), "cli").unwrap();
        let path = file_path(dir.path());
        let good: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        let other_hash = good["keys"][1]["sha256"].clone();
        let damaged = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| {
            let mut v = good.clone();
            edit(&mut v);
            fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
            assert!(
                matches!(load(dir.path()), Err(KeyError::Corrupted { .. })),
                "{name}"
            );
        };
        damaged("hash swapped", &|v| {
            v["keys"][0]["sha256"] = other_hash.clone();
        });
        damaged("hash not hex", &|v| v["keys"][0]["sha256"] = "zz".into());
        damaged("no role", &|v| {
            v["keys"][0]["roles"] = serde_json::json!([])
        });
        damaged("subject with reader", &|v| {
            v["keys"][0]["roles"] = serde_json::json!(["reader", "subject"]);
        });
        damaged("half revoked", &|v| {
            v["keys"][0]["revoked_at"] = "2026-01-01T00:00:00Z".into();
        });
        damaged("twice", &|v| {
            let k = v["keys"][0].clone();
            v["keys"].as_array_mut().unwrap().push(k);
        });
        damaged("empty tenant", &|v| v["keys"][0]["tenant"] = "".into());
        fs::write(&path, serde_json::to_vec(&good).unwrap()).unwrap();
        assert_eq!(load(dir.path()).unwrap().len(), 2);
    }

    #[test]
    fn refuses_role_combinations_section_9_does_not_allow() {
        for bad in [
            spec(&[], None, None),
            spec(&[Role::Subject], Some("a"), None),
            spec(&[Role::Reader], None, Some("s")),
            spec(&[Role::Subject, Role::Reader], None, Some("s")),
            spec(&[Role::Reader], Some(""), None),
            spec(&[Role::Reader], Some("a\nb"), None),
        ] {
            assert!(
                matches!(bad.clone().validate(), Err(KeyError::Invalid(_))),
                "{bad:?}"
            );
        }
        assert!(
            spec(&[Role::Subject], Some("a"), Some("s"))
                .validate()
                .is_ok()
        );
    }
}
