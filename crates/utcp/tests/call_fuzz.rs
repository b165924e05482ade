//! Property: no sequence of calls, with any arguments, panics. Random programs over the whole
//! fd-level call surface (sockets, socket options at any level/name/length, ioctl, fcntl,
//! poll, epoll, pipes, splice, dup, readv/writev), on two stacks joined by a wire, with
//! packet delivery and virtual time interleaved. Every call is made non-blocking (O_NONBLOCK
//! forced on every file, MSG_DONTWAIT on every send/recv, zero timeouts), so nothing waits.
//! Fixed RNG seed, so every run explores the same cases.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::net::{Ipv4Addr, SocketAddrV4};
use utcp::api::{ADDR_A, ADDR_B};
use utcp::netdev::memlink::LinkConfig;
use utcp::sim::SimNet;
use utcp::syscall::*;
use utcp::tcp::recvmsg::MSG_DONTWAIT;
use utcp::time::Duration;

#[derive(Debug, Clone)]
enum Call {
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

fn fd() -> impl Strategy<Value = i32> {
    prop_oneof![8 => 3i32..6, 4 => 3i32..12, 1 => -2i32..3, 1 => any::<i32>()]
}

fn len() -> impl Strategy<Value = usize> {
    prop_oneof![6 => 0usize..3000, 1 => Just(usize::MAX), 1 => any::<usize>(), 1 => 60000usize..70000]
}

fn level() -> impl Strategy<Value = i32> {
    prop_oneof![3 => Just(SOL_SOCKET), 3 => Just(SOL_TCP), 1 => Just(SOL_IP), 1 => any::<i32>()]
}

fn optname() -> impl Strategy<Value = i32> {
    prop_oneof![6 => 0i32..80, 3 => prop::sample::select(vec![opt::SO_RCVTIMEO, opt::SO_SNDTIMEO, opt::SO_LINGER, opt::SO_RCVLOWAT]), 1 => any::<i32>()]
}

fn optval() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..40),
        2 => any::<i32>().prop_map(|v| v.to_ne_bytes().to_vec()),
        2 => (any::<i64>(), any::<i64>()).prop_map(|(a, b)| [a.to_ne_bytes(), b.to_ne_bytes()].concat()),
        1 => (any::<i32>(), any::<i32>()).prop_map(|(a, b)| [a.to_ne_bytes(), b.to_ne_bytes()].concat()),
        // A valid-looking timeval (any tv_sec, tv_usec in range).
        2 => (any::<i64>(), 0i64..1_000_000).prop_map(|(a, b)| [a.to_ne_bytes(), b.to_ne_bytes()].concat()),
    ]
}

fn flags() -> impl Strategy<Value = i32> {
    prop_oneof![3 => Just(0), 3 => prop::sample::select(vec![1, 2, 0x20, 0x40, 0x100, 0x4000, 0x8000_0000u32 as i32]), 2 => any::<i32>()]
}

