//! The one list of index axes every record has from its envelope, and the names no pack may
//! declare for an axis of its own.

use sealog_model::Envelope;

/// Axes every canonical record is indexed on, from its envelope (scope, subject and data
/// subject as the pack derived them).
pub const ENVELOPE_AXES: [&str; 8] = [
    "scope",
    "tenant",
    "subject",
    "data_subject",
    "type",
    "source",
    "actor",
    "id",
];

/// Names the ledger keys records by for its own rules, and the quarantine log's reason.
const RULE_AXES: [&str; 4] = ["chain", "supersedes", "correction", "reason"];

/// Whether a pack may not declare an axis of this name: it would split or shadow the
/// envelope's postings or the ledger's own.
pub fn is_reserved(name: &str) -> bool {
    ENVELOPE_AXES.contains(&name) || RULE_AXES.contains(&name)
}

/// The envelope's (axis, value) pairs, with the scope, subject and data subject the pack
/// derived.
pub fn envelope_axes<'a>(
    env: &Envelope<'a>,
    scope: &'a str,
    subject: Option<&'a str>,
    data_subject: Option<&'a str>,
) -> impl Iterator<Item = (&'static str, &'a str)> {
    envelope_axes_of(
        scope,
        env.tenant,
        subject,
        data_subject,
        env.event_type,
        env.source,
        env.actor_id,
        env.id,
    )
}

/// [`envelope_axes`] from the values themselves, for a record already read apart.
#[allow(clippy::too_many_arguments)]
pub fn envelope_axes_of<'a>(
    scope: &'a str,
    tenant: Option<&'a str>,
    subject: Option<&'a str>,
    data_subject: Option<&'a str>,
    event_type: &'a str,
    source: &'a str,
    actor_id: Option<&'a str>,
    id: &'a str,
) -> impl Iterator<Item = (&'static str, &'a str)> {
    [
        ("scope", Some(scope)),
        ("tenant", tenant),
        ("subject", subject),
        ("data_subject", data_subject),
        ("type", Some(event_type)),
        ("source", Some(source)),
        ("actor", actor_id),
        ("id", Some(id)),
    ]
    .into_iter()
    .filter_map(|(axis, v)| Some((axis, v?)))
}
