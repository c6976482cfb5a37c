//! The typed configuration and its construction from the block tree.

use std::{collections::HashMap, net::Ipv4Addr, time::Duration};

use super::{
    diag::{Diagnostics, Loc},
    lexer::Token,
    replication::{MysqlReplication, TrackReplication},
    tree::Node,
    witness::{EtcdWitness, WitnessRef},
};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub global: GlobalDefs,
    pub instances: Vec<VrrpInstance>,
    pub scripts: Vec<VrrpScript>,
    pub replications: Vec<MysqlReplication>,
    pub witnesses: Vec<EtcdWitness>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    V2,
    V3,
}

impl Version {
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// Gratuitous ARP bursts on becoming master (keepalived's `garp_master_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GarpParams {
    /// Delay of the second burst after becoming master; zero: no second burst.
    pub delay: Duration,
    /// GARPs per VIP in each burst.
    pub repeat: u32,
    /// Period of refresh bursts while master, if any.
    pub refresh: Option<Duration>,
    pub refresh_repeat: u32,
    /// Gap between two GARPs on one interface (`vrrp_garp_interval`).
    pub interval: Duration,
}

impl Default for GarpParams {
    fn default() -> Self {
        Self {
            delay: Duration::from_secs(5),
            repeat: 5,
            refresh: None,
            refresh_repeat: 1,
            interval: Duration::ZERO,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct GlobalDefs {
    pub router_id: Option<String>,
    /// Default user for scripts, and where it was set.
    pub script_user: Option<(String, Loc)>,
    pub enable_script_security: bool,
    pub skip_check_adv_addr: bool,
    /// `vrrp_strict`: adverts configured otherwise (address list, VRRPv2 interval) are
    /// dropped as the RFC says, instead of proving their sender alive.
    pub strict: bool,
    /// `vrrp_check_unicast_src`: every unicast instance checks adverts' sources.
    pub check_unicast_src: bool,
    pub gna_interval: Duration,
    pub vrrp_version: Version,
    pub garp: GarpParams,
    pub startup_delay: Duration,
    /// ha-agent extension `notify_timeout`: how long a notify script may run.
    pub notify_timeout: Duration,
}

impl Default for GlobalDefs {
    fn default() -> Self {
        Self {
            router_id: None,
            script_user: None,
            enable_script_security: false,
            skip_check_adv_addr: false,
            strict: false,
            check_unicast_src: false,
            gna_interval: Duration::ZERO,
            vrrp_version: Version::V2,
            garp: GarpParams::default(),
            startup_delay: Duration::ZERO,
            notify_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitialState {
    Master,
    Backup,
}

/// A virtual IP: `ADDR[/PREFIX] [dev IF] [label L]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vip {
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub dev: Option<String>,
    pub label: Option<String>,
}

/// A command line run for a notify or check, with an optional user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    pub argv: Vec<String>,
    pub user: Option<String>,
    pub loc: Loc,
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
    /// VRRPv2 PASS authentication data, zero padded to 8 bytes.
    pub auth_pass: Option<[u8; 8]>,
    pub vips: Vec<Vip>,
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// ha-agent extension `fast_preempt`: preempt a lower-priority master after Skew_Time.
    pub fast_preempt: bool,
    /// `check_unicast_src` (or global `vrrp_check_unicast_src`): with unicast peers, adverts
    /// from any other source are dropped.
    pub check_unicast_src: bool,
    pub unicast_src_ip: Option<Ipv4Addr>,
    pub unicast_peers: Vec<Ipv4Addr>,
    pub garp: GarpParams,
    pub track_scripts: Vec<TrackScript>,
    pub track_interfaces: Vec<TrackInterface>,
    /// Databases whose promotion gates this instance's takeover.
    pub track_replication: Vec<TrackReplication>,
    /// The etcd witness whose leader key this instance must hold to be MASTER.
    pub witness: Option<WitnessRef>,
    pub notify: NotifyScripts,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VrrpScript {
    pub name: String,
    pub loc: Loc,
    pub script: Script,
    pub interval: Duration,
    pub timeout: Option<Duration>,
    pub weight: i32,
    pub reverse: bool,
    pub rise: u32,
    pub fall: u32,
    pub user: Option<String>,
    pub init_fail: bool,
}

/// Keywords keepalived knows that ha-agent does not implement (yet): warned, not silent.
const UNSUPPORTED: &[&str] = &[
    "vrrp_sync_group",
    "use_vmac",
    "vmac_xmit_base",
    "use_ipvlan",
    "virtual_routes",
    "virtual_rules",
    "virtual_ipaddress_excluded",
    "track_file",
    "track_process",
    "track_bfd",
    "auth_hmac",
    "mcast_src_ip",
    "mcast_dst_ip",
    "strict_mode",
    "notify_fifo",
    "vrrp_notify_fifo",
    "enable_dbus",
    "enable_snmp_vrrp",
    "smtp_alert",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "virtual_server",
    "virtual_server_group",
    "real_server",
    "bfd_instance",
    "garp_group",
    "linkbeat_interfaces",
    "dont_track_primary",
    "track_src_ip",
    "accept",
    "no_accept",
];

/// A command line split as keepalived splits it: on spaces, except inside '...' or "..."
/// (a script's first word is quoted as a whole, so its arguments use the other quote).
fn split_command(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if std::mem::take(&mut in_word) {
                    words.push(std::mem::take(&mut word));
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// `USER [GROUP]` or `USER:GROUP` as one `user[:group]` string.
fn user_spec(args: &[Token]) -> Option<String> {
    let user = args.first()?;
    Some(match args.get(1) {
        Some(group) if !user.text.contains(':') => format!("{}:{}", user.text, group.text),
        _ => user.text.clone(),
    })
}

/// Everything `build` needs while walking the tree.
pub(super) struct Builder<'a> {
    pub(super) diags: &'a mut Diagnostics,
}

pub(super) fn build(nodes: &[Node], diags: &mut Diagnostics) -> Config {
    let mut b = Builder { diags };
    let mut config = Config::default();
    // global_defs first: instances inherit its defaults wherever it is in the file.
    for node in nodes.iter().filter(|n| n.name() == "global_defs") {
        b.global_defs(node, &mut config.global);
    }
    for node in nodes {
        match node.name() {
            "global_defs" => {}
            "vrrp_instance" => {
                if let Some(instance) = b.instance(node, &config.global) {
                    config.instances.push(instance);
                }
            }
            "vrrp_script" => {
                if let Some(script) = b.script(node) {
                    config.scripts.push(script);
                }
            }
            "mysql_replication" => {
                if let Some(r) = b.replication(node) {
                    config.replications.push(r);
                }
            }
            "etcd_witness" => {
                if let Some(w) = b.witness(node) {
                    config.witnesses.push(w);
                }
            }
            _ => b.unknown(node, "top level"),
        }
    }
    b.check(&config);
    config
}

impl Builder<'_> {
    pub(super) fn unknown(&mut self, node: &Node, context: &str) {
        if UNSUPPORTED.contains(&node.name()) {
            self.diags.warn(
                node.loc(),
                format!("`{}` is not supported by ha-agent; ignored", node.name()),
            );
        } else {
            self.diags.warn(
                node.loc(),
                format!("unknown keyword `{}` in {context}; ignored", node.name()),
            );
        }
    }

    /// A value keyword followed by a block: the block would be lost without a word.
    pub(super) fn no_block(&mut self, node: &Node) {
        if node.block.is_some() {
            self.diags.error(
                node.loc(),
                format!("`{}` takes a value, not a block", node.name()),
            );
        }
    }

    /// The single argument of `node`.
    pub(super) fn arg<'n>(&mut self, node: &'n Node) -> Option<&'n Token> {
        self.no_block(node);
        match node.args.as_slice() {
            [arg] => Some(arg),
            [] => {
                self.diags
                    .error(node.loc(), format!("`{}` needs a value", node.name()));
                None
            }
            [arg, extra, ..] => {
                self.diags.warn(
                    &extra.loc,
                    format!("`{}` takes one value; extra words ignored", node.name()),
                );
                Some(arg)
            }
        }
    }

    pub(super) fn int(&mut self, node: &Node, min: i64, max: i64) -> Option<i64> {
        let token = self.arg(node)?;
        self.int_token(node.name(), token, min, max)
    }

    fn int_token(&mut self, what: &str, token: &Token, min: i64, max: i64) -> Option<i64> {
        match token.text.parse::<i64>() {
            Ok(v) if (min..=max).contains(&v) => Some(v),
            Ok(v) => {
                self.diags.error(
                    &token.loc,
                    format!("`{what}` {v} is out of range {min}..{max}"),
                );
                None
            }
            Err(_) => {
                self.diags.error(
                    &token.loc,
                    format!("`{what}` needs a number, not `{}`", token.text),
                );
                None
            }
        }
    }

    /// A duration in (decimal) seconds within `min..=max`.
    pub(super) fn seconds(&mut self, node: &Node, min: f64, max: f64) -> Option<Duration> {
        let token = self.arg(node)?;
        match token.text.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= min && v <= max => Some(Duration::from_secs_f64(v)),
            Ok(_) => {
                self.diags.error(
                    &token.loc,
                    format!(
                        "`{}` {} is out of range {min}..{max} s",
                        node.name(),
                        token.text
                    ),
                );
                None
            }
            Err(_) => {
                self.diags.error(
                    &token.loc,
                    format!(
                        "`{}` needs a number of seconds, not `{}`",
                        node.name(),
                        token.text
                    ),
                );
                None
            }
        }
    }

    pub(super) fn ipv4(&mut self, token: &Token, what: &str) -> Option<Ipv4Addr> {
        match token.text.parse::<Ipv4Addr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                let hint = if token.text.contains(':') {
                    " (IPv6 is not supported yet)"
                } else {
                    ""
                };
                self.diags.error(
                    &token.loc,
                    format!("{what} `{}` is not an IPv4 address{hint}", token.text),
                );
                None
            }
        }
    }

