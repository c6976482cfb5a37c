//! What a driver says it can do with XDP frames (the kernel's `netdev` generic netlink
//! family, Linux 6.3+): whether an interface takes frames redirected to it
//! (`NETDEV_XDP_ACT_NDO_XMIT`). A veth takes them only while its peer runs XDP or GRO, a
//! NIC driver typically only with an XDP program attached, and a redirect to an interface
//! that does not is dropped without a word: the feature is asked, never assumed.

use std::io;

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload, NlaBuffer,
    NlasIterator, ParseableParametrized, parse_u32, parse_u64,
};
use netlink_packet_generic::{
    GenlFamily, GenlHeader, GenlMessage,
    ctrl::{GenlCtrl, GenlCtrlCmd, nlas::GenlCtrlAttrs},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_GENERIC};

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

/// Whether frames redirected to `ifindex` (in the calling thread's network namespace) are
/// sent. An error when the kernel cannot say (no `netdev` family before 6.3).
pub fn takes_redirects(ifindex: u32) -> io::Result<bool> {
    let mut socket = Socket::new(NETLINK_GENERIC)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let family = family_id(&socket)?;
    let mut request = GenlMessage::from_payload(NetdevDev {
        ifindex,
        ..Default::default()
    });
    request.set_resolved_family_id(family);
    let dev: NetdevDev = round_trip(&socket, request)?;
    Ok(dev.xdp_features & NETDEV_XDP_ACT_NDO_XMIT != 0)
}

/// The id the kernel gave the `netdev` family.
fn family_id(socket: &Socket) -> io::Result<u16> {
    let request = GenlMessage::from_payload(GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: vec![GenlCtrlAttrs::FamilyName(NetdevDev::family_name().to_owned())],
    });
    let reply: GenlCtrl = round_trip(socket, request)?;
    reply
        .nlas
        .iter()
        .find_map(|nla| match nla {
            GenlCtrlAttrs::FamilyId(id) => Some(*id),
            _ => None,
        })
        .ok_or_else(|| io::Error::other("no id for the netdev family"))
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
        NetlinkPayload::Error(e) => Err(e
            .code
            .map_or_else(|| io::Error::other("netlink error"), |c| {
                io::Error::from_raw_os_error(-c.get())
            })),
        other => Err(io::Error::other(format!("unexpected reply {other:?}"))),
    }
}
