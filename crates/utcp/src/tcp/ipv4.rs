//! IPv4-specific TCP entry points (net/ipv4/tcp_ipv4.c): `tcp_v4_rcv` (socket lookup, then
//! backlog / prequeue / direct processing), `tcp_v4_do_rcv`, `tcp_v4_send_reset`, and the
//! TIME_WAIT processing of `tcp_timewait_state_process` (net/ipv4/tcp_minisocks.c).

use super::input::Seg;
use super::listen::ListenResult;
use super::{Ctx, TcpSock, TcpState, TcpTimer};
use crate::errno::{Errno, SysResult};
use crate::ip::TcpIn;
use crate::mib::{DropReason, TcpMib};
use crate::seq::SeqNum;
use crate::socket::sock::{InSeg, OwnedSock, Sock};
use crate::socket::sock_host::SockHost;
use crate::wire::{SackBlocks, TcpFlags, TcpRepr};
use bytes::Bytes;
use std::net::{IpAddr, SocketAddrV4};
use std::sync::Arc;

/// Builds the TCP-input view of a validated segment.
pub(crate) fn seg_from(tin: &TcpIn<'_>) -> Seg {
    let t = &tin.tcp;
    let len = tin.payload.len() as u32;
    Seg {
        seq: t.seq_number,
        end_seq: t.seq_number + len + t.flags.syn() as u32 + t.flags.fin() as u32,
        ack_seq: t.ack_number,
        flags: t.flags,
        window: tin.raw_window,
        urg_ptr: t.urgent_pointer,
        mss: t.max_seg_size,
        wscale: t.window_scale,
        sack_permitted: t.sack_permitted,
        sack: t.sack_ranges,
        ts: t.timestamp,
        payload: tin.payload.clone(),
        frags: Vec::new(),
        frags_len: 0,
        truesize: TcpSock::rx_truesize(len),
        rx: super::input::RxMeta {
            gso_size: 0,
            thlen: tin.thlen,
            segs: 1,
            layout: crate::skb::SkbLayout::Frag,
            ttl: tin.ttl,
            tclass: tin.tclass,
        },
        syn_hdr: tin.syn_hdr.clone(),
        ip_opt: tin.opt.clone(),
    }
}

/// `tcp_v4_do_rcv()`: protocol processing for a socket held by the caller. Returns true when a
/// RST must answer the segment.
#[inline]
pub(crate) fn tcp_v4_do_rcv(tp: &mut TcpSock, ctx: &mut Ctx<'_>, inseg: InSeg) -> bool {
    // TcpInSegs was counted by tcp_v4_rcv() on arrival (ip_rcv_tcp), once per segment even
    // when the backlog coalesced it; segs_in counts what the backlog merged too.
    // tcp_v4_rcv(): IP_MINTTL (RFC 5082 GTSM) drops what arrives with a lower TTL.
    if inseg.seg.rx.ttl < tp.inet.min_ttl {
        ctx.inc(crate::mib::LinuxMib::TCPMinTTLDrop);
        ctx.net.mib.drop_reason(crate::mib::DropReason::TCP_MINTTL);
        return false;
    }
    tcp_do_rcv(tp, ctx, inseg)
}

/// The state machine `tcp_v4_do_rcv()` and `tcp_v6_do_rcv()` share, after their family's
/// checks.
pub(crate) fn tcp_do_rcv(tp: &mut TcpSock, ctx: &mut Ctx<'_>, inseg: InSeg) -> bool {
    // tcp_segs_in(): data_segs_in too, for every segment with payload, whichever path or
    // queue takes it (the header-predicted one included).
    tp.segs_in += inseg.seg.rx.segs.max(1);
    if !inseg.seg.is_empty() {
        tp.data_segs_in += inseg.seg.rx.segs.max(1);
    }
    match tp.state {
        TcpState::Established => {
            tp.tcp_rcv_established(ctx, inseg.seg);
            false
        }
        // A listener's input runs on its request queues (`Sock::lsnr`); its own state, without
        // them, only sees a segment that raced the listener's close: answered as by a closed
        // socket.
        TcpState::Listen if tp.listen.is_none() => true,
        TcpState::Listen => match tp.tcp_listen_rcv(ctx, inseg.seg.clone(), inseg.saddr, inseg.sport, inseg.daddr) {
            ListenResult::Done => false,
            ListenResult::Reset => true,
            ListenResult::Child(mut child, seg) => {
                // The completing segment is processed on the new child right away (it is not
                // reachable by anyone else yet); the caller hashes it and queues it for accept.
                let saved = std::mem::take(&mut ctx.ev);
                let child_in = InSeg { seg, ..inseg };
                let reset = tcp_do_rcv(&mut child, ctx, child_in);
                ctx.ev = saved;
                ctx.ev.data_ready = true;
                if reset || child.state == TcpState::Close {
                    return reset;
                }
                ctx.ev_child = Some(child);
                false
            }
        },
        TcpState::TimeWait => tcp_timewait_state_process(tp, ctx, &inseg.seg),
        _ => tp.tcp_rcv_state_process(ctx, inseg.seg),
    }
}

