//! One configured VRRP instance at run time: its state machine, the links and socket it
//! uses, and the execution of its actions.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    time::{Duration, Instant},
};

use tracing::{error, info, warn};

use ha_common::vrrp::{
    AUTH_NONE, AUTH_PASS, NotAcceptedKey, Peer, SourceKey, VRID_IPV6, VipEntry, VipKey, VridConfig,
    VridKey, addr_digest, addr16,
};

use super::{
    DaemonError, World,
    db::{Op, Outcome},
    notify::{Event, Notice, Notifier},
    reload::Change,
    witness::KEY_WAIT_SLACK,
};
use crate::{
    config::{Vip, VrrpInstance},
    ctl::status::{
        InstanceStatus, InstanceWitness, PeerMismatch, TrackerStatus, Transition, TransitionCount,
        unix_now,
    },
    net::{
        advert_socket::multicast_frame,
        arp_watch::HeldVip,
        link::{Link, mac_string},
        routes, vmac,
    },
    vrrp::{
        Family, Version,
        fsm::{Action, Instance, Params, Reason, Received, State},
        packet::{Accepted, Advert, ChecksumForm, Disagreement, DropReason, Expect, Interval},
        receive::Target,
        sync_group::{Moved, Order},
    },
    witness::session::Outcome as WitnessOutcome,
};

/// Adverts of instances with the same key share one socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SocketKey {
    pub ifindex: u32,
    pub family: Family,
    pub unicast_src: Option<IpAddr>,
}

/// An advert's configuration as a log line or the status shows it.
fn describe(addrs: &[IpAddr], interval: Interval) -> String {
    let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    let interval = match interval {
        Interval::Seconds(s) => format!("{s} s"),
        Interval::Centis(cs) => format!("{cs} cs"),
    };
    format!(
        "virtual_ipaddress [{}], advert_int {interval}",
        addrs.join(", ")
    )
}

/// A VIP and the interface it lives on.
#[derive(Clone)]
pub struct VipTarget {
    vip: Vip,
    ifindex: u32,
    mac: [u8; 6],
}

#[derive(Default)]
pub struct Stats {
    pub sent: u64,
    pub received: u64,
    pub dropped: BTreeMap<DropReason, u64>,
    pub arp_conflicts: u64,
    /// Adverts accepted although configured otherwise, by field.
    pub config_mismatch: BTreeMap<&'static str, u64>,
    /// Transitions by (new state, reason kind).
    pub transitions: BTreeMap<(State, &'static str), u64>,
}

impl Stats {
    pub fn drop(&mut self, reason: DropReason) {
        *self.dropped.entry(reason).or_default() += 1;
    }
}

pub struct Running {
    pub cfg: VrrpInstance,
    pub socket_key: SocketKey,
    pub stats: Stats,
    fsm: Instance,
    primary_ip: IpAddr,
    /// The interface's MAC: the source of adverts sent as whole frames.
    mac: [u8; 6],
    /// The advert last sent, per destination, and its priority: built again only when the
    /// priority or the configuration changes.
    advert: Option<(u8, Vec<(IpAddr, bytes::Bytes)>)>,
    vips: Vec<VipTarget>,
    /// The VIPs' addresses, as adverts carry them.
    vip_addrs: Vec<IpAddr>,
    vips_held: bool,
    last_transition: Option<Transition>,
    address_mismatch_log: RateLimit,
    notifier: Notifier,
    /// The configuration the current peer's adverts disagree with, if they do.
    disagreement: Option<PeerMismatch>,
    /// The kernel receive time (ns) of the last advert read from the XDP maps.
    kernel_fed_ns: u64,
    /// When gratuitous ARP last answered an ARP conflict.
    conflict_garp: Option<Instant>,
    /// The last other router heard as master: the peer a takeover is logged against.
    known_master: Option<IpAddr>,
    /// The interface the adverts and ARP arrive on (under the VMAC, if any): where the XDP
    /// program sees them.
    kernel_ifindex: u32,
    /// The VMAC macvlan, and the interface under it (`use_vmac`).
    vmac: Option<(Link, String)>,
    /// The etcd witness's view of this instance (`witness`).
    witness: WitnessView,
    /// Transitions since its sync group last looked (members of a group only).
    pub moved: Vec<Moved>,
    /// Stopping because a reload removed it: announced FAULT (or DELETED), not STOP.
    removed: bool,
}

/// Whether this instance holds its leader key, and why it was last refused.
#[derive(Default)]
struct WitnessView {
    /// The leader key's name in etcd.
    key: String,
    holder: bool,
    refused: Option<String>,
    /// The promotion waiting for the key: whether it is a failover (for the database).
    failover: bool,
    /// Election mode: the candidacy last sent to the witness (priority, `None`: standing
    /// aside; preemption), if any was.
    candidacy: Option<(Option<u8>, bool)>,
}

/// At most one log line per period for a recurring event; the rest are counted into it.
#[derive(Default)]
pub(super) struct RateLimit {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimit {
    const PERIOD: Duration = Duration::from_secs(10);

