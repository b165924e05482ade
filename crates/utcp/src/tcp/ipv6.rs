//! IPv6-specific TCP entry points (net/ipv6/tcp_ipv6.c): `tcp_v6_rcv`, `tcp_v6_do_rcv`,
//! `tcp_v6_connect`, the stateless replies of `tcp_v6_send_response` (RST, a request's ACK),
//! and the family dispatch Linux does through `icsk->icsk_af_ops` (`ipv6_specific`, or
//! `ipv6_mapped` for an AF_INET6 socket talking to an IPv4 peer): the network header length
//! and the transmit function. The state machine is the one `tcp_v4_do_rcv` runs.
//!
//! A connection's addresses are those of the family on the wire (`TcpSock::saddr` is an
//! IPv4 address on an IPv4-mapped connection); `TcpSock::family` is the socket's own, which
//! the socket calls present addresses in (`::ffff:a.b.c.d`).

use super::{Ctx, TcpSock};
use crate::errno::{Errno, SysResult};
use crate::ip::ipv6::{build_tcp6_frame, ip6_make_flowlabel, ip6_make_flowlabel_hash, FlowKeys, Ip6Tx};
use crate::ip::ipv6_sockglue::IPV6_MIN_MTU;
use crate::netns::Netns;
use crate::skb::Frame;
use crate::socket::sock::{InSeg, OwnedSock, Sock};
use crate::socket::sock_host::SockHost;
use crate::wire::TcpRepr;
use bytes::Bytes;
use std::net::{IpAddr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::sync::Arc;

/// `IPV6_MIN_MTU - sizeof(struct tcphdr) - sizeof(struct ipv6hdr)`: an IPv6 peer's MSS when it
/// announces none (`tcp_v6_connect`, `tcp_request_sock_ipv6_ops.mss_clamp`).
pub(crate) const TCP_V6_MSS_CLAMP: u32 = IPV6_MIN_MTU - 60;

/// `INET_ECN_MASK`.
const INET_ECN_MASK: u8 = 3;

/// `icsk_af_ops->net_header_len`: 40 bytes for IPv6 (`ipv6_specific`), 20 for IPv4 (an
/// IPv4-mapped connection uses `ipv6_mapped`, whose header is IPv4's).
pub(crate) fn net_header_len(daddr: &IpAddr) -> u32 {
    if daddr.is_ipv6() {
        40
    } else {
        20
    }
}

/// An address as IPv6 (an IPv4 one IPv4-mapped).
fn v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V6(a) => a,
        IpAddr::V4(a) => a.to_ipv6_mapped(),
    }
}

/// `icsk_af_ops->queue_xmit` for a segment of `tp`: `ip_queue_xmit()` with the socket's IPv4
/// options, or `inet6_csk_xmit()` → `ip6_xmit()` with its traffic class, hop limit and the
/// flow label `ip6_make_flowlabel()` makes of `sk_txhash`.
pub(crate) fn tcp_xmit_frame(net: &Netns, tp: &TcpSock, repr: &TcpRepr<'_>, payload: Bytes, gso_size: u32) -> Frame {
    match (tp.saddr, tp.daddr) {
        (IpAddr::V4(s), IpAddr::V4(d)) => crate::ip::build_tcp_frame_gso(net, s, d, repr, payload, &tp.inet, gso_size),
        (s, d) => inet6_csk_xmit(net, s, d, &tp.inet6, tp.txhash, repr, payload, gso_size),
    }
}

/// `inet6_csk_xmit()` → `ip6_xmit()`: `np`'s traffic class and hop limit, the flow label
/// made of `txhash` (the socket's, or a request's for its SYN-ACK).
#[allow(clippy::too_many_arguments)]
pub(crate) fn inet6_csk_xmit(
    net: &Netns,
    saddr: IpAddr,
    daddr: IpAddr,
    np: &crate::ip::ipv6_sockglue::Ipv6Pinfo,
    txhash: u32,
    repr: &TcpRepr<'_>,
    payload: Bytes,
    gso_size: u32,
) -> Frame {
    let tx = Ip6Tx {
        tclass: np.tclass,
        hop_limit: np.hoplimit(net),
        flow_label: ip6_make_flowlabel_hash(net, np.flow_label, np.autolabel(net), txhash),
    };
    build_tcp6_frame(net, v6(saddr), v6(daddr), repr, payload, tx, gso_size)
}

