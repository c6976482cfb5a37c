//! Steady-state cost: CPU and memory of MASTER and BACKUP, adverts actually sent, and
//! spurious transitions, for 1 and 255 instances.

use std::{net::Ipv4Addr, os::unix::process::CommandExt as _, path::Path, time::Duration};

use anyhow::{Context as _, Result};
use ha_tests::{Topology, VrrpConf, daemons::config};
use serde::{Deserialize, Serialize};

use super::{Impl, Timing, wait_for};
use ha_tests::capture::{AddrMonitor, Frame, Observer};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Steady {
    pub implementation: Impl,
    pub instances: usize,
    pub version: u8,
    pub interval_ms: f64,
    pub window_s: f64,
    pub master_cpu_pct: f64,
    pub backup_cpu_pct: f64,
    pub master_rss_mib: f64,
    pub master_pss_mib: f64,
    pub backup_rss_mib: f64,
    pub backup_pss_mib: f64,
    pub adverts_per_s: f64,
    pub expected_per_s: f64,
    /// VIP added or removed on either node during the window.
    pub spurious_transitions: usize,
    /// Whether `stress-ng` loaded the machine during the window.
    #[serde(default)]
    pub stressed: bool,
    /// ha-agent's real-time scheduling (`--realtime-priority`), on unless said otherwise.
    #[serde(default = "on")]
    pub realtime: bool,
    /// Times the node's threads were put on a CPU, per second (each is a wake-up).
    #[serde(default)]
    pub master_wakeups_per_s: f64,
    #[serde(default)]
    pub backup_wakeups_per_s: f64,
    /// The largest gap between the master's adverts of VRID 1 on the wire (an observer's
    /// kernel timestamps): beyond Master_Down_Interval, a takeover is the master's stall.
    #[serde(default)]
    pub largest_gap_ms: f64,
    /// The part of the CPU time spent in user space (the rest is the kernel's, including the
    /// delivery of the node's packets across the LAN, which runs in the sender's context).
    #[serde(default)]
    pub master_user_pct: Option<f64>,
    #[serde(default)]
    pub backup_user_pct: Option<f64>,
    /// Where the LAN delivered the master's frames: "sender" (in its context, charged to
    /// it: the stressed runs) or "threads" (threaded NAPI on the bridge ports, as on
    /// separate machines: the master pays only its own sends).
    #[serde(default)]
    pub delivery: String,
    /// ha-agent's own record of the largest delay between a due timer and its loop acting
    /// on it, on the master (`timer_lateness` in its status): tells a late loop from a late
    /// wire.
    #[serde(default)]
    pub master_timer_late_max_ms: Option<f64>,
    /// Time the hypervisor ran something else instead of this machine's CPUs during the
    /// window, in % of all CPUs (`steal` in /proc/stat).
    #[serde(default)]
    pub steal_pct: f64,
}

fn on() -> bool {
    true
}

/// What loads the machine in `--stress` runs (the load keepalived users report flapping under).
pub const STRESS: &[&str] = &["--cpu", "2", "--io", "1", "--vm", "1", "--vm-bytes", "256M"];

/// `stress-ng` [`STRESS`] on the host (not in a namespace: it sends nothing), killed with its
/// workers (its process group) when dropped.
pub struct Stress(std::process::Child);

impl Stress {
    pub fn start() -> Result<Self> {
        std::process::Command::new("stress-ng")
            .args(STRESS)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .map(Stress)
            .context("starting stress-ng")
    }
}

impl Drop for Stress {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.0.wait();
    }
}

fn instances(n: usize, timing: Timing, state: &'static str, priority: u8) -> String {
    let confs: Vec<VrrpConf> = (0..n)
        .map(|i| {
            let mut c = timing.conf(state, priority);
            c.name = format!("VI_{}", i + 1);
            c.vrid = (i + 1) as u8;
            c.vips = vec![vip(i).to_string()];
            c
        })
        .collect();
    config(&confs)
}

fn vip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 200, (i / 200) as u8, (i % 200 + 1) as u8)
}

