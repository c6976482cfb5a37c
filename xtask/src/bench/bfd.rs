//! `cargo xtask bench bfd`: BFD beside VRRP, in one run.
//!
//! - Crash takeover: the master (a, 250) dies as a host dies: its cable is cut (every frame
//!   it sends dropped at its bridge port, kernel-sent BFD packets among them) and the agent
//!   stopped dead (SIGSTOP); the time from then to the VIP on the backup (b, 200; netlink
//!   monitor in b), with VRRPv3 at 10 ms alone and with `bfd_takeover` at the BFD interval
//!   given. The cut is a map update of a program on the port, not a link taken down, and a
//!   is killed only after: both would take the kernel's RTNL lock, which every network
//!   namespace shares, so on this one kernel they held b's address change up for 1-24 ms;
//!   the death of a host on another machine takes no lock of the survivor's.
//! - False Downs: a pair with BFD at each interval, `stress-ng` loading both cores for the
//!   window; the sessions' Up → Down transitions at both ends, and the VIP events.
//! - Cost: one end of a session pair at 1 ms and 10 ms: ha-agent, keepalived's BFD process,
//!   and FRR's bfdd (10 ms: its shortest interval), CPU time of the whole process group; and
//!   the whole machine's, both ends and the kernel's work wherever it ran (softirqs
//!   included), against the machine idle just before.

use std::{net::Ipv4Addr, path::Path, time::Duration};

use nix::sys::signal::Signal;

use anyhow::{Context as _, Result};
use ha_tests::{
    Daemon, Host, Topology, VrrpConf,
    capture::{AddrMonitor, realtime_ns},
    daemons::master_down_interval,
    frr::Bfdd,
};
use serde::{Deserialize, Serialize};

use super::{
    Summary,
    steady::{Stress, sched},
    wait_for,
};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 200);
const MASTER: u8 = 250;
const BACKUP: u8 = 200;
const VRRP_INTERVAL: Duration = Duration::from_millis(10);

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Case {
    Takeover {
        /// "vrrp" or "bfd_takeover".
        detector: String,
        bfd_interval_ms: Option<f64>,
        master_down_interval_ms: f64,
        /// Per trial: the master stopped → the VIP on the backup, ms.
        ms: Vec<f64>,
        summary: Summary,
    },
    FalseDowns {
        bfd_interval_ms: f64,
        seconds: f64,
        /// Up → Down transitions of the session, both ends.
        downs: u64,
        /// VIP added or removed on either node.
        vip_events: usize,
    },
    Cost {
        implementation: String,
        bfd_interval_ms: f64,
        seconds: f64,
        /// Of one core, one end of the pair.
        cpu_percent: f64,
        wakeups_per_s: f64,
        /// Of one core: every CPU's busy time while the pair ran, and just before it
        /// started (the machine without it).
        #[serde(default)]
        machine_percent: f64,
        #[serde(default)]
        machine_idle_percent: f64,
    },
}

fn bfd_block(me: &Host, peer: &Host, interval_ms: f64) -> String {
    format!(
        "bfd_instance PEER {{\n    neighbor_ip {}\n    source_ip {}\n    min_rx {interval_ms}\n    \
         min_tx {interval_ms}\n    multiplier 3\n}}\n",
        peer.ip, me.ip
    )
}

/// An agent's file: VRRPv3 at 10 ms, and with `bfd` a session to `peer` tracked (weight 1),
/// `bfd_takeover` on the backup.
fn agent_conf(me: &Host, peer: &Host, priority: u8, bfd: Option<f64>) -> String {
    let mut instance = VrrpConf::v3("BACKUP", priority, "0.01");
    let Some(interval) = bfd else {
        return instance.render();
    };
    instance
        .extra
        .push("track_bfd {\n        PEER weight 1\n    }".into());
    if priority == BACKUP {
        instance.extra.push("bfd_takeover".into());
    }
    format!("{}{}", bfd_block(me, peer, interval), instance.render())
}

/// A part of the run, to measure alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    Takeover,
    FalseDowns,
    Cost,
}

pub fn run(
    binary: &Path,
    trials: usize,
    intervals: &[f64],
    window: Duration,
    only: Option<Part>,
) -> Result<Vec<Case>> {
    let wanted = |part| only.is_none_or(|o| o == part);
    let mut cases = Vec::new();
    for bfd in [None, intervals.first().copied()]
        .into_iter()
        .filter(|_| wanted(Part::Takeover))
    {
        eprintln!("bench bfd: crash takeover, BFD {bfd:?} ms, {trials} trials");
        let case = takeover(binary, bfd, trials)?;
        report(&case);
        cases.push(case);
    }
    for &interval in intervals.iter().filter(|_| wanted(Part::FalseDowns)) {
        eprintln!("bench bfd: false Downs at {interval} ms under stress-ng, {window:?}");
        let case = false_downs(binary, interval, window)?;
        report(&case);
        cases.push(case);
    }
    let cost_window = Duration::from_secs(20);
    for interval in [1.0, 10.0].into_iter().filter(|_| wanted(Part::Cost)) {
        for implementation in ["ha-agent", "keepalived", "frr bfdd"] {
            // FRR 8.4 takes 10 ms at the least.
            if implementation == "frr bfdd" && interval < 10.0 {
                continue;
            }
            eprintln!("bench bfd: cost of {implementation} at {interval} ms");
            let case = cost(binary, implementation, interval, cost_window)?;
            report(&case);
            cases.push(case);
        }
    }
    Ok(cases)
}

