//! Health checks (`vrrp_script` / `track_script`) with real processes: a failing check lowers
//! the master's priority so the backup preempts, weight 0 means FAULT, a hanging check fails
//! after its timeout and leaves no process behind, scripts run as their user, tracked
//! interfaces, and the `fast_preempt` extension against ha-agent and keepalived masters.

use std::{
    net::Ipv4Addr,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

use ha_tests::{
    Daemon, Kind, Topology, VrrpConf,
    capture::{Frame, Observer},
    daemons::{config, master_down_interval, skew_time},
    wait::assert_never,
    wait_until,
};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 200);

/// A directory everybody may write (scripts run as `nobody` write there).
fn shared_dir(t: &Topology) -> PathBuf {
    let dir = t.dir().join("shared");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(t.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A configuration whose instance tracks `chk` (the check `body`, run every 0.1 s).
fn tracked(
    t: &Topology,
    host: &str,
    state: &'static str,
    priority: u8,
    weight: i32,
    body: &str,
    extra: &str,
) -> String {
    let path = t.dir().join(format!("check-{host}.sh"));
    script(&path, body);
    let mut conf = VrrpConf::v3(state, priority, "0.1");
    conf.extra = vec!["track_script {\n        chk\n    }".into()];
    format!(
        "{}vrrp_script chk {{\n    script \"{}\"\n    interval 0.1\n    weight {weight}\n{extra}}}\n",
        config(&[conf]),
        path.display()
    )
}

fn field(agent: &Daemon, name: &str) -> serde_json::Value {
    if !agent.state_dir.join(ha_agent::ctl::SOCKET_NAME).exists() {
        return serde_json::Value::Null;
    }
    agent.instance_field(name)
}

#[test]
fn a_failing_check_hands_the_vip_to_the_backup_and_back() {
    let t = Topology::new(&["a", "b"]);
    let shared = shared_dir(&t);
    let app = shared.join("app-a");
    std::fs::write(&app, "").unwrap();
    let uid_file = shared.join("uid");
    let body = format!("id -u > {}\ntest -e {}", uid_file.display(), app.display());
    let conf_a = tracked(&t, "a", "MASTER", 150, -50, &body, "    user nobody\n");
    let a = Daemon::agent(t.host("a"), t.dir(), &conf_a);
    let b = Daemon::agent(
        t.host("b"),
        t.dir(),
        &VrrpConf::v3("BACKUP", 120, "0.1").render(),
    );
    wait_until("A master", Duration::from_secs(5), || {
        (field(&a, "state") == "MASTER" && t.host("a").has_address("eth0", VIP)).then_some(())
    });
    assert_eq!(
        std::fs::read_to_string(&uid_file).unwrap().trim(),
        "65534",
        "the check ran as nobody"
    );

    // The application dies: A advertises 150 - 50 = 100 < 120 and B preempts it.
    std::fs::remove_file(&app).unwrap();
    let (_, took) = wait_until("B master", Duration::from_secs(5), || {
        (field(&b, "state") == "MASTER" && t.host("b").has_address("eth0", VIP)).then_some(())
    });
    eprintln!("check failure to VIP on B: {took:?}");
    assert_eq!(field(&a, "priority"), 100);
    assert_eq!(field(&a, "state"), "BACKUP");
    let trackers = field(&a, "trackers");
    assert_eq!(trackers[0]["name"], "chk");
    assert_eq!(trackers[0]["up"], false);
    assert_eq!(trackers[0]["priority_delta"], -50);
    assert!(!t.host("a").has_address("eth0", VIP));

    // It comes back: A is at 150 again and preempts B.
    std::fs::write(&app, "").unwrap();
    wait_until("A master again", Duration::from_secs(5), || {
        (field(&a, "state") == "MASTER" && t.host("a").has_address("eth0", VIP)).then_some(())
    });
    assert_eq!(field(&a, "priority"), 150);
    wait_until("B backup", Duration::from_secs(2), || {
        (!t.host("b").has_address("eth0", VIP)).then_some(())
    });
}

#[test]
fn weight_zero_puts_the_instance_in_fault_while_the_check_fails() {
    let t = Topology::new(&["a", "b"]);
    let shared = shared_dir(&t);
    let app = shared.join("app-a");
    std::fs::write(&app, "").unwrap();
    let conf_a = tracked(
        &t,
        "a",
        "MASTER",
        150,
        0,
        &format!("test -e {}", app.display()),
        "",
    );
    let a = Daemon::agent(t.host("a"), t.dir(), &conf_a);
    let b = Daemon::agent(
        t.host("b"),
        t.dir(),
        &VrrpConf::v3("BACKUP", 120, "0.1").render(),
    );
    wait_until("A master", Duration::from_secs(5), || {
        (field(&a, "state") == "MASTER").then_some(())
    });
    std::fs::remove_file(&app).unwrap();
    wait_until("A in FAULT, B master", Duration::from_secs(5), || {
        (field(&a, "state") == "FAULT"
            && field(&b, "state") == "MASTER"
            && t.host("b").has_address("eth0", VIP)
            && !t.host("a").has_address("eth0", VIP))
        .then_some(())
    });
    assert_eq!(field(&a, "trackers")[0]["fault"], true);
    std::fs::write(&app, "").unwrap();
    wait_until("A master again", Duration::from_secs(5), || {
        (field(&a, "state") == "MASTER" && t.host("a").has_address("eth0", VIP)).then_some(())
    });
}

#[test]
fn a_hanging_check_fails_after_its_timeout_and_leaves_no_process() {
    let t = Topology::new(&["a"]);
    let marker = format!("sleep 37.{}", std::process::id());
    let conf = tracked(
        &t,
        "a",
        "MASTER",
        150,
        -50,
        &format!("exec {marker}"),
        "    timeout 0.3\n",
    );
    let mut a = Daemon::agent(t.host("a"), t.dir(), &conf);
    wait_until("the check down", Duration::from_secs(5), || {
        (field(&a, "trackers")[0]["up"] == false).then_some(())
    });
    assert_eq!(field(&a, "trackers")[0]["last_result"], "timed out");
    assert_eq!(field(&a, "priority"), 100);
    let running = || {
        std::process::Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .map(|o| !o.stdout.is_empty())
            .unwrap_or(false)
    };
    // Every run is killed after 0.3 s (+1 s grace at most); on stop none is left.
    a.stop();
    std::thread::sleep(Duration::from_millis(200));
    assert!(!running(), "a check process outlived the agent");
}

#[test]
fn a_tracked_interface_going_down_means_fault_or_its_weight() {
    let t = Topology::new(&["a", "b"]);
    let a_host = t.host("a");
    // Two more links inside A: veth pairs whose far ends act as the cables.
    for (link, far) in [("eth1", "far1"), ("eth2", "far2")] {
        a_host.sh(&[
            "ip", "link", "add", link, "type", "veth", "peer", "name", far,
        ]);
        a_host.sh(&["ip", "link", "set", link, "up"]);
        a_host.sh(&["ip", "link", "set", far, "up"]);
    }
    let mut conf = VrrpConf::v3("MASTER", 150, "0.1");
    conf.extra = vec!["track_interface {\n        eth1\n        eth2 weight -60\n    }".into()];
    let a = Daemon::agent(a_host, t.dir(), &config(&[conf]));
    let b = Daemon::agent(
        t.host("b"),
        t.dir(),
        &VrrpConf::v3("BACKUP", 120, "0.1").render(),
    );
    let a_master =
        || (field(&a, "state") == "MASTER" && a_host.has_address("eth0", VIP)).then_some(());
    wait_until("A master", Duration::from_secs(5), a_master);

    // Unweighted: FAULT while the carrier is lost (the master resigns, B takes over after
    // Skew_Time).
    a_host.sh(&["ip", "link", "set", "far1", "down"]);
    wait_until("A in FAULT, B master", Duration::from_secs(3), || {
        (field(&a, "state") == "FAULT" && t.host("b").has_address("eth0", VIP)).then_some(())
    });
    a_host.sh(&["ip", "link", "set", "far1", "up"]);
    wait_until("A master again", Duration::from_secs(5), a_master);

    // Weighted: 150 - 60 = 90 < 120, B preempts.
    a_host.sh(&["ip", "link", "set", "eth2", "down"]);
    wait_until("B master", Duration::from_secs(5), || {
        (field(&b, "state") == "MASTER" && t.host("b").has_address("eth0", VIP)).then_some(())
    });
    assert_eq!(field(&a, "priority"), 90);
    assert_eq!(field(&a, "state"), "BACKUP");
    let trackers = field(&a, "trackers");
    assert_eq!(trackers[1]["name"], "interface eth2");
    assert_eq!(trackers[1]["priority_delta"], -60);
    a_host.sh(&["ip", "link", "set", "eth2", "up"]);
    wait_until("A master again", Duration::from_secs(5), a_master);
}

/// `track_file` with keepalived's semantics: the value times the weight moves the priority
/// (keepalived 2.2.7 as the backup preempts and yields), a value written by rename counts as
/// well, and with weight 0 a non-zero value means FAULT.
#[test]
fn a_track_file_moves_the_priority_or_means_fault() {
    let t = Topology::new(&["a", "b"]);
    let a_host = t.host("a");
    let value = t.dir().join("app.value");
    let mut conf = VrrpConf::v3("MASTER", 150, "0.1");
    conf.extra = vec!["track_file {\n        app weight -10\n        gate weight 0\n    }".into()];
    let gate = t.dir().join("gate.value");
    let conf_a = format!(
        "{}track_file app {{\n    file {}\n    init_file 0 overwrite\n}}\ntrack_file gate {{\n    file {}\n}}\n",
        config(&[conf]),
        value.display(),
        gate.display()
    );
    let a = Daemon::agent(a_host, t.dir(), &conf_a);
    let a_master =
        || (field(&a, "state") == "MASTER" && a_host.has_address("eth0", VIP)).then_some(());
    wait_until("A master", Duration::from_secs(5), a_master);
    assert_eq!(
        std::fs::read_to_string(&value).unwrap(),
        "0\n",
        "init_file wrote 0"
    );
    let b = Daemon::keepalived(
        t.host("b"),
        t.dir(),
        &VrrpConf::v3("BACKUP", 120, "0.1").render(),
    );
    let b_master = || t.host("b").has_address("eth0", VIP).then_some(());

    // 5 × -10: A advertises 100 < 120 and keepalived preempts it.
    std::fs::write(&value, "5\n").unwrap();
    wait_until("keepalived master", Duration::from_secs(5), b_master);
    assert_eq!(field(&a, "priority"), 100);
    let trackers = field(&a, "trackers");
    let app = trackers
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "file app")
        .unwrap();
    assert_eq!(app["priority_delta"], -50);
    assert_eq!(app["last_result"], "value 5");

    // Written elsewhere and renamed into place, as careful writers do: A is 150 again.
    let tmp = t.dir().join("app.tmp");
    std::fs::write(&tmp, "0").unwrap();
    std::fs::rename(&tmp, &value).unwrap();
    wait_until("A master again", Duration::from_secs(5), a_master);
    assert_eq!(field(&a, "priority"), 150);

    // Weight 0: any non-zero value is FAULT.
    std::fs::write(&gate, "1").unwrap();
    wait_until(
        "A in FAULT, keepalived master",
        Duration::from_secs(5),
        || {
            (field(&a, "state") == "FAULT").then_some(())?;
            b_master()
        },
    );
    std::fs::remove_file(&gate).unwrap();
    wait_until("A master again", Duration::from_secs(5), a_master);
    drop(b);
}

/// `interface_up_down_delays`: a tracked link that bounces for less than its delay changes
/// nothing; one that stays down goes to FAULT once the delay has passed, not before.
#[test]
fn a_link_bouncing_within_its_delay_changes_nothing() {
    let t = Topology::new(&["a"]);
    let a_host = t.host("a");
    a_host.sh(&[
        "ip", "link", "add", "eth1", "type", "veth", "peer", "name", "far1",
    ]);
    a_host.sh(&["ip", "link", "set", "eth1", "up"]);
    a_host.sh(&["ip", "link", "set", "far1", "up"]);
    let mut conf = VrrpConf::v3("MASTER", 150, "0.1");
    conf.extra = vec!["track_interface {\n        eth1\n    }".into()];
    let text = format!(
        "{}interface_up_down_delays {{\n    eth1 1 0.5\n}}\n",
        config(&[conf])
    );
    let a = Daemon::agent(a_host, t.dir(), &text);
    wait_until("A master", Duration::from_secs(5), || {
        (field(&a, "state") == "MASTER").then_some(())
    });
    // Down for 0.3 s: within the 1 s down delay.
    a_host.sh(&["ip", "link", "set", "far1", "down"]);
    std::thread::sleep(Duration::from_millis(300));
    a_host.sh(&["ip", "link", "set", "far1", "up"]);
    assert_never(
        "A leaving MASTER for a bounce",
        Duration::from_millis(1500),
        || field(&a, "state") != "MASTER",
    );
    // Down for good: FAULT after the delay.
    let down = std::time::Instant::now();
    a_host.sh(&["ip", "link", "set", "far1", "down"]);
    wait_until("A in FAULT", Duration::from_secs(5), || {
        (field(&a, "state") == "FAULT").then_some(())
    });
    let took = down.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "FAULT after {took:?}, before the delay"
    );
    a_host.sh(&["ip", "link", "set", "far1", "up"]);
    wait_until("A master again", Duration::from_secs(5), || {
        (field(&a, "state") == "MASTER").then_some(())
    });
}

