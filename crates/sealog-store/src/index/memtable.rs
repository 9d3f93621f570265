//! The newest records' index entries, in memory until there are enough to write a run.

use crate::UniformMap;
use crate::contract::Key as Posting;

use super::chains::{Chain, Chains};
use super::postings::Posting as Entry;
use super::run::{RID_WIDTH, TIME_WIDTH, time_key};

const NONE: u32 = u32::MAX;

/// One posting entry: its record (as an offset from the memtable's first seq), the next
/// entry of the same key, and the key's id. Twelve bytes: a memtable holds millions.
#[derive(Clone, Copy)]
struct Link {
    at: u32,
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
    pub(crate) fn distinct_keys(&self) -> u64 {
        self.keys.len() as u64
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = Entry> + '_ {
        let mut seqs = self.seqs.iter();
        self.keys
            .iter()
            .flat_map(|&(k, n)| std::iter::repeat_n(k, n as usize))
            .map(move |k| (k, *seqs.next().expect("as many seqs as the counts say")))
    }
}

pub(crate) struct Memtable {
    pub(crate) first: u64,
    pub(crate) end: u64,
    rid: UniformMap<[u8; 32], u64>,
    /// Each distinct posting key, numbered in order of first use.
    chains: Chains,
    links: Vec<Link>,
    time: Vec<(i64, u64)>,
    /// Each record's first link: a record's links are adjacent, so membership is
    /// O(postings per record), not O(chain).
    record_starts: Vec<u32>,
}

/// Postings a record is given room for in a fresh memtable: a decision record has some
/// twenty, a small event fewer.
const LINKS_PER_RECORD: usize = 24;

/// The most records a fresh memtable reserves room for, whatever its limit says.
const ROOM_RECORDS_MAX: u64 = 1 << 20;

impl Memtable {
    /// An empty memtable from `first` with room for `records` records reserved. The room is
    /// address space: pages become memory as records fill them, as they would have by
    /// growing, but a first memtable no longer copies its tables at every doubling (a
    /// twentieth of the writer's time in a run of 100,000 decision records).
    pub(crate) fn with_room(first: u64, records: u64) -> Self {
        let n = usize::try_from(records.min(ROOM_RECORDS_MAX)).expect("at most 2^20");
        Memtable {
            first,
            end: first,
            rid: UniformMap::with_capacity_and_hasher(n, Default::default()),
            chains: Chains::default(),
            links: Vec::with_capacity(n * LINKS_PER_RECORD),
            time: Vec::with_capacity(n),
            record_starts: Vec::with_capacity(n),
        }
    }

    /// The memtable emptied, its tables and maps keeping their room: the next memtable fills
    /// what this one already holds instead of growing from nothing (rehashing, and the kernel
    /// clearing fresh pages, at every flush), and the index's memory stays level.
    fn emptied(mut self) -> Self {
        let Memtable {
            first,
            end,
            rid,
            chains,
            links,
            time,
            record_starts,
        } = &mut self;
        (*first, *end) = (0, 0);
        rid.clear();
        chains.clear();
        emptied_to_size(links);
        emptied_to_size(time);
        emptied_to_size(record_starts);
        self
    }

    /// A flushed memtable, emptied for reuse, once nothing else holds it (a reader still
    /// holding it lets it go instead).
    pub(crate) fn reclaim(flushed: std::sync::Arc<Self>) -> Option<Self> {
        std::sync::Arc::try_unwrap(flushed).ok().map(Self::emptied)
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
        let off =
            u32::try_from(seq - self.first).expect("a memtable holds far fewer than 4G records");
        let start =
            u32::try_from(self.links.len()).expect("a memtable holds far fewer than 4G postings");
        self.record_starts.push(start);
        for p in postings {
            let at = u32::try_from(self.links.len())
                .expect("a memtable holds far fewer than 4G postings");
            let fresh = u32::try_from(self.chains.len()).expect("far fewer than 4G keys");
            let chain = self.chains.entry(p, || Chain {
                id: fresh,
                first: at,
                last: at,
                len: 0,
            });
            if chain.len > 0 {
                // A record may list the same posting twice (tenant == scope): keep it once. Its
                // links start at `start`, so a chain ending there or later ends in this record.
                if chain.last >= start {
                    continue;
                }
                self.links[chain.last as usize].next = at;
                chain.last = at;
            }
            chain.len += 1;
            let id = chain.id;
            self.links.push(Link {
                at: off,
                next: NONE,
                id,
            });
        }
    }

    pub(crate) fn prefetch(&self, postings: &[Posting]) {
        for p in postings {
            self.chains.prefetch(p);
        }
    }

    pub(crate) fn lookup_rid(&self, rid: &[u8; 32]) -> Option<u64> {
        self.rid.get(rid).copied()
    }

