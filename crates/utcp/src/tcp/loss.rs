//! The Loss state after a retransmission timeout (net/ipv4/tcp_input.c): `tcp_enter_loss`,
//! `tcp_process_loss` with F-RTO (RFC 5682, the SACK-enhanced version Linux runs with
//! `net.ipv4.tcp_frto` non-zero), `tcp_xmit_recovery`, and the emulated SACKs of a connection
//! without SACK (`tcp_add_reno_sack`, `tcp_remove_reno_sacks`, `tcp_reset_reno_sack`).
//!
//! F-RTO: after an RTO only the head is retransmitted. If the next ACK advances `snd_una`
//! (without showing the timeout spurious already), new data is sent instead of more
//! retransmissions (`REXMIT_NEW`); if the ACK after that (S)ACKs data that was never
//! retransmitted (`FLAG_ORIG_SACK_ACKED`), the timeout was spurious and the cwnd reduction is
//! undone (TCPSpuriousRTOs, TCPLossUndo); a duplicate ACK or a SACK of the new data instead
//! shows a real loss and recovery goes on conventionally.

use super::cong::CaState;
use super::input::flag;
use super::{Ctx, TcpSock, TCPCB_LOST, TCPCB_SACKED_ACKED, TCPCB_SACKED_RETRANS};
use crate::mib::LinuxMib;

/// What `tcp_xmit_recovery()` sends after an ACK (`REXMIT_NONE`, `REXMIT_LOST`, `REXMIT_NEW`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Rexmit {
    /// Nothing.
    None,
    /// The segments marked lost.
    Lost,
    /// New data (F-RTO step 2.b), falling back to the lost segments if none can be sent.
    New,
}

impl TcpSock {
    /// `tcp_is_reno()`: the connection has no SACK.
    pub(crate) fn tcp_is_reno(&self) -> bool {
        !self.sack_ok
    }

    /// `tcp_add_reno_sack()`: without SACK, each duplicate ACK stands for a segment that left
    /// the network; `sacked_out` counts them (`tcp_limit_reno_sacked`: one hole, or as many as
    /// are marked lost, stays below `packets_out`).
    pub(super) fn tcp_add_reno_sack(&mut self, num_dupack: u32) {
        if num_dupack == 0 {
            return;
        }
        let prior_sacked = self.sacked_out;
        let holes = self.lost_out.max(1).min(self.packets_out);
        self.sacked_out = (self.sacked_out + num_dupack).min(self.packets_out - holes);
        self.delivered = self.delivered.wrapping_add(self.sacked_out.saturating_sub(prior_sacked));
    }

    /// `tcp_remove_reno_sacks()`: `acked` segments were cumulatively ACKed, of which the
    /// duplicate ACKs had already counted all but one as delivered (`tcp_clean_rtx_queue`
    /// counted each of them: take back the ones counted twice).
    pub(super) fn tcp_remove_reno_sacks(&mut self, acked: u32) {
        if acked > 0 {
            let counted = acked.saturating_sub(self.sacked_out).max(1);
            self.delivered = self.delivered.wrapping_sub(acked - counted);
            self.sacked_out = self.sacked_out.saturating_sub(acked - 1);
        }
    }

    /// `tcp_reset_reno_sack()`.
    pub(super) fn tcp_reset_reno_sack(&mut self) {
        self.sacked_out = 0;
    }

    /// `tcp_mark_skb_lost()` for the segment at `idx`: marks it lost, or, when it already was
    /// and its retransmission is out, counts that retransmission lost too.
    fn tcp_mark_skb_lost(&mut self, ctx: &Ctx<'_>, idx: usize) {
        let skb = &mut self.rtx_queue[idx];
        if skb.sacked & TCPCB_SACKED_ACKED != 0 {
            return;
        }
        if skb.sacked & TCPCB_LOST != 0 {
            if skb.sacked & TCPCB_SACKED_RETRANS != 0 {
                skb.sacked &= !TCPCB_SACKED_RETRANS;
                self.retrans_out = self.retrans_out.saturating_sub(1);
                ctx.inc(LinuxMib::TCPLostRetransmit);
                self.rate.lost += 1;
            }
        } else {
            // DEVIATION(linux): a tail loss probe's retransmission counts in `retrans_out` here
            // (Linux's `__tcp_retransmit_skb()` leaves it out). It is forgotten when the RTO
            // marks its segment lost, as if it had been Linux's probe: otherwise RACK takes it
            // for a lost retransmission on the next ACK and starts a recovery from Loss.
            if skb.sacked & TCPCB_SACKED_RETRANS != 0 {
                skb.sacked &= !TCPCB_SACKED_RETRANS;
                self.retrans_out = self.retrans_out.saturating_sub(1);
            }
            skb.sacked |= TCPCB_LOST;
            self.lost_out += 1;
            self.rate.lost += 1;
        }
    }

