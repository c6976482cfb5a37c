//! `global_defs { ... }`: defaults every instance inherits.

use std::time::Duration;

use std::path::PathBuf;

use super::{
    build::Builder,
    diag::Loc,
    script::{Script, user_spec},
    tree::Node,
};
use crate::vrrp::Version;

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
    /// A MASTER hearing a lower priority announces its VIPs again: GARPs per VIP (default
    /// `repeat`; 0: never) and the delay of the second burst (default `delay`).
    pub lower_prio_repeat: Option<u32>,
    pub lower_prio_delay: Option<Duration>,
    /// `garp_extra_if [all] S`: the VIPs on interfaces other than the instance's are
    /// announced every S while MASTER (keepalived limits it to per-VIP VMACs unless `all`;
    /// ha-agent has no per-VIP VMAC, so only `all` announces anything).
    pub extra_if: Option<(Duration, bool)>,
}

impl Default for GarpParams {
    fn default() -> Self {
        Self {
            delay: Duration::from_secs(5),
            repeat: 5,
            refresh: None,
            refresh_repeat: 1,
            lower_prio_repeat: None,
            lower_prio_delay: None,
            extra_if: None,
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
    /// `vrrp_garp_interval` / `vrrp_gna_interval`: the gap between two gratuitous ARPs (two
    /// unsolicited NAs) on one interface, across instances; `garp_group` sets it per
    /// interface or group of interfaces.
    pub garp_interval: Duration,
    pub gna_interval: Duration,
    pub vrrp_version: Version,
    pub garp: GarpParams,
    pub startup_delay: Duration,
    /// ha-agent extension `notify_timeout`: how long a notify script may run.
    pub notify_timeout: Duration,
    /// `notify_fifo`: every instance and group transition, one line each.
    pub notify_fifo: Option<NotifyFifo>,
    /// `vrrp_notify_fifo`: the same lines (keepalived keeps it apart from the LVS side's).
    pub vrrp_notify_fifo: Option<NotifyFifo>,
    /// `fifo_write_vrrp_states_on_reload`: a reload writes every state again.
    pub fifo_states_on_reload: bool,
    /// Defaults of the instances' `down_timer_adverts`, `lower_prio_no_advert` and
    /// `higher_prio_send_advert`.
    pub down_timer_adverts: u8,
    pub lower_prio_no_advert: Option<bool>,
    pub higher_prio_send_advert: Option<bool>,
    /// `startup_script` / `shutdown_script`: run once before the instances start and once
    /// after they stopped, each for at most its timeout (default 10 s).
    pub startup_script: Option<(Script, Duration)>,
    /// `vrrp_notify_priority_changes`: the default of the instances' `notify_priority_changes`.
    pub notify_priority_changes: bool,
    /// `vrrp_mcast_group4` / `vrrp_mcast_group6`: where multicast adverts go (224.0.0.18
    /// and ff02::12, RFC 5798's groups).
    pub mcast_group4: std::net::IpAddr,
    pub mcast_group6: std::net::IpAddr,
    pub shutdown_script: Option<(Script, Duration)>,
}

/// A FIFO the agent writes `INSTANCE "NAME" STATE PRIORITY` lines to, and the script that
/// reads it (run at start with the FIFO's path as its last argument).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyFifo {
    pub path: PathBuf,
    /// `USER[:GROUP]` owning a FIFO the agent creates.
    pub owner: Option<String>,
    pub script: Option<Script>,
    pub loc: Loc,
}

/// keepalived's default for `startup_script_timeout` and `shutdown_script_timeout`.
const DEFAULT_SCRIPT_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for GlobalDefs {
    fn default() -> Self {
        Self {
            router_id: None,
            script_user: None,
            enable_script_security: false,
            skip_check_adv_addr: false,
            strict: false,
            check_unicast_src: false,
            garp_interval: Duration::ZERO,
            gna_interval: Duration::ZERO,
            vrrp_version: Version::V2,
            garp: GarpParams::default(),
            startup_delay: Duration::ZERO,
            notify_timeout: Duration::from_secs(30),
            notify_fifo: None,
            vrrp_notify_fifo: None,
            fifo_states_on_reload: false,
            down_timer_adverts: 3,
            lower_prio_no_advert: None,
            higher_prio_send_advert: None,
            startup_script: None,
            notify_priority_changes: false,
            mcast_group4: crate::vrrp::Family::V4.group(),
            mcast_group6: crate::vrrp::Family::V6.group(),
            shutdown_script: None,
        }
    }
}

impl Builder<'_> {
    pub(super) fn garp_keyword(
        &mut self,
        node: &Node,
        garp: &mut GarpParams,
        prefix: &str,
    ) -> bool {
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
            "garp_lower_prio_repeat" => {
                if let Some(n) = self.int(node, 0, 255) {
                    garp.lower_prio_repeat = Some(n as u32);
                }
            }
            "garp_extra_if" => {
                let all = node.args.first().is_some_and(|w| w.text == "all");
                let period = node.args.get(usize::from(all));
                match period.map(|p| self.int_token("garp_extra_if", p, 0, 86400)) {
                    Some(Some(0)) => garp.extra_if = None,
                    Some(Some(secs)) => {
                        garp.extra_if = Some((Duration::from_secs(secs as u64), all));
                        if !all {
                            self.diags.warn(
                                node.loc(),
                                "`garp_extra_if` without `all` announces nothing here: \
                                 ha-agent has no per-VIP use_vmac",
                            );
                        }
                    }
                    Some(None) => {}
                    None => self
                        .diags
                        .error(node.loc(), "`garp_extra_if` needs a period in seconds"),
                }
            }
            "garp_lower_prio_delay" => {
                if let Some(d) = self.seconds(node, 0.0, 1000.0) {
                    garp.lower_prio_delay = Some(d);
                }
            }
            _ => return false,
        }
        true
    }

    pub(super) fn global_defs(&mut self, block: &Node, g: &mut GlobalDefs) {
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
                        g.garp_interval = d;
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
                // One gratuitous ARP per VIP on takeover and no second burst.
                "vrrp_min_garp" => {
                    if self.bool_flag(node) {
                        g.garp.repeat = 1;
                        g.garp.delay = Duration::ZERO;
                    }
                }
                "notify_fifo" => self.fifo(node, &mut g.notify_fifo),
                "vrrp_notify_fifo" => self.fifo(node, &mut g.vrrp_notify_fifo),
                "notify_fifo_script" => self.fifo_script(node, &mut g.notify_fifo),
                "vrrp_notify_fifo_script" => self.fifo_script(node, &mut g.vrrp_notify_fifo),
                "fifo_write_vrrp_states_on_reload" => {
                    g.fifo_states_on_reload = self.bool_flag(node)
                }
                "startup_script" => {
                    g.startup_script = self.script_line(node).map(|s| (s, DEFAULT_SCRIPT_TIMEOUT))
                }
                "shutdown_script" => {
                    g.shutdown_script = self.script_line(node).map(|s| (s, DEFAULT_SCRIPT_TIMEOUT))
                }
                "startup_script_timeout" | "shutdown_script_timeout" => {
                    let timeout = self.seconds(node, 1.0, 1000.0);
                    let script = if node.name() == "startup_script_timeout" {
                        &mut g.startup_script
                    } else {
                        &mut g.shutdown_script
                    };
                    match (script, timeout) {
                        (Some((_, t)), Some(timeout)) => *t = timeout,
                        (None, Some(_)) => self.diags.error(
                            node.loc(),
                            format!("`{}` before its script (or without one)", node.name()),
                        ),
                        _ => {}
                    }
                }
                "vrrp_notify_priority_changes" => g.notify_priority_changes = self.bool_flag(node),
                "vrrp_mcast_group4" | "vrrp_mcast_group6" => {
                    let v6 = node.name() == "vrrp_mcast_group6";
                    if let Some(group) = self.mcast_group(node) {
                        if group.is_ipv6() != v6 {
                            self.diags.error(
                                node.loc(),
                                format!("`{}` {group} is of the other family", node.name()),
                            );
                        } else if v6 {
                            g.mcast_group6 = group;
                        } else {
                            g.mcast_group4 = group;
                        }
                    }
                }
                "vrrp_down_timer_adverts" => {
                    if let Some(n) = self.int(node, 1, 100) {
                        g.down_timer_adverts = n as u8;
                    }
                }
                "vrrp_lower_prio_no_advert" => {
                    g.lower_prio_no_advert = Some(self.bool_flag(node));
                }
                "vrrp_higher_prio_send_advert" => {
                    g.higher_prio_send_advert = Some(self.bool_flag(node));
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

    /// `notify_fifo PATH [USER [GROUP]]` (its script may come before or after it).
    fn fifo(&mut self, node: &Node, fifo: &mut Option<NotifyFifo>) {
        let Some(path) = node.args.first() else {
            self.diags
                .error(node.loc(), format!("`{}` needs a path", node.name()));
            return;
        };
        let path = PathBuf::from(&path.text);
        if !path.is_absolute() {
            self.diags.error(
                node.loc(),
                format!(
                    "`{}` {} needs an absolute path",
                    node.name(),
                    path.display()
                ),
            );
            return;
        }
        let f = fifo.get_or_insert_with(|| NotifyFifo {
            path: PathBuf::new(),
            owner: None,
            script: None,
            loc: node.loc().clone(),
        });
        f.path = path;
        f.owner = node.args.get(1..).and_then(user_spec);
        f.loc = node.loc().clone();
    }

    fn fifo_script(&mut self, node: &Node, fifo: &mut Option<NotifyFifo>) {
        let script = self.script_line(node);
        let f = fifo.get_or_insert_with(|| NotifyFifo {
            path: PathBuf::new(),
            owner: None,
            script: None,
            loc: node.loc().clone(),
        });
        f.script = script;
    }

    /// A FIFO's script without the FIFO is an error.
    pub(super) fn check_fifos(&mut self, g: &GlobalDefs) {
        for f in [&g.notify_fifo, &g.vrrp_notify_fifo].into_iter().flatten() {
            if f.path.as_os_str().is_empty() {
                self.diags
                    .error(&f.loc, "a notify FIFO script without its `notify_fifo`");
            }
        }
    }
}
