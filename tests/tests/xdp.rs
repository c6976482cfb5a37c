//! The embedded XDP program: run on crafted frames (BPF_PROG_TEST_RUN) and attached to a
//! host's veth in a real namespace topology.

use std::{collections::HashMap, time::Duration};

use ha_agent::xdp::{AttachMode, XdpProgram};
use ha_common::classify::{ClassCount, FrameClass};
use ha_tests::{Topology, wait_until};

const XDP_PASS: u32 = 2;

fn counts(program: &XdpProgram) -> HashMap<FrameClass, ClassCount> {
    program
        .class_counts()
        .expect("read CLASS_COUNTS")
        .into_iter()
        .collect()
}

fn delta(
    before: &HashMap<FrameClass, ClassCount>,
    after: &HashMap<FrameClass, ClassCount>,
    class: FrameClass,
) -> (u64, u64) {
    (
        after[&class].frames - before[&class].frames,
        after[&class].bytes - before[&class].bytes,
    )
}

/// An Ethernet frame with `ethertype` and `payload`.
fn frame(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x0a]);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A minimal IPv4 header (checksum not needed by the classifier) carrying `protocol`.
fn ipv4(protocol: u8) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 255, protocol, 0, 0];
    h.extend_from_slice(&[192, 168, 2, 10, 224, 0, 0, 18]);
    h.extend_from_slice(&[0; 8]);
    h
}

#[test]
fn classifies_crafted_frames() {
    let mut program = XdpProgram::load().expect("load XDP object");
    let cases: Vec<(Vec<u8>, FrameClass)> = vec![
        (frame(0x0806, &[0; 28]), FrameClass::Arp),
        (frame(0x0800, &ipv4(1)), FrameClass::Icmp),
        (frame(0x0800, &ipv4(2)), FrameClass::Igmp),
        (frame(0x0800, &ipv4(6)), FrameClass::Tcp),
        (frame(0x0800, &ipv4(17)), FrameClass::Udp),
        (frame(0x0800, &ipv4(112)), FrameClass::Vrrp),
        (frame(0x0800, &ipv4(47)), FrameClass::Ipv4Other),
        (frame(0x86dd, &[0x60; 40]), FrameClass::Ipv6),
        (frame(0x88cc, &[0; 46]), FrameClass::Other),
        // An IPv4 EtherType with a truncated header: counted as Other, still passed.
        (frame(0x0800, &[0x45, 0, 0]), FrameClass::Other),
    ];
    for (bytes, class) in &cases {
        let before = counts(&program);
        let verdict = program.run_on(bytes).expect("test run");
        assert_eq!(verdict, XDP_PASS, "{class:?} frame must be passed");
        let after = counts(&program);
        for other in FrameClass::ALL {
            let expected = if other == *class {
                (1, bytes.len() as u64)
            } else {
                (0, 0)
            };
            assert_eq!(
                delta(&before, &after, other),
                expected,
                "a {class:?} frame moved the {other:?} counter wrongly"
            );
        }
    }
}

#[test]
fn counts_icmp_and_arp_on_an_attached_veth() {
    let topology = Topology::new(&["a", "b"]);
    let (a, b) = (topology.host("a"), topology.host("b"));

    let mut program = XdpProgram::load().expect("load XDP object");
    let mode = a
        .in_netns(|| program.attach(&a.iface))
        .expect("attach to a's eth0");
    assert_eq!(mode, AttachMode::Native, "veth supports native XDP");
    let link = a.sh(&["ip", "-d", "link", "show", "dev", &a.iface]);
    assert!(
        link.contains("prog/xdp"),
        "no XDP program on a's eth0:\n{link}"
    );

    let before = counts(&program);
    // Five echo requests, 0.2 s apart: b first resolves a's address with one ARP request.
    let ping = b.run(&["ping", "-c", "5", "-i", "0.2", "-W", "1", &a.ip.to_string()]);
    assert!(
        ping.status.success(),
        "ping failed: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    let after = counts(&program);

    // 14 Ethernet + 20 IPv4 + 8 ICMP + 56 data = 98 bytes per echo request.
    assert_eq!(
        delta(&before, &after, FrameClass::Icmp),
        (5, 5 * 98),
        "ICMP on a's ingress"
    );
    // One ARP request (42 bytes, veth does not pad); a's reply is egress and not seen.
    assert_eq!(
        delta(&before, &after, FrameClass::Arp),
        (1, 42),
        "ARP on a's ingress"
    );
    assert_eq!(delta(&before, &after, FrameClass::Tcp), (0, 0));

    // Dropping the program detaches it.
    drop(program);
    wait_until("XDP detached from a's eth0", Duration::from_secs(2), || {
        let link = a.sh(&["ip", "-d", "link", "show", "dev", &a.iface]);
        (!link.contains("prog/xdp")).then_some(())
    });
}

// The same packets through the agent's receive step and through the XDP program.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ha_agent::vrrp::{
    packet::{Accepted, Advert, ChecksumForm, DropReason, Expect, Interval, checksum},
    receive::{Target, receive},
};
use ha_common::vrrp::{
    AUTH_PASS, Peer, SourceKey, VRID_IPV6, Verdict, VridConfig, VridKey, addr_digest, addr16,
};

const XDP_DROP: u32 = 1;
const VRID: u8 = 107;
const PASS: [u8; 8] = *b"1111\0\0\0\0";
const VIPS: [Ipv4Addr; 2] = [
    Ipv4Addr::new(192, 168, 2, 200),
    Ipv4Addr::new(192, 168, 2, 201),
];

/// The agent's verdict as the kernel would give it: its own-address and address-list checks
/// are made in the kernel only for absorbing VRIDs, so they count as accepted here; and
/// whether the agent accepted it without reservation (what an absorbing kernel keeps).
fn agent_verdict(
    packet: &[u8],
    version: u8,
    sources: Option<&[Ipv4Addr]>,
    strict: bool,
) -> (Verdict, Option<Advert>, bool) {
    let sources: Option<Vec<IpAddr>> = sources.map(|s| s.iter().map(|&a| a.into()).collect());
    let vips = VIPS.map(IpAddr::from);
    let own = Ipv4Addr::new(192, 168, 2, 99).into();
    agent_verdict_as(packet, version, own, &vips, sources.as_deref(), strict)
}

/// [`agent_verdict`] for an instance with address `own` and VIPs `vips`.
fn agent_verdict_as(
    packet: &[u8],
    version: u8,
    own: IpAddr,
    vips: &[IpAddr],
    sources: Option<&[IpAddr]>,
    strict: bool,
) -> (Verdict, Option<Advert>, bool) {
    let result = receive(packet, |vrid| {
        (vrid == VRID).then_some(Target {
            index: 0,
            primary_ip: own,
            unicast: false,
            expect: Expect {
                version,
                interval: if version == 2 {
                    Interval::Seconds(1)
                } else {
                    Interval::Centis(100)
                },
                auth_pass: (version == 2).then_some(&PASS),
                addrs: vips,
                skip_addr_check_from: None,
                sources,
                strict,
            },
        })
    });
    let reason = match result {
        Ok(delivery) => {
            let clean = delivery.accepted == Accepted::Clean;
            return (Verdict::Accepted, Some(delivery.advert), clean);
        }
        Err(dropped) => dropped.reason,
    };
    let verdict = match reason {
        DropReason::BadIp => Verdict::BadIp,
        DropReason::Ttl => Verdict::Ttl,
        DropReason::Version => Verdict::Version,
        DropReason::Type => Verdict::Type,
        DropReason::Length => Verdict::Length,
        DropReason::Checksum => Verdict::Checksum,
        DropReason::UnknownVrid => Verdict::UnknownVrid,
        DropReason::Interval => Verdict::Interval,
        DropReason::ZeroInterval => Verdict::ZeroInterval,
        DropReason::AuthType => Verdict::AuthType,
        DropReason::AuthMismatch => Verdict::AuthMismatch,
        DropReason::UnknownSource => Verdict::UnknownSource,
        DropReason::Own | DropReason::AddressList => {
            let ip = ha_agent::vrrp::packet::IpHeader::parse(packet).unwrap();
            let advert = Advert::parse(ip.payload(packet), ip.src, ip.dst).unwrap().0;
            return (Verdict::Accepted, Some(advert), false);
        }
    };
    (verdict, None, false)
}