    /// `tcp_timeout_mark_lost()`: at an RTO every segment is taken for lost but, with RACK, the
    /// ones sent less than RACK's RTT ago (the head always is). A SACKed head means the
    /// receiver reneged: every SACK is forgotten and everything is lost.
    fn tcp_timeout_mark_lost(&mut self, ctx: &Ctx<'_>) {
        let is_reneg = self.rtx_queue.front().is_some_and(|h| h.sacked & TCPCB_SACKED_ACKED != 0);
        if is_reneg {
            ctx.inc(LinuxMib::TCPSACKReneging);
            self.sacked_out = 0;
        } else if self.tcp_is_reno() {
            self.tcp_reset_reno_sack();
        }
        let rack = self.tcp_is_rack(ctx);
        for idx in 0..self.rtx_queue.len() {
            if is_reneg {
                self.rtx_queue[idx].sacked &= !TCPCB_SACKED_ACKED;
            } else if rack && idx != 0 {
                // tcp_rack_skb_timeout(tp, skb, 0) > 0: not yet.
                let age = ctx.now.saturating_since(self.rtx_queue[idx].tx_time).as_micros();
                if (self.rack_rtt_us as u128) > age {
                    continue;
                }
            }
            self.tcp_mark_skb_lost(ctx, idx);
        }
    }

    /// `tcp_enter_loss()`: after an RTO the outstanding segments are presumed lost
    /// (`tcp_timeout_mark_lost`), cwnd restarts from what is still in flight, and F-RTO starts.
    pub(crate) fn tcp_enter_loss(&mut self, ctx: &mut Ctx<'_>) {
        let new_recovery = matches!(self.ca_state, CaState::Open | CaState::Disorder | CaState::Cwr);
        let prior_state = self.ca_state;
        self.tcp_timeout_mark_lost(ctx);
        // Reduce ssthresh if it has not yet been made inside this window.
        if matches!(prior_state, CaState::Open | CaState::Disorder)
            || !self.high_seq.after(self.snd_una)
            || (prior_state == CaState::Loss && self.retransmits == 0)
        {
            self.prior_cwnd = self.snd_cwnd;
            self.tcp_init_undo();
            self.snd_ssthresh = self.tcp_ca_ssthresh();
        }
        self.cubic_reset();
        self.snd_cwnd = self.packets_in_flight() + 1;
        self.snd_cwnd_cnt = 0;
        // A timeout after many duplicate ACKs: the reordering degree was over-estimated.
        let reordering = ctx.net.sysctl.tcp_reordering.get().max(0) as u32;
        if matches!(prior_state, CaState::Open | CaState::Disorder) && self.sacked_out >= reordering {
            self.reordering = self.reordering.min(reordering);
        }
        self.dupacks = 0;
        self.tlp_high_seq = None;
        self.clear_timer(super::TcpTimer::LossProbe);
        self.tcp_set_ca_state_loss(ctx);
        self.high_seq = self.snd_nxt;
        // F-RTO (RFC 5682 3.1 step 1): probe unless a recovery was already under way, except
        // for a repeated timeout of the same snd_una (3.2).
        self.frto = ctx.net.sysctl.tcp_frto.get() != 0 && (new_recovery || self.retransmits > 0);
    }

