//! SOL_SOCKET options and file ioctls as Linux 6.18 answers them on a TCP socket, with their
//! effects: SO_MARK on every frame (the listener's on its SYN-ACK, inherited by the child),
//! SO_BUF_LOCK stopping receive-buffer autotuning, SO_TIMESTAMP(NS)_NEW choosing the new
//! control-message types, SO_LOCK_FILTER guarding (absent) filters, FIONBIO switching a socket
//! between blocking and not, FIONREAD on a pipe, SO_COOKIE / SO_NETNS_COOKIE / SO_PEERNAME /
//! SO_LINGER read-back, bind() after a refused connection, SO_BINDTODEVICE deciding which
//! segments a socket sees, SO_MAX_PACING_RATE pacing the wire, SO_ZEROCOPY completions on the
//! error queue. The virtual clock, plus real threads with a real clock at the end.

mod common;

use common::*;
use std::net::SocketAddrV4;
use utcp::api::{ADDR_A, ADDR_B};
use utcp::syscall::opt::*;
use utcp::syscall::*;
use utcp::time::Duration;
use utcp::Errno;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn int(v: i32) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

/// `struct sock_fprog { u16 len; struct sock_filter *filter; }` (16 bytes).
fn fprog(len: u16, filter: u64) -> Vec<u8> {
    let mut v = vec![0u8; 16];
    v[..2].copy_from_slice(&len.to_ne_bytes());
    v[8..].copy_from_slice(&filter.to_ne_bytes());
    v
}

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

/// SO_MARK is `skb->mark` of every frame a socket builds: the connecting socket's SYN and
/// data, the listener's SYN-ACK, the accepted child's (inherited) data; a new mark applies to
/// the next frame. Any int is accepted (the caller is root) and reads back.
#[test]
fn so_mark_rides_on_every_frame() {
    let lab = Lab::new(ms(1));
    let l = lab.b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    lab.b.setsockopt_int(l, SOL_SOCKET, SO_MARK, 5).unwrap();
    lab.b.bind(l, SocketAddrV4::new(ADDR_B, 80)).unwrap();
    lab.b.listen(l, 4).unwrap();
    let c = lab.a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    lab.a.setsockopt_int(c, SOL_SOCKET, SO_MARK, -100).unwrap();
    assert_eq!(lab.a.getsockopt_int(c, SOL_SOCKET, SO_MARK), Ok(-100));
    let _ = lab.a.connect(c, SocketAddrV4::new(ADDR_B, 80));
    lab.advance(ms(10));
    let (s, _) = lab.b.accept4(l, SOCK_NONBLOCK).unwrap();
    assert_eq!(lab.b.getsockopt_int(s, SOL_SOCKET, SO_MARK), Ok(5), "the child inherits the mark");
    assert_eq!(lab.a.send(c, Some(b"ping"), 4, 0), Ok(4));
    assert_eq!(lab.b.send(s, Some(b"pong"), 4, 0), Ok(4));
    lab.advance(ms(10));
    let log = lab.log();
    assert!(log.iter().any(|p| p.from_a) && log.iter().any(|p| !p.from_a && p.has(SYN)));
    assert!(log.iter().filter(|p| p.from_a).all(|p| p.mark == -100i32 as u32), "A's frames");
    assert!(log.iter().filter(|p| !p.from_a).all(|p| p.mark == 5), "B's SYN-ACK and data");
    lab.clear_log();
    lab.a.setsockopt_int(c, SOL_SOCKET, SO_MARK, 0).unwrap();
    assert_eq!(lab.a.send(c, Some(b"more"), 4, 0), Ok(4));
    lab.advance(ms(10));
    let log = lab.log();
    assert!(log.iter().any(|p| p.from_a && p.len == 4));
    assert!(log.iter().filter(|p| p.from_a).all(|p| p.mark == 0), "the new mark applies");
}

/// SO_BUF_LOCK sets and clears the SO_SNDBUF/SO_RCVBUF locks themselves: with
/// SOCK_RCVBUF_LOCK the receiver's buffer is not autotuned during a bulk transfer, without it
/// it grows. Bits beyond the two locks are EINVAL; SO_RCVBUF sets the lock it reports.
#[test]
fn so_buf_lock_stops_receive_autotuning() {
    let data = pattern(4 << 20, 7);
    let mut grown = Vec::new();
    for lock in [0, 2] {
        let lab = Lab::new(ms(1));
        let (c, s, _l) = lab.pair();
        assert_eq!(lab.b.setsockopt(s, SOL_SOCKET, SO_BUF_LOCK, &int(4)), Err(Errno::EINVAL));
        lab.b.setsockopt(s, SOL_SOCKET, SO_BUF_LOCK, &int(lock)).unwrap();
        assert_eq!(lab.b.getsockopt_int(s, SOL_SOCKET, SO_BUF_LOCK), Ok(lock));
        let before = lab.b.getsockopt_int(s, SOL_SOCKET, SO_RCVBUF).unwrap();
        transfer(&lab, c, s, &data);
        let after = lab.b.getsockopt_int(s, SOL_SOCKET, SO_RCVBUF).unwrap();
        grown.push(after > before);
    }
    assert_eq!(grown, vec![true, false], "autotuned without the lock, not with it");
    let lab = Lab::new(ms(1));
    let fd = lab.a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    lab.a.setsockopt_int(fd, SOL_SOCKET, SO_SNDBUF, 65536).unwrap();
    assert_eq!(lab.a.getsockopt_int(fd, SOL_SOCKET, SO_BUF_LOCK), Ok(1));
    // A negative SO_RCVBUF is a huge unsigned one: rmem_max, doubled.
    lab.a.setsockopt_int(fd, SOL_SOCKET, SO_RCVBUF, -1).unwrap();
    let max = lab.a.core.net.sysctl.rmem_max.get() as i32;
    assert_eq!(lab.a.getsockopt_int(fd, SOL_SOCKET, SO_RCVBUF), Ok(2 * max));
    assert_eq!(lab.a.getsockopt_int(fd, SOL_SOCKET, SO_BUF_LOCK), Ok(3));
}

