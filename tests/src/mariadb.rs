//! Real MariaDB servers inside the hosts' namespaces, and the clients the tests and the
//! benchmarks drive them with: a writer that inserts through the VIP and records every
//! acknowledged row, and a sampler that watches both servers' `read_only`.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use mysql_async::{OptsBuilder, prelude::Queryable as _};
use nix::sys::signal::Signal;

use crate::topology::{Host, Process, Topology};

/// The port every server listens on, on its host's address.
pub const PORT: u16 = 3306;

/// The account `db setup` uses in the tests, the demo and the benchmarks.
pub const ADMIN: (&str, &str) = ("admin", "adminpass");
/// The application's account, which writes through the VIP.
pub const APP: (&str, &str) = ("app", "apppass");
pub const REPL_PASSWORD: &str = "replpass";

/// Servers 1 on host `a` and 2 on host `b` of `t`, each with [`ADMIN`] and [`APP`], and the
/// password files a `mysql_replication` block names: `<dir>/etc/agent.pass` (holding
/// `agent_password`), `repl.pass`, `admin.pass`. Returns the servers and the etc directory.
pub fn start_pair(t: &Topology, agent_password: &str) -> Result<(Mariadb, Mariadb, PathBuf)> {
    if !available() {
        bail!("mariadbd is not installed (`cargo xtask setup` installs it)");
    }
    let a = Mariadb::start(t.host("a"), t.dir(), 1)?;
    let b = Mariadb::start(t.host("b"), t.dir(), 2)?;
    for m in [&a, &b] {
        m.create_admin(ADMIN.0, ADMIN.1);
        m.create_app_user(APP.0, APP.1);
    }
    let etc = t.dir().join("etc");
    std::fs::create_dir_all(&etc)?;
    for (file, secret) in [
        ("agent.pass", agent_password),
        ("repl.pass", REPL_PASSWORD),
        ("admin.pass", ADMIN.1),
    ] {
        std::fs::write(etc.join(file), format!("{secret}\n"))?;
    }
    Ok((a, b, etc))
}

/// The `mysql_replication DB1` block of the server at `local` paired with `peer`, the
/// password files in `etc` (as [`start_pair`] writes them), health checked every 0.2 s and
/// no anti-flap interval; `extra` lines go inside the block.
pub fn replication_block(local: Ipv4Addr, peer: Ipv4Addr, etc: &Path, extra: &str) -> String {
    format!(
        "mysql_replication DB1 {{
    local_address {local}
    peer_address {peer}
    user ha_agent
    password_file {etc}/agent.pass
    repl_user repl
    repl_password_file {etc}/repl.pass
    check_interval 0.2
    drain_timeout 10
    min_failover_interval 0
{extra}}}
",
        etc = etc.display()
    )
}

/// The writer's acknowledged rows (sequence numbers) that `server`'s `app.t` lacks.
pub fn missing_rows(log: &WriterLog, server: &Mariadb) -> Vec<u64> {
    let present: std::collections::HashSet<u64> = server
        .sql("SELECT seq FROM app.t")
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    log.acks
        .iter()
        .map(|a| a.seq)
        .filter(|s| !present.contains(s))
        .collect()
}

