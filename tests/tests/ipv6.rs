//! VRRPv3 over IPv6 beside real keepalived 2.2.7 and FRR's vrrpd: each as master and as
//! backup, crash, graceful stop and preemption at 0.1 s adverts; the observer's neighbour
//! entry for the VIP follows the master (unsolicited Neighbor Advertisements); the adverts on
//! the wire as RFC 5798 frames them.

use std::{
    net::{IpAddr, Ipv6Addr},
    path::Path,
    time::{Duration, Instant},
};

use ha_agent::vrrp::packet::{Advert, ChecksumForm, Interval, VRRP_GROUP_V6};
use ha_tests::{
    Daemon, Host, Topology, VrrpConf,
    daemons::{master_down_interval, skew_time},
    frr::{self, Frr},
    tshark,
    wait::assert_never,
    wait_until,
};
use nix::sys::signal::Signal;

const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100);
const VRID: u8 = 61;
/// Slack for process scheduling on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(700);
const INTERVAL: Duration = Duration::from_millis(100);

fn conf(state: &'static str, priority: u8) -> String {
    VrrpConf {
        name: "VI_6".into(),
        vrid: VRID,
        vips: vec![format!("{VIP}/64")],
        ..VrrpConf::v3(state, priority, "0.1")
    }
    .render()
}

fn topology() -> Topology {
    let t = Topology::new(&["a", "b", "c"]);
    t.enable_ipv6();
    t
}

fn wait_vip(host: &Host, within: Duration) -> Duration {
    wait_until(&format!("VIP on {}", host.name), within, || {
        host.has_address("eth0", VIP).then_some(())
    })
    .1
}

fn wait_released(host: &Host) {
    wait_until(
        &format!("{} releases the VIP", host.name),
        Duration::from_secs(2),
        || (!host.has_address("eth0", VIP)).then_some(()),
    );
}

/// The observer reaches the VIP and its neighbour entry names `owner`'s MAC.
fn wait_neighbour(observer: &Host, owner: &Host) {
    wait_neighbour_mac(observer, &owner.mac, &owner.name);
}

/// The observer reaches the VIP and its neighbour entry names `mac` (`whose`).
fn wait_neighbour_mac(observer: &Host, mac: &str, whose: &str) {
    wait_until(
        &format!("observer's neighbour entry for the VIP -> {whose}"),
        Duration::from_secs(3),
        || {
            if observer.arp_entry(VIP).is_none() {
                observer.ping_once(VIP);
            }
            (observer.arp_entry(VIP).as_deref() == Some(mac)).then_some(())
        },
    );
}

/// The next VRRP frame from `from`'s MAC as `observer` receives it, whole.
fn capture_advert(observer: &Host, from: &Host) -> Vec<u8> {
    observer.in_netns(|| {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(
            Domain::PACKET,
            Type::RAW,
            Some(Protocol::from(i32::from(0x86ddu16.to_be()))),
        )
        .unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mac: Vec<String> = from.mac.split(':').map(str::to_owned).collect();
        loop {
            let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1600];
            let n = socket.recv(&mut buf).expect("a frame within 5 s");
            // SAFETY: recv initialised the first n bytes.
            let frame: Vec<u8> = buf[..n]
                .iter()
                .map(|b| unsafe { b.assume_init() })
                .collect();
            let src: Vec<String> = frame[6..12].iter().map(|b| format!("{b:02x}")).collect();
            if src == mac && frame.get(20) == Some(&112) {
                return frame;
            }
        }
    })
}

/// RFC 5798 §5.1.2: from the link-local address to ff02::12 (MAC 33:33:00:00:00:12), hop
/// limit 255, the checksum over the IPv6 pseudo-header, the VIP in a 16-byte list; as our
/// parser reads it and as Wireshark's dissector does.
fn assert_rfc_advert(dir: &Path, frame: &[u8], from: &Host, priority: u8) {
    let judged = tshark::fields(
        dir,
        &format!("advert-{}", from.name),
        frame,
        &[
            "eth.dst",
            "ipv6.hlim",
            "ipv6.src",
            "ipv6.dst",
            "vrrp.version",
            "vrrp.type",
            "vrrp.virt_rtr_id",
            "vrrp.prio",
            "vrrp.addr_count",
            "vrrp.short_adver_int",
            "vrrp.checksum.status",
            "vrrp.ipv6_addr",
            "_ws.expert",
        ],
    );
    let expected = [
        "33:33:00:00:00:12".to_owned(),
        "255".into(),
        from.link_local().to_string(),
        VRRP_GROUP_V6.to_string(),
        "3".into(),
        "1".into(),
        VRID.to_string(),
        priority.to_string(),
        "1".into(),
        "10".into(),
        // Good.
        "1".into(),
        VIP.to_string(),
        // No expert note (malformed, bad checksum).
        String::new(),
    ];
    assert_eq!(
        judged,
        expected,
        "tshark's reading of {from}'s advert",
        from = from.name
    );
    assert_eq!(&frame[..6], &[0x33, 0x33, 0, 0, 0, 0x12], "destination MAC");
    assert_eq!(frame[12..14], [0x86, 0xdd]);
    let ip = &frame[14..54];
    assert_eq!(ip[0] >> 4, 6);
    assert_eq!(ip[7], 255, "hop limit");
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[8..24]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[24..40]).unwrap());
    assert_eq!((src, dst), (from.link_local(), VRRP_GROUP_V6));
    let len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    let (advert, form) = Advert::parse(&frame[54..54 + len], src, dst).expect("a valid advert");
    assert_eq!(form, ChecksumForm::PseudoHeader);
    assert_eq!(
        advert,
        Advert {
            vrid: VRID,
            priority,
            interval: Interval::Centis(10),
            auth: None,
            addrs: vec![IpAddr::V6(VIP)],
        }
    );
}

