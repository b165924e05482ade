//! Receive-window selection and receive-buffer autotuning (tcp_output.c: `tcp_select_window`,
//! `__tcp_select_window`, `tcp_select_initial_window`; tcp_input.c: `tcp_grow_window`,
//! `tcp_init_buffer_space`, `tcp_rcv_space_adjust`, `tcp_clamp_window`).

use super::input::RxMeta;
use super::{Ctx, TcpSock, SOCK_RCVBUF_LOCK, TCP_MAX_WSCALE, TCP_MIN_MSS, TCP_MSS_DEFAULT};
use crate::mib::LinuxMib;
use crate::skb::skb_truesize;
use crate::wire::TcpFlags;

/// `tcp_select_initial_window()`: returns (rcv_wnd, window_clamp, rcv_wscale).
pub(crate) fn tcp_select_initial_window(
    ctx: &Ctx<'_>,
    space: i64,
    mss: u32,
    window_clamp: u32,
    wscale_ok: bool,
    init_rcv_wnd: u32,
) -> (u32, u32, u8) {
    let mut space = space.max(0) as u64;
    let window_clamp = if window_clamp == 0 { 65535u64 << TCP_MAX_WSCALE } else { window_clamp as u64 };
    space = space.min(window_clamp);
    if space > mss as u64 {
        space = space / mss as u64 * mss as u64;
    }
    let mut rcv_wnd = if ctx.net.sysctl.tcp_workaround_signed_windows.get() != 0 {
        space.min(super::MAX_TCP_WINDOW as u64)
    } else {
        space
    };
    if init_rcv_wnd != 0 {
        rcv_wnd = rcv_wnd.min(init_rcv_wnd as u64 * mss as u64);
    }
    let mut wscale = 0u8;
    if wscale_ok {
        let s = &ctx.net.sysctl;
        let mut sp = space.max(s.tcp_rmem.idx(2) as u64).max(s.rmem_max.get() as u64);
        sp = sp.min(window_clamp);
        let ilog2 = 63 - sp.max(1).leading_zeros() as i64;
        wscale = (ilog2 - 15).clamp(0, TCP_MAX_WSCALE as i64) as u8;
    }
    let clamp = ((65535u64) << wscale).min(window_clamp) as u32;
    (rcv_wnd as u32, clamp, wscale)
}

impl TcpSock {
    /// `__tcp_select_window()`: the window we would like to advertise now.
    pub(crate) fn __tcp_select_window(&mut self, ctx: &mut Ctx<'_>) -> u32 {
        let mut mss = self.ack.rcv_mss as i64;
        let mut free_space = self.space();
        let allowed_space = self.full_space();
        let full_space = (self.window_clamp as i64).min(allowed_space);
        if mss > full_space {
            mss = full_space;
            if mss <= 0 {
                return 0;
            }
        }
        let ws_mask = !((1i64 << self.rcv_wscale) - 1);
        // Only allow the window to shrink with the sysctl on and window scaling in effect.
        if self.tcp_shrink_window_allowed(ctx) {
            // New windows are exact multiples of the scaling factor.
            free_space &= ws_mask;
            if free_space < (full_space >> 1) {
                self.ack.quick = 0;
                if self.tcp_under_memory_pressure() {
                    self.tcp_adjust_rcv_ssthresh();
                }
                if free_space < (allowed_space >> 4) || free_space < mss || free_space < (1i64 << self.rcv_wscale) {
                    return 0;
                }
            }
            if free_space > self.rcv_ssthresh as i64 {
                free_space = (self.rcv_ssthresh as i64) & ws_mask;
            }
            return free_space.max(0) as u32;
        }
        if free_space < (full_space >> 1) {
            self.ack.quick = 0;
            if self.tcp_under_memory_pressure() {
                self.tcp_adjust_rcv_ssthresh();
            }
            free_space &= ws_mask;
            if free_space < (allowed_space >> 4) || free_space < mss {
                return 0;
            }
        }
        if free_space > self.rcv_ssthresh as i64 {
            free_space = self.rcv_ssthresh as i64;
        }
        let mut window = self.rcv_wnd as i64;
        if self.rcv_wscale != 0 {
            window = free_space;
            let ws = self.rcv_wscale as i64;
            if ((window >> ws) << ws) != window {
                window = ((window >> ws) + 1) << ws;
            }
        } else if window <= free_space - mss || window > free_space {
            window = free_space / mss * mss;
        } else if mss == full_space && free_space > window + (full_space >> 1) {
            window = free_space;
        }
        window.max(0) as u32
    }

