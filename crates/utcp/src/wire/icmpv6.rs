//! ICMPv6 messages (RFC 4443; Linux `struct icmp6hdr` in `include/uapi/linux/icmpv6.h`).
//!
//! Every message starts with type, code and a checksum, then four bytes whose meaning depends
//! on the type (identifier and sequence of an echo, the MTU of a packet-too-big, the pointer of
//! a parameter problem, unused otherwise), then the body: an echo's data, or for an error as
//! much of the packet that caused it as fits. The checksum covers the IPv6 pseudo header
//! (RFC 4443 §2.3; unlike ICMPv4 it is mandatory), computed with `csum_ipv6_magic()`.

use super::checksum::{checksum, combine};
use super::ipv6::{nexthdr, pseudo_header_checksum_v6};
use super::{Error, Result};
use std::net::Ipv6Addr;

/// Length of the ICMPv6 header (type, code, checksum and the four type-specific bytes).
pub(crate) const ICMPV6_HEADER_LEN: usize = 8;

/// `ICMPV6_DEST_UNREACH`.
pub(crate) const ICMPV6_DEST_UNREACH: u8 = 1;
/// `ICMPV6_PKT_TOOBIG`.
pub(crate) const ICMPV6_PKT_TOOBIG: u8 = 2;
/// `ICMPV6_TIME_EXCEED`.
pub(crate) const ICMPV6_TIME_EXCEED: u8 = 3;
/// `ICMPV6_PARAMPROB`.
pub const ICMPV6_PARAMPROB: u8 = 4;
/// `ICMPV6_ECHO_REQUEST`.
pub const ICMPV6_ECHO_REQUEST: u8 = 128;
/// `ICMPV6_ECHO_REPLY`.
pub const ICMPV6_ECHO_REPLY: u8 = 129;
/// `ICMPV6_INFOMSG_MASK`: types with this bit set are informational, the others errors.
pub(crate) const ICMPV6_INFOMSG_MASK: u8 = 0x80;

/// `ICMPV6_NOROUTE` (destination unreachable code 0).
pub const ICMPV6_NOROUTE: u8 = 0;
/// `ICMPV6_ADDR_UNREACH` (destination unreachable code 3).
pub const ICMPV6_ADDR_UNREACH: u8 = 3;
/// `ICMPV6_PORT_UNREACH` (destination unreachable code 4).
pub const ICMPV6_PORT_UNREACH: u8 = 4;
/// `ICMPV6_HDR_FIELD` (parameter problem code 0: erroneous header field).
pub const ICMPV6_HDR_FIELD: u8 = 0;
/// `ICMPV6_UNK_NEXTHDR` (parameter problem code 1: unrecognized next header).
pub const ICMPV6_UNK_NEXTHDR: u8 = 1;
/// `ICMPV6_UNK_OPTION` (parameter problem code 2: unrecognized IPv6 option).
pub const ICMPV6_UNK_OPTION: u8 = 2;

/// A zero-copy view of an ICMPv6 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Wraps a buffer without validating it; accessors may panic if it is shorter than 8 bytes.
    pub const fn new_unchecked(buffer: T) -> Icmpv6Packet<T> {
        Icmpv6Packet { buffer }
    }

    /// Wraps a buffer of at least [`ICMPV6_HEADER_LEN`] bytes; afterwards no accessor panics.
    pub fn new_checked(buffer: T) -> Result<Icmpv6Packet<T>> {
        if buffer.as_ref().len() < ICMPV6_HEADER_LEN {
            return Err(Error);
        }
        Ok(Icmpv6Packet { buffer })
    }

    /// The message type.
    pub(crate) fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// The code.
    pub(crate) fn code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[2], b[3]])
    }

    /// The four type-specific bytes as one big-endian word (`icmp6_dataun`): the MTU of a
    /// packet-too-big, the pointer of a parameter problem.
    pub(crate) fn data_word(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[4], b[5], b[6], b[7]])
    }

    /// An echo's identifier.
    pub(crate) fn echo_ident(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[4], b[5]])
    }

    /// An echo's sequence number.
    pub(crate) fn echo_seq(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[6], b[7]])
    }

    /// What follows the header: an echo's data, or an error's quoted packet.
    pub(crate) fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[ICMPV6_HEADER_LEN..]
    }

    /// Whether the message is an error (type below 128), about which no error is ever sent.
    pub fn is_error(&self) -> bool {
        self.msg_type() & ICMPV6_INFOMSG_MASK == 0
    }

    /// Whether the checksum is right for a message from `src` to `dst` (the whole buffer is
    /// the message).
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let b = self.buffer.as_ref();
        let ph = pseudo_header_checksum_v6(src, dst, nexthdr::ICMP, b.len() as u32);
        combine(&[ph, checksum(b)]) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Computes and writes the checksum for a message from `src` to `dst`.
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        let b = self.buffer.as_mut();
        b[2] = 0;
        b[3] = 0;
        let ph = pseudo_header_checksum_v6(src, dst, nexthdr::ICMP, b.len() as u32);
        let sum = !combine(&[ph, checksum(b)]);
        b[2..4].copy_from_slice(&sum.to_be_bytes());
    }
}

