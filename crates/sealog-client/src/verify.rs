//! Client-side verification: the client trusts the pinned verifier key and its own memory of
//! the last checkpoint it verified, never the server's word.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sealog_merkle::Hash;
use sealog_merkle::checkpoint::Checkpoint;
use sealog_merkle::note::{self, Verifier};
use serde::Deserialize;

use crate::{Client, Error, encode};

/// A checkpoint this client checked: signed by the pinned key, and consistent with every one
/// it checked before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trusted {
    pub size: u64,
    pub root: Hash,
    /// The signed note, as served.
    pub note: String,
}

/// A record shown to be in the log.
#[derive(Clone, Debug)]
pub struct VerifiedRecord {
    pub seq: u64,
    pub record_id: String,
    /// The record as stored (personal values sealed): the bytes its leaf hash covers.
    pub record: Vec<u8>,
    /// The verified tree it was found in.
    pub tree_size: u64,
}

/// Follows one log's checkpoints.
pub struct LogVerifier {
    client: Client,
    verifier: Verifier,
    state: Option<PathBuf>,
    last: Mutex<Option<Trusted>>,
}

#[derive(Deserialize)]
struct ConsistencyAnswer {
    hashes: Vec<String>,
}

#[derive(Deserialize)]
struct InclusionAnswer {
    leaf_index: u64,
    tree_size: u64,
    hashes: Vec<String>,
    record: Option<String>,
}

fn hash(b64: &str) -> Result<Hash, Error> {
    let v = B64
        .decode(b64)
        .map_err(|e| Error::Protocol(format!("a hash that is not base64: {e}")))?;
    v.try_into()
        .map_err(|_| Error::Protocol("a hash that is not 32 bytes".into()))
}

impl LogVerifier {
    /// A verifier of the log at `client`, whose checkpoints `verifier_key` (a note verifier
    /// key, `name+hash+key`) must sign. With `state`, the last verified checkpoint is kept
    /// in that file across restarts (re-checked with the key when read back).
    pub fn new(client: Client, verifier_key: &str, state: Option<&Path>) -> Result<Self, Error> {
        let verifier = Verifier::parse(verifier_key)
            .map_err(|e| Error::Config(format!("verifier key: {e}")))?;
        let mut last = None;
        if let Some(path) = state {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    let cp = open(&verifier, &text).map_err(|e| {
                        Error::Verification(format!("the saved checkpoint {}: {e}", path.display()))
                    })?;
                    last = Some(Trusted {
                        size: cp.size,
                        root: cp.root,
                        note: text,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::Config(format!("{}: {e}", path.display()))),
            }
        }
        Ok(LogVerifier {
            client,
            verifier,
            state: state.map(Path::to_path_buf),
            last: Mutex::new(last),
        })
    }

    /// The last checkpoint verified.
    pub fn trusted(&self) -> Option<Trusted> {
        self.last.lock().unwrap().clone()
    }

    /// Fetches the server's checkpoint, checks its signature, and proves it an extension of
    /// the last one verified (a consistency proof); remembers it. A smaller tree, or the same
    /// size with another root, or a proof that fails is [`Error::Inconsistent`].
    pub fn refresh(&self) -> Result<Trusted, Error> {
        let text = self.client.text("/checkpoint")?;
        self.accept(&text)
    }

    /// Checks a checkpoint note obtained elsewhere (another client's, a witness's) against
    /// the last one verified, and remembers it when it is newer.
    pub fn accept(&self, text: &str) -> Result<Trusted, Error> {
        let cp = open(&self.verifier, text).map_err(Error::Verification)?;
        let mut last = self.last.lock().unwrap();
        if let Some(old) = last.as_ref() {
            if cp.size < old.size {
                // An older checkpoint is fine if it is a prefix of what we trust.
                self.prove(cp.size, &cp.root, old.size, &old.root)?;
                return Ok(old.clone());
            }
            if cp.size == old.size {
                if cp.root != old.root {
                    return Err(Error::Inconsistent(format!(
                        "two signed trees of size {} with different roots",
                        cp.size
                    )));
                }
                return Ok(old.clone());
            }
            self.prove(old.size, &old.root, cp.size, &cp.root)?;
        }
        let t = Trusted {
            size: cp.size,
            root: cp.root,
            note: text.to_string(),
        };
        if let Some(path) = &self.state {
            save(path, text)?;
        }
        *last = Some(t.clone());
        Ok(t)
    }

