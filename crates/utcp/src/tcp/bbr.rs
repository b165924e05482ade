//! BBR congestion control, version 1 as in mainline Linux (net/ipv4/tcp_bbr.c), with the
//! windowed min/max filter it uses (lib/win_minmax.c).
//!
//! On every ACK BBR updates its model of the path from the ACK's delivery-rate sample
//! (tcp/rate.rs): the bottleneck bandwidth is the windowed maximum of the delivery rate over
//! 10 packet-timed round trips, the propagation delay the minimum RTT over 10 seconds. It
//! paces at `pacing_gain` × bandwidth (tcp/pacing.rs; `bbr_init` turns internal pacing on, as
//! Linux does when no fq qdisc paces) and caps cwnd at `cwnd_gain` × BDP plus what ACK
//! aggregation needs. Its modes:
//! STARTUP (gain 2/ln 2 until the bandwidth stops growing by 25 % for three rounds),
//! DRAIN (the inverse gain until the queue it built is gone), PROBE_BW (gain cycling
//! 5/4, 3/4, then six rounds at 1) and PROBE_RTT (cwnd 4 for 200 ms and a round when the
//! min_rtt estimate is 10 s old). Losses do not cut the rate: in recovery the first round
//! conserves packets and cwnd then slow-starts back; a token-bucket policer is detected by
//! the long-term ("LT") sampler and its rate used for 48 rounds.

use super::cong::CaState;
use super::rate::RateSample;
use super::{Ctx, TcpSock};
use crate::time::{Duration, Instant};

/// Bandwidth is in packets per µs << `BW_SCALE`.
const BW_SCALE: u32 = 24;
const BW_UNIT: u64 = 1 << BW_SCALE;
/// Gains are in units of 1/256.
const BBR_SCALE: u32 = 8;
/// 1.0 as a gain.
pub(crate) const BBR_UNIT: u32 = 1 << BBR_SCALE;

const CYCLE_LEN: u32 = 8;
/// Window of the bandwidth filter, in rounds.
const BBR_BW_RTTS: u32 = CYCLE_LEN + 2;
/// Window of the min_rtt filter.
const BBR_MIN_RTT_WIN: Duration = Duration::from_secs(10);
/// Time at `BBR_CWND_MIN_TARGET` in PROBE_RTT.
const BBR_PROBE_RTT_MODE: Duration = Duration::from_millis(200);
/// No TSO below this rate (bits per second).
const BBR_MIN_TSO_RATE: u64 = 1_200_000;
/// Pace this much below the estimated bandwidth (%).
const BBR_PACING_MARGIN_PERCENT: u64 = 1;
/// 2/ln(2): doubles the sending rate every round.
pub(crate) const BBR_HIGH_GAIN: u32 = BBR_UNIT * 2885 / 1000 + 1;
/// Drains STARTUP's queue in about one round.
pub(crate) const BBR_DRAIN_GAIN: u32 = BBR_UNIT * 1000 / 2885;
/// The steady-state cwnd gain.
pub(crate) const BBR_CWND_GAIN: u32 = BBR_UNIT * 2;
/// PROBE_BW's gain cycle.
pub(crate) const BBR_PACING_GAIN: [u32; CYCLE_LEN as usize] =
    [BBR_UNIT * 5 / 4, BBR_UNIT * 3 / 4, BBR_UNIT, BBR_UNIT, BBR_UNIT, BBR_UNIT, BBR_UNIT, BBR_UNIT];
/// The gain cycle starts at a random one of this many phases.
const BBR_CYCLE_RAND: u32 = 7;
/// The smallest cwnd BBR keeps (two ACK-every-other-packet pairs).
pub(crate) const BBR_CWND_MIN_TARGET: u32 = 4;
/// A 25 % bandwidth increase means there may be more.
const BBR_FULL_BW_THRESH: u32 = BBR_UNIT * 5 / 4;
/// Rounds without it before the pipe counts as full.
const BBR_FULL_BW_CNT: u32 = 3;
/// Rounds in a long-term sampling interval, at least.
const BBR_LT_INTVL_MIN_RTTS: u32 = 4;
/// Loss ratio (of 256) that makes an interval lossy: 50/256 ≈ 20 %.
const BBR_LT_LOSS_THRESH: u32 = 50;
/// Two intervals within 1/8 of each other are consistent.
const BBR_LT_BW_RATIO: u32 = BBR_UNIT / 8;
/// ... or within 4 kbit/s (in bytes per second).
const BBR_LT_BW_DIFF: u64 = 4000 / 8;
/// Rounds to use the policed rate.
const BBR_LT_BW_MAX_RTTS: u32 = 48;
/// Gain of the ACK-aggregation cwnd.
const BBR_EXTRA_ACKED_GAIN: u32 = BBR_UNIT;
/// Window of the extra-acked filter, in rounds.
const BBR_EXTRA_ACKED_WIN_RTTS: u32 = 5;
/// The ACK epoch restarts past this many packets.
const BBR_ACK_EPOCH_ACKED_RESET_THRESH: u32 = 1 << 20;
/// The aggregation cwnd is at most this long at the estimated bandwidth.
const BBR_EXTRA_ACKED_MAX_US: u64 = 100 * 1000;
/// `TCP_INFINITE_SSTHRESH`.
const TCP_INFINITE_SSTHRESH: u32 = 0x7fff_ffff;
/// `GSO_LEGACY_MAX_SIZE - 1 - MAX_TCP_HEADER`.
const BBR_TSO_MAX_BYTES: u64 = 65_536 - 1 - 320;

