//! Check-triggered switchover: the master (a, priority 150) tracks a check with weight -50;
//! the check starts failing, a advertises 100, and the backup (b, 120) takes over. Measured
//! from the check's first failing run (the script stamps it) to a's first advert at 100 (the
//! observer's kernel stamp), to the VIP on b (netlink monitor in b) and to b's notify_master
//! starting (the script stamps it). keepalived, ha-agent as the RFC says, and ha-agent with
//! `fast_preempt` on both nodes.

use std::{
    net::Ipv4Addr,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result};
use ha_tests::{
    Topology,
    capture::{AddrMonitor, Frame, Ns, Observer, realtime_ns},
    daemons::config,
};
use serde::{Deserialize, Serialize};

use super::{Impl, Summary, Timing, wait_for};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 200);
const MASTER_PRIORITY: u8 = 150;
const BACKUP_PRIORITY: u8 = 120;
const LOWERED_PRIORITY: u8 = 100;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Case {
    pub implementation: Impl,
    pub fast_preempt: bool,
    pub version: u8,
    pub interval_ms: f64,
    pub master_down_ms: f64,
    pub skew_ms: f64,
    /// Per trial, ms from the check's first failing run to a's first advert at 100.
    pub lowered_ms: Vec<f64>,
    /// ... to the VIP on b.
    pub vip_ms: Vec<f64>,
    /// ... to b's notify_master starting.
    pub notify_ms: Vec<f64>,
    pub lowered: Summary,
    pub vip: Summary,
    pub notify: Summary,
}

impl Case {
    pub fn label(&self) -> String {
        match (self.implementation, self.fast_preempt) {
            (Impl::Keepalived, _) => "keepalived".into(),
            (implementation, true) => format!("{} fast_preempt", implementation.name()),
            (implementation, false) => format!("{} (RFC)", implementation.name()),
        }
    }
}

pub fn run(binary: &Path, trials: usize) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    for timing in [Timing::V2_1S, Timing::V3_100MS] {
        for (implementation, fast) in [
            (Impl::Keepalived, false),
            (Impl::HaAgent, false),
            (Impl::HaAgent, true),
        ] {
            eprintln!(
                "bench switchover: {} fast_preempt={fast} v{} {:?}, {trials} trials",
                implementation.name(),
                timing.version,
                timing.interval
            );
            let case = run_case(binary, implementation, fast, timing, trials)
                .with_context(|| format!("{} v{}", implementation.name(), timing.version))?;
            eprintln!(
                "  check failing -> VIP on b p50 {:.1} ms, max {:.1} ms; -> notify_master p50 {:.1} ms",
                case.vip.p50, case.vip.max, case.notify.p50
            );
            cases.push(case);
        }
    }
    Ok(cases)
}

