//! The state machine under a virtual clock.

use std::net::Ipv4Addr;

use super::*;

pub(crate) const ME: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 2, 11));
const PEER_HIGH: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 2, 12));
const PEER_LOW: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 2, 10));

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn us(v: u64) -> Duration {
    Duration::from_micros(v)
}

pub(crate) fn params(version: Version, priority: u8, advert_int_cs: u16) -> Params {
    Params {
        vrid: 107,
        version,
        priority,
        advert_int_cs,
        preempt: true,
        preempt_delay: Duration::ZERO,
        fast_preempt: false,
        primary_ip: ME,
        garp_delay: Duration::from_secs(5),
        garp_refresh: None,
        gated: false,
        witnessed: false,
        elected: false,
        down_timer_adverts: 3,
        answer_lower: true,
        advert_before_yield: false,
        lower_prio_garp: None,
        extra_garp: None,
    }
}

/// An instance, a virtual clock and everything it did, with timestamps.
struct Sim {
    inst: Instance,
    now: Time,
    log: Vec<(Time, Action)>,
}

impl Sim {
    fn new(params: Params) -> Self {
        Self {
            inst: Instance::new(params),
            now: Duration::ZERO,
            log: Vec::new(),
        }
    }

    fn started(params: Params) -> Self {
        let mut sim = Self::new(params);
        sim.inst.start(sim.now);
        sim.drain();
        sim
    }

    fn drain(&mut self) {
        while let Some(action) = self.inst.poll_action() {
            self.log.push((self.now, action));
        }
    }

    /// Advances the clock to `t`, firing every timer due on the way.
    fn run_until(&mut self, t: Time) {
        while let Some(at) = self.inst.poll_timeout() {
            if at > t {
                break;
            }
            assert!(at >= self.now, "timer in the past: {at:?} < {:?}", self.now);
            self.now = at;
            self.inst.handle_timeout(at);
            self.drain();
        }
        self.now = t;
    }

    fn advert(&mut self, from: IpAddr, priority: u8, interval_cs: u16) {
        self.inst.handle_advert(
            self.now,
            Received {
                from,
                priority,
                interval_cs,
            },
        );
        self.drain();
    }

    /// Delivers an advert from `from` every `interval` until `until`.
    fn peer_master(&mut self, from: IpAddr, priority: u8, interval_cs: u16, until: Time) {
        let step = CENTISECOND * u32::from(interval_cs);
        let mut t = self.now;
        while t <= until {
            self.run_until(t);
            self.advert(from, priority, interval_cs);
            t += step;
        }
    }

    fn transitions(&self) -> Vec<(Time, State, Reason)> {
        self.log
            .iter()
            .filter_map(|(t, a)| match a {
                Action::Transition { to, reason, .. } => Some((*t, *to, *reason)),
                _ => None,
            })
            .collect()
    }

    fn adverts(&self) -> Vec<(Time, u8)> {
        self.log
            .iter()
            .filter_map(|(t, a)| match a {
                Action::SendAdvert { priority } => Some((*t, *priority)),
                _ => None,
            })
            .collect()
    }

    fn count(&self, action: Action) -> usize {
        self.log.iter().filter(|(_, a)| *a == action).count()
    }

    fn since(&self, t: Time) -> Vec<Action> {
        self.log
            .iter()
            .filter(|(at, _)| *at >= t)
            .map(|(_, a)| *a)
            .collect()
    }
}

#[test]
fn timers_follow_the_rfc() {
    // The seed: v2, priority 150, 1 s → skew 106/256 s, MDI 3.4140625 s.
    let inst = Instance::new(params(Version::V2, 150, 100));
    assert_eq!(inst.skew_time(), us(414_062) + Duration::from_nanos(500));
    assert_eq!(
        inst.master_down_interval(),
        ms(3414) + Duration::from_nanos(62_500)
    );
    // v3, priority 120, 0.1 s: skew 136 × 100 ms / 256 = 53.125 ms, MDI 353.125 ms.
    let inst = Instance::new(params(Version::V3, 120, 10));
    assert_eq!(inst.skew_time(), us(53_125));
    assert_eq!(inst.master_down_interval(), us(353_125));
    // v3, 10 ms: MDI 35.3125 ms.
    let inst = Instance::new(params(Version::V3, 120, 1));
    assert_eq!(
        inst.master_down_interval(),
        us(35_312) + Duration::from_nanos(500)
    );
    // v2 skew does not scale with the interval.
    let inst = Instance::new(params(Version::V2, 120, 300));
    assert_eq!(inst.master_down_interval(), ms(9000) + us(531_250));
}

#[test]
fn startup_waits_master_down_interval_then_takes_over() {
    let mut sim = Sim::started(params(Version::V2, 150, 100));
    assert_eq!(sim.inst.state(), State::Backup);
    assert_eq!(
        sim.transitions(),
        vec![(Duration::ZERO, State::Backup, Reason::Startup)]
    );
    let mdi = sim.inst.master_down_interval();
    sim.run_until(mdi - Duration::from_nanos(1));
    assert_eq!(sim.inst.state(), State::Backup);
    sim.run_until(mdi);
    assert_eq!(sim.inst.state(), State::Master);
    assert_eq!(
        sim.since(mdi),
        vec![
            Action::SendAdvert { priority: 150 },
            Action::AddVips,
            Action::SendGarp,
            Action::Transition {
                from: State::Backup,
                to: State::Master,
                reason: Reason::MasterDown
            },
        ]
    );
    assert_eq!(sim.inst.master(), Some(ME));
}

#[test]
fn address_owner_takes_over_at_once() {
    let mut sim = Sim::started(params(Version::V2, 255, 100));
    assert_eq!(sim.inst.state(), State::Master);
    assert_eq!(
        sim.transitions(),
        vec![(Duration::ZERO, State::Master, Reason::AddressOwner)]
    );
    assert_eq!(sim.adverts(), vec![(Duration::ZERO, 255)]);
    // Tracker deltas do not move an owner.
    sim.inst.set_priority_delta(sim.now, -100);
    assert_eq!(sim.inst.priority(), 255);
}

#[test]
fn master_advertises_every_interval_without_drift() {
    let mut sim = Sim::started(params(Version::V3, 255, 1));
    sim.run_until(ms(1000));
    let adverts = sim.adverts();
    assert_eq!(adverts.len(), 101, "one at start, then one per 10 ms");
    for (i, (t, priority)) in adverts.iter().enumerate() {
        assert_eq!(*t, ms(10) * i as u32);
        assert_eq!(*priority, 255);
    }
}

