//! The fd-level call surface: port and fd lifetime, epoll, dup, pipes, readv/writev, poll,
//! splice — each pinned against what Linux does.

use std::net::SocketAddrV4;
use utcp::api::{ADDR_A, ADDR_B};
use utcp::netdev::memlink::LinkConfig;
use utcp::sim::SimNet;
use utcp::syscall::*;
use utcp::time::Duration;
use utcp::Errno;

/// A connected pair: (listener on B, client fd on A, accepted fd on B).
fn connected(net: &SimNet, port: u16) -> (i32, i32, i32) {
    let (a, b) = (&net.a.stack, &net.b.stack);
    let l = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    b.bind(l, SocketAddrV4::new(ADDR_B, port)).unwrap();
    b.listen(l, 16).unwrap();
    let c = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    assert_eq!(a.connect(c, SocketAddrV4::new(ADDR_B, port)), Err(Errno::EINPROGRESS));
    net.settle();
    let (s, peer) = b.accept4(l, SOCK_NONBLOCK).expect("accepted");
    assert_eq!(*peer.ip(), ADDR_A);
    (l, c, s)
}

#[test]
fn bind_close_without_listen_frees_the_port() {
    let net = SimNet::new(LinkConfig::default());
    let b = &net.b.stack;
    for _ in 0..3 {
        let s = b.socket(AF_INET, SOCK_STREAM, 0).unwrap();
        b.bind(s, SocketAddrV4::new(ADDR_B, 8080)).unwrap();
        b.close(s).unwrap();
    }
    // bind(0) then close gives the ephemeral port back too: a range of one port serves forever.
    b.core.net.sysctl.set_by_name("net.ipv4.ip_local_port_range", "40000 40000").unwrap();
    for _ in 0..3 {
        let s = b.socket(AF_INET, SOCK_STREAM, 0).unwrap();
        b.bind(s, SocketAddrV4::new(ADDR_B, 0)).unwrap();
        assert_eq!(b.getsockname(s).unwrap().port(), 40000);
        b.close(s).unwrap();
    }
    // And the port is really held while bound.
    let s = b.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    b.bind(s, SocketAddrV4::new(ADDR_B, 8080)).unwrap();
    let t = b.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(b.bind(t, SocketAddrV4::new(ADDR_B, 8080)), Err(Errno::EADDRINUSE));
    b.close(s).unwrap();
    assert_eq!(b.bind(t, SocketAddrV4::new(ADDR_B, 8080)), Ok(()));
    b.listen(t, 4).unwrap();
    b.close(t).unwrap();
    let u = b.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(b.bind(u, SocketAddrV4::new(ADDR_B, 8080)), Ok(()));
    net.advance(Duration::from_millis(1));
}

const POLLIN: i16 = 0x1;
const POLLOUT: i16 = 0x4;
const POLLERR: i16 = 0x8;
const POLLHUP: i16 = 0x10;

fn poll1(st: &utcp::Stack, fd: i32, events: i16) -> i16 {
    let mut p = [PollFd { fd, events, revents: 0 }];
    st.poll(&mut p, Some(Duration::ZERO)).unwrap();
    p[0].revents
}

