//! Congestion control: the `tcp_ca_state` machine, CUBIC (net/ipv4/tcp_cubic.c), Linux's
//! default, with its constants (beta = 717/1024, C = 0.4, fast convergence, TCP friendliness),
//! and Reno (tcp_cong.c `tcp_reno_cong_avoid`, `tcp_reno_ssthresh`), the two built into every
//! kernel and selectable with TCP_CONGESTION. HyStart's delay-increase detection is included;
//! its ACK-train detection is not. BBR (tcp/bbr.rs) is the third; it replaces the whole-ACK
//! control (`cong_control`) and the `tcp_congestion_ops` hooks below dispatch to it.

use super::rate::RateSample;
use super::{Ctx, TcpSock};
use crate::seq::SeqNum;
use crate::time::Instant;

/// `enum tcp_ca_state`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) enum CaState {
    /// Nothing bad has been observed.
    #[default]
    Open,
    /// Duplicate ACKs or SACKs seen.
    Disorder,
    /// ECN congestion window reduction. utcp never enters it (ECN is not negotiated:
    /// `net.ipv4.tcp_ecn` behaves as 0); the variant keeps Linux's numbering of
    /// `tcpi_ca_state`.
    #[allow(dead_code)]
    Cwr,
    /// Fast retransmit / recovery.
    Recovery,
    /// After an RTO.
    Loss,
}

/// A congestion control algorithm (`struct tcp_congestion_ops`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) enum CongAlgo {
    /// `cubic`, the default.
    #[default]
    Cubic,
    /// `reno`.
    Reno,
    /// `bbr` (tcp_bbr.c, a module in Linux; built in here).
    Bbr,
}

impl CongAlgo {
    /// `ca_ops->name`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            CongAlgo::Cubic => "cubic",
            CongAlgo::Reno => "reno",
            CongAlgo::Bbr => "bbr",
        }
    }
    /// `tcp_ca_find()`.
    pub(crate) fn from_name(name: &str) -> Option<CongAlgo> {
        match name {
            "cubic" => Some(CongAlgo::Cubic),
            "reno" => Some(CongAlgo::Reno),
            "bbr" => Some(CongAlgo::Bbr),
            _ => None,
        }
    }
    /// The algorithm `net.ipv4.tcp_congestion_control` holds (its knob stores 0, 1, 2).
    pub(crate) fn from_sysctl(v: i64) -> CongAlgo {
        match v {
            1 => CongAlgo::Reno,
            2 => CongAlgo::Bbr,
            _ => CongAlgo::Cubic,
        }
    }
}

const BICTCP_BETA_SCALE: u64 = 1024;
const BETA: u64 = 717;
const BIC_SCALE: u64 = 41;
const HYSTART_MIN_SAMPLES: u32 = 8;
const HYSTART_LOW_WINDOW: u32 = 16;

/// CUBIC's per-connection state (`struct bictcp`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Cubic {
    /// Increase cwnd by 1 after this many ACKs.
    pub(crate) cnt: u32,
    /// Last maximum cwnd.
    pub(crate) last_max_cwnd: u32,
    /// cwnd at the last update.
    pub(crate) last_cwnd: u32,
    /// Time of the last update.
    pub(crate) last_time: Option<Instant>,
    /// Origin point of the cubic function.
    pub(crate) bic_origin_point: u32,
    /// Time to reach the origin point (in 2^-10 s).
    pub(crate) bic_k: u64,
    /// Minimum delay seen (µs).
    pub(crate) delay_min: u32,
    /// Start of the current epoch.
    pub(crate) epoch_start: Option<Instant>,
    /// ACKed packets since the epoch start.
    pub(crate) ack_cnt: u32,
    /// Estimated Reno cwnd.
    pub(crate) tcp_cwnd: u32,
    /// HyStart: sequence ending the round.
    pub(crate) end_seq: SeqNum,
    /// HyStart: minimum RTT of the current round.
    pub(crate) curr_rtt: u32,
    /// HyStart: samples in this round.
    pub(crate) sample_cnt: u32,
    /// HyStart found the exit point.
    pub(crate) found: bool,
}

