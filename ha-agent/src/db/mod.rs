//! Replication supervision of a MySQL/MariaDB dual-master pair: health checks, the
//! promotion gate, demotion, switchover and `db setup`. The judgements (GTID comparisons,
//! what a status row means, anti-flap) are plain functions tested on recorded output; the
//! client glue runs each statement with a timeout.

pub mod antiflap;
pub mod client;
pub mod gtid;
pub mod health;
pub mod pair;
pub mod setup;
