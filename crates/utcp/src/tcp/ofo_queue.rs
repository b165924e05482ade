//! The out-of-order queue (`tp->out_of_order_queue`, an rb-tree in Linux; here an ordered map
//! keyed by sequence number) and the SACK blocks it generates (`tcp_data_queue_ofo`,
//! `tcp_ofo_queue`, `tcp_sack_new_ofo_skb`, `tcp_sack_remove`).
//!
//! Every operation a peer's segment triggers costs O(log n) in the number of queued buffers
//! (plus O(1) amortised per buffer it removes): finding the neighbours of a new segment,
//! inserting it, dropping the buffers it covers, and handing the buffers that became in-order
//! to the receive queue.

use super::input::Seg;
use super::{Ctx, TcpSock};
use crate::mib::{DropReason, LinuxMib};
use crate::seq::SeqNum;
use crate::skb::Skb;
use std::collections::BTreeMap;

/// How far `rcv_nxt` may run ahead of the key base before the keys are recomputed. Queued
/// segments lie within a window (at most 2^30 bytes) of `rcv_nxt`, so keys stay below 2^31 and
/// never wrap; re-keying costs O(n) at most once per 2^30 bytes received. (Tests re-key every
/// 4 KiB, to exercise it.)
#[cfg(not(test))]
const REBASE_DISTANCE: u32 = 1 << 30;
#[cfg(test)]
const REBASE_DISTANCE: u32 = 4096;

/// A buffer's place in the map: its `seq` as an offset from the queue's base, then a tie-break
/// that orders buffers starting at the same sequence number newest first, where the sorted
/// vector this map replaced inserted them (an empty buffer left by trimming a segment down to
/// nothing, see `tcp_data_queue_ofo`; buffers overlapping a FIN's sequence slot).
type Key = (u32, u64);

/// Out-of-order segments, ordered by `seq`, non-overlapping (but for the sequence slot of a
/// FIN that data follows).
#[derive(Default, Debug, Clone)]
pub struct OfoQueue {
    /// The buffers, keyed by `seq - base`.
    skbs: BTreeMap<Key, Skb>,
    /// Sequence number that key offsets count from: `rcv_nxt` (or the lowest queued `seq`, if
    /// that is lower) when the queue last became non-empty or was re-keyed.
    base: SeqNum,
    /// Insertions so far, for the tie-break.
    inserted: u64,
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
    pub(crate) fn truesize(&self) -> u32 {
        self.truesize
    }
    /// Drops everything.
    pub(crate) fn clear(&mut self) {
        self.skbs.clear();
        self.truesize = 0;
    }
    /// Removes the highest segment.
    pub(crate) fn pop_last(&mut self) -> Option<Skb> {
        let (_, s) = self.skbs.pop_last()?;
        self.truesize -= s.truesize;
        Some(s)
    }
    /// Removes the lowest segment.
    pub(crate) fn pop_first(&mut self) -> Option<Skb> {
        let (_, s) = self.skbs.pop_first()?;
        self.truesize -= s.truesize;
        Some(s)
    }
    /// The lowest segment.
    pub(crate) fn first(&self) -> Option<&Skb> {
        self.skbs.first_key_value().map(|(_, s)| s)
    }
    /// The highest segment (`tp->ooo_last_skb`).
    pub fn last(&self) -> Option<&Skb> {
        self.skbs.last_key_value().map(|(_, s)| s)
    }
    /// The segments in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Skb> {
        self.skbs.values()
    }

    /// Makes keys valid for sequence numbers from `rcv_nxt` up to a window beyond it: sets the
    /// base when the queue is empty, re-keys when `rcv_nxt` has run far ahead of it.
    fn rebase(&mut self, rcv_nxt: SeqNum) {
        if self.skbs.is_empty() {
            self.base = rcv_nxt;
            return;
        }
        if rcv_nxt.diff(self.base) < REBASE_DISTANCE {
            return;
        }
        let base = self.first().map_or(rcv_nxt, |s| s.seq.min(rcv_nxt));
        let old = std::mem::take(&mut self.skbs);
        self.base = base;
        self.skbs = old.into_iter().map(|((_, tie), s)| ((s.seq.diff(base), tie), s)).collect();
    }
    /// The smallest key a buffer starting at `seq` can have.
    fn lo(&self, seq: SeqNum) -> Key {
        (seq.diff(self.base), 0)
    }
    /// The last buffer that starts before `seq`.
    fn before(&self, seq: SeqNum) -> Option<(Key, &Skb)> {
        self.skbs.range(..self.lo(seq)).next_back().map(|(k, s)| (*k, s))
    }
    /// The first buffer that starts at or after `seq`.
    fn at_or_after(&self, seq: SeqNum) -> Option<(Key, &Skb)> {
        self.skbs.range(self.lo(seq)..).next().map(|(k, s)| (*k, s))
    }
    /// Empties the queue, handing back its buffers in order (for `tcp_collapse_ofo_queue()`).
    pub(super) fn take_all(&mut self) -> Vec<Skb> {
        self.truesize = 0;
        std::mem::take(&mut self.skbs).into_values().collect()
    }
    /// Queues a buffer of a queue [`OfoQueue::take_all`] emptied (keys stay valid: the base
    /// is not above any of them).
    pub(super) fn insert_collapsed(&mut self, skb: Skb) {
        self.insert(skb);
    }
    fn remove(&mut self, key: Key) -> Skb {
        let s = self.skbs.remove(&key).expect("queued");
        self.truesize -= s.truesize;
        s
    }
    fn insert(&mut self, skb: Skb) {
        self.truesize += skb.truesize;
        self.inserted += 1;
        let key = (skb.seq.diff(self.base), u64::MAX - self.inserted);
        self.skbs.insert(key, skb);
    }
}

