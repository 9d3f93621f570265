//! The Merkle tree of a log in `sealog_tree_nodes`: every perfect subtree's hash at (level,
//! index), written once when it completes. One integrator at a time extends it (a
//! transaction-scoped advisory lock per log, so a dead holder's lock goes with its session);
//! every server reads roots and proofs from the same rows.

use sealog_merkle::{Frontier, Hash, NodeReader, ProofError, ReadError};
use tokio_postgres::{Client, GenericClient};

use crate::{Db, PgError};

/// Which of a ledger's two logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogName {
    Canonical,
    Quarantine,
}

impl LogName {
    pub fn as_str(self) -> &'static str {
        match self {
            LogName::Canonical => "canonical",
            LogName::Quarantine => "quarantine",
        }
    }

    /// The advisory lock its integrator holds.
    pub(crate) fn lock_key(self) -> i64 {
        match self {
            LogName::Canonical => 0x7365_616c_0001,
            LogName::Quarantine => 0x7365_616c_0002,
        }
    }
}

/// Reads nodes through one client (or transaction) from async code driven by `rt`.
pub(crate) struct Reader<'a, C: GenericClient> {
    pub(crate) rt: &'a tokio::runtime::Runtime,
    pub(crate) client: &'a C,
    pub(crate) log: LogName,
    /// [`NODE`] prepared on `client`, when it was (one round trip a node, not two).
    pub(crate) prepared: Option<&'a tokio_postgres::Statement>,
}

pub(crate) const NODE: &str =
    "SELECT hash FROM sealog_tree_nodes WHERE log = $1 AND level = $2 AND idx = $3";

impl<C: GenericClient + Sync> NodeReader for Reader<'_, C> {
    fn node(&self, level: u8, index: u64) -> Result<Hash, ReadError> {
        let idx =
            i64::try_from(index).map_err(|_| ReadError::Other("index out of range".into()))?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&self.log.as_str(), &i16::from(level), &idx];
        let row = match self.prepared {
            Some(statement) => crate::block_on(self.rt, self.client.query_opt(statement, &params)),
            None => crate::block_on(self.rt, self.client.query_opt(NODE, &params)),
        }
        .map_err(|e| ReadError::Other(e.to_string()))?
        .ok_or(ReadError::Missing { level, index })?;
        let bytes: Vec<u8> = row.get(0);
        bytes
            .try_into()
            .map_err(|_| ReadError::Other(format!("node {level}/{index} is not 32 bytes")))
    }
}

pub(crate) fn proof_error(e: ProofError) -> PgError {
    PgError::Sql(format!("the tree: {e}"))
}

pub(crate) async fn tree_size(client: &impl GenericClient, log: LogName) -> Result<u64, PgError> {
    let row = client
        .query_one(
            "SELECT COALESCE(MAX(idx) + 1, 0) FROM sealog_tree_nodes WHERE log = $1 AND level = 0",
            &[&log.as_str()],
        )
        .await?;
    Ok(u64::try_from(row.get::<_, i64>(0)).expect("a size is not negative"))
}

impl Db {
    /// The number of leaves the tree holds.
    pub fn tree_size(&self, log: LogName) -> Result<u64, PgError> {
        self.rt.block_on(tree_size(&self.client, log))
    }

    /// Appends leaves at the tree's right edge, with every node they complete, in one
    /// transaction under the log's integrator lock; returns the new size. `from` is the size
    /// the caller expects the tree to have: another integrator having moved it is an error,
    /// never a tree with leaves out of order.
    pub fn integrate(&mut self, log: LogName, from: u64, leaves: &[Hash]) -> Result<u64, PgError> {
        let rt = &self.rt;
        let tx = rt.block_on(self.client.transaction())?;
        // The appenders' serialization point: the log's counter row.
        rt.block_on(tx.execute(
            "SELECT 1 FROM sealog_log_state WHERE log = $1 FOR UPDATE",
            &[&log.as_str()],
        ))?;
        let size = rt.block_on(tree_size(&tx, log))?;
        if size != from {
            return Err(PgError::Sql(format!(
                "the {} tree has {size} leaves, not the {from} this integration extends",
                log.as_str()
            )));
        }
        let mut frontier = load_frontier(rt, &tx, log, size)?;
        let nodes = Nodes::pushed(&mut frontier, leaves);
        rt.block_on(nodes.insert(&tx, INSERT_NODES, log))?;
        rt.block_on(tx.commit())?;
        Ok(frontier.size())
    }

    /// The leaf hash at `index`.
    pub fn leaf(&self, log: LogName, index: u64) -> Result<Hash, PgError> {
        self.reader(log)
            .node(0, index)
            .map_err(|e| PgError::Sql(format!("the tree: {e}")))
    }

    pub fn root(&self, log: LogName, size: u64) -> Result<Hash, PgError> {
        sealog_merkle::root(size, &self.reader(log)).map_err(proof_error)
    }

