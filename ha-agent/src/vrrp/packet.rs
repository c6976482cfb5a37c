//! VRRP advertisements on the wire (RFC 3768 v2, RFC 5798/9568 v3), IPv4 and IPv6.
//!
//! [`Advert::parse`] and [`Advert::emit`] are exact inverses for valid adverts. Receive
//! validation follows RFC 3768/5798 §7.1: [`IpHeader::parse`] checks the IP part,
//! [`Advert::parse`] the message itself, [`check_advert`] what depends on the instance.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use subtle::ConstantTimeEq as _;

// Shared with the XDP program, so that the two parsers cannot drift apart.
use ha_common::vrrp::{AUTH_LEN, AUTH_NONE, AUTH_PASS, HEADER_LEN, TYPE_ADVERTISEMENT};
pub use ha_common::vrrp::{IPPROTO_VRRP, TTL};

pub const VRRP_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
pub const VRRP_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// The address family of an instance: its VIPs, adverts and sockets (RFC 5798: each family
/// has its own VRID space).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Family {
    #[default]
    V4,
    V6,
}

impl Family {
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Bytes per address in an advert's list.
    pub fn addr_len(self) -> usize {
        match self {
            Family::V4 => 4,
            Family::V6 => 16,
        }
    }

    /// The group adverts go to unless configured otherwise.
    pub fn group(self) -> IpAddr {
        match self {
            Family::V4 => VRRP_GROUP_V4.into(),
            Family::V6 => VRRP_GROUP_V6.into(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// An address's bytes as they go on the wire.
pub fn octets(addr: &IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Why a received packet was dropped; each reason has its own counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// IP header malformed or truncated, or not protocol 112 (an IPv6 extension header
    /// included).
    BadIp,
    /// TTL (IPv6: hop limit) is not 255 (the packet crossed a router).
    Ttl,
    Version,
    Type,
    /// Not exactly as long as its version and address count imply.
    Length,
    Checksum,
    /// No instance with this VRID on the interface.
    UnknownVrid,
    /// VRRPv2 advert whose interval differs from ours.
    Interval,
    /// VRRPv3 advert with Max Adver Int 0.
    ZeroInterval,
    AuthType,
    AuthMismatch,
    /// Our own advert looped back.
    Own,
    /// Address count or list differs from ours (and the sender is not the owner, priority 255).
    AddressList,
    /// `check_unicast_src`: the sender is not one of our unicast peers.
    UnknownSource,
}

impl DropReason {
    pub const ALL: [DropReason; 14] = [
        DropReason::BadIp,
        DropReason::Ttl,
        DropReason::Version,
        DropReason::Type,
        DropReason::Length,
        DropReason::Checksum,
        DropReason::UnknownVrid,
        DropReason::Interval,
        DropReason::ZeroInterval,
        DropReason::AuthType,
        DropReason::AuthMismatch,
        DropReason::Own,
        DropReason::AddressList,
        DropReason::UnknownSource,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::BadIp => "bad_ip",
            DropReason::Ttl => "ttl",
            DropReason::Version => "version",
            DropReason::Type => "type",
            DropReason::Length => "length",
            DropReason::Checksum => "checksum",
            DropReason::UnknownVrid => "unknown_vrid",
            DropReason::Interval => "interval",
            DropReason::ZeroInterval => "zero_interval",
            DropReason::AuthType => "auth_type",
            DropReason::AuthMismatch => "auth_mismatch",
            DropReason::Own => "own",
            DropReason::AddressList => "address_list",
            DropReason::UnknownSource => "unknown_source",
        }
    }
}

/// The fields of an IP header that VRRP validation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpHeader {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL (IPv4) or hop limit (IPv6).
    pub ttl: u8,
    /// Protocol (IPv4) or next header (IPv6).
    pub protocol: u8,
    pub header_len: usize,
    /// Total length from the header, clamped to the bytes present.
    pub total_len: usize,
}

impl IpHeader {
    /// Parses the IPv4 or IPv6 header at the start of `packet`.
    pub fn parse(packet: &[u8]) -> Result<Self, DropReason> {
        match packet.first().map(|b| b >> 4) {
            Some(4) => Self::parse_v4(packet),
            Some(6) => Self::parse_v6(packet),
            _ => Err(DropReason::BadIp),
        }
    }

    fn parse_v4(packet: &[u8]) -> Result<Self, DropReason> {
        let Some(fixed) = packet.first_chunk::<20>() else {
            return Err(DropReason::BadIp);
        };
        let header_len = usize::from(fixed[0] & 0x0f) * 4;
        let total_len = usize::from(u16::from_be_bytes([fixed[2], fixed[3]]));
        if header_len < 20 || total_len < header_len || packet.len() < header_len {
            return Err(DropReason::BadIp);
        }
        Ok(Self {
            src: Ipv4Addr::new(fixed[12], fixed[13], fixed[14], fixed[15]).into(),
            dst: Ipv4Addr::new(fixed[16], fixed[17], fixed[18], fixed[19]).into(),
            ttl: fixed[8],
            protocol: fixed[9],
            header_len,
            total_len: total_len.min(packet.len()),
        })
    }

    /// The fixed IPv6 header only: an advert behind extension headers has another next
    /// header and is dropped as not VRRP, as keepalived's raw socket would not see it either.
    fn parse_v6(packet: &[u8]) -> Result<Self, DropReason> {
        let Some(fixed) = packet.first_chunk::<40>() else {
            return Err(DropReason::BadIp);
        };
        let payload = usize::from(u16::from_be_bytes([fixed[4], fixed[5]]));
        let addr = |at: usize| {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(fixed.get(at..at + 16).unwrap_or(&[0; 16]));
            IpAddr::from(Ipv6Addr::from(octets))
        };
        Ok(Self {
            src: addr(8),
            dst: addr(24),
            ttl: fixed[7],
            protocol: fixed[6],
            header_len: 40,
            total_len: (40 + payload).min(packet.len()),
        })
    }

    /// The payload after the header, without link-layer padding.
    pub fn payload<'a>(&self, packet: &'a [u8]) -> &'a [u8] {
        packet
            .get(self.header_len..self.total_len)
            .unwrap_or_default()
    }
}

