//! Property: no sequence of calls, with any arguments, panics. Random programs over the whole
//! fd-level call surface (sockets, socket options at any level/name/length, ioctl, fcntl,
//! poll, epoll, pipes, splice, dup, readv/writev), on two stacks joined by a wire, with
//! packet delivery and virtual time interleaved. Every call is made non-blocking (O_NONBLOCK
//! forced on every file, MSG_DONTWAIT on every send/recv, zero timeouts), so nothing waits.
//! Fixed RNG seed, so every run explores the same cases. The calls and their execution are
//! `utcp_fuzz::calls` (also the `calls` fuzz target); this is the proptest generator.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use utcp::syscall::*;
use utcp_fuzz::calls::{program, Call};

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
            program(&prog);
            calls.set(calls.get() + prog.len());
            Ok(())
        })
        .unwrap();
    assert!(calls.get() > 512 * 40, "ran {} calls", calls.get());
}
