//! Proportional Rate Reduction (RFC 6937) as net/ipv4/tcp_input.c does it:
//! `tcp_init_cwnd_reduction`, `tcp_cwnd_reduction`, `tcp_in_cwnd_reduction`.
//!
//! On entering fast recovery (or CWR) cwnd is not cut to ssthresh at once: on each ACK the
//! sender may send in proportion to what was delivered (`prr_delivered`), so that by the end of
//! recovery it has sent about ssthresh/prior_cwnd of what left the network — a steady ACK clock
//! that keeps RACK's send-order clock running and avoids the burst-then-silence of a step cut.
//! When the pipe drains below ssthresh (heavy loss), PRR's slow-start reduction bound
//! (RFC 6937 §3.1, PRR-SSRB) lets it grow back towards ssthresh.

use super::cong::CaState;
use super::TcpSock;

impl TcpSock {
    /// `tcp_in_cwnd_reduction()`: CWR or Recovery.
    pub(crate) fn tcp_in_cwnd_reduction(&self) -> bool {
        matches!(self.ca_state, CaState::Cwr | CaState::Recovery)
    }

    /// `tcp_init_cwnd_reduction()` (the caller has set `snd_ssthresh` and `high_seq`).
    pub(crate) fn tcp_init_cwnd_reduction(&mut self) {
        self.snd_cwnd_cnt = 0;
        self.prior_cwnd = self.snd_cwnd;
        self.prr_delivered = 0;
        self.prr_out = 0;
    }

    /// `tcp_cwnd_reduction()`: `newly_acked_sacked` packets left the network with this ACK,
    /// `newly_lost` were marked lost; `una_advanced` is FLAG_SND_UNA_ADVANCED.
    pub(crate) fn tcp_cwnd_reduction(&mut self, newly_acked_sacked: u32, newly_lost: u32, una_advanced: bool) {
        if newly_acked_sacked == 0 || self.prior_cwnd == 0 {
            return;
        }
        let in_flight = self.packets_in_flight() as i64;
        let delta = self.snd_ssthresh as i64 - in_flight;
        self.prr_delivered += newly_acked_sacked;
        let mut sndcnt: i64 = if delta < 0 {
            // PRR proper: sndcnt = ceil(ssthresh * prr_delivered / prior_cwnd) - prr_out.
            let dividend = self.snd_ssthresh as u64 * self.prr_delivered as u64 + self.prior_cwnd as u64 - 1;
            (dividend / self.prior_cwnd as u64) as i64 - self.prr_out as i64
        } else {
            // PRR-SSRB: grow back to ssthresh no faster than slow start.
            let mut n = (self.prr_delivered as i64 - self.prr_out as i64).max(newly_acked_sacked as i64);
            if una_advanced && newly_lost == 0 {
                n += 1;
            }
            delta.min(n)
        };
        // Force a fast retransmit upon entering fast recovery.
        sndcnt = sndcnt.max(if self.prr_out != 0 { 0 } else { 1 });
        self.snd_cwnd = (in_flight + sndcnt).clamp(1, u32::MAX as i64) as u32;
    }

    /// Counts `n` packets sent while cwnd is being reduced (`tp->prr_out`).
    pub(crate) fn tcp_prr_sent(&mut self, n: u32) {
        if self.tcp_in_cwnd_reduction() {
            self.prr_out += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::netns::Netns;
    use crate::tcp::cong::CaState;
    use crate::tcp::TcpSock;
    use crate::time::Instant;

    fn sock(cwnd: u32, ssthresh: u32, in_flight: u32) -> TcpSock {
        let net = Netns::new(std::net::Ipv4Addr::LOCALHOST, 1500, 1);
        let mut tp = TcpSock::new(&net, Instant::ZERO);
        tp.snd_cwnd = cwnd;
        tp.packets_out = in_flight;
        tp.tcp_init_cwnd_reduction();
        tp.snd_ssthresh = ssthresh;
        tp.ca_state = CaState::Recovery;
        tp
    }

    #[test]
    fn proportional_while_the_pipe_is_above_ssthresh() {
        // RFC 6937's example: cwnd 20, ssthresh 14 (CUBIC's 0.7), one loss.
        let mut tp = sock(20, 14, 20);
        tp.lost_out = 1; // in flight 19
        tp.tcp_cwnd_reduction(1, 1, false);
        // ceil(14 * 1 / 20) - 0 = 1: the fast retransmit.
        assert_eq!(tp.snd_cwnd, 19 + 1);
        tp.tcp_prr_sent(1);
        tp.retrans_out = 1; // in flight 20
        let mut sent = 1;
        for _ in 0..19 {
            tp.packets_out -= 1; // one more delivered (cumulatively ACKed)
            let before = tp.packets_in_flight();
            tp.tcp_cwnd_reduction(1, 0, true);
            let can = tp.snd_cwnd.saturating_sub(before);
            tp.tcp_prr_sent(can);
            tp.packets_out += can;
            sent += can;
        }
        // After 20 delivered, PRR has sent ceil(14 * 20 / 20) = 14.
        assert_eq!(sent, 14);
        assert_eq!(tp.prr_out, 14);
    }

    #[test]
    fn slow_start_reduction_bound_when_the_pipe_drained() {
        // Heavy loss: only 4 in flight, ssthresh 14: grows by delivered + 1 per ACK, up to delta.
        let mut tp = sock(20, 14, 4);
        tp.prr_out = 1; // the fast retransmit went out
        tp.tcp_cwnd_reduction(2, 0, true);
        // max(prr_delivered - prr_out, newly) + 1 = max(1, 2) + 1 = 3, below delta 10.
        assert_eq!(tp.snd_cwnd, 4 + 3);
        let mut tp = sock(20, 14, 13);
        tp.prr_out = 1;
        tp.tcp_cwnd_reduction(5, 0, true);
        assert_eq!(tp.snd_cwnd, 14, "never above ssthresh: delta bounds it");
    }

    #[test]
    fn nothing_delivered_changes_nothing() {
        let mut tp = sock(20, 14, 20);
        tp.tcp_cwnd_reduction(0, 0, false);
        assert_eq!(tp.snd_cwnd, 20);
        assert!(tp.tcp_in_cwnd_reduction());
        tp.ca_state = CaState::Open;
        tp.tcp_prr_sent(3);
        assert_eq!(tp.prr_out, 0, "only counted while reducing");
    }
}
