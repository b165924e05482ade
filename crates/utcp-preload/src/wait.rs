//! poll, ppoll, select and epoll over sets that mix utcp sockets and kernel fds
//! (fs/select.c, fs/eventpoll.c), by splitting each call between the two worlds.
//!
//! # Why split, and not mirror readiness into the placeholder eventfd
//! An eventfd is always in one of three states: writable (count 0), readable and writable, or
//! readable only (count at its maximum). It can never be "neither" — what a connecting socket
//! or a listener with nothing to accept is — and it has no POLLHUP, POLLERR, POLLRDHUP or
//! POLLPRI. Mirroring a utcp socket's `tcp_poll()` mask into it would show a non-blocking
//! `connect()` as done at once and hide resets, so these calls are hooked instead:
//!
//! * the utcp fds are asked `tcp_poll()` (utcp's own `poll()` with a zero timeout, or its
//!   epoll instance for the set's utcp half, which keeps Linux's level/edge/oneshot rules);
//! * the kernel fds go to the real `ppoll()` / `epoll_wait()`;
//! * when neither has an event, the thread sleeps in the real `ppoll()` on the kernel fds (or
//!   the kernel epoll fd) plus a per-thread wake eventfd that the utcp sockets' wakeups
//!   (`sk_data_ready` & co, via an epoll-style waiter registered on each socket) write to.
//!
//! The sleep is the kernel's, so a signal ends it with EINTR, and these calls are never
//! restarted — as Linux does for poll, select and epoll_wait whatever SA_RESTART says.

use crate::ffi::sys;
use crate::state::Preload;
use parking_lot::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use utcp::socket::sock::EpWaiter;
use utcp::syscall::PollFd;

/// An eventfd owned by the library (closed when the last reference goes, so a socket's
/// wakeup racing with a thread's exit never writes to a reused fd number).
pub struct WakeFd(pub i32);

impl WakeFd {
    /// Makes the eventfd readable.
    pub fn signal(&self) {
        sys::eventfd_signal(self.0);
    }
    /// Empties it.
    pub fn drain(&self) {
        sys::eventfd_drain(self.0);
    }
}

impl Drop for WakeFd {
    fn drop(&mut self) {
        sys::close(self.0);
    }
}

thread_local! {
    static WAKE: std::cell::OnceCell<Arc<WakeFd>> = const { std::cell::OnceCell::new() };
}

// DEVIATION(linux): the wake eventfd takes an fd number, so after a thread's first wait on a
// utcp socket the numbers the kernel hands out are one higher than without the library.
/// This thread's wake eventfd.
fn wake_fd() -> Result<Arc<WakeFd>, i32> {
    WAKE.with(|w| {
        if let Some(f) = w.get() {
            return Ok(f.clone());
        }
        let fd = sys::eventfd_nonblock_cloexec()?;
        let f = Arc::new(WakeFd(fd));
        let _ = w.set(f.clone());
        Ok(f)
    })
}

/// A waiter that wakes `fd` (registered on utcp sockets; dropped to unregister).
fn waiter_for(fd: Arc<WakeFd>) -> Arc<EpWaiter> {
    Arc::new(EpWaiter { ready: AtomicBool::new(true), notify: Box::new(move || fd.signal()) })
}

/// What is left of `deadline` (`None`: wait forever).
fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

/// `poll`/`ppoll` over `fds` where at least one is a utcp socket. Returns the count of
/// entries with events, or the kernel's errno (EINTR from the sleep).
pub fn poll_mixed(
    st: &Preload,
    fds: &mut [libc::pollfd],
    timeout: Option<Duration>,
    sigmask: Option<&libc::sigset_t>,
) -> Result<usize, i32> {
    let mut utcp_at: Vec<(usize, i32)> = Vec::new();
    let mut kern_at: Vec<usize> = Vec::new();
    for (i, p) in fds.iter().enumerate() {
        match st.ufd(p.fd) {
            Some(u) => utcp_at.push((i, u)),
            None => kern_at.push(i),
        }
    }
    let wake = wake_fd()?;
    let waiter = waiter_for(wake.clone());
    for &(_, u) in &utcp_at {
        if let Ok(s) = st.stack.sockfd_lookup(u) {
            s.sk.add_ep_waiter(&waiter);
        }
    }
    let mut kfds: Vec<libc::pollfd> = kern_at.iter().map(|&i| fds[i]).collect();
    kfds.push(libc::pollfd { fd: wake.0, events: libc::POLLIN, revents: 0 });
    let mut ufds: Vec<PollFd> =
        utcp_at.iter().map(|&(i, u)| PollFd { fd: u, events: fds[i].events, revents: 0 }).collect();
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        wake.drain();
        let nu = st.stack.poll(&mut ufds, Some(Duration::ZERO)).map_err(|e| e.as_i32())?;
        let left = if nu > 0 { Some(Duration::ZERO) } else { remaining(deadline) };
        sys::ppoll(&mut kfds, left, sigmask)?;
        let nk = kfds[..kern_at.len()].iter().filter(|p| p.revents != 0).count();
        if nk > 0 && nu == 0 {
            // Woken by a kernel fd: report the utcp side as it is now too.
            st.stack.poll(&mut ufds, Some(Duration::ZERO)).map_err(|e| e.as_i32())?;
        }
        let nu = ufds.iter().filter(|p| p.revents != 0).count();
        if nu + nk > 0 || left == Some(Duration::ZERO) {
            for (j, &i) in kern_at.iter().enumerate() {
                fds[i].revents = kfds[j].revents;
            }
            for (j, &(i, _)) in utcp_at.iter().enumerate() {
                fds[i].revents = ufds[j].revents;
            }
            return Ok(nu + nk);
        }
    }
}

