//! Whether interfaces are usable (administratively up, with carrier), from rtnetlink link
//! events: no polling, and the loop hears of a pulled cable at once.

use futures::StreamExt as _;
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::{
    RouteNetlinkMessage,
    link::{LinkAttribute, LinkFlags},
};
use netlink_sys::{AsyncSocket as _, SocketAddr};
use nix::{ifaddrs::getifaddrs, net::if_::InterfaceFlags};
use tokio::sync::mpsc;

const RTMGRP_LINK: u32 = 1;

/// An interface came up (`true`) or went down.
pub type LinkEvent = (String, bool);

/// Subscribes to link changes; every change of any interface arrives on the channel.
pub fn watch() -> std::io::Result<mpsc::UnboundedReceiver<LinkEvent>> {
    let (mut connection, _handle, mut messages) = rtnetlink::new_connection()?;
    connection
        .socket_mut()
        .socket_mut()
        .bind(&SocketAddr::new(0, RTMGRP_LINK))?;
    tokio::spawn(connection);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some((message, _)) = messages.next().await {
            let (link, exists) = match message.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => (link, true),
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => (link, false),
                _ => continue,
            };
            let name = link.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(name) => Some(name.clone()),
                _ => None,
            });
            let up = exists
                && link
                    .header
                    .flags
                    .contains(LinkFlags::Up | LinkFlags::Running);
            if let Some(name) = name
                && tx.send((name, up)).is_err()
            {
                return;
            }
        }
    });
    Ok(rx)
}

/// The current state of `name` (false if it does not exist).
pub fn is_up(name: &str) -> bool {
    getifaddrs().is_ok_and(|mut addrs| {
        addrs.any(|a| {
            a.interface_name == name
                && a.flags
                    .contains(InterfaceFlags::IFF_UP | InterfaceFlags::IFF_RUNNING)
        })
    })
}
