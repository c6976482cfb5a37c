//! The etcd witness: a real three-member etcd cluster on its own hosts, two agents whose
//! instance needs the leader key to be MASTER, and partitions between them and etcd. Sampled
//! every few milliseconds from outside: never two VIP holders.

use std::{
    net::Ipv4Addr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use ha_tests::{Daemon, Topology, VrrpConf, daemons::master_down_interval, etcd, wait_until};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 200);
const HOSTS: &[&str] = &["a", "b", "c", "e1", "e2", "e3"];
const ETCD: &[&str] = &["e1", "e2", "e3"];
/// Process scheduling on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(1500);

/// VRRPv3 every 100 ms, with the witness.
fn conf(
    cluster: &etcd::Cluster,
    state: &'static str,
    priority: u8,
    ttl: u64,
    policy: &str,
) -> String {
    let mut instance = VrrpConf::v3(state, priority, "0.1");
    instance.extra.push("witness W1".into());
    format!(
        "{}etcd_witness W1 {{\n    endpoints {}\n    lease_ttl {ttl}\n    on_unreachable {policy}\n}}\n",
        instance.render(),
        cluster.endpoints()
    )
}

fn mdi(priority: u8) -> Duration {
    master_down_interval(3, Duration::from_millis(100), priority)
}

/// Who holds the VIP, sampled every few milliseconds until stopped: (time since start, a
/// holds it, b holds it).
struct Holders {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<(Duration, bool, bool)>>>,
}

impl Holders {
    fn start(t: &Topology) -> Self {
        let (a, b) = (t.host("a").clone(), t.host("b").clone());
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let (on_a, on_b) = (a.has_address("eth0", VIP), b.has_address("eth0", VIP));
                samples.push((start.elapsed(), on_a, on_b));
                std::thread::sleep(Duration::from_millis(2));
            }
            samples
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<(Duration, bool, bool)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().unwrap())
            .unwrap_or_default()
    }
}

fn assert_one_holder_at_most(samples: &[(Duration, bool, bool)]) {
    let both: Vec<_> = samples.iter().filter(|(_, a, b)| *a && *b).collect();
    assert!(
        both.is_empty(),
        "two VIP holders in {} of {} samples, first at {:?}",
        both.len(),
        samples.len(),
        both.first()
    );
}

fn witness_field(agent: &Daemon, field: &str) -> serde_json::Value {
    agent.instance_field("witness")[field].clone()
}

/// Starts the cluster and both agents, a the master and lease holder.
fn start(t: &Topology, ttl: u64, policy: &str) -> (etcd::Cluster, Daemon, Daemon) {
    let cluster = etcd::Cluster::start(t, ETCD).expect("etcd cluster");
    let agent_a = Daemon::agent(
        t.host("a"),
        t.dir(),
        &conf(&cluster, "MASTER", 150, ttl, policy),
    );
    let agent_b = Daemon::agent(
        t.host("b"),
        t.dir(),
        &conf(&cluster, "BACKUP", 120, ttl, policy),
    );
    wait_until("a MASTER holding the key", Duration::from_secs(10), || {
        let status = agent_a.try_status()?;
        let instance = &status["instances"][0];
        (instance["state"] == "MASTER" && instance["witness"]["holder"] == true).then_some(())
    });
    wait_until("b BACKUP", Duration::from_secs(5), || {
        (agent_b.try_status()?["instances"][0]["state"] == "BACKUP").then_some(())
    });
    (cluster, agent_a, agent_b)
}

/// Cuts `host` from the etcd members (its packets to them go nowhere).
fn cut_from_etcd(t: &Topology, host: &str, cluster: &etcd::Cluster, cut: bool) {
    for ip in cluster.ips() {
        let verb = if cut { "add" } else { "del" };
        t.host(host)
            .sh(&["ip", "route", verb, "blackhole", &format!("{ip}/32")]);
    }
}

#[test]
fn a_partition_between_the_nodes_leaves_one_master_the_lease_holder() {
    let t = Topology::new(HOSTS);
    let (_cluster, agent_a, agent_b) = start(&t, 2, "hold");
    let holders = Holders::start(&t);
    // a and b no longer hear each other; both still reach etcd.
    t.set_isolated("a", true);
    t.set_isolated("b", true);
    // b's down timer runs out, it asks for the key, waits for it up to the TTL and is
    // refused: a holds it.
    let ttl = Duration::from_secs(2);
    wait_until("b refused the key", mdi(120) + ttl + SLACK, || {
        witness_field(&agent_b, "refused")
            .as_str()
            .is_some_and(|why| why.contains("held by"))
            .then_some(())
    });
    // Well beyond the lease's TTL: a's lease stays alive (a reaches etcd), b stays out.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(agent_a.instance_field("state"), "MASTER");
    assert_eq!(agent_b.instance_field("state"), "BACKUP");
    t.set_isolated("a", false);
    t.set_isolated("b", false);
    std::thread::sleep(Duration::from_secs(1));
    let samples = holders.finish();
    assert_one_holder_at_most(&samples);
    assert!(
        samples.iter().all(|(_, a, _)| *a),
        "a lost the VIP during the partition"
    );
    assert!(
        agent_b
            .log_text()
            .contains("witness refused the leader key")
    );
}

