//! `utcp::tokio` sockets on a multi-threaded tokio runtime built with neither an I/O driver nor
//! a timer: a task parked on `Pending` can only be woken by the stack's own socket wakeups, so
//! every test here that finishes shows that those wakeups reach it (no polling loop could).
//!
//! The stacks run on a virtual clock that never moves and have no host threads: on a clean
//! inline memlink every segment is delivered by the thread that sent it, so the connections
//! move on only through the tasks' own calls, and no timer can fire — a retransmission, loss
//! probe or out-of-order segment would be the stack's own fault and is counted as a failure.
//! `tokio_real.rs` runs the same kind of traffic on real threads and the real clock.
//!
//! A frozen clock fires no delayed ACK either, so the echo tests set TCP_NODELAY: with Nagle,
//! a small segment waits for the ACK of the previous small one (Minshall's rule), which a
//! peer in pingpong mode delays — 40 ms on a real clock, forever on this one (seen: the echo
//! test stalled with 360 bytes held behind an ACK pending on its delayed-ACK timer).
//!
//! Every test is bounded by a watchdog and asserts nothing about durations.

use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration as StdDuration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use utcp::api::{ADDR6_A, ADDR6_B, ADDR_A, ADDR_B};
use utcp::mib::{LinuxMib, TcpMib};
use utcp::netdev::memlink::LinkConfig;
use utcp::sim::SimNet;
use utcp::tokio::{TcpListener, TcpStream};

/// Reached only when something hangs.
const LIMIT: StdDuration = StdDuration::from_secs(300);

/// A multi-threaded runtime with no I/O driver and no timer.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(4).build().unwrap()
}

/// Runs `f` on [`runtime`] under a watchdog.
fn run<F>(f: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = runtime().block_on(f);
        let _ = tx.send(r);
    });
    match rx.recv_timeout(LIMIT) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("stalled: a task was never woken"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the test body panicked"),
    }
}

fn sim() -> Arc<SimNet> {
    Arc::new(SimNet::new(LinkConfig::default()))
}

/// Byte `i` of a test stream (not periodic at any power of two below 2^32).
fn stream_byte(i: u64, seed: u64) -> u8 {
    (i ^ (i >> 8).wrapping_mul(31) ^ (i >> 24).wrapping_mul(131) ^ seed.wrapping_mul(0x9e37)) as u8
}

fn fill(buf: &mut [u8], off: u64, seed: u64) {
    for (k, b) in buf.iter_mut().enumerate() {
        *b = stream_byte(off + k as u64, seed);
    }
}

/// Writes `total` stream bytes in chunks of up to 64 KiB.
async fn write_stream<W: tokio::io::AsyncWrite + Unpin>(w: &mut W, total: u64, seed: u64) {
    let mut buf = vec![0u8; 65536];
    let mut off = 0u64;
    while off < total {
        let n = (total - off).min(buf.len() as u64) as usize;
        fill(&mut buf[..n], off, seed);
        w.write_all(&buf[..n]).await.unwrap();
        off += n as u64;
    }
}

/// Reads to EOF, checking every byte; returns the count, or panics at the first bad offset.
async fn read_stream<R: tokio::io::AsyncRead + Unpin>(r: &mut R, seed: u64) -> u64 {
    let mut buf = vec![0u8; 100_000];
    let mut want = vec![0u8; 100_000];
    let mut got = 0u64;
    loop {
        let n = r.read(&mut buf).await.unwrap();
        if n == 0 {
            return got;
        }
        fill(&mut want[..n], got, seed);
        if buf[..n] != want[..n] {
            let k = buf[..n].iter().zip(&want[..n]).position(|(a, b)| a != b).unwrap();
            panic!("byte {} differs", got + k as u64);
        }
        got += n as u64;
    }
}

