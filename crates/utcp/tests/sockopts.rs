//! Socket options that act as they do in Linux 6.18 (each used to be stored and ignored): IP_TOS
//! and IP_TTL on every packet (and the listener's on its SYN-ACK, inherited by the child),
//! TCP_CONGESTION reno, TCP_USER_TIMEOUT, TCP_NOTSENT_LOWAT in poll(), TCP_DEFER_ACCEPT, keepalive
//! following TCP_KEEPIDLE, IP_FREEBIND, SO_SNDLOWAT's ENOPROTOOPT; plus
//! `net.ipv4.tcp_slow_start_after_idle`. On the virtual clock.

mod common;

use common::*;
use std::net::{Ipv4Addr, SocketAddrV4};
use utcp::api::ADDR_B;
use utcp::mib::LinuxMib;
use utcp::syscall::opt::*;
use utcp::syscall::*;
use utcp::tcp::recvmsg::MSG_DONTWAIT;
use utcp::tcp::TcpState;
use utcp::time::Duration;
use utcp::Errno;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const IPPROTO_IP: i32 = 0;

/// IP_MTU_DISCOVER: DF is set in the default mode (IP_PMTUDISC_WANT) and cleared by
/// IP_PMTUDISC_DONT, as `ip_dont_fragment()`; out-of-range modes are EINVAL; IP_MTU is
/// ENOTCONN before connect().
#[test]
fn ip_mtu_discover_sets_df_on_the_wire() {
    let lab = Lab::new(ms(1));
    let l = lab.b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    lab.b.bind(l, SocketAddrV4::new(ADDR_B, 80)).unwrap();
    lab.b.listen(l, 4).unwrap();
    let c = lab.a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    assert_eq!(lab.a.getsockopt_int(c, IPPROTO_IP, IP_MTU_DISCOVER), Ok(1));
    assert_eq!(lab.a.getsockopt_int(c, IPPROTO_IP, IP_MTU), Err(Errno::ENOTCONN));
    assert_eq!(lab.a.setsockopt_int(c, IPPROTO_IP, IP_MTU_DISCOVER, 6), Err(Errno::EINVAL));
    lab.a.setsockopt_int(c, IPPROTO_IP, IP_MTU_DISCOVER, 0).unwrap();
    let _ = lab.a.connect(c, SocketAddrV4::new(ADDR_B, 80));
    lab.advance(ms(10));
    let (s, _) = lab.b.accept4(l, SOCK_NONBLOCK).unwrap();
    assert_eq!(lab.a.send(c, Some(b"ping"), 4, 0), Ok(4));
    assert_eq!(lab.b.send(s, Some(b"pong"), 4, 0), Ok(4));
    lab.advance(ms(10));
    let log = lab.log();
    assert!(log.iter().any(|p| p.from_a) && log.iter().any(|p| !p.from_a));
    assert!(log.iter().filter(|p| p.from_a).all(|p| !p.df), "A (IP_PMTUDISC_DONT) sends without DF");
    assert!(log.iter().filter(|p| !p.from_a).all(|p| p.df), "B (default) sets DF");
    assert!(lab.a.getsockopt_int(c, IPPROTO_IP, IP_MTU).is_ok());
}