/// `garp_extra_if all S`: a VIP on another interface than the instance's is announced there
/// every S seconds while MASTER (switches keep its MAC), seen by tcpdump at the far end.
#[test]
fn vips_on_other_interfaces_are_announced_periodically() {
    let t = Topology::new(&["a"]);
    let a_host = t.host("a");
    a_host.sh(&[
        "ip", "link", "add", "eth1", "type", "veth", "peer", "name", "far1",
    ]);
    a_host.sh(&["ip", "link", "set", "eth1", "up"]);
    a_host.sh(&["ip", "link", "set", "far1", "up"]);
    let mut conf = VrrpConf::v3("MASTER", 150, "0.1");
    conf.vips.push("10.77.0.1/24 dev eth1".into());
    conf.extra = vec![
        "garp_master_repeat 1".into(),
        "garp_master_delay 0".into(),
        "garp_extra_if all 1".into(),
    ];
    let a = Daemon::agent(a_host, t.dir(), &config(&[conf]));
    wait_until("A master", Duration::from_secs(5), || {
        (field(&a, "state") == "MASTER").then_some(())
    });
    let out = a_host.run(&[
        "timeout", "4", "tcpdump", "-n", "-i", "far1", "-c", "3", "arp",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(text.matches("who-has 10.77.0.1").count(), 3, "{text}");
}

/// keepalived's default: the instance's own interface losing its carrier means FAULT (the VIP
/// is released, not kept on a dead segment); `dont_track_primary` keeps the master as it is.
#[test]
fn the_instance_interface_going_down_means_fault_unless_dont_track_primary() {
    for dont_track in [false, true] {
        let t = Topology::new(&["a", "b"]);
        let a_host = t.host("a");
        let mut conf = VrrpConf::v3("MASTER", 150, "0.1");
        if dont_track {
            conf.extra = vec!["dont_track_primary".into()];
        }
        let a = Daemon::agent(a_host, t.dir(), &config(&[conf]));
        let _b = Daemon::agent(
            t.host("b"),
            t.dir(),
            &VrrpConf::v3("BACKUP", 120, "0.1").render(),
        );
        let a_master =
            || (field(&a, "state") == "MASTER" && a_host.has_address("eth0", VIP)).then_some(());
        wait_until("A master", Duration::from_secs(5), a_master);
        t.set_cable("a", false);
        wait_until("B master", Duration::from_secs(5), || {
            t.host("b").has_address("eth0", VIP).then_some(())
        });
        if dont_track {
            // Cut off, A goes on as master of its own segment.
            assert_eq!(field(&a, "state"), "MASTER");
            assert!(a_host.has_address("eth0", VIP));
        } else {
            wait_until("A in FAULT without the VIP", Duration::from_secs(2), || {
                (field(&a, "state") == "FAULT" && !a_host.has_address("eth0", VIP)).then_some(())
            });
            assert_eq!(field(&a, "trackers")[0]["name"], "interface eth0");
        }
        t.set_cable("a", true);
        wait_until("A master again", Duration::from_secs(5), a_master);
    }
}

/// The master (ha-agent or keepalived, priority 150, check weight -50) loses its check; the
/// backup (ha-agent, 120, VRRPv3 every 0.1 s) takes over. Returns the time from the master's
/// first advert at priority 100 to the backup's first advert, as an observer captured them.
fn check_triggered_switchover(master: Kind, fast: bool) -> Duration {
    let t = Topology::new(&["a", "b", "c"]);
    let shared = shared_dir(&t);
    let app = shared.join("app-a");
    std::fs::write(&app, "").unwrap();
    let mut a_conf = VrrpConf::v3("MASTER", 150, "0.1");
    a_conf.extra = vec!["track_script {\n        chk\n    }".into()];
    // keepalived 2.2.7 runs scripts at most once a second.
    let interval = if master == Kind::HaAgent { "0.1" } else { "1" };
    // keepalived wants the vrrp_script before the instance that tracks it.
    let globals = config(&[]);
    let instance = config(&[a_conf])[globals.len()..].to_owned();
    let conf_a = format!(
        "{globals}vrrp_script chk {{\n    script \"/usr/bin/test -e {}\"\n    interval {interval}\n    weight -50\n}}\n{instance}",
        app.display()
    );
    let a = match master {
        Kind::HaAgent => Daemon::agent(t.host("a"), t.dir(), &conf_a),
        Kind::Keepalived => Daemon::keepalived(t.host("a"), t.dir(), &conf_a),
    };
    let mut b_conf = VrrpConf::v3("BACKUP", 120, "0.1");
    if fast {
        b_conf.extra = vec!["fast_preempt".into()];
    }
    let b = Daemon::agent(t.host("b"), t.dir(), &b_conf.render());
    wait_until("A master, B backup", Duration::from_secs(5), || {
        (t.host("a").has_address("eth0", VIP) && field(&b, "state") == "BACKUP").then_some(())
    });
    let observer = Observer::start(t.host("c"), t.dir(), "switchover").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::remove_file(&app).unwrap();
    wait_until("B master", Duration::from_secs(5), || {
        (field(&b, "state") == "MASTER" && t.host("b").has_address("eth0", VIP)).then_some(())
    });
    // The old master yields to the higher advert (keepalived included) and lets the VIP go.
    wait_until("A without the VIP", Duration::from_secs(2), || {
        (!t.host("a").has_address("eth0", VIP)).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    let frames = observer.frames().unwrap();
    let at = |src: Ipv4Addr, priority: Option<u8>| {
        frames.iter().find_map(|f| match f {
            Frame::Advert {
                at,
                src: s,
                priority: p,
            } if *s == src && priority.is_none_or(|want| *p == want) => Some(*at),
            _ => None,
        })
    };
    let lowered = at(t.host("a").ip, Some(100)).expect("A advertised priority 100");
    let took_over = at(t.host("b").ip, None).expect("B advertised");
    drop(a);
    Duration::from_nanos(u64::try_from(took_over - lowered).expect("B after A's lower advert"))
}

#[test]
fn fast_preempt_switches_over_after_skew_time_against_ha_agent_and_keepalived() {
    let skew = skew_time(3, Duration::from_millis(100), 120);
    let mdi = master_down_interval(3, Duration::from_millis(100), 120);
    for master in [Kind::HaAgent, Kind::Keepalived] {
        let rfc = check_triggered_switchover(master, false);
        let fast = check_triggered_switchover(master, true);
        eprintln!(
            "{master:?} master: lower advert to takeover {:.1} ms (RFC), {:.1} ms (fast_preempt); Skew_Time {:.1} ms, MDI {:.1} ms",
            rfc.as_secs_f64() * 1e3,
            fast.as_secs_f64() * 1e3,
            skew.as_secs_f64() * 1e3,
            mdi.as_secs_f64() * 1e3
        );
        // RFC: the backup waits out Master_Down_Interval from the last advert it accepted,
        // which came at most one interval before the lower one (20 ms for timer jitter).
        assert!(
            rfc >= mdi - Duration::from_millis(120),
            "{master:?} RFC {rfc:?}"
        );
        assert!(
            fast <= skew + Duration::from_millis(100),
            "{master:?} fast {fast:?}"
        );
    }
}

/// `vrrp_track_process` with keepalived's semantics, from the kernel's process events: the
/// program's processes are counted (one found at start, more as they run), too few means
/// FAULT with weight 0 (keepalived 2.2.7 as the backup takes over), a restart within
/// `terminate_delay` changes nothing, and a quorum of two moves the priority by its weight.
#[test]
fn a_tracked_process_moves_the_priority_or_means_fault() {
    let t = Topology::new(&["a", "b"]);
    let a_host = t.host("a");
    // A program of a name of its own, so that nothing else on the machine counts.
    let name = format!("hta{}", std::process::id() % 100_000);
    let program = t.dir().join(&name);
    std::fs::copy("/bin/sleep", &program).unwrap();
    let start = || {
        std::process::Command::new(&program)
            .arg("600")
            .spawn()
            .unwrap()
    };
    let stop = |mut child: std::process::Child| {
        child.kill().unwrap();
        child.wait().unwrap();
    };
    let first = start();
    let mut conf = VrrpConf::v3("MASTER", 150, "0.1");
    conf.extra = vec!["track_process {\n        app\n        pair\n    }".into()];
    let conf_a = format!(
        "{}vrrp_track_process app {{\n    process {name}\n    weight 0\n    terminate_delay 0.5\n}}\n\
         vrrp_track_process pair {{\n    process {name}\n    quorum 2\n    weight 10\n}}\n",
        config(&[conf])
    );
    let a = Daemon::agent(a_host, t.dir(), &conf_a);
    let a_master =
        || (field(&a, "state") == "MASTER" && a_host.has_address("eth0", VIP)).then_some(());
    wait_until("A master", Duration::from_secs(5), a_master);
    let b = Daemon::keepalived(
        t.host("b"),
        t.dir(),
        &VrrpConf::v3("BACKUP", 155, "0.1").render(),
    );
    let b_master = || t.host("b").has_address("eth0", VIP).then_some(());
    let tracker = |which: &str| {
        field(&a, "trackers")
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == format!("process {which}"))
            .cloned()
            .unwrap()
    };
    // One process: `app` is up; `pair` (quorum 2) is not, so A is 150 < 155.
    wait_until("keepalived master at 155", Duration::from_secs(5), b_master);
    assert_eq!(tracker("app")["last_result"], "1 running");
    assert_eq!(tracker("pair")["up"], false);

    // A second one: `pair` adds 10, A (160) preempts keepalived.
    let second = start();
    wait_until("A master at 160", Duration::from_secs(5), || {
        (field(&a, "priority") == 160).then_some(())?;
        a_master()
    });
    assert_eq!(tracker("app")["last_result"], "2 running");

    // Both restarted at once: within terminate_delay, `app` never goes down.
    stop(first);
    stop(second);
    let (first, second) = (start(), start());
    assert_never("A in FAULT", Duration::from_secs(1), || {
        field(&a, "state") == "FAULT"
    });

    // All gone: FAULT after terminate_delay, keepalived takes over.
    stop(first);
    stop(second);
    wait_until("A in FAULT", Duration::from_secs(3), || {
        (field(&a, "state") == "FAULT").then_some(())
    });
    wait_until("keepalived master", Duration::from_secs(3), b_master);
    assert_eq!(tracker("app")["fault"], true);

    // Back: A is master again.
    let (first, second) = (start(), start());
    wait_until("A master again", Duration::from_secs(5), a_master);
    stop(first);
    stop(second);
    drop(b);
}
