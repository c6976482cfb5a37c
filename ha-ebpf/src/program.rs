//! The XDP entry point and its maps.
//!
//! Every frame is classified and counted. VRRP adverts (IPv4 protocol 112, or IPv6 next
//! header 112 right after the fixed header; behind up to two VLAN tags) get the agent's
//! receive checks in its order: IP header, TTL (hop limit), type, version,
//! exact length, checksum (both VRRPv3 forms), zero interval, VRID configured on this
//! interface, expected version, VRRPv2 interval and PASS authentication, and for VRIDs that
//! check sources (`check_unicast_src`) a sender listed in `SOURCES`. Each outcome is
//! counted per interface; an accepted advert updates its VRID's entry in `PEERS` and a
//! change of master, priority or interval goes out on `EVENTS`. An advert that fails a check
//! for a VRID configured here is dropped before the stack sees it. A VRID whose instance is
//! a backup is set to absorb: its adverts that pass the agent's remaining checks too (not
//! from the agent's own address, the agent's address list) are dropped once recorded, so the
//! agent sleeps through them. ARP frames whose sender address is one of our VIPs and whose
//! sender MAC is not ours are recorded in `VIPS`, and while we hold the VIP sent on `EVENTS`
//! as a conflict. IP traffic addressed to a VIP in `NOT_ACCEPTED` (held by a master without
//! Accept_Mode) is dropped and counted, Neighbor Discovery excepted. A BFD session's steady
//! packets are absorbed (bfd.rs). Anything else is passed; a frame it cannot parse is passed,
//! never aborted. Run by the agent on the loopback device, it transmits adverts (tx.rs).

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, xdp_action},
    helpers::{bpf_csum_diff, bpf_ktime_get_ns, bpf_xdp_load_bytes},
    macros::{map, xdp},
    maps::{Array, HashMap, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::XdpContext,
};
use ha_common::{
    classify::{ClassCount, FrameClass},
    vrrp::{
        AUTH_LEN, AUTH_NONE, AUTH_PASS, CONFLICT_EVENT_GAP_NS, Change, CountKey, Event, HEADER_LEN,
        IPPROTO_VRRP, MAX_ADDRS, MAX_ADDRS_V6, MAX_LEN, MAX_LEN_V6, NotAcceptedKey,
        PEER_SLOTS as PEER_SLOTS_LEN, Peer, SourceKey, TTL, TYPE_ADVERTISEMENT, VRID_IPV6, Verdict,
        VipClaims, VipEntry, VipKey, VridConfig, VridKey, addr_share, addr16,
    },
};

const ETH_LEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const VLAN_LEN: usize = 4;
const IPV4_MIN_LEN: usize = 20;
const IPV6_LEN: usize = 40;
const ARP_LEN: usize = 28;
const IPPROTO_ICMPV6: u8 = 58;
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;

#[map]
static CLASS_COUNTS: PerCpuArray<ClassCount> = PerCpuArray::with_max_entries(FrameClass::COUNT, 0);

/// What each configured VRID expects, by (ifindex, VRID); filled by the agent.
#[map]
static VRIDS: HashMap<VridKey, VridConfig> = HashMap::with_max_entries(4096, 0);

/// The master each configured VRID follows, from its last accepted advert.
#[map]
static PEERS: HashMap<VridKey, Peer> = HashMap::with_max_entries(4096, 0);

/// A copy of each configured VRID's `PEERS` entry at its `VridConfig::slot`, which the agent
/// reads through a mapping, without a system call.
#[map]
static PEER_SLOTS: Array<Peer> = Array::with_max_entries(PEER_SLOTS_LEN, BPF_F_MMAPABLE);

/// Changes of `PEERS` (never steady adverts).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(64 * 1024, 0);

/// Outcomes of the checks, per interface and verdict.
#[map]
static VERDICTS: PerCpuHashMap<CountKey, u64> = PerCpuHashMap::with_max_entries(1024, 0);

