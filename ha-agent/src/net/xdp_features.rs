//! What a driver says it can do with XDP frames (the kernel's `netdev` generic netlink
//! family, Linux 6.3+): whether an interface takes frames redirected to it
//! (`NETDEV_XDP_ACT_NDO_XMIT`). A veth takes them only while its peer runs XDP or GRO, a
//! NIC driver typically only with an XDP program attached, and a redirect to an interface
//! that does not is dropped without a word: the feature is asked, never assumed, and its
//! changes are followed (the family's `mgmt` notifications).

use std::{
    io,
    sync::atomic::{AtomicBool, Ordering},
};

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload, NlaBuffer,
    NlasIterator, ParseableParametrized, parse_u32, parse_u64,
};
use netlink_packet_generic::{
    GenlFamily, GenlHeader, GenlMessage,
    ctrl::{
        GenlCtrl, GenlCtrlCmd,
        nlas::{GenlCtrlAttrs, McastGrpAttrs},
    },
};
use netlink_sys::{
    AsyncSocket as _, AsyncSocketExt as _, Socket, SocketAddr, TokioSocket,
    protocols::NETLINK_GENERIC,
};
use tokio::sync::mpsc;

const NETDEV_CMD_DEV_GET: u8 = 1;
const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XDP_FEATURES: u16 = 3;
const NETDEV_XDP_ACT_NDO_XMIT: u64 = 4;

/// A `netdev` family message: the device it names and its XDP features.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct NetdevDev {
    ifindex: u32,
    xdp_features: u64,
}

impl GenlFamily for NetdevDev {
    fn family_name() -> &'static str {
        "netdev"
    }

    fn command(&self) -> u8 {
        NETDEV_CMD_DEV_GET
    }

    fn version(&self) -> u8 {
        1
    }
}

impl Emitable for NetdevDev {
    fn buffer_len(&self) -> usize {
        self.request().as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        self.request().as_slice().emit(buffer)
    }
}

impl NetdevDev {
    fn request(&self) -> [DefaultNla; 1] {
        [DefaultNla::new(
            NETDEV_A_DEV_IFINDEX,
            self.ifindex.to_ne_bytes().to_vec(),
        )]
    }
}

impl ParseableParametrized<[u8], GenlHeader> for NetdevDev {
    fn parse_with_param(buf: &[u8], _: GenlHeader) -> Result<Self, DecodeError> {
        let mut dev = Self::default();
        for nla in NlasIterator::new(buf) {
            let nla: NlaBuffer<&[u8]> = nla?;
            match nla.kind() {
                NETDEV_A_DEV_IFINDEX => dev.ifindex = parse_u32(nla.value())?,
                NETDEV_A_DEV_XDP_FEATURES => dev.xdp_features = parse_u64(nla.value())?,
                _ => {}
            }
        }
        Ok(dev)
    }
}

/// Whether [`watch`] follows the kernel's announcements: an answer that could change
/// unseen is not given.
static WATCHING: AtomicBool = AtomicBool::new(false);

/// Whether frames redirected to `ifindex` (in the calling thread's network namespace) are
/// sent. An error when the kernel cannot say (no `netdev` family before 6.3), or when its
/// changes are not followed ([`watch`]).
pub fn takes_redirects(ifindex: u32) -> io::Result<bool> {
    if !WATCHING.load(Ordering::Relaxed) {
        return Err(io::Error::other(
            "changes of the XDP features are not followed",
        ));
    }
    let socket = request_socket()?;
    let (family, _) = family(&socket)?;
    let mut request = GenlMessage::from_payload(NetdevDev {
        ifindex,
        ..Default::default()
    });
    request.set_resolved_family_id(family);
    let dev: NetdevDev = round_trip(&socket, request)?;
    Ok(dev.xdp_features & NETDEV_XDP_ACT_NDO_XMIT != 0)
}

/// What [`watch`] sends when any interface may have changed.
pub const EVERY_INTERFACE: u32 = 0;

