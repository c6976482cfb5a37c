//! VRRP wire constants, and what the XDP program and the agent exchange about adverts: the
//! VRIDs configured per interface (`VRIDS`), the master each one follows (`PEERS`), changes
//! of it (`EVENTS`) and a counter per check outcome (`VERDICTS`). The agent's codec and the
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
/// The longest VRRP message (v2 with 255 addresses).
pub const MAX_LEN: usize = HEADER_LEN + 4 * MAX_ADDRS + AUTH_LEN;

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
}

impl Verdict {
    pub const COUNT: u32 = 12;
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
        }
    }
}

/// A VRID on an interface.
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
    pub _pad: [u8; 5],
    /// VRRPv2 PASS data, zero padded.
    pub auth: [u8; AUTH_LEN],
}

/// The master a VRID's last accepted advert came from.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Peer {
    /// Its IPv4 address, in network order.
    pub master: [u8; 4],
    pub priority: u8,
    pub addr_count: u8,
    /// Its advert interval in centiseconds.
    pub interval_cs: u16,
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
}

/// One entry of the `EVENTS` ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub key: VridKey,
    /// A [`Change`] value.
    pub change: u32,
    pub _pad: u32,
    pub peer: Peer,
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
const _: () = assert!(core::mem::size_of::<VridConfig>() == 16);
const _: () = assert!(core::mem::size_of::<Peer>() == 24);
const _: () = assert!(core::mem::size_of::<Event>() == 40);
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
}
