//! JSON results under docs/bench/ and the tables of docs/benchmarks.md made from them.

use std::{fmt::Write as _, path::Path};

use anyhow::{Context as _, Result};
use serde::{Serialize, de::DeserializeOwned};

use super::{DbCase, Impl, Summary, failover::Case, flood::Flood, steady::Steady, switchover};

const FAILOVER_JSON: &str = "docs/bench/failover.json";
const STEADY_JSON: &str = "docs/bench/steady.json";
const SWITCHOVER_JSON: &str = "docs/bench/switchover.json";
const FLOOD_JSON: &str = "docs/bench/flood.json";
const DB_SWITCHOVER_JSON: &str = "docs/bench/db-switchover.json";
const STEADY_STRESS_JSON: &str = "docs/bench/steady-stress.json";
const STEADY_LARGEST_JSON: &str = "docs/bench/steady-largest.json";
const WITNESS_JSON: &str = "docs/bench/witness.json";
const SEMI_SYNC_JSON: &str = "docs/bench/semi-sync.json";
const WITNESS_COST_JSON: &str = "docs/bench/witness-cost.json";
const BFD_JSON: &str = "docs/bench/bfd.json";
const MARKDOWN: &str = "docs/benchmarks.md";

#[derive(serde::Serialize, serde::Deserialize)]
struct Run<T> {
    /// When and where it ran.
    date: String,
    kernel: String,
    cpus: usize,
    results: Vec<T>,
}

pub fn sh(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

pub fn save<T: Serialize + DeserializeOwned>(
    root: &Path,
    which: &str,
    results: Vec<T>,
) -> Result<()> {
    let run = Run {
        date: sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        kernel: sh("uname", &["-r"]),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        results,
    };
    // A part run alone (`bench bfd --only`) goes beside the whole runs it adds to.
    let path = if let Some(part) = which.strip_prefix("bfd-runs/") {
        root.join(format!("docs/bench/bfd-runs/{part}.json"))
    } else {
        root.join(known_path(which))
    };
    std::fs::create_dir_all(path.parent().expect("docs/bench"))?;
    std::fs::write(&path, serde_json::to_string_pretty(&run)?)?;
    eprintln!("wrote {}", path.display());
    write_markdown(root)
}

fn known_path(which: &str) -> &'static str {
    match which {
        "failover" => FAILOVER_JSON,
        "steady" => STEADY_JSON,
        "steady-stress" => STEADY_STRESS_JSON,
        "steady-largest" => STEADY_LARGEST_JSON,
        "flood" => FLOOD_JSON,
        "db-switchover" => DB_SWITCHOVER_JSON,
        "witness" => WITNESS_JSON,
        "semi-sync" => SEMI_SYNC_JSON,
        "witness-cost" => WITNESS_COST_JSON,
        "bfd" => BFD_JSON,
        _ => SWITCHOVER_JSON,
    }
}

fn load<T: DeserializeOwned>(path: &Path) -> Result<Option<Run<T>>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path)?;
    Ok(Some(
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?,
    ))
}

