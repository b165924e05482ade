//! ICMPv4 (net/ipv4/icmp.c): `icmp_rcv` (echo requests answered by `icmp_echo`; destination
//! unreachable, time exceeded and parameter problem handed to the transport's error handler,
//! `tcp_v4_err`, by `icmp_unreach`), and `icmp_send` with Linux's rate limits
//! (`icmpv4_xrlim_allow`: a token bucket per destination, `net.ipv4.icmp_ratelimit` = 1000 ms
//! per message with a burst of 6; `icmp_global_allow`: 1000 messages/s, burst 50; both only for
//! the types in `net.ipv4.icmp_ratemask`, default 0x1818).
//!
//! DEVIATION(linux): the ICMP sysctls (`icmp_ratelimit`, `icmp_ratemask`, `icmp_msgs_per_sec`,
//! `icmp_msgs_burst`, `icmp_echo_ignore_all`) are fixed at their defaults (utcp has no such
//! sysctl to set, so none is accepted and ignored).

use crate::mib::{DropReason, IcmpMib, IpMib};
use crate::netns::Netns;
use crate::skb::Frame;
use crate::sync::Mutex;
use crate::time::Instant;
use crate::wire::{checksum, Ipv4Packet, Ipv4Repr};
use bytes::Bytes;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;

/// `IPPROTO_ICMP`.
pub(crate) const IPPROTO_ICMP: u8 = 1;
/// `ICMP_ECHOREPLY`.
pub(crate) const ICMP_ECHOREPLY: u8 = 0;
/// `ICMP_DEST_UNREACH`.
pub(crate) const ICMP_DEST_UNREACH: u8 = 3;
/// `ICMP_SOURCE_QUENCH`.
pub(crate) const ICMP_SOURCE_QUENCH: u8 = 4;
/// `ICMP_ECHO`.
pub(crate) const ICMP_ECHO: u8 = 8;
/// `ICMP_TIME_EXCEEDED`.
pub(crate) const ICMP_TIME_EXCEEDED: u8 = 11;
/// `ICMP_PARAMETERPROB`.
pub(crate) const ICMP_PARAMETERPROB: u8 = 12;
/// `ICMP_PROT_UNREACH` (code of `ICMP_DEST_UNREACH`).
pub(crate) const ICMP_PROT_UNREACH: u8 = 2;
/// `ICMP_PORT_UNREACH`.
#[cfg(test)]
pub(crate) const ICMP_PORT_UNREACH: u8 = 3;
/// `ICMP_FRAG_NEEDED`.
pub(crate) const ICMP_FRAG_NEEDED: u8 = 4;
/// `NR_ICMP_UNREACH`: the highest destination-unreachable code.
pub(crate) const NR_ICMP_UNREACH: u8 = 15;

/// `net.ipv4.icmp_ratelimit` default (ms).
const ICMP_RATELIMIT_MS: u64 = 1000;
/// `XRLIM_BURST_FACTOR`.
const XRLIM_BURST_FACTOR: u64 = 6;
/// `net.ipv4.icmp_ratemask` default: dest unreachable, source quench, time exceeded,
/// parameter problem.
const ICMP_RATEMASK: u32 = 0x1818;
/// `net.ipv4.icmp_msgs_per_sec` default.
const ICMP_MSGS_PER_SEC: u64 = 1000;
/// `net.ipv4.icmp_msgs_burst` default.
const ICMP_MSGS_BURST: u64 = 50;
/// Peers remembered by the per-destination limiter (inet_peer entries are reclaimed too).
const MAX_PEERS: usize = 4096;

/// `inet_peer_xrlim_allow()`: `dst`'s token bucket in ms (a burst of `XRLIM_BURST_FACTOR`
/// messages, one message costs `tmo`), for ICMP and ICMPv6 alike; peers idle for a minute are
/// forgotten when the table is full.
pub(super) fn inet_peer_xrlim_allow<K: std::hash::Hash + Eq>(
    peers: &mut HashMap<K, (u64, Instant)>,
    dst: K,
    now: Instant,
    tmo: u64,
) -> bool {
    if peers.len() >= MAX_PEERS && !peers.contains_key(&dst) {
        peers.retain(|_, (_, last)| now.saturating_since(*last).as_millis() < 60_000);
        if peers.len() >= MAX_PEERS {
            peers.clear();
        }
    }
    let max = XRLIM_BURST_FACTOR * tmo;
    let e = peers.entry(dst).or_insert((max, now));
    let tokens = (e.0 + now.saturating_since(e.1).as_millis() as u64).min(max);
    e.1 = now;
    if tokens >= tmo {
        e.0 = tokens - tmo;
        true
    } else {
        e.0 = tokens;
        false
    }
}

