//! IPPROTO_IP options that change which port a socket gets (IP_BIND_ADDRESS_NO_PORT,
//! IP_LOCAL_PORT_RANGE) and what its packets carry (IP_OPTIONS), on the virtual clock and on
//! real threads with the real clock. The answers are the kernel's (see
//! tests/kernel/ip_opts.py for the same calls against Linux on loopback).

mod common;

use common::Lab;
use std::net::SocketAddrV4;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant as StdInstant};
use utcp::api::{ADDR_A, ADDR_B};
use utcp::errno::Errno;
use utcp::host::{HostThreads, MonotonicClock};
use utcp::netdev::memlink::{self, LinkConfig};
use utcp::netdev::pcap::{read_pcap, PcapDevice};
use utcp::netdev::NetDevice;
use utcp::stack::StackCore;
use utcp::syscall::{Stack, AF_INET, SOCK_NONBLOCK, SOCK_STREAM};
use utcp::time::{Clock, Duration};

const SOL_IP: i32 = 0;
const MSG_DONTWAIT: i32 = 0x40;
const IP_BIND_ADDRESS_NO_PORT: i32 = 24;
const IP_LOCAL_PORT_RANGE: i32 = 51;
const IP_OPTIONS: i32 = 4;
const SOL_TCP: i32 = 6;
const TCP_MAXSEG: i32 = 2;
/// Reached only when something hangs.
const LIMIT: StdDuration = StdDuration::from_secs(120);

fn range(lo: u16, hi: u16) -> [u8; 4] {
    (lo as u32 | (hi as u32) << 16).to_ne_bytes()
}

fn nb_socket(st: &Stack) -> i32 {
    st.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap()
}

#[test]
fn local_port_range_values_and_errors_are_the_kernels() {
    let lab = Lab::new(Duration::from_millis(1));
    let s = nb_socket(&lab.a);
    let mut out = [0u8; 4];
    assert_eq!(lab.a.getsockopt(s, SOL_IP, IP_LOCAL_PORT_RANGE, &mut out), Ok(4));
    assert_eq!(out, [0; 4]);
    // A u32 and nothing else; a reversed range with both halves set is refused.
    for bad in [&[][..], &[1][..], &[1, 0][..], &[1, 0, 0, 0, 0, 0, 0, 0][..], &range(200, 100)[..]] {
        assert_eq!(lab.a.setsockopt(s, SOL_IP, IP_LOCAL_PORT_RANGE, bad), Err(Errno::EINVAL), "{bad:?}");
    }
    for ok in [range(100, 200), range(100, 0), range(0, 100), range(0, 0)] {
        lab.a.setsockopt(s, SOL_IP, IP_LOCAL_PORT_RANGE, &ok).unwrap();
        assert_eq!(lab.a.getsockopt(s, SOL_IP, IP_LOCAL_PORT_RANGE, &mut out), Ok(4));
        assert_eq!(out, ok);
    }
    // IP_BIND_ADDRESS_NO_PORT: any length, the first byte or the int, read back as 0/1.
    for (val, want) in [(&[][..], 0), (&[1][..], 1), (&[5, 0][..], 1), (&256i32.to_ne_bytes()[..], 1)] {
        lab.a.setsockopt(s, SOL_IP, IP_BIND_ADDRESS_NO_PORT, val).unwrap();
        assert_eq!(lab.a.getsockopt(s, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &mut out), Ok(4));
        assert_eq!(i32::from_ne_bytes(out), want, "{val:?}");
    }
}

