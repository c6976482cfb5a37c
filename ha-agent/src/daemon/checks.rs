//! The `vrrp_script` checks at run time: one task per script running it every `interval`
//! (never two runs of one script at once), results back to the loop over a channel, and the
//! state of each script (`track::check`) that decides its instances' priority and fault.

use std::time::Duration;

use tokio::{sync::mpsc, task::JoinHandle, time::Instant};
use tracing::{error, info, warn};

use crate::{
    config::{TrackScript, VrrpScript},
    ctl::status::TrackerStatus,
    track::{
        check::{Check, Effect, effect},
        runner::{self, Identity, Outcome},
    },
};

/// The shortest interval between two starts of one script (keepalived accepts 0).
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// A script's result, tagged with the generation of its task.
pub type Report = (u64, Outcome);

struct Entry {
    id: u64,
    def: VrrpScript,
    who: Option<String>,
    check: Check,
    last: Option<Outcome>,
    task: JoinHandle<()>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        // The running script's process group is killed by the runner's guard.
        self.task.abort();
    }
}

pub struct Checks {
    entries: Vec<Entry>,
    tx: mpsc::Sender<Report>,
    pub rx: mpsc::Receiver<Report>,
    next_id: u64,
}

impl Default for Checks {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(64);
        Self {
            entries: Vec::new(),
            tx,
            rx,
            next_id: 0,
        }
    }
}

impl Checks {
    /// Runs `scripts`. A script whose definition and user did not change keeps its state
    /// and its task (a reload never resets a failing check to healthy).
    pub fn configure(&mut self, scripts: &[VrrpScript], script_user: Option<&str>) {
        let mut old = std::mem::take(&mut self.entries);
        for def in scripts {
            let who = def
                .user
                .clone()
                .or_else(|| def.script.user.clone())
                .or_else(|| script_user.map(str::to_owned));
            if let Some(pos) = old.iter().position(|e| e.def == *def && e.who == who) {
                self.entries.push(old.swap_remove(pos));
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            info!(script = %def.name, user = ?who, "starting health check");
            let task = tokio::spawn(run_script(id, def.clone(), who.clone(), self.tx.clone()));
            self.entries.push(Entry {
                id,
                def: def.clone(),
                who,
                check: Check::new(def.rise, def.fall, def.init_fail),
                last: None,
                task,
            });
        }
    }

    /// Records a result; returns whether a script changed state.
    pub fn record(&mut self, (id, outcome): Report) -> bool {
        let Some(entry) = self.entries.iter_mut().find(|e| e.id == id) else {
            return false; // from a task a reload replaced
        };
        let changed = entry.check.record(outcome.ok);
        if let Some(up) = changed {
            let what = if up { "up" } else { "down" };
            warn!(script = %entry.def.name, result = %outcome.describe(), "health check {what}");
        }
        entry.last = Some(outcome);
        changed.is_some()
    }

    /// The priority delta and fault that `tracks` (an instance's `track_script`) add up to.
    pub fn effect(&self, tracks: &[TrackScript]) -> (i32, bool) {
        let mut delta = 0;
        let mut fault = false;
        for (_, effect) in self.effects(tracks) {
            match effect {
                Effect::Priority(d) => delta += d,
                Effect::Fault => fault = true,
            }
        }
        (delta, fault)
    }

    fn effects<'a>(
        &'a self,
        tracks: &'a [TrackScript],
    ) -> impl Iterator<Item = (&'a Entry, Effect)> + 'a {
        tracks.iter().filter_map(|t| {
            let entry = self.entries.iter().find(|e| e.def.name == t.name)?;
            let weight = t.weight.unwrap_or(entry.def.weight);
            let reverse = t.reverse != entry.def.reverse;
            Some((entry, effect(entry.check.is_up(), weight, reverse)))
        })
    }

    pub fn status(&self, tracks: &[TrackScript]) -> Vec<TrackerStatus> {
        self.effects(tracks)
            .map(|(e, effect)| TrackerStatus {
                name: e.def.name.clone(),
                up: e.check.is_up(),
                streak: e.check.streak(),
                priority_delta: match effect {
                    Effect::Priority(d) => d,
                    Effect::Fault => 0,
                },
                fault: effect == Effect::Fault,
                last_result: e.last.as_ref().map(Outcome::describe),
                last_duration_ms: e.last.as_ref().map(|o| o.duration.as_secs_f64() * 1000.0),
            })
            .collect()
    }
}

/// Runs one script every `interval` until aborted; runs never overlap.
async fn run_script(id: u64, def: VrrpScript, who: Option<String>, tx: mpsc::Sender<Report>) {
    let identity = match who.as_deref().map(Identity::lookup).transpose() {
        Ok(identity) => identity,
        Err(e) => {
            // Checked at load; the user vanished since. The check fails until a reload.
            error!(script = %def.name, "{e}; the check counts as failed");
            None
        }
    };
    let lookup_failed = who.is_some() && identity.is_none();
    let interval = def.interval.max(MIN_INTERVAL);
    let timeout = def.timeout.unwrap_or(interval).max(MIN_INTERVAL);
    loop {
        let start = Instant::now();
        let outcome = if lookup_failed {
            failed(Duration::ZERO)
        } else {
            match runner::run(&def.script.argv, identity, timeout).await {
                Ok(outcome) => outcome,
                Err(e) => {
                    error!(script = %def.name, "cannot run {:?}: {e}", def.script.argv);
                    failed(start.elapsed())
                }
            }
        };
        if tx.send((id, outcome)).await.is_err() {
            return;
        }
        tokio::time::sleep_until(start + interval).await;
    }
}

fn failed(duration: Duration) -> Outcome {
    Outcome {
        ok: false,
        code: None,
        signal: None,
        timed_out: false,
        duration,
    }
}