/// `tcp_timewait_state_process()`.
fn tcp_timewait_state_process(tp: &mut TcpSock, ctx: &mut Ctx<'_>, seg: &Seg) -> bool {
    if seg.flags.rst() {
        // FIX(rst_time_wait.pkt): only an RST with seq == rcv_nxt assassinates the
        // TIME_WAIT socket; any other RST is ignored (falls to inet_twsk_put()).
        if seg.seq == tp.rcv_nxt && ctx.net.sysctl.tcp_rfc1337.get() == 0 {
            tp.set_state(ctx, TcpState::Close);
            tp.clear_timer(TcpTimer::TimeWait);
            ctx.ev.destroy = true;
        }
        return false;
    }
    if seg.flags.syn() && !seg.flags.ack() && seg.seq.after(tp.rcv_nxt) {
        // A new incarnation may reuse the pair: drop the timewait sock and let the
        // retransmitted SYN find the listener.
        tp.set_state(ctx, TcpState::Close);
        ctx.ev.destroy = true;
        return false;
    }
    if seg.flags.fin() && seg.end_seq == tp.rcv_nxt {
        // Retransmitted FIN: ACK it again and restart the timer.
        tp.tcp_send_ack(ctx);
        tp.reset_timer(TcpTimer::TimeWait, ctx.now + super::TCP_TIMEWAIT_LEN);
        return false;
    }
    if seg.seq != seg.end_seq || seg.flags.syn() || !seg.seq.between(tp.rcv_nxt, tp.rcv_nxt + tp.rcv_wnd.max(1)) {
        tp.tcp_send_ack(ctx);
    }
    ctx.inc(crate::mib::LinuxMib::TCPACKSkippedTimeWait);
    false
}

/// `tcp_v4_send_reset()`: the RST answering `seg` from `inseg.saddr:sport`.
pub(crate) fn reset_repr(seg: &Seg, sport: u16, dport: u16) -> Option<TcpRepr<'static>> {
    if seg.flags.rst() {
        return None;
    }
    let (seq, ack, flags) = if seg.flags.ack() {
        (seg.ack_seq, SeqNum(0), TcpFlags::RST)
    } else {
        // seg.end_seq = seq + len + SYN + FIN (the payload may have been dropped already).
        let ack = seg.end_seq;
        (SeqNum(0), ack, TcpFlags(TcpFlags::RST.0 | TcpFlags::ACK.0))
    };
    Some(TcpRepr {
        src_port: dport,
        dst_port: sport,
        flags,
        seq_number: seq,
        ack_number: ack,
        window_len: 0,
        urgent_pointer: 0,
        max_seg_size: None,
        window_scale: None,
        sack_permitted: false,
        sack_ranges: SackBlocks::new(),
        timestamp: None,
        payload: &[],
    })
}

/// Builds the RST frame for an unwanted segment (`tcp_v4_send_reset` / `tcp_v6_send_reset`).
pub(crate) fn reset_frame(net: &crate::netns::Netns, inseg: &InSeg) -> Option<crate::skb::Frame> {
    let (IpAddr::V4(raddr), IpAddr::V4(laddr)) = (inseg.saddr, inseg.daddr) else {
        return super::ipv6::tcp_v6_reset_frame(net, inseg);
    };
    let r = reset_repr(&inseg.seg, inseg.sport, inseg.dport)?;
    net.mib.tcp_inc(TcpMib::OutRsts);
    net.mib.tcp_inc(TcpMib::OutSegs);
    let inet = unicast_reply_opts(net, inseg.seg.ip_opt.as_deref(), raddr)?;
    Some(crate::ip::build_tcp_frame_with(net, laddr, raddr, &r, Bytes::new(), &inet))
}

