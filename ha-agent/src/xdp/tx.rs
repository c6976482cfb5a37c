//! Adverts transmitted from the kernel: a tick's frames are written into `TX_FRAMES`
//! through a shared mapping and sent by one `BPF_PROG_RUN` of the attached XDP program in
//! live-frames mode (ha-common's `tx` module). One system call for the tick, no socket
//! buffer per frame.

use aya::{
    Ebpf,
    maps::Map,
    programs::{TestRun as _, TestRunAttrs, TestRunOptions},
};
pub use ha_common::tx::TX_FRAME_MAX as FRAME_MAX;
use ha_common::tx::{TX_FRAME_MAX, TX_SLOTS, TxCursor, TxFrame};

use super::{XdpError, mapping::Mapping};

const TX_FRAMES: &str = "TX_FRAMES";
const TX_CURSOR: &str = "TX_CURSOR";

/// What each run starts from, grown and overwritten with the slot's frame: an Ethernet
/// header's worth, the least the kernel takes. Each frame's page is set up from it, so
/// every byte more is copied once per frame sent.
static SCRATCH: [u8; 14] = [0; 14];

/// The transmitter's two maps, mapped into this process.
pub struct Transmitter {
    frames: Mapping,
    cursor: Mapping,
}

impl Transmitter {
    /// Maps the maps of a loaded object.
    pub fn new(ebpf: &Ebpf) -> Result<Self, XdpError> {
        let map = |name: &'static str| match ebpf.map(name) {
            Some(Map::Array(data)) => Ok(data),
            _ => Err(XdpError::Missing(name)),
        };
        let frames = Mapping::new(map(TX_FRAMES)?, TX_SLOTS as usize * size_of::<TxFrame>())
            .map_err(|e| XdpError::Mapping(TX_FRAMES, e))?;
        let cursor = Mapping::new(map(TX_CURSOR)?, size_of::<TxCursor>())
            .map_err(|e| XdpError::Mapping(TX_CURSOR, e))?;
        Ok(Self { frames, cursor })
    }

    /// Sends `frames` (interface, Ethernet frame) in order: one system call per
    /// [`TX_SLOTS`]. Frames longer than [`TX_FRAME_MAX`] are the caller's to send otherwise.
    pub fn send(&self, ebpf: &mut Ebpf, frames: &[(u32, &[u8])]) -> Result<(), XdpError> {
        for chunk in frames.chunks(TX_SLOTS as usize) {
            let slots = self.frames.ptr.cast::<TxFrame>();
            for (i, (ifindex, frame)) in chunk.iter().enumerate() {
                // SAFETY: `i` < TX_SLOTS, inside the mapping; the kernel reads the slots
                // only during the run below, which this thread makes.
                let slot = unsafe { &mut *slots.as_ptr().add(i) };
                let len = frame.len().min(TX_FRAME_MAX);
                slot.ifindex = *ifindex;
                slot.len = len as u32;
                for (to, from) in slot.data.iter_mut().zip(frame.iter()) {
                    *to = *from;
                }
            }
            let cursor = TxCursor {
                next: 0,
                filled: chunk.len() as u32,
            };
            // SAFETY: the mapping holds the map's one TxCursor; nothing runs the program on
            // the loopback device meanwhile.
            unsafe { self.cursor.ptr.cast::<TxCursor>().write(cursor) };
            let options = TestRunOptions {
                data_in: Some(&SCRATCH),
                repeat: chunk.len() as u32,
                attrs: TestRunAttrs::new().xdp_live_frames(TX_SLOTS),
                ..Default::default()
            };
            super::program(ebpf)?.test_run(options)?;
        }
        Ok(())
    }
}