    /// Whether to log now, and how many occurrences were not logged since the last line.
    pub(super) fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|t| now < t + Self::PERIOD) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

fn params(cfg: &VrrpInstance, primary_ip: IpAddr) -> Params {
    Params {
        vrid: cfg.vrid,
        version: cfg.version,
        priority: cfg.priority,
        advert_int_cs: cfg.advert_int_cs,
        // A database follows the VIP: it moves when the master fails or on a switchover,
        // never back on its own (no automatic failback).
        preempt: cfg.preempt && cfg.track_replication.is_empty(),
        preempt_delay: cfg.preempt_delay,
        fast_preempt: cfg.fast_preempt,
        primary_ip,
        garp_delay: cfg.garp.delay,
        garp_refresh: cfg.garp.refresh,
        // Elected, the leadership is the key: only a database gates the takeover.
        gated: !cfg.track_replication.is_empty() || (cfg.witness.is_some() && !elected(cfg)),
        witnessed: cfg.witness.is_some(),
        elected: elected(cfg),
        down_timer_adverts: cfg.down_timer_adverts,
        answer_lower: !cfg.lower_prio_no_advert,
        advert_before_yield: cfg.higher_prio_send_advert,
        extra_garp: cfg
            .garp
            .extra_if
            .filter(|(_, all)| *all)
            .map(|(period, _)| period),
        lower_prio_garp: (lower_prio_repeat(cfg) > 0).then(|| {
            let delay = cfg.garp.lower_prio_delay.unwrap_or(cfg.garp.delay);
            (!delay.is_zero()).then_some(delay)
        }),
    }
}

/// GARPs per VIP a MASTER sends on hearing a lower priority (keepalived's default:
/// `garp_master_repeat`).
fn lower_prio_repeat(cfg: &VrrpInstance) -> u32 {
    cfg.garp.lower_prio_repeat.unwrap_or(cfg.garp.repeat)
}

/// Whether the witness's election, not VRRP, makes this instance MASTER.
fn elected(cfg: &VrrpInstance) -> bool {
    cfg.witness.as_ref().is_some_and(|w| w.election)
}

/// Where `vip` lives: its `dev`, else the instance's interface.
fn vip_target(
    cfg: &VrrpInstance,
    link: &Link,
    vip: &Vip,
) -> Result<(VipTarget, Link), DaemonError> {
    let target_link = match &vip.dev {
        Some(dev) => Link::lookup(dev)
            .map_err(|e| DaemonError::Config(format!("{}: VIP {}: {e}", cfg.loc, vip.addr)))?,
        None => link.clone(),
    };
    let target = VipTarget {
        vip: vip.clone(),
        ifindex: target_link.index,
        mac: target_link.mac,
    };
    Ok((target, target_link))
}

/// `promote_secondaries`: the interface keeps a subnet's other addresses when one goes
/// (IPv4's notion: IPv6 addresses have no primary).
fn promote_secondaries(iface: &str) -> Result<(), String> {
    let path = format!("/proc/sys/net/ipv4/conf/{iface}/promote_secondaries");
    std::fs::write(&path, "1").map_err(|e| format!("promote_secondaries: {path}: {e}"))
}

/// The addresses the adverts carry: the VIPs but `virtual_ipaddress_excluded`.
fn advertised(cfg: &VrrpInstance) -> Vec<IpAddr> {
    cfg.vips
        .iter()
        .filter(|v| !v.excluded)
        .map(|v| v.addr)
        .collect()
}

fn link_of(cfg: &VrrpInstance) -> Result<Link, DaemonError> {
    Link::lookup(&cfg.interface)
        .map_err(|e| DaemonError::Config(format!("{}: instance {}: {e}", cfg.loc, cfg.name)))
}

impl Running {
    /// Resolves interfaces and addresses, removes VIPs an earlier run left behind, and
    /// opens the socket. The state machine is not started.
    pub async fn prepare(cfg: VrrpInstance, world: &mut World) -> Result<Self, DaemonError> {
        let base = link_of(&cfg)?;
        // With a VMAC, adverts are read and VIPs live on the macvlan.
        let vmac_link = match &cfg.vmac {
            Some(v) => Some(
                vmac::create(world.vips.handle(), &v.name, &base, cfg.family, cfg.vrid)
                    .await
                    .map_err(|e| {
                        DaemonError::Config(format!(
                            "{}: instance {}: use_vmac: {e}",
                            cfg.loc, cfg.name
                        ))
                    })?,
            ),
            None => None,
        };
        let link = vmac_link.clone().unwrap_or_else(|| base.clone());
        if cfg.promote_secondaries {
            promote_secondaries(&link.name).map_err(|e| {
                DaemonError::Config(format!("{}: instance {}: {e}", cfg.loc, cfg.name))
            })?;
        }
        let all_vips: Vec<IpAddr> = cfg.vips.iter().map(|v| v.addr).collect();
        let vip_addrs = advertised(&cfg);
        let primary_ip = cfg
            .unicast_src_ip
            .or(cfg.mcast_src_ip)
            .or_else(|| base.primary_ip(cfg.family, &all_vips))
            .ok_or_else(|| {
                let what = match cfg.family {
                    Family::V4 => "IPv4 address",
                    Family::V6 => "IPv6 link-local address",
                };
                DaemonError::Config(format!(
                    "{}: instance {}: interface {} has no {what} to send adverts from",
                    cfg.loc, cfg.name, cfg.interface
                ))
            })?;
        let mut vips = Vec::new();
        for vip in &cfg.vips {
            let (target, target_link) = vip_target(&cfg, &link, vip)?;
            let present = target_link.addrs.contains(&vip.addr);
            remove_leftover(world, &cfg, &target, present).await?;
            vips.push(target);
        }
        let socket_key = SocketKey {
            ifindex: link.index,
            family: cfg.family,
            unicast_src: (!cfg.unicast_peers.is_empty()).then_some(primary_ip),
        };
        let socket = world.socket(socket_key, &link.name, cfg.unicast_ttl)?;
        if cfg.unicast_peers.is_empty() {
            socket.join(cfg.mcast_dst_ip, link.index).map_err(|e| {
                DaemonError::Config(format!(
                    "{}: instance {}: joining {}: {e}",
                    cfg.loc, cfg.name, cfg.mcast_dst_ip
                ))
            })?;
        }
        let fsm = Instance::new(params(&cfg, primary_ip));
        let cfg_key = cfg
            .witness
            .as_ref()
            .and_then(|w| world.witnesses.key(&w.name, &cfg.name))
            .unwrap_or_default();
        info!(
            instance = %cfg.name, interface = %cfg.interface, vrid = cfg.vrid,
            priority = cfg.priority, version = cfg.version.number(), src = %primary_ip,
            mac = %mac_string(&link.mac), "instance ready"
        );
        let mac = match &cfg.vmac {
            Some(v) if v.xmit_base => base.mac,
            _ => link.mac,
        };
        Ok(Self {
            cfg,
            fsm,
            socket_key,
            primary_ip,
            mac,
            kernel_ifindex: base.index,
            vmac: vmac_link.map(|l| (l, base.name.clone())),
            stats: Stats::default(),
            advert: None,
            vips,
            vip_addrs,
            vips_held: false,
            last_transition: None,
            address_mismatch_log: RateLimit::default(),
            notifier: Notifier::default(),
            moved: Vec::new(),
            removed: false,
            kernel_fed_ns: 0,
            disagreement: None,
            conflict_garp: None,
            known_master: None,
            witness: WitnessView {
                key: cfg_key,
                ..WitnessView::default()
            },
        })
    }

