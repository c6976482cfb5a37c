//! Password files a configuration names.

use std::path::Path;

/// A password file's first line (a trailing newline is not part of the password).
pub fn read_secret(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("password file {}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() {
        return Err(format!("password file {} is empty", path.display()));
    }
    Ok(line.to_owned())
}
