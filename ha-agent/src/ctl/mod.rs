//! The status socket (`<state-dir>/ha-agent.sock`) and what it answers.

pub mod status;

use std::{
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::UnixListener,
    sync::{mpsc, oneshot},
};

pub use status::Status;

pub const SOCKET_NAME: &str = "ha-agent.sock";

pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// A status request from a client, answered by the daemon's loop.
pub type StatusRequest = oneshot::Sender<Status>;

/// Listens on the status socket; each connection becomes a [`StatusRequest`].
pub fn serve(path: &Path) -> std::io::Result<mpsc::Receiver<StatusRequest>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A socket file left by a killed agent would make bind fail.
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 64];
                let _ = stream.read(&mut request).await;
                let (reply_tx, reply_rx) = oneshot::channel();
                if tx.send(reply_tx).await.is_err() {
                    return;
                }
                if let Ok(status) = reply_rx.await {
                    let json = serde_json::to_vec(&status).unwrap_or_default();
                    let _ = stream.write_all(&json).await;
                }
            });
        }
    });
    Ok(rx)
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(
        "cannot reach the agent at {path}: {source} (is `ha-agent run` running with this --state-dir?)"
    )]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("reading the agent's answer: {0}")]
    Read(#[from] std::io::Error),
    #[error("the agent's answer is not valid status JSON: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Asks the agent listening on `path` for its status.
pub fn query(path: &Path) -> Result<Status, QueryError> {
    let mut stream =
        std::os::unix::net::UnixStream::connect(path).map_err(|source| QueryError::Connect {
            path: path.display().to_string(),
            source,
        })?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    stream.write_all(b"status\n")?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(serde_json::from_slice(&answer)?)
}
