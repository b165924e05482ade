//! `tcp_recvmsg()` (net/ipv4/tcp.c) as the seed walks it: the receive-queue walk, the backlog
//! flush, the prequeue, `sk_wait_data`, urgent data, MSG_PEEK/WAITALL/TRUNC/DONTWAIT/OOB,
//! SO_RCVLOWAT, SO_RCVTIMEO, SO_PEEK_OFF, `tcp_cleanup_rbuf`'s window-update ACK, and the
//! control messages (TCP_CM_INQ, SO_TIMESTAMP(NS)).

use super::{ack_flags::*, Ctx, TcpSock, TcpState};
use crate::errno::Errno;
use crate::mib::LinuxMib;
use crate::socket::sock::{Cancel, OwnedSock, Sock, WaitResult};
use crate::time::{Duration, Instant};
pub(crate) use crate::uapi::MSG_ZEROCOPY;
pub use crate::uapi::{MSG_CTRUNC, MSG_DONTWAIT, MSG_ERRQUEUE, MSG_OOB, MSG_PEEK, MSG_TRUNC, MSG_WAITALL};

/// Where received bytes go: the user's iovecs, filled in order (`struct iov_iter`).
pub struct IovIter<'a> {
    iovs: Iovs<'a>,
    idx: usize,
    off: usize,
    left: usize,
    /// Bytes past the real buffers up to `left` fault (NULL or short user memory).
    fault: bool,
    /// A copy hit faulting memory.
    pub(crate) faulted: bool,
}

/// The buffers of an [`IovIter`]: one (`ITER_UBUF`, what recv/read build, without allocating)
/// or a vector of them (`ITER_IOVEC`).
enum Iovs<'a> {
    Ubuf(&'a mut [u8]),
    Iovec(Vec<&'a mut [u8]>),
}

impl Iovs<'_> {
    fn count(&self) -> usize {
        match self {
            Iovs::Ubuf(_) => 1,
            Iovs::Iovec(v) => v.len(),
        }
    }
    fn get(&mut self, i: usize) -> &mut [u8] {
        match self {
            Iovs::Ubuf(b) => b,
            Iovs::Iovec(v) => v[i],
        }
    }
}

