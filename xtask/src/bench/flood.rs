//! Forged-advert flood: a third host sends invalid adverts for the pair's VRID as fast as one
//! thread can (priority 200 with a wrong password, a right one at TTL 64, a bad checksum, an
//! unknown VRID, in turn) at a MASTER/BACKUP pair (VRRPv2 1 s, PASS) for a window: VIP
//! transitions (none is right), CPU of both nodes, and with XDP what their kernels dropped.

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use ha_tests::{Daemon, Topology, capture::AddrMonitor};
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::{Impl, Timing, steady::sched, wait_for};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 200);
const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
const PASS: &[u8; 8] = b"1111\0\0\0\0";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Flood {
    pub implementation: Impl,
    pub window_s: f64,
    /// Forged adverts sent by the flooder, per second.
    pub sent_per_s: f64,
    pub master_cpu_pct: f64,
    pub backup_cpu_pct: f64,
    /// VIP added or removed on either node during the flood.
    pub transitions: usize,
    /// Adverts the XDP programs of both nodes dropped, per second (ha-agent --xdp only).
    pub kernel_dropped_per_s: Option<f64>,
}

pub fn run(binary: &std::path::Path, window: Duration) -> Result<Vec<Flood>> {
    Impl::ALL
        .into_iter()
        .map(|implementation| {
            eprintln!("bench flood: {} for {window:?}", implementation.name());
            let r = measure(binary, implementation, window)
                .with_context(|| implementation.name().to_owned())?;
            eprintln!(
                "  {:.0} forged/s, MASTER {:.1} % BACKUP {:.1} % CPU, {} transitions, kernel drops/s {:?}",
                r.sent_per_s, r.master_cpu_pct, r.backup_cpu_pct, r.transitions, r.kernel_dropped_per_s
            );
            Ok(r)
        })
        .collect()
}

fn measure(binary: &std::path::Path, implementation: Impl, window: Duration) -> Result<Flood> {
    let t = Topology::new(&["a", "b", "c"]);
    let (a, b, c) = (t.host("a"), t.host("b"), t.host("c"));
    let timing = Timing::V2_1S;
    let master = implementation.start(a, t.dir(), &timing.conf("MASTER", 150).render(), binary);
    let backup = implementation.start(b, t.dir(), &timing.conf("BACKUP", 120).render(), binary);
    wait_for(
        "the master holding the VIP",
        timing.master_down(150) + Duration::from_secs(10),
        || a.has_address("eth0", VIP) && !b.has_address("eth0", VIP),
    )?;
    // keepalived sends its second GARP burst 5 s after becoming master.
    std::thread::sleep(Duration::from_secs(6));
    let dropped = || -> Option<u64> {
        (implementation == Impl::HaAgentXdp)
            .then(|| [&master, &backup].iter().map(|d| kernel_drops(d)).sum())
    };
    let monitors = [AddrMonitor::start(a)?, AddrMonitor::start(b)?];
    let (m0, b0, d0) = (
        sched(master.process.pid()),
        sched(backup.process.pid()),
        dropped(),
    );
    let sent = c.in_netns(|| flood(window))?;
    let (m1, b1, d1) = (
        sched(master.process.pid()),
        sched(backup.process.pid()),
        dropped(),
    );
    let secs = window.as_secs_f64();
    Ok(Flood {
        implementation,
        window_s: secs,
        sent_per_s: sent as f64 / secs,
        master_cpu_pct: m1.since(&m0).cpu_ns as f64 / 1e9 / secs * 100.0,
        backup_cpu_pct: b1.since(&b0).cpu_ns as f64 / 1e9 / secs * 100.0,
        transitions: monitors.iter().map(|m| m.events().len()).sum(),
        kernel_dropped_per_s: d0.zip(d1).map(|(d0, d1)| (d1 - d0) as f64 / secs),
    })
}

/// VRRP packets ha-agent's XDP program dropped (every verdict but accepted, absorbed and
/// unknown VRID, which pass).
fn kernel_drops(daemon: &Daemon) -> u64 {
    let status = daemon.status();
    status["xdp"]["verdicts"]["eth0"]
        .as_object()
        .map_or(0, |verdicts| {
            verdicts
                .iter()
                .filter(|(name, _)| {
                    !["accepted", "absorbed", "unknown_vrid"].contains(&name.as_str())
                })
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        })
}

/// Sends the four forgeries in turn from this thread's namespace until `window` has passed;
/// returns how many went out.
fn flood(window: Duration) -> Result<u64> {
    let socket = |ttl: u32| -> Result<Socket> {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112)))?;
        s.bind_device(Some(b"eth0"))?;
        s.set_multicast_ttl_v4(ttl)?;
        s.set_nonblocking(true)?;
        Ok(s)
    };
    let (valid_ttl, low_ttl) = (socket(255)?, socket(64)?);
    let mut bad_checksum = advert(107, PASS);
    bad_checksum[6] ^= 0x5a;
    let forged = [
        (&valid_ttl, advert(107, b"2222\0\0\0\0")),
        (&low_ttl, advert(107, PASS)),
        (&valid_ttl, bad_checksum),
        (&valid_ttl, advert(9, PASS)),
    ];
    let dst = SockAddr::from(SocketAddrV4::new(GROUP, 0));
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < window {
        for (socket, msg) in &forged {
            // A full send queue (EAGAIN) is the limit of this thread's rate: not counted.
            if socket.send_to(msg, &dst).is_ok() {
                sent += 1;
            }
        }
    }
    Ok(sent)
}

/// A VRRPv2 advert at priority 200 for the VIP with PASS data `pass`.
fn advert(vrid: u8, pass: &[u8; 8]) -> Vec<u8> {
    let mut m = vec![0x21, vrid, 200, 1, 1, 1, 0, 0];
    m.extend_from_slice(&VIP.octets());
    m.extend_from_slice(pass);
    let sum = checksum(&m);
    m[6..8].copy_from_slice(&sum.to_be_bytes());
    m
}

/// The Internet checksum (VRRPv2 covers the message only).
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