/// Waits (real time, bounded) until `f` holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !f() {
        assert!(std::time::Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[test]
fn last_close_leaves_epoll_interest_lists() {
    let net = SimNet::new(LinkConfig::default());
    let a = &net.a.stack;
    let ep = a.epoll_create1(0).unwrap();
    let s = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    a.epoll_ctl(ep, 1, s, 0x4, 7).unwrap();
    assert_eq!(a.epoll_wait(ep, 8, Some(Duration::ZERO)).unwrap().len(), 1);
    // A dup keeps the file open: the item stays (registered under the closed fd number).
    let d = a.dup(s).unwrap();
    a.close(s).unwrap();
    assert_eq!(a.epoll_wait(ep, 8, Some(Duration::ZERO)).unwrap().iter().map(|e| e.1).collect::<Vec<_>>(), vec![7]);
    assert_eq!(a.epoll_ctl(ep, 2, s, 0, 0), Err(Errno::EBADF));
    // The last close removes it.
    a.close(d).unwrap();
    assert!(a.epoll_wait(ep, 8, Some(Duration::ZERO)).unwrap().is_empty());
    // A new file at the same fd number is not the old item.
    let s2 = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(s2, s);
    assert!(a.epoll_wait(ep, 8, Some(Duration::ZERO)).unwrap().is_empty());
    assert_eq!(a.epoll_ctl(ep, 2, s2, 0, 0), Err(Errno::ENOENT));
    // Pipes are watched too.
    let (r, w) = a.pipe().unwrap();
    a.epoll_ctl(ep, 1, r, 0x1, 9).unwrap();
    assert!(a.epoll_wait(ep, 8, Some(Duration::ZERO)).unwrap().is_empty());
    a.write(w, Some(b"x"), 1).unwrap();
    assert_eq!(a.epoll_wait(ep, 8, Some(Duration::ZERO)).unwrap(), vec![(0x1, 9)]);
    a.close(r).unwrap();
    assert!(a.epoll_wait(ep, 8, Some(Duration::ZERO)).unwrap().is_empty());
}

#[test]
fn accept4_emfile_leaves_the_connection_queued() {
    let net = SimNet::new(LinkConfig::default());
    let (a, b) = (&net.a.stack, &net.b.stack);
    assert_eq!(b.fds().nofile(), 1024);
    let l = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    b.bind(l, SocketAddrV4::new(ADDR_B, 80)).unwrap();
    b.listen(l, 16).unwrap();
    b.set_rlimit_nofile(8).unwrap();
    let mut fill = Vec::new();
    while let Ok(fd) = b.socket(AF_INET, SOCK_STREAM, 0) {
        fill.push(fd);
    }
    assert_eq!(b.socket(AF_INET, SOCK_STREAM, 0), Err(Errno::EMFILE));
    assert_eq!(*fill.last().unwrap(), 7);
    let c = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    let _ = a.connect(c, SocketAddrV4::new(ADDR_B, 80));
    net.settle();
    a.send(c, Some(b"hello"), 5, 0).unwrap();
    net.settle();
    assert_eq!(b.accept4(l, 0), Err(Errno::EMFILE));
    assert_eq!(b.accept4(l, 0), Err(Errno::EMFILE));
    // Still queued: the listener stays readable.
    assert_eq!(poll1(b, l, POLLIN), POLLIN);
    b.close(fill.pop().unwrap()).unwrap();
    let (s, peer) = b.accept4(l, 0).unwrap();
    assert_eq!(peer, a.getsockname(c).unwrap());
    let mut buf = [0u8; 16];
    assert_eq!(b.recv(s, Some(&mut buf), 16, 0), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    // EBADF and EINVAL come first, as in __sys_accept4.
    assert_eq!(b.accept4(99, 0), Err(Errno::EBADF));
    assert_eq!(b.accept4(l, 1), Err(Errno::EINVAL));
    assert_eq!(b.accept4(l, 0), Err(Errno::EMFILE));
}

#[test]
fn dup_dup2_dup3_fcntl() {
    let net = SimNet::new(LinkConfig::default());
    let (l, c, s) = connected(&net, 80);
    let (a, b) = (&net.a.stack, &net.b.stack);
    let _ = l;
    let d = a.dup(c).unwrap();
    assert_eq!(a.fcntl(d, F_GETFD, 0), Ok(0));
    let e = a.fcntl(c, F_DUPFD_CLOEXEC, 20).unwrap();
    assert_eq!(e, 20);
    assert_eq!(a.fcntl(e, F_GETFD, 0), Ok(FD_CLOEXEC));
    assert_eq!(a.fcntl(c, F_GETFD, 0), Ok(0), "FD_CLOEXEC is per fd");
    a.fcntl(c, F_SETFD, FD_CLOEXEC).unwrap();
    assert_eq!(a.fcntl(c, F_GETFD, 0), Ok(FD_CLOEXEC));
    assert_eq!(a.fcntl(d, F_GETFD, 0), Ok(0));
    // File status flags are shared.
    a.fcntl(d, F_SETFL, 0).unwrap();
    assert_eq!(a.fcntl(c, F_GETFL, 0).unwrap() & O_NONBLOCK, 0);
    a.fcntl(d, F_SETFL, O_NONBLOCK).unwrap();
    assert_ne!(a.fcntl(c, F_GETFL, 0).unwrap() & O_NONBLOCK, 0);
    assert_eq!(a.fcntl(c, F_DUPFD, -1), Err(Errno::EINVAL));
    assert_eq!(a.fcntl(c, F_DUPFD, 1024), Err(Errno::EINVAL));
    assert_eq!(a.fcntl(c, 9999, 0), Err(Errno::EINVAL));
    assert_eq!(a.fcntl(99, F_GETFD, 0), Err(Errno::EBADF));
    assert_eq!(a.dup(99), Err(Errno::EBADF));
    assert_eq!(a.dup2(c, c), Ok(c));
    assert_eq!(a.dup2(99, 99), Err(Errno::EBADF));
    assert_eq!(a.dup3(c, c, 0), Err(Errno::EINVAL));
    assert_eq!(a.dup3(c, 30, 1), Err(Errno::EINVAL));
    assert_eq!(a.dup3(c, -1, 0), Err(Errno::EBADF));
    assert_eq!(a.dup3(c, 1024, 0), Err(Errno::EBADF));
    assert_eq!(a.dup3(99, 30, 0), Err(Errno::EBADF));
    assert_eq!(a.dup3(c, 30, O_CLOEXEC), Ok(30));
    assert_eq!(a.fcntl(30, F_GETFD, 0), Ok(FD_CLOEXEC));
    // dup2 onto an open fd closes what it referred to (here a socket of its own).
    let x = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(a.dup2(c, x), Ok(x));
    // The socket lives while any fd refers to it.
    for fd in [c, d, e, 30] {
        a.close(fd).unwrap();
        net.settle();
        assert_eq!(a.send(x, Some(b"ab"), 2, 0), Ok(2), "after closing {fd}");
    }
    net.settle();
    let mut buf = [0u8; 16];
    assert_eq!(b.recv(s, Some(&mut buf), 16, 0), Ok(8));
    a.close(x).unwrap();
    net.settle();
    assert_eq!(b.recv(s, Some(&mut buf), 16, 0), Ok(0), "the last close sent the FIN");
}

#[test]
fn pipes_block_hang_up_and_poll_like_linux() {
    let net = SimNet::new(LinkConfig::default());
    let a = net.a.stack.clone();
    let (r, w) = a.pipe().unwrap();
    assert_eq!(a.fcntl(r, F_GETFL, 0), Ok(0));
    assert_eq!(a.fcntl(w, F_GETFL, 0), Ok(1));
    assert_eq!(poll1(&a, r, POLLIN | POLLOUT), 0);
    assert_eq!(poll1(&a, w, POLLIN | POLLOUT), POLLOUT);
    assert_eq!(a.write(w, Some(b"abc"), 3), Ok(3));
    assert_eq!(poll1(&a, r, POLLIN), POLLIN);
    // A buffer shorter than claimed faults and leaves the bytes in the pipe.
    let mut short = [0u8; 1];
    assert_eq!(a.read(r, Some(&mut short), 3), Err(Errno::EFAULT));
    assert_eq!(a.read(r, None, 3), Err(Errno::EFAULT));
    assert_eq!(a.read(r, Some(&mut short), 0), Ok(0));
    // readv scatters.
    let (mut b1, mut b2) = ([0u8; 2], [0u8; 8]);
    let mut iov = [IoVec { base: Some(&mut b1), len: 2 }, IoVec { base: Some(&mut b2), len: 8 }];
    assert_eq!(a.readv(r, &mut iov), Ok(3));
    assert_eq!((&b1, &b2[..1]), (b"ab", &b"c"[..]));
    // A blocking read waits for data.
    let a2 = a.clone();
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 8];
        let n = a2.read(r, Some(&mut buf), 8).unwrap();
        buf[..n].to_vec()
    });
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(!t.is_finished(), "read blocks on an empty pipe");
    assert_eq!(a.writev(w, &[(Some(b"xy"), 2), (Some(b"z"), 1)]), Ok(3));
    assert_eq!(t.join().unwrap(), b"xyz");
    // A blocking write waits for room (64 KiB).
    let big = vec![7u8; 65536];
    assert_eq!(a.write(w, Some(&big), 65536), Ok(65536));
    assert_eq!(poll1(&a, w, POLLOUT), 0);
    a.fcntl(w, F_SETFL, O_NONBLOCK).unwrap();
    assert_eq!(a.write(w, Some(b"q"), 1), Err(Errno::EAGAIN));
    a.fcntl(w, F_SETFL, 0).unwrap();
    let a2 = a.clone();
    let t = std::thread::spawn(move || a2.write(w, Some(b"last"), 4));
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(!t.is_finished(), "write blocks on a full pipe");
    let mut buf = vec![0u8; 65536];
    assert_eq!(a.read(r, Some(&mut buf), 65536), Ok(65536));
    assert_eq!(t.join().unwrap(), Ok(4));
    // Hang-up: EOF for the reader, POLLHUP (with POLLIN while data is left).
    a.close(w).unwrap();
    assert_eq!(poll1(&a, r, POLLIN), POLLIN | POLLHUP);
    assert_eq!(a.read(r, Some(&mut buf), 10), Ok(4));
    assert_eq!(poll1(&a, r, POLLIN), POLLHUP);
    assert_eq!(a.read(r, Some(&mut buf), 10), Ok(0));
    // No reader: EPIPE, POLLERR.
    let (r, w) = a.pipe().unwrap();
    a.close(r).unwrap();
    assert_eq!(poll1(&a, w, POLLOUT), POLLOUT | POLLERR);
    assert_eq!(a.write(w, Some(b"x"), 1), Err(Errno::EPIPE));
    assert_eq!(a.write(w, Some(b""), 0), Ok(0));
    assert_eq!(a.read(w, Some(&mut buf), 1), Err(Errno::EBADF));
    // A blocked reader is woken by the writer's close.
    let (r, w) = a.pipe().unwrap();
    let a2 = a.clone();
    let t = std::thread::spawn(move || a2.read(r, Some(&mut [0u8; 4]), 4));
    std::thread::sleep(std::time::Duration::from_millis(20));
    a.close(w).unwrap();
    assert_eq!(t.join().unwrap(), Ok(0));
    assert_eq!(a.pipe2(1), Err(Errno::EINVAL));
}

