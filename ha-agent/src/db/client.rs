//! The MySQL/MariaDB side of the agent: one connection per task, every call bounded by a
//! timeout, the statements of each flavour in one place.

use std::time::Duration;

use mysql_async::{Conn, OptsBuilder, Row, Value, prelude::Queryable as _};

use super::{
    gtid::{self, Pos},
    health::{Columns, Flavor, Health, Replica, SemiSync},
};
use crate::config::Endpoint;

/// How to reach one server.
#[derive(Clone, Debug)]
pub struct Server {
    pub endpoint: Endpoint,
    pub user: String,
    pub password: String,
    /// Bound of the connection and of each ordinary statement.
    pub timeout: Duration,
}

/// An open connection and the flavour of its server.
pub struct Session {
    conn: Conn,
    pub flavor: Flavor,
    pub version: String,
    timeout: Duration,
}

/// How long a semi-sync replica's STOP SLAVE may spend connecting to its master to end
/// the master's dump thread (MariaDB does so; 5 s by default, which a failover from a dead
/// master would wait out).
const SEMI_SYNC_KILL_CONN_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs `fut` within `limit`, naming `what` if it fails.
async fn bounded<T>(
    what: &str,
    limit: Duration,
    fut: impl Future<Output = Result<T, mysql_async::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {limit:?}")),
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        other => Some(other.as_sql(true)),
    }
}

fn columns(row: &Row) -> Columns {
    row.columns_ref()
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name_str().into_owned(), row.as_ref(i).and_then(text)))
        .collect()
}

fn field(row: &Row, i: usize) -> Option<String> {
    row.as_ref(i).and_then(text)
}

fn is_on(value: Option<String>) -> bool {
    !matches!(value.as_deref(), None | Some("0" | "OFF"))
}

impl Server {
    pub async fn open(&self) -> Result<Session, String> {
        self.open_within(self.timeout).await
    }

    /// [`Server::open`] with a connect bound of its own.
    pub async fn open_within(&self, limit: Duration) -> Result<Session, String> {
        let opts = OptsBuilder::default()
            .user(Some(&self.user))
            .pass(Some(&self.password))
            .prefer_socket(false)
            .stmt_cache_size(0);
        let opts = match &self.endpoint {
            Endpoint::Tcp(ip, port) => opts.ip_or_hostname(ip.to_string()).tcp_port(*port),
            Endpoint::Socket(path) => opts.socket(Some(path.to_string_lossy())),
        };
        let what = format!("connecting to {}", self.endpoint);
        let mut conn = bounded(&what, limit, Conn::new(opts)).await?;
        let version: Option<String> = bounded(
            "SELECT @@version",
            self.timeout,
            conn.query_first("SELECT @@version"),
        )
        .await?;
        let version = version.unwrap_or_default();
        Ok(Session {
            conn,
            flavor: Flavor::from_version(&version),
            version,
            timeout: self.timeout,
        })
    }

    /// One health check: a fresh connection, so that a server that went away is seen at once.
    pub async fn health(&self) -> Health {
        match self.open().await {
            Ok(mut session) => {
                let health = session.health().await;
                session.close().await;
                health
            }
            Err(e) => Health::unreachable(e),
        }
    }
}

impl Session {
    pub async fn close(self) {
        let _ = tokio::time::timeout(self.timeout, self.conn.disconnect()).await;
    }

    async fn drop_query(&mut self, sql: &str) -> Result<(), String> {
        bounded(sql, self.timeout, self.conn.query_drop(sql)).await
    }

    async fn first_row(&mut self, sql: &str) -> Result<Option<Row>, String> {
        bounded(sql, self.timeout, self.conn.query_first(sql)).await
    }

    pub async fn health(&mut self) -> Health {
        match self.try_health().await {
            Ok(h) => h,
            Err(e) => Health {
                reachable: true,
                error: Some(e),
                flavor: Some(self.flavor),
                version: self.version.clone(),
                ..Health::default()
            },
        }
    }

    async fn try_health(&mut self) -> Result<Health, String> {
        let vars = match self.flavor {
            Flavor::Mariadb => {
                "SELECT @@server_id, @@read_only, @@gtid_current_pos, @@gtid_binlog_pos"
            }
            Flavor::Mysql => {
                "SELECT @@server_id, @@read_only, @@GLOBAL.gtid_executed, @@GLOBAL.gtid_executed"
            }
        };
        let row = self
            .first_row(vars)
            .await?
            .ok_or("no answer to @@ variables")?;
        let mut health = Health {
            reachable: true,
            flavor: Some(self.flavor),
            version: self.version.clone(),
            server_id: field(&row, 0).and_then(|v| v.parse().ok()).unwrap_or(0),
            read_only: is_on(field(&row, 1)),
            executed: field(&row, 2).unwrap_or_default().replace('\n', ""),
            binlog: field(&row, 3).unwrap_or_default().replace('\n', ""),
            ..Health::default()
        };
        let status = match self.flavor {
            Flavor::Mariadb => "SHOW SLAVE STATUS",
            Flavor::Mysql => "SHOW REPLICA STATUS",
        };
        if let Some(row) = self.first_row(status).await? {
            health.replica = Some(Replica::from_columns(self.flavor, &columns(&row))?);
        }
        if let Some(r) = &health.replica {
            health.backlog = self.not_in_executed(&r.received, &health.executed).await?;
        }
        health.heartbeat_age_ms = self.heartbeat_age_ms().await;
        Ok(health)
    }

