//! The agent's event loop: one thread feeding packets, timers, signals and status requests
//! to the instances' state machines and carrying out their actions.

mod bfd;
mod checks;
mod clock;
mod db;
mod garp;
mod instance;
mod link_delays;
mod notify;
mod notify_fifo;
pub mod realtime;
pub mod reload;
mod sync_groups;
mod systemd;
mod track_files;
mod track_processes;
mod witness;
pub mod xdp;

use std::{
    cell::{Cell, RefCell},
    collections::{BTreeMap, HashMap, HashSet},
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    sync::Arc,
    task::Poll,
    time::Duration,
};

use tokio::{
    signal::unix::{SignalKind, signal},
    task::JoinHandle,
};
use tracing::{error, info, warn};

use crate::{
    config::{Config, Severity, Vip, VrrpInstance},
    ctl::status::TrackerStatus,
    ctl::{self, Status},
    net::{
        advert_socket::AdvertSocket,
        arp_watch::{ArpWatch, Claim},
        garp::GarpSocket,
        link_watch,
        vip::{VipError, Vips},
    },
    preflight,
    track::{
        check::{Effect, effect},
        runner::Identity,
    },
    vrrp::{
        packet::DropReason,
        receive::{Dropped, receive},
    },
};
use checks::Checks;
use ha_common::vrrp::{Change, VridKey};
use instance::{Running, SocketKey, VipTarget};
use reload::Step;

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
    #[error(transparent)]
    Xdp(#[from] crate::xdp::XdpError),
}

/// The runtime on its own thread (normal scheduling) for what must not share the advert
/// loop's: database tasks and the HTTP endpoints. Started on first use.
fn side_runtime() -> Result<tokio::runtime::Handle, String> {
    static SIDE: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();
    if let Some(handle) = SIDE.get() {
        return Ok(handle.clone());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the side runtime: {e}"))?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name("ha-agent-side".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))
        .map_err(|e| format!("starting the side thread: {e}"))?;
    Ok(SIDE.get_or_init(|| handle).clone())
}

/// `--http-listen`: bound here (an address in use is an error at start), served beside the
/// loop.
fn start_http(
    addr: std::net::SocketAddr,
    commands: tokio::sync::mpsc::Sender<ctl::Command>,
) -> Result<(), DaemonError> {
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(io_error(format!("listening for HTTP on {addr}")))?;
    let runtime = side_runtime().map_err(DaemonError::Config)?;
    runtime.spawn(async move {
        match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => ctl::http::serve(listener, commands).await,
            Err(e) => error!(error = %e, "HTTP endpoints"),
        }
    });
    info!(%addr, "HTTP endpoints: /metrics /status /health /master /backup");
    Ok(())
}

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
    let context = context.into();
    move |source| DaemonError::Io { context, source }
}

pub struct Options {
    pub config: PathBuf,
    pub state_dir: PathBuf,
    /// A group whose members may query the status socket (mode 0660 instead of 0600).
    pub status_group: Option<String>,
    /// Where the HTTP endpoints listen, if anywhere.
    pub http_listen: Option<std::net::SocketAddr>,
    pub xdp: xdp::Choice,
    /// `--allow-unsupported`: unsupported keywords are warnings, not errors.
    pub allow_unsupported: bool,
}

/// What every instance's actions need from the outside world.
pub(crate) struct World {
    vips: Vips,
    /// The VIPs this agent's instances hold, by (ifindex, address): never "left behind".
    held: RefCell<HashSet<(u32, IpAddr)>>,
    garp: Arc<garp::Garp>,
    sockets: HashMap<SocketKey, Arc<AdvertSocket>>,
    /// `script_user` of global_defs: notify scripts without a user of their own run as it.
    script_user: Option<String>,
    notify_timeout: Duration,
    /// Set when an instance changed what the XDP maps must say (state, VIPs held).
    kernel_dirty: Cell<bool>,
    /// The supervised databases (`mysql_replication`).
    dbs: db::Dbs,
    /// The etcd witnesses (`etcd_witness`).
    witnesses: witness::Witnesses,
    /// Set when an instance changed state: systemd's STATUS= line is due.
    roles_changed: Cell<bool>,
    /// `notify_fifo` and `vrrp_notify_fifo`.
    fifos: notify_fifo::Fifos,
    /// Adverts the instances sent since the last [`World::flush`], by socket.
    outbox: RefCell<HashMap<SocketKey, Vec<(bytes::Bytes, IpAddr)>>>,
    /// Adverts the kernel refused (a full device queue): logged at most every 10 s.
    send_errors: RefCell<instance::RateLimit>,
    /// When the frames the kernel transmits next may go (a burst was just sent).
    pace_until: Cell<Option<Duration>>,
}

/// Frames the kernel transmits per interface at once. A redirected frame skips the qdisc: it
/// goes straight into the driver's ring, which must hold the whole burst (a veth's and
/// virtio-net's hold 256, NICs 256-4096); a frame that finds it full is lost.
const TX_BURST: usize = 128;
/// The pause between two bursts on an interface: time for the device to drain its ring.
const TX_PACE: Duration = Duration::from_millis(1);

/// How long after the last transition its working set is shed ([`realtime::trim_memory`]), at
/// the least.
const SETTLED: Duration = Duration::from_secs(5);
/// How often a trim waiting for GARPs to leave looks again.
const GARP_RECHECK: Duration = Duration::from_millis(100);

impl World {
    async fn add_vip(&self, ifindex: u32, vip: &Vip) -> Result<(), VipError> {
        self.vips.add(ifindex, vip).await?;
        self.held.borrow_mut().insert((ifindex, vip.addr));
        Ok(())
    }

    async fn remove_vip(&self, ifindex: u32, vip: &Vip) -> Result<(), VipError> {
        self.held.borrow_mut().remove(&(ifindex, vip.addr));
        self.vips.remove(ifindex, vip).await
    }

    /// Queues an advert for [`World::flush`].
    fn send(&self, socket: SocketKey, msg: bytes::Bytes, dst: IpAddr) {
        self.outbox
            .borrow_mut()
            .entry(socket)
            .or_default()
            .push((msg, dst));
    }

    /// Sends the queued adverts: the whole frames of interfaces the kernel transmits on in
    /// one system call (XDP, in bursts: [`TX_BURST`]), the rest in one `sendmmsg` per
    /// socket, for every instance due in the same tick. A message the kernel refuses is
    /// skipped (logged at most every 10 s).
    fn flush(&self, kernel: Option<&mut xdp::Kernel>) {
        let mut outbox = self.outbox.borrow_mut();
        let for_kernel = kernel
            .map(|k| self.transmit(&mut outbox, k))
            .unwrap_or_default();
        for (key, queued) in outbox
            .iter_mut()
            .filter(|(k, q)| !q.is_empty() && !for_kernel.contains(k))
        {
            let Some(socket) = self.sockets.get(key) else {
                queued.clear();
                continue;
            };
            let mut done = 0;
            while let Some(rest) = queued.get(done..).filter(|r| !r.is_empty()) {
                match socket.send_batch(rest, key.ifindex) {
                    Ok(n) if n > 0 => done += n,
                    result => {
                        let error = result
                            .err()
                            .map_or_else(|| "nothing sent".into(), |e| e.to_string());
                        self.send_failed(rest.first().map(|(_, dst)| *dst), &error);
                        done += 1;
                    }
                }
            }
            queued.clear();
        }
    }

