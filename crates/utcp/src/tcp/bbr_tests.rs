//! BBR's state machine on hand-made rate samples: the windowed max filter, STARTUP's exit
//! after three rounds without 25 % growth, DRAIN to PROBE_BW, the gain cycle, PROBE_RTT after
//! 10 s, packet conservation in recovery and the cwnd restored after it, the long-term
//! (policer) sampler, and the pacing rate, BDP and TCP_CC_INFO from a known bandwidth.

use super::*;
use crate::netns::Netns;
use crate::tcp::TcpState;

/// 10 packets per ms, in BBR's unit (packets per µs << 24).
const BW_10_PER_MS: u32 = ((10u64 << 24) / 1000) as u32;

struct Sim {
    net: Netns,
    tp: TcpSock,
    now: Instant,
}

impl Sim {
    /// An established socket with a 10 ms RTT (min_rtt 10 ms), MSS 1000, BBR initialised.
    fn new() -> Sim {
        let net = Netns::new(std::net::Ipv4Addr::new(192, 0, 2, 1), 1500, 1);
        let mut tp = TcpSock::new(&net, Instant::ZERO);
        tp.state = TcpState::Established;
        tp.mss_cache = 1000;
        tp.snd_cwnd = 10;
        tp.srtt_us = 10_000 << 3;
        tp.min_rtt_us = 10_000;
        tp.ca_algo = crate::tcp::cong::CongAlgo::Bbr;
        let now = Instant::from_millis(1);
        tp.tcp_init_congestion_control(now);
        Sim { net, tp, now }
    }

    fn b(&self) -> &Bbr {
        self.tp.bbr.as_deref().unwrap()
    }

    /// One ACK at `now + dt` delivering `acked` packets, with a sample of `delivered` packets
    /// over `interval_us` that started when `prior_delivered` packets had been delivered.
    fn ack(&mut self, dt: Duration, acked: u32, prior_delivered: u32, delivered: i32, interval_us: i64, rtt_us: i64) {
        self.now += dt;
        self.tp.delivered += acked;
        self.tp.rate.delivered_mstamp = Some(self.now);
        let rs = RateSample {
            prior_mstamp: Some(self.now),
            prior_delivered,
            delivered,
            interval_us,
            rtt_us,
            acked_sacked: acked,
            prior_in_flight: self.tp.packets_in_flight(),
            ..RateSample::default()
        };
        let mut out = Vec::new();
        let ctx = Ctx::new(self.now, &self.net, &mut out);
        self.tp.bbr_main(&ctx, &rs);
    }

    /// One round: an ACK whose sample started at the round's boundary, `bw_pkts_per_ms`
    /// packets per ms over 10 ms.
    fn round(&mut self, bw_pkts_per_ms: u32) {
        let prior = self.b().next_rtt_delivered;
        let n = bw_pkts_per_ms * 10;
        self.ack(Duration::from_millis(10), n, prior, n as i32, 10_000, 10_000);
        assert!(self.b().round_start);
    }
}

#[test]
fn windowed_max_keeps_the_best_of_the_last_rounds() {
    let mut m = Minmax::default();
    m.reset(0, 0);
    assert_eq!(m.running_max(10, 1, 50), 50);
    // Within the first quarter of the window a lower sample is not kept.
    assert_eq!(m.running_max(10, 2, 30), 50);
    assert_eq!(m.s[1], MinmaxSample { t: 1, v: 50 });
    // Past it, one is: the second and third best.
    assert_eq!(m.running_max(10, 5, 20), 50);
    assert_eq!(m.s[1], MinmaxSample { t: 5, v: 20 }, "second best");
    // Round 12: the best (round 1) is older than the window: the runner-up takes over.
    assert_eq!(m.running_max(10, 12, 10), 20);
    assert_eq!(m.s[2], MinmaxSample { t: 12, v: 10 });
    // A new maximum replaces everything.
    assert_eq!(m.running_max(10, 13, 99), 99);
    assert_eq!(m.s, [MinmaxSample { t: 13, v: 99 }; 3]);
    // Nothing for longer than the window: the new sample alone.
    assert_eq!(m.running_max(10, 40, 7), 7);
}

