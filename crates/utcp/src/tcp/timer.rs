//! TCP timers as data (net/ipv4/tcp_timer.c): a table of deadlines per socket, fired by the
//! host through [`TcpSock::tcp_timer_fire`].

use super::{ack_flags::*, Ctx, TcpSock, TcpState, TCP_ATO_MIN, TCP_RTO_MAX, TCP_TIMEOUT_INIT};
use crate::errno::Errno;
use crate::mib::LinuxMib;
use crate::time::Duration;

/// The timers of a TCP socket (`icsk_pending` + keepalive + TIME_WAIT).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum TcpTimer {
    /// Retransmission timeout (`ICSK_TIME_RETRANS`).
    Retrans = 0,
    /// Delayed ACK (`ICSK_TIME_DACK`).
    DelAck = 1,
    /// Zero-window probe (`ICSK_TIME_PROBE0`).
    Probe0 = 2,
    /// Keepalive, and the FIN_WAIT2 timeout of orphans (`sk_timer`).
    Keepalive = 3,
    /// TIME_WAIT expiry (the timewait sock's timer).
    TimeWait = 4,
    /// Compressed SACK ACK (`tp->compressed_ack_timer`).
    CompressedAck = 5,
    /// RACK reordering timeout (`ICSK_TIME_REO_TIMEOUT`).
    Reo = 6,
    /// Tail loss probe (`ICSK_TIME_LOSS_PROBE`).
    LossProbe = 7,
    /// The internal pacing timer (`tp->pacing_timer`).
    Pacing = 8,
}

impl TcpTimer {
    /// Number of timers.
    pub(crate) const COUNT: usize = 9;
    /// All timers in firing priority.
    pub(crate) const ALL: [TcpTimer; 9] = [
        TcpTimer::Retrans,
        TcpTimer::DelAck,
        TcpTimer::Probe0,
        TcpTimer::Keepalive,
        TcpTimer::TimeWait,
        TcpTimer::CompressedAck,
        TcpTimer::Reo,
        TcpTimer::LossProbe,
        TcpTimer::Pacing,
    ];
}

/// `tcp_model_timeout()`: time covered by `boundary` exponential backoffs from `rto_base`,
/// each capped at `rto_max` (`tcp_rto_max(sk)`: TCP_RTO_MAX_MS).
pub(crate) fn tcp_model_timeout(boundary: u32, rto_base: Duration, rto_max: Duration) -> Duration {
    let thresh = (rto_max.as_millis() as u64 / rto_base.as_millis().max(1) as u64).max(1).ilog2();
    if boundary <= thresh {
        rto_base * ((2u32 << boundary) - 1)
    } else {
        rto_base * ((2u32 << thresh) - 1) + rto_max * (boundary - thresh)
    }
}

/// `TCP_THIN_LINEAR_RETRIES`: retransmissions of a thin stream that keep the RTO linear.
pub(crate) const TCP_THIN_LINEAR_RETRIES: u8 = 6;

/// A socket's timer deadlines by [`TcpTimer`] in nanoseconds, `u64::MAX` meaning unarmed: an
/// `[Option<Instant>; N]` takes twice the bytes (issue 9 goal 4).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Timers([u64; TcpTimer::COUNT]);

impl Timers {
    /// None armed.
    pub(crate) const NONE: Timers = Timers([u64::MAX; TcpTimer::COUNT]);

    /// Timer `t`'s deadline, if armed.
    #[inline]
    pub(crate) fn get(&self, t: TcpTimer) -> Option<crate::time::Instant> {
        let at = self.0[t as usize];
        (at != u64::MAX).then_some(crate::time::Instant(at))
    }
    /// Arms (`Some`) or disarms timer `t`. A deadline of [`crate::time::Instant::FOREVER`] is kept one
    /// nanosecond earlier, still never reached, so that it stays armed.
    #[inline]
    pub(crate) fn set(&mut self, t: TcpTimer, at: Option<crate::time::Instant>) {
        self.0[t as usize] = at.map_or(u64::MAX, |a| a.0.min(u64::MAX - 1));
    }
    /// The earliest armed deadline.
    pub(crate) fn next(&self) -> Option<crate::time::Instant> {
        let at = self.0.iter().copied().min().unwrap_or(u64::MAX);
        (at != u64::MAX).then_some(crate::time::Instant(at))
    }
}

