//! The quarantine log anchored in the canonical log. The quarantine log signs its own
//! checkpoints with its own key, which nothing outside the data directory knows; so each
//! checkpoint of the canonical log carries, as an extension line after its root, the newest
//! tree head the quarantine log had signed:
//!
//! ```text
//! quarantine <size> <base64 root>
//! ```
//!
//! Whatever vouches for the canonical log from outside — a verifier key given, checkpoints
//! kept by clients, witnesses' cosignatures — then vouches for the quarantine log up to that
//! head, and `verify` requires the quarantine log's tree to pass through every head so named.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use sealog_merkle::Hash;
use sealog_store::verify::Failure;
use sealog_store::{CheckpointSource, Extension};

const PREFIX: &str = "quarantine ";

/// The extension the canonical log signs with: the quarantine head `source` answers.
pub(crate) fn extension(source: CheckpointSource) -> Extension {
    Extension(std::sync::Arc::new(move || {
        source().map(|cp| format!("{PREFIX}{} {}", cp.size, STANDARD.encode(cp.root)))
    }))
}

/// The quarantine heads the canonical log's checked checkpoints carry, (size, root, what
/// carried it), from their extension lines (size, line, which checkpoint). A malformed one
/// is a failure: it was signed.
pub(crate) fn heads(
    extensions: &[(u64, String, String)],
) -> Result<Vec<(u64, Hash, String)>, Failure> {
    let mut out = Vec::new();
    for (_, line, label) in extensions {
        let Some(rest) = line.strip_prefix(PREFIX) else {
            continue;
        };
        let parsed = rest.split_once(' ').and_then(|(size, root)| {
            let size = size
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| size.parse::<u64>().ok())??;
            let root: Hash = STANDARD.decode(root).ok()?.try_into().ok()?;
            Some((size, root))
        });
        let Some((size, root)) = parsed else {
            return Err(Failure {
                location: format!("canonical log: {label}"),
                message: format!("its quarantine line is malformed: {line:?}"),
            });
        };
        out.push((
            size,
            root,
            format!("the quarantine head the canonical log's {label} carries"),
        ));
    }
    Ok(out)
}

/// What `verify` says of the heads it held the quarantine log to.
pub(crate) fn summary(heads: &[(u64, Hash, String)]) -> String {
    match heads.iter().map(|h| h.0).max() {
        None => "no canonical checkpoint carries a head of it: its own key vouches for it".into(),
        Some(newest) => format!(
            "its tree passes through the {} heads the canonical log's checkpoints carry, the newest of {newest} records",
            heads.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealog_store::SignedCheckpoint;

    #[test]
    fn a_head_written_is_read_back_and_a_malformed_one_refused() {
        let cp = SignedCheckpoint {
            size: 7,
            root: [9; 32],
            note: String::new(),
        };
        let line = (extension(std::sync::Arc::new(move || Some(cp.clone()))).0)().unwrap();
        let read = heads(&[
            (3, line, "checkpoint #1".into()),
            (3, "other 1".into(), "x".into()),
        ])
        .unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!((read[0].0, read[0].1), (7, [9; 32]));
        for bad in ["quarantine 7", "quarantine x AAAA", "quarantine 7 AAAA"] {
            let e = heads(&[(3, bad.into(), "checkpoint #1".into())]).unwrap_err();
            assert!(e.message.contains("malformed"), "{bad}: {e}");
        }
        assert!((extension(std::sync::Arc::new(|| None)).0)().is_none());
    }
}
