//! The world at the edges: advert sockets, VIPs through rtnetlink, gratuitous ARP, links.

pub mod advert_socket;
pub mod arp_watch;
pub mod garp;
pub mod link;
pub mod link_watch;
pub mod pacer;
pub mod routes;
pub mod vip;
pub mod vmac;
pub mod xdp_features;

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
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

/// Binds a packet socket to `protocol` (network order is done here; 0: none, it receives
/// nothing) on interface `ifindex` (0: every interface).
fn bind_packet(fd: &OwnedFd, protocol: u16, ifindex: u32) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain old data; zeroed is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = protocol.to_be();
    addr.sll_ifindex = ifindex as i32;
    // SAFETY: addr outlives the call; the length is its own.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The send buffer of the packet sockets adverts and gratuitous ARP leave through: one tick
/// of 255 instances' adverts (~230 KiB of frames), or a takeover of 255 instances' first
/// gratuitous ARP bursts (5 each, ~1 MiB), while the device queue still drains; the default
/// (208 KiB) refused part of either.
const PACKET_SEND_BUFFER: usize = 2 << 20;

/// Sets a socket buffer's size with `force` (SO_RCVBUFFORCE or SO_SNDBUFFORCE), which with
/// CAP_NET_ADMIN is not capped by `net.core.{r,w}mem_max`; without it, the capped option.
fn force_buffer(fd: std::os::fd::RawFd, force: libc::c_int, bytes: usize) {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let set = |option| {
        // SAFETY: setsockopt reads an int from a pointer that outlives the call.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    if set(force) != 0 {
        let capped = if force == libc::SO_SNDBUFFORCE {
            libc::SO_SNDBUF
        } else {
            libc::SO_RCVBUF
        };
        set(capped);
    }
}
