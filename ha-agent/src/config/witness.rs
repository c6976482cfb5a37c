//! `etcd_witness NAME { ... }` (an ha-agent extension): an etcd cluster whose leader key an
//! instance naming it in `witness NAME` must hold to be MASTER, so that a partition between
//! the nodes cannot make two masters.

use std::{path::PathBuf, time::Duration};

use super::{build::Builder, diag::Loc, tree::Node};

/// What a master does when it cannot reach etcd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnUnreachable {
    /// Keep the role while the lease is still valid; step down before it can expire.
    Hold,
    /// Step down at the first failed keep-alive.
    Fault,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EtcdWitness {
    pub name: String,
    pub loc: Loc,
    /// `http://host:port` (or `https://` with the TLS files).
    pub endpoints: Vec<String>,
    /// Under which the leader keys live, `<prefix>/<instance>`: the same on every node
    /// (so not derived from `router_id`, which names the node).
    pub key_prefix: String,
    /// The lease's time to live, whole seconds (etcd's unit).
    pub lease_ttl: Duration,
    pub tls: Option<Tls>,
    pub on_unreachable: OnUnreachable,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    pub ca: PathBuf,
    /// Client certificate and key, both or neither.
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// `witness NAME [election]` in an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessRef {
    pub name: String,
    pub loc: Loc,
    /// `election`: no VRRP adverts; the nodes campaign on etcd's election API and its
    /// leader is MASTER (nodes on different subnets, or where multicast cannot go).
    pub election: bool,
}

impl EtcdWitness {
    /// The leader key of `instance`.
    pub fn key(&self, instance: &str) -> String {
        format!("{}/{instance}", self.key_prefix.trim_end_matches('/'))
    }
}

impl Builder<'_> {
    pub(super) fn witness(&mut self, block: &Node) -> Option<EtcdWitness> {
        let Some(name) = block.args.first() else {
            self.diags.error(block.loc(), "`etcd_witness` needs a name");
            return None;
        };
        let mut w = EtcdWitness {
            name: name.text.clone(),
            loc: block.loc().clone(),
            endpoints: Vec::new(),
            key_prefix: "/ha-agent".into(),
            lease_ttl: Duration::from_secs(3),
            tls: None,
            on_unreachable: OnUnreachable::Hold,
        };
        let (mut ca, mut cert, mut key) = (None, None, None);
        for node in block.children() {
            match node.name() {
                "endpoints" => {
                    self.no_block(node);
                    for t in &node.args {
                        let known = ["http://", "https://"];
                        if known.iter().any(|s| t.text.starts_with(s)) {
                            w.endpoints.push(t.text.clone());
                        } else {
                            self.diags.error(
                                &t.loc,
                                format!("endpoint `{}`: http://HOST:PORT or https://", t.text),
                            );
                        }
                    }
                }
                "key_prefix" => match self.arg(node) {
                    Some(t) if t.text.starts_with('/') => w.key_prefix = t.text.clone(),
                    Some(t) => self.diags.error(&t.loc, "key_prefix must start with `/`"),
                    None => {}
                },
                "lease_ttl" => {
                    if let Some(n) = self.int(node, 1, 3600) {
                        w.lease_ttl = Duration::from_secs(n as u64);
                    }
                }
                "tls_ca" => ca = self.arg(node).map(|t| PathBuf::from(&t.text)),
                "tls_cert" => cert = self.arg(node).map(|t| PathBuf::from(&t.text)),
                "tls_key" => key = self.arg(node).map(|t| PathBuf::from(&t.text)),
                "on_unreachable" => {
                    if let Some(t) = self.arg(node) {
                        match t.text.as_str() {
                            "hold" => w.on_unreachable = OnUnreachable::Hold,
                            "fault" => w.on_unreachable = OnUnreachable::Fault,
                            other => self.diags.error(
                                &t.loc,
                                format!("unknown on_unreachable `{other}` (hold or fault)"),
                            ),
                        }
                    }
                }
                _ => self.unknown(node, "etcd_witness"),
            }
        }
        let what = format!("etcd_witness {}", w.name);
        if w.endpoints.is_empty() {
            self.diags
                .error(block.loc(), format!("{what}: `endpoints` missing"));
            return None;
        }
        w.tls = match (ca, cert, key) {
            (None, None, None) => None,
            (Some(ca), None, None) => Some(Tls { ca, identity: None }),
            (Some(ca), Some(cert), Some(key)) => Some(Tls {
                ca,
                identity: Some((cert, key)),
            }),
            _ => {
                self.diags.error(
                    block.loc(),
                    format!("{what}: `tls_cert` and `tls_key` go together, with `tls_ca`"),
                );
                return None;
            }
        };
        let https = w.endpoints.iter().any(|e| e.starts_with("https://"));
        if https != w.tls.is_some() {
            self.diags.error(
                block.loc(),
                format!("{what}: https:// endpoints need `tls_ca`, and `tls_ca` needs https://"),
            );
            return None;
        }
        Some(w)
    }

    /// `witness NAME [election]` in an instance.
    pub(super) fn witness_ref(&mut self, node: &Node) -> Option<WitnessRef> {
        self.no_block(node);
        let Some(name) = node.args.first() else {
            self.diags
                .error(node.loc(), "`witness` needs the name of an etcd_witness");
            return None;
        };
        let election = match node.args.get(1) {
            None => false,
            Some(t) if t.text == "election" && node.args.len() == 2 => true,
            Some(t) => {
                self.diags.error(
                    &t.loc,
                    format!(
                        "`witness NAME` takes only `election` after the name, not `{}`",
                        t.text
                    ),
                );
                return None;
            }
        };
        Some(WitnessRef {
            name: name.text.clone(),
            loc: node.loc().clone(),
            election,
        })
    }
}
