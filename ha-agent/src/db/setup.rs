//! `ha-agent db setup`: the manual steps of a fresh dual-master pair, automated. Checks both
//! servers' settings (and prints the my.cnf lines that are wrong), creates the agent's and
//! the replication accounts on both without binlogging them, points each server at the
//! other with GTID auto-positioning and heartbeats, starts replication and checks that a
//! row written on either side arrives on the other.

use std::{net::Ipv4Addr, time::Duration};

use super::{
    client::{Server, Session},
    health::Flavor,
};
use crate::config::{Endpoint, MysqlReplication, read_secret};

/// What the agent's account needs, per flavour (fencing, promotion, health).
pub fn agent_grants(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::Mariadb => {
            // REPLICATION MASTER ADMIN: the master's side of semi-sync (`semi_sync on`).
            "SLAVE MONITOR, BINLOG MONITOR, REPLICATION SLAVE ADMIN, REPLICATION MASTER ADMIN, \
             READ_ONLY ADMIN, CONNECTION ADMIN, PROCESS"
        }
        Flavor::Mysql => {
            "REPLICATION CLIENT, REPLICATION_SLAVE_ADMIN, SYSTEM_VARIABLES_ADMIN, \
             CONNECTION_ADMIN, PROCESS"
        }
    }
}

/// A string literal for SQL (quotes and backslashes escaped).
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// One server's settings that a dual-master pair needs, as my.cnf lines to change.
fn wrong_settings(
    flavor: Flavor,
    vars: &std::collections::BTreeMap<String, Option<String>>,
    offset: u32,
) -> Vec<String> {
    let get = |k: &str| vars.get(k).cloned().flatten().unwrap_or_default();
    let on = |k: &str| matches!(get(k).as_str(), "1" | "ON");
    let mut wrong = Vec::new();
    if get("server_id") == "0" || get("server_id").is_empty() {
        wrong.push("server_id = <a number unique in the pair>".to_owned());
    }
    if !on("log_bin") {
        wrong.push("log_bin = mysql-bin".into());
    }
    if get("binlog_format") != "ROW" {
        wrong.push("binlog_format = ROW".into());
    }
    if !on("log_slave_updates") {
        wrong.push("log_slave_updates = ON".into());
    }
    match flavor {
        Flavor::Mariadb => {
            if !on("gtid_strict_mode") {
                wrong.push("gtid_strict_mode = ON".into());
            }
        }
        Flavor::Mysql => {
            if get("gtid_mode") != "ON" {
                wrong.push("gtid_mode = ON".into());
            }
            if get("enforce_gtid_consistency") != "ON" {
                wrong.push("enforce_gtid_consistency = ON".into());
            }
        }
    }
    if get("auto_increment_increment") != "2" {
        wrong.push("auto_increment_increment = 2".into());
    }
    if get("auto_increment_offset") != offset.to_string() {
        wrong.push(format!("auto_increment_offset = {offset}"));
    }
    if !on("read_only") {
        wrong.push("read_only = ON   # the agent clears it on the master only".into());
    }
    wrong
}

const SETTINGS: &str = "SELECT @@server_id AS server_id, @@log_bin AS log_bin, \
    @@binlog_format AS binlog_format, @@log_slave_updates AS log_slave_updates, \
    @@auto_increment_increment AS auto_increment_increment, \
    @@auto_increment_offset AS auto_increment_offset, @@read_only AS read_only";

struct Node {
    name: &'static str,
    session: Session,
    /// The address the other node's replica connects to.
    address: Ipv4Addr,
    port: u16,
}

pub struct Admin {
    pub user: String,
    pub password: String,
}

/// What setup reads from a server's settings.
struct Settings {
    server_id: String,
    offset: Option<String>,
    /// my.cnf lines to change; empty when right.
    wrong: Vec<String>,
}

impl Node {
    async fn settings(&mut self, default_offset: u32) -> Result<Settings, String> {
        let extra = match self.session.flavor {
            Flavor::Mariadb => ", @@gtid_strict_mode AS gtid_strict_mode",
            Flavor::Mysql => {
                ", @@gtid_mode AS gtid_mode, @@enforce_gtid_consistency AS enforce_gtid_consistency"
            }
        };
        let vars = self
            .session
            .row(&format!("{SETTINGS}{extra}"))
            .await?
            .unwrap_or_default();
        let value = |k: &str| vars.get(k).cloned().flatten();
        let offset = value("auto_increment_offset")
            .and_then(|o| o.parse().ok())
            .filter(|o| *o == 1 || *o == 2)
            .unwrap_or(default_offset);
        Ok(Settings {
            server_id: value("server_id").unwrap_or_default(),
            offset: value("auto_increment_offset"),
            wrong: wrong_settings(self.session.flavor, &vars, offset),
        })
    }

