//! Data integrity and transmit order on real threads and the real clock.
//!
//! * A clean link never retransmits: one socket's segments leave in the order they were built
//!   whichever thread built them (the application, packet input running an ACK, a timer), so
//!   the receiver sees no out-of-order segment, the sender no DSACK, no loss probe, no
//!   retransmission. Repeated, in both delivery modes (issue: "a clean in-memory link
//!   retransmits").
//! * A stream far beyond 2^32 bytes arrives intact (issue: "silent data loss after 4 GiB": a
//!   fixed `snd_up` looked "after" `snd_una` once 2^31 bytes were sent, so every later segment
//!   carried URG and the receiver took one byte out of the stream as out-of-band data).
//!
//! Every test is bounded by a watchdog and asserts nothing about durations.

use std::io::{Read, Write};
use std::net::SocketAddrV4;
use std::sync::mpsc;
use std::time::Duration as StdDuration;
use utcp::api::{memlink_pair, Host, TcpListener, TcpStream, ADDR_B};
use utcp::mib::{LinuxMib, TcpMib};
use utcp::netdev::memlink::{Delivery, LinkConfig};

mod sched;
use sched::{check_round, measure_stall, rq_wait_ns, schedstats, self_inflicted};

/// One test at a time: each runs two busy threads, and on a 2-core machine two tests at once
/// would have the kernel preempt a thread in the middle of delivering a direction for longer
/// than a loss-probe timeout (2·srtt + 8 ms), which is scheduling, not the stack.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Generous bound; reached only when something hangs.
const LIMIT: StdDuration = StdDuration::from_secs(600);

/// Byte `i` of the test stream: depends on the whole offset (not periodic at any power of two
/// up to 2^40), so a lost, duplicated or shifted byte anywhere is caught.
#[inline]
fn stream_byte(i: u64) -> u8 {
    (i ^ (i >> 8).wrapping_mul(31) ^ (i >> 24).wrapping_mul(131) ^ (i >> 32).wrapping_mul(197)) as u8
}

fn fill(buf: &mut [u8], off: u64) {
    for (k, b) in buf.iter_mut().enumerate() {
        *b = stream_byte(off + k as u64);
    }
}

/// Streams `total` bytes from A to B on real threads and checks every byte. Returns the first
/// mismatching offset, if any, and the number of bytes B read.
fn stream(a: &Host, b: &Host, port: u16, total: u64) -> (Option<u64>, u64) {
    stream_measured(a, b, port, total).0
}

/// [`stream`], also returning the reader thread's own runqueue wait (ns) over its life.
fn stream_measured(a: &Host, b: &Host, port: u16, total: u64) -> ((Option<u64>, u64), u64) {
    let l = TcpListener::bind(&b.stack, SocketAddrV4::new(ADDR_B, port), 16).unwrap();
    let mut c = TcpStream::connect(&a.stack, SocketAddrV4::new(ADDR_B, port)).unwrap();
    let (mut s, _) = l.accept().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let wait0 = rq_wait_ns().unwrap_or(0);
        let mut buf = vec![0u8; 256 * 1024];
        let mut want = vec![0u8; 256 * 1024];
        let (mut got, mut bad) = (0u64, None);
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            if bad.is_none() {
                fill(&mut want[..n], got);
                if let Some(k) = (0..n).find(|&k| buf[k] != want[k]) {
                    bad = Some(got + k as u64);
                }
            }
            got += n as u64;
        }
        let wait = rq_wait_ns().unwrap_or(0).saturating_sub(wait0);
        let _ = tx.send(((bad, got), wait));
    });
    let mut buf = vec![0u8; 256 * 1024];
    let mut sent = 0u64;
    while sent < total {
        let n = (total - sent).min(buf.len() as u64) as usize;
        fill(&mut buf[..n], sent);
        c.write_all(&buf[..n]).unwrap();
        sent += n as u64;
    }
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let r = rx.recv_timeout(LIMIT).expect("reader hung");
    reader.join().unwrap();
    r
}

/// [`sched::check_round`] without the scheduler's record: the clean-link invariants.
fn check_clean_round(what: &str, a: &Host, b: &Host) -> bool {
    check_round(what, a, b, None)
}

fn clean_link_in_order(delivery: Delivery) {
    clean_link_in_order_with(delivery, "cubic", 192 << 20)
}

