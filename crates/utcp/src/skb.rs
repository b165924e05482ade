//! Packet buffers: [`Frame`] (a packet on a device: header bytes plus a shared payload) and
//! [`Skb`] (`struct sk_buff` + `struct tcp_skb_cb` as TCP input queues them).
//!
//! Payloads are [`Bytes`]: moving a frame between stacks, queueing it, cloning it for
//! retransmission or coalescing it into the tail of the receive queue never copies payload bytes.
//! A payload is copied once on send (user → write queue) and once on receive (queue → user).

use crate::seq::SeqNum;
use crate::time::Instant;
use crate::wire::TcpFlags;
use bytes::Bytes;
use core::cell::RefCell;
use core::ops::{Deref, DerefMut};

/// Largest IPv4 + TCP header: 60 + 60 bytes.
pub(crate) const MAX_HEADER: usize = 128;

/// How the receiving device laid a packet out in its `sk_buff`, which decides what
/// `skb_try_coalesce()` may do when TCP appends the next segment to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SkbLayout {
    /// utcp's own receive buffers (memlink): the payload sits in a page-fragment head that
    /// coalescing steals, freeing only the `struct sk_buff` (delta: truesize − 256).
    #[default]
    Frag,
    /// A kmalloc'ed linear head (a tun device's small packets): never stolen; a following
    /// segment is copied into `tailroom` bytes left at its end when it fits (delta 0).
    Linear {
        /// Bytes between the end of the data and the end of the buffer.
        tailroom: u32,
    },
    /// A kmalloc'ed head with page fragments (a tun device's large packets): neither stolen
    /// nor any tailroom: never coalesced.
    LockedHead,
}

/// A packet as it crosses a device: the IP and TCP headers inline, the payload shared.
#[derive(Clone)]
pub struct Frame {
    head: [u8; MAX_HEADER],
    head_len: u8,
    /// The TCP payload (may be empty).
    pub payload: Bytes,
    /// The NAPI instance that received this frame (`skb->napi_id`), 0 when none.
    pub napi_id: u32,
    /// `skb->truesize` as the receiving device charges it; 0 = a driver's linear skb
    /// (`TcpSock::rx_truesize`).
    pub truesize: u32,
    /// `skb_shinfo(skb)->gso_size` of a received GSO packet (0 = not GSO). Only devices that
    /// hand TCP super-packets to the stack set it (e.g. a tun device fed with a
    /// `virtio_net_hdr`, as packetdrill does with `--mss`, or a memlink port's GRO: the
    /// first merged segment's payload length); `tcp_measure_rcv_mss()` reads it.
    pub gso_size: u32,
    /// `skb->ip_summed == CHECKSUM_PARTIAL`: the TCP checksum field holds only the
    /// pseudo-header sum (`csum_start` = the IP header's end, `csum_offset` = 16); the device
    /// completes it, or the receiver trusts it as Linux trusts a looped-back skb. TCP builds
    /// super-segments ([`Frame::gso_size`] ≠ 0) this way for devices with TSO/GSO.
    pub csum_partial: bool,
    /// `skb->ip_summed == CHECKSUM_UNNECESSARY`: the device (GRO) verified the TCP checksum
    /// of this received frame already; the stack does not sum it again.
    pub csum_unnecessary: bool,
    /// How the receiving device laid it out ([`SkbLayout::Frag`] unless the device says).
    pub layout: SkbLayout,
    /// `skb->priority`: the sending socket's SO_PRIORITY (a device may queue by it).
    pub(crate) priority: u32,
    /// `skb->mark`: the sending socket's SO_MARK (routing policy and filters match on it).
    pub mark: u32,
    /// The output interface the socket is bound to (`sk_bound_dev_if`), 0 = the route's.
    pub(crate) oif: i32,
    /// Payload parts after `payload` (`skb_shinfo(skb)->frags`): only a packet GRO merged
    /// ([`crate::netdev::gro`]) has them, one per merged segment after the first, in a
    /// pooled vector (empty, no allocation, on every other frame).
    pub(crate) frags: Vec<Bytes>,
}