fn report(case: &Case) {
    match case {
        Case::Takeover { summary, .. } => eprintln!(
            "  VIP after the master stopped: p50 {:.2} ms, max {:.2} ms",
            summary.p50, summary.max
        ),
        Case::FalseDowns {
            downs, vip_events, ..
        } => eprintln!("  {downs} session downs, {vip_events} VIP events"),
        Case::Cost {
            cpu_percent,
            wakeups_per_s,
            machine_percent,
            machine_idle_percent,
            ..
        } => eprintln!(
            "  {cpu_percent:.3} % of a core, {wakeups_per_s:.0} wake-ups/s; the machine {machine_percent:.2} % (idle {machine_idle_percent:.2} %)"
        ),
    }
}

fn takeover(binary: &Path, bfd: Option<f64>, trials: usize) -> Result<Case> {
    let t = Topology::new(&["a", "b", "c"]);
    let (a, b) = (t.host("a"), t.host("b"));
    let monitor = AddrMonitor::start(b)?;
    // The quiet cut's program, attached now: attaching takes the RTNL lock.
    t.set_cable_quietly("a", true);
    let backup = Daemon::agent_with(b, t.dir(), &agent_conf(b, a, BACKUP, bfd), binary);
    let mdi = master_down_interval(3, VRRP_INTERVAL, BACKUP);
    let mut ms = Vec::new();
    for trial in 0..trials {
        let mut master = Daemon::agent_with(a, t.dir(), &agent_conf(a, b, MASTER, bfd), binary);
        wait_for("a master, b backup", Duration::from_secs(5), || {
            a.has_address("eth0", VIP) && !b.has_address("eth0", VIP)
        })?;
        if bfd.is_some() {
            // Trusted once Up for a second.
            wait_for("b's session Up for 1.2 s", Duration::from_secs(10), || {
                backup.try_status().is_some_and(|s| {
                    s["bfd"][0]["state"] == "Up"
                        && s["bfd"][0]["since_s"].as_f64().unwrap_or(0.0) > 1.2
                })
            })?;
        } else {
            std::thread::sleep(Duration::from_millis(300));
        }
        // A varying phase against the adverts.
        std::thread::sleep(Duration::from_micros(50_000 + 1_300 * trial as u64));
        monitor.clear();
        let stopped = realtime_ns();
        t.set_cable_quietly("a", false);
        master.process.signal(Signal::SIGSTOP);
        wait_for("the VIP on b", mdi + Duration::from_secs(2), || {
            monitor.events().iter().any(|e| e.added && e.addr == VIP)
        })?;
        let added = monitor
            .events()
            .iter()
            .find(|e| e.added && e.addr == VIP)
            .map(|e| e.at)
            .context("no VIP event")?;
        ms.push((added - stopped) as f64 / 1e6);
        // Where the time went, from b's log (its lines are stamped in µs): ms after the stop.
        let log = backup.log_text();
        let stopped_ms = (stopped % DAY_NS) as f64 / 1e6;
        let offset = |l: &str| ms_of_day(l).map(|at| at - stopped_ms);
        let after = |what: &str| {
            log.lines()
                .rfind(|l| l.contains(what))
                .and_then(offset)
                .map_or("-".to_owned(), |at| format!("{at:.2}"))
        };
        // Session Downs in the second before the stop: a session that left Up in it is not
        // trusted yet, and the takeover is VRRP's.
        let blips = log
            .lines()
            .filter(|l| l.contains("left Up") && offset(l).is_some_and(|at| at > -1000.0))
            .count();
        eprintln!(
            "  trial {trial}: session Down +{} ms, report +{} ms, takeover +{} ms, VIP +{:.2} ms; {} session Downs in the second before the stop",
            after("left Up"),
            after("BFD saw the master fail"),
            after("BACKUP -> MASTER"),
            ms.last().copied().unwrap_or_default(),
            blips.saturating_sub(usize::from(bfd.is_some()))
        );
        t.crash("a", &mut master.process);
        t.set_cable("a", true);
        t.set_cable_quietly("a", true);
    }
    Ok(Case::Takeover {
        detector: if bfd.is_some() {
            "bfd_takeover"
        } else {
            "vrrp"
        }
        .into(),
        bfd_interval_ms: bfd,
        master_down_interval_ms: mdi.as_secs_f64() * 1e3,
        summary: Summary::of(&ms),
        ms,
    })
}