#[test]
fn ip_tos_and_ttl_are_on_the_wire() {
    let lab = Lab::new(ms(1));
    let l = lab.b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    lab.b.setsockopt_int(l, IPPROTO_IP, IP_TOS, 0x10).unwrap();
    lab.b.setsockopt_int(l, IPPROTO_IP, IP_TTL, 33).unwrap();
    lab.b.bind(l, SocketAddrV4::new(ADDR_B, 80)).unwrap();
    lab.b.listen(l, 4).unwrap();
    let c = lab.a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    lab.a.setsockopt_int(c, IPPROTO_IP, IP_TOS, 0x13).unwrap(); // ECN bits are TCP's: 0x10
    assert_eq!(lab.a.getsockopt_int(c, IPPROTO_IP, IP_TOS), Ok(0x10));
    assert_eq!(lab.a.getsockopt_int(c, SOL_SOCKET, SO_PRIORITY), Ok(6), "rt_tos2priority(0x10)");
    lab.a.setsockopt_int(c, IPPROTO_IP, IP_TTL, 7).unwrap();
    assert_eq!(lab.a.setsockopt_int(c, IPPROTO_IP, IP_TTL, 0), Err(Errno::EINVAL));
    assert_eq!(lab.a.setsockopt_int(c, IPPROTO_IP, IP_TTL, 256), Err(Errno::EINVAL));
    let _ = lab.a.connect(c, SocketAddrV4::new(ADDR_B, 80));
    lab.advance(ms(10));
    let (s, _) = lab.b.accept4(l, SOCK_NONBLOCK).unwrap();
    assert_eq!(lab.b.getsockopt_int(s, IPPROTO_IP, IP_TTL), Ok(33), "the child inherits IP_TTL");
    assert_eq!(lab.a.send(c, Some(b"ping"), 4, 0), Ok(4));
    assert_eq!(lab.b.send(s, Some(b"pong"), 4, 0), Ok(4));
    lab.advance(ms(10));
    let log = lab.log();
    assert!(log.iter().filter(|p| p.from_a).all(|p| (p.tos, p.ttl) == (0x10, 7)), "A's packets");
    assert!(log.iter().filter(|p| !p.from_a).all(|p| (p.tos, p.ttl) == (0x10, 33)), "B's SYN-ACK and data");
    // -1 restores the default (net.ipv4.ip_default_ttl).
    lab.a.setsockopt_int(c, IPPROTO_IP, IP_TTL, -1).unwrap();
    assert_eq!(lab.a.getsockopt_int(c, IPPROTO_IP, IP_TTL), Ok(64));
}

#[test]
fn so_sndlowat_is_not_changeable_and_priority_is_kept() {
    let lab = Lab::new(ms(1));
    let c = lab.a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(lab.a.setsockopt_int(c, SOL_SOCKET, SO_SNDLOWAT, 7), Err(Errno::ENOPROTOOPT));
    assert_eq!(lab.a.getsockopt_int(c, SOL_SOCKET, SO_SNDLOWAT), Ok(1));
    lab.a.setsockopt_int(c, SOL_SOCKET, SO_PRIORITY, 7).unwrap();
    assert_eq!(lab.a.getsockopt_int(c, SOL_SOCKET, SO_PRIORITY), Ok(7));
}

#[test]
fn ip_freebind_decides_foreign_binds() {
    let lab = Lab::new(ms(1));
    let foreign = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 7), 9000);
    let c = lab.a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    lab.a.setsockopt_int(c, IPPROTO_IP, IP_FREEBIND, 0).unwrap();
    assert_eq!(lab.a.bind(c, foreign), Err(Errno::EADDRNOTAVAIL), "IP_FREEBIND=0 refuses");
    lab.a.setsockopt_int(c, IPPROTO_IP, IP_FREEBIND, 2).unwrap();
    assert_eq!(lab.a.getsockopt_int(c, IPPROTO_IP, IP_FREEBIND), Ok(1));
    assert_eq!(lab.a.bind(c, foreign), Ok(()));
    let d = lab.a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    lab.a.core.net.sysctl.set_by_name("net.ipv4.ip_nonlocal_bind", "1").unwrap();
    assert_eq!(lab.a.bind(d, SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 8), 9001)), Ok(()));
}

/// A connected pair on the lab, then `data` from A to B drained by B.
fn transfer(lab: &Lab, c: i32, s: i32, data: &[u8]) {
    let (mut sent, mut got) = (0, Vec::new());
    assert!(lab.run_until(Duration::from_secs(60), || {
        while sent < data.len() {
            match lab.a.send(c, Some(&data[sent..]), data.len() - sent, 0) {
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("{e}"),
            }
        }
        drain(&lab.b, s, &mut got).unwrap();
        got.len() == data.len()
    }));
    assert!(got == data);
}

