//! ha-agent against ha-agent: election, crash failover, preemption, graceful stop, nopreempt.

use std::{net::Ipv4Addr, time::Duration};

use ha_tests::{
    Daemon, Host, Topology, VrrpConf,
    daemons::{agent_binary, config, master_down_interval},
    wait::assert_never,
    wait_until,
};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 200);

mod forge;

/// Master_Down_Interval of VRRPv2 at 1 s for `priority`.
fn mdi_v2(priority: u8) -> Duration {
    master_down_interval(2, Duration::from_secs(1), priority)
}

/// Slack for process scheduling on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(700);

fn holder(t: &Topology, hosts: &[&str]) -> Vec<String> {
    hosts
        .iter()
        .filter(|h| t.host(h).has_address("eth0", VIP))
        .map(|h| h.to_string())
        .collect()
}

#[test]
fn crash_failover_preemption_and_arp_drift() {
    let t = Topology::new(&["a", "b", "c"]);
    let (a, b, c) = (t.host("a"), t.host("b"), t.host("c"));
    let mut agent_a = Daemon::agent(a, t.dir(), &VrrpConf::seed("MASTER", 150).render());
    let agent_b = Daemon::agent(b, t.dir(), &VrrpConf::seed("BACKUP", 120).render());

    // Both start as backup; a takes over after its Master_Down_Interval.
    let (_, took) = wait_until(
        "VIP on a",
        mdi_v2(150) + SLACK + Duration::from_secs(1),
        || a.has_address("eth0", VIP).then_some(()),
    );
    assert!(
        took >= mdi_v2(150) - Duration::from_millis(300),
        "a took over too early: {took:?}"
    );
    assert_eq!(holder(&t, &["a", "b", "c"]), ["a"]);
    assert!(c.ping_once(VIP), "the observer reaches the VIP");
    assert_eq!(c.arp_entry(VIP).as_deref(), Some(a.mac.as_str()));
    assert_eq!(agent_a.instance_field("state"), "MASTER");

    // Crash a: the backup takes over within its Master_Down_Interval of a's last advert.
    t.crash("a", &mut agent_a.process);
    let (_, took) = wait_until("VIP on b", mdi_v2(120) + SLACK, || {
        b.has_address("eth0", VIP).then_some(())
    });
    assert!(
        took + Duration::from_secs(1) >= mdi_v2(120),
        "b took over {took:?} after the crash, sooner than Master_Down_Interval allows"
    );
    // The gratuitous ARP moves the observer's cache to b's MAC.
    wait_until("observer ARP entry -> b", Duration::from_secs(2), || {
        (c.arp_entry(VIP).as_deref() == Some(b.mac.as_str())).then_some(())
    });
    assert!(c.ping_once(VIP));

    // a comes back (a leftover VIP from the crash is still configured on it): it removes
    // it at start, waits as backup, then preempts the lower-priority b.
    t.set_cable("a", true);
    assert!(
        a.has_address("eth0", VIP),
        "a SIGKILLed agent leaves its VIP behind"
    );
    let _agent_a = Daemon::agent(a, t.dir(), &VrrpConf::seed("MASTER", 150).render());
    wait_until(
        "leftover VIP removed from a",
        Duration::from_secs(2),
        || (!a.has_address("eth0", VIP)).then_some(()),
    );
    let (_, took) = wait_until(
        "VIP back on a",
        mdi_v2(150) + SLACK + Duration::from_secs(1),
        || a.has_address("eth0", VIP).then_some(()),
    );
    assert!(
        took >= mdi_v2(150) - Duration::from_millis(500),
        "preempted too early: {took:?}"
    );
    wait_until("VIP gone from b", Duration::from_secs(1), || {
        (!b.has_address("eth0", VIP)).then_some(())
    });
    wait_until("observer ARP entry -> a", Duration::from_secs(2), || {
        (c.arp_entry(VIP).as_deref() == Some(a.mac.as_str())).then_some(())
    });
    // The new master's gratuitous ARP is part of a handover, not a split brain: b reads a's
    // advert (sent first) before it judges the ARP, and does not answer it.
    assert!(
        !agent_b.log_text().contains("split brain"),
        "{}",
        agent_b.log_text()
    );
}

