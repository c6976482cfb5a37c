//! `vrrp_track_process`: which processes count (their name, or their command line, against
//! the configuration), and whether enough of them run, with keepalived's fork and terminate
//! delays. Sans-IO: process facts, counts and a clock in.

use std::time::Duration;

use crate::config::{ParamMatch, TrackProcess};

/// Whether a process named `comm` with command line `cmdline` (if it was read) is one that
/// `t` counts.
pub fn matches(t: &TrackProcess, comm: &str, cmdline: Option<&[String]>) -> bool {
    let args = if t.full_command {
        match cmdline.and_then(|c| c.split_first()) {
            Some((first, args)) if *first == t.process => args,
            _ => return false,
        }
    } else {
        if Some(comm) != t.comm() {
            return false;
        }
        if t.params.is_none() {
            return true;
        }
        match cmdline.and_then(|c| c.get(1..)) {
            Some(args) => args,
            None => return false,
        }
    };
    let Some((want, how)) = &t.params else {
        return true;
    };
    match how {
        ParamMatch::Exact => args == want.as_slice(),
        // The configured arguments first, more may follow.
        ParamMatch::Partial => args.get(..want.len()) == Some(want.as_slice()),
        // The configured arguments, as one string, begin the process's.
        ParamMatch::Initial => args.join(" ").starts_with(&want.join(" ")),
    }
}

/// Whether a command line must be read to judge a process for `t`.
pub fn needs_cmdline(t: &TrackProcess) -> bool {
    t.full_command || t.params.is_some()
}

/// Up while quorum ≤ count ≤ quorum_max; a change counts once it has lasted `fork_delay`
/// (gaining quorum) or `terminate_delay` (losing it), so a restart in place does not bounce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quorum {
    quorum: u32,
    max: u32,
    fork_delay: Duration,
    terminate_delay: Duration,
    up: bool,
    count: usize,
    /// The state the count says, and when it takes effect.
    pending: Option<(bool, Duration)>,
}

impl Quorum {
    /// The state at start: what `count` says, at once.
    pub fn new(t: &TrackProcess, count: usize) -> Self {
        let mut q = Self {
            quorum: t.quorum,
            max: t.quorum_max,
            fork_delay: t.fork_delay,
            terminate_delay: t.terminate_delay,
            up: false,
            count,
            pending: None,
        };
        q.up = q.within(count);
        q
    }

    fn within(&self, count: usize) -> bool {
        (self.quorum as usize..=self.max as usize).contains(&count)
    }

    /// The number of matching processes changed at `now`.
    pub fn set_count(&mut self, count: usize, now: Duration) {
        self.count = count;
        let want = self.within(count);
        if want == self.up {
            self.pending = None;
        } else if self.pending.is_none_or(|(p, _)| p != want) {
            let delay = if want {
                self.fork_delay
            } else {
                self.terminate_delay
            };
            self.pending = Some((want, now + delay));
        }
        self.poll(now);
    }

    /// When [`Quorum::poll`] has something to do.
    pub fn deadline(&self) -> Option<Duration> {
        self.pending.map(|(_, at)| at)
    }

    /// Applies a pending change whose delay has run out.
    pub fn poll(&mut self, now: Duration) {
        if let Some((want, at)) = self.pending
            && now >= at
        {
            self.up = want;
            self.pending = None;
        }
    }

    pub fn up(&self) -> bool {
        self.up
    }

    pub fn count(&self) -> usize {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Loc;

    fn spec(process: &str) -> TrackProcess {
        TrackProcess {
            name: "p".into(),
            loc: Loc {
                file: std::sync::Arc::new("t.conf".into()),
                line: 1,
            },
            process: process.into(),
            params: None,
            full_command: false,
            weight: 0,
            reverse: false,
            quorum: 1,
            quorum_max: u32::MAX,
            fork_delay: Duration::ZERO,
            terminate_delay: Duration::ZERO,
        }
    }

    fn line(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn a_name_matches_exactly_as_the_kernel_keeps_it() {
        let nginx = spec("nginx");
        assert!(matches(&nginx, "nginx", None));
        // Not a pattern: what pgrep "^nginx$" would find.
        assert!(!matches(&nginx, "nginx-debug", None));
        assert!(!matches(&nginx, "ngin", None));
        // The kernel keeps 15 bytes of a name.
        let long = spec("a-very-long-daemon-name");
        assert!(matches(&long, "a-very-long-dae", None));
    }

    #[test]
    fn arguments_and_full_commands() {
        let mut t = spec("haproxy");
        t.params = Some((line(&["-f", "/etc/haproxy.cfg"]), ParamMatch::Exact));
        let cmd = line(&["/usr/sbin/haproxy", "-f", "/etc/haproxy.cfg"]);
        assert!(matches(&t, "haproxy", Some(&cmd)));
        assert!(!matches(&t, "haproxy", None), "arguments unread");
        let more = line(&["/usr/sbin/haproxy", "-f", "/etc/haproxy.cfg", "-D"]);
        assert!(!matches(&t, "haproxy", Some(&more)));
        t.params = Some((line(&["-f", "/etc/haproxy.cfg"]), ParamMatch::Partial));
        assert!(matches(&t, "haproxy", Some(&more)));
        t.params = Some((line(&["-f", "/etc/hap"]), ParamMatch::Initial));
        assert!(matches(&t, "haproxy", Some(&more)));
        t.params = Some((Vec::new(), ParamMatch::Exact));
        assert!(!matches(&t, "haproxy", Some(&cmd)), "no arguments wanted");
        let mut full = spec("/usr/bin/python3");
        full.full_command = true;
        full.params = Some((line(&["app.py"]), ParamMatch::Exact));
        assert!(matches(
            &full,
            "python3",
            Some(&line(&["/usr/bin/python3", "app.py"]))
        ));
        assert!(!matches(
            &full,
            "python3",
            Some(&line(&["python3", "app.py"]))
        ));
        assert!(needs_cmdline(&full) && !needs_cmdline(&spec("nginx")));
    }

    #[test]
    fn quorum_with_fork_and_terminate_delays() {
        let mut t = spec("worker");
        t.quorum = 2;
        t.quorum_max = 3;
        t.fork_delay = Duration::from_millis(500);
        t.terminate_delay = Duration::from_secs(1);
        let s = Duration::from_secs;
        let mut q = Quorum::new(&t, 2);
        assert!(q.up());
        // One dies and is back before terminate_delay: never down.
        q.set_count(1, s(10));
        assert_eq!(q.deadline(), Some(s(11)));
        q.set_count(2, s(10) + Duration::from_millis(400));
        assert_eq!(q.deadline(), None);
        q.poll(s(12));
        assert!(q.up());
        // Too many is down as well, after the delay.
        q.set_count(4, s(20));
        q.poll(s(20) + Duration::from_millis(999));
        assert!(q.up());
        q.poll(s(21));
        assert!(!q.up());
        // Back within quorum: up once fork_delay has passed.
        q.set_count(3, s(30));
        assert!(!q.up());
        q.poll(s(30) + Duration::from_millis(500));
        assert!(q.up());
        // No delays: at once.
        let mut now = Quorum::new(&spec("x"), 0);
        assert!(!now.up());
        now.set_count(1, s(1));
        assert!(now.up());
    }
}
