//! AES-SIV (RFC 5297), sealing and opening exactly as `aes_siv::siv::Aes256Siv` does (tested
//! below against it).
//!
//! Why not that crate: an event's personal values are short (a name, an address), and every
//! call into a block cipher readies its backend (the `aes` crate's VAES backend broadcasts all
//! fifteen round keys), so its `cmac` and `ctr` spent more time readying than encrypting:
//! three to five readyings per value, and a new key schedule per value opened. Here both
//! halves of the key are readied once for all of an event's values ([`Siv::with`]), and S2V
//! and CTR run over the readied backends.

use aes::Aes256Enc;
use aes::cipher::consts::U16;
use aes::cipher::{
    Array, BlockCipherEncBackend, BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser,
    KeyInit, ParBlocks,
};
use dbl::Dbl;

type Block = Array<u8, U16>;

/// An AES-SIV-256 key made ready: both key schedules and CMAC's subkeys.
pub(super) struct Siv {
    mac: Aes256Enc,
    ctr: Aes256Enc,
    /// CMAC's subkeys K1 and K2 (RFC 4493 §2.3).
    k1: Block,
    k2: Block,
    /// S2V's first D: CMAC of the zero block.
    zero: Block,
}

/// What seals, with both halves of the key readied (see [`Siv::with`]).
pub(super) trait Seal {
    /// CMAC of `message` under the MAC half.
    fn mac(&mut self, message: &[u8]) -> Block;
    /// S2V's D after `headers` (RFC 5297 §2.4): computed once for a header every value shares.
    fn after(&mut self, headers: &[&[u8]]) -> Block;
    /// Appends the synthetic IV and the ciphertext of `plain` to `out`, for headers whose D
    /// is `d`.
    fn seal(&mut self, d: &Block, plain: &[u8], out: &mut Vec<u8>);
    /// The plain bytes of `sealed` (the synthetic IV, then the ciphertext) for headers whose
    /// D is `d`, if they authenticate.
    fn open(&mut self, d: &Block, sealed: &[u8]) -> Option<Vec<u8>>;
}

impl Siv {
    pub(super) fn new(key: &[u8; 64]) -> Self {
        let (mac_key, ctr_key) = key.split_at(32);
        let mac = Aes256Enc::new_from_slice(mac_key).expect("a 32-byte AES key");
        let ctr = Aes256Enc::new_from_slice(ctr_key).expect("a 32-byte AES key");
        let mut l = Block::default();
        mac.encrypt_block(&mut l);
        let k1 = l.dbl();
        let k2 = k1.dbl();
        let mut siv = Siv {
            mac,
            ctr,
            k1,
            k2,
            zero: Block::default(),
        };
        siv.zero = siv.with(&mut |s| s.mac(&[0u8; 16]));
        siv
    }

    /// Runs `body` with both halves of the key readied once.
    pub(super) fn with<R>(&self, body: &mut dyn FnMut(&mut dyn Seal) -> R) -> R {
        let mut out = None;
        self.mac.encrypt_with_backend(MacHalf {
            siv: self,
            body: &mut |s: &mut dyn Seal| out = Some(body(s)),
        });
        out.expect("the backend runs the closure")
    }

    /// The plain bytes of `sealed` (the synthetic IV and the ciphertext) under `headers`, if
    /// they authenticate.
    pub(super) fn open(&self, headers: &[&[u8]], sealed: &[u8]) -> Option<Vec<u8>> {
        self.with(&mut |s| {
            let d = s.after(headers);
            s.open(&d, sealed)
        })
    }
}

type Body<'a> = &'a mut dyn FnMut(&mut dyn Seal);

/// Readies the MAC half, then the CTR half inside it.
struct MacHalf<'a, 'b> {
    siv: &'a Siv,
    body: Body<'b>,
}

impl BlockSizeUser for MacHalf<'_, '_> {
    type BlockSize = U16;
}

impl BlockCipherEncClosure for MacHalf<'_, '_> {
    fn call<M: BlockCipherEncBackend<BlockSize = U16>>(self, mac: &M) {
        self.siv.ctr.encrypt_with_backend(CtrHalf {
            siv: self.siv,
            mac,
            body: self.body,
        });
    }
}

struct CtrHalf<'a, 'b, M> {
    siv: &'a Siv,
    mac: &'a M,
    body: Body<'b>,
}

impl<M> BlockSizeUser for CtrHalf<'_, '_, M> {
    type BlockSize = U16;
}

impl<M: BlockCipherEncBackend<BlockSize = U16>> BlockCipherEncClosure for CtrHalf<'_, '_, M> {
    fn call<C: BlockCipherEncBackend<BlockSize = U16>>(self, ctr: &C) {
        (self.body)(&mut Ready {
            siv: self.siv,
            mac: self.mac,
            ctr,
        });
    }
}

