//! TCP header and options (RFC 9293, RFC 7323 timestamps/window scale, RFC 2018 SACK,
//! RFC 7413 Fast Open; Linux `struct tcphdr` in `include/uapi/linux/tcp.h`).
//!
//! Option parsing follows `tcp_parse_options()` (`net/ipv4/tcp_input.c`): bad framing
//! stops the walk but does not drop the segment, options with a wrong length are
//! ignored. Option emission follows `tcp_options_write()` (`net/ipv4/tcp_output.c`)
//! so that emitted segments are byte-identical to Linux's.

use super::checksum;
use super::ipv4::IPPROTO_TCP;
use super::{Error, Result};
use crate::seq::SeqNum;
use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign};
use std::net::Ipv4Addr;

/// Length of a TCP header without options.
pub const TCP_HEADER_LEN: usize = 20;

/// Maximum option space (`MAX_TCP_OPTION_SPACE`): a 4-bit data offset allows 60 bytes.
const MAX_OPTIONS_LEN: usize = 40;

/// Linux's `TCP_MAX_WSCALE`: larger received window-scale shifts are clamped to it.
const MAX_WSCALE: u8 = 14;

mod field {
    use core::ops::Range;
    pub(crate) const SRC_PORT: Range<usize> = 0..2;
    pub(crate) const DST_PORT: Range<usize> = 2..4;
    pub(crate) const SEQ_NUM: Range<usize> = 4..8;
    pub(crate) const ACK_NUM: Range<usize> = 8..12;
    /// Data offset (high nibble) and the four reserved bits incl. AE (low nibble).
    pub(crate) const DOFF: usize = 12;
    pub(crate) const FLAGS: usize = 13;
    pub(crate) const WIN_SIZE: Range<usize> = 14..16;
    pub(crate) const CHECKSUM: Range<usize> = 16..18;
    pub(crate) const URGENT: Range<usize> = 18..20;
}

/// Option kinds (`TCPOPT_*`) and fixed lengths (`TCPOLEN_*`).
mod opt {
    pub(crate) const EOL: u8 = 0;
    pub(crate) const NOP: u8 = 1;
    pub(crate) const MSS: u8 = 2;
    pub(crate) const WINDOW: u8 = 3;
    pub(crate) const SACK_PERM: u8 = 4;
    pub(crate) const SACK: u8 = 5;
    pub(crate) const TIMESTAMP: u8 = 8;
    pub(crate) const FASTOPEN: u8 = 34;
    pub(crate) const LEN_MSS: usize = 4;
    pub(crate) const LEN_WINDOW: usize = 3;
    pub(crate) const LEN_SACK_PERM: usize = 2;
    pub(crate) const LEN_TIMESTAMP: usize = 10;
    pub(crate) const LEN_SACK_BASE: usize = 2;
    pub(crate) const LEN_SACK_PERBLOCK: usize = 8;
}

