//! `cargo xtask chaos`: agents in network namespaces under a seeded schedule of faults,
//! several at once, and invariants checked from outside the agents (each host's addresses,
//! seen through netlink). A violation prints the seed, the faults around it and the command
//! that replays the run; each run also writes a timeline picture.

use std::{
    fmt::Write as _,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use ha_tests::{
    Daemon, Topology, VrrpConf,
    capture::{AddrEvent, AddrMonitor, Ns, monotonic_ns},
    daemons::master_down_interval,
};
use nix::sys::signal::Signal;

mod db;

const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 200);
const INTERVAL: Duration = Duration::from_millis(100);
const PRIORITIES: [u8; 3] = [150, 120, 100];
/// Two holders for at most this long is a handover (the new master's first advert on its way
/// to the old one), not two masters.
const HANDOVER: Duration = Duration::from_millis(300);
/// Scheduling slack on a loaded 2-core machine, above the protocol's own timers.
const SLACK: Duration = Duration::from_millis(1000);

/// A small deterministic generator (SplitMix64): a seed replays the same schedule whatever
/// the version of any crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let span = (high - low).as_millis() as u64;
        low + Duration::from_millis(self.below(span + 1))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// SIGKILL of the agent's process group, restarted when the fault ends.
    Kill,
    /// SIGSTOP for less than Master_Down_Interval, then SIGCONT.
    StopShort,
    /// SIGSTOP for several Master_Down_Intervals.
    StopLong,
    /// The host's cable pulled.
    LinkDown,
    /// The agents' bridge ports isolated from each other (the observer still reaches all).
    Partition,
    /// netem loss, delay, jitter, reordering and duplication on the host's link.
    Netem,
    /// A one-sided reload with an edit (priority, an extra VIP, the interval), undone later.
    Reload,
    /// The node's check script fails, hangs past its timeout, or flaps (two runs failed,
    /// two passed).
    Check,
    /// The node's notify scripts fail or hang past the notify timeout.
    Notify,
    /// CLOCK_REALTIME stepped forward or back (an NTP step; the whole machine's clock),
    /// stepped back by as much when the fault ends.
    ClockStep,
    /// `--db`: the node's database server killed (SIGKILL), started again when it ends.
    DbKill,
    /// `--db`: the two database hosts cannot reach each other's unicast addresses
    /// (blackhole routes): replication and the agents' peer checks are cut, VRRP's
    /// multicast still flows.
    DbPartition,
    /// `--db`: `ha-agent switchover` on the node holding the VIP (planned; nothing lost).
    Switchover,
    /// `--witness`: the node cannot reach the etcd members (blackhole routes); the agents
    /// still hear each other.
    EtcdCut,
    /// `--witness`: two of the three etcd members stopped (SIGSTOP): no quorum.
    EtcdQuorum,
}

/// The database's faults, beside [`KINDS`] with `--db`.
const DB_KINDS: [Kind; 3] = [Kind::DbKill, Kind::DbPartition, Kind::Switchover];

/// The witness's faults, beside [`KINDS`] with `--witness`.
const WITNESS_KINDS: [Kind; 2] = [Kind::EtcdCut, Kind::EtcdQuorum];

/// The lease TTL of the agents' `etcd_witness` with `--witness`.
const LEASE_TTL: Duration = Duration::from_secs(2);

const KINDS: [Kind; 10] = [
    Kind::Kill,
    Kind::StopShort,
    Kind::StopLong,
    Kind::LinkDown,
    Kind::Partition,
    Kind::Netem,
    Kind::Reload,
    Kind::Check,
    Kind::Notify,
    Kind::ClockStep,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Kill => "kill -9",
            Kind::StopShort => "SIGSTOP < MDI",
            Kind::StopLong => "SIGSTOP > MDI",
            Kind::LinkDown => "link down",
            Kind::Partition => "partition",
            Kind::Netem => "netem",
            Kind::Reload => "one-sided reload",
            Kind::Check => "check script",
            Kind::Notify => "notify script",
            Kind::ClockStep => "clock step",
            Kind::DbKill => "database killed",
            Kind::DbPartition => "database partition",
            Kind::Switchover => "switchover",
            Kind::EtcdCut => "cut from etcd",
            Kind::EtcdQuorum => "etcd quorum lost",
        }
    }

    /// Whether the agents may stop hearing each other while it lasts (then two holders are
    /// what VRRP does).
    fn impairs(self) -> bool {
        !matches!(
            self,
            Kind::Reload
                | Kind::Check
                | Kind::Notify
                | Kind::ClockStep
                | Kind::DbKill
                | Kind::DbPartition
                | Kind::Switchover
                | Kind::EtcdCut
                | Kind::EtcdQuorum
        )
    }

    /// With the witness, whether two holders are still excused while it lasts: a killed or
    /// stopped agent cannot remove the VIP it holds once its lease has gone to the peer.
    fn leaves_a_vip_behind(self) -> bool {
        matches!(self, Kind::Kill | Kind::StopLong)
    }

    /// Whether it may leave no node fit to hold the VIP (a server down makes its node
    /// unfit; both down, no holder is right; without etcd, nobody may take the key).
    fn unfits(self) -> bool {
        self.impairs() || matches!(self, Kind::DbKill | Kind::EtcdCut | Kind::EtcdQuorum)
    }

    /// Whether a failover while it lasts may lose what the master acknowledged last: the
    /// peer could not be fenced, or the master's binlog had not reached it (asynchronous
    /// replication).
    fn may_lose_writes(self) -> bool {
        matches!(
            self,
            Kind::Kill
                | Kind::StopLong
                | Kind::LinkDown
                | Kind::Partition
                | Kind::Netem
                | Kind::DbKill
                | Kind::DbPartition
        )
    }

    /// Whether it strikes one node (a partition or a clock step strikes them all).
    fn per_node(self) -> bool {
        !matches!(
            self,
            Kind::Partition
                | Kind::ClockStep
                | Kind::DbPartition
                | Kind::Switchover
                | Kind::EtcdQuorum
        )
    }

    fn color(self) -> &'static str {
        match self {
            Kind::Kill => "#d62728",
            Kind::StopShort | Kind::StopLong => "#ff7f0e",
            Kind::LinkDown => "#8c564b",
            Kind::Partition => "#9467bd",
            Kind::Netem => "#7f7f7f",
            Kind::Reload => "#1f77b4",
            Kind::Check => "#2ca02c",
            Kind::Notify => "#bcbd22",
            Kind::ClockStep => "#17becf",
            Kind::DbKill => "#e377c2",
            Kind::DbPartition => "#aec7e8",
            Kind::Switchover => "#98df8a",
            Kind::EtcdCut => "#c5b0d5",
            Kind::EtcdQuorum => "#c49c94",
        }
    }
}