fn false_downs(binary: &Path, interval: f64, window: Duration) -> Result<Case> {
    let t = Topology::new(&["a", "b"]);
    let (a, b) = (t.host("a"), t.host("b"));
    let monitors = [AddrMonitor::start(a)?, AddrMonitor::start(b)?];
    let agents = [
        Daemon::agent_with(
            a,
            t.dir(),
            &agent_conf(a, b, MASTER, Some(interval)),
            binary,
        ),
        Daemon::agent_with(
            b,
            t.dir(),
            &agent_conf(b, a, BACKUP, Some(interval)),
            binary,
        ),
    ];
    let downs = || -> u64 {
        agents
            .iter()
            .filter_map(|d| d.try_status()?["bfd"][0]["downs"].as_u64())
            .sum()
    };
    wait_for("both sessions Up for 2 s", Duration::from_secs(15), || {
        agents.iter().all(|d| {
            d.try_status().is_some_and(|s| {
                s["bfd"][0]["state"] == "Up" && s["bfd"][0]["since_s"].as_f64().unwrap_or(0.0) > 2.0
            })
        })
    })?;
    for m in &monitors {
        m.clear();
    }
    let before = downs();
    let load = Stress::start()?;
    std::thread::sleep(window);
    drop(load);
    Ok(Case::FalseDowns {
        bfd_interval_ms: interval,
        seconds: window.as_secs_f64(),
        downs: downs() - before,
        vip_events: monitors.iter().map(|m| m.events().len()).sum(),
    })
}

/// Every CPU's busy time so far (user, system, interrupts and softirqs; not idle, not
/// stolen by the hypervisor), ns.
fn machine_busy_ns() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("/proc/stat is empty")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = [0, 1, 2, 5, 6]
        .iter()
        .filter_map(|&i| ticks.get(i))
        .sum::<u64>();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(busy * 1_000_000_000 / hz)
}

fn cost(binary: &Path, implementation: &str, interval: f64, window: Duration) -> Result<Case> {
    let idle_before = machine_busy_ns()?;
    std::thread::sleep(window / 2);
    let machine_idle_percent =
        (machine_busy_ns()? - idle_before) as f64 / 1e9 / (window / 2).as_secs_f64() * 100.0;
    let t = Topology::new(&["a", "b"]);
    let (a, b) = (t.host("a"), t.host("b"));
    // The measured end is a; each implementation talks to its own kind.
    let frr_peer = |me: &Host, peer: &Host| {
        format!(
            " peer {} local-address {}\n  receive-interval {interval}\n  transmit-interval \
             {interval}\n  detect-multiplier 3\n",
            peer.ip, me.ip
        )
    };
    let keepalived_conf = |me: &Host, peer: &Host| bfd_block(me, peer, interval);
    // An idle VRRP instance beside the session (ha-agent needs one); v2 at 1 s.
    let agent = |me: &Host, peer: &Host| {
        format!(
            "{}{}",
            bfd_block(me, peer, interval),
            VrrpConf::seed("BACKUP", 100).render()
        )
    };
    let (pid, _peer, _measured): (u32, Box<dyn std::any::Any>, Box<dyn std::any::Any>) =
        match implementation {
            "ha-agent" => {
                let m = Daemon::agent_with(a, t.dir(), &agent(a, b), binary);
                let p = Daemon::agent_with(b, t.dir(), &agent(b, a), binary);
                wait_for("the session Up", Duration::from_secs(10), || {
                    m.try_status().is_some_and(|s| s["bfd"][0]["state"] == "Up")
                })?;
                (m.process.pid(), Box::new(p), Box::new(m))
            }
            "keepalived" => {
                let m = Daemon::keepalived_with(a, t.dir(), &keepalived_conf(a, b), &[]);
                let p = Daemon::keepalived_with(b, t.dir(), &keepalived_conf(b, a), &[]);
                std::thread::sleep(Duration::from_secs(3));
                (m.process.pid(), Box::new(p), Box::new(m))
            }
            _ => {
                let m = Bfdd::start(a, t.dir(), &frr_peer(a, b));
                let p = Bfdd::start(b, t.dir(), &frr_peer(b, a));
                wait_for("bfdd's session up", Duration::from_secs(10), || {
                    m.peer(&b.ip.to_string())
                        .is_some_and(|s| s["status"] == "up")
                })?;
                (m.pid(), Box::new(p), Box::new(m))
            }
        };
    std::thread::sleep(Duration::from_secs(2));
    let before = sched(pid);
    let machine_before = machine_busy_ns()?;
    std::thread::sleep(window);
    let used = sched(pid).since(&before);
    let machine = machine_busy_ns()? - machine_before;
    let seconds = window.as_secs_f64();
    Ok(Case::Cost {
        implementation: implementation.into(),
        bfd_interval_ms: interval,
        seconds,
        cpu_percent: used.cpu_ns as f64 / 1e9 / seconds * 100.0,
        wakeups_per_s: used.runs as f64 / seconds,
        machine_percent: machine as f64 / 1e9 / seconds * 100.0,
        machine_idle_percent,
    })
}

const DAY_NS: i128 = 86_400_000_000_000;

/// The time of day (ms, UTC) that a log line starts with: `2026-12-05T07:47:59.003061Z`.
fn ms_of_day(line: &str) -> Option<f64> {
    let clock = line.split_once('T')?.1.split_once('Z')?.0;
    let mut parts = clock.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    let seconds =
        h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?;
    Some(seconds * 1e3)
}
