//! The agent's event loop: one thread feeding packets, timers, signals and status requests
//! to the instances' state machines and carrying out their actions.

mod clock;
mod instance;

use std::{
    collections::{BTreeMap, HashMap},
    net::Ipv4Addr,
    path::{Path, PathBuf},
    sync::Arc,
    task::Poll,
    time::Duration,
};

use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use crate::{
    config::{self, Config, Severity, VrrpInstance},
    ctl::{self, Status},
    net::{advert_socket::AdvertSocket, garp::GarpSocket, vip::Vips},
    vrrp::packet::{Advert, DropReason, IPPROTO_VRRP, Ipv4Header, TTL},
};
use instance::{Running, SocketKey};

pub use clock::now;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Config(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Vip(#[from] crate::net::vip::VipError),
}

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
    let context = context.into();
    move |source| DaemonError::Io { context, source }
}

pub struct Options {
    pub config: PathBuf,
    pub state_dir: PathBuf,
}

/// What every instance's actions need from the outside world.
pub(crate) struct World {
    vips: Vips,
    garp: Arc<GarpSocket>,
    sockets: HashMap<SocketKey, Arc<AdvertSocket>>,
}

impl World {
    /// The socket for `key`, opened on first use.
    fn socket(&mut self, key: SocketKey, iface: &str) -> Result<Arc<AdvertSocket>, DaemonError> {
        if let Some(socket) = self.sockets.get(&key) {
            return Ok(socket.clone());
        }
        let socket = Arc::new(
            AdvertSocket::open(iface, key.ifindex, key.unicast_src)
                .map_err(io_error(format!("opening the VRRP socket on {iface}")))?,
        );
        self.sockets.insert(key, socket.clone());
        Ok(socket)
    }

    /// The next packet on any advert socket, read straight into `buf` by the loop itself:
    /// no task hop or copy per advert.
    async fn recv(&self, buf: &mut [u8]) -> (SocketKey, std::io::Result<usize>) {
        std::future::poll_fn(|cx| {
            for (key, socket) in &self.sockets {
                if let Poll::Ready(result) = socket.poll_recv(cx, buf) {
                    return Poll::Ready((*key, result));
                }
            }
            Poll::Pending
        })
        .await
    }
}

struct Daemon {
    options: Options,
    world: World,
    instances: Vec<Running>,
    /// (socket, VRID) → index in `instances`: one lookup per received packet.
    routes: HashMap<(SocketKey, u8), usize>,
    unmatched_drops: BTreeMap<DropReason, u64>,
}

/// Loads the configuration; errors (with file:line) end the load, warnings are logged.
fn load_config(path: &Path) -> Result<Config, DaemonError> {
    let loaded = config::load(path).map_err(|e| DaemonError::Config(e.to_string()))?;
    for d in &loaded.diagnostics.0 {
        match d.severity {
            Severity::Warning => warn!("{d}"),
            Severity::Error => error!("{d}"),
        }
    }
    if loaded.diagnostics.has_errors() {
        let errors: Vec<String> = loaded.diagnostics.errors().map(|d| d.to_string()).collect();
        return Err(DaemonError::Config(errors.join("\n")));
    }
    for inst in &loaded.config.instances {
        let pending = [
            (!inst.track_scripts.is_empty(), "track_script"),
            (!inst.track_interfaces.is_empty(), "track_interface"),
            (inst.notify != Default::default(), "notify scripts"),
        ];
        for (_, what) in pending.iter().filter(|(used, _)| *used) {
            warn!(instance = %inst.name, "{}: {what} are not implemented yet; they will NOT run", inst.loc);
        }
    }
    Ok(loaded.config)
}

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(options: Options) -> Result<(), DaemonError> {
    let config = load_config(&options.config)?;
    if !config.global.startup_delay.is_zero() {
        info!(delay = ?config.global.startup_delay, "vrrp_startup_delay");
        tokio::time::sleep(config.global.startup_delay).await;
    }
    let world = World {
        vips: Vips::connect()?,
        garp: Arc::new(GarpSocket::open().map_err(io_error("opening the ARP socket"))?),
        sockets: HashMap::new(),
    };
    let mut daemon = Daemon {
        options,
        world,
        instances: Vec::new(),
        routes: HashMap::new(),
        unmatched_drops: BTreeMap::new(),
    };
    for cfg in config.instances {
        let running = Running::prepare(cfg, &mut daemon.world).await?;
        daemon.instances.push(running);
    }
    daemon.reindex();
    let socket_path = ctl::socket_path(&daemon.options.state_dir);
    let mut status_requests = ctl::serve(&socket_path).map_err(io_error(format!(
        "creating the status socket {}",
        socket_path.display()
    )))?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(io_error("SIGTERM handler"))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(io_error("SIGINT handler"))?;
    let mut sighup = signal(SignalKind::hangup()).map_err(io_error("SIGHUP handler"))?;
    let mut timer = clock::Timer::new().map_err(io_error("creating the timer"))?;
    let mut buf = vec![0u8; 65536];

    let start = now();
    for running in &mut daemon.instances {
        running.fsm.start(start);
        running.execute(&daemon.world).await;
    }
    info!(
        instances = daemon.instances.len(),
        config = %daemon.options.config.display(),
        "ha-agent running"
    );

    loop {
        let deadline = daemon
            .instances
            .iter()
            .filter_map(|r| r.fsm.poll_timeout())
            .min();
        timer.arm(deadline).map_err(io_error("arming the timer"))?;
        tokio::select! {
            biased;
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => daemon.reload().await,
            result = timer.expired() => {
                result.map_err(io_error("waiting for the timer"))?;
                daemon.on_timer().await;
            }
            (socket, result) = daemon.world.recv(&mut buf) => match result {
                Ok(n) => daemon.on_packet(socket, &buf[..n], now()).await,
                Err(e) => warn!(error = %e, "receiving adverts"),
            },
            Some(reply) = status_requests.recv() => {
                let _ = reply.send(daemon.status());
            }
        }
    }

    info!("stopping: releasing VIPs");
    let at = now();
    for running in &mut daemon.instances {
        running.fsm.shutdown(at);
        running.execute(&daemon.world).await;
    }
    let _ = std::fs::remove_file(&socket_path);
    Ok(())
}

