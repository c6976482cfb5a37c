//! What the agent needs to know about an interface.

use std::net::IpAddr;

use crate::vrrp::Family;

use nix::{ifaddrs::getifaddrs, net::if_::if_nametoindex};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
    /// IPv4 and IPv6 addresses in the kernel's order (primary addresses first).
    pub addrs: Vec<IpAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("interface {0} does not exist")]
    Missing(String),
    #[error("listing interface addresses: {0}")]
    Sys(#[from] nix::Error),
}

impl Link {
    pub fn lookup(name: &str) -> Result<Self, LinkError> {
        let index = if_nametoindex(name).map_err(|_| LinkError::Missing(name.to_owned()))?;
        let mut link = Link {
            name: name.to_owned(),
            index,
            mac: [0; 6],
            addrs: Vec::new(),
        };
        for ifaddr in getifaddrs()?.filter(|a| a.interface_name == name) {
            let Some(address) = ifaddr.address else {
                continue;
            };
            if let Some(ll) = address.as_link_addr() {
                if let Some(mac) = ll.addr() {
                    link.mac = mac;
                }
            } else if let Some(v4) = address.as_sockaddr_in() {
                link.addrs.push(v4.ip().into());
            } else if let Some(v6) = address.as_sockaddr_in6() {
                link.addrs.push(v6.ip().into());
            }
        }
        Ok(link)
    }

    /// The address adverts of `family` are sent from: the first IPv4 address that is not a
    /// VIP; the IPv6 link-local address (RFC 5798 §5.1.2.1).
    pub fn primary_ip(&self, family: Family, vips: &[IpAddr]) -> Option<IpAddr> {
        self.addrs.iter().copied().find(|a| match (family, a) {
            (Family::V4, IpAddr::V4(_)) => !vips.contains(a),
            (Family::V6, IpAddr::V6(v6)) => v6.is_unicast_link_local() && !vips.contains(a),
            _ => false,
        })
    }
}

pub fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