/// Every case, or with `stress` only 255 instances at 10 ms with `stress-ng` running beside.
pub fn run(binary: &Path, window: Duration, stress: bool, largest: bool) -> Result<Vec<Steady>> {
    let mut results = Vec::new();
    let cases: &[(usize, Timing)] = if stress || largest {
        &[(255, Timing::V3_10MS)]
    } else {
        &[
            (1, Timing::V2_1S),
            (50, Timing::V2_1S),
            (255, Timing::V2_1S),
            (1, Timing::V3_10MS),
            (50, Timing::V3_10MS),
            (255, Timing::V3_10MS),
        ]
    };
    // ha-agent as installed (XDP where it attaches) and on sockets alone.
    let variants: &[(Impl, bool)] = &[
        (Impl::Keepalived, true),
        (Impl::HaAgentDefault, true),
        (Impl::HaAgent, true),
    ];
    for &(n, timing) in cases {
        for &(implementation, realtime) in variants {
            let name = implementation.name();
            eprintln!(
                "bench steady: {name} x{n} v{} {:?} realtime={realtime}",
                timing.version, timing.interval
            );
            let r = measure(binary, implementation, n, timing, window, stress, realtime)
                .with_context(|| format!("{name} x{n} v{}", timing.version))?;
            eprintln!(
                "  MASTER {:.2} % BACKUP {:.2} % CPU, wake-ups/s {:.0} / {:.0}, {:.0}/{:.0} adverts/s, largest gap {:.1} ms, master's timers at worst {} late, steal {:.2} %, {} spurious",
                r.master_cpu_pct,
                r.backup_cpu_pct,
                r.master_wakeups_per_s,
                r.backup_wakeups_per_s,
                r.adverts_per_s,
                r.expected_per_s,
                r.largest_gap_ms,
                r.master_timer_late_max_ms
                    .map_or("-".to_owned(), |ms| format!("{ms:.1} ms")),
                r.steal_pct,
                r.spurious_transitions
            );
            results.push(r);
        }
    }
    Ok(results)
}

fn measure(
    binary: &Path,
    implementation: Impl,
    n: usize,
    timing: Timing,
    window: Duration,
    stress: bool,
    realtime: bool,
) -> Result<Steady> {
    let t = Topology::new(&["a", "b", "c"]);
    if !stress {
        t.deliver_on_threads();
    }
    let (a, b) = (t.host("a"), t.host("b"));
    let args: &[&str] = if realtime {
        &[]
    } else {
        &["--realtime-priority", "0"]
    };
    let start = |host, state, priority| {
        let conf = instances(n, timing, state, priority);
        implementation.start_args(host, t.dir(), &conf, binary, args)
    };
    let master = start(a, "MASTER", 150);
    let backup = start(b, "BACKUP", 120);
    let count = |host: &ha_tests::Host| {
        host.sh(&["ip", "-o", "-4", "addr", "show", "dev", "eth0"])
            .matches(" 10.200.")
            .count()
    };
    wait_for(
        "the master holding every VIP",
        timing.master_down(150) + Duration::from_secs(20),
        || count(a) == n && count(b) == 0,
    )?;
    // keepalived sends its second GARP burst 5 s after becoming master.
    std::thread::sleep(Duration::from_secs(6));
    let load = if stress {
        let load = Stress::start()?;
        std::thread::sleep(Duration::from_secs(2));
        Some(load)
    } else {
        None
    };
    let monitors = [AddrMonitor::start(a)?, AddrMonitor::start(b)?];
    // VRID 1's adverts only (the VRID is byte 1 of the VRRP header, after 20 bytes of IP).
    let observer =
        Observer::start_filtered(t.host("c"), t.dir(), "gaps", "ip proto 112 and ip[21] = 1")?;
    let (m0, b0, p0, s0) = (
        sched(master.process.pid()),
        sched(backup.process.pid()),
        t.frames_from("a"),
        steal_ticks(),
    );
    std::thread::sleep(window);
    let (m1, b1, p1, s1) = (
        sched(master.process.pid()),
        sched(backup.process.pid()),
        t.frames_from("a"),
        steal_ticks(),
    );
    drop(load);
    eprintln!(
        "  VIP events on the master {}, on the backup {}",
        monitors[0].events().len(),
        monitors[1].events().len()
    );
    let secs = window.as_secs_f64();
    let times: Vec<ha_tests::capture::Ns> = observer
        .frames()?
        .into_iter()
        .filter_map(|f| match f {
            Frame::Advert { at, src, .. } if src == a.ip => Some(at),
            _ => None,
        })
        .collect();
    let largest_gap_ms = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0) as f64 / 1e6;
    let spurious: usize = monitors.iter().map(|m| m.events().len()).sum();
    if spurious > 0 {
        keep_logs(&[&master, &backup], implementation, n, timing);
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let (master_rss, master_pss) = memory_kib(master.process.pid());
    let (backup_rss, backup_pss) = memory_kib(backup.process.pid());
    // After the memory: the status request's own buffers are not the steady state's.
    let master_timer_late_max_ms = (implementation != Impl::Keepalived)
        .then(|| master.try_status())
        .flatten()
        .and_then(|s| s["timer_lateness"]["max_ms"].as_f64());
    Ok(Steady {
        implementation,
        instances: n,
        version: timing.version,
        interval_ms: timing.interval.as_secs_f64() * 1000.0,
        window_s: secs,
        master_cpu_pct: m1.since(&m0).cpu_ns as f64 / 1e9 / secs * 100.0,
        backup_cpu_pct: b1.since(&b0).cpu_ns as f64 / 1e9 / secs * 100.0,
        master_wakeups_per_s: m1.since(&m0).runs as f64 / secs,
        backup_wakeups_per_s: b1.since(&b0).runs as f64 / secs,
        master_user_pct: Some(m1.since(&m0).user_ticks as f64 / TICKS_PER_S / secs * 100.0),
        backup_user_pct: Some(b1.since(&b0).user_ticks as f64 / TICKS_PER_S / secs * 100.0),
        master_rss_mib: master_rss / 1024.0,
        master_pss_mib: master_pss / 1024.0,
        backup_rss_mib: backup_rss / 1024.0,
        backup_pss_mib: backup_pss / 1024.0,
        adverts_per_s: (p1 - p0) as f64 / secs,
        expected_per_s: n as f64 / timing.interval.as_secs_f64(),
        spurious_transitions: spurious,
        stressed: stress,
        realtime,
        largest_gap_ms,
        delivery: if stress { "sender" } else { "threads" }.to_owned(),
        master_timer_late_max_ms,
        steal_pct: (s1 - s0) as f64 / TICKS_PER_S / secs / cpus * 100.0,
    })
}

