//! Adverts transmitted from the kernel (ha-common's `tx` module says what the agent and the
//! kernel share): the agent runs the XDP program once per frame of a tick (`BPF_PROG_RUN`,
//! live frames, "received" on the loopback device, where it is never attached), and each
//! run turns its scratch frame into the next slot of `TX_FRAMES` and redirects it to the
//! slot's interface. It is the attached program itself that runs: a program the kernel's
//! XDP dispatcher already holds is run without two RCU grace periods per call (~30 ms).

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, xdp_action},
    helpers::{bpf_redirect, bpf_xdp_adjust_tail, bpf_xdp_store_bytes},
    macros::map,
    maps::Array,
    programs::XdpContext,
};
use ha_common::tx::{TX_FRAME_MAX, TX_SLOTS, TxCursor, TxFrame};

/// A tick's frames; written by the agent through its mapping.
#[map]
static TX_FRAMES: Array<TxFrame> = Array::with_max_entries(TX_SLOTS, BPF_F_MMAPABLE);

/// The slot the next run takes and the number of slots filled.
#[map]
static TX_CURSOR: Array<TxCursor> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// Shortest frame sent: an Ethernet header.
const ETH_LEN: u32 = 14;

/// The loopback device's index, in every network namespace.
const LOOPBACK: u32 = 1;

/// The verdict on a frame the agent runs the program on to transmit a slot; None for any
/// other frame (received on an interface, or no slot pending).
#[inline(always)]
pub fn transmit(ctx: &XdpContext) -> Option<u32> {
    // SAFETY: the context the kernel passed.
    if unsafe { (*ctx.ctx).ingress_ifindex } != LOOPBACK {
        return None;
    }
    let cursor = TX_CURSOR.get_ptr_mut(0)?;
    // SAFETY: a valid pointer into the map's value; runs of one call are sequential.
    let slot = unsafe {
        let slot = (*cursor).next;
        if slot >= (*cursor).filled {
            return None;
        }
        (*cursor).next = slot + 1;
        slot
    };
    Some(send(ctx, slot).unwrap_or(xdp_action::XDP_DROP))
}

#[inline(always)]
fn send(ctx: &XdpContext, slot: u32) -> Option<u32> {
    let frame = TX_FRAMES.get_ptr(slot)?;
    // SAFETY: the verifier's pointer to a whole slot.
    let (ifindex, len) = unsafe { ((*frame).ifindex, (*frame).len) };
    if !(ETH_LEN..=TX_FRAME_MAX as u32).contains(&len) {
        return None;
    }
    // The same length in a form the verifier bounds to 1..=256 (the slot's data).
    const _: () = assert!(TX_FRAME_MAX == 256);
    let len = (len.wrapping_sub(1) & 0xff) + 1;
    let delta = len as i32 - (ctx.data_end() - ctx.data()) as i32;
    // SAFETY: helpers on this program's own context and a slot of a map it reads.
    unsafe {
        if delta != 0 && bpf_xdp_adjust_tail(ctx.ctx, delta) != 0 {
            return None;
        }
        let data = core::ptr::addr_of!((*frame).data) as *mut core::ffi::c_void;
        if bpf_xdp_store_bytes(ctx.ctx, 0, data, len) != 0 {
            return None;
        }
        Some(bpf_redirect(ifindex, 0) as u32)
    }
}
