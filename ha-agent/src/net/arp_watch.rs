//! ARP claims of the VIPs this node holds, watched on a packet socket where the XDP program
//! does not watch them (the socket path). A classic BPF filter in the kernel passes only
//! what the XDP program would report: Ethernet/IPv4 ARP received from another host whose
//! sender address is a held VIP. Nothing else wakes the agent.

use std::{
    collections::HashMap,
    io,
    net::Ipv4Addr,
    os::fd::{AsRawFd as _, OwnedFd},
    time::{Duration, Instant},
};

use tokio::io::{Interest, unix::AsyncFd};

use super::ETH_P_ARP;

/// An ARP frame's length after the Ethernet header, for Ethernet and IPv4.
const ARP_LEN: usize = 28;
const ETH_HLEN: usize = 14;
/// Claims of one VIP by the same MAC closer together than this are one event (the XDP
/// program's gap).
const EVENT_GAP: Duration = Duration::from_millis(100);
/// Classic BPF programs are at most this long; beyond it the filter passes every ARP frame
/// and the agent matches the addresses.
const BPF_MAXINSNS: usize = 4096;

// Classic BPF opcodes (linux/filter.h).
const LD_W_ABS: u16 = 0x20;
const LD_H_ABS: u16 = 0x28;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;
/// The ancillary load of the packet's type (`SKF_AD_OFF + SKF_AD_PKTTYPE`).
const AD_PKTTYPE: u32 = (-0x1000i32 + 4) as u32;
const PACKET_OUTGOING: u32 = 4;

/// A held VIP as the watch needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HeldVip {
    pub ifindex: u32,
    pub addr: Ipv4Addr,
    pub own_mac: [u8; 6],
}

/// Another host's ARP frame claiming a held VIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    pub ifindex: u32,
    pub vip: Ipv4Addr,
    pub mac: [u8; 6],
}

pub struct ArpWatch {
    fd: AsyncFd<OwnedFd>,
    held: Vec<HeldVip>,
    /// (ifindex, VIP) → the last MAC reported and when.
    reported: HashMap<(u32, Ipv4Addr), ([u8; 6], Instant)>,
}

impl ArpWatch {
    /// A packet socket on every interface that passes nothing until [`ArpWatch::watch`].
    pub fn open() -> io::Result<Self> {
        // Unbound, it receives nothing: the filter is in place before frames are bound to it.
        let fd = super::packet_socket()?;
        attach(&fd, &filter(&[]))?;
        super::bind_packet(&fd, ETH_P_ARP, 0)?;
        Ok(Self {
            // SAFETY: the OwnedFd owns its descriptor for as long as the AsyncFd holds it.
            fd: unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?,
            held: Vec::new(),
            reported: HashMap::new(),
        })
    }

    /// Watches claims of exactly `held` (the filter is replaced only when it changes).
    pub fn watch(&mut self, mut held: Vec<HeldVip>) -> io::Result<()> {
        held.sort();
        held.dedup();
        if held == self.held {
            return Ok(());
        }
        let mut addrs: Vec<Ipv4Addr> = held.iter().map(|h| h.addr).collect();
        addrs.dedup();
        attach(self.fd.get_ref(), &filter(&addrs))?;
        self.reported
            .retain(|key, _| held.iter().any(|h| (h.ifindex, h.addr) == *key));
        self.held = held;
        Ok(())
    }

    /// The next claim worth reporting: from another MAC than ours, at most one per
    /// [`EVENT_GAP`] per VIP unless the MAC changes.
    pub async fn claim(&mut self) -> io::Result<Claim> {
        let mut frame = [0u8; 64];
        loop {
            let mut guard = self.fd.readable().await?;
            let received = guard.try_io(|fd| recv_from(fd.get_ref(), &mut frame));
            let (len, ifindex) = match received {
                Ok(Ok(got)) => got,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            };
            if let Some(claim) = parse(frame.get(..len).unwrap_or_default(), ifindex)
                && self.worth_reporting(claim, Instant::now())
            {
                return Ok(claim);
            }
        }
    }

