//! Receive memory under pressure (net/ipv4/tcp_input.c, v6.18): `tcp_try_rmem_schedule`,
//! `tcp_prune_queue`, `tcp_collapse` of the receive and out-of-order queues,
//! `tcp_collapse_ofo_queue` and `tcp_prune_ofo_queue`.
//!
//! A segment is queued only while the queues are within `sk_rcvbuf` (`tcp_can_ingest()`)
//! and the stack's `tcp_mem` account grants its pages. Otherwise the socket first re-packs its queues into
//! compact buffers (collapse), then drops out-of-order data from the highest sequence down,
//! never data below the incoming segment, reneging what it SACKed: the sender keeps SACKed
//! data until it is cumulatively ACKed, so only in-order data it has not ACKed is ever lost,
//! and it retransmits that. Data it cannot queue is dropped (RcvPruned, TCPRcvQDrop,
//! TCPOFODrop).

use super::{Ctx, TcpSock};
use crate::mib::{DropReason, LinuxMib};
use crate::seq::SeqNum;
use crate::skb::{Skb, SkbLayout};
use crate::wire::TcpFlags;

/// `SKB_WITH_OVERHEAD(PAGE_SIZE)` = `SKB_MAX_ORDER(0, 0)`: the payload one page-sized head holds.
const SKB_MAX_ORDER_0: u32 = 4096 - 320;

/// `skb->truesize` and tailroom of `alloc_skb(size)`: a kmalloc'ed linear head (the small-head
/// cache up to 576 bytes, then a power of two) holding `size` bytes and `skb_shared_info`.
fn alloc_skb(size: u32) -> (u32, u32) {
    const SHINFO: u32 = 320; // SKB_DATA_ALIGN(sizeof(struct skb_shared_info))
    const SKB: u32 = 256; // SKB_DATA_ALIGN(sizeof(struct sk_buff))
    const SMALL_HEAD: u32 = 576; // SKB_SMALL_HEAD_CACHE_SIZE
    let obj = ((size + 63) & !63) + SHINFO;
    let obj = if obj <= SMALL_HEAD { SMALL_HEAD } else { obj.next_power_of_two() };
    (obj + SKB, obj - SHINFO - size)
}

impl TcpSock {
    /// `tcp_can_ingest()`: what is queued is within `sk_rcvbuf`. (6.17 counted the incoming
    /// buffer too, its truesize, then its length; 6.18.y went back to the queues alone after
    /// spurious drops, upstream 026dfef287c0.)
    pub(crate) fn tcp_can_ingest(&self) -> bool {
        self.rmem_alloc <= self.rcvbuf
    }

    /// `tcp_try_rmem_schedule()` for a segment starting at `seq` of `truesize`: true when it
    /// cannot be charged even after pruning.
    pub(crate) fn tcp_try_rmem_schedule(&mut self, ctx: &mut Ctx<'_>, seq: SeqNum, truesize: u32) -> bool {
        if !self.tcp_can_ingest() || !self.sk_rmem_schedule(ctx.now, truesize) {
            if self.tcp_prune_queue(ctx, seq) < 0 {
                return true;
            }
            while !self.sk_rmem_schedule(ctx.now, truesize) {
                if !self.tcp_prune_ofo_queue(ctx, seq) {
                    return true;
                }
            }
        }
        false
    }

    /// `tcp_adjust_rcv_ssthresh()`: under memory pressure the window grows no further than
    /// four segments.
    pub(crate) fn tcp_adjust_rcv_ssthresh(&mut self) {
        // __tcp_adjust_rcv_ssthresh(): utcp reserves no socket memory (SO_RESERVE_MEM).
        self.rcv_ssthresh = self.rcv_ssthresh.min(4 * self.advmss);
    }

