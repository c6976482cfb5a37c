//! Asking an agent's HTTP endpoints from inside a host, and checking metrics with promtool.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    process::{Command, Stdio},
    time::Duration,
};

use crate::topology::Host;

/// `METHOD path` over HTTP/1.0 from inside `host`: (status code, body).
pub fn request(host: &Host, method: &str, addr: SocketAddr, path: &str) -> (u16, String) {
    try_request(host, method, addr, path)
        .unwrap_or_else(|e| panic!("{method} {path} at {addr}: {e}"))
}

/// [`request`], with a failure to connect or read as an error.
pub fn try_request(
    host: &Host,
    method: &str,
    addr: SocketAddr,
    path: &str,
) -> std::io::Result<(u16, String)> {
    host.in_netns(|| {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(stream, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let code = answer
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((code, body))
    })
}

/// `promtool check metrics` on `text`: whether it passed, and what it said.
pub fn promtool(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus)");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes()).expect("write to promtool");
    }
    let out = child.wait_with_output().expect("promtool");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