pub fn write_markdown(root: &Path) -> Result<()> {
    let mut md = String::from(
        "# Benchmarks\n\nMade by `cargo xtask bench failover`, `steady`, `switchover`, `flood`, `witness`, `semi-sync` and `bfd` (raw numbers in\n\
         `docs/bench/*.json`). ha-agent and keepalived 2.2.7 run in the same run, on the same\n\
         namespace topology: host a (MASTER, priority 150), host b (BACKUP, 120), observer c, VRID 107.\n\
         Method: crash = SIGKILL of the daemon's process\n\
         group plus a's link down; graceful = SIGTERM. Latency is measured from the master's last\n\
         advert (crash) or its priority-0 advert (graceful) as the observer's kernel stamped it, to\n\
         the VIP appearing on b (netlink monitor in b) and to the observer receiving b's first\n\
         gratuitous ARP. Overhead = latency − the protocol floor (Master_Down_Interval or Skew_Time).\n\n",
    );
    if let Some(run) = load::<Case>(&root.join(FAILOVER_JSON))? {
        let _ = writeln!(
            md,
            "## Failover ({}, kernel {}, {} CPUs)\n",
            run.date, run.kernel, run.cpus
        );
        md.push_str("| mode | v | interval | trials | floor ms | VIP overhead ms keepalived p50 / p99 / max | ha-agent | ha-agent --xdp native | ratio p50 ÷ keepalived (ha-agent, --xdp) | GARP overhead ms p50 / max keepalived | ha-agent | ha-agent --xdp native |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for k in run
            .results
            .iter()
            .filter(|c| c.implementation == Impl::Keepalived)
        {
            let find = |implementation| {
                run.results.iter().find(|c| {
                    c.implementation == implementation
                        && c.mode == k.mode
                        && c.version == k.version
                        && c.interval_ms == k.interval_ms
                })
            };
            let (agent, xdp) = (find(Impl::HaAgent), find(Impl::HaAgentXdp));
            let vip = |c: Option<&Case>| {
                c.map_or("–".into(), |c| {
                    let o = &c.vip_overhead;
                    format!("{:.2} / {:.2} / {:.2}", o.p50, o.p99, o.max)
                })
            };
            let garp = |c: Option<&Case>| {
                c.map_or("–".into(), |c| {
                    format!("{:.2} / {:.2}", c.garp_overhead.p50, c.garp_overhead.max)
                })
            };
            let ratio = |c: Option<&Case>| {
                c.map_or("–".into(), |c| {
                    format!("{:.2}", c.vip_overhead.p50 / k.vip_overhead.p50)
                })
            };
            let _ = writeln!(
                md,
                "| {:?} | {} | {} ms | {} | {:.2} | {} | {} | {} | {}, {} | {} | {} | {} |",
                k.mode,
                k.version,
                k.interval_ms,
                k.vip_ms.len(),
                k.floor_ms,
                vip(Some(k)),
                vip(agent),
                vip(xdp),
                ratio(agent),
                ratio(xdp),
                garp(Some(k)),
                garp(agent),
                garp(xdp),
            );
        }
        md.push('\n');
    }
    for (file, load_note) in [
        (STEADY_JSON, ""),
        (
            STEADY_STRESS_JSON,
            ", with `stress-ng --cpu 2 --io 1 --vm 1 --vm-bytes 256M` running (`--stress`)",
        ),
        (
            STEADY_LARGEST_JSON,
            ", the largest case alone (`--largest`)",
        ),
    ] {
        let Some(run) = load::<Steady>(&root.join(file))? else {
            continue;
        };
        let _ = writeln!(
            md,
            "## Steady state ({}, kernel {}, {} CPUs, {:.0} s window{load_note})\n",
            run.date,
            run.kernel,
            run.cpus,
            run.results.first().map_or(0.0, |r| r.window_s)
        );
        md.push_str(
            "LAN delivery `threads`: each bridge port's frames are delivered by a kernel thread \
             (threaded NAPI), not in the sender's context, and each host's veth has a queue in \
             front (pfifo, 1000 frames) as a NIC has; `sender`: the veth's own way.\n\n",
        );
        md.push_str("| instances | v | interval | implementation | MASTER CPU % | BACKUP CPU % | wake-ups/s MASTER / BACKUP | MASTER RSS / PSS MiB | BACKUP RSS / PSS MiB | adverts/s sent (expected) | largest advert gap ms (VRID 1) | spurious transitions | CPU ratio MASTER / BACKUP (÷ keepalived) | user-space CPU % MASTER / BACKUP | LAN delivery | master's timers, worst lateness ms | steal % |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for r in &run.results {
            let keepalived = run.results.iter().find(|k| {
                k.implementation == Impl::Keepalived
                    && k.instances == r.instances
                    && k.version == r.version
                    && k.interval_ms == r.interval_ms
            });
            let ratio = match keepalived {
                Some(k) if r.implementation != Impl::Keepalived => format!(
                    "{:.2} / {:.2}",
                    r.master_cpu_pct / k.master_cpu_pct,
                    r.backup_cpu_pct / k.backup_cpu_pct
                ),
                _ => String::new(),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} ms | {} | {:.3} | {:.3} | {:.0} / {:.0} | {:.1} / {:.1} | {:.1} / {:.1} | {:.0} ({:.0}) | {} | {} | {ratio} | {} | {} | {} | {:.2} |",
                r.instances,
                r.version,
                r.interval_ms,
                if r.realtime {
                    r.implementation.name()
                } else {
                    "ha-agent --realtime-priority 0"
                },
                r.master_cpu_pct,
                r.backup_cpu_pct,
                r.master_wakeups_per_s,
                r.backup_wakeups_per_s,
                r.master_rss_mib,
                r.master_pss_mib,
                r.backup_rss_mib,
                r.backup_pss_mib,
                r.adverts_per_s,
                r.expected_per_s,
                if r.largest_gap_ms > 0.0 {
                    format!("{:.1}", r.largest_gap_ms)
                } else {
                    "–".into()
                },
                r.spurious_transitions,
                match (r.master_user_pct, r.backup_user_pct) {
                    (Some(m), Some(b)) => format!("{m:.2} / {b:.2}"),
                    _ => "–".into(),
                },
                if r.delivery.is_empty() {
                    "sender"
                } else {
                    r.delivery.as_str()
                },
                r.master_timer_late_max_ms
                    .map_or("–".into(), |ms| format!("{ms:.1}")),
                r.steal_pct
            );
        }
        md.push('\n');
    }
    if let Some(run) = load::<switchover::Case>(&root.join(SWITCHOVER_JSON))? {
        let _ = writeln!(
            md,
            "## Check-triggered switchover ({}, kernel {}, {} CPUs)\n\n\
             a (MASTER 150) tracks a check with weight -50 run every second; b (BACKUP 120). \
             From the check's first failing run (stamped by the script) to a's first advert at \
             priority 100 (observer), to the VIP on b (netlink monitor in b) and to b's \
             notify_master starting (stamped by the script). Without `fast_preempt` the backup \
             ignores the lower advert and waits out Master_Down_Interval from the last advert \
             it accepted; with it, Skew_Time.\n",
            run.date, run.kernel, run.cpus
        );
        md.push_str("| v | interval | implementation | trials | MDI / Skew_Time ms | → advert at 100 ms p50 / max | → VIP on b ms p50 / p99 / max | → notify_master ms p50 / max | VIP ratio p50 (÷ keepalived) |\n|---|---|---|---|---|---|---|---|---|\n");
        for r in &run.results {
            let keepalived = run.results.iter().find(|k| {
                k.implementation == Impl::Keepalived
                    && k.version == r.version
                    && k.interval_ms == r.interval_ms
            });
            let ratio =
                keepalived.map_or(String::new(), |k| format!("{:.2}", r.vip.p50 / k.vip.p50));
            let _ = writeln!(
                md,
                "| {} | {} ms | {} | {} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} | {ratio} |",
                r.version,
                r.interval_ms,
                r.label(),
                r.vip_ms.len(),
                r.master_down_ms,
                r.skew_ms,
                r.lowered.p50,
                r.lowered.max,
                r.vip.p50,
                r.vip.p99,
                r.vip.max,
                r.notify.p50,
                r.notify.max,
            );
        }
        md.push('\n');
    }
    if let Some(run) = load::<Flood>(&root.join(FLOOD_JSON))? {
        let _ = writeln!(
            md,
            "## Forged-advert flood ({}, kernel {}, {} CPUs)\n\n\
             a (MASTER 150) and b (BACKUP 120), VRRPv2 1 s with PASS; c sends, as fast as one \
             thread can, priority-200 adverts for VRID 107 with a wrong password, with the right \
             one at TTL 64, with a bad checksum, and for an unknown VRID, in turn. Any VIP \
             transition is a false one.\n",
            run.date, run.kernel, run.cpus
        );
        md.push_str("| implementation | seconds | forged adverts/s | MASTER CPU % | BACKUP CPU % | false transitions | dropped in the kernels /s |\n|---|---|---|---|---|---|---|\n");
        for r in &run.results {
            let _ = writeln!(
                md,
                "| {} | {:.0} | {:.0} | {:.1} | {:.1} | {} | {} |",
                r.implementation.name(),
                r.window_s,
                r.sent_per_s,
                r.master_cpu_pct,
                r.backup_cpu_pct,
                r.transitions,
                r.kernel_dropped_per_s
                    .map_or("–".into(), |n| format!("{n:.0}")),
            );
        }
        md.push('\n');
    }
    if let Some(run) = load::<DbCase>(&root.join(DB_SWITCHOVER_JSON))? {
        let _ = writeln!(
            md,
            "## The database follows the VIP ({}, kernel {}, {} CPUs)\n\n\
             A MariaDB 10.11 dual-master pair (GTID, set up by `ha-agent db setup`), a fresh one per \
             trial: a (server 1, MASTER 150) and b (server 2, BACKUP 100), VRRPv2 1 s. c inserts \
             through the VIP as fast as each insert is acknowledged, reconnecting on errors; both \
             servers' read_only is sampled over their sockets throughout. keepalived 2.2.7 is run \
             as its users do today: notify_master sets `read_only=OFF`, notify_backup/fault/stop \
             set it ON, and a planned switchover is stopping keepalived on a (SIGTERM). ha-agent \
             tracks the replication (`track_replication`) and hands over with `ha-agent switchover`. \
             Writes again = from the event (switchover asked, or the crash: SIGKILL of a's daemon \
             and mariadbd, a's link down) to the first insert b acknowledged; lost = acknowledged \
             rows missing on b at the end; \"b lagging\" = b's SQL thread stopped for the last \
             second before the crash.\n",
            run.date, run.kernel, run.cpus
        );
        md.push_str("| case | implementation | trials | writes again ms p50 / max | rows acknowledged | rows lost | duplicate keys | samples both writable |\n|---|---|---|---|---|---|---|---|\n");
        for r in &run.results {
            let sum =
                |f: fn(&super::database::Trial) -> u64| -> u64 { r.trials.iter().map(f).sum() };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.0} / {:.0} | {} | {} | {} | {} of {} |",
                r.scenario.name(),
                r.implementation.name(),
                r.trials.len(),
                r.writes_again.p50,
                r.writes_again.max,
                sum(|t| t.acknowledged),
                sum(|t| t.lost),
                sum(|t| t.duplicate_keys),
                sum(|t| t.both_writable),
                sum(|t| t.samples),
            );
        }
        md.push('\n');
    }
    witness_table(root, &mut md)?;
    semi_sync_table(root, &mut md)?;
    bfd_tables(root, &mut md)?;
    std::fs::write(root.join(MARKDOWN), md)?;
    eprintln!("wrote {MARKDOWN}");
    Ok(())
}