#[test]
fn readv_writev_on_sockets() {
    let net = SimNet::new(LinkConfig::default());
    let (_l, c, s) = connected(&net, 80);
    let (a, b) = (&net.a.stack, &net.b.stack);
    assert_eq!(a.writev(c, &[(Some(b"hel"), 3), (None, 0), (Some(b"lo"), 2)]), Ok(5));
    net.settle();
    let (mut b1, mut b2) = ([0u8; 4], [0u8; 4]);
    let mut iov = [IoVec { base: Some(&mut b1), len: 4 }, IoVec { base: Some(&mut b2), len: 4 }];
    assert_eq!(b.readv(s, &mut iov), Ok(5));
    assert_eq!((&b1, &b2[..1]), (b"hell", &b"o"[..]));
    let mut none: [IoVec; 0] = [];
    assert_eq!(b.readv(s, &mut none), Ok(0), "sock_read_iter: nothing asked, 0");
    assert_eq!(b.read(_l, None, 0), Ok(0));
    let mut many: Vec<IoVec> = (0..1025).map(|_| IoVec { base: None, len: 0 }).collect();
    assert_eq!(b.readv(s, &mut many), Err(Errno::EINVAL));
    let many: Vec<(Option<&[u8]>, usize)> = (0..1025).map(|_| (None, 0)).collect();
    assert_eq!(a.writev(c, &many), Err(Errno::EINVAL));
}

