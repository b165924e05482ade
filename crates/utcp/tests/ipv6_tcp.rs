//! TCP over IPv6 and AF_INET6 sockets (issue 12): transfers over fd00::a/fd00::b on the virtual
//! clock and on real threads (byte-exact, no retransmission, out-of-order segment or DSACK on a
//! clean link), a dual-stack listener taking an IPv4 client as `::ffff:a.b.c.d`, an AF_INET6
//! socket connecting to an IPv4-mapped address over IPv4, the wire format of the segments
//! (hop limit, traffic class, flow label, MSS from the IPv6 MTU), RST for a port without a
//! listener, and the sockaddr_in6 rules of bind/connect/getsockname checked against Linux 6.18
//! (the kernel's answers, from a program run in `unshare -n` on `::1`, are written beside each
//! assertion).

mod common;

use common::{pattern, tap_a, v6};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use utcp::api::{memlink_pair, TcpListener, TcpStream, ADDR6_A, ADDR6_B, ADDR_A, ADDR_B};
use utcp::errno::Errno;
use utcp::ip::ipv6_sockglue::*;
use utcp::mib::{Ipv6Mib, LinuxMib, TcpMib};
use utcp::netdev::memlink::LinkConfig;
use utcp::sim::SimNet;
use utcp::syscall::{Stack, AF_INET, AF_INET6, SHUT_WR, SOCK_NONBLOCK, SOCK_STREAM, SOL_IPV6};
use utcp::time::Duration;
use utcp::wire::ipv6::nexthdr;
use utcp::wire::Ipv6Packet;

/// Counters a clean link must leave at 0.
fn assert_clean(what: &str, st: &Stack) {
    let m = &st.core.net.mib;
    for (name, v) in [
        ("TcpRetransSegs", m.tcp_get(TcpMib::RetransSegs)),
        ("TCPOFOQueue", m.get(LinuxMib::TCPOFOQueue)),
        ("TCPDSACKRecv", m.get(LinuxMib::TCPDSACKRecv)),
        ("TCPDSACKOfoRecv", m.get(LinuxMib::TCPDSACKOfoRecv)),
        ("TCPLossProbes", m.get(LinuxMib::TCPLossProbes)),
        ("TcpInErrs", m.tcp_get(TcpMib::InErrs)),
    ] {
        assert_eq!(v, 0, "{what}: {name}\n{}", m.nstat(false));
    }
}

