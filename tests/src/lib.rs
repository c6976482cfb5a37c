//! Test harness for ha-agent's end-to-end tests: real network namespaces joined by a bridge,
//! real processes inside them, and waits with deadlines.
//!
//! Everything a test creates is named with a per-run prefix (`hat-<pid>-<n>`) and removed when
//! the [`Topology`] is dropped, also while a failed test unwinds. Namespaces that a killed
//! run left behind (their pid is gone) are removed when the next topology is built.

pub mod cable;
pub mod capture;
pub mod daemons;
pub mod etcd;
pub mod frr;
pub mod http;
pub mod mariadb;
pub mod topology;
pub mod tshark;
pub mod wait;

pub use daemons::{Daemon, Kind, VrrpConf};
pub use topology::{Host, Process, Topology};
pub use wait::wait_until;
