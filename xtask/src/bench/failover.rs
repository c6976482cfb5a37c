//! Failover latency: the master (a, priority 150) crashes or stops; the backup (b, 120)
//! takes over. Measured from the master's last advert (crash) or its priority-0 advert
//! (graceful), as the observer's kernel timestamped them, to the VIP appearing on b
//! (netlink monitor in b) and to the observer receiving b's first gratuitous ARP.

use std::{net::Ipv4Addr, path::Path, time::Duration};

use anyhow::{Context as _, Result, bail};
use ha_tests::{
    Daemon, Topology,
    capture::{AddrMonitor, Frame, Ns, Observer, realtime_ns},
};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use super::{Impl, Summary, Timing, wait_for};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 200);
const MASTER_PRIORITY: u8 = 150;
const BACKUP_PRIORITY: u8 = 120;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Crash,
    Graceful,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Case {
    pub implementation: Impl,
    pub mode: Mode,
    pub version: u8,
    pub interval_ms: f64,
    /// The protocol's own delay: Master_Down_Interval (crash) or Skew_Time (graceful).
    pub floor_ms: f64,
    /// Per trial: reference → VIP on the backup, ms.
    pub vip_ms: Vec<f64>,
    /// Per trial: reference → the observer receives the backup's gratuitous ARP, ms.
    pub garp_ms: Vec<f64>,
    pub vip_overhead: Summary,
    pub garp_overhead: Summary,
    /// Both agents with an etcd witness (`bench witness`), lease TTL [`LEASE_TTL`].
    #[serde(default)]
    pub witness: bool,
}

/// The lease TTL of the agents' witness in `bench witness`.
pub const LEASE_TTL: Duration = Duration::from_secs(2);

fn ms(ns: Ns) -> f64 {
    ns as f64 / 1e6
}

pub fn run(binary: &Path, trials: usize) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    for timing in [Timing::V2_1S, Timing::V3_100MS, Timing::V3_10MS] {
        for implementation in Impl::ALL {
            for mode in [Mode::Crash, Mode::Graceful] {
                eprintln!(
                    "bench failover: {} {mode:?} v{} {:?}, {trials} trials",
                    implementation.name(),
                    timing.version,
                    timing.interval
                );
                let case = run_case(binary, implementation, mode, timing, trials, false)
                    .with_context(|| {
                        format!("{} {mode:?} v{}", implementation.name(), timing.version)
                    })?;
                report(&case);
                cases.push(case);
            }
        }
    }
    Ok(cases)
}

fn report(case: &Case) {
    eprintln!(
        "  VIP overhead p50 {:.3} ms, max {:.3} ms; GARP p50 {:.3} ms",
        case.vip_overhead.p50, case.vip_overhead.max, case.garp_overhead.p50
    );
}

/// `bench witness`: crash and graceful takeover with the etcd witness (three members on
/// their own hosts) beside plain VRRP and keepalived, v2 1 s and v3 0.1 s.
pub fn witness(binary: &Path, trials: usize) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    for timing in [Timing::V2_1S, Timing::V3_100MS] {
        for (implementation, witness) in [
            (Impl::Keepalived, false),
            (Impl::HaAgentDefault, false),
            (Impl::HaAgentDefault, true),
        ] {
            for mode in [Mode::Crash, Mode::Graceful] {
                let what = format!(
                    "{}{} {mode:?} v{} {:?}",
                    implementation.name(),
                    if witness { " + etcd witness" } else { "" },
                    timing.version,
                    timing.interval
                );
                eprintln!("bench witness: {what}, {trials} trials");
                let case = run_case(binary, implementation, mode, timing, trials, witness)
                    .with_context(|| what.clone())?;
                report(&case);
                cases.push(case);
            }
        }
    }
    Ok(cases)
}

