//! Segment output (net/ipv4/tcp_output.c): `tcp_transmit_skb`, `tcp_write_xmit`, ACKs, FIN,
//! RST, SYN, zero-window probes, retransmission, and the send side of `tcp_sendmsg`.

use super::{ack_flags::*, Ctx, TcpSock, TcpState, TcpTimer, TxSkb};
use crate::errno::Errno;
use crate::mib::{LinuxMib, TcpMib};
use crate::seq::SeqNum;
use crate::wire::{SackBlocks, TcpFlags, TcpRepr};
use bytes::{Bytes, BytesMut};

/// `tp->nonagle` bits.
pub const TCP_NAGLE_OFF: u8 = 1;
/// TCP_CORK.
pub const TCP_NAGLE_CORK: u8 = 2;
/// Push now, whatever Nagle says.
pub const TCP_NAGLE_PUSH: u8 = 4;

/// `MSG_OOB`.
pub const MSG_OOB: i32 = 1;
/// `MSG_MORE`.
pub const MSG_MORE: i32 = 0x8000;
/// `MSG_EOR`.
pub const MSG_EOR: i32 = 0x80;

/// `MAX_TCP_HEADER` (x86_64): the headroom `tcp_xmit_size_goal()` and `tcp_tso_autosize()`
/// keep below `gso_max_size`.
const MAX_TCP_HEADER: u32 = 320;

impl TcpSock {
    /// The nonagle mode from TCP_NODELAY / TCP_CORK.
    pub fn nonagle(&self) -> u8 {
        let mut n = 0;
        if self.nodelay {
            n |= TCP_NAGLE_OFF;
        }
        if self.cork {
            n |= TCP_NAGLE_CORK;
        }
        n
    }

    /// `tcp_mtu_to_mss()` for our MTU and header options.
    pub fn tcp_mtu_to_mss(&self, pmtu: u32) -> u32 {
        let mut mss = pmtu as i64 - 20 - 20;
        if self.mss_clamp != 0 && mss > self.mss_clamp as i64 {
            mss = self.mss_clamp as i64;
        }
        mss -= self.tcp_header_len as i64 - 20;
        mss.max(48) as u32
    }

    /// `tcp_sync_mss()`: recomputes `mss_cache` from the path MTU.
    pub fn tcp_sync_mss(&mut self, pmtu: u32, min_snd_mss: u32) -> u32 {
        let mut mss = self.tcp_mtu_to_mss(pmtu);
        // tcp_bound_to_half_wnd()
        if self.max_window > 0 {
            let cutoff = if self.max_window > 536 { self.max_window / 2 } else { self.max_window };
            let cutoff = cutoff.max(68 - self.tcp_header_len);
            mss = mss.min(cutoff.max(min_snd_mss.min(mss)));
        }
        self.mss_cache = mss.max(1);
        self.mss_cache
    }

    /// `tcp_current_mss()`: MSS for the next segment given the options it will carry.
    pub fn tcp_current_mss(&self) -> u32 {
        let mut mss = self.mss_cache;
        let hlen = 20 + self.established_options_len();
        if hlen != self.tcp_header_len {
            mss = (mss as i64 - (hlen as i64 - self.tcp_header_len as i64)).max(1) as u32;
        }
        mss
    }

    fn sack_blocks(&self) -> SackBlocks {
        let mut b = SackBlocks::new();
        if !self.sack_ok {
            return b;
        }
        let max = if self.tstamp_ok { 3 } else { 4 };
        if let Some((s, e)) = self.dsack {
            b.push(s, e);
        }
        for &(s, e) in &self.selective_acks {
            if b.len() >= max {
                break;
            }
            b.push(s, e);
        }
        b
    }

    fn established_options_len(&self) -> u32 {
        let mut n = 0;
        if self.tstamp_ok {
            n += 12;
        }
        let sacks = self.sack_blocks().len() as u32;
        if sacks > 0 {
            n += 4 + 8 * sacks;
        }
        n
    }

    /// `tcp_acceptable_seq()`.
    pub fn tcp_acceptable_seq(&self) -> SeqNum {
        let wnd_end = self.snd_una + self.snd_wnd;
        if !wnd_end.before(self.snd_nxt) || (self.rcv_wscale_snd_shrink_ok()) {
            self.snd_nxt
        } else {
            wnd_end
        }
    }

    fn rcv_wscale_snd_shrink_ok(&self) -> bool {
        // tcp_acceptable_seq(): with window scaling a shrunk window is tolerated when the
        // difference is below the scale granularity.
        self.snd_wscale != 0 && self.snd_nxt.diff(self.snd_una + self.snd_wnd) < (1u32 << self.snd_wscale)
    }

