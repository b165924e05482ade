//! Generic receive offload (net/core/gro.c `dev_gro_receive()` / `napi_gro_flush()`, with
//! net/ipv4/af_inet.c `inet_gro_receive()` / `inet_gro_complete()` and net/ipv4/tcp_offload.c
//! `tcp4_gro_receive()` / `tcp_gro_receive()` / `tcp4_gro_complete()`): consecutive segments
//! of one TCP flow that a device hands up in one poll are merged into one packet before the
//! stack sees it, so the IP and TCP receive paths, the queueing, the ACK decision and the
//! wakeup run once per merged packet instead of once per wire segment.
//!
//! A device with the feature on (`ethtool -K dev gro on`; memlink's
//! [`LinkConfig::gro`](super::memlink::LinkConfig::gro)) feeds each received frame of a poll
//! to [`Gro::receive`] and calls [`Gro::flush`] when the poll ends (`napi_complete_done()`).
//! The rules are Linux's:
//! * only IPv4 without options (`0x45`), TCP, not a fragment, the IP total length equal to the
//!   frame's, valid IP and TCP checksums (each segment is verified before it is merged; one
//!   that fails goes up alone and is dropped and counted by the stack);
//! * same flow (addresses, ports); same TTL, TOS and DF; IP IDs incrementing by one per
//!   segment, or all equal for a DF flow whose second segment repeated the first's ID
//!   (`ip_fixedid`);
//! * the same ACK number, the same TCP header word 12..16 (data offset, flags, window) except
//!   CWR, FIN and PSH (a segment with CWR is never merged into another), the same option
//!   bytes (timestamps included); the segment continues the held packet's sequence space and
//!   carries at most the first segment's payload length (`gso_size`);
//! * a segment shorter than that, or with URG, PSH, RST, SYN or FIN, is merged last (or, not
//!   merged, goes up at once), and the held packet goes up with it; the merged packet keeps
//!   the first segment's headers and ORs in PSH and FIN.
//!
//! The merged packet (`napi_gro_complete()`) carries the segments' payloads as they came, no
//! copy (`Frame::frags`: a pooled vector), its IP total length and header checksum
//! rewritten, the TCP checksum field holding the pseudo-header sum with
//! [`Frame::csum_partial`] set (`CHECKSUM_PARTIAL`, as `tcp4_gro_complete()` leaves it),
//! [`Frame::gso_size`] the first segment's payload length; the segments it stands for
//! (`gso_segs`) follow from its length. A segment that stayed alone goes up as it came,
//! marked [`Frame::csum_unnecessary`].
//!
//! Held packets: at most [`MAX_GRO_SKBS`] flows (`gro_flush_oldest()` makes room).
// DEVIATION(linux): a merged packet holds at most `MAX_SKB_FRAGS` (17) segments: Linux goes on
// past the page frags into `frag_list` up to `gro_max_size` (64 KiB, ~45 segments at MSS 1448);
// utcp's skbs keep their fragments in the pooled 16-slot vectors, so that a received segment
// allocates nothing.
// DEVIATION(linux): an IPv4 TCP segment GRO cannot take (IP options, a payload inside the header
// buffer, a GSO frame) first sends up what is held for its flow, so one flow's segments stay
// in order; `inet_gro_receive()` lets a packet with options overtake a held one. Only IPv4 is
// merged (`ipv6_gro_receive()` is not modelled).

use crate::skb::{Frame, SKB_FRAGS_CAP};
use crate::wire::{checksum, combine, pseudo_header_checksum, TcpFlags, IPPROTO_TCP};
use bytes::Bytes;
use std::net::Ipv4Addr;

/// `MAX_GRO_SKBS`: packets held at once.
pub const MAX_GRO_SKBS: usize = 8;
/// `gro_max_size` (`GRO_LEGACY_MAX_SIZE`): a merged IP datagram stays below it.
pub const GRO_MAX_SIZE: usize = 65_536;
/// Segments one merged packet holds: the first payload and `SKB_FRAGS_CAP` fragments.
pub const GRO_MAX_SEGS: u32 = SKB_FRAGS_CAP as u32 + 1;

