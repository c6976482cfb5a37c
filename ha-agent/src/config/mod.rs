//! keepalived.conf: lexer → block tree → typed [`Config`], with diagnostics carrying
//! `file:line`. Unknown keywords are warnings; values that cannot work are errors.

mod bfd;
mod build;
mod diag;
mod file;
mod garp_group;
mod global;
mod instance;
mod keywords;
mod lexer;
mod replication;
mod routes;
mod script;
mod secret;
mod sync_group;
mod track_file;
mod track_process;
mod tree;
mod witness;

use std::path::Path;

pub use bfd::BfdInstance;
pub use diag::{Diagnostic, Diagnostics, Loc, MAX_DIAGNOSTICS, Severity};
pub use file::Config;
pub use garp_group::GarpGroup;
pub use global::{GarpParams, GlobalDefs, NotifyFifo};
pub use instance::{
    InitialState, NotifyScripts, TrackInterface, TrackScript, Vip, Vmac, VrrpInstance,
};
pub use lexer::{FileSystem, MAX_BYTES, MAX_FILES, MAX_INCLUDE_DEPTH, Memory, ReadFailure, Source};
pub use replication::{DrainPolicy, Endpoint, Flavor, MysqlReplication, TrackReplication};
pub use routes::{RouteKind, VirtualRoute, VirtualRule};
pub use script::{Script, VrrpScript};
pub use secret::read_secret;
pub use sync_group::SyncGroup;
pub use track_file::{TrackFile, TrackFileRef};
pub use track_process::{ParamMatch, TrackProcess};
pub use tree::MAX_NESTING;
pub use witness::{EtcdWitness, OnUnreachable, Tls, WitnessRef};

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
    pub source: ReadFailure,
}

/// Reads and checks `path` and its includes from `source`, without looking at the host.
pub fn load_from(source: &dyn Source, path: &Path) -> Result<Loaded, ReadError> {
    let mut diagnostics = Diagnostics::default();
    let tokens = lexer::lex_file(source, path, &mut diagnostics).map_err(|source| ReadError {
        path: path.display().to_string(),
        source,
    })?;
    Ok(build(tokens, diagnostics))
}

/// Parses configuration text as if it were the file `name` (for tests and tools).
pub fn parse_str(text: &str, name: &str) -> Loaded {
    let mut diagnostics = Diagnostics::default();
    let tokens = lexer::lex_text(text.as_bytes(), Path::new(name), &mut diagnostics);
    build(tokens, diagnostics)
}

fn build(tokens: Vec<lexer::Token>, mut diagnostics: Diagnostics) -> Loaded {
    let nodes = tree::parse(tokens, &mut diagnostics);
    let config = file::build(&nodes, &mut diagnostics);
    Loaded {
        config,
        diagnostics,
    }
}

#[cfg(test)]
mod tests;
