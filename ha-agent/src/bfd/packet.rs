//! BFD Control packets (RFC 5880 §4.1), with the Simple Password authentication section
//! (§4.2.2). Parsing makes the checks of §6.8.6 that need no session; each failure is a
//! [`Malformed`] reason the caller counts.

use std::fmt;

/// UDP port of single-hop control packets (RFC 5881 §4).
pub const CONTROL_PORT: u16 = 3784;
/// Source ports a session picks from (RFC 5881 §4).
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// The mandatory part of a control packet.
pub const HEADER_LEN: usize = 24;
/// The largest packet we build: the header and a 16-character password.
pub const MAX_LEN: usize = HEADER_LEN + 3 + 16;

const VERSION: u8 = 1;
const AUTH_SIMPLE_PASSWORD: u8 = 1;

/// bfd.SessionState and the State field (§4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    AdminDown = 0,
    Down = 1,
    Init = 2,
    Up = 3,
}

impl State {
    fn from_bits(bits: u8) -> Self {
        match bits & 3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Diagnostic field (§4.1): why the session last left Up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Diag {
    None = 0,
    DetectionTimeExpired = 1,
    EchoFailed = 2,
    NeighborSignaledDown = 3,
    ForwardingPlaneReset = 4,
    PathDown = 5,
    ConcatenatedPathDown = 6,
    AdministrativelyDown = 7,
    ReverseConcatenatedPathDown = 8,
    /// 9-31: reserved values a peer may still send.
    Reserved = 31,
}

impl Diag {
    fn from_bits(bits: u8) -> Self {
        match bits & 0x1f {
            0 => Diag::None,
            1 => Diag::DetectionTimeExpired,
            2 => Diag::EchoFailed,
            3 => Diag::NeighborSignaledDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdministrativelyDown,
            8 => Diag::ReverseConcatenatedPathDown,
            _ => Diag::Reserved,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Diag::None => "none",
            Diag::DetectionTimeExpired => "detection time expired",
            Diag::EchoFailed => "echo failed",
            Diag::NeighborSignaledDown => "neighbor signaled session down",
            Diag::ForwardingPlaneReset => "forwarding plane reset",
            Diag::PathDown => "path down",
            Diag::ConcatenatedPathDown => "concatenated path down",
            Diag::AdministrativelyDown => "administratively down",
            Diag::ReverseConcatenatedPathDown => "reverse concatenated path down",
            Diag::Reserved => "reserved",
        }
    }
}

/// One control packet. Intervals are in microseconds, as on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Control {
    pub diag: Diag,
    pub state: State,
    pub poll: bool,
    pub final_: bool,
    /// Control Plane Independent.
    pub cpi: bool,
    pub demand: bool,
    pub detect_mult: u8,
    pub my_discr: u32,
    pub your_discr: u32,
    pub desired_min_tx_us: u32,
    pub required_min_rx_us: u32,
    pub required_min_echo_rx_us: u32,
    /// Simple Password authentication: key ID and password (1-16 bytes).
    pub password: Option<(u8, Vec<u8>)>,
}

/// Why a packet was discarded before any session saw it (§6.8.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Malformed {
    Short,
    Version,
    /// The Length field is below the minimum or beyond the datagram.
    Length,
    ZeroDetectMult,
    Multipoint,
    ZeroMyDiscr,
    /// An authentication type other than Simple Password, or a malformed section.
    Auth,
}

impl Malformed {
    pub const ALL: [Malformed; 7] = [
        Malformed::Short,
        Malformed::Version,
        Malformed::Length,
        Malformed::ZeroDetectMult,
        Malformed::Multipoint,
        Malformed::ZeroMyDiscr,
        Malformed::Auth,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::Short => "short",
            Malformed::Version => "version",
            Malformed::Length => "length",
            Malformed::ZeroDetectMult => "zero_detect_mult",
            Malformed::Multipoint => "multipoint",
            Malformed::ZeroMyDiscr => "zero_my_discriminator",
            Malformed::Auth => "authentication",
        }
    }
}

fn be32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    if let Some(b) = bytes.get(at..at + 4) {
        word.copy_from_slice(b);
    }
    u32::from_be_bytes(word)
}

impl Control {
    /// Parses a UDP payload.
    pub fn parse(bytes: &[u8]) -> Result<Control, Malformed> {
        let (Some(&b0), Some(&b1), Some(&mult), Some(&len)) =
            (bytes.first(), bytes.get(1), bytes.get(2), bytes.get(3))
        else {
            return Err(Malformed::Short);
        };
        if b0 >> 5 != VERSION {
            return Err(Malformed::Version);
        }
        let auth = b1 & 0x04 != 0;
        let len = usize::from(len);
        if bytes.len() < HEADER_LEN {
            return Err(Malformed::Short);
        }
        if len < HEADER_LEN + if auth { 2 } else { 0 } || len > bytes.len() {
            return Err(Malformed::Length);
        }
        if mult == 0 {
            return Err(Malformed::ZeroDetectMult);
        }
        if b1 & 0x01 != 0 {
            return Err(Malformed::Multipoint);
        }
        let my_discr = be32(bytes, 4);
        if my_discr == 0 {
            return Err(Malformed::ZeroMyDiscr);
        }
        let password = if auth {
            let section = bytes.get(HEADER_LEN..len).ok_or(Malformed::Auth)?;
            match section {
                [AUTH_SIMPLE_PASSWORD, auth_len, key_id, password @ ..]
                    if usize::from(*auth_len) == section.len()
                        && (1..=16).contains(&password.len()) =>
                {
                    Some((*key_id, password.to_vec()))
                }
                _ => return Err(Malformed::Auth),
            }
        } else {
            None
        };
        Ok(Control {
            diag: Diag::from_bits(b0),
            state: State::from_bits(b1 >> 6),
            poll: b1 & 0x20 != 0,
            final_: b1 & 0x10 != 0,
            cpi: b1 & 0x08 != 0,
            demand: b1 & 0x02 != 0,
            detect_mult: mult,
            my_discr,
            your_discr: be32(bytes, 8),
            desired_min_tx_us: be32(bytes, 12),
            required_min_rx_us: be32(bytes, 16),
            required_min_echo_rx_us: be32(bytes, 20),
            password,
        })
    }