#[test]
fn poll_and_epoll_wait_sleep_until_an_event_or_the_timeout() {
    let net = SimNet::new(LinkConfig::default());
    let (_l, c, s) = connected(&net, 80);
    let (a, b) = (net.a.stack.clone(), net.b.stack.clone());
    // Woken by data.
    let b2 = b.clone();
    let t = std::thread::spawn(move || {
        let mut p = [PollFd { fd: s, events: POLLIN, revents: 0 }];
        let n = b2.poll(&mut p, None).unwrap();
        (n, p[0].revents)
    });
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(!t.is_finished(), "poll sleeps with nothing to report");
    a.send(c, Some(b"x"), 1, 0).unwrap();
    net.settle();
    assert_eq!(t.join().unwrap(), (1, POLLIN));
    let mut buf = [0u8; 4];
    b.recv(s, Some(&mut buf), 4, 0).unwrap();
    // A timeout elapses when the virtual clock passes it, not before.
    let b2 = b.clone();
    let start = net.now();
    let t = std::thread::spawn(move || {
        let mut p = [PollFd { fd: s, events: POLLIN, revents: 0 }];
        let n = b2.poll(&mut p, Some(Duration::from_millis(500))).unwrap();
        (n, b2.core.clock.now())
    });
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(!t.is_finished());
    net.advance(Duration::from_millis(400));
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(!t.is_finished(), "400 ms of a 500 ms timeout");
    net.advance(Duration::from_millis(200));
    let (n, end) = t.join().unwrap();
    assert_eq!(n, 0);
    assert!(end - start >= Duration::from_millis(500));
    // epoll_wait likewise.
    let ep = b.epoll_create1(0).unwrap();
    b.epoll_ctl(ep, 1, s, 0x1, 5).unwrap();
    let b2 = b.clone();
    let t = std::thread::spawn(move || b2.epoll_wait(ep, 4, Some(Duration::from_secs(10))).unwrap());
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(!t.is_finished());
    a.send(c, Some(b"y"), 1, 0).unwrap();
    net.settle();
    assert_eq!(t.join().unwrap(), vec![(0x1, 5)]);
    // A pipe wakes poll too.
    let (r, w) = b.pipe().unwrap();
    let b2 = b.clone();
    let t = std::thread::spawn(move || {
        let mut p = [PollFd { fd: r, events: POLLIN, revents: 0 }, PollFd { fd: -1, events: 0, revents: 0 }];
        b2.poll(&mut p, None).map(|n| (n, p[0].revents))
    });
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(!t.is_finished());
    b.write(w, Some(b"z"), 1).unwrap();
    assert_eq!(t.join().unwrap(), Ok((1, POLLIN)));
    let mut p = [PollFd { fd: 99, events: POLLIN, revents: 0 }];
    assert_eq!(b.poll(&mut p, None), Ok(1));
    assert_eq!(p[0].revents, 0x20, "POLLNVAL");
}

