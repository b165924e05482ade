//! Segment output (net/ipv4/tcp_output.c): `tcp_transmit_skb`, `tcp_write_xmit`, ACKs, FIN,
//! RST, SYN, zero-window probes, retransmission, and the send side of `tcp_sendmsg`.

use super::{ack_flags::*, Ctx, TcpSock, TcpState, TcpTimer, TxSkb};
use crate::errno::Errno;
use crate::mib::{LinuxMib, TcpMib};
use crate::seq::SeqNum;
pub(crate) use crate::uapi::MSG_OOB;
pub use crate::uapi::{MSG_EOR, MSG_MORE};
use crate::wire::{SackBlocks, TcpFlags, TcpRepr};
use bytes::Bytes;

/// `tp->nonagle` bits.
pub(crate) const TCP_NAGLE_OFF: u8 = 1;
/// TCP_CORK.
pub(crate) const TCP_NAGLE_CORK: u8 = 2;
/// Push now, whatever Nagle says.
pub(crate) const TCP_NAGLE_PUSH: u8 = 4;

impl TcpSock {
    /// The nonagle mode from TCP_NODELAY / TCP_CORK.
    pub(crate) fn nonagle(&self) -> u8 {
        let mut n = 0;
        if self.nodelay {
            n |= TCP_NAGLE_OFF;
        }
        if self.cork {
            n |= TCP_NAGLE_CORK;
        }
        n
    }

    /// `tcp_mtu_to_mss()` for our MTU and header options: the IP options
    /// (`icsk_ext_hdr_len`) and the TCP options every segment carries come off, the floor
    /// (`tcp_min_snd_mss`) applying before the TCP options (whose length is 0 on a socket
    /// that never connected).
    pub(crate) fn tcp_mtu_to_mss(&self, pmtu: u32, min_snd_mss: u32) -> u32 {
        let mut mss = pmtu as i64 - self.net_header_len() as i64 - 20;
        if self.mss_clamp != 0 && mss > self.mss_clamp as i64 {
            mss = self.mss_clamp as i64;
        }
        mss -= self.inet.ext_hdr_len() as i64;
        mss = mss.max(min_snd_mss as i64);
        mss -= self.tcp_header_len as i64 - 20;
        mss.max(1) as u32
    }

    /// `icsk_af_ops->net_header_len`: the IP header of the family on the wire (an IPv4-mapped
    /// connection is IPv4's, `ipv6_mapped`).
    pub(crate) fn net_header_len(&self) -> u32 {
        super::ipv6::net_header_len(&self.daddr)
    }

    /// IP_OPTIONS changed `icsk_ext_hdr_len`: `icsk_sync_mss(sk, icsk_pmtu_cookie)`, the
    /// cookie being 0 until connect() routed the socket (a listener's stays 0).
    pub(crate) fn tcp_sync_ext_hdr(&mut self, ctx: &Ctx<'_>) {
        let routed = self.state != TcpState::Listen && (self.state != TcpState::Close || self.dport != 0);
        let cookie = if routed { self.path_mtu(ctx.net.mtu()) } else { 0 };
        self.tcp_sync_mss(cookie, ctx.net.sysctl.tcp_min_snd_mss.get() as u32);
    }

