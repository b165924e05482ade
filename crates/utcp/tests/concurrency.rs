//! Concurrency tests of the receive path on real threads and the real clock (DESIGN §3, §7.4):
//! a reader blocked in `recv` while segments arrive, with counters proving which path carried
//! the bytes (backlog direct copy, prequeue, busy poll); the same stream whichever path is on;
//! many readers and writers at once; `close`/`shutdown(SHUT_RD)`/cancellation racing a blocked
//! `recv`.
//!
//! Every test is bounded (a watchdog fails it instead of hanging), asserts nothing about wall
//! clock durations, and makes the paths it proves happen on purpose: a reader is known to be
//! parked (`Sock::sleeper`) before data is sent, segments are made to arrive while the reader
//! owns the socket with `Sock::set_owned_wait_hook`, and frames are known to sit on the device's
//! ring before a busy-polling reader starts.

mod common;

use common::pattern;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration as StdDuration;
use utcp::api::{memlink_pair, memlink_pair_with_clock, Host, TcpListener, TcpStream, ADDR_B};
use utcp::host::{HostThreads, MonotonicClock};
use utcp::mib::LinuxMib;
use utcp::netdev::memlink::{Delivery, LinkConfig};
use utcp::netdev::NetDevice;
use utcp::socket::sock::{Cancel, Sock};
use utcp::syscall::{SHUT_RD, SHUT_WR};
use utcp::tcp::recvmsg::MSG_WAITALL;
use utcp::time::Clock;
use utcp::{Errno, Stack};

/// Generous bound for one test step; only ever reached when something hangs.
const LIMIT: StdDuration = StdDuration::from_secs(30);

/// Runs `f` on a thread and returns its result, failing the test if it does not finish within
/// [`LIMIT`] (a hang) instead of blocking the test binary.
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(v) => v,
        Err(_) => panic!("{what}: did not finish (hang)"),
    }
}

/// Waits (bounded) until `cond` holds.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    while !cond() {
        assert!(t.elapsed() < LIMIT, "{what}: never happened");
        std::thread::yield_now();
    }
}

/// FNV-1a, 64 bits.
fn hash(d: &[u8]) -> u64 {
    d.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

fn sk_of(stack: &Stack, fd: i32) -> Arc<Sock> {
    stack.sockfd_lookup(fd).unwrap().sk.clone()
}

fn mib(h: &Host, c: LinuxMib) -> u64 {
    h.stack.core.net.mib.get(c)
}

fn set_prequeue(h: &Host, on: bool) {
    h.stack.core.net.sysctl.set_by_name("net.ipv4.tcp_low_latency", if on { "0" } else { "1" }).unwrap();
}

/// A connection from A (client) to B (server) on `port`: (client on A, server on B).
fn connect(a: &Host, b: &Host, port: u16) -> (TcpStream, TcpStream) {
    let l = TcpListener::bind(&b.stack, SocketAddrV4::new(ADDR_B, port), 16).unwrap();
    let c = TcpStream::connect(&a.stack, SocketAddrV4::new(ADDR_B, port)).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

/// Sends all of `d` on `fd`.
fn send_all(st: &Stack, fd: i32, d: &[u8]) {
    let mut off = 0;
    while off < d.len() {
        off += st.send(fd, Some(&d[off..]), d.len() - off, 0).expect("send");
    }
}

/// Reads until EOF with reads of varying sizes (`sizes` cycled, `flags` on each).
fn read_to_eof(st: &Stack, fd: i32, sizes: &[usize], flags: i32) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; *sizes.iter().max().unwrap()];
    for i in 0.. {
        let n = sizes[i % sizes.len()];
        match st.recv(fd, Some(&mut buf[..n]), n, flags).expect("recv") {
            0 => break,
            k => got.extend_from_slice(&buf[..k]),
        }
    }
    got
}

