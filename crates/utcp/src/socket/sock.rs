//! `struct sock` machinery (net/core/sock.c): the two-level socket lock (`slock` + owned flag)
//! with its backlog, the prequeue, `sk_wait_data`, wakeups, and busy polling
//! (`sk_busy_loop`, include/net/busy_poll.h).
//!
//! Two contexts meet here, as in Linux. *Process context* (a thread inside a socket call)
//! takes the socket with [`Sock::lock_sock`], which marks it owned; *packet input* (whatever
//! thread runs a device's receive path) takes only `slock` and, finding the socket owned,
//! appends to the backlog, which [`Sock::release_sock`] drains. With the prequeue enabled and a
//! reader asleep in `sk_wait_data`, input queues raw segments for the reader, which runs TCP
//! input itself and copies straight into its buffer.

use crate::mib::LinuxMib;
use crate::netdev::NetDevice;
use crate::netns::Netns;
use crate::skb::{Frame, FrameBatch};
use crate::socket::sock_host::SockHost;
use crate::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use crate::sync::{Condvar, Mutex, MutexGuard};
use crate::tcp::input::Seg;
use crate::tcp::recvmsg::{IovIter, Ucopy};
use crate::tcp::{Ctx, Events, TcpSock, TcpState};
use crate::time::Instant;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Weak};

/// A validated inbound segment with its addressing, as queued on the backlog or prequeue.
#[derive(Clone, Debug)]
pub struct InSeg {
    /// The segment.
    pub(crate) seg: Seg,
    /// Remote address (IPv4 or IPv6, as the segment arrived).
    pub(crate) saddr: IpAddr,
    /// Local address.
    pub(crate) daddr: IpAddr,
    /// Remote port.
    pub(crate) sport: u16,
    /// Local port.
    pub(crate) dport: u16,
}

impl InSeg {
    /// A copy without the payload (enough to answer it with a RST).
    pub(crate) fn header_only(&self) -> InSeg {
        let seg = Seg {
            payload: bytes::Bytes::new(),
            frags: Vec::new(),
            frags_len: 0,
            seq: self.seg.seq,
            end_seq: self.seg.end_seq,
            ack_seq: self.seg.ack_seq,
            flags: self.seg.flags,
            window: self.seg.window,
            urg_ptr: self.seg.urg_ptr,
            mss: self.seg.mss,
            wscale: self.seg.wscale,
            sack_permitted: self.seg.sack_permitted,
            sack: self.seg.sack,
            ts: self.seg.ts,
            truesize: self.seg.truesize,
            rx: self.seg.rx,
            syn_hdr: None,
            ip_opt: None,
        };
        InSeg { seg, saddr: self.saddr, daddr: self.daddr, sport: self.sport, dport: self.dport }
    }
}

/// Emptied segment queues the owner of a socket lends it for its backlog (and a waiting
/// reader for its prequeue) while it holds the socket: a socket at rest keeps no queue
/// capacity, and a busy one does not allocate a queue per `release_sock`. Linux's backlog and
/// prequeue are lists threaded through the skbs, costing nothing when empty.
const INSEG_QUEUES_KEPT: usize = 8;
/// A queue grown past this many segments is freed rather than kept.
const INSEG_QUEUE_MAX_KEPT_CAP: usize = 4096;

thread_local! {
    static INSEG_QUEUES: core::cell::RefCell<Vec<VecDeque<InSeg>>> = const { core::cell::RefCell::new(Vec::new()) };
}

/// An empty queue from this thread's cache (or a new one, allocated on first use).
fn inseg_queue_take() -> VecDeque<InSeg> {
    crate::skb_queue::touch_local();
    INSEG_QUEUES.try_with(|c| c.try_borrow_mut().ok().and_then(|mut c| c.pop())).ok().flatten().unwrap_or_default()
}

/// Gives an emptied queue back to this thread's cache.
fn inseg_queue_give(mut q: VecDeque<InSeg>) {
    if q.capacity() == 0 || q.capacity() > INSEG_QUEUE_MAX_KEPT_CAP {
        return;
    }
    q.clear();
    crate::skb_queue::touch_local();
    let _ = INSEG_QUEUES.try_with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            if c.len() < INSEG_QUEUES_KEPT {
                c.push(q);
            }
        }
    });
}

/// [`crate::skb_queue::cache_reap`] for this thread's backlog queues.
pub(crate) fn inseg_cache_reap_local() {
    let _ = INSEG_QUEUES.try_with(|c| c.try_borrow_mut().map(|mut c| *c = Vec::new()));
}

/// What `slock` protects.
#[derive(Default)]
pub(crate) struct Slock {
    /// `sk_lock.owned`: a process holds the socket.
    pub(crate) owned: bool,
    /// `sk_backlog`: segments that arrived while owned.
    pub(crate) backlog: VecDeque<InSeg>,
    /// `sk_backlog.len` (truesize).
    pub(crate) backlog_len: u32,
    /// `tp->ucopy.prequeue`.
    pub(crate) prequeue: VecDeque<InSeg>,
    /// `tp->ucopy.memory`.
    pub(crate) prequeue_mem: u32,
    /// `tp->ucopy.task` is set: a reader waits and takes prequeued segments.
    pub(crate) ucopy_task: bool,
    /// Wakeup generation: bumped on every wakeup.
    pub(crate) wake_gen: u64,
    /// Timers fired while owned, to run in `release_sock` (`tcp_release_cb`).
    pub(crate) deferred_timers: bool,
    /// ICMP errors that arrived while owned (`TCP_MTU_REDUCED_DEFERRED` and the errors
    /// `tcp_v4_err` records as soft), handled in `release_sock` as owned-socket errors.
    /// Boxed: a `Vec` inline cost every socket 24 B for what only an owned socket hit by
    /// ICMP errors holds.
    #[allow(clippy::box_collection)] // the box is the point: 8 B inline instead of 24
    pub(crate) deferred_icmp: Option<Box<Vec<crate::ip::icmp::IcmpErr>>>,
    /// A reader is asleep in `sk_wait_data` (parked on the condition variable).
    pub(crate) sleeping: bool,
    /// Bumped every time a reader parks in `sk_wait_data`.
    pub(crate) sleep_seq: u64,
    /// The parked reader's deadline ([`Instant::FOREVER`] = none; 8 B where an `Option` took
    /// 16).
    pub(crate) sleep_deadline: Instant,
}

/// Interruption of a blocking call: our EINTR.
#[derive(Clone, Default)]
pub struct Cancel {
    inner: Arc<CancelInner>,
}

#[derive(Default)]
struct CancelInner {
    flag: AtomicBool,
    waiting_on: Mutex<Option<Weak<Sock>>>,
}

impl Cancel {
    /// A fresh token.
    pub fn new() -> Cancel {
        Cancel::default()
    }
    /// Interrupts the call using this token (like a signal): it returns EINTR, or the count
    /// copied so far.
    pub fn cancel(&self) {
        self.inner.flag.store(true, Ordering::SeqCst);
        let w = self.inner.waiting_on.lock().clone();
        if let Some(s) = w.and_then(|w| w.upgrade()) {
            s.wake_all();
        }
    }
    /// Whether `cancel` was called.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.inner.flag.load(Ordering::SeqCst)
    }
    /// Clears the token for reuse.
    pub fn reset(&self) {
        self.inner.flag.store(false, Ordering::SeqCst);
    }
}

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitResult {
    /// Woken by an event (or spuriously).
    Woken,
    /// The deadline passed.
    TimedOut,
    /// Interrupted.
    Cancelled,
}