    /// `tcp_process_loss()`: an ACK in the Loss state. Leaves for Open when the lost data is
    /// recovered or the timeout shown spurious; otherwise says what to send.
    pub(super) fn tcp_process_loss(&mut self, ctx: &mut Ctx<'_>, fl: u32, num_dupack: u32) -> Rexmit {
        let recovered = !self.snd_una.before(self.high_seq);
        if fl & flag::SND_UNA_ADVANCED != 0 && self.tcp_try_undo_loss(ctx, false) {
            return Rexmit::None;
        }
        if self.frto {
            // Step 3.b: never-retransmitted data was (S)ACKed, so not everything was lost.
            if fl & flag::ORIG_SACK_ACKED != 0 && self.tcp_try_undo_loss(ctx, true) {
                return Rexmit::None;
            }
            if self.snd_nxt.after(self.high_seq) {
                if fl & flag::DATA_SACKED != 0 || num_dupack > 0 {
                    self.frto = false; // Step 3.a: the loss was real.
                }
            } else if fl & flag::SND_UNA_ADVANCED != 0 && !recovered {
                self.high_seq = self.snd_nxt;
                // Step 2.b: send new data (once tcp_ack() updated cwnd), else fall back to
                // conventional recovery.
                if !self.write_queue.is_empty() && (self.snd_una + self.snd_wnd).after(self.snd_nxt) {
                    return Rexmit::New;
                }
                self.frto = false;
            }
        }
        if recovered {
            // Step 2.a and the first part of step 3.a.
            self.tcp_try_undo_recovery(ctx);
            if !self.tcp_is_non_sack_preventing_reopen() {
                self.ca_state = CaState::Open;
            }
            return Rexmit::None;
        }
        if self.tcp_is_reno() {
            // A Reno duplicate ACK means the new data of step 2.b arrived: lower in-flight
            // to clock out (re)transmissions.
            if self.snd_nxt.after(self.high_seq) && num_dupack > 0 {
                self.tcp_add_reno_sack(num_dupack);
            } else if fl & flag::SND_UNA_ADVANCED != 0 {
                self.tcp_reset_reno_sack();
            }
        }
        Rexmit::Lost
    }