/// Waits (bounded) until a reader is parked in `sk_wait_data` on `sk`.
fn wait_parked(sk: &Sock) {
    wait_until("reader parks in sk_wait_data", || sk.sleeper().is_some());
}

// ---------------------------------------------------------------------------------------------
// (a) backlog: segments arriving while the reader owns the socket are copied straight into its
// buffer when its release_sock() processes the backlog with tp->ucopy installed.
// ---------------------------------------------------------------------------------------------

/// The seed's path to TCPDirectCopyFromBacklog, made to happen: the reader (prequeue enabled,
/// so it installs itself as `tp->ucopy`) enters `sk_wait_data` owning the socket; at that
/// moment the peer sends, so every segment finds the socket owned and lands on the backlog;
/// the reader's `release_sock()` then runs TCP input on them with its buffer installed and
/// copies them straight in. Nothing goes through the receive queue or the prequeue.
#[test]
fn backlog_direct_copy_while_reader_owns() {
    let (a, b) = memlink_pair(LinkConfig::default());
    set_prequeue(&b, true);
    let (c, s) = connect(&a, &b, 80);
    c.set_nodelay(true).unwrap();
    let sk = sk_of(&b.stack, s.fd());
    const N: usize = 8192;
    let data = Arc::new(pattern(N, 1));
    let fired = Arc::new(AtomicBool::new(false));
    {
        let (ast, cfd, data, fired) = (a.stack.clone(), c.fd(), data.clone(), fired.clone());
        sk.set_owned_wait_hook(Some(Arc::new(move || {
            if fired.swap(true, Ordering::SeqCst) {
                return;
            }
            // Inline delivery: A's send runs B's packet input on this (the reader's) thread,
            // and the reader owns the socket, so the segments must be backlogged.
            send_all(&ast, cfd, &data);
        })));
    }
    let (b0, p0, q0) = (
        mib(&b, LinuxMib::TCPDirectCopyFromBacklog),
        mib(&b, LinuxMib::TCPDirectCopyFromPrequeue),
        mib(&b, LinuxMib::TCPPrequeued),
    );
    let (bst, sfd) = (b.stack.clone(), s.fd());
    let got = bounded("MSG_WAITALL recv", move || {
        let mut buf = vec![0u8; N];
        let n = bst.recv(sfd, Some(&mut buf), N, MSG_WAITALL).unwrap();
        buf.truncate(n);
        buf
    });
    sk.set_owned_wait_hook(None);
    assert!(fired.load(Ordering::SeqCst));
    assert!(got == *data);
    let from_backlog = mib(&b, LinuxMib::TCPDirectCopyFromBacklog) - b0;
    eprintln!("TCPDirectCopyFromBacklog +{from_backlog}");
    assert_eq!(from_backlog, N as u64, "every byte was copied from the backlog into the reader's buffer");
    assert_eq!(mib(&b, LinuxMib::TCPDirectCopyFromPrequeue), p0);
    assert_eq!(mib(&b, LinuxMib::TCPPrequeued), q0);
}

/// A large MSG_WAITALL read against a streaming writer, prequeue on: the reader sleeps, is
/// woken through the prequeue, and segments that arrive while it processes the prequeue are
/// backlogged and direct-copied by its `release_sock()`. Which path each byte takes depends on
/// scheduling, so only the total is asserted (every byte taken by one of the paths or the
/// receive queue, exactly once, in order); the counters are reported.
#[test]
fn waitall_reader_against_streaming_writer() {
    let (a, b) = memlink_pair(LinkConfig::default());
    set_prequeue(&b, true);
    let (c, s) = connect(&a, &b, 80);
    const N: usize = 1 << 20;
    let data = pattern(N, 2);
    let (bst, sfd) = (b.stack.clone(), s.fd());
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; N];
        let n = bst.recv(sfd, Some(&mut buf), N, MSG_WAITALL).unwrap();
        buf.truncate(n);
        buf
    });
    wait_parked(&sk_of(&b.stack, s.fd()));
    let (ast, cfd, d2) = (a.stack.clone(), c.fd(), data.clone());
    bounded("writer", move || send_all(&ast, cfd, &d2));
    let got = bounded("reader", move || reader.join().unwrap());
    assert!(got == data);
    eprintln!(
        "WAITALL 1 MiB: TCPDirectCopyFromBacklog {} TCPDirectCopyFromPrequeue {} TCPPrequeued {}",
        mib(&b, LinuxMib::TCPDirectCopyFromBacklog),
        mib(&b, LinuxMib::TCPDirectCopyFromPrequeue),
        mib(&b, LinuxMib::TCPPrequeued)
    );
    assert!(mib(&b, LinuxMib::TCPPrequeued) > 0, "the parked reader was fed through the prequeue");
}

