//! RTT measurement (net/ipv4/tcp_input.c `tcp_ack_update_rtt`, `tcp_rtt_estimator`,
//! `tcp_set_rto`; the RTT parts of `tcp_clean_rtx_queue` and `tcp_sacktag_one`).
//!
//! One ACK gives at most one sample, chosen as Linux chooses it: the send time of the oldest
//! never-retransmitted segment it acknowledged cumulatively (`seq_rtt`, not taken when any
//! retransmitted segment is acknowledged: Karn); else that of the lowest never-retransmitted
//! segment it newly SACKed (`sack_rtt`); else, when it acknowledged new data, the timestamp it
//! echoes (at least 1 ms, the timestamp clock's tick). The newest such segment's time gives
//! the sample for the minimum RTT and congestion control (`ca_rtt`). Only a valid sample
//! resets the RTO backoff.

use super::input::flag;
use super::{Ctx, TcpSock};
use crate::seq::SeqNum;
use crate::time::{Duration, Instant};

/// What `tcp_sacktag_one()` notes for RTT: the send times of the lowest and the highest
/// never-retransmitted segment an ACK newly SACKed (`first_sackt`, `last_sackt`; Linux walks
/// the blocks sorted by sequence), and the ACK's delivery-rate sample (`state->rate`).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SackRtt {
    first: Option<(SeqNum, Instant)>,
    last: Option<(SeqNum, Instant)>,
    /// The rate sample the (S)ACKed segments start (tcp/rate.rs).
    pub(crate) rate: super::rate::RateSample,
}

impl SackRtt {
    /// A never-retransmitted segment starting at `seq`, sent at `xmit`, was newly SACKed.
    pub(crate) fn sacked(&mut self, seq: SeqNum, xmit: Instant) {
        if self.first.is_none_or(|(s, _)| seq.before(s)) {
            self.first = Some((seq, xmit));
        }
        if self.last.is_none_or(|(s, _)| seq.after(s)) {
            self.last = Some((seq, xmit));
        }
    }
}

/// Microseconds from `t` to `now`, as `tcp_stamp_us_delta()`.
fn us_since(now: Instant, t: Instant) -> i64 {
    now.saturating_since(t).as_micros().min(i64::MAX as u128) as i64
}

impl TcpSock {
    /// `tcp_ack_update_rtt()` with the samples `tcp_clean_rtx_queue()` computes: `first_ackt`
    /// and `last_ackt` are the send times of the oldest and newest never-retransmitted,
    /// not-yet-SACKed segments this ACK acknowledged cumulatively. True when a sample was taken.
    pub(super) fn tcp_ack_update_rtt(
        &mut self,
        ctx: &Ctx<'_>,
        fl: u32,
        first_ackt: Option<Instant>,
        last_ackt: Option<Instant>,
        sack: &mut SackRtt,
    ) -> bool {
        let (mut seq_rtt_us, mut ca_rtt_us) = (-1i64, -1i64);
        if let (Some(first), Some(last)) = (first_ackt, last_ackt) {
            if fl & flag::RETRANS_DATA_ACKED == 0 {
                seq_rtt_us = us_since(ctx.now, first);
                ca_rtt_us = us_since(ctx.now, last);
            }
        }
        let mut sack_rtt_us = -1i64;
        if let (Some((_, first)), Some((_, last))) = (sack.first, sack.last) {
            sack_rtt_us = us_since(ctx.now, first);
            ca_rtt_us = us_since(ctx.now, last);
        }
        // Prefer the ACK's own timing to the echoed timestamp (a middlebox may rewrite it);
        // Karn's rule forbids timing retransmitted data.
        if seq_rtt_us < 0 {
            seq_rtt_us = sack_rtt_us;
        }
        // RTTM: an echoed timestamp counts only on an ACK that acknowledges new data.
        if seq_rtt_us < 0 && self.saw_tstamp && self.rcv_tsecr != 0 && fl & flag::ACKED != 0 {
            // rcv_tsecr has tsoffset removed: tcp_time_stamp_ts() - rcv_tsecr, in ms.
            let delta = self.tcp_time_stamp(ctx.now).wrapping_sub(self.tsoffset).wrapping_sub(self.rcv_tsecr);
            if delta < i32::MAX as u32 / 1000 {
                seq_rtt_us = delta.max(1) as i64 * 1000;
                ca_rtt_us = seq_rtt_us;
            }
        }
        // The RTT of the last (S)ACKed packet, or -1.
        sack.rate.rtt_us = ca_rtt_us;
        if seq_rtt_us < 0 {
            return false;
        }
        let seq_rtt = seq_rtt_us.clamp(1, u32::MAX as i64) as u32;
        let ca_rtt = ca_rtt_us.clamp(1, u32::MAX as i64) as u32;
        self.tcp_update_rtt_min(ctx, ca_rtt);
        self.tcp_rtt_estimator(ctx, seq_rtt);
        self.tcp_set_rto();
        self.hystart_update(ctx, ca_rtt);
        // RFC 6298: only a valid RTT measurement resets the backoff.
        self.backoff = 0;
        true
    }

    /// `tcp_rtt_estimator()` (RFC 6298 with Linux's mdev/rttvar handling).
    pub(crate) fn tcp_rtt_estimator(&mut self, ctx: &Ctx<'_>, mrtt_us: u32) {
        // tcp_rto_min_us(): the socket's TCP_RTO_MIN_US (from net.ipv4.tcp_rto_min_us).
        let rto_min_us = self.rto_min.as_micros() as u32;
        let _ = ctx;
        let mut m = mrtt_us as i64;
        let mut srtt = self.srtt_us as i64;
        if srtt != 0 {
            m -= srtt >> 3;
            srtt += m;
            if m < 0 {
                m = -m;
                m -= (self.mdev_us >> 2) as i64;
                if m > 0 {
                    m >>= 3;
                }
            } else {
                m -= (self.mdev_us >> 2) as i64;
            }
            self.mdev_us = (self.mdev_us as i64 + m).max(0) as u32;
            if self.mdev_us > self.mdev_max_us {
                self.mdev_max_us = self.mdev_us;
                if self.mdev_max_us > self.rttvar_us {
                    self.rttvar_us = self.mdev_max_us;
                }
            }
            if self.snd_una.after(self.rtt_seq) {
                if self.mdev_max_us < self.rttvar_us {
                    self.rttvar_us -= (self.rttvar_us - self.mdev_max_us) >> 2;
                }
                self.rtt_seq = self.snd_nxt;
                self.mdev_max_us = rto_min_us;
            }
        } else {
            srtt = m << 3;
            self.mdev_us = (m << 1) as u32;
            self.rttvar_us = self.mdev_us.max(rto_min_us);
            self.mdev_max_us = self.rttvar_us;
            self.rtt_seq = self.snd_nxt;
        }
        self.srtt_us = (srtt.max(1)) as u32;
    }

    /// `tcp_set_rto()`.
    pub(crate) fn tcp_set_rto(&mut self) {
        let us = (self.srtt_us >> 3) as u64 + self.rttvar_us as u64;
        // Linux keeps the RTO in jiffies (HZ=250 here): round up to 4 ms.
        let jiffy = 4000u64;
        let us = us.div_ceil(jiffy) * jiffy;
        // tcp_bound_rto(): TCP_RTO_MAX_MS caps it.
        self.rto = Duration::from_micros(us).min(self.ext().rto_max);
    }
}
