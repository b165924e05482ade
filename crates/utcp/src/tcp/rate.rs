//! The delivery-rate estimator (net/ipv4/tcp_rate.c). Each transmission snapshots the
//! connection's delivery state in the segment (`tcp_rate_skb_sent`); when the segment is
//! (S)ACKed that snapshot starts the sample (`tcp_rate_skb_delivered`, the most recently
//! sent segment of the ACK wins); the ACK then closes it (`tcp_rate_gen`): packets delivered
//! over the longer of the send phase and the ACK phase. A sample taken while the sender ran
//! out of data is marked application-limited (`tcp_rate_check_app_limited`). BBR
//! (tcp/bbr.rs) is built on these samples; TCP_INFO reports the last one
//! (`tcpi_delivery_rate`).

use super::{TcpSock, TxSkb, TCPCB_EVER_RETRANS, TCPCB_SACKED_ACKED, TCPCB_SACKED_RETRANS};
use crate::time::Instant;

/// `TCP_SKB_CB(skb)->tx`: the delivery state when the segment was last sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TxRate {
    /// `tp->delivered` at the send.
    pub(crate) delivered: u32,
    /// `tp->delivered_mstamp` at the send; `None` once the segment was SACKed (its sample
    /// was taken) or when it never left.
    pub(crate) delivered_mstamp: Option<Instant>,
    /// `tp->first_tx_mstamp` at the send: the start of the send phase.
    pub(crate) first_tx_mstamp: Instant,
    /// The connection was application-limited.
    pub(crate) is_app_limited: bool,
    /// `tx.in_flight`: bytes from `snd_una` to the segment's end at the send.
    pub(crate) in_flight: u32,
}

/// The connection's estimator state (`struct tcp_sock`'s rate fields).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TcpRate {
    /// `tp->delivered_mstamp`: when `tp->delivered` last grew.
    pub(crate) delivered_mstamp: Option<Instant>,
    /// `tp->first_tx_mstamp`: send time of the most recently (S)ACKed segment, or of the
    /// first segment sent from idle.
    pub(crate) first_tx_mstamp: Instant,
    /// `tp->app_limited`: `tp->delivered` (plus in flight) at which the application-limited
    /// period ends; 0: not application-limited.
    pub(crate) app_limited: u32,
    /// `tp->rate_delivered`: packets of the last reported sample.
    pub(crate) rate_delivered: u32,
    /// `tp->rate_interval_us`: its interval.
    pub(crate) rate_interval_us: u32,
    /// `tp->rate_app_limited`: it was application-limited.
    pub(crate) rate_app_limited: bool,
    /// `tp->lost`: packets ever marked lost.
    pub(crate) lost: u32,
}

/// `struct rate_sample`: what one ACK measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RateSample {
    /// `prior_mstamp`: `tp->delivered_mstamp` when the sampled segment was sent.
    pub(crate) prior_mstamp: Option<Instant>,
    /// `tp->delivered` when the sampled segment was sent.
    pub(crate) prior_delivered: u32,
    /// Packets delivered over the interval; -1: no valid sample.
    pub(crate) delivered: i32,
    /// The sample's interval in µs; -1: no valid sample.
    pub(crate) interval_us: i64,
    /// The send phase (µs).
    pub(crate) snd_interval_us: u32,
    /// The ACK phase (µs).
    pub(crate) rcv_interval_us: u32,
    /// RTT of the last (S)ACKed packet (µs); -1: none.
    pub(crate) rtt_us: i64,
    /// Packets newly marked lost by this ACK.
    pub(crate) losses: u32,
    /// Packets newly ACKed or SACKed by this ACK.
    pub(crate) acked_sacked: u32,
    /// Packets in flight before this ACK.
    pub(crate) prior_in_flight: u32,
    /// The sampled segment was sent while application-limited.
    pub(crate) is_app_limited: bool,
    /// The sampled segment was a retransmission.
    pub(crate) is_retrans: bool,
    /// The ACK may have been delayed (`FLAG_ACK_MAYBE_DELAYED`).
    pub(crate) is_ack_delayed: bool,
}

impl Default for RateSample {
    fn default() -> RateSample {
        RateSample {
            prior_mstamp: None,
            prior_delivered: 0,
            delivered: 0,
            interval_us: 0,
            snd_interval_us: 0,
            rcv_interval_us: 0,
            rtt_us: -1,
            losses: 0,
            acked_sacked: 0,
            prior_in_flight: 0,
            is_app_limited: false,
            is_retrans: false,
            is_ack_delayed: false,
        }
    }
}