/// The senders each VRID that checks sources accepts (its unicast peers); filled by the agent.
#[map]
static SOURCES: HashMap<SourceKey, u8> = HashMap::with_max_entries(4096, 0);

/// Our VIPs, by (ifindex, address); filled by the agent.
#[map]
static VIPS: HashMap<VipKey, VipEntry> = HashMap::with_max_entries(4096, 0);

/// ARP claims of our VIPs by other MACs; written here only.
#[map]
static VIP_CLAIMS: HashMap<VipKey, VipClaims> = HashMap::with_max_entries(4096, 0);

/// VIPs whose traffic is dropped (held without Accept_Mode); filled by the agent.
#[map]
static NOT_ACCEPTED: HashMap<NotAcceptedKey, u8> = HashMap::with_max_entries(4096, 0);

/// Frames `NOT_ACCEPTED` dropped.
#[map]
static NOT_ACCEPTED_DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[xdp]
pub fn ha_xdp(ctx: XdpContext) -> u32 {
    if let Some(verdict) = crate::tx::transmit(&ctx) {
        return verdict;
    }
    let (class, l3) = classify(&ctx);
    count(class, (ctx.data_end() - ctx.data()) as u64);
    match (class, l3) {
        (FrameClass::Vrrp, Some(offset)) => advert(&ctx, offset, false),
        (FrameClass::Ipv6, Some(offset)) if byte(&ctx, offset + 6) == Some(IPPROTO_VRRP) => {
            advert(&ctx, offset, true)
        }
        (FrameClass::Ipv6, Some(offset)) => crate::bfd::control(&ctx, offset, true)
            .unwrap_or_else(|| accept_mode(&ctx, offset, true)),
        (FrameClass::Udp, Some(offset)) => crate::bfd::control(&ctx, offset, false)
            .unwrap_or_else(|| accept_mode(&ctx, offset, false)),
        (FrameClass::Arp, Some(offset)) => {
            arp(&ctx, offset);
            xdp_action::XDP_PASS
        }
        (FrameClass::Other, _) | (_, None) => xdp_action::XDP_PASS,
        // Any other IPv4 packet.
        (_, Some(offset)) => accept_mode(&ctx, offset, false),
    }
}

/// A pointer to a `T` at `offset` in the frame, if the whole `T` lies inside it.
#[inline(always)]
pub(crate) fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*const T> {
    let start = ctx.data();
    if start + offset + core::mem::size_of::<T>() > ctx.data_end() {
        return None;
    }
    Some((start + offset) as *const T)
}

#[inline(always)]
pub(crate) fn byte(ctx: &XdpContext, offset: usize) -> Option<u8> {
    // SAFETY: ptr_at checked that the byte lies inside the frame.
    ptr_at::<u8>(ctx, offset).map(|p| unsafe { *p })
}

#[inline(always)]
pub(crate) fn be16(ctx: &XdpContext, offset: usize) -> Option<u16> {
    // SAFETY: as above, for two bytes.
    ptr_at::<[u8; 2]>(ctx, offset).map(|p| u16::from_be_bytes(unsafe { *p }))
}

/// The frame's class and, for IPv4, IPv6 and ARP, the offset of its network header (IPv6
/// frames count as `Ipv6`, VRRP ones included).
#[inline(always)]
fn classify(ctx: &XdpContext) -> (FrameClass, Option<usize>) {
    let mut offset = ETH_LEN;
    let Some(mut ether_type) = be16(ctx, 12) else {
        return (FrameClass::Other, None);
    };
    // Up to two VLAN tags (802.1Q, 802.1ad).
    for _ in 0..2 {
        if ether_type != ETH_P_8021Q && ether_type != ETH_P_8021AD {
            break;
        }
        let Some(inner) = be16(ctx, offset + 2) else {
            return (FrameClass::Other, None);
        };
        ether_type = inner;
        offset += VLAN_LEN;
    }
    match ether_type {
        ETH_P_ARP => (FrameClass::Arp, Some(offset)),
        ETH_P_IPV6 if ptr_at::<[u8; IPV6_LEN]>(ctx, offset).is_some() => {
            (FrameClass::Ipv6, Some(offset))
        }
        ETH_P_IPV6 => (FrameClass::Ipv6, None),
        ETH_P_IP => match byte(ctx, offset + 9) {
            Some(protocol) if ptr_at::<[u8; IPV4_MIN_LEN]>(ctx, offset).is_some() => {
                (FrameClass::from_ipv4_protocol(protocol), Some(offset))
            }
            _ => (FrameClass::Other, None),
        },
        _ => (FrameClass::Other, None),
    }
}

