//! The state of one `vrrp_script` and what it adds to an instance's priority.
//!
//! keepalived's semantics: a script is up or down; `fall` consecutive failures take it down,
//! `rise` consecutive successes bring it back up; it starts up, or down with `init_fail`.
//! A tracking instance adds `weight` while the script is up (positive weight) or down
//! (negative weight); `reverse` swaps up and down for that purpose; weight 0 means the
//! instance is in FAULT while the script is down.

/// One script's up/down state from its results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    rise: u32,
    fall: u32,
    up: bool,
    /// Consecutive results against the current state.
    streak: u32,
}

impl Check {
    pub fn new(rise: u32, fall: u32, init_fail: bool) -> Self {
        Self {
            rise: rise.max(1),
            fall: fall.max(1),
            up: !init_fail,
            streak: 0,
        }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Consecutive results so far toward the next change (rise while down, fall while up).
    pub fn streak(&self) -> u32 {
        self.streak
    }

    /// Records one result; returns the new state if it changed.
    pub fn record(&mut self, ok: bool) -> Option<bool> {
        if ok == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.up { self.fall } else { self.rise };
        if self.streak < needed {
            return None;
        }
        self.up = ok;
        self.streak = 0;
        Some(ok)
    }
}

/// What a tracked script does to its instance in its current state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Priority(i32),
    Fault,
}

pub fn effect(up: bool, weight: i32, reverse: bool) -> Effect {
    let up = up != reverse;
    match weight {
        0 if up => Effect::Priority(0),
        0 => Effect::Fault,
        w if w > 0 && up => Effect::Priority(w),
        w if w < 0 && !up => Effect::Priority(w),
        _ => Effect::Priority(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fall_and_rise_count_consecutive_results() {
        let mut c = Check::new(2, 3, false);
        assert!(c.is_up());
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(true), None, "a success resets the count");
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(false), None);
        assert_eq!(c.streak(), 2);
        assert_eq!(c.record(false), Some(false));
        assert!(!c.is_up());
        assert_eq!(c.record(true), None);
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(true), None);
        assert_eq!(c.record(true), Some(true));
    }

    #[test]
    fn init_fail_starts_down_and_one_is_the_least() {
        let mut c = Check::new(0, 0, true);
        assert!(!c.is_up());
        assert_eq!(c.record(true), Some(true));
        assert_eq!(c.record(false), Some(false));
    }

    #[test]
    fn weights_as_keepalived_applies_them() {
        assert_eq!(effect(true, -50, false), Effect::Priority(0));
        assert_eq!(effect(false, -50, false), Effect::Priority(-50));
        assert_eq!(effect(true, 20, false), Effect::Priority(20));
        assert_eq!(effect(false, 20, false), Effect::Priority(0));
        assert_eq!(effect(false, 0, false), Effect::Fault);
        assert_eq!(effect(true, 0, false), Effect::Priority(0));
        // reverse: a success counts as the failure would.
        assert_eq!(effect(true, -50, true), Effect::Priority(-50));
        assert_eq!(effect(true, 0, true), Effect::Fault);
        assert_eq!(effect(false, 20, true), Effect::Priority(20));
    }
}