// ---------------------------------------------------------------------------------------------
// (b) prequeue: with tcp_low_latency = 0 a reader asleep in recv gets raw segments and runs TCP
// input itself.
// ---------------------------------------------------------------------------------------------

#[test]
fn prequeue_feeds_sleeping_reader() {
    let (a, b) = memlink_pair(LinkConfig::default());
    set_prequeue(&b, true);
    let (c, s) = connect(&a, &b, 80);
    c.set_nodelay(true).unwrap();
    let sk = sk_of(&b.stack, s.fd());
    let (p0, q0) = (mib(&b, LinuxMib::TCPDirectCopyFromPrequeue), mib(&b, LinuxMib::TCPPrequeued));
    const ROUNDS: usize = 8;
    const M: usize = 1000;
    for r in 0..ROUNDS {
        let msg = pattern(M, 100 + r as u64);
        let (bst, sfd) = (b.stack.clone(), s.fd());
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            let n = bst.recv(sfd, Some(&mut buf), 4096, 0).unwrap();
            buf.truncate(n);
            buf
        });
        wait_parked(&sk);
        send_all(&a.stack, c.fd(), &msg);
        let got = bounded("recv", move || reader.join().unwrap());
        assert!(got == msg, "round {r}");
    }
    let (p, q) = (mib(&b, LinuxMib::TCPDirectCopyFromPrequeue) - p0, mib(&b, LinuxMib::TCPPrequeued) - q0);
    eprintln!("prequeue: TCPPrequeued +{q} TCPDirectCopyFromPrequeue +{p} (of {} bytes)", ROUNDS * M);
    assert!(q > 0, "TCPPrequeued did not rise");
    assert!(p > 0, "TCPDirectCopyFromPrequeue did not rise");
    // Each round the reader was parked before the segment arrived, so each was prequeued.
    assert_eq!(p, (ROUNDS * M) as u64);
}

