//! Gratuitous ARP, and its IPv6 counterpart the unsolicited Neighbor Advertisement,
//! through a packet socket.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd as _, OwnedFd},
};

use super::{
    ETH_P_ARP,
    advert_socket::{ipv6_header, ipv6_multicast_mac},
};
use crate::vrrp::packet::checksum_as;

const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_ICMPV6: u8 = 58;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

const BROADCAST: [u8; 6] = [0xff; 6];

pub struct GarpSocket {
    fd: OwnedFd,
}

/// The gratuitous ARP keepalived sends: a broadcast request for the VIP, from the VIP.
pub fn garp_frame(mac: &[u8; 6], vip: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&BROADCAST);
    f[6..12].copy_from_slice(mac);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    f[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]); // Ethernet, IPv4, request
    f[22..28].copy_from_slice(mac);
    f[28..32].copy_from_slice(&vip.octets());
    f[32..38].copy_from_slice(&BROADCAST);
    f[38..42].copy_from_slice(&vip.octets());
    f
}

/// The unsolicited Neighbor Advertisement keepalived sends (RFC 4861 §7.2.6): from the VIP
/// to all nodes, Override set so that caches take the new MAC, Router set when the interface
/// forwards, the MAC as target link-layer address.
pub fn na_frame(mac: &[u8; 6], vip: Ipv6Addr, router: bool) -> [u8; 86] {
    let mut icmp = [0u8; 32];
    icmp[0] = 136; // Neighbor Advertisement
    icmp[4] = 0x20 | if router { 0x80 } else { 0 }; // Override, Router
    icmp[8..24].copy_from_slice(&vip.octets());
    icmp[24] = 2; // Target Link-Layer Address option, 8 bytes
    icmp[25] = 1;
    icmp[26..32].copy_from_slice(mac);
    let sum = checksum_as(IPPROTO_ICMPV6, &icmp, Some((vip.into(), ALL_NODES.into())));
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut f = [0u8; 86];
    f[0..6].copy_from_slice(&ipv6_multicast_mac(ALL_NODES));
    f[6..12].copy_from_slice(mac);
    f[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
    f[14..54].copy_from_slice(&ipv6_header(vip, ALL_NODES, IPPROTO_ICMPV6, icmp.len()));
    f[54..86].copy_from_slice(&icmp);
    f
}

/// Whether interface `ifindex` forwards IPv6 (a router's NA says so).
fn forwards_ipv6(ifindex: u32) -> bool {
    let Ok(name) = nix::net::if_::if_indextoname(ifindex) else {
        return false;
    };
    let path = format!(
        "/proc/sys/net/ipv6/conf/{}/forwarding",
        name.to_string_lossy()
    );
    std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1")
}

impl GarpSocket {
    pub fn open() -> io::Result<Self> {
        let fd = super::packet_socket()?;
        super::force_buffer(
            fd.as_raw_fd(),
            libc::SO_SNDBUFFORCE,
            super::PACKET_SEND_BUFFER,
        );
        Ok(Self { fd })
    }

    /// Sends one gratuitous ARP (IPv6: unsolicited NA) for `vip` out of interface `ifindex`
    /// with source `mac`.
    pub fn send(&self, ifindex: u32, mac: &[u8; 6], vip: IpAddr) -> io::Result<()> {
        let (frame, protocol) = match vip {
            IpAddr::V4(v4) => (garp_frame(mac, v4).to_vec(), ETH_P_ARP),
            IpAddr::V6(v6) => (
                na_frame(mac, v6, forwards_ipv6(ifindex)).to_vec(),
                ETH_P_IPV6,
            ),
        };
        // SAFETY: sockaddr_ll is plain old data; zeroed is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = protocol.to_be();
        addr.sll_ifindex = ifindex as i32;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(frame.get(..6).unwrap_or(&BROADCAST));
        // SAFETY: frame and addr outlive the call; lengths are theirs.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_layout() {
        let mac = [2, 0, 0, 0, 0, 0x0a];
        let f = garp_frame(&mac, Ipv4Addr::new(192, 168, 2, 200));
        assert_eq!(&f[0..6], &BROADCAST);
        assert_eq!(&f[6..12], &mac);
        assert_eq!(&f[12..22], &[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        assert_eq!(&f[22..28], &mac);
        assert_eq!(&f[28..32], &[192, 168, 2, 200]);
        assert_eq!(&f[32..38], &BROADCAST);
        assert_eq!(&f[38..42], &[192, 168, 2, 200]);
    }

    #[test]
    fn na_layout() {
        let mac = [2, 0, 0, 0, 0, 0x0a];
        let vip = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x64);
        let f = na_frame(&mac, vip, false);
        assert_eq!(
            &f[0..14],
            &[0x33, 0x33, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0x0a, 0x86, 0xdd]
        );
        // Payload 32 bytes of ICMPv6, hop limit 255, from the VIP to all nodes.
        assert_eq!(&f[18..22], &[0, 32, 58, 255]);
        assert_eq!(&f[22..38], &vip.octets());
        assert_eq!(&f[38..54], &ALL_NODES.octets());
        let icmp = &f[54..];
        assert_eq!(&icmp[..2], &[136, 0]);
        assert_eq!(icmp[4], 0x20, "Override only");
        assert_eq!(&icmp[8..24], &vip.octets());
        assert_eq!(&icmp[24..32], &[2, 1, 2, 0, 0, 0, 0, 0x0a]);
        assert_eq!(
            checksum_as(IPPROTO_ICMPV6, icmp, Some((vip.into(), ALL_NODES.into()))),
            0
        );
        assert_eq!(
            na_frame(&mac, vip, true)[54 + 4],
            0xa0,
            "Router and Override"
        );
    }
}