/// Advertisement interval as carried on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interval {
    /// VRRPv2: whole seconds (8 bits).
    Seconds(u8),
    /// VRRPv3: centiseconds (12 bits).
    Centis(u16),
}

impl Interval {
    pub fn centis(self) -> u32 {
        match self {
            Interval::Seconds(s) => u32::from(s) * 100,
            Interval::Centis(c) => u32::from(c),
        }
    }
}

/// Which form of the checksum a VRRPv3/IPv4 advert carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumForm {
    /// Over the message only (VRRPv2; RFC 9568 VRRPv3/IPv4).
    Message,
    /// Over the IP pseudo-header and the message (keepalived's and FRR's VRRPv3 default;
    /// the only form over IPv6).
    PseudoHeader,
}

/// A VRRP advertisement. Its addresses are of the family it was sent over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert {
    pub vrid: u8,
    pub priority: u8,
    pub interval: Interval,
    /// VRRPv2 authentication: type and 8 data bytes. `None` for v3.
    pub auth: Option<(u8, [u8; AUTH_LEN])>,
    pub addrs: Vec<IpAddr>,
}

impl Advert {
    pub fn version(&self) -> u8 {
        match self.interval {
            Interval::Seconds(_) => 2,
            Interval::Centis(_) => 3,
        }
    }

