//! Loading and attaching the XDP program, and reading its maps.

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, MapError, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::{SchedClassifier, TcAttachType, TestRun as _, TestRunOptions, Xdp, XdpMode},
};
use ha_common::{
    bfd::{BfdKey, BfdTx, BfdWatch},
    classify::{ClassCount, FrameClass},
    vrrp::{
        CountKey, Event, NotAcceptedKey, PEER_SLOTS as PEER_SLOTS_LEN, Peer, SourceKey, Verdict,
        VipClaims, VipEntry, VipKey, VridConfig, VridKey,
    },
};

mod batch;
mod mapping;
pub mod tx;

/// The XDP object built from `ha-ebpf` by build.rs, embedded in the binary.
pub static HA_EBPF: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ha-ebpf"));

/// A master's address as `PEERS` holds it (`addr16`), in the family of `key`'s VRID.
pub fn peer_address(key: VridKey, master: &[u8; 16]) -> std::net::IpAddr {
    if key.vrid & ha_common::vrrp::VRID_IPV6 != 0 {
        std::net::Ipv6Addr::from(*master).into()
    } else {
        std::net::Ipv4Addr::new(master[0], master[1], master[2], master[3]).into()
    }
}

const PROGRAM: &str = "ha_xdp";
const CLASS_COUNTS: &str = "CLASS_COUNTS";
const VRIDS: &str = "VRIDS";
const PEERS: &str = "PEERS";
const VERDICTS: &str = "VERDICTS";
const EVENTS: &str = "EVENTS";
const VIPS: &str = "VIPS";
const VIP_CLAIMS: &str = "VIP_CLAIMS";
/// `PEERS` entries read per call: the map's size, so one call reads it all.
const PEERS_READ_CHUNK: usize = 4096;
const SOURCES: &str = "SOURCES";
const NOT_ACCEPTED: &str = "NOT_ACCEPTED";
const NOT_ACCEPTED_DROPS: &str = "NOT_ACCEPTED_DROPS";
const BFD_SESSIONS: &str = "BFD_SESSIONS";
const PEER_SLOTS: &str = "PEER_SLOTS";
const BFD_EVENTS: &str = "BFD_EVENTS";
const BFD_TX: &str = "BFD_TX";
const PACE_PROGRAM: &str = "bfd_pace";

#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("loading the XDP object: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("XDP program: {0}")]
    Program(#[from] aya::programs::ProgramError),
    #[error("XDP map: {0}")]
    Map(#[from] aya::maps::MapError),
    #[error("updating {0} in a batch: {1}")]
    Batch(&'static str, std::io::Error),
    #[error("mapping {0}: {1}")]
    Mapping(&'static str, std::io::Error),
    #[error("the XDP object has no {0}")]
    Missing(&'static str),
    #[error("the thread loading the XDP program: {0}")]
    Loader(String),
    #[error("polling the XDP event ring: {0}")]
    Events(String),
    #[error(
        "attaching XDP to {interface}:{}{}",
        attempt(" native", native),
        attempt(" generic", generic)
    )]
    Attach {
        interface: String,
        native: Option<Box<aya::programs::ProgramError>>,
        generic: Option<Box<aya::programs::ProgramError>>,
    },
}

fn attempt(mode: &str, error: &Option<Box<aya::programs::ProgramError>>) -> String {
    error
        .as_ref()
        .map(|e| format!("{mode} mode failed ({e});"))
        .unwrap_or_default()
}

/// How the program ended up attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Run by the driver before an skb is allocated.
    Native,
    /// Run by the kernel's generic hook (drivers without XDP support).
    Generic,
}

impl AttachMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        }
    }
}

/// Which attach modes to try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Native, else generic.
    Any,
    Native,
    Generic,
}

/// The loaded XDP program and its maps; attached to any number of interfaces, detached from
/// all of them when dropped.
pub struct XdpProgram {
    ebpf: Ebpf,
    attached: Vec<(String, AttachMode)>,
    /// Adverts sent from the kernel, when the maps could be mapped.
    tx: Option<tx::Transmitter>,
    /// `PEER_SLOTS`, mapped (read without a system call).
    peer_slots: Option<mapping::Mapping>,
    /// The index of the interface BFD's tokens are queued on, once `bfd_pace` runs.
    pacer: Option<u32>,
}