    /// Transmits from the kernel what it can: at most [`TX_BURST`] frames per interface,
    /// the rest [`TX_PACE`] later (see [`World::pace_until`]). Returns the sockets whose
    /// frames are the kernel's, sent or waiting; on an error they go to the sockets.
    fn transmit(
        &self,
        outbox: &mut HashMap<SocketKey, Vec<(bytes::Bytes, IpAddr)>>,
        kernel: &mut xdp::Kernel,
    ) -> HashSet<SocketKey> {
        let fits = |(frame, _): &(bytes::Bytes, IpAddr)| frame.len() <= crate::xdp::tx::FRAME_MAX;
        let at = now();
        let paused = self.pace_until.get().is_some_and(|t| at < t);
        let mut keys = HashSet::new();
        let mut budget: HashMap<u32, usize> = HashMap::new();
        let mut taken = Vec::new();
        for (key, queued) in outbox.iter_mut() {
            let by_kernel = kernel.transmits_on(key.ifindex)
                && self.sockets.get(key).is_some_and(|s| s.sends_frames());
            if !by_kernel || queued.is_empty() || !queued.iter().all(fits) {
                continue;
            }
            keys.insert(*key);
            let left = budget.entry(key.ifindex).or_insert(TX_BURST);
            let n = if paused { 0 } else { queued.len().min(*left) };
            *left -= n;
            if n > 0 {
                taken.push((*key, queued.drain(..n).collect::<Vec<_>>()));
            }
        }
        if taken.is_empty() {
            return keys;
        }
        let frames: Vec<(u32, &[u8])> = taken
            .iter()
            .flat_map(|(key, q)| q.iter().map(|(frame, _)| (key.ifindex, &frame[..])))
            .collect();
        let sent = kernel.transmit(&frames);
        drop(frames);
        if let Err(e) = sent {
            self.send_failed(None, &format!("from the kernel: {e}; sent on the socket"));
            for (key, frames) in taken {
                keys.remove(&key);
                if let Some(queued) = outbox.get_mut(&key) {
                    queued.splice(..0, frames);
                }
            }
        }
        let waiting = keys
            .iter()
            .any(|k| outbox.get(k).is_some_and(|q| !q.is_empty()));
        self.pace_until.set(waiting.then_some(at + TX_PACE));
        keys
    }

    fn send_failed(&self, dst: Option<IpAddr>, error: &str) {
        if let Some(suppressed) = self.send_errors.borrow_mut().allow() {
            warn!(?dst, %error, suppressed, "sending advert");
        }
    }

    fn holds(&self, ifindex: u32, addr: IpAddr) -> bool {
        self.held.borrow().contains(&(ifindex, addr))
    }

    /// The socket for `key`, opened on first use.
    /// The advert socket of `key`, opened on first use (`unicast_ttl` is the TTL of the
    /// first instance's unicast adverts; `check-config` refuses instances on one socket that
    /// differ).
    fn socket(
        &mut self,
        key: SocketKey,
        iface: &str,
        unicast_ttl: u8,
    ) -> Result<Arc<AdvertSocket>, DaemonError> {
        if let Some(socket) = self.sockets.get(&key) {
            return Ok(socket.clone());
        }
        let socket = Arc::new(
            AdvertSocket::open(
                iface,
                key.ifindex,
                key.family,
                key.unicast_src.map(|src| (src, unicast_ttl)),
            )
            .map_err(io_error(format!("opening the VRRP socket on {iface}")))?,
        );
        self.sockets.insert(key, socket.clone());
        Ok(socket)
    }

    /// The next packet on any advert socket, read straight into `buf` by the loop itself:
    /// no task hop or copy per advert.
    async fn recv(
        &self,
        buf: &mut [u8],
    ) -> (SocketKey, std::io::Result<(usize, Option<Duration>)>) {
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
    /// A SIGHUP's configuration being read off the loop, and whether another SIGHUP came
    /// meanwhile (it is served once this one is applied).
    reloading: Option<JoinHandle<Result<Config, DaemonError>>>,
    reload_again: bool,
    checks: Checks,
    /// Whether each tracked interface is up (with carrier), kept by link events.
    links: HashMap<String, bool>,
    /// The XDP program, unless running without it.
    kernel: Option<xdp::Kernel>,
    /// Why the XDP program is not used, once that is settled.
    xdp_unused: Option<String>,
    /// The XDP program being loaded beside the loop (`--xdp auto`).
    xdp_loading: Option<xdp::Loading>,
    /// When the working set of the last burst of transitions is shed ([`SETTLED`] after it).
    trim_at: Option<Duration>,
    /// ARP claims of held VIPs on interfaces without the XDP program.
    arp_watch: Option<ArpWatch>,
    systemd: systemd::Systemd,
    started_unix: f64,
    /// (ifindex, VRID) → index in `instances`, for the kernel's events.
    kernel_routes: HashMap<VridKey, usize>,
    lateness: ctl::status::Lateness,
    /// The `vrrp_sync_group`s over `instances`.
    groups: Vec<sync_groups::Group>,
    /// The `track_file`s and their values.
    files: track_files::TrackFiles,
    /// The `vrrp_track_process`es and their states.
    processes: track_processes::TrackProcesses,
    /// `interface_up_down_delays`.
    link_delays: link_delays::LinkDelays,
    /// `shutdown_script`, as the configuration last read says.
    shutdown_script: Option<(crate::config::Script, Duration)>,
    /// The `bfd_instance` sessions.
    bfd: bfd::Bfd,
}

/// This node's name in the witness's keys: global_defs' `router_id`, else the host name.
fn node_name(config: &Config) -> String {
    config.global.router_id.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into())
    })
}

/// Loads the configuration; errors (with file:line) end the load, warnings are logged.
fn load_config(path: &Path, allow_unsupported: bool) -> Result<Config, DaemonError> {
    let loaded =
        preflight::load(path, allow_unsupported).map_err(|e| DaemonError::Config(e.to_string()))?;
    for d in loaded.diagnostics.iter() {
        match d.severity {
            Severity::Warning => warn!("{d}"),
            Severity::Error => error!("{d}"),
        }
    }
    if loaded.diagnostics.suppressed() > 0 {
        warn!(
            "{} more diagnostics not shown ({} errors, {} warnings in all)",
            loaded.diagnostics.suppressed(),
            loaded.diagnostics.error_count(),
            loaded.diagnostics.warning_count()
        );
    }
    if loaded.diagnostics.has_errors() {
        let mut errors: Vec<String> = loaded
            .diagnostics
            .errors()
            .take(20)
            .map(|d| d.to_string())
            .collect();
        if loaded.diagnostics.error_count() > errors.len() {
            errors.push(format!(
                "... {} errors in all",
                loaded.diagnostics.error_count()
            ));
        }
        return Err(DaemonError::Config(errors.join("\n")));
    }
    Ok(loaded.config)
}

