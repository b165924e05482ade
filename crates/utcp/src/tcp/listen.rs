//! Passive open (net/ipv4/tcp_input.c `tcp_conn_request`, tcp_minisocks.c `tcp_check_req`,
//! `tcp_create_openreq_child`, inet_connection_sock.c accept queue): request socks in a bounded
//! SYN queue, SYN-ACK (re)transmission, children moved to a bounded accept queue.

use super::input::Seg;
use super::syncookies::{cookie_init_timestamp, cookie_v4_init_sequence, CookieCheck};
use super::window::tcp_select_initial_window;
use super::{Ctx, TcpSock, TcpState, TcpTimer, SOCK_RCVBUF_LOCK, TCP_TIMEOUT_INIT};
use crate::mib::{DropReason, LinuxMib, TcpMib};
use crate::seq::SeqNum;
use crate::socket::sock::Sock;
use crate::time::Instant;
use crate::wire::{SackBlocks, TcpFlags, TcpRepr};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A connection request in SYN_RECV (`struct tcp_request_sock`).
#[derive(Clone, Debug)]
pub(crate) struct RequestSock {
    /// Peer address and port (IPv4 or IPv6, as the SYN came).
    pub(crate) raddr: IpAddr,
    /// Peer port.
    pub(crate) rport: u16,
    /// Our address the SYN was sent to.
    pub(crate) laddr: IpAddr,
    /// Peer's initial sequence number.
    pub(crate) irs: SeqNum,
    /// Our initial sequence number (`snt_isn`).
    pub(crate) iss: SeqNum,
    /// Peer's MSS (`mss_clamp`).
    pub(crate) mss_clamp: u32,
    /// Window scaling agreed, and the peer's shift.
    pub(crate) wscale_ok: bool,
    /// Peer's window shift.
    pub(crate) snd_wscale: u8,
    /// Our window shift.
    pub(crate) rcv_wscale: u8,
    /// SACK agreed.
    pub(crate) sack_ok: bool,
    /// Timestamps agreed.
    pub(crate) tstamp_ok: bool,
    /// Peer's last TSval.
    pub(crate) ts_recent: u32,
    /// Timestamp offset for this connection.
    pub(crate) ts_off: u32,
    /// Window offered in the SYN-ACK.
    pub(crate) rcv_wnd: u32,
    /// `rsk_window_clamp`.
    pub(crate) window_clamp: u32,
    /// First SYN-ACK transmission (RTT sample if never retransmitted).
    pub(crate) first_synack: Instant,
    /// SYN-ACK retransmissions so far.
    pub(crate) num_retrans: u8,
    /// Expirations of the request's timer (`req->num_timeout`; with TCP_DEFER_ACCEPT not
    /// every one resends the SYN-ACK).
    pub(crate) num_timeout: u8,
    /// When the SYN-ACK is retransmitted next.
    pub(crate) expires: Instant,
    /// The final ACK came while the accept queue was full (`inet_rsk(req)->acked`).
    pub(crate) acked: bool,
    /// The SYN's headers when the listener has TCP_SAVE_SYN (`req->saved_syn`).
    pub(crate) saved_syn: Option<bytes::Bytes>,
    /// `ireq->ireq_opt` (`tcp_v4_save_options`): the SYN's IP options echoed
    /// (`__ip_options_echo`), which the SYN-ACK and the child carry instead of the
    /// listener's IP_OPTIONS.
    pub(crate) ireq_opt: Option<Box<crate::ip::options::IpOptions>>,
    /// Answered with a SYN cookie (`req->syncookie`): never queued, and rebuilt from the ACK.
    pub(crate) syncookie: bool,
    /// `tcp_rsk(req)->txhash`: the flow's hash, the child's `sk_txhash` (an IPv6 flow label).
    pub(crate) txhash: u32,
    /// The SYN's IPv6 traffic class (a request's ACK carries it, `tcp_v6_reqsk_send_ack`).
    pub(crate) syn_tclass: u8,
}

/// `tcp_v4_save_options()`: the options a request keeps from the segment that made it (the
/// SYN, or a SYN cookie's ACK), echoed (`__ip_options_echo`) for the SYN-ACK and the child.
pub(crate) fn tcp_v4_save_options(
    ctx: &Ctx<'_>,
    seg: &Seg,
    raddr: IpAddr,
) -> Option<Box<crate::ip::options::IpOptions>> {
    let o = seg.ip_opt.as_ref()?;
    let IpAddr::V4(raddr) = raddr else { return None };
    crate::ip::options::ip_options_echo(o, raddr, ctx.net.local_addr()).ok().filter(|o| o.optlen != 0).map(Box::new)
}