/// `tcp_stamp_us_delta(t1, t0)`: µs from `t0` to `t1`, at least 0.
fn us_delta(t1: Instant, t0: Instant) -> i64 {
    t1.saturating_since(t0).as_micros().min(i64::MAX as u128) as i64
}

impl TcpRate {
    /// `tcp_rate_skb_delivered()`: the segment `skb` was (S)ACKed; the most recently sent
    /// segment of the ACK (highest `tx.delivered`) gives the sample's start.
    pub(crate) fn tcp_rate_skb_delivered(&mut self, skb: &mut TxSkb, rs: &mut RateSample) {
        let Some(stamp) = skb.tx.delivered_mstamp else {
            return;
        };
        if rs.prior_mstamp.is_none() || (skb.tx.delivered.wrapping_sub(rs.prior_delivered) as i32) > 0 {
            rs.prior_delivered = skb.tx.delivered;
            rs.prior_mstamp = Some(stamp);
            rs.is_app_limited = skb.tx.is_app_limited;
            rs.is_retrans = skb.sacked & (TCPCB_SACKED_RETRANS | TCPCB_EVER_RETRANS) != 0;
            // The send time of the most recently (S)ACKed packet; the send phase runs from
            // the first send of its window to it.
            self.first_tx_mstamp = skb.tx_time;
            rs.interval_us = us_delta(self.first_tx_mstamp, skb.tx.first_tx_mstamp);
        }
        // A SACKed segment gives its sample once, not again when cumulatively ACKed.
        if skb.sacked & TCPCB_SACKED_ACKED != 0 {
            skb.tx.delivered_mstamp = None;
        }
    }
}

impl TcpSock {
    /// `tcp_rate_skb_sent()`: the delivery state a segment leaving at `tx_time` carries. From
    /// idle (nothing in flight) the sample starts at this send.
    pub(crate) fn tcp_rate_skb_sent(&mut self, tx_time: Instant, end_seq: crate::seq::SeqNum) -> TxRate {
        if self.packets_out == 0 {
            self.rate.first_tx_mstamp = tx_time;
            self.rate.delivered_mstamp = Some(tx_time);
        }
        TxRate {
            delivered: self.delivered,
            delivered_mstamp: self.rate.delivered_mstamp,
            first_tx_mstamp: self.rate.first_tx_mstamp,
            is_app_limited: self.rate.app_limited != 0,
            in_flight: end_seq.diff(self.snd_una),
        }
    }

    /// `FLAG_ACK_MAYBE_DELAYED` of `tcp_clean_rtx_queue()`: the ACK covered one packet, a lone
    /// runt (less than an MSS in flight when it left, the last never-retransmitted one
    /// cumulatively ACKed), nothing was SACKed before, nothing else was delivered since it
    /// left, and the ACK carries no SACK and no SYN: typically a delayed ACK (its RTT sample
    /// may include the receiver's delay). Sets the sample's `is_ack_delayed`.
    pub(crate) fn tcp_rate_ack_maybe_delayed(
        &self,
        pkts_acked: u32,
        last_in_flight: u32,
        prior_sacked: u32,
        alert: bool,
        rs: &mut RateSample,
    ) {
        rs.is_ack_delayed = pkts_acked == 1
            && last_in_flight > 0
            && last_in_flight < self.mss_cache
            && prior_sacked == 0
            && rs.prior_delivered.wrapping_add(1) == self.delivered
            && !alert;
    }

