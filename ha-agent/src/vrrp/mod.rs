//! VRRP: the wire codec, the receive checks and the sans-IO state machine.

pub mod fsm;
pub mod packet;
pub mod receive;
pub mod sync_group;

pub use packet::Family;

/// The protocol version an instance speaks: RFC 3768 (VRRPv2) or RFC 5798 (VRRPv3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    V2,
    V3,
}

impl Version {
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}