/// Result of `sk_wait_data`: how it ended and the bytes copied directly (backlog, prequeue).
pub(crate) struct WaitOutcome {
    /// How the wait ended.
    pub(crate) result: WaitResult,
    /// Bytes copied straight to the reader from (backlog, prequeue).
    pub(crate) direct: (usize, usize),
}

/// Work left after the socket's locks are dropped.
struct Deferred {
    /// Frames were handed to the device: let it deliver them.
    flush: bool,
    wake: bool,
}

/// A registered epoll interest in this socket.
pub struct EpWaiter {
    /// Set by wakeups.
    pub ready: AtomicBool,
    /// Wakes the epoll instance.
    pub notify: Box<dyn Fn() + Send + Sync>,
}

/// A socket: lock, queues, wait queue, and the TCP state it protects.
pub struct Sock {
    /// Unique id (for timers and tables).
    pub id: u64,
    slock: Mutex<Slock>,
    tp: Mutex<TcpSock>,
    cv: Condvar,
    /// The stack this socket belongs to, as far as a socket reaches it.
    pub(crate) host: Arc<dyn SockHost>,
    /// Lockless snapshot: data, EOF or error readable (`skb_queue_empty_lockless` & co).
    pub(crate) readable: AtomicBool,
    /// `sk->sk_napi_id`.
    pub napi_id: AtomicU32,
    /// `sk->sk_ll_usec` (SO_BUSY_POLL).
    pub(crate) ll_usec: AtomicU32,
    /// `sk->sk_bound_dev_if`, for the socket lookup in packet input (the owner keeps it current).
    pub(crate) bound_dev_if: core::sync::atomic::AtomicI32,
    /// `sk->sk_prefer_busy_poll` (SO_PREFER_BUSY_POLL).
    pub(crate) prefer_busy_poll: AtomicBool,
    /// A listener's families (`RCV_V4` | `RCV_V6`, set by listen()): an AF_INET6 listener on
    /// `::` without IPV6_V6ONLY takes IPv4 segments too (`compute_score()`'s family rules).
    pub(crate) rcv_families: core::sync::atomic::AtomicU8,
    /// Generation of events, for edge-triggered epoll and lock-free wakeup checks.
    pub ev_gen: AtomicU64,
    /// Threads asleep in `sk_wait_data` on this socket.
    sleepers: AtomicU32,
    /// Deadline (ns) of this socket's entry in the stack's timer heap; `u64::MAX` = none.
    pub(crate) timer_armed: AtomicU64,
    /// `READ_ONCE(sk->sk_rcvbuf)`, `READ_ONCE(sk->sk_sndbuf)` and `sk_rmem_alloc` as packet
    /// input reads them under `slock` while a process owns the socket (and holds the TCP
    /// state): the backlog and prequeue limits.
    rcvbuf: AtomicU32,
    sndbuf: AtomicU32,
    rmem_alloc: AtomicU32,
    /// Epoll interests, boxed while there are any (8 B inline instead of a 24 B `Vec` in
    /// every socket no epoll instance watches).
    #[allow(clippy::box_collection)]
    ep: Mutex<Option<Box<Vec<Weak<EpWaiter>>>>>,
    /// Test hook run by a reader in `sk_wait_data` while it still owns the socket.
    /// Boxed: 8 B in every socket for a hook only tests set.
    owned_wait_hook: Mutex<Option<Box<OwnedWaitHook>>>,
    has_owned_wait_hook: AtomicBool,
    /// What connect() needs of a timewait sock to take its 4-tuple over (`tcp_twsk_unique()`),
    /// kept so that the port search can read it under the bind table's lock without taking
    /// this socket's. A leaf lock. `None` while the socket is no timewait sock (boxed: 8 B
    /// instead of 40 in every socket that never reaches TIME_WAIT).
    pub(crate) tw: Mutex<Option<Box<crate::tcp::ipv4::TwInfo>>>,
    /// A listener's request and accept queues, with a copy of what the SYN path reads of the
    /// listener ([`TcpSock::listener_queues`]), under a lock of their own (Linux's ehash
    /// bucket locks for request socks and `rskq_lock`): packet input and the SYN-ACK timer of
    /// a listener take this one and never the socket lock, so a SYN neither waits for nor is
    /// backlogged behind the process that owns the listener (accept(), setsockopt). `None`
    /// unless listening. Lock order: `tp` before `lsnr`.
    pub(crate) lsnr: Mutex<Option<Box<TcpSock>>>,
    /// `lsnr` is `Some` (read by packet input before it takes any lock).
    is_listener: AtomicBool,
    me: Weak<Sock>,
}

/// [`Sock::rcv_families`]: IPv4 segments (the bind table's `ports::FAM_V4`).
pub(crate) const RCV_V4: u8 = 1;
/// [`Sock::rcv_families`]: IPv6 segments.
pub(crate) const RCV_V6: u8 = 2;

/// See [`Sock::set_owned_wait_hook`].
pub(crate) type OwnedWaitHook = Arc<dyn Fn() + Send + Sync>;

/// The socket held by a process (`lock_sock` done): gives access to the TCP state.
pub struct OwnedSock<'s> {
    sock: &'s Sock,
    tp: Option<MutexGuard<'s, TcpSock>>,
    /// The TCP state was borrowed mutably: a listener's queues take a fresh copy of its
    /// options on release.
    dirty: bool,
}

impl Drop for OwnedSock<'_> {
    fn drop(&mut self) {
        let sock = self.sock;
        sock.release_owned(self);
    }
}

impl OwnedSock<'_> {
    /// The TCP state.
    pub(crate) fn tp(&self) -> &TcpSock {
        self.tp.as_ref().expect("owned")
    }
    /// The TCP state, mutable.
    pub(crate) fn tp_mut(&mut self) -> &mut TcpSock {
        self.dirty = true;
        self.tp.as_mut().expect("owned")
    }
    /// Segments wait on the backlog (`READ_ONCE(sk->sk_backlog.tail)`).
    pub fn backlog_pending(&self) -> bool {
        !self.sock.slock.lock().backlog.is_empty()
    }
    /// Runs protocol code with a context, then delivers its output and events.
    pub(crate) fn with_ctx_inner<R>(&mut self, f: impl FnOnce(&mut TcpSock, &mut Ctx<'_>) -> R) -> R {
        let sock = self.sock;
        sock.with_ctx(self, f)
    }
}

