//! `bfd_instance NAME { neighbor_ip A; source_ip A; min_rx MS; min_tx MS; idle_tx MS;
//! multiplier N; passive; ttl N | hoplimit N; max_hops N; weight N [reverse]; vrrp; checker }`:
//! a single-hop BFD session (RFC 5880/5881), with keepalived's defaults and ranges. Instances
//! and sync groups follow it with `track_bfd`.

use std::{net::IpAddr, time::Duration};

use super::{build::Builder, diag::Loc, tree::Node};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BfdInstance {
    pub name: String,
    pub loc: Loc,
    pub neighbor: IpAddr,
    /// The address packets leave from (else the kernel's choice for the neighbour).
    pub source: Option<IpAddr>,
    pub min_rx: Duration,
    pub min_tx: Duration,
    pub idle_tx: Duration,
    pub multiplier: u8,
    pub passive: bool,
    /// TTL (hop limit) of the packets sent: 255 (keepalived: 64 for IPv6, which RFC 5881's
    /// single hop check refuses; ha-agent sends 255 unless told).
    pub ttl: u8,
    /// How far below `ttl` a received packet's TTL may be (255: not checked).
    pub max_hops: u8,
    /// The weight of trackers that give none (0: FAULT while down).
    pub weight: i32,
    pub reverse: bool,
}

/// keepalived's bounds, in milliseconds with microsecond resolution.
const MAX_MS: f64 = (u32::MAX / 1000) as f64;

impl Builder<'_> {
    pub(super) fn bfd_instance(&mut self, block: &Node) -> Option<BfdInstance> {
        let Some(name) = block.args.first() else {
            self.diags.error(block.loc(), "`bfd_instance` needs a name");
            return None;
        };
        let mut neighbor = None;
        let mut b = BfdInstance {
            name: name.text.clone(),
            loc: block.loc().clone(),
            neighbor: IpAddr::from([0, 0, 0, 0]),
            source: None,
            min_rx: Duration::from_millis(10),
            min_tx: Duration::from_millis(10),
            idle_tx: Duration::from_millis(1000),
            multiplier: 5,
            passive: false,
            ttl: 255,
            max_hops: 0,
            weight: 0,
            reverse: false,
        };
        for node in block.children() {
            match node.name() {
                "neighbor_ip" | "neighbour_ip" => {
                    neighbor = self.arg(node).and_then(|t| self.ip(t, "neighbor_ip"));
                }
                "source_ip" => b.source = self.arg(node).and_then(|t| self.ip(t, "source_ip")),
                "min_rx" => b.min_rx = self.millis(node, 1.0).unwrap_or(b.min_rx),
                "min_tx" => b.min_tx = self.millis(node, 1.0).unwrap_or(b.min_tx),
                "idle_tx" => b.idle_tx = self.millis(node, 1000.0).unwrap_or(b.idle_tx),
                "multiplier" => {
                    if let Some(n) = self.int(node, 1, 255) {
                        b.multiplier = n as u8;
                    }
                }
                "passive" => {
                    self.flag(node);
                    b.passive = true;
                }
                "ttl" | "hoplimit" => {
                    if let Some(n) = self.int(node, 1, 255) {
                        b.ttl = n as u8;
                    }
                }
                "max_hops" => {
                    // keepalived takes -1 for "not checked" too.
                    if let Some(n) = self.int(node, -1, 255) {
                        b.max_hops = if n < 0 { 255 } else { n as u8 };
                    }
                }
                "weight" => {
                    let (weight, reverse) = self.weight_words(node);
                    b.weight = weight.unwrap_or(0);
                    b.reverse = reverse;
                }
                // keepalived's BFD process tells its VRRP and checker processes; here the
                // one process hears every session.
                "vrrp" | "checker" => self.flag(node),
                _ => self.unknown(node, "bfd_instance"),
            }
        }
        let Some(neighbor) = neighbor else {
            self.diags.error(
                block.loc(),
                format!("bfd_instance {}: `neighbor_ip` missing", b.name),
            );
            return None;
        };
        b.neighbor = neighbor;
        if let Some(source) = b.source
            && source.is_ipv4() != neighbor.is_ipv4()
        {
            self.diags.error(
                block.loc(),
                format!(
                    "bfd_instance {}: source_ip {source} and neighbor_ip {neighbor} are of \
                     different families",
                    b.name
                ),
            );
            return None;
        }
        Some(b)
    }

    /// A `min_rx`-style value: milliseconds, three decimals, from `min`.
    fn millis(&mut self, node: &Node, min: f64) -> Option<Duration> {
        let token = self.arg(node)?;
        match token.text.parse::<f64>() {
            Ok(v) if v.is_finite() && (min..=MAX_MS).contains(&v) => {
                Some(Duration::from_micros((v * 1000.0).round() as u64))
            }
            _ => {
                self.diags.error(
                    &token.loc,
                    format!(
                        "`{}` must be a number of milliseconds from {min} to {MAX_MS}, not `{}`",
                        node.name(),
                        token.text
                    ),
                );
                None
            }
        }
    }

    /// `weight N [reverse]` of a `bfd_instance`.
    fn weight_words(&mut self, node: &Node) -> (Option<i32>, bool) {
        let mut words = node.args.iter();
        let Some(w) = words.next() else {
            self.diags.error(node.loc(), "`weight` needs a value");
            return (None, false);
        };
        let weight = self.int_token("weight", w, -253, 253).map(|w| w as i32);
        let mut reverse = false;
        for word in words {
            match word.text.as_str() {
                "reverse" => reverse = true,
                "noreverse" | "no_reverse" => reverse = false,
                other => self
                    .diags
                    .warn(&word.loc, format!("unknown option `{other}`; ignored")),
            }
        }
        (weight, reverse)
    }
}