#[test]
fn local_port_range_narrows_connect_then_eaddrnotavail() {
    let lab = Lab::new(Duration::from_millis(1));
    let l = lab.listen(80, 16);
    let mut ports = Vec::new();
    for _ in 0..3 {
        let c = nb_socket(&lab.a);
        lab.a.setsockopt(c, SOL_IP, IP_LOCAL_PORT_RANGE, &range(40000, 40002)).unwrap();
        assert_eq!(lab.a.connect(c, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::EINPROGRESS));
        ports.push(lab.a.getsockname(c).unwrap().port());
    }
    ports.sort();
    // A socket's own range is tried whole (step 1, no parity halves).
    assert_eq!(ports, [40000, 40001, 40002]);
    let c = nb_socket(&lab.a);
    lab.a.setsockopt(c, SOL_IP, IP_LOCAL_PORT_RANGE, &range(40000, 40002)).unwrap();
    assert_eq!(lab.a.connect(c, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::EADDRNOTAVAIL));
    // Halves outside the sysctl's range fall back to the sysctl's bound.
    let c = nb_socket(&lab.a);
    lab.a.setsockopt(c, SOL_IP, IP_LOCAL_PORT_RANGE, &range(100, 0)).unwrap();
    assert_eq!(lab.a.connect(c, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::EINPROGRESS));
    let p = lab.a.getsockname(c).unwrap().port();
    assert!((32768..=60999).contains(&p), "{p}");
    // bind(port 0) draws from the socket's range too: [50000, 50002] is odd, so it offers
    // two ports (inet_csk_find_open_port scans an even count).
    let mut bound = Vec::new();
    for _ in 0..2 {
        let s = nb_socket(&lab.a);
        lab.a.setsockopt(s, SOL_IP, IP_LOCAL_PORT_RANGE, &range(50000, 50002)).unwrap();
        lab.a.bind(s, SocketAddrV4::new(ADDR_A, 0)).unwrap();
        bound.push(lab.a.getsockname(s).unwrap().port());
    }
    bound.sort();
    assert_eq!(bound, [50000, 50001]);
    let s = nb_socket(&lab.a);
    lab.a.setsockopt(s, SOL_IP, IP_LOCAL_PORT_RANGE, &range(50000, 50002)).unwrap();
    assert_eq!(lab.a.bind(s, SocketAddrV4::new(ADDR_A, 0)), Err(Errno::EADDRINUSE));
    // listen()'s autobind as well.
    let s = nb_socket(&lab.a);
    lab.a.setsockopt(s, SOL_IP, IP_LOCAL_PORT_RANGE, &range(50003, 50003)).unwrap();
    lab.a.listen(s, 4).unwrap();
    assert_eq!(lab.a.getsockname(s).unwrap().port(), 50003);
    lab.settle();
    // The three connections came up on their ports.
    let mut accepted = 0;
    assert!(lab.run_until(Duration::from_secs(5), || {
        while lab.b.accept4(l, SOCK_NONBLOCK).is_ok() {
            accepted += 1;
        }
        accepted == 4
    }));
}

/// Two sockets with IP_BIND_ADDRESS_NO_PORT bound to one address with port 0 share the one
/// port of a one-port range, connecting to two destinations; without the option the second
/// bind() finds the port taken.
fn no_port_two_sockets(lab: &Lab) -> Vec<u16> {
    let mut got = Vec::new();
    for (i, dport) in [80u16, 81].into_iter().enumerate() {
        let c = nb_socket(&lab.a);
        lab.a.setsockopt(c, SOL_IP, IP_LOCAL_PORT_RANGE, &range(45000, 45000)).unwrap();
        lab.a.setsockopt(c, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &1i32.to_ne_bytes()).unwrap();
        lab.a.bind(c, SocketAddrV4::new(ADDR_A, 0)).unwrap();
        assert_eq!(lab.a.getsockname(c).unwrap(), SocketAddrV4::new(ADDR_A, 0), "no port yet ({i})");
        // inet_num is still 0: the socket may bind again.
        lab.a.bind(c, SocketAddrV4::new(ADDR_A, 0)).unwrap();
        assert_eq!(lab.a.connect(c, SocketAddrV4::new(ADDR_B, dport)), Err(Errno::EINPROGRESS));
        got.push(lab.a.getsockname(c).unwrap().port());
        // A third destination-less user of the range: a plain bind(0) finds no free port.
        let s = nb_socket(&lab.a);
        lab.a.setsockopt(s, SOL_IP, IP_LOCAL_PORT_RANGE, &range(45000, 45000)).unwrap();
        assert_eq!(lab.a.bind(s, SocketAddrV4::new(ADDR_A, 0)), Err(Errno::EADDRINUSE));
        lab.a.close(s).unwrap();
    }
    got
}

