//! The RFC 6962 Merkle tree over a trail's records, kept incrementally, with inclusion and
//! consistency proofs.
//!
//! Leaf `i` of the tree is record `i`'s [chain hash](crate::chain::ChainHash), hashed as an
//! RFC 6962 leaf: `SHA-256(0x00 || chain hash)`; interior nodes are `SHA-256(0x01 || left ||
//! right)` (RFC 6962 section 2.1, RFC 9162 section 2.1.1). A signed
//! [checkpoint](crate::checkpoint) carries the tree's size and root hash in the C2SP
//! tlog-checkpoint form, so that
//!
//! - an inclusion proof shows that one record is in the tree a checkpoint signed, without the
//!   rest of the trail ([`verify_inclusion`]);
//! - a consistency proof shows that the tree of an earlier checkpoint is a prefix of the tree
//!   of a later one ([`verify_consistency`]): the trail was only appended to. This is what a
//!   witness checks before it cosigns.
//!
//! The writer keeps a [`Frontier`] (a compact range: the roots of the perfect subtrees that
//! cover the leaves so far, at most 64 hashes), so each append costs one leaf hash and on
//! average one node hash, and the root is available at any time in O(log n).
//!
//! # Errors and panics
//! Proof verification returns [`ProofError`]; nothing here panics. The proof builders take
//! all leaf hashes in memory (verifiers and tools, not the writer's hot path).

use std::fmt;

use sha2::{Digest, Sha256};

/// A SHA-256 hash in the Merkle tree (a leaf hash, a node hash, or a root).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TreeHash(pub [u8; 32]);

impl fmt::Debug for TreeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TreeHash(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl TreeHash {
    /// The root of the empty tree: `SHA-256("")`.
    pub fn empty() -> Self {
        Self(Sha256::digest([]).into())
    }

    /// Reads exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }
}

/// `SHA-256(0x00 || data)`: the RFC 6962 hash of a leaf.
pub fn leaf_hash(data: &[u8]) -> TreeHash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    TreeHash(h.finalize().into())
}

/// `SHA-256(0x01 || left || right)`: the RFC 6962 hash of an interior node.
pub fn node_hash(left: &TreeHash, right: &TreeHash) -> TreeHash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left.0);
    h.update(right.0);
    TreeHash(h.finalize().into())
}

/// Why a proof does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The index or the sizes are out of range (a leaf past the tree, a shrinking tree).
    #[error("proof sizes out of range")]
    Range,
    /// The proof has the wrong number of hashes for the sizes.
    #[error("proof has the wrong length")]
    Length,
    /// The proof leads to a different root.
    #[error("proof does not match the root")]
    Mismatch,
}