    /// `tcp_sync_mss()`: recomputes `mss_cache` from the path MTU.
    pub(crate) fn tcp_sync_mss(&mut self, pmtu: u32, min_snd_mss: u32) -> u32 {
        let mut mss = self.tcp_mtu_to_mss(pmtu, min_snd_mss);
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
    pub(crate) fn tcp_current_mss(&self) -> u32 {
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
    pub(crate) fn tcp_acceptable_seq(&self) -> SeqNum {
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
    pub(crate) fn tcp_transmit(&mut self, ctx: &mut Ctx<'_>, seq: SeqNum, flags: TcpFlags, payload: Bytes) {
        self.tcp_transmit_gso(ctx, seq, flags, payload, 0);
    }

    /// [`TcpSock::tcp_transmit`] for a TSO super-segment when `gso_size` ≠ 0 and the payload
    /// is longer: one frame the device cuts into `gso_size`-byte packets; the counters count
    /// those packets (`tcp_skb_pcount()`: TcpOutSegs, `tcpi_segs_out`, `tcpi_data_segs_out`).
    pub(crate) fn tcp_transmit_gso(
        &mut self,
        ctx: &mut Ctx<'_>,
        seq: SeqNum,
        flags: TcpFlags,
        payload: Bytes,
        gso_size: u32,
    ) {
        self.tcp_transmit_parts(ctx, seq, flags, [payload, Bytes::new()], gso_size)
    }

    /// Whether a write-queue skb may go out as two parts ([`TxSkb::frag`]): TCP cuts the
    /// packets itself (a device without TSO) and no urgent pointer is being sent.
    pub(super) fn tcp_xmit_parts_ok(&self, net: &crate::netns::Netns) -> bool {
        net.dev_gso_max_size() == 0 && !self.tcp_urg_mode()
    }

    /// [`TcpSock::tcp_transmit_gso`] for a payload in two parts (the second empty but for a
    /// head grown by `tcp_grow_skb` with a second part, whose first part then ends on a
    /// packet boundary): each part goes out as the packets GSO would cut from the joined
    /// payload (one header, FIN and PSH on the last packet only, CWR on the first only), so
    /// the parts are never copied together.
    pub(super) fn tcp_transmit_parts(
        &mut self,
        ctx: &mut Ctx<'_>,
        seq: SeqNum,
        mut flags: TcpFlags,
        parts: [Bytes; 2],
        gso_size: u32,
    ) {
        let total = parts[0].len() + parts[1].len();
        let gso_size = if total as u32 > gso_size { gso_size } else { 0 };
        let pcount = if gso_size == 0 { 1 } else { (total as u32).div_ceil(gso_size) };
        // "Force a PSH flag on all (GSO) packets to expedite GRO flush at receiver"; GSO
        // leaves it on the last packet.
        if pcount > 1 {
            flags |= TcpFlags::PSH;
        }
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
        let has_data = total > 0;
        let data_len = total as u64;
        tracing::trace!(target: "tcp_transmit_skb", seg = %repr_fmt(&repr, total));
        let two = !parts[1].is_empty();
        let mut part_seq = seq;
        for (i, payload) in parts.into_iter().take(1 + two as usize).enumerate() {
            let mut r = TcpRepr { seq_number: part_seq, ..repr };
            if two && i == 0 {
                r.flags = TcpFlags(r.flags.0 & !(TcpFlags::FIN.0 | TcpFlags::PSH.0));
            } else if i == 1 {
                r.flags = TcpFlags(r.flags.0 & !TcpFlags::CWR.0);
            }
            let len = payload.len() as u32;
            let g = if len > gso_size { gso_size } else { 0 };
            let mut frame = super::ipv6::tcp_xmit_frame(ctx.net, self, &r, payload, g);
            frame.priority = self.priority;
            frame.mark = self.mark;
            frame.oif = self.bound_dev_if;
            if i == 0 {
                self.tcp_tstamp_xmit(ctx, seq, data_len as u32, &frame);
            }
            // DEVIATION(linux): the two parts take their IP IDs in two steps, so another
            // socket's packet may take an ID between them (Linux numbers one GSO skb's
            // packets consecutively; utcp's IDs are one counter per namespace anyway).
            let dev_gso = ctx.net.dev_gso_max_size();
            if (two || !self.tx_csum.is_empty()) && crate::netdev::gso::netif_needs_gso(&frame, dev_gso) {
                // validate_xmit_skb()'s software GSO, done here where the payload sums taken
                // on the copy are at hand: the same packets, each checksum completed without
                // walking its payload again.
                let (sums, out) = (&mut self.tx_csum, &mut ctx.out);
                crate::netdev::gso::skb_gso_segment_csum(frame, |off, n| sums.take(part_seq + off, n), |f| out.push(f));
            } else {
                ctx.out.push(frame);
            }
            part_seq += len;
        }
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
    pub(crate) fn tcp_urg_mode(&self) -> bool {
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
            self.tcp_ca_event_tx_start(ctx.net, now);
        }
        self.lsndtime = now;
        // A reply within ato of the last received data means an interactive exchange.
        if now.saturating_since(self.ack.lrcvtime) < self.ack.ato {
            self.ack.pingpong = self.ack.pingpong.saturating_add(1).min(3);
        }
    }

    /// `tcp_send_ack()`: a pure ACK now.
    pub(crate) fn tcp_send_ack(&mut self, ctx: &mut Ctx<'_>) {
        if self.state == TcpState::Close {
            return;
        }
        let seq = self.tcp_acceptable_seq();
        self.tcp_transmit(ctx, seq, TcpFlags::ACK, Bytes::new());
    }

    /// `tcp_send_delayed_ack()`: arms the delayed-ACK timer.
    pub(crate) fn tcp_send_delayed_ack(&mut self, ctx: &mut Ctx<'_>) {
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
            let cur = self.timers.get(TcpTimer::DelAck).unwrap_or(timeout);
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
    pub(crate) fn tcp_send_active_reset(&mut self, ctx: &mut Ctx<'_>) {
        let seq = self.tcp_acceptable_seq();
        self.tcp_transmit(ctx, seq, TcpFlags(TcpFlags::ACK.0 | TcpFlags::RST.0), Bytes::new());
    }

    /// Appends user data to the write queue (the copy loop of `tcp_sendmsg_locked`). Returns
    /// the bytes taken, and whether it stopped because TCP memory was refused (the caller then
    /// waits in `sk_stream_wait_memory()`, as for send-buffer space); stops early when the
    /// send buffer is full.
    /// `tsflags` is the call's `sockc.tsflags` (the socket's, or a control message's).
    pub(crate) fn tcp_sendmsg_append(
        &mut self,
        ctx: &mut Ctx<'_>,
        data: &[u8],
        flags: i32,
        tsflags: u32,
    ) -> (usize, bool) {
        // Is sending application-limited?
        self.tcp_rate_check_app_limited();
        let mss_now = self.tcp_current_mss().max(1);
        let size_goal = self.tcp_xmit_size_goal(ctx.net, mss_now) as usize;
        // A device that takes super-segments gets them with a partial checksum: nothing to
        // sum here. Without TSO, software GSO completes each packet's checksum from the sums
        // taken during the copy (tcp/tx_csum.rs).
        let software_csum = ctx.net.dev_gso_max_size() == 0;
        let mut copied = 0;
        let mut no_memory = false;
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
                // tcp_stream_alloc_skb(): the first skb of empty queues is charged whatever
                // the limits say; another must have its memory scheduled.
                if self.write_queue.is_empty() && self.rtx_queue.is_empty() {
                    self.sk_forced_mem_schedule(super::TX_SKB_OVERHEAD);
                } else if !self.sk_wmem_schedule(ctx.now, super::TX_SKB_OVERHEAD) {
                    no_memory = true;
                    break;
                }
                // tcp_skb_entail() → tcp_slow_start_after_idle_check().
                self.tcp_slow_start_after_idle_check(ctx);
                let seq = self.write_seq;
                self.write_queue.push_back(TxSkb {
                    seq,
                    end_seq: seq,
                    flags: TcpFlags::ACK,
                    // sk_page_frag() + skb_page_frag_refill(): room for this write's bytes
                    // up to size_goal in the task's page fragment.
                    building: Some(crate::page_frag::alloc(size_goal.min(data.len() - copied))),
                    data: Bytes::new(),
                    frag: Bytes::new(),
                    sacked: 0,
                    tx_time: ctx.now,
                    tx_order: 0,
                    retrans: 0,
                    urg: false,
                    tx: Default::default(),
                });
                self.wmem_queued += super::TX_SKB_OVERHEAD;
            }
            let room = {
                let b = self.write_queue.back().and_then(|t| t.building.as_ref()).expect("building");
                (size_goal - b.len()).min(data.len() - copied)
            };
            let n = self.tcp_wmem_schedule(ctx.now, room as u32) as usize;
            if n == 0 {
                // tcp_remove_empty_skb(): an skb that got no bytes goes.
                if self
                    .write_queue
                    .back()
                    .is_some_and(|t| t.is_empty() && t.building.as_ref().is_some_and(|b| b.is_empty()))
                {
                    self.write_queue.pop_back();
                    self.wmem_queued -= super::TX_SKB_OVERHEAD;
                }
                no_memory = true;
                break;
            }
            let tail = self.write_queue.back_mut().expect("tail");
            let b = tail.building.as_mut().expect("building");
            if b.capacity() - b.len() < n && !crate::page_frag::try_extend(b, n) {
                // The tail's region is full (it was sized to an earlier, shorter write) and
                // cannot grow in place (other regions were carved after it): move its bytes
                // to a region with room for this write too, from the page fragment.
                let mut grown = crate::page_frag::alloc(b.len() + n);
                grown.extend_from_slice(b);
                *b = grown;
            }
            let src = &data[copied..copied + n];
            if software_csum {
                self.tx_csum.copy_and_csum(b, src, tail.seq, mss_now);
            } else {
                b.extend_from_slice(src);
            }
            tail.end_seq += n as u32;
            self.write_seq += n as u32;
            self.wmem_queued += n as u32;
            copied += n;
            let full = self.write_queue.back().is_some_and(|t| t.len() as usize >= size_goal);
            if copied < data.len() && full {
                if self.forced_push() {
                    self.tcp_mark_push_tail();
                    self.__tcp_push_pending_frames(ctx, mss_now, TCP_NAGLE_PUSH);
                } else if self.write_queue.len() == 1 {
                    // tcp_push_one(): a full skb at the head of the queue leaves at once.
                    self.tcp_push_one(ctx, mss_now);
                }
            }
        }
        if copied > 0 {
            if flags & MSG_OOB != 0 {
                self.snd_up = self.write_seq;
            }
            if copied == data.len() {
                // tcp_sendmsg_locked(): tcp_tx_timestamp() before the final tcp_push().
                self.tcp_tx_timestamp(tsflags);
            }
            self.tcp_push(ctx, flags, mss_now, self.nonagle());
        }
        (copied, no_memory)
    }

    /// `sk_stream_write_space()`: once writable, clears `SOCK_NOSPACE` and wakes writers.
    pub(crate) fn sk_stream_write_space(&mut self, ctx: &mut Ctx<'_>) {
        if self.sk_stream_is_writeable(ctx.net) {
            self.nospace.store(false, core::sync::atomic::Ordering::SeqCst);
            ctx.ev.write_space = true;
        }
    }

    /// `__sk_stream_memory_free(sk, wake)`: room in the send buffer, and (TCP's
    /// `sk_stream_memory_free` hook, `tcp_stream_memory_free()`) fewer unsent bytes than
    /// TCP_NOTSENT_LOWAT — counted double when deciding whether to wake a writer (`wake` = 1).
    pub(crate) fn sk_stream_memory_free(&self, net: &crate::netns::Netns, wake: u32) -> bool {
        if self.wmem_queued >= self.sndbuf {
            return false;
        }
        let notsent = self.write_seq.diff(self.snd_nxt) as u64;
        (notsent << wake) < self.tcp_notsent_lowat(net) as u64
    }

    /// `tcp_notsent_lowat()`: the socket's TCP_NOTSENT_LOWAT, else `net.ipv4.tcp_notsent_lowat`.
    pub(crate) fn tcp_notsent_lowat(&self, net: &crate::netns::Netns) -> u32 {
        if self.ext().notsent_lowat != 0 {
            self.ext().notsent_lowat
        } else {
            net.sysctl.tcp_notsent_lowat.get().clamp(0, u32::MAX as i64) as u32
        }
    }

    /// `__sk_stream_is_writeable(sk, 1)`: `sk_stream_wspace()` ≥ `sk_stream_min_wspace()` and
    /// the memory test above: writers may be woken, EPOLLOUT reported.
    pub(crate) fn sk_stream_is_writeable(&self, net: &crate::netns::Netns) -> bool {
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
    pub(crate) fn tcp_push(&mut self, ctx: &mut Ctx<'_>, flags: i32, mss_now: u32, nonagle: u8) {
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
    pub(crate) fn __tcp_push_pending_frames(&mut self, ctx: &mut Ctx<'_>, mss_now: u32, nonagle: u8) {
        if self.state == TcpState::Close {
            return;
        }
        if self.tcp_write_xmit(ctx, mss_now, nonagle) {
            self.tcp_check_probe_timer(ctx);
        }
    }

    /// `tcp_push_one()`: sends the head skb alone if the windows and Nagle let it.
    pub(crate) fn tcp_push_one(&mut self, ctx: &mut Ctx<'_>, mss_now: u32) {
        if self.state == TcpState::Close {
            return;
        }
        let nonagle = self.nonagle();
        self.__tcp_write_xmit(ctx, mss_now, nonagle, 1);
    }

    /// `tcp_push_pending_frames()`.
    pub(crate) fn tcp_push_pending_frames(&mut self, ctx: &mut Ctx<'_>) {
        let mss = self.tcp_current_mss();
        let nonagle = self.nonagle();
        self.__tcp_push_pending_frames(ctx, mss, nonagle);
    }

    /// `tcp_check_probe_timer()`: with data waiting and nothing in flight, arm the zero-window
    /// probe timer.
    pub(crate) fn tcp_check_probe_timer(&mut self, ctx: &mut Ctx<'_>) {
        if self.packets_out == 0
            && self.timers.get(TcpTimer::Retrans).is_none()
            && self.timers.get(TcpTimer::Probe0).is_none()
        {
            let when = self.tcp_probe0_when(self.ext().rto_max);
            self.reset_timer(TcpTimer::Probe0, ctx.now + when);
        }
    }

    /// `tcp_probe0_base()` << backoff, bounded.
    pub(crate) fn tcp_probe0_when(&self, max: super::Duration) -> super::Duration {
        let base = self.rto.max(super::TCP_RTO_MIN);
        let when = base.saturating_mul(1u32 << self.backoff.min(31));
        when.min(max)
    }

    pub(super) fn tcp_minshall_check(&self) -> bool {
        self.snd_sml().after(self.snd_una) && !self.snd_sml().after(self.snd_nxt)
    }

    fn snd_sml(&self) -> SeqNum {
        self.snd_sml
    }

    /// `tcp_write_xmit()`: sends what the congestion and receive windows, Nagle and TSO
    /// deferral allow. Returns true when data is pending but nothing at all could be sent and
    /// nothing is in flight (the caller arms the probe timer).
    ///
    /// DEVIATION(linux): no TCP small queues (`tcp_small_queue_check()`): utcp's devices
    /// queue what they are given; memlink backpressures the sending thread in `flush_tx`
    /// instead (docs/ARCHITECTURE.md, `netdev_max_backlog`).
    pub(crate) fn tcp_write_xmit(&mut self, ctx: &mut Ctx<'_>, mss_now: u32, nonagle: u8) -> bool {
        self.__tcp_write_xmit(ctx, mss_now, nonagle, 0)
    }

    /// [`TcpSock::tcp_write_xmit`] with `push_one`: 1 sends one skb at most; 2 (the tail loss
    /// probe) also sends one packet when cwnd is full ("Force out a loss probe pkt").
    pub(crate) fn __tcp_write_xmit(&mut self, ctx: &mut Ctx<'_>, mss_now: u32, nonagle: u8, push_one: u8) -> bool {
        // No transmission longer than sk_gso_max_size (at least one MSS): with an MSS near
        // 64 KiB (a 65536-byte MTU) tcp_min_tso_segs' two packets would not fit an IPv4 total
        // length; Linux's gso_features_check() cuts such a packet in software, which puts the
        // same MSS-sized packets on the wire.
        let gso_segs = (self.sk_gso_max_size(ctx.net) / mss_now.max(1)).max(1);
        let max_segs = self.tcp_tso_segs(ctx.net, mss_now).min(gso_segs);
        let mut sent = 0;
        while !self.write_queue.is_empty() {
            if self.tcp_pacing_check(ctx) {
                break;
            }
            let mut cwnd_quota = self.tcp_cwnd_test();
            if cwnd_quota == 0 {
                if push_one == 2 {
                    cwnd_quota = 1;
                } else {
                    break;
                }
            }
            let cwnd_quota = cwnd_quota.min(max_segs);
            let head_len = self.write_queue.front().expect("head").len();
            let missing = cwnd_quota.saturating_mul(mss_now).saturating_sub(head_len);
            if missing > 0 {
                self.tcp_grow_skb(missing, mss_now, self.tcp_xmit_parts_ok(ctx.net));
            }
            let skb = self.write_queue.front().expect("head");
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
            let nonagle_here = if is_last { nonagle } else { TCP_NAGLE_PUSH };
            let tso_segs = skb.len().div_ceil(mss_now).max(1);
            if tso_segs == 1 {
                if !self.tcp_nagle_test(skb, mss_now, nonagle_here) {
                    break;
                }
            } else if push_one == 0 && self.tcp_tso_should_defer(ctx, max_segs) {
                break;
            }
            let mut limit = mss_now;
            if tso_segs > 1 && !self.tcp_urg_mode() {
                limit = self.tcp_mss_split_point(mss_now, cwnd_quota, nonagle);
            }
            if limit == 0 {
                break;
            }
            if self.write_queue.front().expect("head").len() > limit {
                self.tso_fragment(limit);
            }
            let mut skb = self.write_queue.pop_front().expect("head");
            let parts_ok = self.tcp_xmit_parts_ok(ctx.net) && (skb.data.len() as u32).is_multiple_of(mss_now);
            if !skb.frag.is_empty() && !parts_ok {
                // The device or the MSS changed since the head took a second part: join them.
                skb.freeze();
            }
            let parts = skb.freeze_parts();
            let flags = skb.flags;
            skb.tx_time = ctx.now;
            skb.tx_order = self.tcp_next_tx_order();
            self.tcp_transmit_parts(ctx, skb.seq, flags, parts, mss_now);
            skb.tx = self.tcp_rate_skb_sent(ctx.now, skb.end_seq);
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
            if prior_packets == 0 || self.timers.get(TcpTimer::Retrans).is_none() {
                self.tcp_rearm_rto(ctx);
            }
            self.clear_timer(TcpTimer::Probe0);
            self.probes_out = 0;
            sent += pcount;
            if push_one != 0 {
                break;
            }
        }
        if sent > 0 {
            self.tcp_prr_sent(sent);
            if push_one != 2 {
                self.tcp_schedule_loss_probe(ctx);
            }
        }
        sent == 0 && self.packets_out == 0 && !self.write_queue.is_empty()
    }

    /// `tcp_rearm_rto()`.
    pub(crate) fn tcp_rearm_rto(&mut self, ctx: &mut Ctx<'_>) {
        if self.packets_out == 0 {
            self.clear_timer(TcpTimer::Retrans);
        } else {
            let rto = self.rto;
            self.reset_timer(TcpTimer::Retrans, ctx.now + rto);
        }
    }

    /// `tcp_send_fin()`: queues a FIN (on the unsent tail if any) and pushes.
    pub(crate) fn tcp_send_fin(&mut self, ctx: &mut Ctx<'_>) {
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
                frag: Bytes::new(),
                sacked: 0,
                tx_time: ctx.now,
                tx_order: 0,
                retrans: 0,
                urg: false,
                tx: Default::default(),
            });
        }
        self.write_seq += 1;
        let mss = self.tcp_current_mss();
        self.__tcp_push_pending_frames(ctx, mss, TCP_NAGLE_OFF);
    }

    /// Retransmits the head of the retransmit queue (`tcp_retransmit_skb`).
    pub(crate) fn tcp_retransmit_head(&mut self, ctx: &mut Ctx<'_>) -> bool {
        self.tcp_retransmit_at(ctx, 0)
    }

    /// `tcp_retransmit_skb()` for the segment at `idx` in the retransmit queue.
    pub(crate) fn tcp_retransmit_at(&mut self, ctx: &mut Ctx<'_>, idx: usize) -> bool {
        self.retransmit_skb(ctx, idx, false)
    }

    /// The tail loss probe's retransmission (`__tcp_retransmit_skb()` called directly): it
    /// does not start the episode's `retrans_stamp`.
    pub(crate) fn tcp_retransmit_probe(&mut self, ctx: &mut Ctx<'_>, idx: usize) -> bool {
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
        let tx = self.tcp_rate_skb_sent(ctx.now, self.rtx_queue[idx].end_seq);
        let skb = &mut self.rtx_queue[idx];
        skb.tx = tx;
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
    pub(crate) fn tcp_write_wakeup(&mut self, ctx: &mut Ctx<'_>) {
        let wnd_end = self.snd_una + self.snd_wnd;
        if let Some(head) = self.write_queue.front() {
            if head.seq.before(wnd_end) {
                let mss = self.tcp_current_mss();
                let seg = wnd_end.diff(head.seq).min(mss);
                if head.len() > seg {
                    self.tso_fragment(seg.max(1));
                }
                let mut skb = self.write_queue.pop_front().expect("head");
                skb.flags |= TcpFlags::PSH;
                let payload = skb.freeze().clone();
                skb.tx_time = ctx.now;
                skb.tx_order = self.tcp_next_tx_order();
                self.tcp_transmit(ctx, skb.seq, skb.flags, payload);
                skb.tx = self.tcp_rate_skb_sent(ctx.now, skb.end_seq);
                self.snd_nxt = skb.end_seq;
                self.packets_out += 1;
                self.rtx_queue.push_back(skb);
                if self.timers.get(TcpTimer::Retrans).is_none() {
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
pub(crate) fn send_error(tp: &TcpSock) -> Option<Errno> {
    if let Some(e) = tp.err {
        return Some(e);
    }
    if tp.shutdown & super::SEND_SHUTDOWN != 0 {
        return Some(Errno::EPIPE);
    }
    None
}
