//! Segment input (net/ipv4/tcp_input.c): `tcp_rcv_established`, `tcp_rcv_state_process`,
//! `tcp_rcv_synsent_state_process`, `tcp_validate_incoming` (PAWS, RFC 5961), `tcp_ack`
//! (window update, SACK tagging, RTT, congestion control, fast retransmit), `tcp_fin`,
//! `tcp_reset`, and ACK scheduling.

use super::loss::Rexmit;
use super::rtt::SackRtt;
use super::{
    ack_flags::*, cong::CaState, Ctx, TcpSock, TcpState, TcpTimer, TCPCB_LOST, TCPCB_SACKED_ACKED, TCPCB_SACKED_RETRANS,
};
use crate::errno::Errno;
use crate::mib::{DropReason, LinuxMib, TcpMib};
use crate::seq::SeqNum;
use crate::time::Duration;
use crate::wire::{SackBlocks, TcpFlags};
use bytes::Bytes;

/// An inbound segment as TCP input sees it (`skb` + `TCP_SKB_CB` + parsed options).
#[derive(Clone, Debug)]
pub(crate) struct Seg {
    /// `TCP_SKB_CB(skb)->seq`.
    pub(crate) seq: SeqNum,
    /// `TCP_SKB_CB(skb)->end_seq`.
    pub(crate) end_seq: SeqNum,
    /// `TCP_SKB_CB(skb)->ack_seq`.
    pub(crate) ack_seq: SeqNum,
    /// TCP flags.
    pub(crate) flags: TcpFlags,
    /// Raw window field.
    pub(crate) window: u16,
    /// Urgent pointer field.
    pub(crate) urg_ptr: u16,
    /// MSS option.
    pub(crate) mss: Option<u16>,
    /// Window-scale option.
    pub(crate) wscale: Option<u8>,
    /// SACK-permitted option.
    pub(crate) sack_permitted: bool,
    /// SACK blocks.
    pub(crate) sack: SackBlocks,
    /// Timestamp option (tsval, tsecr).
    pub(crate) ts: Option<(u32, u32)>,
    /// Payload (its first part: see `frags`).
    pub(crate) payload: Bytes,
    /// Payload parts after `payload` (`skb_shinfo(skb)->frags` of a packet GRO merged), in a
    /// pooled vector that moves on into the queued [`crate::skb::Skb`]; empty otherwise.
    pub(crate) frags: Vec<Bytes>,
    /// Bytes in `frags`.
    pub(crate) frags_len: u32,
    /// What the buffer holding this segment costs (`skb->truesize`).
    pub(crate) truesize: u32,
    /// Receive-side skb metadata Linux keeps outside `TCP_SKB_CB` (GSO size, TCP header length).
    pub(crate) rx: RxMeta,
    /// A SYN's raw IP and TCP headers (TCP_SAVE_SYN); `None` otherwise.
    pub(crate) syn_hdr: Option<Bytes>,
    /// The IP options it carried (`IPCB(skb)->opt`), compiled on receipt.
    pub(crate) ip_opt: Option<Box<crate::ip::options::IpOptions>>,
}

/// Per-skb facts of a received segment that TCP input consults besides its header fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RxMeta {
    /// `skb_shinfo(skb)->gso_size` (0 = not a GSO packet).
    pub(crate) gso_size: u32,
    /// TCP header length including options (`skb->data - skb_transport_header(skb)`).
    pub(crate) thlen: u32,
    /// Segments this one stands for (`gso_segs`; the backlog adds those it coalesces).
    pub(crate) segs: u32,
    /// How the receiving device laid the packet out.
    pub(crate) layout: crate::skb::SkbLayout,
    /// The IP header's TTL (checked against IP_MINTTL), or IPv6 hop limit (IPV6_MINHOPCOUNT).
    pub(crate) ttl: u8,
    /// The IPv6 traffic class (`ipv6_get_dsfield()`: a stateless reply carries it); 0 for
    /// IPv4.
    pub(crate) tclass: u8,
}

impl Seg {
    /// Payload length.
    pub(crate) fn len(&self) -> u32 {
        self.payload.len() as u32 + self.frags_len
    }
    /// No payload.
    pub(crate) fn is_empty(&self) -> bool {
        self.payload.is_empty() && self.frags_len == 0
    }
    /// The payload's parts in order.
    pub(crate) fn parts(&self) -> impl Iterator<Item = &Bytes> {
        core::iter::once(&self.payload).chain(self.frags.iter())
    }
    /// The payload byte at `off` (< `len()`).
    pub(crate) fn byte_at(&self, mut off: usize) -> u8 {
        for p in self.parts() {
            if off < p.len() {
                return p[off];
            }
            off -= p.len();
        }
        0
    }
    /// Drops `n` (≤ `len()`) payload bytes from the front (`pskb_pull`); `seq` is the
    /// caller's to move.
    pub(crate) fn pull(&mut self, n: u32) {
        let mut n = n as usize;
        while n > 0 {
            if n < self.payload.len() {
                self.payload = self.payload.slice(n..);
                return;
            }
            n -= self.payload.len();
            if self.frags.is_empty() {
                self.payload = Bytes::new();
                return;
            }
            self.payload = self.frags.remove(0);
            self.frags_len -= self.payload.len() as u32;
        }
    }
    /// Moves the parts after the first out (to the skb that queues them).
    pub(crate) fn take_frags(&mut self) -> Vec<Bytes> {
        self.frags_len = 0;
        core::mem::take(&mut self.frags)
    }
}

impl Drop for Seg {
    /// A segment dropped with its parts gives their vector back to the pool.
    fn drop(&mut self) {
        if self.frags.capacity() != 0 {
            crate::skb::frag_vec_free(core::mem::take(&mut self.frags));
        }
    }
}

/// `FLAG_*` bits of `tcp_ack()`.
pub(super) mod flag {
    pub(crate) const DATA: u32 = 0x01;
    pub(crate) const WIN_UPDATE: u32 = 0x02;
    pub(crate) const DATA_ACKED: u32 = 0x04;
    pub(crate) const RETRANS_DATA_ACKED: u32 = 0x08;
    pub(crate) const SYN_ACKED: u32 = 0x10;
    pub(crate) const DATA_SACKED: u32 = 0x20;
    /// `FLAG_LOST_RETRANS`: RACK found a retransmission lost.
    pub(crate) const LOST_RETRANS: u32 = 0x80;
    /// `FLAG_ORIG_SACK_ACKED`: never-retransmitted data up to `high_seq` was (S)ACKed.
    pub(crate) const ORIG_SACK_ACKED: u32 = 0x200;
    pub(crate) const SND_UNA_ADVANCED: u32 = 0x400;
    pub(crate) const DSACKING_ACK: u32 = 0x800;
    pub(crate) const SLOWPATH: u32 = 0x100;
    pub(crate) const UPDATE_TS_RECENT: u32 = 0x4000;
    pub(crate) const NO_CHALLENGE_ACK: u32 = 0x8000;
    pub(crate) const ACKED: u32 = DATA_ACKED | SYN_ACKED;
    /// `FLAG_FORWARD_PROGRESS`.
    pub(crate) const FORWARD_PROGRESS: u32 = ACKED | DATA_SACKED;
    pub(crate) const NOT_DUP: u32 = DATA | WIN_UPDATE | ACKED;
}

/// `TCP_MAX_QUICKACKS`.
pub(crate) const TCP_MAX_QUICKACKS: u32 = 16;
const TCP_PAWS_WINDOW: i32 = 1;
/// `TCP_TIMEOUT_FALLBACK`: the RTO when the handshake gave no RTT sample.
const TCP_TIMEOUT_FALLBACK: Duration = Duration::from_secs(3);
const TCP_PAWS_24DAYS_SECS: u64 = 60 * 60 * 24 * 24;

impl TcpSock {
    /// `tcp_incr_quickack()`.
    pub(crate) fn tcp_incr_quickack(&mut self, max_quickacks: u32) {
        let mut quickacks = self.rcv_wnd / (2 * self.ack.rcv_mss.max(1));
        if quickacks == 0 {
            quickacks = 2;
        }
        let quickacks = quickacks.min(max_quickacks).min(255) as u8;
        if quickacks > self.ack.quick {
            self.ack.quick = quickacks;
        }
    }

    /// `tcp_enter_quickack_mode()`.
    pub(crate) fn tcp_enter_quickack_mode(&mut self, max_quickacks: u32) {
        self.tcp_incr_quickack(max_quickacks);
        self.ack.pingpong = 0;
        self.ack.ato = super::TCP_ATO_MIN;
    }

    /// `tcp_in_quickack_mode()`.
    pub(crate) fn tcp_in_quickack_mode(&self) -> bool {
        self.ack.quick > 0 && self.ack.pingpong == 0
    }