#[test]
fn a_master_cut_from_everything_steps_down_before_its_lease_can_expire() {
    let t = Topology::new(HOSTS);
    let ttl = Duration::from_secs(2);
    let (cluster, agent_a, agent_b) = start(&t, 2, "hold");
    let holders = Holders::start(&t);
    let cut = Instant::now();
    t.set_isolated("a", true);
    t.set_isolated("b", true);
    cut_from_etcd(&t, "a", &cluster, true);
    wait_until("a stepped down", ttl + SLACK, || {
        (!t.host("a").has_address("eth0", VIP)).then_some(())
    });
    let a_gone = cut.elapsed();
    wait_until("b took over", ttl * 2 + SLACK, || {
        t.host("b").has_address("eth0", VIP).then_some(())
    });
    let b_took = cut.elapsed();
    let samples = holders.finish();
    assert_one_holder_at_most(&samples);
    // a steps down before its lease can expire: within the TTL of its last keep-alive,
    // which came before the cut.
    assert!(
        a_gone < ttl,
        "a stepped down {a_gone:?} after the cut (TTL {ttl:?})"
    );
    // b waits for the lease to expire on etcd's side.
    assert!(
        b_took > a_gone,
        "b took over {b_took:?} after the cut, before a stepped down ({a_gone:?})"
    );
    eprintln!("after the cut: a stepped down in {a_gone:?}, b took over in {b_took:?}");
    assert_eq!(agent_a.instance_field("state"), "BACKUP");
    assert!(
        agent_a.log_text().contains("witness lost"),
        "{}",
        agent_a.log_text()
    );
    assert_eq!(witness_field(&agent_b, "holder"), true);
}

/// etcd loses its quorum (two of three members stop answering) under a master.
fn quorum_loss(policy: &str) -> (Duration, Vec<(Duration, bool, bool)>) {
    let t = Topology::new(HOSTS);
    let (cluster, agent_a, agent_b) = start(&t, 10, policy);
    let holders = Holders::start(&t);
    cluster.members[1].freeze(true);
    cluster.members[2].freeze(true);
    let (_, a_gone) = wait_until("a stepped down", Duration::from_secs(10) + SLACK, || {
        (!t.host("a").has_address("eth0", VIP)).then_some(())
    });
    // Neither node can take the key meanwhile.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(agent_b.instance_field("state"), "BACKUP");
    cluster.members[1].freeze(false);
    cluster.members[2].freeze(false);
    // Back within less than the old lease's TTL: etcd renews every lease when it elects a
    // leader, so the key a held before would outlive the outage by a TTL; a revokes its
    // old lease once it gets a new one.
    let (_, back) = wait_until("a master again", Duration::from_secs(8), || {
        (agent_a.instance_field("state") == "MASTER").then_some(())
    });
    eprintln!("quorum back: a master again after {back:?}");
    (a_gone, holders.finish())
}

#[test]
fn quorum_loss_with_on_unreachable_hold_keeps_the_master_while_its_lease_lives() {
    let (a_gone, samples) = quorum_loss("hold");
    assert_one_holder_at_most(&samples);
    // TTL 10 s, margin 1 s, keep-alives every 3 s: the master keeps its role at least
    // 10 - 1 - 3 = 6 s after its last answered keep-alive, at most 9 s.
    assert!(
        a_gone >= Duration::from_secs(5) && a_gone <= Duration::from_secs(9) + SLACK,
        "a stepped down {a_gone:?} after quorum loss"
    );
}

#[test]
fn quorum_loss_with_on_unreachable_fault_steps_down_at_once() {
    let (a_gone, samples) = quorum_loss("fault");
    assert_one_holder_at_most(&samples);
    // The first keep-alive after the loss fails: within one interval (3 s) and its
    // timeout (1 s).
    assert!(
        a_gone <= Duration::from_secs(4) + SLACK,
        "a stepped down {a_gone:?} after quorum loss"
    );
}