    fn flag(&mut self, node: &Node) {
        self.no_block(node);
        if let Some(extra) = node.args.first() {
            self.diags.warn(
                &extra.loc,
                format!("`{}` takes no value; `{}` ignored", node.name(), extra.text),
            );
        }
    }

    fn garp_keyword(&mut self, node: &Node, garp: &mut GarpParams, prefix: &str) -> bool {
        let Some(key) = node.name().strip_prefix(prefix) else {
            return false;
        };
        match key {
            "garp_master_delay" => {
                if let Some(d) = self.seconds(node, 0.0, 1000.0) {
                    garp.delay = d;
                }
            }
            "garp_master_repeat" => {
                if let Some(n) = self.int(node, 1, 255) {
                    garp.repeat = n as u32;
                }
            }
            "garp_master_refresh" => {
                if let Some(d) = self.seconds(node, 0.0, 1_000_000.0) {
                    garp.refresh = (!d.is_zero()).then_some(d);
                }
            }
            "garp_master_refresh_repeat" => {
                if let Some(n) = self.int(node, 1, 255) {
                    garp.refresh_repeat = n as u32;
                }
            }
            _ => return false,
        }
        true
    }

    fn global_defs(&mut self, block: &Node, g: &mut GlobalDefs) {
        for node in block.children() {
            if self.garp_keyword(node, &mut g.garp, "vrrp_") {
                continue;
            }
            match node.name() {
                "router_id" => g.router_id = self.arg(node).map(|t| t.text.clone()),
                "script_user" => {
                    g.script_user = user_spec(&node.args)
                        .zip(node.args.first())
                        .map(|(spec, t)| (spec, t.loc.clone()));
                    if g.script_user.is_none() {
                        self.diags
                            .error(node.loc(), "`script_user` needs a user name");
                    }
                }
                "enable_script_security" => g.enable_script_security = true,
                "vrrp_skip_check_adv_addr" => g.skip_check_adv_addr = true,
                "vrrp_strict" => g.strict = true,
                "vrrp_check_unicast_src" => g.check_unicast_src = true,
                // keepalived rejects a literal 0 and keeps its default, which is 0: same result.
                "vrrp_garp_interval" => {
                    if let Some(d) = self.seconds(node, 0.0, 4294.967295) {
                        g.garp.interval = d;
                    }
                }
                "vrrp_gna_interval" => {
                    if let Some(d) = self.seconds(node, 0.0, 4294.967295) {
                        g.gna_interval = d;
                    }
                }
                "vrrp_version" => {
                    if let Some(v) = self.version(node) {
                        g.vrrp_version = v;
                    }
                }
                "notify_timeout" => {
                    if let Some(d) = self.seconds(node, 0.01, 3600.0) {
                        g.notify_timeout = d;
                    }
                }
                "vrrp_startup_delay" => {
                    if let Some(d) = self.seconds(node, 0.0, 3600.0) {
                        g.startup_delay = d;
                    }
                }
                _ => self.unknown(node, "global_defs"),
            }
        }
    }