impl<'a> IovIter<'a> {
    /// An iterator over `iovs`; the total is clamped to `max` (MAX_RW_COUNT).
    pub fn new(iovs: Vec<&'a mut [u8]>, max: usize) -> IovIter<'a> {
        let total: usize = iovs.iter().map(|v| v.len()).sum();
        IovIter { iovs: Iovs::Iovec(iovs), idx: 0, off: 0, left: total.min(max), fault: false, faulted: false }
    }
    /// `import_ubuf()`: an iterator over one buffer, clamped to `max`.
    pub(crate) fn ubuf(buf: &'a mut [u8], max: usize) -> IovIter<'a> {
        let left = buf.len().min(max);
        IovIter { iovs: Iovs::Ubuf(buf), idx: 0, off: 0, left, fault: false, faulted: false }
    }
    /// Claims `len` bytes of which only the real buffers are writable: copying beyond them
    /// faults (EFAULT), as copying to a bad user pointer does.
    pub(crate) fn set_fault(&mut self, len: usize) {
        self.left = len;
        self.fault = true;
    }
    /// `msg_data_left()`.
    pub(crate) fn left(&self) -> usize {
        self.left
    }
    /// Copies `src` (at most `left()` bytes) into the buffers.
    pub(crate) fn copy_in(&mut self, mut src: &[u8]) -> usize {
        let mut done = 0;
        src = &src[..src.len().min(self.left)];
        while !src.is_empty() && self.idx < self.iovs.count() {
            let dst = &mut self.iovs.get(self.idx)[self.off..];
            let n = dst.len().min(src.len());
            dst[..n].copy_from_slice(&src[..n]);
            src = &src[n..];
            done += n;
            self.off += n;
            if self.off == self.iovs.get(self.idx).len() {
                self.idx += 1;
                self.off = 0;
            }
        }
        if done < src.len() && self.fault {
            self.faulted = true;
        }
        self.left -= done;
        done
    }
    /// Consumes `n` bytes without writing (MSG_TRUNC).
    pub(crate) fn skip(&mut self, n: usize) {
        self.left -= n.min(self.left);
    }
    /// Copies bytes `[offset, offset+len)` of an skb.
    fn copy_skb(&mut self, skb: &crate::skb::Skb, offset: usize, len: usize) {
        let mut off = offset;
        let mut need = len;
        for frag in core::iter::once(&skb.data).chain(skb.frags.iter()) {
            if need == 0 {
                break;
            }
            if off >= frag.len() {
                off -= frag.len();
                continue;
            }
            let n = (frag.len() - off).min(need);
            self.copy_in(&frag[off..off + n]);
            need -= n;
            off = 0;
        }
    }
}

/// A reader's buffer made available to packet processing (`tp->ucopy`).
pub(crate) trait UserSink {
    /// Bytes that can still be copied.
    fn room(&self) -> usize;
    /// Copies `data` in (the caller checked `room`).
    fn copy_from(&mut self, data: &[u8]);
}

/// The `tp->ucopy` of the seed: the reader's iov plus how much it took directly.
pub(crate) struct Ucopy<'i, 'a> {
    /// The reader's buffers.
    pub(crate) iov: &'i mut IovIter<'a>,
    /// Bytes copied by packet processing.
    pub(crate) copied: usize,
}

impl UserSink for Ucopy<'_, '_> {
    fn room(&self) -> usize {
        self.iov.left()
    }
    fn copy_from(&mut self, data: &[u8]) {
        self.copied += self.iov.copy_in(data);
    }
}

/// Results of a receive besides the byte count.
#[derive(Default, Debug, Clone)]
pub struct RecvInfo {
    /// Flags for `msg_flags` (MSG_OOB, MSG_TRUNC).
    pub(crate) msg_flags: i32,
    /// TCP_CM_INQ value when TCP_INQ is on.
    pub(crate) inq: Option<u32>,
    /// Arrival time of the last skb read (for SO_TIMESTAMP/NS), when enabled.
    pub(crate) tstamp: Option<Instant>,
    /// Which timestamp cmsg: 1 = SO_TIMESTAMP, 2 = SO_TIMESTAMPNS.
    pub(crate) tstamp_kind: u8,
    /// SO_TIMESTAMP(NS)_NEW chose the new control message types.
    pub(crate) tstamp_new: bool,
    /// MSG_ERRQUEUE: the report's `msg_name` (ICMP errors only) and its `IP_RECVERR` (or
    /// `IPV6_RECVERR`) control message.
    pub(crate) errqueue: Option<(Option<std::net::SocketAddr>, Cmsg)>,
    /// SCM_TIMESTAMPING's software time (`tss.ts[0]`), when there is one to report; the
    /// message type follows `tstamp_new`.
    pub(crate) timestamping: Option<Instant>,
    /// Control messages between the timestamps and IP_RECVERR (SCM_TIMESTAMPING_OPT_STATS,
    /// `ip_cmsg_recv()`'s IP_PKTINFO/IP_TTL/IP_TOS): (level, type, data).
    pub(crate) errqueue_cmsgs: Vec<(i32, i32, Vec<u8>)>,
}

/// One control message: (level, type, data).
pub(crate) type Cmsg = (i32, i32, Vec<u8>);

/// `sock_rcvlowat()`.
fn sock_rcvlowat(tp: &TcpSock, waitall: bool, len: usize) -> usize {
    let v = if waitall { len } else { (tp.rcvlowat.max(0) as usize).min(len) };
    v.max(1)
}

impl TcpSock {
    /// `tcp_cleanup_rbuf()`: after a read, ACK if it is time, or if the window opened a lot.
    pub(crate) fn tcp_cleanup_rbuf(&mut self, ctx: &mut Ctx<'_>, copied: usize) {
        let mut time_to_ack = false;
        if self.ack.pending & ICSK_ACK_SCHED != 0
            && (self.rcv_nxt.diff(self.rcv_wup) > self.ack.rcv_mss
                || (copied > 0
                    && (self.ack.pending & ICSK_ACK_PUSHED2 != 0
                        || (self.ack.pending & ICSK_ACK_PUSHED != 0 && self.ack.pingpong == 0))
                    && self.rmem_alloc == 0))
        {
            time_to_ack = true;
        }
        if copied > 0 && !time_to_ack && self.shutdown & super::RCV_SHUTDOWN == 0 {
            let rcv_window_now = self.receive_window();
            if 2 * rcv_window_now <= self.window_clamp {
                let new_window = self.__tcp_select_window(ctx);
                if new_window != 0 && new_window >= 2 * rcv_window_now {
                    time_to_ack = true;
                }
            }
        }
        if time_to_ack {
            self.tcp_send_ack(ctx);
        }
    }

    /// `tcp_eat_recv_skb()`: frees the head skb of the receive queue.
    fn tcp_eat_head(&mut self) {
        if let Some(skb) = self.receive_queue.pop_front() {
            self.rmem_alloc = self.rmem_alloc.saturating_sub(skb.truesize);
            self.sk_mem_reclaim();
        }
    }

    /// `sk->sk_state` as the owner of the socket sees it.
    ///
    /// DEVIATION(linux): Linux hands TIME_WAIT to a timewait mini-socket and closes the full
    /// socket (`tcp_time_wait()` → `tcp_done()`), so the user's socket reads `TCP_CLOSE`; utcp
    /// keeps the timewait identity on the full socket, and user-facing code maps it here.
    pub fn sk_state(&self) -> TcpState {
        match self.state {
            TcpState::TimeWait => TcpState::Close,
            s => s,
        }
    }

    /// `sk_peek_offset()`.
    fn peek_offset(&self, flags: i32) -> u32 {
        if flags & MSG_PEEK != 0 && self.peek_off >= 0 {
            self.peek_off as u32
        } else {
            0
        }
    }
}

/// Where the skb walk of one loop iteration landed.
enum Found {
    /// Data at `*seq`: (queue index, offset into the skb).
    Data(usize, u32),
    /// Only a FIN at `*seq` (`found_fin_ok`).
    Fin,
    /// Nothing queued at `*seq`.
    Nothing,
}

/// The `skb_queue_walk` of `tcp_recvmsg_locked()`: the skb holding `seq`, or the FIN.
fn find_skb(tp: &TcpSock, seq: super::SeqNum) -> Found {
    for (i, skb) in tp.receive_queue.iter().enumerate() {
        // "TCP recvmsg seq # bug": cannot happen with one receive queue.
        if seq.before(skb.seq) {
            break;
        }
        let mut offset = seq.diff(skb.seq);
        if skb.tcp_flags.syn() {
            offset = offset.wrapping_sub(1);
        }
        if offset < skb.len {
            return Found::Data(i, offset);
        }
        if skb.tcp_flags.fin() {
            return Found::Fin;
        }
    }
    Found::Nothing
}

/// `tcp_recvmsg()`: lock, `tcp_recvmsg_locked()`, release, then the control-message
/// information (TCP_CM_INQ, receive timestamps) for a successful call.
pub(crate) fn tcp_recvmsg(
    sock: &Sock,
    iov: &mut IovIter<'_>,
    flags: i32,
    cancel: Option<&Cancel>,
    info: &mut RecvInfo,
) -> Result<usize, Errno> {
    if flags & MSG_ERRQUEUE != 0 {
        // inet_recv_error() → ip_recv_error(): ICMP errors (IP_RECVERR), MSG_ZEROCOPY
        // completions and SO_TIMESTAMPING reports.
        let mut g = sock.lock_sock();
        // A socket that never queued a report has no TcpSockExt: reading finds the queue
        // empty without allocating one.
        let r = match g.tp_mut().ext_if_any() {
            Some(e) => crate::ip::recverr::ip_recv_error(&mut e.error_queue),
            None => Err(Errno::EAGAIN),
        };
        if let Ok(x) = &r {
            // sock_dequeue_err_skb(): a next ICMP error becomes sk_err; an ICMP error
            // followed by none clears it; other reports leave it alone.
            use crate::ip::recverr::{SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6};
            let icmp = |o: u8| o == SO_EE_ORIGIN_ICMP || o == SO_EE_ORIGIN_ICMP6;
            match g.tp().ext().error_queue.front() {
                Some(n) if icmp(n.origin) => g.tp_mut().err = n.errno,
                _ if icmp(x.origin) => g.tp_mut().err = None,
                _ => {}
            }
        }
        let now = sock.now();
        let view = crate::tcp::timestamping::ErrqueueView::of(g.tp());
        let family = g.tp().family;
        sock.release_sock(g);
        let mut x = r?;
        let n = iov.copy_in(&x.payload);
        if n < x.payload.len() {
            info.msg_flags |= MSG_TRUNC;
        }
        view.sock_recv_errqueue(&mut x, now, info);
        info.msg_flags |= MSG_ERRQUEUE;
        info.errqueue = Some((x.name(family), x.cmsg(family)));
        return Ok(n);
    }
    let nonblock = flags & MSG_DONTWAIT != 0;
    sock.sk_busy_loop_if_idle(nonblock);
    let mut g = sock.lock_sock();
    let mut tstamp = None;
    let ret = tcp_recvmsg_locked(sock, &mut g, iov, flags, cancel, info, &mut tstamp);
    let inq_hint = g.tp().inq_hint();
    let want_inq = g.tp().recvmsg_inq;
    let tstamp_kind = g.tp().rx_tstamp_opt;
    let tstamp_new = g.tp().tstamp_new;
    let tsflags = g.tp().tsflags;
    sock.release_sock(g);
    if ret.is_ok() {
        // tcp_recv_timestamp(): only when an skb was read and SO_TIMESTAMP(NS) is on.
        if let (Some(ts), 1..) = (tstamp, tstamp_kind) {
            info.tstamp = Some(ts);
            info.tstamp_kind = tstamp_kind;
            info.tstamp_new = tstamp_new;
        }
        // ... and SCM_TIMESTAMPING for SOF_TIMESTAMPING_SOFTWARE with the skb stamped.
        if let Some(ts) = tstamp.filter(|_| crate::tcp::timestamping::rx_software_report(tsflags, tstamp_kind)) {
            info.timestamping = Some(ts);
            info.tstamp_new = tstamp_new;
        }
        if want_inq {
            info.inq = Some(inq_hint);
        }
    }
    ret
}

/// `tcp_recvmsg_locked()` of Linux 6.18 (the seed's loop, minus the prequeue's
/// bookkeeping, which lives in `sk_wait_data` here). `tstamp` receives the arrival time of
/// the last skb walked over (`tcp_update_recv_tstamps`).
fn tcp_recvmsg_locked<'s>(
    sock: &'s Sock,
    g: &mut OwnedSock<'s>,
    iov: &mut IovIter<'_>,
    flags: i32,
    cancel: Option<&Cancel>,
    info: &mut RecvInfo,
    tstamp: &mut Option<Instant>,
) -> Result<usize, Errno> {
    if g.tp().state == TcpState::Listen {
        return Err(Errno::ENOTCONN);
    }
    let nonblock = flags & MSG_DONTWAIT != 0;
    // sock_rcvtimeo(): `None` = MAX_SCHEDULE_TIMEOUT, `Some(0)` = non-blocking.
    let mut timeo: Option<Duration> = if nonblock { Some(Duration::ZERO) } else { g.tp().ext().rcvtimeo };
    let deadline = timeo.map(|t| sock.now() + t);
    if flags & MSG_OOB != 0 {
        let (peek, trunc) = (flags & MSG_PEEK != 0, flags & MSG_TRUNC != 0);
        let r = g.tp_mut().tcp_recv_urg(iov.left(), peek, trunc)?;
        if let Some(b) = r.byte {
            iov.copy_in(&[b]);
            if iov.faulted {
                return Err(Errno::EFAULT);
            }
        }
        if r.oob {
            info.msg_flags |= MSG_OOB;
        }
        if r.trunc {
            info.msg_flags |= MSG_TRUNC;
        }
        return Ok(r.len);
    }
    let peek = flags & MSG_PEEK != 0;
    let peek_offset = g.tp().peek_offset(flags);
    let mut peek_seq = g.tp().copied_seq + peek_offset;
    let mut len = iov.left();
    let target = sock_rcvlowat(g.tp(), flags & MSG_WAITALL != 0, len);
    let mut copied: usize = 0;
    let mut urg_hole: u32 = 0;
    let mut user_recv = false;
    let mut result: Result<(), Errno> = Ok(());
    let signal_pending = || cancel.is_some_and(|c| c.is_cancelled());
    // do { ... } while (len > 0): the body runs at least once, even for len == 0.
    loop {
        let seq = if peek { peek_seq } else { g.tp().copied_seq };
        // Are we at urgent data? Stop if we have read anything or have SIGURG pending.
        {
            let tp = g.tp();
            if tp.urg_data != 0 && tp.urg_seq == seq {
                if copied > 0 {
                    break;
                }
                if signal_pending() {
                    // `timeo ? sock_intr_errno(timeo) : -EAGAIN`.
                    // DEVIATION(linux): a `Cancel` is a signal without SA_RESTART: EINTR, never
                    // ERESTARTSYS.
                    result = Err(if timeo == Some(Duration::ZERO) { Errno::EAGAIN } else { Errno::EINTR });
                    break;
                }
            }
        }
        match find_skb(g.tp(), seq) {
            Found::Data(i, offset) => {
                // found_ok_skb
                let tp = g.tp_mut();
                let skb_len = tp.receive_queue[i].len;
                let mut offset = offset;
                let mut used = (skb_len - offset).min(len.min(u32::MAX as usize) as u32);
                let mut cur = seq;
                let mut skip_copy = false;
                if tp.urg_data != 0 {
                    let urg_offset = tp.urg_seq.diff(cur);
                    if urg_offset < used {
                        if urg_offset == 0 {
                            if !tp.urginline {
                                cur += 1;
                                urg_hole += 1;
                                offset += 1;
                                used -= 1;
                                if used == 0 {
                                    skip_copy = true;
                                }
                            }
                        } else {
                            used = urg_offset;
                        }
                    }
                }
                if peek {
                    peek_seq = cur;
                } else {
                    tp.copied_seq = cur;
                }
                if !skip_copy {
                    if flags & MSG_TRUNC == 0 {
                        iov.copy_skb(&tp.receive_queue[i], offset as usize, used as usize);
                        if iov.faulted {
                            // skb_copy_datagram_msg() failed: "Exception. Bailout!"
                            if copied == 0 {
                                result = Err(Errno::EFAULT);
                            }
                            break;
                        }
                    } else {
                        iov.skip(used as usize);
                    }
                    cur += used;
                    if peek {
                        peek_seq = cur;
                    } else {
                        tp.copied_seq = cur;
                    }
                    copied += used as usize;
                    len -= used as usize;
                    if peek {
                        // sk_peek_offset_fwd()
                        if tp.peek_off >= 0 {
                            tp.peek_off = tp.peek_off.wrapping_add(used as i32);
                        }
                    } else if tp.peek_off >= 0 {
                        // sk_peek_offset_bwd()
                        tp.peek_off = (tp.peek_off - used as i32).max(0);
                    }
                    g.with_ctx_inner(|tp, ctx| tp.tcp_rcv_space_adjust(ctx));
                }
                // skip_copy:
                let tp = g.tp_mut();
                if tp.urg_data != 0 && tp.copied_seq.after(tp.urg_seq) {
                    tp.urg_data = 0;
                }
                *tstamp = Some(tp.receive_queue[i].tstamp);
                if used + offset < skb_len {
                    // continue
                } else if tp.receive_queue[i].tcp_flags.fin() {
                    // found_fin_ok
                    if peek {
                        peek_seq += 1;
                    } else {
                        tp.copied_seq += 1;
                        tp.tcp_eat_head();
                    }
                    break;
                } else if !peek {
                    tp.tcp_eat_head();
                }
            }
            Found::Fin => {
                // found_fin_ok
                let tp = g.tp_mut();
                if peek {
                    peek_seq += 1;
                } else {
                    tp.copied_seq += 1;
                    tp.tcp_eat_head();
                }
                break;
            }
            Found::Nothing => {
                // Well, if we have backlog, try to process it now yet.
                if copied >= target && !g.backlog_pending() {
                    break;
                }
                let expired = timeo == Some(Duration::ZERO);
                {
                    let tp = g.tp_mut();
                    if copied > 0 {
                        if expired
                            || tp.err.is_some()
                            || tp.sk_state() == TcpState::Close
                            || tp.shutdown & super::RCV_SHUTDOWN != 0
                            || signal_pending()
                        {
                            break;
                        }
                    } else {
                        if tp.done {
                            break;
                        }
                        if let Some(e) = tp.err.take() {
                            // sock_error()
                            result = Err(e);
                            break;
                        }
                        if tp.shutdown & super::RCV_SHUTDOWN != 0 {
                            break;
                        }
                        if tp.sk_state() == TcpState::Close {
                            // This occurs when user tries to read from never connected socket.
                            result = Err(Errno::ENOTCONN);
                            break;
                        }
                        if expired {
                            result = Err(Errno::EAGAIN);
                            break;
                        }
                        if signal_pending() {
                            // sock_intr_errno()
                            result = Err(Errno::EINTR);
                            break;
                        }
                    }
                }
                if copied >= target {
                    // Do not sleep, just process backlog: `release_sock(); lock_sock();` with the
                    // reader still installed in `tp->ucopy` (if it is), so in-order data goes
                    // straight to its buffer (TCPDirectCopyFromBacklog).
                    let before = iov.left();
                    let direct = sock.flush_backlog(g, user_recv.then_some(&mut *iov));
                    if direct > 0 {
                        sock.net().mib.add(LinuxMib::TCPDirectCopyFromBacklog, direct as u64);
                    }
                    let chunk = before - iov.left();
                    copied += chunk;
                    len -= chunk;
                } else {
                    sock.with_ctx(g, |tp, ctx| tp.tcp_cleanup_rbuf(ctx, copied));
                    // The seed's prequeue (tcp_low_latency = 0): install this reader so that
                    // packet input queues segments for it and it runs TCP input itself,
                    // copying straight into its buffer.
                    // DEVIATION(linux): Linux 6.18 has no prequeue (tcp_low_latency is a no-op);
                    // utcp keeps the seed's, off by default (tcp_low_latency = 1). Either way
                    // the bytes returned are the same; only who runs TCP input differs.
                    let use_prequeue =
                        sock.net().sysctl.tcp_low_latency.get() == 0 && flags & (MSG_TRUNC | MSG_PEEK) == 0;
                    if use_prequeue && !user_recv && g.tp().copied_seq == g.tp().rcv_nxt {
                        user_recv = true;
                    }
                    let before = iov.left();
                    let res = sock.sk_wait_data(g, deadline, cancel, user_recv.then_some(&mut *iov));
                    let (from_backlog, from_prequeue) = res.direct;
                    if from_backlog > 0 {
                        sock.net().mib.add(LinuxMib::TCPDirectCopyFromBacklog, from_backlog as u64);
                    }
                    if from_prequeue > 0 {
                        sock.net().mib.add(LinuxMib::TCPDirectCopyFromPrequeue, from_prequeue as u64);
                    }
                    let chunk = before - iov.left();
                    copied += chunk;
                    len -= chunk;
                    let timed_out = res.result == WaitResult::TimedOut || deadline.is_some_and(|dl| sock.now() >= dl);
                    if timed_out {
                        timeo = Some(Duration::ZERO);
                    }
                }
                if peek && peek_seq - peek_offset - copied as u32 - urg_hole != g.tp().copied_seq {
                    // "Application bug, race in MSG_PEEK"
                    peek_seq = g.tp().copied_seq + peek_offset;
                }
            }
        }
        if len == 0 {
            break;
        }
    }
    // Clean up data we have read: This will do ACK frames.
    sock.with_ctx(g, |tp, ctx| tp.tcp_cleanup_rbuf(ctx, copied));
    result.map(|()| copied)
}
