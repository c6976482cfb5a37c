//! FRR's daemons inside a test host, each with the zebra it talks to. vrrpd is set up as
//! FRR's documentation asks: the operator creates a macvlan in bridge mode per virtual router
//! and family with the virtual MAC (00:00:5e:00:02:VRID for IPv6), a random link-local
//! address and the VIP; FRR switches it between master and backup with `protodown`. bfdd
//! runs the peers of its `bfd` block and answers `vtysh` in the host.

use std::{
    net::Ipv6Addr,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use crate::topology::{Host, Process};

const DAEMONS: &str = "/usr/lib/frr";

/// zebra, then `name` with `conf`, as FRR's user, everything in `dir`/frr-HOST: the
/// directory, zebra and the daemon.
fn start(host: &Host, dir: &Path, name: &str, conf: &str) -> (PathBuf, Process, Process) {
    // FRR drops to its own user: its sockets, pid files and logs go where it may write.
    let dir = dir.join(format!("frr-{}", host.name));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(dir.join("zebra.conf"), "").unwrap();
    std::fs::write(dir.join(format!("{name}.conf")), conf).unwrap();
    let daemon = |name: &str, extra: &[String]| {
        let mut command = host.command(&format!("{DAEMONS}/{name}"));
        let d = dir.display();
        command.args(["-u", "frr", "-g", "frr", "-P", "0"]);
        command.args(["-z", &format!("{d}/zserv.api")]);
        command.args(["-i", &format!("{d}/{name}.pid")]);
        command.args(["--vty_socket", &d.to_string()]);
        command.args(["-f", &format!("{d}/{name}.conf")]);
        command.args(["--log", &format!("file:{d}/{name}.log")]);
        command.args(extra);
        host.spawn(name, command, &dir.join(format!("{name}.out")))
    };
    let zebra = daemon("zebra", &[]);
    crate::wait_until(
        "zebra's API socket",
        std::time::Duration::from_secs(5),
        || dir.join("zserv.api").exists().then_some(()),
    );
    let extra = match name {
        "bfdd" => vec![format!("--bfdctl={}/bfdd.sock", dir.display())],
        _ => Vec::new(),
    };
    let process = daemon(name, &extra);
    (dir, zebra, process)
}

/// Whether FRR is installed.
pub fn available() -> bool {
    Path::new(DAEMONS).join("vrrpd").exists()
}

pub struct Frr {
    /// vrrpd first: dropped (killed) before the zebra it talks to.
    vrrpd: Option<Process>,
    _zebra: Process,
    host: Host,
    /// The macvlan carrying the virtual MAC and the VIP.
    pub macvlan: String,
    pub dir: PathBuf,
}

impl Frr {
    /// An IPv6 virtual router `vrid` on `host`'s eth0 at `priority`, adverts every
    /// `interval_ms`, backing up `vip`.
    pub fn start_v6(
        host: &Host,
        dir: &Path,
        vrid: u8,
        priority: u8,
        interval_ms: u32,
        vip: Ipv6Addr,
    ) -> Self {
        let macvlan = format!("vrrp6-2-{vrid}");
        // addrgenmode is set after creation: this iproute2 refuses it in the same request.
        host.sh(&[
            "ip", "link", "add", &macvlan, "link", "eth0", "type", "macvlan", "mode", "bridge",
        ]);
        host.sh(&["ip", "link", "set", &macvlan, "addrgenmode", "random"]);
        let mac = format!("00:00:5e:00:02:{vrid:02x}");
        host.sh(&["ip", "link", "set", &macvlan, "address", &mac]);
        host.sh(&["ip", "addr", "add", &format!("{vip}/64"), "dev", &macvlan]);
        host.sh(&["ip", "link", "set", &macvlan, "up"]);
        crate::wait_until(
            &format!("{macvlan}'s link-local address"),
            std::time::Duration::from_secs(5),
            || {
                host.sh(&["ip", "-6", "addr", "show", "dev", &macvlan, "scope", "link"])
                    .contains("fe80")
                    .then_some(())
            },
        );
        let conf = format!(
            "interface eth0\n vrrp {vrid} version 3\n vrrp {vrid} priority {priority}\n \
             vrrp {vrid} advertisement-interval {interval_ms}\n vrrp {vrid} ipv6 {vip}\n"
        );
        let (dir, zebra, vrrpd) = start(host, dir, "vrrpd", &conf);
        let frr = Self {
            vrrpd: Some(vrrpd),
            _zebra: zebra,
            host: host.clone(),
            macvlan,
            dir,
        };
        crate::wait_until(
            "vrrpd's virtual router started",
            std::time::Duration::from_secs(5),
            || frr.state(),
        );
        frr
    }

    /// The state vrrpd last logged a transition to ("Backup", "Master").
    pub fn state(&self) -> Option<String> {
        let log = self.log();
        log.lines()
            .filter(|l| l.contains("[IPv6]"))
            .filter_map(|l| l.split(" -> ").nth(1))
            .next_back()
            .map(|s| s.trim().to_owned())
    }

    /// Whether FRR is master: its last transition was to Master and its macvlan is not
    /// protodown.
    pub fn is_master(&self) -> bool {
        let link = self
            .host
            .sh(&["ip", "-d", "link", "show", "dev", &self.macvlan]);
        self.state().as_deref() == Some("Master") && !link.contains("protodown on")
    }

    /// vrrpd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("vrrpd.log")).unwrap_or_default()
    }

    /// Kills vrrpd (-9): no priority-0 advert.
    pub fn crash(&mut self) {
        if let Some(mut vrrpd) = self.vrrpd.take() {
            vrrpd.kill_group();
        }
    }
}

