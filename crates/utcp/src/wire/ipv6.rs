//! IPv6 header (RFC 8200; Linux `struct ipv6hdr` in `include/uapi/linux/ipv6.h`) and its
//! extension headers.
//!
//! Validation mirrors `ip6_rcv_core()` (`net/ipv6/ip6_input.c`): version 6, the fixed header
//! within the buffer, `40 + payload_len <= buffer length` (link-layer padding beyond it is
//! ignored). A payload length of 0 with a hop-by-hop header next is a jumbogram candidate,
//! which Linux accepts only with a Jumbo Payload option on a GSO packet; utcp refuses it.
//!
//! Extension headers are walked as `ipv6_skip_exthdr()` (`net/ipv6/exthdrs_core.c`) does:
//! hop-by-hop, routing and destination options are `(nexthdr, hdrlen)` blocks of
//! `(hdrlen + 1) * 8` bytes, the authentication header `(hdrlen + 2) * 4` bytes, and a
//! fragment header 8 bytes. What the receive path does with each (options' actions,
//! routing headers, fragments) is [`ExtWalk`]'s answer.

use super::checksum::combine;
use super::{Error, Result};
use std::net::Ipv6Addr;

/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;

/// `NEXTHDR_*` (`include/net/ipv6.h`).
pub mod nexthdr {
    /// Hop-by-hop options.
    pub const HOP: u8 = 0;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// Routing header.
    pub const ROUTING: u8 = 43;
    /// Fragment header.
    pub const FRAGMENT: u8 = 44;
    /// Encapsulating security payload.
    pub const ESP: u8 = 50;
    /// Authentication header.
    pub(crate) const AUTH: u8 = 51;
    /// ICMPv6.
    pub const ICMP: u8 = 58;
    /// No next header.
    pub const NONE: u8 = 59;
    /// Destination options.
    pub const DEST: u8 = 60;
}

mod field {
    use core::ops::Range;
    pub(crate) const VER_TC_FLOW: Range<usize> = 0..4;
    pub(crate) const LENGTH: Range<usize> = 4..6;
    pub(crate) const NXT_HDR: usize = 6;
    pub(crate) const HOP_LIMIT: usize = 7;
    pub(crate) const SRC_ADDR: Range<usize> = 8..24;
    pub(crate) const DST_ADDR: Range<usize> = 24..40;
}

