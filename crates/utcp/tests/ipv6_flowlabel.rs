//! IPv6 flow labels as Linux's TCP sets them: `ip6_make_flowlabel()` of `sk_txhash`, a random
//! hash per connection (`net_tx_rndhash`), re-drawn on an RTO when SO_TXREHASH /
//! `net.core.txrehash` is on (`sk_rethink_txhash`), off under `net.ipv6.auto_flowlabels` = 0 or
//! IPV6_AUTOFLOWLABEL = 0.

use std::net::Ipv6Addr;
use std::sync::{Arc, Mutex};
use utcp::api::ADDR6_B;
use utcp::errno::Errno;
use utcp::ip::ipv6_sockglue::IPV6_AUTOFLOWLABEL;
use utcp::mib::LinuxMib;
use utcp::netdev::memlink::LinkConfig;
use utcp::sim::SimNet;
use utcp::syscall::opt::SO_TXREHASH;
use utcp::syscall::{AF_INET, AF_INET6, SOCK_NONBLOCK, SOCK_STREAM, SOL_IPV6, SOL_SOCKET};
use utcp::time::Duration;
use utcp::wire::Ipv6Packet;

mod common;
use common::{tap_a, v6};

/// The flow labels of the IPv6 frames A sent from TCP port `sport`, in order.
fn labels(log: &Mutex<Vec<Vec<u8>>>, sport: u16) -> Vec<u32> {
    let log = log.lock().unwrap();
    log.iter()
        .filter_map(|f| Ipv6Packet::new_checked(&f[..]).ok().map(|p| (p.flow_label(), p.payload().to_vec())))
        .filter(|(_, tcp)| tcp.len() >= 20 && u16::from_be_bytes([tcp[0], tcp[1]]) == sport)
        .map(|(l, _)| l)
        .collect()
}

/// Connects A to B's listener on `port` (IPv6), sends a few bytes; returns A's port and the
/// socket B accepted.
fn connect(net: &SimNet, port: u16, before: impl FnOnce(i32)) -> (u16, i32) {
    let (a, b) = (net.a.stack.clone(), net.b.stack.clone());
    let l = b.socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    b.bind(l, v6(Ipv6Addr::UNSPECIFIED, port)).unwrap();
    b.listen(l, 4).unwrap();
    let c = a.socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    before(c);
    assert_eq!(a.connect(c, v6(ADDR6_B, port)), Err(Errno::EINPROGRESS));
    let mut s = None;
    assert!(net.run_until(Duration::from_secs(5), || {
        s = s.or_else(|| b.accept4_addr(l, 0).ok());
        s.is_some()
    }));
    assert_eq!(a.send(c, Some(b"hello"), 5, 0), Ok(5));
    net.run_until(Duration::from_millis(100), || false);
    (a.getsockname_addr(c).unwrap().port(), s.unwrap().0)
}

#[test]
fn each_connection_draws_its_own_label_and_keeps_it_on_a_clean_link() {
    let net = SimNet::new(LinkConfig::default());
    let log = tap_a(&net);
    let (p1, _) = connect(&net, 80, |_| {});
    let (p2, _) = connect(&net, 81, |_| {});
    let (l1, l2) = (labels(&log, p1), labels(&log, p2));
    assert!(l1.len() >= 3 && l2.len() >= 3, "{l1:?} {l2:?}");
    for l in [&l1, &l2] {
        assert!(l.iter().all(|x| *x == l[0] && *x != 0), "one non-zero label per connection: {l:?}");
    }
    assert_ne!(l1[0], l2[0], "each connection has its own label");
}

/// A SYN to an address nobody answers: each RTO (tcp_write_timeout → sk_rethink_txhash)
/// gives the retransmitted SYN a new label when `txrehash` is on, none when it is off.
fn syn_labels(net: &SimNet, setup: impl FnOnce(i32)) -> (Vec<u32>, u64) {
    let log = tap_a(net);
    let a = net.a.stack.clone();
    let c = a.socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    setup(c);
    let nobody = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x99);
    assert_eq!(a.connect(c, v6(nobody, 80)), Err(Errno::EINPROGRESS));
    net.advance(Duration::from_millis(7500));
    let port = a.getsockname_addr(c).unwrap().port();
    (labels(&log, port), a.core.net.mib.get(LinuxMib::TcpTimeoutRehash))
}

