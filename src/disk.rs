//! Free space in the filesystem of the node's data directory, and the floor
//! (`storage.free_bytes_min`) below which the node stops writing.
//!
//! # Why a floor
//! A full disk fails a redb commit with an I/O error; redb then refuses the
//! database until it is reopened, and openraft makes any storage error fatal.
//! So the node stops writing *before* the disk is full, while the floor still
//! leaves room for what is already under way:
//! - the [proposer](crate::raft::Proposer) measures afresh before every
//!   proposal and refuses it ([`DiskLow`]): client appends, forwarded
//!   appends on a leader, checkpoints, cosignatures, refusal records;
//! - the Raft service (`raft::service`) refuses replication, snapshots
//!   and votes with UNAVAILABLE, so to the leader this node looks
//!   partitioned, and it is caught up once it has room again;
//! - `crate::raft::handover` stops it campaigning and, if it leads, hands
//!   leadership over, so the voters with space keep appending.
//!
//! # State
//! One [`FreeSpace`] per node, shared by all of the above: the last
//! measurement and whether the node is low, re-measured every
//! [`FREE_SPACE_CHECK_INTERVAL_MS`] by [`FreeSpace::watch`]. The node becomes
//! low when free space drops below the floor and stops being low once it is
//! back to the floor plus an eighth ([`resume_bytes`]), so a disk hovering at
//! the floor does not flip it at every measurement. Each change is logged
//! once (a warning going low, an info coming back), never per request.
//!
//! # Crash semantics
//! Nothing here is stored; after a restart the node measures again, and
//! [`FreeSpace::wait_for_room`] keeps a node whose disk is still low from
//! opening (and so from recovering into) its databases until there is room.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::limits::{FREE_BYTES_RESUME_DIVISOR, FREE_SPACE_CHECK_INTERVAL_MS};

/// The config key of the floor, named in every refusal so an operator knows
/// what to change.
pub const FLOOR_KEY: &str = "storage.free_bytes_min";

/// A write refused because the node is below its floor of free space.
/// Clients see it as RESOURCE_EXHAUSTED on the node they called; a node that
/// forwarded to a leader that is low sees UNAVAILABLE (leadership is moving:
/// retry).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "node {node_id} is low on disk space: {free_bytes} bytes free, below the floor of \
     {floor_bytes} bytes ({FLOOR_KEY}); nothing was written. The node resumes by itself \
     once {resume_bytes} bytes are free"
)]
pub struct DiskLow {
    pub node_id: u64,
    pub free_bytes: u64,
    pub floor_bytes: u64,
    pub resume_bytes: u64,
}

