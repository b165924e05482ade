//! IPv6 input and output (net/ipv6/ip6_input.c, ip6_output.c, exthdrs.c): `ip6_rcv_core()`'s
//! header checks, the local route, `ip6_input_finish()`'s walk of the extension headers to the
//! upper layer with the parameter problems Linux sends, and `ip6_xmit()`'s header with the hop
//! limit of `net.ipv6.conf.all.hop_limit` and `ip6_make_flowlabel()`'s automatic flow label.
//!
//! DEVIATION(linux): fragments are not reassembled: each is counted (Ip6ReasmReqds, then
//! Ip6ReasmFails) and dropped, atomic fragments (offset 0, no more fragments) included, which
//! Linux processes as whole packets (RFC 6946).
//!
//! A TCP segment for us is handed to TCP (`ip6_rcv` returns where its header starts;
//! `ip6_rcv_tcp` checks it as `tcp_v6_rcv` does) and TCP's segments leave through
//! `build_tcp6_frame` (`inet6_csk_xmit` → `ip6_xmit`).
//!
//! Linux's drop reasons are shared by both families but each caller counts its own table; utcp's
//! `DropReason`s count IPv4 counters, so IPv6 drops are traced as `NOT_SPECIFIED` and counted
//! here.
//!
//! DEVIATION(linux): the hop limit is `net.ipv6.conf.all.hop_limit`; Linux reads the outgoing
//! interface's `conf.<dev>.hop_limit` (utcp has one interface and no per-device knob).

use super::icmp::IcmpState;
use super::icmpv6::{self, Icmpv6State};
use crate::mib::{DropReason, Ipv6Mib};
use crate::netns::Netns;
use crate::skb::Frame;
use crate::time::Instant;
use crate::wire::icmpv6::{ICMPV6_HDR_FIELD, ICMPV6_PARAMPROB, ICMPV6_UNK_NEXTHDR, ICMPV6_UNK_OPTION};
use crate::wire::ipv6::{nexthdr, walk_ext_headers, ExtWalk, TlvOption, RT_TYPE_RPL, RT_TYPE_SRH};
use crate::wire::{Ipv6Packet, Ipv6Repr, IPV6_HEADER_LEN};
use bytes::Bytes;
use std::net::Ipv6Addr;

/// `IPV6_FLOWLABEL_MASK`.
pub(crate) const IPV6_FLOWLABEL_MASK: u32 = 0x000f_ffff;
/// `IP6_AUTO_FLOW_LABEL_OFF`.
pub(crate) const IP6_AUTO_FLOW_LABEL_OFF: i64 = 0;
/// `IP6_AUTO_FLOW_LABEL_OPTOUT` (the default): labels unless the socket opts out.
pub(crate) const IP6_AUTO_FLOW_LABEL_OPTOUT: i64 = 1;
/// `IP6_AUTO_FLOW_LABEL_FORCED`.
pub(crate) const IP6_AUTO_FLOW_LABEL_FORCED: i64 = 3;
/// `IPV6_TLV_ROUTERALERT`: the one hop-by-hop option a host processes (RFC 2711); the others
/// Linux knows (CALIPSO, IOAM) have action 00 and are skipped as unknown ones are.
const IPV6_TLV_ROUTERALERT: u8 = 5;

/// What the flow dissector hashes for `skb_get_hash_flowi6()`: addresses, protocol and the
/// transport's ports (an ICMP message's type and code), and the flow label.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FlowKeys {
    /// Source address.
    pub(crate) saddr: Ipv6Addr,
    /// Destination address.
    pub(crate) daddr: Ipv6Addr,
    /// Upper-layer protocol.
    pub(crate) proto: u8,
    /// The ports word (source port high, destination low), or ICMP type and code.
    pub(crate) ports: u32,
}

/// `ip6_default_np_autolabel()`: whether a socket that never set IPV6_AUTOFLOWLABEL gets
/// automatic labels.
pub(crate) fn ip6_default_np_autolabel(net: &Netns) -> bool {
    matches!(net.sysctl.auto_flowlabels.get(), IP6_AUTO_FLOW_LABEL_OPTOUT | IP6_AUTO_FLOW_LABEL_FORCED)
}

