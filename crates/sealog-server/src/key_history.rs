//! The key file checked against the log's account of the keys, at start and on every
//! reload.
//!
//! The key file is outside the log, so it could be deleted, replaced by an older copy or
//! edited. What the log says cannot be taken back: every key the server has seen is an
//! `audit.key_created` record (key id, roles, tenant, data subject) and every revocation an
//! `audit.key_revoked` record. The rule:
//!
//! - once the log holds a key record, a key file that is missing or holds no key is refused
//!   (the server would otherwise run in open mode);
//! - a key that the log records as revoked must be revoked in the file;
//! - a key the log records may not have, in the file, a role, a tenant scope or a data
//!   subject scope wider than in any of its `audit.key_created` records: no role it did not
//!   have (admin counts as having every role), and its tenant and data subject as recorded
//!   (fewer roles, or a scope added, is narrower and allowed);
//! - keys in the log but not in the file are refused anyway (they are unknown); a warning
//!   names them. Keys in the file but not yet in the log are new (made with `sealog keys`
//!   while the server was stopped) and are recorded at start: the log cannot tell them from
//!   forged ones, so the file's owner and mode (0600) still protect it.
//!
//! A running server applies the same rule to each new version of the file, against the log's
//! records and every version it has loaded since (each of which it recorded), and keeps the
//! loaded keys when a new version would widen them.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use sealog_ledger::{LIMIT_MAX, Ledger, Query};
use serde_json::Value;

use crate::keys::{KeyRecord, Role};

pub(crate) const KEY_CREATED: &str = "audit.key_created";
pub(crate) const KEY_REVOKED: &str = "audit.key_revoked";

/// What one key may reach, as one record states it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    roles: BTreeSet<Role>,
    tenant: Option<String>,
    data_subject: Option<String>,
}

impl Grant {
    fn of(k: &KeyRecord) -> Self {
        Grant {
            roles: k.roles.iter().copied().collect(),
            tenant: k.tenant.clone(),
            data_subject: k.data_subject.clone(),
        }
    }

    /// Why `self` reaches further than `was`, if it does.
    fn wider_than(&self, was: &Grant) -> Option<String> {
        let names = |r: &BTreeSet<Role>| r.iter().map(|r| r.as_str()).collect::<Vec<_>>();
        // Admin may do everything: any roles are within it.
        if !(was.roles.contains(&Role::Admin) || self.roles.is_subset(&was.roles)) {
            return Some(format!(
                "roles {:?} where {:?} were recorded",
                names(&self.roles),
                names(&was.roles)
            ));
        }
        // A scope recorded must be kept as it was: none is every tenant (or subject), and
        // another one is someone else's data.
        for (what, now, then) in [
            ("tenant", &self.tenant, &was.tenant),
            ("data subject", &self.data_subject, &was.data_subject),
        ] {
            if then.is_some() && now != then {
                return Some(format!("{what} {now:?} where {then:?} was recorded"));
            }
        }
        None
    }
}

/// The keys as a record of them states: each key's grants (one per `audit.key_created`
/// record of it, or the one loaded key) and whether it is revoked.
#[derive(Debug, Default)]
pub(crate) struct History {
    grants: HashMap<String, Vec<Grant>>,
    revoked: HashSet<String>,
    /// Key records read (both types).
    records: usize,
}

impl History {
    /// The history of these keys alone.
    #[cfg(test)]
    fn of_keys(keys: &[KeyRecord]) -> Self {
        let mut h = History::default();
        h.absorb(keys);
        h
    }

    /// Adds keys a running server loaded: what they grant now limits what they may later.
    pub(crate) fn absorb(&mut self, keys: &[KeyRecord]) {
        for k in keys {
            self.add_grant(&k.id, Grant::of(k));
            if k.is_revoked() {
                self.revoked.insert(k.id.clone());
            }
        }
    }

    /// Adds another history (the log's, at start).
    pub(crate) fn merge(&mut self, other: History) {
        for (id, grants) in other.grants {
            for g in grants {
                self.add_grant(&id, g);
            }
        }
        self.revoked.extend(other.revoked);
        self.records += other.records;
    }

    fn add_grant(&mut self, id: &str, grant: Grant) {
        let grants = self.grants.entry(id.to_string()).or_default();
        if !grants.contains(&grant) {
            grants.push(grant);
        }
    }

    /// Every `audit.key_created` and `audit.key_revoked` record of the log.
    pub(crate) fn of_log(ledger: &Ledger) -> Result<Self, String> {
        let mut h = History::default();
        for kind in [KEY_CREATED, KEY_REVOKED] {
            let mut q = Query {
                equals: vec![("type".into(), kind.into())],
                limit: LIMIT_MAX,
                ..Query::default()
            };
            loop {
                let page = ledger
                    .query(&q)
                    .map_err(|e| format!("cannot read the log's {kind} records: {e}"))?;
                for (seq, bytes) in &page.records {
                    h.add(kind, bytes)
                        .map_err(|m| format!("the {kind} record at seq {seq}: {m}"))?;
                }
                match page.next_after {
                    Some(a) => q.after = Some(a),
                    None => break,
                }
            }
        }
        Ok(h)
    }

