//! `ha-agent`: run the agent, ask it for its status, or check a configuration.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ha_agent::{config, ctl, daemon, net::link::Link};

const DEFAULT_CONFIG: &str = "/etc/keepalived/keepalived.conf";
const DEFAULT_STATE_DIR: &str = "/run/ha-agent";

#[derive(Parser)]
#[command(version, about = "VRRP high-availability agent; reads keepalived.conf")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum XdpArg {
    Auto,
    Native,
    /// Generic XDP (the kernel's skb hook).
    #[value(alias = "generic")]
    Skb,
    Off,
}

#[derive(Subcommand)]
enum Command {
    /// Run in the foreground until SIGTERM/SIGINT; SIGHUP re-reads the configuration.
    Run {
        #[arg(short = 'f', long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Where the status socket lives.
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// Let this group's members query the status socket (mode 0660; default 0600, root only).
        #[arg(long, value_name = "GROUP")]
        status_group: Option<String>,
        /// SCHED_RR priority of the agent, with its memory locked; 0: normal scheduling and
        /// no locking. Checks and notify scripts always run with normal scheduling.
        #[arg(long, value_name = "PRIORITY", default_value_t = daemon::realtime::DEFAULT_PRIORITY,
              value_parser = clap::value_parser!(u8).range(0..=99))]
        realtime_priority: u8,
        /// The XDP program: auto (native, else skb, else none with a warning), native, skb
        /// (generic XDP), or off (adverts checked on the sockets only; the default until the
        /// daemon runs its advert path through the program).
        #[arg(long, value_enum, default_value_t = XdpArg::Off)]
        xdp: XdpArg,
    },
    /// Show the running agent's instances.
    Status {
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check a configuration: exit 0 if it can run (warnings allowed), 1 if it has errors.
    CheckConfig {
        #[arg(short = 'f', long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The other node's keepalived.conf: also warn about tracker weights that cannot
        /// move the VIP, or that make the configured MASTER the lower node.
        #[arg(long, value_name = "PEER_CONFIG")]
        peer: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Run {
            config,
            state_dir,
            status_group,
            realtime_priority,
            xdp,
        } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .init();
            realtime(realtime_priority);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            match runtime.block_on(daemon::run(daemon::Options {
                config,
                state_dir,
                status_group,
                xdp: match xdp {
                    XdpArg::Auto => daemon::xdp::Choice::Auto,
                    XdpArg::Native => daemon::xdp::Choice::Native,
                    XdpArg::Skb => daemon::xdp::Choice::Generic,
                    XdpArg::Off => daemon::xdp::Choice::Off,
                },
            })) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!("ha-agent: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Status { state_dir, json } => {
            let status = ctl::query(&ctl::socket_path(&state_dir))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", status.render());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { config, peer } => check_config(&config, peer.as_deref()),
    }
}

/// Real-time scheduling and locked memory before anything else starts, each refusal logged.
fn realtime(priority: u8) {
    use daemon::realtime::{lock_memory, schedule};
    use tracing::{info, warn};
    if priority == 0 {
        info!("real-time scheduling off (--realtime-priority 0)");
        return;
    }
    match schedule(priority) {
        Ok(()) => info!("scheduling: SCHED_RR priority {priority} (not inherited by scripts)"),
        Err(e) => warn!("real-time scheduling refused ({e}): running with normal scheduling"),
    }
    match lock_memory() {
        Ok(()) => info!("memory locked (mlockall, as pages are touched)"),
        Err(e) => warn!("memory not locked: {e}"),
    }
}

fn check_config(path: &Path, peer: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut loaded = config::load(path)?;
    if let Some(peer) = peer {
        // The peer's file is read without looking at this host (its scripts live there).
        let other = config::load_from(&config::FileSystem, peer)?;
        for d in other.diagnostics.errors() {
            loaded
                .diagnostics
                .error(&d.loc, format!("in the peer's file: {}", d.message));
        }
        config::compare_with_peer(&loaded.config, &other.config, &mut loaded.diagnostics);
    }
    for d in loaded.diagnostics.iter() {
        println!("{d}");
    }
    if loaded.diagnostics.suppressed() > 0 {
        println!("... {} more not shown", loaded.diagnostics.suppressed());
    }
    let errors = loaded.diagnostics.error_count();
    let mut warnings = loaded.diagnostics.warning_count();
    // The file may be meant for another host: a missing interface is worth a warning here.
    for inst in &loaded.config.instances {
        if let Err(e) = Link::lookup(&inst.interface) {
            println!(
                "{}: warning: instance {}: {e} on this host",
                inst.loc, inst.name
            );
            warnings += 1;
        }
    }
    println!(
        "{}: {} instance(s), {} error(s), {} warning(s)",
        path.display(),
        loaded.config.instances.len(),
        errors,
        warnings
    );
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
