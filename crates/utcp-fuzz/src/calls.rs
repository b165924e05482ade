//! The whole fd-level call surface with arbitrary arguments: sockets, socket options at any
//! level/name/length, ioctl, fcntl, poll, epoll, pipes, splice, dup, readv/writev, on two
//! stacks joined by a wire, with packet delivery and virtual time interleaved. Every call is
//! made non-blocking (O_NONBLOCK forced on every file, MSG_DONTWAIT on every send/recv, zero
//! timeouts), so nothing waits. No program of calls may panic.

use crate::input::Input;
use std::net::{Ipv4Addr, SocketAddrV4};
use utcp::api::{ADDR_A, ADDR_B};
use utcp::netdev::memlink::LinkConfig;
use utcp::sim::SimNet;
use utcp::syscall::*;
use utcp::tcp::recvmsg::MSG_DONTWAIT;
use utcp::time::Duration;

/// One call, with its arguments (fds, lengths, flags, option values as given).
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum Call {
    Socket(i32, i32, i32),
    Bind(i32, u8, u16),
    Listen(i32, i32),
    Accept4(i32, i32),
    Connect(i32, u8, u16),
    Send(i32, usize, usize, i32),
    Sendmsg(i32, Vec<(usize, usize)>, i32),
    Recv(i32, usize, usize, i32),
    Recvfrom(i32, usize, usize, i32, Option<(usize, u32)>),
    Recvmsg(i32, Vec<(usize, usize)>, i32, usize, usize, u32),
    Shutdown(i32, i32),
    Close(i32),
    Setsockopt(i32, i32, i32, Vec<u8>),
    Getsockopt(i32, i32, i32, usize),
    Ioctl(i32, u64),
    Fcntl(i32, i32, i32),
    Poll(Vec<(i32, i16)>),
    EpollCreate(i32, bool),
    EpollCtl(i32, i32, i32, u32, u64),
    EpollWait(i32, i32),
    Pipe2(i32),
    Splice(i32, i32, usize, i32),
    Dup(i32),
    Dup2(i32, i32),
    Dup3(i32, i32, i32),
    Read(i32, usize, usize),
    Write(i32, usize, usize),
    Readv(i32, Vec<(usize, usize)>),
    Writev(i32, Vec<(usize, usize)>),
    Names(i32),
    Rlimit(usize),
    Settle,
    Advance(u64),
}

fn addr(a: u8, port: u16) -> SocketAddrV4 {
    let ip = match a {
        0 => ADDR_A,
        1 => ADDR_B,
        2 => Ipv4Addr::UNSPECIFIED,
        _ => Ipv4Addr::new(10, 9, 8, 7),
    };
    SocketAddrV4::new(ip, port)
}

/// Makes every open file non-blocking (F_SETFL is the only call that can clear it).
fn force_nonblock(st: &utcp::Stack) {
    for fd in 0..64 {
        if let Ok(fl) = st.fcntl(fd, F_GETFL, 0) {
            let _ = st.fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        }
    }
}