    /// Resolves where the VIPs of `cfg` (a changed configuration of this instance) live:
    /// the first half of an in-place update, which may fail and changes nothing.
    pub fn resolve_vips(&self, cfg: &VrrpInstance) -> Result<Vec<VipTarget>, DaemonError> {
        let link = link_of(cfg)?;
        cfg.vips
            .iter()
            .map(|vip| match self.vips.iter().find(|t| t.vip == *vip) {
                Some(t) => Ok(t.clone()),
                None => vip_target(cfg, &link, vip).map(|(target, _)| target),
            })
            .collect()
    }

    /// Applies a changed configuration of the same instance in place (see `reload::plan`)
    /// with the VIP targets from [`Running::resolve_vips`]: no state change and no priority-0
    /// advert; only added and removed VIPs move, and a MASTER announces the added ones.
    pub async fn update(
        &mut self,
        cfg: VrrpInstance,
        vips: Vec<VipTarget>,
        changes: &[Change],
        now: Duration,
        world: &World,
    ) {
        info!(instance = %cfg.name, ?changes, "SIGHUP: updated in place");
        if cfg.promote_secondaries && !self.cfg.promote_secondaries {
            let iface = self.vmac.as_ref().map_or(&cfg.interface, |(l, _)| &l.name);
            if let Err(e) = promote_secondaries(iface) {
                error!(instance = %cfg.name, "{e}");
            }
        }
        let routes_changed = (&self.cfg.routes, &self.cfg.rules) != (&cfg.routes, &cfg.rules);
        if self.vips_held && routes_changed {
            self.follow_routes(world, false).await;
        }
        self.release_removed(&cfg.vips, world).await;
        let added: Vec<VipTarget> = vips
            .iter()
            .filter(|t| !self.vips.iter().any(|old| old.vip == t.vip))
            .cloned()
            .collect();
        for t in &added {
            if self.vips_held {
                if let Err(e) = world.add_vip(t.ifindex, &t.vip).await {
                    error!(instance = %cfg.name, "{e}");
                }
            } else {
                let present = world.vips.present(t.ifindex, t.vip.addr).await;
                if let Err(e) = remove_leftover(world, &cfg, t, present.unwrap_or(false)).await {
                    error!(instance = %cfg.name, "{e}");
                }
            }
        }
        self.vips = vips;
        self.vip_addrs = advertised(&cfg);
        self.fsm.reconfigure(now, params(&cfg, self.primary_ip));
        self.cfg = cfg;
        self.advert = None;
        // Judged again against the new configuration by the next advert.
        self.disagreement = None;
        if self.vips_held && !added.is_empty() {
            self.send_garps(world, &added, self.cfg.garp.repeat);
        }
        if self.vips_held && routes_changed {
            self.follow_routes(world, true).await;
        }
    }

    /// Removes the VIPs held that are not in `keep` (the first half of an in-place update).
    pub async fn release_removed(&mut self, keep: &[Vip], world: &World) {
        let (stay, gone): (Vec<VipTarget>, Vec<VipTarget>) = std::mem::take(&mut self.vips)
            .into_iter()
            .partition(|t| keep.contains(&t.vip));
        self.vips = stay;
        if self.vips_held {
            for t in gone {
                if let Err(e) = world.remove_vip(t.ifindex, &t.vip).await {
                    error!(instance = %self.cfg.name, "{e}");
                }
            }
        }
    }

    /// The state machine, as its sync group weighs it.
    pub fn fsm(&self) -> &Instance {
        &self.fsm
    }

    /// A BFD session saw `peer` fail at `at` (`bfd_takeover`): whether this backup, which
    /// follows `peer`, now takes over after Skew_Time.
    pub fn master_lost(&mut self, at: Duration, judged: Duration, peer: IpAddr) -> bool {
        self.fsm.master_lost(at, judged, peer)
    }

    /// The sync group's order or hold.
    pub async fn sync(&mut self, order: Option<Order>, hold: bool, now: Duration, world: &World) {
        self.fsm.set_group_hold(hold);
        match order {
            Some(Order::Master) => self.fsm.sync_master(now),
            Some(Order::Backup) => self.fsm.sync_backup(now),
            None => return,
        }
        self.execute(world).await;
    }

    pub async fn start(&mut self, now: Duration, world: &World) {
        self.fsm.start(now);
        self.execute(world).await;
    }

    /// A reload removed the instance: it stops, announced as keepalived does (FAULT, or
    /// DELETED with `notify_deleted`) rather than STOP.
    pub async fn remove(&mut self, now: Duration, world: &World) {
        self.removed = true;
        self.stop(now, world).await;
    }

