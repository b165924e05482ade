//! RACK loss detection and Tail Loss Probes (net/ipv4/tcp_recovery.c `tcp_rack_detect_loss`,
//! `tcp_rack_advance`, `tcp_rack_reo_timeout`; tcp_output.c `tcp_schedule_loss_probe`,
//! `tcp_send_loss_probe`; RFC 8985).
//!
//! RACK marks a segment lost when one sent after it has been delivered and more than an RTT
//! plus a reordering window has passed since it was sent — which also catches lost
//! retransmissions. A TLP retransmits the last segment (or sends new data) after about two
//! RTTs of silence, so a lost tail is repaired by fast recovery instead of an RTO.
//!
//! Reordering is detected as in tcp_input.c (`tcp_check_sack_reordering()`): a segment never
//! retransmitted that is newly SACKed, or cumulatively ACKed, below the highest SACKed one, or
//! a partial ACK in recovery that the original filled. It raises `tp->reordering` to the
//! distance seen (at most `net.ipv4.tcp_max_reordering`), counts `reord_seen`
//! (TCPSACKReorder, or TCPTSReorder when timestamps showed it), and from then on RACK keeps a
//! reordering window (`tcp_rack_reo_wnd()`), widened for rounds with DSACKs.

use super::cong::CaState;
use super::{Ctx, TcpSock, TcpTimer, TCPCB_LOST, TCPCB_SACKED_ACKED, TCPCB_SACKED_RETRANS};
use crate::mib::LinuxMib;
use crate::seq::SeqNum;
use crate::time::{Duration, Instant};

/// `TCP_TIMEOUT_MIN` (2 jiffies at HZ=250).
pub(super) const TCP_TIMEOUT_MIN: Duration = Duration::from_millis(8);

/// `TCP_TIMEOUT_MIN_US`: the slack added to a reordering timeout.
const TCP_TIMEOUT_MIN_US: u64 = 2000;

/// `tcp_skb_sent_after()`: was the transmission (`t1`, `order1`) after (`t2`, `order2`)?
// DEVIATION(linux): Linux breaks a tie between two transmissions in the same microsecond by
// sequence number (`after(seq1, seq2)`), which assumes the higher sequence left later. A
// retransmission sent after new data in the same instant (a RACK reordering timeout firing
// right after an ACK released new data) breaks that assumption, and on a virtual clock, where
// time stands still while a burst is processed, it happens on nearly every recovery: the
// retransmission was then declared lost as soon as the new data was SACKed (a spurious
// TCPLostRetransmit and a DSACK each time). utcp breaks the tie by the send order itself,
// which is what Linux's time-sorted list is ordered by.
pub(super) fn tcp_skb_sent_after(t1: Instant, t2: Instant, order1: u64, order2: u64) -> bool {
    t1 > t2 || (t1 == t2 && order1 > order2)
}

/// `usecs_to_jiffies()` at HZ=250: rounds up to 4 ms.
fn usecs_to_jiffies(us: u64) -> Duration {
    Duration::from_micros(us.div_ceil(4000) * 4000)
}

impl TcpSock {
    /// `tcp_highest_sack_seq()`: the end of the highest SACKed segment (`snd_una` while
    /// nothing is SACKed).
    pub(crate) fn tcp_highest_sack_seq(&self) -> SeqNum {
        if self.sacked_out == 0 {
            self.snd_una
        } else {
            self.highest_sack
        }
    }

    /// `tcp_check_sack_reordering()`: data from `low_seq` was delivered out of order (`ts`:
    /// timestamps showed it).
    pub(crate) fn tcp_check_sack_reordering(&mut self, ctx: &mut Ctx<'_>, low_seq: SeqNum, ts: bool) {
        let fack = self.tcp_highest_sack_seq();
        if !low_seq.before(fack) {
            return;
        }
        let metric = fack.diff(low_seq);
        let mss = self.mss_cache;
        if mss > 0 && metric > self.reordering.saturating_mul(mss) {
            let max = ctx.net.sysctl.tcp_max_reordering.get().clamp(0, u32::MAX as i64) as u32;
            self.reordering = metric.div_ceil(mss).min(max);
        }
        // "This exciting event is worth to be remembered. 8)"
        self.reord_seen += 1;
        ctx.inc(if ts { LinuxMib::TCPTSReorder } else { LinuxMib::TCPSACKReorder });
    }
}

impl TcpSock {
    /// `tcp_min_rtt()`: the windowed minimum RTT, `u32::MAX` before any sample.
    pub(super) fn tcp_min_rtt(&self) -> u32 {
        if self.min_rtt_us == 0 {
            u32::MAX
        } else {
            self.min_rtt_us
        }
    }

    /// The next transmission's place in the send order ([`super::TxSkb::tx_order`]).
    pub(super) fn tcp_next_tx_order(&mut self) -> u64 {
        let o = self.tx_order_next;
        self.tx_order_next += 1;
        o
    }