/// [`clean_link_in_order`] with the namespace default congestion control `cc`.
fn clean_link_in_order_with(delivery: Delivery, cc: &str, total: u64) {
    let _one = serial();
    let mut clean = 0;
    for round in 0..3 {
        let (a, b) = memlink_pair(LinkConfig { delivery, ..LinkConfig::default() });
        for h in [&a, &b] {
            h.stack.core.net.sysctl.set_by_name("net.ipv4.tcp_congestion_control", cc).unwrap();
        }
        let ((bad, got), stall) = measure_stall(|| stream_measured(&a, &b, 5001, total));
        assert_eq!((bad, got), (None, total), "{delivery:?} round {round}");
        let what = format!("{delivery:?} {cc} round {round}");
        clean += check_round(&what, &a, &b, schedstats().then_some(&stall)) as u32;
    }
    // The reordering this pins showed in about half of all runs as hundreds of retransmissions;
    // a preempted thread costs one probe now and then, and every such round was checked above
    // against the machine's own record of the stall. Without schedstats, most rounds must be
    // clean.
    assert!(schedstats() || clean >= 2, "{delivery:?}: {clean} of 3 rounds clean");
}

#[test]
fn clean_inline_link_never_retransmits() {
    clean_link_in_order(Delivery::Inline);
}

#[test]
fn clean_napi_link_never_retransmits() {
    clean_link_in_order(Delivery::Napi);
}

/// BBR on real threads: its pacing timer and rate samples on the real clock keep the stream
/// in order with nothing retransmitted (the same rules as CUBIC's rounds above).
#[test]
fn clean_link_with_bbr_never_retransmits() {
    clean_link_in_order_with(Delivery::Napi, "bbr", 64 << 20);
}

/// With GRO on the link (the sender's sequence space wraps under merged packets too; the
/// bug above was the sender's, which GRO does not touch).
#[test]
fn stream_beyond_4_gib_is_intact() {
    let _one = serial();
    let (a, b) = memlink_pair(LinkConfig { gro: true, ..LinkConfig::default() });
    let total = (5u64 << 30) + 12345;
    let (bad, got) = stream(&a, &b, 5002, total);
    assert_eq!(bad, None, "first corrupted offset");
    assert_eq!(got, total);
    let sk = b.stack.core.sockets();
    assert!(sk.is_empty() || sk.iter().all(|s| s.peek_tp(|tp| tp.urg_data == 0)), "no urgent data was seen");
    check_clean_round("5 GiB", &a, &b);
    assert!(a.stack.core.net.mib.get(LinuxMib::TCPOrigDataSent) > (total >> 11));
}

/// 1-byte round trips over `a`→`b`, returning the RTTs.
fn round_trips(a: &Host, b: &Host, port: u16, n: usize) -> Vec<StdDuration> {
    let l = TcpListener::bind(&b.stack, SocketAddrV4::new(ADDR_B, port), 4).unwrap();
    let mut c = TcpStream::connect(&a.stack, SocketAddrV4::new(ADDR_B, port)).unwrap();
    let (mut s, _) = l.accept().unwrap();
    c.set_nodelay(true).unwrap();
    s.set_nodelay(true).unwrap();
    let echo = std::thread::spawn(move || {
        let mut b = [0u8; 1];
        while s.read(&mut b).unwrap() == 1 {
            s.write_all(&b).unwrap();
        }
    });
    let mut rtts = Vec::new();
    let mut buf = [0u8; 1];
    for i in 0..n {
        let t = std::time::Instant::now();
        c.write_all(&[i as u8]).unwrap();
        c.read_exact(&mut buf).unwrap();
        rtts.push(t.elapsed());
        assert_eq!(buf[0], i as u8);
    }
    drop(c);
    echo.join().unwrap();
    rtts.sort();
    rtts
}

/// `--delay` is honoured on real time: before, the device thread ignored the next due time
/// and slept 5 ms on a condition inline delivery never signalled, so a 1 ms delay gave a 10 ms
/// RTT on every round trip. The lower bound is the link's own (never faster than configured);
/// the upper bound is on the fastest of 100 round trips (the old bug slowed every one of them;
/// scheduling noise does not slow all 100).
#[test]
fn delay_is_honoured_on_real_time() {
    let _one = serial();
    let delay = utcp::time::Duration::from_millis(1);
    let (a, b) = memlink_pair(LinkConfig { delay, ..LinkConfig::default() });
    let rtts = round_trips(&a, &b, 5003, 100);
    let p50 = rtts[rtts.len() / 2];
    assert!(rtts[0] >= StdDuration::from_millis(2), "faster than the link: {:?}", rtts[0]);
    assert!(rtts[0] < StdDuration::from_millis(8), "1 ms each way: fastest RTT {:?} (p50 {p50:?})", rtts[0]);
    assert_eq!(self_inflicted(&a), vec![]);
    assert_eq!(self_inflicted(&b), vec![]);
}

