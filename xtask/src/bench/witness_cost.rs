//! What the etcd witness costs in steady state: a MASTER/BACKUP pair of ha-agent (the
//! seed's VRRPv2 1 s) idle for a window, without and with `witness` (`lease_ttl 2`: a
//! keep-alive every 0.5 s), the same etcd cluster running in both cases. CPU time and
//! wake-ups of each agent's process group, and transitions (spurious: none is expected).

use std::{path::Path, time::Duration};

use anyhow::Result;
use ha_tests::{Topology, capture::AddrMonitor, etcd};
use serde::{Deserialize, Serialize};

use super::{Impl, Timing, steady::sched, wait_for};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cost {
    pub witness: bool,
    pub window_s: f64,
    /// CPU time per minute, ms.
    pub master_cpu_ms_per_min: f64,
    pub backup_cpu_ms_per_min: f64,
    /// Times put on a CPU, per second.
    pub master_wakeups_per_s: f64,
    pub backup_wakeups_per_s: f64,
    /// VIP additions and removals on either node during the window.
    pub vip_events: usize,
}

pub fn run(binary: &Path, window: Duration) -> Result<Vec<Cost>> {
    [false, true]
        .into_iter()
        .map(|witness| {
            eprintln!("bench witness cost: witness {witness}, {window:?} idle");
            let cost = measure(binary, window, witness)?;
            eprintln!(
                "  master {:.1} ms CPU/min {:.1} wake-ups/s; backup {:.1} ms CPU/min {:.1} wake-ups/s; {} VIP events",
                cost.master_cpu_ms_per_min,
                cost.master_wakeups_per_s,
                cost.backup_cpu_ms_per_min,
                cost.backup_wakeups_per_s,
                cost.vip_events
            );
            Ok(cost)
        })
        .collect()
}

fn measure(binary: &Path, window: Duration, witness: bool) -> Result<Cost> {
    let hosts = ["a", "b", "e1", "e2", "e3"];
    let t = Topology::new(&hosts);
    let cluster = etcd::Cluster::start(&t, &hosts[2..])?;
    let conf = |state, priority| {
        super::failover::witnessed(
            Timing::V2_1S.conf(state, priority),
            witness.then_some(&cluster),
        )
    };
    let (a, b) = (t.host("a"), t.host("b"));
    let master = Impl::HaAgentDefault.start(a, t.dir(), &conf("MASTER", 150), binary);
    let backup = Impl::HaAgentDefault.start(b, t.dir(), &conf("BACKUP", 120), binary);
    let vip = std::net::Ipv4Addr::new(192, 168, 2, 200);
    wait_for("a holding the VIP", Duration::from_secs(15), || {
        a.has_address("eth0", vip)
    })?;
    // Past the start-up (XDP attach, first lease, first GARP refresh).
    std::thread::sleep(Duration::from_secs(3));
    let monitors = [AddrMonitor::start(a)?, AddrMonitor::start(b)?];
    let (m0, b0) = (sched(master.process.pid()), sched(backup.process.pid()));
    std::thread::sleep(window);
    let (m1, b1) = (sched(master.process.pid()), sched(backup.process.pid()));
    let (m, bk) = (m1.since(&m0), b1.since(&b0));
    let secs = window.as_secs_f64();
    Ok(Cost {
        witness,
        window_s: secs,
        master_cpu_ms_per_min: m.cpu_ns as f64 / 1e6 / secs * 60.0,
        backup_cpu_ms_per_min: bk.cpu_ns as f64 / 1e6 / secs * 60.0,
        master_wakeups_per_s: m.runs as f64 / secs,
        backup_wakeups_per_s: bk.runs as f64 / secs,
        vip_events: monitors.iter().map(|m| m.events().len()).sum(),
    })
}