    /// `inet_csk_schedule_ack()`.
    pub(crate) fn schedule_ack(&mut self) {
        self.ack.pending |= ICSK_ACK_SCHED;
    }

    /// `tcp_store_ts_recent()`.
    fn tcp_store_ts_recent(&mut self, ctx: &Ctx<'_>) {
        self.ts_recent = self.rcv_tsval;
        self.ts_recent_stamp = ctx.now;
    }

    /// `tcp_paws_check()`.
    fn tcp_paws_check(&self, ctx: &Ctx<'_>, paws_win: i32) -> bool {
        if (self.ts_recent.wrapping_sub(self.rcv_tsval) as i32) <= paws_win {
            return true;
        }
        if ctx.now.saturating_since(self.ts_recent_stamp).as_secs() >= TCP_PAWS_24DAYS_SECS {
            return true;
        }
        if self.ts_recent == 0 {
            return true;
        }
        false
    }

    /// `tcp_disordered_ack()`: a pure duplicate ACK whose timestamp lags a little.
    fn tcp_disordered_ack(&self, seg: &Seg) -> bool {
        let seq = seg.seq;
        let ack = seg.ack_seq;
        seg.flags.ack()
            && seq == seg.end_seq
            && seq == self.rcv_nxt
            && ack == self.snd_una
            && !self.tcp_may_update_window(ack, seq, (seg.window as u32) << self.snd_wscale)
            && ((self.ts_recent.wrapping_sub(self.rcv_tsval) as i32) as i64)
                <= (self.rto.as_millis() as i64 * 1024 / 1000)
    }

    /// `tcp_replace_ts_recent()`.
    fn tcp_replace_ts_recent(&mut self, ctx: &Ctx<'_>, seq: SeqNum) {
        if self.saw_tstamp && !seq.after(self.rcv_wup) && self.tcp_paws_check(ctx, 0) {
            self.tcp_store_ts_recent(ctx);
        }
    }

    /// `tcp_may_update_window()`.
    fn tcp_may_update_window(&self, ack: SeqNum, ack_seq: SeqNum, nwin: u32) -> bool {
        ack.after(self.snd_una)
            || ack_seq.after(self.snd_wl1)
            || (ack_seq == self.snd_wl1 && (nwin > self.snd_wnd || nwin == 0))
    }

    /// `__tcp_oow_rate_limited()`: true when an out-of-window ACK must be skipped.
    fn tcp_oow_rate_limited(&mut self, ctx: &Ctx<'_>, seg: &Seg, mib: LinuxMib) -> bool {
        if seg.seq != seg.end_seq && !seg.flags.syn() {
            return false;
        }
        self.oow_rate_limited(ctx, mib)
    }

    fn oow_rate_limited(&mut self, ctx: &Ctx<'_>, mib: LinuxMib) -> bool {
        let limit = Duration::from_millis(ctx.net.sysctl.tcp_invalid_ratelimit.get().max(0) as u64);
        if let Some(last) = self.last_oow_ack_time {
            if ctx.now.saturating_since(last) < limit {
                ctx.inc(mib);
                return true;
            }
        }
        self.last_oow_ack_time = Some(ctx.now);
        false
    }

    /// `tcp_send_challenge_ack()` (RFC 5961): limited per socket (tcp_invalid_ratelimit), then
    /// per namespace (tcp_challenge_ack_limit; INT_MAX, the default, is no limit).
    pub(crate) fn tcp_send_challenge_ack(&mut self, ctx: &mut Ctx<'_>) {
        if self.oow_rate_limited(ctx, LinuxMib::TCPACKSkippedChallenge) {
            return;
        }
        let ack_limit = ctx.net.sysctl.tcp_challenge_ack_limit.get();
        if ack_limit != i32::MAX as i64 && !ctx.net.challenge_ack_budget(ctx.now, ack_limit as u32) {
            return;
        }
        ctx.inc(LinuxMib::TCPChallengeACK);
        self.tcp_send_ack(ctx);
    }

    /// `tcp_dsack_set()`.
    pub(crate) fn tcp_dsack_set(&mut self, ctx: &Ctx<'_>, seq: SeqNum, end_seq: SeqNum) {
        if self.sack_ok && ctx.net.sysctl.tcp_dsack.get() != 0 {
            if seq.before(self.rcv_nxt) {
                ctx.inc(LinuxMib::TCPDSACKOldSent);
            } else {
                ctx.inc(LinuxMib::TCPDSACKOfoSent);
            }
            self.dsack = Some((seq, end_seq));
            self.dsack_start = Some(seq);
        }
    }

    /// `tcp_rcv_spurious_retrans()`: data already received arrives again, starting where the
    /// last DSACK did (the peer retransmitted it a second time, so our ACKs may be taking a
    /// broken path): re-draw the flow hash.
    pub(crate) fn tcp_rcv_spurious_retrans(&mut self, ctx: &Ctx<'_>, seq: SeqNum) {
        if self.dsack_start == Some(seq) && self.sk_rethink_txhash(ctx) {
            ctx.inc(LinuxMib::TcpDuplicateDataRehash);
        }
    }

    /// `sk_rethink_txhash()`: with SO_TXREHASH on (default `net.core.txrehash` = 1), a
    /// socket that has a flow hash draws a new one (`sk_set_txhash`), so an IPv6 connection
    /// changes its flow label and may take another path. True when it did.
    pub(crate) fn sk_rethink_txhash(&mut self, ctx: &Ctx<'_>) -> bool {
        if self.txhash != 0 && self.txrehash == super::SOCK_TXREHASH_ENABLED {
            self.txhash = ctx.net.net_tx_rndhash();
            return true;
        }
        false
    }

    /// `tcp_dsack_extend()`.
    pub(crate) fn tcp_dsack_extend(&mut self, ctx: &Ctx<'_>, seq: SeqNum, end_seq: SeqNum) {
        match self.dsack {
            None => self.tcp_dsack_set(ctx, seq, end_seq),
            Some((s, e)) => {
                if !seq.after(e) && !end_seq.before(s) {
                    self.dsack = Some((s.min(seq), e.max(end_seq)));
                }
            }
        }
    }

    /// `tcp_send_dupack()`.
    fn tcp_send_dupack(&mut self, ctx: &mut Ctx<'_>, seg: &Seg) {
        if seg.end_seq != seg.seq && seg.seq.before(self.rcv_nxt) {
            ctx.inc(LinuxMib::DelayedACKLost);
            self.tcp_enter_quickack_mode(TCP_MAX_QUICKACKS);
            if self.sack_ok && ctx.net.sysctl.tcp_dsack.get() != 0 {
                self.tcp_rcv_spurious_retrans(ctx, seg.seq);
                let end = if seg.end_seq.after(self.rcv_nxt) { self.rcv_nxt } else { seg.end_seq };
                self.tcp_dsack_set(ctx, seg.seq, end);
            }
        }
        self.tcp_send_ack(ctx);
    }

    /// `tcp_sequence()`: `None` when acceptable.
    fn tcp_sequence(&self, seq: SeqNum, end_seq: SeqNum, fin: bool) -> Option<DropReason> {
        let wnd_end = self.rcv_nxt + self.receive_window();
        if end_seq.before(self.rcv_wup) {
            return Some(DropReason::TCP_OLD_DATA);
        }
        if end_seq.after(wnd_end) {
            // A FIN may sit just beyond the window (a bare FIN on a zero window is accepted
            // and merged into the queue tail later; tcp_rcv_zero_wnd_fin.pkt).
            if !(end_seq - fin as u32).after(wnd_end) {
                return None;
            }
            if seq.after(wnd_end) {
                return Some(DropReason::TCP_INVALID_SEQUENCE);
            }
            if !self.receive_queue.is_empty() {
                return Some(DropReason::TCP_INVALID_END_SEQUENCE);
            }
        }
        None
    }

    fn tcp_reset_check(&self, seg: &Seg) -> bool {
        seg.seq == self.rcv_nxt - 1 && matches!(self.state, TcpState::CloseWait | TcpState::LastAck | TcpState::Closing)
    }

    /// Notes the timestamp option of `seg` (`tcp_fast_parse_options`).
    fn parse_ts(&mut self, seg: &Seg) {
        match seg.ts {
            Some((val, ecr)) if self.tstamp_ok => {
                self.saw_tstamp = true;
                self.rcv_tsval = val;
                self.rcv_tsecr = ecr.wrapping_sub(self.tsoffset);
            }
            _ => self.saw_tstamp = false,
        }
    }

