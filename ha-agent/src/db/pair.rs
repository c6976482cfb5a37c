//! The two servers of one `mysql_replication` and what the agent does to them: promote
//! through the gate, demote, hand over for a switchover, and keep the channel from the peer
//! running when that is safe. Each step is bounded and says what it did or why it refused.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tracing::{info, warn};

use super::{
    antiflap::Record,
    client::{Server, Session},
    gtid::{self, Pos},
    health::{Flavor, Health, SemiSync},
};
use crate::config::{DrainPolicy, Endpoint, MysqlReplication, read_secret};

pub struct Pair {
    pub cfg: MysqlReplication,
    pub local: Server,
    pub peer: Server,
    state_dir: PathBuf,
    /// The agent stopped the channel from the peer (a promotion without the peer): it
    /// starts it again once the returning peer is checked.
    channel_stopped: Arc<AtomicBool>,
    /// Whether the last health check reached the peer.
    peer_lost: AtomicBool,
    /// The start-up check of the channel is still to be made.
    start_pending: AtomicBool,
    /// MariaDB: the latest of what the local replica reported received, kept in the state
    /// directory. A restarted server forgets the part of its relay log it had not applied
    /// (it fetches it again from its source, which may be gone by then); the promotion
    /// gate still waits for it.
    received: Mutex<Pos>,
    /// The semi-sync problem last logged, if one persists.
    semi_sync_error: Mutex<Option<String>>,
}

/// The fencing attempt's connect bound when the last health check did not reach the peer
/// either (a second signal beside its silent adverts): a LAN answers well within it.
const FENCE_GONE_PEER: Duration = Duration::from_millis(100);

impl Pair {
    pub fn new(cfg: MysqlReplication, state_dir: PathBuf) -> Result<Self, String> {
        let password = read_secret(&cfg.password_file)?;
        let server = |endpoint: Endpoint| Server {
            endpoint,
            user: cfg.user.clone(),
            password: password.clone(),
            timeout: cfg.connect_timeout,
        };
        Ok(Self {
            local: server(cfg.local.clone()),
            peer: server(Endpoint::Tcp(cfg.peer.0, cfg.peer.1)),
            received: Mutex::new(load_received(&received_path(&state_dir, &cfg.name))),
            semi_sync_error: Mutex::default(),
            cfg,
            state_dir,
            channel_stopped: Arc::default(),
            peer_lost: AtomicBool::new(false),
            start_pending: AtomicBool::new(true),
        })
    }

    /// Remembers what the replica reports received, if it is later than what was.
    fn remember_received(&self, health: &Health) {
        let Some(now) = health
            .replica
            .as_ref()
            .and_then(|r| Pos::parse(&r.received).ok())
        else {
            return;
        };
        let Ok(mut kept) = self.received.lock() else {
            return;
        };
        let merged = kept.merge(&now);
        if merged != *kept {
            let path = received_path(&self.state_dir, &self.cfg.name);
            let tmp = path.with_extension("tmp");
            let saved = std::fs::create_dir_all(&self.state_dir)
                .and_then(|()| std::fs::write(&tmp, merged.to_string()))
                .and_then(|()| std::fs::rename(&tmp, &path));
            if let Err(e) = saved {
                warn!(db = %self.cfg.name, "keeping the received position in {}: {e}", path.display());
            }
            *kept = merged;
        }
    }

    /// What a promotion must have applied: what the replica reports received and, with
    /// MariaDB, what it reported before (see [`Pair::received`]); and the part of that the
    /// replica no longer reports.
    fn drain_target(&self, flavor: Flavor, received: &str) -> (String, String) {
        if flavor != Flavor::Mariadb {
            return (received.to_owned(), String::new());
        }
        let now = Pos::parse(received).unwrap_or_default();
        let kept = self.received.lock().map(|k| k.clone()).unwrap_or_default();
        let forgotten: Vec<String> = kept
            .beyond(&now)
            .iter()
            .map(|b| match b {
                gtid::Beyond::Ahead(mine, _) | gtid::Beyond::Diverged(mine, _) => mine.to_string(),
            })
            .collect();
        (kept.merge(&now).to_string(), forgotten.join(", "))
    }

