//! The databases beside the loop: per `mysql_replication`, a monitor task (health of both
//! servers every `check_interval`) and a worker that runs promotions, demotions and
//! switchover hand-overs one at a time, in order. Neither ever blocks the advert loop:
//! results come back as messages.

use std::{
    collections::HashMap,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::{
    config::MysqlReplication,
    ctl::status::{DbRun, ReplicationStatus, unix_now},
    db::{antiflap::Record, health::Health, pair::Pair},
};

/// What the worker is asked to do for an instance.
pub enum Op {
    Promote {
        id: u64,
        failover: bool,
    },
    Demote {
        id: u64,
    },
    HandOver {
        reply: oneshot::Sender<Result<String, String>>,
    },
}

/// A worker's answer, routed to the instance by name.
pub struct Done {
    pub db: String,
    pub instance: String,
    pub outcome: Outcome,
    /// When the worker started it (unix s), and how long it took.
    started: f64,
    duration_ms: f64,
}

pub enum Outcome {
    Promoted {
        id: u64,
        result: Result<String, String>,
    },
    Demoted {
        id: u64,
        result: Result<String, String>,
    },
    HandedOver {
        result: Result<String, String>,
        reply: oneshot::Sender<Result<String, String>>,
    },
}

pub struct Report {
    pub db: String,
    pub local: Health,
    pub peer: Health,
    /// The anti-flap record as the file says (`db ack` changes it from outside).
    pub failovers: Record,
}

/// One supervised pair as the loop sees it.
pub struct Db {
    pub cfg: MysqlReplication,
    /// Each request with its number in the order asked.
    ops: mpsc::UnboundedSender<(String, Op, u64)>,
    /// The number of the latest request: a promotion that a later one superseded keeps
    /// read_only.
    requested: Arc<AtomicU64>,
    monitor: tokio::task::JoinHandle<()>,
    pub local: Option<Health>,
    pub peer: Option<Health>,
    pub last_promotion: Option<DbRun>,
    pub last_demotion: Option<DbRun>,
    failovers: Record,
    /// The last refusal logged, and when: the same one is logged again only after a while.
    refusal_logged: Option<(String, Instant)>,
}

impl Drop for Db {
    /// The monitor stops; the worker finishes what it was asked (its answers still reach the
    /// instances) and ends when its queue closes.
    fn drop(&mut self) {
        self.monitor.abort();
    }
}

pub struct Dbs {
    pub by_name: HashMap<String, Db>,
    reports_tx: mpsc::Sender<Report>,
    done_tx: mpsc::UnboundedSender<Done>,
}

/// What the loop waits on: health reports and the workers' answers.
pub struct Inbox {
    pub reports: mpsc::Receiver<Report>,
    pub done: mpsc::UnboundedReceiver<Done>,
}

impl Dbs {
    pub fn new() -> (Self, Inbox) {
        let (reports_tx, reports) = mpsc::channel(64);
        let (done_tx, done) = mpsc::unbounded_channel();
        let dbs = Self {
            by_name: HashMap::new(),
            reports_tx,
            done_tx,
        };
        (dbs, Inbox { reports, done })
    }
}

fn run_record(result: &Result<String, String>, done: &Done) -> DbRun {
    DbRun {
        ok: result.is_ok(),
        result: match result {
            Ok(s) | Err(s) => s.clone(),
        },
        duration_ms: done.duration_ms,
        unix_time: done.started,
    }
}

impl Dbs {
    /// Starts, keeps or replaces the pairs of a (re)loaded configuration; an unchanged pair
    /// keeps its tasks and what it knows.
    pub fn configure(&mut self, cfgs: &[MysqlReplication], state_dir: &Path) -> Result<(), String> {
        // New or changed pairs are built first: a password file that cannot be read leaves
        // everything as it was.
        let mut fresh = HashMap::new();
        for cfg in cfgs {
            if self.by_name.get(&cfg.name).is_none_or(|db| db.cfg != *cfg) {
                let pair = Pair::new(cfg.clone(), state_dir.to_owned())
                    .map_err(|e| format!("{}: mysql_replication {}: {e}", cfg.loc, cfg.name))?;
                fresh.insert(cfg.name.clone(), Arc::new(pair));
            }
        }
        let runtime = match fresh.is_empty() {
            true => None,
            // The advert loop never shares its thread with a query.
            false => Some(super::side_runtime()?),
        };
        let mut next = HashMap::new();
        for cfg in cfgs {
            let (Some(pair), Some(runtime)) = (fresh.remove(&cfg.name), &runtime) else {
                if let Some(db) = self.by_name.remove(&cfg.name) {
                    next.insert(cfg.name.clone(), db);
                }
                continue;
            };
            let (ops, ops_rx) = mpsc::unbounded_channel();
            let requested = Arc::new(AtomicU64::new(0));
            let monitor = runtime.spawn(monitor(pair.clone(), self.reports_tx.clone()));
            runtime.spawn(worker(
                pair,
                ops_rx,
                requested.clone(),
                self.done_tx.clone(),
                self.reports_tx.clone(),
            ));
            info!(db = %cfg.name, local = %cfg.local, peer = %format!("{}:{}", cfg.peer.0, cfg.peer.1), "supervising replication");
            next.insert(
                cfg.name.clone(),
                Db {
                    cfg: cfg.clone(),
                    ops,
                    requested,
                    monitor,
                    local: None,
                    peer: None,
                    last_promotion: None,
                    last_demotion: None,
                    failovers: Record::default(),
                    refusal_logged: None,
                },
            );
        }
        self.by_name = next;
        Ok(())
    }

    /// Queues `op` for `instance` on `db`'s worker.
    pub fn request(&self, db: &str, instance: &str, op: Op) {
        match self.by_name.get(db) {
            Some(d) => {
                let number = d.requested.fetch_add(1, Ordering::SeqCst) + 1;
                let _ = d.ops.send((instance.to_owned(), op, number));
            }
            None => warn!(db, instance, "no such mysql_replication"),
        }
    }

    /// Stores a health report; true if a server's verdict (problem or not) changed.
    pub fn record(&mut self, report: Report) -> bool {
        let Some(db) = self.by_name.get_mut(&report.db) else {
            return false;
        };
        let before = db.local.as_ref().map(Health::problem);
        let after = report.local.problem();
        if before.as_ref() != Some(&after) {
            match &after {
                Some(problem) => warn!(db = %report.db, "{problem}"),
                None if before.is_some() => info!(db = %report.db, "database healthy again"),
                None => {}
            }
        }
        let fallen = |h: &Option<Health>| {
            h.as_ref()
                .and_then(|h| h.semi_sync.as_ref())
                .map(crate::db::health::SemiSync::fallen_back)
        };
        match (fallen(&db.local), fallen(&Some(report.local.clone()))) {
            (Some(false) | None, Some(true)) => warn!(
                db = %report.db,
                "semi-synchronous replication fell back to asynchronous (no replica acknowledged \
                 within semi_sync_timeout): a crash of this master can lose acknowledged rows"
            ),
            (Some(true), Some(false)) => {
                info!(db = %report.db, "semi-synchronous replication active again")
            }
            _ => {}
        }
        db.local = Some(report.local);
        db.peer = Some(report.peer);
        db.failovers = report.failovers;
        before.map(|b| b.is_some()) != Some(after.is_some())
    }

    /// Whether `db`'s local server is fit to carry the pair's data (unknown yet: yes).
    pub fn healthy(&self, db: &str) -> bool {
        self.by_name
            .get(db)
            .and_then(|d| d.local.as_ref())
            .is_none_or(|h| h.problem().is_none())
    }

    /// Logs and records a worker's answer before it goes to the instance.
    pub fn note(&mut self, done: &Done) {
        let Some(db) = self.by_name.get_mut(&done.db) else {
            return;
        };
        match &done.outcome {
            Outcome::Promoted { result, .. } => {
                match result {
                    Ok(what) => info!(db = %done.db, instance = %done.instance, "promoted: {what}"),
                    Err(why) => {
                        let again = db
                            .refusal_logged
                            .as_ref()
                            .is_none_or(|(last, at)| last != why || at.elapsed().as_secs() >= 30);
                        if again {
                            warn!(db = %done.db, instance = %done.instance, "promotion refused: {why}");
                            db.refusal_logged = Some((why.clone(), Instant::now()));
                        }
                    }
                }
                db.last_promotion = Some(run_record(result, done));
            }
            Outcome::Demoted { result, .. } => {
                match result {
                    Ok(what) => info!(db = %done.db, instance = %done.instance, "demoted: {what}"),
                    Err(why) => warn!(db = %done.db, instance = %done.instance, "demotion: {why}"),
                }
                db.last_demotion = Some(run_record(result, done));
            }
            Outcome::HandedOver { result, .. } => match result {
                Ok(what) => info!(db = %done.db, "switchover: {what}"),
                Err(why) => warn!(db = %done.db, "switchover refused: {why}"),
            },
        }
    }

    pub fn status(&self) -> Vec<ReplicationStatus> {
        let mut out: Vec<ReplicationStatus> = self
            .by_name
            .values()
            .map(|db| ReplicationStatus {
                name: db.cfg.name.clone(),
                local_server: db.cfg.local.to_string(),
                peer_server: format!("{}:{}", db.cfg.peer.0, db.cfg.peer.1),
                problem: db.local.as_ref().and_then(Health::problem),
                local: db.local.clone(),
                peer: db.peer.clone(),
                last_promotion: db.last_promotion.clone(),
                last_demotion: db.last_demotion.clone(),
                auto_failovers: db.failovers.failovers.len() as u32,
                last_auto_failover: db.failovers.last,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

/// Both servers as they are now.
async fn report(pair: &Pair) -> Report {
    let (local, peer) = pair.check().await;
    Report {
        db: pair.cfg.name.clone(),
        local,
        peer,
        failovers: pair.failovers(),
    }
}

async fn monitor(pair: Arc<Pair>, tx: mpsc::Sender<Report>) {
    loop {
        if tx.send(report(&pair).await).await.is_err() {
            return;
        }
        tokio::time::sleep(pair.cfg.check_interval).await;
    }
}

/// Carries out promotions, demotions and hand-overs one at a time. After each, both
/// servers are checked at once, so that the status shows what it changed (read_only,
/// positions) without waiting for the next health check; the answer goes first, so the
/// instance does not wait for that check.
async fn worker(
    pair: Arc<Pair>,
    mut ops: mpsc::UnboundedReceiver<(String, Op, u64)>,
    requested: Arc<AtomicU64>,
    done: mpsc::UnboundedSender<Done>,
    reports: mpsc::Sender<Report>,
) {
    while let Some((instance, op, number)) = ops.recv().await {
        let (started, clock) = (unix_now(), Instant::now());
        let superseded = || requested.load(Ordering::SeqCst) > number;
        let outcome = match op {
            Op::Promote { id, failover } => Outcome::Promoted {
                id,
                result: pair.promote(failover, &superseded).await,
            },
            Op::Demote { id } => Outcome::Demoted {
                id,
                result: pair.demote().await,
            },
            Op::HandOver { reply } => Outcome::HandedOver {
                result: pair.hand_over().await,
                reply,
            },
        };
        let message = Done {
            db: pair.cfg.name.clone(),
            instance,
            outcome,
            started,
            duration_ms: clock.elapsed().as_secs_f64() * 1000.0,
        };
        if done.send(message).is_err() || reports.send(report(&pair).await).await.is_err() {
            return;
        }
    }
}