impl core::fmt::Debug for Timers {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(TcpTimer::ALL.iter().map(|&t| self.get(t))).finish()
    }
}

impl TcpSock {
    /// Fires the timers that are due at `ctx.now`.
    pub(crate) fn tcp_timer_fire(&mut self, ctx: &mut Ctx<'_>) {
        for t in TcpTimer::ALL {
            if let Some(at) = self.timers.get(t) {
                // Linux has one transmit timer: a loss probe armed for no later than the RTO
                // (tcp_schedule_loss_probe() takes min(PTO, RTO left)) replaces it, and the
                // probe re-arms the RTO.
                let tlp_first =
                    t == TcpTimer::Retrans && self.timers.get(TcpTimer::LossProbe).is_some_and(|lp| lp <= at);
                if at <= ctx.now && !tlp_first {
                    self.timers.set(t, None);
                    match t {
                        TcpTimer::Retrans => self.tcp_retransmit_timer(ctx),
                        TcpTimer::DelAck => self.tcp_delack_timer_handler(ctx),
                        TcpTimer::Probe0 => self.tcp_probe_timer(ctx),
                        TcpTimer::Keepalive => self.tcp_keepalive_timer(ctx),
                        TcpTimer::TimeWait => self.tcp_time_wait_expire(ctx),
                        TcpTimer::CompressedAck => self.tcp_compressed_ack_kick(ctx),
                        TcpTimer::Reo => self.tcp_rack_reo_timeout(ctx),
                        TcpTimer::LossProbe => self.tcp_send_loss_probe(ctx),
                        TcpTimer::Pacing => self.tcp_pace_kick(ctx),
                    }
                }
            }
        }
    }

    /// `tcp_compressed_ack_kick()`: sends the ACK that SACK compression held back.
    pub(crate) fn tcp_compressed_ack_kick(&mut self, ctx: &mut Ctx<'_>) {
        if self.compressed_ack > 0 {
            ctx.net.mib.add(LinuxMib::TCPAckCompressed, self.compressed_ack as u64);
            self.compressed_ack = 0;
            self.tcp_send_ack(ctx);
        }
    }

    /// `tcp_delack_timer_handler()`.
    pub(crate) fn tcp_delack_timer_handler(&mut self, ctx: &mut Ctx<'_>) {
        if self.state == TcpState::Close || self.ack.pending & ICSK_ACK_TIMER == 0 {
            return;
        }
        self.ack.pending &= !ICSK_ACK_TIMER;
        if self.ack.pending & ICSK_ACK_SCHED != 0 {
            if self.ack.pingpong == 0 {
                self.ack.ato = (self.ack.ato * 2).min(self.rto);
            } else {
                self.ack.pingpong = 0;
                self.ack.ato = TCP_ATO_MIN;
            }
            self.tcp_send_ack(ctx);
            ctx.inc(LinuxMib::DelayedACKs);
        }
    }

    /// `tcp_write_err()`: the connection failed with `sk_err_soft` or ETIMEDOUT.
    pub(crate) fn tcp_write_err(&mut self, ctx: &mut Ctx<'_>) {
        self.err = Some(self.err_soft.unwrap_or(Errno::ETIMEDOUT));
        ctx.ev.data_ready = true;
        self.tcp_done(ctx);
        ctx.inc(LinuxMib::TCPAbortOnTimeout);
    }

