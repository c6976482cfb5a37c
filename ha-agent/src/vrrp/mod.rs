//! VRRP: the wire codec and the sans-IO state machine.

pub mod fsm;
pub mod packet;
