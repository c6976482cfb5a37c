//! One BFD session (RFC 5880 asynchronous mode, single hop), sans IO: packets that matched
//! it and a clock in, packets to send and state changes out.
//!
//! What the RFC leaves to the implementation, decided here: a packet goes out at once on
//! every state change (so the three-way handshake takes one round trip, not three
//! intervals), and while the session is not Up it sends at `idle_tx` (the RFC's one second
//! by default, keepalived's `idle_tx`) and switches to `min_tx` once Up, through a Poll
//! Sequence (§6.8.3). An interval that grows waits for the sequence to end; one that shrinks
//! applies at once; the detection time is never shortened before the peer confirmed.

use std::{collections::VecDeque, time::Duration};

use ha_common::bfd::STALL_NS;

use super::packet::{Control, Diag, State};

/// A session's parameters (`bfd_instance`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Desired Min TX Interval while Up.
    pub min_tx: Duration,
    /// Required Min RX Interval.
    pub min_rx: Duration,
    /// Desired Min TX Interval while not Up.
    pub idle_tx: Duration,
    /// Detect Mult.
    pub multiplier: u8,
    /// Passive role: nothing is sent before the peer is heard (§6.1).
    pub passive: bool,
    /// Simple Password authentication: key ID and password.
    pub password: Option<(u8, Vec<u8>)>,
}

/// What the session asks of its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Send(Control),
    /// `at`: when it happened; for a detection time run out, when it ran out (the owner
    /// may learn of it later).
    Changed {
        from: State,
        to: State,
        diag: Diag,
        at: Duration,
    },
}

/// Why a packet that reached the session was discarded (§6.8.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Discard {
    /// Your Discriminator zero while the sender is neither Down nor AdminDown.
    NoDiscriminator,
    /// Authentication present where none is configured, absent, or wrong.
    Auth,
    /// We are AdminDown.
    AdminDown,
}

impl Discard {
    pub fn as_str(self) -> &'static str {
        match self {
            Discard::NoDiscriminator => "no_discriminator",
            Discard::Auth => "authentication",
            Discard::AdminDown => "admin_down",
        }
    }
}

/// Counters and the last figures, for the status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub received: u64,
    pub sent: u64,
    pub state_changes: u64,
    pub discarded: u64,
}

/// A poll sequence in progress: the values it announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Poll {
    tx: Duration,
    rx: Duration,
}

#[derive(Debug)]
pub struct Session {
    cfg: Config,
    local_discr: u32,
    remote_discr: u32,
    state: State,
    remote_state: State,
    diag: Diag,
    remote_min_rx: Duration,
    remote_min_tx: Duration,
    remote_mult: u8,
    /// The Desired Min TX and Required Min RX in force (§6.8.3: a change waits for its poll
    /// sequence where applying it at once could make the peer declare us down).
    tx_in_force: Duration,
    rx_in_force: Duration,
    poll: Option<Poll>,
    next_tx: Option<Duration>,
    detect_at: Option<Duration>,
    rng: u64,
    actions: VecDeque<Action>,
    pub stats: Stats,
    /// The kernel times the peer out (XDP): no detection timer here; silence arrives
    /// through [`Session::expired`].
    delegated: bool,
    /// The detection timer was already extended for a stall of this host since the peer
    /// was last heard ([`Session::stalled`]).
    stall_forgiven: bool,
    /// The kernel sends the periodic packets ([`Session::hand_tx`]): none are scheduled here.
    tx_handed: bool,
}

