//! The receive step: an IPv4 packet from an advert socket to (instance, advert) or a drop
//! reason, with every RFC 3768/5798 §7.1 check in order. Pure, so the socket path, tests and
//! fuzzing run the same code (and the XDP path must agree with it).

use std::net::Ipv4Addr;

use super::packet::{
    Accepted, Advert, DropReason, Expect, IPPROTO_VRRP, Ipv4Header, TTL, check_advert,
};

/// An advert that passed every check, for instance `index`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub index: usize,
    pub advert: Advert,
    pub src: Ipv4Addr,
    pub accepted: Accepted,
}

/// A dropped packet, counted on its instance when its VRID names one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dropped {
    pub index: Option<usize>,
    pub reason: DropReason,
    /// The sender, once the IP header could be read.
    pub from: Option<Ipv4Addr>,
}

/// What the receive step needs to know of the instance a VRID names on this socket.
pub struct Target<'a> {
    pub index: usize,
    /// Our own address: adverts from it are our own, looped back.
    pub primary_ip: Ipv4Addr,
    /// Unicast peers: their adverts may have crossed routers, so the TTL is not checked
    /// (keepalived's rule; RFC 5798 knows only multicast).
    pub unicast: bool,
    pub expect: Expect<'a>,
}

/// Checks `packet` (an IPv4 packet as a raw socket reads it). `instance` finds the instance
/// configured for a VRID on the socket the packet came from.
pub fn receive<'a>(
    packet: &[u8],
    instance: impl FnOnce(u8) -> Option<Target<'a>>,
) -> Result<Delivery, Dropped> {
    let ip = Ipv4Header::parse(packet).map_err(|reason| Dropped {
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
            addrs,
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
        let addrs = [VIP];
        receive(packet, |vrid| {
            (vrid == 107).then_some(Target {
                index: 3,
                primary_ip: US,
                unicast,
                expect: Expect {
                    version: 2,
                    interval: Interval::Seconds(1),
                    auth_pass: Some(&PASS),
                    addrs: &addrs,
                    skip_addr_check_from: skip_from,
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
                src: PEER,
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
