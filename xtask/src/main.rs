//! `cargo xtask <command>`: setup, build, test, demo and benchmarks for ha-agent.

mod bench;
mod chaos;
mod demo;
mod fuzz;
mod setup;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand, ValueEnum as _};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, test and demo ha-agent")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what building and testing need (Debian packages, rust-src, bpf-linker).
    Setup,
    /// Build only the XDP object (target/bpfel-unknown-none/<profile>/ha-ebpf).
    BuildEbpf {
        #[arg(long)]
        release: bool,
    },
    /// Build target/release/ha-agent with the XDP object embedded.
    Build,
    /// Build the Debian package (target/debian/ha-agent_*.deb) with cargo-deb.
    Deb,
    /// Benchmarks, ha-agent beside keepalived (needs root; writes docs/benchmarks.md).
    Bench {
        #[command(subcommand)]
        which: BenchCmd,
    },
    /// Run the hot-standby demo on a LAN of network namespaces (needs root).
    Demo,
    /// Agents under a seeded schedule of combined faults, invariants checked from outside
    /// (needs root); writes target/chaos/.../report.txt and timeline.svg.
    Chaos {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Minutes of faults.
        #[arg(long, default_value_t = 1.0)]
        minutes: f64,
        /// 2 or 3 agents.
        #[arg(long, default_value_t = 2)]
        agents: usize,
        /// `vrrp_strict` on every agent (the RFC's drop of adverts configured otherwise).
        #[arg(long)]
        strict: bool,
        /// The MariaDB pair (GTID dual master) with a writer through the VIP, and the
        /// database faults (server killed, database-only partition, planned switchover).
        #[arg(long)]
        db: bool,
        /// A three-member etcd cluster as every instance's witness (`etcd_witness`), its
        /// faults (a node cut from etcd, quorum lost), and two holders during partitions
        /// judged as violations.
        #[arg(long)]
        witness: bool,
    },
    /// Fuzz the advert codec, IPv4 parser, configuration loader and status request parser.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Targets to run (default: all).
        targets: Vec<String>,
    },
    /// Setup, build, fmt, clippy, then every unit and integration test (needs root).
    Test {
        /// Extra arguments passed to `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Failover latency after a crash or a graceful stop, v2 1 s, v3 0.1 s and 0.01 s.
    Failover {
        #[arg(long, default_value_t = 20)]
        trials: usize,
    },
    /// Crash and graceful takeover with the etcd witness, beside plain VRRP and keepalived
    /// (v2 1 s, v3 0.1 s).
    Witness {
        #[arg(long, default_value_t = 5)]
        trials: usize,
        /// Seconds of idle pair per case for the keep-alives' cost (with and without).
        #[arg(long, default_value_t = 60)]
        cost_window: u64,
        /// Only the cost.
        #[arg(long)]
        cost_only: bool,
    },
    /// Crash failover of the MariaDB pair under writes, asynchronous and with `semi_sync on`:
    /// rows lost and the time per insert.
    SemiSync {
        #[arg(long, default_value_t = 20)]
        trials: usize,
    },
    /// Forged adverts at the highest rate one thread sends, at a MASTER/BACKUP pair.
    Flood {
        /// Seconds of flood per implementation.
        #[arg(long, default_value_t = 10)]
        window: u64,
    },
    /// Rewrite docs/benchmarks.md from the JSON results, without measuring.
    Report,
    /// BFD: crash takeover with `bfd_takeover` beside VRRPv3 at 10 ms alone, false Downs
    /// under stress-ng per interval, and the cost of a session pair beside keepalived's and
    /// FRR's.
    Bfd {
        #[arg(long, default_value_t = 20)]
        trials: usize,
        /// BFD intervals (ms) for the false-Down runs; the first is the takeover's.
        #[arg(long, value_delimiter = ',', default_value = "1,2,5,10")]
        intervals: Vec<f64>,
        /// Seconds of stress-ng per interval.
        #[arg(long, default_value_t = 60)]
        window: u64,
        /// One part only (takeover, false-downs or cost), saved in docs/bench/bfd-runs/.
        #[arg(long)]
        only: Option<bench::bfd::Part>,
    },
    /// Check-triggered switchover (keepalived, ha-agent RFC, ha-agent fast_preempt), then the
    /// database's planned switchover and crash failover under writes.
    Switchover {
        #[arg(long, default_value_t = 10)]
        trials: usize,
        /// Trials of each database case (fresh pair each).
        #[arg(long, default_value_t = 5)]
        db_trials: usize,
        /// Only the database cases.
        #[arg(long)]
        db_only: bool,
    },
    /// CPU, memory and adverts sent with 1 and 255 instances.
    Steady {
        /// Measurement window in seconds.
        #[arg(long, default_value_t = 60)]
        window: u64,
        /// Only 255 instances at 10 ms, with `stress-ng --cpu 2 --io 1 --vm 1` running.
        #[arg(long)]
        stress: bool,
        /// Only 255 instances at 10 ms, unloaded (saved apart, as steady-largest).
        #[arg(long, conflicts_with = "stress")]
        largest: bool,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Setup => setup::install(),
        Cmd::BuildEbpf { release } => build_ebpf(release),
        Cmd::Build => build(),
        Cmd::Deb => {
            setup::install()?;
            deb().map(|_| ())
        }
        Cmd::Bench {
            which: BenchCmd::Report,
        } => bench::report::write_markdown(&workspace_root()),
        Cmd::Bench { which } => {
            setup::install()?;
            build()?;
            let binary = workspace_root().join("target/release/ha-agent");
            match which {
                BenchCmd::Failover { trials } => bench::report::save(
                    &workspace_root(),
                    "failover",
                    bench::failover(&binary, trials)?,
                ),
                BenchCmd::Witness {
                    trials,
                    cost_window,
                    cost_only,
                } => {
                    if !cost_only {
                        bench::report::save(
                            &workspace_root(),
                            "witness",
                            bench::witness(&binary, trials)?,
                        )?;
                    }
                    let window = std::time::Duration::from_secs(cost_window);
                    bench::report::save(
                        &workspace_root(),
                        "witness-cost",
                        bench::witness_cost::run(&binary, window)?,
                    )
                }
                BenchCmd::SemiSync { trials } => bench::report::save(
                    &workspace_root(),
                    "semi-sync",
                    bench::semi_sync(&binary, trials)?,
                ),
                BenchCmd::Flood { window } => bench::report::save(
                    &workspace_root(),
                    "flood",
                    bench::flood(&binary, std::time::Duration::from_secs(window))?,
                ),
                BenchCmd::Report => unreachable!("handled above"),
                BenchCmd::Bfd {
                    trials,
                    intervals,
                    window,
                    only,
                } => {
                    let cases = bench::bfd::run(
                        &binary,
                        trials,
                        &intervals,
                        std::time::Duration::from_secs(window),
                        only,
                    )?;
                    let which = match only {
                        Some(part) => format!(
                            "bfd-runs/{}-{}",
                            part.to_possible_value()
                                .map_or("part".into(), |v| v.get_name().to_owned()),
                            bench::report::sh("date", &["-u", "+%Y%m%d-%H%M"])
                        ),
                        None => "bfd".into(),
                    };
                    bench::report::save(&workspace_root(), &which, cases)
                }
                BenchCmd::Switchover {
                    trials,
                    db_trials,
                    db_only,
                } => {
                    if !db_only {
                        bench::report::save(
                            &workspace_root(),
                            "switchover",
                            bench::switchover(&binary, trials)?,
                        )?;
                    }
                    bench::report::save(
                        &workspace_root(),
                        "db-switchover",
                        bench::database(&binary, db_trials)?,
                    )
                }
                BenchCmd::Steady {
                    window,
                    stress,
                    largest,
                } => bench::report::save(
                    &workspace_root(),
                    match (stress, largest) {
                        (true, _) => "steady-stress",
                        (false, true) => "steady-largest",
                        (false, false) => "steady",
                    },
                    bench::steady(
                        &binary,
                        std::time::Duration::from_secs(window),
                        stress,
                        largest,
                    )?,
                ),
            }
        }
        Cmd::Demo => {
            setup::install()?;
            build()?;
            demo::run(&workspace_root().join("target/release/ha-agent"))
        }
        Cmd::Chaos {
            seed,
            minutes,
            agents,
            strict,
            db,
            witness,
        } => {
            setup::install()?;
            build()?;
            chaos::main(
                &workspace_root().join("target/release/ha-agent"),
                &chaos::Options {
                    seed,
                    duration: std::time::Duration::from_secs_f64(minutes.max(0.0) * 60.0),
                    agents,
                    strict,
                    db,
                    witness,
                },
            )
        }
        Cmd::Fuzz { seconds, targets } => {
            setup::install()?;
            fuzz::run(seconds, &targets)
        }
        Cmd::Test { args } => test(&args),
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs a command in the workspace root, echoing it; fails if it fails.
pub fn run(command: &mut Command) -> Result<()> {
    eprintln!("+ {}", describe(command));
    let status = command
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("starting {}", describe(command)))?;
    if !status.success() {
        bail!("{} failed ({status})", describe(command));
    }
    Ok(())
}

fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The nightly cargo, for the BPF target (cargo's own env would pin the stable toolchain).
fn nightly_cargo() -> Command {
    let mut command = Command::new("rustup");
    command
        .args(["run", "nightly", "cargo"])
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO");
    command
}

/// Same flags as aya-build uses when ha-agent's build.rs builds the object.
fn bpf_cargo(subcommand: &str, release: bool) -> Command {
    let mut command = nightly_cargo();
    command.args([
        subcommand,
        "--package",
        "ha-ebpf",
        "--bins",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
    ]);
    if release {
        command.arg("--release");
    }
    command.env(
        "CARGO_ENCODED_RUSTFLAGS",
        [
            "--cfg=bpf_target_arch=\"x86_64\"",
            "-Cdebuginfo=2",
            "-Clink-arg=--btf",
        ]
        .join("\x1f"),
    );
    command
}

fn build_ebpf(release: bool) -> Result<()> {
    run(&mut bpf_cargo("build", release))?;
    let profile = if release { "release" } else { "debug" };
    eprintln!("built target/bpfel-unknown-none/{profile}/ha-ebpf");
    Ok(())
}

fn build() -> Result<()> {
    run(cargo().args(["build", "--release", "--package", "ha-agent"]))?;
    eprintln!("built target/release/ha-agent");
    Ok(())
}

/// The release binary, its man pages (from the clap definitions) and the .deb around them.
fn deb() -> Result<std::path::PathBuf> {
    build()?;
    let root = workspace_root();
    run(
        std::process::Command::new(root.join("target/release/ha-agent"))
            .arg("manpages")
            .arg(root.join("target/man")),
    )?;
    run(cargo().args(["deb", "--package", "ha-agent", "--no-build"]))?;
    let deb = std::fs::read_dir(root.join("target/debian"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .context("cargo deb wrote no .deb")?;
    eprintln!("built {}", deb.display());
    Ok(deb)
}

/// The seed of the chaos smoke run in `cargo xtask test`.
const CHAOS_SMOKE_SEED: u64 = 1;

/// Seconds per fuzz target in `cargo xtask test` (a smoke run; `cargo xtask fuzz` goes longer).
const FUZZ_SMOKE_SECONDS: u64 = 10;

fn test(args: &[String]) -> Result<()> {
    let start = Instant::now();
    setup::install()?;
    let step = Instant::now();
    run(cargo().args(["build", "--workspace", "--all-targets"]))?;
    eprintln!("build took {:.0?}", step.elapsed());
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    let mut lint_ebpf = bpf_cargo("clippy", true);
    lint_ebpf.args(["--", "-D", "warnings"]);
    run(&mut lint_ebpf)?;
    // The package test installs it.
    let package = deb()?;
    let step = Instant::now();
    run(cargo()
        .args(["test", "--workspace"])
        .args(args)
        .env("HA_TEST_DEB", &package))?;
    eprintln!("tests took {:.0?}", step.elapsed());
    if args.is_empty() {
        // The interop and replication suites again, every agent on its sockets alone (the
        // first run has the XDP program attached, the default).
        let step = Instant::now();
        run(cargo()
            .args([
                "test",
                "-p",
                "ha-tests",
                "--test",
                "vrrp_keepalived",
                "--test",
                "vrrp_agents",
                "--test",
                "sync_group",
                "--test",
                "vmac",
                "--test",
                "ipv6",
                "--test",
                "replication",
            ])
            .env("HA_TEST_XDP", "off"))?;
        eprintln!("interop suites on sockets took {:.0?}", step.elapsed());
    }
    if args.is_empty() {
        // A minute of combined faults with a fixed seed, and half a minute with three agents
        // (longer runs: `cargo xtask chaos`).
        let step = Instant::now();
        for (agents, seconds) in [(2, 60), (3, 30)] {
            chaos::main(
                &workspace_root().join("target/debug/ha-agent"),
                &chaos::Options {
                    seed: CHAOS_SMOKE_SEED,
                    duration: std::time::Duration::from_secs(seconds),
                    agents,
                    strict: false,
                    db: false,
                    witness: false,
                },
            )?;
        }
        eprintln!("chaos smoke took {:.0?}", step.elapsed());
    }
    if args.is_empty() {
        let step = Instant::now();
        fuzz::run(FUZZ_SMOKE_SECONDS, &[])?;
        eprintln!("fuzz smoke took {:.0?}", step.elapsed());
    }
    eprintln!("cargo xtask test passed in {:.0?}", start.elapsed());
    Ok(())
}
