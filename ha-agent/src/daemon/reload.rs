//! What a SIGHUP changes, as a pure function of the old and new configuration.
//!
//! Instances are matched by (interface, VRID), as keepalived matches them, not by name. A
//! matched instance is updated in place, keeping its state, unless what identifies it on the
//! wire or the socket it uses changed: version, unicast source, or multicast vs unicast.

use crate::config::{Vip, VrrpInstance};

/// One step of a reload. Indexes point into the old and new instance lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The same configuration: nothing to do.
    Keep {
        old: usize,
        new: usize,
    },
    /// Applied in place, with no state change.
    Update {
        old: usize,
        new: usize,
        changes: Vec<Change>,
    },
    /// Stopped (priority 0 if master, VIPs released) and started again.
    Restart {
        old: usize,
        new: usize,
        why: &'static str,
    },
    Stop {
        old: usize,
    },
    Start {
        new: usize,
    },
}

/// A change applied in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Name,
    Priority {
        from: u8,
        to: u8,
    },
    AdvertInterval {
        from_cs: u16,
        to_cs: u16,
    },
    VipsAdded(Vec<Vip>),
    VipsRemoved(Vec<Vip>),
    Authentication,
    Preemption,
    UnicastPeers,
    Garp,
    TrackScripts,
    TrackInterfaces,
    /// `track_file` or `track_process` references.
    Trackers,
    /// How adverts are checked: `check_unicast_src`, `strict_mode`, `skip_check_adv_addr`.
    ReceiveChecks,
    /// `virtual_routes` / `virtual_rules`.
    Routes,
    PromoteSecondaries,
    /// Another keyword the running instance reads as it goes (named).
    Setting(&'static str),
    NotifyScripts,
    InitialState,
    SyncGroup,
}

/// The steps that turn `old` into `new`: stops first (they release VIPs another instance may
/// take), then the others in the order of `new`.
pub fn plan(old: &[VrrpInstance], new: &[VrrpInstance]) -> Vec<Step> {
    // Each address family has its own VRID space: an IPv4 and an IPv6 instance with one
    // VRID are two virtual routers.
    let key = |i: &VrrpInstance| (i.interface.clone(), i.family, i.vrid);
    let mut matched = vec![false; old.len()];
    let mut steps: Vec<Step> = Vec::new();
    let mut rest = Vec::new();
    for (n, cfg) in new.iter().enumerate() {
        let found = old
            .iter()
            .zip(matched.iter_mut())
            .enumerate()
            .find(|(_, (prev, taken))| !**taken && key(prev) == key(cfg));
        let Some((o, (prev, taken))) = found else {
            rest.push(Step::Start { new: n });
            continue;
        };
        *taken = true;
        rest.push(if let Some(why) = restart_reason(prev, cfg) {
            Step::Restart {
                old: o,
                new: n,
                why,
            }
        } else {
            match changes(prev, cfg) {
                changes if changes.is_empty() => Step::Keep { old: o, new: n },
                changes => Step::Update {
                    old: o,
                    new: n,
                    changes,
                },
            }
        });
    }
    steps.extend(
        matched
            .iter()
            .enumerate()
            .filter(|(_, m)| !**m)
            .map(|(o, _)| Step::Stop { old: o }),
    );
    steps.extend(rest);
    steps
}

fn restart_reason(old: &VrrpInstance, new: &VrrpInstance) -> Option<&'static str> {
    if old.version != new.version {
        Some("VRRP version changed")
    } else if old.unicast_src_ip != new.unicast_src_ip {
        Some("unicast_src_ip changed")
    } else if old.mcast_src_ip != new.mcast_src_ip {
        Some("mcast_src_ip changed")
    } else if old.mcast_dst_ip != new.mcast_dst_ip {
        Some("mcast_dst_ip changed")
    } else if old.unicast_peers.is_empty() != new.unicast_peers.is_empty() {
        Some("switched between multicast and unicast")
    } else if old.vmac != new.vmac {
        Some("use_vmac changed")
    } else if old.unicast_ttl != new.unicast_ttl {
        Some("unicast_ttl changed")
    } else {
        None
    }
}

