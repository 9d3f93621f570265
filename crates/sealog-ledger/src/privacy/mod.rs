//! Personal fields (PRODUCT §8). Before an event is hashed, each value in a field its pack
//! declares personal is replaced by a sealed form under its data subject's key:
//!
//! ```text
//! "sealed:v1:" base64url(pseudonym) ":" base64url(AES-SIV(subject key, [ad], JCS(value)))
//!     [":" base64url(keyed hash of the value)]   (in a field an axis reads, unless the value
//!                                                  is the data subject, named already)
//! ad = "sealog sealed value v1" 0x00 tenant 0x00 pseudonym
//! ```
//!
//! AES-SIV is deterministic: the same event gives the same sealed bytes and the same
//! `record_id`, so ingest stays idempotent; and misuse-resistant: no nonce to repeat. The
//! pseudonym is a keyed hash of the data subject (HMAC-SHA-256 under a key derived from the
//! master key), so the data subject is known from a stored record without its key, and
//! everything Sealog keeps about a person (index keys, its own records, API keys) names that
//! pseudonym, never the person. Erasure destroys the subject's key: every sealed value of
//! theirs reads as erased from then on, while the bytes every proof covers stay as they were.

mod b64;
mod keystore;
mod ready;
mod siv;

use std::collections::BTreeSet;
use std::fs;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use sealog_model::Layout;
use sealog_model::json::Json;
use sealog_packs::Derived;
use sealog_store::StoreError;

use keystore::{DbKeys, FileKeys, KeyStore, Slot, SubjectId, WRAPPED_BYTES};
use ready::ReadyKeys;
use siv::{Siv, SubjectCipher};

/// What every sealed value starts with.
pub(crate) const SEALED_PREFIX: &str = "sealed:v1:";
/// What every pseudonym starts with.
pub(crate) const PSEUDONYM_PREFIX: &str = "ps:";
const SUBJECT_KEY_BYTES: usize = 64;

type SubjectKey = [u8; SUBJECT_KEY_BYTES];

/// What each token of a folded state stands for: (tenant, sealed value).
pub(crate) type Tokens = std::collections::HashMap<String, (String, String)>;

/// What a reader may see of personal values (PRODUCT §9: admins and auditors see them, a
/// subject-role key only its own, everyone else a marker).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Sight {
    /// Sealog's own trusted callers (the local CLI acts as admin) unless they say otherwise.
    #[default]
    All,
    /// Only the values sealed for this pseudonym.
    Own(String),
    Nothing,
}

impl Sight {
    /// Whether this sight opens values sealed for the pseudonym `ps`.
    fn sees(&self, ps: &[u8; 16]) -> bool {
        match self {
            Sight::All => true,
            Sight::Own(own) => pseudonym_bytes(own).as_ref() == Some(ps),
            Sight::Nothing => false,
        }
    }
}

/// Why a personal value could not be sealed.
#[derive(Debug)]
pub(crate) enum Unsealable {
    /// The data subject was erased: their key is gone and is never made again.
    Erased,
    /// The log holds records sealed for this subject but the key store has no key for them
    /// (a key store lost or restored from an older backup): a new key would split the
    /// subject's records in two, so none is made.
    Lost,
    Failed(StoreError),
}

/// What opening a sealed value found.
pub(crate) enum Opened {
    Value(Value),
    Erased,
    /// No key for it here (not this log's, or made after a reader last looked).
    Unknown,
}

pub(crate) struct Privacy {
    pseudonym_key: [u8; 32],
    /// HMAC keyed with `pseudonym_key`, copied for each hash rather than keyed again.
    pseudonym_mac: Hmac<Sha256>,
    /// Wraps the subject keys, ready once.
    wrap: Siv,
    check: [u8; 16],
    keys: Mutex<KeyStore>,
    /// The key store is a file only this process changes (it holds the data directory's
    /// writer): a key it has opened stays valid until it erases the subject itself.
    sole_writer: bool,
    /// Subject keys already unwrapped and made ready: unwrapping is an AES-SIV operation, and
    /// readying two AES key schedules and a MAC, per event otherwise.
    opened: ReadyKeys,
    fresh: Mutex<FreshKeys>,
}

/// Randomness for new subject keys, read from the system a page at a time: one call for 64
/// keys rather than one each. What is handed out is zeroed here.
struct FreshKeys {
    pool: Box<[u8; 4096]>,
    used: usize,
}

impl FreshKeys {
    fn new() -> Self {
        FreshKeys {
            pool: Box::new([0; 4096]),
            used: 4096,
        }
    }

    fn next(&mut self) -> Result<SubjectKey, StoreError> {
        if self.used + SUBJECT_KEY_BYTES > self.pool.len() {
            fill_random(&mut self.pool[..])?;
            self.used = 0;
        }
        let taken = &mut self.pool[self.used..self.used + SUBJECT_KEY_BYTES];
        let key: SubjectKey = (&*taken).try_into().expect("64 bytes");
        taken.fill(0);
        self.used += SUBJECT_KEY_BYTES;
        Ok(key)
    }
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    mac_keyed(
        <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key).expect("HMAC takes any key"),
        parts,
    )
}

