//! `cargo xtask demo`: the seed hot-standby setup on a LAN of network namespaces.

use std::{
    net::Ipv4Addr,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Result;
use ha_tests::{Daemon, Host, Topology, wait::poll_until};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 200);
const SEED: &str = include_str!("../../docs/seed-keepalived.conf");

/// The seed configuration for a host: its interface is eth0 here, and B is the backup.
fn seed_for(state: &str, priority: u8) -> String {
    SEED.replace("enp1s0", "eth0")
        .replace("state MASTER", &format!("state {state}"))
        .replace("priority 150", &format!("priority {priority}"))
}

fn wait_for(timeout: Duration, mut condition: impl FnMut() -> bool) -> Option<Duration> {
    poll_until(timeout, Duration::from_millis(5), || {
        condition().then_some(())
    })
    .map(|(_, took)| took)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn who(t: &Topology, mac: Option<String>) -> String {
    match mac {
        Some(mac) if mac == t.host("a").mac => format!("{mac} (A)"),
        Some(mac) if mac == t.host("b").mac => format!("{mac} (B)"),
        Some(mac) => mac,
        None => "no entry".into(),
    }
}

fn show_observer(t: &Topology) {
    let c = t.host("c");
    let reply = if c.ping_once(VIP) {
        "it answers"
    } else {
        "NO ANSWER"
    };
    println!(
        "   C pings {VIP}: {reply}; C's ARP cache says {VIP} is at {}.",
        who(t, c.arp_entry(VIP))
    );
}

fn status(binary: &Path, daemon: &Daemon) {
    let out = std::process::Command::new(binary)
        .args(["status", "--state-dir"])
        .arg(&daemon.state_dir)
        .output();
    if let Ok(out) = out {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            println!("      {line}");
        }
    }
}

fn holders(t: &Topology) -> String {
    let held: Vec<&str> = ["a", "b"]
        .into_iter()
        .filter(|h| t.host(h).has_address("eth0", VIP))
        .collect();
    match held.as_slice() {
        [] => "nobody".into(),
        hosts => hosts
            .iter()
            .map(|h| h.to_uppercase())
            .collect::<Vec<_>>()
            .join(" and "),
    }
}

/// Waits for `host` to hold the VIP and for C's ARP entry to point at it; prints both,
/// timed from `start` (just before the action that set the change off).
fn drift(t: &Topology, host: &Host, start: Instant, timeout: Duration, floor: &str) -> Result<()> {
    let Some(_) = wait_for(timeout, || host.has_address("eth0", VIP)) else {
        anyhow::bail!("{} did not take the VIP within {timeout:?}", host.name);
    };
    println!(
        "   {} holds the VIP after {} ({floor}).",
        host.name.to_uppercase(),
        secs(start.elapsed())
    );
    let c = t.host("c");
    // C only updates an existing ARP entry from a gratuitous ARP: give it one first.
    if c.arp_entry(VIP).is_none() {
        c.ping_once(VIP);
    }
    if wait_for(Duration::from_secs(2), || {
        c.arp_entry(VIP).as_deref() == Some(host.mac.as_str())
    })
    .is_some()
    {
        println!(
            "   C's ARP entry now points at {}, {} after the change began (gratuitous ARP).",
            who(t, Some(host.mac.clone())),
            secs(start.elapsed())
        );
    }
    Ok(())
}

