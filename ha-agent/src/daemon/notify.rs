//! Notify scripts: each instance has a queue served by a task of its own, so its scripts run
//! one at a time in the order of the transitions (none is skipped or merged), beside the
//! advert loop. A script that hangs is killed after `notify_timeout`; the next one then runs.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{sync::mpsc, task::JoinHandle};
use tracing::{info, warn};

use crate::{
    config::{NotifyScripts, Script},
    ctl::status::{NotifyCount, NotifyRun, unix_now},
    track::runner::{self, Identity},
    vrrp::fsm::State,
};

/// Runs kept for the status.
const KEPT_RUNS: usize = 10;

/// What an [`Event`] announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A change to the event's state.
    Transition,
    /// Not a transition: the MASTER heard a lower priority (`notify_master_rx_lower_pri`).
    MasterRxLowerPri,
    /// The instance left the configuration on a reload (`notify_deleted`: DELETED and its
    /// script; keepalived's default is FAULT, sent as a transition to FAULT).
    Deleted,
}

/// One transition to announce.
pub struct Event {
    /// A sync group's transition, not an instance's.
    pub group: bool,
    /// The instance's or the group's name.
    pub name: String,
    pub what: Notice,
    pub state: State,
    pub priority: u8,
    /// The scripts as configured when the transition happened.
    pub scripts: NotifyScripts,
    pub script_user: Option<String>,
    pub timeout: Duration,
}

/// The queue of one instance; its task starts with the first transition to announce (an
/// instance without scripts never needs one, and 255 idle queues cost ~2 MiB).
#[derive(Default)]
pub struct Notifier {
    queue: Option<(mpsc::UnboundedSender<Event>, JoinHandle<()>)>,
    log: Arc<Mutex<Log>>,
}

/// The last runs, and how many ran by state and result.
#[derive(Default)]
struct Log {
    runs: VecDeque<NotifyRun>,
    /// (state, ok) → (runs, total duration in ms).
    counts: std::collections::BTreeMap<(String, bool), (u64, f64)>,
}

impl Notifier {
    /// The last runs, oldest first.
    pub fn runs(&self) -> Vec<NotifyRun> {
        self.log
            .lock()
            .map(|log| log.runs.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Runs so far by state and result.
    pub fn counts(&self) -> Vec<NotifyCount> {
        self.log
            .lock()
            .map(|log| {
                log.counts
                    .iter()
                    .map(|((state, ok), (count, total_ms))| NotifyCount {
                        state: state.clone(),
                        ok: *ok,
                        count: *count,
                        total_ms: *total_ms,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn send(&mut self, event: Event) {
        let log = &self.log;
        let (tx, _) = self.queue.get_or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            (tx, tokio::spawn(serve(rx, Arc::clone(log))))
        });
        let _ = tx.send(event);
    }

    /// Closes the queue and waits (up to `limit`) for what is queued to run.
    pub async fn finish(self, limit: Duration) {
        let Some((tx, mut task)) = self.queue else {
            return;
        };
        drop(tx);
        if tokio::time::timeout(limit, &mut task).await.is_err() {
            warn!("notify scripts still running at exit; killed");
            task.abort();
        }
    }
}

/// keepalived's state words for notify scripts.
pub(super) fn state_word(state: State) -> &'static str {
    match state {
        State::Master => "MASTER",
        State::Backup => "BACKUP",
        State::Fault => "FAULT",
        State::Initialize => "STOP",
    }
}

async fn serve(mut rx: mpsc::UnboundedReceiver<Event>, runs: Arc<Mutex<Log>>) {
    while let Some(event) = rx.recv().await {
        if event.what == Notice::MasterRxLowerPri {
            if let Some(script) = &event.scripts.master_rx_lower_pri {
                let word = "MASTER_RX_LOWER_PRI";
                record(&runs, run(&event, script, script.argv.clone(), word).await);
            }
            continue;
        }
        let (word, specific) = match (event.what, event.state) {
            (Notice::Deleted, _) => ("DELETED", &event.scripts.deleted),
            (_, State::Master) => ("MASTER", &event.scripts.master),
            (_, State::Backup) => ("BACKUP", &event.scripts.backup),
            (_, State::Fault) => ("FAULT", &event.scripts.fault),
            (_, State::Initialize) => ("STOP", &event.scripts.stop),
        };
        if let Some(script) = specific {
            record(&runs, run(&event, script, script.argv.clone(), word).await);
        }
        if let Some(script) = &event.scripts.generic {
            // keepalived appends: INSTANCE|GROUP name STATE priority (0 for a group).
            let mut argv = script.argv.clone();
            argv.extend([
                if event.group { "GROUP" } else { "INSTANCE" }.to_owned(),
                event.name.clone(),
                word.to_owned(),
                event.priority.to_string(),
            ]);
            record(&runs, run(&event, script, argv, word).await);
        }
    }
}

fn record(log: &Mutex<Log>, run: NotifyRun) {
    if let Ok(mut log) = log.lock() {
        let (count, total_ms) = log.counts.entry((run.state.clone(), run.ok)).or_default();
        *count += 1;
        *total_ms += run.duration_ms;
        if log.runs.len() == KEPT_RUNS {
            log.runs.pop_front();
        }
        log.runs.push_back(run);
    }
}

async fn run(event: &Event, script: &Script, argv: Vec<String>, word: &str) -> NotifyRun {
    let started = unix_now();
    let mut result = NotifyRun {
        state: word.to_owned(),
        command: argv.join(" "),
        result: String::new(),
        ok: false,
        duration_ms: 0.0,
        unix_time: started,
    };
    let who = script.user.clone().or_else(|| event.script_user.clone());
    let identity = match who.as_deref().map(Identity::lookup).transpose() {
        Ok(identity) => identity,
        Err(e) => {
            warn!(instance = %event.name, state = word, "notify {:?} not run: {e}", argv);
            result.result = e;
            return result;
        }
    };
    match runner::run(&argv, identity, event.timeout).await {
        Ok(outcome) => {
            let ms = outcome.duration.as_secs_f64() * 1000.0;
            if outcome.ok {
                info!(instance = %event.name, state = word, ms, "notify {:?}: {}", argv, outcome.describe());
            } else {
                warn!(instance = %event.name, state = word, ms, "notify {:?} failed: {}", argv, outcome.describe());
            }
            result.ok = outcome.ok;
            result.result = outcome.describe();
            result.duration_ms = ms;
        }
        Err(e) => {
            warn!(instance = %event.name, state = word, "notify {:?} not run: {e}", argv);
            result.result = format!("not run: {e}");
        }
    }
    result
}
