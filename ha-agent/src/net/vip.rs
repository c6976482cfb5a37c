//! Adding and removing VIPs through rtnetlink.

use std::net::IpAddr;

use futures::TryStreamExt as _;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::Handle;

use crate::config::Vip;

#[derive(Debug, thiserror::Error)]
pub enum VipError {
    #[error("netlink connection: {0}")]
    Connect(std::io::Error),
    #[error("{op} {addr}/{prefix} on interface #{index}: {source}")]
    Netlink {
        op: &'static str,
        addr: IpAddr,
        prefix: u8,
        index: u32,
        source: rtnetlink::Error,
    },
}

pub struct Vips {
    handle: Handle,
}

const EEXIST: i32 = 17;
const EADDRNOTAVAIL: i32 = 99;

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

impl Vips {
    /// Opens a netlink connection, served by a task on the current tokio runtime.
    pub fn connect() -> Result<Self, VipError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(VipError::Connect)?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    /// The netlink handle, for the other changes of links (VMAC macvlans).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Adds `vip` on interface `index` (already present is fine). An IPv6 VIP skips
    /// duplicate address detection, as keepalived's do: the peer held it a moment ago, and a
    /// tentative address could not be used for a second or more.
    pub async fn add(&self, index: u32, vip: &Vip) -> Result<(), VipError> {
        let mut request = self.handle.address().add(index, vip.addr, vip.prefix);
        if vip.addr.is_ipv6() {
            request
                .message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        if let Some(label) = &vip.label {
            request
                .message_mut()
                .attributes
                .push(AddressAttribute::Label(label.clone()));
        }
        match request.execute().await {
            Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
            result => result.map_err(|source| self.error("adding", index, vip, source)),
        }
    }

    /// Removes `vip` from interface `index` (already absent is fine).
    pub async fn remove(&self, index: u32, vip: &Vip) -> Result<(), VipError> {
        let mut message = AddressMessage::default();
        message.header.family = match vip.addr {
            IpAddr::V4(_) => netlink_packet_route::AddressFamily::Inet,
            IpAddr::V6(_) => netlink_packet_route::AddressFamily::Inet6,
        };
        message.header.index = index;
        message.header.prefix_len = vip.prefix;
        // IPv4 names the address as local and peer; IPv6 as the address only.
        if vip.addr.is_ipv4() {
            message.attributes.push(AddressAttribute::Local(vip.addr));
        }
        message.attributes.push(AddressAttribute::Address(vip.addr));
        match self.handle.address().del(message).execute().await {
            Err(e) if errno(&e) == Some(EADDRNOTAVAIL) => Ok(()),
            result => result.map_err(|source| self.error("removing", index, vip, source)),
        }
    }

    /// Whether `addr` is configured on interface `index`.
    pub async fn present(&self, index: u32, addr: IpAddr) -> Result<bool, rtnetlink::Error> {
        let mut stream = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(addr)
            .execute();
        Ok(stream.try_next().await?.is_some())
    }

    fn error(&self, op: &'static str, index: u32, vip: &Vip, source: rtnetlink::Error) -> VipError {
        VipError::Netlink {
            op,
            addr: vip.addr,
            prefix: vip.prefix,
            index,
            source,
        }
    }
}