/// `ip6_make_flowlabel()`: a label already set is kept; else, if labels are automatic, the
/// flow's hash rotated by 16 bits (so that the wire shows no useful part of it), its low 20
/// bits (`net.ipv6.flowlabel_state_ranges` = 0: the stateless bit is not forced).
pub(crate) fn ip6_make_flowlabel(net: &Netns, flowlabel: u32, autolabel: bool, keys: &FlowKeys) -> u32 {
    let flowlabel = flowlabel & IPV6_FLOWLABEL_MASK;
    let mode = net.sysctl.auto_flowlabels.get();
    if flowlabel != 0 || mode == IP6_AUTO_FLOW_LABEL_OFF || (!autolabel && mode != IP6_AUTO_FLOW_LABEL_FORCED) {
        return flowlabel;
    }
    let mut m = [0u8; 40];
    m[..16].copy_from_slice(&keys.saddr.octets());
    m[16..32].copy_from_slice(&keys.daddr.octets());
    m[32..36].copy_from_slice(&keys.ports.to_be_bytes());
    m[36] = keys.proto;
    let (k0, k1) = net.flow_hash_key();
    let hash = crate::siphash::siphash24(k0, k1, &m) as u32;
    // __flow_hash_from_keys() never returns 0 for a flow.
    let hash = if hash == 0 { 1 } else { hash };
    hash.rotate_left(16) & IPV6_FLOWLABEL_MASK
}

/// `ip6_dst_hoplimit()`: the route's hop limit, `net.ipv6.conf.all.hop_limit` here.
pub(crate) fn ip6_dst_hoplimit(net: &Netns) -> u8 {
    net.sysctl.hop_limit.get() as u8
}

/// `ip6_xmit()` / `ip6_finish_output()`'s header work for a packet we originate: the fixed
/// header `hdr` (its payload length set from `payload`, the upper-layer packet with its
/// checksum filled in; its flow label already made, masked to 20 bits) before `payload`.
/// Counts Ip6OutRequests and Ip6OutOctets.
pub(crate) fn ip6_build_frame(net: &Netns, hdr: Ipv6Repr, payload: Vec<u8>) -> Frame {
    let repr = Ipv6Repr { payload_len: payload.len(), flow_label: hdr.flow_label & IPV6_FLOWLABEL_MASK, ..hdr };
    let len = IPV6_HEADER_LEN + payload.len();
    let mut f = Frame::with_header_len(IPV6_HEADER_LEN, Bytes::from(payload));
    repr.emit(&mut Ipv6Packet::new_unchecked(f.head_mut()));
    // ip6_local_out() counts the request, ip6_finish_output2() the transmission.
    net.mib.ip6_inc(Ipv6Mib::OutRequests);
    net.mib.ip6_inc(Ipv6Mib::OutTransmits);
    net.mib.ip6_add(Ipv6Mib::OutOctets, len as u64);
    f
}

/// What [`ip6_rcv`] hands up to TCP.
#[derive(Debug)]
pub(crate) enum Ip6Up {
    /// A segment whose TCP header starts at this offset of the packet.
    Tcp(usize),
    /// An ICMPv6 error about one of our segments.
    TcpErr(super::icmp::IcmpErr),
}

/// What `ip6_xmit()` writes into the header of a TCP segment: `np->tclass` (a stateless
/// reply's: the segment's it answers, without ECN bits), the hop limit, and the flow label
/// (`ip6_make_flowlabel()` already applied).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Ip6Tx {
    /// Traffic class.
    pub(crate) tclass: u8,
    /// Hop limit.
    pub(crate) hop_limit: u8,
    /// Flow label (20 bits).
    pub(crate) flow_label: u32,
}

/// `ip6_make_flowlabel()` for a packet whose `skb->hash` is an L4 hash already
/// (`skb_set_hash_from_sk()`: a TCP socket's `sk_txhash`, a request's `txhash`): that hash,
/// rotated by 16 bits, its low 20 bits, unless a label is set or labels are off.
pub(crate) fn ip6_make_flowlabel_hash(net: &Netns, flowlabel: u32, autolabel: bool, hash: u32) -> u32 {
    let flowlabel = flowlabel & IPV6_FLOWLABEL_MASK;
    let mode = net.sysctl.auto_flowlabels.get();
    if flowlabel != 0 || mode == IP6_AUTO_FLOW_LABEL_OFF || (!autolabel && mode != IP6_AUTO_FLOW_LABEL_FORCED) {
        return flowlabel;
    }
    hash.rotate_left(16) & IPV6_FLOWLABEL_MASK
}

