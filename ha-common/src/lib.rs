//! Types shared by the XDP program (`ha-ebpf`) and the agent (`ha-agent`).
//!
//! Everything here is `#[repr(C)]`, `Copy`, free of implicit padding and valid for every bit
//! pattern, so the kernel and user space read the same bytes. With the `user` feature the
//! types implement `aya::Pod` so user space can read them from BPF maps.
#![no_std]

pub mod bfd;
pub mod classify;
pub mod process;
pub mod tx;
pub mod vrrp;
