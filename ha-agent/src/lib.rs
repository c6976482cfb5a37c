//! ha-agent: a VRRP high-availability agent with an XDP fast path.
//!
//! The library holds everything the `ha-agent` binary is made of, so integration tests can
//! drive the same code.

// Input from the network, a configuration file or a client must never panic.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod bfd;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod db;
pub mod net;
pub mod preflight;
pub mod track;
pub mod vrrp;
pub mod witness;
pub mod xdp;