#[inline(always)]
fn count(class: FrameClass, bytes: u64) {
    if let Some(slot) = CLASS_COUNTS.get_ptr_mut(class as u32) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe {
            (*slot).frames += 1;
            (*slot).bytes += bytes;
        }
    }
}

/// RFC 5798 Accept_Mode off: a packet for a VIP in `NOT_ACCEPTED`, whose IPv4 (`v6`: IPv6)
/// header is at `ip`, is dropped. Neighbor Solicitations and Advertisements pass (right
/// after the fixed header): the VIP's neighbours must still resolve it.
#[inline(always)]
fn accept_mode(ctx: &XdpContext, ip: usize, v6: bool) -> u32 {
    let key = if v6 {
        let Some(dst) = ptr_at::<[u8; 16]>(ctx, ip + 24) else {
            return xdp_action::XDP_PASS;
        };
        if byte(ctx, ip + 6) == Some(IPPROTO_ICMPV6)
            && matches!(
                byte(ctx, ip + IPV6_LEN),
                Some(ND_NEIGHBOR_SOLICIT | ND_NEIGHBOR_ADVERT)
            )
        {
            return xdp_action::XDP_PASS;
        }
        // SAFETY: ptr_at checked the sixteen bytes.
        NotAcceptedKey {
            family: 6,
            addr: unsafe { *dst },
        }
    } else {
        let Some(dst) = ptr_at::<[u8; 4]>(ctx, ip + 16) else {
            return xdp_action::XDP_PASS;
        };
        // SAFETY: ptr_at checked the four bytes.
        NotAcceptedKey {
            family: 4,
            addr: addr16(&unsafe { *dst }),
        }
    };
    // SAFETY: a lookup; the value is not read.
    if unsafe { NOT_ACCEPTED.get(key) }.is_none() {
        return xdp_action::XDP_PASS;
    }
    if let Some(n) = NOT_ACCEPTED_DROPS.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *n += 1 };
    }
    xdp_action::XDP_DROP
}

/// Checks one VRRP packet whose IPv4 (`v6`: IPv6) header is at `ip`; counts and returns the
/// verdict.
#[inline(always)]
fn advert(ctx: &XdpContext, ip: usize, v6: bool) -> u32 {
    // SAFETY: reading the context's own field.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    let (verdict, vrid) = if v6 {
        check6(ctx, ip, ifindex)
    } else {
        check(ctx, ip, ifindex)
    };
    let key = CountKey {
        ifindex,
        verdict: verdict as u32,
    };
    match VERDICTS.get_ptr_mut(key) {
        // SAFETY: per-CPU value, only this CPU writes it while the program runs.
        Some(n) => unsafe { *n += 1 },
        None => {
            let _ = VERDICTS.insert(key, 1u64, 0);
        }
    }
    let ours = vrid.is_some_and(|vrid| {
        // SAFETY: a lookup; the value is only read.
        unsafe { VRIDS.get(VridKey { ifindex, vrid }) }.is_some()
    });
    match verdict {
        Verdict::Accepted => xdp_action::XDP_PASS,
        Verdict::Absorbed => xdp_action::XDP_DROP,
        // Invalid adverts for our VRIDs never reach the stack; others' are not ours to judge.
        _ if ours => xdp_action::XDP_DROP,
        _ => xdp_action::XDP_PASS,
    }
}