impl Frame {
    /// A frame whose header will be written through `Frame::head_mut`.
    pub fn with_header_len(len: usize, payload: Bytes) -> Frame {
        assert!(len <= MAX_HEADER);
        Frame {
            head: [0; MAX_HEADER],
            head_len: len as u8,
            payload,
            napi_id: 0,
            truesize: 0,
            gso_size: 0,
            csum_partial: false,
            csum_unnecessary: false,
            layout: SkbLayout::Frag,
            priority: 0,
            mark: 0,
            oif: 0,
            frags: Vec::new(),
        }
    }

    /// Splits raw bytes from a wire (TUN, pcap, script) into header and payload. The header is
    /// taken to be `header_len` bytes (IP + TCP headers), the rest becomes the payload.
    pub fn from_wire(bytes: Bytes, header_len: usize) -> Frame {
        let hl = header_len.min(bytes.len()).min(MAX_HEADER);
        let mut f = Frame::with_header_len(hl, bytes.slice(hl..));
        f.head[..hl].copy_from_slice(&bytes[..hl]);
        f
    }

    /// The header bytes.
    pub fn head(&self) -> &[u8] {
        &self.head[..self.head_len as usize]
    }
    /// The header bytes, writable.
    pub(crate) fn head_mut(&mut self) -> &mut [u8] {
        &mut self.head[..self.head_len as usize]
    }
    /// Total length (on the wire, or of the packet GRO merged).
    pub fn len(&self) -> usize {
        self.head_len as usize + self.payload_len()
    }
    /// Payload bytes, the parts GRO merged (`Frame::frags`) included.
    pub fn payload_len(&self) -> usize {
        self.payload.len() + self.frags.iter().map(Bytes::len).sum::<usize>()
    }
    /// True for a frame with no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `skb_shinfo(skb)->gso_segs`: the packets a super-segment stands for (1 otherwise).
    pub fn gso_segs(&self) -> u32 {
        if self.gso_size == 0 {
            1
        } else {
            (self.payload_len() as u32).div_ceil(self.gso_size).max(1)
        }
    }
    /// The whole packet as one contiguous buffer (for TUN, pcap, scripts: copies).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        v.extend_from_slice(self.head());
        v.extend_from_slice(&self.payload);
        for f in &self.frags {
            v.extend_from_slice(f);
        }
        v
    }
}

impl core::fmt::Debug for Frame {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Frame({} + {} bytes)", self.head_len, self.payload.len())
    }
}

/// Emptied frame vectors a protocol call on this thread takes for its output (`Ctx::out`)
/// instead of allocating one per call: nested calls (delivery running another socket's input
/// inside a call) each take their own. At most [`FRAME_VECS_KEPT`] are kept per thread.
const FRAME_VECS_KEPT: usize = 8;
/// A vector grown past this many frames is freed rather than kept.
const FRAME_VEC_MAX_KEPT_CAP: usize = 1024;

thread_local! {
    static FRAME_VECS: RefCell<Vec<Vec<Frame>>> = const { RefCell::new(Vec::new()) };
}

/// A vector of frames to transmit, taken from this thread's cache and given back (empty, its
/// capacity kept) when dropped: the output of one protocol call.
pub(crate) struct FrameBatch(Vec<Frame>);

impl FrameBatch {
    /// An empty batch, reusing a cached vector when the thread has one.
    pub(crate) fn take() -> FrameBatch {
        let v = FRAME_VECS.try_with(|c| c.try_borrow_mut().ok().and_then(|mut c| c.pop())).ok().flatten();
        FrameBatch(v.unwrap_or_default())
    }
}

impl Deref for FrameBatch {
    type Target = Vec<Frame>;
    fn deref(&self) -> &Vec<Frame> {
        &self.0
    }
}

impl DerefMut for FrameBatch {
    fn deref_mut(&mut self) -> &mut Vec<Frame> {
        &mut self.0
    }
}