    /// `tcp_prune_queue()`: collapse, then drop out-of-order data, to make room for a segment
    /// at `seq`; less than zero when the segment must be dropped.
    fn tcp_prune_queue(&mut self, ctx: &mut Ctx<'_>, seq: SeqNum) -> i32 {
        // Do nothing if our queues are empty.
        if self.rmem_alloc == 0 {
            return -1;
        }
        ctx.inc(LinuxMib::PruneCalled);
        tracing::trace!(target: "tcp_rcvbuf_grow", rmem = self.rmem_alloc, rcvbuf = self.rcvbuf, "prune");
        if !self.tcp_can_ingest() {
            self.tcp_clamp_window(ctx);
        } else if self.tcp_under_memory_pressure() {
            self.tcp_adjust_rcv_ssthresh();
        }
        if self.tcp_can_ingest() {
            return 0;
        }
        self.tcp_collapse_ofo_queue(ctx);
        if !self.receive_queue.is_empty() {
            let (start, end) = (self.copied_seq, self.rcv_nxt);
            let skbs: Vec<Skb> = self.receive_queue.drain(..).collect();
            let skbs = self.tcp_collapse(ctx, skbs, start, end);
            self.receive_queue.extend(skbs);
            self.recount_rmem();
        }
        if self.tcp_can_ingest() {
            return 0;
        }
        // Collapsing did not help, destructive actions follow. This must not ever occur.
        self.tcp_prune_ofo_queue(ctx, seq);
        if self.tcp_can_ingest() {
            return 0;
        }
        // If we are really being abused, tell the caller to silently drop receive data on the
        // floor. It will get retransmitted and hopefully then we'll have sufficient space.
        ctx.inc(LinuxMib::RcvPruned);
        -1
    }

