//! RFC 5798 Accept_Mode (`accept` / `no_accept`) with real processes: a master that is not
//! the address owner and does not accept drops traffic addressed to its VIPs in the XDP
//! program, while ARP and Neighbor Discovery for them still work; keepalived's defaults
//! (accept, but not under strict mode). Without the XDP program the agent says the rule is
//! not enforced.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use ha_tests::{
    Daemon, Host, Topology, VrrpConf, daemons::agent_binary, http::request, wait::assert_never,
    wait_until,
};

const REFUSED4: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 200);
const ACCEPTED4: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 201);
const REFUSED6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100);

/// Three instances on one master: `no_accept` (IPv4), `strict_mode` with `accept` (IPv4,
/// VRRPv3) and `strict_mode` alone (IPv6: no_accept by default).
fn conf() -> String {
    let instance = |name: &str, vrid, vip: String, extra: &[&str]| VrrpConf {
        name: name.into(),
        vrid,
        vips: vec![vip],
        extra: extra.iter().map(|s| s.to_string()).collect(),
        ..VrrpConf::v3("MASTER", 150, "0.1")
    };
    ha_tests::daemons::config(&[
        instance("REFUSING", 71, format!("{REFUSED4}/24"), &["no_accept"]),
        instance(
            "ACCEPTING",
            72,
            format!("{ACCEPTED4}/24"),
            &["strict_mode", "accept"],
        ),
        instance("STRICT6", 73, format!("{REFUSED6}/64"), &["strict_mode"]),
    ])
}

fn all_master(agent: &Daemon) {
    wait_until("three masters", Duration::from_secs(5), || {
        let status = agent.try_status()?;
        let instances = status["instances"].as_array()?;
        (instances.len() == 3 && instances.iter().all(|i| i["state"] == "MASTER")).then_some(())
    });
}

/// `observer` resolves `vip` to `owner`'s MAC (ARP or Neighbor Discovery passed), whatever
/// becomes of the ping that asks.
fn resolves(observer: &Host, vip: impl Into<IpAddr> + Copy, owner: &Host) {
    wait_until(
        &format!("{vip} resolved to {}", owner.name, vip = vip.into()),
        Duration::from_secs(5),
        || {
            observer.ping_once(vip);
            (observer.arp_entry(vip).as_deref() == Some(owner.mac.as_str())).then_some(())
        },
    );
}

fn drops(agent: &Daemon) -> u64 {
    agent.status()["xdp"]["not_accepted_drops"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn a_master_without_accept_mode_drops_traffic_to_its_vips_but_not_arp_or_nd() {
    let t = Topology::new(&["a", "b"]);
    t.enable_ipv6();
    let (a, b) = (t.host("a"), t.host("b"));
    let http = "127.0.0.1:9107";
    let agent = Daemon::agent_args(
        a,
        t.dir(),
        &conf(),
        &agent_binary(),
        &["--http-listen", http],
    );
    all_master(&agent);
    wait_until("XDP attached", Duration::from_secs(5), || {
        agent.status()["xdp"]["attached"].get("eth0").map(|_| ())
    });

    // Accept_Mode on: the VIP answers.
    wait_until("ping to the accepting VIP", Duration::from_secs(5), || {
        b.ping_once(ACCEPTED4).then_some(())
    });
    // Off: the neighbours still find the VIP (ARP, ND) but nothing addressed to it passes.
    resolves(b, REFUSED4, a);
    resolves(b, REFUSED6, a);
    assert_never(
        "a ping to a refusing VIP answered",
        Duration::from_secs(2),
        || b.ping_once(REFUSED4) || b.ping_once(REFUSED6),
    );
    let dropped = drops(&agent);
    assert!(dropped >= 4, "{dropped} frames dropped");
    let (_, metrics) = request(a, "GET", http.parse().unwrap(), "/metrics");
    let exported: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ha_agent_xdp_not_accepted_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no ha_agent_xdp_not_accepted_total in\n{metrics}"));
    assert!(
        exported >= dropped,
        "{exported} exported, {dropped} in the status"
    );
    // The address itself is on the interface: only the XDP program refuses it.
    assert!(a.has_address("eth0", REFUSED4) && a.has_address("eth0", REFUSED6));
}

#[test]
fn without_the_xdp_program_no_accept_is_reported_as_not_enforced() {
    let t = Topology::new(&["a", "b"]);
    t.enable_ipv6();
    let (a, b) = (t.host("a"), t.host("b"));
    let agent = Daemon::agent_args(a, t.dir(), &conf(), &agent_binary(), &["--xdp", "off"]);
    all_master(&agent);
    let log = agent.log_text();
    for name in ["REFUSING", "STRICT6"] {
        assert!(
            log.lines()
                .any(|l| l.contains(name) && l.contains("no_accept") && l.contains("not enforced")),
            "no warning for {name}:\n{log}"
        );
    }
    assert!(
        !log.lines()
            .any(|l| l.contains("ACCEPTING") && l.contains("not enforced"))
    );
    wait_until("ping to the VIP", Duration::from_secs(5), || {
        b.ping_once(REFUSED4).then_some(())
    });
}