/// The utcp half of a kernel epoll instance: a utcp epoll fd holding the set's utcp
/// sockets (with the caller's events and data), and the threads asleep on the instance.
pub struct EpShadow {
    /// The utcp epoll fd.
    pub uep: i32,
    /// Registered on every utcp socket added: wakes the sleepers.
    waiter: Arc<EpWaiter>,
    sleepers: Arc<Mutex<Vec<Arc<WakeFd>>>>,
}

impl EpShadow {
    /// The half for utcp epoll fd `uep`.
    pub fn new(uep: i32) -> EpShadow {
        let sleepers: Arc<Mutex<Vec<Arc<WakeFd>>>> = Arc::default();
        let s2 = sleepers.clone();
        let waiter = Arc::new(EpWaiter {
            ready: AtomicBool::new(true),
            notify: Box::new(move || {
                for w in s2.lock().iter() {
                    w.signal();
                }
            }),
        });
        EpShadow { uep, waiter, sleepers }
    }
}

/// `epoll_ctl()` of utcp socket `u` (kernel fd `k`) on kernel epoll fd `epfd`.
pub fn epoll_ctl_utcp(st: &Preload, epfd: i32, op: i32, u: i32, events: u32, data: u64) -> Result<(), i32> {
    let shadow = match st.epoll_shadow(epfd, op == libc::EPOLL_CTL_ADD).map_err(|e| e.as_i32())? {
        Some(s) => s,
        None => return Err(libc::ENOENT),
    };
    st.stack.epoll_ctl(shadow.uep, op, u, events, data).map_err(|e| e.as_i32())?;
    if op == libc::EPOLL_CTL_ADD {
        if let Ok(s) = st.stack.sockfd_lookup(u) {
            s.sk.add_ep_waiter(&shadow.waiter);
        }
    }
    Ok(())
}

/// Removes this thread's wake fd from an instance's sleepers when the wait ends.
struct Sleeping<'a> {
    shadow: &'a EpShadow,
    wake: Arc<WakeFd>,
}

impl Drop for Sleeping<'_> {
    fn drop(&mut self) {
        let mut s = self.shadow.sleepers.lock();
        if let Some(i) = s.iter().position(|w| Arc::ptr_eq(w, &self.wake)) {
            s.swap_remove(i);
        }
    }
}

/// `epoll_wait`/`epoll_pwait` on kernel epoll fd `epfd` whose set holds utcp sockets:
/// utcp events first, then the kernel's, at most `out.len()` in all.
pub fn epoll_wait_mixed(
    st: &Preload,
    epfd: i32,
    shadow: &EpShadow,
    out: &mut [libc::epoll_event],
    timeout: Option<Duration>,
    sigmask: Option<&libc::sigset_t>,
) -> Result<usize, i32> {
    if out.is_empty() {
        return Err(libc::EINVAL);
    }
    let wake = wake_fd()?;
    shadow.sleepers.lock().push(wake.clone());
    let _sleeping = Sleeping { shadow, wake: wake.clone() };
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        wake.drain();
        let u = st.stack.epoll_wait(shadow.uep, out.len() as i32, Some(Duration::ZERO)).map_err(|e| e.as_i32())?;
        for (slot, (ev, data)) in out.iter_mut().zip(u.iter()) {
            *slot = libc::epoll_event { events: *ev, u64: *data };
        }
        let mut n = u.len();
        if n < out.len() {
            n += sys::epoll_wait_now(epfd, &mut out[n..])?;
        }
        let left = remaining(deadline);
        if n > 0 || left == Some(Duration::ZERO) {
            return Ok(n);
        }
        let mut pf = [
            libc::pollfd { fd: epfd, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: wake.0, events: libc::POLLIN, revents: 0 },
        ];
        sys::ppoll(&mut pf, left, sigmask)?;
    }
}

/// select()'s sets as poll events (fs/select.c `POLLIN_SET`, `POLLOUT_SET`, `POLLEX_SET`).
pub mod select_sets {
    /// Asked for a read set bit.
    pub const POLLIN_SET: i16 = libc::POLLRDNORM | libc::POLLRDBAND | libc::POLLIN | libc::POLLHUP | libc::POLLERR;
    /// Asked for a write set bit.
    pub const POLLOUT_SET: i16 = libc::POLLWRBAND | libc::POLLWRNORM | libc::POLLOUT | libc::POLLERR;
    /// Asked for an exception set bit.
    pub const POLLEX_SET: i16 = libc::POLLPRI;
}
