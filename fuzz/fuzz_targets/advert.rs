//! An IP packet through the receive step, as two instances (v2 with PASS, v3) would see
//! it; whatever is accepted must survive an emit/parse round trip.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use ha_agent::vrrp::{
    packet::{Advert, ChecksumForm, Expect, Interval, IpHeader},
    receive::{Target, receive},
};
use libfuzzer_sys::fuzz_target;

const VIPS: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(192, 168, 2, 200)),
    IpAddr::V4(Ipv4Addr::new(192, 168, 2, 201)),
];
const PASS: [u8; 8] = *b"1111\0\0\0\0";

fuzz_target!(|packet: &[u8]| {
    for (version, interval, auth_pass) in [
        (2, Interval::Seconds(1), Some(&PASS)),
        (3, Interval::Centis(100), None),
    ] {
        let result = receive(packet, |vrid| {
            (vrid == 107).then_some(Target {
                index: 0,
                primary_ip: Ipv4Addr::new(192, 168, 2, 10).into(),
                unicast: false,
                expect: Expect {
                    version,
                    interval,
                    auth_pass,
                    addrs: &VIPS,
                    skip_addr_check_from: None,
                    strict: false,
                    sources: None,
                },
            })
        });
        if let Ok(delivery) = result {
            assert_eq!(delivery.advert.vrid, 107);
            let ip = IpHeader::parse(packet).expect("a delivered packet has an IP header");
            for form in [ChecksumForm::Message, ChecksumForm::PseudoHeader] {
                let mut bytes = Vec::new();
                delivery.advert.emit(&mut bytes, form, ip.src, ip.dst);
                let (again, _) = Advert::parse(&bytes, ip.src, ip.dst).expect("emitted advert parses");
                assert_eq!(again, delivery.advert);
            }
        }
    }
});
