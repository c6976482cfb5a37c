//! Tokens to a tree of statements and blocks.

use super::{
    diag::{Diagnostics, Loc},
    lexer::Token,
};

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

pub fn parse(tokens: &[Token], diags: &mut Diagnostics) -> Vec<Node> {
    let mut pos = 0;
    parse_block(tokens, &mut pos, None, diags)
}

fn parse_block(
    tokens: &[Token],
    pos: &mut usize,
    opened_at: Option<&Loc>,
    diags: &mut Diagnostics,
) -> Vec<Node> {
    let mut nodes = Vec::new();
    while let Some(token) = tokens.get(*pos) {
        *pos += 1;
        if token.is("}") {
            match opened_at {
                Some(_) => return nodes,
                None => diags.warn(&token.loc, "extra '}' ignored"),
            }
            continue;
        }
        if token.is("{") {
            diags.warn(&token.loc, "'{' without a keyword; block ignored");
            parse_block(tokens, pos, Some(&token.loc), diags);
            continue;
        }
        let mut args = Vec::new();
        while let Some(arg) = tokens.get(*pos) {
            if arg.line_start || arg.is("{") || arg.is("}") {
                break;
            }
            args.push(arg.clone());
            *pos += 1;
        }
        let block = match tokens.get(*pos) {
            Some(open) if open.is("{") => {
                *pos += 1;
                Some(parse_block(tokens, pos, Some(&token.loc), diags))
            }
            _ => None,
        };
        nodes.push(Node {
            keyword: token.clone(),
            args,
            block,
        });
    }
    if let Some(loc) = opened_at {
        diags.error(loc, "block is not closed: '}' missing");
    }
    nodes
}