fn recv_cmsg_types(st: &Stack, fd: i32) -> Vec<(i32, i32, usize)> {
    recv_with_cmsgs(st, fd, &mut [0u8; 16]).1
}

/// recvmsg into `buf`: the byte count and the control messages' (level, type, data length).
fn recv_with_cmsgs(st: &Stack, fd: i32, buf: &mut [u8]) -> (usize, Vec<(i32, i32, usize)>) {
    let n = buf.len();
    let mut ctl = [0u8; 128];
    let mut msg = MsgHdr {
        name: None,
        namelen: 0,
        iov: vec![IoVec { len: n, base: Some(buf) }],
        control: Some(&mut ctl[..]),
        controllen: 128,
        flags: 0,
    };
    let got = st.recvmsg(fd, &mut msg, 0).unwrap();
    let used = msg.controllen;
    (got, parse_cmsgs(&ctl[..used]).into_iter().map(|c| (c.level, c.ty, c.data.len())).collect())
}

/// SO_TIMESTAMP_NEW / SO_TIMESTAMPNS_NEW deliver SO_TIMESTAMP_NEW (63) / SO_TIMESTAMPNS_NEW
/// (64) control messages (16 bytes), the old names 29 / 35; each name reads back only for its
/// own variant, and turning one off turns receive timestamps off.
#[test]
fn so_timestamp_new_chooses_the_new_cmsg_types() {
    let lab = Lab::new(ms(1));
    let (c, s, _l) = lab.pair();
    for (name, ty) in [(SO_TIMESTAMP_NEW, 63), (SO_TIMESTAMPNS_NEW, 64), (SO_TIMESTAMP, 29), (SO_TIMESTAMPNS, 35)] {
        lab.b.setsockopt_int(s, SOL_SOCKET, name, 1).unwrap();
        for other in [SO_TIMESTAMP, SO_TIMESTAMPNS, SO_TIMESTAMP_NEW, SO_TIMESTAMPNS_NEW] {
            assert_eq!(lab.b.getsockopt_int(s, SOL_SOCKET, other), Ok((other == name) as i32), "{name} {other}");
        }
        assert_eq!(lab.a.send(c, Some(b"x"), 1, 0), Ok(1));
        lab.advance(ms(10));
        assert_eq!(recv_cmsg_types(&lab.b, s), vec![(SOL_SOCKET, ty, 16)], "option {name}");
    }
    lab.b.setsockopt_int(s, SOL_SOCKET, SO_TIMESTAMP_NEW, 0).unwrap();
    assert_eq!(lab.a.send(c, Some(b"x"), 1, 0), Ok(1));
    lab.advance(ms(10));
    assert_eq!(recv_cmsg_types(&lab.b, s), vec![]);
}

/// No filter can be attached (utcp runs no BPF: a well-formed `sock_fprog` is ENOPROTOOPT,
/// see docs/ARCHITECTURE.md), so detaching finds none (ENOENT); SO_LOCK_FILTER turns that
/// into EPERM and cannot be undone; SO_GET_FILTER reads an empty filter.
#[test]
fn so_lock_filter_guards_the_filter() {
    let lab = Lab::new(ms(1));
    let fd = lab.a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(lab.a.setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, &int(0)), Err(Errno::ENOENT));
    assert_eq!(lab.a.setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &int(0)), Err(Errno::EINVAL));
    assert_eq!(lab.a.setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog(0, 0x1000)), Err(Errno::EINVAL));
    assert_eq!(lab.a.setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog(1, 0)), Err(Errno::EINVAL));
    assert_eq!(lab.a.setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog(1, 0x1000)), Err(Errno::ENOPROTOOPT));
    let mut out = [0xAAu8; 8];
    assert_eq!(lab.a.getsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &mut out), Ok(0));
    lab.a.setsockopt_int(fd, SOL_SOCKET, SO_LOCK_FILTER, 1).unwrap();
    assert_eq!(lab.a.getsockopt_int(fd, SOL_SOCKET, SO_LOCK_FILTER), Ok(1));
    assert_eq!(lab.a.setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, &int(0)), Err(Errno::EPERM));
    assert_eq!(lab.a.setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog(1, 0x1000)), Err(Errno::EPERM));
    assert_eq!(lab.a.setsockopt_int(fd, SOL_SOCKET, SO_LOCK_FILTER, 0), Err(Errno::EPERM));
    // SO_ATTACH_BPF takes a BPF program's fd: none open is EBADF, another file EINVAL.
    assert_eq!(lab.a.setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &int(99)), Err(Errno::EBADF));
    assert_eq!(lab.a.setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &int(fd)), Err(Errno::EINVAL));
    // reuseport_detach_prog(): EINVAL outside a reuseport group, ENOENT in one.
    assert_eq!(lab.a.setsockopt(fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &int(0)), Err(Errno::EINVAL));
    lab.a.setsockopt_int(fd, SOL_SOCKET, SO_REUSEPORT, 1).unwrap();
    assert_eq!(lab.a.setsockopt(fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &int(0)), Err(Errno::ENOENT));
}