#[test]
fn init_paces_at_high_gain_over_srtt_and_turns_pacing_on() {
    let s = Sim::new();
    let b = s.b();
    assert_eq!(b.mode, BbrMode::Startup);
    assert_eq!(b.min_rtt_us, 10_000);
    assert!(s.tp.pacing_needed);
    assert_eq!(s.tp.snd_ssthresh, TCP_INFINITE_SSTHRESH);
    // 10 packets per 10 ms = 1 per ms, × 2.89 (739/256), less 1 %: about 2.86 MB/s.
    let bw = (10u64 << 24) / 10_000;
    let expect = (((bw * 1000 * BBR_HIGH_GAIN as u64) >> 8) * 990_000) >> 24;
    assert_eq!(s.tp.pacing_rate, expect);
    assert!((2_850_000..2_870_000).contains(&s.tp.pacing_rate), "{}", s.tp.pacing_rate);
}

#[test]
fn pacing_rate_bdp_and_cc_info_from_a_known_bandwidth() {
    let mut s = Sim::new();
    s.tp.bbr.as_deref_mut().unwrap().bw.reset(0, BW_10_PER_MS);
    // 10 packets of 1000 bytes per ms at gain 1, less 1 %.
    assert_eq!(s.tp.bbr_bw_to_pacing_rate(BW_10_PER_MS, BBR_UNIT), 9_899_990);
    // BDP: 10 per ms × 10 ms = 100 packets (rounded up), 200 at cwnd gain 2.
    assert_eq!(s.tp.bbr_bdp(BW_10_PER_MS, BBR_UNIT), 100);
    assert_eq!(s.tp.bbr_bdp(BW_10_PER_MS, BBR_CWND_GAIN), 200);
    let info = s.tp.bbr_get_info();
    let u = |i: usize| u32::from_ne_bytes(info[i * 4..i * 4 + 4].try_into().unwrap());
    let bw_bytes = (BW_10_PER_MS as u64 * 1000 * 1_000_000) >> 24;
    // The gains are set by the first ACK (bbr_init leaves them 0, as Linux's memset does).
    assert_eq!((u(0) as u64, u(1), u(2), u(3), u(4)), (bw_bytes, 0, 10_000, 0, 0));
    s.ack(Duration::from_millis(10), 10, 0, 10, 10_000, 10_000);
    let info = s.tp.bbr_get_info();
    let u = |i: usize| u32::from_ne_bytes(info[i * 4..i * 4 + 4].try_into().unwrap());
    assert_eq!((u(3), u(4)), (BBR_HIGH_GAIN, BBR_HIGH_GAIN));
    assert_eq!(info.len(), 20);
    // Below 1.2 Mbit/s one packet per TSO burst, else two.
    assert_eq!(s.tp.bbr_min_tso_segs(), 2);
    s.tp.pacing_rate = 100_000;
    assert_eq!(s.tp.bbr_min_tso_segs(), 1);
}