impl XdpProgram {
    /// Loads the embedded object into the kernel (not attached yet).
    pub fn load() -> Result<Self, XdpError> {
        // Without the kernel's BTF: the program makes no CO-RE relocations, and parsing
        // /sys/kernel/btf/vmlinux was most of the load's time and a passing ~15 MiB of heap.
        let mut ebpf = EbpfLoader::new().btf(None).load(HA_EBPF)?;
        program(&mut ebpf)?.load()?;
        pace_program(&mut ebpf)?.load()?;
        let tx = tx::Transmitter::new(&ebpf)
            .inspect_err(|e| tracing::info!("adverts are sent on sockets: {e}"))
            .ok();
        let peer_slots = match ebpf.map(PEER_SLOTS) {
            Some(aya::maps::Map::Array(data)) => {
                mapping::Mapping::new(data, PEER_SLOTS_LEN as usize * size_of::<Peer>())
                    .inspect_err(|e| tracing::info!("{PEER_SLOTS} read by system calls: {e}"))
                    .ok()
            }
            _ => None,
        };
        Ok(Self {
            ebpf,
            attached: Vec::new(),
            tx,
            peer_slots,
            pacer: None,
        })
    }

    /// Attaches to `interface` (in the calling thread's network namespace): native mode
    /// first, generic mode if the driver refuses. An interface that already has an XDP
    /// program (another agent's, say) is an error, never taken over.
    pub fn attach(&mut self, interface: &str) -> Result<AttachMode, XdpError> {
        self.attach_as(interface, Want::Any)
    }

    /// [`XdpProgram::attach`] in the modes `want` allows.
    pub fn attach_as(&mut self, interface: &str, want: Want) -> Result<AttachMode, XdpError> {
        let program = program(&mut self.ebpf)?;
        let native = match want {
            Want::Generic => None,
            _ => match program.attach(interface, XdpMode::Driver) {
                Ok(_) => return Ok(self.attached_to(interface, AttachMode::Native)),
                Err(e) => Some(e),
            },
        };
        let generic = match want {
            Want::Native => None,
            _ => match program.attach(interface, XdpMode::Skb) {
                Ok(_) => return Ok(self.attached_to(interface, AttachMode::Generic)),
                Err(e) => Some(e),
            },
        };
        Err(XdpError::Attach {
            interface: interface.to_owned(),
            native: native.map(Box::new),
            generic: generic.map(Box::new),
        })
    }

    fn attached_to(&mut self, interface: &str, mode: AttachMode) -> AttachMode {
        self.attached.push((interface.to_owned(), mode));
        mode
    }

    /// How the program is attached to the first interface, if it is.
    pub fn mode(&self) -> Option<AttachMode> {
        self.attached.first().map(|(_, mode)| *mode)
    }

    /// Every interface the program is attached to, and how.
    pub fn attached(&self) -> &[(String, AttachMode)] {
        &self.attached
    }

    /// Runs the program once on `frame` (BPF_PROG_TEST_RUN) and returns its XDP verdict;
    /// the maps are updated as for a received frame.
    pub fn run_on(&mut self, frame: &[u8]) -> Result<u32, XdpError> {
        let options = TestRunOptions {
            data_in: Some(frame),
            ..Default::default()
        };
        Ok(program(&mut self.ebpf)?.test_run(options)?.return_value)
    }

    /// Whether [`XdpProgram::transmit`] can send.
    pub fn can_transmit(&self) -> bool {
        self.tx.is_some()
    }

    /// Sends Ethernet frames, each on its interface, from the kernel (no socket): one
    /// system call for up to 256 of them. Each must fit [`tx::FRAME_MAX`] and its interface
    /// take redirected frames (`net::xdp_features`), or it is lost.
    pub fn transmit(&mut self, frames: &[(u32, &[u8])]) -> Result<(), XdpError> {
        let tx = self.tx.as_ref().ok_or(XdpError::Missing("TX_FRAMES"))?;
        tx.send(&mut self.ebpf, frames)
    }

    /// Frames and bytes seen per class, summed over all CPUs.
    pub fn class_counts(&self) -> Result<Vec<(FrameClass, ClassCount)>, XdpError> {
        let map = self
            .ebpf
            .map(CLASS_COUNTS)
            .ok_or(XdpError::Missing(CLASS_COUNTS))?;
        let counts: PerCpuArray<_, ClassCount> = PerCpuArray::try_from(map)?;
        FrameClass::ALL
            .iter()
            .map(|&class| {
                let per_cpu = counts.get(&(class as u32), 0)?;
                let total = per_cpu
                    .iter()
                    .fold(ClassCount::default(), |acc, c| ClassCount {
                        frames: acc.frames + c.frames,
                        bytes: acc.bytes + c.bytes,
                    });
                Ok((class, total))
            })
            .collect()
    }
}

