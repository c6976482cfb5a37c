//! Tokens to a tree of statements and blocks.
//!
//! Recursion follows block nesting only down to [`MAX_NESTING`]; anything deeper is skipped by
//! counting braces, so no input can exhaust the stack.

use std::iter::Peekable;

use super::{
    diag::{Diagnostics, Loc},
    lexer::Token,
};

/// Blocks nested deeper than this are an error (keepalived's own grammar needs four).
pub const MAX_NESTING: usize = 32;

/// `keyword args... [{ children }]`.
#[derive(Clone, Debug)]
pub struct Node {
    pub keyword: Token,
    pub args: Vec<Token>,
    pub block: Option<Vec<Node>>,
}

impl Node {
    pub fn name(&self) -> &str {
        &self.keyword.text
    }

    pub fn loc(&self) -> &Loc {
        &self.keyword.loc
    }

    pub fn children(&self) -> &[Node] {
        self.block.as_deref().unwrap_or(&[])
    }
}

type Tokens = Peekable<std::vec::IntoIter<Token>>;

pub fn parse(tokens: Vec<Token>, diags: &mut Diagnostics) -> Vec<Node> {
    let mut tokens = tokens.into_iter().peekable();
    parse_block(&mut tokens, None, 0, diags)
}

fn parse_block(
    tokens: &mut Tokens,
    opened_at: Option<&Loc>,
    depth: usize,
    diags: &mut Diagnostics,
) -> Vec<Node> {
    let mut nodes = Vec::new();
    while let Some(token) = tokens.next() {
        if token.is("}") {
            match opened_at {
                Some(_) => return nodes,
                None => diags.warn(&token.loc, "extra '}' ignored"),
            }
            continue;
        }
        if token.is("{") {
            diags.warn(&token.loc, "'{' without a keyword; block ignored");
            block(tokens, &token.loc, depth, diags);
            continue;
        }
        let mut args = Vec::new();
        while let Some(arg) = tokens.next_if(|a| !(a.line_start || a.is("{") || a.is("}"))) {
            args.push(arg);
        }
        let block = match tokens.next_if(|t| t.is("{")) {
            Some(_) => Some(block(tokens, &token.loc, depth, diags)),
            None => None,
        };
        nodes.push(Node {
            keyword: token,
            args,
            block,
        });
    }
    if let Some(loc) = opened_at {
        diags.error(loc, "block is not closed: '}' missing");
    }
    nodes
}

/// The block opened at `loc` (its `{` already read) at nesting `depth`.
fn block(tokens: &mut Tokens, loc: &Loc, depth: usize, diags: &mut Diagnostics) -> Vec<Node> {
    if depth < MAX_NESTING {
        return parse_block(tokens, Some(loc), depth + 1, diags);
    }
    diags.error(
        loc,
        format!("blocks nested deeper than {MAX_NESTING}; this block is skipped"),
    );
    let mut open = 1usize;
    for token in tokens.by_ref() {
        if token.is("{") {
            open += 1;
        } else if token.is("}") {
            open -= 1;
            if open == 0 {
                return Vec::new();
            }
        }
    }
    diags.error(loc, "block is not closed: '}' missing");
    Vec::new()
}
