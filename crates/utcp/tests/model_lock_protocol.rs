//! Model check of the socket lock / backlog / prequeue / wakeup protocol of
//! `crates/utcp/src/socket/sock.rs`, explored with shuttle's random and PCT schedulers.
//!
//! This is a *model*: a miniature copy of the protocol, not the code. The real `Sock` (with
//! `tcp_recvmsg`, `tcp_sendmsg`, `tcp_close`, poll and epoll) runs under shuttle in
//! `tests/shuttle_sock.rs` (`cargo test -p utcp --features shuttle --test shuttle_sock`).
//! What this file adds is its negative tests: it runs known-broken variants of the protocol
//! and expects shuttle to find the bug, showing in every build that the exploration reaches
//! those schedules — the real code, being right, can show that only when it is broken by hand.
//!
//! # The miniature and how it maps to sock.rs
//!
//! [`Sock`] below is `socket::sock::Sock` with TCP reduced to "append the segment number to
//! the receive queue, or hand it to the reader installed in `tp->ucopy`":
//!
//! | model | sock.rs |
//! |---|---|
//! | `slock: Mutex<Slock>` with `owned`, `backlog`, `prequeue`, `ucopy_task`, `wake_gen`, `deferred_timers` | the same fields of `Slock` |
//! | `tp: Mutex<Tp>` held by the owner for its whole ownership | `tp: Mutex<TcpSock>` held in `OwnedSock` |
//! | `cv`, `ev_gen`, `sleepers` | the same (`parking_lot` → shuttle primitives) |
//! | [`Sock::lock_sock`], [`Sock::release_sock`], [`Sock::lock_drained`], [`Sock::release_backlog`] | `lock_sock`, `release_sock`, `lock_drained`, `__release_sock` (prequeue first, then backlog, then deferred timers) |
//! | [`Sock::sk_wait_data`] | `sk_wait_data`: backlog drain with ucopy, `lock_drained`, install `ucopy_task`, give up ownership under `slock`, spin on `ev_gen`, `sleepers`-registered re-check and condvar wait, re-own, clear `ucopy_task`, `tcp_prequeue_process`, backlog drain |
//! | [`Sock::rcv_softirq`] | `rcv_softirq`: owned → backlog; reader installed (prequeue on) → prequeue, wake on the first; else process under `slock` then wake |
//! | [`Sock::run_timers`] | `run_timers`: owned → `deferred_timers`; else process the prequeue, fire |
//! | [`Sock::wake_all`] | `wake_all`: bump `ev_gen`, and only if someone sleeps bump `wake_gen` under `slock` and notify |
//! | [`Sock::process`] | `process_seg` / `softirq_process` → `tcp_v4_do_rcv` → `tcp_data_queue` (`tcp_direct_copy` when ucopy is installed and nothing is queued) and the `finish` wakeup |
//! | [`recv`] | `tcp_recvmsg_locked`'s loop: read the receive queue, install the reader for the prequeue when the queue is drained, `sk_wait_data`, `release_sock` |
//!
//! Left out: real clocks and deadlines (a wait has no timeout, so a lost wakeup or a segment
//! stranded on a queue shows up as a deadlock, which shuttle reports, or as reordering), cancellation, epoll,
//! backlog limits and coalescing, the prequeue overflow path, and TCP itself.
//!
//! # What is checked
//!
//! Threads: packet input delivering segments 0..N in order, a reader that must receive all N,
//! another process owning and releasing the socket in a loop (a concurrent `send`), and a
//! timer firing. For every explored schedule:
//!
//! * **no lost wakeup, nothing stranded**: every thread finishes (a reader asleep while its
//!   data sits on the backlog or prequeue, with nobody left to wake it, is a deadlock);
//!   whenever ownership is given up the backlog is empty and no deferred timer is pending;
//!   at the end every queue is empty, `sleepers` is 0;
//! * **arrival order**: TCP input sees the segments in arrival order, and the reader gets
//!   them in order, each once;
//! * **mutual exclusion**: no two threads run TCP input at once.
//!
//! The checks have teeth: [`stranding_bug_is_found`] runs the variant of `sk_wait_data` from
//! before `lock_drained` (drain the backlog, drop `slock`, retake it and give up ownership)
//! and expects shuttle to find the schedule where a segment lands on the backlog in that gap
//! and is overtaken by later segments processed directly (or sleeps there forever);
//! [`lost_wakeup_bug_is_found`] registers in `sleepers` after the re-check instead of before
//! and expects the deadlock of a lost wakeup.

