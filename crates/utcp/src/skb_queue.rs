//! `struct sk_buff_head` (include/linux/skbuff.h): a socket's queue of skbs that holds no
//! storage while empty.
//!
//! Linux threads its queues through the skbs themselves, so an empty receive or write queue
//! costs nothing. Here a queue is a [`VecDeque`]; [`SkbQueue`] gives its storage back to a
//! cache when the queue empties and takes storage from the cache when an empty queue gets an
//! skb, so an idle socket holds no queue capacity and a busy one does not allocate each time
//! its queue drains and refills. The cache is per thread, backed by a shared level (a queue
//! filled by packet input is often emptied by the reader's thread).

use core::cell::RefCell;
use core::ops::{Deref, DerefMut};
use std::collections::VecDeque;
use std::thread::LocalKey;

/// Emptied queue storages kept per thread and in the shared level, per element type.
const PER_THREAD: usize = 16;
const SHARED: usize = 1024;
/// Storage grown past this many elements is freed rather than kept.
const MAX_KEPT_CAP: usize = 4096;

/// Where emptied storages of `VecDeque<Self>` wait for reuse.
pub trait QueueCache: Sized + 'static {
    /// This thread's cache.
    fn local() -> &'static LocalKey<RefCell<Vec<VecDeque<Self>>>>;
    /// The shared level.
    fn shared() -> &'static parking_lot::Mutex<Vec<VecDeque<Self>>>;
}

/// Declares the caches of a queued type.
macro_rules! queue_cache {
    ($t:ty) => {
        impl $crate::skb_queue::QueueCache for $t {
            fn local() -> &'static std::thread::LocalKey<core::cell::RefCell<Vec<std::collections::VecDeque<$t>>>> {
                thread_local! {
                    static LOCAL: core::cell::RefCell<Vec<std::collections::VecDeque<$t>>> =
                        const { core::cell::RefCell::new(Vec::new()) };
                }
                &LOCAL
            }
            fn shared() -> &'static parking_lot::Mutex<Vec<std::collections::VecDeque<$t>>> {
                static SHARED: parking_lot::Mutex<Vec<std::collections::VecDeque<$t>>> =
                    parking_lot::const_mutex(Vec::new());
                &SHARED
            }
        }
    };
}
pub(crate) use queue_cache;

fn take<T: QueueCache>() -> VecDeque<T> {
    touch_local();
    let local = T::local().try_with(|c| c.try_borrow_mut().ok().and_then(|mut c| c.pop())).ok().flatten();
    local
        .or_else(|| {
            touch_shared();
            T::shared().lock().pop()
        })
        .unwrap_or_default()
}

fn give<T: QueueCache>(mut q: VecDeque<T>) {
    if q.capacity() == 0 || q.capacity() > MAX_KEPT_CAP {
        return;
    }
    q.clear();
    touch_local();
    let q = T::local()
        .try_with(|c| match c.try_borrow_mut() {
            Ok(mut c) if c.len() < PER_THREAD => {
                c.push(q);
                None
            }
            _ => Some(q),
        })
        .unwrap_or(None);
    if let Some(q) = q {
        touch_shared();
        let mut shared = T::shared().lock();
        if shared.len() < SHARED {
            shared.push(q);
        }
    }
}