#[test]
fn an_rto_redraws_the_label_when_txrehash_is_on() {
    let net = SimNet::new(LinkConfig::default());
    let (l, rehash) = syn_labels(&net, |_| {});
    // The SYN and its retransmissions (linear, then backed-off RTOs).
    assert!(l.len() >= 4, "{l:?}");
    let distinct: std::collections::HashSet<_> = l.iter().collect();
    assert_eq!(distinct.len(), l.len(), "a new label after each RTO: {l:?}");
    assert!(!l.contains(&0));
    assert_eq!(rehash, l.len() as u64 - 1, "TcpExtTcpTimeoutRehash");
}

#[test]
fn an_rto_keeps_the_label_when_txrehash_is_off() {
    // SO_TXREHASH = 0 on the socket.
    let net = SimNet::new(LinkConfig::default());
    let a = net.a.stack.clone();
    let (l, rehash) = syn_labels(&net, |c| a.setsockopt_int(c, SOL_SOCKET, SO_TXREHASH, 0).unwrap());
    assert!(l.len() >= 4, "{l:?}");
    assert!(l.iter().all(|x| *x == l[0] && *x != 0), "{l:?}");
    assert_eq!(rehash, 0);
    // net.core.txrehash = 0 before the socket is made.
    let net = SimNet::new(LinkConfig::default());
    net.a.stack.core.net.sysctl.set_by_name("net.core.txrehash", "0").unwrap();
    let (l, rehash) = syn_labels(&net, |_| {});
    assert!(l.len() >= 4, "{l:?}");
    assert!(l.iter().all(|x| *x == l[0] && *x != 0), "{l:?}");
    assert_eq!(rehash, 0);
}

#[test]
fn auto_flowlabels_sysctl_decides_with_the_socket_option() {
    // 0: never a label, and IPV6_AUTOFLOWLABEL reads 0 until set.
    let net = SimNet::new(LinkConfig::default());
    let a = net.a.stack.clone();
    a.core.net.sysctl.set_by_name("net.ipv6.auto_flowlabels", "0").unwrap();
    let log = tap_a(&net);
    let (p, _) = connect(&net, 80, |c| assert_eq!(a.getsockopt_int(c, SOL_IPV6, IPV6_AUTOFLOWLABEL), Ok(0)));
    let l = labels(&log, p);
    assert!(l.len() >= 3 && l.iter().all(|x| *x == 0), "{l:?}");
    // 0 even for a socket that opts in.
    let (p, _) = connect(&net, 81, |c| a.setsockopt_int(c, SOL_IPV6, IPV6_AUTOFLOWLABEL, 1).unwrap());
    assert!(labels(&log, p).iter().all(|x| *x == 0));
    // 2 (opt-in): none by default, one for a socket that opts in.
    a.core.net.sysctl.set_by_name("net.ipv6.auto_flowlabels", "2").unwrap();
    let (p, _) = connect(&net, 82, |_| {});
    assert!(labels(&log, p).iter().all(|x| *x == 0));
    let (p, _) = connect(&net, 83, |c| a.setsockopt_int(c, SOL_IPV6, IPV6_AUTOFLOWLABEL, 1).unwrap());
    let l = labels(&log, p);
    assert!(l.iter().all(|x| *x == l[0] && *x != 0), "{l:?}");
    // 3 (forced): a label even for a socket that opts out.
    a.core.net.sysctl.set_by_name("net.ipv6.auto_flowlabels", "3").unwrap();
    let (p, _) = connect(&net, 84, |c| a.setsockopt_int(c, SOL_IPV6, IPV6_AUTOFLOWLABEL, 0).unwrap());
    let l = labels(&log, p);
    assert!(l.iter().all(|x| *x == l[0] && *x != 0), "{l:?}");
}