use shuttle::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use shuttle::sync::{Condvar, Mutex, MutexGuard};
use shuttle::thread;
use std::collections::VecDeque;
use std::sync::Arc;

/// Segments delivered per run.
const N: u32 = 4;

#[derive(Default)]
struct Slock {
    owned: bool,
    backlog: VecDeque<u32>,
    prequeue: VecDeque<u32>,
    ucopy_task: bool,
    wake_gen: u64,
    deferred_timers: bool,
}

#[derive(Default)]
struct Tp {
    /// The receive queue (`copied_seq != rcv_nxt` while non-empty).
    rcvq: VecDeque<u32>,
    /// Every segment in the order TCP input processed it.
    order: Vec<u32>,
}

struct Sock {
    slock: Mutex<Slock>,
    tp: Mutex<Tp>,
    cv: Condvar,
    ev_gen: AtomicU64,
    sleepers: AtomicU32,
    in_input: AtomicBool,
    /// `net.ipv4.tcp_low_latency == 0`.
    prequeue_on: bool,
    /// Use the pre-`lock_drained` `sk_wait_data` (the bug).
    buggy_wait_release: bool,
    /// Register in `sleepers` only after the re-check (a lost-wakeup bug).
    buggy_sleepers: bool,
}

struct Owned<'a> {
    tp: Option<MutexGuard<'a, Tp>>,
}

impl Owned<'_> {
    fn tp(&mut self) -> &mut Tp {
        self.tp.as_mut().unwrap()
    }
}

impl Sock {
    fn new(prequeue_on: bool, buggy_wait_release: bool) -> Sock {
        Sock {
            slock: Mutex::new(Slock::default()),
            tp: Mutex::new(Tp::default()),
            cv: Condvar::new(),
            ev_gen: AtomicU64::new(0),
            sleepers: AtomicU32::new(0),
            in_input: AtomicBool::new(false),
            prequeue_on,
            buggy_wait_release,
            buggy_sleepers: false,
        }
    }

    /// `tcp_v4_do_rcv` → `tcp_data_queue`: direct copy into the installed reader when nothing
    /// is queued (`tcp_direct_copy`), else queue. The caller wakes afterwards (`finish`).
    fn process(&self, tp: &mut Tp, seg: u32, ucopy: Option<&mut Vec<u32>>) {
        assert!(!self.in_input.swap(true, Ordering::SeqCst), "two threads in TCP input");
        thread::yield_now();
        tp.order.push(seg);
        match ucopy {
            Some(u) if tp.rcvq.is_empty() => u.push(seg),
            _ => tp.rcvq.push_back(seg),
        }
        self.in_input.store(false, Ordering::SeqCst);
    }