/// One fault as it happened: which node (None: all of them), from when to when.
#[derive(Clone, Debug)]
struct Fault {
    kind: Kind,
    node: Option<usize>,
    detail: String,
    start: Ns,
    end: Ns,
}

/// A fault in force, and when it ends.
struct Active {
    fault: Fault,
    until: Instant,
}

#[derive(Debug)]
pub struct Violation {
    at: Ns,
    what: String,
}

pub struct Options {
    pub seed: u64,
    pub duration: Duration,
    pub agents: usize,
    /// `vrrp_strict` on every agent: the RFC's drop of adverts configured otherwise, to see
    /// the runner catch the two masters of a one-sided reload.
    pub strict: bool,
    /// The database pair, its writer and its faults.
    pub db: bool,
    /// An etcd cluster on three more hosts as every instance's witness, and its faults;
    /// partitions then no longer excuse two holders.
    pub witness: bool,
}

struct Run<'a> {
    t: &'a Topology,
    strict: bool,
    db: Option<db::Pair>,
    witness: Option<ha_tests::etcd::Cluster>,
    /// The clock step in force, in seconds, to be undone.
    clock_step: i64,
    names: Vec<String>,
    agents: Vec<Option<Daemon>>,
    configs: Vec<VrrpConf>,
    binary: &'a Path,
}

