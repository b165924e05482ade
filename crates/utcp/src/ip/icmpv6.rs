//! ICMPv6 (net/ipv6/icmp.c): `icmpv6_rcv` (echo requests answered by `icmpv6_echo_reply`;
//! errors checked and handed to the quoted packet's protocol, as `icmpv6_notify` does), and
//! `icmp6_send` with Linux's rules (never about an ICMPv6 error, never to an unspecified or
//! multicast source, to a multicast destination only for packet-too-big and some unknown
//! options; as much of the packet quoted as fits in the minimum MTU, 1280 bytes) and rate
//! limits: the types of `net.ipv6.icmp.ratemask` (default `0-1,3-127`: every error but
//! packet-too-big; echo replies are never limited) take the namespace's global credit shared
//! with ICMP (`icmp_global_allow`) and a per-destination token bucket (`icmpv6_xrlim_allow`:
//! `net.ipv6.icmp.ratelimit` = 1000 ms per message, shorter for wider prefixes, a burst of 6).
//!
//! DEVIATION(linux): `net.ipv6.icmp.ratemask`, `echo_ignore_all`, `echo_ignore_multicast`,
//! `echo_ignore_anycast` and `net.ipv6.flowlabel_reflect` are fixed at their defaults (no such
//! knob is accepted and ignored).

use super::icmp::{IcmpErr, IcmpState};
use super::ipv6::{
    ip6_build_frame, ip6_default_np_autolabel, ip6_dst_hoplimit, ip6_make_flowlabel, ipv6_skip_exthdr, FlowKeys,
};
use crate::mib::Icmp6Mib;
use crate::netns::Netns;
use crate::skb::Frame;
use crate::sync::Mutex;
use crate::time::Instant;
use crate::wire::icmpv6::*;
use crate::wire::ipv6::nexthdr;
use crate::wire::{Icmpv6Packet, Ipv6Repr, IPV6_HEADER_LEN};
use std::collections::HashMap;
use std::net::Ipv6Addr;

/// `IPV6_MIN_MTU`.
pub(crate) const IPV6_MIN_MTU: usize = 1280;

/// `icmpv6_mask_allow()` with the default `net.ipv6.icmp.ratemask` (`0-1,3-127`): whether
/// messages of `t` are rate limited.
pub(crate) fn icmpv6_mask_limited(t: u8) -> bool {
    t <= 127 && t != ICMPV6_PKT_TOOBIG
}

/// ICMPv6 output state of one namespace: the per-destination limiter (`inet_peer`'s
/// `rate_tokens`/`rate_last` of `net->ipv6.peers`).
#[derive(Default)]
pub(crate) struct Icmpv6State {
    peers: Mutex<HashMap<Ipv6Addr, (u64, Instant)>>,
}

impl Icmpv6State {
    /// `icmpv6_xrlim_allow()`'s `inet_peer_xrlim_allow()` for `dst`: one message costs
    /// `net.ipv6.icmp.ratelimit` ms, halved per 32 bits of prefix the route to `dst` does not
    /// fix (`tmo >>= (128 - plen) >> 5`: the on-link prefix, or the default route's 0). A
    /// refusal counts Icmp6OutRateLimitHost.
    pub(crate) fn peer_allow(&self, net: &Netns, dst: Ipv6Addr, now: Instant) -> bool {
        let plen = match *net.addr6.read() {
            Some((me, len)) if same_prefix(&me, &dst, len) => len,
            _ => 0,
        };
        let tmo = (net.sysctl.ratelimit.get().max(0) as u64) >> ((128 - u32::from(plen)) >> 5);
        let ok = super::icmp::inet_peer_xrlim_allow(&mut self.peers.lock(), dst, now, tmo);
        if !ok {
            net.mib.icmp6_inc(Icmp6Mib::OutRateLimitHost);
        }
        ok
    }
}

fn same_prefix(a: &Ipv6Addr, b: &Ipv6Addr, len: u8) -> bool {
    let (a, b) = (u128::from(*a), u128::from(*b));
    let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len.min(128))) };
    a & mask == b & mask
}

/// The flow keys of an ICMPv6 message (`fl6_icmp_type`/`fl6_icmp_code` in the ports word).
fn icmp_keys(saddr: Ipv6Addr, daddr: Ipv6Addr, t: u8, code: u8) -> FlowKeys {
    FlowKeys { saddr, daddr, proto: nexthdr::ICMP, ports: (u32::from(t) << 8) | u32::from(code) }
}

