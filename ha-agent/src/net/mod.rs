//! The world at the edges: advert sockets, VIPs through rtnetlink, gratuitous ARP, links.

pub mod advert_socket;
pub mod arp_watch;
pub mod garp;
pub mod link;
pub mod link_watch;
pub mod vip;