#[test]
fn bind_address_no_port_shares_a_port_across_destinations() {
    let lab = Lab::new(Duration::from_millis(1));
    let l80 = lab.listen(80, 16);
    let l81 = lab.listen(81, 16);
    assert_eq!(no_port_two_sockets(&lab), [45000, 45000]);
    let mut n = 0;
    assert!(lab.run_until(Duration::from_secs(5), || {
        n += lab.b.accept4(l80, SOCK_NONBLOCK).is_ok() as usize + lab.b.accept4(l81, SOCK_NONBLOCK).is_ok() as usize;
        n == 2
    }));
    // A third connection to one of the destinations has no port left.
    let c = nb_socket(&lab.a);
    lab.a.setsockopt(c, SOL_IP, IP_LOCAL_PORT_RANGE, &range(45000, 45000)).unwrap();
    lab.a.setsockopt(c, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &[1]).unwrap();
    lab.a.bind(c, SocketAddrV4::new(ADDR_A, 0)).unwrap();
    assert_eq!(lab.a.connect(c, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::EADDRNOTAVAIL));
    // listen() after such a bind autobinds a port of the range, as inet_csk_listen_start.
    let s = nb_socket(&lab.a);
    lab.a.setsockopt(s, SOL_IP, IP_LOCAL_PORT_RANGE, &range(45001, 45001)).unwrap();
    lab.a.setsockopt(s, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &[1]).unwrap();
    lab.a.bind(s, SocketAddrV4::new(ADDR_A, 0)).unwrap();
    lab.a.listen(s, 4).unwrap();
    assert_eq!(lab.a.getsockname(s).unwrap(), SocketAddrV4::new(ADDR_A, 45001));
    // Without the option the address and port are bound at once.
    let s = nb_socket(&lab.a);
    lab.a.setsockopt(s, SOL_IP, IP_LOCAL_PORT_RANGE, &range(45002, 45002)).unwrap();
    lab.a.bind(s, SocketAddrV4::new(ADDR_A, 0)).unwrap();
    assert_eq!(lab.a.getsockname(s).unwrap(), SocketAddrV4::new(ADDR_A, 45002));
    assert_eq!(lab.a.bind(s, SocketAddrV4::new(ADDR_A, 0)), Err(Errno::EINVAL));
}

fn maxseg(st: &Stack, fd: i32) -> i32 {
    let mut out = [0u8; 4];
    st.getsockopt(fd, SOL_TCP, TCP_MAXSEG, &mut out).unwrap();
    i32::from_ne_bytes(out)
}

fn get_ip_options(st: &Stack, fd: i32, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let n = st.getsockopt(fd, SOL_IP, IP_OPTIONS, &mut out).unwrap();
    out.truncate(n);
    out
}

/// A record-route option with room for 9 addresses (39 bytes, padded to 40 by the kernel).
fn rr39() -> Vec<u8> {
    let mut v = vec![7u8, 39, 4];
    v.resize(39, 0);
    v
}

#[test]
fn ip_options_set_get_as_the_kernel() {
    let lab = Lab::new(Duration::from_millis(1));
    let s = nb_socket(&lab.a);
    assert_eq!(get_ip_options(&lab.a, s, 40), b"");
    // Padded to 4 bytes with END; what compiling moved (RR's pointer) is undone.
    lab.a.setsockopt(s, SOL_IP, IP_OPTIONS, b"\x07\x0b\x04\x01\x01\x01\x01\x01\x01\x01\x01").unwrap();
    assert_eq!(get_ip_options(&lab.a, s, 40), b"\x07\x0b\x04\0\0\0\0\x01\x01\x01\x01\0");
    // Truncated to the caller's length.
    assert_eq!(get_ip_options(&lab.a, s, 3), b"\x07\x0b\x04");
    // Refused values leave the set in place.
    for bad in [&[1u8; 41][..], b"\x86\x06\0\0\0\0", b"\x07\x04\x04\x00", b"\x44\x08\x09\xf0\0\0\0\0"] {
        assert_eq!(lab.a.setsockopt(s, SOL_IP, IP_OPTIONS, bad), Err(Errno::EINVAL), "{bad:x?}");
    }
    assert_eq!(get_ip_options(&lab.a, s, 40).len(), 12);
    // A fresh socket's MSS becomes tcp_sync_mss(0): tcp_min_snd_mss + 20 (no TCP header yet).
    assert_eq!(maxseg(&lab.a, s), 68);
    lab.a.setsockopt(s, SOL_IP, IP_OPTIONS, b"").unwrap();
    assert_eq!(get_ip_options(&lab.a, s, 40), b"");
}

