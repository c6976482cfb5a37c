//! What the XDP program and the agent share for BFD (`bfd_instance`): the agent puts each
//! session that is Up with nothing to negotiate into `BFD_SESSIONS`, with the packet its
//! peer sends while steady; the kernel drops packets equal to it, byte for byte, and keeps
//! the detection timer (`bpf_timer`, re-armed per packet). When the peer falls silent the
//! timer reports it on `BFD_EVENTS` and stops absorbing; any other packet goes to the agent.
//! A timer that runs out late (this host stalled) first waits one more of the peer's
//! intervals.

/// UDP port of single-hop control packets (RFC 5881).
pub const BFD_PORT: u16 = 3784;
/// A control packet without authentication.
pub const BFD_LEN: usize = 24;

/// `BFD_SESSIONS` key: our discriminator, as the peer's packets carry it (Your
/// Discriminator, host order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BfdKey {
    pub discr: u32,
}

/// The kernel's `struct bpf_timer` (the verifier finds it by this name in the map's BTF).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct bpf_timer {
    pub opaque: [u64; 2],
}

/// One watched session (`BFD_SESSIONS` value). The agent writes the whole entry; the kernel
/// writes `last_ns`, `absorbed`, `ifindex`, `macs` and `timer` (an update from user space starts a new entry,
/// whose timer the next absorbed packet arms).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BfdWatch {
    /// The packet a steady peer sends, byte for byte.
    pub expect: [u8; BFD_LEN],
    /// The peer's address (IPv4 in the first four bytes).
    pub peer: [u8; 16],
    /// 4 or 6.
    pub family: u8,
    /// The smallest TTL (hop limit) accepted.
    pub min_ttl: u8,
    /// The timer already ran out late once since the last absorbed packet, and waited
    /// another interval (this host had stalled: [`STALL_NS`]).
    pub forgiven: u8,
    /// The peer's Detect Mult: the detection time over it is the peer's interval.
    pub detect_mult: u8,
    /// The interface the last absorbed packet came in on (written by the kernel).
    pub ifindex: u32,
    /// The detection time.
    pub detect_ns: u64,
    /// When the last absorbed packet arrived (`bpf_ktime_get_ns`).
    pub last_ns: u64,
    /// Packets absorbed.
    pub absorbed: u64,
    /// The last absorbed packet's destination and source MAC (written by the kernel): what
    /// a frame to the peer carries the other way round.
    pub macs: [u8; 12],
    pub _pad: [u8; 4],
    pub timer: bpf_timer,
}

const _: () = assert!(core::mem::size_of::<BfdWatch>() == 104);

/// A timer that runs out this late (ns) ran late because this host stalled (a VM paused or
/// throttled by its host, its softirqs held up; a timer otherwise fires within tens of µs):
/// the peer, if it shares the host, could not send either, and what it sends on waking is on
/// its way. The timer then waits one more of the peer's intervals, once per silence, before
/// the silence is reported.
pub const STALL_NS: u64 = 100_000;

/// `BFD_EVENTS`: a watched peer fell silent for the detection time.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BfdExpired {
    pub discr: u32,
    pub _pad: u32,
    /// When its last packet arrived.
    pub last_ns: u64,
}

/// A steady session's whole frame on the wire: Ethernet, IPv4, UDP and the control packet.
pub const BFD_FRAME_LEN: usize = 14 + 20 + 8 + BFD_LEN;

/// A session whose periodic packets the kernel transmits (`BFD_TX` value, by our
/// discriminator): the agent writes the frame and the interface; `bfd_pace` sends it once
/// per token that names the session and counts it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BfdTx {
    pub frame: [u8; BFD_FRAME_LEN],
    pub _pad: [u8; 2],
    /// The interface to send it on.
    pub ifindex: u32,
    /// Frames sent.
    pub sent: u64,
}

const _: () = assert!(core::mem::size_of::<BfdTx>() == 80);

/// The kernel clocks the transmission: the agent queues tokens on the pacing interface,
/// whose token-bucket qdisc releases [`PACE_BYTES_PER_MS`] bytes per millisecond, so a
/// token's length is the time since the one before it. A token is an Ethernet header
/// (type IPv4, so that the kernel's view of the frame it becomes is right), four zeros and
/// the discriminator of the session it sends for (big-endian), 0 for none (a pause); zeros
/// pad it. The zeros read as an IPv4 header length of 0, so that the kernel, parsing the
/// token as it queues it, marks no transport header in it: a discriminator read as a header
/// length would set one past the frame's end, and the frame could not be cut to its size.
pub const PACE_BYTES_PER_MS: u32 = 1000;
/// The shortest token: a header, the zeros and a discriminator.
pub const TOKEN_MIN: usize = 22;
/// The longest token (the pacing interface's MTU plus its header): 9 ms.
pub const TOKEN_MAX: usize = 9014;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C), integer fields only, no implicit padding (sizes fixed above), every
    // bit pattern valid.
    unsafe impl aya::Pod for super::BfdKey {}
    unsafe impl aya::Pod for super::BfdWatch {}
    unsafe impl aya::Pod for super::BfdExpired {}
    unsafe impl aya::Pod for super::BfdTx {}
}