/// The counters a clean link keeps at 0, on both hosts (non-zero ones returned).
fn dirty(net: &SimNet) -> Vec<(&'static str, u64)> {
    let mut v = Vec::new();
    for h in [&net.a, &net.b] {
        let m = &h.stack.core.net.mib;
        v.push(("RetransSegs", m.tcp_get(TcpMib::RetransSegs)));
        for (name, c) in [
            ("TCPOFOQueue", LinuxMib::TCPOFOQueue),
            ("TCPDSACKRecv", LinuxMib::TCPDSACKRecv),
            ("TCPLossProbes", LinuxMib::TCPLossProbes),
            ("TCPTimeouts", LinuxMib::TCPTimeouts),
            ("TCPSACKReorder", LinuxMib::TCPSACKReorder),
            ("TCPBacklogDrop", LinuxMib::TCPBacklogDrop),
            ("TCPFastRetrans", LinuxMib::TCPFastRetrans),
        ] {
            v.push((name, m.get(c)));
        }
    }
    v.retain(|(_, n)| *n != 0);
    v
}

/// A listener on B and a connection to it from A, both ends.
async fn pair(net: &SimNet, port: u16) -> (TcpListener, TcpStream, TcpStream) {
    let addr = SocketAddrV4::new(ADDR_B, port);
    let l = TcpListener::bind(&net.b.stack, addr).await.unwrap();
    let c = TcpStream::connect(&net.a.stack, addr).await.unwrap();
    let (s, peer) = l.accept().await.unwrap();
    assert_eq!(peer, c.local_addr().unwrap());
    assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
    assert_eq!(c.peer_addr().unwrap(), addr.into());
    (l, c, s)
}

#[test]
fn echo_on_a_multi_thread_runtime() {
    let net = sim();
    run(async move {
        let addr = SocketAddrV4::new(ADDR_B, 7);
        let l = TcpListener::bind(&net.b.stack, addr).await.unwrap();
        assert_eq!(l.local_addr().unwrap(), addr.into());
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            let (mut r, mut w) = s.split();
            tokio::io::copy(&mut r, &mut w).await.unwrap()
        });
        let mut c = TcpStream::connect(&net.a.stack, addr).await.unwrap();
        c.set_nodelay(true).unwrap();
        let msg: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        for round in 0..20 {
            c.write_all(&msg).await.unwrap();
            let mut back = vec![0u8; msg.len()];
            c.read_exact(&mut back).await.unwrap();
            assert_eq!(back, msg, "round {round}");
        }
        c.shutdown().await.unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        assert_eq!(server.await.unwrap(), 20 * msg.len() as u64);
        assert_eq!(dirty(&net), vec![]);
    });
}

#[test]
fn transfer_32_mib_byte_exact_and_clean() {
    let net = sim();
    run(async move {
        let (_l, mut c, mut s) = pair(&net, 5001).await;
        let total = (32u64 << 20) + 4321;
        let reader = tokio::spawn(async move { read_stream(&mut s, 1).await });
        write_stream(&mut c, total, 1).await;
        c.shutdown().await.unwrap();
        assert_eq!(reader.await.unwrap(), total);
        assert_eq!(dirty(&net), vec![], "a clean link retransmitted or reordered");
        let sent = net.a.stack.core.net.mib.get(LinuxMib::TCPOrigDataSent);
        assert!(sent > total / 65536, "{sent} data segments for {total} bytes");
    });
}

#[test]
fn read_and_write_halves_run_concurrently() {
    let net = sim();
    run(async move {
        let (_l, c, s) = pair(&net, 5002).await;
        let total = 8u64 << 20;
        // Each side writes one stream and reads the other's, in two tasks per side, at once.
        let mut tasks = Vec::new();
        for (stream, seed_out, seed_in) in [(c, 11, 22), (s, 22, 11)] {
            let (mut r, mut w) = stream.into_split();
            tasks.push(tokio::spawn(async move {
                write_stream(&mut w, total, seed_out).await;
                w.shutdown().await.unwrap();
                0
            }));
            tasks.push(tokio::spawn(async move { read_stream(&mut r, seed_in).await }));
        }
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap());
        }
        assert_eq!(got, vec![0, total, 0, total]);
        assert_eq!(dirty(&net), vec![]);
    });
}

#[test]
fn reunite_and_borrowed_split() {
    let net = sim();
    run(async move {
        let (_l, mut c, _s) = pair(&net, 5003).await;
        {
            let (r, w) = c.split();
            assert_eq!(r.peer_addr().unwrap(), w.peer_addr().unwrap());
        }
        let (r, w) = c.into_split();
        let (_l2, c2, _s2) = pair(&net, 5004).await;
        let (r2, w2) = c2.into_split();
        let err = r.reunite(w2).unwrap_err();
        let (r, w2) = (err.0, err.1);
        let c = r.reunite(w).unwrap();
        let c2 = w2.reunite(r2).unwrap();
        // Reunited halves did not shut the write side down.
        c.try_write(b"x").unwrap();
        c2.try_write(b"y").unwrap();
    });
}

