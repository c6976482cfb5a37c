//! keepalived.conf: lexer → block tree → typed [`Config`], with diagnostics carrying
//! `file:line`. Unknown keywords are warnings; values that cannot work are errors.

mod diag;
mod host;
mod lexer;
mod model;
mod tree;

use std::path::Path;

pub use diag::{Diagnostic, Diagnostics, Loc, Severity};
pub use model::*;

/// A parsed configuration and everything worth telling the user about it.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub diagnostics: Diagnostics,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
pub struct ReadError {
    pub path: String,
    pub source: std::io::Error,
}

/// Reads and checks `path` (and what it includes), and that the scripts it names and the
/// users they run as exist on this host.
pub fn load(path: &Path) -> Result<Loaded, ReadError> {
    let mut diagnostics = Diagnostics::default();
    let tokens = lexer::lex_file(path, &mut diagnostics).map_err(|source| ReadError {
        path: path.display().to_string(),
        source,
    })?;
    let nodes = tree::parse(&tokens, &mut diagnostics);
    let config = model::build(&nodes, &mut diagnostics);
    host::check(&config, &mut diagnostics);
    Ok(Loaded {
        config,
        diagnostics,
    })
}

/// Parses configuration text as if it were the file `name` (for tests and tools).
pub fn parse_str(text: &str, name: &str) -> Loaded {
    let mut diagnostics = Diagnostics::default();
    let mut tokens = Vec::new();
    let file = std::sync::Arc::new(std::path::PathBuf::from(name));
    lexer::lex_text(text, file, 0, &mut tokens, &mut diagnostics);
    let nodes = tree::parse(&tokens, &mut diagnostics);
    let config = model::build(&nodes, &mut diagnostics);
    Loaded {
        config,
        diagnostics,
    }
}

#[cfg(test)]
mod tests;
