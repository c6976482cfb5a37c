//! Hardening against hostile input and operator mistakes, with real processes: hitless and
//! pathological SIGHUP reloads, the status socket under abuse, and adverts whose address
//! list is wrong.

use std::{
    io::{Read as _, Write as _},
    net::Ipv4Addr,
    os::unix::{fs::MetadataExt as _, net::UnixStream, process::CommandExt as _},
    process::Command,
    time::{Duration, Instant},
};

use ha_agent::vrrp::packet::{Advert, ChecksumForm, Interval, VRRP_GROUP_V4};
use ha_tests::{
    Daemon, Topology, VrrpConf,
    capture::{AddrMonitor, Frame, Observer, advert_gaps},
    daemons::agent_binary,
    wait_until,
};
use nix::sys::signal::Signal;

const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 200);
const VIP2: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 201);

/// The first instance's state, or "" before the status socket exists.
fn state(agent: &Daemon) -> String {
    if !agent.state_dir.join(ha_agent::ctl::SOCKET_NAME).exists() {
        return String::new();
    }
    agent
        .instance_field("state")
        .as_str()
        .unwrap_or("")
        .to_owned()
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(0.0, f64::max)
}

/// A at 150 and B at 100, VRRPv3 every 100 ms; waits until A is master.
fn pair(t: &Topology) -> (Daemon, Daemon, VrrpConf) {
    let conf_a = VrrpConf::v3("MASTER", 150, "0.1");
    let a = Daemon::agent(t.host("a"), t.dir(), &conf_a.render());
    let b = Daemon::agent(
        t.host("b"),
        t.dir(),
        &VrrpConf::v3("BACKUP", 100, "0.1").render(),
    );
    wait_until("A master with the VIP", Duration::from_secs(5), || {
        (t.host("a").has_address("eth0", VIP) && state(&a) == "MASTER").then_some(())
    });
    wait_until("B backup", Duration::from_secs(5), || {
        (state(&b) == "BACKUP").then_some(())
    });
    (a, b, conf_a)
}

#[test]
fn sighup_updates_priority_and_vips_of_a_master_in_place() {
    let t = Topology::new(&["a", "b", "c"]);
    let (a, b, base) = pair(&t);
    let a_transition = a.instance_field("last_transition");
    let b_transition = b.instance_field("last_transition");
    let monitor_a = AddrMonitor::start(t.host("a")).unwrap();
    let monitor_b = AddrMonitor::start(t.host("b")).unwrap();
    let observer = Observer::start(t.host("c"), t.dir(), "reload").unwrap();
    std::thread::sleep(Duration::from_millis(300));

    for i in 0..10u8 {
        let mut conf = base.clone();
        conf.priority = 150 + 10 * (i % 3);
        if i % 2 == 0 {
            conf.vips.push(VIP2.to_string());
        }
        std::fs::write(t.dir().join("ha-agent-a.conf"), conf.render()).unwrap();
        a.process.signal(Signal::SIGHUP);
        let want_vips = conf.vips.len();
        wait_until("the reload applied", Duration::from_secs(5), || {
            let status = a.status();
            let i = &status["instances"][0];
            (i["configured_priority"] == conf.priority
                && i["vips"].as_array().map(Vec::len) == Some(want_vips))
            .then_some(())
        });
        std::thread::sleep(Duration::from_millis(300));
    }

    assert_eq!(
        a.instance_field("last_transition"),
        a_transition,
        "A kept its state"
    );
    assert_eq!(
        b.instance_field("last_transition"),
        b_transition,
        "B kept its state"
    );
    let b_events = monitor_b.events();
    assert!(b_events.is_empty(), "address events on B: {b_events:?}");
    // On A only the second VIP moved: added by the five even reloads, removed by the odd ones.
    let a_events = monitor_a.events();
    assert!(a_events.iter().all(|e| e.addr == VIP2), "{a_events:?}");
    let added: Vec<bool> = a_events.iter().map(|e| e.added).collect();
    assert_eq!(added, [true, false].repeat(5), "{a_events:?}");
    let frames = observer.frames().unwrap();
    let (gaps, zero) = advert_gaps(&frames, t.host("a").ip);
    assert!(!zero, "A sent a priority-0 advert");
    let (b_gaps, _) = advert_gaps(&frames, t.host("b").ip);
    assert!(b_gaps.is_empty(), "B advertised");
    let largest = max(&gaps);
    eprintln!(
        "{} adverts from A, largest gap {largest:.1} ms",
        gaps.len() + 1
    );
    // 100 ms interval: no reload delayed an advert by more than scheduling noise.
    assert!(largest < 200.0, "largest advert gap {largest:.1} ms");
    assert!(gaps.len() > 30, "too few adverts seen: {}", gaps.len());
}

