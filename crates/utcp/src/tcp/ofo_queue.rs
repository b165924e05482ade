//! The out-of-order queue (`tp->out_of_order_queue`, an rb-tree in Linux; here a vector kept
//! sorted by sequence) and the SACK blocks it generates (`tcp_data_queue_ofo`, `tcp_ofo_queue`,
//! `tcp_sack_new_ofo_skb`, `tcp_sack_remove`).

use super::input::Seg;
use super::{Ctx, TcpSock};
use crate::mib::{DropReason, LinuxMib};
use crate::seq::SeqNum;
use crate::skb::Skb;

/// Out-of-order segments, sorted by `seq`, non-overlapping.
#[derive(Default, Debug, Clone)]
pub struct OfoQueue {
    skbs: Vec<Skb>,
    truesize: u32,
}

impl OfoQueue {
    /// No segments queued.
    pub fn is_empty(&self) -> bool {
        self.skbs.is_empty()
    }
    /// Number of queued buffers.
    pub fn len(&self) -> usize {
        self.skbs.len()
    }
    /// Sum of truesize.
    pub fn truesize(&self) -> u32 {
        self.truesize
    }
    /// Drops everything.
    pub fn clear(&mut self) {
        self.skbs.clear();
        self.truesize = 0;
    }
    /// Removes the highest segment.
    pub fn pop_last(&mut self) -> Option<Skb> {
        let s = self.skbs.pop()?;
        self.truesize -= s.truesize;
        Some(s)
    }
    /// The segments in order.
    pub fn iter(&self) -> impl Iterator<Item = &Skb> {
        self.skbs.iter()
    }
    fn remove(&mut self, i: usize) -> Skb {
        let s = self.skbs.remove(i);
        self.truesize -= s.truesize;
        s
    }
}

impl TcpSock {
    /// `tcp_data_queue_ofo()`: queues a segment beyond `rcv_nxt`, merging overlaps and updating
    /// SACK/DSACK state.
    pub fn tcp_data_queue_ofo(&mut self, ctx: &mut Ctx<'_>, seg: Seg) {
        if self.tcp_try_rmem_schedule(ctx, seg.truesize) {
            ctx.inc(LinuxMib::TCPOFODrop);
            ctx.ev.data_ready = true;
            ctx.net.mib.drop_reason(DropReason::PROTO_MEM);
            return;
        }
        self.tcp_measure_rcv_mss(seg.len(), seg.truesize, seg.rx, seg.flags);
        self.schedule_ack();
        ctx.inc(LinuxMib::TCPOFOQueue);
        self.rcv_ooopack += seg.rx.segs.max(1);
        let mut seq = seg.seq;
        let end_seq = seg.end_seq;
        let mut skb = Skb::new(seg.seq, seg.flags, seg.payload.clone(), seg.truesize, ctx.now);
        skb.end_seq = seg.end_seq;
        if self.ofo_queue.is_empty() {
            if self.sack_ok {
                self.selective_acks = vec![(seq, end_seq)];
            }
            // tcp_grow_window() runs before skb_set_owner_r() charges the segment.
            self.tcp_ofo_grow(ctx, seg.truesize, seg.len());
            self.ofo_insert(skb);
            self.tcp_ofo_rcvbuf_grow(ctx);
            return;
        }
        // Find the insert position; handle overlaps with the previous and following segments.
        let q = &self.ofo_queue.skbs;
        let pos = q.partition_point(|s| s.seq.before(seq));
        if pos > 0 {
            let prev = &q[pos - 1];
            if !end_seq.after(prev.end_seq) {
                // Fully covered by a queued segment: duplicate.
                let (ps, pe) = (seq, end_seq);
                ctx.net.mib.drop_reason(DropReason::TCP_OFOMERGE);
                self.tcp_dsack_set(ctx, ps, pe);
                self.tcp_ofo_rcvbuf_grow(ctx);
                return;
            }
            if seq.before(prev.end_seq) {
                // Overlaps the previous one's tail: DSACK the overlap, keep our new part.
                let overlap_end = prev.end_seq;
                self.tcp_dsack_set(ctx, seq, overlap_end);
                let cut = overlap_end.diff(seq);
                skb.pull(cut);
                seq = skb.seq;
            }
        }
        // Remove following segments fully covered by the new one; trim a partial overlap.
        let i = pos;
        while i < self.ofo_queue.skbs.len() {
            let next = &self.ofo_queue.skbs[i];
            if !end_seq.after(next.seq) {
                break;
            }
            if !end_seq.before(next.end_seq) {
                let (ns, ne) = (next.seq, next.end_seq);
                self.tcp_dsack_extend(ctx, ns, ne);
                ctx.net.mib.drop_reason(DropReason::TCP_OFOMERGE);
                let old = self.ofo_queue.remove(i);
                self.rmem_alloc = self.rmem_alloc.saturating_sub(old.truesize);
                continue;
            }
            let ns = next.seq;
            self.tcp_dsack_extend(ctx, ns, end_seq);
            let keep = ns.diff(seq);
            skb.trim(keep);
            break;
        }
        let _ = seq;
        self.tcp_ofo_grow(ctx, seg.truesize, seg.len());
        self.ofo_insert(skb);
        if self.sack_ok {
            self.tcp_sack_new_ofo_skb(seg.seq.max(self.rcv_nxt), end_seq);
        }
        self.tcp_ofo_rcvbuf_grow(ctx);
    }

