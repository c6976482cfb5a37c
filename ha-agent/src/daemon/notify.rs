//! Notify scripts: each instance has a queue served by a task of its own, so its scripts run
//! one at a time in the order of the transitions (none is skipped or merged), beside the
//! advert loop. A script that hangs is killed after [`NOTIFY_TIMEOUT`]; the next one then runs.

use std::time::Duration;

use tokio::{sync::mpsc, task::JoinHandle};
use tracing::{info, warn};

use crate::{
    config::{NotifyScripts, Script},
    track::runner::{self, Identity},
    vrrp::fsm::State,
};

/// The longest a notify script may run before it is killed.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// One transition to announce.
pub struct Event {
    pub instance: String,
    pub state: State,
    pub priority: u8,
    /// The scripts as configured when the transition happened.
    pub scripts: NotifyScripts,
    pub script_user: Option<String>,
}

/// The queue of one instance.
pub struct Notifier {
    tx: mpsc::UnboundedSender<Event>,
    task: JoinHandle<()>,
}

impl Notifier {
    pub fn spawn() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            task: tokio::spawn(serve(rx)),
        }
    }

    pub fn send(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    /// Closes the queue and waits (up to `limit`) for what is queued to run.
    pub async fn finish(self, limit: Duration) {
        drop(self.tx);
        let mut task = self.task;
        if tokio::time::timeout(limit, &mut task).await.is_err() {
            warn!("notify scripts still running at exit; killed");
            task.abort();
        }
    }
}

/// keepalived's state words for notify scripts.
fn state_word(state: State) -> &'static str {
    match state {
        State::Master => "MASTER",
        State::Backup => "BACKUP",
        State::Fault => "FAULT",
        State::Initialize => "STOP",
    }
}

async fn serve(mut rx: mpsc::UnboundedReceiver<Event>) {
    while let Some(event) = rx.recv().await {
        let word = state_word(event.state);
        let specific = match event.state {
            State::Master => &event.scripts.master,
            State::Backup => &event.scripts.backup,
            State::Fault => &event.scripts.fault,
            State::Initialize => &event.scripts.stop,
        };
        if let Some(script) = specific {
            run(&event, script, script.argv.clone(), word).await;
        }
        if let Some(script) = &event.scripts.generic {
            // keepalived appends: INSTANCE name STATE priority.
            let mut argv = script.argv.clone();
            argv.extend([
                "INSTANCE".to_owned(),
                event.instance.clone(),
                word.to_owned(),
                event.priority.to_string(),
            ]);
            run(&event, script, argv, word).await;
        }
    }
}

async fn run(event: &Event, script: &Script, argv: Vec<String>, word: &str) {
    let who = script.user.clone().or_else(|| event.script_user.clone());
    let identity = match who.as_deref().map(Identity::lookup).transpose() {
        Ok(identity) => identity,
        Err(e) => {
            warn!(instance = %event.instance, state = word, "notify {:?} not run: {e}", argv);
            return;
        }
    };
    match runner::run(&argv, identity, NOTIFY_TIMEOUT).await {
        Ok(outcome) if outcome.ok => info!(
            instance = %event.instance, state = word, ms = outcome.duration.as_millis() as u64,
            "notify {:?}: {}", argv, outcome.describe()
        ),
        Ok(outcome) => warn!(
            instance = %event.instance, state = word, ms = outcome.duration.as_millis() as u64,
            "notify {:?} failed: {}", argv, outcome.describe()
        ),
        Err(e) => warn!(instance = %event.instance, state = word, "notify {:?} not run: {e}", argv),
    }
}
