//! Health checks (`vrrp_script`): a sans-IO tracker per script (rise/fall, init_fail) and
//! the process runner that executes the scripts beside the advert loop.

pub mod check;
pub mod runner;
