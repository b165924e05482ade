//! The receive path, flag by flag and option by option, on the virtual clock (SimNet): what
//! `recv`/`recvmsg` return — bytes, errno, `msg_flags`, cmsgs — must be what Linux 6.18
//! returns (the same facts are checked against the real kernel by `utcp-oracle`).
//!
//! The *local* socket is the connecting client on host A; the *peer* is the socket accepted on
//! host B. Blocking calls run on a helper thread; the test thread waits until the call sleeps in
//! `sk_wait_data` (`Sock::sleeper`) before acting, then drives the simulation.

use std::net::SocketAddrV4;
use std::sync::Arc;
use utcp::api::{ADDR_A, ADDR_B};
use utcp::netdev::memlink::LinkConfig;
use utcp::sim::SimNet;
use utcp::socket::sock::{Cancel, Sock};
use utcp::socket::{RecvRequest, SecurityPolicy};
use utcp::syscall::opt::*;
use utcp::syscall::*;
use utcp::tcp::recvmsg::{MSG_CTRUNC, MSG_DONTWAIT, MSG_ERRQUEUE, MSG_OOB, MSG_PEEK, MSG_TRUNC, MSG_WAITALL};
use utcp::time::Duration;
use utcp::Errno;

const FILL: u8 = 0xA5;

/// A connected pair on a fresh simulation.
struct Pair {
    net: SimNet,
    /// Local (client) fd on A.
    c: i32,
    /// Peer (accepted) fd on B.
    p: i32,
}

impl Pair {
    fn new() -> Pair {
        Pair::with(LinkConfig::default(), |_, _| {})
    }

    /// `pre` runs on the local socket before `connect()`.
    fn with(cfg: LinkConfig, pre: impl FnOnce(&Stack, i32)) -> Pair {
        let net = SimNet::new(cfg);
        let (a, b) = (net.a.stack.clone(), net.b.stack.clone());
        let l = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
        b.bind(l, SocketAddrV4::new(ADDR_B, 80)).unwrap();
        b.listen(l, 16).unwrap();
        let c = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
        pre(&a, c);
        a.fcntl(c, F_SETFL, O_NONBLOCK).unwrap();
        assert_eq!(a.connect(c, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::EINPROGRESS));
        net.settle();
        a.connect(c, SocketAddrV4::new(ADDR_B, 80)).unwrap();
        a.fcntl(c, F_SETFL, 0).unwrap();
        let (p, peer) = b.accept4(l, SOCK_NONBLOCK).unwrap();
        assert_eq!(*peer.ip(), ADDR_A);
        b.close(l).unwrap();
        b.setsockopt_int(p, SOL_TCP, TCP_NODELAY, 1).unwrap();
        Pair { net, c, p }
    }

    fn a(&self) -> &Arc<Stack> {
        &self.net.a.stack
    }

    fn b(&self) -> &Arc<Stack> {
        &self.net.b.stack
    }

    fn sk(&self) -> Arc<Sock> {
        self.a().sockfd_lookup(self.c).unwrap().sk.clone()
    }

    /// The peer writes `d` (with `flags`), and it is delivered.
    fn send_flags(&self, d: &[u8], flags: i32) {
        assert_eq!(self.b().send(self.p, Some(d), d.len(), flags), Ok(d.len()));
        self.net.settle();
    }

    fn send(&self, d: &[u8]) {
        self.send_flags(d, 0);
    }

    fn oob(&self, d: &[u8]) {
        self.send_flags(d, MSG_OOB);
    }

    fn peer_shutdown(&self) {
        self.b().shutdown(self.p, SHUT_WR).unwrap();
        self.net.settle();
    }

    fn peer_reset(&self) {
        let mut l = [0u8; 8];
        l[..4].copy_from_slice(&1i32.to_ne_bytes());
        self.b().setsockopt(self.p, SOL_SOCKET, SO_LINGER, &l).unwrap();
        self.b().close(self.p).unwrap();
        self.net.settle();
    }

    /// `recv` into a FILL-ed buffer of `len`: (result, buffer).
    fn recv(&self, len: usize, flags: i32) -> (Result<usize, Errno>, Vec<u8>) {
        let mut buf = vec![FILL; len];
        let r = self.a().recv(self.c, Some(&mut buf), len, flags);
        self.net.settle();
        (r, buf)
    }

    /// Non-blocking read of exactly what is returned.
    fn read(&self, len: usize, flags: i32) -> Result<Vec<u8>, Errno> {
        let (r, buf) = self.recv(len, flags | MSG_DONTWAIT);
        r.map(|n| buf[..n].to_vec())
    }

    fn ioctl(&self, req: u64) -> i32 {
        self.a().ioctl(self.c, req).unwrap()
    }

    fn getopt(&self, level: i32, name: i32) -> i32 {
        self.a().getsockopt_int(self.c, level, name).unwrap()
    }

    fn setopt(&self, level: i32, name: i32, v: i32) {
        self.a().setsockopt_int(self.c, level, name, v).unwrap()
    }

    fn poll(&self, events: i16) -> i16 {
        let mut p = [PollFd { fd: self.c, events, revents: 0 }];
        self.a().poll(&mut p, Some(Duration::ZERO)).unwrap();
        p[0].revents
    }

    /// Starts a blocking call on a helper thread and returns once it sleeps in
    /// `sk_wait_data`.
    fn spawn_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(Arc<Stack>, i32) -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let (a, c) = (self.a().clone(), self.c);
        let h = std::thread::spawn(move || f(a, c));
        self.wait_sleeping();
        h
    }

    /// Waits (real time, bounded) until a reader sleeps on the local socket.
    fn wait_sleeping(&self) -> (u64, Option<utcp::time::Instant>) {
        let sk = self.sk();
        let t = std::time::Instant::now();
        loop {
            if let Some(s) = sk.sleeper() {
                return s;
            }
            assert!(t.elapsed() < std::time::Duration::from_secs(5), "reader never slept");
            std::thread::yield_now();
        }
    }

    /// Moves the virtual clock by `d` and lets a sleeping reader see it.
    fn advance(&self, d: Duration) {
        self.net.advance(d);
        self.sk().kick_sleepers();
    }
}

