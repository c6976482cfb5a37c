//! The daemon's side of `vrrp_sync_group`: after every event of the loop, each group looks
//! at what its members did ([`crate::vrrp::sync_group`] decides), gives its orders, and
//! runs the group's notify scripts when the group's state changes.

use crate::{
    config::SyncGroup,
    ctl::status::SyncGroupStatus,
    vrrp::{
        fsm::{Instance, State},
        sync_group::{group_state, orders},
    },
};

use super::{
    Daemon,
    instance::Running,
    notify::{Event, Notice, Notifier},
    now,
};

/// Rounds of orders per pass: a member ordered to move makes the others move at most once
/// more; more would be a loop.
const ROUNDS: usize = 4;

pub(super) struct Group {
    cfg: SyncGroup,
    /// The members' indices in the daemon's instances.
    members: Vec<usize>,
    /// The state last announced.
    state: Option<State>,
    notifier: Notifier,
}

/// The groups of `configured` over `instances`, keeping what `old` groups of the same name
/// announced (a reload does not announce a state again).
pub(super) fn index(
    configured: &[SyncGroup],
    instances: &[Running],
    old: Vec<Group>,
) -> Vec<Group> {
    let mut old: Vec<Option<Group>> = old.into_iter().map(Some).collect();
    configured
        .iter()
        .map(|cfg| {
            let members = instances
                .iter()
                .enumerate()
                .filter(|(_, r)| r.cfg.sync_group.as_deref() == Some(cfg.name.as_str()))
                .map(|(i, _)| i)
                .collect();
            let kept = old
                .iter_mut()
                .find(|g| g.as_ref().is_some_and(|g| g.cfg.name == cfg.name))
                .and_then(Option::take);
            let (state, notifier) =
                kept.map_or((None, Notifier::default()), |g| (g.state, g.notifier));
            Group {
                cfg: cfg.clone(),
                members,
                state,
                notifier,
            }
        })
        .collect()
}

impl Daemon {
    /// Lets every group act on its members' transitions since the last pass.
    pub(super) async fn sync_groups(&mut self) {
        if self.groups.is_empty() {
            return;
        }
        let at = now();
        for g in 0..self.groups.len() {
            let Some(members) = self.groups.get(g).map(|g| g.members.clone()) else {
                continue;
            };
            for _ in 0..ROUNDS {
                let moved: Vec<_> = members
                    .iter()
                    .map(|&i| {
                        self.instances
                            .get_mut(i)
                            .map(|r| std::mem::take(&mut r.moved))
                            .unwrap_or_default()
                    })
                    .collect();
                let fsms = self.member_fsms(&members);
                let (orders, holds) = orders(&fsms, &moved);
                for (m, hold) in holds.into_iter().enumerate() {
                    let order = orders.iter().find(|(i, _)| *i == m).map(|(_, o)| *o);
                    if let Some(r) = members.get(m).and_then(|&i| self.instances.get_mut(i)) {
                        r.sync(order, hold, at, &self.world).await;
                    }
                }
                if orders.is_empty() {
                    break;
                }
            }
            self.announce(g);
        }
    }

    fn member_fsms(&self, members: &[usize]) -> Vec<&Instance> {
        members
            .iter()
            .filter_map(|&i| self.instances.get(i))
            .map(Running::fsm)
            .collect()
    }

    /// Runs the group's notify scripts if its state changed.
    fn announce(&mut self, g: usize) {
        let Some(group) = self.groups.get(g) else {
            return;
        };
        let fsms = self.member_fsms(&group.members);
        // Before every member has started, the group has no state to announce.
        if fsms.iter().any(|f| f.state() == State::Initialize) {
            return;
        }
        let state = group_state(&fsms);
        let (script_user, timeout) = (self.world.script_user.clone(), self.world.notify_timeout);
        let Some(group) = self.groups.get_mut(g) else {
            return;
        };
        if group.state == Some(state) {
            return;
        }
        tracing::info!(group = %group.cfg.name, %state, "sync group {}: {state}", group.cfg.name);
        group.state = Some(state);
        self.world.fifos.write(true, &group.cfg.name, state, 0);
        if group.cfg.notify != Default::default() {
            group.notifier.send(Event {
                group: true,
                what: Notice::Transition,
                name: group.cfg.name.clone(),
                state,
                priority: 0,
                scripts: group.cfg.notify.clone(),
                script_user,
                timeout,
            });
        }
    }

    /// `fifo_write_vrrp_states_on_reload`: every group's state again.
    pub(super) fn write_group_states(&self) {
        for g in &self.groups {
            if let Some(state) = g.state {
                self.world.fifos.write(true, &g.cfg.name, state, 0);
            }
        }
    }

    pub(super) fn sync_group_status(&self) -> Vec<SyncGroupStatus> {
        self.groups
            .iter()
            .map(|g| SyncGroupStatus {
                name: g.cfg.name.clone(),
                state: g.state.map_or_else(|| "INIT".to_owned(), |s| s.to_string()),
                members: g
                    .members
                    .iter()
                    .filter_map(|&i| self.instances.get(i))
                    .map(|r| r.cfg.name.clone())
                    .collect(),
                notify_runs: g.notifier.runs(),
            })
            .collect()
    }

    /// At exit: each group's `notify_stop` (the generic `notify` is not told STOP for a
    /// group, as in keepalived), then what is queued runs for up to `limit`.
    pub(super) async fn finish_group_notify(&mut self, limit: std::time::Duration) {
        let mut groups = std::mem::take(&mut self.groups);
        for g in &mut groups {
            if g.cfg.notify.stop.is_some() {
                g.notifier.send(Event {
                    group: true,
                    what: Notice::Transition,
                    name: g.cfg.name.clone(),
                    state: State::Initialize,
                    priority: 0,
                    scripts: crate::config::NotifyScripts {
                        stop: g.cfg.notify.stop.clone(),
                        ..Default::default()
                    },
                    script_user: self.world.script_user.clone(),
                    timeout: self.world.notify_timeout,
                });
            }
        }
        futures::future::join_all(groups.into_iter().map(|g| g.notifier.finish(limit))).await;
    }
}
