//! The conformance matrix: one row per requirement of RFC 3768 (VRRPv2) and RFC 5798
//! (VRRPv3), in the manner of the UNH-IOL VRRP test plan, each naming the tests that check
//! it. The wire rows of this file run against a real agent in a namespace, once on its
//! sockets (`--xdp off`) and once with the XDP program attached (the default). The rows
//! are the source of docs/conformance.md: a test fails when that file differs from them
//! (`HA_BLESS=1 cargo test -p ha-tests --test conformance` writes it), or when a row
//! names a test that does not exist.

use std::{net::Ipv4Addr, path::Path, time::Duration};

use ha_agent::vrrp::packet::{Advert, ChecksumForm, Interval, VRRP_GROUP_V4};
use ha_tests::{Daemon, Host, Topology, VrrpConf, daemons::agent_binary, wait_until};

mod forge;

/// How a row is checked.
#[derive(Clone, Copy)]
enum Modes {
    /// The sans-IO state machine on a virtual clock (every timer exact).
    StateMachine,
    /// Agents in namespaces, on sockets and with XDP.
    Wire,
    /// Both of the above.
    Both,
}

struct Row {
    id: &'static str,
    clause: &'static str,
    requirement: &'static str,
    /// `file::test` under tests/tests, or `fsm::test` for the state machine's unit tests.
    tests: &'static [&'static str],
    modes: Modes,
    /// How ha-agent departs from the text, on purpose, or goes beyond it.
    note: &'static str,
}

