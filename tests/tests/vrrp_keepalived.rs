//! ha-agent beside real keepalived 2.2.7 on one LAN: each as master and as backup, VRRPv2
//! with PASS and VRRPv3 at 0.1 s, crash and graceful stop, preemption, wrong password.

use std::{net::Ipv4Addr, time::Duration};

use ha_tests::{
    Daemon, Host, Topology, VrrpConf,
    daemons::{master_down_interval, skew_time},
    wait::assert_never,
    wait_until,
};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 200);
/// Slack for process scheduling on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(700);

/// Master_Down_Interval and Skew_Time for `priority` at `interval` (v2: skew uses 1 s).
fn timers(version: u8, interval: Duration, priority: u8) -> (Duration, Duration) {
    (
        master_down_interval(version, interval, priority),
        skew_time(version, interval, priority),
    )
}

fn wait_vip(host: &Host, within: Duration) -> Duration {
    wait_until(&format!("VIP on {}", host.name), within, || {
        host.has_address("eth0", VIP).then_some(())
    })
    .1
}

fn wait_arp(observer: &Host, owner: &Host) {
    wait_until(
        &format!("observer's ARP entry for the VIP -> {}", owner.name),
        Duration::from_secs(2),
        || (observer.arp_entry(VIP).as_deref() == Some(owner.mac.as_str())).then_some(()),
    );
}

#[test]
fn agent_master_keepalived_backup_v2_crash_and_preempt() {
    let t = Topology::new(&["a", "b", "c"]);
    let (a, b, c) = (t.host("a"), t.host("b"), t.host("c"));
    let (mdi_a, _) = timers(2, Duration::from_secs(1), 150);
    let (mdi_b, _) = timers(2, Duration::from_secs(1), 120);
    let mut agent = Daemon::agent(a, t.dir(), &VrrpConf::seed("MASTER", 150).render());
    let mut keepalived = Daemon::keepalived(b, t.dir(), &VrrpConf::seed("BACKUP", 120).render());
    wait_vip(a, mdi_a + SLACK + Duration::from_secs(1));
    assert!(c.ping_once(VIP));
    wait_arp(c, a);
    // keepalived accepts our adverts: it stays backup.
    assert_never(
        "keepalived taking the VIP",
        mdi_b + Duration::from_secs(1),
        || b.has_address("eth0", VIP),
    );
    assert_eq!(agent.instance_field("state"), "MASTER");
    assert!(keepalived.process.is_running());

    t.crash("a", &mut agent.process);
    let took = wait_vip(b, mdi_b + SLACK);
    assert!(
        took + Duration::from_secs(1) >= mdi_b,
        "keepalived took over after {took:?}"
    );
    wait_arp(c, b);

    // ha-agent returns and preempts keepalived.
    t.set_cable("a", true);
    let agent = Daemon::agent(a, t.dir(), &VrrpConf::seed("MASTER", 150).render());
    wait_until(
        "the VIP left by the crash is removed",
        Duration::from_secs(2),
        || (!a.has_address("eth0", VIP)).then_some(()),
    );
    wait_vip(a, mdi_a + SLACK + Duration::from_secs(1));
    wait_until(
        "keepalived releases the VIP",
        Duration::from_secs(1),
        || (!b.has_address("eth0", VIP)).then_some(()),
    );
    wait_arp(c, a);
    assert_eq!(
        agent.instance_field("adverts_dropped"),
        serde_json::json!({})
    );
    keepalived.stop();
}

