//! The plan of BFD's paced transmission, sans-IO: which tokens to queue on the pacing
//! interface, whose qdisc releases [`PACE_BYTES_PER_MS`] bytes a millisecond, so that each
//! session's frame leaves when its next periodic packet is due. A token's length is the
//! time since the token before it; a pause (discriminator 0) fills a gap longer than the
//! longest token. The first token of an empty queue is a pause as long as the qdisc's
//! bucket: the bucket, full after an idle spell, would otherwise let the first tokens out
//! together.

use std::time::Duration;

use ha_common::bfd::{PACE_BYTES_PER_MS, TOKEN_MAX, TOKEN_MIN};

/// A token to queue: the session's discriminator (0: a pause) and its length.
pub type Token = (u32, usize);

struct Stream {
    discr: u32,
    /// When its next frame is due.
    next_at: Duration,
    /// Its interval, jitter aside.
    interval: Duration,
}

/// The most frames a millisecond the plan takes on, over all its sessions (one a session
/// interval each):
/// a fifth of what the shortest token allows, so that sessions due together are not pushed
/// far apart, and the queue's tokens stay within the socket's buffer.
pub const MAX_LOAD: f64 = 9.0;

/// The sessions whose periodic packets the kernel sends, and how far the queue reaches.
#[derive(Default)]
pub struct Plan {
    streams: Vec<Stream>,
    /// When the last token queued leaves.
    queued_until: Option<Duration>,
}

fn bytes(d: Duration) -> usize {
    (d.as_nanos() * u128::from(PACE_BYTES_PER_MS) / 1_000_000) as usize
}

fn time(bytes: usize) -> Duration {
    Duration::from_nanos((bytes as u64) * 1_000_000 / u64::from(PACE_BYTES_PER_MS))
}

impl Plan {
    /// Where the queue ends: the last token's time, or `now` when it has drained.
    fn tail(&self, now: Duration) -> Duration {
        self.queued_until.filter(|&t| t > now).unwrap_or(now)
    }

    /// Whether one more session every `interval` keeps the plan within [`MAX_LOAD`].
    pub fn fits(&self, interval: Duration) -> bool {
        !interval.is_zero() && self.load() + 1.0 / (interval.as_secs_f64() * 1e3) <= MAX_LOAD
    }

    /// Starts pacing `discr` every `interval` (jittered by the caller; see
    /// [`Plan::fits`]); returns when its first frame leaves (the end of what is queued):
    /// until then its packets are the agent's to send.
    pub fn add(&mut self, discr: u32, interval: Duration, now: Duration) -> Duration {
        self.remove(discr);
        let at = self.tail(now);
        self.streams.push(Stream {
            discr,
            next_at: at,
            interval,
        });
        at
    }

    /// Frames a millisecond, over every session.
    fn load(&self) -> f64 {
        self.streams
            .iter()
            .map(|s| 1.0 / (s.interval.as_secs_f64() * 1e3))
            .sum()
    }

