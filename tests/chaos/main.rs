//! The fault harness: three real `ironlog node` processes, each in its own
//! network namespace, under appending clients, while faults drawn from a
//! printed seed are injected one after another: partitions, one-way,
//! flapping, slow and lossy links, SIGSTOP pauses, kill -9, wiped nodes,
//! full disks. It starts with a crash loop: kill -9 at random moments of
//! heavy appending and snapshot building, fsck of the killed node's files
//! each time. Then it heals everything and checks what an audit ledger
//! promises (see [`check`]), printing each figure.
//!
//! `cargo test --release` runs a short run (about two minutes); for a long
//! one, or to replay a failure: `scripts/chaos.sh --seconds 1200 --seed S`.
//! It needs root (namespaces, tmpfs mounts) and iptables.
//!
//! Its own `main` (harness = false in Cargo.toml), so it takes arguments:
//! `--seconds N` of faults, `--seed S`, `--kills K` in the crash loop,
//! `--keep` to keep the run's directory (it is always kept on failure),
//! `--only Kind,Kind` to inject only some kinds, `--disk-mb N` for each
//! node's tmpfs.
mod check;
mod cluster;
mod fault;
mod load;
mod net;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ironlog::proto;
use ironlog::proto::admin_client::AdminClient;
use ironlog::proto::ledger_client::LedgerClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use cluster::{Cluster, FREE_BYTES_MIN};
use fault::{Kind, Planned};
use load::{Record, Stop};

const NODES: u64 = 3;
const CLIENTS: u64 = 4;
const DEFAULT_SECONDS: u64 = 90;
const DEFAULT_KILLS: u64 = 10;
/// How long the crash loop waits for a snapshot build to kill inside.
const SNAPSHOT_WAIT_MS: u64 = 5_000;
/// Each node's tmpfs, by default: room for a short run's log and two
/// snapshots (`--disk-mb` for long runs; tmpfs takes memory only as used).
const DISK_MB: u64 = 1024;
/// Appends must succeed again within this long after a fault is healed.
/// Elections take about a second here; a node restarted with an empty or
/// full disk needs a few more.
const RECOVERY_MS_MAX: u64 = 15_000;
/// A wiped follower must hold the leader's log again within this long.
const RESTORE_MS_MAX: u64 = 30_000;
const LEADER_WAIT_MS: u64 = 30_000;
/// Membership changes wait for a commit; they get this long per call.
const ADMIN_RPC_MS: u64 = 15_000;
/// How long the run keeps appending after the last heal, so recovery is
/// measured with clients still at work.
const TAIL_MS: u64 = 3_000;
/// How long the clients get to finish their batches in flight.
const CLIENTS_FINISH_MS: u64 = 30_000;
const CONVERGE_MS: u64 = 90_000;
const SUPERVISE_MS: u64 = 200;
/// The client id of the harness's own probes (an append to a node with a
/// full disk, which must be refused).
const PROBE_CLIENT: u64 = 999;