#[test]
fn graceful_stop_hands_over_after_skew_time() {
    let t = Topology::new(&["a", "b"]);
    let (a, b) = (t.host("a"), t.host("b"));
    let mut agent_a = Daemon::agent(a, t.dir(), &VrrpConf::seed("MASTER", 150).render());
    let agent_b = Daemon::agent(b, t.dir(), &VrrpConf::seed("BACKUP", 120).render());
    wait_until(
        "VIP on a",
        mdi_v2(150) + SLACK + Duration::from_secs(1),
        || a.has_address("eth0", VIP).then_some(()),
    );
    wait_until("b sees a as master", Duration::from_secs(2), || {
        (agent_b.instance_field("master") == a.ip.to_string()).then_some(())
    });

    let start = std::time::Instant::now();
    agent_a.stop();
    assert!(!a.has_address("eth0", VIP), "a released its VIP on SIGTERM");
    // b takes over Skew_Time (136/256 s) after a's priority-0 advert.
    let skew = Duration::from_secs(1) * 136 / 256;
    wait_until("VIP on b", skew + SLACK, || {
        b.has_address("eth0", VIP).then_some(())
    });
    assert!(
        start.elapsed() >= skew - Duration::from_millis(50),
        "took over before Skew_Time"
    );
    let transition = &agent_b.instance_field("last_transition");
    assert_eq!(transition["to"], "MASTER");
    assert_eq!(transition["reason"], "master sent priority 0");
}

#[test]
fn nopreempt_keeps_the_current_master() {
    let t = Topology::new(&["a", "b"]);
    let (a, b) = (t.host("a"), t.host("b"));
    let _agent_b = Daemon::agent(b, t.dir(), &VrrpConf::seed("BACKUP", 120).render());
    wait_until(
        "VIP on b",
        mdi_v2(120) + SLACK + Duration::from_secs(1),
        || b.has_address("eth0", VIP).then_some(()),
    );
    let mut conf = VrrpConf::seed("BACKUP", 150);
    conf.nopreempt = true;
    let agent_a = Daemon::agent(a, t.dir(), &conf.render());
    // Higher priority, but nopreempt: a stays backup well past its Master_Down_Interval.
    assert_never("a taking the VIP", mdi_v2(150) * 2, || {
        a.has_address("eth0", VIP)
    });
    assert_eq!(agent_a.instance_field("state"), "BACKUP");
    assert_eq!(agent_a.instance_field("master"), b.ip.to_string());
    assert!(b.has_address("eth0", VIP));
}

#[test]
fn split_brain_heals_to_the_higher_address_at_equal_priority() {
    let t = Topology::new(&["a", "b"]);
    let (a, b) = (t.host("a"), t.host("b"));
    // With a and b cut off from each other (their bridge ports isolated, carriers up), each
    // node hears nobody and becomes master: split brain.
    t.set_isolated("a", true);
    t.set_isolated("b", true);
    let agent_a = Daemon::agent(a, t.dir(), &VrrpConf::seed("BACKUP", 100).render());
    let agent_b = Daemon::agent(b, t.dir(), &VrrpConf::seed("BACKUP", 100).render());
    wait_until(
        "both masters",
        mdi_v2(100) + SLACK + Duration::from_secs(1),
        || (holder(&t, &["a", "b"]) == ["a", "b"]).then_some(()),
    );
    // Reconnected, the masters hear each other at equal priority: the higher primary
    // address (b, 192.168.2.11) stays master, a yields within an advert interval or two.
    t.set_isolated("a", false);
    t.set_isolated("b", false);
    wait_until("exactly b holds the VIP", Duration::from_secs(3), || {
        (holder(&t, &["a", "b"]) == ["b"]).then_some(())
    });
    assert_never("a taking the VIP back", Duration::from_secs(3), || {
        a.has_address("eth0", VIP)
    });
    assert_eq!(agent_b.instance_field("state"), "MASTER");
    assert_eq!(agent_a.instance_field("state"), "BACKUP");
    assert_eq!(
        agent_a.instance_field("last_transition")["reason"],
        "advert from 192.168.2.11 with priority 100 wins"
    );
}

