//! The Grafana dashboard in dist/grafana: every expression parses as PromQL (promtool) and
//! names only metrics the agent exports.

use std::{collections::BTreeSet, path::Path, process::Command};

use ha_agent::ctl::metrics::EXPORTED;

fn dashboard() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/grafana/ha-agent.json");
    let text = std::fs::read_to_string(&path).expect("read the dashboard");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every `expr` of every panel's targets, and of the template variables' queries.
fn expressions(dashboard: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push(
                target["expr"]
                    .as_str()
                    .expect("a target has an expr")
                    .to_owned(),
            );
        }
    }
    out
}

/// Grafana's variables replaced by values Prometheus accepts.
fn concrete(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$node", ".*")
        .replace("$job", ".*")
}

/// The next identifier (letters, digits, `_`) in `text`, and what follows it.
fn next_word(text: &str) -> Option<(&str, &str)> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let start = text.find(is_word)?;
    let len = text[start..]
        .find(|c: char| !is_word(c))
        .unwrap_or(text.len() - start);
    Some((&text[start..start + len], &text[start + len..]))
}

/// The metric names an expression reads: what is left once strings, label matchers,
/// ranges and grouping clauses are gone, without functions (followed by "("), keywords and
/// numbers.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const GROUPING: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const KEYWORDS: [&str; 5] = ["and", "or", "unless", "bool", "offset"];
    // Strings, then {...} and [...], become spaces.
    let mut plain = String::new();
    let (mut in_string, mut depth) = (false, 0usize);
    for c in expr.chars() {
        match c {
            '"' => in_string = !in_string,
            '{' | '[' if !in_string => depth += 1,
            '}' | ']' if !in_string => depth = depth.saturating_sub(1),
            _ if !in_string && depth == 0 => plain.push(c),
            _ => {}
        }
        if matches!(c, '"' | '{' | '}' | '[' | ']') {
            plain.push(' ');
        }
    }
    // Grouping clauses ("by (a, b)") go too.
    let mut bare = String::new();
    let mut rest = plain.as_str();
    while let Some((word, after)) = next_word(rest) {
        let (before, _) = rest.split_at(rest.len() - after.len() - word.len());
        bare.push_str(before);
        let tail = after.trim_start();
        if GROUPING.contains(&word) && tail.starts_with('(') {
            rest = tail.split_once(')').map_or("", |(_, r)| r);
            bare.push(' ');
        } else {
            bare.push_str(word);
            rest = after;
        }
    }
    bare.push_str(rest);
    let mut names = BTreeSet::new();
    let mut rest = bare.as_str();
    while let Some((word, after)) = next_word(rest) {
        let function = after.trim_start().starts_with('(');
        let number = word.starts_with(|c: char| c.is_ascii_digit());
        if !function && !number && !KEYWORDS.contains(&word) {
            names.insert(word.to_owned());
        }
        rest = after;
    }
    names
}

#[test]
fn the_dashboard_names_only_exported_metrics() {
    let dashboard = dashboard();
    let exprs = expressions(&dashboard);
    assert!(
        exprs.len() >= 20,
        "the dashboard has {} expressions",
        exprs.len()
    );
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let names = metric_names(&concrete(expr));
        assert!(!names.is_empty(), "no metric in {expr}");
        for name in names {
            assert!(
                EXPORTED.contains(&name.as_str()),
                "the dashboard's `{expr}` reads {name}, which the agent does not export"
            );
            used.insert(name);
        }
    }
    // The issue asks for roles, transitions, adverts and drops, XDP verdicts, checks,
    // notify scripts and replication: each has a panel.
    for wanted in [
        "ha_agent_instance_state",
        "ha_agent_transitions_total",
        "ha_agent_adverts_sent_total",
        "ha_agent_adverts_dropped_total",
        "ha_agent_xdp_frames_total",
        "ha_agent_check_up",
        "ha_agent_notify_runs_total",
        "ha_agent_replication_lag_seconds",
        "ha_agent_replication_healthy",
    ] {
        assert!(used.contains(wanted), "no panel shows {wanted}");
    }
}

#[test]
fn the_metric_name_reader_finds_selectors_only() {
    assert_eq!(
        metric_names(
            r#"sum by (instance, reason) (rate(ha_agent_adverts_dropped_total{instance=~".*",x="a{b"}[5m])) + 1 - ha_agent_vips_held"#
        ),
        BTreeSet::from([
            "ha_agent_adverts_dropped_total".to_owned(),
            "ha_agent_vips_held".to_owned()
        ])
    );
}

#[test]
fn the_dashboards_expressions_parse() {
    let dir = std::env::temp_dir().join(format!("ha-dashboard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let rules: Vec<serde_json::Value> = expressions(&dashboard())
        .iter()
        .enumerate()
        .map(|(i, e)| serde_json::json!({"record": format!("dashboard:expr{i}"), "expr": concrete(e)}))
        .collect();
    // YAML is a superset of JSON: promtool reads this as a rules file.
    let file = dir.join("rules.yml");
    std::fs::write(
        &file,
        serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string(),
    )
    .expect("write rules");
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("promtool (Debian package prometheus)");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
