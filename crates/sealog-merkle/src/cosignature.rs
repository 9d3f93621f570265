//! C2SP tlog-cosignature (Ed25519, `cosignature/v1`): a witness's timestamped statement that
//! a checkpoint is the largest consistent tree head it has seen for the log.
//!
//! ```text
//! — <witness name> base64(key id || u64 timestamp, big-endian || Ed25519 signature)
//! ```
//! The key id is `SHA-256(name || "\n" || 0x04 || public key)[..4]`; the signed message is
//! `cosignature/v1\ntime <timestamp>\n` followed by the checkpoint's whole note text. Keys
//! are exchanged like note keys, with signature type `0x04`: verifier keys
//! `<name>+<hex key id>+<base64(0x04 || public key)>`, signer keys
//! `PRIVATE+KEY+<name>+<hex key id>+<base64(0x04 || seed)>`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::note::{
    NoteError, SIG_PREFIX, check_key_id, check_name, encode_typed_key, parse_typed_key, split_skey,
    split_vkey, valid_name,
};

/// Signature type byte of Ed25519 cosignatures in key ids and key strings.
const ALG_COSIGNATURE_V1: u8 = 0x04;
/// Key id, timestamp, signature.
const BLOB_BYTES: usize = 4 + 8 + Signature::BYTE_SIZE;

/// A witness's cosigning key and name.
#[derive(Clone)]
pub struct Cosigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

/// The public half: checks a witness's cosignatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

// The seed must never reach logs through `{:?}`.
impl fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cosigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

fn key_id(name: &str, key: &VerifyingKey) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_COSIGNATURE_V1]);
    h.update(key.as_bytes());
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// The bytes a cosignature signs.
pub fn signed_message(checkpoint_text: &str, timestamp: u64) -> Vec<u8> {
    let mut m = format!("cosignature/v1\ntime {timestamp}\n").into_bytes();
    m.extend_from_slice(checkpoint_text.as_bytes());
    m
}

