//! `current->task_frag` and `skb_page_frag_refill()` (net/core/sock.c, mm/page_frag_cache.c):
//! where `tcp_sendmsg` copies user data.
//!
//! Linux copies a write into the calling task's page fragment (`sk_page_frag()`: the task's
//! when `sk_use_task_frag`, as for TCP), a 32 KiB compound page the skbs then reference;
//! `skb_page_frag_refill()` reuses the page from offset 0 once no skb holds it any more
//! (`page_ref_count == 1`), and allocates a fresh one otherwise. Here the page is a
//! [`BytesMut`] chunk: a write queue skb takes a region of it (`alloc`) and the frozen
//! payload shares the chunk's buffer with every clone (retransmit queue, frames in flight, the
//! receiver's queues), so cloning never allocates.
//!
//! A chunk still referenced when the current one is used up is kept in a FIFO ring, so that a
//! later refill can take it back once its last user is gone instead of allocating: in a steady
//! bulk transfer the ring grows to cover the data in flight and then no write allocates.
//! DEVIATION(linux): Linux holds one page per task and allocates a new one whenever that page
//! is still in use; utcp keeps up to `RING_MAX` such chunks per thread to reuse them (a
//! user-space allocation costs more than `alloc_pages` from the per-CPU lists). Sockets hold
//! nothing here: an idle socket owns no chunk.

use bytes::BytesMut;
use core::cell::RefCell;
use std::collections::VecDeque;

/// Size of one chunk. Twice Linux's 32 KiB page (`SKB_FRAG_PAGE_ORDER`): a write queue skb
/// here is one contiguous buffer of up to `size_goal` bytes (64 KiB with GSO), where Linux's
/// spans several pages. Kept below glibc's 128 KiB mmap threshold: larger chunks were mapped
/// and unmapped one by one, and those system calls (and TLB shootdowns) stalled real-thread
/// transfers into loss probes.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Retired chunks a thread keeps for reuse (`RING_MAX * CHUNK` = 16 MiB at most, enough for
/// a full send buffer plus the peer's receive queue; only the chunks nobody references any
/// more are memory held for nothing).
pub(crate) const RING_MAX: usize = 256;

/// Regions are handed out in multiples of this (keeps them cache-line aligned).
const ALIGN: usize = 64;

/// Retired chunks a refill looks at before allocating (the oldest ones, each moved to the
/// back when still in use, so one long-held chunk does not block the others).
const RECLAIM_TRIES: usize = 4;

#[derive(Default)]
struct TaskFrag {
    /// The chunk being carved (`pfrag->page` from `pfrag->offset` on): an empty handle on the
    /// chunk's unused tail.
    cur: Option<BytesMut>,
    /// Used-up chunks, oldest first, each an empty handle that can take the whole buffer back
    /// once it is the last one.
    retired: VecDeque<BytesMut>,
}

impl TaskFrag {
    /// `skb_page_frag_refill()`: makes `cur` hold at least `want` bytes.
    fn refill(&mut self, want: usize) -> &mut BytesMut {
        if self.cur.as_ref().is_none_or(|c| c.capacity() < want) {
            if let Some(old) = self.cur.take() {
                self.retired.push_back(old);
            }
            for _ in 0..RECLAIM_TRIES.min(self.retired.len()) {
                let mut c = self.retired.pop_front().expect("non-empty");
                // page_ref_count(page) == 1: nobody else holds it; start over at offset 0.
                if c.try_reclaim(CHUNK) {
                    self.cur = Some(c);
                    break;
                }
                self.retired.push_back(c);
            }
            if self.cur.is_none() {
                if self.retired.len() > RING_MAX {
                    // Still in use: it lives on with its users and is freed by the last.
                    self.retired.pop_front();
                }
                self.cur = Some(BytesMut::with_capacity(CHUNK));
            }
        }
        self.cur.as_mut().expect("refilled")
    }

    fn alloc(&mut self, len: usize) -> BytesMut {
        let want = len.div_ceil(ALIGN) * ALIGN;
        let cur = self.refill(want);
        let rest = cur.split_off(want);
        core::mem::replace(cur, rest)
    }

    /// [`try_extend`] on this fragment.
    fn extend(&mut self, b: &mut BytesMut, more: usize) -> bool {
        let need = (b.len() + more).saturating_sub(b.capacity());
        if need == 0 {
            return true;
        }
        let Some(cur) = self.cur.as_mut() else { return false };
        let want = need.div_ceil(ALIGN) * ALIGN;
        // The region must end where the unused part begins, and that part must have room.
        if b.as_ptr().wrapping_add(b.capacity()) != cur.as_ptr() || cur.capacity() < want {
            return false;
        }
        let rest = cur.split_off(want);
        let piece = core::mem::replace(cur, rest);
        // Joining needs the region's bytes to reach its end: its unused tail (alignment) is
        // zero-filled for the join and dropped again, so only those few bytes are written.
        let len = b.len();
        b.resize(b.capacity(), 0);
        let joined = b.try_unsplit(piece).is_ok();
        b.truncate(len);
        joined
    }
}