/// An ICMP error as the transport's error handler gets it: the ICMP type, code and `info`
/// (the next-hop MTU of a frag-needed), who sent it, and the quoted original datagram.
#[derive(Clone, Debug)]
pub(crate) struct IcmpErr {
    /// `icmp_hdr(skb)->type`.
    pub(crate) icmp_type: u8,
    /// `icmp_hdr(skb)->code`.
    pub(crate) code: u8,
    /// `info`: the MTU for ICMP_FRAG_NEEDED, else 0.
    pub(crate) info: u32,
    /// The ICMP message's source (the offender, `SO_EE_OFFENDER`). An ICMPv6 error
    /// (`tcp_v6_err`) has IPv6 addresses here, and ICMPv6's type and code numbers.
    pub(crate) from: std::net::IpAddr,
    /// The quoted IP header's source (us) and destination (the peer).
    pub(crate) saddr: std::net::IpAddr,
    /// See `saddr`.
    pub(crate) daddr: std::net::IpAddr,
    /// The hop limit of the IPv6 packet that carried the error (IPV6_MINHOPCOUNT); 255 for
    /// IPv4.
    pub(crate) hop_limit: u8,
    /// The quoted transport header and what follows it (at least 8 bytes).
    pub(crate) payload: Vec<u8>,
}

/// `icmp_err_convert[]`: the errno of each destination-unreachable code and whether it is
/// fatal.
pub(crate) const ICMP_ERR_CONVERT: [(crate::Errno, bool); 16] = {
    use crate::Errno::*;
    [
        (ENETUNREACH, true),  // ICMP_NET_UNREACH
        (EHOSTUNREACH, true), // ICMP_HOST_UNREACH
        (ENOPROTOOPT, true),  // ICMP_PROT_UNREACH
        (ECONNREFUSED, true), // ICMP_PORT_UNREACH
        (EMSGSIZE, false),    // ICMP_FRAG_NEEDED
        (EOPNOTSUPP, false),  // ICMP_SR_FAILED
        (ENETUNREACH, true),  // ICMP_NET_UNKNOWN
        (EHOSTDOWN, true),    // ICMP_HOST_UNKNOWN
        (ENONET, true),       // ICMP_HOST_ISOLATED
        (EACCES, true),       // ICMP_NET_ANO
        (EACCES, true),       // ICMP_HOST_ANO
        (ENETUNREACH, true),  // ICMP_NET_UNR_TOS
        (EHOSTUNREACH, true), // ICMP_HOST_UNR_TOS
        (EHOSTUNREACH, true), // ICMP_PKT_FILTERED
        (EHOSTUNREACH, true), // ICMP_PREC_VIOLATION
        (EHOSTUNREACH, true), // ICMP_PREC_CUTOFF
    ]
};

/// ICMP output state of one namespace: the rate limiters.
#[derive(Default)]
pub(crate) struct IcmpState {
    /// Per destination: (tokens in ms, last refill) — `inet_peer`'s `rate_tokens`/`rate_last`.
    peers: Mutex<HashMap<Ipv4Addr, (u64, Instant)>>,
    /// `net->ipv4.icmp_global`: (credit, last refill).
    global: Mutex<Option<(u64, Instant)>>,
}

impl IcmpState {
    /// `icmpv4_mask_allow()` + `icmp_global_allow()` + `icmpv4_xrlim_allow()`: may a message of
    /// `icmp_type` go to `dst` at `now`? Counts the refusals (OutRateLimitGlobal/Host).
    pub(crate) fn allow(&self, net: &Netns, icmp_type: u8, dst: Ipv4Addr, now: Instant) -> bool {
        if icmp_type > 18 || ICMP_RATEMASK & (1 << icmp_type) == 0 {
            return true;
        }
        if !self.global_allow(net, now) {
            return false;
        }
        self.peer_allow(net, dst, now)
    }

