//! IPv4 input and output (net/ipv4/ip_input.c, ip_output.c): header checks on the way in,
//! header construction and checksums on the way out. IPv6's are in [`ipv6`] and `icmpv6`.

pub(crate) mod icmp;
pub(crate) mod icmpv6;
pub mod ipv6;
pub mod ipv6_sockglue;
pub mod options;
pub(crate) mod recverr;
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
pub(crate) fn build_tcp_frame_with(
    net: &Netns,
    saddr: Ipv4Addr,
    daddr: Ipv4Addr,
    tcp: &TcpRepr<'_>,
    payload: Bytes,
    inet: &sockglue::InetOpts,
) -> Frame {
    build_tcp_frame_gso(net, saddr, daddr, tcp, payload, inet, 0)
}

/// `build_tcp_frame_with` for a TSO super-segment when `gso_size` ≠ 0: one IP + TCP header
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
    // ip_queue_xmit(): the socket's IP options after the header (ip_options_build); a source
    // route sends the datagram to its first hop, the TCP checksum covering the final
    // destination.
    let opt = inet.opt.as_deref().filter(|o| o.optlen != 0);
    let optlen = opt.map_or(0, |o| o.optlen as usize);
    let ihl = 20 + optlen;
    let ip_dst = match opt {
        Some(o) if o.srr != 0 => o.faddr,
        _ => daddr,
    };
    let ip = Ipv4Repr {
        src_addr: saddr,
        dst_addr: ip_dst,
        protocol: IPPROTO_TCP,
        payload_len: optlen + tcp_hlen + payload.len(),
        ttl,
        // ip_select_ident_segs(): a super-segment takes one ID per packet GSO cuts from it.
        ident: net.ip_id.fetch_add(gso_segs(payload.len(), gso_size), Ordering::Relaxed) as u16,
        dont_frag: inet.pmtudisc != sockglue::IP_PMTUDISC_DONT,
        tos,
    };
    let mut frame = Frame::with_header_len(ihl + tcp_hlen, payload);
    let head = frame.head_mut();
    {
        let mut ipp = Ipv4Packet::new_unchecked(&mut head[..20]);
        ip.emit(&mut ipp, opt.is_none());
    }
    if let Some(o) = opt {
        let midtime = if o.ts_needtime { options::inet_current_timestamp(realtime_ns()) } else { 0 };
        let d = options::ip_options_build(o, daddr, saddr, midtime);
        head[0] = 0x40 | (ihl / 4) as u8;
        head[20..ihl].copy_from_slice(&d[..optlen]);
        let sum = !crate::wire::checksum(&head[..ihl]);
        head[10..12].copy_from_slice(&sum.to_be_bytes());
    }
    {
        // Header only: the payload lives in `frame.payload`.
        let hdr = TcpRepr { payload: &[], ..*tcp };
        let mut tp = TcpPacket::new_unchecked(&mut head[ihl..]);
        hdr.emit(&mut tp, saddr, daddr, false);
    }
    if gso_size != 0 {
        let tcp_len = frame.len() - ihl;
        let pseudo = crate::wire::pseudo_header_checksum(saddr, daddr, IPPROTO_TCP, tcp_len as u32);
        let head = frame.head_mut();
        head[ihl + 16..ihl + 18].copy_from_slice(&crate::wire::combine(&[pseudo]).to_be_bytes());
        frame.gso_size = gso_size;
        frame.csum_partial = true;
    } else {
        fill_tcp_checksum(&mut frame, saddr, daddr);
    }
    net.mib.ip_inc(IpMib::OutRequests);
    frame
}

/// The packets a payload of `len` bytes is cut into at `gso_size` (0: not GSO).
fn gso_segs(len: usize, gso_size: u32) -> u32 {
    if gso_size == 0 {
        1
    } else {
        (len as u32).div_ceil(gso_size).max(1)
    }
}

/// `rt_tos2priority()`: the `skb->priority` band a TOS byte maps to (`ip_tos2prio`).
pub(crate) fn rt_tos2priority(tos: u8) -> u32 {
    // TC_PRIO_BESTEFFORT 0, BULK 2, INTERACTIVE_BULK 4, INTERACTIVE 6.
    const IP_TOS2PRIO: [u8; 16] = [0, 0, 0, 0, 2, 2, 2, 2, 6, 6, 6, 6, 4, 4, 4, 4];
    IP_TOS2PRIO[((tos & 0x1e) >> 1) as usize] as u32
}

/// Computes the TCP checksum of a frame whose header and payload are separate; `daddr` is
/// the final destination (a source route's last hop, not the IP header's first one).
pub(crate) fn fill_tcp_checksum(frame: &mut Frame, saddr: Ipv4Addr, daddr: Ipv4Addr) {
    let ihl = ((frame.head()[0] & 0x0f) as usize) * 4;
    let tcp_len = frame.len() - ihl;
    let pseudo = crate::wire::pseudo_header_checksum(saddr, daddr, IPPROTO_TCP, tcp_len as u32);
    let psum = payload_sum(&frame.payload, frame.head().len() - ihl);
    let head = frame.head_mut();
    head[ihl + 16] = 0;
    head[ihl + 17] = 0;
    let hsum = crate::wire::checksum(&head[ihl..]);
    let sum = !crate::wire::combine(&[pseudo, hsum, psum]);
    let head = frame.head_mut();
    head[ihl + 16..ihl + 18].copy_from_slice(&sum.to_be_bytes());
}