/// The checks, in the agent's order; the VRID once the header could be read.
#[inline(always)]
/// Whether `vrid` has unicast peers on `ifindex` (their adverts' TTL is not checked).
fn unicast(ifindex: u32, vrid: Option<u32>) -> bool {
    vrid.is_some_and(|vrid| {
        // SAFETY: a lookup; the value is only read.
        unsafe { VRIDS.get(VridKey { ifindex, vrid }) }.is_some_and(|c| c.unicast != 0)
    })
}

fn check(ctx: &XdpContext, ip: usize, ifindex: u32) -> (Verdict, Option<u32>) {
    let Some(ver_ihl) = byte(ctx, ip) else {
        return (Verdict::BadIp, None);
    };
    let header_len = usize::from(ver_ihl & 0x0f) * 4;
    let Some(total_len) = be16(ctx, ip + 2) else {
        return (Verdict::BadIp, None);
    };
    let total_len = usize::from(total_len);
    let frame_len = ctx.data_end() - ctx.data();
    if ver_ihl >> 4 != 4
        || header_len < IPV4_MIN_LEN
        || total_len < header_len
        || frame_len < ip + header_len
    {
        return (Verdict::BadIp, None);
    }
    // Link-layer padding is not part of the message.
    let msg_len = if ip + total_len < frame_len {
        total_len - header_len
    } else {
        frame_len - ip - header_len
    };
    let msg = ip + header_len;
    let vrid = byte(ctx, msg + 1).map(u32::from);
    if byte(ctx, ip + 8) != Some(TTL) && !unicast(ifindex, vrid) {
        return (Verdict::Ttl, vrid);
    }
    let (true, Some(ver_type)) = (msg_len >= HEADER_LEN, byte(ctx, msg)) else {
        return (Verdict::Length, vrid);
    };
    if ver_type & 0x0f != TYPE_ADVERTISEMENT {
        return (Verdict::Type, vrid);
    }
    let version = ver_type >> 4;
    let (Some(count), Some(b4), Some(b5)) =
        (byte(ctx, msg + 3), byte(ctx, msg + 4), byte(ctx, msg + 5))
    else {
        return (Verdict::Length, vrid);
    };
    let expected_len = match version {
        2 => HEADER_LEN + 4 * usize::from(count) + AUTH_LEN,
        3 => HEADER_LEN + 4 * usize::from(count),
        _ => return (Verdict::Version, vrid),
    };
    if msg_len != expected_len {
        return (Verdict::Length, vrid);
    }
    let Some(sum) = sum16(ctx, msg, msg_len) else {
        return (Verdict::Length, vrid);
    };
    let message_form = fold(sum) == 0xffff;
    let pseudo_form = version == 3 && {
        let pseudo = sum16(ctx, ip + 12, 8).unwrap_or(0) + u32::from(IPPROTO_VRRP) + msg_len as u32;
        fold(sum + pseudo) == 0xffff
    };
    if !message_form && !pseudo_form {
        return (Verdict::Checksum, vrid);
    }
    let interval_cs = if version == 2 {
        u16::from(b5) * 100
    } else {
        u16::from_be_bytes([b4, b5]) & 0x0fff
    };
    if version == 3 && interval_cs == 0 {
        return (Verdict::ZeroInterval, vrid);
    }
    let (key, config) = match configured(ifindex, vrid, version) {
        Ok(found) => found,
        Err(verdict) => return verdict,
    };
    let vrid = key.vrid;
    if version == 2 {
        if b4 != config.auth_type || (b4 != AUTH_NONE && b4 != AUTH_PASS) {
            return (Verdict::AuthType, Some(vrid));
        }
        if b4 == AUTH_PASS {
            let auth = msg + HEADER_LEN + 4 * usize::from(count);
            let Some(data) = ptr_at::<[u8; AUTH_LEN]>(ctx, auth) else {
                return (Verdict::Length, Some(vrid));
            };
            // SAFETY: ptr_at checked the eight bytes.
            if unsafe { *data } != config.auth {
                return (Verdict::AuthMismatch, Some(vrid));
            }
        }
    }
    let (Some(priority), Some(src)) = (byte(ctx, msg + 2), ptr_at::<[u8; 4]>(ctx, ip + 12)) else {
        return (Verdict::Length, Some(vrid));
    };
    // SAFETY: ptr_at checked the four bytes.
    let src = addr16(&unsafe { *src });
    let advert = Heard {
        key,
        src,
        priority,
        count,
        interval_cs,
        // Configuration is compared last: an authentic advert configured otherwise still
        // proves its sender alive (the agent judges it), unless `vrrp_strict` asks for the
        // RFC's drop.
        other_interval: version == 2 && b5 != config.interval_s,
    };
    settle(&config, advert, || digest(ctx, msg + HEADER_LEN, count))
}

