//! Anti-flap: automatic failovers to this node are spaced by `min_failover_interval` and
//! stop after `max_auto_failovers` until an operator acknowledges (`ha-agent db ack`). The
//! record lives in the state directory, so that a restarted agent remembers it. The interval
//! is measured on CLOCK_BOOTTIME while the machine has not rebooted (a step of the wall
//! clock, an NTP correction or `date -s`, neither lifts nor extends it), on the wall clock
//! across a reboot (a state directory that outlives one).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Unix times (s) of the automatic failovers since the last acknowledgement.
    pub failovers: Vec<u64>,
    /// The last automatic failover, acknowledged or not (unix s).
    pub last: Option<u64>,
    /// The same on CLOCK_BOOTTIME (s), and the boot it belongs to.
    #[serde(default)]
    pub last_boot: Option<(String, u64)>,
}

/// The time now on both clocks, and this boot's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Now {
    pub unix: u64,
    pub boot: u64,
    pub boot_id: String,
}

impl Now {
    pub fn read() -> Self {
        let boot = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
            .map_or(0, |t| u64::try_from(t.tv_sec()).unwrap_or(0));
        Self {
            unix: crate::ctl::status::unix_now() as u64,
            boot,
            boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
        }
    }
}

impl Record {
    pub fn path(state_dir: &Path, name: &str) -> PathBuf {
        state_dir.join(format!("failovers-{name}.json"))
    }

    /// The record at `path`; none yet is an empty record, a damaged one an error (failing
    /// open would lift the limit).
    pub fn load(path: &Path) -> Result<Self, String> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: {e} (fix or remove it)", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Writes the record atomically (a crash leaves the old or the new one).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(&tmp, bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Whether an automatic failover may happen at `now`; the refusal says why.
    pub fn allows(&self, now: &Now, min_interval: Duration, max: u32) -> Result<(), String> {
        if self.failovers.len() >= max as usize {
            return Err(format!(
                "anti-flap: {} automatic failovers since the last acknowledgement (max_auto_failovers {max}); run `ha-agent db ack` once the pair is sound",
                self.failovers.len()
            ));
        }
        let since = match (&self.last_boot, self.last) {
            (Some((boot_id, last)), _) if *boot_id == now.boot_id && !boot_id.is_empty() => {
                Some(now.boot.saturating_sub(*last))
            }
            (_, Some(last)) => Some(now.unix.saturating_sub(last)),
            (_, None) => None,
        };
        match since {
            Some(since) if since < min_interval.as_secs() => Err(format!(
                "anti-flap: the last automatic failover was {since} s ago (min_failover_interval {} s)",
                min_interval.as_secs()
            )),
            _ => Ok(()),
        }
    }

    pub fn record(&mut self, now: &Now) {
        self.failovers.push(now.unix);
        self.last = Some(now.unix);
        self.last_boot = Some((now.boot_id.clone(), now.boot));
    }

    /// An operator's acknowledgement: the count starts again (the interval still holds).
    pub fn acknowledge(&mut self) {
        self.failovers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A moment of boot "b1" whose wall clock and boot clock agree to an offset.
    fn at(unix: u64) -> Now {
        Now {
            unix,
            boot: unix.saturating_sub(900),
            boot_id: "b1".into(),
        }
    }

    #[test]
    fn interval_count_and_acknowledgement() {
        let min = Duration::from_secs(300);
        let mut r = Record::default();
        assert_eq!(r.allows(&at(1000), min, 2), Ok(()));
        r.record(&at(1000));
        assert!(
            r.allows(&at(1299), min, 2)
                .unwrap_err()
                .contains("299 s ago")
        );
        assert_eq!(r.allows(&at(1300), min, 2), Ok(()));
        r.record(&at(1300));
        assert!(
            r.allows(&at(5000), min, 2)
                .unwrap_err()
                .contains("max_auto_failovers 2")
        );
        r.acknowledge();
        assert_eq!(r.allows(&at(5000), min, 2), Ok(()));
        assert!(
            r.allows(&at(1400), min, 2).is_err(),
            "the interval holds after an ack"
        );
        assert!(
            Record::default().allows(&at(0), min, 0).is_err(),
            "0: never automatic"
        );
    }

    #[test]
    fn a_step_of_the_wall_clock_moves_the_interval_neither_way() {
        let min = Duration::from_secs(300);
        let mut r = Record::default();
        r.record(&at(10_000));
        // An hour back on the wall clock, 310 s later on the boot clock: the interval is over.
        let back = Now {
            unix: 10_000 - 3600 + 310,
            boot: 10_000 - 900 + 310,
            boot_id: "b1".into(),
        };
        assert_eq!(r.allows(&back, min, 5), Ok(()));
        // An hour ahead, 10 s later: it is not.
        let ahead = Now {
            unix: 10_000 + 3600 + 10,
            boot: 10_000 - 900 + 10,
            boot_id: "b1".into(),
        };
        assert!(r.allows(&ahead, min, 5).unwrap_err().contains("10 s ago"));
        // After a reboot the boot clock starts again: the wall clock judges.
        let rebooted = Now {
            unix: 10_000 + 100,
            boot: 20,
            boot_id: "b2".into(),
        };
        assert!(
            r.allows(&rebooted, min, 5)
                .unwrap_err()
                .contains("100 s ago")
        );
        // A record written before the boot clock was kept: the wall clock judges.
        let old = Record {
            failovers: vec![10_000],
            last: Some(10_000),
            last_boot: None,
        };
        assert!(old.allows(&ahead, min, 5).is_ok());
    }

    #[test]
    fn survives_a_restart_and_a_damaged_file_is_an_error() {
        let dir = std::env::temp_dir().join(format!("ha-agent-antiflap-{}", std::process::id()));
        let path = Record::path(&dir, "DB1");
        assert_eq!(Record::load(&path), Ok(Record::default()));
        let mut r = Record::default();
        r.record(&at(1042));
        r.save(&path).unwrap();
        assert_eq!(Record::load(&path), Ok(r));
        std::fs::write(&path, "{").unwrap();
        assert!(
            Record::load(&path)
                .unwrap_err()
                .contains("fix or remove it")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