    /// `tcp_transmit_skb()` for an established-style segment: fills ACK, window and options
    /// from the socket, builds the frame and queues it for transmission.
    pub fn tcp_transmit(&mut self, ctx: &mut Ctx<'_>, seq: SeqNum, flags: TcpFlags, payload: Bytes) {
        self.tcp_transmit_gso(ctx, seq, flags, payload, 0);
    }

    /// [`TcpSock::tcp_transmit`] for a TSO super-segment when `gso_size` ≠ 0 and the payload
    /// is longer: one frame the device cuts into `gso_size`-byte packets; the counters count
    /// those packets (`tcp_skb_pcount()`: TcpOutSegs, `tcpi_segs_out`, `tcpi_data_segs_out`).
    pub fn tcp_transmit_gso(
        &mut self,
        ctx: &mut Ctx<'_>,
        seq: SeqNum,
        mut flags: TcpFlags,
        payload: Bytes,
        gso_size: u32,
    ) {
        let gso_size = if payload.len() as u32 > gso_size { gso_size } else { 0 };
        let pcount = if gso_size == 0 { 1 } else { (payload.len() as u32).div_ceil(gso_size) };
        let prior_wstamp = self.tcp_wstamp_refresh(ctx.now);
        let syn = flags.syn();
        let urg_ptr = match self.tcp_urg_ptr(seq) {
            Some(p) => {
                flags |= TcpFlags::URG;
                p
            }
            None => 0,
        };
        let window = if syn { self.rcv_wnd.min(65535) as u16 } else { self.tcp_select_window(ctx) };
        let tsval = self.tcp_time_stamp(ctx.now);
        let repr = TcpRepr {
            src_port: self.sport,
            dst_port: self.dport,
            flags,
            seq_number: seq,
            ack_number: if flags.ack() { self.rcv_nxt } else { SeqNum(0) },
            window_len: window,
            urgent_pointer: urg_ptr,
            max_seg_size: if syn { Some(self.advmss as u16) } else { None },
            window_scale: if syn && self.wscale_ok { Some(self.rcv_wscale) } else { None },
            sack_permitted: syn && self.sack_ok,
            sack_ranges: if syn { SackBlocks::new() } else { self.sack_blocks() },
            timestamp: if self.tstamp_ok { Some((tsval, self.ts_recent)) } else { None },
            payload: &[],
        };
        // A DSACK block is reported once.
        self.dsack = None;
        let has_data = !payload.is_empty();
        let data_len = payload.len() as u64;
        let frame =
            crate::ip::build_tcp_frame_gso(ctx.net, self.saddr, self.daddr, &repr, payload, &self.inet, gso_size);
        let mut frame = frame;
        frame.priority = self.priority;
        frame.mark = self.mark;
        frame.oif = self.bound_dev_if;
        tracing::trace!(target: "tcp_transmit_skb", seg = %repr_fmt(&repr, frame.payload.len()));
        ctx.out.push(frame);
        self.segs_out += pcount;
        ctx.net.mib.tcp_add(TcpMib::OutSegs, pcount as u64);
        if flags.ack() {
            self.tcp_event_ack_sent(ctx);
        }
        if has_data {
            self.data_segs_out += pcount;
            self.bytes_sent += data_len;
            self.tcp_event_data_sent(ctx);
        }
        self.tcp_update_skb_after_send(prior_wstamp, data_len as u32);
        if flags.rst() {
            ctx.net.mib.tcp_inc(TcpMib::OutRsts);
        }
    }

    /// `tcp_urg_mode()`: urgent data was sent and is not yet acknowledged (`snd_up` follows
    /// `snd_una` otherwise, see `tcp_clean_rtx_queue`).
    pub fn tcp_urg_mode(&self) -> bool {
        self.snd_una != self.snd_up
    }

    /// The urgent pointer `__tcp_transmit_skb()` writes into a segment starting at `seq`.
    fn tcp_urg_ptr(&self, seq: SeqNum) -> Option<u16> {
        if !self.tcp_urg_mode() || !seq.before(self.snd_up) {
            return None;
        }
        if self.snd_up.before(seq + 0x10000) {
            Some(self.snd_up.diff(seq) as u16)
        } else if (seq + 0xffff).after(self.snd_nxt) {
            Some(0xffff)
        } else {
            None
        }
    }

    /// `tcp_event_ack_sent()`.
    fn tcp_event_ack_sent(&mut self, _ctx: &mut Ctx<'_>) {
        // tcp_dec_quickack_mode(): one quick ACK used.
        if self.ack.quick > 0 {
            self.ack.quick -= 1;
            if self.ack.quick == 0 {
                self.ack.ato = super::TCP_ATO_MIN;
            }
        }
        self.ack.pending = 0;
        self.clear_timer(TcpTimer::DelAck);
    }