/// [`mac`] with the HMAC already keyed: each part framed by its length.
fn mac_keyed(mut m: Hmac<Sha256>, parts: &[&[u8]]) -> [u8; 32] {
    for p in parts {
        m.update(&(p.len() as u64).to_le_bytes());
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

fn random<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut b = [0u8; N];
    fill_random(&mut b)?;
    Ok(b)
}

fn fill_random(into: &mut [u8]) -> Result<(), StoreError> {
    getrandom::fill(into).map_err(|e| StoreError::Poisoned(format!("no randomness for a key: {e}")))
}

/// The master key: `SEALOG_MASTER_KEY` (64 hex digits), else the file `SEALOG_MASTER_KEY_FILE`
/// names, else the data directory's own, made on the first writable opening of a directory
/// that has no subject keys yet (a directory that has them never gets a new master key).
fn master_key(layout: &Layout, writable: bool, keys_exist: bool) -> Result<[u8; 32], StoreError> {
    // Exactly as written (64 digits and a newline), so damage to the file is never read
    // past as whitespace.
    let parse = |text: &str, from: &str| -> Result<[u8; 32], StoreError> {
        let digits = text.strip_suffix('\n').unwrap_or(text);
        let bytes = hex::decode(digits).ok().filter(|b| b.len() == 32);
        bytes
            .map(|b| b.try_into().expect("32 bytes"))
            .ok_or_else(|| {
                StoreError::InvalidArgument(format!(
                    "{from}: a master key is 64 hexadecimal digits (32 bytes)"
                ))
            })
    };
    if let Ok(text) = std::env::var("SEALOG_MASTER_KEY") {
        return parse(text.trim(), "SEALOG_MASTER_KEY");
    }
    let (path, given) = match std::env::var_os("SEALOG_MASTER_KEY_FILE") {
        Some(p) => (std::path::PathBuf::from(p), true),
        None => (layout.master_key(), false),
    };
    match fs::read_to_string(&path) {
        Ok(text) => parse(&text, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if given || !writable || keys_exist {
                return Err(StoreError::InvalidArgument(format!(
                    "no master key at {}: the data subjects' keys cannot be opened without it (restore it, or set SEALOG_MASTER_KEY_FILE)",
                    path.display()
                )));
            }
            let key = random::<32>()?;
            if create_new(&path, format!("{}\n", hex::encode(key)).as_bytes())? {
                return Ok(key);
            }
            // Another opening made one first: this directory's key is that one.
            let text = fs::read_to_string(&path).map_err(|e| StoreError::io(&path, e))?;
            parse(&text, &path.display().to_string())
        }
        Err(e) => Err(StoreError::io(&path, e)),
    }
}

/// Puts a new owner-only file with `bytes` at `path` unless a file is there already, durably;
/// answers whether it did. Written whole aside first, then linked into place, which fails if
/// the name is taken: two processes making a master key at once cannot both win (a rename
/// would let the second replace the first, whose key may already wrap subject keys), and
/// neither can see a key half-written.
fn create_new(path: &std::path::Path, bytes: &[u8]) -> Result<bool, StoreError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().expect("a file in a directory");
    fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    // A name of its own for each attempt, so that two creators never write one file.
    let aside = path.with_extension(format!("new-{}", hex::encode(random::<8>()?)));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&aside)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()));
    if let Err(e) = written {
        let _ = fs::remove_file(&aside);
        return Err(StoreError::io(&aside, e));
    }
    let linked = fs::hard_link(&aside, path);
    let _ = fs::remove_file(&aside);
    match linked {
        Ok(()) => {
            sealog_store::segment::sync_dir(dir)?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

/// A MAC of the master key, kept beside the keys it wraps so another master key is refused.
fn master_check(master: &[u8; 32]) -> [u8; 16] {
    mac(master, &[b"sealog master check v1"])[..16]
        .try_into()
        .expect("16 bytes")
}

/// The pseudonym's 16 bytes from its text form (`ps:` + 32 hex digits).
pub(crate) fn pseudonym_bytes(text: &str) -> Option<[u8; 16]> {
    let hex_part = text.strip_prefix(PSEUDONYM_PREFIX)?;
    let b = hex::decode(hex_part).ok()?;
    b.try_into().ok()
}

fn pseudonym_text(ps: &[u8; 16]) -> String {
    let mut digits = [0u8; 32];
    hex::encode_to_slice(ps, &mut digits).expect("32 digits for 16 bytes");
    let mut text = String::with_capacity(PSEUDONYM_PREFIX.len() + 32);
    text.push_str(PSEUDONYM_PREFIX);
    text.push_str(std::str::from_utf8(&digits).expect("hex digits"));
    text
}

/// The pseudonym and ciphertext of a sealed value.
fn parse_sealed(s: &str) -> Option<([u8; 16], &str)> {
    let rest = s.strip_prefix(SEALED_PREFIX)?;
    let (ps, body) = rest.split_once(':')?;
    let ps = pseudonym_b64(ps)?;
    let body = body.split_once(':').map_or(body, |(ct, _)| ct);
    Some((ps, body))
}

/// What every value sealed for the pseudonym `ps` (text form) starts with, quote included
/// (`None` for what is no pseudonym).
pub(crate) fn sealed_prefix_for(ps: &str) -> Option<String> {
    let mut prefix = vec![b'"'];
    prefix.extend_from_slice(&sealed_head(&pseudonym_bytes(ps)?));
    Some(String::from_utf8(prefix).expect("base64 is ASCII"))
}

/// What every value sealed for the pseudonym `ps` starts with: the prefix, the pseudonym in
/// base64, a colon.
fn sealed_head(ps: &[u8; 16]) -> Vec<u8> {
    let mut head = Vec::with_capacity(SEALED_PREFIX.len() + HASH_B64 + 1);
    head.extend_from_slice(SEALED_PREFIX.as_bytes());
    b64::encode_into(ps, &mut head);
    head.push(b':');
    head
}

/// 16 bytes from their base64 form, decoded without allocating.
fn pseudonym_b64(text: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 18];
    let n = URL_SAFE_NO_PAD.decode_slice(text, &mut out).ok()?;
    (n == 16).then(|| out[..16].try_into().expect("16 bytes"))
}

/// The keyed hash a sealed value in an indexed field carries, as a pseudonym.
fn sealed_hash(s: &str) -> Option<String> {
    let rest = s.strip_prefix(SEALED_PREFIX)?;
    let (_, hash) = rest.split_once(':')?.1.split_once(':')?;
    Some(pseudonym_text(&pseudonym_b64(hash)?))
}

/// The pseudonym of `value` under a data directory's master key (made there if the directory
/// has none yet), for code that names data subjects without opening the log.
pub(crate) fn pseudonym_in(layout: &Layout, value: &str) -> Result<String, StoreError> {
    if pseudonym_bytes(value).is_some() {
        return Ok(value.to_string());
    }
    let key = pseudonym_key(&master_key(layout, true, layout.subject_keys().exists())?);
    Ok(pseudonym_text(&keyed_hash(&key, value)))
}

/// The key of the keyed hash that names data subjects, from the master key.
fn pseudonym_key(master: &[u8; 32]) -> [u8; 32] {
    mac(master, &[b"sealog pseudonym v1"])
}

/// A value's keyed hash: a data subject's pseudonym, or what a personal axis indexes.
fn keyed_hash(key: &[u8; 32], value: &str) -> [u8; 16] {
    mac(key, &[value.as_bytes()])[..16]
        .try_into()
        .expect("16 bytes")
}

const VALUE_AD: &[u8] = b"sealog sealed value v1";

/// The one associated-data header of a sealed value: what it is, whose, in which tenant.
fn value_ad(tenant: &str, ps: &[u8; 16]) -> Vec<u8> {
    let mut ad = Vec::with_capacity(VALUE_AD.len() + tenant.len() + 18);
    ad.extend_from_slice(VALUE_AD);
    ad.push(0);
    ad.extend_from_slice(tenant.as_bytes());
    ad.push(0);
    ad.extend_from_slice(ps);
    ad
}
const KEY_AD: &[u8] = b"sealog subject key v1";

/// What `verify` found of the privacy files, or the file and what is wrong with it.
pub(crate) fn check(
    layout: &Layout,
    writer_active: bool,
) -> Result<(Privacy, String), (String, String)> {
    use std::os::unix::fs::PermissionsExt;
    let keys_path = layout.subject_keys();
    for path in [layout.master_key(), keys_path.clone()] {
        if let Ok(meta) = fs::metadata(&path)
            && meta.permissions().mode() & 0o077 != 0
        {
            return Err((
                path.display().to_string(),
                format!(
                    "readable by others (mode {:o})",
                    meta.permissions().mode() & 0o777
                ),
            ));
        }
    }
    let given = std::env::var_os("SEALOG_MASTER_KEY").is_some()
        || std::env::var_os("SEALOG_MASTER_KEY_FILE").is_some();
    let master_at = if given {
        "the master key given by the environment".to_string()
    } else {
        layout.master_key().display().to_string()
    };
    let privacy = Privacy::open(layout, false).map_err(|e| (master_at.clone(), e.to_string()))?;
    if !keys_path.exists() {
        return Err((
            keys_path.display().to_string(),
            "missing: the data subjects' keys are gone (restore them from backup)".into(),
        ));
    }
    let at = keys_path.display().to_string();
    let (live, erased, torn) = FileKeys::inspect(&keys_path, &privacy.check).map_err(|e| {
        let message = e.to_string();
        if message.contains("not the one these subject keys were made under") {
            (master_at.clone(), message)
        } else {
            (at.clone(), message)
        }
    })?;
    if let Some(offset) = torn.filter(|_| !writer_active) {
        return Err((
            at,
            format!("ends inside a key at offset {offset}: cut or truncated"),
        ));
    }
    Ok((
        privacy,
        format!("{live} data subjects' keys and {erased} erased, under the master key"),
    ))
}

impl Privacy {
    /// Whether the key store names (tenant, pseudonym), live or erased.
    pub(crate) fn knows_subject(&self, tenant: &str, ps: &str) -> bool {
        pseudonym_bytes(ps).is_some_and(|b| self.slot(&(tenant.to_string(), b)).is_some())
    }

    pub(crate) fn open(layout: &Layout, writable: bool) -> Result<Self, StoreError> {
        let master = master_key(layout, writable, layout.subject_keys().exists())?;
        let check = master_check(&master);
        let keys = FileKeys::open(&layout.subject_keys(), &check, writable)?;
        Ok(Self::with_keys(&master, KeyStore::File(keys), writable))
    }

    /// Personal data with the data subjects' keys in the database several servers share; the
    /// master key stays outside it (in `secrets`, or the environment), the same on every
    /// server, and the database keeps only its check.
    pub(crate) fn open_database(
        secrets: &Layout,
        db: std::sync::Arc<sealog_pg::Erasable>,
        writable: bool,
    ) -> Result<Self, StoreError> {
        let recorded = db.master_check()?;
        let master = master_key(secrets, writable, recorded.is_some())?;
        let check = master_check(&master);
        let in_force = match recorded {
            Some(c) => c,
            None if writable => db.record_master_check(&check)?,
            None => check.to_vec(),
        };
        if in_force != check {
            return Err(StoreError::InvalidArgument(
                "the master key given is not the one this database's subject keys were made under (set SEALOG_MASTER_KEY_FILE to the right one)".into(),
            ));
        }
        Ok(Self::with_keys(
            &master,
            KeyStore::Database(DbKeys::open(db)?),
            false,
        ))
    }

    fn with_keys(master: &[u8; 32], keys: KeyStore, sole_writer: bool) -> Self {
        let pseudonym_key = pseudonym_key(master);
        let mut wrap_key = [0u8; 64];
        wrap_key[..32].copy_from_slice(&mac(master, &[b"sealog wrap v1", b"0"]));
        wrap_key[32..].copy_from_slice(&mac(master, &[b"sealog wrap v1", b"1"]));
        Privacy {
            pseudonym_mac: <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&pseudonym_key)
                .expect("HMAC takes any key"),
            pseudonym_key,
            wrap: Siv::new(&wrap_key),
            check: master_check(master),
            keys: Mutex::new(keys),
            sole_writer,
            opened: ReadyKeys::default(),
            fresh: Mutex::new(FreshKeys::new()),
        }
    }

    /// Names the keyed hash, so an index keyed under another master key is rebuilt.
    pub(crate) fn fingerprint(&self) -> String {
        hex::encode(&mac(&self.pseudonym_key, &[b"fingerprint"])[..8])
    }

    fn pseudonym_raw(&self, value: &str) -> [u8; 16] {
        mac_keyed(self.pseudonym_mac.clone(), &[value.as_bytes()])[..16]
            .try_into()
            .expect("16 bytes")
    }

    /// The keyed hash that stands for a data subject (or a personal axis value) everywhere
    /// Sealog names it: `ps:` and 32 hex digits.
    pub(crate) fn pseudonym(&self, value: &str) -> String {
        pseudonym_text(&self.pseudonym_raw(value))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KeyStore> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key of (tenant, pseudonym), made on its first use unless the log already `knows`
    /// the subject. Racing first uses get one key: the key store keeps the first and answers
    /// it to the others. Keys are opened only under the key store's lock, which erasure takes
    /// to forget them.
    fn key_for(
        &self,
        tenant: &str,
        ps: [u8; 16],
        knows: &dyn Fn() -> Result<bool, StoreError>,
    ) -> Result<Arc<SubjectCipher>, Unsealable> {
        // A key opened here is dropped from `opened` when this process erases its subject;
        // only a key store others change (several servers' database) is asked every time.
        if self.sole_writer
            && let Some(c) = self.opened.get(tenant, &ps)
        {
            return Ok(c);
        }
        let id: SubjectId = (tenant.to_string(), ps);
        let everywhere = {
            let mut keys = self.lock();
            if let Some(slot) = keys.get(&id).map_err(Unsealable::Failed)? {
                return self.in_force(&keys, &id, &slot);
            }
            // Erased in every tenant: a tenant it has no key in yet makes none either. Only
            // a first use asks, so a subject's every later event hashes no mark.
            let everywhere = self.everywhere(ps);
            if let Some(Slot::Erased) = keys.get(&everywhere).map_err(Unsealable::Failed)? {
                return Err(Unsealable::Erased);
            }
            everywhere
        };
        // Asked, and a key made, without the key store's lock: the question reads the index,
        // which may wait on the disk, and other subjects' keys are found meanwhile.
        let made = if knows().map_err(Unsealable::Failed)? {
            None
        } else {
            Some(self.make_key(&id)?)
        };
        let mut keys = self.lock();
        if let Some(Slot::Erased) = keys.get(&everywhere).map_err(Unsealable::Failed)? {
            return Err(Unsealable::Erased);
        }
        let Some((key, wrapped)) = made else {
            // Lost, unless a racing first use made the key since and sealed a record under
            // it, which is how the log came to know the subject.
            return match keys.get(&id).map_err(Unsealable::Failed)? {
                Some(slot) => self.in_force(&keys, &id, &slot),
                None => Err(Unsealable::Lost),
            };
        };
        match keys
            .insert(id.clone(), wrapped)
            .map_err(Unsealable::Failed)?
        {
            Slot::Live(w) if w == wrapped => Ok(self.ready(&keys, &id, &key)),
            // A racing first use (here, or on another server) made the key first: it seals.
            slot => self.in_force(&keys, &id, &slot),
        }
    }

    /// What seals for `id` by the key store's `slot`.
    fn in_force(
        &self,
        held: &KeyStore,
        id: &SubjectId,
        slot: &Slot,
    ) -> Result<Arc<SubjectCipher>, Unsealable> {
        match slot {
            Slot::Live(w) => self.unwrap_key(held, id, w).ok_or(Unsealable::Lost),
            Slot::Erased => Err(Unsealable::Erased),
        }
    }

    /// A fresh key for `id`, and its wrapped form for the key store.
    fn make_key(&self, id: &SubjectId) -> Result<(SubjectKey, [u8; WRAPPED_BYTES]), Unsealable> {
        let key = self
            .fresh
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next()
            .map_err(Unsealable::Failed)?;
        let mut wrapped = [0u8; WRAPPED_BYTES];
        self.wrap.with(&mut |s| {
            let d = s.after(&[KEY_AD, id.0.as_bytes(), &id.1]);
            let mut out = Vec::with_capacity(WRAPPED_BYTES);
            s.seal(&d, &key, &mut out);
            wrapped.copy_from_slice(&out);
        });
        Ok((key, wrapped))
    }

    /// The subject's key, from `opened` or unwrapped from the key store's slot `wrapped`.
    fn unwrap_key(
        &self,
        held: &KeyStore,
        id: &SubjectId,
        wrapped: &[u8; WRAPPED_BYTES],
    ) -> Option<Arc<SubjectCipher>> {
        if let Some(c) = self.opened.get(&id.0, &id.1) {
            return Some(c);
        }
        let key: SubjectKey = self
            .wrap
            .open(&[KEY_AD, id.0.as_bytes(), &id.1], wrapped)?
            .try_into()
            .ok()?;
        Some(self.ready(held, id, &key))
    }

    /// The subject's key made ready to seal and open, kept until the subject is erased.
    ///
    /// Asks for the key store, locked, though it reads nothing there: erasure forgets a
    /// subject's ready key under that lock, so a key is made ready only while the slot just
    /// read under it still holds the key. A slot read before the lock was taken could have
    /// been erased since: the key would be kept again, and sealed for, after its subject
    /// was erased.
    fn ready(&self, _held: &KeyStore, id: &SubjectId, key: &SubjectKey) -> Arc<SubjectCipher> {
        let cipher = Arc::new(SubjectCipher::new(key, &value_ad(&id.0, &id.1)));
        self.opened.insert(&id.0, id.1, cipher.clone());
        cipher
    }

    /// Makes the keys made since the last call durable: called before the records sealed
    /// under them are appended.
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        self.lock().sync()
    }

    /// Seals every personal value of `event` for the data subject `subject` (its plain
    /// value, as the pack read it); the subject's pseudonym, which every sealed value carries.
    pub(crate) fn seal_event(
        &self,
        personal: sealog_packs::Personal<'_>,
        event: &mut Json<'_>,
        tenant: Option<&str>,
        subject: &str,
        knows: &dyn Fn(&str) -> Result<bool, StoreError>,
    ) -> Result<[u8; 16], Unsealable> {
        let s = self.sealer(tenant, subject, knows)?;
        // Each value is sealed as the walk meets it. Fields that nest are met in the order
        // the pack lists them, so a field is read as the fields before it left the event
        // (inside one already sealed it is not met at all); others are met in one walk.
        // Room for a typical value, so the buffers do not grow value by value.
        let mut plain = Vec::with_capacity(256);
        let mut sealed_bytes = Vec::with_capacity(256 + 16);
        s.cipher.sealing(&mut |sealing| {
            personal.for_each(event, &mut |v, indexed| {
                plain.clear();
                if sealog_model::jcs::write_json(v, &mut plain).is_err() {
                    // A value with no canonical form is refused when the record is formed;
                    // keep it from being sealed so the refusal names the right thing.
                    return;
                }
                sealed_bytes.clear();
                sealing.seal(&plain, &mut sealed_bytes);
                // Room for the keyed hash an indexed value adds.
                let mut sealed = Vec::with_capacity(
                    s.head.len() + b64::encoded_len(sealed_bytes.len()) + 1 + HASH_B64,
                );
                sealed.extend_from_slice(&s.head);
                b64::encode_into(&sealed_bytes, &mut sealed);
                if indexed {
                    let text = match &*v {
                        Json::String(s) => s,
                        _ => std::str::from_utf8(&plain).expect("RFC 8785 output is UTF-8"),
                    };
                    // What an axis finds the value by, readable without the subject's key, so
                    // the index is the same function of the record before and after erasure;
                    // the data subject's own value is found by the pseudonym it already
                    // carries.
                    if text != subject {
                        sealed.push(b':');
                        b64::encode_into(&self.pseudonym_raw(text), &mut sealed);
                    }
                }
                let sealed = String::from_utf8(sealed).expect("base64 is ASCII");
                *v = Json::String(sealed.into());
            })
        });
        Ok(s.ps)
    }

    /// Seals a quarantined event's raw bytes for its data subject, so the payload area holds
    /// no personal value in clear either.
    pub(crate) fn seal_payload(
        &self,
        tenant: Option<&str>,
        subject: &str,
        raw: &[u8],
        knows: &dyn Fn(&str) -> Result<bool, StoreError>,
    ) -> Result<Vec<u8>, Unsealable> {
        let s = self.sealer(tenant, subject, knows)?;
        let mut sealed = Vec::with_capacity(raw.len() + 16);
        s.cipher
            .sealing(&mut |sealing| sealing.seal(raw, &mut sealed));
        let mut text = s.head;
        b64::encode_into(&sealed, &mut text);
        Ok(text)
    }

    /// What seals for the data subject `subject` (its plain value) in `tenant`, with its key
    /// made on first use.
    fn sealer(
        &self,
        tenant: Option<&str>,
        subject: &str,
        knows: &dyn Fn(&str) -> Result<bool, StoreError>,
    ) -> Result<Sealer, Unsealable> {
        let tenant = tenant.unwrap_or("");
        let ps = self.pseudonym_raw(subject);
        let cipher = self.key_for(tenant, ps, &|| knows(&pseudonym_text(&ps)))?;
        Ok(Sealer {
            cipher,
            ps,
            head: sealed_head(&ps),
        })
    }

    /// The plain bytes a sealed body (base64) holds, under the key of `id`.
    fn open_with(
        &self,
        held: &KeyStore,
        id: &SubjectId,
        wrapped: &[u8; WRAPPED_BYTES],
        body: &str,
    ) -> Option<Vec<u8>> {
        let cipher = self.unwrap_key(held, id, wrapped)?;
        cipher.open(&URL_SAFE_NO_PAD.decode(body).ok()?)
    }

    /// Opens a sealed value of a record of `tenant`.
    pub(crate) fn open_sealed(&self, tenant: &str, sealed: &str) -> Option<Opened> {
        let (ps, body) = parse_sealed(sealed)?;
        let id: SubjectId = (tenant.to_string(), ps);
        // The key is found and made ready under the key store's lock (see `ready`); the value
        // is opened after it is let go.
        let cipher = {
            let mut keys = self.lock();
            match self.slot_in(&mut keys, &id) {
                Some(Slot::Erased) => return Some(Opened::Erased),
                None => return Some(Opened::Unknown),
                Some(Slot::Live(w)) => self.unwrap_key(&keys, &id, &w),
            }
        };
        let plain = cipher.and_then(|c| c.open(&URL_SAFE_NO_PAD.decode(body).ok()?));
        Some(match plain {
            Some(plain) => match serde_json::from_slice(&plain) {
                Ok(v) => Opened::Value(v),
                // Sealed raw bytes (a quarantine payload's form) copied into a field.
                Err(_) => {
                    Opened::Value(Value::String(String::from_utf8_lossy(&plain).into_owned()))
                }
            },
            None => Opened::Unknown,
        })
    }

    /// A quarantine payload as it was sent, when it was sealed (`None` when it was not):
    /// opened with whichever tenant's key of its data subject authenticates it, if `sight`
    /// may see that subject's values (`Err(None)` when it may not).
    pub(crate) fn open_payload(
        &self,
        bytes: &[u8],
        sight: &Sight,
    ) -> Option<Result<Vec<u8>, Option<Opened>>> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (ps, body) = parse_sealed(text)?;
        if !sight.sees(&ps) {
            return Some(Err(None));
        }
        let mut keys = self.lock();
        self.refresh(&mut keys, true);
        let mut erased = false;
        for (tenant, slot) in keys.of_pseudonym(&ps).unwrap_or_default() {
            match slot {
                Slot::Erased => erased = true,
                Slot::Live(w) => {
                    if let Some(plain) = self.open_with(&keys, &(tenant, ps), &w, body) {
                        return Some(Ok(plain));
                    }
                }
            }
        }
        Some(Err(Some(if erased {
            Opened::Erased
        } else {
            Opened::Unknown
        })))
    }

    fn slot(&self, id: &SubjectId) -> Option<Slot> {
        self.slot_in(&mut self.lock(), id)
    }

    /// [`Privacy::slot`] in the key store `keys`, locked.
    fn slot_in(&self, keys: &mut KeyStore, id: &SubjectId) -> Option<Slot> {
        if !self.sole_writer {
            // Another process or server may have erased the subject since this one looked.
            self.refresh(keys, false);
        }
        if keys.get(id).ok().flatten().is_none() {
            // Or made the key since.
            self.refresh(keys, true);
        }
        keys.get(id).ok().flatten()
    }

    /// Picks up what changed elsewhere (at once when `now`, else where it is cheap to tell);
    /// forgets the keys it had opened if a subject may have been erased meanwhile.
    fn refresh(&self, keys: &mut KeyStore, now: bool) {
        if let Ok(true) = keys.refresh(&self.check, now) {
            self.opened.clear();
        }
    }

    /// Whether the data subject's key under `tenant` was destroyed.
    /// Whether `payload`, a quarantine payload of `tenant`, is sealed for a data subject
    /// whose key there is erased.
    pub(crate) fn payload_erased(&self, tenant: &str, payload: &[u8]) -> bool {
        std::str::from_utf8(payload)
            .ok()
            .and_then(parse_sealed)
            .is_some_and(|(ps, _)| {
                matches!(self.slot(&(tenant.to_string(), ps)), Some(Slot::Erased))
            })
    }

    /// The key store's entry that says `ps` was erased in every tenant: an erased slot under
    /// a pseudonym no data subject has (a keyed hash of `ps` apart from every subject's), so
    /// the mark needs no tenant name of its own that a real tenant could also have.
    fn everywhere(&self, ps: [u8; 16]) -> SubjectId {
        let mark = self.pseudonym_raw(&format!(
            "\u{0}erased in every tenant\u{0}{}",
            hex::encode(ps)
        ));
        (String::new(), mark)
    }

    /// Whether `ps` was erased in every tenant.
    pub(crate) fn erased_everywhere(&self, ps: &str) -> bool {
        pseudonym_bytes(ps)
            .is_some_and(|b| matches!(self.slot(&self.everywhere(b)), Some(Slot::Erased)))
    }

    pub(crate) fn is_erased(&self, tenant: &str, ps: &str) -> bool {
        pseudonym_bytes(ps)
            .is_some_and(|b| matches!(self.slot(&(tenant.to_string(), b)), Some(Slot::Erased)))
    }

    /// Every (tenant, pseudonym) with a live key for the data subject `ps`, in `tenant` when
    /// given; and whether any was already erased.
    pub(crate) fn live_keys(&self, ps: &str, tenant: Option<&str>) -> (Vec<String>, bool) {
        let Some(b) = pseudonym_bytes(ps) else {
            return (Vec::new(), false);
        };
        let mut keys = self.lock();
        let mut live = Vec::new();
        let mut erased = false;
        for (t, slot) in keys.of_pseudonym(&b).unwrap_or_default() {
            if tenant.is_some_and(|want| want != t) {
                continue;
            }
            match slot {
                Slot::Live(_) => live.push(t),
                Slot::Erased => erased = true,
            }
        }
        live.sort();
        (live, erased)
    }

    /// Destroys the keys of `ps` in each of `tenants` (crypto-shredding), durably; with
    /// `everywhere`, also in every tenant the subject has no key in yet, so no later event
    /// makes one ([`Privacy::everywhere`]).
    pub(crate) fn erase(
        &self,
        ps: &str,
        tenants: &[String],
        everywhere: bool,
    ) -> Result<(), StoreError> {
        let b = pseudonym_bytes(ps)
            .ok_or_else(|| StoreError::InvalidArgument(format!("{ps} is not a pseudonym")))?;
        let mut ids: Vec<SubjectId> = tenants.iter().map(|t| (t.clone(), b)).collect();
        ids.extend(everywhere.then(|| self.everywhere(b)));
        let mut keys = self.lock();
        // Forgotten before the store marks them erased, under its lock: a writer thread that
        // misses the opened key waits for this lock and then finds the subject erased.
        for id in &ids {
            self.opened.remove(&id.0, &id.1);
        }
        keys.erase(&ids, &self.check)
    }

    /// Replaces each sealed value in `v` (a record, a state, any JSON of `tenant`'s) with
    /// what `sight` may see: its plain value, or a marker.
    pub(crate) fn reveal(&self, v: &mut Value, tenant: Option<&str>, sight: &Sight) {
        match v {
            Value::String(s) if s.starts_with(SEALED_PREFIX) => {
                if let Some(shown) = self.shown(s, tenant.unwrap_or(""), sight) {
                    *v = shown;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.reveal(i, tenant, sight)),
            Value::Object(m) => m.values_mut().for_each(|i| self.reveal(i, tenant, sight)),
            _ => {}
        }
    }

    /// Replaces each sealed value of a record of `tenant` with a token that is the same for
    /// the same plain value whoever's key sealed it, so state rules compare what the values
    /// say; `seen` remembers what each token stands for. Values that cannot be opened keep
    /// their sealed form (equal to nothing else).
    pub(crate) fn tokenize(&self, v: &mut Value, tenant: &str, seen: &mut Tokens) {
        match v {
            Value::String(s) if s.starts_with(SEALED_PREFIX) => match self.open_sealed(tenant, s) {
                Some(Opened::Value(plain)) => {
                    let token = format!("\u{1}{}", self.pseudonym(&plain_text(&plain)));
                    let sealed = std::mem::replace(s, token.clone());
                    seen.entry(token).or_insert((tenant.to_string(), sealed));
                }
                // What an erased value said is gone: the rules compare it with nothing.
                Some(Opened::Erased) => {
                    let sealed = std::mem::replace(s, sealog_packs::UNREADABLE.to_string());
                    seen.entry(sealog_packs::UNREADABLE.to_string())
                        .or_insert((tenant.to_string(), sealed));
                }
                _ => {
                    seen.entry(s.clone())
                        .or_insert_with(|| (tenant.to_string(), s.clone()));
                }
            },
            Value::Array(items) => items
                .iter_mut()
                .for_each(|i| self.tokenize(i, tenant, seen)),
            Value::Object(m) => m.values_mut().for_each(|i| self.tokenize(i, tenant, seen)),
            _ => {}
        }
    }

    /// Puts back what [`Privacy::tokenize`] took, as `sight` may see it.
    pub(crate) fn untokenize(&self, v: &mut Value, seen: &Tokens, sight: &Sight) {
        match v {
            Value::String(s) => {
                if let Some((tenant, sealed)) = seen.get(s.as_str()) {
                    *v = self
                        .shown(sealed, tenant, sight)
                        .unwrap_or_else(|| marker("unavailable"));
                } else if s.contains('\u{1}')
                    || s.contains(SEALED_PREFIX)
                    || s.contains(sealog_packs::UNREADABLE)
                {
                    // A rule's message quotes the values it compared: each is put back as
                    // text, as this sight may see it.
                    for (token, (tenant, sealed)) in seen {
                        if s.contains(token.as_str()) {
                            let shown = match self.shown(sealed, tenant, sight) {
                                Some(Value::String(text)) => text,
                                Some(other) => other.to_string(),
                                None => marker("unavailable").to_string(),
                            };
                            *s = s.replace(token.as_str(), &shown);
                        }
                    }
                }
            }
            Value::Array(items) => items
                .iter_mut()
                .for_each(|i| self.untokenize(i, seen, sight)),
            Value::Object(m) => m.values_mut().for_each(|i| self.untokenize(i, seen, sight)),
            _ => {}
        }
    }

    fn shown(&self, sealed: &str, tenant: &str, sight: &Sight) -> Option<Value> {
        let (ps, _) = parse_sealed(sealed)?;
        if !sight.sees(&ps) {
            return Some(marker("hidden"));
        }
        Some(match self.open_sealed(tenant, sealed)? {
            Opened::Value(mut v) => {
                // A pack's personal fields may nest: a value sealed before the field around
                // it was sealed is opened in its turn (each plain text is shorter than its
                // sealed form, so this ends).
                self.reveal(&mut v, Some(tenant), sight);
                v
            }
            Opened::Erased => marker("erased"),
            Opened::Unknown => marker("unavailable"),
        })
    }
}

