//! Every keyword of keepalived.conf(5) on the VRRP side and in `global_defs`, with what it
//! means here. The builder reads the supported ones; this table gives each of the others a
//! line at `file:line`, and `docs/keywords.md` is generated from it.

use super::{build::Builder, tree::Node};

/// What ha-agent does with a keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Read and acted on.
    Supported,
    /// Read and ignored, for the reason given: nothing the pair does on failover depends on it.
    Ignored(&'static str),
    /// Not implemented, and ignoring it would change what the pair does (the text says how):
    /// an error unless the user allows it explicitly (`--allow-unsupported`).
    Unsupported(&'static str),
}

use Status::{Ignored, Supported, Unsupported};

/// One keyword in one block (`top level` for the blocks themselves).
pub struct Keyword {
    pub block: &'static str,
    pub name: &'static str,
    pub status: Status,
}

const fn kw(block: &'static str, name: &'static str, status: Status) -> Keyword {
    Keyword {
        block,
        name,
        status,
    }
}

const TOP: &str = "top level";
const GLOBAL: &str = "global_defs";
const INSTANCE: &str = "vrrp_instance";
const SCRIPT: &str = "vrrp_script";
const SYNC: &str = "vrrp_sync_group";
const FILE: &str = "track_file";

const LVS_TEXT: &str = "LVS load balancing is not part of ha-agent";
const LVS: Status = Ignored(LVS_TEXT);
const NO_MAIL: Status = Ignored("no e-mail alerts: alert on the notify scripts or on /metrics");
const NO_SNMP: Status = Ignored("no SNMP: state is in `status --json` and /metrics");
const ONE_PROCESS: Status = Ignored("ha-agent is one process with its own name and pid");
const SCHEDULING: Status = Ignored(
    "scheduling is ha-agent's own: the loop runs SCHED_RR with memory locked by default \
     (README: Real-time scheduling)",
);
const BUFFERS: Status = Ignored("socket buffer sizes are ha-agent's own");
const FIREWALL: Status = Ignored(
    "ha-agent installs no firewall rules: `no_accept` (strict mode's default) drops traffic \
     to the VIPs in the XDP program",
);
const NETLINK_LINKS: Status = Ignored("link state always comes from netlink link events");
const NO_SCHEDULED_RELOAD: Status = Ignored("no scheduled reloads: send SIGHUP when needed");
const NOT_COPIED: Status = Ignored("the file is read once per load, not copied");

/// keepalived.conf(5) of keepalived 2.2.7, VRRP side and `global_defs`, plus ha-agent's
/// own extensions.
const KEYWORDS: &[Keyword] = &[
    kw(TOP, "global_defs", Supported),
    kw(TOP, "vrrp_instance", Supported),
    kw(TOP, "vrrp_script", Supported),
    kw(TOP, "mysql_replication", Supported),
    kw(TOP, "etcd_witness", Supported),
    kw(TOP, "include", Supported),
    kw(TOP, "vrrp_sync_group", Supported),
    kw(TOP, "garp_group", Supported),
    kw(TOP, "vrrp_track_file", Supported),
    kw(TOP, "track_file", Supported),
    kw(TOP, "vrrp_track_process", Supported),
    kw(TOP, "bfd_instance", Supported),
    kw(
        TOP,
        "track_group",
        Unsupported("static addresses are not tracked: none are added"),
    ),
    kw(
        TOP,
        "static_ipaddress",
        Unsupported("these addresses are not added"),
    ),
    kw(
        TOP,
        "static_routes",
        Unsupported("these routes are not added"),
    ),
    kw(
        TOP,
        "static_rules",
        Unsupported("these rules are not added"),
    ),
    kw(TOP, "linkbeat_interfaces", NETLINK_LINKS),
    kw(TOP, "interface_up_down_delays", Supported),
    kw(TOP, "virtual_server", LVS),
    kw(TOP, "virtual_server_group", LVS),
    kw(GLOBAL, "router_id", Supported),
    kw(GLOBAL, "script_user", Supported),
    kw(GLOBAL, "enable_script_security", Supported),
    kw(GLOBAL, "vrrp_version", Supported),
    kw(GLOBAL, "vrrp_garp_master_delay", Supported),
    kw(GLOBAL, "vrrp_garp_master_repeat", Supported),
    kw(GLOBAL, "vrrp_garp_master_refresh", Supported),
    kw(GLOBAL, "vrrp_garp_master_refresh_repeat", Supported),
    kw(GLOBAL, "vrrp_garp_interval", Supported),
    kw(GLOBAL, "vrrp_gna_interval", Supported),
    kw(GLOBAL, "vrrp_min_garp", Supported),
    kw(GLOBAL, "vrrp_check_unicast_src", Supported),
    kw(GLOBAL, "vrrp_skip_check_adv_addr", Supported),
    kw(GLOBAL, "vrrp_strict", Supported),
    kw(GLOBAL, "vrrp_startup_delay", Supported),
    kw(GLOBAL, "notify_timeout", Supported),
    kw(
        GLOBAL,
        "net_namespace",
        Unsupported(
            "ha-agent runs in the namespace it is started in (start it with `ip netns exec`)",
        ),
    ),
    kw(GLOBAL, "net_namespace_ipvs", LVS),
    kw(GLOBAL, "namespace_with_ipsets", FIREWALL),
    kw(
        GLOBAL,
        "instance",
        Ignored("files are per --state-dir, not per instance name"),
    ),
    kw(
        GLOBAL,
        "use_pid_dir",
        Ignored("files are under --state-dir"),
    ),
    kw(GLOBAL, "linkbeat_use_polling", NETLINK_LINKS),
    kw(GLOBAL, "child_wait_time", ONE_PROCESS),
    kw(GLOBAL, "tmp_config_directory", NOT_COPIED),
    kw(GLOBAL, "config_save_dir", NOT_COPIED),
    kw(GLOBAL, "process_names", ONE_PROCESS),
    kw(GLOBAL, "process_name", ONE_PROCESS),
    kw(GLOBAL, "vrrp_process_name", ONE_PROCESS),
    kw(GLOBAL, "checker_process_name", ONE_PROCESS),
    kw(GLOBAL, "bfd_process_name", ONE_PROCESS),
    kw(GLOBAL, "startup_script", Supported),
    kw(GLOBAL, "startup_script_timeout", Supported),
    kw(GLOBAL, "shutdown_script", Supported),
    kw(GLOBAL, "shutdown_script_timeout", Supported),
    kw(GLOBAL, "notification_email", NO_MAIL),
    kw(GLOBAL, "notification_email_from", NO_MAIL),
    kw(GLOBAL, "smtp_server", NO_MAIL),
    kw(GLOBAL, "smtp_helo_name", NO_MAIL),
    kw(GLOBAL, "smtp_connect_timeout", NO_MAIL),
    kw(GLOBAL, "smtp_alert", NO_MAIL),
    kw(GLOBAL, "smtp_alert_vrrp", NO_MAIL),
    kw(GLOBAL, "smtp_alert_checker", NO_MAIL),
    kw(GLOBAL, "no_email_faults", NO_MAIL),
    kw(GLOBAL, "checker_log_all_failures", LVS),
    kw(GLOBAL, "vrrp_mcast_group4", Supported),
    kw(GLOBAL, "vrrp_mcast_group6", Supported),
    kw(
        GLOBAL,
        "default_interface",
        Ignored("used only by static addresses, which are not added"),
    ),
    kw(GLOBAL, "lvs_sync_daemon", LVS),
    kw(GLOBAL, "lvs_timeouts", LVS),
    kw(GLOBAL, "lvs_flush", LVS),
    kw(GLOBAL, "lvs_flush_on_stop", LVS),
    kw(GLOBAL, "vrrp_garp_lower_prio_delay", Supported),
    kw(GLOBAL, "vrrp_garp_lower_prio_repeat", Supported),
    kw(GLOBAL, "vrrp_down_timer_adverts", Supported),
    kw(GLOBAL, "vrrp_garp_extra_if", Supported),
    kw(GLOBAL, "vrrp_lower_prio_no_advert", Supported),
    kw(GLOBAL, "vrrp_higher_prio_send_advert", Supported),
    kw(GLOBAL, "nftables", FIREWALL),
    kw(GLOBAL, "nftables_priority", FIREWALL),
    kw(GLOBAL, "nftables_counters", FIREWALL),
    kw(GLOBAL, "nftables_ifindex", FIREWALL),
    kw(GLOBAL, "nftables_ipvs", LVS),
    kw(GLOBAL, "nftables_ipvs_priority", LVS),
    kw(GLOBAL, "nftables_ipvs_start_fwmark", LVS),
    kw(GLOBAL, "vrrp_iptables", FIREWALL),
    kw(GLOBAL, "vrrp_ipsets", FIREWALL),
    kw(GLOBAL, "vrrp_notify_priority_changes", Supported),
    kw(GLOBAL, "max_auto_priority", SCHEDULING),
    kw(GLOBAL, "min_auto_priority_delay", SCHEDULING),
    kw(GLOBAL, "vrrp_priority", SCHEDULING),
    kw(GLOBAL, "checker_priority", LVS),
    kw(GLOBAL, "bfd_priority", SCHEDULING),
    kw(GLOBAL, "vrrp_no_swap", SCHEDULING),
    kw(GLOBAL, "checker_no_swap", LVS),
    kw(GLOBAL, "bfd_no_swap", SCHEDULING),
    kw(GLOBAL, "vrrp_cpu_affinity", SCHEDULING),
    kw(GLOBAL, "checker_cpu_affinity", LVS),
    kw(GLOBAL, "bfd_cpu_affinity", SCHEDULING),
    kw(GLOBAL, "vrrp_rt_priority", SCHEDULING),
    kw(GLOBAL, "checker_rt_priority", LVS),
    kw(GLOBAL, "bfd_rt_priority", SCHEDULING),
    kw(GLOBAL, "vrrp_rlimit_rttime", SCHEDULING),
    kw(GLOBAL, "checker_rlimit_rttime", LVS),
    kw(GLOBAL, "bfd_rlimit_rttime", SCHEDULING),
    kw(GLOBAL, "snmp_socket", NO_SNMP),
    kw(GLOBAL, "enable_snmp_vrrp", NO_SNMP),
    kw(GLOBAL, "enable_snmp_checker", NO_SNMP),
    kw(GLOBAL, "enable_snmp_rfc", NO_SNMP),
    kw(GLOBAL, "enable_snmp_rfcv2", NO_SNMP),
    kw(GLOBAL, "enable_snmp_rfcv3", NO_SNMP),
    kw(GLOBAL, "enable_traps", NO_SNMP),
    kw(
        GLOBAL,
        "enable_dbus",
        Ignored("no D-Bus: state is on the status socket and over HTTP"),
    ),
    kw(GLOBAL, "dbus_service_name", Ignored("no D-Bus")),
    kw(GLOBAL, "notify_fifo", Supported),
    kw(GLOBAL, "notify_fifo_script", Supported),
    kw(GLOBAL, "vrrp_notify_fifo", Supported),
    kw(GLOBAL, "vrrp_notify_fifo_script", Supported),
    kw(GLOBAL, "lvs_notify_fifo", LVS),
    kw(GLOBAL, "lvs_notify_fifo_script", LVS),
    kw(GLOBAL, "fifo_write_vrrp_states_on_reload", Supported),
    kw(
        GLOBAL,
        "dynamic_interfaces",
        Unsupported("an instance whose interface is missing at start is an error, not waited for"),
    ),
    kw(GLOBAL, "vrrp_netlink_cmd_rcv_bufs", BUFFERS),
    kw(GLOBAL, "vrrp_netlink_cmd_rcv_bufs_force", BUFFERS),
    kw(GLOBAL, "vrrp_netlink_monitor_rcv_bufs", BUFFERS),
    kw(GLOBAL, "vrrp_netlink_monitor_rcv_bufs_force", BUFFERS),
    kw(GLOBAL, "lvs_netlink_cmd_rcv_bufs", LVS),
    kw(GLOBAL, "lvs_netlink_cmd_rcv_bufs_force", LVS),
    kw(GLOBAL, "lvs_netlink_monitor_rcv_bufs", LVS),
    kw(GLOBAL, "lvs_netlink_monitor_rcv_bufs_force", LVS),
    kw(GLOBAL, "process_monitor_rcv_bufs", BUFFERS),
    kw(GLOBAL, "process_monitor_rcv_bufs_force", BUFFERS),
    kw(GLOBAL, "vrrp_rx_bufs_policy", BUFFERS),
    kw(GLOBAL, "vrrp_rx_bufs_multiplier", BUFFERS),
    kw(GLOBAL, "rs_init_notifies", LVS),
    kw(GLOBAL, "no_checker_emails", LVS),
    kw(
        GLOBAL,
        "umask",
        Ignored("ha-agent's files have fixed modes (state directory 0700)"),
    ),
    kw(
        GLOBAL,
        "log_unknown_vrids",
        Ignored("adverts for VRIDs not configured are dropped unlogged"),
    ),
    kw(
        GLOBAL,
        "vmac_prefix",
        Unsupported(
            "VMAC interfaces are named vrrp.VRID (or as `use_vmac` names them), not with this prefix",
        ),
    ),
    kw(
        GLOBAL,
        "vmac_addr_prefix",
        Unsupported("the VMAC is always 00:00:5e:00:01:VRID (IPv6: 00:00:5e:00:02:VRID)"),
    ),
    kw(
        GLOBAL,
        "random_seed",
        Ignored("nothing in ha-agent is random"),
    ),
    kw(
        GLOBAL,
        "reload_check_config",
        Ignored("every reload is checked: one with errors keeps the running configuration"),
    ),
    kw(
        GLOBAL,
        "include_check",
        Ignored("every reload is checked in full"),
    ),
    kw(GLOBAL, "reload_time_file", NO_SCHEDULED_RELOAD),
    kw(GLOBAL, "reload_repeat", NO_SCHEDULED_RELOAD),
    kw(GLOBAL, "reload_file", NO_SCHEDULED_RELOAD),
    kw(
        GLOBAL,
        "data_use_instance",
        Ignored("keepalived's data dump (SIGUSR1) is `status`"),
    ),
    kw(INSTANCE, "state", Supported),
    kw(INSTANCE, "interface", Supported),
    kw(INSTANCE, "virtual_router_id", Supported),
    kw(INSTANCE, "priority", Supported),
    kw(INSTANCE, "advert_int", Supported),
    kw(INSTANCE, "version", Supported),
    kw(INSTANCE, "authentication", Supported),
    kw(INSTANCE, "virtual_ipaddress", Supported),
    kw(INSTANCE, "nopreempt", Supported),
    kw(INSTANCE, "preempt", Supported),
    kw(INSTANCE, "preempt_delay", Supported),
    kw(INSTANCE, "check_unicast_src", Supported),
    kw(INSTANCE, "unicast_src_ip", Supported),
    kw(INSTANCE, "unicast_peer", Supported),
    kw(INSTANCE, "garp_master_delay", Supported),
    kw(INSTANCE, "garp_master_repeat", Supported),
    kw(INSTANCE, "garp_master_refresh", Supported),
    kw(INSTANCE, "garp_master_refresh_repeat", Supported),
    kw(INSTANCE, "track_script", Supported),
    kw(INSTANCE, "track_interface", Supported),
    kw(INSTANCE, "notify_master", Supported),
    kw(INSTANCE, "notify_backup", Supported),
    kw(INSTANCE, "notify_fault", Supported),
    kw(INSTANCE, "notify_stop", Supported),
    kw(INSTANCE, "notify", Supported),
    kw(INSTANCE, "notify_deleted", Supported),
    kw(INSTANCE, "accept", Supported),
    kw(INSTANCE, "fast_preempt", Supported),
    kw(INSTANCE, "bfd_takeover", Supported),
    kw(INSTANCE, "track_replication", Supported),
    kw(INSTANCE, "witness", Supported),
    kw(
        INSTANCE,
        "vrf",
        Unsupported("adverts and VIPs are not placed in the VRF"),
    ),
    kw(INSTANCE, "use_vmac", Supported),
    kw(
        INSTANCE,
        "use_vmac_addr",
        Unsupported("the VMAC is not set on the interface itself: `use_vmac` puts it on a macvlan"),
    ),
    kw(INSTANCE, "vmac_xmit_base", Supported),
    kw(
        INSTANCE,
        "use_ipvlan",
        Unsupported("no ipvlan is created: VIPs go on the interface"),
    ),
    kw(INSTANCE, "native_ipv6", Supported),
    kw(INSTANCE, "dont_track_primary", Supported),
    kw(INSTANCE, "track_file", Supported),
    kw(INSTANCE, "track_process", Supported),
    kw(INSTANCE, "track_bfd", Supported),
    kw(INSTANCE, "mcast_src_ip", Supported),
    kw(INSTANCE, "mcast_dst_ip", Supported),
    kw(
        INSTANCE,
        "track_src_ip",
        Unsupported("the source address is not tracked"),
    ),
    kw(INSTANCE, "unicast_fault_no_peer", Supported),
    kw(INSTANCE, "unicast_ttl", Supported),
    kw(
        INSTANCE,
        "old_unicast_checksum",
        Unsupported(
            "unicast VRRPv3 checksums follow the RFC: keepalived peers before 2.0 reject them",
        ),
    ),
    kw(INSTANCE, "garp_lower_prio_delay", Supported),
    kw(INSTANCE, "garp_lower_prio_repeat", Supported),
    kw(INSTANCE, "garp_extra_if", Supported),
    kw(INSTANCE, "down_timer_adverts", Supported),
    kw(INSTANCE, "lower_prio_no_advert", Supported),
    kw(INSTANCE, "higher_prio_send_advert", Supported),
    kw(INSTANCE, "virtual_ipaddress_excluded", Supported),
    kw(INSTANCE, "promote_secondaries", Supported),
    kw(INSTANCE, "virtual_routes", Supported),
    kw(INSTANCE, "virtual_rules", Supported),
    kw(INSTANCE, "no_accept", Supported),
    kw(INSTANCE, "skip_check_adv_addr", Supported),
    kw(INSTANCE, "strict_mode", Supported),
    kw(
        INSTANCE,
        "debug",
        Ignored("log detail is set with RUST_LOG"),
    ),
    kw(INSTANCE, "notify_master_rx_lower_pri", Supported),
    kw(INSTANCE, "notify_priority_changes", Supported),
    kw(INSTANCE, "smtp_alert", NO_MAIL),
    kw(INSTANCE, "kernel_rx_buf_size", BUFFERS),
    kw(INSTANCE, "linkbeat_use_polling", NETLINK_LINKS),
    kw(SCRIPT, "script", Supported),
    kw(SCRIPT, "interval", Supported),
    kw(SCRIPT, "timeout", Supported),
    kw(SCRIPT, "weight", Supported),
    kw(SCRIPT, "rise", Supported),
    kw(SCRIPT, "fall", Supported),
    kw(SCRIPT, "user", Supported),
    kw(SCRIPT, "init_fail", Supported),
    kw(FILE, "file", Supported),
    kw(FILE, "weight", Supported),
    kw(FILE, "init_file", Supported),
    kw(SYNC, "group", Supported),
    kw(SYNC, "track_script", Supported),
    kw(SYNC, "track_interface", Supported),
    kw(SYNC, "notify_master", Supported),
    kw(SYNC, "notify_backup", Supported),
    kw(SYNC, "notify_fault", Supported),
    kw(SYNC, "notify_stop", Supported),
    kw(SYNC, "notify", Supported),
    kw(
        SYNC,
        "notify_deleted",
        Ignored(
            "keepalived 2.2.7's own parser does not take it in a sync group (its manual lists \
             it there): set `notify_deleted` in each instance",
        ),
    ),
    kw(SYNC, "sync_group_tracking_weight", Supported),
    kw(SYNC, "global_tracking", Supported),
    kw(SYNC, "track_file", Supported),
    kw(SYNC, "track_process", Supported),
    kw(SYNC, "track_bfd", Supported),
    kw(SYNC, "notify_priority_changes", Supported),
    kw(SYNC, "smtp_alert", NO_MAIL),
];

/// The table's entry for `name` in `block`.
fn lookup(block: &str, name: &str) -> Option<&'static Keyword> {
    KEYWORDS.iter().find(|k| k.block == block && k.name == name)
}