#[test]
fn shutdown_is_shut_wr_and_the_peer_reads_eof() {
    let net = sim();
    run(async move {
        let (_l, mut c, mut s) = pair(&net, 5005).await;
        c.write_all(b"last words").await.unwrap();
        c.shutdown().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"last words");
        // SHUT_WR only: the other direction still carries data.
        s.write_all(b"reply").await.unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"reply");
        // A write after shutdown is EPIPE, as send() after SHUT_WR on Linux.
        let e = c.write(b"more").await.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(32), "{e}");
        // Dropping an owned write half shuts down too.
        let (_l2, c2, mut s2) = pair(&net, 5006).await;
        let (_r2, w2) = c2.into_split();
        drop(w2);
        assert_eq!(s2.read(&mut buf).await.unwrap(), 0);
    });
}

/// `f`, signalling `parked` the first time it returns `Pending`.
async fn signal_first_pending<F: Future>(f: F, parked: tokio::sync::oneshot::Sender<()>) -> F::Output {
    let mut f = pin!(f);
    let mut parked = Some(parked);
    std::future::poll_fn(|cx| {
        let r = f.as_mut().poll(cx);
        if r.is_pending() {
            if let Some(tx) = parked.take() {
                let _ = tx.send(());
            }
        }
        r
    })
    .await
}

#[test]
fn peek_leaves_the_bytes_for_read() {
    let net = sim();
    run(async move {
        let (_l, mut c, mut s) = pair(&net, 5007).await;
        let (parked_tx, parked) = tokio::sync::oneshot::channel();
        let peeker = tokio::spawn(async move {
            let mut p = [0u8; 16];
            // Parks: nothing has been sent yet.
            let n = signal_first_pending(s.peek(&mut p), parked_tx).await.unwrap();
            assert!(n > 0 && b"hello, peek".starts_with(&p[..n]), "{:?}", &p[..n]);
            let mut all = [0u8; 11];
            s.read_exact(&mut all).await.unwrap();
            assert_eq!(&all, b"hello, peek");
            // Peek at EOF is 0.
            assert_eq!(s.peek(&mut p).await.unwrap(), 0);
        });
        parked.await.unwrap();
        c.write_all(b"hello, peek").await.unwrap();
        c.shutdown().await.unwrap();
        peeker.await.unwrap();
    });
}

#[test]
fn vectored_write_is_one_sendmsg() {
    let net = sim();
    run(async move {
        let (_l, mut c, mut s) = pair(&net, 5013).await;
        assert!(tokio::io::AsyncWrite::is_write_vectored(&c));
        let parts = [std::io::IoSlice::new(b"one "), std::io::IoSlice::new(b""), std::io::IoSlice::new(b"two")];
        assert_eq!(c.write_vectored(&parts).await.unwrap(), 7);
        c.shutdown().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"one two");
        // sendmsg's gather built one segment of both iovecs, as on Linux.
        assert_eq!(net.a.stack.core.net.mib.get(LinuxMib::TCPOrigDataSent), 2, "data + FIN");
    });
}

