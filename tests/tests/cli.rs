//! The `ha-agent` command line: check-config, status, and SIGHUP reload of a running agent.

use std::{net::Ipv4Addr, process::Command, time::Duration};

use ha_tests::{
    Daemon, Topology, VrrpConf,
    daemons::{agent_binary, config},
    wait::assert_never,
    wait_until,
};
use nix::sys::signal::Signal;

fn check_config(text: &str, dir: &std::path::Path) -> (i32, String) {
    run_agent(text, dir, &["check-config"])
}

/// `ha-agent ARGS -f FILE` with `text` as the file: exit code and stdout (the file as `F`).
fn run_agent(text: &str, dir: &std::path::Path, args: &[&str]) -> (i32, String) {
    let path = dir.join("check.conf");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(agent_binary())
        .args(args)
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).replace(&*path.to_string_lossy(), "F"),
    )
}

#[test]
fn check_config_exit_codes_and_messages() {
    let dir = std::env::temp_dir().join(format!("ha-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seed = include_str!("../../docs/seed-keepalived.conf");
    let (code, out) = check_config(seed, &dir);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("F:22: warning: extra '}' ignored"), "{out}");
    assert!(out.contains("F: 1 instance(s), 0 error(s)"), "{out}");

    let (code, out) = check_config(&seed.replace("priority 150", "priority 300"), &dir);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("F:12: error: `priority` 300 is out of range 1..255"),
        "{out}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unsupported_keywords_are_errors_unless_allowed() {
    let dir = std::env::temp_dir().join(format!("ha-cli-unsup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seed = include_str!("../../docs/seed-keepalived.conf")
        .replace("interface enp1s0", "interface hat-none0");
    let text = format!("{seed}\nstatic_ipaddress {{\n 10.9.0.1/24 dev eth0\n}}\n");
    let line = seed.lines().count() + 2;
    let (code, out) = check_config(&text, &dir);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "F:{line}: error: `static_ipaddress` is not supported by ha-agent: these addresses \
             are not added"
        )),
        "{out}"
    );
    let (code, out) = run_agent(&text, &dir, &["check-config", "--allow-unsupported"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(allowed by --allow-unsupported)"), "{out}");
    // `run` refuses the file before it touches any interface (and this one does not exist).
    let (code, _) = run_agent(&text, &dir, &["run", "--state-dir", dir.to_str().unwrap()]);
    assert_ne!(code, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn two_instances(third: bool) -> String {
    let mut vi1 = VrrpConf::seed("MASTER", 255);
    vi1.name = "VI_1".into();
    let mut other = VrrpConf::seed("MASTER", 255);
    if third {
        other.name = "VI_3".into();
        other.vrid = 109;
        other.vips = vec!["192.168.2.202".into()];
    } else {
        other.name = "VI_2".into();
        other.vrid = 108;
        other.vips = vec!["192.168.2.201".into()];
    }
    config(&[vi1, other])
}

#[test]
fn status_and_sighup_reload() {
    let t = Topology::new(&["a"]);
    let a = t.host("a");
    let vip = |last: u8| Ipv4Addr::new(192, 168, 2, last);
    let agent = Daemon::agent(a, t.dir(), &two_instances(false));
    // Priority 255 owns the addresses: master at once.
    wait_until("both VIPs", Duration::from_secs(3), || {
        (a.has_address("eth0", vip(200)) && a.has_address("eth0", vip(201))).then_some(())
    });
    let out = Command::new(agent_binary())
        .args(["status", "--state-dir"])
        .arg(&agent.state_dir)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("VI_1 (eth0 vrid 107 v2): MASTER priority 255"),
        "{table}"
    );
    assert!(
        table.contains("VIPs: 192.168.2.201/32 (held here)"),
        "{table}"
    );
    let before = agent.status()["instances"][0]["last_transition"].clone();

    // VI_2 goes, VI_3 comes, VI_1 is untouched and keeps its VIP throughout.
    std::fs::write(t.dir().join("ha-agent-a.conf"), two_instances(true)).unwrap();
    agent.process.signal(Signal::SIGHUP);
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_never("VI_1's VIP missing", Duration::from_secs(2), || {
                !a.has_address("eth0", vip(200))
            })
        });
        wait_until("VI_3's VIP", Duration::from_secs(3), || {
            a.has_address("eth0", vip(202)).then_some(())
        });
        wait_until("VI_2's VIP removed", Duration::from_secs(3), || {
            (!a.has_address("eth0", vip(201))).then_some(())
        });
    });
    let status = agent.status();
    let names: Vec<&str> = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["VI_1", "VI_3"]);
    assert_eq!(
        status["instances"][0]["last_transition"], before,
        "VI_1 kept its state"
    );

    // A VIP moving from VI_3 to VI_1 in one reload stays up: VI_3 lets go before VI_1 takes it.
    let mut vi1 = VrrpConf::seed("MASTER", 255);
    vi1.vips = vec!["192.168.2.200".into(), "192.168.2.202".into()];
    let mut vi3 = VrrpConf::seed("MASTER", 255);
    vi3.name = "VI_3".into();
    vi3.vrid = 109;
    vi3.vips = vec!["192.168.2.203".into()];
    std::fs::write(t.dir().join("ha-agent-a.conf"), config(&[vi1, vi3])).unwrap();
    agent.process.signal(Signal::SIGHUP);
    wait_until("VI_3's new VIP", Duration::from_secs(3), || {
        a.has_address("eth0", vip(203)).then_some(())
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(a.has_address("eth0", vip(202)), "the moved VIP is gone");
    assert!(a.has_address("eth0", vip(200)));

    // A broken configuration is refused and the running one stays.
    std::fs::write(
        t.dir().join("ha-agent-a.conf"),
        "vrrp_instance X {\n priority 999\n}\n",
    )
    .unwrap();
    agent.process.signal(Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(agent.status()["instances"].as_array().unwrap().len(), 2);
    assert!(
        agent
            .log_text()
            .contains("reload failed, keeping the running configuration")
    );
    assert!(a.has_address("eth0", vip(200)) && a.has_address("eth0", vip(202)));
    assert!(a.has_address("eth0", vip(203)));
}

/// Scripts that could never run are errors at their line, never silent skips.
#[test]
fn check_config_refuses_scripts_that_cannot_run() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("ha-cli-scripts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let good = dir.join("good.sh");
    let plain = dir.join("plain.sh");
    let open = dir.join("open");
    std::fs::create_dir_all(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let writable = open.join("w.sh");
    for (path, mode) in [(&good, 0o755), (&plain, 0o644), (&writable, 0o755)] {
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let text = format!(
        "global_defs {{
    script_user no-such-user-ha
    enable_script_security
}}
vrrp_script missing {{
    script \"{missing}\"
}}
vrrp_script plain {{
    script \"{plain}\"
    user nobody
}}
vrrp_script relative {{
    script \"good.sh arg\"
    user nobody
}}
vrrp_script other {{
    script \"{good}\"
    user no-such-user-ha2
}}
",
        missing = dir.join("missing.sh").display(),
        plain = plain.display(),
        good = good.display(),
    );
    let (code, out) = check_config(&text, &dir);
    assert_eq!(code, 1, "{out}");
    for expected in [
        "F:2: error: script user `no-such-user-ha` does not exist",
        "F:6: error: script `",
        "missing.sh`: No such file or directory",
        "F:9: error: script `",
        "plain.sh` is not an executable file",
        "F:13: error: script `good.sh` needs an absolute path",
        "F:16: error: script user `no-such-user-ha2` does not exist",
    ] {
        assert!(out.contains(expected), "{expected:?} not in\n{out}");
    }
    assert!(out.contains("no-such-user-ha2"), "{out}");

    // enable_script_security: a root script in a directory anybody can write is refused.
    let text = format!(
        "global_defs {{\n    enable_script_security\n}}\nvrrp_script w {{\n    script \"{}\"\n}}\n",
        writable.display()
    );
    let (code, out) = check_config(&text, &dir);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("F:5: error: enable_script_security: `")
            && out.contains("would run as root but"),
        "{out}"
    );
    // As an unprivileged user it may run.
    let (code, out) = check_config(
        &text.replace(
            "enable_script_security",
            "enable_script_security\n    script_user nobody",
        ),
        &dir,
    );
    assert_eq!(code, 0, "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--peer`: weights compared with the other node's priorities.
#[test]
fn check_config_with_the_peer_warns_about_weights_that_cannot_move_the_vip() {
    let dir = std::env::temp_dir().join(format!("ha-cli-peer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let node = |state: &str, priority: u8, weight: i32| {
        format!(
            "vrrp_script chk {{\n    script \"/bin/true\"\n    weight {weight}\n}}\n\
             vrrp_instance VI_1 {{\n    state {state}\n    interface eth0\n    \
             virtual_router_id 107\n    priority {priority}\n    virtual_ipaddress {{\n        \
             192.168.2.200\n    }}\n    track_script {{\n        chk\n    }}\n}}\n"
        )
    };
    let peer = dir.join("peer.conf");
    let run = |ours: String, theirs: String| {
        std::fs::write(&peer, theirs).unwrap();
        let path = dir.join("check.conf");
        std::fs::write(&path, ours).unwrap();
        let out = Command::new(agent_binary())
            .args(["check-config", "-f"])
            .arg(&path)
            .arg("--peer")
            .arg(&peer)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout)
            .replace(&*path.to_string_lossy(), "F")
            .replace(&*peer.to_string_lossy(), "P");
        (out.status.code().unwrap(), text)
    };
    // The seed's weights: 150 - 50 = 100 < 120.
    let (code, out) = run(node("MASTER", 150, -50), node("BACKUP", 120, -50));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 error(s), 0 warning(s)"), "{out}");
    // -20 cannot take 150 below 120.
    let (code, out) = run(node("MASTER", 150, -20), node("BACKUP", 120, -20));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("F:5: warning: instance VI_1: with every weighted tracker failing it still advertises 130, not below 120 of its peer at P:5"),
        "{out}"
    );
    // A positive weight lifts the BACKUP above the MASTER.
    let (_, out) = run(node("MASTER", 150, -50), node("BACKUP", 120, 40));
    assert!(
        out.contains("F:5: warning: instance VI_1 is `state MASTER` but advertises 150 when healthy, below 160"),
        "{out}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
