//! A global allocator that counts heap allocations (`alloc`, `alloc_zeroed` and `realloc`)
//! before handing them to the real allocator, so `utcp bench` can report how many allocations
//! each received data segment cost (`alloc.per_segment`).
//!
//! A `GlobalAlloc` impl is `unsafe` by definition; it is fenced in this crate so that the
//! stack and the CLI stay `forbid(unsafe_code)`.
#![deny(unsafe_op_in_unsafe_fn)]

// Links mimalloc's library into every binary that has this crate with the feature on, also a
// test binary that never names a mimalloc item: the constructor below references
// `mi_option_set_default` whatever the binary uses, and rustc drops an unnamed dependency.
#[cfg(feature = "mimalloc")]
extern crate libmimalloc_sys;

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Allocations made by the whole process since it started.
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Bytes the process holds allocated now (requested sizes; what `utcp soak` compares before
/// and after, as RSS also counts what the allocator keeps cached).
static LIVE: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Allocations made by the current thread, and heap bytes it allocated minus those it
    /// freed (a buffer freed on another thread counts there): what a test on one thread reads
    /// without seeing the test harness's own threads. Const-initialised with no destructor,
    /// so touching them never allocates.
    static THREAD_ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static THREAD_LIVE: Cell<i64> = const { Cell::new(0) };
}

/// Counts one allocation of `bytes` on this thread.
fn count_alloc(bytes: usize) {
    // `try_with`: a thread being torn down has no slots any more; its counts are dropped.
    let _ = THREAD_ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
    let _ = THREAD_LIVE.try_with(|c| c.set(c.get() + bytes as i64));
}

/// Counts `bytes` freed on this thread.
fn count_free(bytes: usize) {
    let _ = THREAD_LIVE.try_with(|c| c.set(c.get() - bytes as i64));
}

/// Allocations (including reallocations) the calling thread has made so far.
pub fn thread_allocations() -> u64 {
    THREAD_ALLOCATIONS.try_with(Cell::get).unwrap_or(0)
}

/// Heap bytes the calling thread allocated minus those it freed so far.
pub fn thread_live_bytes() -> i64 {
    THREAD_LIVE.try_with(Cell::get).unwrap_or(0)
}

/// Wraps an allocator `A`, counting allocations.
pub struct Counting<A>(A);

impl<A> Counting<A> {
    pub const fn new(a: A) -> Self {
        Counting(a)
    }
}

/// Allocations (including reallocations) the process has made so far.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Heap bytes allocated and not yet freed.
pub fn live_bytes() -> u64 {
    LIVE.load(Ordering::Relaxed)
}

#[cfg(feature = "mimalloc")]
extern "C" {
    /// mimalloc's `mi_collect(bool force)` (mimalloc.h; libmimalloc-sys declares it only with
    /// its `extended` feature, which needs a crate the offline registry lacks).
    fn mi_collect(force: bool);
}

#[cfg(all(feature = "mimalloc", target_os = "linux"))]
extern "C" {
    /// mimalloc's `mi_option_set_default(mi_option_t, long)`: the value an option takes
    /// unless its `MIMALLOC_*` environment variable says otherwise (read at mimalloc's
    /// initialisation).
    fn mi_option_set_default(option: i32, value: std::ffi::c_long);
}

/// `mi_option_allow_thp` in mimalloc v3's `mi_option_t` (libmimalloc-sys 0.1.49; a wrong
/// index would leave THP on, which `utcp-cli/tests/soak.rs`'s RSS ratio catches).
#[cfg(all(feature = "mimalloc", target_os = "linux"))]
const MI_OPTION_ALLOW_THP: i32 = 43;

