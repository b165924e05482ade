//! IPv4 header (RFC 791; Linux `struct iphdr` in `include/uapi/linux/ip.h`).
//!
//! Validation mirrors `ip_rcv_core()` (`net/ipv4/ip_input.c`): version 4, `ihl >= 5`,
//! header within the buffer, `ihl*4 <= tot_len <= buffer length` (trailing link-layer
//! padding beyond `tot_len` is ignored), header checksum via `ip_fast_csum()`.
//! Fragments are rejected because utcp does not reassemble (`ip_is_fragment()`).

use super::checksum;
use super::{Error, Result};
use std::net::Ipv4Addr;

/// IP protocol number of TCP (`IPPROTO_TCP`).
pub const IPPROTO_TCP: u8 = 6;

/// Length of an IPv4 header without options.
const HEADER_LEN: usize = 20;

mod field {
    use core::ops::Range;
    pub(crate) const VER_IHL: usize = 0;
    pub(crate) const DSCP_ECN: usize = 1;
    pub(crate) const LENGTH: Range<usize> = 2..4;
    pub(crate) const IDENT: Range<usize> = 4..6;
    pub(crate) const FLG_OFF: Range<usize> = 6..8;
    pub(crate) const TTL: usize = 8;
    pub(crate) const PROTOCOL: usize = 9;
    pub(crate) const CHECKSUM: Range<usize> = 10..12;
    pub(crate) const SRC_ADDR: Range<usize> = 12..16;
    pub(crate) const DST_ADDR: Range<usize> = 16..20;
}