#[test]
fn keepalived_master_agent_backup_v3_fast_graceful_and_crash() {
    let t = Topology::new(&["a", "b", "c"]);
    let (a, b, c) = (t.host("a"), t.host("b"), t.host("c"));
    let interval = Duration::from_millis(100);
    let (mdi_a, _) = timers(3, interval, 150);
    let (mdi_b, skew_b) = timers(3, interval, 120);
    let conf_a = VrrpConf::v3("MASTER", 150, "0.1").render();
    let mut keepalived = Daemon::keepalived(a, t.dir(), &conf_a);
    let agent = Daemon::agent(b, t.dir(), &VrrpConf::v3("BACKUP", 120, "0.1").render());
    wait_vip(a, mdi_a + SLACK + Duration::from_secs(1));
    wait_until(
        "the agent follows keepalived",
        Duration::from_secs(2),
        || (agent.instance_field("master") == a.ip.to_string()).then_some(()),
    );
    assert!(!b.has_address("eth0", VIP));
    // keepalived's VRRPv3 checksum (with the IPv4 pseudo-header) is accepted: nothing dropped.
    wait_until(
        "ten adverts received from keepalived",
        Duration::from_secs(3),
        || (agent.instance_field("adverts_received").as_u64().unwrap() >= 10).then_some(()),
    );
    assert!(c.ping_once(VIP));
    assert_eq!(
        agent.instance_field("adverts_dropped"),
        serde_json::json!({})
    );
    wait_arp(c, a);

    // Graceful: keepalived sends priority 0; the agent takes over after Skew_Time.
    keepalived.stop();
    let took = wait_vip(b, skew_b + SLACK);
    assert!(!a.has_address("eth0", VIP), "keepalived released the VIP");
    wait_arp(c, b);
    assert_eq!(
        agent.instance_field("last_transition")["reason"],
        "master sent priority 0"
    );
    eprintln!("graceful takeover {took:?} (skew {skew_b:?})");

    // keepalived returns with the higher priority and preempts the agent.
    let mut keepalived = Daemon::keepalived(a, t.dir(), &conf_a);
    wait_vip(a, mdi_a + SLACK + Duration::from_secs(2));
    wait_until("the agent yields", Duration::from_secs(1), || {
        (!b.has_address("eth0", VIP)).then_some(())
    });
    assert_eq!(agent.instance_field("state"), "BACKUP");

    // Crash keepalived's host: the agent takes over within its Master_Down_Interval.
    t.crash("a", &mut keepalived.process);
    let took = wait_vip(b, mdi_b + SLACK);
    assert!(
        took + interval >= mdi_b,
        "took over {took:?} after the crash, MDI {mdi_b:?}"
    );
    wait_arp(c, b);
    assert_eq!(
        agent.instance_field("last_transition")["reason"],
        "no advert for Master_Down_Interval"
    );
}

#[test]
fn agent_master_v3_graceful_stop_to_keepalived() {
    let t = Topology::new(&["a", "b"]);
    let (a, b) = (t.host("a"), t.host("b"));
    let interval = Duration::from_millis(100);
    let (mdi_a, _) = timers(3, interval, 150);
    let (_, skew_b) = timers(3, interval, 120);
    let mut agent = Daemon::agent(a, t.dir(), &VrrpConf::v3("MASTER", 150, "0.1").render());
    let _keepalived = Daemon::keepalived(b, t.dir(), &VrrpConf::v3("BACKUP", 120, "0.1").render());
    wait_vip(a, mdi_a + SLACK + Duration::from_secs(1));
    assert_never("keepalived taking the VIP", Duration::from_secs(2), || {
        b.has_address("eth0", VIP)
    });
    agent.stop();
    wait_vip(b, skew_b + SLACK);
    assert!(!a.has_address("eth0", VIP));
}

#[test]
fn keepalived_master_v2_crash_to_agent() {
    let t = Topology::new(&["a", "b", "c"]);
    let (a, b, c) = (t.host("a"), t.host("b"), t.host("c"));
    let (mdi_a, _) = timers(2, Duration::from_secs(1), 150);
    let (mdi_b, _) = timers(2, Duration::from_secs(1), 120);
    let mut keepalived = Daemon::keepalived(a, t.dir(), &VrrpConf::seed("MASTER", 150).render());
    let agent = Daemon::agent(b, t.dir(), &VrrpConf::seed("BACKUP", 120).render());
    wait_vip(a, mdi_a + SLACK + Duration::from_secs(1));
    assert!(c.ping_once(VIP));
    wait_arp(c, a);
    assert_never(
        "the agent taking the VIP",
        mdi_b + Duration::from_secs(1),
        || b.has_address("eth0", VIP),
    );
    assert_eq!(agent.instance_field("master"), a.ip.to_string());
    t.crash("a", &mut keepalived.process);
    let took = wait_vip(b, mdi_b + SLACK);
    assert!(
        took + Duration::from_secs(1) >= mdi_b,
        "took over {took:?} after the crash"
    );
    wait_arp(c, b);
}

