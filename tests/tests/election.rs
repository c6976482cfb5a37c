//! Election mode (`witness W1 election`): no VRRP, three agents on two subnets routed
//! through a router namespace campaign on a real three-member etcd cluster; the leader runs
//! notify_master. Priorities decide, a failing check resigns, a killed leader's lease
//! expires and the next best leads.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use ha_tests::{Daemon, Topology, VrrpConf, daemons::config, etcd, wait_until};

const TTL: Duration = Duration::from_secs(2);
/// Process scheduling on a loaded 2-core machine, and a read of the election every 100 ms.
const SLACK: Duration = Duration::from_millis(1500);

struct Node {
    agent: Daemon,
    /// notify_master, _backup and _fault append MASTER, BACKUP or FAULT here.
    roles: PathBuf,
    /// The check fails while this file exists.
    fail: PathBuf,
}

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn start_node(t: &Topology, cluster: &etcd::Cluster, host: &str, priority: u8) -> Node {
    let roles = t.dir().join(format!("roles-{host}"));
    let fail = t.dir().join(format!("fail-{host}"));
    let notify = t.dir().join(format!("notify-{host}.sh"));
    script(&notify, &format!("echo \"$1\" >> {}", roles.display()));
    let mut instance = VrrpConf::v3("BACKUP", priority, "1");
    // Across subnets there is no gratuitous ARP: the leader runs the application instead.
    instance.vips.clear();
    instance.extra = vec![
        "witness W1 election".into(),
        "track_script {\n        chk\n    }".into(),
        format!("notify_master \"{} MASTER\"", notify.display()),
        format!("notify_backup \"{} BACKUP\"", notify.display()),
        format!("notify_fault \"{} FAULT\"", notify.display()),
    ];
    let conf = format!(
        "{}vrrp_script chk {{\n    script \"/usr/bin/test ! -e {}\"\n    interval 0.1\n}}\n\
         etcd_witness W1 {{\n    endpoints {}\n    lease_ttl {}\n}}\n",
        config(&[instance]),
        fail.display(),
        cluster.endpoints(),
        TTL.as_secs()
    );
    Node {
        agent: Daemon::agent(t.host(host), t.dir(), &conf),
        roles,
        fail,
    }
}

fn state(node: &Node) -> Option<String> {
    let status = node.agent.try_status()?;
    status["instances"][0]["state"].as_str().map(str::to_owned)
}

/// The election as `node` last read it: the leader's name.
fn leader_seen_by(node: &Node) -> Option<String> {
    let status = node.agent.try_status()?;
    status["witnesses"][0]["elections"]["VI_1"]["leader"]
        .as_str()
        .map(str::to_owned)
}

fn last_role(node: &Node) -> Option<String> {
    let roles = std::fs::read_to_string(&node.roles).ok()?;
    roles.lines().last().map(str::to_owned)
}

fn wait_master(name: &str, node: &Node, within: Duration) -> Duration {
    let start = Instant::now();
    wait_until(&format!("{name} MASTER"), within, || {
        (state(node)? == "MASTER").then_some(())
    });
    start.elapsed()
}

fn masters(nodes: &[&Node]) -> usize {
    nodes
        .iter()
        .filter(|n| state(n).as_deref() == Some("MASTER"))
        .count()
}

fn transitions_to_master(node: &Node) -> u64 {
    node.agent
        .instance_field("transitions")
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["to"] == "MASTER")
        .map(|t| t["count"].as_u64().unwrap())
        .sum()
}

#[test]
fn three_nodes_on_two_subnets_elect_by_priority_resign_on_a_failing_check_and_survive_a_killed_leader()
 {
    let t = Topology::routed(&["a", "b", "e1", "e2", "e3"], &["c"]);
    let cluster = etcd::Cluster::start(&t, &["e1", "e2", "e3"]).expect("etcd cluster");
    let mut a = start_node(&t, &cluster, "a", 150);
    let b = start_node(&t, &cluster, "b", 120);
    let c = start_node(&t, &cluster, "c", 100);
    // Each waits a TTL before its first campaign, then the best candidate leads.
    wait_master("a", &a, TTL * 3 + SLACK * 2);
    assert_eq!(last_role(&a).as_deref(), Some("MASTER"));
    wait_until("c (the other subnet) sees a lead", SLACK, || {
        leader_seen_by(&c)?
            .starts_with("ha_test@192.168.2.10")
            .then_some(())
    });
    assert_eq!(masters(&[&b, &c]), 0);
    // b is the heir: it waits in etcd's queue; c does not.
    let campaigning =
        |n: &Node| n.agent.status()["witnesses"][0]["elections"]["VI_1"]["campaigning"].clone();
    wait_until("b campaigning", SLACK, || {
        (campaigning(&b) == true).then_some(())
    });
    assert_eq!(campaigning(&c), false);
    // No VRRP at all.
    for n in [&a, &b, &c] {
        assert_eq!(n.agent.instance_field("adverts_sent"), 0);
    }

    // The leader dies: its lease expires within the TTL, and b, queued, leads at once.
    a.agent.process.kill_group();
    let took = wait_master("b", &b, TTL + SLACK);
    eprintln!("leader killed: b MASTER after {took:?} (lease_ttl {TTL:?})");
    assert_eq!(last_role(&b).as_deref(), Some("MASTER"));
    assert_eq!(masters(&[&c]), 0);

    // b's check fails: it resigns, and c on the other subnet leads.
    std::fs::write(&b.fail, "").unwrap();
    let took = wait_master("c", &c, SLACK * 2);
    eprintln!("b's check failed: c MASTER after {took:?}");
    assert_ne!(state(&b).as_deref(), Some("MASTER"));
    assert_eq!(last_role(&b).as_deref(), Some("FAULT"));
    assert_eq!(last_role(&c).as_deref(), Some("MASTER"));

    // b recovers: its priority is the better one and preemption is on. It stands again
    // (a TTL after, as at a start), queues, and only then c yields: the handover leaves no
    // time without a master.
    std::fs::remove_file(&b.fail).unwrap();
    let start = Instant::now();
    let mut c_last_master = start;
    wait_until("b MASTER again", TTL + SLACK * 2, || {
        if state(&c).as_deref() == Some("MASTER") {
            c_last_master = Instant::now();
        }
        (state(&b)? == "MASTER").then_some(())
    });
    let gap = start.elapsed().saturating_sub(c_last_master - start);
    eprintln!(
        "b's check recovered: b MASTER again after {:?}, {gap:?} after c was last seen MASTER",
        start.elapsed()
    );
    assert!(gap < TTL / 2, "no master for {gap:?} during the handover");
    wait_until("c BACKUP", SLACK, || (state(&c)? == "BACKUP").then_some(()));
    assert_eq!(last_role(&c).as_deref(), Some("BACKUP"));
    // Each change of leader made one master, nothing more.
    assert_eq!(transitions_to_master(&b), 2);
    assert_eq!(transitions_to_master(&c), 1);
}
