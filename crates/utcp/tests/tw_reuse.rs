//! net.ipv4.tcp_tw_reuse and tcp_tw_reuse_delay: connect() takes over the 4-tuple of a
//! timewait sock (tcp_twsk_unique(), __inet_check_established()), on the virtual clock and on
//! real threads. Linux 6.18 behaviour pinned by tests/packetdrill/tw_reuse*.pkt.

use std::io::{Read, Write};
use std::net::SocketAddrV4;
use std::sync::Arc;
use utcp::api::{memlink_pair, TcpListener, TcpStream, ADDR_A, ADDR_B};
use utcp::mib::{LinuxMib, TcpMib};
use utcp::netdev::memlink::LinkConfig;
use utcp::sim::SimNet;
use utcp::socket::sock::Sock;
use utcp::syscall::*;
use utcp::tcp::TcpState;
use utcp::time::Duration;
use utcp::Errno;

const PORT: u16 = 40000;

/// A's sockets in TIME_WAIT.
fn time_wait(st: &utcp::Stack) -> Vec<Arc<Sock>> {
    st.core.sockets().into_iter().filter(|sk| sk.peek_tp(|tp| tp.state == TcpState::TimeWait)).collect()
}

/// With A's ephemeral range the one port 40000, connects A to B:80, closes from A first and returns A's timewait sock.
fn tw_on_the_only_port(net: &SimNet, l: i32) -> Arc<Sock> {
    let (a, b) = (&net.a.stack, &net.b.stack);
    let c = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    assert_eq!(a.connect(c, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::EINPROGRESS));
    assert_eq!(a.getsockname(c).unwrap().port(), PORT);
    net.advance(Duration::from_millis(100));
    let (s, _) = b.accept4(l, SOCK_NONBLOCK).expect("accepted");
    a.close(c).unwrap();
    net.advance(Duration::from_millis(100));
    b.close(s).unwrap();
    net.advance(Duration::from_millis(100));
    let tw = time_wait(a);
    assert_eq!(tw.len(), 1, "A holds one timewait sock");
    tw[0].clone()
}

/// A SimNet (1 ms one way, so the state connect() sets up can be read before the answer).
fn setup(tw_reuse: &str) -> (SimNet, i32) {
    let net = SimNet::new(LinkConfig { delay: Duration::from_millis(1), ..LinkConfig::default() });
    let (a, b) = (&net.a.stack, &net.b.stack);
    a.core.net.sysctl.set_by_name("net.ipv4.ip_local_port_range", "40000 40000").unwrap();
    a.core.net.sysctl.set_by_name("net.ipv4.tcp_tw_reuse", tw_reuse).unwrap();
    let l = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    b.bind(l, SocketAddrV4::new(ADDR_B, 80)).unwrap();
    b.listen(l, 16).unwrap();
    (net, l)
}