    /// Stops the instance: a master resigns with priority 0 and releases its VIPs; its VMAC
    /// goes.
    pub async fn stop(&mut self, now: Duration, world: &World) {
        self.fsm.shutdown(now);
        self.execute(world).await;
        if let Some((link, base)) = self.vmac.take() {
            world.flush(None);
            if let Err(e) = vmac::remove(world.vips.handle(), &link, &base).await {
                warn!(instance = %self.cfg.name, "use_vmac: {e}");
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Duration> {
        self.fsm.poll_timeout()
    }

    pub async fn on_timeout(&mut self, now: Duration, stalled: Option<Duration>, world: &World) {
        if let Some(stalled) = stalled {
            self.fsm.stalled(now, stalled);
        }
        if self.fsm.poll_timeout().is_some_and(|t| t <= now) {
            self.fsm.handle_timeout(now);
            self.execute(world).await;
        }
    }

    fn interval(&self) -> Interval {
        match self.cfg.version {
            Version::V2 => Interval::Seconds((self.cfg.advert_int_cs / 100) as u8),
            Version::V3 => Interval::Centis(self.cfg.advert_int_cs),
        }
    }

    /// What the receive step checks adverts for this instance against.
    pub fn target(&self, index: usize) -> Target<'_> {
        Target {
            index,
            primary_ip: self.primary_ip,
            unicast: !self.cfg.unicast_peers.is_empty(),
            expect: Expect {
                version: self.cfg.version.number(),
                interval: self.interval(),
                auth_pass: self.cfg.auth_pass.as_ref(),
                addrs: &self.vip_addrs,
                skip_addr_check_from: self
                    .cfg
                    .skip_check_adv_addr
                    .then(|| self.fsm.master())
                    .flatten(),
                sources: self.checked_sources(),
                strict: self.cfg.strict,
            },
        }
    }

    pub async fn on_advert(
        &mut self,
        at: Duration,
        from: IpAddr,
        advert: &Advert,
        accepted: Accepted,
        world: &World,
    ) {
        self.stats.received += 1;
        match accepted {
            Accepted::Clean => self.agrees(from),
            Accepted::OwnerAddressMismatch => {
                self.log_address_mismatch(from, advert, "accepted from the address owner")
            }
            Accepted::Disagrees(d) => self.disagrees(from, advert, d),
        }
        let interval_cs = advert.interval.centis().min(u32::from(u16::MAX)) as u16;
        self.fsm.handle_advert(
            at,
            Received {
                from,
                priority: advert.priority,
                interval_cs,
            },
        );
        self.execute(world).await;
    }

    /// An advert from `from` that agrees with our configuration: a disagreement with it is over.
    fn agrees(&mut self, from: IpAddr) {
        if self.disagreement.as_ref().is_some_and(|d| d.from == from) {
            info!(instance = %self.cfg.name, %from, "the peer's adverts agree with our configuration again");
            self.disagreement = None;
        }
    }

    /// An authentic advert configured otherwise than this instance: followed (its sender is
    /// alive), counted per field, logged once per change with both sides.
    fn disagrees(&mut self, from: IpAddr, advert: &Advert, d: Disagreement) {
        for field in d.fields() {
            *self.stats.config_mismatch.entry(field).or_default() += 1;
        }
        let seen = PeerMismatch {
            from,
            fields: d.fields().map(str::to_owned).collect(),
            theirs: describe(&advert.addrs, advert.interval),
            ours: describe(&self.vip_addrs, self.interval()),
        };
        if self.disagreement.as_ref() != Some(&seen) {
            warn!(
                instance = %self.cfg.name, %from, fields = ?seen.fields, theirs = %seen.theirs,
                ours = %seen.ours,
                "the peer's adverts disagree with our configuration; following them (its adverts \
                 prove it alive; vrrp_strict would drop them): update both nodes alike"
            );
            self.disagreement = Some(seen);
        }
    }

    /// `check_unicast_src`: the unicast peers, the only senders accepted.
    fn checked_sources(&self) -> Option<&[IpAddr]> {
        (self.cfg.check_unicast_src && !self.cfg.unicast_peers.is_empty())
            .then_some(self.cfg.unicast_peers.as_slice())
    }

    /// `SOURCES` entries: the senders the kernel accepts for this VRID, if it checks them.
    pub fn kernel_sources(&self) -> impl Iterator<Item = SourceKey> + '_ {
        let key = self.kernel_key();
        self.checked_sources()
            .unwrap_or_default()
            .iter()
            .map(move |addr| SourceKey {
                ifindex: key.ifindex,
                vrid: key.vrid,
                addr: kernel_addr(addr),
            })
    }

    /// The VRID as the XDP maps know it (each family in its own VRID space).
    pub fn kernel_key(&self) -> VridKey {
        let space = match self.cfg.family {
            Family::V4 => 0,
            Family::V6 => VRID_IPV6,
        };
        VridKey {
            ifindex: self.kernel_ifindex,
            vrid: u32::from(self.cfg.vrid) | space,
        }
    }

    /// What the kernel checks this instance's adverts against; a backup's valid adverts are
    /// absorbed there.
    pub fn kernel_config(&self) -> VridConfig {
        VridConfig {
            version: self.cfg.version.number(),
            auth_type: if self.cfg.auth_pass.is_some() {
                AUTH_PASS
            } else {
                AUTH_NONE
            },
            interval_s: match self.cfg.version {
                Version::V2 => u8::try_from(self.cfg.advert_int_cs / 100).unwrap_or(u8::MAX),
                Version::V3 => 0,
            },
            // A promoting backup claims the VRID as a master would: its adverts come by socket.
            absorb: u8::from(self.fsm.state() == State::Backup && !self.fsm.promoting()),
            own: kernel_addr(&self.primary_ip),
            auth: self.cfg.auth_pass.unwrap_or_default(),
            addr_count: u8::try_from(self.vip_addrs.len()).unwrap_or(u8::MAX),
            addr_digest: addr_digest(self.vip_addrs.iter().map(kernel_addr)),
            check_src: u8::from(self.checked_sources().is_some()),
            strict: u8::from(self.cfg.strict),
            unicast: u8::from(!self.cfg.unicast_peers.is_empty()),
            // The kernel's record keeper (daemon/xdp.rs) gives it its slot.
            ..Default::default()
        }
    }

    /// This instance's `VIPS` entries (IPv4: the XDP program watches ARP).
    pub fn kernel_vips(&self) -> impl Iterator<Item = (VipKey, VipEntry)> + '_ {
        self.vips.iter().filter(|t| t.vip.addr.is_ipv4()).map(|t| {
            (
                VipKey {
                    // ARP for a VIP on the VMAC arrives on the interface under it.
                    ifindex: if self
                        .vmac
                        .as_ref()
                        .is_some_and(|(l, _)| l.index == t.ifindex)
                    {
                        self.kernel_ifindex
                    } else {
                        t.ifindex
                    },
                    addr: match t.vip.addr {
                        IpAddr::V4(a) => a.octets(),
                        IpAddr::V6(_) => [0; 4],
                    },
                },
                VipEntry {
                    vrid: u32::from(self.cfg.vrid),
                    held: u8::from(self.vips_held),
                    own_mac: t.mac,
                    ..Default::default()
                },
            )
        })
    }

