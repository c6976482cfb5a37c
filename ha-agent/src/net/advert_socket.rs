//! Raw IPv4 socket for VRRP adverts (protocol 112) on one interface, and the packet socket
//! multicast adverts go out through as whole frames.

use std::{
    io::{self, IoSlice, IoSliceMut},
    net::{Ipv4Addr, SocketAddrV4},
    os::fd::{AsRawFd as _, OwnedFd},
    sync::atomic::{AtomicU64, Ordering},
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::Bytes;
use nix::sys::{
    socket::{
        ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrIn, recvmsg, sendmmsg, setsockopt,
        sockopt::ReceiveTimestampns,
    },
    time::TimeSpec,
};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::io::{Interest, unix::AsyncFd};

use crate::vrrp::packet::{IPPROTO_VRRP, TTL, VRRP_GROUP_V4, checksum};

/// DSCP CS6 (network control), as keepalived sends.
const TOS_NETWORK_CONTROL: u32 = 0xc0;
/// Room for 255 instances at 10 ms without drops while the loop is busy.
const RECV_BUFFER: usize = 4 << 20;

pub struct AdvertSocket {
    socket: AsyncFd<Socket>,
    /// Multicast sockets send whole frames through this, when it could be opened.
    frames: Option<FrameSender>,
    /// When a read last found the socket empty (CLOCK_MONOTONIC, ns): every packet read
    /// since arrived after that.
    empty_at: AtomicU64,
}

impl AdvertSocket {
    /// Also receives adverts sent to `group` (`mcast_dst_ip`, `vrrp_mcast_group4`); joining
    /// a group twice is fine.
    pub fn join(&self, group: Ipv4Addr, ifindex: u32) -> io::Result<()> {
        match self
            .socket
            .get_ref()
            .join_multicast_v4_n(&group, &InterfaceIndexOrAddress::Index(ifindex))
        {
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => Ok(()),
            result => result,
        }
    }

    /// Opens a socket bound to `iface`: TTL 255, no multicast loopback, member of
    /// 224.0.0.18. With `unicast`, it is bound to that address and sends with that TTL
    /// (unicast peers).
    pub fn open(iface: &str, ifindex: u32, unicast: Option<(Ipv4Addr, u8)>) -> io::Result<Self> {
        let unicast_src = unicast.map(|(src, _)| src);
        let socket = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(i32::from(IPPROTO_VRRP))),
        )?;
        socket.bind_device(Some(iface.as_bytes()))?;
        socket.set_multicast_ttl_v4(u32::from(TTL))?;
        socket.set_ttl_v4(u32::from(unicast.map_or(TTL, |(_, ttl)| ttl)))?;
        socket.set_tos_v4(TOS_NETWORK_CONTROL)?;
        socket.set_multicast_loop_v4(false)?;
        // 208 KiB by default: some 250 adverts, 10 ms of 255 instances at 10 ms, so a loop
        // held up for longer than that would lose adverts and take over falsely.
        super::force_buffer(socket.as_raw_fd(), libc::SO_RCVBUFFORCE, RECV_BUFFER);
        // The kernel's receive time comes with each packet: an advert that arrived in time
        // counts from then, however late the loop reads it.
        setsockopt(&socket, ReceiveTimestampns, &true)?;
        match unicast_src {
            Some(src) => socket.bind(&SockAddr::from(SocketAddrV4::new(src, 0)))?,
            None => socket
                .join_multicast_v4_n(&VRRP_GROUP_V4, &InterfaceIndexOrAddress::Index(ifindex))?,
        }
        socket.set_nonblocking(true)?;
        // SAFETY: the Socket owns its descriptor for as long as the AsyncFd holds it.
        let socket = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }?;
        let frames = match unicast_src {
            Some(_) => None,
            None => FrameSender::open(ifindex)
                .inspect_err(|e| {
                    tracing::warn!(%iface, error = %e, "adverts go through the IP stack: no packet socket");
                })
                .ok(),
        };
        Ok(Self {
            socket,
            frames,
            empty_at: AtomicU64::new(0),
        })
    }

    /// Whether [`AdvertSocket::send_batch`] takes whole Ethernet frames
    /// ([`multicast_frame`]) rather than VRRP messages.
    pub fn sends_frames(&self) -> bool {
        self.frames.is_some()
    }

    /// Sends adverts in one `sendmmsg`: whole frames when [`AdvertSocket::sends_frames`],
    /// else VRRP messages, each to its destination, the kernel adding the IP headers.
    /// Returns how many went out: fewer than all when the kernel took only some, an error
    /// only when it took none.
    pub fn send_batch(&self, batch: &[(Bytes, Ipv4Addr)]) -> io::Result<usize> {
        match &self.frames {
            Some(frames) => send_all(frames.fd.as_raw_fd(), batch, |_| None),
            None => send_all(self.socket.get_ref().as_raw_fd(), batch, |dst| {
                Some(SockaddrIn::from(SocketAddrV4::new(dst, 0)))
            }),
        }
    }

    /// Polls for one packet (IP header included) into `buf`: its length and the kernel's
    /// receive time (CLOCK_REALTIME), if the kernel gave one.
    pub fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, Option<Duration>)>> {
        loop {
            let mut guard = ready!(self.socket.poll_read_ready(cx))?;
            let before = monotonic_ns();
            match guard.try_io(|s| recv_stamped(s.get_ref(), buf)) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => self.empty_at.store(before, Ordering::Relaxed),
            }
        }
    }

    /// When a read last found the socket empty, on CLOCK_MONOTONIC: no packet read after
    /// it can have arrived before. A receive stamp (CLOCK_REALTIME) that says otherwise was
    /// taken before a step of the clock.
    pub fn empty_at(&self) -> Duration {
        Duration::from_nanos(self.empty_at.load(Ordering::Relaxed))
    }

    /// One packet already queued, without waiting: `Ok(None)` when there is none.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<Option<(usize, Option<Duration>)>> {
        let before = monotonic_ns();
        match recv_stamped(self.socket.get_ref(), buf) {
            Ok(packet) => Ok(Some(packet)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.empty_at.store(before, Ordering::Relaxed);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// Multicast adverts as whole Ethernet frames, through a packet socket bound to the
/// interface: no route lookup or IP output per advert, which is most of what a master with
/// many instances spends (the frame is built once per priority). The frames still pass the
/// qdisc and the interface's taps (tcpdump on the master sees its adverts).
struct FrameSender {
    fd: OwnedFd,
}

impl FrameSender {
    fn open(ifindex: u32) -> io::Result<Self> {
        let fd = super::packet_socket()?;
        // Protocol 0: it sends only, nothing is queued to it.
        super::bind_packet(&fd, 0, ifindex)?;
        // A frame counts against the buffer until the interface's queue lets it go.
        super::force_buffer(
            fd.as_raw_fd(),
            libc::SO_SNDBUFFORCE,
            super::PACKET_SEND_BUFFER,
        );
        Ok(Self { fd })
    }
}

/// Sends `batch` in one `sendmmsg` on `fd`, each message to `to(its destination)` (`None`:
/// the socket's own). Returns how many the kernel took.
fn send_all(
    fd: std::os::fd::RawFd,
    batch: &[(Bytes, Ipv4Addr)],
    to: impl Fn(Ipv4Addr) -> Option<SockaddrIn>,
) -> io::Result<usize> {
    let slices: Vec<[IoSlice<'_>; 1]> = batch.iter().map(|(msg, _)| [IoSlice::new(msg)]).collect();
    let addrs: Vec<Option<SockaddrIn>> = batch.iter().map(|(_, dst)| to(*dst)).collect();
    let mut headers = MultiHeaders::preallocate(batch.len(), None);
    let sent = sendmmsg(
        fd,
        &mut headers,
        &slices,
        &addrs,
        [],
        MsgFlags::MSG_DONTWAIT,
    )?;
    Ok(sent.count())
}

/// The Ethernet frame of VRRP message `msg` from `src` (interface MAC `mac`) to the VRRP
/// group, as the kernel's IPv4 output makes it (TOS CS6, TTL 255, DF), with IP ID 0 (an
/// atomic datagram's ID has no use: RFC 6864).
pub fn multicast_frame(mac: &[u8; 6], src: Ipv4Addr, group: Ipv4Addr, msg: &[u8]) -> Vec<u8> {
    let group = group.octets();
    let mut frame = Vec::with_capacity(14 + 20 + msg.len());
    // 01:00:5e and the group's low 23 bits.
    frame.extend_from_slice(&[0x01, 0x00, 0x5e, group[1] & 0x7f, group[2], group[3]]);
    frame.extend_from_slice(mac);
    frame.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = (20 + msg.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[1] = TOS_NETWORK_CONTROL as u8;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = TTL;
    ip[9] = IPPROTO_VRRP;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&group);
    let sum = checksum(&ip, None);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(msg);
    frame
}

fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000
            + u64::try_from(t.tv_nsec()).unwrap_or(0)
    })
}

