//! One `etcd_witness`: a session with the etcd cluster that keeps this agent's lease alive
//! and takes and gives back the instances' leader keys, beside the advert loop. What the
//! loop must act on (a key taken or refused, a lease that can no longer be relied on) comes
//! back as messages.

use std::{collections::HashMap, time::Duration};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::{
    election::{self, Me, Step, View},
    lease::Lease,
};
use crate::{
    config::EtcdWitness,
    ctl::status::{ElectionStatus, WitnessStatus, unix_now},
};

/// What the loop asks of a session.
pub enum Request {
    /// Take `key` for `instance` (promotion `id`), with `value` saying who holds it,
    /// waiting up to `wait` for a holder's key to go (its lease expiring, or its release).
    Acquire {
        instance: String,
        id: u64,
        key: String,
        value: String,
        wait: Duration,
    },
    /// Give `key` back (only if this node's lease holds it); in election mode, resign
    /// the leadership (or leave the queue).
    Release { instance: String, key: String },
    /// Election mode: stand as `node` in `instance`'s election under `key` with `priority`,
    /// or stand aside (`None`: the candidacy is withdrawn).
    Stand {
        instance: String,
        key: String,
        node: String,
        priority: Option<u8>,
        preempt: bool,
    },
    /// Revoke the lease (every key goes with it), then end.
    Close,
}

/// A session's message to the loop, routed to the instance by name.
pub struct Done {
    pub instance: String,
    pub outcome: Outcome,
}

pub enum Outcome {
    /// The answer to [`Request::Acquire`].
    Acquired { id: u64, result: Result<(), String> },
    /// The lease this node's keys hang on can no longer be relied on: a master steps down.
    Lost { why: String },
    /// Election mode: this node leads; `failover`: another node led before.
    Elected { failover: bool },
    /// Election mode: a better candidate stands; the leader yields (then releases).
    Outranked { why: String },
}

