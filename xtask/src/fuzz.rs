//! `cargo xtask fuzz`: every cargo-fuzz target (fuzz/fuzz_targets) for a while each, from the
//! seed corpora in fuzz/corpus, with a summary of executions, coverage and crashes.

use std::{path::Path, process::Command, time::Instant};

use anyhow::{Context as _, Result, bail};

use crate::{describe, nightly_cargo, workspace_root};

pub const TARGETS: &[&str] = &["advert", "ipv4", "config", "status_request"];

/// What libFuzzer reported at the end of a run.
#[derive(Debug, Default)]
struct Stats {
    runs: u64,
    coverage: u64,
    features: u64,
    corpus: u64,
}

pub fn run(seconds: u64, targets: &[String]) -> Result<()> {
    let root = workspace_root();
    let targets: Vec<&str> = if targets.is_empty() {
        TARGETS.to_vec()
    } else {
        targets.iter().map(String::as_str).collect()
    };
    let mut build = fuzz_command(&root);
    build.args(["build", "-O"]);
    crate::run(&mut build)?;
    let mut rows = Vec::new();
    for target in targets {
        // New inputs go to a working corpus under target/; the seeds in the repository
        // stay as they are.
        let work = root.join("target/fuzz-corpus").join(target);
        std::fs::create_dir_all(&work)?;
        let log_path = root.join(format!("target/fuzz-{target}.log"));
        let log = std::fs::File::create(&log_path)?;
        let mut command = fuzz_command(&root);
        command
            .args(["run", "-O", target])
            .arg(&work)
            .arg(root.join("fuzz/corpus").join(target))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .args(["-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1"])
            .stdout(log.try_clone()?)
            .stderr(log);
        eprintln!("+ {} (log: {})", describe(&command), log_path.display());
        let start = Instant::now();
        let status = command.status().context("running cargo fuzz")?;
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if !status.success() {
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "fuzz target {target} failed ({status}); crash input under fuzz/artifacts/{target}/\n{}",
                tail.join("\n")
            );
        }
        rows.push((target, start.elapsed().as_secs_f64(), parse_stats(&text)));
    }
    eprintln!("target          seconds   executions   exec/s   cov     ft      corpus  crashes");
    for (target, secs, s) in rows {
        eprintln!(
            "{target:<15} {secs:>7.0} {:>12} {:>8.0} {:>5} {:>7} {:>7}  0",
            s.runs,
            s.runs as f64 / secs.max(1.0),
            s.coverage,
            s.features,
            s.corpus
        );
    }
    Ok(())
}

fn fuzz_command(root: &Path) -> Command {
    let mut command = nightly_cargo();
    command.arg("fuzz").current_dir(root);
    command
}

/// Reads the last status line (`#N DONE cov: C ft: F corp: K/...`) and the final stats.
fn parse_stats(log: &str) -> Stats {
    let mut stats = Stats::default();
    for line in log.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |key: &str| {
            words
                .iter()
                .position(|w| *w == key)
                .and_then(|i| words.get(i + 1))
                .and_then(|v| v.split('/').next())
                .and_then(|v| v.parse().ok())
        };
        if line.starts_with('#') {
            stats.coverage = after("cov:").unwrap_or(stats.coverage);
            stats.features = after("ft:").unwrap_or(stats.features);
            stats.corpus = after("corp:").unwrap_or(stats.corpus);
        }
        if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
            stats.runs = n.trim().parse().unwrap_or(stats.runs);
        }
    }
    stats
}