    /// The packet's bytes into `out` (cleared first).
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.clear();
        let auth_len = self.password.as_ref().map_or(0, |(_, p)| 3 + p.len());
        out.push((VERSION << 5) | (self.diag as u8 & 0x1f));
        out.push(
            ((self.state as u8) << 6)
                | u8::from(self.poll) << 5
                | u8::from(self.final_) << 4
                | u8::from(self.cpi) << 3
                | u8::from(self.password.is_some()) << 2
                | u8::from(self.demand) << 1,
        );
        out.push(self.detect_mult);
        out.push(u8::try_from(HEADER_LEN + auth_len).unwrap_or(u8::MAX));
        for word in [
            self.my_discr,
            self.your_discr,
            self.desired_min_tx_us,
            self.required_min_rx_us,
            self.required_min_echo_rx_us,
        ] {
            out.extend_from_slice(&word.to_be_bytes());
        }
        if let Some((key_id, password)) = &self.password {
            out.push(AUTH_SIMPLE_PASSWORD);
            out.push(u8::try_from(3 + password.len()).unwrap_or(u8::MAX));
            out.push(*key_id);
            out.extend_from_slice(password);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Control {
        Control {
            diag: Diag::DetectionTimeExpired,
            state: State::Up,
            poll: true,
            final_: false,
            cpi: true,
            demand: false,
            detect_mult: 3,
            my_discr: 0x0102_0304,
            your_discr: 7,
            desired_min_tx_us: 1000,
            required_min_rx_us: 2000,
            required_min_echo_rx_us: 0,
            password: None,
        }
    }

    #[test]
    fn emit_then_parse_round_trips_with_the_rfc_layout() {
        let mut out = Vec::new();
        sample().emit(&mut out);
        assert_eq!(
            out,
            [
                0x21, 0xe8, 3, 24, 1, 2, 3, 4, 0, 0, 0, 7, 0, 0, 0x03, 0xe8, 0, 0, 0x07, 0xd0, 0,
                0, 0, 0
            ]
        );
        assert_eq!(Control::parse(&out), Ok(sample()));
        let with_password = Control {
            password: Some((5, b"secret".to_vec())),
            ..sample()
        };
        with_password.emit(&mut out);
        assert_eq!(out.len(), 33);
        assert_eq!(out[3], 33);
        assert_eq!(&out[24..27], &[1, 9, 5]);
        assert_eq!(Control::parse(&out), Ok(with_password));
    }

    #[test]
    fn the_session_free_checks_of_6_8_6() {
        let mut good = Vec::new();
        sample().emit(&mut good);
        let with = |at: usize, value: u8| {
            let mut bytes = good.clone();
            bytes[at] = value;
            Control::parse(&bytes)
        };
        assert_eq!(Control::parse(&good[..23]), Err(Malformed::Short));
        assert_eq!(with(0, 0x41), Err(Malformed::Version));
        assert_eq!(with(3, 23), Err(Malformed::Length));
        assert_eq!(with(3, 25), Err(Malformed::Length));
        assert_eq!(with(2, 0), Err(Malformed::ZeroDetectMult));
        assert_eq!(with(1, 0xc1), Err(Malformed::Multipoint));
        let mut zero_discr = good.clone();
        zero_discr[4..8].fill(0);
        assert_eq!(Control::parse(&zero_discr), Err(Malformed::ZeroMyDiscr));
        // The A bit without a valid section; a keyed type we do not speak.
        assert_eq!(with(1, 0xec), Err(Malformed::Length));
        let mut md5 = good.clone();
        md5[1] |= 0x04;
        md5[3] = 28;
        md5.extend_from_slice(&[2, 4, 1, 0]);
        assert_eq!(Control::parse(&md5), Err(Malformed::Auth));
        // Trailing bytes beyond Length are not part of the packet.
        let mut padded = good.clone();
        padded.extend_from_slice(&[0; 8]);
        assert_eq!(Control::parse(&padded), Ok(sample()));
    }

    #[test]
    fn no_input_panics() {
        let mut bytes = Vec::new();
        sample().emit(&mut bytes);
        for len in 0..bytes.len() {
            for flip in 0..=255u8 {
                let mut b = bytes[..len].to_vec();
                if let Some(x) = b.get_mut(len / 2) {
                    *x ^= flip;
                }
                let _ = Control::parse(&b);
            }
        }
    }
}