/// State of a listening socket.
#[derive(Default)]
pub struct ListenState {
    /// `sk_max_ack_backlog`.
    pub(crate) max_backlog: u32,
    /// Requests by peer (address, port).
    pub(crate) syn_queue: HashMap<(IpAddr, u16), RequestSock>,
    /// Established children waiting for accept().
    pub(crate) accept_queue: AcceptQueue,
    /// When a SYN cookie was last sent (`tcp_synq_overflow()`; Linux keeps it in the
    /// listener's `rx_opt.ts_recent_stamp`).
    pub(crate) last_overflow: Option<Instant>,
}

/// The accept queue (`icsk_accept_queue`): children with the flag that stands for their
/// `sk->sk_socket`, which taking a child out with [`AcceptQueue::pop_front`] (accept()'s
/// `sock_graft()`) sets.
#[derive(Default)]
pub(crate) struct AcceptQueue {
    q: VecDeque<(Arc<Sock>, Option<Arc<AtomicBool>>)>,
}

impl AcceptQueue {
    /// Queues a child; `sk_socket` is the child's [`TcpSock::sk_socket`].
    pub(crate) fn push_back(&mut self, child: Arc<Sock>, sk_socket: Option<Arc<AtomicBool>>) {
        self.q.push_back((child, sk_socket));
    }
    /// accept(): takes the oldest child and grafts it onto a socket.
    pub(crate) fn pop_front(&mut self) -> Option<Arc<Sock>> {
        let (child, sk_socket) = self.q.pop_front()?;
        if let Some(f) = sk_socket {
            f.store(true, Ordering::Release);
        }
        Some(child)
    }
    /// Children waiting.
    pub(crate) fn len(&self) -> usize {
        self.q.len()
    }
    /// No child waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
}

impl IntoIterator for AcceptQueue {
    type Item = Arc<Sock>;
    type IntoIter = std::iter::Map<
        std::collections::vec_deque::IntoIter<(Arc<Sock>, Option<Arc<AtomicBool>>)>,
        fn((Arc<Sock>, Option<Arc<AtomicBool>>)) -> Arc<Sock>,
    >;
    /// The children, never accepted (listener close).
    fn into_iter(self) -> Self::IntoIter {
        self.q.into_iter().map(|(c, _)| c)
    }
}

impl core::fmt::Debug for ListenState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "ListenState(backlog {}, syn {}, accept {})",
            self.max_backlog,
            self.syn_queue.len(),
            self.accept_queue.len()
        )
    }
}

/// What the listener decided about a segment.
// Returned once per segment a listener handles and moved straight into a match: the Seg in
// `Child` is not worth a box on the handshake path.
#[allow(clippy::large_enum_variant)]
pub(crate) enum ListenResult {
    /// Consumed (or dropped and counted).
    Done,
    /// Answer with a RST (`tcp_v4_send_reset`).
    Reset,
    /// A connection completed: the caller hashes the child, lets it process `seg`, and
    /// queues it for accept().
    Child(Box<TcpSock>, Seg),
}

impl TcpSock {
    /// A listener's request-queue side: a socket in LISTEN that holds the SYN and accept
    /// queues ([`ListenState`]) and a copy of what the SYN path reads of the listener
    /// ([`TcpSock::sync_listener_opts`]), kept by the listener's `Sock` under a lock of its own
    /// so that SYNs and the ACKs completing handshakes are processed without the socket lock
    /// (Linux's lockless listener: `tcp_v4_rcv` takes no `bh_lock_sock` for a TCP_LISTEN
    /// socket, the request socks live in ehash and the accept queue has `rskq_lock`).
    pub(crate) fn listener_queues(l: &TcpSock, net: &crate::netns::Netns, now: Instant, max_backlog: u32) -> TcpSock {
        let mut q = TcpSock::new(net, now);
        q.sync_listener_opts(l);
        q.listen = Some(Box::new(ListenState { max_backlog, ..Default::default() }));
        q
    }

