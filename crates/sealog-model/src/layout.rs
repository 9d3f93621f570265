//! Every path inside a data directory, in one place. Nothing else joins file names onto a
//! data directory; `docs/format.md` describes what each file holds.
//!
//! ```text
//! DATA/                       the canonical log (a LogLayout)
//!   quarantine/               the quarantine log (a LogLayout of its own)
//!   quarantine/payloads       raw bytes of quarantined events (owner-only)
//!   access/keys               API keys (hashes, roles, scope); access/keys.lock
//!   privacy/subject-keys      data subjects' keys, wrapped by the master key (owner-only)
//!   privacy/master.key        the master key, when none is given by the environment
//! ```

use std::path::{Path, PathBuf};

/// The files of one log: segments, derived indexes and tree, signing key, checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLayout {
    root: PathBuf,
}

impl LogLayout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LogLayout { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The exclusive lock of the one process that writes this log; holds its pid.
    pub fn lock(&self) -> PathBuf {
        self.root.join("LOCK")
    }

    /// Segment files, the source of truth: `<first seq:020>.seg`.
    pub fn segments(&self) -> PathBuf {
        self.root.join("log")
    }

    /// Index runs, their manifest, positions and the derivation fingerprint.
    pub fn index(&self) -> PathBuf {
        self.root.join("index")
    }

    pub fn positions(&self) -> PathBuf {
        self.index().join("positions")
    }

    /// How many records the writer has made durable (8 bytes, little-endian); readers beside
    /// it read up to there.
    pub fn durable(&self) -> PathBuf {
        self.index().join("DURABLE")
    }

    /// Left by a writer that found a derived file damaged while reading it: the next opening
    /// rebuilds every derived file from the log. Holds the reason.
    pub fn rebuild_marker(&self) -> PathBuf {
        self.index().join("REBUILD")
    }

    /// Left by retention: the index still holds the pruned records' keys until the next
    /// opening rebuilds it from the log, where a stub gives only the keys it keeps.
    pub fn pruned_marker(&self) -> PathBuf {
        self.index().join("PRUNED")
    }

    /// Fingerprint of the derivation (packs) the index keys were computed with.
    pub fn index_fingerprint(&self) -> PathBuf {
        self.index().join("DERIVER")
    }

    /// Stored Merkle tree nodes, one file per level.
    pub fn tree(&self) -> PathBuf {
        self.root.join("tree")
    }

    pub fn keys(&self) -> PathBuf {
        self.root.join("keys")
    }

    /// The C2SP signer key (mode 0600).
    pub fn signer_key(&self) -> PathBuf {
        self.keys().join("log.key")
    }

    /// The C2SP verifier key.
    pub fn verifier_key(&self) -> PathBuf {
        self.keys().join("log.pub")
    }

    /// The log's former verifier keys, one per line, oldest first (a key rotation appends).
    pub fn retired_keys(&self) -> PathBuf {
        self.keys().join("retired")
    }

    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// Every signed checkpoint, framed.
    pub fn checkpoint_log(&self) -> PathBuf {
        self.checkpoints().join("log")
    }

    /// The newest signed checkpoint (the tlog-tiles `checkpoint` file).
    pub fn latest_checkpoint(&self) -> PathBuf {
        self.checkpoints().join("latest")
    }

    /// Checkpoints with the cosignatures witnesses gave them, framed.
    pub fn cosigned_log(&self) -> PathBuf {
        self.checkpoints().join("cosigned")
    }
}

/// A data directory: the canonical log at its root, the quarantine log beside it, the
/// restricted payload area and the server's key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn canonical(&self) -> LogLayout {
        LogLayout::new(self.root.clone())
    }

    pub fn quarantine(&self) -> LogLayout {
        LogLayout::new(self.root.join("quarantine"))
    }

    /// Raw bytes of quarantined events, kept as evidence apart from the quarantine log.
    pub fn quarantine_payloads(&self) -> PathBuf {
        self.root.join("quarantine").join("payloads")
    }

    /// Exports made through the server, one directory each (owner-only), kept until they
    /// expire.
    pub fn exports(&self) -> PathBuf {
        self.root.join("exports")
    }

    pub fn access(&self) -> PathBuf {
        self.root.join("access")
    }

    /// API keys: their SHA-256, roles and scope (mode 0600).
    pub fn access_keys(&self) -> PathBuf {
        self.access().join("keys")
    }

    /// Serializes writers of the key file.
    pub fn access_keys_lock(&self) -> PathBuf {
        self.access().join("keys.lock")
    }

    /// Personal data's keys: the master key (when the environment gives none) and the data
    /// subjects' keys it wraps.
    pub fn privacy(&self) -> PathBuf {
        self.root.join("privacy")
    }

    /// Every data subject's key, wrapped by the master key (mode 0600).
    pub fn subject_keys(&self) -> PathBuf {
        self.privacy().join("subject-keys")
    }

    /// The master key made on first use when `SEALOG_MASTER_KEY_FILE` names none (mode 0600).
    pub fn master_key(&self) -> PathBuf {
        self.privacy().join("master.key")
    }
}
