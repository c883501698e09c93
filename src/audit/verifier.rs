//! `ironlog verify` and `ironlog export`: what one audit run checks.
//!
//! 1. The node's latest checkpoint satisfies the trust policy.
//! 2. It extends the largest checkpoint this auditor accepted before: same
//!    size means same root, a larger size needs a consistency proof that
//!    verifies, a smaller size is a rollback.
//! 3. Optionally, chosen entries are in it (inclusion proofs), or the whole
//!    tree is recomputed from every leaf and compared with the signed root.
//!
//! Every proof is checked here with [`crate::ledger::merkle`]; the node is
//! only a source of bytes.

use futures::{StreamExt, TryStreamExt};

use super::reader::LogReader;
use super::state::{now_unix_secs, AuditState, Head};
use super::AuditError;
use crate::ledger::bundle::TlogProof;
use crate::ledger::event::LeafRecord;
use crate::ledger::merkle::{self, Hash, MemoryHashStore};
use crate::ledger::policy::{Accepted, TrustPolicy};
use crate::limits::PAGE_ENTRIES_MAX;

/// Inclusion proofs requested at once. Proof requests are small and
/// independent; a few in flight hide the round trip without flooding a node.
pub const INCLUSION_REQUESTS_IN_FLIGHT: usize = 16;

/// Pages of leaves fetched ahead while the previous page is hashed.
const FULL_PAGES_AHEAD: usize = 4;

/// Most entries one `--entries` list may name.
pub const ENTRIES_LISTED_MAX: u64 = 10_000_000;

/// How the new checkpoint relates to the one accepted before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// Nothing was accepted before: trust on first use.
    First,
    /// The same checkpoint as before.
    Unchanged,
    /// A consistency proof from `from` verified.
    Extended { from: u64 },
}

/// A checkpoint that passed the policy and the consistency check.
#[derive(Clone, Debug)]
pub struct Latest {
    pub accepted: Accepted,
    pub note: String,
    pub consistency: Consistency,
}

fn hex_root(h: &Hash) -> String {
    hex::encode(h)
}

/// Checks that `(size, root)` extends the head `(old, old_root)`, fetching a
/// consistency proof from `reader` when the size grew.
pub async fn check_extends(
    reader: &mut LogReader,
    head: Option<(u64, Hash)>,
    size: u64,
    root: &Hash,
) -> Result<Consistency, AuditError> {
    let Some((old, old_root)) = head else {
        return Ok(Consistency::First);
    };
    if size < old {
        return Err(AuditError::Rollback { old, new: size });
    }
    if size == old {
        if *root != old_root {
            return Err(AuditError::Fork {
                size,
                old_root: hex_root(&old_root),
                new_root: hex_root(root),
            });
        }
        return Ok(Consistency::Unchanged);
    }
    if old == 0 {
        return Ok(Consistency::Extended { from: 0 });
    }
    let proof = reader.consistency(old, size).await?;
    merkle::verify_consistency(old, size, &old_root, root, &proof).map_err(|e| {
        AuditError::Inconsistent {
            old,
            new: size,
            reason: e.to_string(),
        }
    })?;
    Ok(Consistency::Extended { from: old })
}

/// Steps 1 and 2: the latest checkpoint, against the policy and the state.
pub async fn check_latest(
    reader: &mut LogReader,
    policy: &TrustPolicy,
    state: &AuditState,
) -> Result<Latest, AuditError> {
    let note = reader.latest_note().await?;
    let accepted = policy.check(note.as_bytes())?;
    let consistency = check_extends(
        reader,
        state.head_root(),
        accepted.body.size,
        &accepted.body.root,
    )
    .await?;
    Ok(Latest {
        accepted,
        note,
        consistency,
    })
}

/// Records a checkpoint that passed [`check_latest`] as the new head.
pub fn accept(state: &mut AuditState, latest: &Latest) {
    let body = &latest.accepted.body;
    let grows = state.head.as_ref().is_none_or(|h| body.size > h.size);
    if grows {
        state.head = Some(Head {
            size: body.size,
            root: hex_root(&body.root),
            note: latest.note.clone(),
            accepted_at: now_unix_secs(),
        });
    }
    state.remember_root(body.size, &body.root);
}