    /// Copies from the listener `l` every field the SYN path reads (`tcp_conn_request`, the
    /// SYN-ACK, `tcp_check_req`, the cookie check, `tcp_create_openreq_child`'s inherited
    /// options, the family's `do_rcv` checks): Linux reads them from the listener with
    /// `READ_ONCE`; here the listener's owner copies them over when it releases a listener it
    /// changed (setsockopt, listen()).
    pub(crate) fn sync_listener_opts(&mut self, l: &TcpSock) {
        self.state = TcpState::Listen;
        self.bound_dev_if = l.bound_dev_if;
        self.ca_algo = l.ca_algo;
        self.defer_accept = l.defer_accept;
        self.dontroute = l.dontroute;
        self.family = l.family;
        self.filter_locked = l.filter_locked;
        self.keepalive = l.keepalive;
        self.ll_usec = l.ll_usec;
        self.mark = l.mark;
        self.napi_id = l.napi_id;
        self.nodelay = l.nodelay;
        self.pacing_needed = l.pacing_needed;
        self.prefer_busy_poll = l.prefer_busy_poll;
        self.priority = l.priority;
        self.rcvbuf = l.rcvbuf;
        self.rcvlowat = l.rcvlowat;
        self.recvmsg_inq = l.recvmsg_inq;
        self.reuseport = l.reuseport;
        self.rto_min = l.rto_min;
        self.rx_tstamp_opt = l.rx_tstamp_opt;
        self.save_syn = l.save_syn;
        self.sndbuf = l.sndbuf;
        self.sport = l.sport;
        self.thin_lto = l.thin_lto;
        self.tsflags = l.tsflags;
        self.tskey = l.tskey;
        self.tstamp_new = l.tstamp_new;
        self.txrehash = l.txrehash;
        self.urginline = l.urginline;
        self.user_mss = l.user_mss;
        self.userlocks = l.userlocks;
        self.window_clamp = l.window_clamp;
        self.zerocopy = l.zerocopy;
        self.scaling_ratio = l.scaling_ratio;
        self.saddr = l.saddr;
        self.listen_backlog = l.listen_backlog;
        self.bound = l.bound;
        self.inet = l.inet.clone();
        self.inet6 = l.inet6.clone();
        // The options kept in TcpSockExt (SO_RCVTIMEO, SO_LINGER, TCP_KEEPIDLE, ...).
        self.inherit_ext_opts(l);
    }

    /// `sk_acceptq_is_full()`.
    pub(crate) fn acceptq_is_full(&self) -> bool {
        self.listen.as_ref().is_some_and(|l| l.accept_queue.len() as u32 > l.max_backlog)
    }

    /// Input for a LISTEN socket from `raddr:rport` to `laddr`.
    pub(crate) fn tcp_listen_rcv(
        &mut self,
        ctx: &mut Ctx<'_>,
        seg: Seg,
        raddr: IpAddr,
        rport: u16,
        laddr: IpAddr,
    ) -> ListenResult {
        let key = (raddr, rport);
        let has_req = self.listen.as_ref().is_some_and(|l| l.syn_queue.contains_key(&key));
        if has_req {
            return self.tcp_check_req(ctx, seg, key);
        }
        if seg.flags.rst() {
            ctx.net.mib.drop_reason(DropReason::TCP_RESET);
            return ListenResult::Done;
        }
        if seg.flags.ack() {
            // tcp_v4_cookie_check(): an ACK (not a SYN) may answer a cookie SYN-ACK.
            if !seg.flags.syn() {
                if let CookieCheck::Request(req) = self.cookie_v4_check(ctx, &seg, (raddr, rport, laddr)) {
                    return self.tcp_get_cookie_sock(ctx, &req, seg);
                }
            }
            return ListenResult::Reset;
        }
        if !seg.flags.syn() || seg.flags.fin() {
            ctx.net.mib.drop_reason(DropReason::TCP_FLAGS);
            return ListenResult::Done;
        }
        self.tcp_conn_request(ctx, &seg, raddr, rport, laddr);
        ListenResult::Done
    }

    /// `inet_csk_reqsk_queue_len()`: requests in SYN_RECV.
    pub(crate) fn reqsk_queue_len(&self) -> usize {
        self.listen.as_ref().map_or(0, |l| l.syn_queue.len())
    }

    /// `inet_csk_reqsk_queue_is_full()`: more requests than the listen backlog.
    pub(crate) fn reqsk_queue_is_full(&self) -> bool {
        self.listen.as_ref().is_some_and(|l| l.syn_queue.len() as u64 > l.max_backlog as u64)
    }

    /// `tcp_syn_flood_action()`: whether a SYN that finds the SYN queue full (or any SYN, with
    /// `tcp_syncookies=2`) is answered with a cookie.
    fn tcp_syn_flood_action(&self, ctx: &mut Ctx<'_>) -> bool {
        if ctx.net.sysctl.tcp_syncookies.get() != 0 {
            ctx.inc(LinuxMib::TCPReqQFullDoCookies);
            true
        } else {
            ctx.inc(LinuxMib::TCPReqQFullDrop);
            false
        }
    }

