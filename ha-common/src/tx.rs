//! What the agent and the XDP program share to transmit adverts from the kernel: the agent
//! writes a tick's frames into `TX_FRAMES` (memory-mapped, no system call per frame) and
//! runs `ha_tx` once for all of them (`BPF_PROG_RUN` in live-frames mode, repeated once per
//! frame); each run takes the next frame, and the kernel hands it to the interface's driver
//! (`XDP_REDIRECT`), with no socket buffer, qdisc or copy through a socket.

/// Slots in `TX_FRAMES`: frames one run can send (a burst, see the agent's `TX_BURST`; every
/// mapped page is resident, 33 KiB).
pub const TX_SLOTS: u32 = 128;
/// The longest frame a slot holds (IPv4 with up to 53 addresses, IPv6 with up to 12);
/// longer adverts go through the socket.
pub const TX_FRAME_MAX: usize = 256;

/// One `TX_FRAMES` slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxFrame {
    /// The interface to send it on.
    pub ifindex: u32,
    /// Its length, at most [`TX_FRAME_MAX`].
    pub len: u32,
    pub data: [u8; TX_FRAME_MAX],
}

const _: () = assert!(core::mem::size_of::<TxFrame>() == 264);

/// `TX_CURSOR`'s one value (also memory-mapped): the agent sets `next` to 0 and `filled` to
/// the slots it wrote before a run; each run takes slot `next` and advances it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxCursor {
    pub next: u32,
    pub filled: u32,
}
