//! Replication supervision with real MariaDB 10.11 servers in the hosts' namespaces, the
//! agent beside each, and a writer on the observer host inserting through the VIP. Every
//! test samples both servers' read_only throughout and requires that they were never both
//! writable.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::Command,
    time::Duration,
};

use ha_tests::{
    Daemon, Host, Topology,
    daemons::agent_binary,
    http::{promtool, request},
    mariadb::{self, ADMIN, APP, Mariadb, Sampler, Writer, WriterLog},
    wait_until,
};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 100);

/// A pair of servers (a: server 1, b: server 2), the observer c, and the files the agents
/// and `db setup` read.
struct Lab {
    topo: Topology,
    a: Mariadb,
    b: Mariadb,
    etc: PathBuf,
}

impl Lab {
    fn new() -> Self {
        let topo = Topology::new(&["a", "b", "c"]);
        let (a, b, etc) = mariadb::start_pair(&topo, "agent pass'word").unwrap();
        Self { topo, a, b, etc }
    }

    fn host(&self, name: &str) -> &Host {
        self.topo.host(name)
    }

    /// The agent configuration of `me` (a or b): one VRRPv3 instance at 100 ms whose VIP the
    /// database follows.
    fn config(&self, me: &str, priority: u8, track: &str, extra: &str) -> String {
        let (local, peer) = match me {
            "a" => (self.a.ip(), self.b.ip()),
            _ => (self.b.ip(), self.a.ip()),
        };
        format!(
            "global_defs {{
    vrrp_version 3
}}
{}vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int 0.1
    virtual_ipaddress {{
        {VIP}/24
    }}
    track_replication {{
        {track}
    }}
}}
",
            mariadb::replication_block(local, peer, &self.etc, extra)
        )
    }

    fn agent(&self, me: &str, priority: u8, track: &str, extra: &str) -> Daemon {
        self.agent_args(me, priority, track, extra, &[])
    }

    fn agent_args(
        &self,
        me: &str,
        priority: u8,
        track: &str,
        extra: &str,
        args: &[&str],
    ) -> Daemon {
        let config = self.config(me, priority, track, extra);
        Daemon::agent_args(
            self.host(me),
            self.topo.dir(),
            &config,
            &agent_binary(),
            args,
        )
    }

    /// a (MASTER 150, started first, with `args_a`) and b (BACKUP 100, tracking `track_b`),
    /// both settled.
    fn agents(&self, track_b: &str, extra: &str, args_a: &[&str]) -> (Daemon, Daemon) {
        let a = self.agent_args("a", 150, "DB1", extra, args_a);
        std::thread::sleep(Duration::from_millis(300));
        let b = self.agent("b", 100, track_b, extra);
        wait_state(&a, "MASTER", Duration::from_secs(10));
        wait_state(&b, "BACKUP", Duration::from_secs(10));
        // b follows a (it heard an advert): a crash from here is a failover to b, one that
        // anti-flap counts, not b's start without a master.
        let master = self.host("a").ip.to_string();
        wait_until("b following a", Duration::from_secs(10), || {
            (b.try_status()?["instances"][0]["master"] == master.as_str()).then_some(())
        });
        (a, b)
    }

    /// `ha-agent db setup` from host a, with the admin account.
    fn setup(&self) -> std::process::Output {
        let conf = self.topo.dir().join("setup-a.conf");
        std::fs::write(&conf, self.config("a", 150, "DB1", "")).unwrap();
        self.host("a")
            .command(agent_binary().to_str().unwrap())
            .args(["db", "setup", "-f"])
            .arg(&conf)
            .args(["--admin-user", ADMIN.0, "--admin-password-file"])
            .arg(self.etc.join("admin.pass"))
            .output()
            .unwrap()
    }

    /// Setup, then the application's table (created as root on a, replicated to b).
    fn setup_with_table(&self) {
        let out = self.setup();
        assert!(
            out.status.success(),
            "db setup: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.a.sql(
            "CREATE DATABASE app; CREATE TABLE app.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
             seq BIGINT NOT NULL UNIQUE)",
        );
        wait_until("the table on b", Duration::from_secs(10), || {
            self.b.try_sql("SELECT COUNT(*) FROM app.t").ok()
        });
    }

    /// Inserts through the VIP until a holds more than `rows`, then waits until b's replica
    /// has received all of it (applied or not).
    fn write_until_b_received(&self, b: &Daemon, rows_on_a: usize) -> WriterLog {
        let writer = self.writer();
        wait_until("rows on a", Duration::from_secs(20), || {
            (rows(&self.a).len() > rows_on_a).then_some(())
        });
        let log = writer.finish();
        let written = self.a.sql("SELECT @@gtid_binlog_pos");
        wait_until("b received everything", Duration::from_secs(10), || {
            (db_status(b)["local"]["replica"]["received"] == written.as_str()).then_some(())
        });
        log
    }

    /// Setup, both agents (`extra` in the block), then b's replica cut (its I/O thread
    /// stopped) while more than 200 rows are written through the VIP: (a, b, the read_only
    /// sampler, the writer's log).
    fn with_b_behind(&self, extra: &str) -> (Daemon, Daemon, Sampler, WriterLog) {
        self.setup_with_table();
        let sampler = Sampler::start(&self.a, &self.b);
        let (a, b) = self.agents("DB1", extra, &[]);
        self.b.sql("STOP SLAVE IO_THREAD");
        let writer = self.writer();
        wait_until("rows on a", Duration::from_secs(20), || {
            (rows(&self.a).len() > 200).then_some(())
        });
        let log = writer.finish();
        assert!(rows(&self.b).len() < log.acks.len(), "b is behind");
        (a, b, sampler, log)
    }

    fn writer(&self) -> Writer {
        Writer::start(self.host("c"), VIP, APP.0, APP.1, std::time::Instant::now())
    }
}