#[test]
fn unicast_peers_elect_and_fail_over() {
    let t = Topology::new(&["a", "b", "c"]);
    let (a, b, c) = (t.host("a"), t.host("b"), t.host("c"));
    let unicast = |state: &'static str, priority: u8, me: Ipv4Addr, peer: Ipv4Addr| {
        let mut conf = VrrpConf::seed(state, priority);
        conf.extra = vec![
            format!("unicast_src_ip {me}"),
            format!("unicast_peer {{\n        {peer}\n    }}"),
            "check_unicast_src".into(),
        ];
        conf.render()
    };
    let mut agent_a = Daemon::agent(a, t.dir(), &unicast("MASTER", 150, a.ip, b.ip));
    let agent_b = Daemon::agent(b, t.dir(), &unicast("BACKUP", 120, b.ip, a.ip));
    wait_until(
        "VIP on a",
        mdi_v2(150) + SLACK + Duration::from_secs(1),
        || a.has_address("eth0", VIP).then_some(()),
    );
    // b hears a's unicast adverts and stays backup.
    assert_never(
        "b taking the VIP",
        mdi_v2(120) + Duration::from_secs(1),
        || b.has_address("eth0", VIP),
    );
    assert_eq!(agent_b.instance_field("master"), a.ip.to_string());
    // Read from the socket, or (XDP) recorded by the kernel.
    let peers = agent_b.status()["xdp"]["peers"].clone();
    let received = agent_b.instance_field("adverts_received").as_u64().unwrap()
        + peers[0]["adverts"].as_u64().unwrap_or(0);
    assert!(received >= 3, "{received}");

    // check_unicast_src: a third host's valid, higher adverts sent to b are dropped.
    const N: usize = 50;
    let stranger = forge::advert(c, b.ip, 107, 2, b"1111\0\0\0\0", &[VIP]);
    forge::send(c, b.ip, &stranger, 255, N);
    let (dropped, _) = wait_until("b counts the strangers", Duration::from_secs(5), || {
        let socket = agent_b.instance_field("adverts_dropped")["unknown_source"].as_u64();
        let kernel = agent_b.status()["xdp"]["verdicts"]["eth0"]["unknown_source"].as_u64();
        let n = socket.unwrap_or(0) + kernel.unwrap_or(0);
        (n == N as u64).then_some((socket, kernel))
    });
    eprintln!("strangers dropped (socket, kernel): {dropped:?}");
    assert_eq!(agent_b.instance_field("master"), a.ip.to_string());
    assert!(!b.has_address("eth0", VIP));
    t.crash("a", &mut agent_a.process);
    wait_until("VIP on b", mdi_v2(120) + SLACK, || {
        b.has_address("eth0", VIP).then_some(())
    });
}

/// A backup whose process is stopped for many Master_Down_Intervals (a stall: swapping, a
/// starved CPU) reads the adverts that arrived meanwhile before it judges its down timer, so
/// it does not take over from a master that never stopped advertising. It still takes over
/// at once when the master really went silent during the stall.
#[test]
fn a_backup_that_wakes_late_does_not_take_over_from_a_live_master() {
    backup_wakes_late("off");
}

/// In XDP mode the kernel absorbs the adverts; the backup judges its timer against the
/// kernel's record of the last one.
#[test]
fn a_backup_that_wakes_late_does_not_take_over_from_a_live_master_xdp() {
    backup_wakes_late("native");
}

/// How many adverts the observer saw from `src`.
fn adverts_from(observer: &ha_tests::capture::Observer, src: Ipv4Addr) -> usize {
    observer
        .frames()
        .unwrap()
        .iter()
        .filter(|f| matches!(f, ha_tests::capture::Frame::Advert { src: s, .. } if *s == src))
        .count()
}