/// The configuration of `vrid` on `ifindex`, if the advert's `version` is the one it
/// expects; else the verdict.
#[inline(always)]
fn configured(
    ifindex: u32,
    vrid: Option<u32>,
    version: u8,
) -> Result<(VridKey, VridConfig), (Verdict, Option<u32>)> {
    let Some(vrid) = vrid else {
        return Err((Verdict::Length, None));
    };
    let key = VridKey { ifindex, vrid };
    // SAFETY: a lookup; the value is copied out.
    let Some(config) = (unsafe { VRIDS.get(key) }).copied() else {
        return Err((Verdict::UnknownVrid, Some(vrid)));
    };
    if version != config.version {
        return Err((Verdict::Version, Some(vrid)));
    }
    Ok((key, config))
}

/// What the last checks need of an advert that passed the others.
struct Heard {
    key: VridKey,
    src: [u8; 16],
    priority: u8,
    count: u8,
    interval_cs: u16,
    /// VRRPv2: another interval than ours.
    other_interval: bool,
}

/// The checks both families end with: the sender (`check_unicast_src`), the interval under
/// `vrrp_strict`, then recorded and passed, or absorbed if the agent would accept it too
/// (not from its own address, its address list, by count and `digest`).
#[inline(always)]
fn settle(
    config: &VridConfig,
    a: Heard,
    digest: impl FnOnce() -> Option<u64>,
) -> (Verdict, Option<u32>) {
    let vrid = Some(a.key.vrid);
    let source = SourceKey {
        ifindex: a.key.ifindex,
        vrid: a.key.vrid,
        addr: a.src,
    };
    // Our own address is the agent's to drop (as `own`).
    // SAFETY: a lookup; the value is not read.
    if config.check_src != 0 && a.src != config.own && unsafe { SOURCES.get(source) }.is_none() {
        return (Verdict::UnknownSource, vrid);
    }
    if a.other_interval && config.strict != 0 {
        return (Verdict::Interval, vrid);
    }
    if config.absorb == 0 {
        record(&a, config.slot);
        return (Verdict::Accepted, vrid);
    }
    // Absorbed only if the agent would accept it too; else it judges (and counts) it.
    if a.src == config.own
        || a.other_interval
        || a.count != config.addr_count
        || digest() != Some(config.addr_digest)
    {
        return (Verdict::Accepted, vrid);
    }
    record(&a, config.slot);
    (Verdict::Absorbed, vrid)
}