fn ok(v: &[u8]) -> Result<Vec<u8>, Errno> {
    Ok(v.to_vec())
}

/// recvmsg with the given iovec sizes and control buffer (0 = NULL); returns
/// (result, data buffers, msg_flags, cmsgs, controllen, namelen, name buffer).
#[allow(clippy::type_complexity)]
fn recvmsg(
    st: &Stack,
    fd: i32,
    iov: &[usize],
    control_len: usize,
    flags: i32,
) -> (Result<usize, Errno>, Vec<Vec<u8>>, i32, Vec<Cmsg>, usize, u32, Vec<u8>) {
    let mut bufs: Vec<Vec<u8>> = iov.iter().map(|&n| vec![FILL; n]).collect();
    let mut ctl = vec![FILL; control_len];
    let mut name = vec![FILL; 16];
    let (r, mflags, controllen, namelen) = {
        let mut msg = MsgHdr {
            name: Some(&mut name[..]),
            namelen: 16,
            iov: bufs.iter_mut().map(|b| IoVec { len: b.len(), base: Some(&mut b[..]) }).collect(),
            control: if control_len == 0 { None } else { Some(&mut ctl[..]) },
            controllen: control_len,
            flags: 0,
        };
        let r = st.recvmsg(fd, &mut msg, flags);
        (r, msg.flags, msg.controllen, msg.namelen)
    };
    let cmsgs = parse_cmsgs(&ctl[..controllen.min(ctl.len())]);
    (r, bufs, mflags, cmsgs, controllen, namelen, name)
}

// ---------------------------------------------------------------------------------------------
// MSG_PEEK, SO_PEEK_OFF
// ---------------------------------------------------------------------------------------------

#[test]
fn peek_does_not_consume() {
    let t = Pair::new();
    t.send(b"hello");
    assert_eq!(t.read(3, MSG_PEEK), ok(b"hel"));
    assert_eq!(t.read(10, MSG_PEEK), ok(b"hello"));
    assert_eq!(t.ioctl(FIONREAD), 5);
    assert_eq!(t.read(10, 0), ok(b"hello"));
    assert_eq!(t.read(10, MSG_PEEK), Err(Errno::EAGAIN));
}

#[test]
fn peek_spans_segments_and_stops_at_fin() {
    let t = Pair::new();
    t.send(b"ab");
    t.send(b"cd");
    t.peer_shutdown();
    // A peek reads across skbs but stops at the FIN; it never consumes the FIN.
    assert_eq!(t.read(10, MSG_PEEK), ok(b"abcd"));
    assert_eq!(t.read(10, MSG_PEEK), ok(b"abcd"));
    assert_eq!(t.read(10, 0), ok(b"abcd"));
    assert_eq!(t.read(10, MSG_PEEK), ok(b""));
    assert_eq!(t.read(10, 0), ok(b""));
}

#[test]
fn peek_off_advances_and_moves_back() {
    let t = Pair::new();
    assert_eq!(t.getopt(SOL_SOCKET, SO_PEEK_OFF), -1, "disabled by default");
    t.setopt(SOL_SOCKET, SO_PEEK_OFF, 0);
    t.send(b"abcdef");
    assert_eq!(t.read(2, MSG_PEEK), ok(b"ab"));
    assert_eq!(t.read(2, MSG_PEEK), ok(b"cd"));
    assert_eq!(t.getopt(SOL_SOCKET, SO_PEEK_OFF), 4);
    assert_eq!(t.read(3, 0), ok(b"abc"));
    assert_eq!(t.getopt(SOL_SOCKET, SO_PEEK_OFF), 1, "a read moves the offset back");
    assert_eq!(t.read(10, MSG_PEEK), ok(b"ef"));
    assert_eq!(t.getopt(SOL_SOCKET, SO_PEEK_OFF), 3);
    // Peeking beyond the queued data: nothing to return yet.
    assert_eq!(t.read(10, MSG_PEEK), Err(Errno::EAGAIN));
    assert_eq!(t.read(10, 0), ok(b"def"));
    assert_eq!(t.getopt(SOL_SOCKET, SO_PEEK_OFF), 0);
    // -1 turns it off: peeks start at the read pointer again.
    t.setopt(SOL_SOCKET, SO_PEEK_OFF, -1);
    t.send(b"xy");
    assert_eq!(t.read(1, MSG_PEEK), ok(b"x"));
    assert_eq!(t.read(1, MSG_PEEK), ok(b"x"));
}

#[test]
fn peek_off_beyond_data_then_fin_is_eof() {
    let t = Pair::new();
    t.setopt(SOL_SOCKET, SO_PEEK_OFF, 10);
    t.send(b"abc");
    assert_eq!(t.read(4, MSG_PEEK), Err(Errno::EAGAIN));
    t.peer_shutdown();
    assert_eq!(t.read(4, MSG_PEEK), ok(b""));
    let (r, _) = t.recv(4, MSG_PEEK);
    assert_eq!(r, Ok(0), "a blocking peek past the data returns at the FIN");
}

// ---------------------------------------------------------------------------------------------
// MSG_WAITALL
// ---------------------------------------------------------------------------------------------

#[test]
fn waitall_blocks_until_full() {
    let t = Pair::new();
    t.send(b"abc");
    let h = t.spawn_blocking(|a, c| {
        let mut buf = vec![FILL; 8];
        let r = a.recv(c, Some(&mut buf), 8, MSG_WAITALL);
        (r, buf)
    });
    t.send(b"def");
    let (_, _) = t.wait_sleeping();
    t.send(b"ghij");
    let (r, buf) = h.join().unwrap();
    assert_eq!(r, Ok(8));
    assert_eq!(&buf, b"abcdefgh");
    assert_eq!(t.read(10, 0), ok(b"ij"));
}

#[test]
fn waitall_short_count_at_fin_and_dontwait() {
    let t = Pair::new();
    t.send(b"abc");
    assert_eq!(t.read(10, MSG_WAITALL), ok(b"abc"), "WAITALL|DONTWAIT returns what is there");
    t.send(b"de");
    t.peer_shutdown();
    let (r, buf) = t.recv(10, MSG_WAITALL);
    assert_eq!(r, Ok(2));
    assert_eq!(&buf[..2], b"de");
    assert_eq!(t.recv(10, MSG_WAITALL).0, Ok(0));
}