fn backup_wakes_late(xdp: &str) {
    let t = Topology::new(&["a", "b", "c"]);
    let (a, b) = (t.host("a"), t.host("b"));
    let mut agent_a = Daemon::agent(a, t.dir(), &VrrpConf::v3("MASTER", 150, "0.1").render());
    // B starts once A is master: the log must show no takeover at all, also not at startup
    // (an agent loading its XDP program takes a few hundred ms to start advertising).
    wait_until("A master", Duration::from_secs(5), || {
        a.has_address("eth0", VIP).then_some(())
    });
    let agent_b = Daemon::agent_args(
        b,
        t.dir(),
        &VrrpConf::v3("BACKUP", 120, "0.1").render(),
        &agent_binary(),
        &["--xdp", xdp],
    );
    wait_until("B backup of A", Duration::from_secs(5), || {
        (agent_b.try_status()?["instances"][0]["master"] == a.ip.to_string()).then_some(())
    });
    let observer = ha_tests::capture::Observer::start(t.host("c"), t.dir(), "late").unwrap();
    let mdi = master_down_interval(3, Duration::from_millis(100), 120);
    for _ in 0..5 {
        agent_b.process.signal(nix::sys::signal::Signal::SIGSTOP);
        std::thread::sleep(mdi * 5);
        agent_b.process.signal(nix::sys::signal::Signal::SIGCONT);
        std::thread::sleep(mdi);
    }
    assert_never("B taking the VIP", mdi * 2, || b.has_address("eth0", VIP));
    let from_b = adverts_from(&observer, b.ip);
    assert_eq!(from_b, 0, "B advertised: it took over after waking");
    assert_eq!(agent_b.instance_field("state"), "BACKUP");
    assert!(
        !agent_b.log_text().contains("-> MASTER"),
        "{}",
        agent_b.log_text()
    );

    // The master dies while B is stopped: its last advert is older than Master_Down_Interval
    // when B wakes, so B takes over at once instead of waiting another interval.
    agent_b.process.signal(nix::sys::signal::Signal::SIGSTOP);
    std::thread::sleep(mdi);
    t.crash("a", &mut agent_a.process);
    std::thread::sleep(mdi * 2);
    agent_b.process.signal(nix::sys::signal::Signal::SIGCONT);
    let (_, took) = wait_until("B master", mdi * 3, || {
        b.has_address("eth0", VIP).then_some(())
    });
    eprintln!("--xdp {xdp}: woke up after the master died: VIP on B {took:?} later (MDI {mdi:?})");
    assert!(took < mdi / 2, "{took:?}: B waited for a new down timer");
}

/// The whole machine stops (a hypervisor pausing the VM both agents run on): master and
/// backup are stopped together for longer than Master_Down_Interval, and the backup, woken
/// first, finds its down timer run out. The master, woken a moment later, advertises at once;
/// the backup judges its timer again after as long as it was late (at most one interval) and
/// hears it, so nobody takes over. Five pauses, both receive paths.
#[test]
fn a_pause_of_both_nodes_is_not_a_dead_master() {
    for xdp in ["off", "native"] {
        let t = Topology::new(&["a", "b", "c"]);
        let (a, b) = (t.host("a"), t.host("b"));
        let conf = |state, priority| VrrpConf::v3(state, priority, "0.1").render();
        let args = ["--xdp", xdp];
        let agent_a = Daemon::agent_args(a, t.dir(), &conf("MASTER", 150), &agent_binary(), &args);
        wait_until("A master", Duration::from_secs(5), || {
            a.has_address("eth0", VIP).then_some(())
        });
        let agent_b = Daemon::agent_args(b, t.dir(), &conf("BACKUP", 120), &agent_binary(), &args);
        wait_until("B backup of A", Duration::from_secs(5), || {
            (agent_b.try_status()?["instances"][0]["master"] == a.ip.to_string()).then_some(())
        });
        let observer = ha_tests::capture::Observer::start(t.host("c"), t.dir(), "pause").unwrap();
        let mdi = master_down_interval(3, Duration::from_millis(100), 120);
        // Longer than Master_Down_Interval, shorter than it and one interval: the stall a
        // backup can tell from a dead master.
        let pause = mdi + Duration::from_millis(50);
        for _ in 0..5 {
            agent_a.process.signal(nix::sys::signal::Signal::SIGSTOP);
            agent_b.process.signal(nix::sys::signal::Signal::SIGSTOP);
            std::thread::sleep(pause);
            agent_b.process.signal(nix::sys::signal::Signal::SIGCONT);
            agent_a.process.signal(nix::sys::signal::Signal::SIGCONT);
            std::thread::sleep(mdi * 2);
        }
        let from_b = adverts_from(&observer, b.ip);
        assert_eq!(
            from_b, 0,
            "--xdp {xdp}: B advertised: it took over after a pause"
        );
        assert!(
            !agent_b.log_text().contains("-> MASTER"),
            "--xdp {xdp}: {}",
            agent_b.log_text()
        );
        assert!(a.has_address("eth0", VIP));
    }
}

