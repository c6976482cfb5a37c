//! Gratuitous ARPs and unsolicited NAs leave through one sender, which spaces them per
//! interface as `vrrp_garp_interval` / `vrrp_gna_interval` say, or per `garp_group` (one
//! interface, or several behind one switch), whichever instance sends them. A frame whose
//! turn has not come waits on a timer beside the loop, never in it. Without a gap, at most
//! [`BURST`] frames leave per [`BURST_PACE`]: a takeover of 255 instances is 1,275 frames
//! (five each), which sent at once held the loop ~9 ms and overflowed the interface's queue,
//! taking adverts with them.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tracing::warn;

use super::instance::RateLimit;
use crate::{net::garp::GarpSocket, vrrp::Family};

/// Frames without a gap that leave at once; the rest follow, as many each [`BURST_PACE`]. Half
/// the advert burst (128), so that a takeover's adverts and GARPs together fit a 256-slot
/// device ring (a veth's).
const BURST: usize = 64;
const BURST_PACE: Duration = Duration::from_millis(1);

/// Where a frame's turn is kept: a `garp_group`, or an interface in none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Lane {
    Group(usize),
    Interface(u32),
}

/// The gaps between frames of each family, per lane.
#[derive(Debug, Default)]
pub struct Pacing {
    /// ifindex → its garp_group and the group's (ARP, NA) gaps.
    groups: HashMap<u32, (usize, Duration, Duration)>,
    /// The gaps of interfaces in no group.
    default: (Duration, Duration),
    /// (lane, family) → when its next frame may leave.
    next: HashMap<(Lane, Family), Instant>,
    /// (lane, family) → when its last frame left (a frame can leave later than its turn).
    last: HashMap<(Lane, Family), Instant>,
    /// The frames without a gap sent since the start of the current [`BURST_PACE`].
    window: Option<(Instant, usize)>,
}

impl Pacing {
    /// The interfaces' groups (by ifindex, each with its gaps) and the global gaps.
    pub fn configure(
        &mut self,
        groups: HashMap<u32, (usize, Duration, Duration)>,
        default: (Duration, Duration),
    ) {
        self.groups = groups;
        self.default = default;
    }

    /// A frame's lane and the gap its family keeps there.
    fn lane(&self, ifindex: u32, family: Family) -> ((Lane, Family), Duration) {
        let (lane, (arp, na)) = match self.groups.get(&ifindex) {
            Some(&(group, arp, na)) => (Lane::Group(group), (arp, na)),
            None => (Lane::Interface(ifindex), self.default),
        };
        let gap = match family {
            Family::V4 => arp,
            Family::V6 => na,
        };
        ((lane, family), gap)
    }

    /// A frame whose turn has come, about to leave `now`: `None` when it may (noted as the
    /// lane's last), else when it may, should the frame before it have left late.
    fn hold(&mut self, ifindex: u32, family: Family, now: Instant) -> Option<Instant> {
        let (key, gap) = self.lane(ifindex, family);
        if let Some(&last) = self.last.get(&key)
            && now < last + gap
        {
            return Some(last + gap);
        }
        self.last.insert(key, now);
        None
    }

    /// Whether one more frame without a gap may leave `now` ([`BURST`] per [`BURST_PACE`]).
    fn within_burst(&mut self, now: Instant) -> bool {
        let (start, sent) = self
            .window
            .filter(|&(start, _)| now < start + BURST_PACE)
            .unwrap_or((now, 0));
        let within = sent < BURST;
        self.window = Some((start, sent + usize::from(within)));
        within
    }

    /// When a frame of `family` on `ifindex` may leave if asked `now`, taking that turn.
    fn turn(&mut self, ifindex: u32, family: Family, now: Instant) -> Instant {
        let ((lane, family), gap) = self.lane(ifindex, family);
        if gap.is_zero() {
            return now;
        }
        let next = self.next.entry((lane, family)).or_insert(now);
        let at = (*next).max(now);
        *next = at + gap;
        at
    }
}

