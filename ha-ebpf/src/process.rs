//! `track_process`: raw tracepoints on program execution and process exit (raw, so that no
//! tracefs is needed). An exec whose new name the agent tracks (or any exec while it needs
//! command lines) and the exit of a process it counted go out on `PROC_EVENTS`; threads and
//! other processes cost a map lookup each.

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid},
    macros::{map, raw_tracepoint},
    maps::{Array, HashMap, RingBuf},
    programs::RawTracePointContext,
};
use ha_common::process::{COMM_LEN, PROC_EXEC, PROC_EXIT, ProcEvent};

/// Process names the agent counts; filled by the agent.
#[map]
static TRACKED_COMMS: HashMap<[u8; COMM_LEN], u8> = HashMap::with_max_entries(256, 0);

/// Processes the agent counted, by pid; filled by the agent, emptied here on their exit.
#[map]
static TRACKED_PIDS: HashMap<u32, u8> = HashMap::with_max_entries(16384, 0);

/// Entry 0 set: every exec is reported (a `track_process` matches command lines).
#[map]
static PROC_ALL: Array<u32> = Array::with_max_entries(1, 0);

#[map]
static PROC_EVENTS: RingBuf = RingBuf::with_byte_size(64 * 1024, 0);

#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn ha_exec(_ctx: RawTracePointContext) -> i32 {
    // The task has its new program's name by the time the tracepoint fires.
    let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Ok(comm) = bpf_get_current_comm() else {
        return 0;
    };
    let all = PROC_ALL.get(0).is_some_and(|v| *v != 0);
    // A counted process that runs another program may no longer count.
    // SAFETY: lookups; the values are not read.
    if all
        || unsafe { TRACKED_COMMS.get(comm) }.is_some()
        || unsafe { TRACKED_PIDS.get(pid) }.is_some()
    {
        let _ = PROC_EVENTS.output::<ProcEvent>(
            ProcEvent {
                kind: PROC_EXEC,
                pid,
                comm,
            },
            0,
        );
    }
    0
}

#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn ha_exit(_ctx: RawTracePointContext) -> i32 {
    let id = bpf_get_current_pid_tgid();
    let (pid, thread) = ((id >> 32) as u32, id as u32);
    // Every thread passes here; the process ends with its leader.
    if thread != pid {
        return 0;
    }
    // SAFETY: a lookup; the value is not read.
    if unsafe { TRACKED_PIDS.get(pid) }.is_none() {
        return 0;
    }
    let _ = TRACKED_PIDS.remove(pid);
    let comm = bpf_get_current_comm().unwrap_or([0; COMM_LEN]);
    let _ = PROC_EVENTS.output::<ProcEvent>(
        ProcEvent {
            kind: PROC_EXIT,
            pid,
            comm,
        },
        0,
    );
    0
}