#[test]
fn splice_blocks_until_data_and_returns_0_only_at_eof() {
    let net = SimNet::new(LinkConfig::default());
    let (l, c, s) = connected(&net, 80);
    let (a, b) = (net.a.stack.clone(), net.b.stack.clone());
    let (r, w) = b.pipe().unwrap();
    b.fcntl(s, F_SETFL, 0).unwrap();
    assert_eq!(b.splice(s, w, 0, 0), Ok(0));
    assert_eq!(b.splice(s, r, 10, 0), Err(Errno::EBADF));
    assert_eq!(b.splice(l, w, 10, 0), Err(Errno::ENOTCONN));
    let b2 = b.clone();
    let t = std::thread::spawn(move || b2.splice(s, w, 100, 2));
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(!t.is_finished(), "splice from an empty socket blocks (SPLICE_F_NONBLOCK is for the pipe)");
    a.send(c, Some(b"data"), 4, 0).unwrap();
    net.settle();
    assert_eq!(t.join().unwrap(), Ok(4));
    let mut buf = [0u8; 8];
    assert_eq!(b.read(r, Some(&mut buf), 8), Ok(4));
    // O_NONBLOCK on the socket: EAGAIN.
    b.fcntl(s, F_SETFL, O_NONBLOCK).unwrap();
    assert_eq!(b.splice(s, w, 100, 0), Err(Errno::EAGAIN));
    // SO_RCVTIMEO: EAGAIN once the (virtual) timeout has passed.
    b.fcntl(s, F_SETFL, 0).unwrap();
    let mut tv = [0u8; 16];
    tv[8..].copy_from_slice(&200_000i64.to_ne_bytes());
    b.setsockopt(s, SOL_SOCKET, opt::SO_RCVTIMEO, &tv).unwrap();
    let b2 = b.clone();
    let t = std::thread::spawn(move || b2.splice(s, w, 100, 0));
    let sk = b.sockfd_lookup(s).unwrap().sk.clone();
    eventually("splice parks", || sk.sleeper().is_some());
    net.advance(Duration::from_millis(300));
    sk.kick_sleepers();
    assert_eq!(t.join().unwrap(), Err(Errno::EAGAIN));
    // EOF: 0, and again 0 (no underflow once the FIN is consumed).
    a.shutdown(c, SHUT_WR).unwrap();
    net.settle();
    assert_eq!(b.splice(s, w, 100, 0), Ok(0));
    assert_eq!(b.recv(s, Some(&mut buf), 8, 0), Ok(0));
    assert_eq!(b.splice(s, w, 100, 0), Ok(0));
}