    /// `tcp_validate_incoming()`: PAWS, sequence check, RST and SYN per RFC 5961. Returns
    /// false when the segment was consumed (dropped, reset processed or challenged).
    fn tcp_validate_incoming(&mut self, ctx: &mut Ctx<'_>, seg: &Seg, syn_inerr: bool) -> bool {
        if self.saw_tstamp
            && !self.tcp_paws_check(ctx, TCP_PAWS_WINDOW)
            && !self.tcp_disordered_ack(seg)
            && !seg.flags.rst()
        {
            if seg.flags.syn() {
                return self.syn_challenge(ctx, syn_inerr);
            }
            ctx.inc(LinuxMib::PAWSEstab);
            if !self.tcp_oow_rate_limited(ctx, seg, LinuxMib::TCPACKSkippedPAWS) {
                self.tcp_send_dupack(ctx, seg);
            }
            ctx.net.mib.drop_reason(DropReason::TCP_RFC7323_PAWS);
            return false;
        }
        if let Some(reason) = self.tcp_sequence(seg.seq, seg.end_seq, seg.flags.fin()) {
            if !seg.flags.rst() {
                if seg.flags.syn() {
                    return self.syn_challenge(ctx, syn_inerr);
                }
                ctx.net.mib.drop_reason(reason);
                if !self.tcp_oow_rate_limited(ctx, seg, LinuxMib::TCPACKSkippedSeq) {
                    self.tcp_send_dupack(ctx, seg);
                }
            } else if self.tcp_reset_check(seg) {
                self.tcp_reset(ctx);
            } else {
                ctx.net.mib.drop_reason(reason);
            }
            return false;
        }
        if seg.flags.rst() {
            let mut ok = seg.seq == self.rcv_nxt || self.tcp_reset_check(seg);
            if !ok && self.sack_ok && !self.selective_acks.is_empty() {
                let max_sack = self.selective_acks.iter().map(|b| b.1).fold(self.selective_acks[0].1, |a, b| a.max(b));
                ok = seg.seq == max_sack;
            }
            if ok {
                self.tcp_reset(ctx);
            } else {
                self.tcp_send_challenge_ack(ctx);
                ctx.net.mib.drop_reason(DropReason::TCP_RESET);
            }
            return false;
        }
        if seg.flags.syn() {
            if self.state == TcpState::SynRecv
                && seg.flags.ack()
                && seg.seq + 1 == seg.end_seq
                && seg.seq + 1 == self.rcv_nxt
                && seg.ack_seq == self.snd_nxt
            {
                return true;
            }
            return self.syn_challenge(ctx, syn_inerr);
        }
        true
    }

    fn syn_challenge(&mut self, ctx: &mut Ctx<'_>, syn_inerr: bool) -> bool {
        if syn_inerr {
            ctx.tcp_inc(TcpMib::InErrs);
        }
        ctx.inc(LinuxMib::TCPSYNChallenge);
        self.tcp_send_challenge_ack(ctx);
        ctx.net.mib.drop_reason(DropReason::TCP_INVALID_SYN);
        false
    }

    /// `tcp_reset()`: the peer reset the connection.
    pub(crate) fn tcp_reset(&mut self, ctx: &mut Ctx<'_>) {
        let err = match self.state {
            TcpState::SynSent => Errno::ECONNREFUSED,
            TcpState::CloseWait => Errno::EPIPE,
            TcpState::Close => return,
            _ => Errno::ECONNRESET,
        };
        self.err = Some(err);
        self.write_queue.clear();
        self.tx_csum.clear();
        self.rtx_queue.clear();
        self.tcp_zerocopy_purge(ctx);
        self.tcp_done(ctx);
    }

    /// `tcp_fin()`: the peer's FIN is in order.
    pub(crate) fn tcp_fin(&mut self, ctx: &mut Ctx<'_>) {
        self.schedule_ack();
        self.shutdown |= super::RCV_SHUTDOWN;
        self.done = true;
        match self.state {
            TcpState::SynRecv | TcpState::Established => {
                self.set_state(ctx, TcpState::CloseWait);
                self.ack.pingpong = self.ack.pingpong.max(1);
            }
            TcpState::CloseWait | TcpState::Closing | TcpState::LastAck => {}
            TcpState::FinWait1 => {
                self.tcp_send_ack(ctx);
                self.set_state(ctx, TcpState::Closing);
            }
            TcpState::FinWait2 => {
                self.tcp_send_ack(ctx);
                self.tcp_time_wait(ctx, TcpState::TimeWait, Duration::ZERO);
            }
            TcpState::Listen | TcpState::SynSent | TcpState::TimeWait | TcpState::Close => {}
        }
        self.ofo_queue.clear();
        self.recount_rmem();
        // tcp_sack_reset(): forgets the SACK blocks and a pending D-SACK.
        self.selective_acks.clear();
        self.dsack = None;
        ctx.ev.state_change = true;
        ctx.ev.data_ready = true;
    }

    /// Recomputes `sk_rmem_alloc` after a queue was purged.
    pub(crate) fn recount_rmem(&mut self) {
        self.rmem_alloc = self.receive_queue.iter().map(|s| s.truesize).sum::<u32>() + self.ofo_queue.truesize();
        self.sk_mem_reclaim();
    }

    /// `tcp_rcv_established()`: input for an established connection.
    pub(crate) fn tcp_rcv_established(&mut self, ctx: &mut Ctx<'_>, seg: Seg) {
        self.parse_ts(&seg);
        // Header prediction: in-order, pure data or pure ACK, no surprises.
        if let Some(seg) = self.tcp_rcv_established_fast(ctx, seg) {
            self.tcp_rcv_established_slow(ctx, seg);
        }
    }

    fn tcp_rcv_established_fast(&mut self, ctx: &mut Ctx<'_>, seg: Seg) -> Option<Seg> {
        let plain = seg.flags.0 & !(TcpFlags::PSH.0) == TcpFlags::ACK.0;
        // pred_flags also fix the header length: options beyond timestamps (SACK blocks...)
        // take the slow path.
        if !plain
            || seg.rx.thlen != self.tcp_header_len
            || seg.seq != self.rcv_nxt
            || seg.ack_seq.after(self.snd_nxt)
            || (seg.window as u32) << self.snd_wscale != self.snd_wnd
            || self.urg_data != 0
            || !self.ofo_queue.is_empty()
            || self.receive_window() == 0
            || (self.saw_tstamp && (self.rcv_tsval.wrapping_sub(self.ts_recent) as i32) < 0)
            || self.ca_state != CaState::Open && seg.is_empty()
        {
            return Some(seg);
        }
        if seg.is_empty() {
            if !seg.ack_seq.after(self.snd_una) && seg.ack_seq != self.snd_una {
                return Some(seg);
            }
            // "Bulk data transfer: sender": a predicted pure ACK.
            if self.saw_tstamp && self.rcv_nxt == self.rcv_wup {
                self.tcp_store_ts_recent(ctx);
            }
            self.tcp_ack(ctx, &seg, 0);
            self.tcp_data_snd_check(ctx);
            return None;
        }
        // Data fast path: tcp_rcv_established() "Bulk data transfer: receiver". A segment
        // whose truesize the forward allocation does not cover takes the slow path ("goto
        // step5"), where its ACK is checked before its data is queued. There is no sk_rcvbuf
        // check here: while the forward allocation covers them, segments are queued beyond
        // sk_rcvbuf and the next slow-path one prunes (6.18.44, mem_rcvq_collapse.pkt).
        if seg.len() > self.receive_window() || seg.truesize as i64 > self.sk_forward_alloc() {
            return Some(seg);
        }
        // Predicted, so in window with seq == rcv_nxt: "seq <= rcv_wup" (RFC 7323 §4.3) is
        // rcv_nxt == rcv_wup. With an ACK held back, the echo stays the TSval of the first
        // segment it will cover, so the sender's sample spans the delay.
        if self.saw_tstamp && self.rcv_nxt == self.rcv_wup {
            self.tcp_store_ts_recent(ctx);
        }
        ctx.inc(LinuxMib::TCPHPHits);
        self.tcp_rcv_rtt_measure_ts(ctx, seg.len());
        let mut seg = seg;
        // Taken before queueing: tcp_queue_rcv() moves a GRO packet's parts into the skb.
        let len = seg.len();
        let eaten = self.tcp_direct_copy(ctx, &mut seg);
        if !eaten {
            self.tcp_queue_rcv(ctx, &mut seg);
        }
        self.tcp_event_data_recv(ctx, len, seg.truesize, seg.rx, seg.flags);
        if seg.ack_seq != self.snd_una {
            self.tcp_ack(ctx, &seg, flag::DATA);
            self.tcp_data_snd_check(ctx);
            if self.ack.pending & ICSK_ACK_SCHED == 0 {
                return None;
            }
        }
        self.__tcp_ack_snd_check(ctx, false);
        if !eaten {
            ctx.ev.data_ready = true;
        }
        ctx.ev.new_data = true;
        None
    }

