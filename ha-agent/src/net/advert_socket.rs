//! Raw IP socket for VRRP adverts (protocol 112) on one interface, IPv4 or IPv6, and the
//! packet socket multicast adverts go out through as whole frames.

use std::{
    io::{self, IoSlice, IoSliceMut},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6},
    os::fd::{AsRawFd as _, OwnedFd},
    sync::atomic::{AtomicU64, Ordering},
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::Bytes;
use nix::sys::{
    socket::{
        ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmsg, sendmmsg,
        setsockopt, sockopt::ReceiveTimestampns,
    },
    time::TimeSpec,
};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::io::{Interest, unix::AsyncFd};

use crate::vrrp::packet::{Family, IPPROTO_VRRP, TTL, checksum};

/// DSCP CS6 (network control), as keepalived sends.
const TOS_NETWORK_CONTROL: u32 = 0xc0;
/// Room for 255 instances at 10 ms without drops while the loop is busy.
const RECV_BUFFER: usize = 4 << 20;

pub struct AdvertSocket {
    socket: AsyncFd<Socket>,
    family: Family,
    /// Multicast sockets send whole frames through this, when it could be opened.
    frames: Option<FrameSender>,
    /// When a read last found the socket empty (CLOCK_MONOTONIC, ns): every packet read
    /// since arrived after that.
    empty_at: AtomicU64,
}

impl AdvertSocket {
    /// Also receives adverts sent to `group` (`mcast_dst_ip`, `vrrp_mcast_group4`/`6`);
    /// joining a group twice is fine.
    pub fn join(&self, group: IpAddr, ifindex: u32) -> io::Result<()> {
        let socket = self.socket.get_ref();
        let joined = match group {
            IpAddr::V4(g) => {
                socket.join_multicast_v4_n(&g, &InterfaceIndexOrAddress::Index(ifindex))
            }
            IpAddr::V6(g) => socket.join_multicast_v6(&g, ifindex),
        };
        match joined {
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => Ok(()),
            result => result,
        }
    }