    /// Parses and checks a VRRP message (the IP payload, without link-layer padding) sent from
    /// `src` to `dst`, whose family is the list's. Returns the advert and the checksum form
    /// that matched.
    pub fn parse(
        msg: &[u8],
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
    ) -> Result<(Self, ChecksumForm), DropReason> {
        let (src, dst) = (src.into(), dst.into());
        let family = Family::of(src);
        let Some(header) = msg.first_chunk::<HEADER_LEN>() else {
            return Err(DropReason::Length);
        };
        let [ver_type, vrid, priority, count, b4, b5, _, _] = *header;
        let version = ver_type >> 4;
        if ver_type & 0x0f != TYPE_ADVERTISEMENT {
            return Err(DropReason::Type);
        }
        let count = usize::from(count);
        let size = family.addr_len();
        let len = match (version, family) {
            (2, Family::V4) => HEADER_LEN + size * count + AUTH_LEN,
            (3, _) => HEADER_LEN + size * count,
            _ => return Err(DropReason::Version),
        };
        // Exactly: bytes beyond the announced addresses would escape the checks.
        if msg.len() != len {
            return Err(DropReason::Length);
        }
        let form = if family == Family::V4 && checksum(msg, None) == 0 {
            ChecksumForm::Message
        } else if version == 3 && checksum(msg, Some((src, dst))) == 0 {
            ChecksumForm::PseudoHeader
        } else {
            return Err(DropReason::Checksum);
        };
        if version == 2 && form != ChecksumForm::Message {
            return Err(DropReason::Checksum);
        }
        let (addrs, trailer) = msg
            .get(HEADER_LEN..)
            .and_then(|body| body.split_at_checked(size * count))
            .ok_or(DropReason::Length)?;
        let addrs = match family {
            Family::V4 => (addrs.as_chunks::<4>().0.iter())
                .map(|a| Ipv4Addr::from(*a).into())
                .collect(),
            Family::V6 => (addrs.as_chunks::<16>().0.iter())
                .map(|a| Ipv6Addr::from(*a).into())
                .collect(),
        };
        let (interval, auth) = if version == 2 {
            let data = trailer
                .first_chunk::<AUTH_LEN>()
                .copied()
                .unwrap_or_default();
            (Interval::Seconds(b5), Some((b4, data)))
        } else {
            let centis = u16::from_be_bytes([b4, b5]) & 0x0fff;
            if centis == 0 {
                return Err(DropReason::ZeroInterval);
            }
            (Interval::Centis(centis), None)
        };
        Ok((
            Advert {
                vrid,
                priority,
                interval,
                auth,
                addrs,
            },
            form,
        ))
    }

    /// Appends the VRRP message to `out`. VRRPv3 checksums use `form` (with `src`/`dst` for
    /// the pseudo-header; always over IPv6); VRRPv2 always covers the message only.
    pub fn emit(
        &self,
        out: &mut Vec<u8>,
        form: ChecksumForm,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
    ) {
        let (src, dst) = (src.into(), dst.into());
        let start = out.len();
        let (version, b4, b5) = match self.interval {
            Interval::Seconds(s) => (2, self.auth.map_or(AUTH_NONE, |(t, _)| t), s),
            Interval::Centis(c) => {
                let [hi, lo] = (c & 0x0fff).to_be_bytes();
                (3, hi, lo)
            }
        };
        out.extend_from_slice(&[
            version << 4 | TYPE_ADVERTISEMENT,
            self.vrid,
            self.priority,
            self.addrs.len() as u8,
            b4,
            b5,
            0,
            0,
        ]);
        for addr in &self.addrs {
            out.extend_from_slice(&octets(addr));
        }
        if version == 2 {
            out.extend_from_slice(&self.auth.map_or([0; AUTH_LEN], |(_, d)| d));
        }
        let pseudo = (version == 3 && (form == ChecksumForm::PseudoHeader || src.is_ipv6()))
            .then_some((src, dst));
        let sum = checksum(out.get(start..).unwrap_or_default(), pseudo).to_be_bytes();
        if let Some(field) = out.get_mut(start + 6..start + 8) {
            field.copy_from_slice(&sum);
        }
    }
}

