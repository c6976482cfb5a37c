//! A real etcd cluster (Debian's `etcd-server`), one member per host, for the witness tests.

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

use anyhow::{Result, bail};
use nix::sys::signal::Signal;

use crate::topology::{Host, Process, Topology};

pub const CLIENT_PORT: u16 = 2379;
const PEER_PORT: u16 = 2380;

pub struct Member {
    pub host: Host,
    process: Option<Process>,
}

pub struct Cluster {
    pub members: Vec<Member>,
}

/// Whether the etcd server is installed (`cargo xtask setup` installs it).
pub fn available() -> bool {
    std::path::Path::new("/usr/bin/etcd").exists()
}

impl Cluster {
    /// One member on each of `hosts` of `t`, started together; returns once every member
    /// reports itself healthy (a leader elected).
    pub fn start(t: &Topology, hosts: &[&str]) -> Result<Self> {
        if !available() {
            bail!("etcd is not installed (`cargo xtask setup` installs etcd-server)");
        }
        let initial: Vec<String> = hosts
            .iter()
            .map(|h| format!("{h}=http://{}:{PEER_PORT}", t.host(h).ip))
            .collect();
        let token = t.prefix.clone();
        let mut members = Vec::new();
        for name in hosts {
            let host = t.host(name).clone();
            let dir = t.dir().join(format!("etcd-{name}"));
            std::fs::create_dir_all(&dir)?;
            let ip = host.ip;
            let mut command = host.command("etcd");
            command
                .arg(format!("--name={name}"))
                .arg(format!("--data-dir={}", dir.join("data").display()))
                .arg(format!("--listen-client-urls=http://{ip}:{CLIENT_PORT}"))
                .arg(format!("--advertise-client-urls=http://{ip}:{CLIENT_PORT}"))
                .arg(format!("--listen-peer-urls=http://{ip}:{PEER_PORT}"))
                .arg(format!(
                    "--initial-advertise-peer-urls=http://{ip}:{PEER_PORT}"
                ))
                .arg(format!("--initial-cluster={}", initial.join(",")))
                .arg(format!("--initial-cluster-token={token}"))
                .arg("--initial-cluster-state=new")
                // A LAN of veths: elections in a fraction of a second.
                .args(["--heartbeat-interval=50", "--election-timeout=500"])
                .env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH);
            let process = host.spawn("etcd", command, &dir.join("etcd.log"));
            members.push(Member {
                host,
                process: Some(process),
            });
        }
        let cluster = Self { members };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !cluster.members.iter().all(Member::healthy) {
            if std::time::Instant::now() > deadline {
                bail!("the etcd cluster did not become healthy within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(cluster)
    }

    /// The `endpoints` line of an `etcd_witness` block.
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("http://{}:{CLIENT_PORT}", m.host.ip))
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn ips(&self) -> Vec<Ipv4Addr> {
        self.members.iter().map(|m| m.host.ip).collect()
    }
}

impl Member {
    /// Whether the member answers `/health` with a leader elected.
    pub fn healthy(&self) -> bool {
        let addr = SocketAddr::from((self.host.ip, CLIENT_PORT));
        crate::http::try_request(&self.host, "GET", addr, "/health")
            .is_ok_and(|(code, body)| code == 200 && body.contains("\"true\""))
    }

    /// SIGSTOP (true) or SIGCONT (false): a member that answers nothing, as if cut off.
    pub fn freeze(&self, on: bool) {
        if let Some(p) = &self.process {
            p.signal(if on { Signal::SIGSTOP } else { Signal::SIGCONT });
        }
    }
}