/// One ICMPv6 message `repr` from `saddr` to `daddr` in a frame (`icmpv6_push_pending_frames`:
/// checksum filled in), with its traffic class and flow label (made from `flowinfo`);
/// counts Icmp6OutMsgs and the type's counter.
fn icmpv6_xmit(
    net: &Netns,
    saddr: Ipv6Addr,
    daddr: Ipv6Addr,
    tclass: u8,
    flowinfo: u32,
    repr: &Icmpv6Repr<'_>,
) -> Frame {
    let body = repr.to_bytes(&saddr, &daddr);
    let (t, code) = (body[0], body[1]);
    let label = ip6_make_flowlabel(net, flowinfo, ip6_default_np_autolabel(net), &icmp_keys(saddr, daddr, t, code));
    net.mib.icmp6_inc(Icmp6Mib::OutMsgs);
    if let Some(c) = match t {
        ICMPV6_DEST_UNREACH => Some(Icmp6Mib::OutDestUnreachs),
        ICMPV6_PARAMPROB => Some(Icmp6Mib::OutParmProblems),
        ICMPV6_ECHO_REQUEST => Some(Icmp6Mib::OutEchos),
        ICMPV6_ECHO_REPLY => Some(Icmp6Mib::OutEchoReplies),
        _ => None,
    } {
        net.mib.icmp6_inc(c);
    }
    let hdr = Ipv6Repr {
        src_addr: saddr,
        dst_addr: daddr,
        next_header: nexthdr::ICMP,
        payload_len: body.len(),
        hop_limit: ip6_dst_hoplimit(net),
        traffic_class: tclass,
        flow_label: label,
    };
    ip6_build_frame(net, hdr, body)
}

/// An echo request from the interface's address to `daddr` (what `ping -6` sends through a
/// ping socket); `None` when the interface has no IPv6 address.
pub(crate) fn icmpv6_echo_request(net: &Netns, daddr: Ipv6Addr, ident: u16, seq: u16, data: &[u8]) -> Option<Frame> {
    let saddr = net.local_addr6()?;
    Some(icmpv6_xmit(net, saddr, daddr, 0, 0, &Icmpv6Repr::EchoRequest { ident, seq, data }))
}

/// `icmpv6_rcv()` for an ICMPv6 message `msg` (its bytes from the ICMPv6 header to the end of
/// the payload) that came in the packet whose header is `hdr`. Answers go into `out`.
/// An error quoting one of our TCP segments is returned for `tcp_v6_err`.
pub(crate) fn icmpv6_rcv(net: &Netns, hdr: &Ipv6Repr, msg: &[u8], out: &mut Vec<Frame>) -> Option<IcmpErr> {
    net.mib.icmp6_inc(Icmp6Mib::InMsgs);
    let p = Icmpv6Packet::new_unchecked(msg);
    if msg.len() < ICMPV6_HEADER_LEN {
        // skb_checksum_validate() over what there is, then pskb_pull() of the header.
        if msg.len() >= 4 && !p.verify_checksum(&hdr.src_addr, &hdr.dst_addr) {
            net.mib.icmp6_inc(Icmp6Mib::InCsumErrors);
        }
        net.mib.icmp6_inc(Icmp6Mib::InErrors);
        return None;
    }
    if !p.verify_checksum(&hdr.src_addr, &hdr.dst_addr) {
        net.mib.icmp6_inc(Icmp6Mib::InCsumErrors);
        net.mib.icmp6_inc(Icmp6Mib::InErrors);
        return None;
    }
    let t = p.msg_type();
    match t {
        ICMPV6_ECHO_REQUEST => {
            net.mib.icmp6_inc(Icmp6Mib::InEchos);
            out.extend(icmpv6_echo_reply(net, hdr, &p));
        }
        ICMPV6_ECHO_REPLY => {
            // ping_rcv(): no ping socket to take it.
            net.mib.icmp6_inc(Icmp6Mib::InEchoReplies);
        }
        ICMPV6_DEST_UNREACH | ICMPV6_PKT_TOOBIG | ICMPV6_TIME_EXCEED | ICMPV6_PARAMPROB => {
            net.mib.icmp6_inc(match t {
                ICMPV6_DEST_UNREACH => Icmp6Mib::InDestUnreachs,
                ICMPV6_PKT_TOOBIG => Icmp6Mib::InPktTooBigs,
                ICMPV6_TIME_EXCEED => Icmp6Mib::InTimeExcds,
                _ => Icmp6Mib::InParmProblems,
            });
            return icmpv6_notify(net, hdr, msg);
        }
        // Informational messages utcp does not handle (neighbour discovery, MLD) are ignored;
        // an error of an unknown type still goes to the quoted packet's protocol.
        t if t & ICMPV6_INFOMSG_MASK != 0 => {}
        _ => return icmpv6_notify(net, hdr, msg),
    }
    None
}