/// `enum bbr_mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BbrMode {
    /// Ramp up the sending rate to fill the pipe.
    #[default]
    Startup,
    /// Drain the queue STARTUP built.
    Drain,
    /// Pace around the estimated bandwidth, probing for more and sharing it.
    ProbeBw,
    /// Cut inflight to the minimum to measure the propagation delay.
    ProbeRtt,
}

/// One sample of a [`Minmax`] filter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct MinmaxSample {
    /// When (here: the round count).
    pub(crate) t: u32,
    /// The value.
    pub(crate) v: u32,
}

/// `struct minmax` (lib/win_minmax.c): Kathleen Nichols' windowed running maximum, the best,
/// second best and third best samples of the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Minmax {
    /// The three samples, best first.
    pub(crate) s: [MinmaxSample; 3],
}

impl Minmax {
    /// `minmax_get()`.
    pub(crate) fn get(&self) -> u32 {
        self.s[0].v
    }

    /// `minmax_reset()`: every sample becomes `(t, meas)`.
    pub(crate) fn reset(&mut self, t: u32, meas: u32) -> u32 {
        let v = MinmaxSample { t, v: meas };
        self.s = [v; 3];
        meas
    }

    /// `minmax_subwin_update()`: ages the samples so the best stays within `win`, keeping
    /// the second and third best from the later quarter and half of it.
    fn subwin_update(&mut self, win: u32, val: MinmaxSample) -> u32 {
        let dt = val.t.wrapping_sub(self.s[0].t);
        if dt > win {
            // The best expired: the second best becomes the best, and again if that one
            // expired too.
            self.s[0] = self.s[1];
            self.s[1] = self.s[2];
            self.s[2] = val;
            if val.t.wrapping_sub(self.s[0].t) > win {
                self.s[0] = self.s[1];
                self.s[1] = self.s[2];
                self.s[2] = val;
            }
        } else if self.s[1].t == self.s[0].t && dt > win / 4 {
            // A quarter of the window passed with no second best: take one.
            self.s[2] = val;
            self.s[1] = val;
        } else if self.s[2].t == self.s[1].t && dt > win / 2 {
            // Half the window passed with no third best: take one.
            self.s[2] = val;
        }
        self.s[0].v
    }

    /// `minmax_running_max()`: adds `meas` taken at `t`; returns the window's maximum.
    pub(crate) fn running_max(&mut self, win: u32, t: u32, meas: u32) -> u32 {
        let val = MinmaxSample { t, v: meas };
        if val.v >= self.s[0].v || val.t.wrapping_sub(self.s[2].t) > win {
            // A new maximum, or nothing left in the window.
            return self.reset(t, meas);
        }
        if val.v >= self.s[1].v {
            self.s[2] = val;
            self.s[1] = val;
        } else if val.v >= self.s[2].v {
            self.s[2] = val;
        }
        self.subwin_update(win, val)
    }
}

/// `struct bbr`: the per-connection state (`inet_csk_ca(sk)`).
#[derive(Clone, Debug, Default)]
pub struct Bbr {
    /// Minimum RTT in the min_rtt window (µs; `u32::MAX`: none).
    pub(crate) min_rtt_us: u32,
    /// When `min_rtt_us` was taken.
    pub(crate) min_rtt_stamp: Instant,
    /// When PROBE_RTT may end (`None`: not yet at its inflight target).
    pub(crate) probe_rtt_done_stamp: Option<Instant>,
    /// Maximum recent delivery rate (packets per µs << 24) over `BBR_BW_RTTS` rounds.
    pub(crate) bw: Minmax,
    /// Packet-timed rounds elapsed.
    pub(crate) rtt_cnt: u32,
    /// `tp->delivered` at the end of the current round.
    pub(crate) next_rtt_delivered: u32,
    /// When the current gain-cycle phase began (`tp->delivered_mstamp`).
    pub(crate) cycle_mstamp: Instant,
    /// The mode.
    pub mode: BbrMode,
    /// The CA state on the previous ACK.
    pub(crate) prev_ca_state: CaState,
    /// Packet conservation (the first round of recovery).
    pub(crate) packet_conservation: bool,
    /// This ACK started a new round.
    pub(crate) round_start: bool,
    /// Restarting after idle.
    pub(crate) idle_restart: bool,
    /// A PROBE_RTT round at the minimum inflight is done.
    pub(crate) probe_rtt_round_done: bool,
    /// Taking long-term samples now.
    pub(crate) lt_is_sampling: bool,
    /// Rounds in the long-term interval (7 bits in Linux).
    pub(crate) lt_rtt_cnt: u32,
    /// Use `lt_bw` as the bandwidth (a policer was detected).
    pub(crate) lt_use_bw: bool,
    /// Long-term delivery rate (packets per µs << 24).
    pub(crate) lt_bw: u32,
    /// `tp->delivered` at the interval's start.
    pub(crate) lt_last_delivered: u32,
    /// `tp->delivered_mstamp` at the interval's start, in ms.
    pub(crate) lt_last_stamp: u32,
    /// `tp->lost` at the interval's start.
    pub(crate) lt_last_lost: u32,
    /// The current pacing gain (of `BBR_UNIT`).
    pub(crate) pacing_gain: u32,
    /// The current cwnd gain.
    pub(crate) cwnd_gain: u32,
    /// STARTUP filled the pipe.
    pub(crate) full_bw_reached: bool,
    /// Rounds without a large bandwidth gain.
    pub(crate) full_bw_cnt: u32,
    /// Index in the gain cycle.
    pub(crate) cycle_idx: u32,
    /// An RTT sample was seen.
    pub(crate) has_seen_rtt: bool,
    /// cwnd before loss recovery or PROBE_RTT.
    pub(crate) prior_cwnd: u32,
    /// A recent bandwidth, to tell whether the pipe is full.
    pub(crate) full_bw: u32,
    /// Start of the ACK-aggregation sampling epoch.
    pub(crate) ack_epoch_mstamp: Instant,
    /// Maximum excess data ACKed in the last two epochs of windows.
    pub(crate) extra_acked: [u16; 2],
    /// Packets (S)ACKed in the epoch (20 bits in Linux).
    pub(crate) ack_epoch_acked: u32,
    /// Age of `extra_acked`, in rounds.
    pub(crate) extra_acked_win_rtts: u32,
    /// The current `extra_acked` slot.
    pub(crate) extra_acked_win_idx: usize,
}