    /// Sessions fencing leaves alone: the agent's and replication's.
    fn keep(&self) -> [&str; 2] {
        [self.cfg.user.as_str(), self.cfg.repl_user.as_str()]
    }

    /// The anti-flap record (empty if unreadable; the promotion reports that error).
    pub fn failovers(&self) -> Record {
        Record::load(&self.record_path()).unwrap_or_default()
    }

    fn record_path(&self) -> PathBuf {
        Record::path(&self.state_dir, &self.cfg.name)
    }

    /// The promotion gate: fence the peer if it answers, apply everything received and
    /// everything the fenced peer wrote (bounded), refuse on an apply error, then clear
    /// read_only. `Ok` says what
    /// was done, `Err` why the node stays BACKUP. `failover`: anti-flap applies.
    /// `superseded` says whether the instance asked for something else since (a better
    /// master appeared while this one drained): read_only then stays, as the demotion
    /// queued behind would set it again a moment later, with the peer writable.
    pub async fn promote(
        &self,
        failover: bool,
        superseded: &(dyn Fn() -> bool + Sync),
    ) -> Result<String, String> {
        let mut record = Record::load(&self.record_path())?;
        if failover {
            record.allows(
                &super::antiflap::Now::read(),
                self.cfg.min_failover_interval,
                self.cfg.max_auto_failovers,
            )?;
        }
        let mut local = self
            .local
            .open()
            .await
            .map_err(|e| format!("local database: {e}"))?;
        let result = self.promote_with(&mut local, superseded).await;
        local.close().await;
        let done = result?;
        if failover {
            record.record(&super::antiflap::Now::read());
            record.save(&self.record_path())?;
        }
        Ok(done)
    }

    async fn promote_with(
        &self,
        local: &mut Session,
        superseded: &(dyn Fn() -> bool + Sync),
    ) -> Result<String, String> {
        const ABANDONED: &str =
            "abandoned: the instance asked for something else meanwhile; read_only kept";
        // Fencing the peer and applying what we received run side by side: a peer that is
        // gone costs its connect timeout once, not on top of the drain.
        let (peer, drained) = tokio::join!(self.fence_peer(), self.drain_received(local));
        let (peer, mut notes) = peer?;
        let (health, drain_notes) = drained?;
        notes.extend(drain_notes);
        let Some(replica) = &health.replica else {
            if superseded() {
                return Err(ABANDONED.into());
            }
            notes.push("no replication configured".into());
            local.set_read_only(false).await?;
            return Ok(notes.join("; "));
        };
        if let Some(p) = peer.as_ref().filter(|p| p.reachable && p.error.is_none()) {
            // What we wrote that the peer lacks (an old master that stepped down before
            // shipping it): the peer fetches it from us once we are master.
            let ahead = local.errant(&health, p).await?;
            // The fenced peer's binlog is final: everything in it must be applied here. A
            // stopped channel is started to fetch it, unless we wrote what the peer lacks
            // (then its writes would land after ours).
            if replica.io_running == "No" && ahead.is_empty() {
                local.start_replica().await?;
                self.channel_stopped.store(false, Ordering::Relaxed);
                notes.push("replication from the fenced peer started".into());
            }
            if let Some(note) = self.drain(local, &p.binlog, &health).await? {
                notes.push(note);
            }
            if !ahead.is_empty() {
                notes.push(format!("the peer lacks our {ahead}; it fetches it from us"));
            }
        } else if replica.io_running != "No" {
            // A peer that is gone may come back with writes it never shipped: pull nothing
            // from it until it is checked.
            local.stop_io_thread().await?;
            self.channel_stopped.store(true, Ordering::Relaxed);
            notes.push("replication from the peer stopped until it is back and checked".into());
        }
        if superseded() {
            return Err(ABANDONED.into());
        }
        // The first write already waits for the peer.
        if self.cfg.semi_sync {
            local
                .set_semi_sync_master(true, self.semi_sync_timeout_ms())
                .await?;
            notes.push("semi-sync on".into());
        }
        local.set_read_only(false).await?;
        notes.push("read_only cleared".into());
        Ok(notes.join("; "))
    }