#[test]
fn readable_and_writable_follow_the_socket() {
    let net = sim();
    run(async move {
        let (_l, c, s) = pair(&net, 5008).await;
        c.set_nodelay(true).unwrap();
        let c = Arc::new(c);
        let s = Arc::new(s);
        // Nothing to read: readable() parks, try_read is WouldBlock.
        let mut buf = [0u8; 64];
        assert_eq!(s.try_read(&mut buf).unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
        let s2 = s.clone();
        let (parked_tx, parked) = tokio::sync::oneshot::channel();
        let waiter = tokio::spawn(async move {
            signal_first_pending(s2.readable(), parked_tx).await.unwrap();
            let mut buf = [0u8; 64];
            s2.try_read(&mut buf).unwrap()
        });
        parked.await.unwrap();
        c.writable().await.unwrap();
        assert_eq!(c.try_write(b"abc").unwrap(), 3);
        assert_eq!(waiter.await.unwrap(), 3);
        // Fill C's send buffer (S does not read): writable() then parks until S reads.
        let chunk = vec![7u8; 65536];
        let mut queued = 0usize;
        loop {
            match c.try_write(&chunk) {
                Ok(n) => queued += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(queued > 0);
        let full = c.poll_write_ready(&mut Context::from_waker(Waker::noop())).is_pending();
        assert!(full, "writable with a full send buffer");
        let c2 = c.clone();
        let (parked_tx, parked) = tokio::sync::oneshot::channel();
        let writer = tokio::spawn(async move {
            signal_first_pending(c2.writable(), parked_tx).await.unwrap();
            c2.try_write(b"z").unwrap()
        });
        parked.await.unwrap();
        let drain = tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            let mut got = 0;
            while got < queued + 1 {
                s.readable().await.unwrap();
                match s.try_read(&mut buf) {
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
            }
            got
        });
        assert_eq!(writer.await.unwrap(), 1);
        assert_eq!(drain.await.unwrap(), queued + 1);
        assert_eq!(dirty(&net), vec![]);
    });
}

#[test]
fn many_concurrent_connections() {
    let net = sim();
    run(async move {
        let addr = SocketAddrV4::new(ADDR_B, 5009);
        let l = TcpListener::bind(&net.b.stack, addr).await.unwrap();
        const N: u64 = 200;
        let server = tokio::spawn(async move {
            let mut echoes = Vec::new();
            for _ in 0..N {
                let (mut s, _) = l.accept().await.unwrap();
                s.set_nodelay(true).unwrap();
                echoes.push(tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    tokio::io::copy(&mut r, &mut w).await.unwrap()
                }));
            }
            let mut total = 0;
            for e in echoes {
                total += e.await.unwrap();
            }
            total
        });
        let mut clients = Vec::new();
        for i in 0..N {
            let stack = net.a.stack.clone();
            clients.push(tokio::spawn(async move {
                let c = TcpStream::connect(&stack, addr).await.unwrap();
                c.set_nodelay(true).unwrap();
                let (mut r, mut w) = c.into_split();
                let len = 20_000 + i * 97;
                let reader = tokio::spawn(async move { read_stream(&mut r, i).await });
                write_stream(&mut w, len, i).await;
                w.shutdown().await.unwrap();
                assert_eq!(reader.await.unwrap(), len, "connection {i}");
                len
            }));
        }
        let mut sent = 0;
        for c in clients {
            sent += c.await.unwrap();
        }
        assert_eq!(server.await.unwrap(), sent);
        assert_eq!(dirty(&net), vec![]);
    });
}

/// A peer that closes with unread data sends a RST (tcp_close): the parked reader is woken with
/// ECONNRESET, a later write fails with EPIPE.
#[test]
fn reset_wakes_a_parked_reader_with_econnreset() {
    let net = sim();
    run(async move {
        let (_l, mut c, mut s) = pair(&net, 5012).await;
        c.write_all(b"never read").await.unwrap();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            let e = c.read(&mut buf).await.unwrap_err();
            let e2 = c.write(b"x").await.unwrap_err();
            (e.raw_os_error(), e2.raw_os_error())
        });
        // Let the reader park (it may also run after the close: the result is the same).
        tokio::task::yield_now().await;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        drop(s);
        assert_eq!(reader.await.unwrap(), (Some(104), Some(32)));
    });
}

#[test]
fn refused_connect_is_econnrefused() {
    let net = sim();
    run(async move {
        let e = TcpStream::connect(&net.a.stack, SocketAddrV4::new(ADDR_B, 9)).await.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(111), "{e}");
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
        // The port is taken: EADDRINUSE from bind, as errno.
        let addr = SocketAddrV4::new(ADDR_B, 10);
        let _l = TcpListener::bind_with_backlog(&net.b.stack, addr, 4).unwrap();
        let e = TcpListener::bind(&net.b.stack, addr).await.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(98), "{e}");
    });
}

/// A waker that counts its wakeups and lets a thread wait for one.
#[derive(Default)]
struct CountingWaker {
    woken: Mutex<u64>,
    cv: Condvar,
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        *self.woken.lock().unwrap() += 1;
        self.cv.notify_all();
    }
}