/// A stateless reply of a listener (a request's ACK) from `laddr` to `raddr`:
/// `ip_send_unicast_reply()` with the answered segment's options echoed, or
/// `tcp_v6_send_response()` with its traffic class and the request's `txhash`.
pub(crate) fn reply_frame(
    net: &crate::netns::Netns,
    laddr: IpAddr,
    raddr: IpAddr,
    repr: &TcpRepr<'_>,
    seg_opt: Option<&crate::ip::options::IpOptions>,
    tclass: u8,
    txhash: u32,
) -> Option<crate::skb::Frame> {
    match (laddr, raddr) {
        (IpAddr::V4(l), IpAddr::V4(r)) => {
            let inet = unicast_reply_opts(net, seg_opt, r)?;
            Some(crate::ip::build_tcp_frame_with(net, l, r, repr, Bytes::new(), &inet))
        }
        (IpAddr::V6(l), IpAddr::V6(r)) => Some(super::ipv6::tcp_v6_reply_frame(net, l, r, repr, tclass, txhash)),
        _ => None,
    }
}

/// `ip_send_unicast_reply()`'s options: a stateless reply (RST, a request's ACK) carries the
/// options of the segment it answers, echoed (`__ip_options_echo`); `None` (no reply at all)
/// when they cannot be echoed.
pub(crate) fn unicast_reply_opts(
    net: &crate::netns::Netns,
    opt: Option<&crate::ip::options::IpOptions>,
    from: std::net::Ipv4Addr,
) -> Option<crate::ip::sockglue::InetOpts> {
    let mut inet = crate::ip::sockglue::InetOpts::default();
    if let Some(o) = opt {
        let e = crate::ip::options::ip_options_echo(o, from, net.local_addr()).ok()?;
        inet.opt = (e.optlen != 0).then(|| Box::new(e));
    }
    Some(inet)
}

/// `inet_sk_bound_dev_eq()`: segments arrive on the stack's one device
/// ([`crate::netns::DEV_IFINDEX`]), which a socket bound to no device or to it accepts.
pub(crate) fn inet_sk_bound_dev_eq(sk: &Sock) -> bool {
    let dev = sk.bound_dev_if.load(std::sync::atomic::Ordering::Relaxed);
    dev == 0 || dev == crate::netns::DEV_IFINDEX
}

/// Counts a segment that found no socket.
pub(crate) fn no_socket(net: &crate::netns::Netns) {
    net.mib.drop_reason(DropReason::NO_SOCKET);
}

/// `tcp_v4_connect()`: picks the source address and port, hashes the 4-tuple, chooses the
/// ISN and timestamp offset, and sends the SYN (`tcp_connect`).
pub(crate) fn tcp_v4_connect(sk: &Arc<Sock>, g: &mut OwnedSock<'_>, addr: SocketAddrV4) -> SysResult<()> {
    if addr.ip().is_unspecified() && addr.port() == 0 {
        return Err(Errno::EINVAL);
    }
    let saddr = sk.net().local_addr();
    let held = sk.host.port_held(sk.id).is_some();
    let tp = g.tp_mut();
    // ip_route_connect(): the bound device must exist (a socket bound to `lo` routes there;
    // see `SockHost::dev_queue_xmit`).
    if tp.bound_dev_if != 0 && sk.net().netdev_get_name(tp.bound_dev_if).is_none() {
        return Err(Errno::ENODEV);
    }
    tp.saddr = IpAddr::V4(saddr);
    tp.daddr = IpAddr::V4(*addr.ip());
    tp.dport = addr.port();
    let taken = if tp.bound && held {
        // bind() chose the port: the 4-tuple through it must be unused, or held by a
        // timewait sock with timestamps (__inet_check_established() without `twp`).
        let key = (tp.saddr, tp.sport, tp.daddr, tp.dport);
        sk.host.__inet_check_established(key, sk, false).ok_or(Errno::EADDRNOTAVAIL)?
    } else {
        // __inet_hash_connect(): a port whose 4-tuple to this destination is free.
        let (port, taken) = sk.host.hash_connect(sk, tp.saddr, tp.daddr, tp.dport, tp.inet.local_port_range)?;
        tp.sport = port;
        tp.bound = true;
        taken
    };
    tcp_connect_finish(sk, g, taken);
    Ok(())
}

