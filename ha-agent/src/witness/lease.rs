//! How long this node may act on its etcd lease: sans-IO, on a clock the caller passes in.
//!
//! etcd expires a lease TTL seconds after the last keep-alive it received. The agent cannot
//! know when etcd received one, only when it sent it: a keep-alive sent at `t` and answered
//! with TTL `ttl` keeps the lease alive on etcd's side until at least `t + ttl`. A master
//! steps down a margin before that, so that its VIPs are gone and its database read-only
//! before the peer can take the key.

use std::time::Duration;

use crate::config::OnUnreachable;

#[derive(Clone, Debug)]
pub struct Lease {
    pub id: i64,
    ttl: Duration,
    policy: OnUnreachable,
    /// The send time of the last answered keep-alive (or of the grant) plus the TTL etcd
    /// answered: the lease lives at least until then.
    valid_until: Duration,
    /// When a keep-alive first failed since the last answered one.
    failing_since: Option<Duration>,
}

impl Lease {
    /// A lease granted with `ttl` by a request sent at `sent_at`.
    pub fn granted(id: i64, sent_at: Duration, ttl: Duration, policy: OnUnreachable) -> Self {
        Self {
            id,
            ttl,
            policy,
            valid_until: sent_at + ttl,
            failing_since: None,
        }
    }

    /// A keep-alive sent at `sent_at` was answered with `ttl` (zero: the lease is gone).
    pub fn renewed(&mut self, sent_at: Duration, ttl: Duration) {
        self.valid_until = self.valid_until.max(sent_at + ttl);
        self.failing_since = None;
        if ttl.is_zero() {
            self.valid_until = Duration::ZERO;
        }
    }

    /// A keep-alive failed (no answer in time, or no connection).
    pub fn failed(&mut self, now: Duration) {
        self.failing_since.get_or_insert(now);
    }

    /// How often to send keep-alives: three chances before the margin runs out.
    pub fn keepalive_every(&self) -> Duration {
        (self.ttl.saturating_sub(margin(self.ttl)) / 3).max(Duration::from_millis(100))
    }

    /// When a master holding keys under this lease must have stepped down.
    pub fn step_down_at(&self) -> Duration {
        let last_safe = self.valid_until.saturating_sub(margin(self.ttl));
        match (self.policy, self.failing_since) {
            (OnUnreachable::Fault, Some(since)) => since.min(last_safe),
            _ => last_safe,
        }
    }

    /// Whether the lease can still be relied on at `now`.
    pub fn usable(&self, now: Duration) -> bool {
        now < self.step_down_at()
    }

    /// Time left before etcd can expire the lease, as far as this node knows.
    pub fn ttl_left(&self, now: Duration) -> Duration {
        self.valid_until.saturating_sub(now)
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// What stepping down must fit in (removing the VIPs, making the database read-only): a
/// quarter of the TTL, at least 250 ms, at most 1 s.
pub fn margin(ttl: Duration) -> Duration {
    (ttl / 4).clamp(Duration::from_millis(250), Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn hold_keeps_the_role_until_a_margin_before_the_lease_can_expire() {
        let mut lease = Lease::granted(1, ms(0), ms(2000), OnUnreachable::Hold);
        assert_eq!(lease.keepalive_every(), ms(500));
        assert_eq!(lease.step_down_at(), ms(1500));
        lease.renewed(ms(500), ms(2000));
        assert_eq!(lease.step_down_at(), ms(2000));
        // Keep-alives fail: the role is kept while the lease is certainly alive.
        lease.failed(ms(1000));
        lease.failed(ms(1500));
        assert!(lease.usable(ms(1999)));
        assert!(!lease.usable(ms(2000)));
        assert_eq!(lease.ttl_left(ms(2000)), ms(500));
    }

    #[test]
    fn fault_steps_down_at_the_first_failed_keepalive() {
        let mut lease = Lease::granted(1, ms(0), ms(3000), OnUnreachable::Fault);
        lease.renewed(ms(750), ms(3000));
        assert!(lease.usable(ms(1400)));
        lease.failed(ms(1500));
        assert!(!lease.usable(ms(1500)));
        // An answer later restores it.
        lease.renewed(ms(1600), ms(3000));
        assert!(lease.usable(ms(1700)));
    }

    #[test]
    fn an_answer_with_ttl_zero_means_the_lease_is_gone() {
        let mut lease = Lease::granted(1, ms(0), ms(2000), OnUnreachable::Hold);
        lease.renewed(ms(500), Duration::ZERO);
        assert!(!lease.usable(ms(501)));
    }

    #[test]
    fn a_late_answer_to_an_old_keepalive_does_not_shorten_the_lease() {
        let mut lease = Lease::granted(1, ms(0), ms(2000), OnUnreachable::Hold);
        lease.renewed(ms(1000), ms(2000));
        lease.renewed(ms(500), ms(2000));
        assert_eq!(lease.step_down_at(), ms(2500));
    }

    #[test]
    fn the_margin_is_a_quarter_of_the_ttl_within_bounds() {
        assert_eq!(margin(Duration::from_secs(1)), ms(250));
        assert_eq!(margin(Duration::from_secs(3)), ms(750));
        assert_eq!(margin(Duration::from_secs(30)), ms(1000));
    }
}