/// A zero-copy view of an IPv6 packet (fixed header and everything after it) in a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps a buffer without validating it; accessors may panic if it is malformed.
    pub const fn new_unchecked(buffer: T) -> Ipv6Packet<T> {
        Ipv6Packet { buffer }
    }

    /// Wraps a buffer and validates it with [`check_len`](Self::check_len); afterwards no
    /// accessor panics.
    pub fn new_checked(buffer: T) -> Result<Ipv6Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Validates the header as `ip6_rcv_core()` does: 40 bytes, version 6, and
    /// `40 + payload_len <= buffer length` (`IPSTATS_MIB_INTRUNCATEDPKTS` otherwise). A zero
    /// payload length before a hop-by-hop header (a jumbogram) is refused.
    pub(crate) fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < IPV6_HEADER_LEN || self.version() != 6 {
            return Err(Error);
        }
        let plen = usize::from(self.payload_len());
        if plen == 0 && self.next_header() == nexthdr::HOP {
            return Err(Error);
        }
        if IPV6_HEADER_LEN + plen > len {
            return Err(Error);
        }
        Ok(())
    }

    /// Consumes the view, returning the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn word0(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The version field (6).
    pub(crate) fn version(&self) -> u8 {
        (self.buffer.as_ref()[0] >> 4) & 0xf
    }

    /// The traffic class (DSCP and ECN), as IPV6_TCLASS reads it.
    pub fn traffic_class(&self) -> u8 {
        ((self.word0() >> 20) & 0xff) as u8
    }

    /// The 20-bit flow label.
    pub fn flow_label(&self) -> u32 {
        self.word0() & 0x000f_ffff
    }

    /// The payload length (extension headers included).
    pub(crate) fn payload_len(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[field::LENGTH.start], b[field::LENGTH.start + 1]])
    }

    /// The first next-header value.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    /// The hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// The source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC_ADDR]);
        Ipv6Addr::from(a)
    }

    /// The destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST_ADDR]);
        Ipv6Addr::from(a)
    }

    /// Everything after the fixed header up to the payload length: extension headers and
    /// the upper-layer packet.
    pub fn payload(&self) -> &[u8] {
        let end = IPV6_HEADER_LEN + usize::from(self.payload_len());
        &self.buffer.as_ref()[IPV6_HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    fn set_word0(&mut self, w: u32) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&w.to_be_bytes());
    }

    /// Sets the version field.
    pub(crate) fn set_version(&mut self, v: u8) {
        let w = (self.word0() & 0x0fff_ffff) | (u32::from(v & 0xf) << 28);
        self.set_word0(w);
    }

    /// Sets the traffic class.
    pub(crate) fn set_traffic_class(&mut self, tc: u8) {
        let w = (self.word0() & 0xf00f_ffff) | (u32::from(tc) << 20);
        self.set_word0(w);
    }

    /// Sets the flow label (low 20 bits of `label`).
    pub(crate) fn set_flow_label(&mut self, label: u32) {
        let w = (self.word0() & 0xfff0_0000) | (label & 0x000f_ffff);
        self.set_word0(w);
    }

    /// Sets the payload length.
    pub(crate) fn set_payload_len(&mut self, len: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&len.to_be_bytes());
    }

    /// Sets the first next-header value.
    pub(crate) fn set_next_header(&mut self, nh: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = nh;
    }

    /// Sets the hop limit.
    pub(crate) fn set_hop_limit(&mut self, h: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = h;
    }

    /// Sets the source address.
    pub(crate) fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    pub(crate) fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }

    /// The bytes after the fixed header, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = IPV6_HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[IPV6_HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Ipv6Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The parsed fixed header. `next_header` and `payload_len` are those of the fixed header;
/// extension headers are walked with [`walk_ext_headers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// First next-header value.
    pub next_header: u8,
    /// Bytes after the fixed header.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Parses a checked packet.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Result<Ipv6Repr> {
        packet.check_len()?;
        Ok(Ipv6Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// The length of the fixed header.
    pub const fn buffer_len(&self) -> usize {
        IPV6_HEADER_LEN
    }

    /// Writes the fixed header into `packet` (whose buffer must hold at least 40 bytes).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv6Packet<T>) {
        packet.set_word0(0);
        packet.set_version(6);
        packet.set_traffic_class(self.traffic_class);
        packet.set_flow_label(self.flow_label);
        packet.set_payload_len(self.payload_len as u16);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

/// The folded (not complemented) one's-complement sum of the IPv6 pseudo header (RFC 8200
/// §8.1, Linux `csum_ipv6_magic()`): source, destination, the 32-bit upper-layer length and
/// the next header value (of the upper layer, not of an extension header).
pub fn pseudo_header_checksum_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, length: u32) -> u16 {
    let mut words = [0u16; 20];
    for (i, w) in src.segments().iter().chain(dst.segments().iter()).enumerate() {
        words[i] = *w;
    }
    words[16] = (length >> 16) as u16;
    words[17] = length as u16;
    words[18] = 0;
    words[19] = u16::from(next_header);
    combine(&words)
}

/// What an option's type says to do when the receiver does not know it (RFC 8200 §4.2: the two
/// high bits; Linux `ip6_tlvopt_unknown()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnknownOptAction {
    /// 00: skip the option.
    Skip,
    /// 01: discard the packet silently.
    Discard,
    /// 10: discard and send an ICMPv6 parameter problem (code 2), multicast or not.
    DiscardIcmp,
    /// 11: discard and send the parameter problem only if the destination is not multicast.
    DiscardIcmpUnicast,
}