#[test]
fn tcp_congestion_reno_is_selectable_and_halves_on_loss() {
    let lab = Lab::new(ms(5));
    let (c, s, _l) = lab.pair();
    let mut buf = [0u8; 16];
    assert_eq!(lab.a.getsockopt(c, SOL_TCP, TCP_CONGESTION, &mut buf), Ok(16));
    assert_eq!(&buf[..6], b"cubic\0");
    assert_eq!(lab.a.setsockopt(c, SOL_TCP, TCP_CONGESTION, b"bbr-ish"), Err(Errno::ENOENT));
    assert_eq!(lab.a.setsockopt(c, SOL_TCP, TCP_CONGESTION, b""), Err(Errno::EINVAL));
    lab.a.setsockopt(c, SOL_TCP, TCP_CONGESTION, b"reno\0junk").unwrap();
    assert_eq!(lab.a.getsockopt(c, SOL_TCP, TCP_CONGESTION, &mut buf), Ok(16));
    assert_eq!(&buf[..5], b"reno\0");
    let mut n = 0;
    lab.drop_if(move |p| {
        if p.from_a && p.len > 0 {
            n += 1;
            return n == 30;
        }
        false
    });
    let mut cwnd_before = 0;
    let data = pattern(400_000, 1);
    let (mut sent, mut got, mut recovered) = (0, Vec::new(), None);
    assert!(lab.run_until(Duration::from_secs(60), || {
        let i = lab.a.tcp_info(c).unwrap();
        if recovered.is_none() && i.tcpi_ca_state == 3 {
            recovered = Some((cwnd_before, i.tcpi_snd_ssthresh));
        } else if recovered.is_none() {
            cwnd_before = i.tcpi_snd_cwnd;
        }
        while sent < data.len() {
            match lab.a.send(c, Some(&data[sent..]), data.len() - sent, 0) {
                Ok(k) => sent += k,
                Err(_) => break,
            }
        }
        drain(&lab.b, s, &mut got).unwrap();
        got.len() == data.len()
    }));
    let (cwnd, ssthresh) = recovered.expect("a loss recovery");
    // tcp_reno_ssthresh(): half the window (CUBIC would keep 717/1024 of it).
    assert!(ssthresh.abs_diff(cwnd / 2) <= 1, "reno ssthresh {ssthresh} for cwnd {cwnd}");
}

#[test]
fn tcp_user_timeout_aborts_an_unanswered_connection_early() {
    let lab = Lab::new(ms(1));
    let (c, _s, _l) = lab.pair();
    lab.a.setsockopt_int(c, SOL_TCP, TCP_USER_TIMEOUT, 3000).unwrap();
    assert_eq!(lab.a.getsockopt_int(c, SOL_TCP, TCP_USER_TIMEOUT), Ok(3000));
    assert_eq!(lab.a.setsockopt_int(c, SOL_TCP, TCP_USER_TIMEOUT, -1), Err(Errno::EINVAL));
    lab.drop_if(|_| true); // B is gone
    let t0 = lab.now();
    assert_eq!(lab.a.send(c, Some(b"hello"), 5, 0), Ok(5));
    assert!(lab.run_until(Duration::from_secs(60), || state(&lab.a, c) == TcpState::Close));
    let took = lab.now().saturating_since(t0);
    // Without it: tcp_retries2 = 15, about 15 minutes.
    assert!(took >= ms(3000) && took < ms(4000), "gave up after {took:?}");
    assert_eq!(lab.a.getsockopt_int(c, SOL_SOCKET, SO_ERROR), Ok(Errno::ETIMEDOUT as i32));
}

