//! `vrrp_track_process NAME { process CMD [ARG ...]; param_match initial|partial; weight N
//! [reverse]; quorum N; quorum_max N; fork_delay S; terminate_delay S; delay S; full_command }`:
//! how many processes of a program run, which moves the priority of the instances tracking
//! it, or puts them in FAULT.

use std::time::Duration;

use super::{build::Builder, diag::Loc, tree::Node};

/// How a process's arguments are compared with the configured ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamMatch {
    /// The same arguments, no more.
    Exact,
    /// The configured arguments first; more may follow.
    Partial,
    /// As `Partial`, the last configured argument a prefix of the process's.
    Initial,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackProcess {
    pub name: String,
    pub loc: Loc,
    /// The program: its name (`/proc/PID/comm`), or with `full_command` its first command
    /// line word.
    pub process: String,
    /// The arguments compared, if any are (arguments given, or `param_match`).
    pub params: Option<(Vec<String>, ParamMatch)>,
    pub full_command: bool,
    /// The weight of trackers that give none (default 1).
    pub weight: i32,
    pub reverse: bool,
    /// Up while quorum ≤ running processes ≤ quorum_max.
    pub quorum: u32,
    pub quorum_max: u32,
    /// How long a count must hold before it counts: reaching quorum, losing it.
    pub fork_delay: Duration,
    pub terminate_delay: Duration,
}

impl TrackProcess {
    /// The kernel's name of the program, when the program is found by it (not by command line).
    pub fn comm(&self) -> Option<&str> {
        (!self.full_command).then(|| {
            let end = self
                .process
                .char_indices()
                .map(|(i, c)| i + c.len_utf8())
                .take_while(|end| *end <= 15)
                .last()
                .unwrap_or(0);
            self.process.get(..end).unwrap_or_default()
        })
    }
}

impl Builder<'_> {
    pub(super) fn track_process(&mut self, block: &Node) -> Option<TrackProcess> {
        let Some(name) = block.args.first() else {
            self.diags
                .error(block.loc(), "`vrrp_track_process` needs a name");
            return None;
        };
        let mut t = TrackProcess {
            name: name.text.clone(),
            loc: block.loc().clone(),
            process: String::new(),
            params: None,
            full_command: false,
            weight: 1,
            reverse: false,
            quorum: 1,
            quorum_max: u32::MAX,
            fork_delay: Duration::ZERO,
            terminate_delay: Duration::ZERO,
        };
        let mut params: Option<Vec<String>> = None;
        let mut param_match = None;
        for node in block.children() {
            match node.name() {
                "process" => {
                    let mut words = node.args.iter().map(|w| w.text.clone());
                    match words.next() {
                        Some(process) => t.process = process,
                        None => self.diags.error(node.loc(), "`process` needs a program"),
                    }
                    let rest: Vec<String> = words.collect();
                    if !rest.is_empty() {
                        params = Some(rest);
                    }
                }
                "param_match" => {
                    param_match = match self.arg(node).map(|w| w.text.as_str()) {
                        Some("partial") => Some(ParamMatch::Partial),
                        Some("initial") => Some(ParamMatch::Initial),
                        Some(other) => {
                            self.diags.error(
                                node.loc(),
                                format!("param_match `{other}`: `initial` or `partial`"),
                            );
                            None
                        }
                        None => None,
                    }
                }
                "weight" => {
                    let mut words = node.args.iter();
                    match words.next() {
                        Some(w) => {
                            if let Some(w) = self.int_token("weight", w, -254, 254) {
                                t.weight = w as i32;
                            }
                        }
                        None => self.diags.error(node.loc(), "`weight` needs a value"),
                    }
                    t.reverse = words.next().is_some_and(|w| w.text == "reverse");
                }
                "quorum" => {
                    if let Some(n) = self.int(node, 1, 65535) {
                        t.quorum = n as u32;
                    }
                }
                "quorum_max" => {
                    if let Some(n) = self.int(node, 0, 65535) {
                        t.quorum_max = n as u32;
                    }
                }
                "fork_delay" => t.fork_delay = self.seconds(node, 0.0, 3600.0).unwrap_or_default(),
                "terminate_delay" => {
                    t.terminate_delay = self.seconds(node, 0.0, 3600.0).unwrap_or_default()
                }
                "delay" => {
                    let d = self.seconds(node, 0.0, 3600.0).unwrap_or_default();
                    (t.fork_delay, t.terminate_delay) = (d, d);
                }
                "full_command" => {
                    self.flag(node);
                    t.full_command = true;
                }
                _ => self.unknown(node, "vrrp_track_process"),
            }
        }
        if params.is_some() || param_match.is_some() {
            t.params = Some((
                params.unwrap_or_default(),
                param_match.unwrap_or(ParamMatch::Exact),
            ));
        }
        if t.process.is_empty() {
            self.diags.error(
                block.loc(),
                format!("vrrp_track_process {}: `process` missing", t.name),
            );
            return None;
        }
        if t.quorum_max < t.quorum {
            self.diags.error(
                block.loc(),
                format!(
                    "vrrp_track_process {}: quorum_max {} is below quorum {}: never up",
                    t.name, t.quorum_max, t.quorum
                ),
            );
        }
        Some(t)
    }
}