#[test]
fn late_wakeups_do_not_send_bursts() {
    let mut sim = Sim::started(params(Version::V3, 255, 1));
    // The caller oversleeps by 55 ms: one advert, then the schedule restarts from now.
    sim.now = ms(55);
    sim.inst.handle_timeout(sim.now);
    sim.drain();
    assert_eq!(sim.adverts().len(), 2);
    assert_eq!(sim.inst.poll_timeout(), Some(ms(65)));
}

#[test]
fn backup_stays_backup_while_a_higher_master_advertises() {
    let mut sim = Sim::started(params(Version::V2, 120, 100));
    sim.peer_master(PEER_HIGH, 150, 100, Duration::from_secs(30));
    assert_eq!(sim.inst.state(), State::Backup);
    assert_eq!(sim.inst.master(), Some(PEER_HIGH));
    // Equal priority is a master too, whatever its address.
    sim.peer_master(PEER_LOW, 120, 100, Duration::from_secs(60));
    assert_eq!(sim.inst.state(), State::Backup);
    assert_eq!(sim.count(Action::AddVips), 0);
}

#[test]
fn backup_takes_over_master_down_interval_after_the_last_advert() {
    let mut sim = Sim::started(params(Version::V2, 120, 100));
    sim.peer_master(PEER_HIGH, 150, 100, Duration::from_secs(10));
    let last = Duration::from_secs(10);
    let mdi = sim.inst.master_down_interval();
    sim.run_until(Duration::from_secs(30));
    assert_eq!(
        sim.transitions().last(),
        Some(&(last + mdi, State::Master, Reason::MasterDown))
    );
}

/// A VRRPv3 10 ms backup of a live master whose loop wakes `late` after its down timer ran
/// out, and is told so before the timers are handled; returns it and when it woke.
fn stalled_past_the_down_timer(late: Duration) -> (Sim, Time) {
    let mut sim = backup_of_high_until_1s();
    let woke = sim.inst.poll_timeout().expect("down timer") + late;
    sim.now = woke;
    sim.inst.stalled(woke, late);
    sim.inst.handle_timeout(woke);
    sim.drain();
    (sim, woke)
}

/// The whole machine stops for 33 ms (VRRPv3, 10 ms): the master's adverts stop with it and
/// the backup wakes 8 ms after its down timer ran out. The master's advert sent on waking
/// arrives 0.1 ms later and keeps the backup a backup.
#[test]
fn a_stall_of_the_whole_machine_is_not_a_dead_master() {
    let (mut sim, woke) = stalled_past_the_down_timer(ms(8));
    assert_eq!(sim.inst.state(), State::Backup);
    sim.run_until(woke + us(100));
    sim.peer_master(PEER_HIGH, 150, 1, woke + ms(1000));
    assert_eq!(sim.inst.state(), State::Backup);
    assert_eq!(sim.transitions().len(), 1, "{:?}", sim.transitions());
}

/// A master that really died while the backup was stalled is taken over at most one of its
/// intervals later, and a second stall in the same silence adds nothing.
#[test]
fn a_stall_delays_a_real_takeover_once_by_at_most_one_interval() {
    let (mut sim, woke) = stalled_past_the_down_timer(ms(25));
    assert_eq!(sim.inst.poll_timeout(), Some(woke + ms(10)));
    let again = woke + ms(12);
    sim.now = again;
    sim.inst.stalled(again, ms(2));
    sim.inst.handle_timeout(again);
    sim.drain();
    assert_eq!(
        sim.transitions().last(),
        Some(&(again, State::Master, Reason::MasterDown))
    );
}

#[test]
fn priority_zero_means_take_over_after_skew() {
    let mut sim = Sim::started(params(Version::V3, 120, 10));
    sim.peer_master(PEER_HIGH, 150, 10, ms(1000));
    sim.run_until(ms(1050));
    sim.advert(PEER_HIGH, 0, 10);
    let skew = sim.inst.skew_time();
    assert_eq!(skew, us(53_125));
    sim.run_until(ms(2000));
    assert_eq!(
        sim.transitions().last(),
        Some(&(ms(1050) + skew, State::Master, Reason::MasterResigned))
    );
}

#[test]
fn preempt_discards_lower_adverts() {
    let mut sim = Sim::started(params(Version::V2, 150, 100));
    let mdi = sim.inst.master_down_interval();
    sim.peer_master(PEER_HIGH, 100, 100, Duration::from_secs(10));
    assert_eq!(
        sim.transitions()[1],
        (
            mdi,
            State::Master,
            Reason::Preempt {
                master: PEER_HIGH,
                priority: 100
            }
        )
    );
}

#[test]
fn nopreempt_keeps_a_lower_master() {
    let mut p = params(Version::V2, 150, 100);
    p.preempt = false;
    let mut sim = Sim::started(p);
    sim.peer_master(PEER_HIGH, 100, 100, Duration::from_secs(60));
    assert_eq!(sim.inst.state(), State::Backup);
    assert_eq!(sim.inst.master(), Some(PEER_HIGH));
    // ...until that master disappears.
    let mdi = sim.inst.master_down_interval();
    sim.run_until(Duration::from_secs(70));
    assert_eq!(
        sim.transitions().last(),
        Some(&(
            Duration::from_secs(60) + mdi,
            State::Master,
            Reason::MasterDown
        ))
    );
}

#[test]
fn preempt_delay_accepts_a_lower_master_for_that_long() {
    let mut p = params(Version::V2, 150, 100);
    p.preempt_delay = Duration::from_secs(10);
    let mut sim = Sim::started(p);
    sim.peer_master(PEER_HIGH, 100, 100, Duration::from_secs(30));
    assert_eq!(
        sim.transitions()[1],
        (
            Duration::from_secs(10),
            State::Master,
            Reason::Preempt {
                master: PEER_HIGH,
                priority: 100
            }
        )
    );
    assert_eq!(sim.inst.state(), State::Master);
}