/// The part of `tcp_v4_connect()` / `tcp_v6_connect()` after the 4-tuple is hashed: what the
/// connection takes over from a timewait sock, the ISN (`secure_tcp_seq` /
/// `secure_tcpv6_seq`), the timestamp offset, `sk_txhash`, and the SYN (`tcp_connect`).
pub(crate) fn tcp_connect_finish(
    sk: &Arc<Sock>,
    g: &mut OwnedSock<'_>,
    taken: Option<crate::socket::sock_host::TakenTw>,
) {
    let tp = g.tp_mut();
    let now = sk.now();
    let net = sk.net();
    let mut write_seq = None;
    if let Some((tw, reuse)) = taken {
        // tcp_twsk_unique(): the new incarnation starts beyond the old one's sequence space
        // and keeps its peer's timestamp; inet_twsk_deschedule_put() kills the timewait sock.
        write_seq = Some(reuse.write_seq);
        tp.ts_recent = reuse.ts_recent;
        tp.ts_recent_stamp = reuse.ts_recent_stamp;
        tw.lock_sock().with_ctx_inner(|t, ctx| t.inet_twsk_deschedule_put(ctx));
    }
    tp.iss = write_seq.unwrap_or_else(|| SeqNum(net.secure_seq(tp.saddr, tp.daddr, tp.sport, tp.dport, now.nanos())));
    tp.tsoffset = net.ts_offset(tp.saddr, tp.daddr);
    tp.txhash = net.net_tx_rndhash();
    g.with_ctx_inner(super::connect::tcp_connect);
}

/// `tcp_v4_rcv()`: finds the socket in `host`'s tables and hands the segment over.
pub(crate) fn tcp_v4_rcv(host: &dyn SockHost, inseg: InSeg, napi_id: u32) {
    let key = (inseg.daddr, inseg.dport, inseg.saddr, inseg.sport);
    // INET_MATCH(): a socket bound to another device does not see this one's segments.
    let sk = host.__inet_lookup_established(key);
    if let Some(sk) = sk {
        sk.rcv_softirq(inseg, napi_id);
        return;
    }
    let lsk = host.__inet_lookup_listener(&inseg);
    if let Some(lsk) = lsk {
        lsk.rcv_softirq(inseg, napi_id);
        return;
    }
    no_socket(host.net());
    host.send_reset_for(&inseg);
}