    /// `icmp_global_allow()`: the namespace's credit, refilled at `icmp_msgs_per_sec` and
    /// capped at `icmp_msgs_burst`, shared by ICMP and ICMPv6; a refusal counts
    /// IcmpOutRateLimitGlobal (ICMPv6's too, as `icmpv6_global_allow()` counts it).
    pub(crate) fn global_allow(&self, net: &Netns, now: Instant) -> bool {
        {
            // icmp_global_allow(): credit refilled at msgs_per_sec, capped at msgs_burst.
            let mut g = self.global.lock();
            let (mut credit, last) = g.unwrap_or((ICMP_MSGS_BURST, now));
            let delta_ms = now.saturating_since(last).as_millis() as u64;
            let mut stamp = last;
            if delta_ms >= 20 {
                credit = (credit + delta_ms * ICMP_MSGS_PER_SEC / 1000).min(ICMP_MSGS_BURST);
                stamp = now;
            }
            if credit == 0 {
                *g = Some((credit, stamp));
                net.mib.icmp_inc(IcmpMib::OutRateLimitGlobal);
                return false;
            }
            *g = Some((credit - 1, stamp));
        }
        true
    }

    fn peer_allow(&self, net: &Netns, dst: Ipv4Addr, now: Instant) -> bool {
        let ok = inet_peer_xrlim_allow(&mut self.peers.lock(), dst, now, ICMP_RATELIMIT_MS);
        if !ok {
            net.mib.icmp_inc(IcmpMib::OutRateLimitHost);
        }
        ok
    }
}

/// What `icmp_rcv` found for the caller to act on.
pub(crate) enum IcmpAction {
    /// Nothing more to do (answered, counted or dropped).
    Done,
    /// An error about one of our TCP segments: `tcp_v4_err`.
    TcpErr(IcmpErr),
}

/// Builds one ICMP message of `body` (type, code, rest-of-header and data; checksum filled in)
/// from `saddr` to `daddr`.
pub(crate) fn build_icmp(net: &Netns, saddr: Ipv4Addr, daddr: Ipv4Addr, tos: u8, mut body: Vec<u8>) -> Frame {
    body[2] = 0;
    body[3] = 0;
    let sum = !checksum(&body);
    body[2..4].copy_from_slice(&sum.to_be_bytes());
    let ip = Ipv4Repr {
        src_addr: saddr,
        dst_addr: daddr,
        protocol: IPPROTO_ICMP,
        payload_len: body.len(),
        ttl: net.sysctl.ip_default_ttl.get() as u8,
        ident: net.ip_id.fetch_add(1, Ordering::Relaxed) as u16,
        dont_frag: false,
        tos,
    };
    let mut f = Frame::with_header_len(20, Bytes::from(body));
    ip.emit(&mut Ipv4Packet::new_unchecked(f.head_mut()), true);
    net.mib.ip_inc(IpMib::OutRequests);
    net.mib.icmp_inc(IcmpMib::OutMsgs);
    f
}

