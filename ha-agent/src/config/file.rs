//! The whole file: its top-level blocks in order, and the checks that span blocks (names that
//! must resolve, VRIDs that must not collide).

use std::collections::HashMap;

use super::{
    bfd::BfdInstance,
    build::Builder,
    diag::{Diagnostics, Loc},
    garp_group::GarpGroup,
    global::GlobalDefs,
    instance::VrrpInstance,
    replication::MysqlReplication,
    script::VrrpScript,
    sync_group::SyncGroup,
    track_file::TrackFile,
    track_process::TrackProcess,
    tree::Node,
    witness::EtcdWitness,
};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub global: GlobalDefs,
    pub instances: Vec<VrrpInstance>,
    pub scripts: Vec<VrrpScript>,
    pub replications: Vec<MysqlReplication>,
    pub witnesses: Vec<EtcdWitness>,
    pub sync_groups: Vec<SyncGroup>,
    pub track_files: Vec<TrackFile>,
    /// `interface_up_down_delays`: interface → (down delay, up delay).
    pub link_delays: Vec<(String, std::time::Duration, std::time::Duration)>,
    pub garp_groups: Vec<GarpGroup>,
    pub track_processes: Vec<TrackProcess>,
    pub bfd_instances: Vec<BfdInstance>,
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
            "interface_up_down_delays" => {
                let delays = b.link_delays(node);
                config.link_delays.extend(delays);
            }
            "track_file" | "vrrp_track_file" => {
                if let Some(t) = b.track_file(node) {
                    config.track_files.push(t);
                }
            }
            "vrrp_sync_group" => {
                if let Some(g) = b.sync_group(node) {
                    config.sync_groups.push(g);
                }
            }
            "vrrp_track_process" => {
                if let Some(t) = b.track_process(node) {
                    config.track_processes.push(t);
                }
            }
            "bfd_instance" => {
                if let Some(b) = b.bfd_instance(node) {
                    config.bfd_instances.push(b);
                }
            }
            "garp_group" => {
                if let Some(g) = b.garp_group(node) {
                    config.garp_groups.push(g);
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
    b.check_fifos(&config.global);
    b.join_sync_groups(&mut config);
    b.check(&config);
    config
}

impl Builder<'_> {
    /// Checks across instances and scripts.
    fn check(&mut self, config: &Config) {
        let mut names: HashMap<&str, &Loc> = HashMap::new();
        let mut paced: HashMap<&str, &Loc> = HashMap::new();
        for group in &config.garp_groups {
            for interface in &group.interfaces {
                if let Some(first) = paced.insert(interface, &group.loc) {
                    self.diags.error(
                        &group.loc,
                        format!("interface {interface} is already in the garp_group at {first}"),
                    );
                }
            }
        }
        let mut sessions: HashMap<(std::net::IpAddr, Option<std::net::IpAddr>), &str> =
            HashMap::new();
        for b in &config.bfd_instances {
            if let Some(first) = names.insert(&b.name, &b.loc) {
                self.diags.error(
                    &b.loc,
                    format!("bfd_instance name {} already used at {first}", b.name),
                );
            }
            if let Some(other) = sessions.insert((b.neighbor, b.source), &b.name) {
                self.diags.error(
                    &b.loc,
                    format!(
                        "bfd_instance {}: bfd_instance {other} already runs a session to {}",
                        b.name, b.neighbor
                    ),
                );
            }
        }
        names.clear();
        // RFC 5798: each address family has its own VRID space.
        let mut vrids: HashMap<(&str, crate::vrrp::Family, u8), &str> = HashMap::new();
        let mut unicast_ttls: HashMap<(&str, Option<std::net::IpAddr>), (u8, &str)> =
            HashMap::new();
        for inst in &config.instances {
            if let Some(first) = names.insert(&inst.name, &inst.loc) {
                self.diags.error(
                    &inst.loc,
                    format!("instance name {} already used at {first}", inst.name),
                );
            }
            if inst.vrid != 0
                && !inst.interface.is_empty()
                && let Some(other) =
                    vrids.insert((&inst.interface, inst.family, inst.vrid), &inst.name)
            {
                self.diags.error(
                    &inst.loc,
                    format!(
                        "virtual_router_id {} on {} is already used by {} instance {other}",
                        inst.vrid,
                        inst.interface,
                        inst.family.as_str()
                    ),
                );
            }
            // Instances with unicast peers on one interface and source share a socket.
            if !inst.unicast_peers.is_empty()
                && let Some((ttl, other)) = unicast_ttls.insert(
                    (&inst.interface, inst.unicast_src_ip),
                    (inst.unicast_ttl, &inst.name),
                )
                && ttl != inst.unicast_ttl
            {
                self.diags.error(
                    &inst.loc,
                    format!(
                        "unicast_ttl {} differs from instance {other}'s {ttl}: instances with \
                         unicast peers on one interface and source share one socket",
                        inst.unicast_ttl
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
            for track in &inst.track_processes {
                if !config.track_processes.iter().any(|p| p.name == track.name) {
                    self.diags.error(
                        &track.loc,
                        format!(
                            "track_process {}: no vrrp_track_process of that name",
                            track.name
                        ),
                    );
                }
            }
            for track in &inst.track_bfds {
                let Some(b) = config.bfd_instances.iter().find(|b| b.name == track.name) else {
                    self.diags.error(
                        &track.loc,
                        format!("track_bfd {}: no bfd_instance of that name", track.name),
                    );
                    continue;
                };
                if inst.bfd_takeover && track.weight.unwrap_or(b.weight) == 0 {
                    self.diags.error(
                        &track.loc,
                        format!(
                            "track_bfd {}: with `bfd_takeover` a session needs a weight: \
                             unweighted, the backup would go FAULT when its master fails",
                            track.name
                        ),
                    );
                }
            }
            if inst.bfd_takeover && inst.track_bfds.is_empty() {
                self.diags.error(
                    &inst.loc,
                    format!(
                        "instance {}: `bfd_takeover` needs a `track_bfd` session to the peer",
                        inst.name
                    ),
                );
            }
            for track in &inst.track_files {
                if !config.track_files.iter().any(|f| f.name == track.name) {
                    self.diags.error(
                        &track.loc,
                        format!(
                            "track_file {}: no track_file block of that name",
                            track.name
                        ),
                    );
                }
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