/// The BBR state of a socket's `bbr` field (a borrow of that field alone).
fn st(b: &mut Option<Box<Bbr>>) -> &mut Bbr {
    b.as_deref_mut().expect("bbr state")
}

impl TcpSock {
    fn bbr(&self) -> &Bbr {
        self.bbr.as_deref().expect("bbr state")
    }

    fn bbr_mut(&mut self) -> &mut Bbr {
        self.bbr.as_deref_mut().expect("bbr state")
    }

    /// `bbr_max_bw()`.
    fn bbr_max_bw(&self) -> u32 {
        self.bbr().bw.get()
    }

    /// `bbr_bw()`: the estimated bandwidth, the policed rate while it is in use.
    pub(crate) fn bbr_bw(&self) -> u32 {
        let b = self.bbr();
        if b.lt_use_bw {
            b.lt_bw
        } else {
            b.bw.get()
        }
    }

    /// `bbr_extra_acked()`.
    fn bbr_extra_acked(&self) -> u32 {
        let b = self.bbr();
        b.extra_acked[0].max(b.extra_acked[1]) as u32
    }

    /// `bbr_rate_bytes_per_sec()`: a bandwidth times a gain in bytes per second, less the
    /// pacing margin.
    fn bbr_rate_bytes_per_sec(&self, rate: u64, gain: u32) -> u64 {
        let mut rate = rate.saturating_mul(self.mss_cache as u64);
        rate = rate.saturating_mul(gain as u64);
        rate >>= BBR_SCALE;
        rate = rate.saturating_mul(1_000_000 / 100 * (100 - BBR_PACING_MARGIN_PERCENT));
        rate >> BW_SCALE
    }

    /// `bbr_bw_to_pacing_rate()`.
    fn bbr_bw_to_pacing_rate(&self, bw: u32, gain: u32) -> u64 {
        self.bbr_rate_bytes_per_sec(bw as u64, gain).min(self.ext().max_pacing_rate)
    }

    /// `bbr_init_pacing_rate_from_rtt()`: high_gain × initial cwnd / srtt (1 ms without one).
    fn bbr_init_pacing_rate_from_rtt(&mut self) {
        let rtt_us = if self.srtt_us != 0 {
            self.bbr_mut().has_seen_rtt = true;
            (self.srtt_us >> 3).max(1)
        } else {
            1000
        };
        let bw = self.snd_cwnd as u64 * BW_UNIT / rtt_us as u64;
        self.pacing_rate = self.bbr_bw_to_pacing_rate(bw.min(u32::MAX as u64) as u32, BBR_HIGH_GAIN);
    }

    /// `bbr_set_pacing_rate()`: before the pipe is full the rate only grows.
    fn bbr_set_pacing_rate(&mut self, bw: u32, gain: u32) {
        let rate = self.bbr_bw_to_pacing_rate(bw, gain);
        if !self.bbr().has_seen_rtt && self.srtt_us != 0 {
            self.bbr_init_pacing_rate_from_rtt();
        }
        if self.bbr().full_bw_reached || rate > self.pacing_rate {
            self.pacing_rate = rate;
        }
    }

    /// `bbr_min_tso_segs()` (`ca_ops->min_tso_segs`): one packet per burst below 1.2 Mbit/s.
    pub(crate) fn bbr_min_tso_segs(&self) -> u32 {
        if self.pacing_rate < BBR_MIN_TSO_RATE >> 3 {
            1
        } else {
            2
        }
    }

    /// `bbr_tso_segs_goal()`.
    fn bbr_tso_segs_goal(&self) -> u32 {
        let bytes = (self.pacing_rate >> 10).min(BBR_TSO_MAX_BYTES) as u32;
        (bytes / self.mss_cache.max(1)).max(self.bbr_min_tso_segs()).min(0x7f)
    }

    /// `bbr_save_cwnd()`: the last good cwnd, to restore after recovery or PROBE_RTT.
    fn bbr_save_cwnd(&mut self) {
        let cwnd = self.snd_cwnd;
        let b = self.bbr_mut();
        if (b.prev_ca_state as u8) < CaState::Recovery as u8 && b.mode != BbrMode::ProbeRtt {
            b.prior_cwnd = cwnd;
        } else {
            b.prior_cwnd = b.prior_cwnd.max(cwnd);
        }
    }

