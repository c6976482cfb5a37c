//! The XDP program as the daemon uses it: attached to every instance's interface, its
//! `VRIDS` and `VIPS` maps kept equal to the instances (so it drops invalid adverts for our
//! VRIDs, absorbs the valid ones of backups and watches ARP for our VIPs), its change
//! events read as they come, and its counters and tables shown in the status.
//!
//! A backup does not wake per advert: the kernel records its master's last advert in
//! `PEERS` and sends only changes (new master, priority, resignation, interval) on
//! `EVENTS`. Its down timer is judged against `PEERS` when it expires (see
//! `Daemon::sweep_kernel`), so a backup with a live master wakes about once per
//! Master_Down_Interval minus one advert interval, however many instances it runs.

use std::collections::{BTreeMap, HashMap, HashSet};

use aya::maps::{MapData, RingBuf};
use ha_common::{
    bfd::{BfdExpired, BfdKey, BfdTx, BfdWatch},
    vrrp::{Event, NotAcceptedKey, Peer, SourceKey, VipEntry, VipKey, VridConfig, VridKey},
};
use nix::net::if_::if_nametoindex;
use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::mpsc,
};
use tracing::{info, warn};

use crate::{
    ctl::status::{XdpPeer, XdpStatus, XdpVip},
    xdp::{AttachMode, Want, XdpError, XdpProgram, drain_events},
};

/// What the program reports on its rings.
pub enum KernelEvents {
    Vrrp(Vec<Event>),
    BfdExpired(Vec<BfdExpired>),
}

/// `run --xdp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Native, else generic, else none (with a warning that says why).
    Auto,
    Native,
    Generic,
    Off,
}

pub struct Kernel {
    program: XdpProgram,
    want: Want,
    events: AsyncFd<RingBuf<MapData>>,
    /// BFD peers the kernel saw fall silent.
    bfd_events: AsyncFd<RingBuf<MapData>>,
    /// What `VRIDS` holds.
    vrids: HashMap<VridKey, VridConfig>,
    /// What the agent wrote into `VIPS`.
    vips: HashMap<VipKey, VipEntry>,
    /// What `SOURCES` holds.
    sources: HashSet<SourceKey>,
    /// What `NOT_ACCEPTED` holds.
    not_accepted: HashSet<NotAcceptedKey>,
    /// ifindex → interface name, for the status.
    names: HashMap<u32, String>,
    /// The interfaces whose adverts the kernel transmits (see [`Kernel::transmits_on`]).
    transmit: HashSet<u32>,
    /// The kernel's answers to [`Kernel::probe_transmit`]: asked on a blocking thread, as
    /// the question waits for the RTNL lock, which another agent's XDP attach (on any
    /// namespace of this kernel) holds for ~10 ms; on the loop that made a late advert.
    probes: (
        mpsc::UnboundedSender<Probed>,
        mpsc::UnboundedReceiver<Probed>,
    ),
    /// Each interface's latest question: only its answer counts (answers from the blocking
    /// threads may come out of order, and a stale "takes frames" would lose adverts).
    asked: HashMap<u32, u64>,
    /// Frames transmitted from the kernel.
    transmitted: u64,
    /// Each configured VRID's slot in `PEER_SLOTS`, and the slots given back.
    slots: HashMap<VridKey, u32>,
    free_slots: Vec<u32>,
}

/// An interface (ifindex), which of its questions this answers, and whether its driver
/// takes redirected frames.
type Probed = (u32, u64, std::io::Result<bool>);

impl Choice {
    /// The attach modes to try; `None` for `off`.
    fn want(self) -> Option<Want> {
        match self {
            Choice::Off => None,
            Choice::Auto => Some(Want::Any),
            Choice::Native => Some(Want::Native),
            Choice::Generic => Some(Want::Generic),
        }
    }
}

/// The program being loaded and attached beside the loop.
pub type Loading = tokio::task::JoinHandle<Result<XdpProgram, XdpError>>;