    /// `tcp_slow_start_after_idle_check()`: after more than an RTO without sending, the
    /// congestion window restarts (`net.ipv4.tcp_slow_start_after_idle`, RFC 5681 §4.1).
    fn tcp_slow_start_after_idle_check(&mut self, ctx: &mut Ctx<'_>) {
        if ctx.net.sysctl.tcp_slow_start_after_idle.get() == 0 || self.packets_out > 0 {
            return;
        }
        let delta = ctx.now.saturating_since(self.lsndtime);
        if delta > self.rto {
            self.tcp_cwnd_restart(delta);
        }
    }

    /// `tcp_cwnd_restart()`: halve cwnd per idle RTO, down to the initial window.
    fn tcp_cwnd_restart(&mut self, mut delta: super::Duration) {
        let restart_cwnd = super::TCP_INIT_CWND.min(self.snd_cwnd);
        self.snd_ssthresh = self.tcp_current_ssthresh();
        let mut cwnd = self.snd_cwnd;
        while delta > self.rto && cwnd > restart_cwnd {
            delta -= self.rto;
            cwnd >>= 1;
        }
        self.snd_cwnd = cwnd.max(restart_cwnd);
        self.snd_cwnd_cnt = 0;
    }

    /// `tcp_event_data_sent()`.
    fn tcp_event_data_sent(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        if self.packets_in_flight() == 0 {
            // CA_EVENT_TX_START: CUBIC shifts its epoch over the idle time.
            let idle = now.saturating_since(self.lsndtime);
            if let Some(start) = self.cubic.epoch_start.as_mut() {
                *start = (*start + idle).min(now);
            }
        }
        self.lsndtime = now;
        // A reply within ato of the last received data means an interactive exchange.
        if now.saturating_since(self.ack.lrcvtime) < self.ack.ato {
            self.ack.pingpong = self.ack.pingpong.saturating_add(1).min(3);
        }
    }

    /// `tcp_send_ack()`: a pure ACK now.
    pub fn tcp_send_ack(&mut self, ctx: &mut Ctx<'_>) {
        if self.state == TcpState::Close {
            return;
        }
        let seq = self.tcp_acceptable_seq();
        self.tcp_transmit(ctx, seq, TcpFlags::ACK, Bytes::new());
    }

    /// `tcp_send_delayed_ack()`: arms the delayed-ACK timer.
    pub fn tcp_send_delayed_ack(&mut self, ctx: &mut Ctx<'_>) {
        let mut ato = self.ack.ato;
        let max_ato = super::TCP_DELACK_MAX;
        if ato > super::TCP_DELACK_MIN {
            let mut max = max_ato;
            if self.ack.pingpong > 0 || self.ack.pending & ICSK_ACK_PUSHED != 0 {
                max = self.tcp_delack_max();
            }
            if self.srtt_us != 0 {
                let rtt = super::Duration::from_micros((self.srtt_us >> 3) as u64).max(super::TCP_DELACK_MIN);
                if rtt < max {
                    max = rtt;
                }
            }
            ato = ato.min(max);
        }
        let timeout = ctx.now + ato;
        if self.ack.pending & ICSK_ACK_TIMER != 0 {
            // Already armed: if due within a quarter of ato, send now.
            let cur = self.timers[TcpTimer::DelAck as usize].unwrap_or(timeout);
            if cur <= ctx.now + (ato / 4) {
                self.tcp_send_ack(ctx);
                return;
            }
            let t = if timeout < cur { timeout } else { cur };
            self.ack.pending |= ICSK_ACK_SCHED | ICSK_ACK_TIMER;
            self.ack.timeout = t;
            self.reset_timer(TcpTimer::DelAck, t);
            return;
        }
        self.ack.pending |= ICSK_ACK_SCHED | ICSK_ACK_TIMER;
        self.ack.timeout = timeout;
        self.reset_timer(TcpTimer::DelAck, timeout);
    }

    /// `tcp_send_active_reset()`.
    pub fn tcp_send_active_reset(&mut self, ctx: &mut Ctx<'_>) {
        let seq = self.tcp_acceptable_seq();
        self.tcp_transmit(ctx, seq, TcpFlags(TcpFlags::ACK.0 | TcpFlags::RST.0), Bytes::new());
    }

