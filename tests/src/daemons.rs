//! ha-agent and keepalived running inside test hosts, and the configurations they share.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use nix::sys::signal::Signal;

use crate::topology::{Host, Process};

/// One `vrrp_instance` of a keepalived.conf; both implementations read the same text.
#[derive(Clone, Debug)]
pub struct VrrpConf {
    pub name: String,
    pub state: &'static str,
    pub vrid: u8,
    pub priority: u8,
    /// advert_int as written in the file ("1", "0.1", "0.01").
    pub advert_int: String,
    pub version: u8,
    pub auth_pass: Option<String>,
    pub vips: Vec<String>,
    pub nopreempt: bool,
    /// Extra lines inside the instance block.
    pub extra: Vec<String>,
}

impl VrrpConf {
    /// The seed: VI_1, VRID 107, v2 every second, PASS 1111, VIP 192.168.2.200.
    pub fn seed(state: &'static str, priority: u8) -> Self {
        Self {
            name: "VI_1".into(),
            state,
            vrid: 107,
            priority,
            advert_int: "1".into(),
            version: 2,
            auth_pass: Some("1111".into()),
            vips: vec!["192.168.2.200".into()],
            nopreempt: false,
            extra: Vec::new(),
        }
    }

    /// VRRPv3 at `advert_int` seconds (no authentication in v3).
    pub fn v3(state: &'static str, priority: u8, advert_int: &str) -> Self {
        Self {
            version: 3,
            advert_int: advert_int.into(),
            auth_pass: None,
            ..Self::seed(state, priority)
        }
    }

    /// The whole keepalived.conf for this instance on `eth0`.
    pub fn render(&self) -> String {
        config(std::slice::from_ref(self))
    }

    fn render_instance(&self, c: &mut String) {
        let _ = writeln!(c, "vrrp_instance {} {{", self.name);
        let _ = writeln!(c, "    state {}", self.state);
        c.push_str("    interface eth0\n");
        let _ = writeln!(c, "    virtual_router_id {}", self.vrid);
        let _ = writeln!(c, "    priority {}", self.priority);
        let _ = writeln!(c, "    advert_int {}", self.advert_int);
        let _ = writeln!(c, "    version {}", self.version);
        if self.nopreempt {
            c.push_str("    nopreempt\n");
        }
        if let Some(pass) = &self.auth_pass {
            let _ = writeln!(
                c,
                "    authentication {{\n        auth_type PASS\n        auth_pass {pass}\n    }}"
            );
        }
        c.push_str("    virtual_ipaddress {\n");
        for vip in &self.vips {
            let _ = writeln!(c, "        {vip}");
        }
        c.push_str("    }\n");
        for line in &self.extra {
            let _ = writeln!(c, "    {line}");
        }
        c.push_str("}\n");
    }
}

/// A keepalived.conf with the seed's global_defs and `instances`.
pub fn config(instances: &[VrrpConf]) -> String {
    let mut c = String::from(
        "global_defs {\n    router_id ha_test\n    vrrp_skip_check_adv_addr\n    vrrp_garp_interval 0\n    vrrp_gna_interval 0\n}\n",
    );
    for instance in instances {
        instance.render_instance(&mut c);
    }
    c
}

/// Skew_Time: (256 − priority)/256 of a second (VRRPv2) or of the interval (VRRPv3).
pub fn skew_time(version: u8, interval: Duration, priority: u8) -> Duration {
    let base = if version == 2 {
        Duration::from_secs(1)
    } else {
        interval
    };
    base * (256 - u32::from(priority)) / 256
}

/// Master_Down_Interval: 3 × the interval + Skew_Time.
pub fn master_down_interval(version: u8, interval: Duration, priority: u8) -> Duration {
    interval * 3 + skew_time(version, interval, priority)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    HaAgent,
    Keepalived,
}

/// A VRRP daemon running in a host.
pub struct Daemon {
    pub kind: Kind,
    pub host: Host,
    pub process: Process,
    pub log: PathBuf,
    pub state_dir: PathBuf,
}

/// The ha-agent binary under test: `$HA_AGENT_BIN`, else the workspace's debug build.
pub fn agent_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("HA_AGENT_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("debug/ha-agent");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p ha-agent` (cargo xtask test does) or set HA_AGENT_BIN",
        path.display()
    );
    path
}

impl Daemon {
    /// Starts `ha-agent run` in `host` with `config`; files go to `dir`.
    pub fn agent(host: &Host, dir: &Path, config: &str) -> Self {
        Self::agent_with(host, dir, config, &agent_binary())
    }

    pub fn agent_with(host: &Host, dir: &Path, config: &str, binary: &Path) -> Self {
        Self::agent_args(host, dir, config, binary, &[])
    }