    fn tcp_rcv_established_slow(&mut self, ctx: &mut Ctx<'_>, seg: Seg) {
        if !seg.flags.ack() && !seg.flags.rst() && !seg.flags.syn() {
            ctx.net.mib.drop_reason(DropReason::TCP_FLAGS);
            return;
        }
        if !self.tcp_validate_incoming(ctx, &seg, true) {
            return;
        }
        if self.tcp_ack(ctx, &seg, flag::SLOWPATH | flag::UPDATE_TS_RECENT) < 0 {
            return;
        }
        self.tcp_rcv_rtt_measure_ts(ctx, seg.len());
        self.tcp_urg(ctx, &seg);
        self.tcp_data_queue(ctx, seg);
        self.tcp_data_snd_check(ctx);
        self.tcp_ack_snd_check(ctx);
    }

    /// `tcp_data_snd_check()`: send what the ACK allowed.
    pub(crate) fn tcp_data_snd_check(&mut self, ctx: &mut Ctx<'_>) {
        if !self.write_queue.is_empty() {
            self.tcp_push_pending_frames(ctx);
        }
        self.tcp_check_space(ctx);
    }

    /// `tcp_check_space()`: wake writers when the send buffer drained enough.
    /// Only a socket whose writer or poller ran out of space (`SOCK_NOSPACE`) hears of the
    /// space an ACK freed: readers sleeping on the same wait queue are not woken otherwise.
    fn tcp_check_space(&mut self, ctx: &mut Ctx<'_>) {
        if self.nospace.load(core::sync::atomic::Ordering::SeqCst) {
            self.tcp_new_space(ctx);
        }
    }

    /// `tcp_new_space()`: grow the send buffer with the congestion window, then
    /// `sk_write_space`.
    fn tcp_new_space(&mut self, ctx: &mut Ctx<'_>) {
        if self.tcp_should_expand_sndbuf() {
            self.tcp_sndbuf_expand(ctx.net);
        }
        self.sk_stream_write_space(ctx);
    }

    /// `tcp_ack_snd_check()`.
    pub(crate) fn tcp_ack_snd_check(&mut self, ctx: &mut Ctx<'_>) {
        if self.ack.pending & ICSK_ACK_SCHED == 0 {
            return;
        }
        self.__tcp_ack_snd_check(ctx, true);
    }

    /// `__tcp_ack_snd_check()`: ACK now, or arm the delayed ACK.
    pub(crate) fn __tcp_ack_snd_check(&mut self, ctx: &mut Ctx<'_>, ofo_possible: bool) {
        // More than one full frame received, and either SO_RCVLOWAT is not met yet or the
        // right edge of the window advances far enough (__tcp_select_window() also clears
        // icsk_ack.quick when space is short).
        let full_frame = self.rcv_nxt.diff(self.rcv_wup) > self.ack.rcv_mss
            && ((self.rcv_nxt.diff(self.copied_seq) as i64) < self.rcvlowat as i64 || {
                let w = self.__tcp_select_window(ctx);
                w >= self.rcv_wnd
            });
        if full_frame || self.tcp_in_quickack_mode() || self.ack.pending & ICSK_ACK_NOW != 0 {
            self.tcp_send_ack(ctx);
            return;
        }
        if !ofo_possible || self.ofo_queue.is_empty() {
            self.tcp_send_delayed_ack(ctx);
            return;
        }
        // Out-of-order data: SACK compression after the first dupthresh ACKs.
        if !self.sack_ok || self.compressed_ack >= ctx.net.sysctl.tcp_comp_sack_nr.get() as u32 {
            self.tcp_send_ack(ctx);
            return;
        }
        if self.compressed_ack_rcv_nxt != self.rcv_nxt {
            self.compressed_ack_rcv_nxt = self.rcv_nxt;
            self.dup_ack_counter = 0;
        }
        if self.dup_ack_counter < 3 {
            self.dup_ack_counter += 1;
            self.tcp_send_ack(ctx);
            return;
        }
        self.compressed_ack += 1;
        if self.timers.get(TcpTimer::CompressedAck).is_some() {
            return;
        }
        let rtt = Duration::from_micros(((self.rcv_rtt_est.rtt_us >> 3) as u64).max(1) / 20);
        let delay = rtt.min(Duration::from_nanos(ctx.net.sysctl.tcp_comp_sack_delay_ns.get().max(0) as u64));
        // hrtimer_start_range_ns(delay, tcp_comp_sack_slack_ns): the hardware timer is set for
        // the end of the range, where an idle host fires it (checked on 6.18 with a 50 ms slack).
        let slack = Duration::from_nanos(ctx.net.sysctl.tcp_comp_sack_slack_ns.get().max(0) as u64);
        self.reset_timer(TcpTimer::CompressedAck, ctx.now + delay + slack);
    }

    /// `tcp_event_data_recv()`: bookkeeping for received data (ACK pacing, window growth).
    pub(crate) fn tcp_event_data_recv(
        &mut self,
        ctx: &mut Ctx<'_>,
        len: u32,
        truesize: u32,
        rx: RxMeta,
        flags: TcpFlags,
    ) {
        self.schedule_ack();
        self.tcp_measure_rcv_mss(len, truesize, rx, flags);
        self.tcp_rcv_rtt_measure(ctx);
        let now = ctx.now;
        if self.ack.ato.is_zero() {
            self.tcp_incr_quickack(TCP_MAX_QUICKACKS);
            self.ack.ato = super::TCP_ATO_MIN;
        } else {
            let m = now.saturating_since(self.ack.lrcvtime);
            if m <= super::TCP_ATO_MIN / 2 {
                self.ack.ato = self.ack.ato / 2 + super::TCP_ATO_MIN / 2;
            } else if m < self.ack.ato {
                self.ack.ato = (self.ack.ato / 2 + m).min(self.rto);
            } else if m > self.rto {
                self.tcp_incr_quickack(TCP_MAX_QUICKACKS);
            }
        }
        self.ack.lrcvtime = now;
        self.last_data_recv = now;
        if len >= 128 {
            self.tcp_grow_window(ctx, truesize, len);
        }
    }

    /// `tcp_urg()`: processes the urgent pointer of `seg`.
    pub(crate) fn tcp_urg(&mut self, ctx: &mut Ctx<'_>, seg: &Seg) {
        if seg.flags.urg() {
            self.tcp_check_urg(ctx, seg);
        }
        if self.urg_data == super::TCP_URG_NOTYET {
            let ptr = self.urg_seq.0.wrapping_sub(seg.seq.0).wrapping_sub(seg.flags.syn() as u32);
            if ptr < seg.len() {
                let b = seg.byte_at(ptr as usize);
                self.urg_data = super::TCP_URG_VALID | b as u16;
                ctx.ev.data_ready = true;
            }
        }
    }

