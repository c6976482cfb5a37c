//! The seed's hot-standby design with real processes: `check_running.sh` (weight -50) guards
//! an application that `to_master.sh` starts and `to_backup.sh` stops, run as a dedicated
//! unprivileged script user, so exactly one node runs it. An observer samples both nodes'
//! copies and the VIP; the overlap when mastership moves is measured and bounded.

use std::{
    io::Read as _,
    net::{Ipv4Addr, SocketAddr, TcpStream},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use ha_tests::{Daemon, Topology, wait_until};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 200);
const PORT: u16 = 8080;
const USER: &str = "ha-agent-test";
/// The seed's advert interval: the old master hears the new one within it.
const ADVERT_INT: Duration = Duration::from_secs(1);

/// The dedicated script user (created once, kept: `useradd` is not undone per test).
fn script_user() -> u32 {
    let id = || Command::new("id").args(["-u", USER]).output().unwrap();
    if !id().status.success() {
        let status = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                USER,
            ])
            .status()
            .unwrap();
        // 9: created meanwhile by another test.
        assert!(
            status.success() || status.code() == Some(9),
            "useradd {USER}"
        );
    }
    String::from_utf8(id().stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn write_script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// One node's files: root-owned scripts in `etc/`, the application's state in `run/` (owned
/// by the script user).
struct Node {
    etc: PathBuf,
    run: PathBuf,
}

impl Node {
    fn new(t: &Topology, host: &str, uid: u32) -> Self {
        let etc = t.dir().join(host).join("etc");
        let run = t.dir().join(host).join("run");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::create_dir_all(&run).unwrap();
        std::os::unix::fs::chown(&run, Some(uid), None).unwrap();
        let log = run.join("notify.log");
        let stamp = format!(
            "echo \"$(date +%s.%N) $0 $(id -u) $*\" >> {}",
            log.display()
        );
        let pid = run.join("app.pid");
        let broken = run.join("broken");
        let answers = format!("socat -u /dev/null TCP:127.0.0.1:{PORT},connect-timeout=0.5");
        // The application: answers every connection with its host's name.
        write_script(
            &etc.join("to_master.sh"),
            &format!(
                "{stamp}\n[ -e {broken} ] && exit 1\n\
                 socat TCP-LISTEN:{PORT},fork,reuseaddr SYSTEM:'echo {host}' \
                 </dev/null >/dev/null 2>&1 &\necho $! > {pid}\n\
                 i=0; until {answers} 2>/dev/null || [ $i -ge 100 ]; do sleep 0.01; i=$((i+1)); done\n\
                 {stamp} started",
                broken = broken.display(),
                pid = pid.display(),
            ),
        );
        // Stops it and returns once it no longer answers (the pid may linger as a zombie).
        write_script(
            &etc.join("to_backup.sh"),
            &format!(
                "{stamp}\nif [ -e {pid} ]; then\n  kill -TERM $(cat {pid}) 2>/dev/null\n  \
                 i=0; while {answers} 2>/dev/null && [ $i -lt 200 ]; do sleep 0.01; i=$((i+1)); done\n  \
                 rm -f {pid}\nfi\n{stamp} stopped",
                pid = pid.display(),
            ),
        );
        // Fails while the application is broken here, or should run here and does not
        // answer; a node that does not run it (the backup) is fine.
        write_script(
            &etc.join("check_running.sh"),
            &format!(
                "[ -e {broken} ] && exit 1\n[ -e {pid} ] || exit 0\nexec {answers} 2>/dev/null",
                broken = broken.display(),
                pid = pid.display(),
            ),
        );
        Self { etc, run }
    }

    /// The seed's third configuration (interface and paths adapted).
    fn config(&self, state: &str, priority: u8) -> String {
        let etc = self.etc.display();
        format!(
            "! Configuration File for keepalived
global_defs {{
   router_id ha_test
   vrrp_skip_check_adv_addr
   vrrp_garp_interval 0
   vrrp_gna_interval 0
   script_user {USER}
   enable_script_security
}}
vrrp_script check_running {{
   script \"{etc}/check_running.sh\"
   interval 1
   weight -50
}}
vrrp_instance VI_1 {{
    state {state}
    interface eth0
    virtual_router_id 107
    priority {priority}
    advert_int 1
    authentication {{
        auth_type PASS
        auth_pass 1111
    }}
    virtual_ipaddress {{
        192.168.2.200
    }}
    track_script {{
        check_running
    }}
    notify_master \"{etc}/to_master.sh ha\"
    notify_backup \"{etc}/to_backup.sh ha\"
}}
"
        )
    }

    /// `(unix time, script, uid, rest)` of each notify line.
    fn notify_log(&self) -> Vec<(f64, String, u32, String)> {
        std::fs::read_to_string(self.run.join("notify.log"))
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let mut words = line.splitn(4, ' ');
                let time = words.next().unwrap().parse().unwrap();
                let script = words.next().unwrap();
                let script = script.rsplit('/').next().unwrap().to_owned();
                let uid = words.next().unwrap().parse().unwrap();
                (time, script, uid, words.next().unwrap_or("").to_owned())
            })
            .collect()
    }

    /// When `script` last logged `rest`.
    fn last(&self, script: &str, rest: &str) -> Option<f64> {
        self.notify_log()
            .into_iter()
            .rev()
            .find(|(_, s, _, r)| s == script && r == rest)
            .map(|(time, ..)| time)
    }

    fn kill_app(&self) {
        if let Ok(pid) = std::fs::read_to_string(self.run.join("app.pid")) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
    }
}

