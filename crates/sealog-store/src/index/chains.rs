//! The memtable's map from a posting key to its chain of links: open addressing over keys
//! that are uniform hashes already, so the writer can fetch the slots of a record's keys into
//! cache while it inserts the record before. A map of the standard library hides where a key
//! lives; with a million keys, each of a record's twenty-odd postings waited for a miss of
//! its own, one after another.

use crate::contract::Key as Posting;

/// A key's id (its links carry it) and its chain: first and last link, so postings stay in
/// seq order without one allocation per key, and its length, so counting is O(1).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Chain {
    pub(crate) id: u32,
    pub(crate) first: u32,
    pub(crate) last: u32,
    pub(crate) len: u32,
}

/// One key and its chain, in half a cache line. A held chain has at least one link, so a
/// length of zero marks a free slot.
#[derive(Clone, Copy, Default)]
#[repr(C, align(32))]
struct Slot {
    key: Posting,
    chain: Chain,
}

/// The fewest slots a table has: a power of two, as every size is.
const SLOTS_MIN: usize = 1024;

pub(crate) struct Chains {
    slots: Vec<Slot>,
    held: usize,
    /// Mixed into each key before it picks a slot, so that keys aimed at one slot (see
    /// `crate::uniform`) do not share one.
    seed: u64,
}

impl Default for Chains {
    fn default() -> Self {
        Chains {
            slots: vec![Slot::default(); SLOTS_MIN],
            held: 0,
            seed: crate::uniform::fresh_seed(),
        }
    }
}

impl Chains {
    pub(crate) fn len(&self) -> usize {
        self.held
    }

    /// Where a key's probe starts: its first eight bytes, which are uniform, under the
    /// table's seed.
    fn home(&self, key: &Posting) -> usize {
        let lead = u64::from_le_bytes(key[..8].try_into().expect("8 bytes"));
        crate::uniform::mix(lead, self.seed) as usize & (self.slots.len() - 1)
    }

    /// The slot holding `key`, or the free one where it would go.
    fn find(&self, key: &Posting) -> usize {
        let mask = self.slots.len() - 1;
        let mut at = self.home(key);
        loop {
            let slot = &self.slots[at];
            if slot.chain.len == 0 || slot.key == *key {
                return at;
            }
            at = (at + 1) & mask;
        }
    }

    pub(crate) fn get(&self, key: &Posting) -> Option<&Chain> {
        let slot = &self.slots[self.find(key)];
        (slot.chain.len > 0).then_some(&slot.chain)
    }

    /// The key's chain, or a new one made by `fresh` (whose length the caller sets from zero
    /// before it next asks: a chain left at zero reads as a free slot).
    pub(crate) fn entry(&mut self, key: &Posting, fresh: impl FnOnce() -> Chain) -> &mut Chain {
        let mut at = self.find(key);
        if self.slots[at].chain.len == 0 {
            // At most three quarters full. Half full measured no faster (the probes' extra
            // lines are adjacent, and the misses the prefetch leaves are the same), and took
            // up to twice the memory: three memtables hold a table each.
            if (self.held + 1) * 4 > self.slots.len() * 3 {
                self.grow();
                at = self.find(key);
            }
            self.held += 1;
            self.slots[at] = Slot {
                key: *key,
                chain: fresh(),
            };
        }
        &mut self.slots[at].chain
    }

