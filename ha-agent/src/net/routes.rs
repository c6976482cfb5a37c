//! The routes and policy rules of `virtual_routes` / `virtual_rules`, added and removed
//! through rtnetlink. Adding one that exists and removing one that is gone are fine: a master
//! that restarts finds its routes in place.

use netlink_packet_route::{
    route::{RouteMessage, RouteScope, RouteType},
    rule::RuleMessage,
};
use rtnetlink::{Handle, RouteMessageBuilder};

use crate::config::{RouteKind, VirtualRoute, VirtualRule};

const EEXIST: i32 = 17;
const ENOENT: i32 = 2;
const ESRCH: i32 = 3;

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

/// The kernel's message for `route`, its `dev` resolved to `dev_index`.
fn route_message(route: &VirtualRoute, dev_index: Option<u32>) -> RouteMessage {
    let (dest, len) = route.dest;
    let mut b = RouteMessageBuilder::<std::net::Ipv4Addr>::new().destination_prefix(dest, len);
    if let Some(via) = route.via {
        b = b.gateway(via);
    }
    if let Some(src) = route.src {
        b = b.pref_source(src);
    }
    if let Some(index) = dev_index {
        b = b.output_interface(index);
    }
    if let Some(table) = route.table {
        b = b.table_id(table);
    }
    if let Some(metric) = route.metric {
        b = b.priority(metric);
    }
    let kind = match route.kind {
        RouteKind::Unicast => RouteType::Unicast,
        RouteKind::Blackhole => RouteType::BlackHole,
        RouteKind::Unreachable => RouteType::Unreachable,
        RouteKind::Prohibit => RouteType::Prohibit,
    };
    b = b.kind(kind);
    // As `ip route`: a route without a gateway through a device is link scope.
    let scope = route.scope.map(RouteScope::from).unwrap_or(
        if route.via.is_none() && dev_index.is_some() && route.kind == RouteKind::Unicast {
            RouteScope::Link
        } else {
            RouteScope::Universe
        },
    );
    b.scope(scope).build()
}

/// Adds (`add`) or removes `route`: adding one that exists and removing one that is gone
/// are fine.
pub async fn route(
    handle: &Handle,
    route: &VirtualRoute,
    dev_index: Option<u32>,
    add: bool,
) -> Result<(), String> {
    let message = route_message(route, dev_index);
    let (result, fine, what) = if add {
        (
            handle.route().add(message).execute().await,
            EEXIST,
            "adding",
        )
    } else {
        (
            handle.route().del(message).execute().await,
            ENOENT,
            "removing",
        )
    };
    match result {
        Err(e) if errno(&e) == Some(fine) || (!add && errno(&e) == Some(ESRCH)) => Ok(()),
        result => result.map_err(|e| format!("{what} route {}: {e}", describe(route))),
    }
}

fn rule_message(handle: &Handle, rule: &VirtualRule) -> RuleMessage {
    let mut request = handle.rule().add().table_id(rule.table);
    if let Some(priority) = rule.priority {
        request = request.priority(priority);
    }
    if let Some(iif) = &rule.iif {
        request = request.input_interface(iif.clone());
    }
    if let Some(oif) = &rule.oif {
        request = request.output_interface(oif.clone());
    }
    let mut request = request.v4();
    if let Some((addr, len)) = rule.from {
        request = request.source_prefix(addr, len);
    }
    if let Some((addr, len)) = rule.to {
        request = request.destination_prefix(addr, len);
    }
    request.message_mut().clone()
}

pub async fn add_rule(handle: &Handle, rule: &VirtualRule) -> Result<(), String> {
    let mut request = handle.rule().add();
    *request.message_mut() = rule_message(handle, rule);
    match request.execute().await {
        Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
        result => result.map_err(|e| format!("adding rule to table {}: {e}", rule.table)),
    }
}

pub async fn remove_rule(handle: &Handle, rule: &VirtualRule) -> Result<(), String> {
    match handle
        .rule()
        .del(rule_message(handle, rule))
        .execute()
        .await
    {
        Err(e) if matches!(errno(&e), Some(ENOENT | ESRCH)) => Ok(()),
        result => result.map_err(|e| format!("removing rule to table {}: {e}", rule.table)),
    }
}

fn describe(route: &VirtualRoute) -> String {
    let (dest, len) = route.dest;
    let mut s = format!("{dest}/{len}");
    if let Some(via) = route.via {
        s.push_str(&format!(" via {via}"));
    }
    if let Some(dev) = &route.dev {
        s.push_str(&format!(" dev {dev}"));
    }
    s
}