/// The bandwidth doubles for three rounds, then stays: after three rounds without 25 %
/// growth STARTUP ends (DRAIN, ssthresh = the BDP's inflight), and DRAIN hands over to
/// PROBE_BW once inflight is down to the BDP.
#[test]
fn startup_exits_after_three_flat_rounds_then_drain_then_probe_bw() {
    let mut s = Sim::new();
    s.tp.packets_out = 300; // a queue built in STARTUP
    for bw in [1, 2, 4, 8] {
        s.round(bw);
        assert_eq!(s.b().mode, BbrMode::Startup);
        assert_eq!(s.b().pacing_gain, BBR_HIGH_GAIN);
    }
    assert_eq!(s.b().full_bw, s.b().bw.get());
    s.round(9); // under 25 % more
    s.round(8);
    assert_eq!(s.b().full_bw_cnt, 2);
    assert_eq!(s.b().mode, BbrMode::Startup);
    s.round(8);
    assert!(s.b().full_bw_reached);
    assert_eq!(s.b().mode, BbrMode::Drain);
    assert_eq!(s.b().pacing_gain, BBR_DRAIN_GAIN);
    assert_eq!(s.b().cwnd_gain, BBR_HIGH_GAIN);
    let bw = s.b().bw.get();
    assert_eq!(bw, ((90u64 << 24) / 10_000) as u32, "the max of the window: 9 per ms");
    // ssthresh: the BDP's inflight (with the quantization budget of STARTUP's pacing rate).
    assert!(s.tp.snd_ssthresh >= s.tp.bbr_inflight(bw, BBR_UNIT) && s.tp.snd_ssthresh < 200, "{}", s.tp.snd_ssthresh);
    // The queue drains.
    s.tp.packets_out = 20;
    s.round(9);
    assert_eq!(s.b().mode, BbrMode::ProbeBw);
    assert_eq!(s.b().cwnd_gain, BBR_CWND_GAIN);
    assert_ne!(s.b().cycle_idx, 1, "never starts in the draining phase");
    // Once the pipe is full the pacing rate follows the gain down as well as up.
    let gain = s.b().pacing_gain;
    assert_eq!(s.tp.pacing_rate, s.tp.bbr_bw_to_pacing_rate(bw, gain));
    // cwnd snaps down to the target: BDP × 2, plus the ACK aggregation seen (this model ACKs
    // a round's 90 packets at once: 90 more), plus the quantization budget.
    assert_eq!(s.tp.bbr_ack_aggregation_cwnd(), 90);
    let target = s.tp.bbr_quantization_budget(s.tp.bbr_bdp(bw, BBR_CWND_GAIN) + 90);
    assert_eq!(s.tp.snd_cwnd, target);
}

/// PROBE_BW cycles 5/4, 3/4, then 1 × 6, each phase at least min_rtt long.
#[test]
fn probe_bw_cycles_its_gains() {
    let mut s = Sim::new();
    {
        let b = s.tp.bbr.as_deref_mut().unwrap();
        b.full_bw_reached = true;
        b.bw.reset(0, BW_10_PER_MS);
    }
    s.tp.packets_out = 100;
    let mut out = Vec::new();
    let ctx = Ctx::new(s.now, &s.net, &mut out);
    s.tp.bbr_reset_probe_bw_mode(ctx.net, ctx.now);
    s.tp.bbr_update_gains();
    let mut seen = Vec::new();
    for _ in 0..20 {
        seen.push((s.b().cycle_idx, s.b().pacing_gain));
        // 11 ms per ACK: every phase is over by the next ACK; the probing phase ends as
        // inflight is at 5/4 BDP, the draining one as it is back at the BDP.
        s.tp.packets_out = if s.b().pacing_gain > BBR_UNIT { 200 } else { 100 };
        let prior = s.b().next_rtt_delivered;
        s.ack(Duration::from_millis(11), 10, prior, 110, 11_000, 10_000);
    }
    for w in seen.windows(2) {
        assert_eq!(w[1].0, (w[0].0 + 1) % 8, "one phase per ACK: {seen:?}");
    }
    for (idx, gain) in seen {
        assert_eq!(gain, BBR_PACING_GAIN[idx as usize]);
    }
}

