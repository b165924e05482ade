//! The out-of-order queue and in-order delivery (`tcp_data_queue`, `tcp_data_queue_ofo`,
//! `tcp_ofo_queue`) against a byte-bitmap model: arbitrary segments (in and beyond the window,
//! overlapping, duplicated, lengths 0..3000, sequence numbers wrapping at 2^32) are fed to a
//! socket, and after each one the receive queue, the out-of-order queue, the SACK and D-SACK
//! blocks and the memory accounting are compared with the set of bytes the model has received.

use super::{OfoQueue, REBASE_DISTANCE};
use crate::mib::LinuxMib;
use crate::netns::Netns;
use crate::seq::SeqNum;
use crate::skb::skb_truesize;
use crate::tcp::input::{RxMeta, Seg};
use crate::tcp::{Ctx, TcpSock, TcpState};
use crate::time::Instant;
use crate::wire::{SackBlocks, TcpFlags};
use bytes::Bytes;
use proptest::prelude::*;
use std::net::Ipv4Addr;

/// Bytes below offset 0 count as delivered before the test starts; the window ends at `wnd`;
/// segments may start up to `SLACK` bytes either side of `[0, wnd)`.
const SLACK: i64 = 4000;
const MAX_LEN: i64 = 3000;

/// The stream's byte at `off` (relative to the initial `rcv_nxt`).
fn stream_byte(off: i64) -> u8 {
    let x = (off as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 56) as u8
}

fn seg(isn: SeqNum, off: i64, len: i64) -> Seg {
    let seq = SeqNum(isn.0.wrapping_add(off as i32 as u32));
    let payload: Vec<u8> = (off..off + len).map(stream_byte).collect();
    Seg {
        seq,
        end_seq: seq + len as u32,
        ack_seq: SeqNum(0),
        flags: TcpFlags::ACK,
        window: 0,
        urg_ptr: 0,
        mss: None,
        wscale: None,
        sack_permitted: false,
        sack: SackBlocks::default(),
        ts: None,
        payload: Bytes::from(payload),
        frags: Vec::new(),
        frags_len: 0,
        truesize: skb_truesize(len as u32),
        rx: RxMeta::default(),
        syn_hdr: None,
        ip_opt: None,
    }
}

/// An established socket with `rcv_nxt = isn` and a fixed window `[isn, isn + wnd)`, whose
/// receive buffer never runs out (pruning is not modelled).
fn sock(net: &Netns, isn: SeqNum, wnd: u32, sack: bool) -> TcpSock {
    let mut tp = TcpSock::new(net, Instant::ZERO);
    tp.state = TcpState::Established;
    tp.sack_ok = sack;
    tp.rcv_nxt = isn;
    tp.copied_seq = isn;
    tp.rcv_wup = isn;
    tp.rcv_wnd = wnd;
    tp.rcvbuf = u32::MAX / 2;
    tp.window_clamp = wnd;
    tp.advmss = 1460;
    tp
}

/// What the receiver has: a bitmap of received bytes by offset, `nxt` the first one missing.
struct Model {
    rcvd: Vec<bool>,
    nxt: i64,
    wnd: i64,
    /// More than four separate ranges were queued since the queue was last empty: SACK blocks
    /// for the older ones may have been forgotten, and later blocks need not be maximal.
    lost_blocks: bool,
}

impl Model {
    fn has(&self, off: i64) -> bool {
        off < 0 || self.rcvd.get(off as usize).copied().unwrap_or(false)
    }
    /// Queued but not yet in order.
    fn queued(&self, off: i64) -> bool {
        off > self.nxt && self.has(off)
    }
    fn ranges(&self) -> Vec<(i64, i64)> {
        let mut v = Vec::new();
        let mut o = self.nxt;
        while (o as usize) < self.rcvd.len() {
            if self.rcvd[o as usize] {
                let s = o;
                while (o as usize) < self.rcvd.len() && self.rcvd[o as usize] {
                    o += 1;
                }
                v.push((s, o));
            } else {
                o += 1;
            }
        }
        v
    }
}

/// How `tcp_data_queue()` must treat a segment `[s, e)`.
#[derive(Debug, PartialEq)]
enum Fate {
    /// Zero length: ignored.
    Nothing,
    /// Dropped: at or beyond the window's right edge, or in order into a zero window.
    Dropped,
    /// Entirely below `rcv_nxt`.
    Old,
    /// Accepted from `rcv_nxt` on.
    InOrder,
    /// Queued out of order.
    OutOfOrder,
}

