//! keepalived's VMAC (`use_vmac`): a macvlan in private mode on the instance's interface,
//! with the virtual router's MAC (RFC 5798 §7.3: 00:00:5e:00:01:VRID, IPv6 00:00:5e:00:02:VRID),
//! where the VIPs live, so that the VIP's MAC is the same on whichever node is master. Both
//! nodes keep one; only the master's has addresses and sends.
//!
//! The kernel settings are keepalived's: on an IPv4 macvlan no IPv6 (no link-local address,
//! no router solicitations from a MAC both nodes own); on an IPv6 one no address generated
//! from that MAC (`addr_gen_mode` none: adverts leave from the interface's own link-local
//! address, and a link-local both nodes derived alike would confuse neighbours); ARP answered only for its own addresses,
//! local sources accepted, no reverse-path filter; on the interface under it ARP answered only
//! for its own addresses (`arp_ignore=1`, `arp_filter=1`) so that it never answers for a VIP
//! with its own MAC. One more than keepalived: `arp_announce=2` there, so that the ARP
//! requests it sends (for the peers a VIP answers, whose route is through it) carry its own
//! address, not the VIP's — else every neighbour would learn the VIP at the interface's MAC.
//! What the interface had is restored when the last macvlan goes.

use std::sync::Mutex;

use netlink_packet_route::link::MacVlanMode;
use rtnetlink::{Handle, LinkMacVlan, LinkUnspec};

use super::link::Link;
use crate::vrrp::Family;

/// The virtual router's MAC (RFC 5798 §7.3).
pub fn vmac(family: Family, vrid: u8) -> [u8; 6] {
    let f = match family {
        Family::V4 => 0x01,
        Family::V6 => 0x02,
    };
    [0x00, 0x00, 0x5e, 0x00, f, vrid]
}

/// An interface under one or more macvlans: the settings it had, restored when the last
/// goes.
struct Base {
    name: String,
    before: Vec<(&'static str, String)>,
    macvlans: usize,
}

static BASES: Mutex<Vec<Base>> = Mutex::new(Vec::new());

const BASE_KEYS: [(&str, &str); 3] = [
    ("arp_ignore", "1"),
    ("arp_filter", "1"),
    ("arp_announce", "2"),
];

fn sysctl_path(family: &str, iface: &str, key: &str) -> String {
    format!("/proc/sys/net/{family}/conf/{iface}/{key}")
}

fn set_sysctl(family: &str, iface: &str, key: &str, value: &str) -> Result<(), String> {
    let path = sysctl_path(family, iface, key);
    std::fs::write(&path, value).map_err(|e| format!("{path}: {e}"))
}

/// Creates the macvlan `name` on `base` with the VMAC of `family` (or takes over one a
/// previous run left with that MAC), sets it up and returns it.
pub async fn create(
    handle: &Handle,
    name: &str,
    base: &Link,
    family: Family,
    vrid: u8,
) -> Result<Link, String> {
    let mac = vmac(family, vrid);
    match Link::lookup(name) {
        Ok(existing) if existing.mac == mac => {}
        Ok(existing) => {
            return Err(format!(
                "interface {name} exists with MAC {}, not the VMAC",
                super::link::mac_string(&existing.mac)
            ));
        }
        Err(_) => {
            handle
                .link()
                .add(
                    LinkMacVlan::new(name, base.index, MacVlanMode::Private)
                        .address(mac.to_vec())
                        .build(),
                )
                .execute()
                .await
                .map_err(|e| format!("creating macvlan {name} on {}: {e}", base.name))?;
        }
    }
    // Before it goes up: no IPv6 address may be generated from a MAC both nodes own.
    match family {
        Family::V4 => set_sysctl("ipv6", name, "disable_ipv6", "1")?,
        Family::V6 => set_sysctl("ipv6", name, "addr_gen_mode", "1")?,
    }
    for (key, value) in [
        ("arp_ignore", "1"),
        ("accept_local", "1"),
        ("rp_filter", "0"),
    ] {
        set_sysctl("ipv4", name, key, value)?;
    }
    hold_base(&base.name)?;
    let link = Link::lookup(name).map_err(|e| e.to_string())?;
    handle
        .link()
        .set(LinkUnspec::new_with_index(link.index).up().build())
        .execute()
        .await
        .map_err(|e| format!("setting {name} up: {e}"))?;
    Ok(link)
}

/// Deletes the macvlan and gives the interface under it its settings back when it was the
/// last one.
pub async fn remove(handle: &Handle, vmac: &Link, base: &str) -> Result<(), String> {
    let result = handle
        .link()
        .del(vmac.index)
        .execute()
        .await
        .map_err(|e| format!("deleting {}: {e}", vmac.name));
    release_base(base);
    result
}

fn hold_base(base: &str) -> Result<(), String> {
    let mut bases = BASES.lock().map_err(|e| e.to_string())?;
    if let Some(b) = bases.iter_mut().find(|b| b.name == base) {
        b.macvlans += 1;
        return Ok(());
    }
    let mut before = Vec::new();
    for (key, value) in BASE_KEYS {
        let path = sysctl_path("ipv4", base, key);
        let old = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        before.push((key, old.trim().to_owned()));
        set_sysctl("ipv4", base, key, value)?;
    }
    bases.push(Base {
        name: base.to_owned(),
        before,
        macvlans: 1,
    });
    Ok(())
}

fn release_base(base: &str) {
    let Ok(mut bases) = BASES.lock() else {
        return;
    };
    let Some(pos) = bases.iter().position(|b| b.name == base) else {
        return;
    };
    if let Some(b) = bases.get_mut(pos) {
        b.macvlans -= 1;
        if b.macvlans > 0 {
            return;
        }
    }
    let b = bases.remove(pos);
    for (key, value) in b.before {
        if let Err(e) = set_sysctl("ipv4", base, key, &value) {
            tracing::warn!("restoring {key} on {base}: {e}");
        }
    }
}