#[test]
fn pathological_reloads_are_refused_while_adverts_continue() {
    let t = Topology::new(&["a", "b", "c"]);
    let (a, b, base) = pair(&t);
    let observer = Observer::start(t.host("c"), t.dir(), "hostile").unwrap();
    let conf = t.dir().join("ha-agent-a.conf");
    let good = base.render();
    let deep = format!("{good}vrrp_instance X\n{}", "{\n".repeat(30_000));
    let self_include = format!(
        "{good}include ha-agent-a.conf\ninclude ha-agent-a.conf\ninclude ha-agent-a.conf\n"
    );
    // Nearly the byte limit of warnings, then an error: slow to read, then refused.
    let mut large = good.clone();
    while large.len() < 1_000_000 {
        large.push_str("unknown_keyword with some words\n");
    }
    large.push_str("vrrp_instance Y {\n priority 999\n}\n");
    for (what, text) in [
        ("deep", deep),
        ("self-include", self_include),
        ("large", large),
    ] {
        std::fs::write(&conf, text).unwrap();
        let refusals = a.log_text().matches("reload failed").count();
        let start = Instant::now();
        a.process.signal(Signal::SIGHUP);
        wait_until(&format!("{what} refused"), Duration::from_secs(30), || {
            (a.log_text().matches("reload failed").count() > refusals).then_some(())
        });
        eprintln!("{what}: refused after {:?}", start.elapsed());
        std::thread::sleep(Duration::from_millis(500));
    }
    std::fs::write(&conf, &good).unwrap();
    let mut a = a;
    assert!(a.process.is_running(), "A died");
    assert_eq!(state(&a), "MASTER");
    assert!(t.host("a").has_address("eth0", VIP));
    assert!(!t.host("b").has_address("eth0", VIP), "B took the VIP");
    assert_eq!(state(&b), "BACKUP");
    let frames = observer.frames().unwrap();
    let (gaps, zero) = advert_gaps(&frames, t.host("a").ip);
    assert!(!zero);
    let largest = max(&gaps);
    eprintln!(
        "{} adverts from A, largest gap {largest:.1} ms",
        gaps.len() + 1
    );
    assert!(largest < 200.0, "largest advert gap {largest:.1} ms");
    assert!(gaps.len() >= 15, "too few adverts seen: {}", gaps.len());
}

/// `ha-agent run` under umask 000 and a limit of 24 descriptors.
fn constrained_agent(t: &Topology) -> (ha_tests::Process, std::path::PathBuf, std::path::PathBuf) {
    let host = t.host("a");
    let conf = t.dir().join("a.conf");
    std::fs::write(&conf, VrrpConf::seed("MASTER", 255).render()).unwrap();
    let state_dir = t.dir().join("state-a");
    let log = t.dir().join("ha-agent-a.log");
    let mut command = host.command("prlimit");
    command
        .args(["--nofile=24:24", "--"])
        .arg(agent_binary())
        .args(["run", "-f"])
        .arg(&conf)
        .arg("--state-dir")
        .arg(&state_dir)
        .env("NO_COLOR", "1");
    // SAFETY: umask is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            libc_umask(0);
            Ok(())
        });
    }
    let process = host.spawn("ha-agent", command, &log);
    (process, state_dir, log)
}

unsafe extern "C" {
    #[link_name = "umask"]
    fn libc_umask(mask: u32) -> u32;
}

fn status_cli(state_dir: &std::path::Path) -> std::process::Output {
    Command::new(agent_binary())
        .args(["status", "--state-dir"])
        .arg(state_dir)
        .output()
        .unwrap()
}

#[test]
fn status_socket_is_private_bounded_and_survives_descriptor_exhaustion() {
    let t = Topology::new(&["a"]);
    let (_agent, state_dir, log) = constrained_agent(&t);
    let socket = state_dir.join("ha-agent.sock");
    wait_until("the status socket", Duration::from_secs(5), || {
        socket.exists().then_some(())
    });
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600, "socket mode under umask 000");
    assert_eq!(meta.uid(), 0);
    let dir_mode = std::fs::metadata(&state_dir).unwrap().mode() & 0o777;
    assert_eq!(
        dir_mode & 0o022,
        0,
        "state dir writable by others: {dir_mode:o}"
    );

    // Only the protocol's request is answered.
    let mut client = UnixStream::connect(&socket).unwrap();
    client.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert!(answer.contains("\"error\""), "{answer}");

    // A silent client is closed after its deadline.
    let mut silent = UnixStream::connect(&socket).unwrap();
    let start = Instant::now();
    let n = silent.read(&mut [0u8; 16]).unwrap();
    assert_eq!(n, 0);
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );

    // 200 idle clients: more than the agent has descriptors for.
    let idle: Vec<UnixStream> = (0..200)
        .map(|_| UnixStream::connect(&socket).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let out = status_cli(&state_dir);
    assert!(
        out.status.success(),
        "status with 200 idle clients: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("MASTER priority 255"));
    drop(idle);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("status socket: accept failed"),
        "descriptor exhaustion was not reached: {text}"
    );
    // And it keeps accepting afterwards.
    std::thread::sleep(Duration::from_millis(300));
    assert!(status_cli(&state_dir).status.success());
}