/// FIONBIO sets or clears O_NONBLOCK (as F_SETFL does), FIOCLEX/FIONCLEX close-on-exec;
/// SIOCGSTAMP has no packet time on TCP (ENOENT); a pipe answers FIONREAD and nothing else.
#[test]
fn fionbio_and_file_ioctls() {
    let lab = Lab::new(ms(1));
    let (c, s, _l) = lab.pair();
    let mut on = 1;
    lab.b.ioctl_arg(s, FIONBIO, &mut on).unwrap();
    assert_eq!(lab.b.fcntl(s, 3, 0).map(|f| f & O_NONBLOCK), Ok(O_NONBLOCK));
    let mut buf = [0u8; 4];
    assert_eq!(lab.b.recv(s, Some(&mut buf), 4, 0), Err(Errno::EAGAIN));
    let mut off = 0;
    lab.b.ioctl_arg(s, FIONBIO, &mut off).unwrap();
    assert_eq!(lab.b.fcntl(s, 3, 0).map(|f| f & O_NONBLOCK), Ok(0));
    assert_eq!(lab.b.ioctl(s, FIOCLEX), Ok(0));
    assert_eq!(lab.b.fcntl(s, 1, 0), Ok(1));
    assert_eq!(lab.b.ioctl(s, FIONCLEX), Ok(0));
    assert_eq!(lab.b.fcntl(s, 1, 0), Ok(0));
    assert_eq!(lab.a.ioctl(c, SIOCGSTAMP), Err(Errno::ENOENT));
    let (r, w) = lab.a.pipe2(O_NONBLOCK).unwrap();
    assert_eq!(lab.a.write(w, Some(b"abc"), 3), Ok(3));
    assert_eq!(lab.a.ioctl(r, FIONREAD), Ok(3));
    assert_eq!(lab.a.ioctl(r, SIOCATMARK), Err(Errno::ENOTTY));
    assert_eq!(lab.a.ioctl(r, FIONBIO), Ok(0));
    assert_eq!(lab.a.fcntl(r, 3, 0).map(|f| f & O_NONBLOCK), Ok(0));
}

