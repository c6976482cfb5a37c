//! ha-agent: a VRRP high-availability agent with an XDP fast path.
//!
//! The library holds everything the `ha-agent` binary is made of, so integration tests can
//! drive the same code.

pub mod config;
pub mod ctl;
pub mod daemon;
pub mod net;
pub mod vrrp;
pub mod xdp;
