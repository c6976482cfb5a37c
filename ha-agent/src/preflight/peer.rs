//! Compares this node's configuration with its peer's (`check-config --peer`): tracker
//! weights only work relative to the other node's priority, so a weight too small to move
//! the VIP, or one that makes the configured MASTER the lower node, shows only side by side.

use crate::track::check::{Effect, effect};

use crate::config::{Config, Diagnostics, InitialState, VrrpInstance};

/// The priorities one instance can advertise through its weighted trackers (trackers with
/// weight 0 mean FAULT, which always moves the VIP, and are left out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    /// Every tracker up: what the node advertises when healthy.
    healthy: i32,
    /// Every weight that lowers it applied, none that raises it.
    lowest: i32,
    /// Whether any tracker has a weight.
    weighted: bool,
}

fn range(config: &Config, inst: &VrrpInstance) -> Range {
    let mut deltas: Vec<(i32, bool)> = Vec::new();
    for t in &inst.track_scripts {
        if let Some(def) = config.scripts.iter().find(|s| s.name == t.name) {
            deltas.push((t.weight.unwrap_or(def.weight), t.reverse != def.reverse));
        }
    }
    deltas.extend(inst.track_interfaces.iter().map(|t| (t.weight, t.reverse)));
    let delta = |up: bool, weight: i32, reverse: bool| match effect(up, weight, reverse) {
        Effect::Priority(d) => d,
        Effect::Fault => 0,
    };
    let healthy: i32 = deltas.iter().map(|&(w, r)| delta(true, w, r)).sum();
    let lowest: i32 = deltas
        .iter()
        .map(|&(w, r)| delta(true, w, r).min(delta(false, w, r)))
        .sum();
    let clamp = |d: i32| {
        if inst.priority == 255 {
            255
        } else {
            (i32::from(inst.priority) + d).clamp(1, 254)
        }
    };
    Range {
        healthy: clamp(healthy),
        lowest: clamp(lowest),
        weighted: inst.priority != 255 && deltas.iter().any(|&(w, _)| w != 0),
    }
}

/// The peer's instance for `ours`: same interface and VRID, else the only one with that VRID
/// (the two hosts' interfaces may be named differently).
fn counterpart<'a>(ours: &VrrpInstance, peer: &'a Config) -> Option<&'a VrrpInstance> {
    let same_vrid = || peer.instances.iter().filter(|p| p.vrid == ours.vrid);
    same_vrid()
        .find(|p| p.interface == ours.interface)
        .or_else(|| {
            (same_vrid().count() == 1)
                .then(|| same_vrid().next())
                .flatten()
        })
}

/// Warns, at the instance concerned, about weights that can never move the VIP and about a
/// configured MASTER that is the lower node when both are healthy.
pub fn compare(ours: &Config, peer: &Config, diags: &mut Diagnostics) {
    for a in &ours.instances {
        let Some(b) = counterpart(a, peer) else {
            diags.warn(
                &a.loc,
                format!(
                    "instance {}: the peer has no instance with virtual_router_id {}",
                    a.name, a.vrid
                ),
            );
            continue;
        };
        disagreement(a, b, ours.global.strict || peer.global.strict, diags);
        let (ra, rb) = (range(ours, a), range(peer, b));
        for (inst, r, other, ro) in [(a, ra, b, rb), (b, rb, a, ra)] {
            if inst.initial == InitialState::Master
                && other.initial == InitialState::Backup
                && r.healthy < ro.healthy
            {
                diags.warn(
                    &inst.loc,
                    format!(
                        "instance {} is `state MASTER` but advertises {} when healthy, below {} \
                         of the BACKUP at {}: the BACKUP will be master",
                        inst.name, r.healthy, ro.healthy, other.loc
                    ),
                );
            }
            if r.weighted && r.healthy > ro.healthy && r.lowest >= ro.healthy {
                diags.warn(
                    &inst.loc,
                    format!(
                        "instance {}: with every weighted tracker failing it still advertises {}, \
                         not below {} of its peer at {}: no weight can move the VIP \
                         (make the weights larger than the priority gap of {})",
                        inst.name,
                        r.lowest,
                        ro.healthy,
                        other.loc,
                        r.healthy - ro.healthy
                    ),
                );
            }
        }
    }
}

