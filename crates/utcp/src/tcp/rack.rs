//! RACK loss detection and Tail Loss Probes (net/ipv4/tcp_recovery.c `tcp_rack_detect_loss`,
//! `tcp_rack_advance`, `tcp_rack_reo_timeout`; tcp_output.c `tcp_schedule_loss_probe`,
//! `tcp_send_loss_probe`; RFC 8985).
//!
//! RACK marks a segment lost when one sent after it has been delivered and more than an RTT
//! plus a reordering window has passed since it was sent — which also catches lost
//! retransmissions. A TLP retransmits the last segment (or sends new data) after about two
//! RTTs of silence, so a lost tail is repaired by fast recovery instead of an RTO.

use super::cong::CaState;
use super::{Ctx, TcpSock, TcpTimer, TCPCB_LOST, TCPCB_SACKED_ACKED, TCPCB_SACKED_RETRANS};
use crate::mib::LinuxMib;
use crate::time::{Duration, Instant};

/// `TCP_TIMEOUT_MIN` (2 jiffies at HZ=250).
pub(super) const TCP_TIMEOUT_MIN: Duration = Duration::from_millis(8);

impl TcpSock {
    /// `tcp_rack_advance()`: a segment sent at `xmit_time` was delivered (ACKed or SACKed).
    pub fn tcp_rack_advance(&mut self, ctx: &Ctx<'_>, xmit_time: Instant, retransmitted: bool) {
        let rtt_us = ctx.now.saturating_since(xmit_time).as_micros() as u32;
        // A retransmitted segment delivered sooner than the minimum RTT was the original's
        // delivery: it says nothing about when the retransmission was sent.
        if retransmitted && rtt_us < (self.srtt_us >> 3) / 2 {
            return;
        }
        self.rack_rtt_us = rtt_us;
        if xmit_time > self.rack_xmit {
            self.rack_xmit = xmit_time;
        }
    }

    /// `tcp_rack_reo_wnd()`: until reordering has been seen, none during recovery or once the
    /// dup-ACK threshold is met; otherwise min_rtt/4 per step (DSACKs add steps, see
    /// `tcp_rack_update_reo_wnd`), at most the smoothed RTT.
    fn tcp_rack_reo_wnd(&self, ctx: &Ctx<'_>) -> Duration {
        if self.reord_seen == 0 {
            if matches!(self.ca_state, CaState::Recovery | CaState::Loss) {
                return Duration::ZERO;
            }
            if self.sacked_out >= self.reordering && ctx.net.sysctl.tcp_recovery.get() & 0x4 == 0 {
                return Duration::ZERO; // TCP_RACK_NO_DUPTHRESH unset
            }
        }
        let min_rtt = if self.min_rtt_us != 0 { self.min_rtt_us } else { self.srtt_us >> 3 };
        let us = ((min_rtt >> 2) as u64 * self.rack_reo_wnd_steps as u64).min((self.srtt_us >> 3) as u64);
        Duration::from_micros(us)
    }

    /// `tcp_rack_detect_loss()`: marks lost every unSACKed segment sent before the most recently
    /// delivered one whose reordering window expired; arms the reordering timer for the rest.
    pub fn tcp_rack_detect_loss(&mut self, ctx: &mut Ctx<'_>) {
        if self.rack_xmit == Instant::ZERO || !self.sack_ok || ctx.net.sysctl.tcp_recovery.get() & 0x1 == 0 {
            return; // TCP_RACK_LOSS_DETECTION off
        }
        if self.sacked_out == 0 && self.retrans_out == 0 {
            // Nothing was delivered out of order and nothing is being retransmitted: no
            // segment can have been overtaken (keeps the common ACK O(1)).
            self.clear_timer(TcpTimer::Reo);
            return;
        }
        let reo = self.tcp_rack_reo_wnd(ctx);
        let wait = Duration::from_micros(self.rack_rtt_us as u64) + reo;
        let mut earliest: Option<Instant> = None;
        let mut newly_lost = 0;
        for skb in self.rtx_queue.iter_mut() {
            if skb.sacked & (TCPCB_SACKED_ACKED | TCPCB_LOST) != 0 && skb.sacked & TCPCB_SACKED_RETRANS == 0 {
                continue;
            }
            if skb.tx_time >= self.rack_xmit {
                continue;
            }
            if skb.sacked & TCPCB_SACKED_ACKED != 0 {
                continue;
            }
            let deadline = skb.tx_time + wait;
            if deadline <= ctx.now {
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
                earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
            }
        }
        self.lost_out += newly_lost;
        match earliest {
            Some(at) => self.reset_timer(TcpTimer::Reo, at),
            None => self.clear_timer(TcpTimer::Reo),
        }
    }

    /// `tcp_rack_reo_timeout()`: the reordering window of a suspect segment expired.
    pub fn tcp_rack_reo_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let prior_lost = self.lost_out;
        self.tcp_rack_detect_loss(ctx);
        if self.lost_out > prior_lost {
            if matches!(self.ca_state, CaState::Open | CaState::Disorder) {
                self.tcp_enter_recovery(ctx);
                self.tcp_cwnd_reduction(1, 0, false);
            }
            self.tcp_xmit_retransmit_queue(ctx);
        }
        if self.timers[TcpTimer::Retrans as usize].is_none() && self.packets_out > 0 {
            self.tcp_rearm_rto(ctx);
        }
    }

    /// `tcp_schedule_loss_probe()`: in the Open state with data in flight, arm a probe at
    /// 2·SRTT (plus the delayed-ACK allowance for a single segment), never later than the RTO.
    pub fn tcp_schedule_loss_probe(&mut self, ctx: &mut Ctx<'_>) {
        if self.packets_out == 0
            || self.ca_state != CaState::Open
            || !self.sack_ok
            || ctx.net.sysctl.tcp_early_retrans.get() < 3
            || self.tlp_high_seq.is_some()
        {
            self.clear_timer(TcpTimer::LossProbe);
            return;
        }
        let mut timeout = if self.srtt_us != 0 {
            let t = Duration::from_micros((self.srtt_us >> 2) as u64);
            if self.packets_out == 1 {
                t + super::TCP_RTO_MIN
            } else {
                t + TCP_TIMEOUT_MIN
            }
        } else {
            super::TCP_TIMEOUT_INIT
        };
        if let Some(rto_at) = self.timers[TcpTimer::Retrans as usize] {
            let left = rto_at.saturating_since(ctx.now);
            timeout = timeout.min(left);
        }
        self.reset_timer(TcpTimer::LossProbe, ctx.now + timeout);
    }

    /// `tcp_send_loss_probe()`: new data if the window allows, else the last segment again.
    pub fn tcp_send_loss_probe(&mut self, ctx: &mut Ctx<'_>) {
        if self.packets_out == 0 || self.ca_state != CaState::Open {
            return;
        }
        let before = self.snd_nxt;
        if !self.write_queue.is_empty() {
            let mss = self.tcp_current_mss();
            self.tcp_write_xmit(ctx, mss, super::output::TCP_NAGLE_PUSH);
        }
        if self.snd_nxt == before {
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
