//! VRRP wire constants, and what the XDP program and the agent exchange: the VRIDs
//! configured per interface (`VRIDS`), the master each one follows (`PEERS`), changes of it
//! and ARP conflicts (`EVENTS`), a counter per check outcome (`VERDICTS`), the VIPs with
//! who last claimed each one by ARP (`VIPS`, `VIP_CLAIMS`) and the unicast peers a VRID accepts
//! (`SOURCES`). The agent's codec and the
//! XDP program both take their constants from here, so the two parsers cannot drift apart.

pub const IPPROTO_VRRP: u8 = 112;
/// Sent and required: an advert that crossed a router is not from our link.
pub const TTL: u8 = 255;
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// Version/type, VRID, priority, count, two bytes of auth type and interval (v2) or interval
/// (v3), checksum.
pub const HEADER_LEN: usize = 8;
/// VRRPv2's authentication data after the addresses.
pub const AUTH_LEN: usize = 8;
pub const AUTH_NONE: u8 = 0;
pub const AUTH_PASS: u8 = 1;
pub const MAX_ADDRS: usize = 255;
/// The longest VRRP message over IPv4 (v2 with 255 addresses).
pub const MAX_LEN: usize = HEADER_LEN + 4 * MAX_ADDRS + AUTH_LEN;
/// The most IPv6 addresses an advert the XDP program judges may list: as many as fit a
/// 1500-byte frame. A longer one (a jumbo frame) is passed to the agent unjudged.
pub const MAX_ADDRS_V6: usize = 20;
/// The longest VRRP message over IPv6 the XDP program judges.
pub const MAX_LEN_V6: usize = HEADER_LEN + 16 * MAX_ADDRS_V6;
/// Added to an IPv6 virtual router's VRID in the maps' keys: each family has its own VRID
/// space (RFC 5798).
pub const VRID_IPV6: u32 = 0x100;

/// The outcome of the XDP program's checks on one VRRP packet, in the order the agent's
/// receive step makes them; its value indexes the `VERDICTS` counters. The agent's own
/// checks that need its state (own address, address list) are not made in the kernel.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Accepted = 0,
    BadIp = 1,
    Ttl = 2,
    Version = 3,
    Type = 4,
    Length = 5,
    Checksum = 6,
    ZeroInterval = 7,
    UnknownVrid = 8,
    Interval = 9,
    AuthType = 10,
    AuthMismatch = 11,
    /// Accepted and kept in the kernel: the VRID's instance is a backup that reads `PEERS`
    /// and `EVENTS` instead of its socket.
    Absorbed = 12,
    /// The VRID checks sources (`check_unicast_src`) and the sender is not in `SOURCES`.
    UnknownSource = 13,
}

impl Verdict {
    pub const COUNT: u32 = 14;
    pub const ALL: [Verdict; Self::COUNT as usize] = [
        Self::Accepted,
        Self::BadIp,
        Self::Ttl,
        Self::Version,
        Self::Type,
        Self::Length,
        Self::Checksum,
        Self::ZeroInterval,
        Self::UnknownVrid,
        Self::Interval,
        Self::AuthType,
        Self::AuthMismatch,
        Self::UnknownSource,
        Self::Absorbed,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::BadIp => "bad_ip",
            Self::Ttl => "ttl",
            Self::Version => "version",
            Self::Type => "type",
            Self::Length => "length",
            Self::Checksum => "checksum",
            Self::ZeroInterval => "zero_interval",
            Self::UnknownVrid => "unknown_vrid",
            Self::Interval => "interval",
            Self::AuthType => "auth_type",
            Self::AuthMismatch => "auth_mismatch",
            Self::Absorbed => "absorbed",
            Self::UnknownSource => "unknown_source",
        }
    }
}

/// A VRID on an interface (an IPv6 one plus [`VRID_IPV6`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VridKey {
    pub ifindex: u32,
    pub vrid: u32,
}