/// SO_COOKIE is 8 bytes unique to a socket (EINVAL for a shorter buffer); SO_NETNS_COOKIE
/// is the namespace's (exactly 8 bytes); SO_PEERNAME is the peer once there is one, EINVAL for
/// a buffer longer than the address; SO_PEERCRED of a TCP peer is pid 0, uid/gid -1.
#[test]
fn cookies_peername_and_peercred() {
    let lab = Lab::new(ms(1));
    let (c, s, _l) = lab.pair();
    let cookie = |st: &Stack, fd| {
        let mut b = [0u8; 16];
        assert_eq!(st.getsockopt(fd, SOL_SOCKET, SO_COOKIE, &mut b), Ok(8));
        u64::from_ne_bytes(b[..8].try_into().unwrap())
    };
    assert_ne!(cookie(&lab.a, c), cookie(&lab.b, s));
    assert_eq!(cookie(&lab.a, c), cookie(&lab.a, c));
    assert_eq!(lab.a.getsockopt(c, SOL_SOCKET, SO_COOKIE, &mut [0u8; 4]), Err(Errno::EINVAL));
    let ns = |st: &Stack, fd| {
        let mut b = [0u8; 8];
        assert_eq!(st.getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &mut b), Ok(8));
        u64::from_ne_bytes(b)
    };
    let fresh = lab.a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(ns(&lab.a, c), ns(&lab.a, fresh));
    assert_ne!(ns(&lab.a, c), ns(&lab.b, s));
    assert_eq!(lab.a.getsockopt(c, SOL_SOCKET, SO_NETNS_COOKIE, &mut [0u8; 16]), Err(Errno::EINVAL));
    let mut name = [0u8; 16];
    assert_eq!(lab.a.getsockopt(c, SOL_SOCKET, SO_PEERNAME, &mut name), Ok(16));
    assert_eq!(name, sockaddr_in(SocketAddrV4::new(ADDR_B, lab.b.getsockname(s).unwrap().port())));
    assert_eq!(lab.a.getsockopt(c, SOL_SOCKET, SO_PEERNAME, &mut [0u8; 32]), Err(Errno::EINVAL));
    assert_eq!(lab.a.getsockopt(fresh, SOL_SOCKET, SO_PEERNAME, &mut name), Err(Errno::ENOTCONN));
    let mut cred = [0u8; 12];
    assert_eq!(lab.a.getsockopt(c, SOL_SOCKET, SO_PEERCRED, &mut cred), Ok(12));
    assert_eq!(cred, [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(lab.a.getsockopt(c, SOL_SOCKET, SO_PEERGROUPS, &mut cred), Err(Errno::ENODATA));
    assert_eq!(lab.a.setsockopt_int(c, SOL_SOCKET, SO_PASSCRED, 1), Err(Errno::EOPNOTSUPP));
}

/// SO_LINGER's `l_linger` is unsigned long to the kernel: -1 is MAX_SCHEDULE_TIMEOUT, which
/// reads back as `MAX_SCHEDULE_TIMEOUT / HZ` truncated to an int; SO_RCVTIMEO_NEW is the
/// same 16-byte timeval as SO_RCVTIMEO on 64-bit.
#[test]
fn linger_forever_and_new_timeouts() {
    let lab = Lab::new(ms(1));
    let fd = lab.a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    let mut l = int(1);
    l.extend(int(-1));
    lab.a.setsockopt(fd, SOL_SOCKET, SO_LINGER, &l).unwrap();
    let mut out = [0u8; 8];
    assert_eq!(lab.a.getsockopt(fd, SOL_SOCKET, SO_LINGER, &mut out), Ok(8));
    assert_eq!(i32::from_ne_bytes(out[4..].try_into().unwrap()), (i64::MAX / 250) as i32);
    let mut tv = 2i64.to_ne_bytes().to_vec();
    tv.extend(0i64.to_ne_bytes());
    lab.a.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO_NEW, &tv).unwrap();
    let mut back = [0u8; 16];
    assert_eq!(lab.a.getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &mut back), Ok(16));
    assert_eq!(back[..], tv[..]);
}

/// A refused connection gives its automatically bound port back, so the socket may bind
/// again (Linux's `inet_num` is 0 after `tcp_done`); broadcast and multicast addresses are
/// valid bind addresses; a non-local address is checked before the socket's state.
#[test]
fn bind_after_refused_connect_and_address_classes() {
    let lab = Lab::new(ms(1));
    let fd = lab.a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    let _ = lab.a.connect(fd, SocketAddrV4::new(ADDR_B, 9));
    lab.advance(ms(10));
    assert_eq!(lab.a.getsockopt_int(fd, SOL_SOCKET, SO_ERROR), Ok(Errno::ECONNREFUSED as i32));
    lab.a.bind(fd, SocketAddrV4::new(ADDR_A, 0)).unwrap();
    assert_eq!(lab.a.bind(fd, SocketAddrV4::new(ADDR_A, 0)), Err(Errno::EINVAL));
    assert_eq!(lab.a.bind(fd, SocketAddrV4::new([198, 51, 100, 7].into(), 0)), Err(Errno::EADDRNOTAVAIL));
    for ip in [[255, 255, 255, 255], [224, 0, 0, 1]] {
        let f = lab.a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
        lab.a.bind(f, SocketAddrV4::new(ip.into(), 0)).unwrap();
    }
}