    /// `tcp_ack()`. Returns < 0 when the segment must be dropped (ACK of unsent data, or too
    /// old), 0 for an old ACK, 1 otherwise.
    pub(crate) fn tcp_ack(&mut self, ctx: &mut Ctx<'_>, seg: &Seg, mut fl: u32) -> i32 {
        let prior_snd_una = self.snd_una;
        let prior_fack = if self.sack_ok { self.tcp_highest_sack_seq() } else { self.snd_una };
        let prior_delivered = self.delivered;
        let prior_lost = self.rate.lost;
        let ack = seg.ack_seq;
        if ack.before(prior_snd_una) {
            // Do not accept an ACK for bytes we never sent.
            let max_window = (self.max_window as u64).min(self.bytes_acked) as u32;
            if ack.before(prior_snd_una - max_window) {
                if fl & flag::NO_CHALLENGE_ACK == 0 {
                    self.tcp_send_challenge_ack(ctx);
                }
                ctx.net.mib.drop_reason(DropReason::TCP_TOO_OLD_ACK);
                return -1;
            }
            // Old ACK: still learn from its SACK blocks.
            if !seg.sack.is_empty() {
                self.tcp_sacktag_write_queue(ctx, seg, prior_snd_una, &mut SackRtt::default());
            }
            return 0;
        }
        if ack.after(self.snd_nxt) {
            // RFC 793 3.9 and RFC 5961 5.2: answer an ACK of unsent data with a (rate-limited)
            // challenge ACK, then drop the segment.
            if fl & flag::NO_CHALLENGE_ACK == 0 {
                self.tcp_send_challenge_ack(ctx);
            }
            ctx.net.mib.drop_reason(DropReason::TCP_ACK_UNSENT_DATA);
            return -2;
        }
        if ack.after(prior_snd_una) {
            fl |= flag::SND_UNA_ADVANCED;
            self.retransmits = 0;
        }
        if fl & flag::UPDATE_TS_RECENT != 0 {
            self.tcp_replace_ts_recent(ctx, seg.seq);
        }
        // One ACK is either a header-predicted forward advance (TCPHPAcks) or, when it is
        // not, a pure ACK (TCPPureAcks) or data.
        if fl & flag::SLOWPATH == 0 && ack.after(prior_snd_una) {
            ctx.inc(LinuxMib::TCPHPAcks);
        } else if seg.seq != seg.end_seq {
            fl |= flag::DATA;
        } else {
            ctx.inc(LinuxMib::TCPPureAcks);
        }
        fl |= self.tcp_ack_update_window(ctx, seg);
        let mut sack_rtt = SackRtt::default();
        sack_rtt.rate.prior_in_flight = self.packets_in_flight();
        if !seg.sack.is_empty() {
            fl |= self.tcp_sacktag_write_queue(ctx, seg, prior_snd_una, &mut sack_rtt);
        }
        self.err_soft = None;
        self.probes_out = 0;
        self.rcv_tstamp = ctx.now;
        let prior_packets = self.packets_out;
        if prior_packets == 0 {
            // tcp_ack_probe(): an ACK that opens a zero window ends probing.
            if !self.write_queue.is_empty() {
                // The head's end_seq, FIN included: a window that takes the data but not
                // the FIN is still closed for it.
                let head_end = self.write_queue.front().map(|s| s.end_seq).unwrap_or(self.snd_nxt);
                if !head_end.after(self.snd_una + self.snd_wnd) {
                    self.backoff = 0;
                    self.clear_timer(TcpTimer::Probe0);
                } else {
                    // Still no usable window: the next probe is timed from this answer.
                    let when = self.tcp_probe0_when(self.ext().rto_max);
                    self.reset_timer(TcpTimer::Probe0, ctx.now + when);
                }
            }
            return 1;
        }
        self.tcp_clean_rtx_queue(ctx, &mut fl, prior_snd_una, prior_fack, &mut sack_rtt);
        self.tcp_zerocopy_acked(ctx);
        let is_dupack = fl & flag::NOT_DUP == 0 && ack == prior_snd_una && self.packets_out > 0;
        if self.tlp_high_seq.is_some_and(|h| !ack.before(h)) {
            self.tlp_high_seq = None;
        }
        self.tcp_rack_update_reo_wnd(ctx, prior_delivered);
        let prior_retrans = self.retrans_out;
        self.tcp_rack_mark_lost(ctx);
        if self.retrans_out < prior_retrans {
            fl |= flag::LOST_RETRANS;
        }
        let mut rexmit = Rexmit::Lost;
        if self.ca_state != CaState::Open
            || is_dupack
            || fl & flag::DATA_SACKED != 0
            || self.sacked_out > 0
            || self.lost_out > 0
        {
            // Pure ACKs the backlog coalesced count once each (`gso_segs`).
            let num_dupack = match is_dupack && fl & flag::DSACKING_ACK == 0 {
                false => 0,
                true if fl & flag::DATA == 0 => seg.rx.segs.max(1),
                true => 1,
            };
            rexmit = self.tcp_fastretrans_alert(ctx, prior_snd_una, num_dupack, fl);
        }
        let delivered = self.delivered.wrapping_sub(prior_delivered);
        let mut rs = sack_rtt.rate;
        self.tcp_rate_gen(ctx.now, delivered, self.rate.lost.wrapping_sub(prior_lost), false, &mut rs);
        self.tcp_cong_control(ctx, delivered, fl, &rs);
        self.tcp_xmit_recovery(ctx, rexmit);
        self.tcp_schedule_loss_probe(ctx);
        1
    }

    /// `tcp_ack_update_window()`.
    fn tcp_ack_update_window(&mut self, ctx: &mut Ctx<'_>, seg: &Seg) -> u32 {
        let mut fl = 0;
        let mut nwin = seg.window as u32;
        if !seg.flags.syn() {
            nwin <<= self.snd_wscale;
        }
        if self.tcp_may_update_window(seg.ack_seq, seg.seq, nwin) {
            fl |= flag::WIN_UPDATE;
            self.snd_wl1 = seg.seq;
            if self.snd_wnd != nwin {
                self.snd_wnd = nwin;
                if nwin > self.max_window {
                    self.max_window = nwin;
                    let mtu = self.path_mtu(ctx.net.mtu());
                    let min = ctx.net.sysctl.tcp_min_snd_mss.get() as u32;
                    self.tcp_sync_mss(mtu, min);
                }
            }
        }
        if seg.ack_seq.after(self.snd_una) {
            let prior_snd_una = self.snd_una;
            self.bytes_acked += seg.ack_seq.diff(self.snd_una) as u64;
            self.snd_una = seg.ack_seq;
            // tcp_clean_rtx_queue(): outside urgent mode snd_up follows snd_una, so that
            // `tcp_urg_mode()` stays false however far the stream goes (a fixed snd_up looked
            // "after" snd_una once 2^31 bytes had been sent and marked every segment URG).
            if self.snd_up.between(prior_snd_una, self.snd_una) {
                self.snd_up = self.snd_una;
            }
        }
        fl
    }

    /// `tcp_sacktag_write_queue()`: marks segments covered by SACK blocks.
    fn tcp_sacktag_write_queue(
        &mut self,
        ctx: &mut Ctx<'_>,
        seg: &Seg,
        prior_snd_una: SeqNum,
        rtt: &mut SackRtt,
    ) -> u32 {
        let mut fl = 0;
        let mut newest: Option<(crate::time::Instant, u64, bool)> = None;
        let high_seq = self.high_seq;
        // `state->reord`: the lowest never-retransmitted segment newly SACKed below the
        // highest SACKed one.
        let mut reord = self.snd_nxt;
        let blocks = seg.sack.as_slice();
        for (i, &(start, end)) in blocks.iter().enumerate() {
            // DSACK: first block below the cumulative ACK, or inside the second block.
            // `tcp_check_dsack()` counts by which test matched: TCPDSACKRecv for a block below
            // this ACK's cumulative point, TCPDSACKOfoRecv for one inside the second block.
            let below_ack = i == 0 && start.before(seg.ack_seq);
            let is_dsack =
                below_ack || (i == 0 && blocks.len() > 1 && !start.before(blocks[1].0) && !end.after(blocks[1].1));
            if is_dsack {
                ctx.inc(if below_ack { LinuxMib::TCPDSACKRecv } else { LinuxMib::TCPDSACKOfoRecv });
                let first = self.rtx_queue.partition_point(|k| !k.end_seq.after(start));
                let mut retransmitted = 0;
                let mut dsack_reord = reord;
                for k in self.rtx_queue.range(first..).take_while(|k| k.seq.before(end)) {
                    if k.retrans == 0 || k.seq.before(start) || k.end_seq.after(end) {
                        continue;
                    }
                    retransmitted += 1;
                    // tcp_sacktag_one() with dup_sack: a retransmitted segment already SACKed
                    // arrived twice, so its original was not lost but late: reordering from it.
                    if k.sacked & TCPCB_SACKED_ACKED != 0 && k.seq.before(dsack_reord) {
                        dsack_reord = k.seq;
                    }
                }
                if self.tcp_dsack_seen(ctx, start, end, prior_snd_una, retransmitted) {
                    fl |= flag::DSACKING_ACK;
                    reord = dsack_reord;
                }
                continue;
            }
            if !end.after(start) || end.after(self.snd_nxt) || !end.after(prior_snd_una) {
                ctx.inc(LinuxMib::TCPSACKDiscard);
                continue;
            }
            // The retransmit queue is in sequence order: find the block's first segment by
            // binary search and stop past its end (O(log n + covered) per block, as Linux's
            // rb-tree walk `tcp_sacktag_bsearch`).
            let first = self.rtx_queue.partition_point(|k| !k.end_seq.after(start));
            for skb in self.rtx_queue.range_mut(first..) {
                if !skb.seq.before(end) {
                    break;
                }
                if skb.sacked & TCPCB_SACKED_ACKED != 0 {
                    continue;
                }
                if !skb.seq.before(start) && !skb.end_seq.after(end) {
                    // tcp_highest_sack_seq() before this segment is counted.
                    let fack = if self.sacked_out == 0 { self.snd_una } else { self.highest_sack };
                    if skb.sacked & TCPCB_SACKED_RETRANS != 0 {
                        skb.sacked &= !TCPCB_SACKED_RETRANS;
                        self.retrans_out = self.retrans_out.saturating_sub(1);
                    }
                    if skb.sacked & TCPCB_LOST != 0 {
                        skb.sacked &= !TCPCB_LOST;
                        self.lost_out = self.lost_out.saturating_sub(1);
                    }
                    skb.sacked |= TCPCB_SACKED_ACKED;
                    self.rate.tcp_rate_skb_delivered(skb, &mut rtt.rate);
                    if skb.retrans == 0 {
                        if skb.seq.before(fack) && skb.seq.before(reord) {
                            reord = skb.seq;
                        }
                        if !skb.end_seq.after(high_seq) {
                            fl |= flag::ORIG_SACK_ACKED;
                        }
                        rtt.sacked(skb.seq, skb.tx_time);
                    }
                    if newest.is_none_or(|(t, o, _)| super::rack::tcp_skb_sent_after(skb.tx_time, t, skb.tx_order, o)) {
                        newest = Some((skb.tx_time, skb.tx_order, skb.retrans > 0));
                    }
                    self.sacked_out += 1;
                    self.delivered += 1;
                    fl |= flag::DATA_SACKED;
                    // tcp_advance_highest_sack(), from snd_una when nothing was SACKed
                    // (the previous value may be anywhere in sequence space by then).
                    if skb.end_seq.after(fack) {
                        self.highest_sack = skb.end_seq;
                    } else {
                        self.highest_sack = fack;
                    }
                }
            }
        }
        if let Some((t, o, r)) = newest {
            self.tcp_rack_advance(ctx, t, o, r);
        }
        if self.ca_state != CaState::Loss || self.undo_marker.is_some() {
            self.tcp_check_sack_reordering(ctx, reord, false);
        }
        fl
    }

