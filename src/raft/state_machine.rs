//! The Raft state machine: applies committed commands to the
//! [`LedgerStore`], builds and installs snapshots.
//!
//! # Crash semantics
//! Every `apply` call is one store transaction that also records the last
//! applied log id and membership, so after a restart the applied state and the
//! ledger agree, and openraft re-applies anything after it from the Raft log
//! (whose committed id is saved). Apply does not fsync; building a snapshot
//! does, before openraft may purge the log behind it.
//!
//! # Validation
//! Every command is checked here and in the store as it is applied, on
//! every replica, whatever path it took into the log (the API, `Raft/Forward`,
//! a faulty leader): batches meet the API's rules and limits, cosignatures
//! must come from voters or replicated witness keys. A refused command
//! changes nothing and answers `OpResult::Refused` with the reason. The
//! checks read only the command, the membership and the store, never a
//! clock or local configuration, so every replica decides alike.
//!
//! # Snapshots
//! A snapshot is a file under `snapshots/` written by
//! [`LedgerStore::export_snapshot`]; `current.json` names the newest one and
//! its Raft metadata. Older files are removed once a newer one is recorded.
//! Installing one checks its metadata against openraft's and its voter
//! signatures against its own membership before anything is written.
//! Transfers and builds in progress are `*.tmp` files, removed at start-up:
//! one left over was declined or interrupted.
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::{Command, TypeConfig};
use crate::ledger::checkpoint::SignatureLine;
use crate::storage::ledger_store::{LedgerStore, Op, OpResult, StateMeta};

type LogId = openraft::alias::LogIdOf<TypeConfig>;
type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotFile>;

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// A snapshot's bytes on disk.
#[derive(Debug)]
pub struct SnapshotFile {
    pub path: PathBuf,
    pub file: std::fs::File,
}

/// What readers learn after each apply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub tree_size: u64,
    /// Raft log index of the last applied entry.
    pub log_index: u64,
}

#[derive(Serialize, Deserialize)]
struct CurrentSnapshot {
    meta: SnapshotMeta,
    file: String,
}

/// The state machine of one node. Cloning shares the same store.
#[derive(Clone)]
pub struct StateMachine {
    store: Arc<LedgerStore>,
    snapshot_dir: PathBuf,
    applied: watch::Sender<Applied>,
    /// Sizes of checkpoints cut by applied commands, for the local signer.
    new_checkpoints: mpsc::UnboundedSender<u64>,
    /// Size of the checkpoint that last got a voter signature applied, for
    /// the witness submitter: a checkpoint may just have reached its quorum.
    voter_signed: watch::Sender<u64>,
}

impl StateMachine {
    /// Opens the state machine over `store`; snapshots live in `snapshot_dir`.
    /// Returns the receiver of newly cut checkpoint sizes.
    pub fn open(
        store: Arc<LedgerStore>,
        snapshot_dir: &Path,
    ) -> io::Result<(Self, mpsc::UnboundedReceiver<u64>)> {
        std::fs::create_dir_all(snapshot_dir)?;
        remove_leftover_transfers(snapshot_dir)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let meta = store.meta().map_err(io_err)?;
        let applied: Option<LogId> = decode_opt(&meta.applied)?;
        let sm = Self {
            store,
            snapshot_dir: snapshot_dir.to_path_buf(),
            applied: watch::Sender::new(Applied {
                tree_size: meta.tree_size,
                log_index: applied.map_or(0, |id| id.index),
            }),
            new_checkpoints: tx,
            voter_signed: watch::Sender::new(0),
        };
        Ok((sm, rx))
    }

    pub fn store(&self) -> &Arc<LedgerStore> {
        &self.store
    }

    /// Watches the tree size and applied index.
    pub fn subscribe(&self) -> watch::Receiver<Applied> {
        self.applied.subscribe()
    }

    /// Watches the size of the checkpoint that last got a voter signature.
    pub fn subscribe_voter_signed(&self) -> watch::Receiver<u64> {
        self.voter_signed.subscribe()
    }

    /// The last applied membership.
    pub fn membership(&self) -> io::Result<StoredMembership> {
        let meta = self.store.meta().map_err(io_err)?;
        Ok(decode_opt(&meta.membership)?.unwrap_or_default())
    }

    fn current_path(&self) -> PathBuf {
        self.snapshot_dir.join("current.json")
    }