    /// The VIPs whose traffic the XDP program drops: those held without Accept_Mode.
    pub fn kernel_not_accepted(&self) -> impl Iterator<Item = NotAcceptedKey> + '_ {
        self.vips
            .iter()
            .filter(|_| self.vips_held && !self.cfg.accept)
            .map(|t| match t.vip.addr {
                IpAddr::V4(a) => NotAcceptedKey {
                    family: 4,
                    addr: addr16(&a.octets()),
                },
                IpAddr::V6(a) => NotAcceptedKey {
                    family: 6,
                    addr: a.octets(),
                },
            })
    }

    /// The IPv4 VIPs this instance holds, for the ARP watch of the socket path.
    pub fn held_vips(&self) -> impl Iterator<Item = HeldVip> + '_ {
        self.vips
            .iter()
            .filter(|_| self.vips_held)
            .filter_map(|t| match t.vip.addr {
                IpAddr::V4(addr) => Some(HeldVip {
                    ifindex: t.ifindex,
                    addr,
                    own_mac: t.mac,
                }),
                IpAddr::V6(_) => None,
            })
    }

    /// The master's last advert as the kernel recorded it (absorbed, not read from the
    /// socket), at the kernel's receive time; one already handed over is ignored.
    pub async fn on_kernel_advert(&mut self, peer: &Peer, world: &World) {
        if peer.last_seen_ns <= self.kernel_fed_ns {
            return;
        }
        self.kernel_fed_ns = peer.last_seen_ns;
        self.stats.received += 1;
        // The kernel absorbs only adverts that agree with our configuration.
        let from = crate::xdp::peer_address(self.kernel_key(), &peer.master);
        self.agrees(from);
        self.fsm.handle_advert(
            Duration::from_nanos(peer.last_seen_ns),
            Received {
                from,
                priority: peer.priority,
                interval_cs: peer.interval_cs,
            },
        );
        self.execute(world).await;
    }

    /// Another MAC claimed `vip` by ARP while we hold it: split brain. Logged and counted;
    /// gratuitous ARP (at most once a second) takes the neighbours back.
    pub fn on_arp_conflict(&mut self, vip: IpAddr, mac: [u8; 6], world: &World) {
        if !self.vips_held {
            return;
        }
        self.stats.arp_conflicts += 1;
        let now = Instant::now();
        let answer = self
            .conflict_garp
            .is_none_or(|t| now >= t + Duration::from_secs(1));
        warn!(
            instance = %self.cfg.name, %vip, other_mac = %mac_string(&mac),
            answered = answer, "split brain: another MAC claims a VIP we hold"
        );
        if answer {
            self.conflict_garp = Some(now);
            let targets: Vec<(u32, [u8; 6], IpAddr)> = self
                .vips
                .iter()
                .filter(|t| t.vip.addr == vip)
                .map(|t| (t.ifindex, t.mac, t.vip.addr))
                .collect();
            world.garp.burst(&targets);
        }
    }

    /// The master's advert interval (VRRPv3 backups learn it from its adverts).
    pub fn master_adver_interval(&self) -> Duration {
        self.fsm.master_adver_interval()
    }

    pub fn on_drop(&mut self, reason: DropReason, from: Option<IpAddr>) {
        self.stats.drop(reason);
        if reason == DropReason::AddressList
            && let Some(suppressed) = self.address_mismatch_log.allow()
        {
            warn!(
                instance = %self.cfg.name, from = ?from, suppressed,
                "advert dropped: its address list differs from ours ({} addresses); \
                 check that both nodes have the same virtual_ipaddress",
                self.vip_addrs.len()
            );
        }
    }

    fn log_address_mismatch(&mut self, from: IpAddr, advert: &Advert, what: &str) {
        if let Some(suppressed) = self.address_mismatch_log.allow() {
            warn!(
                instance = %self.cfg.name, %from, suppressed, theirs = ?advert.addrs,
                ours = ?self.vip_addrs, "advert whose address list differs from ours {what}"
            );
        }
    }

    /// Carries out every queued action, in order.
    pub async fn execute(&mut self, world: &World) {
        self.execute_actions(world).await;
        if let Some(master) = self.fsm.master().filter(|m| *m != self.primary_ip) {
            self.known_master = Some(master);
        }
        self.stand(world);
    }

    /// Election mode: tells the witness this node's candidacy when it changes: its
    /// priority (trackers included), or none while it cannot serve (FAULT, stopped).
    fn stand(&mut self, world: &World) {
        let Some(w) = self.cfg.witness.as_ref().filter(|w| w.election) else {
            return;
        };
        let serving = matches!(self.fsm.state(), State::Backup | State::Master);
        let candidacy = (
            serving.then(|| self.fsm.priority()),
            self.fsm.params().preempt,
        );
        if self.witness.candidacy != Some(candidacy) {
            self.witness.candidacy = Some(candidacy);
            let (priority, preempt) = candidacy;
            world
                .witnesses
                .stand(&w.name, &self.cfg.name, self.primary_ip, priority, preempt);
        }
    }