    /// Appends user data to the write queue (the copy loop of `tcp_sendmsg_locked`). Returns
    /// the bytes taken; stops early when the send buffer is full.
    pub fn tcp_sendmsg_append(&mut self, ctx: &mut Ctx<'_>, data: &[u8], flags: i32) -> usize {
        let mss_now = self.tcp_current_mss().max(1);
        let size_goal = self.tcp_xmit_size_goal(ctx.net, mss_now) as usize;
        let mut copied = 0;
        while copied < data.len() {
            let can_append = self
                .write_queue
                .back()
                .map(|t| t.building.is_some() && (t.len() as usize) < size_goal && !t.flags.fin())
                .unwrap_or(false);
            if !can_append {
                if !self.sk_stream_memory_free(ctx.net, 0) {
                    break;
                }
                // tcp_skb_entail() → tcp_slow_start_after_idle_check().
                self.tcp_slow_start_after_idle_check(ctx);
                let seq = self.write_seq;
                self.write_queue.push_back(TxSkb {
                    seq,
                    end_seq: seq,
                    flags: TcpFlags::ACK,
                    building: Some(BytesMut::with_capacity(size_goal)),
                    data: Bytes::new(),
                    sacked: 0,
                    tx_time: ctx.now,
                    tx_order: 0,
                    first_tx: ctx.now,
                    retrans: 0,
                    urg: false,
                });
                self.sk_wmem_queued_add(super::TX_SKB_OVERHEAD);
            }
            let tail = self.write_queue.back_mut().expect("tail");
            let b = tail.building.as_mut().expect("building");
            let n = (size_goal - b.len()).min(data.len() - copied);
            b.extend_from_slice(&data[copied..copied + n]);
            tail.end_seq += n as u32;
            self.write_seq += n as u32;
            self.sk_wmem_queued_add(n as u32);
            copied += n;
            if copied < data.len() && self.forced_push() {
                self.tcp_mark_push_tail();
                self.tcp_write_xmit(ctx, mss_now, TCP_NAGLE_PUSH);
            }
        }
        if copied > 0 {
            if flags & MSG_OOB != 0 {
                self.snd_up = self.write_seq;
            }
            self.tcp_push(ctx, flags, mss_now, self.nonagle());
        }
        copied
    }

    /// `sk_stream_write_space()`: once writable, clears `SOCK_NOSPACE` and wakes writers.
    pub fn sk_stream_write_space(&mut self, ctx: &mut Ctx<'_>) {
        if self.sk_stream_is_writeable(ctx.net) {
            self.nospace.store(false, core::sync::atomic::Ordering::SeqCst);
            ctx.ev.write_space = true;
        }
    }

    /// `__sk_stream_memory_free(sk, wake)`: room in the send buffer, and (TCP's
    /// `sk_stream_memory_free` hook, `tcp_stream_memory_free()`) fewer unsent bytes than
    /// TCP_NOTSENT_LOWAT — counted double when deciding whether to wake a writer (`wake` = 1).
    pub fn sk_stream_memory_free(&self, net: &crate::netns::Netns, wake: u32) -> bool {
        if self.wmem_queued >= self.sndbuf {
            return false;
        }
        let notsent = self.write_seq.diff(self.snd_nxt) as u64;
        (notsent << wake) < self.tcp_notsent_lowat(net) as u64
    }

    /// `tcp_notsent_lowat()`: the socket's TCP_NOTSENT_LOWAT, else `net.ipv4.tcp_notsent_lowat`.
    pub fn tcp_notsent_lowat(&self, net: &crate::netns::Netns) -> u32 {
        if self.notsent_lowat != 0 {
            self.notsent_lowat
        } else {
            net.sysctl.tcp_notsent_lowat.get().clamp(0, u32::MAX as i64) as u32
        }
    }

    /// `__sk_stream_is_writeable(sk, 1)`: `sk_stream_wspace()` ≥ `sk_stream_min_wspace()` and
    /// the memory test above: writers may be woken, EPOLLOUT reported.
    pub fn sk_stream_is_writeable(&self, net: &crate::netns::Netns) -> bool {
        let wspace = self.sndbuf as i64 - self.wmem_queued as i64;
        wspace >= (self.wmem_queued as i64 >> 1) && self.sk_stream_memory_free(net, 1)
    }

    fn forced_push(&self) -> bool {
        self.write_seq.after(self.pushed_seq + (self.max_window >> 1))
    }

    fn tcp_mark_push_tail(&mut self) {
        if let Some(t) = self.write_queue.back_mut() {
            t.flags |= TcpFlags::PSH;
            self.pushed_seq = self.write_seq;
        }
    }