/// `icmpv6_notify()`: the quoted packet must show its IPv6 header and 8 bytes of the
/// transport header after its extension headers (Icmp6InErrors otherwise); the transport's
/// error handler takes it: TCP's (`tcp_v6_err`) gets the returned error, for a segment we
/// sent (its source ours).
fn icmpv6_notify(net: &Netns, hdr: &Ipv6Repr, m: &[u8]) -> Option<IcmpErr> {
    let quoted = &m[ICMPV6_HEADER_LEN..];
    if quoted.len() < IPV6_HEADER_LEN {
        net.mib.icmp6_inc(Icmp6Mib::InErrors);
        return None;
    }
    let (proto, off, _) = ipv6_skip_exthdr(quoted, IPV6_HEADER_LEN, quoted[6])?;
    if quoted.len() < off + 8 {
        net.mib.icmp6_inc(Icmp6Mib::InErrors);
        return None;
    }
    if proto != nexthdr::TCP {
        return None;
    }
    let q = crate::wire::Ipv6Packet::new_unchecked(quoted);
    Some(IcmpErr {
        icmp_type: m[0],
        code: m[1],
        info: u32::from_be_bytes([m[4], m[5], m[6], m[7]]),
        from: hdr.src_addr.into(),
        saddr: q.src_addr().into(),
        daddr: q.dst_addr().into(),
        hop_limit: hdr.hop_limit,
        payload: quoted[off..].to_vec(),
    })
}

/// `icmpv6_echo_reply()`: the same identifier, sequence and data back to the sender, from the
/// address the request went to (the interface's for a multicast one), with the request's
/// traffic class. The request's flow label is reflected only with
/// `net.ipv6.flowlabel_reflect` bit 2 (default 0): the reply gets the automatic label of its
/// own flow (checked on Linux 6.18 over lo).
fn icmpv6_echo_reply(net: &Netns, hdr: &Ipv6Repr, req: &Icmpv6Packet<&[u8]>) -> Option<Frame> {
    let saddr = if hdr.dst_addr.is_multicast() { net.local_addr6()? } else { hdr.dst_addr };
    let reply = Icmpv6Repr::EchoReply { ident: req.echo_ident(), seq: req.echo_seq(), data: req.body() };
    Some(icmpv6_xmit(net, saddr, hdr.src_addr, hdr.traffic_class, 0, &reply))
}

/// `opt_unrec()`: whether the option at `offset` of `pkt` has the action "discard and send an
/// ICMP error even for a multicast destination" (10); true when the offset is outside.
fn opt_unrec(pkt: &[u8], offset: u32) -> bool {
    pkt.get(offset as usize).is_none_or(|op| op & 0xc0 == 0x80)
}

/// `is_ineligible()`: a packet whose upper layer is an ICMPv6 error (or whose ICMPv6 type is
/// not there to read, unless it is a later fragment) gets no error.
fn is_ineligible(pkt: &[u8]) -> bool {
    let Some((proto, off, frag_off)) = ipv6_skip_exthdr(pkt, IPV6_HEADER_LEN, pkt[6]) else { return false };
    if proto != nexthdr::ICMP {
        return false;
    }
    match pkt.get(off) {
        None => frag_off == 0,
        Some(t) => t & ICMPV6_INFOMSG_MASK == 0,
    }
}