/// tcp_tw_reuse=1: the one port's 4-tuple is EADDRNOTAVAIL up to tcp_tw_reuse_delay (1000
/// ms) after the socket entered TIME_WAIT (time_after32: strictly after), then connect()
/// recycles the timewait sock: write_seq = tw_snd_nxt + 65535 + 2, ts_recent taken over,
/// TWRecycled counted, the timewait sock gone, and the new connection completes.
#[test]
fn tw_reuse_1_recycles_the_only_port_after_the_delay() {
    let (net, l) = setup("1");
    let (a, b) = (&net.a.stack, &net.b.stack);
    let tw = tw_on_the_only_port(&net, l);
    let (snd_nxt, ts_recent, entry) = tw.peek_tp(|tp| (tp.snd_nxt, tp.ts_recent, tp.tw_entry_stamp));
    assert_ne!(ts_recent, 0, "timestamps in use");
    let c = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    assert_eq!(a.connect(c, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::EADDRNOTAVAIL));
    // Exactly the delay: not yet.
    net.advance(entry + Duration::from_millis(1000) - net.now());
    assert_eq!(a.connect(c, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::EADDRNOTAVAIL));
    assert_eq!(a.core.net.mib.get(LinuxMib::TWRecycled), 0);
    net.advance(Duration::from_millis(1));
    assert_eq!(a.connect(c, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::EINPROGRESS));
    assert_eq!(a.getsockname(c).unwrap().port(), PORT);
    assert_eq!(a.core.net.mib.get(LinuxMib::TWRecycled), 1);
    assert_eq!(tw.peek_tp(|tp| tp.state), TcpState::Close, "the timewait sock is killed");
    assert!(time_wait(a).is_empty());
    let new = a.core.sockets();
    assert_eq!(new.len(), 1);
    let (iss, recent) = new[0].peek_tp(|tp| (tp.iss, tp.ts_recent));
    assert_eq!(iss, snd_nxt + 65537, "write_seq = tw_snd_nxt + 65535 + 2");
    assert_eq!(recent, ts_recent, "ts_recent taken over");
    net.advance(Duration::from_millis(100));
    let (s, peer) = b.accept4(l, SOCK_NONBLOCK).expect("the new connection completes");
    assert_eq!(peer, SocketAddrV4::new(ADDR_A, PORT));
    assert_eq!(a.write(c, Some(b"again"), 5), Ok(5));
    net.advance(Duration::from_millis(100));
    let mut buf = [0u8; 8];
    assert_eq!(b.read(s, Some(&mut buf), 8), Ok(5));
    assert_eq!(&buf[..5], b"again");
    assert_eq!(a.core.net.mib.tcp_get(TcpMib::RetransSegs), 0);
}

/// tcp_tw_reuse_delay is read: 1 ms.
#[test]
fn tw_reuse_delay_is_read() {
    let (net, l) = setup("1");
    let a = &net.a.stack;
    a.core.net.sysctl.set_by_name("net.ipv4.tcp_tw_reuse_delay", "1").unwrap();
    let tw = tw_on_the_only_port(&net, l);
    let entry = tw.peek_tp(|tp| tp.tw_entry_stamp);
    let c = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    if net.now() <= entry + Duration::from_millis(1) {
        assert_eq!(a.connect(c, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::EADDRNOTAVAIL));
        net.advance(entry + Duration::from_millis(2) - net.now());
    }
    assert_eq!(a.connect(c, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::EINPROGRESS));
    assert_eq!(a.core.net.mib.get(LinuxMib::TWRecycled), 1);
}

/// tcp_tw_reuse=0, or 2 (loopback only) between non-loopback addresses, or a connection
/// without timestamps: the port stays EADDRNOTAVAIL for all of TIME_WAIT.
#[test]
fn no_reuse_with_0_with_2_off_loopback_or_without_timestamps() {
    for (reuse, ts) in [("0", "1"), ("2", "1"), ("1", "0")] {
        let (net, l) = setup(reuse);
        let a = &net.a.stack;
        a.core.net.sysctl.set_by_name("net.ipv4.tcp_timestamps", ts).unwrap();
        let tw = tw_on_the_only_port(&net, l);
        net.advance(Duration::from_secs(30));
        let c = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
        let what = format!("tcp_tw_reuse={reuse} tcp_timestamps={ts}");
        assert_eq!(a.connect(c, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::EADDRNOTAVAIL), "{what}");
        assert_eq!(tw.peek_tp(|tp| tp.state), TcpState::TimeWait, "{what}");
        assert_eq!(a.core.net.mib.get(LinuxMib::TWRecycled), 0, "{what}");
        // TIME_WAIT ends (60 s): the port is free again.
        net.advance(Duration::from_secs(31));
        assert_eq!(a.connect(c, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::EINPROGRESS), "{what}");
    }
}

