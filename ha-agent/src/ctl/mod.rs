//! The status socket (`<state-dir>/ha-agent.sock`) and what it answers.
//!
//! Protocol: the client sends one line, `status`, and reads JSON until the agent closes the
//! connection. Anything else is answered with `{"error": "..."}`.

pub mod status;

use std::{
    collections::VecDeque,
    io::{self, Read as _, Write as _},
    os::unix::fs::{DirBuilderExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use nix::unistd::Group;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot},
    task::{AbortHandle, JoinSet},
};
use tracing::warn;

pub use status::Status;

pub const SOCKET_NAME: &str = "ha-agent.sock";
/// Clients served at once; a new one beyond this closes the oldest (idle clients cannot
/// lock the socket up).
pub const MAX_CLIENTS: usize = 16;
/// How long one client may take to send its request and read the answer.
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(2);
/// The longest request line.
pub const MAX_REQUEST: usize = 64;

pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// A status request from a client, answered by the daemon's loop.
pub type StatusRequest = oneshot::Sender<Status>;

/// What a client may ask: one line, `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Status,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request longer than {MAX_REQUEST} bytes")]
    TooLong,
    #[error("unknown request (the protocol has one: `status`)")]
    Unknown,
}

/// Parses what a client sent: one line of at most [`MAX_REQUEST`] bytes, up to its newline
/// (or the end of the stream).
pub fn parse_request(bytes: &[u8]) -> Result<Request, RequestError> {
    let line = match bytes.iter().position(|b| *b == b'\n') {
        Some(end) => bytes.get(..end).unwrap_or_default(),
        None => bytes,
    };
    if line.len() > MAX_REQUEST {
        return Err(RequestError::TooLong);
    }
    match line.trim_ascii() {
        b"status" => Ok(Request::Status),
        _ => Err(RequestError::Unknown),
    }
}

/// Listens on the status socket; each `status` request becomes a [`StatusRequest`]. The
/// socket is mode 0600 (0660 with `group`), whatever the umask.
pub fn serve(path: &Path, group: Option<&str>) -> io::Result<mpsc::Receiver<StatusRequest>> {
    let listener = bind_private(path, group)?;
    let (tx, rx) = mpsc::channel(MAX_CLIENTS);
    tokio::spawn(accept_loop(listener, tx));
    Ok(rx)
}