const ROWS: &[Row] = &[
    Row {
        id: "TX-1",
        clause: "3768 §5.1, §5.3; 5798 §5.1, §5.2",
        requirement: "Adverts go to 224.0.0.18 from the interface's primary address, IP protocol 112, TTL 255; version 2 or 3, type 1 (ADVERTISEMENT), the VRID, the priority, the address count and addresses, the advertisement interval (v2: seconds; v3: centiseconds), a valid checksum (v3: over the pseudo-header)",
        tests: &["conformance::tx_adverts_carry_the_rfc_fields"],
        modes: Modes::Wire,
        note: "",
    },
    Row {
        id: "TX-2",
        clause: "3768 §6.4.3; 5798 §6.4.3",
        requirement: "A master sends an advert every Advertisement_Interval",
        tests: &[
            "fsm::master_advertises_every_interval_without_drift",
            "fsm::late_wakeups_do_not_send_bursts",
        ],
        modes: Modes::StateMachine,
        note: "A master that wakes late sends one advert, not the ones it missed.",
    },
    Row {
        id: "TX-3",
        clause: "3768 §6.4.3; 5798 §6.4.3",
        requirement: "On shutdown a master sends an advert with priority 0 and leaves the addresses",
        tests: &[
            "fsm::shutdown_sends_priority_zero_and_releases_vips",
            "vrrp_agents::graceful_stop_hands_over_after_skew_time",
            "vrrp_keepalived::agent_master_v3_graceful_stop_to_keepalived",
        ],
        modes: Modes::Both,
        note: "",
    },
    Row {
        id: "TX-4",
        clause: "3768 §6.4.1, §6.4.2, §8.1.2; 5798 §6.4.1, §6.4.2",
        requirement: "A router that becomes master broadcasts a gratuitous ARP for each address",
        tests: &[
            "fsm::gratuitous_arp_bursts",
            "vrrp_agents::crash_failover_preemption_and_arp_drift",
        ],
        modes: Modes::Both,
        note: "Repeated and refreshed as keepalived's `garp_*` settings say.",
    },
    Row {
        id: "RX-1",
        clause: "3768 §7.1; 5798 §7.1",
        requirement: "An advert whose IP TTL is not 255 is discarded",
        tests: &[
            "conformance::rx_a_ttl_other_than_255_is_dropped",
            "vrrp_keepalived::unicast_peers_across_a_router_keepalived_master_agent_backup",
        ],
        modes: Modes::Wire,
        note: "**Deviation**, as keepalived: adverts of an instance with unicast peers (an extension the RFCs do not know) are not held to TTL 255, since they may cross routers.",
    },
    Row {
        id: "RX-2",
        clause: "3768 §7.1; 5798 §7.1",
        requirement: "An advert of another VRRP version is discarded",
        tests: &["conformance::rx_another_version_is_dropped"],
        modes: Modes::Wire,
        note: "",
    },
    Row {
        id: "RX-3",
        clause: "3768 §7.1; 5798 §7.1",
        requirement: "An advert with a wrong checksum is discarded",
        tests: &["conformance::rx_a_wrong_checksum_is_dropped"],
        modes: Modes::Wire,
        note: "",
    },
    Row {
        id: "RX-4",
        clause: "3768 §7.1; 5798 §7.1",
        requirement: "An advert for a VRID not configured on the interface is discarded",
        tests: &["conformance::rx_an_unconfigured_vrid_is_dropped"],
        modes: Modes::Wire,
        note: "",
    },
    Row {
        id: "RX-5",
        clause: "3768 §7.1, §5.3.6, §10",
        requirement: "VRRPv2: an advert whose authentication type or data differs from the configured ones is discarded",
        tests: &[
            "conformance::rx_a_wrong_password_is_dropped",
            "vrrp_keepalived::wrong_password_is_ignored_and_counted",
        ],
        modes: Modes::Wire,
        note: "RFC 5798 has no authentication.",
    },
    Row {
        id: "RX-6",
        clause: "3768 §7.1; 5798 §7.1",
        requirement: "An advert that does not hold the complete packet (fixed fields, addresses, authentication data) is discarded",
        tests: &["conformance::rx_a_truncated_advert_is_dropped"],
        modes: Modes::Wire,
        note: "Bytes beyond the announced addresses are refused as well.",
    },
    Row {
        id: "RX-7",
        clause: "3768 §7.1; 5798 §7.1",
        requirement: "An advert whose address list differs from the configured one, not from the address owner, is discarded (when the receiver checks the list)",
        tests: &[
            "vrrp_agents::a_one_sided_reload_of_the_master_makes_no_second_master",
            "hardening::adverts_with_a_wrong_address_list_are_dropped_under_vrrp_strict_and_answers_are_throttled",
        ],
        modes: Modes::Wire,
        note: "**Deviation**: by default such an advert still proves its sender alive: a backup follows it, logs the difference once, counts it (`ha_agent_peer_config_mismatch_total`) and shows it in status, so that a one-sided reload during a rolling change makes no second master. `vrrp_strict` restores the discard.",
    },
    Row {
        id: "RX-8",
        clause: "3768 §7.1",
        requirement: "VRRPv2: an advert whose interval differs from the configured one is discarded",
        tests: &[
            "fsm::a_v2_backup_follows_a_master_configured_with_another_interval",
            "vrrp_agents::a_one_sided_reload_of_the_master_makes_no_second_master",
        ],
        modes: Modes::Both,
        note: "**Deviation**, as RX-7: followed by default (the backup judges the master by the master's own interval), discarded under `vrrp_strict`.",
    },
    Row {
        id: "RX-9",
        clause: "5798 §6.4.2, §7.1",
        requirement: "VRRPv3: a backup takes the master's advertised interval as Master_Adver_Interval and derives its timers from it",
        tests: &[
            "fsm::master_yields_to_higher_priority_and_v3_learns_its_interval",
            "vrrp_keepalived::agent_backup_learns_keepalived_v3_interval",
        ],
        modes: Modes::Both,
        note: "",
    },
    Row {
        id: "SM-1",
        clause: "3768 §6.1; 5798 §6.1",
        requirement: "Skew_Time = ((256 - Priority) / 256) × interval; Master_Down_Interval = 3 × interval + Skew_Time",
        tests: &["fsm::timers_follow_the_rfc"],
        modes: Modes::StateMachine,
        note: "",
    },
    Row {
        id: "SM-2",
        clause: "3768 §6.4.1; 5798 §6.4.1",
        requirement: "Initialize: the address owner (priority 255) becomes master at once; any other router becomes backup and waits Master_Down_Interval",
        tests: &[
            "fsm::address_owner_takes_over_at_once",
            "fsm::startup_waits_master_down_interval_then_takes_over",
        ],
        modes: Modes::StateMachine,
        note: "",
    },
    Row {
        id: "SM-3",
        clause: "3768 §6.4.2; 5798 §6.4.2",
        requirement: "Backup: an advert of a master at its priority or above resets the down timer; none for Master_Down_Interval makes it master",
        tests: &[
            "fsm::backup_stays_backup_while_a_higher_master_advertises",
            "fsm::backup_takes_over_master_down_interval_after_the_last_advert",
            "vrrp_agents::crash_failover_preemption_and_arp_drift",
        ],
        modes: Modes::Both,
        note: "A backup that wakes late judges its down timer by the adverts that arrived in time (their kernel receive time), not by when it read them.",
    },
    Row {
        id: "SM-4",
        clause: "3768 §6.4.2; 5798 §6.4.2",
        requirement: "Backup: an advert with priority 0 sets the down timer to Skew_Time",
        tests: &[
            "fsm::priority_zero_means_take_over_after_skew",
            "vrrp_agents::graceful_stop_hands_over_after_skew_time",
        ],
        modes: Modes::Both,
        note: "",
    },
    Row {
        id: "SM-5",
        clause: "3768 §6.4.2, §6.1 (Preempt_Mode); 5798 §6.4.2",
        requirement: "Backup with Preempt_Mode: an advert of a lower priority is discarded (the backup takes over); without it the lower master is followed",
        tests: &[
            "fsm::preempt_discards_lower_adverts",
            "fsm::nopreempt_keeps_a_lower_master",
            "vrrp_agents::nopreempt_keeps_the_current_master",
        ],
        modes: Modes::Both,
        note: "keepalived's `preempt_delay` is honoured (`fsm::preempt_delay_accepts_a_lower_master_for_that_long`); `fast_preempt` is an opt-in extension.",
    },
    Row {
        id: "SM-6",
        clause: "3768 §6.4.3; 5798 §6.4.3",
        requirement: "Master: an advert of a higher priority, or of the same priority from a higher primary address, makes it backup",
        tests: &[
            "fsm::master_yields_to_higher_priority_and_v3_learns_its_interval",
            "fsm::equal_priority_tie_break_on_the_primary_address",
            "vrrp_agents::split_brain_heals_to_the_higher_address_at_equal_priority",
        ],
        modes: Modes::Both,
        note: "",
    },
    Row {
        id: "SM-7",
        clause: "3768 §6.4.3; 5798 §6.4.3",
        requirement: "Master: an advert with priority 0 is answered with an advert at once",
        tests: &["fsm::master_answers_lower_and_resigning_adverts_at_once"],
        modes: Modes::StateMachine,
        note: "**Extension**: a lower priority advert (which the RFC discards) is answered at once too, at most once per interval (`fsm::answers_to_a_flood_are_limited_to_one_per_interval`), so that a peer that came up as master yields at once.",
    },
    Row {
        id: "SM-8",
        clause: "3768 §6.4.3; 5798 §6.4.3",
        requirement: "Leaving master (to backup or shutdown) removes the virtual addresses",
        tests: &[
            "fsm::shutdown_sends_priority_zero_and_releases_vips",
            "fsm::fault_releases_and_recovery_waits_as_backup",
            "vrrp_agents::crash_failover_preemption_and_arp_drift",
        ],
        modes: Modes::Both,
        note: "",
    },
];