const IP_DF: u16 = 0x4000;

/// A packet held for merging (`NAPI_GRO_CB(p)`).
struct Held {
    frame: Frame,
    /// Segments merged (`count`).
    count: u32,
    /// The first segment's payload length (`gso_size`).
    mss: u32,
    /// Sequence number the next segment must start at.
    next_seq: u32,
    /// Source, destination, ports: the flow.
    key: (u32, u32, u32),
    /// `ip_fixedid`: every segment repeats the first's IP ID.
    fixedid: bool,
    /// Payload bytes held.
    len: usize,
}

/// The GRO state of one poll (`napi->gro`): the held packets and where merged packets go.
pub struct Gro<'h> {
    hook: &'h dyn Fn(Frame),
    held: [Option<Held>; MAX_GRO_SKBS],
    n: usize,
}

/// What GRO makes of one frame.
enum Class {
    /// Not a candidate and of no flow GRO holds (not IPv4 TCP).
    Other,
    /// IPv4 TCP that cannot be merged (`flush` set before the TCP rules): the flow's held
    /// packet goes up first.
    Unmergeable((u32, u32, u32)),
    /// Bad IP or TCP checksum: up alone, at once (`skb_gro_checksum_validate()` failed).
    BadCsum,
    /// A candidate.
    Tcp(Parsed),
}