    /// Fences the peer while it answers: read-only, its application sessions ended; its
    /// health after that (`None`: not reached).
    async fn fence_peer(&self) -> Result<(Option<Health>, Vec<String>), String> {
        let limit = if self.peer_lost.load(Ordering::Relaxed) {
            FENCE_GONE_PEER.min(self.peer.timeout)
        } else {
            self.peer.timeout
        };
        match self.peer.open_within(limit).await {
            Ok(mut peer) => {
                let fenced = self.fence(&mut peer).await;
                let health = peer.health().await;
                peer.close().await;
                let killed = fenced.map_err(|e| format!("fencing the peer: {e}"))?;
                Ok((
                    Some(health),
                    vec![format!("peer fenced ({killed} sessions ended)")],
                ))
            }
            Err(e) => Ok((None, vec![format!("peer not reached, not fenced ({e})")])),
        }
    }

    /// Refuses an apply error, starts a stopped SQL thread and applies everything the replica
    /// received (bounded by `drain_timeout`); the health it started from.
    async fn drain_received(&self, local: &mut Session) -> Result<(Health, Vec<String>), String> {
        let mut notes = Vec::new();
        let health = local.health().await;
        if let Some(e) = &health.error {
            return Err(format!("local database: {e}"));
        }
        let Some(replica) = &health.replica else {
            return Ok((health, notes));
        };
        if replica.last_sql_errno != 0 {
            return Err(format!(
                "replication apply error {}: {}",
                replica.last_sql_errno, replica.last_sql_error
            ));
        }
        if !replica.sql_running {
            local.start_sql_thread().await?;
            notes.push("SQL thread started".into());
        }
        // The health checks wait while a promotion runs: what it sees counts too.
        if local.flavor == Flavor::Mariadb {
            self.remember_received(&health);
        }
        let (target, forgotten) = self.drain_target(local.flavor, &replica.received);
        match self.drain(local, &target, &health).await {
            Ok(note) => notes.extend(note),
            Err(e) if !forgotten.is_empty() => {
                return Err(format!(
                    "{e}; received earlier but no longer in this server's relay log (restarted while its source was out of reach?): {forgotten}"
                ));
            }
            Err(e) => return Err(e),
        }
        Ok((health, notes))
    }

    /// Waits (bounded) until `target` is applied here; what it did, or why it refuses.
    async fn drain(
        &self,
        local: &mut Session,
        target: &str,
        health: &Health,
    ) -> Result<Option<String>, String> {
        if self.missing(local, target, health).await?.is_empty() {
            return Ok(None);
        }
        let start = std::time::Instant::now();
        if local.wait_executed(target, self.cfg.drain_timeout).await? {
            return Ok(Some(format!(
                "relay log applied up to {target} in {:.0} ms",
                start.elapsed().as_secs_f64() * 1000.0
            )));
        }
        let after = local.health().await;
        if let Some(r) = after.replica.as_ref().filter(|r| r.last_sql_errno != 0) {
            return Err(format!(
                "replication apply error {} while draining: {}",
                r.last_sql_errno, r.last_sql_error
            ));
        }
        let why = format!(
            "relay log not applied within drain_timeout {:?} (to apply: {target}; executed: {})",
            self.cfg.drain_timeout, after.executed
        );
        match self.cfg.on_drain_timeout {
            DrainPolicy::Refuse => Err(why),
            DrainPolicy::Promote => {
                warn!(db = %self.cfg.name, "{why}; promoting anyway (on_drain_timeout promote)");
                Ok(Some(why))
            }
        }
    }

