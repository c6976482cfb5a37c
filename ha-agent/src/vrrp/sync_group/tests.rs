//! Two members of a group on one node, under a virtual clock.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use super::*;
use crate::vrrp::{
    Version,
    fsm::{Action, Params, Received, Time},
};

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 2, 12));

/// VRRPv3, priority 100, no second GARP burst.
fn params(vrid: u8, advert_int_cs: u16) -> Params {
    Params {
        vrid,
        garp_delay: Duration::ZERO,
        ..crate::vrrp::fsm::tests::params(Version::V3, 100, advert_int_cs)
    }
}

/// A group of instances on one node, the daemon's part of the work included: timers fired
/// in order, then the group's orders applied until it is settled.
struct Group {
    members: Vec<Instance>,
    now: Time,
    /// Every transition, with the member's index.
    log: Vec<(Time, usize, Moved)>,
    /// Adverts each member sent (priority).
    sent: Vec<Vec<u8>>,
}

impl Group {
    fn started(members: Vec<Params>) -> Self {
        let n = members.len();
        let mut g = Self {
            members: members.into_iter().map(Instance::new).collect(),
            now: Duration::ZERO,
            log: Vec::new(),
            sent: vec![Vec::new(); n],
        };
        for m in &mut g.members {
            m.start(Duration::ZERO);
        }
        g.settle();
        g
    }

    /// Drains every member's actions, then applies the group's orders until none are left.
    fn settle(&mut self) {
        for _ in 0..4 {
            let moved = self.drain();
            let views: Vec<&Instance> = self.members.iter().collect();
            let (orders, holds) = orders(&views, &moved);
            for (m, hold) in self.members.iter_mut().zip(holds) {
                m.set_group_hold(hold);
            }
            if orders.is_empty() {
                return;
            }
            for (i, order) in orders {
                match order {
                    Order::Master => self.members[i].sync_master(self.now),
                    Order::Backup => self.members[i].sync_backup(self.now),
                }
            }
        }
        panic!("the group did not settle");
    }

    fn drain(&mut self) -> Vec<Vec<Moved>> {
        let mut moved = vec![Vec::new(); self.members.len()];
        for (i, m) in self.members.iter_mut().enumerate() {
            while let Some(action) = m.poll_action() {
                match action {
                    Action::Transition { from, to, reason } => {
                        let mv = Moved { from, to, reason };
                        self.log.push((self.now, i, mv));
                        moved[i].push(mv);
                    }
                    Action::SendAdvert { priority } => self.sent[i].push(priority),
                    _ => {}
                }
            }
        }
        moved
    }

    /// Advances to `t`: each due timer in order, the group settled after each.
    fn run_until(&mut self, t: Time) {
        loop {
            let next = self.members.iter().filter_map(|m| m.poll_timeout()).min();
            match next {
                Some(at) if at <= t => {
                    self.now = at;
                    for m in &mut self.members {
                        if m.poll_timeout().is_some_and(|due| due <= at) {
                            m.handle_timeout(at);
                        }
                    }
                    self.settle();
                }
                _ => break,
            }
        }
        self.now = t;
    }

    fn advert(&mut self, member: usize, priority: u8) {
        let interval_cs = self.members[member].params().advert_int_cs;
        self.members[member].handle_advert(
            self.now,
            Received {
                from: PEER,
                priority,
                interval_cs,
            },
        );
        self.settle();
    }

    fn states(&self) -> Vec<State> {
        self.members.iter().map(|m| m.state()).collect()
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

#[test]
fn members_with_no_master_become_master_together_when_the_slowest_is_due() {
    // Master_Down_Interval at priority 100: 3 × 1 s + skew ≈ 3.6 s; 3 × 3 s + skew ≈ 10.8 s.
    let mut g = Group::started(vec![params(1, 100), params(2, 300)]);
    g.run_until(ms(10_000));
    assert_eq!(g.states(), [State::Backup, State::Backup]);
    assert!(g.members[0].wants_master() && !g.members[1].wants_master());
    g.run_until(ms(11_000));
    assert_eq!(g.states(), [State::Master, State::Master]);
    let masters: Vec<_> = g
        .log
        .iter()
        .filter(|(_, _, m)| m.to == State::Master)
        .collect();
    assert_eq!(masters.len(), 2);
    assert_eq!(
        masters[0].0, masters[1].0,
        "at the same instant: {masters:?}"
    );
}

#[test]
fn a_member_that_still_hears_its_master_keeps_the_group_backup() {
    let mut g = Group::started(vec![params(1, 100), params(2, 100)]);
    // Member 1's master keeps advertising; member 0's falls silent.
    let mut t = Duration::ZERO;
    while t < ms(20_000) {
        g.run_until(t);
        g.advert(1, 200);
        t += ms(1000);
    }
    assert_eq!(g.states(), [State::Backup, State::Backup]);
    assert!(g.members[0].wants_master());
    assert!(
        g.log.iter().all(|(_, _, m)| m.to == State::Backup),
        "{:?}",
        g.log
    );
    // Once member 1's master falls silent too, both take over together.
    g.run_until(ms(25_000));
    assert_eq!(g.states(), [State::Master, State::Master]);
}

#[test]
fn a_member_yielding_to_a_better_master_takes_the_group_to_backup() {
    let mut g = Group::started(vec![params(1, 100), params(2, 100)]);
    g.run_until(ms(4000));
    assert_eq!(g.states(), [State::Master, State::Master]);
    g.advert(0, 200);
    assert_eq!(g.states(), [State::Backup, State::Backup]);
    let last = g.log.last().unwrap();
    assert_eq!((last.1, last.2.reason), (1, Reason::SyncGroup));
    // The member that followed resigned: the peer's member takes over after Skew_Time.
    assert_eq!(g.sent[1].last(), Some(&0));
}

#[test]
fn group_state_is_master_only_when_every_member_is() {
    let mut g = Group::started(vec![params(1, 100), params(2, 100)]);
    let state = |g: &Group| group_state(&g.members.iter().collect::<Vec<_>>());
    assert_eq!(state(&g), State::Backup);
    g.run_until(ms(4000));
    assert_eq!(state(&g), State::Master);
    g.members[1].set_fault(g.now, true);
    g.settle();
    assert_eq!(state(&g), State::Fault);
}