fn rows(server: &Mariadb) -> Vec<u64> {
    server
        .sql("SELECT seq FROM app.t ORDER BY seq")
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

/// Every acknowledged row is on `server` once, and no key was given twice.
fn assert_no_loss(log: &WriterLog, server: &Mariadb) {
    let lost = mariadb::missing_rows(log, server);
    assert!(lost.is_empty(), "acknowledged rows lost: {lost:?}");
    let mut ids: Vec<u64> = log.acks.iter().map(|a| a.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), log.acks.len(), "duplicate keys acknowledged");
}

/// The read_only samples (returned: how many rounds) never saw both servers writable.
fn never_both_writable(sampler: Sampler) -> u64 {
    let (rounds, both) = sampler.finish();
    assert!(rounds > 50, "sampled {rounds} rounds");
    assert_eq!(
        both, 0,
        "both servers writable in {both} of {rounds} samples"
    );
    rounds
}

fn db_status(d: &Daemon) -> serde_json::Value {
    d.status()["replication"][0].clone()
}

/// A session on `server` holding `app.t` (its SQL thread waits behind it), once the lock is
/// held; killing the child lets the replica go on.
fn lock_table(server: &Mariadb) -> std::process::Child {
    let lock = Command::new("mariadb")
        .arg("--no-defaults")
        .arg("-S")
        .arg(server.socket())
        .args(["-uroot", "-e", "LOCK TABLES app.t WRITE; SELECT SLEEP(600)"])
        .spawn()
        .unwrap();
    wait_until("the table locked", Duration::from_secs(5), || {
        let in_use = server
            .try_sql("SHOW OPEN TABLES FROM app WHERE In_use > 0")
            .ok()?;
        (!in_use.is_empty()).then_some(())
    });
    lock
}

