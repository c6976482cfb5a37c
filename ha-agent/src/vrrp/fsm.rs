//! The VRRP state machine of one instance (RFC 3768 §6.4, RFC 5798 §6.4), sans IO.
//!
//! It owns no socket, clock or task: the caller feeds it inputs stamped with the current
//! time and carries out the actions it queues, then sleeps until [`Instance::poll_timeout`].
//! Time is a [`Duration`] since an arbitrary epoch (the daemon uses CLOCK_MONOTONIC; tests a
//! virtual clock).

use std::{collections::VecDeque, fmt, net::IpAddr, time::Duration};

use super::Version;

/// A point in time: the duration since an epoch chosen by the caller.
pub type Time = Duration;

const CENTISECOND: Duration = Duration::from_millis(10);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    pub vrid: u8,
    pub version: Version,
    /// Configured priority, 1..=255 (255: address owner).
    pub priority: u8,
    /// Our advertisement interval in centiseconds (v2: a multiple of 100).
    pub advert_int_cs: u16,
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// ha-agent extension: a lower-priority master is preempted after Skew_Time instead of
    /// Master_Down_Interval (it is alive, only worse: no need to wait for it to fall silent).
    pub fast_preempt: bool,
    /// Our primary address on the interface, for the equal-priority tie-break.
    pub primary_ip: IpAddr,
    /// Delay of the second gratuitous ARP burst after becoming master (zero: none).
    pub garp_delay: Duration,
    /// Period of gratuitous ARP refreshes while master.
    pub garp_refresh: Option<Duration>,
    /// A database follows the VIP (`track_replication`): the instance takes over only through
    /// [`Action::Promote`] and [`Instance::promotion_done`], and leaves MASTER through
    /// [`Action::Demote`], releasing its VIPs only at [`Instance::demoted`].
    pub gated: bool,
    /// A witness gates the takeover (`witness`): a promotion claims the VRID with adverts
    /// only once [`Instance::key_held`] says the leader key is ours, or once it hears a
    /// worse router (which must hear the claim to give the key up), as when it preempts. A
    /// node that cannot get the key must not make a master it does not hear yield.
    pub witnessed: bool,
    /// Election mode (`witness NAME election`): no adverts are sent or heard and no down
    /// timer runs; the witness's election makes the instance MASTER ([`Instance::elected`])
    /// and the loss of its lease or a better candidate ends it.
    pub elected: bool,
    /// Master_Down_Interval in Master_Adver_Intervals (3 by the RFC; keepalived's
    /// `down_timer_adverts`).
    pub down_timer_adverts: u8,
    /// A MASTER answers a lower priority with an advert of its own (keepalived's default;
    /// off with `lower_prio_no_advert`, as RFC 5798 reads).
    pub answer_lower: bool,
    /// A MASTER yielding to a higher priority sends one more advert first
    /// (`higher_prio_send_advert`), so that the other master, if it re-announces its VIPs on
    /// lower adverts, does so after our last gratuitous ARP.
    pub advert_before_yield: bool,
    /// A MASTER hearing a lower priority announces its VIPs again ([`Action::SendGarpLowerPrio`]),
    /// and once more after the delay, if any (keepalived's `garp_lower_prio_repeat`/`_delay`);
    /// `None`: never.
    pub lower_prio_garp: Option<Option<Duration>>,
    /// Period of gratuitous ARP for the VIPs on other interfaces than the instance's while
    /// MASTER ([`Action::SendGarpExtra`], keepalived's `garp_extra_if`).
    pub extra_garp: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Initialize,
    Backup,
    Master,
    Fault,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a transition happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Startup,
    /// Priority 255 owns the addresses and takes over at once.
    AddressOwner,
    /// No advert from a master for Master_Down_Interval.
    MasterDown,
    /// The master sent priority 0 (it is stopping); we waited Skew_Time.
    MasterResigned,
    /// Preemption of a lower-priority master (after preempt_delay, if any).
    Preempt {
        master: IpAddr,
        priority: u8,
    },
    /// An advert with a higher priority, or equal priority from a higher address.
    HigherPriority {
        from: IpAddr,
        priority: u8,
    },
    Shutdown,
    FaultOn,
    FaultCleared,
    /// A planned handover (`ha-agent switchover`): we resigned with priority 0.
    Switchover,
    /// The witness can no longer vouch for this node (its etcd lease may expire).
    WitnessLost,
    /// Election mode: this node won the witness's election.
    Elected,
    /// Election mode: a better candidate stands (priority, preemption): the leader yields.
    Outranked,
    /// Another member of the instance's `vrrp_sync_group` changed state.
    SyncGroup,
}