    /// `tcp_collapse()` of `skbs` (consecutive buffers of one queue, in order) over the
    /// sequence range `start..end`: from the first buffer that is bloated (truesize beyond what
    /// its payload is worth in window) or holds data before `start`, re-packs the payload into
    /// page-sized linear buffers, freeing the buffers it copied (TCPRcvCollapsed) and those
    /// with nothing new. Buffers with SYN or FIN are not collapsed.
    fn tcp_collapse(&self, ctx: &Ctx<'_>, skbs: Vec<Skb>, mut start: SeqNum, end: SeqNum) -> Vec<Skb> {
        let mut out: Vec<Skb> = Vec::with_capacity(skbs.len());
        let mut it = skbs.into_iter().peekable();
        let mut collapsed = 0u64;
        // First, check that the queue is collapsible and find where collapsing can be useful.
        let mut first = None;
        while let Some(skb) = it.next() {
            // No new bits? It is possible on the ofo queue.
            if !start.before(skb.end_seq) {
                collapsed += 1;
                continue;
            }
            let syn_fin = skb.tcp_flags.0 & (TcpFlags::SYN.0 | TcpFlags::FIN.0) != 0;
            if !syn_fin && (self.win_from_space(skb.truesize as i64) > skb.len as i64 || skb.seq.before(start)) {
                first = Some(skb);
                break;
            }
            if it.peek().is_some_and(|n| skb.end_seq != n.seq) {
                first = Some(skb);
                break;
            }
            // Decided to skip this, advance start seq.
            start = skb.end_seq;
            out.push(skb);
        }
        let mut cur = match first {
            Some(skb) if skb.tcp_flags.0 & (TcpFlags::SYN.0 | TcpFlags::FIN.0) == 0 => Some(skb),
            Some(skb) => {
                out.push(skb);
                None
            }
            None => None,
        };
        'outer: while let Some(mut skb) = cur.take() {
            if !start.before(end) {
                cur = Some(skb);
                break;
            }
            let copy = SKB_MAX_ORDER_0.min(end.diff(start));
            // alloc_skb(copy): charged for `copy` bytes even if fewer are copied into it.
            let (truesize, room) = alloc_skb(copy);
            let mut data = Vec::with_capacity(copy as usize);
            let nseq = start;
            let flags = TcpFlags(skb.tcp_flags.0 & !(TcpFlags::SYN.0 | TcpFlags::FIN.0));
            let tstamp = skb.tstamp;
            let mut left = copy;
            // Copy data, releasing collapsed skbs.
            loop {
                if left == 0 || skb.seq.after(start) {
                    // (A buffer starting beyond `start` cannot happen: queued buffers are
                    // contiguous or overlap. Stop rather than copy from a wrong offset.)
                    let stop = left != 0;
                    let tailroom = room + copy - data.len() as u32;
                    let mut nskb = Skb::new(nseq, flags, bytes::Bytes::from(data), truesize, tstamp);
                    nskb.layout = SkbLayout::Linear { tailroom };
                    out.push(nskb);
                    cur = Some(skb);
                    if stop {
                        break 'outer;
                    }
                    continue 'outer;
                }
                let offset = start.diff(skb.seq);
                let data_end = skb.seq + skb.len;
                if data_end.after(start) {
                    let size = left.min(data_end.diff(start));
                    let at = data.len();
                    data.resize(at + size as usize, 0);
                    skb.copy_bits(offset as usize, &mut data[at..]);
                    left -= size;
                    start += size;
                }
                if !start.before(skb.end_seq) {
                    collapsed += 1;
                    let next = it.next();
                    let stop = match &next {
                        None => true,
                        Some(n) => n.tcp_flags.0 & (TcpFlags::SYN.0 | TcpFlags::FIN.0) != 0,
                    };
                    if stop {
                        let tailroom = room + copy - data.len() as u32;
                        let mut nskb = Skb::new(nseq, flags, bytes::Bytes::from(data), truesize, tstamp);
                        nskb.layout = SkbLayout::Linear { tailroom };
                        out.push(nskb);
                        out.extend(next);
                        break 'outer;
                    }
                    skb = next.expect("checked");
                }
            }
        }
        out.extend(cur);
        out.extend(it);
        ctx.net.mib.add(LinuxMib::TCPRcvCollapsed, collapsed);
        out
    }

    /// `tcp_collapse_ofo_queue()`: collapses each run of contiguous out-of-order buffers, but
    /// stops once the tiny single buffers it leaves alone add up to an eighth of `sk_rcvbuf`.
    fn tcp_collapse_ofo_queue(&mut self, ctx: &Ctx<'_>) {
        if self.ofo_queue.is_empty() {
            return;
        }
        let skbs = self.ofo_queue.take_all();
        let mut out = Vec::with_capacity(skbs.len());
        let mut sum_tiny = 0u32;
        let mut i = 0;
        while i < skbs.len() {
            let (mut start, mut end) = (skbs[i].seq, skbs[i].end_seq);
            let mut range_truesize = skbs[i].truesize;
            let mut j = i + 1;
            // A range ends at a gap or at the end of the queue.
            while j < skbs.len() && !skbs[j].seq.after(end) && !skbs[j].end_seq.before(start) {
                range_truesize += skbs[j].truesize;
                if skbs[j].seq.before(start) {
                    start = skbs[j].seq;
                }
                if skbs[j].end_seq.after(end) {
                    end = skbs[j].end_seq;
                }
                j += 1;
            }
            // Do not attempt collapsing tiny skbs.
            if range_truesize != skbs[i].truesize || end.diff(start) >= SKB_MAX_ORDER_0 {
                let range: Vec<Skb> = skbs[i..j].to_vec();
                out.extend(self.tcp_collapse(ctx, range, start, end));
            } else {
                sum_tiny += range_truesize;
                if sum_tiny > self.rcvbuf >> 3 {
                    out.extend(skbs[i..].iter().cloned());
                    i = skbs.len();
                    break;
                }
                out.extend(skbs[i..j].iter().cloned());
            }
            i = j;
        }
        debug_assert!(i >= skbs.len());
        for skb in out {
            self.ofo_queue.insert_collapsed(skb);
        }
        self.recount_rmem();
    }

    /// `tcp_prune_ofo_queue()`: drops out-of-order buffers from the highest sequence down to
    /// make room for a segment at `seq`: never those below the segment (let the holes before
    /// it be filled), at least an eighth of `sk_rcvbuf` (against attacks) unless the queue runs
    /// out, and on until the queues fit `sk_rcvbuf` and the stack is not under memory
    /// pressure. The SACK state is reset: the sender must not rely on what was SACKed. True
    /// when the queue shrank.
    fn tcp_prune_ofo_queue(&mut self, ctx: &Ctx<'_>, seq: SeqNum) -> bool {
        let mut pruned = false;
        let mut goal = (self.rcvbuf >> 3) as i64;
        while let Some(last) = self.ofo_queue.last() {
            // If the incoming skb would land last in the ofo queue, stop pruning.
            if seq.after(last.seq) {
                break;
            }
            pruned = true;
            let skb = self.ofo_queue.pop_last().expect("queued");
            goal -= skb.truesize as i64;
            self.rmem_alloc = self.rmem_alloc.saturating_sub(skb.truesize);
            ctx.net.mib.drop_reason(DropReason::TCP_OFO_QUEUE_PRUNE);
            if self.ofo_queue.is_empty() || goal <= 0 {
                if self.tcp_can_ingest() && !self.tcp_under_memory_pressure() {
                    break;
                }
                goal = (self.rcvbuf >> 3) as i64;
            }
        }
        if pruned {
            ctx.inc(LinuxMib::OfoPruned);
            self.sk_mem_reclaim();
            // Reset SACK state. A conforming SACK implementation will do the same at a timeout
            // based retransmit.
            if self.sack_ok {
                self.selective_acks.clear();
                self.dsack = None;
            }
        }
        pruned
    }
}

#[cfg(test)]
#[path = "prune_tests.rs"]
mod tests;