#[test]
fn waitall_returns_early_at_urgent_mark() {
    let t = Pair::new();
    t.send(b"abc");
    t.oob(b"d");
    t.send(b"ef");
    let (r, buf) = t.recv(100, MSG_WAITALL);
    assert_eq!(r, Ok(3));
    assert_eq!(&buf[..4], &[b'a', b'b', b'c', FILL]);
    assert_eq!(t.read(100, MSG_WAITALL), ok(b"ef"), "the urgent byte is skipped");
}

// ---------------------------------------------------------------------------------------------
// MSG_TRUNC
// ---------------------------------------------------------------------------------------------

#[test]
fn trunc_discards_without_copying() {
    let t = Pair::new();
    t.send(b"abcdef");
    let (r, buf) = t.recv(3, MSG_TRUNC);
    assert_eq!(r, Ok(3));
    assert!(buf.iter().all(|&b| b == FILL), "MSG_TRUNC must not write the buffer");
    let (r, bufs, mflags, ..) = recvmsg(t.a(), t.c, &[1], 0, MSG_TRUNC);
    assert_eq!(r, Ok(1));
    assert_eq!(bufs[0], vec![FILL]);
    assert_eq!(mflags, 0, "TCP does not report MSG_TRUNC in msg_flags");
    assert_eq!(t.read(10, 0), ok(b"ef"));
}

#[test]
fn trunc_with_peek_counts_only() {
    let t = Pair::new();
    t.send(b"abcdef");
    let (r, buf) = t.recv(4, MSG_PEEK | MSG_TRUNC);
    assert_eq!(r, Ok(4));
    assert!(buf.iter().all(|&b| b == FILL));
    assert_eq!(t.read(10, 0), ok(b"abcdef"));
}

#[test]
fn trunc_with_null_buffer_does_not_fault() {
    let t = Pair::new();
    t.send(b"abcdef");
    assert_eq!(t.a().recv(t.c, None, 4, MSG_TRUNC), Ok(4));
    assert_eq!(t.read(10, 0), ok(b"ef"));
}

// ---------------------------------------------------------------------------------------------
// MSG_DONTWAIT / O_NONBLOCK
// ---------------------------------------------------------------------------------------------

#[test]
fn dontwait_and_nonblock_eagain() {
    let t = Pair::new();
    assert_eq!(t.recv(10, MSG_DONTWAIT).0, Err(Errno::EAGAIN));
    assert_eq!(t.recv(10, MSG_DONTWAIT | MSG_WAITALL).0, Err(Errno::EAGAIN));
    t.a().fcntl(t.c, F_SETFL, O_NONBLOCK).unwrap();
    assert_eq!(t.recv(10, 0).0, Err(Errno::EAGAIN));
    assert_eq!(t.recv(10, MSG_WAITALL).0, Err(Errno::EAGAIN));
    let (r, ..) = recvmsg(t.a(), t.c, &[10], 0, 0);
    assert_eq!(r, Err(Errno::EAGAIN));
    t.send(b"xy");
    assert_eq!(t.recv(10, 0).0, Ok(2));
}

#[test]
fn len_zero_semantics() {
    let t = Pair::new();
    // The loop body runs once even for len 0: EAGAIN on an empty queue...
    assert_eq!(t.recv(0, MSG_DONTWAIT).0, Err(Errno::EAGAIN));
    t.send(b"x");
    // ...0 when data is queued (nothing consumed)...
    assert_eq!(t.recv(0, 0).0, Ok(0));
    assert_eq!(t.ioctl(FIONREAD), 1);
    t.peer_shutdown();
    assert_eq!(t.read(1, 0), ok(b"x"));
    // ...and 0 at EOF.
    assert_eq!(t.recv(0, 0).0, Ok(0));
}

// ---------------------------------------------------------------------------------------------
// MSG_OOB: every branch of tcp_recv_urg()
// ---------------------------------------------------------------------------------------------

#[test]
fn oob_einval_without_urgent_data() {
    let t = Pair::new();
    assert_eq!(t.recv(10, MSG_OOB).0, Err(Errno::EINVAL), "no urg_data: EINVAL even when blocking");
    t.send(b"abc");
    assert_eq!(t.recv(10, MSG_OOB | MSG_DONTWAIT).0, Err(Errno::EINVAL));
}

#[test]
fn oob_read_once_then_einval() {
    let t = Pair::new();
    t.send(b"hello");
    t.oob(b"abc");
    assert!(t.poll(0x2) & 0x2 != 0, "POLLPRI");
    let (r, buf) = t.recv(100, MSG_OOB);
    assert_eq!(r, Ok(1));
    assert_eq!(&buf[..2], &[b'c', FILL]);
    assert_eq!(t.recv(100, MSG_OOB).0, Err(Errno::EINVAL), "TCP_URG_READ");
    assert_eq!(t.poll(0x2) & 0x2, 0, "no POLLPRI once read");
    assert_eq!(t.read(100, 0), ok(b"helloab"));
}

#[test]
fn oob_peek_keeps_the_byte() {
    let t = Pair::new();
    t.oob(b"xy");
    assert_eq!(t.read(4, MSG_OOB | MSG_PEEK), ok(b"y"));
    assert_eq!(t.read(4, MSG_OOB | MSG_PEEK), ok(b"y"));
    assert_eq!(t.read(4, MSG_OOB), ok(b"y"));
    assert_eq!(t.read(4, MSG_OOB | MSG_PEEK), Err(Errno::EINVAL));
}

#[test]
fn oob_zero_length_sets_msg_trunc() {
    let t = Pair::new();
    t.oob(b"ab");
    let (r, _, mflags, ..) = recvmsg(t.a(), t.c, &[0], 0, MSG_OOB);
    assert_eq!(r, Ok(0));
    assert_eq!(mflags, MSG_OOB | MSG_TRUNC);
    assert_eq!(t.read(4, MSG_OOB), Err(Errno::EINVAL), "consumed");
    assert_eq!(t.read(4, 0), ok(b"a"));
}

