//! The rows that may go: the data subjects' wrapped keys (erasure deletes them, leaving a
//! mark that the subject was erased so no key is ever made for it again) and quarantined
//! payloads. The bytes are opaque here: what a key wraps and what a payload holds is the
//! ledger's.

use sealog_store::StoreError;
use tokio_postgres::types::ToSql;

use crate::conn::{Conn, connect_on, io_runtime, unavailable};

/// The advisory lock erasure, retention's application and hold changes take, one server at a
/// time (the integrators' are `0x7365_616c_0001`/`2`, the migrations' `0x7365_616c_6f67`).
const GOVERNANCE_KEY: i64 = 0x7365_616c_0003;

/// The governance lock, held by this server until dropped: it holds a connection of its own,
/// so the lock goes with it, and with the session should this server die.
pub struct Governing {
    _client: tokio_postgres::Client,
}

/// A data subject's key as the database keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectKey {
    Wrapped(Vec<u8>),
    Erased,
}

pub struct Erasable {
    rt: tokio::runtime::Runtime,
    conn: Conn,
}

impl Erasable {
    pub fn connect(conninfo: &str) -> Result<Erasable, StoreError> {
        let rt = io_runtime()?;
        let conn = Conn::open(&rt, conninfo)?;
        Ok(Erasable { rt, conn })
    }

    fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        self.conn.query(&self.rt, sql, params)
    }

    /// Waits for the governance lock among every server of the database, and holds it until
    /// the answer is dropped.
    pub fn governing(&self) -> Result<Governing, StoreError> {
        let client = connect_on(&self.rt, &self.conn.conninfo)?;
        crate::block_on(
            &self.rt,
            client.execute("SELECT pg_advisory_lock($1)", &[&GOVERNANCE_KEY]),
        )
        .map_err(unavailable)?;
        Ok(Governing { _client: client })
    }

    /// The check of the master key the subjects' keys are wrapped by, if one was recorded.
    pub fn master_check(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let rows = self.query("SELECT master_check FROM sealog_privacy WHERE id = 1", &[])?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    /// Records the master key's check unless one is; answers the one in force.
    pub fn record_master_check(&self, check: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.query(
            "INSERT INTO sealog_privacy (id, master_check) VALUES (1, $1) ON CONFLICT DO NOTHING",
            &[&check],
        )?;
        self.master_check()?.ok_or_else(|| {
            StoreError::Corrupted("the master key's check just written is gone".into())
        })
    }

    /// The key of (tenant, pseudonym), or `None` when the database has never had one.
    pub fn subject_key(
        &self,
        tenant: &str,
        pseudonym: &str,
    ) -> Result<Option<SubjectKey>, StoreError> {
        let rows = self.query(
            "SELECT wrapped FROM sealog_subject_keys WHERE tenant = $1 AND pseudonym = $2
             UNION ALL
             SELECT NULL FROM sealog_erased_subjects WHERE tenant = $1 AND pseudonym = $2",
            &[&tenant, &pseudonym],
        )?;
        Ok(Self::slot(
            rows.iter().map(|r| r.get::<_, Option<Vec<u8>>>(0)),
        ))
    }

    /// An erased mark wins over a key row (erasure writes both in one statement).
    fn slot(values: impl Iterator<Item = Option<Vec<u8>>>) -> Option<SubjectKey> {
        let mut found = None;
        for v in values {
            match v {
                None => return Some(SubjectKey::Erased),
                Some(w) => found = Some(SubjectKey::Wrapped(w)),
            }
        }
        found
    }

    /// Every tenant's key of one pseudonym.
    pub fn subject_keys_of(
        &self,
        pseudonym: &str,
    ) -> Result<Vec<(String, SubjectKey)>, StoreError> {
        let rows = self.query(
            "SELECT tenant, wrapped FROM sealog_subject_keys WHERE pseudonym = $1
               AND NOT EXISTS (SELECT 1 FROM sealog_erased_subjects e
                               WHERE e.tenant = sealog_subject_keys.tenant AND e.pseudonym = $1)
             UNION ALL
             SELECT tenant, NULL FROM sealog_erased_subjects WHERE pseudonym = $1
             ORDER BY 1",
            &[&pseudonym],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                let w: Option<Vec<u8>> = r.get(1);
                (r.get(0), w.map_or(SubjectKey::Erased, SubjectKey::Wrapped))
            })
            .collect())
    }

    /// Keeps a new subject's key, durably (committed), unless another server kept one first
    /// or the subject was erased: answers the key in force.
    pub fn add_subject_key(
        &self,
        tenant: &str,
        pseudonym: &str,
        wrapped: &[u8],
    ) -> Result<SubjectKey, StoreError> {
        let rows = self.query(
            "INSERT INTO sealog_subject_keys (tenant, pseudonym, wrapped)
             SELECT $1, $2, $3 WHERE NOT EXISTS
               (SELECT 1 FROM sealog_erased_subjects WHERE tenant = $1 AND pseudonym = $2)
             ON CONFLICT DO NOTHING RETURNING wrapped",
            &[&tenant, &pseudonym, &wrapped],
        )?;
        if let Some(r) = rows.first() {
            return Ok(SubjectKey::Wrapped(r.get(0)));
        }
        // Another server's key, or an erased subject: read in a statement of its own, which
        // sees what committed meanwhile.
        self.subject_key(tenant, pseudonym)?.ok_or_else(|| {
            StoreError::Corrupted(format!(
                "the key of {pseudonym} in {tenant} was refused and is absent"
            ))
        })
    }

    /// Erases the subjects: marks them and deletes their keys, in one statement.
    pub fn erase_subjects(&self, subjects: &[(String, String)]) -> Result<(), StoreError> {
        let tenants: Vec<&str> = subjects.iter().map(|s| s.0.as_str()).collect();
        let pseudonyms: Vec<&str> = subjects.iter().map(|s| s.1.as_str()).collect();
        self.query(
            "WITH marked AS (
                 INSERT INTO sealog_erased_subjects (tenant, pseudonym)
                 SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING)
             DELETE FROM sealog_subject_keys k USING unnest($1::text[], $2::text[]) AS u(t, p)
             WHERE k.tenant = u.t AND k.pseudonym = u.p",
            &[&tenants, &pseudonyms],
        )?;
        Ok(())
    }

    /// How many keys are live and how many subjects erased.
    pub fn subject_counts(&self) -> Result<(u64, u64), StoreError> {
        let rows = self.query(
            "SELECT (SELECT count(*) FROM sealog_subject_keys), (SELECT count(*) FROM sealog_erased_subjects)",
            &[],
        )?;
        let n = |i| u64::try_from(rows[0].get::<_, i64>(i)).unwrap_or(0);
        Ok((n(0), n(1)))
    }

    /// Keeps payloads under their references, durably (committed) in one statement.
    pub fn add_payloads(&self, payloads: &[(String, &[u8])]) -> Result<(), StoreError> {
        if payloads.is_empty() {
            return Ok(());
        }
        let refs: Vec<&str> = payloads.iter().map(|p| p.0.as_str()).collect();
        let bytes: Vec<&[u8]> = payloads.iter().map(|p| p.1).collect();
        self.query(
            "INSERT INTO sealog_quarantine_payloads (payload_ref, bytes)
             SELECT * FROM unnest($1::text[], $2::bytea[]) ON CONFLICT DO NOTHING",
            &[&refs, &bytes],
        )?;
        Ok(())
    }

    pub fn payload(&self, reference: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let rows = self.query(
            "SELECT bytes FROM sealog_quarantine_payloads WHERE payload_ref = $1",
            &[&reference],
        )?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    pub fn payload_refs(&self) -> Result<Vec<String>, StoreError> {
        let rows = self.query(
            "SELECT payload_ref FROM sealog_quarantine_payloads ORDER BY payload_ref",
            &[],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Deletes the payloads named; answers how many were here.
    pub fn remove_payloads(&self, references: &[String]) -> Result<usize, StoreError> {
        let rows = self.query(
            "DELETE FROM sealog_quarantine_payloads WHERE payload_ref = ANY($1) RETURNING 1",
            &[&references],
        )?;
        Ok(rows.len())
    }
}