    /// `bbr_cwnd_event(CA_EVENT_TX_START)`: sending restarts from idle. If the connection
    /// was application-limited, pace at the estimated bandwidth (no need for more speed).
    pub(crate) fn bbr_cwnd_event_tx_start(&mut self, net: &crate::netns::Netns, now: Instant) {
        if self.rate.app_limited == 0 || self.bbr.is_none() {
            return;
        }
        let b = self.bbr_mut();
        b.idle_restart = true;
        b.ack_epoch_mstamp = now;
        b.ack_epoch_acked = 0;
        match b.mode {
            BbrMode::ProbeBw => self.bbr_set_pacing_rate(self.bbr_bw(), BBR_UNIT),
            BbrMode::ProbeRtt => self.bbr_check_probe_rtt_done(net, now),
            _ => {}
        }
    }

    /// `bbr_bdp()`: ceil(bw × min_rtt × gain) packets; the initial window before any RTT.
    fn bbr_bdp(&self, bw: u32, gain: u32) -> u32 {
        let b = self.bbr();
        if b.min_rtt_us == u32::MAX {
            return super::TCP_INIT_CWND;
        }
        let w = bw as u64 * b.min_rtt_us as u64;
        (((w * gain as u64) >> BBR_SCALE).div_ceil(BW_UNIT)).min(u32::MAX as u64) as u32
    }

    /// `bbr_quantization_budget()`: room for three full-sized bursts in the end hosts, an even
    /// cwnd, and two packets more in the probing phase.
    fn bbr_quantization_budget(&self, cwnd: u32) -> u32 {
        let mut cwnd = cwnd.saturating_add(3 * self.bbr_tso_segs_goal());
        cwnd = (cwnd.saturating_add(1)) & !1;
        let b = self.bbr();
        if b.mode == BbrMode::ProbeBw && b.cycle_idx == 0 {
            cwnd = cwnd.saturating_add(2);
        }
        cwnd
    }

    /// `bbr_inflight()`.
    fn bbr_inflight(&self, bw: u32, gain: u32) -> u32 {
        self.bbr_quantization_budget(self.bbr_bdp(bw, gain))
    }

    /// `bbr_packets_in_net_at_edt()`: what will be in the network when the next packet's
    /// departure time comes (less what the bandwidth delivers until then).
    fn bbr_packets_in_net_at_edt(&self, now: Instant, inflight_now: u32) -> u32 {
        let edt = self.wstamp.max(now);
        let interval_us = edt.saturating_since(now).as_micros() as u64;
        let interval_delivered = ((self.bbr_bw() as u64 * interval_us) >> BW_SCALE).min(u32::MAX as u64) as u32;
        let mut inflight_at_edt = inflight_now;
        if self.bbr().pacing_gain > BBR_UNIT {
            inflight_at_edt += self.bbr_tso_segs_goal();
        }
        inflight_at_edt.saturating_sub(interval_delivered)
    }

    /// `bbr_ack_aggregation_cwnd()`.
    fn bbr_ack_aggregation_cwnd(&self) -> u32 {
        if BBR_EXTRA_ACKED_GAIN == 0 || !self.bbr().full_bw_reached {
            return 0;
        }
        let max_aggr_cwnd = (self.bbr_bw() as u64 * BBR_EXTRA_ACKED_MAX_US / BW_UNIT) as u32;
        let aggr_cwnd = (BBR_EXTRA_ACKED_GAIN * self.bbr_extra_acked()) >> BBR_SCALE;
        aggr_cwnd.min(max_aggr_cwnd)
    }

    /// `bbr_set_cwnd_to_recover_or_restore()`: the first round of recovery conserves packets
    /// (P sent per P acked); leaving recovery restores the cwnd from before it. True while
    /// conserving (the cwnd is final).
    fn bbr_set_cwnd_to_recover_or_restore(&mut self, rs: &RateSample, acked: u32, new_cwnd: &mut u32) -> bool {
        let state = self.ca_state;
        let in_flight = self.packets_in_flight();
        let delivered = self.delivered;
        let mut cwnd = self.snd_cwnd;
        let b = self.bbr_mut();
        let prev_state = b.prev_ca_state;
        // An ACK for P packets releases at most 2P: the lost ones come off first, the
        // slow start towards the target adds the rest.
        if rs.losses > 0 {
            cwnd = (cwnd as i64 - rs.losses as i64).max(1) as u32;
        }
        if state == CaState::Recovery && prev_state != CaState::Recovery {
            // The first round of recovery: packet conservation, from a round that starts now,
            // and without the cwnd the application, TSQ or TSO deferral left unused.
            b.packet_conservation = true;
            b.next_rtt_delivered = delivered;
            cwnd = in_flight + acked;
        } else if prev_state as u8 >= CaState::Recovery as u8 && (state as u8) < CaState::Recovery as u8 {
            cwnd = cwnd.max(b.prior_cwnd);
            b.packet_conservation = false;
        }
        b.prev_ca_state = state;
        if b.packet_conservation {
            *new_cwnd = cwnd.max(in_flight + acked);
            return true;
        }
        *new_cwnd = cwnd;
        false
    }