/// Runs the session until [`Request::Close`] (or the loop drops its sender).
pub async fn run(
    cfg: EtcdWitness,
    mut requests: mpsc::UnboundedReceiver<Request>,
    done: mpsc::UnboundedSender<Done>,
    status: watch::Sender<WitnessStatus>,
) {
    let (answers, mut answered) = mpsc::unbounded_channel();
    let mut s = Session {
        cfg,
        client: None,
        lease: None,
        keeper: None,
        held: HashMap::new(),
        retired: Vec::new(),
        elections: HashMap::new(),
        campaigner: None,
        done,
        answers,
        status,
        started: tokio::time::Instant::now(),
    };
    let mut next_keepalive = s.started;
    let mut next_read = s.started;
    loop {
        let step_down = s.step_down_deadline();
        // Awake for the next keep-alive only, unless elections are to be read.
        let wake = match s.elections.is_empty() {
            true => next_keepalive,
            false => next_keepalive.min(next_read),
        };
        tokio::select! {
            request = requests.recv() => match request {
                Some(Request::Close) | None => {
                    s.close().await;
                    return;
                }
                Some(request) => s.serve(request),
            },
            Some(answer) = answered.recv() => s.answered(answer),
            _ = tokio::time::sleep_until(wake) => {
                if tokio::time::Instant::now() >= next_keepalive {
                    s.keep_alive().await;
                    let every = s.lease.as_ref().map_or(Duration::from_millis(500), Lease::keepalive_every);
                    next_keepalive = tokio::time::Instant::now() + every;
                }
                if !s.elections.is_empty() && tokio::time::Instant::now() >= next_read {
                    if s.campaigner.is_none() && s.client.is_some() {
                        s.campaigner = s.open(None).await.ok();
                    }
                    s.poll_elections();
                    next_read = tokio::time::Instant::now() + ELECTION_READ_EVERY;
                }
            }
            _ = sleep_until(step_down) => s.lose("the lease may expire before etcd hears from this node again".into()),
        }
        s.publish();
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

type Keeper = (etcd_client::LeaseKeeper, etcd_client::LeaseKeepAliveStream);

/// A task's result, before it is passed on: the lease it was taken under must still be
/// this session's, and usable.
enum Answer {
    Acquired {
        instance: String,
        id: u64,
        key: String,
        lease: i64,
        result: Result<(), String>,
    },
    /// An election's keys as read (after publishing our candidacy, if it had changed).
    Polled {
        instance: String,
        view: Result<View, String>,
    },
    /// A dropped lease's revocation: done (or the lease is gone), or to be tried again.
    Revoked { lease: i64, revoked: bool },
    /// A campaign under `lease` ended: the leader key, or why not.
    Campaigned {
        instance: String,
        lease: i64,
        result: Result<String, String>,
    },
}

/// An instance in election mode.
struct Election {
    /// The instance's key: candidacies and the election live under it.
    key: String,
    node: String,
    priority: Option<u8>,
    preempt: bool,
    view: View,
    /// A read is under way.
    polling: bool,
    campaign: Option<(i64, tokio::task::JoinHandle<()>)>,
    /// The leader key, while this node leads.
    leading: Option<String>,
    /// Told the loop to yield; waiting for its release.
    yielding: bool,
    /// Another node led at some point: the next election of this one is a failover.
    other_led: bool,
    /// No campaign before then: a node that just started sees the others first, one that
    /// just resigned does not win again at once.
    calm_until: Option<tokio::time::Instant>,
}

struct Session {
    cfg: EtcdWitness,
    client: Option<Client>,
    lease: Option<Lease>,
    keeper: Option<Keeper>,
    /// Keys this node holds, and for which instance.
    held: HashMap<String, String>,
    /// Leases this session dropped, to revoke once etcd answers again.
    retired: Vec<i64>,
    /// Instances in election mode, by name.
    elections: HashMap<String, Election>,
    /// The client campaigns wait on: a campaign lasts until it wins, beyond any request
    /// timeout.
    campaigner: Option<Client>,
    done: mpsc::UnboundedSender<Done>,
    /// Acquisitions under way report here first.
    answers: mpsc::UnboundedSender<Answer>,
    status: watch::Sender<WitnessStatus>,
    /// The session's clock starts here (tokio's monotonic clock).
    started: tokio::time::Instant,
}

impl Session {
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// How long a request may take: etcd on a LAN answers in milliseconds, and a
    /// keep-alive that takes longer counts as failed.
    fn timeout(&self) -> Duration {
        (self.cfg.lease_ttl / 3).min(Duration::from_secs(1))
    }

    /// When a master must have stepped down, while keys hang on the lease.
    fn step_down_deadline(&self) -> Option<tokio::time::Instant> {
        let lease = self.lease.as_ref()?;
        (!self.held.is_empty()).then(|| self.started + lease.step_down_at())
    }

    async fn connect(&mut self) -> Result<Client, String> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let client = self.open(Some(self.timeout())).await?;
        self.client = Some(client.clone());
        Ok(client)
    }

    async fn open(&self, timeout: Option<Duration>) -> Result<Client, String> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(self.timeout())
            // A member cut from the quorum answers nothing rather than stale data.
            .with_require_leader(true);
        if let Some(timeout) = timeout {
            options = options.with_timeout(timeout);
        }
        if let Some(tls) = &self.cfg.tls {
            options = options.with_tls(tls_options(tls)?);
        }
        Client::connect(&self.cfg.endpoints, Some(options))
            .await
            .map_err(|e| format!("connecting to etcd: {e}"))
    }

    /// Grants a lease when there is none, else sends one keep-alive and waits for its answer.
    async fn keep_alive(&mut self) {
        let result = match self.lease.is_some() {
            false => self.grant().await,
            true => self.renew().await,
        };
        if let Err(why) = result {
            self.status.send_modify(|s| {
                if s.reachable {
                    warn!(witness = %self.cfg.name, error = %why, "etcd unreachable");
                }
                s.reachable = false;
                s.error = Some(why.clone());
            });
            self.keeper = None;
            let now = self.now();
            if let Some(lease) = &mut self.lease {
                lease.failed(now);
                if !lease.usable(now) && !self.held.is_empty() {
                    self.lose(format!("etcd unreachable: {why}"));
                }
            }
            // A lease past the time it was sure to live may be gone on etcd's side (it says
            // "lease not found" then): the next attempt asks for a new one.
            if self
                .lease
                .as_ref()
                .is_some_and(|l| l.ttl_left(now).is_zero())
            {
                self.retire();
            }
        }
    }

    async fn grant(&mut self) -> Result<(), String> {
        let mut client = self.connect().await?;
        let sent = self.now();
        let ttl = self.cfg.lease_ttl.as_secs() as i64;
        let granted = client
            .lease_grant(ttl, None)
            .await
            .map_err(|e| format!("granting a lease: {e}"))?;
        let lease = Lease::granted(
            granted.id(),
            sent,
            Duration::from_secs(granted.ttl().max(0) as u64),
            self.cfg.on_unreachable,
        );
        info!(witness = %self.cfg.name, lease = format!("{:x}", lease.id), ttl_s = granted.ttl(), "etcd lease granted");
        self.lease = Some(lease);
        self.reached(granted.header().map(|h| h.revision()));
        Ok(())
    }

    async fn renew(&mut self) -> Result<(), String> {
        let Some(id) = self.lease.as_ref().map(|l| l.id) else {
            return Ok(());
        };
        // A master's step-down is not delayed by a keep-alive waiting for its answer.
        let limit = match self.step_down_deadline() {
            Some(at) => self
                .timeout()
                .min(at.saturating_duration_since(tokio::time::Instant::now())),
            None => self.timeout(),
        };
        let keeper = match self.keeper.take() {
            Some(keeper) => keeper,
            None => {
                let mut client = self.connect().await?;
                tokio::time::timeout(limit, client.lease_keep_alive(id))
                    .await
                    .map_err(|_| "opening the keep-alive stream: timed out".to_owned())?
                    .map_err(|e| format!("opening the keep-alive stream: {e}"))?
            }
        };
        let sent = self.now();
        let (keeper, stream) = self.keeper.insert(keeper);
        keeper
            .keep_alive()
            .await
            .map_err(|e| format!("keep-alive: {e}"))?;
        let answer = tokio::time::timeout(limit, stream.message())
            .await
            .map_err(|_| "keep-alive: no answer in time".to_owned())?
            .map_err(|e| format!("keep-alive: {e}"))?
            .ok_or_else(|| "keep-alive: the stream ended".to_owned())?;
        let ttl = Duration::from_secs(answer.ttl().max(0) as u64);
        if let Some(lease) = &mut self.lease {
            lease.renewed(sent, ttl);
        }
        if ttl.is_zero() {
            warn!(witness = %self.cfg.name, lease = format!("{id:x}"), "etcd lease expired");
            self.lose("the lease expired".into());
            self.retire();
        }
        self.reached(answer.header().map(|h| h.revision()));
        Ok(())
    }

    /// Revokes the leases this session dropped, now that etcd answers; one that cannot be
    /// revoked yet is tried again after the next answered keep-alive (etcd renews every
    /// lease when it elects a leader, so a dropped one would otherwise outlive an outage by
    /// a TTL and keep its keys from this node).
    fn revoke_retired(&mut self) {
        let Some(client) = &self.client else {
            return;
        };
        for lease in std::mem::take(&mut self.retired) {
            let (mut client, answers) = (client.clone(), self.answers.clone());
            tokio::spawn(async move {
                let revoked = match client.lease_revoke(lease).await {
                    Ok(_) => true,
                    Err(e) => e.to_string().contains("lease not found"),
                };
                let _ = answers.send(Answer::Revoked { lease, revoked });
            });
        }
    }

    fn reached(&mut self, revision: Option<i64>) {
        self.revoke_retired();
        self.status.send_modify(|s| {
            if !s.reachable {
                info!(witness = %self.cfg.name, "etcd reachable");
            }
            s.reachable = true;
            s.error = None;
            s.last_keepalive_unix = Some(unix_now());
            if let Some(r) = revision {
                s.revision = r;
            }
        });
    }

    /// Every instance holding a key under the lease steps down; the keys are forgotten (etcd
    /// deletes them with the lease, or they are given back once it answers again).
    fn lose(&mut self, why: String) {
        if self.held.is_empty() {
            return;
        }
        warn!(witness = %self.cfg.name, %why, "stepping down: the etcd lease cannot be relied on");
        let held: Vec<(String, String)> = self.held.drain().collect();
        for (key, instance) in held {
            let _ = self.done.send(Done {
                instance,
                outcome: Outcome::Lost { why: why.clone() },
            });
            // Given back if etcd answers again before the lease goes.
            self.give_back_current(key);
        }
        // A fresh lease once etcd answers: the old one may be gone by then.
        self.retire();
    }

    /// Drops the lease: its masters have stepped down (or it held nothing). etcd may keep
    /// it (and a key on it) until it expires, longer if etcd changes leader meanwhile; it is
    /// revoked once a new lease is granted, and a key found on it is this node's to delete.
    fn retire(&mut self) {
        if let Some(lease) = self.lease.take() {
            self.retired.push(lease.id);
        }
        self.keeper = None;
        // Campaigns and leaderships hung on it (the loop was told by `lose`).
        for e in self.elections.values_mut() {
            if let Some((_, task)) = e.campaign.take() {
                task.abort();
            }
            e.leading = None;
            e.yielding = false;
        }
    }

    fn serve(&mut self, request: Request) {
        match request {
            Request::Acquire {
                instance,
                id,
                key,
                value,
                wait,
            } => {
                let usable = self
                    .lease
                    .as_ref()
                    .filter(|l| l.usable(self.now()))
                    .map(|l| l.id);
                let (Some(client), Some(lease)) = (self.client.clone(), usable) else {
                    let why = self
                        .status
                        .borrow()
                        .error
                        .clone()
                        .unwrap_or_else(|| "no etcd lease yet".into());
                    let _ = self.done.send(Done {
                        instance,
                        outcome: Outcome::Acquired {
                            id,
                            result: Err(format!("etcd witness {}: {why}", self.cfg.name)),
                        },
                    });
                    return;
                };
                let answers = self.answers.clone();
                tokio::spawn(async move {
                    let result = acquire(client, &key, &value, lease, wait).await;
                    let _ = answers.send(Answer::Acquired {
                        instance,
                        id,
                        key,
                        lease,
                        result,
                    });
                });
            }
            Request::Release { instance, .. } if self.elections.contains_key(&instance) => {
                self.resign(&instance);
            }
            Request::Stand {
                instance,
                key,
                node,
                priority: None,
                ..
            } => {
                // Out of the running: the candidacy and any place in the queue go.
                self.resign(&instance);
                self.elections.remove(&instance);
                self.give_back_current(election::candidate_key(&key, &node));
            }
            Request::Stand {
                instance,
                key,
                node,
                priority,
                preempt,
            } => {
                let e = self.elections.entry(instance).or_insert_with(|| Election {
                    key: key.clone(),
                    node: node.clone(),
                    priority,
                    preempt,
                    view: View::default(),
                    polling: false,
                    campaign: None,
                    leading: None,
                    yielding: false,
                    other_led: false,
                    // A node just started waits a TTL before it campaigns, so that the
                    // candidates starting with it are seen (as VRRP's down timer waits).
                    calm_until: Some(tokio::time::Instant::now() + self.cfg.lease_ttl),
                });
                (e.key, e.node, e.priority, e.preempt) = (key, node, priority, preempt);
            }
            Request::Release { instance, key } => {
                if self.held.get(&key) == Some(&instance) {
                    self.held.remove(&key);
                }
                self.give_back_current(key);
            }
            Request::Close => {}
        }
    }

    /// The lease's id while it may be acted on.
    fn usable_lease(&self) -> Option<i64> {
        let now = self.now();
        self.lease.as_ref().filter(|l| l.usable(now)).map(|l| l.id)
    }

    /// Passes a task's result on, unless the lease it was taken under was lost meanwhile
    /// (then a key taken is given back).
    fn answered(&mut self, answer: Answer) {
        match answer {
            Answer::Acquired {
                instance,
                id,
                key,
                lease,
                result,
            } => {
                let result = match result {
                    Ok(()) if self.usable_lease() == Some(lease) => {
                        info!(witness = %self.cfg.name, %instance, %key, "leader key taken");
                        self.held.insert(key, instance.clone());
                        Ok(())
                    }
                    Ok(()) => {
                        self.give_back(key, lease);
                        Err("the etcd lease was lost while taking the key".into())
                    }
                    Err(why) => Err(why),
                };
                let _ = self.done.send(Done {
                    instance,
                    outcome: Outcome::Acquired { id, result },
                });
            }
            Answer::Polled { instance, view } => self.polled(instance, view),
            Answer::Revoked { lease, revoked } => {
                if !revoked {
                    self.retired.push(lease);
                }
            }
            Answer::Campaigned {
                instance,
                lease,
                result,
            } => self.campaigned(instance, lease, result),
        }
    }

    /// Deletes `key` if `lease` still holds it, beside the session.
    fn give_back(&self, key: String, lease: i64) {
        if let Some(client) = &self.client {
            tokio::spawn(release(client.clone(), key, lease));
        }
    }

    /// [`Session::give_back`] under the current lease, if there is one.
    fn give_back_current(&self, key: String) {
        if let Some(lease) = &self.lease {
            self.give_back(key, lease.id);
        }
    }

    /// Reads every election's keys (publishing this node's candidacy first when etcd shows
    /// another), one read at a time per election.
    fn poll_elections(&mut self) {
        let (Some(client), Some(lease)) = (self.client.clone(), self.usable_lease()) else {
            return;
        };
        for (instance, e) in &mut self.elections {
            if e.polling {
                continue;
            }
            e.polling = true;
            let shown = e.view.candidates.get(&e.node).copied();
            let publish = e.priority.filter(|p| shown != Some((*p, lease)));
            let (key, node, answers) = (e.key.clone(), e.node.clone(), self.answers.clone());
            let (instance, client) = (instance.clone(), client.clone());
            tokio::spawn(async move {
                let view = poll(client, &key, &node, publish, lease).await;
                let _ = answers.send(Answer::Polled { instance, view });
            });
        }
    }

    fn polled(&mut self, instance: String, view: Result<View, String>) {
        let lease = self.usable_lease();
        let Some(e) = self.elections.get_mut(&instance) else {
            return;
        };
        e.polling = false;
        let view = match view {
            Ok(view) => view,
            Err(why) => {
                warn!(witness = %self.cfg.name, %instance, error = %why, "reading the election");
                return;
            }
        };
        if view
            .leader
            .as_ref()
            .is_some_and(|(node, _)| *node != e.node)
        {
            e.other_led = true;
        }
        e.view = view;
        let Some(lease) = lease else {
            return;
        };
        let me = Me {
            node: &e.node,
            mine: e.priority,
            lease,
            preempt: e.preempt,
            campaigning: e.campaign.is_some(),
            leading: e.leading.is_some(),
        };
        match election::decide(&me, &e.view) {
            Step::Campaign => {
                let calm = e
                    .calm_until
                    .is_some_and(|t| tokio::time::Instant::now() < t);
                let Some(client) = self.campaigner.clone().filter(|_| !calm) else {
                    return;
                };
                let name = election::election_name(&e.key);
                let (node, answers) = (e.node.clone(), self.answers.clone());
                info!(witness = %self.cfg.name, %instance, "campaigning: the best candidate after the leader");
                let task = tokio::spawn(campaign(client, name, node, lease, instance, answers));
                e.campaign = Some((lease, task));
            }
            Step::Withdraw => {
                info!(witness = %self.cfg.name, %instance, "leaving the election's queue: a better candidate stands");
                self.resign(&instance);
            }
            Step::Yield(why) if !e.yielding => {
                e.yielding = true;
                let _ = self.done.send(Done {
                    instance,
                    outcome: Outcome::Outranked { why },
                });
            }
            Step::Yield(_) | Step::Wait => {}
        }
    }

    fn campaigned(&mut self, instance: String, lease: i64, result: Result<String, String>) {
        let current = self.usable_lease();
        let Some(e) = self.elections.get_mut(&instance) else {
            if let Ok(key) = result {
                self.give_back(key, lease);
            }
            return;
        };
        if e.campaign.as_ref().is_some_and(|(l, _)| *l == lease) {
            e.campaign = None;
        }
        match result {
            Ok(key) if current == Some(lease) && e.priority.is_some() => {
                info!(witness = %self.cfg.name, %instance, %key, "elected");
                e.leading = Some(key.clone());
                let failover = e.other_led;
                self.held.insert(key, instance.clone());
                let _ = self.done.send(Done {
                    instance,
                    outcome: Outcome::Elected { failover },
                });
            }
            Ok(key) => self.give_back(key, lease),
            Err(why) => {
                warn!(witness = %self.cfg.name, %instance, error = %why, "campaign ended");
            }
        }
    }

    /// Gives up `instance`'s leadership or its place in the queue.
    fn resign(&mut self, instance: &str) {
        let Some(e) = self.elections.get_mut(instance) else {
            return;
        };
        e.yielding = false;
        e.calm_until = Some(tokio::time::Instant::now() + RESIGN_CALM);
        let campaign = e.campaign.take().map(|(lease, task)| {
            task.abort();
            lease
        });
        let key = election::election_name(&e.key);
        if let Some(leader) = e.leading.take() {
            info!(witness = %self.cfg.name, %instance, "resigning the leadership");
            self.held.remove(&leader);
            self.give_back_current(leader);
        }
        // The queued key etcd made for the campaign (`<election>/<lease in hex>`); etcd
        // deletes it too when the campaign is cancelled.
        if let Some(lease) = campaign {
            self.give_back(format!("{key}/{lease:x}"), lease);
        }
    }

    async fn close(&mut self) {
        let lease = self.lease.as_ref().map(|l| l.id);
        // A session closed by a reload takes its keys with it: their masters step down.
        self.lose("the etcd witness was reconfigured".into());
        if let (Some(client), Some(lease)) = (&mut self.client, lease) {
            let revoked =
                tokio::time::timeout(self.cfg.lease_ttl / 3, client.lease_revoke(lease)).await;
            match revoked {
                Ok(Ok(_)) => info!(witness = %self.cfg.name, "etcd lease revoked"),
                _ => {
                    warn!(witness = %self.cfg.name, "could not revoke the etcd lease: it expires on its own")
                }
            }
        }
    }

    fn publish(&self) {
        let now = self.now();
        self.status.send_modify(|s| {
            s.lease = self.lease.as_ref().map(|l| format!("{:x}", l.id));
            s.ttl_left_s = self.lease.as_ref().map(|l| l.ttl_left(now).as_secs_f64());
            s.keys = self.held.keys().cloned().collect();
            s.keys.sort();
            s.elections = self
                .elections
                .iter()
                .map(|(instance, e)| {
                    let status = ElectionStatus {
                        leader: e.view.leader.as_ref().map(|(node, _)| node.clone()),
                        candidates: e
                            .view
                            .candidates
                            .iter()
                            .map(|(n, (p, _))| (n.clone(), *p))
                            .collect(),
                        campaigning: e.campaign.is_some(),
                    };
                    (instance.clone(), status)
                })
                .collect();
        });
    }
}