/// `bench witness`: takeover latency (reference → VIP on b) with the etcd witness beside
/// plain VRRP and keepalived, from the same run.
fn witness_table(root: &Path, md: &mut String) -> Result<()> {
    let Some(run) = load::<Case>(&root.join(WITNESS_JSON))? else {
        return Ok(());
    };
    let _ = writeln!(
        md,
        "\n## Takeover with the etcd witness ({}, kernel {}, {} CPUs)\n\n\
         `cargo xtask bench witness`: three etcd 3.4 members on their own hosts, `lease_ttl {}`.\n\
         Reference → VIP on the backup, ms (floor: Master_Down_Interval after a crash, Skew_Time \
         after a stop). With the witness a crashed master's key lives until its lease expires.\n\n\
         | mode | v | interval | floor ms | keepalived p50 / max | ha-agent p50 / max | ha-agent + witness p50 / max | witness ÷ keepalived (p50) |\n|---|---|---|---|---|---|---|---|",
        run.date,
        run.kernel,
        run.cpus,
        super::failover::LEASE_TTL.as_secs()
    );
    for k in run
        .results
        .iter()
        .filter(|c| c.implementation == Impl::Keepalived)
    {
        let find = |witness: bool| {
            run.results.iter().find(|c| {
                c.implementation != Impl::Keepalived
                    && c.witness == witness
                    && c.mode == k.mode
                    && c.version == k.version
                    && c.interval_ms == k.interval_ms
            })
        };
        let cell = |c: Option<&Case>| {
            c.map_or("–".into(), |c| {
                let s = Summary::of(&c.vip_ms);
                format!("{:.1} / {:.1}", s.p50, s.max)
            })
        };
        let ratio = find(true).map_or("–".into(), |w| {
            format!(
                "{:.2}",
                Summary::of(&w.vip_ms).p50 / Summary::of(&k.vip_ms).p50
            )
        });
        let _ = writeln!(
            md,
            "| {:?} | {} | {} ms | {:.1} | {} | {} | {} | {ratio} |",
            k.mode,
            k.version,
            k.interval_ms,
            k.floor_ms,
            cell(Some(k)),
            cell(find(false)),
            cell(find(true)),
        );
    }
    let Some(run) = load::<super::witness_cost::Cost>(&root.join(WITNESS_COST_JSON))? else {
        return Ok(());
    };
    let _ = writeln!(
        md,
        "\nWhat the witness costs in steady state ({}): an idle ha-agent pair (VRRPv2 1 s), \
         the same etcd cluster running either way, {:.0} s per case; CPU time of each agent's \
         process group and the times it was put on a CPU.\n\n\
         | witness | master CPU ms/min | master wake-ups/s | backup CPU ms/min | backup wake-ups/s | VIP events |\n|---|---|---|---|---|---|",
        run.date,
        run.results.first().map_or(0.0, |c| c.window_s)
    );
    for c in &run.results {
        let _ = writeln!(
            md,
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            if c.witness { "`lease_ttl 2`" } else { "none" },
            c.master_cpu_ms_per_min,
            c.master_wakeups_per_s,
            c.backup_cpu_ms_per_min,
            c.backup_wakeups_per_s,
            c.vip_events
        );
    }
    Ok(())
}

