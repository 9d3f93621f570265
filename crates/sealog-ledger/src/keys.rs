//! Index keys: the one place where what an event is found by becomes the store's opaque
//! keys. The same functions key a fresh event on its way in and a stored record when an
//! index is rebuilt from the log, so the two can never disagree.

use sealog_model::record::Stored;
use sealog_model::{Envelope, RecordId};
use sealog_packs::{Derived, Packs, axes};
use sealog_store::{Indexer, Key};
use sha2::{Digest, Sha256};

use sealog_model::json::Json;

/// The key of an (axis, value) pair.
pub(crate) fn key(axis: &str, value: &str) -> Key {
    let d = Sha256::new()
        .chain_update(axis.as_bytes())
        .chain_update([0])
        .chain_update(value.as_bytes())
        .finalize();
    d[..16].try_into().expect("16 bytes")
}

/// The key of the (tenant, scope, subject) a supersedes chain lives in.
pub(crate) fn chain(tenant: Option<&str>, scope: &str, subject: &str) -> Key {
    let mut k = String::with_capacity(scope.len() + subject.len() + 32);
    k.push_str(tenant.unwrap_or(""));
    k.push('\0');
    k.push_str(scope);
    k.push('\0');
    k.push_str(subject);
    key("chain", &k)
}

/// The key that marks a record as the correction of `target`.
pub(crate) fn supersedes(target: &RecordId) -> Key {
    key("supersedes", &target.to_string())
}

/// Everything the ledger derives from an event to index it and to apply its rules.
pub(crate) struct EventKeys {
    pub(crate) keys: Vec<Key>,
    pub(crate) chain: Option<Key>,
    pub(crate) supersedes: Option<RecordId>,
}

impl EventKeys {
    /// Keys of an event (or a stored record's event) from its envelope and what its pack
    /// derived.
    pub(crate) fn of(env: &Envelope<'_>, derived: Derived) -> Self {
        let scope = derived
            .scope
            .unwrap_or_else(|| env.default_scope().to_string());
        let subject = env.subject.map(str::to_string).or(derived.subject);
        let supersedes = env
            .supersedes
            .or(derived.supersedes.as_deref())
            .and_then(RecordId::parse);
        let chain = subject.as_deref().map(|s| chain(env.tenant, &scope, s));
        let mut keys = Vec::with_capacity(axes::ENVELOPE_AXES.len() + derived.axes.len() + 2);
        keys.extend(axes::envelope_axes(env, &scope, subject.as_deref()).map(|(a, v)| key(a, v)));
        keys.extend(derived.axes.iter().map(|(a, v)| key(a, v)));
        keys.extend(chain);
        keys.extend(supersedes.as_ref().map(self::supersedes));
        keys.sort_unstable();
        keys.dedup();
        EventKeys {
            keys,
            chain,
            supersedes,
        }
    }
}

/// Keys the canonical log's records with the packs, when its index is rebuilt.
pub(crate) struct CanonicalKeys(pub(crate) Packs);

impl Indexer for CanonicalKeys {
    fn keys(&self, stored: &Stored<'_, '_>) -> Vec<Key> {
        let derived = self.0.derive(stored.record, stored.envelope);
        EventKeys::of(stored.envelope, derived).keys
    }

    fn fingerprint(&self) -> String {
        self.0.fingerprint()
    }
}

/// Keys the quarantine log's records: their envelope, the reason and the quarantined type.
pub(crate) struct QuarantineKeys;

impl QuarantineKeys {
    pub(crate) fn of(env: &Envelope<'_>, record: &Json<'_>) -> Vec<Key> {
        let scope = env.default_scope();
        let mut keys: Vec<Key> = axes::envelope_axes(env, scope, env.subject)
            .map(|(a, v)| key(a, v))
            .collect();
        let data = record.get("data");
        // `payload_ref` lets a reader tell "no such payload" from "a payload a record names
        // is gone".
        for (axis, field) in [
            ("reason", "reason_code"),
            ("event_type", "event_type"),
            ("payload_ref", "payload_ref"),
        ] {
            if let Some(v) = data.and_then(|d| d.get(field)).and_then(Json::as_str) {
                keys.push(key(axis, v));
            }
        }
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

impl Indexer for QuarantineKeys {
    fn keys(&self, stored: &Stored<'_, '_>) -> Vec<Key> {
        Self::of(stored.envelope, stored.record)
    }

    fn fingerprint(&self) -> String {
        "quarantine-keys-v3".to_string()
    }
}
