//! `cargo xtask bench failover|flood|steady|switchover|bfd`: ha-agent and keepalived side by side, in one run,
//! on the same namespace topology (method: docs/benchmarks.md).

pub mod bfd;
pub mod database;
mod failover;
mod flood;
pub mod report;
mod steady;
mod switchover;
pub mod witness_cost;

use std::{path::Path, time::Duration};

use anyhow::{Result, bail};
use ha_tests::{
    Daemon, Host, VrrpConf,
    daemons::{master_down_interval, skew_time},
    wait::poll_until,
};

pub use database::{DbCase, run as database, semi_sync};
pub use failover::{run as failover, witness};
pub use flood::run as flood;
pub use steady::run as steady;
pub use switchover::run as switchover;

/// The implementation under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Impl {
    Keepalived,
    /// ha-agent on sockets (`--xdp off`; the default before `auto`).
    HaAgent,
    /// ha-agent with `--xdp native`.
    HaAgentXdp,
    /// ha-agent as installed: no flags (`--xdp auto`).
    HaAgentDefault,
}

impl Impl {
    /// keepalived, ha-agent on sockets and ha-agent with its XDP program.
    pub const ALL: [Impl; 3] = [Impl::Keepalived, Impl::HaAgent, Impl::HaAgentXdp];

    pub fn name(self) -> &'static str {
        match self {
            Impl::Keepalived => "keepalived",
            Impl::HaAgent => "ha-agent --xdp off",
            Impl::HaAgentXdp => "ha-agent --xdp native",
            Impl::HaAgentDefault => "ha-agent (default: --xdp auto)",
        }
    }

    pub fn start(self, host: &Host, dir: &Path, config: &str, binary: &Path) -> Daemon {
        self.start_args(host, dir, config, binary, &[])
    }

    /// [`Impl::start`] with extra arguments for ha-agent's `run`.
    pub fn start_args(
        self,
        host: &Host,
        dir: &Path,
        config: &str,
        binary: &Path,
        args: &[&str],
    ) -> Daemon {
        match self {
            Impl::Keepalived => Daemon::keepalived(host, dir, config),
            Impl::HaAgentDefault => Daemon::agent_args(host, dir, config, binary, args),
            Impl::HaAgent | Impl::HaAgentXdp => {
                let mode = if self == Impl::HaAgent {
                    "off"
                } else {
                    "native"
                };
                let args = [args, &["--xdp", mode]].concat();
                Daemon::agent_args(host, dir, config, binary, &args)
            }
        }
    }
}

/// A protocol setting: version and advertisement interval.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub version: u8,
    pub interval: Duration,
    /// As written in keepalived.conf.
    pub advert_int: &'static str,
}

impl Timing {
    pub const V2_1S: Timing = Timing {
        version: 2,
        interval: Duration::from_secs(1),
        advert_int: "1",
    };
    pub const V3_100MS: Timing = Timing {
        version: 3,
        interval: Duration::from_millis(100),
        advert_int: "0.1",
    };
    pub const V3_10MS: Timing = Timing {
        version: 3,
        interval: Duration::from_millis(10),
        advert_int: "0.01",
    };

    /// Skew_Time for `priority` (v2 always on a 1 s base).
    pub fn skew(self, priority: u8) -> Duration {
        skew_time(self.version, self.interval, priority)
    }

    pub fn master_down(self, priority: u8) -> Duration {
        master_down_interval(self.version, self.interval, priority)
    }

    pub fn conf(self, state: &'static str, priority: u8) -> VrrpConf {
        if self.version == 2 {
            VrrpConf::seed(state, priority)
        } else {
            VrrpConf::v3(state, priority, self.advert_int)
        }
    }
}

pub fn wait_for(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> bool,
) -> Result<Duration> {
    match poll_until(timeout, Duration::from_millis(5), || {
        condition().then_some(())
    }) {
        Some((_, took)) => Ok(took),
        None => bail!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// min / p50 / p99 / max of a sample (nearest rank).
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub min: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(values: &[f64]) -> Summary {
        let mut v = values.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        if v.is_empty() {
            return Summary {
                min: f64::NAN,
                p50: f64::NAN,
                p99: f64::NAN,
                max: f64::NAN,
            };
        }
        Summary {
            min: v[0],
            p50: rank(0.5),
            p99: rank(0.99),
            max: v[v.len() - 1],
        }
    }
}