fn script(path: &Path, body: &str) -> Result<()> {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// The stamps (ns since the epoch) a script appended to `log`.
fn stamps(log: &Path) -> Vec<Ns> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn first_after(log: &Path, after: Ns) -> Option<Ns> {
    stamps(log).into_iter().find(|&s| s >= after)
}

/// A node's keepalived.conf: the check (keepalived wants it before the instance), its
/// tracking with weight -50, and a notify_master that stamps its start.
fn node_conf(
    timing: Timing,
    state: &'static str,
    priority: u8,
    fast: bool,
    check: &Path,
    notify: &Path,
) -> String {
    let mut conf = timing.conf(state, priority);
    conf.extra = vec![
        "track_script {\n        chk\n    }".into(),
        format!("notify_master \"{}\"", notify.display()),
    ];
    if fast {
        conf.extra.push("fast_preempt".into());
    }
    let globals = config(&[]);
    let instance = config(&[conf])[globals.len()..].to_owned();
    // keepalived 2.2.7 runs scripts at most once a second: the same for both.
    format!(
        "{globals}vrrp_script chk {{\n    script \"{}\"\n    interval 1\n    weight -50\n}}\n{instance}",
        check.display()
    )
}

fn run_case(
    binary: &Path,
    implementation: Impl,
    fast: bool,
    timing: Timing,
    trials: usize,
) -> Result<Case> {
    let t = Topology::new(&["a", "b", "c"]);
    let (a, b, c) = (t.host("a"), t.host("b"), t.host("c"));
    let file = |name: &str| -> PathBuf { t.dir().join(name) };
    let (ok, failed, became_master) = (file("ok-a"), file("failed-a.log"), file("master-b.log"));
    // a's check fails while `ok-a` is missing and stamps each failing run; b's always passes.
    script(
        &file("check-a.sh"),
        &format!(
            "[ -e {} ] && exit 0\ndate +%s%N >> {}\nexit 1",
            ok.display(),
            failed.display()
        ),
    )?;
    script(&file("check-b.sh"), "exit 0")?;
    script(
        &file("notify-b.sh"),
        &format!("date +%s%N >> {}", became_master.display()),
    )?;
    script(&file("notify-a.sh"), "exit 0")?;
    std::fs::write(&ok, "")?;
    let observer = Observer::start(c, t.dir(), "switchover")?;
    let monitor = AddrMonitor::start(b)?;
    let conf_a = node_conf(
        timing,
        "MASTER",
        MASTER_PRIORITY,
        fast,
        &file("check-a.sh"),
        &file("notify-a.sh"),
    );
    let conf_b = node_conf(
        timing,
        "BACKUP",
        BACKUP_PRIORITY,
        fast,
        &file("check-b.sh"),
        &file("notify-b.sh"),
    );
    let _a = implementation.start(a, t.dir(), &conf_a, binary);
    let _b = implementation.start(b, t.dir(), &conf_b, binary);
    let settle = timing.master_down(MASTER_PRIORITY) + Duration::from_secs(5);
    let (mut lowered_ms, mut vip_ms, mut notify_ms) = (Vec::new(), Vec::new(), Vec::new());
    let mut phase: u64 = 0x9e37_79b9;
    for trial in 0..trials {
        wait_for("a holding the VIP alone", settle, || {
            a.has_address("eth0", VIP) && !b.has_address("eth0", VIP)
        })?;
        phase = phase
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let offset = Duration::from_secs(1).mul_f64((phase >> 33) as f64 / (1u64 << 31) as f64);
        std::thread::sleep(timing.interval * 3 + offset);
        monitor.clear();
        let removed_at = realtime_ns();
        std::fs::remove_file(&ok)?;
        wait_for(
            "the VIP on b and its notify_master",
            Duration::from_secs(1) + settle,
            || {
                monitor.events().iter().any(|e| e.added && e.addr == VIP)
                    && first_after(&became_master, removed_at).is_some()
            },
        )
        .with_context(|| format!("trial {trial}"))?;
        std::thread::sleep(Duration::from_millis(100));
        let failed_at = first_after(&failed, removed_at).context("no failing check run")?;
        let vip_at = monitor
            .events()
            .iter()
            .find(|e| e.added && e.addr == VIP)
            .map(|e| e.at)
            .context("no VIP event")?;
        let notify_at = first_after(&became_master, removed_at).context("no notify")?;
        let lowered_at = observer
            .frames()?
            .iter()
            .find_map(|f| match f {
                Frame::Advert { at, src, priority }
                    if *src == a.ip && *priority == LOWERED_PRIORITY && *at >= failed_at =>
                {
                    Some(*at)
                }
                _ => None,
            })
            .context("no advert at priority 100 from a")?;
        let ms = |at: Ns| (at as f64 - failed_at as f64) / 1e6;
        lowered_ms.push(ms(lowered_at));
        vip_ms.push(ms(vip_at));
        notify_ms.push(ms(notify_at));
        // Heal a: it preempts b again.
        std::fs::write(&ok, "")?;
    }
    Ok(Case {
        implementation,
        fast_preempt: fast,
        version: timing.version,
        interval_ms: timing.interval.as_secs_f64() * 1e3,
        master_down_ms: timing.master_down(BACKUP_PRIORITY).as_secs_f64() * 1e3,
        skew_ms: timing.skew(BACKUP_PRIORITY).as_secs_f64() * 1e3,
        lowered: Summary::of(&lowered_ms),
        vip: Summary::of(&vip_ms),
        notify: Summary::of(&notify_ms),
        lowered_ms,
        vip_ms,
        notify_ms,
    })
}