/// Runs before mimalloc's own constructor (priority 101, `mi_process_attach`) and so before
/// its first allocation: `allow_thp` off by default (`MIMALLOC_ALLOW_THP=1` restores it).
/// mimalloc v3 madvises its 1 GiB arenas MADV_HUGEPAGE; khugepaged then collapses any 2 MiB
/// range with one resident 4 KiB page into a whole huge page, so memory mimalloc purged
/// (MADV_DONTNEED) comes back resident, and a process that freed everything keeps megabytes
/// it does not use: `utcp soak` (200 slots, 20 s) ended at 64-87 MB for a start of 13-14 MB
/// with it, at 21 MB for a start of 6.9 MB without. With the option off, mimalloc also
/// marks the process PR_SET_THP_DISABLE, which in THP's `madvise` mode (the common default)
/// touches nothing else: only regions that ask for huge pages get them. (`.init_array.NNNNN`
/// is ELF's constructor table, sorted by priority; Linux only.)
#[cfg(all(feature = "mimalloc", target_os = "linux"))]
#[used]
#[link_section = ".init_array.00100"]
static MIMALLOC_DEFAULTS: extern "C" fn() = {
    extern "C" fn set_defaults() {
        // SAFETY: writes one entry of mimalloc's static option table; nothing else runs yet.
        unsafe { mi_option_set_default(MI_OPTION_ALLOW_THP, 0) }
    }
    set_defaults
};

/// Returns the memory mimalloc holds free to the OS, as a long-running server does after a
/// burst (glibc's `malloc_trim(0)`): `mi_collect(true)` frees the calling thread's empty
/// pages, purges free segments and collects the segments of threads that ended. What is still
/// allocated is untouched.
///
/// Then glibc's own `malloc_trim(0)`: what libc itself allocated with `malloc` (a thread's
/// TLS destructor list, stdio buffers) sits in glibc's per-thread arenas, one per thread that
/// ran at once, and the free part of each stays resident until trimmed.
#[cfg(feature = "mimalloc")]
pub fn collect() {
    // SAFETY: mi_collect takes no pointers and may be called from any thread at any time.
    unsafe { mi_collect(true) }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and is thread-safe (it locks each arena).
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(all(feature = "mimalloc", target_os = "linux", target_env = "gnu"))]
extern "C" {
    /// glibc's `int malloc_trim(size_t pad)` (malloc.h): returns the free memory at the top
    /// of each arena's heap, and since glibc 2.8 the free pages inside it, to the OS.
    fn malloc_trim(pad: usize) -> std::ffi::c_int;
}

// SAFETY: every call is forwarded unchanged to the wrapped allocator, which upholds the
// GlobalAlloc contract; counting touches only an atomic.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed through.
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as u64, Ordering::Relaxed);
            count_alloc(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as u64, Ordering::Relaxed);
            count_alloc(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
        count_free(layout.size());
        // SAFETY: as above.
        unsafe { self.0.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size as u64, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
            count_free(layout.size());
            count_alloc(new_size);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    #[global_allocator]
    static TEST_ALLOC: super::Counting<std::alloc::System> = super::Counting::new(std::alloc::System);

    #[test]
    fn counts_allocations() {
        let before = super::allocations();
        let v: Vec<u64> = std::hint::black_box(Vec::with_capacity(17));
        let after_one = super::allocations();
        assert!(after_one > before);
        let mut w: Vec<u8> = std::hint::black_box(Vec::with_capacity(1));
        w.extend_from_slice(&[0; 4096]); // a realloc counts too
        assert!(super::allocations() >= after_one + 2);
        // The thread's own counts see the same.
        let (t0, l0) = (super::thread_allocations(), super::thread_live_bytes());
        let x: Vec<u8> = std::hint::black_box(Vec::with_capacity(100));
        assert_eq!((super::thread_allocations(), super::thread_live_bytes()), (t0 + 1, l0 + 100));
        drop(x);
        assert_eq!((super::thread_allocations(), super::thread_live_bytes()), (t0 + 1, l0));
        // Another thread's allocations are not this thread's (spawning one allocates a few
        // here; its thousand vectors count there).
        let t1 = super::thread_allocations();
        let theirs = std::thread::spawn(|| {
            let t = super::thread_allocations();
            for i in 0..1000 {
                std::hint::black_box(vec![0u8; 64 + i]);
            }
            super::thread_allocations() - t
        })
        .join()
        .unwrap();
        assert!(theirs >= 1000 && super::thread_allocations() - t1 < 100, "{theirs}");
        drop((v, w));
        // Freeing allocates nothing.
        let before = super::allocations();
        let x = std::hint::black_box(1u64);
        assert_eq!(super::allocations(), before, "{x}");
    }
}