    /// `tcp_write_timeout()`: true when retries are exhausted (the socket is then closed).
    fn tcp_write_timeout(&mut self, ctx: &mut Ctx<'_>) -> bool {
        let retries = if matches!(self.state, TcpState::SynSent | TcpState::SynRecv) {
            if self.ext().syn_retries != 0 {
                self.ext().syn_retries as u32
            } else {
                ctx.net.sysctl.tcp_syn_retries.get() as u32
            }
        } else {
            let mut r = ctx.net.sysctl.tcp_retries2.get() as u32;
            if self.orphan {
                // An orphan that is alive (RTO below its maximum) is reset when it runs out
                // of resources; one whose retries ran out too dies quietly.
                let alive = self.rto < self.ext().rto_max;
                r = self.tcp_orphan_retries(ctx, alive);
                let do_reset = alive || !self.retransmits_timed_out(ctx, r, 0);
                if self.tcp_out_of_resources(ctx, do_reset) {
                    return true;
                }
            }
            r
        };
        let s = &ctx.net.sysctl;
        // A SYN is retransmitted `tcp_syn_linear_timeouts` more times (those at a linear,
        // not doubled, RTO), as long as the modelled time below has not run out.
        let mut expired = match self.state {
            TcpState::SynSent => self.retransmits as u32 >= retries + s.tcp_syn_linear_timeouts.get() as u32,
            TcpState::SynRecv => self.retransmits as u32 >= retries,
            _ => false,
        };
        if !expired {
            // TCP_USER_TIMEOUT, when set, replaces the modelled time of `retries` backed-off
            // RTOs.
            expired = self.retransmits_timed_out(ctx, retries, self.ext().user_timeout_ms);
        }
        if expired {
            self.tcp_write_err(ctx);
            return true;
        }
        if self.sk_rethink_txhash(ctx) {
            self.timeout_rehash = self.timeout_rehash.saturating_add(1);
            ctx.inc(LinuxMib::TcpTimeoutRehash);
        }
        false
    }

    /// `retransmits_timed_out()`: retransmitting since `retrans_stamp` for longer than
    /// `timeout_ms`, or (0) than `boundary` backed-off RTOs from `TCP_RTO_MIN` (from
    /// `TCP_TIMEOUT_INIT` for a SYN).
    fn retransmits_timed_out(&self, ctx: &Ctx<'_>, boundary: u32, timeout_ms: u32) -> bool {
        let base = if matches!(self.state, TcpState::SynSent | TcpState::SynRecv) {
            TCP_TIMEOUT_INIT
        } else {
            super::TCP_RTO_MIN
        };
        let timeout = match timeout_ms {
            0 => tcp_model_timeout(boundary, base, self.ext().rto_max),
            ms => Duration::from_millis(ms as u64),
        };
        match self.retrans_stamp {
            Some(start) if self.retransmits > 0 => ctx.now.saturating_since(start) >= timeout,
            _ => false,
        }
    }

    /// `tcp_retransmit_timer()`.
    pub(crate) fn tcp_retransmit_timer(&mut self, ctx: &mut Ctx<'_>) {
        if self.packets_out == 0 || self.rtx_queue.is_empty() {
            return;
        }
        if self.snd_wnd == 0 && !self.orphan && !matches!(self.state, TcpState::SynSent | TcpState::SynRecv) {
            // Receiver dead-locked the window: keep probing by retransmitting.
            if let Some(start) = self.retrans_stamp {
                if ctx.now.saturating_since(start) > TCP_RTO_MAX * 2 {
                    self.tcp_write_err(ctx);
                    return;
                }
            }
            self.tcp_enter_loss(ctx);
            self.tcp_retransmit_head(ctx);
        } else {
            ctx.inc(LinuxMib::TCPTimeouts);
            if self.tcp_write_timeout(ctx) {
                return;
            }
            if matches!(self.state, TcpState::SynSent | TcpState::SynRecv) {
                ctx.inc(LinuxMib::TCPSynRetrans);
            }
            // tcp_update_rto_stats()
            if self.retransmits == 0 {
                self.total_rto_recoveries = self.total_rto_recoveries.wrapping_add(1);
            }
            self.total_rto = self.total_rto.wrapping_add(1);
            self.tcp_enter_loss(ctx);
            self.retransmits = self.retransmits.saturating_add(1);
            self.tcp_retransmit_head(ctx);
        }
        if self.state == TcpState::Established
            && (self.thin_lto || ctx.net.sysctl.tcp_thin_linear_timeouts.get() != 0)
            && self.tcp_stream_is_thin()
            && self.retransmits <= TCP_THIN_LINEAR_RETRIES
        {
            // A thin stream (too little in flight for fast retransmit) keeps its RTO linear.
            self.backoff = 0;
            self.tcp_set_rto();
            self.rto = self.rto.clamp(self.rto_min, self.ext().rto_max);
        } else if self.state != TcpState::SynSent
            || self.total_rto as i64 > ctx.net.sysctl.tcp_syn_linear_timeouts.get()
        {
            // The first `tcp_syn_linear_timeouts` SYN retransmissions keep the initial RTO.
            self.backoff = self.backoff.saturating_add(1);
            self.rto = (self.rto * 2).min(self.ext().rto_max);
        }
        let when = self.tcp_clamp_rto_to_user_timeout(ctx);
        self.reset_timer(TcpTimer::Retrans, ctx.now + when);
    }