/// Waits for the configuration being read off the loop, or forever if none is.
async fn reloaded(
    reloading: &mut Option<JoinHandle<Result<Config, DaemonError>>>,
) -> Result<Config, DaemonError> {
    let Some(handle) = reloading.as_mut() else {
        return std::future::pending().await;
    };
    let result = handle.await.unwrap_or_else(|e| {
        Err(DaemonError::Config(format!(
            "reading the configuration: {e}"
        )))
    });
    *reloading = None;
    result
}

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(options: Options) -> Result<(), DaemonError> {
    let config = load_config(&options.config, options.allow_unsupported)?;
    if let Some((script, timeout)) = &config.global.startup_script {
        run_once("startup_script", script, *timeout, script_user(&config)).await;
    }
    let (dbs, mut db_inbox) = db::Dbs::new();
    let (mut witnesses, mut witness_inbox) = witness::Witnesses::new(node_name(&config));
    witnesses
        .configure(&config.witnesses)
        .map_err(DaemonError::Config)?;
    if !config.global.startup_delay.is_zero() {
        info!(delay = ?config.global.startup_delay, "vrrp_startup_delay");
        tokio::time::sleep(config.global.startup_delay).await;
    }
    let world = World {
        vips: Vips::connect()?,
        held: RefCell::default(),
        script_user: script_user(&config).map(str::to_owned),
        notify_timeout: config.global.notify_timeout,
        garp: Arc::new(garp::Garp::new(
            GarpSocket::open().map_err(io_error("opening the ARP socket"))?,
        )),
        sockets: HashMap::new(),
        kernel_dirty: Cell::new(true),
        dbs,
        witnesses,
        roles_changed: Cell::new(false),
        fifos: notify_fifo::Fifos::open(fifos(&config), script_user(&config)),
        outbox: RefCell::default(),
        send_errors: RefCell::default(),
        pace_until: Cell::new(None),
    };
    let interfaces = xdp::interfaces(&config.instances)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut loading = xdp::load(options.xdp, interfaces, !config.bfd_instances.is_empty());
    // `auto` starts on the sockets and moves to XDP once the program is attached; an explicit
    // mode is a promise, so the agent starts only once it is kept.
    let kernel = match (&mut loading, options.xdp) {
        (Some(_), xdp::Choice::Native | xdp::Choice::Generic) => {
            let loaded = xdp_loaded(&mut loading).await;
            Some(xdp::Kernel::start(options.xdp, loaded)?)
        }
        (Some(_), _) => None,
        (None, _) => {
            info!("XDP off (--xdp off): adverts and ARP are watched on sockets");
            Some(Err("--xdp off".to_owned()))
        }
    };
    let mut daemon = Daemon {
        options,
        world,
        instances: Vec::new(),
        routes: HashMap::new(),
        unmatched_drops: BTreeMap::new(),
        reloading: None,
        reload_again: false,
        checks: Checks::default(),
        links: HashMap::new(),
        kernel: None,
        xdp_unused: None,
        xdp_loading: loading,
        trim_at: None,
        arp_watch: ArpWatch::open()
            .inspect_err(|e| warn!("ARP watch: {e}; split brain is not detected without XDP"))
            .ok(),
        kernel_routes: HashMap::new(),
        lateness: ctl::status::Lateness::default(),
        groups: Vec::new(),
        files: track_files::TrackFiles::default(),
        processes: track_processes::TrackProcesses::default(),
        shutdown_script: config.global.shutdown_script.clone(),
        bfd: bfd::Bfd::start(&config.bfd_instances, now())
            .map_err(io_error("starting the BFD sessions"))?,
        link_delays: link_delays::LinkDelays::default(),
        systemd: systemd::Systemd::from_env(),
        started_unix: ctl::status::unix_now(),
    };
    daemon
        .checks
        .configure(&config.scripts, script_user(&config));
    daemon.files.configure(&config.track_files);
    daemon.processes.configure(&config.track_processes);
    daemon.link_delays.configure(&config.link_delays);
    daemon.world.garp.configure(&config);
    daemon
        .world
        .dbs
        .configure(&config.replications, &daemon.options.state_dir)
        .map_err(DaemonError::Config)?;
    // Exactly as many: a doubling vector would keep up to twice the instances' memory.
    daemon.instances.reserve_exact(config.instances.len());
    for cfg in config.instances {
        let running = Running::prepare(cfg, &mut daemon.world).await?;
        daemon.instances.push(running);
    }
    daemon.reindex();
    daemon.groups = sync_groups::index(&config.sync_groups, &daemon.instances, Vec::new());
    let socket_path = ctl::socket_path(&daemon.options.state_dir);
    let (commands, mut status_requests) = tokio::sync::mpsc::channel(ctl::MAX_CLIENTS);
    ctl::serve(
        &socket_path,
        daemon.options.status_group.as_deref(),
        commands.clone(),
    )
    .map_err(io_error(format!(
        "creating the status socket {}",
        socket_path.display()
    )))?;
    if let Some(addr) = daemon.options.http_listen {
        start_http(addr, commands)?;
    }
    let mut sigterm = signal(SignalKind::terminate()).map_err(io_error("SIGTERM handler"))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(io_error("SIGINT handler"))?;
    let mut sighup = signal(SignalKind::hangup()).map_err(io_error("SIGHUP handler"))?;
    let mut timer = clock::Timer::new().map_err(io_error("creating the timer"))?;
    let mut buf = vec![0u8; 65536];

    let mut link_events = link_watch::watch().map_err(io_error("watching links"))?;
    // Before the XDP program is attached and asked: no change falls between.
    let mut xdp_feature_changes = crate::net::xdp_features::watch().unwrap_or_else(|e| {
        info!("XDP features not followed ({e}): adverts are sent on sockets");
        tokio::sync::mpsc::unbounded_channel().1
    });
    daemon.refresh_links();
    daemon.apply_tracking().await;
    let start = now();
    for running in &mut daemon.instances {
        running.start(start, &daemon.world).await;
    }
    info!(
        instances = daemon.instances.len(),
        config = %daemon.options.config.display(),
        "ha-agent running"
    );
    if let Some(kernel) = kernel {
        daemon.use_kernel(kernel);
    }
    daemon.world.roles_changed.set(false);
    if daemon.xdp_loading.is_none() {
        let roles = daemon.roles();
        daemon.systemd.ready(roles);
    }
    let mut watchdog = daemon.systemd.ping_every().map(|period| {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });

    loop {
        daemon.sync_groups().await;
        daemon.world.flush(daemon.kernel.as_mut());
        if daemon.world.kernel_dirty.take() {
            daemon.sync_kernel();
        }
        if daemon.world.roles_changed.take() {
            let roles = daemon.roles();
            daemon.systemd.status(roles);
            // After the takeovers' second GARP bursts too.
            let repeat = daemon.instances.iter().map(|i| i.cfg.garp.delay).max();
            daemon.trim_at = Some(now() + repeat.unwrap_or_default().max(SETTLED));
        }
        let deadline = daemon
            .instances
            .iter()
            .filter_map(Running::poll_timeout)
            .chain(daemon.bfd.poll_timeout())
            .chain(daemon.world.pace_until.get())
            .chain(daemon.trim_at)
            .min();
        timer.arm(deadline).map_err(io_error("arming the timer"))?;
        tokio::select! {
            biased;
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => daemon.start_reload(),
            // From the loop itself: a loop that stalls stops the pings.
            _ = systemd::tick(&mut watchdog) => daemon.systemd.ping(),
            result = timer.expired() => {
                let late = result.map_err(io_error("waiting for the timer"))?;
                if daemon.lateness.record(late) {
                    warn!(late_ms = late.as_secs_f64() * 1e3, "the loop acted late on a due timer (the largest so far): adverts may have gone out late");
                }
                let at = now();
                let vrrp_due = daemon
                    .instances
                    .iter()
                    .filter_map(Running::poll_timeout)
                    .min()
                    .is_some_and(|t| t <= at);
                if vrrp_due {
                    // A loop that wakes late first reads the adverts that came in time, so
                    // that a down timer is judged against them.
                    daemon.drain(&mut buf).await;
                    daemon.sweep_kernel().await;
                    daemon.on_timer(late).await;
                }
                if daemon.trim_at.is_some_and(|t| t <= at) {
                    daemon.trim_at = if daemon.world.garp.sending() {
                        // A takeover's GARPs still leaving (its second burst comes
                        // garp_master_delay after it) would fault back what a trim sheds.
                        Some(at + GARP_RECHECK)
                    } else {
                        realtime::trim_memory();
                        None
                    };
                }
                if daemon.bfd.poll_timeout().is_some_and(|t| t <= at) {
                    // Likewise the BFD packets before a detection timer (not before a send,
                    // most of these wake-ups).
                    let changed = daemon.bfd.detection_due(at)
                        && daemon.bfd.drain(now(), daemon.kernel.as_mut());
                    if changed | daemon.bfd.on_timeout(now(), late, daemon.kernel.as_mut()) {
                        daemon.on_bfd_change().await;
                    }
                }
            }
            () = daemon.bfd.readable() => {
                if daemon.bfd.drain(now(), daemon.kernel.as_mut()) {
                    daemon.on_bfd_change().await;
                }
            }
            events = kernel_events(&mut daemon.kernel) => match events {
                xdp::KernelEvents::Vrrp(events) => daemon.on_kernel_events(events, &mut buf).await,
                xdp::KernelEvents::BfdExpired(expired) => {
                    if daemon.bfd.on_expired(expired, now(), daemon.kernel.as_mut()) {
                        daemon.on_bfd_change().await;
                    }
                }
            },
            claim = arp_claim(&mut daemon.arp_watch) => daemon.on_arp_claim(claim, &mut buf).await,
            loaded = xdp_loaded(&mut daemon.xdp_loading) => {
                daemon.on_xdp_loaded(loaded);
                let roles = daemon.roles();
                daemon.systemd.ready(roles);
            }
            (socket, result) = daemon.world.recv(&mut buf) => match result {
                Ok((n, stamp)) => {
                    let floor = daemon.world.sockets.get(&socket).map(|s| s.empty_at()).unwrap_or_default();
                    let at = clock::received_after(stamp, floor);
                    daemon.on_packet(socket, buf.get(..n).unwrap_or_default(), at).await;
                }
                Err(e) => warn!(error = %e, "receiving adverts"),
            },
            config = reloaded(&mut daemon.reloading) => daemon.finish_reload(config).await,
            Some(report) = daemon.checks.rx.recv() => daemon.on_check(report).await,
            Some(report) = daemon.files.rx.recv() => {
                if daemon.files.update(report) {
                    daemon.apply_tracking().await;
                }
            }
            Some(report) = daemon.processes.rx.recv() => {
                if daemon.processes.update(report) {
                    daemon.apply_tracking().await;
                }
            }
            Some((name, up)) = link_events.recv() => daemon.on_link(name, up).await,
            Some(ifindex) = xdp_feature_changes.recv() => {
                if let Some(kernel) = &mut daemon.kernel {
                    kernel.features_changed(ifindex);
                }
            }
            Some(due) = daemon.link_delays.rx.recv() => {
                if daemon.link_delays.due(&due) {
                    daemon.link_changed(due.0, due.1).await;
                }
            }
            Some(report) = db_inbox.reports.recv() => daemon.on_db_report(report).await,
            Some(done) = db_inbox.done.recv() => daemon.on_db_done(done).await,
            Some(done) = witness_inbox.recv() => daemon.on_witness_done(done).await,
            Some(command) = status_requests.recv() => daemon.on_command(command),
        }
    }

    daemon.systemd.stopping();
    daemon.bfd.stop(now(), daemon.kernel.as_mut());
    info!("stopping: releasing VIPs");
    let at = now();
    for running in &mut daemon.instances {
        running.stop(at, &daemon.world).await;
    }
    // The resignations all at once, through the sockets' queues: no later burst to wait for.
    daemon.world.flush(None);
    if let Some(index) = daemon.kernel.as_ref().and_then(xdp::Kernel::pacer)
        && let Err(e) = crate::net::pacer::remove(daemon.world.vips.handle(), index).await
    {
        warn!("{e}");
    }
    daemon.finish_demotions(&mut db_inbox).await;
    daemon.finish_group_notify(NOTIFY_AT_EXIT).await;
    daemon.world.fifos.close();
    // The leases revoked: a peer takes the keys without waiting for them to expire.
    daemon.world.witnesses.close(NOTIFY_AT_EXIT).await;
    // notify_stop (and anything still queued) runs before the agent exits, for a while.
    futures::future::join_all(
        daemon
            .instances
            .drain(..)
            .map(|r| r.finish_notify(NOTIFY_AT_EXIT)),
    )
    .await;
    if let Some((script, timeout)) = &daemon.shutdown_script {
        let user = daemon.world.script_user.clone();
        run_once("shutdown_script", script, *timeout, user.as_deref()).await;
    }
    let _ = std::fs::remove_file(&socket_path);
    Ok(())
}