/// The eight TCP flag bits (the low byte of the flags field).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// Push function.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// Acknowledgment field is significant.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// Urgent pointer field is significant.
    pub(crate) const URG: TcpFlags = TcpFlags(0x20);
    /// ECN-Echo.
    pub(crate) const ECE: TcpFlags = TcpFlags(0x40);
    /// Congestion Window Reduced.
    pub const CWR: TcpFlags = TcpFlags(0x80);

    /// Whether every bit of `other` is set in `self`.
    #[inline]
    pub(crate) const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// Whether no flag is set.
    #[inline]
    pub(crate) const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Sets the bits of `other`.
    #[inline]
    pub fn insert(&mut self, other: TcpFlags) {
        self.0 |= other.0;
    }
    /// Clears the bits of `other`.
    #[inline]
    pub fn remove(&mut self, other: TcpFlags) {
        self.0 &= !other.0;
    }
    /// FIN is set.
    #[inline]
    pub const fn fin(self) -> bool {
        self.contains(Self::FIN)
    }
    /// SYN is set.
    #[inline]
    pub const fn syn(self) -> bool {
        self.contains(Self::SYN)
    }
    /// RST is set.
    #[inline]
    pub(crate) const fn rst(self) -> bool {
        self.contains(Self::RST)
    }
    /// PSH is set.
    #[inline]
    pub const fn psh(self) -> bool {
        self.contains(Self::PSH)
    }
    /// ACK is set.
    #[inline]
    pub(crate) const fn ack(self) -> bool {
        self.contains(Self::ACK)
    }
    /// URG is set.
    #[inline]
    pub(crate) const fn urg(self) -> bool {
        self.contains(Self::URG)
    }
    /// ECE is set.
    #[inline]
    pub const fn ece(self) -> bool {
        self.contains(Self::ECE)
    }
    /// CWR is set.
    #[inline]
    pub const fn cwr(self) -> bool {
        self.contains(Self::CWR)
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;
    #[inline]
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for TcpFlags {
    #[inline]
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for TcpFlags {
    type Output = TcpFlags;
    #[inline]
    fn bitand(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & rhs.0)
    }
}

/// packetdrill notation: `F`, `S`, `R`, `P`, `.` (ACK), `U`, `E`, `W` in that order,
/// e.g. `S.`, `P.`, `F.`, `R`; no flags at all prints `none`.
impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        const CHARS: [(TcpFlags, char); 8] = [
            (TcpFlags::FIN, 'F'),
            (TcpFlags::SYN, 'S'),
            (TcpFlags::RST, 'R'),
            (TcpFlags::PSH, 'P'),
            (TcpFlags::ACK, '.'),
            (TcpFlags::URG, 'U'),
            (TcpFlags::ECE, 'E'),
            (TcpFlags::CWR, 'W'),
        ];
        for (flag, c) in CHARS {
            if self.contains(flag) {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Up to four SACK blocks `(start, end)`, as carried by one SACK option.
#[derive(Clone, Copy, Default)]
pub struct SackBlocks {
    len: u8,
    blocks: [(SeqNum, SeqNum); 4],
}

impl SackBlocks {
    /// Maximum number of blocks (`TCP_NUM_SACKS`).
    pub(crate) const MAX: usize = 4;

    /// An empty list.
    pub const fn new() -> SackBlocks {
        SackBlocks { len: 0, blocks: [(SeqNum(0), SeqNum(0)); 4] }
    }

    /// Appends a block; returns `false` (and changes nothing) if four are already held.
    pub fn push(&mut self, start: SeqNum, end: SeqNum) -> bool {
        let i = usize::from(self.len);
        if i >= Self::MAX {
            return false;
        }
        self.blocks[i] = (start, end);
        self.len += 1;
        true
    }

    /// Removes all blocks.
    pub fn clear(&mut self) {
        *self = SackBlocks::new();
    }

    /// The blocks held, in order.
    #[inline]
    pub fn as_slice(&self) -> &[(SeqNum, SeqNum)] {
        &self.blocks[..usize::from(self.len)]
    }

    /// Number of blocks held.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether no block is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first `n` blocks (all of them if `n >= len`).
    fn truncated(&self, n: usize) -> &[(SeqNum, SeqNum)] {
        &self.as_slice()[..n.min(self.len())]
    }
}

impl PartialEq for SackBlocks {
    fn eq(&self, other: &SackBlocks) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for SackBlocks {}

impl core::hash::Hash for SackBlocks {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

impl fmt::Debug for SackBlocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice().iter().map(|(s, e)| (s.0, e.0))).finish()
    }
}

/// One TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// End of option list (kind 0).
    EndOfList,
    /// No-operation padding (kind 1).
    NoOperation,
    /// Maximum segment size (kind 2, length 4).
    MaxSegmentSize(u16),
    /// Window scale shift count, raw (kind 3, length 3).
    WindowScale(u8),
    /// SACK permitted (kind 4, length 2).
    SackPermitted,
    /// SACK blocks (kind 5, length 2 + 8n, n in 1..=4).
    Sack(SackBlocks),
    /// Timestamps (kind 8, length 10).
    Timestamp {
        /// Sender's timestamp value.
        tsval: u32,
        /// Echoed timestamp.
        tsecr: u32,
    },
    /// TCP Fast Open cookie, possibly empty (kind 34; data is not validated).
    FastOpen(&'a [u8]),
    /// Any other kind (including experimental 253/254), with its data bytes.
    Unknown {
        /// Option kind.
        kind: u8,
        /// Option data (without kind and length bytes).
        data: &'a [u8],
    },
}

/// Parses the option at the start of non-empty `buf`. Returns the option (or `Err` for a
/// known kind with a wrong length) and the remaining bytes; the remainder is `None` when
/// the framing itself is broken (length < 2 or past the end), which ends the walk just
/// as in `tcp_parse_options()`.
fn parse_framed(buf: &[u8]) -> (Result<TcpOption<'_>>, Option<&[u8]>) {
    let kind = buf[0];
    match kind {
        opt::EOL => return (Ok(TcpOption::EndOfList), Some(&buf[1..])),
        opt::NOP => return (Ok(TcpOption::NoOperation), Some(&buf[1..])),
        _ => {}
    }
    if buf.len() < 2 {
        return (Err(Error), None);
    }
    let len = usize::from(buf[1]);
    if len < 2 || len > buf.len() {
        return (Err(Error), None);
    }
    let data = &buf[2..len];
    let rest = Some(&buf[len..]);
    let option = match kind {
        opt::MSS if len == opt::LEN_MSS => Ok(TcpOption::MaxSegmentSize(u16::from_be_bytes([data[0], data[1]]))),
        opt::WINDOW if len == opt::LEN_WINDOW => Ok(TcpOption::WindowScale(data[0])),
        opt::SACK_PERM if len == opt::LEN_SACK_PERM => Ok(TcpOption::SackPermitted),
        opt::TIMESTAMP if len == opt::LEN_TIMESTAMP => Ok(TcpOption::Timestamp {
            tsval: u32::from_be_bytes([data[0], data[1], data[2], data[3]]),
            tsecr: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
        }),
        opt::SACK if (1..=SackBlocks::MAX).any(|n| data.len() == n * opt::LEN_SACK_PERBLOCK) => {
            let mut blocks = SackBlocks::new();
            for b in data.chunks_exact(opt::LEN_SACK_PERBLOCK) {
                blocks.push(
                    SeqNum(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
                    SeqNum(u32::from_be_bytes([b[4], b[5], b[6], b[7]])),
                );
            }
            Ok(TcpOption::Sack(blocks))
        }
        opt::MSS | opt::WINDOW | opt::SACK_PERM | opt::TIMESTAMP | opt::SACK => Err(Error),
        opt::FASTOPEN => Ok(TcpOption::FastOpen(data)),
        kind => Ok(TcpOption::Unknown { kind, data }),
    };
    (option, rest)
}

impl<'a> TcpOption<'a> {
    /// Parses one option from the start of `buf`, returning the bytes after it and the
    /// option. Errors on an empty buffer, a length byte < 2 or past the end, or a known
    /// kind with the wrong length (MSS 4, WS 3, SACK-permitted 2, TS 10, SACK 2+8n with
    /// n in 1..=4). `EndOfList` consumes one byte; the caller decides to stop.
    pub fn parse(buf: &'a [u8]) -> Result<(&'a [u8], TcpOption<'a>)> {
        if buf.is_empty() {
            return Err(Error);
        }
        let (option, rest) = parse_framed(buf);
        Ok((rest.ok_or(Error)?, option?))
    }

    /// Number of bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            TcpOption::EndOfList | TcpOption::NoOperation => 1,
            TcpOption::MaxSegmentSize(_) => opt::LEN_MSS,
            TcpOption::WindowScale(_) => opt::LEN_WINDOW,
            TcpOption::SackPermitted => opt::LEN_SACK_PERM,
            TcpOption::Sack(b) => opt::LEN_SACK_BASE + opt::LEN_SACK_PERBLOCK * b.len(),
            TcpOption::Timestamp { .. } => opt::LEN_TIMESTAMP,
            TcpOption::FastOpen(d) | TcpOption::Unknown { data: d, .. } => 2 + d.len(),
        }
    }

    /// Writes the option at the start of `buf`, returning the bytes after it. Panics if
    /// `buf` is shorter than [`buffer_len`](Self::buffer_len). A `FastOpen`/`Unknown`
    /// option longer than 255 bytes, or an empty `Sack`, cannot be parsed back.
    pub fn emit<'b>(&self, buf: &'b mut [u8]) -> &'b mut [u8] {
        let len = self.buffer_len();
        let (out, rest) = buf.split_at_mut(len);
        let kind = match self {
            TcpOption::EndOfList => opt::EOL,
            TcpOption::NoOperation => opt::NOP,
            TcpOption::MaxSegmentSize(_) => opt::MSS,
            TcpOption::WindowScale(_) => opt::WINDOW,
            TcpOption::SackPermitted => opt::SACK_PERM,
            TcpOption::Sack(_) => opt::SACK,
            TcpOption::Timestamp { .. } => opt::TIMESTAMP,
            TcpOption::FastOpen(_) => opt::FASTOPEN,
            TcpOption::Unknown { kind, .. } => *kind,
        };
        out[0] = kind;
        if len > 1 {
            out[1] = len as u8;
        }
        match self {
            TcpOption::EndOfList | TcpOption::NoOperation | TcpOption::SackPermitted => {}
            TcpOption::MaxSegmentSize(v) => out[2..4].copy_from_slice(&v.to_be_bytes()),
            TcpOption::WindowScale(v) => out[2] = *v,
            TcpOption::Sack(blocks) => {
                for (chunk, (s, e)) in out[2..].chunks_exact_mut(8).zip(blocks.as_slice()) {
                    chunk[..4].copy_from_slice(&s.0.to_be_bytes());
                    chunk[4..].copy_from_slice(&e.0.to_be_bytes());
                }
            }
            TcpOption::Timestamp { tsval, tsecr } => {
                out[2..6].copy_from_slice(&tsval.to_be_bytes());
                out[6..10].copy_from_slice(&tsecr.to_be_bytes());
            }
            TcpOption::FastOpen(d) | TcpOption::Unknown { data: d, .. } => out[2..].copy_from_slice(d),
        }
        rest
    }
}