impl XdpProgram {
    fn hash_map<K: aya::Pod, V: aya::Pod>(
        &self,
        name: &'static str,
    ) -> Result<HashMap<&MapData, K, V>, XdpError> {
        Ok(HashMap::try_from(
            self.ebpf.map(name).ok_or(XdpError::Missing(name))?,
        )?)
    }

    fn hash_map_mut<K: aya::Pod, V: aya::Pod>(
        &mut self,
        name: &'static str,
    ) -> Result<HashMap<&mut MapData, K, V>, XdpError> {
        Ok(HashMap::try_from(
            self.ebpf.map_mut(name).ok_or(XdpError::Missing(name))?,
        )?)
    }

    fn map_data(&self, name: &'static str) -> Result<&MapData, XdpError> {
        match self.ebpf.map(name).ok_or(XdpError::Missing(name))? {
            aya::maps::Map::HashMap(data) => Ok(data),
            _ => Err(XdpError::Missing(name)),
        }
    }

    /// Tells the program what adverts for each VRID must look like (and that it may drop
    /// the invalid ones): one system call for all of them.
    pub fn configure_vrids(&mut self, entries: &[(VridKey, VridConfig)]) -> Result<(), XdpError> {
        batch::update(self.map_data(VRIDS)?, entries).map_err(|e| XdpError::Batch(VRIDS, e))
    }

    pub fn configure_vrid(&mut self, key: VridKey, config: VridConfig) -> Result<(), XdpError> {
        self.configure_vrids(&[(key, config)])
    }

    /// Forgets `key`: its adverts are passed untouched again.
    pub fn remove_vrid(&mut self, key: VridKey) -> Result<(), XdpError> {
        let mut map = self.hash_map_mut::<VridKey, VridConfig>(VRIDS)?;
        map.remove(&key)?;
        let mut peers = self.hash_map_mut::<VridKey, Peer>(PEERS)?;
        let _ = peers.remove(&key);
        Ok(())
    }

    /// The master each configured VRID follows, from its last accepted advert: the whole
    /// map in one system call.
    /// Entry by entry when the batch call fails (kernels before 5.6 have none for hash
    /// maps): a backup that missed its master's adverts would take over from it.
    pub fn peers(&self) -> Result<Vec<(VridKey, Peer)>, XdpError> {
        match batch::lookup_all(self.map_data(PEERS)?, PEERS_READ_CHUNK) {
            Ok(peers) => Ok(peers),
            Err(e) => {
                static WARNED: std::sync::Once = std::sync::Once::new();
                WARNED.call_once(|| {
                    tracing::warn!(
                        "XDP: reading {PEERS} in one call failed ({e}); reading it entry by entry"
                    );
                });
                let map = self.hash_map::<VridKey, Peer>(PEERS)?;
                Ok(map.iter().filter_map(Result::ok).collect())
            }
        }
    }

    /// The copy of a VRID's `PEERS` entry at `slot` of `PEER_SLOTS`, read from the mapping:
    /// `Some(None)` while nothing was recorded there, `None` when it cannot be read so (no
    /// mapping, or a write under way each time it was tried).
    pub fn peer_at(&self, slot: u32) -> Option<Option<Peer>> {
        use std::sync::atomic::{Ordering, fence};
        let slots = self.peer_slots.as_ref()?;
        if slot >= PEER_SLOTS_LEN {
            return None;
        }
        // SAFETY: `slot` is inside the mapping, which holds every slot.
        let entry = unsafe { slots.ptr.cast::<Peer>().as_ptr().add(slot as usize) };
        for _ in 0..3 {
            // SAFETY: volatile reads of the mapped slot; a torn copy is detected below.
            let (before, peer, after) = unsafe {
                let before = std::ptr::read_volatile(std::ptr::addr_of!((*entry).seq));
                fence(Ordering::Acquire);
                let peer = std::ptr::read_volatile(entry);
                fence(Ordering::Acquire);
                (
                    before,
                    peer,
                    std::ptr::read_volatile(std::ptr::addr_of!((*entry).seq)),
                )
            };
            if before % 2 == 0 && before == after {
                return Some((peer.last_seen_ns != 0).then_some(peer));
            }
        }
        None
    }

    /// Empties `slot` of `PEER_SLOTS` for a VRID that takes it (its last user's record gone).
    pub fn clear_peer_slot(&mut self, slot: u32) {
        if let Some(slots) = &self.peer_slots
            && slot < PEER_SLOTS_LEN
        {
            // SAFETY: inside the mapping; the kernel writes the slot only for the VRID whose
            // configuration names it, and none does yet.
            unsafe {
                std::ptr::write_volatile(
                    slots.ptr.cast::<Peer>().as_ptr().add(slot as usize),
                    Peer::default(),
                );
            }
        }
    }