impl Reason {
    /// A name for counting transitions (metrics): the kind, without its addresses.
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::Startup => "startup",
            Reason::AddressOwner => "address_owner",
            Reason::MasterDown => "master_down",
            Reason::MasterResigned => "master_resigned",
            Reason::Preempt { .. } => "preempt",
            Reason::HigherPriority { .. } => "higher_priority",
            Reason::Shutdown => "shutdown",
            Reason::FaultOn => "fault",
            Reason::FaultCleared => "fault_cleared",
            Reason::Switchover => "switchover",
            Reason::WitnessLost => "witness_lost",
            Reason::Elected => "elected",
            Reason::Outranked => "outranked",
            Reason::SyncGroup => "sync_group",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Startup => write!(f, "startup"),
            Reason::AddressOwner => write!(f, "address owner (priority 255)"),
            Reason::MasterDown => write!(f, "no advert for Master_Down_Interval"),
            Reason::MasterResigned => write!(f, "master sent priority 0"),
            Reason::Preempt { master, priority } => {
                write!(
                    f,
                    "preempting lower-priority master {master} (priority {priority})"
                )
            }
            Reason::HigherPriority { from, priority } => {
                write!(f, "advert from {from} with priority {priority} wins")
            }
            Reason::Shutdown => write!(f, "shutdown"),
            Reason::FaultOn => write!(f, "fault"),
            Reason::FaultCleared => write!(f, "fault cleared"),
            Reason::Switchover => write!(f, "switchover"),
            Reason::WitnessLost => write!(f, "witness lost"),
            Reason::Elected => write!(f, "elected by the witness"),
            Reason::Outranked => write!(f, "a better candidate stands"),
            Reason::SyncGroup => write!(f, "its sync group moved"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    SendAdvert {
        priority: u8,
    },
    AddVips,
    RemoveVips,
    /// Announce every VIP with gratuitous ARP (one burst).
    SendGarp,
    /// The burst a MASTER sends on hearing a lower priority (`garp_lower_prio_repeat`).
    SendGarpLowerPrio,
    /// A MASTER heard a lower priority: another node took over while it could not hear this
    /// one (`notify_master_rx_lower_pri`).
    MasterRxLowerPri,
    /// The periodic announcement of the VIPs on other interfaces (`garp_extra_if`).
    SendGarpExtra,
    Transition {
        from: State,
        to: State,
        reason: Reason,
    },
    /// Gated instances: make the database writable (fence the peer, drain the relay log,
    /// clear read_only), then answer [`Instance::promotion_done`] with the same `id`. The
    /// instance claims the VRID with adverts meanwhile, so that no peer promotes at once.
    Promote {
        id: u64,
        /// The instance lost a master it had heard (not a start, resignation or retry of a
        /// start): an automatic failover, which anti-flap limits.
        failover: bool,
    },
    /// Gated instances: make the database read-only and end application sessions, then
    /// answer [`Instance::demoted`]; VIPs still held are released only then.
    Demote {
        id: u64,
    },
}

/// A received advert that passed validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub from: IpAddr,
    pub priority: u8,
    /// The sender's interval in centiseconds (learned by VRRPv3 backups).
    pub interval_cs: u16,
}

