//! Sequence-number arithmetic: Linux's `before()`/`after()` (include/net/tcp.h) as a type.

use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A TCP sequence number. Comparisons wrap modulo 2^32 as `before()`/`after()` do.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// Mirrors `before(seq1, seq2)`: `(s32)(seq1 - seq2) < 0`.
    #[inline]
    pub(crate) fn before(self, other: SeqNum) -> bool {
        (self.0.wrapping_sub(other.0) as i32) < 0
    }
    /// Mirrors `after(seq2, seq1)`.
    #[inline]
    pub(crate) fn after(self, other: SeqNum) -> bool {
        other.before(self)
    }
    /// `!after(self, other)`.
    #[inline]
    pub fn before_eq(self, other: SeqNum) -> bool {
        !self.after(other)
    }
    /// `!before(self, other)`.
    #[inline]
    pub fn after_eq(self, other: SeqNum) -> bool {
        !self.before(other)
    }
    /// Mirrors `between(seq1, seq2, seq3)`: `seq3 - seq2 >= seq1 - seq2`.
    #[inline]
    pub(crate) fn between(self, lo: SeqNum, hi: SeqNum) -> bool {
        hi.0.wrapping_sub(lo.0) >= self.0.wrapping_sub(lo.0)
    }
    /// The distance `self - other` as an unsigned count (caller knows `other` is not after `self`).
    #[inline]
    pub fn diff(self, other: SeqNum) -> u32 {
        self.0.wrapping_sub(other.0)
    }
    /// The later of two sequence numbers.
    #[inline]
    pub(crate) fn max(self, other: SeqNum) -> SeqNum {
        if self.after(other) {
            self
        } else {
            other
        }
    }
    /// The earlier of two sequence numbers.
    #[inline]
    pub(crate) fn min(self, other: SeqNum) -> SeqNum {
        if self.before(other) {
            self
        } else {
            other
        }
    }
}

impl Add<u32> for SeqNum {
    type Output = SeqNum;
    #[inline]
    fn add(self, rhs: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(rhs))
    }
}

impl AddAssign<u32> for SeqNum {
    #[inline]
    fn add_assign(&mut self, rhs: u32) {
        self.0 = self.0.wrapping_add(rhs);
    }
}

impl Sub<u32> for SeqNum {
    type Output = SeqNum;
    #[inline]
    fn sub(self, rhs: u32) -> SeqNum {
        SeqNum(self.0.wrapping_sub(rhs))
    }
}

impl fmt::Debug for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wraps_around() {
        let a = SeqNum(u32::MAX - 5);
        let b = a + 10;
        assert_eq!(b.0, 4);
        assert!(a.before(b));
        assert!(b.after(a));
        assert_eq!(b.diff(a), 10);
        assert!(SeqNum(u32::MAX).between(a, b));
        assert!(!SeqNum(5).between(a, b));
    }

    proptest! {
        #[test]
        fn before_after_antisymmetric(x: u32, d in 1u32..(1 << 31)) {
            let a = SeqNum(x);
            let b = a + d;
            prop_assert!(a.before(b));
            prop_assert!(b.after(a));
            prop_assert!(!b.before(a));
            prop_assert_eq!(b.diff(a), d);
        }
    }
}