    /// Stops pacing `discr` (its tokens still queued find no frame and are dropped).
    pub fn remove(&mut self, discr: u32) {
        self.streams.retain(|s| s.discr != discr);
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// The tokens that carry every session up to `until`, appended to `out`; `gap` gives a
    /// session's next interval (jittered).
    pub fn fill(
        &mut self,
        now: Duration,
        until: Duration,
        mut gap: impl FnMut(u32) -> Duration,
        out: &mut Vec<Token>,
    ) {
        if self.streams.is_empty() {
            return;
        }
        let mut at = match self.queued_until {
            Some(t) if t > now => t,
            _ => {
                out.push((0, TOKEN_MAX));
                now
            }
        };
        for s in &mut self.streams {
            s.next_at = s.next_at.max(at);
        }
        while let Some(s) = self
            .streams
            .iter_mut()
            .min_by_key(|s| s.next_at)
            .filter(|s| s.next_at <= until)
        {
            let mut left = bytes(s.next_at.saturating_sub(at)).max(TOKEN_MIN);
            while left > TOKEN_MAX {
                let pause = (left - TOKEN_MIN).min(TOKEN_MAX);
                out.push((0, pause));
                left -= pause;
            }
            out.push((s.discr, left));
            let due = s.next_at;
            at += time(bytes(due.saturating_sub(at)).max(TOKEN_MIN));
            s.next_at = due.max(at) + gap(s.discr);
        }
        self.queued_until = Some(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// When each token leaves, as the qdisc releases them (after the leading pause).
    fn departures(start: Duration, tokens: &[Token]) -> Vec<(u32, Duration)> {
        let mut at = start;
        tokens
            .iter()
            .skip(1)
            .map(|&(discr, len)| {
                at += time(len);
                (discr, at)
            })
            .filter(|&(discr, _)| discr != 0)
            .collect()
    }

    #[test]
    fn each_session_leaves_at_its_jittered_interval_and_pauses_fill_long_gaps() {
        let mut plan = Plan::default();
        let now = Duration::from_secs(10);
        assert_eq!(plan.add(1, MS, now), now);
        assert_eq!(plan.add(2, MS * 20, now), now);
        let mut out = Vec::new();
        let gap = |discr: u32| if discr == 1 { MS * 9 / 10 } else { MS * 20 };
        plan.fill(now, now + MS * 100, gap, &mut out);
        assert_eq!(
            out[0],
            (0, TOKEN_MAX),
            "an empty queue starts with the bucket's worth"
        );
        assert!(
            out.iter()
                .all(|&(_, len)| (TOKEN_MIN..=TOKEN_MAX).contains(&len))
        );
        let sent = departures(now, &out);
        for discr in [1, 2] {
            let times: Vec<Duration> = sent.iter().filter(|s| s.0 == discr).map(|s| s.1).collect();
            let want = gap(discr);
            for pair in times.windows(2) {
                let d = pair[1] - pair[0];
                // Within a token's shortest length of the plan (two due together).
                assert!(d.abs_diff(want) <= time(TOKEN_MIN), "{discr}: {d:?}");
            }
            assert!(times.last().unwrap() > &(now + MS * 80));
        }
    }

    #[test]
    fn a_session_added_to_a_full_queue_starts_where_it_ends_and_a_removed_one_stops() {
        let mut plan = Plan::default();
        let now = Duration::from_secs(1);
        plan.add(1, MS, now);
        let mut out = Vec::new();
        plan.fill(now, now + MS * 50, |_| MS, &mut out);
        let tail = plan.queued_until.unwrap();
        assert!(tail > now + MS * 49 && tail <= now + MS * 50);
        let later = now + MS * 20;
        assert_eq!(plan.add(2, MS, later), tail);
        plan.remove(1);
        out.clear();
        plan.fill(later, later + MS * 100, |_| MS, &mut out);
        assert!(
            out[0].0 == 2,
            "no leading pause on a queue still full: {:?}",
            out[0]
        );
        assert!(out.iter().all(|&(discr, _)| discr != 1));
        // The queue drained: it starts anew with a pause.
        let idle = Duration::from_secs(5);
        out.clear();
        plan.fill(idle, idle + MS * 10, |_| MS, &mut out);
        assert_eq!(out[0], (0, TOKEN_MAX));
    }

    #[test]
    fn sessions_beyond_the_load_are_left_to_the_agent() {
        let mut plan = Plan::default();
        for discr in 1..=9 {
            assert!(plan.fits(MS), "{discr}");
            plan.add(discr, MS, MS);
        }
        assert!(!plan.fits(MS) && !plan.fits(MS * 100) && !plan.fits(Duration::ZERO));
        plan.remove(9);
        assert!(plan.fits(MS * 2));
        plan.add(10, MS * 2, MS);
        assert!(plan.fits(MS * 2));
        plan.add(11, MS * 2, MS);
        assert!(!plan.fits(MS * 2));
    }

    #[test]
    fn nothing_is_queued_without_sessions() {
        let mut plan = Plan::default();
        let mut out = Vec::new();
        plan.fill(MS, MS * 100, |_| MS, &mut out);
        assert!(out.is_empty() && plan.is_empty());
    }
}