/// `--rate` paces in order and never faster than the rate: before, frames released by the
/// host thread and by `xmit` raced (out of order: OFO queueing, PAWS drops, retransmissions).
/// How close to the rate it gets is a timing figure (the bench's), not asserted here.
#[test]
fn rate_limit_paces_in_order() {
    let _one = serial();
    let (a, b) = memlink_pair(LinkConfig { rate_bps: Some(1_000_000_000), ..LinkConfig::default() });
    let total = 16u64 << 20;
    let t = std::time::Instant::now();
    let ((bad, got), stall) = measure_stall(|| stream_measured(&a, &b, 5004, total));
    let secs = t.elapsed().as_secs_f64();
    assert_eq!((bad, got), (None, total));
    // 16 MiB of payload is more than 16 MiB on the wire: at 1 Gbit/s never under 134 ms.
    assert!(secs >= 0.134, "faster than the rate: {secs} s");
    eprintln!("rate 1 Gbit/s: {:.1} MB/s of payload", total as f64 / secs / 1e6);
    check_round("1 Gbit/s", &a, &b, schedstats().then_some(&stall));
    if !schedstats() {
        assert_eq!(self_inflicted(&a), vec![]);
        assert_eq!(self_inflicted(&b), vec![]);
    }
    assert_eq!(b.stack.core.net.mib.get(LinuxMib::PAWSEstab), 0);
}

/// SO_PREFER_BUSY_POLL: while a reader that prefers busy polling is in its busy loop, the
/// device thread leaves the receive queue to it (`NAPI_STATE_PREFER_BUSY_POLL`); without one,
/// the device thread polls as soon as frames arrive. Real device thread, real clock.
#[test]
fn prefer_busy_poll_holds_the_device_thread_back() {
    use utcp::netdev::memlink;
    use utcp::netdev::NetDevice;
    let _one = serial();
    let clock: std::sync::Arc<dyn utcp::time::Clock> = std::sync::Arc::new(utcp::host::MonotonicClock::default());
    let cfg = LinkConfig { delivery: Delivery::BusyPoll, ..LinkConfig::default() };
    let (pa, pb) = memlink::pair(cfg, clock.clone());
    let got = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let g = got.clone();
    pb.attach(std::sync::Arc::new(move |_f| {
        g.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }));
    let core = utcp::stack::StackCore::new(ADDR_B, 1500, clock.clone(), 1);
    let _host = utcp::host::HostThreads::start(core, Some(pb.clone()));
    let frame = || utcp::skb::Frame::with_header_len(40, bytes::Bytes::from_static(b"x"));
    let wait_for = |n: usize| {
        let t = std::time::Instant::now();
        while got.load(std::sync::atomic::Ordering::SeqCst) < n && t.elapsed() < LIMIT {
            std::thread::sleep(StdDuration::from_millis(1));
        }
    };
    // No busy poller: the device thread delivers.
    pa.xmit(frame());
    pa.flush_tx();
    wait_for(1);
    assert_eq!(got.load(std::sync::atomic::Ordering::SeqCst), 1);
    // A preferring busy poller holds the queue for 300 ms: the frame waits for it.
    pb.napi_prefer_busy_poll(clock.now() + utcp::time::Duration::from_millis(300));
    pa.xmit(frame());
    pa.flush_tx();
    std::thread::sleep(StdDuration::from_millis(100));
    assert_eq!(got.load(std::sync::atomic::Ordering::SeqCst), 1, "the device thread stood back");
    assert_eq!(pb.napi_poll(8), 1, "the busy poller takes it");
    // Once the busy poll is over, the device thread polls again.
    std::thread::sleep(StdDuration::from_millis(250));
    pa.xmit(frame());
    pa.flush_tx();
    wait_for(3);
    assert_eq!(got.load(std::sync::atomic::Ordering::SeqCst), 3);
}