    /// Opens a socket of `family` bound to `iface`: TTL (hop limit) 255, no multicast
    /// loopback, member of the family's VRRP group. With `unicast`, it is bound to that
    /// address and sends with that TTL (unicast peers).
    pub fn open(
        iface: &str,
        ifindex: u32,
        family: Family,
        unicast: Option<(IpAddr, u8)>,
    ) -> io::Result<Self> {
        let unicast_src = unicast.map(|(src, _)| src);
        let domain = match family {
            Family::V4 => Domain::IPV4,
            Family::V6 => Domain::IPV6,
        };
        let socket = Socket::new(
            domain,
            Type::RAW,
            Some(Protocol::from(i32::from(IPPROTO_VRRP))),
        )?;
        socket.bind_device(Some(iface.as_bytes()))?;
        let ttl = u32::from(unicast.map_or(TTL, |(_, ttl)| ttl));
        match family {
            Family::V4 => {
                socket.set_multicast_ttl_v4(u32::from(TTL))?;
                socket.set_ttl_v4(ttl)?;
                socket.set_tos_v4(TOS_NETWORK_CONTROL)?;
                socket.set_multicast_loop_v4(false)?;
            }
            Family::V6 => {
                socket.set_multicast_hops_v6(u32::from(TTL))?;
                socket.set_unicast_hops_v6(ttl)?;
                socket.set_tclass_v6(TOS_NETWORK_CONTROL)?;
                socket.set_multicast_loop_v6(false)?;
                // The kernel strips the IPv6 header: what the checks need of it comes
                // beside each packet.
                socket.set_recv_hoplimit_v6(true)?;
                setsockopt(
                    &socket,
                    nix::sys::socket::sockopt::Ipv6RecvPacketInfo,
                    &true,
                )?;
            }
        }
        // 208 KiB by default: some 250 adverts, 10 ms of 255 instances at 10 ms, so a loop
        // held up for longer than that would lose adverts and take over falsely.
        super::force_buffer(socket.as_raw_fd(), libc::SO_RCVBUFFORCE, RECV_BUFFER);
        // The kernel's receive time comes with each packet: an advert that arrived in time
        // counts from then, however late the loop reads it.
        setsockopt(&socket, ReceiveTimestampns, &true)?;
        if let Some(src) = unicast_src {
            socket.bind(&SockAddr::from(socket_addr(src, ifindex)))?;
        }
        let multicast = unicast_src.is_none().then_some(ifindex);
        let socket = socket_ready(socket, family, multicast, iface)?;
        if multicast.is_some() {
            socket.join(family.group(), ifindex)?;
        }
        Ok(socket)
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
    pub fn send_batch(&self, batch: &[(Bytes, IpAddr)], ifindex: u32) -> io::Result<usize> {
        match &self.frames {
            Some(frames) => send_all(frames.fd.as_raw_fd(), batch, |_| None),
            None => send_all(self.socket.get_ref().as_raw_fd(), batch, |dst| {
                Some(SockaddrStorage::from(socket_addr(dst, ifindex)))
            }),
        }
    }

    /// Polls for one packet (IP header included) into `buf`: its length and the kernel's
    /// receive time (CLOCK_REALTIME), if the kernel gave one. IPv6 packets come with the
    /// fields of their fixed header that the checks read, rebuilt from what the kernel says
    /// beside them ([`recv_v6`]).
    pub fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, Option<Duration>)>> {
        loop {
            let mut guard = ready!(self.socket.poll_read_ready(cx))?;
            let before = monotonic_ns();
            match guard.try_io(|s| self.recv(s.get_ref(), buf)) {
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
        match self.recv(self.socket.get_ref(), buf) {
            Ok(packet) => Ok(Some(packet)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.empty_at.store(before, Ordering::Relaxed);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

impl AdvertSocket {
    fn recv(&self, socket: &Socket, buf: &mut [u8]) -> io::Result<(usize, Option<Duration>)> {
        match self.family {
            Family::V4 => recv_stamped(socket, buf),
            Family::V6 => recv_v6(socket, buf),
        }
    }
}

/// Registers `socket` with the runtime and opens the frame sender of multicast sockets
/// (`ifindex`).
fn socket_ready(
    socket: Socket,
    family: Family,
    ifindex: Option<u32>,
    iface: &str,
) -> io::Result<AdvertSocket> {
    socket.set_nonblocking(true)?;
    // SAFETY: the Socket owns its descriptor for as long as the AsyncFd holds it.
    let socket = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }?;
    let frames = ifindex.and_then(|ifindex| {
        FrameSender::open(ifindex)
            .inspect_err(|e| {
                tracing::warn!(%iface, error = %e, "adverts go through the IP stack: no packet socket");
            })
            .ok()
    });
    Ok(AdvertSocket {
        socket,
        family,
        frames,
        empty_at: AtomicU64::new(0),
    })
}

/// `addr` as a socket address; an IPv6 link-local one is scoped to `ifindex`.
fn socket_addr(addr: IpAddr, ifindex: u32) -> SocketAddr {
    match addr {
        IpAddr::V4(a) => SocketAddr::new(a.into(), 0),
        IpAddr::V6(a) => {
            let scope = if a.is_unicast_link_local() {
                ifindex
            } else {
                0
            };
            SocketAddr::V6(SocketAddrV6::new(a, 0, 0, scope))
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
    batch: &[(Bytes, IpAddr)],
    to: impl Fn(IpAddr) -> Option<SockaddrStorage>,
) -> io::Result<usize> {
    let slices: Vec<[IoSlice<'_>; 1]> = batch.iter().map(|(msg, _)| [IoSlice::new(msg)]).collect();
    let addrs: Vec<Option<SockaddrStorage>> = batch.iter().map(|(_, dst)| to(*dst)).collect();
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

/// The Ethernet frame of VRRP message `msg` from `src` (interface MAC `mac`) to multicast
/// `group`, as the kernel's IP output makes it: IPv4 with TOS CS6, TTL 255, DF and IP ID 0
/// (an atomic datagram's ID has no use: RFC 6864); IPv6 with traffic class CS6, hop limit
/// 255, flow label 0.
pub fn multicast_frame(mac: &[u8; 6], src: IpAddr, group: IpAddr, msg: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + 40 + msg.len());
    match (src, group) {
        (IpAddr::V4(src), IpAddr::V4(group)) => {
            let g = group.octets();
            // 01:00:5e and the group's low 23 bits.
            frame.extend_from_slice(&[0x01, 0x00, 0x5e, g[1] & 0x7f, g[2], g[3]]);
            frame.extend_from_slice(mac);
            frame.extend_from_slice(&0x0800u16.to_be_bytes());
            frame.extend_from_slice(&ipv4_header(src, group, msg.len()));
        }
        (IpAddr::V6(src), IpAddr::V6(group)) => {
            frame.extend_from_slice(&ipv6_multicast_mac(group));
            frame.extend_from_slice(mac);
            frame.extend_from_slice(&0x86ddu16.to_be_bytes());
            frame.extend_from_slice(&ipv6_header(src, group, IPPROTO_VRRP, msg.len()));
        }
        // Configuration checks keep an instance's addresses in one family.
        _ => return frame,
    }
    frame.extend_from_slice(msg);
    frame
}

fn ipv4_header(src: Ipv4Addr, dst: Ipv4Addr, payload: usize) -> [u8; 20] {
    let total = (20 + payload) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[1] = TOS_NETWORK_CONTROL as u8;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = TTL;
    ip[9] = IPPROTO_VRRP;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let sum = checksum(&ip, None);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip
}

/// An IPv6 header (traffic class CS6, hop limit 255) before `payload` bytes of
/// `next_header`.
pub fn ipv6_header(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, payload: usize) -> [u8; 40] {
    let mut ip = [0u8; 40];
    // Version 6, traffic class CS6, flow label 0.
    let first = (6u32 << 28) | (TOS_NETWORK_CONTROL << 20);
    ip[0..4].copy_from_slice(&first.to_be_bytes());
    ip[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
    ip[6] = next_header;
    ip[7] = TTL;
    ip[8..24].copy_from_slice(&src.octets());
    ip[24..40].copy_from_slice(&dst.octets());
    ip
}

/// 33:33 and the group's low 32 bits (RFC 2464 §7).
pub fn ipv6_multicast_mac(group: Ipv6Addr) -> [u8; 6] {
    let g = group.octets();
    [0x33, 0x33, g[12], g[13], g[14], g[15]]
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

/// One IPv6 packet read from the raw socket, its fixed header rebuilt in front of the
/// message: the sender from the socket address, the destination from IPV6_PKTINFO, the hop
/// limit from IPV6_HOPLIMIT (a packet without one gets 0: dropped as having crossed a
/// router).
fn recv_v6(socket: &Socket, buf: &mut [u8]) -> io::Result<(usize, Option<Duration>)> {
    use nix_hoplimit::sys::socket::{self as s6, ControlMessageOwned as Cmsg};
    let Some((head, body)) = buf.split_at_mut_checked(40) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "buffer too small",
        ));
    };
    let mut iov = [IoSliceMut::new(body)];
    let mut space = nix_hoplimit::cmsg_space!(
        nix_hoplimit::sys::time::TimeSpec,
        libc::in6_pktinfo,
        libc::c_int
    );
    let msg = s6::recvmsg::<s6::SockaddrIn6>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        s6::MsgFlags::MSG_DONTWAIT,
    )?;
    let (mut hop_limit, mut dst, mut stamp) = (0u8, Ipv6Addr::UNSPECIFIED, None);
    for cmsg in msg.cmsgs()? {
        match cmsg {
            Cmsg::Ipv6HopLimit(h) => hop_limit = u8::try_from(h).unwrap_or(0),
            Cmsg::Ipv6PacketInfo(info) => dst = Ipv6Addr::from(info.ipi6_addr.s6_addr),
            Cmsg::ScmTimestampns(t) => {
                stamp = Some(Duration::new(
                    u64::try_from(t.tv_sec()).unwrap_or(0),
                    u32::try_from(t.tv_nsec()).unwrap_or(0),
                ))
            }
            _ => {}
        }
    }
    let src = msg.address.map_or(Ipv6Addr::UNSPECIFIED, |a| a.ip());
    let len = msg.bytes;
    let mut header = ipv6_header(src, dst, IPPROTO_VRRP, len);
    header[7] = hop_limit;
    head.copy_from_slice(&header);
    Ok((40 + len, stamp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vrrp::packet::{VRRP_GROUP_V4, VRRP_GROUP_V6};

    #[test]
    fn a_multicast_frame_is_what_the_ip_stack_would_send() {
        let mac = [2, 0, 0, 0, 0, 0x0a];
        let msg = [0x31, 107, 150, 1, 0, 10, 0, 0, 192, 168, 2, 200];
        let f = multicast_frame(
            &mac,
            Ipv4Addr::new(192, 168, 2, 10).into(),
            VRRP_GROUP_V4.into(),
            &msg,
        );
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

    #[test]
    fn an_ipv6_multicast_frame_is_what_the_ip_stack_would_send() {
        let mac = [2, 0, 0, 0, 0, 0x0a];
        let src = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x0a);
        let msg = [0x31, 7, 100, 0, 0, 100, 0, 0];
        let f = multicast_frame(&mac, src.into(), VRRP_GROUP_V6.into(), &msg);
        assert_eq!(
            &f[..14],
            &[0x33, 0x33, 0, 0, 0, 0x12, 2, 0, 0, 0, 0, 0x0a, 0x86, 0xdd]
        );
        // Version 6, CS6, flow 0, payload 8, VRRP, hop limit 255.
        assert_eq!(&f[14..22], &[0x6c, 0, 0, 0, 0, 8, 112, 255]);
        assert_eq!(&f[22..38], &src.octets());
        assert_eq!(&f[38..54], &VRRP_GROUP_V6.octets());
        assert_eq!(&f[54..], &msg);
    }
}