/// What an instance expects of adverts (the agent fills `VRIDS` from keepalived.conf).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VridConfig {
    pub version: u8,
    /// [`AUTH_NONE`] or [`AUTH_PASS`] (VRRPv2).
    pub auth_type: u8,
    /// VRRPv2: the advert interval in seconds, which adverts must carry.
    pub interval_s: u8,
    /// 1: adverts the agent would accept are absorbed (counted, recorded in `PEERS`, changes
    /// sent on `EVENTS`, then dropped) instead of passed to its socket.
    pub absorb: u8,
    /// The agent's own address ([`addr16`]): its adverts are passed, for it to drop.
    pub own: [u8; 16],
    /// VRRPv2 PASS data, zero padded.
    pub auth: [u8; AUTH_LEN],
    /// The agent's address list, as a count and an [`addr_digest`]: an advert with another
    /// list is passed, for the agent's own address-list check.
    pub addr_count: u8,
    /// 1: only senders listed in `SOURCES` for this VRID are accepted (unicast peers).
    pub check_src: u8,
    /// 1 (`vrrp_strict`): a VRRPv2 advert with another interval is dropped. 0: it still
    /// proves its sender alive, so it is passed to the agent (never absorbed).
    pub strict: u8,
    /// 1: unicast peers. Their adverts may have crossed routers: the TTL is not checked (as
    /// keepalived does).
    pub unicast: u8,
    pub addr_digest: u64,
    /// Where `PEER_SLOTS` mirrors this VRID's `PEERS` entry (the agent's choice, below
    /// [`PEER_SLOTS`]).
    pub slot: u32,
    pub _pad: u32,
}

/// Entries of `PEER_SLOTS`: a copy of each configured VRID's `PEERS` entry, in an array the
/// agent maps into its memory and reads without a system call. Written under a sequence
/// count ([`Peer::seq`]): odd while a write is under way. Every mapped page is resident:
/// 512 slots (20 KiB) cover 255 VRIDs of each family on an interface; VRIDs past them are
/// read from `PEERS` by system call.
pub const PEER_SLOTS: u32 = 512;

/// A sender a VRID accepts (`SOURCES`, for `check_unicast_src`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SourceKey {
    pub ifindex: u32,
    pub vrid: u32,
    /// [`addr16`].
    pub addr: [u8; 16],
}

/// An address as the maps hold it: IPv6 as is, IPv4 in the first four bytes (network
/// order), the rest zero.
pub const fn addr16(addr: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < addr.len() && i < 16 {
        out[i] = addr[i];
        i += 1;
    }
    out
}

/// One address's share of an order-free digest of an address list (the wrapping sum of the
/// shares): a 64-bit mix of its [`addr16`] form as two big-endian halves, so that different
/// lists practically never sum alike.
#[inline(always)]
pub const fn addr_share(hi: u64, lo: u64) -> u64 {
    let mut x = hi.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ lo.wrapping_mul(0xd6e8_feb8_6659_fd93);
    x ^= x >> 29;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^ (x >> 32)
}

/// The digest of an address list ([`addr16`] forms), in any order.
pub fn addr_digest(addrs: impl IntoIterator<Item = [u8; 16]>) -> u64 {
    addrs.into_iter().fold(0u64, |sum, a| {
        let (hi, lo) = a.split_at(8);
        let half = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
        sum.wrapping_add(addr_share(half(hi), half(lo)))
    })
}

/// The master a VRID's last accepted advert came from.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Peer {
    /// Its address ([`addr16`]).
    pub master: [u8; 16],
    pub priority: u8,
    pub addr_count: u8,
    /// Its advert interval in centiseconds.
    pub interval_cs: u16,
    /// `PEER_SLOTS` only: incremented before and after each write (odd: being written).
    pub seq: u32,
    /// Adverts accepted from it.
    pub adverts: u64,
    /// CLOCK_MONOTONIC of the last one (`bpf_ktime_get_ns`), in ns.
    pub last_seen_ns: u64,
}

/// Why an [`Event`] was sent: the kernel reports changes only, never steady adverts.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    NewMaster = 1,
    Priority = 2,
    /// Priority 0: the master resigns.
    Resign = 3,
    Interval = 4,
    /// An ARP frame from another MAC claimed a VIP we hold (split brain).
    ArpConflict = 5,
}