/// `startup_script` / `shutdown_script`: run to completion or `timeout`, the result logged.
async fn run_once(
    what: &str,
    script: &crate::config::Script,
    timeout: Duration,
    user: Option<&str>,
) {
    let who = match script
        .user
        .as_deref()
        .or(user)
        .map(Identity::lookup)
        .transpose()
    {
        Ok(who) => who,
        Err(e) => {
            error!("{what} {:?} not run: {e}", script.argv);
            return;
        }
    };
    match crate::track::runner::run(&script.argv, who, timeout).await {
        Ok(outcome) if outcome.ok => info!("{what} {:?}: {}", script.argv, outcome.describe()),
        Ok(outcome) => warn!("{what} {:?} failed: {}", script.argv, outcome.describe()),
        Err(e) => error!("{what} {:?} not run: {e}", script.argv),
    }
}

/// The XDP program's next change events (never, without XDP).
async fn kernel_events(kernel: &mut Option<xdp::Kernel>) -> xdp::KernelEvents {
    match kernel {
        Some(kernel) => kernel.events().await,
        None => std::future::pending().await,
    }
}

/// Accept_Mode off is the XDP program's to enforce: without it, say so (as keepalived does
/// when it has no firewall).
fn warn_accept_not_enforced(cfg: &VrrpInstance, why: &str) {
    if !cfg.accept {
        warn!(
            instance = %cfg.name,
            "no_accept (strict mode's default) is not enforced: traffic to its VIPs is \
             accepted, because the XDP program does not run ({why})"
        );
    }
}

/// The next ARP claim of a held VIP on the socket path (never, without the watch).
async fn arp_claim(watch: &mut Option<ArpWatch>) -> std::io::Result<Claim> {
    match watch {
        Some(watch) => watch.claim().await,
        None => std::future::pending().await,
    }
}