/// Waits (up to `limit`) until `agent`'s last promotion was refused; why.
fn refusal(agent: &Daemon, what: &str, limit: Duration) -> String {
    wait_until(what, limit, || {
        let st = db_status(agent);
        (st["last_promotion"]["ok"] == false).then(|| {
            st["last_promotion"]["result"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
    })
    .0
}

fn state(d: &Daemon) -> String {
    d.try_status()
        .map(|s| s["instances"][0]["state"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

fn wait_state(d: &Daemon, want: &str, limit: Duration) {
    wait_until(&format!("{} {want}", d.host.name), limit, || {
        (state(d) == want).then_some(())
    });
}

/// `ha-agent switchover` on `from`, which must succeed, and `to` MASTER.
fn switchover(from: &Daemon, to: &Daemon) {
    let out = Command::new(agent_binary())
        .args(["switchover", "--state-dir"])
        .arg(&from.state_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_state(to, "MASTER", Duration::from_secs(10));
}

/// Waits until `server` has executed everything `from` wrote.
fn caught_up(from: &Mariadb, server: &Mariadb) {
    let pos = from.sql("SELECT @@gtid_binlog_pos");
    let waited = server.sql(&format!("SELECT MASTER_GTID_WAIT('{pos}', 20)"));
    assert_eq!(waited, "0", "{} did not reach {pos}", server.host.name);
}

#[test]
fn setup_then_switchover_both_ways_under_writes_loses_nothing() {
    let lab = Lab::new();
    lab.setup_with_table();
    for m in [&lab.a, &lab.b] {
        // ON while both replication threads run.
        let running = m.sql("SHOW GLOBAL STATUS LIKE 'Slave_running'");
        assert_eq!(running, "Slave_running\tON");
        assert!(m.read_only(), "servers stay read-only after setup");
    }
    // A second setup refuses: the pair is no longer fresh.
    let again = lab.setup();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already configured"));

    let sampler = Sampler::start(&lab.a, &lab.b);
    let metrics_at = SocketAddr::from((lab.a.ip(), 9100));
    let (a, b) = lab.agents("DB1", "", &["--http-listen", &metrics_at.to_string()]);
    assert!(!lab.a.read_only() && lab.b.read_only());

    let writer = lab.writer();
    wait_until("rows through the VIP", Duration::from_secs(10), || {
        (rows(&lab.a).len() > 200).then_some(())
    });
    // A -> B, planned, under writes.
    switchover(&a, &b);
    let promotion = db_status(&b)["last_promotion"].clone();
    eprintln!(
        "switchover a -> b: promotion on b took {} ms: {}",
        promotion["duration_ms"], promotion["result"]
    );
    wait_until("b writable", Duration::from_secs(10), || {
        (!lab.b.read_only()).then_some(())
    });
    let on_b = rows(&lab.b).len();
    wait_until("rows written on b", Duration::from_secs(10), || {
        (rows(&lab.b).len() > on_b + 200).then_some(())
    });
    assert!(lab.a.read_only(), "the old master ends read-only");
    assert_eq!(state(&a), "BACKUP", "no automatic failback");
    // B -> A.
    switchover(&b, &a);
    let on_a = rows(&lab.a).len();
    wait_until("rows written on a", Duration::from_secs(10), || {
        (rows(&lab.a).len() > on_a + 200).then_some(())
    });
    let log = writer.finish();
    caught_up(&lab.a, &lab.b);
    assert_no_loss(&log, &lab.a);
    assert_no_loss(&log, &lab.b);
    assert!(lab.b.read_only());
    let rounds = never_both_writable(sampler);
    let longest = log.gaps.iter().map(|(s, e)| e - s).fold(0.0, f64::max);
    eprintln!(
        "switchover x2: {} rows acknowledged, {} failed inserts retried, longest write gap {:.0} ms, {rounds} read_only samples",
        log.acks.len(),
        log.failures,
        longest * 1000.0
    );
    // Status of both directions, from the agent (its next health check) and from the CLI.
    let (st, _) = wait_until(
        "a's status after its promotion",
        Duration::from_secs(5),
        || {
            let st = db_status(&a);
            (st["local"]["read_only"] == false && st["peer"]["read_only"] == true).then_some(st)
        },
    );
    assert_eq!(st["local"]["read_only"], false);
    assert_eq!(st["peer"]["read_only"], true);
    assert_eq!(st["local"]["replica"]["io_running"], "Yes");
    assert!(st["last_promotion"]["ok"].as_bool().unwrap());
    let conf = lab.topo.dir().join("ha-agent-b.conf");
    let out = lab
        .host("b")
        .command(agent_binary().to_str().unwrap())
        .args(["db", "status", "-f"])
        .arg(&conf)
        .arg("--state-dir")
        .arg(&b.state_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("replication DB1: healthy"), "{text}");
    assert!(text.contains("read-only"), "{text}");
    assert!(text.contains("WRITABLE"), "{text}");
    // The replication figures in /metrics, as Prometheus would scrape them from c.
    let (code, metrics) = request(lab.host("c"), "GET", metrics_at, "/metrics");
    assert_eq!(code, 200);
    let (ok, lint) = promtool(&metrics);
    assert!(ok && lint.trim().is_empty(), "promtool: {lint}\n{metrics}");
    for expected in [
        "ha_agent_replication_read_only{db=\"DB1\",server=\"local\"} 0",
        "ha_agent_replication_read_only{db=\"DB1\",server=\"peer\"} 1",
        "ha_agent_replication_io_running{db=\"DB1\",server=\"local\"} 1",
        "ha_agent_replication_healthy{db=\"DB1\"} 1",
        "ha_agent_replication_last_promotion_ok{db=\"DB1\"} 1",
        "ha_agent_transitions_total{instance=\"VI_1\",reason=\"master_resigned\",to=\"MASTER\"} 1",
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing from\n{metrics}"
        );
    }
}

/// The agent, the database and the link of host `name`, all at once.
fn crash_node(topo: &Topology, agent: &mut Daemon, server: &mut Mariadb, name: &str) {
    agent.process.kill_group();
    server.crash();
    topo.set_cable(name, false);
}

/// MariaDB 10.11 answers `@@read_only` as 0 in a statement that reads a table
/// (`SELECT @@read_only, COUNT(*) FROM t` gives 0 on a read-only server): the count is a
/// subquery.
const READ_ONLY_AND_ROWS: &str = "SELECT @@read_only, (SELECT COUNT(*) FROM app.t)";

/// Samples `server`'s read_only and row count until stopped: (read_only, rows).
fn watch(
    server: &Mariadb,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<Vec<(bool, u64)>>,
) {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let socket = server.socket();
    let thread = std::thread::spawn(move || {
        let mut samples = Vec::new();
        while !flag.load(Ordering::Relaxed) {
            let out = Command::new("mariadb")
                .arg("--no-defaults")
                .arg("-S")
                .arg(&socket)
                .args(["-uroot", "-N", "-B", "-e", READ_ONLY_AND_ROWS])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let mut f = text.split_whitespace();
            if let (Some(ro), Some(n)) = (f.next(), f.next()) {
                samples.push((ro == "1", n.parse().unwrap_or(0)));
            }
        }
        samples
    });
    (stop, thread)
}

#[test]
fn a_crash_with_unapplied_relay_log_is_drained_before_the_backup_writes() {
    let mut lab = Lab::new();
    lab.setup_with_table();
    let sampler = Sampler::start(&lab.a, &lab.b);
    let (mut a, b) = lab.agents("DB1", "", &[]);
    // B receives but does not apply: a backlog builds up in its relay log.
    lab.b.sql("STOP SLAVE SQL_THREAD");
    let log = lab.write_until_b_received(&b, 500);
    let applied = rows(&lab.b).len();
    assert!(
        applied < log.acks.len(),
        "a backlog: {applied} of {} applied",
        log.acks.len()
    );
    let (stop, watcher) = watch(&lab.b);
    std::thread::sleep(Duration::from_millis(100));
    crash_node(&lab.topo, &mut a, &mut lab.a, "a");
    wait_state(&b, "MASTER", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = watcher.join().unwrap();
    // The first moment B is writable, it holds every row A acknowledged.
    let first_writable = samples.iter().find(|(ro, _)| !ro).copied();
    assert_eq!(
        first_writable.map(|(_, n)| n),
        Some(log.acks.len() as u64),
        "rows on b when read_only was cleared ({} samples)",
        samples.len()
    );
    assert_no_loss(&log, &lab.b);
    let text = b.log_text();
    assert!(text.contains("SQL thread started"), "{text}");
    assert!(text.contains("relay log applied up to"), "{text}");
    assert!(text.contains("peer not reached, not fenced"), "{text}");
    // The application writes on B through the VIP.
    let writer = lab.writer();
    wait_until("writes on b", Duration::from_secs(10), || {
        (rows(&lab.b).len() > log.acks.len() + 50).then_some(())
    });
    drop(writer);
    never_both_writable(sampler);
    eprintln!(
        "crash: {} rows acknowledged, {} of them unapplied on b at the crash, all present",
        log.acks.len(),
        log.acks.len() - applied
    );
}

/// MariaDB forgets, when a replica's server restarts, the part of its relay log it had not
/// applied: it fetches it again from its source. If the source is out of reach by then and
/// then dies, the replica reports nothing missing, and a gate that trusted it promoted a
/// server without rows the master had acknowledged (found by `cargo xtask chaos --db`).
/// The agent remembers what its replica reported received and waits for that.
#[test]
fn a_restarted_backup_server_does_not_forget_what_it_received() {
    let mut lab = Lab::new();
    lab.setup_with_table();
    let (mut a, b) = lab.agents("DB1", "", &[]);
    lab.b.sql("STOP SLAVE SQL_THREAD");
    let log = lab.write_until_b_received(&b, 200);
    let applied = rows(&lab.b).len();
    assert!(applied < log.acks.len(), "a backlog on b");
    // The database hosts cut off from each other (VRRP's multicast still flows), then b's
    // server crashes and comes back without what it had not applied.
    let route = |from: &Host, to: &Mariadb, op: &str| {
        from.sh(&["ip", "route", op, "blackhole", &format!("{}/32", to.ip())]);
    };
    route(lab.host("a"), &lab.b, "add");
    route(lab.host("b"), &lab.a, "add");
    lab.b.crash();
    lab.b.restart().unwrap();
    wait_until("b's replica forgot", Duration::from_secs(10), || {
        let received = lab
            .b
            .try_sql("SHOW SLAVE STATUS")
            .ok()?
            .contains(&lab.a.sql("SELECT @@gtid_binlog_pos"));
        (!received).then_some(())
    });
    wait_state(&b, "BACKUP", Duration::from_secs(10));
    // The master dies.
    crash_node(&lab.topo, &mut a, &mut lab.a, "a");
    let why = refusal(&b, "b refuses", Duration::from_secs(20));
    assert!(
        why.contains("no longer in this server's relay log"),
        "{why}"
    );
    assert_eq!(state(&b), "BACKUP");
    assert!(!b.host.has_address("eth0", VIP));
    assert!(lab.b.read_only());
    assert_eq!(
        rows(&lab.b).len(),
        applied,
        "nothing applied that b did not have"
    );
    eprintln!(
        "restart: {} rows acknowledged, {} applied on b, promotion refused: {why}",
        log.acks.len(),
        applied
    );
}

/// A promotion its instance gave up (a better master spoke while it drained the relay log)
/// must not clear `read_only` when the drain ends: the demotion queued behind it would set it
/// again a moment later, and meanwhile both servers were writable (found by `cargo xtask
/// chaos --db`, seed 2: 4 ms).
#[test]
fn a_promotion_abandoned_for_a_better_master_keeps_read_only() {
    let lab = Lab::new();
    lab.setup_with_table();
    let (a, b) = lab.agents("DB1", "", &[]);
    // A session on b holds the table: b's SQL thread waits for it, the backlog grows.
    let mut lock = lock_table(&lab.b);
    lab.write_until_b_received(&b, 100);
    // a's agent falls silent: b starts its promotion and waits on the locked relay log.
    a.process.signal(nix::sys::signal::Signal::SIGSTOP);
    wait_until("b promoting", Duration::from_secs(10), || {
        b.instance_field("promoting").as_bool().filter(|p| *p)
    });
    // a comes back, better: b gives the promotion up.
    let demotions = b.log_text().matches("demoted: read_only set").count();
    a.process.signal(nix::sys::signal::Signal::SIGCONT);
    wait_until("b no longer promoting", Duration::from_secs(10), || {
        (b.instance_field("promoting") == false).then_some(())
    });
    // The drain ends now; the promotion must end without clearing read_only.
    let _ = lock.kill();
    let _ = lock.wait();
    let why = refusal(&b, "the promotion's answer", Duration::from_secs(20));
    assert!(why.contains("abandoned"), "{why}");
    // The demotion queued behind it ends client sessions, this test's own included: read
    // read_only once it has answered (reading it meanwhile failed CI with "server has gone
    // away").
    wait_until("b's demotion answered", Duration::from_secs(20), || {
        (b.log_text().matches("demoted: read_only set").count() > demotions).then_some(())
    });
    assert!(
        !b.log_text().contains("read_only cleared"),
        "{}",
        b.log_text()
    );
    assert!(lab.b.read_only());
    assert_eq!(state(&b), "BACKUP");
}

#[test]
fn an_apply_error_refuses_promotion_and_says_why() {
    let mut lab = Lab::new();
    lab.setup_with_table();
    let sampler = Sampler::start(&lab.a, &lab.b);
    let (mut a, mut b) = lab.agents("DB1 weight -10", "", &[]);
    // A row of B's own (root bypasses read_only) holds the key A uses next: B's SQL thread
    // stops on a duplicate key.
    lab.b
        .sql("SET sql_log_bin=0; INSERT INTO app.t (id, seq) VALUES (1001, 999999)");
    lab.a.sql("INSERT INTO app.t (id, seq) VALUES (1001, 1)");
    wait_until("b sees its apply error", Duration::from_secs(10), || {
        db_status(&b)["problem"]
            .as_str()
            .is_some_and(|p| p.contains("apply error 1062"))
            .then_some(())
    });
    // Its weight lowers it.
    wait_until("b at priority 90", Duration::from_secs(5), || {
        (b.instance_field("priority") == 90).then_some(())
    });
    crash_node(&lab.topo, &mut a, &mut lab.a, "a");
    let why = refusal(&b, "b refuses", Duration::from_secs(10));
    assert!(why.contains("replication apply error 1062"), "{why}");
    assert!(
        b.log_text()
            .contains("promotion refused: replication apply error 1062")
    );
    // It keeps refusing: no VIP, read-only.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(state(&b), "BACKUP");
    assert!(!b.host.has_address("eth0", VIP));
    assert!(lab.b.read_only());
    let text = b.status_text();
    assert!(text.contains("REFUSED"), "{text}");
    assert!(text.contains("apply error 1062"), "{text}");
    // Without a weight, broken replication is FAULT.
    b.stop();
    let b = lab.agent("b", 100, "DB1", "");
    wait_state(&b, "FAULT", Duration::from_secs(10));
    never_both_writable(sampler);
}

#[test]
fn anti_flap_holds_the_second_automatic_failover_until_acknowledged() {
    let mut lab = Lab::new();
    lab.setup_with_table();
    let sampler = Sampler::start(&lab.a, &lab.b);
    let limit = "    max_auto_failovers 1\n";
    let (mut a, mut b) = lab.agents("DB1", limit, &[]);

    // First automatic failover: allowed.
    crash_node(&lab.topo, &mut a, &mut lab.a, "a");
    wait_state(&b, "MASTER", Duration::from_secs(10));
    // Counted on disk; status reads it at its next health check.
    wait_until("the failover counted", Duration::from_secs(5), || {
        (db_status(&b)["auto_failovers"] == 1).then_some(())
    });

    // A comes back: read-only, it pulls from the writable B, and stays BACKUP (no failback).
    lab.topo.set_cable("a", true);
    lab.a.restart().unwrap();
    let mut a = lab.agent("a", 150, "DB1", limit);
    wait_state(&a, "BACKUP", Duration::from_secs(10));
    let writer = lab.writer();
    wait_until("rows on b", Duration::from_secs(10), || {
        (rows(&lab.b).len() > 100).then_some(())
    });
    let log = writer.finish();
    caught_up(&lab.b, &lab.a);
    assert_no_loss(&log, &lab.a);
    // B pulls from A again once it has seen that A holds nothing of its own.
    wait_until("b replicates from a again", Duration::from_secs(10), || {
        (db_status(&b)["local"]["replica"]["io_running"] == "Yes").then_some(())
    });
    assert!(b.log_text().contains("replication from the peer started"));
    assert_eq!(state(&a), "BACKUP", "no automatic failback");

    // A planned switchover back to A is not an automatic failover...
    switchover(&b, &a);
    // ... but a second crash is: B refuses until an operator acknowledges.
    crash_node(&lab.topo, &mut a, &mut lab.a, "a");
    let why = refusal(&b, "b refuses", Duration::from_secs(10));
    assert!(why.contains("max_auto_failovers 1"), "{why}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(state(&b), "BACKUP");
    assert!(lab.b.read_only());
    let out = lab
        .host("b")
        .command(agent_binary().to_str().unwrap())
        .args(["db", "ack", "-f"])
        .arg(lab.topo.dir().join("ha-agent-b.conf"))
        .arg("--state-dir")
        .arg(&b.state_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 automatic failover(s) acknowledged"));
    wait_state(&b, "MASTER", Duration::from_secs(10));
    assert!(!lab.b.read_only());
    // A graceful stop of the master: read-only first, then the VIP goes.
    b.stop();
    assert!(lab.b.read_only());
    assert!(!lab.host("b").has_address("eth0", VIP));
    assert!(b.log_text().contains("demoted: read_only set"));
    never_both_writable(sampler);
}

#[test]
fn setup_refuses_wrong_settings_and_changes_nothing() {
    let lab = Lab::new();
    lab.b.sql("SET GLOBAL binlog_format = 'STATEMENT'");
    let out = lab.setup();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains("peer (192.168.2.11:3306): settings to change, in my.cnf:\n[mysqld]\nbinlog_format = ROW"),
        "{text}"
    );
    assert!(text.contains("local (192.168.2.10:3306, "), "{text}");
    // Nothing changed on either server.
    for m in [&lab.a, &lab.b] {
        assert_eq!(
            m.sql("SELECT COUNT(*) FROM mysql.user WHERE user IN ('repl', 'ha_agent')"),
            "0"
        );
        assert_eq!(m.sql("SHOW SLAVE STATUS"), "");
    }
}

#[test]
fn a_relay_log_that_cannot_drain_in_time_is_refused_then_promoted_once_applied() {
    let mut lab = Lab::new();
    lab.setup_with_table();
    let sampler = Sampler::start(&lab.a, &lab.b);
    let drain = "    drain_timeout 1\n";
    let (mut a, b) = lab.agents("DB1", drain, &[]);
    // A session on b holds the table: b's SQL thread waits for it, the backlog grows.
    let mut lock = lock_table(&lab.b);
    let log = lab.write_until_b_received(&b, 300);
    crash_node(&lab.topo, &mut a, &mut lab.a, "a");
    let why = refusal(&b, "b refuses", Duration::from_secs(10));
    assert!(
        why.contains("relay log not applied within drain_timeout 1s"),
        "{why}"
    );
    // Still refusing while the lock is held: no VIP, read-only.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(state(&b), "BACKUP");
    assert!(lab.b.read_only());
    assert!(!b.host.has_address("eth0", VIP));
    // The lock goes: the next attempt drains and promotes, with every row.
    let _ = lock.kill();
    let _ = lock.wait();
    wait_state(&b, "MASTER", Duration::from_secs(10));
    assert_no_loss(&log, &lab.b);
    // Its database dies: b leaves MASTER (FAULT) and releases the VIP.
    lab.b.crash();
    wait_state(&b, "FAULT", Duration::from_secs(10));
    wait_until("the VIP released", Duration::from_secs(10), || {
        (!b.host.has_address("eth0", VIP)).then_some(())
    });
    never_both_writable(sampler);
}

/// The status shows what a promotion or demotion changed as soon as it is done, not at the
/// next health check (here 30 s away): the new master's server writable, the old one's
/// read-only.
#[test]
fn the_status_follows_a_promotion_and_a_demotion_at_once() {
    let lab = Lab::new();
    lab.setup_with_table();
    let (a, b) = lab.agents("DB1", "    check_interval 30\n", &[]);
    wait_until("both checked once", Duration::from_secs(10), || {
        (db_status(&a)["local"]["read_only"] == false
            && db_status(&b)["local"]["read_only"] == true)
            .then_some(())
    });
    switchover(&a, &b);
    let (_, took) = wait_until(
        "the status of both after the switchover",
        Duration::from_secs(5),
        || {
            (db_status(&b)["local"]["read_only"] == false
                && db_status(&a)["local"]["read_only"] == true)
                .then_some(())
        },
    );
    eprintln!("status caught up {took:?} after b became MASTER");
    assert!(!lab.b.read_only() && lab.a.read_only());
}

/// `semi_sync on`: the master's commits wait (AFTER_SYNC) until the peer's relay log has
/// them, so a crash of the master under continuous writes loses no acknowledged row; the
/// new master, without a replica, falls back to asynchronous replication after
/// `semi_sync_timeout`, and says so.
#[test]
fn semi_sync_loses_nothing_in_a_crash_and_reports_its_fallback() {
    let mut lab = Lab::new();
    lab.setup_with_table();
    let extra = "    semi_sync on\n    semi_sync_timeout 500\n";
    let (mut a, b) = lab.agents("DB1", extra, &[]);
    let semi_sync = |d: &Daemon| db_status(d)["local"]["semi_sync"].clone();
    wait_until("semi-sync active on a", Duration::from_secs(10), || {
        (semi_sync(&a)["master_active"] == true).then_some(())
    });
    wait_until("b's replica side on", Duration::from_secs(10), || {
        (semi_sync(&b)["replica_enabled"] == true && semi_sync(&b)["master_enabled"] == false)
            .then_some(())
    });
    // The crash comes in the middle of the writes, with no wait for b to catch up.
    let writer = lab.writer();
    wait_until("rows on a", Duration::from_secs(20), || {
        (rows(&lab.a).len() > 300).then_some(())
    });
    crash_node(&lab.topo, &mut a, &mut lab.a, "a");
    wait_state(&b, "MASTER", Duration::from_secs(15));
    // The first promotion goes through: STOP SLAVE of a semi-sync replica tries to reach the
    // dead master first (5 s by MariaDB's default, which made the promotion time out).
    assert!(
        !b.log_text().contains("promotion refused"),
        "{}",
        b.log_text()
    );
    wait_until("writes on b", Duration::from_secs(15), || {
        (rows(&lab.b).len() > 400).then_some(())
    });
    // No replica acknowledges b's commits: it falls back, and the agent says so.
    wait_until(
        "b fallen back to asynchronous",
        Duration::from_secs(15),
        || {
            let s = semi_sync(&b);
            (s["master_enabled"] == true && s["master_active"] == false).then_some(())
        },
    );
    let log = writer.finish();
    assert_no_loss(&log, &lab.b);
    assert!(
        b.log_text().contains("fell back to asynchronous"),
        "{}",
        b.log_text()
    );
    assert!(b.status_text().contains("FALLEN BACK to asynchronous"));
    eprintln!(
        "semi-sync crash: {} rows acknowledged ({} failed and retried), all on b",
        log.acks.len(),
        log.failures
    );
}

/// An old master that stepped down before its peer received its last writes (the peer's
/// replica was cut) holds the pair's newest data: when it comes back it promotes, and the peer
/// fetches the rest from it. The gate used to call its own writes "errant" and refuse,
/// leaving no master at all (found by `cargo xtask chaos --db --witness`, where losing the
/// witness makes a master step down so).
#[test]
fn an_old_master_ahead_of_its_peer_promotes_again() {
    let lab = Lab::new();
    let (mut a, mut b, sampler, log) = lab.with_b_behind("");
    // b's agent goes, then a steps down (read-only, VIP gone) and comes back alone.
    b.stop();
    a.stop();
    assert!(lab.a.read_only());
    let a = lab.agent("a", 150, "DB1", "");
    wait_state(&a, "MASTER", Duration::from_secs(20));
    assert_no_loss(&log, &lab.a);
    assert!(!lab.a.read_only());
    let promotion = db_status(&a)["last_promotion"]["result"].clone();
    assert!(
        promotion
            .as_str()
            .is_some_and(|r| r.contains("the peer lacks our")),
        "{promotion}"
    );
    // b's agent back: it pulls from the writable master and catches up.
    let _b = lab.agent("b", 100, "DB1", "");
    wait_until("b caught up", Duration::from_secs(20), || {
        (rows(&lab.b).len() == rows(&lab.a).len()).then_some(())
    });
    never_both_writable(sampler);
}

/// A backup whose channel from the master is stopped (here by hand; in chaos runs by a
/// restart while its source was read-only) starts it during its promotion, once it has
/// fenced the old master, and takes over with every row instead of waiting out
/// `drain_timeout` and refusing (found by `cargo xtask chaos --db --witness`).
#[test]
fn a_promotion_fetches_what_the_fenced_peer_wrote() {
    let lab = Lab::new();
    let (mut a, b, sampler, log) = lab.with_b_behind("    drain_timeout 30\n");
    let stopped = std::time::Instant::now();
    a.stop();
    wait_state(&b, "MASTER", Duration::from_secs(10));
    let took = stopped.elapsed();
    assert_no_loss(&log, &lab.b);
    let promotion = db_status(&b)["last_promotion"]["result"].clone();
    assert!(
        promotion
            .as_str()
            .is_some_and(|r| r.contains("replication from the fenced peer started")),
        "{promotion}"
    );
    eprintln!("b took over with every row {took:?} after a's stop");
    never_both_writable(sampler);
}
