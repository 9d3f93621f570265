//! Rotating the canonical log's signing key. The new key is made and kept first, then an
//! `audit.log_key_rotated` record naming the old and the new verifier keys is appended and
//! made durable, then the store signs a checkpoint covering that record with both keys, after
//! which only the new one signs. Verification follows that chain: a key changes only under a
//! checkpoint both keys signed, and only where such a record announced it.

use serde_json::json;

use crate::own::Act;
use sealog_store::StoreError;

use crate::{Error, Ledger};

pub const LOG_KEY_ROTATED_TYPE: &str = "audit.log_key_rotated";

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRotation {
    pub old_key: String,
    pub new_key: String,
    /// The record that announced it.
    pub seq: u64,
    /// The size of the checkpoint both keys signed.
    pub checkpoint_size: u64,
}

impl Ledger {
    /// Hands the canonical log's signing to a new key (same origin, so witnesses keep their
    /// state); the quarantine log keeps its own key.
    pub fn rotate_log_key(&self, act: &Act<'_>) -> Result<KeyRotation, Error> {
        let new_key = self.canonical.prepare_key_rotation()?;
        let old_key = self.canonical.verifier_key();
        let (seq, _) = self
            .append_own(
                format!("log-key:{new_key}"),
                LOG_KEY_ROTATED_TYPE,
                act,
                None,
                json!({"old_verifier_key": old_key, "new_verifier_key": new_key}),
            )?
            .map_err(|why| {
                StoreError::Corrupted(format!("the key rotation record was refused: {why}"))
            })?;
        let retired = self.canonical.finish_key_rotation()?;
        debug_assert_eq!(retired, old_key);
        Ok(KeyRotation {
            old_key,
            new_key,
            seq,
            checkpoint_size: self.canonical.latest_checkpoint().map_or(0, |c| c.size),
        })
    }

    /// At a writable opening: a prepared key that a durable record names is handed over now
    /// (a crash came between the record and the hand-over); one no record names is dropped.
    pub(crate) fn finish_key_rotation(&self) -> Result<(), Error> {
        let Some(pending) = self.canonical.pending_key_rotation()? else {
            return Ok(());
        };
        let announced = self
            .records_of(LOG_KEY_ROTATED_TYPE)?
            .iter()
            .any(|(_, r)| r["data"]["new_verifier_key"] == json!(pending));
        if announced {
            self.canonical.finish_key_rotation()?;
        } else {
            self.canonical.abandon_key_rotation()?;
        }
        Ok(())
    }
}