/// Loads the program and attaches it to `interfaces` on a blocking thread (`None` for
/// `off`). Parsing the object and the kernel's verifier take CPU time that must not delay
/// the first advert, nor run at the loop's SCHED_RR priority: threads start with normal
/// scheduling (SCHED_RESET_ON_FORK), where a loading loop at the same real-time priority as
/// another agent's loop would keep that loop off a CPU for a whole round-robin slice (100 ms).
///
/// With `pace` (BFD sessions are configured), it also makes the pacing interface of BFD's
/// kernel transmission (`net::pacer`); without it, BFD's packets are sent by the agent.
pub fn load(choice: Choice, interfaces: Vec<String>, pace: bool) -> Option<Loading> {
    let want = choice.want()?;
    Some(tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let mut program = XdpProgram::load()?;
        let loaded = started.elapsed();
        for interface in &interfaces {
            if if_nametoindex(interface.as_str()).is_ok() {
                program.attach_as(interface, want)?;
            }
        }
        info!(
            load_ms = loaded.as_secs_f64() * 1e3,
            attach_ms = (started.elapsed() - loaded).as_secs_f64() * 1e3,
            "XDP program loaded"
        );
        if pace && let Err(e) = set_up_pacer(&mut program) {
            warn!("BFD's periodic packets are sent by the agent: {e}");
        }
        Ok(program)
    }))
}

/// The pacing interface, with `bfd_pace` where its tokens arrive.
fn set_up_pacer(program: &mut XdpProgram) -> Result<(), String> {
    use crate::net::pacer;
    let index = tokio::runtime::Handle::current().block_on(async {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(|e| e.to_string())?;
        let served = tokio::spawn(connection);
        let created = pacer::create(&handle).await;
        served.abort();
        created
    })?;
    program
        .attach_pacer(pacer::PACER_IN, index)
        .map_err(|e| format!("{}: {e}", pacer::PACER_IN))?;
    info!(
        interface = pacer::PACER,
        "BFD's periodic packets are clocked by the kernel"
    );
    Ok(())
}