fn recv_stamped(socket: &Socket, buf: &mut [u8]) -> io::Result<(usize, Option<Duration>)> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(TimeSpec);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT,
    )?;
    let stamp = msg.cmsgs()?.find_map(|c| match c {
        ControlMessageOwned::ScmTimestampns(t) => Some(Duration::new(
            u64::try_from(t.tv_sec()).ok()?,
            u32::try_from(t.tv_nsec()).ok()?,
        )),
        _ => None,
    });
    Ok((msg.bytes, stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multicast_frame_is_what_the_ip_stack_would_send() {
        let mac = [2, 0, 0, 0, 0, 0x0a];
        let msg = [0x31, 107, 150, 1, 0, 10, 0, 0, 192, 168, 2, 200];
        let f = multicast_frame(&mac, Ipv4Addr::new(192, 168, 2, 10), VRRP_GROUP_V4, &msg);
        assert_eq!(
            &f[..14],
            &[1, 0, 0x5e, 0, 0, 0x12, 2, 0, 0, 0, 0, 0x0a, 8, 0]
        );
        let ip = &f[14..34];
        // Version 4, 20 bytes, CS6, length, ID 0, DF, TTL 255, VRRP.
        assert_eq!(&ip[..10], &[0x45, 0xc0, 0, 32, 0, 0, 0x40, 0, 255, 112]);
        assert_eq!(&ip[12..], &[192, 168, 2, 10, 224, 0, 0, 18]);
        assert_eq!(checksum(ip, None), 0);
        assert_eq!(&f[34..], &msg);
    }
}