#[test]
fn oob_msg_flags_and_trunc_flag() {
    let t = Pair::new();
    t.oob(b"q");
    let (r, bufs, mflags, ..) = recvmsg(t.a(), t.c, &[8], 0, MSG_OOB);
    assert_eq!(r, Ok(1));
    assert_eq!(bufs[0][0], b'q');
    assert_eq!(mflags, MSG_OOB);
    t.oob(b"r");
    let (r, buf) = t.recv(4, MSG_OOB | MSG_TRUNC);
    assert_eq!(r, Ok(1), "MSG_OOB|MSG_TRUNC counts the byte without copying it");
    assert!(buf.iter().all(|&b| b == FILL));
    assert_eq!(t.read(4, MSG_OOB), Err(Errno::EINVAL));
}

#[test]
fn oob_inline_is_einval_and_in_band() {
    let t = Pair::with(LinkConfig::default(), |a, c| a.setsockopt_int(c, SOL_SOCKET, SO_OOBINLINE, 1).unwrap());
    t.oob(b"abc");
    t.send(b"de");
    assert_eq!(t.read(10, MSG_OOB), Err(Errno::EINVAL));
    assert_eq!(t.ioctl(FIONREAD), 5);
    assert_eq!(t.read(10, 0), ok(b"ab"), "stops at the mark");
    assert_eq!(t.ioctl(SIOCATMARK), 1);
    assert_eq!(t.read(10, 0), ok(b"cde"), "the urgent byte is read in band");
    assert_eq!(t.ioctl(SIOCATMARK), 0);
}

#[test]
fn oob_after_reset_is_enotconn() {
    let t = Pair::new();
    t.oob(b"ab");
    t.peer_reset();
    // TCP_CLOSE without SOCK_DONE: ENOTCONN, even though the byte is valid.
    assert_eq!(t.read(4, MSG_OOB), Err(Errno::ENOTCONN));
    assert_eq!(t.read(4, 0), ok(b"a"));
    assert_eq!(t.read(4, 0), Err(Errno::ECONNRESET));
    // Reading in band past the mark cleared urg_data.
    assert_eq!(t.read(4, MSG_OOB), Err(Errno::EINVAL));
}

#[test]
fn oob_not_yet_arrived_is_eagain_then_zero_after_shutdown() {
    // A slow link and a small MSS: the urgent pointer arrives in the first segment, the
    // urgent byte only in the second (TCP_URG_NOTYET).
    let cfg = LinkConfig { rate_bps: Some(1_000_000), ..LinkConfig::default() };
    let t = Pair::with(cfg, |_, _| {});
    t.b().setsockopt_int(t.p, SOL_TCP, TCP_MAXSEG, 536).unwrap_or(());
    let data = vec![b'u'; 3000];
    assert_eq!(t.b().send(t.p, Some(&data), data.len(), MSG_OOB), Ok(3000));
    let sk = t.sk();
    let notyet = t.net.run_until(Duration::from_secs(1), || {
        sk.peek_tp(|tp| tp.urg_data & utcp::tcp::TCP_URG_NOTYET != 0 && tp.rcv_nxt != tp.copied_seq)
    });
    assert!(notyet, "urgent pointer seen before the urgent byte");
    assert_eq!(t.recv(4, MSG_OOB).0, Err(Errno::EAGAIN), "never blocks");
    assert_eq!(t.poll(0x2) & 0x2, 0, "no POLLPRI before the byte arrived");
    t.a().shutdown(t.c, SHUT_RD).unwrap();
    assert_eq!(t.recv(4, MSG_OOB).0, Ok(0), "RCV_SHUTDOWN: 0");
}

#[test]
fn oob_second_urgent_replaces_first() {
    let t = Pair::new();
    t.send(b"ab");
    t.oob(b"X");
    t.send(b"cd");
    t.oob(b"Y");
    assert_eq!(t.read(10, MSG_OOB), ok(b"Y"));
    assert_eq!(t.read(10, 0), ok(b"abXcd"));
}

#[test]
fn oob_lost_when_read_past() {
    let t = Pair::new();
    t.oob(b"ab");
    t.send(b"cd");
    assert_eq!(t.read(10, 0), ok(b"a"));
    assert_eq!(t.read(10, 0), ok(b"cd"));
    assert_eq!(t.read(10, MSG_OOB), Err(Errno::EINVAL));
}

// ---------------------------------------------------------------------------------------------
// Urgent mark, SIOCATMARK, FIONREAD
// ---------------------------------------------------------------------------------------------

#[test]
fn reads_stop_at_urgent_mark_and_fionread_counts_to_it() {
    let t = Pair::new();
    t.send(b"abc");
    t.oob(b"de");
    t.send(b"fg");
    assert_eq!(t.ioctl(FIONREAD), 4, "up to the urgent byte");
    assert_eq!(t.ioctl(SIOCATMARK), 0);
    assert_eq!(t.read(2, 0), ok(b"ab"));
    assert_eq!(t.ioctl(FIONREAD), 2);
    assert_eq!(t.read(10, 0), ok(b"cd"), "stops before the urgent byte");
    assert_eq!(t.ioctl(SIOCATMARK), 1);
    assert_eq!(t.ioctl(FIONREAD), 0);
    assert_eq!(t.read(10, 0), ok(b"fg"), "skips the urgent byte");
    assert_eq!(t.ioctl(SIOCATMARK), 0);
}

#[test]
fn fionread_ignores_fin_and_is_einval_on_listener() {
    let t = Pair::new();
    t.send(b"abc");
    t.peer_shutdown();
    assert_eq!(t.ioctl(FIONREAD), 3);
    assert_eq!(t.read(10, 0), ok(b"abc"));
    assert_eq!(t.ioctl(FIONREAD), 0);
    let a = t.a();
    let l = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    a.bind(l, SocketAddrV4::new(ADDR_A, 0)).unwrap();
    a.listen(l, 4).unwrap();
    assert_eq!(a.ioctl(l, FIONREAD), Err(Errno::EINVAL));
}

// ---------------------------------------------------------------------------------------------
// FIN, RST, ENOTCONN
// ---------------------------------------------------------------------------------------------

