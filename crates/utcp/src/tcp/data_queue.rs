//! In-order data (net/ipv4/tcp_input.c): `tcp_data_queue`, `tcp_queue_rcv`, `tcp_try_coalesce`,
//! memory scheduling with prune and collapse under pressure, and the prequeue-era direct copy
//! into a waiting reader's buffer.

use super::input::{Seg, TCP_MAX_QUICKACKS};
use super::{ack_flags::*, Ctx, TcpSock};
use crate::mib::{DropReason, LinuxMib};
use crate::skb::Skb;
use crate::wire::TcpFlags;

/// `MAX_SKB_FRAGS`: how many segments one queued skb may coalesce.
const MAX_SKB_FRAGS: usize = 17;

impl TcpSock {
    fn seg_to_skb(&self, ctx: &Ctx<'_>, seg: &mut Seg) -> Skb {
        let flags = TcpFlags(
            seg.flags.0 & (TcpFlags::FIN.0 | TcpFlags::SYN.0 | TcpFlags::PSH.0 | TcpFlags::URG.0 | TcpFlags::ACK.0),
        );
        let mut skb = Skb::new(seg.seq, flags, seg.payload.clone(), seg.truesize, ctx.now);
        skb.set_frags(seg.take_frags());
        skb.end_seq = seg.end_seq;
        skb.layout = seg.rx.layout;
        skb
    }

    /// `tcp_try_coalesce()`: appends `from` to the receive-queue tail when contiguous.
    fn tcp_try_coalesce_tail(&mut self, ctx: &Ctx<'_>, from: Skb) -> Result<(), Skb> {
        let Some(to) = self.receive_queue.back_mut() else { return Err(from) };
        if to.end_seq != from.seq || to.tcp_flags.fin() || to.frags.len() + 1 + from.frags.len() >= MAX_SKB_FRAGS {
            return Err(from);
        }
        let delta = to.try_coalesce(from)?;
        self.rmem_alloc += delta;
        ctx.inc(LinuxMib::TCPRcvCoalesce);
        Ok(())
    }

    /// `tcp_queue_rcv()`: queues in-order data and advances `rcv_nxt`.
    pub(crate) fn tcp_queue_rcv(&mut self, ctx: &Ctx<'_>, seg: &mut Seg) {
        let skb = self.seg_to_skb(ctx, seg);
        let end = skb.end_seq;
        let truesize = skb.truesize;
        if let Err(skb) = self.tcp_try_coalesce_tail(ctx, skb) {
            self.rmem_alloc += truesize;
            self.receive_queue.push_back(skb);
        }
        self.tcp_rcv_nxt_update(end);
    }

    /// `tcp_rcv_nxt_update()`.
    pub(crate) fn tcp_rcv_nxt_update(&mut self, seq: super::SeqNum) {
        if seq.after(self.rcv_nxt) {
            self.bytes_received += seq.diff(self.rcv_nxt) as u64;
            self.rcv_nxt = seq;
        }
    }

    /// Copies an in-order segment straight into the reader installed in `tp->ucopy` (the
    /// prequeue/backlog direct-copy path of kernels ≤ 4.13). True when the payload was
    /// consumed that way.
    pub(crate) fn tcp_direct_copy(&mut self, ctx: &mut Ctx<'_>, seg: &mut Seg) -> bool {
        let Some(ucopy) = ctx.ucopy.as_deref_mut() else { return false };
        if self.copied_seq != self.rcv_nxt || seg.seq != self.rcv_nxt || seg.flags.fin() || seg.is_empty() {
            return false;
        }
        if seg.len() as usize > ucopy.room() {
            return false;
        }
        for p in seg.parts() {
            ucopy.copy_from(p);
        }
        self.copied_seq += seg.len();
        self.rcv_nxt += seg.len();
        self.bytes_received += seg.len() as u64;
        self.tcp_rcv_space_adjust(ctx);
        true
    }

