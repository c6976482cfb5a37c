//! One configured VRRP instance at run time: its state machine, the links and socket it
//! uses, and the execution of its actions.

use std::{collections::BTreeMap, net::Ipv4Addr, sync::Arc};

use tracing::{error, info, warn};

use super::{DaemonError, World};
use crate::{
    config::{Version, Vip, VrrpInstance},
    ctl::status::{InstanceStatus, Transition, unix_now},
    net::{
        advert_socket::AdvertSocket,
        garp::GarpSocket,
        link::{Link, mac_string},
    },
    vrrp::{
        fsm::{Action, Instance, Params, Received},
        packet::{self, Advert, ChecksumForm, DropReason, Expect, Interval, VRRP_GROUP_V4},
    },
};

/// Adverts of instances with the same key share one socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SocketKey {
    pub ifindex: u32,
    pub unicast_src: Option<Ipv4Addr>,
}

/// A VIP and the interface it lives on.
struct VipTarget {
    vip: Vip,
    ifindex: u32,
    mac: [u8; 6],
}

#[derive(Default)]
pub struct Stats {
    pub sent: u64,
    pub received: u64,
    pub dropped: BTreeMap<DropReason, u64>,
}

impl Stats {
    pub fn drop(&mut self, reason: DropReason) {
        *self.dropped.entry(reason).or_default() += 1;
    }
}

pub struct Running {
    pub cfg: VrrpInstance,
    pub fsm: Instance,
    pub socket_key: SocketKey,
    pub primary_ip: Ipv4Addr,
    pub stats: Stats,
    socket: Arc<AdvertSocket>,
    vips: Vec<VipTarget>,
    vips_held: bool,
    last_transition: Option<Transition>,
}

impl Running {
    /// Resolves interfaces and addresses, removes VIPs an earlier run left behind, and
    /// opens the socket. The state machine is not started.
    pub async fn prepare(cfg: VrrpInstance, world: &mut World) -> Result<Self, DaemonError> {
        let link = Link::lookup(&cfg.interface)
            .map_err(|e| DaemonError::Config(format!("{}: instance {}: {e}", cfg.loc, cfg.name)))?;
        let vip_addrs: Vec<Ipv4Addr> = cfg.vips.iter().map(|v| v.addr).collect();
        let primary_ip = cfg
            .unicast_src_ip
            .or_else(|| link.primary_ip(&vip_addrs))
            .ok_or_else(|| {
                DaemonError::Config(format!(
                    "{}: instance {}: interface {} has no IPv4 address to send adverts from",
                    cfg.loc, cfg.name, cfg.interface
                ))
            })?;
        let mut vips = Vec::new();
        for vip in &cfg.vips {
            let target_link = match &vip.dev {
                Some(dev) => Link::lookup(dev).map_err(|e| {
                    DaemonError::Config(format!("{}: VIP {}: {e}", cfg.loc, vip.addr))
                })?,
                None => link.clone(),
            };
            if target_link.addrs.contains(&vip.addr) {
                info!(instance = %cfg.name, vip = %vip.addr, "removing a VIP left behind by an earlier run");
                world.vips.remove(target_link.index, vip).await?;
            }
            vips.push(VipTarget {
                vip: vip.clone(),
                ifindex: target_link.index,
                mac: target_link.mac,
            });
        }
        let socket_key = SocketKey {
            ifindex: link.index,
            unicast_src: (!cfg.unicast_peers.is_empty()).then_some(primary_ip),
        };
        let socket = world.socket(socket_key, &cfg.interface)?;
        let fsm = Instance::new(Params {
            vrid: cfg.vrid,
            version: cfg.version,
            priority: cfg.priority,
            advert_int_cs: cfg.advert_int_cs,
            preempt: cfg.preempt,
            preempt_delay: cfg.preempt_delay,
            primary_ip,
            garp_delay: cfg.garp.delay,
            garp_refresh: cfg.garp.refresh,
        });
        info!(
            instance = %cfg.name, interface = %cfg.interface, vrid = cfg.vrid,
            priority = cfg.priority, version = cfg.version.number(), src = %primary_ip,
            mac = %mac_string(&link.mac), "instance ready"
        );
        Ok(Self {
            cfg,
            fsm,
            socket_key,
            primary_ip,
            stats: Stats::default(),
            socket,
            vips,
            vips_held: false,
            last_transition: None,
        })
    }

    fn interval(&self) -> Interval {
        match self.cfg.version {
            Version::V2 => Interval::Seconds((self.cfg.advert_int_cs / 100) as u8),
            Version::V3 => Interval::Centis(self.cfg.advert_int_cs),
        }
    }

    /// The instance-level receive checks.
    pub fn check(&self, advert: &Advert) -> Result<(), DropReason> {
        packet::check_advert(
            advert,
            &Expect {
                version: self.cfg.version.number(),
                interval: self.interval(),
                auth_pass: self.cfg.auth_pass.as_ref(),
            },
        )
    }

