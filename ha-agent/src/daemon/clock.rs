//! CLOCK_MONOTONIC time and a timerfd that sleeps until a deadline on that clock.
//!
//! The state machine's `Time` is this clock; the XDP program's `bpf_ktime_get_ns()` is the
//! same clock. A timerfd wakes with nanosecond resolution, where tokio's timer rounds up to
//! the next millisecond (a whole 10 % of a 10 ms advert interval).

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd, RawFd},
    time::Duration,
};

use nix::{
    sys::{
        time::TimeSpec,
        timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags},
    },
    time::{ClockId as Clock, clock_gettime},
};
use tokio::io::{Interest, unix::AsyncFd};

#[allow(clippy::expect_used)] // clock_gettime fails only for a clock the kernel lacks.
pub fn now() -> Duration {
    let t = clock_gettime(Clock::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC is always available");
    Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
}

/// The [`now`] of a packet the kernel stamped `received` (CLOCK_REALTIME, SO_TIMESTAMPNS):
/// now minus its age. No stamp, or one from the future (a clock step), means now.
pub fn received_at(received: Option<Duration>) -> Duration {
    let now = now();
    let Some(received) = received else {
        return now;
    };
    let Ok(real) = clock_gettime(Clock::CLOCK_REALTIME) else {
        return now;
    };
    let real = Duration::new(real.tv_sec() as u64, real.tv_nsec() as u32);
    now.saturating_sub(real.saturating_sub(received))
}

/// [`received_at`] of a packet that was not queued yet at `floor` (its socket was seen
/// empty then): an earlier result means CLOCK_REALTIME stepped forward after the kernel
/// stamped it (an NTP step), and the packet counts from now, as one stamped in the future
/// does. Else a backup would judge its master's live adverts stale by the size of the step.
pub fn received_after(received: Option<Duration>, floor: Duration) -> Duration {
    let at = received_at(received);
    if at < floor { now() } else { at }
}

/// tokio's AsyncFd wants `AsRawFd`, which nix's TimerFd does not implement.
struct RawTimerFd(TimerFd);

impl AsRawFd for RawTimerFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

pub struct Timer {
    fd: AsyncFd<RawTimerFd>,
    armed: Option<Duration>,
}

impl Timer {
    pub fn new() -> io::Result<Self> {
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        // SAFETY: the TimerFd owns its descriptor for as long as the AsyncFd holds it.
        let fd = unsafe { AsyncFd::register_with_interest(RawTimerFd(fd), Interest::READABLE) }?;
        Ok(Self { fd, armed: None })
    }

    /// Arms the timer for `deadline` (absolute, on [`now`]'s clock), or disarms it. Only a
    /// changed deadline costs a syscall.
    pub fn arm(&mut self, deadline: Option<Duration>) -> io::Result<()> {
        if deadline == self.armed {
            return Ok(());
        }
        match deadline {
            Some(at) => self.fd.get_ref().0.set(
                // A zero it_value would disarm the timer instead of firing at once.
                Expiration::OneShot(TimeSpec::from_duration(at.max(Duration::from_nanos(1)))),
                TimerSetTimeFlags::TFD_TIMER_ABSTIME,
            )?,
            None => self.fd.get_ref().0.unset()?,
        }
        self.armed = deadline;
        Ok(())
    }

    /// Waits until the armed deadline has passed (forever if disarmed); returns how late
    /// the loop got to it.
    pub async fn expired(&mut self) -> io::Result<Duration> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut count = [0u8; 8];
            match nix::unistd::read(guard.get_inner().as_raw_fd(), &mut count) {
                Ok(_) => {
                    // Read: not readable again before the next expiry, so the next wait
                    // goes straight to epoll instead of a read that finds nothing.
                    guard.clear_ready();
                    let late = self
                        .armed
                        .map_or(Duration::ZERO, |at| now().saturating_sub(at));
                    self.armed = None;
                    return Ok(late);
                }
                Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Readiness is consumed with the read: the next expiry wakes the next wait.
    #[tokio::test]
    async fn expires_again_after_each_read() {
        let mut timer = Timer::new().unwrap();
        for _ in 0..3 {
            timer.arm(Some(now() + Duration::from_millis(2))).unwrap();
            let late = tokio::time::timeout(Duration::from_secs(5), timer.expired())
                .await
                .expect("the timer fired")
                .unwrap();
            assert!(late < Duration::from_secs(1), "{late:?}");
        }
    }
}