impl Drop for Node {
    /// The applications outlive the agents (as they would under keepalived): stop them.
    fn drop(&mut self) {
        self.kill_app();
    }
}

/// Who answers at A's address, B's address and the VIP, sampled from the observer.
struct Sample {
    at: Instant,
    a: Option<String>,
    b: Option<String>,
    vip: Option<String>,
}

struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Sample>>,
}

impl Sampler {
    fn start(t: &Topology) -> Self {
        let netns = format!("/run/netns/{}", t.host("obs").netns);
        let (a, b) = (t.host("a").ip, t.host("b").ip);
        let stop = Arc::new(AtomicBool::new(false));
        let running = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let ns = std::fs::File::open(&netns).unwrap();
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let ask = |ip: Ipv4Addr| {
                let addr = SocketAddr::from((ip, PORT));
                let mut stream =
                    TcpStream::connect_timeout(&addr, Duration::from_millis(100)).ok()?;
                stream
                    .set_read_timeout(Some(Duration::from_millis(200)))
                    .ok()?;
                let mut answer = String::new();
                stream.read_to_string(&mut answer).ok()?;
                Some(answer.trim().to_owned()).filter(|a| !a.is_empty())
            };
            let mut samples = Vec::new();
            while !running.load(Ordering::Relaxed) {
                samples.push(Sample {
                    at: Instant::now(),
                    a: ask(a),
                    b: ask(b),
                    vip: ask(VIP),
                });
                std::thread::sleep(Duration::from_millis(5));
            }
            samples
        });
        Self { stop, thread }
    }

    fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// How many samples found both copies answering, and the longest stretch of them (first to
/// last sample of a run).
fn overlap(samples: &[Sample]) -> (usize, Duration) {
    let mut longest = Duration::ZERO;
    let mut start: Option<Instant> = None;
    let mut count = 0;
    for s in samples {
        if s.a.is_some() && s.b.is_some() {
            count += 1;
            let first = *start.get_or_insert(s.at);
            longest = longest.max(s.at - first);
        } else {
            start = None;
        }
    }
    (count, longest)
}

/// The largest gap between two samples.
fn coarsest(samples: &[Sample]) -> Duration {
    samples
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .max()
        .unwrap_or_default()
}

fn serving(node: &str, samples: &[Sample]) -> bool {
    samples.iter().all(|s| {
        let (mine, other) = if node == "a" {
            (&s.a, &s.b)
        } else {
            (&s.b, &s.a)
        };
        mine.as_deref() == Some(node) && other.is_none() && s.vip.as_deref() == Some(node)
    })
}