/// The machine's steal time so far, in clock ticks (the `cpu` line of /proc/stat).
fn steal_ticks() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().next()?.split_whitespace().nth(8)?.parse().ok())
        .unwrap_or(0)
}

/// Copies the daemons' logs where they outlive the topology, for a case that had spurious
/// transitions.
fn keep_logs(
    daemons: &[&ha_tests::daemons::Daemon],
    implementation: Impl,
    n: usize,
    timing: Timing,
) {
    let dir = crate::workspace_root().join(format!(
        "target/bench/steady-logs/{implementation:?}-x{n}-v{}-{}ms",
        timing.version,
        timing.interval.as_millis()
    ));
    let _ = std::fs::create_dir_all(&dir);
    for d in daemons {
        if let Some(name) = d.log.file_name() {
            let _ = std::fs::copy(&d.log, dir.join(name));
        }
    }
    eprintln!("  spurious transitions: logs kept in {}", dir.display());
}

/// Every process in the process group led by `pgid` (the daemon and its children).
fn group(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![pgid];
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // Fields after the command name: state ppid pgrp ...
                    let rest = &stat[stat.rfind(')')? + 2..];
                    rest.split_whitespace().nth(2)?.parse::<u32>().ok()
                })
                == Some(pgid)
        })
        .collect()
}

/// What schedstat says of a thread, or summed over threads.
#[derive(Clone, Copy, Default)]
pub struct Sched {
    /// Time on a CPU.
    pub cpu_ns: u64,
    /// Times put on a CPU: wake-ups (and preemptions).
    pub runs: u64,
    /// Time in user space, in clock ticks (`/proc/.../stat`).
    pub user_ticks: u64,
}

/// USER_HZ.
const TICKS_PER_S: f64 = 100.0;

/// Each thread's schedstat in a process group, by thread id.
pub struct Threads(std::collections::HashMap<u32, Sched>);

impl Threads {
    /// What the group did since `earlier`: a thread that ended meanwhile (an idle helper the
    /// runtime retired) counts nothing, one that started counts all it did.
    pub fn since(&self, earlier: &Threads) -> Sched {
        self.0.iter().fold(Sched::default(), |sum, (tid, now)| {
            let then = earlier.0.get(tid).copied().unwrap_or_default();
            Sched {
                cpu_ns: sum.cpu_ns + now.cpu_ns.saturating_sub(then.cpu_ns),
                runs: sum.runs + now.runs.saturating_sub(then.runs),
                user_ticks: sum.user_ticks + now.user_ticks.saturating_sub(then.user_ticks),
            }
        })
    }
}

pub fn sched(pgid: u32) -> Threads {
    Threads(
        group(pgid)
            .into_iter()
            .flat_map(|pid| {
                std::fs::read_dir(format!("/proc/{pid}/task"))
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .filter_map(|task| {
                let tid = task.file_name().to_str()?.parse::<u32>().ok()?;
                let text = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
                let fields: Vec<u64> = text
                    .split_whitespace()
                    .filter_map(|f| f.parse().ok())
                    .collect();
                let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
                // After the command name: state ppid pgrp session tty tpgid flags minflt
                // cminflt majflt cmajflt utime ...
                let user_ticks = stat
                    .get(stat.rfind(')')? + 2..)?
                    .split_whitespace()
                    .nth(11)?
                    .parse()
                    .ok()?;
                Some((
                    tid,
                    Sched {
                        cpu_ns: *fields.first()?,
                        runs: *fields.get(2)?,
                        user_ticks,
                    },
                ))
            })
            .collect(),
    )
}

/// (RSS, PSS) in KiB summed over the group.
fn memory_kib(pgid: u32) -> (f64, f64) {
    let mut total = (0.0, 0.0);
    for pid in group(pgid) {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
            continue;
        };
        for line in text.lines() {
            let value = || {
                line.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            if line.starts_with("Rss:") {
                total.0 += value();
            } else if line.starts_with("Pss:") {
                total.1 += value();
            }
        }
    }
    total
}