#[test]
fn fin_reads_zero_again_and_again() {
    let t = Pair::new();
    t.send(b"hi");
    t.peer_shutdown();
    assert_eq!(t.recv(10, 0).0, Ok(2));
    for _ in 0..3 {
        assert_eq!(t.recv(10, 0).0, Ok(0));
    }
    assert_eq!(t.recv(10, MSG_PEEK).0, Ok(0));
    assert_eq!(t.recv(10, MSG_WAITALL).0, Ok(0));
    assert_eq!(t.recv(10, MSG_OOB).0, Err(Errno::EINVAL));
    let ev = t.poll(0x1 | 0x4 | 0x2000);
    assert_eq!(ev, 0x1 | 0x4 | 0x2000, "POLLIN|POLLOUT|POLLRDHUP");
}

#[test]
fn rst_reports_econnreset_after_queued_data_then_eof() {
    let t = Pair::new();
    t.send(b"data");
    t.peer_reset();
    assert_eq!(t.recv(2, 0).0, Ok(2));
    assert_eq!(t.read(10, 0), ok(b"ta"));
    assert_eq!(t.recv(10, 0).0, Err(Errno::ECONNRESET), "sock_error() reports it once");
    assert_eq!(t.recv(10, 0).0, Ok(0));
    assert_eq!(t.getopt(SOL_SOCKET, SO_ERROR), 0);
}

#[test]
fn rst_error_can_be_taken_by_so_error() {
    let t = Pair::new();
    t.peer_reset();
    assert_eq!(t.poll(0x1 | 0x2 | 0x4 | 0x2000), 0x1 | 0x4 | 0x8 | 0x10 | 0x2000);
    assert_eq!(t.getopt(SOL_SOCKET, SO_ERROR), Errno::ECONNRESET as i32);
    assert_eq!(t.recv(10, 0).0, Ok(0));
}

#[test]
fn rst_in_close_wait_reads_eof_first() {
    let t = Pair::new();
    t.peer_shutdown();
    t.peer_reset();
    assert_eq!(t.recv(10, 0).0, Ok(0), "SOCK_DONE is checked before sk_err");
    assert_eq!(t.getopt(SOL_SOCKET, SO_ERROR), Errno::EPIPE as i32);
}

#[test]
fn enotconn_on_listening_and_unconnected_sockets() {
    let net = SimNet::new(LinkConfig::default());
    let a = &net.a.stack;
    let fresh = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(a.recv(fresh, Some(&mut buf), 8, 0), Err(Errno::ENOTCONN));
    assert_eq!(a.recv(fresh, Some(&mut buf), 8, MSG_DONTWAIT), Err(Errno::ENOTCONN));
    assert_eq!(a.recv(fresh, Some(&mut buf), 0, 0), Err(Errno::ENOTCONN));
    assert_eq!(recvmsg(a, fresh, &[4], 32, 0).0, Err(Errno::ENOTCONN));
    let l = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    a.bind(l, SocketAddrV4::new(ADDR_A, 0)).unwrap();
    a.listen(l, 4).unwrap();
    assert_eq!(a.recv(l, Some(&mut buf), 8, 0), Err(Errno::ENOTCONN));
    assert_eq!(a.recv(l, Some(&mut buf), 8, MSG_OOB), Err(Errno::ENOTCONN));
    assert_eq!(a.recv(l, Some(&mut buf), 0, 0), Err(Errno::ENOTCONN));
}

// ---------------------------------------------------------------------------------------------
// shutdown(SHUT_RD)
// ---------------------------------------------------------------------------------------------

#[test]
fn shut_rd_wakes_a_blocked_reader() {
    let t = Pair::new();
    let h = t.spawn_blocking(|a, c| {
        let mut buf = [0u8; 8];
        a.recv(c, Some(&mut buf), 8, 0)
    });
    t.a().shutdown(t.c, SHUT_RD).unwrap();
    assert_eq!(h.join().unwrap(), Ok(0));
}

#[test]
fn shut_rd_then_data_is_still_delivered() {
    let t = Pair::new();
    t.a().shutdown(t.c, SHUT_RD).unwrap();
    assert_eq!(t.recv(10, 0).0, Ok(0));
    t.send(b"abc");
    assert_eq!(t.read(10, 0), ok(b"abc"));
    assert_eq!(t.recv(10, 0).0, Ok(0));
}

// ---------------------------------------------------------------------------------------------
// SO_RCVLOWAT
// ---------------------------------------------------------------------------------------------

#[test]
fn rcvlowat_blocking_waits_for_the_mark() {
    let t = Pair::new();
    t.setopt(SOL_SOCKET, SO_RCVLOWAT, 5);
    t.send(b"abc");
    assert_eq!(t.poll(0x1), 0, "no POLLIN below the low-water mark");
    assert_eq!(t.read(100, 0), ok(b"abc"), "non-blocking returns what is there");
    t.send(b"ab");
    let h = t.spawn_blocking(|a, c| {
        let mut buf = vec![0u8; 100];
        a.recv(c, Some(&mut buf), 100, 0).map(|n| buf[..n].to_vec())
    });
    t.send(b"cd");
    t.wait_sleeping();
    t.send(b"efg");
    assert_eq!(h.join().unwrap(), ok(b"abcdefg"));
    // The target is min(SO_RCVLOWAT, len).
    t.send(b"xy");
    let (r, _) = t.recv(2, 0);
    assert_eq!(r, Ok(2));
}

#[test]
fn rcvlowat_values() {
    let t = Pair::new();
    t.setopt(SOL_SOCKET, SO_RCVLOWAT, 0);
    assert_eq!(t.getopt(SOL_SOCKET, SO_RCVLOWAT), 1, "0 is stored as 1");
    // Negative means INT_MAX, capped at tcp_rmem[2] / 2 (tcp_set_rcvlowat).
    t.setopt(SOL_SOCKET, SO_RCVLOWAT, -1);
    let rmem2 = t.a().core.net.sysctl.tcp_rmem.idx(2) as i32;
    assert_eq!(t.getopt(SOL_SOCKET, SO_RCVLOWAT), rmem2 >> 1);
}