/// [`check`] for VRRPv3 over IPv6 (RFC 5798 §5.1.2): the fixed header's hop limit, the
/// checksum over the IPv6 pseudo-header, 16-byte addresses; the VRID in the IPv6 space.
#[inline(always)]
fn check6(ctx: &XdpContext, ip: usize, ifindex: u32) -> (Verdict, Option<u32>) {
    let (Some(ver), Some(payload), Some(hop_limit)) =
        (byte(ctx, ip), be16(ctx, ip + 4), byte(ctx, ip + 7))
    else {
        return (Verdict::BadIp, None);
    };
    let frame_len = ctx.data_end() - ctx.data();
    if ver >> 4 != 6 || frame_len < ip + IPV6_LEN {
        return (Verdict::BadIp, None);
    }
    let msg = ip + IPV6_LEN;
    // Link-layer padding is not part of the message.
    let msg_len = usize::from(payload).min(frame_len - msg);
    let vrid = byte(ctx, msg + 1).map(|v| u32::from(v) | VRID_IPV6);
    if hop_limit != TTL && !unicast(ifindex, vrid) {
        return (Verdict::Ttl, vrid);
    }
    let (true, Some(ver_type)) = (msg_len >= HEADER_LEN, byte(ctx, msg)) else {
        return (Verdict::Length, vrid);
    };
    if ver_type & 0x0f != TYPE_ADVERTISEMENT {
        return (Verdict::Type, vrid);
    }
    // VRRPv2 exists over IPv4 only.
    if ver_type >> 4 != 3 {
        return (Verdict::Version, vrid);
    }
    let (Some(count), Some(interval)) = (byte(ctx, msg + 3), be16(ctx, msg + 4)) else {
        return (Verdict::Length, vrid);
    };
    if msg_len != HEADER_LEN + 16 * usize::from(count) {
        return (Verdict::Length, vrid);
    }
    if msg_len > MAX_LEN_V6 {
        // Only a jumbo frame holds it: the agent judges it.
        return (Verdict::Accepted, vrid);
    }
    let (Some(sum), Some(addrs)) = (sum_v6(ctx, msg, msg_len), ptr_at::<[u8; 32]>(ctx, ip + 8))
    else {
        return (Verdict::Length, vrid);
    };
    // The source and destination, summed from a copy: a loop over the packet itself made
    // LLVM compute on the packet's end pointer, which the verifier refuses.
    // SAFETY: ptr_at checked the 32 bytes.
    let addrs = unsafe { *addrs };
    let pseudo: u32 = addrs
        .chunks_exact(2)
        .map(|w| u32::from(w[0]) << 8 | u32::from(w[1]))
        .sum();
    if fold(sum + pseudo + u32::from(IPPROTO_VRRP) + msg_len as u32) != 0xffff {
        return (Verdict::Checksum, vrid);
    }
    let interval_cs = interval & 0x0fff;
    if interval_cs == 0 {
        return (Verdict::ZeroInterval, vrid);
    }
    let (key, config) = match configured(ifindex, vrid, 3) {
        Ok(found) => found,
        Err(verdict) => return verdict,
    };
    let vrid = key.vrid;
    let (Some(priority), Some(src)) = (byte(ctx, msg + 2), ptr_at::<[u8; 16]>(ctx, ip + 8)) else {
        return (Verdict::Length, Some(vrid));
    };
    // SAFETY: ptr_at checked the sixteen bytes.
    let src = unsafe { *src };
    let advert = Heard {
        key,
        src,
        priority,
        count,
        interval_cs,
        other_interval: false,
    };
    settle(&config, advert, || digest6(ctx, msg + HEADER_LEN, count))
}

/// The order-free digest of the `count` IPv4 addresses at `offset`, each as its `addr16`
/// form.
#[inline(always)]
fn digest(ctx: &XdpContext, offset: usize, count: u8) -> Option<u64> {
    // One 16-bit read per step, shaped as sum16: with a 4-byte read per step LLVM computed
    // on the packet's end pointer, which the verifier refuses.
    let mut sum: u64 = 0;
    let mut hi: u64 = 0;
    let mut i = 0;
    while i < 2 * MAX_ADDRS {
        if i >= 2 * usize::from(count) {
            return Some(sum);
        }
        let half = u64::from(be16(ctx, offset + 2 * i)?);
        if i % 2 == 0 {
            hi = half;
        } else {
            // The address fills the first four bytes of its 16-byte form.
            sum = sum.wrapping_add(addr_share(((hi << 16) | half) << 32, 0));
        }
        i += 1;
    }
    Some(sum)
}

