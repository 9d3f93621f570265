//! C2SP signed notes with Ed25519 signatures (signature type `0x01`).
//!
//! ```text
//! <text, ending in a newline>
//!
//! — <key name> <base64(4-byte key id || 64-byte signature)>
//! ```
//! The text is separated from the signature lines by the last blank line. Keys are
//! exchanged as strings: verifier keys `<name>+<hex key id>+<base64(0x01 || public key)>`
//! and signer keys `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::text::has_forbidden_control;

/// Signature type byte of Ed25519 in key ids and key strings.
const ALG_ED25519: u8 = 0x01;
/// U+2014 EM DASH and a space: the start of every signature line.
pub(crate) const SIG_PREFIX: &str = "\u{2014} ";
/// The spec asks verifiers to accept at least 16 signatures and to cap the number, so
/// a hostile note cannot make verification arbitrarily expensive.
pub const MAX_SIGNATURES: usize = 100;

/// Why a key, text or note was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NoteError {
    #[error("invalid key name {0:?}: must be non-empty, without spaces, '+' or control characters")]
    InvalidKeyName(String),
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    #[error("unsupported signature type {0:#04x}")]
    UnsupportedKeyType(u8),
    #[error("key id {given:08x} does not match the key (computed {computed:08x})")]
    KeyIdMismatch { given: u32, computed: u32 },
    #[error("invalid Ed25519 public key")]
    InvalidPublicKey,
    #[error("note text does not end in a newline")]
    TextMissingNewline,
    #[error("note does not end in a newline")]
    MissingFinalNewline,
    #[error("note contains a control character other than newline")]
    ControlCharacter,
    #[error("note has no blank line separating text from signatures")]
    MissingBlankLine,
    #[error("note has no signatures")]
    NoSignatures,
    #[error("note has more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    /// 1-based index among the signature lines.
    #[error("signature line {0} is malformed")]
    MalformedSignatureLine(usize),
    #[error("signature line {0} is not valid base64")]
    BadBase64(usize),
    #[error("signature line {0} is too short to hold a key id and a signature")]
    SignatureTooShort(usize),
    #[error("signature by known key {name}+{key_id:08x} does not verify")]
    InvalidSignature { name: String, key_id: u32 },
    #[error("note is not signed by any of the given keys")]
    NoKnownSignature,
    #[error("no signers given")]
    NoSigners,
}

/// An Ed25519 note signing key together with its name.
#[derive(Clone)]
pub struct Signer {
    name: String,
    key_id: u32,
    key: SigningKey,
}

/// An Ed25519 note verification key together with its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

/// A note whose signatures checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The signed text, including its final newline.
    pub text: String,
    /// Names of the given verifiers whose signatures verified, in signature order,
    /// without duplicates.
    pub verified_by: Vec<String>,
}

// The seed must never reach logs through `{:?}`.
impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c == '+' || c.is_whitespace() || c < ' ')
}

pub(crate) fn check_name(name: &str) -> Result<(), NoteError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(NoteError::InvalidKeyName(name.to_owned()))
    }
}

/// `SHA-256(name || "\n" || 0x01 || public key)[..4]`, big-endian.
fn key_id(name: &str, key: &VerifyingKey) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(key.as_bytes());
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Parses exactly eight lowercase hex digits, the only spelling the encoders produce.
fn parse_key_id(s: &str) -> Result<u32, NoteError> {
    if s.len() != 8 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(NoteError::MalformedKey(
            "key id must be 8 lowercase hex digits",
        ));
    }
    u32::from_str_radix(s, 16)
        .map_err(|_| NoteError::MalformedKey("key id must be 8 lowercase hex digits"))
}

/// `PRIVATE+KEY+<name>+<hex key id>+<material>` as (name, key id, material). The base64
/// material may itself contain '+', so it is everything after the fourth separator.
pub(crate) fn split_skey(skey: &str) -> Result<(&str, u32, &str), NoteError> {
    let parts: Vec<&str> = skey.splitn(5, '+').collect();
    let [private, key, name, id, material] = parts[..] else {
        return Err(NoteError::MalformedKey(
            "signer key must have 5 '+'-separated parts",
        ));
    };
    if private != "PRIVATE" || key != "KEY" {
        return Err(NoteError::MalformedKey(
            "signer key must start with PRIVATE+KEY+",
        ));
    }
    check_name(name)?;
    Ok((name, parse_key_id(id)?, material))
}

