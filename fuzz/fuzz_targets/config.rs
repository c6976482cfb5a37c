//! The configuration loader on a tree of files held in memory: the input is split at NUL
//! bytes into /etc/ka/0.conf (the main file), 1.conf, ..., which may include each other.
#![no_main]

use std::path::{Path, PathBuf};

use ha_agent::config::{Memory, load_from};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let files = Memory(
        data.split(|b| *b == 0)
            .enumerate()
            .map(|(i, bytes)| (PathBuf::from(format!("/etc/ka/{i}.conf")), bytes.to_vec()))
            .collect(),
    );
    if let Ok(loaded) = load_from(&files, Path::new("/etc/ka/0.conf")) {
        for d in loaded.diagnostics.iter() {
            let _ = d.to_string();
        }
    }
});
