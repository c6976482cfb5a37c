//! keepalived.conf lexing: comments, quoting and `include`, down to tokens with `file:line`.
//!
//! Loading is bounded whatever the files hold: include depth, include cycles, the number of
//! files and the bytes read in all each have a limit reported at the `include` that crossed it.
//! Bytes that are not UTF-8 are accepted where keepalived ignores them (comments) or keeps them
//! opaque (quoted strings); in a keyword or bare value they are an error.

use std::{
    io::Read as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::diag::{Diagnostics, Loc};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    /// Any part of the word was quoted: `{`, `}` and keywords lose their meaning.
    pub quoted: bool,
    /// First token of its source line.
    pub line_start: bool,
    pub loc: Loc,
}

impl Token {
    pub fn is(&self, punct: &str) -> bool {
        !self.quoted && self.text == punct
    }
}

/// Includes nested deeper than this are refused.
pub const MAX_INCLUDE_DEPTH: usize = 16;
/// Files read in all, the main file included (each inclusion counts).
pub const MAX_FILES: usize = 1000;
/// Bytes read in all. A keepalived.conf with 255 instances is about 100 KiB.
pub const MAX_BYTES: u64 = 1 << 20;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadFailure {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a regular file")]
    NotAFile,
    #[error("the configuration is larger than {MAX_BYTES} bytes in all")]
    TooLarge,
}

/// Where configuration files come from: the file system, or memory (tests, fuzzing).
pub trait Source {
    /// The contents of `path`, or [`ReadFailure::TooLarge`] if it holds more than `limit` bytes.
    fn read(&self, path: &Path, limit: u64) -> Result<Vec<u8>, ReadFailure>;
    /// The files matching a glob pattern, sorted.
    fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, String>;
    /// A name shared by every path to the same file (include cycles are found with it).
    fn identity(&self, path: &Path) -> PathBuf;
}

/// The real file system.
pub struct FileSystem;

impl Source for FileSystem {
    fn read(&self, path: &Path, limit: u64) -> Result<Vec<u8>, ReadFailure> {
        let file = std::fs::File::open(path)?;
        // A FIFO or a device (`include /dev/zero`) would block or never end.
        if !file.metadata()?.is_file() {
            return Err(ReadFailure::NotAFile);
        }
        let mut bytes = Vec::new();
        file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > limit {
            return Err(ReadFailure::TooLarge);
        }
        Ok(bytes)
    }

    fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, String> {
        let paths = glob::glob(pattern).map_err(|e| e.to_string())?;
        let mut matched: Vec<PathBuf> = paths.flatten().collect();
        matched.sort();
        Ok(matched)
    }

    fn identity(&self, path: &Path) -> PathBuf {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Files held in memory, by path.
#[derive(Default)]
pub struct Memory(pub std::collections::BTreeMap<PathBuf, Vec<u8>>);

impl Source for Memory {
    fn read(&self, path: &Path, limit: u64) -> Result<Vec<u8>, ReadFailure> {
        let bytes = self
            .0
            .get(path)
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
        if bytes.len() as u64 > limit {
            return Err(ReadFailure::TooLarge);
        }
        Ok(bytes.clone())
    }

    fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, String> {
        let pattern = glob::Pattern::new(pattern).map_err(|e| e.to_string())?;
        Ok(self
            .0
            .keys()
            .filter(|p| pattern.matches_path(p))
            .cloned()
            .collect())
    }

    fn identity(&self, path: &Path) -> PathBuf {
        path.to_path_buf()
    }
}

/// Lexes `path` and, in place, every file it includes. Only a main file that cannot be read
/// is an error here; everything else becomes a diagnostic.
pub fn lex_file(
    source: &dyn Source,
    path: &Path,
    diags: &mut Diagnostics,
) -> Result<Vec<Token>, ReadFailure> {
    let bytes = source.read(path, MAX_BYTES)?;
    let mut lexer = Lexer {
        source,
        diags,
        out: Vec::new(),
        reading: vec![source.identity(path)],
        files: 1,
        bytes: bytes.len() as u64,
        exhausted: false,
    };
    lexer.text(&bytes, Arc::new(path.to_path_buf()));
    Ok(lexer.out)
}

/// Lexes configuration text as if it were the file `name` (includes are not followed).
pub fn lex_text(text: &[u8], name: &Path, diags: &mut Diagnostics) -> Vec<Token> {
    let mut lexer = Lexer {
        source: &Memory::default(),
        diags,
        out: Vec::new(),
        reading: vec![name.to_path_buf()],
        files: 1,
        bytes: text.len() as u64,
        exhausted: false,
    };
    lexer.text(text, Arc::new(name.to_path_buf()));
    lexer.out
}

struct Lexer<'a> {
    source: &'a dyn Source,
    diags: &'a mut Diagnostics,
    out: Vec<Token>,
    /// Identities of the files being read, outermost first: an include of one of them is a cycle.
    reading: Vec<PathBuf>,
    files: usize,
    bytes: u64,
    /// A file or byte limit was reached: further includes are skipped (reported once).
    exhausted: bool,
}

impl Lexer<'_> {
    fn text(&mut self, text: &[u8], file: Arc<PathBuf>) {
        for (index, line) in text.split(|b| *b == b'\n').enumerate() {
            let loc = Loc {
                file: file.clone(),
                line: index + 1,
            };
            let words = split_line(line, &loc, self.diags);
            if let Some((first, rest)) = words.split_first()
                && !first.1
                && first.0 == "include"
            {
                self.include(rest, &loc);
                continue;
            }
            for (i, (text, quoted)) in words.into_iter().enumerate() {
                self.out.push(Token {
                    text,
                    quoted,
                    line_start: i == 0,
                    loc: loc.clone(),
                });
            }
        }
    }