    fn wake_all(&self) {
        self.ev_gen.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            {
                let mut s = self.slock.lock().unwrap();
                s.wake_gen += 1;
            }
            self.cv.notify_all();
        }
    }

    fn lock_sock(&self) -> Owned<'_> {
        let mut s = self.slock.lock().unwrap();
        while s.owned {
            s = self.cv.wait(s).unwrap();
        }
        s.owned = true;
        drop(s);
        Owned { tp: Some(self.tp.lock().unwrap()) }
    }

    /// `__release_sock`: prequeue (arrived before ownership), backlog, deferred timers.
    fn release_backlog(&self, g: &mut Owned<'_>, mut ucopy: Option<&mut Vec<u32>>) {
        loop {
            let (pre, batch, timers) = {
                let mut s = self.slock.lock().unwrap();
                if s.backlog.is_empty() && !s.deferred_timers && s.prequeue.is_empty() {
                    break;
                }
                let t = std::mem::take(&mut s.deferred_timers);
                (std::mem::take(&mut s.prequeue), std::mem::take(&mut s.backlog), t)
            };
            for seg in pre.into_iter().chain(batch) {
                self.process(g.tp(), seg, ucopy.as_deref_mut());
                self.wake_all();
            }
            let _ = timers; // tcp_timer_fire: no state in the model
        }
    }

    fn lock_drained(&self, g: &mut Owned<'_>, mut ucopy: Option<&mut Vec<u32>>) -> MutexGuard<'_, Slock> {
        loop {
            self.release_backlog(g, ucopy.as_deref_mut());
            let s = self.slock.lock().unwrap();
            if s.backlog.is_empty() && !s.deferred_timers && s.prequeue.is_empty() {
                return s;
            }
        }
    }

    fn give_up(&self, s: &mut Slock) {
        assert!(s.backlog.is_empty(), "ownership given up with segments on the backlog");
        assert!(!s.deferred_timers, "ownership given up with a deferred timer pending");
        s.owned = false;
    }

    fn release_sock(&self, mut g: Owned<'_>) {
        let mut s = self.lock_drained(&mut g, None);
        self.give_up(&mut s);
        drop(g.tp.take());
        drop(s);
        self.cv.notify_all();
    }

    fn sk_wait_data<'a>(&'a self, g: &mut Owned<'a>, mut ucopy: Option<&mut Vec<u32>>) {
        let gen0 = self.slock.lock().unwrap().wake_gen;
        let ev0 = self.ev_gen.load(Ordering::SeqCst);
        let before = ucopy.as_ref().map_or(0, |u| u.len());
        self.release_backlog(g, ucopy.as_deref_mut());
        if ucopy.as_ref().map_or(0, |u| u.len()) > before {
            return;
        }
        let mut s = if self.buggy_wait_release {
            // The bug: the backlog is drained, then `slock` is dropped and retaken before
            // ownership is given up, so a segment backlogged in between is stranded.
            thread::yield_now();
            self.slock.lock().unwrap()
        } else {
            let s = self.lock_drained(g, ucopy.as_deref_mut());
            if ucopy.as_ref().map_or(0, |u| u.len()) > before {
                // Late arrivals were copied straight in: return still owning.
                return;
            }
            s
        };
        if !self.buggy_wait_release {
            self.give_up(&mut s);
        } else {
            s.owned = false;
        }
        s.ucopy_task = ucopy.is_some();
        drop(g.tp.take());
        self.cv.notify_all();
        // The spin before sleeping, unlocked, on `ev_gen` (bounded).
        drop(s);
        for _ in 0..2 {
            if self.ev_gen.load(Ordering::SeqCst) != ev0 {
                break;
            }
            thread::yield_now();
        }
        let mut s = self.slock.lock().unwrap();
        loop {
            if self.buggy_sleepers {
                if s.wake_gen != gen0 || !s.prequeue.is_empty() || self.ev_gen.load(Ordering::SeqCst) != ev0 {
                    break;
                }
                // A waker that saw no sleeper skips `slock` and the notify: with `slock`
                // dropped here (as the spin does), its wakeup is lost.
                drop(s);
                thread::yield_now();
                s = self.slock.lock().unwrap();
                self.sleepers.fetch_add(1, Ordering::SeqCst);
                s = self.cv.wait(s).unwrap();
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            if s.wake_gen != gen0 || !s.prequeue.is_empty() || self.ev_gen.load(Ordering::SeqCst) != ev0 {
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
                break;
            }
            s = self.cv.wait(s).unwrap();
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
        while s.owned {
            s = self.cv.wait(s).unwrap();
        }
        s.owned = true;
        s.ucopy_task = false;
        drop(s);
        g.tp = Some(self.tp.lock().unwrap());
        // tcp_prequeue_process
        let pre = std::mem::take(&mut self.slock.lock().unwrap().prequeue);
        for seg in pre {
            self.process(g.tp(), seg, ucopy.as_deref_mut());
            self.wake_all();
        }
        self.release_backlog(g, ucopy);
    }

    fn rcv_softirq(&self, seg: u32) {
        let mut s = self.slock.lock().unwrap();
        if s.owned {
            s.backlog.push_back(seg);
            return;
        }
        if s.ucopy_task && self.prequeue_on {
            s.prequeue.push_back(seg);
            if s.prequeue.len() == 1 {
                s.wake_gen += 1;
                drop(s);
                self.cv.notify_all();
            }
            return;
        }
        let mut tp = self.tp.lock().unwrap();
        self.process(&mut tp, seg, None);
        drop(s);
        drop(tp);
        self.wake_all();
    }

    fn run_timers(&self) {
        let mut s = self.slock.lock().unwrap();
        if s.owned {
            s.deferred_timers = true;
            return;
        }
        let mut tp = self.tp.lock().unwrap();
        let pre = std::mem::take(&mut s.prequeue);
        let woke = !pre.is_empty();
        for seg in pre {
            self.process(&mut tp, seg, None);
        }
        drop(s);
        drop(tp);
        if woke {
            self.wake_all();
        }
    }
}

/// `tcp_recvmsg` for one call: returns once at least one segment was read (SO_RCVLOWAT 1),
/// installing itself for the prequeue when the receive queue is drained.
fn recv(sk: &Sock, out: &mut Vec<u32>) {
    let mut g = sk.lock_sock();
    let start = out.len();
    loop {
        while let Some(x) = g.tp().rcvq.pop_front() {
            out.push(x);
        }
        if out.len() > start {
            break;
        }
        let user_recv = sk.prequeue_on && g.tp().rcvq.is_empty();
        sk.sk_wait_data(&mut g, if user_recv { Some(&mut *out) } else { None });
        if out.len() > start {
            break;
        }
    }
    sk.release_sock(g);
}

fn scenario(prequeue_on: bool, buggy: bool) {
    scenario_with(Sock::new(prequeue_on, buggy))
}

fn scenario_with(sk: Sock) {
    scenario_threads(sk, true)
}

/// With `others`, a second process context and a timer run too (their notifies can mask a
/// lost wakeup, so the lost-wakeup mutant runs without them).
fn scenario_threads(sk: Sock, others: bool) {
    let sk = Arc::new(sk);
    let input = {
        let sk = sk.clone();
        thread::spawn(move || {
            for seg in 0..N {
                sk.rcv_softirq(seg);
            }
        })
    };
    let reader = {
        let sk = sk.clone();
        thread::spawn(move || {
            let mut got = Vec::new();
            while got.len() < N as usize {
                recv(&sk, &mut got);
            }
            got
        })
    };
    let other = {
        let sk = sk.clone();
        thread::spawn(move || {
            for _ in 0..if others { 2 } else { 0 } {
                let g = sk.lock_sock();
                thread::yield_now();
                sk.release_sock(g);
            }
        })
    };
    let timer = {
        let sk = sk.clone();
        thread::spawn(move || {
            if others {
                sk.run_timers()
            }
        })
    };
    input.join().unwrap();
    other.join().unwrap();
    timer.join().unwrap();
    let got = reader.join().unwrap();
    let want: Vec<u32> = (0..N).collect();
    assert_eq!(got, want, "reader got segments out of order, twice, or not at all");
    let tp = sk.tp.lock().unwrap();
    assert_eq!(tp.order, want, "TCP input processed segments out of arrival order");
    let s = sk.slock.lock().unwrap();
    assert!(!s.owned && s.backlog.is_empty() && s.prequeue.is_empty() && !s.deferred_timers);
    assert_eq!(sk.sleepers.load(Ordering::SeqCst), 0);
}

#[test]
fn protocol_random_prequeue_off() {
    shuttle::check_random(|| scenario(false, false), 3000);
}

#[test]
fn protocol_random_prequeue_on() {
    shuttle::check_random(|| scenario(true, false), 3000);
}

#[test]
fn protocol_pct_prequeue_off() {
    shuttle::check_pct(|| scenario(false, false), 3000, 3);
}

#[test]
fn protocol_pct_prequeue_on() {
    shuttle::check_pct(|| scenario(true, false), 3000, 3);
}

/// The checker has teeth: the `sk_wait_data` that released the socket without
/// `lock_drained` strands a segment on the backlog while the reader sleeps (shuttle reports
/// the deadlock). Fixed seed, so the outcome is deterministic.
#[test]
#[should_panic(expected = "out of order")]
fn stranding_bug_is_found() {
    shuttle::check_random_with_seed(|| scenario(false, true), 0x5eed, 20_000);
}

/// And for wakeups: a sleeper that re-checks `ev_gen` before registering in `sleepers`
/// (instead of after) misses a waker that saw no sleeper and skipped the notify: the reader
/// sleeps forever on data it was told about, which shuttle reports as a deadlock. (Run with
/// packet input and the reader only: the other threads' notifies would rescue the sleeper.)
#[test]
#[should_panic(expected = "deadlock")]
fn lost_wakeup_bug_is_found() {
    shuttle::check_pct(
        || {
            let mut sk = Sock::new(false, false);
            sk.buggy_sleepers = true;
            scenario_threads(sk, false)
        },
        20_000,
        3,
    );
}
