//! BFD (`bfd_instance`, `track_bfd`) with real peers in namespaces: FRR's bfdd and
//! keepalived's BFD process, each side active and passive; parameters renegotiated by a
//! reload; a killed peer seen Down within the detection time (measured); a session's state
//! moving the priority or the FAULT state of the instances that track it.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use ha_tests::{
    Daemon, Host, Topology, VrrpConf,
    frr::{self, Bfdd},
    wait_until,
};
use nix::sys::signal::Signal;

/// Slack for process scheduling on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(700);

fn bfd_instance(name: &str, neighbor: Ipv4Addr, source: Ipv4Addr, lines: &[&str]) -> String {
    let mut block =
        format!("bfd_instance {name} {{\n    neighbor_ip {neighbor}\n    source_ip {source}\n");
    for line in lines {
        block.push_str(&format!("    {line}\n"));
    }
    block.push_str("}\n");
    block
}

/// The agent's configuration: one session to `peer`, and the seed's instance (VRRPv3 at
/// 0.1 s) tracking it as `track` says.
fn agent_conf(host: &Host, peer: &Host, lines: &[&str], track: &str) -> String {
    let instance = VrrpConf {
        extra: vec![format!("track_bfd {{\n        PEER {track}\n    }}")],
        ..VrrpConf::v3("BACKUP", 100, "0.1")
    };
    format!(
        "{}{}",
        bfd_instance("PEER", peer.ip, host.ip, lines),
        instance.render()
    )
}

fn session(agent: &Daemon) -> Option<serde_json::Value> {
    agent.try_status()?["bfd"].as_array()?.first().cloned()
}

fn wait_agent_state(agent: &Daemon, state: &str, within: Duration) -> serde_json::Value {
    wait_until(&format!("the agent's session {state}"), within, || {
        session(agent).filter(|s| s["state"] == state)
    })
    .0
}

fn wait_frr_status(frr: &Bfdd, peer: &Host, status: &str) -> serde_json::Value {
    wait_until(
        &format!("bfdd's session {status}"),
        Duration::from_secs(10),
        || {
            frr.peer(&peer.ip.to_string())
                .filter(|p| p["status"] == status)
        },
    )
    .0
}

fn frr_peer(agent_host: &Host, frr_host: &Host, extra: &[&str]) -> String {
    let mut peer = format!(
        " peer {} local-address {}\n  receive-interval 10\n  transmit-interval 10\n  \
         detect-multiplier 3\n",
        agent_host.ip, frr_host.ip
    );
    for line in extra {
        peer.push_str(&format!("  {line}\n"));
    }
    peer
}

/// How long ago the agent's session changed state last, from its status.
/// Waits for the kernel to send the session's periodic packets, then checks a second of it:
/// none sent by the agent, about one per interval (10 ms) by the kernel, and the session
/// still Up without a Down (a peer that did not take them would have gone Down and said so).
fn kernel_sends(agent: &Daemon) {
    wait_until("the kernel sending", Duration::from_secs(10), || {
        session(agent).filter(|s| s["tx_in_kernel"] == true)
    });
    let before = session(agent).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let after = session(agent).unwrap();
    let delta = |key: &str| after[key].as_u64().unwrap() - before[key].as_u64().unwrap();
    eprintln!(
        "in a second: {} sent by the kernel, {} by the agent",
        delta("sent_by_kernel"),
        delta("sent")
    );
    assert_eq!((delta("sent"), delta("downs")), (0, 0), "{after}");
    assert!(delta("sent_by_kernel") >= 80, "{after}");
    assert_eq!(after["state"], "Up", "{after}");
}

fn changed_at(s: &serde_json::Value) -> Instant {
    Instant::now() - Duration::from_secs_f64(s["since_s"].as_f64().unwrap())
}