    /// `key`'s `PEERS` entry (a system call).
    pub fn peer(&self, key: VridKey) -> Result<Option<Peer>, XdpError> {
        found(self.hash_map::<VridKey, Peer>(PEERS)?.get(&key, 0))
    }

    /// Adds VIPs or updates them (instance, held, own MAC) in one system call; the kernel's
    /// record of who claimed each lives in another map and stays.
    pub fn set_vips(&mut self, entries: &[(VipKey, VipEntry)]) -> Result<(), XdpError> {
        batch::update(self.map_data(VIPS)?, entries).map_err(|e| XdpError::Batch(VIPS, e))
    }

    pub fn set_vip(
        &mut self,
        key: VipKey,
        vrid: u32,
        held: bool,
        own_mac: [u8; 6],
    ) -> Result<(), XdpError> {
        let entry = VipEntry {
            vrid,
            held: u8::from(held),
            own_mac,
            ..Default::default()
        };
        self.set_vips(&[(key, entry)])
    }

    /// Lets `key`'s VRID accept its sender (when its `VridConfig` checks sources).
    pub fn allow_source(&mut self, key: SourceKey) -> Result<(), XdpError> {
        let mut map = self.hash_map_mut::<SourceKey, u8>(SOURCES)?;
        map.insert(key, 1, 0)?;
        Ok(())
    }

    pub fn forbid_source(&mut self, key: SourceKey) -> Result<(), XdpError> {
        let mut map = self.hash_map_mut::<SourceKey, u8>(SOURCES)?;
        map.remove(&key)?;
        Ok(())
    }

    /// Traffic to `key` is dropped from now on (Accept_Mode off while it is held).
    pub fn refuse(&mut self, key: NotAcceptedKey) -> Result<(), XdpError> {
        let mut map = self.hash_map_mut::<NotAcceptedKey, u8>(NOT_ACCEPTED)?;
        map.insert(key, 1, 0)?;
        Ok(())
    }

    pub fn unrefuse(&mut self, key: NotAcceptedKey) -> Result<(), XdpError> {
        let mut map = self.hash_map_mut::<NotAcceptedKey, u8>(NOT_ACCEPTED)?;
        map.remove(&key)?;
        Ok(())
    }

    /// Frames dropped because their VIP does not accept traffic, on all CPUs.
    pub fn not_accepted_drops(&self) -> Result<u64, XdpError> {
        let map = self
            .ebpf
            .map(NOT_ACCEPTED_DROPS)
            .ok_or(XdpError::Missing(NOT_ACCEPTED_DROPS))?;
        let counts: PerCpuArray<_, u64> = PerCpuArray::try_from(map)?;
        Ok(counts.get(&0, 0)?.iter().sum())
    }

    pub fn remove_vip(&mut self, key: VipKey) -> Result<(), XdpError> {
        let mut map = self.hash_map_mut::<VipKey, VipEntry>(VIPS)?;
        map.remove(&key)?;
        let mut claims = self.hash_map_mut::<VipKey, VipClaims>(VIP_CLAIMS)?;
        let _ = claims.remove(&key);
        Ok(())
    }

    /// Every VIP entry, with the kernel's record of ARP claims.
    pub fn vips(&self) -> Result<Vec<(VipKey, VipEntry, VipClaims)>, XdpError> {
        let map = self.hash_map::<VipKey, VipEntry>(VIPS)?;
        let claims = self.hash_map::<VipKey, VipClaims>(VIP_CLAIMS)?;
        map.iter()
            .map(|entry| {
                let (key, vip) = entry?;
                Ok((key, vip, found(claims.get(&key, 0))?.unwrap_or_default()))
            })
            .collect()
    }

    /// How many VRRP packets got each verdict, per interface, summed over all CPUs.
    pub fn verdicts(&self) -> Result<Vec<(u32, Verdict, u64)>, XdpError> {
        let map: PerCpuHashMap<_, CountKey, u64> =
            PerCpuHashMap::try_from(self.ebpf.map(VERDICTS).ok_or(XdpError::Missing(VERDICTS))?)?;
        let mut out = Vec::new();
        for entry in map.iter() {
            let (key, per_cpu) = entry?;
            if let Some(verdict) = Verdict::ALL.into_iter().find(|v| *v as u32 == key.verdict) {
                out.push((key.ifindex, verdict, per_cpu.iter().sum()));
            }
        }
        Ok(out)
    }