/// The compact range `[0, size)` of a tree: the roots of its perfect subtrees, largest (left)
/// first. One hash per set bit of `size`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    nodes: Vec<TreeHash>,
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A frontier from stored parts, if `nodes` has one hash per set bit of `size`. Whether it
    /// is the right one is for the caller to check against a signed root ([`Frontier::root`]).
    pub fn from_parts(size: u64, nodes: Vec<TreeHash>) -> Option<Self> {
        (nodes.len() == size.count_ones() as usize).then_some(Self { size, nodes })
    }

    /// How many leaves the tree has.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The subtree roots, largest first.
    pub fn nodes(&self) -> &[TreeHash] {
        &self.nodes
    }

    /// Appends a leaf whose data is `data` (hashed with [`leaf_hash`]).
    pub fn push(&mut self, data: &[u8]) {
        self.push_hash(leaf_hash(data));
    }

    /// Appends a leaf given by its leaf hash.
    pub fn push_hash(&mut self, leaf: TreeHash) {
        let mut node = leaf;
        let mut size = self.size;
        // Each trailing one bit of the old size is a subtree of the new leaf's height: merge.
        while size & 1 == 1 {
            let Some(left) = self.nodes.pop() else { break };
            node = node_hash(&left, &node);
            size >>= 1;
        }
        self.nodes.push(node);
        self.size = self.size.saturating_add(1);
    }

    /// The tree's root hash (RFC 6962 MTH).
    pub fn root(&self) -> TreeHash {
        let mut nodes = self.nodes.iter().rev();
        let Some(last) = nodes.next() else {
            return TreeHash::empty();
        };
        nodes.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

/// The largest power of two strictly below `n` (for `n >= 2`).
fn split(n: usize) -> usize {
    let mut k = 1usize;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The root of the tree over `leaves` (leaf hashes), RFC 6962 MTH.
pub fn root(leaves: &[TreeHash]) -> TreeHash {
    let mut f = Frontier::new();
    for l in leaves {
        f.push_hash(*l);
    }
    f.root()
}

/// The inclusion proof (RFC 9162 section 2.1.3.1) of leaf `index` in the tree over `leaves`,
/// or `None` if `index` is past the end.
pub fn inclusion_proof(leaves: &[TreeHash], index: u64) -> Option<Vec<TreeHash>> {
    let index = usize::try_from(index).ok()?;
    if index >= leaves.len() {
        return None;
    }
    let mut out = Vec::new();
    path(leaves, index, &mut out);
    Some(out)
}

fn path(leaves: &[TreeHash], m: usize, out: &mut Vec<TreeHash>) {
    if leaves.len() <= 1 {
        return;
    }
    let k = split(leaves.len());
    let (left, right) = leaves.split_at(k);
    if m < k {
        path(left, m, out);
        out.push(root(right));
    } else {
        path(right, m - k, out);
        out.push(root(left));
    }
}

/// The consistency proof (RFC 9162 section 2.1.4.1) that the tree of the first `size1` leaves
/// is a prefix of the tree over all `leaves`, or `None` if `size1` is past the end.
pub fn consistency_proof(leaves: &[TreeHash], size1: u64) -> Option<Vec<TreeHash>> {
    let m = usize::try_from(size1).ok()?;
    if m > leaves.len() {
        return None;
    }
    let mut out = Vec::new();
    if m > 0 && m < leaves.len() {
        subproof(leaves, m, true, &mut out);
    }
    Some(out)
}

fn subproof(leaves: &[TreeHash], m: usize, whole: bool, out: &mut Vec<TreeHash>) {
    let n = leaves.len();
    if m == n {
        if !whole {
            out.push(root(leaves));
        }
        return;
    }
    let k = split(n);
    let (left, right) = leaves.split_at(k);
    if m <= k {
        subproof(left, m, whole, out);
        out.push(root(right));
    } else {
        subproof(right, m - k, false, out);
        out.push(root(left));
    }
}

/// Checks that `leaf` (a leaf hash) is leaf `index` of the tree of `size` leaves with root
/// `root`, by the RFC 9162 section 2.1.3.2 algorithm.
///
/// # Errors
/// [`ProofError`] if it is not.
pub fn verify_inclusion(
    leaf: &TreeHash,
    index: u64,
    size: u64,
    proof: &[TreeHash],
    root: &TreeHash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::Range);
    }
    let mut f = index;
    let mut s = size - 1;
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(ProofError::Length);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::Length);
    }
    if r == *root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

/// Checks that the tree of `size1` leaves with root `root1` is a prefix of the tree of `size2`
/// leaves with root `root2`, by the RFC 9162 section 2.1.4.2 algorithm. `size1` must be at
/// least 1 (every tree extends the empty one; there is nothing to check).
///
/// # Errors
/// [`ProofError`] if it is not shown to be.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[TreeHash],
    root1: &TreeHash,
    root2: &TreeHash,
) -> Result<(), ProofError> {
    if size2 < size1 || size1 == 0 {
        // A proof from the empty tree would prove nothing: it is refused, as in
        // transparency-dev/merkle, rather than accepted for any root.
        return Err(ProofError::Range);
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::Length);
        }
        return if root1 == root2 {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    let (first, rest) = match proof.split_first() {
        Some(parts) if !size1.is_power_of_two() => parts,
        Some(_) => (root1, proof),
        None => return Err(ProofError::Length),
    };
    let mut f = size1 - 1;
    let mut s = size2 - 1;
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let mut fr = *first;
    let mut sr = *first;
    for c in rest {
        if s == 0 {
            return Err(ProofError::Length);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::Length);
    }
    if fr == *root1 && sr == *root2 {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::cast_possible_truncation
    )]

    use super::*;

    fn leaves(n: u64) -> Vec<TreeHash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn every_proof_round_trips_and_a_changed_hash_fails() {
        for n in 0..40u64 {
            let l = leaves(n);
            let r = root(&l);
            for i in 0..n {
                let p = inclusion_proof(&l, i).unwrap();
                verify_inclusion(&l[i as usize], i, n, &p, &r).unwrap();
                if let Some(first) = p.first() {
                    let mut bad = p.clone();
                    bad[0] = leaf_hash(&first.0);
                    assert!(verify_inclusion(&l[i as usize], i, n, &bad, &r).is_err());
                }
            }
            for m in 1..=n {
                let p = consistency_proof(&l, m).unwrap();
                let r1 = root(&l[..m as usize]);
                verify_consistency(m, n, &p, &r1, &r).unwrap();
                if m > 0 && m < n {
                    let other = leaf_hash(b"fork");
                    assert!(verify_consistency(m, n, &p, &other, &r).is_err());
                }
            }
        }
    }
}