pub fn run(binary: &Path) -> Result<()> {
    let t = Topology::new(&["a", "b", "c"]);
    let (a, b, c) = (t.host("a"), t.host("b"), t.host("c"));
    println!("\nha-agent demo: two servers share a virtual IP (VIP); a third host uses it.\n");
    println!(
        "   A  {}  {}  ha-agent, configured MASTER, priority 150",
        a.ip, a.mac
    );
    println!(
        "   B  {}  {}  ha-agent, configured BACKUP, priority 120",
        b.ip, b.mac
    );
    println!(
        "   C  {}  {}  observer (a client of the service)",
        c.ip, c.mac
    );
    println!(
        "   All in network namespaces ({}-*) joined by a bridge. Both agents read the seed\n   \
         keepalived.conf (docs/seed-keepalived.conf): VRRPv2, VRID 107, an advert every second,\n   \
         password 1111, VIP {VIP}. Configs and logs: {}\n",
        t.prefix,
        t.dir().display()
    );

    println!("1. Start both agents. Every node starts as BACKUP and waits Master_Down_Interval");
    println!("   (3 adverts + skew) for a master's advert before claiming the VIP itself.");
    let start = Instant::now();
    let mut agent_a = Daemon::agent_with(a, t.dir(), &seed_for("MASTER", 150), binary);
    let agent_b = Daemon::agent_with(b, t.dir(), &seed_for("BACKUP", 120), binary);
    drift(
        &t,
        a,
        start,
        Duration::from_secs(8),
        "Master_Down_Interval for priority 150: 3.41 s",
    )?;
    show_observer(&t);
    std::thread::sleep(Duration::from_millis(300));
    println!("   `ha-agent status` on A and on B:");
    status(binary, &agent_a);
    status(binary, &agent_b);

    println!("\n2. Stop A's agent (SIGTERM, as `systemctl stop` does). It sends a priority-0");
    println!("   advert and removes the VIP; B takes over after its Skew_Time.");
    let start = Instant::now();
    agent_a.stop();
    drift(
        &t,
        b,
        start,
        Duration::from_secs(5),
        "Skew_Time for priority 120: 0.53 s",
    )?;
    show_observer(&t);

    println!("\n3. Start A's agent again. It hears B advertise priority 120 < 150 and preempts");
    println!("   it after its own Master_Down_Interval.");
    let start = Instant::now();
    let mut agent_a = Daemon::agent_with(a, t.dir(), &seed_for("MASTER", 150), binary);
    drift(
        &t,
        a,
        start,
        Duration::from_secs(8),
        "Master_Down_Interval for priority 150: 3.41 s",
    )?;
    wait_for(Duration::from_secs(2), || !b.has_address("eth0", VIP));
    println!("   The VIP is held by: {}.", holders(&t));
    show_observer(&t);

    println!("\n4. Crash A: kill its agent with SIGKILL and pull its cable. Nothing says goodbye;");
    println!("   B notices the silence after Master_Down_Interval for priority 120 (3.53 s).");
    let start = Instant::now();
    t.crash("a", &mut agent_a.process);
    drift(
        &t,
        b,
        start,
        Duration::from_secs(8),
        "counted from the kill; the last advert came up to 1 s earlier",
    )?;
    show_observer(&t);
    println!(
        "   (A's dead agent left the address configured on A, but A is off the LAN: only B\n   \
         answers.)\n\nRemoving the namespaces and {}.\n",
        t.dir().display()
    );
    drop(agent_b);
    drop(t);
    if ha_tests::mariadb::available() {
        database(binary)?;
    }
    println!("Done.\n");
    Ok(())
}

