//! systemd's notify protocol: READY=1 once the agent is up (configuration loaded, sockets
//! open, the XDP program attached, VIPs left by an earlier run removed), RELOADING=1 and
//! READY=1 around a SIGHUP, STOPPING=1 at exit, STATUS= with the instances' roles, and
//! WATCHDOG=1 from the advert loop itself at half the `WatchdogSec` systemd asked for, so
//! that a loop that hangs gets the agent restarted. Silent without `NOTIFY_SOCKET`.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::warn;

pub struct Systemd {
    /// `NOTIFY_SOCKET` is set: a service manager listens.
    enabled: bool,
    /// Half of `WATCHDOG_USEC`, when systemd wants pings.
    ping_every: Option<Duration>,
    status: String,
}

impl Systemd {
    pub fn from_env() -> Self {
        Self {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            ping_every: watchdog_usec().map(|usec| Duration::from_micros(usec) / 2),
            status: String::new(),
        }
    }

    fn send(&self, states: &[NotifyState]) {
        if self.enabled
            && let Err(e) = sd_notify::notify(false, states)
        {
            warn!(error = %e, "systemd notify");
        }
    }

    pub fn ready(&mut self, status: String) {
        self.status = status;
        self.send(&[NotifyState::Ready, NotifyState::Status(&self.status)]);
    }

    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping]);
    }

    /// STATUS=, sent only when it changed.
    pub fn status(&mut self, status: String) {
        if status != self.status {
            self.status = status;
            self.send(&[NotifyState::Status(&self.status)]);
        }
    }

    pub fn ping_every(&self) -> Option<Duration> {
        self.ping_every
    }

    pub fn ping(&self) {
        self.send(&[NotifyState::Watchdog]);
    }
}

/// `WATCHDOG_USEC`, unless `WATCHDOG_PID` names another process (sd_watchdog_enabled(3):
/// without `WATCHDOG_PID` the watchdog is ours; sd-notify's helper insists on it).
fn watchdog_usec() -> Option<u64> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    let ours = match std::env::var("WATCHDOG_PID") {
        Ok(pid) => pid.parse() == Ok(std::process::id()),
        Err(_) => true,
    };
    (ours && usec > 0).then_some(usec)
}

/// A watchdog tick for the loop's `select!`; never, without a watchdog.
pub async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}