struct Ready<'a, M, C> {
    siv: &'a Siv,
    mac: &'a M,
    ctr: &'a C,
}

impl<M: BlockCipherEncBackend<BlockSize = U16>, C: BlockCipherEncBackend<BlockSize = U16>>
    Ready<'_, M, C>
{
    /// CMAC (RFC 4493) of `head` followed by `last` (at most a block: S2V's last block).
    fn cmac(&self, head: &[u8], last: &[u8]) -> Block {
        let mut x = Block::default();
        let mut step = |block: &[u8]| {
            xor(&mut x, block);
            self.mac.encrypt_block_inplace(&mut x);
        };
        let whole = head.len() / 16 * 16;
        // What is left after `head`'s whole blocks: its tail, then `last`.
        let mut rest = [0u8; 48];
        let tail = &head[whole..];
        rest[..tail.len()].copy_from_slice(tail);
        rest[tail.len()..tail.len() + last.len()].copy_from_slice(last);
        let rest_len = tail.len() + last.len();
        // The final block is CMAC's special one: keep it out of the chain.
        let (chained, fin) = if rest_len == 0 && whole > 0 {
            (&head[..whole - 16], &head[whole - 16..whole])
        } else {
            (&head[..whole], &[][..])
        };
        chained.chunks_exact(16).for_each(&mut step);
        let fin = if fin.is_empty() {
            let over = rest_len.saturating_sub(1) / 16 * 16;
            rest[..over].chunks_exact(16).for_each(&mut step);
            &rest[over..rest_len]
        } else {
            fin
        };
        let mut block = [0u8; 16];
        block[..fin.len()].copy_from_slice(fin);
        if fin.len() == 16 {
            xor(&mut block, &self.siv.k1);
        } else {
            block[fin.len()] = 0x80;
            xor(&mut block, &self.siv.k2);
        }
        step(&block);
        x
    }
}

impl<M: BlockCipherEncBackend<BlockSize = U16>, C: BlockCipherEncBackend<BlockSize = U16>> Seal
    for Ready<'_, M, C>
{
    fn mac(&mut self, message: &[u8]) -> Block {
        self.cmac(message, &[])
    }

    fn after(&mut self, headers: &[&[u8]]) -> Block {
        let mut d = self.siv.zero;
        for h in headers {
            d = d.dbl();
            xor(&mut d, &self.cmac(h, &[]));
        }
        d
    }

    fn seal(&mut self, d: &Block, plain: &[u8], out: &mut Vec<u8>) {
        let iv = self.s2v_last(d, plain);
        out.extend_from_slice(&iv);
        let start = out.len();
        out.extend_from_slice(plain);
        self.ctr(&iv, &mut out[start..]);
    }

    fn open(&mut self, d: &Block, sealed: &[u8]) -> Option<Vec<u8>> {
        let (iv, text) = sealed.split_at_checked(16)?;
        let mut plain = text.to_vec();
        self.ctr(iv, &mut plain);
        let v = self.s2v_last(d, &plain);
        // Compared in full whatever differs first, so the time taken tells nothing.
        let differs = v.iter().zip(iv).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differs == 0 {
            Some(plain)
        } else {
            plain.fill(0);
            None
        }
    }
}

impl<M: BlockCipherEncBackend<BlockSize = U16>, C: BlockCipherEncBackend<BlockSize = U16>>
    Ready<'_, M, C>
{
    /// S2V's last step (RFC 5297 §2.4): the synthetic IV of `plain` after headers whose D is
    /// `d`.
    fn s2v_last(&self, d: &Block, plain: &[u8]) -> Block {
        match plain.len().checked_sub(16) {
            Some(n) => {
                let mut last = Block::try_from(&plain[n..]).expect("16 bytes");
                xor(&mut last, d);
                self.cmac(&plain[..n], &last)
            }
            None => {
                let mut t = (*d).dbl();
                xor(&mut t[..plain.len()], plain);
                t[plain.len()] ^= 0x80;
                self.cmac(&t, &[])
            }
        }
    }

    /// Applies CTR's keystream from the synthetic IV `iv` to `text`: encrypts and decrypts.
    fn ctr(&self, iv: &[u8], text: &mut [u8]) {
        // RFC 5297 §2.5: the counter is the IV with bits 63 and 31 cleared; it counts as one
        // 128-bit big-endian number.
        let mut counter: [u8; 16] = iv.try_into().expect("a 16-byte IV");
        counter[8] &= 0x7f;
        counter[12] &= 0x7f;
        let mut count = u128::from_be_bytes(counter);
        let mut next = || {
            let block = count.to_be_bytes().into();
            count = count.wrapping_add(1);
            block
        };
        let wide = 16 * par::<C>();
        for chunk in text.chunks_mut(wide) {
            if chunk.len() < wide {
                // A personal value is mostly a few blocks: those alone, one at a time.
                for c in chunk.chunks_mut(16) {
                    let mut stream = next();
                    self.ctr.encrypt_block_inplace(&mut stream);
                    xor(c, &stream);
                }
                break;
            }
            let mut stream = ParBlocks::<C>::default();
            stream.iter_mut().for_each(|b| *b = next());
            self.ctr.encrypt_par_blocks_inplace(&mut stream);
            for (c, s) in chunk.chunks_mut(16).zip(stream.iter()) {
                xor(c, s);
            }
        }
    }
}