    fn grow(&mut self) {
        let doubled = vec![Slot::default(); self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        for slot in old.into_iter().filter(|s| s.chain.len > 0) {
            let at = self.find(&slot.key);
            self.slots[at] = slot;
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Posting, &Chain)> {
        self.slots
            .iter()
            .filter(|s| s.chain.len > 0)
            .map(|s| (&s.key, &s.chain))
    }

    /// Every key and its chain, in key order (the keys read as big-endian numbers). The keys
    /// are uniform, so they are first placed by their leading bits, about one to a bucket,
    /// and then each bucket is sorted: two passes and many tiny sorts, where one sort of
    /// them all was most of a flush. Keys aimed at one bucket sort as one sort would.
    pub(crate) fn sorted(&self) -> Vec<(u128, Chain)> {
        let n = self.held;
        let bits = n.next_power_of_two().trailing_zeros().clamp(1, 16);
        let bucket = |k: u128| (k >> (128 - bits)) as usize;
        let mut starts = vec![0usize; (1 << bits) + 1];
        for (k, _) in self.iter() {
            starts[bucket(u128::from_be_bytes(*k)) + 1] += 1;
        }
        for b in 1..starts.len() {
            starts[b] += starts[b - 1];
        }
        let mut next = starts.clone();
        let mut out = vec![(0u128, Chain::default()); n];
        for (k, c) in self.iter() {
            let k = u128::from_be_bytes(*k);
            let at = &mut next[bucket(k)];
            out[*at] = (k, *c);
            *at += 1;
        }
        for w in starts.windows(2) {
            if w[1] - w[0] > 1 {
                out[w[0]..w[1]].sort_unstable_by_key(|&(k, _)| k);
            }
        }
        out
    }

    /// Empty, keeping its slots: the next memtable holds about as many keys.
    pub(crate) fn clear(&mut self) {
        self.slots.fill(Slot::default());
        self.held = 0;
    }

    /// Asks the CPU to bring the slot where `key`'s probe starts into cache. A hint: it
    /// changes nothing, and where there is no such instruction it does nothing.
    pub(crate) fn prefetch(&self, key: &Posting) {
        #[cfg(target_arch = "x86_64")]
        {
            let slot: *const Slot = &self.slots[self.home(key)];
            #[allow(unsafe_code)]
            // SAFETY: a prefetch neither reads into the program nor writes, and never faults;
            // the address is of a slot this table holds.
            unsafe {
                use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                _mm_prefetch::<_MM_HINT_T0>(slot.cast());
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = key;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Keys drawn from a few thousand, some sharing their first eight bytes (so they share a
    /// home and probe past each other) and some differing only there.
    fn key(state: &mut u64) -> Posting {
        let n = next(state) % 3_000;
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&(n % 700).to_le_bytes());
        k[8..].copy_from_slice(&(n / 700).to_le_bytes());
        k
    }

    #[test]
    fn answers_as_a_map_does_through_growth_and_clearing() {
        let mut state = 0x00c4_a175;
        // A seed of its own, so a failure repeats with the same layout.
        let mut table = Chains {
            seed: 0x5eed,
            ..Chains::default()
        };
        for round in 0..3 {
            let mut model: HashMap<Posting, Chain> = HashMap::new();
            for i in 0..20_000u32 {
                let k = key(&mut state);
                let fresh = Chain {
                    id: i,
                    first: i,
                    last: i,
                    len: 0,
                };
                let got = table.entry(&k, || fresh);
                got.len += 1;
                got.last = i;
                let want = model.entry(k).or_insert(fresh);
                want.len += 1;
                want.last = i;
                assert_eq!(got, want, "round {round}, insert {i}");
                if i % 97 == 0 {
                    let probe = key(&mut state);
                    assert_eq!(table.get(&probe), model.get(&probe), "round {round}");
                }
            }
            assert_eq!(table.len(), model.len(), "round {round}");
            let mut held: Vec<(Posting, Chain)> = table.iter().map(|(k, c)| (*k, *c)).collect();
            let mut want: Vec<(Posting, Chain)> = model.into_iter().collect();
            held.sort_unstable_by_key(|e| e.0);
            want.sort_unstable_by_key(|e| e.0);
            assert_eq!(held, want, "round {round}");
            let by_number: Vec<(u128, Chain)> = {
                let mut all: Vec<(u128, Chain)> = want
                    .iter()
                    .map(|(k, c)| (u128::from_be_bytes(*k), *c))
                    .collect();
                all.sort_unstable_by_key(|e| e.0);
                all
            };
            assert_eq!(table.sorted(), by_number, "round {round}: in key order");
            assert!(table.slots.len() > SLOTS_MIN, "the table grew");
            let slots = table.slots.len();
            table.clear();
            assert_eq!((table.len(), table.iter().count()), (0, 0), "round {round}");
            assert_eq!(table.slots.len(), slots, "cleared, it keeps its slots");
        }
    }
}
