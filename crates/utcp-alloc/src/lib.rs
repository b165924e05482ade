//! A global allocator that counts heap allocations (`alloc`, `alloc_zeroed` and `realloc`)
//! before handing them to the real allocator, so `utcp bench` can report how many allocations
//! each received data segment cost (`alloc.per_segment`).
//!
//! A `GlobalAlloc` impl is `unsafe` by definition; it is fenced in this crate so that the
//! stack and the CLI stay `forbid(unsafe_code)`.
#![deny(unsafe_op_in_unsafe_fn)]

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicU64, Ordering};

/// Allocations made by the whole process since it started.
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

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

// SAFETY: every call is forwarded unchanged to the wrapped allocator, which upholds the
// GlobalAlloc contract; counting touches only an atomic.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed through.
        unsafe { self.0.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { self.0.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { self.0.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { self.0.realloc(ptr, layout, new_size) }
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
        drop((v, w));
        // Freeing allocates nothing.
        let before = super::allocations();
        let x = std::hint::black_box(1u64);
        assert_eq!(super::allocations(), before, "{x}");
    }
}