/// The gratuitous ARP socket, whose errors (a full device queue in a takeover of hundreds
/// of VIPs) are logged at most every 10 s.
pub(super) struct Garp {
    socket: GarpSocket,
    errors: Mutex<RateLimit>,
    pacing: Mutex<Pacing>,
    /// Frames beyond the burst; while there are any, a task is sending them.
    queued: Mutex<VecDeque<Target>>,
    /// Frames not sent yet: queued, or waiting for their turn.
    unsent: AtomicUsize,
}

/// (ifindex, MAC, VIP).
type Target = (u32, [u8; 6], IpAddr);

impl Garp {
    pub(super) fn new(socket: GarpSocket) -> Self {
        Self {
            socket,
            errors: Mutex::default(),
            pacing: Mutex::default(),
            queued: Mutex::default(),
            unsent: AtomicUsize::new(0),
        }
    }

    /// Whether frames are still waiting to leave.
    pub(super) fn sending(&self) -> bool {
        self.unsent.load(Ordering::Relaxed) > 0
    }

    /// One gratuitous ARP (IPv6: unsolicited NA) for each (interface, MAC, VIP), each when
    /// its interface's turn comes.
    pub(super) fn burst(self: &Arc<Self>, targets: &[Target]) {
        let now = Instant::now();
        for &(ifindex, mac, addr) in targets {
            let family = Family::of(addr);
            let at = self
                .pacing
                .lock()
                .map_or(now, |mut p| p.turn(ifindex, family, now));
            if at <= now && self.hold(ifindex, family).is_none() {
                self.send_or_queue((ifindex, mac, addr), now);
                continue;
            }
            self.unsent.fetch_add(1, Ordering::Relaxed);
            let garp = Arc::clone(self);
            tokio::spawn(async move {
                let mut at = at;
                // A frame before it that left late (a busy host) pushes it back: the gap
                // holds on the wire, not only in the schedule.
                loop {
                    tokio::time::sleep_until(at.into()).await;
                    match garp.hold(ifindex, family) {
                        Some(later) => at = later,
                        None => break,
                    }
                }
                garp.send(ifindex, mac, addr);
                garp.unsent.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }

    /// Sends `target` now if the burst has room and no frame waits before it; else queues
    /// it, for a task that sends the queue [`BURST`] each [`BURST_PACE`].
    fn send_or_queue(self: &Arc<Self>, target: Target, now: Instant) {
        let Ok(mut queued) = self.queued.lock() else {
            return;
        };
        let idle = queued.is_empty();
        if idle && self.within_burst(now) {
            drop(queued);
            let (ifindex, mac, addr) = target;
            self.send(ifindex, mac, addr);
            return;
        }
        queued.push_back(target);
        self.unsent.fetch_add(1, Ordering::Relaxed);
        if !idle {
            return;
        }
        let garp = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(BURST_PACE).await;
                let now = Instant::now();
                let (batch, done) = {
                    let Ok(mut queued) = garp.queued.lock() else {
                        return;
                    };
                    let mut batch = Vec::new();
                    while !queued.is_empty() && garp.within_burst(now) {
                        batch.extend(queued.pop_front());
                    }
                    // Emptied: the next frame queued starts a task of its own. A takeover's
                    // queue is not kept for the next one.
                    let done = queued.is_empty();
                    if done {
                        *queued = VecDeque::new();
                    }
                    (batch, done)
                };
                for &(ifindex, mac, addr) in &batch {
                    garp.send(ifindex, mac, addr);
                }
                garp.unsent.fetch_sub(batch.len(), Ordering::Relaxed);
                if done {
                    return;
                }
            }
        });
    }

    fn within_burst(&self, now: Instant) -> bool {
        self.pacing.lock().is_ok_and(|mut p| p.within_burst(now))
    }

    fn hold(&self, ifindex: u32, family: Family) -> Option<Instant> {
        let now = Instant::now();
        self.pacing
            .lock()
            .ok()
            .and_then(|mut p| p.hold(ifindex, family, now))
    }