/// `icmp_rcv()` for a datagram already checked by `ip_rcv` (`pkt`: the whole IP datagram,
/// header `ihl` bytes). Echo requests are answered into `out`.
pub(crate) fn icmp_rcv(net: &Netns, pkt: &[u8], ihl: usize, out: &mut Vec<Frame>) -> IcmpAction {
    net.mib.icmp_inc(IcmpMib::InMsgs);
    let ip = Ipv4Packet::new_unchecked(pkt);
    let (saddr, daddr) = (ip.src_addr(), ip.dst_addr());
    let icmp = &pkt[ihl..];
    if icmp.len() < 8 {
        net.mib.icmp_inc(IcmpMib::InErrors);
        net.mib.drop_reason(DropReason::PKT_TOO_SMALL);
        return IcmpAction::Done;
    }
    if checksum(icmp) != 0xffff {
        net.mib.icmp_inc(IcmpMib::InCsumErrors);
        net.mib.icmp_inc(IcmpMib::InErrors);
        return IcmpAction::Done;
    }
    match icmp[0] {
        ICMP_ECHO => {
            // icmp_echo(): the same identifier, sequence and data, back to the sender.
            net.mib.icmp_inc(IcmpMib::InEchos);
            let mut body = icmp.to_vec();
            body[0] = ICMP_ECHOREPLY;
            net.mib.icmp_inc(IcmpMib::OutEchoReps);
            out.push(build_icmp(net, daddr, saddr, ip.dscp_ecn(), body));
            IcmpAction::Done
        }
        ICMP_ECHOREPLY => {
            net.mib.icmp_inc(IcmpMib::InEchoReps);
            IcmpAction::Done
        }
        t @ (ICMP_DEST_UNREACH | ICMP_TIME_EXCEEDED | ICMP_PARAMETERPROB | ICMP_SOURCE_QUENCH) => {
            net.mib.icmp_inc(match t {
                ICMP_DEST_UNREACH => IcmpMib::InDestUnreachs,
                ICMP_TIME_EXCEEDED => IcmpMib::InTimeExcds,
                _ => IcmpMib::InParmProbs,
            });
            icmp_unreach(net, saddr, icmp)
        }
        _ => IcmpAction::Done,
    }
}

/// `icmp_unreach()`: checks the quoted datagram (an IPv4 header from us, at least 8 bytes of
/// its transport header) and hands TCP's to `tcp_v4_err`.
fn icmp_unreach(net: &Netns, from: Ipv4Addr, icmp: &[u8]) -> IcmpAction {
    let (t, code) = (icmp[0], icmp[1]);
    let inner = &icmp[8..];
    if inner.len() < 20 || inner[0] >> 4 != 4 {
        net.mib.icmp_inc(IcmpMib::InErrors);
        return IcmpAction::Done;
    }
    let ihl = ((inner[0] & 0xf) as usize) * 4;
    if ihl < 20 || inner.len() < ihl + 8 {
        net.mib.icmp_inc(IcmpMib::InErrors);
        return IcmpAction::Done;
    }
    let mut info = 0;
    if t == ICMP_DEST_UNREACH {
        if code > NR_ICMP_UNREACH {
            return IcmpAction::Done;
        }
        if code == ICMP_FRAG_NEEDED {
            info = u16::from_be_bytes([icmp[6], icmp[7]]) as u32;
            // net.ipv4.ip_no_pmtu_disc = 0: the MTU is used as it comes (RFC 1191).
        }
    }
    let q = Ipv4Packet::new_unchecked(inner);
    if q.src_addr() != net.local_addr() {
        return IcmpAction::Done;
    }
    if q.protocol() != crate::wire::IPPROTO_TCP {
        return IcmpAction::Done;
    }
    IcmpAction::TcpErr(IcmpErr {
        icmp_type: t,
        code,
        info,
        from: from.into(),
        saddr: q.src_addr().into(),
        daddr: q.dst_addr().into(),
        hop_limit: 255,
        payload: inner[ihl..].to_vec(),
    })
}