/// `inet6_csk_xmit()` / `tcp_v6_send_response()` → `ip6_xmit()` with `tcp_v6_send_check()`:
/// one frame carrying `tcp` (header only; the payload is shared, not copied) from `saddr` to
/// `daddr`. With `gso_size` ≠ 0 a TSO super-segment: the checksum field holds the
/// pseudo-header sum over the whole length (`CHECKSUM_PARTIAL`), for GSO to complete per
/// packet. Counts Ip6OutRequests, Ip6OutTransmits and Ip6OutOctets.
pub(crate) fn build_tcp6_frame(
    net: &Netns,
    saddr: Ipv6Addr,
    daddr: Ipv6Addr,
    tcp: &crate::wire::TcpRepr<'_>,
    payload: Bytes,
    tx: Ip6Tx,
    gso_size: u32,
) -> Frame {
    let tcp_hlen = tcp.header_len();
    let mut frame = Frame::with_header_len(IPV6_HEADER_LEN + tcp_hlen, payload);
    let tcp_len = tcp_hlen + frame.payload.len();
    let ip = Ipv6Repr {
        src_addr: saddr,
        dst_addr: daddr,
        next_header: nexthdr::TCP,
        payload_len: tcp_len,
        hop_limit: tx.hop_limit,
        traffic_class: tx.tclass,
        flow_label: tx.flow_label & IPV6_FLOWLABEL_MASK,
    };
    let head = frame.head_mut();
    ip.emit(&mut Ipv6Packet::new_unchecked(&mut head[..IPV6_HEADER_LEN]));
    let hdr = crate::wire::TcpRepr { payload: &[], ..*tcp };
    let unspec = std::net::Ipv4Addr::UNSPECIFIED;
    hdr.emit(&mut crate::wire::TcpPacket::new_unchecked(&mut head[IPV6_HEADER_LEN..]), unspec, unspec, false);
    let pseudo = crate::wire::ipv6::pseudo_header_checksum_v6(&saddr, &daddr, nexthdr::TCP, tcp_len as u32);
    let sum_at = IPV6_HEADER_LEN + 16..IPV6_HEADER_LEN + 18;
    if gso_size != 0 && frame.payload.len() as u32 > gso_size {
        frame.head_mut()[sum_at].copy_from_slice(&pseudo.to_be_bytes());
        frame.gso_size = gso_size;
        frame.csum_partial = true;
    } else {
        // A TCP header is whole 32-bit words: the payload's byte lanes are not shifted.
        let hsum = crate::wire::checksum(&frame.head()[IPV6_HEADER_LEN..]);
        let psum = crate::wire::checksum(&frame.payload);
        let sum = !crate::wire::combine(&[pseudo, hsum, psum]);
        frame.head_mut()[sum_at].copy_from_slice(&sum.to_be_bytes());
    }
    net.mib.ip6_inc(Ipv6Mib::OutRequests);
    net.mib.ip6_inc(Ipv6Mib::OutTransmits);
    net.mib.ip6_add(Ipv6Mib::OutOctets, frame.len() as u64);
    frame
}