    fn worth_reporting(&mut self, claim: Claim, now: Instant) -> bool {
        let Some(held) = self
            .held
            .iter()
            .find(|h| h.ifindex == claim.ifindex && h.addr == claim.vip)
        else {
            return false;
        };
        if held.own_mac == claim.mac {
            return false;
        }
        let key = (claim.ifindex, claim.vip);
        let due = self
            .reported
            .get(&key)
            .is_none_or(|(mac, at)| *mac != claim.mac || now >= *at + EVENT_GAP);
        if due {
            self.reported.insert(key, (claim.mac, now));
        }
        due
    }
}

/// The claim an Ethernet frame makes, if it is Ethernet/IPv4 ARP.
fn parse(frame: &[u8], ifindex: u32) -> Option<Claim> {
    let arp = frame.get(ETH_HLEN..ETH_HLEN + ARP_LEN)?;
    if frame.get(12..14)? != ETH_P_ARP.to_be_bytes() || arp.get(..6)? != [0, 1, 8, 0, 6, 4] {
        return None;
    }
    Some(Claim {
        ifindex,
        mac: arp.get(8..14)?.try_into().ok()?,
        vip: Ipv4Addr::from(<[u8; 4]>::try_from(arp.get(14..18)?).ok()?),
    })
}

fn recv_from(fd: &OwnedFd, frame: &mut [u8]) -> io::Result<(usize, u32)> {
    // SAFETY: sockaddr_ll is plain old data; zeroed is a valid value.
    let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: frame and from outlive the call; lengths are theirs.
    let n = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            frame.as_mut_ptr().cast(),
            frame.len(),
            libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            (&mut from as *mut libc::sockaddr_ll).cast(),
            &mut from_len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // MSG_TRUNC reports the frame's full length; only what fits was copied.
    Ok(((n as usize).min(frame.len()), from.sll_ifindex as u32))
}

fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The classic BPF program: pass (the ARP header's worth of) Ethernet/IPv4 ARP frames not
/// sent by this host whose sender address is one of `addrs`; drop everything else. No
/// addresses: drop everything.
pub fn filter(addrs: &[Ipv4Addr]) -> Vec<libc::sock_filter> {
    let pass = (ETH_HLEN + ARP_LEN) as u32;
    if addrs.is_empty() {
        return vec![op(RET_K, 0, 0, 0)];
    }
    // The header checks, each jumping to the `ret 0` that follows them on failure.
    let header: [(u16, u32, u32); 5] = [
        (LD_W_ABS, AD_PKTTYPE, PACKET_OUTGOING),
        (LD_H_ABS, 12, u32::from(ETH_P_ARP)),
        (LD_H_ABS, 14, 1),      // hardware type Ethernet
        (LD_H_ABS, 16, 0x0800), // protocol IPv4
        (LD_H_ABS, 18, 0x0604), // address lengths 6 and 4
    ];
    let mut prog = Vec::with_capacity(header.len() * 2 + 3 + addrs.len() * 2);
    for (i, &(load, offset, value)) in header.iter().enumerate() {
        // Instructions between this check and the `ret 0`.
        let to_drop = ((header.len() - i - 1) * 2) as u8;
        prog.push(op(load, 0, 0, offset));
        prog.push(match i {
            0 => op(JEQ_K, to_drop, 0, value),
            _ if i == header.len() - 1 => op(JEQ_K, 1, 0, value),
            _ => op(JEQ_K, 0, to_drop, value),
        });
    }
    prog.push(op(RET_K, 0, 0, 0));
    if prog.len() + 2 + addrs.len() * 2 > BPF_MAXINSNS {
        // Too many to list: every ARP frame passes and the agent matches the addresses.
        prog.push(op(RET_K, 0, 0, pass));
        return prog;
    }
    prog.push(op(LD_W_ABS, 0, 0, (ETH_HLEN + 14) as u32)); // sender protocol address
    for addr in addrs {
        prog.push(op(JEQ_K, 0, 1, u32::from(*addr)));
        prog.push(op(RET_K, 0, 0, pass));
    }
    prog.push(op(RET_K, 0, 0, 0));
    prog
}

fn attach(fd: &OwnedFd, prog: &[libc::sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|_| io::Error::other("filter too long"))?,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: fprog and the program it points to outlive the call; the kernel copies them.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