/// Why free space could not be measured.
#[derive(Debug, thiserror::Error)]
#[error("cannot measure free space of {dir}: {source}")]
pub struct MeasureError {
    pub dir: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Free bytes at which a node that is low resumes: the floor plus an eighth.
pub fn resume_bytes(floor_bytes: u64) -> u64 {
    floor_bytes.saturating_add(floor_bytes / FREE_BYTES_RESUME_DIVISOR)
}

/// Whether a node is low after measuring `free_bytes`, given whether it was:
/// it goes low below the floor and comes back at [`resume_bytes`]. A floor of
/// 0 turns the guard off.
pub fn is_low(was_low: bool, free_bytes: u64, floor_bytes: u64) -> bool {
    if floor_bytes == 0 {
        return false;
    }
    if was_low {
        free_bytes < resume_bytes(floor_bytes)
    } else {
        free_bytes < floor_bytes
    }
}

/// Bytes an unprivileged writer may still use in the filesystem holding
/// `dir` (`f_bavail`: root's reserved blocks do not count, so a node run as
/// root stops as early as one run as its own user).
pub fn free_bytes(dir: &Path) -> Result<u64, MeasureError> {
    let stat = rustix::fs::statvfs(dir).map_err(|e| MeasureError {
        dir: dir.to_path_buf(),
        source: e.into(),
    })?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// The node's shared view of its free space; cheap to clone.
#[derive(Clone)]
pub struct FreeSpace {
    shared: Arc<Shared>,
}

struct Shared {
    node_id: u64,
    dir: PathBuf,
    floor_bytes: u64,
    /// The last measurement, for the refusal message.
    free_bytes: AtomicU64,
    /// Whether the node is low. A watch rather than an atomic: the handover
    /// task waits for changes, and deciding a change inside the watch's
    /// lock lets exactly one of several concurrent measurements log it.
    low: watch::Sender<bool>,
    /// Whether the last measurement failed, so a failing `statvfs` is
    /// logged once rather than every interval.
    measure_failing: AtomicBool,
}

impl FreeSpace {
    /// A view of `dir`'s filesystem against `floor_bytes`, not yet measured
    /// (not low until a measurement says so).
    pub fn new(node_id: u64, dir: &Path, floor_bytes: u64) -> Self {
        Self {
            shared: Arc::new(Shared {
                node_id,
                dir: dir.to_path_buf(),
                floor_bytes,
                free_bytes: AtomicU64::new(u64::MAX),
                low: watch::Sender::new(false),
                measure_failing: AtomicBool::new(false),
            }),
        }
    }

    pub fn floor_bytes(&self) -> u64 {
        self.shared.floor_bytes
    }

    /// Whether the node is low, as last measured (no system call).
    pub fn is_low(&self) -> bool {
        *self.shared.low.borrow()
    }

    /// Changes of [`FreeSpace::is_low`].
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.shared.low.subscribe()
    }

    /// The refusal for a write, if the node is low as last measured.
    pub fn refusal(&self) -> Option<DiskLow> {
        self.is_low().then(|| self.low_error())
    }

    /// Measures now and refuses a write if the node is low: the check right
    /// before a proposal. A failed measurement keeps the last state.
    pub fn check(&self) -> Result<(), DiskLow> {
        let _ = self.measure();
        match self.refusal() {
            Some(low) => Err(low),
            None => Ok(()),
        }
    }

    fn low_error(&self) -> DiskLow {
        DiskLow {
            node_id: self.shared.node_id,
            free_bytes: self.shared.free_bytes.load(Ordering::Relaxed),
            floor_bytes: self.shared.floor_bytes,
            resume_bytes: resume_bytes(self.shared.floor_bytes),
        }
    }

    /// Measures the data directory's free space and updates the view;
    /// returns whether the node is low. A failure is logged once, when
    /// measuring starts to fail, and leaves the state as it was.
    pub fn measure(&self) -> Result<bool, MeasureError> {
        let s = &self.shared;
        match free_bytes(&s.dir) {
            Ok(free) => {
                if s.measure_failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(dir = %s.dir.display(), "free space can be measured again");
                }
                Ok(self.record(free))
            }
            Err(e) => {
                if !s.measure_failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "keeping the last free-space state");
                }
                Err(e)
            }
        }
    }

    /// Takes one measurement into the view and logs a change of state;
    /// returns whether the node is low.
    fn record(&self, free: u64) -> bool {
        let s = &self.shared;
        s.free_bytes.store(free, Ordering::Relaxed);
        let mut low_now = false;
        let changed = s.low.send_if_modified(|low| {
            low_now = is_low(*low, free, s.floor_bytes);
            let changed = low_now != *low;
            *low = low_now;
            changed
        });
        if changed && low_now {
            tracing::warn!(
                node = s.node_id,
                dir = %s.dir.display(),
                free_bytes = free,
                floor_bytes = s.floor_bytes,
                "disk space below {FLOOR_KEY}: refusing writes, replication and votes \
                 (a leader hands over) until {} bytes are free",
                resume_bytes(s.floor_bytes)
            );
        } else if changed {
            tracing::info!(
                node = s.node_id,
                dir = %s.dir.display(),
                free_bytes = free,
                floor_bytes = s.floor_bytes,
                "disk space back above {FLOOR_KEY}: accepting writes, replication and votes again"
            );
        }
        low_now
    }

    /// Measures every [`FREE_SPACE_CHECK_INTERVAL_MS`] until `stop` is set.
    pub async fn watch(self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_millis(FREE_SPACE_CHECK_INTERVAL_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let _ = self.measure();
        }
    }

    /// At start-up, before any database is opened: returns at once if the
    /// node has room, otherwise says so once and waits, measuring every
    /// [`FREE_SPACE_CHECK_INTERVAL_MS`], until free space is back to
    /// [`resume_bytes`]. Opening redb may write (recovery after a crash), and
    /// a node that cannot store what it is sent is of no use to the cluster,
    /// so a node restarted onto a full disk waits rather than starting half
    /// able to work. A failed measurement is an error: the directory is not
    /// usable.
    pub async fn wait_for_room(&self) -> Result<(), MeasureError> {
        let s = &self.shared;
        let mut free = free_bytes(&s.dir)?;
        if !is_low(false, free, s.floor_bytes) {
            self.record(free);
            return Ok(());
        }
        tracing::warn!(
            node = s.node_id,
            dir = %s.dir.display(),
            free_bytes = free,
            floor_bytes = s.floor_bytes,
            "disk space below {FLOOR_KEY}: not opening storage until {} bytes are free \
             (nothing has been opened or written)",
            resume_bytes(s.floor_bytes)
        );
        let mut tick = tokio::time::interval(Duration::from_millis(FREE_SPACE_CHECK_INTERVAL_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while is_low(true, free, s.floor_bytes) {
            tick.tick().await;
            free = free_bytes(&s.dir)?;
        }
        tracing::info!(
            node = s.node_id,
            free_bytes = free,
            "disk space back above {FLOOR_KEY}: opening storage"
        );
        self.record(free);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn low_below_the_floor_and_back_only_an_eighth_above_it() {
        let floor = 8 * MIB;
        assert_eq!(resume_bytes(floor), 9 * MIB);
        assert!(!is_low(false, floor, floor), "at the floor is not below it");
        assert!(is_low(false, floor - 1, floor));
        // Once low, the floor itself is not enough to resume...
        assert!(is_low(true, floor, floor));
        assert!(is_low(true, 9 * MIB - 1, floor));
        // ...the floor plus an eighth is.
        assert!(!is_low(true, 9 * MIB, floor));
    }

    #[test]
    fn a_zero_floor_turns_the_guard_off() {
        assert!(!is_low(false, 0, 0));
        assert!(!is_low(true, 0, 0));
    }

    #[test]
    fn the_resume_point_never_overflows() {
        assert_eq!(resume_bytes(u64::MAX), u64::MAX);
    }

    #[test]
    fn the_view_follows_measurements_with_hysteresis_and_reports_changes() {
        let space = FreeSpace::new(3, Path::new("/nonexistent"), 8 * MIB);
        let mut changes = space.subscribe();
        assert!(space.refusal().is_none(), "not low before any measurement");
        assert!(!space.record(20 * MIB));
        assert!(!changes.has_changed().unwrap());
        assert!(space.record(3 * MIB));
        assert!(changes.has_changed().unwrap());
        assert!(*changes.borrow_and_update());
        // Back to the floor: still low, and no change reported.
        assert!(space.record(8 * MIB));
        assert!(!changes.has_changed().unwrap());
        let low = space.refusal().expect("low");
        assert_eq!(
            low,
            DiskLow {
                node_id: 3,
                free_bytes: 8 * MIB,
                floor_bytes: 8 * MIB,
                resume_bytes: 9 * MIB,
            }
        );
        assert!(!space.record(9 * MIB));
        assert!(changes.has_changed().unwrap());
        assert!(!*changes.borrow_and_update());
        assert!(space.refusal().is_none());
    }

    #[test]
    fn the_refusal_names_the_node_the_numbers_and_the_config_key() {
        let text = DiskLow {
            node_id: 2,
            free_bytes: 1000,
            floor_bytes: 8388608,
            resume_bytes: 9437184,
        }
        .to_string();
        for part in [
            "node 2",
            "1000 bytes free",
            "8388608",
            "storage.free_bytes_min",
            "nothing was written",
            "9437184",
        ] {
            assert!(text.contains(part), "{part:?} missing from {text:?}");
        }
    }

    #[test]
    fn a_failed_measurement_keeps_the_state() {
        let space = FreeSpace::new(1, Path::new("/nonexistent/ironlog"), 8 * MIB);
        space.record(MIB);
        assert!(space.measure().is_err());
        assert!(space.is_low());
        assert!(space.check().is_err(), "still refused");
    }

    #[tokio::test]
    async fn start_up_waits_while_the_disk_is_below_the_floor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let roomy = FreeSpace::new(1, dir.path(), 1);
        roomy.wait_for_room().await.expect("room");
        // No disk has u64::MAX bytes free: this one waits.
        let full = FreeSpace::new(1, dir.path(), u64::MAX);
        let waited = tokio::time::timeout(
            Duration::from_millis(3 * FREE_SPACE_CHECK_INTERVAL_MS),
            full.wait_for_room(),
        )
        .await;
        assert!(waited.is_err(), "returned without room");
        let gone = FreeSpace::new(1, &dir.path().join("missing"), 1);
        assert!(gone.wait_for_room().await.is_err(), "an unusable dir fails");
    }

    #[test]
    fn a_real_directory_can_be_measured() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(free_bytes(dir.path()).expect("statvfs") > 0);
        let space = FreeSpace::new(1, dir.path(), 1);
        assert_eq!(space.measure().ok(), Some(false));
        assert!(space.check().is_ok());
    }
}
