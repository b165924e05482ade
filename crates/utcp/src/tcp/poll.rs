//! `tcp_poll()` (net/ipv4/tcp.c): a socket's readiness.

use super::{TcpState, RCV_SHUTDOWN, SEND_SHUTDOWN};
use crate::socket::sock::Sock;

/// `tcp_poll()`: the readiness mask of a socket.
pub(crate) fn tcp_poll(sk: &Sock) -> u32 {
    const IN: u32 = 0x1 | 0x40;
    const PRI: u32 = 0x2;
    const OUT: u32 = 0x4 | 0x100;
    const ERR: u32 = 0x8;
    const HUP: u32 = 0x10;
    const RDHUP: u32 = 0x2000;
    let self_net = sk.net();
    sk.peek_tp(|tp| {
        if tp.state == TcpState::Listen {
            let ready = sk.with_listener_queues(|q| {
                q.and_then(|q| q.listen.as_ref()).is_some_and(|l| !l.accept_queue.is_empty())
            });
            return if ready { IN } else { 0 };
        }
        let mut mask = 0;
        if tp.shutdown == RCV_SHUTDOWN | SEND_SHUTDOWN || tp.sk_state() == TcpState::Close {
            mask |= HUP;
        }
        if tp.shutdown & RCV_SHUTDOWN != 0 {
            mask |= IN | RDHUP;
        }
        if tp.state != TcpState::SynSent && tp.state != TcpState::SynRecv {
            let mut target = tp.rcvlowat.max(1) as i64;
            if tp.urg_data != 0 && tp.urg_seq == tp.copied_seq && !tp.urginline {
                target += 1;
            }
            let avail = tp.rcv_nxt.diff(tp.copied_seq) as i64;
            // tcp_stream_is_readable() → tcp_epollin_ready(), with tcp_rmem_pressure().
            let rmem_pressure = tp.rmem_alloc as i64 > tp.rcvbuf as i64 - (tp.rcvbuf >> 3) as i64;
            if avail > 0 && (avail >= target || rmem_pressure || tp.receive_window() <= tp.ack.rcv_mss) {
                mask |= IN;
            }
            if tp.shutdown & SEND_SHUTDOWN == 0 {
                if tp.sk_stream_is_writeable(self_net) {
                    mask |= OUT;
                } else {
                    // Ask for a write_space wakeup when ACKs free space.
                    tp.nospace.store(true, core::sync::atomic::Ordering::SeqCst);
                }
            } else {
                mask |= OUT;
            }
            if tp.urg_data & super::TCP_URG_VALID != 0 {
                mask |= PRI;
            }
        }
        if tp.err.is_some() || !tp.ext().error_queue.is_empty() {
            mask |= ERR;
        }
        mask
    })
}