/// `ktime_get_real()` in nanoseconds since the epoch (the IP timestamp option's clock).
fn realtime_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
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
    /// Source address (IPv4, or IPv6 from [`ipv6::ip6_rcv_tcp`]).
    pub(crate) saddr: std::net::IpAddr,
    /// Destination address.
    pub(crate) daddr: std::net::IpAddr,
    /// Parsed header (payload empty; see `payload`).
    pub tcp: TcpRepr<'a>,
    /// The segment's payload (shared with the frame).
    pub payload: Bytes,
    /// Raw window field.
    pub(crate) raw_window: u16,
    /// TCP header length including options (`th->doff * 4`).
    pub(crate) thlen: u32,
    /// `ip_hdr(skb)->ttl` (IP_MINTTL), or `ipv6_hdr(skb)->hop_limit` (IPV6_MINHOPCOUNT).
    pub(crate) ttl: u8,
    /// The IPv6 traffic class (0 for IPv4).
    pub(crate) tclass: u8,
    /// A SYN's IP and TCP headers as received, for TCP_SAVE_SYN (`tcp_reqsk_record_syn()`);
    /// `None` for every other segment.
    pub(crate) syn_hdr: Option<Bytes>,
    /// The IP options the segment carried, compiled on receipt (`IPCB(skb)->opt`; `None`
    /// when the header had none).
    pub(crate) opt: Option<Box<options::IpOptions>>,
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

/// `ip_rcv_options()`: compiles the options of a datagram for us (`head[20..ihl]`): RR and
/// TS record our address and time in the copy kept with the segment. Options that do not
/// compile are a header error (InHdrErrors; [`ip_options_param_problem`] tells the ICMP
/// parameter problem's pointer); a source route is refused, as `accept_source_route` = 0
/// refuses it.
fn ip_rcv_options(net: &Netns, head: &[u8], ihl: usize) -> Result<Option<Box<options::IpOptions>>, DropReason> {
    if ihl <= 20 {
        return Ok(None);
    }
    let midtime = options::inet_current_timestamp(realtime_ns());
    let Ok(opt) = compile_rcv_options(head, ihl, midtime) else {
        return Err(drop(net, DropReason::IP_INHDR));
    };
    if opt.srr != 0 {
        return Err(drop(net, DropReason::NOT_SPECIFIED));
    }
    Ok(Some(Box::new(opt)))
}

/// `ip_options_compile()`'s ICMP parameter problem: for a datagram dropped as a header error,
/// the pointer (offset from the IP header) to the option byte that failed, when its options
/// are what failed; `None` otherwise.
pub(crate) fn ip_options_param_problem(head: &[u8]) -> Option<u8> {
    if head.len() < 20 || head[0] >> 4 != 4 {
        return None;
    }
    let ihl = ((head[0] & 0xf) as usize) * 4;
    if ihl <= 20 || ihl > head.len() {
        return None;
    }
    compile_rcv_options(head, ihl, 0).err()
}

/// `ip_options_compile()` over the options of a received datagram (`head[20..ihl]`, `ihl` >
/// 20 and within `head`), for its destination as the local address; the error is the
/// offending byte's offset.
fn compile_rcv_options(head: &[u8], ihl: usize, midtime: u32) -> Result<options::IpOptions, u8> {
    let mut opt = options::IpOptions::default();
    opt.data[..ihl - 20].copy_from_slice(&head[20..ihl]);
    opt.optlen = (ihl - 20) as u8;
    let local = Ipv4Packet::new_unchecked(head).dst_addr();
    let rcv = options::RcvCtx { spec_dst: local, midtime };
    options::ip_options_compile(&mut opt, Some(rcv), local)?;
    Ok(opt)
}

/// `ip_rcv()` + `tcp_v4_rcv()`'s header checks: validates the IPv4 header and the TCP header and
/// checksum of `frame`. Every failure is a counted drop (the caller records nothing more).
pub fn ip_rcv_tcp<'a>(net: &Netns, frame: &'a Frame, verify_csum: bool) -> Result<TcpIn<'a>, DropReason> {
    let head = frame.head();
    let total = frame.len();
    let ihl = ip_rcv_core(net, head, total, verify_csum)?;
    let opt = ip_rcv_options(net, head, ihl)?;
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
    Ok(TcpIn {
        saddr: saddr.into(),
        daddr: daddr.into(),
        tcp,
        payload,
        raw_window,
        thlen: doff as u32,
        ttl,
        tclass: 0,
        syn_hdr,
        opt,
    })
}

/// `ip_rcv()` + `ip_local_deliver()` for a datagram that is not TCP (`pkt`: the whole
/// datagram): the same header checks as [`ip_rcv_tcp`]; returns the header length.
pub(crate) fn ip_rcv_other(net: &Netns, pkt: &[u8], verify_csum: bool) -> Result<usize, DropReason> {
    let ihl = ip_rcv_core(net, pkt, pkt.len(), verify_csum)?;
    ip_rcv_options(net, pkt, ihl)?;
    Ok(ihl)
}

/// The header length (IP + TCP) of raw packet bytes, for splitting them into a [`Frame`];
/// `None` when the bytes are too short or inconsistent to tell.
pub(crate) fn header_len_of(bytes: &[u8]) -> Option<usize> {
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