/// The IPv4 header length and the VRRP message's range in `p`.
fn msg_range(p: &[u8]) -> std::ops::Range<usize> {
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
    ihl..total
}

/// `p` with message byte `at` set to `value` and the VRRP checksum recomputed (message form).
fn edit(p: &[u8], at: usize, value: u8) -> Vec<u8> {
    let mut p = p.to_vec();
    let range = msg_range(&p);
    p[range.start + at] = value;
    p[range.start + 6] = 0;
    p[range.start + 7] = 0;
    let sum = checksum(&p[range.clone()], None);
    p[range.start + 6..range.start + 8].copy_from_slice(&sum.to_be_bytes());
    p
}

/// Every invalid class the receive step knows, made from the valid seeds.
fn crafted(seeds: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, p) in seeds {
        let mut add = |what: &str, bytes: Vec<u8>| out.push((format!("{name}-{what}"), bytes));
        let mut ttl = p.clone();
        ttl[8] = 64;
        add("ttl64", ttl);
        add("version1", edit(p, 0, 0x11));
        add("version4", edit(p, 0, (4 << 4) | 1));
        add("type2", edit(p, 0, (p[msg_range(p).start] & 0xf0) | 2));
        add("vrid9", edit(p, 1, 9));
        add("priority0", edit(p, 2, 0));
        add("priority255", edit(p, 2, 255));
        add("count3", edit(p, 3, 3));
        add("auth-type2", edit(p, 4, 2));
        add("auth-none", edit(p, 4, 0));
        add("interval2", edit(p, 5, 2));
        add(
            "interval0",
            edit(
                edit(p, 4, p[msg_range(p).start + 4] & 0xf0).as_slice(),
                5,
                0,
            ),
        );
        let mut bad = p.clone();
        bad[msg_range(p).start + 6] ^= 0xff;
        add("checksum", bad);
        add("auth-data", edit(p, msg_range(p).len() - 8, b'2'));
        // Four bytes more than the count implies, the IP length saying so.
        let mut long = p[..msg_range(p).end].to_vec();
        long.extend_from_slice(&[0; 4]);
        let total = (long.len() as u16).to_be_bytes();
        long[2..4].copy_from_slice(&total);
        add("trailing", long);
        // IP options (IHL 6).
        let mut opts = p[..20].to_vec();
        opts[0] = 0x46;
        opts.extend_from_slice(&[1, 1, 1, 0]);
        opts.extend_from_slice(&p[20..]);
        let total = (u16::from_be_bytes([p[2], p[3]]) + 4).to_be_bytes();
        opts[2..4].copy_from_slice(&total);
        add("ip-options", opts);
        let mut ihl4 = p.clone();
        ihl4[0] = 0x44;
        add("ihl4", ihl4);
        let mut short_total = p.clone();
        short_total[2..4].copy_from_slice(&16u16.to_be_bytes());
        add("total-short", short_total);
        for cut in [21, 24, 27, 28, 30, p.len() - 1] {
            if cut < p.len() {
                add(&format!("cut{cut}"), p[..cut].to_vec());
            }
        }
    }
    out
}

/// Seeded byte flips and cuts of every packet.
fn mutated(packets: &[(String, Vec<u8>)], per_packet: usize) -> Vec<(String, Vec<u8>)> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::new();
    for (name, p) in packets {
        for i in 0..per_packet {
            let mut m = p.clone();
            for _ in 0..1 + next() % 3 {
                let at = (next() as usize) % m.len();
                m[at] = next() as u8;
            }
            if next() % 4 == 0 {
                m.truncate(1 + (next() as usize) % m.len());
            }
            out.push((format!("{name}-m{i}"), m));
        }
    }
    out
}

/// `packet` in an Ethernet frame behind `tags` VLAN tags.
fn ethernet(packet: &[u8], tags: usize) -> Vec<u8> {
    ethernet_as(0x0800, packet, tags)
}