impl Sock {
    /// A new socket around `tp`.
    pub fn new(host: Arc<dyn SockHost>, tp: TcpSock) -> Arc<Sock> {
        let id = host.next_sock_id();
        let ll = tp.ll_usec;
        let bound_dev_if = tp.bound_dev_if;
        let (rcvbuf, sndbuf, rmem) = (tp.rcvbuf, tp.sndbuf, tp.rmem_alloc);
        Arc::new_cyclic(|me| Sock {
            id,
            slock: Mutex::new(Slock::default()),
            tp: Mutex::new(tp),
            cv: Condvar::new(),
            host,
            readable: AtomicBool::new(false),
            napi_id: AtomicU32::new(0),
            ll_usec: AtomicU32::new(ll),
            bound_dev_if: core::sync::atomic::AtomicI32::new(bound_dev_if),
            prefer_busy_poll: AtomicBool::new(false),
            rcv_families: core::sync::atomic::AtomicU8::new(RCV_V4),
            ev_gen: AtomicU64::new(0),
            sleepers: AtomicU32::new(0),
            timer_armed: AtomicU64::new(u64::MAX),
            rcvbuf: AtomicU32::new(rcvbuf),
            sndbuf: AtomicU32::new(sndbuf),
            rmem_alloc: AtomicU32::new(rmem),
            ep: Mutex::new(None),
            owned_wait_hook: Mutex::new(None),
            has_owned_wait_hook: AtomicBool::new(false),
            tw: Mutex::new(None),
            lsnr: Mutex::new(None),
            is_listener: AtomicBool::new(false),
            me: me.clone(),
        })
    }

    /// A weak reference to this socket.
    pub(crate) fn me_weak(&self) -> Weak<Sock> {
        self.me.clone()
    }

    /// Test hook: `hook` runs on the reader's thread each time a reader enters
    /// `sk_wait_data`, while it still owns the socket and before its `release_sock()` drains
    /// the backlog (with the reader's buffer installed as `tp->ucopy`). Whatever arrives for
    /// this socket meanwhile lands on the backlog, as segments arriving while a reader copies
    /// do; concurrency tests use it to reach the seed's TCPDirectCopyFromBacklog path on
    /// purpose instead of by luck. `None` removes it. Costs one relaxed load when unset.
    pub fn set_owned_wait_hook(&self, hook: Option<OwnedWaitHook>) {
        let mut h = self.owned_wait_hook.lock();
        self.has_owned_wait_hook.store(hook.is_some(), Ordering::Release);
        *h = hook.map(Box::new);
    }

    fn run_owned_wait_hook(&self) {
        if self.has_owned_wait_hook.load(Ordering::Acquire) {
            let h = self.owned_wait_hook.lock().as_deref().cloned();
            if let Some(h) = h {
                h();
            }
        }
    }

    /// The namespace.
    pub(crate) fn net(&self) -> &Netns {
        self.host.net()
    }

    /// The current time from the host's clock.
    pub fn now(&self) -> Instant {
        self.host.clock().now()
    }

