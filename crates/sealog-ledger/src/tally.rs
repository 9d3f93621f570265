//! Counting from the index alone: how many records of a log carry given axis values in each
//! range of seqs. Reports are built from these counts and never read the records they count,
//! so a month of a large log costs a few binary searches per series and period.

use sealog_store::LogRead;

use crate::{Error, Ledger, keys};

/// Which of the ledger's two logs a count reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    Canonical,
    Quarantine,
}

impl Ledger {
    fn log(&self, log: Log) -> &dyn LogRead {
        match log {
            Log::Canonical => &*self.canonical,
            Log::Quarantine => &*self.quarantine,
        }
    }

    /// The log's size at each ingest time (ns): the records ingested at or before it.
    pub fn sizes_at(&self, log: Log, times: &[i64]) -> Result<Vec<u64>, Error> {
        let l = self.log(log);
        times.iter().map(|&t| l.size_at(t)).collect()
    }

    /// The seqs of the canonical log below `below` whose event time is in `[from, to)`,
    /// ascending, from the event-time index alone: a report's period on the event clock.
    pub fn seqs_in_event_window(
        &self,
        (from, to): (i64, i64),
        below: u64,
    ) -> Result<Vec<u64>, Error> {
        self.canonical.seqs_in_event_window(from, to, below)
    }

    /// How many records carry every (axis, value) of `equals` in each range
    /// `bounds[i]..bounds[i + 1]` (`bounds` ascending): one count per range.
    pub fn tally(
        &self,
        log: Log,
        equals: &[(String, String)],
        bounds: &[u64],
    ) -> Result<Vec<u64>, Error> {
        let ranges = bounds.windows(2).map(|w| (w[0], w[1].max(w[0])));
        let mut equals = equals.to_vec();
        self.pseudonymise_filters(&mut equals);
        let l = self.log(log);
        let keys: Vec<_> = equals.iter().map(|(a, v)| keys::key(a, v)).collect();
        match keys.as_slice() {
            [] => Ok(ranges.map(|(a, b)| b - a).collect()),
            [k] => ranges.map(|(a, b)| l.count_with(k, a, b)).collect(),
            _ => {
                let (Some(&first), Some(&last)) = (bounds.first(), bounds.last()) else {
                    return Ok(Vec::new());
                };
                let seqs = self.seqs_where_in(l, &keys, first, last)?;
                Ok(ranges
                    .map(|(a, b)| {
                        (seqs.partition_point(|&s| s < b) - seqs.partition_point(|&s| s < a)) as u64
                    })
                    .collect())
            }
        }
    }

    /// The seqs in `[from, below)` carrying every (axis, value) of `equals`, ascending, from
    /// the index alone (a collision of two keys' hashes can only add seqs; a caller that
    /// reads the records checks them).
    pub fn seqs_where(
        &self,
        log: Log,
        equals: &[(String, String)],
        from: u64,
        below: u64,
    ) -> Result<Vec<u64>, Error> {
        let mut equals = equals.to_vec();
        self.pseudonymise_filters(&mut equals);
        let keys: Vec<_> = equals.iter().map(|(a, v)| keys::key(a, v)).collect();
        let l = self.log(log);
        if keys.is_empty() {
            return Ok((from..below.min(l.len())).collect());
        }
        self.seqs_where_in(l, &keys, from, below)
    }

    fn seqs_where_in(
        &self,
        l: &dyn LogRead,
        keys: &[sealog_store::Key],
        from: u64,
        below: u64,
    ) -> Result<Vec<u64>, Error> {
        // The rarest key first: every other list only filters it.
        let mut counted = keys
            .iter()
            .map(|k| Ok((l.count_with(k, from, below)?, k)))
            .collect::<Result<Vec<_>, Error>>()?;
        counted.sort_unstable_by_key(|(n, _)| *n);
        let mut seqs = l.seqs_with(counted[0].1, from, below)?;
        for (_, k) in &counted[1..] {
            if seqs.is_empty() {
                break;
            }
            let other = l.seqs_with(k, from, below)?;
            let mut j = 0;
            seqs.retain(|s| {
                while j < other.len() && other[j] < *s {
                    j += 1;
                }
                j < other.len() && other[j] == *s
            });
        }
        Ok(seqs)
    }
}