    /// `tcp_rack_advance()`: the segment (re)sent at `xmit_time` as transmission number
    /// `order` was delivered (ACKed or SACKed).
    pub(crate) fn tcp_rack_advance(&mut self, ctx: &Ctx<'_>, xmit_time: Instant, order: u64, retransmitted: bool) {
        let rtt_us = ctx.now.saturating_since(xmit_time).as_micros().min(u32::MAX as u128) as u32;
        // A retransmitted segment delivered sooner than the minimum RTT: ambiguous whether
        // the original or the retransmission arrived; the retransmission's send time says
        // nothing then.
        if retransmitted && rtt_us < self.tcp_min_rtt() {
            return;
        }
        self.rack_advanced = true;
        self.rack_rtt_us = rtt_us;
        if tcp_skb_sent_after(xmit_time, self.rack_xmit, order, self.rack_tx_order) {
            self.rack_xmit = xmit_time;
            self.rack_tx_order = order;
        }
    }

    /// `tcp_rack_reo_wnd()`: until reordering has been seen, none during recovery or once the
    /// dup-ACK threshold is met; otherwise min_rtt/4 per step (DSACKs add steps, see
    /// `tcp_rack_update_reo_wnd`), at most the smoothed RTT.
    fn tcp_rack_reo_wnd(&self, ctx: &Ctx<'_>) -> u64 {
        if self.reord_seen == 0 {
            if matches!(self.ca_state, CaState::Recovery | CaState::Loss) {
                return 0;
            }
            if self.sacked_out >= self.reordering && ctx.net.sysctl.tcp_recovery.get() & 0x4 == 0 {
                return 0; // TCP_RACK_NO_DUPTHRESH unset
            }
        }
        ((self.tcp_min_rtt() >> 2) as u64 * self.rack_reo_wnd_steps as u64).min((self.srtt_us >> 3) as u64)
    }

    /// `tcp_rack_detect_loss()`: marks lost every unSACKed segment sent before the most recently
    /// delivered one whose reordering window expired. Returns the longest time (µs) one of
    /// the others still has to wait, 0 if none.
    fn tcp_rack_detect_loss(&mut self, ctx: &mut Ctx<'_>) -> u64 {
        if self.sacked_out == 0 && self.retrans_out == 0 {
            // Nothing was delivered out of order and nothing is being retransmitted: no
            // segment can have been overtaken (keeps the common ACK O(1)).
            return 0;
        }
        let reo_wnd = self.tcp_rack_reo_wnd(ctx) as i64;
        let (rack_xmit, rack_order, rack_rtt) = (self.rack_xmit, self.rack_tx_order, self.rack_rtt_us as i64);
        let mut reo_timeout = 0u64;
        let mut newly_lost = 0;
        // Linux walks its time-sorted list and stops at the first segment sent after the
        // newest delivered one. The retransmit queue is in sequence order, which is send order
        // for segments never retransmitted: past the first of those sent after RACK's
        // segment, every later one (retransmitted or not) was sent later still.
        for skb in self.rtx_queue.iter_mut() {
            if skb.retrans == 0 && !tcp_skb_sent_after(rack_xmit, skb.tx_time, rack_order, skb.tx_order) {
                break;
            }
            if skb.sacked & TCPCB_SACKED_ACKED != 0 {
                continue;
            }
            // Skip ones marked lost but not yet retransmitted.
            if skb.sacked & TCPCB_LOST != 0 && skb.sacked & TCPCB_SACKED_RETRANS == 0 {
                continue;
            }
            if !tcp_skb_sent_after(rack_xmit, skb.tx_time, rack_order, skb.tx_order) {
                continue;
            }
            // Lost if not delivered within the recent RTT plus the reordering window.
            let remaining = rack_rtt + reo_wnd - ctx.now.saturating_since(skb.tx_time).as_micros() as i64;
            if remaining <= 0 {
                // tcp_notify_skb_loss_event(): `tp->lost` counts every marking, a lost
                // retransmission's too.
                self.rate.lost += 1;
                if skb.sacked & TCPCB_SACKED_RETRANS != 0 {
                    // A lost retransmission.
                    skb.sacked &= !TCPCB_SACKED_RETRANS;
                    self.retrans_out = self.retrans_out.saturating_sub(1);
                    ctx.inc(LinuxMib::TCPLostRetransmit);
                }
                if skb.sacked & TCPCB_LOST == 0 {
                    skb.sacked |= TCPCB_LOST;
                    newly_lost += 1;
                }
            } else {
                reo_timeout = reo_timeout.max(remaining as u64);
            }
        }
        self.lost_out += newly_lost;
        reo_timeout
    }