    fn include(&mut self, args: &[(String, bool)], loc: &Loc) {
        let [(pattern, _)] = args else {
            self.diags
                .error(loc, "`include` takes exactly one file or glob pattern");
            return;
        };
        if self.exhausted {
            return;
        }
        if self.reading.len() > MAX_INCLUDE_DEPTH {
            self.diags.error(
                loc,
                format!("includes nested deeper than {MAX_INCLUDE_DEPTH}"),
            );
            return;
        }
        if pattern.contains("**") {
            // keepalived's glob(3) has no recursive wildcard; the glob crate's would walk
            // whole trees.
            self.diags.error(
                loc,
                format!("include `{pattern}`: `**` is not supported (use `*` per directory level)"),
            );
            return;
        }
        let base = loc.file.parent().unwrap_or(Path::new("."));
        let full = base.join(pattern);
        let matched = match self.source.glob(&full.to_string_lossy()) {
            Ok(paths) => paths,
            Err(e) => {
                self.diags
                    .error(loc, format!("bad include pattern `{pattern}`: {e}"));
                return;
            }
        };
        if matched.is_empty() {
            self.diags
                .warn(loc, format!("include `{pattern}` matches no file"));
        }
        for path in matched {
            let identity = self.source.identity(&path);
            if self.reading.contains(&identity) {
                self.diags.error(
                    loc,
                    format!(
                        "include cycle: {} is already being read (include chain: {})",
                        path.display(),
                        self.chain()
                    ),
                );
                continue;
            }
            if self.files >= MAX_FILES {
                self.diags.error(
                    loc,
                    format!("more than {MAX_FILES} files included in all; the rest are skipped"),
                );
                self.exhausted = true;
                return;
            }
            let bytes = match self.source.read(&path, MAX_BYTES - self.bytes) {
                Ok(bytes) => bytes,
                Err(ReadFailure::TooLarge) => {
                    self.diags.error(
                        loc,
                        format!(
                            "including {}: {}; the rest is skipped",
                            path.display(),
                            ReadFailure::TooLarge
                        ),
                    );
                    self.exhausted = true;
                    return;
                }
                Err(e) => {
                    self.diags
                        .error(loc, format!("cannot read included {}: {e}", path.display()));
                    continue;
                }
            };
            self.files += 1;
            self.bytes += bytes.len() as u64;
            self.reading.push(identity);
            self.text(&bytes, Arc::new(path));
            self.reading.pop();
        }
    }

    fn chain(&self) -> String {
        self.reading
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" -> ")
    }
}

/// One word being collected: its bytes, its unquoted bytes apart (they must be UTF-8), and
/// whether any part was quoted.
#[derive(Default)]
struct Word {
    bytes: Vec<u8>,
    bare: Vec<u8>,
    started: bool,
    quoted: bool,
    quoted_not_utf8: bool,
}

impl Word {
    fn flush(&mut self, words: &mut Vec<(String, bool)>, loc: &Loc, diags: &mut Diagnostics) {
        let word = std::mem::take(self);
        if !word.started {
            return;
        }
        let text = String::from_utf8_lossy(&word.bytes).into_owned();
        if std::str::from_utf8(&word.bare).is_err() {
            diags.error(
                loc,
                format!(
                    "`{text}` holds bytes that are not UTF-8 (only comments and quoted strings may)"
                ),
            );
        } else if word.quoted_not_utf8 {
            diags.warn(
                loc,
                format!("quoted string `{text}` holds bytes that are not UTF-8; shown as U+FFFD"),
            );
        }
        words.push((text, word.quoted));
    }
}

/// Splits one line into words. `#` and `!` outside quotes start a comment; `"..."` and
/// `'...'` quote (adjacent pieces join one word); `{` and `}` are words of their own.
fn split_line(line: &[u8], loc: &Loc, diags: &mut Diagnostics) -> Vec<(String, bool)> {
    let mut words = Vec::new();
    let mut word = Word::default();
    let mut rest = line;
    while let Some((&c, tail)) = rest.split_first() {
        rest = tail;
        match c {
            b'#' | b'!' => break,
            b'{' | b'}' => {
                word.flush(&mut words, loc, diags);
                words.push((char::from(c).to_string(), false));
            }
            b'"' | b'\'' => {
                word.started = true;
                word.quoted = true;
                let (inner, after) = match rest.iter().position(|&q| q == c) {
                    Some(end) => (rest.get(..end), rest.get(end + 1..)),
                    None => {
                        diags.error(loc, format!("unterminated {} quote", char::from(c)));
                        (Some(rest), None)
                    }
                };
                let inner = inner.unwrap_or_default();
                word.quoted_not_utf8 |= std::str::from_utf8(inner).is_err();
                word.bytes.extend_from_slice(inner);
                rest = after.unwrap_or_default();
            }
            b' ' | b'\t' | b'\r' | b'\x0b' | b'\x0c' => word.flush(&mut words, loc, diags),
            _ => {
                word.started = true;
                word.bytes.push(c);
                word.bare.push(c);
            }
        }
    }
    word.flush(&mut words, loc, diags);
    words
}