/// Iterator over the options in an option area, in `tcp_parse_options()` fashion.
///
/// Yields `Ok(option)` for each well-formed option, `Err` for a known kind with a wrong
/// length (then continues past it, as Linux ignores such options), and a final `Err`
/// when the framing breaks (length byte < 2, or option running past the end; Linux stops
/// parsing there but keeps the segment). Stops after yielding `EndOfList`.
#[derive(Debug, Clone)]
pub struct TcpOptionIter<'a> {
    buf: &'a [u8],
    done: bool,
}

impl<'a> TcpOptionIter<'a> {
    /// Iterates over the options in `options` (a header's bytes 20..header_len).
    pub fn new(options: &'a [u8]) -> TcpOptionIter<'a> {
        TcpOptionIter { buf: options, done: false }
    }
}

impl<'a> Iterator for TcpOptionIter<'a> {
    type Item = Result<TcpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.buf.is_empty() {
            return None;
        }
        let (option, rest) = parse_framed(self.buf);
        match rest {
            Some(rest) => self.buf = rest,
            None => {
                self.buf = &[];
                self.done = true;
            }
        }
        if option == Ok(TcpOption::EndOfList) {
            self.done = true;
        }
        Some(option)
    }
}

impl core::iter::FusedIterator for TcpOptionIter<'_> {}

