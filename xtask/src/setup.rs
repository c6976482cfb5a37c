//! `cargo xtask setup`: idempotent installation of the build and test dependencies on Debian.

use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::run as exec;

/// Debian packages: LLVM 22 for bpf-linker, and the real peers and tools the tests drive.
const PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "zlib1g-dev",
    "libzstd-dev",
    "keepalived",
    "mariadb-server",
    "mariadb-client",
    "iproute2",
    "procps",
    "tcpdump",
    "iputils-ping",
    "iputils-arping",
    "socat",
    "stress-ng",
    // etcd-client compiles etcd's protocol files; the witness tests run a real cluster.
    "protobuf-compiler",
    "libprotobuf-dev",
    "etcd-server",
    // FRR's vrrpd: the IPv6 interop suite runs it beside ha-agent.
    "frr",
    // Wireshark's dissectors judge the IPv6 adverts on the wire (tests/tests/ipv6.rs).
    "tshark",
    // bench steady: GRO on a veth gives it NAPI, so delivery can run on a kernel thread.
    "ethtool",
    // promtool checks /metrics; lintian the package; systemd-analyze the unit.
    "prometheus",
    "lintian",
    "systemd",
];
const BPF_LINKER_VERSION: &str = "0.13.0";
const CARGO_FUZZ_VERSION: &str = "0.13.2";
const CARGO_DEB_VERSION: &str = "3.8.0";

pub fn install() -> Result<()> {
    let start = std::time::Instant::now();
    debian_packages()?;
    nightly_rust_src()?;
    bpf_linker()?;
    cargo_fuzz()?;
    cargo_deb()?;
    eprintln!("setup: everything present ({:.1?})", start.elapsed());
    Ok(())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn debian_packages() -> Result<()> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: installing Debian packages: {}", missing.join(" "));
    if !is_root() {
        bail!("missing Debian packages {missing:?}; run `cargo xtask setup` as root");
    }
    exec(Command::new("apt-get").arg("update").arg("-qq"))?;
    exec(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .with_context(|| format!("installing {missing:?}"))?;
    if missing.contains(&"frr") {
        // The tests start their own FRR daemons inside their namespaces: the package's
        // service must not run zebra on this machine's own interfaces.
        let _ = Command::new("systemctl")
            .args(["disable", "--now", "frr"])
            .status();
    }
    Ok(())
}

fn nightly_rust_src() -> Result<()> {
    let out = Command::new("rustup")
        .args(["component", "list", "--toolchain", "nightly", "--installed"])
        .output()
        .context("running rustup")?;
    if !out.status.success() {
        bail!(
            "the `nightly` toolchain is missing; the XDP program needs it (a nightly built on \
             LLVM 22, which bpf-linker 0.13 links against): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.starts_with("rust-src"))
    {
        return Ok(());
    }
    eprintln!("setup: installing rust-src for the nightly toolchain");
    exec(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

/// Whether `program --version` names `version`.
fn has_version(program: &str, version: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(version))
}

fn bpf_linker() -> Result<()> {
    if has_version("bpf-linker", BPF_LINKER_VERSION) {
        return Ok(());
    }
    eprintln!("setup: building bpf-linker {BPF_LINKER_VERSION} against Debian's LLVM 22 (3-4 min)");
    exec(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--locked",
            ])
            .args(["--no-default-features", "--features", "llvm-22"])
            .env("LLVM_PREFIX", "/usr/lib/llvm-22"),
    )
    .context("installing bpf-linker (needs llvm-22-dev)")
}

fn cargo_fuzz() -> Result<()> {
    if has_version("cargo-fuzz", CARGO_FUZZ_VERSION) {
        return Ok(());
    }
    eprintln!("setup: installing cargo-fuzz {CARGO_FUZZ_VERSION} (about 1 min)");
    exec(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args([
            "install",
            "cargo-fuzz",
            "--version",
            CARGO_FUZZ_VERSION,
            "--locked",
        ]),
    )
    .context("installing cargo-fuzz")
}

fn cargo_deb() -> Result<()> {
    if has_version("cargo-deb", CARGO_DEB_VERSION) {
        return Ok(());
    }
    eprintln!("setup: installing cargo-deb {CARGO_DEB_VERSION} (about 2 min)");
    exec(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args([
            "install",
            "cargo-deb",
            "--version",
            CARGO_DEB_VERSION,
            "--locked",
        ]),
    )
    .context("installing cargo-deb")
}
