//! Published RFC 6962 / RFC 9162 test vectors: the transparency-dev/merkle JSON probes
//! under testdata/ (see testdata/README.md) and the classic 8-leaf reference tree.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::MemTree;
use sealog_merkle::{
    Frontier, Hash, consistency_proof, inclusion_proof, leaf_hash, root, verify_consistency,
    verify_inclusion,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

fn load(kind: &str) -> Vec<(PathBuf, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(kind);
    let mut files = Vec::new();
    json_files(&dir, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let v = serde_json::from_str(&fs::read_to_string(&p).unwrap()).unwrap();
            (p, v)
        })
        .collect()
}

/// The probes are written for an API taking byte slices and include values that are not
/// 32 bytes long ("" or short garbage), which `&Hash` cannot express: such a leaf or proof
/// is rejected by the type system before any verification. To still run those probes
/// through the verifier, a short value is mapped injectively to a 32-byte stand-in that is
/// no real tree hash, separately per role so a short leaf never equals a short root.
/// Returns the hash and whether it is a stand-in.
fn hash(v: &Value, role: &str) -> (Hash, bool) {
    let bytes = STANDARD.decode(v.as_str().unwrap()).unwrap();
    match Hash::try_from(bytes.as_slice()) {
        Ok(h) => (h, false),
        Err(_) => {
            let mut h = Sha256::new();
            h.update(format!("not a 32-byte {role}:"));
            h.update(&bytes);
            (h.finalize().into(), true)
        }
    }
}

fn proof(v: &Value) -> (Vec<Hash>, bool) {
    match v {
        Value::Null => (vec![], false),
        Value::Array(a) => {
            let items: Vec<(Hash, bool)> = a.iter().map(|h| hash(h, "proof hash")).collect();
            let short = items.iter().any(|(_, s)| *s);
            (items.into_iter().map(|(h, _)| h).collect(), short)
        }
        other => panic!("bad proof {other}"),
    }
}

fn hx(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// RFC 6962 reference tree (as used by certificate-transparency and transparency-dev/merkle).
fn reference_leaves() -> Vec<Hash> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|h| leaf_hash(&hex::decode(h).unwrap()))
    .collect()
}