fn fate(m: &Model, s: i64, e: i64) -> Fate {
    if s == e {
        Fate::Nothing
    } else if s == m.nxt {
        if m.nxt >= m.wnd {
            Fate::Dropped
        } else {
            Fate::InOrder
        }
    } else if e <= m.nxt {
        Fate::Old
    } else if s >= m.wnd.max(m.nxt) {
        // tcp_receive_window() is never negative: once rcv_nxt passes the advertised right
        // edge (data accepted beyond it), the edge is rcv_nxt.
        Fate::Dropped
    } else if s < m.nxt {
        if m.nxt >= m.wnd {
            Fate::Old // D-SACKed, then dropped for the zero window
        } else {
            Fate::InOrder
        }
    } else {
        Fate::OutOfOrder
    }
}

struct Run {
    net: Netns,
    tp: TcpSock,
    isn: SeqNum,
    m: Model,
    /// Bytes handed to the reader so far (offsets `[0, delivered)`).
    delivered: i64,
    ofo_segments: u64,
}

impl Run {
    fn new(isn: u32, wnd: u32, sack: bool) -> Run {
        let net = Netns::new(Ipv4Addr::LOCALHOST, 1500, 1);
        let isn = SeqNum(isn);
        let tp = sock(&net, isn, wnd, sack);
        let size = (wnd as i64 + SLACK + MAX_LEN) as usize;
        let m = Model { rcvd: vec![false; size], nxt: 0, wnd: wnd as i64, lost_blocks: false };
        Run { net, tp, isn, m, delivered: 0, ofo_segments: 0 }
    }

    fn off(&self, seq: SeqNum) -> i64 {
        seq.0.wrapping_sub(self.isn.0) as i32 as i64
    }

    /// Feeds `[s, e)` to the socket and to the model, then checks everything.
    fn feed(&mut self, s: i64, len: i64) -> Result<(), TestCaseError> {
        let e = s + len;
        let f = fate(&self.m, s, e);
        let dup: Vec<i64> = (s..e).filter(|&o| self.m.has(o)).collect();
        let new_bytes = dup.len() < (e - s) as usize;
        // The previous segment's D-SACK went out with its ACK.
        self.tp.dsack = None;
        let mut out = Vec::new();
        let mut ctx = Ctx::new(Instant::ZERO, &self.net, &mut out);
        self.tp.tcp_data_queue(&mut ctx, seg(self.isn, s, len));
        drop(ctx);

        let was_empty = self.m.ranges().is_empty();
        match f {
            Fate::InOrder => {
                for o in s.max(self.m.nxt)..e {
                    self.m.rcvd[o as usize] = true;
                }
            }
            Fate::OutOfOrder => {
                self.ofo_segments += 1;
                for o in s..e {
                    self.m.rcvd[o as usize] = true;
                }
            }
            Fate::Nothing | Fate::Dropped | Fate::Old => {}
        }
        while self.m.has(self.m.nxt) {
            self.m.nxt += 1;
        }
        let ranges = self.m.ranges();
        if was_empty {
            self.m.lost_blocks = false;
        }
        if ranges.len() > 4 {
            self.m.lost_blocks = true;
        }
        if ranges.is_empty() {
            self.m.lost_blocks = false;
        }

        prop_assert_eq!(self.off(self.tp.rcv_nxt), self.m.nxt, "rcv_nxt after {:?} {}..{}", f, s, e);
        self.check_ofo_queue()?;
        self.check_sack(f == Fate::OutOfOrder && new_bytes, s, e)?;
        self.check_dsack(&f, &dup)?;
        self.check_rmem()?;
        Ok(())
    }

    /// The queue holds exactly the received bytes beyond `rcv_nxt`, with the right content, in
    /// non-overlapping buffers sorted by sequence, each keyed by its offset from the base.
    fn check_ofo_queue(&self) -> Result<(), TestCaseError> {
        let q: &OfoQueue = &self.tp.ofo_queue;
        let mut queued = vec![false; self.m.rcvd.len()];
        let mut prev_end: Option<i64> = None;
        let mut truesize = 0;
        for (k, skb) in q.skbs.iter() {
            prop_assert_eq!(k.0, skb.seq.diff(q.base));
            prop_assert!(k.0 < 1 << 31, "key {} far from base", k.0);
            let (a, b) = (self.off(skb.seq), self.off(skb.end_seq));
            prop_assert_eq!(b - a, skb.len as i64);
            prop_assert!(a > self.m.nxt, "queued {}..{} not beyond rcv_nxt {}", a, b, self.m.nxt);
            if let Some(p) = prev_end {
                prop_assert!(a >= p, "queued {}..{} overlaps the previous end {}", a, b, p);
            }
            prev_end = Some(b);
            let mut data = vec![0u8; skb.len as usize];
            skb.copy_bits(0, &mut data);
            for (i, o) in (a..b).enumerate() {
                prop_assert_eq!(data[i], stream_byte(o), "content at {}", o);
                queued[o as usize] = true;
            }
            truesize += skb.truesize;
        }
        prop_assert_eq!(q.truesize(), truesize);
        for o in 0..self.m.rcvd.len() as i64 {
            prop_assert_eq!(queued[o as usize], self.m.queued(o), "byte {} queued", o);
        }
        Ok(())
    }