/// SO_LINGER with a positive time: close() waits until the FIN is acknowledged, or the time
/// runs out (`sk_stream_wait_close`); without SO_LINGER it returns at once.
#[test]
fn so_linger_close_waits_for_the_fin_ack() {
    let _one = serial();
    use utcp::syscall::opt::SO_LINGER;
    use utcp::syscall::SOL_SOCKET;
    use utcp::tcp::TcpState;
    let linger = |on: i32, secs: i32| {
        let mut v = on.to_ne_bytes().to_vec();
        v.extend_from_slice(&secs.to_ne_bytes());
        v
    };
    for (delay_ms, opt, want) in [
        (20, None, TcpState::FinWait1), // no linger: close() returns with the FIN in flight
        (20, Some((1, 5)), TcpState::FinWait2), // linger: returns once the FIN is acked
        (1500, Some((1, 1)), TcpState::FinWait1), // linger time shorter than the RTT: gives up
    ] {
        let delay = utcp::time::Duration::from_millis(delay_ms);
        let (a, b) = memlink_pair(LinkConfig { delay, ..LinkConfig::default() });
        let l = TcpListener::bind(&b.stack, SocketAddrV4::new(ADDR_B, 5006), 4).unwrap();
        let c = TcpStream::connect(&a.stack, SocketAddrV4::new(ADDR_B, 5006)).unwrap();
        let (_s, _) = l.accept().unwrap();
        let fd = c.fd();
        if let Some((on, secs)) = opt {
            a.stack.setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger(on, secs)).unwrap();
        }
        let sk = a.stack.sockfd_lookup(fd).unwrap().sk.clone();
        let t = std::time::Instant::now();
        drop(c); // close()
        let took = t.elapsed();
        let state = sk.peek_tp(|tp| tp.state);
        assert_eq!(state, want, "delay {delay_ms} ms, linger {opt:?}: state after close() ({took:?})");
        if let Some((_, secs)) = opt {
            assert!(took >= StdDuration::from_millis((2 * delay_ms).min(secs as u64 * 1000) - 10), "{took:?}");
        }
    }
}

/// TSO/GSO on memlink (`gso_max_size` 64 KiB): TCP hands the wire super-segments (several
/// MSS in one frame), the receiver takes each whole, and the counters count packets as Linux
/// does (TcpOutSegs and tcpi_segs_out per packet, frames far fewer); the stream is intact and
/// a clean link retransmits nothing.
#[test]
fn gso_link_carries_super_segments() {
    let _one = serial();
    let (a, b) = memlink_pair(LinkConfig { gso_max_size: 65_536, ..LinkConfig::default() });
    let total = 256 << 20;
    let (bad, got) = stream(&a, &b, 5010, total);
    assert_eq!((bad, got), (None, total));
    check_clean_round("gso", &a, &b);
    let frames = a.port.as_ref().unwrap().stats().sent;
    let out_segs = a.stack.core.net.mib.tcp_get(TcpMib::OutSegs);
    let in_segs = b.stack.core.net.mib.tcp_get(TcpMib::InSegs);
    let data_pkts = a.stack.core.net.mib.get(LinuxMib::TCPOrigDataSent);
    // At least `total / mss` packets were counted, in several times fewer frames.
    assert!(data_pkts >= total / 1448, "TCPOrigDataSent {data_pkts}");
    assert!(out_segs >= data_pkts);
    assert!(frames * 4 < out_segs, "{frames} frames for {out_segs} packets: no super-segments");
    // tcp_v4_rcv() counts each GRO'd skb once.
    assert!(in_segs <= frames + 16, "InSegs {in_segs} vs {frames} frames");
}

/// GRO on memlink, on real threads and the real clock, in both delivery modes: the receiving
/// port merges the segments of each poll (an inline backlog batch, a NAPI poll), the stream
/// arrives intact, the link stays clean (no OFO, no DSACK, no loss probe, no retransmission),
/// the receiver sees fewer packets than the wire carried and ACKs fewer of them.
#[test]
fn gro_link_is_intact_on_real_threads() {
    let _one = serial();
    for delivery in [Delivery::Inline, Delivery::Napi] {
        let (a, b) = memlink_pair(LinkConfig { delivery, gro: true, ..LinkConfig::default() });
        let total = 128 << 20;
        let (bad, got) = stream(&a, &b, 5012, total);
        assert_eq!((bad, got), (None, total), "{delivery:?}");
        check_clean_round(&format!("gro {delivery:?}"), &a, &b);
        let frames = a.port.as_ref().unwrap().stats().sent;
        let in_segs = b.stack.core.net.mib.tcp_get(TcpMib::InSegs);
        let data = a.stack.core.net.mib.get(LinuxMib::TCPOrigDataSent);
        let acks = b.stack.core.net.mib.tcp_get(TcpMib::OutSegs);
        eprintln!("gro {delivery:?}: {frames} frames, InSegs {in_segs}, {data} data segments, {acks} ACKs");
        assert!(in_segs < frames, "{delivery:?}: InSegs {in_segs} for {frames} frames: nothing merged");
        assert!(acks * 2 < data, "{delivery:?}: {acks} ACKs for {data} data segments");
    }
}