impl UnknownOptAction {
    /// The action of option type `t`.
    pub(crate) const fn of(t: u8) -> UnknownOptAction {
        match t >> 6 {
            0 => UnknownOptAction::Skip,
            1 => UnknownOptAction::Discard,
            2 => UnknownOptAction::DiscardIcmp,
            _ => UnknownOptAction::DiscardIcmpUnicast,
        }
    }
}

/// Pad1 option type.
pub(crate) const IPV6_TLV_PAD1: u8 = 0;
/// PadN option type.
pub(crate) const IPV6_TLV_PADN: u8 = 1;

/// One TLV of a hop-by-hop or destination options header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlvOption<'a> {
    /// Offset of the option's type byte from the start of the options header.
    pub(crate) offset: usize,
    /// Option type.
    pub kind: u8,
    /// Option data.
    pub data: &'a [u8],
}

/// Iterates the TLVs of an options header (`hdr` is the whole header, its first two bytes
/// next-header and length); yields `Err` once for a TLV that runs past the header, as
/// `ip6_parse_tlv()` rejects it.
pub(crate) fn tlv_options(hdr: &[u8]) -> impl Iterator<Item = Result<TlvOption<'_>>> {
    let mut off = 2;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || off >= hdr.len() {
            return None;
        }
        let kind = hdr[off];
        if kind == IPV6_TLV_PAD1 {
            let o = TlvOption { offset: off, kind, data: &[] };
            off += 1;
            return Some(Ok(o));
        }
        if off + 2 > hdr.len() || off + 2 + usize::from(hdr[off + 1]) > hdr.len() {
            failed = true;
            return Some(Err(Error));
        }
        let len = usize::from(hdr[off + 1]);
        let o = TlvOption { offset: off, kind, data: &hdr[off + 2..off + 2 + len] };
        off += 2 + len;
        Some(Ok(o))
    })
}

/// `IPV6_SRCRT_TYPE_3`: the RPL source routing header.
pub(crate) const RT_TYPE_RPL: u8 = 3;
/// `IPV6_SRCRT_TYPE_4`: the segment routing header.
pub(crate) const RT_TYPE_SRH: u8 = 4;

/// Where the walk of the extension headers ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtWalk {
    /// The upper-layer header: its protocol and its offset from the start of the payload
    /// (after the fixed header).
    Upper {
        /// Upper-layer protocol (`nexthdr` value).
        protocol: u8,
        /// Offset of the upper-layer header within [`Ipv6Packet::payload`].
        offset: usize,
        /// Offset of the next-header byte that names `protocol`, from the start of the
        /// IPv6 header (`IP6CB(skb)->nhoff`: the pointer of an unknown protocol's parameter
        /// problem).
        nhoff: usize,
    },
    /// A fragment header: utcp does not reassemble. `first` is whether the fragment offset
    /// is 0.
    Fragment {
        /// Whether this is the first fragment (offset 0).
        first: bool,
    },
    /// No next header (59): nothing to deliver.
    NoNextHeader,
    /// A hop-by-hop header that is not the first extension header: Linux answers an ICMPv6
    /// parameter problem (code 1, unrecognized next header) pointing at the next-header byte
    /// at `pointer` (from the start of the fixed header).
    MisplacedHopByHop {
        /// Offset of the offending next-header byte from the start of the IPv6 header.
        pointer: usize,
    },
    /// An option whose type asks for a parameter problem (code 2, unrecognized option) at
    /// `pointer` (from the start of the fixed header); `unicast_only` when the type's action
    /// is 11 (not for a multicast destination).
    UnknownOption {
        /// Offset of the option type byte from the start of the IPv6 header.
        pointer: usize,
        /// Whether the ICMP error is sent only for a unicast destination.
        unicast_only: bool,
    },
    /// An option that says to discard the packet silently, or a malformed TLV.
    Discard,
    /// A routing header with segments left, or of type 3 or 4 (RPL, segment routing: whose
    /// handlers `seg6_enabled` = 0 and `rpl_seg_enabled` = 0 make drop): utcp is a host, not a router, and processes
    /// none; Linux answers a parameter problem (code 0) at the `pointer` of the routing
    /// type (unknown or deprecated types) — the receive path sends it.
    Routing {
        /// Offset of the routing header's type byte from the start of the IPv6 header.
        pointer: usize,
        /// Routing type.
        kind: u8,
        /// Segments left.
        segments_left: u8,
    },
}