/// Reference roots for sizes 1..=8.
const REFERENCE_ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// Reference node hashes of the complete subtrees of the 8-leaf tree, per level.
const REFERENCE_NODES: [&[&str]; 4] = [
    &[
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    &[
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    &[
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
];

/// Known inclusion proofs: (leaf index, tree size, proof).
const REFERENCE_INCLUSION: [(u64, u64, &[&str]); 5] = [
    (0, 1, &[]),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

/// Known consistency proofs: (old size, new size, proof).
const REFERENCE_CONSISTENCY: [(u64, u64, &[&str]); 5] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

fn hashes(h: &[&str]) -> Vec<Hash> {
    h.iter().map(|s| hx(s)).collect()
}

#[test]
fn inclusion_probes() {
    let probes = load("inclusion");
    assert_eq!(probes.len(), 98, "the full published probe set is expected");
    let tree = MemTree::from_leaves(&reference_leaves());
    let mut failures = Vec::new();
    let (mut happy, mut rejected, mut type_rejected, mut generated) = (0, 0, 0, 0);
    for (path, p) in &probes {
        let index = p["leafIdx"].as_u64().unwrap();
        let size = p["treeSize"].as_u64().unwrap();
        let (root_hash, _) = hash(&p["root"], "root");
        let (leaf, short_leaf) = hash(&p["leafHash"], "leaf");
        let (pr, short_proof) = proof(&p["proof"]);
        let want_err = p["wantErr"].as_bool().unwrap();
        if short_leaf || short_proof {
            assert!(
                want_err,
                "{}: not expressible as &Hash, yet valid",
                path.display()
            );
            type_rejected += 1;
        }
        let res = verify_inclusion(&leaf, index, size, &root_hash, &pr);
        if res.is_err() != want_err {
            failures.push(format!(
                "{}: got {res:?}, wantErr {want_err}",
                path.display()
            ));
        }
        if want_err {
            rejected += 1;
            continue;
        }
        happy += 1;
        // Happy paths over the reference tree must also be what we generate.
        if size <= 8 && root(size, &tree).unwrap() == root_hash {
            assert_eq!(
                inclusion_proof(index, size, &tree).unwrap(),
                pr,
                "{}",
                path.display()
            );
            generated += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        happy >= 5 && rejected >= 80,
        "happy {happy}, rejected {rejected}"
    );
    assert!(generated >= 5, "only {generated} happy paths regenerated");
    eprintln!(
        "{happy} valid, {rejected} rejected ({type_rejected} of them also by the type system)"
    );
}

#[test]
fn consistency_probes() {
    let probes = load("consistency");
    assert_eq!(probes.len(), 98, "the full published probe set is expected");
    let tree = MemTree::from_leaves(&reference_leaves());
    let mut failures = Vec::new();
    let (mut happy, mut rejected, mut type_rejected, mut generated) = (0, 0, 0, 0);
    for (path, p) in &probes {
        let old = p["size1"].as_u64().unwrap();
        let new = p["size2"].as_u64().unwrap();
        let (r1, _) = hash(&p["root1"], "root");
        let (r2, _) = hash(&p["root2"], "root");
        let (pr, short_proof) = proof(&p["proof"]);
        let want_err = p["wantErr"].as_bool().unwrap();
        if short_proof {
            assert!(
                want_err,
                "{}: not expressible as &Hash, yet valid",
                path.display()
            );
            type_rejected += 1;
        }
        let res = verify_consistency(old, new, &r1, &r2, &pr);
        if res.is_err() != want_err {
            failures.push(format!(
                "{}: got {res:?}, wantErr {want_err}",
                path.display()
            ));
        }
        if want_err {
            rejected += 1;
            continue;
        }
        happy += 1;
        if new <= 8 && root(new, &tree).unwrap() == r2 {
            assert_eq!(
                consistency_proof(old, new, &tree).unwrap(),
                pr,
                "{}",
                path.display()
            );
            generated += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        happy >= 5 && rejected >= 80,
        "happy {happy}, rejected {rejected}"
    );
    assert!(generated >= 5, "only {generated} happy paths regenerated");
    eprintln!(
        "{happy} valid, {rejected} rejected ({type_rejected} of them also by the type system)"
    );
}

#[test]
fn reference_tree_roots_and_nodes() {
    let leaves = reference_leaves();
    let tree = MemTree::from_leaves(&leaves);
    for (level, nodes) in REFERENCE_NODES.iter().enumerate() {
        assert_eq!(tree.levels[level], hashes(nodes), "level {level}");
    }
    let mut f = Frontier::new();
    for (i, want) in REFERENCE_ROOTS.iter().enumerate() {
        let size = i as u64 + 1;
        f.push(leaves[i]);
        assert_eq!(root(size, &tree).unwrap(), hx(want), "size {size}");
        assert_eq!(f.root(), hx(want), "frontier size {size}");
        assert_eq!(common::mth(&leaves[..=i]), hx(want), "model size {size}");
    }
}

#[test]
fn reference_tree_known_proofs() {
    let leaves = reference_leaves();
    let tree = MemTree::from_leaves(&leaves);
    for (index, size, want) in REFERENCE_INCLUSION {
        let want = hashes(want);
        assert_eq!(
            inclusion_proof(index, size, &tree).unwrap(),
            want,
            "inclusion {index}/{size}"
        );
        let r = hx(REFERENCE_ROOTS[size as usize - 1]);
        verify_inclusion(&leaves[index as usize], index, size, &r, &want).unwrap();
    }
    for (old, new, want) in REFERENCE_CONSISTENCY {
        let want = hashes(want);
        assert_eq!(
            consistency_proof(old, new, &tree).unwrap(),
            want,
            "consistency {old}->{new}"
        );
        let r1 = hx(REFERENCE_ROOTS[old as usize - 1]);
        let r2 = hx(REFERENCE_ROOTS[new as usize - 1]);
        verify_consistency(old, new, &r1, &r2, &want).unwrap();
    }
}

#[test]
fn reference_tree_every_proof_round_trips() {
    let leaves = reference_leaves();
    let tree = MemTree::from_leaves(&leaves);
    for size in 1..=8u64 {
        let r = hx(REFERENCE_ROOTS[size as usize - 1]);
        for index in 0..size {
            let p = inclusion_proof(index, size, &tree).unwrap();
            verify_inclusion(&leaves[index as usize], index, size, &r, &p).unwrap();
        }
        for old in 1..=size {
            let p = consistency_proof(old, size, &tree).unwrap();
            let r1 = hx(REFERENCE_ROOTS[old as usize - 1]);
            verify_consistency(old, size, &r1, &r, &p).unwrap();
        }
    }
}