#[test]
fn rcvlowat_grows_rcvbuf_unless_locked() {
    let t = Pair::new();
    assert_eq!(t.getopt(SOL_SOCKET, SO_RCVBUF), 131072);
    t.setopt(SOL_SOCKET, SO_RCVLOWAT, 100_000);
    // tcp_space_from_win(100000) with the default scaling ratio (1/2): 200000.
    assert_eq!(t.getopt(SOL_SOCKET, SO_RCVBUF), 200_000);
    assert_eq!(t.getopt(SOL_SOCKET, SO_RCVLOWAT), 100_000);
    // With SO_RCVBUF set, the buffer is locked: the mark is capped at rcvbuf/2 instead.
    t.setopt(SOL_SOCKET, SO_RCVBUF, 10_000);
    t.setopt(SOL_SOCKET, SO_RCVLOWAT, 100_000);
    assert_eq!(t.getopt(SOL_SOCKET, SO_RCVLOWAT), 10_000);
    assert_eq!(t.getopt(SOL_SOCKET, SO_RCVBUF), 20_000);
}

#[test]
fn rcvbuf_doubled_and_minimum() {
    let t = Pair::new();
    t.setopt(SOL_SOCKET, SO_RCVBUF, 65536);
    assert_eq!(t.getopt(SOL_SOCKET, SO_RCVBUF), 131072);
    t.setopt(SOL_SOCKET, SO_RCVBUF, 1);
    assert_eq!(t.getopt(SOL_SOCKET, SO_RCVBUF), 2304, "SOCK_MIN_RCVBUF");
}

// ---------------------------------------------------------------------------------------------
// SO_RCVTIMEO
// ---------------------------------------------------------------------------------------------

fn set_rcvtimeo(st: &Stack, fd: i32, usec: i64) -> Result<(), Errno> {
    let mut tv = [0u8; 16];
    tv[..8].copy_from_slice(&(usec / 1_000_000).to_ne_bytes());
    tv[8..].copy_from_slice(&(usec % 1_000_000).to_ne_bytes());
    st.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv)
}

#[test]
fn rcvtimeo_times_out_with_eagain() {
    let t = Pair::new();
    set_rcvtimeo(t.a(), t.c, 5000).unwrap();
    // Rounded up to jiffies (HZ=250): 8 ms.
    let mut tv = [0u8; 16];
    assert_eq!(t.a().getsockopt(t.c, SOL_SOCKET, SO_RCVTIMEO, &mut tv), Ok(16));
    assert_eq!(i64::from_ne_bytes(tv[8..].try_into().unwrap()), 8000);
    let start = t.net.now();
    let h = t.spawn_blocking(|a, c| {
        let mut buf = [0u8; 8];
        a.recv(c, Some(&mut buf), 8, 0)
    });
    let (_, deadline) = t.wait_sleeping();
    assert_eq!(deadline, Some(start + Duration::from_millis(8)));
    t.advance(Duration::from_millis(8));
    assert_eq!(h.join().unwrap(), Err(Errno::EAGAIN));
}

#[test]
fn rcvtimeo_returns_partial_data_at_timeout() {
    let t = Pair::new();
    set_rcvtimeo(t.a(), t.c, 10_000).unwrap();
    t.send(b"abc");
    let h = t.spawn_blocking(|a, c| {
        let mut buf = [0u8; 10];
        a.recv(c, Some(&mut buf), 10, MSG_WAITALL).map(|n| buf[..n].to_vec())
    });
    t.send(b"de");
    t.wait_sleeping();
    t.advance(Duration::from_millis(12));
    assert_eq!(h.join().unwrap(), ok(b"abcde"));
}

#[test]
fn rcvtimeo_bad_usec_is_edom() {
    let t = Pair::new();
    assert_eq!(set_rcvtimeo(t.a(), t.c, 1_000_000 - 1), Ok(()));
    let mut tv = [0u8; 16];
    tv[8..].copy_from_slice(&1_000_000i64.to_ne_bytes());
    assert_eq!(t.a().setsockopt(t.c, SOL_SOCKET, SO_RCVTIMEO, &tv), Err(Errno::EDOM));
}

// ---------------------------------------------------------------------------------------------
// EINTR (Cancel)
// ---------------------------------------------------------------------------------------------

#[test]
fn cancel_with_nothing_copied_is_eintr() {
    let t = Pair::new();
    let cancel = Cancel::new();
    let c2 = cancel.clone();
    let h = t.spawn_blocking(move |a, c| {
        let mut buf = [0u8; 8];
        a.recv_cancellable(c, &mut buf, 0, &c2)
    });
    cancel.cancel();
    assert_eq!(h.join().unwrap(), Err(Errno::EINTR));
    assert_eq!(t.recv(8, MSG_DONTWAIT).0, Err(Errno::EAGAIN), "nothing was consumed");
}

#[test]
fn cancel_with_partial_data_returns_the_count() {
    let t = Pair::new();
    t.send(b"abc");
    let cancel = Cancel::new();
    let c2 = cancel.clone();
    let h = t.spawn_blocking(move |a, c| {
        let mut buf = [0u8; 8];
        a.recv_cancellable(c, &mut buf, MSG_WAITALL, &c2).map(|n| buf[..n].to_vec())
    });
    cancel.cancel();
    assert_eq!(h.join().unwrap(), ok(b"abc"));
}

// ---------------------------------------------------------------------------------------------
// MSG_ERRQUEUE
// ---------------------------------------------------------------------------------------------

#[test]
fn errqueue_is_empty() {
    let t = Pair::new();
    t.send(b"x");
    assert_eq!(t.recv(10, MSG_ERRQUEUE).0, Err(Errno::EAGAIN));
    assert_eq!(t.recv(10, MSG_ERRQUEUE | MSG_OOB).0, Err(Errno::EAGAIN));
    assert_eq!(t.recv(10, MSG_ERRQUEUE | MSG_PEEK).0, Err(Errno::EAGAIN));
    assert_eq!(t.read(10, 0), ok(b"x"), "the data queue is untouched");
}

// ---------------------------------------------------------------------------------------------
// Syscall layer: EBADF, ENOTSOCK, EFAULT, MAX_RW_COUNT
// ---------------------------------------------------------------------------------------------

