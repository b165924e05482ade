//! TCP- and IP-level options whose effect is on the wire or in TCP input, as in Linux 6.18:
//! TCP_THIN_LINEAR_TIMEOUTS (a thin stream's RTO is not backed off), TCP_RTO_MAX_MS (caps the
//! backoff), TCP_RTO_MIN_US (the RTO floor after an RTT sample), TCP_SAVE_SYN/TCP_SAVED_SYN
//! (the SYN's IP and TCP headers, read once on the accepted socket), IP_MINTTL (segments with a
//! lower TTL are dropped and counted as TCPMinTTLDrop). On the virtual clock, and the SYN and
//! TTL ones again on real threads and the real clock.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::SocketAddrV4;
use utcp::api::{memlink_pair, TcpListener, TcpStream, ADDR_B};
use utcp::mib::LinuxMib;
use utcp::netdev::memlink::LinkConfig;
use utcp::syscall::opt::*;
use utcp::syscall::*;
use utcp::time::{Duration, Instant};
use utcp::Errno;

const IPPROTO_IP: i32 = 0;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Times at which A sent a data segment while every packet from B is lost; `setup` runs on
/// A's socket before its connect().
fn retransmit_times(setup: impl FnOnce(&Lab, i32)) -> Vec<Instant> {
    let lab = Lab::new(ms(1));
    let l = lab.listen(80, 4);
    let c = lab.a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    setup(&lab, c);
    assert_eq!(lab.a.connect(c, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::EINPROGRESS));
    lab.advance(ms(10));
    let (s, _) = lab.b.accept4(l, SOCK_NONBLOCK).unwrap();
    // An RTT sample first: a short exchange on the clean link.
    assert_eq!(lab.a.send(c, Some(b"hello"), 5, 0), Ok(5));
    lab.advance(ms(50));
    let mut got = Vec::new();
    drain(&lab.b, s, &mut got).unwrap();
    assert_eq!(got, b"hello");
    lab.clear_log();
    lab.drop_if(|p| !p.from_a);
    assert_eq!(lab.a.send(c, Some(b"world"), 5, 0), Ok(5));
    lab.advance(Duration::from_secs(20));
    lab.log().iter().filter(|p| p.from_a && p.len > 0).map(|p| p.t).collect()
}

fn gaps(t: &[Instant]) -> Vec<Duration> {
    t.windows(2).map(|w| w[1].saturating_since(w[0])).collect()
}

#[test]
fn thin_linear_timeouts_keep_a_thin_streams_rto_linear() {
    let lab = Lab::new(ms(1));
    let c = lab.a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(lab.a.getsockopt_int(c, SOL_TCP, TCP_THIN_LINEAR_TIMEOUTS), Ok(0));
    assert_eq!(lab.a.setsockopt_int(c, SOL_TCP, TCP_THIN_LINEAR_TIMEOUTS, 2), Err(Errno::EINVAL));
    assert_eq!(lab.a.setsockopt_int(c, SOL_TCP, TCP_THIN_DUPACK, -1), Err(Errno::EINVAL));

    let plain = gaps(&retransmit_times(|_, _| {}));
    let thin = gaps(&retransmit_times(|lab, c| lab.a.setsockopt_int(c, SOL_TCP, TCP_THIN_LINEAR_TIMEOUTS, 1).unwrap()));
    assert!(plain.len() >= 6 && thin.len() >= 9, "retransmissions: plain {plain:?} thin {thin:?}");
    // Without it each RTO doubles (after the tail loss probe, which takes the first RTO's
    // time — 2·srtt + 200 ms in jiffies is no earlier — and re-arms it).
    for w in plain.windows(2).skip(1).take(4) {
        assert!(w[1] >= w[0] * 2 - ms(8), "backed off: {plain:?}");
    }
    // With it, after the tail loss probe (thin[0]) the first TCP_THIN_LINEAR_RETRIES (6)
    // timeouts keep the same RTO, then the backoff resumes.
    for g in &thin[1..7] {
        assert!(g.abs_diff(thin[0]) <= ms(4), "linear: {thin:?}");
    }
    assert!(thin[8] >= thin[7] * 2 - ms(8), "backoff after 6: {thin:?}");
}