#[test]
fn notsent_lowat_gates_pollout() {
    let lab = Lab::new(ms(1));
    let (c, s, _l) = lab.pair();
    // B does not read: A's data stays unsent once B's window is full.
    lab.b.setsockopt_int(s, SOL_SOCKET, SO_RCVBUF, 4096).unwrap();
    lab.a.setsockopt_int(c, SOL_TCP, TCP_NOTSENT_LOWAT, 4000).unwrap();
    assert_eq!(lab.a.getsockopt_int(c, SOL_TCP, TCP_NOTSENT_LOWAT), Ok(4000));
    let chunk = vec![7u8; 100_000];
    let mut n = 0;
    while let Ok(k) = lab.a.send(c, Some(&chunk), chunk.len(), MSG_DONTWAIT) {
        n += k;
        lab.advance(ms(5));
    }
    assert!(n > 0);
    let unsent = lab.a.tcp_info(c).unwrap().tcpi_notsent_bytes;
    assert!(unsent >= 2000, "{unsent} unsent");
    let pollout = 0x4i16;
    let mut fds = [PollFd { fd: c, events: pollout, revents: 0 }];
    assert_eq!(lab.a.poll(&mut fds, Some(Duration::ZERO)), Ok(0), "no POLLOUT while 2 x unsent >= the low-water mark");
    // The send buffer is far from full: only the low-water mark held the writer back.
    lab.a.setsockopt_int(c, SOL_TCP, TCP_NOTSENT_LOWAT, 1 << 20).unwrap();
    let mut fds = [PollFd { fd: c, events: pollout, revents: 0 }];
    assert_eq!(lab.a.poll(&mut fds, Some(Duration::ZERO)), Ok(1));
    assert!(fds[0].revents & pollout != 0);
    assert!(lab.a.send(c, Some(&chunk), chunk.len(), MSG_DONTWAIT).is_ok(), "and send goes on");
}

#[test]
fn defer_accept_waits_for_data() {
    let lab = Lab::new(ms(1));
    let l = lab.listen(80, 4);
    lab.b.setsockopt_int(l, SOL_TCP, TCP_DEFER_ACCEPT, 10).unwrap();
    assert_eq!(lab.b.getsockopt_int(l, SOL_TCP, TCP_DEFER_ACCEPT), Ok(15), "rounded up to SYN-ACK retransmissions");
    let c = lab.connect_start(80);
    lab.advance(ms(100));
    assert_eq!(state(&lab.a, c), TcpState::Established, "the client completed its handshake");
    assert_eq!(lab.b.accept4(l, SOCK_NONBLOCK).map(|x| x.0), Err(Errno::EAGAIN), "a bare ACK is not accepted");
    assert_eq!(lab.b.core.net.mib.get(LinuxMib::TCPDeferAcceptDrop), 1);
    assert_eq!(lab.a.send(c, Some(b"GET /"), 5, 0), Ok(5));
    lab.advance(ms(100));
    let (s, _) = lab.b.accept4(l, SOCK_NONBLOCK).expect("data makes it acceptable");
    let mut got = Vec::new();
    drain(&lab.b, s, &mut got).unwrap();
    assert_eq!(got, b"GET /");
}

#[test]
fn keepalive_follows_keepidle_changes() {
    let lab = Lab::new(ms(1));
    let (c, _s, _l) = lab.pair();
    lab.a.setsockopt_int(c, SOL_SOCKET, SO_KEEPALIVE, 1).unwrap();
    lab.clear_log();
    lab.advance(Duration::from_secs(10));
    // Shorten the idle time while keepalive is on: the running timer follows (5 s from the
    // last data, already past: a probe at once), instead of waiting out the 7200 s default.
    lab.a.setsockopt_int(c, SOL_TCP, TCP_KEEPIDLE, 5).unwrap();
    lab.a.setsockopt_int(c, SOL_TCP, TCP_KEEPINTVL, 1).unwrap();
    lab.advance(Duration::from_secs(1));
    assert!(lab.a.core.net.mib.get(LinuxMib::TCPKeepAlive) >= 1, "a keepalive probe went out");
    assert!(lab.log().iter().any(|p| p.from_a && p.len == 0 && p.flags == ACK), "the probe is on the wire");
}

