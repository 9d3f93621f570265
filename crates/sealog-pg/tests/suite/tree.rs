//! The tree in PostgreSQL against a real server: extended in batches of every size, its
//! roots equal the in-memory tree's, every proof it serves verifies, an integration that
//! expects a stale size is refused, and two integrators racing leave one consistent tree.

use sealog_merkle::{Frontier, leaf_hash, verify_consistency, verify_inclusion};
use sealog_pg::{APP_ROLE, Db, LogName, migrate};
use sealog_testkit::Rng;
use sealog_testkit::pg::Cluster;

fn migrated() -> Option<Cluster> {
    let cluster = Cluster::start()?;
    migrate(&cluster.conninfo, APP_ROLE).unwrap();
    Some(cluster)
}

#[test]
fn the_tree_grows_in_batches_and_every_root_and_proof_agrees_with_memory() {
    let Some(cluster) = migrated() else {
        return;
    };
    let mut db = Db::connect(&cluster.conninfo).unwrap();
    let mut rng = Rng(0x5EA1_0019_0000_0001);
    let mut memory = Frontier::new();
    let mut roots = vec![memory.root()];
    let mut leaves = Vec::new();
    for _batch in 0..12 {
        let n = 1 + rng.below(40) as usize;
        let batch: Vec<_> = (0..n)
            .map(|i| leaf_hash(format!("record {}", leaves.len() + i).as_bytes()))
            .collect();
        let from = memory.size();
        let size = db.integrate(LogName::Canonical, from, &batch).unwrap();
        for leaf in &batch {
            memory.push(*leaf);
            roots.push(memory.root());
        }
        leaves.extend(batch);
        assert_eq!(size, memory.size());
        assert_eq!(db.tree_size(LogName::Canonical).unwrap(), size);
        assert_eq!(db.root(LogName::Canonical, size).unwrap(), memory.root());
    }
    let size = memory.size();
    for s in [1, 2, 3, 7, 8, 9, size / 2, size - 1, size] {
        assert_eq!(
            db.root(LogName::Canonical, s).unwrap(),
            roots[s as usize],
            "size {s}"
        );
        for i in [0, s / 2, s - 1] {
            let proof = db.inclusion_proof(LogName::Canonical, i, s).unwrap();
            verify_inclusion(&leaves[i as usize], i, s, &roots[s as usize], &proof).unwrap();
        }
        if s < size {
            let proof = db.consistency_proof(LogName::Canonical, s, size).unwrap();
            verify_consistency(s, size, &roots[s as usize], &roots[size as usize], &proof).unwrap();
        }
    }
    // The quarantine log's tree is another tree.
    assert_eq!(db.tree_size(LogName::Quarantine).unwrap(), 0);
    // A stale expectation is refused and changes nothing.
    let e = db
        .integrate(LogName::Canonical, size - 1, &[leaf_hash(b"late")])
        .unwrap_err();
    assert!(e.to_string().contains("not the"), "{e}");
    assert_eq!(db.tree_size(LogName::Canonical).unwrap(), size);
    assert!(
        db.root(LogName::Canonical, size + 1).is_err(),
        "no root past the tree"
    );
}

#[test]
fn racing_integrators_leave_one_consistent_tree() {
    let Some(cluster) = migrated() else {
        return;
    };
    let conninfo = cluster.conninfo.clone();
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let conninfo = conninfo.clone();
            std::thread::spawn(move || {
                let mut db = Db::connect(&conninfo).unwrap();
                let (mut done, mut lost) = (0, 0);
                while done < 25 {
                    let from = db.tree_size(LogName::Canonical).unwrap();
                    let leaf = leaf_hash(format!("worker {w} leaf {done}").as_bytes());
                    // Losing the race to the other integrator is the refusal, not a torn tree.
                    match db.integrate(LogName::Canonical, from, &[leaf]) {
                        Ok(_) => done += 1,
                        Err(e) => {
                            assert!(e.to_string().contains("not the"), "{e}");
                            lost += 1;
                            assert!(lost < 10_000, "worker {w} never wins: {e}");
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let db = Db::connect(&conninfo).unwrap();
    let size = db.tree_size(LogName::Canonical).unwrap();
    assert_eq!(size, 50);
    // Rebuilt from its leaves in index order, the tree has the root its nodes give.
    let mut memory = Frontier::new();
    for i in 0..size {
        memory.push(db.leaf(LogName::Canonical, i).unwrap());
    }
    assert_eq!(db.root(LogName::Canonical, size).unwrap(), memory.root());
}