/// Puts `key` = `value` bound to `lease` unless another lease holds it; waits up to `wait` for
/// such a holder's key to go, then tries once more.
async fn acquire(
    mut client: Client,
    key: &str,
    value: &str,
    lease: i64,
    wait: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut reclaimed = false;
    loop {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key,
                value,
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(key, None)]);
        let answer = client
            .txn(txn)
            .await
            .map_err(|e| format!("taking {key}: {e}"))?;
        if answer.succeeded() {
            return Ok(());
        }
        let holder = answer.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(get) => get.kvs().first().map(|kv| {
                (
                    kv.lease(),
                    kv.value_str().unwrap_or("?").to_owned(),
                    kv.mod_revision(),
                )
            }),
            _ => None,
        });
        let Some((their_lease, holder, revision)) = holder else {
            continue; // deleted in between: try again
        };
        if their_lease == lease {
            return Ok(());
        }
        if holder == value && !reclaimed {
            // Ours under a lease this node dropped (etcd may keep it alive a while after an
            // outage): nobody else can hold it meanwhile, so it is given back and taken anew.
            reclaimed = true;
            release(client.clone(), key.to_owned(), their_lease).await;
            continue;
        }
        let held = format!("{key} is held by {holder} (lease {their_lease:x})");
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err(held);
        }
        match tokio::time::timeout(left, deleted(&mut client, key, revision + 1)).await {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => return Err(format!("{held}; watching it: {e}")),
            Err(_) => return Err(held),
        }
    }
}

