//! Per-class frame counters (the `CLASS_COUNTS` per-CPU array, indexed by [`FrameClass`]).

/// The class of a frame seen by the XDP program; its value is the index into `CLASS_COUNTS`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameClass {
    Arp = 0,
    Icmp = 1,
    Tcp = 2,
    Udp = 3,
    Vrrp = 4,
    Igmp = 5,
    /// IPv4 with any other protocol.
    Ipv4Other = 6,
    Ipv6 = 7,
    /// Any other EtherType, and frames too short to classify.
    Other = 8,
}

impl FrameClass {
    pub const COUNT: u32 = 9;
    pub const ALL: [FrameClass; Self::COUNT as usize] = [
        Self::Arp,
        Self::Icmp,
        Self::Tcp,
        Self::Udp,
        Self::Vrrp,
        Self::Igmp,
        Self::Ipv4Other,
        Self::Ipv6,
        Self::Other,
    ];

    /// The class of an IPv4 packet carrying `protocol`.
    pub const fn from_ipv4_protocol(protocol: u8) -> Self {
        match protocol {
            1 => Self::Icmp,
            2 => Self::Igmp,
            6 => Self::Tcp,
            17 => Self::Udp,
            112 => Self::Vrrp,
            _ => Self::Ipv4Other,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Arp => "arp",
            Self::Icmp => "icmp",
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Vrrp => "vrrp",
            Self::Igmp => "igmp",
            Self::Ipv4Other => "ipv4_other",
            Self::Ipv6 => "ipv6",
            Self::Other => "other",
        }
    }
}

/// Frames and bytes of one class, on one CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassCount {
    pub frames: u64,
    pub bytes: u64,
}

const _: () = assert!(core::mem::size_of::<ClassCount>() == 16);

#[cfg(feature = "user")]
// SAFETY: repr(C), two u64 fields, no padding, every bit pattern valid.
unsafe impl aya::Pod for ClassCount {}