    /// `tcp_push()`.
    pub fn tcp_push(&mut self, ctx: &mut Ctx<'_>, flags: i32, mss_now: u32, nonagle: u8) {
        if self.write_queue.is_empty() {
            return;
        }
        if flags & MSG_MORE == 0 || self.forced_push() {
            self.tcp_mark_push_tail();
        }
        let nonagle = if flags & MSG_MORE != 0 { TCP_NAGLE_CORK } else { nonagle };
        self.__tcp_push_pending_frames(ctx, mss_now, nonagle);
    }

    /// `__tcp_push_pending_frames()`.
    pub fn __tcp_push_pending_frames(&mut self, ctx: &mut Ctx<'_>, mss_now: u32, nonagle: u8) {
        if self.state == TcpState::Close {
            return;
        }
        if self.tcp_write_xmit(ctx, mss_now, nonagle) {
            self.tcp_check_probe_timer(ctx);
        }
    }

    /// `tcp_push_pending_frames()`.
    pub fn tcp_push_pending_frames(&mut self, ctx: &mut Ctx<'_>) {
        let mss = self.tcp_current_mss();
        let nonagle = self.nonagle();
        self.__tcp_push_pending_frames(ctx, mss, nonagle);
    }

    /// `tcp_check_probe_timer()`: with data waiting and nothing in flight, arm the zero-window
    /// probe timer.
    pub fn tcp_check_probe_timer(&mut self, ctx: &mut Ctx<'_>) {
        if self.packets_out == 0
            && self.timers[TcpTimer::Retrans as usize].is_none()
            && self.timers[TcpTimer::Probe0 as usize].is_none()
        {
            let when = self.tcp_probe0_when(self.rto_max);
            self.reset_timer(TcpTimer::Probe0, ctx.now + when);
        }
    }

    /// `tcp_probe0_base()` << backoff, bounded.
    pub fn tcp_probe0_when(&self, max: super::Duration) -> super::Duration {
        let base = self.rto.max(super::TCP_RTO_MIN);
        let when = base.saturating_mul(1u32 << self.backoff.min(31));
        when.min(max)
    }

    fn tcp_minshall_check(&self) -> bool {
        self.snd_sml().after(self.snd_una) && !self.snd_sml().after(self.snd_nxt)
    }

    fn snd_sml(&self) -> SeqNum {
        self.snd_sml
    }

    /// `tcp_nagle_test()`.
    fn tcp_nagle_test(&self, skb: &TxSkb, cur_mss: u32, nonagle: u8) -> bool {
        if nonagle & TCP_NAGLE_PUSH != 0 {
            return true;
        }
        if self.tcp_urg_mode() || skb.flags.fin() {
            return true;
        }
        let partial = skb.len() < cur_mss;
        let hold = partial
            && (nonagle & TCP_NAGLE_CORK != 0 || (nonagle == 0 && self.packets_out > 0 && self.tcp_minshall_check()));
        !hold
    }