impl Run<'_> {
    fn conf_path(&self, node: usize) -> PathBuf {
        self.t
            .dir()
            .join(format!("ha-agent-{}.conf", self.names[node]))
    }

    /// The node holding the VIP, if one does.
    fn holder(&self) -> Option<usize> {
        (0..self.names.len()).find(|&n| self.t.host(&self.names[n]).has_address("eth0", VIP))
    }

    /// The file a node's check and notify scripts read their behaviour from (`ok`, `fail`,
    /// `hang`, `flap`).
    fn mode_file(&self, node: usize, what: &str) -> PathBuf {
        self.t.dir().join(format!("{what}-{}", self.names[node]))
    }

    /// The configuration file's text: keepalived's default checks (every advert's address
    /// list compared), with `vrrp_strict` if asked; a check script (weight -60: a node
    /// whose check fails hands over to the next) and notify scripts the runner can break.
    fn render(&self, node: usize, conf: &VrrpConf) -> String {
        let dir = self.t.dir();
        let script = |name: &str, what: &str| {
            format!(
                "{} {}",
                dir.join(name).display(),
                self.mode_file(node, what).display()
            )
        };
        let mut conf = conf.clone();
        if self.db.is_some() {
            conf.extra
                .push("track_replication {\n        DB1\n    }".to_owned());
            // The writer reaches the database through the VIP: strict mode would refuse it.
            conf.extra.push("accept".to_owned());
        }
        conf.extra.extend([
            "track_script {\n        chk\n    }".to_owned(),
            format!("notify_master \"{}\"", script("notify.sh", "notify")),
            format!("notify_backup \"{}\"", script("notify.sh", "notify")),
        ]);
        let mut check = format!(
            "vrrp_script chk {{\n    script \"{}\"\n    interval 0.2\n    timeout 0.5\n    weight -60\n}}\n",
            script("check.sh", "check")
        );
        if let Some(pair) = &self.db {
            check.push_str(&pair.block(node));
        }
        if let Some(cluster) = &self.witness {
            conf.extra.push("witness W1".to_owned());
            let _ = write!(
                check,
                "etcd_witness W1 {{\n    endpoints {}\n    lease_ttl {}\n}}\n",
                cluster.endpoints(),
                LEASE_TTL.as_secs()
            );
        }
        let text = conf
            .render()
            .replace("    vrrp_skip_check_adv_addr\n", "")
            .replacen("}\nvrrp_instance", &format!("}}\n{check}vrrp_instance"), 1);
        if self.strict {
            text.replacen("global_defs {\n", "global_defs {\n    vrrp_strict\n", 1)
        } else {
            text
        }
    }

    fn start(&mut self, node: usize) {
        let host = self.t.host(&self.names[node]);
        let conf = self.render(node, &self.configs[node]);
        self.agents[node] = Some(Daemon::agent_with(host, self.t.dir(), &conf, self.binary));
    }

    fn reload(&self, node: usize, conf: &VrrpConf) -> Result<()> {
        std::fs::write(self.conf_path(node), self.render(node, conf))?;
        if let Some(agent) = &self.agents[node] {
            agent.process.signal(Signal::SIGHUP);
        }
        Ok(())
    }

    fn apply(&mut self, kind: Kind, node: usize, rng: &mut Rng) -> Result<String> {
        let host = self.t.host(&self.names[node]).clone();
        Ok(match kind {
            Kind::Kill => {
                if let Some(mut agent) = self.agents[node].take() {
                    agent.process.kill_group();
                }
                String::new()
            }
            Kind::StopShort | Kind::StopLong => {
                if let Some(agent) = &self.agents[node] {
                    agent.process.signal(Signal::SIGSTOP);
                }
                String::new()
            }
            Kind::LinkDown => {
                self.t.set_cable(&self.names[node], false);
                String::new()
            }
            Kind::Partition => {
                for name in &self.names {
                    self.t.set_isolated(name, true);
                }
                String::new()
            }
            Kind::Netem => {
                let args = [
                    format!("loss {}%", rng.below(40)),
                    format!("delay {}ms {}ms", rng.below(150), rng.below(50)),
                    format!("reorder {}%", rng.below(30)),
                    format!("duplicate {}%", rng.below(10)),
                ];
                let detail = args.join(" ");
                let mut command = vec!["tc", "qdisc", "replace", "dev", "eth0", "root", "netem"];
                command.extend(detail.split(' '));
                host.sh(&command);
                detail
            }
            Kind::Reload => {
                let base = &self.configs[node];
                let (edited, detail) = match rng.below(3) {
                    0 => {
                        let priority = 90 + rng.below(80) as u8;
                        (
                            VrrpConf {
                                priority,
                                ..base.clone()
                            },
                            format!("priority {priority}"),
                        )
                    }
                    1 => (
                        VrrpConf {
                            vips: vec![VIP.to_string(), "192.168.2.201".into()],
                            ..base.clone()
                        },
                        "an extra VIP".into(),
                    ),
                    _ => (
                        VrrpConf {
                            advert_int: "0.3".into(),
                            ..base.clone()
                        },
                        "advert_int 0.3".into(),
                    ),
                };
                self.reload(node, &edited)?;
                detail
            }
            Kind::Check => {
                let mode = ["fail", "hang", "flap"][rng.below(3) as usize];
                std::fs::write(self.mode_file(node, "check"), mode)?;
                mode.into()
            }
            Kind::Notify => {
                let mode = ["fail", "hang"][rng.below(2) as usize];
                std::fs::write(self.mode_file(node, "notify"), mode)?;
                mode.into()
            }
            Kind::ClockStep => {
                let secs = 1 + rng.below(600) as i64;
                self.clock_step = if rng.below(2) == 0 { secs } else { -secs };
                step_clock(self.clock_step)?;
                format!("{:+} s", self.clock_step)
            }
            Kind::DbKill => {
                if let Some(pair) = &mut self.db {
                    pair.crash(node);
                }
                String::new()
            }
            Kind::DbPartition => {
                self.db_routes("add");
                String::new()
            }
            Kind::EtcdCut => {
                self.etcd_routes(node, "add");
                String::new()
            }
            Kind::EtcdQuorum => {
                self.freeze_etcd(true);
                String::new()
            }
            Kind::Switchover => match (self.holder(), &self.agents) {
                (Some(n), agents) if agents[n].is_some() => {
                    let state = agents[n].as_ref().map(|a| a.state_dir.clone());
                    let out = std::process::Command::new(self.binary)
                        .args(["switchover", "--state-dir"])
                        .args(state)
                        .output()?;
                    format!(
                        "from {}: {}",
                        self.names[n],
                        String::from_utf8_lossy(if out.status.success() {
                            &out.stdout
                        } else {
                            &out.stderr
                        })
                        .trim()
                    )
                }
                _ => "no master to switch over from".into(),
            },
        })
    }

    fn undo(&mut self, kind: Kind, node: usize) -> Result<()> {
        let host = self.t.host(&self.names[node]).clone();
        match kind {
            Kind::Kill => self.start(node),
            Kind::StopShort | Kind::StopLong => {
                if let Some(agent) = &self.agents[node] {
                    agent.process.signal(Signal::SIGCONT);
                }
            }
            Kind::LinkDown => self.t.set_cable(&self.names[node], true),
            Kind::Partition => {
                for name in &self.names {
                    self.t.set_isolated(name, false);
                }
            }
            Kind::Netem => {
                host.sh(&["tc", "qdisc", "del", "dev", "eth0", "root"]);
            }
            Kind::Reload => {
                let conf = self.configs[node].clone();
                self.reload(node, &conf)?;
            }
            Kind::Check => std::fs::write(self.mode_file(node, "check"), "ok")?,
            Kind::Notify => std::fs::write(self.mode_file(node, "notify"), "ok")?,
            Kind::ClockStep => {
                step_clock(-self.clock_step)?;
                self.clock_step = 0;
            }
            Kind::DbKill => {
                if let Some(pair) = &mut self.db {
                    pair.restart(node)?;
                }
            }
            Kind::DbPartition => self.db_routes("del"),
            Kind::Switchover => {}
            Kind::EtcdCut => self.etcd_routes(node, "del"),
            Kind::EtcdQuorum => self.freeze_etcd(false),
        }
        Ok(())
    }

    /// Blackhole routes from `node` to every etcd member, added or deleted.
    fn etcd_routes(&self, node: usize, op: &str) {
        let host = self.t.host(&self.names[node]);
        for ip in self.witness.iter().flat_map(ha_tests::etcd::Cluster::ips) {
            let _ = host.run(&["ip", "route", op, "blackhole", &format!("{ip}/32")]);
        }
    }

    /// Two of the three etcd members stopped (or continued).
    fn freeze_etcd(&self, on: bool) {
        for member in self.witness.iter().flat_map(|c| c.members.iter().skip(1)) {
            member.freeze(on);
        }
    }

    /// Blackhole routes between the database hosts (a and b), added or deleted.
    fn db_routes(&self, op: &str) {
        let (a, b) = (self.t.host(&self.names[0]), self.t.host(&self.names[1]));
        for (from, to) in [(a, b), (b, a)] {
            let dst = format!("{}/32", to.ip);
            let _ = from.run(&["ip", "route", op, "blackhole", &dst]);
        }
    }
}