    fn version(&mut self, node: &Node) -> Option<Version> {
        match self.int(node, 2, 3)? {
            2 => Some(Version::V2),
            _ => Some(Version::V3),
        }
    }

    fn instance(&mut self, block: &Node, g: &GlobalDefs) -> Option<VrrpInstance> {
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
        let mut inst = VrrpInstance {
            name: name.text.clone(),
            loc: block.loc().clone(),
            initial: InitialState::Backup,
            interface: String::new(),
            vrid: 0,
            priority: 100,
            advert_int_cs: 100,
            version: g.vrrp_version,
            auth_pass: None,
            vips: Vec::new(),
            preempt: true,
            preempt_delay: Duration::ZERO,
            fast_preempt: false,
            check_unicast_src: g.check_unicast_src,
            unicast_src_ip: None,
            unicast_peers: Vec::new(),
            garp: g.garp,
            track_scripts: Vec::new(),
            track_interfaces: Vec::new(),
            track_replication: Vec::new(),
            witness: None,
            notify: NotifyScripts::default(),
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
                "virtual_ipaddress" => {
                    for child in node.children() {
                        if let Some(vip) = self.vip(child) {
                            inst.vips.push(vip);
                        }
                    }
                }
                "nopreempt" => {
                    self.flag(node);
                    inst.preempt = false;
                }
                "preempt" => self.flag(node),
                "fast_preempt" => {
                    self.flag(node);
                    inst.fast_preempt = true;
                }
                "check_unicast_src" => {
                    self.flag(node);
                    inst.check_unicast_src = true;
                }
                "preempt_delay" => {
                    if let Some(d) = self.seconds(node, 0.0, 1000.0) {
                        inst.preempt_delay = d;
                    }
                }
                "unicast_src_ip" => {
                    inst.unicast_src_ip =
                        self.arg(node).and_then(|t| self.ipv4(t, "unicast_src_ip"))
                }
                "unicast_peer" => {
                    for child in node.children() {
                        if let Some(ip) = self.ipv4(&child.keyword, "unicast peer") {
                            inst.unicast_peers.push(ip);
                        }
                    }
                }
                "track_script" => {
                    for child in node.children() {
                        let (weight, reverse) = self.weight(child);
                        inst.track_scripts.push(TrackScript {
                            name: child.name().to_owned(),
                            weight,
                            reverse,
                            loc: child.loc().clone(),
                        });
                    }
                }
                "track_interface" => {
                    for child in node.children() {
                        let (weight, reverse) = self.weight(child);
                        inst.track_interfaces.push(TrackInterface {
                            name: child.name().to_owned(),
                            weight: weight.unwrap_or(0),
                            reverse,
                            loc: child.loc().clone(),
                        });
                    }
                }
                "track_replication" => {
                    let tracks = self.track_replication(node);
                    inst.track_replication.extend(tracks);
                }
                "witness" => inst.witness = self.witness_ref(node),
                "notify_master" => inst.notify.master = self.script_line(node),
                "notify_backup" => inst.notify.backup = self.script_line(node),
                "notify_fault" => inst.notify.fault = self.script_line(node),
                "notify_stop" => inst.notify.stop = self.script_line(node),
                "notify" => inst.notify.generic = self.script_line(node),
                _ => self.unknown(node, "vrrp_instance"),
            }
        }