/// `tcp_v6_rcv()`'s header checks of the TCP segment at `off` in IPv6 packet `pkt` (which
/// [`ip6_rcv`] accepted: its payload length is trusted), with the checksum over the IPv6
/// pseudo-header when `verify_csum`. Counts TcpInSegs, and each failure as `tcp_v4_rcv`'s
/// would (TcpInErrs, TcpInCsumErrors). The payload is a slice of `pkt`.
pub(crate) fn ip6_rcv_tcp<'a>(
    net: &Netns,
    pkt: &'a Bytes,
    off: usize,
    verify_csum: bool,
) -> Result<super::TcpIn<'a>, DropReason> {
    net.mib.tcp_inc(crate::mib::TcpMib::InSegs);
    let p = Ipv6Packet::new_unchecked(&pkt[..]);
    let end = (IPV6_HEADER_LEN + usize::from(p.payload_len())).min(pkt.len());
    let (saddr, daddr) = (p.src_addr(), p.dst_addr());
    let seg = pkt.get(off..end).unwrap_or(&[]);
    if seg.len() < 20 {
        net.mib.drop_reason(DropReason::TCP_HDR_TOO_SMALL);
        return Err(DropReason::PKT_TOO_SMALL);
    }
    let doff = usize::from(seg[12] >> 4) * 4;
    if doff < 20 || doff > seg.len() {
        net.mib.drop_reason(DropReason::TCP_HDR_TOO_SMALL);
        return Err(DropReason::PKT_TOO_SMALL);
    }
    if verify_csum {
        let pseudo = crate::wire::ipv6::pseudo_header_checksum_v6(&saddr, &daddr, nexthdr::TCP, seg.len() as u32);
        if crate::wire::combine(&[pseudo, crate::wire::checksum(seg)]) != 0xffff {
            net.mib.drop_reason(DropReason::TCP_CSUM);
            return Err(DropReason::TCP_CSUM);
        }
    }
    let unspec = std::net::Ipv4Addr::UNSPECIFIED;
    let tp = crate::wire::TcpPacket::new_checked(&seg[..doff]).map_err(|_| DropReason::PKT_TOO_SMALL)?;
    let tcp = crate::wire::TcpRepr::parse(&tp, unspec, unspec, false).map_err(|_| DropReason::PKT_TOO_SMALL)?;
    let syn_hdr = (tcp.flags.syn() && !tcp.flags.ack()).then(|| pkt.slice(..off + doff));
    Ok(super::TcpIn {
        saddr: saddr.into(),
        daddr: daddr.into(),
        raw_window: tp.window_len(),
        tcp,
        payload: pkt.slice(off + doff..end),
        thlen: doff as u32,
        ttl: p.hop_limit(),
        tclass: p.traffic_class(),
        syn_hdr,
        opt: None,
    })
}

/// Whether `a` is one of the multicast groups the interface is in: all-nodes (`ff02::1`) and
/// the solicited-node group of its address (`ff02::1:ffXX:XXXX`, RFC 4291 §2.7.1).
fn ipv6_chk_mcast_addr(net: &Netns, a: &Ipv6Addr) -> bool {
    if *a == Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1) {
        return true;
    }
    let Some(me) = net.local_addr6() else { return false };
    let m = me.octets();
    let sn = Ipv6Addr::from([0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, m[13], m[14], m[15]]);
    *a == sn
}

/// `IPV6_ADDR_MC_SCOPE()`.
fn mc_scope(a: &Ipv6Addr) -> u8 {
    a.octets()[1] & 0x0f
}

fn is_v4mapped(a: &Ipv6Addr) -> bool {
    let o = a.octets();
    o[..10] == [0; 10] && o[10] == 0xff && o[11] == 0xff
}

/// The ICMPv6 error the receive path asks for (`icmpv6_param_prob()` and friends).
struct Icmp6Req {
    icmp_type: u8,
    code: u8,
    info: u32,
}

/// `ipv6_rcv()` → `ip6_rcv_core()` → `ip6_rcv_finish()` → `ip6_input_finish()` for one
/// received packet (`pkt`: the whole IPv6 packet, link-layer padding allowed). Every drop is
/// counted as Linux counts it; ICMPv6 is handed to `icmpv6_rcv`, whose answers (echo replies)
/// and the receive path's own errors (parameter problems) go into `out`.
/// What goes up to TCP is returned: a TCP segment for us (where its TCP header starts in
/// `pkt`, for [`ip6_rcv_tcp`]), or an ICMPv6 error quoting one of our segments
/// (`tcp_v6_err`).
pub(crate) fn ip6_rcv(
    net: &Netns,
    icmp: &IcmpState,
    icmp6: &Icmpv6State,
    pkt: &[u8],
    now: Instant,
    out: &mut Vec<Frame>,
) -> Option<Ip6Up> {
    let (trimmed, req) = match ip6_rcv_inner(net, pkt, out) {
        Ok(tcp) => return tcp,
        Err(Some((trimmed, req))) => (trimmed, req),
        Err(None) => return None,
    };
    out.extend(icmpv6::icmp6_send(net, icmp, icmp6, &pkt[..trimmed], req.icmp_type, req.code, req.info, now));
    None
}