/// One entry of the `EVENTS` ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// The VRID the change concerns (for [`Change::ArpConflict`], the VIP's instance).
    pub key: VridKey,
    /// A [`Change`] value.
    pub change: u32,
    pub _pad: u32,
    /// The advert changes: the master as now recorded.
    pub peer: Peer,
    /// The record the change replaced: the last advert before it, which a sleeping backup
    /// has not read yet (the time of its last advert from a better master, say).
    pub before: Peer,
    /// [`Change::ArpConflict`]: the VIP (network order) and the MAC that claimed it.
    pub vip: [u8; 4],
    pub mac: [u8; 6],
    pub _pad2: [u8; 6],
}

/// A VIP on an interface (`VIPS`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VipKey {
    pub ifindex: u32,
    /// Network order.
    pub addr: [u8; 4],
}

/// A configured VIP (`VIPS`), written by the agent only: a takeover rewrites many of them in
/// one batch without touching what the kernel recorded.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipEntry {
    /// The VRID of the instance it belongs to.
    pub vrid: u32,
    /// 1 while the agent holds it (MASTER): a claim by another MAC is then a conflict event.
    pub held: u8,
    pub _pad: u8,
    /// The MAC the agent answers for it with (its interface's).
    pub own_mac: [u8; 6],
}

/// ARP claims of a configured VIP by other MACs (`VIP_CLAIMS`), written by the kernel only.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipClaims {
    /// The last other MAC whose ARP frame claimed it (sender address = the VIP).
    pub holder: [u8; 6],
    pub _pad: [u8; 2],
    /// ARP frames from other MACs claiming it.
    pub claims: u64,
    /// CLOCK_MONOTONIC of the last such frame, in ns.
    pub last_claim_ns: u64,
    /// When the last conflict event was sent (at most one per [`CONFLICT_EVENT_GAP_NS`]
    /// per VIP unless the claiming MAC changes).
    pub last_event_ns: u64,
}

pub const CONFLICT_EVENT_GAP_NS: u64 = 100_000_000;

/// A VIP held by a master without Accept_Mode (`NOT_ACCEPTED`): traffic addressed to it is
/// dropped, Neighbor Discovery excepted. Written by the agent only.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NotAcceptedKey {
    /// 4 or 6.
    pub family: u32,
    /// [`addr16`].
    pub addr: [u8; 16],
}

/// A `VERDICTS` counter: per interface and verdict.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CountKey {
    pub ifindex: u32,
    /// A [`Verdict`] value.
    pub verdict: u32,
}

const _: () = assert!(core::mem::size_of::<VridKey>() == 8);
const _: () = assert!(core::mem::size_of::<VridConfig>() == 48);
const _: () = assert!(core::mem::size_of::<Peer>() == 40);
const _: () = assert!(core::mem::size_of::<Event>() == 112);
const _: () = assert!(core::mem::size_of::<VipKey>() == 8);
const _: () = assert!(core::mem::size_of::<SourceKey>() == 24);
const _: () = assert!(core::mem::size_of::<VipEntry>() == 12);
const _: () = assert!(core::mem::size_of::<VipClaims>() == 32);
const _: () = assert!(core::mem::size_of::<CountKey>() == 8);

#[cfg(feature = "user")]
mod pod {
    // SAFETY (all): repr(C), integer fields only, no implicit padding (sizes asserted above),
    // every bit pattern valid.
    unsafe impl aya::Pod for super::VridKey {}
    unsafe impl aya::Pod for super::VridConfig {}
    unsafe impl aya::Pod for super::Peer {}
    unsafe impl aya::Pod for super::Event {}
    unsafe impl aya::Pod for super::CountKey {}
    unsafe impl aya::Pod for super::VipKey {}
    unsafe impl aya::Pod for super::SourceKey {}
    unsafe impl aya::Pod for super::VipEntry {}
    unsafe impl aya::Pod for super::NotAcceptedKey {}
    unsafe impl aya::Pod for super::VipClaims {}
}
