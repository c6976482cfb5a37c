//! What the process tracepoints (`track_process`) and the agent exchange: the agent fills
//! `TRACKED_COMMS` with the process names it counts (and sets `PROC_ALL` when a command line
//! must be read for every new program) and `TRACKED_PIDS` with the processes it counted; the
//! kernel reports an exec of a tracked name, and the exit of a tracked process, on
//! `PROC_EVENTS`. Nothing else wakes the agent.

/// The kernel's process name length (`comm`, NUL included).
pub const COMM_LEN: usize = 16;
pub const PROC_EXEC: u32 = 1;
pub const PROC_EXIT: u32 = 2;

/// One entry of `PROC_EVENTS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcEvent {
    /// [`PROC_EXEC`] or [`PROC_EXIT`].
    pub kind: u32,
    /// The process (thread group) id.
    pub pid: u32,
    /// Its name (`/proc/PID/comm`), NUL padded.
    pub comm: [u8; COMM_LEN],
}

const _: () = assert!(core::mem::size_of::<ProcEvent>() == 24);

#[cfg(feature = "user")]
// SAFETY: repr(C), integer fields only, no implicit padding (size asserted above), every bit
// pattern valid.
unsafe impl aya::Pod for ProcEvent {}