impl CountingWaker {
    fn count(&self) -> u64 {
        *self.woken.lock().unwrap()
    }
    fn wait_for(&self, n: u64) -> bool {
        let g = self.woken.lock().unwrap();
        let (g, _) = self.cv.wait_timeout_while(g, LIMIT, |w| *w < n).unwrap();
        *g >= n
    }
}

/// The reader is polled by hand with a counting waker: once (Pending, parked), then nothing
/// polls it while another thread sends; the send's own wakeup must wake it, exactly then.
#[test]
fn parked_reader_is_woken_by_data_from_another_thread() {
    let net = sim();
    let (_l, c, mut s) = run({
        let net = net.clone();
        async move { pair(&net, 5010).await }
    });
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    let mut buf = [0u8; 32];
    {
        let mut read = pin!(s.read(&mut buf));
        assert!(read.as_mut().poll(&mut cx).is_pending(), "nothing was sent yet");
        // Nothing happens on the connection: no wakeup (there is no timer, no poll loop).
        std::thread::sleep(StdDuration::from_millis(20));
        assert_eq!(counter.count(), 0, "woken with nothing to read");
        let sender = std::thread::spawn(move || {
            let mut c = c;
            futures_lite_block_on(c.write_all(b"wake up")).unwrap();
            c
        });
        assert!(counter.wait_for(1), "the parked reader was never woken");
        let c = sender.join().unwrap();
        match read.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(n)) => assert_eq!(&buf[..n], b"wake up"),
            other => panic!("woken, but the read is {other:?}"),
        }
        drop(c);
    }
    // One segment, a handful of socket wakeups at most (data, then the ACK it sent): never one
    // per poll.
    assert!(counter.count() <= 3, "{} wakeups for one segment", counter.count());
    assert!(s.wakeups() <= 3, "{}", s.wakeups());
}

/// The same on the runtime: a reader task parks, a plain thread (not a task) sends.
#[test]
fn parked_task_is_woken_on_a_runtime_with_no_timer() {
    let net = sim();
    let rt = runtime();
    let (_l, c, mut s) = rt.block_on({
        let net = net.clone();
        async move { pair(&net, 5011).await }
    });
    let polls = Arc::new(AtomicU64::new(0));
    let p2 = polls.clone();
    let (parked_tx, parked_rx) = mpsc::channel();
    let reader = rt.spawn(async move {
        let mut buf = [0u8; 32];
        let n = {
            let mut fut = pin!(s.read(&mut buf));
            std::future::poll_fn(|cx| {
                let r = fut.as_mut().poll(cx);
                if p2.fetch_add(1, Ordering::SeqCst) == 0 {
                    assert!(r.is_pending());
                    parked_tx.send(()).unwrap();
                }
                r
            })
            .await
            .unwrap()
        };
        (buf[..n].to_vec(), s.wakeups())
    });
    parked_rx.recv_timeout(LIMIT).unwrap();
    std::thread::sleep(StdDuration::from_millis(20));
    assert_eq!(c.try_write(b"from a thread").unwrap(), 13);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(rt.block_on(reader));
    });
    let (got, wakeups) = rx.recv_timeout(LIMIT).expect("the parked task was never woken").unwrap();
    assert_eq!(got, b"from a thread");
    let polls = polls.load(Ordering::SeqCst);
    assert!((2..=4).contains(&polls), "{polls} polls for one wakeup");
    assert!((1..=3).contains(&wakeups), "{wakeups} wakeups");
}

/// Drives `f` to completion on the current thread with a thread-parking waker (no runtime).
fn futures_lite_block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(r) = f.as_mut().poll(&mut cx) {
            return r;
        }
        std::thread::park();
    }
}

/// The sockets and their halves move between a multi-threaded runtime's workers and can be
/// shared by tasks (`&self` methods: `readable`, `peek`, `try_read`, ...).
#[test]
fn sockets_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<TcpListener>();
    send_sync::<TcpStream>();
    send_sync::<utcp::tokio::OwnedReadHalf>();
    send_sync::<utcp::tokio::OwnedWriteHalf>();
    send_sync::<utcp::tokio::ReadHalf<'static>>();
    send_sync::<utcp::tokio::WriteHalf<'static>>();
}