impl Builder<'_> {
    /// A keyword the block's reader does not handle: what it means here, at its line.
    pub(super) fn unknown(&mut self, node: &Node, block: &str) {
        let name = node.name();
        match lookup(block, name).map(|k| k.status) {
            Some(Ignored(LVS_TEXT)) => self
                .diags
                .warn(node.loc(), format!("`{name}`: {LVS_TEXT}: ignored")),
            Some(Ignored(reason)) => self
                .diags
                .warn(node.loc(), format!("`{name}` is ignored: {reason}")),
            Some(Unsupported(meaning)) => self.diags.unsupported(
                node.loc(),
                format!("`{name}` is not supported by ha-agent: {meaning}"),
            ),
            // A supported keyword read in a block that does not take it.
            Some(Supported) | None => self.diags.warn(
                node.loc(),
                format!("unknown keyword `{name}` in {block}; ignored"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Severity, parse_str};

    /// `docs/keywords.md`: the table as a page.
    fn markdown() -> String {
        let mut out = String::from(
            "# keepalived.conf keywords in ha-agent\n\n\
             Generated from `ha-agent/src/config/keywords.rs` (do not edit: `HA_BLESS=1 cargo \
             test -p ha-agent --lib keywords` rewrites it; the test fails while it differs). \
             Every keyword of keepalived.conf(5) (keepalived 2.2.7) on the VRRP side and in \
             `global_defs`, and ha-agent's own extensions, with what ha-agent does with it:\n\n\
             - **supported**: read and acted on;\n\
             - **ignored**: accepted with a warning at `file:line`, for the reason given: \
             nothing the pair does on failover depends on it here;\n\
             - **not supported**: ignoring it would change what the pair does (the table says \
             how), so `check-config` and `run` report it as an error at `file:line`; \
             `--allow-unsupported` turns those errors into warnings for a user who accepts the \
             difference.\n\n\
             A keyword not in the table is warned about as unknown. The LVS side of keepalived \
             (`virtual_server` and everything in it) is not part of ha-agent: each such block \
             gets one warning line.\n",
        );
        let mut block = "";
        for k in KEYWORDS {
            if k.block != block {
                block = k.block;
                out.push_str(&format!(
                    "\n## {block}\n\n| keyword | status | what it means here |\n|---|---|---|\n"
                ));
            }
            let (status, why) = match k.status {
                Supported => ("supported", ""),
                Ignored(why) => ("ignored", why),
                Unsupported(why) => ("**not supported**", why),
            };
            out.push_str(&format!("| `{}` | {status} | {why} |\n", k.name));
        }
        out
    }

    #[test]
    fn docs_keywords_md_is_generated_from_the_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/keywords.md");
        let page = markdown();
        if std::env::var_os("HA_BLESS").is_some() {
            std::fs::write(path, &page).unwrap();
        }
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == page,
            "docs/keywords.md differs from the table: HA_BLESS=1 cargo test -p ha-agent --lib keywords"
        );
    }

    /// The keyword, with a value, in a file that has its block.
    fn file_with(k: &Keyword) -> String {
        let line = format!(" {} 1\n", k.name);
        match k.block {
            TOP => line,
            GLOBAL => format!("global_defs {{\n{line}}}\n"),
            INSTANCE => {
                format!("vrrp_instance V {{\n interface eth0\n virtual_router_id 1\n{line}}}\n")
            }
            SCRIPT => format!("vrrp_script s {{\n script /bin/true\n{line}}}\n"),
            FILE => format!("track_file f {{\n file /tmp/f\n{line}}}\n"),
            SYNC => format!(
                "vrrp_instance V {{\n interface eth0\n virtual_router_id 1\n}}\n\
                 vrrp_sync_group G {{\n group {{\n V\n }}\n{line}}}\n"
            ),
            other => panic!("no file for block {other}"),
        }
    }

    #[test]
    fn every_keyword_gets_the_line_its_status_says() {
        // `include` is read by the lexer, before any block.
        for k in KEYWORDS.iter().filter(|k| k.name != "include") {
            let loaded = parse_str(&file_with(k), "t.conf");
            let about_it: Vec<_> = loaded
                .diagnostics
                .iter()
                .filter(|d| d.message.starts_with(&format!("`{}`", k.name)))
                .collect();
            let unknown = loaded
                .diagnostics
                .iter()
                .any(|d| d.message.starts_with("unknown keyword"));
            let right = match k.status {
                Supported => {
                    !unknown
                        && about_it
                            .iter()
                            .all(|d| !d.unsupported && !d.message.contains(" is ignored: "))
                }
                Ignored(why) => about_it.iter().any(|d| {
                    d.severity == Severity::Warning && !d.unsupported && d.message.contains(why)
                }),
                Unsupported(why) => about_it.iter().any(|d| {
                    d.severity == Severity::Error && d.unsupported && d.message.ends_with(why)
                }),
            };
            assert!(right, "{} in {}: {:?}", k.name, k.block, loaded.diagnostics);
        }
    }

    #[test]
    fn unsupported_keywords_are_errors_until_allowed() {
        let text = "static_ipaddress {\n 10.9.0.1/24 dev eth0\n}\n\
                    vrrp_instance V {\n interface eth0\n virtual_router_id 1\n use_ipvlan\n\
                    virtual_ipaddress {\n 10.0.0.1\n }\n}\n";
        let mut loaded = parse_str(text, "t.conf");
        let lines: Vec<String> = loaded.diagnostics.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            lines,
            [
                format!(
                    "t.conf:1: error: `static_ipaddress` is not supported by ha-agent: {}",
                    "these addresses are not added"
                ),
                format!(
                    "t.conf:7: error: `use_ipvlan` is not supported by ha-agent: {}",
                    "no ipvlan is created: VIPs go on the interface"
                ),
            ]
        );
        loaded.diagnostics.allow_unsupported();
        assert!(!loaded.diagnostics.has_errors());
        assert_eq!(loaded.diagnostics.warning_count(), 2);
        assert!(
            loaded
                .diagnostics
                .iter()
                .all(|d| d.severity == Severity::Warning
                    && d.message.ends_with("(allowed by --allow-unsupported)"))
        );
    }

    #[test]
    fn an_lvs_block_is_one_line() {
        let text = "virtual_server 10.0.0.1 80 {\n delay_loop 6\n lb_algo rr\n\
                    real_server 10.0.0.2 80 {\n weight 1\n TCP_CHECK {\n connect_timeout 3\n }\n }\n}\n";
        let loaded = parse_str(text, "t.conf");
        let lines: Vec<String> = loaded.diagnostics.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            lines,
            [
                "t.conf:1: warning: `virtual_server`: LVS load balancing is not part of ha-agent: ignored"
            ]
        );
    }
}