/// Every segment of a socket with IP_OPTIONS carries them; the MSS leaves room for them; the
/// child echoes the SYN's options; the data arrives intact both ways.
#[test]
fn ip_options_on_every_segment_mss_reduced_data_intact() {
    let lab = Lab::new(Duration::from_millis(1));
    let l = lab.listen(80, 16);
    let c = nb_socket(&lab.a);
    lab.a.setsockopt(c, SOL_IP, IP_OPTIONS, &rr39()).unwrap();
    assert_eq!(lab.a.connect(c, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::EINPROGRESS));
    let mut s = None;
    assert!(lab.run_until(Duration::from_secs(5), || {
        s = s.or_else(|| lab.b.accept4(l, SOCK_NONBLOCK).ok().map(|x| x.0));
        s.is_some()
    }));
    let s = s.unwrap();
    // 1500 - 20 (IP) - 40 (IP options) - 20 (TCP) - 12 (timestamps).
    assert_eq!(maxseg(&lab.a, c), 1408);
    assert_eq!(maxseg(&lab.b, s), 1408);
    // The child holds the SYN's options as echoed: A's and B's addresses recorded, and B's
    // again when it sends (the pointer advanced past three slots); getsockopt undoes B's own.
    let mut want_child = vec![7u8, 39, 12];
    want_child.extend_from_slice(&ADDR_A.octets());
    want_child.extend_from_slice(&ADDR_B.octets());
    want_child.resize(40, 0);
    assert_eq!(get_ip_options(&lab.b, s, 40), want_child);
    // Data both ways.
    let data = common::pattern(100_000, 7);
    let mut got_b = Vec::new();
    let mut got_a = Vec::new();
    let mut sent_a = 0;
    let mut sent_b = 0;
    assert!(lab.run_until(Duration::from_secs(30), || {
        if sent_a < data.len() {
            sent_a += lab.a.send(c, Some(&data[sent_a..]), data.len() - sent_a, 0).unwrap_or(0);
        }
        if sent_b < data.len() {
            sent_b += lab.b.send(s, Some(&data[sent_b..]), data.len() - sent_b, 0).unwrap_or(0);
        }
        let _ = common::drain(&lab.b, s, &mut got_b);
        let _ = common::drain(&lab.a, c, &mut got_a);
        got_a.len() == data.len() && got_b.len() == data.len()
    }));
    assert_eq!(got_b, data);
    assert_eq!(got_a, data);
    let log = lab.log();
    let (from_a, from_b): (Vec<_>, Vec<_>) = log.iter().partition(|p| p.from_a);
    assert!(from_a.len() > 70 && from_b.len() > 70);
    for p in &from_a {
        assert_eq!(p.ip_opts.len(), 40, "A: IP options on every segment");
        // A records its address in the first slot on every packet (ip_options_build).
        assert_eq!(&p.ip_opts[..7], &[7, 39, 8, 192, 0, 2, 1]);
        assert!(p.len <= 1408);
    }
    for p in &from_b {
        assert_eq!(p.ip_opts.len(), 40, "B: the echoed options on every segment (SYN-ACK included)");
        let mut want = vec![7u8, 39, 16];
        want.extend_from_slice(&ADDR_A.octets());
        want.extend_from_slice(&ADDR_B.octets());
        want.extend_from_slice(&ADDR_B.octets());
        assert_eq!(&p.ip_opts[..15], &want[..]);
        assert!(p.len <= 1408);
    }
    assert!(from_a.iter().any(|p| p.len == 1408), "full-sized segments fill the reduced MSS");
    for st in [&lab.a, &lab.b] {
        let m = &st.core.net.mib;
        assert_eq!(m.tcp_get(utcp::mib::TcpMib::RetransSegs), 0);
        assert_eq!(m.ip_get(utcp::mib::IpMib::InHdrErrors), 0);
    }
}