#[test]
fn rto_max_ms_caps_the_backoff() {
    let lab = Lab::new(ms(1));
    let c = lab.a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(lab.a.getsockopt_int(c, SOL_TCP, TCP_RTO_MAX_MS), Ok(120_000));
    assert_eq!(lab.a.setsockopt_int(c, SOL_TCP, TCP_RTO_MAX_MS, 999), Err(Errno::EINVAL));
    assert_eq!(lab.a.setsockopt_int(c, SOL_TCP, TCP_RTO_MAX_MS, 120_001), Err(Errno::EINVAL));

    let plain = gaps(&retransmit_times(|_, _| {}));
    let capped = gaps(&retransmit_times(|lab, c| lab.a.setsockopt_int(c, SOL_TCP, TCP_RTO_MAX_MS, 1000).unwrap()));
    assert!(plain.iter().any(|&g| g > Duration::from_secs(2)), "uncapped: {plain:?}");
    assert!(capped.len() > plain.len(), "more retransmissions in 20 s when capped");
    assert!(capped.iter().all(|&g| g <= ms(1000)), "capped at 1 s: {capped:?}");
    assert!(capped.iter().filter(|&&g| g == ms(1000)).count() >= 5, "{capped:?}");
}

#[test]
fn rto_min_us_sets_the_rto_floor() {
    let lab = Lab::new(ms(1));
    let c = lab.a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(lab.a.getsockopt_int(c, SOL_TCP, TCP_RTO_MIN_US), Ok(200_000));
    assert_eq!(lab.a.getsockopt_int(c, SOL_TCP, TCP_DELACK_MAX_US), Ok(200_000));
    // Whole jiffies (HZ=250), between TCP_TIMEOUT_MIN (2 jiffies) and 200 ms.
    assert_eq!(lab.a.setsockopt_int(c, SOL_TCP, TCP_RTO_MIN_US, 4000), Err(Errno::EINVAL));
    assert_eq!(lab.a.setsockopt_int(c, SOL_TCP, TCP_RTO_MIN_US, 200_001), Err(Errno::EINVAL));
    assert_eq!(lab.a.setsockopt_int(c, SOL_TCP, TCP_RTO_MIN_US, -1), Err(Errno::EINVAL));
    lab.a.setsockopt_int(c, SOL_TCP, TCP_DELACK_MAX_US, 65535).unwrap();
    assert_eq!(lab.a.getsockopt_int(c, SOL_TCP, TCP_DELACK_MAX_US), Ok(68_000));

    let first = |t: Vec<Instant>| gaps(&t)[0];
    let plain = first(retransmit_times(|_, _| {}));
    let low = first(retransmit_times(|lab, c| lab.a.setsockopt_int(c, SOL_TCP, TCP_RTO_MIN_US, 50_000).unwrap()));
    assert!(plain >= ms(200), "default floor 200 ms: {plain:?}");
    assert!(low >= ms(50) && low < ms(100), "floor 50 ms: {low:?}");
}

#[test]
fn save_syn_keeps_the_syn_headers_for_one_read() {
    let lab = Lab::new(ms(1));
    let l = lab.listen(80, 4);
    assert_eq!(lab.b.setsockopt_int(l, SOL_TCP, TCP_SAVE_SYN, 3), Err(Errno::EINVAL));
    lab.b.setsockopt_int(l, SOL_TCP, TCP_SAVE_SYN, 1).unwrap();
    let c = lab.connect_start(80);
    lab.advance(ms(10));
    let (s, _) = lab.b.accept4(l, SOCK_NONBLOCK).unwrap();
    let syn = lab.log().into_iter().find(|p| p.from_a && p.has(0x02)).expect("the SYN");
    // Inherited by the child; nothing saved on the listener or the connecting side.
    assert_eq!(lab.b.getsockopt_int(s, SOL_TCP, TCP_SAVE_SYN), Ok(1));
    let mut none = [0u8; 64];
    assert_eq!(lab.b.getsockopt(l, SOL_TCP, TCP_SAVED_SYN, &mut none), Ok(0));
    assert_eq!(lab.a.getsockopt(c, SOL_TCP, TCP_SAVED_SYN, &mut none), Ok(0));
    // Too short a buffer: EINVAL, and the SYN stays saved.
    let mut short = [0u8; 20];
    assert_eq!(lab.b.getsockopt(s, SOL_TCP, TCP_SAVED_SYN, &mut short), Err(Errno::EINVAL));
    let mut buf = [0u8; 300];
    let n = lab.b.getsockopt(s, SOL_TCP, TCP_SAVED_SYN, &mut buf).unwrap();
    let h = &buf[..n];
    assert_eq!(h[0], 0x45, "an IPv4 header of 20 bytes");
    assert_eq!(h[9], 6, "protocol TCP");
    let doff = (h[20 + 12] >> 4) as usize * 4;
    assert_eq!(n, 20 + doff, "IP and TCP headers with options, no payload");
    assert_eq!(h[20 + 13] & 0x12, 0x02, "a SYN without ACK");
    assert_eq!(u32::from_be_bytes(h[24..28].try_into().unwrap()), syn.seq);
    assert_eq!(h[8], syn.ttl);
    // Read once.
    assert_eq!(lab.b.getsockopt(s, SOL_TCP, TCP_SAVED_SYN, &mut buf), Ok(0));
}

