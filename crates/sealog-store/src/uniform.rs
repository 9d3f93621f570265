//! Maps keyed by bytes that are uniform hashes already (record ids, index keys, pseudonyms):
//! their first eight bytes are as good a hash as any, and far cheaper than SipHash. Which slot
//! a key takes depends on only a few of those bits, though, and a writer could aim them by
//! trying values until many keys share a slot (about 2^k tries a key for a table of 2^k
//! slots), slowing every insertion after. So the eight bytes are mixed with a seed drawn at
//! random for each map, which a writer never sees, before a table takes its bits.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};

/// A map keyed by a fixed-size array of uniform bytes.
pub type UniformMap<K, V> = HashMap<K, V, UniformState>;

/// A map's seed. `Default` draws a fresh one, so every map has its own.
#[derive(Clone, Copy)]
pub struct UniformState {
    seed: u64,
}

impl Default for UniformState {
    fn default() -> Self {
        UniformState { seed: fresh_seed() }
    }
}

impl BuildHasher for UniformState {
    type Hasher = PrefixHasher;

    fn build_hasher(&self) -> PrefixHasher {
        PrefixHasher {
            seed: self.seed,
            lead: 0,
            taken: false,
        }
    }
}

/// A random 64-bit seed: the standard library's random hash keys, through its own hasher.
pub(crate) fn fresh_seed() -> u64 {
    RandomState::new().hash_one(0x5ea1_u64)
}

/// Where `lead` falls under `seed`: a folded 128-bit product, so every bit of the key moves
/// the low bits a table indexes by and the high bits it tags slots with.
#[inline(always)]
pub(crate) fn mix(lead: u64, seed: u64) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let p = u128::from(lead ^ seed) * u128::from(K);
    (p as u64) ^ ((p >> 64) as u64)
}

pub struct PrefixHasher {
    seed: u64,
    lead: u64,
    taken: bool,
}

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        mix(self.lead, self.seed)
    }

    fn write(&mut self, bytes: &[u8]) {
        if !self.taken && bytes.len() >= 8 {
            self.lead = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
            self.taken = true;
        } else if !self.taken {
            for &b in bytes {
                self.lead = self.lead.rotate_left(8) ^ u64::from(b);
            }
        }
    }

    /// An array's length, hashed before its bytes: the same for every key of a map, so it
    /// says nothing, and hashing it would keep the bytes from being the hash.
    fn write_usize(&mut self, _: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_arrays_first_eight_bytes_are_all_its_hash_depends_on() {
        let build = UniformState::default();
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&0x0123_4567_89ab_cdefu64.to_le_bytes());
        key[8..].fill(0xee);
        let h = build.hash_one(key);
        let mut other = key;
        other[8..].fill(0x11);
        assert_eq!(
            build.hash_one(other),
            h,
            "bytes past the eighth say nothing"
        );
        let short: [u8; 16] = key[..16].try_into().unwrap();
        assert_eq!(build.hash_one(short), h, "nor does the array's length");
        assert_eq!(h, mix(0x0123_4567_89ab_cdef, build.seed));
    }

    /// Keys aimed at one slot of a table of 2^16 (equal low sixteen bits, the rest varied)
    /// spread over the table under a seed, and two maps seldom share a seed.
    #[test]
    fn keys_aimed_at_one_slot_spread_under_a_seed() {
        let build = UniformState::default();
        let slots: std::collections::HashSet<u64> = (0..4_096u64)
            .map(|i| build.hash_one(((i << 16) | 0xbeef).to_le_bytes()) & 0xffff)
            .collect();
        assert!(slots.len() > 3_500, "{} slots of 4096", slots.len());
        let seeds: std::collections::HashSet<u64> =
            (0..64).map(|_| UniformState::default().seed).collect();
        assert_eq!(seeds.len(), 64);
    }
}
