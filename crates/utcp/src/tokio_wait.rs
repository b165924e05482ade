//! The wait queue entry of a [`crate::tokio`] socket: how a task sleeping on a utcp socket is
//! woken by the stack itself.
//!
//! A socket's wakeups (`sk_data_ready`, `sk_write_space`, `sk_state_change`: [`Sock::wake_all`])
//! walk its wait queue, and epoll hangs an [`EpWaiter`] there (`ep_poll_callback`, see
//! `syscall/epoll.rs`). A tokio socket hangs one too, for its whole life; its `notify` wakes the
//! tasks parked on the socket instead of an epoll instance. So a task parked on `Pending` is
//! woken by the very wakeup that would end a blocking `recv()` or `epoll_wait()` — from
//! whatever thread runs it (packet input, a timer, another task's `send()`) — never by a poll
//! loop or a timer, and the runtime needs neither an I/O driver nor a timer.
//!
//! Every call underneath is non-blocking (`MSG_DONTWAIT`, `O_NONBLOCK`). On `EAGAIN` the task's
//! waker is registered and the call made once more before `Pending` is returned: a wakeup that
//! came between the first try and the registration finds no waker, but its effect is visible
//! to the second try (the stack wakes only after its socket locks are dropped), so no wakeup
//! is lost. Like `ep_poll_callback` without a key, a wakeup wakes readers and writers alike; a
//! task woken for nothing tries again and parks again.
//!
//! [`Sock::wake_all`]: crate::socket::sock::Sock::wake_all

use crate::errno::{Errno, SysResult};
use crate::socket::sock::EpWaiter;
use crate::socket::Socket;
use crate::sync::Mutex;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// `EPOLLIN | EPOLLRDNORM`.
pub(crate) const POLL_IN: u32 = 0x1 | 0x40;
/// `EPOLLOUT | EPOLLWRNORM`.
pub(crate) const POLL_OUT: u32 = 0x4 | 0x100;
/// `EPOLLERR`.
pub(crate) const POLL_ERR: u32 = 0x8;
/// `EPOLLHUP`.
pub(crate) const POLL_HUP: u32 = 0x10;
/// `EPOLLRDHUP`.
pub(crate) const POLL_RDHUP: u32 = 0x2000;

/// The two directions a task can wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Data, EOF, an error or a connection to accept.
    Read,
    /// Room in the send buffer, a finished connect, or an error.
    Write,
}

impl Direction {
    /// The `tcp_poll()` bits that end a wait in this direction (an error or a hangup ends
    /// both, as `poll()` reports them whatever was asked).
    fn mask(self) -> u32 {
        match self {
            Direction::Read => POLL_IN | POLL_RDHUP | POLL_ERR | POLL_HUP,
            Direction::Write => POLL_OUT | POLL_ERR | POLL_HUP,
        }
    }
}

/// The tasks parked on one socket, by direction.
#[derive(Default)]
struct Wakers {
    read: Mutex<Vec<Waker>>,
    write: Mutex<Vec<Waker>>,
    /// Tasks woken by the socket's wakeups, over the entry's life.
    woken: AtomicU64,
}

impl Wakers {
    fn slot(&self, dir: Direction) -> &Mutex<Vec<Waker>> {
        match dir {
            Direction::Read => &self.read,
            Direction::Write => &self.write,
        }
    }

    /// The socket's wakeup: wakes every parked task.
    fn wake(&self) {
        for slot in [&self.read, &self.write] {
            let ws = std::mem::take(&mut *slot.lock());
            self.woken.fetch_add(ws.len() as u64, Ordering::Relaxed);
            for w in ws {
                w.wake();
            }
        }
    }
}

/// A socket with a wait queue entry of its own (`add_wait_queue` for the socket's life).
pub(crate) struct Registration {
    sock: Arc<Socket>,
    /// Held here: the socket's wait queue keeps only a weak reference, dropped with us.
    _entry: Arc<EpWaiter>,
    wakers: Arc<Wakers>,
}

impl Registration {
    /// Hangs an entry on the wait queue of `sock`.
    pub(crate) fn new(sock: Arc<Socket>) -> Registration {
        let wakers = Arc::new(Wakers::default());
        let w = wakers.clone();
        let entry = Arc::new(EpWaiter {
            ready: crate::sync::atomic::AtomicBool::new(true),
            notify: Box::new(move || w.wake()),
        });
        sock.sk.add_ep_waiter(&entry);
        Registration { sock, _entry: entry, wakers }
    }

    /// Parks the task of `cx` on `dir` until the socket's next wakeup.
    fn park(&self, cx: &Context<'_>, dir: Direction) {
        let mut ws = self.wakers.slot(dir).lock();
        if !ws.iter().any(|w| w.will_wake(cx.waker())) {
            ws.push(cx.waker().clone());
        }
    }

    /// Runs the non-blocking `op`; on `EAGAIN` parks the task on `dir` and runs it once more
    /// (see the module docs), returning `Pending` if it still would block.
    pub(crate) fn poll_io<T>(
        &self,
        cx: &Context<'_>,
        dir: Direction,
        mut op: impl FnMut() -> SysResult<T>,
    ) -> Poll<io::Result<T>> {
        match op() {
            Err(Errno::EAGAIN) => {}
            r => return Poll::Ready(r.map_err(io_err)),
        }
        self.park(cx, dir);
        match op() {
            Err(Errno::EAGAIN) => Poll::Pending,
            r => Poll::Ready(r.map_err(io_err)),
        }
    }

    /// `tcp_poll()` of the socket.
    pub(crate) fn poll_mask(&self) -> u32 {
        crate::syscall::tcp_poll(&self.sock)
    }

    /// Ready in `dir` (returns the `tcp_poll()` mask), or `Pending` with the task parked.
    pub(crate) fn poll_ready(&self, cx: &Context<'_>, dir: Direction) -> Poll<u32> {
        let m = self.poll_mask();
        if m & dir.mask() != 0 {
            return Poll::Ready(m);
        }
        self.park(cx, dir);
        let m = self.poll_mask();
        if m & dir.mask() != 0 {
            Poll::Ready(m)
        } else {
            Poll::Pending
        }
    }

    /// Tasks this entry has woken so far.
    pub(crate) fn woken(&self) -> u64 {
        self.wakers.woken.load(Ordering::Relaxed)
    }
}

/// An errno as `std::io::Error` (`raw_os_error()` gives it back; `EAGAIN` is `WouldBlock`).
pub(crate) fn io_err(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}