impl Drop for FrameBatch {
    fn drop(&mut self) {
        let mut v = core::mem::take(&mut self.0);
        if v.capacity() == 0 || v.capacity() > FRAME_VEC_MAX_KEPT_CAP {
            return;
        }
        // Only a batch that carried frames counts as use for the reaper: an idle device or
        // timer thread takes and returns an empty batch on every round.
        if !v.is_empty() {
            crate::skb_queue::touch_local();
        }
        v.clear();
        let _ = FRAME_VECS.try_with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                if c.len() < FRAME_VECS_KEPT {
                    c.push(v);
                }
            }
        });
    }
}

/// `SKB_TRUESIZE(X)`: what Linux charges for a buffer of `X` data bytes (data + `struct sk_buff`
/// + `struct skb_shared_info`, each cache-aligned; 6.x x86_64 sizes).
pub(crate) const fn skb_truesize(data: u32) -> u32 {
    const SKB_STRUCT: u32 = 256; // SKB_DATA_ALIGN(sizeof(struct sk_buff)) = 256 on 6.x
    const SHINFO: u32 = 320; // SKB_DATA_ALIGN(sizeof(struct skb_shared_info))
    ((data + 63) & !63) + SKB_STRUCT + SHINFO
}

/// Fragments one queued skb holds beyond its first (`MAX_SKB_FRAGS` − 1: TCP's coalescing
/// stops there).
pub(crate) const SKB_FRAGS_CAP: usize = 16;
/// Emptied fragment vectors kept per thread, and in the shared cache behind them.
const FRAG_VECS_PER_THREAD: usize = 64;
const FRAG_VECS_SHARED: usize = 2048;

thread_local! {
    static FRAG_VECS: RefCell<Vec<Vec<Bytes>>> = const { RefCell::new(Vec::new()) };
}

/// Behind the per-thread caches: an skb coalesced on one thread (packet input) is often freed
/// on another (the reader), as Linux's `skb_attempt_defer_free()` hands skbs back to the CPU
/// that allocated them.
static FRAG_VECS_SHARED_CACHE: parking_lot::Mutex<Vec<Vec<Bytes>>> = parking_lot::const_mutex(Vec::new());

/// An empty fragment vector with room for [`SKB_FRAGS_CAP`] fragments, from the caches when
/// they hold one (the `skbuff_cache` slab of this model).
pub(crate) fn frag_vec_alloc() -> Vec<Bytes> {
    crate::skb_queue::touch_local();
    let local = FRAG_VECS.try_with(|c| c.try_borrow_mut().ok().and_then(|mut c| c.pop())).ok().flatten();
    local
        .or_else(|| {
            crate::skb_queue::touch_shared();
            FRAG_VECS_SHARED_CACHE.lock().pop()
        })
        .unwrap_or_else(|| Vec::with_capacity(SKB_FRAGS_CAP))
}

/// [`crate::skb_queue::cache_reap`] for this thread's fragment and frame vectors.
pub(crate) fn cache_reap_local() {
    let _ = FRAG_VECS.try_with(|c| c.try_borrow_mut().map(|mut c| *c = Vec::new()));
    let _ = FRAME_VECS.try_with(|c| c.try_borrow_mut().map(|mut c| *c = Vec::new()));
}

/// [`crate::skb_queue::cache_reap`] for the shared fragment vectors.
pub(crate) fn cache_reap_shared() {
    *FRAG_VECS_SHARED_CACHE.lock() = Vec::new();
}

/// Gives a fragment vector back to the caches (its fragments are released now).
pub(crate) fn frag_vec_free(mut v: Vec<Bytes>) {
    if v.capacity() != SKB_FRAGS_CAP {
        return;
    }
    v.clear();
    crate::skb_queue::touch_local();
    let v = FRAG_VECS
        .try_with(|c| match c.try_borrow_mut() {
            Ok(mut c) if c.len() < FRAG_VECS_PER_THREAD => {
                c.push(v);
                None
            }
            _ => Some(v),
        })
        .unwrap_or(None);
    if let Some(v) = v {
        crate::skb_queue::touch_shared();
        let mut shared = FRAG_VECS_SHARED_CACHE.lock();
        if shared.len() < FRAG_VECS_SHARED {
            shared.push(v);
        }
    }
}