#[test]
fn ipv6_autoflowlabel_round_trips_as_linux() {
    // Checked on Linux 6.18: default 1; any non-zero int is 1; an optlen under sizeof(int)
    // sets 0; a 1-byte getsockopt reads 1 byte; an AF_INET socket answers ENOPROTOOPT.
    let net = SimNet::new(LinkConfig::default());
    let a = net.a.stack.clone();
    let c = a.socket(AF_INET6, SOCK_STREAM, 0).unwrap();
    assert_eq!(a.getsockopt_int(c, SOL_IPV6, IPV6_AUTOFLOWLABEL), Ok(1));
    a.setsockopt_int(c, SOL_IPV6, IPV6_AUTOFLOWLABEL, 0).unwrap();
    assert_eq!(a.getsockopt_int(c, SOL_IPV6, IPV6_AUTOFLOWLABEL), Ok(0));
    a.setsockopt_int(c, SOL_IPV6, IPV6_AUTOFLOWLABEL, 5).unwrap();
    assert_eq!(a.getsockopt_int(c, SOL_IPV6, IPV6_AUTOFLOWLABEL), Ok(1));
    a.setsockopt(c, SOL_IPV6, IPV6_AUTOFLOWLABEL, &[1]).unwrap();
    assert_eq!(a.getsockopt_int(c, SOL_IPV6, IPV6_AUTOFLOWLABEL), Ok(0));
    a.setsockopt_int(c, SOL_IPV6, IPV6_AUTOFLOWLABEL, 1).unwrap();
    let mut one = [0u8; 1];
    assert_eq!(a.getsockopt(c, SOL_IPV6, IPV6_AUTOFLOWLABEL, &mut one), Ok(1));
    assert_eq!(one, [1]);
    let c4 = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(a.setsockopt_int(c4, SOL_IPV6, IPV6_AUTOFLOWLABEL, 1), Err(Errno::ENOPROTOOPT));
}

/// A bare TCP SYN (no options) from `[src]:sport` to `[dst]:dport` in an IPv6 packet.
fn syn6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16) -> Vec<u8> {
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02;
    tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
    let pseudo = utcp::wire::ipv6::pseudo_header_checksum_v6(&src, &dst, 6, 20);
    let sum = !utcp::wire::combine(&[pseudo, utcp::wire::checksum(&tcp)]);
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());
    let mut b = vec![0u8; 40];
    let r = utcp::wire::Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: utcp::wire::ipv6::nexthdr::TCP,
        payload_len: 20,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    };
    r.emit(&mut Ipv6Packet::new_unchecked(&mut b[..]));
    b.extend_from_slice(&tcp);
    b
}

/// A SYN from a client that never answers: each SYN-ACK the listener resends
/// (`tcp_rtx_synack`) has a new label with SO_TXREHASH on, the same one with it off.
#[test]
fn a_resent_synack_redraws_the_label_when_txrehash_is_on() {
    for (rehash, distinct) in [(1, true), (0, false)] {
        let net = SimNet::new(LinkConfig::default());
        let b = net.b.stack.clone();
        let log = {
            use utcp::netdev::NetDevice;
            let log = Arc::new(Mutex::new(Vec::new()));
            let l = log.clone();
            assert!(net.b.port.as_ref().unwrap().set_tx_tap(Arc::new(move |parts: &[&[u8]]| {
                l.lock().unwrap().push(parts.concat());
            })));
            log
        };
        let l = b.socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
        b.setsockopt_int(l, SOL_SOCKET, SO_TXREHASH, rehash).unwrap();
        b.bind(l, v6(Ipv6Addr::UNSPECIFIED, 80)).unwrap();
        b.listen(l, 4).unwrap();
        let nobody = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x99);
        let pkt = syn6(nobody, ADDR6_B, 4000, 80);
        b.core.netif_receive(utcp::ip::frame_from_wire(bytes::Bytes::copy_from_slice(&pkt)));
        net.advance(Duration::from_millis(3500));
        let labels = labels(&log, 80);
        assert!(labels.len() >= 3, "the SYN-ACK and its retransmissions: {labels:?}");
        assert!(!labels.contains(&0));
        let set: std::collections::HashSet<_> = labels.iter().collect();
        assert_eq!(set.len() == labels.len(), distinct, "SO_TXREHASH {rehash}: {labels:?}");
        assert_eq!(set.len() == 1, !distinct, "SO_TXREHASH {rehash}: {labels:?}");
    }
}