/// `payload` of `ethertype` in an Ethernet frame behind `tags` VLAN tags.
fn ethernet_as(ethertype: u16, payload: &[u8], tags: usize) -> Vec<u8> {
    let mut f = vec![0x01, 0x00, 0x5e, 0x00, 0x00, 0x12, 0x02, 0, 0, 0, 0, 0x0b];
    for tag in 0..tags {
        f.extend_from_slice(if tag == 0 {
            &[0x88, 0xa8]
        } else {
            &[0x81, 0x00]
        });
        f.extend_from_slice(&[0x00, 0x0a]);
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An Ethernet/IPv4 ARP message (operation 1 request, 2 reply) from `sha`/`spa` about `tpa`.
fn arp(op: u16, sha: [u8; 6], spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    let mut m = vec![0, 1, 0x08, 0x00, 6, 4];
    m.extend_from_slice(&op.to_be_bytes());
    m.extend_from_slice(&sha);
    m.extend_from_slice(&spa.octets());
    m.extend_from_slice(&[0; 6]);
    m.extend_from_slice(&tpa.octets());
    m
}

#[test]
fn arp_claims_of_our_vips_are_recorded_and_reported_while_held() {
    use ha_common::vrrp::{Change, VipKey};
    const OWN: [u8; 6] = [2, 0, 0, 0, 0, 0x0a];
    const OTHER: [u8; 6] = [2, 0, 0, 0, 0, 0x0c];
    const THIRD: [u8; 6] = [2, 0, 0, 0, 0, 0x0d];
    let (held, spare) = (VIPS[0], VIPS[1]);
    let stranger = Ipv4Addr::new(192, 168, 2, 50);
    let mut program = XdpProgram::load().expect("load XDP object");
    // The interface a test run is received on, from the counter a VRRP packet lands in.
    program.run_on(&ethernet(&ipv4(112), 0)).unwrap();
    let ifindex = verdict_counts(&program).keys().next().expect("a verdict").0;
    let key = |addr: Ipv4Addr| VipKey {
        ifindex,
        addr: addr.octets(),
    };
    program.set_vip(key(held), 107, true, OWN).unwrap();
    program.set_vip(key(spare), 108, false, OWN).unwrap();
    let entry = |program: &XdpProgram, addr: Ipv4Addr| {
        program
            .vips()
            .unwrap()
            .into_iter()
            .find(|(k, ..)| *k == key(addr))
            .unwrap()
            .2
    };
    let mut tagged = ethernet_as(0x0806, &arp(2, OTHER, held, held), 2);
    // (frame, claims of the held VIP after it, its last claimant)
    let cases: Vec<(&str, Vec<u8>, u64, [u8; 6])> = vec![
        (
            "reply",
            ethernet_as(0x0806, &arp(2, OTHER, held, stranger), 0),
            1,
            OTHER,
        ),
        (
            "gratuitous request",
            ethernet_as(0x0806, &arp(1, THIRD, held, held), 0),
            2,
            THIRD,
        ),
        (
            "again at once",
            ethernet_as(0x0806, &arp(1, THIRD, held, held), 0),
            3,
            THIRD,
        ),
        (
            "our own MAC",
            ethernet_as(0x0806, &arp(1, OWN, held, held), 0),
            3,
            THIRD,
        ),
        (
            "probe",
            ethernet_as(0x0806, &arp(1, OTHER, Ipv4Addr::UNSPECIFIED, held), 0),
            3,
            THIRD,
        ),
        (
            "request for it",
            ethernet_as(0x0806, &arp(1, OTHER, stranger, held), 0),
            3,
            THIRD,
        ),
        ("VLAN-tagged reply", tagged.clone(), 4, OTHER),
    ];
    for (name, frame, claims, holder) in &cases {
        assert_eq!(program.run_on(frame).unwrap(), XDP_PASS, "{name}");
        let e = entry(&program, held);
        assert_eq!((e.claims, e.holder), (*claims, *holder), "{name}");
    }
    // Not ARP for Ethernet/IPv4, or cut short: ignored, passed.
    let mut ieee802 = arp(2, OTHER, held, held);
    ieee802[1] = 6;
    tagged.truncate(tagged.len() - 10);
    for (name, frame) in [
        ("hardware type 6", ethernet_as(0x0806, &ieee802, 0)),
        ("truncated", tagged),
    ] {
        assert_eq!(program.run_on(&frame).unwrap(), XDP_PASS, "{name}");
        assert_eq!(entry(&program, held).claims, 4, "{name}");
    }
    // A VIP we do not hold: the claim is recorded (who holds it), never reported.
    program
        .run_on(&ethernet_as(0x0806, &arp(2, OTHER, spare, spare), 0))
        .unwrap();
    let e = entry(&program, spare);
    assert_eq!((e.claims, e.holder), (1, OTHER));
    // Reported: the first claim, and each change of claimant (not the repeat within 100 ms).
    let conflicts: Vec<(Ipv4Addr, [u8; 6])> = program
        .events()
        .unwrap()
        .into_iter()
        .filter(|e| e.change == Change::ArpConflict as u32)
        .map(|e| (Ipv4Addr::from(e.vip), e.mac))
        .collect();
    assert_eq!(conflicts, [(held, OTHER), (held, THIRD), (held, OTHER)]);
}

fn verdict_counts(program: &XdpProgram) -> HashMap<(u32, Verdict), u64> {
    program
        .verdicts()
        .unwrap()
        .into_iter()
        .map(|(ifindex, verdict, n)| ((ifindex, verdict), n))
        .collect()
}

#[test]
fn the_kernel_and_the_agent_agree_on_every_packet_of_the_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/advert");
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    seeds.sort();
    // The valid seeds (not earlier crafted files) are the base of the crafted classes.
    let valid: Vec<(String, Vec<u8>)> = seeds
        .iter()
        .filter(|(_, p)| {
            agent_verdict(p, 2, None, true).0 == Verdict::Accepted
                || agent_verdict(p, 3, None, true).0 == Verdict::Accepted
        })
        .cloned()
        .collect();
    assert!(valid.len() >= 4, "{} valid seeds", valid.len());
    let crafted = crafted(&valid);
    if std::env::var_os("HA_WRITE_CORPUS").is_some() {
        for (name, bytes) in &crafted {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let mut corpus = seeds.clone();
    corpus.extend(crafted);
    corpus.extend(mutated(&valid, 200));

    let mut program = XdpProgram::load().expect("load XDP object");
    // The interface a test run is received on.
    program.run_on(&ethernet(&valid[0].1, 0)).unwrap();
    let ifindex = verdict_counts(&program).keys().next().expect("a verdict").0;
    let key = VridKey {
        ifindex,
        vrid: u32::from(VRID),
    };
    let mut seen: HashMap<Verdict, usize> = HashMap::new();
    // The one sender a source-checking configuration accepts (a unicast peer).
    let peer = Ipv4Addr::new(
        valid[0].1[12],
        valid[0].1[13],
        valid[0].1[14],
        valid[0].1[15],
    );
    program
        .allow_source(SourceKey {
            ifindex,
            vrid: u32::from(VRID),
            addr: addr16(&peer.octets()),
        })
        .unwrap();
    // Each version passing accepted adverts up, then absorbing them (as for a backup), and
    // checking sources; VRRPv2 also under `vrrp_strict` (another interval dropped).
    let configs = [
        (2u8, false, false, false),
        (3, false, false, false),
        (2, true, false, false),
        (3, true, false, false),
        (2, false, true, false),
        (3, true, true, false),
        (2, false, false, true),
        (2, true, true, true),
    ];
    for (version, absorb, check_src, strict) in configs {
        program
            .configure_vrid(
                key,
                VridConfig {
                    version,
                    auth_type: if version == 2 { AUTH_PASS } else { 0 },
                    interval_s: 1,
                    absorb: u8::from(absorb),
                    own: addr16(&[192, 168, 2, 99]),
                    auth: if version == 2 { PASS } else { [0; 8] },
                    addr_count: VIPS.len() as u8,
                    addr_digest: addr_digest(VIPS.iter().map(|a| addr16(&a.octets()))),
                    check_src: u8::from(check_src),
                    strict: u8::from(strict),
                    ..Default::default()
                },
            )
            .unwrap();
        for (name, packet) in &corpus {
            let sources = check_src.then_some(std::slice::from_ref(&peer));
            let (want, advert, clean) = agent_verdict(packet, version, sources, strict);
            let want = if absorb && clean {
                Verdict::Absorbed
            } else {
                want
            };
            for tags in 0..=2 {
                let frame = ethernet(packet, tags);
                let before = verdict_counts(&program);
                let action = program.run_on(&frame).unwrap();
                let after = verdict_counts(&program);
                let moved: Vec<Verdict> = after
                    .iter()
                    .filter(|(k, n)| before.get(k) != Some(n))
                    .map(|((_, v), _)| *v)
                    .collect();
                // Too short for an IPv4 header, or another protocol: not VRRP to the kernel.
                let not_vrrp = packet.len() < 20 || packet[9] != 112;
                let got = match moved.as_slice() {
                    [] if want == Verdict::BadIp && not_vrrp => Verdict::BadIp,
                    [one] => *one,
                    other => panic!("{name} (v{version}, {tags} tags): counters {other:?}"),
                };
                assert_eq!(got, want, "{name} (v{version}, {tags} tags)");
                *seen.entry(got).or_default() += 1;
                let ours =
                    packet.len() > 21 && packet.get(msg_range(packet).start + 1) == Some(&VRID);
                // Dropped: an invalid advert for a configured VRID (one whose IP header holds,
                // else the VRID byte means nothing; the stack drops a bad header anyway).
                let expected_action = if got != Verdict::Accepted && got != Verdict::BadIp && ours {
                    XDP_DROP
                } else {
                    XDP_PASS
                };
                assert_eq!(
                    action, expected_action,
                    "{name} (v{version}, {tags} tags): action"
                );
                // Recorded: what the kernel accepted, or (absorbing) kept.
                let recorded = (got == Verdict::Accepted && !absorb) || got == Verdict::Absorbed;
                if let Some(advert) = advert.as_ref().filter(|_| recorded) {
                    let (_, peer) = program
                        .peers()
                        .unwrap()
                        .into_iter()
                        .find(|(k, _)| *k == key)
                        .expect("a peer entry");
                    // The mapped copy (slot 0, the configuration's) says the same.
                    let copy = program.peer_at(0).expect("readable").expect("recorded");
                    assert_eq!(Peer { seq: 0, ..copy }, peer, "{name}: PEER_SLOTS");
                    let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
                    assert_eq!(peer.master, addr16(&src.octets()), "{name}");
                    assert_eq!(peer.priority, advert.priority, "{name}");
                    assert_eq!(usize::from(peer.addr_count), advert.addrs.len(), "{name}");
                    assert_eq!(
                        u32::from(peer.interval_cs),
                        advert.interval.centis(),
                        "{name}"
                    );
                }
            }
        }
    }
    eprintln!(
        "{} packets × {} configurations × 3 framings; verdicts: {seen:?}",
        corpus.len(),
        configs.len()
    );
    for verdict in Verdict::ALL {
        assert!(seen.contains_key(&verdict), "no packet got {verdict:?}");
    }
    // Changes, not adverts, reach the ring buffer.
    let events = program.events().unwrap();
    assert!(!events.is_empty());
    assert!(
        events.len() < seen[&Verdict::Accepted] + seen[&Verdict::Absorbed],
        "{} events",
        events.len()
    );
}

const OWN6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x99);
const PEER6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x0b);
const VIPS6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x200),
    Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x201),
];