/// A listener on B at `[laddr]:port` and a client on A connected to `dst`, on the virtual
/// clock; returns (listener, client, accepted, peer as accept() saw it).
fn open(net: &SimNet, lfam: i32, laddr: SocketAddr, cfam: i32, dst: SocketAddr) -> (i32, i32, i32, SocketAddr) {
    let (a, b) = (net.a.stack.clone(), net.b.stack.clone());
    let l = b.socket(lfam, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    b.bind(l, laddr).unwrap();
    b.listen(l, 16).unwrap();
    let c = a.socket(cfam, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    assert_eq!(a.connect(c, dst), Err(Errno::EINPROGRESS));
    let mut acc = None;
    assert!(net.run_until(Duration::from_secs(10), || {
        acc = acc.or_else(|| b.accept4_addr(l, SOCK_NONBLOCK).ok());
        acc.is_some()
    }));
    let (s, peer) = acc.unwrap();
    (l, c, s, peer)
}

/// Sends `len` bytes from `c` on A to `s` on B and closes A's side; returns what B read.
fn pump(net: &SimNet, c: i32, s: i32, data: &[u8]) -> Vec<u8> {
    let (a, b) = (net.a.stack.clone(), net.b.stack.clone());
    let (mut sent, mut closed, mut got) = (0, false, Vec::with_capacity(data.len()));
    let mut buf = vec![0u8; 65536];
    let ok = net.run_until(Duration::from_secs(600), || {
        while sent < data.len() {
            match a.send(c, Some(&data[sent..]), data.len() - sent, 0) {
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        if sent == data.len() && !closed {
            a.shutdown(c, SHUT_WR).unwrap();
            closed = true;
        }
        loop {
            match b.recv(s, Some(&mut buf), 65536, 0) {
                Ok(0) => return true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(Errno::EAGAIN) => return false,
                Err(e) => panic!("recv: {e}"),
            }
        }
    });
    assert!(ok, "transfer stalled at {} of {}", got.len(), data.len());
    got
}

#[test]
fn ipv6_transfer_on_the_virtual_clock_is_byte_exact_and_clean() {
    let net = SimNet::new(LinkConfig::default());
    let log = tap_a(&net);
    let (_l, c, s, peer) = open(&net, AF_INET6, v6(Ipv6Addr::UNSPECIFIED, 80), AF_INET6, v6(ADDR6_B, 80));
    let (a, b) = (net.a.stack.clone(), net.b.stack.clone());
    // accept / getsockname / getpeername give IPv6 addresses.
    let local = a.getsockname_addr(c).unwrap();
    assert_eq!(peer, local);
    assert_eq!(local.ip(), IpAddr::V6(ADDR6_A));
    assert_eq!(a.getpeername_addr(c).unwrap(), v6(ADDR6_B, 80));
    assert_eq!(b.getsockname_addr(s).unwrap(), v6(ADDR6_B, 80));
    let data = pattern(6 << 20, 3);
    let got = pump(&net, c, s, &data);
    assert!(got == data, "byte-exact");
    assert_clean("A", &a);
    assert_clean("B", &b);
    // Every frame A sent is IPv6 with TCP right after the fixed header: segments of at most
    // 1500 bytes (MSS 1440 = 1500 - 40 - 20, less the timestamp option), hop limit 64
    // (net.ipv6.conf.all.hop_limit), traffic class 0, one non-zero flow label for the whole
    // connection (ip6_make_flowlabel of sk_txhash), and a valid TCP checksum.
    let log = log.lock().unwrap();
    assert!(log.len() > 1000);
    let mut labels = std::collections::HashSet::new();
    let mut syn_mss = None;
    for f in log.iter() {
        let p = Ipv6Packet::new_checked(&f[..]).expect("IPv6");
        assert_eq!((p.next_header(), p.hop_limit(), p.traffic_class()), (nexthdr::TCP, 64, 0));
        assert!(f.len() <= 1500, "{} bytes", f.len());
        labels.insert(p.flow_label());
        let tcp = p.payload();
        let pseudo = utcp::wire::ipv6::pseudo_header_checksum_v6(&p.src_addr(), &p.dst_addr(), 6, tcp.len() as u32);
        assert_eq!(utcp::wire::combine(&[pseudo, utcp::wire::checksum(tcp)]), 0xffff, "checksum");
        if tcp[13] & 0x02 != 0 {
            // The SYN's MSS option (kind 2, length 4) is the first option.
            assert_eq!(tcp[20..22], [2, 4]);
            syn_mss = Some(u16::from_be_bytes([tcp[22], tcp[23]]));
        }
    }
    assert_eq!(syn_mss, Some(1440), "advmss = MTU - 60");
    assert_eq!(labels.len(), 1, "one flow label per connection");
    assert!(!labels.contains(&0));
    // The IPv6 MIB saw the traffic; nothing was counted as an unknown protocol.
    let m = &b.core.net.mib;
    assert!(m.ip6_get(Ipv6Mib::InDelivers) > 1000);
    assert_eq!(m.ip6_get(Ipv6Mib::InUnknownProtos), 0);
    assert_eq!(a.getsockopt_int(c, SOL_IPV6, IPV6_MTU), Ok(1500));
}

#[test]
fn dual_stack_listener_takes_an_ipv4_client_as_v4_mapped() {
    let net = SimNet::new(LinkConfig::default());
    let log = tap_a(&net);
    let (l, c, s, peer) =
        open(&net, AF_INET6, v6(Ipv6Addr::UNSPECIFIED, 80), AF_INET, SocketAddr::V4(SocketAddrV4::new(ADDR_B, 80)));
    let (a, b) = (net.a.stack.clone(), net.b.stack.clone());
    // Linux: accept() on a `::` listener of an IPv4 client gives ::ffff:a.b.c.d, and the
    // child's own address is mapped too.
    let port = a.getsockname(c).unwrap().port();
    assert_eq!(peer, v6(ADDR_A.to_ipv6_mapped(), port));
    assert_eq!(b.getsockname_addr(s).unwrap(), v6(ADDR_B.to_ipv6_mapped(), 80));
    assert_eq!(b.getsockopt_int(s, utcp::syscall::SOL_SOCKET, utcp::syscall::opt::SO_DOMAIN), Ok(AF_INET6));
    let data = pattern(1 << 20, 5);
    assert!(pump(&net, c, s, &data) == data);
    assert!(log.lock().unwrap().iter().all(|f| f[0] >> 4 == 4), "IPv4 on the wire");
    assert_clean("A", &a);
    assert_clean("B", &b);
    // IPV6_V6ONLY: the same listener setup refuses IPv4 clients (the SYN finds no listener:
    // RST, ECONNREFUSED, as the kernel answers).
    let l6 = b.socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    b.setsockopt_int(l6, SOL_IPV6, IPV6_V6ONLY, 1).unwrap();
    b.bind(l6, v6(Ipv6Addr::UNSPECIFIED, 81)).unwrap();
    b.listen(l6, 4).unwrap();
    let c4 = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    let _ = a.connect(c4, SocketAddrV4::new(ADDR_B, 81));
    net.run_until(Duration::from_secs(5), || false);
    assert_eq!(a.connect(c4, SocketAddrV4::new(ADDR_B, 81)), Err(Errno::ECONNREFUSED));
    // ... while an IPv6 client gets through.
    let c6 = a.socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    let _ = a.connect(c6, v6(ADDR6_B, 81));
    let mut ok = false;
    net.run_until(Duration::from_secs(5), || {
        ok = b.accept4_addr(l6, 0).is_ok();
        ok
    });
    assert!(ok);
    // The IPv4-only accept4() of an IPv6 peer keeps the connection: the address does not fit.
    let c7 = a.socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    let _ = a.connect(c7, v6(ADDR6_B, 81));
    let mut got = None;
    net.run_until(Duration::from_secs(5), || {
        got = b.accept4(l6, 0).ok();
        got.is_some()
    });
    let (fd7, p7) = got.unwrap();
    assert_eq!(*p7.ip(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(b.getpeername_addr(fd7).unwrap().ip(), IpAddr::V6(ADDR6_A));
    let _ = b.close(l);
}

#[test]
fn an_ipv6_socket_connecting_to_a_v4_mapped_address_uses_ipv4() {
    let net = SimNet::new(LinkConfig::default());
    let log = tap_a(&net);
    let (_l, c, s, peer) = open(
        &net,
        AF_INET,
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80)),
        AF_INET6,
        v6(ADDR_B.to_ipv6_mapped(), 80),
    );
    let a = net.a.stack.clone();
    // The client sees mapped addresses, the IPv4 server plain ones.
    let local = a.getsockname_addr(c).unwrap();
    assert_eq!(local.ip(), IpAddr::V6(ADDR_A.to_ipv6_mapped()));
    assert_eq!(a.getpeername_addr(c).unwrap(), v6(ADDR_B.to_ipv6_mapped(), 80));
    assert_eq!(peer, SocketAddr::V4(SocketAddrV4::new(ADDR_A, local.port())));
    let data = pattern(256 << 10, 9);
    assert!(pump(&net, c, s, &data) == data);
    let log = log.lock().unwrap();
    assert!(!log.is_empty() && log.iter().all(|f| f[0] >> 4 == 4), "IPv4 on the wire");
    // The SYN's MSS is IPv4's (1500 - 40), the IPv4-mapped connection using `ipv6_mapped`.
    let syn = log.iter().find(|f| f[33] & 0x02 != 0).unwrap();
    assert_eq!(u16::from_be_bytes([syn[42], syn[43]]), 1460);
    // Under IPV6_V6ONLY a mapped destination is ENETUNREACH (kernel: "connect mapped v6only
    // ENETUNREACH").
    let c2 = a.socket(AF_INET6, SOCK_STREAM, 0).unwrap();
    a.setsockopt_int(c2, SOL_IPV6, IPV6_V6ONLY, 1).unwrap();
    assert_eq!(a.connect(c2, v6(ADDR_B.to_ipv6_mapped(), 80)), Err(Errno::ENETUNREACH));
}

#[test]
fn a_port_without_listener_answers_with_a_reset() {
    let net = SimNet::new(LinkConfig::default());
    let a = net.a.stack.clone();
    let c = a.socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    assert_eq!(a.connect(c, v6(ADDR6_B, 9)), Err(Errno::EINPROGRESS));
    net.run_until(Duration::from_secs(5), || false);
    assert_eq!(a.connect(c, v6(ADDR6_B, 9)), Err(Errno::ECONNREFUSED));
    let m = &net.b.stack.core.net.mib;
    assert_eq!(m.tcp_get(TcpMib::OutRsts), 1);
    assert_eq!(m.tcp_get(TcpMib::InSegs), 1);
}

#[test]
fn hop_limit_and_traffic_class_options_reach_the_wire() {
    let net = SimNet::new(LinkConfig::default());
    let log = tap_a(&net);
    let (a, b) = (net.a.stack.clone(), net.b.stack.clone());
    let l = b.socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    b.bind(l, v6(Ipv6Addr::UNSPECIFIED, 80)).unwrap();
    b.listen(l, 4).unwrap();
    let c = a.socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    a.setsockopt_int(c, SOL_IPV6, IPV6_UNICAST_HOPS, 7).unwrap();
    a.setsockopt_int(c, SOL_IPV6, IPV6_TCLASS, 0x21).unwrap();
    a.setsockopt_int(c, SOL_IPV6, IPV6_AUTOFLOWLABEL, 0).unwrap();
    let _ = a.connect(c, v6(ADDR6_B, 80));
    let mut s = None;
    assert!(net.run_until(Duration::from_secs(5), || {
        s = s.or_else(|| b.accept4_addr(l, 0).ok());
        s.is_some()
    }));
    assert_eq!(a.send(c, Some(b"hello"), 5, 0), Ok(5));
    net.run_until(Duration::from_millis(100), || false);
    let log = log.lock().unwrap();
    assert!(log.len() >= 3);
    for f in log.iter() {
        let p = Ipv6Packet::new_checked(&f[..]).unwrap();
        // IPV6_TCLASS keeps no ECN bits on a stream socket: 0x21 → 0x20.
        assert_eq!((p.hop_limit(), p.traffic_class(), p.flow_label()), (7, 0x20, 0));
    }
    assert_eq!(a.getsockopt_int(c, SOL_IPV6, IPV6_UNICAST_HOPS), Ok(7));
    assert_eq!(a.getsockopt_int(c, SOL_IPV6, IPV6_TCLASS), Ok(0x20));
}

#[test]
fn sockaddr_in6_rules_are_the_kernels() {
    let net = SimNet::new(LinkConfig::default());
    let st = net.b.stack.clone();
    let sin6 = |fam: u16, port: u16, ip: Ipv6Addr, scope: u32| {
        let mut b = vec![0u8; 28];
        b[..2].copy_from_slice(&fam.to_ne_bytes());
        b[2..4].copy_from_slice(&port.to_be_bytes());
        b[8..24].copy_from_slice(&ip.octets());
        b[24..28].copy_from_slice(&scope.to_ne_bytes());
        b
    };
    let any = Ipv6Addr::UNSPECIFIED;
    let s6 = || st.socket(AF_INET6, SOCK_STREAM, 0).unwrap();
    let bind = |b: &[u8]| st.bind_raw(s6(), b);
    // Linux 6.18: "bind len23 EINVAL", "bind len24 0", "bind len28 0", "bind len29 0",
    // "bind len129 EINVAL".
    assert_eq!(bind(&sin6(10, 0, any, 0)[..23]), Err(Errno::EINVAL));
    assert_eq!(bind(&sin6(10, 0, any, 0)[..24]), Ok(()));
    assert_eq!(bind(&sin6(10, 0, any, 0)), Ok(()));
    assert_eq!(bind(&[sin6(10, 0, any, 0), vec![0]].concat()), Ok(()));
    assert_eq!(bind(&[sin6(10, 0, any, 0), vec![0; 101]].concat()), Err(Errno::EINVAL));
    // "bind fam AF_INET len28 EAFNOSUPPORT", "bind fam AF_UNSPEC len28 EAFNOSUPPORT",
    // "bind sin len16 EINVAL".
    assert_eq!(bind(&sin6(2, 0, any, 0)), Err(Errno::EAFNOSUPPORT));
    assert_eq!(bind(&sin6(0, 0, any, 0)), Err(Errno::EAFNOSUPPORT));
    assert_eq!(bind(&sin6(2, 0, any, 0)[..16]), Err(Errno::EINVAL));
    // Our address binds; another is EADDRNOTAVAIL ("bind fd00::99 (nonlocal) EADDRNOTAVAIL");
    // a v4-mapped one binds, not under V6ONLY ("bind mapped lo v6only EINVAL"); multicast is
    // EINVAL ("bind ff02::1 EINVAL"); link-local without a scope is EINVAL ("bind fe80::1
    // scope0 EINVAL").
    assert_eq!(bind(&sin6(10, 0, ADDR6_B, 0)), Ok(()));
    assert_eq!(bind(&sin6(10, 0, "fd00::99".parse().unwrap(), 0)), Err(Errno::EADDRNOTAVAIL));
    assert_eq!(bind(&sin6(10, 0, ADDR_B.to_ipv6_mapped(), 0)), Ok(()));
    assert_eq!(bind(&sin6(10, 0, Ipv4Addr::UNSPECIFIED.to_ipv6_mapped(), 0)), Ok(()));
    let s = s6();
    st.setsockopt_int(s, SOL_IPV6, IPV6_V6ONLY, 1).unwrap();
    assert_eq!(st.bind_raw(s, &sin6(10, 0, ADDR_B.to_ipv6_mapped(), 0)), Err(Errno::EINVAL));
    assert_eq!(bind(&sin6(10, 0, "ff02::1".parse().unwrap(), 0)), Err(Errno::EINVAL));
    assert_eq!(bind(&sin6(10, 0, "fe80::1".parse().unwrap(), 0)), Err(Errno::EINVAL));
    // "bind twice 0 EINVAL"; "v6only after bind EINVAL".
    let s = s6();
    assert_eq!(st.bind_raw(s, &sin6(10, 0, any, 0)), Ok(()));
    assert_eq!(st.bind_raw(s, &sin6(10, 0, any, 0)), Err(Errno::EINVAL));
    assert_eq!(st.setsockopt_int(s, SOL_IPV6, IPV6_V6ONLY, 1), Err(Errno::EINVAL));
    // __inet6_bind(): binding an IPv6 address (not `::`, not a mapped one) sets V6ONLY
    // (Linux 6.18: a socket bound to ::1 reads IPV6_V6ONLY 1).
    let s = s6();
    st.bind_raw(s, &sin6(10, 0, ADDR6_B, 0)).unwrap();
    assert_eq!(st.getsockopt_int(s, SOL_IPV6, IPV6_V6ONLY), Ok(1));
    let s = s6();
    st.bind_raw(s, &sin6(10, 0, ADDR_B.to_ipv6_mapped(), 0)).unwrap();
    assert_eq!(st.getsockopt_int(s, SOL_IPV6, IPV6_V6ONLY), Ok(0));
    // connect: "connect len23 EINVAL", "connect len 1 EINVAL", "connect fam AF_INET len28
    // EAFNOSUPPORT", "connect fam AF_INET len16 (sin) EINVAL", "connect ff02::1 ENETUNREACH".
    let conn = |b: &[u8]| st.connect_raw(s6(), b);
    assert_eq!(conn(&sin6(10, 1, ADDR6_A, 0)[..23]), Err(Errno::EINVAL));
    assert_eq!(conn(&sin6(10, 1, ADDR6_A, 0)[..1]), Err(Errno::EINVAL));
    assert_eq!(conn(&sin6(2, 1, ADDR6_A, 0)), Err(Errno::EAFNOSUPPORT));
    assert_eq!(conn(&sin6(2, 1, ADDR6_A, 0)[..16]), Err(Errno::EINVAL));
    assert_eq!(conn(&sin6(10, 1, "ff02::1".parse().unwrap(), 0)), Err(Errno::ENETUNREACH));
    // "connect AF_UNSPEC 0".
    assert_eq!(conn(&0u16.to_ne_bytes()), Ok(()));
    // getsockname: 28 bytes, truncated to the caller's length, the length always 28
    // ("getsockname 16 (0, 28, '0a00...')").
    let s = s6();
    st.bind_raw(s, &sin6(10, 4242, any, 0)).unwrap();
    let mut out = [0xffu8; 16];
    let mut len = 16;
    st.getsockname_raw(s, Some(&mut out), &mut len).unwrap();
    assert_eq!(len, 28);
    assert_eq!(out[..8], sin6(10, 4242, any, 0)[..8]);
    let mut out = [0u8; 40];
    let mut len = 40;
    st.getsockname_raw(s, Some(&mut out), &mut len).unwrap();
    assert_eq!((len, &out[..28]), (28, &sin6(10, 4242, any, 0)[..]));
    // An AF_INET socket given an IPv6 address: EAFNOSUPPORT.
    let s4 = st.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(st.bind(s4, v6(any, 0)), Err(Errno::EAFNOSUPPORT));
    // SOL_IPV6 on an AF_INET socket: "v4 sock SOL_IPV6 set ENOPROTOOPT get ENOTSUP".
    assert_eq!(st.setsockopt_int(s4, SOL_IPV6, IPV6_UNICAST_HOPS, 1), Err(Errno::ENOPROTOOPT));
    assert_eq!(st.getsockopt_int(s4, SOL_IPV6, IPV6_UNICAST_HOPS), Err(Errno::EOPNOTSUPP));
    // SOL_IP on an AF_INET6 socket works ("v6 sock SOL_IP TTL set 0 get TOS (0, 4, 0)").
    let s = s6();
    assert_eq!(st.setsockopt_int(s, utcp::syscall::SOL_IP, utcp::syscall::opt::IP_TTL, 5), Ok(()));
    assert_eq!(st.getsockopt_int(s, utcp::syscall::SOL_IP, utcp::syscall::opt::IP_TOS), Ok(0));
    // IPV6_MTU before a route: ENOTCONN ("get MTU ENOTCONN").
    assert_eq!(st.getsockopt_int(s, SOL_IPV6, IPV6_MTU), Err(Errno::ENOTCONN));
}

#[test]
fn ipv6_transfer_on_real_threads_is_byte_exact_and_clean() {
    use std::io::{Read, Write};
    let (a, b) = memlink_pair(LinkConfig::default());
    let l = TcpListener::bind(&b.stack, v6(Ipv6Addr::UNSPECIFIED, 8080), 4).unwrap();
    let total: usize = 8 << 20;
    let reader = std::thread::spawn(move || {
        let (mut s, peer) = l.accept().unwrap();
        assert_eq!(peer.ip(), IpAddr::V6(ADDR6_A));
        let mut got = Vec::with_capacity(total);
        let mut buf = vec![0u8; 65536];
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    });
    let mut c = TcpStream::connect(&a.stack, v6(ADDR6_B, 8080)).unwrap();
    assert_eq!(c.peer_addr().unwrap(), v6(ADDR6_B, 8080));
    let data = pattern(total, 11);
    c.write_all(&data).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let got = reader.join().unwrap();
    assert!(got == data, "byte-exact ({} of {} bytes)", got.len(), total);
    // A preempted thread may let a loss probe fire (docs/ARCHITECTURE.md), and the probe's
    // duplicate be reported by a DSACK: only reordering, and retransmissions or DSACKs not
    // caused by a timer, are failures here.
    for st in [&a.stack, &b.stack] {
        let m = &st.core.net.mib;
        assert_eq!(m.get(LinuxMib::TCPOFOQueue), 0, "{}", m.nstat(false));
        let timer = m.get(LinuxMib::TCPLossProbes) + m.get(LinuxMib::TCPTimeouts);
        assert!(m.tcp_get(TcpMib::RetransSegs) <= timer, "{}", m.nstat(false));
        assert!(m.get(LinuxMib::TCPDSACKRecv) <= timer, "{}", m.nstat(false));
        assert_eq!(m.tcp_get(TcpMib::InErrs), 0);
    }
}

/// An IPv6 packet from `src` to `dst` carrying ICMPv6 message `m`.
fn icmp6_pkt(src: Ipv6Addr, dst: Ipv6Addr, m: &utcp::wire::Icmpv6Repr<'_>) -> Vec<u8> {
    let body = m.to_bytes(&src, &dst);
    let mut b = vec![0u8; 40 + body.len()];
    let r = utcp::wire::Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: nexthdr::ICMP,
        payload_len: body.len(),
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    };
    r.emit(&mut Ipv6Packet::new_unchecked(&mut b[..]));
    b[40..].copy_from_slice(&body);
    b
}

/// Hands `pkt` to host A as if it came off its wire.
fn rx_a(net: &SimNet, pkt: &[u8]) {
    net.a.stack.core.netif_receive(utcp::ip::frame_from_wire(bytes::Bytes::copy_from_slice(pkt)));
}

#[test]
fn packet_too_big_lowers_the_path_mtu_and_the_mss() {
    // A link with a delay, so that A's segments are still in flight when the error comes.
    let net = SimNet::new(LinkConfig { delay: Duration::from_millis(5), ..LinkConfig::default() });
    let log = tap_a(&net);
    let (_l, c, s, _) = open(&net, AF_INET6, v6(Ipv6Addr::UNSPECIFIED, 80), AF_INET6, v6(ADDR6_B, 80));
    let a = net.a.stack.clone();
    let data = pattern(200_000, 4);
    log.lock().unwrap().clear();
    let n = a.send(c, Some(&data), data.len(), 0).unwrap();
    net.settle();
    let first = log.lock().unwrap().iter().find(|f| f.len() > 1400).cloned().expect("a full-sized segment in flight");
    // A router on the way (fd00::1) cannot forward it: Packet Too Big, MTU 1280, quoting as
    // much as fits.
    let router: Ipv6Addr = "fd00::1".parse().unwrap();
    let quoted = &first[..1232];
    rx_a(&net, &icmp6_pkt(router, ADDR6_A, &utcp::wire::Icmpv6Repr::PktTooBig { mtu: 1280, quoted }));
    // An MTU below IPv6's minimum is ignored.
    rx_a(&net, &icmp6_pkt(router, ADDR6_A, &utcp::wire::Icmpv6Repr::PktTooBig { mtu: 1000, quoted }));
    assert_eq!(a.getsockopt_int(c, SOL_IPV6, IPV6_MTU), Ok(1280));
    assert_eq!(a.tcp_info(c).unwrap().tcpi_pmtu, 1280);
    // 1280 - 40 - 20 - 12 (timestamps).
    assert_eq!(a.tcp_info(c).unwrap().tcpi_snd_mss, 1208);
    log.lock().unwrap().clear();
    let mut got = Vec::new();
    let b = net.b.stack.clone();
    let mut buf = vec![0u8; 65536];
    assert!(net.run_until(Duration::from_secs(30), || {
        while let Ok(k) = b.recv(s, Some(&mut buf), 65536, SOCK_NONBLOCK_MSG) {
            if k == 0 {
                break;
            }
            got.extend_from_slice(&buf[..k]);
        }
        got.len() == n
    }));
    assert!(got[..] == data[..n], "byte-exact after the MSS change");
    // What A sent after the report fits the new MTU, the cut segments resent
    // (tcp_simple_retransmit).
    assert!(log.lock().unwrap().iter().all(|f| f.len() <= 1280));
    assert!(a.core.net.mib.tcp_get(TcpMib::RetransSegs) > 0);
    assert_eq!(a.core.net.mib.icmp6_get(utcp::mib::Icmp6Mib::InPktTooBigs), 2);
}

/// MSG_DONTWAIT.
const SOCK_NONBLOCK_MSG: i32 = 0x40;

#[test]
fn destination_unreachable_fails_a_connect_and_ipv6_recverr_queues_it() {
    let net = SimNet::new(LinkConfig { delay: Duration::from_millis(5), ..LinkConfig::default() });
    let log = tap_a(&net);
    let a = net.a.stack.clone();
    let c = a.socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    a.setsockopt_int(c, SOL_IPV6, IPV6_RECVERR, 1).unwrap();
    assert_eq!(a.connect(c, v6(ADDR6_B, 80)), Err(Errno::EINPROGRESS));
    let syn = log.lock().unwrap()[0].clone();
    // A firewall (fd00::fe) rejects it: port unreachable (code 4).
    let fw: Ipv6Addr = "fd00::fe".parse().unwrap();
    rx_a(&net, &icmp6_pkt(fw, ADDR6_A, &utcp::wire::Icmpv6Repr::DstUnreachable { code: 4, quoted: &syn }));
    // icmpv6_err_convert(): ECONNREFUSED, and the connect is over.
    assert_eq!(
        a.getsockopt_int(c, utcp::syscall::SOL_SOCKET, utcp::syscall::opt::SO_ERROR),
        Ok(Errno::ECONNREFUSED as i32)
    );
    // The error queue: the quoted segment, msg_name the destination as sockaddr_in6, an
    // IPV6_RECVERR (SOL_IPV6) message with SO_EE_ORIGIN_ICMP6, type 1 code 4 and the
    // offender as sockaddr_in6.
    let mut buf = [0u8; 64];
    let mut ctl = [0u8; 256];
    let mut name = [0u8; 64];
    let mut msg = utcp::syscall::MsgHdr {
        name: Some(&mut name[..]),
        namelen: 64,
        iov: vec![utcp::syscall::IoVec { len: 64, base: Some(&mut buf[..]) }],
        control: Some(&mut ctl[..]),
        controllen: 256,
        flags: 0,
    };
    let n = a.recvmsg(c, &mut msg, 0x2000 | SOCK_NONBLOCK_MSG).unwrap();
    let (namelen, used) = (msg.namelen, msg.controllen);
    assert_eq!(n, syn.len() - 40, "the quoted TCP segment");
    assert_eq!(namelen, 28);
    let (want, _) = utcp::uapi::sockaddr_bytes(&v6(ADDR6_B, 80));
    assert_eq!(name[..28], want[..]);
    let cm = utcp::syscall::parse_cmsgs(&ctl[..used]);
    assert_eq!(cm.len(), 1);
    assert_eq!((cm[0].level, cm[0].ty, cm[0].data.len()), (SOL_IPV6, IPV6_RECVERR, 16 + 28));
    let d = &cm[0].data;
    assert_eq!(u32::from_ne_bytes(d[..4].try_into().unwrap()), Errno::ECONNREFUSED as u32);
    assert_eq!((d[4], d[5], d[6]), (3, 1, 4), "SO_EE_ORIGIN_ICMP6, DEST_UNREACH, PORT_UNREACH");
    let (off, _) = utcp::uapi::sockaddr_bytes(&v6(fw, 0));
    assert_eq!(d[16..], off[..]);
    // tab_unreach[] and the other types (icmpv6_err_convert()).
    use utcp::tcp::ipv6::icmpv6_err_convert;
    assert_eq!(icmpv6_err_convert(1, 0), (Errno::ENETUNREACH, false));
    assert_eq!(icmpv6_err_convert(1, 1), (Errno::EACCES, true));
    assert_eq!(icmpv6_err_convert(1, 3), (Errno::EHOSTUNREACH, false));
    assert_eq!(icmpv6_err_convert(1, 9), (Errno::EPROTO, true));
    assert_eq!(icmpv6_err_convert(2, 0), (Errno::EMSGSIZE, false));
    assert_eq!(icmpv6_err_convert(3, 0), (Errno::EHOSTUNREACH, false));
    assert_eq!(icmpv6_err_convert(4, 0), (Errno::EPROTO, true));
}

#[test]
fn syn_cookies_over_ipv6_use_ipv6_mss_table() {
    let net = SimNet::new(LinkConfig::default());
    net.b.stack.core.net.sysctl.set_by_name("net.ipv4.tcp_syncookies", "2").unwrap();
    let (_l, c, s, peer) = open(&net, AF_INET6, v6(Ipv6Addr::UNSPECIFIED, 80), AF_INET6, v6(ADDR6_B, 80));
    assert_eq!(peer.ip(), IpAddr::V6(ADDR6_A));
    let m = &net.b.stack.core.net.mib;
    assert_eq!((m.get(LinuxMib::SyncookiesSent), m.get(LinuxMib::SyncookiesRecv)), (1, 1));
    // The SYN's MSS 1440 is one of net/ipv6/syncookies.c's (1220, 1420, 1440, 8940).
    assert_eq!(utcp::tcp::syncookies::MSSTAB6, [1220, 1420, 1440, 8940]);
    assert_eq!(net.b.stack.tcp_info(s).unwrap().tcpi_snd_mss, 1440 - 12);
    let data = pattern(300_000, 8);
    assert!(pump(&net, c, s, &data) == data);
    assert_clean("A", &net.a.stack);
}

#[test]
fn an_ipv4_socket_and_a_v6only_one_share_a_port() {
    let net = SimNet::new(LinkConfig::default());
    let (a, b) = (net.a.stack.clone(), net.b.stack.clone());
    // Linux 6.18: "v4 bind same port as v6only :: 0", "v4 bind same port as v6 :: EADDRINUSE".
    let l4 = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    b.bind(l4, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 90)).unwrap();
    let dual = b.socket(AF_INET6, SOCK_STREAM, 0).unwrap();
    assert_eq!(b.bind(dual, v6(Ipv6Addr::UNSPECIFIED, 90)), Err(Errno::EADDRINUSE));
    let l6 = b.socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    b.setsockopt_int(l6, SOL_IPV6, IPV6_V6ONLY, 1).unwrap();
    b.bind(l6, v6(Ipv6Addr::UNSPECIFIED, 90)).unwrap();
    b.listen(l4, 4).unwrap();
    b.listen(l6, 4).unwrap();
    // Each family's client reaches its own listener.
    let c4 = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    let c6 = a.socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    let _ = a.connect(c4, SocketAddrV4::new(ADDR_B, 90));
    let _ = a.connect(c6, v6(ADDR6_B, 90));
    let (mut p4, mut p6) = (None, None);
    assert!(net.run_until(Duration::from_secs(5), || {
        p4 = p4.or_else(|| b.accept4_addr(l4, 0).ok());
        p6 = p6.or_else(|| b.accept4_addr(l6, 0).ok());
        p4.is_some() && p6.is_some()
    }));
    assert_eq!(p4.unwrap().1.ip(), IpAddr::V4(ADDR_A));
    assert_eq!(p6.unwrap().1.ip(), IpAddr::V6(ADDR6_A));
    // The other way round: a dual-stack socket first keeps IPv4 sockets off the port.
    let d = b.socket(AF_INET6, SOCK_STREAM, 0).unwrap();
    b.bind(d, v6(Ipv6Addr::UNSPECIFIED, 91)).unwrap();
    let s4 = b.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(b.bind(s4, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 91)), Err(Errno::EADDRINUSE));
}