/// `<name>+<hex key id>+<material>` as (name, key id, material).
pub(crate) fn split_vkey(vkey: &str) -> Result<(&str, u32, &str), NoteError> {
    let parts: Vec<&str> = vkey.splitn(3, '+').collect();
    let [name, id, material] = parts[..] else {
        return Err(NoteError::MalformedKey(
            "verifier key must have 3 '+'-separated parts",
        ));
    };
    check_name(name)?;
    Ok((name, parse_key_id(id)?, material))
}

/// Decodes `base64(0x01 || 32 bytes)`.
fn parse_key_material(s: &str) -> Result<[u8; 32], NoteError> {
    parse_typed_key(s, ALG_ED25519)
}

/// Decodes `base64(alg || 32 bytes)`.
pub(crate) fn parse_typed_key(s: &str, alg_wanted: u8) -> Result<[u8; 32], NoteError> {
    let bytes = STANDARD
        .decode(s)
        .map_err(|_| NoteError::MalformedKey("key material is not valid base64"))?;
    match bytes.split_first() {
        None => Err(NoteError::MalformedKey("key material is empty")),
        Some((&alg, rest)) if alg == alg_wanted => <[u8; 32]>::try_from(rest)
            .map_err(|_| NoteError::MalformedKey("Ed25519 key must be 32 bytes")),
        Some((&alg, _)) => Err(NoteError::UnsupportedKeyType(alg)),
    }
}

fn encode_key_material(key: &[u8; 32]) -> String {
    encode_typed_key(key, ALG_ED25519)
}

pub(crate) fn encode_typed_key(key: &[u8; 32], alg: u8) -> String {
    let mut buf = [0u8; 33];
    buf[0] = alg;
    buf[1..].copy_from_slice(key);
    STANDARD.encode(buf)
}

pub(crate) fn check_key_id(given: u32, computed: u32) -> Result<(), NoteError> {
    if given == computed {
        Ok(())
    } else {
        Err(NoteError::KeyIdMismatch { given, computed })
    }
}