/// An echo over IPv6: AF_INET6 sockets for an IPv6 address, IPv6 addresses at both ends,
/// IPv6 on the wire.
#[test]
fn ipv6_echo_and_addresses() {
    let net = sim();
    let n2 = net.clone();
    run(async move {
        let addr = SocketAddr::V6(SocketAddrV6::new(ADDR6_B, 5020, 0, 0));
        let l = TcpListener::bind(&net.b.stack, addr).await.unwrap();
        assert_eq!(l.local_addr().unwrap(), addr);
        let server = tokio::spawn(async move {
            let (mut s, peer) = l.accept().await.unwrap();
            assert_eq!(peer.ip(), IpAddr::V6(ADDR6_A));
            assert_eq!(s.local_addr().unwrap(), addr);
            s.set_nodelay(true).unwrap();
            let (mut r, mut w) = s.split();
            tokio::io::copy(&mut r, &mut w).await.unwrap()
        });
        let c = TcpStream::connect(&net.a.stack, addr).await.unwrap();
        c.set_nodelay(true).unwrap();
        assert_eq!(c.peer_addr().unwrap(), addr);
        assert_eq!(c.local_addr().unwrap().ip(), IpAddr::V6(ADDR6_A));
        let (mut r, mut w) = c.into_split();
        let len = 1u64 << 20;
        let reader = tokio::spawn(async move { read_stream(&mut r, 7).await });
        write_stream(&mut w, len, 7).await;
        w.shutdown().await.unwrap();
        assert_eq!(reader.await.unwrap(), len);
        assert_eq!(server.await.unwrap(), len);
        assert_eq!(dirty(&net), vec![]);
    });
    let m = &n2.b.stack.core.net.mib;
    assert_eq!(m.tcp_get(TcpMib::PassiveOpens), 1);
}

/// A listener on `[::]` is dual-stack (net.ipv6.bindv6only = 0): an IPv4 client connects over
/// IPv4 and the server sees it, and itself, as IPv4-mapped addresses.
#[test]
fn dual_stack_listener_sees_a_mapped_ipv4_peer() {
    let net = sim();
    run(async move {
        let any = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 5021, 0, 0));
        let l = TcpListener::bind(&net.b.stack, any).await.unwrap();
        let c = TcpStream::connect(&net.a.stack, SocketAddrV4::new(ADDR_B, 5021)).await.unwrap();
        let (mut s, peer) = l.accept().await.unwrap();
        let mine = c.local_addr().unwrap();
        assert_eq!(mine.ip(), IpAddr::V4(ADDR_A));
        assert_eq!(peer, SocketAddr::V6(SocketAddrV6::new(ADDR_A.to_ipv6_mapped(), mine.port(), 0, 0)));
        assert_eq!(s.local_addr().unwrap(), SocketAddr::V6(SocketAddrV6::new(ADDR_B.to_ipv6_mapped(), 5021, 0, 0)));
        assert_eq!(c.peer_addr().unwrap(), SocketAddr::V4(SocketAddrV4::new(ADDR_B, 5021)));
        let mut c = c;
        c.write_all(b"over ipv4").await.unwrap();
        c.shutdown().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"over ipv4");
        assert_eq!(dirty(&net), vec![]);
    });
}

/// With net.ipv6.bindv6only = 1 a `[::]` listener is IPv6-only: an IPv4 client's SYN finds no
/// listener and is reset (ECONNREFUSED), while an IPv6 client gets through.
#[test]
fn bindv6only_keeps_ipv4_off_a_wildcard_listener() {
    let net = sim();
    net.b.stack.core.net.sysctl.set_by_name("net.ipv6.bindv6only", "1").unwrap();
    run(async move {
        let any = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 5022, 0, 0));
        let l = TcpListener::bind(&net.b.stack, any).await.unwrap();
        let e = TcpStream::connect(&net.a.stack, SocketAddrV4::new(ADDR_B, 5022)).await.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(111), "ECONNREFUSED: {e}");
        let c = TcpStream::connect(&net.a.stack, SocketAddrV6::new(ADDR6_B, 5022, 0, 0)).await.unwrap();
        let (_s, peer) = l.accept().await.unwrap();
        assert_eq!(peer, c.local_addr().unwrap());
    });
}
