//! What `check-config` and `run` check beyond the file itself: that the scripts and users it
//! names exist on this host, and (`check-config --peer`) that its weights work against the
//! peer's configuration. These look at the host and at trackers, so they sit above `config`.

mod host;
mod peer;

use std::path::Path;

use crate::config::{self, FileSystem, Loaded, ReadError};

pub use peer::compare as compare_with_peer;

/// Reads and checks `path` (and what it includes), and that the scripts it names and the
/// users they run as exist on this host. Unsupported keywords are errors unless allowed.
pub fn load(path: &Path, allow_unsupported: bool) -> Result<Loaded, ReadError> {
    let mut loaded = config::load_from(&FileSystem, path)?;
    if allow_unsupported {
        loaded.diagnostics.allow_unsupported();
    }
    host::check(&loaded.config, &mut loaded.diagnostics);
    Ok(loaded)
}

#[cfg(test)]
mod tests;