    async fn execute_actions(&mut self, world: &World) {
        while let Some(action) = self.fsm.poll_action() {
            if !matches!(action, Action::SendAdvert { .. }) {
                // Adverts go before whatever follows them (VIPs, ARP, scripts), on the
                // sockets (a steady master's adverts leave from the loop's flush).
                world.flush(None);
            }
            match action {
                Action::SendAdvert { priority } => self.send_advert(priority, world),
                Action::AddVips => {
                    for t in &self.vips {
                        if let Err(e) = world.add_vip(t.ifindex, &t.vip).await {
                            error!(instance = %self.cfg.name, "{e}");
                        }
                    }
                    self.follow_routes(world, true).await;
                    self.vips_held = true;
                    world.kernel_dirty.set(true);
                }
                Action::RemoveVips => {
                    self.follow_routes(world, false).await;
                    for t in &self.vips {
                        if let Err(e) = world.remove_vip(t.ifindex, &t.vip).await {
                            error!(instance = %self.cfg.name, "{e}");
                        }
                    }
                    self.vips_held = false;
                    world.kernel_dirty.set(true);
                    // The key goes only once the VIPs and the database are released.
                    if let Some(w) = &self.cfg.witness {
                        world.witnesses.release(&w.name, &self.cfg.name);
                        self.witness.holder = false;
                    }
                }
                Action::SendGarp => self.send_garps(world, &self.vips, self.cfg.garp.repeat),
                Action::MasterRxLowerPri => {
                    let priority = self.fsm.priority();
                    let name = &self.cfg.name;
                    world
                        .fifos
                        .write_event(false, name, "MASTER_RX_LOWER_PRI", priority);
                    if self.cfg.notify.master_rx_lower_pri.is_some() {
                        self.notifier.send(Event {
                            group: false,
                            what: Notice::MasterRxLowerPri,
                            name: name.clone(),
                            state: State::Master,
                            priority,
                            scripts: self.cfg.notify.clone(),
                            script_user: world.script_user.clone(),
                            timeout: world.notify_timeout,
                        });
                    }
                }
                Action::SendGarpExtra => {
                    // The VIPs away from the interface the adverts keep in the switches' tables.
                    let home = self.socket_key.ifindex;
                    let away: Vec<VipTarget> = self
                        .vips
                        .iter()
                        .filter(|t| t.ifindex != home)
                        .cloned()
                        .collect();
                    self.send_garps(world, &away, 1);
                }
                Action::SendGarpLowerPrio => {
                    self.send_garps(world, &self.vips, lower_prio_repeat(&self.cfg))
                }
                Action::Promote { id, failover } => {
                    world.kernel_dirty.set(true);
                    match &self.cfg.witness {
                        // Elected: the leadership is the key.
                        Some(w) if w.election => {
                            self.witness.holder = true;
                            self.db_request(world, Op::Promote { id, failover });
                        }
                        // The key first; the database once it is held.
                        Some(w) => {
                            self.witness.failover = failover;
                            let wait = world.witnesses.ttl(&w.name) + KEY_WAIT_SLACK;
                            if !world.witnesses.acquire(
                                &w.name,
                                &self.cfg.name,
                                id,
                                self.primary_ip,
                                wait,
                            ) {
                                error!(instance = %self.cfg.name, witness = %w.name, "the witness's session is gone: the promotion cannot proceed");
                            }
                        }
                        None => self.db_request(world, Op::Promote { id, failover }),
                    }
                }
                Action::Demote { id } if self.gate().is_none() => self.fsm.demoted(id),
                Action::Demote { id } => self.db_request(world, Op::Demote { id }),
                Action::Transition { from, to, reason } => {
                    if self.cfg.sync_group.is_some() {
                        self.moved.push(Moved { from, to, reason });
                    }
                    world.kernel_dirty.set(true);
                    world.roles_changed.set(true);
                    let peer = match reason {
                        Reason::HigherPriority { from, .. } => Some(from),
                        Reason::Preempt { master, .. } => Some(master),
                        Reason::MasterDown | Reason::MasterResigned => self.known_master,
                        _ => None,
                    };
                    let peer = peer.map_or_else(|| "-".to_owned(), |p| p.to_string());
                    *self
                        .stats
                        .transitions
                        .entry((to, reason.kind()))
                        .or_default() += 1;
                    info!(
                        instance = %self.cfg.name, vrid = self.cfg.vrid, %from, %to,
                        reason = %reason, %peer, "{}: {from} -> {to} ({reason})", self.cfg.name
                    );
                    self.last_transition = Some(Transition {
                        from: from.to_string(),
                        to: to.to_string(),
                        reason: reason.to_string(),
                        unix_time: unix_now(),
                    });
                    // keepalived announces a removed instance as FAULT, or DELETED.
                    let (what, state) = match to {
                        State::Initialize if self.removed && self.cfg.notify.announce_deleted => {
                            (Notice::Deleted, to)
                        }
                        State::Initialize if self.removed => (Notice::Transition, State::Fault),
                        _ => (Notice::Transition, to),
                    };
                    let priority = self.fsm.priority();
                    match what {
                        Notice::Deleted => {
                            world
                                .fifos
                                .write_event(false, &self.cfg.name, "DELETED", priority)
                        }
                        _ => world.fifos.write(false, &self.cfg.name, state, priority),
                    }
                    if self.cfg.notify != Default::default() {
                        self.notifier.send(Event {
                            group: false,
                            what,
                            name: self.cfg.name.clone(),
                            state,
                            priority: self.fsm.priority(),
                            scripts: self.cfg.notify.clone(),
                            script_user: world.script_user.clone(),
                            timeout: world.notify_timeout,
                        });
                    }
                }
            }
        }
    }