/// `virtual_ipaddress_excluded`: the master holds the excluded address too (and the backup,
/// once it takes over), but its adverts carry only the others: a backup configured without
/// the excluded address sees no difference in the address list. `mcast_src_ip` sets where
/// the adverts come from; `promote_secondaries` sets the interface's sysctl.
#[test]
fn excluded_vips_are_held_but_not_advertised() {
    let t = Topology::new(&["a", "b"]);
    let (a, b) = (t.host("a"), t.host("b"));
    let excluded = Ipv4Addr::new(192, 168, 2, 201);
    // A second address on A's interface, the source of its adverts.
    a.sh(&["ip", "addr", "add", "192.168.2.77/24", "dev", "eth0"]);
    let mut conf_a = VrrpConf::v3("MASTER", 150, "0.1");
    conf_a.extra = vec![
        format!("virtual_ipaddress_excluded {{\n        {excluded}\n    }}"),
        "mcast_src_ip 192.168.2.77".into(),
        "promote_secondaries".into(),
    ];
    let mut conf_b = VrrpConf::v3("BACKUP", 120, "0.1");
    conf_b.extra = vec![format!(
        "virtual_ipaddress_excluded {{\n        {excluded}\n    }}"
    )];
    let mut agent_a = Daemon::agent(a, t.dir(), &config(&[conf_a]));
    wait_until("A holds both", Duration::from_secs(5), || {
        (a.has_address("eth0", VIP) && a.has_address("eth0", excluded)).then_some(())
    });
    assert_eq!(
        a.sh(&["sysctl", "-n", "net.ipv4.conf.eth0.promote_secondaries"])
            .trim(),
        "1"
    );
    // B follows A without the excluded address in its address list: none counted.
    let plain = VrrpConf::v3("BACKUP", 120, "0.1").render();
    let agent_b = Daemon::agent(b, t.dir(), &plain);
    wait_until(
        "B backup of A, from A's mcast_src_ip",
        Duration::from_secs(5),
        || (agent_b.try_status()?["instances"][0]["master"] == "192.168.2.77").then_some(()),
    );
    std::thread::sleep(Duration::from_millis(500));
    let status = agent_b.status();
    assert_eq!(
        status["instances"][0]["config_mismatch_adverts"],
        serde_json::json!({}),
        "{status}"
    );
    drop(agent_b);
    // A backup with the excluded address takes both over.
    let _b = Daemon::agent(b, t.dir(), &config(&[conf_b]));
    std::thread::sleep(Duration::from_millis(500));
    t.crash("a", &mut agent_a.process);
    wait_until("B holds both", Duration::from_secs(5), || {
        (b.has_address("eth0", VIP) && b.has_address("eth0", excluded)).then_some(())
    });
}