#[test]
fn master_yields_to_higher_priority_and_v3_learns_its_interval() {
    let mut sim = Sim::started(params(Version::V3, 255 - 1, 100));
    sim.run_until(Duration::from_secs(4));
    assert_eq!(sim.inst.state(), State::Master);
    sim.advert(PEER_HIGH, 255, 5);
    assert_eq!(sim.inst.state(), State::Backup);
    assert_eq!(
        sim.since(sim.now),
        vec![
            Action::RemoveVips,
            Action::Transition {
                from: State::Master,
                to: State::Backup,
                reason: Reason::HigherPriority {
                    from: PEER_HIGH,
                    priority: 255
                },
            },
        ]
    );
    assert_eq!(sim.inst.master_adver_interval(), ms(50));
    // MDI from the learned 50 ms: 150 ms + 2/256 × 50 ms.
    assert_eq!(
        sim.inst.master_down_interval(),
        ms(150) + us(390) + Duration::from_nanos(625)
    );
    assert_eq!(
        sim.inst.poll_timeout(),
        Some(sim.now + sim.inst.master_down_interval())
    );
}

#[test]
fn equal_priority_tie_break_on_the_primary_address() {
    let mut sim = Sim::started(params(Version::V2, 150, 100));
    sim.run_until(Duration::from_secs(4));
    assert_eq!(sim.inst.state(), State::Master);
    let before = sim.adverts().len();
    sim.advert(PEER_LOW, 150, 100);
    assert_eq!(
        sim.inst.state(),
        State::Master,
        "a lower address loses the tie"
    );
    assert_eq!(
        sim.adverts().len(),
        before + 1,
        "and the master reasserts itself"
    );
    sim.advert(PEER_HIGH, 150, 100);
    assert_eq!(
        sim.inst.state(),
        State::Backup,
        "a higher address wins the tie"
    );
}

#[test]
fn master_answers_lower_and_resigning_adverts_at_once() {
    let mut sim = Sim::started(params(Version::V2, 150, 100));
    sim.run_until(Duration::from_secs(4));
    let t = sim.now + ms(300);
    sim.run_until(t);
    sim.advert(PEER_LOW, 100, 100);
    assert_eq!(
        sim.since(t),
        vec![
            Action::SendAdvert { priority: 150 },
            Action::MasterRxLowerPri
        ]
    );
    let t = sim.now + Duration::from_secs(1);
    sim.run_until(t);
    sim.advert(PEER_LOW, 0, 100);
    assert_eq!(sim.since(t), vec![Action::SendAdvert { priority: 150 }]);
    assert_eq!(
        sim.inst.poll_timeout(),
        Some(t + Duration::from_secs(1)),
        "advert timer rearmed"
    );
}

/// keepalived's defaults: a master that hears a lower priority also announces its VIPs again
/// (`garp_lower_prio_repeat`), and once more after `garp_lower_prio_delay`;
/// `lower_prio_no_advert` keeps the GARPs but sends no advert.
#[test]
fn a_lower_priority_makes_the_master_announce_its_vips_again() {
    for answer_lower in [true, false] {
        let mut p = params(Version::V3, 150, 10);
        p.answer_lower = answer_lower;
        p.lower_prio_garp = Some(Some(Duration::from_secs(5)));
        let mut sim = Sim::started(p);
        sim.run_until(ms(400));
        let t = sim.now + ms(5);
        sim.run_until(t);
        sim.advert(PEER_LOW, 100, 10);
        let mut want = vec![Action::MasterRxLowerPri, Action::SendGarpLowerPrio];
        if answer_lower {
            want.insert(0, Action::SendAdvert { priority: 150 });
        }
        assert_eq!(sim.since(t), want);
        sim.run_until(t + Duration::from_secs(5));
        assert_eq!(sim.count(Action::SendGarpLowerPrio), 2, "the second burst");
    }
}

/// `higher_prio_send_advert`: one more advert at our priority before yielding.
#[test]
fn a_master_can_advertise_once_more_before_it_yields() {
    let mut p = params(Version::V3, 150, 10);
    p.advert_before_yield = true;
    let mut sim = Sim::started(p);
    sim.run_until(ms(400));
    let t = sim.now + ms(5);
    sim.run_until(t);
    sim.advert(PEER_HIGH, 200, 10);
    assert_eq!(
        sim.since(t).first(),
        Some(&Action::SendAdvert { priority: 150 })
    );
    assert_eq!(sim.inst.state(), State::Backup);
}

/// `down_timer_adverts N`: Master_Down_Interval is N intervals plus Skew_Time.
#[test]
fn down_timer_adverts_sets_the_intervals_of_master_down_interval() {
    let mut p = params(Version::V3, 128, 10);
    p.down_timer_adverts = 5;
    let inst = Instance::new(p);
    // 5 × 100 ms + 100 ms × (256 - 128) / 256.
    assert_eq!(inst.master_down_interval(), ms(550));
}

#[test]
fn answers_to_a_flood_are_limited_to_one_per_interval() {
    let mut sim = Sim::started(params(Version::V3, 150, 10));
    sim.run_until(ms(400));
    let t = sim.now;
    // 3,000 lower and resigning adverts over one second: the 100 ms schedule sends 10
    // adverts and the answers add at most one per interval.
    for i in 0..3000u64 {
        sim.run_until(t + us(i * 333));
        sim.advert(PEER_LOW, if i % 2 == 0 { 100 } else { 0 }, 10);
        sim.drain();
    }
    sim.run_until(t + ms(999));
    let sent = sim
        .since(t)
        .iter()
        .filter(|a| matches!(a, Action::SendAdvert { .. }))
        .count();
    assert!((10..=20).contains(&sent), "{sent} adverts in one second");
    assert_eq!(sim.inst.state(), State::Master);
}

#[test]
fn reconfigure_in_place_changes_no_state() {
    let mut sim = Sim::started(params(Version::V3, 150, 100));
    sim.run_until(Duration::from_secs(4));
    assert_eq!(sim.inst.state(), State::Master);
    let t = sim.now;
    // Lower priority and a shorter interval: the next advert, due at once, carries both.
    sim.inst.reconfigure(t, params(Version::V3, 120, 10));
    assert!(sim.inst.poll_timeout().unwrap() <= t + ms(100));
    sim.run_until(t + ms(350));
    let actions = sim.since(t);
    assert!(
        actions
            .iter()
            .all(|a| *a == Action::SendAdvert { priority: 120 }),
        "{actions:?}"
    );
    assert!(actions.len() >= 3, "adverts every 100 ms now: {actions:?}");
    assert_eq!(sim.inst.state(), State::Master);
    assert_eq!(sim.inst.priority(), 120);
}