    /// `tcp_clean_rtx_queue()`: drops acknowledged segments, samples RTT. Returns packets acked.
    fn tcp_clean_rtx_queue(
        &mut self,
        ctx: &mut Ctx<'_>,
        fl: &mut u32,
        prior_snd_una: SeqNum,
        prior_fack: SeqNum,
        sack: &mut SackRtt,
    ) -> u32 {
        let mut acked = 0;
        // The lowest never-retransmitted, never-SACKed segment this ACK covers: below what
        // was SACKed before, its hole was filled by the original (reordering).
        let mut reord = self.snd_nxt;
        // Send times of the oldest and the newest never-retransmitted segment this ACK
        // acknowledged cumulatively that had not been SACKed (`first_ackt`, `last_ackt`).
        let (mut first_ackt, mut last_ackt) = (None, None);
        let (prior_sacked, mut last_in_flight) = (self.sacked_out, 0);
        while let Some(skb) = self.rtx_queue.front() {
            if skb.end_seq.after(self.snd_una) {
                break;
            }
            let mut skb = self.rtx_queue.pop_front().expect("head");
            if skb.sacked & TCPCB_SACKED_ACKED == 0 {
                self.tcp_rack_advance(ctx, skb.tx_time, skb.tx_order, skb.retrans > 0);
            }
            self.rate.tcp_rate_skb_delivered(&mut skb, &mut sack.rate);
            if skb.sacked & TCPCB_SACKED_RETRANS != 0 {
                self.retrans_out = self.retrans_out.saturating_sub(1);
            }
            if skb.sacked & TCPCB_SACKED_ACKED != 0 {
                self.sacked_out = self.sacked_out.saturating_sub(1);
            } else {
                self.delivered += 1;
            }
            if skb.sacked & TCPCB_LOST != 0 {
                self.lost_out = self.lost_out.saturating_sub(1);
            }
            if skb.retrans > 0 {
                *fl |= flag::RETRANS_DATA_ACKED;
            } else if skb.sacked & TCPCB_SACKED_ACKED == 0 {
                first_ackt.get_or_insert(skb.tx_time);
                last_ackt = Some(skb.tx_time);
                last_in_flight = skb.tx.in_flight;
                if skb.seq.before(reord) {
                    reord = skb.seq;
                }
                if !skb.end_seq.after(self.high_seq) {
                    *fl |= flag::ORIG_SACK_ACKED;
                }
            }
            if skb.flags.syn() {
                *fl |= flag::SYN_ACKED;
            } else {
                *fl |= flag::DATA_ACKED;
            }
            self.tcp_ack_tstamp(ctx, &skb, prior_snd_una);
            self.wmem_queued = self.wmem_queued.saturating_sub(skb.len() + super::TX_SKB_OVERHEAD);
            self.packets_out = self.packets_out.saturating_sub(1);
            acked += 1;
        }
        // sk_wmem_free_skb() uncharged each acked buffer.
        self.sk_mem_reclaim();
        let alert = *fl & (flag::DATA_SACKED | flag::SYN_ACKED) != 0;
        self.tcp_rate_ack_maybe_delayed(acked, last_in_flight, prior_sacked, alert, &mut sack.rate);
        self.tcp_ack_update_rtt(ctx, *fl, first_ackt, last_ackt, sack);
        if *fl & flag::ACKED != 0 && self.tcp_is_reno() {
            self.tcp_remove_reno_sacks(acked);
            // A cumulative ACK that covers a retransmission cannot show, without SACK, that
            // the originals of the rest arrived.
            if *fl & flag::RETRANS_DATA_ACKED != 0 {
                *fl &= !flag::ORIG_SACK_ACKED;
            }
        } else if *fl & flag::ACKED != 0 && reord.before(prior_fack) {
            // A never-retransmitted hole got filled: reordering.
            self.tcp_check_sack_reordering(ctx, reord, false);
        }
        if *fl & flag::ACKED != 0 {
            self.retrans_stamp = if self.retrans_out > 0 { self.retrans_stamp } else { None };
            self.tcp_rearm_rto(ctx);
        }
        acked
    }

    /// `tcp_fastretrans_alert()` (condensed): duplicate-ACK and SACK driven loss detection,
    /// entering fast recovery and leaving it, the Loss state after an RTO (`tcp_process_loss`).
    /// Returns what `tcp_xmit_recovery()` sends.
    fn tcp_fastretrans_alert(&mut self, ctx: &mut Ctx<'_>, prior_snd_una: SeqNum, num_dupack: u32, fl: u32) -> Rexmit {
        let is_dupack = num_dupack > 0;
        // Leaving recovery once everything sent before it is acknowledged.
        match self.ca_state {
            CaState::Recovery => {
                if !self.snd_una.before(self.high_seq) {
                    let undone = {
                        let before = self.undo_marker.is_some();
                        self.tcp_try_undo_recovery(ctx);
                        before && self.undo_marker.is_none()
                    };
                    if !undone {
                        self.tcp_end_cwnd_reduction();
                    }
                    self.ca_state = CaState::Open;
                    self.dupacks = 0;
                    return Rexmit::Lost;
                }
                if self.snd_una.after(prior_snd_una) {
                    if self.tcp_try_undo_partial(ctx, prior_snd_una) {
                        return Rexmit::Lost;
                    }
                    if self.ca_state == CaState::Recovery && !self.sack_ok {
                        // NewReno partial ACK: the next hole is lost too.
                        if let Some(h) = self.rtx_queue.front_mut() {
                            if h.sacked & TCPCB_LOST == 0 {
                                h.sacked |= TCPCB_LOST;
                                self.lost_out += 1;
                                self.rate.lost += 1;
                            }
                        }
                    }
                }
                if self.ca_state == CaState::Recovery && self.tcp_try_undo_dsack(ctx) {
                    // tcp_try_to_open()
                    self.ca_state = if self.sacked_out > 0 { CaState::Disorder } else { CaState::Open };
                }
                if self.ca_state == CaState::Recovery {
                    self.tcp_mark_lost_by_sack(ctx);
                    return Rexmit::Lost;
                }
                // Undone: a new recovery starts below only if loss is still evident.
            }
            CaState::Loss => {
                let rexmit = self.tcp_process_loss(ctx, fl, num_dupack);
                self.tcp_mark_lost_by_sack(ctx);
                // Out of Loss (undone or recovered), or RACK found a retransmission lost:
                // the state is decided again below.
                if self.ca_state != CaState::Open && fl & flag::LOST_RETRANS == 0 {
                    return rexmit;
                }
                if self.tcp_is_reno() && fl & flag::SND_UNA_ADVANCED != 0 {
                    self.tcp_reset_reno_sack();
                }
                if self.ca_state == CaState::Open {
                    self.tcp_try_undo_dsack(ctx);
                }
            }
            CaState::Open | CaState::Disorder => {
                self.tcp_try_undo_dsack(ctx);
            }
            CaState::Cwr => {}
        }
        if is_dupack {
            self.dupacks += 1;
        } else if self.snd_una.after(prior_snd_una) {
            self.dupacks = 0;
        }
        let reord = self.reordering.max(3);
        // tcp_time_to_recover(): with RACK (tcp_recovery & 1) and SACK, only a segment RACK
        // marked lost starts recovery; the dup-ACK/FACK heuristics are for the rest.
        let rack = self.tcp_is_rack(ctx);
        let lost_by_sack = !rack && self.sack_ok && self.sacked_out >= reord;
        let lost_by_dups = !self.sack_ok && self.dupacks >= reord;
        let lost_by_fack = !rack
            && self.sack_ok
            && self.rtx_queue.front().is_some_and(|h| h.sacked & TCPCB_SACKED_ACKED == 0)
            && self.sacked_out > 0
            && self.highest_sack.diff(self.snd_una) > reord * self.mss_cache;
        if lost_by_sack || lost_by_dups || lost_by_fack || self.lost_out > 0 {
            self.tcp_enter_recovery(ctx);
        } else if self.sacked_out > 0 || self.dupacks > 0 {
            self.ca_state = CaState::Disorder;
        } else {
            self.ca_state = CaState::Open;
        }
        Rexmit::Lost
    }

