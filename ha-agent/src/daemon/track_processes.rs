//! `vrrp_track_process`: the kernel reports what changes (raw tracepoints on exec and exit,
//! see `ha-ebpf`), the processes running at start are found by one pass over /proc, and a
//! task on the side runtime keeps the counts, reads command lines when it must and applies
//! the delays; the loop hears only when a tracker goes up or down, or its count changes.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    time::Duration,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap as BpfHashMap, MapData, RingBuf},
    programs::RawTracePoint,
};
use ha_common::process::{COMM_LEN, PROC_EXEC, PROC_EXIT, ProcEvent};
use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::mpsc,
    task::JoinHandle,
};
use tracing::{info, warn};

use crate::{
    config::TrackProcess,
    track::process::{Quorum, matches, needs_cmdline},
};

/// A tracker's state changed: (vrrp_track_process name, up, processes running).
pub type Report = (String, bool, usize);

pub struct TrackProcesses {
    specs: Vec<TrackProcess>,
    state: HashMap<String, (bool, usize)>,
    task: Option<JoinHandle<()>>,
    tx: mpsc::Sender<Report>,
    pub rx: mpsc::Receiver<Report>,
}

impl Default for TrackProcesses {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(64);
        Self {
            specs: Vec::new(),
            state: HashMap::new(),
            task: None,
            tx,
            rx,
        }
    }
}

impl TrackProcesses {
    /// Watches `specs` (again from a fresh count when they changed).
    pub fn configure(&mut self, specs: &[TrackProcess]) {
        if specs == self.specs.as_slice() {
            return;
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.specs = specs.to_vec();
        self.state
            .retain(|name, _| specs.iter().any(|s| &s.name == name));
        if specs.is_empty() {
            return;
        }
        match super::side_runtime() {
            Ok(side) => self.task = Some(side.spawn(serve(specs.to_vec(), self.tx.clone()))),
            Err(e) => warn!("track_process: {e}"),
        }
    }

    /// Takes a report; whether the tracker's state changed.
    pub fn update(&mut self, (name, up, count): Report) -> bool {
        self.state.insert(name, (up, count)) != Some((up, count))
    }

    /// Whether `name` is up and how many processes run (down, none, until first counted).
    pub fn state(&self, name: &str) -> (bool, usize) {
        self.state.get(name).copied().unwrap_or((false, 0))
    }

    pub fn spec(&self, name: &str) -> Option<&TrackProcess> {
        self.specs.iter().find(|s| s.name == name)
    }
}

/// The tracepoints and their maps.
struct Kernel {
    ebpf: Ebpf,
    events: AsyncFd<RingBuf<MapData>>,
}

/// The XDP program's maps, unused here: one entry each instead of thousands.
const XDP_MAPS: [&str; 7] = [
    "VRIDS",
    "PEERS",
    "VERDICTS",
    "SOURCES",
    "VIPS",
    "VIP_CLAIMS",
    "CLASS_COUNTS",
];

impl Kernel {
    fn open(specs: &[TrackProcess]) -> Result<Self, String> {
        let mut loader = EbpfLoader::new();
        loader.btf(None);
        for map in XDP_MAPS {
            loader.map_max_entries(map, 1);
        }
        let mut ebpf = loader
            .load(crate::xdp::HA_EBPF)
            .map_err(|e| format!("loading the tracepoints: {e}"))?;
        for (program, tracepoint) in [
            ("ha_exec", "sched_process_exec"),
            ("ha_exit", "sched_process_exit"),
        ] {
            let p: &mut RawTracePoint = ebpf
                .program_mut(program)
                .ok_or_else(|| format!("no program {program}"))?
                .try_into()
                .map_err(|e| format!("{program}: {e}"))?;
            p.load().map_err(|e| format!("{program}: {e}"))?;
            p.attach(tracepoint)
                .map_err(|e| format!("attaching {tracepoint}: {e}"))?;
        }
        let mut comms: BpfHashMap<_, [u8; COMM_LEN], u8> = BpfHashMap::try_from(
            ebpf.map_mut("TRACKED_COMMS")
                .ok_or("no map TRACKED_COMMS")?,
        )
        .map_err(|e| e.to_string())?;
        for comm in specs.iter().filter_map(TrackProcess::comm) {
            comms
                .insert(comm_key(comm), 1, 0)
                .map_err(|e| format!("TRACKED_COMMS: {e}"))?;
        }
        if specs.iter().any(|s| s.full_command) {
            let mut all: Array<_, u32> =
                Array::try_from(ebpf.map_mut("PROC_ALL").ok_or("no map PROC_ALL")?)
                    .map_err(|e| e.to_string())?;
            all.set(0, 1, 0).map_err(|e| format!("PROC_ALL: {e}"))?;
        }
        let ring = RingBuf::try_from(ebpf.take_map("PROC_EVENTS").ok_or("no map PROC_EVENTS")?)
            .map_err(|e| e.to_string())?;
        // SAFETY: the ring buffer owns its descriptor for as long as the AsyncFd holds it.
        let events = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| format!("PROC_EVENTS: {e}"))?;
        Ok(Self { ebpf, events })
    }