    fn describe(&self, settings: &Settings) -> String {
        if settings.wrong.is_empty() {
            format!(
                "{} ({}:{}, {}, server_id {}): settings ok",
                self.name, self.address, self.port, self.session.version, settings.server_id
            )
        } else {
            format!(
                "{} ({}:{}): settings to change, in my.cnf:\n[mysqld]\n{}",
                self.name,
                self.address,
                self.port,
                settings.wrong.join("\n")
            )
        }
    }

    /// Refuses a server that replicates already: setup is for a fresh pair.
    async fn fresh(&mut self) -> Result<String, String> {
        let status = match self.session.flavor {
            Flavor::Mariadb => "SHOW SLAVE STATUS",
            Flavor::Mysql => "SHOW REPLICA STATUS",
        };
        if self.session.row(status).await?.is_some() {
            return Err(format!(
                "{}: replication is already configured (db setup is for a fresh pair; `ha-agent db status` shows it)",
                self.name
            ));
        }
        Ok(self.session.health().await.executed)
    }

    /// The replication account for `other`'s replica and the agent's account for both
    /// nodes, not binlogged (each server creates its own; neither replays the other's).
    async fn accounts(
        &mut self,
        other: Ipv4Addr,
        cfg: &MysqlReplication,
        repl_password: &str,
        agent_password: &str,
    ) -> Result<String, String> {
        let grants = agent_grants(self.session.flavor);
        let mut sql = vec!["SET sql_log_bin = 0".to_owned()];
        let repl = format!("{}@{}", quote(&cfg.repl_user), quote(&other.to_string()));
        sql.push(format!(
            "CREATE USER IF NOT EXISTS {repl} IDENTIFIED BY {}",
            quote(repl_password)
        ));
        sql.push(format!("GRANT REPLICATION SLAVE ON *.* TO {repl}"));
        let mut hosts = vec![self.address.to_string(), other.to_string()];
        if matches!(cfg.local, Endpoint::Socket(_)) {
            hosts.push("localhost".into());
        }
        for host in hosts {
            let agent = format!("{}@{}", quote(&cfg.user), quote(&host));
            sql.push(format!(
                "CREATE USER IF NOT EXISTS {agent} IDENTIFIED BY {}",
                quote(agent_password)
            ));
            sql.push(format!("GRANT {grants} ON *.* TO {agent}"));
        }
        sql.push("SET sql_log_bin = 1".into());
        self.session.run(&sql).await?;
        Ok(format!(
            "{}: accounts {} (replication) and {} (agent) created, not binlogged",
            self.name, cfg.repl_user, cfg.user
        ))
    }

    /// Replicates from `(host, port)` with GTID auto-positioning and heartbeats.
    async fn replicate_from(
        &mut self,
        (host, port): (Ipv4Addr, u16),
        cfg: &MysqlReplication,
        repl_password: &str,
    ) -> Result<String, String> {
        let sql = match self.session.flavor {
            Flavor::Mariadb => vec![
                format!(
                    "CHANGE MASTER TO MASTER_HOST={}, MASTER_PORT={port}, MASTER_USER={}, \
                     MASTER_PASSWORD={}, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, \
                     MASTER_HEARTBEAT_PERIOD=1",
                    quote(&host.to_string()),
                    quote(&cfg.repl_user),
                    quote(repl_password)
                ),
                "START SLAVE".to_owned(),
            ],
            Flavor::Mysql => vec![
                format!(
                    "CHANGE REPLICATION SOURCE TO SOURCE_HOST={}, SOURCE_PORT={port}, \
                     SOURCE_USER={}, SOURCE_PASSWORD={}, SOURCE_AUTO_POSITION=1, \
                     GET_SOURCE_PUBLIC_KEY=1, SOURCE_CONNECT_RETRY=1, SOURCE_HEARTBEAT_PERIOD=1",
                    quote(&host.to_string()),
                    quote(&cfg.repl_user),
                    quote(repl_password)
                ),
                "START REPLICA".to_owned(),
            ],
        };
        self.session.run(&sql).await?;
        Ok(format!("{}: replicating from {host}:{port}", self.name))
    }

    /// Writes a row here (read_only lifted for it) and waits until `reader` has it.
    async fn round_trip(&mut self, reader: &mut Node) -> Result<String, String> {
        let statements = [
            "SET GLOBAL read_only = OFF".to_owned(),
            "CREATE DATABASE IF NOT EXISTS ha_agent".into(),
            "CREATE TABLE IF NOT EXISTS ha_agent.setup_check (id INT AUTO_INCREMENT PRIMARY KEY, \
             node VARCHAR(64) NOT NULL, at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))"
                .into(),
            format!(
                "INSERT INTO ha_agent.setup_check (node) VALUES ({})",
                quote(&self.address.to_string())
            ),
            "SET GLOBAL read_only = ON".into(),
        ];
        self.session.run(&statements).await?;
        let written = self.session.health().await.binlog;
        if !reader
            .session
            .wait_executed(&written, Duration::from_secs(10))
            .await?
        {
            return Err(format!(
                "the row written on {} ({written}) did not arrive on {} within 10 s: see its replica status",
                self.name, reader.name
            ));
        }
        Ok(format!(
            "row written on {} arrived on {} ({written})",
            self.name, reader.name
        ))
    }
}