    /// `tcp_data_queue()`: step 7 of segment processing.
    pub(crate) fn tcp_data_queue(&mut self, ctx: &mut Ctx<'_>, seg: Seg) {
        if seg.end_seq == seg.seq {
            return;
        }
        let mut seg = seg;
        if seg.seq == self.rcv_nxt {
            if self.receive_window() == 0 {
                if seg.is_empty() && seg.flags.fin() {
                    self.queue_and_out(ctx, seg);
                    return;
                }
                ctx.net.mib.drop_reason(DropReason::TCP_ZEROWINDOW);
                self.out_of_window(ctx);
                return;
            }
            self.queue_and_out(ctx, seg);
            return;
        }
        if !seg.end_seq.after(self.rcv_nxt) {
            // A retransmission of data already received: DSACK it and ACK at once.
            self.tcp_rcv_spurious_retrans(ctx, seg.seq);
            ctx.inc(LinuxMib::DelayedACKLost);
            self.tcp_dsack_set(ctx, seg.seq, seg.end_seq);
            ctx.net.mib.drop_reason(DropReason::TCP_OLD_DATA);
            self.out_of_window(ctx);
            return;
        }
        if !seg.seq.before(self.rcv_nxt + self.receive_window()) {
            ctx.net.mib.drop_reason(DropReason::TCP_OVERWINDOW);
            self.out_of_window(ctx);
            return;
        }
        if seg.seq.before(self.rcv_nxt) {
            // Partial overlap: seq < rcv_nxt < end_seq.
            self.tcp_dsack_set(ctx, seg.seq, self.rcv_nxt);
            if self.receive_window() == 0 {
                ctx.net.mib.drop_reason(DropReason::TCP_ZEROWINDOW);
                self.out_of_window(ctx);
                return;
            }
            let cut = self.rcv_nxt.diff(seg.seq).min(seg.len());
            seg.pull(cut);
            seg.seq = self.rcv_nxt;
            self.queue_and_out(ctx, seg);
            return;
        }
        self.tcp_data_queue_ofo(ctx, seg);
    }

    fn out_of_window(&mut self, _ctx: &mut Ctx<'_>) {
        self.tcp_enter_quickack_mode(TCP_MAX_QUICKACKS);
        self.schedule_ack();
    }

    fn queue_and_out(&mut self, ctx: &mut Ctx<'_>, mut seg: Seg) {
        if self.tcp_try_rmem_schedule(ctx, seg.seq, seg.truesize) {
            // No room: an immediate ACK, with a zero window (ICSK_ACK_NOMEM), tells the
            // sender; the segment is dropped unless the receive queue is empty (then it is
            // charged anyway, not to freeze the flow).
            self.ack.pending |= ICSK_ACK_NOMEM | ICSK_ACK_NOW;
            self.schedule_ack();
            ctx.ev.data_ready = true;
            if !self.receive_queue.is_empty() && !seg.is_empty() {
                ctx.inc(LinuxMib::TCPRcvQDrop);
                ctx.net.mib.drop_reason(DropReason::PROTO_MEM);
                return;
            }
            self.sk_forced_mem_schedule(seg.truesize);
        }
        let len = seg.len();
        let truesize = seg.truesize;
        let (rx, flags) = (seg.rx, seg.flags);
        let fin = seg.flags.fin();
        let eaten = len > 0 && self.tcp_direct_copy(ctx, &mut seg);
        if !eaten {
            self.tcp_queue_rcv(ctx, &mut seg);
        } else if fin {
            self.rcv_nxt += 1;
        }
        if len > 0 {
            self.tcp_event_data_recv(ctx, len, truesize, rx, flags);
            ctx.ev.new_data = true;
        }
        if fin {
            self.tcp_fin(ctx);
        }
        if !self.ofo_queue.is_empty() {
            self.tcp_ofo_queue(ctx);
            if self.ofo_queue.is_empty() {
                self.ack.pending |= ICSK_ACK_NOW;
            }
        }
        if !self.selective_acks.is_empty() {
            self.tcp_sack_remove();
        }
        if !self.orphan {
            ctx.ev.data_ready = true;
        }
    }
}