/// `virtual_routes` and `virtual_rules` follow the VIP: on the master only, gone from it when
/// it stops, on the new master after.
#[test]
fn virtual_routes_and_rules_follow_the_vip() {
    let t = Topology::new(&["a", "b"]);
    let (a, b) = (t.host("a"), t.host("b"));
    let conf = |state, priority| {
        let mut c = VrrpConf::v3(state, priority, "0.1");
        c.extra = vec![
            "virtual_routes {\n        src 192.168.2.200 to 10.9.0.0/16 via 192.168.2.254\n        blackhole 10.8.0.0/16\n        10.7.0.0/16 dev eth0 table 100\n    }".into(),
            "virtual_rules {\n        from 192.168.2.200 table 100 priority 50\n    }".into(),
        ];
        config(&[c])
    };
    let has = |host: &Host| {
        let main = host.sh(&["ip", "route", "show"]);
        // Table 100 does not exist until a route is in it.
        let table =
            String::from_utf8_lossy(&host.run(&["ip", "route", "show", "table", "100"]).stdout)
                .into_owned();
        let rules = host.sh(&["ip", "rule", "show"]);
        [
            main.contains("10.9.0.0/16 via 192.168.2.254 dev eth0")
                && main.contains("src 192.168.2.200"),
            main.contains("blackhole 10.8.0.0/16"),
            table.contains("10.7.0.0/16 dev eth0"),
            rules.contains("50:\tfrom 192.168.2.200 lookup 100"),
        ]
    };
    let mut agent_a = Daemon::agent(a, t.dir(), &conf("MASTER", 150));
    wait_until(
        "A master with its routes and rules",
        Duration::from_secs(5),
        || (has(a) == [true; 4]).then_some(()),
    );
    let _b = Daemon::agent(b, t.dir(), &conf("BACKUP", 120));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(has(b), [false; 4]);
    agent_a.process.signal(nix::sys::signal::Signal::SIGTERM);
    agent_a
        .process
        .wait_timeout(Duration::from_secs(10))
        .unwrap();
    assert_eq!(has(a), [false; 4], "A's routes and rules removed at stop");
    wait_until(
        "B master with the routes and rules",
        Duration::from_secs(5),
        || (has(b) == [true; 4]).then_some(()),
    );
}