    pub fn receive(&mut self, at: std::time::Duration, from: Ipv4Addr, advert: &Advert) {
        let interval_cs = advert.interval.centis().min(u32::from(u16::MAX)) as u16;
        self.fsm.handle_advert(
            at,
            Received {
                from,
                priority: advert.priority,
                interval_cs,
            },
        );
    }

    /// Carries out every queued action, in order.
    pub async fn execute(&mut self, world: &World) {
        while let Some(action) = self.fsm.poll_action() {
            match action {
                Action::SendAdvert { priority } => self.send_advert(priority),
                Action::AddVips => {
                    for t in &self.vips {
                        if let Err(e) = world.vips.add(t.ifindex, &t.vip).await {
                            error!(instance = %self.cfg.name, "{e}");
                        }
                    }
                    self.vips_held = true;
                }
                Action::RemoveVips => {
                    for t in &self.vips {
                        if let Err(e) = world.vips.remove(t.ifindex, &t.vip).await {
                            error!(instance = %self.cfg.name, "{e}");
                        }
                    }
                    self.vips_held = false;
                }
                Action::SendGarp => self.send_garps(world),
                Action::Transition { from, to, reason } => {
                    info!(
                        instance = %self.cfg.name, vrid = self.cfg.vrid, %from, %to,
                        reason = %reason, "{}: {from} -> {to} ({reason})", self.cfg.name
                    );
                    self.last_transition = Some(Transition {
                        from: from.to_string(),
                        to: to.to_string(),
                        reason: reason.to_string(),
                        unix_time: unix_now(),
                    });
                }
            }
        }
    }

    fn send_advert(&mut self, priority: u8) {
        let advert = Advert {
            vrid: self.cfg.vrid,
            priority,
            interval: self.interval(),
            auth: match self.cfg.version {
                Version::V2 => Some(self.cfg.auth_pass.map_or((0, [0; 8]), |p| (1, p))),
                Version::V3 => None,
            },
            addrs: self.cfg.vips.iter().map(|v| v.addr).collect(),
        };
        let peers: &[Ipv4Addr] = if self.cfg.unicast_peers.is_empty() {
            &[VRRP_GROUP_V4]
        } else {
            &self.cfg.unicast_peers
        };
        let mut msg = Vec::with_capacity(64);
        for &dst in peers {
            msg.clear();
            advert.emit(&mut msg, ChecksumForm::PseudoHeader, self.primary_ip, dst);
            match self.socket.send(&msg, dst) {
                Ok(()) => self.stats.sent += 1,
                Err(e) => warn!(instance = %self.cfg.name, %dst, error = %e, "sending advert"),
            }
        }
    }

    fn send_garps(&self, world: &World) {
        let targets: Vec<(u32, [u8; 6], Ipv4Addr)> = self
            .vips
            .iter()
            .map(|t| (t.ifindex, t.mac, t.vip.addr))
            .collect();
        let garp = &self.cfg.garp;
        if garp.interval.is_zero() {
            for _ in 0..garp.repeat {
                garp_burst(&world.garp, &targets);
            }
            return;
        }
        // Paced bursts (vrrp_garp_interval) must not hold up the loop.
        let (socket, repeat, gap) = (world.garp.clone(), garp.repeat, garp.interval);
        tokio::spawn(async move {
            for i in 0..repeat {
                if i > 0 {
                    tokio::time::sleep(gap).await;
                }
                garp_burst(&socket, &targets);
            }
        });
    }

    pub fn status(&self) -> InstanceStatus {
        InstanceStatus {
            name: self.cfg.name.clone(),
            interface: self.cfg.interface.clone(),
            vrid: self.cfg.vrid,
            version: self.cfg.version.number(),
            state: self.fsm.state().to_string(),
            priority: self.fsm.priority(),
            configured_priority: self.cfg.priority,
            master: self.fsm.master().map(|ip| ip.to_string()),
            primary_ip: self.primary_ip.to_string(),
            vips: self
                .cfg
                .vips
                .iter()
                .map(|v| format!("{}/{}", v.addr, v.prefix))
                .collect(),
            vips_held: self.vips_held,
            advert_interval_ms: f64::from(self.cfg.advert_int_cs) * 10.0,
            master_down_interval_ms: self.fsm.master_down_interval().as_secs_f64() * 1000.0,
            adverts_sent: self.stats.sent,
            adverts_received: self.stats.received,
            adverts_dropped: self
                .stats
                .dropped
                .iter()
                .map(|(r, n)| (r.as_str().to_owned(), *n))
                .collect(),
            last_transition: self.last_transition.clone(),
        }
    }
}

/// One gratuitous ARP for each (interface, MAC, VIP).
fn garp_burst(socket: &GarpSocket, targets: &[(u32, [u8; 6], Ipv4Addr)]) {
    for &(ifindex, mac, addr) in targets {
        if let Err(e) = socket.send(ifindex, &mac, addr) {
            warn!(vip = %addr, error = %e, "sending gratuitous ARP");
        }
    }
}