fn cubic_root(a: u64) -> u64 {
    // Integer cube root by Newton iterations (bounded, exact enough for cwnd).
    if a == 0 {
        return 0;
    }
    let mut x = 1u64 << ((64 - a.leading_zeros()).div_ceil(3));
    loop {
        let y = (2 * x + a / (x * x)) / 3;
        if y >= x {
            return x;
        }
        x = y;
    }
}

impl TcpSock {
    /// `bictcp_recalc_ssthresh()`: the new ssthresh after a loss.
    pub(crate) fn cubic_ssthresh(&mut self) -> u32 {
        let c = &mut self.cubic;
        c.epoch_start = None;
        if self.snd_cwnd < c.last_max_cwnd {
            // Fast convergence.
            c.last_max_cwnd = ((self.snd_cwnd as u64 * (BICTCP_BETA_SCALE + BETA)) / (2 * BICTCP_BETA_SCALE)) as u32;
        } else {
            c.last_max_cwnd = self.snd_cwnd;
        }
        ((self.snd_cwnd as u64 * BETA / BICTCP_BETA_SCALE) as u32).max(2)
    }

    /// `bictcp_update()`: the cubic window growth target.
    fn bictcp_update(&mut self, now: Instant, acked: u32) {
        let cwnd = self.snd_cwnd;
        let srtt_us = self.srtt_us >> 3;
        let c = &mut self.cubic;
        c.ack_cnt += acked;
        if c.last_cwnd == cwnd && c.last_time.is_some_and(|t| now.saturating_since(t).as_millis() < 4) {
            return;
        }
        // The cubic function updates cnt at most once per clock tick; friendliness always.
        if !(c.epoch_start.is_some() && c.last_time == Some(now)) {
            c.last_cwnd = cwnd;
            c.last_time = Some(now);
            if c.epoch_start.is_none() {
                c.epoch_start = Some(now);
                c.ack_cnt = acked;
                c.tcp_cwnd = cwnd;
                if c.last_max_cwnd <= cwnd {
                    c.bic_k = 0;
                    c.bic_origin_point = cwnd;
                } else {
                    // K = cubic_root((W_max - cwnd) / C) in 2^-10 s units, C = 0.4 (410/1024).
                    let cube_factor = (1u64 << (10 + 3 * 10)) / (BIC_SCALE * 10);
                    c.bic_k = cubic_root(cube_factor * (c.last_max_cwnd - cwnd) as u64);
                    c.bic_origin_point = c.last_max_cwnd;
                }
            }
            let elapsed_us = now.saturating_since(c.epoch_start.unwrap_or(now)).as_micros() as u64 + c.delay_min as u64;
            let t = (elapsed_us << 10) / 1_000_000;
            let offs = c.bic_k.abs_diff(t);
            let cube_rtt_scale = BIC_SCALE * 10;
            // As Linux computes it: the cube in u64 (it wraps once (t - K) passes about 11 min,
            // "no overflow problems if the cwnd < 1 million packets" holds only for short
            // epochs), delta and the target in u32.
            let delta =
                (cube_rtt_scale.wrapping_mul(offs).wrapping_mul(offs).wrapping_mul(offs) >> (10 + 3 * 10)) as u32;
            let bic_target = if t < c.bic_k {
                c.bic_origin_point.wrapping_sub(delta)
            } else {
                c.bic_origin_point.wrapping_add(delta)
            };
            c.cnt = if bic_target > cwnd { (cwnd / (bic_target - cwnd)).max(1) } else { cwnd.wrapping_mul(100) };
            if c.last_max_cwnd == 0 && c.cnt > 20 {
                c.cnt = 20;
            }
        }
        // TCP friendliness.
        let beta_scale = 8 * (BICTCP_BETA_SCALE + BETA) / 3 / (BICTCP_BETA_SCALE - BETA);
        let delta = (cwnd as u64 * beta_scale) >> 3;
        while delta > 0 && c.ack_cnt as u64 > delta {
            c.ack_cnt -= delta as u32;
            c.tcp_cwnd += 1;
        }
        if c.tcp_cwnd > cwnd {
            let d = c.tcp_cwnd - cwnd;
            let max_cnt = cwnd / d;
            if c.cnt > max_cnt {
                c.cnt = max_cnt;
            }
        }
        c.cnt = c.cnt.max(2);
        let _ = srtt_us;
    }

