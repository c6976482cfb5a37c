//! Anti-flap: automatic failovers to this node are spaced by `min_failover_interval` and
//! stop after `max_auto_failovers` until an operator acknowledges (`ha-agent db ack`). The
//! record lives in the state directory, so that a restarted agent remembers it.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Unix times (s) of the automatic failovers since the last acknowledgement.
    pub failovers: Vec<u64>,
    /// The last automatic failover, acknowledged or not.
    pub last: Option<u64>,
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

    /// Whether an automatic failover may happen at `now` (unix s); the refusal says why.
    pub fn allows(&self, now: u64, min_interval: Duration, max: u32) -> Result<(), String> {
        if self.failovers.len() >= max as usize {
            return Err(format!(
                "anti-flap: {} automatic failovers since the last acknowledgement (max_auto_failovers {max}); run `ha-agent db ack` once the pair is sound",
                self.failovers.len()
            ));
        }
        if let Some(last) = self.last {
            let since = now.saturating_sub(last);
            if since < min_interval.as_secs() {
                return Err(format!(
                    "anti-flap: the last automatic failover was {since} s ago (min_failover_interval {} s)",
                    min_interval.as_secs()
                ));
            }
        }
        Ok(())
    }

    pub fn record(&mut self, now: u64) {
        self.failovers.push(now);
        self.last = Some(now);
    }

    /// An operator's acknowledgement: the count starts again (the interval still holds).
    pub fn acknowledge(&mut self) {
        self.failovers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_count_and_acknowledgement() {
        let min = Duration::from_secs(300);
        let mut r = Record::default();
        assert_eq!(r.allows(1000, min, 2), Ok(()));
        r.record(1000);
        assert!(r.allows(1299, min, 2).unwrap_err().contains("299 s ago"));
        assert_eq!(r.allows(1300, min, 2), Ok(()));
        r.record(1300);
        assert!(
            r.allows(5000, min, 2)
                .unwrap_err()
                .contains("max_auto_failovers 2")
        );
        r.acknowledge();
        assert_eq!(r.allows(5000, min, 2), Ok(()));
        assert!(
            r.allows(1400, min, 2).is_err(),
            "the interval holds after an ack"
        );
        assert!(
            Record::default().allows(0, min, 0).is_err(),
            "0: never automatic"
        );
    }

    #[test]
    fn survives_a_restart_and_a_damaged_file_is_an_error() {
        let dir = std::env::temp_dir().join(format!("ha-agent-antiflap-{}", std::process::id()));
        let path = Record::path(&dir, "DB1");
        assert_eq!(Record::load(&path), Ok(Record::default()));
        let mut r = Record::default();
        r.record(42);
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
