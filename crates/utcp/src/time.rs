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

/// A source of `now` for the host layer and devices. The protocol core never calls it: hosts
/// read it at their entry points and pass the value down.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Instant;
    /// True for a virtual clock that only moves when advanced (tests, scripts).
    fn is_virtual(&self) -> bool {
        false
    }
}

/// A clock that moves only when told to: tests and `utcp drill` run on it and never sleep.
#[derive(Default, Debug)]
pub struct VirtualClock {
    nanos: core::sync::atomic::AtomicU64,
}

impl VirtualClock {
    /// A virtual clock at `start`.
    pub fn new(start: Instant) -> VirtualClock {
        VirtualClock { nanos: core::sync::atomic::AtomicU64::new(start.0) }
    }
    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.nanos.fetch_add(d.as_nanos() as u64, core::sync::atomic::Ordering::SeqCst);
    }
    /// Sets the clock to `t` if that is later than now.
    pub fn advance_to(&self, t: Instant) {
        self.nanos.fetch_max(t.0, core::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Instant {
        Instant(self.nanos.load(core::sync::atomic::Ordering::SeqCst))
    }
    fn is_virtual(&self) -> bool {
        true
    }
}