/// `ip6_rcv()`'s body: `Err(Some((len, req)))` when the drop is answered with an ICMPv6 error
/// about the packet's first `len` bytes.
fn ip6_rcv_inner(net: &Netns, pkt: &[u8], out: &mut Vec<Frame>) -> Result<Option<Ip6Up>, Option<(usize, Icmp6Req)>> {
    net.mib.ip6_inc(Ipv6Mib::InReceives);
    net.mib.ip6_add(Ipv6Mib::InOctets, pkt.len() as u64);
    // !idev || idev->cnf.disable_ipv6: an interface without IPv6.
    let Some(me) = net.local_addr6() else {
        net.mib.ip6_inc(Ipv6Mib::InDiscards);
        net.mib.drop_reason(DropReason::NOT_SPECIFIED);
        return Err(None);
    };
    if pkt.len() < IPV6_HEADER_LEN || pkt[0] >> 4 != 6 {
        return Err(hdr_err(net));
    }
    let p = Ipv6Packet::new_unchecked(pkt);
    net.mib.ip6_inc(match p.traffic_class() & 3 {
        0 => Ipv6Mib::InNoECTPkts,
        1 => Ipv6Mib::InECT1Pkts,
        2 => Ipv6Mib::InECT0Pkts,
        _ => Ipv6Mib::InCEPkts,
    });
    let (saddr, daddr) = (p.src_addr(), p.dst_addr());
    // RFC 4291 §2.5.3: loopback on a wire (`!(dev->flags & IFF_LOOPBACK)`); §2.7: a multicast
    // source, a destination of scope 0, interface-local multicast from a wire; §2.5.5.2:
    // IPv4-mapped addresses.
    let wire = !net.iff_loopback.load(std::sync::atomic::Ordering::Relaxed);
    if (wire && (saddr.is_loopback() || daddr.is_loopback()))
        || saddr.is_multicast()
        || (daddr.is_multicast() && matches!(mc_scope(&daddr), 0 | 1))
        || is_v4mapped(&saddr)
        || is_v4mapped(&daddr)
    {
        return Err(hdr_err(net));
    }
    let plen = usize::from(p.payload_len());
    if plen == 0 && p.next_header() == nexthdr::HOP {
        // A jumbogram: Linux takes it only with a Jumbo Payload option on a GSO packet.
        return Err(hdr_err(net));
    }
    if IPV6_HEADER_LEN + plen > pkt.len() {
        net.mib.ip6_inc(Ipv6Mib::InTruncatedPkts);
        net.mib.drop_reason(DropReason::NOT_SPECIFIED);
        return Err(None);
    }
    // pskb_trim_rcsum(): the link layer's padding goes.
    let len = IPV6_HEADER_LEN + plen;
    let pkt = &pkt[..len];
    let payload = &pkt[IPV6_HEADER_LEN..];
    let first = p.next_header();
    // tlvprochopopt_lst[]: the router alert, two bytes of value (ipv6_hop_ra(): any other
    // length drops the packet).
    let known =
        |h: u8, o: &TlvOption<'_>| (h == nexthdr::HOP && o.kind == IPV6_TLV_ROUTERALERT).then_some(o.data.len() == 2);
    let mcast = daddr.is_multicast();
    // ip6_route_input(): ours, or a group we are in; anything else would be forwarded, and
    // forwarding is off (ip6_forward(): InAddrErrors). The hop-by-hop options were parsed
    // before (ip6_rcv_core()), with their errors.
    let local = daddr == me || (mcast && ipv6_chk_mcast_addr(net, &daddr));
    if !local {
        if first == nexthdr::HOP {
            // The hop-by-hop header alone, its next header read as "none".
            let Some(h) = payload.get(..2) else { return Err(hdr_err(net)) };
            let hl = (usize::from(h[1]) + 1) * 8;
            let Some(hbh) = payload.get(..hl) else { return Err(hdr_err(net)) };
            let mut hbh = hbh.to_vec();
            hbh[0] = nexthdr::NONE;
            match walk_ext_headers(&hbh, nexthdr::HOP, &known) {
                Ok(ExtWalk::NoNextHeader) => {}
                Ok(w) => return Err(ext_verdict(net, w, len, mcast)),
                Err(_) => return Err(hdr_err(net)),
            }
        }
        if mcast {
            // DEVIATION(linux): ip6_mc_input() frees a packet for a group the interface is not
            // in after counting it as InMcastPkts, which utcp does not keep: it counts it as
            // Ip6InDiscards.
            net.mib.ip6_inc(Ipv6Mib::InDiscards);
        } else {
            net.mib.ip6_inc(Ipv6Mib::InAddrErrors);
        }
        net.mib.drop_reason(DropReason::NOT_SPECIFIED);
        return Err(None);
    }
    let walk = match walk_ext_headers(payload, first, &known) {
        Ok(w) => w,
        Err(_) => return Err(hdr_err(net)),
    };
    match walk {
        ExtWalk::Upper { protocol: nexthdr::ICMP, offset, .. } => {
            // ip6_input_finish(): the handler returns 0, InDelivers.
            net.mib.ip6_inc(Ipv6Mib::InDelivers);
            let hdr = Ipv6Repr::parse(&Ipv6Packet::new_unchecked(pkt)).map_err(|_| hdr_err(net))?;
            Ok(icmpv6::icmpv6_rcv(net, &hdr, &payload[offset..], out).map(Ip6Up::TcpErr))
        }
        ExtWalk::Upper { protocol: nexthdr::TCP, offset, .. } => {
            if mcast {
                // tcp_v6_rcv(): "if (skb->pkt_type != PACKET_HOST) goto discard_it".
                net.mib.ip6_inc(Ipv6Mib::InDelivers);
                net.mib.drop_reason(DropReason::NOT_SPECIFIED);
                return Ok(None);
            }
            net.mib.ip6_inc(Ipv6Mib::InDelivers);
            Ok(Some(Ip6Up::Tcp(IPV6_HEADER_LEN + offset)))
        }
        ExtWalk::Upper { nhoff, .. } => {
            // No inet6_protos[] handler: InUnknownProtos, "unrecognized next header".
            net.mib.ip6_inc(Ipv6Mib::InUnknownProtos);
            net.mib.drop_reason(DropReason::NOT_SPECIFIED);
            Err(Some((len, Icmp6Req { icmp_type: ICMPV6_PARAMPROB, code: ICMPV6_UNK_NEXTHDR, info: nhoff as u32 })))
        }
        ExtWalk::NoNextHeader => {
            // nodata_protocol: dst_discard() returns 0, so the packet counts as delivered.
            net.mib.ip6_inc(Ipv6Mib::InDelivers);
            Ok(None)
        }
        w => Err(ext_verdict(net, w, len, mcast)),
    }
}