/// The XDP program once [`xdp::load`] is done with it (never, when nothing is loading).
async fn xdp_loaded(
    loading: &mut Option<xdp::Loading>,
) -> Result<crate::xdp::XdpProgram, crate::xdp::XdpError> {
    let Some(handle) = loading.as_mut() else {
        return std::future::pending().await;
    };
    let loaded = handle
        .await
        .unwrap_or_else(|e| Err(crate::xdp::XdpError::Loader(e.to_string())));
    *loading = None;
    loaded
}

/// Adds the interfaces `cfg` tracks to `links`, with their current state.
fn follow_links(links: &mut HashMap<String, bool>, cfg: &VrrpInstance) {
    for t in &cfg.track_interfaces {
        links
            .entry(t.name.clone())
            .or_insert_with(|| link_watch::is_up(&t.name));
    }
}

/// A tracker without runs of its own (an interface, a database) as status shows it.
fn tracker(name: String, up: bool, effect: Effect, last_result: Option<String>) -> TrackerStatus {
    TrackerStatus {
        name,
        up,
        streak: 0,
        priority_delta: match effect {
            Effect::Priority(d) => d,
            Effect::Fault => 0,
        },
        fault: effect == Effect::Fault,
        last_result,
        last_duration_ms: None,
    }
}

/// How late the loop may wake before it counts as a stall of this host: well above the
/// wake-up latency of a real-time task (tens of microseconds), well below an advert interval.
const STALL_TOLERANCE: Duration = Duration::from_millis(1);

/// Packets read per socket before an expired timer is handled.
const DRAIN_LIMIT: usize = 4096;

/// How long notify scripts still queued at exit may run.
const NOTIFY_AT_EXIT: Duration = Duration::from_secs(5);

/// The notify FIFOs `global_defs` names.
fn fifos(config: &Config) -> Vec<crate::config::NotifyFifo> {
    let g = &config.global;
    [&g.notify_fifo, &g.vrrp_notify_fifo]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
}

fn script_user(config: &Config) -> Option<&str> {
    config
        .global
        .script_user
        .as_ref()
        .map(|(user, _)| user.as_str())
}

impl Daemon {
    async fn on_check(&mut self, report: checks::Report) {
        if self.checks.record(report) {
            self.apply_tracking().await;
        }
    }

    async fn on_db_report(&mut self, report: db::Report) {
        if self.world.dbs.record(report) {
            self.apply_tracking().await;
        }
    }

    async fn on_db_done(&mut self, done: db::Done) {
        self.world.dbs.note(&done);
        let at = now();
        match self
            .instances
            .iter_mut()
            .find(|r| r.cfg.name == done.instance)
        {
            Some(running) => running.on_db_done(done.outcome, at, &self.world).await,
            None => {
                if let db::Outcome::HandedOver { reply, .. } = done.outcome {
                    let _ = reply.send(Err(format!("instance {} is gone", done.instance)));
                }
            }
        }
    }

    async fn on_witness_done(&mut self, done: crate::witness::session::Done) {
        let at = now();
        if let Some(running) = self
            .instances
            .iter_mut()
            .find(|r| r.cfg.name == done.instance)
        {
            running.on_witness_done(done.outcome, at, &self.world).await;
        }
    }

    fn on_command(&mut self, command: ctl::Command) {
        match command {
            ctl::Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            ctl::Command::Switchover(reply) => {
                // The MASTER instance a database follows hands over; the peer's database
                // must have executed everything first (see `Pair::hand_over`).
                let master = self
                    .instances
                    .iter()
                    .find(|r| r.is_master() && r.gate().is_some());
                match master {
                    Some(running) => {
                        let db = running.gate().unwrap_or_default().to_owned();
                        info!(instance = %running.cfg.name, db = %db, "switchover requested");
                        self.world
                            .dbs
                            .request(&db, &running.cfg.name, db::Op::HandOver { reply });
                    }
                    None => {
                        let _ = reply.send(Err(
                            "no MASTER instance with track_replication on this node".into(),
                        ));
                    }
                }
            }
        }
    }

    /// At exit: masters that demoted their database release the VIPs once it is read-only
    /// (waiting a bounded time for the answers).
    async fn finish_demotions(&mut self, inbox: &mut db::Inbox) {
        let deadline = tokio::time::Instant::now() + NOTIFY_AT_EXIT;
        while self
            .instances
            .iter()
            .any(|r| r.pending_demotion().is_some())
        {
            match tokio::time::timeout_at(deadline, inbox.done.recv()).await {
                Ok(Some(done)) => self.on_db_done(done).await,
                _ => break,
            }
        }
        for running in &mut self.instances {
            running.give_up_demotion(&self.world).await;
        }
    }

    async fn on_link(&mut self, name: String, up: bool) {
        let Some(known) = self.links.get(&name).copied() else {
            return;
        };
        if let Some(up) = self.link_delays.event(&name, up, known) {
            self.link_changed(name, up).await;
        }
    }

    /// A tracked interface's change, once it counts.
    async fn link_changed(&mut self, name: String, up: bool) {
        if let Some(known) = self.links.get_mut(&name)
            && *known != up
        {
            *known = up;
            warn!(interface = %name, "tracked interface {}", if up { "up" } else { "down" });
            self.apply_tracking().await;
        }
    }

    /// Starts following the interfaces the instances track.
    fn refresh_links(&mut self) {
        for running in &self.instances {
            follow_links(&mut self.links, &running.cfg);
        }
    }

    /// The priority delta and fault an instance's checks and tracked interfaces add up to.
    fn tracking(&self, cfg: &VrrpInstance) -> (i32, bool) {
        let (mut delta, mut fault) = self.checks.effect(&cfg.track_scripts);
        for t in &cfg.track_replication {
            match effect(
                self.world.dbs.healthy(&t.name),
                t.weight.unwrap_or(0),
                false,
            ) {
                Effect::Priority(d) => delta += d,
                Effect::Fault => fault = true,
            }
        }
        for t in &cfg.track_interfaces {
            let up = self.links.get(&t.name).copied().unwrap_or(false);
            match effect(up, t.weight, t.reverse) {
                Effect::Priority(d) => delta += d,
                Effect::Fault => fault = true,
            }
        }
        // `unicast_fault_no_peer`: no peers is not multicast but FAULT.
        if cfg.unicast_fault_no_peer && cfg.unicast_peers.is_empty() {
            fault = true;
        }
        for t in &cfg.track_files {
            match self.file_effect(t) {
                Effect::Priority(d) => delta += d,
                Effect::Fault => fault = true,
            }
        }
        for t in &cfg.track_processes {
            match self.process_effect(t) {
                Effect::Priority(d) => delta += d,
                Effect::Fault => fault = true,
            }
        }
        for t in &cfg.track_bfds {
            match self.bfd_effect(t) {
                Effect::Priority(d) => delta += d,
                Effect::Fault => fault = true,
            }
        }
        (delta, fault)
    }

