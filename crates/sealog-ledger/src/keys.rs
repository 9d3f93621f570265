//! Index keys: the one place where what an event is found by becomes the store's opaque
//! keys. The same functions key a fresh event on its way in and a stored record when an
//! index is rebuilt from the log, so the two can never disagree.

use std::ops::Deref;
use std::sync::Arc;

use sealog_model::record::Stored;
use sealog_model::{Envelope, RecordId};
use sealog_packs::{Derived, Packs, axes};
use sealog_store::{Indexer, Key};
use sha2::{Digest, Sha256};

use sealog_model::json::Json;

use crate::privacy::{self, Privacy};

/// The packs with the keys that turn what they derive into what is indexed (pseudonyms and
/// keyed hashes for personal values): every derivation of a record goes through here.
#[derive(Clone)]
pub(crate) struct Deriver {
    pub(crate) packs: Packs,
    /// `None` only where no data directory is at hand (an export checked offline).
    pub(crate) privacy: Option<Arc<Privacy>>,
}

impl Deref for Deriver {
    type Target = Packs;
    fn deref(&self) -> &Packs {
        &self.packs
    }
}

impl Deriver {
    pub(crate) fn derive(&self, event: &Json<'_>, env: &Envelope<'_>) -> Derived {
        let mut d = self.packs.derive(event, env);
        privacy::key_derived(
            self.privacy.as_deref(),
            &mut d,
            self.packs.personal_axes(),
            None,
        );
        d
    }

    /// What [`Deriver::derive`] gives, its axes already hashed into their index keys (in no
    /// order, possibly repeated): each value is hashed where the event holds it, where
    /// collecting the axes made two strings of each and sorted them. `sealed_for`: the
    /// pseudonym a fresh event was just sealed for ([`privacy::key_derived`]).
    pub(crate) fn derive_keyed(
        &self,
        event: &Json<'_>,
        env: &Envelope<'_>,
        sealed_for: Option<&[u8; 16]>,
    ) -> (Derived, Vec<Key>) {
        let personal = self.packs.personal_axes();
        let mut keys = Vec::with_capacity(32);
        let mut held = Vec::new();
        // An axis hands its values one after another, and its name is the same string each
        // time: whether it is personal is looked up once per axis, not once per value.
        let mut last: (*const u8, usize, bool) = (std::ptr::null(), 0, false);
        let mut d = self.packs.derive_each(event, env, |name, value| {
            if (name.as_ptr(), name.len()) != (last.0, last.1) {
                last = (name.as_ptr(), name.len(), personal.contains(name));
            }
            if last.2 {
                held.push((name.to_string(), value.to_string()));
            } else {
                keys.push(key(name, value));
            }
        });
        // Personal values (rare) go the way `derive` takes them, to their keyed hashes.
        d.axes = held;
        privacy::key_derived(self.privacy.as_deref(), &mut d, personal, sealed_for);
        keys.extend(d.axes.drain(..).map(|(a, v)| key(&a, &v)));
        (d, keys)
    }
}

/// The key of the quarantine records whose payload is sealed for a data subject (pseudonym)
/// in a tenant: what erasure deletes. (Canonical records sealed for a subject are found by
/// their `data_subject` key, which every one of them carries.)
pub(crate) fn sealed_for(tenant: Option<&str>, pseudonym: &str) -> Key {
    let mut k = String::with_capacity(pseudonym.len() + 32);
    k.push_str(tenant.unwrap_or(""));
    k.push('\0');
    k.push_str(pseudonym);
    key("sealed_for", &k)
}

/// The key of an (axis, value) pair: the first 16 bytes of SHA-256(axis, 0, value).
pub(crate) fn key(axis: &str, value: &str) -> Key {
    let (a, v) = (axis.as_bytes(), value.as_bytes());
    if a.len() + 1 + v.len() <= ONE_BLOCK_MAX {
        return one_block_key(a, v);
    }
    let d = Sha256::new()
        .chain_update(a)
        .chain_update([0])
        .chain_update(v)
        .finalize();
    d[..16].try_into().expect("16 bytes")
}