    /// `ca_ops->ssthresh()`: the slow-start threshold after a loss.
    pub(crate) fn tcp_ca_ssthresh(&mut self) -> u32 {
        match self.ca_algo {
            CongAlgo::Cubic => self.cubic_ssthresh(),
            CongAlgo::Reno => (self.snd_cwnd >> 1).max(2),
            CongAlgo::Bbr => self.bbr_ssthresh(),
        }
    }

    /// `tcp_init_congestion_control()` (`ca_ops->init`), at the start of the transfer or when
    /// TCP_CONGESTION picks an algorithm on a connected socket.
    pub(crate) fn tcp_init_congestion_control(&mut self, now: Instant) {
        match self.ca_algo {
            CongAlgo::Bbr => self.bbr_init(now),
            CongAlgo::Cubic | CongAlgo::Reno => self.bbr = None,
        }
    }

    /// `tcp_reinit_congestion_control()`: TCP_CONGESTION switches to `algo` (fresh state; the
    /// algorithm starts now unless the socket is closed or listening, else at the transfer).
    pub(crate) fn tcp_reinit_congestion_control(&mut self, algo: CongAlgo, now: Instant) {
        self.ca_algo = algo;
        self.cubic_reset();
        self.bbr = None;
        if !matches!(self.state, super::TcpState::Close | super::TcpState::Listen) {
            self.tcp_init_congestion_control(now);
        }
    }

    /// `ca_ops->undo_cwnd()`: the cwnd an undo restores (`tcp_reno_undo_cwnd`, CUBIC's too:
    /// the cwnd before the reduction).
    pub(crate) fn tcp_ca_undo_cwnd(&mut self) -> u32 {
        match self.ca_algo {
            CongAlgo::Bbr => self.bbr_undo_cwnd(),
            CongAlgo::Cubic | CongAlgo::Reno => self.snd_cwnd.max(self.prior_cwnd),
        }
    }

    /// `tcp_end_cwnd_reduction()`: leaving recovery sets cwnd to ssthresh, unless the
    /// algorithm controls cwnd itself (`cong_control`).
    pub(crate) fn tcp_end_cwnd_reduction(&mut self) {
        if self.ca_algo == CongAlgo::Bbr {
            return;
        }
        self.snd_cwnd = self.snd_ssthresh.max(2);
    }

    /// `tcp_set_ca_state(sk, TCP_CA_Loss)` with `ca_ops->set_state` (BBR's is the only one).
    pub(crate) fn tcp_set_ca_state_loss(&mut self, ctx: &Ctx<'_>) {
        if self.ca_algo == CongAlgo::Bbr {
            self.bbr_set_state_loss(ctx);
        }
        self.ca_state = CaState::Loss;
    }

    /// `tcp_ca_event(CA_EVENT_TX_START)`: sending starts with nothing in flight. CUBIC shifts
    /// its epoch over the idle time; BBR paces at its bandwidth after an idle period.
    pub(crate) fn tcp_ca_event_tx_start(&mut self, net: &crate::netns::Netns, now: Instant) {
        let idle = now.saturating_since(self.lsndtime);
        if let Some(start) = self.cubic.epoch_start.as_mut() {
            *start = (*start + idle).min(now);
        }
        if self.ca_algo == CongAlgo::Bbr {
            self.bbr_cwnd_event_tx_start(net, now);
        }
    }

    /// `ca_ops->min_tso_segs()`, else `net.ipv4.tcp_min_tso_segs`.
    pub(crate) fn tcp_ca_min_tso_segs(&self, net: &crate::netns::Netns) -> u32 {
        match self.ca_algo {
            CongAlgo::Bbr => self.bbr_min_tso_segs(),
            _ => net.sysctl.tcp_min_tso_segs.get().clamp(1, 255) as u32,
        }
    }

