//! The send side under TCP memory pressure (issue 11), as Linux 6.18's `tcp_sendmsg_locked()`
//! meets it: `sk_wmem_schedule()` / `tcp_wmem_schedule()` charge what a write queues against
//! `net.ipv4.tcp_mem`; under pressure an automatic send buffer is moderated to half of what
//! is queued (`sk_stream_moderate_sndbuf()`), so writers wait for send-buffer space; a locked
//! one (SO_SNDBUF) with room left is refused the memory, and the writer gets EAGAIN, or
//! blocks in `sk_stream_wait_memory()` sleeping `vm_wait` at a time, while `poll` still
//! reports it writable (`sk_stream_memory_free()` knows nothing of `tcp_mem`). Memory stays
//! within the limits and nothing is lost once the peers read.

mod common;

use common::*;
use std::net::SocketAddrV4;
use utcp::api::ADDR_B;
use utcp::errno::Errno;
use utcp::mib::LinuxMib;
use utcp::syscall::opt::{SO_RCVBUF, SO_SNDBUF};
use utcp::syscall::*;
use utcp::tcp::TcpState;
use utcp::time::Duration;

const POLLOUT: i16 = 4;

/// `n` connections from A to a listener on B:`port` whose accepted sockets have SO_RCVBUF
/// 4096 (and are not read until the test says); each of A's with SO_SNDBUF `sndbuf` if
/// given. Returns (A's fd, B's fd).
fn conns(lab: &Lab, port: u16, n: usize, sndbuf: Option<i32>) -> Vec<(i32, i32)> {
    let l = lab.b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    lab.b.setsockopt_int(l, SOL_SOCKET, SO_RCVBUF, 4096).unwrap();
    lab.b.bind(l, SocketAddrV4::new(ADDR_B, port)).unwrap();
    lab.b.listen(l, 64).unwrap();
    (0..n)
        .map(|_| {
            let c = lab.a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
            if let Some(v) = sndbuf {
                lab.a.setsockopt_int(c, SOL_SOCKET, SO_SNDBUF, v).unwrap();
            }
            assert_eq!(lab.a.connect(c, SocketAddrV4::new(ADDR_B, port)), Err(Errno::EINPROGRESS));
            let mut s = None;
            assert!(lab.run_until(Duration::from_secs(10), || {
                s = s.or_else(|| lab.b.accept4(l, SOCK_NONBLOCK).ok().map(|x| x.0));
                s.is_some()
            }));
            assert_eq!(state(&lab.a, c), TcpState::Established);
            (c, s.unwrap())
        })
        .collect()
}

/// A's socket behind fd `c`: (wmem_queued, sndbuf).
fn a_queue(lab: &Lab, c: i32) -> (u32, u32) {
    let port = lab.a.getsockname(c).unwrap().port();
    lab.a
        .core
        .sockets()
        .into_iter()
        .find(|sk| sk.peek_tp(|tp| tp.listen.is_none() && tp.sport == port))
        .expect("A's socket")
        .peek_tp(|tp| (tp.wmem_queued, tp.sndbuf))
}