/// The second half: MariaDB on A and B replicating both ways, and the database following
/// the VIP through a switchover and a crash.
fn database(binary: &Path) -> Result<()> {
    use ha_tests::mariadb::{ADMIN, APP, Writer, start_pair};
    let t = Topology::new(&["a", "b", "c"]);
    let (a, b, c) = (t.host("a"), t.host("b"), t.host("c"));
    println!(
        "5. The database follows the VIP. A and B each run MariaDB (server ids 1 and 2,\n   \
         read-only at boot); `ha-agent db setup` on A checks both servers' settings, creates\n   \
         the accounts and starts replication both ways:"
    );
    let (db_a, mut db_b, etc) = start_pair(&t, "agentpass")?;
    let conf = |me: &Host, peer: &Host, state: &str, priority: u8| {
        format!(
            "{}mysql_replication DB1 {{\n    local_address {}\n    peer_address {}\n    \
             user ha_agent\n    password_file {etc}/agent.pass\n    repl_user repl\n    \
             repl_password_file {etc}/repl.pass\n}}\n",
            seed_for(state, priority).replace(
                "    virtual_ipaddress {",
                "    track_replication {\n        DB1\n    }\n    virtual_ipaddress {"
            ),
            me.ip,
            peer.ip,
            etc = etc.display()
        )
    };
    let conf_a = conf(a, b, "MASTER", 150);
    std::fs::write(t.dir().join("setup.conf"), &conf_a)?;
    let out = a
        .command(binary.to_str().unwrap_or("ha-agent"))
        .args(["db", "setup", "-f"])
        .arg(t.dir().join("setup.conf"))
        .args(["--admin-user", ADMIN.0, "--admin-password-file"])
        .arg(etc.join("admin.pass"))
        .output()?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        println!("      {line}");
    }
    anyhow::ensure!(
        out.status.success(),
        "db setup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    db_a.sql("CREATE DATABASE app; CREATE TABLE app.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, seq BIGINT NOT NULL UNIQUE)");
    println!(
        "\n   Both agents track the replication (`track_replication {{ DB1 }}`): a takeover first\n   \
         fences the peer's server, applies everything received, then clears read_only, then\n   \
         takes the VIP."
    );
    let start = Instant::now();
    let agent_a = Daemon::agent_with(a, t.dir(), &conf_a, binary);
    std::thread::sleep(Duration::from_millis(300));
    let mut agent_b = Daemon::agent_with(b, t.dir(), &conf(b, a, "BACKUP", 120), binary);
    wait_for(Duration::from_secs(10), || {
        a.has_address("eth0", VIP) && !db_a.read_only()
    })
    .ok_or_else(|| anyhow::anyhow!("A did not take the VIP"))?;
    println!(
        "   A holds the VIP and is writable after {}; B is read-only: {}.",
        secs(start.elapsed()),
        db_b.read_only()
    );
    let epoch = Instant::now();
    let writer = Writer::start(c, VIP, APP.0, APP.1, epoch);
    std::thread::sleep(Duration::from_secs(2));

    println!(
        "\n6. C inserts rows through the VIP without pause. `ha-agent switchover` on A: A goes\n   \
         read-only, waits until B has executed everything, resigns; B promotes."
    );
    let asked = epoch.elapsed().as_secs_f64();
    let out = std::process::Command::new(binary)
        .args(["switchover", "--state-dir"])
        .arg(&agent_a.state_dir)
        .output()?;
    println!("   {}", String::from_utf8_lossy(&out.stdout).trim());
    wait_for(Duration::from_secs(10), || {
        b.has_address("eth0", VIP) && !db_b.read_only()
    })
    .ok_or_else(|| anyhow::anyhow!("B did not take over"))?;
    std::thread::sleep(Duration::from_secs(2));
    let log = writer.finish();
    let on_b: std::collections::HashSet<u64> = db_b
        .sql("SELECT seq FROM app.t")
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    let again = log
        .acks
        .iter()
        .find(|ack| ack.at > asked && ack.id % 2 == 0)
        .map_or(f64::NAN, |ack| (ack.at - asked) * 1e3);
    println!(
        "   Writes accepted on B {again:.0} ms after the request; {} rows acknowledged, {} missing\n   \
         on B; A is read-only: {}.",
        log.acks.len(),
        log.acks.iter().filter(|a| !on_b.contains(&a.seq)).count(),
        db_a.read_only()
    );

    println!(
        "\n7. A's SQL thread is stopped while C writes to B (A falls behind), then B crashes:\n   \
         agent, database and cable. A applies what it received before it writes."
    );
    db_a.sql("STOP SLAVE SQL_THREAD");
    let writer = Writer::start_from(c, VIP, APP.0, APP.1, Instant::now(), 1 << 32);
    std::thread::sleep(Duration::from_secs(2));
    let log = writer.finish();
    let backlog = db_b
        .sql("SELECT COUNT(*) FROM app.t")
        .parse::<u64>()
        .unwrap_or(0)
        .saturating_sub(
            db_a.sql("SELECT COUNT(*) FROM app.t")
                .parse::<u64>()
                .unwrap_or(0),
        );
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    t.crash("b", &mut agent_b.process);
    db_b.crash();
    wait_for(Duration::from_secs(15), || {
        a.has_address("eth0", VIP) && !db_a.read_only()
    })
    .ok_or_else(|| anyhow::anyhow!("A did not take over"))?;
    let on_a: std::collections::HashSet<u64> = db_a
        .sql("SELECT seq FROM app.t")
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    println!(
        "   A writable with the VIP {} after the crash (Master_Down_Interval 3.53 s); it had\n   \
         {backlog} rows to apply first; {} of the {} rows acknowledged by B missing on A.",
        secs(start.elapsed()),
        log.acks.iter().filter(|a| !on_a.contains(&a.seq)).count(),
        log.acks.len()
    );
    println!("   `ha-agent status` on A:");
    status(binary, &agent_a);
    println!(
        "\nRemoving the namespaces, the servers and {}.",
        t.dir().display()
    );
    Ok(())
}
