//! The faults, and the schedule drawn from a seed. The schedule names
//! roles (the leader, a follower, any node), which are resolved to node ids
//! when the fault is injected; the same seed and length give the same
//! schedule, so a failing run can be replayed.
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// The leader cut from both followers; clients still reach it.
    PartitionLeader,
    /// A follower cut from everything, clients included.
    IsolateFollower,
    /// Packets from one node to another dropped, the reverse path intact.
    OneWayLink,
    /// A link between the leader and a follower going down and up.
    FlappingLink,
    /// A node's outgoing traffic limited to a few hundred kbit/s.
    SlowLink,
    /// A node dropping a share of its packets both ways.
    LossyLink,
    /// SIGSTOP of the leader, then SIGCONT.
    PauseLeader,
    PauseFollower,
    /// kill -9 of a node, fsck of its files while it is down, restart.
    Kill,
    /// A follower killed, its data directory deleted, started empty; the
    /// leader must restore it.
    WipeFollower,
    /// A follower killed, removed from the membership, wiped, started
    /// empty, added as a learner and promoted to voter again.
    WipeAndReadd,
    /// A node's disk filled below its free-space floor (or to the last
    /// byte), then freed.
    DiskFull,
}

pub const KINDS: [Kind; 12] = [
    Kind::PartitionLeader,
    Kind::IsolateFollower,
    Kind::OneWayLink,
    Kind::FlappingLink,
    Kind::SlowLink,
    Kind::LossyLink,
    Kind::PauseLeader,
    Kind::PauseFollower,
    Kind::Kill,
    Kind::WipeFollower,
    Kind::WipeAndReadd,
    Kind::DiskFull,
];

/// Time between the end of one fault's recovery and the next fault.
const GAP_MS: std::ops::RangeInclusive<u64> = 500..=2_000;
/// How long a fault is held before it is healed.
const HOLD_MS: std::ops::RangeInclusive<u64> = 2_000..=7_000;

/// One fault of the schedule.
#[derive(Clone, Debug)]
pub struct Planned {
    pub kind: Kind,
    pub gap_ms: u64,
    pub hold_ms: u64,
    /// Chooses the target among the nodes the role allows, and the
    /// fault's parameters (rate, loss, variant): drawn with the schedule so
    /// that a replay makes the same choices.
    pub pick: u64,
}

/// The schedule for a run of about `seconds`: every kind once in a random
/// order first, so even a short run meets each, then kinds at random.
/// Recovery and the slower faults take time of their own, so the run
/// stops taking faults from it when its time is up.
pub fn schedule(seed: u64, seconds: u64, allowed: &[Kind]) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut kinds = allowed.to_vec();
    kinds.shuffle(&mut rng);
    let mut plan = Vec::new();
    let mut planned_ms = 0;
    let mut i = 0;
    while planned_ms < seconds * 1000 || i < allowed.len() {
        let kind = if i < kinds.len() {
            kinds[i]
        } else {
            allowed[rng.gen_range(0..allowed.len())]
        };
        let f = Planned {
            kind,
            gap_ms: rng.gen_range(GAP_MS),
            hold_ms: rng.gen_range(HOLD_MS),
            pick: rng.gen(),
        };
        planned_ms += f.gap_ms + f.hold_ms;
        plan.push(f);
        i += 1;
    }
    plan
}
