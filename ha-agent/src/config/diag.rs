//! Diagnostics with `file:line`.

use std::{fmt, path::PathBuf, sync::Arc};

/// Where a token came from.
#[derive(Clone, Debug)]
pub struct Loc {
    pub file: Arc<PathBuf>,
    pub line: usize,
}

/// Locations never make two configurations differ: an instance that moved in the file but
/// is otherwise the same keeps running across a reload.
impl PartialEq for Loc {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Loc {}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub loc: Loc,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{}: {severity}: {}", self.loc, self.message)
    }
}

/// The diagnostics of one load, in the order they were found.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn warn(&mut self, loc: &Loc, message: impl Into<String>) {
        self.push(Severity::Warning, loc, message.into());
    }

    pub fn error(&mut self, loc: &Loc, message: impl Into<String>) {
        self.push(Severity::Error, loc, message.into());
    }

    fn push(&mut self, severity: Severity, loc: &Loc, message: String) {
        self.0.push(Diagnostic {
            severity,
            loc: loc.clone(),
            message,
        });
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.severity == Severity::Error)
    }
}