    /// `tcp_rack_mark_lost()`: RACK loss detection after an ACK that delivered something;
    /// arms the reordering timer for segments still inside their window. True when armed.
    pub(crate) fn tcp_rack_mark_lost(&mut self, ctx: &mut Ctx<'_>) -> bool {
        if !self.rack_advanced || !self.tcp_is_rack(ctx) {
            return false;
        }
        self.rack_advanced = false;
        let timeout = self.tcp_rack_detect_loss(ctx);
        if timeout > 0 {
            let when = usecs_to_jiffies(timeout + TCP_TIMEOUT_MIN_US).min(self.rto);
            self.reset_timer(TcpTimer::Reo, ctx.now + when);
        } else {
            self.clear_timer(TcpTimer::Reo);
        }
        timeout > 0
    }

    /// `tcp_rack_reo_timeout()`: the reordering window of a suspect segment expired.
    pub(crate) fn tcp_rack_reo_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let prior_inflight = self.packets_in_flight();
        let prior_lost = self.lost_out;
        let timeout = self.tcp_rack_detect_loss(ctx);
        if timeout > 0 {
            let when = usecs_to_jiffies(timeout + TCP_TIMEOUT_MIN_US).min(self.rto);
            self.reset_timer(TcpTimer::Reo, ctx.now + when);
        }
        if self.packets_in_flight() != prior_inflight {
            if matches!(self.ca_state, CaState::Open | CaState::Disorder) {
                self.tcp_enter_recovery(ctx);
                self.tcp_cwnd_reduction(1, self.lost_out - prior_lost, false);
            }
            self.tcp_xmit_retransmit_queue(ctx);
        }
        if self.timers.get(TcpTimer::Retrans).is_none() && self.packets_out > 0 {
            self.tcp_rearm_rto(ctx);
        }
    }

    /// `tcp_schedule_loss_probe()`: in the Open state with data in flight, arm a probe at
    /// 2·SRTT (plus the delayed-ACK allowance for a single segment), never later than the RTO.
    pub(crate) fn tcp_schedule_loss_probe(&mut self, ctx: &mut Ctx<'_>) {
        if self.packets_out == 0
            || self.ca_state != CaState::Open
            || !self.sack_ok
            || ctx.net.sysctl.tcp_early_retrans.get() < 3
            || self.tlp_high_seq.is_some()
        {
            self.clear_timer(TcpTimer::LossProbe);
            return;
        }
        // 2·srtt rounded up to jiffies, plus the minimum RTO (one packet out: a delayed ACK)
        // or TCP_TIMEOUT_MIN (2 jiffies). Linux 6.18 on this machine (HZ=250) fires the probe
        // of tso_gso_psh_tlp.pkt 12-16 ms after the send with srtt 1 ms: 1 + 2 jiffies, not
        // 2·srtt + 2 ms.
        let mut timeout = if self.srtt_us != 0 {
            let t = usecs_to_jiffies((self.srtt_us >> 2) as u64);
            if self.packets_out == 1 {
                t + super::TCP_RTO_MIN
            } else {
                t + TCP_TIMEOUT_MIN
            }
        } else {
            super::TCP_TIMEOUT_INIT
        };
        if let Some(rto_at) = self.timers.get(TcpTimer::Retrans) {
            let left = rto_at.saturating_since(ctx.now);
            timeout = timeout.min(left);
        }
        self.reset_timer(TcpTimer::LossProbe, ctx.now + timeout);
    }

    /// `tcp_send_loss_probe()`: new data if the window allows, else the last segment again.
    pub(crate) fn tcp_send_loss_probe(&mut self, ctx: &mut Ctx<'_>) {
        if self.packets_out == 0 || self.ca_state != CaState::Open {
            return;
        }
        let mss = self.tcp_current_mss();
        // New data when the receive window takes it: tcp_write_xmit(push_one = 2) sends one
        // packet even with cwnd full; if even that cannot leave, only the timer is rearmed.
        let wnd_end = self.snd_una + self.snd_wnd;
        let new_data = self.write_queue.front().map(|skb| {
            let end = if skb.len() > mss { skb.seq + mss } else { skb.end_seq };
            !end.after(wnd_end)
        });
        if new_data == Some(true) {
            let pcount = self.packets_out;
            self.__tcp_write_xmit(ctx, mss, super::output::TCP_NAGLE_OFF, 2);
            if self.packets_out <= pcount {
                self.tcp_rearm_rto(ctx);
                return;
            }
        } else {
            let last = self.rtx_queue.len().saturating_sub(1);
            if self.rtx_queue.get(last).is_some_and(|s| s.sacked & TCPCB_SACKED_ACKED == 0) {
                self.tcp_retransmit_probe(ctx, last);
            }
        }
        self.tlp_high_seq = Some(self.snd_nxt);
        ctx.inc(LinuxMib::TCPLossProbes);
        self.tcp_rearm_rto(ctx);
    }
}