/// SO_BINDTODEVICE / SO_BINDTOIFINDEX: utcp's namespace has `lo` (1) and its interface
/// `eth0` (2). A listener bound to `lo` does not see the interface's SYNs (RST), one bound to
/// `eth0` does; a connected socket rebound to `lo` no longer matches its segments (the peer
/// is reset); a connection from a socket bound to `lo` never leaves (its SYNs are dropped,
/// InAddrErrors) and times out; an index no device has is ENODEV at connect().
#[test]
fn bindtodevice_decides_which_segments_a_socket_sees() {
    use utcp::mib::IpMib;
    let lab = Lab::new(ms(1));
    let lo = lab.b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    lab.b.setsockopt(lo, SOL_SOCKET, SO_BINDTODEVICE, b"lo").unwrap();
    assert_eq!(lab.b.getsockopt_int(lo, SOL_SOCKET, SO_BINDTOIFINDEX), Ok(1));
    let mut name = [0xAAu8; 16];
    assert_eq!(lab.b.getsockopt(lo, SOL_SOCKET, SO_BINDTODEVICE, &mut name), Ok(3));
    assert_eq!(&name[..3], b"lo\0");
    assert_eq!(lab.b.getsockopt(lo, SOL_SOCKET, SO_BINDTODEVICE, &mut [0u8; 2]), Err(Errno::EINVAL));
    assert_eq!(lab.b.setsockopt(lo, SOL_SOCKET, SO_BINDTODEVICE, b"tun9"), Err(Errno::ENODEV));
    lab.b.bind(lo, SocketAddrV4::new(ADDR_B, 80)).unwrap();
    lab.b.listen(lo, 4).unwrap();
    let c = lab.a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    let _ = lab.a.connect(c, SocketAddrV4::new(ADDR_B, 80));
    lab.advance(ms(10));
    assert_eq!(lab.a.getsockopt_int(c, SOL_SOCKET, SO_ERROR), Ok(Errno::ECONNREFUSED as i32));
    // Rebound to eth0 (by name or index), the listener answers.
    lab.b.setsockopt(lo, SOL_SOCKET, SO_BINDTODEVICE, b"eth0\0junk").unwrap();
    assert_eq!(lab.b.getsockopt(lo, SOL_SOCKET, SO_BINDTODEVICE, &mut name), Ok(5));
    assert_eq!(&name[..5], b"eth0\0");
    let c = lab.a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    let _ = lab.a.connect(c, SocketAddrV4::new(ADDR_B, 80));
    lab.advance(ms(10));
    let (s, _) = lab.b.accept4(lo, SOCK_NONBLOCK).unwrap();
    assert_eq!(lab.b.getsockopt_int(s, SOL_SOCKET, SO_BINDTOIFINDEX), Ok(2), "the child inherits it");
    // Rebound to lo, the connection no longer receives: the peer's data is answered by RST.
    lab.b.setsockopt_int(s, SOL_SOCKET, SO_BINDTOIFINDEX, 1).unwrap();
    assert_eq!(lab.a.send(c, Some(b"ping"), 4, 0), Ok(4));
    lab.advance(ms(10));
    assert_eq!(lab.a.recv(c, Some(&mut [0u8; 4]), 4, 0), Err(Errno::ECONNRESET));
    // Unbinding ("" or index 0) makes it an ordinary socket again.
    lab.b.setsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, b"").unwrap();
    assert_eq!(lab.b.getsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, &mut name), Ok(0));
    // A connection through lo never reaches the wire.
    lab.clear_log();
    let before = lab.a.core.net.mib.ip_get(IpMib::InAddrErrors);
    let via_lo = lab.a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    lab.a.setsockopt(via_lo, SOL_SOCKET, SO_BINDTODEVICE, b"lo").unwrap();
    assert_eq!(lab.a.connect(via_lo, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::EINPROGRESS));
    lab.advance(Duration::from_secs(200));
    assert_eq!(lab.a.getsockopt_int(via_lo, SOL_SOCKET, SO_ERROR), Ok(Errno::ETIMEDOUT as i32));
    assert!(lab.log().iter().all(|p| !p.from_a), "nothing left through the interface");
    // tcp_write_timeout(): tcp_syn_retries (6) plus tcp_syn_linear_timeouts (4) retries in SYN_SENT.
    assert_eq!(lab.a.core.net.mib.ip_get(IpMib::InAddrErrors) - before, 11, "the SYN and its 6 + 4 retries");
    // An index no device has: accepted, then ENODEV at connect(); negative ones are EINVAL.
    let nodev = lab.a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    assert_eq!(lab.a.setsockopt_int(nodev, SOL_SOCKET, SO_BINDTOIFINDEX, -1), Err(Errno::EINVAL));
    lab.a.setsockopt_int(nodev, SOL_SOCKET, SO_BINDTOIFINDEX, 100).unwrap();
    assert_eq!(lab.a.getsockopt(nodev, SOL_SOCKET, SO_BINDTODEVICE, &mut name), Err(Errno::ENODEV));
    assert_eq!(lab.a.connect(nodev, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::ENODEV));
}

/// Gaps (ns) between A's consecutive data segments on the wire, with their lengths.
fn data_gaps(lab: &Lab) -> Vec<(u64, u32)> {
    let data: Vec<Pkt> = lab.log().into_iter().filter(|p| p.from_a && p.len > 0).collect();
    data.windows(2).map(|w| (w[1].t.nanos() - w[0].t.nanos(), w[0].len)).collect()
}