// ---------------------------------------------------------------------------------------
// The document.

fn render() -> String {
    let mut out = String::from(
        "# Conformance matrix\n\n\
         Generated from `tests/tests/conformance.rs` (do not edit: `HA_BLESS=1 cargo test -p \
         ha-tests --test conformance` rewrites it; the test fails while it differs). One row \
         per requirement of RFC 3768 (VRRPv2) and RFC 5798 (VRRPv3), in the manner of the \
         UNH-IOL VRRP test plan, with the tests that check it: `fsm::` tests run the sans-IO \
         state machine on a virtual clock (ha-agent/src/vrrp/fsm/tests.rs); the others run \
         real agents (and keepalived) in network namespaces (tests/tests/): the `conformance` \
         tests each run on sockets alone (`--xdp off`) and with the XDP program attached \
         (the default); `cargo xtask test` runs the `vrrp_agents` and `vrrp_keepalived` \
         suites in the default mode and again on sockets alone. Deliberate departures from \
         the text are marked **Deviation**.\n\n\
         | id | RFC clause | requirement | checked by | how | note |\n\
         |---|---|---|---|---|---|\n",
    );
    for row in ROWS {
        let tests: Vec<String> = row.tests.iter().map(|t| format!("`{t}`")).collect();
        let how = match row.modes {
            Modes::StateMachine => "state machine",
            Modes::Wire => "wire: sockets and XDP",
            Modes::Both => "state machine; wire: sockets and XDP",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {how} | {} |\n",
            row.id,
            row.clause,
            row.requirement,
            tests.join("<br>"),
            row.note
        ));
    }
    out
}