    fn tracker_status(&self, cfg: &VrrpInstance) -> Vec<TrackerStatus> {
        let mut trackers = self.checks.status(&cfg.track_scripts);
        trackers.extend(cfg.track_replication.iter().map(|t| {
            let up = self.world.dbs.healthy(&t.name);
            let problem = self
                .world
                .dbs
                .by_name
                .get(&t.name)
                .and_then(|d| d.local.as_ref())
                .map(|h| h.problem().unwrap_or_else(|| "healthy".into()));
            let name = format!("replication {}", t.name);
            tracker(name, up, effect(up, t.weight.unwrap_or(0), false), problem)
        }));
        trackers.extend(cfg.track_interfaces.iter().map(|t| {
            let up = self.links.get(&t.name).copied().unwrap_or(false);
            let name = format!("interface {}", t.name);
            tracker(name, up, effect(up, t.weight, t.reverse), None)
        }));
        trackers.extend(cfg.track_files.iter().map(|t| {
            let e = self.file_effect(t);
            let value = format!("value {}", self.files.value(&t.name));
            tracker(
                format!("file {}", t.name),
                e != Effect::Fault,
                e,
                Some(value),
            )
        }));
        trackers.extend(cfg.track_bfds.iter().map(|t| {
            let up = self.bfd.up(&t.name).unwrap_or(false);
            tracker(format!("bfd {}", t.name), up, self.bfd_effect(t), None)
        }));
        trackers.extend(cfg.track_processes.iter().map(|t| {
            let (up, running) = self.processes.state(&t.name);
            let value = format!("{running} running");
            tracker(
                format!("process {}", t.name),
                up,
                self.process_effect(t),
                Some(value),
            )
        }));
        trackers
    }

    /// What a `track_process` does to an instance now: up or down with the weight (the
    /// tracker's, else the process tracker's), as for a check.
    fn process_effect(&self, t: &crate::config::TrackFileRef) -> Effect {
        let spec = self.processes.spec(&t.name);
        let weight = t.weight.or(spec.map(|s| s.weight)).unwrap_or(1);
        let reverse = t.reverse.or(spec.map(|s| s.reverse)).unwrap_or(false);
        effect(self.processes.state(&t.name).0, weight, reverse)
    }

    /// A BFD session went Up or left it: the trackers, then `bfd_takeover` for the backups
    /// whose master it watched.
    async fn on_bfd_change(&mut self) {
        self.apply_tracking().await;
        let read = now();
        for (session, peer, at) in self.bfd.take_lost() {
            // A report that took longer than a stall to reach us is judged from now.
            let judged = if read.saturating_sub(at) > STALL_TOLERANCE {
                read
            } else {
                at
            };
            for r in &mut self.instances {
                if r.cfg.bfd_takeover
                    && r.cfg.track_bfds.iter().any(|t| t.name == session)
                    && r.master_lost(at, judged, peer)
                {
                    info!(
                        instance = %r.cfg.name, bfd = %session, master = %peer,
                        "BFD saw the master fail: taking over after Skew_Time"
                    );
                }
            }
        }
    }

    /// What a `track_bfd` does to an instance now: the session Up or not, with the weight
    /// (the tracker's, else the `bfd_instance`'s; 0: FAULT while not Up), as keepalived.
    fn bfd_effect(&self, t: &crate::config::TrackFileRef) -> Effect {
        let (weight, reverse) = self.bfd.weight(&t.name);
        effect(
            self.bfd.up(&t.name).unwrap_or(false),
            t.weight.unwrap_or(weight),
            t.reverse.unwrap_or(reverse),
        )
    }

    /// What a `track_file` does to an instance now: its value times the weight (the
    /// tracker's, else the file's).
    fn file_effect(&self, t: &crate::config::TrackFileRef) -> Effect {
        let file = self.files.file(&t.name);
        let weight = t.weight.or(file.map(|f| f.weight)).unwrap_or(1);
        let reverse = t.reverse.or(file.map(|f| f.reverse)).unwrap_or(false);
        crate::track::file::effect(self.files.value(&t.name), weight, reverse)
    }

    /// Gives every instance the priority delta and fault its trackers add up to; a fault of
    /// one member of a sync group is a fault of every member.
    async fn apply_tracking(&mut self) {
        let at = now();
        let mut values: Vec<(i32, bool)> = self
            .instances
            .iter()
            .map(|r| self.tracking(&r.cfg))
            .collect();
        let faulty_groups: HashSet<&str> = self
            .instances
            .iter()
            .zip(&values)
            .filter(|(_, (_, fault))| *fault)
            .filter_map(|(r, _)| r.cfg.sync_group.as_deref())
            .collect();
        for (r, (_, fault)) in self.instances.iter().zip(&mut values) {
            if r.cfg
                .sync_group
                .as_deref()
                .is_some_and(|g| faulty_groups.contains(g))
            {
                *fault = true;
            }
        }
        for (running, tracking) in self.instances.iter_mut().zip(values) {
            running.set_tracking(tracking, at, &self.world).await;
        }
    }

    /// The program [`xdp::load`] loaded under `--xdp auto`: the instances move to it (or stay
    /// on the sockets, with the warning that says why).
    fn on_xdp_loaded(&mut self, loaded: Result<crate::xdp::XdpProgram, crate::xdp::XdpError>) {
        match xdp::Kernel::start(self.options.xdp, loaded) {
            Ok(kernel) => self.use_kernel(kernel),
            Err(e) => self.use_kernel(Err(e.to_string())),
        }
    }

    /// The settled receive path: the XDP program, or the sockets alone and why.
    fn use_kernel(&mut self, kernel: Result<xdp::Kernel, String>) {
        match kernel {
            Ok(mut kernel) => {
                // Interfaces added by a reload during the load.
                let interfaces = xdp::interfaces(self.instances.iter().map(|r| &r.cfg));
                if let Err(e) = kernel.attach(&interfaces) {
                    warn!("XDP: {e}; adverts on that interface are checked on the socket only");
                }
                self.kernel = Some(kernel);
                self.world.kernel_dirty.set(true);
            }
            Err(why) => {
                for r in &self.instances {
                    warn_accept_not_enforced(&r.cfg, &why);
                }
                self.xdp_unused = Some(why);
            }
        }
        // Start-up is over: what it touched and no longer needs goes.
        realtime::trim_memory();
    }

    /// Makes the XDP maps what the instances want (a backup's adverts absorbed, the VIPs
    /// held marked), and has the ARP watch cover the held VIPs that XDP does not.
    fn sync_kernel(&mut self) {
        if let Some(watch) = &mut self.arp_watch {
            let kernel = self.kernel.as_ref();
            let held = self
                .instances
                .iter()
                .flat_map(Running::held_vips)
                .filter(|v| !kernel.is_some_and(|k| k.attached_to(v.ifindex)))
                .collect();
            if let Err(e) = watch.watch(held) {
                warn!("ARP watch: setting its filter: {e}");
            }
        }
        let Some(kernel) = &mut self.kernel else {
            return;
        };
        let vrids = self
            .instances
            .iter()
            .map(|r| (r.kernel_key(), r.kernel_config()))
            .collect();
        let vips = self
            .instances
            .iter()
            .flat_map(Running::kernel_vips)
            .collect();
        let sources = self
            .instances
            .iter()
            .flat_map(Running::kernel_sources)
            .collect();
        let not_accepted = self
            .instances
            .iter()
            .flat_map(Running::kernel_not_accepted)
            .collect();
        if let Err(e) = kernel.sync(vrids, vips, sources, not_accepted) {
            warn!("XDP: updating the maps: {e}");
        }
    }