    /// `bbr_set_cwnd()`: slow-start towards the target cwnd (while the bandwidth estimate
    /// grows, or after loss drew cwnd below it), or snap down to it once the pipe is full.
    fn bbr_set_cwnd(&mut self, rs: &RateSample, acked: u32, bw: u32, gain: u32) {
        let mut cwnd = self.snd_cwnd;
        if acked != 0 && !self.bbr_set_cwnd_to_recover_or_restore(rs, acked, &mut cwnd) {
            let mut target_cwnd = self.bbr_bdp(bw, gain);
            // Room for the data that ACK aggregation holds back.
            target_cwnd = target_cwnd.saturating_add(self.bbr_ack_aggregation_cwnd());
            target_cwnd = self.bbr_quantization_budget(target_cwnd);
            if self.bbr().full_bw_reached {
                cwnd = cwnd.saturating_add(acked).min(target_cwnd);
            } else if cwnd < target_cwnd || self.delivered < super::TCP_INIT_CWND {
                cwnd = cwnd.saturating_add(acked);
            }
            cwnd = cwnd.max(BBR_CWND_MIN_TARGET);
        }
        self.snd_cwnd = cwnd.min(self.snd_cwnd_clamp());
        if self.bbr().mode == BbrMode::ProbeRtt {
            self.snd_cwnd = self.snd_cwnd.min(BBR_CWND_MIN_TARGET);
        }
    }

    /// `bbr_is_next_cycle_phase()`: a phase lasts min_rtt; probing (gain > 1) also waits until
    /// inflight reached gain × BDP (or a loss says it will not fit), draining (gain < 1) ends
    /// early once inflight is down to the BDP.
    fn bbr_is_next_cycle_phase(&self, now: Instant, rs: &RateSample) -> bool {
        let b = self.bbr();
        let delivered_mstamp = self.rate.delivered_mstamp.unwrap_or(Instant::ZERO);
        let is_full_length = delivered_mstamp.saturating_since(b.cycle_mstamp).as_micros() as u64 > b.min_rtt_us as u64;
        if b.pacing_gain == BBR_UNIT {
            return is_full_length;
        }
        let inflight = self.bbr_packets_in_net_at_edt(now, rs.prior_in_flight);
        let bw = self.bbr_max_bw();
        if b.pacing_gain > BBR_UNIT {
            return is_full_length && (rs.losses > 0 || inflight >= self.bbr_inflight(bw, b.pacing_gain));
        }
        is_full_length || inflight <= self.bbr_inflight(bw, BBR_UNIT)
    }

    /// `bbr_advance_cycle_phase()`.
    fn bbr_advance_cycle_phase(&mut self) {
        let stamp = self.rate.delivered_mstamp.unwrap_or(Instant::ZERO);
        let b = self.bbr_mut();
        b.cycle_idx = (b.cycle_idx + 1) & (CYCLE_LEN - 1);
        b.cycle_mstamp = stamp;
    }

    /// `bbr_update_cycle_phase()`.
    fn bbr_update_cycle_phase(&mut self, now: Instant, rs: &RateSample) {
        if self.bbr().mode == BbrMode::ProbeBw && self.bbr_is_next_cycle_phase(now, rs) {
            self.bbr_advance_cycle_phase();
        }
    }

    /// `bbr_reset_probe_bw_mode()`: PROBE_BW from a random phase (never the draining one).
    fn bbr_reset_probe_bw_mode(&mut self, net: &crate::netns::Netns, now: Instant) {
        let (k0, k1) = net.flow_hash_key();
        let mut m = [0u8; 16];
        m[..8].copy_from_slice(&self.cookie.to_le_bytes());
        m[8..].copy_from_slice(&now.nanos().to_le_bytes());
        // prandom_u32_max(bbr_cycle_rand).
        let r = ((crate::siphash::siphash24(k0 ^ 0xbb5, k1, &m) as u32 as u64 * BBR_CYCLE_RAND as u64) >> 32) as u32;
        let b = self.bbr_mut();
        b.mode = BbrMode::ProbeBw;
        b.cycle_idx = CYCLE_LEN - 1 - r;
        self.bbr_advance_cycle_phase();
    }

    /// `bbr_reset_mode()`.
    fn bbr_reset_mode(&mut self, net: &crate::netns::Netns, now: Instant) {
        if !self.bbr().full_bw_reached {
            self.bbr_mut().mode = BbrMode::Startup;
        } else {
            self.bbr_reset_probe_bw_mode(net, now);
        }
    }

    /// `bbr_reset_lt_bw_sampling_interval()`.
    fn bbr_reset_lt_bw_sampling_interval(&mut self) {
        let stamp_ms = (self.rate.delivered_mstamp.unwrap_or(Instant::ZERO).nanos() / 1_000_000) as u32;
        let (delivered, lost) = (self.delivered, self.rate.lost);
        let b = self.bbr_mut();
        b.lt_last_stamp = stamp_ms;
        b.lt_last_delivered = delivered;
        b.lt_last_lost = lost;
        b.lt_rtt_cnt = 0;
    }

    /// `bbr_reset_lt_bw_sampling()`.
    fn bbr_reset_lt_bw_sampling(&mut self) {
        let b = self.bbr_mut();
        b.lt_bw = 0;
        b.lt_use_bw = false;
        b.lt_is_sampling = false;
        self.bbr_reset_lt_bw_sampling_interval();
    }