#[test]
fn huge_socket_timeouts_mean_forever() {
    let net = SimNet::new(LinkConfig::default());
    let a = &net.a.stack;
    let s = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    for sec in [i64::MAX, i64::MAX / 250 - 1, 1 << 62] {
        let mut tv = [0u8; 16];
        tv[..8].copy_from_slice(&sec.to_ne_bytes());
        tv[8..].copy_from_slice(&999_999i64.to_ne_bytes());
        for name in [opt::SO_RCVTIMEO, opt::SO_SNDTIMEO] {
            a.setsockopt(s, SOL_SOCKET, name, &tv).unwrap();
            let mut out = [1u8; 16];
            assert_eq!(a.getsockopt(s, SOL_SOCKET, name, &mut out), Ok(16));
            assert_eq!(out, [0u8; 16], "MAX_SCHEDULE_TIMEOUT reads back as 0");
        }
    }
    // The largest representable one is kept.
    let mut tv = [0u8; 16];
    tv[..8].copy_from_slice(&(i64::MAX / 250 - 2).to_ne_bytes());
    a.setsockopt(s, SOL_SOCKET, opt::SO_RCVTIMEO, &tv).unwrap();
    let mut out = [0u8; 16];
    a.getsockopt(s, SOL_SOCKET, opt::SO_RCVTIMEO, &mut out).unwrap();
    assert_ne!(out, [0u8; 16]);
}