    /// `tcp_xmit_recovery()`: the (re)transmissions the ACK's state processing asked for.
    pub(super) fn tcp_xmit_recovery(&mut self, ctx: &mut Ctx<'_>, rexmit: Rexmit) {
        if rexmit == Rexmit::None || self.state == super::TcpState::SynSent {
            return;
        }
        if rexmit == Rexmit::New {
            let mss = self.tcp_current_mss();
            self.__tcp_push_pending_frames(ctx, mss, super::output::TCP_NAGLE_OFF);
            if self.snd_nxt.after(self.high_seq) {
                return;
            }
            self.frto = false;
        }
        self.tcp_xmit_retransmit_queue(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::Netns;
    use crate::seq::SeqNum;
    use crate::tcp::TxSkb;
    use crate::time::Instant;

    /// A socket in `state` with ten 1000-byte segments out, sent at `sent[i]` ms; `sacked`
    /// lists the SACKed ones.
    fn sock(net: &Netns, state: CaState, sent: [u64; 10], sacked: &[usize]) -> TcpSock {
        let mut tp = TcpSock::new(net, Instant::ZERO);
        tp.sack_ok = true;
        tp.snd_una = SeqNum(1);
        tp.snd_nxt = SeqNum(10_001);
        tp.snd_cwnd = 10;
        tp.ca_state = state;
        for (i, &ms) in sent.iter().enumerate() {
            let at = Instant::from_millis(ms);
            let seq = SeqNum(1 + 1000 * i as u32);
            tp.rtx_queue.push_back(TxSkb {
                seq,
                end_seq: seq + 1000,
                flags: crate::wire::TcpFlags::ACK,
                building: None,
                data: bytes::Bytes::from(vec![0u8; 1000]),
                frag: bytes::Bytes::new(),
                sacked: if sacked.contains(&i) { TCPCB_SACKED_ACKED } else { 0 },
                tx_time: at,
                tx_order: i as u64,
                retrans: 0,
                urg: false,
                tx: Default::default(),
            });
        }
        tp.packets_out = 10;
        tp.sacked_out = sacked.len() as u32;
        tp
    }

    fn enter_loss(tp: &mut TcpSock, net: &Netns, now_ms: u64) {
        let mut out = Vec::new();
        let mut ctx = Ctx::new(Instant::from_millis(now_ms), net, &mut out);
        tp.tcp_enter_loss(&mut ctx);
    }

    #[test]
    fn rto_marks_old_segments_lost_and_starts_frto() {
        let net = Netns::new(std::net::Ipv4Addr::LOCALHOST, 1500, 1);
        let mut tp = sock(&net, CaState::Open, [0; 10], &[3]);
        enter_loss(&mut tp, &net, 300);
        assert_eq!(tp.lost_out, 9, "all but the SACKed one");
        assert_eq!(tp.sacked_out, 1);
        assert_eq!(tp.snd_cwnd, 1, "in flight 0 + 1");
        assert_eq!(tp.ca_state, CaState::Loss);
        assert!(tp.frto, "tcp_frto=2, no recovery under way");
        assert_eq!(tp.high_seq, SeqNum(10_001));
    }

    #[test]
    fn rack_spares_recently_sent_segments_but_never_the_head() {
        let net = Netns::new(std::net::Ipv4Addr::LOCALHOST, 1500, 1);
        // Segments 0..5 sent long ago, 5..10 within RACK's RTT (50 ms) of the timeout.
        let mut tp = sock(&net, CaState::Open, [0, 0, 0, 0, 0, 290, 290, 290, 290, 290], &[]);
        tp.rack_rtt_us = 50_000;
        enter_loss(&mut tp, &net, 300);
        assert_eq!(tp.lost_out, 5);
        assert_eq!(tp.snd_cwnd, 6, "in flight 5 + 1");
        let mut tp = sock(&net, CaState::Open, [290; 10], &[]);
        tp.rack_rtt_us = 50_000;
        enter_loss(&mut tp, &net, 300);
        assert_eq!(tp.lost_out, 1, "the head is always marked");
    }

    #[test]
    fn sacked_head_is_reneging_and_forgets_every_sack() {
        let net = Netns::new(std::net::Ipv4Addr::LOCALHOST, 1500, 1);
        let mut tp = sock(&net, CaState::Disorder, [0; 10], &[0, 4]);
        let mut out = Vec::new();
        let mut ctx = Ctx::new(Instant::from_millis(300), &net, &mut out);
        tp.tcp_enter_loss(&mut ctx);
        drop(ctx);
        assert_eq!(net.mib.get(LinuxMib::TCPSACKReneging), 1);
        assert_eq!((tp.sacked_out, tp.lost_out), (0, 10));
        assert!(tp.rtx_queue.iter().all(|s| s.sacked & TCPCB_SACKED_ACKED == 0));
    }

    #[test]
    fn no_frto_inside_a_recovery_nor_when_off() {
        let net = Netns::new(std::net::Ipv4Addr::LOCALHOST, 1500, 1);
        let mut tp = sock(&net, CaState::Recovery, [0; 10], &[]);
        tp.high_seq = SeqNum(10_001);
        enter_loss(&mut tp, &net, 300);
        assert!(!tp.frto, "RTO during fast recovery");
        // A repeated timeout of the same snd_una probes again (RFC 5682 3.2).
        tp.retransmits = 1;
        enter_loss(&mut tp, &net, 600);
        assert!(tp.frto);
        net.sysctl.set_by_name("net.ipv4.tcp_frto", "0").unwrap();
        let mut tp = sock(&net, CaState::Open, [0; 10], &[]);
        enter_loss(&mut tp, &net, 300);
        assert!(!tp.frto);
    }

    #[test]
    fn reno_dupacks_count_as_sacked_below_packets_out() {
        let net = Netns::new(std::net::Ipv4Addr::LOCALHOST, 1500, 1);
        let mut tp = sock(&net, CaState::Loss, [0; 10], &[]);
        tp.sack_ok = false;
        tp.sacked_out = 0;
        tp.lost_out = 3;
        tp.tcp_add_reno_sack(20);
        assert_eq!(tp.sacked_out, 7, "packets_out less the holes marked lost");
        tp.tcp_remove_reno_sacks(3);
        assert_eq!(tp.sacked_out, 5, "all but one of the ACKed were counted by dupacks");
    }
}