    /// `tcp_rate_gen()`: closes the ACK's sample. `delivered` and `lost` are the packets this
    /// ACK newly (S)ACKed and newly marked lost.
    pub(crate) fn tcp_rate_gen(
        &mut self,
        now: Instant,
        delivered: u32,
        lost: u32,
        is_sack_reneg: bool,
        rs: &mut RateSample,
    ) {
        // The application-limited bubble was ACKed and is gone.
        if self.rate.app_limited != 0 && (self.delivered.wrapping_sub(self.rate.app_limited) as i32) > 0 {
            self.rate.app_limited = 0;
        }
        if delivered > 0 {
            self.rate.delivered_mstamp = Some(now);
        }
        rs.acked_sacked = delivered;
        rs.losses = lost;
        let Some(prior_mstamp) = rs.prior_mstamp.filter(|_| !is_sack_reneg) else {
            rs.delivered = -1;
            rs.interval_us = -1;
            return;
        };
        rs.delivered = self.delivered.wrapping_sub(rs.prior_delivered) as i32;
        // Sending and ACKing are two pipeline phases of one window; with ACK compression
        // the send phase is the longer: take the longer.
        let snd_us = rs.interval_us;
        let ack_us = us_delta(now, prior_mstamp);
        rs.interval_us = snd_us.max(ack_us);
        rs.snd_interval_us = snd_us.clamp(0, u32::MAX as i64) as u32;
        rs.rcv_interval_us = ack_us.clamp(0, u32::MAX as i64) as u32;
        // An interval below min_rtt cannot be right (a spurious retransmission was SACKed
        // first, say): no sample.
        let min_rtt = if self.min_rtt_us == 0 { u32::MAX } else { self.min_rtt_us };
        if rs.interval_us < min_rtt as i64 {
            rs.interval_us = -1;
            return;
        }
        // Keep the last non-application-limited sample, or the fastest limited one.
        if !rs.is_app_limited
            || rs.delivered as u64 * self.rate.rate_interval_us as u64
                >= self.rate.rate_delivered as u64 * rs.interval_us as u64
        {
            self.rate.rate_delivered = rs.delivered as u32;
            self.rate.rate_interval_us = rs.interval_us.min(u32::MAX as i64) as u32;
            self.rate.rate_app_limited = rs.is_app_limited;
        }
    }

    /// `tcp_rate_check_app_limited()` (at the start of every send call): the connection is
    /// application-limited when less than a packet waits to be sent, cwnd is not full and
    /// every lost packet was retransmitted.
    ///
    /// Linux also requires its qdisc and NIC queues to be empty (`sk_wmem_alloc` below one
    /// skb's truesize); utcp's devices take each packet as it is sent, so nothing of the
    /// socket's waits below TCP.
    pub(crate) fn tcp_rate_check_app_limited(&mut self) {
        let in_flight = self.packets_in_flight();
        if self.write_seq.diff(self.snd_nxt) < self.mss_cache
            && in_flight < self.snd_cwnd
            && self.lost_out <= self.retrans_out
        {
            let v = self.delivered.wrapping_add(in_flight);
            self.rate.app_limited = if v == 0 { 1 } else { v };
        }
    }