    fn chain(&self, key: &Posting) -> impl Iterator<Item = u64> + '_ {
        let mut at = self.chains.get(key).map_or(NONE, |c| c.first);
        std::iter::from_fn(move || {
            if at == NONE {
                return None;
            }
            let link = self.links[at as usize];
            at = link.next;
            Some(self.first + u64::from(link.at))
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
        let Some(&Chain { id, .. }) = self.chains.get(key) else {
            return false;
        };
        let start = self.record_starts[i as usize] as usize;
        let stop = self
            .record_starts
            .get(i as usize + 1)
            .map_or(self.links.len(), |&s| s as usize);
        self.links[start..stop].iter().any(|l| l.id == id)
    }

    pub(crate) fn count_in(&self, key: &Posting, from: u64, below: u64) -> u64 {
        self.chain(key)
            .filter(|s| (from..below).contains(s))
            .count() as u64
    }

    pub(crate) fn count(&self, key: &Posting) -> u64 {
        self.chains.get(key).map_or(0, |c| u64::from(c.len))
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
    /// The three tables sorted, the postings on this thread while another sorts the record
    /// ids and event times: a flush at close is on the command's one serial path.
    pub(crate) fn sorted_tables(&self) -> SortedTables {
        std::thread::scope(|s| {
            let others = s.spawn(|| (self.sorted_rids(), self.sorted_times()));
            let post = self.sorted_postings();
            let (rid, time) = others.join().expect("sorting record ids and times");
            (rid, post, time)
        })
    }

    fn sorted_rids(&self) -> Vec<[u8; RID_WIDTH]> {
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
        rid
    }

    fn sorted_postings(&self) -> SortedPostings {
        // Links are in seq order, so placing each at its key's next free slot, with the keys'
        // slots laid out in key order, sorts the table: the distinct keys are sorted (far
        // fewer than entries, and by value), and the links are read in order rather than
        // chased key by key.
        let order = self.chains.sorted();
        let mut next = vec![0u32; self.chains.len()];
        let mut at = 0u32;
        let keys = order
            .into_iter()
            .map(|(k, c)| {
                next[c.id as usize] = at;
                at += c.len;
                (k, c.len)
            })
            .collect();
        let mut seqs = vec![0u64; self.links.len()];
        for link in &self.links {
            let slot = &mut next[link.id as usize];
            seqs[*slot as usize] = self.first + u64::from(link.at);
            *slot += 1;
        }
        SortedPostings { keys, seqs }
    }

    fn sorted_times(&self) -> Vec<[u8; TIME_WIDTH]> {
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
        time
    }
}

/// Empties a table, keeping room for an eighth more than it held: the next memtable holds
/// about as many entries, and room a doubling left beyond that would stay resident unused.
fn emptied_to_size<T>(v: &mut Vec<T>) {
    let held = v.len();
    v.clear();
    v.shrink_to(held + held / 8);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic generator, so a failure names its case.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    fn key(n: u64) -> Posting {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&n.to_be_bytes());
        k
    }

    /// Records `first..first + n`, each with an id, an event time and a few keys drawn from
    /// `keys` distinct ones (a key twice on one record included).
    fn fill(m: &mut Memtable, first: u64, n: u64, keys: u64, state: &mut u64) {
        for seq in first..first + n {
            let mut rid = [0u8; 32];
            rid[..8].copy_from_slice(&next(state).to_be_bytes());
            rid[8..16].copy_from_slice(&seq.to_be_bytes());
            let postings: Vec<Posting> = (0..1 + next(state) % 5)
                .map(|_| key(next(state) % keys))
                .collect();
            m.insert(seq, rid, &postings, (next(state) % 1_000) as i64);
        }
    }

    /// Everything a memtable answers, over the keys, seqs and times asked.
    fn answers(m: &Memtable, keys: u64, seqs: std::ops::Range<u64>) -> Vec<String> {
        let mut out = vec![format!("{}..{} {}", m.first, m.end, m.records())];
        for k in 0..keys {
            let k = key(k);
            let mut p = Vec::new();
            m.postings(&k, 0, usize::MAX, &mut p);
            let contains: Vec<u64> = seqs.clone().filter(|&s| m.contains(&k, s)).collect();
            out.push(format!(
                "{k:?} {p:?} {contains:?} {} {}",
                m.count(&k),
                m.count_in(&k, seqs.start, seqs.end)
            ));
        }
        let mut times = Vec::new();
        m.time_range(100, 900, &mut times);
        out.push(format!("{times:?}"));
        let (rid, postings, time) = m.sorted_tables();
        out.push(format!("{rid:?}"));
        out.push(format!("{:?}", postings.iter().collect::<Vec<_>>()));
        out.push(format!("{time:?}"));
        out
    }

    #[test]
    fn an_emptied_memtable_answers_as_a_new_one_holding_the_same_records() {
        for (case, (first_n, keys_before, second_n, keys_after)) in [
            (500, 40, 300, 60),
            (300, 200, 500, 10),
            (1, 1, 1, 1),
            (64, 5, 0, 5),
        ]
        .into_iter()
        .enumerate()
        {
            let mut state = 0x5ea1_0401 + case as u64;
            let mut used = Memtable::with_room(0, 0);
            fill(&mut used, 0, first_n, keys_before, &mut state);
            let old_ids: Vec<[u8; 32]> = used.rid.keys().copied().collect();
            let mut reused = used.emptied();
            assert_eq!(reused.records(), 0, "case {case}");
            // Nothing of the old records is left, even where the answers would not show it
            // (a table that only grew would hold memory the flushes never give back).
            let lens = [
                reused.rid.len(),
                reused.chains.len(),
                reused.links.len(),
                reused.time.len(),
                reused.record_starts.len(),
            ];
            assert_eq!(lens, [0; 5], "case {case}");
            let start = first_n + 7;
            (reused.first, reused.end) = (start, start);
            // Room reserved for what it will hold: it answers as one that grew.
            let mut fresh = Memtable::with_room(start, second_n);
            assert!(fresh.time.capacity() >= second_n as usize, "case {case}");
            let mut twin = state;
            fill(&mut reused, start, second_n, keys_after, &mut state);
            fill(&mut fresh, start, second_n, keys_after, &mut twin);
            let all = keys_before.max(keys_after);
            let seqs = 0..start + second_n + 3;
            assert_eq!(
                answers(&reused, all, seqs.clone()),
                answers(&fresh, all, seqs),
                "case {case}"
            );
            for id in &old_ids {
                assert_eq!(reused.lookup_rid(id), None, "case {case}: an old id");
            }
        }
    }
}