/// SO_MAX_PACING_RATE turns on TCP's internal pacing: after the first ten data segments
/// each transmission (a GSO packet) leaves `len / rate` after the previous (less at most half of it as credit for
/// lateness), so the transfer runs at the rate, not at the link's speed; without it segments
/// leave back to back. Reads back as 8 bytes, or 4 capped at ~0U; -1 is "no limit"; TCP_INFO
/// reports both rates. No retransmission on the way.
#[test]
fn max_pacing_rate_spaces_segments_on_the_wire() {
    use utcp::mib::{LinuxMib, TcpMib};
    const RATE: u64 = 1_000_000;
    let data = pattern(300_000, 9);
    let lab = Lab::new(ms(1));
    let (c, s, _l) = lab.pair();
    let mut out = [0u8; 8];
    assert_eq!(lab.a.getsockopt(c, SOL_SOCKET, SO_MAX_PACING_RATE, &mut out), Ok(8));
    assert_eq!(u64::from_ne_bytes(out), u64::MAX);
    lab.a.setsockopt(c, SOL_SOCKET, SO_MAX_PACING_RATE, &RATE.to_ne_bytes()).unwrap();
    assert_eq!(lab.a.getsockopt(c, SOL_SOCKET, SO_MAX_PACING_RATE, &mut out), Ok(8));
    assert_eq!(u64::from_ne_bytes(out), RATE);
    lab.clear_log();
    let t0 = lab.now();
    transfer(&lab, c, s, &data);
    let secs = (lab.now().nanos() - t0.nanos()) as f64 / 1e9;
    let gaps = data_gaps(&lab);
    assert!(gaps.len() > 100);
    // Pacing is per transmission: the packets of one GSO packet (tcp_tso_autosize(): 1 ms at
    // the rate plus gso_max_size >> (min_rtt >> tcp_tso_rtt_log)) leave together; the next
    // transmission leaves the previous one's length at the rate later (less at most half of
    // it as credit). `gaps[i]`: time from segment i to i + 1, and segment i's length.
    let mut burst = 0u64;
    for (i, &(gap, len)) in gaps.iter().enumerate().skip(10) {
        burst += len as u64;
        if gap == 0 {
            assert!(burst < 65_536, "segment {}: more than one GSO packet at once", i + 1);
            continue;
        }
        let full = burst * 1_000_000_000 / RATE;
        assert!(gap >= full / 2, "segment {}: {gap} ns after the previous ({full} ns at the rate)", i + 1);
        burst = 0;
    }
    // 300 kB at 1 MB/s: at least 0.15 s (the credit halves at most), here nearly 0.3 s.
    assert!(secs >= 0.15, "{secs} s");
    let info = lab.a.tcp_info(c).unwrap();
    assert_eq!(info.tcpi_max_pacing_rate, RATE);
    assert!(info.tcpi_pacing_rate <= RATE);
    assert_eq!(lab.a.core.net.mib.tcp_get(TcpMib::RetransSegs), 0);
    assert_eq!(lab.a.core.net.mib.get(LinuxMib::TCPLossProbes), 0);
    // 4-byte forms: an unsigned int, ~0U meaning no limit.
    lab.a.setsockopt_int(c, SOL_SOCKET, SO_MAX_PACING_RATE, -100).unwrap();
    assert_eq!(lab.a.getsockopt(c, SOL_SOCKET, SO_MAX_PACING_RATE, &mut out), Ok(8));
    assert_eq!(u64::from_ne_bytes(out), (-100i32) as u32 as u64);
    lab.a.setsockopt_int(c, SOL_SOCKET, SO_MAX_PACING_RATE, -1).unwrap();
    assert_eq!(lab.a.getsockopt(c, SOL_SOCKET, SO_MAX_PACING_RATE, &mut out), Ok(8));
    assert_eq!(u64::from_ne_bytes(out), u64::MAX);
    assert_eq!(lab.a.getsockopt_int(c, SOL_SOCKET, SO_MAX_PACING_RATE), Ok(-1));
    // Without the option nothing paces: the window leaves in bursts.
    let lab = Lab::new(ms(1));
    let (c, s, _l) = lab.pair();
    lab.clear_log();
    transfer(&lab, c, s, &data);
    assert!(data_gaps(&lab).iter().filter(|g| g.0 == 0).count() > 50, "back-to-back segments");
}

const MSG_ZEROCOPY: i32 = 0x400_0000;
const MSG_ERRQUEUE: i32 = 0x2000;

/// One IP_RECVERR control message: (level, type, ee_origin, ee_code, ee_info, ee_data).
type RecvErr = (i32, i32, u8, u8, u32, u32);

/// recvmsg(MSG_ERRQUEUE): (return, msg_flags, the IP_RECVERR messages).
fn recv_errqueue(st: &Stack, fd: i32) -> Result<(usize, i32, Vec<RecvErr>), Errno> {
    let mut buf = [0u8; 16];
    let mut ctl = [0u8; 256];
    let mut msg = MsgHdr {
        name: None,
        namelen: 0,
        iov: vec![IoVec { len: 16, base: Some(&mut buf[..]) }],
        control: Some(&mut ctl[..]),
        controllen: 256,
        flags: 0,
    };
    let n = st.recvmsg(fd, &mut msg, MSG_ERRQUEUE | 0x40)?;
    let (used, flags) = (msg.controllen, msg.flags);
    let notes = parse_cmsgs(&ctl[..used])
        .into_iter()
        .map(|c| {
            assert_eq!(c.data.len(), 32, "sock_extended_err + offender");
            assert_eq!(c.data[16..], [0u8; 16], "no offender");
            let u = |o: usize| u32::from_ne_bytes(c.data[o..o + 4].try_into().unwrap());
            (c.level, c.ty, c.data[4], c.data[6], u(8), u(12))
        })
        .collect();
    Ok((n, flags, notes))
}

