//! `vrrp_sync_group NAME { group { INSTANCE ... } ... }`: instances that change state
//! together, with the group's own trackers and notify scripts.

use super::{
    build::Builder,
    diag::Loc,
    file::Config,
    instance::{NotifyScripts, TrackInterface, TrackScript},
    track_file::TrackFileRef,
    tree::Node,
};

#[derive(Clone, Debug, PartialEq)]
pub struct SyncGroup {
    pub name: String,
    pub loc: Loc,
    /// The member instances, by name.
    pub members: Vec<(String, Loc)>,
    /// Run on the group's transitions; `notify` gets `GROUP NAME STATE 0` appended.
    pub notify: NotifyScripts,
    /// Trackers of every member (added to each member's own).
    pub track_scripts: Vec<TrackScript>,
    pub track_interfaces: Vec<TrackInterface>,
    pub track_files: Vec<TrackFileRef>,
    pub track_processes: Vec<TrackFileRef>,
    pub track_bfds: Vec<TrackFileRef>,
    /// `sync_group_tracking_weight` (or the deprecated `global_tracking`): the members'
    /// trackers keep their weights. Without it every tracker of a member means FAULT, as in
    /// keepalived: members whose priorities moved apart could be master on different nodes.
    pub tracking_weight: bool,
    /// `notify_priority_changes`: the default of members that do not say.
    pub notify_priority_changes: Option<bool>,
}