    /// `lock_sock()`: waits until no other process owns the socket, then owns it.
    pub fn lock_sock(&self) -> OwnedSock<'_> {
        let mut s = self.slock.lock();
        while s.owned {
            self.cv.wait(&mut s);
        }
        s.owned = true;
        if s.backlog.capacity() == 0 {
            s.backlog = inseg_queue_take();
        }
        drop(s);
        let tp = self.tp.lock();
        OwnedSock { sock: self, tp: Some(tp), dirty: false }
    }

    /// `release_sock()`: processes the backlog, runs deferred timers, gives the socket up.
    /// Dropping the guard does the same, so no path (an early return, a `?`, a panic) can
    /// leave the socket owned.
    pub fn release_sock(&self, g: OwnedSock<'_>) {
        debug_assert!(std::ptr::eq(g.sock, self));
        drop(g);
    }

    /// The body of `release_sock()`, run by [`OwnedSock`]'s drop.
    fn release_owned(&self, g: &mut OwnedSock<'_>) {
        if g.tp.is_none() {
            return; // Not owned (a wait gave the socket up and never got it back).
        }
        // A listener the owner changed: its request queues take the options as they are now
        // (`tp` before `lsnr`, and no `slock` held: packet input holds `lsnr` while it
        // transmits).
        if let Some(tp) = g.tp.as_deref().filter(|tp| g.dirty && tp.state == TcpState::Listen) {
            if let Some(q) = self.lsnr.lock().as_mut() {
                q.sync_listener_opts(tp);
            }
        }
        // While unwinding from a panic, protocol code is not run again: the backlog stays
        // for the next owner, which drains it.
        let mut s = if std::thread::panicking() { self.slock.lock() } else { self.lock_drained(g, None).0 };
        s.owned = false;
        // Not owned, nothing is queued on the backlog: its queue goes back to the owner.
        let lent = if s.backlog.is_empty() { std::mem::take(&mut s.backlog) } else { VecDeque::new() };
        let tp = g.tp.take();
        if let Some(tp) = tp.as_deref() {
            // A timer the owner armed directly (setsockopt: SO_KEEPALIVE, TCP_KEEPIDLE...)
            // reaches the stack's timer heap.
            self.host.schedule_timer(self, tp.next_deadline());
            self.update_snapshot(tp);
        }
        drop(tp);
        drop(s);
        inseg_queue_give(lent);
        self.cv.notify_all();
    }

    /// Drains the backlog and deferred timers, then returns `slock` held with both empty, so
    /// that the caller can give up ownership atomically (as `release_sock` does under
    /// `slock`: nothing queued between the last check and clearing `owned` is stranded).
    fn lock_drained<'a>(
        &'a self,
        g: &mut OwnedSock<'_>,
        mut ucopy: Option<&mut IovIter<'_>>,
    ) -> (MutexGuard<'a, Slock>, usize) {
        let mut direct = 0;
        loop {
            direct += self.__release_sock(g, ucopy.as_deref_mut());
            let s = self.slock.lock();
            if s.backlog.is_empty() && !s.deferred_timers && s.prequeue.is_empty() && s.deferred_icmp.is_none() {
                return (s, direct);
            }
        }
    }

    /// `__release_sock()`: drains the backlog through `tcp_v4_do_rcv`; with `ucopy`, in-order
    /// data goes straight to the reader. Returns bytes copied directly.
    ///
    /// A non-empty prequeue is processed first: its segments arrived before the socket was
    /// owned, so before anything on the backlog. The reader empties the prequeue itself
    /// (`tcp_prequeue_process`) before it drains the backlog, so this only matters when
    /// another process (a concurrent `send`, `setsockopt`...) owned the socket while a woken
    /// reader waited for it.
    /// DEVIATION(linux): the seed's kernels left the prequeue to the reader and the delayed-ACK
    /// timer, so such an owner's `release_sock` processed backlogged segments ahead of
    /// earlier prequeued ones (an avoidable reordering, with its dup-ACKs); utcp keeps arrival
    /// order.
    fn __release_sock(&self, g: &mut OwnedSock<'_>, mut ucopy: Option<&mut IovIter<'_>>) -> usize {
        let mut direct = 0;
        loop {
            let (pre, batch, timers, icmp) = {
                let mut s = self.slock.lock();
                if s.backlog.is_empty() && !s.deferred_timers && s.prequeue.is_empty() && s.deferred_icmp.is_none() {
                    s.backlog_len = 0;
                    break;
                }
                let t = std::mem::take(&mut s.deferred_timers);
                let icmp = s.deferred_icmp.take().map(|b| *b).unwrap_or_default();
                let pre = if s.prequeue.is_empty() {
                    VecDeque::new()
                } else {
                    s.prequeue_mem = 0;
                    std::mem::take(&mut s.prequeue)
                };
                // Segments arriving while these are processed go to a queue of their own.
                let batch = if s.backlog.is_empty() {
                    VecDeque::new()
                } else {
                    std::mem::replace(&mut s.backlog, inseg_queue_take())
                };
                (pre, batch, t, icmp)
            };
            let (mut pre, mut batch) = (pre, batch);
            for inseg in pre.drain(..).chain(batch.drain(..)) {
                direct += self.process_seg(g, inseg, ucopy.as_deref_mut());
            }
            inseg_queue_give(pre);
            inseg_queue_give(batch);
            if timers {
                self.with_ctx(g, |tp, ctx| tp.tcp_timer_fire(ctx));
            }
            for e in icmp {
                self.with_ctx(g, |tp, ctx| tp.tcp_v4_err(ctx, &e, true));
            }
        }
        direct
    }

    fn process_seg(&self, g: &mut OwnedSock<'_>, inseg: InSeg, ucopy: Option<&mut IovIter<'_>>) -> usize {
        let mut uc = ucopy.map(|iov| Ucopy { iov, copied: 0 });
        let mut out = FrameBatch::take();
        let now = self.now();
        let ev;
        let reset;
        {
            let tp = g.tp_mut();
            let mut ctx = Ctx::new(now, self.host.net(), &mut out);
            if let Some(u) = uc.as_mut() {
                ctx.ucopy = Some(u);
            }
            let hdr = inseg.header_only();
            let full = (tp.state == TcpState::Listen).then(|| inseg.clone());
            // Moved into `reset` only when a RST is due (then_some would copy it every time).
            reset = if crate::tcp::ipv6::sk_backlog_rcv(tp, &mut ctx, inseg) { Some((hdr, full)) } else { None };
            ev = std::mem::take(&mut ctx.ev);
            if let Some(child) = ctx.ev_child.take() {
                // The child's first frames leave before it is reachable (and can build more).
                self.host.dev_queue_xmit(ctx.out);
                self.adopt_child(tp, child);
            }
        }
        if let Some((hdr, full)) = reset {
            self.reset_or_redeliver(&hdr, full);
        }
        let copied = uc.map(|u| u.copied).unwrap_or(0);
        self.finish(g.tp(), ev, &mut out);
        copied
    }

    /// `__sk_flush_backlog()` while owning (reader reached its target but the backlog has data).
    pub(crate) fn flush_backlog(&self, g: &mut OwnedSock<'_>, ucopy: Option<&mut IovIter<'_>>) -> usize {
        self.__release_sock(g, ucopy)
    }

    /// Runs protocol code under ownership with a fresh context; transmits its output and
    /// delivers its events afterwards.
    pub(crate) fn with_ctx<R>(&self, g: &mut OwnedSock<'_>, f: impl FnOnce(&mut TcpSock, &mut Ctx<'_>) -> R) -> R {
        let mut out = FrameBatch::take();
        let now = self.now();
        let (r, ev) = {
            let tp = g.tp_mut();
            let mut ctx = Ctx::new(now, self.host.net(), &mut out);
            let r = f(tp, &mut ctx);
            (r, std::mem::take(&mut ctx.ev))
        };
        self.finish(g.tp(), ev, &mut out);
        r
    }

    /// After protocol work: schedule timers, wake waiters, transmit frames. Process context
    /// only (the socket is owned, so frames that come back land on the backlog).
    fn finish(&self, tp: &TcpSock, ev: Events, out: &mut Vec<Frame>) {
        let d = self.finish_locked(tp, ev, out);
        self.run_deferred(d);
    }

    /// The part of [`Sock::finish`] that needs the TCP state: timers, snapshot, unhashing, and
    /// handing the frames to the device — in build order, since the TCP state lock is held.
    fn finish_locked(&self, tp: &TcpSock, ev: Events, out: &mut Vec<Frame>) -> Deferred {
        let flush = !out.is_empty();
        self.host.dev_queue_xmit(out);
        self.host.schedule_timer(self, tp.next_deadline());
        self.update_snapshot(tp);
        if ev.destroy {
            self.host.unhash(self, tp);
        }
        let wake = (ev.data_ready && tcp_data_ready_ok(tp)) || ev.write_space || ev.state_change;
        Deferred { flush, wake }
    }

    /// The part of [`Sock::finish`] that must run with no lock of this socket held: wakeups
    /// and delivery (which may bring frames straight back into this socket).
    fn run_deferred(&self, d: Deferred) {
        if d.wake {
            self.wake_all();
        }
        if d.flush {
            self.host.dev_flush();
        }
    }

    /// Refreshes the lockless readiness snapshot from `tp`.
    pub(crate) fn refresh_snapshot(&self, tp: &TcpSock) {
        self.update_snapshot(tp)
    }

    /// Refreshes the lockless readiness snapshot.
    fn update_snapshot(&self, tp: &TcpSock) {
        let readable = tp.rcv_nxt != tp.copied_seq || tp.err.is_some() || tp.shutdown & crate::tcp::RCV_SHUTDOWN != 0;
        self.readable.store(readable, Ordering::Release);
        self.ll_usec.store(tp.ll_usec, Ordering::Relaxed);
        self.prefer_busy_poll.store(tp.prefer_busy_poll, Ordering::Relaxed);
        self.rcvbuf.store(tp.rcvbuf, Ordering::Relaxed);
        self.sndbuf.store(tp.sndbuf, Ordering::Relaxed);
        self.rmem_alloc.store(tp.rmem_alloc, Ordering::Relaxed);
        let tw = crate::tcp::ipv4::TwInfo::of(tp);
        let mut cur = self.tw.lock();
        match (cur.as_deref_mut(), tw) {
            (Some(c), Some(tw)) => *c = tw,
            (_, tw) => *cur = tw.map(Box::new),
        }
    }

    /// Wakes everyone waiting on this socket (`sk_data_ready` & co).
    pub fn wake_all(&self) {
        // Sleepers register in `sleepers` under `slock` and then re-check `ev_gen` (both
        // SeqCst), so a waker that sees no sleeper can skip the lock and the futex.
        self.ev_gen.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            {
                let mut s = self.slock.lock();
                s.wake_gen = s.wake_gen.wrapping_add(1);
            }
            self.cv.notify_all();
        }
        let eps: Vec<Arc<EpWaiter>> = {
            let mut ep = self.ep.lock();
            match ep.as_deref_mut() {
                None => Vec::new(),
                Some(v) => {
                    v.retain(|w| w.strong_count() > 0);
                    let eps = v.iter().filter_map(|w| w.upgrade()).collect();
                    if v.is_empty() {
                        *ep = None;
                    }
                    eps
                }
            }
        };
        for e in eps {
            e.ready.store(true, Ordering::Release);
            (e.notify)();
        }
    }

    /// A reader parked in `sk_wait_data`: `Some((park sequence number, its deadline))`. Lets a
    /// driver of a virtual clock see that a blocking call sleeps and until when.
    pub fn sleeper(&self) -> Option<(u64, Option<Instant>)> {
        let s = self.slock.lock();
        s.sleeping.then_some((s.sleep_seq, Some(s.sleep_deadline).filter(|&d| d != Instant::FOREVER)))
    }

    /// Makes parked readers re-check the clock (after a virtual clock moved) without
    /// signalling an event: a reader whose deadline has not passed parks again.
    pub fn kick_sleepers(&self) {
        let _s = self.slock.lock();
        self.cv.notify_all();
    }

    /// The backlog now: segments queued and `sk_backlog.len` (truesize).
    pub fn backlog_len(&self) -> (usize, u32) {
        let s = self.slock.lock();
        (s.backlog.len(), s.backlog_len)
    }

    /// Whether a process owns the socket (`sock_owned_by_user`).
    pub fn owned_by_user(&self) -> bool {
        self.slock.lock().owned
    }

    /// Registers an epoll interest.
    pub fn add_ep_waiter(&self, w: &Arc<EpWaiter>) {
        let mut ep = self.ep.lock();
        let v = ep.get_or_insert_default();
        v.retain(|w| w.strong_count() > 0);
        v.push(Arc::downgrade(w));
    }

    /// `sk_wait_data()`: releases the socket, sleeps until woken, the deadline, or
    /// cancellation, then owns it again. With `ucopy` the reader installs itself for the
    /// prequeue and processes it after waking (`tcp_prequeue_process`).
    pub(crate) fn sk_wait_data<'s>(
        &'s self,
        g: &mut OwnedSock<'s>,
        deadline: Option<Instant>,
        cancel: Option<&Cancel>,
        ucopy: Option<&mut IovIter<'_>>,
    ) -> WaitOutcome {
        self.sk_wait_from(g, deadline, cancel, ucopy, None)
    }

    /// `sk_wait_event()` for a condition that changes without the socket lock (a listener's
    /// accept queue): `ev0` is [`Sock::ev_gen`] as read before the caller looked at it, so a
    /// wakeup since then ends the wait at once instead of being lost.
    pub(crate) fn sk_wait_event<'s>(
        &'s self,
        g: &mut OwnedSock<'s>,
        deadline: Option<Instant>,
        cancel: Option<&Cancel>,
        ev0: u64,
    ) -> WaitResult {
        self.sk_wait_from(g, deadline, cancel, None, Some(ev0)).result
    }

    fn sk_wait_from<'s>(
        &'s self,
        g: &mut OwnedSock<'s>,
        deadline: Option<Instant>,
        cancel: Option<&Cancel>,
        mut ucopy: Option<&mut IovIter<'_>>,
        ev0: Option<u64>,
    ) -> WaitOutcome {
        self.run_owned_wait_hook();
        let gen0 = self.slock.lock().wake_gen;
        let ev0 = ev0.unwrap_or_else(|| self.ev_gen.load(Ordering::SeqCst));
        // release_sock(): drain the backlog first (it may hold what we wait for).
        let from_backlog = self.__release_sock(g, ucopy.as_deref_mut());
        if from_backlog > 0 {
            return WaitOutcome { result: WaitResult::Woken, direct: (from_backlog, 0) };
        }
        if let Some(c) = cancel {
            *c.inner.waiting_on.lock() = Some(self.me.clone());
        }
        let mut result = WaitResult::Woken;
        {
            let (mut s, late) = self.lock_drained(g, ucopy.as_deref_mut());
            if late > 0 {
                drop(s);
                return WaitOutcome { result: WaitResult::Woken, direct: (late, 0) };
            }
            s.ucopy_task = ucopy.is_some();
            s.owned = false;
            // Not owned while waiting: the backlog's queue (empty: drained) goes back. The
            // prequeue is not given storage here: lending it the queue made real-thread
            // transfers take loss probes (tests/real_threads.rs clean_*), for reasons not
            // found yet, so a waiting reader's prequeue still allocates as it fills.
            inseg_queue_give(std::mem::take(&mut s.backlog));
            let tp = g.tp.take();
            drop(tp);
            self.cv.notify_all();
            // Spin briefly before sleeping: on a real clock a futex sleep/wake pair costs more
            // than the gap between back-to-back segments (scheduling only; not observable).
            let spin = self.host.spin_before_sleep_us();
            if spin > 0 && !self.host.clock().is_virtual() {
                MutexGuard::unlocked(&mut s, || {
                    let start = self.now();
                    let mut n = 0u32;
                    while self.ev_gen.load(Ordering::SeqCst) == ev0 && !cancel.is_some_and(|c| c.is_cancelled()) {
                        n = n.wrapping_add(1);
                        if n.is_multiple_of(64) && self.now().saturating_since(start).as_micros() >= spin as u128 {
                            break;
                        }
                        std::hint::spin_loop();
                    }
                });
            }
            loop {
                self.sleepers.fetch_add(1, Ordering::SeqCst);
                if s.wake_gen != gen0 || !s.prequeue.is_empty() || self.ev_gen.load(Ordering::SeqCst) != ev0 {
                    self.sleepers.fetch_sub(1, Ordering::SeqCst);
                    break;
                }
                if cancel.is_some_and(|c| c.is_cancelled()) {
                    self.sleepers.fetch_sub(1, Ordering::SeqCst);
                    result = WaitResult::Cancelled;
                    break;
                }
                let now = self.now();
                if let Some(dl) = deadline {
                    if now >= dl {
                        self.sleepers.fetch_sub(1, Ordering::SeqCst);
                        result = WaitResult::TimedOut;
                        break;
                    }
                }
                s.sleeping = true;
                s.sleep_seq = s.sleep_seq.wrapping_add(1);
                s.sleep_deadline = deadline.unwrap_or(Instant::FOREVER);
                match (deadline, self.host.clock().is_virtual()) {
                    (Some(dl), false) => {
                        let d = dl.saturating_since(now);
                        self.cv.wait_for(&mut s, d);
                    }
                    _ => self.cv.wait(&mut s),
                }
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
                s.sleeping = false;
            }
            // lock_sock() again. `tp->ucopy.task` stays installed until the reader owns the
            // socket (Linux clears it under ownership, after the last prequeue run): were it
            // cleared while another process still owns the socket, a segment arriving after
            // that owner's release would be processed directly, ahead of the prequeued ones.
            while s.owned {
                self.cv.wait(&mut s);
            }
            s.owned = true;
            s.ucopy_task = false;
            if s.backlog.capacity() == 0 {
                s.backlog = inseg_queue_take();
            }
        }
        g.tp = Some(self.tp.lock());
        if let Some(c) = cancel {
            *c.inner.waiting_on.lock() = None;
        }
        let from_prequeue = self.tcp_prequeue_process(g, ucopy.as_deref_mut());
        let from_backlog = self.__release_sock(g, ucopy);
        WaitOutcome { result, direct: (from_backlog, from_prequeue) }
    }

    /// `tcp_prequeue_process()`: runs TCP input for prequeued segments in the reader's context.
    fn tcp_prequeue_process(&self, g: &mut OwnedSock<'_>, mut ucopy: Option<&mut IovIter<'_>>) -> usize {
        let mut batch = {
            let mut s = self.slock.lock();
            s.prequeue_mem = 0;
            std::mem::take(&mut s.prequeue)
        };
        if batch.is_empty() {
            inseg_queue_give(batch);
            return 0;
        }
        self.net().mib.inc(LinuxMib::TCPPrequeued);
        let mut direct = 0;
        for inseg in batch.drain(..) {
            direct += self.process_seg(g, inseg, ucopy.as_deref_mut());
        }
        inseg_queue_give(batch);
        direct
    }

    /// Packet input for this socket (`tcp_v4_rcv` after lookup, under `bh_lock_sock`):
    /// backlog when owned, prequeue when a reader waits for it, else process now.
    pub(crate) fn rcv_softirq(&self, inseg: InSeg, napi_id: u32) {
        if napi_id != 0 {
            self.napi_id.store(napi_id, Ordering::Relaxed);
        }
        // A listener's segments go to its request queues without the socket lock or the
        // owner test (tcp_v4_rcv: `if (sk->sk_state == TCP_LISTEN) { ret = tcp_v4_do_rcv(sk,
        // skb); goto put_and_return; }`), so accept() owning the listener never delays one.
        if self.is_listener.load(Ordering::Acquire) {
            if let Some(seg) = self.listen_rcv(inseg) {
                self.rcv_softirq_locked(seg);
            }
            return;
        }
        self.rcv_softirq_locked(inseg);
    }

    /// [`Sock::rcv_softirq`] for a socket that is not (or no longer) listening: under
    /// `bh_lock_sock`, backlog, prequeue or process now. (Its own function, so the segment is
    /// not copied into a new binding on the way.)
    fn rcv_softirq_locked(&self, inseg: InSeg) {
        let mut s = self.slock.lock();
        if s.owned {
            // tcp_add_backlog(): coalescing with the tail is tried first, even above the limit.
            let ts = inseg.seg.truesize;
            if let Some(tail) = s.backlog.back_mut() {
                if try_backlog_coalesce(tail, &inseg) {
                    s.backlog_len += ts;
                    drop(s);
                    self.net().mib.inc(LinuxMib::TCPBacklogCoalesce);
                    return;
                }
            }
            // sk_add_backlog(sk, skb, 2 * rcvbuf + sndbuf / 2 + 64K): backlog plus receive
            // queue memory, not counting this segment.
            if s.backlog_len as u64 + self.rmem_alloc.load(Ordering::Relaxed) as u64 > self.backlog_limit() {
                drop(s);
                self.net().mib.drop_reason(crate::mib::DropReason::SOCKET_BACKLOG);
                return;
            }
            s.backlog_len = s.backlog_len.saturating_add(ts);
            s.backlog.push_back(inseg);
            return;
        }
        if s.ucopy_task
            && self.net().sysctl.tcp_low_latency.get() == 0
            && (!inseg.seg.is_empty() || !s.prequeue.is_empty())
        {
            // tcp_prequeue(): a pure ACK skips it only when it is empty (else it would be
            // processed ahead of the segments queued before it).
            s.prequeue_mem += inseg.seg.truesize;
            s.prequeue.push_back(inseg);
            let rcvbuf = self.rcvbuf_hint();
            if s.prequeue_mem > rcvbuf {
                // Too much waiting: process it all here (TCPPrequeueDropped).
                let batch = std::mem::take(&mut s.prequeue);
                s.prequeue_mem = 0;
                self.net().mib.add(LinuxMib::TCPPrequeueDropped, batch.len() as u64);
                self.softirq_process(s, batch);
                return;
            }
            if s.prequeue.len() == 1 {
                s.wake_gen = s.wake_gen.wrapping_add(1);
                drop(s);
                self.cv.notify_all();
                self.arm_prequeue_delack();
            }
            return;
        }
        self.softirq_process_one(s, inseg);
    }

    /// Makes this socket a listener with `q` as its request and accept queues (listen()), or
    /// with `None` ends that (close, disconnect, a listen() that failed), returning the
    /// queues it had.
    pub(crate) fn set_listener_queues(&self, q: Option<Box<TcpSock>>) -> Option<Box<TcpSock>> {
        let mut l = self.lsnr.lock();
        self.is_listener.store(q.is_some(), Ordering::Release);
        std::mem::replace(&mut *l, q)
    }

    /// Runs `f` on the listener's request and accept queues (`None` when not listening).
    pub fn with_listener_queues<R>(&self, f: impl FnOnce(Option<&mut TcpSock>) -> R) -> R {
        let mut l = self.lsnr.lock();
        f(l.as_deref_mut())
    }

    /// Packet input for a listener: `tcp_v4_do_rcv` on its request queues under their own
    /// lock (a SYN, the ACK completing a request or a cookie, a RST for a request). Gives the
    /// segment back when the socket no longer listens.
    fn listen_rcv(&self, inseg: InSeg) -> Option<InSeg> {
        let mut l = self.lsnr.lock();
        let Some(q) = l.as_deref_mut() else { return Some(inseg) };
        let mut out = FrameBatch::take();
        let now = self.now();
        let hdr = inseg.header_only();
        let full = inseg.clone();
        let (reset, ev) = {
            let mut ctx = Ctx::new(now, self.host.net(), &mut out);
            let reset = crate::tcp::ipv6::sk_backlog_rcv(q, &mut ctx, inseg);
            if let Some(child) = ctx.ev_child.take() {
                // The child's first frames leave before it is reachable (and can build more).
                self.host.dev_queue_xmit(ctx.out);
                self.adopt_child(q, child);
            }
            (reset, std::mem::take(&mut ctx.ev))
        };
        let flush = !out.is_empty();
        self.host.dev_queue_xmit(&mut out);
        self.host.schedule_timer(self, q.next_deadline());
        drop(l);
        if ev.data_ready || ev.state_change {
            self.wake_all();
        }
        if flush {
            self.host.dev_flush();
        }
        if reset {
            self.reset_or_redeliver(&hdr, Some(full));
        }
        None
    }

    /// The SYN-ACK timer of a listener's requests (`reqsk_timer_handler`), under the request
    /// queues' lock. Returns false when the socket does not listen.
    fn listen_timers(&self) -> bool {
        let mut l = self.lsnr.lock();
        let Some(q) = l.as_deref_mut() else { return false };
        let mut out = FrameBatch::take();
        let now = self.now();
        if q.timers.get(crate::tcp::TcpTimer::Retrans).is_some_and(|t| t <= now) {
            q.clear_timer(crate::tcp::TcpTimer::Retrans);
            let mut ctx = Ctx::new(now, self.host.net(), &mut out);
            q.tcp_synack_timer(&mut ctx);
        }
        let flush = !out.is_empty();
        self.host.dev_queue_xmit(&mut out);
        self.host.schedule_timer(self, q.next_deadline());
        drop(l);
        if flush {
            self.host.dev_flush();
        }
        true
    }

    fn arm_prequeue_delack(&self) {
        // The ACK for prequeued data is owed by the reader; arm the delayed ACK (3/4 of
        // rto_min) in case it is slow.
        if let Some(mut tp) = self.tp.try_lock() {
            if tp.timers.get(crate::tcp::TcpTimer::DelAck).is_none() {
                let at = self.now() + crate::tcp::TCP_RTO_MIN * 3 / 4;
                tp.ack.pending |= crate::tcp::ack_flags::ICSK_ACK_TIMER | crate::tcp::ack_flags::ICSK_ACK_SCHED;
                tp.ack.timeout = at;
                tp.reset_timer(crate::tcp::TcpTimer::DelAck, at);
                self.host.schedule_timer(self, tp.next_deadline());
            }
        }
    }

    fn rcvbuf_hint(&self) -> u32 {
        self.rcvbuf.load(Ordering::Relaxed)
    }

    /// `tcp_add_backlog()`'s limit (6.18): `2 * sk_rcvbuf + sk_sndbuf / 2 + 64 KiB`.
    fn backlog_limit(&self) -> u64 {
        let limit = 2 * self.rcvbuf.load(Ordering::Relaxed) as u64 + (self.sndbuf.load(Ordering::Relaxed) / 2) as u64;
        (limit + 64 * 1024).min(u32::MAX as u64)
    }

    /// Processes segments in packet-input context while holding `slock` (not owned).
    fn softirq_process(&self, s: MutexGuard<'_, Slock>, batch: impl IntoIterator<Item = InSeg>) {
        let mut out = FrameBatch::take();
        let mut resets = Vec::new();
        let mut tp = self.tp.lock();
        let mut all_ev = Events::default();
        let now = self.now();
        for inseg in batch {
            self.softirq_rcv(&mut tp, &mut out, now, inseg, &mut resets, &mut all_ev);
        }
        self.softirq_finish(s, tp, all_ev, out, resets);
    }

    /// [`Sock::softirq_process`] for one segment, handed over directly rather than through an
    /// iterator (each step of which would copy the segment).
    fn softirq_process_one(&self, s: MutexGuard<'_, Slock>, inseg: InSeg) {
        let mut out = FrameBatch::take();
        let mut resets = Vec::new();
        let mut tp = self.tp.lock();
        let mut all_ev = Events::default();
        let now = self.now();
        self.softirq_rcv(&mut tp, &mut out, now, inseg, &mut resets, &mut all_ev);
        self.softirq_finish(s, tp, all_ev, out, resets);
    }

    /// One segment of [`Sock::softirq_process`]: its protocol processing, a RST to send
    /// afterwards noted in `resets`, its events added to `all_ev`.
    #[inline]
    fn softirq_rcv(
        &self,
        tp: &mut TcpSock,
        out: &mut FrameBatch,
        now: Instant,
        inseg: InSeg,
        resets: &mut Vec<(InSeg, Option<InSeg>)>,
        all_ev: &mut Events,
    ) {
        let mut ctx = Ctx::new(now, self.host.net(), out);
        let hdr = inseg.header_only();
        let full = (tp.state == TcpState::Listen).then(|| inseg.clone());
        if crate::tcp::ipv6::sk_backlog_rcv(tp, &mut ctx, inseg) {
            resets.push((hdr, full));
        }
        if let Some(child) = ctx.ev_child.take() {
            // The child's first frames leave before it is reachable (and can build more).
            self.host.dev_queue_xmit(ctx.out);
            self.adopt_child(tp, child);
        }
        let ev = std::mem::take(&mut ctx.ev);
        all_ev.data_ready |= ev.data_ready;
        all_ev.write_space |= ev.write_space;
        all_ev.state_change |= ev.state_change;
        all_ev.destroy |= ev.destroy;
        all_ev.new_data |= ev.new_data;
    }

    /// The end of [`Sock::softirq_process`]: the socket's events and output, then the RSTs.
    fn softirq_finish(
        &self,
        s: MutexGuard<'_, Slock>,
        tp: MutexGuard<'_, TcpSock>,
        all_ev: Events,
        mut out: FrameBatch,
        resets: Vec<(InSeg, Option<InSeg>)>,
    ) {
        drop(s);
        let d = self.finish_locked(&tp, all_ev, &mut out);
        drop(tp);
        self.run_deferred(d);
        for (hdr, full) in resets {
            self.reset_or_redeliver(&hdr, full);
        }
    }

    /// A listener found no request for a segment: answer with a RST, unless the segment raced
    /// the child's creation (looked up before `adopt_child` hashed it, processed after). Linux
    /// swaps the request for the child in ehash in one step (`inet_ehash_nolisten` in
    /// `inet_csk_complete_hashdance`), so its lookup always finds one of the two; here the
    /// request lives in the listener's SYN queue, so the lookup is done again.
    fn reset_or_redeliver(&self, hdr: &InSeg, full: Option<InSeg>) {
        if let Some(seg) = full {
            let key = (seg.daddr, seg.dport, seg.saddr, seg.sport);
            // The lookup tcp_v4_rcv() makes (a socket bound to another device does not count),
            // delivered to that socket directly: never back to a listener.
            let sk = self.host.__inet_lookup_established(key);
            if let Some(sk) = sk {
                sk.rcv_softirq(seg, 0);
                return;
            }
        }
        self.host.send_reset_for(hdr);
    }

    /// `inet_csk_complete_hashdance()`: turns this listener's completed request into a hashed
    /// child socket of the same stack (`inet_ehash_nolisten`, `__inet_inherit_port`) and
    /// queues it for accept() (`inet_csk_reqsk_queue_add`). The child has already processed
    /// the segment that completed it.
    fn adopt_child(&self, listener: &mut TcpSock, child: Box<TcpSock>) {
        let key = (child.saddr, child.sport, child.daddr, child.dport);
        let deadline = child.next_deadline();
        let sk_socket = child.sk_socket.clone();
        let reuseport = child.reuseport;
        let csk = Sock::new(self.host.clone(), *child);
        if !self.host.hash(key, csk.clone()) {
            return;
        }
        let fam = if key.0.is_ipv6() { RCV_V6 } else { RCV_V4 };
        self.host.inherit_port(csk.id, key.1, reuseport, fam);
        csk.peek_tp(|tp| csk.refresh_snapshot(tp));
        self.host.schedule_timer(&csk, deadline);
        if let Some(l) = listener.listen.as_mut() {
            l.accept_queue.push_back(csk, sk_socket);
        }
    }

    /// `tcp_v4_err()` after the lookup, under `bh_lock_sock`: handled now, or, when a process
    /// owns the socket, when it releases it (as an owned socket's error: soft, MTU deferred).
    pub(crate) fn icmp_err_softirq(&self, e: crate::ip::icmp::IcmpErr) {
        let mut s = self.slock.lock();
        if s.owned {
            let mtu = if e.from.is_ipv6() {
                e.icmp_type == crate::wire::icmpv6::ICMPV6_PKT_TOOBIG
            } else {
                e.icmp_type == crate::ip::icmp::ICMP_DEST_UNREACH && e.code == crate::ip::icmp::ICMP_FRAG_NEEDED
            };
            if !mtu {
                self.net().mib.inc(LinuxMib::LockDroppedIcmps);
            }
            let q = s.deferred_icmp.get_or_insert_default();
            if q.len() < 16 {
                q.push(e);
            }
            return;
        }
        let mut tp = self.tp.lock();
        let mut out = FrameBatch::take();
        let mut ctx = Ctx::new(self.now(), self.host.net(), &mut out);
        tp.tcp_v4_err(&mut ctx, &e, false);
        let ev = std::mem::take(&mut ctx.ev);
        drop(s);
        let d = self.finish_locked(&tp, ev, &mut out);
        drop(tp);
        self.run_deferred(d);
    }

    /// Fires this socket's due timers (the host's timer context).
    pub fn run_timers(&self) {
        if self.is_listener.load(Ordering::Acquire) && self.listen_timers() {
            return;
        }
        let mut s = self.slock.lock();
        if s.owned {
            s.deferred_timers = true;
            self.net().mib.inc(LinuxMib::DelayedACKLocked);
            return;
        }
        let mut tp = self.tp.lock();
        // The seed's tcp_delack_timer(): a pending prequeue is processed first.
        let pre = std::mem::take(&mut s.prequeue);
        s.prequeue_mem = 0;
        let mut out = FrameBatch::take();
        let now = self.now();
        let mut ev = Events::default();
        let mut resets = Vec::new();
        for inseg in pre {
            let mut ctx = Ctx::new(now, self.host.net(), &mut out);
            let hdr = inseg.header_only();
            let full = (tp.state == TcpState::Listen).then(|| inseg.clone());
            if crate::tcp::ipv6::sk_backlog_rcv(&mut tp, &mut ctx, inseg) {
                resets.push((hdr, full));
            }
            merge(&mut ev, std::mem::take(&mut ctx.ev));
        }
        {
            let mut ctx = Ctx::new(now, self.host.net(), &mut out);
            if tp.state == TcpState::Listen {
                if tp.timers.get(crate::tcp::TcpTimer::Retrans).is_some_and(|t| t <= now) {
                    tp.clear_timer(crate::tcp::TcpTimer::Retrans);
                    tp.tcp_synack_timer(&mut ctx);
                }
            } else {
                tp.tcp_timer_fire(&mut ctx);
            }
            merge(&mut ev, std::mem::take(&mut ctx.ev));
        }
        drop(s);
        let d = self.finish_locked(&tp, ev, &mut out);
        drop(tp);
        self.run_deferred(d);
        for (hdr, full) in resets {
            self.reset_or_redeliver(&hdr, full);
        }
    }

    /// `sk_busy_loop()` before `lock_sock` in `tcp_recvmsg`: with SO_BUSY_POLL set and
    /// nothing queued, poll the device that last fed this socket instead of sleeping.
    pub(crate) fn sk_busy_loop_if_idle(&self, nonblock: bool) {
        let usecs = self.ll_usec.load(Ordering::Relaxed);
        if usecs == 0 || self.readable.load(Ordering::Acquire) {
            return;
        }
        let napi_id = self.napi_id.load(Ordering::Relaxed);
        let Some(dev) = self.host.napi_by_id(napi_id) else { return };
        if !self.is_established_hint() {
            return;
        }
        self.napi_busy_loop(&*dev, nonblock, usecs);
    }

    fn is_established_hint(&self) -> bool {
        self.tp.try_lock().map(|t| t.state == TcpState::Established).unwrap_or(true)
    }

    /// `napi_busy_loop()`: polls `dev` until data arrives or `usecs` pass.
    fn napi_busy_loop(&self, dev: &dyn NetDevice, nonblock: bool, usecs: u32) {
        let start = self.now();
        let budget = self.busy_poll_budget();
        if self.prefer_busy_poll.load(Ordering::Relaxed) {
            // NAPI_STATE_PREFER_BUSY_POLL: the device's own poller leaves the queue to us for
            // the length of this busy poll.
            dev.napi_prefer_busy_poll(start + crate::time::Duration::from_micros(usecs as u64));
        }
        loop {
            let work = dev.napi_poll(budget);
            tracing::trace!(target: "napi_poll", work, budget);
            if work > 0 {
                self.net().mib.add(LinuxMib::BusyPollRxPackets, work as u64);
            }
            if nonblock || self.readable.load(Ordering::Acquire) {
                break;
            }
            if self.now().saturating_since(start).as_micros() as u64 >= usecs as u64 {
                break;
            }
            std::hint::spin_loop();
        }
    }

    fn busy_poll_budget(&self) -> usize {
        self.tp.try_lock().map(|t| t.ext().busy_poll_budget).filter(|b| *b > 0).unwrap_or(8) as usize
    }

    /// Locks the TCP state for a short, non-owning look (poll, getsockopt of snapshots).
    ///
    /// Takes `tp` alone, never `slock` first: an owner holds `tp` for its whole ownership and
    /// takes `slock` inside it (backlog checks, `release_sock`), so `slock` → `tp` here
    /// deadlocked a `poll()`/`getsockopt()` against a thread copying in `recv` on the same
    /// socket. Packet input takes `slock` → `tp` only when the socket is not owned, and nothing
    /// takes `slock` while holding `tp` outside ownership, so `tp` alone cannot close a cycle.
    /// The look waits while a process owns the socket (until it parks or releases it).
    pub fn peek_tp<R>(&self, f: impl FnOnce(&TcpSock) -> R) -> R {
        let tp = self.tp.lock();
        f(&tp)
    }
}