    /// `tcp_select_window()`: chooses the window for an outgoing segment, never shrinking what
    /// was offered, and records it; returns the scaled 16-bit field value.
    pub(crate) fn tcp_select_window(&mut self, ctx: &mut Ctx<'_>) -> u16 {
        let old_win = self.rcv_wnd;
        // Out of memory for the data just dropped: advertise a zero window at once.
        if self.ack.pending & super::ack_flags::ICSK_ACK_NOMEM != 0 {
            self.rcv_wnd = 0;
            self.rcv_wup = self.rcv_nxt;
            if old_win != 0 {
                ctx.inc(LinuxMib::TCPToZeroWindowAdv);
            }
            return 0;
        }
        let cur_win = self.receive_window();
        let mut new_win = self.__tcp_select_window(ctx);
        if new_win < cur_win && !self.tcp_shrink_window_allowed(ctx) {
            // Never shrink the offered window (tcp_shrink_window = 0).
            if new_win == 0 {
                ctx.inc(LinuxMib::TCPWantZeroWindowAdv);
            }
            new_win = (cur_win + (1 << self.rcv_wscale) - 1) & !((1u32 << self.rcv_wscale) - 1);
            if self.rcv_wscale == 0 {
                new_win = cur_win;
            }
        }
        self.rcv_wnd = new_win;
        self.rcv_wup = self.rcv_nxt;
        let max = if self.rcv_wscale == 0 && ctx.net.sysctl.tcp_workaround_signed_windows.get() != 0 {
            super::MAX_TCP_WINDOW
        } else {
            65535u32 << self.rcv_wscale
        };
        let new_win = new_win.min(max) >> self.rcv_wscale;
        if new_win == 0 {
            if old_win != 0 {
                ctx.inc(LinuxMib::TCPToZeroWindowAdv);
            }
        } else if old_win == 0 {
            ctx.inc(LinuxMib::TCPFromZeroWindowAdv);
        }
        new_win as u16
    }

    /// `net.ipv4.tcp_shrink_window` is on and window scaling is in effect (RFC 7323 §2.4).
    fn tcp_shrink_window_allowed(&self, ctx: &Ctx<'_>) -> bool {
        ctx.net.sysctl.tcp_shrink_window.get() != 0 && self.rcv_wscale != 0
    }

    /// `tcp_initialize_rcv_mss()`.
    pub(crate) fn tcp_initialize_rcv_mss(&mut self) {
        let mut hint = self.advmss.min(self.mss_cache);
        hint = hint.min(self.rcv_wnd / 2);
        hint = hint.min(TCP_MSS_DEFAULT);
        hint = hint.max(TCP_MIN_MSS);
        self.ack.rcv_mss = hint;
    }

