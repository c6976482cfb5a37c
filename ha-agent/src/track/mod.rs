//! Health checks (`vrrp_script`): a sans-IO tracker per script (rise/fall, init_fail), what a
//! `track_file` value does (file.rs), and
//! the process runner that executes the scripts beside the advert loop.

pub mod check;
pub mod file;
pub mod runner;
