//! The walk: one pass in leaf order over the metadata, the leaves, the
//! stored hashes, the checkpoints and the signature rows, recomputing the
//! tree on the frontier as it goes.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use redb::{ReadTransaction, StorageError, TableHandle};

use super::checker::Checker;
use super::frontier::{Completed, Frontier};
use super::raw::{name_of, raw_keys, raw_values, Cursor, Rows};
use super::ProblemKind;
use crate::ledger::checkpoint::CheckpointBody;
use crate::ledger::event::LeafRecord;
use crate::ledger::merkle::{self, Hash, HASH_BYTES};
use crate::storage::ledger_store::{
    chunk_hashes, StateMeta, CHECKPOINTS, ENTRIES, HASH_CHUNKS, LEGACY_HASHES, META, META_INDEXED,
    META_STATE, SIGNATURES,
};

/// Why the hash chunks that cannot be one were skipped, as the walk meets
/// them.
type BadChunks = Rc<RefCell<Vec<String>>>;

/// The state of the walk in leaf order.
struct Walk {
    entries: Rows<u64>,
    hashes: Rows<u64>,
    /// Why each hash chunk met so far that cannot be one was skipped.
    bad_chunks: BadChunks,
    checkpoints: Rows<u64>,
    signatures: Rows<(u64, u32)>,
    /// `None` once a leaf is missing: nothing above it can be recomputed.
    frontier: Option<Frontier>,
    /// Leaves walked so far: the size the frontier is for.
    walked: u64,
    last_commit_time: Option<i64>,
    /// Leaves that decode and carry an idempotency key.
    keyed_leaves: u64,
    /// (checkpoint size, origin) of every checkpoint that parses.
    origins: Vec<(u64, String)>,
}

impl Checker {
    /// The state metadata, or `None` (reported) if it is unreadable.
    fn read_meta(&mut self, txn: &ReadTransaction) -> Option<StateMeta> {
        let table = self.open(txn, raw_keys(&META))?;
        let mut state = None;
        let rows = match table.range::<&[u8]>(..) {
            Ok(rows) => rows,
            Err(e) => {
                self.general(ProblemKind::Meta, format!("cannot read: {e}"));
                return None;
            }
        };
        for row in rows {
            let (key, value) = match row {
                Ok(row) => row,
                Err(e) => {
                    self.general(ProblemKind::Meta, format!("cannot read: {e}"));
                    return None;
                }
            };
            if key.value() == META_STATE.as_bytes() {
                state = Some(value.value().to_vec());
            } else if key.value() == META_INDEXED.as_bytes() {
                // Checked with the index tables it describes.
            } else {
                let message = format!(
                    "unexpected metadata row {:?}",
                    String::from_utf8_lossy(key.value())
                );
                self.general(ProblemKind::Meta, message);
            }
        }
        // A store that never applied anything has no state row: size 0.
        let Some(state) = state else {
            return Some(StateMeta::default());
        };
        match serde_json::from_slice(&state) {
            Ok(meta) => Some(meta),
            Err(e) => {
                let message =
                    format!("the state row does not decode ({e}); the tree size is unknown");
                self.general(ProblemKind::Meta, message);
                None
            }
        }
    }

    /// The walk in leaf order over entries, hashes, checkpoints and signatures.
    pub(super) fn walk(&mut self, txn: &ReadTransaction) {
        let meta = self.read_meta(txn);
        if let Some(meta) = &meta {
            self.learn_voter_keys(meta);
            self.report.tree_size = meta.tree_size;
        }
        self.report.known_keys = self
            .keys
            .iter()
            .map(|((name, id), (_, from))| format!("{name}+{id:08x} ({from})"))
            .collect();
        let Some(mut walk) = self.start_walk(txn) else {
            return;
        };
        let size = meta.as_ref().map(|m| m.tree_size);
        self.walk_leaves(&mut walk, size);
        let size = size.unwrap_or(walk.walked);
        self.report.tree_size = size;
        if let (Some(meta), Some(last)) = (&meta, walk.last_commit_time) {
            if meta.last_commit_time_unix_nanos < last {
                let message = format!(
                    "the recorded last commit time {} is before the last leaf's, {last}",
                    meta.last_commit_time_unix_nanos
                );
                self.general(ProblemKind::Meta, message);
            }
        }
        self.finish_walk(&mut walk, size);
        self.check_origins(&walk.origins);
        // Only a leaf table read to its end has counted every keyed leaf.
        if walk.entries.error.is_none() {
            self.keyed_leaves = Some(walk.keyed_leaves);
        }
    }