/// How many blocks the backend encrypts at once.
fn par<C: BlockCipherEncBackend>() -> usize {
    use aes::cipher::typenum::Unsigned;
    C::ParBlocksSize::USIZE
}

fn xor(into: &mut [u8], from: &[u8]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a ^= b;
    }
}

/// A data subject's key with the one header every value of theirs is sealed under.
pub(super) struct SubjectCipher {
    siv: Siv,
    /// S2V's D after the header.
    after_header: Block,
}

impl SubjectCipher {
    pub(super) fn new(key: &[u8; 64], header: &[u8]) -> Self {
        let siv = Siv::new(key);
        let after_header = siv.with(&mut |s| s.after(&[header]));
        SubjectCipher { siv, after_header }
    }

    /// Runs `body` with a sealer of this subject's values, readied once for all of them.
    pub(super) fn sealing<R>(&self, body: &mut dyn FnMut(&mut Sealing<'_>) -> R) -> R {
        self.siv.with(&mut |s| {
            body(&mut Sealing {
                seal: s,
                d: &self.after_header,
            })
        })
    }

    /// The plain bytes of `sealed` (the synthetic IV and the ciphertext), if they are this
    /// subject's.
    pub(super) fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        self.siv.with(&mut |s| s.open(&self.after_header, sealed))
    }
}

pub(super) struct Sealing<'a> {
    seal: &'a mut dyn Seal,
    d: &'a Block,
}

impl Sealing<'_> {
    /// Appends the synthetic IV and the ciphertext of `plain` to `out`.
    pub(super) fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) {
        self.seal.seal(self.d, plain, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_siv::siv::Aes256Siv;
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

    const LENGTHS: [usize; 13] = [0, 1, 15, 16, 17, 31, 32, 33, 255, 256, 1000, 1024, 4099];

    #[test]
    fn seals_exactly_as_aes_siv_does_and_opens() {
        for k in 0..8 {
            let key: [u8; 64] = bytes(&format!("key{k}"), 64).try_into().unwrap();
            let header = bytes(&format!("header{k}"), k * 9);
            let cipher = SubjectCipher::new(&key, &header);
            let mut reference = Aes256Siv::new_from_slice(&key).unwrap();
            cipher.sealing(&mut |sealing| {
                for len in (0..=70).chain(LENGTHS) {
                    let plain = bytes(&format!("plain{k}/{len}"), len);
                    let mut ours = b"before".to_vec();
                    sealing.seal(&plain, &mut ours);
                    let want = reference.encrypt([header.as_slice()], &plain).unwrap();
                    assert_eq!(&ours[..6], b"before");
                    assert_eq!(ours[6..], want[..], "key {k}, {len} bytes");
                    assert_eq!(cipher.open(&want).as_deref(), Some(plain.as_slice()));
                }
            });
        }
    }

    #[test]
    fn seals_under_several_headers_exactly_as_aes_siv_does() {
        let key: [u8; 64] = bytes("several", 64).try_into().unwrap();
        let siv = Siv::new(&key);
        let mut reference = Aes256Siv::new_from_slice(&key).unwrap();
        for n in 0..5 {
            let owned: Vec<Vec<u8>> = (0..n)
                .map(|i| bytes(&format!("h{n}/{i}"), LENGTHS[(i * 3 + n) % LENGTHS.len()]))
                .collect();
            let headers: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
            for len in LENGTHS {
                let plain = bytes(&format!("p{n}/{len}"), len);
                let mut ours = Vec::new();
                siv.with(&mut |s| {
                    let d = s.after(&headers);
                    s.seal(&d, &plain, &mut ours)
                });
                let want = reference.encrypt(&headers, &plain).unwrap();
                assert_eq!(ours, want, "{n} headers, {len} bytes");
                assert_eq!(siv.open(&headers, &want), Some(plain));
            }
        }
    }

    #[test]
    fn opens_nothing_altered_or_of_another_header() {
        let key = [7u8; 64];
        let cipher = SubjectCipher::new(&key, b"one");
        let mut sealed = Vec::new();
        cipher.sealing(&mut |s| s.seal(b"a personal value", &mut sealed));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(cipher.open(&bad), None, "byte {i} changed");
        }
        assert_eq!(SubjectCipher::new(&key, b"two").open(&sealed), None);
        for short in 0..16 {
            assert_eq!(cipher.open(&sealed[..short]), None, "{short} bytes");
        }
    }
}
