//! Time as a value. The protocol core never reads a clock: every entry point is handed `now`.
//!
//! `Instant` counts nanoseconds from an arbitrary epoch chosen by the host (the real monotonic
//! clock in `host::clock`, or a virtual clock in tests and `utcp drill`).

use core::fmt;
use core::ops::{Add, AddAssign, Sub};
pub use std::time::Duration;

/// A point in time, nanoseconds since the host's epoch.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(pub u64);

impl Instant {
    /// The epoch.
    pub const ZERO: Instant = Instant(0);
    /// Far future: "no deadline".
    pub const FOREVER: Instant = Instant(u64::MAX);

    /// From microseconds.
    pub const fn from_micros(us: u64) -> Instant {
        Instant(us * 1000)
    }
    /// From milliseconds.
    pub const fn from_millis(ms: u64) -> Instant {
        Instant(ms * 1_000_000)
    }
    /// Nanoseconds since the epoch.
    pub const fn nanos(self) -> u64 {
        self.0
    }
    /// Microseconds since the epoch.
    pub const fn micros(self) -> u64 {
        self.0 / 1000
    }
    /// Milliseconds since the epoch.
    pub const fn millis(self) -> u64 {
        self.0 / 1_000_000
    }
    /// `self - earlier`, saturating at zero.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d.as_nanos().min(u64::MAX as u128) as u64))
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_since(rhs)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000_000, (self.0 / 1000) % 1_000_000)
    }
}
