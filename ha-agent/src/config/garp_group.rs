//! `garp_group { garp_interval S; gna_interval S; interface IF | interfaces { IF ... } }`:
//! the gaps between gratuitous ARPs (unsolicited NAs) sent on one interface, or on a group of
//! interfaces behind one switch, whichever instance sends them.

use std::time::Duration;

use super::{build::Builder, diag::Loc, tree::Node};

#[derive(Clone, Debug, PartialEq)]
pub struct GarpGroup {
    /// Unset: the global `vrrp_garp_interval` / `vrrp_gna_interval`.
    pub garp_interval: Option<Duration>,
    pub gna_interval: Option<Duration>,
    pub interfaces: Vec<String>,
    pub loc: Loc,
}

impl Builder<'_> {
    pub(super) fn garp_group(&mut self, block: &Node) -> Option<GarpGroup> {
        let mut group = GarpGroup {
            garp_interval: None,
            gna_interval: None,
            interfaces: Vec::new(),
            loc: block.loc().clone(),
        };
        let (mut one, mut many) = (false, false);
        for node in block.children() {
            match node.name() {
                "garp_interval" => group.garp_interval = self.seconds(node, 0.0, 4294.967295),
                "gna_interval" => group.gna_interval = self.seconds(node, 0.0, 4294.967295),
                "interface" => {
                    one = true;
                    group
                        .interfaces
                        .extend(self.arg(node).map(|t| t.text.clone()));
                }
                "interfaces" => {
                    many = true;
                    group
                        .interfaces
                        .extend(node.children().iter().map(|c| c.name().to_owned()));
                }
                _ => self.unknown(node, "garp_group"),
            }
        }
        if one && many {
            self.diags.error(
                block.loc(),
                "`garp_group`: use `interface` or `interfaces`, not both",
            );
        }
        if group.interfaces.is_empty() {
            self.diags.error(
                block.loc(),
                "`garp_group` needs `interface IF` or `interfaces { IF ... }`",
            );
            return None;
        }
        Some(group)
    }
}
