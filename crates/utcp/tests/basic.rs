//! Cross-stack scenarios on the virtual clock.

use std::net::SocketAddrV4;
use utcp::api::{ADDR_A, ADDR_B};
use utcp::netdev::memlink::LinkConfig;
use utcp::sim::SimNet;
use utcp::syscall::*;
use utcp::time::Duration;
use utcp::Errno;

#[test]
fn connect_send_recv_close() {
    let net = SimNet::new(LinkConfig::default());
    let (a, b) = (&net.a.stack, &net.b.stack);
    let l = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    b.bind(l, SocketAddrV4::new(ADDR_B, 80)).unwrap();
    b.listen(l, 16).unwrap();
    let c = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    assert_eq!(a.connect(c, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::EINPROGRESS));
    net.settle();
    let (s, peer) = b.accept4(l, 0).expect("accepted");
    assert_eq!(*peer.ip(), ADDR_A);
    assert_eq!(a.connect(c, SocketAddrV4::new(ADDR_B, 80)), Ok(()));
    let msg = b"hello, world";
    assert_eq!(a.send(c, Some(msg), msg.len(), 0), Ok(msg.len()));
    net.settle();
    let mut buf = [0u8; 64];
    let n = b.recv(s, Some(&mut buf), 64, 0).unwrap();
    assert_eq!(&buf[..n], msg);
    assert_eq!(b.recv(s, Some(&mut buf), 64, utcp::tcp::recvmsg::MSG_DONTWAIT), Err(Errno::EAGAIN));
    a.close(c).unwrap();
    net.advance(Duration::from_millis(100));
    assert_eq!(b.recv(s, Some(&mut buf), 64, 0), Ok(0));
    assert_eq!(b.recv(s, Some(&mut buf), 64, 0), Ok(0));
    b.close(s).unwrap();
    net.advance(Duration::from_secs(1));
}

/// The README's echo, written with nothing but the crate root's re-exports (issue 14): the
/// stable surface is enough for a user program.
#[test]
fn the_root_surface_alone_runs_the_readme_echo() {
    use std::io::{Read, Write};
    let (a, b) = utcp::memlink_pair(utcp::LinkConfig::default());
    let listener = utcp::TcpListener::bind(&b.stack, SocketAddrV4::new(utcp::ADDR_B, 7), 4).expect("bind");
    let server = std::thread::spawn(move || {
        let (mut s, _peer) = listener.accept().expect("accept");
        let mut buf = [0u8; 64];
        loop {
            let n = s.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n]).expect("write");
        }
    });
    let mut c = utcp::TcpStream::connect(&a.stack, SocketAddrV4::new(utcp::ADDR_B, 7)).expect("connect");
    c.write_all(b"hello, utcp\n").expect("write");
    let mut back = [0u8; 12];
    c.read_exact(&mut back).expect("read back");
    assert_eq!(&back, b"hello, utcp\n");
    c.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).expect("EOF");
    assert!(rest.is_empty());
    server.join().expect("server");
    // Counters and sysctls through the stack's accessors, as a program reads them.
    let segs = a.stack.mib().tcp_get(utcp::mib::TcpMib::OutSegs);
    assert!(segs >= 3, "SYN, data and FIN at least: {segs}");
    assert_eq!(a.stack.mib().tcp_get(utcp::mib::TcpMib::RetransSegs), 0, "a clean link");
    a.stack.sysctl().set_by_name("net.ipv4.tcp_syn_retries", "3").expect("an honoured sysctl");
    assert_eq!(a.stack.sysctl().get_by_name("net.ipv4.tcp_syn_retries").as_deref(), Ok("3"));
}