        inst.version = version.as_ref().map(|(v, _)| *v).unwrap_or(g.vrrp_version);
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
    fn advert_int(&mut self, version: Version, d: Duration, loc: &Loc) -> u16 {
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

    fn authentication(&mut self, block: &Node) -> Option<[u8; 8]> {
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

    fn vip(&mut self, node: &Node) -> Option<Vip> {
        let text = &node.keyword.text;
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.as_str(), None),
        };
        let addr_token = Token {
            text: addr.to_owned(),
            ..node.keyword.clone()
        };
        let addr = self.ipv4(&addr_token, "virtual_ipaddress")?;
        let prefix = match prefix {
            None => 32,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= 32 => p,
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

    /// `NAME [weight N [reverse|noreverse]]` of track_script / track_interface.
    pub(super) fn weight(&mut self, node: &Node) -> (Option<i32>, bool) {
        let mut weight = None;
        let mut reverse = false;
        let mut args = node.args.iter();
        while let Some(word) = args.next() {
            match word.text.as_str() {
                "weight" => match args.next() {
                    Some(w) => weight = self.int_token("weight", w, -253, 253).map(|w| w as i32),
                    None => self.diags.error(&word.loc, "`weight` needs a value"),
                },
                "reverse" => reverse = true,
                "noreverse" => reverse = false,
                other => self
                    .diags
                    .warn(&word.loc, format!("unknown option `{other}`; ignored")),
            }
        }
        (weight, reverse)
    }

    /// A script line: `"cmd args" [user [group]]` or `cmd [user [group]]`.
    fn script_line(&mut self, node: &Node) -> Option<Script> {
        let Some(first) = node.args.first() else {
            self.diags
                .error(node.loc(), format!("`{}` needs a command", node.name()));
            return None;
        };
        let argv = split_command(&first.text);
        if argv.is_empty() {
            self.diags.error(
                &first.loc,
                format!("`{}` has an empty command", node.name()),
            );
            return None;
        }
        Some(Script {
            argv,
            user: node.args.get(1..).and_then(user_spec),
            loc: node.loc().clone(),
        })
    }

    fn script(&mut self, block: &Node) -> Option<VrrpScript> {
        let Some(name) = block.args.first() else {
            self.diags.error(block.loc(), "`vrrp_script` needs a name");
            return None;
        };
        let mut script = None;
        let mut s = VrrpScript {
            name: name.text.clone(),
            loc: block.loc().clone(),
            script: Script {
                argv: Vec::new(),
                user: None,
                loc: block.loc().clone(),
            },
            interval: Duration::from_secs(1),
            timeout: None,
            weight: 0,
            reverse: false,
            rise: 1,
            fall: 1,
            user: None,
            init_fail: false,
        };
        for node in block.children() {
            match node.name() {
                "script" => script = self.script_line(node),
                "interval" => {
                    if let Some(d) = self.seconds(node, 0.0, 86400.0) {
                        s.interval = d;
                    }
                }
                "timeout" => s.timeout = self.seconds(node, 0.0, 86400.0),
                "weight" => {
                    let (w, reverse) = self.weight(&Node {
                        keyword: node.keyword.clone(),
                        args: std::iter::once(node.keyword.clone())
                            .chain(node.args.clone())
                            .collect(),
                        block: None,
                    });
                    s.weight = w.unwrap_or(0);
                    s.reverse = reverse;
                }
                "rise" => s.rise = self.int(node, 1, 1000).unwrap_or(1) as u32,
                "fall" => s.fall = self.int(node, 1, 1000).unwrap_or(1) as u32,
                "user" => s.user = user_spec(&node.args),
                "init_fail" => s.init_fail = true,
                _ => self.unknown(node, "vrrp_script"),
            }
        }
        match script {
            Some(script) => s.script = script,
            None => {
                self.diags.error(
                    block.loc(),
                    format!("vrrp_script {} has no `script`", s.name),
                );
                return None;
            }
        }
        Some(s)
    }

    /// Checks across instances and scripts.
    fn check(&mut self, config: &Config) {
        let mut names: HashMap<&str, &Loc> = HashMap::new();
        let mut vrids: HashMap<(&str, u8), &str> = HashMap::new();
        for inst in &config.instances {
            if let Some(first) = names.insert(&inst.name, &inst.loc) {
                self.diags.error(
                    &inst.loc,
                    format!("instance name {} already used at {first}", inst.name),
                );
            }
            if inst.vrid != 0
                && !inst.interface.is_empty()
                && let Some(other) = vrids.insert((&inst.interface, inst.vrid), &inst.name)
            {
                self.diags.error(
                    &inst.loc,
                    format!(
                        "virtual_router_id {} on {} is already used by instance {other}",
                        inst.vrid, inst.interface
                    ),
                );
            }
            if let Some(second) = inst.track_replication.get(1) {
                self.diags.error(
                    &second.loc,
                    "track_replication: one database per instance (its promotion gates the takeover)",
                );
            }
            for track in &inst.track_replication {
                if !config.replications.iter().any(|r| r.name == track.name) {
                    self.diags.error(
                        &track.loc,
                        format!(
                            "track_replication {}: no mysql_replication of that name",
                            track.name
                        ),
                    );
                }
            }
            if let Some(w) = &inst.witness
                && !config.witnesses.iter().any(|c| c.name == w.name)
            {
                self.diags.error(
                    &w.loc,
                    format!("witness {}: no etcd_witness of that name", w.name),
                );
            }
            for track in &inst.track_scripts {
                if !config.scripts.iter().any(|s| s.name == track.name) {
                    self.diags.error(
                        &track.loc,
                        format!("track_script {}: no vrrp_script of that name", track.name),
                    );
                }
            }
        }
    }
}