    /// [`Daemon::agent_with`] with extra `run` arguments. Without an `--xdp` among them,
    /// `$HA_TEST_XDP` (if set) is the XDP mode: `cargo xtask test` runs the interop suites
    /// once in the default mode (XDP attached) and once on sockets alone (`off`).
    pub fn agent_args(host: &Host, dir: &Path, config: &str, binary: &Path, args: &[&str]) -> Self {
        Self::agent_env(host, dir, config, binary, args, &[])
    }

    /// [`Daemon::agent_args`] with extra environment variables.
    pub fn agent_env(
        host: &Host,
        dir: &Path,
        config: &str,
        binary: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let xdp = std::env::var("HA_TEST_XDP").ok();
        let xdp: &[&str] = match &xdp {
            Some(mode) if !args.contains(&"--xdp") => &["--xdp", mode],
            _ => &[],
        };
        let conf = dir.join(format!("ha-agent-{}.conf", host.name));
        std::fs::write(&conf, config).expect("write config");
        let state_dir = dir.join(format!("state-{}", host.name));
        let log = dir.join(format!("ha-agent-{}.log", host.name));
        let mut command = host.command(binary.to_str().expect("utf-8 path"));
        command
            .args(["run", "-f"])
            .arg(&conf)
            .arg("--state-dir")
            .arg(&state_dir)
            .args(args)
            .args(xdp)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .envs(env.iter().copied());
        let process = host.spawn("ha-agent", command, &log);
        Self {
            kind: Kind::HaAgent,
            host: host.clone(),
            process,
            log,
            state_dir,
        }
    }

    /// Starts keepalived 2.2.7 (VRRP only, foreground) in `host` with `config`.
    pub fn keepalived(host: &Host, dir: &Path, config: &str) -> Self {
        Self::keepalived_with(host, dir, config, &["--vrrp"])
    }

    /// [`Daemon::keepalived`] with `which` choosing its processes: `--vrrp` for VRRP alone,
    /// nothing for every process the configuration needs (VRRP and BFD).
    pub fn keepalived_with(host: &Host, dir: &Path, config: &str, which: &[&str]) -> Self {
        let conf = dir.join(format!("keepalived-{}.conf", host.name));
        std::fs::write(&conf, config).expect("write config");
        let log = dir.join(format!("keepalived-{}.log", host.name));
        let pid = dir.join(format!("keepalived-{}.pid", host.name));
        let vrrp_pid = dir.join(format!("keepalived-vrrp-{}.pid", host.name));
        let bfd_pid = dir.join(format!("keepalived-bfd-{}.pid", host.name));
        // A SIGKILLed keepalived leaves its children zombies when no init reaps orphans
        // (containers), and keepalived refuses to start while a pid file names a live pid.
        for file in [&pid, &vrrp_pid, &bfd_pid] {
            let _ = std::fs::remove_file(file);
        }
        let mut command = host.command("keepalived");
        command
            .args(which)
            .args([
                "--dont-fork",
                "--log-console",
                "--log-detail",
                "--no-syslog",
            ])
            .arg("--use-file")
            .arg(&conf)
            .arg("--pid")
            .arg(&pid)
            .arg("--vrrp_pid")
            .arg(&vrrp_pid)
            .arg("--bfd_pid")
            .arg(&bfd_pid);
        let process = host.spawn("keepalived", command, &log);
        Self {
            kind: Kind::Keepalived,
            host: host.clone(),
            process,
            log,
            state_dir: dir.to_owned(),
        }
    }

    /// SIGTERM (what `systemctl stop` sends) and wait for the exit.
    pub fn stop(&mut self) {
        self.process.signal(Signal::SIGTERM);
        assert!(
            self.process.wait_timeout(Duration::from_secs(10)).is_some(),
            "{:?} in {} did not stop on SIGTERM",
            self.kind,
            self.host.name
        );
    }

    /// ha-agent's status, or `None` while its status socket is not up yet (or is one that a
    /// killed earlier run left).
    pub fn try_status(&self) -> Option<serde_json::Value> {
        let out = Command::new(agent_binary())
            .args(["status", "--json", "--state-dir"])
            .arg(&self.state_dir)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    /// ha-agent's status as JSON (`ha-agent status --json`).
    pub fn status(&self) -> serde_json::Value {
        assert_eq!(
            self.kind,
            Kind::HaAgent,
            "only ha-agent has a status socket"
        );
        let out = Command::new(agent_binary())
            .args(["status", "--json", "--state-dir"])
            .arg(&self.state_dir)
            .output()
            .expect("run ha-agent status");
        assert!(
            out.status.success(),
            "ha-agent status: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// `ha-agent status` as people read it.
    pub fn status_text(&self) -> String {
        let out = Command::new(agent_binary())
            .args(["status", "--state-dir"])
            .arg(&self.state_dir)
            .output()
            .expect("run ha-agent status");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The first instance's field from the status, e.g. `state`.
    pub fn instance_field(&self, field: &str) -> serde_json::Value {
        self.status()["instances"][0][field].clone()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
