//! Undoing spurious loss recovery (tcp_input.c: `tcp_init_undo`, `tcp_may_undo`,
//! `tcp_packet_delayed`, `tcp_undo_cwnd_reduction`, `tcp_try_undo_recovery`,
//! `tcp_try_undo_dsack`, `tcp_try_undo_partial`, `tcp_try_undo_loss`, `tcp_check_dsack`) and
//! RACK's reordering window that DSACKs widen (tcp_recovery.c `tcp_rack_update_reo_wnd`,
//! RFC 8985 §6.2).
//!
//! A recovery or loss episode records `undo_marker` and `prior_ssthresh`; each retransmission
//! counts in `undo_retrans` and each DSACK for one of them takes it back. When every
//! retransmission was shown unnecessary (DSACKs), or the ACK echoes a timestamp older than the
//! first retransmission (Eifel: the original arrived), cwnd and ssthresh are restored.

use super::cong::CaState;
use super::{Ctx, TcpSock, TCPCB_LOST};
use crate::mib::LinuxMib;
use crate::seq::SeqNum;

/// `TCP_RACK_RECOVERY_THRESH`: recoveries a widened reordering window persists.
const TCP_RACK_RECOVERY_THRESH: u32 = 16;

impl TcpSock {
    /// `tcp_current_ssthresh()`.
    pub(super) fn tcp_current_ssthresh(&self) -> u32 {
        self.snd_ssthresh.max((self.snd_cwnd >> 1) + (self.snd_cwnd >> 2))
    }

    /// `tcp_init_undo()` with the `prior_ssthresh` its callers record: a new episode.
    pub(crate) fn tcp_init_undo(&mut self) {
        self.undo_marker = Some(self.snd_una);
        self.undo_retrans = if self.retrans_out > 0 { self.retrans_out as i32 } else { -1 };
        self.undo_stamp = None;
        self.prior_ssthresh = self.tcp_current_ssthresh();
    }

    /// A retransmission of the episode left (`tcp_retransmit_skb`).
    pub(crate) fn tcp_undo_count_retrans(&mut self, now: crate::time::Instant) {
        if self.undo_marker.is_some() {
            if self.undo_retrans < 0 {
                self.undo_retrans = 0;
            }
            self.undo_retrans += 1;
            if self.undo_stamp.is_none() {
                self.undo_stamp = Some(now);
            }
        }
    }

    /// `tcp_dsack_seen()` with the undo accounting of `tcp_check_dsack()` / `tcp_sacktag_one()`
    /// for a DSACK block `[start, end)` covering `retransmitted` segments of ours that were
    /// retransmitted (below `prior_snd_una` they are gone: the block's segment count is
    /// assumed, as Linux's "dumb counting" does). False for a dubious DSACK, which changes
    /// nothing but TCPDSACKIgnoredDubious: one longer than the largest window the peer ever
    /// offered, or one that would make more duplicates than this socket ever retransmitted
    /// (a duplicate the network made, not a spurious retransmission of ours).
    pub(crate) fn tcp_dsack_seen(
        &mut self,
        ctx: &mut Ctx<'_>,
        start: SeqNum,
        end: SeqNum,
        prior_snd_una: SeqNum,
        retransmitted: u32,
    ) -> bool {
        if !start.before(end) {
            return false;
        }
        let seq_len = end.diff(start);
        let mss = self.mss_cache.max(1);
        if seq_len > self.max_window {
            ctx.inc(LinuxMib::TCPDSACKIgnoredDubious);
            return false;
        }
        let mut tlp = false;
        let dup_segs = if seq_len > mss {
            seq_len.div_ceil(mss)
        } else {
            tlp = self.tlp_high_seq == Some(end);
            1
        };
        self.dsack_dups = self.dsack_dups.wrapping_add(dup_segs);
        if self.dsack_dups > self.total_retrans {
            ctx.inc(LinuxMib::TCPDSACKIgnoredDubious);
            return false;
        }
        ctx.net.mib.add(LinuxMib::TCPDSACKRecvSegs, dup_segs as u64);
        // DEVIATION(linux): a DSACK counts as reordering seen. 6.18 widens RACK's window for a
        // DSACK round only once `tcp_check_sack_reordering()` saw reordering, which on a real
        // path some jitter soon lets an original win against its retransmission (6.18.44
        // over a TUN wire imitating tests/undo.rs, every 40th segment 6 ms late on a 2 ms
        // path: TCPSACKReorder 15, TCPTSReorder 6, 21 retransmissions for 2 MiB). On the
        // virtual clock the retransmission always wins, reordering is never seen, and every
        // late segment is retransmitted (36).
        self.reord_seen += 1;
        // RACK widens its window for DSACK rounds, but not for the DSACK of a loss probe
        // (TLP is timer-driven, not a RACK decision).
        if !tlp {
            self.rack_dsack_seen = true;
        }
        let Some(marker) = self.undo_marker else { return true };
        if self.undo_retrans > 0 && end.after(marker) {
            let n = if end.after(prior_snd_una) { retransmitted } else { dup_segs };
            self.undo_retrans = (self.undo_retrans - n as i32).max(0);
        }
        true
    }