/// Instance-level receive checks (RFC 3768/5798 §7.1) that need the local configuration.
pub struct Expect<'a> {
    pub version: u8,
    /// Our interval (compared for VRRPv2 only).
    pub interval: Interval,
    /// VRRPv2 PASS data if we authenticate.
    pub auth_pass: Option<&'a [u8; AUTH_LEN]>,
    /// Our virtual addresses, which the advert must list (in any order).
    pub addrs: &'a [IpAddr],
    /// keepalived's `vrrp_skip_check_adv_addr`: adverts from this sender (the master we
    /// already follow) skip the address check.
    pub skip_addr_check_from: Option<IpAddr>,
    /// `check_unicast_src`: the only senders accepted (our unicast peers).
    pub sources: Option<&'a [IpAddr]>,
    /// `vrrp_strict`: an advert configured otherwise (address list, VRRPv2 interval) is
    /// dropped, as RFC 3768/5798 §7.1 says. Without it such an advert, authentic in every
    /// other way, is accepted as [`Accepted::Disagrees`]: its sender is alive.
    pub strict: bool,
}

/// What the instance checks found in an acceptable advert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    Clean,
    /// The address list differs but the sender owns the addresses (priority 255): accepted,
    /// worth a log line.
    OwnerAddressMismatch,
    /// Authentic, but configured otherwise than this node (a one-sided reload, say): its
    /// sender is alive and is followed; the difference is logged and counted.
    Disagrees(Disagreement),
}

/// Which configuration an advert disagrees with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Disagreement {
    pub addresses: bool,
    /// VRRPv2: another advert interval.
    pub interval: bool,
}

impl Disagreement {
    /// The fields that differ, as metrics and logs name them.
    pub fn fields(self) -> impl Iterator<Item = &'static str> {
        [
            (self.addresses, "virtual_ipaddress"),
            (self.interval, "advert_int"),
        ]
        .into_iter()
        .filter_map(|(differs, name)| differs.then_some(name))
    }
}

pub fn check_advert(
    advert: &Advert,
    src: IpAddr,
    expect: &Expect<'_>,
) -> Result<Accepted, DropReason> {
    if advert.version() != expect.version {
        return Err(DropReason::Version);
    }
    if let Some((auth_type, data)) = &advert.auth {
        match (expect.auth_pass, *auth_type) {
            (None, AUTH_NONE) => {}
            (Some(pass), AUTH_PASS) => {
                if !bool::from(pass.ct_eq(data)) {
                    return Err(DropReason::AuthMismatch);
                }
            }
            _ => return Err(DropReason::AuthType),
        }
    }
    if expect
        .sources
        .is_some_and(|allowed| !allowed.contains(&src))
    {
        return Err(DropReason::UnknownSource);
    }
    // Configuration last: what differs here proves a misconfigured peer, not a dead one.
    let other_interval = matches!(
        (advert.interval, expect.interval),
        (Interval::Seconds(theirs), Interval::Seconds(ours)) if theirs != ours
    );
    if other_interval && expect.strict {
        return Err(DropReason::Interval);
    }
    let same_list = advert.addrs.len() == expect.addrs.len()
        && advert.addrs.iter().all(|a| expect.addrs.contains(a));
    let other_list = !same_list && expect.skip_addr_check_from != Some(src);
    let owner = advert.priority == 255;
    if other_list && expect.strict && !owner {
        return Err(DropReason::AddressList);
    }
    Ok(match (other_list, other_interval) {
        (false, false) => Accepted::Clean,
        (true, false) if owner => Accepted::OwnerAddressMismatch,
        (addresses, interval) => Accepted::Disagrees(Disagreement {
            addresses,
            interval,
        }),
    })
}

/// The Internet checksum of `msg`, preceded by the IP pseudo-header of protocol 112 when
/// given. Over data whose checksum field is filled in, a correct checksum yields 0.
pub fn checksum(msg: &[u8], pseudo: Option<(IpAddr, IpAddr)>) -> u16 {
    checksum_as(IPPROTO_VRRP, msg, pseudo)
}