/// The interfaces whose XDP features (or existence) changed, as the kernel announces them
/// ([`EVERY_INTERFACE`] when announcements were lost); read on the calling runtime.
pub fn watch() -> io::Result<mpsc::UnboundedReceiver<u32>> {
    let (_, group) = family(&request_socket()?)?;
    let group = group.ok_or_else(|| io::Error::other("the netdev family has no mgmt group"))?;
    let mut socket = TokioSocket::new(NETLINK_GENERIC)?;
    socket.socket_mut().bind_auto()?;
    socket.socket_mut().add_membership(group)?;
    WATCHING.store(true, Ordering::Relaxed);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let buf = match socket.recv_from_full().await {
                Ok((buf, _)) => buf,
                // Announcements were lost: every interface may have changed.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    let _ = tx.send(EVERY_INTERFACE);
                    continue;
                }
                Err(_) => break,
            };
            let mut rest = buf.as_slice();
            while let Ok(message) = NetlinkMessage::<GenlMessage<NetdevDev>>::deserialize(rest) {
                if let NetlinkPayload::InnerMessage(m) = message.payload
                    && tx.send(m.payload.ifindex).is_err()
                {
                    return;
                }
                let len = (message.header.length as usize).next_multiple_of(4);
                match rest.get(len..) {
                    Some(next) if len > 0 && !next.is_empty() => rest = next,
                    _ => break,
                }
            }
        }
        // Nothing is followed any more: every answer is asked again (and refused).
        WATCHING.store(false, Ordering::Relaxed);
        let _ = tx.send(EVERY_INTERFACE);
    });
    Ok(rx)
}

fn request_socket() -> io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_GENERIC)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    Ok(socket)
}

/// The id the kernel gave the `netdev` family, and that of its `mgmt` notification group.
fn family(socket: &Socket) -> io::Result<(u16, Option<u32>)> {
    let request = GenlMessage::from_payload(GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: vec![GenlCtrlAttrs::FamilyName(
            NetdevDev::family_name().to_owned(),
        )],
    });
    let reply: GenlCtrl = round_trip(socket, request)?;
    let mut id = None;
    let mut mgmt = None;
    for nla in reply.nlas {
        match nla {
            GenlCtrlAttrs::FamilyId(i) => id = Some(i),
            GenlCtrlAttrs::McastGroups(groups) => {
                for group in groups {
                    let named = group
                        .iter()
                        .any(|a| matches!(a, McastGrpAttrs::Name(n) if n == "mgmt"));
                    let group_id = group.iter().find_map(|a| match a {
                        McastGrpAttrs::Id(i) => Some(*i),
                        _ => None,
                    });
                    if named {
                        mgmt = group_id;
                    }
                }
            }
            _ => {}
        }
    }
    let id = id.ok_or_else(|| io::Error::other("no id for the netdev family"))?;
    Ok((id, mgmt))
}

/// Sends one request and parses its one reply.
fn round_trip<F>(socket: &Socket, mut request: GenlMessage<F>) -> io::Result<F>
where
    F: GenlFamily + Emitable + ParseableParametrized<[u8], GenlHeader> + std::fmt::Debug,
{
    request.finalize();
    let mut message = NetlinkMessage::from(request);
    message.header.flags = NLM_F_REQUEST;
    message.finalize();
    let mut buf = vec![0; message.buffer_len()];
    message.serialize(&mut buf);
    socket.send(&buf, 0)?;
    let mut reply = Vec::with_capacity(8192);
    socket.recv(&mut reply, 0)?;
    let reply = NetlinkMessage::<GenlMessage<F>>::deserialize(&reply)
        .map_err(|e| io::Error::other(e.to_string()))?;
    match reply.payload {
        NetlinkPayload::InnerMessage(message) => Ok(message.payload),
        NetlinkPayload::Error(e) => Err(e.code.map_or_else(
            || io::Error::other("netlink error"),
            |c| io::Error::from_raw_os_error(-c.get()),
        )),
        other => Err(io::Error::other(format!("unexpected reply {other:?}"))),
    }
}
