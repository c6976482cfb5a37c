//! The agent's state as the status socket reports it, and its table rendering.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::{Deserialize, Serialize};

/// The status JSON's schema version (docs/status-schema.md): it grows by fields within a
/// version; a field that changes meaning or goes away makes a new one.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Status {
    #[serde(default)]
    pub schema_version: u32,
    #[serde(default)]
    pub version: String,
    /// When the agent started, seconds since the Unix epoch.
    #[serde(default)]
    pub started_unix: f64,
    pub pid: u32,
    pub config: String,
    pub instances: Vec<InstanceStatus>,
    /// Packets dropped before they could be matched to an instance, by reason.
    pub unmatched_drops: BTreeMap<String, u64>,
    /// The XDP program, when it is used.
    #[serde(default)]
    pub xdp: Option<XdpStatus>,
    /// Interface → where adverts and ARP are checked there: "xdp native", "xdp generic",
    /// "sockets", or "sockets (XDP loading)" in the moment after start.
    #[serde(default)]
    pub receive_path: BTreeMap<String, String>,
    /// Why the XDP program is not used, when it is not.
    #[serde(default)]
    pub xdp_unused: Option<String>,
    /// Each `mysql_replication` the agent supervises.
    #[serde(default)]
    pub replication: Vec<ReplicationStatus>,
    /// How late the loop acted on its due timers (sending adverts, judging down timers).
    #[serde(default)]
    pub timer_lateness: Lateness,
    /// Each `etcd_witness` the agent keeps a lease with.
    #[serde(default)]
    pub witnesses: Vec<WitnessStatus>,
    /// Each `vrrp_sync_group`.
    #[serde(default)]
    pub sync_groups: Vec<SyncGroupStatus>,
    /// Each `bfd_instance` session.
    #[serde(default)]
    pub bfd: Vec<BfdStatus>,
    /// BFD packets dropped before a session saw them, by reason.
    #[serde(default)]
    pub bfd_drops: BTreeMap<String, u64>,
}

/// A BFD session (`bfd_instance`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct BfdStatus {
    pub name: String,
    pub neighbor: String,
    /// AdminDown, Down, Init or Up.
    pub state: String,
    /// The state the peer last reported.
    pub remote_state: String,
    /// Why the session last changed state (RFC 5880 diagnostic).
    pub diag: String,
    pub local_discriminator: u32,
    pub remote_discriminator: u32,
    /// Between our periodic packets, jitter aside (none while the peer asks for none).
    pub tx_interval_ms: Option<f64>,
    /// How long the peer may stay silent before the session goes Down.
    pub detection_time_ms: f64,
    pub received: u64,
    pub sent: u64,
    /// Packets of this session discarded (authentication, discriminator, AdminDown).
    pub discarded: u64,
    pub send_errors: u64,
    pub state_changes: u64,
    /// Up → Down transitions.
    pub downs: u64,
    /// Seconds since the last state change (or the start).
    pub since_s: f64,
    /// The XDP program absorbs the peer's steady packets and times it out.
    #[serde(default)]
    pub in_kernel: bool,
    /// The peer's packets the XDP program absorbed (never seen by the agent).
    #[serde(default)]
    pub absorbed: u64,
    /// The kernel sends the periodic packets, clocked by the pacing interface's qdisc.
    #[serde(default)]
    pub tx_in_kernel: bool,
    /// Packets the kernel sent (not counted in `sent`).
    #[serde(default)]
    pub sent_by_kernel: u64,
}

/// A `vrrp_sync_group`: its state as last announced (MASTER when every member is, FAULT
/// when any is, else BACKUP) and its members.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SyncGroupStatus {
    pub name: String,
    pub state: String,
    pub members: Vec<String>,
    /// The group's last notify script runs, oldest first.
    pub notify_runs: Vec<NotifyRun>,
}

/// An etcd witness as this node sees it: its lease and the leader keys it holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct WitnessStatus {
    pub name: String,
    pub endpoints: Vec<String>,
    pub reachable: bool,
    /// Why etcd is not reachable (the last error), if it is not.
    pub error: Option<String>,
    /// The lease's id (hex), while there is one.
    pub lease: Option<String>,
    /// Seconds before etcd can expire the lease, as far as this node knows.
    pub ttl_left_s: Option<f64>,
    pub last_keepalive_unix: Option<f64>,
    /// etcd's revision in its last answer.
    pub revision: i64,
    /// The leader keys this node holds.
    pub keys: Vec<String>,
    /// Election mode: each elected instance's election as last read.
    #[serde(default)]
    pub elections: BTreeMap<String, ElectionStatus>,
}