    /// `tcp_packet_delayed()`: the ACK shows the original transmission arrived (it echoes a
    /// timestamp from before the first retransmission), or nothing was retransmitted yet.
    fn tcp_packet_delayed(&self) -> bool {
        match self.undo_stamp {
            Some(t) => {
                let when = t.millis() as u32;
                self.saw_tstamp && self.rcv_tsecr != 0 && (self.rcv_tsecr.wrapping_sub(when) as i32) < 0
            }
            None => self.sack_ok || self.snd_una.before(self.high_seq),
        }
    }

    /// `tcp_may_undo()`.
    fn tcp_may_undo(&self) -> bool {
        self.undo_marker.is_some() && (self.undo_retrans == 0 || self.tcp_packet_delayed())
    }

    /// `tcp_undo_cwnd_reduction()`: restores cwnd (`tcp_reno_undo_cwnd`, CUBIC's) and ssthresh.
    fn tcp_undo_cwnd_reduction(&mut self, unmark_loss: bool) {
        if unmark_loss {
            for skb in self.rtx_queue.iter_mut() {
                skb.sacked &= !TCPCB_LOST;
            }
            self.lost_out = 0;
        }
        if self.prior_ssthresh != 0 {
            self.snd_cwnd = self.tcp_ca_undo_cwnd();
            if self.prior_ssthresh > self.snd_ssthresh {
                self.snd_ssthresh = self.prior_ssthresh;
            }
        }
        self.undo_marker = None;
    }

    /// `tcp_try_undo_recovery()`, as recovery or loss ends with `high_seq` acknowledged.
    pub(crate) fn tcp_try_undo_recovery(&mut self, ctx: &mut Ctx<'_>) {
        if self.tcp_may_undo() {
            let loss = self.ca_state == CaState::Loss;
            self.tcp_undo_cwnd_reduction(false);
            ctx.inc(if loss { LinuxMib::TCPLossUndo } else { LinuxMib::TCPFullUndo });
        } else if self.rack_reo_wnd_persist > 0 {
            self.rack_reo_wnd_persist -= 1;
        }
    }

    /// `tcp_try_undo_dsack()`: DSACKs showed every retransmission unnecessary.
    pub(crate) fn tcp_try_undo_dsack(&mut self, ctx: &mut Ctx<'_>) -> bool {
        if self.undo_marker.is_some() && self.undo_retrans == 0 {
            self.rack_reo_wnd_persist = (self.rack_reo_wnd_persist + 1).min(TCP_RACK_RECOVERY_THRESH);
            self.tcp_undo_cwnd_reduction(false);
            ctx.inc(LinuxMib::TCPDSACKUndo);
            return true;
        }
        false
    }

