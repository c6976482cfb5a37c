//! `virtual_routes { ... }` and `virtual_rules { ... }` of an instance: routes and policy
//! rules that follow the VIPs (added on becoming MASTER, removed on leaving it), in the
//! subset of `ip route` / `ip rule` syntax keepalived users write. Anything else in a line
//! is an error at its line, never a route added otherwise than written.

use std::net::Ipv4Addr;

use super::{build::Builder, diag::Loc, lexer::Token, tree::Node};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    Unicast,
    Blackhole,
    Unreachable,
    Prohibit,
}

/// `[src ADDR] [to] DEST[/LEN] [via|gw GW] [dev IF] [scope S] [table N] [metric N]`, or
/// `blackhole|unreachable|prohibit DEST[/LEN] [table N] [metric N]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualRoute {
    pub kind: RouteKind,
    pub dest: (Ipv4Addr, u8),
    pub src: Option<Ipv4Addr>,
    pub via: Option<Ipv4Addr>,
    pub dev: Option<String>,
    /// `ip route` scope numbers: 0 global, 200 site, 253 link, 254 host.
    pub scope: Option<u8>,
    pub table: Option<u32>,
    pub metric: Option<u32>,
    pub loc: Loc,
}

/// `[from PREFIX] [to PREFIX] [iif IF] [oif IF] [priority|pref N] table N`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualRule {
    pub from: Option<(Ipv4Addr, u8)>,
    pub to: Option<(Ipv4Addr, u8)>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub priority: Option<u32>,
    pub table: u32,
    pub loc: Loc,
}

impl Builder<'_> {
    fn prefix(&mut self, token: &Token, what: &str) -> Option<(Ipv4Addr, u8)> {
        let (addr, len) = match token.text.split_once('/') {
            Some((a, l)) => (a, l.parse::<u8>().ok().filter(|l| *l <= 32)),
            None => (token.text.as_str(), Some(32)),
        };
        let addr = if addr == "default" {
            return Some((Ipv4Addr::UNSPECIFIED, 0));
        } else {
            self.ipv4(
                &Token {
                    text: addr.to_owned(),
                    ..token.clone()
                },
                what,
            )?
        };
        match len {
            Some(len) => Some((addr, len)),
            None => {
                self.diags.error(
                    &token.loc,
                    format!("{what} `{}`: bad prefix length", token.text),
                );
                None
            }
        }
    }

    fn table(&mut self, token: &Token) -> Option<u32> {
        match token.text.as_str() {
            "main" => Some(254),
            "local" => Some(255),
            "default" => Some(253),
            _ => self
                .int_token("table", token, 1, i64::from(u32::MAX))
                .map(|t| t as u32),
        }
    }

    fn number(&mut self, what: &str, token: &Token) -> Option<u32> {
        self.int_token(what, token, 0, i64::from(u32::MAX))
            .map(|n| n as u32)
    }

    /// The words of a line: its keyword and its arguments.
    fn words(node: &Node) -> Vec<Token> {
        std::iter::once(node.keyword.clone())
            .chain(node.args.iter().cloned())
            .collect()
    }

    pub(super) fn virtual_routes(&mut self, block: &Node) -> Vec<VirtualRoute> {
        let mut routes = Vec::new();
        for line in block.children() {
            let words = Self::words(line);
            let mut route = VirtualRoute {
                kind: RouteKind::Unicast,
                dest: (Ipv4Addr::UNSPECIFIED, 0),
                src: None,
                via: None,
                dev: None,
                scope: None,
                table: None,
                metric: None,
                loc: line.loc().clone(),
            };
            let mut dest = None;
            let mut ok = true;
            let mut it = words.iter();
            while let Some(word) = it.next() {
                let mut value = |b: &mut Self| {
                    let v = it.next().cloned();
                    if v.is_none() {
                        b.diags
                            .error(&word.loc, format!("`{}` needs a value", word.text));
                    }
                    v
                };
                match word.text.as_str() {
                    "src" => route.src = value(self).and_then(|v| self.ipv4(&v, "src")),
                    "to" => dest = value(self).and_then(|v| self.prefix(&v, "destination")),
                    "via" | "gw" => route.via = value(self).and_then(|v| self.ipv4(&v, "gateway")),
                    "dev" => route.dev = value(self).map(|v| v.text),
                    "table" => route.table = value(self).and_then(|v| self.table(&v)),
                    "metric" | "preference" => {
                        route.metric = value(self).and_then(|v| self.number("metric", &v))
                    }
                    "scope" => {
                        route.scope = value(self).and_then(|v| match v.text.as_str() {
                            "global" | "universe" => Some(0),
                            "site" => Some(200),
                            "link" => Some(253),
                            "host" => Some(254),
                            other => {
                                self.diags.error(&v.loc, format!("unknown scope `{other}`"));
                                None
                            }
                        })
                    }
                    kind @ ("blackhole" | "unreachable" | "prohibit") if dest.is_none() => {
                        route.kind = match kind {
                            "blackhole" => RouteKind::Blackhole,
                            "unreachable" => RouteKind::Unreachable,
                            _ => RouteKind::Prohibit,
                        };
                    }
                    _ if dest.is_none() => dest = self.prefix(word, "destination"),
                    other => {
                        self.diags.error(
                            &word.loc,
                            format!("virtual_routes: `{other}` is not supported here"),
                        );
                        ok = false;
                    }
                }
            }
            match dest {
                Some(d) if ok => {
                    route.dest = d;
                    routes.push(route);
                }
                Some(_) => {}
                None => self
                    .diags
                    .error(line.loc(), "virtual_routes: a route needs a destination"),
            }
        }
        routes
    }

    pub(super) fn virtual_rules(&mut self, block: &Node) -> Vec<VirtualRule> {
        let mut rules = Vec::new();
        for line in block.children() {
            let words = Self::words(line);
            let mut rule = VirtualRule {
                from: None,
                to: None,
                iif: None,
                oif: None,
                priority: None,
                table: 0,
                loc: line.loc().clone(),
            };
            let mut ok = true;
            let mut it = words.iter();
            while let Some(word) = it.next() {
                let Some(v) = it.next().cloned() else {
                    self.diags
                        .error(&word.loc, format!("`{}` needs a value", word.text));
                    ok = false;
                    break;
                };
                match word.text.as_str() {
                    "from" => rule.from = self.prefix(&v, "from"),
                    "to" => rule.to = self.prefix(&v, "to"),
                    "iif" => rule.iif = Some(v.text),
                    "oif" => rule.oif = Some(v.text),
                    "priority" | "pref" | "preference" => {
                        rule.priority = self.number("priority", &v)
                    }
                    "table" | "lookup" => rule.table = self.table(&v).unwrap_or(0),
                    other => {
                        self.diags.error(
                            &word.loc,
                            format!("virtual_rules: `{other}` is not supported here"),
                        );
                        ok = false;
                    }
                }
            }
            if rule.table == 0 {
                self.diags
                    .error(line.loc(), "virtual_rules: a rule needs `table N`");
            } else if ok {
                rules.push(rule);
            }
        }
        rules
    }
}