/// Replaces what a pack derived from a (sealed) record with what Sealog indexes: the data
/// subject's pseudonym, and for a personal axis the keyed hash of its plain value. A fresh
/// event is derived after sealing, so both come out of this one function; a sealed value
/// says both itself, so no key is opened (`privacy` is `None` for an export checked
/// offline, where only a value left in clear cannot be hashed).
///
/// `sealed_for` is the pseudonym a fresh event's values were just sealed for, which its data
/// subject's sealed value carries: given, it is not read back out of that value.
pub(crate) fn key_derived(
    privacy: Option<&Privacy>,
    derived: &mut Derived,
    personal_axes: &BTreeSet<String>,
    sealed_for: Option<&[u8; 16]>,
) {
    let raw = derived.data_subject.take();
    let subject = raw.as_deref().map(|r| {
        if let Some(ps) = sealed_for {
            debug_assert_eq!(parse_sealed(r).map(|(p, _)| p), Some(*ps));
            return pseudonym_text(ps);
        }
        match (privacy, parse_sealed(r)) {
            (_, Some((ps, _))) => pseudonym_text(&ps),
            (Some(p), None) => p.pseudonym(r),
            (None, None) => r.to_string(),
        }
    });
    // Most types index no personal axis: their axes stay as derived, sorted already.
    if derived
        .axes
        .iter()
        .any(|(name, _)| personal_axes.contains(name))
    {
        let room = Vec::with_capacity(derived.axes.len());
        let axes = std::mem::replace(&mut derived.axes, room);
        for (name, value) in axes {
            if !personal_axes.contains(&name) {
                derived.axes.push((name, value));
                continue;
            }
            // Never opened here: what a record is found by must not change when its
            // subject's key is destroyed (a query drops erased subjects' records instead).
            let keyed = if raw.as_deref() == Some(value.as_str()) {
                subject.clone()
            } else if value.starts_with(SEALED_PREFIX) {
                sealed_hash(&value)
            } else {
                privacy.map(|p| p.pseudonym(&value))
            };
            derived.axes.extend(keyed.map(|k| (name, k)));
        }
        derived.axes.sort();
        derived.axes.dedup();
    }
    derived.data_subject = subject;
}