impl Drop for Run<'_> {
    /// The machine's clock is never left stepped, whatever ended the run.
    fn drop(&mut self) {
        if self.clock_step != 0 {
            let _ = step_clock(-self.clock_step);
        }
    }
}

/// Steps CLOCK_REALTIME by `secs`.
fn step_clock(secs: i64) -> Result<()> {
    ha_tests::capture::step_realtime(secs).context("stepping CLOCK_REALTIME")
}

/// A check script and a notify script whose behaviour a file names: `fail` exits 1, `hang`
/// sleeps past any timeout, `flap` fails two runs in four; anything else exits 0.
const CHECK_SH: &str = "#!/bin/sh\n\
mode=$(cat \"$1\" 2>/dev/null)\n\
case \"$mode\" in\n\
fail) exit 1 ;;\n\
hang) exec sleep 3600 ;;\n\
flap) n=$(cat \"$1.n\" 2>/dev/null || echo 0); echo $((n + 1)) > \"$1.n\"; [ $((n % 4)) -lt 2 ] && exit 1 ;;\n\
esac\n\
exit 0\n";

/// How long one fault lasts.
fn duration(kind: Kind, mdi: Duration, rng: &mut Rng) -> Duration {
    match kind {
        Kind::StopShort => rng.between(mdi / 4, mdi * 3 / 4),
        Kind::StopLong => rng.between(mdi * 2, mdi * 6),
        Kind::Kill => rng.between(Duration::from_millis(200), Duration::from_secs(3)),
        _ => rng.between(Duration::from_millis(300), Duration::from_secs(5)),
    }
}

pub struct Outcome {
    pub report: String,
    pub violations: usize,
    pub dir: PathBuf,
}