    /// `bbr_lt_bw_interval_done()`: two consecutive lossy intervals of about the same rate
    /// mean a policer: use their average.
    fn bbr_lt_bw_interval_done(&mut self, bw: u32) {
        let lt_bw = self.bbr().lt_bw;
        if lt_bw != 0 {
            let diff = bw.abs_diff(lt_bw);
            if (diff as u64 * BBR_UNIT as u64 <= BBR_LT_BW_RATIO as u64 * lt_bw as u64)
                || self.bbr_rate_bytes_per_sec(diff as u64, BBR_UNIT) <= BBR_LT_BW_DIFF
            {
                let b = self.bbr_mut();
                b.lt_bw = ((bw as u64 + lt_bw as u64) >> 1) as u32;
                b.lt_use_bw = true;
                b.pacing_gain = BBR_UNIT;
                b.lt_rtt_cnt = 0;
                return;
            }
        }
        self.bbr_mut().lt_bw = bw;
        self.bbr_reset_lt_bw_sampling_interval();
    }

    /// `bbr_lt_bw_sampling()`: the long-term (policer) sampler. Intervals of 4 to 16 rounds
    /// start and end at a loss; one with at least 20 % loss gives a sample.
    fn bbr_lt_bw_sampling(&mut self, net: &crate::netns::Netns, now: Instant, rs: &RateSample) {
        let b = self.bbr_mut();
        if b.lt_use_bw {
            if b.mode == BbrMode::ProbeBw && b.round_start {
                b.lt_rtt_cnt += 1;
                if b.lt_rtt_cnt >= BBR_LT_BW_MAX_RTTS {
                    self.bbr_reset_lt_bw_sampling();
                    self.bbr_reset_probe_bw_mode(net, now);
                }
            }
            return;
        }
        // Sampling starts at the first loss, once the policer's tokens are spent.
        if !b.lt_is_sampling {
            if rs.losses == 0 {
                return;
            }
            self.bbr_reset_lt_bw_sampling_interval();
            self.bbr_mut().lt_is_sampling = true;
        }
        // Running out of data would under-estimate the rate.
        if rs.is_app_limited {
            self.bbr_reset_lt_bw_sampling();
            return;
        }
        let b = self.bbr_mut();
        if b.round_start {
            b.lt_rtt_cnt = (b.lt_rtt_cnt + 1) & 0x7f;
        }
        if b.lt_rtt_cnt < BBR_LT_INTVL_MIN_RTTS {
            return;
        }
        if b.lt_rtt_cnt > 4 * BBR_LT_INTVL_MIN_RTTS {
            self.bbr_reset_lt_bw_sampling();
            return;
        }
        // The interval ends at a loss (the tokens were exhausted).
        if rs.losses == 0 {
            return;
        }
        let (last_lost, last_delivered, last_stamp) = (b.lt_last_lost, b.lt_last_delivered, b.lt_last_stamp);
        let lost = self.rate.lost.wrapping_sub(last_lost);
        let delivered = self.delivered.wrapping_sub(last_delivered);
        if delivered == 0 || ((lost as u64) << BBR_SCALE) < BBR_LT_LOSS_THRESH as u64 * delivered as u64 {
            return;
        }
        let stamp_ms = (self.rate.delivered_mstamp.unwrap_or(Instant::ZERO).nanos() / 1_000_000) as u32;
        let t = stamp_ms.wrapping_sub(last_stamp);
        if (t as i32) < 1 {
            return;
        }
        if t >= u32::MAX / 1000 {
            self.bbr_reset_lt_bw_sampling();
            return;
        }
        let bw = delivered as u64 * BW_UNIT / (t as u64 * 1000);
        self.bbr_lt_bw_interval_done(bw.min(u32::MAX as u64) as u32);
    }

    /// `bbr_update_bw()`: counts rounds and feeds the bandwidth filter (application-limited
    /// samples only when they are not below it).
    fn bbr_update_bw(&mut self, net: &crate::netns::Netns, now: Instant, rs: &RateSample) {
        let delivered = self.delivered;
        let b = self.bbr_mut();
        b.round_start = false;
        if rs.delivered < 0 || rs.interval_us <= 0 {
            return;
        }
        // A round ends when a packet sent after its start is delivered.
        if rs.prior_delivered.wrapping_sub(b.next_rtt_delivered) as i32 >= 0 {
            b.next_rtt_delivered = delivered;
            b.rtt_cnt += 1;
            b.round_start = true;
            b.packet_conservation = false;
        }
        self.bbr_lt_bw_sampling(net, now, rs);
        let bw = (rs.delivered as u64 * BW_UNIT / rs.interval_us as u64).min(u32::MAX as u64) as u32;
        let b = self.bbr_mut();
        if !rs.is_app_limited || bw >= b.bw.get() {
            let t = b.rtt_cnt;
            b.bw.running_max(BBR_BW_RTTS, t, bw);
        }
    }