#[test]
fn sessions_come_up_with_frr_bfdd_both_active_and_passive_and_renegotiate_on_reload() {
    if !frr::available() {
        panic!("FRR is not installed: run `cargo xtask setup`");
    }
    let t = Topology::new(&["a", "b"]);
    let (a, b) = (t.host("a"), t.host("b"));
    for (agent_passive, frr_passive) in [(false, false), (true, false), (false, true)] {
        eprintln!("agent passive: {agent_passive}, bfdd passive: {frr_passive}");
        let mut lines = vec!["min_rx 10", "min_tx 10", "multiplier 3"];
        if agent_passive {
            lines.push("passive");
        }
        let conf = agent_conf(a, b, &lines, "weight -50");
        let mut agent = Daemon::agent(a, t.dir(), &conf);
        let frr_extra: &[&str] = if frr_passive { &["passive-mode"] } else { &[] };
        let mut frr = Bfdd::start(b, t.dir(), &frr_peer(a, b, frr_extra));
        let up = wait_agent_state(&agent, "Up", Duration::from_secs(10));
        let peer = wait_frr_status(&frr, a, "up");
        // Negotiated: each side sends every 10 ms and expects 3 × 10 ms.
        assert_eq!(up["tx_interval_ms"], 10.0, "{up}");
        assert_eq!(up["detection_time_ms"], 30.0, "{up}");
        assert_eq!(peer["remote-id"], up["local_discriminator"], "{peer}");
        assert_eq!(peer["id"], up["remote_discriminator"], "{peer}");
        // The instance tracking it keeps its priority while Up.
        assert_eq!(agent.instance_field("priority"), 100);
        // The kernel sends the agent's packets, and bfdd takes them.
        kernel_sends(&agent);
        wait_frr_status(&frr, a, "up");

        if !agent_passive && !frr_passive {
            // A reload to 30 ms: bfdd hears it through a poll sequence.
            let slower = agent_conf(
                a,
                b,
                &["min_rx 30", "min_tx 30", "multiplier 3"],
                "weight -50",
            );
            std::fs::write(t.dir().join("ha-agent-a.conf"), slower).unwrap();
            agent.process.signal(Signal::SIGHUP);
            wait_until(
                "bfdd follows the agent's new intervals",
                Duration::from_secs(10),
                || {
                    let p = frr.peer(&a.ip.to_string())?;
                    (p["remote-transmit-interval"] == 30 && p["remote-receive-interval"] == 30)
                        .then_some(())
                },
            );
            let s = session(&agent).unwrap();
            assert_eq!(s["state"], "Up", "{s}");
            assert_eq!(s["tx_interval_ms"], 30.0, "{s}");
            assert_eq!(s["downs"], 0, "{s}");
        }

        // bfdd killed: Down within the detection time (after its last packet).
        let detection = Duration::from_secs_f64(
            session(&agent).unwrap()["detection_time_ms"]
                .as_f64()
                .unwrap()
                / 1e3,
        );
        let killed = Instant::now();
        frr.crash();
        let down = wait_agent_state(&agent, "Down", detection + SLACK);
        let took = changed_at(&down).saturating_duration_since(killed);
        eprintln!("down {took:?} after bfdd was killed (detection time {detection:?})");
        assert_eq!(down["diag"], "detection time expired", "{down}");
        assert!(took <= detection + Duration::from_millis(200), "{took:?}");
        // The tracking instance lost 50.
        wait_until("priority 50", Duration::from_secs(2), || {
            (agent.instance_field("priority") == 50).then_some(())
        });
        agent.stop();
    }
}

const UP: &str = "Tracked BFD instance PEER is UP";
const ADMIN_DOWN: &str = "Remote diagnostic - Administratively Down";

/// keepalived with its VRRP and BFD processes.
fn start_keepalived(host: &Host, t: &Topology, conf: &str) -> Daemon {
    Daemon::keepalived_with(host, t.dir(), conf, &[])
}