/// The counters and ICMPv6 error of an extension-header walk that did not reach an upper
/// layer.
fn ext_verdict(net: &Netns, w: ExtWalk, len: usize, mcast: bool) -> Option<(usize, Icmp6Req)> {
    let param =
        |code, pointer: usize| Some((len, Icmp6Req { icmp_type: ICMPV6_PARAMPROB, code, info: pointer as u32 }));
    match w {
        ExtWalk::MisplacedHopByHop { pointer } => {
            // inet6_protos[NEXTHDR_HOP] is empty: the header is an unknown protocol there.
            net.mib.ip6_inc(Ipv6Mib::InUnknownProtos);
            net.mib.drop_reason(DropReason::NOT_SPECIFIED);
            param(ICMPV6_UNK_NEXTHDR, pointer)
        }
        ExtWalk::UnknownOption { pointer, unicast_only } => {
            // ip6_tlvopt_unknown(): the error (not for a multicast destination when the
            // type's action is 11); ipv6_destopt_rcv() / ip6_rcv_core(): InHdrErrors.
            let e = hdr_err(net);
            if unicast_only && mcast {
                return e;
            }
            param(ICMPV6_UNK_OPTION, pointer)
        }
        ExtWalk::Routing { kind: RT_TYPE_RPL | RT_TYPE_SRH, .. } => {
            // ipv6_srh_rcv() / ipv6_rpl_srh_rcv() with the feature off: freed, uncounted.
            net.mib.drop_reason(DropReason::NOT_SPECIFIED);
            None
        }
        ExtWalk::Routing { pointer, .. } => {
            // ipv6_rthdr_rcv(): a multicast destination is an address error; otherwise type 0
            // (deprecated, RFC 5095) and unknown types with segments left: "erroneous header
            // field" at the type byte.
            if mcast {
                net.mib.ip6_inc(Ipv6Mib::InAddrErrors);
                net.mib.drop_reason(DropReason::NOT_SPECIFIED);
                return None;
            }
            hdr_err::<()>(net);
            param(ICMPV6_HDR_FIELD, pointer)
        }
        ExtWalk::Fragment { .. } => {
            net.mib.ip6_inc(Ipv6Mib::ReasmReqds);
            net.mib.ip6_inc(Ipv6Mib::ReasmFails);
            net.mib.drop_reason(DropReason::NOT_SPECIFIED);
            None
        }
        ExtWalk::Discard | ExtWalk::Upper { .. } | ExtWalk::NoNextHeader => hdr_err(net),
    }
}

