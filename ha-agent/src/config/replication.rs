//! `mysql_replication NAME { ... }` (an ha-agent extension): the MySQL/MariaDB pair whose
//! promotion gates a VRRP instance that names it in `track_replication`.

use std::{net::Ipv4Addr, path::PathBuf, time::Duration};

use super::{build::Builder, diag::Loc, tree::Node};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Asked from the server (`@@version`) at first connection.
    Auto,
    Mysql,
    Mariadb,
}

/// What to do when the relay log has not been applied within `drain_timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrainPolicy {
    /// Stay BACKUP; try again after Master_Down_Interval.
    Refuse,
    /// Promote anyway: the transactions not yet applied are applied later, by then after
    /// writes on this node (an operator's choice of availability over order).
    Promote,
}

/// How the agent reaches a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(Ipv4Addr, u16),
    Socket(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(ip, port) => write!(f, "{ip}:{port}"),
            Endpoint::Socket(path) => write!(f, "{}", path.display()),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct MysqlReplication {
    pub name: String,
    pub loc: Loc,
    pub local: Endpoint,
    /// The peer as this server's replica connects to it (and the agent fences it).
    pub peer: (Ipv4Addr, u16),
    /// The local server's address as the peer's replica connects to it (`db setup`).
    pub local_address: Option<Ipv4Addr>,
    pub local_port: u16,
    pub user: String,
    pub password_file: PathBuf,
    pub repl_user: String,
    pub repl_password_file: Option<PathBuf>,
    pub flavor: Flavor,
    pub check_interval: Duration,
    pub drain_timeout: Duration,
    pub on_drain_timeout: DrainPolicy,
    /// Anti-flap: the least time between two automatic failovers to this node.
    pub min_failover_interval: Duration,
    /// Anti-flap: automatic failovers allowed before an operator runs `ha-agent db ack`.
    pub max_auto_failovers: u32,
    /// Connect and query timeout of health checks and fencing.
    pub connect_timeout: Duration,
    /// Semi-synchronous replication (`AFTER_SYNC`) managed by the agent.
    pub semi_sync: bool,
    /// How long a commit waits for a replica's acknowledgement before the master falls back
    /// to asynchronous replication.
    pub semi_sync_timeout: Duration,
}

/// `track_replication { NAME [weight N] }` in an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackReplication {
    pub name: String,
    /// Priority change while the database is down or its replication broken; none: FAULT.
    pub weight: Option<i32>,
    pub loc: Loc,
}