    /// Adds (`up`) or removes the instance's `virtual_routes` and `virtual_rules`: routes
    /// after the VIPs they may name as source, rules after the routes; removal the other way.
    async fn follow_routes(&self, world: &World, up: bool) {
        let handle = world.vips.handle();
        let dev_index = |dev: &Option<String>| -> Result<Option<u32>, String> {
            dev.as_deref()
                .map(|d| Link::lookup(d).map(|l| l.index).map_err(|e| e.to_string()))
                .transpose()
        };
        let mut errors = Vec::new();
        if !up {
            for rule in &self.cfg.rules {
                errors.extend(routes::remove_rule(handle, rule).await.err());
            }
        }
        for route in &self.cfg.routes {
            let result = match dev_index(&route.dev) {
                Ok(index) => routes::route(handle, route, index, up).await,
                Err(e) => Err(e),
            };
            errors.extend(result.err().map(|e| format!("{}: {e}", route.loc)));
        }
        if up {
            for rule in &self.cfg.rules {
                errors.extend(routes::add_rule(handle, rule).await.err());
            }
        }
        for e in errors {
            error!(instance = %self.cfg.name, "{e}");
        }
    }

    /// The database this instance's takeover waits for (`track_replication`, first entry).
    pub fn gate(&self) -> Option<&str> {
        self.cfg.track_replication.first().map(|t| t.name.as_str())
    }

    fn db_request(&self, world: &World, op: Op) {
        if let Some(db) = self.gate() {
            world.dbs.request(db, &self.cfg.name, op);
        }
    }

    /// The witness's answer for this instance: the key taken (the promotion goes on to the
    /// database, if any), refused (it stays BACKUP), or the lease lost (a MASTER steps down).
    pub async fn on_witness_done(&mut self, outcome: WitnessOutcome, now: Duration, world: &World) {
        world.kernel_dirty.set(true);
        let current = self.fsm.promotion_id();
        match outcome {
            WitnessOutcome::Acquired { id, result: Ok(()) } if current == Some(id) => {
                self.witness.holder = true;
                self.witness.refused = None;
                self.fsm.key_held(now, id);
                match self.gate() {
                    Some(_) => {
                        let failover = self.witness.failover;
                        self.db_request(world, Op::Promote { id, failover });
                    }
                    None => self.fsm.promotion_done(now, id, true),
                }
            }
            WitnessOutcome::Acquired { result: Ok(()), .. } => {
                // Taken for a promotion given up meanwhile (a later one shares the key).
                if current.is_none()
                    && !self.is_master()
                    && let Some(w) = &self.cfg.witness
                {
                    world.witnesses.release(&w.name, &self.cfg.name);
                }
            }
            WitnessOutcome::Acquired {
                id,
                result: Err(why),
            } => {
                if current == Some(id) {
                    if self.witness.refused.as_ref() != Some(&why) {
                        warn!(instance = %self.cfg.name, %why, "not taking over: the witness refused the leader key");
                    }
                    self.witness.refused = Some(why);
                    self.fsm.promotion_done(now, id, false);
                }
            }
            WitnessOutcome::Lost { why } => {
                self.witness.holder = false;
                self.witness.refused = Some(why);
                self.fsm.witness_lost(now);
            }
            WitnessOutcome::Elected { failover } => {
                self.witness.refused = None;
                if self.fsm.elected(now, failover) {
                    self.witness.holder = true;
                } else if let Some(w) = &self.cfg.witness {
                    info!(instance = %self.cfg.name, state = %self.fsm.state(), "elected but cannot serve: resigning");
                    world.witnesses.release(&w.name, &self.cfg.name);
                }
            }
            WitnessOutcome::Outranked { why } => {
                info!(instance = %self.cfg.name, %why, "yielding to a better candidate");
                self.fsm.outranked(now);
            }
        }
        self.execute(world).await;
    }

    /// A database worker's answer for this instance.
    pub async fn on_db_done(&mut self, outcome: Outcome, now: Duration, world: &World) {
        // A promotion that ends (either way) changes what the kernel absorbs.
        world.kernel_dirty.set(true);
        match outcome {
            Outcome::Promoted { id, result } => {
                // A node whose database cannot take over does not keep the peer from it
                // (unless a later promotion holds the key now).
                let current = self.fsm.promotion_id();
                let later = current.is_some_and(|c| c != id) || self.is_master();
                if result.is_err()
                    && !later
                    && let Some(w) = &self.cfg.witness
                {
                    world.witnesses.release(&w.name, &self.cfg.name);
                    self.witness.holder = false;
                }
                self.fsm.promotion_done(now, id, result.is_ok())
            }
            Outcome::Demoted { id, .. } => self.fsm.demoted(id),
            Outcome::HandedOver { result, reply } => {
                let result = match result {
                    Ok(what) if self.fsm.resign(now) => Ok(what),
                    Ok(_) => Err(format!("{} is no longer MASTER", self.cfg.name)),
                    Err(why) => Err(why),
                };
                let _ = reply.send(result);
            }
        }
        self.execute(world).await;
    }

    pub fn state(&self) -> State {
        self.fsm.state()
    }

    pub fn is_master(&self) -> bool {
        self.fsm.state() == State::Master
    }

    /// The demotion whose answer releases the VIPs still held, if any.
    pub fn pending_demotion(&self) -> Option<u64> {
        self.fsm.pending_demotion()
    }

    /// Releases the VIPs without waiting any longer for the database (the agent is exiting).
    pub async fn give_up_demotion(&mut self, world: &World) {
        if let Some(id) = self.fsm.pending_demotion() {
            warn!(instance = %self.cfg.name, "the database did not confirm read-only in time; releasing the VIPs");
            self.fsm.demoted(id);
            self.execute(world).await;
        }
    }

    fn send_advert(&mut self, priority: u8, world: &World) {
        if self.advert.as_ref().is_none_or(|(p, _)| *p != priority) {
            let frames = world
                .sockets
                .get(&self.socket_key)
                .is_some_and(|s| s.sends_frames());
            self.advert = Some((priority, self.build_advert(priority, frames)));
        }
        for (dst, msg) in self.advert.iter().flat_map(|(_, msgs)| msgs) {
            world.send(self.socket_key, msg.clone(), *dst);
            self.stats.sent += 1;
        }
    }