/// IP_OPTIONS set on an established connection: the MSS drops at once and the next
/// segment carries them; clearing them gives the MSS back.
#[test]
fn ip_options_mid_connection_resync_the_mss() {
    let lab = Lab::new(Duration::from_millis(1));
    let (c, s, _l) = lab.pair();
    assert_eq!(maxseg(&lab.a, c), 1448);
    lab.a.setsockopt(c, SOL_IP, IP_OPTIONS, &[1; 8]).unwrap();
    assert_eq!(maxseg(&lab.a, c), 1440);
    lab.clear_log();
    let data = common::pattern(5000, 3);
    assert_eq!(lab.a.send(c, Some(&data), data.len(), 0), Ok(5000));
    let mut got = Vec::new();
    assert!(lab.run_until(Duration::from_secs(5), || {
        let _ = common::drain(&lab.b, s, &mut got);
        got.len() == data.len()
    }));
    assert_eq!(got, data);
    let from_a: Vec<_> = lab.log().into_iter().filter(|p| p.from_a && p.len > 0).collect();
    assert_eq!(from_a.iter().map(|p| p.len).collect::<Vec<_>>(), [1440, 1440, 1440, 680]);
    assert!(from_a.iter().all(|p| p.ip_opts == [1; 8]));
    lab.a.setsockopt(c, SOL_IP, IP_OPTIONS, b"").unwrap();
    assert_eq!(maxseg(&lab.a, c), 1448);
}

/// Received options are compiled: a bad one is a header error (InHdrErrors), a source route
/// is refused (accept_source_route 0), and neither reaches TCP.
#[test]
fn bad_or_source_routed_options_are_dropped() {
    let lab = Lab::new(Duration::from_millis(1));
    let l = lab.listen(80, 16);
    // A loose source route: A sends to its first hop, which is B here, and B drops it.
    let c = nb_socket(&lab.a);
    let mut lsrr = vec![0x83u8, 7, 4];
    lsrr.extend_from_slice(&ADDR_B.octets());
    lab.a.setsockopt(c, SOL_IP, IP_OPTIONS, &lsrr).unwrap();
    assert_eq!(lab.a.connect(c, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::EINPROGRESS));
    lab.advance(Duration::from_millis(100));
    let syn = &lab.log()[0];
    assert_eq!(syn.ip_dst, ADDR_B);
    // The route's last slot holds the final destination.
    assert_eq!(syn.ip_opts, [0x83, 7, 4, 192, 0, 2, 2, 0]);
    assert_eq!(lab.log().len(), 1, "B answers nothing");
    assert!(lab.b.accept4(l, SOCK_NONBLOCK).is_err());
    assert_eq!(lab.b.core.net.mib.tcp_get(utcp::mib::TcpMib::InSegs), 0);
    assert_eq!(lab.b.core.net.mib.ip_get(utcp::mib::IpMib::InHdrErrors), 0);
}

/// A listener's own IP_OPTIONS go on no SYN-ACK and to no child: those carry the SYN's
/// options echoed, and a plain SYN has none (tcp_v4_syn_recv_sock takes ireq_opt).
#[test]
fn listener_options_are_not_inherited() {
    let lab = Lab::new(Duration::from_millis(1));
    let l = nb_socket(&lab.b);
    lab.b.setsockopt(l, SOL_IP, IP_OPTIONS, &[1; 8]).unwrap();
    lab.b.bind(l, SocketAddrV4::new(ADDR_B, 80)).unwrap();
    lab.b.listen(l, 4).unwrap();
    assert_eq!(maxseg(&lab.b, l), 68, "a listener's MSS synced to pmtu cookie 0");
    let c = lab.connect_start(80);
    let mut s = None;
    assert!(lab.run_until(Duration::from_secs(5), || {
        s = s.or_else(|| lab.b.accept4(l, SOCK_NONBLOCK).ok().map(|x| x.0));
        s.is_some()
    }));
    let s = s.unwrap();
    assert_eq!(get_ip_options(&lab.b, s, 40), b"");
    assert_eq!(maxseg(&lab.b, s), 1448);
    assert_eq!(maxseg(&lab.a, c), 1448);
    assert!(lab.log().iter().all(|p| p.ip_opts.is_empty()), "no options on any segment");
}

/// A RST answering a segment with options echoes them (ip_send_unicast_reply): B has no
/// listener; its RST carries A's record route with B's address recorded twice (on receipt
/// and when sending), as the SYN-ACK would.
#[test]
fn rst_echoes_the_segments_options() {
    let lab = Lab::new(Duration::from_millis(1));
    let c = nb_socket(&lab.a);
    lab.a.setsockopt(c, SOL_IP, IP_OPTIONS, &rr39()).unwrap();
    assert_eq!(lab.a.connect(c, SocketAddrV4::new(ADDR_B, 99)), Err(Errno::EINPROGRESS));
    lab.advance(Duration::from_millis(10));
    let log = lab.log();
    assert_eq!(log.len(), 2);
    let rst = &log[1];
    assert!(!rst.from_a && rst.has(0x04));
    let mut want = vec![7u8, 39, 16];
    want.extend_from_slice(&ADDR_A.octets());
    want.extend_from_slice(&ADDR_B.octets());
    want.extend_from_slice(&ADDR_B.octets());
    want.resize(40, 0);
    assert_eq!(rst.ip_opts, want);
    let mut out = [0u8; 4];
    assert_eq!(lab.a.getsockopt(c, 1, 4, &mut out), Ok(4)); // SO_ERROR
    assert_eq!(i32::from_ne_bytes(out), Errno::ECONNREFUSED as i32);
}