/// Ip6InHdrErrors.
fn hdr_err<T>(net: &Netns) -> Option<T> {
    net.mib.ip6_inc(Ipv6Mib::InHdrErrors);
    net.mib.drop_reason(DropReason::NOT_SPECIFIED);
    None
}

/// `ipv6_skip_exthdr()`: from the first next header `nh` at `start` (an offset in `pkt`),
/// skips hop-by-hop, routing, destination options, AH and a first fragment's header; returns
/// the upper-layer protocol, its offset and the fragment offset field seen (0: none or the
/// first). `None` when a header is truncated or there is no next header.
pub(crate) fn ipv6_skip_exthdr(pkt: &[u8], mut start: usize, mut nh: u8) -> Option<(u8, usize, u16)> {
    let mut frag_off = 0u16;
    loop {
        match nh {
            nexthdr::HOP | nexthdr::ROUTING | nexthdr::DEST | nexthdr::AUTH => {
                let h = pkt.get(start..start + 2)?;
                let len = if nh == nexthdr::AUTH { (usize::from(h[1]) + 2) * 4 } else { (usize::from(h[1]) + 1) * 8 };
                nh = h[0];
                start += len;
            }
            nexthdr::FRAGMENT => {
                let h = pkt.get(start..start + 8)?;
                frag_off = u16::from_be_bytes([h[2], h[3]]) & !0x7;
                if frag_off != 0 {
                    return Some((nexthdr::FRAGMENT, start, frag_off));
                }
                nh = h[0];
                start += 8;
            }
            nexthdr::NONE => return None,
            p => return Some((p, start, frag_off)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> Netns {
        let n = Netns::new(std::net::Ipv4Addr::new(192, 0, 2, 2), 1500, 9);
        n.set_addr6("fd00::b".parse().unwrap(), 64);
        n
    }

    #[test]
    fn flowlabel_is_kept_hashed_or_off_as_auto_flowlabels_says() {
        let n = net();
        let k = FlowKeys { saddr: "fd00::a".parse().unwrap(), daddr: "fd00::b".parse().unwrap(), proto: 58, ports: 0 };
        let l = ip6_make_flowlabel(&n, 0, true, &k);
        assert_ne!(l, 0);
        assert_eq!(l & !IPV6_FLOWLABEL_MASK, 0);
        assert_eq!(ip6_make_flowlabel(&n, 0, true, &k), l, "the same flow, the same label");
        let k2 = FlowKeys { ports: 1, ..k };
        assert_ne!(ip6_make_flowlabel(&n, 0, true, &k2), l, "another flow, another label");
        assert_eq!(ip6_make_flowlabel(&n, 0xb812345, true, &k), 0x12345, "a label set is kept, masked");
        assert_eq!(ip6_make_flowlabel(&n, 0, false, &k), 0, "opted out");
        n.sysctl.set_by_name("net.ipv6.auto_flowlabels", "3").unwrap();
        assert_eq!(ip6_make_flowlabel(&n, 0, false, &k), l, "forced");
        n.sysctl.set_by_name("net.ipv6.auto_flowlabels", "0").unwrap();
        assert_eq!(ip6_make_flowlabel(&n, 0, true, &k), 0, "off");
        assert!(!ip6_default_np_autolabel(&n));
        assert!(n.sysctl.set_by_name("net.ipv6.auto_flowlabels", "4").is_err());
    }

    #[test]
    fn frames_carry_the_sysctl_hop_limit() {
        let n = net();
        let hdr = |hop_limit| Ipv6Repr {
            src_addr: "fd00::b".parse().unwrap(),
            dst_addr: "fd00::a".parse().unwrap(),
            next_header: nexthdr::ICMP,
            payload_len: 0,
            hop_limit,
            traffic_class: 0x20,
            flow_label: 0xf54321,
        };
        let f = ip6_build_frame(&n, hdr(ip6_dst_hoplimit(&n)), vec![1, 2, 3]).to_vec();
        let p = Ipv6Packet::new_checked(&f[..]).unwrap();
        assert_eq!(
            (p.hop_limit(), p.traffic_class(), p.flow_label(), p.payload()),
            (64, 0x20, 0x54321, &[1u8, 2, 3][..])
        );
        n.sysctl.set_by_name("net.ipv6.conf.all.hop_limit", "9").unwrap();
        let f = ip6_build_frame(&n, hdr(ip6_dst_hoplimit(&n)), vec![]).to_vec();
        assert_eq!(f[7], 9);
        assert!(n.sysctl.set_by_name("net.ipv6.conf.all.hop_limit", "0").is_err());
        assert_eq!(n.mib.ip6_get(Ipv6Mib::OutRequests), 2);
    }

    #[test]
    fn loopback_addresses_arrive_only_on_a_loopback_device() {
        let n = Netns::new(std::net::Ipv4Addr::LOCALHOST, 65536, 9);
        n.set_addr6(Ipv6Addr::LOCALHOST, 128);
        let hdr = Ipv6Repr {
            src_addr: Ipv6Addr::LOCALHOST,
            dst_addr: Ipv6Addr::LOCALHOST,
            next_header: nexthdr::NONE,
            payload_len: 0,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        };
        let f = ip6_build_frame(&n, hdr, vec![]).to_vec();
        let (icmp, icmp6) = (IcmpState::default(), Icmpv6State::default());
        let now = Instant::ZERO;
        let mut out = Vec::new();
        assert!(ip6_rcv(&n, &icmp, &icmp6, &f, now, &mut out).is_none());
        assert_eq!(n.mib.ip6_get(Ipv6Mib::InHdrErrors), 1, "::1 from a wire is a header error");
        n.iff_loopback.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(ip6_rcv(&n, &icmp, &icmp6, &f, now, &mut out).is_none());
        assert_eq!(n.mib.ip6_get(Ipv6Mib::InHdrErrors), 1, "IFF_LOOPBACK takes it");
        assert!(out.is_empty());
    }

    #[test]
    fn skip_exthdr_finds_the_upper_layer() {
        let mut p = vec![0u8; 40];
        p.extend_from_slice(&[nexthdr::FRAGMENT, 0, 1, 4, 0, 0, 0, 0]);
        p.extend_from_slice(&[nexthdr::ICMP, 0, 0, 0, 0, 0, 0, 0]);
        p.push(128);
        assert_eq!(ipv6_skip_exthdr(&p, 40, nexthdr::DEST), Some((nexthdr::ICMP, 56, 0)));
        p[50] = 1; // fragment offset 8 bytes
        assert_eq!(ipv6_skip_exthdr(&p, 40, nexthdr::DEST), Some((nexthdr::FRAGMENT, 48, 0x100)));
        assert_eq!(ipv6_skip_exthdr(&p[..44], 40, nexthdr::DEST), None, "truncated");
        assert_eq!(ipv6_skip_exthdr(&p, 40, nexthdr::NONE), None);
    }
}