/// Warns about what the two nodes' adverts would disagree on (the address list, a VRRPv2
/// interval): followed all the same, as the peer is alive, unless `vrrp_strict` makes both
/// nodes master.
fn disagreement(a: &VrrpInstance, b: &VrrpInstance, strict: bool, diags: &mut Diagnostics) {
    // What the adverts carry: `virtual_ipaddress_excluded` is not compared.
    let advertised = |i: &VrrpInstance| -> Vec<_> {
        i.vips
            .iter()
            .filter(|v| !v.excluded)
            .map(|v| v.addr)
            .collect()
    };
    let (mut ours, mut theirs) = (advertised(a), advertised(b));
    ours.sort();
    theirs.sort();
    let mut fields = Vec::new();
    if ours != theirs {
        fields.push(format!(
            "virtual_ipaddress {ours:?} here, {theirs:?} at {}",
            b.loc
        ));
    }
    if a.version == crate::vrrp::Version::V2 && a.advert_int_cs != b.advert_int_cs {
        fields.push(format!(
            "advert_int {} s here, {} s at {}",
            f64::from(a.advert_int_cs) / 100.0,
            f64::from(b.advert_int_cs) / 100.0,
            b.loc
        ));
    }
    if fields.is_empty() {
        return;
    }
    let outcome = if strict {
        "with vrrp_strict each node drops the other's adverts and both become master"
    } else {
        "each node follows the other's adverts (they prove it alive) and logs the difference"
    };
    diags.warn(
        &a.loc,
        format!(
            "instance {}: the nodes' adverts will disagree: {}; {outcome}",
            a.name,
            fields.join("; ")
        ),
    );
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Memory, load_from};

    fn config(name: &str, state: &str, priority: u8, weight: i32) -> (Config, Diagnostics) {
        let text = format!(
            "vrrp_script chk {{\n script \"/bin/true\"\n weight {weight}\n}}\n\
             vrrp_instance VI_1 {{\n state {state}\n interface eth0\n virtual_router_id 107\n \
             priority {priority}\n virtual_ipaddress {{\n 192.168.2.200\n }}\n \
             track_script {{\n chk\n }}\n}}\n"
        );
        let source = Memory([(name.into(), text.into_bytes())].into());
        let loaded = load_from(&source, Path::new(name)).unwrap();
        assert!(!loaded.diagnostics.has_errors(), "{:?}", loaded.diagnostics);
        (loaded.config, loaded.diagnostics)
    }

    fn warnings(a: (&str, u8, i32), b: (&str, u8, i32)) -> Vec<String> {
        let (ours, _) = config("a.conf", a.0, a.1, a.2);
        let (peer, _) = config("b.conf", b.0, b.1, b.2);
        let mut diags = Diagnostics::default();
        compare(&ours, &peer, &mut diags);
        diags.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_seed_weights_move_the_vip() {
        assert!(warnings(("MASTER", 150, -50), ("BACKUP", 120, -50)).is_empty());
        // FAULT trackers always move it.
        assert!(warnings(("MASTER", 150, 0), ("BACKUP", 100, 0)).is_empty());
    }

    #[test]
    fn a_weight_smaller_than_the_gap_is_warned_at_the_master() {
        let w = warnings(("MASTER", 150, -20), ("BACKUP", 100, -20));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("a.conf:5: warning: instance VI_1: with every"),
            "{w:?}"
        );
        assert!(w[0].contains("advertises 130, not below 100"), "{w:?}");
        assert!(w[0].contains("gap of 50"), "{w:?}");
        // A tie is not below either: the higher address would decide.
        assert_eq!(warnings(("MASTER", 150, -50), ("BACKUP", 100, 0)).len(), 1);
        // Seen from the backup's file, the warning points at the peer's instance.
        let w = warnings(("BACKUP", 100, -20), ("MASTER", 150, -20));
        assert!(w[0].starts_with("b.conf:5: warning"), "{w:?}");
    }

    #[test]
    fn a_positive_weight_that_lifts_the_backup_above_the_master_is_warned() {
        let w = warnings(("MASTER", 150, -60), ("BACKUP", 120, 40));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("is `state MASTER` but advertises 150 when healthy, below 160"),
            "{w:?}"
        );
    }

    #[test]
    fn adverts_that_will_disagree_are_warned() {
        let (ours, _) = config("a.conf", "MASTER", 150, -50);
        let mut peer = ours.clone();
        peer.instances[0].advert_int_cs = 200;
        let extra = crate::config::Vip {
            addr: std::net::Ipv4Addr::new(192, 168, 2, 201).into(),
            ..peer.instances[0].vips[0].clone()
        };
        peer.instances[0].vips.push(extra);
        peer.instances[0].initial = InitialState::Backup;
        peer.instances[0].priority = 120;
        let mut diags = Diagnostics::default();
        compare(&ours, &peer, &mut diags);
        let w: Vec<String> = diags.iter().map(ToString::to_string).collect();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("the nodes' adverts will disagree"), "{w:?}");
        assert!(
            w[0].contains("virtual_ipaddress [192.168.2.200] here"),
            "{w:?}"
        );
        assert!(w[0].contains("advert_int 1 s here, 2 s"), "{w:?}");
        assert!(w[0].contains("follows the other's adverts"), "{w:?}");
        peer.global.strict = true;
        let mut diags = Diagnostics::default();
        compare(&ours, &peer, &mut diags);
        assert!(
            diags
                .iter()
                .any(|d| d.to_string().contains("both become master"))
        );
    }

    #[test]
    fn no_counterpart_is_warned() {
        let (ours, _) = config("a.conf", "MASTER", 150, -50);
        let mut peer = ours.clone();
        peer.instances[0].vrid = 108;
        let mut diags = Diagnostics::default();
        compare(&ours, &peer, &mut diags);
        assert_eq!(diags.warning_count(), 1);
    }
}