fn us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl Session {
    /// A session in Down whose first packet (unless passive) goes out at `now`. `seed`
    /// drives the transmit jitter.
    pub fn new(cfg: Config, local_discr: u32, seed: u64, now: Duration) -> Self {
        let idle = cfg.idle_tx;
        let rx = cfg.min_rx;
        let mut session = Session {
            next_tx: (!cfg.passive).then_some(now),
            cfg,
            local_discr,
            remote_discr: 0,
            state: State::Down,
            remote_state: State::Down,
            diag: Diag::None,
            // §6.8.1: 1 µs until the peer says.
            remote_min_rx: Duration::from_micros(1),
            remote_min_tx: Duration::ZERO,
            remote_mult: 0,
            tx_in_force: idle,
            rx_in_force: rx,
            poll: None,
            detect_at: None,
            stall_forgiven: false,
            rng: seed | 1,
            actions: VecDeque::new(),
            stats: Stats::default(),
            delegated: false,
            tx_handed: false,
        };
        session.jitter();
        session
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn remote_state(&self) -> State {
        self.remote_state
    }

    pub fn diag(&self) -> Diag {
        self.diag
    }

    pub fn local_discr(&self) -> u32 {
        self.local_discr
    }

    pub fn remote_discr(&self) -> u32 {
        self.remote_discr
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Whether a Poll Sequence of ours waits for its Final.
    pub fn polling(&self) -> bool {
        self.poll.is_some()
    }

    /// Hands the detection timer to the kernel (`on`), or takes it back: the peer then has
    /// a whole detection time from `now`.
    pub fn delegate(&mut self, on: bool, now: Duration) {
        if on == self.delegated {
            return;
        }
        self.delegated = on;
        self.detect_at = match self.state {
            _ if on => None,
            State::Init | State::Up => Some(now + self.detection_time()),
            _ => None,
        };
    }

    /// Hands the periodic packets to the kernel (`on`): from `now` none is scheduled here,
    /// and the kernel sends [`Session::periodic`] every [`Session::next_gap`]; or takes them
    /// back: the next goes at once. Answers (a Final, a change of state) are sent here
    /// either way.
    pub fn hand_tx(&mut self, on: bool, now: Duration) {
        if on == self.tx_handed {
            return;
        }
        self.tx_handed = on;
        if on {
            self.next_tx = None;
        } else if self.tx_interval().is_some() && !(self.cfg.passive && self.remote_discr == 0) {
            self.next_tx = Some(now);
        }
    }

    /// The interval until the next periodic packet, jittered as [`Session::schedule`] does.
    pub fn next_gap(&mut self) -> Duration {
        let interval = self.tx_interval().unwrap_or(self.cfg.idle_tx);
        self.jittered(interval)
    }

    /// The kernel saw the peer silent for the detection time, which ran out `at`: as
    /// [`Session::on_timeout`] would have, had the timer been here.
    pub fn expired(&mut self, at: Duration, now: Duration) {
        self.delegated = false;
        self.detect_at = Some(at.min(now));
        self.on_timeout(now);
    }

    /// This host could not run us for `stalled` up to `now` (the loop woke that late). When
    /// the whole machine stops (a hypervisor pausing or throttling a VM, the peer a VM
    /// beside us), the peer stopped sending as well, and the packet it sends on waking is
    /// still on its way: a detection time that ran out meanwhile (later than
    /// [`STALL_NS`]) is judged again one of the peer's intervals later, once per silence of
    /// the peer, so a real failure costs at most that much more.
    pub fn stalled(&mut self, now: Duration, stalled: Duration) {
        if !self.stall_forgiven
            && self.detect_at.is_some_and(|at| at <= now)
            && stalled > Duration::from_nanos(STALL_NS)
        {
            self.stall_forgiven = true;
            self.detect_at = Some(now + self.peer_interval());
        }
    }

    /// The peer's Detect Mult, as its last packet said.
    pub fn remote_mult(&self) -> u8 {
        self.remote_mult
    }

    /// The Desired Min TX this session announces now.
    fn desired_tx(&self) -> Duration {
        if self.state == State::Up {
            self.cfg.min_tx
        } else {
            self.cfg.idle_tx
        }
    }

    /// The interval between our periodic packets, jitter aside (§6.8.7), if we send any.
    pub fn tx_interval(&self) -> Option<Duration> {
        (!self.remote_min_rx.is_zero()).then(|| self.tx_in_force.max(self.remote_min_rx))
    }

    /// How long the peer may stay silent before the session goes down (§6.8.4).
    pub fn detection_time(&self) -> Duration {
        self.peer_interval() * u32::from(self.remote_mult)
    }

    /// The interval the peer's packets come at, jitter aside.
    fn peer_interval(&self) -> Duration {
        self.rx_in_force.max(self.remote_min_tx)
    }

    /// Whether the peer's time runs out at `now` (a send alone is not).
    pub fn detection_due(&self, now: Duration) -> bool {
        self.detect_at.is_some_and(|t| t <= now)
    }

    /// The next instant [`Session::on_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Duration> {
        match (self.next_tx, self.detect_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// New parameters (a reload): the Desired Min TX and Required Min RX change through a
    /// poll sequence while Up.
    pub fn reconfigure(&mut self, cfg: Config, now: Duration) {
        let passive_changed = cfg.passive != self.cfg.passive;
        self.cfg = cfg;
        self.announce_intervals();
        if passive_changed && !self.cfg.passive && self.next_tx.is_none() {
            self.next_tx = Some(now);
        }
    }

    /// Timers: a packet due, the detection time run out.
    pub fn on_timeout(&mut self, now: Duration) {
        if let Some(expired) = self.detect_at.filter(|&at| at <= now) {
            self.detect_at = None;
            // §6.8.1: the peer is forgotten after a Detection Time of silence.
            self.remote_discr = 0;
            self.remote_state = State::Down;
            if matches!(self.state, State::Init | State::Up) {
                self.change(State::Down, Diag::DetectionTimeExpired, expired, now, false);
            }
            if self.cfg.passive {
                self.next_tx = None;
            }
        }
        if self.next_tx.is_some_and(|at| at <= now) {
            self.send(false);
            self.schedule(now);
        }
    }

    /// A packet that matched this session (by Your Discriminator, or by source address when
    /// that is zero) and passed [`Control::parse`].
    pub fn on_packet(&mut self, now: Duration, p: &Control) -> Result<(), Discard> {
        let result = self.receive(now, p);
        match result {
            Ok(()) => self.stats.received += 1,
            Err(_) => self.stats.discarded += 1,
        }
        result
    }

    fn receive(&mut self, now: Duration, p: &Control) -> Result<(), Discard> {
        if p.your_discr == 0 && !matches!(p.state, State::Down | State::AdminDown) {
            return Err(Discard::NoDiscriminator);
        }
        match (&p.password, &self.cfg.password) {
            (None, None) => {}
            (Some(got), Some(want)) if got == want => {}
            _ => return Err(Discard::Auth),
        }
        if self.state == State::AdminDown {
            return Err(Discard::AdminDown);
        }
        let interval_before = self.tx_interval();
        self.remote_discr = p.my_discr;
        self.remote_state = p.state;
        self.remote_min_rx = Duration::from_micros(u64::from(p.required_min_rx_us));
        self.remote_min_tx = Duration::from_micros(u64::from(p.desired_min_tx_us));
        self.remote_mult = p.detect_mult;
        if p.final_
            && let Some(poll) = self.poll.take()
        {
            self.tx_in_force = poll.tx;
            self.rx_in_force = poll.rx;
        }
        let next = match (self.state, p.state) {
            (State::Down | State::Init | State::Up, State::AdminDown)
                if self.state != State::Down =>
            {
                Some((State::Down, Diag::NeighborSignaledDown))
            }
            (State::Down, State::Down) => Some((State::Init, Diag::None)),
            (State::Down | State::Init, State::Init) | (State::Init, State::Up) => {
                Some((State::Up, Diag::None))
            }
            (State::Up, State::Down) => Some((State::Down, Diag::NeighborSignaledDown)),
            _ => None,
        };
        self.stall_forgiven = false;
        if !self.delegated {
            self.detect_at = Some(now + self.detection_time());
        }
        if let Some((to, diag)) = next {
            self.change(to, diag, now, now, p.poll);
        } else if p.poll {
            self.send(true);
        } else if self.next_tx.is_none() {
            // Passive: the peer is heard, we answer from now on.
            self.schedule(now);
        }
        // A shorter interval (the peer asks for more, or our poll ended) takes effect now:
        // a packet scheduled at the longer one (a peer's Init asking for 1 s) would come
        // after the peer's detection time at the shorter.
        if let (Some(before), Some(after), Some(at)) =
            (interval_before, self.tx_interval(), self.next_tx)
            && after < before
        {
            let sooner = now + self.jittered(after);
            self.next_tx = Some(at.min(sooner));
        }
        Ok(())
    }

    /// Sends AdminDown (diag 7) at once, as a stopping agent does, so the peer goes Down at
    /// once instead of after its detection time.
    pub fn admin_down(&mut self, now: Duration) {
        if self.state != State::AdminDown {
            self.change(
                State::AdminDown,
                Diag::AdministrativelyDown,
                now,
                now,
                false,
            );
        }
    }

    /// `final_`: the packet that caused it polled, and the one sent now answers; `at`: when
    /// the change happened, `now` or earlier.
    fn change(&mut self, to: State, diag: Diag, at: Duration, now: Duration, final_: bool) {
        let from = self.state;
        self.state = to;
        self.diag = diag;
        self.stats.state_changes += 1;
        self.actions
            .push_back(Action::Changed { from, to, diag, at });
        self.announce_intervals();
        // The new state goes out at once (a Final too, should the packet have polled).
        if !self.cfg.passive || self.remote_discr != 0 || to == State::AdminDown {
            self.send(final_);
            self.schedule(now);
        }
    }

    /// Brings the announced intervals to what the state and configuration want: at once
    /// when not Up, else through a poll sequence.
    fn announce_intervals(&mut self) {
        let want = Poll {
            tx: self.desired_tx(),
            rx: self.cfg.min_rx,
        };
        if self.state != State::Up {
            self.poll = None;
            self.tx_in_force = want.tx;
            self.rx_in_force = want.rx;
            return;
        }
        if want.tx == self.tx_in_force && want.rx == self.rx_in_force {
            self.poll = None;
            return;
        }
        // Shorter transmission and longer detection are safe at once.
        self.tx_in_force = self.tx_in_force.min(want.tx);
        self.rx_in_force = self.rx_in_force.max(want.rx);
        self.poll = Some(want);
    }

    fn send(&mut self, final_: bool) {
        self.stats.sent += 1;
        let mut packet = self.periodic();
        packet.final_ = final_;
        packet.poll &= !final_;
        self.actions.push_back(Action::Send(packet));
    }

    /// The periodic packet this session sends now.
    pub fn periodic(&self) -> Control {
        let (tx, rx) = match self.poll {
            Some(poll) => (poll.tx, poll.rx),
            None => (self.tx_in_force, self.rx_in_force),
        };
        Control {
            diag: self.diag,
            state: self.state,
            poll: self.poll.is_some(),
            final_: false,
            cpi: false,
            demand: false,
            detect_mult: self.cfg.multiplier,
            my_discr: self.local_discr,
            your_discr: self.remote_discr,
            desired_min_tx_us: us(tx),
            required_min_rx_us: us(rx),
            required_min_echo_rx_us: 0,
            password: self.cfg.password.clone(),
        }
    }

    /// The next periodic packet: the interval less 0-25 % (less 10-25 % with a Detect Mult
    /// of 1), so that sessions do not fall into step (§6.8.7). None while the peer asks for
    /// nothing, or while passive and not yet heard.
    fn schedule(&mut self, now: Duration) {
        self.next_tx = match self.tx_interval() {
            _ if self.tx_handed => None,
            Some(_) if self.cfg.passive && self.remote_discr == 0 => None,
            Some(interval) => Some(now + self.jittered(interval)),
            None => None,
        };
    }

    fn jittered(&mut self, interval: Duration) -> Duration {
        let r = self.jitter();
        let (low, span) = if self.cfg.multiplier == 1 {
            (75, 15)
        } else {
            (75, 25)
        };
        // low..low+span percent of the interval, in 1/1000 steps.
        let permille = low * 10 + (r % (span * 10 + 1));
        interval * u32::try_from(permille).unwrap_or(1000) / 1000
    }

    /// xorshift64*: enough to keep sessions apart.
    fn jitter(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn cfg(min: Duration, multiplier: u8) -> Config {
        Config {
            min_tx: min,
            min_rx: min,
            idle_tx: Duration::from_secs(1),
            multiplier,
            passive: false,
            password: None,
        }
    }

    /// Two sessions joined by a link with a fixed delay, under a virtual clock.
    struct Pair {
        now: Duration,
        sides: [Session; 2],
        /// (arrival, to side, packet)
        in_flight: Vec<(Duration, usize, Control)>,
        delay: Duration,
        /// Packets a side sent, with their time.
        sent: [Vec<(Duration, Control)>; 2],
        changes: [Vec<(Duration, State, Diag)>; 2],
        /// Side 1 dead: sends and hears nothing.
        dead: bool,
    }

    impl Pair {
        fn new(a: Config, b: Config) -> Self {
            Pair {
                now: Duration::ZERO,
                sides: [
                    Session::new(a, 0x1111, 1, Duration::ZERO),
                    Session::new(b, 0x2222, 2, Duration::from_micros(300)),
                ],
                in_flight: Vec::new(),
                delay: Duration::from_micros(100),
                sent: [Vec::new(), Vec::new()],
                changes: [Vec::new(), Vec::new()],
                dead: false,
            }
        }

        fn collect(&mut self) {
            for side in 0..2 {
                while let Some(action) = self.sides[side].poll_action() {
                    match action {
                        Action::Send(p) => {
                            self.sent[side].push((self.now, p.clone()));
                            if !(self.dead && side == 1) {
                                self.in_flight.push((self.now + self.delay, 1 - side, p));
                            }
                        }
                        Action::Changed { to, diag, at, .. } => {
                            self.changes[side].push((at, to, diag));
                        }
                    }
                }
            }
        }

        /// Runs until `until`.
        fn run(&mut self, until: Duration) {
            loop {
                self.collect();
                let timers = (0..2).filter_map(|s| self.sides[s].poll_timeout());
                let arrivals = self.in_flight.iter().map(|(at, ..)| *at);
                let Some(next) = timers.chain(arrivals).min() else {
                    break;
                };
                if next > until {
                    break;
                }
                self.now = next;
                if let Some(i) = self.in_flight.iter().position(|(at, ..)| *at <= next) {
                    let (_, to, p) = self.in_flight.remove(i);
                    self.deliver(to, &p);
                    continue;
                }
                for s in 0..2 {
                    if self.sides[s].poll_timeout().is_some_and(|t| t <= next) {
                        self.sides[s].on_timeout(next);
                    }
                }
            }
            self.now = until;
        }

        /// Nothing runs for `d` (the machine both sides share is paused); then packets that
        /// arrived meanwhile are read, and each side's timers run, told how late they are.
        fn pause(&mut self, d: Duration) {
            self.now += d;
            let now = self.now;
            let (arrived, later) = std::mem::take(&mut self.in_flight)
                .into_iter()
                .partition(|(at, ..)| *at <= now);
            self.in_flight = later;
            for (_, to, p) in arrived {
                self.deliver(to, &p);
            }
            for side in &mut self.sides {
                if let Some(due) = side.poll_timeout().filter(|&t| t <= now) {
                    side.stalled(now, now - due);
                    side.on_timeout(now);
                }
            }
        }

        /// A packet arriving now at side `to`, unless that side is dead.
        fn deliver(&mut self, to: usize, p: &Control) {
            if !(self.dead && to == 1) {
                let _ = self.sides[to].on_packet(self.now, p);
            }
        }

        /// A pair Up at 1 ms × 3 for 100 ms, whose side 1 then dies with nothing in flight.
        fn peer_died() -> Self {
            let mut pair = Pair::new(cfg(MS, 3), cfg(MS, 3));
            pair.run(Duration::from_millis(100));
            pair.dead = true;
            pair.in_flight.clear();
            pair
        }

        fn states(&self) -> (State, State) {
            (self.sides[0].state(), self.sides[1].state())
        }
    }

    #[test]
    fn two_active_sessions_come_up_in_one_exchange_then_poll_down_to_min_tx() {
        let mut pair = Pair::new(cfg(MS, 3), cfg(MS, 3));
        pair.run(Duration::from_millis(5));
        assert_eq!(pair.states(), (State::Up, State::Up));
        // Down → Init → Up: each change answered at once, within a millisecond.
        let up_at = pair.changes[0].iter().find(|c| c.1 == State::Up).unwrap().0;
        assert!(up_at < MS, "up after {up_at:?}");
        // The poll sequence that announced 1 ms ended with a Final from each side.
        pair.run(Duration::from_millis(50));
        assert!(pair.sent[0].iter().any(|(_, p)| p.poll));
        assert!(pair.sent[0].iter().any(|(_, p)| p.final_));
        assert_eq!(pair.sides[0].tx_interval(), Some(MS));
        assert_eq!(pair.sides[0].detection_time(), 3 * MS);
        // Steady: periodic packets 0.75-1 ms apart, without P or F.
        let before = pair.sent[0].len();
        pair.run(Duration::from_millis(1050));
        let steady: Vec<Duration> = pair.sent[0][before..].iter().map(|(t, _)| *t).collect();
        assert!(steady.len() >= 1000, "{} packets in a second", steady.len());
        for gap in steady.windows(2).map(|w| w[1] - w[0]) {
            assert!(
                (Duration::from_micros(750)..=MS).contains(&gap),
                "gap {gap:?}"
            );
        }
        assert!(
            pair.sent[0][before..]
                .iter()
                .all(|(_, p)| !p.poll && !p.final_)
        );
        assert_eq!(pair.states(), (State::Up, State::Up));
        // The first to hear Init goes straight from Down to Up.
        let path = |side: usize| -> Vec<State> { pair.changes[side].iter().map(|c| c.1).collect() };
        assert_eq!(path(0), [State::Up]);
        assert_eq!(path(1), [State::Init, State::Up]);
    }

    #[test]
    fn a_silent_peer_is_down_after_the_detection_time_not_before() {
        let mut pair = Pair::new(cfg(MS, 3), cfg(MS, 3));
        pair.run(Duration::from_millis(100));
        assert_eq!(pair.states(), (State::Up, State::Up));
        let last_heard = pair.sent[1].last().unwrap().0 + pair.delay;
        pair.dead = true;
        pair.run(Duration::from_millis(200));
        let (at, state, diag) = *pair.changes[0].last().unwrap();
        assert_eq!((state, diag), (State::Down, Diag::DetectionTimeExpired));
        assert_eq!(
            at - last_heard,
            3 * MS,
            "down {:?} after the last packet",
            at - last_heard
        );
        assert_eq!(pair.sides[0].remote_discr(), 0);
        // Back to the idle rate, and the peer forgotten in what it sends.
        let after: Vec<&(Duration, Control)> =
            pair.sent[0].iter().filter(|(t, _)| *t > at).collect();
        assert!(
            after
                .iter()
                .all(|(_, p)| p.your_discr == 0 && p.state == State::Down)
        );
        assert!(after.iter().all(|(_, p)| p.desired_min_tx_us == 1_000_000));
        assert!(after.len() <= 2, "{} packets sent while down", after.len());
    }

    #[test]
    fn a_timer_run_late_dates_the_down_when_the_time_ran_out() {
        let mut pair = Pair::peer_died();
        // Nothing more is heard: the detection time runs out within 3 ms; the owner's
        // timer fires 20 ms late.
        let late = pair.now + 20 * MS;
        pair.sides[0].on_timeout(late);
        pair.collect();
        let (at, state, diag) = *pair.changes[0].last().unwrap();
        assert_eq!((state, diag), (State::Down, Diag::DetectionTimeExpired));
        assert!(at <= pair.now + 3 * MS, "{at:?}, now {:?}", pair.now);
    }

    #[test]
    fn a_pause_of_the_whole_machine_is_not_the_peers_silence() {
        // A VM throttled by its host for 7 ms, both ends in it, at 1 ms × 3.
        let mut pair = Pair::new(cfg(MS, 3), cfg(MS, 3));
        pair.run(Duration::from_millis(100));
        assert_eq!(pair.states(), (State::Up, State::Up));
        let before = pair.changes.clone();
        for _ in 0..5 {
            pair.pause(7 * MS);
            pair.run(pair.now + 50 * MS);
        }
        assert_eq!(pair.changes, before, "a pause took a session down");
        assert_eq!(pair.states(), (State::Up, State::Up));
    }

    #[test]
    fn a_stall_delays_a_real_failure_by_one_interval_at_most() {
        let mut pair = Pair::peer_died();
        // This host stalls 7 ms as its peer dies: judged again an interval after waking...
        pair.pause(7 * MS);
        let woke = pair.now;
        assert_eq!(pair.sides[0].state(), State::Up);
        pair.run(woke + 10 * MS);
        let (at, state, diag) = *pair.changes[0].last().unwrap();
        assert_eq!((state, diag), (State::Down, Diag::DetectionTimeExpired));
        assert_eq!(at, woke + MS);
        // ...once per silence: a second stall before anything is heard is not forgiven.
        let mut pair = Pair::peer_died();
        pair.pause(7 * MS);
        pair.pause(7 * MS);
        assert_eq!(pair.sides[0].state(), State::Down);
        // A timer's usual lateness is no stall.
        let mut pair = Pair::peer_died();
        let detect = pair.sides[0].detect_at.unwrap();
        let usual = Duration::from_nanos(STALL_NS / 2);
        pair.now = detect + usual;
        pair.sides[0].stalled(pair.now, usual);
        pair.sides[0].on_timeout(pair.now);
        assert_eq!(pair.sides[0].state(), State::Down);
    }

    #[test]
    fn a_passive_session_waits_to_be_heard() {
        let passive = Config {
            passive: true,
            ..cfg(MS * 10, 3)
        };
        let mut pair = Pair::new(passive.clone(), passive);
        pair.run(Duration::from_secs(3));
        assert!(pair.sent[0].is_empty() && pair.sent[1].is_empty());
        let mut pair = Pair::new(passive_one(), cfg(MS * 10, 3));
        pair.run(Duration::from_secs(3));
        assert_eq!(pair.states(), (State::Up, State::Up));
        // Its first packet answers the peer's first.
        assert!(pair.sent[0][0].0 >= pair.sent[1][0].0 + pair.delay);
    }

    fn passive_one() -> Config {
        Config {
            passive: true,
            ..cfg(MS * 10, 3)
        }
    }

    #[test]
    fn admin_down_takes_the_peer_down_at_once_with_its_reason() {
        let mut pair = Pair::new(cfg(MS * 10, 3), cfg(MS * 10, 3));
        pair.run(Duration::from_millis(100));
        pair.sides[1].admin_down(pair.now);
        let at = pair.now;
        pair.run(Duration::from_millis(101));
        let (when, state, diag) = *pair.changes[0].last().unwrap();
        assert_eq!((state, diag), (State::Down, Diag::NeighborSignaledDown));
        assert!(when - at <= pair.delay);
        assert_eq!(pair.sides[1].diag(), Diag::AdministrativelyDown);
        // An AdminDown session discards what it hears and stays down.
        pair.run(Duration::from_secs(3));
        assert_eq!(pair.states(), (State::Down, State::AdminDown));
    }

    #[test]
    fn a_poll_is_answered_with_a_final_at_once_and_a_larger_interval_waits_for_it() {
        let mut pair = Pair::new(cfg(MS * 10, 3), cfg(MS * 10, 3));
        pair.run(Duration::from_millis(200));
        assert_eq!(pair.sides[0].tx_interval(), Some(MS * 10));
        // Side 0 slows to 50 ms: until the Final it keeps sending every 10 ms.
        pair.dead = true;
        pair.sides[0].reconfigure(cfg(MS * 50, 3), pair.now);
        assert_eq!(pair.sides[0].tx_interval(), Some(MS * 10));
        pair.dead = false;
        let start = pair.now;
        let before = pair.sent[1].len();
        pair.run(start + MS * 100);
        let finals: Vec<Duration> = pair.sent[1][before..]
            .iter()
            .filter(|(_, p)| p.final_)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(finals.len(), 1);
        // Answered within the link delay of the first polled packet it heard.
        let polled = pair.sent[0]
            .iter()
            .find(|(t, p)| *t >= start && p.poll)
            .unwrap()
            .0;
        assert_eq!(finals[0], polled + pair.delay);
        assert_eq!(pair.sides[0].tx_interval(), Some(MS * 50));
        // The peer's detection time grew with it.
        assert_eq!(pair.sides[1].detection_time(), MS * 150);
        assert_eq!(pair.states(), (State::Up, State::Up));
    }

    #[test]
    fn packets_without_a_discriminator_or_with_the_wrong_password_are_discarded() {
        let secret = Config {
            password: Some((1, b"secret".to_vec())),
            ..cfg(MS * 10, 3)
        };
        let mut s = Session::new(secret.clone(), 9, 3, Duration::ZERO);
        let packet = |state, your_discr, password: Option<&[u8]>| Control {
            diag: Diag::None,
            state,
            poll: false,
            final_: false,
            cpi: false,
            demand: false,
            detect_mult: 3,
            my_discr: 5,
            your_discr,
            desired_min_tx_us: 10_000,
            required_min_rx_us: 10_000,
            required_min_echo_rx_us: 0,
            password: password.map(|p| (1, p.to_vec())),
        };
        let now = Duration::ZERO;
        assert_eq!(
            s.on_packet(now, &packet(State::Up, 0, Some(b"secret"))),
            Err(Discard::NoDiscriminator)
        );
        assert_eq!(
            s.on_packet(now, &packet(State::Down, 0, None)),
            Err(Discard::Auth)
        );
        assert_eq!(
            s.on_packet(now, &packet(State::Down, 0, Some(b"wrong!"))),
            Err(Discard::Auth)
        );
        assert_eq!(s.state(), State::Down);
        assert_eq!(
            s.on_packet(now, &packet(State::Down, 0, Some(b"secret"))),
            Ok(())
        );
        assert_eq!(s.state(), State::Init);
        assert_eq!(s.stats.discarded, 3);
    }

    #[test]
    fn a_delegated_session_keeps_no_detection_timer_and_expires_when_told() {
        let mut pair = Pair::new(cfg(MS, 3), cfg(MS, 3));
        pair.run(Duration::from_millis(100));
        pair.sides[0].delegate(true, pair.now);
        // Silent peer: nothing here notices; the kernel's report does.
        pair.dead = true;
        pair.run(Duration::from_millis(200));
        assert_eq!(pair.sides[0].state(), State::Up);
        // Reported late: the Down counts from when the time ran out.
        let ran_out = pair.now - Duration::from_millis(150);
        pair.sides[0].expired(ran_out, pair.now);
        pair.collect();
        assert_eq!(
            pair.changes[0].last().copied(),
            Some((ran_out, State::Down, Diag::DetectionTimeExpired))
        );
        // Taken back: the peer gets a whole detection time from then.
        let mut pair = Pair::new(cfg(MS, 3), cfg(MS, 3));
        pair.run(Duration::from_millis(100));
        pair.sides[0].delegate(true, pair.now);
        pair.dead = true;
        pair.run(Duration::from_millis(150));
        pair.sides[0].delegate(false, pair.now);
        let back = pair.now;
        pair.run(Duration::from_millis(200));
        assert_eq!(pair.changes[0].last().map(|c| c.0), Some(back + 3 * MS));
    }

    #[test]
    fn a_shorter_interval_takes_effect_at_once_not_after_the_longer_one() {
        // FRR's bfdd, passive: its Init asks for 1 s, then, Up, it polls for 10 ms and
        // answers our poll. Our next packet must come within 10 ms, not a second after
        // the Init (bfdd would time us out 30 ms after its Final).
        let ms = Duration::from_millis;
        let mut s = Session::new(cfg(ms(10), 3), 7, 1, Duration::ZERO);
        let peer = |state, poll, final_, us| Control {
            diag: Diag::None,
            state,
            poll,
            final_,
            cpi: false,
            demand: false,
            detect_mult: 3,
            my_discr: 9,
            your_discr: 7,
            desired_min_tx_us: us,
            required_min_rx_us: us,
            required_min_echo_rx_us: 0,
            password: None,
        };
        let mut now = ms(5);
        s.on_packet(now, &peer(State::Init, false, false, 1_000_000))
            .unwrap();
        assert_eq!(s.state(), State::Up);
        now += ms(1);
        s.on_packet(now, &peer(State::Up, true, false, 10_000))
            .unwrap();
        s.on_packet(now, &peer(State::Up, false, true, 10_000))
            .unwrap();
        assert!(!s.polling());
        let next = s.poll_timeout().unwrap();
        assert!(next <= now + ms(10), "next packet at {next:?}, now {now:?}");
    }

    #[test]
    fn a_detect_mult_of_one_keeps_the_jitter_within_90_percent() {
        let mut pair = Pair::new(cfg(MS * 10, 1), cfg(MS * 10, 1));
        pair.run(Duration::from_millis(300));
        let before = pair.sent[0].len();
        pair.run(Duration::from_millis(1300));
        for gap in pair.sent[0][before..].windows(2).map(|w| w[1].0 - w[0].0) {
            assert!(
                (Duration::from_micros(7500)..=Duration::from_micros(9000)).contains(&gap),
                "gap {gap:?}"
            );
        }
    }
}