#[test]
fn wrong_password_is_ignored_and_counted() {
    let t = Topology::new(&["a", "b"]);
    let (a, b) = (t.host("a"), t.host("b"));
    let (mdi_a, _) = timers(2, Duration::from_secs(1), 150);
    let (mdi_b, _) = timers(2, Duration::from_secs(1), 120);
    let mut wrong = VrrpConf::seed("MASTER", 150);
    wrong.auth_pass = Some("2222".into());
    let _keepalived = Daemon::keepalived(a, t.dir(), &wrong.render());
    wait_vip(a, mdi_a + SLACK + Duration::from_secs(1));
    // The agent drops every advert of keepalived, so after its Master_Down_Interval it
    // becomes master too. (keepalived 2.2.7 stops advertising once it hears a wrong
    // password, so the count stops there.)
    let agent = Daemon::agent(b, t.dir(), &VrrpConf::seed("BACKUP", 120).render());
    wait_vip(b, mdi_b + SLACK + Duration::from_secs(1));
    // Dropped on the socket, or in the kernel when the XDP program is attached.
    let dropped = agent.instance_field("adverts_dropped");
    let in_kernel = agent.status()["xdp"]["verdicts"]["eth0"]["auth_mismatch"].as_u64();
    assert!(
        dropped["auth_mismatch"].as_u64().unwrap_or(0) + in_kernel.unwrap_or(0) >= 2,
        "drops: {dropped}, in the kernel: {in_kernel:?}"
    );
    let others: Vec<_> = dropped
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "auth_mismatch")
        .collect();
    assert!(others.is_empty(), "drops: {dropped}");
    assert_eq!(agent.instance_field("adverts_received"), 0);
    assert_eq!(agent.instance_field("state"), "MASTER");
    assert!(a.has_address("eth0", VIP), "keepalived ignores us too");
}

#[test]
fn agent_backup_learns_keepalived_v3_interval() {
    let t = Topology::new(&["a", "b"]);
    let (a, b) = (t.host("a"), t.host("b"));
    let fast = Duration::from_millis(100);
    let (mdi_a, _) = timers(3, fast, 150);
    // The agent is configured for 1 s adverts; as a VRRPv3 backup it adopts the master's.
    let (learned_mdi, _) = timers(3, fast, 120);
    let (configured_mdi, _) = timers(3, Duration::from_secs(1), 120);
    let mut keepalived =
        Daemon::keepalived(a, t.dir(), &VrrpConf::v3("MASTER", 150, "0.1").render());
    let agent = Daemon::agent(b, t.dir(), &VrrpConf::v3("BACKUP", 120, "1").render());
    wait_vip(a, mdi_a + SLACK + Duration::from_secs(1));
    wait_until(
        "the agent follows keepalived",
        Duration::from_secs(3),
        || (agent.instance_field("master") == a.ip.to_string()).then_some(()),
    );
    let mdi_ms = agent
        .instance_field("master_down_interval_ms")
        .as_f64()
        .unwrap();
    assert!(
        (mdi_ms - learned_mdi.as_secs_f64() * 1000.0).abs() < 0.01,
        "MDI {mdi_ms} ms"
    );
    t.crash("a", &mut keepalived.process);
    let took = wait_vip(b, learned_mdi + SLACK);
    assert!(
        took < configured_mdi,
        "took {took:?}: the learned interval was not used"
    );
}

/// keepalived reloaded alone with an extra VIP (the first half of a rolling change): its
/// adverts list an address the ha-agent backup does not know. The backup follows it, as a
/// live master, and reports the difference instead of taking the VIP too.
#[test]
fn a_keepalived_master_reloaded_alone_keeps_its_agent_backup() {
    let t = Topology::new(&["a", "b"]);
    let (a, b) = (t.host("a"), t.host("b"));
    let (mdi_a, _) = timers(2, Duration::from_secs(1), 150);
    let (mdi_b, _) = timers(2, Duration::from_secs(1), 120);
    // keepalived's default checks: every advert's address list is compared.
    let render = |conf: &VrrpConf| conf.render().replace("    vrrp_skip_check_adv_addr\n", "");
    let old = VrrpConf::seed("MASTER", 150);
    let keepalived = Daemon::keepalived(a, t.dir(), &render(&old));
    let agent = Daemon::agent(b, t.dir(), &render(&VrrpConf::seed("BACKUP", 120)));
    wait_vip(a, mdi_a + SLACK + Duration::from_secs(1));
    wait_until("the agent following keepalived", mdi_b * 2, || {
        (agent.instance_field("master") == a.ip.to_string()).then_some(())
    });
    let edited = VrrpConf {
        vips: vec!["192.168.2.200".into(), "192.168.2.201".into()],
        ..old
    };
    std::fs::write(t.dir().join("keepalived-a.conf"), render(&edited)).unwrap();
    keepalived.process.signal(nix::sys::signal::Signal::SIGHUP);
    wait_until(
        "keepalived holding the new VIP",
        Duration::from_secs(10),
        || {
            a.has_address("eth0", Ipv4Addr::new(192, 168, 2, 201))
                .then_some(())
        },
    );
    wait_until(
        "the agent seeing the other list",
        Duration::from_secs(10),
        || {
            agent.status()["instances"][0]["peer_config_mismatch"]["fields"][0]
                .as_str()
                .filter(|f| *f == "virtual_ipaddress")
                .map(|_| ())
        },
    );
    assert_never("the agent taking the VIP", mdi_b * 2, || {
        b.has_address("eth0", VIP)
    });
    assert_eq!(agent.instance_field("state"), "BACKUP");
    assert_eq!(agent.instance_field("master"), a.ip.to_string());
}

