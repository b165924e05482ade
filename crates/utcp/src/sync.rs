//! The synchronisation primitives the stack is built on, behind one facade: `parking_lot`'s
//! locks and `std`'s atomics and threads normally, [shuttle]'s under the `shuttle` feature, so
//! that concurrency models (`tests/shuttle_sock.rs`) explore the interleavings of the real
//! socket code — `Sock`'s two-level lock, backlog, prequeue and wakeups, the epoll and poll
//! wait queues, the device queues — instead of a copy of it.
//!
//! The API is `parking_lot`'s (`lock()` returns the guard, `Condvar::wait(&mut guard)`,
//! `try_lock()` returns an `Option`, `MutexGuard::unlocked`), so call sites read the same in
//! both builds. Under `shuttle` thin adapters give shuttle's std-like types that API:
//!
//! * poisoning does not exist (a panicking model thread fails the whole execution anyway);
//! * a timed wait (`Condvar::wait_for`) never times out, as in shuttle: time is virtual and
//!   driven by the model, so a wait that only a timeout would end shows up as a deadlock, which
//!   shuttle reports;
//! * every lock, unlock, atomic access and notification is a scheduling point.
//!
//! With the feature on, the crate runs only inside a shuttle execution (`shuttle::check_*`):
//! shuttle's primitives panic elsewhere, so host threads ([`crate::host`]) and real-clock
//! tests are for the default build. Atomics that are plain counters (MIB, sysctls, device
//! statistics) stay `std`'s in both builds: they order nothing another thread waits on.
//!
//! [shuttle]: https://docs.rs/shuttle

#[cfg(not(feature = "shuttle"))]
pub use parking_lot::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, WaitTimeoutResult};
#[cfg(not(feature = "shuttle"))]
pub use std::sync::atomic;
#[cfg(not(feature = "shuttle"))]
pub use std::thread;
#[cfg(not(feature = "shuttle"))]
pub(crate) use std::thread_local;

#[cfg(feature = "shuttle")]
pub use model::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, WaitTimeoutResult};
#[cfg(feature = "shuttle")]
pub use shuttle::sync::atomic;
#[cfg(feature = "shuttle")]
pub use shuttle::thread;
#[cfg(feature = "shuttle")]
pub(crate) use shuttle::thread_local;

/// `parking_lot`'s API over shuttle's primitives.
#[cfg(feature = "shuttle")]
mod model {
    use std::fmt;
    use std::ops::{Deref, DerefMut};
    use std::sync::{PoisonError, TryLockError};
    use std::time::Duration;

    pub use shuttle::sync::{RwLockReadGuard, RwLockWriteGuard};

    /// A mutex whose `lock()` returns the guard.
    #[derive(Default)]
    pub struct Mutex<T: ?Sized>(shuttle::sync::Mutex<T>);

    /// The guard of a [`Mutex`]; [`Condvar::wait`] and [`MutexGuard::unlocked`] give the lock
    /// up and take it back through it.
    pub struct MutexGuard<'a, T: ?Sized> {
        mutex: &'a Mutex<T>,
        inner: Option<shuttle::sync::MutexGuard<'a, T>>,
    }

    impl<T> Mutex<T> {
        /// A mutex holding `v`.
        pub const fn new(v: T) -> Mutex<T> {
            Mutex(shuttle::sync::Mutex::new(v))
        }
        /// The value, consuming the mutex.
        pub fn into_inner(self) -> T {
            self.0.into_inner().unwrap_or_else(PoisonError::into_inner)
        }
    }

    impl<T: ?Sized> Mutex<T> {
        /// Takes the lock, blocking.
        pub fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard { mutex: self, inner: Some(self.0.lock().unwrap_or_else(PoisonError::into_inner)) }
        }
        /// Takes the lock if it is free.
        pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            let g = match self.0.try_lock() {
                Ok(g) => g,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => return None,
            };
            Some(MutexGuard { mutex: self, inner: Some(g) })
        }
        /// The value, through an exclusive borrow (no locking).
        pub fn get_mut(&mut self) -> &mut T {
            self.0.get_mut().unwrap_or_else(PoisonError::into_inner)
        }
    }

    impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.fmt(f)
        }
    }

    impl<'a, T: ?Sized> MutexGuard<'a, T> {
        /// Runs `f` with the lock given up, then takes it again.
        pub fn unlocked<U>(s: &mut Self, f: impl FnOnce() -> U) -> U {
            drop(s.inner.take());
            let r = f();
            s.inner = Some(s.mutex.0.lock().unwrap_or_else(PoisonError::into_inner));
            r
        }
        fn take(&mut self) -> shuttle::sync::MutexGuard<'a, T> {
            self.inner.take().expect("guard holds the lock")
        }
    }

    impl<T: ?Sized> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.inner.as_deref().expect("guard holds the lock")
        }
    }

    impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.inner.as_deref_mut().expect("guard holds the lock")
        }
    }

    /// How a timed wait ended.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct WaitTimeoutResult(bool);

    impl WaitTimeoutResult {
        /// Whether the wait timed out (never, under shuttle).
        pub fn timed_out(self) -> bool {
            self.0
        }
    }

    /// A condition variable waiting on a [`MutexGuard`] in place.
    #[derive(Default)]
    pub struct Condvar(shuttle::sync::Condvar);

    impl Condvar {
        /// A condition variable.
        pub const fn new() -> Condvar {
            Condvar(shuttle::sync::Condvar::new())
        }
        /// Gives the lock up, sleeps until notified, takes the lock again.
        pub fn wait<T>(&self, g: &mut MutexGuard<'_, T>) {
            let inner = g.take();
            g.inner = Some(self.0.wait(inner).unwrap_or_else(PoisonError::into_inner));
        }
        /// [`Condvar::wait`]; shuttle has no time, so it never times out.
        pub fn wait_for<T>(&self, g: &mut MutexGuard<'_, T>, timeout: Duration) -> WaitTimeoutResult {
            let inner = g.take();
            let (inner, r) = self.0.wait_timeout(inner, timeout).unwrap_or_else(PoisonError::into_inner);
            g.inner = Some(inner);
            WaitTimeoutResult(r.timed_out())
        }
        /// Wakes one waiter.
        pub fn notify_one(&self) {
            self.0.notify_one()
        }
        /// Wakes every waiter.
        pub fn notify_all(&self) {
            self.0.notify_all()
        }
    }

    impl fmt::Debug for Condvar {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("Condvar")
        }
    }

    /// A reader-writer lock whose `read()` and `write()` return the guards.
    #[derive(Default)]
    pub struct RwLock<T: ?Sized>(shuttle::sync::RwLock<T>);

    impl<T> RwLock<T> {
        /// A lock holding `v`.
        pub const fn new(v: T) -> RwLock<T> {
            RwLock(shuttle::sync::RwLock::new(v))
        }
    }

    impl<T: ?Sized> RwLock<T> {
        /// Shared access, blocking.
        pub fn read(&self) -> RwLockReadGuard<'_, T> {
            self.0.read().unwrap_or_else(PoisonError::into_inner)
        }
        /// Exclusive access, blocking.
        pub fn write(&self) -> RwLockWriteGuard<'_, T> {
            self.0.write().unwrap_or_else(PoisonError::into_inner)
        }
    }

    impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.fmt(f)
        }
    }
}
