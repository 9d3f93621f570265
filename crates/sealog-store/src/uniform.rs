//! Maps keyed by bytes that are uniform hashes already (record ids, index keys, pseudonyms):
//! their first eight bytes are as good a hash as any and far cheaper than SipHash. Collisions
//! cost speed, not correctness; aiming them takes SHA-256 preimages, or for a pseudonym the
//! master key.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map keyed by a fixed-size array of uniform bytes.
pub type UniformMap<K, V> = HashMap<K, V, BuildHasherDefault<PrefixHasher>>;

#[derive(Default)]
pub struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.0 == 0 && bytes.len() >= 8 {
            self.0 = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        } else {
            for &b in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(b);
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
    use std::hash::BuildHasher;

    #[test]
    fn an_arrays_first_eight_bytes_are_its_hash() {
        let build = BuildHasherDefault::<PrefixHasher>::default();
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&0x0123_4567_89ab_cdefu64.to_le_bytes());
        key[8..].fill(0xee);
        assert_eq!(build.hash_one(key), 0x0123_4567_89ab_cdef);
        let short: [u8; 16] = key[..16].try_into().unwrap();
        assert_eq!(build.hash_one(short), 0x0123_4567_89ab_cdef);
    }
}
