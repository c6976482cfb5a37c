//! The XDP program as the daemon uses it: attached to every instance's interface, its
//! `VRIDS` map kept equal to the configuration (so it drops invalid adverts for our VRIDs
//! before the stack sees them), and its counters and peer table shown in the status. Valid
//! adverts still reach the advert sockets.

use std::collections::{BTreeMap, HashMap, HashSet};

use ha_common::vrrp::{AUTH_NONE, AUTH_PASS, VridConfig, VridKey};
use tracing::{info, warn};

use crate::{
    config::{Version, VrrpInstance},
    ctl::status::{XdpPeer, XdpStatus},
    net::link::Link,
    xdp::{Want, XdpError, XdpProgram},
};

/// `run --xdp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Native, else generic, else none (with a warning that says why).
    Auto,
    Native,
    Generic,
    Off,
}

pub struct Kernel {
    program: XdpProgram,
    want: Want,
    vrids: HashSet<VridKey>,
    /// ifindex → interface name, for the status.
    names: HashMap<u32, String>,
}

impl Kernel {
    /// Loads and attaches the program for `instances`. `Ok(None)`: running without XDP
    /// (`off`, or `auto` when the kernel refuses; the warning says why).
    pub fn start(choice: Choice, instances: &[VrrpInstance]) -> Result<Option<Self>, XdpError> {
        let want = match choice {
            Choice::Off => {
                info!("XDP off (--xdp off): adverts are checked on the advert sockets only");
                return Ok(None);
            }
            Choice::Auto => Want::Any,
            Choice::Native => Want::Native,
            Choice::Generic => Want::Generic,
        };
        let started = XdpProgram::load().and_then(|program| {
            let mut kernel = Self {
                program,
                want,
                vrids: HashSet::new(),
                names: HashMap::new(),
            };
            kernel.configure(instances)?;
            Ok(kernel)
        });
        match started {
            Ok(kernel) => Ok(Some(kernel)),
            Err(e) if choice == Choice::Auto => {
                warn!("XDP not used ({e}): adverts are checked on the advert sockets only");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Attaches to interfaces not seen before and makes `VRIDS` what `instances` expect.
    pub fn configure(&mut self, instances: &[VrrpInstance]) -> Result<(), XdpError> {
        let mut wanted = HashMap::new();
        for inst in instances {
            // An instance whose interface is missing is reported by the daemon itself.
            let Ok(link) = Link::lookup(&inst.interface) else {
                continue;
            };
            if !self.names.contains_key(&link.index) {
                let mode = self.program.attach_as(&inst.interface, self.want)?;
                info!(interface = %inst.interface, mode = mode.as_str(), "XDP attached");
                self.names.insert(link.index, inst.interface.clone());
            }
            let key = VridKey {
                ifindex: link.index,
                vrid: u32::from(inst.vrid),
            };
            wanted.insert(key, expected(inst));
        }
        for stale in self.vrids.difference(&wanted.keys().copied().collect()) {
            self.program.remove_vrid(*stale)?;
        }
        for (key, config) in &wanted {
            self.program.configure_vrid(*key, *config)?;
        }
        self.vrids = wanted.into_keys().collect();
        Ok(())
    }

    pub fn status(&self) -> XdpStatus {
        let name = |ifindex: u32| {
            self.names
                .get(&ifindex)
                .cloned()
                .unwrap_or_else(|| format!("ifindex {ifindex}"))
        };
        let mut verdicts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for (ifindex, verdict, n) in self.program.verdicts().unwrap_or_default() {
            verdicts
                .entry(name(ifindex))
                .or_default()
                .insert(verdict.name().to_owned(), n);
        }
        let now_ns = crate::daemon::now().as_nanos() as u64;
        let mut peers: Vec<XdpPeer> = self
            .program
            .peers()
            .unwrap_or_default()
            .into_iter()
            .map(|(key, peer)| XdpPeer {
                interface: name(key.ifindex),
                vrid: key.vrid as u8,
                master: std::net::Ipv4Addr::from(peer.master).to_string(),
                priority: peer.priority,
                interval_cs: peer.interval_cs,
                adverts: peer.adverts,
                last_seen_ms_ago: now_ns.saturating_sub(peer.last_seen_ns) as f64 / 1e6,
            })
            .collect();
        peers.sort_by(|a, b| (&a.interface, a.vrid).cmp(&(&b.interface, b.vrid)));
        XdpStatus {
            attached: self
                .program
                .attached()
                .iter()
                .map(|(interface, mode)| (interface.clone(), mode.as_str().to_owned()))
                .collect(),
            verdicts,
            peers,
        }
    }
}

/// What the kernel checks adverts for `inst` against.
fn expected(inst: &VrrpInstance) -> VridConfig {
    VridConfig {
        version: inst.version.number(),
        auth_type: if inst.auth_pass.is_some() {
            AUTH_PASS
        } else {
            AUTH_NONE
        },
        interval_s: match inst.version {
            Version::V2 => u8::try_from(inst.advert_int_cs / 100).unwrap_or(u8::MAX),
            Version::V3 => 0,
        },
        auth: inst.auth_pass.unwrap_or_default(),
        ..Default::default()
    }
}