/// Returns once `key` is deleted at or after `revision`.
async fn deleted(client: &mut Client, key: &str, revision: i64) -> Result<(), String> {
    let mut stream = client
        .watch(key, Some(WatchOptions::new().with_start_revision(revision)))
        .await
        .map_err(|e| e.to_string())?;
    while let Some(answer) = stream.message().await.map_err(|e| e.to_string())? {
        if answer
            .events()
            .iter()
            .any(|e| e.event_type() == EventType::Delete)
        {
            return Ok(());
        }
    }
    Err("the watch ended".into())
}

/// How often an election's candidacies and queue are read (a change of leader needs no
/// read: the heir's campaign returns the moment it leads).
const ELECTION_READ_EVERY: Duration = Duration::from_millis(100);

/// How long a node that resigned waits before it campaigns again.
const RESIGN_CALM: Duration = Duration::from_secs(1);

/// Publishes `node`'s candidacy under `key` (when `publish` says so), then reads the
/// election's keys.
async fn poll(
    mut client: Client,
    key: &str,
    node: &str,
    publish: Option<u8>,
    lease: i64,
) -> Result<View, String> {
    if let Some(priority) = publish {
        let options = PutOptions::new().with_lease(lease);
        client
            .put(
                election::candidate_key(key, node),
                priority.to_string(),
                Some(options),
            )
            .await
            .map_err(|e| format!("publishing the candidacy: {e}"))?;
    }
    let got = client
        .get(format!("{key}/"), Some(GetOptions::new().with_prefix()))
        .await
        .map_err(|e| e.to_string())?;
    let kvs: Vec<_> = got
        .kvs()
        .iter()
        .map(|kv| {
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            (
                text(kv.key()),
                text(kv.value()),
                kv.lease(),
                kv.create_revision(),
            )
        })
        .collect();
    Ok(election::view(key, &kvs))
}

