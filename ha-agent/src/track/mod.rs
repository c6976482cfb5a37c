//! Health checks (`vrrp_script`): a sans-IO tracker per script (rise/fall, init_fail), what a
//! `track_file` value does (file.rs), which processes a `vrrp_track_process` counts and its
//! quorum (process.rs), and the process runner that executes the scripts beside the advert
//! loop.

pub mod check;
pub mod file;
pub mod process;
pub mod runner;