/// An IPv6 packet (hop limit 255) carrying a VRRPv3 advert from `src` listing `addrs`.
fn advert6(src: Ipv6Addr, priority: u8, addrs: &[Ipv6Addr]) -> Vec<u8> {
    let advert = Advert {
        vrid: VRID,
        priority,
        interval: Interval::Centis(100),
        auth: None,
        addrs: addrs.iter().map(|&a| a.into()).collect(),
    };
    let mut msg = Vec::new();
    let group = ha_agent::vrrp::packet::VRRP_GROUP_V6;
    advert.emit(&mut msg, ChecksumForm::PseudoHeader, src, group);
    let mut p = ha_agent::net::advert_socket::ipv6_header(src, group, 112, msg.len()).to_vec();
    p.extend_from_slice(&msg);
    p
}

/// `p` (IPv6) with message byte `at` set to `value` and the checksum recomputed.
fn edit6(p: &[u8], at: usize, value: u8) -> Vec<u8> {
    let mut p = p.to_vec();
    p[40 + at] = value;
    p[46] = 0;
    p[47] = 0;
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&p[8..24]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&p[24..40]).unwrap());
    let sum = checksum(&p[40..], Some((src.into(), dst.into())));
    p[46..48].copy_from_slice(&sum.to_be_bytes());
    p
}

/// Every invalid class the receive step knows over IPv6, made from valid seeds.
fn crafted6(seeds: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, p) in seeds {
        let mut add = |what: &str, bytes: Vec<u8>| out.push((format!("{name}-{what}"), bytes));
        let mut hop = p.clone();
        hop[7] = 64;
        add("hop64", hop);
        add("version2", edit6(p, 0, 0x21));
        add("version4", edit6(p, 0, 0x41));
        add("type2", edit6(p, 0, 0x32));
        add("vrid9", edit6(p, 1, 9));
        add("priority0", edit6(p, 2, 0));
        add("priority255", edit6(p, 2, 255));
        add("count3", edit6(p, 3, 3));
        add("interval0", edit6(edit6(p, 4, 0).as_slice(), 5, 0));
        let mut bad = p.clone();
        bad[46] ^= 0xff;
        add("checksum", bad);
        // The message-only checksum VRRPv3 over IPv4 may carry: not over IPv6.
        let mut message_only = p.clone();
        message_only[46..48].copy_from_slice(&[0, 0]);
        let sum = checksum(&message_only[40..], None);
        message_only[46..48].copy_from_slice(&sum.to_be_bytes());
        add("message-checksum", message_only);
        let mut long = p.clone();
        long.extend_from_slice(&[0; 16]);
        let payload = ((long.len() - 40) as u16).to_be_bytes();
        long[4..6].copy_from_slice(&payload);
        add("trailing", long);
        let mut padded = p.clone();
        padded.extend_from_slice(&[0; 6]);
        add("padded", padded);
        let mut hop_by_hop = p.clone();
        hop_by_hop[6] = 0;
        add("next-header0", hop_by_hop);
        let mut ipv4 = p.clone();
        ipv4[0] = 0x45;
        add("ip-version4", ipv4);
        for cut in [39, 41, 47, 48, 60, p.len() - 1] {
            add(&format!("cut{cut}"), p[..cut].to_vec());
        }
    }
    out
}

#[test]
fn the_kernel_and_the_agent_agree_on_ipv6_adverts() {
    let valid: Vec<(String, Vec<u8>)> = vec![
        ("v6-100".into(), advert6(PEER6, 100, &VIPS6)),
        ("v6-200".into(), advert6(PEER6, 200, &[VIPS6[1], VIPS6[0]])),
        ("v6-other-list".into(), advert6(PEER6, 150, &VIPS6[..1])),
        ("v6-own".into(), advert6(OWN6, 150, &VIPS6)),
        (
            "v6-stranger".into(),
            advert6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x0c), 150, &VIPS6),
        ),
    ];
    let mut corpus = valid.clone();
    corpus.extend(crafted6(&valid));
    corpus.extend(mutated(&valid, 200));

    let mut program = XdpProgram::load().expect("load XDP object");
    program
        .run_on(&ethernet_as(0x86dd, &valid[0].1, 0))
        .unwrap();
    let ifindex = verdict_counts(&program).keys().next().expect("a verdict").0;
    let key = VridKey {
        ifindex,
        vrid: u32::from(VRID) | VRID_IPV6,
    };
    program
        .allow_source(SourceKey {
            ifindex,
            vrid: key.vrid,
            addr: PEER6.octets(),
        })
        .unwrap();
    let vips: Vec<IpAddr> = VIPS6.iter().map(|&a| a.into()).collect();
    let mut seen: HashMap<Verdict, usize> = HashMap::new();
    for (absorb, check_src, strict) in [
        (false, false, false),
        (true, false, false),
        (false, true, false),
        (true, true, true),
    ] {
        program
            .configure_vrid(
                key,
                VridConfig {
                    version: 3,
                    absorb: u8::from(absorb),
                    own: OWN6.octets(),
                    addr_count: VIPS6.len() as u8,
                    addr_digest: addr_digest(VIPS6.iter().map(|a| a.octets())),
                    check_src: u8::from(check_src),
                    strict: u8::from(strict),
                    ..Default::default()
                },
            )
            .unwrap();
        for (name, packet) in &corpus {
            let peers = [IpAddr::from(PEER6)];
            let sources = check_src.then_some(&peers[..]);
            let (want, advert, clean) =
                agent_verdict_as(packet, 3, OWN6.into(), &vips, sources, strict);
            // An IPv6 frame whose header says otherwise is no advert to the kernel; the
            // agent's socket never sees one (the kernel builds the header it reads).
            let not_ipv6 = packet.first().is_some_and(|b| b >> 4 != 6);
            let want = match () {
                _ if not_ipv6 => Verdict::BadIp,
                _ if absorb && clean => Verdict::Absorbed,
                _ => want,
            };
            for tags in 0..=2 {
                let frame = ethernet_as(0x86dd, packet, tags);
                let before = verdict_counts(&program);
                let action = program.run_on(&frame).unwrap();
                let after = verdict_counts(&program);
                let moved: Vec<Verdict> = after
                    .iter()
                    .filter(|(k, n)| before.get(k) != Some(n))
                    .map(|((_, v), _)| *v)
                    .collect();
                let not_vrrp = packet.len() < 40 || packet[6] != 112;
                let got = match moved.as_slice() {
                    [] if want == Verdict::BadIp && not_vrrp => Verdict::BadIp,
                    [one] => *one,
                    other => panic!("{name} ({tags} tags): counters {other:?}"),
                };
                assert_eq!(got, want, "{name} ({tags} tags)");
                *seen.entry(got).or_default() += 1;
                let ours = packet.get(41) == Some(&VRID);
                let expected_action = if got != Verdict::Accepted && got != Verdict::BadIp && ours {
                    XDP_DROP
                } else {
                    XDP_PASS
                };
                assert_eq!(action, expected_action, "{name} ({tags} tags): action");
                let recorded = (got == Verdict::Accepted && !absorb) || got == Verdict::Absorbed;
                if let Some(advert) = advert.as_ref().filter(|_| recorded) {
                    let (_, peer) = program
                        .peers()
                        .unwrap()
                        .into_iter()
                        .find(|(k, _)| *k == key)
                        .expect("a peer entry");
                    assert_eq!(&peer.master[..], &packet[8..24], "{name}");
                    assert_eq!(peer.priority, advert.priority, "{name}");
                    assert_eq!(usize::from(peer.addr_count), advert.addrs.len(), "{name}");
                }
            }
        }
    }
    eprintln!(
        "{} IPv6 packets × 4 configurations × 3 framings; verdicts: {seen:?}",
        corpus.len()
    );
    for verdict in [
        Verdict::Accepted,
        Verdict::Absorbed,
        Verdict::BadIp,
        Verdict::Ttl,
        Verdict::Version,
        Verdict::Type,
        Verdict::Length,
        Verdict::Checksum,
        Verdict::ZeroInterval,
        Verdict::UnknownVrid,
        Verdict::UnknownSource,
    ] {
        assert!(
            seen.contains_key(&verdict),
            "no IPv6 packet got {verdict:?}"
        );
    }
}