#[test]
fn ebadf_and_enotsock() {
    let t = Pair::new();
    let a = t.a();
    let mut buf = [0u8; 4];
    assert_eq!(a.recv(-1, Some(&mut buf), 4, 0), Err(Errno::EBADF));
    assert_eq!(a.recv(9999, Some(&mut buf), 4, 0), Err(Errno::EBADF));
    let (r, w) = a.pipe().unwrap();
    assert_eq!(a.recv(r, Some(&mut buf), 4, 0), Err(Errno::ENOTSOCK));
    assert_eq!(recvmsg(a, w, &[4], 0, 0).0, Err(Errno::ENOTSOCK));
    let c = t.c;
    a.close(c).unwrap();
    assert_eq!(a.recv(c, Some(&mut buf), 4, 0), Err(Errno::EBADF));
    assert_eq!(a.ioctl(c, FIONREAD), Err(Errno::EBADF));
}

#[test]
fn efault_only_when_copying_through_null() {
    let t = Pair::new();
    // Nothing to copy: the NULL buffer is never touched.
    assert_eq!(t.a().recv(t.c, None, 10, MSG_DONTWAIT), Err(Errno::EAGAIN));
    t.send(b"abc");
    assert_eq!(t.a().recv(t.c, None, 10, 0), Err(Errno::EFAULT));
    assert_eq!(t.a().recv(t.c, None, 0, 0), Ok(0), "len 0 copies nothing");
    // The failed copy consumed nothing.
    assert_eq!(t.read(10, 0), ok(b"abc"));
    // A buffer shorter than the claimed length faults in the middle of an skb: the copy of
    // that skb fails as a whole (nothing copied before it, so EFAULT) and nothing is consumed.
    t.send(b"defgh");
    let mut small = [FILL; 2];
    assert_eq!(t.a().recv(t.c, Some(&mut small), 5, 0), Err(Errno::EFAULT));
    assert_eq!(t.read(10, 0), ok(b"defgh"));
    // recvmsg with a NULL iov_base.
    t.send(b"ij");
    let mut msg = MsgHdr { iov: vec![IoVec { len: 4, base: None }], ..Default::default() };
    assert_eq!(t.a().recvmsg(t.c, &mut msg, 0), Err(Errno::EFAULT));
    assert_eq!(t.read(10, 0), ok(b"ij"));
    // tcp_recv_urg() marks the urgent byte read before the copy faults.
    t.oob(b"k");
    assert_eq!(t.a().recv(t.c, None, 4, MSG_OOB), Err(Errno::EFAULT));
    assert_eq!(t.read(4, MSG_OOB), Err(Errno::EINVAL));
}

struct SeeSize(std::sync::Mutex<Vec<usize>>);
impl SecurityPolicy for SeeSize {
    fn socket_recvmsg(&self, req: &RecvRequest) -> Result<(), Errno> {
        self.0.lock().unwrap().push(req.size);
        Ok(())
    }
}

#[test]
fn max_rw_count_clamp() {
    let t = Pair::new();
    let seen = Arc::new(SeeSize(std::sync::Mutex::new(Vec::new())));
    *t.a().core.security.write() = Some(seen.clone());
    t.send(b"abc");
    // import_single_range() clamps the length to MAX_RW_COUNT before anything else, and a
    // huge length with a small real buffer only faults if bytes land beyond it.
    let mut buf = [FILL; 8];
    assert_eq!(t.a().recv(t.c, Some(&mut buf), usize::MAX, 0), Ok(3));
    assert_eq!(&buf[..4], &[b'a', b'b', b'c', FILL]);
    // recvmsg: the iovec total is clamped the same way; a negative iov_len is EINVAL.
    t.send(b"d");
    let mut b1 = [FILL; 4];
    let mut msg = MsgHdr {
        iov: vec![IoVec { len: MAX_RW_COUNT, base: Some(&mut b1[..]) }, IoVec { len: 100, base: None }],
        ..Default::default()
    };
    assert_eq!(t.a().recvmsg(t.c, &mut msg, 0), Ok(1));
    assert_eq!(*seen.0.lock().unwrap(), vec![MAX_RW_COUNT, MAX_RW_COUNT]);
    let mut msg = MsgHdr { iov: vec![IoVec { len: usize::MAX, base: None }], ..Default::default() };
    assert_eq!(t.a().recvmsg(t.c, &mut msg, 0), Err(Errno::EINVAL));
}

// ---------------------------------------------------------------------------------------------
// recvmsg: iovecs, msg_name, control messages
// ---------------------------------------------------------------------------------------------

#[test]
fn recvmsg_fills_several_iovecs_in_order() {
    let t = Pair::new();
    t.send(b"abcdefghij");
    let (r, bufs, mflags, cmsgs, controllen, ..) = recvmsg(t.a(), t.c, &[3, 0, 4, 5], 0, 0);
    assert_eq!(r, Ok(10));
    assert_eq!(bufs[0], b"abc");
    assert!(bufs[1].is_empty());
    assert_eq!(bufs[2], b"defg");
    assert_eq!(bufs[3], [b'h', b'i', b'j', FILL, FILL]);
    assert_eq!((mflags, cmsgs.len(), controllen), (0, 0, 0));
}

#[test]
fn recvmsg_name_is_untouched_and_namelen_zero() {
    let t = Pair::new();
    t.send(b"z");
    let (r, _, _, _, _, namelen, name) = recvmsg(t.a(), t.c, &[4], 0, 0);
    assert_eq!(r, Ok(1));
    assert_eq!(namelen, 0);
    assert!(name.iter().all(|&b| b == FILL));
    // recvfrom() with an address buffer: the length comes back 0, the buffer is untouched.
    t.send(b"y");
    let mut buf = [0u8; 4];
    let mut addr = [FILL; 16];
    let mut alen = 16u32;
    assert_eq!(t.a().recvfrom(t.c, Some(&mut buf), 4, 0, Some(&mut addr), Some(&mut alen)), Ok(1));
    assert_eq!(alen, 0);
    assert!(addr.iter().all(|&b| b == FILL));
    // A NULL msg_name leaves msg_namelen alone.
    t.send(b"x");
    let mut b = [0u8; 4];
    let mut msg = MsgHdr { namelen: 77, iov: vec![IoVec { len: 4, base: Some(&mut b[..]) }], ..Default::default() };
    assert_eq!(t.a().recvmsg(t.c, &mut msg, 0), Ok(1));
    assert_eq!(msg.namelen, 77);
}

