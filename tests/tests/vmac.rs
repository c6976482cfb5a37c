//! `use_vmac` against keepalived 2.2.7 using it too: the VIP lives on a macvlan `vrrp.107` with
//! the virtual router's MAC 00:00:5e:00:01:6b on both nodes, so the observer's ARP entry for
//! the VIP never changes across a failover (sampled all along), and the VIP answers pings on
//! the new master at once. ha-agent as master (crashed) and as backup (keepalived stops).

use std::{net::Ipv4Addr, time::Duration};

use ha_tests::{Daemon, Host, Kind, Topology, VrrpConf, wait_until};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 200);
const VMAC: &str = "00:00:5e:00:01:6b";
const WITHIN: Duration = Duration::from_secs(5);

fn conf(state: &'static str, priority: u8) -> String {
    let mut c = VrrpConf::v3(state, priority, "0.1");
    c.extra = vec!["use_vmac".into()];
    c.render()
}

/// Whether `host` has the macvlan, with the VMAC, and holds the VIP on it.
fn vmac_state(host: &Host) -> Option<bool> {
    let out = host.sh(&["ip", "-o", "link", "show"]);
    let line = out.lines().find(|l| l.contains(" vrrp.107@eth0:"))?;
    line.contains(VMAC)
        .then(|| host.has_address("vrrp.107", VIP))
}

fn wait_holder(holder: &Host, other: &Host) {
    wait_until(
        &format!("the VIP on {}'s VMAC only", holder.name),
        WITHIN,
        || {
            (vmac_state(holder) == Some(true)
                && vmac_state(other) != Some(true)
                && !holder.has_address("eth0", VIP))
            .then_some(())
        },
    );
}

/// The observer's ARP entries for the VIP while `during` runs, every 20 ms.
fn arp_entries_during(observer: &Host, during: impl FnOnce()) -> Vec<String> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let observer = observer.clone();
    let sampler = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            observer.ping_once(VIP);
            if let Some(mac) = observer.arp_entry(VIP)
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

fn failover_keeps_the_mac(master: Kind) {
    let t = Topology::new(&["a", "b", "c"]);
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
    assert!(c.ping_once(VIP));
    assert_eq!(c.arp_entry(VIP).as_deref(), Some(VMAC));

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
            c.ping_once(VIP).then_some(())
        });
    });
    assert_eq!(seen, [VMAC], "the observer's ARP entries for the VIP");
    assert!(!b.has_address("eth0", VIP));
    if master == Kind::Keepalived {
        // The agent, the new master, answers for the VIP with the VMAC alone.
        assert_eq!(c.arp_entry(VIP).as_deref(), Some(VMAC));
    }
}

#[test]
fn vmac_agent_master_crashes_keepalived_takes_over_with_the_same_mac() {
    failover_keeps_the_mac(Kind::HaAgent);
}

#[test]
fn vmac_keepalived_master_stops_agent_takes_over_with_the_same_mac() {
    failover_keeps_the_mac(Kind::Keepalived);
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