/// The longest message SHA-256 pads into a single block (its length takes eight bytes and
/// the padding at least one).
const ONE_BLOCK_MAX: usize = 55;

/// SHA-256's initial state (FIPS 180-4 §5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// [`key`] of a short pair, padded by hand into its one block: most keys are, and a
/// streaming hasher's buffering cost as much as compressing the block.
fn one_block_key(axis: &[u8], value: &[u8]) -> Key {
    let len = axis.len() + 1 + value.len();
    let mut block = [0u8; 64];
    block[..axis.len()].copy_from_slice(axis);
    block[axis.len() + 1..len].copy_from_slice(value);
    block[len] = 0x80;
    block[56..].copy_from_slice(&((len as u64) * 8).to_be_bytes());
    let mut state = SHA256_IV;
    sha2::block_api::compress256(&mut state, std::slice::from_ref(&block));
    let mut out = [0u8; 16];
    for (o, w) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

/// The key of the (tenant, kind, scope, subject) a supersedes chain lives in: the kind (the
/// subject's pack and field, [`sealog_packs::Derived::kind`]) keeps resources of different
/// kinds that share an id, or Sealog's own records, out of each other's chains.
pub(crate) fn chain(tenant: Option<&str>, kind: Option<&str>, scope: &str, subject: &str) -> Key {
    let kind = kind.unwrap_or("");
    let mut k = String::with_capacity(kind.len() + scope.len() + subject.len() + 32);
    k.push_str(tenant.unwrap_or(""));
    k.push('\0');
    k.push_str(kind);
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

/// The key every correction carries, so a view can walk the corrections alone.
pub(crate) fn correction() -> Key {
    key("correction", "")
}

/// Everything the ledger derives from an event to index it and to apply its rules.
pub(crate) struct EventKeys {
    pub(crate) keys: Vec<Key>,
    pub(crate) chain: Option<Key>,
    pub(crate) supersedes: Option<RecordId>,
}

impl EventKeys {
    /// Keys of an event (or a stored record's event) from its envelope and what its pack
    /// derived, its axes hashed already ([`Deriver::derive_keyed`]).
    pub(crate) fn of(env: &Envelope<'_>, derived: Derived, axis_keys: Vec<Key>) -> Self {
        let scope = derived
            .scope
            .unwrap_or_else(|| env.default_scope().to_string());
        let subject = env.subject.map(str::to_string).or(derived.subject);
        let supersedes = env
            .supersedes
            .or(derived.supersedes.as_deref())
            .and_then(RecordId::parse);
        let chain =
            (subject.as_deref()).map(|s| chain(env.tenant, derived.kind.as_deref(), &scope, s));
        let mut keys = axis_keys;
        keys.reserve(axes::ENVELOPE_AXES.len() + 3);
        let data_subject = derived.data_subject.as_deref();
        keys.extend(
            axes::envelope_axes(env, &scope, subject.as_deref(), data_subject)
                .map(|(a, v)| key(a, v)),
        );
        keys.extend(chain);
        keys.extend(supersedes.as_ref().map(self::supersedes));
        keys.extend(supersedes.is_some().then(correction));
        // As numbers, the same order as the bytes', without a memcmp call per comparison.
        keys.sort_unstable_by_key(|k| u128::from_be_bytes(*k));
        keys.dedup();
        EventKeys {
            keys,
            chain,
            supersedes,
        }
    }
}

/// Keys the canonical log's records with the packs, when its index is rebuilt.
pub(crate) struct CanonicalKeys(pub(crate) Deriver);

impl Indexer for CanonicalKeys {
    fn keys(&self, stored: &Stored<'_, '_>) -> Vec<Key> {
        let (derived, axis_keys) = self.0.derive_keyed(stored.record, stored.envelope, None);
        EventKeys::of(stored.envelope, derived, axis_keys).keys
    }

    /// A pruned correction still marks its target as superseded, and a pruned record stays in
    /// its supersedes chain (its stub's key).
    fn stub_keys(&self, stub: &sealog_store::Stub) -> Vec<Key> {
        let mut keys: Vec<Key> = stub
            .link
            .iter()
            .flat_map(|l| [supersedes(&RecordId(*l)), correction()])
            .chain(stub.key)
            .collect();
        keys.sort_unstable();
        keys
    }

    /// The packs' manifests, the version of the keys the ledger adds to theirs, and which
    /// keyed hash names data subjects.
    fn fingerprint(&self) -> String {
        let keyed = self
            .0
            .privacy
            .as_ref()
            .map_or_else(String::new, |p| p.fingerprint());
        format!("{}+ledger-keys-5+{keyed}", self.0.packs.fingerprint())
    }
}

/// Keys the quarantine log's records: their envelope, the reason and the quarantined type.
pub(crate) struct QuarantineKeys;

impl QuarantineKeys {
    pub(crate) fn of(env: &Envelope<'_>, record: &Json<'_>) -> Vec<Key> {
        let scope = env.default_scope();
        // No data subject: a quarantined event never passed the pack that would establish it,
        // so a data-subject key's forced filter finds nothing here.
        let mut keys: Vec<Key> = axes::envelope_axes(env, scope, env.subject, None)
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
        let ps = data
            .and_then(|d| d.get("data_subject_pseudonym"))
            .and_then(Json::as_str);
        keys.extend(ps.map(|ps| sealed_for(env.tenant, ps)));
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
        "quarantine-keys-v4".to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use sealog_packs::Packs;
    use sealog_store::Indexer;
    use serde_json::json;

    use super::{CanonicalKeys, Deriver, EventKeys, Json, Key};
    use crate::{Author, Durability, Ledger, LedgerConfig, Query, StoreConfig, Undeclared};

    /// A key padded by hand into one block is the streaming hash's, at every length up to
    /// the block's limit and past it, with bytes of every value in both halves.
    #[test]
    fn a_one_block_key_is_the_streaming_hash_s() {
        use sha2::{Digest, Sha256};
        for total in 1..=70usize {
            for split in [0, total / 3, total - 1] {
                let bytes: Vec<u8> = (0..total).map(|i| (i * 37 + total) as u8 & 0x7f).collect();
                let (a, v) = (
                    String::from_utf8(bytes[..split].to_vec()).unwrap(),
                    String::from_utf8(bytes[split..total - 1].to_vec()).unwrap(),
                );
                let whole = Sha256::new()
                    .chain_update(a.as_bytes())
                    .chain_update([0])
                    .chain_update(v.as_bytes())
                    .finalize();
                assert_eq!(
                    super::key(&a, &v)[..],
                    whole[..16],
                    "{total} bytes, axis {split}"
                );
            }
        }
    }

    /// A user pack of one type whose data subject, when declared, is `/data/patient`, with
    /// the personal fields given.
    fn visits_with(dir: &Path, data_subject: Option<&str>, personal: &[&str]) -> Packs {
        std::fs::create_dir_all(dir).unwrap();
        let manifest = json!({"pack": "clinic", "types": {"clinic.visit": {
            "schema": "visit.schema.json", "subject": "/data/visit_id",
            "data_subject": data_subject, "personal": personal}}});
        std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
        std::fs::write(dir.join("visit.schema.json"), r#"{"type":"object"}"#).unwrap();
        Packs::load(&[dir]).unwrap()
    }

    fn visits(dir: &Path, data_subject: Option<&str>) -> Packs {
        visits_with(dir, data_subject, &[])
    }

    fn open(dir: &Path, packs: Packs) -> Ledger {
        let store = StoreConfig {
            durability: Durability::Os,
            ..StoreConfig::default()
        };
        let config = LedgerConfig {
            store,
            packs,
            undeclared: Undeclared::Quarantine,
        };
        Ledger::open(dir, config).unwrap()
    }

    fn seqs_of(ledger: &Ledger, patient: &str) -> Vec<u64> {
        let q = Query {
            equals: vec![("data_subject".into(), patient.into())],
            limit: 100,
            ..Query::default()
        };
        let page = ledger.query(&q).unwrap();
        page.records.iter().map(|(seq, _)| *seq).collect()
    }

    /// The keys of an event whose axes are hashed as they are found, against those of its
    /// axes collected, sorted and then hashed.
    fn both_ways(deriver: &Deriver, line: &str) -> (Vec<Key>, Vec<Key>, usize) {
        let tree = Json::parse(line.as_bytes()).unwrap();
        let env = sealog_model::Envelope::fields(&tree).unwrap();
        let (derived, axis_keys) = deriver.derive_keyed(&tree, &env, None);
        let found = EventKeys::of(&env, derived, axis_keys).keys;
        let collected = deriver.derive(&tree, &env);
        let axes = collected.axes.len();
        let hashed = collected
            .axes
            .iter()
            .map(|(a, v)| super::key(a, v))
            .collect();
        (found, EventKeys::of(&env, collected, hashed).keys, axes)
    }

    /// Over every example event (customer ids among them, personal axes keyed by the data
    /// directory's hash), and a pack whose axes repeat values, read numbers, booleans and
    /// objects, join two members and run over array elements.
    #[test]
    fn axes_hashed_as_found_give_the_keys_of_axes_collected_first() {
        let tmp = tempfile::tempdir().unwrap();
        let ledger = open(&tmp.path().join("data"), Packs::builtin());
        let mut axes = 0;
        for line in include_str!("../../../examples/events.ndjson").lines() {
            let (found, collected, n) = both_ways(ledger.deriver(), line);
            assert_eq!(found, collected, "{line}");
            axes += n;
        }
        assert!(axes > 50, "the examples name {axes} axis values");

        let pack = tmp.path().join("tags");
        std::fs::create_dir_all(&pack).unwrap();
        let axis = |name: &str, pointer: &str| json!({"name": name, "pointer": pointer});
        let manifest = json!({"pack": "tags", "types": {"tags.tagged": {
            "schema": "t.schema.json", "subject": "/data/id",
            "data_subject": "/data/who", "personal": ["/data/who", "/data/mail"],
            "axes": [axis("tag", "/data/tags/*"), axis("n", "/data/n"), axis("b", "/data/b"),
                axis("o", "/data/o"), axis("who", "/data/who"), axis("mail", "/data/mail"),
                axis("none", "/data/absent"), axis("nil", "/data/nil"),
                {"name": "pair", "pointer": "/data/pairs/*", "join": ["/k", "/v"]}]}}});
        std::fs::write(pack.join("manifest.json"), manifest.to_string()).unwrap();
        std::fs::write(pack.join("t.schema.json"), r#"{"type":"object"}"#).unwrap();
        let ledger = open(&tmp.path().join("tagged"), Packs::load(&[&pack]).unwrap());
        let event = |data: serde_json::Value| {
            json!({"specversion": "1.0", "id": "t-1", "source": "s", "type": "tags.tagged",
                "time": "2026-12-06T10:00:00Z", "tenant": "acme", "data": data})
            .to_string()
        };
        for data in [
            json!({"id": "a", "who": "p-1", "mail": "p-1", "tags": ["x", "y", "x", "x"],
                "n": 1.5, "b": false, "o": {"z": 1, "a": [2, "é"]}, "nil": null,
                "pairs": [{"k": "a", "v": 1}, {"k": "a", "v": 1}, {"k": "b"}]}),
            json!({"id": "b", "who": "p-2", "mail": "p-3", "tags": [], "n": -7, "pairs": []}),
            json!({"id": "c", "tags": "not a list", "n": "7", "pairs": {"k": "a", "v": "b"}}),
        ] {
            let line = event(data);
            let (found, collected, _) = both_ways(ledger.deriver(), &line);
            assert_eq!(found, collected, "{line}");
        }
    }

    #[test]
    fn declaring_a_data_subject_rebuilds_an_index_built_without_it() {
        let tmp = tempfile::tempdir().unwrap();
        let (data, pack) = (tmp.path().join("data"), tmp.path().join("clinic"));
        let before = visits(&pack, None);
        let ledger = open(&data, before.clone());
        let events: Vec<Vec<u8>> = ["p-1", "p-2", "p-1"]
            .iter()
            .enumerate()
            .map(|(i, p)| {
                json!({"id": format!("v{i}"), "source": "clinic", "type": "clinic.visit",
                       "time": "2026-01-01T00:00:00Z", "tenant": "t",
                       "data": {"visit_id": format!("v{i}"), "patient": p}})
                .to_string()
                .into_bytes()
            })
            .collect();
        let raws: Vec<_> = events.iter().map(|e| Ok(e.as_slice())).collect();
        let results = ledger.ingest(&raws, &Author::ANYONE).unwrap();
        assert!(
            results.iter().all(|r| r.to_json()["status"] == "appended"),
            "{results:?}"
        );
        assert_eq!(seqs_of(&ledger, "p-1"), Vec::<u64>::new());
        ledger.close().unwrap();

        let same = open(&data, before.clone());
        assert_eq!(same.recovery().0.rebuilt, None, "same packs, same index");
        same.close().unwrap();

        let after = visits(&pack, Some("/data/patient"));
        assert_ne!(
            CanonicalKeys(Deriver {
                packs: before,
                privacy: None
            })
            .fingerprint(),
            CanonicalKeys(Deriver {
                packs: after.clone(),
                privacy: None
            })
            .fingerprint()
        );
        let ledger = open(&data, after);
        let why = ledger.recovery().0.rebuilt.expect("the index is rebuilt");
        assert!(why.contains("other packs"), "{why}");
        assert_eq!(seqs_of(&ledger, "p-1"), vec![0, 2]);
        assert_eq!(seqs_of(&ledger, "p-2"), vec![1]);
        ledger.close().unwrap();
    }

    fn visit(ledger: &Ledger, id: &str, tenant: &str, patient: &str) -> serde_json::Value {
        let e = json!({"id": id, "source": "clinic", "type": "clinic.visit",
                       "time": "2026-01-01T00:00:00Z", "tenant": tenant,
                       "data": {"visit_id": id, "patient": patient, "note": "private"}});
        let raw = e.to_string().into_bytes();
        let results = ledger
            .ingest(&[Ok(raw.as_slice())], &Author::ANYONE)
            .unwrap();
        results[0].to_json()
    }

    /// Records found by a data subject's key that hold nothing sealed for it (kept before
    /// their pack declared personal data), or that hold it in another tenant, do not make a
    /// lost key store refuse the subject: only records sealed for it in that tenant do.
    #[test]
    fn a_lost_key_store_refuses_only_subjects_with_records_sealed_for_them_in_that_tenant() {
        let tmp = tempfile::tempdir().unwrap();
        let (data, pack) = (tmp.path().join("data"), tmp.path().join("clinic"));
        let ledger = open(&data, visits(&pack, None));
        assert_eq!(visit(&ledger, "v0", "t", "p-1")["status"], "appended");
        ledger.close().unwrap();

        let ledger = open(
            &data,
            visits_with(&pack, Some("/data/patient"), &["/data/note"]),
        );
        assert_eq!(visit(&ledger, "v1", "t", "p-2")["status"], "appended");
        ledger.close().unwrap();
        std::fs::remove_file(data.join("privacy").join("subject-keys")).unwrap();

        let ledger = open(
            &data,
            visits_with(&pack, Some("/data/patient"), &["/data/note"]),
        );
        // Kept in clear before the pack named it a data subject: a key is made.
        let r = visit(&ledger, "v2", "t", "p-1");
        assert_eq!(r["status"], "appended", "{r}");
        // Sealed for in tenant t: refused there, keyed afresh in another tenant.
        let refused = visit(&ledger, "v3", "t", "p-2");
        assert_eq!(refused["error"]["code"], "SUBJECT_KEY_MISSING", "{refused}");
        assert_eq!(visit(&ledger, "v4", "u", "p-2")["status"], "appended");
        ledger.close().unwrap();
    }
}