    /// For non-SACK flows the window is not grown, to force DUPACKs and fast retransmit.
    fn tcp_ofo_grow(&mut self, ctx: &Ctx<'_>, truesize: u32, len: u32) {
        if self.sack_ok {
            self.tcp_grow_window(ctx, truesize, len);
        }
    }

    /// The end of `tcp_data_queue_ofo()` (6.18): "do not grow rcvbuf for not-yet-accepted or
    /// orphaned sockets", else back the span of the out-of-order queue.
    fn tcp_ofo_rcvbuf_grow(&mut self, ctx: &Ctx<'_>) {
        if self.has_socket() {
            let space = self.rcvq_space.space;
            self.tcp_rcvbuf_grow(ctx, space);
        }
    }

    fn ofo_insert(&mut self, skb: Skb) {
        let pos = self.ofo_queue.skbs.partition_point(|s| s.seq.before(skb.seq));
        self.ofo_queue.truesize += skb.truesize;
        self.rmem_alloc += skb.truesize;
        // Coalesce with the previous segment when contiguous.
        if pos > 0 {
            let prev = &mut self.ofo_queue.skbs[pos - 1];
            if prev.end_seq == skb.seq && !prev.tcp_flags.fin() && prev.frags.len() < 16 {
                prev.coalesce(skb);
                return;
            }
        }
        self.ofo_queue.skbs.insert(pos, skb);
    }

    /// `tcp_ofo_queue()`: moves segments that became in-order into the receive queue.
    pub fn tcp_ofo_queue(&mut self, ctx: &mut Ctx<'_>) {
        let mut dsack_high = self.rcv_nxt;
        while let Some(first) = self.ofo_queue.skbs.first() {
            if first.seq.after(self.rcv_nxt) {
                break;
            }
            if first.seq.before(dsack_high) {
                if first.end_seq.before(dsack_high) {
                    dsack_high = first.end_seq;
                }
                // The D-SACK block is the part of this segment that was received twice
                // (1001:3001, not 1001:6001, in tcp_dsack_mult.pkt on 6.18).
                let s = first.seq;
                self.tcp_dsack_extend(ctx, s, dsack_high);
            }
            let skb = self.ofo_queue.remove(0);
            self.rmem_alloc = self.rmem_alloc.saturating_sub(skb.truesize);
            if !skb.end_seq.after(self.rcv_nxt) {
                ctx.net.mib.drop_reason(DropReason::TCP_OFO_DROP);
                continue;
            }
            let fin = skb.tcp_flags.fin();
            let end = skb.end_seq;
            let truesize = skb.truesize;
            if let Err(skb) = self.ofo_coalesce_into_receive(ctx, skb) {
                self.rmem_alloc += truesize;
                self.receive_queue.push_back(skb);
            }
            self.tcp_rcv_nxt_update(end);
            ctx.ev.data_ready = true;
            ctx.ev.new_data = true;
            if fin {
                self.tcp_fin(ctx);
                break;
            }
        }
    }

    fn ofo_coalesce_into_receive(&mut self, ctx: &Ctx<'_>, from: Skb) -> Result<(), Skb> {
        let Some(to) = self.receive_queue.back_mut() else { return Err(from) };
        if to.end_seq != from.seq || to.tcp_flags.fin() || to.frags.len() + from.frags.len() >= 16 {
            return Err(from);
        }
        let delta = from.truesize;
        to.coalesce(from);
        self.rmem_alloc += delta;
        ctx.inc(LinuxMib::TCPRcvCoalesce);
        Ok(())
    }

    /// `tcp_sack_new_ofo_skb()`: records a new SACK block, most recent first, merging.
    fn tcp_sack_new_ofo_skb(&mut self, seq: SeqNum, end_seq: SeqNum) {
        let mut cur = (seq, end_seq);
        let mut blocks: Vec<(SeqNum, SeqNum)> = Vec::with_capacity(4);
        for &b in &self.selective_acks {
            // Merge overlapping or adjacent blocks into the new one.
            if !cur.1.before(b.0) && !b.1.before(cur.0) {
                cur = (cur.0.min(b.0), cur.1.max(b.1));
            } else {
                blocks.push(b);
            }
        }
        blocks.insert(0, cur);
        blocks.truncate(4);
        self.selective_acks = blocks;
    }

    /// `tcp_sack_remove()`: forgets blocks that `rcv_nxt` has passed.
    pub fn tcp_sack_remove(&mut self) {
        if self.ofo_queue.is_empty() {
            self.selective_acks.clear();
            return;
        }
        let rcv_nxt = self.rcv_nxt;
        self.selective_acks.retain(|b| b.1.after(rcv_nxt));
        for b in self.selective_acks.iter_mut() {
            if b.0.before(rcv_nxt) {
                b.0 = rcv_nxt;
            }
        }
    }
}
