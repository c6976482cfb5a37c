//! The pacing interface of BFD's kernel transmission: a veth pair of the agent's own, with
//! no address, whose first end has a token-bucket qdisc (`tbf`) that releases
//! [`PACE_BYTES_PER_MS`] bytes a millisecond. The agent queues tokens there in batches
//! (a token's length is the time since the one before it); the kernel's qdisc timer releases
//! each on time, and at the other end the `bfd_pace` program makes it its session's frame
//! and sends it out of the session's interface. So a session's periodic packets neither
//! wake the agent nor wait for it to be scheduled.
//!
//! A pair a previous run left behind (a crash) is deleted and made anew.

use std::{
    io,
    os::fd::{AsRawFd as _, OwnedFd},
};

use futures::StreamExt as _;
use ha_common::bfd::{PACE_BYTES_PER_MS, TOKEN_MAX, TOKEN_MIN};
use netlink_packet_core::{
    DefaultNla, NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::{
    RouteNetlinkMessage,
    tc::{TcAttribute, TcHandle, TcMessage, TcOption},
};
use rtnetlink::{Handle, LinkUnspec, LinkVeth};

use super::link::Link;
use crate::bfd::pace::Token;

/// The end the tokens are queued on.
pub const PACER: &str = "ha-bfd-tx";
/// The end where `bfd_pace` turns them into frames.
pub const PACER_IN: &str = "ha-bfd-tx-in";

/// Tokens waiting in the qdisc, at most (bytes: 1 s of them).
const QUEUE_LIMIT: u32 = PACE_BYTES_PER_MS * 1000;

// tbf's netlink attributes and link layer (linux/pkt_sched.h).
const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_BURST: u16 = 6;
const TC_LINKLAYER_ETHERNET: u8 = 1;
/// The qdisc's time unit (PSCHED_SHIFT: 64 ns).
const PSCHED_TICK_NS: u64 = 64;

/// Creates the pair (set up, no IPv6, MTU for the longest token) and its qdisc; returns the
/// index of [`PACER`].
pub async fn create(handle: &Handle) -> Result<u32, String> {
    if let Ok(stale) = Link::lookup(PACER) {
        remove(handle, stale.index).await?;
    }
    handle
        .link()
        .add(LinkVeth::new(PACER, PACER_IN).build())
        .execute()
        .await
        .map_err(|e| format!("creating {PACER}: {e}"))?;
    let mtu = (TOKEN_MAX - 14) as u32;
    for name in [PACER, PACER_IN] {
        let link = Link::lookup(name).map_err(|e| e.to_string())?;
        // No link-local address and no router solicitation: nothing but tokens crosses it.
        let path = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
        if std::path::Path::new(&path).exists() {
            std::fs::write(&path, "1").map_err(|e| format!("{path}: {e}"))?;
        }
        handle
            .link()
            .set(LinkUnspec::new_with_index(link.index).mtu(mtu).up().build())
            .execute()
            .await
            .map_err(|e| format!("setting {name} up: {e}"))?;
    }
    let index = Link::lookup(PACER).map_err(|e| e.to_string())?.index;
    let mut request = NetlinkMessage::from(RouteNetlinkMessage::NewQueueDiscipline(tbf(index)));
    request.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    let mut replies = handle
        .clone()
        .request(request)
        .map_err(|e| format!("adding the qdisc of {PACER}: {e}"))?;
    while let Some(reply) = replies.next().await {
        if let NetlinkPayload::Error(e) = reply.payload
            && e.code.is_some()
        {
            return Err(format!("adding the qdisc of {PACER}: {e}"));
        }
    }
    Ok(index)
}

/// Deletes the pair (both ends go together).
pub async fn remove(handle: &Handle, index: u32) -> Result<(), String> {
    handle
        .link()
        .del(index)
        .execute()
        .await
        .map_err(|e| format!("deleting {PACER}: {e}"))
}

/// `tbf rate 1000 bytes/ms burst TOKEN_MAX limit QUEUE_LIMIT` as the root qdisc: a bucket
/// just large enough for the longest token, so that tokens leave at the rate and a long one
/// never waits for more than the bucket holds.
fn tbf(index: u32) -> TcMessage {
    let rate = PACE_BYTES_PER_MS * 1000;
    let burst = TOKEN_MAX as u32;
    let burst_ticks = (u64::from(burst) * 1_000_000_000 / u64::from(rate) / PSCHED_TICK_NS) as u32;
    // struct tc_tbf_qopt: rate and peak rate (struct tc_ratespec, 12 bytes each), limit,
    // buffer (in ticks), mtu.
    let mut qopt = Vec::with_capacity(36);
    qopt.extend_from_slice(&[0, TC_LINKLAYER_ETHERNET, 0, 0, 0, 0, 0, 0]);
    qopt.extend_from_slice(&rate.to_ne_bytes());
    qopt.extend_from_slice(&[0; 12]);
    qopt.extend_from_slice(&QUEUE_LIMIT.to_ne_bytes());
    qopt.extend_from_slice(&burst_ticks.to_ne_bytes());
    qopt.extend_from_slice(&0u32.to_ne_bytes());
    let mut message = TcMessage::with_index(index as i32);
    message.header.parent = TcHandle::ROOT;
    message.attributes = vec![
        TcAttribute::Kind("tbf".into()),
        TcAttribute::Options(vec![
            TcOption::Other(DefaultNla::new(TCA_TBF_PARMS, qopt)),
            TcOption::Other(DefaultNla::new(TCA_TBF_BURST, burst.to_ne_bytes().to_vec())),
        ]),
    ];
    message
}

/// The packet socket tokens are queued through (through the qdisc: no bypass).
pub struct TokenSocket {
    fd: OwnedFd,
}

impl TokenSocket {
    pub fn open(index: u32) -> io::Result<Self> {
        let fd = super::packet_socket()?;
        super::bind_packet(&fd, 0, index)?;
        super::force_buffer(fd.as_raw_fd(), libc::SO_SNDBUFFORCE, 4 << 20);
        Ok(Self { fd })
    }

    /// Queues `tokens` in order, up to 64 to a system call. A token the kernel refuses (a
    /// full queue) is skipped, so that the rest keep their times; returns how many were
    /// refused, and the last error.
    pub fn send(&self, tokens: &[Token]) -> (usize, Option<io::Error>) {
        static ZEROS: [u8; TOKEN_MAX] = [0; TOKEN_MAX];
        let headers: Vec<[u8; TOKEN_MIN]> = tokens.iter().map(|&(d, _)| header(d)).collect();
        let mut iov: Vec<[libc::iovec; 2]> = tokens
            .iter()
            .zip(&headers)
            .map(|(&(_, len), h)| {
                [
                    libc::iovec {
                        iov_base: h.as_ptr().cast_mut().cast(),
                        iov_len: TOKEN_MIN,
                    },
                    libc::iovec {
                        iov_base: ZEROS.as_ptr().cast_mut().cast(),
                        iov_len: len.clamp(TOKEN_MIN, TOKEN_MAX) - TOKEN_MIN,
                    },
                ]
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iov
            .iter_mut()
            .map(|v| {
                // SAFETY: mmsghdr is plain old data; zeroed is a valid value.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_iov = v.as_mut_ptr();
                m.msg_hdr.msg_iovlen = 2;
                m
            })
            .collect();
        let (mut next, mut refused, mut error) = (0, 0, None);
        while let Some(rest) = msgs.get_mut(next..).filter(|r| !r.is_empty()) {
            let batch = rest.len().min(64);
            // SAFETY: every header points at iovecs and bytes that outlive the call; the
            // kernel only reads them.
            let n = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    rest.as_mut_ptr(),
                    batch as u32,
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                error = Some(io::Error::last_os_error());
            }
            let n = usize::try_from(n).unwrap_or(0);
            next += n;
            if n < batch {
                // The token at `next` was refused.
                next += 1;
                refused += 1;
            }
        }
        (refused, error)
    }
}

/// A token's first bytes: an Ethernet header (broadcast, type IPv4), four zeros (an IPv4
/// header length of 0: see [`TOKEN_MIN`]) and the discriminator.
fn header(discr: u32) -> [u8; TOKEN_MIN] {
    let [d0, d1, d2, d3] = discr.to_be_bytes();
    let b = 0xff;
    [
        b, b, b, b, b, b, 0, 0, 0, 0, 0, 0, 0x08, 0x00, 0, 0, 0, 0, d0, d1, d2, d3,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_reads_as_no_ip_header_whatever_its_discriminator() {
        for discr in [0, 1, 0x1fc0_a4a3, 0x4500_0000, u32::MAX] {
            let h = header(discr);
            assert_eq!(&h[12..14], &0x0800u16.to_be_bytes());
            // The IPv4 header length nibble is 0: the kernel sets no transport header.
            assert_eq!(h[14] & 0x0f, 0, "{discr:#x}");
            assert_eq!(u32::from_be_bytes([h[18], h[19], h[20], h[21]]), discr);
        }
    }
}