/// [`digest`] of `count` IPv6 addresses, each copied out by the kernel
/// (`bpf_xdp_load_bytes`): a loop of packet reads at a variable offset made LLVM compute on
/// the packet's end pointer, which the verifier refuses.
#[inline(always)]
fn digest6(ctx: &XdpContext, offset: usize, count: u8) -> Option<u64> {
    let mut sum: u64 = 0;
    let mut k = 0;
    while k < MAX_ADDRS_V6 {
        if k >= usize::from(count) {
            return Some(sum);
        }
        let mut addr = [0u8; 16];
        // SAFETY: the helper writes at most 16 bytes into `addr`, which outlives the call.
        let copied = unsafe {
            bpf_xdp_load_bytes(
                ctx.ctx,
                (offset + 16 * k) as u32,
                addr.as_mut_ptr().cast(),
                16,
            )
        };
        if copied != 0 {
            return None;
        }
        let (hi, lo) = addr.split_at(8);
        let half = |b: &[u8]| b.iter().fold(0u64, |x, byte| (x << 8) | u64::from(*byte));
        sum = sum.wrapping_add(addr_share(half(hi), half(lo)));
        k += 1;
    }
    Some(sum)
}

/// The sum of the big-endian 16-bit words of `len` bytes at `offset` (`len` even), unfolded.
#[inline(always)]
fn sum16(ctx: &XdpContext, offset: usize, len: usize) -> Option<u32> {
    let mut sum: u32 = 0;
    let mut i = 0;
    while i < MAX_LEN / 2 {
        if 2 * i >= len {
            return Some(sum);
        }
        sum += u32::from(be16(ctx, offset + 2 * i)?);
        i += 1;
    }
    Some(sum)
}

/// The sum of the big-endian 16-bit words of the `len` bytes at `offset` (`len` a multiple
/// of 4, at most [`MAX_LEN_V6`]), unfolded: the kernel copies the message out in 64-byte
/// pieces and sums each (`bpf_csum_diff`), a few steps for the verifier to follow instead
/// of one per word.
#[inline(always)]
fn sum_v6(ctx: &XdpContext, offset: usize, len: usize) -> Option<u32> {
    const PIECE: usize = 64;
    let mut buf = [0u32; PIECE / 4];
    let mut sum: u64 = 0;
    let mut done = 0;
    let mut i = 0;
    while i < MAX_LEN_V6 / PIECE + 1 {
        let n = if len - done >= PIECE {
            PIECE
        } else {
            len - done
        };
        if n == 0 {
            break;
        }
        if n > PIECE {
            return None;
        }
        // SAFETY: the helpers read and write at most `n` ≤ 64 bytes of `buf`.
        let part = unsafe {
            if bpf_xdp_load_bytes(
                ctx.ctx,
                (offset + done) as u32,
                buf.as_mut_ptr().cast(),
                n as u32,
            ) != 0
            {
                return None;
            }
            bpf_csum_diff(core::ptr::null_mut(), 0, buf.as_mut_ptr(), n as u32, 0)
        };
        if part < 0 {
            return None;
        }
        sum += part as u64 & 0xffff_ffff;
        done += n;
        i += 1;
    }
    // The helper sums words as they lie in memory (little-endian here): fold, then swap.
    let folded = fold64(sum) as u16;
    Some(u32::from(folded.swap_bytes()))
}

#[inline(always)]
fn fold64(mut sum: u64) -> u64 {
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    (sum & 0xffff) + (sum >> 16)
}

#[inline(always)]
fn fold(mut sum: u32) -> u32 {
    sum = (sum & 0xffff) + (sum >> 16);
    (sum & 0xffff) + (sum >> 16)
}