    /// `tcp_clamp_rto_to_user_timeout()`: the next RTO never fires after TCP_USER_TIMEOUT
    /// runs out (then as soon as possible).
    fn tcp_clamp_rto_to_user_timeout(&self, ctx: &Ctx<'_>) -> Duration {
        let (Some(start), ms) = (self.retrans_stamp, self.ext().user_timeout_ms) else { return self.rto };
        if ms == 0 {
            return self.rto;
        }
        let elapsed = ctx.now.saturating_since(start);
        let limit = Duration::from_millis(ms as u64);
        if elapsed >= limit {
            return Duration::from_millis(4); // one jiffy
        }
        self.rto.min(limit - elapsed)
    }

    /// `tcp_probe_timer()`.
    pub(crate) fn tcp_probe_timer(&mut self, ctx: &mut Ctx<'_>) {
        if self.packets_out > 0 || self.write_queue.is_empty() {
            self.probes_out = 0;
            return;
        }
        let mut max_probes = ctx.net.sysctl.tcp_retries2.get().clamp(0, u8::MAX as i64) as u8;
        if self.orphan {
            // inet_csk_rto_backoff(): the probe interval, capped at the maximum RTO.
            let when = self.rto.saturating_mul(1u32.checked_shl(self.backoff as u32).unwrap_or(u32::MAX));
            let alive = when < self.ext().rto_max;
            max_probes = self.tcp_orphan_retries(ctx, alive).min(u8::MAX as u32) as u8;
            if !alive && self.backoff >= max_probes {
                self.tcp_write_err(ctx);
                return;
            }
            if self.tcp_out_of_resources(ctx, true) {
                return;
            }
        }
        // With TCP_USER_TIMEOUT, the probes' modelled elapsed time decides instead.
        let timed_out = match self.ext().user_timeout_ms {
            0 => self.probes_out >= max_probes,
            ms => {
                tcp_model_timeout(self.probes_out as u32, self.rto.max(super::TCP_RTO_MIN), self.ext().rto_max)
                    >= Duration::from_millis(ms as u64)
            }
        };
        if timed_out {
            self.tcp_write_err(ctx);
            return;
        }
        // tcp_send_probe0()
        self.tcp_write_wakeup(ctx);
        if self.packets_out > 0 || self.write_queue.is_empty() {
            self.probes_out = 0;
            self.backoff = 0;
            return;
        }
        self.probes_out += 1;
        if (self.backoff as i64) < ctx.net.sysctl.tcp_retries2.get() {
            self.backoff += 1;
        }
        let when = self.tcp_probe0_when(self.ext().rto_max);
        self.reset_timer(TcpTimer::Probe0, ctx.now + when);
    }

    /// `keepalive_time_when()`.
    pub(crate) fn keepalive_time_when(&self, net: &crate::netns::Netns) -> Duration {
        Duration::from_secs(if self.ext().keepalive_time != 0 {
            self.ext().keepalive_time as u64
        } else {
            net.sysctl.tcp_keepalive_time.get().max(0) as u64
        })
    }