impl Builder<'_> {
    pub(super) fn sync_group(&mut self, block: &Node) -> Option<SyncGroup> {
        let Some(name) = block.args.first() else {
            self.diags
                .error(block.loc(), "`vrrp_sync_group` needs a name");
            return None;
        };
        let mut g = SyncGroup {
            name: name.text.clone(),
            loc: block.loc().clone(),
            members: Vec::new(),
            notify: NotifyScripts::default(),
            track_scripts: Vec::new(),
            track_interfaces: Vec::new(),
            track_files: Vec::new(),
            track_processes: Vec::new(),
            track_bfds: Vec::new(),
            tracking_weight: false,
            notify_priority_changes: None,
        };
        for node in block.children() {
            match node.name() {
                "group" => g.members.extend(
                    node.children()
                        .iter()
                        .map(|c| (c.name().to_owned(), c.loc().clone())),
                ),
                "track_script" => g.track_scripts.extend(self.track_scripts(node)),
                "track_interface" => g.track_interfaces.extend(self.track_interfaces(node)),
                "track_file" => g.track_files.extend(self.track_file_refs(node)),
                "track_process" => g.track_processes.extend(self.track_file_refs(node)),
                "track_bfd" => g.track_bfds.extend(self.track_file_refs(node)),
                "sync_group_tracking_weight" => {
                    g.tracking_weight = self.bool_flag(node);
                }
                "notify_priority_changes" => {
                    g.notify_priority_changes = Some(self.bool_flag(node));
                }
                "global_tracking" => {
                    self.diags.warn(
                        node.loc(),
                        "`global_tracking` is deprecated (as in keepalived): read as \
                         `sync_group_tracking_weight`",
                    );
                    g.tracking_weight = true;
                }
                // An instance's event, not a group's.
                "notify_master_rx_lower_pri" | "notify_deleted" => {
                    self.unknown(node, "vrrp_sync_group")
                }
                _ if self.notify_keyword(node, &mut g.notify) => {}
                _ => self.unknown(node, "vrrp_sync_group"),
            }
        }
        match g.members.len() {
            0 => self.diags.error(
                block.loc(),
                format!("vrrp_sync_group {}: `group` has no instance", g.name),
            ),
            1 => self.diags.warn(
                block.loc(),
                format!(
                    "vrrp_sync_group {} has only one instance: probably not what you want",
                    g.name
                ),
            ),
            _ => {}
        }
        Some(g)
    }

    /// Makes each group's members know it: the group's trackers join theirs and, unless
    /// the group keeps weights, every weighted tracker of a member means FAULT instead.
    pub(super) fn join_sync_groups(&mut self, config: &mut Config) {
        for g in &config.sync_groups {
            for (member, loc) in &g.members {
                let Some(inst) = config.instances.iter_mut().find(|i| &i.name == member) else {
                    self.diags.error(
                        loc,
                        format!("vrrp_sync_group {}: no vrrp_instance {member}", g.name),
                    );
                    continue;
                };
                if let Some(other) = &inst.sync_group {
                    self.diags.error(
                        loc,
                        format!(
                            "vrrp_sync_group {}: instance {member} is already in group {other}",
                            g.name
                        ),
                    );
                    continue;
                }
                inst.sync_group = Some(g.name.clone());
                inst.track_scripts.extend(g.track_scripts.iter().cloned());
                inst.track_interfaces
                    .extend(g.track_interfaces.iter().cloned());
                inst.track_files.extend(g.track_files.iter().cloned());
                inst.track_processes
                    .extend(g.track_processes.iter().cloned());
                inst.track_bfds.extend(g.track_bfds.iter().cloned());
                // keepalived: the instance's own setting, else the group's, else the global.
                if let Some(changes) = g.notify_priority_changes
                    && !inst.notify_priority_changes_own
                {
                    inst.notify_priority_changes = changes;
                }
                if g.tracking_weight {
                    continue;
                }
                for t in &mut inst.track_scripts {
                    let own = config.scripts.iter().find(|s| s.name == t.name);
                    let weight = t.weight.or(own.map(|s| s.weight)).unwrap_or(0);
                    if weight != 0 {
                        self.diags.warn(
                            &t.loc,
                            format!(
                                "track_script {}: weight ignored in sync group {} (a failure \
                                 means FAULT; `sync_group_tracking_weight` keeps weights)",
                                t.name, g.name
                            ),
                        );
                    }
                    t.weight = Some(0);
                }
                for t in &mut inst.track_files {
                    let own = config.track_files.iter().find(|f| f.name == t.name);
                    if t.weight.or(own.map(|f| f.weight)).unwrap_or(0) != 0 {
                        self.diags.warn(
                            &t.loc,
                            format!(
                                "track_file {}: weight ignored in sync group {} (a non-zero \
                                 value means FAULT; `sync_group_tracking_weight` keeps weights)",
                                t.name, g.name
                            ),
                        );
                    }
                    t.weight = Some(0);
                }
                for t in &mut inst.track_processes {
                    let own = config.track_processes.iter().find(|p| p.name == t.name);
                    if t.weight.or(own.map(|p| p.weight)).unwrap_or(0) != 0 {
                        self.diags.warn(
                            &t.loc,
                            format!(
                                "track_process {}: weight ignored in sync group {} (too few \
                                 processes means FAULT; `sync_group_tracking_weight` keeps \
                                 weights)",
                                t.name, g.name
                            ),
                        );
                    }
                    t.weight = Some(0);
                }
                for t in &mut inst.track_bfds {
                    let own = config.bfd_instances.iter().find(|b| b.name == t.name);
                    if t.weight.or(own.map(|b| b.weight)).unwrap_or(0) != 0 {
                        self.diags.warn(
                            &t.loc,
                            format!(
                                "track_bfd {}: weight ignored in sync group {} (a session \
                                 down means FAULT; `sync_group_tracking_weight` keeps weights)",
                                t.name, g.name
                            ),
                        );
                    }
                    t.weight = Some(0);
                }
                for t in inst.track_interfaces.iter_mut().filter(|t| t.weight != 0) {
                    self.diags.warn(
                        &t.loc,
                        format!(
                            "track_interface {}: weight ignored in sync group {} (down means \
                             FAULT; `sync_group_tracking_weight` keeps weights)",
                            t.name, g.name
                        ),
                    );
                    t.weight = 0;
                }
            }
        }
    }
}