/// A super-segment on an impaired link: a corrupted one is dropped by its (completed)
/// checksum, a lost one is recovered packet by packet; the stream arrives intact.
#[test]
fn gso_link_survives_loss_and_corruption() {
    let _one = serial();
    let cfg = LinkConfig { gso_max_size: 65_536, loss: 0.01, corrupt: 0.01, seed: 7, ..LinkConfig::default() };
    let (a, b) = memlink_pair(cfg);
    let total = 32 << 20;
    let (bad, got) = stream(&a, &b, 5011, total);
    assert_eq!((bad, got), (None, total));
    let pa = a.port.as_ref().unwrap().stats();
    assert!(pa.corrupted > 0 && pa.lost > 0, "{pa:?}");
    let csum = b.stack.core.net.mib.tcp_get(TcpMib::InCsumErrors);
    assert!(csum > 0, "corrupted super-segments caught by their checksum");
    assert!(a.stack.core.net.mib.tcp_get(TcpMib::RetransSegs) > 0);
}

/// net.ipv4.tcp_max_tw_buckets on real threads: with one bucket, the first of three active
/// closes keeps a timewait sock and the others close at once (TCPTimeWaitOverflow), each
/// stream intact, the link clean.
#[test]
fn tcp_max_tw_buckets_on_real_threads() {
    let _one = serial();
    use utcp::tcp::TcpState;
    let (a, b) = memlink_pair(LinkConfig::default());
    a.stack.core.net.sysctl.set_by_name("net.ipv4.tcp_max_tw_buckets", "1").unwrap();
    let l = TcpListener::bind(&b.stack, SocketAddrV4::new(ADDR_B, 5010), 4).unwrap();
    for round in 0..3u64 {
        let mut c = TcpStream::connect(&a.stack, SocketAddrV4::new(ADDR_B, 5010)).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            got
        });
        let mut data = vec![0u8; 100_000];
        fill(&mut data, round);
        c.write_all(&data).unwrap();
        drop(c); // close(): A closes first
        assert_eq!(reader.join().unwrap(), data, "round {round}"); // B read EOF and closed
        let want = round; // overflows so far: every close after the first
        let t = std::time::Instant::now();
        while a.stack.core.net.mib.get(LinuxMib::TCPTimeWaitOverflow) < want
            || a.stack.core.sockets().iter().any(|sk| sk.peek_tp(|tp| tp.state != TcpState::TimeWait))
        {
            assert!(t.elapsed() < LIMIT, "round {round}: A's socket never left FIN_WAIT");
            std::thread::sleep(StdDuration::from_millis(1));
        }
    }
    let tw = a.stack.core.sockets().iter().filter(|sk| sk.peek_tp(|tp| tp.state == TcpState::TimeWait)).count();
    assert_eq!(tw, 1, "one timewait sock");
    assert_eq!(a.stack.core.net.mib.get(LinuxMib::TCPTimeWaitOverflow), 2);
    check_clean_round("tw buckets", &a, &b);
}

/// A 65536-byte MTU (Linux's `lo`): the MSS is near 64 KiB, so no super-segment may hold two
/// of them (an IPv4 total length is 16 bits). Before, tcp_min_tso_segs' two packets made a
/// 130 KB transmission and building its IP header panicked (found by the LD_PRELOAD library's
/// in-process loopback).
#[test]
fn mtu_65536_stream_is_intact() {
    let _one = serial();
    let (a, b) = memlink_pair(LinkConfig { mtu: 65536, ..LinkConfig::default() });
    let total = 64u64 << 20;
    let (bad, got) = stream(&a, &b, 5005, total);
    assert_eq!((bad, got), (None, total));
    check_clean_round("MTU 65536", &a, &b);
}

