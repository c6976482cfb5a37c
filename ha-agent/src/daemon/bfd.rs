//! The `bfd_instance` sessions on the daemon's loop: one UDP socket per family on port 3784
//! receives every session's control packets (with their TTL), one socket per session sends
//! from a port of RFC 5881's range with TTL 255, and the sans-IO sessions in `crate::bfd`
//! decide. A session's Up or Down reaches the instances through `track_bfd`.
//!
//! With the XDP program, a session that is Up with nothing to negotiate is handed to the
//! kernel: its peer's steady packets are dropped there and re-arm a kernel timer, so they
//! never wake the agent; the timer reports a silent peer on a ring buffer. Any other packet
//! reaches the session here, which takes the detection back until it is steady again. A
//! new kernel entry is armed by the first packet it absorbs: until then a backstop timer
//! here covers a peer that falls silent at that moment.

use std::{
    collections::{BTreeMap, HashMap},
    hash::{BuildHasher as _, Hasher as _},
    io::{self, IoSliceMut},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::fd::AsRawFd as _,
    time::Duration,
};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::{Interest, unix::AsyncFd};
use tracing::{info, warn};

use ha_common::bfd::{BFD_FRAME_LEN, BFD_LEN, BfdExpired, BfdKey, BfdTx, BfdWatch};

use super::xdp::Kernel;
use crate::{
    bfd::{
        Action, Config, Control, Session, State,
        pace::{Plan, Token},
        packet::{CONTROL_PORT, MAX_LEN, Malformed, SOURCE_PORTS},
    },
    config::BfdInstance,
    ctl::status::BfdStatus,
    net::pacer::TokenSocket,
};

/// CS6, as routing protocols mark their control traffic.
const TOS_CS6: u32 = 0xc0;

/// The longest interval whose packets the kernel sends: beyond it, the tokens (9 ms at
/// most) would outnumber the packets.
const PACE_MAX_INTERVAL: Duration = Duration::from_millis(20);
/// How often the agent queues more tokens, and how far ahead of now: a stall of the agent
/// shorter than the difference costs no packet.
const TOP_UP: Duration = Duration::from_millis(100);
const PACE_AHEAD: Duration = Duration::from_millis(200);

/// How long a session must have stayed Up for its failure to count as its peer's
/// (`bfd_takeover`): one that flaps (a peer starting, a loaded machine) proves nothing.
pub const TRUSTED_AFTER: Duration = Duration::from_secs(1);

struct Peer {
    cfg: BfdInstance,
    session: Session,
    tx: Socket,
    /// When the state last changed ([`super::now`]).
    changed_at: Duration,
    /// Up → Down transitions.
    downs: u64,
    send_errors: u64,
    /// When the peer went silent past the detection time, until [`Bfd::take_lost`].
    lost_at: Option<Duration>,
    /// The last packet the session accepted, as it came.
    last_packet: Option<[u8; BFD_LEN]>,
    /// What the kernel watches for this session, and since when.
    watched: Option<(BfdWatch, Duration)>,
    /// When the kernel must have absorbed a packet of a new entry (else the peer is silent).
    backstop_at: Option<Duration>,
    /// Packets the kernel absorbed in entries since replaced.
    absorbed: u64,
    /// The kernel does not see this session's packets (they arrive where the program is
    /// not attached): the detection stays here.
    kernel_blind: bool,
    /// The packet the kernel sends for this session, and when its first one leaves (until
    /// then the agent sends).
    paced: Option<([u8; BFD_LEN], Duration)>,
    /// Frames the kernel sent in entries since removed.
    kernel_sent: u64,
}

/// BFD's transmission clocked by the kernel: the tokens' socket and their plan.
struct Pacer {
    socket: TokenSocket,
    plan: Plan,
    /// When to queue more tokens.
    top_up_at: Option<Duration>,
    tokens: Vec<Token>,
    /// Tokens the kernel refused.
    refused: u64,
}

impl Peer {
    /// Its `BFD_SESSIONS` key: our discriminator.
    fn key(&self) -> BfdKey {
        BfdKey {
            discr: self.session.local_discr(),
        }
    }
}