/// Eight writers into peers that do not read, with A's `tcp_mem` = 16 24 32 pages: A enters
/// memory pressure, the send buffers are moderated (writers meet EAGAIN), and A's pages never
/// pass the hard limit by more than the charges Linux grants past it (a socket's first skb,
/// `tcp_wmem[0]`, and the one write that finds a socket over its moderated send buffer).
/// One writer has SO_SNDBUF locked at 1 MiB: it gets EAGAIN with most of it free, while poll
/// says it is writable. Once the peers read, every stream arrives exact and every page is
/// back.
#[test]
fn writers_meet_tcp_mem_and_lose_nothing() {
    let lab = Lab::new(Duration::from_millis(1));
    const N: usize = 8;
    const LEN: usize = 1 << 20;
    let mut cs = conns(&lab, 80, N - 1, None);
    cs.extend(conns(&lab, 81, 1, Some(512 * 1024)));
    let locked = cs[N - 1].0;
    let pm = lab.a.core.net.tcp_mem.clone();
    lab.a.core.net.sysctl.set_by_name("net.ipv4.tcp_mem", "16 24 32").unwrap();
    let sndbuf0: Vec<u32> = cs.iter().map(|&(c, _)| a_queue(&lab, c).1).collect();
    let data: Vec<Vec<u8>> = (0..N).map(|i| pattern(LEN, 7 + i as u64)).collect();
    let mut sent = [0usize; N];
    let mut peak = 0i64;
    // Each socket may pass the hard limit by its first skb, tcp_wmem[0] and one write of up
    // to a 64 KiB skb.
    let slack = N as i64 * (1 + 1 + 17 + 1);
    let mut locked_refused = false;
    for _ in 0..40 {
        for (i, &(c, _)) in cs.iter().enumerate() {
            match lab.a.send(c, Some(&data[i][sent[i]..]), LEN - sent[i], MSG_DONTWAIT_FLAG) {
                Ok(n) => sent[i] += n,
                Err(e) => {
                    assert_eq!(e, Errno::EAGAIN);
                    if c == locked {
                        let (queued, sndbuf) = a_queue(&lab, c);
                        if (queued as u64) < sndbuf as u64 / 2 {
                            locked_refused = true;
                            // poll: writable all the same (sk_stream_memory_free()).
                            let mut fds = [PollFd { fd: c, events: POLLOUT, revents: 0 }];
                            assert_eq!(lab.a.poll(&mut fds, Some(Duration::ZERO)), Ok(1));
                            assert!(fds[0].revents & POLLOUT != 0);
                        }
                    }
                }
            }
            peak = peak.max(pm.allocated());
        }
        lab.advance(Duration::from_millis(100));
        peak = peak.max(pm.allocated());
    }
    assert!(pm.under_pressure(), "{} pages", pm.allocated());
    assert!(lab.a.core.net.mib.get(LinuxMib::TCPMemoryPressures) >= 1);
    assert!(peak <= pm.limit(2) + slack, "peak {peak} pages");
    assert!(sent.iter().all(|&n| n < LEN), "{sent:?}");
    let moderated = cs[..N - 1].iter().zip(&sndbuf0).filter(|(&(c, _), &s0)| a_queue(&lab, c).1 < s0).count();
    assert!(moderated > 0, "automatic send buffers moderated");
    assert_eq!(a_queue(&lab, locked).1, sndbuf0[N - 1], "a locked send buffer is not moderated");
    assert!(
        locked_refused,
        "the locked writer was refused memory with room in its buffer: {:?}",
        a_queue(&lab, locked)
    );
    println!(
        "sent {sent:?}; queued {:?}; peak {peak} pages (tcp_mem[2] {})",
        cs.iter().map(|&(c, _)| a_queue(&lab, c)).collect::<Vec<_>>(),
        pm.limit(2)
    );
    // The peers read now; the writers go on.
    let mut got: Vec<Vec<u8>> = vec![Vec::new(); N];
    assert!(lab.run_until(Duration::from_secs(600), || {
        for (i, &(c, s)) in cs.iter().enumerate() {
            if sent[i] < LEN {
                if let Ok(n) = lab.a.send(c, Some(&data[i][sent[i]..]), LEN - sent[i], MSG_DONTWAIT_FLAG) {
                    sent[i] += n;
                }
            }
            drain(&lab.b, s, &mut got[i]).unwrap();
        }
        peak = peak.max(pm.allocated());
        got.iter().all(|g| g.len() == LEN)
    }));
    for i in 0..N {
        assert!(got[i] == data[i], "stream {i} differs");
    }
    assert!(peak <= pm.limit(2) + slack, "peak {peak} pages");
    lab.advance(Duration::from_secs(5));
    assert_eq!(pm.allocated(), 0, "A's send queues are empty: every page back");
    assert!(!pm.under_pressure());
}