#[test]
fn a_backup_raised_above_its_master_preempts_after_master_down_interval() {
    let mut sim = Sim::started(params(Version::V2, 100, 100));
    sim.advert(PEER_HIGH, 150, 100);
    sim.run_until(Duration::from_secs(2));
    sim.advert(PEER_HIGH, 150, 100);
    let t = sim.now;
    sim.inst.reconfigure(t, params(Version::V2, 200, 100));
    assert_eq!(
        sim.inst.state(),
        State::Backup,
        "no transition on reconfigure"
    );
    // The master keeps advertising 150, lower than our 200 now: we stop refreshing the
    // down timer and preempt.
    for i in 1..=4 {
        sim.run_until(t + Duration::from_secs(i));
        sim.advert(PEER_HIGH, 150, 100);
    }
    assert_eq!(sim.inst.state(), State::Master);
    let (_, reason) = sim.inst.last_transition().unwrap();
    assert_eq!(
        reason,
        Reason::Preempt {
            master: PEER_HIGH,
            priority: 150
        }
    );
}

#[test]
fn shutdown_sends_priority_zero_and_releases_vips() {
    let mut sim = Sim::started(params(Version::V2, 150, 100));
    sim.run_until(Duration::from_secs(4));
    let t = sim.now;
    sim.inst.shutdown(t);
    sim.drain();
    assert_eq!(
        sim.since(t),
        vec![
            Action::SendAdvert { priority: 0 },
            Action::RemoveVips,
            Action::Transition {
                from: State::Master,
                to: State::Initialize,
                reason: Reason::Shutdown
            },
        ]
    );
    assert_eq!(sim.inst.poll_timeout(), None);
    // A stopped backup sends nothing.
    let mut sim = Sim::started(params(Version::V2, 100, 100));
    sim.inst.shutdown(ms(5));
    sim.drain();
    assert_eq!(sim.adverts(), vec![]);
    assert_eq!(sim.inst.state(), State::Initialize);
}

#[test]
fn gratuitous_arp_bursts() {
    let mut p = params(Version::V2, 255, 100);
    p.garp_refresh = Some(Duration::from_secs(60));
    let mut sim = Sim::started(p);
    sim.run_until(Duration::from_secs(200));
    let garps: Vec<Time> = sim
        .log
        .iter()
        .filter(|(_, a)| *a == Action::SendGarp)
        .map(|(t, _)| *t)
        .collect();
    let s = Duration::from_secs;
    assert_eq!(garps, vec![s(0), s(5), s(65), s(125), s(185)]);
}

#[test]
fn tracker_delta_changes_the_advertised_priority_within_bounds() {
    let mut sim = Sim::started(params(Version::V2, 150, 100));
    sim.run_until(Duration::from_secs(4));
    sim.inst.set_priority_delta(sim.now, -50);
    sim.run_until(Duration::from_secs(6));
    assert_eq!(sim.adverts().last().unwrap().1, 100);
    sim.inst.set_priority_delta(sim.now, -500);
    assert_eq!(sim.inst.priority(), 1);
    sim.inst.set_priority_delta(sim.now, 500);
    assert_eq!(sim.inst.priority(), 254);
}

#[test]
fn a_master_advertises_a_changed_priority_at_once_but_once_per_interval() {
    let mut sim = Sim::started(params(Version::V2, 150, 100));
    sim.run_until(Duration::from_millis(4300));
    assert_eq!(sim.inst.state(), State::Master);
    let before = sim.adverts().len();
    sim.inst.set_priority_delta(sim.now, -50);
    sim.drain();
    sim.run_until(Duration::from_millis(4300));
    assert_eq!(
        sim.adverts()[before..],
        [(Duration::from_millis(4300), 100)]
    );
    // The schedule restarts from there; another change within the interval waits for it.
    sim.run_until(Duration::from_millis(4500));
    sim.inst.set_priority_delta(sim.now, 0);
    sim.drain();
    sim.run_until(Duration::from_millis(6400));
    assert_eq!(
        sim.adverts()[before..],
        [
            (Duration::from_millis(4300), 100),
            (Duration::from_millis(5300), 150),
            (Duration::from_millis(6300), 150)
        ]
    );
    // No change, no extra advert.
    sim.inst.set_priority_delta(sim.now, 0);
    sim.drain();
    sim.run_until(Duration::from_millis(6400));
    assert_eq!(sim.adverts().len(), before + 3);
}

#[test]
fn fault_releases_and_recovery_waits_as_backup() {
    let mut sim = Sim::started(params(Version::V2, 150, 100));
    sim.run_until(Duration::from_secs(4));
    let t = sim.now;
    sim.inst.set_fault(t, true);
    sim.drain();
    assert_eq!(
        sim.since(t),
        vec![
            Action::SendAdvert { priority: 0 },
            Action::RemoveVips,
            Action::Transition {
                from: State::Master,
                to: State::Fault,
                reason: Reason::FaultOn
            },
        ]
    );
    sim.run_until(Duration::from_secs(20));
    assert_eq!(sim.inst.state(), State::Fault);
    assert_eq!(sim.inst.poll_timeout(), None);
    sim.advert(PEER_HIGH, 100, 100);
    assert_eq!(
        sim.inst.state(),
        State::Fault,
        "adverts are ignored in FAULT"
    );
    sim.inst.set_fault(sim.now, false);
    sim.drain();
    assert_eq!(sim.inst.state(), State::Backup);
    let t = sim.now;
    sim.run_until(Duration::from_secs(30));
    assert_eq!(
        sim.transitions().last(),
        Some(&(
            t + sim.inst.master_down_interval(),
            State::Master,
            Reason::MasterDown
        ))
    );
}

#[test]
fn adverts_before_start_are_ignored() {
    let mut sim = Sim::new(params(Version::V2, 150, 100));
    sim.advert(PEER_HIGH, 200, 100);
    assert!(sim.log.is_empty());
    assert_eq!(sim.inst.poll_timeout(), None);
}

