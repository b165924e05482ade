//! IPv4 input and output (net/ipv4/ip_input.c, ip_output.c): header checks on the way in,
//! header construction and checksums on the way out.

pub mod icmp;
pub mod recverr;
pub mod sockglue;

use crate::mib::{DropReason, IpMib};
use crate::netns::Netns;
use crate::skb::Frame;
use crate::wire::{Ipv4Packet, Ipv4Repr, TcpFlags, TcpPacket, TcpRepr, IPPROTO_TCP};
use bytes::Bytes;
use core::sync::atomic::Ordering;
use std::net::Ipv4Addr;

/// `ip_queue_xmit()` + `tcp_transmit_skb()`'s header work: one frame carrying `tcp` from `saddr`
/// to `daddr`. The payload is shared, not copied; the checksum is computed over it.
pub fn build_tcp_frame(net: &Netns, saddr: Ipv4Addr, daddr: Ipv4Addr, tcp: &TcpRepr<'_>, payload: Bytes) -> Frame {
    build_tcp_frame_with(net, saddr, daddr, tcp, payload, &sockglue::InetOpts::default())
}

/// [`build_tcp_frame`] for a socket: its `inet->tos` (IP_TOS), `inet->uc_ttl` (IP_TTL;
/// -1: `net.ipv4.ip_default_ttl`, as `ip_select_ttl()`) and DF as `ip_dont_fragment()`
/// (IP_MTU_DISCOVER: every mode but IP_PMTUDISC_DONT sets it).
pub fn build_tcp_frame_with(
    net: &Netns,
    saddr: Ipv4Addr,
    daddr: Ipv4Addr,
    tcp: &TcpRepr<'_>,
    payload: Bytes,
    inet: &sockglue::InetOpts,
) -> Frame {
    build_tcp_frame_gso(net, saddr, daddr, tcp, payload, inet, 0)
}

/// [`build_tcp_frame_with`] for a TSO super-segment when `gso_size` ≠ 0: one IP + TCP header
/// before up to 64 KiB of payload that the device cuts into `gso_size`-byte packets, with a
/// partial checksum (`CHECKSUM_PARTIAL`: the pseudo-header sum over the whole length,
/// as `__tcp_v4_send_check()` leaves it; `tcp_gso_segment()` adjusts it per packet).
pub fn build_tcp_frame_gso(
    net: &Netns,
    saddr: Ipv4Addr,
    daddr: Ipv4Addr,
    tcp: &TcpRepr<'_>,
    payload: Bytes,
    inet: &sockglue::InetOpts,
    gso_size: u32,
) -> Frame {
    let (tos, uc_ttl) = (inet.tos, inet.uc_ttl);
    let tcp_hlen = tcp.header_len();
    let ttl = if uc_ttl < 0 { net.sysctl.ip_default_ttl.get() as u8 } else { uc_ttl as u8 };
    let ip = Ipv4Repr {
        src_addr: saddr,
        dst_addr: daddr,
        protocol: IPPROTO_TCP,
        payload_len: tcp_hlen + payload.len(),
        ttl,
        ident: net.ip_id.fetch_add(1, Ordering::Relaxed) as u16,
        dont_frag: inet.pmtudisc != sockglue::IP_PMTUDISC_DONT,
        tos,
    };
    let mut frame = Frame::with_header_len(20 + tcp_hlen, payload);
    let head = frame.head_mut();
    {
        let mut ipp = Ipv4Packet::new_unchecked(&mut head[..20]);
        ip.emit(&mut ipp, true);
    }
    {
        // Header only: the payload lives in `frame.payload`.
        let hdr = TcpRepr { payload: &[], ..*tcp };
        let mut tp = TcpPacket::new_unchecked(&mut head[20..]);
        hdr.emit(&mut tp, saddr, daddr, false);
    }
    if gso_size != 0 {
        let tcp_len = frame.len() - 20;
        let pseudo = crate::wire::pseudo_header_checksum(saddr, daddr, IPPROTO_TCP, tcp_len as u32);
        let head = frame.head_mut();
        head[20 + 16..20 + 18].copy_from_slice(&crate::wire::combine(&[pseudo]).to_be_bytes());
        frame.gso_size = gso_size;
        frame.csum_partial = true;
    } else {
        fill_tcp_checksum(&mut frame, saddr, daddr);
    }
    net.mib.ip_inc(IpMib::OutRequests);
    frame
}

