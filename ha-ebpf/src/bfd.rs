//! BFD's kernel fast path (ha-common's `bfd` module says what the agent and the kernel
//! share): a control packet equal, byte for byte, to what a watched session's peer sends
//! while steady is dropped here and re-arms the session's detection timer; the timer, run
//! out, reports the peer silent and stops absorbing (unless it ran out late: this host
//! stalled, and the timer waits once more). Everything else goes to the agent.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::HashMap,
    helpers::{bpf_ktime_get_ns, bpf_timer_init, bpf_timer_set_callback, bpf_timer_start},
    macros::{btf_map, map},
    maps::RingBuf,
    programs::XdpContext,
};
use ha_common::{
    bfd::{BFD_LEN, BFD_PORT, BfdExpired, BfdKey, BfdWatch, STALL_NS},
    vrrp::addr16,
};

use crate::program::{be16, byte, ptr_at};

const CLOCK_MONOTONIC: u64 = 1;
const IPPROTO_UDP: u8 = 17;
const UDP_LEN: usize = 8;

/// The sessions the kernel watches, by our discriminator; filled by the agent. A BTF map:
/// the verifier needs its value's layout to find the timer.
#[btf_map]
static BFD_SESSIONS: HashMap<BfdKey, BfdWatch, 256> = HashMap::new();

/// Peers that fell silent.
#[map]
static BFD_EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024, 0);

/// A UDP datagram to port 3784 whose IPv4 (`v6`: IPv6) header is at `ip`: dropped when it is
/// a watched session's steady packet; None for anything else.
#[inline(always)]
pub fn control(ctx: &XdpContext, ip: usize, v6: bool) -> Option<u32> {
    let (udp, ttl, src) = if v6 {
        if byte(ctx, ip + 6)? != IPPROTO_UDP {
            return None;
        }
        let src = ptr_at::<[u8; 16]>(ctx, ip + 8)?;
        // SAFETY: ptr_at checked the sixteen bytes.
        (ip + 40, byte(ctx, ip + 7)?, unsafe { *src })
    } else {
        let ihl = usize::from(byte(ctx, ip)? & 0x0f) * 4;
        let src = ptr_at::<[u8; 4]>(ctx, ip + 12)?;
        // SAFETY: ptr_at checked the four bytes.
        (ip + ihl, byte(ctx, ip + 8)?, addr16(&unsafe { *src }))
    };
    if be16(ctx, udp + 2)? != BFD_PORT {
        return None;
    }
    let packet = ptr_at::<[u8; BFD_LEN]>(ctx, udp + UDP_LEN)?;
    // SAFETY: ptr_at checked the 24 bytes.
    let packet = unsafe { &*packet };
    // Length 24 (no authentication section), Your Discriminator names the session.
    if packet[3] as usize != BFD_LEN {
        return None;
    }
    let key = BfdKey {
        discr: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
    };
    let watch = BFD_SESSIONS.get_ptr_mut(key)?;
    // SAFETY: a map value; only this program and its timer write the kernel's fields.
    let watch = unsafe { &mut *watch };
    if watch.detect_ns == 0 || ttl < watch.min_ttl || src != watch.peer || *packet != watch.expect {
        return None;
    }
    let timer = &mut watch.timer as *mut _ as *mut aya_ebpf::bindings::bpf_timer;
    let map = &BFD_SESSIONS as *const _ as *mut c_void;
    // SAFETY: the timer lives in a value of `map`; init fails harmlessly once done.
    unsafe {
        if bpf_timer_init(timer, map, CLOCK_MONOTONIC) == 0 {
            bpf_timer_set_callback(timer, expired as *mut c_void);
        }
        bpf_timer_start(timer, watch.detect_ns, 0);
        watch.last_ns = bpf_ktime_get_ns();
    }
    watch.forgiven = 0;
    watch.absorbed += 1;
    // Where a frame to the peer goes, for the agent's transmission from the kernel.
    // SAFETY: the context the kernel passed.
    watch.ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    if let Some(macs) = ptr_at::<[u8; 12]>(ctx, 0) {
        // SAFETY: ptr_at checked the twelve bytes.
        watch.macs = unsafe { *macs };
    }
    Some(xdp_action::XDP_DROP)
}

/// The detection time ran out without a steady packet: report it, and hand the session back
/// to the agent (nothing more is absorbed until it writes the entry again). Unless the timer
/// ran late, the first time since the last packet: then it waits one more of the peer's
/// intervals.
extern "C" fn expired(_map: *mut c_void, key: *mut BfdKey, watch: *mut BfdWatch) -> i32 {
    // SAFETY: the kernel passes the timer's own entry.
    let (key, watch) = unsafe { (&*key, &mut *watch) };
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let late = now.saturating_sub(watch.last_ns.saturating_add(watch.detect_ns));
    if watch.forgiven == 0 && late > STALL_NS {
        watch.forgiven = 1;
        let interval = watch.detect_ns / u64::from(watch.detect_mult.max(1));
        let timer = &mut watch.timer as *mut _ as *mut aya_ebpf::bindings::bpf_timer;
        // SAFETY: the entry's own timer, initialised when it was first armed.
        if unsafe { bpf_timer_start(timer, interval, 0) } == 0 {
            return 0;
        }
    }
    watch.detect_ns = 0;
    let _ = BFD_EVENTS.output::<BfdExpired>(
        BfdExpired {
            discr: key.discr,
            _pad: 0,
            last_ns: watch.last_ns,
        },
        0,
    );
    0
}