    /// The advert at `priority`, for each destination (the group, or each unicast peer); as
    /// a whole Ethernet frame when the socket sends `frames`.
    fn build_advert(&self, priority: u8, frames: bool) -> Vec<(IpAddr, bytes::Bytes)> {
        let advert = Advert {
            vrid: self.cfg.vrid,
            priority,
            interval: self.interval(),
            auth: match self.cfg.version {
                Version::V2 => Some(self.cfg.auth_pass.map_or((0, [0; 8]), |p| (1, p))),
                Version::V3 => None,
            },
            addrs: self.vip_addrs.clone(),
        };
        let peers: &[IpAddr] = if self.cfg.unicast_peers.is_empty() {
            std::slice::from_ref(&self.cfg.mcast_dst_ip)
        } else {
            &self.cfg.unicast_peers
        };
        peers
            .iter()
            .map(|&dst| {
                let mut msg = Vec::with_capacity(64);
                advert.emit(&mut msg, ChecksumForm::PseudoHeader, self.primary_ip, dst);
                if frames {
                    msg = multicast_frame(&self.mac, self.primary_ip, dst, &msg);
                }
                (dst, bytes::Bytes::from(msg))
            })
            .collect()
    }

    /// Gratuitous ARPs (IPv6: unsolicited Neighbor Advertisements) for `vips` as the
    /// instance's GARP settings say.
    fn send_garps(&self, world: &World, vips: &[VipTarget], repeat: u32) {
        let targets: Vec<(u32, [u8; 6], IpAddr)> = vips
            .iter()
            .map(|t| (t.ifindex, t.mac, t.vip.addr))
            .collect();
        // Paced per interface (vrrp_garp_interval, garp_group) by the sender.
        for _ in 0..repeat {
            world.garp.burst(&targets);
        }
    }

    /// Waits, up to `limit`, for the notify scripts queued so far.
    pub async fn finish_notify(self, limit: Duration) {
        self.notifier.finish(limit).await;
    }

    /// Applies the trackers' sum: a priority delta, and FAULT while a weight-0 check is down.
    pub async fn set_tracking(
        &mut self,
        (delta, fault): (i32, bool),
        now: Duration,
        world: &World,
    ) {
        // FAULT first: an instance leaving MASTER for it sends priority 0, nothing else.
        let before = self.fsm.priority();
        self.fsm.set_fault(now, fault);
        self.fsm.set_priority_delta(now, delta);
        self.execute(world).await;
        let after = self.fsm.priority();
        if self.cfg.notify_priority_changes && after != before {
            let word = match self.fsm.state() {
                State::Master => "MASTER_PRIORITY",
                _ => "BACKUP_PRIORITY",
            };
            world.fifos.write_event(false, &self.cfg.name, word, after);
        }
    }

    pub fn status(&self, trackers: Vec<TrackerStatus>) -> InstanceStatus {
        InstanceStatus {
            name: self.cfg.name.clone(),
            interface: self.cfg.interface.clone(),
            vrid: self.cfg.vrid,
            version: self.cfg.version.number(),
            state: self.fsm.state().to_string(),
            promoting: self.fsm.promoting(),
            priority: self.fsm.priority(),
            configured_priority: self.cfg.priority,
            sync_group: self.cfg.sync_group.clone(),
            master: self.fsm.master().map(|ip| ip.to_string()),
            primary_ip: self.primary_ip.to_string(),
            vips: self
                .cfg
                .vips
                .iter()
                .map(|v| format!("{}/{}", v.addr, v.prefix))
                .collect(),
            vips_held: self.vips_held,
            advert_interval_ms: f64::from(self.cfg.advert_int_cs) * 10.0,
            master_down_interval_ms: self.fsm.master_down_interval().as_secs_f64() * 1000.0,
            adverts_sent: self.stats.sent,
            adverts_received: self.stats.received,
            adverts_dropped: self
                .stats
                .dropped
                .iter()
                .map(|(r, n)| (r.as_str().to_owned(), *n))
                .collect(),
            arp_conflicts: self.stats.arp_conflicts,
            peer_config_mismatch: self.disagreement.clone(),
            config_mismatch_adverts: self
                .stats
                .config_mismatch
                .iter()
                .map(|(field, n)| ((*field).to_owned(), *n))
                .collect(),
            last_transition: self.last_transition.clone(),
            trackers,
            notify_runs: self.notifier.runs(),
            notify_counts: self.notifier.counts(),
            transitions: self
                .stats
                .transitions
                .iter()
                .map(|((to, reason), count)| TransitionCount {
                    to: to.to_string(),
                    reason: (*reason).to_owned(),
                    count: *count,
                })
                .collect(),
            witness: self.cfg.witness.as_ref().map(|w| InstanceWitness {
                name: w.name.clone(),
                election: w.election,
                key: self.witness.key.clone(),
                holder: self.witness.holder,
                refused: self.witness.refused.clone(),
            }),
        }
    }
}

/// An address as the XDP maps hold it.
fn kernel_addr(addr: &IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(a) => addr16(&a.octets()),
        IpAddr::V6(a) => a.octets(),
    }
}

/// Removes `target`'s VIP if a killed earlier run (or a hand) left it on the interface, unless
/// another of our instances holds it.
async fn remove_leftover(
    world: &World,
    cfg: &VrrpInstance,
    target: &VipTarget,
    present: bool,
) -> Result<(), DaemonError> {
    if present && !world.holds(target.ifindex, target.vip.addr) {
        info!(instance = %cfg.name, vip = %target.vip.addr, "removing a VIP left behind by an earlier run");
        world.vips.remove(target.ifindex, &target.vip).await?;
    }
    Ok(())
}