    /// `bbr_update_ack_aggregation()`: the windowed maximum of data ACKed beyond what the
    /// bandwidth explains over the ACK epoch.
    fn bbr_update_ack_aggregation(&mut self, rs: &RateSample) {
        if BBR_EXTRA_ACKED_GAIN == 0 || rs.acked_sacked == 0 || rs.delivered < 0 || rs.interval_us <= 0 {
            return;
        }
        let stamp = self.rate.delivered_mstamp.unwrap_or(Instant::ZERO);
        let bw = self.bbr_bw() as u64;
        let cwnd = self.snd_cwnd;
        let b = self.bbr_mut();
        if b.round_start {
            b.extra_acked_win_rtts = (b.extra_acked_win_rtts + 1).min(0x1f);
            if b.extra_acked_win_rtts >= BBR_EXTRA_ACKED_WIN_RTTS {
                b.extra_acked_win_rtts = 0;
                b.extra_acked_win_idx ^= 1;
                b.extra_acked[b.extra_acked_win_idx] = 0;
            }
        }
        let epoch_us = stamp.saturating_since(b.ack_epoch_mstamp).as_micros() as u64;
        let mut expected_acked = (bw * epoch_us / BW_UNIT).min(u32::MAX as u64) as u32;
        // A slow epoch, or a very long one, starts over.
        if b.ack_epoch_acked <= expected_acked
            || b.ack_epoch_acked + rs.acked_sacked >= BBR_ACK_EPOCH_ACKED_RESET_THRESH
        {
            b.ack_epoch_acked = 0;
            b.ack_epoch_mstamp = stamp;
            expected_acked = 0;
        }
        b.ack_epoch_acked = (b.ack_epoch_acked + rs.acked_sacked).min(0xfffff);
        let extra_acked = (b.ack_epoch_acked - expected_acked).min(cwnd);
        if extra_acked > b.extra_acked[b.extra_acked_win_idx] as u32 {
            b.extra_acked[b.extra_acked_win_idx] = extra_acked.min(u16::MAX as u32) as u16;
        }
    }

    /// `bbr_check_full_bw_reached()`: three non-application-limited rounds without 25 %
    /// growth fill the pipe.
    fn bbr_check_full_bw_reached(&mut self, rs: &RateSample) {
        let max_bw = self.bbr_max_bw();
        let b = self.bbr_mut();
        if b.full_bw_reached || !b.round_start || rs.is_app_limited {
            return;
        }
        let bw_thresh = ((b.full_bw as u64 * BBR_FULL_BW_THRESH as u64) >> BBR_SCALE) as u32;
        if max_bw >= bw_thresh {
            b.full_bw = max_bw;
            b.full_bw_cnt = 0;
            return;
        }
        b.full_bw_cnt = (b.full_bw_cnt + 1).min(3);
        b.full_bw_reached = b.full_bw_cnt >= BBR_FULL_BW_CNT;
    }

    /// `bbr_check_drain()`: a full pipe moves STARTUP to DRAIN (ssthresh = the BDP's
    /// inflight), and DRAIN ends once inflight is down to it.
    fn bbr_check_drain(&mut self, net: &crate::netns::Netns, now: Instant) {
        if self.bbr().mode == BbrMode::Startup && self.bbr().full_bw_reached {
            self.bbr_mut().mode = BbrMode::Drain;
            self.snd_ssthresh = self.bbr_inflight(self.bbr_max_bw(), BBR_UNIT);
        }
        if self.bbr().mode == BbrMode::Drain
            && self.bbr_packets_in_net_at_edt(now, self.packets_in_flight())
                <= self.bbr_inflight(self.bbr_max_bw(), BBR_UNIT)
        {
            self.bbr_reset_probe_bw_mode(net, now);
        }
    }

    /// `bbr_check_probe_rtt_done()`.
    fn bbr_check_probe_rtt_done(&mut self, net: &crate::netns::Netns, now: Instant) {
        let Some(done) = self.bbr().probe_rtt_done_stamp else {
            return;
        };
        if now <= done {
            return;
        }
        let b = st(&mut self.bbr);
        // Wait a while until the next PROBE_RTT.
        b.min_rtt_stamp = now;
        self.snd_cwnd = self.snd_cwnd.max(b.prior_cwnd);
        self.bbr_reset_mode(net, now);
    }

    /// `bbr_update_min_rtt()`: the 10 s min_rtt filter; when it expires, PROBE_RTT holds
    /// inflight at 4 packets for 200 ms and a round.
    fn bbr_update_min_rtt(&mut self, net: &crate::netns::Netns, now: Instant, rs: &RateSample) {
        let in_flight = self.packets_in_flight();
        let delivered = self.delivered;
        let b = self.bbr_mut();
        let filter_expired = now > b.min_rtt_stamp + BBR_MIN_RTT_WIN;
        if rs.rtt_us >= 0 && (rs.rtt_us <= b.min_rtt_us as i64 || (filter_expired && !rs.is_ack_delayed)) {
            b.min_rtt_us = rs.rtt_us.min(u32::MAX as i64) as u32;
            b.min_rtt_stamp = now;
        }
        if filter_expired && !b.idle_restart && b.mode != BbrMode::ProbeRtt {
            b.mode = BbrMode::ProbeRtt;
            self.bbr_save_cwnd();
            self.bbr_mut().probe_rtt_done_stamp = None;
        }
        if self.bbr().mode == BbrMode::ProbeRtt {
            // Low-rate samples of this mode do not count.
            let v = delivered.wrapping_add(in_flight);
            self.rate.app_limited = if v == 0 { 1 } else { v };
            let b = self.bbr_mut();
            if b.probe_rtt_done_stamp.is_none() && in_flight <= BBR_CWND_MIN_TARGET {
                b.probe_rtt_done_stamp = Some(now + BBR_PROBE_RTT_MODE);
                b.probe_rtt_round_done = false;
                b.next_rtt_delivered = delivered;
            } else if b.probe_rtt_done_stamp.is_some() {
                if b.round_start {
                    b.probe_rtt_round_done = true;
                }
                if b.probe_rtt_round_done {
                    self.bbr_check_probe_rtt_done(net, now);
                }
            }
        }
        if rs.delivered > 0 {
            self.bbr_mut().idle_restart = false;
        }
    }