#[test]
fn the_matrix_in_docs_is_generated_from_the_rows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join("docs/conformance.md");
    let text = render();
    if std::env::var_os("HA_BLESS").is_some() {
        std::fs::write(&path, &text).expect("write docs/conformance.md");
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == text,
        "docs/conformance.md differs from the rows: HA_BLESS=1 cargo test -p ha-tests --test conformance"
    );
    // Every test a row names exists.
    for row in ROWS {
        for test in row.tests {
            let (file, name) = test.split_once("::").expect("file::test");
            let source = match file {
                "fsm" => root.join("ha-agent/src/vrrp/fsm/tests.rs"),
                _ => root.join(format!("tests/tests/{file}.rs")),
            };
            let text = std::fs::read_to_string(&source).unwrap_or_default();
            assert!(
                text.contains(&format!("fn {name}(")),
                "{}: {test} is not a test in {}",
                row.id,
                source.display()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// The wire rows.

const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 200);
/// Forged adverts per row: each must be counted once.
const N: usize = 50;

/// A MASTER (seed: VRRPv2 1 s, VRID 107, PASS 1111, priority 150) in `t`'s host "a", with
/// the receive path `xdp` asks for, settled.
fn master(t: &Topology, xdp: &str) -> Daemon {
    let a = t.host("a");
    let agent = Daemon::agent_args(
        a,
        t.dir(),
        &VrrpConf::seed("MASTER", 150).render(),
        &agent_binary(),
        &["--xdp", xdp],
    );
    wait_until(
        "A master, its receive path settled",
        Duration::from_secs(10),
        || {
            let status = agent.try_status()?;
            let path = status["receive_path"]["eth0"].as_str()?.to_owned();
            let settled = if xdp == "off" {
                path == "sockets"
            } else {
                path.starts_with("xdp")
            };
            (settled && a.has_address("eth0", VIP)).then_some(())
        },
    );
    agent
}

/// How many adverts the agent dropped for `reason`: in the kernel (XDP), or in user space
/// (by instance, or before one was matched); whichever saw them.
fn dropped(agent: &Daemon, reason: &str) -> u64 {
    let status = agent.status();
    let count = |v: &serde_json::Value| v[reason].as_u64().unwrap_or(0);
    let kernel = count(&status["xdp"]["verdicts"]["eth0"]);
    let user =
        count(&status["instances"][0]["adverts_dropped"]) + count(&status["unmatched_drops"]);
    kernel.max(user)
}

/// An advert that would win against the master (priority 200), from `host`.
fn winner(host: &Host, vrid: u8, version: u8, pass: &[u8; 8]) -> Vec<u8> {
    forge::advert(host, VRRP_GROUP_V4, vrid, version, pass, &[VIP])
}

const PASS: [u8; 8] = *b"1111\0\0\0\0";

/// One receive row in both modes: `forged` adverts (sent with `ttl`) that would make the
/// master yield if they were accepted are dropped for `reason` and change nothing; then a
/// valid one does make it yield, so the drop was the check's doing.
fn dropped_and_harmless(reason: &str, ttl: u32, forged: impl Fn(&Host) -> Vec<u8>) {
    for xdp in ["off", "auto"] {
        let t = Topology::new(&["a", "c"]);
        let (a, c) = (t.host("a"), t.host("c"));
        let agent = master(&t, xdp);
        forge::send(c, VRRP_GROUP_V4, &forged(c), ttl, N);
        wait_until(
            &format!("--xdp {xdp}: {N} adverts dropped for {reason}"),
            Duration::from_secs(5),
            || (dropped(&agent, reason) == N as u64).then_some(()),
        );
        assert_eq!(agent.instance_field("state"), "MASTER", "--xdp {xdp}");
        assert!(a.has_address("eth0", VIP), "--xdp {xdp}");
        forge::send(c, VRRP_GROUP_V4, &winner(c, 107, 2, &PASS), 255, 3);
        wait_until(
            &format!("--xdp {xdp}: A yielding to the valid advert"),
            Duration::from_secs(5),
            || (agent.instance_field("state") == "BACKUP").then_some(()),
        );
    }
}

#[test]
fn rx_a_ttl_other_than_255_is_dropped() {
    dropped_and_harmless("ttl", 64, |c| winner(c, 107, 2, &PASS));
}

#[test]
fn rx_another_version_is_dropped() {
    dropped_and_harmless("version", 255, |c| winner(c, 107, 3, &PASS));
}

#[test]
fn rx_a_wrong_checksum_is_dropped() {
    dropped_and_harmless("checksum", 255, |c| {
        let mut msg = winner(c, 107, 2, &PASS);
        msg[6] ^= 0x5a;
        msg
    });
}

#[test]
fn rx_an_unconfigured_vrid_is_dropped() {
    dropped_and_harmless("unknown_vrid", 255, |c| winner(c, 9, 2, &PASS));
}

#[test]
fn rx_a_wrong_password_is_dropped() {
    dropped_and_harmless("auth_mismatch", 255, |c| winner(c, 107, 2, b"2222\0\0\0\0"));
}

#[test]
fn rx_a_truncated_advert_is_dropped() {
    dropped_and_harmless("length", 255, |c| {
        // The authentication data cut off: what is left still sums to a valid checksum.
        let mut msg = winner(c, 107, 2, &PASS);
        msg.truncate(msg.len() - 8);
        msg[6..8].copy_from_slice(&[0, 0]);
        let sum = ha_agent::vrrp::packet::checksum(&msg, None);
        msg[6..8].copy_from_slice(&sum.to_be_bytes());
        msg
    });
}

/// The IP header and VRRP message of one advert from `from`, read by a raw socket in `host`
/// (a member of 224.0.0.18).
fn capture_advert(host: &Host, from: Ipv4Addr) -> Vec<u8> {
    host.in_netns(|| {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112))).unwrap();
        socket.bind_device(Some(b"eth0")).unwrap();
        socket.join_multicast_v4(&VRRP_GROUP_V4, &host.ip).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        loop {
            let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1500];
            let n = socket.recv(&mut buf).expect("an advert within 5 s");
            // SAFETY: recv initialised the first n bytes.
            let packet: Vec<u8> = buf[..n]
                .iter()
                .map(|b| unsafe { b.assume_init() })
                .collect();
            if packet.get(12..16) == Some(&from.octets()[..]) {
                return packet;
            }
        }
    })
}

