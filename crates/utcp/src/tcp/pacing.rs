//! TCP internal pacing (net/ipv4/tcp_output.c, tcp_input.c): the earliest departure time
//! model. Each transmitted segment moves `tcp_wstamp_ns` forward by its length at
//! `sk_pacing_rate`; `tcp_write_xmit` stops while the next departure lies in the future and
//! the pacing timer (`tp->pacing_timer`) resumes it. Pacing runs only once
//! `sk_pacing_status` is SK_PACING_NEEDED, which SO_MAX_PACING_RATE sets (utcp has no fq
//! qdisc that could pace instead); `sk_pacing_rate` follows cwnd / srtt as in Linux,
//! capped by `sk_max_pacing_rate`.

use super::{Ctx, TcpSock, TcpState, TcpTimer};
use crate::time::{Duration, Instant};

/// Data segments sent before pacing starts ("original sch_fq does not pace first 10 MSS").
const UNPACED_SEGS: u32 = 10;

impl TcpSock {
    /// SO_MAX_PACING_RATE: `sk_max_pacing_rate` (bytes per second, `u64::MAX` = none); any
    /// other value turns internal pacing on for good (`SK_PACING_NONE` → `SK_PACING_NEEDED`).
    pub(crate) fn set_max_pacing_rate(&mut self, rate: u64) {
        if rate != u64::MAX {
            self.pacing_needed = true;
        }
        self.ext_mut().max_pacing_rate = rate;
        self.pacing_rate = self.pacing_rate.min(rate);
    }

    /// `tcp_update_pacing_rate()`: 200 % of cwnd · mss / srtt in slow start
    /// (`tcp_pacing_ss_ratio`), 120 % after (`tcp_pacing_ca_ratio`), at most
    /// `sk_max_pacing_rate`.
    pub(crate) fn tcp_update_pacing_rate(&mut self, net: &crate::netns::Netns) {
        let mut rate = self.mss_cache as u64 * ((1_000_000 / 100) << 3);
        let ratio = if self.snd_cwnd < self.snd_ssthresh / 2 {
            net.sysctl.tcp_pacing_ss_ratio.get()
        } else {
            net.sysctl.tcp_pacing_ca_ratio.get()
        };
        rate = rate.saturating_mul(ratio.max(0) as u64);
        rate = rate.saturating_mul(self.snd_cwnd.max(self.packets_out) as u64);
        if self.srtt_us != 0 {
            rate /= self.srtt_us as u64;
        }
        self.pacing_rate = rate.min(self.ext().max_pacing_rate);
    }

    /// The start of `__tcp_transmit_skb()`: the segment leaves no earlier than now; returns
    /// the departure time before (`prior_wstamp`).
    pub(crate) fn tcp_wstamp_refresh(&mut self, now: Instant) -> Instant {
        let prior = self.wstamp;
        self.wstamp = self.wstamp.max(now);
        prior
    }

    /// `tcp_update_skb_after_send()`: a segment of `len` bytes pushes the next departure
    /// `len / sk_pacing_rate` later, less up to half of it for time the sender sat idle.
    pub(crate) fn tcp_update_skb_after_send(&mut self, prior_wstamp: Instant, len: u32) {
        let rate = self.pacing_rate;
        if !self.pacing_needed || rate == u64::MAX || rate == 0 || self.data_segs_out < UNPACED_SEGS {
            return;
        }
        let mut len_ns = (len as u128 * 1_000_000_000 / rate as u128).min(u64::MAX as u128) as u64;
        let credit = self.wstamp.0.saturating_sub(prior_wstamp.0);
        len_ns -= (len_ns / 2).min(credit);
        self.wstamp += Duration::from_nanos(len_ns);
    }

    /// `tcp_pacing_check()`: true while the next departure lies ahead (the pacing timer is
    /// armed for it).
    pub(crate) fn tcp_pacing_check(&mut self, ctx: &Ctx<'_>) -> bool {
        if !self.pacing_needed || self.wstamp <= ctx.now {
            return false;
        }
        if self.timers.get(TcpTimer::Pacing).is_none() {
            self.reset_timer(TcpTimer::Pacing, self.wstamp);
        }
        true
    }

    /// The pacing timer (`tcp_pace_kick` → `tcp_tsq_write`): retransmit what is lost, then
    /// send what the windows allow.
    pub(crate) fn tcp_pace_kick(&mut self, ctx: &mut Ctx<'_>) {
        if !matches!(
            self.state,
            TcpState::Established | TcpState::FinWait1 | TcpState::Closing | TcpState::CloseWait | TcpState::LastAck
        ) {
            return;
        }
        if self.lost_out > self.retrans_out && self.snd_cwnd > self.packets_in_flight() {
            self.tcp_xmit_retransmit_queue(ctx);
        }
        let mss = self.tcp_current_mss();
        let nonagle = self.nonagle();
        self.tcp_write_xmit(ctx, mss, nonagle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::Netns;

    #[test]
    fn rate_follows_cwnd_over_srtt_and_the_cap() {
        let net = Netns::new(std::net::Ipv4Addr::new(192, 0, 2, 1), 1500, 1);
        let mut tp = TcpSock::new(&net, Instant::ZERO);
        tp.mss_cache = 1000;
        tp.snd_cwnd = 10;
        tp.snd_ssthresh = u32::MAX >> 1;
        tp.srtt_us = 10_000 << 3; // 10 ms
        tp.tcp_update_pacing_rate(&net);
        // 10 segments of 1000 bytes per 10 ms is 1 MB/s; slow start paces at 200 %.
        assert_eq!(tp.pacing_rate, 2_000_000);
        tp.snd_ssthresh = 10;
        tp.tcp_update_pacing_rate(&net);
        assert_eq!(tp.pacing_rate, 1_200_000);
        tp.set_max_pacing_rate(500_000);
        assert!(tp.pacing_needed);
        assert_eq!(tp.pacing_rate, 500_000);
        tp.tcp_update_pacing_rate(&net);
        assert_eq!(tp.pacing_rate, 500_000);
    }

    #[test]
    fn departures_advance_by_length_over_rate_after_ten_segments() {
        let net = Netns::new(std::net::Ipv4Addr::new(192, 0, 2, 1), 1500, 1);
        let mut tp = TcpSock::new(&net, Instant::ZERO);
        tp.set_max_pacing_rate(1_000_000);
        let t0 = Instant::from_millis(5);
        tp.data_segs_out = 9;
        let prior = tp.tcp_wstamp_refresh(t0);
        tp.tcp_update_skb_after_send(prior, 1000);
        assert_eq!(tp.wstamp, t0, "the first ten segments are not paced");
        tp.data_segs_out = 10;
        let prior = tp.tcp_wstamp_refresh(t0);
        tp.tcp_update_skb_after_send(prior, 1000);
        assert_eq!(tp.wstamp, t0 + Duration::from_millis(1), "1000 bytes at 1 MB/s");
        // After an idle gap the credit takes up to half of the next segment's time.
        let later = Instant::from_millis(100);
        let prior = tp.tcp_wstamp_refresh(later);
        tp.tcp_update_skb_after_send(prior, 1000);
        assert_eq!(tp.wstamp, later + Duration::from_micros(500));
    }
}
