//! Concurrency models over the real socket code: shuttle explores the interleavings of threads
//! calling utcp's own `Sock` (lock, backlog, prequeue, wakeups), `tcp_recvmsg`, `tcp_sendmsg`,
//! `tcp_close`, poll and epoll, with utcp built with `--features shuttle` so that every lock,
//! condition variable and wakeup atomic of the stack is shuttle's (`utcp::sync`). Nothing here
//! re-implements the code under test (`model_lock_protocol.rs` is the miniature).
//!
//! Each execution builds two real stacks joined by a memlink with inline delivery (a frame
//! one stack sends is processed by the other on the sending thread, as Linux loopback does),
//! on a virtual clock that nobody advances: no timer or device thread runs, shuttle schedules
//! only the threads a test spawns. A wait that nothing would end is a deadlock, which shuttle
//! reports with the schedule that led to it.
//!
//! * [`input_racing_reader`]: a reader blocked in `tcp_recvmsg` while the peer's segments
//!   arrive (owned → backlog, reader installed → prequeue, else the receive queue), with the
//!   prequeue on and off: every byte arrives, in order, and the reader is woken.
//! * [`cancel_racing_data`]: a signal racing data and a blocked reader: the waker that takes
//!   no `slock`, which the `sleepers` / `ev_gen` protocol must not lose.
//! * [`release_sock_racing_input`]: processes owning and releasing the socket (`lock_sock` /
//!   `release_sock`, setsockopt, a timer firing while owned) while segments arrive: nothing is
//!   left on the backlog once `owned` clears, and TCP processed every segment.
//! * [`close_racing_recv_poll_epoll`]: `close()` racing a blocked `recv`, `poll` and
//!   `epoll_wait` on the same fd: no deadlock, no panic, each waiter returns what Linux's
//!   returns (see the test).
//! * [`epoll_wait_racing_wakeup`]: epoll polling a pipe as it is written: the event is not
//!   lost (a bug these models found).
//! * [`accept_racing_handshakes`]: the lockless listener: handshakes completing while
//!   `accept()` blocks and a setsockopt owns the listener: every child accepted, no segment
//!   backlogged, the options copied to the request queues.
//! * [`two_writers_and_ack_input`]: two threads sending on one socket while the peer's ACKs
//!   and window updates are processed on a third: segments leave in sequence order, each
//!   `send()` stays contiguous, the peer gets the stream.
//!
//! Iterations: `UTCP_SHUTTLE_ITERS` (default 200) random schedules and as many PCT schedules
//! (depth 3) per test and variant. Each test also counts the schedules that reached the path it
//! is about (input on a reader's backlog, the prequeue, ...) and, from the default count up,
//! fails when none did: the rarest is reached in about 3% of schedules, so missing it in 400
//! is not luck but a model that no longer explores what it claims to.
#![cfg(feature = "shuttle")]

use shuttle::scheduler::{PctScheduler, RandomScheduler};
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicU64 as StdAtomicU64, Ordering as StdOrdering};
use std::sync::Arc;
use utcp::api::{ADDR_A, ADDR_B};
use utcp::errno::Errno;
use utcp::mib::LinuxMib;
use utcp::netdev::memlink::{self, LinkConfig, MemPort};
use utcp::netdev::{NetDevice, RxHook};
use utcp::skb::Frame;
use utcp::socket::sock::{Cancel, Sock};
use utcp::stack::StackCore;
use utcp::sync::{thread, Mutex};
use utcp::syscall::opt::{SO_RCVBUF, TCP_NODELAY};
use utcp::syscall::{PollFd, AF_INET, SOCK_NONBLOCK, SOCK_STREAM, SOL_SOCKET, SOL_TCP};
use utcp::tcp::recvmsg::MSG_DONTWAIT;
use utcp::time::{Clock, Instant, VirtualClock};
use utcp::Stack;

const POLLIN: i16 = 0x1;
const POLLHUP: i16 = 0x10;
const POLLNVAL: i16 = 0x20;
const EPOLLIN: u32 = 0x1;

/// Whether enough schedules run for the coverage checks to hold whatever the seeds.
fn check_coverage() -> bool {
    iters() >= 200
}