/// `tcp_v6_send_response()`'s frame for a reply without a full socket (a RST, a request's
/// ACK) from `laddr` to `raddr`: the answered segment's traffic class without its ECN bits,
/// the route's hop limit, and a flow label made of `txhash` (a request's) or, without one,
/// of the flow (`skb_get_hash_flowi6()`).
pub(crate) fn tcp_v6_reply_frame(
    net: &Netns,
    laddr: Ipv6Addr,
    raddr: Ipv6Addr,
    repr: &TcpRepr<'_>,
    tclass: u8,
    txhash: u32,
) -> Frame {
    let autolabel = crate::ip::ipv6::ip6_default_np_autolabel(net);
    let flow_label = if txhash != 0 {
        ip6_make_flowlabel_hash(net, 0, autolabel, txhash)
    } else {
        let ports = (u32::from(repr.src_port) << 16) | u32::from(repr.dst_port);
        let keys = FlowKeys { saddr: laddr, daddr: raddr, proto: crate::wire::ipv6::nexthdr::TCP, ports };
        ip6_make_flowlabel(net, 0, autolabel, &keys)
    };
    let tx = Ip6Tx { tclass: tclass & !INET_ECN_MASK, hop_limit: crate::ip::ipv6::ip6_dst_hoplimit(net), flow_label };
    build_tcp6_frame(net, laddr, raddr, repr, Bytes::new(), tx, 0)
}

/// `tcp_v6_send_reset()` for a segment no socket takes: the RST frame, `None` for a RST.
pub(crate) fn tcp_v6_reset_frame(net: &Netns, inseg: &InSeg) -> Option<Frame> {
    let (IpAddr::V6(raddr), IpAddr::V6(laddr)) = (inseg.saddr, inseg.daddr) else { return None };
    let r = super::ipv4::reset_repr(&inseg.seg, inseg.sport, inseg.dport)?;
    net.mib.tcp_inc(crate::mib::TcpMib::OutRsts);
    net.mib.tcp_inc(crate::mib::TcpMib::OutSegs);
    Some(tcp_v6_reply_frame(net, laddr, raddr, &r, inseg.seg.rx.tclass, 0))
}

/// `tcp_v6_do_rcv()`: an IPv4 segment (an IPv4-mapped connection, or a dual-stack listener's)
/// is `tcp_v4_do_rcv()`'s; an IPv6 one arriving with a hop limit below IPV6_MINHOPCOUNT is
/// dropped (TCPMinTTLDrop, as `tcp_v6_rcv()` does), the others go through the same state
/// machine. Returns true when a RST must answer the segment.
pub(crate) fn tcp_v6_do_rcv(tp: &mut TcpSock, ctx: &mut Ctx<'_>, inseg: InSeg) -> bool {
    if !inseg.daddr.is_ipv6() {
        return super::ipv4::tcp_v4_do_rcv(tp, ctx, inseg);
    }
    if inseg.seg.rx.ttl < tp.inet6.min_hopcount {
        ctx.inc(crate::mib::LinuxMib::TCPMinTTLDrop);
        ctx.net.mib.drop_reason(crate::mib::DropReason::TCP_MINTTL);
        return false;
    }
    super::ipv4::tcp_do_rcv(tp, ctx, inseg)
}

/// `sk->sk_backlog_rcv`: the `do_rcv` of the socket's family.
#[inline]
pub(crate) fn sk_backlog_rcv(tp: &mut TcpSock, ctx: &mut Ctx<'_>, inseg: InSeg) -> bool {
    if tp.family == crate::uapi::AF_INET6 {
        tcp_v6_do_rcv(tp, ctx, inseg)
    } else {
        super::ipv4::tcp_v4_do_rcv(tp, ctx, inseg)
    }
}

/// `tcp_v6_rcv()`: finds the socket in `host`'s tables (the same lookup as `tcp_v4_rcv`'s,
/// over IPv6 addresses; only AF_INET6 listeners take IPv6 segments) and hands it over; none
/// answers with a RST.
pub(crate) fn tcp_v6_rcv(host: &dyn SockHost, inseg: InSeg, napi_id: u32) {
    super::ipv4::tcp_v4_rcv(host, inseg, napi_id)
}