/// Makes call `c` on host B (`on_b`) or A; every call is non-blocking.
pub fn call(net: &SimNet, on_b: bool, c: &Call) {
    let st = if on_b { &net.b.stack } else { &net.a.stack };
    let dw = MSG_DONTWAIT;
    let mut bufs: Vec<Vec<u8>> = Vec::new();
    match c.clone() {
        Call::Socket(d, t, p) => {
            let _ = st.socket(d, t | SOCK_NONBLOCK, p);
        }
        Call::Bind(f, a, p) => {
            let _ = st.bind(f, addr(a, p));
        }
        Call::Listen(f, b) => {
            let _ = st.listen(f, b);
        }
        Call::Accept4(f, fl) => {
            let _ = st.accept4(f, fl | SOCK_NONBLOCK);
        }
        Call::Connect(f, a, p) => {
            let _ = st.connect(f, addr(a, p));
        }
        Call::Send(f, b, l, fl) => {
            let buf = vec![0x5au8; b];
            let _ = st.send(f, Some(&buf), l, fl | dw);
            let _ = st.sendto(f, if b % 2 == 0 { None } else { Some(&buf) }, l, fl | dw, None);
        }
        Call::Sendmsg(f, v, fl) => {
            bufs = v.iter().map(|(b, _)| vec![1u8; *b]).collect();
            let iov: Vec<(Option<&[u8]>, usize)> =
                bufs.iter().zip(&v).map(|(b, (n, l))| (if *n % 7 == 3 { None } else { Some(&b[..]) }, *l)).collect();
            let _ = st.sendmsg(f, &iov, fl | dw);
        }
        Call::Recv(f, b, l, fl) => {
            let mut buf = vec![0u8; b];
            let _ = st.recv(f, if b % 5 == 4 { None } else { Some(&mut buf) }, l, fl | dw);
        }
        Call::Recvfrom(f, b, l, fl, a) => {
            let mut buf = vec![0u8; b];
            match a {
                Some((n, mut al)) => {
                    let mut ab = vec![0u8; n];
                    let _ = st.recvfrom(f, Some(&mut buf), l, fl | dw, Some(&mut ab), Some(&mut al));
                }
                None => {
                    let _ = st.recvfrom(f, Some(&mut buf), l, fl | dw, None, None);
                }
            }
        }
        Call::Recvmsg(f, v, fl, c, cl, nl) => {
            bufs = v.iter().map(|(b, _)| vec![0u8; *b]).collect();
            let mut ctl = vec![0u8; c];
            let mut name = vec![0u8; 16];
            let iov = bufs
                .iter_mut()
                .zip(&v)
                .map(|(b, (n, l))| IoVec { base: if *n % 7 == 3 { None } else { Some(&mut b[..]) }, len: *l })
                .collect();
            let mut msg =
                MsgHdr { name: Some(&mut name), namelen: nl, iov, control: Some(&mut ctl), controllen: cl, flags: 0 };
            let _ = st.recvmsg(f, &mut msg, fl | dw);
        }
        Call::Shutdown(f, h) => {
            let _ = st.shutdown(f, h);
        }
        Call::Close(f) => {
            let _ = st.close(f);
        }
        Call::Setsockopt(f, l, n, mut v) => {
            // SO_LINGER with a time makes close() wait for the FIN's ACK even on a
            // non-blocking socket (as in Linux); nothing advances the virtual clock while this
            // single thread waits, so the fuzzer keeps the linger time 0 (abortive close).
            if l == SOL_SOCKET && n == opt::SO_LINGER && v.len() >= 8 {
                v[4..8].copy_from_slice(&0i32.to_ne_bytes());
            }
            let _ = st.setsockopt(f, l, n, &v);
        }
        Call::Getsockopt(f, l, n, o) => {
            let mut out = vec![0u8; o];
            let _ = st.getsockopt(f, l, n, &mut out);
        }
        Call::Ioctl(f, r) => {
            let _ = st.ioctl(f, r);
        }
        Call::Fcntl(f, cmd, a) => {
            let a = if cmd == F_SETFL { a | O_NONBLOCK } else { a };
            let _ = st.fcntl(f, cmd, a);
        }
        Call::Poll(v) => {
            let mut p: Vec<PollFd> = v.iter().map(|(fd, ev)| PollFd { fd: *fd, events: *ev, revents: 0 }).collect();
            let _ = st.poll(&mut p, Some(Duration::ZERO));
        }
        Call::EpollCreate(s, one) => {
            let _ = if one { st.epoll_create1(s) } else { st.epoll_create(s) };
        }
        Call::EpollCtl(e, o, f, ev, d) => {
            let _ = st.epoll_ctl(e, o, f, ev, d);
        }
        Call::EpollWait(e, m) => {
            let _ = st.epoll_wait(e, m, Some(Duration::ZERO));
        }
        Call::Pipe2(fl) => {
            let _ = st.pipe2(fl | O_NONBLOCK);
        }
        Call::Splice(i, o, l, fl) => {
            let _ = st.splice(i, o, l, fl);
        }
        Call::Dup(f) => {
            let _ = st.dup(f);
        }
        Call::Dup2(a, b) => {
            let _ = st.dup2(a, b);
        }
        Call::Dup3(a, b, fl) => {
            let _ = st.dup3(a, b, fl);
        }
        Call::Read(f, b, l) => {
            let mut buf = vec![0u8; b];
            let _ = st.read(f, if b % 5 == 4 { None } else { Some(&mut buf) }, l);
        }
        Call::Write(f, b, l) => {
            let buf = vec![3u8; b];
            let _ = st.write(f, if b % 5 == 4 { None } else { Some(&buf) }, l);
        }
        Call::Readv(f, v) => {
            bufs = v.iter().map(|(b, _)| vec![0u8; *b]).collect();
            let mut iov: Vec<IoVec> = bufs
                .iter_mut()
                .zip(&v)
                .map(|(b, (n, l))| IoVec { base: if *n % 7 == 3 { None } else { Some(&mut b[..]) }, len: *l })
                .collect();
            let _ = st.readv(f, &mut iov);
        }
        Call::Writev(f, v) => {
            bufs = v.iter().map(|(b, _)| vec![9u8; *b]).collect();
            let iov: Vec<(Option<&[u8]>, usize)> =
                bufs.iter().zip(&v).map(|(b, (n, l))| (if *n % 7 == 3 { None } else { Some(&b[..]) }, *l)).collect();
            let _ = st.writev(f, &iov);
        }
        Call::Names(f) => {
            let _ = st.getsockname(f);
            let _ = st.getpeername(f);
            let _ = st.tcp_info(f);
        }
        Call::Rlimit(n) => {
            let _ = st.set_rlimit_nofile(n.max(12));
        }
        Call::Settle => net.settle(),
        Call::Advance(us) => net.advance(Duration::from_micros(us)),
    }
    drop(bufs);
    force_nonblock(st);
}