/// Flag bits and mask of the 16-bit flags/fragment-offset field.
const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A zero-copy view of an IPv4 packet (header, options and payload) in a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer without validating it; accessors may panic if it is malformed.
    pub const fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer and validates it with [`check_len`](Self::check_len); afterwards no
    /// accessor panics.
    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Validates the header as `ip_rcv_core()` does: at least 20 bytes, version 4,
    /// `ihl >= 5`, and `header_len <= total_len <= buffer length`.
    pub(crate) fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error);
        }
        if self.version() != 4 || self.header_len() < HEADER_LEN as u8 {
            return Err(Error);
        }
        let header_len = usize::from(self.header_len());
        let total_len = usize::from(self.total_len());
        if header_len > total_len || total_len > len {
            return Err(Error);
        }
        Ok(())
    }

    /// Consumes the view, returning the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn get_u16(&self, range: core::ops::Range<usize>) -> u16 {
        let d = &self.buffer.as_ref()[range];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// The version field (4 for IPv4).
    #[inline]
    pub(crate) fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length in bytes (`ihl * 4`), including options.
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The whole TOS byte: DSCP (high six bits) and ECN (low two bits).
    #[inline]
    pub(crate) fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// The total length field (header + payload) in bytes.
    #[inline]
    pub fn total_len(&self) -> u16 {
        self.get_u16(field::LENGTH)
    }

    /// The identification field.
    #[inline]
    pub fn ident(&self) -> u16 {
        self.get_u16(field::IDENT)
    }

    /// The "don't fragment" flag.
    #[inline]
    pub(crate) fn dont_frag(&self) -> bool {
        self.get_u16(field::FLG_OFF) & FLAG_DF != 0
    }

    /// The "more fragments" flag.
    #[inline]
    pub(crate) fn more_frags(&self) -> bool {
        self.get_u16(field::FLG_OFF) & FLAG_MF != 0
    }

    /// The fragment offset in bytes (the 13-bit field times 8).
    #[inline]
    pub(crate) fn frag_offset(&self) -> u16 {
        (self.get_u16(field::FLG_OFF) & FRAG_OFFSET_MASK) << 3
    }

    /// The time-to-live field.
    #[inline]
    pub(crate) fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The protocol field (e.g. [`IPPROTO_TCP`]).
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// The header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.get_u16(field::CHECKSUM)
    }

    /// The source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        let d = &self.buffer.as_ref()[field::SRC_ADDR];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }

    /// The destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        let d = &self.buffer.as_ref()[field::DST_ADDR];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }

    /// Whether the header checksum (over `header_len` bytes, options included) is valid.
    pub fn verify_checksum(&self) -> bool {
        let header = &self.buffer.as_ref()[..usize::from(self.header_len())];
        checksum::checksum(header) == 0xffff
    }

    /// The IP options: bytes `20..header_len`.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.header_len())]
    }

    /// The payload: bytes `header_len..total_len` (link-layer padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let range = usize::from(self.header_len())..usize::from(self.total_len());
        &self.buffer.as_ref()[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    #[inline]
    fn set_u16(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the version field (keeps the IHL).
    #[inline]
    pub(crate) fn set_version(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (value << 4);
    }

    /// Sets the header length in bytes (stored as `value / 4`; keeps the version).
    #[inline]
    pub(crate) fn set_header_len(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((value / 4) & 0x0f);
    }

    /// Sets the TOS byte (DSCP and ECN).
    #[inline]
    pub(crate) fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    /// Sets the total length field.
    #[inline]
    pub(crate) fn set_total_len(&mut self, value: u16) {
        self.set_u16(field::LENGTH, value)
    }

    /// Sets the identification field.
    #[inline]
    pub(crate) fn set_ident(&mut self, value: u16) {
        self.set_u16(field::IDENT, value)
    }

    /// Sets or clears the "don't fragment" flag.
    #[inline]
    pub fn set_dont_frag(&mut self, value: bool) {
        let raw = self.get_u16(field::FLG_OFF);
        let raw = if value { raw | FLAG_DF } else { raw & !FLAG_DF };
        self.set_u16(field::FLG_OFF, raw)
    }

    /// Sets or clears the "more fragments" flag.
    #[inline]
    pub fn set_more_frags(&mut self, value: bool) {
        let raw = self.get_u16(field::FLG_OFF);
        let raw = if value { raw | FLAG_MF } else { raw & !FLAG_MF };
        self.set_u16(field::FLG_OFF, raw)
    }

    /// Sets the fragment offset in bytes (stored divided by 8; keeps the flags).
    #[inline]
    pub fn set_frag_offset(&mut self, value: u16) {
        let raw = self.get_u16(field::FLG_OFF);
        let raw = (raw & !FRAG_OFFSET_MASK) | ((value >> 3) & FRAG_OFFSET_MASK);
        self.set_u16(field::FLG_OFF, raw)
    }

    /// Sets the time-to-live field.
    #[inline]
    pub(crate) fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    /// Sets the protocol field.
    #[inline]
    pub(crate) fn set_protocol(&mut self, value: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = value;
    }

    /// Sets the header checksum field.
    #[inline]
    pub(crate) fn set_checksum(&mut self, value: u16) {
        self.set_u16(field::CHECKSUM, value)
    }

    /// Sets the source address.
    #[inline]
    pub(crate) fn set_src_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub(crate) fn set_dst_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// Computes and stores the header checksum over `header_len` bytes.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = {
            let header = &self.buffer.as_ref()[..usize::from(self.header_len())];
            checksum::checksum(header)
        };
        self.set_checksum(!sum)
    }

    /// The IP options, mutable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.header_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// The payload (`header_len..total_len`), mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = usize::from(self.header_len())..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Ipv4Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A parsed IPv4 header (options are skipped on parse and never emitted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol number of the payload (e.g. [`IPPROTO_TCP`]).
    pub protocol: u8,
    /// Payload length in bytes (`total_len - header_len`).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// Identification field.
    pub ident: u16,
    /// "Don't fragment" flag.
    pub dont_frag: bool,
    /// The whole TOS byte (DSCP and ECN).
    pub tos: u8,
}