impl Signer {
    /// Builds a signer from a name and a 32-byte Ed25519 seed (RFC 8032 private key).
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(&seed);
        let key_id = key_id(name, &key.verifying_key());
        Ok(Self {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>`.
    pub fn parse(skey: &str) -> Result<Self, NoteError> {
        let (name, given, material) = split_skey(skey)?;
        let signer = Self::from_seed(name, parse_key_material(material)?)?;
        check_key_id(given, signer.key_id)?;
        Ok(signer)
    }

    /// The signer key string accepted by [`parse`](Self::parse). It contains the secret seed.
    pub fn to_skey(&self) -> String {
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id,
            encode_key_material(self.key.as_bytes())
        )
    }

    /// The matching verifier.
    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }
}

impl Verifier {
    /// Parses `<name>+<hex key id>+<base64(0x01 || public key)>`.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let (name, given, material) = split_vkey(vkey)?;
        let key = VerifyingKey::from_bytes(&parse_key_material(material)?)
            .map_err(|_| NoteError::InvalidPublicKey)?;
        check_key_id(given, key_id(name, &key))?;
        Ok(Self {
            name: name.to_owned(),
            key_id: given,
            key,
        })
    }

    /// The verifier key string accepted by [`parse`](Self::parse).
    pub fn to_vkey(&self) -> String {
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            encode_key_material(self.key.as_bytes())
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }
}

/// Checks the text rules: ends in a newline, no control characters but newline.
fn check_text(text: &str) -> Result<(), NoteError> {
    if has_forbidden_control(text) {
        return Err(NoteError::ControlCharacter);
    }
    if !text.ends_with('\n') {
        return Err(NoteError::TextMissingNewline);
    }
    Ok(())
}

/// The checkpoint note of the tree head (`size`, `root`) of the log the first signer names,
/// signed by every signer in order (the old key and the new one during a key rotation).
pub fn sign_tree_head(
    size: u64,
    root: crate::Hash,
    signers: &[&Signer],
) -> Result<String, NoteError> {
    sign_tree_head_with(size, root, Vec::new(), signers)
}

/// [`sign_tree_head`] with extension lines after the root (each non-empty, no newline).
pub fn sign_tree_head_with(
    size: u64,
    root: crate::Hash,
    extensions: Vec<String>,
    signers: &[&Signer],
) -> Result<String, NoteError> {
    let first = signers.first().ok_or(NoteError::NoSigners)?;
    let body = crate::checkpoint::Checkpoint {
        origin: first.name().to_string(),
        size,
        root,
        extensions,
    }
    .to_body();
    sign(&body, signers)
}

/// Signs `text` with every signer and returns the note, signatures in the given order.
pub fn sign(text: &str, signers: &[&Signer]) -> Result<String, NoteError> {
    check_text(text)?;
    if signers.is_empty() {
        return Err(NoteError::NoSigners);
    }
    if signers.len() > MAX_SIGNATURES {
        return Err(NoteError::TooManySignatures);
    }
    let mut note = String::with_capacity(text.len() + 1 + signers.len() * 128);
    note.push_str(text);
    note.push('\n');
    for s in signers {
        let sig: Signature = s.key.sign(text.as_bytes());
        let mut blob = [0u8; 4 + Signature::BYTE_SIZE];
        blob[..4].copy_from_slice(&s.key_id.to_be_bytes());
        blob[4..].copy_from_slice(&sig.to_bytes());
        note.push_str(SIG_PREFIX);
        note.push_str(&s.name);
        note.push(' ');
        note.push_str(&STANDARD.encode(blob));
        note.push('\n');
    }
    Ok(note)
}

/// Verifies a note against trusted keys and returns its text.
///
/// A signature counts when both its key name and key id match a verifier; signatures by
/// other keys are ignored, as the spec requires. A matching signature that fails to verify
/// rejects the whole note, and so does a note without any verified signature.
pub fn open(note: &str, verifiers: &[&Verifier]) -> Result<Opened, NoteError> {
    if has_forbidden_control(note) {
        return Err(NoteError::ControlCharacter);
    }
    if !note.ends_with('\n') {
        return Err(NoteError::MissingFinalNewline);
    }
    // Text may itself contain blank lines; signature lines never do.
    let Some(split) = note.rfind("\n\n") else {
        return Err(NoteError::MissingBlankLine);
    };
    let text = &note[..=split];
    let Some(sig_block) = note[split + 2..].strip_suffix('\n') else {
        return Err(NoteError::NoSignatures);
    };
    let lines: Vec<&str> = sig_block.split('\n').collect();
    if lines.len() > MAX_SIGNATURES {
        return Err(NoteError::TooManySignatures);
    }

    let mut verified_by: Vec<String> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        let (name, b64) = line
            .strip_prefix(SIG_PREFIX)
            .and_then(|rest| rest.split_once(' '))
            .ok_or(NoteError::MalformedSignatureLine(n))?;
        if !valid_name(name) || b64.contains(' ') {
            return Err(NoteError::MalformedSignatureLine(n));
        }
        let blob = STANDARD.decode(b64).map_err(|_| NoteError::BadBase64(n))?;
        if blob.len() < 5 {
            return Err(NoteError::SignatureTooShort(n));
        }
        let id = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
        let mut known = verifiers
            .iter()
            .filter(|v| v.key_id == id && v.name == name)
            .peekable();
        if known.peek().is_none() {
            continue;
        }
        let ok = Signature::from_slice(&blob[4..])
            .is_ok_and(|sig| known.any(|v| v.key.verify_strict(text.as_bytes(), &sig).is_ok()));
        if !ok {
            return Err(NoteError::InvalidSignature {
                name: name.to_owned(),
                key_id: id,
            });
        }
        if !verified_by.iter().any(|v| v == name) {
            verified_by.push(name.to_owned());
        }
    }
    if verified_by.is_empty() {
        return Err(NoteError::NoKnownSignature);
    }
    Ok(Opened {
        text: text.to_owned(),
        verified_by,
    })
}