#[test]
fn tx_adverts_carry_the_rfc_fields() {
    for (version, advert_int) in [(2, "1"), (3, "0.1")] {
        for xdp in ["off", "auto"] {
            let t = Topology::new(&["a", "c"]);
            let (a, c) = (t.host("a"), t.host("c"));
            let conf = if version == 2 {
                VrrpConf::seed("MASTER", 150)
            } else {
                VrrpConf::v3("MASTER", 150, advert_int)
            };
            let _agent =
                Daemon::agent_args(a, t.dir(), &conf.render(), &agent_binary(), &["--xdp", xdp]);
            wait_until("A master", Duration::from_secs(10), || {
                a.has_address("eth0", VIP).then_some(())
            });
            let packet = capture_advert(c, a.ip);
            let ip = ha_agent::vrrp::packet::IpHeader::parse(&packet).expect("an IPv4 header");
            let case = format!("v{version} --xdp {xdp}");
            assert_eq!(ip.dst, std::net::IpAddr::from(VRRP_GROUP_V4), "{case}");
            assert_eq!(
                ip.src,
                std::net::IpAddr::from(a.ip),
                "{case}: the primary address"
            );
            assert_eq!(ip.ttl, 255, "{case}");
            assert_eq!(ip.protocol, 112, "{case}");
            let msg = ip.payload(&packet);
            assert_eq!(msg[0], (version << 4) | 1, "{case}: version and type");
            let (advert, form) = Advert::parse(msg, ip.src, ip.dst).expect("a valid advert");
            assert_eq!(advert.vrid, 107, "{case}");
            assert_eq!(advert.priority, 150, "{case}");
            assert_eq!(advert.addrs, [VIP], "{case}: count and addresses");
            match version {
                2 => {
                    assert_eq!(advert.interval, Interval::Seconds(1), "{case}");
                    assert_eq!(form, ChecksumForm::Message, "{case}");
                    assert_eq!(advert.auth.map(|(_, data)| data), Some(PASS), "{case}");
                }
                _ => {
                    assert_eq!(advert.interval, Interval::Centis(10), "{case}");
                    assert_eq!(form, ChecksumForm::PseudoHeader, "{case}");
                }
            }
        }
    }
}