/// A received TCP segment as the receive and out-of-order queues hold it (`struct sk_buff` with
/// `TCP_SKB_CB`): sequence range, flags and payload, possibly coalesced from several segments.
#[derive(Clone, Debug)]
pub struct Skb {
    /// `TCP_SKB_CB(skb)->seq`.
    pub seq: SeqNum,
    /// `TCP_SKB_CB(skb)->end_seq` (seq + len + SYN + FIN).
    pub end_seq: SeqNum,
    /// `TCP_SKB_CB(skb)->tcp_flags`.
    pub(crate) tcp_flags: TcpFlags,
    /// The first payload fragment.
    pub(crate) data: Bytes,
    /// Further fragments appended by coalescing (`skb_shinfo(skb)->frags`).
    pub(crate) frags: Vec<Bytes>,
    /// Payload bytes in all fragments (`skb->len`).
    pub(crate) len: u32,
    /// `skb->truesize`: what this buffer costs against `sk_rcvbuf`.
    pub(crate) truesize: u32,
    /// Arrival time (`skb->tstamp`), for SO_TIMESTAMP.
    pub(crate) tstamp: Instant,
    /// How the buffer is laid out (what coalescing into it may do).
    pub(crate) layout: SkbLayout,
}

impl Skb {
    /// A segment holding `data`.
    pub fn new(seq: SeqNum, tcp_flags: TcpFlags, data: Bytes, truesize: u32, now: Instant) -> Skb {
        let len = data.len() as u32;
        let end_seq = seq + len + tcp_flags.syn() as u32 + tcp_flags.fin() as u32;
        Skb { seq, end_seq, tcp_flags, data, frags: Vec::new(), len, truesize, tstamp: now, layout: SkbLayout::Frag }
    }

    /// Adds `frags` (a pooled vector, or an empty one) after the first fragment: a packet
    /// GRO merged keeps its segments' payloads as they came.
    pub(crate) fn set_frags(&mut self, frags: Vec<Bytes>) {
        if frags.capacity() == 0 {
            return;
        }
        debug_assert!(self.frags.is_empty());
        self.len += frags.iter().map(|f| f.len() as u32).sum::<u32>();
        if self.frags.capacity() != 0 {
            frag_vec_free(core::mem::take(&mut self.frags));
        }
        self.frags = frags;
    }

    /// Copies `dst.len()` payload bytes starting at `offset` (`skb_copy_bits`).
    pub(crate) fn copy_bits(&self, mut offset: usize, dst: &mut [u8]) {
        let mut done = 0;
        for frag in core::iter::once(&self.data).chain(self.frags.iter()) {
            if done == dst.len() {
                break;
            }
            if offset >= frag.len() {
                offset -= frag.len();
                continue;
            }
            let n = (frag.len() - offset).min(dst.len() - done);
            dst[done..done + n].copy_from_slice(&frag[offset..offset + n]);
            done += n;
            offset = 0;
        }
        debug_assert_eq!(done, dst.len());
    }

    /// The payload byte at `offset`.
    pub fn byte_at(&self, offset: usize) -> u8 {
        let mut b = [0u8; 1];
        self.copy_bits(offset, &mut b);
        b[0]
    }

    /// Appends `other`'s payload and flags (`skb_try_coalesce`): no bytes are copied.
    /// `skb_try_coalesce()`: appends contiguous `from` if the layouts allow, returning what
    /// the receive memory grows by (`delta_truesize`); gives `from` back otherwise.
    pub(crate) fn try_coalesce(&mut self, mut from: Skb) -> Result<u32, Skb> {
        if self.end_seq != from.seq {
            return Err(from);
        }
        let delta = match (self.layout, from.layout) {
            // Copied into the tail's spare room: `from` is freed whole.
            (SkbLayout::Linear { tailroom }, _) if from.len <= tailroom => {
                self.layout = SkbLayout::Linear { tailroom: tailroom - from.len };
                0
            }
            // skb_head_is_locked(from): a kmalloc'ed head holding payload cannot be stolen.
            (_, SkbLayout::Linear { .. } | SkbLayout::LockedHead) if from.len > 0 => return Err(from),
            (SkbLayout::Linear { .. }, _) => {
                // Frags after a linear head: no tailroom from now on.
                self.layout = SkbLayout::LockedHead;
                from.truesize.saturating_sub(256)
            }
            _ => from.truesize.saturating_sub(256),
        };
        from.truesize = delta;
        self.coalesce(from);
        Ok(delta)
    }