/// How often `text` is in keepalived's log on `host` (every run of it appends there).
fn log_count(host: &Host, t: &Topology, text: &str) -> usize {
    std::fs::read_to_string(t.dir().join(format!("keepalived-{}.log", host.name)))
        .unwrap_or_default()
        .matches(text)
        .count()
}

fn wait_log_count(host: &Host, t: &Topology, text: &str, n: usize) {
    wait_until(
        &format!("keepalived logging `{text}` ({n})"),
        Duration::from_secs(5),
        || (log_count(host, t, text) >= n).then_some(()),
    );
}

#[test]
fn sessions_come_up_with_keepalived_both_ways_and_a_session_down_means_fault() {
    let t = Topology::new(&["a", "b"]);
    let (a, b) = (t.host("a"), t.host("b"));
    // keepalived: an unweighted track_bfd (FAULT until Up); the agent: the same, so that
    // its instance is FAULT while keepalived is away.
    let keepalived_conf = |passive: bool| {
        let lines: &[&str] = if passive {
            &["min_rx 10", "min_tx 10", "multiplier 3", "passive"]
        } else {
            &["min_rx 10", "min_tx 10", "multiplier 3"]
        };
        let instance = VrrpConf {
            extra: vec!["track_bfd {\n        PEER\n    }".into()],
            ..VrrpConf::v3("BACKUP", 90, "0.1")
        };
        format!(
            "{}{}",
            bfd_instance("PEER", a.ip, b.ip, lines),
            instance.render()
        )
    };
    for keepalived_passive in [false, true] {
        let agent_lines: &[&str] = if keepalived_passive {
            &["min_rx 10", "min_tx 10", "multiplier 3"]
        } else {
            &["min_rx 10", "min_tx 10", "multiplier 3", "passive"]
        };
        let mut agent = Daemon::agent(a, t.dir(), &agent_conf(a, b, agent_lines, ""));
        wait_until("the agent's instance FAULT", Duration::from_secs(5), || {
            (agent.try_status()?["instances"][0]["state"] == "FAULT").then_some(())
        });
        let ups = log_count(b, &t, UP);
        let mut keepalived = start_keepalived(b, &t, &keepalived_conf(keepalived_passive));
        let up = wait_agent_state(&agent, "Up", Duration::from_secs(10));
        assert_eq!(up["detection_time_ms"], 30.0, "{up}");
        wait_log_count(b, &t, UP, ups + 1);
        // Up: the agent's instance leaves FAULT (master: keepalived's is lower).
        wait_until(
            "the agent's instance MASTER",
            Duration::from_secs(5),
            || (agent.instance_field("state") == "MASTER").then_some(()),
        );
        // The kernel sends the agent's packets, and keepalived takes them.
        kernel_sends(&agent);
        // keepalived killed: Down within the detection time, the instance FAULT.
        let killed = Instant::now();
        keepalived.process.kill_group();
        let down = wait_agent_state(&agent, "Down", Duration::from_millis(30) + SLACK);
        let took = changed_at(&down).saturating_duration_since(killed);
        eprintln!("down {took:?} after keepalived was killed");
        assert!(took <= Duration::from_millis(230), "{took:?}");
        wait_until(
            "the agent's instance FAULT again",
            Duration::from_secs(2),
            || (agent.instance_field("state") == "FAULT").then_some(()),
        );
        // A graceful stop of the agent takes keepalived's session down at once with our
        // AdminDown (which RFC 5880 has it not report as a path failure to its VRRP).
        let ups = log_count(b, &t, UP);
        let mut keepalived = start_keepalived(b, &t, &keepalived_conf(keepalived_passive));
        wait_agent_state(&agent, "Up", Duration::from_secs(10));
        wait_log_count(b, &t, UP, ups + 1);
        let admin_downs = log_count(b, &t, ADMIN_DOWN);
        agent.stop();
        wait_log_count(b, &t, ADMIN_DOWN, admin_downs + 1);
        keepalived.stop();
    }
}