/// SO_ZEROCOPY: a `send(MSG_ZEROCOPY)` that queued bytes takes the next id; once the peer
/// has acknowledged all its bytes a completion goes on the error queue (POLLERR), contiguous
/// ones merged, read by recvmsg(MSG_ERRQUEUE) as IP_RECVERR (origin 5, code COPIED: utcp
/// copies on send), no data. Without SO_ZEROCOPY MSG_ZEROCOPY changes nothing. A reset
/// purges the write queue: its sends complete too.
#[test]
fn zerocopy_completions_on_the_error_queue() {
    const POLLERR: u32 = 0x8;
    let lab = Lab::new(ms(1));
    let (c, s, _l) = lab.pair();
    assert_eq!(lab.a.setsockopt_int(c, SOL_SOCKET, SO_ZEROCOPY, 2), Err(Errno::EINVAL));
    assert_eq!(lab.a.send(c, Some(b"plain"), 5, MSG_ZEROCOPY), Ok(5));
    lab.advance(ms(10));
    assert_eq!(recv_errqueue(&lab.a, c), Err(Errno::EAGAIN), "no SO_ZEROCOPY, no completion");
    lab.a.setsockopt_int(c, SOL_SOCKET, SO_ZEROCOPY, 1).unwrap();
    assert_eq!(lab.a.getsockopt_int(c, SOL_SOCKET, SO_ZEROCOPY), Ok(1));
    for _ in 0..3 {
        assert_eq!(lab.a.send(c, Some(&[7u8; 1000]), 1000, MSG_ZEROCOPY), Ok(1000));
    }
    assert_eq!(lab.a.send(c, Some(b"copy"), 4, 0), Ok(4), "an ordinary send takes no id");
    assert_eq!(recv_errqueue(&lab.a, c), Err(Errno::EAGAIN), "not acknowledged yet");
    assert_eq!(file_poll(&lab.a, c) & POLLERR, 0);
    lab.advance(ms(10));
    assert_ne!(file_poll(&lab.a, c) & POLLERR, 0, "a completion raises POLLERR");
    assert_eq!(recv_errqueue(&lab.a, c), Ok((0, MSG_ERRQUEUE, vec![(0, 11, 5, 1, 0, 2)])));
    assert_eq!(recv_errqueue(&lab.a, c), Err(Errno::EAGAIN));
    assert_eq!(file_poll(&lab.a, c) & POLLERR, 0);
    let mut got = Vec::new();
    drain(&lab.b, s, &mut got).unwrap();
    assert_eq!(got.len(), 5 + 3000 + 4);
    // Sends the peer never acknowledges complete when a reset purges them.
    lab.drop_if(|p| p.from_a && p.len > 0);
    assert_eq!(lab.a.send(c, Some(&[1u8; 100]), 100, MSG_ZEROCOPY), Ok(100));
    assert_eq!(lab.a.send(c, Some(&[1u8; 100]), 100, MSG_ZEROCOPY), Ok(100));
    lab.advance(ms(5));
    assert_eq!(recv_errqueue(&lab.a, c), Err(Errno::EAGAIN));
    let mut l = int(1);
    l.extend(int(0));
    lab.b.setsockopt(s, SOL_SOCKET, SO_LINGER, &l).unwrap();
    lab.b.close(s).unwrap();
    lab.advance(ms(10));
    assert_eq!(recv_errqueue(&lab.a, c), Ok((0, MSG_ERRQUEUE, vec![(0, 11, 5, 1, 3, 4)])));
}

fn file_poll(st: &Stack, fd: i32) -> u32 {
    let mut fds = [PollFd { fd, events: 0x1 | 0x4, revents: 0 }];
    st.poll(&mut fds, Some(Duration::ZERO)).unwrap();
    fds[0].revents as u32
}

