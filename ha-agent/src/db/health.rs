//! A server's replication health as the agent judges it, from what the server reports
//! (`SHOW SLAVE STATUS` on MariaDB, `SHOW REPLICA STATUS` on MySQL 8.0.22+ / 8.4), parsed by
//! column name so either naming works.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The dialect a server speaks, asked once from `@@version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    Mariadb,
    Mysql,
}

impl Flavor {
    pub fn from_version(version: &str) -> Self {
        if version.contains("MariaDB") {
            Flavor::Mariadb
        } else {
            Flavor::Mysql
        }
    }
}

/// A row of the replica status, column name → value (NULL: `None`).
pub type Columns = BTreeMap<String, Option<String>>;

/// The replication channel from the peer, as this server sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    /// `Yes`, `No` or `Connecting`.
    pub io_running: String,
    pub sql_running: bool,
    pub last_io_errno: u32,
    pub last_io_error: String,
    pub last_sql_errno: u32,
    pub last_sql_error: String,
    /// NULL whenever a thread is stopped or reconnecting: never read as "caught up".
    pub seconds_behind: Option<u64>,
    /// What the I/O thread received: MariaDB `Gtid_IO_Pos`, MySQL `Retrieved_Gtid_Set`.
    pub received: String,
    pub source: String,
    pub sql_state: String,
}

impl Replica {
    /// Reads the columns of either naming (MySQL 8.0.22+ `Replica_*`/`Source_*`, MariaDB and
    /// older MySQL `Slave_*`/`Master_*`).
    pub fn from_columns(flavor: Flavor, row: &Columns) -> Result<Self, String> {
        let get = |names: &[&str]| -> Option<String> {
            names
                .iter()
                .find_map(|n| row.get(*n))
                .and_then(|v| v.clone())
        };
        let number = |name: &str| -> Result<u32, String> {
            match get(&[name]) {
                None => Ok(0),
                Some(v) if v.is_empty() => Ok(0),
                Some(v) => v
                    .parse()
                    .map_err(|_| format!("{name} is `{v}`, not a number")),
            }
        };
        let io_running = get(&["Replica_IO_Running", "Slave_IO_Running"])
            .ok_or("the replica status has no Replica_IO_Running or Slave_IO_Running column")?;
        let received = match flavor {
            Flavor::Mariadb => get(&["Gtid_IO_Pos"]),
            Flavor::Mysql => get(&["Retrieved_Gtid_Set"]),
        }
        .unwrap_or_default();
        let host = get(&["Source_Host", "Master_Host"]).unwrap_or_default();
        let port = get(&["Source_Port", "Master_Port"]).unwrap_or_default();
        Ok(Self {
            io_running,
            sql_running: get(&["Replica_SQL_Running", "Slave_SQL_Running"]).as_deref()
                == Some("Yes"),
            last_io_errno: number("Last_IO_Errno")?,
            last_io_error: get(&["Last_IO_Error"]).unwrap_or_default(),
            last_sql_errno: number("Last_SQL_Errno")?,
            last_sql_error: get(&["Last_SQL_Error"]).unwrap_or_default(),
            seconds_behind: get(&["Seconds_Behind_Source", "Seconds_Behind_Master"])
                .and_then(|v| v.parse().ok()),
            // MySQL prints long sets over several lines.
            received: received.replace('\n', ""),
            source: format!("{host}:{port}"),
            sql_state: get(&["Replica_SQL_Running_State", "Slave_SQL_Running_State"])
                .unwrap_or_default(),
        })
    }

    /// An I/O error that is the network or a dead peer (client errors 2000-2999, as 2003
    /// "can't connect" and 2013 "lost connection"): the peer's problem, not this replica's.
    pub fn io_error_is_network(&self) -> bool {
        (2000..3000).contains(&self.last_io_errno)
    }
}