/// `bfd_takeover`: a (250) and b (200, the backup) watch each other with BFD at 1 ms × 3
/// beside VRRPv3 at 10 ms. a crashes 20 times (its cable cut, the agent stopped): each time
/// b's takeover is BFD's (its report
/// comes first; the times are reported, the bench measures them), and the observer's ARP
/// entry for the VIP moves to b.
const REPORT: &str = "BFD saw the master fail";
const TAKEOVER: &str = "BACKUP -> MASTER";

#[test]
fn bfd_takeover_moves_the_vip_on_the_sessions_report() {
    let t = Topology::new(&["a", "b", "c"]);
    let (a, b, c) = (t.host("a"), t.host("b"), t.host("c"));
    let vip: Ipv4Addr = "192.168.2.200".parse().unwrap();
    let conf = |me: &Host, peer: &Host, priority: u8, takeover: bool| {
        let mut extra = vec!["track_bfd {\n        PEER weight 1\n    }".to_owned()];
        if takeover {
            extra.push("bfd_takeover".into());
        }
        let instance = VrrpConf {
            extra,
            ..VrrpConf::v3("BACKUP", priority, "0.01")
        };
        format!(
            "{}{}",
            bfd_instance(
                "PEER",
                peer.ip,
                me.ip,
                &["min_rx 1", "min_tx 1", "multiplier 3"]
            ),
            instance.render()
        )
    };
    let monitor = ha_tests::capture::AddrMonitor::start(b).unwrap();
    // The quiet cut's program, attached now: attaching takes the RTNL lock.
    t.set_cable_quietly("a", true);
    let backup = Daemon::agent(b, t.dir(), &conf(b, a, 200, true));
    let mdi = ha_tests::daemons::master_down_interval(3, Duration::from_millis(10), 200);
    let mut took = Vec::new();
    let mut blips = 0;
    for trial in 0..20 {
        let mut master = Daemon::agent(a, t.dir(), &conf(a, b, 250, false));
        wait_until("a master, b backup", Duration::from_secs(5), || {
            (a.has_address("eth0", vip) && !b.has_address("eth0", vip)).then_some(())
        });
        // A session trusted for the takeover: Up for a second (a's start, its XDP load
        // among it, can make a 1 ms session flap), and still so at the crash: a blip (a
        // late loop on a loaded machine) makes it untrusted for a second, and the takeover
        // VRRP's, so the crash waits for the next trusted second.
        let trusted = || {
            session(&backup)
                .filter(|s| s["state"] == "Up" && s["since_s"].as_f64().unwrap_or(0.0) > 1.2)
        };
        loop {
            wait_until("b's session Up for 1.2 s", Duration::from_secs(10), trusted);
            wait_until(
                "the observer's ARP entry on a",
                Duration::from_secs(3),
                || {
                    c.ping_once(vip);
                    (c.arp_entry(vip).as_deref() == Some(a.mac.as_str())).then_some(())
                },
            );
            // Let b hear a few adverts and BFD packets, then crash a at a varying phase.
            std::thread::sleep(Duration::from_millis(50 + 3 * trial));
            if trusted().is_some() {
                break;
            }
            blips += 1;
        }
        monitor.clear();
        let log = backup.log_text();
        let reports = log.matches(REPORT).count();
        // b may have been master for a moment at its start, before a's first advert.
        let takeovers = log.matches(TAKEOVER).count();
        // a dies as a host does: nothing more leaves it (its kernel's BFD packets included)
        // from the instant its cable is cut, and the agent stops dead. Neither takes the
        // RTNL lock, which a link taken down or the agent's exit would hold while b adds the
        // VIP; a is killed only after.
        let killed = ha_tests::capture::realtime_ns();
        t.set_cable_quietly("a", false);
        master.process.signal(Signal::SIGSTOP);
        wait_until("the VIP on b", mdi + SLACK, || {
            monitor
                .events()
                .iter()
                .find(|e| e.added && e.addr == vip)
                .copied()
        });
        let added = monitor
            .events()
            .iter()
            .find(|e| e.added && e.addr == vip)
            .unwrap()
            .at;
        let ms = (added - killed) as f64 / 1e6;
        took.push(ms);
        let log = backup.log_text();
        assert!(
            log.matches(REPORT).count() > reports,
            "trial {trial}: the VIP on b {ms:.2} ms after the crash, without BFD's report\n{log}"
        );
        assert_eq!(
            log.matches(TAKEOVER).count(),
            takeovers + 1,
            "trial {trial}: one takeover\n{log}"
        );
        wait_until(
            "the observer's ARP entry on b",
            Duration::from_secs(3),
            || (c.arp_entry(vip).as_deref() == Some(b.mac.as_str())).then_some(()),
        );
        master.process.kill_group();
        t.set_cable_quietly("a", true);
    }
    // Every takeover came from a report; a report while a still advertised (a session
    // blip) made none.
    let log = backup.log_text();
    let reports = log.matches(REPORT).count();
    assert!(reports >= 20, "{reports} reports\n{log}");
    eprintln!(
        "bfd_takeover: {took:.2?} ms; {} reports of a live master; {blips} crashes put off by a session blip",
        reports - 20
    );
    took.sort_by(f64::total_cmp);
    eprintln!(
        "bfd_takeover: VIP on b after the crash p50 {:.2} ms, max {:.2} ms (Master_Down_Interval {:.1} ms)",
        took[took.len() / 2],
        took[took.len() - 1],
        mdi.as_secs_f64() * 1e3
    );
}

