//! Wireshark's dissectors (tshark) as an independent judge of what goes on the wire: a
//! captured frame is written to a pcap file and read back field by field.

use std::{path::Path, process::Command};

/// The values tshark reads for `fields` in the Ethernet `frame`, in order ("" for a field it
/// did not find). The pcap file is left in `dir` for a failing test's reader.
pub fn fields(dir: &Path, name: &str, frame: &[u8], fields: &[&str]) -> Vec<String> {
    let len = u32::try_from(frame.len()).expect("a frame");
    let mut pcap = Vec::with_capacity(40 + frame.len());
    // Global header: microsecond timestamps, version 2.4, snap length 65535, Ethernet.
    pcap.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    pcap.extend_from_slice(&2u16.to_le_bytes());
    pcap.extend_from_slice(&4u16.to_le_bytes());
    for word in [0u32, 0, 65535, 1] {
        pcap.extend_from_slice(&word.to_le_bytes());
    }
    // One record at time zero.
    for word in [0u32, 0, len, len] {
        pcap.extend_from_slice(&word.to_le_bytes());
    }
    pcap.extend_from_slice(frame);
    let path = dir.join(format!("{name}.pcap"));
    std::fs::write(&path, pcap).expect("writing the pcap file");
    let mut command = Command::new("tshark");
    command
        .arg("-r")
        .arg(&path)
        .args(["-T", "fields", "-E", "separator=|"]);
    for field in fields {
        command.args(["-e", field]);
    }
    let out = command
        .output()
        .expect("running tshark (cargo xtask setup installs it)");
    assert!(
        out.status.success(),
        "tshark -r {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or_default();
    line.split('|').map(str::to_owned).collect()
}