#[test]
fn fast_preempt_takes_over_from_a_lower_master_after_skew_time() {
    let fast = Params {
        fast_preempt: true,
        ..params(Version::V2, 120, 100)
    };
    let mut sim = Sim::started(fast.clone());
    sim.advert(PEER_HIGH, 150, 100);
    sim.run_until(Duration::from_secs(2));
    // The master's check failed: it advertises 100 now.
    let t = sim.now;
    sim.advert(PEER_HIGH, 100, 100);
    let skew = sim.inst.skew_time();
    assert_eq!(skew, Duration::from_secs(1) * 136 / 256);
    sim.run_until(t + skew - us(1));
    assert_eq!(sim.inst.state(), State::Backup);
    sim.run_until(t + skew);
    assert_eq!(sim.inst.state(), State::Master);
    assert_eq!(
        sim.inst.last_transition().unwrap().1,
        Reason::Preempt {
            master: PEER_HIGH,
            priority: 100
        }
    );

    // A tie is not lower: no takeover. A master that recovers in time is kept.
    for second in [120, 150] {
        let mut sim = Sim::started(fast.clone());
        sim.advert(PEER_HIGH, 150, 100);
        sim.run_until(Duration::from_secs(2));
        let t = sim.now;
        sim.advert(PEER_HIGH, if second == 120 { 120 } else { 100 }, 100);
        sim.run_until(t + ms(100));
        sim.advert(PEER_HIGH, second, 100);
        for i in 1..=5 {
            sim.run_until(t + Duration::from_secs(i));
            sim.advert(PEER_HIGH, second, 100);
        }
        assert_eq!(sim.inst.state(), State::Backup, "second advert {second}");
    }

    // Off (the RFC): the lower master is preempted after Master_Down_Interval.
    let mut sim = Sim::started(params(Version::V2, 120, 100));
    sim.advert(PEER_HIGH, 150, 100);
    sim.run_until(Duration::from_secs(2));
    let t = sim.now;
    sim.advert(PEER_HIGH, 100, 100);
    sim.run_until(t + skew + ms(1));
    assert_eq!(sim.inst.state(), State::Backup);
}

fn gated(version: Version, priority: u8, advert_int_cs: u16) -> Params {
    Params {
        gated: true,
        ..params(version, priority, advert_int_cs)
    }
}

/// The id of the last `Promote` (or `Demote`) queued.
fn last_promote(sim: &Sim) -> u64 {
    sim.log
        .iter()
        .rev()
        .find_map(|(_, a)| match a {
            Action::Promote { id, .. } => Some(*id),
            _ => None,
        })
        .expect("a Promote action")
}

fn last_demote(sim: &Sim) -> u64 {
    sim.log
        .iter()
        .rev()
        .find_map(|(_, a)| match a {
            Action::Demote { id } => Some(*id),
            _ => None,
        })
        .expect("a Demote action")
}

#[test]
fn gated_takeover_promotes_the_database_before_the_vips() {
    let mut sim = Sim::started(gated(Version::V2, 150, 100));
    let mdi = sim.inst.master_down_interval();
    sim.run_until(mdi);
    // Still BACKUP: the VRID is claimed with an advert, the database promotion asked for.
    assert_eq!(sim.inst.state(), State::Backup);
    assert!(sim.inst.promoting());
    let id = last_promote(&sim);
    assert_eq!(
        sim.since(mdi),
        vec![
            Action::SendAdvert { priority: 150 },
            Action::Promote {
                id,
                failover: false
            }
        ]
    );
    // The claim goes on at the advert interval while the relay log drains.
    sim.run_until(mdi + ms(2500));
    assert_eq!(sim.adverts().len(), 3);
    assert_eq!(sim.count(Action::AddVips), 0);
    let t = sim.now;
    sim.inst.promotion_done(t, id, true);
    sim.drain();
    assert_eq!(
        sim.since(t),
        vec![
            Action::SendAdvert { priority: 150 },
            Action::AddVips,
            Action::SendGarp,
            Action::Transition {
                from: State::Backup,
                to: State::Master,
                reason: Reason::MasterDown
            },
        ]
    );
    assert!(!sim.inst.promoting());
    // A repeated answer changes nothing.
    sim.inst.promotion_done(t, id, true);
    sim.drain();
    assert_eq!(sim.count(Action::AddVips), 1);
}

#[test]
fn a_refused_promotion_stays_backup_and_tries_again_after_master_down_interval() {
    let mut sim = Sim::started(gated(Version::V3, 100, 10));
    let mdi = sim.inst.master_down_interval();
    sim.run_until(mdi);
    let first = last_promote(&sim);
    let t = mdi + ms(40);
    sim.run_until(t);
    sim.inst.promotion_done(t, first, false);
    sim.drain();
    assert_eq!(sim.inst.state(), State::Backup);
    assert!(!sim.inst.promoting());
    // No more claiming adverts; the next attempt waits a whole Master_Down_Interval.
    let sent = sim.adverts().len();
    sim.run_until(t + mdi - us(1));
    assert_eq!(sim.adverts().len(), sent);
    sim.run_until(t + mdi);
    let second = last_promote(&sim);
    assert_ne!(first, second);
    assert_eq!(sim.count(Action::AddVips), 0);
    assert!(
        sim.transitions()
            .iter()
            .all(|(_, to, _)| *to == State::Backup)
    );
}

#[test]
fn a_better_router_during_promotion_aborts_it_and_read_only_comes_back() {
    let mut sim = Sim::started(gated(Version::V2, 100, 100));
    let mdi = sim.inst.master_down_interval();
    sim.run_until(mdi);
    let id = last_promote(&sim);
    // A worse router hears our claim at once.
    sim.run_until(mdi + ms(10));
    sim.advert(PEER_LOW, 50, 100);
    assert_eq!(sim.adverts().last(), Some(&(mdi + ms(10), 100)));
    // A better one wins: the promotion is abandoned and the database demoted again.
    sim.run_until(mdi + ms(20));
    sim.advert(PEER_HIGH, 150, 100);
    assert!(!sim.inst.promoting());
    let demote = last_demote(&sim);
    assert_eq!(sim.since(mdi + ms(20)), vec![Action::Demote { id: demote }]);
    // Its late success is ignored; the instance follows the new master.
    sim.inst.promotion_done(sim.now, id, true);
    sim.drain();
    assert_eq!(sim.count(Action::AddVips), 0);
    assert_eq!(sim.inst.master(), Some(PEER_HIGH));
    let until = sim.now + Duration::from_secs(10);
    sim.peer_master(PEER_HIGH, 150, 100, until);
    assert_eq!(sim.inst.state(), State::Backup);
}

