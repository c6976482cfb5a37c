//! `/metrics`: the status snapshot in Prometheus' text format (the `prometheus` crate's
//! registry and encoder), names with the `ha_agent_` prefix, `_total` counters and base units.

use prometheus::{CounterVec, GaugeVec, IntCounterVec, Opts, Registry, TextEncoder};

use super::status::Status;

pub use prometheus::TEXT_FORMAT as CONTENT_TYPE;

/// Every metric this module can export (a registration of any other name is refused):
/// what the Grafana dashboard in dist/ may name.
pub const EXPORTED: &[&str] = &[
    "ha_agent_build_info",
    "process_start_time_seconds",
    "ha_agent_instance_state",
    "ha_agent_instance_promoting",
    "ha_agent_priority",
    "ha_agent_configured_priority",
    "ha_agent_master_info",
    "ha_agent_vips_held",
    "ha_agent_transitions_total",
    "ha_agent_adverts_sent_total",
    "ha_agent_adverts_received_total",
    "ha_agent_adverts_dropped_total",
    "ha_agent_arp_conflicts_total",
    "ha_agent_peer_config_mismatch_total",
    "ha_agent_check_up",
    "ha_agent_check_duration_seconds",
    "ha_agent_check_priority_delta",
    "ha_agent_notify_runs_total",
    "ha_agent_notify_duration_seconds_total",
    "ha_agent_notify_last_duration_seconds",
    "ha_agent_adverts_unmatched_dropped_total",
    "ha_agent_receive_path",
    "ha_agent_timer_late_max_seconds",
    "ha_agent_timer_late_total",
    "ha_agent_xdp_frames_total",
    "ha_agent_xdp_not_accepted_total",
    "ha_agent_xdp_transmitted_total",
    "ha_agent_bfd_session_state",
    "ha_agent_bfd_detection_time_seconds",
    "ha_agent_bfd_packets_total",
    "ha_agent_bfd_state_changes_total",
    "ha_agent_bfd_session_downs_total",
    "ha_agent_bfd_dropped_total",
    "ha_agent_replication_server_up",
    "ha_agent_replication_read_only",
    "ha_agent_replication_io_running",
    "ha_agent_replication_sql_running",
    "ha_agent_replication_lag_seconds",
    "ha_agent_replication_backlog",
    "ha_agent_replication_heartbeat_age_seconds",
    "ha_agent_replication_last_error",
    "ha_agent_replication_healthy",
    "ha_agent_replication_auto_failovers",
    "ha_agent_replication_last_promotion_ok",
    "ha_agent_replication_semi_sync_active",
    "ha_agent_replication_semi_sync_not_acknowledged",
    "ha_agent_witness_reachable",
    "ha_agent_witness_lease_ttl_left_seconds",
    "ha_agent_witness_last_keepalive_timestamp_seconds",
    "ha_agent_witness_revision",
    "ha_agent_witness_key_held",
];

/// A registry filled from one snapshot (counters start from their running totals).
struct Metrics {
    registry: Registry,
}

impl Metrics {
    fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<GaugeVec> {
        exported(name)?;
        let g = GaugeVec::new(Opts::new(name, help), labels)?;
        self.registry.register(Box::new(g.clone()))?;
        Ok(g)
    }