/// Whether this machine can run the database tests.
pub fn available() -> bool {
    Command::new("mariadbd")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// An initialised, empty data directory, made once and copied for each server.
fn template() -> Result<PathBuf> {
    static TEMPLATE: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut guard = TEMPLATE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = guard.as_ref() {
        return Ok(path.clone());
    }
    let path = std::env::temp_dir().join(format!("hat-mariadb-template-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    let out = Command::new("mariadb-install-db")
        .args([
            "--no-defaults",
            "--user=root",
            "--auth-root-authentication-method=normal",
        ])
        .args(["--skip-test-db"])
        .arg(format!("--datadir={}", path.display()))
        .output()
        .context("running mariadb-install-db")?;
    if !out.status.success() {
        bail!(
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    *guard = Some(path.clone());
    Ok(path)
}

/// A mariadbd in a host, port 3306 on all its addresses (the VIP too), its socket and files under the test directory.
/// Started as the recipe for a dual-master pair says: binlog, ROW, log_slave_updates, GTID
/// strict mode, auto-increment 2 with the server id as offset, read-only at boot, replication
/// not started by the server.
pub struct Mariadb {
    pub host: Host,
    pub server_id: u32,
    pub dir: PathBuf,
    pub process: Option<Process>,
}

impl Mariadb {
    pub fn start(host: &Host, dir: &Path, server_id: u32) -> Result<Self> {
        let dir = dir.join(format!("mariadb-{}", host.name));
        std::fs::create_dir_all(&dir)?;
        let status = Command::new("cp")
            .arg("-a")
            .arg(template()?)
            .arg(dir.join("data"))
            .status()?;
        if !status.success() {
            bail!("copying the data directory template");
        }
        let mut server = Self {
            host: host.clone(),
            server_id,
            dir,
            process: None,
        };
        server.launch()?;
        Ok(server)
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("sock")
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.host.ip
    }

    fn launch(&mut self) -> Result<()> {
        let d = &self.dir;
        let mut command = self.host.command("mariadbd");
        command
            .args(["--no-defaults", "--user=root"])
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--pid-file={}", d.join("mariadbd.pid").display()))
            .arg(format!("--port={PORT}"))
            // All of the host's addresses: its own (replication, the agents) and the VIP.
            .arg("--bind-address=0.0.0.0")
            .arg("--skip-name-resolve")
            .arg(format!("--log-error={}", d.join("error.log").display()))
            .arg(format!("--server-id={}", self.server_id))
            .args([
                "--log-bin=mysql-bin",
                "--relay-log=relay-bin",
                "--binlog-format=ROW",
                "--log-slave-updates=ON",
                "--gtid-strict-mode=ON",
                "--auto-increment-increment=2",
            ])
            .arg(format!("--auto-increment-offset={}", self.server_id))
            .args([
                "--read-only=ON",
                "--skip-slave-start",
                "--innodb-buffer-pool-size=32M",
                "--max-connections=200",
            ]);
        self.process = Some(self.host.spawn("mariadbd", command, &d.join("stdout.log")));
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if self.try_sql("SELECT 1").is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "mariadbd in {} did not start: {}",
            self.host.name,
            std::fs::read_to_string(d.join("error.log")).unwrap_or_default()
        )
    }

    /// Runs `sql` as root over the socket; tab-separated rows.
    pub fn try_sql(&self, sql: &str) -> Result<String> {
        let out = Command::new("mariadb")
            .arg("--no-defaults")
            .arg("-S")
            .arg(self.socket())
            .args(["-uroot", "-N", "-B", "-e", sql])
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            bail!("{sql}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    }

    pub fn sql(&self, sql: &str) -> String {
        self.try_sql(sql)
            .unwrap_or_else(|e| panic!("mariadb in {}: {e}", self.host.name))
    }

    /// An account for `db setup` (everything, from the LAN), not binlogged.
    pub fn create_admin(&self, user: &str, password: &str) {
        self.sql(&format!(
            "SET sql_log_bin=0; CREATE USER '{user}'@'192.168.2.%' IDENTIFIED BY '{password}'; \
             GRANT ALL ON *.* TO '{user}'@'192.168.2.%' WITH GRANT OPTION; SET sql_log_bin=1"
        ));
    }

    /// The application's account: writes to `app.*`, no privilege that bypasses read_only.
    pub fn create_app_user(&self, user: &str, password: &str) {
        self.sql(&format!(
            "SET sql_log_bin=0; CREATE USER '{user}'@'192.168.2.%' IDENTIFIED BY '{password}'; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON app.* TO '{user}'@'192.168.2.%'; SET sql_log_bin=1"
        ));
    }

    pub fn read_only(&self) -> bool {
        self.sql("SELECT @@read_only") == "1"
    }

    /// SIGKILL, as a crash or power cut would (InnoDB recovers at the next start).
    pub fn crash(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill_group();
        }
    }

    /// Clean shutdown.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.signal(Signal::SIGTERM);
            if p.wait_timeout(Duration::from_secs(30)).is_none() {
                p.kill_group();
            }
        }
    }

    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.launch()
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        self.crash();
    }
}

/// One acknowledged insert.
#[derive(Clone, Debug)]
pub struct Ack {
    /// The writer's sequence number, unique per row.
    pub seq: u64,
    /// The row's primary key as the server gave it (its parity names the server: the
    /// auto-increment offset is the server id).
    pub id: u64,
    /// Seconds since the writer's epoch.
    pub at: f64,
}

/// Inserts rows through `target` (the VIP) as fast as they are acknowledged, one connection,
/// reconnecting on any error; every acknowledged insert is recorded. Runs in `host`'s
/// namespace on its own thread until stopped.
pub struct Writer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<WriterLog>>>,
}

#[derive(Clone, Debug, Default)]
pub struct WriterLog {
    pub acks: Vec<Ack>,
    /// Inserts that failed (errors, timeouts) and were retried with a new sequence number.
    pub failures: u64,
    /// Writable-again gaps: (start, end) in seconds since the writer's epoch, where no
    /// insert was acknowledged for more than 100 ms.
    pub gaps: Vec<(f64, f64)>,
    /// The first few distinct errors, for a failing test's message.
    pub errors: Vec<String>,
}

impl WriterLog {
    fn error(&mut self, e: String) {
        if self.errors.len() < 5 && !self.errors.contains(&e) {
            self.errors.push(e);
        }
    }
}

impl Writer {
    /// Starts writing; times are seconds since `epoch`.
    pub fn start(
        host: &Host,
        target: Ipv4Addr,
        user: &str,
        password: &str,
        epoch: Instant,
    ) -> Self {
        Self::start_from(host, target, user, password, epoch, 1)
    }

    /// [`Writer::start`] with sequence numbers from `first_seq` (a second writer into the
    /// same table).
    pub fn start_from(
        host: &Host,
        target: Ipv4Addr,
        user: &str,
        password: &str,
        epoch: Instant,
        first_seq: u64,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let netns = format!("/run/netns/{}", host.netns);
        let (flag, user, password) = (stop.clone(), user.to_owned(), password.to_owned());
        let thread = std::thread::spawn(move || -> Result<WriterLog> {
            let ns = std::fs::File::open(&netns)?;
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(write_loop(target, user, password, epoch, first_seq, flag))
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    pub fn finish(mut self) -> WriterLog {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().expect("writer thread").expect("writer"))
            .unwrap_or_default()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

async fn write_loop(
    target: Ipv4Addr,
    user: String,
    password: String,
    start: Instant,
    first_seq: u64,
    stop: Arc<AtomicBool>,
) -> Result<WriterLog> {
    let opts = OptsBuilder::default()
        .ip_or_hostname(target.to_string())
        .tcp_port(PORT)
        .user(Some(user))
        .pass(Some(password))
        .db_name(Some("app"))
        // Through the VIP, never the server's socket file (which this process can see).
        .prefer_socket(false);
    let mut log = WriterLog::default();
    let mut seq = first_seq - 1;
    let mut conn: Option<mysql_async::Conn> = None;
    let mut last_ack = 0.0f64;
    // A SYN that went to the old holder's MAC is not retried for a second: connect again
    // rather than wait for it (a LAN connects in a few ms; this bounds the measurement's
    // resolution).
    let (connect_limit, limit) = (Duration::from_millis(25), Duration::from_millis(500));
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            match tokio::time::timeout(connect_limit, mysql_async::Conn::new(opts.clone())).await {
                Ok(Ok(c)) => conn = Some(c),
                other => {
                    if let Ok(Err(e)) = other {
                        log.error(e.to_string());
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        seq += 1;
        let insert = c.exec_drop("INSERT INTO t (seq) VALUES (?)", (seq,));
        match tokio::time::timeout(limit, insert).await {
            Ok(Ok(())) => {
                let id = c.last_insert_id().unwrap_or(0);
                let at = start.elapsed().as_secs_f64();
                if at - last_ack > 0.1 && last_ack > 0.0 {
                    log.gaps.push((last_ack, at));
                }
                last_ack = at;
                log.acks.push(Ack { seq, id, at });
            }
            other => {
                if let Ok(Err(e)) = other {
                    log.error(e.to_string());
                }
                log.failures += 1;
                conn = None;
            }
        }
    }
    Ok(log)
}

/// Samples both servers' `read_only` over their sockets, alternating, until stopped; counts
/// the samples where both were writable (read within one sampling round).
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<(u64, Vec<crate::capture::Ns>)>>,
}

impl Sampler {
    pub fn start(a: &Mariadb, b: &Mariadb) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, sa, sb) = (stop.clone(), a.socket(), b.socket());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(sample_loop(sa, sb, flag))
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// (rounds sampled, rounds with both writable).
    pub fn finish(self) -> (u64, u64) {
        let (rounds, both) = self.finish_times();
        (rounds, both.len() as u64)
    }

    /// (rounds sampled, when each round with both writable ended, on CLOCK_MONOTONIC).
    pub fn finish_times(mut self) -> (u64, Vec<crate::capture::Ns>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().expect("sampler thread"))
            .unwrap_or_default()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `Some(writable)`, or `None` if the server does not answer.
async fn writable(conn: &mut Option<mysql_async::Conn>, socket: &Path) -> Option<bool> {
    if conn.is_none() {
        let opts = OptsBuilder::default()
            .socket(Some(socket.to_string_lossy()))
            .user(Some("root"));
        *conn = tokio::time::timeout(Duration::from_millis(200), mysql_async::Conn::new(opts))
            .await
            .ok()?
            .ok();
    }
    let c = conn.as_mut()?;
    match tokio::time::timeout(
        Duration::from_millis(200),
        c.query_first::<u8, _>("SELECT @@read_only"),
    )
    .await
    {
        Ok(Ok(Some(ro))) => Some(ro == 0),
        _ => {
            *conn = None;
            None
        }
    }
}

async fn sample_loop(
    a: PathBuf,
    b: PathBuf,
    stop: Arc<AtomicBool>,
) -> (u64, Vec<crate::capture::Ns>) {
    let (mut ca, mut cb) = (None, None);
    let (mut rounds, mut both) = (0, Vec::new());
    while !stop.load(Ordering::Relaxed) {
        let wa = writable(&mut ca, &a).await;
        let wb = writable(&mut cb, &b).await;
        rounds += 1;
        if wa == Some(true) && wb == Some(true) {
            both.push(crate::capture::monotonic_ns());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (rounds, both)
}