/// The parsed forms of the messages utcp reads and writes. An error's `quoted` is the start of
/// the packet that caused it (its IPv6 header first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv6Repr<'a> {
    /// Echo request (128).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq: u16,
        /// Data, returned unchanged in the reply.
        data: &'a [u8],
    },
    /// Echo reply (129).
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Destination unreachable (1).
    DstUnreachable {
        /// Code (`ICMPV6_NOROUTE` .. `ICMPV6_REJECT_ROUTE`).
        code: u8,
        /// The quoted packet.
        quoted: &'a [u8],
    },
    /// Packet too big (2).
    PktTooBig {
        /// The next hop's MTU.
        mtu: u32,
        /// The quoted packet.
        quoted: &'a [u8],
    },
    /// Time exceeded (3).
    TimeExceeded {
        /// 0: hop limit exceeded in transit; 1: fragment reassembly time exceeded.
        code: u8,
        /// The quoted packet.
        quoted: &'a [u8],
    },
    /// Parameter problem (4).
    ParamProblem {
        /// `ICMPV6_HDR_FIELD`, `ICMPV6_UNK_NEXTHDR` or `ICMPV6_UNK_OPTION` (or a later code).
        code: u8,
        /// Offset of the offending byte from the start of the quoted packet.
        pointer: u32,
        /// The quoted packet.
        quoted: &'a [u8],
    },
    /// Any other type, kept as it is.
    Other {
        /// Type.
        msg_type: u8,
        /// Code.
        code: u8,
        /// The four type-specific bytes.
        data_word: u32,
        /// The body.
        body: &'a [u8],
    },
}