    /// Another host's ARP frame claimed a VIP held here, on an interface without XDP.
    async fn on_arp_claim(&mut self, claim: std::io::Result<Claim>, buf: &mut [u8]) {
        match claim {
            Ok(claim) => {
                // A new master's advert goes out before its gratuitous ARP: read what came
                // first, so that a handover is not answered as a split brain.
                self.drain(buf).await;
                let holder = self.instances.iter_mut().find(|r| {
                    r.held_vips()
                        .any(|v| v.ifindex == claim.ifindex && v.addr == claim.vip)
                });
                if let Some(running) = holder {
                    running.on_arp_conflict(claim.vip.into(), claim.mac, &self.world);
                }
            }
            Err(e) => warn!("ARP watch: {e}"),
        }
    }

    /// Before down timers are judged: backups whose adverts the kernel absorbs read their
    /// master's last advert from `PEERS`. Every backup due within one advert interval reads
    /// it now, so that the timers of many instances fall due together and the loop wakes
    /// once for all of them.
    async fn sweep_kernel(&mut self) {
        let Some(kernel) = &self.kernel else {
            return;
        };
        let at = now();
        let due = |running: &Running| {
            kernel.absorbs(running.kernel_key())
                && running
                    .poll_timeout()
                    .is_some_and(|t| t <= at + running.master_adver_interval())
        };
        if !self.instances.iter().any(due) {
            return;
        }
        // Read from the kernel's mapped copy: no system call per backup due.
        for running in &mut self.instances {
            if due(running)
                && let Some(peer) = kernel.peer(running.kernel_key())
            {
                running.on_kernel_advert(&peer, &self.world).await;
            }
        }
    }

    /// Changes the kernel saw: adverts of absorbing backups go to their state machines,
    /// ARP claims of held VIPs to their instances.
    async fn on_kernel_events(&mut self, events: Vec<ha_common::vrrp::Event>, buf: &mut [u8]) {
        if events
            .iter()
            .any(|e| e.change == Change::ArpConflict as u32)
        {
            // A new master's advert goes out before its gratuitous ARP: read what came first
            // (a master's adverts reach its socket), so that a handover is not answered as a
            // split brain.
            self.drain(buf).await;
        }
        let Some(kernel) = &self.kernel else {
            return;
        };
        for event in events {
            let Some(running) = self
                .kernel_routes
                .get(&event.key)
                .and_then(|i| self.instances.get_mut(*i))
            else {
                continue;
            };
            if event.change == Change::ArpConflict as u32 {
                let vip = IpAddr::from(Ipv4Addr::from(event.vip));
                running.on_arp_conflict(vip, event.mac, &self.world);
            } else if kernel.absorbs(event.key) {
                // The last advert before the change first: a sleeping backup has not read
                // it, and its time is when the better master was last heard.
                running.on_kernel_advert(&event.before, &self.world).await;
                running.on_kernel_advert(&event.peer, &self.world).await;
            }
        }
    }

    /// Handles the due timers of a loop that woke `late` (a stall longer than
    /// [`STALL_TOLERANCE`] gives a master that stopped with us time to be heard again).
    async fn on_timer(&mut self, late: Duration) {
        let at = now();
        let stalled = (late > STALL_TOLERANCE).then_some(late);
        for running in &mut self.instances {
            running.on_timeout(at, stalled, &self.world).await;
        }
    }

    /// Handles every packet already queued on the advert sockets, each at its kernel
    /// receive time (at most [`DRAIN_LIMIT`] per socket, so a flood cannot hold the loop).
    async fn drain(&mut self, buf: &mut [u8]) {
        let sockets: Vec<(SocketKey, Arc<AdvertSocket>)> = self
            .world
            .sockets
            .iter()
            .map(|(key, socket)| (*key, Arc::clone(socket)))
            .collect();
        for (key, socket) in sockets {
            for _ in 0..DRAIN_LIMIT {
                match socket.try_recv(buf) {
                    Ok(Some((n, stamp))) => {
                        let at = clock::received_after(stamp, socket.empty_at());
                        self.on_packet(key, buf.get(..n).unwrap_or_default(), at)
                            .await;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        warn!(error = %e, "receiving adverts");
                        break;
                    }
                }
            }
        }
    }

    async fn on_packet(&mut self, socket: SocketKey, data: &[u8], at: Duration) {
        let (instances, routes) = (&self.instances, &self.routes);
        let result = receive(data, |vrid| {
            let index = *routes.get(&(socket, vrid))?;
            Some(instances.get(index)?.target(index))
        });
        match result {
            Ok(d) => {
                if let Some(running) = self.instances.get_mut(d.index) {
                    running
                        .on_advert(at, d.src, &d.advert, d.accepted, &self.world)
                        .await;
                }
            }
            Err(Dropped {
                index: Some(index),
                reason,
                from,
            }) => {
                if let Some(running) = self.instances.get_mut(index) {
                    running.on_drop(reason, from);
                }
            }
            Err(Dropped { reason, .. }) => *self.unmatched_drops.entry(reason).or_default() += 1,
        }
    }

    /// SIGHUP: read the configuration on a blocking thread, so that parsing (however large
    /// or hostile the file) never delays an advert. A SIGHUP during a read is served after it.
    fn start_reload(&mut self) {
        if self.reloading.is_some() {
            self.reload_again = true;
            return;
        }
        info!(config = %self.options.config.display(), "SIGHUP: reloading");
        self.systemd.reloading();
        let path = self.options.config.clone();
        let allow = self.options.allow_unsupported;
        self.reloading = Some(tokio::task::spawn_blocking(move || {
            load_config(&path, allow)
        }));
    }

    /// Applies a configuration read by [`Daemon::start_reload`] as `reload::plan` says:
    /// unchanged instances keep running, changed ones are updated in place where the
    /// protocol allows, the rest stop or start.
    async fn finish_reload(&mut self, config: Result<Config, DaemonError>) {
        match config {
            Ok(config) => self.apply(config).await,
            Err(e) => error!("reload failed, keeping the running configuration: {e}"),
        }
        let roles = self.roles();
        self.systemd.ready(roles);
        if std::mem::take(&mut self.reload_again) {
            self.start_reload();
        }
    }