impl Cosigner {
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(&seed);
        Ok(Self {
            key_id: key_id(name, &key.verifying_key()),
            name: name.to_owned(),
            key,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hex key id>+<base64(0x04 || seed)>`.
    pub fn parse(skey: &str) -> Result<Self, NoteError> {
        let (name, given, material) = split_skey(skey)?;
        let signer = Self::from_seed(name, parse_typed_key(material, ALG_COSIGNATURE_V1)?)?;
        check_key_id(given, signer.key_id)?;
        Ok(signer)
    }

    /// The signer key string accepted by [`parse`](Self::parse). It contains the secret seed.
    pub fn to_skey(&self) -> String {
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id,
            encode_typed_key(self.key.as_bytes(), ALG_COSIGNATURE_V1)
        )
    }

    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signature line (with its final newline) cosigning `checkpoint_text`, the note
    /// text without signatures, at `timestamp` (POSIX seconds).
    pub fn cosign(&self, checkpoint_text: &str, timestamp: u64) -> String {
        let sig = self.key.sign(&signed_message(checkpoint_text, timestamp));
        let mut blob = [0u8; BLOB_BYTES];
        blob[..4].copy_from_slice(&self.key_id.to_be_bytes());
        blob[4..12].copy_from_slice(&timestamp.to_be_bytes());
        blob[12..].copy_from_slice(&sig.to_bytes());
        format!("{SIG_PREFIX}{} {}\n", self.name, STANDARD.encode(blob))
    }
}

impl CosignatureVerifier {
    /// Parses `<name>+<hex key id>+<base64(0x04 || public key)>`.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let (name, given, material) = split_vkey(vkey)?;
        let key = VerifyingKey::from_bytes(&parse_typed_key(material, ALG_COSIGNATURE_V1)?)
            .map_err(|_| NoteError::InvalidPublicKey)?;
        check_key_id(given, key_id(name, &key))?;
        Ok(Self {
            name: name.to_owned(),
            key_id: given,
            key,
        })
    }

    pub fn to_vkey(&self) -> String {
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            encode_typed_key(self.key.as_bytes(), ALG_COSIGNATURE_V1)
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `other` is this witness again: the same name, or the same key under another
    /// name. A quorum counts witnesses, so one given twice must be refused, never counted twice.
    pub fn is_same_witness(&self, other: &Self) -> bool {
        self.name == other.name || self.key == other.key
    }

    /// The first witness of `all` given again later in it, with its repeat.
    pub fn repeated<'a>(all: &[&'a Self]) -> Option<(&'a Self, &'a Self)> {
        all.iter().enumerate().find_map(|(i, a)| {
            all[i + 1..]
                .iter()
                .find(|b| a.is_same_witness(b))
                .map(|b| (*a, *b))
        })
    }

    /// The timestamp of this witness's valid cosignature of `checkpoint_text` among the
    /// signature lines of `note` (the whole signed note); `None` when it holds none. A line
    /// with this witness's name and key id that does not verify is an error, like in
    /// [`crate::note::open`].
    pub fn find(&self, checkpoint_text: &str, note: &str) -> Result<Option<u64>, NoteError> {
        for (n, line) in signature_lines(note)?.iter().enumerate() {
            let n = n + 1;
            let (name, b64) = line
                .strip_prefix(SIG_PREFIX)
                .and_then(|rest| rest.split_once(' '))
                .ok_or(NoteError::MalformedSignatureLine(n))?;
            if !valid_name(name) || b64.contains(' ') {
                return Err(NoteError::MalformedSignatureLine(n));
            }
            let blob = STANDARD.decode(b64).map_err(|_| NoteError::BadBase64(n))?;
            if blob.len() < 4 {
                return Err(NoteError::SignatureTooShort(n));
            }
            let id = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
            if name != self.name || id != self.key_id {
                continue;
            }
            let bad = || NoteError::InvalidSignature {
                name: name.to_owned(),
                key_id: id,
            };
            if blob.len() != BLOB_BYTES {
                return Err(bad());
            }
            let timestamp = u64::from_be_bytes(blob[4..12].try_into().expect("8 bytes"));
            if timestamp > i64::MAX as u64 {
                return Err(bad());
            }
            let sig = Signature::from_slice(&blob[12..]).map_err(|_| bad())?;
            self.key
                .verify_strict(&signed_message(checkpoint_text, timestamp), &sig)
                .map_err(|_| bad())?;
            return Ok(Some(timestamp));
        }
        Ok(None)
    }
}

/// A note's text (with its final newline) and its signature lines (without theirs).
pub fn split_note(note: &str) -> Result<(&str, Vec<&str>), NoteError> {
    if !note.ends_with('\n') {
        return Err(NoteError::MissingFinalNewline);
    }
    let split = note.rfind("\n\n").ok_or(NoteError::MissingBlankLine)?;
    // A note ending in its blank line has no signature block (and `split + 2` is past the
    // final newline, so the block cannot be sliced as `split + 2..len - 1`).
    let block = note[split + 2..].strip_suffix('\n').unwrap_or("");
    if block.is_empty() {
        return Err(NoteError::NoSignatures);
    }
    Ok((&note[..=split], block.split('\n').collect()))
}

fn signature_lines(note: &str) -> Result<Vec<&str>, NoteError> {
    split_note(note).map(|(_, lines)| lines)
}

/// `note` with the signature lines in `lines` (each ending in a newline) added, skipping any
/// it already holds.
pub fn add_signatures(note: &str, lines: &str) -> String {
    let mut out = note.to_string();
    for line in lines.lines().filter(|l| !l.is_empty()) {
        if !note.lines().any(|have| have == line) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The notes worth keeping: for each cosigner (a signature line not by the log), the newest
/// checkpoint it cosigned, as the latest note holding its line at that size (which holds every
/// line gathered for it by then). Older ones say nothing a newer one by the same cosigner does
/// not, since a witness cosigns only what extends what it cosigned before.
pub fn newest_per_cosigner<'a>(notes: &'a [String], origin: &str) -> Vec<&'a String> {
    let mut newest: std::collections::HashMap<&str, (u64, usize)> = Default::default();
    for (i, n) in notes.iter().enumerate() {
        let Ok((_, lines)) = split_note(n) else {
            continue;
        };
        let size: u64 = n
            .split('\n')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        for line in lines {
            let Some(name) = line
                .strip_prefix("\u{2014} ")
                .and_then(|l| l.split(' ').next())
            else {
                continue;
            };
            if name != origin && newest.get(name).is_none_or(|(s, _)| size >= *s) {
                newest.insert(name, (size, i));
            }
        }
    }
    let keep: std::collections::BTreeSet<usize> = newest.values().map(|(_, i)| *i).collect();
    keep.into_iter().map(|i| &notes[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::{self, Signer};

    fn witness() -> Cosigner {
        Cosigner::from_seed("witness.example/w1", [7; 32]).unwrap()
    }

    fn checkpoint() -> (String, String) {
        let log = Signer::from_seed("example.com/log", [1; 32]).unwrap();
        let text = "example.com/log\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        (text.to_string(), note::sign(text, &[&log]).unwrap())
    }

    #[test]
    fn a_note_ending_in_its_blank_line_has_no_signatures() {
        let (text, _) = checkpoint();
        assert_eq!(
            split_note(&format!("{text}\n")),
            Err(NoteError::NoSignatures)
        );
        assert_eq!(
            witness().verifier().find(&text, &format!("{text}\n")),
            Err(NoteError::NoSignatures)
        );
    }

    #[test]
    fn one_witness_by_name_or_by_key_is_found_repeated() {
        let a = witness().verifier();
        let b = Cosigner::from_seed("witness.example/w2", [8; 32])
            .unwrap()
            .verifier();
        let renamed = Cosigner::from_seed("witness.example/other", [7; 32])
            .unwrap()
            .verifier();
        let rekeyed = Cosigner::from_seed("witness.example/w1", [9; 32])
            .unwrap()
            .verifier();
        assert!(CosignatureVerifier::repeated(&[&a, &b]).is_none());
        for again in [&a, &renamed, &rekeyed] {
            let (first, repeat) = CosignatureVerifier::repeated(&[&a, &b, again]).unwrap();
            assert_eq!(
                (first.to_vkey(), repeat.to_vkey()),
                (a.to_vkey(), again.to_vkey())
            );
        }
    }

    #[test]
    fn keys_round_trip_and_carry_type_0x04() {
        let w = witness();
        assert_eq!(
            Cosigner::parse(&w.to_skey()).unwrap().to_skey(),
            w.to_skey()
        );
        let v = CosignatureVerifier::parse(&w.verifier().to_vkey()).unwrap();
        assert_eq!(v, w.verifier());
        // The key material is everything after the second '+' (base64 may hold '+').
        let vkey = w.verifier().to_vkey();
        let material = vkey.splitn(3, '+').nth(2).unwrap();
        assert_eq!(STANDARD.decode(material).unwrap()[0], 0x04);
        // A note key (type 0x01) is not a cosignature key.
        let log = Signer::from_seed("example.com/log", [1; 32]).unwrap();
        assert_eq!(
            CosignatureVerifier::parse(&log.verifier().to_vkey()),
            Err(NoteError::UnsupportedKeyType(0x01))
        );
    }

    #[test]
    fn a_cosignature_verifies_and_names_its_time() {
        let (text, signed) = checkpoint();
        let w = witness();
        let note = add_signatures(&signed, &w.cosign(&text, 1_679_315_147));
        assert_eq!(
            w.verifier().find(&text, &note).unwrap(),
            Some(1_679_315_147)
        );
        // The log's own signature still opens the note; the cosignature is ignored there.
        let log = Signer::from_seed("example.com/log", [1; 32]).unwrap();
        assert!(note::open(&note, &[&log.verifier()]).is_ok());
        // Another witness finds nothing of its own.
        let other = Cosigner::from_seed("witness.example/w2", [8; 32]).unwrap();
        assert_eq!(other.verifier().find(&text, &note).unwrap(), None);
    }

    #[test]
    fn a_cosignature_of_another_checkpoint_or_time_is_refused() {
        let (text, signed) = checkpoint();
        let w = witness();
        let line = w.cosign(&text, 100);
        let other_text = text.replace("\n5\n", "\n6\n");
        assert!(matches!(
            w.verifier()
                .find(&other_text, &add_signatures(&signed, &line)),
            Err(NoteError::InvalidSignature { .. })
        ));
        // Changing the timestamp bytes breaks the signature.
        let (name, b64) = line
            .trim_end()
            .strip_prefix(SIG_PREFIX)
            .unwrap()
            .split_once(' ')
            .unwrap();
        let mut blob = STANDARD.decode(b64).unwrap();
        blob[11] ^= 1;
        let forged = format!("{SIG_PREFIX}{name} {}\n", STANDARD.encode(blob));
        assert!(matches!(
            w.verifier().find(&text, &add_signatures(&signed, &forged)),
            Err(NoteError::InvalidSignature { .. })
        ));
    }

    #[test]
    fn adding_signatures_twice_keeps_one_of_each() {
        let (text, signed) = checkpoint();
        let line = witness().cosign(&text, 1);
        let once = add_signatures(&signed, &line);
        assert_eq!(add_signatures(&once, &line), once);
    }
}
