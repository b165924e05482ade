//! Closing a TCP socket (net/ipv4/tcp.c): `tcp_close` (the last reference is gone: FIN or
//! RST, lingering, orphaning) and `tcp_disconnect` (abort to CLOSE: `connect(AF_UNSPEC)`,
//! `shutdown()` of a listener or connecting socket).

use super::connect::tcp_close_state;
use super::{TcpState, TcpTimer, RCV_SHUTDOWN, SEND_SHUTDOWN};
use crate::errno::Errno;
use crate::mib::LinuxMib;
use crate::seq::SeqNum;
use crate::socket::sock::{OwnedSock, Sock, WaitResult};
use crate::time::Duration;
use std::sync::Arc;

/// `tcp_disconnect()`: abort to CLOSE, RST if the peer must hear of it.
pub(crate) fn tcp_disconnect(sk: &Arc<Sock>, g: &mut OwnedSock<'_>) {
    let old = g.tp().state;
    let listener_port = (old == TcpState::Listen).then(|| g.tp().sport);
    // The request queues go first (a SYN arriving from now on meets a closed socket); the
    // children never accepted are reset below.
    let children: Vec<Arc<Sock>> = sk
        .set_listener_queues(None)
        .and_then(|mut q| q.listen.take())
        .map(|l| l.accept_queue.into_iter().collect())
        .unwrap_or_default();
    g.with_ctx_inner(|tp, ctx| {
        tp.set_state(ctx, TcpState::Close);
        if matches!(
            old,
            TcpState::Established | TcpState::CloseWait | TcpState::FinWait1 | TcpState::FinWait2 | TcpState::SynRecv
        ) {
            tp.tcp_send_active_reset(ctx);
        }
        for t in TcpTimer::ALL {
            tp.clear_timer(t);
        }
        tp.write_queue.clear();
        tp.tx_csum.clear();
        tp.rtx_queue.clear();
        tp.tcp_zerocopy_purge(ctx);
        tp.receive_queue.clear();
        tp.ofo_queue.clear();
        tp.rmem_alloc = 0;
        tp.packets_out = 0;
        tp.shutdown = 0;
        tp.done = false;
        // tcp_need_reset() states and SYN_SENT report ECONNRESET.
        if matches!(
            old,
            TcpState::Established
                | TcpState::CloseWait
                | TcpState::FinWait1
                | TcpState::FinWait2
                | TcpState::SynRecv
                | TcpState::SynSent
        ) {
            tp.err = Some(Errno::ECONNRESET);
        }
        tp.copied_seq = tp.rcv_nxt;
        tp.urg_data = 0;
        tp.peek_off = -1;
        let seq = tp.write_seq + tp.max_window + 2;
        tp.write_seq = if seq.0 == 0 { SeqNum(1) } else { seq };
        tp.ack.rcv_mss = super::TCP_MIN_MSS;
        tp.window_clamp = 0;
        tp.bytes_received = 0;
        tp.bytes_acked = 0;
        tp.segs_in = 0;
        tp.segs_out = 0;
        tp.data_segs_in = 0;
        tp.data_segs_out = 0;
        tp.total_retrans = 0;
        ctx.ev.state_change = true;
    });
    if let Some(p) = listener_port {
        sk.host.unhash_listener(p, sk.id);
    } else {
        let tp = g.tp();
        sk.host.unhash_key((tp.saddr, tp.sport, tp.daddr, tp.dport), sk.id);
    }
    // `inet->inet_dport = 0` and `__sk_dst_reset()`: the socket has no destination any more
    // (IP_MTU answers ENOTCONN again).
    g.tp_mut().dport = 0;
    for c in children {
        abort_child(&c);
    }
}

fn abort_child(c: &Arc<Sock>) {
    let mut g = c.lock_sock();
    g.with_ctx_inner(|tp, ctx| {
        if matches!(tp.state, TcpState::Established | TcpState::CloseWait | TcpState::SynRecv) {
            tp.tcp_send_active_reset(ctx);
        }
        tp.orphan = true;
        tp.tcp_done(ctx);
    });
    c.release_sock(g);
}