/// A zero-copy view of a TCP segment (header, options and payload) in a buffer. The
/// buffer must hold exactly the segment (e.g. [`Ipv4Packet::payload`]) since the payload
/// and checksum extend to its end.
///
/// [`Ipv4Packet::payload`]: super::Ipv4Packet::payload
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without validating it; accessors may panic if it is malformed.
    pub const fn new_unchecked(buffer: T) -> TcpPacket<T> {
        TcpPacket { buffer }
    }

    /// Wraps a buffer and validates it with [`check_len`](Self::check_len); afterwards no
    /// accessor panics.
    pub fn new_checked(buffer: T) -> Result<TcpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Validates as `tcp_v4_rcv()` does: at least 20 bytes, data offset >= 5, and the
    /// header (with options) within the buffer.
    pub(crate) fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < TCP_HEADER_LEN {
            return Err(Error);
        }
        let header_len = usize::from(self.header_len());
        if header_len < TCP_HEADER_LEN || header_len > len {
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

    #[inline]
    fn get_u32(&self, range: core::ops::Range<usize>) -> u32 {
        let d = &self.buffer.as_ref()[range];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// Source port.
    #[inline]
    pub(crate) fn src_port(&self) -> u16 {
        self.get_u16(field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub(crate) fn dst_port(&self) -> u16 {
        self.get_u16(field::DST_PORT)
    }

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> SeqNum {
        SeqNum(self.get_u32(field::SEQ_NUM))
    }

    /// Acknowledgment number (the raw field, whether or not ACK is set).
    #[inline]
    pub(crate) fn ack_number(&self) -> SeqNum {
        SeqNum(self.get_u32(field::ACK_NUM))
    }

    /// Header length in bytes (data offset × 4), options included.
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::DOFF] >> 4) * 4
    }

    /// The four bits between data offset and flags (three reserved bits and AE, the
    /// former NS bit, in the lowest position).
    #[inline]
    pub fn reserved_bits(&self) -> u8 {
        self.buffer.as_ref()[field::DOFF] & 0x0f
    }

    /// The eight flag bits.
    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }

    /// Window field (unscaled).
    #[inline]
    pub(crate) fn window_len(&self) -> u16 {
        self.get_u16(field::WIN_SIZE)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.get_u16(field::CHECKSUM)
    }

    /// Urgent pointer field (raw, whether or not URG is set).
    #[inline]
    pub(crate) fn urgent_at(&self) -> u16 {
        self.get_u16(field::URGENT)
    }

    /// The option bytes (`20..header_len`).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[TCP_HEADER_LEN..usize::from(self.header_len())]
    }

    /// Iterates over the options (see [`TcpOptionIter`]).
    #[inline]
    pub fn options_iter(&self) -> TcpOptionIter<'_> {
        TcpOptionIter::new(self.options())
    }

    /// The payload (`header_len..` to the end of the buffer).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..]
    }

    /// Sequence space occupied: payload length plus one each for SYN and FIN.
    #[inline]
    pub fn segment_len(&self) -> usize {
        let flags = self.flags();
        self.payload().len() + usize::from(flags.syn()) + usize::from(flags.fin())
    }

    /// Whether the checksum over the pseudo header and the whole buffer is valid.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let data = self.buffer.as_ref();
        let pseudo = checksum::pseudo_header_checksum(src, dst, IPPROTO_TCP, data.len() as u32);
        checksum::combine(&[pseudo, checksum::checksum(data)]) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    #[inline]
    fn set_u16(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the source port.
    #[inline]
    pub(crate) fn set_src_port(&mut self, value: u16) {
        self.set_u16(field::SRC_PORT, value)
    }

    /// Sets the destination port.
    #[inline]
    pub(crate) fn set_dst_port(&mut self, value: u16) {
        self.set_u16(field::DST_PORT, value)
    }

    /// Sets the sequence number.
    #[inline]
    pub(crate) fn set_seq_number(&mut self, value: SeqNum) {
        self.buffer.as_mut()[field::SEQ_NUM].copy_from_slice(&value.0.to_be_bytes());
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub(crate) fn set_ack_number(&mut self, value: SeqNum) {
        self.buffer.as_mut()[field::ACK_NUM].copy_from_slice(&value.0.to_be_bytes());
    }

    /// Sets the header length in bytes (stored as `value / 4`; keeps the reserved bits).
    #[inline]
    pub fn set_header_len(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::DOFF];
        *b = (*b & 0x0f) | ((value / 4) << 4);
    }

    /// Sets the four reserved bits (low nibble of `value`; keeps the data offset).
    #[inline]
    pub fn set_reserved_bits(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::DOFF];
        *b = (*b & 0xf0) | (value & 0x0f);
    }

    /// Sets the eight flag bits.
    #[inline]
    pub(crate) fn set_flags(&mut self, value: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = value.0;
    }

    /// Sets the window field.
    #[inline]
    pub(crate) fn set_window_len(&mut self, value: u16) {
        self.set_u16(field::WIN_SIZE, value)
    }

    /// Sets the checksum field.
    #[inline]
    pub(crate) fn set_checksum(&mut self, value: u16) {
        self.set_u16(field::CHECKSUM, value)
    }

    /// Sets the urgent pointer field.
    #[inline]
    pub(crate) fn set_urgent_at(&mut self, value: u16) {
        self.set_u16(field::URGENT, value)
    }

    /// The option bytes, mutable.
    #[inline]
    pub(crate) fn options_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.header_len());
        &mut self.buffer.as_mut()[TCP_HEADER_LEN..end]
    }

    /// The payload, mutable.
    #[inline]
    pub(crate) fn payload_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.header_len());
        &mut self.buffer.as_mut()[start..]
    }

    /// Computes and stores the checksum over the pseudo header and the whole buffer.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let sum = {
            let data = self.buffer.as_ref();
            let pseudo = checksum::pseudo_header_checksum(src, dst, IPPROTO_TCP, data.len() as u32);
            checksum::combine(&[pseudo, checksum::checksum(data)])
        };
        self.set_checksum(!sum)
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for TcpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A parsed TCP segment header with the options utcp understands, and its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRepr<'a> {
    /// Source port (zero is not rejected here).
    pub src_port: u16,
    /// Destination port (zero is not rejected here).
    pub dst_port: u16,
    /// Flag bits.
    pub flags: TcpFlags,
    /// Sequence number.
    pub seq_number: SeqNum,
    /// Raw acknowledgment field, kept even if ACK is not set.
    pub ack_number: SeqNum,
    /// Window field (unscaled).
    pub window_len: u16,
    /// Raw urgent pointer field.
    pub urgent_pointer: u16,
    /// MSS option (a received MSS of 0 is ignored, as Linux does).
    pub max_seg_size: Option<u16>,
    /// Window-scale option (received values above 14 are clamped to 14).
    pub window_scale: Option<u8>,
    /// SACK-permitted option present.
    pub sack_permitted: bool,
    /// Blocks of the (last) SACK option.
    pub sack_ranges: SackBlocks,
    /// Timestamp option `(tsval, tsecr)`.
    pub timestamp: Option<(u32, u32)>,
    /// Segment payload.
    pub payload: &'a [u8],
}