    /// The changes the program reported since the last call (unless the ring buffer was
    /// taken by [`XdpProgram::take_events`]).
    pub fn events(&mut self) -> Result<Vec<Event>, XdpError> {
        let mut ring =
            RingBuf::try_from(self.ebpf.map_mut(EVENTS).ok_or(XdpError::Missing(EVENTS))?)?;
        Ok(drain_events(&mut ring))
    }

    /// The ring buffer of changes, owned (to be polled for readiness).
    /// Has the kernel absorb `key`'s steady packets and time its peer out (a new entry:
    /// its timer starts with the next absorbed packet).
    pub fn watch_bfd(&mut self, key: BfdKey, watch: BfdWatch) -> Result<(), XdpError> {
        let mut map = self.hash_map_mut::<BfdKey, BfdWatch>(BFD_SESSIONS)?;
        map.insert(key, watch, 0)?;
        Ok(())
    }

    pub fn unwatch_bfd(&mut self, key: BfdKey) -> Result<(), XdpError> {
        let mut map = self.hash_map_mut::<BfdKey, BfdWatch>(BFD_SESSIONS)?;
        match map.remove(&key) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// `key`'s entry as the kernel keeps it (absorbed packets, the last one's time).
    pub fn bfd_watch(&self, key: BfdKey) -> Result<Option<BfdWatch>, XdpError> {
        let map = self.hash_map::<BfdKey, BfdWatch>(BFD_SESSIONS)?;
        found(map.get(&key, 0))
    }

    /// Runs `bfd_pace` where the pacing interface's tokens arrive (`interface`, in the
    /// calling thread's network namespace); `pacer` is where they are queued.
    pub fn attach_pacer(&mut self, interface: &str, pacer: u32) -> Result<(), XdpError> {
        pace_program(&mut self.ebpf)?.attach(interface, TcAttachType::Ingress)?;
        self.pacer = Some(pacer);
        Ok(())
    }

    pub fn pacer(&self) -> Option<u32> {
        self.pacer
    }

    /// Has the kernel send `tx.frame` for `key` at each of its tokens.
    pub fn pace_bfd(&mut self, key: BfdKey, tx: BfdTx) -> Result<(), XdpError> {
        let mut map = self.hash_map_mut::<BfdKey, BfdTx>(BFD_TX)?;
        map.insert(key, tx, 0)?;
        Ok(())
    }

    /// Stops it; the frames it sent.
    pub fn unpace_bfd(&mut self, key: BfdKey) -> Result<u64, XdpError> {
        let sent = self.paced_bfd(key)?.map_or(0, |tx| tx.sent);
        let mut map = self.hash_map_mut::<BfdKey, BfdTx>(BFD_TX)?;
        match map.remove(&key) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(sent),
            Err(e) => Err(e.into()),
        }
    }

    pub fn paced_bfd(&self, key: BfdKey) -> Result<Option<BfdTx>, XdpError> {
        let map = self.hash_map::<BfdKey, BfdTx>(BFD_TX)?;
        found(map.get(&key, 0))
    }

    /// The ring on which silent peers are reported.
    pub fn take_bfd_events(&mut self) -> Result<RingBuf<MapData>, XdpError> {
        Ok(RingBuf::try_from(
            self.ebpf
                .take_map(BFD_EVENTS)
                .ok_or(XdpError::Missing(BFD_EVENTS))?,
        )?)
    }

    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, XdpError> {
        Ok(RingBuf::try_from(
            self.ebpf
                .take_map(EVENTS)
                .ok_or(XdpError::Missing(EVENTS))?,
        )?)
    }
}

/// Every record waiting in `ring` (`Event`s, `BfdExpired`s).
pub fn drain_events<E: aya::Pod, T: std::borrow::Borrow<MapData>>(ring: &mut RingBuf<T>) -> Vec<E> {
    let mut out = Vec::new();
    while let Some(item) = ring.next() {
        if item.len() >= size_of::<E>() {
            // SAFETY: E is plain old data and the record holds at least its size; read
            // unaligned.
            out.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<E>()) });
        }
    }
    out
}

/// A lookup's value, `None` for a missing key.
fn found<V>(result: Result<V, MapError>) -> Result<Option<V>, XdpError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(MapError::KeyNotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn program(ebpf: &mut Ebpf) -> Result<&mut Xdp, XdpError> {
    Ok(ebpf
        .program_mut(PROGRAM)
        .ok_or(XdpError::Missing(PROGRAM))?
        .try_into()?)
}

fn pace_program(ebpf: &mut Ebpf) -> Result<&mut SchedClassifier, XdpError> {
    Ok(ebpf
        .program_mut(PACE_PROGRAM)
        .ok_or(XdpError::Missing(PACE_PROGRAM))?
        .try_into()?)
}