    fn start_walk(&mut self, txn: &ReadTransaction) -> Option<Walk> {
        let entries = self.open(txn, ENTRIES)?;
        let (hashes, bad_chunks) = self.hash_rows(txn)?;
        let checkpoints = self.open(txn, CHECKPOINTS)?;
        let signatures = self.open(txn, raw_values(&SIGNATURES))?;
        let cursors = (|| {
            Ok::<_, StorageError>(Walk {
                entries: Cursor::new(
                    name_of(&ENTRIES),
                    entries
                        .range::<u64>(..)?
                        .map(|r| r.map(|(k, v)| (k.value(), v.value().to_vec()))),
                ),
                hashes,
                bad_chunks,
                checkpoints: Cursor::new(
                    name_of(&CHECKPOINTS),
                    checkpoints
                        .range::<u64>(..)?
                        .map(|r| r.map(|(k, v)| (k.value(), v.value().to_vec()))),
                ),
                signatures: Cursor::new(
                    name_of(&SIGNATURES),
                    signatures
                        .range::<(u64, u32)>(..)?
                        .map(|r| r.map(|(k, v)| (k.value(), v.value().to_vec()))),
                ),
                frontier: Some(Frontier::default()),
                walked: 0,
                last_commit_time: None,
                keyed_leaves: 0,
                origins: Vec::new(),
            })
        })();
        match cursors {
            Ok(walk) => Some(walk),
            Err(e) => {
                self.general(
                    ProblemKind::Unreadable,
                    format!("cannot read the ledger tables: {e}"),
                );
                None
            }
        }
    }

    /// The stored hashes, one row each in index order, from their chunks;
    /// from the per-hash rows in a store written before chunks (which a
    /// node packs when it opens it, and fsck, reading only, does not). A
    /// chunk that cannot be one is skipped, so its hashes are missing where
    /// the walk needs them, and why is kept for the report; the chunks
    /// after it are read on.
    fn hash_rows(&mut self, txn: &ReadTransaction) -> Option<(Rows<u64>, BadChunks)> {
        let bad_chunks = BadChunks::default();
        let legacy_only = txn.list_tables().is_ok_and(|mut tables| {
            let names: Vec<String> = tables.by_ref().map(|t| t.name().to_string()).collect();
            !names.iter().any(|n| n == HASH_CHUNKS.name())
                && names.iter().any(|n| n == LEGACY_HASHES.name())
        });
        let rows = if legacy_only {
            let table = self.open(txn, raw_values(&LEGACY_HASHES))?;
            table.range::<u64>(..).map(|rows| {
                Cursor::new(
                    name_of(&LEGACY_HASHES),
                    rows.map(|r| r.map(|(k, v)| (k.value(), v.value().to_vec()))),
                )
            })
        } else {
            let table = self.open(txn, HASH_CHUNKS)?;
            let bad = Rc::clone(&bad_chunks);
            table.range::<u64>(..).map(|rows| {
                let hashes = rows.flat_map(move |row| match row {
                    Err(e) => vec![Err(e)],
                    Ok((chunk, bytes)) => match chunk_hashes(chunk.value(), bytes.value()) {
                        Ok(hashes) => hashes
                            .into_iter()
                            .map(|(index, hash)| Ok((index, hash.to_vec())))
                            .collect(),
                        Err(reason) => {
                            bad.borrow_mut().push(reason);
                            Vec::new()
                        }
                    },
                });
                Cursor::new(name_of(&HASH_CHUNKS), hashes)
            })
        };
        match rows {
            Ok(rows) => Some((rows, bad_chunks)),
            Err(e) => {
                let message = format!("cannot read the stored hashes: {e}");
                self.general(ProblemKind::Unreadable, message);
                None
            }
        }
    }

    /// Every stored leaf, in order, with the checkpoints cut between them.
    fn walk_leaves(&mut self, walk: &mut Walk, size: Option<u64>) {
        while let Some((index, leaf)) = walk.entries.next_if(|_| true) {
            if let Some(size) = size.filter(|&size| index >= size) {
                let mut extra = 1u64;
                while walk.entries.next_if(|_| true).is_some() {
                    extra += 1;
                }
                let message = format!(
                    "{extra} leaves are stored at or beyond the tree size {size}, the first at index {index}"
                );
                self.at_leaf(ProblemKind::EntryUnexpected, index, message);
                break;
            }
            self.checkpoints_upto(walk, walk.walked);
            if index > walk.walked {
                self.lose_tree(walk, index);
                self.checkpoints_upto(walk, index);
            }
            self.check_leaf(walk, index, &leaf);
            walk.walked = index.saturating_add(1);
        }
        if let Some(size) = size.filter(|&size| walk.walked < size) {
            self.checkpoints_upto(walk, walk.walked);
            self.lose_tree(walk, size);
        }
    }