    /// `tcp_measure_rcv_mss()` (6.18): learns the peer's segment size from `gso_size ?: skb->len`
    /// and, when it changes, the payload/truesize ratio (`scaling_ratio`), which the window
    /// clamp then follows.
    pub(crate) fn tcp_measure_rcv_mss(&mut self, skb_len: u32, truesize: u32, rx: RxMeta, flags: TcpFlags) {
        let lss = self.ack.last_seg_size;
        self.ack.last_seg_size = 0;
        let mut len = if rx.gso_size != 0 { rx.gso_size } else { skb_len };
        if len >= self.ack.rcv_mss {
            if len != self.ack.rcv_mss {
                let val = ((skb_len as u64) << super::TCP_RMEM_TO_WIN_SCALE) / truesize.max(1) as u64;
                let old_ratio = self.scaling_ratio;
                // DEVIATION(linux): scaling_ratio is a u8 there (a ratio >= 1.0 would wrap);
                // clamped here.
                self.scaling_ratio = val.clamp(1, 255) as u32;
                if old_ratio != self.scaling_ratio {
                    let val = self.win_from_space(self.rcvbuf as i64);
                    self.tcp_set_window_clamp(val.max(0) as u32);
                    if self.window_clamp < self.rcvq_space.space {
                        self.rcvq_space.space = self.window_clamp;
                    }
                }
            }
            self.ack.rcv_mss = len.min(self.advmss);
            if flags.psh() {
                self.ack.pending |= super::ack_flags::ICSK_ACK_PUSHED;
            }
        } else {
            // "len" is invariant segment length, including TCP header.
            len += rx.thlen;
            let remnant = flags.fin() || flags.urg() || flags.syn() || flags.psh();
            if len >= TCP_MSS_DEFAULT + 20 || (len >= TCP_MIN_MSS + 20 && !remnant) {
                len = len.wrapping_sub(self.tcp_header_len);
                self.ack.last_seg_size = len;
                if len == lss {
                    self.ack.rcv_mss = len;
                    return;
                }
            }
            if self.ack.pending & super::ack_flags::ICSK_ACK_PUSHED != 0 {
                self.ack.pending |= super::ack_flags::ICSK_ACK_PUSHED2;
            }
            self.ack.pending |= super::ack_flags::ICSK_ACK_PUSHED;
        }
    }

    /// `tcp_set_window_clamp()` (tcp.c) for a non-zero value: a shrinking clamp pulls
    /// `rcv_ssthresh` down, a growing one lets it rise up to `rcv_wnd`.
    pub(crate) fn tcp_set_window_clamp(&mut self, val: u32) {
        let old_window_clamp = self.window_clamp;
        let new_window_clamp = val.max(super::SOCK_MIN_RCVBUF / 2);
        if new_window_clamp == old_window_clamp {
            return;
        }
        self.window_clamp = new_window_clamp;
        if new_window_clamp < old_window_clamp {
            // __tcp_adjust_rcv_ssthresh(): utcp reserves no socket memory (SO_RESERVE_MEM).
            self.rcv_ssthresh = self.rcv_ssthresh.min(new_window_clamp);
        } else {
            let new_rcv_ssthresh = self.rcv_wnd.min(self.window_clamp);
            self.rcv_ssthresh = self.rcv_ssthresh.max(new_rcv_ssthresh);
        }
    }

    /// `__tcp_grow_window()`.
    fn __tcp_grow_window(&self, ctx: &Ctx<'_>, skbtruesize: u32, len: u32) -> u32 {
        let mut truesize = self.win_from_space(skbtruesize as i64) >> 1;
        let mut window = self.win_from_space(ctx.net.sysctl.tcp_rmem.idx(2)) >> 1;
        while self.rcv_ssthresh as i64 <= window {
            if truesize <= len as i64 {
                return 2 * self.ack.rcv_mss;
            }
            truesize >>= 1;
            window >>= 1;
        }
        0
    }

    /// `tcp_grow_window()`: slow-start of the advertised window as data arrives.
    ///
    /// `truesize_adjust()` never applies: utcp's receive buffers always hold the payload in
    /// their head (`skb_headlen() != 0`), so the full truesize is used.
    pub(crate) fn tcp_grow_window(&mut self, ctx: &Ctx<'_>, truesize: u32, len: u32) {
        let room = (self.window_clamp as i64).min(self.space()) - self.rcv_ssthresh as i64;
        if room <= 0 {
            return;
        }
        if self.tcp_under_memory_pressure() {
            return;
        }
        let incr = if self.win_from_space(truesize as i64) <= len as i64 {
            2 * self.advmss
        } else {
            self.__tcp_grow_window(ctx, truesize, len)
        };
        if incr > 0 {
            let incr = (incr as i64).max(2 * len as i64);
            self.rcv_ssthresh += incr.min(room) as u32;
            self.ack.quick |= 1;
        }
    }