/// `rt_tos2priority()`: the `skb->priority` band a TOS byte maps to (`ip_tos2prio`).
pub fn rt_tos2priority(tos: u8) -> u32 {
    // TC_PRIO_BESTEFFORT 0, BULK 2, INTERACTIVE_BULK 4, INTERACTIVE 6.
    const IP_TOS2PRIO: [u8; 16] = [0, 0, 0, 0, 2, 2, 2, 2, 6, 6, 6, 6, 4, 4, 4, 4];
    IP_TOS2PRIO[((tos & 0x1e) >> 1) as usize] as u32
}

/// Computes the TCP checksum of a frame whose header and payload are separate.
pub fn fill_tcp_checksum(frame: &mut Frame, saddr: Ipv4Addr, daddr: Ipv4Addr) {
    let tcp_len = frame.len() - 20;
    let pseudo = crate::wire::pseudo_header_checksum(saddr, daddr, IPPROTO_TCP, tcp_len as u32);
    let psum = payload_sum(&frame.payload, frame.head().len() - 20);
    let head = frame.head_mut();
    head[20 + 16] = 0;
    head[20 + 17] = 0;
    let hsum = crate::wire::checksum(&head[20..]);
    let sum = !crate::wire::combine(&[pseudo, hsum, psum]);
    let head = frame.head_mut();
    head[20 + 16..20 + 18].copy_from_slice(&sum.to_be_bytes());
}

/// Checksum of the payload as it sits after `offset` bytes of TCP header: when the header has an
/// odd length the payload's bytes shift by one position in the 16-bit sum.
fn payload_sum(payload: &[u8], offset: usize) -> u16 {
    let s = crate::wire::checksum(payload);
    if offset % 2 == 1 {
        s.swap_bytes()
    } else {
        s
    }
}

/// A validated inbound TCP segment: addresses plus the TCP header fields and payload.
pub struct TcpIn<'a> {
    /// Source address.
    pub saddr: Ipv4Addr,
    /// Destination address.
    pub daddr: Ipv4Addr,
    /// Parsed header (payload empty; see `payload`).
    pub tcp: TcpRepr<'a>,
    /// The segment's payload (shared with the frame).
    pub payload: Bytes,
    /// Raw window field.
    pub raw_window: u16,
    /// TCP header length including options (`th->doff * 4`).
    pub thlen: u32,
    /// `ip_hdr(skb)->ttl` (IP_MINTTL).
    pub ttl: u8,
    /// A SYN's IP and TCP headers as received, for TCP_SAVE_SYN (`tcp_reqsk_record_syn()`);
    /// `None` for every other segment.
    pub syn_hdr: Option<Bytes>,
}

/// `ip_rcv_core()` + `ip_route_input()`'s checks shared by every protocol: `head` holds at
/// least the IP header, `total` is the datagram's length on the wire. Counts InReceives and
/// every drop; returns the IP header length.
fn ip_rcv_core(net: &Netns, head: &[u8], total: usize, verify_csum: bool) -> Result<usize, DropReason> {
    net.mib.ip_inc(IpMib::InReceives);
    if head.len() < 20 {
        return Err(drop(net, DropReason::PKT_TOO_SMALL));
    }
    let ipp = Ipv4Packet::new_unchecked(head);
    let ihl = ipp.header_len() as usize;
    if ipp.version() != 4 || ihl < 20 || ihl > head.len() {
        return Err(drop(net, DropReason::IP_INHDR));
    }
    let tot_len = ipp.total_len() as usize;
    if tot_len < ihl || tot_len > total {
        return Err(drop(net, DropReason::PKT_TOO_SMALL));
    }
    if verify_csum && crate::wire::checksum(&head[..ihl]) != 0xffff {
        return Err(drop(net, DropReason::IP_CSUM));
    }
    if ipp.more_frags() || ipp.frag_offset() != 0 {
        return Err(drop(net, DropReason::IP_FRAGMENT));
    }
    // ip_route_input(): not one of our addresses (no forwarding).
    if ipp.dst_addr() != net.local_addr() {
        return Err(drop(net, DropReason::IP_NOT_FOR_US));
    }
    Ok(ihl)
}