fn changes(old: &VrrpInstance, new: &VrrpInstance) -> Vec<Change> {
    let mut changes = Vec::new();
    if old.name != new.name {
        changes.push(Change::Name);
    }
    if old.priority != new.priority {
        changes.push(Change::Priority {
            from: old.priority,
            to: new.priority,
        });
    }
    if old.advert_int_cs != new.advert_int_cs {
        changes.push(Change::AdvertInterval {
            from_cs: old.advert_int_cs,
            to_cs: new.advert_int_cs,
        });
    }
    let added: Vec<Vip> = new
        .vips
        .iter()
        .filter(|v| !old.vips.contains(v))
        .cloned()
        .collect();
    let removed: Vec<Vip> = old
        .vips
        .iter()
        .filter(|v| !new.vips.contains(v))
        .cloned()
        .collect();
    if !added.is_empty() {
        changes.push(Change::VipsAdded(added));
    }
    if !removed.is_empty() {
        changes.push(Change::VipsRemoved(removed));
    }
    let pairs = [
        (old.auth_pass != new.auth_pass, Change::Authentication),
        (
            (old.preempt, old.preempt_delay, old.fast_preempt)
                != (new.preempt, new.preempt_delay, new.fast_preempt),
            Change::Preemption,
        ),
        (old.unicast_peers != new.unicast_peers, Change::UnicastPeers),
        (old.garp != new.garp, Change::Garp),
        (old.track_scripts != new.track_scripts, Change::TrackScripts),
        (
            old.track_interfaces != new.track_interfaces,
            Change::TrackInterfaces,
        ),
        (old.track_files != new.track_files, Change::Trackers),
        (old.track_processes != new.track_processes, Change::Trackers),
        (
            (old.check_unicast_src, old.strict, old.skip_check_adv_addr)
                != (new.check_unicast_src, new.strict, new.skip_check_adv_addr),
            Change::ReceiveChecks,
        ),
        (
            (&old.routes, &old.rules) != (&new.routes, &new.rules),
            Change::Routes,
        ),
        (
            old.promote_secondaries != new.promote_secondaries,
            Change::PromoteSecondaries,
        ),
        (
            old.down_timer_adverts != new.down_timer_adverts,
            Change::Setting("down_timer_adverts"),
        ),
        (
            old.lower_prio_no_advert != new.lower_prio_no_advert,
            Change::Setting("lower_prio_no_advert"),
        ),
        (
            old.higher_prio_send_advert != new.higher_prio_send_advert,
            Change::Setting("higher_prio_send_advert"),
        ),
        (
            old.notify_priority_changes != new.notify_priority_changes,
            Change::Setting("notify_priority_changes"),
        ),
        (
            old.unicast_fault_no_peer != new.unicast_fault_no_peer,
            Change::Setting("unicast_fault_no_peer"),
        ),
        (old.notify != new.notify, Change::NotifyScripts),
        (old.initial != new.initial, Change::InitialState),
        (old.sync_group != new.sync_group, Change::SyncGroup),
    ];
    changes.extend(
        pairs
            .into_iter()
            .filter(|(changed, _)| *changed)
            .map(|(_, c)| c),
    );
    // Every field is covered above: the instance is otherwise equal (locations never differ).
    debug_assert!(!changes.is_empty() || old == new, "{old:?} vs {new:?}");
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;

    fn instances(text: &str) -> Vec<VrrpInstance> {
        let loaded = parse_str(text, "t.conf");
        assert!(!loaded.diagnostics.has_errors(), "{:?}", loaded.diagnostics);
        loaded.config.instances
    }

    fn conf(name: &str, vrid: u8, body: &str) -> String {
        format!(
            "vrrp_instance {name} {{\n interface eth0\n virtual_router_id {vrid}\n {body}\n}}\n"
        )
    }

    const BASE: &str =
        "priority 150\n advert_int 1\n virtual_ipaddress {\n 10.0.0.1\n 10.0.0.2\n }";

    /// Every keyword an instance reads makes a reload do something: an update in place or a
    /// restart, never "unchanged" (a field `changes` forgot would be kept silently).
    #[test]
    fn every_instance_keyword_is_seen_by_a_reload() {
        let old = instances(&conf("A", 1, BASE));
        for extra in [
            "down_timer_adverts 4",
            "lower_prio_no_advert",
            "higher_prio_send_advert",
            "notify_priority_changes",
            "unicast_fault_no_peer",
            "promote_secondaries",
            "strict_mode",
            "skip_check_adv_addr",
            "check_unicast_src",
            "dont_track_primary",
            "mcast_src_ip 10.0.0.9",
            "mcast_dst_ip 224.0.0.77",
            "use_vmac",
            "unicast_ttl 64",
            "garp_lower_prio_repeat 1",
            "notify_master_rx_lower_pri /bin/true",
            "virtual_routes {\n 10.9.0.0/16 dev eth0\n }",
            "virtual_rules {\n from 10.0.0.1 table 5\n }",
            "virtual_ipaddress_excluded {\n 10.0.0.9\n }",
        ] {
            let new = instances(&conf("A", 1, &format!("{BASE}\n {extra}")));
            let plan = plan(&old, &new);
            assert!(
                !matches!(plan.as_slice(), [Step::Keep { .. }]),
                "{extra}: {plan:?}"
            );
        }
    }

    #[test]
    fn an_unchanged_instance_is_kept_even_when_moved_in_the_file() {
        let old = instances(&format!("\n\n{}", conf("A", 1, BASE)));
        let new = instances(&conf("A", 1, BASE));
        assert_eq!(plan(&old, &new), vec![Step::Keep { old: 0, new: 0 }]);
    }

    #[test]
    fn priority_interval_vips_auth_preemption_and_scripts_update_in_place() {
        let old = instances(&conf("A", 1, BASE));
        let new = instances(&conf(
            "A",
            1,
            "priority 100\n advert_int 2\n nopreempt\n \
             authentication {\n auth_type PASS\n auth_pass secret\n }\n \
             garp_master_repeat 2\n notify_master /bin/true\n \
             virtual_ipaddress {\n 10.0.0.2\n 10.0.0.3/24\n }",
        ));
        let vip = |text: &str| {
            instances(&conf(
                "X",
                9,
                &format!("virtual_ipaddress {{\n {text}\n }}"),
            ))[0]
                .vips[0]
                .clone()
        };
        assert_eq!(
            plan(&old, &new),
            vec![Step::Update {
                old: 0,
                new: 0,
                changes: vec![
                    Change::Priority { from: 150, to: 100 },
                    Change::AdvertInterval {
                        from_cs: 100,
                        to_cs: 200
                    },
                    Change::VipsAdded(vec![vip("10.0.0.3/24")]),
                    Change::VipsRemoved(vec![vip("10.0.0.1")]),
                    Change::Authentication,
                    Change::Preemption,
                    Change::Garp,
                    Change::NotifyScripts,
                ]
            }]
        );
    }

    #[test]
    fn a_rename_is_an_update_matched_by_interface_and_vrid() {
        let old = instances(&conf("A", 1, BASE));
        let new = instances(&conf("B", 1, BASE));
        assert_eq!(
            plan(&old, &new),
            vec![Step::Update {
                old: 0,
                new: 0,
                changes: vec![Change::Name]
            }]
        );
    }

    #[test]
    fn version_and_transport_changes_restart() {
        let old = instances(&conf("A", 1, BASE));
        for (body, why) in [
            ("version 3", "VRRP version changed"),
            ("unicast_src_ip 10.1.1.1", "unicast_src_ip changed"),
            (
                "unicast_peer {\n 10.1.1.2\n }",
                "switched between multicast and unicast",
            ),
        ] {
            let new = instances(&conf("A", 1, &format!("{BASE}\n {body}")));
            assert_eq!(
                plan(&old, &new),
                vec![Step::Restart {
                    old: 0,
                    new: 0,
                    why
                }]
            );
        }
    }

    /// VIPs of the other family make another virtual router (RFC 5798: a VRID space per
    /// family): the IPv4 one stops, the IPv6 one starts.
    #[test]
    fn a_change_of_family_is_another_virtual_router() {
        let old = instances(&conf("A", 1, BASE));
        let new = instances(&conf("A", 1, &BASE.replace("10.0.0.", "2001:db8::")));
        assert_eq!(
            plan(&old, &new),
            vec![Step::Stop { old: 0 }, Step::Start { new: 0 }]
        );
    }

    #[test]
    fn vrid_or_interface_changes_stop_one_and_start_another_stops_first() {
        let old = instances(&format!("{}{}", conf("A", 1, BASE), conf("B", 2, BASE)));
        let new = instances(&format!(
            "{}{}",
            conf("B", 2, BASE),
            conf("A", 3, BASE).replace("10.0.0.", "10.0.1.")
        ));
        assert_eq!(
            plan(&old, &new),
            vec![
                Step::Stop { old: 0 },
                Step::Keep { old: 1, new: 0 },
                Step::Start { new: 1 },
            ]
        );
    }
}