/// No RTT sample at or below min_rtt for 10 s: PROBE_RTT caps cwnd at 4 packets; 200 ms and
/// a round at that inflight later, the saved cwnd returns with PROBE_BW (the pipe was full).
#[test]
fn probe_rtt_after_ten_seconds_then_back() {
    let mut s = Sim::new();
    {
        let b = s.tp.bbr.as_deref_mut().unwrap();
        b.full_bw_reached = true;
        b.mode = BbrMode::ProbeBw;
        b.bw.reset(0, BW_10_PER_MS);
    }
    s.tp.snd_cwnd = 200;
    s.tp.packets_out = 150;
    // Samples above min_rtt for ten seconds.
    let prior = s.b().next_rtt_delivered;
    s.ack(Duration::from_secs(10), 10, prior, 100, 10_000, 12_000);
    assert_eq!(s.b().mode, BbrMode::ProbeBw, "not yet expired (10 s exactly)");
    let prior = s.b().next_rtt_delivered;
    let cwnd = s.tp.snd_cwnd;
    s.ack(Duration::from_millis(10), 10, prior, 100, 10_000, 12_000);
    assert_eq!(s.b().mode, BbrMode::ProbeRtt);
    assert_eq!(s.b().min_rtt_us, 12_000, "an expired filter takes the new sample");
    assert_eq!(s.b().prior_cwnd, cwnd);
    assert_eq!(s.tp.snd_cwnd, BBR_CWND_MIN_TARGET);
    assert_eq!((s.b().pacing_gain, s.b().cwnd_gain), (BBR_UNIT, BBR_UNIT));
    assert_ne!(s.tp.rate.app_limited, 0, "its low-rate samples are marked");
    // Inflight falls to 4: the 200 ms start.
    s.tp.packets_out = 4;
    s.ack(Duration::from_millis(10), 10, 0, 10, 10_000, 12_000);
    let done = s.b().probe_rtt_done_stamp.expect("timed");
    assert_eq!(done, s.now + Duration::from_millis(200));
    // A round passes, but 200 ms have not.
    let prior = s.b().next_rtt_delivered;
    s.ack(Duration::from_millis(100), 4, prior, 4, 10_000, 12_000);
    assert_eq!(s.b().mode, BbrMode::ProbeRtt);
    assert!(s.b().probe_rtt_round_done);
    s.ack(Duration::from_millis(101), 4, 0, 4, 10_000, 12_000);
    assert_eq!(s.b().mode, BbrMode::ProbeBw);
    assert_eq!(s.b().min_rtt_stamp, s.now, "the next PROBE_RTT is 10 s away");
    assert!(s.tp.snd_cwnd >= cwnd, "the saved cwnd is back: {}", s.tp.snd_cwnd);
}

/// Recovery: the first round conserves packets (cwnd = inflight + acked, less what was
/// lost), later rounds slow-start back; leaving it restores the cwnd from before.
#[test]
fn recovery_conserves_packets_then_restores_cwnd() {
    let mut s = Sim::new();
    {
        let b = s.tp.bbr.as_deref_mut().unwrap();
        b.full_bw_reached = true;
        b.mode = BbrMode::ProbeBw;
        b.bw.reset(0, BW_10_PER_MS);
    }
    s.tp.snd_cwnd = 150;
    s.tp.packets_out = 120;
    // tcp_enter_recovery(): ssthresh saves cwnd and leaves ssthresh as it was.
    let ssthresh = s.tp.snd_ssthresh;
    assert_eq!(s.tp.tcp_ca_ssthresh(), ssthresh);
    assert_eq!(s.b().prior_cwnd, 150);
    s.tp.ca_state = CaState::Recovery;
    s.tp.lost_out = 5;
    let in_flight = s.tp.packets_in_flight();
    s.ack(Duration::from_millis(1), 2, 0, 2, 10_000, 10_000);
    assert!(s.b().packet_conservation);
    assert_eq!(s.tp.snd_cwnd, in_flight + 2);
    assert_eq!(s.b().next_rtt_delivered, s.tp.delivered, "a round starts at recovery");
    // Still conserving within the round: at least inflight + acked.
    let (in_flight, cwnd) = (s.tp.packets_in_flight(), s.tp.snd_cwnd);
    s.tp.packets_out += 3;
    s.ack(Duration::from_millis(1), 1, 0, 1, 10_000, 10_000);
    assert_eq!(s.tp.snd_cwnd, cwnd.max(in_flight + 3 + 1));
    assert!(s.b().packet_conservation);
    // The next round: slow start towards the target (2 per packet acked at most).
    let prior = s.b().next_rtt_delivered;
    let cwnd = s.tp.snd_cwnd;
    s.ack(Duration::from_millis(10), 3, prior, 100, 10_000, 10_000);
    assert!(!s.b().packet_conservation);
    assert_eq!(s.tp.snd_cwnd, cwnd + 3);
    // Leaving recovery restores 150 (and the ACK's packet grows it, the pipe being full).
    s.tp.ca_state = CaState::Open;
    s.tp.lost_out = 0;
    s.ack(Duration::from_millis(1), 1, 0, 1, 10_000, 10_000);
    assert!(!s.b().packet_conservation);
    assert_eq!(s.tp.snd_cwnd, 151);
    // An undo keeps cwnd and restarts pipe-full detection.
    s.tp.bbr.as_deref_mut().unwrap().full_bw = 77;
    assert_eq!(s.tp.tcp_ca_undo_cwnd(), s.tp.snd_cwnd);
    assert_eq!(s.b().full_bw, 0);
}