/// FRR's bfdd with the peers of its `bfd` block.
pub struct Bfdd {
    /// bfdd first: dropped (killed) before zebra.
    bfdd: Option<Process>,
    _zebra: Process,
    host: Host,
    pub dir: PathBuf,
}

impl Bfdd {
    /// bfdd on `host` with `peers`: the lines inside FRR's `bfd` block.
    pub fn start(host: &Host, dir: &Path, peers: &str) -> Self {
        let (dir, zebra, bfdd) = start(host, dir, "bfdd", &format!("bfd\n{peers}\n"));
        let frr = Self {
            bfdd: Some(bfdd),
            _zebra: zebra,
            host: host.clone(),
            dir,
        };
        crate::wait_until(
            "bfdd answering vtysh",
            std::time::Duration::from_secs(5),
            || frr.peers().map(|_| ()),
        );
        frr
    }

    /// `show bfd peers json`, once bfdd answers.
    pub fn peers(&self) -> Option<serde_json::Value> {
        let d = self.dir.display().to_string();
        let out = self
            .host
            .run(&["vtysh", "--vty_socket", &d, "-c", "show bfd peers json"]);
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The peer `address` as bfdd shows it.
    pub fn peer(&self, address: &str) -> Option<serde_json::Value> {
        self.peers()?
            .as_array()?
            .iter()
            .find(|p| p["peer"] == address)
            .cloned()
    }

    /// Runs `commands` in bfdd's configuration (`configure terminal` first).
    pub fn configure(&self, commands: &[&str]) {
        let d = self.dir.display().to_string();
        let mut args = vec!["vtysh", "--vty_socket", &d, "-c", "configure terminal"];
        for c in commands {
            args.extend(["-c", c]);
        }
        self.host.sh(&args);
    }

    /// bfdd's pid (its own process group).
    pub fn pid(&self) -> u32 {
        self.bfdd.as_ref().map_or(0, |p| p.pid())
    }

    /// Kills bfdd (-9): its sessions fall silent.
    pub fn crash(&mut self) {
        if let Some(mut bfdd) = self.bfdd.take() {
            bfdd.kill_group();
        }
    }
}