#[test]
fn a_gated_master_releases_its_vips_only_after_the_database_is_read_only() {
    let mut sim = Sim::started(gated(Version::V2, 100, 100));
    let mdi = sim.inst.master_down_interval();
    sim.run_until(mdi);
    sim.inst.promotion_done(mdi, last_promote(&sim), true);
    sim.drain();
    let t = mdi + ms(500);
    sim.run_until(t);
    sim.advert(PEER_HIGH, 150, 100);
    let id = last_demote(&sim);
    assert_eq!(sim.inst.state(), State::Backup);
    assert_eq!(sim.count(Action::RemoveVips), 0);
    // A stale answer does not release them.
    sim.inst.demoted(id + 100);
    sim.drain();
    assert_eq!(sim.count(Action::RemoveVips), 0);
    sim.inst.demoted(id);
    sim.drain();
    assert_eq!(sim.count(Action::RemoveVips), 1);
    // Fault and shutdown of a gated master demote first as well.
    for stop in [true, false] {
        let mut sim = Sim::started(gated(Version::V2, 100, 100));
        sim.run_until(mdi);
        sim.inst.promotion_done(mdi, last_promote(&sim), true);
        sim.drain();
        let t = mdi + ms(100);
        sim.run_until(t);
        if stop {
            sim.inst.shutdown(t);
        } else {
            sim.inst.set_fault(t, true);
        }
        sim.drain();
        let id = last_demote(&sim);
        assert_eq!(
            sim.since(t)[..2],
            [Action::SendAdvert { priority: 0 }, Action::Demote { id }]
        );
        assert_eq!(sim.count(Action::RemoveVips), 0);
        sim.inst.demoted(id);
        sim.drain();
        assert_eq!(sim.count(Action::RemoveVips), 1);
    }
}

#[test]
fn shutdown_or_fault_during_promotion_demotes() {
    for stop in [true, false] {
        let mut sim = Sim::started(gated(Version::V2, 100, 100));
        let mdi = sim.inst.master_down_interval();
        sim.run_until(mdi);
        let id = last_promote(&sim);
        if stop {
            sim.inst.shutdown(mdi);
        } else {
            sim.inst.set_fault(mdi, true);
        }
        sim.drain();
        assert!(!sim.inst.promoting());
        assert!(matches!(
            sim.since(mdi).last(),
            Some(Action::Transition { .. })
        ));
        let _ = last_demote(&sim);
        sim.inst.promotion_done(mdi, id, true);
        sim.drain();
        assert_eq!(sim.count(Action::AddVips), 0);
        assert_eq!(sim.inst.poll_timeout(), None);
    }
}

#[test]
fn switchover_resigns_and_stays_backup() {
    let mut p = gated(Version::V2, 150, 100);
    p.preempt = false;
    let mut sim = Sim::started(p);
    let mdi = sim.inst.master_down_interval();
    sim.run_until(mdi);
    sim.inst.promotion_done(mdi, last_promote(&sim), true);
    sim.drain();
    let t = mdi + ms(2500);
    sim.run_until(t);
    assert!(sim.inst.resign(t));
    sim.drain();
    let id = last_demote(&sim);
    assert_eq!(
        sim.since(t),
        vec![
            Action::SendAdvert { priority: 0 },
            Action::Demote { id },
            Action::Transition {
                from: State::Master,
                to: State::Backup,
                reason: Reason::Switchover
            },
        ]
    );
    // The peer (lower priority) takes over; without preemption we stay BACKUP.
    let until = t + Duration::from_secs(20);
    sim.run_until(t + ms(500));
    sim.peer_master(PEER_LOW, 100, 100, until);
    assert_eq!(sim.inst.state(), State::Backup);
    assert!(!sim.inst.resign(sim.now));
}

#[test]
fn only_losing_a_heard_master_counts_as_failover() {
    let failovers = |sim: &Sim| -> Vec<bool> {
        sim.log
            .iter()
            .filter_map(|(_, a)| match a {
                Action::Promote { failover, .. } => Some(*failover),
                _ => None,
            })
            .collect()
    };
    // Start with nobody there: an election, not a failover.
    let mut sim = Sim::started(gated(Version::V2, 100, 100));
    sim.run_until(Duration::from_secs(4));
    assert_eq!(failovers(&sim), [false]);
    // A master heard, then silent: a failover, also on the retry after a refusal.
    let mut sim = Sim::started(gated(Version::V2, 100, 100));
    sim.peer_master(PEER_HIGH, 150, 100, Duration::from_secs(2));
    sim.run_until(Duration::from_secs(6));
    let t = sim.now;
    sim.inst.promotion_done(t, last_promote(&sim), false);
    sim.run_until(t + Duration::from_secs(4));
    assert_eq!(failovers(&sim), [true, true]);
    // A master that resigns (priority 0) hands over: not a failover.
    let mut sim = Sim::started(gated(Version::V2, 100, 100));
    sim.peer_master(PEER_HIGH, 150, 100, Duration::from_secs(2));
    sim.advert(PEER_HIGH, 0, 100);
    sim.run_until(Duration::from_secs(3));
    assert_eq!(failovers(&sim), [false]);
}

/// A VRRPv2 master whose adverts carry a longer interval than ours (a one-sided edit of
/// `advert_int`, accepted as proof of life): the backup judges its silence by its own pace,
/// so it neither takes over between two of its adverts nor waits longer once it is gone.
#[test]
fn a_v2_backup_follows_a_master_configured_with_another_interval() {
    let mut sim = Sim::started(params(Version::V2, 120, 100));
    // The master sends every 5 s; our own Master_Down_Interval would be 3.53 s.
    sim.peer_master(PEER_HIGH, 150, 500, ms(30_000));
    assert_eq!(sim.inst.state(), State::Backup);
    assert_eq!(sim.inst.master_adver_interval(), ms(5000));
    let mdi = sim.inst.master_down_interval();
    assert_eq!(mdi, ms(15_000) + us(531_250));
    // Gone after its last advert at 30 s: taken over one Master_Down_Interval later.
    sim.run_until(ms(30_000) + mdi - Duration::from_nanos(1));
    assert_eq!(sim.inst.state(), State::Backup);
    sim.run_until(ms(30_000) + mdi);
    assert_eq!(sim.inst.state(), State::Master);
    // As master it advertises at its own interval.
    let took_over = sim.now;
    sim.run_until(took_over + ms(2500));
    let sent: Vec<Time> = sim.adverts().iter().map(|(t, _)| *t).collect();
    assert_eq!(
        sent,
        [took_over, took_over + ms(1000), took_over + ms(2000)]
    );
}