    fn add(&mut self, kind: &str, bytes: &[u8]) -> Result<(), String> {
        let record: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let data = &record["data"];
        let id = data["key_id"].as_str().ok_or("no key_id")?.to_string();
        let text = |v: &Value| v.as_str().map(str::to_string);
        let roles = data["roles"]
            .as_array()
            .ok_or("no roles")?
            .iter()
            .map(|r| {
                r.as_str()
                    .ok_or_else(|| "a role is not text".to_string())?
                    .parse::<Role>()
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<BTreeSet<Role>, String>>()?;
        let grant = Grant {
            roles,
            tenant: text(&data["tenant"]),
            data_subject: text(&data["data_subject"]),
        };
        if kind == KEY_REVOKED {
            self.revoked.insert(id);
        } else {
            self.add_grant(&id, grant);
        }
        self.records += 1;
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Why the key file's `keys` grant more than this history allows, if they do.
    pub(crate) fn widened_by(&self, keys: &[KeyRecord]) -> Option<String> {
        for k in keys {
            if self.revoked.contains(&k.id) && !k.is_revoked() {
                return Some(format!(
                    "key {} is revoked but active in the key file",
                    k.id
                ));
            }
            let now = Grant::of(k);
            for was in self.grants.get(&k.id).into_iter().flatten() {
                if let Some(why) = now.wider_than(was) {
                    return Some(format!("key {} has {why}", k.id));
                }
            }
        }
        None
    }

    /// Keys this history knows that `keys` lacks.
    pub(crate) fn missing_from(&self, keys: &[KeyRecord]) -> Vec<String> {
        let present: HashSet<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        let mut missing: Vec<String> = self
            .grants
            .keys()
            .filter(|id| !present.contains(id.as_str()))
            .cloned()
            .collect();
        missing.sort();
        missing
    }
}

/// How to recover, for every refusal to start over the key file.
fn recovery(path: &Path, data_dir: &Path) -> String {
    format!(
        "To recover, restore {path} from a backup. To start over with new keys instead, move \
         {path} aside if it is there and create one with `sealog --data {dir} keys create --role \
         admin`: the server then starts with only the keys in the new file, warns that the keys \
         recorded in the log are missing, and records the new key in the log.",
        path = path.display(),
        dir = data_dir.display()
    )
}

/// The start-up rule: `Err` is the whole message for the operator; `Ok` carries the log's
/// history, for the running server to keep checking against, and warnings.
pub(crate) fn check_at_start(
    ledger: &Ledger,
    keys: &[KeyRecord],
    data_dir: &Path,
) -> Result<(History, Vec<String>), String> {
    let path = crate::keys::file_path(data_dir);
    let history = History::of_log(ledger)?;
    if history.is_empty() {
        return Ok((history, Vec::new()));
    }
    if keys.is_empty() {
        return Err(format!(
            "refusing to start: the log records API keys ({} audit.key_* records), but {} is \
             missing or holds no key. Without it the server would run in open mode (no \
             authentication, every request served as admin), and open mode ends for good with \
             the first key. {}",
            history.records,
            path.display(),
            recovery(&path, data_dir)
        ));
    }
    if let Some(why) = history.widened_by(keys) {
        return Err(format!(
            "refusing to start: {} grants more than the log records: {why}. The key file was \
             edited or replaced; keys are only ever created or revoked. {}",
            path.display(),
            recovery(&path, data_dir)
        ));
    }
    let missing = history.missing_from(keys);
    let warnings = if missing.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "{} lacks {} key(s) the log records ({}); they cannot be used. The file was \
             restored from an older copy or recreated.",
            path.display(),
            missing.len(),
            missing.join(", ")
        )]
    };
    Ok((history, warnings))
}

/// The message for a key file that cannot be read or is damaged at start.
pub(crate) fn damaged(e: &crate::keys::KeyError, data_dir: &Path) -> String {
    let path = crate::keys::file_path(data_dir);
    format!(
        "refusing to start: {e}. The server never starts with a key file it cannot read (it \
         would not know which keys to honour, and must not fall back to open mode). {}",
        recovery(&path, data_dir)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, roles: &[Role], tenant: Option<&str>, revoked: bool) -> KeyRecord {
        KeyRecord {
            id: id.into(),
            sha256: String::new(),
            roles: roles.to_vec(),
            tenant: tenant.map(str::to_string),
            data_subject: None,
            label: None,
            created_at: "t".into(),
            created_by: "b".into(),
            revoked_at: revoked.then(|| "t".into()),
            revoked_by: revoked.then(|| "b".into()),
        }
    }

    #[test]
    fn only_a_narrower_key_file_passes() {
        let recorded = [
            key("a", &[Role::Reader, Role::Writer], Some("t"), false),
            key("r", &[Role::Reader], None, true),
        ];
        let h = History::of_keys(&recorded);
        assert_eq!(h.widened_by(&recorded), None);
        let narrower = [key("a", &[Role::Reader], Some("t"), false)];
        assert_eq!(
            h.widened_by(&narrower),
            None,
            "fewer roles, and a key dropped"
        );
        assert_eq!(h.missing_from(&narrower), ["r"]);
        let new_key = [key("n", &[Role::Admin], None, false)];
        assert_eq!(
            h.widened_by(&new_key),
            None,
            "a key the history does not know"
        );
        for (wider, why) in [
            (key("a", &[Role::Admin], Some("t"), false), "roles"),
            (key("a", &[Role::Reader], None, false), "tenant"),
            (key("a", &[Role::Reader], Some("u"), false), "tenant"),
            (key("r", &[Role::Reader], None, false), "revoked"),
        ] {
            let got = h.widened_by(std::slice::from_ref(&wider));
            assert!(
                got.as_deref().is_some_and(|m| m.contains(why)),
                "{wider:?}: {got:?}"
            );
        }
        let unscoped = History::of_keys(&[key("u", &[Role::Reader], None, false)]);
        assert_eq!(
            unscoped.widened_by(&[key("u", &[Role::Reader], Some("t"), false)]),
            None,
            "a scope added narrows"
        );
    }
}