    /// TCP_KEEPIDLE changed: with SO_KEEPALIVE on, the keepalive timer is re-armed for the new
    /// idle time less the idle time already elapsed (`tcp_sock_set_keepidle_locked`).
    pub(crate) fn tcp_keepalive_rearm(&mut self, now: crate::time::Instant, net: &crate::netns::Netns) {
        if !self.keepalive || matches!(self.state, TcpState::Close | TcpState::Listen) {
            return;
        }
        let elapsed = now.saturating_since(self.rcv_tstamp.max(self.ack.lrcvtime));
        let when = self.keepalive_time_when(net).saturating_sub(elapsed);
        self.reset_timer(TcpTimer::Keepalive, now + when);
    }

    /// `tcp_keepalive_timer()`: keepalive probes, and the end of an orphan's FIN_WAIT2.
    pub(crate) fn tcp_keepalive_timer(&mut self, ctx: &mut Ctx<'_>) {
        if self.state == TcpState::FinWait2 && self.orphan {
            self.tcp_time_wait(ctx, TcpState::FinWait2, Duration::ZERO);
            self.tcp_done(ctx);
            return;
        }
        if !self.keepalive || !matches!(self.state, TcpState::Established | TcpState::CloseWait) {
            return;
        }
        let s = &ctx.net.sysctl;
        let intvl = Duration::from_secs(if self.ext().keepalive_intvl != 0 {
            self.ext().keepalive_intvl as u64
        } else {
            s.tcp_keepalive_intvl.get() as u64
        });
        let probes = if self.ext().keepalive_probes != 0 {
            self.ext().keepalive_probes as u32
        } else {
            s.tcp_keepalive_probes.get() as u32
        };
        let time = Duration::from_secs(if self.ext().keepalive_time != 0 {
            self.ext().keepalive_time as u64
        } else {
            s.tcp_keepalive_time.get() as u64
        });
        if self.packets_out > 0 || !self.write_queue.is_empty() {
            self.reset_timer(TcpTimer::Keepalive, ctx.now + time);
            return;
        }
        let idle = ctx.now.saturating_since(self.rcv_tstamp.max(self.ack.lrcvtime));
        if idle >= time {
            let dead = match self.ext().user_timeout_ms {
                0 => self.probes_out as u32 >= probes,
                ms => idle >= Duration::from_millis(ms as u64) && self.probes_out > 0,
            };
            if dead {
                self.err = Some(Errno::ETIMEDOUT);
                ctx.ev.data_ready = true;
                self.tcp_send_active_reset(ctx);
                self.tcp_done(ctx);
                return;
            }
            self.tcp_write_wakeup(ctx);
            ctx.inc(LinuxMib::TCPKeepAlive);
            self.probes_out += 1;
            self.reset_timer(TcpTimer::Keepalive, ctx.now + intvl);
        } else {
            self.reset_timer(TcpTimer::Keepalive, ctx.now + (time - idle));
        }
    }