    /// `tcp_compute_delivery_rate()`: the last sample in bytes per second (TCP_INFO's
    /// `tcpi_delivery_rate`); 0 before the first.
    pub(crate) fn tcp_compute_delivery_rate(&self) -> u64 {
        if self.rate.rate_interval_us == 0 {
            return 0;
        }
        self.rate.rate_delivered as u64 * self.mss_cache as u64 * 1_000_000 / self.rate.rate_interval_us as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::Netns;
    use crate::seq::SeqNum;
    use crate::time::Duration;

    fn sock() -> TcpSock {
        let net = Netns::new(std::net::Ipv4Addr::new(192, 0, 2, 1), 1500, 1);
        let mut tp = TcpSock::new(&net, Instant::ZERO);
        tp.mss_cache = 1000;
        tp.snd_cwnd = 10;
        tp
    }

    fn skb(seq: u32, tx_time: Instant, tx: TxRate) -> TxSkb {
        TxSkb {
            seq: SeqNum(seq),
            end_seq: SeqNum(seq + 1000),
            flags: crate::wire::TcpFlags::ACK,
            building: None,
            data: bytes::Bytes::new(),
            frag: bytes::Bytes::new(),
            sacked: 0,
            tx_time,
            tx_order: 0,
            retrans: 0,
            urg: false,
            tx,
        }
    }

    fn us(n: u64) -> Instant {
        Instant::ZERO + Duration::from_micros(n)
    }

    /// Four packets leave from idle at t = 100, 200, 300, 400 µs and are ACKed one by one at
    /// 10.1, 10.2, 10.3, 10.4 ms (10 ms RTT). The ACK of the fourth: delivered 4 - 0 = 4
    /// packets (counting from the send of the first, which started from idle) over
    /// max(send phase 400 - 100 = 300 µs, ACK phase 10400 - 100 = 10300 µs).
    #[test]
    fn sample_from_idle_takes_the_longer_phase() {
        let mut tp = sock();
        tp.min_rtt_us = 10_000;
        let mut q = Vec::new();
        for i in 0..4u64 {
            let t = us(100 + 100 * i);
            let tx = tp.tcp_rate_skb_sent(t, SeqNum(1000));
            tp.packets_out += 1;
            q.push(skb(1000 * i as u32, t, tx));
        }
        assert_eq!(
            q[0].tx,
            TxRate {
                delivered: 0,
                delivered_mstamp: Some(us(100)),
                first_tx_mstamp: us(100),
                is_app_limited: false,
                in_flight: 1000
            }
        );
        assert_eq!(q[3].tx.delivered_mstamp, Some(us(100)), "no ACK yet: the stamp stays");
        let mut last = RateSample::default();
        for (i, s) in q.iter_mut().enumerate() {
            let mut rs = RateSample::default();
            tp.rate.tcp_rate_skb_delivered(s, &mut rs);
            tp.delivered += 1;
            tp.packets_out -= 1;
            tp.tcp_rate_gen(us(10_100 + 100 * i as u64), 1, 0, false, &mut rs);
            last = rs;
        }
        assert_eq!(last.prior_delivered, 0);
        assert_eq!(last.delivered, 4);
        assert_eq!(last.snd_interval_us, 300);
        assert_eq!(last.rcv_interval_us, 10_300);
        assert_eq!(last.interval_us, 10_300);
        assert_eq!(last.acked_sacked, 1);
        assert_eq!(tp.rate.rate_delivered, 4);
        assert_eq!(tp.rate.rate_interval_us, 10_300);
        // 4 packets of 1000 bytes in 10.3 ms.
        assert_eq!(tp.tcp_compute_delivery_rate(), 4_000 * 1_000_000 / 10_300);
    }

    /// A sample shorter than min_rtt (a 10 ms ACK phase against a 20 ms min_rtt) is refused;
    /// the delivery still moves `delivered_mstamp`.
    #[test]
    fn interval_below_min_rtt_gives_no_sample() {
        let mut tp = sock();
        tp.min_rtt_us = 20_000;
        let tx = tp.tcp_rate_skb_sent(us(0), SeqNum(1000));
        tp.packets_out = 1;
        let mut s = skb(0, us(0), tx);
        let mut rs = RateSample::default();
        tp.rate.tcp_rate_skb_delivered(&mut s, &mut rs);
        tp.delivered = 1;
        tp.tcp_rate_gen(us(10_000), 1, 0, false, &mut rs);
        assert_eq!(rs.delivered, 1);
        assert_eq!(rs.interval_us, -1);
        assert_eq!(tp.rate.rate_interval_us, 0, "nothing reported");
        assert_eq!(tp.rate.delivered_mstamp, Some(us(10_000)));
    }

    /// A SACKed segment gives its sample once: the cumulative ACK that covers it later takes
    /// no timing from it. An ACK with no timing at all gives -1/-1 but counts the delivery.
    #[test]
    fn sacked_segment_samples_once() {
        let mut tp = sock();
        tp.min_rtt_us = 1;
        let tx = tp.tcp_rate_skb_sent(us(0), SeqNum(1000));
        tp.packets_out = 1;
        let mut s = skb(0, us(0), tx);
        s.sacked |= TCPCB_SACKED_ACKED;
        let mut rs = RateSample::default();
        tp.rate.tcp_rate_skb_delivered(&mut s, &mut rs);
        assert_eq!(s.tx.delivered_mstamp, None);
        assert_eq!(rs.prior_mstamp, Some(us(0)));
        let mut rs2 = RateSample::default();
        tp.rate.tcp_rate_skb_delivered(&mut s, &mut rs2);
        assert_eq!(rs2.prior_mstamp, None);
        tp.tcp_rate_gen(us(50), 0, 2, false, &mut rs2);
        assert_eq!((rs2.delivered, rs2.interval_us, rs2.losses), (-1, -1, 2));
        // SACK reneging also voids the sample.
        tp.delivered = 1;
        tp.tcp_rate_gen(us(60), 1, 0, true, &mut rs);
        assert_eq!((rs.delivered, rs.interval_us), (-1, -1));
    }

    /// Of two segments ACKed together, the later-sent (higher tx.delivered) starts the sample.
    #[test]
    fn most_recently_sent_segment_wins() {
        let mut tp = sock();
        let mut a = skb(
            0,
            us(10),
            TxRate {
                delivered: 5,
                delivered_mstamp: Some(us(5)),
                first_tx_mstamp: us(1),
                is_app_limited: false,
                in_flight: 0,
            },
        );
        let mut b = skb(
            1000,
            us(20),
            TxRate {
                delivered: 7,
                delivered_mstamp: Some(us(8)),
                first_tx_mstamp: us(2),
                is_app_limited: true,
                in_flight: 0,
            },
        );
        b.retrans = 1;
        b.sacked |= TCPCB_EVER_RETRANS;
        let mut rs = RateSample::default();
        tp.rate.tcp_rate_skb_delivered(&mut b, &mut rs);
        tp.rate.tcp_rate_skb_delivered(&mut a, &mut rs);
        assert_eq!(rs.prior_delivered, 7);
        assert_eq!(rs.prior_mstamp, Some(us(8)));
        assert!(rs.is_app_limited && rs.is_retrans);
        assert_eq!(rs.interval_us, 18, "20 - 2");
        assert_eq!(tp.rate.first_tx_mstamp, us(20));
    }

    /// Application-limited: marked when less than a packet waits, cwnd has room and no lost
    /// packet waits for its retransmission; it ends once the bubble is delivered. An
    /// application-limited sample replaces the reported one only when it is faster.
    #[test]
    fn app_limited_marks_and_clears() {
        let mut tp = sock();
        tp.delivered = 20;
        tp.packets_out = 3;
        tp.tcp_rate_check_app_limited();
        assert_eq!(tp.rate.app_limited, 23);
        let tx = tp.tcp_rate_skb_sent(us(0), SeqNum(1000));
        assert!(tx.is_app_limited);
        tp.rate.app_limited = 0;
        tp.packets_out = 10; // cwnd full
        tp.tcp_rate_check_app_limited();
        assert_eq!(tp.rate.app_limited, 0);
        tp.packets_out = 3;
        tp.lost_out = 1; // a loss not yet retransmitted
        tp.tcp_rate_check_app_limited();
        assert_eq!(tp.rate.app_limited, 0);
        tp.lost_out = 0;
        tp.write_seq = tp.snd_nxt + 1000; // a full packet waits
        tp.tcp_rate_check_app_limited();
        assert_eq!(tp.rate.app_limited, 0);
        tp.write_seq = tp.snd_nxt;
        tp.delivered = 0;
        tp.packets_out = 0;
        tp.tcp_rate_check_app_limited();
        assert_eq!(tp.rate.app_limited, 1, "never 0 while limited");

        tp.min_rtt_us = 1;
        tp.rate.app_limited = 23;
        tp.rate.rate_delivered = 10;
        tp.rate.rate_interval_us = 1000;
        tp.delivered = 24;
        let mut rs = RateSample {
            prior_mstamp: Some(us(0)),
            prior_delivered: 19,
            interval_us: 2000,
            is_app_limited: true,
            ..Default::default()
        };
        tp.tcp_rate_gen(us(1000), 1, 0, false, &mut rs);
        assert_eq!(tp.rate.app_limited, 0, "delivered passed the bubble");
        assert_eq!((rs.delivered, rs.interval_us), (5, 2000));
        assert_eq!(tp.rate.rate_delivered, 10, "a slower limited sample is not reported");
        let mut rs = RateSample {
            prior_mstamp: Some(us(0)),
            prior_delivered: 0,
            interval_us: 2000,
            is_app_limited: true,
            ..Default::default()
        };
        tp.tcp_rate_gen(us(1000), 1, 0, false, &mut rs);
        assert_eq!((tp.rate.rate_delivered, tp.rate.rate_interval_us, tp.rate.rate_app_limited), (24, 2000, true));
    }

    /// A lone runt packet's ACK may be delayed; a full-sized one, a second packet, an earlier
    /// SACK or a delivery in between say it was not.
    #[test]
    fn ack_maybe_delayed_only_for_a_lone_runt() {
        let mut tp = sock();
        tp.delivered = 8;
        let mut rs = RateSample { prior_delivered: 7, ..Default::default() };
        tp.tcp_rate_ack_maybe_delayed(1, 300, 0, false, &mut rs);
        assert!(rs.is_ack_delayed);
        for (pkts, in_flight, sacked, alert, prior) in [
            (2, 300, 0, false, 7),
            (1, 1000, 0, false, 7),
            (1, 0, 0, false, 7),
            (1, 300, 1, false, 7),
            (1, 300, 0, true, 7),
            (1, 300, 0, false, 6),
        ] {
            let mut rs = RateSample { prior_delivered: prior, ..Default::default() };
            tp.tcp_rate_ack_maybe_delayed(pkts, in_flight, sacked, alert, &mut rs);
            assert!(!rs.is_ack_delayed, "{pkts} {in_flight} {sacked} {alert} {prior}");
        }
    }
}