/// An instance's election (`witness NAME election`) as this node last read it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ElectionStatus {
    /// The leading node's name.
    pub leader: Option<String>,
    /// Candidate node → published priority.
    pub candidates: BTreeMap<String, u8>,
    /// This node waits in the election's queue (it is the best candidate after the leader).
    pub campaigning: bool,
}

/// How late the loop acted on its due timers: a master that acts late sends late, and a
/// backup may then take over from it. What an operator reads when adverts went missing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Lateness {
    /// The largest delay since start, in milliseconds.
    pub max_ms: f64,
    /// Wake-ups later than 1 ms, 10 ms and 100 ms.
    pub over_1ms: u64,
    pub over_10ms: u64,
    pub over_100ms: u64,
}

impl Lateness {
    /// Records one wake-up; true when it is the largest so far and above 5 ms (worth a
    /// log line: at most a few in a process's life).
    pub fn record(&mut self, late: std::time::Duration) -> bool {
        let ms = late.as_secs_f64() * 1e3;
        for (bound, n) in [
            (1.0, &mut self.over_1ms),
            (10.0, &mut self.over_10ms),
            (100.0, &mut self.over_100ms),
        ] {
            if ms > bound {
                *n += 1;
            }
        }
        let worst = ms > self.max_ms;
        if worst {
            self.max_ms = ms;
        }
        worst && ms > 5.0
    }
}