/// `unicast_ttl` sets the TTL of unicast adverts (seen on the wire by tcpdump), and
/// `unicast_fault_no_peer` puts an instance without peers in FAULT instead of multicast.
#[test]
fn unicast_ttl_and_unicast_fault_no_peer() {
    let t = Topology::new(&["a", "b", "c"]);
    let (a, b) = (t.host("a"), t.host("b"));
    let mut conf = VrrpConf::v3("MASTER", 150, "0.1");
    conf.extra = vec![
        format!("unicast_src_ip {}", a.ip),
        format!("unicast_peer {{\n        {}\n    }}", b.ip),
        "unicast_ttl 64".into(),
    ];
    let _a = Daemon::agent(a, t.dir(), &config(&[conf]));
    wait_until("A master", Duration::from_secs(5), || {
        a.has_address("eth0", VIP).then_some(())
    });
    let out = b.run(&[
        "timeout",
        "5",
        "tcpdump",
        "-n",
        "-v",
        "-i",
        "eth0",
        "-c",
        "3",
        "ip proto 112",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let ttls: Vec<&str> = text
        .split(", ")
        .filter_map(|field| field.strip_prefix("ttl "))
        .collect();
    assert_eq!(ttls, ["64", "64", "64"], "{text}");

    let mut lonely = VrrpConf::v3("MASTER", 150, "0.1");
    lonely.extra = vec!["unicast_fault_no_peer".into()];
    lonely.vrid = 108;
    lonely.vips = vec!["192.168.2.201".into()];
    let c = Daemon::agent(t.host("c"), t.dir(), &config(&[lonely]));
    wait_until("C in FAULT", Duration::from_secs(5), || {
        (c.try_status()?["instances"][0]["state"] == "FAULT").then_some(())
    });
    assert_never("C taking its VIP", Duration::from_secs(1), || {
        t.host("c").has_address(
            "eth0",
            "192.168.2.201".parse::<std::net::Ipv4Addr>().unwrap(),
        )
    });
}

/// A rolling change edits one node at a time. The MASTER reloaded first with an extra VIP,
/// then with another VRRPv2 `advert_int`, while the BACKUP still runs the old file: its adverts
/// fail only the checks that compare configuration, so they still prove it alive. The backup
/// follows it (by its own pace), logs and counts the difference, and never takes the VIP; once
/// the backup is reloaded too the difference is gone. (Dropping such adverts, as RFC 3768 §7.1
/// says and keepalived does, made both nodes master until the second reload.)
#[test]
fn a_one_sided_reload_of_the_master_makes_no_second_master() {
    let t = Topology::new(&["a", "b"]);
    let (a, b) = (t.host("a"), t.host("b"));
    // keepalived's default checks: every advert's address list is compared.
    let render = |conf: &VrrpConf| conf.render().replace("    vrrp_skip_check_adv_addr\n", "");
    let old = VrrpConf::seed("MASTER", 150);
    let agent_a = Daemon::agent(a, t.dir(), &render(&old));
    let agent_b = Daemon::agent(b, t.dir(), &render(&VrrpConf::seed("BACKUP", 120)));
    wait_until("A master, B following it", mdi_v2(150) * 2, || {
        (a.has_address("eth0", VIP) && agent_b.instance_field("master") == a.ip.to_string())
            .then_some(())
    });
    let reload = |agent: &Daemon, host: &str, conf: &VrrpConf| {
        std::fs::write(t.dir().join(format!("ha-agent-{host}.conf")), render(conf)).unwrap();
        agent.process.signal(nix::sys::signal::Signal::SIGHUP);
    };
    let mismatch = |field: &str| {
        agent_b.try_status().is_some_and(|s| {
            s["instances"][0]["peer_config_mismatch"]["fields"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == field))
        })
    };
    let edits = [
        (
            "virtual_ipaddress",
            VrrpConf {
                vips: vec!["192.168.2.200".into(), "192.168.2.201".into()],
                ..old.clone()
            },
        ),
        (
            "advert_int",
            VrrpConf {
                vips: vec!["192.168.2.200".into(), "192.168.2.201".into()],
                advert_int: "2".into(),
                ..old.clone()
            },
        ),
    ];
    for (field, conf) in &edits {
        reload(&agent_a, "a", conf);
        wait_until(
            &format!("B sees the master's other {field}"),
            Duration::from_secs(10),
            || mismatch(field).then_some(()),
        );
        // Dropping the adverts would make B master one Master_Down_Interval after the edit.
        assert_never(
            &format!("B taking over after the master's {field} edit"),
            mdi_v2(120) * 2,
            || b.has_address("eth0", VIP) || agent_b.instance_field("state") != "BACKUP",
        );
        assert!(a.has_address("eth0", VIP));
    }
    let status = agent_b.status();
    let counted = &status["instances"][0]["config_mismatch_adverts"];
    assert!(counted["virtual_ipaddress"].as_u64() > Some(0), "{counted}");
    assert!(counted["advert_int"].as_u64() > Some(0), "{counted}");
    let log = agent_b.log_text();
    assert!(log.contains("disagree with our configuration"), "{log}");
    assert!(!log.contains("-> MASTER"), "{log}");
    let text = agent_b.status_text();
    assert!(
        text.contains("configured otherwise (virtual_ipaddress, advert_int)")
            && text.contains(
                "theirs virtual_ipaddress [192.168.2.200, 192.168.2.201], advert_int 2 s"
            ),
        "{text}"
    );

    // The rolling change ends: B reloaded alike, the difference is gone.
    let new_b = VrrpConf {
        state: "BACKUP",
        priority: 120,
        ..edits[1].1.clone()
    };
    reload(&agent_b, "b", &new_b);
    wait_until(
        "B agrees with its master again",
        Duration::from_secs(10),
        || {
            agent_b
                .try_status()
                .filter(|s| s["instances"][0]["peer_config_mismatch"].is_null())
                .map(|_| ())
        },
    );
    assert_eq!(agent_b.instance_field("state"), "BACKUP");
}