impl TcpSock {
    /// `tcp_data_queue_ofo()`: queues a segment beyond `rcv_nxt`, merging overlaps and updating
    /// SACK/DSACK state.
    pub(crate) fn tcp_data_queue_ofo(&mut self, ctx: &mut Ctx<'_>, mut seg: Seg) {
        if self.tcp_try_rmem_schedule(ctx, seg.seq, seg.truesize) {
            // Dropped without an ACK: none is scheduled for it.
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
        // Taken before the skb takes a GRO packet's parts (seg.len() then counts the first only).
        let seg_len = seg.len();
        let mut skb = Skb::new(seg.seq, seg.flags, seg.payload.clone(), seg.truesize, ctx.now);
        skb.set_frags(seg.take_frags());
        skb.end_seq = seg.end_seq;
        skb.layout = seg.rx.layout;
        self.ofo_queue.rebase(self.rcv_nxt);
        if self.ofo_queue.is_empty() {
            if self.sack_ok {
                self.selective_acks = vec![(seq, end_seq)];
            }
            // tcp_grow_window() runs before skb_set_owner_r() charges the segment.
            self.tcp_ofo_grow(ctx, seg.truesize, seg_len);
            self.ofo_insert(ctx, skb);
            self.tcp_ofo_rcvbuf_grow(ctx);
            return;
        }
        // Handle overlaps with the previous segment (the last one starting before `seq`).
        if let Some((_, prev)) = self.ofo_queue.before(seq) {
            let prev_end = prev.end_seq;
            if !end_seq.after(prev_end) {
                // Fully covered by a queued segment: duplicate.
                let (ps, pe) = (seq, end_seq);
                ctx.net.mib.drop_reason(DropReason::TCP_OFOMERGE);
                self.tcp_dsack_set(ctx, ps, pe);
                self.tcp_ofo_rcvbuf_grow(ctx);
                return;
            }
            if seq.before(prev_end) {
                // Overlaps the previous one's tail: DSACK the overlap, keep our new part.
                self.tcp_dsack_set(ctx, seq, prev_end);
                let cut = prev_end.diff(seq);
                skb.pull(cut);
                seq = skb.seq;
            }
        }
        // Remove following segments (from the first one starting at or after the segment's
        // original `seq`) fully covered by the new one; trim a partial overlap.
        while let Some((key, next)) = self.ofo_queue.at_or_after(seg.seq) {
            if !end_seq.after(next.seq) {
                break;
            }
            let (ns, ne) = (next.seq, next.end_seq);
            if !end_seq.before(ne) {
                self.tcp_dsack_extend(ctx, ns, ne);
                ctx.net.mib.drop_reason(DropReason::TCP_OFOMERGE);
                let old = self.ofo_queue.remove(key);
                self.rmem_alloc = self.rmem_alloc.saturating_sub(old.truesize);
                self.sk_mem_reclaim();
                continue;
            }
            let keep = ns.diff(seq);
            if keep == 0 && seq == seg.seq {
                // Starts where `next` starts and ends inside it: "All the bits are present.
                // Drop." (tcp_data_queue_ofo()), then add_sack. Trimming it to nothing instead
                // would queue an empty buffer that D-SACKs a zero-length block when in-order
                // data overtakes it.
                ctx.net.mib.drop_reason(DropReason::TCP_OFOMERGE);
                self.tcp_dsack_set(ctx, seq, end_seq);
                if self.sack_ok {
                    self.tcp_sack_new_ofo_skb(seq, end_seq);
                }
                self.tcp_ofo_rcvbuf_grow(ctx);
                return;
            }
            self.tcp_dsack_extend(ctx, ns, end_seq);
            // A segment whose new part (after the previous segment's tail) starts at `ns` is
            // trimmed to nothing: the empty buffer stays charged, coalesced into the previous
            // segment or queued between it and `next` (as Linux charges the overlapping skb).
            skb.trim(keep);
            break;
        }
        let _ = seq;
        self.tcp_ofo_grow(ctx, seg.truesize, seg_len);
        self.ofo_insert(ctx, skb);
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

    /// Queues `skb`, coalesced into the previous segment when contiguous and the layouts
    /// allow (`tcp_ooo_try_coalesce()`: `skb_try_coalesce()`, which cannot steal a tun
    /// device's kmalloc'ed head, so such buffers stay apart): only the growth is charged.
    fn ofo_insert(&mut self, ctx: &Ctx<'_>, skb: Skb) {
        if let Some((key, prev)) = self.ofo_queue.before(skb.seq) {
            if prev.end_seq == skb.seq && !prev.tcp_flags.fin() && prev.frags.len() + 1 + skb.frags.len() < 17 {
                let prev = self.ofo_queue.skbs.get_mut(&key).expect("queued");
                match prev.try_coalesce(skb) {
                    Ok(delta) => {
                        self.ofo_queue.truesize += delta;
                        self.rmem_alloc += delta;
                        ctx.inc(LinuxMib::TCPRcvCoalesce);
                        return;
                    }
                    Err(skb) => {
                        self.rmem_alloc += skb.truesize;
                        self.ofo_queue.insert(skb);
                        return;
                    }
                }
            }
        }
        self.rmem_alloc += skb.truesize;
        self.ofo_queue.insert(skb);
    }

    /// `tcp_ofo_queue()`: moves segments that became in-order into the receive queue.
    pub(crate) fn tcp_ofo_queue(&mut self, ctx: &mut Ctx<'_>) {
        let dsack_high = self.rcv_nxt;
        while let Some(first) = self.ofo_queue.first() {
            if first.seq.after(self.rcv_nxt) {
                break;
            }
            if first.seq.before(dsack_high) {
                // The D-SACK block is the part of each segment that was received twice,
                // extended over the segments that follow: 1001:2001 then 2001:3001 give
                // 1001:3001 (not 1001:6001) in tcp_dsack_mult.pkt on 6.18.
                let dsack = if first.end_seq.before(dsack_high) { first.end_seq } else { dsack_high };
                let s = first.seq;
                self.tcp_dsack_extend(ctx, s, dsack);
            }
            let skb = self.ofo_queue.pop_first().expect("queued");
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
        self.sk_mem_reclaim();
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
    pub(crate) fn tcp_sack_remove(&mut self) {
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

#[cfg(test)]
#[path = "ofo_queue_tests.rs"]
mod tests;