    pub fn inclusion_proof(
        &self,
        log: LogName,
        index: u64,
        size: u64,
    ) -> Result<Vec<Hash>, PgError> {
        sealog_merkle::inclusion_proof(index, size, &self.reader(log)).map_err(proof_error)
    }

    pub fn consistency_proof(
        &self,
        log: LogName,
        old: u64,
        new: u64,
    ) -> Result<Vec<Hash>, PgError> {
        sealog_merkle::consistency_proof(old, new, &self.reader(log)).map_err(proof_error)
    }

    fn reader(&self, log: LogName) -> Reader<'_, Client> {
        Reader {
            rt: &self.rt,
            client: &self.client,
            log,
            prepared: None,
        }
    }
}

/// The tree's right edge at `size`, read through `client` in one query (a node per set bit
/// of `size`).
pub(crate) fn load_frontier<C: GenericClient + Sync>(
    rt: &tokio::runtime::Runtime,
    client: &C,
    log: LogName,
    size: u64,
) -> Result<Frontier, PgError> {
    let wanted: Vec<(u8, u64)> = sealog_merkle::prefix_subtrees(size).collect();
    let levels: Vec<i16> = wanted.iter().map(|w| i16::from(w.0)).collect();
    let idxs: Vec<i64> = wanted
        .iter()
        .map(|w| i64::try_from(w.1).expect("a tree index fits i64"))
        .collect();
    let rows = crate::block_on(
        rt,
        client.query(
            "SELECT n.level, n.idx, n.hash FROM sealog_tree_nodes n
             JOIN unnest($2::smallint[], $3::bigint[]) AS u(l, i) ON n.level = u.l AND n.idx = u.i
             WHERE n.log = $1",
            &[&log.as_str(), &levels, &idxs],
        ),
    )?;
    let mut known = std::collections::HashMap::with_capacity(rows.len());
    for r in rows {
        let hash: Vec<u8> = r.get(2);
        let hash: Hash = hash
            .try_into()
            .map_err(|_| PgError::Sql("a tree node is not 32 bytes".into()))?;
        let level = u8::try_from(r.get::<_, i16>(0)).unwrap_or(u8::MAX);
        known.insert(
            (level, u64::try_from(r.get::<_, i64>(1)).unwrap_or(u64::MAX)),
            hash,
        );
    }
    let reader = Known {
        known,
        rest: Reader {
            rt,
            client,
            log,
            prepared: None,
        },
    };
    Frontier::load(size, &reader).map_err(proof_error)
}

/// Nodes read ahead, and the database for any other.
struct Known<'a, C: GenericClient> {
    known: std::collections::HashMap<(u8, u64), Hash>,
    rest: Reader<'a, C>,
}

impl<C: GenericClient + Sync> NodeReader for Known<'_, C> {
    fn node(&self, level: u8, index: u64) -> Result<Hash, ReadError> {
        match self.known.get(&(level, index)) {
            Some(h) => Ok(*h),
            None => self.rest.node(level, index),
        }
    }
}

pub(crate) const INSERT_NODES: &str = "INSERT INTO sealog_tree_nodes (log, level, idx, hash)
    SELECT $1, l, i, h FROM unnest($2::smallint[], $3::bigint[], $4::bytea[]) AS u(l, i, h)";

/// The nodes leaves complete, ready to insert.
pub(crate) struct Nodes {
    levels: Vec<i16>,
    idxs: Vec<i64>,
    hashes: Vec<Hash>,
}

impl Nodes {
    /// Pushes `leaves` onto `frontier`, keeping every node they complete.
    pub(crate) fn pushed(frontier: &mut Frontier, leaves: &[Hash]) -> Nodes {
        let mut nodes = Vec::with_capacity(leaves.len() * 2);
        for leaf in leaves {
            frontier.push_into(*leaf, &mut nodes);
        }
        Nodes {
            levels: nodes.iter().map(|n| i16::from(n.0)).collect(),
            idxs: nodes
                .iter()
                .map(|n| i64::try_from(n.1).expect("a tree index fits i64"))
                .collect(),
            hashes: nodes.iter().map(|n| n.2).collect(),
        }
    }

    /// Inserts them through `tx` (whose caller holds the log's lock and commits) with
    /// [`INSERT_NODES`], prepared or not.
    pub(crate) async fn insert<C, S>(
        &self,
        tx: &C,
        statement: &S,
        log: LogName,
    ) -> Result<u64, tokio_postgres::Error>
    where
        C: GenericClient + Sync,
        S: tokio_postgres::ToStatement + Sync + Send + ?Sized,
    {
        let hashes: Vec<&[u8]> = self.hashes.iter().map(|h| h.as_slice()).collect();
        tx.execute(
            statement,
            &[&log.as_str(), &self.levels, &self.idxs, &hashes],
        )
        .await
    }
}
