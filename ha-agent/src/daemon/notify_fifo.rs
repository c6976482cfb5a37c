//! keepalived's notify FIFOs (`notify_fifo`, `vrrp_notify_fifo`): one line per instance or
//! group transition, `INSTANCE "VI_1" MASTER 100` / `GROUP "G" BACKUP 0`, written without
//! blocking (a reader that falls behind loses lines, counted and logged, never the loop's
//! time). The FIFO is created if missing (and removed at exit), and its script, if any, runs
//! for as long as the agent with the FIFO's path as its last argument.

use std::{
    cell::Cell,
    fs::File,
    io::Write as _,
    os::unix::fs::{FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _},
    path::PathBuf,
};

use nix::sys::stat::Mode;
use tracing::{info, warn};

use super::notify::state_word;
use crate::{
    config::NotifyFifo,
    track::runner::{self, Identity},
    vrrp::fsm::State,
};

struct Fifo {
    path: PathBuf,
    file: File,
    /// Created by us: removed at exit.
    created: bool,
    script: Option<tokio::process::Child>,
    /// Lines the reader did not take in time.
    lost: Cell<u64>,
}

/// The FIFOs of `global_defs`, open.
#[derive(Default)]
pub struct Fifos {
    configured: Vec<NotifyFifo>,
    open: Vec<Fifo>,
}

impl Fifos {
    /// Opens (and creates) the FIFOs and starts their scripts (as their user, else
    /// `script_user`); one that cannot be opened is logged and left out, as keepalived does.
    pub fn open(configured: Vec<NotifyFifo>, script_user: Option<&str>) -> Self {
        let open = configured
            .iter()
            .filter_map(|c| match open_one(c, script_user) {
                Ok(fifo) => Some(fifo),
                Err(e) => {
                    warn!("notify FIFO {}: {e}; not written", c.path.display());
                    None
                }
            })
            .collect();
        Self { configured, open }
    }

    pub fn configured(&self) -> &[NotifyFifo] {
        &self.configured
    }

    /// Writes one transition: `INSTANCE "name" STATE priority` (or `GROUP`).
    pub fn write(&self, group: bool, name: &str, state: State, priority: u8) {
        self.write_event(group, name, state_word(state), priority);
    }

    /// Writes one line with keepalived's word for the event (`MASTER_RX_LOWER_PRI`,
    /// `MASTER_PRIORITY`, ...).
    pub fn write_event(&self, group: bool, name: &str, word: &str, priority: u8) {
        if self.open.is_empty() {
            return;
        }
        let kind = if group { "GROUP" } else { "INSTANCE" };
        let line = format!("{kind} \"{name}\" {word} {priority}\n");
        for f in &self.open {
            if let Err(e) = (&f.file).write_all(line.as_bytes()) {
                let lost = f.lost.get() + 1;
                f.lost.set(lost);
                // The first, then every hundredth: a stuck reader must not flood the log.
                if lost == 1 || lost % 100 == 0 {
                    warn!(lost, "notify FIFO {}: {e}; line lost", f.path.display());
                }
            }
        }
    }

    /// At exit: the scripts get SIGTERM, FIFOs we created are removed.
    pub fn close(&mut self) {
        for mut f in self.open.drain(..) {
            if let Some(child) = &mut f.script
                && let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok())
            {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            if f.created {
                let _ = std::fs::remove_file(&f.path);
            }
        }
    }
}

impl Drop for Fifos {
    fn drop(&mut self) {
        self.close();
    }
}

fn open_one(c: &NotifyFifo, script_user: Option<&str>) -> Result<Fifo, String> {
    let created = match nix::unistd::mkfifo(&c.path, Mode::from_bits_truncate(0o644)) {
        Ok(()) => true,
        Err(nix::errno::Errno::EEXIST) => false,
        Err(e) => return Err(format!("cannot create it: {e}")),
    };
    let owner = c.owner.as_deref().map(Identity::lookup).transpose()?;
    if created && let Some(owner) = &owner {
        nix::unistd::chown(&c.path, Some(owner.uid), Some(owner.gid))
            .map_err(|e| format!("chown: {e}"))?;
    }
    let script = match &c.script {
        Some(s) => {
            let mut argv = s.argv.clone();
            argv.push(c.path.display().to_string());
            let who = s
                .user
                .as_deref()
                .or(script_user)
                .map(Identity::lookup)
                .transpose()?;
            let child = runner::spawn(&argv, who).map_err(|e| format!("script {argv:?}: {e}"))?;
            info!("notify FIFO {}: started {argv:?}", c.path.display());
            Some(child)
        }
        None => None,
    };
    // Read and write: opening never waits for a reader, and a write never fails for the
    // want of one (lines wait in the pipe).
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(&c.path)
        .map_err(|e| format!("cannot open it: {e}"))?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    let ours = nix::unistd::geteuid().as_raw();
    let owner_uid = owner.as_ref().map(|o| o.uid.as_raw());
    // A file planted where the FIFO should be is refused.
    if !meta.file_type().is_fifo() || (meta.uid() != ours && Some(meta.uid()) != owner_uid) {
        return Err("not a FIFO owned by the agent or its owner; not used".into());
    }
    Ok(Fifo {
        path: c.path.clone(),
        file,
        created,
        script,
        lost: Cell::new(0),
    })
}