    /// `tcp_write_xmit()`: sends what the congestion and receive windows and Nagle allow.
    /// Returns true when data is pending but nothing at all could be sent and nothing is in
    /// flight (the caller arms the probe timer).
    ///
    /// DEVIATION(linux): no `tcp_tso_should_defer()` and no TCP small queues
    /// (`tcp_small_queue_check()`): on a GSO device a super-segment leaves as soon as cwnd, the
    /// receive window and Nagle allow (docs/ARCHITECTURE.md).
    pub fn tcp_write_xmit(&mut self, ctx: &mut Ctx<'_>, mss_now: u32, nonagle: u8) -> bool {
        let gso_max = ctx.net.gso_max_size.load(std::sync::atomic::Ordering::Relaxed);
        let mut sent = 0;
        while !self.write_queue.is_empty() {
            if self.tcp_pacing_check(ctx) {
                break;
            }
            let skb = self.write_queue.front().expect("non-empty");
            let in_flight = self.packets_in_flight();
            // tcp_cwnd_test(): "Don't be strict about the congestion window for the final FIN"
            // (a FIN in a one-segment skb always has quota).
            let final_fin = skb.flags.fin() && skb.len() <= mss_now;
            if in_flight >= self.snd_cwnd && !final_fin {
                break;
            }
            // tcp_snd_wnd_test(): the FIN's sequence number needs the window too, so a zero
            // window holds it back (and the persist timer probes).
            let mut end = skb.end_seq;
            if skb.len() > mss_now {
                end = skb.seq + mss_now;
            }
            if end.after(self.snd_una + self.snd_wnd) {
                break;
            }
            let is_last = self.write_queue.len() == 1;
            if !self.tcp_nagle_test(skb, mss_now, if is_last { nonagle } else { TCP_NAGLE_PUSH }) {
                break;
            }
            // A device with TSO/GSO takes up to tcp_tso_segs() packets as one super-segment,
            // as far as cwnd, the receive window and Nagle allow (tcp_mss_split_point).
            let mut limit = mss_now;
            if gso_max > 0 && skb.len() > mss_now && !self.tcp_urg_mode() {
                let quota = self.snd_cwnd.saturating_sub(in_flight).max(1);
                let max_segs = quota.min(self.tcp_tso_segs(ctx.net, mss_now, gso_max));
                let nonagle = if is_last { nonagle } else { TCP_NAGLE_PUSH };
                limit = self.tcp_mss_split_point(mss_now, max_segs, nonagle);
            }
            if self.write_queue.front().expect("head").len() > limit {
                self.tcp_split_head(limit);
            }
            let mut skb = self.write_queue.pop_front().expect("head");
            let payload = skb.freeze().clone();
            let flags = skb.flags;
            skb.tx_time = ctx.now;
            skb.tx_order = self.tcp_next_tx_order();
            skb.first_tx = ctx.now;
            self.tcp_transmit_gso(ctx, skb.seq, flags, payload, if gso_max > 0 { mss_now } else { 0 });
            // tcp_minshall_update(): a segment with a short last packet.
            if skb.len() < skb.len().div_ceil(mss_now).max(1) * mss_now {
                self.snd_sml = skb.end_seq;
            }
            let prior_packets = self.packets_out;
            self.snd_nxt = skb.end_seq;
            // The retransmit queue holds one entry per packet: a super-segment is cut at
            // mss_now there (its pieces share its payload), so SACK, loss marking and
            // retransmission work per packet.
            let pcount = self.tcp_queue_sent(skb, mss_now);
            self.packets_out += pcount;
            ctx.net.mib.add(LinuxMib::TCPOrigDataSent, pcount as u64);
            if prior_packets == 0 || self.timers[TcpTimer::Retrans as usize].is_none() {
                self.tcp_rearm_rto(ctx);
            }
            self.clear_timer(TcpTimer::Probe0);
            self.probes_out = 0;
            sent += pcount;
        }
        if sent > 0 {
            self.tcp_prr_sent(sent);
            self.tcp_schedule_loss_probe(ctx);
        }
        sent == 0 && self.packets_out == 0 && !self.write_queue.is_empty()
    }

    /// Puts a sent segment on the retransmit queue, cut into `mss`-byte pieces when it is a
    /// super-segment (they share its payload; FIN and PSH stay on the last); returns the
    /// packets it counts for (`tcp_skb_pcount()`).
    fn tcp_queue_sent(&mut self, mut skb: TxSkb, mss: u32) -> u32 {
        let mut pcount = 1;
        while skb.data.len() as u32 > mss {
            let first = TxSkb {
                seq: skb.seq,
                end_seq: skb.seq + mss,
                flags: TcpFlags(skb.flags.0 & !(TcpFlags::FIN.0 | TcpFlags::PSH.0)),
                building: None,
                data: skb.data.slice(..mss as usize),
                sacked: 0,
                tx_time: skb.tx_time,
                first_tx: skb.first_tx,
                retrans: 0,
                urg: skb.urg,
                tx_order: skb.tx_order,
            };
            skb.data = skb.data.slice(mss as usize..);
            skb.seq += mss;
            // The pieces left the device in sequence order: each later one was sent after.
            skb.tx_order = self.tcp_next_tx_order();
            self.wmem_queued += super::TX_SKB_OVERHEAD;
            self.rtx_queue.push_back(first);
            pcount += 1;
        }
        self.rtx_queue.push_back(skb);
        pcount
    }

    /// `tcp_xmit_size_goal()`: how large `tcp_sendmsg` builds write-queue entries: one MSS,
    /// or with TSO/GSO up to `gso_max_size` less headers (`tcp_bound_to_half_wnd`), in whole
    /// MSS.
    pub fn tcp_xmit_size_goal(&self, net: &crate::netns::Netns, mss_now: u32) -> u32 {
        let gso_max = net.gso_max_size.load(std::sync::atomic::Ordering::Relaxed);
        if gso_max == 0 || self.tcp_urg_mode() {
            return mss_now;
        }
        let mut goal = gso_max.saturating_sub(1 + MAX_TCP_HEADER);
        if self.max_window > super::TCP_MSS_DEFAULT {
            goal = goal.min(self.max_window / 2);
        }
        (goal / mss_now).max(1) * mss_now
    }