/// Unicast peers on two subnets, a router between them (TTL 254 on arrival): keepalived 2.2.7
/// does not hold unicast adverts to TTL 255, and neither does ha-agent, so the agent as backup
/// follows keepalived's master instead of taking over beside it, and takes over when it dies.
#[test]
fn unicast_peers_across_a_router_keepalived_master_agent_backup() {
    let t = Topology::routed(&["a"], &["b"]);
    let (a, b) = (t.host("a"), t.host("b"));
    let conf = |state: &'static str, priority: u8, me: Ipv4Addr, peer: Ipv4Addr| {
        let mut c = VrrpConf::v3(state, priority, "0.1");
        c.extra = vec![
            format!("unicast_src_ip {me}"),
            format!("unicast_peer {{\n        {peer}\n    }}"),
        ];
        c.render()
    };
    let mut keepalived = Daemon::keepalived(b, t.dir(), &conf("MASTER", 150, b.ip, a.ip));
    wait_until("keepalived master", Duration::from_secs(5), || {
        b.has_address("eth0", VIP).then_some(())
    });
    let agent = Daemon::agent(a, t.dir(), &conf("BACKUP", 120, a.ip, b.ip));
    let (mdi, _) = timers(3, Duration::from_millis(100), 120);
    wait_until(
        "the agent following keepalived",
        Duration::from_secs(5),
        || (agent.try_status()?["instances"][0]["master"] == b.ip.to_string()).then_some(()),
    );
    assert_never("the agent taking the VIP", mdi * 4, || {
        a.has_address("eth0", VIP)
    });
    let dropped = agent.instance_field("adverts_dropped");
    assert_eq!(dropped["ttl"].as_u64().unwrap_or(0), 0, "{dropped}");
    t.crash("b", &mut keepalived.process);
    wait_until("the agent master", mdi + SLACK, || {
        a.has_address("eth0", VIP).then_some(())
    });
}

/// `vrrp_mcast_group4` moves the adverts to another group on both sides: keepalived 2.2.7
/// hears the agent's adverts there (and stays backup), tcpdump sees them go to that group,
/// and the agent, restarted as backup, follows keepalived's adverts to it.
#[test]
fn another_multicast_group_agent_and_keepalived() {
    let t = Topology::new(&["a", "b", "c"]);
    let (a, b, c) = (t.host("a"), t.host("b"), t.host("c"));
    let conf = |state, priority| {
        VrrpConf::v3(state, priority, "0.1").render().replacen(
            "global_defs {\n",
            "global_defs {\n    vrrp_mcast_group4 224.0.0.77\n",
            1,
        )
    };
    let mut agent = Daemon::agent(a, t.dir(), &conf("MASTER", 150));
    wait_vip(a, Duration::from_secs(5));
    let keepalived = Daemon::keepalived(b, t.dir(), &conf("BACKUP", 120));
    let (mdi, _) = timers(3, Duration::from_millis(100), 120);
    let out = c.run(&[
        "timeout",
        "5",
        "tcpdump",
        "-n",
        "-i",
        "eth0",
        "-c",
        "3",
        "ip proto 112",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        text.matches(&format!("{} > 224.0.0.77: VRRPv3", a.ip))
            .count(),
        3,
        "{text}"
    );
    assert_never("keepalived taking the VIP", mdi * 3, || {
        b.has_address("eth0", VIP)
    });

    // The agent returns as backup: keepalived's adverts to the group hold it there.
    t.crash("a", &mut agent.process);
    wait_vip(b, mdi + SLACK);
    t.set_cable("a", true);
    let agent = Daemon::agent(a, t.dir(), &conf("BACKUP", 100));
    wait_until(
        "the agent following keepalived",
        Duration::from_secs(5),
        || (agent.try_status()?["instances"][0]["master"] == b.ip.to_string()).then_some(()),
    );
    assert_never("the agent taking the VIP", mdi * 3, || {
        a.has_address("eth0", VIP)
    });
    drop(keepalived);
}