impl TcpSock {
    /// `tcp_v4_err()` once the socket is found: `e` quotes one of our segments. `owned`: a
    /// process held the socket when the error arrived (errors are then only soft).
    pub(crate) fn tcp_v4_err(&mut self, ctx: &mut Ctx<'_>, e: &crate::ip::icmp::IcmpErr, owned: bool) {
        use crate::ip::icmp::*;
        if e.from.is_ipv6() {
            return self.tcp_v6_err(ctx, e, owned);
        }
        if e.payload.len() < 8 || self.state == TcpState::Close {
            return;
        }
        let seq = SeqNum(u32::from_be_bytes([e.payload[4], e.payload[5], e.payload[6], e.payload[7]]));
        // between(seq, snd_una, snd_nxt): the quoted segment must be one still in flight.
        if self.state != TcpState::Listen && (seq.before(self.snd_una) || seq.after(self.snd_nxt)) {
            ctx.inc(crate::mib::LinuxMib::OutOfWindowIcmps);
            return;
        }
        let err = match e.icmp_type {
            ICMP_PARAMETERPROB => crate::Errno::EPROTO,
            ICMP_DEST_UNREACH => {
                if e.code > NR_ICMP_UNREACH {
                    return;
                }
                if e.code == ICMP_FRAG_NEEDED {
                    // PMTU discovery (RFC 1191); deferred to release_sock when owned.
                    if self.state != TcpState::Listen {
                        self.tcp_v4_mtu_reduced(ctx, e.info);
                    }
                    return;
                }
                // DEVIATION(linux): no tcp_ld_RTO_revert (RFC 6069) for net/host unreachable.
                ICMP_ERR_CONVERT[e.code as usize].0
            }
            ICMP_TIME_EXCEEDED => crate::Errno::EHOSTUNREACH,
            _ => return, // source quench is ignored (RFC 6633); redirects are not routed here
        };
        match self.state {
            TcpState::SynSent | TcpState::SynRecv => {
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
                    // tcp_done_with_error()
                    self.err = Some(err);
                    ctx.ev.data_ready = true;
                    ctx.ev.state_change = true;
                    self.tcp_done(ctx);
                }
            }
            _ => {
                // RFC 1122 4.2.3.9: only an error on timeout, unless IP_RECVERR asks for it now.
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

    /// IP_RECVERR is on (IPV6_RECVERR for an IPv6 connection; an IPv4-mapped one reads
    /// IP_RECVERR, as `tcp_v4_err` does).
    pub(crate) fn recverr(&self) -> bool {
        if self.daddr.is_ipv6() {
            self.inet6.recverr
        } else {
            self.inet.recverr
        }
    }
}

/// What `tcp_twsk_unique()` reads of a timewait sock (`struct tcp_timewait_sock`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TwInfo {
    /// `tw_substate == TCP_FIN_WAIT2`: an orphan that tcp_time_wait() keeps in FIN_WAIT2.
    pub(crate) fin_wait2: bool,
    /// `tcptw->tw_snd_nxt`.
    pub(crate) snd_nxt: SeqNum,
    /// `tcptw->tw_ts_recent`.
    pub(crate) ts_recent: u32,
    /// `tcptw->tw_ts_recent_stamp`.
    pub(crate) ts_recent_stamp: crate::time::Instant,
    /// `tcptw->tw_ts_recent_stamp != 0`: the connection used timestamps (Linux stores a
    /// stamp whenever it stores `ts_recent`, which it does from the first timestamp on).
    pub(crate) has_ts: bool,
    /// `tw->tw_entry_stamp`.
    pub(crate) entry_stamp: crate::time::Instant,
    /// `tw_bound_dev_if == LOOPBACK_IFINDEX`, or either address is a loopback one.
    pub(crate) loopback: bool,
}

impl TwInfo {
    /// The timewait part of `tp`, when it is a timewait sock.
    pub(crate) fn of(tp: &TcpSock) -> Option<TwInfo> {
        let tw = tp.tw_counted && matches!(tp.state, TcpState::TimeWait | TcpState::FinWait2);
        tw.then(|| TwInfo {
            fin_wait2: tp.state == TcpState::FinWait2,
            snd_nxt: tp.snd_nxt,
            ts_recent: tp.ts_recent,
            ts_recent_stamp: tp.ts_recent_stamp,
            has_ts: tp.tstamp_ok,
            entry_stamp: tp.tw_entry_stamp,
            loopback: tp.bound_dev_if == crate::netns::LOOPBACK_IFINDEX
                || tp.daddr.is_loopback()
                || tp.saddr.is_loopback(),
        })
    }
}

/// The state a connection takes over from the timewait sock whose 4-tuple it reuses.
#[derive(Clone, Copy, Debug)]
pub struct TwReuse {
    /// `tp->write_seq`: `tw_snd_nxt + 65535 + 2` (never 0), beyond anything the old
    /// incarnation may still have in flight.
    pub(crate) write_seq: SeqNum,
    /// `tp->rx_opt.ts_recent`.
    pub(crate) ts_recent: u32,
    /// `tp->rx_opt.ts_recent_stamp`.
    pub(crate) ts_recent_stamp: crate::time::Instant,
}

/// `tcp_twsk_unique()`: may a connect() take the 4-tuple of timewait sock `tw` over?
/// `twp`: the port search asks (`__inet_hash_connect()` passes `&tw`), which needs
/// `net.ipv4.tcp_tw_reuse` (2: loopback only) and `tcp_tw_reuse_delay` ms in TIME_WAIT;
/// without it (a port the socket bound itself) any timewait sock with timestamps is taken.
pub(crate) fn tcp_twsk_unique(
    net: &crate::netns::Netns,
    tw: &TwInfo,
    twp: bool,
    now: crate::time::Instant,
) -> Option<TwReuse> {
    let mut reuse = net.sysctl.tcp_tw_reuse.get();
    if tw.fin_wait2 {
        reuse = 0;
    }
    if reuse == 2 && !tw.loopback {
        reuse = 0;
    }
    let delay = net.sysctl.tcp_tw_reuse_delay.get() as u32;
    let reuse_thresh = (tw.entry_stamp.millis() as u32).wrapping_add(delay);
    // time_after32(tcp_clock_ms(), reuse_thresh)
    let after = (reuse_thresh.wrapping_sub(now.millis() as u32) as i32) < 0;
    if !tw.has_ts || (twp && (reuse == 0 || !after)) {
        return None;
    }
    let mut seq = tw.snd_nxt + 65535 + 2;
    if seq.0 == 0 {
        seq = SeqNum(1);
    }
    Some(TwReuse { write_seq: seq, ts_recent: tw.ts_recent, ts_recent_stamp: tw.ts_recent_stamp })
}
