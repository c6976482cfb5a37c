//! The XDP entry point and its maps.
//!
//! Every frame is classified and counted. VRRP adverts (IPv4, protocol 112, behind up to two
//! VLAN tags) get the agent's receive checks in its order: IP header, TTL, type, version,
//! exact length, checksum (both VRRPv3 forms), zero interval, VRID configured on this
//! interface, expected version, VRRPv2 interval and PASS authentication. Each outcome is
//! counted per interface; an accepted advert updates its VRID's entry in `PEERS` and a
//! change of master, priority or interval goes out on `EVENTS`. An advert that fails a check
//! for a VRID configured here is dropped before the stack sees it; anything else is passed.
//! A frame it cannot parse is passed, never aborted.

use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_ktime_get_ns,
    macros::{map, xdp},
    maps::{HashMap, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::XdpContext,
};
use ha_common::{
    classify::{ClassCount, FrameClass},
    vrrp::{
        AUTH_LEN, AUTH_NONE, AUTH_PASS, Change, CountKey, Event, HEADER_LEN, IPPROTO_VRRP, MAX_LEN,
        Peer, TTL, TYPE_ADVERTISEMENT, Verdict, VridConfig, VridKey,
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

#[map]
static CLASS_COUNTS: PerCpuArray<ClassCount> = PerCpuArray::with_max_entries(FrameClass::COUNT, 0);

/// What each configured VRID expects, by (ifindex, VRID); filled by the agent.
#[map]
static VRIDS: HashMap<VridKey, VridConfig> = HashMap::with_max_entries(4096, 0);

/// The master each configured VRID follows, from its last accepted advert.
#[map]
static PEERS: HashMap<VridKey, Peer> = HashMap::with_max_entries(4096, 0);

/// Changes of `PEERS` (never steady adverts).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(64 * 1024, 0);

/// Outcomes of the checks, per interface and verdict.
#[map]
static VERDICTS: PerCpuHashMap<CountKey, u64> = PerCpuHashMap::with_max_entries(1024, 0);

#[xdp]
pub fn ha_xdp(ctx: XdpContext) -> u32 {
    let (class, l3) = classify(&ctx);
    count(class, (ctx.data_end() - ctx.data()) as u64);
    match (class, l3) {
        (FrameClass::Vrrp, Some(offset)) => advert(&ctx, offset),
        _ => xdp_action::XDP_PASS,
    }
}

/// A pointer to a `T` at `offset` in the frame, if the whole `T` lies inside it.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*const T> {
    let start = ctx.data();
    if start + offset + core::mem::size_of::<T>() > ctx.data_end() {
        return None;
    }
    Some((start + offset) as *const T)
}

#[inline(always)]
fn byte(ctx: &XdpContext, offset: usize) -> Option<u8> {
    // SAFETY: ptr_at checked that the byte lies inside the frame.
    ptr_at::<u8>(ctx, offset).map(|p| unsafe { *p })
}

#[inline(always)]
fn be16(ctx: &XdpContext, offset: usize) -> Option<u16> {
    // SAFETY: as above, for two bytes.
    ptr_at::<[u8; 2]>(ctx, offset).map(|p| u16::from_be_bytes(unsafe { *p }))
}

/// The frame's class and, for IPv4, the offset of its IP header.
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
        ETH_P_ARP => (FrameClass::Arp, None),
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

/// Checks one VRRP packet whose IPv4 header is at `ip`; counts and returns the verdict.
#[inline(always)]
fn advert(ctx: &XdpContext, ip: usize) -> u32 {
    // SAFETY: reading the context's own field.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    let (verdict, vrid) = check(ctx, ip, ifindex);
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
        // Invalid adverts for our VRIDs never reach the stack; others' are not ours to judge.
        _ if ours => xdp_action::XDP_DROP,
        _ => xdp_action::XDP_PASS,
    }
}

/// The checks, in the agent's order; the VRID once the header could be read.
#[inline(always)]
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
    if byte(ctx, ip + 8) != Some(TTL) {
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
    let Some(vrid) = vrid else {
        return (Verdict::Length, None);
    };
    let key = VridKey { ifindex, vrid };
    // SAFETY: a lookup; the value is copied out.
    let Some(config) = (unsafe { VRIDS.get(key) }).copied() else {
        return (Verdict::UnknownVrid, Some(vrid));
    };
    if version != config.version {
        return (Verdict::Version, Some(vrid));
    }
    if version == 2 {
        if b5 != config.interval_s {
            return (Verdict::Interval, Some(vrid));
        }
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
    record(key, unsafe { *src }, priority, count, interval_cs);
    (Verdict::Accepted, Some(vrid))
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

#[inline(always)]
fn fold(mut sum: u32) -> u32 {
    sum = (sum & 0xffff) + (sum >> 16);
    (sum & 0xffff) + (sum >> 16)
}

/// Updates the VRID's peer entry; a change of master, priority or interval is an event.
#[inline(always)]
fn record(key: VridKey, master: [u8; 4], priority: u8, count: u8, interval_cs: u16) {
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: a lookup; the value is copied out.
    let old = unsafe { PEERS.get(key) }.copied();
    let peer = Peer {
        master,
        priority,
        addr_count: count,
        interval_cs,
        adverts: old.map_or(0, |p| p.adverts) + 1,
        last_seen_ns: now,
    };
    let _ = PEERS.insert(key, peer, 0);
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
                _pad: 0,
                peer,
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
