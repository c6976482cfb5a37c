//! keepalived.conf lexing: comments, quoting and `include`, down to tokens with `file:line`.

use std::{
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

const MAX_INCLUDE_DEPTH: usize = 16;

/// Lexes `path` and, in place, every file it includes.
pub fn lex_file(path: &Path, diags: &mut Diagnostics) -> Result<Vec<Token>, std::io::Error> {
    let mut tokens = Vec::new();
    let text = std::fs::read_to_string(path)?;
    lex_text(&text, Arc::new(path.to_path_buf()), 0, &mut tokens, diags);
    Ok(tokens)
}

/// Lexes `text` (the contents of `file`) into `out`.
pub fn lex_text(
    text: &str,
    file: Arc<PathBuf>,
    depth: usize,
    out: &mut Vec<Token>,
    diags: &mut Diagnostics,
) {
    for (index, line) in text.lines().enumerate() {
        let loc = Loc {
            file: file.clone(),
            line: index + 1,
        };
        let words = split_line(line, &loc, diags);
        if let Some(first) = words.first()
            && !first.1
            && first.0 == "include"
        {
            include(&words[1..], &loc, depth, out, diags);
            continue;
        }
        for (i, (text, quoted)) in words.into_iter().enumerate() {
            out.push(Token {
                text,
                quoted,
                line_start: i == 0,
                loc: loc.clone(),
            });
        }
    }
}

fn include(
    args: &[(String, bool)],
    loc: &Loc,
    depth: usize,
    out: &mut Vec<Token>,
    diags: &mut Diagnostics,
) {
    let [(pattern, _)] = args else {
        diags.error(loc, "`include` takes exactly one file or glob pattern");
        return;
    };
    if depth >= MAX_INCLUDE_DEPTH {
        diags.error(
            loc,
            format!("includes nested deeper than {MAX_INCLUDE_DEPTH} (a loop?)"),
        );
        return;
    }
    let base = loc.file.parent().unwrap_or(Path::new("."));
    let full = base.join(pattern);
    let paths = match glob::glob(&full.to_string_lossy()) {
        Ok(paths) => paths,
        Err(e) => {
            diags.error(loc, format!("bad include pattern `{pattern}`: {e}"));
            return;
        }
    };
    let mut matched: Vec<PathBuf> = paths.flatten().collect();
    matched.sort();
    if matched.is_empty() {
        diags.warn(loc, format!("include `{pattern}` matches no file"));
    }
    for path in matched {
        match std::fs::read_to_string(&path) {
            Ok(text) => lex_text(&text, Arc::new(path), depth + 1, out, diags),
            Err(e) => diags.error(loc, format!("cannot read included {}: {e}", path.display())),
        }
    }
}

/// Splits one line into words. `#` and `!` outside quotes start a comment; `"..."` and
/// `'...'` quote (adjacent pieces join one word); `{` and `}` are words of their own.
fn split_line(line: &str, loc: &Loc, diags: &mut Diagnostics) -> Vec<(String, bool)> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    let mut word = String::new();
    let mut quoted = false;
    let mut in_word = false;
    let flush = |words: &mut Vec<(String, bool)>,
                 word: &mut String,
                 quoted: &mut bool,
                 in_word: &mut bool| {
        if *in_word {
            words.push((std::mem::take(word), *quoted));
        }
        *quoted = false;
        *in_word = false;
    };
    while let Some(c) = chars.next() {
        match c {
            '#' | '!' => break,
            '{' | '}' => {
                flush(&mut words, &mut word, &mut quoted, &mut in_word);
                words.push((c.to_string(), false));
            }
            '"' | '\'' => {
                in_word = true;
                quoted = true;
                let mut closed = false;
                for q in chars.by_ref() {
                    if q == c {
                        closed = true;
                        break;
                    }
                    word.push(q);
                }
                if !closed {
                    diags.error(loc, format!("unterminated {c} quote"));
                }
            }
            c if c.is_whitespace() => flush(&mut words, &mut word, &mut quoted, &mut in_word),
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    flush(&mut words, &mut word, &mut quoted, &mut in_word);
    words
}