    /// `tcp_conn_request()`: a SYN for a listener.
    fn tcp_conn_request(&mut self, ctx: &mut Ctx<'_>, seg: &Seg, raddr: IpAddr, rport: u16, laddr: IpAddr) {
        let syncookies = ctx.net.sysctl.tcp_syncookies.get();
        let mut want_cookie = false;
        if syncookies == 2 || self.reqsk_queue_is_full() {
            want_cookie = self.tcp_syn_flood_action(ctx);
            if !want_cookie {
                // tcp_listendrop()
                ctx.inc(LinuxMib::ListenDrops);
                return;
            }
        }
        if self.acceptq_is_full() {
            ctx.inc(LinuxMib::ListenOverflows);
            ctx.inc(LinuxMib::ListenDrops);
            return;
        }
        // Without SYN cookies the last quarter of tcp_max_syn_backlog is kept for peers
        // proven alive (tcp_peer_is_proven(): an RTT in the TCP metrics cache, which utcp
        // does not keep, as with tcp_no_metrics_save=1: no peer is proven).
        let max_syn_backlog = ctx.net.sysctl.tcp_max_syn_backlog.get();
        if !want_cookie && syncookies == 0 && max_syn_backlog - (self.reqsk_queue_len() as i64) < (max_syn_backlog >> 2)
        {
            ctx.inc(LinuxMib::ListenDrops);
            return;
        }
        let s = &ctx.net.sysctl;
        let mss_clamp = match seg.mss {
            Some(m) if m > 0 => m as u32,
            // tcp_request_sock_ipv6_ops.mss_clamp: IPV6_MIN_MTU - 60.
            _ if raddr.is_ipv6() => super::ipv6::TCP_V6_MSS_CLAMP,
            _ => super::TCP_MSS_DEFAULT,
        };
        let mss_clamp = if self.user_mss != 0 { mss_clamp.min(self.user_mss) } else { mss_clamp };
        let tstamp_ok = seg.ts.is_some() && s.tcp_timestamps.get() != 0;
        // A cookie without timestamps has nowhere to keep window scaling and SACK
        // (tcp_clear_options()): the SYN-ACK offers neither.
        let keep = !want_cookie || tstamp_ok;
        let wscale_ok = keep && seg.wscale.is_some() && s.tcp_window_scaling.get() != 0;
        let sack_ok = keep && seg.sack_permitted && s.tcp_sack.get() != 0;
        let (iss, mss_clamp) = if want_cookie {
            // cookie_init_sequence()
            self.tcp_synq_overflow(ctx.now);
            ctx.inc(LinuxMib::SyncookiesSent);
            cookie_v4_init_sequence(ctx, (raddr, rport, laddr, self.sport), seg.seq, mss_clamp)
        } else {
            (SeqNum(ctx.net.secure_seq(laddr, raddr, self.sport, rport, ctx.now.nanos())), mss_clamp)
        };
        let ts_off = ctx.net.ts_offset(laddr, raddr);
        // tcp_openreq_init_rwin()
        let mtu = ctx.net.mtu();
        let mut mss = mtu - super::ipv6::net_header_len(&raddr) - 20;
        if self.user_mss != 0 && self.user_mss < mss {
            mss = self.user_mss;
        }
        let full_space = self.full_space();
        let mut window_clamp = self.window_clamp;
        if self.userlocks & SOCK_RCVBUF_LOCK != 0 && (window_clamp as i64 > full_space || window_clamp == 0) {
            window_clamp = full_space.max(0) as u32;
        }
        let rmss = mss - if tstamp_ok { super::TCPOLEN_TSTAMP_ALIGNED } else { 0 };
        let (rcv_wnd, window_clamp, rcv_wscale) =
            tcp_select_initial_window(ctx, full_space, rmss, window_clamp, wscale_ok, 0);
        let req = RequestSock {
            raddr,
            rport,
            laddr,
            irs: seg.seq,
            iss,
            mss_clamp,
            wscale_ok,
            snd_wscale: if wscale_ok { seg.wscale.unwrap_or(0).min(super::TCP_MAX_WSCALE) } else { 0 },
            rcv_wscale: if wscale_ok { rcv_wscale } else { 0 },
            sack_ok,
            tstamp_ok,
            ts_recent: seg.ts.map(|t| t.0).unwrap_or(0),
            ts_off,
            rcv_wnd,
            window_clamp,
            first_synack: ctx.now,
            num_retrans: 0,
            num_timeout: 0,
            expires: ctx.now + TCP_TIMEOUT_INIT,
            acked: false,
            // tcp_reqsk_record_syn(): save_syn 2 would start at the MAC header, which no
            // utcp device has (skb_mac_header_was_set() is false): the same bytes as 1.
            saved_syn: if self.save_syn != 0 && !want_cookie { seg.syn_hdr.clone() } else { None },
            ireq_opt: tcp_v4_save_options(ctx, seg, raddr),
            syncookie: want_cookie,
            txhash: ctx.net.net_tx_rndhash(),
            syn_tclass: seg.rx.tclass,
        };
        self.send_synack(ctx, &req, mss);
        if want_cookie {
            return;
        }
        let exp = req.expires;
        if let Some(l) = self.listen.as_mut() {
            l.syn_queue.insert((raddr, rport), req);
        }
        self.arm_synack_timer(exp);
    }