    /// Leaves `walk.walked..upto` are missing: report them, and stop
    /// recomputing the tree, which no longer can be.
    fn lose_tree(&mut self, walk: &mut Walk, upto: u64) {
        let from = walk.walked;
        let message = if walk.frontier.take().is_some() {
            format!("leaves {from}..{upto} are not stored; hashes and roots above leaf {from} are not checked")
        } else {
            format!("leaves {from}..{upto} are not stored")
        };
        self.at_leaf(ProblemKind::EntryMissing, from, message);
    }

    fn check_leaf(&mut self, walk: &mut Walk, index: u64, leaf: &[u8]) {
        self.report.entries_checked += 1;
        match LeafRecord::decode(leaf) {
            Err(e) => {
                let message = format!("the stored entry does not decode: {e}");
                self.at_leaf(ProblemKind::EntryDecode, index, message);
            }
            Ok(record) => {
                if record.index != index {
                    let message = format!("the stored entry says it is leaf {}", record.index);
                    self.at_leaf(ProblemKind::EntryRecord, index, message);
                }
                let time = record.commit_time_unix_nanos;
                if let Some(previous) = walk.last_commit_time.filter(|&p| time < p) {
                    let message =
                        format!("commit time {time} is before the previous leaf's, {previous}");
                    self.at_leaf(ProblemKind::EntryRecord, index, message);
                }
                walk.last_commit_time = Some(time);
                if record.event.idempotency_key.is_some() {
                    walk.keyed_leaves += 1;
                }
            }
        }
        let Some(frontier) = &mut walk.frontier else {
            return;
        };
        let hashes = &mut walk.hashes;
        let mut unexpected = Vec::new();
        let completed = frontier.append(index, &merkle::leaf_hash(leaf), |wanted| {
            // Rows below the one wanted were all asked for already; one
            // still here is a stored hash no tree position owns.
            while let Some((extra, _)) = hashes.next_if(|(i, _)| *i < wanted) {
                unexpected.push(extra);
            }
            let (_, bytes) = hashes.next_if(|(i, _)| *i == wanted)?;
            <[u8; HASH_BYTES]>::try_from(bytes.as_slice()).ok()
        });
        for extra in unexpected {
            let message = format!("stored hash {extra} belongs to no node of the tree");
            self.at_leaf(ProblemKind::HashUnexpected, index, message);
        }
        for node in completed {
            self.judge_hash(index, &node);
        }
    }

    /// Compares one stored hash that leaf `leaf` completed with the leaves.
    fn judge_hash(&mut self, leaf: u64, completed: &Completed) {
        let Completed {
            node,
            level,
            from_stored_children,
            child_differs,
        } = *completed;
        let Some(stored) = node.stored else {
            let message = format!(
                "stored hash {} (level {level}) is missing or not {HASH_BYTES} bytes",
                node.index
            );
            self.at_leaf(ProblemKind::HashMissing, leaf, message);
            return;
        };
        self.report.hashes_checked += 1;
        if stored == node.computed {
            return;
        }
        if level == 0 {
            let message = format!(
                "stored entry hashes to {}, but its stored leaf hash ({}) is {}",
                hex::encode(node.computed),
                node.index,
                hex::encode(stored)
            );
            self.at_leaf(ProblemKind::LeafHashMismatch, leaf, message);
            return;
        }
        // Already explained by the child that differs, if it agrees with
        // the stored children.
        if child_differs && from_stored_children == Some(stored) {
            return;
        }
        let first = leaf + 1 - (1u64 << level);
        let message = format!(
            "stored hash {} (level {level}, leaves {first}..={leaf}) is {}, but the leaves hash to {}",
            node.index,
            hex::encode(stored),
            hex::encode(node.computed)
        );
        self.at_leaf(ProblemKind::HashMismatch, leaf, message);
    }

    /// Checks every checkpoint of size `upto` or less not yet checked. Only
    /// one of the tree's current size can have its root recomputed.
    fn checkpoints_upto(&mut self, walk: &mut Walk, upto: u64) {
        while let Some((size, body)) = walk.checkpoints.next_if(|(size, _)| *size <= upto) {
            let roots = walk
                .frontier
                .as_ref()
                .filter(|_| size == walk.walked)
                .and_then(|f| Some((f.root(size, false)?, f.root(size, true))));
            self.check_checkpoint(walk, size, &body, Roots::Known(roots));
        }
    }

