//! `interface_up_down_delays`: a link change counts only once it has lasted the interface's
//! delay; one reverted within it changes nothing (a bouncing link does not make a FAULT and
//! back).

use std::{collections::HashMap, time::Duration};

use tokio::sync::mpsc;

/// A link change that lasted its delay: (interface, up, which change).
pub type Due = (String, bool, u64);

pub struct LinkDelays {
    /// Interface → (down delay, up delay).
    delays: HashMap<String, (Duration, Duration)>,
    /// Interface → the change waiting out its delay.
    pending: HashMap<String, u64>,
    next: u64,
    tx: mpsc::UnboundedSender<Due>,
    pub rx: mpsc::UnboundedReceiver<Due>,
}

impl Default for LinkDelays {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            delays: HashMap::new(),
            pending: HashMap::new(),
            next: 0,
            tx,
            rx,
        }
    }
}

impl LinkDelays {
    pub fn configure(&mut self, delays: &[(String, Duration, Duration)]) {
        self.delays = delays
            .iter()
            .map(|(name, down, up)| (name.clone(), (*down, *up)))
            .collect();
    }

    /// A link event: `up` against the state the instances see (`known`). Returns the change
    /// to apply now, if any; a delayed one comes back on `rx` once it lasted.
    pub fn event(&mut self, name: &str, up: bool, known: bool) -> Option<bool> {
        if up == known {
            // Back before its delay ran out (or no change at all).
            self.pending.remove(name);
            return None;
        }
        let delay = self
            .delays
            .get(name)
            .map(|(down, rise)| if up { *rise } else { *down })
            .unwrap_or_default();
        if delay.is_zero() {
            return Some(up);
        }
        self.next += 1;
        let id = self.next;
        self.pending.insert(name.to_owned(), id);
        let (tx, name) = (self.tx.clone(), name.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send((name, up, id));
        });
        None
    }

    /// Whether a change that lasted its delay still stands.
    pub fn due(&mut self, (name, _, id): &Due) -> bool {
        if self.pending.get(name) == Some(id) {
            self.pending.remove(name);
            return true;
        }
        false
    }
}
