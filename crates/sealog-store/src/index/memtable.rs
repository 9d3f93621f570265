//! The newest records' index entries, in memory until there are enough to write a run.

use crate::UniformMap;
use crate::contract::Key as Posting;

use super::postings::Posting as Entry;
use super::run::{RID_WIDTH, TIME_WIDTH, time_key};

const NONE: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Chain {
    first: u32,
    last: u32,
    len: u32,
}

/// One posting entry: its record, the next entry of the same key, and the key's id.
#[derive(Clone, Copy)]
struct Link {
    seq: u64,
    next: u32,
    id: u32,
}

/// The three tables of a run, each sorted: record ids, postings, event times.
pub(crate) type SortedTables = (Vec<[u8; RID_WIDTH]>, SortedPostings, Vec<[u8; TIME_WIDTH]>);

/// A memtable's postings in order: each distinct key with how many records carry it, and
/// all the seqs, key after key.
pub(crate) struct SortedPostings {
    keys: Vec<(u128, u32)>,
    seqs: Vec<u64>,
}

impl SortedPostings {
    pub(crate) fn iter(&self) -> impl Iterator<Item = Entry> + '_ {
        let mut seqs = self.seqs.iter();
        self.keys
            .iter()
            .flat_map(|&(k, n)| std::iter::repeat_n(k, n as usize))
            .map(move |k| (k, *seqs.next().expect("as many seqs as the counts say")))
    }
}

#[derive(Default)]
pub(crate) struct Memtable {
    pub(crate) first: u64,
    pub(crate) end: u64,
    rid: UniformMap<[u8; 32], u64>,
    /// Each distinct posting key's id: its index in `keys` and `chains`.
    ids: UniformMap<Posting, u32>,
    keys: Vec<Posting>,
    /// Per key id: first and last link of its chain in `links` (so postings stay in seq
    /// order without one allocation per key) and its length (so counting is O(1)).
    chains: Vec<Chain>,
    links: Vec<Link>,
    time: Vec<(i64, u64)>,
    /// Each record's postings, so membership is O(postings per record), not O(chain).
    record_postings: Vec<Posting>,
    record_starts: Vec<u32>,
}

impl Memtable {
    pub(crate) fn new(first: u64) -> Self {
        Memtable {
            first,
            end: first,
            ..Default::default()
        }
    }

    pub(crate) fn records(&self) -> u64 {
        self.end - self.first
    }

    pub(crate) fn insert(&mut self, seq: u64, rid: [u8; 32], postings: &[Posting], event_ns: i64) {
        assert_eq!(seq, self.end, "index entries must arrive in seq order");
        self.end += 1;
        // The lowest seq answers for an id, in every layer.
        self.rid.entry(rid).or_insert(seq);
        self.time.push((event_ns, seq));
        self.record_starts.push(
            u32::try_from(self.record_postings.len()).expect("a memtable is far below 4G postings"),
        );
        self.record_postings.extend_from_slice(postings);
        for p in postings {
            let at = u32::try_from(self.links.len())
                .expect("a memtable holds far fewer than 4G postings");
            let id = match self.ids.get(p) {
                Some(&id) => {
                    let chain = &mut self.chains[id as usize];
                    // A record may list the same posting twice (tenant == scope): keep it once.
                    if self.links[chain.last as usize].seq == seq {
                        continue;
                    }
                    self.links[chain.last as usize].next = at;
                    chain.last = at;
                    chain.len += 1;
                    id
                }
                None => {
                    let id = u32::try_from(self.keys.len()).expect("far fewer than 4G keys");
                    self.ids.insert(*p, id);
                    self.keys.push(*p);
                    self.chains.push(Chain {
                        first: at,
                        last: at,
                        len: 1,
                    });
                    id
                }
            };
            self.links.push(Link {
                seq,
                next: NONE,
                id,
            });
        }
    }

    pub(crate) fn lookup_rid(&self, rid: &[u8; 32]) -> Option<u64> {
        self.rid.get(rid).copied()
    }

