//! The Merkle frontier: the roots of the complete subtrees of the tree
//! walked so far, which is all the walk keeps of the tree, and the nodes
//! each appended leaf completes, with what is needed to judge their stored
//! hashes.

use crate::ledger::merkle::{self, Hash, HashStore, MerkleError};

/// One complete subtree of the tree walked so far.
#[derive(Clone, Copy, Debug)]
pub(super) struct Node {
    /// Its stored-hash index.
    pub(super) index: u64,
    /// Its hash recomputed from the leaves.
    pub(super) computed: Hash,
    /// The hash stored for it, if any.
    pub(super) stored: Option<Hash>,
}

/// A node an append completed, with what is needed to judge its stored hash.
#[derive(Clone, Copy, Debug)]
pub(super) struct Completed {
    pub(super) node: Node,
    pub(super) level: u8,
    /// The hash of its two stored children, when both are stored (interior
    /// nodes only).
    pub(super) from_stored_children: Option<Hash>,
    /// A stored child differs from its recomputed hash.
    pub(super) child_differs: bool,
}

/// The roots of the complete subtrees of the tree walked so far, largest
/// first: one per set bit of the size, and all that appending a leaf or
/// computing the root ever reads of a tree.
#[derive(Debug, Default)]
pub(super) struct Frontier {
    nodes: Vec<Node>,
}

/// The frontier as a [`HashStore`], answering with computed or stored hashes.
struct FrontierView<'a> {
    nodes: &'a [Node],
    stored: bool,
}

impl HashStore for FrontierView<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
        indexes
            .iter()
            .map(|&index| {
                let node = self.nodes.iter().find(|n| n.index == index);
                match node {
                    Some(n) if !self.stored => Ok(n.computed),
                    Some(Node {
                        stored: Some(h), ..
                    }) => Ok(*h),
                    _ => Err(MerkleError::MissingHash { index }),
                }
            })
            .collect()
    }
}

impl Frontier {
    fn view(&self, stored: bool) -> FrontierView<'_> {
        FrontierView {
            nodes: &self.nodes,
            stored,
        }
    }

    /// Appends leaf `n` (the size so far) with hash `leaf_hash`; `stored`
    /// gives the hash stored at a stored-hash index. Returns the nodes the
    /// leaf completes, from the leaf up.
    pub(super) fn append(
        &mut self,
        n: u64,
        leaf_hash: &Hash,
        mut stored: impl FnMut(u64) -> Option<Hash>,
    ) -> Vec<Completed> {
        let hashes = merkle::hashes_to_store(n, leaf_hash, &self.view(false))
            .expect("the frontier holds every hash an append reads");
        assert_eq!(
            hashes.len(),
            n.trailing_ones() as usize + 1,
            "leaf {n} completes one subtree per trailing one bit"
        );
        let mut completed = Vec::with_capacity(hashes.len());
        let mut right: Option<Node> = None;
        for (level, (index, computed)) in (0u8..).zip(hashes) {
            let node = Node {
                index,
                computed,
                stored: stored(index),
            };
            let (from_stored_children, child_differs) = match right {
                None => (None, false),
                Some(r) => {
                    let l = self
                        .nodes
                        .pop()
                        .expect("a completed subtree has its left half in the frontier");
                    let from = l
                        .stored
                        .zip(r.stored)
                        .map(|(l, r)| merkle::node_hash(&l, &r));
                    let differs = l.stored != Some(l.computed) || r.stored != Some(r.computed);
                    (from, differs)
                }
            };
            completed.push(Completed {
                node,
                level,
                from_stored_children,
                child_differs,
            });
            right = Some(node);
        }
        self.nodes
            .push(right.expect("an append completes at least its leaf"));
        completed
    }

    /// The root of the tree so far of `size` leaves, from the recomputed or
    /// the stored hashes; `None` if a stored one is missing.
    pub(super) fn root(&self, size: u64, stored: bool) -> Option<Hash> {
        merkle::root(size, &self.view(stored)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::merkle::MemoryHashStore;

    #[test]
    fn the_frontier_agrees_with_the_reference_tree() {
        let mut reference = MemoryHashStore::new();
        let mut frontier = Frontier::default();
        for n in 0..100u64 {
            assert_eq!(
                frontier.root(n, false),
                reference.root().ok(),
                "root at size {n}"
            );
            let leaf = merkle::leaf_hash(format!("leaf {n}").as_bytes());
            let expected = merkle::hashes_to_store(n, &leaf, &reference).expect("reference");
            reference.append_leaf_hash(&leaf).expect("append");
            let completed = frontier.append(n, &leaf, |index| {
                reference.read_hashes(&[index]).ok().map(|h| h[0])
            });
            let got: Vec<(u64, Hash)> = completed
                .iter()
                .map(|c| (c.node.index, c.node.computed))
                .collect();
            assert_eq!(got, expected, "hashes of leaf {n}");
            assert!(completed.iter().all(|c| !c.child_differs));
            assert!(completed
                .iter()
                .all(|c| c.level == 0 || c.from_stored_children == Some(c.node.computed)));
            assert_eq!(frontier.nodes.len(), (n + 1).count_ones() as usize);
        }
    }
}
