//! `track_file NAME { file PATH; weight N [reverse]; init_file [VALUE] [overwrite] }`
//! (`vrrp_track_file` is keepalived's older name): a file holding an integer that moves the
//! priority of the instances tracking it, or puts them in FAULT.

use std::path::PathBuf;

use super::{build::Builder, diag::Loc, tree::Node};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackFile {
    pub name: String,
    pub loc: Loc,
    pub path: PathBuf,
    /// The weight of trackers that give none (default 1).
    pub weight: i32,
    pub reverse: bool,
    /// `init_file [VALUE] [overwrite]`: the value written at start, and whether it replaces
    /// a file that exists.
    pub init: Option<(i64, bool)>,
}

/// `track_file { NAME [weight N] [reverse|noreverse] }` in an instance or a sync group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackFileRef {
    pub name: String,
    /// Overrides the file's own weight.
    pub weight: Option<i32>,
    pub reverse: Option<bool>,
    pub loc: Loc,
}

impl Builder<'_> {
    pub(super) fn track_file(&mut self, block: &Node) -> Option<TrackFile> {
        let Some(name) = block.args.first() else {
            self.diags
                .error(block.loc(), format!("`{}` needs a name", block.name()));
            return None;
        };
        let mut f = TrackFile {
            name: name.text.clone(),
            loc: block.loc().clone(),
            path: PathBuf::new(),
            weight: 1,
            reverse: false,
            init: None,
        };
        for node in block.children() {
            match node.name() {
                "file" => {
                    if let Some(t) = self.arg(node) {
                        f.path = PathBuf::from(&t.text);
                    }
                }
                "weight" => {
                    let mut words = node.args.iter();
                    if let Some(w) = words.next() {
                        if let Some(w) = self.int_token("weight", w, -2_147_483_647, 2_147_483_647)
                        {
                            f.weight = w as i32;
                        }
                    } else {
                        self.diags.error(node.loc(), "`weight` needs a value");
                    }
                    f.reverse = words.next().is_some_and(|w| w.text == "reverse");
                }
                "init_file" => {
                    let mut value = 0;
                    let mut overwrite = false;
                    for word in &node.args {
                        if word.text == "overwrite" {
                            overwrite = true;
                        } else if let Some(v) = self.int_token(
                            "init_file",
                            word,
                            i64::from(i32::MIN),
                            i64::from(i32::MAX),
                        ) {
                            value = v;
                        }
                    }
                    f.init = Some((value, overwrite));
                }
                _ => self.unknown(node, "track_file"),
            }
        }
        if f.path.as_os_str().is_empty() {
            self.diags.error(
                block.loc(),
                format!("track_file {}: `file` missing", f.name),
            );
            return None;
        }
        if !f.path.is_absolute() {
            self.diags.error(
                block.loc(),
                format!(
                    "track_file {}: `{}` needs an absolute path",
                    f.name,
                    f.path.display()
                ),
            );
            return None;
        }
        Some(f)
    }

    /// `track_file { NAME [weight N] [reverse|noreverse] ... }`.
    pub(super) fn track_file_refs(&mut self, node: &Node) -> Vec<TrackFileRef> {
        let mut refs = Vec::new();
        for child in node.children() {
            let mut r = TrackFileRef {
                name: child.name().to_owned(),
                weight: None,
                reverse: None,
                loc: child.loc().clone(),
            };
            let mut words = child.args.iter();
            while let Some(word) = words.next() {
                match word.text.as_str() {
                    "weight" => match words.next() {
                        Some(w) => {
                            r.weight = self.int_token("weight", w, -254, 254).map(|w| w as i32)
                        }
                        None => self.diags.error(&word.loc, "`weight` needs a value"),
                    },
                    "reverse" => r.reverse = Some(true),
                    "noreverse" | "no_reverse" => r.reverse = Some(false),
                    other => self
                        .diags
                        .warn(&word.loc, format!("unknown option `{other}`; ignored")),
                }
            }
            refs.push(r);
        }
        refs
    }
}