#[test]
fn agent_master_keepalived_backup_graceful_preempt_and_crash() {
    let t = topology();
    let (a, b, c) = (t.host("a"), t.host("b"), t.host("c"));
    let mdi_a = master_down_interval(3, INTERVAL, 150);
    let (mdi_b, skew_b) = (
        master_down_interval(3, INTERVAL, 120),
        skew_time(3, INTERVAL, 120),
    );
    let agent = Daemon::agent(a, t.dir(), &conf("MASTER", 150));
    let mut keepalived = Daemon::keepalived(b, t.dir(), &conf("BACKUP", 120));
    wait_vip(a, mdi_a + SLACK + Duration::from_secs(1));
    assert_rfc_advert(t.dir(), &capture_advert(c, a), a, 150);
    wait_neighbour(c, a);
    // keepalived accepts our adverts: it stays backup.
    assert_never(
        "keepalived taking the VIP",
        mdi_b + Duration::from_secs(1),
        || b.has_address("eth0", VIP),
    );
    assert_eq!(agent.instance_field("state"), "MASTER");
    assert!(keepalived.process.is_running());

    // Graceful: priority 0, keepalived takes over after Skew_Time; its NA moves the observer.
    agent.process.signal(Signal::SIGTERM);
    let took = wait_vip(b, skew_b + SLACK);
    eprintln!("keepalived took over {took:?} after the agent's stop");
    wait_released(a);
    wait_neighbour(c, b);

    // The agent returns and preempts: our NA moves the observer back.
    let mut agent = Daemon::agent(a, t.dir(), &conf("MASTER", 150));
    wait_vip(a, mdi_a + SLACK + Duration::from_secs(1));
    wait_released(b);
    wait_neighbour(c, a);
    assert_eq!(
        agent.instance_field("adverts_dropped"),
        serde_json::json!({})
    );

    // Crash: keepalived takes over after Master_Down_Interval.
    let killed = Instant::now();
    t.crash("a", &mut agent.process);
    wait_vip(b, mdi_b + SLACK);
    // The last advert left at most one interval before the kill.
    let took = killed.elapsed();
    assert!(
        took + INTERVAL >= mdi_b,
        "keepalived took over after {took:?}"
    );
    keepalived.stop();
}

#[test]
fn keepalived_master_agent_backup_crash_and_preempt() {
    let t = topology();
    let (a, b, c) = (t.host("a"), t.host("b"), t.host("c"));
    let mdi_a = master_down_interval(3, INTERVAL, 150);
    let mdi_b = master_down_interval(3, INTERVAL, 120);
    let mut keepalived = Daemon::keepalived(a, t.dir(), &conf("MASTER", 150));
    let agent = Daemon::agent(b, t.dir(), &conf("BACKUP", 120));
    wait_vip(a, mdi_a + SLACK + Duration::from_secs(1));
    wait_until(
        "the agent follows keepalived's link-local address",
        Duration::from_secs(2),
        || {
            let master = &agent.try_status()?["instances"][0]["master"];
            (*master == a.link_local().to_string()).then_some(())
        },
    );
    // keepalived's IPv6 adverts pass every check: nothing dropped.
    wait_until(
        "ten adverts received from keepalived",
        Duration::from_secs(3),
        || (agent.instance_field("adverts_received").as_u64().unwrap() >= 10).then_some(()),
    );
    assert_eq!(
        agent.instance_field("adverts_dropped"),
        serde_json::json!({})
    );
    assert!(!b.has_address("eth0", VIP));
    wait_neighbour(c, a);
    if std::env::var("HA_TEST_XDP").as_deref() != Ok("off") {
        // The XDP program checks keepalived's IPv6 adverts and keeps them from the backup.
        wait_until(
            "keepalived's adverts absorbed in the kernel",
            Duration::from_secs(3),
            || {
                let xdp = agent.status()["xdp"].clone();
                let absorbed = xdp["verdicts"]["eth0"]["absorbed"].as_u64().unwrap_or(0);
                let master = a.link_local().to_string();
                let follows = xdp["peers"]
                    .as_array()?
                    .iter()
                    .any(|p| p["master"] == master.as_str());
                (absorbed > 10 && follows).then_some(())
            },
        );
    }

    // Crash: the agent takes over after Master_Down_Interval and moves the observer.
    let killed = Instant::now();
    t.crash("a", &mut keepalived.process);
    wait_vip(b, mdi_b + SLACK);
    let took = killed.elapsed();
    assert!(
        took + INTERVAL >= mdi_b,
        "the agent took over after {took:?}"
    );
    assert_rfc_advert(t.dir(), &capture_advert(c, b), b, 120);
    wait_neighbour(c, b);

    // keepalived returns and preempts; the agent yields.
    t.set_cable("a", true);
    let mut keepalived = Daemon::keepalived(a, t.dir(), &conf("MASTER", 150));
    wait_vip(a, mdi_a + SLACK + Duration::from_secs(1));
    wait_released(b);
    wait_neighbour(c, a);
    assert_eq!(agent.instance_field("state"), "BACKUP");
    keepalived.stop();
}