/// Data already received arrives a second time starting where the last DSACK did
/// (`tcp_rcv_spurious_retrans`): the receiver re-draws its hash, so its ACKs change label.
#[test]
fn a_twice_duplicated_segment_redraws_the_receivers_label() {
    let net = SimNet::new(LinkConfig::default());
    let (a, b) = (net.a.stack.clone(), net.b.stack.clone());
    let log_a = tap_a(&net);
    let log_b = {
        use utcp::netdev::NetDevice;
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        assert!(net.b.port.as_ref().unwrap().set_tx_tap(Arc::new(move |parts: &[&[u8]]| {
            l.lock().unwrap().push(parts.concat());
        })));
        log
    };
    let (port, s) = connect(&net, 80, |_| {});
    assert_eq!(b.getpeername_addr(s).unwrap().port(), port);
    assert_eq!(b.send(s, Some(b"world"), 5, 0), Ok(5));
    net.run_until(Duration::from_millis(100), || false);
    let data = log_b
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|f| {
            f.len() > 40 + 32
                && Ipv6Packet::new_checked(&f[..]).map(|p| p.payload().ends_with(b"world")).unwrap_or(false)
        })
        .cloned()
        .expect("B's data segment");
    let before = labels(&log_a, port);
    let inject = || {
        a.core.netif_receive(utcp::ip::frame_from_wire(bytes::Bytes::copy_from_slice(&data)));
        net.run_until(Duration::from_millis(10), || false);
    };
    inject();
    let once = labels(&log_a, port);
    assert!(once.len() > before.len(), "the duplicate is DSACKed at once");
    assert!(once.iter().all(|x| *x == before[0]), "a first duplicate keeps the label: {once:?}");
    assert_eq!(a.core.net.mib.get(LinuxMib::TcpDuplicateDataRehash), 0);
    inject();
    let twice = labels(&log_a, port);
    assert!(twice.len() > once.len());
    assert_ne!(*twice.last().unwrap(), before[0], "the second duplicate re-draws: {twice:?}");
    assert_eq!(a.core.net.mib.get(LinuxMib::TcpDuplicateDataRehash), 1);
}

/// On real threads and the real clock: two connections, each with its own steady label, and
/// a SYN retransmitted by the RTO timer thread under a new one.
#[test]
fn labels_on_real_threads_differ_per_connection_and_change_on_an_rto() {
    use std::io::{Read, Write};
    use utcp::api::{memlink_pair, TcpListener, TcpStream};
    let (a, b) = memlink_pair(LinkConfig::default());
    let log = {
        use utcp::netdev::NetDevice;
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        assert!(a.port.as_ref().unwrap().set_tx_tap(Arc::new(move |parts: &[&[u8]]| {
            l.lock().unwrap().push(parts.concat());
        })));
        log
    };
    let l = TcpListener::bind(&b.stack, v6(Ipv6Addr::UNSPECIFIED, 8080), 4).unwrap();
    let server = std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        }
    });
    let mut ports = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(&a.stack, v6(ADDR6_B, 8080)).unwrap();
        c.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).unwrap();
        ports.push(c.local_addr().unwrap().port());
    }
    server.join().unwrap();
    let (l1, l2) = (labels(&log, ports[0]), labels(&log, ports[1]));
    for l in [&l1, &l2] {
        assert!(l.len() >= 3 && l.iter().all(|x| *x == l[0] && *x != 0), "{l:?}");
    }
    assert_ne!(l1[0], l2[0]);
    // A SYN nobody answers: wait (up to 10 s) for the RTO's retransmission.
    let st = &a.stack;
    let c = st.socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    let nobody = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x99);
    assert_eq!(st.connect(c, v6(nobody, 80)), Err(Errno::EINPROGRESS));
    let port = st.getsockname_addr(c).unwrap().port();
    let t0 = std::time::Instant::now();
    while labels(&log, port).len() < 2 && t0.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let syns = labels(&log, port);
    assert!(syns.len() >= 2, "the SYN was retransmitted: {syns:?}");
    assert_ne!(syns[0], syns[1], "a new label after the RTO");
    assert!(st.core.net.mib.get(LinuxMib::TcpTimeoutRehash) >= 1);
}
