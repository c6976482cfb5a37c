//! The database follows the VIP: planned switchover and crash failover of a MariaDB
//! dual-master pair under a steady insert load through the VIP, for ha-agent
//! (`track_replication`, `ha-agent switchover`) and for what keepalived users run today
//! (keepalived 2.2.7 whose notify scripts flip read_only; a planned switchover is stopping
//! keepalived on the master). Per trial a fresh pair: a (server 1, MASTER 150) and b
//! (server 2, BACKUP 100), seed timing (VRRPv2, 1 s), writer and read_only sampler on c.

use std::{
    net::Ipv4Addr,
    os::unix::fs::PermissionsExt as _,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use ha_tests::{
    Daemon, Topology, VrrpConf,
    daemons::config,
    mariadb::{ADMIN, APP, Mariadb, Sampler, Writer, WriterLog},
};
use serde::{Deserialize, Serialize};

use super::{Impl, Summary, wait_for};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 200);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// ha-agent: `ha-agent switchover` on a; keepalived: SIGTERM to keepalived on a.
    Planned,
    /// SIGKILL of a's daemon and mariadbd, and a's link down.
    Crash,
    /// The same crash while b's SQL thread has been stopped for a second (replication lag).
    CrashLagging,
}

impl Scenario {
    pub const ALL: [Scenario; 3] = [Scenario::Planned, Scenario::Crash, Scenario::CrashLagging];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Planned => "planned switchover",
            Scenario::Crash => "crash",
            Scenario::CrashLagging => "crash, b lagging 1 s",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Trial {
    /// ms from the event (switchover asked, or crash) to the first insert b acknowledged.
    pub writes_again_ms: f64,
    pub acknowledged: u64,
    /// Acknowledged rows missing on b (the new master) at the end.
    pub lost: u64,
    /// Primary keys acknowledged twice.
    pub duplicate_keys: u64,
    /// read_only samples of both servers, and those with both writable.
    pub samples: u64,
    pub both_writable: u64,
    /// Time per acknowledged insert before the event (the writer inserts back to back:
    /// the time between acknowledgements), p50 and p99 in ms.
    #[serde(default)]
    pub insert_p50_ms: f64,
    #[serde(default)]
    pub insert_p99_ms: f64,
    /// `semi_sync on`: whether a's agent reported semi-sync active just before the event.
    #[serde(default)]
    pub semi_sync_active: Option<bool>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DbCase {
    pub implementation: Impl,
    pub scenario: Scenario,
    /// ha-agent with `semi_sync on`.
    #[serde(default)]
    pub semi_sync: bool,
    pub trials: Vec<Trial>,
    pub writes_again: Summary,
}

pub fn run(binary: &Path, trials: usize) -> Result<Vec<DbCase>> {
    let mut cases = Vec::new();
    for scenario in Scenario::ALL {
        for implementation in [Impl::Keepalived, Impl::HaAgent] {
            eprintln!(
                "bench switchover (database): {} {}, {trials} trials",
                implementation.name(),
                scenario.name()
            );
            cases.push(run_case(binary, implementation, scenario, false, trials)?);
        }
    }
    Ok(cases)
}

/// ha-agent's crash failover with asynchronous replication and with `semi_sync on`, in the
/// same run: acknowledged rows lost, and what semi-sync costs each insert.
pub fn semi_sync(binary: &Path, trials: usize) -> Result<Vec<DbCase>> {
    [false, true]
        .into_iter()
        .map(|semi| run_case(binary, Impl::HaAgent, Scenario::Crash, semi, trials))
        .collect()
}

fn run_case(
    binary: &Path,
    implementation: Impl,
    scenario: Scenario,
    semi_sync: bool,
    trials: usize,
) -> Result<DbCase> {
    let name = format!(
        "{}{} {}",
        implementation.name(),
        if semi_sync { " semi_sync on" } else { "" },
        scenario.name()
    );
    eprintln!("bench database: {name}, {trials} trials");
    let mut results = Vec::new();
    for i in 0..trials {
        let trial = run_trial(binary, implementation, scenario, semi_sync)
            .with_context(|| format!("{name} trial {i}"))?;
        eprintln!(
            "  writes again after {:.0} ms; {} acknowledged, {} lost, {} duplicate keys, {} of {} samples both writable; insert p50 {:.2} ms p99 {:.2} ms{}",
            trial.writes_again_ms,
            trial.acknowledged,
            trial.lost,
            trial.duplicate_keys,
            trial.both_writable,
            trial.samples,
            trial.insert_p50_ms,
            trial.insert_p99_ms,
            match trial.semi_sync_active {
                Some(active) => format!("; semi-sync active at the crash: {active}"),
                None => String::new(),
            }
        );
        results.push(trial);
    }
    let again: Vec<f64> = results.iter().map(|t| t.writes_again_ms).collect();
    Ok(DbCase {
        implementation,
        scenario,
        semi_sync,
        writes_again: Summary::of(&again),
        trials: results,
    })
}

fn script(path: &Path, body: &str) -> Result<()> {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// One node's configuration. keepalived: notify scripts that set read_only (the seed's
/// users' way). ha-agent: the same instance tracking the replication.
fn node_conf(
    implementation: Impl,
    state: &'static str,
    priority: u8,
    (me, peer): (&Mariadb, &Mariadb),
    etc: &Path,
    extra: &str,
) -> Result<String> {
    let mut conf = VrrpConf::seed(state, priority);
    match implementation {
        Impl::Keepalived => {
            let sql = |on: &str| {
                format!(
                    "exec mariadb --no-defaults -S {} -uroot -e 'SET GLOBAL read_only={on}'",
                    me.socket().display()
                )
            };
            let (writable, read_only) = (
                etc.join(format!("writable-{}.sh", me.host.name)),
                etc.join(format!("read-only-{}.sh", me.host.name)),
            );
            script(&writable, &sql("OFF"))?;
            script(&read_only, &sql("ON"))?;
            conf.extra = vec![
                format!("notify_master \"{}\"", writable.display()),
                format!("notify_backup \"{}\"", read_only.display()),
                format!("notify_fault \"{}\"", read_only.display()),
                format!("notify_stop \"{}\"", read_only.display()),
            ];
            Ok(config(&[conf]))
        }
        _ => {
            conf.extra = vec!["track_replication {\n        DB1\n    }".into()];
            Ok(format!(
                "{}{}",
                config(&[conf]),
                replication_block(me.ip(), peer.ip(), etc, extra)
            ))
        }
    }
}

fn replication_block(local: Ipv4Addr, peer: Ipv4Addr, etc: &Path, extra: &str) -> String {
    format!(
        "mysql_replication DB1 {{\n    local_address {local}\n    peer_address {peer}\n    \
         user ha_agent\n    password_file {etc}/agent.pass\n    repl_user repl\n    \
         repl_password_file {etc}/repl.pass\n    min_failover_interval 0\n{extra}}}\n",
        etc = etc.display()
    )
}

fn run_trial(
    binary: &Path,
    implementation: Impl,
    scenario: Scenario,
    semi_sync: bool,
) -> Result<Trial> {
    let extra = if semi_sync { "    semi_sync on\n" } else { "" };
    let t = Topology::new(&["a", "b", "c"]);
    let (a, b, c) = (t.host("a"), t.host("b"), t.host("c"));
    let (mut server_a, server_b, etc) = ha_tests::mariadb::start_pair(&t, "agentpass")?;
    // The pair set up the same way for both (the state the seed's users reach by hand).
    let setup_conf = etc.join("setup.conf");
    std::fs::write(&setup_conf, replication_block(a.ip, b.ip, &etc, extra))?;
    let out = a
        .command(binary.to_str().context("utf-8 path")?)
        .args(["db", "setup", "-f"])
        .arg(&setup_conf)
        .args(["--admin-user", ADMIN.0, "--admin-password-file"])
        .arg(etc.join("admin.pass"))
        .output()?;
    if !out.status.success() {
        bail!("db setup: {}", String::from_utf8_lossy(&out.stderr));
    }
    server_a.sql(
        "CREATE DATABASE app; CREATE TABLE app.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
         seq BIGINT NOT NULL UNIQUE)",
    );
    wait_for("the table on b", Duration::from_secs(10), || {
        server_b.try_sql("SELECT 1 FROM app.t LIMIT 1").is_ok()
    })?;
    let conf_a = node_conf(
        implementation,
        "MASTER",
        150,
        (&server_a, &server_b),
        &etc,
        extra,
    )?;
    let conf_b = node_conf(
        implementation,
        "BACKUP",
        100,
        (&server_b, &server_a),
        &etc,
        extra,
    )?;
    let mut daemon_a = implementation.start(a, t.dir(), &conf_a, binary);
    std::thread::sleep(Duration::from_millis(500));
    let _daemon_b = implementation.start(b, t.dir(), &conf_b, binary);
    wait_for("a writable with the VIP", Duration::from_secs(15), || {
        a.has_address("eth0", VIP) && !server_a.read_only() && server_b.read_only()
    })?;
    let sampler = Sampler::start(&server_a, &server_b);
    let epoch = Instant::now();
    let writer = Writer::start(c, VIP, APP.0, APP.1, epoch);
    std::thread::sleep(Duration::from_secs(2));
    if scenario == Scenario::CrashLagging {
        server_b.sql("STOP SLAVE SQL_THREAD");
        std::thread::sleep(Duration::from_secs(1));
    }
    let semi_sync_active = semi_sync.then(|| {
        daemon_a.status()["replication"][0]["local"]["semi_sync"]["master_active"] == true
    });
    let event = epoch.elapsed().as_secs_f64();
    match scenario {
        Scenario::Planned => planned(implementation, &mut daemon_a, binary)?,
        Scenario::Crash | Scenario::CrashLagging => {
            daemon_a.process.kill_group();
            server_a.crash();
            t.set_cable("a", false);
        }
    }
    // Writes accepted by b (even keys: b's auto-increment offset is 2).
    wait_for("writes on b", Duration::from_secs(30), || {
        server_b
            .try_sql("SELECT COUNT(*) FROM app.t WHERE id % 2 = 0")
            .is_ok_and(|n| n != "0")
    })?;
    std::thread::sleep(Duration::from_secs(1));
    let log = writer.finish();
    let (samples, both_writable) = sampler.finish();
    if scenario == Scenario::Planned {
        // The old master's last rows may still be on their way to b.
        std::thread::sleep(Duration::from_millis(500));
    }
    let before: Vec<f64> = log
        .acks
        .iter()
        .map(|a| a.at)
        .filter(|at| *at < event)
        .collect();
    let mut per_insert: Vec<f64> = before.windows(2).map(|w| (w[1] - w[0]) * 1e3).collect();
    per_insert.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        per_insert
            .get(((per_insert.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    Ok(Trial {
        insert_p50_ms: quantile(0.5),
        insert_p99_ms: quantile(0.99),
        semi_sync_active,
        writes_again_ms: log
            .acks
            .iter()
            .find(|ack| ack.at > event && ack.id % 2 == 0)
            .map(|ack| (ack.at - event) * 1e3)
            .unwrap_or(f64::NAN),
        acknowledged: log.acks.len() as u64,
        lost: lost(&log, &server_b),
        duplicate_keys: duplicates(&log),
        samples,
        both_writable,
    })
}

/// A planned handover as each implementation offers it.
fn planned(implementation: Impl, daemon: &mut Daemon, binary: &Path) -> Result<()> {
    match implementation {
        Impl::Keepalived => daemon.stop(),
        _ => {
            let out = Command::new(binary)
                .args(["switchover", "--state-dir"])
                .arg(&daemon.state_dir)
                .output()?;
            if !out.status.success() {
                bail!(
                    "ha-agent switchover: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    Ok(())
}

fn lost(log: &WriterLog, server: &Mariadb) -> u64 {
    ha_tests::mariadb::missing_rows(log, server).len() as u64
}

fn duplicates(log: &WriterLog) -> u64 {
    let mut ids: Vec<u64> = log.acks.iter().map(|a| a.id).collect();
    ids.sort_unstable();
    let all = ids.len();
    ids.dedup();
    (all - ids.len()) as u64
}
