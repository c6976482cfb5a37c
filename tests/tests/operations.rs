//! Running as a service: systemd's notify protocol against a datagram socket the test owns,
//! the unit file checked by systemd-analyze, the HTTP endpoints (metrics checked by promtool),
//! JSON logs and `status --watch`.

use std::{
    io::Read as _,
    net::{Ipv4Addr, SocketAddr},
    os::unix::net::UnixDatagram,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use ha_tests::{
    Daemon, Host, Topology, VrrpConf,
    daemons::agent_binary,
    http::{promtool, request},
    wait_until,
};
use nix::sys::signal::Signal;

const VIP: &str = "192.168.2.200";

/// The datagrams an agent sent to our NOTIFY_SOCKET, each with when it arrived.
struct Notifications {
    path: std::path::PathBuf,
    received: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Notifications {
    fn listen(dir: &std::path::Path) -> Self {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().unwrap().push((Instant::now(), text));
            }
        });
        Self { path, received }
    }

    fn all(&self) -> Vec<(Instant, String)> {
        self.received.lock().unwrap().clone()
    }

    /// The first datagram from `since` on that contains `line` (a whole line).
    fn wait_for(&self, line: &str, since: Instant, limit: Duration) -> Instant {
        wait_until(&format!("{line} from the agent"), limit, || {
            self.all()
                .into_iter()
                .find(|(at, text)| *at >= since && text.lines().any(|l| l == line))
                .map(|(at, _)| at)
        })
        .0
    }

    fn pings(&self, from: Instant, to: Instant) -> usize {
        self.all()
            .iter()
            .filter(|(at, text)| *at >= from && *at < to && text.lines().any(|l| l == "WATCHDOG=1"))
            .count()
    }
}