fn iov() -> impl Strategy<Value = Vec<(usize, usize)>> {
    prop::collection::vec((0usize..600, len()), 0..6)
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        4 => (prop_oneof![5 => Just(AF_INET), 1 => any::<i32>()], prop_oneof![5 => Just(SOCK_STREAM), 1 => any::<i32>()], prop_oneof![5 => Just(0), 1 => any::<i32>()])
            .prop_map(|(d, t, p)| Call::Socket(d, t, p)),
        3 => (fd(), 0u8..4, prop_oneof![Just(0u16), Just(80u16), any::<u16>()]).prop_map(|(f, a, p)| Call::Bind(f, a, p)),
        2 => (fd(), any::<i32>()).prop_map(|(f, b)| Call::Listen(f, b)),
        3 => (fd(), flags()).prop_map(|(f, fl)| Call::Accept4(f, fl)),
        3 => (fd(), 0u8..4, prop_oneof![Just(0u16), Just(80u16), any::<u16>()]).prop_map(|(f, a, p)| Call::Connect(f, a, p)),
        4 => (fd(), 0usize..3000, len(), flags()).prop_map(|(f, b, l, fl)| Call::Send(f, b, l, fl)),
        2 => (fd(), iov(), flags()).prop_map(|(f, v, fl)| Call::Sendmsg(f, v, fl)),
        4 => (fd(), 0usize..3000, len(), flags()).prop_map(|(f, b, l, fl)| Call::Recv(f, b, l, fl)),
        1 => (fd(), 0usize..100, len(), flags(), prop::option::of((0usize..32, any::<u32>())))
            .prop_map(|(f, b, l, fl, a)| Call::Recvfrom(f, b, l, fl, a)),
        2 => (fd(), iov(), flags(), 0usize..64, len(), any::<u32>())
            .prop_map(|(f, v, fl, c, cl, nl)| Call::Recvmsg(f, v, fl, c, cl, nl)),
        2 => (fd(), prop_oneof![0i32..3, any::<i32>()]).prop_map(|(f, h)| Call::Shutdown(f, h)),
        2 => fd().prop_map(Call::Close),
        6 => (fd(), level(), optname(), optval()).prop_map(|(f, l, n, v)| Call::Setsockopt(f, l, n, v)),
        4 => (fd(), level(), optname(), 0usize..300).prop_map(|(f, l, n, o)| Call::Getsockopt(f, l, n, o)),
        2 => (fd(), prop_oneof![prop::sample::select(vec![FIONREAD, SIOCATMARK, SIOCOUTQ, SIOCOUTQNSD]), any::<u64>()])
            .prop_map(|(f, r)| Call::Ioctl(f, r)),
        3 => (fd(), prop_oneof![prop::sample::select(vec![F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC]), any::<i32>()], any::<i32>())
            .prop_map(|(f, c, a)| Call::Fcntl(f, c, a)),
        2 => prop::collection::vec((fd(), any::<i16>()), 0..5).prop_map(Call::Poll),
        1 => (any::<i32>(), any::<bool>()).prop_map(|(s, one)| Call::EpollCreate(s, one)),
        2 => (fd(), prop_oneof![1i32..4, any::<i32>()], fd(), any::<u32>(), any::<u64>())
            .prop_map(|(e, o, f, ev, d)| Call::EpollCtl(e, o, f, ev, d)),
        2 => (fd(), prop_oneof![1i32..8, any::<i32>()]).prop_map(|(e, m)| Call::EpollWait(e, m)),
        1 => flags().prop_map(Call::Pipe2),
        2 => (fd(), fd(), len(), flags()).prop_map(|(i, o, l, fl)| Call::Splice(i, o, l, fl)),
        1 => fd().prop_map(Call::Dup),
        1 => (fd(), fd()).prop_map(|(a, b)| Call::Dup2(a, b)),
        1 => (fd(), fd(), flags()).prop_map(|(a, b, f)| Call::Dup3(a, b, f)),
        2 => (fd(), 0usize..3000, len()).prop_map(|(f, b, l)| Call::Read(f, b, l)),
        2 => (fd(), 0usize..3000, len()).prop_map(|(f, b, l)| Call::Write(f, b, l)),
        1 => (fd(), iov()).prop_map(|(f, v)| Call::Readv(f, v)),
        1 => (fd(), iov()).prop_map(|(f, v)| Call::Writev(f, v)),
        1 => fd().prop_map(Call::Names),
        1 => (0usize..40).prop_map(Call::Rlimit),
        4 => Just(Call::Settle),
        2 => (0u64..300_000).prop_map(Call::Advance),
    ]
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

fn run(net: &SimNet, on_b: bool, c: &Call) {
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

#[test]
fn no_call_sequence_panics() {
    let cfg = Config { cases: 512, failure_persistence: None, ..Config::default() };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[0x3c; 32]);
    let mut runner = TestRunner::new_with_rng(cfg, rng);
    // Each program starts from a listener on B and a connection to it, so data paths are
    // reachable, then runs up to 120 random calls.
    let strategy = prop::collection::vec((any::<bool>(), call()), 1..120);
    let calls = std::cell::Cell::new(0usize);
    runner
        .run(&strategy, |prog| {
            let net = SimNet::new(LinkConfig::default());
            let (a, b) = (&net.a.stack, &net.b.stack);
            let l = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
            b.bind(l, SocketAddrV4::new(ADDR_B, 80)).unwrap();
            b.listen(l, 4).unwrap();
            let c = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
            let _ = a.connect(c, SocketAddrV4::new(ADDR_B, 80));
            net.settle();
            let _ = b.accept4(l, SOCK_NONBLOCK);
            for (on_b, call) in &prog {
                run(&net, *on_b, call);
            }
            calls.set(calls.get() + prog.len());
            net.advance(Duration::from_secs(5));
            for st in [a, b] {
                for fd in 0..64 {
                    let _ = st.close(fd);
                }
            }
            net.advance(Duration::from_secs(300));
            Ok(())
        })
        .unwrap();
    assert!(calls.get() > 512 * 40, "ran {} calls", calls.get());
}
