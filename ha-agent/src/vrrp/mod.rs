//! VRRP: the wire codec, the receive checks and the sans-IO state machine.

pub mod fsm;
pub mod packet;
pub mod receive;