#[test]
fn systemd_notify_ready_after_cleanup_watchdog_from_the_loop_reload_and_stop() {
    let t = Topology::new(&["a"]);
    let a = t.host("a");
    // A VIP a killed earlier run left behind: READY must come after it is gone.
    a.sh(&["ip", "addr", "add", &format!("{VIP}/32"), "dev", "eth0"]);
    let notify = Notifications::listen(t.dir());
    let start = Instant::now();
    let mut agent = Daemon::agent_env(
        a,
        t.dir(),
        &VrrpConf::seed("MASTER", 150).render(),
        &agent_binary(),
        &[],
        &[
            ("NOTIFY_SOCKET", notify.path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    notify.wait_for("READY=1", start, Duration::from_secs(10));
    assert!(
        !a.has_address("eth0", VIP.parse::<std::net::Ipv4Addr>().unwrap()),
        "READY before the leftover VIP was removed"
    );
    assert!(agent.log_text().contains("removing a VIP left behind"));
    // The STATUS= line names each instance's state and each interface's receive path.
    notify.wait_for(
        "STATUS=VI_1 BACKUP; eth0 xdp native",
        start,
        Duration::from_secs(1),
    );

    // WATCHDOG_USEC 200 ms: a ping every 100 ms.
    std::thread::sleep(Duration::from_secs(2));
    let now = Instant::now();
    let pings = notify.pings(now - Duration::from_secs(2), now);
    assert!((12..=30).contains(&pings), "{pings} pings in 2 s");

    // A stalled loop sends nothing.
    agent.process.signal(Signal::SIGSTOP);
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let resumed = Instant::now();
    agent.process.signal(Signal::SIGCONT);
    assert_eq!(
        notify.pings(stopped + Duration::from_millis(20), resumed),
        0
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(notify.pings(resumed, Instant::now()) >= 2, "pings resume");

    notify.wait_for(
        "STATUS=VI_1 MASTER; eth0 xdp native",
        start,
        Duration::from_secs(10),
    );
    let hup = Instant::now();
    agent.process.signal(Signal::SIGHUP);
    let reloading = notify.wait_for("RELOADING=1", hup, Duration::from_secs(5));
    let ready = notify.wait_for("READY=1", hup, Duration::from_secs(5));
    assert!(reloading <= ready);
    let term = Instant::now();
    agent.stop();
    notify.wait_for("STOPPING=1", term, Duration::from_secs(5));
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../dist/ha-agent.service"
    ))
    .unwrap()
    .replace("/usr/sbin/ha-agent", agent_binary().to_str().unwrap());
    let dir = std::env::temp_dir().join(format!("ha-agent-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ha-agent.service");
    std::fs::write(&path, unit).unwrap();
    // The man page exists once the package is installed (the package test checks it).
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(text.trim().is_empty(), "systemd-analyze: {text}");
}

#[test]
fn http_role_endpoints_metrics_json_logs_and_watch() {
    let t = Topology::new(&["a", "b", "c"]);
    let (a, b, c) = (t.host("a"), t.host("b"), t.host("c"));
    let check = t.dir().join("check.sh");
    std::fs::write(&check, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&check, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let conf = |state, priority| {
        let mut conf = VrrpConf::v3(state, priority, "0.1");
        conf.extra = vec![
            "track_script {\n        chk\n    }".into(),
            format!("notify \"{}\"", check.display()),
        ];
        let text = conf.render();
        format!(
            "vrrp_script chk {{\n    script \"{}\"\n    interval 0.2\n}}\n{text}",
            check.display()
        )
    };
    let addr = |h: &Host| SocketAddr::from((h.ip, 9100));
    let http_a = addr(a).to_string();
    let http_b = addr(b).to_string();
    let agent_a = Daemon::agent_args(
        a,
        t.dir(),
        &conf("MASTER", 150),
        &agent_binary(),
        &["--http-listen", &http_a],
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut agent_b = Daemon::agent_args(
        b,
        t.dir(),
        &conf("BACKUP", 100),
        &agent_binary(),
        &["--http-listen", &http_b, "--log-format", "json"],
    );
    wait_until("a MASTER", Duration::from_secs(10), || {
        (agent_a.try_status()?["instances"][0]["state"] == "MASTER").then_some(())
    });
    wait_until("b BACKUP", Duration::from_secs(10), || {
        (agent_b.try_status()?["instances"][0]["state"] == "BACKUP").then_some(())
    });
    // Roles, as a load balancer on c asks.
    assert_eq!(request(c, "GET", addr(a), "/master").0, 200);
    assert_eq!(request(c, "GET", addr(b), "/master").0, 503);
    assert_eq!(request(c, "GET", addr(b), "/backup").0, 200);
    assert_eq!(request(c, "GET", addr(a), "/backup").0, 503);
    assert_eq!(request(c, "GET", addr(a), "/master?instance=VI_1").0, 200);
    assert_eq!(request(c, "GET", addr(a), "/master?instance=VI_9").0, 404);
    assert_eq!(request(c, "GET", addr(a), "/health").0, 200);
    // Read-only: nothing but GET.
    assert_eq!(request(c, "POST", addr(a), "/master").0, 405);
    let (code, body) = request(c, "GET", addr(a), "/status");
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["schema_version"], 1);
    assert_eq!(status["instances"][0]["state"], "MASTER");

    let (code, metrics) = request(c, "GET", addr(a), "/metrics");
    assert_eq!(code, 200);
    let (ok, lint) = promtool(&metrics);
    assert!(ok, "promtool check metrics: {lint}\n{metrics}");
    assert!(lint.trim().is_empty(), "promtool: {lint}");
    for expected in [
        "ha_agent_instance_state{instance=\"VI_1\",state=\"MASTER\"} 1",
        "ha_agent_priority{instance=\"VI_1\"} 150",
        "ha_agent_transitions_total{instance=\"VI_1\",reason=\"master_down\",to=\"MASTER\"} 1",
        "ha_agent_check_up{check=\"chk\",instance=\"VI_1\"} 1",
        "ha_agent_notify_runs_total{instance=\"VI_1\",result=\"ok\",state=\"MASTER\"} 1",
        "ha_agent_notify_duration_seconds_total{instance=\"VI_1\",result=\"ok\",state=\"MASTER\"} 0.",
        "ha_agent_build_info{version=",
        "process_start_time_seconds ",
        "ha_agent_adverts_sent_total{instance=\"VI_1\"} ",
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing from\n{metrics}"
        );
    }
    // b learns of a's stop through a's priority-0 advert: logged once, with the peer.
    let mut agent_a = agent_a;
    agent_a.stop();
    wait_until("b MASTER", Duration::from_secs(10), || {
        (agent_b.try_status()?["instances"][0]["state"] == "MASTER").then_some(())
    });
    assert_eq!(request(c, "GET", addr(b), "/master").0, 200);
    // status --watch redraws in place.
    let mut watch = Command::new(agent_binary())
        .args(["status", "--watch", "--state-dir"])
        .arg(&agent_b.state_dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    watch.kill().unwrap();
    let mut screen = String::new();
    watch
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut screen)
        .unwrap();
    let _ = watch.wait();
    assert!(screen.matches("\x1b[H\x1b[2J").count() >= 2, "{screen:?}");
    assert!(
        screen.contains("VI_1 (eth0 vrid 107 v3): MASTER"),
        "{screen}"
    );
    agent_b.stop();
    let log = agent_b.log_text();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let takeovers: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["fields"]["to"] == "MASTER")
        .collect();
    assert_eq!(takeovers.len(), 1, "{log}");
    let f = &takeovers[0]["fields"];
    assert_eq!(f["instance"], "VI_1");
    assert_eq!(f["from"], "BACKUP");
    assert_eq!(f["peer"], a.ip.to_string());
    assert!(f["reason"].as_str().unwrap().contains("priority 0"), "{f}");
    let _: Ipv4Addr = a.ip;
}