impl Builder<'_> {
    pub(super) fn replication(&mut self, block: &Node) -> Option<MysqlReplication> {
        let Some(name) = block.args.first() else {
            self.diags
                .error(block.loc(), "`mysql_replication` needs a name");
            return None;
        };
        let (mut local_address, mut local_socket, mut local_port) = (None, None, 3306);
        let (mut peer_address, mut peer_port) = (None, 3306);
        let (mut user, mut password_file) = (None, None);
        let mut r = MysqlReplication {
            name: name.text.clone(),
            loc: block.loc().clone(),
            local: Endpoint::Tcp(Ipv4Addr::LOCALHOST, 3306),
            peer: (Ipv4Addr::UNSPECIFIED, 3306),
            local_address: None,
            local_port: 3306,
            user: String::new(),
            password_file: PathBuf::new(),
            repl_user: "repl".into(),
            repl_password_file: None,
            flavor: Flavor::Auto,
            check_interval: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(10),
            on_drain_timeout: DrainPolicy::Refuse,
            min_failover_interval: Duration::from_secs(300),
            max_auto_failovers: 3,
            connect_timeout: Duration::from_secs(1),
            semi_sync: false,
            semi_sync_timeout: Duration::from_secs(1),
        };
        for node in block.children() {
            match node.name() {
                "local_address" => {
                    local_address = self.arg(node).and_then(|t| self.ipv4(t, "local_address"))
                }
                "local_socket" => local_socket = self.arg(node).map(|t| PathBuf::from(&t.text)),
                "local_port" => local_port = self.int(node, 1, 65535).unwrap_or(3306) as u16,
                "peer_address" => {
                    peer_address = self.arg(node).and_then(|t| self.ipv4(t, "peer_address"))
                }
                "peer_port" => peer_port = self.int(node, 1, 65535).unwrap_or(3306) as u16,
                "user" => user = self.arg(node).map(|t| t.text.clone()),
                "password_file" => password_file = self.arg(node).map(|t| PathBuf::from(&t.text)),
                "repl_user" => {
                    if let Some(t) = self.arg(node) {
                        r.repl_user = t.text.clone();
                    }
                }
                "repl_password_file" => {
                    r.repl_password_file = self.arg(node).map(|t| PathBuf::from(&t.text))
                }
                "flavor" => {
                    if let Some(t) = self.arg(node) {
                        match t.text.as_str() {
                            "auto" => r.flavor = Flavor::Auto,
                            "mysql" => r.flavor = Flavor::Mysql,
                            "mariadb" => r.flavor = Flavor::Mariadb,
                            other => self.diags.error(
                                &t.loc,
                                format!("unknown flavor `{other}` (auto, mysql or mariadb)"),
                            ),
                        }
                    }
                }
                "check_interval" => {
                    if let Some(d) = self.seconds(node, 0.1, 3600.0) {
                        r.check_interval = d;
                    }
                }
                "drain_timeout" => {
                    if let Some(d) = self.seconds(node, 0.0, 86400.0) {
                        r.drain_timeout = d;
                    }
                }
                "on_drain_timeout" => {
                    if let Some(t) = self.arg(node) {
                        match t.text.as_str() {
                            "refuse" => r.on_drain_timeout = DrainPolicy::Refuse,
                            "promote" => r.on_drain_timeout = DrainPolicy::Promote,
                            other => self.diags.error(
                                &t.loc,
                                format!("unknown on_drain_timeout `{other}` (refuse or promote)"),
                            ),
                        }
                    }
                }
                "min_failover_interval" => {
                    if let Some(d) = self.seconds(node, 0.0, 1e7) {
                        r.min_failover_interval = d;
                    }
                }
                "max_auto_failovers" => {
                    if let Some(n) = self.int(node, 0, 1_000_000) {
                        r.max_auto_failovers = n as u32;
                    }
                }
                "connect_timeout" => {
                    if let Some(d) = self.seconds(node, 0.05, 60.0) {
                        r.connect_timeout = d;
                    }
                }
                "semi_sync" => {
                    if let Some(t) = self.arg(node) {
                        match t.text.as_str() {
                            "on" => r.semi_sync = true,
                            "off" => r.semi_sync = false,
                            other => self
                                .diags
                                .error(&t.loc, format!("semi_sync `{other}`: on or off")),
                        }
                    }
                }
                "semi_sync_timeout" => {
                    if let Some(ms) = self.int(node, 1, 3_600_000) {
                        r.semi_sync_timeout = Duration::from_millis(ms as u64);
                    }
                }
                _ => self.unknown(node, "mysql_replication"),
            }
        }
        let what = format!("mysql_replication {}", r.name);
        r.local_address = local_address;
        r.local_port = local_port;
        r.local = match (local_socket, local_address) {
            (Some(path), _) => Endpoint::Socket(path),
            (None, Some(ip)) => Endpoint::Tcp(ip, local_port),
            (None, None) => {
                self.diags.error(
                    block.loc(),
                    format!("{what}: `local_address` or `local_socket` missing"),
                );
                return None;
            }
        };
        let missing = |b: &mut Self, key: &str| {
            b.diags
                .error(block.loc(), format!("{what}: `{key}` missing"));
        };
        match peer_address {
            Some(ip) => r.peer = (ip, peer_port),
            None => missing(self, "peer_address"),
        }
        match user {
            Some(u) => r.user = u,
            None => missing(self, "user"),
        }
        match password_file {
            Some(p) => r.password_file = p,
            None => missing(self, "password_file"),
        }
        if r.peer.0.is_unspecified() || r.user.is_empty() || r.password_file.as_os_str().is_empty()
        {
            return None;
        }
        Some(r)
    }

    /// The entries of a `track_replication` block.
    pub(super) fn track_replication(&mut self, block: &Node) -> Vec<TrackReplication> {
        block
            .children()
            .iter()
            .map(|child| {
                let (weight, reverse) = self.weight(child);
                if reverse {
                    self.diags.warn(
                        child.loc(),
                        "`reverse` means nothing for track_replication; ignored",
                    );
                }
                TrackReplication {
                    name: child.name().to_owned(),
                    weight: weight.filter(|w| *w != 0),
                    loc: child.loc().clone(),
                }
            })
            .collect()
    }
}
