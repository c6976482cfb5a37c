//! The receive step: an IP packet from an advert socket to (instance, advert) or a drop
//! reason, with every RFC 3768/5798 §7.1 check in order. Pure, so the socket path, tests and
//! fuzzing run the same code (and the XDP path must agree with it).

use std::net::IpAddr;

use super::packet::{
    Accepted, Advert, DropReason, Expect, IPPROTO_VRRP, IpHeader, TTL, check_advert,
};

/// An advert that passed every check, for instance `index`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub index: usize,
    pub advert: Advert,
    pub src: IpAddr,
    pub accepted: Accepted,
}

/// A dropped packet, counted on its instance when its VRID names one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dropped {
    pub index: Option<usize>,
    pub reason: DropReason,
    /// The sender, once the IP header could be read.
    pub from: Option<IpAddr>,
}

/// What the receive step needs to know of the instance a VRID names on this socket.
pub struct Target<'a> {
    pub index: usize,
    /// Our own address: adverts from it are our own, looped back.
    pub primary_ip: IpAddr,
    /// Unicast peers: their adverts may have crossed routers, so the TTL is not checked
    /// (keepalived's rule; RFC 5798 knows only multicast).
    pub unicast: bool,
    pub expect: Expect<'a>,
}

/// Checks `packet` (an IPv4 packet as a raw socket reads it, or an IPv6 one: its fixed
/// header and the VRRP message). `instance` finds the instance
/// configured for a VRID on the socket the packet came from.
pub fn receive<'a>(
    packet: &[u8],
    instance: impl FnOnce(u8) -> Option<Target<'a>>,
) -> Result<Delivery, Dropped> {
    let ip = IpHeader::parse(packet).map_err(|reason| Dropped {
        index: None,
        reason,
        from: None,
    })?;
    let drop = |index, reason| Dropped {
        index,
        reason,
        from: Some(ip.src),
    };
    if ip.protocol != IPPROTO_VRRP {
        return Err(drop(None, DropReason::BadIp));
    }
    let msg = ip.payload(packet);
    // The VRID sits in byte 1 whatever else is wrong: count drops on their instance.
    let target = msg.get(1).and_then(|vrid| instance(*vrid));
    let index = target.as_ref().map(|t| t.index);
    if ip.ttl != TTL && !target.as_ref().is_some_and(|t| t.unicast) {
        return Err(drop(index, DropReason::Ttl));
    }
    let (advert, _form) = Advert::parse(msg, ip.src, ip.dst).map_err(|r| drop(index, r))?;
    let target = target.ok_or(drop(None, DropReason::UnknownVrid))?;
    if ip.src == target.primary_ip {
        return Err(drop(index, DropReason::Own));
    }
    let accepted = check_advert(&advert, ip.src, &target.expect).map_err(|r| drop(index, r))?;
    Ok(Delivery {
        index: target.index,
        advert,
        src: ip.src,
        accepted,
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::vrrp::packet::{ChecksumForm, Interval, VRRP_GROUP_V4, checksum};

    const PEER: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 11);
    const US: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 10);
    const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 200);
    const VIP2: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 201);
    const PASS: [u8; 8] = *b"1111\0\0\0\0";

    fn advert(priority: u8, addrs: Vec<Ipv4Addr>) -> Advert {
        Advert {
            vrid: 107,
            priority,
            interval: Interval::Seconds(1),
            auth: Some((1, PASS)),
            addrs: addrs.into_iter().map(IpAddr::from).collect(),
        }
    }

    /// An IPv4 packet carrying `msg` from `src`, with `pad` bytes of link-layer padding.
    fn ip_packet(src: Ipv4Addr, ttl: u8, msg: &[u8], pad: usize) -> Vec<u8> {
        let total = (20 + msg.len()) as u16;
        let mut p = vec![0x45, 0xc0];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0, ttl, IPPROTO_VRRP, 0, 0]);
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&VRRP_GROUP_V4.octets());
        p.extend_from_slice(msg);
        p.extend(std::iter::repeat_n(0, pad));
        p
    }

    fn wire(a: &Advert) -> Vec<u8> {
        let mut msg = Vec::new();
        a.emit(&mut msg, ChecksumForm::Message, PEER, VRRP_GROUP_V4);
        msg
    }

    fn run(packet: &[u8], skip_from: Option<Ipv4Addr>) -> Result<Delivery, Dropped> {
        run_as(packet, skip_from, false)
    }

    fn run_as(
        packet: &[u8],
        skip_from: Option<Ipv4Addr>,
        unicast: bool,
    ) -> Result<Delivery, Dropped> {
        let addrs = [IpAddr::from(VIP)];
        receive(packet, |vrid| {
            (vrid == 107).then_some(Target {
                index: 3,
                primary_ip: US.into(),
                unicast,
                expect: Expect {
                    version: 2,
                    interval: Interval::Seconds(1),
                    auth_pass: Some(&PASS),
                    addrs: &addrs,
                    skip_addr_check_from: skip_from.map(IpAddr::from),
                    sources: None,
                    strict: true,
                },
            })
        })
    }

    fn reason(result: Result<Delivery, Dropped>) -> Option<(Option<usize>, DropReason)> {
        result.err().map(|d| (d.index, d.reason))
    }

    #[test]
    fn a_good_advert_is_delivered_to_its_instance_padding_and_all() {
        let good = advert(150, vec![VIP]);
        let delivery = run(&ip_packet(PEER, 255, &wire(&good), 6), None).unwrap();
        assert_eq!(
            delivery,
            Delivery {
                index: 3,
                advert: good,
                src: PEER.into(),
                accepted: Accepted::Clean
            }
        );
    }

    /// As keepalived: unicast adverts may have crossed routers.
    #[test]
    fn unicast_adverts_are_not_held_to_ttl_255() {
        let good = wire(&advert(150, vec![VIP]));
        assert!(run_as(&ip_packet(PEER, 62, &good, 0), None, true).is_ok());
        assert_eq!(
            reason(run_as(&ip_packet(PEER, 62, &good, 0), None, false)),
            Some((Some(3), DropReason::Ttl))
        );
    }

    #[test]
    fn drops_are_counted_on_the_instance_their_vrid_names() {
        let good = wire(&advert(150, vec![VIP]));
        assert_eq!(
            reason(run(&ip_packet(PEER, 254, &good, 0), None)),
            Some((Some(3), DropReason::Ttl))
        );
        assert_eq!(
            reason(run(&ip_packet(US, 255, &good, 0), None)),
            Some((Some(3), DropReason::Own))
        );
        let mut other_vrid = advert(150, vec![VIP]);
        other_vrid.vrid = 9;
        assert_eq!(
            reason(run(&ip_packet(PEER, 255, &wire(&other_vrid), 0), None)),
            Some((None, DropReason::UnknownVrid))
        );
        let mut udp = ip_packet(PEER, 255, &good, 0);
        udp[9] = 17;
        assert_eq!(reason(run(&udp, None)), Some((None, DropReason::BadIp)));
    }

    #[test]
    fn trailing_bytes_inside_the_ip_length_are_a_length_drop() {
        // Zero bytes leave the checksum valid: only the exact length catches them.
        let mut long = wire(&advert(150, vec![VIP]));
        long.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(checksum(&long, None), 0);
        assert_eq!(
            reason(run(&ip_packet(PEER, 255, &long, 0), None)),
            Some((Some(3), DropReason::Length))
        );
    }

    #[test]
    fn the_address_list_must_match_unless_the_owner_sends_it() {
        for addrs in [vec![], vec![VIP2], vec![VIP, VIP2], vec![VIP, VIP]] {
            let packet = ip_packet(PEER, 255, &wire(&advert(150, addrs.clone())), 0);
            assert_eq!(
                reason(run(&packet, None)),
                Some((Some(3), DropReason::AddressList)),
                "{addrs:?}"
            );
            // vrrp_skip_check_adv_addr: the master we follow is not checked again...
            assert_eq!(run(&packet, Some(PEER)).unwrap().accepted, Accepted::Clean);
            // ...anyone else is.
            assert_eq!(
                reason(run(&packet, Some(US))),
                Some((Some(3), DropReason::AddressList))
            );
            let owner = ip_packet(PEER, 255, &wire(&advert(255, addrs)), 0);
            assert_eq!(
                run(&owner, None).unwrap().accepted,
                Accepted::OwnerAddressMismatch
            );
        }
    }
}