    fn read_current(&self) -> io::Result<Option<CurrentSnapshot>> {
        match std::fs::read(self.current_path()) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(io_err),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Records `file` as the current snapshot and removes older files.
    fn set_current(&self, meta: &SnapshotMeta, file: &str) -> io::Result<()> {
        let current = CurrentSnapshot {
            meta: meta.clone(),
            file: file.to_string(),
        };
        crate::storage::write_atomic(
            &self.current_path(),
            &serde_json::to_vec(&current).map_err(io_err)?,
        )?;
        for entry in std::fs::read_dir(&self.snapshot_dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".snap") && name != file {
                let _ = std::fs::remove_file(self.snapshot_dir.join(name.as_ref()));
            }
        }
        Ok(())
    }

    fn publish(&self, tree_size: u64, log_index: u64) {
        self.applied.send_replace(Applied {
            tree_size,
            log_index,
        });
    }
}

/// The verifier keys of the voters in a membership as [`StateMachine`] records
/// it in the ledger metadata, as (node id, key); voters without a key are left
/// out. For `ironlog fsck`, which reads a stopped node's files and has no Raft
/// of its own, so the encoding stays this module's business.
pub fn voter_verifier_keys(membership: &[u8]) -> io::Result<Vec<(super::NodeId, String)>> {
    let membership: StoredMembership = serde_json::from_slice(membership).map_err(io_err)?;
    Ok(membership
        .voter_ids()
        .filter_map(|id| {
            let key = &membership.get_node(&id)?.verifier_key;
            (!key.is_empty()).then(|| (id, key.clone()))
        })
        .collect())
}