/// Captures what a stack sends.
struct Capture(Mutex<Vec<Vec<u8>>>);
impl NetDevice for Capture {
    fn xmit(&self, frame: utcp::skb::Frame) {
        self.0.lock().unwrap().push(frame.to_vec());
    }
    fn mtu(&self) -> u32 {
        1500
    }
    fn attach(&self, _hook: utcp::netdev::RxHook) {}
}

fn inet_csum(b: &[u8]) -> u16 {
    !crate_checksum(b)
}

/// A SYN from A to B:80 whose IP header carries `opts`, checksums right.
fn syn_with_ip_options(opts: &[u8]) -> Vec<u8> {
    let ihl = 20 + opts.len();
    let mut p = vec![0u8; ihl + 20];
    p[0] = 0x40 | (ihl / 4) as u8;
    p[2..4].copy_from_slice(&((ihl + 20) as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&ADDR_A.octets());
    p[16..20].copy_from_slice(&ADDR_B.octets());
    p[20..ihl].copy_from_slice(opts);
    let c = inet_csum(&p[..ihl]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let t = &mut p[ihl..];
    t[0..2].copy_from_slice(&1234u16.to_be_bytes());
    t[2..4].copy_from_slice(&80u16.to_be_bytes());
    t[4..8].copy_from_slice(&1u32.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x02;
    t[14..16].copy_from_slice(&1000u16.to_be_bytes());
    let mut ph = Vec::new();
    ph.extend_from_slice(&ADDR_A.octets());
    ph.extend_from_slice(&ADDR_B.octets());
    ph.extend_from_slice(&[0, 6, 0, 20]);
    ph.extend_from_slice(&p[ihl..]);
    let c = inet_csum(&ph);
    p[ihl + 16..ihl + 18].copy_from_slice(&c.to_be_bytes());
    p
}

/// Options that do not compile: InHdrErrors and an ICMP parameter problem pointing at the
/// faulty byte (offset from the IP header), as the kernel answers on loopback (pointer 22
/// for both: RR's pointer below 4, an option length below 2 after two NOPs).
#[test]
fn bad_received_options_get_a_parameter_problem() {
    let clock = Arc::new(utcp::time::VirtualClock::new(utcp::time::Instant::from_millis(1000)));
    let core = StackCore::new(ADDR_B, 1500, clock.clone() as Arc<dyn Clock>, 7);
    let cap = Arc::new(Capture(Mutex::new(Vec::new())));
    core.attach_device(cap.clone() as Arc<dyn NetDevice>);
    for (n, opts) in [&[7u8, 7, 3, 0, 0, 0, 0, 0][..], &[1, 1, 7, 1][..]].into_iter().enumerate() {
        core.netif_receive(utcp::ip::frame_from_wire(bytes::Bytes::from(syn_with_ip_options(opts))));
        let sent = cap.0.lock().unwrap().clone();
        assert_eq!(sent.len(), n + 1);
        let icmp = &sent[n];
        assert_eq!(icmp[9], 1, "ICMP");
        assert_eq!(&icmp[16..20], &ADDR_A.octets());
        assert_eq!((icmp[20], icmp[21], icmp[24]), (12, 0, 22), "parameter problem, pointer 22");
        assert_eq!(&icmp[28..48], &syn_with_ip_options(opts)[..20], "quotes the datagram");
    }
    assert_eq!(core.net.mib.ip_get(utcp::mib::IpMib::InHdrErrors), 2);
    assert_eq!(core.net.mib.tcp_get(utcp::mib::TcpMib::InSegs), 0);
    // Good options reach TCP (no listener: a RST, carrying nothing to echo for NOPs).
    core.netif_receive(utcp::ip::frame_from_wire(bytes::Bytes::from(syn_with_ip_options(&[1, 1, 1, 1]))));
    let sent = cap.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 3);
    assert_eq!((sent[2][0], sent[2][9], sent[2][33] & 0x04), (0x45, 6, 0x04));
}

/// A `Write` into a shared buffer (a pcap capture).
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);
impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Two stacks on a memlink in real time; host A's traffic is captured.
struct Pair {
    a: Arc<Stack>,
    b: Arc<Stack>,
    pcap: Arc<PcapDevice<Arc<memlink::MemPort>>>,
    cap: Shared,
    threads: Vec<HostThreads>,
}

impl Pair {
    fn new() -> Pair {
        let clock: Arc<dyn Clock> = Arc::new(MonotonicClock::default());
        let (pa, pb) = memlink::pair(LinkConfig::default(), clock.clone());
        let cap = Shared::default();
        let pcap = Arc::new(PcapDevice::new(pa, Box::new(cap.clone()), clock.clone()));
        let ca = StackCore::new(ADDR_A, 1500, clock.clone(), 0x11);
        ca.attach_device(pcap.clone() as Arc<dyn NetDevice>);
        let cb = StackCore::new(ADDR_B, 1500, clock.clone(), 0x22);
        cb.attach_device(pb.clone() as Arc<dyn NetDevice>);
        let threads =
            vec![HostThreads::start(ca.clone(), Some(pcap.clone())), HostThreads::start(cb.clone(), Some(pb))];
        Pair { a: Arc::new(Stack::from_core(ca)), b: Arc::new(Stack::from_core(cb)), pcap, cap, threads }
    }

    /// Frames host A sent and received so far (IP packets).
    fn frames(&self) -> Vec<Vec<u8>> {
        self.pcap.flush().unwrap();
        read_pcap(&self.cap.0.lock().unwrap()).unwrap().into_iter().map(|(_, f)| f).collect()
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for t in self.threads.drain(..) {
            t.stop();
        }
    }
}

/// Waits (bounded) until `f` holds.
fn wait_for(mut f: impl FnMut() -> bool) -> bool {
    let start = StdInstant::now();
    while start.elapsed() < LIMIT {
        if f() {
            return true;
        }
        std::thread::sleep(StdDuration::from_millis(1));
    }
    false
}

#[test]
fn real_threads_no_port_and_port_range() {
    let p = Pair::new();
    let mut ls = Vec::new();
    for port in [80u16, 81] {
        let l = p.b.socket(AF_INET, SOCK_STREAM, 0).unwrap();
        p.b.bind(l, SocketAddrV4::new(ADDR_B, port)).unwrap();
        p.b.listen(l, 16).unwrap();
        ls.push(l);
    }
    let mut conns = Vec::new();
    for dport in [80u16, 81] {
        let c = p.a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
        p.a.setsockopt(c, SOL_IP, IP_LOCAL_PORT_RANGE, &range(45000, 45000)).unwrap();
        p.a.setsockopt(c, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &[1]).unwrap();
        p.a.bind(c, SocketAddrV4::new(ADDR_A, 0)).unwrap();
        p.a.connect(c, SocketAddrV4::new(ADDR_B, dport)).unwrap();
        assert_eq!(p.a.getsockname(c).unwrap(), SocketAddrV4::new(ADDR_A, 45000));
        conns.push(c);
    }
    let c = p.a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    p.a.setsockopt(c, SOL_IP, IP_LOCAL_PORT_RANGE, &range(45000, 45000)).unwrap();
    assert_eq!(p.a.connect(c, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::EADDRNOTAVAIL));
    for (i, l) in ls.iter().enumerate() {
        let (s, peer) = p.b.accept4(*l, 0).unwrap();
        assert_eq!(peer, SocketAddrV4::new(ADDR_A, 45000));
        let msg = [i as u8; 100];
        assert_eq!(p.a.send(conns[i], Some(&msg), 100, 0), Ok(100));
        let mut got = Vec::new();
        assert!(wait_for(|| {
            let mut buf = [0u8; 200];
            if let Ok(n) = p.b.recv(s, Some(&mut buf), 200, MSG_DONTWAIT) {
                got.extend_from_slice(&buf[..n]);
            }
            got.len() >= 100
        }));
        assert_eq!(got, msg);
    }
}

/// Loss probes and timeouts fire on real threads when a thread that delivers a direction is
/// preempted long enough (2 cores shared by many test threads): a round may show a
/// timer-driven retransmission, never another kind; one round in three must be clean.
#[test]
fn real_threads_ip_options_on_the_wire_and_in_the_pcap() {
    let clean = (0..3).filter(|_| ip_options_round()).count();
    assert!(clean >= 1, "{clean} of 3 rounds clean");
}

/// One transfer A → B with IP options; true when the MIB shows no retransmission at all.
fn ip_options_round() -> bool {
    let p = Pair::new();
    let l = p.b.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    p.b.bind(l, SocketAddrV4::new(ADDR_B, 90)).unwrap();
    p.b.listen(l, 16).unwrap();
    let c = p.a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    // A timestamp option (timestamps only) with room for 2, then 4 NOPs.
    let opts = [0x44u8, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1];
    p.a.setsockopt(c, SOL_IP, IP_OPTIONS, &opts).unwrap();
    p.a.connect(c, SocketAddrV4::new(ADDR_B, 90)).unwrap();
    let (s, _) = p.b.accept4(l, 0).unwrap();
    assert_eq!(maxseg(&p.a, c), 1500 - 20 - 16 - 20 - 12);
    let data = common::pattern(300_000, 11);
    let writer = {
        let (a, d) = (p.a.clone(), data.clone());
        std::thread::spawn(move || {
            let mut off = 0;
            while off < d.len() {
                off += a.send(c, Some(&d[off..]), d.len() - off, 0).unwrap();
            }
        })
    };
    let mut got = Vec::new();
    assert!(wait_for(|| {
        let mut buf = [0u8; 65536];
        if let Ok(n) = p.b.recv(s, Some(&mut buf), 65536, MSG_DONTWAIT) {
            got.extend_from_slice(&buf[..n]);
        }
        got.len() >= data.len()
    }));
    writer.join().unwrap();
    assert_eq!(got, data);
    let frames = p.frames();
    let sent: Vec<_> = frames.iter().filter(|f| f[12..16] == ADDR_A.octets()).collect();
    let rcvd: Vec<_> = frames.iter().filter(|f| f[12..16] == ADDR_B.octets()).collect();
    assert!(sent.len() > 200 && !rcvd.is_empty());
    for f in &sent {
        assert_eq!(f[0], 0x49, "ihl 9: 16 option bytes");
        assert_eq!(crate_checksum(&f[..36]), 0xffff, "IP header checksum over the options");
        // A stamps the first slot: the pointer stands past it.
        assert_eq!(&f[20..24], &[0x44, 12, 9, 0]);
        assert_eq!(&f[32..36], &[1, 1, 1, 1]);
        let total = u16::from_be_bytes([f[2], f[3]]) as usize;
        assert_eq!(total, f.len());
        assert!(total <= 1500);
    }
    // B's child echoes the SYN's timestamp option (not the NOPs), which B stamped on receipt:
    // full, it records nothing more.
    for f in &rcvd {
        assert_eq!(f[0], 0x48);
        assert_eq!(&f[20..24], &[0x44, 12, 13, 0]);
    }
    let mut clean = true;
    for st in [&p.a, &p.b] {
        use utcp::mib::{IpMib, LinuxMib, TcpMib};
        let m = &st.core.net.mib;
        assert_eq!(m.get(LinuxMib::TCPOFOQueue), 0, "clean link: nothing out of order");
        assert_eq!(m.get(LinuxMib::TCPFastRetrans), 0, "clean link: no fast retransmit");
        assert_eq!(m.get(LinuxMib::TCPSACKReorder), 0);
        assert_eq!(m.ip_get(IpMib::InHdrErrors), 0);
        let timer = m.get(LinuxMib::TCPLossProbes) + m.get(LinuxMib::TCPTimeouts);
        let retrans = m.tcp_get(TcpMib::RetransSegs);
        assert!(retrans <= timer, "a retransmission no timer caused");
        let dirty = retrans + timer + m.get(LinuxMib::TCPDSACKRecv) + m.get(LinuxMib::TCPDSACKOfoRecv);
        if dirty != 0 {
            eprintln!("timer-driven retransmission (a preempted thread?): {retrans} retransmitted, {timer} timers");
            clean = false;
        }
    }
    clean
}

/// The Internet checksum of `b` (folded, not complemented).
fn crate_checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in b.chunks(2) {
        sum += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}