    /// Asks the server for a consistency proof from `old` to `new` and checks it.
    fn prove(&self, old: u64, old_root: &Hash, new: u64, new_root: &Hash) -> Result<(), Error> {
        if old == 0 {
            return Ok(());
        }
        let body = self
            .client
            .bytes(&format!("/v1/proofs/consistency?from={old}&to={new}"))?;
        let a: ConsistencyAnswer = serde_json::from_slice(&body)
            .map_err(|e| Error::Protocol(format!("consistency proof: {e}")))?;
        let proof = a
            .hashes
            .iter()
            .map(|h| hash(h))
            .collect::<Result<Vec<_>, _>>()?;
        sealog_merkle::verify_consistency(old, new, old_root, new_root, &proof).map_err(|e| {
            Error::Inconsistent(format!(
                "the tree of size {new} does not extend the verified tree of size {old}: {e}"
            ))
        })
    }

    /// Shows the record named `record_id` to be in the log: refreshes the checkpoint, fetches
    /// the record as stored with its inclusion proof, checks that the bytes are the record
    /// named (canonical form, `record_id` the hash of its event), and that they hash to a
    /// leaf of the verified tree. A writer key may ask this of the records it names.
    pub fn verify_inclusion(&self, record_id: &str) -> Result<VerifiedRecord, Error> {
        let t = self.refresh()?;
        let body = self.client.bytes(&format!(
            "/v1/proofs/inclusion?record_id={}&size={}",
            encode(record_id),
            t.size
        ))?;
        let a: InclusionAnswer = serde_json::from_slice(&body)
            .map_err(|e| Error::Protocol(format!("inclusion proof: {e}")))?;
        let record = B64
            .decode(a.record.as_deref().unwrap_or_default())
            .map_err(|e| Error::Protocol(format!("the record is not base64: {e}")))?;
        let (seq, id) =
            sealog_model::record::read_stored(&record, |s| (s.seq, s.record_id.to_string()))
                .map_err(|e| Error::Verification(format!("the record served: {e}")))?;
        if id != record_id {
            return Err(Error::Verification(format!(
                "asked for {record_id}, served {id}"
            )));
        }
        if seq != a.leaf_index || a.tree_size != t.size {
            return Err(Error::Verification(format!(
                "the proof is for leaf {} of {}, the record is seq {seq} and the tree {}",
                a.leaf_index, a.tree_size, t.size
            )));
        }
        let proof = a
            .hashes
            .iter()
            .map(|h| hash(h))
            .collect::<Result<Vec<_>, _>>()?;
        let leaf = sealog_merkle::leaf_hash(&record);
        sealog_merkle::verify_inclusion(&leaf, seq, t.size, &t.root, &proof).map_err(|e| {
            Error::Verification(format!("record {seq} is not in the signed tree: {e}"))
        })?;
        Ok(VerifiedRecord {
            seq,
            record_id: id,
            record,
            tree_size: t.size,
        })
    }
}

fn open(verifier: &Verifier, text: &str) -> Result<Checkpoint, String> {
    let opened = note::open(text, &[verifier]).map_err(|e| format!("signature: {e}"))?;
    Checkpoint::parse(&opened.text).map_err(|e| format!("checkpoint body: {e}"))
}

/// Writes aside, syncs, renames: the saved checkpoint is whole or the old one.
fn save(path: &Path, text: &str) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    let result = (|| {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| Error::Config(format!("saving the checkpoint to {}: {e}", path.display())))
}

/// What a whole-log verification checked.
pub struct TreeReport {
    pub records: u64,
    pub root: Hash,
    pub verifier: String,
    pub since_size: Option<u64>,
}