    /// What of `target` this server has not executed yet (empty: nothing).
    async fn missing(
        &self,
        local: &mut Session,
        target: &str,
        health: &Health,
    ) -> Result<String, String> {
        if target.is_empty() {
            return Ok(String::new());
        }
        match local.flavor {
            Flavor::Mariadb => {
                let beyond = Pos::parse(target)?.beyond(&Pos::parse(&health.executed)?);
                if let Some(d) = beyond
                    .iter()
                    .find(|b| matches!(b, gtid::Beyond::Diverged(..)))
                {
                    return Err(format!("the peer's data diverged from ours: {d}"));
                }
                Ok(beyond
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "))
            }
            // The wait itself returns at once when nothing is missing.
            Flavor::Mysql => Ok(target.to_owned()),
        }
    }

    async fn fence(&self, server: &mut Session) -> Result<u32, String> {
        server.set_read_only(true).await?;
        let killed = server.kill_sessions(&self.keep()).await?;
        // A read-only server's commits are replicated ones: none waits for the peer.
        if self.cfg.semi_sync
            && let Err(e) = server.set_semi_sync_master(false, 0).await
        {
            warn!(db = %self.cfg.name, "turning semi-sync off on a read-only server: {e}");
        }
        Ok(killed)
    }

    fn semi_sync_timeout_ms(&self) -> u64 {
        self.cfg.semi_sync_timeout.as_millis() as u64
    }

    /// Semi-sync as the roles say: the master's side on the writable server only, the
    /// replica's side on (each agent keeps its own server so); what the server has then.
    async fn keep_semi_sync(&self, local: &mut Session, health: &Health) -> Option<SemiSync> {
        let mut state = match local.semi_sync().await {
            Ok(s) => s,
            Err(e) => {
                self.semi_sync_problem(Some(e));
                return None;
            }
        };
        let writable = !health.read_only;
        if state.master_enabled != writable {
            match local
                .set_semi_sync_master(writable, self.semi_sync_timeout_ms())
                .await
            {
                Ok(()) => state.master_enabled = writable,
                Err(e) => {
                    self.semi_sync_problem(Some(e));
                    return Some(state);
                }
            }
        }
        if !state.replica_enabled {
            let io = health
                .replica
                .as_ref()
                .is_some_and(|r| r.io_running != "No");
            match local.enable_semi_sync_replica(io).await {
                Ok(()) => state.replica_enabled = true,
                Err(e) => {
                    self.semi_sync_problem(Some(e));
                    return Some(state);
                }
            }
        }
        self.semi_sync_problem(None);
        Some(state)
    }

    /// Logs a semi-sync problem once, and its end.
    fn semi_sync_problem(&self, now: Option<String>) {
        if let Ok(mut last) = self.semi_sync_error.lock()
            && *last != now
        {
            match &now {
                Some(e) => warn!(db = %self.cfg.name, "semi-sync: {e}"),
                None => info!(db = %self.cfg.name, "semi-sync: as configured again"),
            }
            *last = now;
        }
    }

    /// Demotion: read-only and application sessions ended (before the VIPs go).
    pub async fn demote(&self) -> Result<String, String> {
        let mut local = self.local.open().await?;
        let result = self.fence(&mut local).await;
        local.close().await;
        result.map(|killed| format!("read_only set, {killed} sessions ended"))
    }

    /// Planned switchover, on the master: read-only, then wait (bounded) until the peer has
    /// executed everything we wrote. On failure the node is made writable again (it is still
    /// master) and the error says why.
    pub async fn hand_over(&self) -> Result<String, String> {
        let mut local = self.local.open().await?;
        let result = self.hand_over_with(&mut local).await;
        if result.is_err()
            && let Err(e) = local.set_read_only(false).await
        {
            warn!(db = %self.cfg.name, "switchover failed and read_only could not be cleared again: {e}");
        }
        local.close().await;
        result
    }

    async fn hand_over_with(&self, local: &mut Session) -> Result<String, String> {
        let killed = self.fence(local).await?;
        let health = local.health().await;
        if let Some(e) = health.error {
            return Err(format!("local database: {e}"));
        }
        let mut peer = self
            .peer
            .open()
            .await
            .map_err(|e| format!("the peer database: {e}"))?;
        let peer_health = peer.health().await;
        let outcome = match peer_health.problem() {
            Some(problem) => Err(format!("the peer cannot take over: {problem}")),
            None => {
                let start = std::time::Instant::now();
                match peer
                    .wait_executed(&health.binlog, self.cfg.drain_timeout)
                    .await
                {
                    Ok(true) => Ok(format!(
                        "read_only set ({killed} sessions ended); the peer executed {} in {:.0} ms",
                        health.binlog,
                        start.elapsed().as_secs_f64() * 1000.0
                    )),
                    Ok(false) => Err(format!(
                        "the peer did not execute {} within drain_timeout {:?}",
                        health.binlog, self.cfg.drain_timeout
                    )),
                    Err(e) => Err(e),
                }
            }
        };
        peer.close().await;
        outcome
    }

    /// One health check of both servers, and the channel from the peer started where that is
    /// safe: at the first check that reaches both servers (they start with
    /// `skip_slave_start`), or after a promotion stopped it. A writable peer is the active
    /// node and always pulled from; a read-only one if it holds no transactions of its own
    /// that we lack, or if we are read-only and wrote nothing it lacks (catching up with an
    /// old master that stepped down); a returning old master with writes it never shipped,
    /// when we wrote since, stays cut off, and the log says so.
    pub async fn check(&self) -> (Health, Health) {
        let (local, peer) = tokio::join!(self.local.open(), self.peer.health());
        self.peer_lost.store(!peer.reachable, Ordering::Relaxed);
        let mut local = match local {
            Ok(s) => s,
            Err(e) => return (Health::unreachable(e), peer),
        };
        let mut health = local.health().await;
        // Stopped, and not for an error of its own (a dead peer's connection error stays
        // reported after the stop).
        let stopped = health.replica.as_ref().is_some_and(|r| {
            r.io_running == "No"
                && (r.last_io_errno == 0 || r.io_error_is_network())
                && r.last_sql_errno == 0
        });
        let ours = self.channel_stopped.load(Ordering::Relaxed);
        let both = peer.reachable && peer.error.is_none() && health.error.is_none();
        // The start-up decision waits for a check that reaches both (a link just up, a peer
        // still starting).
        let at_start = both && self.start_pending.swap(false, Ordering::Relaxed);
        if stopped && (at_start || ours) && both {
            // A read-only peer's writes of its own that we lack: an old master that had not
            // shipped them. Catching up is safe while we are read-only and wrote nothing it
            // lacks; pulled into a server that writes, they would land after newer writes.
            let catch_up = health.read_only
                && local
                    .errant(&health, &peer)
                    .await
                    .is_ok_and(|ours| ours.is_empty());
            match self.peer_errant(&mut local, &peer).await {
                Ok(errant) if errant.is_empty() || !peer.read_only || catch_up => {
                    match local.start_replica().await {
                        Ok(()) => {
                            info!(db = %self.cfg.name, "replication from the peer started");
                            self.channel_stopped.store(false, Ordering::Relaxed);
                            health = local.health().await;
                        }
                        Err(e) => warn!(db = %self.cfg.name, "starting replication: {e}"),
                    }
                }
                Ok(errant) => warn!(
                    db = %self.cfg.name,
                    "replication from the peer stays stopped: it holds transactions this node lacks ({errant}) and this node wrote since; resolve them, then START SLAVE/REPLICA"
                ),
                Err(e) => warn!(db = %self.cfg.name, "comparing with the peer: {e}"),
            }
        }
        if self.cfg.semi_sync && health.error.is_none() {
            health.semi_sync = self.keep_semi_sync(&mut local, &health).await;
        }
        local.close().await;
        if health.flavor == Some(Flavor::Mariadb) {
            self.remember_received(&health);
        }
        (health, peer)
    }

    /// The peer's own transactions that this server lacks.
    async fn peer_errant(&self, local: &mut Session, peer: &Health) -> Result<String, String> {
        match local.flavor {
            Flavor::Mariadb => {
                let local_pos = Pos::parse(&local.health().await.executed)?;
                let found = gtid::errant(&Pos::parse(&peer.binlog)?, peer.server_id, &local_pos);
                Ok(found
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "))
            }
            Flavor::Mysql => {
                let me = local.health().await;
                local.subtract(&peer.executed, &me.executed).await
            }
        }
    }
}

/// Where [`Pair::received`] is kept: `received-<NAME>` in the state directory.
pub fn received_path(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join(format!("received-{name}"))
}

fn load_received(path: &Path) -> Pos {
    match std::fs::read_to_string(path) {
        Ok(text) => Pos::parse(text.trim()).unwrap_or_else(|e| {
            warn!(
                "{}: {e}; starting from what the replica reports",
                path.display()
            );
            Pos::default()
        }),
        Err(_) => Pos::default(),
    }
}
