//! The network the nodes run in: one network namespace per node, each with
//! a veth link to a bridge in the harness's namespace, where the clients
//! run. Faults are iptables rules and tc qdiscs inside a node's namespace,
//! so they act on that node's traffic alone, and healing is flushing them.
//!
//! ```text
//!   harness (clients)  10.213.X.254 ── bridge ─┬─ veth ── ns n1: 10.213.X.1
//!                                               ├─ veth ── ns n2: 10.213.X.2
//!                                               └─ veth ── ns n3: 10.213.X.3
//! ```
use std::process::Command;

/// Names are made unique per run (the process id) so that a harness left
/// behind by a killed run does not collide with the next one.
pub struct Net {
    tag: String,
    subnet: u8,
    nodes: u64,
}

/// Runs a command that must succeed; its stderr goes into the error.
pub fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Net {
    /// Creates the bridge and one namespace per node.
    pub fn create(nodes: u64) -> Result<Net, String> {
        let pid = std::process::id();
        let net = Net {
            tag: format!("ic{}", pid % 100_000),
            // A /24 per run, so two runs on one machine do not share one.
            subnet: (pid % 200) as u8 + 20,
            nodes,
        };
        let bridge = net.bridge();
        let host_ip = format!("{}/24", net.host_ip());
        run("ip", &["link", "add", &bridge, "type", "bridge"])?;
        run("ip", &["addr", "add", &host_ip, "dev", &bridge])?;
        run("ip", &["link", "set", &bridge, "up"])?;
        for id in 1..=nodes {
            let ns = net.ns(id);
            let host_end = format!("{}v{id}", net.tag);
            let node_end = net.dev(id);
            let ip = format!("{}/24", net.ip(id));
            run("ip", &["netns", "add", &ns])?;
            run(
                "ip",
                &[
                    "link", "add", &host_end, "type", "veth", "peer", "name", &node_end,
                ],
            )?;
            run("ip", &["link", "set", &node_end, "netns", &ns])?;
            run("ip", &["link", "set", &host_end, "master", &bridge, "up"])?;
            run("ip", &["-n", &ns, "addr", "add", &ip, "dev", &node_end])?;
            run("ip", &["-n", &ns, "link", "set", &node_end, "up"])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    /// The namespace node `id` runs in.
    pub fn ns(&self, id: u64) -> String {
        format!("{}n{id}", self.tag)
    }

    /// The node's end of its veth link, inside its namespace.
    fn dev(&self, id: u64) -> String {
        format!("{}p{id}", self.tag)
    }

    pub fn ip(&self, id: u64) -> String {
        format!("10.213.{}.{id}", self.subnet)
    }

    pub fn host_ip(&self) -> String {
        format!("10.213.{}.254", self.subnet)
    }

    fn iptables(&self, id: u64, rule: &[&str]) -> Result<(), String> {
        let ns = self.ns(id);
        let mut args = vec!["netns", "exec", &ns, "iptables", "-w"];
        args.extend_from_slice(rule);
        run("ip", &args).map(drop)
    }

    /// Drops every packet between node `a` and node `b`, both ways.
    pub fn cut(&self, a: u64, b: u64) -> Result<(), String> {
        self.cut_one_way(a, b)?;
        self.cut_one_way(b, a)
    }

    /// Drops packets from node `from` to node `to`; the reverse path stays.
    pub fn cut_one_way(&self, from: u64, to: u64) -> Result<(), String> {
        let to_ip = self.ip(to);
        self.iptables(from, &["-A", "OUTPUT", "-d", &to_ip, "-j", "DROP"])
    }

    /// Restores the link between `a` and `b` (both directions), leaving
    /// other rules in place.
    pub fn uncut(&self, a: u64, b: u64) -> Result<(), String> {
        for (from, to) in [(a, b), (b, a)] {
            let to_ip = self.ip(to);
            // Deleting a rule that is not there fails; that is fine.
            while self
                .iptables(from, &["-D", "OUTPUT", "-d", &to_ip, "-j", "DROP"])
                .is_ok()
            {}
        }
        Ok(())
    }

    /// Cuts node `id` off from everything, clients included.
    pub fn isolate(&self, id: u64) -> Result<(), String> {
        let dev = self.dev(id);
        self.iptables(id, &["-A", "INPUT", "-i", &dev, "-j", "DROP"])?;
        self.iptables(id, &["-A", "OUTPUT", "-o", &dev, "-j", "DROP"])
    }

    /// Drops each packet to and from node `id` with probability `p`.
    pub fn lossy(&self, id: u64, p: f64) -> Result<(), String> {
        let p = format!("{p:.2}");
        let dev = self.dev(id);
        for (chain, dir) in [("INPUT", "-i"), ("OUTPUT", "-o")] {
            self.iptables(
                id,
                &[
                    "-A",
                    chain,
                    dir,
                    &dev,
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    &p,
                    "-j",
                    "DROP",
                ],
            )?;
        }
        Ok(())
    }

    /// Limits what node `id` sends to `kbit` per second (a token bucket:
    /// this kernel has no netem, so there is no added delay but queueing).
    pub fn slow(&self, id: u64, kbit: u64) -> Result<(), String> {
        let ns = self.ns(id);
        let dev = self.dev(id);
        let rate = format!("{kbit}kbit");
        run(
            "ip",
            &[
                "netns", "exec", &ns, "tc", "qdisc", "add", "dev", &dev, "root", "tbf", "rate",
                &rate, "burst", "32kbit", "latency", "400ms",
            ],
        )
        .map(drop)
    }

    /// Removes every rule and qdisc from node `id`'s namespace.
    fn heal(&self, id: u64) -> Result<(), String> {
        self.iptables(id, &["-F"])?;
        let ns = self.ns(id);
        let dev = self.dev(id);
        // No qdisc to delete is not an error here.
        let _ = run(
            "ip",
            &[
                "netns", "exec", &ns, "tc", "qdisc", "del", "dev", &dev, "root",
            ],
        );
        Ok(())
    }

    /// Heals every namespace: a cut leaves a rule on each side, so
    /// healing only the node a fault was aimed at would leave half of it.
    pub fn heal_all(&self) -> Result<(), String> {
        (1..=self.nodes).try_for_each(|id| self.heal(id))
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for id in 1..=self.nodes {
            let _ = run("ip", &["netns", "del", &self.ns(id)]);
        }
        let _ = run("ip", &["link", "del", &self.bridge()]);
    }
}
