//! A LAN of network namespaces: one "lan" namespace holding a bridge, and one namespace per
//! host, each joined to the bridge by a veth pair (`eth0` in the host).

use std::{
    fs::File,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{
        Mutex,
        atomic::{AtomicU32, Ordering},
    },
};

use nix::{
    sched::{CloneFlags, setns},
    sys::signal::{Signal, killpg},
    unistd::Pid,
};

const NETNS_DIR: &str = "/run/netns";
const PREFIX: &str = "hat-";
/// The hosts' subnet. It exists only inside the namespaces this harness creates.
pub const SUBNET: [u8; 3] = [192, 168, 2];
/// The second subnet of a routed topology ([`Topology::routed`]), on a bridge of its own.
pub const SUBNET2: [u8; 3] = [192, 168, 3];
/// The router's address (the last host octet) on each subnet of a routed topology.
const ROUTER_OCTET: u8 = 254;
pub const PREFIX_LEN: u8 = 24;
/// The hosts' IPv6 subnet (documentation prefix), once [`Topology::enable_ipv6`] ran.
pub const SUBNET6: [u16; 3] = [0x2001, 0xdb8, 2];

/// One host on the LAN.
#[derive(Debug, Clone)]
pub struct Host {
    /// Short name given by the test ("a", "b", ...).
    pub name: String,
    /// The network namespace of the host.
    pub netns: String,
    /// The host's LAN interface, always `eth0`.
    pub iface: String,
    pub ip: Ipv4Addr,
    pub mac: String,
    /// The bridge port of this host's veth in the lan namespace.
    lan_port: String,
}

/// A process started inside a host; its process group is killed when dropped.
pub struct Process {
    child: Child,
    pub name: String,
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the process only (not its group).
    pub fn signal(&self, signal: Signal) {
        let _ = nix::sys::signal::kill(Pid::from_raw(self.child.id() as i32), signal);
    }

    /// SIGKILLs the whole process group (the process and everything it forked).
    pub fn kill_group(&mut self) {
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }

    /// Waits for the process to exit, up to `timeout`; returns its exit status if it did.
    pub fn wait_timeout(
        &mut self,
        timeout: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        let start = std::time::Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.is_running() {
            self.kill_group();
        }
    }
}

/// Namespaces, bridge and veths of one test; all removed on drop.
pub struct Topology {
    pub prefix: String,
    /// Configs and logs of this topology's processes; kept if the test fails.
    dir: PathBuf,
    lan: String,
    hosts: Vec<Host>,
    created: Mutex<Vec<String>>,
    /// Cables cut without the RTNL lock ([`Topology::set_cable_quietly`]), by host.
    cables: Mutex<Vec<(String, crate::cable::Cable)>>,
}

static NEXT_TOPOLOGY: AtomicU32 = AtomicU32::new(0);