/// `tcp_v6_connect()` for an AF_INET6 socket: `::` is the loopback address, multicast is
/// ENETUNREACH, a link-local destination needs a device (its scope id, or the bound one); an
/// IPv4-mapped destination is `tcp_v4_connect()`'s (ENETUNREACH under IPV6_V6ONLY). The
/// source is the interface's IPv6 address (`ipv6_dev_get_saddr()`; none: ENETUNREACH, no
/// route), the ISN `secure_tcpv6_seq()`, the port from `secure_ipv6_port_ephemeral()`.
pub(crate) fn tcp_v6_connect(sk: &Arc<Sock>, g: &mut OwnedSock<'_>, addr: SocketAddrV6) -> SysResult<()> {
    let mut daddr = *addr.ip();
    if daddr.is_unspecified() {
        daddr = if g.tp().saddr.is_ipv4() && !g.tp().saddr.is_unspecified() {
            std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped()
        } else {
            Ipv6Addr::LOCALHOST
        };
    }
    if daddr.is_multicast() {
        return Err(Errno::ENETUNREACH);
    }
    if daddr.is_unicast_link_local() {
        let tp = g.tp_mut();
        if addr.scope_id() != 0 {
            // sk_dev_equal_l3scope(): a socket bound to a device connects through it only.
            if tp.bound_dev_if != 0 && tp.bound_dev_if != addr.scope_id() as i32 {
                return Err(Errno::EINVAL);
            }
            if sk.net().netdev_get_name(addr.scope_id() as i32).is_none() {
                return Err(Errno::ENODEV);
            }
            tp.bound_dev_if = addr.scope_id() as i32;
            sk.bound_dev_if.store(tp.bound_dev_if, std::sync::atomic::Ordering::Relaxed);
        }
        if tp.bound_dev_if == 0 {
            return Err(Errno::EINVAL);
        }
    }
    if let Some(v4) = crate::uapi::v4mapped_to_v4(&daddr) {
        if g.tp().inet6.ipv6only {
            return Err(Errno::ENETUNREACH);
        }
        return super::ipv4::tcp_v4_connect(sk, g, SocketAddrV4::new(v4, addr.port()));
    }
    let Some(saddr) = sk.net().local_addr6() else { return Err(Errno::ENETUNREACH) };
    let held = sk.host.port_held(sk.id).is_some();
    let tp = g.tp_mut();
    if tp.bound_dev_if != 0 && sk.net().netdev_get_name(tp.bound_dev_if).is_none() {
        return Err(Errno::ENODEV);
    }
    // "if (!ipv6_addr_any(&sk->sk_v6_rcv_saddr)) saddr = &sk->sk_v6_rcv_saddr": a bound
    // address is the one interface address here.
    tp.saddr = IpAddr::V6(saddr);
    tp.daddr = IpAddr::V6(daddr);
    tp.dport = addr.port();
    // tp->rx_opt.mss_clamp = IPV6_MIN_MTU - sizeof(struct tcphdr) - sizeof(struct ipv6hdr),
    // until the SYN-ACK tells the peer's.
    tp.mss_clamp = TCP_V6_MSS_CLAMP;
    let taken = if tp.bound && held {
        let key = (tp.saddr, tp.sport, tp.daddr, tp.dport);
        sk.host.__inet_check_established(key, sk, false).ok_or(Errno::EADDRNOTAVAIL)?
    } else {
        let (port, taken) = sk.host.hash_connect(sk, tp.saddr, tp.daddr, tp.dport, tp.inet.local_port_range)?;
        tp.sport = port;
        tp.bound = true;
        taken
    };
    super::ipv4::tcp_connect_finish(sk, g, taken);
    Ok(())
}

/// `icmpv6_err_convert()`: the errno of an ICMPv6 error and whether it is fatal
/// (`tab_unreach[]` for destination-unreachable codes; EPROTO for anything else).
pub fn icmpv6_err_convert(icmp_type: u8, code: u8) -> (Errno, bool) {
    use crate::wire::icmpv6::*;
    const TAB_UNREACH: [(Errno, bool); 7] = [
        (Errno::ENETUNREACH, false),  // NOROUTE
        (Errno::EACCES, true),        // ADM_PROHIBITED
        (Errno::EHOSTUNREACH, false), // was NOT_NEIGHBOUR, reserved
        (Errno::EHOSTUNREACH, false), // ADDR_UNREACH
        (Errno::ECONNREFUSED, true),  // PORT_UNREACH
        (Errno::EACCES, true),        // POLICY_FAIL
        (Errno::EACCES, true),        // REJECT_ROUTE
    ];
    match icmp_type {
        ICMPV6_DEST_UNREACH => TAB_UNREACH.get(code as usize).copied().unwrap_or((Errno::EPROTO, true)),
        ICMPV6_PKT_TOOBIG => (Errno::EMSGSIZE, false),
        ICMPV6_PARAMPROB => (Errno::EPROTO, true),
        ICMPV6_TIME_EXCEED => (Errno::EHOSTUNREACH, false),
        _ => (Errno::EPROTO, false),
    }
}

