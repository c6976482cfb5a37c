//! What the agent needs to know about an interface.

use std::net::Ipv4Addr;

use nix::{ifaddrs::getifaddrs, net::if_::if_nametoindex};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
    /// IPv4 addresses in the kernel's order (primary addresses first).
    pub addrs: Vec<Ipv4Addr>,
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
                link.addrs.push(v4.ip());
            }
        }
        Ok(link)
    }

    /// The address adverts are sent from: the first one that is not a VIP.
    pub fn primary_ip(&self, vips: &[Ipv4Addr]) -> Option<Ipv4Addr> {
        self.addrs.iter().copied().find(|a| !vips.contains(a))
    }
}

pub fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
