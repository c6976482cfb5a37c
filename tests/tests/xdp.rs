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
