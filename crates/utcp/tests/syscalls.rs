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
    let _ = connected;
    net.advance(Duration::from_millis(1));
}