/// `tcp_close()`: the last reference to the socket is gone.
pub(crate) fn tcp_close(sk: &Arc<Sock>) {
    let mut g = sk.lock_sock();
    if g.tp().state == TcpState::Listen {
        tcp_disconnect(sk, &mut g);
        g.tp_mut().orphan = true;
        sk.release_sock(g);
        sk.host.put_port(sk.id);
        return;
    }
    let linger = g.tp().ext().linger;
    let closed_now = g.with_ctx_inner(|tp, ctx| {
        tp.shutdown = RCV_SHUTDOWN | SEND_SHUTDOWN;
        let mut data_was_unread = 0u32;
        while let Some(skb) = tp.receive_queue.pop_front() {
            let mut len = skb.end_seq.diff(skb.seq);
            if skb.tcp_flags.fin() {
                len -= 1;
            }
            data_was_unread += len;
        }
        tp.recount_rmem();
        if tp.state == TcpState::Close {
            return true;
        }
        if data_was_unread > 0 {
            ctx.inc(LinuxMib::TCPAbortOnClose);
            tp.set_state(ctx, TcpState::Close);
            tp.tcp_send_active_reset(ctx);
        } else if linger == Some(0) {
            let old = tp.state;
            tp.set_state(ctx, TcpState::Close);
            if matches!(
                old,
                TcpState::Established
                    | TcpState::CloseWait
                    | TcpState::FinWait1
                    | TcpState::FinWait2
                    | TcpState::SynRecv
            ) {
                tp.tcp_send_active_reset(ctx);
            }
            ctx.inc(LinuxMib::TCPAbortOnData);
        } else if tcp_close_state(tp, ctx) {
            tp.tcp_send_fin(ctx);
        }
        false
    });
    if closed_now {
        sk.release_sock(g);
        sk.host.put_port(sk.id);
        return;
    }
    // sk_stream_wait_close(): with SO_LINGER on and a time set, close() waits (socket
    // released) until the FIN is acknowledged (no longer FIN_WAIT1, CLOSING or LAST_ACK)
    // or the linger time runs out; it returns 0 either way.
    if let Some(secs) = linger.filter(|s| *s > 0) {
        let deadline = sk.now() + Duration::from_secs(secs as u64);
        while matches!(g.tp().state, TcpState::FinWait1 | TcpState::Closing | TcpState::LastAck) {
            if sk.sk_wait_data(&mut g, Some(deadline), None, None).result == WaitResult::TimedOut {
                break;
            }
        }
    }
    let closed_now = g.with_ctx_inner(|tp, ctx| {
        tp.tcp_orphan(ctx.now);
        let mut time_wait = false;
        if tp.state == TcpState::FinWait2 {
            if tp.ext().linger2 < 0 {
                tp.set_state(ctx, TcpState::Close);
                tp.tcp_send_active_reset(ctx);
                ctx.inc(LinuxMib::TCPAbortOnLinger);
            } else {
                let tmo = tp.tcp_fin_time(ctx);
                if tmo > super::TCP_TIMEWAIT_LEN {
                    tp.reset_timer(TcpTimer::Keepalive, ctx.now + (tmo - super::TCP_TIMEWAIT_LEN));
                } else {
                    tp.tcp_time_wait(ctx, TcpState::FinWait2, tmo);
                    time_wait = true;
                }
            }
        }
        if tp.state != TcpState::Close && !time_wait && tp.tcp_check_oom(ctx.now, 0) {
            // Too many orphans, or out of TCP memory: reset now (the FIN queued above, if
            // not sent, never is).
            tp.set_state(ctx, TcpState::Close);
            tp.tcp_send_active_reset(ctx);
            ctx.inc(LinuxMib::TCPAbortOnMemory);
        }
        if tp.state == TcpState::Close {
            for t in TcpTimer::ALL {
                tp.clear_timer(t);
            }
            tp.write_queue.clear();
            tp.tx_csum.clear();
            tp.rtx_queue.clear();
            tp.tcp_zerocopy_purge(ctx);
            ctx.ev.destroy = true;
        }
        tp.state == TcpState::Close
    });
    sk.release_sock(g);
    if closed_now {
        // A socket closed in CLOSE (bound but never listening or connected, or already
        // dead) gives its port back here (`inet_csk_destroy_sock` → `inet_put_port`).
        sk.host.put_port(sk.id);
    }
}