#[derive(Clone, Debug)]
pub struct Instance {
    params: Params,
    state: State,
    priority_delta: i32,
    fault: bool,
    adver_timer: Option<Time>,
    down_timer: Option<Time>,
    garp_timer: Option<Time>,
    /// The second burst after a lower priority was heard (`garp_lower_prio_delay`).
    lower_garp_timer: Option<Time>,
    /// The next `garp_extra_if` announcement.
    extra_garp_timer: Option<Time>,
    /// When a lower-priority master may be preempted (preempt_delay running).
    preempt_at: Option<Time>,
    /// The master's interval (VRRPv3 learns it; VRRPv2 uses ours).
    master_adver_int_cs: u16,
    /// The current master as last heard (address, priority), while backup.
    master: Option<(IpAddr, u8)>,
    /// Set by a priority-0 advert: the coming down-timer expiry is a resignation.
    resigned: bool,
    /// When a MASTER last answered another router's advert out of schedule: such answers are
    /// limited to one per advert interval, whatever arrives.
    last_answer: Option<Time>,
    actions: VecDeque<Action>,
    last_transition: Option<(Time, Reason)>,
    /// The promotion under way (gated instances): its id and why we take over.
    promotion: Option<(u64, Reason)>,
    /// Whether the promotion under way claims the VRID with adverts.
    claiming: bool,
    /// The demotion whose end releases the VIPs still held.
    demotion: Option<u64>,
    /// A master was heard and went silent; cleared once we are master.
    lost_master: bool,
    /// The down timer was already extended for a stall of this host since the master was
    /// last heard.
    stall_forgiven: bool,
    /// Set while another member of our sync group does not want to be master: a takeover
    /// waits (see [`Instance::set_group_hold`]).
    group_hold: bool,
    /// A takeover held back by the group, and why it was due.
    wants_master: Option<Reason>,
    next_db_id: u64,
    /// When a failure detector reported our master down ([`Instance::master_lost`]), until
    /// an advert received since shows it alive.
    master_lost_at: Option<Time>,
    /// The last such report acted on: one per Master_Down_Interval.
    last_loss: Option<Time>,
}

