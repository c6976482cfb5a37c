//! `ha-agent`: run the agent, ask it for its status, or check a configuration.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ha_agent::{config, ctl, daemon, net::link::Link, preflight};

const DEFAULT_CONFIG: &str = "/etc/keepalived/keepalived.conf";
const DEFAULT_STATE_DIR: &str = "/run/ha-agent";

#[derive(Parser)]
#[command(version, about = "VRRP high-availability agent; reads keepalived.conf")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
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
        /// The XDP program: auto (native, else skb, else the sockets alone with a warning that
        /// says why), native, skb (generic XDP), or off (adverts and ARP watched on sockets).
        #[arg(long, value_enum, default_value_t = XdpArg::Auto)]
        xdp: XdpArg,
        /// Log lines for people (journald adds timestamps) or one JSON object per line.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Serve /metrics, /status, /health and the role endpoints /master and /backup on
        /// this address (off by default; bind to localhost or a management network).
        #[arg(long, value_name = "ADDR:PORT")]
        http_listen: Option<std::net::SocketAddr>,
        /// Run although the file uses keywords ha-agent does not support (each one is an
        /// error otherwise: docs/keywords.md says what ignoring it changes).
        #[arg(long)]
        allow_unsupported: bool,
    },
    /// Show the running agent's instances.
    Status {
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// Print the raw JSON (its schema: docs/status-schema.md).
        #[arg(long, conflicts_with = "watch")]
        json: bool,
        /// Redraw the table in place every second until interrupted.
        #[arg(long)]
        watch: bool,
    },
    /// Planned, zero-loss switchover, run on the master: its database goes read-only, the
    /// peer's executes everything it wrote, then this node resigns and the peer promotes.
    Switchover {
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
    },
    /// The MySQL/MariaDB pair of a `mysql_replication` block.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Write the man pages (section 8) into DIR (used by `cargo xtask deb`).
    #[command(hide = true)]
    Manpages { dir: PathBuf },
    /// Check a configuration: exit 0 if it can run (warnings allowed), 1 if it has errors.
    CheckConfig {
        #[arg(short = 'f', long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The other node's keepalived.conf: also warn about tracker weights that cannot
        /// move the VIP, or that make the configured MASTER the lower node.
        #[arg(long, value_name = "PEER_CONFIG")]
        peer: Option<PathBuf>,
        /// Accept the file uses keywords ha-agent does not support (each one is an
        /// error otherwise: docs/keywords.md says what ignoring it changes).
        #[arg(long)]
        allow_unsupported: bool,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Set up a fresh pair once, from either node: check both servers' settings (printing
    /// the my.cnf lines to change), create the agent's and the replication accounts, start
    /// replication both ways and check that a row written on each side arrives.
    Setup {
        #[arg(short = 'f', long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The mysql_replication block (default: the only one).
        #[arg(long)]
        db: Option<String>,
        /// An account on both servers that may create users and change replication.
        #[arg(long, default_value = "root")]
        admin_user: String,
        /// Its password's file (none: an empty password).
        #[arg(long)]
        admin_password_file: Option<PathBuf>,
    },
    /// Both servers and both directions of replication, checked now.
    Status {
        #[arg(short = 'f', long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        db: Option<String>,
        /// Where the anti-flap record lives.
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge the automatic failovers so far (anti-flap allows `max_auto_failovers` again)
    /// and forget the received position kept for the promotion gate (the loss of what a
    /// restarted replica had received and not applied is accepted).
    Ack {
        #[arg(short = 'f', long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        db: Option<String>,
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
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
            log_format,
            http_listen,
            allow_unsupported,
        } => {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info".into());
            match log_format {
                LogFormat::Text => tracing_subscriber::fmt()
                    .with_env_filter(filter)
                    .with_writer(std::io::stderr)
                    .init(),
                LogFormat::Json => tracing_subscriber::fmt()
                    .json()
                    .with_env_filter(filter)
                    .with_writer(std::io::stderr)
                    .init(),
            }
            daemon::realtime::single_arena();
            realtime(realtime_priority);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            let result = runtime.block_on(daemon::run(daemon::Options {
                config,
                state_dir,
                status_group,
                http_listen,
                xdp: match xdp {
                    XdpArg::Auto => daemon::xdp::Choice::Auto,
                    XdpArg::Native => daemon::xdp::Choice::Native,
                    XdpArg::Skb => daemon::xdp::Choice::Generic,
                    XdpArg::Off => daemon::xdp::Choice::Off,
                },
                allow_unsupported,
            }));
            // Everything the daemon holds is released by now: an XDP load still running on
            // a blocking thread (a stop right after start) must not hold the exit, as
            // dropping the runtime would until it finished.
            runtime.shutdown_background();
            match result {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!("ha-agent: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Status {
            state_dir,
            json,
            watch,
        } => {
            let path = ctl::socket_path(&state_dir);
            if watch {
                return watch_status(&path);
            }
            let status = ctl::query(&path)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", status.render());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Switchover { state_dir } => {
            let done = ctl::switchover(&ctl::socket_path(&state_dir))?;
            println!("switchover: {done}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Db { command } => db_command(command),
        Command::Manpages { dir } => manpages(&dir),
        Command::CheckConfig {
            config,
            peer,
            allow_unsupported,
        } => check_config(&config, peer.as_deref(), allow_unsupported),
    }
}

/// The `mysql_replication` block `name` of `path` (default: the only one).
fn replication(path: &Path, name: Option<&str>) -> anyhow::Result<config::MysqlReplication> {
    let loaded = preflight::load(path, false)?;
    if loaded.diagnostics.has_errors() {
        let errors: Vec<String> = loaded.diagnostics.errors().map(|d| d.to_string()).collect();
        anyhow::bail!("{}", errors.join("\n"));
    }
    let all = loaded.config.replications;
    match name {
        Some(name) => all
            .into_iter()
            .find(|r| r.name == name)
            .with_context(|| format!("{}: no mysql_replication {name}", path.display())),
        None if all.len() == 1 => Ok(all.into_iter().next().unwrap_or_else(|| unreachable!())),
        None if all.is_empty() => anyhow::bail!("{}: no mysql_replication block", path.display()),
        None => anyhow::bail!(
            "{}: several mysql_replication blocks; name one with --db",
            path.display()
        ),
    }
}

fn db_command(command: DbCommand) -> anyhow::Result<ExitCode> {
    use ha_agent::db;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    match command {
        DbCommand::Setup {
            config,
            db: name,
            admin_user,
            admin_password_file,
        } => {
            let cfg = replication(&config, name.as_deref())?;
            let password = match admin_password_file {
                Some(path) => config::read_secret(&path).map_err(anyhow::Error::msg)?,
                None => String::new(),
            };
            let admin = db::setup::Admin {
                user: admin_user,
                password,
            };
            match runtime.block_on(db::setup::run(&cfg, &admin)) {
                Ok(report) => {
                    for line in report {
                        println!("{line}");
                    }
                    println!("db setup: {} is replicating both ways", cfg.name);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("db setup: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        DbCommand::Status {
            config,
            db: name,
            state_dir,
            json,
        } => {
            let cfg = replication(&config, name.as_deref())?;
            let pair =
                db::pair::Pair::new(cfg.clone(), state_dir.clone()).map_err(anyhow::Error::msg)?;
            let (local, peer) =
                runtime.block_on(async { tokio::join!(pair.local.health(), pair.peer.health()) });
            let record =
                db::antiflap::Record::load(&db::antiflap::Record::path(&state_dir, &cfg.name))
                    .unwrap_or_default();
            let status = ctl::status::ReplicationStatus {
                name: cfg.name.clone(),
                local_server: cfg.local.to_string(),
                peer_server: format!("{}:{}", cfg.peer.0, cfg.peer.1),
                problem: local.problem(),
                local: Some(local),
                peer: Some(peer),
                last_promotion: None,
                last_demotion: None,
                auto_failovers: record.failovers.len() as u32,
                last_auto_failover: record.last,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", status.render(ctl::status::unix_now()));
            }
            Ok(ExitCode::SUCCESS)
        }
        DbCommand::Ack {
            config,
            db: name,
            state_dir,
        } => {
            let cfg = replication(&config, name.as_deref())?;
            let path = db::antiflap::Record::path(&state_dir, &cfg.name);
            let mut record = db::antiflap::Record::load(&path).map_err(anyhow::Error::msg)?;
            let count = record.failovers.len();
            record.acknowledge();
            record.save(&path).map_err(anyhow::Error::msg)?;
            println!(
                "{}: {count} automatic failover(s) acknowledged; {} more allowed",
                cfg.name, cfg.max_auto_failovers
            );
            // The operator accepts what the replica had received and lost: a promotion
            // waits only for what it reports from now on.
            let received = db::pair::received_path(&state_dir, &cfg.name);
            if let Ok(text) = std::fs::read_to_string(&received) {
                std::fs::remove_file(&received)?;
                println!("{}: forgot the received position {}", cfg.name, text.trim());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// ha-agent.8 and a page per subcommand (ha-agent-run.8, ...), from the clap definitions.
fn manpages(dir: &Path) -> anyhow::Result<ExitCode> {
    use clap::CommandFactory as _;
    std::fs::create_dir_all(dir)?;
    let cli = Cli::command();
    let mut pages = vec![(String::from("ha-agent"), cli.clone())];
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("ha-agent-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, command) in pages {
        let mut page = Vec::new();
        clap_mangen::Man::new(command)
            .section("8")
            .render(&mut page)?;
        std::fs::write(dir.join(format!("{name}.8")), page)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `status --watch`: the table redrawn in place every second (cursor home, clear below), an
/// unreachable agent shown as such, until interrupted.
fn watch_status(path: &Path) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    let mut out = std::io::stdout();
    loop {
        let text = match ctl::query(path) {
            Ok(status) => status.render(),
            Err(e) => format!("{e}\n"),
        };
        let now = ctl::status::unix_now();
        write!(
            out,
            "\x1b[H\x1b[2J{text}\n(every 1 s; {now:.0}; Ctrl-C ends)\n"
        )?;
        out.flush()?;
        std::thread::sleep(std::time::Duration::from_secs(1));
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

fn check_config(
    path: &Path,
    peer: Option<&Path>,
    allow_unsupported: bool,
) -> anyhow::Result<ExitCode> {
    let mut loaded = preflight::load(path, allow_unsupported)?;
    if let Some(peer) = peer {
        // The peer's file is read without looking at this host (its scripts live there).
        let other = config::load_from(&config::FileSystem, peer)?;
        for d in other.diagnostics.errors() {
            loaded
                .diagnostics
                .error(&d.loc, format!("in the peer's file: {}", d.message));
        }
        preflight::compare_with_peer(&loaded.config, &other.config, &mut loaded.diagnostics);
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