/// FRR's random link-local address on its macvlan: the source of its adverts.
fn frr_source(host: &Host, frr: &Frr) -> String {
    let out = host.sh(&[
        "ip",
        "-6",
        "-o",
        "addr",
        "show",
        "dev",
        &frr.macvlan,
        "scope",
        "link",
    ]);
    out.split_whitespace()
        .find_map(|w| w.strip_prefix("fe80").map(|rest| format!("fe80{rest}")))
        .and_then(|a| a.split('/').next().map(str::to_owned))
        .expect("the macvlan's link-local address")
}

fn frr_vmac() -> String {
    format!("00:00:5e:00:02:{VRID:02x}")
}

/// FRR vrrpd (VMAC macvlan, protodown) as master: the agent follows it, takes over when it
/// crashes, and the observer's neighbour entry moves from the virtual MAC to the agent's.
#[test]
fn frr_master_agent_backup_crash() {
    if !frr::available() {
        panic!("FRR is not installed: run `cargo xtask setup`");
    }
    let t = topology();
    let (a, b, c) = (t.host("a"), t.host("b"), t.host("c"));
    let mut frr = Frr::start_v6(a, t.dir(), VRID, 200, 100, VIP);
    wait_until("FRR master", Duration::from_secs(5), || {
        frr.is_master().then_some(())
    });
    let agent = Daemon::agent(b, t.dir(), &conf("BACKUP", 100));
    let source = frr_source(a, &frr);
    wait_until(
        "the agent follows FRR's link-local address",
        Duration::from_secs(3),
        || (agent.try_status()?["instances"][0]["master"] == source.as_str()).then_some(()),
    );
    wait_until(
        "ten adverts received from FRR",
        Duration::from_secs(3),
        || (agent.instance_field("adverts_received").as_u64().unwrap() >= 10).then_some(()),
    );
    assert_eq!(
        agent.instance_field("adverts_dropped"),
        serde_json::json!({})
    );
    assert!(!b.has_address("eth0", VIP));
    wait_neighbour_mac(c, &frr_vmac(), "FRR's virtual MAC");

    let mdi = master_down_interval(3, INTERVAL, 100);
    let killed = Instant::now();
    frr.crash();
    t.set_cable("a", false);
    wait_vip(b, mdi + SLACK);
    let took = killed.elapsed();
    assert!(took + INTERVAL >= mdi, "the agent took over after {took:?}");
    wait_neighbour(c, b);
}

/// The agent as master: FRR stays backup (its macvlan protodown) and takes over on the
/// agent's graceful stop (priority 0) after Skew_Time.
#[test]
fn agent_master_frr_backup_graceful() {
    if !frr::available() {
        panic!("FRR is not installed: run `cargo xtask setup`");
    }
    let t = topology();
    let (a, b, c) = (t.host("a"), t.host("b"), t.host("c"));
    let agent = Daemon::agent(a, t.dir(), &conf("MASTER", 200));
    wait_vip(
        a,
        master_down_interval(3, INTERVAL, 200) + SLACK + Duration::from_secs(1),
    );
    let frr = Frr::start_v6(b, t.dir(), VRID, 100, 100, VIP);
    // FRR starts as backup and hears the agent: it never comes up.
    assert_never(
        "FRR becoming master",
        master_down_interval(3, INTERVAL, 100) + Duration::from_secs(1),
        || frr.is_master(),
    );
    wait_neighbour(c, a);
    assert_eq!(agent.instance_field("state"), "MASTER");

    agent.process.signal(Signal::SIGTERM);
    wait_until(
        "FRR master after the agent's priority-0 advert",
        skew_time(3, INTERVAL, 100) + SLACK,
        || frr.is_master().then_some(()),
    );
    wait_released(a);
    wait_neighbour_mac(c, &frr_vmac(), "FRR's virtual MAC");
    assert!(frr.log().contains("Backup -> Master"), "{}", frr.log());
}