/// `ip_rcv()` + `tcp_v4_rcv()`'s header checks: validates the IPv4 header and the TCP header and
/// checksum of `frame`. Every failure is a counted drop (the caller records nothing more).
pub fn ip_rcv_tcp<'a>(net: &Netns, frame: &'a Frame, verify_csum: bool) -> Result<TcpIn<'a>, DropReason> {
    let head = frame.head();
    let total = frame.len();
    let ihl = ip_rcv_core(net, head, total, verify_csum)?;
    let ipp = Ipv4Packet::new_unchecked(head);
    let tot_len = ipp.total_len() as usize;
    let saddr = ipp.src_addr();
    let daddr = ipp.dst_addr();
    if ipp.protocol() != IPPROTO_TCP {
        return Err(drop(net, DropReason::IP_NOPROTO));
    }
    // ip_local_deliver_finish() hands it to tcp_v4_rcv(), which counts every segment, good
    // or bad, before looking at it (and before any backlog coalescing).
    net.mib.ip_inc(IpMib::InDelivers);
    net.mib.tcp_inc(crate::mib::TcpMib::InSegs);
    // Trailing link-layer padding beyond the IP total length is ignored.
    let tcp_total = tot_len - ihl;
    let tcp_head = &head[ihl..];
    if tcp_total < 20 || tcp_head.len() < 20 {
        return Err(tcp_bad(net));
    }
    let doff = ((tcp_head[12] >> 4) as usize) * 4;
    if doff < 20 || doff > tcp_total || doff > tcp_head.len() {
        return Err(tcp_bad(net));
    }
    // Payload = bytes of the header buffer past the TCP header, then the frame payload.
    let in_head = tcp_head.len() - doff;
    let payload_len = tcp_total - doff;
    let payload = if in_head == 0 {
        frame.payload.slice(..payload_len.min(frame.payload.len()))
    } else {
        let mut v = Vec::with_capacity(payload_len);
        v.extend_from_slice(&tcp_head[doff..doff + in_head.min(payload_len)]);
        let rest = payload_len.saturating_sub(in_head);
        v.extend_from_slice(&frame.payload[..rest]);
        Bytes::from(v)
    };
    if verify_csum {
        let pseudo = crate::wire::pseudo_header_checksum(saddr, daddr, IPPROTO_TCP, tcp_total as u32);
        let hsum = crate::wire::checksum(&tcp_head[..doff]);
        let psum = payload_sum(&payload, doff);
        if crate::wire::combine(&[pseudo, hsum, psum]) != 0xffff {
            return Err(drop(net, DropReason::TCP_CSUM));
        }
    }
    let tp = TcpPacket::new_checked(&tcp_head[..doff]).map_err(|_| drop(net, DropReason::PKT_TOO_SMALL))?;
    let tcp = TcpRepr::parse(&tp, saddr, daddr, false).map_err(|_| drop(net, DropReason::PKT_TOO_SMALL))?;
    let raw_window = tp.window_len();
    let ttl = ipp.ttl();
    let syn_hdr = (tcp.flags.contains(TcpFlags::SYN) && !tcp.flags.contains(TcpFlags::ACK))
        .then(|| Bytes::copy_from_slice(&head[..ihl + doff]));
    Ok(TcpIn { saddr, daddr, tcp, payload, raw_window, thlen: doff as u32, ttl, syn_hdr })
}

/// `ip_rcv()` + `ip_local_deliver()` for a datagram that is not TCP (`pkt`: the whole
/// datagram): the same header checks as [`ip_rcv_tcp`]; returns the header length.
pub fn ip_rcv_other(net: &Netns, pkt: &[u8], verify_csum: bool) -> Result<usize, DropReason> {
    ip_rcv_core(net, pkt, pkt.len(), verify_csum)
}

/// The header length (IP + TCP) of raw packet bytes, for splitting them into a [`Frame`];
/// `None` when the bytes are too short or inconsistent to tell.
pub fn header_len_of(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < 20 || bytes[0] >> 4 != 4 {
        return None;
    }
    let ihl = ((bytes[0] & 0xf) as usize) * 4;
    if ihl < 20 || bytes.len() < ihl + 20 {
        return None;
    }
    let doff = ((bytes[ihl + 12] >> 4) as usize) * 4;
    let hl = ihl + doff;
    (doff >= 20 && hl <= bytes.len() && hl <= crate::skb::MAX_HEADER).then_some(hl)
}

/// A frame from raw packet bytes (TUN, scripts): headers inline, the rest shared.
pub fn frame_from_wire(bytes: Bytes) -> Frame {
    let hl = header_len_of(&bytes).unwrap_or(bytes.len().min(crate::skb::MAX_HEADER));
    Frame::from_wire(bytes, hl)
}

/// `tcp_v4_rcv()`'s `bad_packet`: a TCP header too short for itself (TcpInErrs).
fn tcp_bad(net: &Netns) -> DropReason {
    net.mib.drop_reason(DropReason::TCP_HDR_TOO_SMALL);
    DropReason::PKT_TOO_SMALL
}

fn drop(net: &Netns, r: DropReason) -> DropReason {
    net.mib.drop_reason(r);
    r
}