#[test]
fn ephemeral_ports_are_shared_across_destinations_then_eaddrnotavail() {
    let net = SimNet::new(LinkConfig::default());
    let (a, b) = (&net.a.stack, &net.b.stack);
    a.core.net.sysctl.set_by_name("net.ipv4.ip_local_port_range", "40000 40003").unwrap();
    for port in [80, 81] {
        let l = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
        b.bind(l, SocketAddrV4::new(ADDR_B, port)).unwrap();
        b.listen(l, 16).unwrap();
    }
    let mut tuples = std::collections::HashSet::new();
    for i in 0..8 {
        let dport = 80 + (i % 2);
        let c = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
        assert_eq!(a.connect(c, SocketAddrV4::new(ADDR_B, dport)), Err(Errno::EINPROGRESS), "connection {i}");
        let sport = a.getsockname(c).unwrap().port();
        assert!((40000..=40003).contains(&sport));
        assert!(tuples.insert((sport, dport)));
    }
    net.settle();
    // The range is exhausted for both destinations: EADDRNOTAVAIL, as __inet_hash_connect.
    for dport in [80, 81] {
        let c = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
        assert_eq!(a.connect(c, SocketAddrV4::new(ADDR_B, dport)), Err(Errno::EADDRNOTAVAIL));
        a.close(c).unwrap();
    }
    // A third destination still has every port.
    let c = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    assert_eq!(a.connect(c, SocketAddrV4::new(ADDR_B, 82)), Err(Errno::EINPROGRESS));
    // bind(0) wants a port nobody holds: EADDRINUSE.
    let s = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(a.bind(s, SocketAddrV4::new(ADDR_A, 0)), Err(Errno::EADDRINUSE));
}

#[test]
fn a_port_bound_with_bind_0_is_exclusive() {
    let net = SimNet::new(LinkConfig::default());
    let (a, b) = (&net.a.stack, &net.b.stack);
    a.core.net.sysctl.set_by_name("net.ipv4.ip_local_port_range", "40000 40001").unwrap();
    let l = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    b.bind(l, SocketAddrV4::new(ADDR_B, 80)).unwrap();
    b.listen(l, 16).unwrap();
    let s = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    a.bind(s, SocketAddrV4::new(ADDR_A, 0)).unwrap();
    let bound = a.getsockname(s).unwrap().port();
    // connect() never picks the port bind() took.
    let c = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    assert_eq!(a.connect(c, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::EINPROGRESS));
    assert_ne!(a.getsockname(c).unwrap().port(), bound);
    let c2 = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    assert_eq!(a.connect(c2, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::EADDRNOTAVAIL));
    // The bound socket connects through its own port.
    assert_eq!(a.connect(s, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::EINPROGRESS));
    assert_eq!(a.getsockname(s).unwrap().port(), bound);
}

#[test]
fn writev_builds_one_segment_across_iovecs() {
    let net = SimNet::new(LinkConfig::default());
    let (_l, c, s) = connected(&net, 80);
    let (a, b) = (&net.a.stack, &net.b.stack);
    let out0 = a.tcp_info(c).unwrap().tcpi_data_segs_out;
    assert_eq!(a.writev(c, &[(Some(&[1u8; 10]), 10), (Some(&[2u8; 20]), 20)]), Ok(30));
    net.settle();
    assert_eq!(a.tcp_info(c).unwrap().tcpi_data_segs_out - out0, 1, "one 30-byte segment, as Linux");
    // A fault in a later iovec still sends what came before it.
    assert_eq!(a.sendmsg(c, &[(Some(&[3u8; 5]), 5), (None, 7)], 0), Ok(5));
    assert_eq!(a.sendmsg(c, &[(None, 7), (Some(&[3u8; 5]), 5)], 0), Err(Errno::EFAULT));
    net.settle();
    let mut buf = [0u8; 64];
    assert_eq!(b.recv(s, Some(&mut buf), 64, 0), Ok(35));
    assert_eq!(&buf[..11], &[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2]);
}