#[test]
fn a_master_whose_witness_is_lost_steps_down_and_releases_after_the_database() {
    let mut sim = Sim::started(gated(Version::V3, 150, 10));
    let mdi = sim.inst.master_down_interval();
    sim.run_until(mdi);
    sim.inst.promotion_done(mdi, last_promote(&sim), true);
    sim.drain();
    assert_eq!(sim.inst.state(), State::Master);
    // Between two scheduled adverts.
    let t = mdi + ms(550);
    sim.run_until(t);
    sim.inst.witness_lost(t);
    sim.drain();
    let id = last_demote(&sim);
    // As a resignation: priority 0, the database read-only first, the VIPs after.
    assert_eq!(
        sim.since(t),
        vec![
            Action::SendAdvert { priority: 0 },
            Action::Demote { id },
            Action::Transition {
                from: State::Master,
                to: State::Backup,
                reason: Reason::WitnessLost
            },
        ]
    );
    sim.inst.demoted(id);
    sim.drain();
    assert_eq!(sim.count(Action::RemoveVips), 1);
    // It tries again (through the witness) once Master_Down_Interval passes unheard.
    let promotions = sim
        .log
        .iter()
        .filter(|(_, a)| matches!(a, Action::Promote { .. }))
        .count();
    sim.run_until(t + mdi);
    assert!(sim.inst.promoting());
    assert_eq!(
        sim.log
            .iter()
            .filter(|(_, a)| matches!(a, Action::Promote { .. }))
            .count(),
        promotions + 1
    );
}

#[test]
fn a_promotion_whose_witness_is_lost_is_given_up() {
    let mut sim = Sim::started(gated(Version::V3, 150, 10));
    let mdi = sim.inst.master_down_interval();
    sim.run_until(mdi);
    let id = sim.inst.promotion_id().expect("promoting");
    let t = mdi + ms(5);
    sim.run_until(t);
    sim.inst.witness_lost(t);
    sim.drain();
    assert!(!sim.inst.promoting());
    assert!(sim.since(t).contains(&Action::Demote { id: id + 1 }));
    // A late answer to the abandoned promotion changes nothing.
    sim.inst.promotion_done(t, id, true);
    sim.drain();
    assert_eq!(sim.inst.state(), State::Backup);
    assert_eq!(sim.count(Action::AddVips), 0);
    // A backup that is not promoting has nothing to lose.
    let before = sim.log.len();
    sim.inst.witness_lost(t);
    sim.drain();
    assert_eq!(sim.log.len(), before);
}

#[test]
fn a_witnessed_takeover_claims_the_vrid_only_once_the_key_is_held() {
    let witnessed = Params {
        witnessed: true,
        ..gated(Version::V3, 150, 10)
    };
    let mut sim = Sim::started(witnessed.clone());
    let mdi = sim.inst.master_down_interval();
    sim.run_until(mdi);
    let id = last_promote(&sim);
    // No advert while the key is asked for: a node cut from etcd must not make a live
    // master it cannot hear (or that hears it) yield.
    sim.run_until(mdi + ms(300));
    assert_eq!(sim.adverts().len(), 0);
    let t = sim.now;
    sim.inst.key_held(t, id);
    sim.drain();
    assert_eq!(sim.since(t), vec![Action::SendAdvert { priority: 150 }]);
    sim.run_until(t + ms(250));
    assert_eq!(sim.adverts().len(), 3);
    // Preempting a master it hears, it claims at once: the master must hear the claim to
    // give the key up.
    let mut p = witnessed;
    p.fast_preempt = true;
    let mut sim = Sim::started(p);
    let until = Duration::from_secs(2);
    sim.peer_master(PEER_LOW, 100, 10, until);
    assert!(sim.inst.promoting());
    assert!(!sim.adverts().is_empty());
}

#[test]
fn a_witnessed_promotion_claims_once_it_hears_a_worse_router() {
    // Both started at once: the worse one took the key; the better one, waiting for it,
    // hears it and claims, so that it yields the key.
    let mut sim = Sim::started(Params {
        witnessed: true,
        ..gated(Version::V3, 150, 10)
    });
    let mdi = sim.inst.master_down_interval();
    sim.run_until(mdi);
    assert!(sim.inst.promoting());
    assert_eq!(sim.adverts().len(), 0);
    let t = mdi + ms(20);
    sim.run_until(t);
    sim.advert(PEER_LOW, 100, 10);
    sim.drain();
    assert_eq!(sim.since(t), vec![Action::SendAdvert { priority: 150 }]);
    sim.run_until(t + ms(250));
    assert!(sim.adverts().len() >= 3);
}

fn elected(priority: u8, gated: bool) -> Params {
    Params {
        witnessed: true,
        elected: true,
        gated,
        ..params(Version::V3, priority, 10)
    }
}

#[test]
fn an_elected_instance_sends_nothing_and_waits_for_the_witness() {
    // Even priority 255 (an address owner in VRRP) waits for the election.
    for priority in [100, 255] {
        let mut sim = Sim::started(elected(priority, false));
        assert_eq!(sim.inst.state(), State::Backup);
        // No down timer: silence is not a reason to take over, and no advert goes out.
        assert_eq!(sim.inst.poll_timeout(), None);
        sim.advert(PEER_LOW, 100, 10);
        sim.drain();
        sim.run_until(Duration::from_secs(60));
        assert_eq!(sim.inst.state(), State::Backup);
        assert!(sim.adverts().is_empty());
        assert_eq!(sim.count(Action::AddVips), 0);
    }
}

#[test]
fn an_elected_instance_becomes_master_and_yields_without_adverts() {
    let mut sim = Sim::started(elected(100, false));
    let t = ms(500);
    sim.run_until(t);
    assert!(sim.inst.elected(t, true));
    sim.drain();
    assert_eq!(sim.inst.state(), State::Master);
    assert_eq!(
        sim.inst.last_transition().map(|(_, r)| r),
        Some(Reason::Elected)
    );
    assert_eq!(sim.count(Action::AddVips), 1);
    assert_eq!(
        sim.inst.poll_timeout(),
        Some(t + Duration::from_secs(5)),
        "GARP only"
    );
    // Elected again while master: nothing changes, nothing to give back.
    assert!(sim.inst.elected(t, true));
    sim.run_until(Duration::from_secs(10));
    sim.inst.set_priority_delta(sim.now, -20);
    sim.drain();
    assert!(sim.adverts().is_empty());
    let t = sim.now;
    sim.inst.outranked(t);
    sim.drain();
    assert_eq!(sim.inst.state(), State::Backup);
    assert_eq!(sim.count(Action::RemoveVips), 1);
    assert_eq!(
        sim.inst.last_transition().map(|(_, r)| r),
        Some(Reason::Outranked)
    );
    assert_eq!(sim.inst.poll_timeout(), None);
    assert!(sim.adverts().is_empty());
}

#[test]
fn an_elected_instance_in_fault_does_not_take_over() {
    let mut sim = Sim::started(elected(100, false));
    sim.inst.set_fault(ms(10), true);
    assert!(!sim.inst.elected(ms(20), false));
    sim.drain();
    assert_eq!(sim.inst.state(), State::Fault);
    assert_eq!(sim.count(Action::AddVips), 0);
}