    fn arm_synack_timer(&mut self, at: Instant) {
        let cur = self.timers.get(TcpTimer::Retrans);
        if cur.is_none_or(|c| at < c) {
            self.reset_timer(TcpTimer::Retrans, at);
        }
    }

    /// `tcp_make_synack()` + transmit.
    fn send_synack(&self, ctx: &mut Ctx<'_>, req: &RequestSock, mss: u32) {
        let now_ms = ctx.now.millis();
        let ts = if req.syncookie {
            cookie_init_timestamp(req.wscale_ok.then_some(req.snd_wscale), req.sack_ok, now_ms)
        } else {
            now_ms as u32
        };
        let tsval = ts.wrapping_add(req.ts_off);
        let repr = TcpRepr {
            src_port: self.sport,
            dst_port: req.rport,
            flags: TcpFlags(TcpFlags::SYN.0 | TcpFlags::ACK.0),
            seq_number: req.iss,
            ack_number: req.irs + 1,
            window_len: req.rcv_wnd.min(65535) as u16,
            urgent_pointer: 0,
            max_seg_size: Some(mss as u16),
            window_scale: req.wscale_ok.then_some(req.rcv_wscale),
            sack_permitted: req.sack_ok,
            sack_ranges: SackBlocks::new(),
            timestamp: req.tstamp_ok.then_some((tsval, req.ts_recent)),
            payload: &[],
        };
        // tcp_v4_send_synack(): the listener's TOS and TTL; the IP options echoed from the
        // SYN (ip_build_and_send_pkt with ireq_opt), never the listener's own.
        let echoed;
        let inet = if self.inet.opt.is_none() && req.ireq_opt.is_none() {
            &self.inet
        } else {
            echoed = crate::ip::sockglue::InetOpts { opt: req.ireq_opt.clone(), ..self.inet.clone() };
            &echoed
        };
        let mut frame = match (req.laddr, req.raddr) {
            (IpAddr::V4(l), IpAddr::V4(r)) => crate::ip::build_tcp_frame_with(ctx.net, l, r, &repr, Bytes::new(), inet),
            // tcp_v6_send_synack(): the listener's traffic class and hop limit, the label
            // made of the request's txhash.
            (l, r) => super::ipv6::inet6_csk_xmit(ctx.net, l, r, &self.inet6, req.txhash, &repr, Bytes::new(), 0),
        };
        frame.priority = self.priority;
        frame.mark = self.mark;
        frame.oif = self.bound_dev_if;
        ctx.out.push(frame);
        ctx.net.mib.tcp_inc(TcpMib::OutSegs);
    }

    /// The listener's SYN-ACK retransmission timer (`reqsk_timer_handler`).
    pub(crate) fn tcp_synack_timer(&mut self, ctx: &mut Ctx<'_>) {
        let retries = ctx.net.sysctl.tcp_synack_retries.get() as u8;
        let mut due: Vec<(IpAddr, u16)> = Vec::new();
        let mut next: Option<Instant> = None;
        if let Some(l) = self.listen.as_ref() {
            for (k, r) in l.syn_queue.iter() {
                if r.expires <= ctx.now {
                    due.push(*k);
                } else {
                    next = Some(next.map_or(r.expires, |n| n.min(r.expires)));
                }
            }
        }
        // With TCP_DEFER_ACCEPT a request may live as many timeouts as it defers.
        let defer = self.defer_accept;
        let max_retries = if defer > 0 { retries.max(defer) } else { retries };
        for k in due {
            let Some(mut req) = self.listen.as_mut().and_then(|l| l.syn_queue.remove(&k)) else { continue };
            // syn_ack_recalc(): an ACKed request (bare ACK dropped while deferring) is not
            // resent to until the last chance before its deferral ends.
            let (expire, resend) = if defer == 0 {
                (req.num_timeout >= max_retries, true)
            } else {
                (
                    req.num_timeout >= max_retries && (!req.acked || req.num_timeout >= defer),
                    !req.acked || req.num_timeout + 1 >= defer,
                )
            };
            if expire {
                continue;
            }
            if resend {
                req.num_retrans = req.num_retrans.saturating_add(1);
                // tcp_rtx_synack(): with SO_TXREHASH on, each retransmitted SYN-ACK takes a
                // new hash (a new IPv6 flow label, perhaps a new path).
                if self.txrehash == super::SOCK_TXREHASH_ENABLED {
                    req.txhash = ctx.net.net_tx_rndhash();
                }
                let mss = ctx.net.mtu() - super::ipv6::net_header_len(&req.raddr) - 20;
                self.send_synack(ctx, &req, mss);
                ctx.net.mib.tcp_inc(TcpMib::RetransSegs);
                ctx.inc(LinuxMib::TCPSynRetrans);
            }
            req.num_timeout = req.num_timeout.saturating_add(1);
            let timeo = (TCP_TIMEOUT_INIT * (1u32 << req.num_timeout.min(16))).min(super::TCP_RTO_MAX);
            req.expires = ctx.now + timeo;
            next = Some(next.map_or(req.expires, |n| n.min(req.expires)));
            if let Some(l) = self.listen.as_mut() {
                l.syn_queue.insert(k, req);
            }
        }
        if let Some(n) = next {
            self.reset_timer(TcpTimer::Retrans, n);
        }
    }

