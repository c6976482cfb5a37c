//! VRRP adverts crafted in a test and sent from a host's raw socket: forgeries and strangers
//! for the receive checks (shared by the test files that `mod forge;` it).

use std::{net::Ipv4Addr, time::Duration};

use ha_agent::vrrp::packet::{Advert, ChecksumForm, Interval};
use ha_common::vrrp::AUTH_PASS;
use ha_tests::Host;

/// Sends `msg` (a VRRP message) `count` times from `host` to `dst` (the VRRP group or a
/// unicast address) with `ttl`.
pub fn send(host: &Host, dst: Ipv4Addr, msg: &[u8], ttl: u32, count: usize) {
    host.in_netns(|| {
        use socket2::{Domain, Protocol, SockAddr, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112))).unwrap();
        socket.bind_device(Some(b"eth0")).unwrap();
        socket.set_multicast_ttl_v4(ttl).unwrap();
        socket.set_ttl_v4(ttl).unwrap();
        let dst = SockAddr::from(std::net::SocketAddrV4::new(dst, 0));
        for _ in 0..count {
            socket.send_to(msg, &dst).unwrap();
            // Paced, so that no receive queue overflows and every frame is counted.
            std::thread::sleep(Duration::from_micros(200));
        }
    });
}

/// An advert at priority 200 for `vips`, from `host` to `dst`: VRRPv2 (1 s, PASS `pass`) or
/// VRRPv3 (1 s).
pub fn advert(
    host: &Host,
    dst: Ipv4Addr,
    vrid: u8,
    version: u8,
    pass: &[u8; 8],
    vips: &[Ipv4Addr],
) -> Vec<u8> {
    let advert = Advert {
        vrid,
        priority: 200,
        interval: if version == 2 {
            Interval::Seconds(1)
        } else {
            Interval::Centis(100)
        },
        auth: (version == 2).then_some((AUTH_PASS, *pass)),
        addrs: vips.iter().map(|&a| a.into()).collect(),
    };
    let mut msg = Vec::new();
    advert.emit(&mut msg, ChecksumForm::Message, host.ip, dst);
    msg
}