    /// `bbr_update_gains()`.
    fn bbr_update_gains(&mut self) {
        let b = self.bbr_mut();
        (b.pacing_gain, b.cwnd_gain) = match b.mode {
            BbrMode::Startup => (BBR_HIGH_GAIN, BBR_HIGH_GAIN),
            BbrMode::Drain => (BBR_DRAIN_GAIN, BBR_HIGH_GAIN),
            BbrMode::ProbeBw => {
                (if b.lt_use_bw { BBR_UNIT } else { BBR_PACING_GAIN[b.cycle_idx as usize] }, BBR_CWND_GAIN)
            }
            BbrMode::ProbeRtt => (BBR_UNIT, BBR_UNIT),
        };
    }

    /// `bbr_update_model()`.
    fn bbr_update_model(&mut self, net: &crate::netns::Netns, now: Instant, rs: &RateSample) {
        self.bbr_update_bw(net, now, rs);
        self.bbr_update_ack_aggregation(rs);
        self.bbr_update_cycle_phase(now, rs);
        self.bbr_check_full_bw_reached(rs);
        self.bbr_check_drain(net, now);
        self.bbr_update_min_rtt(net, now, rs);
        self.bbr_update_gains();
    }

    /// `bbr_main()` (`ca_ops->cong_control`): the model, then pacing rate and cwnd.
    pub(crate) fn bbr_main(&mut self, ctx: &Ctx<'_>, rs: &RateSample) {
        if self.bbr.is_none() {
            self.bbr_init(ctx.now);
        }
        self.bbr_update_model(ctx.net, ctx.now, rs);
        let bw = self.bbr_bw();
        let (pacing_gain, cwnd_gain) = (self.bbr().pacing_gain, self.bbr().cwnd_gain);
        self.bbr_set_pacing_rate(bw, pacing_gain);
        self.bbr_set_cwnd(rs, rs.acked_sacked, bw, cwnd_gain);
    }

    /// `bbr_init()` (`ca_ops->init`): STARTUP, no bandwidth yet, the pacing rate from the
    /// handshake's RTT, and internal pacing on (`SK_PACING_NONE` → `SK_PACING_NEEDED`).
    pub(crate) fn bbr_init(&mut self, now: Instant) {
        self.snd_ssthresh = TCP_INFINITE_SSTHRESH;
        let min_rtt_us = if self.min_rtt_us == 0 { u32::MAX } else { self.min_rtt_us };
        let mut b = Box::<Bbr>::default();
        b.min_rtt_us = min_rtt_us;
        b.min_rtt_stamp = now;
        b.bw.reset(0, 0);
        b.ack_epoch_mstamp = now;
        b.prev_ca_state = CaState::Open;
        b.mode = BbrMode::Startup;
        self.bbr = Some(b);
        self.bbr_init_pacing_rate_from_rtt();
        self.bbr_reset_lt_bw_sampling();
        self.pacing_needed = true;
    }

    /// `bbr_undo_cwnd()` (`ca_ops->undo_cwnd`): a spurious slow-down; pipe-full detection and
    /// the long-term sampler restart; cwnd stays.
    pub(crate) fn bbr_undo_cwnd(&mut self) -> u32 {
        if self.bbr.is_some() {
            let b = self.bbr_mut();
            b.full_bw = 0;
            b.full_bw_cnt = 0;
            self.bbr_reset_lt_bw_sampling();
        }
        self.snd_cwnd
    }

    /// `bbr_ssthresh()` (`ca_ops->ssthresh`): entering recovery saves cwnd; ssthresh stays.
    pub(crate) fn bbr_ssthresh(&mut self) -> u32 {
        if self.bbr.is_some() {
            self.bbr_save_cwnd();
        }
        self.snd_ssthresh
    }

    /// `bbr_set_state(TCP_CA_Loss)` (`ca_ops->set_state`): an RTO ends a round, restarts
    /// pipe-full detection and counts as a loss for the long-term sampler.
    pub(crate) fn bbr_set_state_loss(&mut self, ctx: &Ctx<'_>) {
        if self.bbr.is_none() {
            return;
        }
        let b = self.bbr_mut();
        b.prev_ca_state = CaState::Loss;
        b.full_bw = 0;
        b.round_start = true;
        let rs = RateSample { losses: 1, ..RateSample::default() };
        self.bbr_lt_bw_sampling(ctx.net, ctx.now, &rs);
    }

    /// `bbr_get_info()` for TCP_CC_INFO: `struct tcp_bbr_info` (bandwidth in bytes per
    /// second as two halves, min_rtt, pacing and cwnd gains).
    pub(crate) fn bbr_get_info(&self) -> Vec<u8> {
        let Some(b) = self.bbr.as_deref() else {
            return vec![0; 20];
        };
        let bw = ((self.bbr_bw() as u128 * self.mss_cache as u128 * 1_000_000) >> BW_SCALE) as u64;
        let mut v = Vec::with_capacity(20);
        for x in [bw as u32, (bw >> 32) as u32, b.min_rtt_us, b.pacing_gain, b.cwnd_gain] {
            v.extend_from_slice(&x.to_ne_bytes());
        }
        v
    }
}

#[cfg(test)]
#[path = "bbr_tests.rs"]
mod tests;