    /// Takes the gaps of `config`: its `garp_group`s (interfaces missing now are warned
    /// about and paced as the others) and the global intervals.
    pub(super) fn configure(&self, config: &crate::config::Config) {
        let mut groups = HashMap::new();
        for (i, group) in config.garp_groups.iter().enumerate() {
            let arp = group.garp_interval.unwrap_or(config.global.garp_interval);
            let na = group.gna_interval.unwrap_or(config.global.gna_interval);
            for name in &group.interfaces {
                match nix::net::if_::if_nametoindex(name.as_str()) {
                    Ok(ifindex) => {
                        groups.insert(ifindex, (i, arp, na));
                    }
                    Err(e) => warn!(interface = %name, error = %e, "garp_group: no such interface"),
                }
            }
        }
        let default = (config.global.garp_interval, config.global.gna_interval);
        if let Ok(mut pacing) = self.pacing.lock() {
            pacing.configure(groups, default);
        }
    }

    fn send(&self, ifindex: u32, mac: [u8; 6], addr: IpAddr) {
        if let Err(e) = self.socket.send(ifindex, &mac, addr)
            && let Some(suppressed) = self.errors.lock().ok().and_then(|mut l| l.allow())
        {
            warn!(vip = %addr, error = %e, suppressed, "sending gratuitous ARP");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn frames_on_one_lane_are_spaced_and_lanes_are_apart() {
        let mut p = Pacing::default();
        // eth0 (1) and eth1 (2) behind one switch: 100 ms between ARPs, 30 ms between NAs;
        // eth2 (3) on its own at the global 10 ms.
        p.configure(
            HashMap::from([(1, (0, 100 * MS, 30 * MS)), (2, (0, 100 * MS, 30 * MS))]),
            (10 * MS, Duration::ZERO),
        );
        let t0 = Instant::now();
        let turns: Vec<Duration> = [1, 2, 1]
            .iter()
            .map(|&i| p.turn(i, Family::V4, t0) - t0)
            .collect();
        assert_eq!(turns, [Duration::ZERO, 100 * MS, 200 * MS]);
        // NAs keep a lane of their own.
        assert_eq!(p.turn(2, Family::V6, t0) - t0, Duration::ZERO);
        assert_eq!(p.turn(1, Family::V6, t0) - t0, 30 * MS);
        assert_eq!(p.turn(3, Family::V4, t0) - t0, Duration::ZERO);
        assert_eq!(p.turn(3, Family::V4, t0) - t0, 10 * MS);
        // No gap: at once, however many.
        assert_eq!(p.turn(3, Family::V6, t0), t0);
        assert_eq!(p.turn(3, Family::V6, t0), t0);
        // A lane idle for longer than its gap starts again at once.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(p.turn(1, Family::V4, later), later);
    }

    #[test]
    fn frames_without_a_gap_leave_at_most_a_burst_each_pace() {
        let mut p = Pacing::default();
        let t0 = Instant::now();
        let sent = (0..BURST * 3).filter(|_| p.within_burst(t0)).count();
        assert_eq!(sent, BURST);
        assert!(!p.within_burst(t0 + BURST_PACE - Duration::from_micros(1)));
        // A new pace, a new burst.
        let t1 = t0 + BURST_PACE;
        assert_eq!((0..BURST * 2).filter(|_| p.within_burst(t1)).count(), BURST);
    }

    #[test]
    fn a_frame_that_left_late_pushes_the_next_one_back() {
        let mut p = Pacing::default();
        p.configure(HashMap::new(), (100 * MS, Duration::ZERO));
        let t0 = Instant::now();
        assert_eq!(p.turn(1, Family::V4, t0), t0);
        assert_eq!(p.turn(1, Family::V4, t0), t0 + 100 * MS);
        // The first leaves 6 ms after its turn; the second, due at 100 ms, waits until 106.
        assert_eq!(p.hold(1, Family::V4, t0 + 6 * MS), None);
        assert_eq!(p.hold(1, Family::V4, t0 + 100 * MS), Some(t0 + 106 * MS));
        assert_eq!(p.hold(1, Family::V4, t0 + 106 * MS), None);
        // Without a gap nothing is held.
        assert_eq!(p.hold(1, Family::V6, t0), None);
        assert_eq!(p.hold(1, Family::V6, t0), None);
    }
}
