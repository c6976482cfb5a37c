//! The etcd witnesses beside the loop: one session task per `etcd_witness` (on the side
//! runtime), asked by message and answering by message.

use std::{collections::HashMap, time::Duration};

use tokio::sync::{mpsc, watch};

use crate::{
    config::EtcdWitness,
    ctl::status::WitnessStatus,
    witness::session::{self, Done, Request},
};

/// Beyond the lease's TTL, how long a promotion waits for a holder's key to go: a dead
/// holder's key goes within the TTL.
pub const KEY_WAIT_SLACK: Duration = Duration::from_millis(500);

struct Witness {
    cfg: EtcdWitness,
    requests: mpsc::UnboundedSender<Request>,
    status: watch::Receiver<WitnessStatus>,
    task: tokio::task::JoinHandle<()>,
}

pub struct Witnesses {
    by_name: HashMap<String, Witness>,
    done_tx: mpsc::UnboundedSender<Done>,
    /// This node's name in the keys' values.
    me: String,
}

impl Witnesses {
    pub fn new(me: String) -> (Self, mpsc::UnboundedReceiver<Done>) {
        let (done_tx, done) = mpsc::unbounded_channel();
        let witnesses = Self {
            by_name: HashMap::new(),
            done_tx,
            me,
        };
        (witnesses, done)
    }

    /// Starts a session per new or changed witness; a witness gone or changed closes its
    /// session (its lease is revoked: its keys go).
    pub fn configure(&mut self, cfgs: &[EtcdWitness]) -> Result<(), String> {
        let mut next = HashMap::new();
        for cfg in cfgs {
            if let Some(w) = self.by_name.remove(&cfg.name).filter(|w| w.cfg == *cfg) {
                next.insert(cfg.name.clone(), w);
                continue;
            }
            let runtime = super::side_runtime()?;
            let (requests, requests_rx) = mpsc::unbounded_channel();
            let (status_tx, status) = watch::channel(WitnessStatus {
                name: cfg.name.clone(),
                endpoints: cfg.endpoints.clone(),
                ..WitnessStatus::default()
            });
            let task = runtime.spawn(session::run(
                cfg.clone(),
                requests_rx,
                self.done_tx.clone(),
                status_tx,
            ));
            next.insert(
                cfg.name.clone(),
                Witness {
                    cfg: cfg.clone(),
                    requests,
                    status,
                    task,
                },
            );
        }
        for (_, old) in self.by_name.drain() {
            let _ = old.requests.send(Request::Close);
        }
        self.by_name = next;
        Ok(())
    }

    /// The leader key of `instance` under `witness`.
    pub fn key(&self, witness: &str, instance: &str) -> Option<String> {
        self.by_name.get(witness).map(|w| w.cfg.key(instance))
    }

    /// Asks for `instance`'s key, naming this node by its address `from`; the answer comes
    /// as [`Done`]. `wait` bounds how long a holder's key is waited for.
    pub fn acquire(
        &self,
        witness: &str,
        instance: &str,
        id: u64,
        from: std::net::IpAddr,
        wait: Duration,
    ) -> bool {
        let Some(w) = self.by_name.get(witness) else {
            return false;
        };
        w.requests
            .send(Request::Acquire {
                instance: instance.to_owned(),
                id,
                key: w.cfg.key(instance),
                value: format!("{} ({from})", self.me),
                wait,
            })
            .is_ok()
    }

    pub fn release(&self, witness: &str, instance: &str) {
        if let Some(w) = self.by_name.get(witness) {
            let _ = w.requests.send(Request::Release {
                instance: instance.to_owned(),
                key: w.cfg.key(instance),
            });
        }
    }

    /// Election mode: `instance` stands with `priority` (`None`: stands aside), as this
    /// node at address `from` (`router_id@address`: a router_id shared by every node, as
    /// configurations copied between nodes often have, still names each one apart).
    pub fn stand(
        &self,
        witness: &str,
        instance: &str,
        from: std::net::IpAddr,
        priority: Option<u8>,
        preempt: bool,
    ) {
        if let Some(w) = self.by_name.get(witness) {
            let _ = w.requests.send(Request::Stand {
                instance: instance.to_owned(),
                key: w.cfg.key(instance),
                node: format!("{}@{from}", self.me),
                priority,
                preempt,
            });
        }
    }

    /// How long a dead holder's key can outlive it: its lease's TTL.
    pub fn ttl(&self, witness: &str) -> Duration {
        self.by_name
            .get(witness)
            .map_or(Duration::ZERO, |w| w.cfg.lease_ttl)
    }

    pub fn status(&self) -> Vec<WitnessStatus> {
        let mut all: Vec<WitnessStatus> = self
            .by_name
            .values()
            .map(|w| w.status.borrow().clone())
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// At exit: every lease revoked (its keys go at once, so a peer need not wait for
    /// them to expire), waiting a bounded time.
    pub async fn close(&mut self, within: Duration) {
        let tasks: Vec<_> = self
            .by_name
            .drain()
            .map(|(_, w)| {
                let _ = w.requests.send(Request::Close);
                w.task
            })
            .collect();
        let _ = tokio::time::timeout(within, futures::future::join_all(tasks)).await;
    }
}