    /// Has the kernel report `pid`'s exit.
    fn follow(&mut self, pid: u32) {
        if let Some(map) = self.ebpf.map_mut("TRACKED_PIDS")
            && let Ok(mut pids) = BpfHashMap::<_, u32, u8>::try_from(map)
        {
            let _ = pids.insert(pid, 1, 0);
        }
    }

    /// The next batch of events.
    async fn events(&mut self) -> Vec<ProcEvent> {
        loop {
            let Ok(mut guard) = self.events.readable_mut().await else {
                return std::future::pending().await;
            };
            let mut out = Vec::new();
            let ring = guard.get_inner_mut();
            while let Some(item) = ring.next() {
                if let Some(bytes) = item.first_chunk::<{ size_of::<ProcEvent>() }>() {
                    // SAFETY: ProcEvent is plain old data of exactly this size.
                    out.push(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) });
                }
            }
            guard.clear_ready();
            if !out.is_empty() {
                return out;
            }
        }
    }
}

fn comm_key(comm: &str) -> [u8; COMM_LEN] {
    let mut key = [0u8; COMM_LEN];
    for (k, b) in key.iter_mut().zip(comm.bytes().take(COMM_LEN - 1)) {
        *k = b;
    }
    key
}

fn comm_text(comm: &[u8; COMM_LEN]) -> String {
    let end = comm.iter().position(|b| *b == 0).unwrap_or(COMM_LEN);
    String::from_utf8_lossy(comm.get(..end).unwrap_or_default()).into_owned()
}

/// `/proc/PID/cmdline` as its words (none for a kernel thread or a process gone).
fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    (!words.is_empty()).then_some(words)
}

/// Which trackers count process `pid` named `comm` (its command line read if one needs it).
fn counted_by(specs: &[TrackProcess], pid: u32, comm: &str) -> Vec<usize> {
    let cmd = specs
        .iter()
        .any(needs_cmdline)
        .then(|| cmdline(pid))
        .flatten();
    specs
        .iter()
        .enumerate()
        .filter(|(_, s)| matches(s, comm, cmd.as_deref()))
        .map(|(i, _)| i)
        .collect()
}

fn monotonic() -> Duration {
    super::now()
}

async fn serve(specs: Vec<TrackProcess>, tx: mpsc::Sender<Report>) {
    // The tracepoints first: a process started during the scan is seen either way.
    let mut kernel = match Kernel::open(&specs) {
        Ok(k) => k,
        Err(e) => {
            warn!("track_process: {e}; the processes are not tracked (their trackers stay down)");
            return;
        }
    };
    let mut pids: Vec<HashSet<u32>> = vec![HashSet::new(); specs.len()];
    if let Ok(dir) = std::fs::read_dir(Path::new("/proc")) {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else {
                continue;
            };
            for i in counted_by(&specs, pid, comm.trim_end_matches('\n')) {
                if let Some(set) = pids.get_mut(i) {
                    set.insert(pid);
                    kernel.follow(pid);
                }
            }
        }
    }
    let mut quorums: Vec<Quorum> = specs
        .iter()
        .zip(&pids)
        .map(|(s, p)| Quorum::new(s, p.len()))
        .collect();
    for (s, q) in specs.iter().zip(&quorums) {
        info!(track_process = %s.name, running = q.count(), up = q.up(), "tracking processes");
        let _ = tx.send((s.name.clone(), q.up(), q.count())).await;
    }
    loop {
        let deadline = quorums.iter().filter_map(Quorum::deadline).min();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep(at.saturating_sub(monotonic())).await,
                None => std::future::pending().await,
            }
        };
        let before: Vec<(bool, usize)> = quorums.iter().map(|q| (q.up(), q.count())).collect();
        tokio::select! {
            events = kernel.events() => {
                for event in events {
                    let comm = comm_text(&event.comm);
                    let counted = match event.kind {
                        PROC_EXEC => counted_by(&specs, event.pid, &comm),
                        PROC_EXIT => Vec::new(),
                        _ => continue,
                    };
                    for (i, set) in pids.iter_mut().enumerate() {
                        if counted.contains(&i) {
                            set.insert(event.pid);
                        } else {
                            // Gone, or a counted process that became another program.
                            set.remove(&event.pid);
                        }
                    }
                    if !counted.is_empty() {
                        kernel.follow(event.pid);
                    }
                }
                let now = monotonic();
                for (q, set) in quorums.iter_mut().zip(&pids) {
                    if q.count() != set.len() {
                        q.set_count(set.len(), now);
                    }
                }
            }
            () = sleep => {
                let now = monotonic();
                for q in &mut quorums {
                    q.poll(now);
                }
            }
        }
        for ((s, q), was) in specs.iter().zip(&quorums).zip(before) {
            if (q.up(), q.count()) != was {
                let _ = tx.send((s.name.clone(), q.up(), q.count())).await;
            }
        }
    }
}