    /// `ca_ops->sndbuf_expand()`: send buffer per cwnd (BBR may slow-start in recovery).
    pub(crate) fn tcp_ca_sndbuf_expand(&self) -> u64 {
        match self.ca_algo {
            CongAlgo::Bbr => 3,
            _ => 2,
        }
    }

    /// `ca_ops->get_info()` for TCP_CC_INFO: BBR's `struct tcp_bbr_info`; nothing for
    /// CUBIC and Reno.
    pub(crate) fn tcp_ca_get_info(&self) -> Vec<u8> {
        match self.ca_algo {
            CongAlgo::Bbr => self.bbr_get_info(),
            _ => Vec::new(),
        }
    }

    /// `tcp_cong_control()`: at the end of an ACK, the algorithm's whole-ACK control when it
    /// has one (`cong_control`, with the ACK's rate sample); else PRR while reducing cwnd,
    /// growth when the state allows, and the pacing rate from cwnd / srtt.
    pub(crate) fn tcp_cong_control(&mut self, ctx: &Ctx<'_>, acked_sacked: u32, fl: u32, rs: &RateSample) {
        use super::input::flag;
        if self.ca_algo == CongAlgo::Bbr {
            self.bbr_main(ctx, rs);
            return;
        }
        if self.tcp_in_cwnd_reduction() {
            self.tcp_cwnd_reduction(acked_sacked, rs.losses, fl & flag::SND_UNA_ADVANCED != 0);
        } else if self.tcp_may_raise_cwnd(ctx, fl) {
            // Also in the Loss state: after an RTO cwnd slow-starts from 1 as the
            // retransmissions are acknowledged, not only once the loss episode ends.
            self.tcp_cong_avoid(ctx, acked_sacked);
        }
        self.tcp_update_pacing_rate(ctx.net);
    }

    /// `tcp_may_raise_cwnd()` (with `tcp_cong_control`'s "not reducing" test done by the
    /// caller): with high reordering cwnd grows on any forward progress, else only on
    /// in-order delivery (RFC 5681), in every state but CWR and Recovery (Loss included).
    pub(crate) fn tcp_may_raise_cwnd(&self, ctx: &Ctx<'_>, fl: u32) -> bool {
        use super::input::flag;
        if self.reordering as i64 > ctx.net.sysctl.tcp_reordering.get() {
            return fl & flag::FORWARD_PROGRESS != 0;
        }
        fl & flag::DATA_ACKED != 0
    }

    /// `ca_ops->cong_avoid()`.
    pub(crate) fn tcp_cong_avoid(&mut self, ctx: &Ctx<'_>, acked: u32) {
        match self.ca_algo {
            CongAlgo::Cubic => self.cubictcp_cong_avoid(ctx, acked),
            CongAlgo::Reno => self.tcp_reno_cong_avoid(acked),
            // BBR sets cwnd in its cong_control (bbr_main) and has no cong_avoid.
            CongAlgo::Bbr => {}
        }
    }

    /// `tcp_reno_cong_avoid()`: slow start, then one segment per window of ACKs.
    fn tcp_reno_cong_avoid(&mut self, mut acked: u32) {
        if self.snd_cwnd < self.snd_ssthresh {
            acked = self.tcp_slow_start(acked);
            if acked == 0 {
                return;
            }
        }
        self.tcp_cong_avoid_ai(self.snd_cwnd, acked);
    }

    /// `tcp_slow_start()`: grows cwnd by the ACKed packets up to ssthresh; returns what is
    /// left over for congestion avoidance.
    fn tcp_slow_start(&mut self, acked: u32) -> u32 {
        let cwnd = (self.snd_cwnd + acked).min(self.snd_ssthresh);
        let left = acked - (cwnd - self.snd_cwnd);
        self.snd_cwnd = cwnd.min(self.snd_cwnd_clamp());
        left
    }

    /// `tcp_cong_avoid_ai()`: one segment more per `w` packets ACKed.
    fn tcp_cong_avoid_ai(&mut self, w: u32, acked: u32) {
        let w = w.max(1);
        if self.snd_cwnd_cnt >= w {
            self.snd_cwnd_cnt = 0;
            self.snd_cwnd += 1;
        }
        self.snd_cwnd_cnt += acked;
        if self.snd_cwnd_cnt >= w {
            let delta = self.snd_cwnd_cnt / w;
            self.snd_cwnd_cnt -= delta * w;
            self.snd_cwnd += delta;
        }
        self.snd_cwnd = self.snd_cwnd.min(self.snd_cwnd_clamp());
    }