/// Every session, and what was dropped before one saw it.
pub struct Bfd {
    peers: Vec<Peer>,
    rx4: Option<AsyncFd<Socket>>,
    rx6: Option<AsyncFd<Socket>>,
    malformed: BTreeMap<&'static str, u64>,
    /// Packets no session claims (unknown discriminator or sender).
    unmatched: u64,
    /// Packets whose TTL says they crossed a router (RFC 5881 §5).
    ttl: u64,
    buf: Vec<u8>,
    /// None until the kernel can clock transmission (and stays so without XDP).
    pacer: Option<Pacer>,
}

fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(super::now().as_nanos() as u64);
    h.finish()
}

fn session_config(b: &BfdInstance) -> Config {
    Config {
        min_tx: b.min_tx,
        min_rx: b.min_rx,
        idle_tx: b.idle_tx,
        multiplier: b.multiplier,
        passive: b.passive,
        password: None,
    }
}

/// The receiving socket of a family: every session's packets, with their TTL.
fn listener(family: IpAddr) -> io::Result<AsyncFd<Socket>> {
    use nix_hoplimit::sys::socket::{setsockopt, sockopt};
    let (domain, any): (Domain, IpAddr) = match family {
        IpAddr::V4(_) => (Domain::IPV4, Ipv4Addr::UNSPECIFIED.into()),
        IpAddr::V6(_) => (Domain::IPV6, Ipv6Addr::UNSPECIFIED.into()),
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    match family {
        IpAddr::V4(_) => setsockopt(&socket, sockopt::Ipv4RecvTtl, &true)?,
        IpAddr::V6(_) => {
            socket.set_only_v6(true)?;
            setsockopt(&socket, sockopt::Ipv6RecvHopLimit, &true)?;
        }
    }
    socket.set_nonblocking(true)?;
    socket.bind(&SockAddr::from(SocketAddr::new(any, CONTROL_PORT)))?;
    // SAFETY: the AsyncFd owns the socket, and with it the descriptor it registered.
    unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }
        .map_err(|e| io::Error::other(e.to_string()))
}