    /// `tcp_init_buffer_space()`: called when the connection becomes established.
    pub(crate) fn tcp_init_buffer_space(&mut self, ctx: &Ctx<'_>) {
        // 6.x has no tcp_fixup_rcvbuf(): sk_rcvbuf stays at tcp_rmem[1] until DRS grows it.
        if self.userlocks & super::SOCK_SNDBUF_LOCK == 0 {
            self.tcp_sndbuf_expand(ctx.net);
        }
        self.rcvq_space.time = ctx.now;
        self.rcvq_space.seq = self.copied_seq;
        let tcp_app_win = ctx.net.sysctl.tcp_app_win.get();
        let maxwin = self.full_space().max(0) as u32;
        if self.window_clamp >= maxwin {
            self.window_clamp = maxwin;
            if tcp_app_win != 0 && maxwin > 4 * self.advmss {
                let shift = tcp_app_win.clamp(0, 31) as u32;
                self.window_clamp = (maxwin - (maxwin >> shift)).max(4 * self.advmss);
            }
        }
        // Force reservation of one segment.
        if tcp_app_win != 0 && self.window_clamp > 2 * self.advmss && self.window_clamp + self.advmss > maxwin {
            self.window_clamp = (2 * self.advmss).max(maxwin.saturating_sub(self.advmss));
        }
        self.rcv_ssthresh = self.rcv_ssthresh.min(self.window_clamp);
        self.cubic.epoch_start = None;
        self.rcvq_space.space = self.rcv_ssthresh.min(self.rcv_wnd).min(self.rcvq_space_init());
    }

    fn rcvq_space_init(&self) -> u32 {
        // TCP_INIT_CWND * advmss, as tcp_init_buffer_space() does.
        super::TCP_INIT_CWND * self.advmss
    }

    /// `tcp_rcvbuf_grow()` (6.18): records `newval` as the per-RTT space and grows `sk_rcvbuf`
    /// (and the window clamp with it) to back twice that, plus growth headroom and what the
    /// out-of-order queue spans.
    pub(crate) fn tcp_rcvbuf_grow(&mut self, ctx: &Ctx<'_>, newval: u32) {
        let oldval = self.rcvq_space.space;
        self.rcvq_space.space = newval;
        if ctx.net.sysctl.tcp_moderate_rcvbuf.get() == 0 || self.userlocks & SOCK_RCVBUF_LOCK != 0 {
            return;
        }
        // DRS is always one RTT late.
        let mut rcvwin = (newval as u64) << 1;
        // slow start: allow the sender to double its rate.
        let grow = rcvwin * newval.saturating_sub(oldval) as u64 / oldval.max(1) as u64;
        rcvwin += grow << 1;
        if let Some(last) = self.ofo_queue.last() {
            rcvwin += last.end_seq.diff(self.rcv_nxt) as u64;
        }
        let cap = ctx.net.sysctl.tcp_rmem.idx(2).max(0) as u64;
        let rcvbuf = (self.space_from_win(rcvwin.min(i64::MAX as u64) as i64).max(0) as u64).min(cap) as u32;
        if rcvbuf > self.rcvbuf {
            self.rcvbuf = rcvbuf;
            // Make the window clamp follow along.
            self.window_clamp = self.win_from_space(rcvbuf as i64) as u32;
        }
    }

    /// `tcp_rcv_space_adjust()`: dynamic right-sizing of the receive buffer (DRS), run after
    /// the reader copies data: grows `sk_rcvbuf` so the window keeps up with what the reader
    /// drains per RTT.
    pub(crate) fn tcp_rcv_space_adjust(&mut self, ctx: &mut Ctx<'_>) {
        let rtt_us = (self.rcv_rtt_est.rtt_us >> 3) as u64;
        if self.rcv_rtt_est.rtt_us == 0 {
            return;
        }
        let time_us = ctx.now.saturating_since(self.rcvq_space.time).as_micros() as u64;
        if time_us < rtt_us {
            return;
        }
        // Bytes copied to the user in the last RTT, minus what still sits in the queue.
        let copied = self.copied_seq.diff(self.rcvq_space.seq) as i64 - self.rcv_nxt.diff(self.copied_seq) as i64;
        tracing::trace!(target: "tcp_rcv_space_adjust", copied, space = self.rcvq_space.space, rcvbuf = self.rcvbuf);
        if copied > self.rcvq_space.space as i64 {
            self.tcp_rcvbuf_grow(ctx, copied as u32);
        }
        self.rcvq_space.seq = self.copied_seq;
        self.rcvq_space.time = ctx.now;
    }