/// bind() to the timewait sock's port (SO_REUSEADDR) then connect(): taken over at once,
/// whatever tcp_tw_reuse says (__inet_check_established() without `twp`), when the old
/// connection had timestamps; without them EADDRNOTAVAIL.
#[test]
fn a_bound_port_takes_a_timewait_tuple_over_at_once() {
    for ts in ["1", "0"] {
        let (net, l) = setup("0");
        let a = &net.a.stack;
        a.core.net.sysctl.set_by_name("net.ipv4.tcp_timestamps", ts).unwrap();
        let tw = tw_on_the_only_port(&net, l);
        let snd_nxt = tw.peek_tp(|tp| tp.snd_nxt);
        let c = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
        assert_eq!(a.bind(c, SocketAddrV4::new(ADDR_A, PORT)), Err(Errno::EADDRINUSE));
        a.setsockopt_int(c, SOL_SOCKET, opt::SO_REUSEADDR, 1).unwrap();
        a.bind(c, SocketAddrV4::new(ADDR_A, PORT)).unwrap();
        let r = a.connect(c, SocketAddrV4::new(ADDR_B, 80));
        if ts == "0" {
            assert_eq!(r, Err(Errno::EADDRNOTAVAIL));
            assert_eq!(tw.peek_tp(|tp| tp.state), TcpState::TimeWait);
            continue;
        }
        assert_eq!(r, Err(Errno::EINPROGRESS));
        assert_eq!(a.core.net.mib.get(LinuxMib::TWRecycled), 1);
        assert_eq!(tw.peek_tp(|tp| tp.state), TcpState::Close);
        let iss = a.core.sockets().iter().find(|sk| !Arc::ptr_eq(sk, &tw)).unwrap().peek_tp(|tp| tp.iss);
        assert_eq!(iss, snd_nxt + 65537);
        net.advance(Duration::from_millis(100));
        assert!(net.b.stack.accept4(l, SOCK_NONBLOCK).is_ok());
    }
}

/// Real threads, real clock: three connections in a row through the one ephemeral port, each
/// recycling its predecessor's timewait sock once tcp_tw_reuse_delay (1 ms) has passed; the
/// maximal delay (60 s) keeps the port EADDRNOTAVAIL. Every stream intact, the link clean.
#[test]
fn tw_reuse_on_real_threads() {
    let (a, b) = memlink_pair(LinkConfig::default());
    let sys = &a.stack.core.net.sysctl;
    sys.set_by_name("net.ipv4.ip_local_port_range", "40000 40000").unwrap();
    sys.set_by_name("net.ipv4.tcp_tw_reuse", "1").unwrap();
    let l = TcpListener::bind(&b.stack, SocketAddrV4::new(ADDR_B, 5020), 4).unwrap();
    let limit = std::time::Duration::from_secs(60);
    for round in 0..3u8 {
        let t = std::time::Instant::now();
        let mut c = loop {
            match TcpStream::connect(&a.stack, SocketAddrV4::new(ADDR_B, 5020)) {
                Ok(c) => break c,
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(Errno::EADDRNOTAVAIL as i32), "round {round}");
                    assert!(round > 0 && t.elapsed() < limit, "round {round}: never recycled");
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        };
        let (mut s, _) = l.accept().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            got
        });
        let data: Vec<u8> = (0..200_000u32).map(|i| (i as u8) ^ round).collect();
        c.write_all(&data).unwrap();
        drop(c);
        assert_eq!(reader.join().unwrap(), data, "round {round}");
        while time_wait(&a.stack).len() != 1 {
            assert!(t.elapsed() < limit, "round {round}: no TIME_WAIT");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        if round == 0 {
            sys.set_by_name("net.ipv4.tcp_tw_reuse_delay", "60000").unwrap();
            let e = TcpStream::connect(&a.stack, SocketAddrV4::new(ADDR_B, 5020)).err().map(|e| e.raw_os_error());
            assert_eq!(e, Some(Some(Errno::EADDRNOTAVAIL as i32)));
            sys.set_by_name("net.ipv4.tcp_tw_reuse_delay", "1").unwrap();
        }
    }
    let m = &a.stack.core.net.mib;
    assert_eq!(m.get(LinuxMib::TWRecycled), 2);
    for h in [&a, &b] {
        let m = &h.stack.core.net.mib;
        assert_eq!(m.tcp_get(TcpMib::RetransSegs), 0, "retransmission on a clean link");
        assert_eq!(m.get(LinuxMib::TCPOFOQueue), 0);
        assert_eq!(m.get(LinuxMib::TCPLossProbes), 0);
        assert_eq!(m.get(LinuxMib::TCPDSACKRecv), 0);
    }
}