#[test]
fn the_application_runs_on_exactly_one_node_and_moves_with_the_vip() {
    let uid = script_user();
    let t = Topology::new(&["a", "b", "obs"]);
    std::fs::set_permissions(t.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (na, nb) = (Node::new(&t, "a", uid), Node::new(&t, "b", uid));
    let a = Daemon::agent(t.host("a"), t.dir(), &na.config("MASTER", 150));
    let b = Daemon::agent(t.host("b"), t.dir(), &nb.config("BACKUP", 120));
    let both_steady = |node: &str| {
        let sampler = Sampler::start(&t);
        std::thread::sleep(Duration::from_secs(2));
        let samples = sampler.finish();
        assert!(samples.len() > 20, "{} samples", samples.len());
        assert!(
            serving(node, &samples),
            "only {node} answers, at the VIP too"
        );
    };

    // A becomes master after Master_Down_Interval and starts its application.
    wait_until("A serving", Duration::from_secs(10), || {
        na.last("to_master.sh", "ha started")
            .filter(|_| t.host("a").has_address("eth0", VIP))
    });
    both_steady("a");
    // The scripts ran as the script user with the configured argument only.
    let log = na.notify_log();
    assert!(log.iter().all(|(_, _, u, _)| *u == uid), "{log:?}");
    assert!(
        log.iter()
            .any(|(_, s, _, r)| s == "to_master.sh" && r == "ha"),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|(_, s, _, r)| s == "to_backup.sh" && r == "ha"),
        "{log:?}"
    );

    // The application dies on A and cannot come back there (its disk, say): A's check fails,
    // A advertises 150 - 50 = 100 < 120, B takes over and starts its copy; A's to_backup.sh
    // cleans up.
    let sampler = Sampler::start(&t);
    std::fs::write(na.run.join("broken"), "").unwrap();
    na.kill_app();
    let killed = Instant::now();
    wait_until("B serving", Duration::from_secs(15), || {
        nb.last("to_master.sh", "ha started")
            .filter(|_| t.host("b").has_address("eth0", VIP))
    });
    let took = killed.elapsed();
    wait_until("A cleaned up", Duration::from_secs(5), || {
        na.last("to_backup.sh", "ha stopped")
            .filter(|&end| end > nb.last("to_master.sh", "ha").unwrap_or(f64::MAX) - 5.0)
    });
    let samples = sampler.finish();
    assert_eq!(a.instance_field("priority"), 100);
    assert_eq!(a.instance_field("state"), "BACKUP");
    eprintln!(
        "application killed on A -> B serving at the VIP: {took:?}; samples with both copies \
         answering: {:?} of {} (largest gap between samples {:?})",
        overlap(&samples),
        samples.len(),
        coarsest(&samples)
    );
    assert_eq!(overlap(&samples).0, 0, "A's copy was dead");
    both_steady("b");

    // A is repaired: its check passes, 150 > 120, A preempts B; A's to_master.sh starts its
    // copy, B's to_backup.sh stops B's.
    let sampler = Sampler::start(&t);
    std::fs::remove_file(na.run.join("broken")).unwrap();
    let healed = Instant::now();
    wait_until("A serving again", Duration::from_secs(15), || {
        na.last("to_master.sh", "ha started")
            .filter(|&s| s > nb.last("to_master.sh", "ha started").unwrap_or(0.0))
            .filter(|_| t.host("a").has_address("eth0", VIP))
    });
    let took = healed.elapsed();
    let (stopped, _) = wait_until("B stopped", Duration::from_secs(5), || {
        nb.last("to_backup.sh", "ha stopped")
            .filter(|&end| end > na.last("to_master.sh", "ha").unwrap_or(f64::MAX))
    });
    std::thread::sleep(Duration::from_millis(200));
    let samples = sampler.finish();
    let notify_overlap = stopped - na.last("to_master.sh", "ha").unwrap();
    let (both, sampled) = overlap(&samples);
    eprintln!(
        "A repaired -> A serving at the VIP: {took:?}; overlap from A's notify_master start to \
         B's notify_backup end: {:.1} ms; samples with both copies answering: {both} of {}, \
         longest run {sampled:?} (largest gap between samples {:?})",
        notify_overlap * 1000.0,
        samples.len(),
        coarsest(&samples)
    );
    // The old master hears the new one's first advert at once; stopping takes milliseconds.
    assert!(
        notify_overlap < ADVERT_INT.as_secs_f64(),
        "{notify_overlap}"
    );
    assert!(sampled < ADVERT_INT, "{sampled:?}");
    both_steady("a");
    assert_eq!(b.instance_field("state"), "BACKUP");
    assert_eq!(a.instance_field("priority"), 150);
}