/// `icmp6_send()`: an ICMPv6 error of `icmp_type`/`code` with `info` (the MTU, or the
/// parameter problem's pointer) about `orig` (the packet as received, trimmed to its payload
/// length), unless the rules forbid it or the rate limits refuse. It goes from the address the
/// packet was sent to when that is ours (else from the interface's), quoting as much of it
/// as fits in 1280 bytes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn icmp6_send(
    net: &Netns,
    icmp: &IcmpState,
    state: &Icmpv6State,
    orig: &[u8],
    icmp_type: u8,
    code: u8,
    info: u32,
    now: Instant,
) -> Option<Frame> {
    if orig.len() < IPV6_HEADER_LEN {
        return None;
    }
    let p = crate::wire::Ipv6Packet::new_unchecked(orig);
    let (osrc, odst) = (p.src_addr(), p.dst_addr());
    let me = net.local_addr6()?;
    let mut saddr = if odst == me { odst } else { me };
    if odst.is_multicast() {
        let unk_opt = icmp_type == ICMPV6_PARAMPROB && code == ICMPV6_UNK_OPTION && opt_unrec(orig, info);
        if icmp_type != ICMPV6_PKT_TOOBIG && !unk_opt {
            return None;
        }
        saddr = me;
    }
    // The source must be a unicast address (never unspecified or multicast).
    if osrc.is_unspecified() || osrc.is_multicast() {
        return None;
    }
    // Never an error about an error.
    if is_ineligible(orig) {
        return None;
    }
    // icmpv6_global_allow(), then icmpv6_xrlim_allow() for the limited types.
    if icmpv6_mask_limited(icmp_type) && (!icmp.global_allow(net, now) || !state.peer_allow(net, osrc, now)) {
        return None;
    }
    let room = IPV6_MIN_MTU - IPV6_HEADER_LEN - ICMPV6_HEADER_LEN;
    let quoted = &orig[..orig.len().min(room)];
    let repr = match icmp_type {
        ICMPV6_PARAMPROB => Icmpv6Repr::ParamProblem { code, pointer: info, quoted },
        ICMPV6_PKT_TOOBIG => Icmpv6Repr::PktTooBig { mtu: info, quoted },
        ICMPV6_DEST_UNREACH => Icmpv6Repr::DstUnreachable { code, quoted },
        ICMPV6_TIME_EXCEED => Icmpv6Repr::TimeExceeded { code, quoted },
        msg_type => Icmpv6Repr::Other { msg_type, code, data_word: info, body: quoted },
    };
    Some(icmpv6_xmit(net, saddr, osrc, 0, 0, &repr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn net(addr: &str, plen: u8) -> Netns {
        let n = Netns::new(std::net::Ipv4Addr::new(192, 0, 2, 2), 1500, 3);
        n.set_addr6(addr.parse().unwrap(), plen);
        n
    }

    #[test]
    fn ratemask_spares_echo_replies_and_packet_too_big() {
        assert!(icmpv6_mask_limited(ICMPV6_DEST_UNREACH));
        assert!(icmpv6_mask_limited(ICMPV6_PARAMPROB));
        assert!(icmpv6_mask_limited(0));
        assert!(!icmpv6_mask_limited(ICMPV6_PKT_TOOBIG));
        assert!(!icmpv6_mask_limited(ICMPV6_ECHO_REPLY));
        assert!(!icmpv6_mask_limited(ICMPV6_ECHO_REQUEST));
    }

    #[test]
    fn peer_bucket_is_six_messages_then_one_per_timeout_scaled_by_prefix() {
        let n = net("fd00::b", 64);
        let st = Icmpv6State::default();
        let t0 = Instant(1_000_000_000);
        let onlink: Ipv6Addr = "fd00::a".parse().unwrap();
        assert_eq!((0..20).filter(|_| st.peer_allow(&n, onlink, t0)).count(), 6);
        assert_eq!(n.mib.icmp6_get(Icmp6Mib::OutRateLimitHost), 14);
        // A /64: 1000 ms >> 2 = 250 ms per message.
        assert!(!st.peer_allow(&n, onlink, t0 + Duration::from_millis(249)));
        assert!(st.peer_allow(&n, onlink, t0 + Duration::from_millis(250)));
        // Off-link (the default route, /0): 1000 >> 4 = 62 ms.
        let far: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!((0..20).filter(|_| st.peer_allow(&n, far, t0)).count(), 6);
        assert!(!st.peer_allow(&n, far, t0 + Duration::from_millis(61)));
        assert!(st.peer_allow(&n, far, t0 + Duration::from_millis(123)));
        // net.ipv6.icmp.ratelimit = 0: no limit.
        n.sysctl.set_by_name("net.ipv6.icmp.ratelimit", "0").unwrap();
        assert!((0..50).all(|_| st.peer_allow(&n, onlink, t0)));
    }
}