// The daemon with the program attached: a third host floods forged adverts at a pair.

use ha_agent::vrrp::packet::VRRP_GROUP_V4;
use ha_tests::{Daemon, Host, VrrpConf, daemons::agent_binary};

mod forge;

const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 200);

fn forged(host: &Host, vrid: u8, version: u8, pass: &[u8; 8]) -> Vec<u8> {
    forge::advert(host, VRRP_GROUP_V4, vrid, version, pass, &[VIP])
}

fn send(host: &Host, msg: &[u8], ttl: u32, count: usize) {
    forge::send(host, VRRP_GROUP_V4, msg, ttl, count);
}

#[test]
fn forged_adverts_are_dropped_in_the_kernel_and_change_nothing() {
    let t = Topology::new(&["a", "b", "c"]);
    let (a, b, c) = (t.host("a"), t.host("b"), t.host("c"));
    let start = |host, state, priority| {
        let conf = VrrpConf::seed(state, priority).render();
        Daemon::agent_args(host, t.dir(), &conf, &agent_binary(), &["--xdp", "native"])
    };
    let agent_a = start(a, "MASTER", 150);
    let agent_b = start(b, "BACKUP", 120);
    wait_until("A master, B backup", Duration::from_secs(10), || {
        (a.has_address("eth0", VIP) && agent_b.instance_field("master") == a.ip.to_string())
            .then_some(())
    });
    for agent in [&agent_a, &agent_b] {
        let xdp = &agent.status()["xdp"];
        assert_eq!(xdp["attached"]["eth0"], "native", "{xdp}");
    }
    let before = (
        agent_a.instance_field("last_transition"),
        agent_b.instance_field("last_transition"),
    );

    const N: usize = 500;
    let good = *b"1111\0\0\0\0";
    let wrong_pass = forged(c, 107, 2, b"2222\0\0\0\0");
    let mut bad_checksum = forged(c, 107, 2, &good);
    bad_checksum[6] ^= 0x5a;
    send(c, &wrong_pass, 255, N);
    send(c, &forged(c, 107, 2, &good), 64, N);
    send(c, &bad_checksum, 255, N);
    send(c, &forged(c, 107, 3, &good), 255, N);
    send(c, &forged(c, 9, 2, &good), 255, N);
    let expected = [
        ("auth_mismatch", N),
        ("ttl", N),
        ("checksum", N),
        ("version", N),
        ("unknown_vrid", N),
    ];
    for agent in [&agent_a, &agent_b] {
        let name = &agent.host.name;
        let (verdicts, _) = wait_until("the kernel's counts", Duration::from_secs(5), || {
            let v = agent.status()["xdp"]["verdicts"]["eth0"].clone();
            expected
                .iter()
                .all(|(k, n)| v[k].as_u64() == Some(*n as u64))
                .then_some(v)
        });
        eprintln!("{name}: kernel verdicts {verdicts}");
        // The dropped ones never reached the agent's socket; the unknown VRID did.
        let socket = agent.instance_field("adverts_dropped");
        for reason in ["auth_mismatch", "ttl", "checksum", "version"] {
            assert!(
                socket[reason].as_u64().unwrap_or(0) == 0,
                "{name}: {socket}"
            );
        }
        assert_eq!(
            agent.status()["unmatched_drops"]["unknown_vrid"].as_u64(),
            Some(N as u64),
            "{name}"
        );
    }
    // Nothing changed: same masters, same last transitions, the VIP where it was.
    assert_eq!(agent_a.instance_field("state"), "MASTER");
    assert_eq!(agent_b.instance_field("state"), "BACKUP");
    assert_eq!(
        (
            agent_a.instance_field("last_transition"),
            agent_b.instance_field("last_transition")
        ),
        before
    );
    assert!(a.has_address("eth0", VIP) && !b.has_address("eth0", VIP));
    // B's kernel follows A.
    let peers = agent_b.status()["xdp"]["peers"].clone();
    assert_eq!(peers[0]["master"], a.ip.to_string(), "{peers}");
    assert_eq!(peers[0]["priority"], 150, "{peers}");
}

