//! keepalived's `vrrp_sync_group`, sans-IO: the members of a group change state together.
//!
//! - A member that becomes MASTER takes the BACKUP members with it.
//! - A member that leaves MASTER for BACKUP takes the MASTER members with it (they resign
//!   with priority 0, so the peer's members take over after Skew_Time).
//! - A member's takeover waits until every other member wants it too (or is MASTER): a
//!   member that still hears its master keeps the group BACKUP instead of splitting it
//!   across the nodes ([`Instance::set_group_hold`]).
//! - FAULT is shared through the trackers: a fault of any member is every member's fault
//!   (the daemon adds it up), so the group goes to FAULT together.

use super::fsm::{Instance, Reason, State};

/// A transition a member made since the group last looked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moved {
    pub from: State,
    pub to: State,
    pub reason: Reason,
}

/// What the group tells one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Master,
    Backup,
}

/// The group's state as keepalived reports it: MASTER when every member is, FAULT when
/// any is, else BACKUP.
pub fn group_state(members: &[&Instance]) -> State {
    if members.iter().any(|m| m.state() == State::Fault) {
        State::Fault
    } else if members.iter().all(|m| m.state() == State::Master) {
        State::Master
    } else {
        State::Backup
    }
}

/// What each member must do after the transitions `moved` (one list per member, in the
/// members' order; the group's own orders are not in them), and the hold each member's
/// takeover is under from now on.
pub fn orders(members: &[&Instance], moved: &[Vec<Moved>]) -> (Vec<(usize, Order)>, Vec<bool>) {
    let own = |m: &Moved| m.reason != Reason::SyncGroup;
    let any_moved = |f: &dyn Fn(&Moved) -> bool| moved.iter().flatten().any(|m| own(m) && f(m));
    let state = |i: usize| members.get(i).map(|m| m.state());
    let ready = |i: usize| {
        members
            .get(i)
            .is_some_and(|m| m.state() == State::Master || m.wants_master())
    };
    let mut orders = Vec::new();
    // Backup first: between a member going up and one going down, keepalived prefers
    // BACKUP (a group that thrashes between nodes is worse than one that waits).
    if any_moved(&|m| m.from == State::Master && m.to == State::Backup) {
        orders.extend(
            (0..members.len())
                .filter(|&i| state(i) == Some(State::Master))
                .map(|i| (i, Order::Backup)),
        );
    } else if any_moved(&|m| m.to == State::Master) {
        orders.extend(
            (0..members.len())
                .filter(|&i| state(i) == Some(State::Backup))
                .map(|i| (i, Order::Master)),
        );
    } else if (0..members.len()).all(ready) && members.iter().any(|m| m.wants_master()) {
        orders.extend(
            (0..members.len())
                .filter(|&i| members.get(i).is_some_and(|m| m.wants_master()))
                .map(|i| (i, Order::Master)),
        );
    }
    let holds = (0..members.len())
        .map(|i| !(0..members.len()).filter(|&j| j != i).all(ready))
        .collect();
    (orders, holds)
}

#[cfg(test)]
mod tests;