    /// `cubictcp_cong_avoid()` (with `tcp_slow_start` and `tcp_cong_avoid_ai`).
    fn cubictcp_cong_avoid(&mut self, ctx: &Ctx<'_>, mut acked: u32) {
        if self.snd_cwnd >= self.snd_cwnd_clamp() {
            return;
        }
        if self.snd_cwnd < self.snd_ssthresh {
            acked = self.tcp_slow_start(acked);
            if acked == 0 {
                return;
            }
        }
        self.bictcp_update(ctx.now, acked);
        self.tcp_cong_avoid_ai(self.cubic.cnt, acked);
    }

    /// `hystart_update()` (delay increase only): leaves slow start when the round's minimum
    /// RTT rises clearly above the connection minimum.
    pub(crate) fn hystart_update(&mut self, ctx: &Ctx<'_>, rtt_us: u32) {
        if self.ca_algo != CongAlgo::Cubic {
            return;
        }
        if self.snd_cwnd >= self.snd_ssthresh && self.snd_ssthresh != u32::MAX >> 1 {
            return;
        }
        let c = &mut self.cubic;
        if c.delay_min == 0 || c.delay_min > rtt_us {
            c.delay_min = rtt_us;
        }
        if c.found || self.snd_cwnd < HYSTART_LOW_WINDOW {
            return;
        }
        if !self.snd_una.before(c.end_seq) {
            // New round.
            c.end_seq = self.snd_nxt;
            c.curr_rtt = u32::MAX;
            c.sample_cnt = 0;
        }
        if c.sample_cnt < HYSTART_MIN_SAMPLES {
            c.curr_rtt = c.curr_rtt.min(rtt_us);
            c.sample_cnt += 1;
        } else {
            let thresh = (c.delay_min >> 3).clamp(4000, 16000);
            if c.curr_rtt > c.delay_min + thresh {
                c.found = true;
                self.snd_ssthresh = self.snd_cwnd;
            }
        }
        let _ = ctx;
    }

    /// `tp->snd_cwnd_clamp`.
    pub(crate) fn snd_cwnd_clamp(&self) -> u32 {
        u32::MAX >> 1
    }

    /// Resets CUBIC after an RTO (`bictcp_state` to `TCP_CA_Loss`).
    pub(crate) fn cubic_reset(&mut self) {
        self.cubic = Cubic::default();
    }
}

#[cfg(test)]
mod tests {
    use super::cubic_root;
    use crate::tcp::TcpSock;
    use crate::time::{Duration, Instant};

    /// An epoch that began long ago (an RTO-bound connection: 20 minutes) makes the cube of
    /// `t - K` pass 64 bits; Linux's u64 arithmetic wraps there, and so does utcp's (no panic).
    #[test]
    fn cubic_update_after_a_long_epoch_wraps_as_linux_does() {
        let net = crate::netns::Netns::new(std::net::Ipv4Addr::new(10, 0, 0, 1), 1500, 1);
        let mut tp = TcpSock::new(&net, Instant::ZERO);
        tp.snd_cwnd = 2;
        tp.cubic.last_max_cwnd = 40;
        let t0 = Instant::ZERO + Duration::from_secs(1);
        tp.bictcp_update(t0, 1);
        assert_eq!(tp.cubic.epoch_start, Some(t0));
        for secs in [700u64, 1200, 5000] {
            tp.bictcp_update(t0 + Duration::from_secs(secs), 1);
            assert!(tp.cubic.cnt >= 1);
        }
    }

    #[test]
    fn cube_roots() {
        for a in [1u64, 7, 8, 9, 26, 27, 1000, 123456789, 1 << 40] {
            let r = cubic_root(a);
            assert!(r * r * r <= a && (r + 1) * (r + 1) * (r + 1) > a, "{a} -> {r}");
        }
    }
}
