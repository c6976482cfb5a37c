//! Commands run for checks and notifications: `vrrp_script NAME { ... }` and the script
//! lines of `notify_*`.

use std::time::Duration;

use super::{build::Builder, diag::Loc, lexer::Token, tree::Node};

/// A command line run for a notify or check, with an optional user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    pub argv: Vec<String>,
    pub user: Option<String>,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VrrpScript {
    pub name: String,
    pub loc: Loc,
    pub script: Script,
    pub interval: Duration,
    pub timeout: Option<Duration>,
    pub weight: i32,
    pub reverse: bool,
    pub rise: u32,
    pub fall: u32,
    pub user: Option<String>,
    pub init_fail: bool,
}

/// A command line split as keepalived splits it: on spaces, except inside '...' or "..."
/// (a script's first word is quoted as a whole, so its arguments use the other quote).
fn split_command(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if std::mem::take(&mut in_word) {
                    words.push(std::mem::take(&mut word));
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// `USER [GROUP]` or `USER:GROUP` as one `user[:group]` string.
pub(super) fn user_spec(args: &[Token]) -> Option<String> {
    let user = args.first()?;
    Some(match args.get(1) {
        Some(group) if !user.text.contains(':') => format!("{}:{}", user.text, group.text),
        _ => user.text.clone(),
    })
}

impl Builder<'_> {
    /// A script line: `"cmd args" [user [group]]` or `cmd [user [group]]`.
    pub(super) fn script_line(&mut self, node: &Node) -> Option<Script> {
        let Some(first) = node.args.first() else {
            self.diags
                .error(node.loc(), format!("`{}` needs a command", node.name()));
            return None;
        };
        let argv = split_command(&first.text);
        if argv.is_empty() {
            self.diags.error(
                &first.loc,
                format!("`{}` has an empty command", node.name()),
            );
            return None;
        }
        Some(Script {
            argv,
            user: node.args.get(1..).and_then(user_spec),
            loc: node.loc().clone(),
        })
    }

    pub(super) fn script(&mut self, block: &Node) -> Option<VrrpScript> {
        let Some(name) = block.args.first() else {
            self.diags.error(block.loc(), "`vrrp_script` needs a name");
            return None;
        };
        let mut script = None;
        let mut s = VrrpScript {
            name: name.text.clone(),
            loc: block.loc().clone(),
            script: Script {
                argv: Vec::new(),
                user: None,
                loc: block.loc().clone(),
            },
            interval: Duration::from_secs(1),
            timeout: None,
            weight: 0,
            reverse: false,
            rise: 1,
            fall: 1,
            user: None,
            init_fail: false,
        };
        for node in block.children() {
            match node.name() {
                "script" => script = self.script_line(node),
                "interval" => {
                    if let Some(d) = self.seconds(node, 0.0, 86400.0) {
                        s.interval = d;
                    }
                }
                "timeout" => s.timeout = self.seconds(node, 0.0, 86400.0),
                "weight" => {
                    let (w, reverse) = self.weight(&Node {
                        keyword: node.keyword.clone(),
                        args: std::iter::once(node.keyword.clone())
                            .chain(node.args.clone())
                            .collect(),
                        block: None,
                    });
                    s.weight = w.unwrap_or(0);
                    s.reverse = reverse;
                }
                "rise" => s.rise = self.int(node, 1, 1000).unwrap_or(1) as u32,
                "fall" => s.fall = self.int(node, 1, 1000).unwrap_or(1) as u32,
                "user" => s.user = user_spec(&node.args),
                "init_fail" => s.init_fail = true,
                _ => self.unknown(node, "vrrp_script"),
            }
        }
        match script {
            Some(script) => s.script = script,
            None => {
                self.diags.error(
                    block.loc(),
                    format!("vrrp_script {} has no `script`", s.name),
                );
                return None;
            }
        }
        Some(s)
    }
}
