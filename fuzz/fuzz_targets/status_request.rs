//! The status socket's request parser.
#![no_main]

use ha_agent::ctl::parse_request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = parse_request(bytes);
});
