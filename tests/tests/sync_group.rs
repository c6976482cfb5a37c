//! `vrrp_sync_group` against keepalived 2.2.7 with the same group: two instances (two VRIDs,
//! two VIPs) move together. A failing check on one member takes the whole group to FAULT on
//! that node and both VIPs to the peer, and back when it recovers; ha-agent as master and
//! as backup. The group's notify script is told `GROUP G STATE 0` on each change. Dual
//! stack: the second member an IPv6 instance, the pair moves all the same.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::unix::fs::PermissionsExt as _,
    path::Path,
    time::Duration,
};

use ha_tests::{Daemon, Host, Kind, Topology, VrrpConf, daemons::config, wait_until};

const VIP1: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 2, 200));
const VIP2_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 2, 201));
const VIP2_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x201));
/// Generous against keepalived's once-a-second checks and a loaded 2-core machine.
const WITHIN: Duration = Duration::from_secs(6);

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// VI_1 (VRID 107, tracks `chk`: the file `app` exists) and VI_2 (VRID 108, VIP `vip2`) in
/// group G, whose `notify` appends its arguments to `log`.
fn grouped(
    vip2: IpAddr,
    state: &'static str,
    priority: u8,
    kind: Kind,
    app: &Path,
    log: &Path,
    dir: &Path,
) -> String {
    let notify = dir.join(format!("notify-{priority}.sh"));
    script(&notify, &format!("echo \"$@\" >> {}", log.display()));
    let mut vi1 = VrrpConf::v3(state, priority, "0.1");
    vi1.extra = vec!["track_script {\n        chk\n    }".into()];
    let mut vi2 = VrrpConf::v3(state, priority, "0.1");
    vi2.name = "VI_2".into();
    vi2.vrid = 108;
    vi2.vips = vec![vip2.to_string()];
    // keepalived runs scripts at most once a second, and wants the vrrp_script first.
    let interval = if kind == Kind::HaAgent { "0.1" } else { "1" };
    let globals = config(&[]);
    let instances = config(&[vi1, vi2])[globals.len()..].to_owned();
    format!(
        "{globals}vrrp_script chk {{\n    script \"/usr/bin/test -e {}\"\n    interval {interval}\n}}\n\
         {instances}vrrp_sync_group G {{\n    group {{\n        VI_1\n        VI_2\n    }}\n    notify {}\n}}\n",
        app.display(),
        notify.display()
    )
}

fn holds(host: &Host, vip2: IpAddr) -> [bool; 2] {
    [VIP1, vip2].map(|vip| host.has_address("eth0", vip))
}

fn group_state(agent: &Daemon) -> String {
    if !agent.state_dir.join(ha_agent::ctl::SOCKET_NAME).exists() {
        return "-".into();
    }
    let status = agent.status();
    let states: Vec<_> = status["instances"]
        .as_array()
        .map(|a| a.iter().map(|i| i["state"].to_string()).collect())
        .unwrap_or_default();
    format!(
        "{} {states:?}",
        status["sync_groups"][0]["state"].as_str().unwrap_or("-")
    )
}

fn wait_group(agent: &Daemon, want: &str) {
    wait_until(&format!("the agent's group {want}"), WITHIN, || {
        group_state(agent).starts_with(want).then_some(())
    });
}

fn wait_holder(holder: &Host, other: &Host, vip2: IpAddr) {
    wait_until(
        &format!("both VIPs on {} only", holder.name),
        WITHIN,
        || {
            (holds(holder, vip2) == [true, true] && holds(other, vip2) == [false, false])
                .then_some(())
        },
    );
}

/// The group's notify lines so far.
fn notified(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn a_failing_member_moves_the_group(master: Kind, vip2: IpAddr) {
    let t = Topology::new(&["a", "b"]);
    if vip2.is_ipv6() {
        t.enable_ipv6();
    }
    let (a, b) = (t.host("a"), t.host("b"));
    let app = t.dir().join("app");
    std::fs::write(&app, "").unwrap();
    let (log_a, log_b) = (t.dir().join("notify-a.log"), t.dir().join("notify-b.log"));
    let backup = match master {
        Kind::HaAgent => Kind::Keepalived,
        Kind::Keepalived => Kind::HaAgent,
    };
    let conf_a = grouped(vip2, "MASTER", 150, master, &app, &log_a, t.dir());
    let app_b = t.dir().join("app-b");
    std::fs::write(&app_b, "").unwrap();
    let conf_b = grouped(vip2, "BACKUP", 120, backup, &app_b, &log_b, t.dir());
    let start = |kind, host, conf: &str| match kind {
        Kind::HaAgent => Daemon::agent(host, t.dir(), conf),
        Kind::Keepalived => Daemon::keepalived(host, t.dir(), conf),
    };
    // The master first, so that the backup never sees a silent LAN at its start.
    let da = start(master, a, &conf_a);
    wait_holder(a, b, vip2);
    let db = start(backup, b, &conf_b);
    let agent = if master == Kind::HaAgent { &da } else { &db };
    // The agent's group when the master is healthy.
    let healthy = if master == Kind::HaAgent {
        "MASTER"
    } else {
        "BACKUP"
    };
    wait_group(agent, healthy);

    // The application on A dies: A's group goes to FAULT and B takes both VIPs.
    std::fs::remove_file(&app).unwrap();
    wait_holder(b, a, vip2);
    wait_group(
        agent,
        if master == Kind::HaAgent {
            "FAULT"
        } else {
            "MASTER"
        },
    );
    if master == Kind::HaAgent {
        assert!(
            group_state(agent).ends_with(r#"["\"FAULT\"", "\"FAULT\""]"#),
            "{}",
            group_state(agent)
        );
    }

    // It comes back: A preempts with both.
    std::fs::write(&app, "").unwrap();
    wait_holder(a, b, vip2);
    wait_group(agent, healthy);

    let log = if master == Kind::HaAgent {
        &log_a
    } else {
        &log_b
    };
    let lines = notified(log);
    let expect: &[&str] = if master == Kind::HaAgent {
        &[
            "GROUP G BACKUP 0",
            "GROUP G MASTER 0",
            "GROUP G FAULT 0",
            "GROUP G BACKUP 0",
            "GROUP G MASTER 0",
        ]
    } else {
        &["GROUP G BACKUP 0", "GROUP G MASTER 0", "GROUP G BACKUP 0"]
    };
    wait_until("the group's notify lines", WITHIN, || {
        (notified(log) == expect).then_some(())
    });
    eprintln!("{master:?} master: group notify {lines:?}");
}

#[test]
fn a_failing_member_moves_the_group_agent_master_keepalived_backup() {
    a_failing_member_moves_the_group(Kind::HaAgent, VIP2_V4);
}

#[test]
fn a_failing_member_moves_the_group_keepalived_master_agent_backup() {
    a_failing_member_moves_the_group(Kind::Keepalived, VIP2_V4);
}

/// An IPv4 and an IPv6 instance in one group, as a dual-stack router pair has them.
#[test]
fn a_dual_stack_group_moves_together_agent_master_keepalived_backup() {
    a_failing_member_moves_the_group(Kind::HaAgent, VIP2_V6);
}

#[test]
fn a_dual_stack_group_moves_together_keepalived_master_agent_backup() {
    a_failing_member_moves_the_group(Kind::Keepalived, VIP2_V6);
}
