//! The database pair of `cargo xtask chaos --db`: MariaDB on the first two agents' hosts in
//! GTID dual master, supervised by their agents (`mysql_replication`, `track_replication`),
//! a writer on the observer inserting through the VIP, and both servers' `read_only`
//! sampled from outside the agents.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use ha_tests::{
    Topology,
    capture::{Ns, monotonic_ns},
    mariadb::{self, ADMIN, APP, Mariadb, Sampler, Writer, WriterLog},
};

pub struct Pair {
    servers: [Mariadb; 2],
    ips: [Ipv4Addr; 2],
    etc: std::path::PathBuf,
    writer: Option<Writer>,
    sampler: Option<Sampler>,
    fitness: Option<Fitness>,
    /// The writer's epoch, on CLOCK_MONOTONIC.
    epoch: Ns,
}

/// Samples, every 200 ms from outside, whether each server could carry the data: it
/// answers and its replica has no apply error (what the agents' `track_replication`
/// follows). A node whose server cannot is not fit to hold the VIP.
struct Fitness {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Sample>>>,
}

/// Both servers as seen at one moment.
type Sample = (Ns, [Server; 2]);

/// What a server looked like from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Server {
    Fit,
    Down,
    /// Its replica stopped on an apply error (the number).
    ApplyError(u32),
}

impl Fitness {
    fn start(sockets: [PathBuf; 2]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                samples.push((monotonic_ns(), [fit(&sockets[0]), fit(&sockets[1])]));
                std::thread::sleep(Duration::from_millis(200));
            }
            samples
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

/// Whether the server behind `socket` answers and its replica has no apply error.
fn fit(socket: &Path) -> Server {
    let out = Command::new("mariadb")
        .arg("--no-defaults")
        .arg("-S")
        .arg(socket)
        .args(["-uroot", "-e", "SHOW SLAVE STATUS\\G"])
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("Last_SQL_Errno:")?
                    .trim()
                    .parse()
                    .ok()
            })
            .filter(|n| *n != 0)
            .map_or(Server::Fit, Server::ApplyError),
        _ => Server::Down,
    }
}

/// What the run leaves to judge.
pub struct Outcome {
    pub log: WriterLog,
    /// Acknowledged rows missing from the server that holds the VIP at the end: (when the
    /// insert was acknowledged, on CLOCK_MONOTONIC; its sequence number).
    pub lost: Vec<(Ns, u64)>,
    pub rounds: u64,
    /// Samples (CLOCK_MONOTONIC) with both servers writable.
    pub both_writable: Vec<Ns>,
    /// Spans during which neither server could carry the data (down, or its replica
    /// stopped by an apply error): no node was fit to hold the VIP.
    pub both_unfit: Vec<(Ns, Ns)>,
    /// When each server was first seen with a replica apply error, if it was.
    pub apply_error_at: [Option<Ns>; 2],
}

impl Pair {
    /// Both servers, the agent's account (`ha-agent db setup` from host a) and the
    /// application's table.
    pub fn start(t: &Topology, binary: &Path) -> Result<Self> {
        let (a, b, etc) = mariadb::start_pair(t, "chaos agent")?;
        let ips = [a.ip(), b.ip()];
        let pair = Self {
            servers: [a, b],
            ips,
            etc,
            writer: None,
            sampler: None,
            fitness: None,
            epoch: 0,
        };
        let conf = t.dir().join("db-setup.conf");
        std::fs::write(&conf, pair.block(0))?;
        let out = t
            .host("a")
            .command(binary.to_str().context("binary path")?)
            .args(["db", "setup", "-f"])
            .arg(&conf)
            .args(["--admin-user", ADMIN.0, "--admin-password-file"])
            .arg(pair.etc.join("admin.pass"))
            .output()?;
        if !out.status.success() {
            bail!(
                "db setup: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        pair.servers[0].sql(
            "CREATE DATABASE app; CREATE TABLE app.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
             seq BIGINT NOT NULL UNIQUE)",
        );
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while pair.servers[1]
            .try_sql("SELECT COUNT(*) FROM app.t")
            .is_err()
        {
            if Instant::now() > deadline {
                bail!("the table did not reach b");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(pair)
    }

    /// The `mysql_replication` block of node `node` (0: a, 1: b). Anti-flap is out of the
    /// way: the runner wants every failover it can get.
    pub fn block(&self, node: usize) -> String {
        mariadb::replication_block(
            self.ips[node],
            self.ips[1 - node],
            &self.etc,
            "    max_auto_failovers 1000000\n",
        )
    }

    /// The writer on `observer` through `vip`, and the read_only sampler.
    pub fn start_traffic(&mut self, observer: &ha_tests::Host, vip: Ipv4Addr) {
        self.epoch = monotonic_ns();
        self.writer = Some(Writer::start(observer, vip, APP.0, APP.1, Instant::now()));
        self.sampler = Some(Sampler::start(&self.servers[0], &self.servers[1]));
        self.fitness = Some(Fitness::start([
            self.servers[0].socket(),
            self.servers[1].socket(),
        ]));
    }

    pub fn crash(&mut self, node: usize) {
        self.servers[node].crash();
    }

    pub fn restart(&mut self, node: usize) -> Result<()> {
        self.servers[node].restart()
    }

    /// Stops the writer and the sampler; `holder` is the node holding the VIP at the end,
    /// whose server must hold every acknowledged row.
    pub fn finish(&mut self, holder: Option<usize>) -> Outcome {
        let log = self.writer.take().map(Writer::finish).unwrap_or_default();
        let (rounds, both_writable) = self
            .sampler
            .take()
            .map(Sampler::finish_times)
            .unwrap_or_default();
        let present: std::collections::HashSet<u64> = holder
            .and_then(|n| self.servers[n].try_sql("SELECT seq FROM app.t").ok())
            .map(|text| text.lines().filter_map(|l| l.parse().ok()).collect())
            .unwrap_or_default();
        let samples = self.fitness.take().map(Fitness::finish).unwrap_or_default();
        let mut both_unfit: Vec<(Ns, Ns)> = Vec::new();
        for w in samples.windows(2) {
            let ((at, servers), (next, _)) = (w[0], w[1]);
            if !servers.contains(&Server::Fit) {
                match both_unfit.last_mut() {
                    Some((_, end)) if *end == at => *end = next,
                    _ => both_unfit.push((at, next)),
                }
            }
        }
        let apply_error_at = [0, 1].map(|n| {
            samples
                .iter()
                .find(|(_, servers)| matches!(servers[n], Server::ApplyError(_)))
                .map(|(at, _)| *at)
        });
        let lost = log
            .acks
            .iter()
            .filter(|a| !present.contains(&a.seq))
            .map(|a| (self.epoch + (a.at * 1e9) as Ns, a.seq))
            .collect();
        Outcome {
            log,
            lost,
            rounds,
            both_writable,
            both_unfit,
            apply_error_at,
        }
    }
}