    /// `tcp_check_req()`: a segment for a pending request.
    fn tcp_check_req(&mut self, ctx: &mut Ctx<'_>, seg: Seg, key: (IpAddr, u16)) -> ListenResult {
        let req = self.listen.as_ref().and_then(|l| l.syn_queue.get(&key)).cloned().expect("req");
        let rcv_nxt = req.irs + 1;
        if seg.flags.syn() && !seg.flags.rst() && seg.seq == req.irs {
            // Retransmitted SYN: resend the SYN-ACK.
            let mss = ctx.net.mtu() - super::ipv6::net_header_len(&req.raddr) - 20;
            self.send_synack(ctx, &req, mss);
            return ListenResult::Done;
        }
        if seg.flags.ack() && seg.ack_seq != req.iss + 1 {
            return ListenResult::Reset;
        }
        let wnd = req.rcv_wnd;
        let in_window = |s: SeqNum, e: SeqNum| {
            if s == e && s == rcv_nxt {
                return true;
            }
            !e.before(rcv_nxt) && s.before(rcv_nxt + wnd)
        };
        if !in_window(seg.seq, seg.end_seq) {
            if !seg.flags.rst() {
                // req->rsk_ops->send_ack(): ACK the out-of-window segment.
                self.send_req_ack(ctx, &req, seg.ip_opt.as_deref());
            }
            return ListenResult::Done;
        }
        if seg.flags.rst() || seg.flags.syn() {
            if let Some(l) = self.listen.as_mut() {
                l.syn_queue.remove(&key);
            }
            if seg.flags.syn() {
                ctx.inc(LinuxMib::TCPSYNChallenge);
                return ListenResult::Reset;
            }
            ctx.inc(LinuxMib::EmbryonicRsts);
            return ListenResult::Done;
        }
        if !seg.flags.ack() {
            return ListenResult::Done;
        }
        // While TCP_DEFER_ACCEPT is active, a bare ACK completes nothing: the request waits
        // for data (or the end of the deferral).
        if req.num_timeout < self.defer_accept && seg.end_seq == req.irs + 1 {
            if let Some(r) = self.listen.as_mut().and_then(|l| l.syn_queue.get_mut(&key)) {
                r.acked = true;
            }
            ctx.inc(LinuxMib::TCPDeferAcceptDrop);
            return ListenResult::Done;
        }
        if self.acceptq_is_full() {
            ctx.inc(LinuxMib::ListenOverflows);
            ctx.inc(LinuxMib::ListenDrops);
            if ctx.net.sysctl.tcp_abort_on_overflow.get() != 0 {
                if let Some(l) = self.listen.as_mut() {
                    l.syn_queue.remove(&key);
                }
                return ListenResult::Reset;
            }
            if let Some(l) = self.listen.as_mut() {
                if let Some(r) = l.syn_queue.get_mut(&key) {
                    r.acked = true;
                }
            }
            return ListenResult::Done;
        }
        if let Some(l) = self.listen.as_mut() {
            l.syn_queue.remove(&key);
        }
        let child = self.tcp_create_openreq_child(ctx, &req, &seg);
        ctx.net.mib.tcp_inc(TcpMib::PassiveOpens);
        ListenResult::Child(Box::new(child), seg)
    }

