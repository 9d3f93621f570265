//! Admission: which prepared events the log takes, decided by the store at its one
//! serialization point (the writer's thread) against the log plus the group being committed,
//! so racing duplicates and corrections see one order: exactly one of them wins.
//!
//! In order: a record already in the log (or earlier in the group) is a duplicate; a
//! correction must name a record of its own chain that nothing has superseded yet; a second
//! record of a `unique_per_subject` subject must name what it supersedes.

use sealog_model::RecordId;
use sealog_store::{Admission, Entry, Id, Key, LogView, StoreError, UniformMap, Verdict};

use crate::quarantine::Packed;

/// What an event asks of the supersedes rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claim {
    /// The record it corrects.
    pub(crate) supersedes: Option<RecordId>,
    /// The (tenant, kind, scope, subject) chain it belongs to, when it has a subject.
    pub(crate) chain: Option<Key>,
    /// A second record of the chain must name what it supersedes.
    pub(crate) unique_per_subject: bool,
    /// Kept for the events the rules may refuse (corrections, unique subjects), so that a
    /// refusal is quarantined without reading the event again.
    pub(crate) correlation: Option<Packed>,
    /// Its sender will deliver it again (a bus): a correction whose target is not in the
    /// log yet is answered `deferred` instead of quarantined.
    pub(crate) may_wait: bool,
}

/// Why a correction (or a would-be second record of a unique subject) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainRefusal {
    /// A second record for a `unique_per_subject` subject that does not name what it
    /// supersedes; `existing` is the seq of the subject's first record.
    MissingLink { existing: u64 },
    /// The named target is not in the log (nor earlier in the group).
    AbsentTarget,
    /// The named target is in another tenant, scope or subject, or the correction has none.
    InvalidLink { why: &'static str },
    /// The named target was already superseded, by the record at seq `by`.
    StaleLink { by: u64 },
}

impl ChainRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            ChainRefusal::MissingLink { .. } => "MISSING_SUPERSEDES_LINK",
            ChainRefusal::AbsentTarget | ChainRefusal::InvalidLink { .. } => {
                "INVALID_SUPERSEDES_LINK"
            }
            ChainRefusal::StaleLink { .. } => "STALE_SUPERSEDES_LINK",
        }
    }

    pub fn message(&self) -> String {
        match self {
            ChainRefusal::MissingLink { existing } => format!(
                "this subject already has a record (seq {existing}); a different record for it must name the one it supersedes"
            ),
            ChainRefusal::AbsentTarget => NOT_IN_CHAIN.to_string(),
            ChainRefusal::InvalidLink { why } => (*why).to_string(),
            ChainRefusal::StaleLink { by } => format!(
                "the target was already superseded, by seq {by}; supersede the head of the chain"
            ),
        }
    }
}

/// Why a correction's target is refused, whether it is absent or another tenant's, scope's or
/// subject's: one answer for both, so a producer cannot learn from it that another tenant
/// holds a record id.
const NOT_IN_CHAIN: &str = "the superseded record is not in this correction's chain: no record of its tenant, kind, scope and subject has that record id";

/// The canonical log's rules.
pub(crate) struct CanonicalRules;

/// What a group has admitted so far: such records count as if already in the log. Keyed
/// by record ids and chain keys, hashes already: SipHash over them was a cost of every
/// append's single writer.
#[derive(Default)]
pub(crate) struct GroupChains {
    /// Admitted this group: record id → (seq, chain).
    records: UniformMap<Id, (u64, Option<Key>)>,
    /// Targets superseded this group → the superseding seq.
    superseded: UniformMap<Id, u64>,
    /// Chains that gained their first record this group → that seq.
    started: UniformMap<Key, u64>,
}

impl Admission for CanonicalRules {
    type Claim = Claim;
    type Refusal = ChainRefusal;
    type Group = GroupChains;

    fn admit(
        &self,
        group: &mut GroupChains,
        entry: &Entry<Claim>,
        seq: u64,
        log: &dyn LogView,
    ) -> Result<Verdict<ChainRefusal>, StoreError> {
        let id = entry.id();
        if let Some(&(s, _)) = group.records.get(&id) {
            return Ok(Verdict::Duplicate(s));
        }
        if let Some(s) = log.seq_of(&id)? {
            return Ok(Verdict::Duplicate(s));
        }
        let claim = &entry.claim;
        let refusal = match claim.supersedes {
            Some(target) => group.check_link(claim, &target, log)?,
            None if claim.unique_per_subject => match claim.chain {
                Some(chain) => {
                    let existing = match group.started.get(&chain) {
                        Some(&s) => Some(s),
                        None => log.first_with(&chain)?,
                    };
                    existing.map(|existing| ChainRefusal::MissingLink { existing })
                }
                None => None,
            },
            None => None,
        };
        if let Some(r) = refusal {
            return Ok(Verdict::Refuse(r));
        }
        group.records.insert(id, (seq, claim.chain));
        if let Some(target) = claim.supersedes {
            group.superseded.insert(target.0, seq);
        }
        if let Some(chain) = claim.chain {
            group.started.entry(chain).or_insert(seq);
        }
        Ok(Verdict::Admit)
    }

    fn asks(&self, entry: &Entry<Claim>) -> Vec<Key> {
        let claim = &entry.claim;
        match (claim.supersedes, claim.chain) {
            (Some(target), _) => vec![crate::keys::supersedes(&target)],
            (None, Some(chain)) if claim.unique_per_subject => vec![chain],
            _ => Vec::new(),
        }
    }
}

impl GroupChains {
    fn check_link(
        &self,
        claim: &Claim,
        target: &RecordId,
        log: &dyn LogView,
    ) -> Result<Option<ChainRefusal>, StoreError> {
        let invalid = |why| Ok(Some(ChainRefusal::InvalidLink { why }));
        let in_group = self.records.get(&target.0).copied();
        let seq = match in_group {
            Some((seq, _)) => Some(seq),
            None => log.seq_of(&target.0)?,
        };
        let Some(seq) = seq else {
            return Ok(Some(ChainRefusal::AbsentTarget));
        };
        let Some(chain) = claim.chain else {
            return invalid("a correction must have a subject");
        };
        let same_chain = match in_group {
            Some((_, target_chain)) => target_chain == Some(chain),
            None => log.has(&chain, seq)?,
        };
        if !same_chain {
            return invalid(NOT_IN_CHAIN);
        }
        let by = match self.superseded.get(&target.0) {
            Some(&by) => Some(by),
            None => log.first_with(&crate::keys::supersedes(target))?,
        };
        Ok(by.map(|by| ChainRefusal::StaleLink { by }))
    }
}

/// The quarantine log's rule: the same finding about the same event is one record.
pub(crate) struct Dedupe;

impl Admission for Dedupe {
    type Claim = ();
    type Refusal = std::convert::Infallible;
    type Group = UniformMap<Id, u64>;

    fn admit(
        &self,
        group: &mut UniformMap<Id, u64>,
        entry: &Entry<()>,
        seq: u64,
        log: &dyn LogView,
    ) -> Result<Verdict<Self::Refusal>, StoreError> {
        let id = entry.id();
        if let Some(&s) = group.get(&id) {
            return Ok(Verdict::Duplicate(s));
        }
        if let Some(s) = log.seq_of(&id)? {
            return Ok(Verdict::Duplicate(s));
        }
        group.insert(id, seq);
        Ok(Verdict::Admit)
    }
}