thread_local! {
    /// This thread took from or gave to one of its caches since its last [`cache_reap`].
    static TOUCHED: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// A thread took from or gave to the shared levels since the last [`cache_reap`].
static SHARED_TOUCHED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Notes that this thread used one of its caches (this module's and the other per-thread
/// caches of emptied storage: fragment and frame vectors, backlog queues).
pub(crate) fn touch_local() {
    let _ = TOUCHED.try_with(|t| t.set(true));
}

/// Notes that a shared level was used.
pub(crate) fn touch_shared() {
    SHARED_TOUCHED.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn reap_local<T: QueueCache>() {
    let _ = T::local().try_with(|c| c.try_borrow_mut().map(|mut c| *c = Vec::new()));
}

fn reap_shared<T: QueueCache>() {
    *T::shared().lock() = Vec::new();
}

/// `cache_reap()` (mm/slab.c): frees the emptied storage the caches keep when nobody used
/// them since the previous call: this thread's caches (queue storages, fragment and frame
/// vectors, backlog queues, the page fragment writes are copied into) when this thread did not touch them, and the shared levels when
/// no thread did. The host's threads call it every [`CACHE_REAP_INTERVAL`] (Linux reaps each
/// CPU's array caches every 2 s, `REAPTIMEOUT_AC`), so a stack that went idle gives its cached
/// memory back within two intervals; a thread that ends frees its own caches. Returns whether
/// this thread's caches were freed.
pub fn cache_reap() -> bool {
    let idle = !TOUCHED.try_with(|t| t.replace(false)).unwrap_or(true);
    let was_busy = BUSY_SINCE_REAP.try_with(|b| b.replace(false)).unwrap_or(false);
    if idle {
        reap_local::<crate::skb::Skb>();
        reap_local::<crate::tcp::TxSkb>();
        reap_local::<crate::tcp::tx_csum::CsumBlock>();
        crate::skb::cache_reap_local();
        crate::socket::sock::inseg_cache_reap_local();
        crate::page_frag::cache_reap_local();
    }
    if !SHARED_TOUCHED.swap(false, std::sync::atomic::Ordering::Relaxed) {
        reap_shared::<crate::skb::Skb>();
        reap_shared::<crate::tcp::TxSkb>();
        reap_shared::<crate::tcp::tx_csum::CsumBlock>();
        crate::skb::cache_reap_shared();
    }
    // The thread went idle after work, or a trim was asked for since this thread last ran
    // the hook: the allocator may give back what this thread freed (each thread's heap is its
    // own; a thread that ends gives its heap back itself).
    let epoch = TRIM_EPOCH.load(std::sync::atomic::Ordering::Acquire);
    let trim_asked = TRIM_SEEN.try_with(|s| s.replace(epoch) != epoch).unwrap_or(false);
    if (idle && was_busy) || trim_asked {
        if let Some(hook) = REAP_HOOK.get() {
            hook();
        }
    }
    if !idle {
        let _ = BUSY_SINCE_REAP.try_with(|b| b.set(true));
    }
    idle
}

thread_local! {
    /// This thread touched its caches at some reap since the allocator hook last ran here.
    static BUSY_SINCE_REAP: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

static REAP_HOOK: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Bumped by [`request_trim`]; each thread runs the hook at its next [`cache_reap`] once it
/// sees a value it has not seen.
static TRIM_EPOCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

thread_local! {
    /// The [`TRIM_EPOCH`] this thread last ran the hook for.
    static TRIM_SEEN: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
}

/// Asks every thread that runs [`cache_reap`] (the host's timer and device threads, every
/// [`CACHE_REAP_INTERVAL`]) to run the reap hook once more at its next reap, idle or not, busy
/// before or not: memory other threads freed into this thread's allocator pages since its hook
/// last ran (a socket freed when its TIME_WAIT ended, a buffer a reader dropped) is returned
/// only by a trim on the thread that owns those pages (mimalloc's `mi_collect` collects the
/// calling thread's heap). Within one interval of the call every such thread has trimmed.
pub fn request_trim() {
    TRIM_EPOCH.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
}

/// Registers what [`cache_reap`] runs on a thread that has gone idle after work, once per such
/// idle period: the program's allocator trim (`malloc_trim(0)`, mimalloc's `mi_collect`), as a
/// long-running server returns memory after a burst. The first registration stays.
pub fn set_reap_hook(hook: fn()) {
    let _ = REAP_HOOK.set(hook);
}

/// Below this many entries a table keeps whatever capacity it grew to.
pub(crate) const SHRINK_KEEP: usize = 256;

/// Gives back the storage a burst grew a table to once it holds a quarter of its capacity
/// or less, down to twice its length (amortised: the next shrink needs the length to halve
/// again). The stack's tables (`ehash`, the bind table, the timer map) grow with the
/// connections open at the peak; Linux sizes its hash tables once at boot, where utcp's grow
/// on demand, so without this a stack that went idle after thousands of connections would
/// keep the peak's tables (and the allocator pages they sit in) for good.
pub(crate) fn shrink_emptied<K: Eq + std::hash::Hash, V, S: std::hash::BuildHasher>(
    m: &mut std::collections::HashMap<K, V, S>,
) {
    if let Some(to) = shrink_target(m.len(), m.capacity()) {
        m.shrink_to(to);
    }
}

/// The capacity [`shrink_emptied`]'s rule gives back to for a table of `len` entries in
/// `capacity`, or `None` to keep it (for tables other than a `HashMap`).
pub(crate) fn shrink_target(len: usize, capacity: usize) -> Option<usize> {
    (capacity > SHRINK_KEEP && len <= capacity / 4).then(|| (len * 2).max(SHRINK_KEEP))
}

/// How often the host's threads call [`cache_reap`].
pub const CACHE_REAP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// A queue that holds storage only while it holds elements. Reads and in-place changes go
/// through the [`VecDeque`] it derefs to; adding goes through its own methods, and
/// [`SkbQueue::reclaim`] gives the storage back once empty (the removing methods here do so
/// themselves).
pub struct SkbQueue<T: QueueCache>(VecDeque<T>);

impl<T: QueueCache> Default for SkbQueue<T> {
    fn default() -> Self {
        SkbQueue(VecDeque::new())
    }
}

impl<T: QueueCache + core::fmt::Debug> core::fmt::Debug for SkbQueue<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: QueueCache> SkbQueue<T> {
    /// An empty queue (no storage).
    pub fn new() -> Self {
        Self::default()
    }
    fn fill(&mut self) {
        if self.0.capacity() == 0 {
            self.0 = take();
        }
    }
    /// `__skb_queue_tail()`.
    pub fn push_back(&mut self, v: T) {
        self.fill();
        self.0.push_back(v);
    }
    /// `__skb_queue_head()`.
    pub fn push_front(&mut self, v: T) {
        self.fill();
        self.0.push_front(v);
    }
    /// Inserts at `i` (`__skb_queue_after`).
    pub fn insert(&mut self, i: usize, v: T) {
        self.fill();
        self.0.insert(i, v);
    }
    /// `__skb_dequeue()`.
    pub fn pop_front(&mut self) -> Option<T> {
        let v = self.0.pop_front();
        self.reclaim();
        v
    }
    /// `__skb_dequeue_tail()`.
    pub fn pop_back(&mut self) -> Option<T> {
        let v = self.0.pop_back();
        self.reclaim();
        v
    }
    /// `__skb_unlink()` by index.
    pub fn remove(&mut self, i: usize) -> Option<T> {
        let v = self.0.remove(i);
        self.reclaim();
        v
    }
    /// `__skb_queue_purge()`.
    pub fn clear(&mut self) {
        self.0.clear();
        self.reclaim();
    }
    /// Gives the storage back if the queue is empty.
    pub fn reclaim(&mut self) {
        if self.0.is_empty() && self.0.capacity() != 0 {
            give(core::mem::take(&mut self.0));
        }
    }
}

impl<T: QueueCache> Deref for SkbQueue<T> {
    type Target = VecDeque<T>;
    fn deref(&self) -> &VecDeque<T> {
        &self.0
    }
}

impl<T: QueueCache> DerefMut for SkbQueue<T> {
    fn deref_mut(&mut self) -> &mut VecDeque<T> {
        &mut self.0
    }
}

impl<T: QueueCache> Drop for SkbQueue<T> {
    fn drop(&mut self) {
        self.0.clear();
        self.reclaim();
    }
}

impl<T: QueueCache> IntoIterator for SkbQueue<T> {
    type Item = T;
    type IntoIter = std::collections::vec_deque::IntoIter<T>;
    /// The elements by value (their storage is freed afterwards, not cached).
    fn into_iter(mut self) -> Self::IntoIter {
        core::mem::take(&mut self.0).into_iter()
    }
}

impl<'a, T: QueueCache> IntoIterator for &'a SkbQueue<T> {
    type Item = &'a T;
    type IntoIter = std::collections::vec_deque::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<'a, T: QueueCache> IntoIterator for &'a mut SkbQueue<T> {
    type Item = &'a mut T;
    type IntoIter = std::collections::vec_deque::IterMut<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct T(u32);
    queue_cache!(T);

    #[test]
    fn an_empty_queue_holds_no_storage_and_refills_from_the_cache() {
        let mut q = SkbQueue::<T>::new();
        assert_eq!(q.capacity(), 0);
        q.push_back(T(1));
        q.push_back(T(2));
        let storage = q.as_slices().0.as_ptr();
        assert_eq!(q.pop_front(), Some(T(1)));
        assert!(q.capacity() > 0);
        assert_eq!(q.pop_front(), Some(T(2)));
        assert_eq!(q.capacity(), 0, "emptied: storage given back");
        let mut r = SkbQueue::<T>::new();
        r.push_back(T(3));
        assert_eq!(r.as_slices().0.as_ptr(), storage, "the next queue reuses it");
        r.retain(|_| false);
        assert!(r.capacity() > 0);
        r.reclaim();
        assert_eq!(r.capacity(), 0);
        r.insert(0, T(4));
        r.clear();
        assert_eq!(r.capacity(), 0);
    }
}