/// Context switches of every thread of `pid` so far: each is a wake-up.
fn wakeups(pid: u32) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status =
            std::fs::read_to_string(task.unwrap().path().join("status")).unwrap_or_default();
        total += status
            .lines()
            .filter(|l| l.contains("ctxt_switches"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    total
}

/// `n` instances (VRIDs 1..=n, one VIP each) at VRRPv3 10 ms.
fn many(state: &'static str, priority: u8, n: u8) -> String {
    let instances: Vec<VrrpConf> = (1..=n)
        .map(|i| VrrpConf {
            name: format!("VI_{i}"),
            vrid: i,
            vips: vec![format!("192.168.2.{}", 100 + u16::from(i))],
            ..VrrpConf::v3(state, priority, "0.01")
        })
        .collect();
    ha_tests::daemons::config(&instances)
}

#[test]
fn a_backup_in_xdp_mode_sleeps_through_its_masters_adverts() {
    const N: u8 = 20;
    const WINDOW: Duration = Duration::from_secs(3);
    let t = Topology::new(&["a", "b", "c"]);
    let (a, b) = (t.host("a"), t.host("b"));
    let interval = Duration::from_millis(10);
    let mdi = ha_tests::daemons::master_down_interval(3, interval, 120);
    let mut agent_a = Daemon::agent(a, t.dir(), &many("MASTER", 150, N));
    let all_backup = |agent: &Daemon| {
        let Some(status) = agent.try_status() else {
            return false;
        };
        let instances = status["instances"].as_array().cloned().unwrap_or_default();
        instances.len() == usize::from(N)
            && instances
                .iter()
                .all(|i| i["state"] == "BACKUP" && i["master"] == a.ip.to_string())
    };
    let all_master = |agent: &Daemon| {
        let Some(status) = agent.try_status() else {
            return false;
        };
        let instances = status["instances"].as_array().cloned().unwrap_or_default();
        instances.len() == usize::from(N) && instances.iter().all(|i| i["state"] == "MASTER")
    };
    wait_until("A master everywhere", Duration::from_secs(10), || {
        all_master(&agent_a).then_some(())
    });
    // The same backup with its adverts on the socket, then absorbed in the kernel.
    let mut woken = Vec::new();
    let mut agent_b_xdp = None;
    for mode in ["off", "native"] {
        let mut agent_b = Daemon::agent_args(
            b,
            t.dir(),
            &many("BACKUP", 120, N),
            &agent_binary(),
            &["--xdp", mode],
        );
        wait_until("B backup of A everywhere", Duration::from_secs(10), || {
            all_backup(&agent_b).then_some(())
        });
        std::thread::sleep(mdi * 2);
        let (before, frames_before) = (wakeups(agent_b.process.pid()), t.frames_from("a"));
        std::thread::sleep(WINDOW);
        let (woke, adverts) = (
            wakeups(agent_b.process.pid()) - before,
            t.frames_from("a") - frames_before,
        );
        assert!(all_backup(&agent_b), "{}", agent_b.log_text());
        assert!(
            !agent_b.log_text().contains("-> MASTER"),
            "{}",
            agent_b.log_text()
        );
        eprintln!("--xdp {mode}: B woke {woke} times while A sent {adverts} frames");
        if mode == "native" {
            let verdicts = agent_b.status()["xdp"]["verdicts"]["eth0"].clone();
            assert!(
                verdicts["absorbed"].as_u64().unwrap_or(0) >= adverts / 2,
                "{verdicts}"
            );
            // The timers are judged against the kernel's record about once per
            // Master_Down_Interval minus an interval, for all instances at once; never per
            // advert.
            let sweeps = WINDOW.as_secs_f64() / (mdi - interval).as_secs_f64();
            assert!(
                (woke as f64) < 2.0 * sweeps && woke * 10 < adverts,
                "{woke} wake-ups for {adverts} adverts ({sweeps:.0} sweeps expected)"
            );
        }
        woken.push(woke);
        if mode == "off" {
            agent_b.stop();
        } else {
            agent_b_xdp = Some(agent_b);
        }
    }
    let agent_b = agent_b_xdp.unwrap();
    let (socket_woke, xdp_woke) = (woken[0], woken[1]);
    assert!(
        xdp_woke * 2 < socket_woke,
        "XDP {xdp_woke} vs socket {socket_woke} wake-ups"
    );

    // The master dies: the sleeping backup notices from the kernel's record and takes over.
    t.crash("a", &mut agent_a.process);
    let (_, took) = wait_until(
        "B master everywhere",
        mdi * 3 + Duration::from_secs(2),
        || all_master(&agent_b).then_some(()),
    );
    eprintln!("A crashed: B master of all {N} after {took:?} (MDI {mdi:?})");
    assert!(b.has_address(
        "eth0",
        "192.168.2.101".parse::<std::net::Ipv4Addr>().unwrap()
    ));

    // A returns and preempts: B, master (adverts on its socket), yields and sleeps again.
    t.set_cable("a", true);
    let _agent_a = Daemon::agent(a, t.dir(), &many("MASTER", 150, N));
    wait_until("B backup again", Duration::from_secs(10), || {
        all_backup(&agent_b).then_some(())
    });
    std::thread::sleep(mdi * 5);
    assert!(all_backup(&agent_b), "{}", agent_b.log_text());
    let verdicts = agent_b.status()["xdp"]["verdicts"]["eth0"].clone();
    assert!(verdicts["absorbed"].as_u64().unwrap_or(0) > 0, "{verdicts}");
}

use ha_tests::capture::{AddrMonitor, Frame, Observer};

/// Where the driver takes XDP frames (a veth whose peer runs GRO, as on the bench's LAN), a
/// master's adverts leave from the kernel: keepalived follows them as a backup, an
/// observer counts every one, and the master's status says so. On the default LAN (the
/// peer without GRO) the same master keeps the socket.
#[test]
fn a_master_transmits_its_adverts_from_the_kernel_where_the_driver_takes_xdp_frames() {
    const N: u8 = 20;
    const WINDOW: Duration = Duration::from_secs(3);
    let t = Topology::new(&["a", "b", "c"]);
    t.deliver_on_threads();
    let (a, b) = (t.host("a"), t.host("b"));
    let agent_a = Daemon::agent(a, t.dir(), &many("MASTER", 150, N));
    let mut keepalived_b = Daemon::keepalived(b, t.dir(), &many("BACKUP", 120, N));
    let vip = |i: u8| {
        format!("192.168.2.{}", 100 + u16::from(i))
            .parse::<Ipv4Addr>()
            .unwrap()
    };
    let (status, _) = wait_until(
        "A master of all, from the kernel",
        Duration::from_secs(10),
        || {
            let status = agent_a.try_status()?;
            let instances = status["instances"].as_array()?;
            (instances.len() == usize::from(N)
                && instances.iter().all(|i| i["state"] == "MASTER")
                && status["xdp"]["transmitted"].as_u64()? > 0)
                .then_some(status)
        },
    );
    assert_eq!(status["xdp"]["transmit"]["eth0"], "kernel", "{status}");
    let monitor = AddrMonitor::start(b).unwrap();
    let observer = Observer::start_filtered(t.host("c"), t.dir(), "kernel-tx", "vrrp").unwrap();
    let sent_before = status["xdp"]["transmitted"].as_u64().unwrap();
    std::thread::sleep(WINDOW);
    let status = agent_a.status();
    let sent = status["xdp"]["transmitted"].as_u64().unwrap() - sent_before;
    // /metrics says it too (rendered from the same status).
    let metrics =
        ha_agent::ctl::metrics::render(&serde_json::from_value(status.clone()).unwrap()).unwrap();
    let counted = format!(
        "ha_agent_xdp_transmitted_total {}",
        status["xdp"]["transmitted"]
    );
    assert!(metrics.contains(&counted), "{metrics}");
    let seen = observer
        .frames()
        .unwrap()
        .into_iter()
        .filter(|f| matches!(f, Frame::Advert { src, priority: 150, .. } if *src == a.ip))
        .count() as u64;
    let expected = u64::from(N) * 100 * WINDOW.as_secs();
    eprintln!(
        "{sent} adverts transmitted from the kernel in {WINDOW:?}, {seen} seen on the LAN (expected {expected})"
    );
    assert!(
        sent >= expected * 9 / 10,
        "{sent} sent, {expected} expected"
    );
    assert!(
        seen >= expected * 8 / 10,
        "{seen} seen, {expected} expected"
    );
    assert!(
        monitor.events().is_empty(),
        "keepalived took a VIP: {:?}",
        monitor.events()
    );
    assert!((1..=N).all(|i| !b.has_address("eth0", vip(i))));

    // The driver stops taking XDP frames: the kernel says so, and the master moves to its
    // socket before keepalived misses an advert.
    t.set_gro("a", false);
    let (_, after) = wait_until("A back on its socket", Duration::from_secs(2), || {
        (agent_a.try_status()?["xdp"]["transmit"]["eth0"] == "socket").then_some(())
    });
    eprintln!("back on the socket {after:?} after the change");
    let mdi = ha_tests::daemons::master_down_interval(3, Duration::from_millis(10), 120);
    std::thread::sleep(mdi * 10);
    assert!(
        monitor.events().is_empty(),
        "keepalived took a VIP: {:?}",
        monitor.events()
    );
    t.set_gro("a", true);
    wait_until("A on the kernel again", Duration::from_secs(2), || {
        (agent_a.try_status()?["xdp"]["transmit"]["eth0"] == "kernel").then_some(())
    });
    std::thread::sleep(mdi * 10);
    assert!(
        monitor.events().is_empty(),
        "keepalived took a VIP: {:?}",
        monitor.events()
    );

    // keepalived followed them: the master gone, it takes over.
    drop(agent_a);
    wait_until("keepalived master of all", Duration::from_secs(5), || {
        (1..=N).all(|i| b.has_address("eth0", vip(i))).then_some(())
    });
    keepalived_b.stop();

    // The default LAN: the bridge's ports run no GRO, so a redirect would be lost.
    let plain = Topology::new(&["a", "b"]);
    let agent = Daemon::agent(plain.host("a"), plain.dir(), &many("MASTER", 150, 1));
    let (status, _) = wait_until("the program attached", Duration::from_secs(10), || {
        let status = agent.try_status()?;
        status["xdp"]["attached"]["eth0"].as_str()?;
        Some(status)
    });
    assert_eq!(status["xdp"]["transmit"]["eth0"], "socket", "{status}");
    assert_eq!(status["xdp"]["transmitted"], 0, "{status}");
}

#[test]
fn a_vip_claimed_by_another_mac_is_a_split_brain_answered_at_once() {
    split_brain("native");
}

/// Without XDP the agent watches ARP for its held VIPs on a filtered packet socket.
#[test]
fn a_vip_claimed_by_another_mac_is_a_split_brain_answered_at_once_without_xdp() {
    split_brain("off");
}

fn split_brain(xdp: &str) {
    let t = Topology::new(&["a", "b", "c", "d"]);
    let (a, b, c, d) = (t.host("a"), t.host("b"), t.host("c"), t.host("d"));
    let start = |host, state, priority| {
        let conf = VrrpConf::seed(state, priority).render();
        Daemon::agent_args(host, t.dir(), &conf, &agent_binary(), &["--xdp", xdp])
    };
    let agent_a = start(a, "MASTER", 150);
    let agent_b = start(b, "BACKUP", 120);
    let mac = |h: &Host| {
        h.sh(&["cat", "/sys/class/net/eth0/address"])
            .trim()
            .to_owned()
    };
    let vip_entry = |agent: &Daemon| {
        agent
            .try_status()
            .map_or(serde_json::Value::Null, |s| s["xdp"]["vips"][0].clone())
    };
    let with_xdp = xdp != "off";
    if with_xdp {
        // The backup's kernel saw the master's gratuitous ARP: it knows who holds the VIP.
        let (entry, _) = wait_until(
            "B records A as the VIP's holder",
            Duration::from_secs(10),
            || {
                let entry = vip_entry(&agent_b);
                (entry["claimed_by"] == mac(a)).then_some(entry)
            },
        );
        assert_eq!(entry["held"], false, "{entry}");
    } else {
        wait_until("A master, B backup", Duration::from_secs(10), || {
            (a.has_address("eth0", VIP) && agent_b.instance_field("master") == a.ip.to_string())
                .then_some(())
        });
        assert_eq!(agent_a.status()["receive_path"]["eth0"], "sockets");
    }
    assert!(d.ping_once(VIP));
    assert_eq!(d.arp_entry(VIP), Some(mac(a)));
    // The backup's and the observer's own ARP traffic claims nothing.
    assert_eq!(agent_a.instance_field("arp_conflicts"), 0);

    // Another node brings the VIP up by hand and announces it.
    c.sh(&["ip", "addr", "add", "192.168.2.200/32", "dev", "eth0"]);
    c.sh(&["arping", "-U", "-c", "1", "-I", "eth0", "192.168.2.200"]);
    wait_until("A counts the conflict", Duration::from_secs(5), || {
        (agent_a.instance_field("arp_conflicts").as_u64() >= Some(1)).then_some(())
    });
    let log = agent_a.log_text();
    assert!(
        log.contains("split brain") && log.contains(&mac(c)),
        "{log}"
    );
    if with_xdp {
        let entry = vip_entry(&agent_a);
        assert_eq!(
            (entry["held"].clone(), entry["claimed_by"].clone()),
            (true.into(), mac(c).into()),
            "{entry}"
        );
    }
    // A answered with gratuitous ARP at once: d's cache points at A again.
    wait_until("d's ARP entry back at A", Duration::from_secs(2), || {
        (d.arp_entry(VIP) == Some(mac(a))).then_some(())
    });
    assert_eq!(agent_a.instance_field("state"), "MASTER");

    // An unsolicited ARP reply claiming it, once A may answer again (at most once a second).
    std::thread::sleep(Duration::from_millis(1100));
    let before = agent_a
        .instance_field("arp_conflicts")
        .as_u64()
        .unwrap_or(0);
    c.sh(&["arping", "-A", "-c", "1", "-I", "eth0", "192.168.2.200"]);
    wait_until("A counts the reply", Duration::from_secs(5), || {
        (agent_a.instance_field("arp_conflicts").as_u64() > Some(before)).then_some(())
    });
    wait_until("d's ARP entry back at A", Duration::from_secs(2), || {
        (d.arp_entry(VIP) == Some(mac(a))).then_some(())
    });
    // A claim of an address A does not hold is not a conflict.
    let counted = agent_a.instance_field("arp_conflicts");
    c.sh(&["ip", "addr", "add", "192.168.2.77/32", "dev", "eth0"]);
    c.sh(&["arping", "-U", "-c", "2", "-I", "eth0", "192.168.2.77"]);
    assert_eq!(agent_a.instance_field("arp_conflicts"), counted);
    c.sh(&["ip", "addr", "del", "192.168.2.77/32", "dev", "eth0"]);
    c.sh(&["ip", "addr", "del", "192.168.2.200/32", "dev", "eth0"]);
}

/// The id of the XDP program attached to the host's eth0, if any.
fn xdp_prog(host: &Host) -> Option<u64> {
    let out = host.sh(&["ip", "-j", "link", "show", "dev", "eth0"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    json[0]["xdp"]["prog"]["id"].as_u64()
}

#[test]
fn a_second_agent_cannot_take_over_the_xdp_hook() {
    let t = Topology::new(&["a"]);
    let a = t.host("a");
    let conf = |state, priority| VrrpConf::seed(state, priority).render();
    let first = Daemon::agent_args(
        a,
        t.dir(),
        &conf("MASTER", 150),
        &agent_binary(),
        &["--xdp", "native"],
    );
    wait_until(
        "the first agent's XDP program",
        Duration::from_secs(10),
        || {
            first
                .try_status()
                .filter(|s| s["xdp"]["attached"]["eth0"] == "native")
                .map(|_| ())
        },
    );
    let before = xdp_prog(a);
    assert!(before.is_some());
    // A second agent on the same interface (a mistake, say a second unit) is refused.
    let second_dir = t.dir().join("second");
    std::fs::create_dir_all(&second_dir).unwrap();
    let mut second = Daemon::agent_args(
        a,
        &second_dir,
        &conf("MASTER", 150),
        &agent_binary(),
        &["--xdp", "native"],
    );
    let status = second
        .process
        .wait_timeout(Duration::from_secs(10))
        .expect("the second agent exits");
    assert!(!status.success());
    let log = second.log_text();
    assert!(log.contains("attaching XDP to eth0"), "{log}");
    // `auto` falls back to the sockets instead, with a warning that says why.
    let other = VrrpConf {
        vrid: 108,
        vips: vec!["192.168.2.201".into()],
        ..VrrpConf::seed("BACKUP", 100)
    };
    let auto_dir = t.dir().join("auto");
    std::fs::create_dir_all(&auto_dir).unwrap();
    let auto = Daemon::agent_args(
        a,
        &auto_dir,
        &other.render(),
        &agent_binary(),
        &["--xdp", "auto"],
    );
    // It starts on the sockets while the program loads beside its loop.
    let (status, _) = wait_until("the auto agent settled", Duration::from_secs(10), || {
        auto.try_status().filter(|s| s["xdp_unused"].is_string())
    });
    assert!(status["xdp"].is_null(), "{status}");
    assert_eq!(status["receive_path"]["eth0"], "sockets", "{status}");
    let why = status["xdp_unused"].as_str().unwrap();
    assert!(why.contains("attaching XDP to eth0"), "{why}");
    assert!(
        auto.status_text()
            .contains("eth0: sockets (XDP not used: attaching XDP to eth0"),
        "{}",
        auto.status_text()
    );
    let log = auto.log_text();
    assert!(
        log.contains("XDP not used") && log.contains("attaching XDP to eth0"),
        "{log}"
    );
    // The first one's program is still the one attached, and its agent still runs.
    assert_eq!(xdp_prog(a), before);
    assert!(first.try_status().is_some());
}

#[test]
fn a_reload_updates_the_kernel_maps() {
    let t = Topology::new(&["a", "c"]);
    let (a, c) = (t.host("a"), t.host("c"));
    let first = VrrpConf::seed("BACKUP", 120);
    let second = VrrpConf {
        name: "VI_2".into(),
        vrid: 108,
        vips: vec!["192.168.2.201".into()],
        ..VrrpConf::seed("BACKUP", 120)
    };
    let agent = Daemon::agent_args(
        a,
        t.dir(),
        &first.render(),
        &agent_binary(),
        &["--xdp", "native"],
    );
    let vips = |agent: &Daemon| -> Vec<String> {
        agent.try_status().map_or(Vec::new(), |s| {
            s["xdp"]["vips"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| v["vip"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
    };
    wait_until(
        "the first VIP in the kernel",
        Duration::from_secs(10),
        || (vips(&agent) == ["192.168.2.200"]).then_some(()),
    );
    // VRID 108 is not ours yet: a forged advert for it is someone else's business.
    let forged_108 = forge::advert(c, VRRP_GROUP_V4, 108, 2, b"2222\0\0\0\0", &[]);
    send(c, &forged_108, 255, 10);
    let verdict = |name: &str| agent.status()["xdp"]["verdicts"]["eth0"][name].as_u64();
    wait_until("10 unknown VRIDs", Duration::from_secs(5), || {
        (verdict("unknown_vrid") == Some(10)).then_some(())
    });

    // Replace VRID 107 by VRID 108 and reload.
    let conf = t.dir().join("ha-agent-a.conf");
    std::fs::write(&conf, ha_tests::daemons::config(&[second])).unwrap();
    agent.process.signal(nix::sys::signal::Signal::SIGHUP);
    wait_until(
        "the kernel's VIPs follow the reload",
        Duration::from_secs(10),
        || (vips(&agent) == ["192.168.2.201"]).then_some(()),
    );
    send(c, &forged_108, 255, 10);
    wait_until(
        "VRID 108 checked in the kernel",
        Duration::from_secs(5),
        || (verdict("auth_mismatch") == Some(10)).then_some(()),
    );
    assert_eq!(verdict("unknown_vrid"), Some(10));
}

/// Four agents loading the program at once beside a pair at 10 ms: the master's loop keeps
/// its pace (its own record of how late it acted on due timers) and the backup never takes
/// over. (Loaded on the loop at its SCHED_RR priority, the loads kept this master silent for
/// ~100 ms, a round-robin slice, on a 2-CPU machine.) The gap between its adverts on the
/// wire is reported: an observer's capture is delivered by the same loaded kernel, and
/// the other tests of this file run beside it, so it is no bound of the master's.
#[test]
fn agents_loading_the_program_do_not_hold_up_another_agents_adverts() {
    use ha_tests::capture::{Observer, advert_gaps};
    let loaders = ["d", "e", "f", "g"];
    let t = Topology::new(&["a", "b", "c", "d", "e", "f", "g"]);
    let (a, b) = (t.host("a"), t.host("b"));
    let interval = Duration::from_millis(10);
    let mdi = ha_tests::daemons::master_down_interval(3, interval, 120);
    let agent_a = Daemon::agent(a, t.dir(), &VrrpConf::v3("MASTER", 150, "0.01").render());
    let agent_b = Daemon::agent(b, t.dir(), &VrrpConf::v3("BACKUP", 120, "0.01").render());
    let settled = |agent: &Daemon, state: &str| {
        agent.try_status().is_some_and(|s| {
            s["instances"][0]["state"] == state && s["receive_path"]["eth0"] == "xdp native"
        })
    };
    wait_until(
        "A master, B backup, both on XDP",
        Duration::from_secs(10),
        || (settled(&agent_a, "MASTER") && settled(&agent_b, "BACKUP")).then_some(()),
    );
    let observer =
        Observer::start_filtered(t.host("c"), t.dir(), "loads", "ip proto 112").expect("observer");
    std::thread::sleep(Duration::from_millis(200));
    let takeovers = || agent_b.log_text().matches("-> MASTER").count();
    let takeovers_before = takeovers();
    let worst_late = || {
        agent_a.status()["timer_lateness"]["max_ms"]
            .as_f64()
            .unwrap_or(0.0)
    };
    let late_before = worst_late();
    let others: Vec<Daemon> = loaders
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let conf = VrrpConf {
                vrid: 10 + i as u8,
                vips: vec![format!("192.168.2.{}", 150 + i)],
                ..VrrpConf::v3("BACKUP", 100, "0.01")
            };
            Daemon::agent(t.host(name), t.dir(), &conf.render())
        })
        .collect();
    wait_until(
        "the four programs attached",
        Duration::from_secs(20),
        || {
            others
                .iter()
                .all(|o| {
                    o.try_status()
                        .is_some_and(|s| s["receive_path"]["eth0"] == "xdp native")
                })
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_millis(200));
    let loads: Vec<f64> = others
        .iter()
        .filter_map(|o| {
            let log = o.log_text();
            let at = log.find("load_ms=")? + "load_ms=".len();
            log.get(at..)?.split_whitespace().next()?.parse().ok()
        })
        .collect();
    let (gaps, _) = advert_gaps(&observer.frames().unwrap(), a.ip);
    let largest = gaps.iter().copied().fold(0.0, f64::max);
    let late = worst_late();
    eprintln!(
        "XDP loads {loads:?} ms; A's largest advert gap meanwhile {largest:.1} ms over {} adverts, its loop at worst {late:.1} ms late (MDI {:.1} ms)",
        gaps.len() + 1,
        mdi.as_secs_f64() * 1e3
    );
    assert!(gaps.len() > 20, "too few adverts seen: {}", gaps.len());
    // A new worst lateness of A's loop, beyond the backup's down timer, is the stall.
    assert!(
        late == late_before || late < mdi.as_secs_f64() * 1e3,
        "A's loop acted {late:.1} ms late while the others loaded"
    );
    assert_eq!(agent_b.instance_field("state"), "BACKUP");
    assert_eq!(takeovers(), takeovers_before, "{}", agent_b.log_text());
}
