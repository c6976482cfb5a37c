//! BFD's transmission clocked by the kernel (ha-common's `bfd` module says what the agent
//! and the kernel share): the agent queues tokens on its pacing interface, whose
//! token-bucket qdisc releases them on time; each arrives at the interface's other end,
//! where this program turns a session's token into that session's frame and sends it out
//! of the session's interface. Nothing else arriving there goes anywhere.

use aya_ebpf::{
    bindings::TC_ACT_SHOT,
    helpers::{bpf_redirect, bpf_skb_change_tail},
    macros::{classifier, map},
    maps::HashMap,
    programs::TcContext,
};
use ha_common::bfd::{BFD_FRAME_LEN, BfdKey, BfdTx};

/// The sessions the kernel transmits for, by our discriminator; filled by the agent.
#[map]
static BFD_TX: HashMap<BfdKey, BfdTx> = HashMap::with_max_entries(256, 0);

/// Where the discriminator sits in a token: after its Ethernet header and four zeros.
const TOKEN_DISCR: usize = 18;

#[classifier]
pub fn bfd_pace(ctx: TcContext) -> i32 {
    send(&ctx).unwrap_or(TC_ACT_SHOT)
}

#[inline(always)]
fn send(ctx: &TcContext) -> Option<i32> {
    let discr = ctx.load::<[u8; 4]>(TOKEN_DISCR).ok()?;
    let key = BfdKey {
        discr: u32::from_be_bytes(discr),
    };
    let tx = BFD_TX.get_ptr_mut(key)?;
    // SAFETY: helpers on this program's own packet, and a value of a map it owns; the
    // counter is the kernel's alone.
    unsafe {
        if bpf_skb_change_tail(ctx.skb.skb, BFD_FRAME_LEN as u32, 0) != 0 {
            return None;
        }
        ctx.store(0, &(*tx).frame, 0).ok()?;
        (*tx).sent += 1;
        Some(bpf_redirect((*tx).ifindex, 0) as i32)
    }
}