impl TcpSock {
    /// `tcp_v6_err()` once the socket is found: `e` is an ICMPv6 error quoting one of our
    /// segments. `owned`: a process held the socket (errors are then soft; a packet-too-big
    /// is handled when it releases the socket, `TCP_MTU_REDUCED_DEFERRED`).
    pub(crate) fn tcp_v6_err(&mut self, ctx: &mut Ctx<'_>, e: &crate::ip::icmp::IcmpErr, owned: bool) {
        use crate::wire::icmpv6::*;
        if e.payload.len() < 8 || matches!(self.state, super::TcpState::Close | super::TcpState::TimeWait) {
            return;
        }
        if e.hop_limit < self.inet6.min_hopcount {
            ctx.inc(crate::mib::LinuxMib::TCPMinTTLDrop);
            return;
        }
        let seq = crate::seq::SeqNum(u32::from_be_bytes([e.payload[4], e.payload[5], e.payload[6], e.payload[7]]));
        if self.state != super::TcpState::Listen && (seq.before(self.snd_una) || seq.after(self.snd_nxt)) {
            ctx.inc(crate::mib::LinuxMib::OutOfWindowIcmps);
            return;
        }
        let (err, _fatal) = icmpv6_err_convert(e.icmp_type, e.code);
        if e.icmp_type == ICMPV6_PKT_TOOBIG {
            // ip6_sk_accept_pmtu(): not with IPV6_PMTUDISC_INTERFACE / _OMIT; an MTU below
            // 1280 is ignored (RFC 8201).
            let pmtudisc = self.inet6.pmtudisc;
            if self.state == super::TcpState::Listen || pmtudisc >= 4 || e.info < IPV6_MIN_MTU {
                return;
            }
            self.tcp_v6_mtu_reduced(ctx, e.info);
            return;
        }
        match self.state {
            super::TcpState::SynSent | super::TcpState::SynRecv => {
                if self.recverr() {
                    crate::ip::recverr::ip_icmp_error(
                        &mut self.ext.get_or_insert_with(Default::default).error_queue,
                        self.rcvbuf,
                        e,
                        err,
                    );
                }
                if owned {
                    self.err_soft = Some(err);
                } else {
                    self.err = Some(err);
                    ctx.ev.data_ready = true;
                    ctx.ev.state_change = true;
                    self.tcp_done(ctx);
                }
            }
            // DEVIATION(linux): no tcp_ld_RTO_revert (RFC 6069) for ICMPV6_NOROUTE.
            _ => {
                if !owned && self.recverr() {
                    self.err = Some(err);
                    ctx.ev.data_ready = true;
                    ctx.ev.state_change = true;
                } else {
                    self.err_soft = Some(err);
                }
            }
        }
    }

    /// `tcp_v6_mtu_reduced()` with `tp->mtu_info = mtu`: a report that would not lower the
    /// MSS is dropped; otherwise the route's PMTU goes down (never below 1280) and, below
    /// what the MSS was synced to, the MSS follows and what no longer fits is resent.
    pub(crate) fn tcp_v6_mtu_reduced(&mut self, ctx: &mut Ctx<'_>, mtu: u32) {
        if matches!(self.state, super::TcpState::Listen | super::TcpState::Close) {
            return;
        }
        let min = ctx.net.sysctl.tcp_min_snd_mss.get() as u32;
        if self.tcp_mtu_to_mss(mtu, min) >= self.mss_cache {
            return;
        }
        let cookie = self.path_mtu(ctx.net.mtu());
        let mtu = mtu.max(IPV6_MIN_MTU).min(cookie);
        if mtu < cookie {
            self.pmtu = mtu;
            self.tcp_sync_mss(mtu, min);
            self.tcp_simple_retransmit(ctx);
        }
    }
}