impl Ipv4Repr {
    /// Parses a packet. Performs [`Ipv4Packet::check_len`]; when `verify_checksum` is
    /// set, rejects a bad header checksum; rejects fragments (MF set or non-zero offset)
    /// since utcp does not reassemble. IP options are accepted and skipped.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>, verify_checksum: bool) -> Result<Ipv4Repr> {
        packet.check_len()?;
        if verify_checksum && !packet.verify_checksum() {
            return Err(Error);
        }
        if packet.more_frags() || packet.frag_offset() != 0 {
            return Err(Error);
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - usize::from(packet.header_len()),
            ttl: packet.ttl(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            tos: packet.dscp_ecn(),
        })
    }

    /// Length of the emitted header: always 20 (no options).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-byte header (version 4, IHL 5, no options, fragment offset 0) into the
    /// first 20 bytes of `packet`, with `total_len = 20 + payload_len`; fills the header
    /// checksum when `fill_checksum` is set (else writes 0). Does not touch the payload.
    ///
    /// Panics if the buffer is shorter than 20 bytes. `payload_len` must be at most
    /// 65515 (debug-asserted; truncated otherwise).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>, fill_checksum: bool) {
        debug_assert!(self.payload_len <= usize::from(u16::MAX) - HEADER_LEN);
        packet.set_version(4);
        packet.set_header_len(HEADER_LEN as u8);
        packet.set_dscp_ecn(self.tos);
        packet.set_total_len((HEADER_LEN + self.payload_len) as u16);
        packet.set_ident(self.ident);
        packet.set_u16(field::FLG_OFF, if self.dont_frag { FLAG_DF } else { 0 });
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        if fill_checksum {
            packet.fill_checksum();
        } else {
            packet.set_checksum(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_bad_headers_rejected() {
        assert_eq!(Ipv4Packet::new_checked(&[0x45u8; 19][..]), Err(Error));
        let mut b = [0u8; 20];
        b[0] = 0x65; // version 6
        b[3] = 20;
        assert!(Ipv4Packet::new_checked(&b[..]).is_err());
        b[0] = 0x44; // ihl 4
        assert!(Ipv4Packet::new_checked(&b[..]).is_err());
        b[0] = 0x45;
        assert!(Ipv4Packet::new_checked(&b[..]).is_ok());
        b[3] = 19; // total < header
        assert!(Ipv4Packet::new_checked(&b[..]).is_err());
        b[3] = 21; // total > buffer
        assert!(Ipv4Packet::new_checked(&b[..]).is_err());
        b[0] = 0x46; // ihl 6 > total 21 and > buffer
        assert!(Ipv4Packet::new_checked(&b[..]).is_err());
    }

    #[test]
    fn fragments_rejected() {
        let repr = Ipv4Repr {
            src_addr: Ipv4Addr::new(1, 2, 3, 4),
            dst_addr: Ipv4Addr::new(5, 6, 7, 8),
            protocol: IPPROTO_TCP,
            payload_len: 0,
            ttl: 64,
            ident: 7,
            dont_frag: false,
            tos: 0,
        };
        let mut buf = [0u8; 20];
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut p, true);
        assert_eq!(Ipv4Repr::parse(&p, true), Ok(repr));
        p.set_more_frags(true);
        p.fill_checksum();
        assert!(p.more_frags());
        assert_eq!(Ipv4Repr::parse(&p, true), Err(Error));
        p.set_more_frags(false);
        p.set_frag_offset(1480);
        p.fill_checksum();
        assert_eq!(p.frag_offset(), 1480);
        assert_eq!(Ipv4Repr::parse(&p, true), Err(Error));
        p.set_frag_offset(0);
        p.set_checksum(p.checksum() ^ 1);
        assert_eq!(Ipv4Repr::parse(&p, true), Err(Error));
        assert_eq!(Ipv4Repr::parse(&p, false), Ok(repr));
    }

    #[test]
    fn options_skipped_and_padding_ignored() {
        // IHL 6 (one NOP-padded option word), total 28, plus 4 bytes of link padding.
        let mut buf = [0u8; 32];
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        p.set_version(4);
        p.set_header_len(24);
        p.set_total_len(28);
        p.set_ttl(1);
        p.set_protocol(IPPROTO_TCP);
        p.options_mut().copy_from_slice(&[1, 1, 1, 0]);
        p.payload_mut().copy_from_slice(b"abcd");
        p.fill_checksum();
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), b"abcd");
        let r = Ipv4Repr::parse(&p, true).unwrap();
        assert_eq!(r.payload_len, 4);
    }
}