    /// Appends contiguous `other` (its payload becomes further fragments).
    pub(crate) fn coalesce(&mut self, mut other: Skb) {
        debug_assert_eq!(self.end_seq, other.seq);
        self.end_seq = other.end_seq;
        self.tcp_flags = TcpFlags(self.tcp_flags.0 | other.tcp_flags.0);
        self.len += other.len;
        self.truesize += other.truesize;
        let more = !other.data.is_empty() as usize + other.frags.len();
        if more > 0 && self.frags.capacity() == 0 && more <= SKB_FRAGS_CAP {
            self.frags = frag_vec_alloc();
        }
        if !other.data.is_empty() {
            self.frags.push(core::mem::take(&mut other.data));
        }
        self.frags.append(&mut other.frags);
    }

    /// Drops `n` payload bytes from the front (`pskb_trim` of the head, used when a segment
    /// partly overlaps data already received).
    pub(crate) fn pull(&mut self, n: u32) {
        let mut n = n.min(self.len);
        self.seq += n;
        self.len -= n;
        while n > 0 {
            if (n as usize) < self.data.len() {
                self.data = self.data.slice(n as usize..);
                return;
            }
            n -= self.data.len() as u32;
            self.data = if self.frags.is_empty() { Bytes::new() } else { self.frags.remove(0) };
        }
    }

    /// Drops payload beyond `len` bytes (and a FIN that lay beyond it).
    pub(crate) fn trim(&mut self, len: u32) {
        if len >= self.len {
            return;
        }
        let mut keep = len as usize;
        if keep <= self.data.len() {
            self.data.truncate(keep);
            self.frags.clear();
        } else {
            keep -= self.data.len();
            let mut n = 0;
            while keep > 0 {
                let f = &mut self.frags[n];
                let k = f.len().min(keep);
                f.truncate(k);
                keep -= k;
                n += 1;
            }
            self.frags.truncate(n);
        }
        self.len = len;
        self.tcp_flags = TcpFlags(self.tcp_flags.0 & !TcpFlags::FIN.0);
        self.end_seq = self.seq + len + self.tcp_flags.syn() as u32;
    }
}

crate::skb_queue::queue_cache!(Skb);

impl Drop for Skb {
    /// `kfree_skb()`: the fragment vector goes back to the cache.
    fn drop(&mut self) {
        if self.frags.capacity() != 0 {
            frag_vec_free(core::mem::take(&mut self.frags));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skb(seq: u32, data: &[u8]) -> Skb {
        Skb::new(SeqNum(seq), TcpFlags::ACK, Bytes::copy_from_slice(data), 1000, Instant::ZERO)
    }

    #[test]
    fn coalesce_pull_trim() {
        let mut a = skb(100, b"hello ");
        a.coalesce(skb(106, b"world"));
        assert_eq!(a.len, 11);
        assert_eq!(a.end_seq, SeqNum(111));
        let mut out = [0u8; 5];
        a.copy_bits(4, &mut out);
        assert_eq!(&out, b"o wor");
        a.pull(7);
        assert_eq!(a.seq, SeqNum(107));
        let mut out = [0u8; 4];
        a.copy_bits(0, &mut out);
        assert_eq!(&out, b"orld");
        a.trim(2);
        assert_eq!(a.len, 2);
        assert_eq!(a.byte_at(1), b'r');
        assert_eq!(a.end_seq, SeqNum(109));
    }
}