    /// `tcp_tso_segs()` / `tcp_tso_autosize()`: packets per super-segment, about 1 ms of data
    /// at `sk_pacing_rate` (`sk_pacing_shift` 10) plus, on a short path, `gso_max_size >>
    /// (min_rtt >> tcp_tso_rtt_log)`, at least `tcp_min_tso_segs`.
    pub fn tcp_tso_segs(&self, net: &crate::netns::Netns, mss_now: u32, gso_max: u32) -> u32 {
        let mut bytes = self.pacing_rate >> 10;
        let rtt_log = net.sysctl.tcp_tso_rtt_log.get().clamp(0, 31) as u32;
        let r = if self.min_rtt_us == 0 { 0 } else { self.min_rtt_us >> rtt_log };
        if r < 32 {
            bytes = bytes.saturating_add((gso_max >> r) as u64);
        }
        let bytes = bytes.min(gso_max.saturating_sub(1 + MAX_TCP_HEADER) as u64) as u32;
        let min_segs = net.sysctl.tcp_min_tso_segs.get().clamp(1, 255) as u32;
        (bytes / mss_now).max(min_segs)
    }

    /// `tcp_mss_split_point()`: how much of the write queue's head one super-segment takes:
    /// `max_segs` packets, or what the receive window leaves, less a trailing partial packet
    /// that Nagle would hold.
    fn tcp_mss_split_point(&self, mss_now: u32, max_segs: u32, nonagle: u8) -> u32 {
        let skb = self.write_queue.front().expect("head");
        let window = (self.snd_una + self.snd_wnd).diff(skb.seq);
        let max_len = mss_now.saturating_mul(max_segs);
        if max_len <= window && self.write_queue.len() > 1 {
            return max_len;
        }
        let needed = skb.len().min(window);
        if max_len <= needed {
            return max_len;
        }
        let partial = needed % mss_now;
        // tcp_nagle_check()
        let hold = partial != 0
            && (nonagle & TCP_NAGLE_CORK != 0 || (nonagle == 0 && self.packets_out > 0 && self.tcp_minshall_check()));
        if hold {
            (needed - partial).max(mss_now)
        } else {
            needed.max(mss_now)
        }
    }

    /// Splits the head of the write queue at `mss` bytes (`tso_fragment`).
    fn tcp_split_head(&mut self, mss: u32) {
        let head = self.write_queue.front_mut().expect("head");
        let data = head.freeze().clone();
        let first = data.slice(..mss as usize);
        let rest = data.slice(mss as usize..);
        let second = TxSkb {
            seq: head.seq + mss,
            end_seq: head.end_seq,
            flags: head.flags,
            building: None,
            data: rest,
            sacked: 0,
            tx_time: head.tx_time,
            tx_order: 0,
            first_tx: head.first_tx,
            retrans: 0,
            urg: head.urg,
        };
        head.data = first;
        head.end_seq = head.seq + mss;
        // FIN and PSH belong to the last piece.
        head.flags = TcpFlags(head.flags.0 & !(TcpFlags::FIN.0 | TcpFlags::PSH.0));
        self.write_queue.insert(1, second);
        self.sk_wmem_queued_add(super::TX_SKB_OVERHEAD);
    }

    /// `tcp_rearm_rto()`.
    pub fn tcp_rearm_rto(&mut self, ctx: &mut Ctx<'_>) {
        if self.packets_out == 0 {
            self.clear_timer(TcpTimer::Retrans);
        } else {
            let rto = self.rto;
            self.reset_timer(TcpTimer::Retrans, ctx.now + rto);
        }
    }

    /// `tcp_send_fin()`: queues a FIN (on the unsent tail if any) and pushes.
    pub fn tcp_send_fin(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(tail) = self.write_queue.back_mut() {
            tail.flags |= TcpFlags::FIN;
            tail.end_seq += 1;
        } else {
            let seq = self.write_seq;
            self.sk_wmem_queued_add(super::TX_SKB_OVERHEAD);
            self.write_queue.push_back(TxSkb {
                seq,
                end_seq: seq + 1,
                flags: TcpFlags(TcpFlags::ACK.0 | TcpFlags::FIN.0),
                building: None,
                data: Bytes::new(),
                sacked: 0,
                tx_time: ctx.now,
                tx_order: 0,
                first_tx: ctx.now,
                retrans: 0,
                urg: false,
            });
        }
        self.write_seq += 1;
        let mss = self.tcp_current_mss();
        self.__tcp_push_pending_frames(ctx, mss, TCP_NAGLE_OFF);
    }

    /// Retransmits the head of the retransmit queue (`tcp_retransmit_skb`).
    pub fn tcp_retransmit_head(&mut self, ctx: &mut Ctx<'_>) -> bool {
        self.tcp_retransmit_at(ctx, 0)
    }