/// Runs `prog` from a listener on B and a connection to it (so that data paths are reachable),
/// then closes every fd and lets the stacks time everything out.
pub fn program(prog: &[(bool, Call)]) {
    let net = SimNet::new(LinkConfig::default());
    let (a, b) = (&net.a.stack, &net.b.stack);
    let l = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).expect("socket");
    b.bind(l, SocketAddrV4::new(ADDR_B, 80)).expect("bind");
    b.listen(l, 4).expect("listen");
    let c = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).expect("socket");
    let _ = a.connect(c, SocketAddrV4::new(ADDR_B, 80));
    net.settle();
    let _ = b.accept4(l, SOCK_NONBLOCK);
    for (on_b, c) in prog {
        call(&net, *on_b, c);
    }
    net.advance(Duration::from_secs(5));
    for st in [a, b] {
        for fd in 0..64 {
            let _ = st.close(fd);
        }
    }
    net.advance(Duration::from_secs(300));
}

/// The libFuzzer entry: decodes up to 200 calls from `data` and runs them.
pub fn run(data: &[u8]) {
    let mut i = Input::new(data);
    let mut prog = Vec::new();
    while !i.is_empty() && prog.len() < 200 {
        let on_b = i.bool();
        prog.push((on_b, decode(&mut i)));
    }
    program(&prog);
}

fn fd(i: &mut Input<'_>) -> i32 {
    match i.u8() % 16 {
        0..=8 => 3 + (i.u8() % 3) as i32,
        9..=13 => 3 + (i.u8() % 9) as i32,
        14 => (i.u8() % 5) as i32 - 2,
        _ => i.u32() as i32,
    }
}

fn len(i: &mut Input<'_>) -> usize {
    match i.u8() % 9 {
        0..=5 => (i.u16() % 3000) as usize,
        6 => usize::MAX,
        7 => i.u64() as usize,
        _ => 60000 + (i.u16() % 10000) as usize,
    }
}

fn small(i: &mut Input<'_>, n: u16) -> usize {
    (i.u16() % n) as usize
}

fn flags(i: &mut Input<'_>) -> i32 {
    match i.u8() % 8 {
        0..=2 => 0,
        3..=5 => i.pick(&[1, 2, 0x20, 0x40, 0x100, 0x4000, 0x8000_0000u32 as i32]),
        _ => i.u32() as i32,
    }
}

fn any_or(i: &mut Input<'_>, common: i32) -> i32 {
    if i.u8().is_multiple_of(6) {
        i.u32() as i32
    } else {
        common
    }
}

fn port(i: &mut Input<'_>) -> u16 {
    match i.u8() % 3 {
        0 => 0,
        1 => 80,
        _ => i.u16(),
    }
}

fn iov(i: &mut Input<'_>) -> Vec<(usize, usize)> {
    let n = i.u8() % 6;
    (0..n).map(|_| (small(i, 600), len(i))).collect()
}

fn optval(i: &mut Input<'_>) -> Vec<u8> {
    match i.u8() % 10 {
        0..=2 => i.bytes(40).to_vec(),
        3 | 4 => i.u32().to_ne_bytes().to_vec(),
        5 | 6 => [i.u64().to_ne_bytes(), i.u64().to_ne_bytes()].concat(),
        7 => [i.u32().to_ne_bytes(), i.u32().to_ne_bytes()].concat(),
        _ => [i.u64().to_ne_bytes(), ((i.u32() % 1_000_000) as i64).to_ne_bytes()].concat(),
    }
}