/// Many concurrent streams on a clean link (issue 9): senders are backpressured by the device
/// (`flush_tx` does or waits for the receiving side's work, as a loopback sender runs the
/// softirq itself), so the memlink's backlog or rx ring never overflows: no device drop, no
/// loss recovery, every byte of every stream intact. `THREADS` writer threads each feed
/// their share of the streams round-robin in `CHUNK`s, and as many readers drain them in the
/// same order, so all streams are open and moving at once.
fn many_streams(delivery: Delivery) {
    const STREAMS: usize = 500;
    const TOTAL: u64 = 256 << 10;
    const CHUNK: usize = 16 << 10;
    const THREADS: usize = 4;
    let _one = serial();
    let (a, b) = memlink_pair(LinkConfig { delivery, ..LinkConfig::default() });
    let l = TcpListener::bind(&b.stack, SocketAddrV4::new(ADDR_B, 5002), 1024).unwrap();
    let mut pairs = Vec::new();
    for _ in 0..STREAMS {
        let c = TcpStream::connect(&a.stack, SocketAddrV4::new(ADDR_B, 5002)).unwrap();
        let (s, _) = l.accept().unwrap();
        pairs.push((c, s));
    }
    let (mut writers, mut readers): (Vec<Vec<TcpStream>>, Vec<Vec<TcpStream>>) =
        ((0..THREADS).map(|_| Vec::new()).collect(), (0..THREADS).map(|_| Vec::new()).collect());
    for (i, (c, s)) in pairs.into_iter().enumerate() {
        writers[i % THREADS].push(c);
        readers[i % THREADS].push(s);
    }
    let (tx, rx) = mpsc::channel();
    let (_, stall) = measure_stall(|| {
        std::thread::scope(|sc| {
            let mut hs = Vec::new();
            for mut ws in writers {
                hs.push(sc.spawn(move || {
                    let wait0 = rq_wait_ns().unwrap_or(0);
                    let mut buf = vec![0u8; CHUNK];
                    let mut off = 0u64;
                    while off < TOTAL {
                        let n = (TOTAL - off).min(CHUNK as u64) as usize;
                        fill(&mut buf[..n], off);
                        for w in ws.iter_mut() {
                            w.write_all(&buf[..n]).unwrap();
                        }
                        off += n as u64;
                    }
                    for w in ws.iter_mut() {
                        w.shutdown(std::net::Shutdown::Write).unwrap();
                    }
                    rq_wait_ns().unwrap_or(0).saturating_sub(wait0)
                }));
            }
            for mut rs in readers {
                let tx = tx.clone();
                hs.push(sc.spawn(move || {
                    let wait0 = rq_wait_ns().unwrap_or(0);
                    let mut buf = vec![0u8; CHUNK];
                    let mut want = vec![0u8; CHUNK];
                    let mut off = 0u64;
                    let mut bad = 0usize;
                    while off < TOTAL {
                        let n = (TOTAL - off).min(CHUNK as u64) as usize;
                        fill(&mut want[..n], off);
                        for r in rs.iter_mut() {
                            r.read_exact(&mut buf[..n]).unwrap();
                            bad += (buf[..n] != want[..n]) as usize;
                        }
                        off += n as u64;
                    }
                    for r in rs.iter_mut() {
                        assert_eq!(r.read(&mut buf).unwrap(), 0, "bytes past the end");
                    }
                    tx.send(bad).unwrap();
                    rq_wait_ns().unwrap_or(0).saturating_sub(wait0)
                }));
            }
            // The largest runqueue wait any of these threads reported for itself.
            ((), hs.into_iter().map(|h| h.join().unwrap()).max().unwrap_or(0))
        })
    });
    drop(tx);
    let bad: usize = rx.iter().take(THREADS).sum();
    assert_eq!(bad, 0, "{delivery:?}: corrupted chunks");
    for h in [&a, &b] {
        let d = utcp::netdev::NetDevice::dev_stats(&**h.port.as_ref().unwrap());
        assert_eq!((d.rx_dropped, d.tx_dropped), (0, 0), "{delivery:?}: device drops");
    }
    check_round(&format!("{delivery:?} {STREAMS} streams"), &a, &b, schedstats().then_some(&stall));
}

#[test]
fn many_streams_on_a_clean_inline_link_drop_nothing() {
    many_streams(Delivery::Inline);
}

#[test]
fn many_streams_on_a_clean_napi_link_drop_nothing() {
    many_streams(Delivery::Napi);
}