    fn chain(&self, key: &Posting) -> impl Iterator<Item = u64> + '_ {
        let mut at = self
            .ids
            .get(key)
            .map_or(NONE, |&id| self.chains[id as usize].first);
        std::iter::from_fn(move || {
            if at == NONE {
                return None;
            }
            let link = self.links[at as usize];
            at = link.next;
            Some(link.seq)
        })
    }

    pub(crate) fn postings(&self, key: &Posting, from: u64, limit: usize, out: &mut Vec<u64>) {
        for seq in self.chain(key).filter(|&s| s >= from) {
            if out.len() >= limit {
                break;
            }
            out.push(seq);
        }
    }

    pub(crate) fn contains(&self, key: &Posting, seq: u64) -> bool {
        let Some(i) = seq.checked_sub(self.first).filter(|&i| i < self.records()) else {
            return false;
        };
        let start = self.record_starts[i as usize] as usize;
        let stop = self
            .record_starts
            .get(i as usize + 1)
            .map_or(self.record_postings.len(), |&s| s as usize);
        self.record_postings[start..stop].contains(key)
    }

    pub(crate) fn count_in(&self, key: &Posting, from: u64, below: u64) -> u64 {
        self.chain(key)
            .filter(|s| (from..below).contains(s))
            .count() as u64
    }

    pub(crate) fn count(&self, key: &Posting) -> u64 {
        self.ids
            .get(key)
            .map_or(0, |&id| u64::from(self.chains[id as usize].len))
    }

    pub(crate) fn time_range(&self, from: i64, to: i64, out: &mut Vec<u64>) {
        out.extend(
            self.time
                .iter()
                .filter(|(t, _)| (from..to).contains(t))
                .map(|&(_, s)| s),
        );
    }

    /// The sorted table contents of a run holding exactly these entries.
    pub(crate) fn sorted_tables(&self) -> SortedTables {
        let mut rid: Vec<[u8; RID_WIDTH]> = self
            .rid
            .iter()
            .map(|(r, s)| {
                let mut e = [0u8; RID_WIDTH];
                e[..32].copy_from_slice(r);
                e[32..].copy_from_slice(&s.to_be_bytes());
                e
            })
            .collect();
        // Integer compares of the leading bytes are much cheaper than memcmp; full ties (equal
        // first 16 bytes of two record ids) are astronomically rare but still settled.
        let lead = |e: &[u8; RID_WIDTH]| u128::from_be_bytes(e[..16].try_into().expect("16 bytes"));
        rid.sort_unstable_by(|a, b| lead(a).cmp(&lead(b)).then_with(|| a.cmp(b)));
        // Links are in seq order, so placing each at its key's next free slot, with the keys'
        // slots laid out in key order, sorts the table: the distinct keys are sorted (far
        // fewer than entries, and by value), and the links are read in order rather than
        // chased key by key.
        let mut order: Vec<(u128, u32)> = self
            .keys
            .iter()
            .zip(0u32..)
            .map(|(k, id)| (u128::from_be_bytes(*k), id))
            .collect();
        order.sort_unstable_by_key(|&(k, _)| k);
        let mut next = vec![0u32; self.keys.len()];
        let mut at = 0u32;
        for (_, id) in &mut order {
            next[*id as usize] = at;
            let n = self.chains[*id as usize].len;
            at += n;
            // From here on the pair is the key and its count.
            *id = n;
        }
        let mut seqs = vec![0u64; self.links.len()];
        for link in &self.links {
            let slot = &mut next[link.id as usize];
            seqs[*slot as usize] = link.seq;
            *slot += 1;
        }
        let post = SortedPostings { keys: order, seqs };
        let mut time: Vec<[u8; TIME_WIDTH]> = self
            .time
            .iter()
            .map(|&(t, s)| {
                let mut e = [0u8; TIME_WIDTH];
                e[..8].copy_from_slice(&time_key(t));
                e[8..].copy_from_slice(&s.to_be_bytes());
                e
            })
            .collect();
        time.sort_unstable_by_key(|e| u128::from_be_bytes(*e));
        (rid, post, time)
    }
}