/// Real stacks, real threads, the real clock: four blocking writers with SO_SNDBUF locked at
/// 1 MiB write 2 MiB each into a host whose readers start only once the writers' host is
/// under memory pressure (`tcp_mem` = 8 12 16 pages). Under pressure a socket above
/// `tcp_wmem[0]` and its share (16 pages / 4 sockets) is refused memory until the pressure
/// ends below 8 pages, so the writers block on memory (`sk_stream_wait_memory()`'s `vm_wait`
/// sleeps), their queues staying far below their send buffers, until the readers free it.
/// Every stream arrives exact and every page comes back.
#[test]
fn real_threads_blocking_writers_wait_for_memory() {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration as StdDuration, Instant as StdInstant};
    use utcp::api::{memlink_pair, TcpListener, TcpStream};
    use utcp::netdev::memlink::LinkConfig;
    const N: usize = 4;
    const LEN: usize = 2 << 20;
    const LIMIT: StdDuration = StdDuration::from_secs(600);
    let (a, b) = memlink_pair(LinkConfig::default());
    a.stack.core.net.sysctl.set_by_name("net.ipv4.tcp_mem", "8 12 16").unwrap();
    let pm = a.stack.core.net.tcp_mem.clone();
    let l = TcpListener::bind(&b.stack, SocketAddrV4::new(ADDR_B, 9000), 16).unwrap();
    let over = Arc::new(AtomicBool::new(false));
    let watch = {
        let (pm, over, st) = (pm.clone(), over.clone(), a.stack.clone());
        std::thread::spawn(move || {
            let (mut peak, mut peak_queued, mut sndbuf) = (0i64, 0u32, 0u32);
            while !over.load(Ordering::Relaxed) {
                peak = peak.max(pm.allocated());
                for sk in st.core.sockets() {
                    let (q, sb) = sk.peek_tp(|tp| (tp.wmem_queued, tp.sndbuf));
                    peak_queued = peak_queued.max(q);
                    sndbuf = sndbuf.max(sb);
                }
                std::thread::sleep(StdDuration::from_micros(200));
            }
            (peak, peak_queued, sndbuf)
        })
    };
    let writers: Vec<_> = (0..N)
        .map(|i| {
            let st = a.stack.clone();
            std::thread::spawn(move || {
                let c = TcpStream::connect(&st, SocketAddrV4::new(ADDR_B, 9000)).unwrap();
                st.setsockopt_int(c.fd(), SOL_SOCKET, SO_SNDBUF, 512 * 1024).unwrap();
                let mut c = c;
                c.write_all(&pattern(LEN, 40 + i as u64)).unwrap();
                // Close only once the peer has it all (an orphan with data queued over
                // tcp_mem[2] is reset: tests/orphans.rs).
                c.shutdown(std::net::Shutdown::Write).unwrap();
                assert_eq!(c.read(&mut [0u8; 16]).unwrap(), 0);
            })
        })
        .collect();
    let readers: Vec<_> = (0..N)
        .map(|_| {
            let (mut s, _) = l.accept().unwrap();
            let pm = pm.clone();
            std::thread::spawn(move || {
                let start = StdInstant::now();
                while !pm.under_pressure() {
                    assert!(start.elapsed() < LIMIT, "never under pressure: {} pages", pm.allocated());
                    std::thread::sleep(StdDuration::from_millis(1));
                }
                // The writers are refused memory from now on; let them meet it.
                std::thread::sleep(StdDuration::from_millis(100));
                let mut got = Vec::with_capacity(LEN);
                let mut buf = vec![0u8; 65536];
                loop {
                    let n = s.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                got
            })
        })
        .collect();
    let t0 = StdInstant::now();
    for w in writers {
        w.join().unwrap();
    }
    let t_written = t0.elapsed();
    let streams: Vec<Vec<u8>> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    let t_read = t0.elapsed();
    let mut seen = [false; N];
    for got in &streams {
        let i = (0..N).find(|&i| got == &pattern(LEN, 40 + i as u64)).expect("a stream arrived altered");
        assert!(!seen[i]);
        seen[i] = true;
    }
    let start = StdInstant::now();
    while pm.allocated() != 0 || pm.under_pressure() {
        assert!(start.elapsed() < LIMIT, "{} pages still charged", pm.allocated());
        std::thread::sleep(StdDuration::from_millis(1));
    }
    over.store(true, Ordering::Relaxed);
    let (peak, peak_queued, sndbuf) = watch.join().unwrap();
    assert_eq!(sndbuf, 1 << 20, "SO_SNDBUF 512 KiB, doubled and locked");
    assert!((peak_queued as u64) < sndbuf as u64 / 4, "queues held by memory, not by the send buffer: {peak_queued}");
    assert!(peak <= pm.limit(2) + N as i64 * 20, "peak {peak} pages");
    println!(
        "real threads: peak {peak} pages, largest queue {peak_queued} of a {sndbuf}-byte send buffer; \
         written {t_written:?}, read {t_read:?}, pages back {:?}; TCPMemoryPressures {}",
        t0.elapsed(),
        a.stack.core.net.mib.get(LinuxMib::TCPMemoryPressures)
    );
}
