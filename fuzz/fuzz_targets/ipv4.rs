//! The IP header parser (IPv4 and IPv6): never panics, and its payload lies within the packet.
#![no_main]

use ha_agent::vrrp::packet::IpHeader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|packet: &[u8]| {
    if let Ok(ip) = IpHeader::parse(packet) {
        assert!(ip.header_len >= 20 && ip.header_len <= ip.total_len);
        assert!(ip.total_len <= packet.len());
        assert_eq!(ip.payload(packet).len(), ip.total_len - ip.header_len);
    }
});