    fn seconds(&self, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<CounterVec> {
        exported(name)?;
        let c = CounterVec::new(Opts::new(name, help), labels)?;
        self.registry.register(Box::new(c.clone()))?;
        Ok(c)
    }

    fn counter(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> prometheus::Result<IntCounterVec> {
        exported(name)?;
        let c = IntCounterVec::new(Opts::new(name, help), labels)?;
        self.registry.register(Box::new(c.clone()))?;
        Ok(c)
    }
}

fn exported(name: &str) -> prometheus::Result<()> {
    if EXPORTED.contains(&name) {
        Ok(())
    } else {
        Err(prometheus::Error::Msg(format!(
            "{name} is missing from EXPORTED"
        )))
    }
}

const STATES: [&str; 4] = ["INIT", "BACKUP", "MASTER", "FAULT"];

pub fn render(status: &Status) -> prometheus::Result<String> {
    let m = Metrics {
        registry: Registry::new(),
    };
    m.gauge(
        "ha_agent_build_info",
        "Build of the running agent (value 1).",
        &["version"],
    )?
    .with_label_values(&[status.version.as_str()])
    .set(1.0);
    m.gauge(
        "process_start_time_seconds",
        "Start time of the process since the Unix epoch, in seconds.",
        &[],
    )?
    .with_label_values::<&str>(&[])
    .set(status.started_unix);

    let state = m.gauge(
        "ha_agent_instance_state",
        "1 for the state the instance is in (INIT, BACKUP, MASTER, FAULT), 0 for the others.",
        &["instance", "state"],
    )?;
    let promoting = m.gauge(
        "ha_agent_instance_promoting",
        "1 while a BACKUP promotes its database before becoming MASTER.",
        &["instance"],
    )?;
    let priority = m.gauge(
        "ha_agent_priority",
        "Effective priority: configured priority plus tracker weights.",
        &["instance"],
    )?;
    let configured = m.gauge(
        "ha_agent_configured_priority",
        "Priority as configured.",
        &["instance"],
    )?;
    let master = m.gauge(
        "ha_agent_master_info",
        "The instance's current master (value 1; absent when unknown).",
        &["instance", "master"],
    )?;
    let vips = m.gauge(
        "ha_agent_vips_held",
        "1 while the instance holds its virtual addresses on this node.",
        &["instance"],
    )?;
    let transitions = m.counter(
        "ha_agent_transitions_total",
        "State transitions by new state and reason.",
        &["instance", "to", "reason"],
    )?;
    let sent = m.counter(
        "ha_agent_adverts_sent_total",
        "Adverts sent.",
        &["instance"],
    )?;
    let received = m.counter(
        "ha_agent_adverts_received_total",
        "Adverts accepted (from the socket or the XDP maps).",
        &["instance"],
    )?;
    let dropped = m.counter(
        "ha_agent_adverts_dropped_total",
        "Adverts dropped, by where (socket: the agent's receive checks; kernel: the XDP program) and reason.",
        &["instance", "path", "reason"],
    )?;
    let conflicts = m.counter(
        "ha_agent_arp_conflicts_total",
        "ARP frames from another MAC claiming a VIP held here (split brain).",
        &["instance"],
    )?;
    let mismatch = m.counter(
        "ha_agent_peer_config_mismatch_total",
        "Adverts accepted from a live peer configured otherwise than this node, by field (virtual_ipaddress, advert_int).",
        &["instance", "field"],
    )?;
    let check_up = m.gauge(
        "ha_agent_check_up",
        "1 while a tracked check (script, interface, replication) is up.",
        &["instance", "check"],
    )?;
    let check_duration = m.gauge(
        "ha_agent_check_duration_seconds",
        "Duration of the check's last run.",
        &["instance", "check"],
    )?;
    let check_delta = m.gauge(
        "ha_agent_check_priority_delta",
        "What the check adds to the priority now.",
        &["instance", "check"],
    )?;
    let notify_runs = m.counter(
        "ha_agent_notify_runs_total",
        "Notify script runs by state and result (ok: exit 0).",
        &["instance", "state", "result"],
    )?;
    let notify_time = m.seconds(
        "ha_agent_notify_duration_seconds_total",
        "Time notify scripts ran, by state and result.",
        &["instance", "state", "result"],
    )?;
    let notify_seconds = m.gauge(
        "ha_agent_notify_last_duration_seconds",
        "Duration of the instance's last notify script run.",
        &["instance"],
    )?;
    for i in &status.instances {
        let name = i.name.as_str();
        for s in STATES {
            state
                .with_label_values(&[name, s])
                .set(f64::from(u8::from(i.state == s)));
        }
        promoting
            .with_label_values(&[name])
            .set(f64::from(u8::from(i.promoting)));
        priority
            .with_label_values(&[name])
            .set(f64::from(i.priority));
        configured
            .with_label_values(&[name])
            .set(f64::from(i.configured_priority));
        if let Some(m) = &i.master {
            master.with_label_values(&[name, m.as_str()]).set(1.0);
        }
        vips.with_label_values(&[name])
            .set(f64::from(u8::from(i.vips_held)));
        for t in &i.transitions {
            transitions
                .with_label_values(&[name, t.to.as_str(), t.reason.as_str()])
                .inc_by(t.count);
        }
        sent.with_label_values(&[name]).inc_by(i.adverts_sent);
        received
            .with_label_values(&[name])
            .inc_by(i.adverts_received);
        for (reason, n) in &i.adverts_dropped {
            dropped
                .with_label_values(&[name, "socket", reason.as_str()])
                .inc_by(*n);
        }
        conflicts.with_label_values(&[name]).inc_by(i.arp_conflicts);
        for (field, n) in &i.config_mismatch_adverts {
            mismatch
                .with_label_values(&[name, field.as_str()])
                .inc_by(*n);
        }
        for c in &i.trackers {
            let labels = [name, c.name.as_str()];
            check_up
                .with_label_values(&labels)
                .set(f64::from(u8::from(c.up)));
            check_delta
                .with_label_values(&labels)
                .set(f64::from(c.priority_delta));
            if let Some(ms) = c.last_duration_ms {
                check_duration.with_label_values(&labels).set(ms / 1e3);
            }
        }
        for n in &i.notify_counts {
            let result = if n.ok { "ok" } else { "failed" };
            let labels = [name, n.state.as_str(), result];
            notify_runs.with_label_values(&labels).inc_by(n.count);
            notify_time
                .with_label_values(&labels)
                .inc_by(n.total_ms / 1e3);
        }
        if let Some(last) = i.notify_runs.last() {
            notify_seconds
                .with_label_values(&[name])
                .set(last.duration_ms / 1e3);
        }
    }
    let unmatched = m.counter(
        "ha_agent_adverts_unmatched_dropped_total",
        "Packets dropped before they could be matched to an instance, by reason.",
        &["reason"],
    )?;
    for (reason, n) in &status.unmatched_drops {
        unmatched.with_label_values(&[reason.as_str()]).inc_by(*n);
    }
    let paths = m.gauge(
        "ha_agent_receive_path",
        "Where adverts and ARP are checked on each interface (value 1): xdp native, xdp generic or sockets.",
        &["interface", "path"],
    )?;
    for (interface, path) in &status.receive_path {
        paths
            .with_label_values(&[interface.as_str(), path.as_str()])
            .set(1.0);
    }
    let l = &status.timer_lateness;
    m.gauge(
        "ha_agent_timer_late_max_seconds",
        "The largest delay between a due timer (an advert to send, a down timer) and the loop acting on it, since start.",
        &[],
    )?
    .with_label_values::<&str>(&[])
    .set(l.max_ms / 1e3);
    let late = m.counter(
        "ha_agent_timer_late_total",
        "Wake-ups that acted on a due timer later than `over` seconds.",
        &["over"],
    )?;
    for (over, n) in [
        ("0.001", l.over_1ms),
        ("0.01", l.over_10ms),
        ("0.1", l.over_100ms),
    ] {
        late.with_label_values(&[over]).inc_by(n);
    }
    if let Some(x) = &status.xdp {
        let verdicts = m.counter(
            "ha_agent_xdp_frames_total",
            "Frames the XDP program judged, by interface and verdict.",
            &["interface", "verdict"],
        )?;
        for (interface, counts) in &x.verdicts {
            for (verdict, n) in counts {
                verdicts
                    .with_label_values(&[interface.as_str(), verdict.as_str()])
                    .inc_by(*n);
            }
        }
        m.counter(
            "ha_agent_xdp_not_accepted_total",
            "Frames the XDP program dropped because they were addressed to a VIP held without Accept_Mode (`no_accept`).",
            &[],
        )?
        .with_label_values::<&str>(&[])
        .inc_by(x.not_accepted_drops);
        m.counter(
            "ha_agent_xdp_transmitted_total",
            "Adverts transmitted from the kernel (XDP) instead of a socket.",
            &[],
        )?
        .with_label_values::<&str>(&[])
        .inc_by(x.transmitted);
    }
    replication(&m, status)?;
    witnesses(&m, status)?;
    bfd(&m, status)?;
    TextEncoder::new().encode_to_string(&m.registry.gather())
}

fn replication(m: &Metrics, status: &Status) -> prometheus::Result<()> {
    if status.replication.is_empty() {
        return Ok(());
    }
    let labels = &["db", "server"];
    let up = m.gauge(
        "ha_agent_replication_server_up",
        "1 while the server answers the agent's health check.",
        labels,
    )?;
    let read_only = m.gauge(
        "ha_agent_replication_read_only",
        "1 while the server is read-only.",
        labels,
    )?;
    let io = m.gauge(
        "ha_agent_replication_io_running",
        "1 while the server's replica I/O thread runs (connected to its source).",
        labels,
    )?;
    let sql = m.gauge(
        "ha_agent_replication_sql_running",
        "1 while the server's replica SQL thread runs.",
        labels,
    )?;
    let lag = m.gauge(
        "ha_agent_replication_lag_seconds",
        "Seconds_Behind_Master/Source (absent while unknown).",
        labels,
    )?;
    let backlog = m.gauge(
        "ha_agent_replication_backlog",
        "1 while the server holds received transactions it has not applied.",
        labels,
    )?;
    let heartbeat = m.gauge(
        "ha_agent_replication_heartbeat_age_seconds",
        "Time since the replica's last heartbeat from its source.",
        labels,
    )?;
    let errors = m.gauge(
        "ha_agent_replication_last_error",
        "The replica's last error number (io: I/O thread, sql: apply), 0 when none.",
        &["db", "server", "thread"],
    )?;
    let healthy = m.gauge(
        "ha_agent_replication_healthy",
        "1 while the local server can carry the pair's data (what track_replication follows).",
        &["db"],
    )?;
    let failovers = m.gauge(
        "ha_agent_replication_auto_failovers",
        "Automatic failovers to this node since the last `ha-agent db ack` (anti-flap).",
        &["db"],
    )?;
    let last_promotion = m.gauge(
        "ha_agent_replication_last_promotion_ok",
        "1 if the last promotion made the server writable, 0 if it was refused.",
        &["db"],
    )?;
    let semi_sync = m.gauge(
        "ha_agent_replication_semi_sync_active",
        "On the writable server with semi_sync on: 1 while commits wait for a replica, 0 once it fell back to asynchronous.",
        &["db"],
    )?;
    let not_acked = m.gauge(
        "ha_agent_replication_semi_sync_not_acknowledged",
        "Commits the local server sent without a replica's acknowledgement since it started.",
        &["db"],
    )?;
    for r in &status.replication {
        let db = r.name.as_str();
        if let Some(s) = r.local.as_ref().and_then(|h| h.semi_sync.as_ref()) {
            if s.master_enabled {
                semi_sync
                    .with_label_values(&[db])
                    .set(f64::from(u8::from(s.master_active)));
            }
            not_acked
                .with_label_values(&[db])
                .set(s.not_acknowledged as f64);
        }
        healthy
            .with_label_values(&[db])
            .set(f64::from(u8::from(r.problem.is_none())));
        failovers
            .with_label_values(&[db])
            .set(f64::from(r.auto_failovers));
        if let Some(p) = &r.last_promotion {
            last_promotion
                .with_label_values(&[db])
                .set(f64::from(u8::from(p.ok)));
        }
        for (server, health) in [("local", &r.local), ("peer", &r.peer)] {
            let Some(h) = health else { continue };
            let l = [db, server];
            up.with_label_values(&l)
                .set(f64::from(u8::from(h.reachable)));
            if !h.reachable {
                continue;
            }
            read_only
                .with_label_values(&l)
                .set(f64::from(u8::from(h.read_only)));
            backlog
                .with_label_values(&l)
                .set(f64::from(u8::from(!h.backlog.is_empty())));
            if let Some(ms) = h.heartbeat_age_ms {
                heartbeat.with_label_values(&l).set(ms as f64 / 1e3);
            }
            if let Some(rep) = &h.replica {
                io.with_label_values(&l)
                    .set(f64::from(u8::from(rep.io_running == "Yes")));
                sql.with_label_values(&l)
                    .set(f64::from(u8::from(rep.sql_running)));
                if let Some(s) = rep.seconds_behind {
                    lag.with_label_values(&l).set(s as f64);
                }
                errors
                    .with_label_values(&[db, server, "io"])
                    .set(f64::from(rep.last_io_errno));
                errors
                    .with_label_values(&[db, server, "sql"])
                    .set(f64::from(rep.last_sql_errno));
            }
        }
    }
    Ok(())
}

fn bfd(m: &Metrics, status: &Status) -> prometheus::Result<()> {
    if status.bfd.is_empty() {
        return Ok(());
    }
    let state = m.gauge(
        "ha_agent_bfd_session_state",
        "1 for the state the BFD session is in (AdminDown, Down, Init, Up), 0 for the others.",
        &["session", "state"],
    )?;
    let detection = m.gauge(
        "ha_agent_bfd_detection_time_seconds",
        "How long the peer may stay silent before the session goes Down.",
        &["session"],
    )?;
    let packets = m.counter(
        "ha_agent_bfd_packets_total",
        "Control packets of the session, by direction (rx: accepted by the agent, absorbed: by the XDP program, tx: sent by the agent, tx_kernel: by the kernel, discarded).",
        &["session", "direction"],
    )?;
    let changes = m.counter(
        "ha_agent_bfd_state_changes_total",
        "State changes of the session.",
        &["session"],
    )?;
    let downs = m.counter(
        "ha_agent_bfd_session_downs_total",
        "Times the session left Up.",
        &["session"],
    )?;
    for b in &status.bfd {
        let name = b.name.as_str();
        for s in ["AdminDown", "Down", "Init", "Up"] {
            state
                .with_label_values(&[name, s])
                .set(f64::from(u8::from(b.state == s)));
        }
        detection
            .with_label_values(&[name])
            .set(b.detection_time_ms / 1e3);
        for (direction, n) in [
            ("rx", b.received),
            ("absorbed", b.absorbed),
            ("tx", b.sent),
            ("tx_kernel", b.sent_by_kernel),
            ("discarded", b.discarded),
        ] {
            packets.with_label_values(&[name, direction]).inc_by(n);
        }
        changes.with_label_values(&[name]).inc_by(b.state_changes);
        downs.with_label_values(&[name]).inc_by(b.downs);
    }
    let dropped = m.counter(
        "ha_agent_bfd_dropped_total",
        "BFD packets dropped before a session saw them, by reason.",
        &["reason"],
    )?;
    for (reason, n) in &status.bfd_drops {
        dropped.with_label_values(&[reason.as_str()]).inc_by(*n);
    }
    Ok(())
}

fn witnesses(m: &Metrics, status: &Status) -> prometheus::Result<()> {
    if status.witnesses.is_empty() {
        return Ok(());
    }
    let reachable = m.gauge(
        "ha_agent_witness_reachable",
        "1 while etcd answers this node's keep-alives.",
        &["witness"],
    )?;
    let ttl_left = m.gauge(
        "ha_agent_witness_lease_ttl_left_seconds",
        "Seconds before etcd can expire this node's lease, as far as it knows (absent without a lease).",
        &["witness"],
    )?;
    let last = m.gauge(
        "ha_agent_witness_last_keepalive_timestamp_seconds",
        "When etcd last answered this node (Unix time).",
        &["witness"],
    )?;
    let revision = m.gauge(
        "ha_agent_witness_revision",
        "etcd's revision in its last answer.",
        &["witness"],
    )?;
    let held = m.gauge(
        "ha_agent_witness_key_held",
        "1 while the instance holds its leader key.",
        &["instance", "witness"],
    )?;
    for w in &status.witnesses {
        let l = [w.name.as_str()];
        reachable
            .with_label_values(&l)
            .set(f64::from(u8::from(w.reachable)));
        if let Some(ttl) = w.ttl_left_s {
            ttl_left.with_label_values(&l).set(ttl);
        }
        if let Some(at) = w.last_keepalive_unix {
            last.with_label_values(&l).set(at);
        }
        revision.with_label_values(&l).set(w.revision as f64);
    }
    for i in &status.instances {
        if let Some(w) = &i.witness {
            held.with_label_values(&[i.name.as_str(), w.name.as_str()])
                .set(f64::from(u8::from(w.holder)));
        }
    }
    Ok(())
}