/// Updates the VRID's peer entry and its copy at `slot`; a change of master, priority or
/// interval is an event.
#[inline(always)]
fn record(a: &Heard, slot: u32) {
    let (key, master, priority, interval_cs) = (a.key, a.src, a.priority, a.interval_cs);
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: a lookup; the value is copied out.
    let old = unsafe { PEERS.get(key) }.copied();
    let peer = Peer {
        master,
        priority,
        addr_count: a.count,
        interval_cs,
        adverts: old.map_or(0, |p| p.adverts) + 1,
        last_seen_ns: now,
        ..Default::default()
    };
    let _ = PEERS.insert(key, peer, 0);
    mirror(slot, peer);
    let change = match old {
        None => Some(Change::NewMaster),
        Some(old) if old.master != master => Some(Change::NewMaster),
        Some(old) if old.priority != priority => Some(if priority == 0 {
            Change::Resign
        } else {
            Change::Priority
        }),
        Some(old) if old.interval_cs != interval_cs => Some(Change::Interval),
        Some(_) => None,
    };
    if let Some(change) = change {
        let _ = EVENTS.output::<Event>(
            Event {
                key,
                change: change as u32,
                peer,
                before: old.unwrap_or_default(),
                ..Default::default()
            },
            0,
        );
    }
}

/// Writes `peer` at `slot` of `PEER_SLOTS` between two increments of its sequence count, so
/// that the agent, reading without a lock, can tell a torn copy (stores are seen in program
/// order on x86; the fences keep the compiler from moving them).
#[inline(always)]
fn mirror(slot: u32, peer: Peer) {
    use core::sync::atomic::{Ordering, compiler_fence};
    let Some(entry) = PEER_SLOTS.get_ptr_mut(slot) else {
        return;
    };
    // SAFETY: a pointer to a whole slot of the map.
    unsafe {
        let seq = core::ptr::addr_of_mut!((*entry).seq);
        let start = core::ptr::read_volatile(seq).wrapping_add(1) | 1;
        core::ptr::write_volatile(seq, start);
        compiler_fence(Ordering::SeqCst);
        core::ptr::write_volatile(entry, Peer { seq: start, ..peer });
        compiler_fence(Ordering::SeqCst);
        core::ptr::write_volatile(seq, start.wrapping_add(1));
    }
}

/// An ARP frame whose header is at `offset`: a claim on one of our VIPs by another MAC is
/// recorded, and reported while we hold the VIP.
#[inline(always)]
fn arp(ctx: &XdpContext, offset: usize) {
    // Ethernet/IPv4 ARP (hardware type 1, protocol 0x0800, lengths 6 and 4), all 28 bytes.
    if ptr_at::<[u8; ARP_LEN]>(ctx, offset).is_none()
        || be16(ctx, offset) != Some(1)
        || be16(ctx, offset + 2) != Some(ETH_P_IP)
        || be16(ctx, offset + 4) != Some(0x0604)
    {
        return;
    }
    let (Some(sha), Some(spa)) = (
        ptr_at::<[u8; 6]>(ctx, offset + 8),
        ptr_at::<[u8; 4]>(ctx, offset + 14),
    ) else {
        return;
    };
    // SAFETY: ptr_at checked both fields.
    let (mac, addr) = unsafe { (*sha, *spa) };
    // SAFETY: reading the context's own field.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    let key = VipKey { ifindex, addr };
    // SAFETY: a lookup; the value is copied out.
    let Some(entry) = (unsafe { VIPS.get(key) }).copied() else {
        return;
    };
    if mac == entry.own_mac {
        return;
    }
    // SAFETY: a lookup; the value is copied out.
    if unsafe { VIP_CLAIMS.get(key) }.is_none() {
        let _ = VIP_CLAIMS.insert(key, VipClaims::default(), 0);
    }
    let Some(claims) = VIP_CLAIMS.get_ptr_mut(key) else {
        return;
    };
    // SAFETY: a map value; concurrent writers on other CPUs can only race on these
    // statistics.
    let claims = unsafe { &mut *claims };
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let new_holder = claims.holder != mac;
    claims.holder = mac;
    claims.claims += 1;
    claims.last_claim_ns = now;
    if entry.held != 0 && (new_holder || now - claims.last_event_ns >= CONFLICT_EVENT_GAP_NS) {
        claims.last_event_ns = now;
        let _ = EVENTS.output::<Event>(
            Event {
                key: VridKey {
                    ifindex,
                    vrid: entry.vrid,
                },
                change: Change::ArpConflict as u32,
                vip: addr,
                mac,
                ..Default::default()
            },
            0,
        );
    }
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