impl<'a> TcpRepr<'a> {
    /// Parses a segment. Performs [`TcpPacket::check_len`]; when `verify_checksum` is
    /// set, rejects a checksum mismatch (pseudo header from `src`/`dst`). Ports of zero
    /// are accepted. Options follow `tcp_parse_options()`: EOL stops, NOP is skipped,
    /// broken framing stops the walk (segment still accepted), options of a wrong
    /// length and unknown kinds are skipped; a later duplicate overrides an earlier one.
    /// MSS/WS/SACK-permitted are recorded regardless of SYN.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &TcpPacket<&'a T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        verify_checksum: bool,
    ) -> Result<TcpRepr<'a>> {
        packet.check_len()?;
        if verify_checksum && !packet.verify_checksum(src, dst) {
            return Err(Error);
        }
        let bytes: &'a [u8] = <T as AsRef<[u8]>>::as_ref(packet.buffer);
        let header_len = usize::from(packet.header_len());
        let mut repr = TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            flags: packet.flags(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            window_len: packet.window_len(),
            urgent_pointer: packet.urgent_at(),
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            sack_ranges: SackBlocks::new(),
            timestamp: None,
            payload: &bytes[header_len..],
        };
        let options = &bytes[TCP_HEADER_LEN..header_len];
        // tcp_fast_parse_options(): the option area of nearly every established segment is
        // exactly NOP NOP TIMESTAMP (`tcp_parse_aligned_timestamp()`); the walk below would
        // give the same result.
        if let &[opt::NOP, opt::NOP, opt::TIMESTAMP, 10, a0, a1, a2, a3, b0, b1, b2, b3] = options {
            repr.timestamp = Some((u32::from_be_bytes([a0, a1, a2, a3]), u32::from_be_bytes([b0, b1, b2, b3])));
            return Ok(repr);
        }
        for option in TcpOptionIter::new(options) {
            match option {
                Ok(TcpOption::MaxSegmentSize(mss)) if mss != 0 => repr.max_seg_size = Some(mss),
                Ok(TcpOption::WindowScale(ws)) => repr.window_scale = Some(ws.min(MAX_WSCALE)),
                Ok(TcpOption::SackPermitted) => repr.sack_permitted = true,
                Ok(TcpOption::Sack(blocks)) => repr.sack_ranges = blocks,
                Ok(TcpOption::Timestamp { tsval, tsecr }) => repr.timestamp = Some((tsval, tsecr)),
                _ => {}
            }
        }
        Ok(repr)
    }

    /// Length of the options before any SACK option, per `tcp_options_write()`.
    fn fixed_options_len(&self) -> usize {
        let mut len = 0;
        if self.max_seg_size.is_some() {
            len += 4;
        }
        if self.timestamp.is_some() {
            len += 12;
        } else if self.sack_permitted {
            len += 4;
        }
        if self.window_scale.is_some() {
            len += 4;
        }
        len
    }

    /// Number of SACK blocks that are emitted: all of `sack_ranges` that fit in the
    /// 40-byte option space after the other options (as `tcp_established_options()`
    /// limits `num_sack_blocks`).
    fn sack_blocks_emitted(&self) -> usize {
        let remaining = MAX_OPTIONS_LEN - self.fixed_options_len();
        if remaining < 4 + opt::LEN_SACK_PERBLOCK {
            return 0;
        }
        self.sack_ranges.len().min((remaining - 4) / opt::LEN_SACK_PERBLOCK)
    }

    /// Header length including options, laid out as Linux `tcp_options_write()` does:
    /// MSS; TS (merged with SACK-permitted if both, else NOP-NOP-padded); else
    /// NOP-NOP-SACK-permitted; NOP-window-scale; NOP-NOP-SACK blocks. Always a multiple
    /// of 4 and at most 60 (SACK blocks that do not fit are dropped).
    pub fn header_len(&self) -> usize {
        let sacks = self.sack_blocks_emitted();
        let sack_len = if sacks > 0 { 4 + opt::LEN_SACK_PERBLOCK * sacks } else { 0 };
        TCP_HEADER_LEN + self.fixed_options_len() + sack_len
    }

    /// Header length plus payload length.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Sequence space occupied: payload length plus one each for SYN and FIN.
    pub fn segment_len(&self) -> usize {
        self.payload.len() + usize::from(self.flags.syn()) + usize::from(self.flags.fin())
    }

    /// Writes header, options and payload into `packet` (reserved bits zero) and, when
    /// `fill_checksum` is set, the checksum over the pseudo header and the whole buffer
    /// (else 0). The buffer should be exactly [`buffer_len`](Self::buffer_len) bytes;
    /// panics if it is shorter.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut TcpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        fill_checksum: bool,
    ) {
        let header_len = self.header_len();
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq_number);
        packet.set_ack_number(self.ack_number);
        packet.buffer.as_mut()[field::DOFF] = ((header_len / 4) as u8) << 4;
        packet.set_flags(self.flags);
        packet.set_window_len(self.window_len);
        packet.set_checksum(0);
        packet.set_urgent_at(self.urgent_pointer);
        self.write_options(packet.options_mut());
        packet.payload_mut()[..self.payload.len()].copy_from_slice(self.payload);
        if fill_checksum {
            packet.fill_checksum(src, dst);
        }
    }

    /// Writes the option area (exactly `header_len() - 20` bytes) in Linux order.
    fn write_options(&self, out: &mut [u8]) {
        let mut i = 0;
        let mut put = |word: [u8; 4]| {
            out[i..i + 4].copy_from_slice(&word);
            i += 4;
        };
        if let Some(mss) = self.max_seg_size {
            let [hi, lo] = mss.to_be_bytes();
            put([opt::MSS, opt::LEN_MSS as u8, hi, lo]);
        }
        if let Some((tsval, tsecr)) = self.timestamp {
            let ts = [opt::TIMESTAMP, opt::LEN_TIMESTAMP as u8];
            if self.sack_permitted {
                put([opt::SACK_PERM, opt::LEN_SACK_PERM as u8, ts[0], ts[1]]);
            } else {
                put([opt::NOP, opt::NOP, ts[0], ts[1]]);
            }
            put(tsval.to_be_bytes());
            put(tsecr.to_be_bytes());
        } else if self.sack_permitted {
            put([opt::NOP, opt::NOP, opt::SACK_PERM, opt::LEN_SACK_PERM as u8]);
        }
        if let Some(ws) = self.window_scale {
            put([opt::NOP, opt::WINDOW, opt::LEN_WINDOW as u8, ws]);
        }
        let sacks = self.sack_ranges.truncated(self.sack_blocks_emitted());
        if !sacks.is_empty() {
            let len = opt::LEN_SACK_BASE + opt::LEN_SACK_PERBLOCK * sacks.len();
            put([opt::NOP, opt::NOP, opt::SACK, len as u8]);
            for (start, end) in sacks {
                put(start.0.to_be_bytes());
                put(end.0.to_be_bytes());
            }
        }
    }
}