    fn check_checkpoint(&mut self, walk: &mut Walk, size: u64, text: &[u8], roots: Roots) {
        self.report.checkpoints_checked += 1;
        self.orphans_below(walk, size);
        let body = match CheckpointBody::parse(text) {
            Ok(body) => Some(body),
            Err(e) => {
                self.at_checkpoint(ProblemKind::CheckpointMalformed, size, e.to_string());
                None
            }
        };
        if let Some(body) = &body {
            if body.to_text().as_bytes() != text {
                let message = "the body is not in canonical form".to_string();
                self.at_checkpoint(ProblemKind::CheckpointMalformed, size, message);
            }
            if body.size != size {
                let message = format!("stored under size {size}, but its body says {}", body.size);
                self.at_checkpoint(ProblemKind::CheckpointMalformed, size, message);
            }
            walk.origins.push((size, body.origin.clone()));
            match roots {
                Roots::BeyondTree(tree_size) => {
                    let message = format!("the tree has only {tree_size} leaves");
                    self.at_checkpoint(ProblemKind::CheckpointBeyondTree, size, message);
                }
                Roots::Known(Some((computed, stored))) if body.root != computed => {
                    // Agreeing with the stored hashes above a leaf already
                    // reported bad, it is that leaf which changed.
                    let explained = stored == Some(body.root)
                        && self.report.first_bad_leaf.is_some_and(|leaf| leaf < size);
                    if !explained {
                        let message = format!(
                            "its root is {}, but the stored leaves give {}",
                            hex::encode(body.root),
                            hex::encode(computed)
                        );
                        self.at_checkpoint(ProblemKind::CheckpointRoot, size, message);
                    }
                }
                Roots::Known(_) => {}
            }
        }
        while let Some(((_, key_id), line)) = walk.signatures.next_if(|((s, _), _)| *s == size) {
            self.check_signature(size, key_id, &line, body.as_ref());
        }
    }

    /// Signatures stored for sizes below `size` that have no checkpoint.
    fn orphans_below(&mut self, walk: &mut Walk, size: u64) {
        while let Some(((orphan, key_id), _)) = walk.signatures.next_if(|((s, _), _)| *s < size) {
            self.orphan(orphan, key_id);
        }
    }

    /// After the last leaf: the checkpoint at the tree size, and whatever is
    /// stored beyond the tree.
    fn finish_walk(&mut self, walk: &mut Walk, size: u64) {
        self.checkpoints_upto(walk, size);
        if walk.frontier.is_some() {
            let mut extra = 0u64;
            let mut first = None;
            while let Some((index, _)) = walk.hashes.next_if(|_| true) {
                extra += 1;
                first.get_or_insert(index);
            }
            if let Some(first) = first {
                let message = format!(
                    "{extra} stored hashes beyond the {} a tree of {size} leaves has, the first at index {first}",
                    merkle::stored_hash_count(size)
                );
                self.general(ProblemKind::HashUnexpected, message);
            }
        }
        while let Some((beyond, body)) = walk.checkpoints.next_if(|_| true) {
            self.check_checkpoint(walk, beyond, &body, Roots::BeyondTree(size));
        }
        while let Some(((orphan, key_id), _)) = walk.signatures.next_if(|_| true) {
            self.orphan(orphan, key_id);
        }
        for reason in walk.bad_chunks.take() {
            let message = format!("{reason}: skipped, its hashes are missing");
            self.general(ProblemKind::Unreadable, message);
        }
        self.report_cursor(&walk.entries);
        self.report_cursor(&walk.hashes);
        self.report_cursor(&walk.checkpoints);
        self.report_cursor(&walk.signatures);
    }

    /// All checkpoints name one origin; the most common is taken as the log's.
    fn check_origins(&mut self, origins: &[(u64, String)]) {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, origin) in origins {
            *counts.entry(origin).or_default() += 1;
        }
        let Some(log_origin) = origins
            .iter()
            .map(|(_, o)| o.as_str())
            .max_by_key(|o| counts[o])
        else {
            return;
        };
        self.report.origin = Some(log_origin.to_string());
        for (size, origin) in origins {
            if origin != log_origin {
                let message =
                    format!("names origin {origin:?}, the other checkpoints {log_origin:?}");
                self.at_checkpoint(ProblemKind::CheckpointOrigin, *size, message);
            }
        }
    }
}

/// What a checkpoint's root can be compared with.
enum Roots {
    /// The roots at its size recomputed from the leaves and from the stored
    /// hashes (`None` if a stored one is missing); `None` if the tree below
    /// it cannot be recomputed.
    Known(Option<(Hash, Option<Hash>)>),
    /// Its size is beyond the tree of this many leaves.
    BeyondTree(u64),
}