    /// `tcp_time_wait()`: enter TIME_WAIT (or stay in FIN_WAIT2 as a timewait sock) for `timeo`.
    pub(crate) fn tcp_time_wait(&mut self, ctx: &mut Ctx<'_>, state: TcpState, timeo: Duration) {
        // The full socket is destroyed (its tcp_done()): a timewait sock is no orphan.
        self.tcp_orphan_gone();
        if !self.tw_counted {
            // inet_twsk_alloc(): no timewait sock beyond net.ipv4.tcp_max_tw_buckets; the
            // socket is closed at once instead ("we've got bigger problems than non-graceful
            // socket closings"), and a later segment of the pair finds no socket.
            let max = ctx.net.sysctl.tcp_max_tw_buckets.get().max(0) as u64;
            if ctx.net.tw_count.load(std::sync::atomic::Ordering::Relaxed) as u64 >= max {
                ctx.inc(LinuxMib::TCPTimeWaitOverflow);
                self.tcp_done(ctx);
                return;
            }
            ctx.net.tw_count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.tw_counted = true;
            self.tw_entry_stamp = ctx.now;
        }
        for t in [TcpTimer::Retrans, TcpTimer::DelAck, TcpTimer::Probe0, TcpTimer::Keepalive] {
            self.clear_timer(t);
        }
        let len =
            if state == TcpState::TimeWait { super::TCP_TIMEWAIT_LEN } else { timeo.max(Duration::from_millis(1)) };
        self.set_state(ctx, state);
        self.reset_timer(TcpTimer::TimeWait, ctx.now + len);
        ctx.inc(LinuxMib::TW);
        // The full socket's queues are released: a timewait sock keeps only the identity.
        self.rtx_queue.clear();
        self.write_queue.clear();
        self.tx_csum.clear();
        self.tcp_zerocopy_purge(ctx);
        self.ofo_queue.clear();
        if self.orphan {
            // No user holds the full socket: it is destroyed (inet_csk_destroy_sock()) with
            // whatever its receive queue held, such as the FIN that brought it here.
            self.receive_queue.clear();
        }
        self.rmem_alloc = self.receive_queue.iter().map(|s| s.truesize).sum();
        self.wmem_queued = 0;
        self.sk_mem_reclaim();
    }

    /// `inet_twsk_deschedule_put()`: a connect() took this timewait sock's 4-tuple over
    /// (its hash entry is already the new socket's); it dies now and gives its port back.
    pub(crate) fn inet_twsk_deschedule_put(&mut self, ctx: &mut Ctx<'_>) {
        self.clear_timer(TcpTimer::TimeWait);
        self.tcp_time_wait_expire(ctx);
    }

    fn tcp_time_wait_expire(&mut self, ctx: &mut Ctx<'_>) {
        if matches!(self.state, TcpState::TimeWait | TcpState::FinWait2) {
            self.set_state(ctx, TcpState::Close);
            // The timewait sock dies and leaves the hash table even while the user still holds
            // the fd (whose state has read TCP_CLOSE since tcp_time_wait()).
            ctx.ev.destroy = true;
            ctx.ev.state_change = true;
        }
    }

    /// `tcp_done()`: the connection is over; wake everyone, release protocol resources.
    pub(crate) fn tcp_done(&mut self, ctx: &mut Ctx<'_>) {
        if matches!(self.state, TcpState::SynSent | TcpState::SynRecv) {
            ctx.net.mib.tcp_inc(crate::mib::TcpMib::AttemptFails);
        }
        self.set_state(ctx, TcpState::Close);
        for t in TcpTimer::ALL {
            self.clear_timer(t);
        }
        self.shutdown = super::RCV_SHUTDOWN | super::SEND_SHUTDOWN;
        self.rtx_queue.clear();
        self.write_queue.clear();
        self.tx_csum.clear();
        self.tcp_zerocopy_purge(ctx);
        self.packets_out = 0;
        self.retrans_out = 0;
        self.sacked_out = 0;
        self.lost_out = 0;
        self.wmem_queued = 0;
        self.sk_mem_reclaim();
        ctx.ev.state_change = true;
        ctx.ev.data_ready = true;
        ctx.ev.write_space = true;
        // tcp_set_state(TCP_CLOSE) unhashes the socket whether or not the user still holds it:
        // a dead connection must not keep its 4-tuple (nor linger in the table after close()).
        ctx.ev.destroy = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_timeout_matches_linux() {
        // 15 retries from 200 ms: ~924.6 s (the well-known tcp_retries2 figure).
        let t = tcp_model_timeout(15, Duration::from_millis(200), TCP_RTO_MAX);
        assert_eq!(t.as_millis(), 924_600);
        // 6 SYN retries from 1 s: 127 s.
        assert_eq!(tcp_model_timeout(6, Duration::from_secs(1), TCP_RTO_MAX).as_secs(), 127);
    }
}
