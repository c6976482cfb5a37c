//! `track_file`: each file's directory is watched with inotify (writes, renames, removals), so a
//! value change reaches the loop as one message, without polling. The files are read beside
//! the loop (tokio's blocking pool), never on it.

use std::{collections::HashMap, path::PathBuf};

use futures::StreamExt as _;
use inotify::{Inotify, WatchMask};
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::{info, warn};

use crate::{config::TrackFile, track::file::parse};

/// A file's value changed: (track_file name, value).
pub type Report = (String, i64);

pub struct TrackFiles {
    files: Vec<TrackFile>,
    values: HashMap<String, i64>,
    task: Option<JoinHandle<()>>,
    tx: mpsc::Sender<Report>,
    pub rx: mpsc::Receiver<Report>,
}

impl Default for TrackFiles {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(64);
        Self {
            files: Vec::new(),
            values: HashMap::new(),
            task: None,
            tx,
            rx,
        }
    }
}

impl TrackFiles {
    /// Watches `files` (keeping what was read of those that stay): `init_file` is written
    /// first, then every file is read once.
    pub fn configure(&mut self, files: &[TrackFile]) {
        if files == self.files.as_slice() {
            return;
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.files = files.to_vec();
        self.values
            .retain(|name, _| files.iter().any(|f| &f.name == name));
        for f in files {
            if let Some((value, overwrite)) = f.init
                && (overwrite || !f.path.exists())
                && let Err(e) = std::fs::write(&f.path, format!("{value}\n"))
            {
                warn!(track_file = %f.name, "init_file {}: {e}", f.path.display());
            }
            if let Some(value) = read(f) {
                self.values.insert(f.name.clone(), value);
            }
        }
        if files.is_empty() {
            return;
        }
        match watch(files) {
            Ok(inotify) => {
                self.task = Some(tokio::spawn(serve(
                    inotify,
                    files.to_vec(),
                    self.tx.clone(),
                )));
            }
            Err(e) => warn!("track_file: cannot watch the files ({e}); their values stay as read"),
        }
    }

    /// The value last read (0 before any: keepalived's value of a missing file).
    pub fn value(&self, name: &str) -> i64 {
        self.values.get(name).copied().unwrap_or(0)
    }

    /// Records a report; whether the value changed.
    pub fn update(&mut self, (name, value): Report) -> bool {
        self.values.insert(name, value) != Some(value)
    }

    pub fn file(&self, name: &str) -> Option<&TrackFile> {
        self.files.iter().find(|f| f.name == name)
    }
}

/// The file's value; a missing file is 0, text that is not a number keeps the last value.
fn read(f: &TrackFile) -> Option<i64> {
    let text = match std::fs::read(&f.path) {
        Ok(bytes) => String::from_utf8_lossy(bytes.get(..127).unwrap_or(&bytes)).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            warn!(track_file = %f.name, "{}: {e}", f.path.display());
            return None;
        }
    };
    let value = parse(&text);
    if value.is_none() {
        warn!(track_file = %f.name, "{}: {text:?} is not a number; ignored", f.path.display());
    }
    value
}

fn watch(files: &[TrackFile]) -> std::io::Result<Inotify> {
    let inotify = Inotify::init()?;
    let dirs: Vec<PathBuf> = files
        .iter()
        .filter_map(|f| f.path.parent().map(PathBuf::from))
        .collect();
    for dir in dirs {
        inotify.watches().add(
            &dir,
            WatchMask::CLOSE_WRITE
                | WatchMask::MOVED_TO
                | WatchMask::MOVED_FROM
                | WatchMask::CREATE
                | WatchMask::DELETE
                | WatchMask::MODIFY,
        )?;
    }
    Ok(inotify)
}

/// Reads the files named by each event and reports their values when they change.
async fn serve(inotify: Inotify, files: Vec<TrackFile>, tx: mpsc::Sender<Report>) {
    let mut last: HashMap<String, Option<i64>> = HashMap::new();
    let Ok(mut events) = inotify.into_event_stream([0u8; 4096]) else {
        return;
    };
    while let Some(event) = events.next().await {
        let Ok(event) = event else { continue };
        let Some(changed) = event.name else { continue };
        for f in files
            .iter()
            .filter(|f| f.path.file_name() == Some(changed.as_os_str()))
        {
            let file = f.clone();
            let Ok(value) = tokio::task::spawn_blocking(move || read(&file)).await else {
                continue;
            };
            let Some(value) = value else { continue };
            if last.insert(f.name.clone(), Some(value)) != Some(Some(value)) {
                info!(track_file = %f.name, value, "{}: {value}", f.path.display());
                if tx.send((f.name.clone(), value)).await.is_err() {
                    return;
                }
            }
        }
    }
}