impl<'a> Icmpv6Repr<'a> {
    /// Parses a message from `src` to `dst`, checking its checksum.
    pub fn parse(packet: &Icmpv6Packet<&'a [u8]>, src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<Icmpv6Repr<'a>> {
        if packet.buffer.len() < ICMPV6_HEADER_LEN || !packet.verify_checksum(src, dst) {
            return Err(Error);
        }
        let body = &packet.buffer[ICMPV6_HEADER_LEN..];
        let code = packet.code();
        Ok(match packet.msg_type() {
            ICMPV6_ECHO_REQUEST => {
                Icmpv6Repr::EchoRequest { ident: packet.echo_ident(), seq: packet.echo_seq(), data: body }
            }
            ICMPV6_ECHO_REPLY => {
                Icmpv6Repr::EchoReply { ident: packet.echo_ident(), seq: packet.echo_seq(), data: body }
            }
            ICMPV6_DEST_UNREACH => Icmpv6Repr::DstUnreachable { code, quoted: body },
            ICMPV6_PKT_TOOBIG => Icmpv6Repr::PktTooBig { mtu: packet.data_word(), quoted: body },
            ICMPV6_TIME_EXCEED => Icmpv6Repr::TimeExceeded { code, quoted: body },
            ICMPV6_PARAMPROB => Icmpv6Repr::ParamProblem { code, pointer: packet.data_word(), quoted: body },
            msg_type => Icmpv6Repr::Other { msg_type, code, data_word: packet.data_word(), body },
        })
    }

    fn parts(&self) -> (u8, u8, u32, &'a [u8]) {
        match *self {
            Icmpv6Repr::EchoRequest { ident, seq, data } => {
                (ICMPV6_ECHO_REQUEST, 0, (u32::from(ident) << 16) | u32::from(seq), data)
            }
            Icmpv6Repr::EchoReply { ident, seq, data } => {
                (ICMPV6_ECHO_REPLY, 0, (u32::from(ident) << 16) | u32::from(seq), data)
            }
            Icmpv6Repr::DstUnreachable { code, quoted } => (ICMPV6_DEST_UNREACH, code, 0, quoted),
            Icmpv6Repr::PktTooBig { mtu, quoted } => (ICMPV6_PKT_TOOBIG, 0, mtu, quoted),
            Icmpv6Repr::TimeExceeded { code, quoted } => (ICMPV6_TIME_EXCEED, code, 0, quoted),
            Icmpv6Repr::ParamProblem { code, pointer, quoted } => (ICMPV6_PARAMPROB, code, pointer, quoted),
            Icmpv6Repr::Other { msg_type, code, data_word, body } => (msg_type, code, data_word, body),
        }
    }

    /// The message's length on the wire.
    pub fn buffer_len(&self) -> usize {
        ICMPV6_HEADER_LEN + self.parts().3.len()
    }

    /// Writes the message (exactly [`buffer_len`](Self::buffer_len) bytes) with its checksum
    /// for `src` → `dst`.
    pub fn emit(&self, buf: &mut [u8], src: &Ipv6Addr, dst: &Ipv6Addr) {
        let (t, code, word, body) = self.parts();
        buf[0] = t;
        buf[1] = code;
        buf[4..8].copy_from_slice(&word.to_be_bytes());
        buf[ICMPV6_HEADER_LEN..ICMPV6_HEADER_LEN + body.len()].copy_from_slice(body);
        Icmpv6Packet::new_unchecked(&mut buf[..ICMPV6_HEADER_LEN + body.len()]).fill_checksum(src, dst);
    }

    /// The message as a new buffer.
    pub fn to_bytes(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> Vec<u8> {
        let mut v = vec![0u8; self.buffer_len()];
        self.emit(&mut v, src, dst);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> (Ipv6Addr, Ipv6Addr) {
        ("fd00::a".parse().unwrap(), "fd00::b".parse().unwrap())
    }

    #[test]
    fn every_message_round_trips_with_its_checksum() {
        let (s, d) = addrs();
        let q = [0x60u8, 0, 0, 0, 0, 8, 17, 64];
        for r in [
            Icmpv6Repr::EchoRequest { ident: 0x1234, seq: 7, data: b"ping" },
            Icmpv6Repr::EchoReply { ident: 0x1234, seq: 8, data: b"" },
            Icmpv6Repr::DstUnreachable { code: ICMPV6_PORT_UNREACH, quoted: &q },
            Icmpv6Repr::PktTooBig { mtu: 1280, quoted: &q },
            Icmpv6Repr::TimeExceeded { code: 1, quoted: &q },
            Icmpv6Repr::ParamProblem { code: ICMPV6_UNK_NEXTHDR, pointer: 6, quoted: &q },
            Icmpv6Repr::Other { msg_type: 135, code: 0, data_word: 0, body: &q },
        ] {
            let b = r.to_bytes(&s, &d);
            let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
            assert!(p.verify_checksum(&s, &d));
            assert_eq!(Icmpv6Repr::parse(&p, &s, &d).unwrap(), r);
            // The pseudo header is covered: the same bytes to another address fail.
            let other: Ipv6Addr = "fd00::c".parse().unwrap();
            assert!(Icmpv6Repr::parse(&p, &s, &other).is_err());
        }
    }

    #[test]
    fn layout_is_rfc_4443s() {
        let (s, d) = addrs();
        let b = Icmpv6Repr::PktTooBig { mtu: 1400, quoted: &[1, 2] }.to_bytes(&s, &d);
        assert_eq!(&b[..2], &[ICMPV6_PKT_TOOBIG, 0]);
        assert_eq!(&b[4..8], &1400u32.to_be_bytes());
        assert_eq!(&b[8..], &[1, 2]);
        let b = Icmpv6Repr::ParamProblem { code: 2, pointer: 42, quoted: &[] }.to_bytes(&s, &d);
        assert_eq!(&b[4..8], &42u32.to_be_bytes());
        let b = Icmpv6Repr::EchoRequest { ident: 0xabcd, seq: 0x0102, data: b"x" }.to_bytes(&s, &d);
        assert_eq!(&b[4..9], &[0xab, 0xcd, 1, 2, b'x']);
        let p = Icmpv6Packet::new_unchecked(&b[..]);
        assert!(!p.is_error());
        assert!(Icmpv6Packet::new_unchecked(&[1u8, 0, 0, 0, 0, 0, 0, 0][..]).is_error());
    }

    #[test]
    fn short_or_corrupt_messages_are_refused() {
        let (s, d) = addrs();
        assert!(Icmpv6Packet::new_checked(&[128u8, 0, 0, 0, 0, 0, 0][..]).is_err());
        let mut b = Icmpv6Repr::EchoRequest { ident: 1, seq: 1, data: b"abc" }.to_bytes(&s, &d);
        b[9] ^= 0x40;
        assert!(Icmpv6Repr::parse(&Icmpv6Packet::new_checked(&b[..]).unwrap(), &s, &d).is_err());
    }
}