    async fn apply(&mut self, config: Config) {
        let sync_groups = config.sync_groups.clone();
        self.world.script_user = script_user(&config).map(str::to_owned);
        self.world.notify_timeout = config.global.notify_timeout;
        let fifos_now = fifos(&config);
        if fifos_now.as_slice() != self.world.fifos.configured() {
            self.world.fifos.close();
            self.world.fifos = notify_fifo::Fifos::open(fifos_now, script_user(&config));
        }
        let write_states = config.global.fifo_states_on_reload;
        self.checks.configure(&config.scripts, script_user(&config));
        self.files.configure(&config.track_files);
        self.processes.configure(&config.track_processes);
        self.link_delays.configure(&config.link_delays);
        self.world.garp.configure(&config);
        self.shutdown_script = config.global.shutdown_script.clone();
        if let Err(e) = self
            .bfd
            .reload(&config.bfd_instances, now(), self.kernel.as_mut())
        {
            error!("BFD: {e}");
        }
        if let Err(e) = self
            .world
            .dbs
            .configure(&config.replications, &self.options.state_dir)
        {
            error!("mysql_replication: {e}; keeping the databases as they were");
        }
        if let Err(e) = self.world.witnesses.configure(&config.witnesses) {
            error!("etcd_witness: {e}; keeping the witnesses as they were");
        }
        if let Some(kernel) = &mut self.kernel
            && let Err(e) = kernel.attach(&xdp::interfaces(&config.instances))
        {
            warn!("XDP: {e}; adverts on that interface are checked on the socket only");
        }
        let old_cfgs: Vec<VrrpInstance> = self.instances.iter().map(|r| r.cfg.clone()).collect();
        let steps = reload::plan(&old_cfgs, &config.instances);
        let mut old: Vec<Option<Running>> = std::mem::take(&mut self.instances)
            .into_iter()
            .map(Some)
            .collect();
        // Where the updated instances' VIPs live, resolved before anything changes; then VIPs
        // leave before any arrive, so one that moves between instances is not removed after
        // its new holder added it.
        let mut resolved: HashMap<usize, Vec<VipTarget>> = HashMap::new();
        for step in &steps {
            if let Step::Update { old: o, new: n, .. } = step
                && let (Some(Some(running)), Some(cfg)) = (old.get(*o), config.instances.get(*n))
            {
                match running.resolve_vips(cfg) {
                    Ok(vips) => {
                        resolved.insert(*n, vips);
                    }
                    Err(e) => {
                        error!(instance = %cfg.name, "cannot apply the change, keeping the running one: {e}")
                    }
                }
            }
        }
        for step in &steps {
            if let Step::Update { old: o, new: n, .. } = step
                && resolved.contains_key(n)
                && let (Some(Some(running)), Some(cfg)) =
                    (old.get_mut(*o), config.instances.get(*n))
            {
                running.release_removed(&cfg.vips, &self.world).await;
            }
        }
        let mut new: Vec<Option<VrrpInstance>> = config.instances.into_iter().map(Some).collect();
        let mut next = Vec::new();
        for step in steps {
            let at = now();
            match step {
                Step::Keep { old: o, .. } => next.extend(old.get_mut(o).and_then(Option::take)),
                Step::Update {
                    old: o,
                    new: n,
                    changes,
                } => {
                    let (Some(mut running), Some(cfg)) = (
                        old.get_mut(o).and_then(Option::take),
                        new.get_mut(n).and_then(Option::take),
                    ) else {
                        continue;
                    };
                    if let Some(vips) = resolved.remove(&n) {
                        running.update(cfg, vips, &changes, at, &self.world).await;
                    }
                    next.push(running);
                }
                Step::Stop { old: o } | Step::Restart { old: o, .. } => {
                    if let Some(mut running) = old.get_mut(o).and_then(Option::take) {
                        let why = match &step {
                            Step::Restart { why, .. } => why,
                            _ => "removed",
                        };
                        info!(instance = %running.cfg.name, "stopping ({why})");
                        if matches!(step, Step::Stop { .. }) {
                            running.remove(at, &self.world).await;
                        } else {
                            running.stop(at, &self.world).await;
                        }
                    }
                    if let Step::Restart { new: n, .. } = step {
                        self.start_instance(new.get_mut(n).and_then(Option::take), &mut next)
                            .await;
                    }
                }
                Step::Start { new: n } => {
                    self.start_instance(new.get_mut(n).and_then(Option::take), &mut next)
                        .await;
                }
            }
        }
        self.instances = next;
        self.reindex();
        let old_groups = std::mem::take(&mut self.groups);
        self.groups = sync_groups::index(&sync_groups, &self.instances, old_groups);
        if write_states {
            for r in &self.instances {
                let f = r.fsm();
                self.world
                    .fifos
                    .write(false, &r.cfg.name, f.state(), f.priority());
            }
            self.write_group_states();
        }
        // An instance that left its group takes over on its own again.
        for r in self
            .instances
            .iter_mut()
            .filter(|r| r.cfg.sync_group.is_none())
        {
            r.sync(None, false, now(), &self.world).await;
        }
        self.refresh_links();
        self.apply_tracking().await;
    }

    async fn start_instance(&mut self, cfg: Option<VrrpInstance>, next: &mut Vec<Running>) {
        let Some(cfg) = cfg else { return };
        let name = cfg.name.clone();
        match Running::prepare(cfg, &mut self.world).await {
            Ok(mut running) => {
                info!(instance = %name, "starting");
                if let Some(why) = &self.xdp_unused {
                    warn_accept_not_enforced(&running.cfg, why);
                }
                follow_links(&mut self.links, &running.cfg);
                let tracking = self.tracking(&running.cfg);
                running.set_tracking(tracking, now(), &self.world).await;
                running.start(now(), &self.world).await;
                next.push(running);
            }
            Err(e) => error!(instance = %name, "cannot start: {e}"),
        }
    }

    fn reindex(&mut self) {
        self.routes = self
            .instances
            .iter()
            .enumerate()
            .map(|(i, r)| ((r.socket_key, r.cfg.vrid), i))
            .collect();
        self.kernel_routes = self
            .instances
            .iter()
            .enumerate()
            .map(|(i, r)| (r.kernel_key(), i))
            .collect();
        self.world.kernel_dirty.set(true);
    }

    /// Each interface of the instances and where its adverts and ARP are checked.
    fn receive_path(&self) -> BTreeMap<String, String> {
        xdp::interfaces(self.instances.iter().map(|r| &r.cfg))
            .into_iter()
            .map(|interface| {
                let path = match self.kernel.as_ref().and_then(|k| k.mode(interface)) {
                    Some(mode) => format!("xdp {}", mode.as_str()),
                    None if self.xdp_loading.is_some() => "sockets (XDP loading)".into(),
                    None => "sockets".into(),
                };
                (interface.to_owned(), path)
            })
            .collect()
    }

    /// systemd's STATUS= line: each instance and its state.
    fn roles(&self) -> String {
        let roles: Vec<String> = self
            .instances
            .iter()
            .map(|r| format!("{} {}", r.cfg.name, r.state()))
            .collect();
        let paths: Vec<String> = self
            .receive_path()
            .into_iter()
            .map(|(interface, path)| format!("{interface} {path}"))
            .collect();
        match (roles.is_empty(), paths.is_empty()) {
            (true, _) => "no instances".into(),
            (false, true) => roles.join(", "),
            (false, false) => format!("{}; {}", roles.join(", "), paths.join(", ")),
        }
    }

    fn status(&self) -> Status {
        Status {
            schema_version: ctl::status::SCHEMA_VERSION,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_unix: self.started_unix,
            pid: std::process::id(),
            config: self.options.config.display().to_string(),
            instances: self
                .instances
                .iter()
                .map(|r| r.status(self.tracker_status(&r.cfg)))
                .collect(),
            unmatched_drops: self
                .unmatched_drops
                .iter()
                .map(|(r, n)| (r.as_str().to_owned(), *n))
                .collect(),
            xdp: self.kernel.as_ref().map(xdp::Kernel::status),
            receive_path: self.receive_path(),
            xdp_unused: self.xdp_unused.clone(),
            replication: self.world.dbs.status(),
            timer_lateness: self.lateness,
            witnesses: self.world.witnesses.status(),
            sync_groups: self.sync_group_status(),
            bfd: self.bfd.status(now(), self.kernel.as_ref()),
            bfd_drops: self.bfd.dropped().into_iter().collect(),
        }
    }
}