/// `bench bfd`: crash takeover with and without `bfd_takeover`, false Downs under load, and
/// the cost of a session beside keepalived's and FRR's.
fn bfd_tables(root: &Path, md: &mut String) -> Result<()> {
    use super::bfd::Case as Bfd;
    let Some(run) = load::<Bfd>(&root.join(BFD_JSON))? else {
        return Ok(());
    };
    let _ = writeln!(
        md,
        "\n## BFD ({}, kernel {}, {} CPUs)\n\n\
         `cargo xtask bench bfd`: ha-agent pairs (master priority 250, backup 200, VRRPv3 10 ms), \
         release build, default mode. Crash = the master gone as a host goes: every frame it \
         sends dropped at its bridge port (a map update, no lock) and the agent stopped dead \
         (SIGSTOP; killed and its link taken down after the takeover); measured from then to \
         the VIP on the backup (netlink monitor in b).\n\n\
         | detector | BFD interval | Master_Down_Interval ms | trials | VIP after the stop ms p50 / p99 / max |\n|---|---|---|---|---|",
        run.date, run.kernel, run.cpus
    );
    for c in &run.results {
        if let Bfd::Takeover {
            detector,
            bfd_interval_ms,
            master_down_interval_ms,
            ms,
            summary,
        } = c
        {
            let _ = writeln!(
                md,
                "| {detector} | {} | {master_down_interval_ms:.1} | {} | {:.2} / {:.2} / {:.2} |",
                bfd_interval_ms.map_or("–".into(), |i| format!("{i} ms × 3")),
                ms.len(),
                summary.p50,
                summary.p99,
                summary.max
            );
        }
    }
    md.push_str(
        "\nFalse Downs: both agents' sessions under `stress-ng --cpu 2 --io 1 --vm 1` for the \
         window (Up → Down at either end), and VIP events on either node.\n\n\
         | BFD interval | seconds | session downs | VIP events |\n|---|---|---|---|\n",
    );
    for c in &run.results {
        if let Bfd::FalseDowns {
            bfd_interval_ms,
            seconds,
            downs,
            vip_events,
        } = c
        {
            let _ = writeln!(
                md,
                "| {bfd_interval_ms} ms × 3 | {seconds:.0} | {downs} | {vip_events} |"
            );
        }
    }
    md.push_str(
        "\nCost of a session pair, 20 s unloaded: one end's process group (FRR: bfdd alone), \
         and the whole machine's busy time (both ends, and the kernel's work wherever it ran) \
         less the machine's just before the pair started.\n\n\
         | implementation | BFD interval | one end: CPU % of a core | wake-ups/s | machine: CPU % of a core |\n|---|---|---|---|---|\n",
    );
    for c in &run.results {
        if let Bfd::Cost {
            implementation,
            bfd_interval_ms,
            cpu_percent,
            wakeups_per_s,
            machine_percent,
            machine_idle_percent,
            ..
        } = c
        {
            let _ = writeln!(
                md,
                "| {implementation} | {bfd_interval_ms} ms | {cpu_percent:.3} | {wakeups_per_s:.0} | {:.2} |",
                machine_percent - machine_idle_percent
            );
        }
    }
    Ok(())
}