struct Args {
    /// Only these kinds of fault, e.g. to chase one bug: `--only Kill,DiskFull`.
    only: Option<Vec<Kind>>,
    seconds: u64,
    seed: u64,
    kills: u64,
    keep: bool,
    disk_mb: u64,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        only: None,
        seconds: DEFAULT_SECONDS,
        seed: rand::random::<u32>() as u64,
        kills: DEFAULT_KILLS,
        keep: false,
        disk_mb: DISK_MB,
    };
    let mut it = std::env::args().skip(1);
    let number = |name: &str, v: Option<String>| -> Result<u64, String> {
        v.as_deref()
            .ok_or(format!("{name} needs a value"))?
            .parse()
            .map_err(|e| format!("{name}: {e}"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => args.seconds = number("--seconds", it.next())?,
            "--seed" => args.seed = number("--seed", it.next())?,
            "--kills" => args.kills = number("--kills", it.next())?,
            "--keep" => args.keep = true,
            "--disk-mb" => args.disk_mb = number("--disk-mb", it.next())?,
            "--only" => {
                let list = it.next().ok_or("--only needs a list of fault kinds")?;
                let kinds = list
                    .split(',')
                    .map(|name| {
                        fault::KINDS
                            .into_iter()
                            .find(|k| format!("{k:?}").eq_ignore_ascii_case(name.trim()))
                            .ok_or(format!(
                                "--only: no fault kind {name}; kinds: {:?}",
                                fault::KINDS
                            ))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                args.only = Some(kinds);
            }
            // What `cargo test` may pass to every test binary.
            "--nocapture" | "--quiet" | "-q" | "--show-output" => {}
            s if s.starts_with("--test-threads") || s.starts_with("--color") => {}
            // A test-name filter that does not name this harness skips it.
            s if !s.starts_with('-') => {
                if !"chaos".contains(s) {
                    return Ok(None);
                }
            }
            s => return Err(format!("unknown argument {s}")),
        }
    }
    Ok(Some(args))
}

fn main() {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("chaos: skipped by the test-name filter");
            return;
        }
        Err(e) => {
            eprintln!("chaos: {e}\nusage: chaos [--seconds N] [--seed S] [--kills K] [--keep]");
            std::process::exit(2);
        }
    };
    let uid = net::run("id", &["-u"]).unwrap_or_default();
    if uid.trim() != "0" {
        eprintln!(
            "chaos: the fault harness needs root (network namespaces, tmpfs mounts, iptables)"
        );
        std::process::exit(1);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let passed = runtime.block_on(run(&args));
    std::process::exit(if passed { 0 } else { 1 });
}

/// One run's state and what it has seen so far.
struct Run {
    c: Cluster,
    record: Arc<Mutex<Record>>,
    started: Instant,
    /// Every fault as it was injected, with its resolved targets.
    journal: Vec<String>,
    injected: BTreeMap<Kind, u64>,
    /// (fault, ms from its heal to the next acknowledged append).
    recoveries: Vec<(String, u64)>,
    fsck_runs: u64,
    crash_kills: u64,
    probes: u64,
    failures: Vec<String>,
}

impl Run {
    fn say(&mut self, line: String) {
        let at = self.started.elapsed().as_secs_f64();
        println!("[chaos {at:7.1}s] {line}");
        self.journal.push(format!("{at:7.1}s {line}"));
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Sleeps `ms`, restarting exited nodes meanwhile.
    async fn hold(&mut self, ms: u64) {
        let until = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < until {
            for line in self.c.supervise() {
                self.say(line);
            }
            let left = until.saturating_duration_since(Instant::now());
            tokio::time::sleep(left.min(Duration::from_millis(SUPERVISE_MS))).await;
        }
    }

    /// Says `what` was injected, holds it for `hold` ms and heals every
    /// namespace; returns `what`, for the recovery measure.
    async fn held(&mut self, what: String, hold: u64) -> Result<String, String> {
        self.say(what.clone());
        self.hold(hold).await;
        self.c.net.heal_all()?;
        Ok(what)
    }

    /// Waits for an append acknowledged after `healed_ms`; records how long
    /// it took, and a failure past [`RECOVERY_MS_MAX`].
    async fn recovery(&mut self, what: String, healed_ms: u64) {
        let deadline = healed_ms + RECOVERY_MS_MAX;
        loop {
            let first_after = {
                let r = self.record.lock().unwrap();
                let times = &r.ack_times_ms;
                // Pushed in the order the acknowledgements arrived.
                times
                    .get(times.partition_point(|&t| t <= healed_ms))
                    .copied()
            };
            if let Some(at) = first_after {
                let took = at - healed_ms;
                self.say(format!("appends resumed {took} ms after healing {what}"));
                self.recoveries.push((what, took));
                return;
            }
            if self.now_ms() > deadline {
                self.failures.push(format!(
                    "no append succeeded within {RECOVERY_MS_MAX} ms after healing {what}"
                ));
                self.say(format!(
                    "appends did NOT resume within {RECOVERY_MS_MAX} ms after {what}"
                ));
                self.recoveries.push((what, RECOVERY_MS_MAX));
                return;
            }
            for line in self.c.supervise() {
                self.say(line);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn fsck(&mut self, id: u64, when: &str) {
        self.fsck_runs += 1;
        match self.c.fsck(id) {
            Ok(_) => self.say(format!("fsck of node {id} {when}: clean")),
            Err(e) => {
                self.say(format!("fsck of node {id} {when}: FAILED"));
                self.failures.push(e);
            }
        }
    }

    async fn leader(&mut self) -> Result<u64, String> {
        self.c
            .wait_leader(Duration::from_millis(LEADER_WAIT_MS))
            .await
    }

    /// The crash loop: kill -9 at random moments, fsck, restart. Every
    /// other kill waits for the victim to be writing a snapshot, so kills
    /// land inside snapshot builds and not only between them.
    async fn crash_loop(&mut self, kills: u64, rng: &mut StdRng) -> Result<(), String> {
        for k in 1..=kills {
            self.hold(rng.gen_range(200..=1_500)).await;
            let victim = rng.gen_range(1..=NODES);
            let mut moment = "at a random moment";
            if k.is_multiple_of(2) {
                let until = Instant::now() + Duration::from_millis(SNAPSHOT_WAIT_MS);
                while Instant::now() < until {
                    if self.c.building_snapshot(victim) {
                        moment = "while it was writing a snapshot";
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            self.c.kill(victim);
            self.crash_kills += 1;
            self.say(format!(
                "crash loop {k}/{kills}: kill -9 node {victim} {moment}"
            ));
            self.fsck(victim, "after kill -9");
            self.c.start(victim)?;
            let healed = self.now_ms();
            self.leader().await?;
            self.recovery(format!("crash-loop kill {k} of node {victim}"), healed)
                .await;
        }
        Ok(())
    }

    /// Injects one fault, holds it, heals it, and waits for appends.
    async fn fault(&mut self, f: &Planned) -> Result<(), String> {
        let leader = self.leader().await?;
        let ids = self.c.ids();
        let followers: Vec<u64> = ids.iter().copied().filter(|&id| id != leader).collect();
        let follower = followers[(f.pick % followers.len() as u64) as usize];
        // Half the faults that may hit any node hit the leader.
        let any = if f.pick & (1 << 20) == 0 {
            leader
        } else {
            follower
        };
        let variant = f.pick >> 32;
        *self.injected.entry(f.kind).or_default() += 1;
        let hold = f.hold_ms;
        let what = match f.kind {
            Kind::PartitionLeader => {
                for &p in &followers {
                    self.c.net.cut(leader, p)?;
                }
                self.held(
                    format!("partition of leader {leader} from {followers:?} ({hold} ms)"),
                    hold,
                )
                .await?
            }
            Kind::IsolateFollower => {
                self.c.net.isolate(follower)?;
                self.held(
                    format!("isolation of follower {follower} ({hold} ms)"),
                    hold,
                )
                .await?
            }
            Kind::OneWayLink => {
                let (from, to) = if variant.is_multiple_of(2) {
                    (leader, follower)
                } else {
                    (follower, leader)
                };
                self.c.net.cut_one_way(from, to)?;
                self.held(
                    format!("one-way link: {from} -> {to} dropped ({hold} ms)"),
                    hold,
                )
                .await?
            }
            Kind::FlappingLink => {
                let what = format!("flapping link {leader} <-> {follower} ({hold} ms)");
                self.say(what.clone());
                let mut flaps = StdRng::seed_from_u64(f.pick);
                let until = Instant::now() + Duration::from_millis(hold);
                let mut down = false;
                let mut toggles = 0;
                while Instant::now() < until {
                    if down {
                        self.c.net.uncut(leader, follower)?;
                    } else {
                        self.c.net.cut(leader, follower)?;
                    }
                    down = !down;
                    toggles += 1;
                    self.hold(flaps.gen_range(200..=700)).await;
                }
                self.c.net.heal_all()?;
                format!("{what}, {toggles} toggles")
            }
            Kind::SlowLink => {
                let kbit = 128 + (variant % 7) * 128;
                self.c.net.slow(any, kbit)?;
                self.held(
                    format!("slow link: node {any} sends at {kbit} kbit/s ({hold} ms)"),
                    hold,
                )
                .await?
            }
            Kind::LossyLink => {
                let p = 0.1 + (variant % 4) as f64 * 0.1;
                self.c.net.lossy(any, p)?;
                self.held(
                    format!("lossy link: node {any} drops {:.0}% ({hold} ms)", p * 100.0),
                    hold,
                )
                .await?
            }
            Kind::PauseLeader | Kind::PauseFollower => {
                let victim = if f.kind == Kind::PauseLeader {
                    leader
                } else {
                    follower
                };
                let role = if victim == leader {
                    "leader"
                } else {
                    "follower"
                };
                self.c.pause(victim);
                let what = format!("SIGSTOP of {role} {victim} ({hold} ms)");
                self.say(what.clone());
                self.hold(hold).await;
                self.c.resume(victim);
                what
            }
            Kind::Kill => {
                let role = if any == leader { "leader" } else { "follower" };
                self.c.kill(any);
                let what = format!("kill -9 of {role} {any}, down {hold} ms");
                self.say(what.clone());
                self.fsck(any, "after kill -9");
                self.hold(hold).await;
                self.c.start(any)?;
                what
            }
            Kind::WipeFollower => {
                self.c.kill(follower);
                self.c.wipe(follower)?;
                let what = format!("follower {follower} killed and wiped, restarted empty");
                self.say(what.clone());
                self.hold(hold.min(2_000)).await;
                self.c.start(follower)?;
                self.restored(follower, "the wiped follower").await;
                what
            }
            Kind::WipeAndReadd => self.wipe_and_readd(follower, hold).await?,
            Kind::DiskFull => {
                let leave = if variant.is_multiple_of(2) {
                    FREE_BYTES_MIN / 2
                } else {
                    0
                };
                let role = if any == leader { "leader" } else { "follower" };
                let filled = self.c.fill_disk(any, leave)?;
                let what = format!(
                    "full disk on {role} {any}: {filled} bytes filled, {leave} left ({hold} ms)"
                );
                self.say(what.clone());
                self.hold(hold.min(1_000)).await;
                self.probe_refused(any).await;
                self.hold(hold.saturating_sub(1_000)).await;
                self.c.free_disk(any);
                what
            }
        };
        let healed = self.now_ms();
        self.recovery(what, healed).await;
        Ok(())
    }

    /// An append sent to node `id`, whose disk is full, must be refused
    /// with a clear error (or find the node down, if it stopped itself).
    async fn probe_refused(&mut self, id: u64) {
        self.probes += 1;
        let seq = self.probes;
        let dialer = self.c.dialer();
        let Some(channel) = dialer.connect(id).await else {
            self.say(format!("probe: node {id} (full disk) does not answer"));
            self.record
                .lock()
                .unwrap()
                .unacked
                .insert(load::key(PROBE_CLIENT, seq));
            return;
        };
        let got = LedgerClient::new(channel)
            .append(proto::AppendRequest {
                events: vec![load::event(PROBE_CLIENT, seq)],
                wait_checkpoint: false,
            })
            .await;
        match got {
            Ok(r) => {
                let r = r.into_inner();
                self.failures.push(format!(
                    "node {id}, its disk full, acknowledged an append at {:?}",
                    r.indices
                ));
                self.record
                    .lock()
                    .unwrap()
                    .acked
                    .insert(load::key(PROBE_CLIENT, seq), r.indices[0]);
            }
            Err(s) => {
                self.say(format!(
                    "probe: node {id} (full disk) refused an append: {:?}: {}",
                    s.code(),
                    s.message()
                ));
                let clear = matches!(
                    s.code(),
                    tonic::Code::ResourceExhausted | tonic::Code::Unavailable
                );
                if !clear {
                    self.failures
                        .push(format!("node {id} with a full disk answered {s}"));
                }
                self.record
                    .lock()
                    .unwrap()
                    .unacked
                    .insert(load::key(PROBE_CLIENT, seq));
            }
        }
    }

    /// Waits until node `id` holds at least the tree the leader had when
    /// the wait began.
    async fn restored(&mut self, id: u64, what: &str) {
        let from = Instant::now();
        let mut target = None;
        while from.elapsed() < Duration::from_millis(RESTORE_MS_MAX) {
            if target.is_none() {
                if let Some(l) = self.c.leader().await.filter(|&l| l != id) {
                    target = self.c.status(l).await.map(|s| s.tree_size);
                }
            }
            let size = self.c.status(id).await.map(|s| s.tree_size);
            if let (Some(t), Some(s)) = (target, size) {
                if s >= t {
                    let ms = from.elapsed().as_millis();
                    self.say(format!(
                        "{what} (node {id}) holds the log again ({s} leaves) after {ms} ms"
                    ));
                    return;
                }
            }
            self.hold(100).await;
        }
        let size = self.c.status(id).await.map(|s| (s.tree_size, s.role));
        self.failures.push(format!(
            "{what} (node {id}) was not restored within {RESTORE_MS_MAX} ms: (size, role) {size:?}, leader's size {target:?}"
        ));
        self.say(format!("{what} (node {id}) NOT restored"));
    }

    /// Kill, remove from the membership, wipe, start empty, add as a
    /// learner, promote: how an operator replaces a node's disk.
    async fn wipe_and_readd(&mut self, id: u64, hold: u64) -> Result<String, String> {
        self.c.kill(id);
        let others: Vec<u64> = self.c.ids().into_iter().filter(|&n| n != id).collect();
        self.say(format!("node {id} killed; removing it from the voters"));
        self.set_voters(others).await?;
        self.c.wipe(id)?;
        self.hold(hold.min(2_000)).await;
        self.c.start(id)?;
        let vkey = self.c.vkeys[(id - 1) as usize].clone();
        let (addr, client_addr) = (self.c.peer_addr(id), self.c.client_addr(id));
        self.admin(|mut a| {
            let request = proto::AddLearnerRequest {
                id,
                addr: addr.clone(),
                verifier_key: vkey.clone(),
                client_addr: client_addr.clone(),
            };
            async move { a.add_learner(request).await.map(drop) }
        })
        .await?;
        self.restored(id, "the re-added node").await;
        self.set_voters(self.c.ids()).await?;
        let what = format!("node {id} wiped, removed, re-added as learner and promoted");
        self.say(what.clone());
        Ok(what)
    }

    /// Makes `voters` the voters, dropping any other node.
    async fn set_voters(&mut self, voters: Vec<u64>) -> Result<(), String> {
        self.admin(|mut a| {
            let voters = voters.clone();
            async move {
                a.change_membership(proto::ChangeMembershipRequest {
                    voters,
                    retain: false,
                })
                .await
                .map(drop)
            }
        })
        .await
    }

    /// Calls the leader's Admin service until the call succeeds.
    async fn admin<F, Fut>(&mut self, call: F) -> Result<(), String>
    where
        F: Fn(AdminClient<tonic::transport::Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<(), tonic::Status>>,
    {
        let deadline = Instant::now() + Duration::from_millis(LEADER_WAIT_MS);
        let mut last = String::new();
        while Instant::now() < deadline {
            let leader = self.leader().await?;
            let dialer = self.c.dialer();
            if let Some(ch) = dialer
                .connect_for(leader, Duration::from_millis(ADMIN_RPC_MS))
                .await
            {
                match call(AdminClient::new(ch)).await {
                    Ok(()) => return Ok(()),
                    Err(s) => last = s.to_string(),
                }
            }
            self.hold(200).await;
        }
        Err(format!(
            "membership change failed for {LEADER_WAIT_MS} ms: {last}"
        ))
    }

    /// Heals every fault and starts every node.
    async fn heal_all(&mut self) -> Result<(), String> {
        self.c.net.heal_all()?;
        for id in self.c.ids() {
            self.c.resume(id);
            self.c.free_disk(id);
            if !self.c.running(id) && !self.c.nodes[(id - 1) as usize].wanted {
                self.c.start(id)?;
            }
        }
        Ok(())
    }
}

async fn run(args: &Args) -> bool {
    let dir = tempfile::Builder::new()
        .prefix("ironlog-chaos-")
        .tempdir()
        .expect("temp dir");
    let kinds = args.only.clone().unwrap_or_else(|| fault::KINDS.to_vec());
    let plan = fault::schedule(args.seed, args.seconds, &kinds);
    println!(
        "chaos: seed {} ({} s of faults, {} kills in the crash loop); replay with {}",
        args.seed,
        args.seconds,
        args.kills,
        replay(args)
    );
    println!("chaos: run directory {}", dir.path().display());
    let setup = net::Net::create(NODES)
        .and_then(|net| Cluster::create(dir.path(), net, NODES, args.disk_mb));
    let c = match setup {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chaos: set-up failed: {e}");
            let _ = dir.keep();
            return false;
        }
    };
    let mut r = Run {
        c,
        record: Arc::new(Mutex::new(Record::default())),
        started: Instant::now(),
        journal: Vec::new(),
        injected: BTreeMap::new(),
        recoveries: Vec::new(),
        fsck_runs: 0,
        crash_kills: 0,
        probes: 0,
        failures: Vec::new(),
    };
    let outcome = drive(&mut r, args, &plan).await;
    if let Err(e) = outcome {
        r.failures.push(e);
    }
    let passed = r.failures.is_empty();
    report(&r, args, passed);
    if !passed {
        println!("{}", r.c.log_tails());
    }
    if !passed || args.keep {
        drop(r);
        println!("chaos: kept {}", dir.keep().display());
    }
    passed
}

async fn drive(r: &mut Run, args: &Args, plan: &[Planned]) -> Result<(), String> {
    for id in r.c.ids() {
        r.c.start(id)?;
    }
    let leader = r.leader().await?;
    r.say(format!(
        "cluster up, leader {leader}; {CLIENTS} clients appending"
    ));
    let stop = Arc::new(Stop::default());
    let mut clients = Vec::new();
    for client in 1..=CLIENTS {
        clients.push(tokio::spawn(load::appender(
            client,
            args.seed,
            r.c.dialer(),
            r.record.clone(),
            stop.clone(),
            r.started,
        )));
    }
    let reader = tokio::spawn(load::checkpoint_reader(
        args.seed,
        r.c.dialer(),
        r.record.clone(),
        stop.clone(),
    ));

    let mut rng = StdRng::seed_from_u64(args.seed ^ 0x6b696c6c);
    r.crash_loop(args.kills, &mut rng).await?;
    let faults_from = Instant::now();
    let kinds = args.only.as_ref().map_or(fault::KINDS.len(), Vec::len);
    for (i, f) in plan.iter().enumerate() {
        // The first round (every kind once) always runs, however long it
        // takes, so that even a short run meets every kind of fault.
        let first_round = i < kinds;
        if !first_round && faults_from.elapsed() >= Duration::from_secs(args.seconds) {
            break;
        }
        r.hold(f.gap_ms).await;
        r.say(format!("fault {} of the schedule: {:?}", i + 1, f.kind));
        r.fault(f).await?;
    }
    r.say("healing everything".into());
    r.heal_all().await?;
    let healed = r.now_ms();
    r.leader().await?;
    r.hold(TAIL_MS).await;
    r.recovery("the final heal".into(), healed).await;

    stop.appending.store(true, Ordering::Relaxed);
    let finish = Instant::now() + Duration::from_millis(CLIENTS_FINISH_MS);
    while clients.iter().any(|h| !h.is_finished()) && Instant::now() < finish {
        r.hold(100).await;
    }
    stop.retrying.store(true, Ordering::Relaxed);
    for h in clients {
        let _ = h.await;
    }
    let _ = reader.await;

    // The clients are done: the record is the run's alone now.
    let record = std::mem::take(&mut *r.record.lock().unwrap());
    r.failures.extend(record.violations.iter().cloned());
    let acked_size = record.acked.values().max().map_or(0, |&i| i + 1);
    r.say(format!(
        "clients stopped: {} events acknowledged in {} batches; converging on >= {acked_size}",
        record.acked.len(),
        record.batches
    ));
    let (size, root) =
        check::converge(&mut r.c, acked_size, Duration::from_millis(CONVERGE_MS)).await?;
    r.say(format!(
        "all nodes at size {size}, root {}",
        hex::encode(&root)
    ));
    let mut figures = check::Figures::default();
    check::check_logs(&r.c, &record, size, &mut figures, &mut r.failures).await;
    check::check_checkpoints(&r.c, &record, size, &root, &mut figures, &mut r.failures).await;
    for id in r.c.ids() {
        r.c.stop(id);
    }
    for id in r.c.ids() {
        r.fsck(id, "after the run");
    }
    // A voter refuses to sign when its own tree no longer extends one it
    // signed (its leaves or hashes changed under it): the checkpoints may
    // still look fine at the end (the node may since have been restored
    // from another), so that refusal itself fails the run. It also refuses,
    // rightly, when it cannot first record what it signs because its disk is
    // full (the DiskFull fault): signing without the record could let it
    // sign two trees of one size after a restart. That refusal is the
    // signer keeping its promise, not a broken one.
    for (id, line) in r.c.log_lines_with("refusing to sign checkpoint") {
        if line.contains("signing record") && line.contains("No space left on device") {
            r.say(format!(
                "node {id}'s signer refused while its disk was full (expected): {line}"
            ));
            continue;
        }
        r.failures
            .push(format!("node {id}'s signer refused a checkpoint: {line}"));
    }
    r.say(format!("{figures:?}"));
    print_figures(r, &record, &figures);
    Ok(())
}

fn print_figures(r: &Run, record: &Record, f: &check::Figures) {
    let longest_recovery = r.recoveries.iter().max_by_key(|(_, ms)| *ms);
    let longest_gap = record
        .ack_times_ms
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap_or(0);
    println!("\n== chaos figures");
    println!(
        "faults injected: {}, after {} kills in the crash loop",
        r.injected.values().sum::<u64>(),
        r.crash_kills
    );
    for (kind, n) in &r.injected {
        println!("  {kind:?}: {n}");
    }
    println!(
        "events acknowledged: {} in {} batches ({} answered as deduplicated retries)",
        f.acked, record.batches, record.deduplicated_batches
    );
    println!(
        "unacknowledged at the end: {} (in the log once: {})",
        record.unacked.len(),
        f.unacked_present
    );
    println!(
        "lost: {}  moved: {}  duplicated: {}  not sent by a client: {}",
        f.lost, f.moved, f.duplicated, f.foreign
    );
    println!(
        "final tree size: {}; divergent nodes: {}",
        f.size, f.divergent_nodes
    );
    println!(
        "checkpoints seen by clients: {}; bad signatures: {}; inconsistent with the final: {}; forks: {}",
        f.checkpoints_seen, f.checkpoints_bad_signature, f.checkpoints_inconsistent, f.forks
    );
    println!("fsck runs: {} (every failure is listed below)", r.fsck_runs);
    if let Some((what, ms)) = longest_recovery {
        println!("longest unavailability after a heal: {ms} ms (bound {RECOVERY_MS_MAX} ms), after {what}");
    }
    println!("longest gap between acknowledgements during the run: {longest_gap} ms");
    println!(
        "supervisor restarts of nodes that exited on their own: {}",
        r.c.restarts
    );
    println!("client errors by code: {:?}", record.errors);
    for (code, samples) in &record.error_samples {
        println!("  {code}: {samples:?}");
    }
}

/// The command that replays this run's schedule.
fn replay(args: &Args) -> String {
    let only = args.only.as_ref().map_or(String::new(), |kinds| {
        let names: Vec<String> = kinds.iter().map(|k| format!("{k:?}")).collect();
        format!(" --only {}", names.join(","))
    });
    format!(
        "scripts/chaos.sh --seed {} --seconds {} --kills {}{only}",
        args.seed, args.seconds, args.kills
    )
}

fn report(r: &Run, args: &Args, passed: bool) {
    if passed {
        println!("\nchaos: PASSED (seed {})", args.seed);
        return;
    }
    println!(
        "\nchaos: FAILED (seed {}); {} problems:",
        args.seed,
        r.failures.len()
    );
    for f in r.failures.iter().take(40) {
        println!("  - {f}");
    }
    println!("\nthe run, as injected:");
    for line in &r.journal {
        println!("  {line}");
    }
    println!("\nreplay: {}", replay(args));
}