#[test]
fn ip_minttl_drops_segments_below_it() {
    let lab = Lab::new(ms(1));
    let (c, s, _l) = lab.pair();
    assert_eq!(lab.b.getsockopt_int(s, IPPROTO_IP, IP_MINTTL), Ok(0));
    assert_eq!(lab.b.setsockopt_int(s, IPPROTO_IP, IP_MINTTL, 256), Err(Errno::EINVAL));
    assert_eq!(lab.b.setsockopt(s, IPPROTO_IP, IP_MINTTL, &[]), Err(Errno::EINVAL));
    lab.b.setsockopt_int(s, IPPROTO_IP, IP_MINTTL, 65).unwrap();
    assert_eq!(lab.b.getsockopt_int(s, IPPROTO_IP, IP_MINTTL), Ok(65));
    let drops = |lab: &Lab| lab.b.core.net.mib.get(LinuxMib::TCPMinTTLDrop);
    // A sends with the default TTL 64: dropped, counted, never delivered.
    assert_eq!(lab.a.send(c, Some(b"hello"), 5, 0), Ok(5));
    lab.advance(ms(1000));
    let mut got = Vec::new();
    drain(&lab.b, s, &mut got).unwrap();
    assert!(got.is_empty());
    let dropped = drops(&lab);
    assert!(dropped >= 2, "the segment and its retransmissions: {dropped}");
    // With TTL 65 the retransmission gets through.
    lab.a.setsockopt_int(c, IPPROTO_IP, IP_TTL, 65).unwrap();
    lab.advance(Duration::from_secs(5));
    drain(&lab.b, s, &mut got).ok();
    assert_eq!(got, b"hello");
    assert_eq!(drops(&lab), dropped);
}

/// Real threads, real clock: a SYN saved on a listener is read on the accepted socket.
#[test]
fn save_syn_on_real_threads() {
    let (a, b) = memlink_pair(LinkConfig::default());
    let l = TcpListener::bind(&b.stack, SocketAddrV4::new(ADDR_B, 7100), 4).unwrap();
    b.stack.setsockopt_int(l.fd(), SOL_TCP, TCP_SAVE_SYN, 1).unwrap();
    let mut c = TcpStream::connect(&a.stack, SocketAddrV4::new(ADDR_B, 7100)).unwrap();
    let (s, _) = l.accept().unwrap();
    let mut buf = [0u8; 300];
    let n = b.stack.getsockopt(s.fd(), SOL_TCP, TCP_SAVED_SYN, &mut buf).unwrap();
    assert!(n >= 40 && buf[0] == 0x45 && buf[20 + 13] & 0x12 == 0x02, "{:02x?}", &buf[..n]);
    assert_eq!(b.stack.getsockopt(s.fd(), SOL_TCP, TCP_SAVED_SYN, &mut buf), Ok(0));
    c.write_all(b"x").unwrap();
}

/// Real threads, real clock: IP_MINTTL drops the peer's data until the peer raises its TTL.
#[test]
fn ip_minttl_on_real_threads() {
    let (a, b) = memlink_pair(LinkConfig::default());
    let l = TcpListener::bind(&b.stack, SocketAddrV4::new(ADDR_B, 7101), 4).unwrap();
    let mut c = TcpStream::connect(&a.stack, SocketAddrV4::new(ADDR_B, 7101)).unwrap();
    let (mut s, _) = l.accept().unwrap();
    b.stack.setsockopt_int(s.fd(), IPPROTO_IP, IP_MINTTL, 200).unwrap();
    c.write_all(b"ping").unwrap();
    let mib = &b.stack.core.net.mib;
    let t = std::time::Instant::now();
    while mib.get(LinuxMib::TCPMinTTLDrop) == 0 {
        assert!(t.elapsed() < std::time::Duration::from_secs(60), "no TCPMinTTLDrop");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    a.stack.setsockopt_int(c.fd(), IPPROTO_IP, IP_TTL, 200).unwrap();
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
}