/// With the prequeue off (the default) the same sleeping reader is woken by packet input that
/// processed the segment itself: no prequeue counter moves.
#[test]
fn prequeue_off_processes_in_softirq() {
    let (a, b) = memlink_pair(LinkConfig::default());
    let (c, s) = connect(&a, &b, 80);
    let sk = sk_of(&b.stack, s.fd());
    let (bst, sfd) = (b.stack.clone(), s.fd());
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        let n = bst.recv(sfd, Some(&mut buf), 4096, 0).unwrap();
        buf.truncate(n);
        buf
    });
    wait_parked(&sk);
    send_all(&a.stack, c.fd(), b"hello");
    assert_eq!(bounded("recv", move || reader.join().unwrap()), b"hello");
    for m in [LinuxMib::TCPPrequeued, LinuxMib::TCPDirectCopyFromPrequeue, LinuxMib::TCPDirectCopyFromBacklog] {
        assert_eq!(mib(&b, m), 0, "{m:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// (c) busy poll: SO_BUSY_POLL readers poll the device themselves.
// ---------------------------------------------------------------------------------------------

/// Who may poll B's port besides its readers: the stand-in for B's interrupt-driven NAPI.
const POLL_ALWAYS: u8 = 0;
/// Only while a reader is parked in `sk_wait_data` (the "interrupt" for a sleeper).
const POLL_WHEN_PARKED: u8 = 1;
const POLL_STOP: u8 = 2;

/// A BusyPoll link whose receiving host (B) has no NAPI thread: a test-owned poller stands in
/// for it and can be told to leave the ring to busy-polling readers.
struct BusyPollRig {
    a: Host,
    b: Host,
    _threads: Vec<HostThreads>,
    mode: Arc<AtomicU8>,
    watch: Arc<parking_lot::Mutex<Option<Arc<Sock>>>>,
    poller: Option<std::thread::JoinHandle<()>>,
}

impl BusyPollRig {
    fn new() -> BusyPollRig {
        let clock: Arc<dyn Clock> = Arc::new(MonotonicClock::default());
        let cfg = LinkConfig { delivery: Delivery::BusyPoll, ..LinkConfig::default() };
        let (a, b) = memlink_pair_with_clock(cfg, clock, false);
        let threads = vec![
            HostThreads::start(a.stack.core.clone(), a.port.clone()),
            HostThreads::start(b.stack.core.clone(), None::<Arc<utcp::netdev::memlink::MemPort>>),
        ];
        let mode = Arc::new(AtomicU8::new(POLL_ALWAYS));
        let watch: Arc<parking_lot::Mutex<Option<Arc<Sock>>>> = Arc::default();
        let poller = {
            let (port, mode, watch) = (b.port.clone().unwrap(), mode.clone(), watch.clone());
            std::thread::spawn(move || loop {
                match mode.load(Ordering::SeqCst) {
                    POLL_STOP => return,
                    POLL_ALWAYS => {
                        if port.napi_poll(64) == 0 {
                            port.wait_rx(Some(StdDuration::from_millis(1)));
                        }
                    }
                    _ => {
                        let parked = watch.lock().as_ref().is_some_and(|s| s.sleeper().is_some());
                        if !parked || port.napi_poll(64) == 0 {
                            std::thread::sleep(StdDuration::from_micros(200));
                        }
                    }
                }
            })
        };
        BusyPollRig { a, b, _threads: threads, mode, watch, poller: Some(poller) }
    }
}

impl Drop for BusyPollRig {
    fn drop(&mut self) {
        self.mode.store(POLL_STOP, Ordering::SeqCst);
        if let Some(p) = self.poller.take() {
            let _ = p.join();
        }
    }
}

/// Streams `n` bytes A → B over the busy-poll rig, B reading with SO_BUSY_POLL = `busy_us`
/// (0 = off, the test poller then acts as B's NAPI throughout). Returns (bytes read,
/// BusyPollRxPackets gained).
fn busy_poll_stream(n: usize, busy_us: u32, seed: u64) -> (Vec<u8>, u64) {
    let rig = BusyPollRig::new();
    let (c, s) = connect(&rig.a, &rig.b, 80);
    let sk = sk_of(&rig.b.stack, s.fd());
    *rig.watch.lock() = Some(sk.clone());
    // A first exchange through the stand-in NAPI records the napi id on the socket.
    send_all(&rig.a.stack, c.fd(), b"x");
    let mut one = [0u8; 1];
    assert_eq!(rig.b.stack.recv(s.fd(), Some(&mut one), 1, 0), Ok(1));
    assert_ne!(sk.napi_id.load(Ordering::Relaxed), 0);
    s.set_busy_poll(busy_us).unwrap();
    let data = pattern(n, seed);
    let bp0 = mib(&rig.b, LinuxMib::BusyPollRxPackets);
    if busy_us > 0 {
        rig.mode.store(POLL_WHEN_PARKED, Ordering::SeqCst);
        // Let the poller leave POLL_ALWAYS, then queue the first frames with no one polling.
        std::thread::sleep(StdDuration::from_millis(5));
    }
    let (ast, cfd, d2) = (rig.a.stack.clone(), c.fd(), data.clone());
    let writer = std::thread::spawn(move || {
        send_all(&ast, cfd, &d2);
        ast.shutdown(cfd, SHUT_WR).unwrap();
    });
    if busy_us > 0 {
        let port = rig.b.port.clone().unwrap();
        wait_until("frames queued on B's ring", || port.rx_pending());
    }
    let (bst, sfd) = (rig.b.stack.clone(), s.fd());
    let got = bounded("busy-poll reader", move || read_to_eof(&bst, sfd, &[65536, 3000, 1460], 0));
    writer.join().unwrap();
    let bp = mib(&rig.b, LinuxMib::BusyPollRxPackets) - bp0;
    drop((c, s));
    (got, bp)
}

#[test]
fn busy_poll_reader_polls_device() {
    const N: usize = 256 * 1024;
    let (got, bp) = busy_poll_stream(N, 1_000_000, 3);
    eprintln!("busy poll on: BusyPollRxPackets +{bp}");
    assert!(got == pattern(N, 3));
    assert!(bp > 0, "BusyPollRxPackets did not rise");
}

// ---------------------------------------------------------------------------------------------
// (d) the same stream whichever path carries it.
// ---------------------------------------------------------------------------------------------

/// One stream A → B with the prequeue on or off; reads of mixed sizes and MSG_WAITALL.
fn prequeue_stream(n: usize, prequeue: bool, delivery: Delivery) -> (Vec<u8>, [u64; 3]) {
    let (a, b) = memlink_pair(LinkConfig { delivery, ..LinkConfig::default() });
    set_prequeue(&b, prequeue);
    let (c, s) = connect(&a, &b, 80);
    let data = pattern(n, 4);
    let (ast, cfd, d2) = (a.stack.clone(), c.fd(), data.clone());
    let writer = std::thread::spawn(move || {
        // Writes of odd sizes, so segments and reads never line up.
        for chunk in d2.chunks(7777) {
            send_all(&ast, cfd, chunk);
        }
        ast.shutdown(cfd, SHUT_WR).unwrap();
    });
    let (bst, sfd) = (b.stack.clone(), s.fd());
    let got = bounded("reader", move || {
        let mut got = read_to_eof(&bst, sfd, &[100_000, 1, 4096, 65536], MSG_WAITALL);
        got.extend(read_to_eof(&bst, sfd, &[1], 0));
        got
    });
    writer.join().unwrap();
    let counters = [
        mib(&b, LinuxMib::TCPPrequeued),
        mib(&b, LinuxMib::TCPDirectCopyFromPrequeue),
        mib(&b, LinuxMib::TCPDirectCopyFromBacklog),
    ];
    (got, counters)
}

#[test]
fn same_stream_prequeue_on_and_off() {
    const N: usize = 1 << 20;
    let want = hash(&pattern(N, 4));
    for delivery in [Delivery::Inline, Delivery::Napi] {
        let (on, c_on) = prequeue_stream(N, true, delivery);
        let (off, c_off) = prequeue_stream(N, false, delivery);
        eprintln!("{delivery:?}: prequeue on [Prequeued, FromPrequeue, FromBacklog] = {c_on:?}, off = {c_off:?}");
        assert_eq!(on.len(), N);
        assert_eq!(hash(&on), want, "{delivery:?} prequeue on");
        assert_eq!(hash(&off), want, "{delivery:?} prequeue off");
        assert_eq!(c_off, [0, 0, 0], "no prequeue or ucopy path with tcp_low_latency = 1");
    }
}

#[test]
fn same_stream_busy_poll_on_and_off() {
    const N: usize = 512 * 1024;
    let want = hash(&pattern(N, 5));
    let (on, bp_on) = busy_poll_stream(N, 1_000_000, 5);
    let (off, bp_off) = busy_poll_stream(N, 0, 5);
    eprintln!("BusyPollRxPackets: on +{bp_on}, off +{bp_off}");
    assert_eq!(hash(&on), want);
    assert_eq!(hash(&off), want);
    assert!(bp_on > 0);
    assert_eq!(bp_off, 0);
}

// ---------------------------------------------------------------------------------------------
// (e) many readers and writers at once.
// ---------------------------------------------------------------------------------------------

/// 8 connections, each full duplex: on each end one thread writes its stream and shuts down
/// its side while another reads the peer's stream to EOF — 32 threads sharing two stacks,
/// readers and writers of the same socket contending for its lock. The prequeue is on at B
/// (a writer owning the socket while B's reader waits exercises the prequeue/backlog
/// ordering). Every stream must arrive whole and in order.
#[test]
fn many_readers_and_writers() {
    for delivery in [Delivery::Napi, Delivery::Inline] {
        let (a, b) = memlink_pair(LinkConfig { delivery, ..LinkConfig::default() });
        set_prequeue(&b, true);
        const CONNS: usize = 8;
        const N: usize = 128 * 1024;
        let conns: Vec<(TcpStream, TcpStream)> = (0..CONNS).map(|i| connect(&a, &b, 1000 + i as u16)).collect();
        let mut handles = Vec::new();
        for (i, (c, s)) in conns.iter().enumerate() {
            for (st, fd, tag) in [(&a.stack, c.fd(), 0u64), (&b.stack, s.fd(), 1u64)] {
                let seed = 1000 + 2 * i as u64 + tag;
                let (st1, st2) = (st.clone(), st.clone());
                handles.push(std::thread::spawn(move || {
                    send_all(&st1, fd, &pattern(N, seed));
                    st1.shutdown(fd, SHUT_WR).unwrap();
                    None
                }));
                let peer_seed = 1000 + 2 * i as u64 + (1 - tag);
                handles.push(std::thread::spawn(move || {
                    let got = read_to_eof(&st2, fd, &[5000, 65536, 1], 0);
                    Some((hash(&got), got.len(), hash(&pattern(N, peer_seed)), i, tag))
                }));
            }
        }
        let results = bounded("all readers and writers", move || {
            handles.into_iter().filter_map(|h| h.join().unwrap()).collect::<Vec<_>>()
        });
        assert_eq!(results.len(), 2 * CONNS);
        for (h, len, want, i, tag) in results {
            assert_eq!(len, N, "{delivery:?} conn {i} side {tag}");
            assert_eq!(h, want, "{delivery:?} conn {i} side {tag}");
        }
        eprintln!(
            "{delivery:?} many: B TCPPrequeued {} FromPrequeue {} FromBacklog {} BacklogCoalesce {}",
            mib(&b, LinuxMib::TCPPrequeued),
            mib(&b, LinuxMib::TCPDirectCopyFromPrequeue),
            mib(&b, LinuxMib::TCPDirectCopyFromBacklog),
            mib(&b, LinuxMib::TCPBacklogCoalesce),
        );
        drop(conns);
    }
}

// ---------------------------------------------------------------------------------------------
// (f) close, shutdown and cancellation racing a blocked recv.
// ---------------------------------------------------------------------------------------------

/// `shutdown(SHUT_RD)` from another thread wakes a reader blocked in recv, which returns 0
/// (Linux: tcp_recvmsg sees RCV_SHUTDOWN and returns what it copied, here nothing). Both
/// orders: the reader parked first, and the two calls racing. With the prequeue on and off.
#[test]
fn shutdown_rd_racing_blocked_recv() {
    for prequeue in [false, true] {
        for parked_first in [true, false] {
            for round in 0..4 {
                let (a, b) = memlink_pair(LinkConfig::default());
                set_prequeue(&b, prequeue);
                let (_c, s) = connect(&a, &b, 80);
                let (bst, sfd) = (b.stack.clone(), s.fd());
                let reader = std::thread::spawn(move || {
                    let mut buf = [0u8; 100];
                    bst.recv(sfd, Some(&mut buf), 100, 0)
                });
                if parked_first {
                    wait_parked(&sk_of(&b.stack, s.fd()));
                } else {
                    for _ in 0..round * 50 {
                        std::thread::yield_now();
                    }
                }
                b.stack.shutdown(s.fd(), SHUT_RD).unwrap();
                let r = bounded("recv after SHUT_RD", move || reader.join().unwrap());
                assert_eq!(r, Ok(0), "prequeue {prequeue} parked_first {parked_first} round {round}");
            }
        }
    }
}

/// `close()` of the fd while another thread is blocked in recv on it, racing data from the
/// peer. The blocked call returns — 0 (the close shut the socket down under it), the data
/// (it arrived first) or ECONNRESET (it arrived after the close and aborted the socket) — and
/// never hangs; the fd is gone for everyone else (EBADF); the peer
/// sees the end of the connection (EOF, or a reset for data sent to the closed socket).
///
/// DEVIATION(linux): in Linux the blocked call holds its own file reference, so `close()`
/// does not tear the socket down under it: the call stays blocked until data or FIN arrives,
/// and the last `fput` closes the socket. utcp's `close()` runs `tcp_close` while at most one
/// call is inside (`Arc::strong_count(s) <= 2` in `Stack::close`), which wakes that call with
/// RCV_SHUTDOWN.
#[test]
fn close_racing_blocked_recv() {
    for (peer_sends, prequeue, parked_first) in [
        (true, false, true),
        (false, false, true),
        (true, true, true),
        (false, true, true),
        (true, false, false),
        (true, true, false),
    ] {
        let (a, b) = memlink_pair(LinkConfig::default());
        set_prequeue(&b, prequeue);
        let (c, s) = connect(&a, &b, 80);
        let sk = sk_of(&b.stack, s.fd());
        let (bst, sfd) = (b.stack.clone(), s.fd());
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 100];
            bst.recv(sfd, Some(&mut buf), 100, 0).map(|n| buf[..n].to_vec())
        });
        if parked_first {
            wait_parked(&sk);
        }
        let fd = s.fd();
        std::mem::forget(s); // closed by hand below
        let (ast, cfd) = (a.stack.clone(), c.fd());
        let sender = std::thread::spawn(move || {
            if peer_sends {
                let _ = ast.send(cfd, Some(b"late"), 4, 0);
            }
        });
        b.stack.close(fd).unwrap();
        sender.join().unwrap();
        let mut buf = [0u8; 10];
        assert_eq!(b.stack.recv(fd, Some(&mut buf), 10, 0), Err(Errno::EBADF));
        let r = bounded("recv after close", move || reader.join().unwrap());
        let case = format!("peer_sends {peer_sends} prequeue {prequeue} parked_first {parked_first}");
        match r.as_deref() {
            Ok(b"") => {}
            Ok(b"late") if peer_sends => {}
            // Data reaching the closed socket aborts it (TCPAbortOnData: tcp_reset, sk_err).
            Err(Errno::ECONNRESET) if peer_sends => {}
            // The reader looked the fd up only after close() removed it.
            Err(Errno::EBADF) if !parked_first => {}
            other => panic!("{case}: {other:?}"),
        }
        drop(sk);
        let (ast, cfd) = (a.stack.clone(), c.fd());
        let end = bounded("peer sees the end", move || {
            let mut buf = [0u8; 10];
            ast.recv(cfd, Some(&mut buf), 10, 0)
        });
        assert!(matches!(end, Ok(0) | Err(Errno::ECONNRESET)), "{case}: peer got {end:?}");
    }
}