impl Topology {
    /// Builds a LAN with one host per name; host `i` gets address 192.168.2.(10+i) and the
    /// MAC 02:00:00:00:00:(10+i) (locally administered, so ARP assertions are readable).
    pub fn new(names: &[&str]) -> Self {
        remove_stale_namespaces();
        let prefix = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT_TOPOLOGY.fetch_add(1, Ordering::Relaxed)
        );
        let lan = format!("{prefix}-lan");
        let dir = std::env::temp_dir().join(&prefix);
        std::fs::create_dir_all(&dir).expect("create the test directory");
        let mut topology = Topology {
            prefix: prefix.clone(),
            dir,
            lan: lan.clone(),
            hosts: Vec::new(),
            created: Mutex::new(Vec::new()),
            cables: Mutex::new(Vec::new()),
        };
        topology.add_netns(&lan);
        sh(&["ip", "-n", &lan, "link", "set", "lo", "up"]);
        topology.add_bridge("br0");
        for (i, name) in names.iter().enumerate() {
            let host = topology.add_host(name, i as u8);
            topology.hosts.push(host);
        }
        topology
    }

    /// A bridge in the lan namespace that forwards at once and floods multicast to every
    /// port (no snooping: VRRP's group has no IGMP member reports).
    fn add_bridge(&self, name: &str) {
        sh(&[
            "ip",
            "-n",
            &self.lan,
            "link",
            "add",
            name,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
            "mcast_snooping",
            "0",
        ]);
        sh(&["ip", "-n", &self.lan, "link", "set", name, "up"]);
    }

    fn add_netns(&self, name: &str) {
        sh(&["ip", "netns", "add", name]);
        self.created.lock().unwrap().push(name.to_owned());
        // IPv6 off: no router solicitations or MLD reports to disturb counters and timings.
        netns_sysctl(name, "net.ipv6.conf.all.disable_ipv6", "1");
        netns_sysctl(name, "net.ipv6.conf.default.disable_ipv6", "1");
    }

    fn add_host(&self, name: &str, index: u8) -> Host {
        self.add_host_on(name, index, "br0", SUBNET)
    }

    fn add_host_on(&self, name: &str, index: u8, bridge: &str, subnet: [u8; 3]) -> Host {
        let netns = format!("{}-{name}", self.prefix);
        self.add_netns(&netns);
        let octet = 10 + index;
        let ip = Ipv4Addr::new(subnet[0], subnet[1], subnet[2], octet);
        let mac = format!("02:00:00:00:00:{octet:02x}");
        let lan_port = format!("p-{name}");
        sh(&[
            "ip", "-n", &self.lan, "link", "add", &lan_port, "type", "veth", "peer", "name",
            "eth0", "netns", &netns,
        ]);
        sh(&[
            "ip", "-n", &self.lan, "link", "set", &lan_port, "master", bridge, "up",
        ]);
        sh(&["ip", "-n", &netns, "link", "set", "lo", "up"]);
        sh(&[
            "ip", "-n", &netns, "link", "set", "eth0", "address", &mac, "up",
        ]);
        sh(&[
            "ip",
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{ip}/{PREFIX_LEN}"),
            "dev",
            "eth0",
        ]);
        Host {
            name: name.to_owned(),
            netns,
            iface: "eth0".into(),
            ip,
            mac,
            lan_port,
        }
    }

    /// Turns IPv6 on in every host (it is off by default: no router solicitations or MLD
    /// reports disturb the other tests): a link-local address from the MAC and
    /// [`Host::ip6`], both usable at once (no duplicate address detection).
    pub fn enable_ipv6(&self) {
        for host in &self.hosts {
            for conf in ["all", "default", "eth0"] {
                netns_sysctl(
                    &host.netns,
                    &format!("net.ipv6.conf.{conf}.accept_dad"),
                    "0",
                );
            }
            for conf in ["all", "default", "eth0"] {
                netns_sysctl(
                    &host.netns,
                    &format!("net.ipv6.conf.{conf}.disable_ipv6"),
                    "0",
                );
            }
            host.sh(&[
                "ip",
                "addr",
                "add",
                &format!("{}/64", host.ip6()),
                "dev",
                "eth0",
                "nodad",
            ]);
            crate::wait_until(
                &format!("{}'s link-local address", host.name),
                std::time::Duration::from_secs(5),
                || host.has_address("eth0", host.link_local()).then_some(()),
            );
        }
    }

    /// Two subnets joined by a router namespace: `first` on [`SUBNET`] (the LAN of
    /// [`Topology::new`]), `second` on [`SUBNET2`], a bridge of its own. No multicast or
    /// broadcast crosses between them; unicast is routed.
    pub fn routed(first: &[&str], second: &[&str]) -> Self {
        let mut t = Self::new(first);
        let lan = t.lan.clone();
        t.add_bridge("br1");
        let router = format!("{}-router", t.prefix);
        t.add_netns(&router);
        netns_sysctl(&router, "net.ipv4.ip_forward", "1");
        sh(&["ip", "-n", &router, "link", "set", "lo", "up"]);
        for (i, (bridge, subnet)) in [("br0", SUBNET), ("br1", SUBNET2)].iter().enumerate() {
            let port = format!("r-{bridge}");
            let eth = format!("eth{i}");
            sh(&[
                "ip", "-n", &lan, "link", "add", &port, "type", "veth", "peer", "name", &eth,
                "netns", &router,
            ]);
            sh(&[
                "ip", "-n", &lan, "link", "set", &port, "master", bridge, "up",
            ]);
            sh(&["ip", "-n", &router, "link", "set", &eth, "up"]);
            let [a, b, c] = *subnet;
            let addr = format!("{a}.{b}.{c}.{ROUTER_OCTET}/{PREFIX_LEN}");
            sh(&["ip", "-n", &router, "addr", "add", &addr, "dev", &eth]);
        }
        let index = t.hosts.len();
        for (j, name) in second.iter().enumerate() {
            let host = t.add_host_on(name, (index + j) as u8, "br1", SUBNET2);
            t.hosts.push(host);
        }
        for host in &t.hosts {
            let (local, other) = if host.ip.octets()[..3] == SUBNET {
                (SUBNET, SUBNET2)
            } else {
                (SUBNET2, SUBNET)
            };
            let [a, b, c] = other;
            let [x, y, z] = local;
            sh(&[
                "ip",
                "-n",
                &host.netns,
                "route",
                "add",
                &format!("{a}.{b}.{c}.0/{PREFIX_LEN}"),
                "via",
                &format!("{x}.{y}.{z}.{ROUTER_OCTET}"),
            ]);
        }
        t
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name} in this topology"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Simulated host death: SIGKILL to the process group and the host's cable pulled.
    pub fn crash(&self, host: &str, process: &mut Process) {
        process.kill_group();
        self.set_cable(host, false);
    }

    /// Frames the host has sent onto the LAN (received by its bridge port).
    pub fn frames_from(&self, host: &str) -> u64 {
        let out = Command::new("ip")
            .args([
                "-n",
                &self.lan,
                "-j",
                "-s",
                "link",
                "show",
                "dev",
                &self.host(host).lan_port,
            ])
            .output()
            .expect("ip link show");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j output");
        json[0]["stats64"]["rx"]["packets"]
            .as_u64()
            .expect("rx packets")
    }

    /// Isolates a host's bridge port, or ends it: isolated ports do not reach each other but
    /// still reach the others (a partition between hosts that an observer sees both sides of).
    pub fn set_isolated(&self, host: &str, on: bool) {
        let port = &self.host(host).lan_port;
        sh(&[
            "bridge",
            "-n",
            &self.lan,
            "link",
            "set",
            "dev",
            port,
            "isolated",
            if on { "on" } else { "off" },
        ]);
    }

    /// Moves the LAN's delivery of each host's frames (the bridge, the other hosts' receive
    /// paths) off the sender onto a kernel thread per bridge port (threaded NAPI), as on
    /// separate machines: a veth otherwise delivers in the sending process's context, and
    /// its CPU time is charged with what every receiver does. For measuring a sender's own
    /// cost only: a kernel thread at normal priority waits behind a loaded machine.
    pub fn deliver_on_threads(&self) {
        for host in &self.hosts {
            let port = &host.lan_port;
            // A veth has NAPI (and so a thread to run it on) once GRO is on, and uses it for
            // a frame only when the sending veth has no TSO (else the frame is `netif_rx`ed
            // and delivered in the sender's context again).
            sh(&[
                "ip", "netns", "exec", &self.lan, "ethtool", "-K", port, "gro", "on",
            ]);
            sh(&[
                "ip",
                "netns",
                "exec",
                &host.netns,
                "ethtool",
                "-K",
                "eth0",
                "tso",
                "off",
            ]);
            sh(&[
                "ip",
                "netns",
                "exec",
                &self.lan,
                "sh",
                "-c",
                &format!("echo 1 > /sys/class/net/{port}/threaded"),
            ]);
            // A queue in front of the veth, as a NIC has (a veth has none): a burst the
            // bridge's thread has not drained waits there (the veth stops its queue while
            // its 256-frame ring is full) instead of being dropped.
            sh(&[
                "ip",
                "netns",
                "exec",
                &host.netns,
                "tc",
                "qdisc",
                "replace",
                "dev",
                "eth0",
                "root",
                "pfifo",
                "limit",
                "1000",
            ]);
        }
    }

    /// Turns GRO on a host's bridge port on or off: with it off, the host's veth takes no
    /// XDP frames (a driver that stopped taking them).
    pub fn set_gro(&self, host: &str, on: bool) {
        let port = &self.host(host).lan_port;
        let on = if on { "on" } else { "off" };
        sh(&[
            "ip", "netns", "exec", &self.lan, "ethtool", "-K", port, "gro", on,
        ]);
    }

    /// Cuts a host's cable (`up` false) or mends it without taking the RTNL lock: every frame
    /// it sends is dropped at its bridge port (see [`crate::cable`]). The first call attaches
    /// the dropping program, which takes the lock: make it before the moment that counts.
    pub fn set_cable_quietly(&self, host: &str, up: bool) {
        let mut cables = self.cables.lock().unwrap();
        if !cables.iter().any(|(h, _)| h == host) {
            let port = self.host(host).lan_port.clone();
            let path = format!("{NETNS_DIR}/{}", self.lan);
            let cable = std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                        setns(ns, CloneFlags::CLONE_NEWNET).expect("setns");
                        let index = nix::net::if_::if_nametoindex(port.as_str()).expect("the port");
                        crate::cable::Cable::attach(index)
                    })
                    .join()
                    .expect("attaching the cable's program")
            })
            .unwrap_or_else(|e| panic!("the cable of {host}: {e}"));
            cables.push((host.to_owned(), cable));
        }
        let (_, cable) = cables.iter().find(|(h, _)| h == host).unwrap();
        cable.set_cut(!up).expect("cutting the cable");
    }

    /// Takes a host's link down or up from the bridge side, as if its cable were pulled.
    pub fn set_cable(&self, host: &str, up: bool) {
        let port = &self.host(host).lan_port;
        sh(&[
            "ip",
            "-n",
            &self.lan,
            "link",
            "set",
            port,
            if up { "up" } else { "down" },
        ]);
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Hosts first: deleting the lan namespace then removes the bridge and the veths.
        for netns in self.created.lock().unwrap().iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", netns]).status();
        }
        if std::thread::panicking() {
            eprintln!("test files kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Host {
    /// A command that runs inside this host's namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.netns, program]);
        command
    }

    /// Runs `args` inside the host and returns its output (whatever the exit status).
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {args:?} in {}: {e}", self.name))
    }

    /// Runs `args` inside the host, panicking with its stderr if it fails; returns stdout.
    pub fn sh(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} in host {} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `command` (built with [`Host::command`]) in its own process group, with its
    /// output appended to `log`.
    pub fn spawn(&self, name: &str, mut command: Command, log: &Path) -> Process {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("open log");
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} in host {}: {e}", self.name));
        Process {
            child,
            name: name.to_owned(),
        }
    }

    /// Runs `f` on a thread that has entered this host's network namespace.
    pub fn in_netns<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let path = format!("{NETNS_DIR}/{}", self.netns);
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                    setns(ns, CloneFlags::CLONE_NEWNET).expect("setns");
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Whether `ip` (IPv4 or IPv6) is configured on `iface`.
    pub fn has_address(&self, iface: &str, ip: impl Into<IpAddr>) -> bool {
        let ip = ip.into().to_string();
        let out = self.sh(&["ip", "-o", "addr", "show", "dev", iface]);
        out.split_whitespace()
            .any(|word| word.split('/').next() == Some(ip.as_str()))
    }

    /// The MAC address this host's ARP (IPv6: neighbour) cache holds for `ip`, if any (any
    /// state but FAILED).
    pub fn arp_entry(&self, ip: impl Into<IpAddr>) -> Option<String> {
        let out = self.sh(&["ip", "neigh", "show", &ip.into().to_string()]);
        let words: Vec<&str> = out.split_whitespace().collect();
        words
            .iter()
            .position(|w| *w == "lladdr")
            .and_then(|i| words.get(i + 1))
            .map(|mac| mac.to_string())
    }

    /// The link-local address the kernel derives from the MAC (EUI-64).
    pub fn link_local(&self) -> Ipv6Addr {
        let m = self.mac_octets();
        let word = |a: u8, b: u8| u16::from_be_bytes([a, b]);
        Ipv6Addr::new(
            0xfe80,
            0,
            0,
            0,
            word(m[0] ^ 0x02, m[1]),
            word(m[2], 0xff),
            word(0xfe, m[3]),
            word(m[4], m[5]),
        )
    }

    /// The host's address on [`SUBNET6`]: the same last octet as its IPv4 one.
    pub fn ip6(&self) -> Ipv6Addr {
        let [a, b, c] = SUBNET6;
        Ipv6Addr::new(a, b, c, 0, 0, 0, 0, u16::from(self.ip.octets()[3]))
    }

    fn mac_octets(&self) -> [u8; 6] {
        let mut octets = [0u8; 6];
        for (o, part) in octets.iter_mut().zip(self.mac.split(':')) {
            *o = u8::from_str_radix(part, 16).unwrap_or(0);
        }
        octets
    }

    /// Whether `ip` answers one ping within a second.
    pub fn ping_once(&self, ip: impl Into<IpAddr>) -> bool {
        self.run(&["ping", "-c", "1", "-W", "1", &ip.into().to_string()])
            .status
            .success()
    }
}

fn netns_sysctl(netns: &str, key: &str, value: &str) {
    sh(&[
        "ip",
        "netns",
        "exec",
        netns,
        "sysctl",
        "-q",
        "-w",
        &format!("{key}={value}"),
    ]);
}

/// Runs a command in the test's own namespace; panics with its stderr if it fails.
fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e} (is iproute2 installed?)"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Removes namespaces named `hat-<pid>-...` whose pid no longer runs (a killed earlier run).
fn remove_stale_namespaces() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            // Processes that run was running inside its own namespaces are ours to stop.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", &name]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    if let Ok(pid) = pid.parse::<i32>() {
                        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                }
            }
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    }
}