/// `bench semi-sync`: ha-agent's crash failover under writes with asynchronous replication
/// and with `semi_sync on`, from the same run.
fn semi_sync_table(root: &Path, md: &mut String) -> Result<()> {
    let Some(run) = load::<DbCase>(&root.join(SEMI_SYNC_JSON))? else {
        return Ok(());
    };
    let _ = writeln!(
        md,
        "\n## Crash failover with semi-synchronous replication ({}, kernel {}, {} CPUs)\n\n\
         `cargo xtask bench semi-sync`: the database pair and crash of the section above \
         (ha-agent on sockets, VRRPv2 1 s), with asynchronous replication and with `semi_sync on` \
         (AFTER_SYNC, `semi_sync_timeout` 1000 ms). Per insert = the time between two \
         acknowledgements of the back-to-back writer before the crash (its p50 and p99 per trial, \
         then the median of those over the trials).\n\n\
         | replication | trials | semi-sync active at the crash | rows acknowledged | rows lost | trials losing rows | per insert p50 ms | per insert p99 ms | writes again ms p50 / max |\n|---|---|---|---|---|---|---|---|---|",
        run.date, run.kernel, run.cpus
    );
    for r in &run.results {
        let median = |f: fn(&super::database::Trial) -> f64| {
            let v: Vec<f64> = r.trials.iter().map(f).collect();
            Summary::of(&v).p50
        };
        let active = r
            .trials
            .iter()
            .filter(|t| t.semi_sync_active == Some(true))
            .count();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.0} / {:.0} |",
            if r.semi_sync {
                "semi-sync"
            } else {
                "asynchronous"
            },
            r.trials.len(),
            if r.semi_sync {
                format!("{active} of {}", r.trials.len())
            } else {
                "–".into()
            },
            r.trials.iter().map(|t| t.acknowledged).sum::<u64>(),
            r.trials.iter().map(|t| t.lost).sum::<u64>(),
            r.trials.iter().filter(|t| t.lost > 0).count(),
            median(|t| t.insert_p50_ms),
            median(|t| t.insert_p99_ms),
            r.writes_again.p50,
            r.writes_again.max,
        );
    }
    Ok(())
}