/// One health check of one server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub reachable: bool,
    /// Why it is not reachable, or what failed in the check.
    pub error: Option<String>,
    pub flavor: Option<Flavor>,
    pub version: String,
    pub server_id: u32,
    pub read_only: bool,
    /// What the server has executed: MariaDB `gtid_current_pos`, MySQL `gtid_executed`.
    pub executed: String,
    /// What it binlogged: MariaDB `gtid_binlog_pos` (MySQL: `gtid_executed`).
    pub binlog: String,
    /// None: no replication configured.
    pub replica: Option<Replica>,
    /// Transactions received and not yet applied (empty: none).
    pub backlog: String,
    /// Age of the last replication heartbeat or event from the peer, if the server says.
    pub heartbeat_age_ms: Option<u64>,
    /// Semi-synchronous replication, when the block asks for it (`semi_sync on`).
    #[serde(default)]
    pub semi_sync: Option<SemiSync>,
}

/// Semi-synchronous replication on one server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SemiSync {
    /// The master's side enabled (the agent keeps it so on the writable server only).
    pub master_enabled: bool,
    /// The replica's side enabled (the agent keeps it so on both).
    pub replica_enabled: bool,
    /// Commits wait for a replica's acknowledgement now; enabled but not active: it has
    /// fallen back to asynchronous replication (a timeout, no replica connected).
    pub master_active: bool,
    /// Commits that went out without an acknowledgement since the server started.
    pub not_acknowledged: u64,
}

impl SemiSync {
    /// Enabled on the master's side but not waiting for replicas: a crash can lose rows.
    pub fn fallen_back(&self) -> bool {
        self.master_enabled && !self.master_active
    }
}

impl Health {
    pub fn unreachable(error: String) -> Self {
        Self {
            error: Some(error),
            ..Self::default()
        }
    }