#[test]
fn slow_start_after_idle_restarts_the_window() {
    for (sysctl, restarts) in [("1", true), ("0", false)] {
        let lab = Lab::new(ms(5));
        lab.a.core.net.sysctl.set_by_name("net.ipv4.tcp_slow_start_after_idle", sysctl).unwrap();
        let (c, s, _l) = lab.pair();
        transfer(&lab, c, s, &pattern(2 << 20, 2));
        lab.advance(ms(500));
        let big = lab.a.tcp_info(c).unwrap().tcpi_snd_cwnd;
        assert!(big > 20, "{big}");
        lab.advance(Duration::from_secs(5)); // idle for many RTOs
        assert_eq!(lab.a.send(c, Some(b"x"), 1, 0), Ok(1));
        let after = lab.a.tcp_info(c).unwrap().tcpi_snd_cwnd;
        if restarts {
            assert_eq!(after, 10, "restarted at the initial window (was {big})");
        } else {
            assert_eq!(after, big, "kept");
        }
    }
}

#[test]
fn tcp_congestion_control_sysctl_sets_the_default() {
    let lab = Lab::new(ms(1));
    lab.a.core.net.sysctl.set_by_name("net.ipv4.tcp_congestion_control", "reno").unwrap();
    assert_eq!(lab.a.core.net.sysctl.get_by_name("net.ipv4.tcp_congestion_control").unwrap(), "reno");
    assert_eq!(lab.a.core.net.sysctl.set_by_name("net.ipv4.tcp_congestion_control", "vegas"), Err(Errno::ENOENT));
    let c = lab.a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(lab.a.getsockopt(c, SOL_TCP, TCP_CONGESTION, &mut buf), Ok(16));
    assert_eq!(&buf[..5], b"reno\0");
}

#[test]
fn so_reuseport_spreads_connections_over_listeners() {
    let lab = Lab::new(ms(1));
    let mk = |reuseport: bool| {
        let l = lab.b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
        lab.b.setsockopt_int(l, SOL_SOCKET, SO_REUSEPORT, reuseport as i32).unwrap();
        (l, lab.b.bind(l, SocketAddrV4::new(ADDR_B, 80)))
    };
    let (l1, r1) = mk(true);
    let (l2, r2) = mk(true);
    assert_eq!((r1, r2), (Ok(()), Ok(())), "both SO_REUSEPORT sockets bind the port");
    assert_eq!(lab.b.getsockopt_int(l1, SOL_SOCKET, SO_REUSEPORT), Ok(1));
    let (_l3, r3) = mk(false);
    assert_eq!(r3, Err(Errno::EADDRINUSE), "a socket without SO_REUSEPORT does not share it");
    lab.b.listen(l1, 64).unwrap();
    lab.b.listen(l2, 64).unwrap();
    let clients: Vec<i32> = (0..40).map(|_| lab.connect_start(80)).collect();
    lab.advance(ms(20));
    let accept_all = |l: i32| {
        let mut v = Vec::new();
        while let Ok((s, peer)) = lab.b.accept4(l, SOCK_NONBLOCK) {
            v.push((s, peer));
        }
        v
    };
    let (a1, a2) = (accept_all(l1), accept_all(l2));
    assert_eq!(a1.len() + a2.len(), 40, "every connection accepted once");
    assert!(a1.len() >= 5 && a2.len() >= 5, "hashed over both listeners: {} / {}", a1.len(), a2.len());
    // Each connection carries its data to the child of the listener that took it.
    for &c in &clients {
        assert_eq!(lab.a.send(c, Some(b"hi"), 2, 0), Ok(2));
    }
    lab.advance(ms(20));
    for (s, _) in a1.iter().chain(&a2) {
        let mut got = Vec::new();
        drain(&lab.b, *s, &mut got).unwrap();
        assert_eq!(got, b"hi");
    }
    // Closing one listener leaves the other serving the port.
    lab.b.close(l1).unwrap();
    let c = lab.connect_start(80);
    lab.advance(ms(20));
    assert_eq!(state(&lab.a, c), TcpState::Established);
    assert!(lab.b.accept4(l2, SOCK_NONBLOCK).is_ok());
}