thread_local! {
    static TASK_FRAG: RefCell<TaskFrag> = RefCell::new(TaskFrag::default());
}

/// An empty buffer with room for `len` bytes, carved from this thread's page fragment (a
/// plain allocation when `len` exceeds a chunk, or while the thread is being torn down).
pub(crate) fn alloc(len: usize) -> BytesMut {
    if len == 0 {
        return BytesMut::new();
    }
    if len > CHUNK {
        return BytesMut::with_capacity(len);
    }
    crate::skb_queue::touch_local();
    TASK_FRAG
        .try_with(|f| f.try_borrow_mut().ok().map(|mut f| f.alloc(len)))
        .ok()
        .flatten()
        .unwrap_or_else(|| BytesMut::with_capacity(len))
}

/// `skb_can_coalesce()` for the page fragment: makes room in `b` (a region `alloc` gave)
/// for `more` bytes past its length without moving the bytes it holds, when its region ends
/// where this thread's fragment continues (it was the last region carved here), as Linux
/// appends a write to the skb's last frag when the page continues there. False when it
/// cannot; the caller then copies into a larger region.
pub fn try_extend(b: &mut BytesMut, more: usize) -> bool {
    TASK_FRAG.try_with(|f| f.try_borrow_mut().ok().map(|mut f| f.extend(b, more))).ok().flatten().unwrap_or(false)
}

/// [`crate::skb_queue::cache_reap`] for this thread's page fragment: the current chunk and
/// the ring of retired ones are let go (a chunk still referenced lives on with its users and
/// is freed by the last; the others are freed now), as an idle task's page would be freed.
pub(crate) fn cache_reap_local() {
    let _ = TASK_FRAG.try_with(|f| f.try_borrow_mut().map(|mut f| *f = TaskFrag::default()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_share_a_chunk_and_chunks_are_reused_once_free() {
        let mut f = TaskFrag::default();
        let mut a = f.alloc(1448);
        assert!(a.capacity() >= 1448 && a.capacity() < 1448 + ALIGN);
        a.extend_from_slice(&[1; 1448]);
        let b = f.alloc(1000);
        // Both come from one chunk: a's end is where b begins.
        assert_eq!(a.as_ptr() as usize + a.capacity(), b.as_ptr() as usize);
        let a = a.freeze();
        let first = a.as_ptr() as usize;
        // Use the chunk up while `a` is still referenced: the next chunk is a new one.
        let mut held = vec![];
        while f.cur.as_ref().unwrap().capacity() >= 4096 {
            held.push(f.alloc(4096));
        }
        let c = f.alloc(4096);
        assert_ne!(c.as_ptr() as usize / CHUNK, first / CHUNK);
        assert_eq!(f.retired.len(), 1);
        // Everything of the first chunk dropped: the next refill takes it back from offset 0.
        drop((a, b, held));
        while f.cur.as_ref().unwrap().capacity() >= 4096 {
            f.alloc(4096);
        }
        let d = f.alloc(4096);
        assert_eq!(d.as_ptr() as usize, first);
        drop((c, d));
    }

    #[test]
    fn the_last_region_grows_in_place() {
        let mut f = TaskFrag::default();
        let mut a = f.alloc(1000);
        a.extend_from_slice(&[7; 1000]);
        let at = a.as_ptr();
        // Room for 3,000 more without moving the 1,000 bytes.
        assert!(f.extend(&mut a, 3000));
        assert_eq!(a.as_ptr(), at);
        assert!(a.capacity() >= 4000);
        assert_eq!(&a[..], &[7; 1000][..]);
        a.extend_from_slice(&[8; 3000]);
        assert_eq!(a.as_ptr(), at);
        assert!(a[..1000].iter().all(|&x| x == 7) && a[1000..].iter().all(|&x| x == 8));
        // Once another region was carved after it, it cannot.
        let b = f.alloc(100);
        assert!(!f.extend(&mut a, 4096));
        // Nor can a region larger than what the chunk has left.
        let mut c = f.alloc(100);
        assert!(!f.extend(&mut c, CHUNK));
        drop((a, b, c));
    }

    #[test]
    fn a_busy_ring_is_bounded() {
        let mut f = TaskFrag::default();
        let held: Vec<_> = (0..(RING_MAX + 10) * 2).map(|_| f.alloc(CHUNK / 2 + 1)).collect();
        assert!(f.retired.len() <= RING_MAX);
        drop(held);
        assert!(alloc(CHUNK + 1).capacity() > CHUNK);
        assert_eq!(alloc(0).capacity(), 0);
    }
}