fn iters() -> usize {
    std::env::var("UTCP_SHUTTLE_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(200)
}

/// Explores `f` under shuttle's random scheduler, then under PCT (depth 3).
fn explore(f: impl Fn() + Send + Sync + 'static) {
    // Shuttle treats every ordering as SeqCst (a stronger model than the hardware's) and warns
    // about each weaker one it meets; the code's orderings are not what these models check.
    let mut config = shuttle::Config::new();
    config.silence_warnings = true;
    let f = Arc::new(f);
    let g = f.clone();
    shuttle::Runner::new(RandomScheduler::new(iters()), config.clone()).run(move || g());
    shuttle::Runner::new(PctScheduler::new(3, iters()), config).run(move || f());
}

/// A device recording the (seq, payload length) of every segment it transmits, in transmit
/// order, in front of a memlink port.
struct Tap {
    port: Arc<MemPort>,
    /// (seq, payload length, whether a process owned the sending socket).
    sent: Mutex<Vec<(u32, u32, bool)>>,
    /// The socket whose ownership is recorded (A's connected socket).
    sk: Mutex<Option<std::sync::Weak<Sock>>>,
}

impl NetDevice for Tap {
    fn xmit(&self, frame: Frame) {
        let h = frame.head();
        let ihl = ((h[0] & 0x0f) as usize) * 4;
        let tot = u16::from_be_bytes([h[2], h[3]]) as usize;
        let doff = ((h[ihl + 12] >> 4) as usize) * 4;
        let seq = u32::from_be_bytes([h[ihl + 4], h[ihl + 5], h[ihl + 6], h[ihl + 7]]);
        // xmit runs with the sender's TCP state locked but never under its `slock`.
        let sk = self.sk.lock().as_ref().and_then(|w| w.upgrade());
        let owned = sk.is_some_and(|sk| sk.owned_by_user());
        self.sent.lock().push((seq, (tot - ihl - doff) as u32, owned));
        NetDevice::xmit(&*self.port, frame)
    }
    fn flush_tx(&self) {
        NetDevice::flush_tx(&*self.port)
    }
    fn mtu(&self) -> u32 {
        NetDevice::mtu(&*self.port)
    }
    fn attach(&self, hook: RxHook) {
        NetDevice::attach(&*self.port, hook)
    }
}

/// Message size of [`two_writers_and_ack_input`].
const LEN: usize = 1000;
/// Messages each writer sends there.
const MSGS: u8 = 3;
/// B's SO_RCVBUF there: a window of a few segments, smaller than what the writers queue, so
/// that much of A's data leaves when B's reads open the window: sent by ACK processing.
const RCVBUF: i32 = 4096;

/// Two stacks and an established connection: `cfd` on A (the client, TCP_NODELAY), `sfd` on
/// B (accepted).
struct Net {
    a: Arc<Stack>,
    b: Arc<Stack>,
    tap_a: Arc<Tap>,
    cfd: i32,
    sfd: i32,
    /// B's socket.
    sk: Arc<Sock>,
}

/// A clock that is not virtual (so a reader spins before it sleeps, with `slock` dropped, as
/// on the real clock) and moves 1 µs each time it is read: deterministic, and the spin ends.
#[derive(Default)]
struct TickClock(StdAtomicU64);

impl Clock for TickClock {
    fn now(&self) -> Instant {
        Instant::from_micros(1_000_000 + self.0.fetch_add(1, StdOrdering::Relaxed))
    }
}

fn net(prequeue: bool) -> Net {
    net_on(prequeue, Arc::new(VirtualClock::new(Instant::from_millis(1000))), None)
}

/// [`net`] on `clock`, with B's SO_RCVBUF set to `rcvbuf` (when given) before the handshake.
fn net_on(prequeue: bool, clock: Arc<dyn Clock>, rcvbuf: Option<i32>) -> Net {
    let (pa, pb) = memlink::pair(LinkConfig::default(), clock.clone());
    let tap_a = Arc::new(Tap { port: pa, sent: Mutex::new(Vec::new()), sk: Mutex::new(None) });
    let core_a = StackCore::new(ADDR_A, 1500, clock.clone(), 0x5151);
    core_a.attach_device(tap_a.clone() as Arc<dyn NetDevice>);
    let core_b = StackCore::new(ADDR_B, 1500, clock, 0xa7a7);
    // A short spin (on a clock that is not virtual): a few dozen scheduling points.
    core_b.spin_before_sleep_us.store(2, StdOrdering::Relaxed);
    core_b.attach_device(pb as Arc<dyn NetDevice>);
    let (a, b) = (Arc::new(Stack::from_core(core_a)), Arc::new(Stack::from_core(core_b)));
    b.core.net.sysctl.set_by_name("net.ipv4.tcp_low_latency", if prequeue { "0" } else { "1" }).unwrap();
    let l = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    if let Some(v) = rcvbuf {
        b.setsockopt_int(l, SOL_SOCKET, SO_RCVBUF, v).unwrap();
    }
    b.bind(l, SocketAddrV4::new(ADDR_B, 80)).unwrap();
    b.listen(l, 4).unwrap();
    let cfd = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    // Inline delivery: the whole handshake happens inside connect().
    a.connect(cfd, SocketAddrV4::new(ADDR_B, 80)).unwrap();
    a.setsockopt_int(cfd, SOL_TCP, TCP_NODELAY, 1).unwrap();
    let (sfd, _) = b.accept4(l, 0).unwrap();
    b.close(l).unwrap();
    let sk = b.sockfd_lookup(sfd).unwrap().sk.clone();
    tap_a.sent.lock().clear();
    *tap_a.sk.lock() = Some(Arc::downgrade(&a.sockfd_lookup(cfd).unwrap().sk));
    Net { a, b, tap_a, cfd, sfd, sk }
}

/// Message `i` of writer `w`: `len` bytes, each naming its writer, message and offset.
fn msg(w: u8, i: u8, len: usize) -> Vec<u8> {
    (0..len).map(|k| w.wrapping_mul(101) ^ i.wrapping_mul(37) ^ (k as u8)).collect()
}

fn send_all(st: &Stack, fd: i32, d: &[u8]) {
    let mut off = 0;
    while off < d.len() {
        off += st.send(fd, Some(&d[off..]), d.len() - off, 0).expect("send");
    }
}

/// B's socket after the threads joined: not owned, backlog empty.
fn assert_released(sk: &Sock) {
    assert!(!sk.owned_by_user(), "socket left owned");
    assert_eq!(sk.backlog_len(), (0, 0), "segments stranded on the backlog");
}

/// Paths the explored schedules took, summed over executions (outside shuttle's control).
static HITS_READER_BACKLOG: StdAtomicU64 = StdAtomicU64::new(0);
static HITS_PREQUEUE: StdAtomicU64 = StdAtomicU64::new(0);
static HITS_OWNED_BACKLOG: StdAtomicU64 = StdAtomicU64::new(0);
static HITS_SENT_FROM_INPUT: StdAtomicU64 = StdAtomicU64::new(0);
static HITS_TIMER_DEFERRED: StdAtomicU64 = StdAtomicU64::new(0);
/// [`cancel_racing_data`]'s outcomes: data, EINTR.
static HITS_CANCEL: [StdAtomicU64; 2] = [StdAtomicU64::new(0), StdAtomicU64::new(0)];
/// The results the explored schedules of [`close_racing_recv_poll_epoll`] gave.
static OUTCOMES: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// (a) Packet input racing a reader in `tcp_recvmsg`: the writer's thread runs B's packet
/// input (inline delivery) while B's reader is between `lock_sock`, the receive queue, the
/// backlog drain, `sk_wait_data` and the prequeue. No segment is stranded (the reader would
/// sleep forever: a deadlock), none is reordered or duplicated (the bytes compare), the reader
/// is woken for each.
///
/// Also on a clock that is not virtual, where the reader spins before sleeping with `slock`
/// dropped, so input is processed and wakes it (`ev_gen`) while it is between the two.
#[test]
fn input_racing_reader() {
    for (prequeue, spin) in [(true, false), (false, false), (true, true), (false, true)] {
        let (b0, p0) = (HITS_READER_BACKLOG.load(StdOrdering::Relaxed), HITS_PREQUEUE.load(StdOrdering::Relaxed));
        explore(move || {
            let n = if spin { net_on(prequeue, Arc::new(TickClock::default()), None) } else { net(prequeue) };
            // Coverage: the reader, about to sleep while still owning the socket, finds input
            // on the backlog (which its release_sock() must process before it sleeps).
            let weak = Arc::downgrade(&n.sk);
            n.sk.set_owned_wait_hook(Some(Arc::new(move || {
                if weak.upgrade().is_some_and(|sk| sk.backlog_len().0 > 0) {
                    HITS_READER_BACKLOG.fetch_add(1, StdOrdering::Relaxed);
                }
            })));
            let msgs: Vec<Vec<u8>> = (0..3).map(|i| msg(1, i, 300)).collect();
            let want: Vec<u8> = msgs.concat();
            let total = want.len();
            let (b, sfd) = (n.b.clone(), n.sfd);
            let reader = thread::spawn(move || {
                let mut got = Vec::new();
                let mut buf = [0u8; 1000];
                while got.len() < total {
                    let k = b.recv(sfd, Some(&mut buf), 1000, 0).expect("recv");
                    assert!(k > 0, "EOF before the data");
                    got.extend_from_slice(&buf[..k]);
                }
                got
            });
            let (a, cfd) = (n.a.clone(), n.cfd);
            let writer = thread::spawn(move || {
                for m in &msgs {
                    send_all(&a, cfd, m);
                }
            });
            writer.join().unwrap();
            let got = reader.join().unwrap();
            assert_eq!(got, want, "bytes lost, duplicated or reordered");
            assert_released(&n.sk);
            let mut buf = [0u8; 10];
            assert_eq!(n.b.recv(n.sfd, Some(&mut buf), 10, MSG_DONTWAIT), Err(Errno::EAGAIN));
            assert_eq!(n.b.core.net.mib.get(LinuxMib::TCPOFOQueue), 0);
            if n.b.core.net.mib.get(LinuxMib::TCPPrequeued) > 0 {
                HITS_PREQUEUE.fetch_add(1, StdOrdering::Relaxed);
            }
        });
        let (b1, p1) = (HITS_READER_BACKLOG.load(StdOrdering::Relaxed), HITS_PREQUEUE.load(StdOrdering::Relaxed));
        eprintln!(
            "prequeue {prequeue} spin {spin}: schedules with input on a reader's backlog {}, through the prequeue {}",
            b1 - b0,
            p1 - p0
        );
        assert!(
            !check_coverage() || b1 > b0,
            "no schedule had input land on the backlog of a reader (prequeue {prequeue} spin {spin})"
        );
        if prequeue {
            assert!(!check_coverage() || p1 > p0, "no schedule reached the prequeue");
        } else {
            assert_eq!(p1, p0, "prequeue used with tcp_low_latency=1");
        }
    }
}

/// (b) `release_sock` racing input: two processes own and release B's socket in a loop
/// (`lock_sock` / `release_sock` directly, and setsockopt), a timer fires on it (deferred
/// while owned, `tcp_release_cb`), while the peer's segments arrive. Once everyone is done,
/// nothing is on the backlog, and TCP input processed every segment (`rcv_nxt` covers all the
/// bytes) without anybody reading.
#[test]
fn release_sock_racing_input() {
    let h0 = HITS_OWNED_BACKLOG.load(StdOrdering::Relaxed);
    explore(|| {
        let n = net(false);
        let rcv0 = n.sk.peek_tp(|tp| tp.rcv_nxt);
        let msgs: Vec<Vec<u8>> = (0..3).map(|i| msg(2, i, 200)).collect();
        let want = msgs.concat();
        let (a, cfd) = (n.a.clone(), n.cfd);
        let input = thread::spawn(move || {
            for m in &msgs {
                send_all(&a, cfd, m);
            }
        });
        let sk = n.sk.clone();
        let owner = thread::spawn(move || {
            for _ in 0..3 {
                let g = sk.lock_sock();
                thread::yield_now();
                if g.backlog_pending() {
                    HITS_OWNED_BACKLOG.fetch_add(1, StdOrdering::Relaxed);
                }
                sk.release_sock(g);
            }
        });
        let (b, sfd) = (n.b.clone(), n.sfd);
        let setter = thread::spawn(move || {
            for v in [1, 0] {
                b.setsockopt_int(sfd, SOL_TCP, TCP_NODELAY, v).unwrap();
            }
        });
        let sk = n.sk.clone();
        let timer = thread::spawn(move || sk.run_timers());
        input.join().unwrap();
        owner.join().unwrap();
        setter.join().unwrap();
        timer.join().unwrap();
        assert_released(&n.sk);
        if n.b.core.net.mib.get(LinuxMib::DelayedACKLocked) > 0 {
            HITS_TIMER_DEFERRED.fetch_add(1, StdOrdering::Relaxed);
        }
        let rcv = n.sk.peek_tp(|tp| tp.rcv_nxt);
        assert_eq!(rcv.diff(rcv0) as usize, want.len(), "segments left unprocessed");
        let mut got = vec![0u8; want.len() + 1];
        let k = n.b.recv(n.sfd, Some(&mut got), want.len() + 1, MSG_DONTWAIT).unwrap();
        assert_eq!(&got[..k], &want[..]);
    });
    let h1 = HITS_OWNED_BACKLOG.load(StdOrdering::Relaxed);
    let t = HITS_TIMER_DEFERRED.load(StdOrdering::Relaxed);
    eprintln!("schedules with input on the backlog of an owner: {}, with the timer deferred: {t}", h1 - h0);
    assert!(!check_coverage() || h1 > h0, "no schedule had input arrive while a process owned the socket");
    assert!(!check_coverage() || t > 0, "no schedule had the timer fire while a process owned the socket");
}

static HITS_SYN_WHILE_OWNED: StdAtomicU64 = StdAtomicU64::new(0);

/// (b') The lockless listener: two clients on A connect (inline delivery: B's listener
/// processes each SYN and the ACK completing it on the client's thread, under the request
/// queues' own lock) while B's thread blocks in `accept()` twice and a third changes a listener
/// option (owning it; its release copies the options to the request queues). Every connection
/// is accepted (a schedule that lost accept()'s wakeup would deadlock; the narrowest window,
/// a child queued between accept()'s look at the queue and its sleep, was not seen reached in
/// 400 schedules, so this does not pin that ordering of `ev_gen`) — and no segment meets
/// the listener's backlog, even when it arrives while accept() or setsockopt owns the listener
/// (counted: SYN-ACKs sent while a process owned it).
#[test]
fn accept_racing_handshakes() {
    let h0 = HITS_SYN_WHILE_OWNED.load(StdOrdering::Relaxed);
    explore(|| {
        let clock: Arc<dyn Clock> = Arc::new(VirtualClock::new(Instant::from_millis(1000)));
        let (pa, pb) = memlink::pair(LinkConfig::default(), clock.clone());
        let tap_b = Arc::new(Tap { port: pb, sent: Mutex::new(Vec::new()), sk: Mutex::new(None) });
        let core_a = StackCore::new(ADDR_A, 1500, clock.clone(), 0x5151);
        core_a.attach_device(pa as Arc<dyn NetDevice>);
        let core_b = StackCore::new(ADDR_B, 1500, clock, 0xa7a7);
        core_b.attach_device(tap_b.clone() as Arc<dyn NetDevice>);
        let (a, b) = (Arc::new(Stack::from_core(core_a)), Arc::new(Stack::from_core(core_b)));
        let l = b.socket(AF_INET, SOCK_STREAM, 0).unwrap();
        b.bind(l, SocketAddrV4::new(ADDR_B, 80)).unwrap();
        b.listen(l, 4).unwrap();
        let lsk = b.sockfd_lookup(l).unwrap().sk.clone();
        *tap_b.sk.lock() = Some(Arc::downgrade(&lsk));
        let clients: Vec<_> = (0..2)
            .map(|_| {
                let a = a.clone();
                thread::spawn(move || {
                    let c = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
                    a.connect(c, SocketAddrV4::new(ADDR_B, 80)).unwrap();
                    a.getsockname(c).unwrap().port()
                })
            })
            .collect();
        let b2 = b.clone();
        let acceptor = thread::spawn(move || {
            let mut ports: Vec<u16> = (0..2).map(|_| b2.accept4(l, 0).unwrap().1.port()).collect();
            ports.sort_unstable();
            ports
        });
        let b3 = b.clone();
        let setter = thread::spawn(move || b3.setsockopt_int(l, SOL_SOCKET, SO_RCVBUF, 65536).unwrap());
        let mut ports: Vec<u16> = clients.into_iter().map(|c| c.join().unwrap()).collect();
        ports.sort_unstable();
        assert_eq!(acceptor.join().unwrap(), ports, "each client accepted once");
        setter.join().unwrap();
        assert_released(&lsk);
        assert_eq!(b.core.net.mib.get(LinuxMib::TCPBacklogDrop), 0);
        // The options the setter changed reached the request queues.
        let rcvbuf = lsk.with_listener_queues(|q| q.map(|q| q.rcvbuf));
        assert_eq!(rcvbuf, Some(131072));
        if tap_b.sent.lock().iter().any(|&(_, _, owned)| owned) {
            HITS_SYN_WHILE_OWNED.fetch_add(1, StdOrdering::Relaxed);
        }
    });
    let h = HITS_SYN_WHILE_OWNED.load(StdOrdering::Relaxed) - h0;
    eprintln!("schedules with a SYN-ACK sent while a process owned the listener: {h}");
    assert!(!check_coverage() || h > 0, "no schedule had a SYN meet an owned listener");
}

/// (a') A signal (our `Cancel`) racing data arrival and a reader blocked in `tcp_recvmsg`:
/// `Cancel::cancel` wakes the reader without taking `slock`, so this is the waker that the
/// `sleepers` / `ev_gen` protocol of `sk_wait_data` must not lose. The call returns the data
/// (copied before it saw the signal) or EINTR (nothing copied), as Linux's `tcp_recvmsg`
/// does (`sock_intr_errno`); nothing is lost: what it left is read afterwards.
///
/// Without data the only wakeup is the signal's, and the call returns EINTR.
#[test]
fn cancel_racing_data() {
    for (prequeue, data) in [(true, true), (false, true), (false, false), (true, false)] {
        explore(move || {
            let n = net(prequeue);
            let want = if data { msg(3, 0, 400) } else { Vec::new() };
            let cancel = Cancel::new();
            let (b, sfd, c) = (n.b.clone(), n.sfd, cancel.clone());
            let reader = thread::spawn(move || {
                let mut buf = [0u8; 1000];
                b.recv_cancellable(sfd, &mut buf, 0, &c).map(|k| buf[..k].to_vec())
            });
            let (a, cfd, w) = (n.a.clone(), n.cfd, want.clone());
            let writer = thread::spawn(move || send_all(&a, cfd, &w));
            let canceller = thread::spawn(move || cancel.cancel());
            writer.join().unwrap();
            canceller.join().unwrap();
            let mut got = match reader.join().unwrap() {
                Ok(d) => {
                    assert!(data && !d.is_empty(), "recv returned {d:?}");
                    HITS_CANCEL[0].fetch_add(1, StdOrdering::Relaxed);
                    d
                }
                Err(Errno::EINTR) => {
                    HITS_CANCEL[1].fetch_add(1, StdOrdering::Relaxed);
                    Vec::new()
                }
                Err(e) => panic!("recv racing a signal: {e:?}"),
            };
            let mut buf = [0u8; 1000];
            match n.b.recv(n.sfd, Some(&mut buf), 1000, MSG_DONTWAIT) {
                Ok(k) => got.extend_from_slice(&buf[..k]),
                Err(e) => assert_eq!(e, Errno::EAGAIN),
            }
            assert_eq!(got, want, "bytes lost or duplicated around the signal");
            assert_released(&n.sk);
        });
    }
    let (data, eintr) = (HITS_CANCEL[0].load(StdOrdering::Relaxed), HITS_CANCEL[1].load(StdOrdering::Relaxed));
    eprintln!("schedules where recv returned data {data}, EINTR {eintr}");
    assert!(!check_coverage() || data > 0 && eintr > 0, "the signal never won, or the data never did");
}

/// (c) `close()` racing a blocked `recv`, `poll` and `epoll_wait` on the same fd (epoll and
/// poll also watch a pipe, which the closing thread writes to after the close):
///
/// * `recv` returns 0 (the close shut the socket down under it), or EBADF when it looked the
///   fd up after the close. This is utcp's documented deviation (`release_file`; as
///   `concurrency.rs`'s `close_racing_blocked_recv` says): Linux's blocked call holds a file
///   reference, so it would sleep on until data or FIN.
/// * `poll` reports POLLNVAL for the closed fd (Linux rescans the fd table on each pass: the
///   fd is gone), and POLLIN or nothing for the pipe; or nothing for the socket and POLLIN for
///   the pipe (the pass looked at the socket before the close and at the pipe after the
///   write, as Linux's `do_poll` may); or, when it looked the socket up before the close and
///   polled it after (utcp's calls hold no file reference, the deviation above), the closed
///   socket's POLLIN|POLLHUP.
/// * `epoll_wait` reports only the pipe: `close()` took the socket off the interest list
///   before closing it (`eventpoll_release` in `__fput`, before `sock_close`), so its wakeup
///   reaches no epoll waiter.
///
/// And the peer sees the FIN.
#[test]
fn close_racing_recv_poll_epoll() {
    explore(|| {
        let n = net(false);
        let (pr, pw) = n.b.pipe().unwrap();
        let ep = n.b.epoll_create1(0).unwrap();
        n.b.epoll_ctl(ep, 1, n.sfd, EPOLLIN, 1).unwrap();
        n.b.epoll_ctl(ep, 1, pr, EPOLLIN, 2).unwrap();
        let (b, sfd) = (n.b.clone(), n.sfd);
        let reader = thread::spawn(move || {
            let mut buf = [0u8; 100];
            b.recv(sfd, Some(&mut buf), 100, 0)
        });
        let (b, sfd) = (n.b.clone(), n.sfd);
        let poller = thread::spawn(move || {
            let mut fds =
                [PollFd { fd: sfd, events: POLLIN, revents: 0 }, PollFd { fd: pr, events: POLLIN, revents: 0 }];
            let k = b.poll(&mut fds, None).unwrap();
            (k, fds[0].revents, fds[1].revents)
        });
        let b = n.b.clone();
        let epoller = thread::spawn(move || b.epoll_wait(ep, 8, None).unwrap());
        let (b, sfd) = (n.b.clone(), n.sfd);
        let closer = thread::spawn(move || {
            b.close(sfd).unwrap();
            assert_eq!(b.write(pw, Some(b"x"), 1), Ok(1));
        });
        closer.join().unwrap();
        let r = reader.join().unwrap();
        assert!(matches!(r, Ok(0) | Err(Errno::EBADF)), "recv racing close returned {r:?}");
        let (k, sock_ev, pipe_ev) = poller.join().unwrap();
        assert!(
            sock_ev == POLLNVAL || sock_ev == POLLIN | POLLHUP || (sock_ev == 0 && pipe_ev == POLLIN),
            "poll racing close: closed fd revents {sock_ev:#x}, pipe {pipe_ev:#x}"
        );
        assert!(pipe_ev == 0 || pipe_ev == POLLIN, "poll: pipe revents {pipe_ev:#x}");
        assert_eq!(k, (sock_ev != 0) as usize + (pipe_ev != 0) as usize);
        OUTCOMES.lock().unwrap().insert(format!("recv {r:?}, poll ({sock_ev:#x}, {pipe_ev:#x})"));
        assert_eq!(epoller.join().unwrap(), vec![(EPOLLIN, 2)], "epoll_wait racing close");
        let mut buf = [0u8; 10];
        assert_eq!(n.b.recv(n.sfd, Some(&mut buf), 10, MSG_DONTWAIT), Err(Errno::EBADF));
        assert_eq!(n.a.recv(n.cfd, Some(&mut buf), 10, MSG_DONTWAIT), Ok(0), "peer saw no FIN");
    });
    eprintln!("outcomes: {:?}", OUTCOMES.lock().unwrap());
}

/// (c') `epoll_wait` racing the wakeup of the fd it is about to report: a pipe written while
/// epoll polls it, level- and edge-triggered. The event is reported (`ep_send_events` takes
/// the item off the ready list before polling it, so a wakeup during the poll puts it back);
/// clearing the ready flag after a poll that found nothing lost it, and epoll_wait slept on.
#[test]
fn epoll_wait_racing_wakeup() {
    for et in [false, true] {
        explore(move || {
            let n = net(false);
            let (pr, pw) = n.b.pipe().unwrap();
            let ep = n.b.epoll_create1(0).unwrap();
            let events = EPOLLIN | if et { utcp::syscall::epoll::EPOLLET } else { 0 };
            n.b.epoll_ctl(ep, 1, pr, events, 7).unwrap();
            let b = n.b.clone();
            let epoller = thread::spawn(move || b.epoll_wait(ep, 8, None).unwrap());
            let b = n.b.clone();
            let writer = thread::spawn(move || assert_eq!(b.write(pw, Some(b"x"), 1), Ok(1)));
            writer.join().unwrap();
            assert_eq!(epoller.join().unwrap(), vec![(EPOLLIN, 7)]);
        });
    }
}

/// (d) Two writers on A's socket and the peer's ACKs processed on a third thread (B's reader:
/// its reads send window updates, which A's input processes on that thread, owned or not, and
/// which send the data the small window held back): A's segments leave in sequence order
/// without gaps or repeats (the device sees them in build order: frames are handed to it under
/// the TCP state lock, by owners and by input alike), each `send()` stays contiguous in the
/// stream (it owns the socket for its whole copy; the send buffer never fills), and B receives
/// every byte, in order.
#[test]
fn two_writers_and_ack_input() {
    explore(|| {
        let n = net_on(false, Arc::new(VirtualClock::new(Instant::from_millis(1000))), Some(RCVBUF));
        let iss = n.a.sockfd_lookup(n.cfd).unwrap().sk.peek_tp(|tp| tp.snd_nxt);
        let mut writers = Vec::new();
        for w in 1..=2u8 {
            let (a, cfd) = (n.a.clone(), n.cfd);
            writers.push(thread::spawn(move || {
                for i in 0..MSGS {
                    send_all(&a, cfd, &msg(w, i, LEN));
                }
            }));
        }
        let (b, sfd) = (n.b.clone(), n.sfd);
        let reader = thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 2 * MSGS as usize * LEN];
            while got.len() < 2 * MSGS as usize * LEN {
                let k = b.recv(sfd, Some(&mut buf), 2 * MSGS as usize * LEN, 0).expect("recv");
                assert!(k > 0);
                got.extend_from_slice(&buf[..k]);
            }
            got
        });
        for w in writers {
            w.join().unwrap();
        }
        let got = reader.join().unwrap();
        // The stream is the two writers' messages interleaved whole, each writer's in order.
        let mut next = [0u8; 2];
        for chunk in got.chunks(LEN) {
            let w = (1..=2u8).find(|&w| chunk == &msg(w, next[w as usize - 1], LEN)[..]);
            let w = w.unwrap_or_else(|| panic!("a send() was split or reordered: {got:?}"));
            next[w as usize - 1] += 1;
        }
        assert_eq!(next, [MSGS, MSGS]);
        let sent = n.tap_a.sent.lock().clone();
        let mut seq = iss.0;
        let mut from_input = 0;
        for (s, len, owned) in sent.into_iter().filter(|&(_, len, _)| len > 0) {
            assert_eq!(s, seq, "segment out of sequence order");
            seq = seq.wrapping_add(len);
            from_input += !owned as u64;
        }
        if from_input > 0 {
            HITS_SENT_FROM_INPUT.fetch_add(1, StdOrdering::Relaxed);
        }
        assert_eq!(seq.wrapping_sub(iss.0) as usize, 2 * MSGS as usize * LEN);
        assert_eq!(n.b.core.net.mib.get(LinuxMib::TCPOFOQueue), 0);
        assert_released(&n.b.sockfd_lookup(n.sfd).unwrap().sk);
    });
    let h = HITS_SENT_FROM_INPUT.load(StdOrdering::Relaxed);
    eprintln!("schedules where input (an ACK, a window update) sent data: {h}");
    assert!(!check_coverage() || h > 0, "no schedule had ACK processing send data");
}