/// Sends `count` copies of `advert` from `host` to the VRRP group, as fast as it can.
fn send_adverts(host: &ha_tests::Host, advert: &Advert, count: usize) {
    let mut msg = Vec::new();
    advert.emit(&mut msg, ChecksumForm::Message, host.ip, VRRP_GROUP_V4);
    host.in_netns(|| {
        use socket2::{Domain, Protocol, SockAddr, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112))).unwrap();
        socket.bind_device(Some(b"eth0")).unwrap();
        socket.set_multicast_ttl_v4(255).unwrap();
        let dst = SockAddr::from(std::net::SocketAddrV4::new(VRRP_GROUP_V4, 0));
        for _ in 0..count {
            socket.send_to(&msg, &dst).unwrap();
        }
    });
}

#[test]
fn adverts_with_a_wrong_address_list_are_dropped_under_vrrp_strict_and_answers_are_throttled() {
    let t = Topology::new(&["a", "b"]);
    // vrrp_strict: the RFC's drop (without it such adverts are followed; see vrrp_agents).
    let conf = VrrpConf::seed("MASTER", 150).render().replacen(
        "global_defs {\n",
        "global_defs {\n    vrrp_strict\n",
        1,
    );
    let a = Daemon::agent(t.host("a"), t.dir(), &conf);
    wait_until("A master", Duration::from_secs(6), || {
        (state(&a) == "MASTER").then_some(())
    });
    let seed = |priority, addrs: Vec<Ipv4Addr>| Advert {
        vrid: 107,
        priority,
        interval: Interval::Seconds(1),
        auth: Some((1, *b"1111\0\0\0\0")),
        addrs: addrs.into_iter().map(Into::into).collect(),
    };
    // Right password, higher priority, another address: would take A down if accepted.
    send_adverts(
        t.host("b"),
        &seed(200, vec![Ipv4Addr::new(192, 168, 2, 250)]),
        50,
    );
    send_adverts(t.host("b"), &seed(200, vec![VIP, VIP2]), 50);
    wait_until("the drops counted", Duration::from_secs(3), || {
        (a.instance_field("adverts_dropped")["address_list"] == 100).then_some(())
    });
    assert_eq!(state(&a), "MASTER");
    assert!(a.log_text().contains("address list differs from ours"));

    // 3,000 valid lower-priority adverts: A answers at most once per second beyond its
    // schedule (one advert a second).
    let sent_before = a.instance_field("adverts_sent").as_u64().unwrap();
    let start = Instant::now();
    send_adverts(t.host("b"), &seed(100, vec![VIP]), 3000);
    std::thread::sleep(Duration::from_millis(200));
    let elapsed = start.elapsed().as_secs_f64();
    let sent = a.instance_field("adverts_sent").as_u64().unwrap() - sent_before;
    let received = a.instance_field("adverts_received").as_u64().unwrap();
    eprintln!("3000 lower adverts in {elapsed:.2} s: {received} received, {sent} sent");
    assert!(received >= 2900, "received {received}");
    assert!(
        sent as f64 <= 2.0 * elapsed.ceil() + 2.0,
        "{sent} adverts sent in {elapsed:.2} s"
    );
}

/// `strict_mode` in one instance is `vrrp_strict` for that instance alone.
#[test]
fn strict_mode_in_the_instance_drops_as_vrrp_strict() {
    let t = Topology::new(&["a", "b"]);
    let mut conf = VrrpConf::seed("MASTER", 150);
    conf.extra = vec!["strict_mode".into()];
    let a = Daemon::agent(t.host("a"), t.dir(), &conf.render());
    wait_until("A master", Duration::from_secs(6), || {
        (state(&a) == "MASTER").then_some(())
    });
    let other_list = Advert {
        vrid: 107,
        priority: 200,
        interval: Interval::Seconds(1),
        auth: Some((1, *b"1111\0\0\0\0")),
        addrs: vec![Ipv4Addr::new(192, 168, 2, 250).into()],
    };
    send_adverts(t.host("b"), &other_list, 50);
    wait_until("the drops counted", Duration::from_secs(3), || {
        (a.instance_field("adverts_dropped")["address_list"] == 50).then_some(())
    });
    assert_eq!(state(&a), "MASTER");
}

