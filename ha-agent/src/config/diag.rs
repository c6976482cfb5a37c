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
    /// A keyword ha-agent does not implement, whose absence changes what the pair does.
    pub unsupported: bool,
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

/// At most this many diagnostics are kept; a pathological file cannot fill memory or a
/// terminal with them. Counts stay exact.
pub const MAX_DIAGNOSTICS: usize = 1000;

/// The diagnostics of one load, in the order they were found.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    list: Vec<Diagnostic>,
    errors: usize,
    warnings: usize,
    /// Errors from unsupported keywords, kept or not.
    unsupported: usize,
}

impl Diagnostics {
    pub fn warn(&mut self, loc: &Loc, message: impl Into<String>) {
        self.push(Severity::Warning, loc, message.into());
    }

    pub fn error(&mut self, loc: &Loc, message: impl Into<String>) {
        self.push(Severity::Error, loc, message.into());
    }

    /// A keyword that is not supported: an error until [`Self::allow_unsupported`].
    pub fn unsupported(&mut self, loc: &Loc, message: impl Into<String>) {
        if let Some(d) = self.push(Severity::Error, loc, message.into()) {
            d.unsupported = true;
        }
        self.unsupported += 1;
    }

    /// `--allow-unsupported`: the user accepts what the unsupported keywords mean, so they
    /// become warnings.
    pub fn allow_unsupported(&mut self) {
        for d in self.list.iter_mut().filter(|d| d.unsupported) {
            d.severity = Severity::Warning;
            d.message.push_str(" (allowed by --allow-unsupported)");
        }
        self.errors -= self.unsupported;
        self.warnings += self.unsupported;
        self.unsupported = 0;
    }

    /// Counts a diagnostic and keeps it if there is room; the one kept, if it was.
    fn push(&mut self, severity: Severity, loc: &Loc, message: String) -> Option<&mut Diagnostic> {
        match severity {
            Severity::Warning => self.warnings += 1,
            Severity::Error => self.errors += 1,
        }
        if self.list.len() < MAX_DIAGNOSTICS {
            self.list.push(Diagnostic {
                severity,
                unsupported: false,
                loc: loc.clone(),
                message,
            });
            self.list.last_mut()
        } else {
            None
        }
    }

    /// The diagnostics kept (the first [`MAX_DIAGNOSTICS`]).
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.list.iter()
    }

    /// How many were found but not kept.
    pub fn suppressed(&self) -> usize {
        self.errors + self.warnings - self.list.len()
    }

    pub fn has_errors(&self) -> bool {
        self.errors > 0
    }

    pub fn error_count(&self) -> usize {
        self.errors
    }

    pub fn warning_count(&self) -> usize {
        self.warnings
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.list.iter().filter(|d| d.severity == Severity::Error)
    }
}