#[test]
fn a_graceful_stop_hands_the_key_over_at_once() {
    let t = Topology::new(HOSTS);
    let ttl = Duration::from_secs(2);
    let (_cluster, mut agent_a, agent_b) = start(&t, 2, "hold");
    let holders = Holders::start(&t);
    let stop = Instant::now();
    agent_a.stop();
    wait_until("b took over", ttl + SLACK, || {
        t.host("b").has_address("eth0", VIP).then_some(())
    });
    let took = stop.elapsed();
    assert_one_holder_at_most(&holders.finish());
    // The key went with a's stop (given back, its lease revoked), not with its lease's
    // expiry: b waited Skew_Time and the moment a's release took.
    assert!(
        took < ttl / 2,
        "b took over {took:?} after a's stop (lease TTL {ttl:?})"
    );
    eprintln!("graceful stop: b took over in {took:?}");
    assert_eq!(witness_field(&agent_b, "holder"), true);
}

/// With the database following the VIP (`track_replication`): a partition between the nodes
/// under continuous writes through the VIP leaves one writable server, and every row the
/// writer saw acknowledged is on it.
#[test]
fn a_partition_with_the_database_leaves_one_writable_server() {
    use ha_tests::mariadb::{self, ADMIN, APP, Sampler, Writer};
    let t = Topology::new(HOSTS);
    let cluster = etcd::Cluster::start(&t, ETCD).expect("etcd cluster");
    let (sa, sb, etc) = mariadb::start_pair(&t, "agent pass").expect("MariaDB pair");
    let config = |me: &str, state: &'static str, priority: u8| {
        let (local, peer) = if me == "a" {
            (sa.ip(), sb.ip())
        } else {
            (sb.ip(), sa.ip())
        };
        let mut instance = VrrpConf::v3(state, priority, "0.1");
        instance.extra.push("witness W1".into());
        instance
            .extra
            .push("track_replication {\n        DB1\n    }".into());
        format!(
            "{}{}etcd_witness W1 {{\n    endpoints {}\n    lease_ttl 2\n}}\n",
            instance.render(),
            mariadb::replication_block(local, peer, &etc, ""),
            cluster.endpoints()
        )
    };
    let setup_conf = t.dir().join("setup.conf");
    std::fs::write(&setup_conf, config("a", "MASTER", 150)).unwrap();
    let out = t
        .host("a")
        .command(ha_tests::daemons::agent_binary().to_str().unwrap())
        .args(["db", "setup", "-f"])
        .arg(&setup_conf)
        .args(["--admin-user", ADMIN.0, "--admin-password-file"])
        .arg(etc.join("admin.pass"))
        .output()
        .unwrap();
    assert!(out.status.success(), "db setup: {out:?}");
    sa.sql(
        "CREATE DATABASE app; CREATE TABLE app.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
         seq BIGINT NOT NULL UNIQUE)",
    );
    wait_until("the table on b", Duration::from_secs(10), || {
        sb.try_sql("SELECT COUNT(*) FROM app.t").ok()
    });
    let agent_a = Daemon::agent(t.host("a"), t.dir(), &config("a", "MASTER", 150));
    let agent_b = Daemon::agent(t.host("b"), t.dir(), &config("b", "BACKUP", 120));
    wait_until("a MASTER, writable", Duration::from_secs(15), || {
        (agent_a.try_status()?["instances"][0]["state"] == "MASTER" && !sa.read_only())
            .then_some(())
    });
    let sampler = Sampler::start(&sa, &sb);
    let writer = Writer::start(t.host("c"), VIP, APP.0, APP.1, Instant::now());
    let holders = Holders::start(&t);
    std::thread::sleep(Duration::from_millis(500));
    t.set_isolated("a", true);
    t.set_isolated("b", true);
    wait_until(
        "b refused the key",
        mdi(120) + Duration::from_secs(2) + SLACK,
        || {
            witness_field(&agent_b, "refused")
                .as_str()
                .is_some_and(|why| why.contains("held by"))
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    t.set_isolated("a", false);
    t.set_isolated("b", false);
    std::thread::sleep(Duration::from_secs(1));
    let log = writer.finish();
    assert_one_holder_at_most(&holders.finish());
    let (rounds, both) = sampler.finish();
    assert!(rounds > 50, "sampled {rounds} rounds");
    assert_eq!(
        both, 0,
        "both servers writable in {both} of {rounds} samples"
    );
    assert!(sb.read_only(), "b became writable");
    let lost = mariadb::missing_rows(&log, &sa);
    assert!(log.acks.len() > 100, "{} rows acknowledged", log.acks.len());
    assert!(
        lost.is_empty(),
        "{} acknowledged rows missing on a",
        lost.len()
    );
    assert_eq!(agent_a.instance_field("state"), "MASTER");
}