    /// `tcp_enter_recovery()`: fast recovery from the first lost segment.
    pub(crate) fn tcp_enter_recovery(&mut self, ctx: &mut Ctx<'_>) {
        {
            // tcp_enter_recovery()
            if self.sack_ok {
                ctx.inc(LinuxMib::TCPSackRecovery);
            } else {
                ctx.inc(LinuxMib::TCPRenoRecovery);
            }
            self.tcp_init_undo();
            if !self.tcp_in_cwnd_reduction() {
                // tcp_init_cwnd_reduction(): PRR (tcp/prr.rs) lowers cwnd ACK by ACK.
                self.snd_ssthresh = self.tcp_ca_ssthresh();
                self.tcp_init_cwnd_reduction();
            }
            self.high_seq = self.snd_nxt;
            self.ca_state = CaState::Recovery;
            if self.tcp_is_rack(ctx) {
                // tcp_identify_packet_loss(): RACK alone marks losses.
                return;
            }
            if let Some(h) = self.rtx_queue.front_mut() {
                if h.sacked & (TCPCB_LOST | TCPCB_SACKED_ACKED) == 0 {
                    h.sacked |= TCPCB_LOST;
                    self.lost_out += 1;
                    self.rate.lost += 1;
                }
            }
            self.tcp_mark_lost_by_sack(ctx);
        }
    }

    /// `tcp_is_rack()`: RACK does loss detection (SACK connections, `tcp_recovery` bit 0).
    pub(crate) fn tcp_is_rack(&self, ctx: &Ctx<'_>) -> bool {
        self.sack_ok && ctx.net.sysctl.tcp_recovery.get() & 0x1 != 0
    }

    /// Marks as lost every unSACKed segment more than `reordering` segments below the highest
    /// SACKed one (the FACK/RFC 6675 `IsLost` rule). Not with RACK, which marks by time.
    fn tcp_mark_lost_by_sack(&mut self, ctx: &Ctx<'_>) {
        if !self.sack_ok || self.sacked_out == 0 || self.tcp_is_rack(ctx) {
            return;
        }
        let reord = self.reordering.max(3);
        let mut sacked_above = 0u32;
        let mut lost = 0;
        for skb in self.rtx_queue.iter_mut().rev() {
            if skb.sacked & TCPCB_SACKED_ACKED != 0 {
                sacked_above += 1;
                continue;
            }
            if sacked_above >= reord && skb.sacked & (TCPCB_LOST | TCPCB_SACKED_RETRANS) == 0 {
                skb.sacked |= TCPCB_LOST;
                lost += 1;
            }
        }
        self.lost_out += lost;
        self.rate.lost += lost;
    }

    /// `tcp_xmit_retransmit_queue()`: retransmits segments marked lost, as cwnd allows.
    pub(crate) fn tcp_xmit_retransmit_queue(&mut self, ctx: &mut Ctx<'_>) {
        if self.lost_out == 0 {
            return;
        }
        let mut idx = 0;
        while idx < self.rtx_queue.len() {
            if self.packets_in_flight() >= self.snd_cwnd || self.tcp_pacing_check(ctx) {
                break;
            }
            // Every segment marked lost is out again: nothing further down needs sending
            // (and the walk stays short while recovery waits for the retransmissions).
            if self.retrans_out >= self.lost_out {
                break;
            }
            let s = self.rtx_queue[idx].sacked;
            if s & TCPCB_LOST != 0 && s & (TCPCB_SACKED_RETRANS | TCPCB_SACKED_ACKED) == 0 {
                if self.tcp_retransmit_at(ctx, idx) {
                    self.tcp_prr_sent(1);
                    // Counted per segment, as Linux does.
                    ctx.inc(if self.ca_state == CaState::Loss {
                        LinuxMib::TCPSlowStartRetrans
                    } else {
                        LinuxMib::TCPFastRetrans
                    });
                }
                if idx == 0 {
                    self.tcp_rearm_rto(ctx);
                }
            }
            idx += 1;
        }
    }

    /// `tcp_rcv_state_process()` for every state but LISTEN and ESTABLISHED. Returns true when
    /// the caller must answer with a RST.
    pub(crate) fn tcp_rcv_state_process(&mut self, ctx: &mut Ctx<'_>, seg: Seg) -> bool {
        match self.state {
            TcpState::Close => return true,
            TcpState::Listen => return false,
            TcpState::SynSent => return self.tcp_rcv_synsent_state_process(ctx, seg),
            _ => {}
        }
        self.parse_ts(&seg);
        if !seg.flags.ack() && !seg.flags.rst() && !seg.flags.syn() {
            ctx.net.mib.drop_reason(DropReason::TCP_FLAGS);
            return false;
        }
        if !self.tcp_validate_incoming(ctx, &seg, false) {
            return false;
        }
        let acceptable = self.tcp_ack(ctx, &seg, flag::SLOWPATH | flag::UPDATE_TS_RECENT | flag::NO_CHALLENGE_ACK);
        if acceptable <= 0 {
            if self.state == TcpState::SynRecv {
                return true;
            }
            if acceptable < 0 {
                self.tcp_send_challenge_ack(ctx);
                return false;
            }
        }
        match self.state {
            TcpState::SynRecv => {
                // Crossed SYNs: our SYN-ACK is acked.
                self.tcp_init_transfer(ctx);
                self.copied_seq = self.rcv_nxt;
                self.set_state(ctx, TcpState::Established);
                if self.snd_up.between(self.snd_una, seg.ack_seq) {
                    self.snd_up = seg.ack_seq;
                }
                self.snd_una = seg.ack_seq;
                self.snd_wnd = (seg.window as u32) << self.snd_wscale;
                self.snd_wl1 = seg.seq;
                if self.tstamp_ok {
                    self.advmss -= super::TCPOLEN_TSTAMP_ALIGNED;
                }
                self.lsndtime = ctx.now;
                self.tcp_initialize_rcv_mss();
                ctx.ev.write_space = true;
            }
            TcpState::FinWait1 if self.snd_una == self.write_seq => {
                self.set_state(ctx, TcpState::FinWait2);
                self.shutdown |= super::SEND_SHUTDOWN;
                if self.orphan {
                    if self.ext().linger2 < 0 {
                        self.tcp_done(ctx);
                        ctx.inc(LinuxMib::TCPAbortOnData);
                        return false;
                    }
                    if seg.seq != seg.end_seq && (seg.end_seq - seg.flags.fin() as u32).after(self.rcv_nxt) {
                        self.tcp_done(ctx);
                        ctx.inc(LinuxMib::TCPAbortOnData);
                        return true;
                    }
                    let tmo = self.tcp_fin_time(ctx);
                    if tmo > super::TCP_TIMEWAIT_LEN {
                        self.reset_timer(TcpTimer::Keepalive, ctx.now + (tmo - super::TCP_TIMEWAIT_LEN));
                    } else if seg.flags.fin() {
                        self.reset_timer(TcpTimer::Keepalive, ctx.now + tmo);
                    } else {
                        self.tcp_time_wait(ctx, TcpState::FinWait2, tmo);
                        return false;
                    }
                }
            }
            TcpState::Closing if self.snd_una == self.write_seq => {
                self.tcp_time_wait(ctx, TcpState::TimeWait, Duration::ZERO);
                return false;
            }
            TcpState::LastAck if self.snd_una == self.write_seq => {
                self.tcp_done(ctx);
                return false;
            }
            _ => {}
        }
        self.tcp_urg(ctx, &seg);
        match self.state {
            TcpState::CloseWait | TcpState::Closing | TcpState::LastAck if !seg.seq.before(self.rcv_nxt) => {}
            TcpState::CloseWait | TcpState::Closing | TcpState::LastAck | TcpState::FinWait1 | TcpState::FinWait2 => {
                if self.shutdown & super::RCV_SHUTDOWN != 0
                    && seg.end_seq != seg.seq
                    && (seg.end_seq - seg.flags.fin() as u32).after(self.rcv_nxt)
                {
                    ctx.inc(LinuxMib::TCPAbortOnData);
                    self.tcp_reset(ctx);
                    return true;
                }
                self.tcp_data_queue(ctx, seg);
            }
            TcpState::Established => self.tcp_data_queue(ctx, seg),
            _ => {}
        }
        if self.state != TcpState::Close {
            self.tcp_data_snd_check(ctx);
            self.tcp_ack_snd_check(ctx);
        }
        false
    }

