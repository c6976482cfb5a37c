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

/// Samples, every 200 ms from outside, whether each server could carry the data (what the
/// agents' `track_replication` and promotion gate follow). A node whose server cannot is
/// not fit to hold the VIP.
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
    /// It has not applied everything its replica received (or what it received diverged
    /// from what it holds).
    Behind,
    /// Each server holds transactions the other lacks (both took writes, as two masters do
    /// in a partition): neither can carry the pair's data until an operator repairs it,
    /// and the promotion gate refuses both.
    Diverged,
}

impl Fitness {
    fn start(sockets: [PathBuf; 2]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            let mut seen = [Position::new(), Position::new()];
            // What each server's binary log last held, kept while it is down: a server down
            // still holds the writes it took.
            let mut written: [Option<BinlogState>; 2] = [None, None];
            while !flag.load(Ordering::Relaxed) {
                let [a, b] = &mut seen;
                let [(pa, wa), (pb, wb)] = [probe(&sockets[0]), probe(&sockets[1])];
                for (last, now) in written.iter_mut().zip([wa, wb]) {
                    if now.is_some() {
                        *last = now;
                    }
                }
                let diverged = match &written {
                    [Some(x), Some(y)] => lacks(x, y) && lacks(y, x),
                    _ => false,
                };
                let servers = if diverged {
                    [Server::Diverged; 2]
                } else {
                    [judge(pa, a), judge(pb, b)]
                };
                samples.push((monotonic_ns(), servers));
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

/// One look at the server behind `socket`: down, stopped on an apply error, or up with
/// what its replica received and what it has applied.
enum Probe {
    Down,
    ApplyError(u32),
    Up {
        received: Position,
        applied: Position,
    },
}

/// The probe, and what the server's binary log holds when it answers.
fn probe(socket: &Path) -> (Probe, Option<BinlogState>) {
    let out = Command::new("mariadb")
        .arg("--no-defaults")
        .arg("-S")
        .arg(socket)
        .args([
            "-uroot",
            "-e",
            "SHOW SLAVE STATUS\\G SELECT @@gtid_current_pos AS Current_Pos, \
             @@gtid_binlog_state AS Binlog_State\\G",
        ])
        .stdin(Stdio::null())
        .output();
    let Ok(out) = out.map(|o| (o.status.success(), o.stdout)) else {
        return (Probe::Down, None);
    };
    if !out.0 {
        return (Probe::Down, None);
    }
    let text = String::from_utf8_lossy(&out.1);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_owned()))
    };
    let written = gtids(&field("Binlog_State:").unwrap_or_default())
        .map(|(domain, server, seq)| ((domain, server), seq))
        .collect();
    let probe = match field("Last_SQL_Errno:")
        .and_then(|n| n.parse().ok())
        .filter(|n| *n != 0)
    {
        Some(errno) => Probe::ApplyError(errno),
        None => Probe::Up {
            received: positions(&field("Gtid_IO_Pos:").unwrap_or_default()),
            applied: positions(&field("Current_Pos:").unwrap_or_default()),
        },
    };
    (probe, Some(written))
}

/// A MariaDB GTID position: domain → (server, sequence number).
type Position = std::collections::HashMap<u64, (u64, u64)>;

/// `gtid_binlog_state`: (domain, server) → the last sequence number that server wrote there.
type BinlogState = std::collections::HashMap<(u64, u64), u64>;

/// Whether `theirs` holds a transaction `mine` lacks.
fn lacks(mine: &BinlogState, theirs: &BinlogState) -> bool {
    theirs
        .iter()
        .any(|(key, seq)| mine.get(key).is_none_or(|m| m < seq))
}

/// Whether a server that applied `applied` could carry the data, given everything its
/// replica was ever seen to receive (`seen`, kept across its restarts, which forget the
/// unapplied part of the relay log): the promotion gate's rule, from outside.
fn judge(probe: Probe, seen: &mut Position) -> Server {
    match probe {
        Probe::Down => Server::Down,
        Probe::ApplyError(errno) => Server::ApplyError(errno),
        Probe::Up { received, applied } => {
            for (domain, (server, seq)) in received {
                let later = seen.get(&domain).is_none_or(|(_, q)| seq > *q);
                if later {
                    seen.insert(domain, (server, seq));
                }
            }
            let behind = seen.iter().any(|(domain, (server, seq))| {
                applied
                    .get(domain)
                    .is_none_or(|(s, q)| q < seq || (q == seq && s != server))
            });
            if behind { Server::Behind } else { Server::Fit }
        }
    }
}

fn positions(text: &str) -> Position {
    gtids(text)
        .map(|(domain, server, seq)| (domain, (server, seq)))
        .collect()
}

/// The GTIDs of a list such as `0-1-41850,0-2-7`: (domain, server, sequence number).
fn gtids(text: &str) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
    text.split(',').filter_map(|g| {
        let mut f = g.trim().split('-').map(|n| n.parse::<u64>().ok());
        Some((f.next()??, f.next()??, f.next()??))
    })
}

/// What the run leaves to judge.
pub struct Outcome {
    pub log: WriterLog,
    /// Acknowledged rows missing from the server that holds the VIP at the end: (when the
    /// insert was acknowledged, on CLOCK_MONOTONIC; its sequence number). `None` when no
    /// node holds it at the end.
    pub lost: Option<Vec<(Ns, u64)>>,
    pub rounds: u64,
    /// Samples (CLOCK_MONOTONIC) with both servers writable.
    pub both_writable: Vec<Ns>,
    /// Spans during which neither server could carry the data (down, its replica stopped
    /// by an apply error, or behind what it received): no node was fit to hold the VIP.
    pub both_unfit: Vec<(Ns, Ns)>,
    /// When each server was first seen with a replica apply error, if it was.
    pub apply_error_at: [Option<Ns>; 2],
    /// When the servers were first seen to have diverged, if they were.
    pub diverged_at: Option<Ns>,
    /// Every sample of both servers, as text lines (time on CLOCK_MONOTONIC, then a and b).
    pub fitness: String,
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
        // Without a holder at the end there is no master whose rows to judge.
        let present: Option<std::collections::HashSet<u64>> = holder
            .and_then(|n| self.servers[n].try_sql("SELECT seq FROM app.t").ok())
            .map(|text| text.lines().filter_map(|l| l.parse().ok()).collect());
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
        let diverged_at = samples
            .iter()
            .find(|(_, servers)| servers[0] == Server::Diverged)
            .map(|(at, _)| *at);
        let lost = present.as_ref().map(|present| {
            log.acks
                .iter()
                .filter(|a| !present.contains(&a.seq))
                .map(|a| (self.epoch + (a.at * 1e9) as Ns, a.seq))
                .collect()
        });
        let fitness = samples
            .iter()
            .map(|(at, [a, b])| format!("{at} {a:?} {b:?}\n"))
            .collect();
        Outcome {
            fitness,
            log,
            lost,
            rounds,
            both_writable,
            both_unfit,
            apply_error_at,
            diverged_at,
        }
    }
}