/// packetdrill-like, with absolute sequence numbers and options in emitted order:
/// `S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7>`.
impl fmt::Display for TcpRepr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = self.payload.len();
        let end = self.seq_number + len as u32;
        write!(f, "{} {}:{}({})", self.flags, self.seq_number, end, len)?;
        if self.flags.ack() {
            write!(f, " ack {}", self.ack_number)?;
        }
        write!(f, " win {}", self.window_len)?;
        if self.flags.urg() {
            write!(f, " urg {}", self.urgent_pointer)?;
        }
        if self.header_len() == TCP_HEADER_LEN {
            return Ok(());
        }
        let mut sep = "";
        let mut item = |f: &mut fmt::Formatter<'_>, args: fmt::Arguments<'_>| {
            let r = write!(f, "{sep}{args}");
            sep = ",";
            r
        };
        f.write_str(" <")?;
        if let Some(mss) = self.max_seg_size {
            item(f, format_args!("mss {mss}"))?;
        }
        if let Some((tsval, tsecr)) = self.timestamp {
            if self.sack_permitted {
                item(f, format_args!("sackOK"))?;
            } else {
                item(f, format_args!("nop,nop"))?;
            }
            item(f, format_args!("TS val {tsval} ecr {tsecr}"))?;
        } else if self.sack_permitted {
            item(f, format_args!("nop,nop,sackOK"))?;
        }
        if let Some(ws) = self.window_scale {
            item(f, format_args!("nop,wscale {ws}"))?;
        }
        let sacks = self.sack_ranges.truncated(self.sack_blocks_emitted());
        if !sacks.is_empty() {
            item(f, format_args!("nop,nop,sack"))?;
            for (start, end) in sacks {
                write!(f, " {start}:{end}")?;
            }
        }
        f.write_str(">")
    }
}