/// With the XDP program (the default) a steady session is handed to the kernel both ways:
/// the peer's packets are absorbed there and the agent's own count stops growing, and its
/// periodic packets are sent by the kernel, clocked by the pacing interface's qdisc, while
/// the agent sends none. The agent killed, its kernel stops sending with it (the peer goes
/// Down within its detection time); the peer killed, the kernel's timer reports it within
/// the detection time. Without XDP the agent does it all.
#[test]
fn the_kernel_absorbs_steady_packets_sends_ours_and_times_the_peer_out() {
    let t = Topology::new(&["a", "b"]);
    let (a, b) = (t.host("a"), t.host("b"));
    let lines = ["min_rx 10", "min_tx 10", "multiplier 3"];
    let peer = Daemon::agent_args(
        b,
        t.dir(),
        &agent_conf(b, a, &lines, "weight -50"),
        &ha_tests::daemons::agent_binary(),
        &["--xdp", "off"],
    );
    let start = || {
        let agent = Daemon::agent(a, t.dir(), &agent_conf(a, b, &lines, "weight -50"));
        wait_until("the session in the kernel", Duration::from_secs(10), || {
            session(&agent).filter(|s| {
                s["state"] == "Up" && s["in_kernel"] == true && s["tx_in_kernel"] == true
            })
        });
        agent
    };
    let count = |s: &serde_json::Value, key: &str| s[key].as_u64().unwrap();
    let mut agent = start();
    let (before, peer_before) = (session(&agent).unwrap(), session(&peer).unwrap());
    std::thread::sleep(Duration::from_secs(1));
    let (after, peer_after) = (session(&agent).unwrap(), session(&peer).unwrap());
    let delta = |key: &str| count(&after, key) - count(&before, key);
    let (absorbed, heard, sent, by_kernel) = (
        delta("absorbed"),
        delta("received"),
        delta("sent"),
        delta("sent_by_kernel"),
    );
    let peer_heard = count(&peer_after, "received") - count(&peer_before, "received");
    eprintln!(
        "in a second: {absorbed} absorbed by the kernel, {heard} read by the agent; \
         {by_kernel} sent by the kernel, {sent} by the agent, {peer_heard} heard by the peer"
    );
    // Each sends every 7.5-10 ms: about 100 a second, none of them through the agent.
    assert!(absorbed >= 80, "{absorbed} absorbed");
    assert_eq!((heard, sent), (0, 0), "{after}");
    assert!(by_kernel >= 80, "{by_kernel} sent by the kernel");
    assert!(peer_heard >= 80, "the peer heard {peer_heard}");
    // The peer (on sockets) sees nothing different.
    assert_eq!(
        (
            peer_after["state"].as_str(),
            peer_after["in_kernel"].as_bool(),
            count(&peer_after, "downs")
        ),
        (Some("Up"), Some(false), 0)
    );

    // `victim` killed: `watcher` times it out within the detection time (30 ms, from the
    // victim's last packet); its Down status.
    let timed_out = |victim: &mut Daemon, watcher: &Daemon, what: &str| {
        let killed = Instant::now();
        victim.process.kill_group();
        let down = wait_agent_state(watcher, "Down", Duration::from_millis(30) + SLACK);
        let took = changed_at(&down).saturating_duration_since(killed);
        eprintln!("down {took:?} after {what} was killed");
        assert_eq!(down["diag"], "detection time expired", "{down}");
        assert!(took <= Duration::from_millis(230), "{took:?}");
        down
    };
    // The agent killed: nothing more leaves its kernel.
    timed_out(&mut agent, &peer, "the agent");

    // Started again (over the pacing interface the killed one left); the peer killed, the
    // kernel's timer reports it.
    let mut agent = start();
    let mut peer = peer;
    let down = timed_out(&mut peer, &agent, "the peer");
    assert_eq!(
        (down["in_kernel"].as_bool(), down["tx_in_kernel"].as_bool()),
        (Some(false), Some(false)),
        "{down}"
    );
    agent.stop();
    // A clean stop takes the pacing interface away.
    let links = a.sh(&["ip", "-o", "link", "show"]);
    assert!(!links.contains("ha-bfd-tx"), "{links}");
}