/// A supervised database pair: both servers as last checked, and the last promotion and
/// demotion with their outcome (a refusal says why).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ReplicationStatus {
    pub name: String,
    pub local_server: String,
    pub peer_server: String,
    /// Why the local server cannot carry the pair's data, if it cannot.
    pub problem: Option<String>,
    pub local: Option<crate::db::health::Health>,
    pub peer: Option<crate::db::health::Health>,
    pub last_promotion: Option<DbRun>,
    pub last_demotion: Option<DbRun>,
    /// Automatic failovers to this node since the last `ha-agent db ack`.
    pub auto_failovers: u32,
    pub last_auto_failover: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DbRun {
    pub ok: bool,
    /// What was done, or why it was refused.
    pub result: String,
    pub duration_ms: f64,
    pub unix_time: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct XdpStatus {
    /// Interface → "native" or "generic".
    pub attached: BTreeMap<String, String>,
    /// Interface → verdict → VRRP packets the kernel checked (all but "accepted" and
    /// "unknown_vrid" were dropped there when the VRID is ours).
    pub verdicts: BTreeMap<String, BTreeMap<String, u64>>,
    /// The master each of our VRIDs follows, as the kernel last saw it.
    pub peers: Vec<XdpPeer>,
    /// Our VIPs and who last claimed each one by ARP.
    #[serde(default)]
    pub vips: Vec<XdpVip>,
    /// Frames dropped because they were addressed to a VIP held without Accept_Mode.
    #[serde(default)]
    pub not_accepted_drops: u64,
    /// Interface → how its multicast adverts leave: "kernel" (XDP) or "socket".
    #[serde(default)]
    pub transmit: BTreeMap<String, String>,
    /// Adverts transmitted from the kernel.
    #[serde(default)]
    pub transmitted: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct XdpVip {
    pub interface: String,
    pub vip: String,
    pub held: bool,
    /// The last other MAC whose ARP frame claimed it.
    pub claimed_by: Option<String>,
    /// ARP frames from other MACs claiming it.
    pub claims: u64,
    pub last_claim_ms_ago: Option<f64>,
}

/// A peer whose authentic adverts carry another configuration than ours.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PeerMismatch {
    pub from: std::net::IpAddr,
    /// `virtual_ipaddress`, `advert_int`.
    pub fields: Vec<String>,
    pub theirs: String,
    pub ours: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct XdpPeer {
    pub interface: String,
    pub vrid: u8,
    pub master: String,
    pub priority: u8,
    pub interval_cs: u16,
    pub adverts: u64,
    pub last_seen_ms_ago: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InstanceStatus {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub version: u8,
    pub state: String,
    /// A BACKUP promoting its database before it becomes MASTER.
    #[serde(default)]
    pub promoting: bool,
    /// Effective priority (configured priority plus tracker deltas).
    pub priority: u8,
    pub configured_priority: u8,
    pub master: Option<String>,
    /// The `vrrp_sync_group` the instance is a member of.
    #[serde(default)]
    pub sync_group: Option<String>,
    pub primary_ip: String,
    pub vips: Vec<String>,
    pub vips_held: bool,
    pub advert_interval_ms: f64,
    pub master_down_interval_ms: f64,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub adverts_dropped: BTreeMap<String, u64>,
    /// ARP frames from another MAC claiming a VIP while we held it (split brain).
    #[serde(default)]
    pub arp_conflicts: u64,
    /// The master's adverts carry another configuration than ours (followed all the same).
    #[serde(default)]
    pub peer_config_mismatch: Option<PeerMismatch>,
    /// Adverts accepted although configured otherwise, by field.
    #[serde(default)]
    pub config_mismatch_adverts: BTreeMap<String, u64>,
    pub last_transition: Option<Transition>,
    /// The instance's `track_script` checks.
    #[serde(default)]
    pub trackers: Vec<TrackerStatus>,
    /// The last notify script runs, oldest first.
    #[serde(default)]
    pub notify_runs: Vec<NotifyRun>,
    /// Notify script runs since the start, by state and result.
    #[serde(default)]
    pub notify_counts: Vec<NotifyCount>,
    /// Transitions since the start, by new state and reason.
    #[serde(default)]
    pub transitions: Vec<TransitionCount>,
    /// The instance's etcd witness: its leader key and why it was last refused.
    #[serde(default)]
    pub witness: Option<InstanceWitness>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InstanceWitness {
    pub name: String,
    /// `witness NAME election`: the election, not VRRP, makes the master.
    #[serde(default)]
    pub election: bool,
    pub key: String,
    pub holder: bool,
    /// Why the key was last refused (or the lease lost), until it is taken.
    pub refused: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NotifyCount {
    pub state: String,
    pub ok: bool,
    pub count: u64,
    /// Their total duration.
    #[serde(default)]
    pub total_ms: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TransitionCount {
    pub to: String,
    /// startup, address_owner, master_down, master_resigned, preempt, higher_priority,
    /// shutdown, fault, fault_cleared, switchover.
    pub reason: String,
    pub count: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NotifyRun {
    /// MASTER, BACKUP, FAULT or STOP.
    pub state: String,
    pub command: String,
    pub ok: bool,
    /// "exit 0", "timed out", ...
    pub result: String,
    pub duration_ms: f64,
    /// When it started, seconds since the Unix epoch.
    pub unix_time: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrackerStatus {
    pub name: String,
    pub up: bool,
    /// Consecutive results toward the next change (rise while down, fall while up).
    pub streak: u32,
    /// What the check adds to the priority now.
    pub priority_delta: i32,
    /// The check holds the instance in FAULT (weight 0 and down).
    pub fault: bool,
    pub last_result: Option<String>,
    pub last_duration_ms: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Transition {
    pub from: String,
    pub to: String,
    pub reason: String,
    /// Wall-clock time, seconds since the Unix epoch.
    pub unix_time: f64,
}

impl ReplicationStatus {
    /// Both servers and both directions of replication, for people.
    pub fn render(&self, now: f64) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "replication {}: {}",
            self.name,
            self.problem.as_deref().unwrap_or("healthy")
        );
        for (role, server, health) in [
            ("local", &self.local_server, &self.local),
            ("peer", &self.peer_server, &self.peer),
        ] {
            let _ = write!(out, "  {role} {server}: ");
            match health {
                None => out.push_str("not checked yet\n"),
                Some(h) if !h.reachable => {
                    let _ = writeln!(
                        out,
                        "unreachable ({})",
                        h.error.as_deref().unwrap_or("no answer")
                    );
                }
                Some(h) => {
                    let _ = writeln!(
                        out,
                        "server_id {}, {}, executed {}",
                        h.server_id,
                        if h.read_only { "read-only" } else { "WRITABLE" },
                        if h.executed.is_empty() {
                            "nothing"
                        } else {
                            &h.executed
                        }
                    );
                    match &h.replica {
                        None => out.push_str("    replicates from: nothing configured\n"),
                        Some(r) => {
                            let _ = writeln!(
                                out,
                                "    replicates from {}: io {}, sql {}, lag {}, received {}, to apply: {}{}{}",
                                r.source,
                                r.io_running,
                                if r.sql_running { "Yes" } else { "No" },
                                r.seconds_behind
                                    .map_or("unknown".to_owned(), |s| format!("{s} s")),
                                if r.received.is_empty() {
                                    "nothing"
                                } else {
                                    &r.received
                                },
                                if h.backlog.is_empty() {
                                    "nothing"
                                } else {
                                    &h.backlog
                                },
                                if r.last_io_errno != 0 {
                                    format!(", io error {}: {}", r.last_io_errno, r.last_io_error)
                                } else {
                                    String::new()
                                },
                                if r.last_sql_errno != 0 {
                                    format!(
                                        ", apply error {}: {}",
                                        r.last_sql_errno, r.last_sql_error
                                    )
                                } else {
                                    String::new()
                                },
                            );
                        }
                    }
                    if let Some(s) = &h.semi_sync {
                        let _ = writeln!(
                            out,
                            "    semi-sync: {}, replica side {}, {} commits not acknowledged",
                            match (s.master_enabled, s.master_active) {
                                (true, true) => "ACTIVE (commits wait for the peer)",
                                (true, false) => "FALLEN BACK to asynchronous",
                                (false, _) => "master side off (read-only)",
                            },
                            if s.replica_enabled { "on" } else { "off" },
                            s.not_acknowledged
                        );
                    }
                }
            }
        }
        for (what, run) in [
            ("promotion", &self.last_promotion),
            ("demotion", &self.last_demotion),
        ] {
            if let Some(run) = run {
                let _ = writeln!(
                    out,
                    "  last {what}: {} {:.1} s ago ({:.0} ms): {}",
                    if run.ok { "done" } else { "REFUSED" },
                    (now - run.unix_time).max(0.0),
                    run.duration_ms,
                    run.result
                );
            }
        }
        let _ = writeln!(
            out,
            "  automatic failovers since the last ack: {}",
            self.auto_failovers
        );
        out
    }
}

/// Wall-clock seconds since the Unix epoch (what `Transition::unix_time` holds).
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

impl Status {
    /// A table for people.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let now = unix_now();
        for g in &self.sync_groups {
            let _ = writeln!(
                out,
                "sync group {}: {} ({})",
                g.name,
                g.state,
                g.members.join(", ")
            );
        }
        for b in &self.bfd {
            let _ = writeln!(
                out,
                "bfd {} to {}: {} (peer {}, {}) for {:.1} s, detection {:.1} ms{}, {} in ({} in the kernel) / {} out ({} from the kernel{}), {} down",
                b.name,
                b.neighbor,
                b.state,
                b.remote_state,
                b.diag,
                b.since_s,
                b.detection_time_ms,
                if b.in_kernel { " (in the kernel)" } else { "" },
                b.received,
                b.absorbed,
                b.sent + b.sent_by_kernel,
                b.sent_by_kernel,
                if b.tx_in_kernel {
                    ", clocked there"
                } else {
                    ""
                },
                b.downs
            );
        }
        for i in &self.instances {
            let _ = writeln!(
                out,
                "{} ({} vrid {} v{}): {}{} priority {}{}",
                i.name,
                i.interface,
                i.vrid,
                i.version,
                i.state,
                if i.promoting {
                    " (promoting its database)"
                } else {
                    ""
                },
                i.priority,
                if i.priority != i.configured_priority {
                    format!(" (configured {})", i.configured_priority)
                } else {
                    String::new()
                }
            );
            let _ = writeln!(
                out,
                "  master: {}",
                i.master.as_deref().unwrap_or("unknown")
            );
            let _ = writeln!(
                out,
                "  VIPs: {} ({})",
                i.vips.join(", "),
                if i.vips_held { "held here" } else { "not held" }
            );
            let dropped: u64 = i.adverts_dropped.values().sum();
            let _ = write!(
                out,
                "  adverts: {} sent, {} received, {} dropped",
                i.adverts_sent, i.adverts_received, dropped
            );
            let reasons: Vec<String> = i
                .adverts_dropped
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(r, n)| format!("{r}: {n}"))
                .collect();
            if !reasons.is_empty() {
                let _ = write!(out, " ({})", reasons.join(", "));
            }
            out.push('\n');
            if i.arp_conflicts > 0 {
                let _ = writeln!(
                    out,
                    "  split brain: {} ARP claims of a held VIP by another MAC",
                    i.arp_conflicts
                );
            }
            if let Some(m) = &i.peer_config_mismatch {
                let _ = writeln!(
                    out,
                    "  peer {} configured otherwise ({}): theirs {}; ours {}",
                    m.from,
                    m.fields.join(", "),
                    m.theirs,
                    m.ours
                );
            }
            for c in &i.trackers {
                let _ = writeln!(
                    out,
                    "  check {}: {} ({}{}), {}",
                    c.name,
                    if c.up { "up" } else { "down" },
                    c.last_result.as_deref().unwrap_or("no result yet"),
                    c.last_duration_ms
                        .map(|ms| format!(", {ms:.0} ms"))
                        .unwrap_or_default(),
                    if c.fault {
                        "FAULT".to_owned()
                    } else {
                        format!("priority {:+}", c.priority_delta)
                    }
                );
            }
            if let Some(w) = &i.witness {
                let _ = writeln!(
                    out,
                    "  witness {}: {} {}{}",
                    w.name,
                    w.key,
                    if w.holder { "held here" } else { "not held" },
                    w.refused
                        .as_deref()
                        .map(|why| format!(" (last refused: {why})"))
                        .unwrap_or_default()
                );
            }
            if let Some(n) = i.notify_runs.last() {
                let _ = writeln!(
                    out,
                    "  last notify: {} `{}`: {} ({:.0} ms)",
                    n.state, n.command, n.result, n.duration_ms
                );
            }
            if let Some(t) = &i.last_transition {
                let _ = writeln!(
                    out,
                    "  last transition: {} -> {} {:.1} s ago ({})",
                    t.from,
                    t.to,
                    (now - t.unix_time).max(0.0),
                    t.reason
                );
            }
        }
        for r in &self.replication {
            out.push_str(&r.render(now));
        }
        for w in &self.witnesses {
            let _ = writeln!(
                out,
                "etcd witness {} ({}): {}, lease {}{}{}",
                w.name,
                w.endpoints.join(" "),
                if w.reachable {
                    "reachable"
                } else {
                    "unreachable"
                },
                w.lease.as_deref().unwrap_or("none"),
                w.ttl_left_s
                    .map(|s| format!(" ({s:.1} s left)"))
                    .unwrap_or_default(),
                w.error
                    .as_deref()
                    .map(|e| format!("; {e}"))
                    .unwrap_or_default()
            );
            for (instance, e) in &w.elections {
                let candidates: Vec<String> = e
                    .candidates
                    .iter()
                    .map(|(node, p)| format!("{node} {p}"))
                    .collect();
                let _ = writeln!(
                    out,
                    "  election {instance}: leader {}, candidates [{}]{}",
                    e.leader.as_deref().unwrap_or("none"),
                    candidates.join(", "),
                    if e.campaigning { ", campaigning" } else { "" }
                );
            }
        }
        for (interface, path) in &self.receive_path {
            let verdicts = self
                .xdp
                .as_ref()
                .and_then(|x| x.verdicts.get(interface))
                .map_or(String::new(), |v| {
                    let counts: Vec<String> = v
                        .iter()
                        .map(|(verdict, n)| format!("{verdict} {n}"))
                        .collect();
                    format!(": {}", counts.join(", "))
                });
            let why = match (&self.xdp_unused, path.starts_with("xdp")) {
                (Some(why), false) => format!(" (XDP not used: {why})"),
                _ => String::new(),
            };
            let _ = writeln!(out, "{interface}: {path}{why}{verdicts}");
        }
        match &self.xdp {
            None => {}
            Some(x) => {
                for p in &x.peers {
                    let _ = writeln!(
                        out,
                        "  {} vrid {}: master {} priority {} every {} cs, {} adverts, last {:.0} ms ago",
                        p.interface,
                        p.vrid,
                        p.master,
                        p.priority,
                        p.interval_cs,
                        p.adverts,
                        p.last_seen_ms_ago
                    );
                }
                for v in &x.vips {
                    if let (Some(mac), Some(ago)) = (&v.claimed_by, v.last_claim_ms_ago) {
                        let _ = writeln!(
                            out,
                            "  {} {}{}: claimed by {mac} ({} ARP frames, last {ago:.0} ms ago)",
                            v.interface,
                            v.vip,
                            if v.held { " (held here)" } else { "" },
                            v.claims
                        );
                    }
                }
            }
        }
        let l = &self.timer_lateness;
        if l.over_1ms > 0 {
            let _ = writeln!(
                out,
                "timers: acted on at worst {:.1} ms late; {} times over 1 ms, {} over 10 ms, {} over 100 ms",
                l.max_ms, l.over_1ms, l.over_10ms, l.over_100ms
            );
        }
        out
    }
}