impl Kernel {
    /// Puts the program [`load`] produced to use. `Ok(Err(why))`: running on the sockets
    /// alone (`auto` when the kernel refused; the warning says why).
    pub fn start(
        choice: Choice,
        loaded: Result<XdpProgram, XdpError>,
    ) -> Result<Result<Self, String>, XdpError> {
        // A program was loaded, so the choice was not `off`.
        let want = choice.want().unwrap_or(Want::Any);
        let started = loaded.and_then(|mut program| {
            let ring = program.take_events()?;
            // SAFETY: the ring buffer owns its descriptor for as long as the AsyncFd holds it.
            let events = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
                .map_err(|e| XdpError::Events(e.to_string()))?;
            let ring = program.take_bfd_events()?;
            // SAFETY: as above.
            let bfd_events = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
                .map_err(|e| XdpError::Events(e.to_string()))?;
            let names = program
                .attached()
                .iter()
                .filter_map(|(name, mode)| {
                    info!(interface = %name, mode = mode.as_str(), "XDP attached");
                    Some((if_nametoindex(name.as_str()).ok()?, name.clone()))
                })
                .collect();
            let mut kernel = Self {
                program,
                want,
                events,
                bfd_events,
                vrids: HashMap::new(),
                vips: HashMap::new(),
                sources: HashSet::new(),
                not_accepted: HashSet::new(),
                names,
                transmit: HashSet::new(),
                probes: mpsc::unbounded_channel(),
                asked: HashMap::new(),
                transmitted: 0,
                slots: HashMap::new(),
                free_slots: Vec::new(),
            };
            for ifindex in kernel.names.keys().copied().collect::<Vec<_>>() {
                kernel.probe_transmit(ifindex);
            }
            Ok(kernel)
        });
        match started {
            Ok(kernel) => Ok(Ok(kernel)),
            Err(e) if choice == Choice::Auto => {
                warn!("XDP not used ({e}): adverts and ARP are watched on sockets");
                Ok(Err(e.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    /// Whether the program is attached to `ifindex` (and watches its ARP).
    pub fn attached_to(&self, ifindex: u32) -> bool {
        self.names.contains_key(&ifindex)
    }

    /// How the program runs on `interface`, if it is attached there.
    pub fn mode(&self, interface: &str) -> Option<AttachMode> {
        self.program
            .attached()
            .iter()
            .find(|(name, _)| name == interface)
            .map(|(_, mode)| *mode)
    }

    /// Attaches to the interfaces not attached yet (a missing one is reported by the daemon).
    pub fn attach(&mut self, interfaces: &[&str]) -> Result<(), XdpError> {
        for &interface in interfaces {
            let Ok(ifindex) = if_nametoindex(interface) else {
                continue;
            };
            if !self.names.contains_key(&ifindex) {
                let mode = self.program.attach_as(interface, self.want)?;
                info!(%interface, mode = mode.as_str(), "XDP attached");
                self.names.insert(ifindex, interface.to_owned());
                self.probe_transmit(ifindex);
            }
        }
        Ok(())
    }

    /// Asks the kernel, beside the loop, whether `ifindex`'s driver takes redirected frames
    /// (after the attach, as some drivers take them only then, and again whenever the
    /// kernel announces a change: [`Kernel::features_changed`]); the answer is applied as
    /// it comes ([`Kernel::events`]). Until then the interface keeps its current path.
    fn probe_transmit(&mut self, ifindex: u32) {
        if !self.program.can_transmit() {
            return;
        }
        let question = self.asked.entry(ifindex).or_default();
        *question += 1;
        let question = *question;
        let answers = self.probes.0.clone();
        tokio::task::spawn_blocking(move || {
            let takes = crate::net::xdp_features::takes_redirects(ifindex);
            let _ = answers.send((ifindex, question, takes));
        });
    }

    /// The kernel's answer for `ifindex`: its adverts transmitted from the kernel, or not.
    fn probed(&mut self, (ifindex, question, takes): Probed) {
        let Some(interface) = self.names.get(&ifindex) else {
            return;
        };
        if self.asked.get(&ifindex) != Some(&question) {
            return;
        }
        let now = matches!(takes, Ok(true));
        match takes {
            Ok(true) => info!(%interface, "adverts transmitted from the kernel (XDP)"),
            Ok(false) => {
                info!(%interface, "adverts sent on the socket: the driver takes no XDP frames")
            }
            Err(e) => info!(%interface, "adverts sent on the socket: XDP features unknown ({e})"),
        }
        if now {
            self.transmit.insert(ifindex);
        } else {
            self.transmit.remove(&ifindex);
        }
    }

    /// The kernel announced that `ifindex`'s XDP features changed (or that any may have).
    pub fn features_changed(&mut self, ifindex: u32) {
        let every = ifindex == crate::net::xdp_features::EVERY_INTERFACE;
        for index in self.names.keys().copied().collect::<Vec<_>>() {
            if every || index == ifindex {
                self.probe_transmit(index);
            }
        }
    }

    /// Whether adverts leaving on `ifindex` (whole frames) go out through [`Kernel::transmit`].
    pub fn transmits_on(&self, ifindex: u32) -> bool {
        self.transmit.contains(&ifindex)
    }

    /// Sends frames (interface, Ethernet frame) from the kernel, in order.
    pub fn transmit(&mut self, frames: &[(u32, &[u8])]) -> Result<(), XdpError> {
        self.program.transmit(frames)?;
        self.transmitted += frames.len() as u64;
        Ok(())
    }

    /// Makes `VRIDS`, `VIPS`, `SOURCES` and `NOT_ACCEPTED` what the instances want; only
    /// differences cost a syscall. Sources are allowed before a VRID starts checking them.
    pub fn sync(
        &mut self,
        vrids: HashMap<VridKey, VridConfig>,
        vips: HashMap<VipKey, VipEntry>,
        sources: HashSet<SourceKey>,
        not_accepted: HashSet<NotAcceptedKey>,
    ) -> Result<(), XdpError> {
        for key in not_accepted.difference(&self.not_accepted) {
            self.program.refuse(*key)?;
        }
        for key in self.not_accepted.difference(&not_accepted) {
            self.program.unrefuse(*key)?;
        }
        self.not_accepted = not_accepted;
        for key in sources.difference(&self.sources) {
            self.program.allow_source(*key)?;
        }
        let vrids: HashMap<VridKey, VridConfig> = vrids
            .into_iter()
            .map(|(key, config)| {
                let slot = self.slot(key);
                (key, VridConfig { slot, ..config })
            })
            .collect();
        for key in missing_from(&vrids, &self.vrids) {
            self.program.remove_vrid(key)?;
            self.vrids.remove(&key);
            // Given back only now: the kernel no longer writes it for `key`.
            if let Some(slot) = self.slots.remove(&key) {
                self.free_slots.push(slot);
            }
        }
        // A takeover of many instances changes many entries: one batch per map.
        let changed: Vec<(VridKey, VridConfig)> = vrids
            .into_iter()
            .filter(|(key, config)| self.vrids.get(key) != Some(config))
            .collect();
        self.program.configure_vrids(&changed)?;
        self.vrids.extend(changed);
        for key in missing_from(&vips, &self.vips) {
            self.program.remove_vip(key)?;
            self.vips.remove(&key);
        }
        let changed: Vec<(VipKey, VipEntry)> = vips
            .into_iter()
            .filter(|(key, want)| self.vips.get(key) != Some(want))
            .collect();
        self.program.set_vips(&changed)?;
        self.vips.extend(changed);
        for key in self.sources.difference(&sources) {
            self.program.forbid_source(*key)?;
        }
        self.sources = sources;
        Ok(())
    }

    /// Whether the kernel absorbs `key`'s valid adverts (its instance learns of them here).
    pub fn absorbs(&self, key: VridKey) -> bool {
        self.vrids.get(&key).is_some_and(|c| c.absorb != 0)
    }

    /// `key`'s slot in `PEER_SLOTS`, taken (and emptied) on first use.
    fn slot(&mut self, key: VridKey) -> u32 {
        if let Some(&slot) = self.slots.get(&key) {
            return slot;
        }
        let slot = self.free_slots.pop().unwrap_or(self.slots.len() as u32);
        self.program.clear_peer_slot(slot);
        self.slots.insert(key, slot);
        slot
    }

    /// The master the kernel recorded for `key`: read from the mapped `PEER_SLOTS`, or by a
    /// system call when it cannot be.
    pub fn peer(&self, key: VridKey) -> Option<Peer> {
        let mapped = self.slots.get(&key).and_then(|&s| self.program.peer_at(s));
        match mapped {
            Some(peer) => peer,
            None => self.program.peer(key).unwrap_or_else(|e| {
                warn!("XDP: reading PEERS: {e}");
                None
            }),
        }
    }

    /// The next batch of change events: VRRP peers' changes, or BFD peers that fell silent.
    /// The kernel's answers about the interfaces' XDP features are applied meanwhile.
    pub async fn events(&mut self) -> KernelEvents {
        loop {
            let answer = tokio::select! {
                events = next_records(&mut self.events) => return KernelEvents::Vrrp(events),
                expired = next_records(&mut self.bfd_events) => {
                    return KernelEvents::BfdExpired(expired);
                }
                Some(answer) = self.probes.1.recv() => answer,
            };
            self.probed(answer);
        }
    }

    /// The kernel absorbs `key`'s steady packets and times its peer out.
    pub fn watch_bfd(&mut self, key: BfdKey, watch: BfdWatch) -> Result<(), XdpError> {
        self.program.watch_bfd(key, watch)
    }

    pub fn unwatch_bfd(&mut self, key: BfdKey) -> Result<(), XdpError> {
        self.program.unwatch_bfd(key)
    }

    /// `key`'s entry with what the kernel wrote into it.
    pub fn bfd_watch(&self, key: BfdKey) -> Option<BfdWatch> {
        self.program.bfd_watch(key).ok().flatten()
    }

    /// The interface BFD's tokens are queued on, if the kernel can clock them.
    pub fn pacer(&self) -> Option<u32> {
        self.program.pacer()
    }

    pub fn pace_bfd(&mut self, key: BfdKey, tx: BfdTx) -> Result<(), XdpError> {
        self.program.pace_bfd(key, tx)
    }

    /// Stops the kernel's transmission for `key`; the frames it sent.
    pub fn unpace_bfd(&mut self, key: BfdKey) -> Result<u64, XdpError> {
        self.program.unpace_bfd(key)
    }

    /// Frames the kernel sent for `key` so far.
    pub fn paced_bfd(&self, key: BfdKey) -> u64 {
        self.program
            .paced_bfd(key)
            .ok()
            .flatten()
            .map_or(0, |tx| tx.sent)
    }

    pub fn interface(&self, ifindex: u32) -> String {
        self.names
            .get(&ifindex)
            .cloned()
            .unwrap_or_else(|| format!("ifindex {ifindex}"))
    }

    pub fn status(&self) -> XdpStatus {
        let mut verdicts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for (ifindex, verdict, n) in self.program.verdicts().unwrap_or_default() {
            verdicts
                .entry(self.interface(ifindex))
                .or_default()
                .insert(verdict.name().to_owned(), n);
        }
        let now_ns = crate::daemon::now().as_nanos() as u64;
        let ago = |ns: u64| now_ns.saturating_sub(ns) as f64 / 1e6;
        let mut peers: Vec<XdpPeer> = self
            .program
            .peers()
            .unwrap_or_default()
            .into_iter()
            .map(|(key, peer)| XdpPeer {
                interface: self.interface(key.ifindex),
                vrid: key.vrid as u8,
                master: crate::xdp::peer_address(key, &peer.master).to_string(),
                priority: peer.priority,
                interval_cs: peer.interval_cs,
                adverts: peer.adverts,
                last_seen_ms_ago: ago(peer.last_seen_ns),
            })
            .collect();
        peers.sort_by(|a, b| (&a.interface, a.vrid).cmp(&(&b.interface, b.vrid)));
        let mut vips: Vec<XdpVip> = self
            .program
            .vips()
            .unwrap_or_default()
            .into_iter()
            .map(|(key, entry, claims)| {
                let claimed = claims.claims > 0;
                XdpVip {
                    interface: self.interface(key.ifindex),
                    vip: std::net::Ipv4Addr::from(key.addr).to_string(),
                    held: entry.held != 0,
                    claimed_by: claimed.then(|| crate::net::link::mac_string(&claims.holder)),
                    claims: claims.claims,
                    last_claim_ms_ago: claimed.then(|| ago(claims.last_claim_ns)),
                }
            })
            .collect();
        vips.sort_by(|a, b| (&a.interface, &a.vip).cmp(&(&b.interface, &b.vip)));
        XdpStatus {
            attached: self
                .program
                .attached()
                .iter()
                .map(|(interface, mode)| (interface.clone(), mode.as_str().to_owned()))
                .collect(),
            verdicts,
            peers,
            vips,
            not_accepted_drops: self.program.not_accepted_drops().unwrap_or_default(),
            transmit: self
                .names
                .iter()
                .map(|(ifindex, name)| {
                    let how = if self.transmits_on(*ifindex) {
                        "kernel"
                    } else {
                        "socket"
                    };
                    (name.clone(), how.to_owned())
                })
                .collect(),
            transmitted: self.transmitted,
        }
    }
}

/// The next records on `ring`, once there are any.
async fn next_records<E: aya::Pod>(ring: &mut AsyncFd<RingBuf<MapData>>) -> Vec<E> {
    loop {
        let mut guard = match ring.readable_mut().await {
            Ok(guard) => guard,
            Err(e) => {
                warn!("XDP: waiting for events: {e}");
                return std::future::pending().await;
            }
        };
        let records = drain_events(guard.get_inner_mut());
        guard.clear_ready();
        if !records.is_empty() {
            return records;
        }
    }
}

/// The keys of `current` that `wanted` lacks.
fn missing_from<K: Copy + Eq + std::hash::Hash, A, B>(
    wanted: &HashMap<K, A>,
    current: &HashMap<K, B>,
) -> Vec<K> {
    current
        .keys()
        .filter(|k| !wanted.contains_key(k))
        .copied()
        .collect()
}

/// The interfaces of `instances` and of their VIPs, once each.
pub fn interfaces<'a>(
    instances: impl IntoIterator<Item = &'a crate::config::VrrpInstance>,
) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    instances
        .into_iter()
        .flat_map(|i| {
            std::iter::once(i.interface.as_str())
                .chain(i.vips.iter().filter_map(|v| v.dev.as_deref()))
        })
        .filter(|name| seen.insert(*name))
        .collect()
}
