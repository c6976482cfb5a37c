//! ha-agent's XDP program, the process tracepoints of `track_process` (process.rs), the
//! advert transmitter (tx.rs) and BFD's paced transmission (pace.rs).
//!
//! Fail open: every frame is passed. The program observes and counts; a frame it cannot
//! parse is counted as `Other` and passed, never aborted.
//!
//! Built for `bpfel-unknown-none` by ha-agent's build.rs. On the host the crate is an empty
//! binary, so `cargo clippy --workspace` works; `cargo xtask test` lints the real program
//! for the BPF target.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]

#[cfg(target_arch = "bpf")]
mod bfd;
#[cfg(target_arch = "bpf")]
mod pace;
#[cfg(target_arch = "bpf")]
mod process;
#[cfg(target_arch = "bpf")]
mod program;
#[cfg(target_arch = "bpf")]
mod tx;

#[cfg(not(target_arch = "bpf"))]
fn main() {}