/// Runs the setup; the returned lines report each step. Nothing changes unless both
/// servers' settings are right and the pair is fresh.
pub async fn run(cfg: &MysqlReplication, admin: &Admin) -> Result<Vec<String>, String> {
    let local_address = cfg
        .local_address
        .ok_or("db setup needs `local_address` (the address the peer's replica connects to)")?;
    let repl_password = read_secret(
        cfg.repl_password_file
            .as_deref()
            .ok_or("db setup needs `repl_password_file` for the replication account")?,
    )?;
    let agent_password = read_secret(&cfg.password_file)?;
    let server = |endpoint: Endpoint| Server {
        endpoint,
        user: admin.user.clone(),
        password: admin.password.clone(),
        timeout: Duration::from_secs(10),
    };
    let mut local = Node {
        name: "local",
        session: server(cfg.local.clone()).open().await?,
        address: local_address,
        port: cfg.local_port,
    };
    let mut peer = Node {
        name: "peer",
        session: server(Endpoint::Tcp(cfg.peer.0, cfg.peer.1)).open().await?,
        address: cfg.peer.0,
        port: cfg.peer.1,
    };
    let result = setup(cfg, &mut local, &mut peer, &repl_password, &agent_password).await;
    local.session.close().await;
    peer.session.close().await;
    result
}

async fn setup(
    cfg: &MysqlReplication,
    local: &mut Node,
    peer: &mut Node,
    repl_password: &str,
    agent_password: &str,
) -> Result<Vec<String>, String> {
    // 1. Settings, both servers, before anything changes.
    let mine = local.settings(1).await?;
    let theirs = peer.settings(2).await?;
    let mut report = vec![local.describe(&mine), peer.describe(&theirs)];
    let mut wrong = !mine.wrong.is_empty() || !theirs.wrong.is_empty();
    if mine.server_id == theirs.server_id {
        wrong = true;
        report.push(format!(
            "both servers have server_id {}: give each its own",
            mine.server_id
        ));
    }
    if mine.offset == theirs.offset {
        wrong = true;
        report.push("both servers have the same auto_increment_offset: use 1 and 2".into());
    }
    if cfg.semi_sync {
        for node in [&mut *local, &mut *peer] {
            if let Err(e) = node.session.semi_sync().await {
                wrong = true;
                report.push(format!(
                    "{}: semi_sync on, but the server has no semi-synchronous replication \
                     (MariaDB has it built in since 10.3): {e}",
                    node.name
                ));
            }
        }
    }
    if wrong {
        return Err(report.join("\n"));
    }
    // 2. A fresh pair: no replication yet, the same data.
    let (ours, their) = (local.fresh().await?, peer.fresh().await?);
    if ours != their {
        return Err(format!(
            "the servers' data differ (executed {ours} / {their}): seed the peer from this node \
             first (mariadb-backup, a dump with its GTID position, or the clone plugin)"
        ));
    }
    // 3. Accounts, 4. replication both ways, 5. a row each way.
    report.push(
        local
            .accounts(peer.address, cfg, repl_password, agent_password)
            .await?,
    );
    report.push(
        peer.accounts(local.address, cfg, repl_password, agent_password)
            .await?,
    );
    report.push(
        local
            .replicate_from((peer.address, peer.port), cfg, repl_password)
            .await?,
    );
    report.push(
        peer.replicate_from((local.address, local.port), cfg, repl_password)
            .await?,
    );
    report.push(local.round_trip(peer).await?);
    report.push(peer.round_trip(local).await?);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_wrong_settings() {
        assert_eq!(quote(r"a'b\c"), r"'a\'b\\c'");
        let vars = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
                .collect()
        };
        let good = vars(&[
            ("server_id", "2"),
            ("log_bin", "1"),
            ("binlog_format", "ROW"),
            ("log_slave_updates", "1"),
            ("gtid_strict_mode", "1"),
            ("auto_increment_increment", "2"),
            ("auto_increment_offset", "2"),
            ("read_only", "1"),
        ]);
        assert!(wrong_settings(Flavor::Mariadb, &good, 2).is_empty());
        let bad = vars(&[
            ("server_id", "0"),
            ("log_bin", "0"),
            ("binlog_format", "MIXED"),
            ("log_slave_updates", "0"),
            ("auto_increment_increment", "1"),
            ("auto_increment_offset", "1"),
            ("read_only", "0"),
        ]);
        assert_eq!(
            wrong_settings(Flavor::Mariadb, &bad, 2),
            [
                "server_id = <a number unique in the pair>",
                "log_bin = mysql-bin",
                "binlog_format = ROW",
                "log_slave_updates = ON",
                "gtid_strict_mode = ON",
                "auto_increment_increment = 2",
                "auto_increment_offset = 2",
                "read_only = ON   # the agent clears it on the master only",
            ]
        );
        assert!(wrong_settings(Flavor::Mysql, &good, 2).contains(&"gtid_mode = ON".to_owned()));
    }
}
