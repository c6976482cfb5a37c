//! The Debian package: lintian finds no error; dpkg installs it on this machine, the
//! installed binary checks the seed configuration from the installed paths, the unit is in
//! place but neither enabled nor started; dpkg removes and purges it without a trace.

use std::{path::Path, process::Command};

fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn installed() -> bool {
    run("dpkg-query", &["-W", "-f=${Status}", "ha-agent"])
        .1
        .contains("install ok installed")
}

/// Purges the package when the test ends, also when it fails.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = run("dpkg", &["--purge", "ha-agent"]);
    }
}

#[test]
fn the_package_installs_checks_the_seed_and_goes_without_a_trace() {
    let deb = std::env::var("HA_TEST_DEB").expect(
        "HA_TEST_DEB names the .deb to test (`cargo xtask test` builds it with `cargo xtask deb`)",
    );
    let (ok, lint) = run("lintian", &["--fail-on", "error", &deb]);
    assert!(ok, "lintian: {lint}");
    assert!(
        !lint.lines().any(|l| l.starts_with("E: ")),
        "lintian: {lint}"
    );
    assert!(
        !installed(),
        "ha-agent is installed on this machine: this test installs and purges it, remove it first"
    );
    let _purge = Purge;
    let (ok, out) = run("dpkg", &["--install", &deb]);
    assert!(ok, "dpkg --install: {out}");
    for path in [
        "/usr/sbin/ha-agent",
        "/usr/lib/systemd/system/ha-agent.service",
        "/etc/ha-agent/keepalived.conf.example",
        "/usr/share/man/man8/ha-agent.8.gz",
        "/usr/share/man/man8/ha-agent-run.8.gz",
        "/usr/share/doc/ha-agent/copyright",
        "/usr/share/ha-agent/grafana/ha-agent.json",
    ] {
        assert!(Path::new(path).exists(), "{path} missing");
    }
    // The installed binary on the installed example (the seed) and on the seed itself.
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/seed-keepalived.conf");
    for conf in ["/etc/ha-agent/keepalived.conf.example", seed] {
        let (ok, out) = run("/usr/sbin/ha-agent", &["check-config", "-f", conf]);
        assert!(ok, "check-config {conf}: {out}");
        assert!(out.contains("1 instance(s), 0 error(s)"), "{out}");
    }
    // Installed, not configured: neither enabled nor running.
    assert!(!Path::new("/etc/systemd/system/multi-user.target.wants/ha-agent.service").exists());
    assert!(!Path::new("/etc/ha-agent/keepalived.conf").exists());
    let (running, _) = run("pgrep", &["-f", "/usr/sbin/ha-agent run"]);
    assert!(!running, "the package started the agent");
    // The unit as installed, man page included.
    let (ok, out) = run(
        "systemd-analyze",
        &["verify", "/usr/lib/systemd/system/ha-agent.service"],
    );
    assert!(ok && out.trim().is_empty(), "systemd-analyze verify: {out}");
    let (ok, out) = run("dpkg", &["--remove", "ha-agent"]);
    assert!(ok, "dpkg --remove: {out}");
    assert!(!Path::new("/usr/sbin/ha-agent").exists());
    assert!(!Path::new("/usr/lib/systemd/system/ha-agent.service").exists());
    let (ok, out) = run("dpkg", &["--purge", "ha-agent"]);
    assert!(ok, "dpkg --purge: {out}");
    assert!(
        !Path::new("/etc/ha-agent").exists(),
        "configuration left after purge"
    );
    assert!(!installed());
}