#[cfg(test)]
mod ipv6 {
    use std::net::Ipv6Addr;

    use super::*;
    use crate::vrrp::packet::{ChecksumForm, Interval, VRRP_GROUP_V6};

    const PEER: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x0b);
    const US: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x0a);
    const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x64);

    fn packet(src: Ipv6Addr, hop_limit: u8, next_header: u8) -> Vec<u8> {
        let advert = Advert {
            vrid: 7,
            priority: 100,
            interval: Interval::Centis(100),
            auth: None,
            addrs: vec![VIP.into()],
        };
        let mut msg = Vec::new();
        advert.emit(&mut msg, ChecksumForm::PseudoHeader, src, VRRP_GROUP_V6);
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(msg.len() as u16).to_be_bytes());
        p.extend_from_slice(&[next_header, hop_limit]);
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&VRRP_GROUP_V6.octets());
        p.extend_from_slice(&msg);
        p
    }

    fn run(packet: &[u8]) -> Result<Delivery, Dropped> {
        let addrs = [IpAddr::from(VIP)];
        receive(packet, |vrid| {
            (vrid == 7).then_some(Target {
                index: 0,
                primary_ip: US.into(),
                unicast: false,
                expect: Expect {
                    version: 3,
                    interval: Interval::Centis(100),
                    auth_pass: None,
                    addrs: &addrs,
                    skip_addr_check_from: None,
                    sources: None,
                    strict: true,
                },
            })
        })
    }

    #[test]
    fn ipv6_adverts_pass_the_same_checks() {
        let good = run(&packet(PEER, 255, IPPROTO_VRRP)).unwrap();
        assert_eq!((good.src, good.accepted), (PEER.into(), Accepted::Clean));
        let reason = |p: Vec<u8>| run(&p).err().map(|d| d.reason);
        assert_eq!(
            reason(packet(PEER, 254, IPPROTO_VRRP)),
            Some(DropReason::Ttl)
        );
        assert_eq!(reason(packet(US, 255, IPPROTO_VRRP)), Some(DropReason::Own));
        // Behind a hop-by-hop options header: not an advert this agent reads.
        assert_eq!(reason(packet(PEER, 255, 0)), Some(DropReason::BadIp));
    }
}
