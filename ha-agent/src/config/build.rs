//! What every block's reader shares: the diagnostics and the value readers (a number, a
//! duration, an address, a flag, a tracker's weight).

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use super::{diag::Diagnostics, lexer::Token, tree::Node};
use crate::vrrp::Version;

/// Everything `build` needs while walking the tree.
pub(super) struct Builder<'a> {
    pub(super) diags: &'a mut Diagnostics,
}

impl Builder<'_> {
    /// A value keyword followed by a block: the block would be lost without a word.
    pub(super) fn no_block(&mut self, node: &Node) {
        if node.block.is_some() {
            self.diags.error(
                node.loc(),
                format!("`{}` takes a value, not a block", node.name()),
            );
        }
    }

    /// The single argument of `node`.
    pub(super) fn arg<'n>(&mut self, node: &'n Node) -> Option<&'n Token> {
        self.no_block(node);
        match node.args.as_slice() {
            [arg] => Some(arg),
            [] => {
                self.diags
                    .error(node.loc(), format!("`{}` needs a value", node.name()));
                None
            }
            [arg, extra, ..] => {
                self.diags.warn(
                    &extra.loc,
                    format!("`{}` takes one value; extra words ignored", node.name()),
                );
                Some(arg)
            }
        }
    }

    pub(super) fn int(&mut self, node: &Node, min: i64, max: i64) -> Option<i64> {
        let token = self.arg(node)?;
        self.int_token(node.name(), token, min, max)
    }

    pub(super) fn int_token(
        &mut self,
        what: &str,
        token: &Token,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        match token.text.parse::<i64>() {
            Ok(v) if (min..=max).contains(&v) => Some(v),
            Ok(v) => {
                self.diags.error(
                    &token.loc,
                    format!("`{what}` {v} is out of range {min}..{max}"),
                );
                None
            }
            Err(_) => {
                self.diags.error(
                    &token.loc,
                    format!("`{what}` needs a number, not `{}`", token.text),
                );
                None
            }
        }
    }

    /// A duration in (decimal) seconds within `min..=max`.
    pub(super) fn seconds(&mut self, node: &Node, min: f64, max: f64) -> Option<Duration> {
        let token = self.arg(node)?;
        match token.text.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= min && v <= max => Some(Duration::from_secs_f64(v)),
            Ok(_) => {
                self.diags.error(
                    &token.loc,
                    format!(
                        "`{}` {} is out of range {min}..{max} s",
                        node.name(),
                        token.text
                    ),
                );
                None
            }
            Err(_) => {
                self.diags.error(
                    &token.loc,
                    format!(
                        "`{}` needs a number of seconds, not `{}`",
                        node.name(),
                        token.text
                    ),
                );
                None
            }
        }
    }

    pub(super) fn ipv4(&mut self, token: &Token, what: &str) -> Option<Ipv4Addr> {
        match token.text.parse::<Ipv4Addr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.diags.error(
                    &token.loc,
                    format!("{what} `{}` is not an IPv4 address", token.text),
                );
                None
            }
        }
    }

    /// An IPv4 or IPv6 address.
    pub(super) fn ip(&mut self, token: &Token, what: &str) -> Option<IpAddr> {
        match token.text.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.diags.error(
                    &token.loc,
                    format!("{what} `{}` is not an IP address", token.text),
                );
                None
            }
        }
    }

    pub(super) fn flag(&mut self, node: &Node) {
        self.no_block(node);
        if let Some(extra) = node.args.first() {
            self.diags.warn(
                &extra.loc,
                format!("`{}` takes no value; `{}` ignored", node.name(), extra.text),
            );
        }
    }

    pub(super) fn version(&mut self, node: &Node) -> Option<Version> {
        match self.int(node, 2, 3)? {
            2 => Some(Version::V2),
            _ => Some(Version::V3),
        }
    }

    /// `NAME [weight N [reverse|noreverse]]` of track_script / track_interface.
    pub(super) fn weight(&mut self, node: &Node) -> (Option<i32>, bool) {
        let mut weight = None;
        let mut reverse = false;
        let mut args = node.args.iter();
        while let Some(word) = args.next() {
            match word.text.as_str() {
                "weight" => match args.next() {
                    Some(w) => weight = self.int_token("weight", w, -253, 253).map(|w| w as i32),
                    None => self.diags.error(&word.loc, "`weight` needs a value"),
                },
                "reverse" => reverse = true,
                "noreverse" => reverse = false,
                other => self
                    .diags
                    .warn(&word.loc, format!("unknown option `{other}`; ignored")),
            }
        }
        (weight, reverse)
    }

    /// A keyword with an optional keepalived boolean (`true`/`yes`/`on` or
    /// `false`/`no`/`off`); absent means true.
    pub(super) fn bool_flag(&mut self, node: &Node) -> bool {
        self.no_block(node);
        let Some(word) = node.args.first() else {
            return true;
        };
        match word.text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => true,
            "false" | "no" | "off" => false,
            other => {
                self.diags.error(
                    &word.loc,
                    format!("`{}` takes true or false, not `{other}`", node.name()),
                );
                false
            }
        }
    }

    /// `interface_up_down_delays { IF DOWN [UP] ... }`: how long a link change must last
    /// before it counts (seconds, up to 255; UP defaults to DOWN).
    pub(super) fn link_delays(&mut self, block: &Node) -> Vec<(String, Duration, Duration)> {
        let mut delays = Vec::new();
        for line in block.children() {
            let mut values = Vec::new();
            for word in &line.args {
                match word.text.parse::<f64>() {
                    Ok(v) if v.is_finite() && (0.0..=255.0).contains(&v) => {
                        values.push(Duration::from_secs_f64(v))
                    }
                    _ => self.diags.error(
                        &word.loc,
                        format!("interface_up_down_delays: `{}` is not 0..255 s", word.text),
                    ),
                }
            }
            match values.as_slice() {
                [down] => delays.push((line.name().to_owned(), *down, *down)),
                [down, up] => delays.push((line.name().to_owned(), *down, *up)),
                _ => self.diags.error(
                    line.loc(),
                    "interface_up_down_delays: `IF DOWN [UP]` (seconds)",
                ),
            }
        }
        delays
    }

    /// A multicast group (`vrrp_mcast_group4`/`6`, `mcast_dst_ip`).
    pub(super) fn mcast_group(&mut self, node: &Node) -> Option<IpAddr> {
        let token = self.arg(node)?;
        let group = self.ip(token, node.name())?;
        if !group.is_multicast() {
            self.diags.error(
                &token.loc,
                format!("`{}` {group} is not a multicast address", node.name()),
            );
            return None;
        }
        Some(group)
    }
}