    /// What of `received` is not in `executed` (empty: nothing).
    async fn not_in_executed(&mut self, received: &str, executed: &str) -> Result<String, String> {
        if received.is_empty() {
            return Ok(String::new());
        }
        match self.flavor {
            Flavor::Mariadb => {
                let beyond = Pos::parse(received)?.beyond(&Pos::parse(executed)?);
                Ok(beyond
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "))
            }
            Flavor::Mysql => self.subtract(received, executed).await,
        }
    }

    /// Time since the replica last heard from its source (heartbeat; MariaDB counts only
    /// heartbeats, which an idle source sends every MASTER_HEARTBEAT_PERIOD).
    async fn heartbeat_age_ms(&mut self) -> Option<u64> {
        let sql = match self.flavor {
            Flavor::Mariadb => {
                "SELECT TIMESTAMPDIFF(MICROSECOND, VARIABLE_VALUE, NOW(6)) DIV 1000 \
                 FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'SLAVE_LAST_HEARTBEAT'"
            }
            Flavor::Mysql => {
                "SELECT TIMESTAMPDIFF(MICROSECOND, LAST_HEARTBEAT_TIMESTAMP, NOW(6)) DIV 1000 \
                 FROM performance_schema.replication_connection_status WHERE CHANNEL_NAME = ''"
            }
        };
        let row = self.first_row(sql).await.ok()??;
        field(&row, 0)?.parse().ok()
    }

    /// `read_only` on (MySQL: `super_read_only`, which binds administrators too) or off.
    pub async fn set_read_only(&mut self, on: bool) -> Result<(), String> {
        let sql = match (self.flavor, on) {
            (Flavor::Mysql, true) => "SET GLOBAL super_read_only = ON",
            (_, true) => "SET GLOBAL read_only = ON",
            (_, false) => "SET GLOBAL read_only = OFF",
        };
        self.drop_query(sql).await
    }

    /// Ends client sessions except replication, the server's own threads, this session and
    /// `keep` (the agent's and the replication user): returns how many were killed.
    pub async fn kill_sessions(&mut self, keep: &[&str]) -> Result<u32, String> {
        let sql = "SELECT ID, USER FROM information_schema.PROCESSLIST \
                   WHERE ID <> CONNECTION_ID() \
                   AND COMMAND NOT IN ('Binlog Dump', 'Binlog Dump GTID', 'Daemon', 'Slave_IO', \
                   'Slave_SQL', 'Slave_worker') \
                   AND USER NOT IN ('system user', 'event_scheduler', 'unauthenticated user')";
        let rows: Vec<Row> = bounded(sql, self.timeout, self.conn.query(sql)).await?;
        let mut killed = 0;
        for row in rows {
            let (Some(id), user) = (field(&row, 0), field(&row, 1).unwrap_or_default()) else {
                continue;
            };
            if keep.contains(&user.as_str()) {
                continue;
            }
            // A session that ended meanwhile (1094, unknown thread) is fine.
            match self.drop_query(&format!("KILL CONNECTION {id}")).await {
                Ok(()) => killed += 1,
                Err(e) if e.contains("1094") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(killed)
    }

    pub async fn start_sql_thread(&mut self) -> Result<(), String> {
        self.drop_query(match self.flavor {
            Flavor::Mariadb => "START SLAVE SQL_THREAD",
            Flavor::Mysql => "START REPLICA SQL_THREAD",
        })
        .await
    }

    pub async fn start_replica(&mut self) -> Result<(), String> {
        self.drop_query(match self.flavor {
            Flavor::Mariadb => "START SLAVE",
            Flavor::Mysql => "START REPLICA",
        })
        .await
    }

    /// Semi-synchronous replication as this server has it (MariaDB's built-in names; MySQL
    /// names it after a plugin, not supported here).
    pub async fn semi_sync(&mut self) -> Result<SemiSync, String> {
        if self.flavor != Flavor::Mariadb {
            return Err("semi_sync: supported with MariaDB only".into());
        }
        let sql = "SELECT @@rpl_semi_sync_master_enabled, @@rpl_semi_sync_slave_enabled, \
                   (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
                    WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_STATUS'), \
                   (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
                    WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_NO_TX')";
        let row = self.first_row(sql).await?.ok_or("no answer")?;
        Ok(SemiSync {
            master_enabled: is_on(field(&row, 0)),
            replica_enabled: is_on(field(&row, 1)),
            master_active: is_on(field(&row, 2)),
            not_acknowledged: field(&row, 3).and_then(|v| v.parse().ok()).unwrap_or(0),
        })
    }

    /// The master's side of semi-synchronous replication on or off: a commit waits (at
    /// most `timeout_ms`) until a replica has the transaction in its relay log, before the
    /// engine commits it (`AFTER_SYNC`: no client sees a row a crash could lose).
    pub async fn set_semi_sync_master(&mut self, on: bool, timeout_ms: u64) -> Result<(), String> {
        if on {
            self.drop_query("SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC")
                .await?;
            self.drop_query(&format!(
                "SET GLOBAL rpl_semi_sync_master_timeout = {timeout_ms}"
            ))
            .await?;
        }
        self.drop_query(if on {
            "SET GLOBAL rpl_semi_sync_master_enabled = ON"
        } else {
            "SET GLOBAL rpl_semi_sync_master_enabled = OFF"
        })
        .await
    }

    /// The replica's side on; its I/O thread reconnects for it to take effect.
    pub async fn enable_semi_sync_replica(&mut self, io_running: bool) -> Result<(), String> {
        self.drop_query(&format!(
            "SET GLOBAL rpl_semi_sync_slave_kill_conn_timeout = {}",
            SEMI_SYNC_KILL_CONN_TIMEOUT.as_secs()
        ))
        .await?;
        self.drop_query("SET GLOBAL rpl_semi_sync_slave_enabled = ON")
            .await?;
        if io_running {
            self.stop_io_thread().await?;
            self.drop_query("START SLAVE IO_THREAD").await?;
        }
        Ok(())
    }

    /// Stops the I/O thread; a semi-sync replica's may first try to reach the master.
    pub async fn stop_io_thread(&mut self) -> Result<(), String> {
        let sql = match self.flavor {
            Flavor::Mariadb => "STOP SLAVE IO_THREAD",
            Flavor::Mysql => "STOP REPLICA IO_THREAD",
        };
        let limit = self.timeout + SEMI_SYNC_KILL_CONN_TIMEOUT;
        bounded(sql, limit, self.conn.query_drop(sql)).await
    }

    /// Waits until everything in `target` is applied here, up to `limit`: true when it is.
    pub async fn wait_executed(&mut self, target: &str, limit: Duration) -> Result<bool, String> {
        let sql = match self.flavor {
            Flavor::Mariadb => "SELECT MASTER_GTID_WAIT(?, ?)",
            Flavor::Mysql => "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?)",
        };
        let answer: Option<Option<i64>> = bounded(
            sql,
            limit + self.timeout,
            self.conn.exec_first(sql, (target, limit.as_secs_f64())),
        )
        .await?;
        // 0: reached; MariaDB -1 and MySQL 1: timeout; NULL: the wait could not run.
        match answer.flatten() {
            Some(0) => Ok(true),
            Some(_) => Ok(false),
            None => Err(format!("{sql} returned NULL for `{target}`")),
        }
    }

    /// Transactions this server wrote itself that `peer` lacks (errant on a node that
    /// should only replicate): empty when none.
    pub async fn errant(&mut self, local: &Health, peer: &Health) -> Result<String, String> {
        match self.flavor {
            Flavor::Mariadb => Ok(gtid::errant(
                &Pos::parse(&local.binlog)?,
                local.server_id,
                &Pos::parse(&peer.executed)?,
            )
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")),
            Flavor::Mysql => self.subtract(&local.executed, &peer.executed).await,
        }
    }

    /// MySQL: the GTIDs of set `a` not in set `b`, computed by the server.
    pub async fn subtract(&mut self, a: &str, b: &str) -> Result<String, String> {
        let left: Option<Option<String>> = bounded(
            "GTID_SUBTRACT",
            self.timeout,
            self.conn.exec_first("SELECT GTID_SUBTRACT(?, ?)", (a, b)),
        )
        .await?;
        Ok(left.flatten().unwrap_or_default().replace('\n', ""))
    }

    /// Runs statements that change the server (`db setup`), each bounded.
    pub async fn run(&mut self, statements: &[String]) -> Result<(), String> {
        for sql in statements {
            self.drop_query(sql).await?;
        }
        Ok(())
    }

    /// The first row of `sql`, as column name → value.
    pub async fn row(&mut self, sql: &str) -> Result<Option<Columns>, String> {
        Ok(self.first_row(sql).await?.map(|r| columns(&r)))
    }
}