/// Parses `0,5,10-20` (ranges inclusive) into sorted, distinct indices.
pub fn parse_entry_list(spec: &str) -> Result<Vec<u64>, AuditError> {
    let bad = |part: &str, why: &str| AuditError::Input(format!("--entries {part:?}: {why}"));
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo.trim(), hi.trim()),
            None => (part, part),
        };
        let lo: u64 = lo.parse().map_err(|_| bad(part, "not an index or range"))?;
        let hi: u64 = hi.parse().map_err(|_| bad(part, "not an index or range"))?;
        if hi < lo {
            return Err(bad(part, "range ends before it starts"));
        }
        if (out.len() as u64).saturating_add(hi - lo + 1) > ENTRIES_LISTED_MAX {
            return Err(bad(
                part,
                &format!("more than {ENTRIES_LISTED_MAX} entries in one list"),
            ));
        }
        out.extend(lo..=hi);
    }
    if out.is_empty() {
        return Err(AuditError::Input("--entries names no entry".into()));
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Fetches the leaves of `indices` (sorted), reading runs of consecutive
/// indices a page at a time.
pub async fn fetch_leaves(
    reader: &mut LogReader,
    indices: &[u64],
) -> Result<Vec<(u64, Vec<u8>)>, AuditError> {
    let mut out = Vec::with_capacity(indices.len());
    let mut i = 0;
    while i < indices.len() {
        // A run of consecutive indices, at most one page long.
        let mut j = i + 1;
        while j < indices.len()
            && indices[j] == indices[j - 1] + 1
            && ((j - i) as u64) < PAGE_ENTRIES_MAX
        {
            j += 1;
        }
        let (start, end) = (indices[i], indices[j - 1] + 1);
        let mut next = start;
        while next < end {
            let page = reader.leaves(next, end).await?;
            if page.is_empty() {
                return Err(AuditError::Entry {
                    index: next,
                    reason: format!("the node has no entry {next}"),
                });
            }
            next += page.len() as u64;
            out.extend(page);
        }
        i = j;
    }
    Ok(out)
}

/// The leaf hash of an entry's leaf bytes, after checking the leaf decodes
/// and says it is entry `index` (a leaf filed under the wrong index is a
/// lie the hash alone would not reveal to a reader of the bundle).
pub fn checked_leaf_hash(index: u64, leaf: &[u8]) -> Result<Hash, AuditError> {
    let record = LeafRecord::decode(leaf).map_err(|e| AuditError::Entry {
        index,
        reason: format!("leaf does not decode: {e}"),
    })?;
    if record.index != index {
        return Err(AuditError::Entry {
            index,
            reason: format!("the leaf says it is entry {}", record.index),
        });
    }
    Ok(merkle::leaf_hash(leaf))
}

/// Step 3a: each `(index, leaf)` is in the tree of `accepted`. Returns how
/// many proofs verified.
pub async fn check_inclusion(
    reader: &LogReader,
    accepted: &Accepted,
    entries: Vec<(u64, Vec<u8>)>,
) -> Result<usize, AuditError> {
    let size = accepted.body.size;
    let root = accepted.body.root;
    for (index, _) in &entries {
        if *index >= size {
            return Err(AuditError::Entry {
                index: *index,
                reason: format!(
                    "not below the checkpoint's tree size {size}; wait for a newer checkpoint"
                ),
            });
        }
    }
    let total = entries.len();
    futures::stream::iter(entries)
        .map(|(index, leaf)| {
            let mut reader = reader.clone();
            async move {
                let leaf_hash = checked_leaf_hash(index, &leaf)?;
                let proof = reader.inclusion(index, size).await?;
                merkle::verify_inclusion(index, size, &leaf_hash, &proof, &root).map_err(|e| {
                    AuditError::Inclusion {
                        index,
                        size,
                        reason: e.to_string(),
                    }
                })
            }
        })
        .buffer_unordered(INCLUSION_REQUESTS_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(total)
}

/// Step 3b: downloads every leaf below the checkpoint's size, recomputes
/// every leaf hash and the root, and compares it with the signed root.
/// `progress` is called with the number of leaves hashed so far.
pub async fn check_full(
    reader: &LogReader,
    accepted: &Accepted,
    mut progress: impl FnMut(u64),
) -> Result<u64, AuditError> {
    let size = accepted.body.size;
    let (tx, mut rx) = tokio::sync::mpsc::channel(FULL_PAGES_AHEAD);
    let mut fetcher = reader.clone();
    // Fetch ahead while hashing, so the check runs at the slower of the two.
    let fetch = tokio::spawn(async move {
        let mut next = 0;
        while next < size {
            let end = size.min(next + PAGE_ENTRIES_MAX);
            let page = fetcher.leaves(next, end).await;
            let stop = match &page {
                Ok(p) if p.is_empty() => true,
                Ok(p) => {
                    next += p.len() as u64;
                    false
                }
                Err(_) => true,
            };
            if tx.send(page).await.is_err() || stop {
                return;
            }
        }
    });
    let mut tree = MemoryHashStore::new();
    while tree.size() < size {
        let page = match rx.recv().await {
            Some(page) => page?,
            None => break,
        };
        if page.is_empty() {
            break;
        }
        for (index, leaf) in page {
            let hash = checked_leaf_hash(index, &leaf)?;
            tree.append_leaf_hash(&hash)
                .map_err(|e| AuditError::Entry {
                    index,
                    reason: e.to_string(),
                })?;
        }
        progress(tree.size());
    }
    fetch.abort();
    if tree.size() != size {
        return Err(AuditError::Entry {
            index: tree.size(),
            reason: format!(
                "the node returned only {} of the {size} entries",
                tree.size()
            ),
        });
    }
    let computed = tree.root().map_err(|e| AuditError::Input(e.to_string()))?;
    if computed != accepted.body.root {
        return Err(AuditError::RootMismatch {
            size,
            computed: hex_root(&computed),
            signed: hex_root(&accepted.body.root),
        });
    }
    Ok(size)
}

/// Builds a tlog-proof per index against the checkpoint `note`, verifying
/// each before it is written (an exported bundle must never be one that
/// fails to verify).
pub async fn export(
    reader: &mut LogReader,
    note: &str,
    accepted: &Accepted,
    indices: &[u64],
) -> Result<Vec<TlogProof>, AuditError> {
    let size = accepted.body.size;
    if let Some(&beyond) = indices.iter().find(|&&i| i >= size) {
        return Err(AuditError::Entry {
            index: beyond,
            reason: format!("not below the checkpoint's tree size {size}"),
        });
    }
    let leaves = fetch_leaves(reader, indices).await?;
    let root = accepted.body.root;
    let shared = reader.clone();
    futures::stream::iter(leaves)
        .map(|(index, leaf)| {
            let mut reader = shared.clone();
            async move {
                let leaf_hash = checked_leaf_hash(index, &leaf)?;
                let hashes = reader.inclusion(index, size).await?;
                merkle::verify_inclusion(index, size, &leaf_hash, &hashes, &root).map_err(|e| {
                    AuditError::Inclusion {
                        index,
                        size,
                        reason: e.to_string(),
                    }
                })?;
                Ok::<_, AuditError>(TlogProof {
                    extra: Some(leaf),
                    index,
                    hashes,
                    note: note.to_string(),
                })
            }
        })
        .buffer_unordered(INCLUSION_REQUESTS_IN_FLIGHT)
        .try_collect::<Vec<TlogProof>>()
        .await
        .map(|mut proofs| {
            proofs.sort_unstable_by_key(|p| p.index);
            proofs
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_lists() {
        assert_eq!(parse_entry_list("5, 0,2-4,3").unwrap(), [0, 2, 3, 4, 5]);
        for bad in ["", ",", "a", "3-1", "1-", "-1", "1-2-3"] {
            assert!(parse_entry_list(bad).is_err(), "{bad:?}");
        }
        assert!(parse_entry_list(&format!("0-{ENTRIES_LISTED_MAX}")).is_err());
    }
}
