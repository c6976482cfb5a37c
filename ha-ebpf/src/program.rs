//! The XDP entry point and its maps.

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::PerCpuArray,
    programs::XdpContext,
};
use ha_common::classify::{ClassCount, FrameClass};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;

#[map]
static CLASS_COUNTS: PerCpuArray<ClassCount> = PerCpuArray::with_max_entries(FrameClass::COUNT, 0);

#[xdp]
pub fn ha_xdp(ctx: XdpContext) -> u32 {
    let class = classify(&ctx);
    count(class, (ctx.data_end() - ctx.data()) as u64);
    xdp_action::XDP_PASS
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
fn classify(ctx: &XdpContext) -> FrameClass {
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return FrameClass::Other;
    };
    // SAFETY: ptr_at checked that the header lies inside the frame.
    match u16::from_be(unsafe { (*eth).ether_type }) {
        ETH_P_ARP => FrameClass::Arp,
        ETH_P_IPV6 => FrameClass::Ipv6,
        ETH_P_IP => match ptr_at::<Ipv4Hdr>(ctx, EthHdr::LEN) {
            // SAFETY: as above.
            Some(ip) => FrameClass::from_ipv4_protocol(unsafe { (*ip).proto }),
            None => FrameClass::Other,
        },
        _ => FrameClass::Other,
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

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
