//! `use_vmac` against keepalived 2.2.7 using it too: the VIP lives on a macvlan `vrrp.107` with
//! the virtual router's MAC 00:00:5e:00:01:6b on both nodes, so the observer's ARP entry for
//! the VIP never changes across a failover (sampled all along), and the VIP answers pings on
//! the new master at once. ha-agent as master (crashed) and as backup (keepalived stops).
//! The same over IPv6: the VMAC 00:00:5e:00:02:6b, the observer's neighbour entry.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use ha_tests::{Daemon, Host, Kind, Topology, VrrpConf, wait_until};

const VIP4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 2, 200));
const VIP6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x200));
const WITHIN: Duration = Duration::from_secs(5);

thread_local! {
    /// The VIP of the running test: IPv4 unless it runs over IPv6.
    static VIP_OF_TEST: std::cell::Cell<IpAddr> = const { std::cell::Cell::new(VIP4) };
}

fn vip() -> IpAddr {
    VIP_OF_TEST.with(|v| v.get())
}

/// The virtual router's MAC for VRID 107 in the test's family.
fn vmac() -> &'static str {
    if vip().is_ipv6() {
        "00:00:5e:00:02:6b"
    } else {
        "00:00:5e:00:01:6b"
    }
}

fn conf(state: &'static str, priority: u8) -> String {
    let mut c = VrrpConf::v3(state, priority, "0.1");
    c.extra = vec!["use_vmac".into()];
    c.vips = vec![vip().to_string()];
    c.render()
}

/// Whether `host` has the macvlan, with the VMAC, and holds the VIP on it.
fn vmac_state(host: &Host) -> Option<bool> {
    let out = host.sh(&["ip", "-o", "link", "show"]);
    let line = out.lines().find(|l| l.contains(" vrrp.107@eth0:"))?;
    line.contains(vmac())
        .then(|| host.has_address("vrrp.107", vip()))
}

fn wait_holder(holder: &Host, other: &Host) {
    wait_until(
        &format!("the VIP on {}'s VMAC only", holder.name),
        WITHIN,
        || {
            (vmac_state(holder) == Some(true)
                && vmac_state(other) != Some(true)
                && !holder.has_address("eth0", vip()))
            .then_some(())
        },
    );
}

/// The observer's ARP entries for the VIP while `during` runs, every 20 ms.
fn arp_entries_during(observer: &Host, during: impl FnOnce()) -> Vec<String> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let observer = observer.clone();
    let vip = vip();
    let sampler = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            observer.ping_once(vip);
            if let Some(mac) = observer.arp_entry(vip)
                && seen.last() != Some(&mac)
            {
                seen.push(mac);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        seen
    });
    during();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap()
}

fn failover_keeps_the_mac(master: Kind, vip: IpAddr) {
    VIP_OF_TEST.with(|v| v.set(vip));
    let t = Topology::new(&["a", "b", "c"]);
    if vip.is_ipv6() {
        t.enable_ipv6();
    }
    let (a, b, c) = (t.host("a"), t.host("b"), t.host("c"));
    let start = |kind, host, text: &str| match kind {
        Kind::HaAgent => Daemon::agent(host, t.dir(), text),
        Kind::Keepalived => Daemon::keepalived(host, t.dir(), text),
    };
    let backup = match master {
        Kind::HaAgent => Kind::Keepalived,
        Kind::Keepalived => Kind::HaAgent,
    };
    // keepalived leaves the interface under the VMAC sending ARP requests from the VIP (for
    // the peers the VIP answers) with that interface's MAC, and neighbours then learn the VIP
    // there: ha-agent sets arp_announce=2 itself, for keepalived it is set by hand.
    let keepalived_host = if master == Kind::Keepalived { a } else { b };
    keepalived_host.sh(&["sysctl", "-qw", "net.ipv4.conf.eth0.arp_announce=2"]);
    let mut da = start(master, a, &conf("MASTER", 150));
    wait_holder(a, b);
    let _db = start(backup, b, &conf("BACKUP", 120));
    wait_until("b's VMAC up, without the VIP", WITHIN, || {
        (vmac_state(b) == Some(false)).then_some(())
    });
    assert!(c.ping_once(vip));
    assert_eq!(c.arp_entry(vip).as_deref(), Some(vmac()));

    let seen = arp_entries_during(c, || {
        match master {
            // ha-agent crashes with its cable; keepalived stops (priority 0).
            Kind::HaAgent => t.crash("a", &mut da.process),
            Kind::Keepalived => da.process.signal(nix::sys::signal::Signal::SIGTERM),
        }
        wait_until("the VIP on b's VMAC", WITHIN, || {
            (vmac_state(b) == Some(true)).then_some(())
        });
        wait_until("the VIP answering on b", WITHIN, || {
            c.ping_once(vip).then_some(())
        });
    });
    assert_eq!(seen, [vmac()], "the observer's ARP entries for the VIP");
    assert!(!b.has_address("eth0", vip));
    if master == Kind::Keepalived {
        // The agent, the new master, answers for the VIP with the VMAC alone.
        assert_eq!(c.arp_entry(vip).as_deref(), Some(vmac()));
    }
}

#[test]
fn vmac_agent_master_crashes_keepalived_takes_over_with_the_same_mac() {
    failover_keeps_the_mac(Kind::HaAgent, VIP4);
}

#[test]
fn vmac_keepalived_master_stops_agent_takes_over_with_the_same_mac() {
    failover_keeps_the_mac(Kind::Keepalived, VIP4);
}

#[test]
fn vmac_ipv6_agent_master_crashes_keepalived_takes_over_with_the_same_mac() {
    failover_keeps_the_mac(Kind::HaAgent, VIP6);
}

#[test]
fn vmac_ipv6_keepalived_master_stops_agent_takes_over_with_the_same_mac() {
    failover_keeps_the_mac(Kind::Keepalived, VIP6);
}

/// The agent's macvlan goes when it stops, and the interface under it gets its ARP settings
/// back.
#[test]
fn vmac_is_removed_at_stop() {
    let t = Topology::new(&["a"]);
    let a = t.host("a");
    let before = a.sh(&["sysctl", "-n", "net.ipv4.conf.eth0.arp_ignore"]);
    let mut agent = Daemon::agent(a, t.dir(), &conf("MASTER", 150));
    wait_until("the VIP on the VMAC", WITHIN, || {
        (vmac_state(a) == Some(true)).then_some(())
    });
    assert_eq!(
        a.sh(&["sysctl", "-n", "net.ipv4.conf.eth0.arp_ignore"])
            .trim(),
        "1"
    );
    agent.process.signal(nix::sys::signal::Signal::SIGTERM);
    agent.process.wait_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(vmac_state(a), None, "vrrp.107 removed");
    assert_eq!(
        a.sh(&["sysctl", "-n", "net.ipv4.conf.eth0.arp_ignore"]),
        before
    );
}
