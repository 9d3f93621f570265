//! Records retention pruned since the index was built, with the keys each one's stub keeps.
//!
//! A long-lived process prunes millions of records between two rebuilds of its index (each
//! day's expired records, every day), and holds this until the next. So it is kept in flat
//! arrays in seq order: 28 bytes for a record whose stub keeps one key, where a map of boxed
//! key lists took about twice that.

use crate::contract::Key;

#[derive(Default)]
pub(crate) struct Pruned {
    seqs: Vec<u64>,
    /// Where each record's keys end in `keys` (they start where the one before ends).
    ends: Vec<u32>,
    keys: Vec<Key>,
}

impl Pruned {
    /// Adds records, each with the keys its stub keeps; a record noted again takes its new keys.
    pub(crate) fn note(&mut self, mut batch: Vec<(u64, Vec<Key>)>) {
        // Stable, so of a record noted twice in one batch the later stays last.
        batch.sort_by_key(|(seq, _)| *seq);
        let mut batch = batch.into_iter().peekable();
        let in_order = match (self.seqs.last(), batch.peek()) {
            (Some(&last), Some((first, _))) => *first > last,
            _ => true,
        };
        if in_order {
            while let Some((seq, kept)) = batch.next() {
                if batch.peek().is_none_or(|(next, _)| *next != seq) {
                    self.push(seq, &kept);
                }
            }
            return;
        }
        // Pruned out of seq order (another policy's older records): one merge for the batch.
        let mut merged = Pruned {
            seqs: Vec::with_capacity(self.seqs.len() + batch.len()),
            ends: Vec::with_capacity(self.ends.len() + batch.len()),
            keys: Vec::with_capacity(self.keys.len()),
        };
        let mut at = 0;
        while let Some((seq, kept)) = batch.next() {
            if batch.peek().is_some_and(|(next, _)| *next == seq) {
                continue;
            }
            while at < self.seqs.len() && self.seqs[at] < seq {
                merged.push(self.seqs[at], self.kept_at(at));
                at += 1;
            }
            if self.seqs.get(at) == Some(&seq) {
                at += 1;
            }
            merged.push(seq, &kept);
        }
        for i in at..self.seqs.len() {
            merged.push(self.seqs[i], self.kept_at(i));
        }
        *self = merged;
    }

    fn push(&mut self, seq: u64, kept: &[Key]) {
        self.seqs.push(seq);
        self.keys.extend_from_slice(kept);
        let end = u32::try_from(self.keys.len()).expect("fewer than 2^32 kept keys");
        self.ends.push(end);
    }

    fn kept_at(&self, i: usize) -> &[Key] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.keys[start..self.ends[i] as usize]
    }

    /// The keys record `seq`'s stub keeps, if it was pruned.
    pub(crate) fn get(&self, seq: u64) -> Option<&[Key]> {
        self.seqs.binary_search(&seq).ok().map(|i| self.kept_at(i))
    }

    /// The records pruned in `[from, below)`, in seq order, with the keys each keeps.
    pub(crate) fn within(&self, from: u64, below: u64) -> impl Iterator<Item = (u64, &[Key])> {
        let start = self.seqs.partition_point(|&s| s < from);
        (start..self.seqs.len())
            .take_while(move |&i| self.seqs[i] < below)
            .map(|i| (self.seqs[i], self.kept_at(i)))
    }

    /// Whether any record in `[from, below)` was pruned.
    pub(crate) fn any_within(&self, from: u64, below: u64) -> bool {
        from < below && self.within(from, below).next().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn key(n: u8) -> Key {
        [n; 16]
    }

    /// Notes batches in and out of seq order, records noted again among them, and holds every
    /// answer to a map's.
    #[test]
    fn answers_as_a_map_whatever_order_records_are_noted_in() {
        let mut pruned = Pruned::default();
        let mut model: BTreeMap<u64, Vec<Key>> = BTreeMap::new();
        let batches: Vec<Vec<(u64, Vec<Key>)>> = vec![
            vec![(10, vec![key(1)]), (12, vec![]), (11, vec![key(2), key(3)])],
            vec![(20, vec![key(4)]), (30, vec![key(5)])],
            // Older records of another policy, one of them noted again with other keys.
            vec![
                (5, vec![key(6)]),
                (12, vec![key(7)]),
                (25, vec![]),
                (40, vec![key(8)]),
            ],
            // Noted twice in one batch: the later stays.
            vec![(50, vec![key(1)]), (50, vec![key(9)])],
            vec![(1, vec![]), (1, vec![key(2)]), (60, vec![key(3)])],
            vec![],
        ];
        for batch in batches {
            for (seq, kept) in &batch {
                model.insert(*seq, kept.clone());
            }
            pruned.note(batch);
            for seq in 0..70 {
                assert_eq!(
                    pruned.get(seq),
                    model.get(&seq).map(Vec::as_slice),
                    "seq {seq}"
                );
            }
            for (from, below) in [
                (0, 70),
                (0, 1),
                (1, 2),
                (11, 26),
                (26, 30),
                (61, 70),
                (30, 30),
            ] {
                let want: Vec<(u64, &[Key])> = model
                    .range(from..below)
                    .map(|(s, k)| (*s, k.as_slice()))
                    .collect();
                let got: Vec<(u64, &[Key])> = pruned.within(from, below).collect();
                assert_eq!(got, want, "[{from}, {below})");
                assert_eq!(pruned.any_within(from, below), !want.is_empty());
            }
        }
    }
}