impl Instance {
    pub fn new(params: Params) -> Self {
        let master_adver_int_cs = params.advert_int_cs;
        Self {
            params,
            state: State::Initialize,
            priority_delta: 0,
            fault: false,
            adver_timer: None,
            down_timer: None,
            garp_timer: None,
            lower_garp_timer: None,
            extra_garp_timer: None,
            preempt_at: None,
            master_adver_int_cs,
            master: None,
            resigned: false,
            last_answer: None,
            actions: VecDeque::new(),
            last_transition: None,
            promotion: None,
            claiming: false,
            demotion: None,
            lost_master: false,
            stall_forgiven: false,
            group_hold: false,
            wants_master: None,
            next_db_id: 0,
            master_lost_at: None,
            last_loss: None,
        }
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The current master: ourselves when master, else the last advertiser we accepted.
    pub fn master(&self) -> Option<IpAddr> {
        match self.state {
            State::Master => Some(self.params.primary_ip),
            State::Backup => self.master.map(|(ip, _)| ip),
            _ => None,
        }
    }

    /// The demotion whose answer ([`Instance::demoted`]) releases the VIPs still held.
    pub fn pending_demotion(&self) -> Option<u64> {
        self.demotion
    }

    /// Whether a promotion is under way (still BACKUP, claiming the VRID).
    pub fn promoting(&self) -> bool {
        self.promotion.is_some()
    }

    pub fn last_transition(&self) -> Option<(Time, Reason)> {
        self.last_transition
    }

    /// Priority after tracker deltas: 255 stays 255, others are clamped to 1..=254.
    pub fn priority(&self) -> u8 {
        if self.params.priority == 255 {
            return 255;
        }
        (i32::from(self.params.priority) + self.priority_delta).clamp(1, 254) as u8
    }

    pub fn master_adver_interval(&self) -> Duration {
        CENTISECOND * u32::from(self.master_adver_int_cs)
    }

    fn advert_interval(&self) -> Duration {
        CENTISECOND * u32::from(self.params.advert_int_cs)
    }

    /// Skew_Time: v2 (256 - priority)/256 s; v3 (256 - priority) × Master_Adver_Interval/256.
    pub fn skew_time(&self) -> Duration {
        let scale = u32::from(256 - u16::from(self.priority()));
        match self.params.version {
            Version::V2 => Duration::from_secs(1) * scale / 256,
            Version::V3 => self.master_adver_interval() * scale / 256,
        }
    }

    /// Master_Down_Interval: 3 (`down_timer_adverts`) × Master_Adver_Interval + Skew_Time.
    pub fn master_down_interval(&self) -> Duration {
        self.master_adver_interval() * u32::from(self.params.down_timer_adverts) + self.skew_time()
    }

    /// The next action to carry out, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Instance::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Time> {
        [
            self.adver_timer,
            self.down_timer,
            self.garp_timer,
            self.lower_garp_timer,
            self.extra_garp_timer,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Initialize → Master (owner) or Backup.
    pub fn start(&mut self, now: Time) {
        if self.state != State::Initialize {
            return;
        }
        if self.fault {
            self.transition(now, State::Fault, Reason::FaultOn);
        } else if self.priority() == 255 && !self.params.elected {
            self.take_over(now, Reason::AddressOwner);
        } else {
            self.become_backup(now, Reason::Startup);
        }
    }

    pub fn handle_advert(&mut self, now: Time, advert: Received) {
        if self.params.elected {
            return;
        }
        match self.state {
            State::Backup if self.promotion.is_some() => self.promoting_rx(now, advert),
            State::Backup => self.backup_rx(now, advert),
            State::Master => self.master_rx(now, advert),
            State::Initialize | State::Fault => {}
        }
    }

    fn backup_rx(&mut self, now: Time, advert: Received) {
        // Sent before the master was seen to fail: it proves nothing about the master now.
        if self.master_lost_at.is_some_and(|lost| now < lost) {
            return;
        }
        self.master_lost_at = None;
        if advert.priority == 0 {
            self.master = Some((advert.from, 0));
            self.resigned = true;
            self.down_timer = Some(now + self.skew_time());
            return;
        }
        let lower = advert.priority < self.priority();
        if lower && self.params.preempt {
            // Remembered for status, but the down timer keeps running: we will preempt.
            self.master = Some((advert.from, advert.priority));
            if self.params.preempt_delay.is_zero() {
                if self.params.fast_preempt {
                    let at = now + self.skew_time();
                    self.down_timer = Some(self.down_timer.map_or(at, |t| t.min(at)));
                }
                return;
            }
            let at = *self
                .preempt_at
                .get_or_insert(now + self.params.preempt_delay);
            if now >= at {
                return;
            }
            // Accept the lower master until the delay ends, then preempt.
            self.accept_master(advert);
            self.down_timer = Some((now + self.master_down_interval()).min(at));
            return;
        }
        self.accept_master(advert);
        if !lower {
            self.preempt_at = None;
        }
        self.down_timer = Some(now + self.master_down_interval());
    }

    fn accept_master(&mut self, advert: Received) {
        // VRRPv3 learns the master's interval (RFC 5798 §6.4.2); a VRRPv2 master's equals
        // ours unless its adverts disagree with our configuration, and then its own pace is
        // what its silence must be judged by.
        if advert.interval_cs > 0 {
            self.master_adver_int_cs = advert.interval_cs;
        }
        self.master = Some((advert.from, advert.priority));
        self.resigned = false;
        self.stall_forgiven = false;
        self.wants_master = None;
    }

    fn master_rx(&mut self, now: Time, advert: Received) {
        let ours = self.priority();
        if advert.priority == 0 {
            // Another master resigning: announce ourselves at once.
            if self.may_answer(now) {
                self.send_advert(ours);
                self.adver_timer = Some(now + self.advert_interval());
            }
        } else if advert.priority > ours
            || (advert.priority == ours && advert.from > self.params.primary_ip)
        {
            if self.params.advert_before_yield {
                self.send_advert(ours);
            }
            self.adver_timer = None;
            self.garp_timer = None;
            self.lower_garp_timer = None;
            self.extra_garp_timer = None;
            self.release_vips();
            self.accept_master(advert);
            self.preempt_at = None;
            self.down_timer = Some(now + self.master_down_interval());
            let reason = Reason::HigherPriority {
                from: advert.from,
                priority: advert.priority,
            };
            self.transition(now, State::Backup, reason);
        } else if self.may_answer(now) {
            // A lower-priority master: reassert at once (RFC 9568, keepalived's default), which
            // heals a split brain without waiting for our timer, and announce the VIPs again
            // for whoever the other master's gratuitous ARP reached.
            if self.params.answer_lower {
                self.send_advert(ours);
            }
            self.actions.push_back(Action::MasterRxLowerPri);
            if let Some(delay) = self.params.lower_prio_garp {
                self.actions.push_back(Action::SendGarpLowerPrio);
                self.lower_garp_timer = delay.map(|d| now + d);
            }
        }
    }

    /// While promoting we claim the VRID as a master would: a better router makes us give up
    /// the promotion, a worse one hears from us at once.
    fn promoting_rx(&mut self, now: Time, advert: Received) {
        let ours = self.priority();
        if advert.priority > ours
            || (advert.priority == ours && advert.from > self.params.primary_ip)
        {
            self.abort_promotion();
            self.accept_master(advert);
            self.down_timer = Some(now + self.master_down_interval());
        } else if !self.claiming {
            // A worse router we hear may hold the key we wait for: it gives it up only once
            // it hears our claim.
            self.claiming = true;
            self.send_advert(ours);
            self.adver_timer = Some(now + self.advert_interval());
        } else if self.may_answer(now) {
            self.send_advert(ours);
        }
    }

    /// A failure detector (a BFD session to `peer`) saw `peer` fail at `now`. A backup
    /// following `peer` takes over Skew_Time after `judged` instead of Master_Down_Interval
    /// (ha-agent's `bfd_takeover`), unless an advert received after `now` shows the master
    /// alive; at most once per Master_Down_Interval, so a flapping session makes no takeover
    /// per flap. `judged` is `now` for a report that came at once, and when it was read for
    /// one that came late (this host stalled: the adverts the stall held up get Skew_Time to
    /// arrive). Whether the takeover was brought forward.
    pub fn master_lost(&mut self, now: Time, judged: Time, peer: IpAddr) -> bool {
        let following = matches!(self.master, Some((master, p)) if master == peer && p > 0);
        if self.state != State::Backup || self.promotion.is_some() || !following {
            return false;
        }
        if self
            .last_loss
            .is_some_and(|last| now < last + self.master_down_interval())
        {
            return false;
        }
        self.last_loss = Some(now);
        self.master_lost_at = Some(now);
        let at = judged.max(now) + self.skew_time();
        self.down_timer = Some(self.down_timer.map_or(at, |t| t.min(at)));
        true
    }

    /// The witness gave us the leader key for promotion `id`: the claim starts, if it had
    /// not.
    pub fn key_held(&mut self, now: Time, id: u64) {
        if self.promotion.is_some_and(|(current, _)| current == id) && !self.claiming {
            self.claiming = true;
            self.send_advert(self.priority());
            self.adver_timer = Some(now + self.advert_interval());
        }
    }

    /// Gives up a promotion under way; the database is made read-only again in case the
    /// promotion got as far as clearing it.
    fn abort_promotion(&mut self) {
        self.claiming = false;
        if self.promotion.take().is_some() {
            self.adver_timer = None;
            let id = self.db_id();
            self.actions.push_back(Action::Demote { id });
        }
    }

    fn db_id(&mut self) -> u64 {
        self.next_db_id += 1;
        self.next_db_id
    }

    /// The answer to [`Action::Promote`]: on success the instance becomes MASTER (VIPs, ARP,
    /// notify), else it stays BACKUP, stops claiming the VRID and tries again after
    /// Master_Down_Interval if no master is heard. A stale answer is ignored.
    pub fn promotion_done(&mut self, now: Time, id: u64, promoted: bool) {
        let Some((current, reason)) = self.promotion else {
            return;
        };
        if current != id {
            return;
        }
        self.promotion = None;
        self.claiming = false;
        if promoted && self.state == State::Backup {
            self.become_master(now, reason);
        } else {
            self.adver_timer = None;
            self.down_timer = self.down_after(now);
        }
    }

    /// The answer to [`Action::Demote`]: VIPs kept until then are released now (unless we are
    /// MASTER again).
    pub fn demoted(&mut self, id: u64) {
        if self.demotion == Some(id) {
            self.demotion = None;
            if self.state != State::Master {
                self.actions.push_back(Action::RemoveVips);
            }
        }
    }

    /// `ha-agent switchover`: a MASTER resigns (priority 0) and stays BACKUP; its peer takes
    /// over after Skew_Time. Returns whether it was MASTER.
    pub fn resign(&mut self, now: Time) -> bool {
        if self.state != State::Master {
            return false;
        }
        self.leave_master();
        self.become_backup(now, Reason::Switchover);
        true
    }

    /// The witness can no longer vouch for this node: a MASTER steps down as for a
    /// resignation (priority-0 advert, database read-only, VIPs released); a promotion under
    /// way is given up and tried again after Master_Down_Interval.
    pub fn witness_lost(&mut self, now: Time) {
        self.step_down(now, Reason::WitnessLost);
    }

    /// Election mode: this node won the election. It becomes MASTER (through the database's
    /// promotion when gated) unless it cannot (FAULT, or a promotion under way); returns
    /// whether it takes over, else the caller gives the leadership back. `failover`: another
    /// node led before (anti-flap counts it).
    pub fn elected(&mut self, now: Time, failover: bool) -> bool {
        if !self.params.elected || self.state != State::Backup || self.promotion.is_some() {
            return self.state == State::Master;
        }
        self.lost_master = failover;
        self.take_over(now, Reason::Elected);
        true
    }

    /// Election mode: a better candidate stands; the MASTER yields as for a lost witness.
    pub fn outranked(&mut self, now: Time) {
        self.step_down(now, Reason::Outranked);
    }

    fn step_down(&mut self, now: Time, reason: Reason) {
        match self.state {
            State::Master => {
                self.leave_master();
                self.become_backup(now, reason);
            }
            State::Backup if self.promotion.is_some() => {
                self.abort_promotion();
                self.down_timer = self.down_after(now);
            }
            _ => {}
        }
    }

    /// When the master is declared down if nothing is heard from now on (never in
    /// election mode: the witness decides).
    fn down_after(&self, now: Time) -> Option<Time> {
        (!self.params.elected).then(|| now + self.master_down_interval())
    }

    /// The id of the promotion under way, if any.
    pub fn promotion_id(&self) -> Option<u64> {
        self.promotion.map(|(id, _)| id)
    }

    /// Whether an out-of-schedule advert may go now (at most one per advert interval).
    fn may_answer(&mut self, now: Time) -> bool {
        if self
            .last_answer
            .is_some_and(|at| now < at + self.advert_interval())
        {
            return false;
        }
        self.last_answer = Some(now);
        true
    }

    /// Applies a changed configuration in place: priority, interval, preemption and GARP
    /// settings take effect without a state change (the next advert carries them). The VRID,
    /// version and primary address must be unchanged; a change of those needs a new instance.
    pub fn reconfigure(&mut self, now: Time, params: Params) {
        debug_assert_eq!(
            (
                self.params.vrid,
                self.params.version,
                self.params.primary_ip
            ),
            (params.vrid, params.version, params.primary_ip)
        );
        let old = std::mem::replace(&mut self.params, params);
        let interval = self.advert_interval();
        if self.params.version == Version::V2 || self.master.is_none() {
            self.master_adver_int_cs = self.params.advert_int_cs;
        }
        if let Some(at) = self.adver_timer {
            // A shorter interval applies now, a longer one from the next advert.
            self.adver_timer = Some(at.min(now + interval));
        }
        if self.state == State::Master && old.extra_garp != self.params.extra_garp {
            self.extra_garp_timer = self.params.extra_garp.map(|period| now + period);
        }
        if self.state == State::Master
            && old.garp_refresh != self.params.garp_refresh
            && self.garp_timer.is_none()
        {
            self.garp_timer = self.params.garp_refresh.map(|period| now + period);
        }
        if !self.params.preempt || old.preempt_delay != self.params.preempt_delay {
            self.preempt_at = None;
        }
    }

    /// This host could not run us for `stalled` up to `now` (the loop woke that late). When
    /// the whole machine stops (a hypervisor pausing a VM, or the master a VM beside us), the
    /// master stopped as well, and the adverts it sent on waking are still on their way: a down
    /// timer that ran out meanwhile is judged again after as long again (at most one of the
    /// master's intervals), once per silence of the master, so a real failure costs at most
    /// that much more.
    pub fn stalled(&mut self, now: Time, stalled: Duration) {
        if self.state == State::Backup
            && !self.resigned
            && !self.stall_forgiven
            && self.down_timer.is_some_and(|at| at <= now)
        {
            self.stall_forgiven = true;
            self.down_timer = Some(now + stalled.min(self.master_adver_interval()));
        }
    }

    pub fn handle_timeout(&mut self, now: Time) {
        if let Some(at) = self.down_timer
            && at <= now
        {
            self.down_timer = None;
            let reason = match self.master {
                _ if self.resigned => Reason::MasterResigned,
                Some((master, priority)) if priority < self.priority() && self.params.preempt => {
                    Reason::Preempt { master, priority }
                }
                _ => Reason::MasterDown,
            };
            self.take_over(now, reason);
        }
        if let Some(at) = self.adver_timer
            && at <= now
        {
            self.send_advert(self.priority());
            // Keep the cadence of the schedule, not of our wake-ups, unless we fell behind.
            let next = at + self.advert_interval();
            self.adver_timer = Some(if next > now {
                next
            } else {
                now + self.advert_interval()
            });
        }
        if let Some(at) = self.extra_garp_timer
            && at <= now
        {
            self.actions.push_back(Action::SendGarpExtra);
            self.extra_garp_timer = self.params.extra_garp.map(|period| now + period);
        }
        if let Some(at) = self.lower_garp_timer
            && at <= now
        {
            self.lower_garp_timer = None;
            self.actions.push_back(Action::SendGarpLowerPrio);
        }
        if let Some(at) = self.garp_timer
            && at <= now
        {
            self.actions.push_back(Action::SendGarp);
            self.garp_timer = self.params.garp_refresh.map(|period| now + period);
        }
    }

    /// Sets the trackers' priority change (sum of all deltas; clamped in
    /// [`Instance::priority`]). A MASTER whose priority changes advertises it at once (at most
    /// once per advert interval, like its answers), so that a backup with `fast_preempt` need
    /// not wait for the next scheduled advert to learn that the master's check failed.
    pub fn set_priority_delta(&mut self, now: Time, delta: i32) {
        let before = self.priority();
        self.priority_delta = delta;
        let after = self.priority();
        if self.state == State::Master
            && after != before
            && !self.params.elected
            && self.may_answer(now)
        {
            self.send_advert(after);
            self.adver_timer = Some(now + self.advert_interval());
        }
    }

    pub fn set_fault(&mut self, now: Time, fault: bool) {
        if self.fault == fault {
            return;
        }
        self.fault = fault;
        match (fault, self.state) {
            (true, State::Master) => {
                self.leave_master();
                self.transition(now, State::Fault, Reason::FaultOn);
            }
            (true, State::Backup) => {
                self.abort_promotion();
                self.down_timer = None;
                self.transition(now, State::Fault, Reason::FaultOn);
            }
            (false, State::Fault) => self.become_backup(now, Reason::FaultCleared),
            _ => {}
        }
    }

    /// Stop: a master resigns with a priority-0 advert and releases its VIPs.
    pub fn shutdown(&mut self, now: Time) {
        if self.state == State::Master {
            self.leave_master();
        }
        self.abort_promotion();
        self.down_timer = None;
        if self.state != State::Initialize {
            self.transition(now, State::Initialize, Reason::Shutdown);
        }
    }

    fn leave_master(&mut self) {
        self.adver_timer = None;
        self.garp_timer = None;
        self.lower_garp_timer = None;
        self.extra_garp_timer = None;
        self.send_advert(0);
        self.release_vips();
    }

    /// Gated instances make the database read-only first and release the VIPs after, so that
    /// no client writes to a node that is no longer master.
    fn release_vips(&mut self) {
        if self.params.gated {
            let id = self.db_id();
            self.demotion = Some(id);
            self.actions.push_back(Action::Demote { id });
        } else {
            self.actions.push_back(Action::RemoveVips);
        }
    }

    /// Sync groups (keepalived's `vrrp_sync_group`): while `hold` is set, a takeover that
    /// falls due is not made; the instance says it [`Instance::wants_master`] and judges its
    /// down timer again after Master_Down_Interval, unless [`Instance::sync_master`] comes
    /// first. The group sets it while another member does not want to be master, so that
    /// the members become master together or not at all (a member that still hears its
    /// master keeps the whole group BACKUP rather than splitting it across the nodes).
    pub fn set_group_hold(&mut self, hold: bool) {
        self.group_hold = hold;
    }

    /// A takeover is due but held back by the group.
    pub fn wants_master(&self) -> bool {
        self.wants_master.is_some()
    }

    /// The group becomes master: a BACKUP takes over now (for the reason its own takeover
    /// was due, if it was), whatever the hold.
    pub fn sync_master(&mut self, now: Time) {
        if self.state != State::Backup || self.promotion.is_some() || self.params.elected {
            return;
        }
        let reason = self.wants_master.take().unwrap_or(Reason::SyncGroup);
        self.take_over_now(now, reason);
    }

    /// Another member left MASTER for BACKUP: a MASTER follows it, resigning with priority 0
    /// so that the peer's member takes over after Skew_Time.
    pub fn sync_backup(&mut self, now: Time) {
        if self.state == State::Master {
            self.leave_master();
            self.become_backup(now, Reason::SyncGroup);
        }
    }

    /// Down timer, resignation or address ownership: become MASTER, through the database's
    /// promotion when gated; unless the sync group holds the takeover back.
    fn take_over(&mut self, now: Time, reason: Reason) {
        if self.group_hold && !self.params.elected {
            self.wants_master = Some(reason);
            self.down_timer = Some(now + self.master_down_interval());
            return;
        }
        self.take_over_now(now, reason);
    }

    fn take_over_now(&mut self, now: Time, reason: Reason) {
        self.wants_master = None;
        if !self.params.gated {
            self.become_master(now, reason);
            return;
        }
        if reason == Reason::MasterDown && self.master.is_some() {
            self.lost_master = true;
        }
        self.down_timer = None;
        self.preempt_at = None;
        self.master = None;
        self.resigned = false;
        let id = self.db_id();
        self.promotion = Some((id, reason));
        self.claiming = !self.params.witnessed || matches!(reason, Reason::Preempt { .. });
        if self.claiming {
            self.send_advert(self.priority());
            self.adver_timer = Some(now + self.advert_interval());
        }
        self.actions.push_back(Action::Promote {
            id,
            failover: self.lost_master,
        });
    }

    fn become_master(&mut self, now: Time, reason: Reason) {
        self.lost_master = false;
        self.down_timer = None;
        self.preempt_at = None;
        self.master = None;
        self.resigned = false;
        self.send_advert(self.priority());
        self.actions.push_back(Action::AddVips);
        self.actions.push_back(Action::SendGarp);
        self.adver_timer = (!self.params.elected).then(|| now + self.advert_interval());
        self.extra_garp_timer = self.params.extra_garp.map(|period| now + period);
        self.garp_timer = if !self.params.garp_delay.is_zero() {
            Some(now + self.params.garp_delay)
        } else {
            self.params.garp_refresh.map(|period| now + period)
        };
        self.transition(now, State::Master, reason);
    }

    fn become_backup(&mut self, now: Time, reason: Reason) {
        self.master_adver_int_cs = self.params.advert_int_cs;
        self.master = None;
        self.resigned = false;
        self.down_timer = self.down_after(now);
        self.transition(now, State::Backup, reason);
    }

    fn send_advert(&mut self, priority: u8) {
        if !self.params.elected {
            self.actions.push_back(Action::SendAdvert { priority });
        }
    }

    fn transition(&mut self, now: Time, to: State, reason: Reason) {
        let from = self.state;
        self.wants_master = None;
        self.state = to;
        self.last_transition = Some((now, reason));
        self.actions
            .push_back(Action::Transition { from, to, reason });
    }
}

#[cfg(test)]
pub(super) mod tests;
