//! `vrrp_instance NAME { ... }`: one virtual router, its VIPs, trackers and notify scripts.

use std::{net::IpAddr, time::Duration};

use super::{
    build::Builder,
    diag::Loc,
    global::{GarpParams, GlobalDefs},
    lexer::Token,
    replication::TrackReplication,
    routes::{VirtualRoute, VirtualRule},
    script::Script,
    track_file::TrackFileRef,
    tree::Node,
    witness::WitnessRef,
};
use crate::vrrp::{Family, Version};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitialState {
    Master,
    Backup,
}

/// A virtual IP: `ADDR[/PREFIX] [dev IF] [label L]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vip {
    pub addr: IpAddr,
    pub prefix: u8,
    pub dev: Option<String>,
    pub label: Option<String>,
    /// From `virtual_ipaddress_excluded`: held like the others, but not in the adverts.
    pub excluded: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackScript {
    pub name: String,
    /// Overrides the script's own weight.
    pub weight: Option<i32>,
    pub reverse: bool,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackInterface {
    pub name: String,
    pub weight: i32,
    pub reverse: bool,
    pub loc: Loc,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotifyScripts {
    pub master: Option<Script>,
    pub backup: Option<Script>,
    pub fault: Option<Script>,
    pub stop: Option<Script>,
    pub generic: Option<Script>,
    /// `notify_master_rx_lower_pri`: run when a MASTER hears a lower priority (another node
    /// became master while it could not hear this one), e.g. to take back a cloud address.
    pub master_rx_lower_pri: Option<Script>,
    /// `notify_deleted [SCRIPT]`: an instance a reload removes is announced DELETED (and this
    /// script runs) instead of keepalived's default FAULT.
    pub deleted: Option<Script>,
    pub announce_deleted: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VrrpInstance {
    pub name: String,
    pub loc: Loc,
    pub initial: InitialState,
    pub interface: String,
    pub vrid: u8,
    pub priority: u8,
    /// Advertisement interval in centiseconds (v2: a whole number of seconds).
    pub advert_int_cs: u16,
    pub version: Version,
    /// IPv4 or IPv6, as the first VIP (or unicast peer) says: the adverts' family and the
    /// VIPs'. IPv6 speaks VRRPv3 only.
    pub family: Family,
    /// VRRPv2 PASS authentication data, zero padded to 8 bytes.
    pub auth_pass: Option<[u8; 8]>,
    pub vips: Vec<Vip>,
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// ha-agent extension `fast_preempt`: preempt a lower-priority master after Skew_Time.
    pub fast_preempt: bool,
    /// ha-agent extension `bfd_takeover`: a backup whose `track_bfd` session to its master's
    /// address goes Down takes over after Skew_Time.
    pub bfd_takeover: bool,
    /// `check_unicast_src` (or global `vrrp_check_unicast_src`): with unicast peers, adverts
    /// from any other source are dropped.
    pub check_unicast_src: bool,
    /// `strict_mode` (or global `vrrp_strict`): adverts configured otherwise (address list,
    /// VRRPv2 interval) are dropped as the RFC says, instead of proving their sender alive.
    pub strict: bool,
    /// RFC 5798's Accept_Mode (`accept` / `no_accept`): whether a master that is not the
    /// address owner takes traffic addressed to its VIPs. keepalived's default: on, but off
    /// under strict mode; always on for the owner (priority 255). Off, the XDP program drops
    /// such traffic (but Neighbor Discovery) while the VIPs are held.
    pub accept: bool,
    /// `skip_check_adv_addr` (or global `vrrp_skip_check_adv_addr`): adverts from the master
    /// already followed skip the address-list check.
    pub skip_check_adv_addr: bool,
    /// Master_Down_Interval in advert intervals (`down_timer_adverts`; 3 by the RFC).
    pub down_timer_adverts: u8,
    /// `lower_prio_no_advert`: a MASTER does not answer a lower priority (default: only
    /// under strict mode).
    pub lower_prio_no_advert: bool,
    /// `higher_prio_send_advert`: a MASTER yielding sends one more advert first.
    pub higher_prio_send_advert: bool,
    /// `notify_priority_changes`: the notify FIFOs are told of priority changes.
    pub notify_priority_changes: bool,
    /// Whether the instance says so itself (else its sync group's setting applies).
    pub notify_priority_changes_own: bool,
    /// `promote_secondaries`: removing one address of a subnet keeps the others (the
    /// interface's `promote_secondaries` sysctl, set at start).
    pub promote_secondaries: bool,
    pub unicast_src_ip: Option<IpAddr>,
    /// `mcast_src_ip`: the source of multicast adverts, instead of the interface's first
    /// address (IPv6: its link-local address).
    pub mcast_src_ip: Option<IpAddr>,
    /// `mcast_dst_ip` (or global `vrrp_mcast_group4`/`6`): where multicast adverts go.
    pub mcast_dst_ip: IpAddr,
    pub unicast_peers: Vec<IpAddr>,
    /// `unicast_fault_no_peer`: without peers the instance is in FAULT, not multicast.
    pub unicast_fault_no_peer: bool,
    /// `unicast_ttl`: the TTL of unicast adverts (255 by default).
    pub unicast_ttl: u8,
    pub garp: GarpParams,
    pub track_scripts: Vec<TrackScript>,
    pub track_interfaces: Vec<TrackInterface>,
    pub track_files: Vec<TrackFileRef>,
    /// `track_process { NAME [weight N] [reverse] }`.
    pub track_processes: Vec<TrackFileRef>,
    /// `track_bfd { NAME [weight N] [reverse] }`.
    pub track_bfds: Vec<TrackFileRef>,
    /// Databases whose promotion gates this instance's takeover.
    pub track_replication: Vec<TrackReplication>,
    /// The etcd witness whose leader key this instance must hold to be MASTER.
    pub witness: Option<WitnessRef>,
    pub notify: NotifyScripts,
    /// The `vrrp_sync_group` this instance is a member of.
    pub sync_group: Option<String>,
    /// `use_vmac [NAME]`: the virtual router's MAC on a macvlan of the interface.
    pub vmac: Option<Vmac>,
    /// Routes and policy rules that follow the VIPs.
    pub routes: Vec<VirtualRoute>,
    pub rules: Vec<VirtualRule>,
}

/// keepalived's VMAC: a macvlan (private mode) named `name` on the instance's interface, with
/// the MAC 00:00:5e:00:01:VRID; the VIPs live on it, and the adverts leave from its MAC
/// unless `vmac_xmit_base`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vmac {
    pub name: String,
    pub xmit_base: bool,
}

impl Builder<'_> {
    pub(super) fn instance(&mut self, block: &Node, g: &GlobalDefs) -> Option<VrrpInstance> {
        let Some(name) = block.args.first() else {
            self.diags
                .error(block.loc(), "`vrrp_instance` needs a name");
            return None;
        };
        let mut interface = None;
        let mut vrid = None;
        let mut initial = None;
        let mut advert_int = Duration::from_secs(1);
        let mut advert_loc = block.loc().clone();
        let mut version = None;
        let mut auth = None;
        let mut dont_track_primary = false;
        let mut use_vmac: Option<Option<String>> = None;
        let mut vmac_xmit_base = false;
        let mut lower_prio_no_advert = g.lower_prio_no_advert;
        let mut accept: Option<(bool, Loc)> = None;
        let mut higher_prio_send_advert = g.higher_prio_send_advert;
        let mut mcast_dst_ip = None;
        // The first address that says which family the instance is, and where it was.
        let mut family: Option<(Family, Loc)> = None;
        let mut inst = VrrpInstance {
            name: name.text.clone(),
            loc: block.loc().clone(),
            initial: InitialState::Backup,
            interface: String::new(),
            vrid: 0,
            priority: 100,
            advert_int_cs: 100,
            version: g.vrrp_version,
            family: Family::V4,
            auth_pass: None,
            vips: Vec::new(),
            preempt: true,
            preempt_delay: Duration::ZERO,
            fast_preempt: false,
            bfd_takeover: false,
            check_unicast_src: g.check_unicast_src,
            strict: g.strict,
            accept: true,
            skip_check_adv_addr: g.skip_check_adv_addr,
            down_timer_adverts: g.down_timer_adverts,
            lower_prio_no_advert: false,
            higher_prio_send_advert: false,
            notify_priority_changes: g.notify_priority_changes,
            notify_priority_changes_own: false,
            promote_secondaries: false,
            unicast_src_ip: None,
            mcast_src_ip: None,
            mcast_dst_ip: g.mcast_group4,
            unicast_peers: Vec::new(),
            unicast_fault_no_peer: false,
            unicast_ttl: 255,
            garp: g.garp,
            track_scripts: Vec::new(),
            track_interfaces: Vec::new(),
            track_files: Vec::new(),
            track_processes: Vec::new(),
            track_bfds: Vec::new(),
            track_replication: Vec::new(),
            witness: None,
            notify: NotifyScripts::default(),
            sync_group: None,
            vmac: None,
            routes: Vec::new(),
            rules: Vec::new(),
        };
        for node in block.children() {
            if self.garp_keyword(node, &mut inst.garp, "") {
                continue;
            }
            match node.name() {
                "state" => {
                    initial = self.arg(node).map(|t| match t.text.as_str() {
                        "MASTER" => (InitialState::Master, node.loc().clone()),
                        "BACKUP" => (InitialState::Backup, node.loc().clone()),
                        other => {
                            self.diags.warn(
                                &t.loc,
                                format!("unknown state `{other}` (MASTER or BACKUP); using BACKUP"),
                            );
                            (InitialState::Backup, node.loc().clone())
                        }
                    })
                }
                "interface" => interface = self.arg(node).map(|t| t.text.clone()),
                "virtual_router_id" => vrid = self.int(node, 1, 255).map(|v| v as u8),
                "priority" => {
                    if let Some(p) = self.int(node, 1, 255) {
                        inst.priority = p as u8;
                    }
                }
                "advert_int" => {
                    if let Some(d) = self.seconds(node, 0.01, 255.0) {
                        advert_int = d;
                        advert_loc = node.loc().clone();
                    }
                }
                "version" => version = self.version(node).map(|v| (v, node.loc().clone())),
                "authentication" => auth = self.authentication(node),
                "virtual_ipaddress" | "virtual_ipaddress_excluded" => {
                    let excluded = node.name() == "virtual_ipaddress_excluded";
                    for child in node.children() {
                        let Some(vip) = self.vip(child) else { continue };
                        // Excluded VIPs are not advertised: they may be of either family.
                        if excluded || self.same_family(&mut family, vip.addr, child.loc(), "VIP") {
                            inst.vips.push(Vip { excluded, ..vip });
                        }
                    }
                }
                "nopreempt" => {
                    self.flag(node);
                    inst.preempt = false;
                }
                "preempt" => self.flag(node),
                "accept" | "no_accept" => {
                    self.flag(node);
                    accept = Some((node.name() == "accept", node.loc().clone()));
                }
                "fast_preempt" => {
                    self.flag(node);
                    inst.fast_preempt = true;
                }
                "bfd_takeover" => {
                    self.flag(node);
                    inst.bfd_takeover = true;
                }
                "strict_mode" => inst.strict = self.bool_flag(node),
                "down_timer_adverts" => {
                    if let Some(n) = self.int(node, 1, 100) {
                        inst.down_timer_adverts = n as u8;
                    }
                }
                "promote_secondaries" => {
                    self.flag(node);
                    inst.promote_secondaries = true;
                }
                "notify_priority_changes" => {
                    inst.notify_priority_changes = self.bool_flag(node);
                    inst.notify_priority_changes_own = true;
                }
                "lower_prio_no_advert" => lower_prio_no_advert = Some(self.bool_flag(node)),
                "higher_prio_send_advert" => higher_prio_send_advert = Some(self.bool_flag(node)),
                "skip_check_adv_addr" => inst.skip_check_adv_addr = self.bool_flag(node),
                "check_unicast_src" => {
                    self.flag(node);
                    inst.check_unicast_src = true;
                }
                "virtual_routes" => inst.routes.extend(self.virtual_routes(node)),
                "virtual_rules" => inst.rules.extend(self.virtual_rules(node)),
                "use_vmac" => {
                    self.no_block(node);
                    use_vmac = Some(node.args.first().map(|t| t.text.clone()));
                }
                "vmac_xmit_base" => {
                    self.flag(node);
                    vmac_xmit_base = true;
                }
                // Deprecated in keepalived: the VIPs say the family.
                "native_ipv6" => {
                    self.flag(node);
                    let v6 = std::net::Ipv6Addr::UNSPECIFIED.into();
                    self.same_family(&mut family, v6, node.loc(), "native_ipv6");
                }
                "dont_track_primary" => {
                    self.flag(node);
                    dont_track_primary = true;
                }
                "preempt_delay" => {
                    if let Some(d) = self.seconds(node, 0.0, 1000.0) {
                        inst.preempt_delay = d;
                    }
                }
                "unicast_fault_no_peer" => {
                    self.flag(node);
                    inst.unicast_fault_no_peer = true;
                }
                "unicast_ttl" => {
                    if let Some(ttl) = self.int(node, 1, 255) {
                        inst.unicast_ttl = ttl as u8;
                    }
                }
                "mcast_dst_ip" => mcast_dst_ip = self.mcast_group(node).map(|g| (g, node.loc())),
                "mcast_src_ip" => {
                    inst.mcast_src_ip = self.arg(node).and_then(|t| self.ip(t, "mcast_src_ip"))
                }
                "unicast_src_ip" => {
                    inst.unicast_src_ip = self.arg(node).and_then(|t| self.ip(t, "unicast_src_ip"))
                }
                "unicast_peer" => {
                    for child in node.children() {
                        if let Some(option) = child.args.first() {
                            self.diags.unsupported(
                                &option.loc,
                                format!(
                                    "unicast peer option `{}` is not supported by ha-agent: \
                                     this peer's adverts are accepted at any TTL",
                                    option.text
                                ),
                            );
                        }
                        if let Some(ip) = self.ip(&child.keyword, "unicast peer") {
                            self.same_family(&mut family, ip, child.loc(), "unicast peer");
                            inst.unicast_peers.push(ip);
                        }
                    }
                }
                "track_script" => inst.track_scripts.extend(self.track_scripts(node)),
                "track_interface" => inst.track_interfaces.extend(self.track_interfaces(node)),
                "track_file" => inst.track_files.extend(self.track_file_refs(node)),
                "track_process" => inst.track_processes.extend(self.track_file_refs(node)),
                "track_bfd" => inst.track_bfds.extend(self.track_file_refs(node)),
                "track_replication" => {
                    let tracks = self.track_replication(node);
                    inst.track_replication.extend(tracks);
                }
                "witness" => inst.witness = self.witness_ref(node),
                _ if self.notify_keyword(node, &mut inst.notify) => {}
                _ => self.unknown(node, "vrrp_instance"),
            }
        }

        inst.family = family.map_or(Family::V4, |(f, _)| f);
        inst.version = version.as_ref().map(|(v, _)| *v).unwrap_or(g.vrrp_version);
        if inst.family == Family::V6 && inst.version == Version::V2 {
            if let Some((_, loc)) = &version {
                self.diags
                    .error(loc, "VRRPv2 is IPv4 only: an IPv6 instance speaks VRRPv3");
            }
            inst.version = Version::V3;
        }
        for (addr, what) in [
            (inst.mcast_src_ip, "mcast_src_ip"),
            (inst.unicast_src_ip, "unicast_src_ip"),
        ] {
            if let Some(addr) = addr
                && Family::of(addr) != inst.family
            {
                self.diags.error(
                    block.loc(),
                    format!(
                        "instance {}: {what} {addr} is not {}, as the instance's addresses are",
                        inst.name,
                        inst.family.as_str()
                    ),
                );
            }
        }
        inst.mcast_dst_ip = match (mcast_dst_ip, inst.family) {
            (Some((group, _)), family) if Family::of(group) == family => group,
            (Some((group, loc)), family) => {
                self.diags.error(
                    loc,
                    format!("mcast_dst_ip {group} is not {}", family.as_str()),
                );
                family.group()
            }
            (None, Family::V4) => g.mcast_group4,
            (None, Family::V6) => g.mcast_group6,
        };
        inst.advert_int_cs = self.advert_int(inst.version, advert_int, &advert_loc);
        match (inst.version, auth) {
            (Version::V2, Some(pass)) => inst.auth_pass = Some(pass),
            (Version::V3, Some(_)) => self.diags.warn(
                block.loc(),
                format!(
                    "instance {}: VRRPv3 has no authentication; `authentication` ignored",
                    inst.name
                ),
            ),
            _ => {}
        }
        match initial {
            Some((state, loc)) => {
                inst.initial = state;
                if state == InitialState::Master && !inst.preempt {
                    self.diags.error(
                        &loc,
                        "`nopreempt` needs `state BACKUP` (a MASTER start would preempt anyway)",
                    );
                }
            }
            None if inst.priority == 255 => inst.initial = InitialState::Master,
            None => {}
        }
        // keepalived: strict mode answers no lower priority and sends nothing before yielding.
        inst.lower_prio_no_advert = lower_prio_no_advert.unwrap_or(inst.strict) || inst.strict;
        inst.higher_prio_send_advert = higher_prio_send_advert.unwrap_or(false) && !inst.strict;
        if inst.strict {
            inst.garp.lower_prio_repeat = Some(0);
        }
        inst.accept = match accept {
            _ if inst.priority == 255 => true,
            // RFC 3768 has no Accept_Mode: keepalived resets it under strict mode.
            Some((true, loc)) if inst.strict && inst.version == Version::V2 => {
                self.diags.warn(
                    &loc,
                    format!(
                        "instance {}: VRRPv2 under strict mode has no `accept` (RFC 3768); \
                         traffic to its VIPs is dropped",
                        inst.name
                    ),
                );
                false
            }
            Some((accept, _)) => accept,
            None => !inst.strict,
        };
        if let Some(name) = use_vmac {
            let name = name.unwrap_or_else(|| format!("vrrp.{}", vrid.unwrap_or(0)));
            if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
                self.diags.error(
                    block.loc(),
                    format!(
                        "instance {}: `use_vmac` name `{name}` is not an interface name",
                        inst.name
                    ),
                );
            }
            inst.vmac = Some(Vmac {
                name,
                xmit_base: vmac_xmit_base,
            });
        } else if vmac_xmit_base {
            self.diags.warn(
                block.loc(),
                format!(
                    "instance {}: `vmac_xmit_base` without `use_vmac`; ignored",
                    inst.name
                ),
            );
        }
        // keepalived: the instance's own interface going down means FAULT, unless
        // `dont_track_primary` (or the user tracks it with a weight of their own).
        if let Some(i) = &interface
            && !dont_track_primary
            && !inst.track_interfaces.iter().any(|t| &t.name == i)
        {
            inst.track_interfaces.push(TrackInterface {
                name: i.clone(),
                weight: 0,
                reverse: false,
                loc: block.loc().clone(),
            });
        }
        match interface {
            Some(i) => inst.interface = i,
            None => self.diags.error(
                block.loc(),
                format!("instance {}: `interface` missing", inst.name),
            ),
        }
        match vrid {
            Some(v) => inst.vrid = v,
            None => self.diags.error(
                block.loc(),
                format!("instance {}: `virtual_router_id` missing", inst.name),
            ),
        }
        // An elected instance may only run notify scripts (no gratuitous ARP across subnets).
        if inst.vips.is_empty() && !inst.witness.as_ref().is_some_and(|w| w.election) {
            self.diags.warn(
                block.loc(),
                format!("instance {} has no virtual_ipaddress", inst.name),
            );
        }
        Some(inst)
    }

    /// The advertisement interval in centiseconds, as the version allows.
    pub(super) fn advert_int(&mut self, version: Version, d: Duration, loc: &Loc) -> u16 {
        let cs = (d.as_secs_f64() * 100.0).round() as u64;
        match version {
            Version::V2 => {
                let secs = (cs as f64 / 100.0).round().max(1.0);
                if (secs * 100.0) as u64 != cs {
                    self.diags.warn(
                        loc,
                        format!("VRRPv2 advert_int must be whole seconds; using {secs} s"),
                    );
                }
                (secs as u16) * 100
            }
            Version::V3 => {
                if cs > 4095 {
                    self.diags
                        .error(loc, "VRRPv3 advert_int is at most 40.95 s");
                    4095
                } else {
                    cs.max(1) as u16
                }
            }
        }
    }

    pub(super) fn authentication(&mut self, block: &Node) -> Option<[u8; 8]> {
        let mut kind = None;
        let mut pass = None;
        for node in block.children() {
            match node.name() {
                "auth_type" => kind = self.arg(node).map(|t| (t.text.clone(), t.loc.clone())),
                "auth_pass" => pass = self.arg(node).map(|t| (t.text.clone(), t.loc.clone())),
                _ => self.unknown(node, "authentication"),
            }
        }
        match kind {
            Some((k, _)) if k == "PASS" => {}
            Some((k, loc)) if k == "AH" => {
                self.diags
                    .error(&loc, "auth_type AH is not supported (use PASS or none)");
                return None;
            }
            Some((k, loc)) => {
                self.diags
                    .error(&loc, format!("unknown auth_type `{k}` (PASS or AH)"));
                return None;
            }
            None => {
                self.diags
                    .error(block.loc(), "`authentication` needs `auth_type PASS`");
                return None;
            }
        }
        let Some((text, loc)) = pass else {
            self.diags
                .error(block.loc(), "`auth_type PASS` needs `auth_pass`");
            return None;
        };
        if text.len() > 8 {
            self.diags.warn(
                &loc,
                "auth_pass is longer than 8 characters; truncated to 8",
            );
        }
        let mut data = [0u8; 8];
        for (d, s) in data.iter_mut().zip(text.bytes()) {
            *d = s;
        }
        Some(data)
    }

    pub(super) fn vip(&mut self, node: &Node) -> Option<Vip> {
        let text = &node.keyword.text;
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.as_str(), None),
        };
        let addr_token = Token {
            text: addr.to_owned(),
            ..node.keyword.clone()
        };
        let addr = self.ip(&addr_token, "virtual_ipaddress")?;
        let host = if addr.is_ipv6() { 128 } else { 32 };
        let prefix = match prefix {
            None => host,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= host => p,
                _ => {
                    self.diags
                        .error(node.loc(), format!("bad prefix length in `{text}`"));
                    return None;
                }
            },
        };
        let mut vip = Vip {
            addr,
            prefix,
            dev: None,
            label: None,
            excluded: false,
        };
        let mut args = node.args.iter();
        while let Some(word) = args.next() {
            let slot = match word.text.as_str() {
                "dev" => &mut vip.dev,
                "label" => &mut vip.label,
                other => {
                    self.diags.warn(
                        &word.loc,
                        format!("VIP option `{other}` is not supported; ignored"),
                    );
                    // Options like `brd X`, `scope X` carry a value; skip it too.
                    if !matches!(
                        other,
                        "home" | "-nodad" | "nodad" | "noprefixroute" | "autojoin" | "no_track"
                    ) {
                        args.next();
                    }
                    continue;
                }
            };
            match args.next() {
                Some(value) => *slot = Some(value.text.clone()),
                None => self
                    .diags
                    .error(&word.loc, format!("`{}` needs a value", word.text)),
            }
        }
        Some(vip)
    }

    /// Whether `addr` is of the instance's family, which the first address sets (keepalived's
    /// rule); one of the other family is an error at its line.
    fn same_family(
        &mut self,
        family: &mut Option<(Family, Loc)>,
        addr: IpAddr,
        loc: &Loc,
        what: &str,
    ) -> bool {
        match family {
            None => {
                *family = Some((Family::of(addr), loc.clone()));
                true
            }
            Some((f, first)) if *f != Family::of(addr) => {
                self.diags.error(
                    loc,
                    format!(
                        "{what} {addr} is not {}, as the instance's first address ({first}) is: \
                         an instance is IPv4 or IPv6 (use another instance, or \
                         virtual_ipaddress_excluded)",
                        f.as_str()
                    ),
                );
                false
            }
            Some(_) => true,
        }
    }

    /// `track_script { NAME [weight N] [reverse] ... }`.
    pub(super) fn track_scripts(&mut self, node: &Node) -> Vec<TrackScript> {
        let mut tracks = Vec::new();
        for child in node.children() {
            let (weight, reverse) = self.weight(child);
            tracks.push(TrackScript {
                name: child.name().to_owned(),
                weight,
                reverse,
                loc: child.loc().clone(),
            });
        }
        tracks
    }

    /// `track_interface { IF [weight N] [reverse] ... }`.
    pub(super) fn track_interfaces(&mut self, node: &Node) -> Vec<TrackInterface> {
        let mut tracks = Vec::new();
        for child in node.children() {
            let (weight, reverse) = self.weight(child);
            tracks.push(TrackInterface {
                name: child.name().to_owned(),
                weight: weight.unwrap_or(0),
                reverse,
                loc: child.loc().clone(),
            });
        }
        tracks
    }

    /// `notify_master/backup/fault/stop` and `notify`: whether `node` was one of them.
    pub(super) fn notify_keyword(&mut self, node: &Node, notify: &mut NotifyScripts) -> bool {
        if node.name() == "notify_deleted" {
            notify.announce_deleted = true;
            if !node.args.is_empty() {
                notify.deleted = self.script_line(node);
            }
            return true;
        }
        let slot = match node.name() {
            "notify_master" => &mut notify.master,
            "notify_backup" => &mut notify.backup,
            "notify_fault" => &mut notify.fault,
            "notify_stop" => &mut notify.stop,
            "notify" => &mut notify.generic,
            "notify_master_rx_lower_pri" => &mut notify.master_rx_lower_pri,
            _ => return false,
        };
        *slot = self.script_line(node);
        true
    }
}
