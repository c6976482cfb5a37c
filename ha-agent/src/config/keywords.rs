//! Keywords ha-agent does not read: each one gets a line saying what it means here.

use super::{build::Builder, tree::Node};

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
}
