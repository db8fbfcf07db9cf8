//! RFC 6962 Merkle vectors: the tree hashes of the RFC 6962 reference leaves, and every
//! inclusion and consistency case of transparency-dev/merkle's `testdata` (happy paths and the
//! mutated proofs that must fail), committed under `tests/data/merkle` (see its `SOURCE`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use palisade_audit::merkle::{
    Frontier, TreeHash, consistency_proof, inclusion_proof, leaf_hash, root, verify_consistency,
    verify_inclusion,
};
use serde::Deserialize;

fn hex(s: &str) -> TreeHash {
    let bytes: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect();
    TreeHash::from_slice(&bytes).unwrap()
}

/// transparency-dev/merkle `testonly/constants.go`: `LeafInputs` and `RootHashes`.
fn reference() -> (Vec<Vec<u8>>, Vec<TreeHash>) {
    let inputs = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    let leaves = inputs
        .iter()
        .map(|s| {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect();
    let roots = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    (leaves, roots.iter().map(|r| hex(r)).collect())
}

#[test]
fn rfc6962_roots_of_every_prefix() {
    let (inputs, roots) = reference();
    let mut f = Frontier::new();
    assert_eq!(f.root(), roots[0]);
    let mut hashes = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        f.push(input);
        hashes.push(leaf_hash(input));
        assert_eq!(f.root(), roots[i + 1], "size {}", i + 1);
        assert_eq!(root(&hashes), roots[i + 1]);
        assert_eq!(f.nodes().len(), (i + 1).count_ones() as usize);
    }
    // Every proof between the reference trees verifies.
    for n in 1..=8u64 {
        for i in 0..n {
            let p = inclusion_proof(&hashes[..n as usize], i).unwrap();
            verify_inclusion(&hashes[i as usize], i, n, &p, &roots[n as usize]).unwrap();
        }
        for m in 1..=n {
            let p = consistency_proof(&hashes[..n as usize], m).unwrap();
            verify_consistency(m, n, &p, &roots[m as usize], &roots[n as usize]).unwrap();
        }
    }
}

/// A vector's hash. The vectors also hold values that are not 32 bytes ("don't care", empty):
/// those stand in as a hash of themselves, which keeps equal values equal and no proof reaches.
fn b64(s: &str) -> Option<TreeHash> {
    let bytes = B64.decode(s).ok()?;
    Some(
        TreeHash::from_slice(&bytes)
            .unwrap_or_else(|| leaf_hash(&[b"not a hash: ", &bytes[..]].concat())),
    )
}

fn b64s(v: &Option<Vec<String>>) -> Option<Vec<TreeHash>> {
    v.iter().flatten().map(|s| b64(s)).collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Inclusion {
    leaf_idx: u64,
    tree_size: u64,
    root: Option<String>,
    leaf_hash: Option<String>,
    proof: Option<Vec<String>>,
    want_err: bool,
}

#[derive(Deserialize)]
struct Consistency {
    size1: u64,
    size2: u64,
    root1: Option<String>,
    root2: Option<String>,
    proof: Option<Vec<String>>,
    #[serde(rename = "wantErr")]
    want_err: bool,
}

fn cases(kind: &str) -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push((
                    path.display().to_string(),
                    std::fs::read_to_string(&path).unwrap(),
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/merkle")
            .join(kind),
        &mut out,
    );
    out
}

#[test]
fn transparency_dev_inclusion_vectors() {
    let (mut good, mut bad) = (0, 0);
    for (name, text) in cases("inclusion") {
        let c: Inclusion = serde_json::from_str(&text).expect(&name);
        let ok = (|| {
            let index = c.leaf_idx;
            let size = c.tree_size;
            let leaf = TreeHash::from_slice(&B64.decode(c.leaf_hash.as_deref()?).ok()?)?;
            let root = b64(c.root.as_deref().unwrap_or(""))?;
            let proof = b64s(&c.proof)?;
            Some(verify_inclusion(&leaf, index, size, &proof, &root).is_ok())
        })()
        .unwrap_or(false);
        assert_eq!(ok, !c.want_err, "{name}");
        if ok { good += 1 } else { bad += 1 }
    }
    assert!(good >= 4 && bad >= 40, "{good} accepted, {bad} refused");
}

#[test]
fn transparency_dev_consistency_vectors() {
    let (mut good, mut bad) = (0, 0);
    for (name, text) in cases("consistency") {
        let c: Consistency = serde_json::from_str(&text).expect(&name);
        let ok = (|| {
            let size1 = c.size1;
            let size2 = c.size2;
            // An absent root stands for "no root given"; the empty-tree cases give none.
            let root1 = c.root1.as_deref().map_or(Some(TreeHash::default()), b64)?;
            let root2 = c.root2.as_deref().map_or(Some(TreeHash::default()), b64)?;
            let proof = b64s(&c.proof)?;
            Some(verify_consistency(size1, size2, &proof, &root1, &root2).is_ok())
        })()
        .unwrap_or(false);
        assert_eq!(ok, !c.want_err, "{name}");
        if ok { good += 1 } else { bad += 1 }
    }
    assert!(good >= 4 && bad >= 40, "{good} accepted, {bad} refused");
}
