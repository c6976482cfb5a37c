//! Running a script: no shell (argv as configured), as its user and group, in a process group
//! of its own that is killed on timeout (SIGTERM, then SIGKILL) and when the agent lets go of
//! it, and with SIGTERM on the agent's death. Runs beside the advert loop, never on it.

use std::{
    io,
    os::unix::process::ExitStatusExt as _,
    process::Stdio,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, killpg},
    unistd::{Gid, Group, Pid, Uid, User},
};

/// How long a script has after SIGTERM before SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(1);

/// The user and group a script runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: Uid,
    pub gid: Gid,
}

impl Identity {
    /// `user`, `user:group` or `user group`; the group defaults to the user's own.
    pub fn lookup(spec: &str) -> Result<Self, String> {
        let mut parts = spec.split([':', ' ']).filter(|p| !p.is_empty());
        let name = parts.next().unwrap_or_default();
        let user = User::from_name(name)
            .map_err(|e| format!("looking up user `{name}`: {e}"))?
            .ok_or_else(|| format!("script user `{name}` does not exist"))?;
        let gid = match parts.next() {
            Some(group) => {
                Group::from_name(group)
                    .map_err(|e| format!("looking up group `{group}`: {e}"))?
                    .ok_or_else(|| format!("script group `{group}` does not exist"))?
                    .gid
            }
            None => user.gid,
        };
        Ok(Self { uid: user.uid, gid })
    }
}

/// How one run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Exit status 0 (and no timeout).
    pub ok: bool,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub duration: Duration,
}

impl Outcome {
    pub fn describe(&self) -> String {
        match (self.timed_out, self.code, self.signal) {
            (true, ..) => "timed out".into(),
            (_, Some(code), _) => format!("exit {code}"),
            (_, _, Some(signal)) => format!("killed by signal {signal}"),
            _ => "did not run".into(),
        }
    }
}

/// Kills the process group when dropped, unless disarmed: a script abandoned by the agent
/// (reload, exit) leaves nothing behind.
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

/// Runs `argv` to completion or `timeout`. A timed-out script's group gets SIGTERM, then
/// SIGKILL after [`KILL_GRACE`]; it counts as a failure.
pub async fn run(argv: &[String], who: Option<Identity>, timeout: Duration) -> io::Result<Outcome> {
    let mut command = command(argv, who)?;
    let start = Instant::now();
    let mut child = command.spawn()?;
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let mut guard = GroupGuard(pgid);
    let (status, timed_out) = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => (status?, false),
        Err(_) => {
            if let Some(pgid) = pgid {
                let _ = killpg(pgid, Signal::SIGTERM);
            }
            let status = match tokio::time::timeout(KILL_GRACE, child.wait()).await {
                Ok(status) => status?,
                Err(_) => {
                    if let Some(pgid) = pgid {
                        let _ = killpg(pgid, Signal::SIGKILL);
                    }
                    child.wait().await?
                }
            };
            (status, true)
        }
    };
    // A script that ended normally may leave a daemon behind on purpose (notify scripts).
    if !timed_out {
        guard.0 = None;
    }
    Ok(Outcome {
        ok: status.success() && !timed_out,
        code: status.code(),
        signal: status.signal(),
        timed_out,
        duration: start.elapsed(),
    })
}

/// Starts a script that runs as long as the agent (`notify_fifo_script`): in its own process
/// group, as `who`, killed when the agent exits or drops it.
pub fn spawn(argv: &[String], who: Option<Identity>) -> io::Result<tokio::process::Child> {
    command(argv, who)?.spawn()
}

/// `argv` as scripts run: no shell, stdio closed, its own process group, as `who`, SIGTERM
/// when the agent dies, without the loader's environment.
fn command(argv: &[String], who: Option<Identity>) -> io::Result<tokio::process::Command> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::other("empty command"))?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .env_remove("LD_PRELOAD")
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("IFS");
    if let Some(who) = who {
        // std also drops root's supplementary groups when it changes the uid.
        command.uid(who.uid.as_raw()).gid(who.gid.as_raw());
    }
    // SAFETY: prctl is async-signal-safe. Set after the uid change, which would clear it.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[tokio::test]
    async fn exit_status_and_no_shell() {
        let out = run(&argv(&["/bin/true"]), None, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(out.ok && out.code == Some(0));
        let out = run(
            &argv(&["/bin/sh", "-c", "exit 3"]),
            None,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!((out.ok, out.code), (false, Some(3)));
        // No shell: `;` is an argument, not a separator.
        let out = run(
            &argv(&["/bin/echo", "a;", "exit", "1"]),
            None,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert!(out.ok);
    }

    #[tokio::test]
    async fn a_hanging_script_and_its_children_are_killed_on_timeout() {
        let dir = std::env::temp_dir().join(format!("ha-runner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("child.pid");
        // The child ignores SIGTERM: only the group SIGKILL ends it.
        let script = format!(
            "trap '' TERM; sleep 30 & echo $! > {}; wait",
            pidfile.display()
        );
        let out = run(
            &argv(&["/bin/sh", "-c", &script]),
            None,
            Duration::from_millis(300),
        )
        .await
        .unwrap();
        assert!(out.timed_out && !out.ok, "{out:?}");
        assert!(out.duration < Duration::from_secs(3), "{out:?}");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let alive = nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ");
        assert!(!alive, "the script's child {pid} survived");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn identities() {
        assert_eq!(
            Identity::lookup("root").unwrap(),
            Identity {
                uid: Uid::from_raw(0),
                gid: Gid::from_raw(0)
            }
        );
        assert_eq!(Identity::lookup("root:root").unwrap().gid, Gid::from_raw(0));
        assert!(Identity::lookup("no-such-user-here").is_err());
        assert!(Identity::lookup("root no-such-group-here").is_err());
    }
}