#[test]
fn an_elected_gated_instance_promotes_its_database_first() {
    let mut sim = Sim::started(elected(100, true));
    assert!(sim.inst.elected(ms(100), true));
    sim.drain();
    let id = last_promote(&sim);
    assert!(
        sim.log
            .iter()
            .any(|(_, a)| *a == Action::Promote { id, failover: true })
    );
    assert_eq!(sim.inst.state(), State::Backup);
    // Refused: it stays BACKUP with no down timer; the caller gives the leadership back.
    sim.inst.promotion_done(ms(200), id, false);
    sim.drain();
    assert_eq!(sim.inst.state(), State::Backup);
    assert_eq!(sim.inst.poll_timeout(), None);
    assert!(sim.inst.elected(ms(300), false));
    sim.drain();
    let id = last_promote(&sim);
    sim.inst.promotion_done(ms(400), id, true);
    sim.drain();
    assert_eq!(sim.inst.state(), State::Master);
    // Lease lost: the database is made read-only first, the VIPs go after.
    sim.inst.witness_lost(ms(500));
    sim.drain();
    assert_eq!(sim.inst.state(), State::Backup);
    assert_eq!(sim.count(Action::RemoveVips), 0);
    assert!(sim.adverts().is_empty());
}

/// `garp_extra_if all S`: while MASTER, the VIPs on other interfaces are announced every S.
#[test]
fn extra_interfaces_are_announced_every_period_while_master() {
    let mut p = params(Version::V3, 150, 10);
    p.extra_garp = Some(Duration::from_secs(2));
    let mut sim = Sim::started(p);
    sim.run_until(Duration::from_secs(7));
    // Master at ~0.35 s: announcements at ~2.35, 4.35 and 6.35 s.
    assert_eq!(sim.count(Action::SendGarpExtra), 3);
    sim.peer_master(PEER_HIGH, 200, 10, Duration::from_secs(12));
    assert_eq!(sim.inst.state(), State::Backup);
    assert_eq!(sim.count(Action::SendGarpExtra), 3, "none once BACKUP");
}

/// `bfd_takeover`: BFD reports the master down 3 ms after its last advert (VRRPv3, 10 ms).
/// The backup takes over after Skew_Time, not Master_Down_Interval; an advert it had
/// received before the report (read late, as the kernel path does) does not undo it.
#[test]
fn a_master_reported_down_is_taken_over_after_skew_time() {
    let mut sim = backup_of_high_until_1s();
    let last = ms(1000);
    sim.run_until(last + ms(3));
    // Another peer's loss changes nothing.
    assert!(!sim.inst.master_lost(sim.now, sim.now, PEER_LOW));
    assert!(sim.inst.master_lost(sim.now, sim.now, PEER_HIGH));
    // The master's last advert, read only now, with its receive time.
    sim.inst.handle_advert(
        last,
        Received {
            from: PEER_HIGH,
            priority: 150,
            interval_cs: 1,
        },
    );
    let skew = sim.inst.skew_time();
    sim.run_until(ms(1100));
    assert_eq!(
        sim.transitions().last(),
        Some(&(last + ms(3) + skew, State::Master, Reason::MasterDown))
    );
    assert!(last + ms(3) + skew < last + sim.inst.master_down_interval());
}

/// A report read at once counts from when the detector's time ran out; one read late (this
/// host stalled 7 ms) gives the adverts the stall held up Skew_Time from when it was read,
/// and such an advert, sent after the loss, keeps the backup a backup.
#[test]
fn a_report_counts_from_the_loss_unless_it_was_read_late() {
    let mut sim = backup_of_high_until_1s();
    let lost = ms(1003);
    sim.run_until(lost + us(50));
    assert!(sim.inst.master_lost(lost, lost, PEER_HIGH));
    assert_eq!(sim.inst.poll_timeout(), Some(lost + sim.inst.skew_time()));

    let mut sim = backup_of_high_until_1s();
    sim.run_until(ms(1010));
    assert!(sim.inst.master_lost(lost, sim.now, PEER_HIGH));
    let skew = sim.inst.skew_time();
    assert_eq!(sim.inst.poll_timeout(), Some(ms(1010) + skew));
    // The master's advert of 1005, held up by the stall, arrives.
    sim.inst.handle_advert(
        ms(1005),
        Received {
            from: PEER_HIGH,
            priority: 150,
            interval_cs: 1,
        },
    );
    sim.run_until(ms(1010) + skew + us(10));
    assert_eq!(sim.inst.state(), State::Backup);
}

/// A false report (the master still advertises): its next advert keeps the backup a backup,
/// and reports within Master_Down_Interval of the first are not acted on.
#[test]
fn a_live_master_reported_down_keeps_its_backup_and_flaps_are_limited() {
    let mut sim = backup_of_high_until_1s();
    sim.run_until(ms(1001));
    assert!(sim.inst.master_lost(sim.now, sim.now, PEER_HIGH));
    // The master's next advert arrives within Skew_Time of the report.
    let skew = sim.inst.skew_time();
    sim.run_until(ms(1001) + skew - us(100));
    sim.advert(PEER_HIGH, 150, 1);
    sim.peer_master(PEER_HIGH, 150, 1, ms(1030));
    assert_eq!(sim.inst.state(), State::Backup);
    // A second report 20 ms after the first (< Master_Down_Interval, 34.4 ms): ignored.
    sim.run_until(ms(1021));
    assert!(!sim.inst.master_lost(sim.now, sim.now, PEER_HIGH));
    sim.peer_master(PEER_HIGH, 150, 1, ms(1200));
    assert_eq!(sim.inst.state(), State::Backup);
    // One after it is acted on.
    assert!(sim.inst.master_lost(sim.now, sim.now, PEER_HIGH));
    // A master is not a backup: nothing to bring forward.
    let mut master = Sim::started(params(Version::V3, 200, 1));
    master.run_until(ms(100));
    assert_eq!(master.inst.state(), State::Master);
    assert!(!master.inst.master_lost(master.now, master.now, PEER_HIGH));
}

/// A VRRPv3 backup (priority 120, 10 ms) following PEER_HIGH (150), whose last advert
/// came at 1 s.
fn backup_of_high_until_1s() -> Sim {
    let mut sim = Sim::started(params(Version::V3, 120, 1));
    sim.peer_master(PEER_HIGH, 150, 1, ms(1000));
    sim
}