/// A session's sending socket: from `source` (or the kernel's choice) and a port of RFC
/// 5881's range, to the neighbour's port 3784, TTL `ttl`.
fn sender(b: &BfdInstance, seed: u64) -> io::Result<Socket> {
    let domain = if b.neighbor.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    match b.neighbor {
        IpAddr::V4(_) => {
            socket.set_ttl_v4(u32::from(b.ttl))?;
            socket.set_tos_v4(TOS_CS6)?;
        }
        IpAddr::V6(_) => {
            socket.set_unicast_hops_v6(u32::from(b.ttl))?;
            socket.set_tclass_v6(TOS_CS6)?;
        }
    }
    socket.set_nonblocking(true)?;
    let source = b.source.unwrap_or(match b.neighbor {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    });
    let span = u64::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
    let mut last = None;
    for i in 0..64 {
        let port = *SOURCE_PORTS.start() + ((seed + i) % span) as u16;
        match socket.bind(&SockAddr::from(SocketAddr::new(source, port))) {
            Ok(()) => {
                socket.connect(&SockAddr::from(SocketAddr::new(b.neighbor, CONTROL_PORT)))?;
                return Ok(socket);
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free source port")))
}

impl Bfd {
    /// Sockets and sessions for `instances`; the first packets go out on the next timer.
    pub fn start(instances: &[BfdInstance], now: Duration) -> io::Result<Self> {
        let mut bfd = Bfd {
            peers: Vec::new(),
            rx4: None,
            rx6: None,
            malformed: BTreeMap::new(),
            unmatched: 0,
            ttl: 0,
            buf: vec![0; 1500],
            pacer: None,
        };
        bfd.reload(instances, now, None)?;
        Ok(bfd)
    }

    /// Keeps the sessions whose neighbour and source stay (new timers through a poll
    /// sequence), starts the new ones and takes the removed ones down administratively.
    pub fn reload(
        &mut self,
        instances: &[BfdInstance],
        now: Duration,
        mut kernel: Option<&mut Kernel>,
    ) -> io::Result<()> {
        let mut kept = Vec::new();
        let mut old: Vec<Peer> = std::mem::take(&mut self.peers);
        for b in instances {
            if let Some(i) = old
                .iter()
                .position(|p| p.cfg.neighbor == b.neighbor && p.cfg.source == b.source)
            {
                let mut peer = old.swap_remove(i);
                if peer.cfg != *b {
                    peer.session.reconfigure(session_config(b), now);
                    peer.cfg = b.clone();
                }
                kept.push(peer);
                continue;
            }
            let seed = random_u64();
            let discr = loop {
                let d = (random_u64() as u32).max(1);
                if !kept
                    .iter()
                    .chain(&old)
                    .any(|p: &Peer| p.session.local_discr() == d)
                {
                    break d;
                }
            };
            let tx = sender(b, seed)
                .map_err(|e| io::Error::new(e.kind(), format!("bfd_instance {}: {e}", b.name)))?;
            info!(bfd = %b.name, neighbor = %b.neighbor, "BFD session starting");
            kept.push(Peer {
                cfg: b.clone(),
                session: Session::new(session_config(b), discr, seed, now),
                tx,
                changed_at: now,
                downs: 0,
                send_errors: 0,
                lost_at: None,
                last_packet: None,
                watched: None,
                backstop_at: None,
                absorbed: 0,
                kernel_blind: false,
                paced: None,
                kernel_sent: 0,
            });
        }
        for mut gone in old {
            Self::unpace(&mut gone, self.pacer.as_mut(), now, kernel.as_deref_mut());
            Self::unwatch(&mut gone, now, kernel.as_deref_mut());
            gone.session.admin_down(now);
            Self::act(&mut gone);
        }
        self.peers = kept;
        if self.rx4.is_none() && self.peers.iter().any(|p| p.cfg.neighbor.is_ipv4()) {
            self.rx4 = Some(listener(Ipv4Addr::UNSPECIFIED.into())?);
        }
        if self.rx6.is_none() && self.peers.iter().any(|p| p.cfg.neighbor.is_ipv6()) {
            self.rx6 = Some(listener(Ipv6Addr::UNSPECIFIED.into())?);
        }
        Ok(())
    }

    /// Whether the session `name` is Up (None: no such session).
    pub fn up(&self, name: &str) -> Option<bool> {
        self.peers
            .iter()
            .find(|p| p.cfg.name == name)
            .map(|p| p.session.state() == State::Up)
    }

    /// The session's default weight and reverse flag.
    pub fn weight(&self, name: &str) -> (i32, bool) {
        self.peers
            .iter()
            .find(|p| p.cfg.name == name)
            .map_or((0, false), |p| (p.cfg.weight, p.cfg.reverse))
    }

    pub fn poll_timeout(&self) -> Option<Duration> {
        self.peers
            .iter()
            .flat_map(|p| [p.session.poll_timeout(), p.backstop_at])
            .chain([self.pacer.as_ref().and_then(|p| p.top_up_at)])
            .flatten()
            .min()
    }

    /// Whether a detection timer (or a backstop) is due at `now`, not only a packet to send.
    pub fn detection_due(&self, now: Duration) -> bool {
        self.peers
            .iter()
            .any(|p| p.session.detection_due(now) || p.backstop_at.is_some_and(|t| t <= now))
    }

    /// Timers due at `now`, the loop having woken `late`; true when a session went Up or
    /// left it.
    pub fn on_timeout(
        &mut self,
        now: Duration,
        late: Duration,
        mut kernel: Option<&mut Kernel>,
    ) -> bool {
        let mut changed = false;
        if self.pacer.is_none()
            && let Some(index) = kernel.as_deref().and_then(Kernel::pacer)
        {
            self.pacer = TokenSocket::open(index)
                .inspect_err(|e| warn!("BFD: the pacing socket: {e}; the agent sends"))
                .ok()
                .map(|socket| Pacer {
                    socket,
                    plan: Plan::default(),
                    top_up_at: None,
                    tokens: Vec::new(),
                    refused: 0,
                });
        }
        for peer in &mut self.peers {
            // The kernel's first frame is due: the agent's periodic packets stop.
            if let Some((_, from)) = peer.paced
                && from <= now
            {
                peer.session.hand_tx(true, now);
            }
            if peer.backstop_at.is_some_and(|t| t <= now) {
                peer.backstop_at = None;
                let key = peer.key();
                let absorbed = kernel.as_deref().and_then(|k| k.bfd_watch(key));
                // Nothing absorbed, nothing heard here: the peer fell silent before the
                // kernel's timer could start.
                if absorbed.is_some_and(|w| w.absorbed == 0 && w.detect_ns != 0) {
                    peer.session.expired(now, now);
                }
            }
            peer.session.stalled(now, late);
            if peer.session.poll_timeout().is_some_and(|t| t <= now) {
                peer.session.on_timeout(now);
            }
            changed |= Self::act(peer);
            Self::watch(peer, now, kernel.as_deref_mut());
            Self::pace(peer, self.pacer.as_mut(), now, kernel.as_deref_mut());
        }
        self.top_up(now);
        changed
    }

    /// Queues the tokens that carry the paced sessions to [`PACE_AHEAD`] from now, when due.
    fn top_up(&mut self, now: Duration) {
        let Some(pacer) = self.pacer.as_mut() else {
            return;
        };
        if pacer.plan.is_empty() {
            pacer.top_up_at = None;
            return;
        }
        if pacer.top_up_at.is_some_and(|t| t > now) {
            return;
        }
        pacer.top_up_at = Some(now + TOP_UP);
        pacer.tokens.clear();
        let peers = &mut self.peers;
        pacer.plan.fill(
            now,
            now + PACE_AHEAD,
            |discr| {
                peers
                    .iter_mut()
                    .find(|p| p.session.local_discr() == discr)
                    .map_or(TOP_UP, |p| p.session.next_gap())
            },
            &mut pacer.tokens,
        );
        let (refused, error) = pacer.socket.send(&pacer.tokens);
        if refused > 0 {
            let before = pacer.refused;
            pacer.refused += refused as u64;
            if (before + 1..=pacer.refused).any(u64::is_power_of_two) {
                warn!(
                    "BFD: tokens refused by the pacing interface: {refused} of {} ({error:?}; {} so far)",
                    pacer.tokens.len(),
                    pacer.refused
                );
            }
        }
    }

    /// Hands the periodic packets of a steady session to the kernel, or takes them back.
    fn pace(
        peer: &mut Peer,
        pacer: Option<&mut Pacer>,
        now: Duration,
        kernel: Option<&mut Kernel>,
    ) {
        let (Some(pacer), Some(kernel)) = (pacer, kernel) else {
            return;
        };
        let want = Self::paced_packet(peer);
        if want == peer.paced.map(|(control, _)| control) {
            return;
        }
        let Some(control) = want else {
            Self::unpace(peer, Some(pacer), now, Some(kernel));
            return;
        };
        let interval = peer.session.tx_interval().unwrap_or_default();
        if peer.paced.is_none() && !pacer.plan.fits(interval) {
            // As many as the pacing takes: this one stays with the agent.
            return;
        }
        // Where the peer's packets came from, as the kernel learnt it when it absorbed one.
        let Some(watch) = kernel.bfd_watch(peer.key()).filter(|w| w.ifindex != 0) else {
            return;
        };
        let (IpAddr::V4(neighbor), Some(SocketAddr::V4(local))) = (
            peer.cfg.neighbor,
            peer.tx.local_addr().ok().and_then(|a| a.as_socket()),
        ) else {
            return;
        };
        let tx = BfdTx {
            frame: frame(
                &watch.macs,
                *local.ip(),
                local.port(),
                neighbor,
                peer.cfg.ttl,
                &control,
            ),
            _pad: [0; 2],
            ifindex: watch.ifindex,
            sent: kernel.paced_bfd(peer.key()),
        };
        let from = match peer.paced {
            Some((_, from)) => from,
            None => {
                pacer.top_up_at = Some(now);
                pacer.plan.add(peer.session.local_discr(), interval, now)
            }
        };
        if let Err(e) = kernel.pace_bfd(peer.key(), tx) {
            warn!(bfd = %peer.cfg.name, "BFD: handing the transmission to the kernel: {e}");
            pacer.plan.remove(peer.session.local_discr());
            return;
        }
        peer.paced = Some((control, from));
    }

    /// Takes the periodic packets back from the kernel: the next goes at once.
    fn unpace(
        peer: &mut Peer,
        pacer: Option<&mut Pacer>,
        now: Duration,
        kernel: Option<&mut Kernel>,
    ) {
        if peer.paced.take().is_none() {
            return;
        }
        if let Some(pacer) = pacer {
            pacer.plan.remove(peer.session.local_discr());
        }
        if let Some(kernel) = kernel {
            match kernel.unpace_bfd(peer.key()) {
                Ok(sent) => peer.kernel_sent += sent,
                Err(e) => {
                    warn!(bfd = %peer.cfg.name, "BFD: taking the transmission back from the kernel: {e}")
                }
            }
        }
        peer.session.hand_tx(false, now);
    }

    /// The packet the kernel may send for this session: steady and watched by the kernel
    /// (which learns the interface and MACs from the peer's packets), IPv4, without
    /// authentication, and fast enough for tokens to pay.
    fn paced_packet(peer: &Peer) -> Option<[u8; BFD_LEN]> {
        let s = &peer.session;
        peer.watched?;
        if !peer.cfg.neighbor.is_ipv4()
            || s.tx_interval()? > PACE_MAX_INTERVAL
            || s.config().password.is_some()
        {
            return None;
        }
        let packet = s.periodic();
        if packet.poll || packet.final_ {
            return None;
        }
        let mut bytes = Vec::with_capacity(BFD_LEN);
        packet.emit(&mut bytes);
        bytes.as_slice().try_into().ok()
    }

    /// The kernel saw these peers fall silent; true when a session left Up.
    pub fn on_expired(
        &mut self,
        expired: Vec<BfdExpired>,
        now: Duration,
        mut kernel: Option<&mut Kernel>,
    ) -> bool {
        let mut changed = false;
        for e in expired {
            let Some(peer) = self
                .peers
                .iter_mut()
                .find(|p| p.session.local_discr() == e.discr && p.watched.is_some())
            else {
                continue;
            };
            // Ran out in the kernel a detection time after the last packet, however long
            // the report took to reach us.
            let at = Duration::from_nanos(e.last_ns) + peer.session.detection_time();
            Self::unwatch(peer, now, kernel.as_deref_mut());
            peer.session.expired(at, now);
            changed |= Self::act(peer);
            Self::watch(peer, now, kernel.as_deref_mut());
            Self::pace(peer, self.pacer.as_mut(), now, kernel.as_deref_mut());
        }
        changed
    }

    /// Hands the session to the kernel while it is steady, takes it back when it is not.
    fn watch(peer: &mut Peer, now: Duration, kernel: Option<&mut Kernel>) {
        let Some(kernel) = kernel else { return };
        let want = Self::steady(peer);
        if want == peer.watched.map(|(w, _)| w) {
            return;
        }
        let key = peer.key();
        match want {
            Some(watch) => {
                Self::count_absorbed(peer, kernel);
                if let Err(e) = kernel.watch_bfd(key, watch) {
                    warn!(bfd = %peer.cfg.name, "BFD: handing the session to XDP: {e}");
                    return;
                }
                peer.watched = Some((watch, now));
                peer.session.delegate(true, now);
                let interval = peer.session.tx_interval().unwrap_or_default();
                peer.backstop_at = Some(now + peer.session.detection_time() + interval);
            }
            None => Self::unwatch(peer, now, Some(kernel)),
        }
    }

    /// Takes the detection back from the kernel.
    fn unwatch(peer: &mut Peer, now: Duration, kernel: Option<&mut Kernel>) {
        if peer.watched.is_none() {
            return;
        }
        peer.session.delegate(false, now);
        peer.backstop_at = None;
        if let Some(kernel) = kernel {
            Self::count_absorbed(peer, kernel);
            let key = peer.key();
            if let Err(e) = kernel.unwatch_bfd(key) {
                warn!(bfd = %peer.cfg.name, "BFD: taking the session back from XDP: {e}");
            }
        }
        peer.watched = None;
    }

    fn count_absorbed(peer: &mut Peer, kernel: &Kernel) {
        let key = peer.key();
        if peer.watched.is_some() {
            peer.absorbed += kernel.bfd_watch(key).map_or(0, |w| w.absorbed);
        }
    }

    /// What the kernel may absorb for this session: Up, no Poll Sequence of ours, the peer's
    /// last packet Up without Poll, Final or authentication.
    fn steady(peer: &Peer) -> Option<BfdWatch> {
        let s = &peer.session;
        let raw = peer.last_packet?;
        let steady_packet = raw[1] >> 6 == State::Up as u8 && raw[1] & 0x34 == 0;
        if peer.kernel_blind || s.state() != State::Up || s.polling() || !steady_packet {
            return None;
        }
        let (peer_addr, family) = match peer.cfg.neighbor {
            IpAddr::V4(a) => (ha_common::vrrp::addr16(&a.octets()), 4),
            IpAddr::V6(a) => (a.octets(), 6),
        };
        Some(BfdWatch {
            expect: raw,
            peer: peer_addr,
            family,
            min_ttl: peer.cfg.ttl.saturating_sub(peer.cfg.max_hops),
            detect_ns: u64::try_from(s.detection_time().as_nanos()).unwrap_or(u64::MAX),
            detect_mult: s.remote_mult(),
            ..BfdWatch::default()
        })
    }

    /// The sessions whose peer fell silent since the last call: name, neighbour and when.
    pub fn take_lost(&mut self) -> Vec<(String, IpAddr, Duration)> {
        self.peers
            .iter_mut()
            .filter_map(|p| Some((p.cfg.name.clone(), p.cfg.neighbor, p.lost_at.take()?)))
            .collect()
    }

    /// At exit: AdminDown to every peer, so that theirs go Down at once.
    pub fn stop(&mut self, now: Duration, mut kernel: Option<&mut Kernel>) {
        for peer in &mut self.peers {
            Self::unpace(peer, self.pacer.as_mut(), now, kernel.as_deref_mut());
            Self::unwatch(peer, now, kernel.as_deref_mut());
            peer.session.admin_down(now);
            Self::act(peer);
        }
    }

    /// Until a packet waits on either socket.
    pub async fn readable(&self) {
        async fn ready(fd: Option<&AsyncFd<Socket>>) {
            match fd {
                Some(fd) => match fd.readable().await {
                    Ok(mut guard) => guard.clear_ready(),
                    Err(e) => {
                        warn!("BFD: waiting for packets: {e}");
                        std::future::pending::<()>().await;
                    }
                },
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = ready(self.rx4.as_ref()) => {}
            () = ready(self.rx6.as_ref()) => {}
        }
    }

    /// Reads every packet waiting; true when a session went Up or left it.
    pub fn drain(&mut self, now: Duration, mut kernel: Option<&mut Kernel>) -> bool {
        let mut changed = false;
        for v6 in [false, true] {
            while let (false, Some(fd), _) | (true, _, Some(fd)) = (v6, &self.rx4, &self.rx6) {
                match recv_with_ttl(fd.get_ref(), &mut self.buf) {
                    Ok((n, from, ttl)) => {
                        let Some(bytes) = self.buf.get(..n) else {
                            break;
                        };
                        let raw = bytes.first_chunk::<BFD_LEN>().copied();
                        let packet = Control::parse(bytes);
                        changed |=
                            self.on_packet(now, from, ttl, raw, packet, kernel.as_deref_mut());
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        warn!("BFD: receiving: {e}");
                        break;
                    }
                }
            }
        }
        changed
    }

    fn on_packet(
        &mut self,
        now: Duration,
        from: IpAddr,
        ttl: u8,
        raw: Option<[u8; BFD_LEN]>,
        packet: Result<Control, Malformed>,
        kernel: Option<&mut Kernel>,
    ) -> bool {
        let p = match packet {
            Ok(p) => p,
            Err(m) => {
                *self.malformed.entry(m.as_str()).or_default() += 1;
                return false;
            }
        };
        let found = if p.your_discr != 0 {
            self.peers
                .iter_mut()
                .find(|peer| peer.session.local_discr() == p.your_discr)
        } else {
            self.peers.iter_mut().find(|peer| peer.cfg.neighbor == from)
        };
        let Some(peer) = found else {
            self.unmatched += 1;
            return false;
        };
        if u16::from(ttl) + u16::from(peer.cfg.max_hops) < u16::from(peer.cfg.ttl) {
            self.ttl += 1;
            return false;
        }
        if let Some((watch, since)) = peer.watched
            && raw == Some(watch.expect)
            && now.saturating_sub(since) > 2 * peer.session.detection_time()
            && !peer.kernel_blind
            && kernel
                .as_deref()
                .and_then(|k| k.bfd_watch(peer.key()))
                .is_some_and(|w| w.detect_ns != 0)
        {
            // A packet the kernel would have absorbed, still absorbing and long after it
            // was told to: it does not see this session's packets.
            peer.kernel_blind = true;
            info!(bfd = %peer.cfg.name, "BFD: the XDP program does not see this session's packets; detection stays in the agent");
        }
        if peer.session.on_packet(now, &p).is_ok() && p.password.is_none() {
            peer.last_packet = raw;
        }
        let changed = Self::act(peer);
        let mut kernel = kernel;
        Self::watch(peer, now, kernel.as_deref_mut());
        Self::pace(peer, self.pacer.as_mut(), now, kernel);
        changed
    }

    /// Carries out what the session asks; true when it went Up or left it.
    fn act(peer: &mut Peer) -> bool {
        let mut changed = false;
        let mut bytes = Vec::with_capacity(MAX_LEN);
        while let Some(action) = peer.session.poll_action() {
            match action {
                Action::Send(p) => {
                    p.emit(&mut bytes);
                    if let Err(e) = peer.tx.send(&bytes) {
                        peer.send_errors += 1;
                        if peer.send_errors.is_power_of_two() {
                            warn!(bfd = %peer.cfg.name, "BFD: sending: {e} ({} errors)", peer.send_errors);
                        }
                    }
                }
                Action::Changed { from, to, diag, at } => {
                    // Leaving Up, the last change was the one to Up.
                    let up_for = at.saturating_sub(peer.changed_at);
                    peer.changed_at = at;
                    if from == State::Up {
                        peer.downs += 1;
                        // A peer that said AdminDown or Down is alive: only silence is a
                        // failure (RFC 5880 §3.2), and only after a stable session.
                        let stable = up_for >= TRUSTED_AFTER;
                        if diag == crate::bfd::Diag::DetectionTimeExpired && stable {
                            peer.lost_at = Some(at);
                        }
                        warn!(bfd = %peer.cfg.name, neighbor = %peer.cfg.neighbor, %from, %to, diag = diag.as_str(), "BFD session left Up");
                    } else {
                        info!(bfd = %peer.cfg.name, neighbor = %peer.cfg.neighbor, %from, %to, diag = diag.as_str(), "BFD session state");
                    }
                    changed |= from == State::Up || to == State::Up;
                }
            }
        }
        changed
    }

    pub fn status(&self, now: Duration, kernel: Option<&Kernel>) -> Vec<BfdStatus> {
        self.peers
            .iter()
            .map(|p| {
                let s = &p.session;
                let now_absorbing = p
                    .watched
                    .and(kernel)
                    .and_then(|k| k.bfd_watch(p.key()))
                    .map_or(0, |w| w.absorbed);
                BfdStatus {
                    name: p.cfg.name.clone(),
                    neighbor: p.cfg.neighbor.to_string(),
                    state: s.state().as_str().to_owned(),
                    remote_state: s.remote_state().as_str().to_owned(),
                    diag: s.diag().as_str().to_owned(),
                    local_discriminator: s.local_discr(),
                    remote_discriminator: s.remote_discr(),
                    tx_interval_ms: s.tx_interval().map(|d| d.as_secs_f64() * 1e3),
                    detection_time_ms: s.detection_time().as_secs_f64() * 1e3,
                    received: s.stats.received,
                    sent: s.stats.sent,
                    discarded: s.stats.discarded,
                    send_errors: p.send_errors,
                    state_changes: s.stats.state_changes,
                    downs: p.downs,
                    in_kernel: p.watched.is_some(),
                    absorbed: p.absorbed + now_absorbing,
                    tx_in_kernel: p.paced.is_some(),
                    sent_by_kernel: p.kernel_sent
                        + p.paced.and(kernel).map_or(0, |k| k.paced_bfd(p.key())),
                    since_s: now.saturating_sub(p.changed_at).as_secs_f64(),
                }
            })
            .collect()
    }

    /// Packets dropped before a session saw them, by reason.
    pub fn dropped(&self) -> HashMap<String, u64> {
        let mut dropped: HashMap<String, u64> = self
            .malformed
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        dropped.insert("unmatched".into(), self.unmatched);
        dropped.insert("ttl".into(), self.ttl);
        dropped
    }
}

/// A control packet to `neighbor` as a whole frame: Ethernet (`macs` as the peer's packets
/// carried them: to us, from it), IPv4 with CS6 and `ttl`, UDP from `port`, checksums done.
fn frame(
    macs: &[u8; 12],
    source: Ipv4Addr,
    port: u16,
    neighbor: Ipv4Addr,
    ttl: u8,
    control: &[u8; BFD_LEN],
) -> [u8; BFD_FRAME_LEN] {
    use crate::vrrp::packet::checksum_as;
    const UDP: u8 = 17;
    let [s0, s1, s2, s3] = source.octets();
    let [d0, d1, d2, d3] = neighbor.octets();
    let [l0, l1] = ((20 + 8 + BFD_LEN) as u16).to_be_bytes();
    // Don't Fragment; identification 0 (RFC 6864: an atomic datagram).
    let ip = |[c0, c1]: [u8; 2]| {
        [
            0x45,
            TOS_CS6 as u8,
            l0,
            l1,
            0,
            0,
            0x40,
            0,
            ttl,
            UDP,
            c0,
            c1,
            s0,
            s1,
            s2,
            s3,
            d0,
            d1,
            d2,
            d3,
        ]
    };
    let udp = |sum: u16| {
        [
            &port.to_be_bytes()[..],
            &CONTROL_PORT.to_be_bytes(),
            &((8 + BFD_LEN) as u16).to_be_bytes(),
            &sum.to_be_bytes(),
            control,
        ]
        .concat()
    };
    let ip = ip(checksum_as(0, &ip([0, 0]), None).to_be_bytes());
    let udp = udp(
        match checksum_as(UDP, &udp(0), Some((source.into(), neighbor.into()))) {
            0 => 0xffff,
            sum => sum,
        },
    );
    let (ours, theirs) = macs.split_at(6);
    [theirs, ours, &0x0800u16.to_be_bytes(), &ip, &udp]
        .concat()
        .try_into()
        .unwrap_or([0; BFD_FRAME_LEN])
}

/// One datagram: its length, sender and TTL (hop limit); 0 when the kernel gave none.
fn recv_with_ttl(socket: &Socket, buf: &mut [u8]) -> io::Result<(usize, IpAddr, u8)> {
    use nix_hoplimit::sys::socket::{
        ControlMessageOwned as Cmsg, MsgFlags, SockaddrStorage, recvmsg,
    };
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix_hoplimit::cmsg_space!(libc::c_int);
    let msg = recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT,
    )?;
    let mut ttl = 0u8;
    for cmsg in msg.cmsgs()? {
        match cmsg {
            Cmsg::Ipv4Ttl(t) => ttl = u8::try_from(t).unwrap_or(0),
            Cmsg::Ipv6HopLimit(h) => ttl = u8::try_from(h).unwrap_or(0),
            _ => {}
        }
    }
    let from = msg.address.and_then(|a| {
        a.as_sockaddr_in()
            .map(|s| IpAddr::V4(s.ip()))
            .or_else(|| a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())))
    });
    let from = from.ok_or_else(|| io::Error::other("a datagram without a sender"))?;
    Ok((msg.bytes, from, ttl))
}