    /// `tcp_get_cookie_sock()`: the child of a valid cookie ACK, queued for accept() at once;
    /// none (the ACK dropped) when the accept queue is full.
    fn tcp_get_cookie_sock(&mut self, ctx: &mut Ctx<'_>, req: &RequestSock, seg: Seg) -> ListenResult {
        // tcp_v4_syn_recv_sock(): exit_overflow.
        if self.acceptq_is_full() {
            ctx.inc(LinuxMib::ListenOverflows);
            ctx.inc(LinuxMib::ListenDrops);
            return ListenResult::Done;
        }
        let child = self.tcp_create_openreq_child(ctx, req, &seg);
        ctx.net.mib.tcp_inc(TcpMib::PassiveOpens);
        ListenResult::Child(Box::new(child), seg)
    }

    fn send_req_ack(&self, ctx: &mut Ctx<'_>, req: &RequestSock, seg_opt: Option<&crate::ip::options::IpOptions>) {
        let tsval = (ctx.now.millis() as u32).wrapping_add(req.ts_off);
        let repr = TcpRepr {
            src_port: self.sport,
            dst_port: req.rport,
            flags: TcpFlags::ACK,
            seq_number: req.iss + 1,
            ack_number: req.irs + 1,
            window_len: (req.rcv_wnd >> req.rcv_wscale).min(65535) as u16,
            urgent_pointer: 0,
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            sack_ranges: SackBlocks::new(),
            timestamp: req.tstamp_ok.then_some((tsval, req.ts_recent)),
            payload: &[],
        };
        // tcp_v4_send_ack() → ip_send_unicast_reply(): the answered segment's options echoed;
        // tcp_v6_send_ack(): its traffic class and the request's txhash.
        let Some(frame) =
            super::ipv4::reply_frame(ctx.net, req.laddr, req.raddr, &repr, seg_opt, req.syn_tclass, req.txhash)
        else {
            return;
        };
        ctx.out.push(frame);
        ctx.net.mib.tcp_inc(TcpMib::OutSegs);
    }