#[test]
fn a_pause_of_both_ends_is_not_the_peers_silence() {
    // Both agents stopped together for longer than the detection time, as a hypervisor stops
    // a VM: the one woken first finds its detection time run out, but its peer was stopped
    // too, and sends on waking. This covers the agents' own timers, so both run on sockets:
    // the kernel's timers (XDP) are not stopped by SIGSTOP; the stress bench covers them.
    let t = Topology::new(&["a", "b"]);
    let (a, b) = (t.host("a"), t.host("b"));
    let lines = ["min_rx 30", "min_tx 30", "multiplier 3"];
    let start = |me, peer| {
        Daemon::agent_args(
            me,
            t.dir(),
            &agent_conf(me, peer, &lines, "weight -50"),
            &ha_tests::daemons::agent_binary(),
            &["--xdp", "off"],
        )
    };
    let (first, second) = (start(a, b), start(b, a));
    for agent in [&first, &second] {
        wait_agent_state(agent, "Up", Duration::from_secs(10));
    }
    let downs =
        || [&first, &second].map(|d| session(d).and_then(|s| s["downs"].as_u64()).unwrap_or(0));
    let before = downs();
    for _ in 0..5 {
        // The one woken first is stopped last: nothing from its peer waits for it.
        for agent in [&second, &first] {
            agent.process.signal(Signal::SIGSTOP);
        }
        std::thread::sleep(Duration::from_millis(90 + 50));
        // Its peer wakes a sixth of an interval later (a hypervisor resumes one vCPU
        // before the other).
        first.process.signal(Signal::SIGCONT);
        std::thread::sleep(Duration::from_millis(5));
        second.process.signal(Signal::SIGCONT);
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(downs(), before, "{}", first.log_text());
    for agent in [&first, &second] {
        assert_eq!(session(agent).unwrap()["state"], "Up");
    }
}