/// Binds in a fresh 0700 directory, sets mode and group there, then renames the socket into
/// place: it is never reachable with the umask's mode.
fn bind_private(path: &Path, group: Option<&str>) -> io::Result<UnixListener> {
    let gid = match group {
        Some(name) => Some(
            Group::from_name(name)?
                .ok_or_else(|| io::Error::other(format!("group `{name}` does not exist")))?
                .gid,
        ),
        None => None,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    // Not the umask's mode: nobody else may replace the socket.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)?;
    let staging = dir.join(format!(".{SOCKET_NAME}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::DirBuilder::new().mode(0o700).create(&staging)?;
    let bound = (|| {
        let tmp = staging.join(SOCKET_NAME);
        let listener = std::os::unix::net::UnixListener::bind(&tmp)?;
        let mode = if gid.is_some() { 0o660 } else { 0o600 };
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
        if gid.is_some() {
            nix::unistd::chown(&tmp, None, gid)?;
        }
        // A socket file left by a killed agent is replaced.
        std::fs::rename(&tmp, path)?;
        listener.set_nonblocking(true)?;
        UnixListener::from_std(listener)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    bound
}

async fn accept_loop(listener: UnixListener, tx: mpsc::Sender<StatusRequest>) {
    let mut tasks = JoinSet::new();
    // Live clients, oldest first.
    let mut clients: VecDeque<AbortHandle> = VecDeque::new();
    let mut last_warning: Option<Instant> = None;
    loop {
        while let Some(done) = tasks.try_join_next_with_id() {
            let id = match done {
                Ok((id, ())) => id,
                Err(e) => e.id(),
            };
            clients.retain(|c| c.id() != id);
        }
        match listener.accept().await {
            Ok((stream, _)) => {
                if clients.len() >= MAX_CLIENTS
                    && let Some(oldest) = clients.pop_front()
                {
                    oldest.abort();
                }
                clients.push_back(tasks.spawn(serve_client(stream, tx.clone())));
            }
            Err(e) => {
                // EMFILE and the like: close the oldest client to free a descriptor and try
                // again at once; pause only when there is none to close.
                if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    warn!(error = %e, clients = clients.len(), "status socket: accept failed; closing the oldest client");
                    last_warning = Some(Instant::now());
                }
                match clients.pop_front() {
                    Some(oldest) => {
                        oldest.abort();
                        // Let the runtime drop the aborted client (and close its socket).
                        tokio::task::yield_now().await;
                    }
                    None => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
    }
}

async fn serve_client(mut stream: UnixStream, tx: mpsc::Sender<StatusRequest>) {
    let _ = tokio::time::timeout(CLIENT_DEADLINE, async {
        let answer = match read_request(&mut stream).await? {
            Ok(Request::Status) => {
                let (reply_tx, reply_rx) = oneshot::channel();
                if tx.send(reply_tx).await.is_err() {
                    return Ok(());
                }
                let Ok(status) = reply_rx.await else {
                    return Ok(());
                };
                serde_json::to_vec(&status).map_err(io::Error::other)?
            }
            Err(e) => serde_json::to_vec(&serde_json::json!({ "error": e.to_string() }))
                .map_err(io::Error::other)?,
        };
        stream.write_all(&answer).await?;
        stream.shutdown().await
    })
    .await;
}

/// Reads until a newline, the end of the stream, or one byte more than a request may hold.
async fn read_request(stream: &mut UnixStream) -> io::Result<Result<Request, RequestError>> {
    let mut buf = [0u8; MAX_REQUEST + 1];
    let mut len = 0;
    while let Some(free) = buf.get_mut(len..)
        && !free.is_empty()
    {
        let n = stream.read(free).await?;
        if n == 0 {
            break;
        }
        let filled = buf.get(..len + n).unwrap_or_default();
        if filled.get(len..).unwrap_or_default().contains(&b'\n') {
            return Ok(parse_request(filled));
        }
        len += n;
    }
    Ok(parse_request(buf.get(..len).unwrap_or_default()))
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
    #[error("the agent refused the request: {0}")]
    Refused(String),
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
    let value: serde_json::Value = serde_json::from_slice(&answer)?;
    if let Some(error) = value.get("error").and_then(|e| e.as_str()) {
        return Err(QueryError::Refused(error.to_owned()));
    }
    Ok(serde_json::from_value(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_status_request_is_understood() {
        for ok in [
            &b"status"[..],
            b"status\n",
            b"status\r\n",
            b"  status  \n",
            b"status\nrest",
        ] {
            assert_eq!(parse_request(ok), Ok(Request::Status), "{ok:?}");
        }
        for bad in [
            &b""[..],
            b"\n",
            b"stat",
            b"status json",
            b"STATUS",
            b"\xff\xfe",
            b"status\0",
        ] {
            assert_eq!(parse_request(bad), Err(RequestError::Unknown), "{bad:?}");
        }
        assert_eq!(
            parse_request(&[b' '; MAX_REQUEST + 1]),
            Err(RequestError::TooLong)
        );
    }

    #[tokio::test]
    async fn the_socket_is_0600_or_0660_with_a_group() {
        let dir = std::env::temp_dir().join(format!("ha-agent-ctl-{}", std::process::id()));
        let path = socket_path(&dir.join("state"));
        let _private = serve(&path, None).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // Group 0 exists everywhere.
        let _shared = serve(&path, Some("root")).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), 0);
        let err = serve(&path, Some("no-such-group-here")).unwrap_err();
        assert_eq!(err.to_string(), "group `no-such-group-here` does not exist");
        // Nothing is left beside the socket.
        let names: Vec<_> = std::fs::read_dir(dir.join("state"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [SOCKET_NAME]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