    /// Why this server cannot carry the pair's data (FAULT or a lower priority, as
    /// `track_replication` says); `None` when healthy. A peer that is down is not a problem
    /// of this server: its replica then retries with a network error.
    pub fn problem(&self) -> Option<String> {
        if !self.reachable {
            return Some(format!(
                "database unreachable: {}",
                self.error.as_deref().unwrap_or("no answer")
            ));
        }
        let Some(r) = &self.replica else {
            return Some("no replication from the peer is configured".into());
        };
        if r.last_sql_errno != 0 {
            return Some(format!(
                "replication apply error {}: {}",
                r.last_sql_errno, r.last_sql_error
            ));
        }
        if r.last_io_errno != 0 && !r.io_error_is_network() {
            return Some(format!(
                "replication I/O error {}: {}",
                r.last_io_errno, r.last_io_error
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(pairs: &[(&str, Option<&str>)]) -> Columns {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
            .collect()
    }

    /// `SHOW SLAVE STATUS` of MariaDB 10.11.19 (recorded, trimmed to what is read) on a
    /// passive whose master was just killed: reconnecting, nothing to apply.
    fn mariadb_master_killed() -> Columns {
        columns(&[
            (
                "Slave_IO_State",
                Some("Reconnecting after a failed master event read"),
            ),
            ("Master_Host", Some("192.168.2.11")),
            ("Master_Port", Some("3306")),
            ("Slave_IO_Running", Some("Connecting")),
            ("Slave_SQL_Running", Some("Yes")),
            ("Last_Errno", Some("0")),
            ("Seconds_Behind_Master", None),
            ("Last_IO_Errno", Some("2003")),
            (
                "Last_IO_Error",
                Some(
                    "error reconnecting to master 'repl@192.168.2.11:3306' - retry-time: 1  maximum-retries: 100000  message: Can't connect to server on '192.168.2.11' (111 \"Connection refused\")",
                ),
            ),
            ("Last_SQL_Errno", Some("0")),
            ("Last_SQL_Error", Some("")),
            ("Using_Gtid", Some("Slave_Pos")),
            ("Gtid_IO_Pos", Some("0-1-42")),
            (
                "Slave_SQL_Running_State",
                Some("Slave has read all relay log; waiting for more updates"),
            ),
        ])
    }

    /// `SHOW REPLICA STATUS` of MySQL 8.4 (column names of the 8.4 reference manual): an
    /// apply error, and a received set printed over two lines.
    fn mysql84_apply_error() -> Columns {
        columns(&[
            ("Replica_IO_State", Some("Waiting for source to send event")),
            ("Source_Host", Some("10.0.0.1")),
            ("Source_Port", Some("3306")),
            ("Replica_IO_Running", Some("Yes")),
            ("Replica_SQL_Running", Some("No")),
            ("Seconds_Behind_Source", None),
            ("Last_IO_Errno", Some("0")),
            ("Last_IO_Error", Some("")),
            ("Last_SQL_Errno", Some("1062")),
            (
                "Last_SQL_Error",
                Some("Coordinator stopped because there were error(s) in the worker(s)."),
            ),
            (
                "Retrieved_Gtid_Set",
                Some(
                    "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-77,\n4f22ab58-71ca-11e1-9e33-c80aa9429562:1-5",
                ),
            ),
            (
                "Executed_Gtid_Set",
                Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-70"),
            ),
            ("Auto_Position", Some("1")),
            ("Replica_SQL_Running_State", Some("")),
        ])
    }

    #[test]
    fn mariadb_status_of_a_passive_whose_master_died() {
        let r = Replica::from_columns(Flavor::Mariadb, &mariadb_master_killed()).unwrap();
        assert_eq!(r.io_running, "Connecting");
        assert!(r.sql_running);
        assert_eq!(r.seconds_behind, None);
        assert_eq!(r.received, "0-1-42");
        assert_eq!(r.source, "192.168.2.11:3306");
        assert!(r.io_error_is_network());
        let health = Health {
            reachable: true,
            replica: Some(r),
            ..Health::default()
        };
        // A dead peer is not this node's problem: it must stay able to take over.
        assert_eq!(health.problem(), None);
    }

    #[test]
    fn mysql_status_with_an_apply_error() {
        let r = Replica::from_columns(Flavor::Mysql, &mysql84_apply_error()).unwrap();
        assert_eq!(r.io_running, "Yes");
        assert!(!r.sql_running);
        assert_eq!(r.last_sql_errno, 1062);
        assert_eq!(
            r.received,
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-77,4f22ab58-71ca-11e1-9e33-c80aa9429562:1-5"
        );
        assert_eq!(r.source, "10.0.0.1:3306");
        let health = Health {
            reachable: true,
            replica: Some(r),
            ..Health::default()
        };
        assert_eq!(
            health.problem().unwrap(),
            "replication apply error 1062: Coordinator stopped because there were error(s) in the worker(s)."
        );
    }

    #[test]
    fn older_mysql_naming_and_fatal_io_errors() {
        let mut row = mariadb_master_killed();
        row.insert("Last_IO_Errno".into(), Some("1045".into()));
        row.insert("Last_IO_Error".into(), Some("Access denied".into()));
        let r = Replica::from_columns(Flavor::Mysql, &row).unwrap();
        assert_eq!(r.received, "", "MySQL reads Retrieved_Gtid_Set");
        let health = Health {
            reachable: true,
            replica: Some(r),
            ..Health::default()
        };
        assert_eq!(
            health.problem().unwrap(),
            "replication I/O error 1045: Access denied"
        );
        assert!(Replica::from_columns(Flavor::Mysql, &Columns::new()).is_err());
        let mut bad = mariadb_master_killed();
        bad.insert("Last_SQL_Errno".into(), Some("x".into()));
        assert!(Replica::from_columns(Flavor::Mariadb, &bad).is_err());
    }

    #[test]
    fn unreachable_and_unconfigured_are_problems() {
        assert_eq!(
            Health::unreachable("connection refused".into())
                .problem()
                .unwrap(),
            "database unreachable: connection refused"
        );
        let h = Health {
            reachable: true,
            ..Health::default()
        };
        assert_eq!(
            h.problem().unwrap(),
            "no replication from the peer is configured"
        );
        assert_eq!(
            Flavor::from_version("10.11.19-MariaDB-0+deb12u1-log"),
            Flavor::Mariadb
        );
        assert_eq!(Flavor::from_version("8.4.3"), Flavor::Mysql);
    }
}
