//! The socket lock on real threads: ownership is a guard that always releases itself, and the
//! backlog that packet input fills while a process owns the socket is bounded where input can
//! see the bound (under `slock`), as `tcp_add_backlog()`/`sk_add_backlog()` bound it.

use bytes::Bytes;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{mpsc, Arc};
use std::time::Duration as StdDuration;
use utcp::api::{memlink_pair, TcpListener, TcpStream, ADDR_A, ADDR_B};
use utcp::mib::{LinuxMib, TcpMib};
use utcp::netdev::memlink::LinkConfig;
use utcp::seq::SeqNum;
use utcp::socket::sock::Sock;
use utcp::syscall::opt::SO_RCVBUF;
use utcp::syscall::{AF_INET, SOCK_STREAM, SOL_SOCKET};
use utcp::wire::{SackBlocks, TcpFlags, TcpRepr};
use utcp::{Errno, Stack};

/// Runs `f` on a thread; fails the test if it does not finish in 30 s (a socket left owned
/// makes every later call on it block forever).
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(StdDuration::from_secs(30)).unwrap_or_else(|_| panic!("{what}: blocked (socket left owned?)"))
}

fn sk_of(stack: &Stack, fd: i32) -> Arc<Sock> {
    stack.sockfd_lookup(fd).unwrap().sk.clone()
}

#[test]
fn failed_bind_leaves_the_socket_usable() {
    let (a, _b) = memlink_pair(LinkConfig::default());
    let st = a.stack.clone();
    // Hold a port so that the third bind fails with EADDRINUSE.
    let holder = st.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    st.bind(holder, SocketAddrV4::new(ADDR_A, 7000)).unwrap();
    let fd = st.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    let cases = [
        (SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 9), 7001), Errno::EADDRNOTAVAIL),
        (SocketAddrV4::new(ADDR_A, 7000), Errno::EADDRINUSE),
    ];
    for (addr, want) in cases {
        assert_eq!(st.bind(fd, addr), Err(want));
        assert!(!sk_of(&st, fd).owned_by_user(), "bind failing with {want:?} left the socket owned");
    }
    let st2 = st.clone();
    bounded("calls after failed binds", move || {
        st2.bind(fd, SocketAddrV4::new(ADDR_A, 7002)).unwrap();
        assert_eq!(st2.bind(fd, SocketAddrV4::new(ADDR_A, 7003)), Err(Errno::EINVAL)); // already bound
        assert!(!sk_of(&st2, fd).owned_by_user());
        st2.listen(fd, 4).unwrap();
        st2.getsockopt_int(fd, SOL_SOCKET, SO_RCVBUF).unwrap();
        st2.close(fd).unwrap();
    });
}

#[test]
fn a_panic_while_owning_releases_the_socket() {
    let (a, _b) = memlink_pair(LinkConfig::default());
    let fd = a.stack.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    let sk = sk_of(&a.stack, fd);
    let sk2 = sk.clone();
    let r = std::thread::spawn(move || {
        let _g = sk2.lock_sock();
        panic!("protocol bug while owning");
    })
    .join();
    assert!(r.is_err());
    assert!(!sk.owned_by_user());
    let st = a.stack.clone();
    bounded("close after a panicking owner", move || st.close(fd).unwrap());
}

/// An in-window data segment from B's peer (A) to B's socket `tp`, `k` MSS past `rcv_nxt`.
fn forged(h: &utcp::api::Host, sk: &Sock, k: u32) -> utcp::skb::Frame {
    let (sport, dport, seq, ack) = sk.peek_tp(|tp| (tp.dport, tp.sport, tp.rcv_nxt, tp.snd_nxt));
    let payload = vec![0x5au8; 1000];
    let repr = TcpRepr {
        src_port: sport,
        dst_port: dport,
        flags: TcpFlags::ACK,
        seq_number: SeqNum(seq.0.wrapping_add(1000 * (k + 1))),
        ack_number: ack,
        window_len: 1000,
        urgent_pointer: 0,
        max_seg_size: None,
        window_scale: None,
        sack_permitted: false,
        sack_ranges: SackBlocks::new(),
        timestamp: None,
        payload: &[],
    };
    utcp::ip::build_tcp_frame(&h.stack.core.net, ADDR_A, ADDR_B, &repr, Bytes::from(payload))
}

#[test]
fn backlog_flood_into_an_owned_socket_is_bounded_and_counted() {
    let (a, b) = memlink_pair(LinkConfig::default());
    let l = TcpListener::bind(&b.stack, SocketAddrV4::new(ADDR_B, 80), 4).unwrap();
    let _c = TcpStream::connect(&a.stack, SocketAddrV4::new(ADDR_B, 80)).unwrap();
    let (s, _) = l.accept().unwrap();
    let sk = sk_of(&b.stack, s.fd());
    let (rcvbuf, sndbuf) = sk.peek_tp(|tp| (tp.rcvbuf, tp.sndbuf));
    let limit = 2 * rcvbuf as u64 + sndbuf as u64 / 2 + 64 * 1024;
    let frames: Vec<_> = (0..20_000).map(|k| forged(&b, &sk, k)).collect();
    let drops0 = b.stack.core.net.mib.get(LinuxMib::TCPBacklogDrop);
    let insegs0 = b.stack.core.net.mib.tcp_get(TcpMib::InSegs);
    {
        let _owner = sk.lock_sock();
        for f in frames {
            b.stack.core.netif_receive(f);
        }
        let (n, len) = sk.backlog_len();
        assert!(n < 20_000, "backlog took all {n} segments");
        assert!((len as u64) <= limit + 4096, "backlog {len} bytes above its limit {limit}");
        let dropped = b.stack.core.net.mib.get(LinuxMib::TCPBacklogDrop) - drops0;
        assert_eq!(dropped as usize + n, 20_000, "every segment is either queued or a counted drop");
        // tcp_v4_rcv() counts each arriving segment, dropped or queued, before the backlog.
        assert_eq!(b.stack.core.net.mib.tcp_get(TcpMib::InSegs) - insegs0, 20_000);
    }
    // The guard's drop processed the backlog (out-of-order data, queued as such) and gave the
    // socket up.
    assert_eq!(sk.backlog_len(), (0, 0));
    assert!(!sk.owned_by_user());
    assert!(b.stack.core.net.mib.get(LinuxMib::TCPOFOQueue) > 0);
}