    /// `tcp_create_openreq_child()` + `tcp_v4_syn_recv_sock()`: the child socket, in SYN_RECV.
    fn tcp_create_openreq_child(&self, ctx: &mut Ctx<'_>, req: &RequestSock, seg: &Seg) -> TcpSock {
        let mut c = TcpSock::new(ctx.net, ctx.now);
        c.state = TcpState::SynRecv;
        c.saddr = req.laddr;
        c.sport = self.sport;
        c.daddr = req.raddr;
        c.dport = req.rport;
        // tcp_v6_syn_recv_sock(): the child of an AF_INET6 listener is AF_INET6 (its IPv4
        // peer IPv4-mapped) with the listener's IPv6 options; its flow hash is the request's.
        c.family = self.family;
        c.inet6 = self.inet6.clone();
        c.txhash = req.txhash;
        // Inherited socket options.
        c.rcvbuf = self.rcvbuf;
        c.sndbuf = self.sndbuf;
        c.userlocks = self.userlocks;
        c.rcvlowat = self.rcvlowat;
        c.mark = self.mark;
        c.txrehash = self.txrehash;
        c.filter_locked = self.filter_locked;
        c.tstamp_new = self.tstamp_new;
        c.tsflags = self.tsflags;
        c.tskey = self.tskey;
        c.bound_dev_if = self.bound_dev_if;
        c.pacing_needed = self.pacing_needed;
        c.zerocopy = self.zerocopy;
        c.urginline = self.urginline;
        c.rx_tstamp_opt = self.rx_tstamp_opt;
        c.ll_usec = self.ll_usec;
        c.prefer_busy_poll = self.prefer_busy_poll;
        c.keepalive = self.keepalive;
        c.nodelay = self.nodelay;
        c.user_mss = self.user_mss;
        c.recvmsg_inq = self.recvmsg_inq;
        // The options kept in TcpSockExt (SO_RCVTIMEO, SO_LINGER, TCP_KEEPIDLE, ...).
        c.inherit_ext_opts(self);
        c.thin_lto = self.thin_lto;
        c.rto_min = self.rto_min;
        // tcp_create_openreq_child() copies save_syn; tcp_move_syn() hands the child the
        // request's saved SYN.
        c.save_syn = self.save_syn;
        if let Some(syn) = req.saved_syn.clone() {
            c.ext_mut().saved_syn = Some(syn);
        }
        c.inet = self.inet.clone();
        // tcp_v4_syn_recv_sock(): inet_opt (and icsk_ext_hdr_len) from the request.
        c.inet.opt = req.ireq_opt.clone();
        c.priority = self.priority;
        c.reuseport = self.reuseport;
        c.dontroute = self.dontroute;
        c.ca_algo = self.ca_algo;
        c.bound = true;
        // No struct socket until accept() (inet_csk_clone_lock() leaves sk_socket to sock_graft()).
        c.sk_socket = Some(Arc::new(AtomicBool::new(false)));
        // Sequence space.
        c.irs = req.irs;
        c.rcv_nxt = req.irs + 1;
        c.rcv_wup = req.irs + 1;
        c.copied_seq = req.irs + 1;
        c.iss = req.iss;
        c.snd_una = req.iss + 1;
        c.snd_nxt = req.iss + 1;
        c.snd_up = req.iss + 1;
        c.write_seq = req.iss + 1;
        c.pushed_seq = req.iss + 1;
        c.snd_sml = req.iss + 1;
        c.snd_wl1 = req.irs;
        c.rcv_wnd = req.rcv_wnd;
        c.rcv_ssthresh = req.rcv_wnd;
        c.window_clamp = req.window_clamp;
        c.rcv_wscale = req.rcv_wscale;
        c.snd_wscale = req.snd_wscale;
        c.wscale_ok = req.wscale_ok;
        c.sack_ok = req.sack_ok;
        c.tstamp_ok = req.tstamp_ok;
        c.tsoffset = req.ts_off;
        c.ts_recent = req.ts_recent;
        c.ts_recent_stamp = ctx.now;
        c.snd_wnd = (seg.window as u32) << c.snd_wscale;
        c.max_window = c.snd_wnd;
        c.mss_clamp = req.mss_clamp;
        c.tcp_header_len = 20 + if c.tstamp_ok { super::TCPOLEN_TSTAMP_ALIGNED } else { 0 };
        let mtu = ctx.net.mtu();
        c.advmss = (mtu - c.net_header_len() - 20).min(if c.user_mss != 0 { c.user_mss } else { u32::MAX });
        c.tcp_sync_mss(mtu, ctx.net.sysctl.tcp_min_snd_mss.get() as u32);
        c.tcp_initialize_rcv_mss();
        c.ack.ato = super::Duration::ZERO;
        c.ack.lrcvtime = ctx.now;
        c.total_retrans = req.num_retrans as u32;
        // tcp_synack_rtt_meas(): the SYN-ACK's own timing when it was sent once (a cookie
        // SYN-ACK left no send time), else the echoed timestamp (tcp_ack_update_rtt()).
        let ts_rtt = match seg.ts {
            Some((_, ecr)) if req.tstamp_ok && ecr != 0 => {
                let delta = (ctx.now.millis() as u32).wrapping_sub(ecr.wrapping_sub(req.ts_off));
                (delta < i32::MAX as u32 / 1000).then(|| delta.max(1) * 1000)
            }
            _ => None,
        };
        let rtt = if req.num_retrans == 0 && !req.syncookie {
            Some((ctx.now.saturating_since(req.first_synack).as_micros() as u32).max(1))
        } else {
            ts_rtt
        };
        if let Some(rtt) = rtt {
            // tcp_ack_update_rtt(): the sample also starts the min_rtt filter.
            c.tcp_update_rtt_min(ctx, rtt);
            c.tcp_rtt_estimator(ctx, rtt);
            c.tcp_set_rto();
        }
        // tcp_rcv_state_process(TCP_SYN_RECV): "SYN-ACK delivery isn't tracked in tcp_ack".
        c.delivered += 1;
        c.start = ctx.now;
        c.last_data_recv = ctx.now;
        c.napi_id = self.napi_id;
        c
    }
}

/// `secs_to_retrans()`: TCP_DEFER_ACCEPT seconds as the SYN-ACK retransmissions that cover
/// them (initial timeout `timeout` s, doubling up to `rto_max` s).
pub(crate) fn secs_to_retrans(seconds: i32, timeout: i32, rto_max: i32) -> u8 {
    let mut res = 0u8;
    if seconds > 0 {
        let (mut timeout, mut period) = (timeout, timeout);
        res = 1;
        while seconds > period && res < 255 {
            res += 1;
            timeout = (timeout << 1).min(rto_max);
            period += timeout;
        }
    }
    res
}

/// `retrans_to_secs()`: the seconds `retrans` retransmissions cover (what getsockopt reports).
pub(crate) fn retrans_to_secs(retrans: u8, timeout: i32, rto_max: i32) -> i32 {
    let mut period = 0;
    if retrans > 0 {
        let mut timeout = timeout;
        period = timeout;
        for _ in 1..retrans {
            timeout = (timeout << 1).min(rto_max);
            period += timeout;
        }
    }
    period
}