fn merge(a: &mut Events, b: Events) {
    a.data_ready |= b.data_ready;
    a.write_space |= b.write_space;
    a.state_change |= b.state_change;
    a.destroy |= b.destroy;
    a.new_data |= b.new_data;
    a.rehash |= b.rehash;
}

/// `tcp_data_ready()`'s condition: wake readers only once SO_RCVLOWAT bytes are there (or
/// the window is nearly full, or the connection is done).
///
/// A listener's `sk_data_ready` is `sock_def_readable` (a new child on the accept queue wakes
/// `accept()` unconditionally): without this, a blocking `accept()` that slept before the
/// handshake completed on another thread (NAPI delivery) was never woken.
fn tcp_data_ready_ok(tp: &TcpSock) -> bool {
    if tp.state == TcpState::Listen {
        return true;
    }
    let avail = tp.rcv_nxt.diff(tp.copied_seq);
    if tp.done
        || tp.err.is_some()
        || tp.shutdown & crate::tcp::RCV_SHUTDOWN != 0
        || tp.urg_data & crate::tcp::TCP_URG_VALID != 0
    {
        return true;
    }
    if avail == 0 {
        return false;
    }
    avail as i64 >= tp.rcvlowat.max(1) as i64
        || tp.receive_window() <= tp.ack.rcv_mss
        || tp.rmem_alloc > tp.rcvbuf / 8 * 7
}