/// What a reader sees in place of a personal value it may not see (`hidden`), whose key was
/// destroyed (`erased`), or that this log cannot open (`unavailable`).
pub(crate) fn marker(why: &str) -> Value {
    serde_json::json!({ "$personal": why })
}

/// Seals for one data subject in one tenant.
struct Sealer {
    cipher: Arc<SubjectCipher>,
    ps: [u8; 16],
    /// What each of its sealed values starts with: the prefix, the pseudonym, a colon.
    head: Vec<u8>,
}

/// The length of a pseudonym or a keyed hash (16 bytes) in base64.
const HASH_B64: usize = b64::encoded_len(16);

/// The text a personal axis value is hashed from: a string itself, anything else its
/// canonical JSON (as a pack's axis reads it).
fn plain_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => sealog_model::jcs::to_vec(other)
            .map(|b| String::from_utf8(b).expect("UTF-8"))
            .unwrap_or_else(|_| other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writable(dir: &std::path::Path) -> Privacy {
        let layout = Layout::new(dir);
        std::fs::create_dir_all(layout.subject_keys().parent().unwrap()).unwrap();
        Privacy::open(&layout, true).unwrap()
    }

    /// A first use of `ps` whose question to the log is answered `known` after another first
    /// use, made meanwhile, kept its key: the keys the two got, in that order.
    fn racing(
        privacy: &Privacy,
        ps: [u8; 16],
        known: bool,
    ) -> (Arc<SubjectCipher>, Arc<SubjectCipher>) {
        let other = std::cell::RefCell::new(None);
        let mine = privacy
            .key_for("t", ps, &|| {
                if other.borrow().is_none() {
                    let made = privacy.key_for("t", ps, &|| Ok(false));
                    *other.borrow_mut() = Some(made.expect("the other first use"));
                }
                Ok(known)
            })
            .expect("a key");
        (mine, other.into_inner().expect("the other first use ran"))
    }

    #[test]
    fn a_subject_the_log_came_to_know_by_a_racing_first_use_is_sealed_by_that_key() {
        let tmp = tempfile::tempdir().unwrap();
        let privacy = writable(tmp.path());
        // The other first use sealed a record under its key, so the log knows the subject.
        let (mine, other) = racing(&privacy, privacy.pseudonym_raw("cust-1"), true);
        assert!(Arc::ptr_eq(&mine, &other));
        // Known to the log with no key anywhere: lost, and no key is made for it.
        let lost = privacy.pseudonym_raw("cust-2");
        assert!(matches!(
            privacy.key_for("t", lost, &|| Ok(true)),
            Err(Unsealable::Lost)
        ));
        assert!(privacy.lock().get(&("t".into(), lost)).unwrap().is_none());
    }

    /// A value of `subject`'s sealed under its key in tenant `t`.
    fn sealed_value(privacy: &Privacy, subject: &str) -> String {
        let s = privacy
            .sealer(Some("t"), subject, &|_| Ok(false))
            .expect("a key");
        let mut bytes = Vec::new();
        s.cipher
            .sealing(&mut |sealing| sealing.seal(b"\"Ada\"", &mut bytes));
        let mut sealed = s.head;
        b64::encode_into(&bytes, &mut sealed);
        String::from_utf8(sealed).expect("ASCII")
    }

    #[test]
    fn a_reader_racing_an_erasure_never_brings_the_erased_key_back() {
        let tmp = tempfile::tempdir().unwrap();
        let privacy = writable(tmp.path());
        // A reader opening the subject's value while its erasure runs, each subject's race
        // from a key not yet ready, so the reader makes it ready. Whoever wins, the erased
        // subject's key is never ready afterwards and nothing is sealed for the subject.
        for i in 0..400 {
            let subject = format!("cust-{i}");
            let ps = privacy.pseudonym_raw(&subject);
            let sealed = sealed_value(&privacy, &subject);
            privacy.opened.remove("t", &ps);
            let start = std::sync::Barrier::new(2);
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    start.wait();
                    for _ in 0..3 {
                        let opened = privacy.open_sealed("t", &sealed).expect("a sealed value");
                        assert!(
                            matches!(opened, Opened::Value(_) | Opened::Erased),
                            "{subject}: opened, or erased"
                        );
                    }
                });
                scope.spawn(|| {
                    start.wait();
                    privacy
                        .erase(&pseudonym_text(&ps), &["t".to_string()], false)
                        .expect("erased");
                });
            });
            assert!(
                privacy.opened.get("t", &ps).is_none(),
                "{subject}: the erased key is ready again"
            );
            assert!(
                matches!(
                    privacy.key_for("t", ps, &|| Ok(true)),
                    Err(Unsealable::Erased)
                ),
                "{subject}: sealed for after its erasure"
            );
            assert!(matches!(
                privacy.open_sealed("t", &sealed),
                Some(Opened::Erased)
            ));
        }
    }

    #[test]
    fn racing_first_uses_in_one_process_all_seal_with_the_key_kept_first() {
        let tmp = tempfile::tempdir().unwrap();
        let privacy = writable(tmp.path());
        // Both ask the log before either keeps a key; both make one.
        let (mine, other) = racing(&privacy, privacy.pseudonym_raw("cust-1"), false);
        assert!(Arc::ptr_eq(&mine, &other), "one key for both");
    }

    #[test]
    fn racing_makers_of_a_master_key_all_end_with_the_one_kept() {
        // Without any lock, as `pseudonym_in` makes one: whoever links first wins, and every
        // other maker takes that key rather than replacing it with its own.
        for _ in 0..20 {
            let tmp = tempfile::tempdir().unwrap();
            let layout = Layout::new(tmp.path());
            let start = std::sync::Barrier::new(8);
            let keys: Vec<[u8; 32]> = std::thread::scope(|scope| {
                let makers: Vec<_> = (0..8)
                    .map(|_| {
                        scope.spawn(|| {
                            start.wait();
                            master_key(&layout, true, false).expect("a master key")
                        })
                    })
                    .collect();
                makers.into_iter().map(|m| m.join().unwrap()).collect()
            });
            let kept = master_key(&layout, false, true).expect("the kept key");
            assert!(keys.iter().all(|k| *k == kept), "one key for every maker");
            let left: Vec<_> = fs::read_dir(layout.master_key().parent().unwrap())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(left, ["master.key"], "nothing left aside");
        }
    }

    #[test]
    fn fresh_keys_are_distinct_across_refills_and_leave_nothing_behind() {
        let mut fresh = FreshKeys::new();
        let keys: Vec<SubjectKey> = (0..150).map(|_| fresh.next().unwrap()).collect();
        let distinct: std::collections::HashSet<&SubjectKey> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len());
        assert!(keys.iter().all(|k| k.iter().any(|&b| b != 0)));
        assert!(fresh.pool[..fresh.used].iter().all(|&b| b == 0));
    }
}