/// keepalived's default, kept: a master that hears a lower priority answers with an advert
/// and announces its VIP again (a burst of `garp_master_repeat`, here 2, and again after
/// `garp_lower_prio_delay`, here 1 s); `lower_prio_no_advert` keeps the announcement only.
#[test]
fn a_lower_priority_makes_the_master_announce_its_vip_again() {
    for no_advert in [false, true] {
        let t = Topology::new(&["a", "b", "c"]);
        let mut conf = VrrpConf::seed("MASTER", 150);
        conf.extra = vec![
            "garp_master_repeat 2".into(),
            "garp_master_delay 0".into(),
            "garp_lower_prio_delay 1".into(),
        ];
        if no_advert {
            conf.extra.push("lower_prio_no_advert".into());
        }
        let a = Daemon::agent(t.host("a"), t.dir(), &conf.render());
        wait_until("A master", Duration::from_secs(6), || {
            (state(&a) == "MASTER").then_some(())
        });
        std::thread::sleep(Duration::from_millis(300));
        let observer = Observer::start(t.host("c"), t.dir(), "lower").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let sent_before = a.instance_field("adverts_sent").as_u64().unwrap();
        let lower = Advert {
            vrid: 107,
            priority: 100,
            interval: Interval::Seconds(1),
            auth: Some((1, *b"1111\0\0\0\0")),
            addrs: vec![VIP.into()],
        };
        send_adverts(t.host("b"), &lower, 1);
        std::thread::sleep(Duration::from_millis(1500));
        let garps = observer
            .frames()
            .unwrap()
            .iter()
            .filter(|f| matches!(f, Frame::Garp { ip, .. } if *ip == VIP))
            .count();
        assert_eq!(
            garps, 4,
            "lower_prio_no_advert {no_advert}: two bursts of two"
        );
        let answered = a.instance_field("adverts_sent").as_u64().unwrap() - sent_before;
        // The schedule sends one a second; the answer is one more.
        let expect = if no_advert { 1..=2 } else { 2..=3 };
        assert!(
            expect.contains(&answered),
            "no_advert {no_advert}: {answered} sent"
        );
        assert_eq!(state(&a), "MASTER");
    }
}

/// `garp_group`: the gratuitous ARPs of two instances on one interface are spaced by the
/// group's `garp_interval`, whichever instance sends them (an upstream switch that cannot
/// take a flood of ARP sees one every 100 ms).
#[test]
fn a_garp_group_spaces_every_instances_gratuitous_arp() {
    let t = Topology::new(&["a", "c"]);
    let observer = Observer::start(t.host("c"), t.dir(), "garp-group").unwrap();
    let mut vi1 = VrrpConf::v3("MASTER", 150, "0.1");
    let mut vi2 = vi1.clone();
    vi2.name = "VI_2".into();
    vi2.vrid = 108;
    vi2.vips = vec![VIP2.to_string()];
    for vi in [&mut vi1, &mut vi2] {
        vi.extra = vec!["garp_master_repeat 3".into(), "garp_master_delay 0".into()];
    }
    let conf = ha_tests::daemons::config(&[vi1, vi2])
        + "garp_group {\n    garp_interval 0.1\n    interface eth0\n}\n";
    let a = Daemon::agent(t.host("a"), t.dir(), &conf);
    let garps = || -> Vec<ha_tests::capture::Ns> {
        observer
            .frames()
            .unwrap()
            .iter()
            .filter_map(|f| match f {
                Frame::Garp { at, ip, .. } if *ip == VIP || *ip == VIP2 => Some(*at),
                _ => None,
            })
            .collect()
    };
    wait_until("six gratuitous ARPs", Duration::from_secs(5), || {
        (garps().len() >= 6).then_some(())
    });
    ha_tests::wait::assert_never(
        "a seventh gratuitous ARP",
        Duration::from_millis(300),
        || garps().len() > 6,
    );
    let at = garps();
    let gaps: Vec<f64> = at.windows(2).map(|w| (w[1] - w[0]) as f64 / 1e6).collect();
    assert!(
        gaps.iter().all(|g| *g >= 95.0),
        "gaps between gratuitous ARPs (ms): {gaps:?}"
    );
    assert_eq!(a.instance_field("state"), "MASTER");
}