    /// At most four blocks, disjoint, each inside one queued range; the first covers the latest
    /// segment that brought new out-of-order bytes; while no block can have been forgotten,
    /// the blocks are exactly the maximal queued ranges.
    fn check_sack(&self, latest_new: bool, s: i64, e: i64) -> Result<(), TestCaseError> {
        let blocks: Vec<(i64, i64)> = self.tp.selective_acks.iter().map(|&(a, b)| (self.off(a), self.off(b))).collect();
        if !self.tp.sack_ok {
            prop_assert!(blocks.is_empty());
            return Ok(());
        }
        let ranges = self.m.ranges();
        prop_assert!(blocks.len() <= 4, "blocks {:?}", blocks);
        for (i, &(a, b)) in blocks.iter().enumerate() {
            prop_assert!(a < b, "block {:?}", (a, b));
            prop_assert!(ranges.iter().any(|&(x, y)| x <= a && b <= y), "block {:?} not queued: {:?}", (a, b), ranges);
            for &(c, d) in &blocks[i + 1..] {
                prop_assert!(b < c || d < a, "blocks {:?} touch", blocks);
            }
        }
        if latest_new {
            let (a, b) = blocks[0];
            prop_assert!(a <= s && e <= b, "first block {:?} lacks latest {}..{}", (a, b), s, e);
        }
        if !self.m.lost_blocks {
            let mut sorted = blocks.clone();
            sorted.sort();
            prop_assert_eq!(sorted, ranges);
        }
        Ok(())
    }

    /// A D-SACK block is reported exactly when the segment repeated received bytes (and was
    /// not dropped beyond the window), and it covers only repeated bytes.
    fn check_dsack(&self, f: &Fate, dup: &[i64]) -> Result<(), TestCaseError> {
        let d = self.tp.dsack.map(|(a, b)| (self.off(a), self.off(b)));
        if !self.tp.sack_ok || matches!(f, Fate::Nothing | Fate::Dropped) {
            prop_assert_eq!(d, None);
            return Ok(());
        }
        prop_assert_eq!(d.is_some(), !dup.is_empty(), "dsack {:?} for duplicates {:?}", d, dup.len());
        if let Some((a, b)) = d {
            prop_assert!(a < b, "dsack {:?}", (a, b));
            for o in a..b {
                prop_assert!(dup.binary_search(&o).is_ok(), "dsack {:?} covers new byte {}", (a, b), o);
            }
        }
        Ok(())
    }

    /// `sk_rmem_alloc` is what the two queues hold.
    fn check_rmem(&self) -> Result<(), TestCaseError> {
        let rq: u32 = self.tp.receive_queue.iter().map(|s| s.truesize).sum();
        prop_assert_eq!(self.tp.rmem_alloc, rq + self.tp.ofo_queue.truesize());
        Ok(())
    }

    /// The reader takes the whole receive queue: every byte exactly once, in order, with the
    /// right content; each buffer is uncharged as it is eaten.
    fn read_all(&mut self) -> Result<(), TestCaseError> {
        while let Some(skb) = self.tp.receive_queue.pop_front() {
            let (a, b) = (self.off(skb.seq), self.off(skb.end_seq));
            prop_assert!(a <= self.delivered && b > self.delivered, "buffer {}..{} at {}", a, b, self.delivered);
            let mut data = vec![0u8; skb.len as usize];
            skb.copy_bits(0, &mut data);
            for (i, o) in (a..b).enumerate() {
                prop_assert_eq!(data[i], stream_byte(o), "delivered byte {}", o);
            }
            self.delivered = b;
            self.tp.copied_seq = skb.end_seq;
            self.tp.rmem_alloc -= skb.truesize;
        }
        prop_assert_eq!(self.delivered, self.m.nxt);
        Ok(())
    }
}