/// `tcp_add_backlog()`'s coalescing: a segment continuing the backlog tail, with the same
/// flags and no options beyond timestamps, merges into it.
fn try_backlog_coalesce(tail: &mut InSeg, new: &InSeg) -> bool {
    let (t, n) = (&mut tail.seg, &new.seg);
    if t.end_seq != n.seq
        || t.flags != n.flags
        || t.flags.0 & !(crate::wire::TcpFlags::ACK.0 | crate::wire::TcpFlags::PSH.0) != 0
        || n.ack_seq.before(t.ack_seq)
        || !t.sack.is_empty()
        || !n.sack.is_empty()
        || t.ts.is_some() != n.ts.is_some()
        || t.urg_ptr != 0
        || n.urg_ptr != 0
        || t.len() + n.len() > 64 * 1024
    {
        return false;
    }
    // DEVIATION(linux): Linux also coalesces in-order data by stealing page fragments; our
    // segments carry one contiguous payload, and joining two would copy, so only pure ACKs
    // coalesce.
    if !n.is_empty() || !t.is_empty() {
        return false;
    }
    t.end_seq = n.end_seq;
    t.ack_seq = n.ack_seq;
    t.window = n.window;
    t.ts = n.ts;
    t.truesize += n.truesize;
    t.rx.segs = t.rx.segs.max(1) + n.rx.segs.max(1);
    true
}