/// Queues in etcd's election `name` as `node` under `lease` until this node leads.
async fn campaign(
    mut client: Client,
    name: String,
    node: String,
    lease: i64,
    instance: String,
    answers: mpsc::UnboundedSender<Answer>,
) {
    let result = match client.campaign(name, node, lease).await {
        Ok(won) => won
            .leader()
            .map(|l| String::from_utf8_lossy(l.key()).into_owned())
            .ok_or_else(|| "etcd answered the campaign without a leader key".to_owned()),
        Err(e) => Err(e.to_string()),
    };
    let _ = answers.send(Answer::Campaigned {
        instance,
        lease,
        result,
    });
}

/// Deletes `key` if `lease` still holds it.
async fn release(mut client: Client, key: String, lease: i64) {
    let txn = Txn::new()
        .when([Compare::lease(key.as_str(), CompareOp::Equal, lease)])
        .and_then([TxnOp::delete(key.as_str(), None)]);
    if let Err(e) = client.txn(txn).await {
        warn!(%key, error = %e, "giving back the leader key (it goes with the lease)");
    }
}

fn tls_options(tls: &crate::config::Tls) -> Result<etcd_client::TlsOptions, String> {
    let read =
        |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()));
    let mut options = etcd_client::TlsOptions::new()
        .ca_certificate(etcd_client::Certificate::from_pem(read(&tls.ca)?));
    if let Some((cert, key)) = &tls.identity {
        options = options.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(options)
}