    /// `tcp_rcv_rtt_update()` + `tcp_rcv_rtt_measure()`: receiver-side RTT from window-sized
    /// data arrival intervals (no timestamps).
    pub(crate) fn tcp_rcv_rtt_measure(&mut self, ctx: &Ctx<'_>) {
        if self.rcv_rtt_est.time != super::Instant::ZERO && self.rcv_rtt_est.seq.after(self.rcv_nxt) {
            return;
        }
        if self.rcv_rtt_est.time != super::Instant::ZERO {
            let delta = ctx.now.saturating_since(self.rcv_rtt_est.time).as_micros() as u32;
            self.tcp_rcv_rtt_update(delta.max(1), true);
        }
        self.rcv_rtt_est.seq = self.rcv_nxt + self.rcv_wnd;
        self.rcv_rtt_est.time = ctx.now;
    }

    /// `tcp_rcv_rtt_measure_ts()`: receiver RTT from echoed timestamps.
    pub(crate) fn tcp_rcv_rtt_measure_ts(&mut self, ctx: &Ctx<'_>, seg_len: u32) {
        if !self.saw_tstamp || self.rcv_tsecr == 0 {
            return;
        }
        if seg_len < self.ack.rcv_mss {
            return;
        }
        // rcv_tsecr has tsoffset removed: tcp_time_stamp_ts() - rcv_tsecr.
        let delta_ms = self.tcp_time_stamp(ctx.now).wrapping_sub(self.tsoffset).wrapping_sub(self.rcv_tsecr) as i32;
        if (0..1 << 20).contains(&delta_ms) {
            let delta_us = (delta_ms as u32).max(1) * 1000;
            self.tcp_rcv_rtt_update(delta_us, false);
        }
    }

    fn tcp_rcv_rtt_update(&mut self, sample: u32, win_dep: bool) {
        let mut new_sample = self.rcv_rtt_est.rtt_us;
        let mut m = sample as i64;
        if new_sample != 0 {
            if !win_dep {
                m -= (new_sample >> 3) as i64;
                new_sample = (new_sample as i64 + m) as u32;
            } else {
                m <<= 3;
                if m < new_sample as i64 {
                    new_sample = m as u32;
                }
            }
        } else {
            new_sample = (m << 3) as u32;
        }
        self.rcv_rtt_est.rtt_us = new_sample;
    }

    /// `tcp_clamp_window()`: a segment did not fit `sk_rcvbuf`. Unless SO_RCVBUF locked it or
    /// TCP memory is short (pressure, or `tcp_mem[0]` reached), the buffer becomes what is
    /// queued (at most `tcp_rmem[2]`); if that is still exceeded the window stops growing.
    pub(crate) fn tcp_clamp_window(&mut self, ctx: &Ctx<'_>) {
        self.ack.quick = 0;
        let rmem2 = ctx.net.sysctl.tcp_rmem.idx(2) as u32;
        if self.rcvbuf < rmem2
            && self.userlocks & SOCK_RCVBUF_LOCK == 0
            && !self.tcp_under_memory_pressure()
            && self.proto_mem.allocated() < self.proto_mem.limit(0)
        {
            self.rcvbuf = self.rmem_alloc.min(rmem2);
        }
        if self.rmem_alloc > self.rcvbuf {
            self.rcv_ssthresh = self.window_clamp.min(2 * self.advmss);
        }
    }

    /// Truesize Linux would charge for a received segment of `len` payload bytes (a linear
    /// skb from a driver / tun: headers + payload rounded up, plus metadata).
    pub fn rx_truesize(len: u32) -> u32 {
        skb_truesize(len + 128)
    }
}