/// [`checksum`] for another protocol's pseudo-header (ICMPv6's, say).
pub fn checksum_as(protocol: u8, msg: &[u8], pseudo: Option<(IpAddr, IpAddr)>) -> u16 {
    let mut sum: u32 = 0;
    let words = |bytes: &[u8]| -> u32 {
        let (pairs, rest) = bytes.as_chunks::<2>();
        let odd = rest.first().map_or(0, |last| u32::from(*last) << 8);
        pairs
            .iter()
            .map(|pair| u32::from(u16::from_be_bytes(*pair)))
            .sum::<u32>()
            + odd
    };
    // IPv4's and IPv6's pseudo-headers sum alike: the addresses, the protocol (next
    // header) and the length (IPv6's 32-bit field has its high half zero here).
    if let Some((src, dst)) = pseudo {
        sum += words(&octets(&src)) + words(&octets(&dst));
        sum += u32::from(protocol);
        sum += msg.len() as u32;
    }
    sum += words(msg);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 10);
    const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 200);
    /// The seed configuration's advert: v2, VRID 107, priority 150, 1 s, PASS "1111".
    const SEED: [u8; 20] = [
        0x21, 0x6b, 0x96, 0x01, 0x01, 0x01, 0x21, 0xbf, 0xc0, 0xa8, 0x02, 0xc8, 0x31, 0x31, 0x31,
        0x31, 0x00, 0x00, 0x00, 0x00,
    ];
    const PASS: [u8; 8] = *b"1111\0\0\0\0";

    fn seed(priority: u8) -> Advert {
        Advert {
            vrid: 107,
            priority,
            interval: Interval::Seconds(1),
            auth: Some((AUTH_PASS, PASS)),
            addrs: vec![VIP.into()],
        }
    }

    fn v3(priority: u8) -> Advert {
        Advert {
            vrid: 107,
            priority,
            interval: Interval::Centis(100),
            auth: None,
            addrs: vec![VIP.into()],
        }
    }

    fn emit(advert: &Advert, form: ChecksumForm) -> Vec<u8> {
        let mut out = Vec::new();
        advert.emit(&mut out, form, SRC, VRRP_GROUP_V4);
        out
    }

    #[test]
    fn seed_advert_bytes() {
        assert_eq!(emit(&seed(150), ChecksumForm::Message), SEED);
        let (parsed, form) = Advert::parse(&SEED, SRC, VRRP_GROUP_V4).unwrap();
        assert_eq!(parsed, seed(150));
        assert_eq!(form, ChecksumForm::Message);
    }

    #[test]
    fn seed_shutdown_advert() {
        let bytes = emit(&seed(0), ChecksumForm::Message);
        let mut expected = SEED;
        expected[2] = 0;
        expected[6..8].copy_from_slice(&[0xb7, 0xbf]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn v3_checksum_forms() {
        let pseudo = emit(&v3(150), ChecksumForm::PseudoHeader);
        assert_eq!(u16::from_be_bytes([pseudo[6], pseudo[7]]), 0xd17c);
        let message = emit(&v3(150), ChecksumForm::Message);
        assert_eq!(u16::from_be_bytes([message[6], message[7]]), 0x74be);
        // Both forms are accepted and told apart.
        assert_eq!(
            Advert::parse(&pseudo, SRC, VRRP_GROUP_V4).unwrap().1,
            ChecksumForm::PseudoHeader
        );
        assert_eq!(
            Advert::parse(&message, SRC, VRRP_GROUP_V4).unwrap().1,
            ChecksumForm::Message
        );
        // The pseudo-header form depends on the addresses it was computed for.
        let other_src = Ipv4Addr::new(192, 168, 2, 11);
        assert_eq!(
            Advert::parse(&pseudo, other_src, VRRP_GROUP_V4),
            Err(DropReason::Checksum)
        );
    }

    #[test]
    fn round_trips() {
        for advert in [
            seed(1),
            seed(255),
            v3(0),
            Advert {
                vrid: 1,
                priority: 100,
                interval: Interval::Centis(1),
                auth: None,
                addrs: vec![],
            },
            Advert {
                vrid: 255,
                priority: 254,
                interval: Interval::Centis(4095),
                auth: None,
                addrs: (0..20).map(|i| Ipv4Addr::new(10, 0, 0, i).into()).collect(),
            },
            Advert {
                vrid: 9,
                priority: 9,
                interval: Interval::Seconds(255),
                auth: Some((AUTH_NONE, [0; 8])),
                addrs: vec![VIP.into(), SRC.into()],
            },
        ] {
            for form in [ChecksumForm::Message, ChecksumForm::PseudoHeader] {
                let bytes = emit(&advert, form);
                let (parsed, _) = Advert::parse(&bytes, SRC, VRRP_GROUP_V4).unwrap();
                assert_eq!(parsed, advert);
            }
        }
    }

    #[test]
    fn bytes_beyond_the_announced_addresses_are_a_length_error() {
        // Link-layer padding is cut off by the IP total length before this parser runs.
        let mut long = SEED.to_vec();
        long.extend_from_slice(&[0; 4]);
        assert_eq!(
            Advert::parse(&long, SRC, VRRP_GROUP_V4),
            Err(DropReason::Length)
        );
    }

    #[test]
    fn malformed_adverts_are_rejected_with_their_reason() {
        let mut bad_version = SEED;
        bad_version[0] = 0x41;
        let mut bad_type = SEED;
        bad_type[0] = 0x22;
        let mut bad_sum = SEED;
        bad_sum[7] ^= 1;
        let mut too_many_addrs = SEED;
        too_many_addrs[3] = 2;
        let mut zero_interval = emit(&v3(100), ChecksumForm::Message);
        zero_interval[4] = 0;
        zero_interval[5] = 0;
        zero_interval[6] = 0;
        zero_interval[7] = 0;
        let sum = checksum(&zero_interval, None);
        zero_interval[6..8].copy_from_slice(&sum.to_be_bytes());
        let cases: [(&[u8], DropReason); 7] = [
            (&[], DropReason::Length),
            (&SEED[..7], DropReason::Length),
            (&SEED[..19], DropReason::Length),
            (&bad_version, DropReason::Version),
            (&bad_type, DropReason::Type),
            (&bad_sum, DropReason::Checksum),
            (&too_many_addrs, DropReason::Length),
        ];
        for (bytes, reason) in cases {
            assert_eq!(
                Advert::parse(bytes, SRC, VRRP_GROUP_V4),
                Err(reason),
                "{bytes:02x?}"
            );
        }
        assert_eq!(
            Advert::parse(&zero_interval, SRC, VRRP_GROUP_V4),
            Err(DropReason::ZeroInterval)
        );
    }

    #[test]
    fn v2_with_a_pseudo_header_checksum_is_rejected() {
        let mut bytes = SEED;
        bytes[6..8].copy_from_slice(&[0, 0]);
        let sum = checksum(&bytes, Some((SRC.into(), VRRP_GROUP_V4.into())));
        bytes[6..8].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(
            Advert::parse(&bytes, SRC, VRRP_GROUP_V4),
            Err(DropReason::Checksum)
        );
    }

    /// What the seed's BACKUP expects (VRRPv2, 1 s, PASS, one VIP).
    fn seed_expect(vips: &[IpAddr], strict: bool) -> Expect<'_> {
        Expect {
            version: 2,
            interval: Interval::Seconds(1),
            auth_pass: Some(&PASS),
            addrs: vips,
            skip_addr_check_from: None,
            sources: None,
            strict,
        }
    }

    #[test]
    fn instance_checks() {
        let vips = [IpAddr::from(VIP)];
        let expect = seed_expect(&vips, true);
        let check = |advert: &Advert, expect: &Expect<'_>| check_advert(advert, SRC.into(), expect);
        assert_eq!(check(&seed(150), &expect), Ok(Accepted::Clean));
        let wrong = Advert {
            auth: Some((AUTH_PASS, *b"2222\0\0\0\0")),
            ..seed(150)
        };
        assert_eq!(check(&wrong, &expect), Err(DropReason::AuthMismatch));
        let none = Advert {
            auth: Some((AUTH_NONE, [0; 8])),
            ..seed(150)
        };
        assert_eq!(check(&none, &expect), Err(DropReason::AuthType));
        let slow = Advert {
            interval: Interval::Seconds(2),
            ..seed(150)
        };
        assert_eq!(check(&slow, &expect), Err(DropReason::Interval));
        assert_eq!(check(&v3(150), &expect), Err(DropReason::Version));
        // v3 intervals are learned, not compared.
        let expect3 = Expect {
            version: 3,
            interval: Interval::Centis(10),
            auth_pass: None,
            ..expect
        };
        assert_eq!(check(&v3(150), &expect3), Ok(Accepted::Clean));
        let open = Expect {
            auth_pass: None,
            ..expect
        };
        assert_eq!(check(&seed(150), &open), Err(DropReason::AuthType));
        // check_unicast_src: only the listed peers, and only once authenticated.
        let other = IpAddr::from(Ipv4Addr::new(192, 168, 2, 77));
        let peers = Expect {
            sources: Some(&[IpAddr::V4(SRC)]),
            ..expect
        };
        assert_eq!(check(&seed(150), &peers), Ok(Accepted::Clean));
        let strangers = Expect {
            sources: Some(&[other]),
            ..expect
        };
        assert_eq!(
            check(&seed(150), &strangers),
            Err(DropReason::UnknownSource)
        );
        assert_eq!(check(&wrong, &strangers), Err(DropReason::AuthMismatch));
    }

    /// Without `vrrp_strict` an authentic advert configured otherwise is accepted as proof of
    /// life; the configuration is compared only after everything that authenticates it.
    #[test]
    fn configuration_differences_are_not_death_unless_strict() {
        let vips = [IpAddr::from(VIP)];
        let (lenient, strict) = (seed_expect(&vips, false), seed_expect(&vips, true));
        let check = |advert: &Advert, expect: &Expect<'_>| check_advert(advert, SRC.into(), expect);
        let slow = Advert {
            interval: Interval::Seconds(2),
            ..seed(150)
        };
        let more = Advert {
            addrs: vec![VIP.into(), Ipv4Addr::new(192, 168, 2, 201).into()],
            ..seed(150)
        };
        let both = Advert {
            interval: Interval::Seconds(3),
            ..more.clone()
        };
        let differs = |addresses, interval| {
            Ok(Accepted::Disagrees(Disagreement {
                addresses,
                interval,
            }))
        };
        assert_eq!(check(&slow, &lenient), differs(false, true));
        assert_eq!(check(&more, &lenient), differs(true, false));
        assert_eq!(check(&both, &lenient), differs(true, true));
        assert_eq!(check(&slow, &strict), Err(DropReason::Interval));
        assert_eq!(check(&more, &strict), Err(DropReason::AddressList));
        // The address owner's list is accepted either way (RFC 3768 §7.1).
        let owner = Advert {
            priority: 255,
            ..more.clone()
        };
        assert_eq!(check(&owner, &strict), Ok(Accepted::OwnerAddressMismatch));
        // Nothing unauthenticated gets this far.
        let forged = Advert {
            auth: Some((AUTH_PASS, *b"2222\0\0\0\0")),
            ..both.clone()
        };
        assert_eq!(check(&forged, &lenient), Err(DropReason::AuthMismatch));
        let stranger = Expect {
            sources: Some(&[Ipv4Addr::new(192, 168, 2, 77).into()]),
            ..lenient
        };
        assert_eq!(check(&both, &stranger), Err(DropReason::UnknownSource));
        assert_eq!(
            Disagreement {
                addresses: true,
                interval: true
            }
            .fields()
            .collect::<Vec<_>>(),
            ["virtual_ipaddress", "advert_int"]
        );
    }

    #[test]
    fn ip_header() {
        let mut packet = vec![0x45, 0xc0, 0, 40, 0, 0, 0, 0, 255, 112, 0, 0];
        packet.extend_from_slice(&SRC.octets());
        packet.extend_from_slice(&VRRP_GROUP_V4.octets());
        packet.extend_from_slice(&SEED);
        packet.extend_from_slice(&[0; 4]); // padding beyond total length
        let ip = IpHeader::parse(&packet).unwrap();
        assert_eq!(
            (ip.src, ip.dst, ip.ttl, ip.protocol),
            (SRC.into(), VRRP_GROUP_V4.into(), 255, 112)
        );
        assert_eq!(ip.payload(&packet), SEED);
        assert_eq!(IpHeader::parse(&packet[..19]), Err(DropReason::BadIp));
        // Too short for the IPv6 header a version of 6 announces.
        let mut v6 = packet[..39].to_vec();
        v6[0] = 0x60;
        assert_eq!(IpHeader::parse(&v6), Err(DropReason::BadIp));
        let mut v5 = packet.clone();
        v5[0] = 0x55;
        assert_eq!(IpHeader::parse(&v5), Err(DropReason::BadIp));
        let mut short_total = packet.clone();
        short_total[3] = 10;
        assert_eq!(IpHeader::parse(&short_total), Err(DropReason::BadIp));
    }

    const LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x0a);
    const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x64);

    fn v6(priority: u8) -> Advert {
        Advert {
            addrs: vec![VIP6.into(), LL.into()],
            ..v3(priority)
        }
    }

    #[test]
    fn ipv6_header() {
        let mut packet = vec![0x60, 0, 0, 0, 0, 40, 112, 255];
        packet.extend_from_slice(&LL.octets());
        packet.extend_from_slice(&VRRP_GROUP_V6.octets());
        packet.extend_from_slice(&[0; 40 + 6]); // the message, then padding
        let ip = IpHeader::parse(&packet).unwrap();
        assert_eq!(
            (
                ip.src,
                ip.dst,
                ip.ttl,
                ip.protocol,
                ip.payload(&packet).len()
            ),
            (LL.into(), VRRP_GROUP_V6.into(), 255, 112, 40)
        );
        assert_eq!(IpHeader::parse(&packet[..39]), Err(DropReason::BadIp));
    }

    /// RFC 5798 §5.2.8: over IPv6 the checksum always covers the pseudo-header, and the
    /// address list holds 16-byte addresses.
    #[test]
    fn ipv6_adverts() {
        let mut bytes = Vec::new();
        v6(150).emit(&mut bytes, ChecksumForm::Message, LL, VRRP_GROUP_V6);
        assert_eq!(bytes.len(), 8 + 2 * 16);
        assert_ne!(checksum(&bytes, None), 0);
        assert_eq!(checksum(&bytes, Some((LL.into(), VRRP_GROUP_V6.into()))), 0);
        assert_eq!(
            Advert::parse(&bytes, LL, VRRP_GROUP_V6),
            Ok((v6(150), ChecksumForm::PseudoHeader))
        );
        // Another sender's pseudo-header does not match.
        let other = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x0b);
        assert_eq!(
            Advert::parse(&bytes, other, VRRP_GROUP_V6),
            Err(DropReason::Checksum)
        );
        // A message-only checksum is not valid over IPv6.
        let mut message_only = bytes.clone();
        message_only[6..8].copy_from_slice(&[0, 0]);
        let sum = checksum(&message_only, None);
        message_only[6..8].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(
            Advert::parse(&message_only, LL, VRRP_GROUP_V6),
            Err(DropReason::Checksum)
        );
        // The list is read as IPv6 addresses: 4-byte entries make a length error.
        assert_eq!(
            Advert::parse(
                &emit(&v3(150), ChecksumForm::PseudoHeader),
                LL,
                VRRP_GROUP_V6
            ),
            Err(DropReason::Length)
        );
        // VRRPv2 exists over IPv4 only.
        let mut v2 = SEED;
        v2[3] = 0;
        assert_eq!(
            Advert::parse(&v2[..16], LL, VRRP_GROUP_V6),
            Err(DropReason::Version)
        );
    }
}
