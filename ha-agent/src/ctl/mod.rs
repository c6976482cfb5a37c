//! The status socket (`<state-dir>/ha-agent.sock`) and what it answers.
//!
//! Protocol: the client sends one line and reads JSON until the agent closes the connection:
//! `status` (the [`Status`]) or `switchover` (`{"ok": "..."}` or `{"error": "..."}`; only
//! root or the agent's own user may ask). Anything else is answered with `{"error": "..."}`.

pub mod http;
pub mod metrics;
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

/// A client's request, answered by the daemon's loop.
pub enum Command {
    Status(oneshot::Sender<Status>),
    /// Planned switchover of the MASTER instances a database follows.
    Switchover(oneshot::Sender<Result<String, String>>),
}

/// How long a switchover may take before its client gives up (the hand-over waits up to
/// `drain_timeout` for the peer).
pub const SWITCHOVER_DEADLINE: Duration = Duration::from_secs(120);

/// What a client may ask: one line, `status` or `switchover`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Status,
    Switchover,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request longer than {MAX_REQUEST} bytes")]
    TooLong,
    #[error("unknown request (the protocol knows `status` and `switchover`)")]
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
        b"switchover" => Ok(Request::Switchover),
        _ => Err(RequestError::Unknown),
    }
}

/// Listens on the status socket; each request becomes a [`Command`] on `tx`. The socket is
/// mode 0600 (0660 with `group`), whatever the umask.
pub fn serve(path: &Path, group: Option<&str>, tx: mpsc::Sender<Command>) -> io::Result<()> {
    let listener = bind_private(path, group)?;
    tokio::spawn(accept_loop(listener, tx));
    Ok(())
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

async fn accept_loop(listener: UnixListener, tx: mpsc::Sender<Command>) {
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

async fn serve_client(mut stream: UnixStream, tx: mpsc::Sender<Command>) {
    let request = match tokio::time::timeout(CLIENT_DEADLINE, read_request(&mut stream)).await {
        Ok(Ok(request)) => request,
        _ => return,
    };
    let deadline = match request {
        Ok(Request::Switchover) => SWITCHOVER_DEADLINE,
        _ => CLIENT_DEADLINE,
    };
    let _ = tokio::time::timeout(deadline, async {
        let answer = match request {
            Ok(Request::Status) => {
                let (reply_tx, reply_rx) = oneshot::channel();
                if tx.send(Command::Status(reply_tx)).await.is_err() {
                    return Ok(());
                }
                let Ok(status) = reply_rx.await else {
                    return Ok(());
                };
                serde_json::to_vec(&status).map_err(io::Error::other)?
            }
            Ok(Request::Switchover) => {
                let result = if may_change_state(&stream) {
                    let (reply_tx, reply_rx) = oneshot::channel();
                    if tx.send(Command::Switchover(reply_tx)).await.is_err() {
                        return Ok(());
                    }
                    reply_rx
                        .await
                        .unwrap_or_else(|_| Err("the agent is stopping".into()))
                } else {
                    Err("switchover needs root (or the agent's own user)".into())
                };
                let json = match result {
                    Ok(what) => serde_json::json!({ "ok": what }),
                    Err(why) => serde_json::json!({ "error": why }),
                };
                serde_json::to_vec(&json).map_err(io::Error::other)?
            }
            Err(e) => serde_json::to_vec(&serde_json::json!({ "error": e.to_string() }))
                .map_err(io::Error::other)?,
        };
        stream.write_all(&answer).await?;
        stream.shutdown().await
    })
    .await;
}

/// Requests that change state come from root or the agent's own user only (a status group
/// may read, not act).
fn may_change_state(stream: &UnixStream) -> bool {
    stream
        .peer_cred()
        .is_ok_and(|c| c.uid() == 0 || c.uid() == nix::unistd::geteuid().as_raw())
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

/// Sends `request` to the agent listening on `path`; its JSON answer, or its error.
fn ask(path: &Path, request: &str, limit: Duration) -> Result<serde_json::Value, QueryError> {
    let mut stream =
        std::os::unix::net::UnixStream::connect(path).map_err(|source| QueryError::Connect {
            path: path.display().to_string(),
            source,
        })?;
    stream.set_read_timeout(Some(limit))?;
    stream.write_all(format!("{request}\n").as_bytes())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let value: serde_json::Value = serde_json::from_slice(&answer)?;
    if let Some(error) = value.get("error").and_then(|e| e.as_str()) {
        return Err(QueryError::Refused(error.to_owned()));
    }
    Ok(value)
}

/// Asks the agent listening on `path` for its status.
pub fn query(path: &Path) -> Result<Status, QueryError> {
    Ok(serde_json::from_value(ask(
        path,
        "status",
        Duration::from_secs(5),
    )?)?)
}

/// Asks the agent listening on `path` for a planned switchover; what it did.
pub fn switchover(path: &Path) -> Result<String, QueryError> {
    let value = ask(path, "switchover", SWITCHOVER_DEADLINE)?;
    Ok(value
        .get("ok")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_status_and_switchover_are_understood() {
        assert_eq!(parse_request(b"switchover\n"), Ok(Request::Switchover));
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
        let (tx, _rx) = mpsc::channel(1);
        serve(&path, None, tx.clone()).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // Group 0 exists everywhere.
        serve(&path, Some("root"), tx.clone()).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), 0);
        let err = serve(&path, Some("no-such-group-here"), tx).unwrap_err();
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