/// On real threads and the real clock: FIONBIO(0) makes a reader block until the peer's
/// data arrives from another thread; SO_TIMESTAMPNS_NEW stamps it with the new type;
/// SO_BUF_LOCK keeps the receive buffer where it was through a bulk transfer; a listener
/// bound to `lo` refuses connections from the interface, bound to `eth0` accepts them; a
/// SO_MAX_PACING_RATE sender is not faster than pacing allows; every MSG_ZEROCOPY send
/// completes once on the error queue.
#[test]
fn real_threads_socket_options() {
    use std::io::{Read, Write};
    use utcp::api::{memlink_pair, TcpListener, TcpStream};
    use utcp::netdev::memlink::LinkConfig;
    let (a, b) = memlink_pair(LinkConfig::default());
    let l = TcpListener::bind(&b.stack, SocketAddrV4::new(ADDR_B, 7000), 4).unwrap();
    let mut c = TcpStream::connect(&a.stack, SocketAddrV4::new(ADDR_B, 7000)).unwrap();
    let (mut s, _) = l.accept().unwrap();
    let sfd = s.fd();
    let mut nb = 1;
    b.stack.ioctl_arg(sfd, FIONBIO, &mut nb).unwrap();
    assert_eq!(b.stack.recv(sfd, Some(&mut [0u8; 4]), 4, 0), Err(Errno::EAGAIN));
    let mut blocking = 0;
    b.stack.ioctl_arg(sfd, FIONBIO, &mut blocking).unwrap();
    b.stack.setsockopt_int(sfd, SOL_SOCKET, SO_TIMESTAMPNS_NEW, 1).unwrap();
    b.stack.setsockopt_int(sfd, SOL_SOCKET, SO_BUF_LOCK, 2).unwrap();
    let rcvbuf = b.stack.getsockopt_int(sfd, SOL_SOCKET, SO_RCVBUF).unwrap();
    // A listener bound to lo refuses the interface's connections; bound to eth0 it accepts.
    let lo = TcpListener::bind(&b.stack, SocketAddrV4::new(ADDR_B, 7001), 4).unwrap();
    b.stack.setsockopt(lo.fd(), SOL_SOCKET, SO_BINDTODEVICE, b"lo").unwrap();
    assert_eq!(
        TcpStream::connect(&a.stack, SocketAddrV4::new(ADDR_B, 7001)).err().map(|e| e.raw_os_error()),
        Some(Some(111))
    );
    b.stack.setsockopt(lo.fd(), SOL_SOCKET, SO_BINDTODEVICE, b"eth0").unwrap();
    let _ok = TcpStream::connect(&a.stack, SocketAddrV4::new(ADDR_B, 7001)).unwrap();
    // A paced sender (SO_MAX_PACING_RATE) on another connection: the stream arrives intact,
    // and not faster than half the rate allows (the most the lateness credit can give).
    let l2 = TcpListener::bind(&b.stack, SocketAddrV4::new(ADDR_B, 7002), 4).unwrap();
    let mut pc = TcpStream::connect(&a.stack, SocketAddrV4::new(ADDR_B, 7002)).unwrap();
    let (mut ps, _) = l2.accept().unwrap();
    const RATE: u64 = 4_000_000;
    a.stack.setsockopt(pc.fd(), SOL_SOCKET, SO_MAX_PACING_RATE, &RATE.to_ne_bytes()).unwrap();
    let paced = pattern(1 << 20, 5);
    let start = std::time::Instant::now();
    let sender = std::thread::spawn(move || {
        pc.write_all(&pattern(1 << 20, 5)).unwrap();
        pc.shutdown(std::net::Shutdown::Write).unwrap();
        pc
    });
    let mut got = Vec::new();
    ps.read_to_end(&mut got).unwrap();
    let took = start.elapsed().as_secs_f64();
    let _pc = sender.join().unwrap();
    assert!(got == paced, "the paced stream arrives intact");
    // (1 MiB - 10 unpaced segments of at most 64 KiB) / (2 * 4 MB/s) > 0.04 s.
    assert!(took >= 0.04, "{took} s: faster than pacing allows");
    // MSG_ZEROCOPY on real threads: 16 sends, all completed (ids 0..=15) once acknowledged.
    let l3 = TcpListener::bind(&b.stack, SocketAddrV4::new(ADDR_B, 7003), 4).unwrap();
    let zc = TcpStream::connect(&a.stack, SocketAddrV4::new(ADDR_B, 7003)).unwrap();
    let (mut zs, _) = l3.accept().unwrap();
    let zfd = zc.fd();
    a.stack.setsockopt_int(zfd, SOL_SOCKET, SO_ZEROCOPY, 1).unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        zs.read_to_end(&mut got).unwrap();
        got
    });
    let chunk = pattern(65536, 11);
    for _ in 0..16 {
        let mut off = 0;
        while off < chunk.len() {
            off += a.stack.send(zfd, Some(&chunk[off..]), chunk.len() - off, MSG_ZEROCOPY).unwrap();
        }
    }
    zc.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(reader.join().unwrap().len(), 16 * 65536);
    let mut ids = Vec::new();
    let t = std::time::Instant::now();
    while ids.len() < 16 && t.elapsed() < std::time::Duration::from_secs(60) {
        match recv_errqueue(&a.stack, zfd) {
            Ok((0, MSG_ERRQUEUE, notes)) => {
                for (_, _, _, _, lo, hi) in notes {
                    ids.extend(lo..=hi);
                }
            }
            Err(Errno::EAGAIN) => std::thread::sleep(std::time::Duration::from_millis(1)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(ids, (0..16).collect::<Vec<u32>>(), "every send completes, in order, once");
    let writer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(20));
        c.write_all(b"wake").unwrap();
        c.write_all(&pattern(2 << 20, 3)).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        c
    });
    // Blocks (FIONBIO 0) until "wake" arrives.
    let mut first = [0u8; 4];
    assert_eq!(recv_with_cmsgs(&b.stack, sfd, &mut first), (4, vec![(SOL_SOCKET, 64, 16)]));
    assert_eq!(&first, b"wake");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    let _c = writer.join().unwrap();
    assert!(rest == pattern(2 << 20, 3), "the stream arrives intact");
    assert_eq!(b.stack.getsockopt_int(sfd, SOL_SOCKET, SO_RCVBUF), Ok(rcvbuf), "locked: not autotuned");
}