    /// `tcp_retransmit_skb()` for the segment at `idx` in the retransmit queue.
    pub fn tcp_retransmit_at(&mut self, ctx: &mut Ctx<'_>, idx: usize) -> bool {
        self.retransmit_skb(ctx, idx, false)
    }

    /// The tail loss probe's retransmission (`__tcp_retransmit_skb()` called directly): it
    /// does not start the episode's `retrans_stamp`.
    pub fn tcp_retransmit_probe(&mut self, ctx: &mut Ctx<'_>, idx: usize) -> bool {
        self.retransmit_skb(ctx, idx, true)
    }

    fn retransmit_skb(&mut self, ctx: &mut Ctx<'_>, idx: usize, probe: bool) -> bool {
        let Some(skb) = self.rtx_queue.get(idx) else {
            return false;
        };
        // A segment partly acknowledged is trimmed first (tcp_trim_head).
        let mut seq = skb.seq;
        let mut payload = skb.data.clone();
        let mut flags = skb.flags;
        if self.snd_una.after(seq) {
            let cut = self.snd_una.diff(seq).min(payload.len() as u32);
            payload = payload.slice(cut as usize..);
            seq = self.snd_una;
            if flags.syn() {
                flags = TcpFlags(flags.0 & !TcpFlags::SYN.0);
            }
        }
        self.bytes_retrans += payload.len() as u64;
        self.tcp_transmit(ctx, seq, flags, payload);
        let order = self.tcp_next_tx_order();
        let skb = &mut self.rtx_queue[idx];
        skb.tx_time = ctx.now;
        skb.tx_order = order;
        skb.retrans = skb.retrans.saturating_add(1);
        if skb.sacked & super::TCPCB_SACKED_RETRANS == 0 {
            skb.sacked |= super::TCPCB_SACKED_RETRANS | super::TCPCB_EVER_RETRANS;
            self.retrans_out += 1;
        }
        self.total_retrans += 1;
        self.tcp_undo_count_retrans(ctx.now);
        ctx.net.mib.tcp_inc(TcpMib::RetransSegs);
        // tcp_retransmit_skb() reads the skb's stamp after the transmission refreshed it:
        // `retrans_stamp` is when the episode's first retransmission left (a TLP's does
        // not count), and TCP_USER_TIMEOUT / tcp_retries2 are measured from there.
        if self.retrans_stamp.is_none() && !probe {
            self.retrans_stamp = Some(ctx.now);
        }
        true
    }

    /// `tcp_write_wakeup()` / `tcp_xmit_probe_skb()`: the zero-window probe. Sends new data if
    /// the window allows some, else an old-sequence segment that elicits an ACK.
    pub fn tcp_write_wakeup(&mut self, ctx: &mut Ctx<'_>) {
        let wnd_end = self.snd_una + self.snd_wnd;
        if let Some(head) = self.write_queue.front() {
            if head.seq.before(wnd_end) {
                let mss = self.tcp_current_mss();
                let seg = wnd_end.diff(head.seq).min(mss);
                if head.len() > seg {
                    self.tcp_split_head(seg.max(1));
                }
                let mut skb = self.write_queue.pop_front().expect("head");
                skb.flags |= TcpFlags::PSH;
                let payload = skb.freeze().clone();
                skb.tx_time = ctx.now;
                skb.tx_order = self.tcp_next_tx_order();
                skb.first_tx = ctx.now;
                self.tcp_transmit(ctx, skb.seq, skb.flags, payload);
                self.snd_nxt = skb.end_seq;
                self.packets_out += 1;
                self.rtx_queue.push_back(skb);
                if self.timers[TcpTimer::Retrans as usize].is_none() {
                    self.tcp_rearm_rto(ctx);
                }
                return;
            }
        }
        // tcp_xmit_probe_skb(sk, 0): seq = snd_una - 1, no data.
        let seq = self.snd_una - 1;
        self.tcp_transmit(ctx, seq, TcpFlags::ACK, Bytes::new());
        ctx.inc(LinuxMib::TCPWinProbe);
    }
}

fn repr_fmt(r: &TcpRepr<'_>, len: usize) -> String {
    format!(
        "{:?} {}:{}({}) ack {} win {}",
        r.flags,
        r.seq_number,
        r.seq_number + len as u32,
        len,
        r.ack_number,
        r.window_len
    )
}

/// Errors a send can end with.
pub fn send_error(tp: &TcpSock) -> Option<Errno> {
    if let Some(e) = tp.err {
        return Some(e);
    }
    if tp.shutdown & super::SEND_SHUTDOWN != 0 {
        return Some(Errno::EPIPE);
    }
    None
}