/// The receive path's recogniser of options (see [`walk_ext_headers`]).
pub(crate) type KnownOpt<'a> = dyn Fn(u8, &TlvOption<'_>) -> Option<bool> + 'a;

/// Walks the extension headers of `payload` (the bytes after the fixed header, first header
/// type `first`) as the receive path does: hop-by-hop only first (`ip6_rcv_core()`), options
/// checked by their type's action (`ip6_parse_tlv()`: Pad1, PadN skipped; an option `known`
/// recognises — it is given the options header's type, `HOP` or `DEST` — is accepted when it
/// answers `Some(true)`, discards the packet on `Some(false)` (a malformed known option), and
/// `None` leaves it to its type's action;
/// accepted), routing headers with no segments left skipped (`ipv6_rthdr_rcv()`), the
/// authentication header skipped (`ipv6_skip_exthdr()`), a fragment header reported.
/// A header that runs past the payload is `Err` (`IPSTATS_MIB_INHDRERRORS`).
pub fn walk_ext_headers(payload: &[u8], first: u8, known: &KnownOpt<'_>) -> Result<ExtWalk> {
    let mut nh = first;
    let mut off = 0usize;
    // Offset of the byte holding `nh`, from the start of the IPv6 header.
    let mut nh_ptr = field::NXT_HDR;
    let mut first_hdr = true;
    loop {
        match nh {
            nexthdr::HOP | nexthdr::DEST | nexthdr::ROUTING | nexthdr::AUTH => {
                if nh == nexthdr::HOP && !first_hdr {
                    return Ok(ExtWalk::MisplacedHopByHop { pointer: nh_ptr });
                }
                let hdr = payload.get(off..off + 2).ok_or(Error)?;
                let len =
                    if nh == nexthdr::AUTH { (usize::from(hdr[1]) + 2) * 4 } else { (usize::from(hdr[1]) + 1) * 8 };
                let whole = payload.get(off..off + len).ok_or(Error)?;
                if nh == nexthdr::HOP || nh == nexthdr::DEST {
                    for o in tlv_options(whole) {
                        let Ok(o) = o else { return Ok(ExtWalk::Discard) };
                        if o.kind == IPV6_TLV_PAD1 || o.kind == IPV6_TLV_PADN {
                            continue;
                        }
                        match known(nh, &o) {
                            Some(true) => continue,
                            Some(false) => return Ok(ExtWalk::Discard),
                            None => {}
                        }
                        let pointer = IPV6_HEADER_LEN + off + o.offset;
                        match UnknownOptAction::of(o.kind) {
                            UnknownOptAction::Skip => {}
                            UnknownOptAction::Discard => return Ok(ExtWalk::Discard),
                            UnknownOptAction::DiscardIcmp => {
                                return Ok(ExtWalk::UnknownOption { pointer, unicast_only: false })
                            }
                            UnknownOptAction::DiscardIcmpUnicast => {
                                return Ok(ExtWalk::UnknownOption { pointer, unicast_only: true })
                            }
                        }
                    }
                }
                if nh == nexthdr::ROUTING {
                    let rt = payload.get(off..off + 4).ok_or(Error)?;
                    // ipv6_rthdr_rcv() hands segment routing (type 4) and RPL (type 3)
                    // headers to their own handlers whatever their segments left.
                    if rt[3] != 0 || rt[2] == RT_TYPE_RPL || rt[2] == RT_TYPE_SRH {
                        return Ok(ExtWalk::Routing {
                            pointer: IPV6_HEADER_LEN + off + 2,
                            kind: rt[2],
                            segments_left: rt[3],
                        });
                    }
                }
                nh_ptr = IPV6_HEADER_LEN + off;
                nh = whole[0];
                off += len;
            }
            nexthdr::FRAGMENT => {
                let f = payload.get(off..off + 8).ok_or(Error)?;
                let frag_off = u16::from_be_bytes([f[2], f[3]]) & 0xfff8;
                return Ok(ExtWalk::Fragment { first: frag_off == 0 });
            }
            nexthdr::NONE => return Ok(ExtWalk::NoNextHeader),
            protocol => return Ok(ExtWalk::Upper { protocol, offset: off, nhoff: nh_ptr }),
        }
        first_hdr = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum::checksum;

    fn header(nh: u8, plen: u16) -> Vec<u8> {
        let mut b = vec![0u8; IPV6_HEADER_LEN + usize::from(plen)];
        let repr = Ipv6Repr {
            src_addr: "fd3d:fa7b:d17d::1".parse().unwrap(),
            dst_addr: "fd3d:a0b:17d6::1".parse().unwrap(),
            next_header: nh,
            payload_len: usize::from(plen),
            hop_limit: 64,
            traffic_class: 0xb8,
            flow_label: 0x12345,
        };
        repr.emit(&mut Ipv6Packet::new_unchecked(&mut b[..]));
        b
    }

    #[test]
    fn emit_then_parse_is_the_identity() {
        let b = header(nexthdr::TCP, 20);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        let r = Ipv6Repr::parse(&p).unwrap();
        assert_eq!(r.traffic_class, 0xb8);
        assert_eq!(r.flow_label, 0x12345);
        assert_eq!(r.hop_limit, 64);
        assert_eq!(r.payload_len, 20);
        assert_eq!(b[0], 0x6b, "version 6, high nibble of the traffic class");
        let mut b2 = vec![0u8; b.len()];
        r.emit(&mut Ipv6Packet::new_unchecked(&mut b2[..]));
        assert_eq!(b[..40], b2[..40]);
    }

    #[test]
    fn check_len_follows_ip6_rcv_core() {
        let b = header(nexthdr::TCP, 20);
        assert!(Ipv6Packet::new_checked(&b[..39]).is_err(), "short header");
        assert!(Ipv6Packet::new_checked(&b[..59]).is_err(), "payload truncated");
        let mut padded = b.clone();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(Ipv6Packet::new_checked(&padded[..]).unwrap().payload().len(), 20, "padding ignored");
        let mut v4 = b.clone();
        v4[0] = 0x45;
        assert!(Ipv6Packet::new_checked(&v4[..]).is_err(), "version");
        let jumbo = header(nexthdr::HOP, 0);
        assert!(Ipv6Packet::new_checked(&jumbo[..]).is_err(), "jumbogram");
        let empty = header(nexthdr::NONE, 0);
        assert!(Ipv6Packet::new_checked(&empty[..]).is_ok());
    }

    #[test]
    fn pseudo_header_matches_the_rfc_layout() {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut ph = Vec::new();
        ph.extend_from_slice(&src.octets());
        ph.extend_from_slice(&dst.octets());
        ph.extend_from_slice(&1234u32.to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, nexthdr::TCP]);
        assert_eq!(pseudo_header_checksum_v6(&src, &dst, nexthdr::TCP, 1234), checksum(&ph));
    }

    #[test]
    fn extension_headers_are_walked_to_the_upper_layer() {
        // Hop-by-hop (PadN 4), destination options (Pad1 x6), routing with no segments left,
        // AH (12 bytes), then TCP.
        let mut p = vec![nexthdr::DEST, 0, IPV6_TLV_PADN, 4, 0, 0, 0, 0];
        p.extend_from_slice(&[nexthdr::ROUTING, 0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&[nexthdr::AUTH, 0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&[nexthdr::TCP, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let w = walk_ext_headers(&p, nexthdr::HOP, &|_, _| None).unwrap();
        assert_eq!(w, ExtWalk::Upper { protocol: nexthdr::TCP, offset: 36, nhoff: 64 });
    }

    #[test]
    fn options_follow_their_types_action() {
        for (kind, want) in [
            (0x1e, None),
            (0x5e, Some(ExtWalk::Discard)),
            (0x9e, Some(ExtWalk::UnknownOption { pointer: 42, unicast_only: false })),
            (0xde, Some(ExtWalk::UnknownOption { pointer: 42, unicast_only: true })),
        ] {
            let p = [nexthdr::TCP, 0, kind, 4, 0, 0, 0, 0];
            let w = walk_ext_headers(&p, nexthdr::DEST, &|_, _| None).unwrap();
            assert_eq!(w, want.unwrap_or(ExtWalk::Upper { protocol: nexthdr::TCP, offset: 8, nhoff: 40 }), "{kind:#x}");
        }
        // A known option (e.g. Router Alert, 5) is accepted whatever its action bits, or
        // discards the packet when malformed.
        let p = [nexthdr::TCP, 0, 5, 2, 0, 0, IPV6_TLV_PADN, 0];
        let ra = |h: u8, o: &TlvOption<'_>| (h == nexthdr::HOP && o.kind == 5).then_some(o.data.len() == 2);
        assert!(matches!(walk_ext_headers(&p, nexthdr::HOP, &ra).unwrap(), ExtWalk::Upper { .. }));
        let p = [nexthdr::TCP, 0, 5, 4, 0, 0, 0, 0];
        assert_eq!(walk_ext_headers(&p, nexthdr::HOP, &ra).unwrap(), ExtWalk::Discard);
        assert!(matches!(walk_ext_headers(&p, nexthdr::DEST, &ra).unwrap(), ExtWalk::Upper { .. }));
        // A TLV that runs past its header is discarded.
        let p = [nexthdr::TCP, 0, IPV6_TLV_PADN, 9, 0, 0, 0, 0];
        assert_eq!(walk_ext_headers(&p, nexthdr::HOP, &|_, _| None).unwrap(), ExtWalk::Discard);
    }

    #[test]
    fn misplaced_hop_by_hop_fragments_routing_and_truncation() {
        let p = [nexthdr::HOP, 0, IPV6_TLV_PADN, 4, 0, 0, 0, 0, nexthdr::TCP, 0, 1, 4, 0, 0, 0, 0];
        assert_eq!(
            walk_ext_headers(&p, nexthdr::DEST, &|_, _| None).unwrap(),
            ExtWalk::MisplacedHopByHop { pointer: 40 }
        );
        let f = [nexthdr::TCP, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(walk_ext_headers(&f, nexthdr::FRAGMENT, &|_, _| None).unwrap(), ExtWalk::Fragment { first: true });
        let f = [nexthdr::TCP, 0, 0, 8, 0, 0, 0, 1];
        assert_eq!(walk_ext_headers(&f, nexthdr::FRAGMENT, &|_, _| None).unwrap(), ExtWalk::Fragment { first: false });
        let r = [nexthdr::TCP, 0, 4, 2, 0, 0, 0, 0];
        assert_eq!(
            walk_ext_headers(&r, nexthdr::ROUTING, &|_, _| None).unwrap(),
            ExtWalk::Routing { pointer: 42, kind: 4, segments_left: 2 }
        );
        let srh = [nexthdr::TCP, 0, RT_TYPE_SRH, 0, 0, 0, 0, 0];
        assert_eq!(
            walk_ext_headers(&srh, nexthdr::ROUTING, &|_, _| None).unwrap(),
            ExtWalk::Routing { pointer: 42, kind: RT_TYPE_SRH, segments_left: 0 }
        );
        assert!(walk_ext_headers(&[nexthdr::TCP, 1, 0, 0], nexthdr::DEST, &|_, _| None).is_err());
        assert!(walk_ext_headers(&[], nexthdr::HOP, &|_, _| None).is_err());
        assert_eq!(walk_ext_headers(&[], nexthdr::NONE, &|_, _| None).unwrap(), ExtWalk::NoNextHeader);
    }
}