struct Parsed {
    key: (u32, u32, u32),
    seq: u32,
    len: u32,
    flags: u8,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// `inet_gro_receive()` + `tcp4_gro_receive()`'s checks on one frame.
fn classify(f: &Frame) -> Class {
    let h = f.head();
    if h.len() < 40 || h[0] >> 4 != 4 || h[9] != IPPROTO_TCP {
        return Class::Other;
    }
    let ihl = (h[0] & 0x0f) as usize * 4;
    if ihl < 20 || h.len() < ihl + 20 {
        return Class::Other;
    }
    let key = (be32(h, 12), be32(h, 16), be32(h, ihl));
    if ihl != 20 || f.gso_size != 0 || f.csum_partial || !f.frags.is_empty() {
        return Class::Unmergeable(key);
    }
    if checksum(&h[..20]) != 0xffff {
        return Class::BadCsum;
    }
    let thlen = (h[32] >> 4) as usize * 4;
    // The whole TCP header, and nothing more, in the header buffer; the IP total length is
    // the frame's (no padding); not a fragment (MF, offset, reserved bit).
    if thlen < 20 || h.len() != 20 + thlen || be16(h, 2) as usize != f.len() || be16(h, 6) & !IP_DF != 0 {
        return Class::Unmergeable(key);
    }
    let tcp_len = (f.len() - 20) as u32;
    let (src, dst) = (Ipv4Addr::from(key.0), Ipv4Addr::from(key.1));
    let pseudo = pseudo_header_checksum(src, dst, IPPROTO_TCP, tcp_len);
    // The payload starts at an even offset (whole 32-bit header words): no lane shift.
    if combine(&[pseudo, checksum(&h[20..]), checksum(&f.payload)]) != 0xffff {
        return Class::BadCsum;
    }
    Class::Tcp(Parsed { key, seq: be32(h, 24), len: f.payload.len() as u32, flags: h[33] })
}

/// Hands one poll's frames to `hook` in order: through GRO when `gro` (`napi_gro_receive()`
/// per frame, `napi_gro_flush()` when the poll completes), else one by one.
pub(crate) fn napi_deliver(batch: &mut std::collections::VecDeque<Frame>, hook: &dyn Fn(Frame), gro: bool) {
    if gro {
        let mut g = Gro::new(hook);
        while let Some(f) = batch.pop_front() {
            g.receive(f);
        }
        g.flush();
    } else {
        while let Some(f) = batch.pop_front() {
            hook(f);
        }
    }
}

impl<'h> Gro<'h> {
    /// GRO for one poll whose packets go to `hook`.
    pub fn new(hook: &'h dyn Fn(Frame)) -> Gro<'h> {
        Gro { hook, held: Default::default(), n: 0 }
    }

    /// `napi_gro_receive()` → `dev_gro_receive()`: merges `f` into a held packet, holds it,
    /// or hands it (and what it ends) to the hook.
    pub fn receive(&mut self, f: Frame) {
        match classify(&f) {
            Class::Other | Class::BadCsum => (self.hook)(f),
            Class::Unmergeable(key) => {
                if let Some(i) = self.find(key) {
                    self.complete(i);
                }
                (self.hook)(f)
            }
            Class::Tcp(p) => self.tcp_gro_receive(f, p),
        }
    }

    fn find(&self, key: (u32, u32, u32)) -> Option<usize> {
        self.held[..self.n].iter().position(|h| h.as_ref().is_some_and(|h| h.key == key))
    }

    /// `tcp_gro_receive()`.
    fn tcp_gro_receive(&mut self, f: Frame, p: Parsed) {
        let fin_psh = TcpFlags::FIN.0 | TcpFlags::PSH.0;
        let ends = TcpFlags::URG.0 | TcpFlags::PSH.0 | TcpFlags::RST.0 | TcpFlags::SYN.0 | TcpFlags::FIN.0;
        let Some(i) = self.find(p.key) else {
            return self.hold_or_send(f, p);
        };
        let h = self.held[i].as_mut().unwrap();
        let (a, b) = (f.head(), h.frame.head());
        let id_off = be16(a, 4).wrapping_sub(be16(b, 4));
        let df = be16(a, 6) & IP_DF != 0;
        // inet_gro_flush(): all IP fields but length, ID and checksum match.
        let mut flush = a[8] != b[8] || a[1] != b[1] || (be16(a, 6) ^ be16(b, 6)) & IP_DF != 0;
        if !flush {
            if h.count == 1 && df && id_off == 0 {
                h.fixedid = true;
            }
            flush = if h.fixedid && df { id_off != 0 } else { id_off as u32 != h.count & 0xffff };
        }
        // The TCP header word 12..16 with CWR, FIN, PSH masked (a CWR flushes), the ACK
        // number, the options.
        let mask = !(TcpFlags::CWR.0 | fin_psh);
        flush |= p.flags & TcpFlags::CWR.0 != 0
            || a[32] != b[32]
            || (a[33] ^ b[33]) & mask != 0
            || a[34..36] != b[34..36]
            || a[28..32] != b[28..32]
            || a[40..] != b[40..];
        flush |= p.len == 0 || p.len > h.mss || p.seq != h.next_seq;
        // skb_gro_receive(): -E2BIG past gro_max_size (and, here, past the fragments).
        flush |= 20 + (b.len() - 20) + h.len + p.len as usize >= GRO_MAX_SIZE || h.count >= GRO_MAX_SEGS;
        if flush {
            // Not merged: the held packet goes up, this one starts anew.
            self.complete(i);
            return self.hold_or_send(f, p);
        }
        if h.frame.frags.capacity() == 0 {
            h.frame.frags = crate::skb::frag_vec_alloc();
        }
        h.frame.frags.push(f.payload.clone());
        h.count += 1;
        h.len += p.len as usize;
        h.next_seq = p.seq.wrapping_add(p.len);
        if h.frame.truesize != 0 {
            h.frame.truesize += f.truesize.saturating_sub(256);
        }
        h.frame.head_mut()[33] |= p.flags & fin_psh;
        if p.len < h.mss || p.flags & ends != 0 || h.count >= GRO_MAX_SEGS {
            self.complete(i);
        }
    }

    /// A first segment: held, unless it ends a merge by itself (short of nothing, or flags).
    fn hold_or_send(&mut self, mut f: Frame, p: Parsed) {
        let ends = TcpFlags::URG.0 | TcpFlags::PSH.0 | TcpFlags::RST.0 | TcpFlags::SYN.0 | TcpFlags::FIN.0;
        if p.len == 0 || p.flags & ends != 0 {
            f.csum_unnecessary = true;
            return (self.hook)(f);
        }
        if self.n == MAX_GRO_SKBS {
            // gro_flush_oldest().
            self.complete(0);
        }
        self.held[self.n] = Some(Held {
            frame: f,
            count: 1,
            mss: p.len,
            next_seq: p.seq.wrapping_add(p.len),
            key: p.key,
            fixedid: false,
            len: p.len as usize,
        });
        self.n += 1;
    }

    /// `napi_gro_complete()` of held packet `i`: the merged packet goes up.
    fn complete(&mut self, i: usize) {
        let h = self.held[i].take().unwrap();
        self.held[i..self.n].rotate_left(1);
        self.n -= 1;
        (self.hook)(gro_complete(h));
    }

    /// `napi_gro_flush()`: every held packet goes up, oldest first.
    pub fn flush(&mut self) {
        while self.n > 0 {
            self.complete(0);
        }
    }
}

impl Drop for Gro<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// `inet_gro_complete()` + `tcp4_gro_complete()`.
fn gro_complete(h: Held) -> Frame {
    let mut f = h.frame;
    if h.count == 1 {
        // Verified on the way in: CHECKSUM_UNNECESSARY.
        f.csum_unnecessary = true;
        return f;
    }
    let total = f.len();
    let tcp_len = (total - 20) as u32;
    let head = f.head_mut();
    head[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    head[10..12].copy_from_slice(&[0, 0]);
    let ipsum = !checksum(&head[..20]);
    head[10..12].copy_from_slice(&ipsum.to_be_bytes());
    let pseudo =
        pseudo_header_checksum(Ipv4Addr::from(be32(head, 12)), Ipv4Addr::from(be32(head, 16)), IPPROTO_TCP, tcp_len);
    head[36..38].copy_from_slice(&pseudo.to_be_bytes());
    f.csum_partial = true;
    f.gso_size = h.mss;
    f
}

/// The wire packets a packet GRO merged was made of, each as its parts (IP + TCP header, then
/// the payload), for a capture of what the wire carried: the headers are rebuilt as the
/// sender's were — IP total length, IDs and header checksum per packet, the sequence number
/// advanced, PSH and FIN on the last packet only, full TCP checksums (each was verified
/// before merging). A frame GRO did not merge is handed over as it is.
// A fixed-ID flow's packets (`ip_fixedid`) are shown with incrementing IDs.
pub fn for_each_wire_packet(f: &Frame, mut emit: impl FnMut(&[&[u8]])) {
    if f.frags.is_empty() || f.head().len() < 40 || f.head()[0] != 0x45 {
        return emit(&[f.head(), &f.payload]);
    }
    let base = f.head();
    let mut hdr = [0u8; crate::skb::MAX_HEADER];
    let hl = base.len();
    let (id0, seq0) = (be16(base, 4), be32(base, 24));
    let n = 1 + f.frags.len();
    let mut off = 0u32;
    for (i, part) in core::iter::once(&f.payload).chain(f.frags.iter()).enumerate() {
        let h = &mut hdr[..hl];
        h.copy_from_slice(base);
        h[2..4].copy_from_slice(&((hl + part.len()) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&id0.wrapping_add(i as u16).to_be_bytes());
        h[10..12].copy_from_slice(&[0, 0]);
        let ipsum = !checksum(&h[..20]);
        h[10..12].copy_from_slice(&ipsum.to_be_bytes());
        h[24..28].copy_from_slice(&seq0.wrapping_add(off).to_be_bytes());
        if i + 1 < n {
            h[33] &= !(TcpFlags::FIN.0 | TcpFlags::PSH.0);
        }
        h[36..38].copy_from_slice(&[0, 0]);
        let src = Ipv4Addr::from(be32(h, 12));
        let dst = Ipv4Addr::from(be32(h, 16));
        let pseudo = pseudo_header_checksum(src, dst, IPPROTO_TCP, (hl - 20 + part.len()) as u32);
        let sum = !combine(&[pseudo, checksum(&h[20..]), checksum(part)]);
        h[36..38].copy_from_slice(&sum.to_be_bytes());
        emit(&[h, part]);
        off += part.len() as u32;
    }
}

/// The payload parts of `f` in order (the first, then what GRO merged).
pub fn payload_parts(f: &Frame) -> impl Iterator<Item = &Bytes> {
    core::iter::once(&f.payload).chain(f.frags.iter())
}

#[cfg(test)]
#[path = "gro_tests.rs"]
mod tests;