/// Removes snapshot transfers (`incoming-*.tmp`) and builds
/// (`building-*.tmp`) a previous run left behind: at start-up none is in
/// progress, so each was declined or interrupted and would otherwise stay
/// on disk for good.
fn remove_leftover_transfers(snapshot_dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(snapshot_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let leftover = name.ends_with(".tmp")
            && (name.starts_with("incoming-") || name.starts_with("building-"));
        if leftover && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

fn decode_opt<T: serde::de::DeserializeOwned>(blob: &Option<Vec<u8>>) -> io::Result<Option<T>> {
    match blob {
        None => Ok(None),
        Some(b) => serde_json::from_slice(b).map(Some).map_err(io_err),
    }
}

fn snapshot_name(last: &Option<LogId>) -> String {
    let (term, index) = last
        .as_ref()
        .map_or((0, 0), |id| (id.leader_id.term, id.index));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{term:020}-{index:020}-{nanos}.snap")
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let meta = self.store.meta().map_err(io_err)?;
        Ok((
            decode_opt(&meta.applied)?,
            decode_opt(&meta.membership)?.unwrap_or_default(),
        ))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut membership: Option<StoredMembership> = None;
        let mut current_membership = self.membership()?;
        let mut ops = Vec::new();
        let mut responders = Vec::new();
        let mut last: Option<LogId> = None;
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            last = Some(entry.log_id);
            let op = match entry.payload {
                EntryPayload::Blank => Op::Nothing,
                EntryPayload::Membership(m) => {
                    let stored = StoredMembership::new(Some(entry.log_id), m);
                    current_membership = stored.clone();
                    membership = Some(stored);
                    Op::Nothing
                }
                EntryPayload::Normal(cmd) => command_op(cmd, &current_membership),
            };
            ops.push(op);
            responders.push(responder);
        }
        let Some(last) = last else {
            return Ok(());
        };
        let applied = serde_json::to_vec(&Some(last)).map_err(io_err)?;
        let membership = match &membership {
            Some(m) => Some(serde_json::to_vec(m).map_err(io_err)?),
            None => None,
        };
        let voter_signed = ops
            .iter()
            .filter_map(|op| match op {
                Op::Cosign { size, .. } => Some(*size),
                _ => None,
            })
            .max();
        let store = self.store.clone();
        let results =
            tokio::task::spawn_blocking(move || store.apply(&ops, Some(applied), membership))
                .await
                .map_err(io_err)?
                .map_err(io_err)?;
        let tree_size = self.store.tree_size().map_err(io_err)?;
        self.publish(tree_size, last.index);
        if let Some(size) = voter_signed {
            self.voter_signed.send_replace(size);
        }
        for (result, responder) in results.into_iter().zip(responders) {
            if let OpResult::Checkpointed { size: Some(size) } = result {
                // The signer may have stopped during shutdown.
                let _ = self.new_checkpoints.send(size);
            }
            if let Some(r) = responder {
                r.send(result);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotFile,
    ) -> Result<(), io::Error> {
        let store = self.store.clone();
        let path = snapshot.path.clone();
        let expected = meta.clone();
        let state = tokio::task::spawn_blocking(move || {
            store.import_snapshot(&path, |state| snapshot_voter_keys(state, &expected))
        })
        .await
        .map_err(io_err)?
        .map_err(io_err)?;
        let applied: Option<LogId> = decode_opt(&state.applied)?;
        let name = snapshot_name(&meta.last_log_id);
        std::fs::rename(&snapshot.path, self.snapshot_dir.join(&name))?;
        self.set_current(meta, &name)?;
        self.publish(state.tree_size, applied.map_or(0, |id| id.index));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let Some(current) = self.read_current()? else {
            return Ok(None);
        };
        let path = self.snapshot_dir.join(&current.file);
        let file = std::fs::File::open(&path)?;
        Ok(Some(Snapshot {
            meta: current.meta,
            snapshot: SnapshotFile { path, file },
        }))
    }
}

/// Checks a snapshot's own metadata against what openraft says it is, before
/// the store writes anything, and returns the verifier keys of the voters of
/// its membership, which its voter signatures must verify with.
fn snapshot_voter_keys(state: &StateMeta, expected: &SnapshotMeta) -> Result<Vec<String>, String> {
    let applied: Option<LogId> = decode_opt(&state.applied).map_err(|e| e.to_string())?;
    if applied != expected.last_log_id {
        return Err(format!(
            "snapshot holds state applied to {applied:?}, but its metadata says {:?}",
            expected.last_log_id
        ));
    }
    let membership: StoredMembership = decode_opt(&state.membership)
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    if membership != expected.last_membership {
        return Err(format!(
            "snapshot holds membership {membership:?}, but its metadata says {:?}",
            expected.last_membership
        ));
    }
    let Some(blob) = &state.membership else {
        return Ok(Vec::new());
    };
    let keys = voter_verifier_keys(blob).map_err(|e| e.to_string())?;
    Ok(keys.into_iter().map(|(_, key)| key).collect())
}

/// Maps a command to its store operation; checks that need the membership
/// (who may cosign, with which key) happen here, identically on every
/// replica. What the store checks itself (batches, signatures over stored
/// checkpoints, the witness set) it checks on every path, tests included.
fn command_op(cmd: Command, membership: &StoredMembership) -> Op {
    match cmd {
        Command::Append {
            events,
            commit_time_unix_nanos,
        } => Op::Append {
            events,
            commit_time_unix_nanos,
        },
        Command::Checkpoint => Op::Checkpoint,
        Command::Cosign {
            node_id,
            size,
            line,
        } => {
            if !membership.voter_ids().any(|id| id == node_id) {
                return refuse(format!("node {node_id} is not a voter"));
            }
            let Some(verifier_key) = membership
                .get_node(&node_id)
                .map(|n| n.verifier_key.clone())
                .filter(|k| !k.is_empty())
            else {
                return refuse(format!("voter {node_id} has no verifier key"));
            };
            match SignatureLine::parse(&line) {
                Ok(line) => Op::Cosign {
                    size,
                    line,
                    verifier_key,
                },
                Err(_) => refuse(format!("voter {node_id}'s signature line is malformed")),
            }
        }
        // The store checks the key is a replicated witness key and
        // re-verifies the line against its checkpoint.
        Command::WitnessCosign {
            size,
            verifier_key,
            line,
        } => match SignatureLine::parse(&line) {
            Ok(line) => Op::WitnessCosign {
                size,
                line,
                verifier_key,
            },
            Err(_) => refuse(format!(
                "witness cosignature line at size {size} is malformed"
            )),
        },
        Command::SetWitnesses { verifier_keys } => Op::SetWitnesses { verifier_keys },
    }
}

fn refuse(reason: String) -> Op {
    Op::Refuse { reason }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let store = self.store.clone();
        let tmp = self
            .snapshot_dir
            .join(format!("building-{}.tmp", std::process::id()));
        let tmp2 = tmp.clone();
        let state = tokio::task::spawn_blocking(move || store.export_snapshot(&tmp2))
            .await
            .map_err(io_err)?
            .map_err(io_err)?;
        let meta = SnapshotMeta {
            last_log_id: decode_opt(&state.applied)?,
            last_membership: decode_opt(&state.membership)?.unwrap_or_default(),
        };
        let name = snapshot_name(&meta.last_log_id);
        let path = self.snapshot_dir.join(&name);
        std::fs::rename(&tmp, &path)?;
        self.set_current(&meta, &name)?;
        let file = std::fs::File::open(&path)?;
        Ok(Snapshot {
            meta,
            snapshot: SnapshotFile { path, file },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ledger::checkpoint::{generate_key, CheckpointBody, NoteSigner};
    use crate::raft::PeerInfo;

    const ORIGIN: &str = "ironlog.test/log";

    /// Node 1 and 2 voters with keys, node 3 a voter without one.
    fn membership() -> (StoredMembership, NoteSigner) {
        let (skey, vkey) = generate_key(ORIGIN).unwrap();
        let (_, vkey2) = generate_key(ORIGIN).unwrap();
        let peer = |key: &str| PeerInfo {
            addr: "127.0.0.1:1".into(),
            verifier_key: key.into(),
            ..PeerInfo::default()
        };
        let nodes = BTreeMap::from([(1, peer(&vkey)), (2, peer(&vkey2)), (3, peer(""))]);
        let stored = StoredMembership::new(None, openraft::Membership::from(nodes));
        (stored, NoteSigner::from_skey(&skey).unwrap())
    }

    fn log_id(index: u64) -> LogId {
        use openraft::vote::RaftLeaderIdExt;
        let leader = openraft::alias::LeaderIdOf::<TypeConfig>::new_committed(3, 1);
        openraft::LogId::new(leader, index)
    }

    fn line(signer: &NoteSigner) -> String {
        let body = CheckpointBody {
            origin: ORIGIN.into(),
            size: 1,
            root: [0; 32],
        };
        signer.sign(&body).unwrap().to_line()
    }

    fn refusal(op: Op) -> String {
        match op {
            Op::Refuse { reason } => reason,
            other => panic!("{other:?} was not refused"),
        }
    }

    #[test]
    fn cosignatures_from_non_voters_or_keyless_voters_are_refused_with_a_reason() {
        let (m, signer) = membership();
        let cosign = |node_id, line: String| Command::Cosign {
            node_id,
            size: 1,
            line,
        };
        assert!(matches!(
            command_op(cosign(1, line(&signer)), &m),
            Op::Cosign { .. }
        ));
        assert!(refusal(command_op(cosign(9, line(&signer)), &m)).contains("node 9 is not a voter"));
        assert!(refusal(command_op(cosign(3, line(&signer)), &m)).contains("no verifier key"));
        assert!(refusal(command_op(cosign(1, "junk".into()), &m)).contains("malformed"));
        let witness = Command::WitnessCosign {
            size: 1,
            verifier_key: String::new(),
            line: "junk".into(),
        };
        assert!(refusal(command_op(witness, &m)).contains("malformed"));
    }

    #[test]
    fn append_and_set_witnesses_reach_the_store_which_validates_them() {
        let (m, _) = membership();
        let keys = vec!["k".to_string()];
        assert!(matches!(
            command_op(Command::SetWitnesses { verifier_keys: keys.clone() }, &m),
            Op::SetWitnesses { verifier_keys } if verifier_keys == keys
        ));
    }

    #[test]
    fn a_snapshot_whose_metadata_disagrees_with_openraft_is_refused() {
        let (m, _) = membership();
        let applied_id = log_id(10);
        let expected = SnapshotMeta {
            last_log_id: Some(applied_id),
            last_membership: m.clone(),
        };
        let state = StateMeta {
            applied: Some(serde_json::to_vec(&Some(applied_id)).unwrap()),
            membership: Some(serde_json::to_vec(&m).unwrap()),
            ..Default::default()
        };
        let keys = snapshot_voter_keys(&state, &expected).unwrap();
        assert_eq!(keys.len(), 2, "the keyless voter has no key to give");

        let other_id = log_id(11);
        let stale = StateMeta {
            applied: Some(serde_json::to_vec(&Some(other_id)).unwrap()),
            ..state.clone()
        };
        assert!(snapshot_voter_keys(&stale, &expected)
            .unwrap_err()
            .contains("applied"));
        let no_members = StateMeta {
            membership: None,
            ..state
        };
        assert!(snapshot_voter_keys(&no_members, &expected)
            .unwrap_err()
            .contains("membership"));
    }

    #[test]
    fn leftover_snapshot_transfers_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LedgerStore::open(&dir.path().join("ledger.redb"), ORIGIN).unwrap());
        let snaps = dir.path().join("snapshots");
        std::fs::create_dir_all(&snaps).unwrap();
        for name in [
            "incoming-7.tmp",
            "building-42.tmp",
            "keep.snap",
            "current.json",
            "other.tmp",
        ] {
            std::fs::write(snaps.join(name), b"x").unwrap();
        }
        StateMachine::open(store, &snaps).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&snaps)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["current.json", "keep.snap", "other.tmp"]);
    }
}