fn run_case(
    binary: &Path,
    implementation: Impl,
    mode: Mode,
    timing: Timing,
    trials: usize,
    witness: bool,
) -> Result<Case> {
    let hosts: &[&str] = if witness {
        &["a", "b", "c", "e1", "e2", "e3"]
    } else {
        &["a", "b", "c"]
    };
    let t = Topology::new(hosts);
    let (a, b, c) = (t.host("a"), t.host("b"), t.host("c"));
    let cluster = match witness {
        true => Some(ha_tests::etcd::Cluster::start(&t, &hosts[3..])?),
        false => None,
    };
    let conf = |state, priority| witnessed(timing.conf(state, priority), cluster.as_ref());
    let observer = Observer::start(c, t.dir(), "failover")?;
    let monitor = AddrMonitor::start(b)?;
    let master_conf = conf("MASTER", MASTER_PRIORITY);
    let _backup = implementation.start(b, t.dir(), &conf("BACKUP", BACKUP_PRIORITY), binary);
    let floor = match mode {
        Mode::Crash => timing.master_down(BACKUP_PRIORITY),
        Mode::Graceful => timing.skew(BACKUP_PRIORITY),
    };
    let mut vip_ms = Vec::new();
    let mut garp_ms = Vec::new();
    // A cheap deterministic spread of where the failure lands between two adverts.
    let mut phase: u64 = 0x9e37_79b9;
    for trial in 0..trials {
        let mut master = implementation.start(a, t.dir(), &master_conf, binary);
        wait_for(
            "the master holding the VIP alone",
            timing.master_down(MASTER_PRIORITY) + Duration::from_secs(5),
            || a.has_address("eth0", VIP) && !b.has_address("eth0", VIP),
        )?;
        // Let the backup hear a few adverts, then fail at a pseudo-random phase.
        phase = phase
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let offset = timing
            .interval
            .mul_f64((phase >> 33) as f64 / (1u64 << 31) as f64);
        std::thread::sleep(timing.interval * 3 + offset);
        monitor.clear();
        let action_at = realtime_ns();
        match mode {
            Mode::Crash => t.crash("a", &mut master.process),
            Mode::Graceful => stop(&mut master)?,
        }
        // Watch the monitor, not `ip addr`: spawning processes now would load the CPUs
        // under measurement.
        // With the witness a crashed master's key lives out its lease.
        let lease = if witness { LEASE_TTL } else { Duration::ZERO };
        wait_for(
            "the VIP on the backup",
            floor.max(lease) + timing.interval + Duration::from_secs(2),
            || monitor.events().iter().any(|e| e.added && e.addr == VIP),
        )?;
        // The observer's capture of the GARP burst lands within a few ms.
        std::thread::sleep(Duration::from_millis(150));
        let (vip, garp) = measure(
            &observer.frames()?,
            &monitor.events(),
            mode,
            action_at,
            a.ip,
            &b.mac,
        )
        .with_context(|| format!("trial {trial}"))?;
        vip_ms.push(ms(vip));
        garp_ms.push(ms(garp));
        // Back to the starting point: a returns and preempts b.
        if mode == Mode::Crash {
            t.set_cable("a", true);
        }
        drop(master);
    }
    let floor_ms = floor.as_secs_f64() * 1000.0;
    let overhead = |v: &[f64]| Summary::of(&v.iter().map(|x| x - floor_ms).collect::<Vec<_>>());
    Ok(Case {
        implementation,
        mode,
        version: timing.version,
        interval_ms: timing.interval.as_secs_f64() * 1000.0,
        floor_ms,
        vip_overhead: overhead(&vip_ms),
        garp_overhead: overhead(&garp_ms),
        vip_ms,
        garp_ms,
        witness,
    })
}

/// `conf` rendered, naming `cluster` (if any) as its witness W1 with [`LEASE_TTL`].
pub fn witnessed(
    mut conf: ha_tests::VrrpConf,
    cluster: Option<&ha_tests::etcd::Cluster>,
) -> String {
    let Some(cluster) = cluster else {
        return conf.render();
    };
    conf.extra.push("witness W1".into());
    format!(
        "{}etcd_witness W1 {{\n    endpoints {}\n    lease_ttl {}\n}}\n",
        conf.render(),
        cluster.endpoints(),
        LEASE_TTL.as_secs()
    )
}

fn stop(daemon: &mut Daemon) -> Result<()> {
    daemon.process.signal(Signal::SIGTERM);
    if daemon
        .process
        .wait_timeout(Duration::from_secs(10))
        .is_none()
    {
        bail!("the master did not stop on SIGTERM");
    }
    Ok(())
}

/// (reference → VIP on b, reference → GARP from b) in ns for one trial.
fn measure(
    frames: &[Frame],
    vip_events: &[ha_tests::capture::AddrEvent],
    mode: Mode,
    action_at: Ns,
    master: Ipv4Addr,
    backup_mac: &str,
) -> Result<(Ns, Ns)> {
    let vip_at = vip_events
        .iter()
        .find(|e| e.added && e.addr == VIP && e.at >= action_at)
        .map(|e| e.at)
        .context("no VIP-added event on the backup")?;
    let reference = match mode {
        // The master's last advert before the failure.
        Mode::Crash => frames
            .iter()
            .filter_map(|f| match f {
                Frame::Advert { at, src, priority }
                    if *src == master && *priority > 0 && *at < vip_at =>
                {
                    Some(*at)
                }
                _ => None,
            })
            .max(),
        // Its priority-0 advert.
        Mode::Graceful => frames.iter().find_map(|f| match f {
            Frame::Advert {
                at,
                src,
                priority: 0,
            } if *src == master && *at >= action_at - 1_000_000 => Some(*at),
            _ => None,
        }),
    }
    .context("no reference advert from the master at the observer")?;
    let garp_at = frames
        .iter()
        .find_map(|f| match f {
            Frame::Garp { at, mac, ip } if mac == backup_mac && *ip == VIP && *at >= reference => {
                Some(*at)
            }
            _ => None,
        })
        .context("no gratuitous ARP from the backup at the observer")?;
    Ok((vip_at - reference, garp_at - reference))
}