pub fn run(binary: &Path, options: &Options) -> Result<Outcome> {
    if !(2..=3).contains(&options.agents) {
        bail!("--agents is 2 or 3");
    }
    if options.db && options.agents != 2 {
        bail!("--db runs with 2 agents (the pair's hosts)");
    }
    let names: Vec<String> = ["a", "b", "c"][..options.agents]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut hosts: Vec<&str> = names.iter().map(String::as_str).collect();
    hosts.push("o");
    const ETCD: [&str; 3] = ["e1", "e2", "e3"];
    if options.witness {
        hosts.extend(ETCD);
    }
    let t = Topology::new(&hosts);
    // The lowest priority's Master_Down_Interval: the slowest takeover there is.
    let mdi = master_down_interval(3, INTERVAL, PRIORITIES[options.agents - 1]);
    let configs: Vec<VrrpConf> = (0..options.agents)
        .map(|i| VrrpConf::v3("BACKUP", PRIORITIES[i], "0.1"))
        .collect();
    for name in ["check.sh", "notify.sh"] {
        let path = t.dir().join(name);
        std::fs::write(&path, CHECK_SH)?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    }
    let pair = if options.db {
        Some(db::Pair::start(&t, binary)?)
    } else {
        None
    };
    let witness = match options.witness {
        true => Some(ha_tests::etcd::Cluster::start(&t, &ETCD)?),
        false => None,
    };
    let mut run = Run {
        t: &t,
        strict: options.strict,
        db: pair,
        witness,
        clock_step: 0,
        agents: (0..options.agents).map(|_| None).collect(),
        names: names.clone(),
        configs,
        binary,
    };
    let monitors = names
        .iter()
        .map(|n| AddrMonitor::start(t.host(n)))
        .collect::<Result<Vec<_>>>()?;
    // netem is a kernel module some kernels lack: without it, no loss or delay faults.
    let probe = t.host(&names[0]).run(&[
        "tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "1ms",
    ]);
    let netem = probe.status.success();
    if netem {
        t.host(&names[0])
            .sh(&["tc", "qdisc", "del", "dev", "eth0", "root"]);
    }
    let db_kinds: &[Kind] = if options.db { &DB_KINDS } else { &[] };
    let witness_kinds: &[Kind] = if options.witness { &WITNESS_KINDS } else { &[] };
    let kinds: Vec<Kind> = KINDS
        .into_iter()
        .chain(db_kinds.iter().copied())
        .chain(witness_kinds.iter().copied())
        .filter(|k| netem || *k != Kind::Netem)
        .collect();
    for node in 0..options.agents {
        run.start(node);
    }
    let started = monotonic_ns();
    let settle = Instant::now() + mdi * 2 + SLACK * 3;
    while Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(pair) = &mut run.db {
        pair.start_traffic(t.host("o"), VIP);
    }
    let mut rng = Rng(options.seed);
    let mut active: Vec<Active> = Vec::new();
    let mut done: Vec<Fault> = Vec::new();
    let mut violations = Vec::new();
    let end = Instant::now() + options.duration;
    let mut next = Instant::now();
    while Instant::now() < end || !active.is_empty() {
        let now = Instant::now();
        // Faults whose time is up end first.
        let (ending, rest): (Vec<Active>, Vec<Active>) =
            active.into_iter().partition(|a| a.until <= now);
        active = rest;
        for mut a in ending {
            // A fault of every node is undone once (its undo covers them all).
            run.undo(a.fault.kind, a.fault.node.unwrap_or(0))?;
            a.fault.end = monotonic_ns();
            done.push(a.fault);
        }
        if now >= next && now < end {
            let kind = kinds[rng.below(kinds.len() as u64) as usize];
            let node = rng.below(options.agents as u64) as usize;
            // One fault of a kind per node at a time (a partition takes every node).
            let busy = active.iter().any(|a| {
                a.fault.kind == kind
                    && (a.fault.node.is_none() || a.fault.node == Some(node) || !kind.per_node())
                    || (matches!(kind, Kind::Kill | Kind::StopShort | Kind::StopLong)
                        && a.fault.node == Some(node)
                        && matches!(a.fault.kind, Kind::Kill | Kind::StopShort | Kind::StopLong))
            });
            if !busy {
                let lasts = duration(kind, mdi, &mut rng);
                let detail = run.apply(kind, node, &mut rng)?;
                active.push(Active {
                    fault: Fault {
                        kind,
                        node: kind.per_node().then_some(node),
                        detail,
                        start: monotonic_ns(),
                        end: 0,
                    },
                    until: Instant::now() + lasts,
                });
            }
            next = now + rng.between(Duration::from_millis(500), Duration::from_secs(4));
        }
        // An agent that is neither killed nor stopped by us must be running.
        for (node, agent) in run.agents.iter_mut().enumerate() {
            if let Some(agent) = agent
                && !agent.process.is_running()
            {
                violations.push(Violation {
                    at: monotonic_ns(),
                    what: format!("the agent on {} exited on its own", names[node]),
                });
                run.agents[node] = None;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Quiet: the pair settles, then must keep exactly one holder.
    let quiet_from = monotonic_ns() + (mdi + SLACK).as_nanos() as Ns;
    std::thread::sleep(mdi + SLACK + Duration::from_secs(2));
    let quiet_to = monotonic_ns();
    let holder = run.holder();
    let db_outcome = run.db.as_mut().map(|pair| pair.finish(holder));
    // A graceful stop leaves no VIP and no process behind.
    for (node, agent) in run.agents.iter_mut().enumerate() {
        if let Some(agent) = agent {
            agent.process.signal(Signal::SIGTERM);
            if agent
                .process
                .wait_timeout(Duration::from_secs(10))
                .is_none()
            {
                violations.push(Violation {
                    at: monotonic_ns(),
                    what: format!("the agent on {} did not stop on SIGTERM", names[node]),
                });
            }
        }
    }
    for name in &names {
        if t.host(name).has_address("eth0", VIP) {
            violations.push(Violation {
                at: monotonic_ns(),
                what: format!("the VIP left on {name} after the agents stopped"),
            });
        }
    }
    let finished = monotonic_ns();
    let holders: Vec<Vec<(Ns, Ns)>> = monitors
        .iter()
        .map(|m| held(&m.events(), started, finished))
        .collect();
    let no_fit_node = db_outcome
        .as_ref()
        .map_or(&[][..], |o| o.both_unfit.as_slice());
    let judge = Judge {
        mdi,
        witness: options.witness,
    };
    violations.extend(check(
        &holders,
        &done,
        judge,
        (quiet_from, quiet_to),
        no_fit_node,
    ));
    if let Some(outcome) = &db_outcome {
        violations.extend(check_db(outcome, &done, judge));
    }
    violations.sort_by_key(|v| v.at);
    let dir = chaos_dir(options);
    std::fs::create_dir_all(&dir)?;
    let mut report = report(options, &done, &holders, &violations, started, mdi);
    if let Some(o) = &db_outcome {
        let _ = writeln!(
            report,
            "database: {} rows acknowledged through the VIP ({} inserts failed and were retried); \
             read_only sampled {} times, both servers writable in {} samples (excused ones \
             included); acknowledged rows missing from the final master's server \
             (excused ones included): {}",
            o.log.acks.len(),
            o.log.failures,
            o.rounds,
            o.both_writable.len(),
            o.lost
                .as_ref()
                .map_or("not judged (no holder at the end)".into(), |l| l
                    .len()
                    .to_string())
        );
        for (node, at) in o.apply_error_at.iter().enumerate() {
            if let Some(at) = at {
                let _ = writeln!(
                    report,
                    "database: the replica on {} stopped on an apply error at {:.3} s (the data \
                     diverged: both sides took writes; its agent holds the node in FAULT until \
                     an operator repairs it)",
                    names[node],
                    (at - started) as f64 / 1e9
                );
            }
        }
        if let Some(at) = o.diverged_at {
            let _ = writeln!(
                report,
                "database: the servers' data diverged at {:.3} s (each holds writes the other \
                 lacks): neither can carry the pair's data until an operator repairs it",
                (at - started) as f64 / 1e9
            );
        }
        let unfit: Ns = o.both_unfit.iter().map(|(s, e)| e - s).sum();
        if unfit > 0 {
            let _ = writeln!(
                report,
                "database: neither server fit to carry the data for {:.1} s in all (no holder \
                 is right then)",
                unfit as f64 / 1e9
            );
        }
    }
    if !netem {
        report.push_str(
            "this kernel has no netem (sch_netem): no loss, delay, reordering or duplication faults\n",
        );
    }
    std::fs::write(dir.join("report.txt"), &report)?;
    if let Some(o) = &db_outcome {
        std::fs::write(dir.join("fitness.txt"), &o.fitness)?;
    }
    std::fs::write(
        dir.join("timeline.svg"),
        svg(&names, &holders, &done, &violations, started, finished),
    )?;
    for name in &names {
        let log = t.dir().join(format!("ha-agent-{name}.log"));
        let _ = std::fs::copy(&log, dir.join(format!("ha-agent-{name}.log")));
    }
    Ok(Outcome {
        report,
        violations: violations.len(),
        dir,
    })
}

fn chaos_dir(options: &Options) -> PathBuf {
    crate::workspace_root().join(format!(
        "target/chaos/seed-{}-{}s-{}{}{}{}",
        options.seed,
        options.duration.as_secs(),
        options.agents,
        if options.strict { "-strict" } else { "" },
        if options.db { "-db" } else { "" },
        if options.witness { "-witness" } else { "" }
    ))
}

/// The intervals during which the VIP was on a host, from its address events.
fn held(events: &[AddrEvent], from: Ns, to: Ns) -> Vec<(Ns, Ns)> {
    let mut out = Vec::new();
    let mut since: Option<Ns> = None;
    for e in events.iter().filter(|e| e.addr == VIP) {
        match (e.added, since) {
            (true, None) => since = Some(e.mono.max(from)),
            (false, Some(s)) => {
                out.push((s, e.mono));
                since = None;
            }
            _ => {}
        }
    }
    if let Some(s) = since {
        out.push((s, to));
    }
    out
}

/// How many hosts hold the VIP, as a step function: (from, count) sorted.
fn holder_counts(holders: &[Vec<(Ns, Ns)>]) -> Vec<(Ns, i32)> {
    let mut edges: Vec<(Ns, i32)> = holders
        .iter()
        .flatten()
        .flat_map(|&(s, e)| [(s, 1), (e, -1)])
        .collect();
    edges.sort();
    let mut out = Vec::new();
    let mut count = 0;
    for (at, d) in edges {
        count += d;
        out.push((at, count));
    }
    out
}

/// The invariants, from outside the agents.
/// The database's invariants: never both servers writable while the agents hear each
/// other; no acknowledged row lost but in a failover that could not fence its peer.
fn check_db(outcome: &db::Outcome, faults: &[Fault], judge: Judge) -> Vec<Violation> {
    let mut out = Vec::new();
    let impaired = judge.excusing(faults, |k| judge.two_holders_excused(k));
    let excused = |at: Ns, spans: &[(Ns, Ns)]| spans.iter().any(|&(s, e)| s <= at && at <= e);
    let both: Vec<Ns> = outcome
        .both_writable
        .iter()
        .copied()
        .filter(|at| !excused(*at, &impaired))
        .collect();
    if let Some(first) = both.first() {
        out.push(Violation {
            at: *first,
            what: format!(
                "both servers writable in {} samples while the agents heard each other",
                both.len()
            ),
        });
    }
    let lossy = judge.excusing(faults, Kind::may_lose_writes);
    // A row acknowledged shortly before a lossy fault began may be what it lost.
    let before = (judge.mdi + SLACK).as_nanos() as Ns;
    let widened: Vec<(Ns, Ns)> = lossy.iter().map(|&(s, e)| (s - before, e)).collect();
    let lost: Vec<&(Ns, u64)> = outcome
        .lost
        .iter()
        .flatten()
        .filter(|(at, _)| !excused(*at, &widened))
        .collect();
    if let Some((at, _)) = lost.first() {
        out.push(Violation {
            at: *at,
            what: format!(
                "{} acknowledged rows lost outside any failover that could lose them (first seq {:?})",
                lost.len(),
                lost.iter().map(|(_, seq)| seq).take(5).collect::<Vec<_>>()
            ),
        });
    }
    out
}

/// How the invariants are judged: the protocol's slowest takeover, and whether a witness
/// gates mastership.
#[derive(Clone, Copy)]
struct Judge {
    mdi: Duration,
    witness: bool,
}

impl Judge {
    /// How long after a fault its effects last: one Master_Down_Interval and slack, and with
    /// the witness a lease that may outlive the fault (a takeover waits for it to expire).
    fn after(self) -> Duration {
        let lease = if self.witness {
            LEASE_TTL + Duration::from_millis(500)
        } else {
            Duration::ZERO
        };
        self.mdi + SLACK + lease
    }

    /// Whether two holders are excused while a fault of `kind` lasts: without a witness
    /// whenever the agents may not hear each other; with it only when an agent cannot
    /// remove the VIP it holds.
    fn two_holders_excused(self, kind: Kind) -> bool {
        match self.witness {
            true => kind.leaves_a_vip_behind(),
            false => kind.impairs(),
        }
    }

    /// The spans during which faults of the kinds `pred` picks (and their aftermath, plus
    /// the restart of a killed agent) excuse what the invariants forbid.
    fn excusing(self, faults: &[Fault], pred: impl Fn(Kind) -> bool) -> Vec<(Ns, Ns)> {
        let ns = |d: Duration| d.as_nanos() as Ns;
        faults
            .iter()
            .filter(|f| pred(f.kind))
            .map(|f| {
                let restart = if f.kind == Kind::Kill { ns(SLACK) } else { 0 };
                (f.start, f.end + ns(self.after()) + restart)
            })
            .collect()
    }
}

/// How much of [from, to) no span of `cover` excuses.
fn unexcused(cover: &[(Ns, Ns)], from: Ns, to: Ns) -> Ns {
    let mut spans: Vec<(Ns, Ns)> = cover
        .iter()
        .map(|&(s, e)| (s.max(from), e.min(to)))
        .filter(|(s, e)| s < e)
        .collect();
    spans.sort();
    let (mut covered, mut reach) = (0, from);
    for (s, e) in spans {
        let s = s.max(reach);
        if e > s {
            covered += e - s;
            reach = e;
        }
    }
    (to - from) - covered
}

/// `no_fit_node`: spans seen from outside in which no node could hold the VIP (neither
/// database server fit to carry the data).
fn check(
    holders: &[Vec<(Ns, Ns)>],
    faults: &[Fault],
    judge: Judge,
    quiet: (Ns, Ns),
    no_fit_node: &[(Ns, Ns)],
) -> Vec<Violation> {
    let ns = |d: Duration| d.as_nanos() as Ns;
    let mdi = judge.mdi;
    // While the agents may not hear each other, two holders are VRRP's answer, not a fault
    // (unless a witness gates mastership); while a node may be unfit, so is none.
    let impaired = judge.excusing(faults, |k| judge.two_holders_excused(k));
    let mut unfit = judge.excusing(faults, Kind::unfits);
    unfit.extend(no_fit_node.iter().map(|&(s, e)| (s, e + ns(mdi + SLACK))));
    let counts = holder_counts(holders);
    let mut out = Vec::new();
    for w in counts.windows(2) {
        let ((at, count), (until, _)) = (w[0], w[1]);
        let left = unexcused(&impaired, at, until);
        if count >= 2 && left > ns(HANDOVER) {
            out.push(Violation {
                at,
                what: format!(
                    "{count} holders for {:.0} ms ({:.0} ms of it while the agents heard each other)",
                    (until - at) as f64 / 1e6,
                    left as f64 / 1e6
                ),
            });
        }
        let left = unexcused(&unfit, at, until);
        if count == 0 && left > ns(mdi + SLACK) {
            out.push(Violation {
                at,
                what: format!(
                    "no holder for {:.0} ms ({:.0} ms of it unexcused; Master_Down_Interval {:.0} ms)",
                    (until - at) as f64 / 1e6,
                    left as f64 / 1e6,
                    mdi.as_secs_f64() * 1e3
                ),
            });
        }
    }
    // At the end, exactly one holder throughout the quiet time.
    let at_quiet = counts
        .iter()
        .rev()
        .find(|(at, _)| *at <= quiet.0)
        .map_or(0, |(_, c)| *c);
    let changes = counts
        .iter()
        .filter(|(at, _)| *at > quiet.0 && *at < quiet.1)
        .count();
    let none_fit = no_fit_node
        .iter()
        .any(|&(s, e)| s <= quiet.0 && quiet.1 <= e);
    if (at_quiet != 1 && !(at_quiet == 0 && none_fit)) || changes > 0 {
        out.push(Violation {
            at: quiet.0,
            what: format!(
                "{at_quiet} holders once every fault had ended and settled ({changes} changes after)"
            ),
        });
    }
    out
}

fn report(
    options: &Options,
    faults: &[Fault],
    holders: &[Vec<(Ns, Ns)>],
    violations: &[Violation],
    started: Ns,
    mdi: Duration,
) -> String {
    let mut out = String::new();
    let secs = |at: Ns| at.saturating_sub(started) as f64 / 1e9;
    let _ = writeln!(
        out,
        "chaos: seed {}, {} s of faults, {} agents (VRRPv3 0.1 s, Master_Down_Interval {:.0} ms){}",
        options.seed,
        options.duration.as_secs(),
        options.agents,
        mdi.as_secs_f64() * 1e3,
        match (options.strict, options.witness) {
            (true, true) => ", vrrp_strict, etcd witness (lease TTL 2 s)",
            (true, false) => ", vrrp_strict",
            (false, true) => ", etcd witness (lease TTL 2 s)",
            (false, false) => "",
        }
    );
    let _ = writeln!(out, "faults injected, by kind (count, seconds in force):");
    let mut kinds: Vec<Kind> = KINDS.to_vec();
    if options.db {
        kinds.extend(DB_KINDS);
    }
    if options.witness {
        kinds.extend(WITNESS_KINDS);
    }
    for kind in kinds {
        let of: Vec<&Fault> = faults.iter().filter(|f| f.kind == kind).collect();
        let total = of
            .iter()
            .map(|f| (f.end - f.start) as f64 / 1e9)
            .sum::<f64>()
            + 0.0;
        let _ = writeln!(out, "  {:<18} {:>4} {:>8.1}", kind.name(), of.len(), total);
    }
    let fault_hours: f64 = faults
        .iter()
        .map(|f| (f.end - f.start) as f64 / 3.6e12)
        .sum();
    let _ = writeln!(out, "fault-hours: {fault_hours:.4}");
    let counts = holder_counts(holders);
    let two: Vec<(Ns, Ns)> = counts
        .windows(2)
        .filter(|w| w[0].1 >= 2)
        .map(|w| (w[0].0, w[1].0))
        .collect();
    let in_partition = |(s, e): (Ns, Ns)| {
        faults
            .iter()
            .any(|f| f.kind == Kind::Partition && f.start <= e && s <= f.end)
    };
    let (partition, other): (Vec<_>, Vec<_>) = two.iter().partition(|w| in_partition(**w));
    let ms = |w: &[&(Ns, Ns)]| w.iter().fold(0.0, |sum, (s, e)| sum + (e - s) as f64 / 1e6);
    let _ = writeln!(
        out,
        "two masters during partitions (what two-node VRRP does without a witness): {} windows, {:.0} ms",
        partition.len(),
        ms(&partition)
    );
    let _ = writeln!(
        out,
        "two holders otherwise (handovers and impaired links, excused): {} windows, {:.0} ms",
        other.len(),
        ms(&other)
    );
    let _ = writeln!(out, "violations: {}", violations.len());
    for v in violations {
        let _ = writeln!(out, "  at {:.3} s: {}", secs(v.at), v.what);
        for f in faults
            .iter()
            .filter(|f| f.start <= v.at + 3_000_000_000 && v.at <= f.end + 3_000_000_000)
        {
            let _ = writeln!(
                out,
                "    fault {} on {} {:.3}-{:.3} s {}",
                f.kind.name(),
                f.node
                    .map_or("all".to_string(), |n| ["a", "b", "c"][n].to_string()),
                secs(f.start),
                secs(f.end),
                f.detail
            );
        }
    }
    if !violations.is_empty() {
        let _ = writeln!(
            out,
            "replay: cargo xtask chaos --seed {} --minutes {} --agents {}{}{}{}",
            options.seed,
            options.duration.as_secs_f64() / 60.0,
            options.agents,
            if options.strict { " --strict" } else { "" },
            if options.db { " --db" } else { "" },
            if options.witness { " --witness" } else { "" }
        );
    }
    out
}

/// The run as a picture: a row per host (the VIP held), a row per fault kind, violations in
/// red.
fn svg(
    names: &[String],
    holders: &[Vec<(Ns, Ns)>],
    faults: &[Fault],
    violations: &[Violation],
    from: Ns,
    to: Ns,
) -> String {
    const WIDTH: f64 = 1200.0;
    const LEFT: f64 = 140.0;
    const ROW: f64 = 22.0;
    let span = (to - from).max(1) as f64;
    let x = |at: Ns| LEFT + (at.saturating_sub(from) as f64 / span) * (WIDTH - LEFT - 10.0);
    // The base kinds always, the database's and the witness's when they struck.
    let mut kinds: Vec<Kind> = KINDS.to_vec();
    for f in faults {
        if !kinds.contains(&f.kind) {
            kinds.push(f.kind);
        }
    }
    let rows = names.len() + kinds.len();
    let height = ROW * (rows as f64 + 2.0);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n"
    );
    let bar = |out: &mut String, row: usize, s: Ns, e: Ns, color: &str, title: &str| {
        let _ = writeln!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\"><title>{}</title></rect>",
            x(s),
            ROW * row as f64 + 4.0,
            (x(e) - x(s)).max(1.0),
            ROW - 8.0,
            escape(title)
        );
    };
    for (row, name) in names.iter().enumerate() {
        let _ = writeln!(
            out,
            "<text x=\"4\" y=\"{:.1}\">VIP on {name}</text>",
            ROW * row as f64 + 15.0
        );
        for &(s, e) in &holders[row] {
            bar(
                &mut out,
                row,
                s,
                e,
                "#2ca02c",
                &format!("{name} holds the VIP"),
            );
        }
    }
    for (i, kind) in kinds.iter().enumerate() {
        let row = names.len() + i;
        let _ = writeln!(
            out,
            "<text x=\"4\" y=\"{:.1}\">{}</text>",
            ROW * row as f64 + 15.0,
            escape(kind.name())
        );
        for f in faults.iter().filter(|f| f.kind == *kind) {
            let on = f.node.map_or("all".to_string(), |n| names[n].clone());
            bar(
                &mut out,
                row,
                f.start,
                f.end,
                kind.color(),
                &format!("{} on {on} {}", kind.name(), f.detail),
            );
        }
    }
    for v in violations {
        let _ = writeln!(
            out,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"0\" y2=\"{height}\" stroke=\"red\" stroke-width=\"2\"><title>{1}</title></line>",
            x(v.at),
            escape(&v.what)
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"{:.1}\">{:.0} s</text></svg>",
        height - 6.0,
        span / 1e9
    );
    out
}

/// Text as SVG takes it.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `cargo xtask chaos`: runs, prints the report, fails on a violation.
pub fn main(binary: &Path, options: &Options) -> Result<()> {
    let outcome = run(binary, options).context("chaos run")?;
    print!("{}", outcome.report);
    eprintln!(
        "report and timeline: {}",
        outcome.dir.join("report.txt").display()
    );
    if outcome.violations > 0 {
        bail!("{} invariant violations", outcome.violations);
    }
    Ok(())
}