/// A segment: start offset (anywhere around the window, or on a coarse grid so that segments
/// collide), length, and whether the reader drains the receive queue afterwards.
fn segment(wnd: i64) -> impl Strategy<Value = (i64, i64, bool)> {
    let start = prop_oneof![-SLACK..wnd + SLACK, (0..(wnd + SLACK) / 500).prop_map(|k| k * 500)];
    let len = prop_oneof![0..MAX_LEN, (0..MAX_LEN / 500).prop_map(|k| k * 500)];
    (start, len, any::<bool>())
}

fn case() -> impl Strategy<Value = (u32, u32, bool, Vec<(i64, i64, bool)>)> {
    let isn = prop_oneof![any::<u32>(), (u32::MAX - 40_000..=u32::MAX)];
    (isn, 1_000u32..24_000, any::<bool>()).prop_flat_map(|(isn, wnd, sack)| {
        (Just(isn), Just(wnd), Just(sack), proptest::collection::vec(segment(wnd as i64), 0..100))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn ofo_queue_matches_bitmap_model((isn, wnd, sack, segs) in case()) {
        let mut r = Run::new(isn, wnd, sack);
        for &(s, len, read) in &segs {
            r.feed(s, len)?;
            if read {
                r.read_all()?;
            }
        }
        prop_assert_eq!(r.net.mib.get(LinuxMib::TCPOFOQueue), r.ofo_segments);
        // Fill every hole in order: all out-of-order data becomes in-order data.
        while r.m.nxt < r.m.wnd {
            let len = (r.m.wnd - r.m.nxt).min(1460);
            r.feed(r.m.nxt, len)?;
        }
        prop_assert!(r.tp.ofo_queue.is_empty());
        prop_assert_eq!(r.tp.ofo_queue.truesize(), 0);
        prop_assert!(r.tp.selective_acks.is_empty());
        r.read_all()?;
        prop_assert_eq!(r.tp.rmem_alloc, 0);
    }
}

/// A segment that starts where a queued one starts and ends inside it is a duplicate: dropped
/// (TCPOFOMerge, D-SACKed, its SACK block moved first), not trimmed to an empty buffer that
/// would D-SACK a zero-length block once in-order data overtakes it.
#[test]
fn duplicate_head_of_queued_segment_is_dropped() {
    let mut r = Run::new(u32::MAX - 2000, 20_000, true);
    r.feed(3000, 1000).unwrap();
    r.feed(8000, 1000).unwrap();
    let truesize = r.tp.ofo_queue.truesize();
    r.feed(3000, 500).unwrap();
    assert_eq!(r.tp.ofo_queue.len(), 2);
    assert_eq!(r.tp.ofo_queue.truesize(), truesize);
    assert_eq!(r.net.mib.get(LinuxMib::TCPOFOMerge), 1);
    assert_eq!(r.tp.dsack.map(|(a, b)| (r.off(a), r.off(b))), Some((3000, 3500)));
    assert_eq!(r.off(r.tp.selective_acks[0].0), 3000);
    // In-order data overlapping the queued segment D-SACKs the overlap.
    r.feed(0, 3600).unwrap();
    assert_eq!(r.tp.dsack.map(|(a, b)| (r.off(a), r.off(b))), Some((3000, 3600)));
    assert_eq!(r.m.nxt, 4000);
    r.read_all().unwrap();
}

/// The keys are recomputed once `rcv_nxt` runs `REBASE_DISTANCE` past the base (4 KiB under
/// test, so the model test re-keys too) while segments stay queued, here across 2^32.
#[test]
fn queue_is_rekeyed_as_rcv_nxt_advances() {
    const { assert!(REBASE_DISTANCE <= 4096) };
    let mut r = Run::new(u32::MAX - 3000, 20_000, true);
    r.feed(15_000, 100).unwrap();
    let base = r.tp.ofo_queue.base;
    while r.m.nxt < 6000 {
        r.feed(r.m.nxt, 1460).unwrap();
    }
    r.feed(12_000, 100).unwrap();
    assert_ne!(r.tp.ofo_queue.base, base);
    assert_eq!(r.tp.ofo_queue.base, r.tp.rcv_nxt);
    let q: Vec<i64> = r.tp.ofo_queue.iter().map(|s| r.off(s.seq)).collect();
    assert_eq!(q, [12_000, 15_000]);
    while r.m.nxt < r.m.wnd {
        r.feed(r.m.nxt, 1460).unwrap();
    }
    r.read_all().unwrap();
    assert_eq!(r.tp.rmem_alloc, 0);
}