/// A policer: two sampling intervals of 4+ rounds, each ended by a loss with more than 20 %
/// of the packets lost, at consistent rates: BBR paces at their average (gain 1) for 48
/// rounds, then samples again.
#[test]
fn policer_is_detected_by_the_long_term_sampler() {
    let mut s = Sim::new();
    {
        let b = s.tp.bbr.as_deref_mut().unwrap();
        b.full_bw_reached = true;
        b.mode = BbrMode::ProbeBw;
        b.bw.reset(0, BW_10_PER_MS);
    }
    s.tp.packets_out = 50;
    let lossy_round = |s: &mut Sim, losses: u32| {
        s.tp.rate.lost += losses;
        let prior = s.b().next_rtt_delivered;
        s.now += Duration::from_millis(10);
        s.tp.delivered += 20;
        s.tp.rate.delivered_mstamp = Some(s.now);
        let rs = RateSample {
            prior_mstamp: Some(s.now),
            prior_delivered: prior,
            delivered: 20,
            interval_us: 10_000,
            rtt_us: 10_000,
            acked_sacked: 20,
            losses,
            ..RateSample::default()
        };
        let mut out = Vec::new();
        let ctx = Ctx::new(s.now, &s.net, &mut out);
        s.tp.bbr_main(&ctx, &rs);
    };
    // The first loss starts sampling.
    lossy_round(&mut s, 10);
    assert!(s.b().lt_is_sampling);
    for _ in 0..3 {
        lossy_round(&mut s, 0);
    }
    lossy_round(&mut s, 10);
    // Interval 1: 5 rounds of 20 delivered in 50 ms... after its start: 80 delivered, 10
    // lost (over 20 %? 10/80 = 12.5 %: no). More loss is needed.
    assert_eq!(s.b().lt_bw, 0);
    lossy_round(&mut s, 20);
    let lt1 = s.b().lt_bw;
    assert!(lt1 > 0, "a lossy interval gave a sample");
    assert!(!s.b().lt_use_bw);
    for _ in 0..3 {
        lossy_round(&mut s, 0);
    }
    lossy_round(&mut s, 40);
    assert!(s.b().lt_use_bw, "two consistent lossy intervals: policed");
    assert_eq!(s.b().pacing_gain, BBR_UNIT);
    assert_eq!(s.tp.bbr_bw(), s.b().lt_bw);
    for _ in 0..BBR_LT_BW_MAX_RTTS {
        lossy_round(&mut s, 0);
    }
    assert!(!s.b().lt_use_bw, "48 rounds later it samples again");
}

/// An RTO (`set_state(Loss)`) ends a round and restarts pipe-full detection; the restart from
/// idle while application-limited paces at the estimated bandwidth.
#[test]
fn rto_and_idle_restart_hooks() {
    let mut s = Sim::new();
    {
        let b = s.tp.bbr.as_deref_mut().unwrap();
        b.full_bw = 5;
        b.mode = BbrMode::ProbeBw;
        b.full_bw_reached = true;
        b.bw.reset(0, BW_10_PER_MS);
    }
    let mut out = Vec::new();
    let ctx = Ctx::new(s.now, &s.net, &mut out);
    s.tp.tcp_set_ca_state_loss(&ctx);
    assert_eq!(s.tp.ca_state, CaState::Loss);
    assert_eq!((s.b().full_bw, s.b().round_start, s.b().prev_ca_state), (0, true, CaState::Loss));
    assert!(s.b().lt_is_sampling, "the RTO counts as a loss");
    s.tp.pacing_rate = 1;
    s.tp.rate.app_limited = 5;
    s.tp.bbr_cwnd_event_tx_start(&s.net, s.now);
    assert!(s.b().idle_restart);
    assert_eq!(s.tp.pacing_rate, s.tp.bbr_bw_to_pacing_rate(BW_10_PER_MS, BBR_UNIT));
}