impl Daemon {
    async fn on_timer(&mut self) {
        let at = now();
        for running in &mut self.instances {
            if running.fsm.poll_timeout().is_some_and(|t| t <= at) {
                running.fsm.handle_timeout(at);
                running.execute(&self.world).await;
            }
        }
    }

    async fn on_packet(&mut self, socket: SocketKey, data: &[u8], at: Duration) {
        match self.route(socket, data) {
            Ok((index, advert, src)) => {
                let running = &mut self.instances[index];
                running.stats.received += 1;
                running.receive(at, src, &advert);
                running.execute(&self.world).await;
            }
            Err((Some(index), reason)) => self.instances[index].stats.drop(reason),
            Err((None, reason)) => *self.unmatched_drops.entry(reason).or_default() += 1,
        }
    }

    /// Validates a packet and finds its instance (RFC 3768/5798 §7.1 receive checks).
    fn route(
        &self,
        socket: SocketKey,
        data: &[u8],
    ) -> Result<(usize, Advert, Ipv4Addr), (Option<usize>, DropReason)> {
        let ip = Ipv4Header::parse(data).map_err(|r| (None, r))?;
        if ip.protocol != IPPROTO_VRRP {
            return Err((None, DropReason::BadIp));
        }
        let msg = ip.payload(data);
        // The VRID sits in byte 1 whatever else is wrong: count drops on their instance.
        let index = msg
            .get(1)
            .and_then(|vrid| self.routes.get(&(socket, *vrid)).copied());
        if ip.ttl != TTL {
            return Err((index, DropReason::Ttl));
        }
        let (advert, _form) = Advert::parse(msg, ip.src, ip.dst).map_err(|r| (index, r))?;
        let index = index.ok_or((None, DropReason::UnknownVrid))?;
        let running = &self.instances[index];
        if ip.src == running.primary_ip {
            return Err((Some(index), DropReason::Own));
        }
        running.check(&advert).map_err(|r| (Some(index), r))?;
        Ok((index, advert, ip.src))
    }

    /// SIGHUP: re-read the configuration. Unchanged instances keep their state; changed
    /// and removed ones stop (releasing their VIPs); new and changed ones start.
    async fn reload(&mut self) {
        info!(config = %self.options.config.display(), "SIGHUP: reloading");
        let config = match load_config(&self.options.config) {
            Ok(config) => config,
            Err(e) => {
                error!("reload failed, keeping the running configuration: {e}");
                return;
            }
        };
        let mut old = std::mem::take(&mut self.instances);
        let mut keep: Vec<Option<Running>> = Vec::new();
        let mut wanted: Vec<VrrpInstance> = Vec::new();
        for cfg in config.instances {
            match old.iter().position(|r| r.cfg == cfg) {
                Some(pos) => keep.push(Some(old.swap_remove(pos))),
                None => {
                    keep.push(None);
                    wanted.push(cfg);
                }
            }
        }
        let at = now();
        for mut running in old {
            info!(instance = %running.cfg.name, "stopping (changed or removed)");
            running.fsm.shutdown(at);
            running.execute(&self.world).await;
        }
        let mut wanted = wanted.into_iter();
        for slot in keep {
            match slot {
                Some(running) => self.instances.push(running),
                None => {
                    let cfg = wanted.next().expect("one new config per empty slot");
                    let name = cfg.name.clone();
                    match Running::prepare(cfg, &mut self.world).await {
                        Ok(mut running) => {
                            info!(instance = %name, "starting (new or changed)");
                            running.fsm.start(now());
                            running.execute(&self.world).await;
                            self.instances.push(running);
                        }
                        Err(e) => error!(instance = %name, "cannot start: {e}"),
                    }
                }
            }
        }
        self.reindex();
    }

    fn reindex(&mut self) {
        self.routes = self
            .instances
            .iter()
            .enumerate()
            .map(|(i, r)| ((r.socket_key, r.cfg.vrid), i))
            .collect();
    }

    fn status(&self) -> Status {
        Status {
            pid: std::process::id(),
            config: self.options.config.display().to_string(),
            instances: self.instances.iter().map(Running::status).collect(),
            unmatched_drops: self
                .unmatched_drops
                .iter()
                .map(|(r, n)| (r.as_str().to_owned(), *n))
                .collect(),
        }
    }
}
