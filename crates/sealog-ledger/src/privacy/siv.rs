//! AES-SIV (RFC 5297) for one data subject's values. Every value of a subject is sealed with
//! the same single header, so S2V's state after that header is computed once per subject
//! rather than once per value, and the two AES key schedules once per subject rather than
//! once per value; the bytes are exactly what `aes_siv::siv::Aes256Siv` makes (tested
//! below), and opening is left to it.

use aes::Aes256;
use aes::cipher::{Array, InnerIvInit, KeyInit, StreamCipher};
use aes_siv::siv::Aes256Siv;
use cmac::{Cmac, Mac};
use dbl::Dbl;

type Block = Array<u8, aes::cipher::consts::U16>;

/// A subject's key with its header: seals (through [`Sealing`]) and opens that subject's
/// values.
pub(super) struct SubjectCipher {
    key: [u8; 64],
    header: Vec<u8>,
    mac: Cmac<Aes256>,
    ctr: Aes256,
    /// S2V's D after the zero block and the header: dbl(CMAC(0)) xor CMAC(header).
    after_header: Block,
}

impl SubjectCipher {
    pub(super) fn new(key: &[u8; 64], header: Vec<u8>) -> Self {
        let (mac_key, ctr_key) = key.split_at(32);
        let mut mac =
            <Cmac<Aes256> as KeyInit>::new_from_slice(mac_key).expect("a 32-byte CMAC key");
        let ctr = Aes256::new_from_slice(ctr_key).expect("a 32-byte AES key");
        mac.update(&[0u8; 16]);
        let zero = mac.finalize_reset().into_bytes();
        mac.update(&header);
        let mut after_header = zero.dbl();
        xor(&mut after_header, &mac.finalize_reset().into_bytes());
        SubjectCipher {
            key: *key,
            header,
            mac,
            ctr,
            after_header,
        }
    }

    /// What seals values one after another (one copy of the keyed MAC for all of them).
    pub(super) fn sealing(&self) -> Sealing<'_> {
        Sealing {
            cipher: self,
            mac: self.mac.clone(),
        }
    }

    /// The plain bytes of `sealed` (the synthetic IV and the ciphertext), if they are this
    /// subject's.
    pub(super) fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        Aes256Siv::new_from_slice(&self.key)
            .expect("AES-SIV-256 takes a 64-byte key")
            .decrypt([self.header.as_slice()], sealed)
            .ok()
    }
}

pub(super) struct Sealing<'a> {
    cipher: &'a SubjectCipher,
    mac: Cmac<Aes256>,
}

impl Sealing<'_> {
    /// Appends the synthetic IV and the ciphertext of `plain` to `out`.
    pub(super) fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) {
        let d = self.cipher.after_header;
        let iv = match plain.len().checked_sub(16) {
            Some(n) => {
                self.mac.update(&plain[..n]);
                let mut last = Block::try_from(&plain[n..]).expect("16 bytes");
                xor(&mut last, &d);
                self.mac.update(&last);
                self.mac.finalize_reset().into_bytes()
            }
            None => {
                let mut t = d.dbl();
                xor(&mut t[..plain.len()], plain);
                t[plain.len()] ^= 0x80;
                self.mac.update(&t);
                self.mac.finalize_reset().into_bytes()
            }
        };
        out.extend_from_slice(&iv);
        let start = out.len();
        out.extend_from_slice(plain);
        // RFC 5297 §2.5: the counter is the IV with bits 63 and 31 cleared.
        let mut counter = iv;
        counter[8] &= 0x7f;
        counter[12] &= 0x7f;
        let core = ctr::CtrCore::<Aes256, ctr::flavors::Ctr128BE>::inner_iv_init(
            self.cipher.ctr.clone(),
            &counter,
        );
        ctr::Ctr128BE::<Aes256>::from_core(core).apply_keystream(&mut out[start..]);
    }
}

fn xor(into: &mut [u8], from: &[u8]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a ^= b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    /// Deterministic bytes: the tests are repeatable.
    fn bytes(seed: &str, len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0u32;
        while out.len() < len {
            out.extend_from_slice(&Sha256::digest(format!("{seed}/{i}")));
            i += 1;
        }
        out.truncate(len);
        out
    }

    #[test]
    fn seals_exactly_as_aes_siv_does_and_opens() {
        for k in 0..8 {
            let key: [u8; 64] = bytes(&format!("key{k}"), 64).try_into().unwrap();
            let header = bytes(&format!("header{k}"), k * 9);
            let cipher = SubjectCipher::new(&key, header.clone());
            let mut sealing = cipher.sealing();
            let mut reference = Aes256Siv::new_from_slice(&key).unwrap();
            for len in (0..=70).chain([255, 256, 1000]) {
                let plain = bytes(&format!("plain{k}/{len}"), len);
                let mut ours = b"before".to_vec();
                sealing.seal(&plain, &mut ours);
                let want = reference.encrypt([header.as_slice()], &plain).unwrap();
                assert_eq!(&ours[..6], b"before");
                assert_eq!(ours[6..], want[..], "key {k}, {len} bytes");
                assert_eq!(cipher.open(&want).as_deref(), Some(plain.as_slice()));
            }
        }
    }

    #[test]
    fn opens_nothing_altered_or_of_another_header() {
        let key = [7u8; 64];
        let cipher = SubjectCipher::new(&key, b"one".to_vec());
        let mut sealed = Vec::new();
        cipher.sealing().seal(b"a personal value", &mut sealed);
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(cipher.open(&bad), None, "byte {i} changed");
        }
        assert_eq!(
            SubjectCipher::new(&key, b"two".to_vec()).open(&sealed),
            None
        );
    }
}
