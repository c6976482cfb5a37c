//! The world at the edges: advert sockets, VIPs through rtnetlink, gratuitous ARP, links.

pub mod advert_socket;
pub mod arp_watch;
pub mod garp;
pub mod link;
pub mod link_watch;
pub mod vip;

use std::{
    io,
    os::fd::{FromRawFd as _, OwnedFd},
};

/// The ARP ethertype.
const ETH_P_ARP: u16 = 0x0806;

/// A raw packet socket bound to no protocol yet (it receives nothing until bound).
fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