    /// `tcp_try_undo_partial()`: a partial ACK in recovery whose data was only delayed.
    /// Returns true when recovery should go on unchanged (retransmissions still out).
    pub(crate) fn tcp_try_undo_partial(&mut self, ctx: &mut Ctx<'_>, prior_snd_una: SeqNum) -> bool {
        if self.undo_marker.is_some() && self.tcp_packet_delayed() {
            // Plain luck: the hole was filled by the delayed original.
            self.tcp_check_sack_reordering(ctx, prior_snd_una, true);
            if self.retrans_out > 0 {
                return true;
            }
            self.tcp_undo_cwnd_reduction(true);
            ctx.inc(LinuxMib::TCPPartialUndo);
            self.ca_state = if self.sacked_out > 0 { CaState::Disorder } else { CaState::Open };
        }
        false
    }

    /// `tcp_try_undo_loss()`: after an RTO, the ACK shows the timeout was spurious: by the
    /// Eifel/DSACK checks of `tcp_may_undo`, or by F-RTO (`frto_undo`: never-retransmitted data
    /// was (S)ACKed, TCPSpuriousRTOs).
    pub(crate) fn tcp_try_undo_loss(&mut self, ctx: &mut Ctx<'_>, frto_undo: bool) -> bool {
        if frto_undo || self.tcp_may_undo() {
            self.tcp_undo_cwnd_reduction(true);
            ctx.inc(LinuxMib::TCPLossUndo);
            if frto_undo {
                ctx.inc(LinuxMib::TCPSpuriousRTOs);
            }
            self.retransmits = 0;
            if self.tcp_is_non_sack_preventing_reopen() {
                return true;
            }
            if frto_undo || self.sack_ok {
                self.ca_state = CaState::Open;
            }
            return true;
        }
        false
    }

    /// `tcp_is_non_sack_preventing_reopen()`: without SACK the state is held until something
    /// above `high_seq` is ACKed (RFC 2582: no false fast retransmits).
    pub(super) fn tcp_is_non_sack_preventing_reopen(&mut self) -> bool {
        if self.snd_una == self.high_seq && !self.sack_ok {
            // tcp_any_retrans_done()
            let head_ever = self.rtx_queue.front().is_some_and(|h| h.sacked & super::TCPCB_EVER_RETRANS != 0);
            if self.retrans_out == 0 && !head_ever {
                self.retrans_stamp = None;
            }
            return true;
        }
        false
    }

    /// `tcp_rack_update_reo_wnd()`: a DSACK (a retransmission that was not needed) widens the
    /// reordering window by a step, once per round trip, for the next 16 recoveries.
    pub(crate) fn tcp_rack_update_reo_wnd(&mut self, ctx: &Ctx<'_>, prior_delivered: u32) {
        if ctx.net.sysctl.tcp_recovery.get() & 0x2 != 0 || prior_delivered == 0 {
            return; // TCP_RACK_STATIC_REO_WND
        }
        if SeqNum(prior_delivered).before(SeqNum(self.rack_last_delivered)) {
            self.rack_dsack_seen = false;
        }
        if self.rack_dsack_seen {
            self.rack_reo_wnd_steps = (self.rack_reo_wnd_steps + 1).min(0xff);
            self.rack_dsack_seen = false;
            self.rack_last_delivered = self.delivered;
            self.rack_reo_wnd_persist = TCP_RACK_RECOVERY_THRESH;
        } else if self.rack_reo_wnd_persist == 0 {
            self.rack_reo_wnd_steps = 1;
        }
    }

    /// The windowed minimum RTT filter (`tcp_update_rtt_min`, `tcp_min_rtt_wlen` seconds).
    // DEVIATION(linux): Linux keeps a three-sample windowed min-max (lib/win_minmax.c); utcp
    // keeps the minimum and restarts it from the current sample once it is older than the
    // window, which agrees whenever the path's RTT floor holds for the window.
    pub(crate) fn tcp_update_rtt_min(&mut self, ctx: &Ctx<'_>, rtt_us: u32) {
        let wlen = crate::time::Duration::from_secs(ctx.net.sysctl.tcp_min_rtt_wlen.get().max(0) as u64);
        let rtt_us = rtt_us.max(1);
        if self.min_rtt_us == 0 || rtt_us <= self.min_rtt_us || ctx.now.saturating_since(self.min_rtt_stamp) > wlen {
            self.min_rtt_us = rtt_us;
            self.min_rtt_stamp = ctx.now;
        }
    }
}
