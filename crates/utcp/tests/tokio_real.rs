//! `utcp::tokio` on real threads and the real clock: two stacks with their host threads
//! (timers, NAPI) on a memlink, driven from a multi-threaded tokio runtime that has no timer
//! and no I/O driver. Echo, a 32 MiB transfer each way at once over split halves, and many
//! connections, in both delivery modes.
//!
//! On a clean link nothing may arrive out of order and nothing may be retransmitted except by
//! a timer: on this shared machine a preempted thread can hold an ACK back past a loss-probe
//! timeout, which is scheduling, not the stack: such a round passes only when the scheduler's
//! own record shows a thread waited that long for a CPU (tests/sched, as tests/real_threads.rs).
//!
//! Every test is bounded by a watchdog and asserts nothing about durations.

use std::future::Future;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::mpsc;
use std::time::Duration as StdDuration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use utcp::api::{memlink_pair, Host, ADDR6_B, ADDR_B};
use utcp::netdev::memlink::{Delivery, LinkConfig};
use utcp::tokio::{TcpListener, TcpStream};

mod sched;
use sched::{check_round, schedstats, Snapshot, Stall};

const LIMIT: StdDuration = StdDuration::from_secs(300);

/// One test at a time: each keeps both cores busy.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run<F>(f: F) -> (F::Output, Stall)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // The runtime's workers start after this snapshot and are measured before they exit.
        let snap = Snapshot::now();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
        let out = rt.block_on(f);
        let _ = tx.send((out, snap.stall(0)));
    });
    match rx.recv_timeout(LIMIT) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("stalled: a task was never woken"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the test body panicked"),
    }
}

fn stream_byte(i: u64, seed: u64) -> u8 {
    (i ^ (i >> 8).wrapping_mul(31) ^ (i >> 24).wrapping_mul(131) ^ seed.wrapping_mul(0x9e37)) as u8
}

fn fill(buf: &mut [u8], off: u64, seed: u64) {
    for (k, b) in buf.iter_mut().enumerate() {
        *b = stream_byte(off + k as u64, seed);
    }
}

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

/// The clean-link invariants (see the module docs): a round with timer-driven
/// retransmissions must show, in the scheduler's own record, a thread held back for a
/// loss-probe timeout's floor (or stolen CPU time), as tests/real_threads.rs judges its rounds.
fn check_clean(what: &str, a: &Host, b: &Host, stall: &Stall) {
    check_round(what, a, b, schedstats().then_some(stall));
}

fn both_ways(delivery: Delivery, addr: SocketAddr) {
    let (a, b) = memlink_pair(LinkConfig { delivery, ..LinkConfig::default() });
    let (sa, sb) = (a.stack.clone(), b.stack.clone());
    let total = 32u64 << 20;
    let ((), stall) = run(async move {
        let l = TcpListener::bind(&sb, addr).await.unwrap();
        let c = TcpStream::connect(&sa, addr).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        let mut tasks = Vec::new();
        for (stream, seed_out, seed_in) in [(c, 1, 2), (s, 2, 1)] {
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
    });
    check_clean(&format!("{delivery:?} {addr}"), &a, &b, &stall);
}

#[test]
fn transfer_both_ways_inline_real_time() {
    both_ways(Delivery::Inline, SocketAddrV4::new(ADDR_B, 6001).into());
}

#[test]
fn transfer_both_ways_napi_real_time() {
    both_ways(Delivery::Napi, SocketAddrV4::new(ADDR_B, 6001).into());
}

/// The same over IPv6 (AF_INET6 sockets, IPv6 on the wire), on real threads.
#[test]
fn transfer_both_ways_ipv6_napi_real_time() {
    both_ways(Delivery::Napi, SocketAddrV6::new(ADDR6_B, 6004, 0, 0).into());
}

#[test]
fn echo_and_many_connections_real_time() {
    let (a, b) = memlink_pair(LinkConfig { delivery: Delivery::Napi, ..LinkConfig::default() });
    let (sa, sb) = (a.stack.clone(), b.stack.clone());
    let ((), stall) = run(async move {
        let addr = SocketAddrV4::new(ADDR_B, 6002);
        let l = TcpListener::bind(&sb, addr).await.unwrap();
        const N: u64 = 64;
        let server = tokio::spawn(async move {
            let mut echoes = Vec::new();
            for _ in 0..N {
                let (mut s, _) = l.accept().await.unwrap();
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
            let stack = sa.clone();
            clients.push(tokio::spawn(async move {
                let mut c = TcpStream::connect(&stack, addr).await.unwrap();
                let msg: Vec<u8> = (0..(1000 + i * 13)).map(|k| stream_byte(k, i)).collect();
                for _ in 0..10 {
                    c.write_all(&msg).await.unwrap();
                    let mut back = vec![0u8; msg.len()];
                    c.read_exact(&mut back).await.unwrap();
                    assert_eq!(back, msg, "connection {i}");
                }
                c.shutdown().await.unwrap();
                assert_eq!(c.read(&mut [0u8; 1]).await.unwrap(), 0);
                10 * msg.len() as u64
            }));
        }
        let mut sent = 0;
        for c in clients {
            sent += c.await.unwrap();
        }
        assert_eq!(server.await.unwrap(), sent);
    });
    check_clean("echo", &a, &b, &stall);
}

/// One-byte ping-pong: every message parks the other side's task and must wake it, so a lost
/// wakeup anywhere stalls the test (the watchdog fails it).
#[test]
fn ping_pong_never_loses_a_wakeup() {
    let (a, b) = memlink_pair(LinkConfig { delivery: Delivery::Napi, ..LinkConfig::default() });
    let (sa, sb) = (a.stack.clone(), b.stack.clone());
    const ROUNDS: u32 = 20_000;
    let ((), stall) = run(async move {
        let addr = SocketAddrV4::new(ADDR_B, 6003);
        let l = TcpListener::bind(&sb, addr).await.unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            let mut b = [0u8; 1];
            for i in 0..ROUNDS {
                s.read_exact(&mut b).await.unwrap();
                assert_eq!(b[0], i as u8);
                s.write_all(&b).await.unwrap();
            }
        });
        let mut c = TcpStream::connect(&sa, addr).await.unwrap();
        c.set_nodelay(true).unwrap();
        assert!(c.nodelay().unwrap());
        let mut b = [0u8; 1];
        for i in 0..ROUNDS {
            c.write_all(&[i as u8]).await.unwrap();
            c.read_exact(&mut b).await.unwrap();
            assert_eq!(b[0], i as u8);
        }
        server.await.unwrap();
    });
    check_clean("ping-pong", &a, &b, &stall);
}