    /// `tcp_fin_time()`: how long an orphan stays in FIN_WAIT2.
    pub(crate) fn tcp_fin_time(&self, ctx: &Ctx<'_>) -> Duration {
        let mut t = match self.ext().linger2 {
            l if l > 0 => Duration::from_secs(l as u64),
            _ => Duration::from_secs(ctx.net.sysctl.tcp_fin_timeout.get().max(0) as u64),
        };
        let rto3 = (self.rto * 7) / 2;
        if t < rto3 {
            t = rto3;
        }
        t
    }

    /// `tcp_init_transfer()`: initial RTO, cwnd and buffer space once established.
    pub(crate) fn tcp_init_transfer(&mut self, ctx: &mut Ctx<'_>) {
        // tcp_init_metrics() (no metrics cache): a handshake without an RTT sample (a
        // retransmitted SYN or SYN-ACK, a cookie, and no timestamps) falls back to a 3 s RTO
        // (RFC 6298 5.7).
        if self.srtt_us == 0 {
            self.rttvar_us = TCP_TIMEOUT_FALLBACK.as_micros() as u32;
            self.mdev_us = self.rttvar_us;
            self.mdev_max_us = self.rttvar_us;
            self.rto = TCP_TIMEOUT_FALLBACK;
        }
        self.snd_cwnd = if self.total_retrans > 1 { 1 } else { super::TCP_INIT_CWND };
        self.tcp_init_congestion_control(ctx.now);
        self.tcp_init_buffer_space(ctx);
    }

    /// Applies the options of a SYN or SYN-ACK (`tcp_parse_options` on a SYN + negotiation).
    pub(crate) fn tcp_apply_syn_options(&mut self, ctx: &Ctx<'_>, seg: &Seg) {
        let s = &ctx.net.sysctl;
        self.mss_clamp = match seg.mss {
            Some(m) if m > 0 => {
                let m = m as u32;
                if self.user_mss != 0 && self.user_mss < m {
                    self.user_mss
                } else {
                    m
                }
            }
            // No MSS option: the clamp stays as connect() set it (tcp_v6_connect(): IPv6's
            // minimum MTU less 60; IPv4's TCP_MSS_DEFAULT).
            _ if self.daddr.is_ipv6() => super::ipv6::TCP_V6_MSS_CLAMP,
            _ => super::TCP_MSS_DEFAULT,
        };
        self.wscale_ok = seg.wscale.is_some() && s.tcp_window_scaling.get() != 0;
        self.snd_wscale = if self.wscale_ok { seg.wscale.unwrap_or(0).min(super::TCP_MAX_WSCALE) } else { 0 };
        self.sack_ok = seg.sack_permitted && s.tcp_sack.get() != 0;
        self.tstamp_ok = seg.ts.is_some() && s.tcp_timestamps.get() != 0;
        if let Some((val, ecr)) = seg.ts.filter(|_| self.tstamp_ok) {
            self.saw_tstamp = true;
            self.rcv_tsval = val;
            self.rcv_tsecr = ecr.wrapping_sub(self.tsoffset);
        } else {
            self.saw_tstamp = false;
        }
    }

    /// `tcp_rcv_synsent_state_process()`. Returns true when a RST must be sent in reply.
    fn tcp_rcv_synsent_state_process(&mut self, ctx: &mut Ctx<'_>, seg: Seg) -> bool {
        if seg.flags.ack() {
            if !seg.ack_seq.after(self.snd_una) || seg.ack_seq.after(self.snd_nxt) {
                // FIX(fin_syn_sent.pkt): "Previous FIN/ACK or RST/ACK might be ignored":
                // before any retransmission, re-arm the SYN retransmit at TCP_TIMEOUT_MIN.
                if self.retransmits == 0 {
                    self.reset_timer(TcpTimer::Retrans, ctx.now + super::rack::TCP_TIMEOUT_MIN);
                }
                return !seg.flags.rst();
            }
            if seg.flags.rst() {
                self.tcp_reset(ctx);
                return false;
            }
            if !seg.flags.syn() {
                ctx.net.mib.drop_reason(DropReason::TCP_FLAGS);
                return false;
            }
            self.tcp_apply_syn_options(ctx, &seg);
            if self.tstamp_ok && self.rcv_tsecr != 0 {
                // PAWS for the SYN-ACK: tsecr must echo something we sent.
                let now_ts = self.tcp_time_stamp(ctx.now).wrapping_sub(self.tsoffset);
                if self.rcv_tsecr.wrapping_sub(self.start_ts()) > now_ts.wrapping_sub(self.start_ts()) {
                    ctx.inc(LinuxMib::PAWSActive);
                    return true;
                }
            }
            self.snd_wl1 = seg.seq;
            self.tcp_ack(ctx, &seg, flag::SLOWPATH);
            self.rcv_nxt = seg.seq + 1;
            self.rcv_wup = seg.seq + 1;
            self.irs = seg.seq;
            self.snd_wnd = seg.window as u32;
            self.max_window = self.max_window.max(self.snd_wnd);
            if !self.wscale_ok {
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
                self.window_clamp = self.window_clamp.min(65535);
            }
            if self.tstamp_ok {
                self.tcp_header_len = 20 + super::TCPOLEN_TSTAMP_ALIGNED;
                self.advmss -= super::TCPOLEN_TSTAMP_ALIGNED;
                self.tcp_store_ts_recent(ctx);
            } else {
                self.tcp_header_len = 20;
            }
            let mtu = self.path_mtu(ctx.net.mtu());
            self.tcp_sync_mss(mtu, ctx.net.sysctl.tcp_min_snd_mss.get() as u32);
            self.tcp_initialize_rcv_mss();
            self.copied_seq = self.rcv_nxt;
            // tcp_finish_connect()
            self.set_state(ctx, TcpState::Established);
            self.ack.lrcvtime = ctx.now;
            self.tcp_init_transfer(ctx);
            self.lsndtime = ctx.now;
            if self.keepalive {
                let t = Duration::from_secs(ctx.net.sysctl.tcp_keepalive_time.get() as u64);
                self.reset_timer(TcpTimer::Keepalive, ctx.now + t);
            }
            ctx.ev.state_change = true;
            ctx.ev.write_space = true;
            if self.ack.pingpong > 0 {
                self.schedule_ack();
                self.tcp_enter_quickack_mode(TCP_MAX_QUICKACKS);
                self.tcp_send_delayed_ack(ctx);
            } else {
                self.tcp_send_ack(ctx);
            }
            // Data in the SYN-ACK is not expected; any would be dropped as Linux does.
            self.tcp_push_pending_frames(ctx);
            return false;
        }
        if seg.flags.rst() {
            ctx.net.mib.drop_reason(DropReason::TCP_RESET);
            return false;
        }
        if seg.flags.syn() {
            // Simultaneous open.
            self.tcp_apply_syn_options(ctx, &seg);
            self.set_state(ctx, TcpState::SynRecv);
            if self.tstamp_ok {
                self.tcp_store_ts_recent(ctx);
                self.tcp_header_len = 20 + super::TCPOLEN_TSTAMP_ALIGNED;
            } else {
                self.tcp_header_len = 20;
            }
            if !self.wscale_ok {
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
                self.window_clamp = self.window_clamp.min(65535);
            }
            self.rcv_nxt = seg.seq + 1;
            self.copied_seq = self.rcv_nxt;
            self.rcv_wup = seg.seq + 1;
            self.irs = seg.seq;
            self.snd_wnd = seg.window as u32;
            self.snd_wl1 = seg.seq;
            self.max_window = self.snd_wnd;
            let mtu = self.path_mtu(ctx.net.mtu());
            self.tcp_sync_mss(mtu, ctx.net.sysctl.tcp_min_snd_mss.get() as u32);
            self.tcp_initialize_rcv_mss();
            // tcp_send_synack(): retransmit our SYN as a SYN-ACK.
            let flags = TcpFlags(TcpFlags::SYN.0 | TcpFlags::ACK.0);
            self.tcp_transmit(ctx, self.iss, flags, Bytes::new());
            if let Some(h) = self.rtx_queue.front_mut() {
                h.flags = flags;
            }
            return false;
        }
        false
    }

    fn start_ts(&self) -> u32 {
        self.syn_tsval
    }
}
