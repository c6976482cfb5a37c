//! Gratuitous ARP through a packet socket.

use std::{
    io,
    net::Ipv4Addr,
    os::fd::{AsRawFd as _, OwnedFd},
};

use super::ETH_P_ARP;

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

    /// Sends one gratuitous ARP for `vip` out of interface `ifindex` with source `mac`.
    pub fn send(&self, ifindex: u32, mac: &[u8; 6], vip: Ipv4Addr) -> io::Result<()> {
        let frame = garp_frame(mac, vip);
        // SAFETY: sockaddr_ll is plain old data; zeroed is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETH_P_ARP.to_be();
        addr.sll_ifindex = ifindex as i32;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&BROADCAST);
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
}
