//! Real-time scheduling and locked memory for the agent (on by default, as corosync runs;
//! keepalived offers it with `vrrp_rt_priority` and `vrrp_no_swap`). A loop that the CPU
//! scheduler leaves waiting, or whose pages are swapped out, misses its adverts and its peer
//! takes over. SCHED_RESET_ON_FORK keeps it from every thread and process the agent starts:
//! checks, notify scripts and the blocking threads that read configurations run normally.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

/// The default SCHED_RR priority: above every normal process, below the kernel's threaded
/// interrupt handlers (priority 50), which deliver the very adverts the loop waits for.
pub const DEFAULT_PRIORITY: u8 = 10;

/// CAP_IPC_LOCK's bit in the capability sets.
const CAP_IPC_LOCK: u32 = 14;

/// Makes the calling process SCHED_RR at `priority` (reset on fork).
pub fn schedule(priority: u8) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: i32::from(priority),
    };
    // SAFETY: a system call on this process with a valid, initialised parameter.
    let rc =
        unsafe { libc::sched_setscheduler(0, libc::SCHED_RR | libc::SCHED_RESET_ON_FORK, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Locks the process's memory as it is touched (MCL_ONFAULT: nothing is read in ahead).
/// Refused without CAP_IPC_LOCK under a finite RLIMIT_MEMLOCK: MCL_FUTURE would then make
/// allocations fail once the limit is reached.
pub fn lock_memory() -> Result<(), String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return Err(format!("getrlimit: {}", io::Error::last_os_error()));
    }
    if limit.rlim_cur != libc::RLIM_INFINITY && !has_capability(CAP_IPC_LOCK) {
        return Err(format!(
            "no CAP_IPC_LOCK and RLIMIT_MEMLOCK is {} bytes (locking could make allocations fail)",
            limit.rlim_cur
        ));
    }
    // SAFETY: mlockall takes only flags.
    let rc = unsafe { libc::mlockall(LOCK_FLAGS) };
    if rc == 0 {
        LOCKED.store(true, Ordering::Relaxed);
        Ok(())
    } else {
        Err(io::Error::last_os_error().to_string())
    }
}

const LOCK_FLAGS: libc::c_int = libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT;

/// Whether [`lock_memory`] locked the process's memory.
static LOCKED: AtomicBool = AtomicBool::new(false);

/// One malloc arena for the whole process. The helper threads (the XDP loader, the
/// configuration reader) allocate rarely; an arena of their own kept ~1 MiB after the XDP
/// load that the main arena gives back.
pub fn single_arena() {
    // SAFETY: mallopt takes two integers; a refusal leaves the default.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Sheds a working set the loop no longer needs: start-up's once the agent runs, and a burst
/// of transitions' once it settled. Free heap goes back to the kernel (malloc_trim: a
/// takeover of 255 instances leaves ~0.8 MiB of freed buffers scattered through it), and the
/// pages of the agent's own executable that were touched (argument parsing, the
/// configuration parser, the XDP loader: ~6 MiB at start; addresses, ARP and logs in a
/// takeover) are unmapped. The loop faults back in, from the page cache, the few it runs on.
/// Only clean, read-only mappings of the executable are dropped: their pages are the file's.
/// Locked pages cannot be dropped, so these ranges alone are unlocked for the trim and locked
/// again as [`lock_memory`] locks them (as touched): ~1 ms on the loop.
pub fn trim_memory() {
    let began = std::time::Instant::now();
    let locked = LOCKED.load(Ordering::Relaxed);
    let executable = EXECUTABLE.get_or_init(clean_executable_mappings);
    let ranges = || executable.iter().copied().chain(heap_mapping());
    if locked {
        for (start, len) in ranges() {
            // SAFETY: a range of this process's own mappings; munlock only unlocks.
            unsafe {
                libc::munlock(start as *const libc::c_void, len);
            }
        }
    }
    // SAFETY: malloc_trim takes no pointer; it gives back only free memory.
    unsafe {
        libc::malloc_trim(0);
    }
    for &(start, len) in executable {
        // SAFETY: a whole mapping of the executable that is neither writable nor copied:
        // dropping its pages loses nothing, the next access reads them from the file again.
        unsafe {
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED);
        }
    }
    if locked {
        // The heap as the trim left it (it may have shrunk).
        for (start, len) in ranges() {
            // SAFETY: as above; best effort, as the first lock was.
            unsafe {
                libc::mlock2(start as *const libc::c_void, len, libc::MLOCK_ONFAULT);
            }
        }
    }
    tracing::debug!(
        took_us = began.elapsed().as_micros() as u64,
        "memory trimmed"
    );
}

/// The executable's clean mappings ([`clean_executable_mappings`]), read once: they do not
/// change, and reading `smaps` costs the loop ~0.4 ms.
static EXECUTABLE: std::sync::OnceLock<Vec<(usize, usize)>> = std::sync::OnceLock::new();

/// (start, length) of the process's heap (the brk area malloc grows).
fn heap_mapping() -> Option<(usize, usize)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let line = maps.lines().find(|l| l.ends_with("[heap]"))?;
    let (start, end) = line.split_whitespace().next()?.split_once('-')?;
    let (start, end) = (
        usize::from_str_radix(start, 16).ok()?,
        usize::from_str_radix(end, 16).ok()?,
    );
    Some((start, end - start))
}

/// (start, length) of each mapping of this process's executable that is read-only and holds
/// no anonymous page, none copied on write (the text and the read-only data; not the part
/// relocated at start).
fn clean_executable_mappings() -> Vec<(usize, usize)> {
    let (Ok(exe), Ok(smaps)) = (
        std::fs::read_link("/proc/self/exe"),
        std::fs::read_to_string("/proc/self/smaps"),
    ) else {
        return Vec::new();
    };
    let exe = exe.to_string_lossy().into_owned();
    let mut out = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            )
        {
            let perms = fields.next().unwrap_or_default();
            let path = fields.nth(3).unwrap_or_default();
            current = (path == exe && !perms.contains('w')).then(|| (start, end - start));
        } else if first == "Anonymous:"
            && let Some(mapping) = current.take()
            && fields.next() == Some("0")
        {
            out.push(mapping);
        }
    }
    out
}

/// Whether `cap` is in this process's effective set (from /proc/self/status).
fn has_capability(cap: u32) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        .is_some_and(|set| set & (1 << cap) != 0)
}