fn decode(i: &mut Input<'_>) -> Call {
    match i.u8() % 36 {
        0 => Call::Socket(any_or(i, AF_INET), any_or(i, SOCK_STREAM), any_or(i, 0)),
        1 => Call::Bind(fd(i), i.u8() % 4, port(i)),
        2 => Call::Listen(fd(i), i.u32() as i32),
        3 => Call::Accept4(fd(i), flags(i)),
        4 => Call::Connect(fd(i), i.u8() % 4, port(i)),
        5 | 6 => Call::Send(fd(i), small(i, 3000), len(i), flags(i)),
        7 => Call::Sendmsg(fd(i), iov(i), flags(i)),
        8 | 9 => Call::Recv(fd(i), small(i, 3000), len(i), flags(i)),
        10 => {
            let (f, b, l, fl) = (fd(i), small(i, 100), len(i), flags(i));
            let a = if i.bool() { Some((small(i, 32), i.u32())) } else { None };
            Call::Recvfrom(f, b, l, fl, a)
        }
        11 => Call::Recvmsg(fd(i), iov(i), flags(i), small(i, 64), len(i), i.u32()),
        12 => Call::Shutdown(fd(i), if i.bool() { (i.u8() % 3) as i32 } else { i.u32() as i32 }),
        13 => Call::Close(fd(i)),
        14..=16 => {
            let f = fd(i);
            let level = match i.u8() % 8 {
                0..=2 => SOL_SOCKET,
                3..=5 => SOL_TCP,
                6 => SOL_IP,
                _ => i.u32() as i32,
            };
            Call::Setsockopt(f, level, optname(i), optval(i))
        }
        17 | 18 => {
            let f = fd(i);
            let level = i.pick(&[SOL_SOCKET, SOL_TCP, SOL_IP]);
            Call::Getsockopt(f, level, optname(i), small(i, 300))
        }
        19 => {
            let f = fd(i);
            let r = if i.bool() { i.pick(&[FIONREAD, SIOCATMARK, SIOCOUTQ, SIOCOUTQNSD]) } else { i.u64() };
            Call::Ioctl(f, r)
        }
        20 => {
            let f = fd(i);
            let c = if i.bool() {
                i.pick(&[F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC])
            } else {
                i.u32() as i32
            };
            Call::Fcntl(f, c, i.u32() as i32)
        }
        21 => {
            let n = i.u8() % 5;
            Call::Poll((0..n).map(|_| (fd(i), i.u16() as i16)).collect())
        }
        22 => Call::EpollCreate(i.u32() as i32, i.bool()),
        23 => {
            let e = fd(i);
            let op = if i.bool() { 1 + (i.u8() % 3) as i32 } else { i.u32() as i32 };
            Call::EpollCtl(e, op, fd(i), i.u32(), i.u64())
        }
        24 => Call::EpollWait(fd(i), if i.bool() { 1 + (i.u8() % 7) as i32 } else { i.u32() as i32 }),
        25 => Call::Pipe2(flags(i)),
        26 => Call::Splice(fd(i), fd(i), len(i), flags(i)),
        27 => Call::Dup(fd(i)),
        28 => Call::Dup2(fd(i), fd(i)),
        29 => Call::Dup3(fd(i), fd(i), flags(i)),
        30 => Call::Read(fd(i), small(i, 3000), len(i)),
        31 => Call::Write(fd(i), small(i, 3000), len(i)),
        32 => {
            if i.bool() {
                Call::Readv(fd(i), iov(i))
            } else {
                Call::Writev(fd(i), iov(i))
            }
        }
        33 => {
            if i.bool() {
                Call::Names(fd(i))
            } else {
                Call::Rlimit(small(i, 40))
            }
        }
        34 => Call::Settle,
        _ => Call::Advance((i.u32() % 300_000) as u64),
    }
}

fn optname(i: &mut Input<'_>) -> i32 {
    match i.u8() % 10 {
        0..=5 => (i.u8() % 80) as i32,
        6..=8 => i.pick(&[opt::SO_RCVTIMEO, opt::SO_SNDTIMEO, opt::SO_LINGER, opt::SO_RCVLOWAT]),
        _ => i.u32() as i32,
    }
}