/// A cancel (our EINTR) racing data arrival: the blocked recv returns either the data or
/// EINTR, never hangs, and no byte is lost or duplicated: what EINTR left behind is read
/// afterwards. Orders vary by round: cancel first, data first, or both at once.
#[test]
fn cancel_racing_data_arrival() {
    for prequeue in [false, true] {
        let (a, b) = memlink_pair(LinkConfig::default());
        set_prequeue(&b, prequeue);
        let (c, s) = connect(&a, &b, 80);
        c.set_nodelay(true).unwrap();
        let sk = sk_of(&b.stack, s.fd());
        let mut sent = Vec::new();
        let mut got = Vec::new();
        let (mut eintr, mut data) = (0, 0);
        for round in 0..60u64 {
            let msg = pattern(1 + (round as usize * 37) % 3000, 7000 + round);
            sent.extend_from_slice(&msg);
            let cancel = Cancel::new();
            let (bst, sfd, cc) = (b.stack.clone(), s.fd(), cancel.clone());
            let reader = std::thread::spawn(move || {
                let mut buf = vec![0u8; 4096];
                bst.recv_cancellable(sfd, &mut buf, 0, &cc).map(|n| buf[..n].to_vec())
            });
            wait_parked(&sk);
            let (ast, cfd) = (a.stack.clone(), c.fd());
            let sender = std::thread::spawn(move || send_all(&ast, cfd, &msg));
            match round % 3 {
                0 => cancel.cancel(),
                1 => {
                    std::thread::yield_now();
                    cancel.cancel()
                }
                _ => {
                    for _ in 0..(round % 7) * 20 {
                        std::hint::spin_loop();
                    }
                    cancel.cancel()
                }
            }
            sender.join().unwrap();
            match bounded("cancellable recv", move || reader.join().unwrap()) {
                Ok(d) => {
                    assert!(!d.is_empty());
                    data += 1;
                    got.extend_from_slice(&d);
                }
                Err(Errno::EINTR) => eintr += 1,
                Err(e) => panic!("unexpected {e:?}"),
            }
            // Drain whatever is left of this round (non-blocking reads until EAGAIN once all
            // sent bytes are accounted for).
            wait_until("round's bytes readable", || {
                let mut buf = vec![0u8; 8192];
                while let Ok(n) = b.stack.recv(s.fd(), Some(&mut buf), 8192, utcp::tcp::recvmsg::MSG_DONTWAIT) {
                    got.extend_from_slice(&buf[..n]);
                }
                got.len() == sent.len()
            });
        }
        eprintln!("cancel race (prequeue {prequeue}): {data} returned data, {eintr} EINTR");
        assert!(got == sent, "bytes lost, duplicated or reordered");
    }
}

/// `shutdown(SHUT_RD)` via the fd-level call with a MSG_WAITALL reader that already has part
/// of its data: it returns the partial count (Linux: `copied` once RCV_SHUTDOWN is seen).
#[test]
fn shutdown_rd_returns_partial_waitall() {
    let (a, b) = memlink_pair(LinkConfig::default());
    let (c, s) = connect(&a, &b, 80);
    let sk = sk_of(&b.stack, s.fd());
    let (bst, sfd) = (b.stack.clone(), s.fd());
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 10_000];
        bst.recv(sfd, Some(&mut buf), 10_000, MSG_WAITALL)
    });
    wait_parked(&sk);
    send_all(&a.stack, c.fd(), &[7u8; 300]);
    // The reader took the 300 bytes and sleeps again for the rest.
    wait_until("reader took the first bytes and parked again", || {
        sk.peek_tp(|tp| tp.copied_seq == tp.rcv_nxt && tp.bytes_received == 300) && sk.sleeper().is_some()
    });
    b.stack.shutdown(s.fd(), SHUT_RD).unwrap();
    assert_eq!(bounded("WAITALL after SHUT_RD", move || reader.join().unwrap()), Ok(300));
}