/// Checks the server's checkpoint signature with `key`, then re-reads every record of its
/// tree from the C2SP entry bundles, checks each (canonical form, `record_id`, seq), rebuilds
/// the tree and compares its root with the checkpoint's, and with `since`'s on the way.
pub fn verify_tree(
    client: &Client,
    key: &str,
    since: Option<&str>,
    progress: &dyn Fn(u64, u64),
) -> Result<TreeReport, (String, String)> {
    let failed = |location: &str, message: String| (location.to_string(), message);
    let verifier = Verifier::parse(key).map_err(|e| failed("verifier key", e.to_string()))?;
    let note_text = client
        .text("/checkpoint")
        .map_err(|e| failed("/checkpoint", e.to_string()))?;
    let cp = open(&verifier, &note_text).map_err(|e| failed("the server's checkpoint", e))?;
    let since = since
        .map(|t| open(&verifier, t).map_err(|e| failed("--since checkpoint", e)))
        .transpose()?;
    if let Some(s) = &since
        && s.size > cp.size
    {
        return Err(failed(
            "the server's checkpoint",
            format!(
                "size {} is smaller than the --since checkpoint's {}: the log was rewound",
                cp.size, s.size
            ),
        ));
    }
    let mut frontier = sealog_merkle::Frontier::new();
    let mut bytes_total = 0u64;
    let mut index = 0u64;
    while frontier.size() < cp.size {
        let width = (cp.size - index * 256).min(256) as u16;
        let (path, bundle, whole) =
            entry_bundle(client, index, width).map_err(|(p, e)| failed(&p, e))?;
        bytes_total += bundle.len() as u64;
        let mut at = 0usize;
        for k in 0..u64::from(width) {
            let seq = index * 256 + k;
            let len = bundle
                .get(at..at + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
                .ok_or_else(|| failed(&path, format!("entry {k} is cut short")))?;
            let record = bundle
                .get(at + 2..at + 2 + len)
                .ok_or_else(|| failed(&path, format!("entry {k} is cut short")))?;
            at += 2 + len;
            let stored_seq = sealog_model::record::read_stored(record, |s| s.seq)
                .map_err(|m| failed(&format!("record {seq}"), m))?;
            if stored_seq != seq {
                return Err(failed(
                    &format!("record {seq}"),
                    format!(
                        "record says seq {stored_seq}: records were reordered, removed or inserted"
                    ),
                ));
            }
            frontier.push(sealog_merkle::leaf_hash(record));
            if let Some(s) = since.as_ref().filter(|s| s.size == frontier.size())
                && frontier.root() != s.root
            {
                return Err(failed(
                    &format!("record {seq}"),
                    format!(
                        "the tree of size {} does not match the --since checkpoint: history was changed",
                        s.size
                    ),
                ));
            }
        }
        // A full bundle read in place of a partial one holds more entries after these.
        if at != bundle.len() && !whole {
            return Err(failed(&path, "bytes after the last entry".into()));
        }
        progress(frontier.size(), bytes_total);
        index += 1;
    }
    if frontier.root() != cp.root {
        return Err(failed(
            "the server's checkpoint",
            format!(
                "the tree rebuilt from {} records does not match the signed root",
                cp.size
            ),
        ));
    }
    Ok(TreeReport {
        records: cp.size,
        root: cp.root,
        verifier: verifier.to_vkey(),
        since_size: since.map(|s| s.size),
    })
}

/// Entry bundle `index` of `width`, or, when a partial bundle is gone (C2SP lets a log drop
/// one once the full bundle exists, and the log may have grown since its checkpoint was
/// read), the full bundle, whose first `width` entries are the same records (`true` then).
fn entry_bundle(
    client: &Client,
    index: u64,
    width: u16,
) -> Result<(String, Vec<u8>, bool), (String, String)> {
    let path = format!("/{}", sealog_merkle::tiles::entries_path(index, width));
    match client.bytes(&path) {
        Ok(bundle) => Ok((path, bundle, false)),
        Err(Error::Status { status: 404, .. }) if width < 256 => {
            let full = format!("/{}", sealog_merkle::tiles::entries_path(index, 256));
            let bundle = client
                .bytes(&full)
                .map_err(|e| (full.clone(), e.to_string()))?;
            Ok((full, bundle, true))
        }
        Err(e) => Err((path, e.to_string())),
    }
}