/// `__icmp_send()`: an ICMP error of `icmp_type`/`code` about datagram `orig` (whole, as
/// received), unless the rules forbid one (never about an ICMP error, a fragment other than
/// the first, or a broadcast/multicast source) or the rate limits refuse. The reply quotes as
/// much of `orig` as fits in 576 bytes.
pub(crate) fn icmp_send(
    net: &Netns,
    state: &IcmpState,
    orig: &[u8],
    icmp_type: u8,
    code: u8,
    info: u32,
    now: Instant,
) -> Option<Frame> {
    if orig.len() < 20 {
        return None;
    }
    let ip = Ipv4Packet::new_unchecked(orig);
    let ihl = ip.header_len() as usize;
    let src = ip.src_addr();
    if src.is_broadcast() || src.is_multicast() || src.is_unspecified() || ip.frag_offset() != 0 {
        return None;
    }
    if ip.protocol() == IPPROTO_ICMP {
        // Never an error about an error (only about queries).
        let t = orig.get(ihl).copied().unwrap_or(255);
        if !matches!(t, ICMP_ECHO | ICMP_ECHOREPLY | 13 | 14 | 15 | 16 | 17 | 18) {
            return None;
        }
    }
    if !state.allow(net, icmp_type, src, now) {
        return None;
    }
    let room = 576 - 20 - 8;
    let quoted = &orig[..orig.len().min(room).min(ip.total_len() as usize)];
    let mut body = vec![icmp_type, code, 0, 0];
    body.extend_from_slice(&info.to_be_bytes());
    body.extend_from_slice(quoted);
    if icmp_type == ICMP_DEST_UNREACH {
        net.mib.icmp_inc(IcmpMib::OutDestUnreachs);
    }
    // The error goes from the address the datagram was sent to, with its TOS (precedence).
    Some(build_icmp(net, ip.dst_addr(), src, ip.dscp_ecn() & 0xfc, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ratelimit_is_six_then_one_per_second_per_destination() {
        let net = Netns::new(Ipv4Addr::new(10, 0, 0, 2), 1500, 1);
        let st = IcmpState::default();
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::new(10, 0, 0, 3);
        let t0 = Instant(1_000_000_000);
        let n = (0..20).filter(|_| st.allow(&net, ICMP_DEST_UNREACH, a, t0)).count();
        assert_eq!(n, 6, "burst of XRLIM_BURST_FACTOR");
        assert_eq!(net.mib.icmp_get(IcmpMib::OutRateLimitHost), 14);
        // Another destination has its own bucket; echo replies are not limited at all.
        assert!(st.allow(&net, ICMP_DEST_UNREACH, b, t0));
        assert!((0..100).all(|_| st.allow(&net, ICMP_ECHOREPLY, a, t0)));
        // One more per icmp_ratelimit (1000 ms).
        let t1 = t0 + Duration::from_millis(999);
        assert!(!st.allow(&net, ICMP_DEST_UNREACH, a, t1));
        let t2 = t0 + Duration::from_millis(1000);
        assert!(st.allow(&net, ICMP_DEST_UNREACH, a, t2));
        assert!(!st.allow(&net, ICMP_DEST_UNREACH, a, t2));
    }

    #[test]
    fn global_limit_burst_of_50() {
        let net = Netns::new(Ipv4Addr::new(10, 0, 0, 2), 1500, 1);
        let st = IcmpState::default();
        let t0 = Instant(1_000_000_000);
        let n = (0..200u32).filter(|i| st.allow(&net, ICMP_TIME_EXCEEDED, Ipv4Addr::from(0x0a01_0000 + i), t0)).count();
        assert_eq!(n, 50);
        assert_eq!(net.mib.icmp_get(IcmpMib::OutRateLimitGlobal), 150);
    }

    #[test]
    fn echo_is_answered_and_bad_checksums_counted() {
        let net = Netns::new(Ipv4Addr::new(10, 0, 0, 2), 1500, 1);
        let peer = Netns::new(Ipv4Addr::new(10, 0, 0, 1), 1500, 2);
        let mut body = vec![ICMP_ECHO, 0, 0, 0, 0x12, 0x34, 0, 7];
        body.extend_from_slice(b"ping data");
        let req = build_icmp(&peer, peer.local_addr(), net.local_addr(), 0, body).to_vec();
        let mut out = Vec::new();
        assert!(matches!(icmp_rcv(&net, &req, 20, &mut out), IcmpAction::Done));
        let rep = out.pop().unwrap().to_vec();
        assert_eq!(&rep[12..16], &[10, 0, 0, 2]);
        assert_eq!(&rep[16..20], &[10, 0, 0, 1]);
        assert_eq!(rep[20], ICMP_ECHOREPLY);
        assert_eq!(&rep[24..], &req[24..]);
        assert_eq!(checksum(&rep[20..]), 0xffff);
        let mut bad = req.clone();
        bad[30] ^= 1;
        icmp_rcv(&net, &bad, 20, &mut out);
        assert!(out.is_empty());
        assert_eq!(net.mib.icmp_get(IcmpMib::InCsumErrors), 1);
        // No error about an error; a port-unreachable about a UDP datagram quotes it.
        let st = IcmpState::default();
        let err = icmp_send(&peer, &st, &rep, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0, Instant(1));
        assert!(err.is_some(), "echo replies are queries: an error about one is allowed");
        let unreach = err.unwrap().to_vec();
        assert!(icmp_send(&net, &st, &unreach, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0, Instant(1)).is_none());
    }
}