#[test]
fn tcp_inq_cmsg_and_fin_hint() {
    let t = Pair::new();
    t.setopt(SOL_TCP, TCP_INQ, 1);
    t.send(b"hello");
    let (r, _, mflags, cmsgs, controllen, ..) = recvmsg(t.a(), t.c, &[2], 64, 0);
    assert_eq!(r, Ok(2));
    assert_eq!(mflags, 0);
    assert_eq!(controllen, 24, "CMSG_SPACE(sizeof(int))");
    assert_eq!(cmsgs, vec![Cmsg { level: SOL_TCP, ty: TCP_CM_INQ, len: 20, data: 3i32.to_ne_bytes().to_vec() }]);
    t.peer_shutdown();
    let (r, _, _, cmsgs, ..) = recvmsg(t.a(), t.c, &[8], 64, 0);
    assert_eq!(r, Ok(3));
    assert_eq!(cmsgs[0].data, 1i32.to_ne_bytes(), "1 after a FIN, so the reader reads the EOF");
    // Also on MSG_OOB reads and errors-free zero reads.
    let (r, _, _, cmsgs, ..) = recvmsg(t.a(), t.c, &[8], 64, 0);
    assert_eq!(r, Ok(0));
    assert_eq!(cmsgs[0].data, 1i32.to_ne_bytes());
    assert_eq!(t.getopt(SOL_TCP, TCP_INQ), 1);
}

#[test]
fn ctrunc_when_control_buffer_too_small_or_null() {
    let t = Pair::new();
    t.setopt(SOL_TCP, TCP_INQ, 1);
    t.send(b"hello!");
    // Room for the header only: written with cmsg_len 16, MSG_CTRUNC.
    let (r, _, mflags, cmsgs, controllen, ..) = recvmsg(t.a(), t.c, &[2], 16, 0);
    assert_eq!(r, Ok(2));
    assert_eq!(mflags, MSG_CTRUNC);
    assert_eq!(controllen, 16);
    assert_eq!(cmsgs.len(), 1);
    assert_eq!(cmsgs[0].len, 16);
    assert!(cmsgs[0].data.is_empty());
    // Less than a header: nothing written.
    let (r, _, mflags, cmsgs, controllen, ..) = recvmsg(t.a(), t.c, &[1], 12, 0);
    assert_eq!(r, Ok(1));
    assert_eq!((mflags, cmsgs.len(), controllen), (MSG_CTRUNC, 0, 0));
    // NULL control buffer.
    let (r, _, mflags, _, controllen, ..) = recvmsg(t.a(), t.c, &[1], 0, 0);
    assert_eq!(r, Ok(1));
    assert_eq!((mflags, controllen), (MSG_CTRUNC, 0));
    // MSG_CMSG_CLOEXEC is echoed in msg_flags.
    let (r, _, mflags, ..) = recvmsg(t.a(), t.c, &[1], 64, 0x4000_0000);
    assert_eq!(r, Ok(1));
    assert_eq!(mflags, 0x4000_0000);
}

#[test]
fn timestamp_cmsgs() {
    let t = Pair::new();
    t.setopt(SOL_SOCKET, SO_TIMESTAMP, 1);
    t.setopt(SOL_TCP, TCP_INQ, 1);
    t.send(b"hello");
    let (r, _, _, cmsgs, controllen, ..) = recvmsg(t.a(), t.c, &[8], 128, 0);
    assert_eq!(r, Ok(5));
    assert_eq!(controllen, 32 + 24);
    assert_eq!((cmsgs[0].level, cmsgs[0].ty, cmsgs[0].data.len()), (SOL_SOCKET, SO_TIMESTAMP, 16));
    assert_eq!((cmsgs[1].level, cmsgs[1].ty), (SOL_TCP, TCP_CM_INQ));
    t.setopt(SOL_SOCKET, SO_TIMESTAMPNS, 1);
    assert_eq!(t.getopt(SOL_SOCKET, SO_TIMESTAMP), 0);
    t.send(b"x");
    let (_, _, _, cmsgs, ..) = recvmsg(t.a(), t.c, &[8], 128, 0);
    assert_eq!((cmsgs[0].ty, cmsgs[0].data.len()), (SO_TIMESTAMPNS, 16));
    // No skb read (EOF): no timestamp.
    t.peer_shutdown();
    let (r, _, _, cmsgs, ..) = recvmsg(t.a(), t.c, &[8], 128, 0);
    assert_eq!(r, Ok(0));
    assert_eq!(cmsgs.len(), 1);
    assert_eq!(cmsgs[0].ty, TCP_CM_INQ);
}

/// `security_socket_recvmsg()`: a policy that denies returns its errno and consumes nothing;
/// it is consulted on every receive, MSG_PEEK and MSG_OOB included.
struct DenyAll(std::sync::atomic::AtomicUsize);
impl SecurityPolicy for DenyAll {
    fn socket_recvmsg(&self, _req: &RecvRequest) -> Result<(), Errno> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(Errno::EACCES)
    }
}

#[test]
fn security_hook_denial_consumes_nothing() {
    let t = Pair::new();
    t.send(b"secret");
    let deny = Arc::new(DenyAll(std::sync::atomic::AtomicUsize::new(0)));
    *t.a().core.security.write() = Some(deny.clone());
    assert_eq!(t.read(10, 0), Err(Errno::EACCES));
    assert_eq!(t.read(10, MSG_PEEK), Err(Errno::EACCES));
    assert_eq!(t.read(10, MSG_OOB), Err(Errno::EACCES));
    let mut msg = MsgHdr { iov: vec![IoVec { len: 4, base: None }], ..Default::default() };
    assert_eq!(t.a().recvmsg(t.c, &mut msg, 0), Err(Errno::EACCES), "denied before any copy is tried");
    assert_eq!(deny.0.load(std::sync::atomic::Ordering::SeqCst), 4);
    *t.a().core.security.write() = None;
    assert_eq!(t.read(10, 0), ok(b"secret"));
}
