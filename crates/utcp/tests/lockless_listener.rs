//! A listener's SYN path takes no socket lock (Linux's lockless listener: `tcp_v4_rcv` hands a
//! TCP_LISTEN socket's segments to `tcp_v4_do_rcv` without `bh_lock_sock` or the owner test),
//! on real threads with a real clock: while one thread calls `accept()` on the listener in a
//! loop (owning it most of the time) and real clients connect, another floods it with spoofed
//! SYNs. Every SYN past the SYN queue gets a cookie or is dropped where Linux drops it (B's
//! receive ring); none meets the listener's socket backlog (TCPBacklogDrop), and every real
//! client is accepted.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use utcp::api::{memlink_pair, ADDR_B};
use utcp::mib::{IpMib, LinuxMib};
use utcp::netdev::memlink::LinkConfig;
use utcp::netdev::NetDevice;
use utcp::syscall::*;
use utcp::Errno;

/// A SYN from `src` to `dst` (MSS 1460, SACK, timestamps, window scale 7, as Linux sends).
fn syn_frame(src: SocketAddrV4, dst: SocketAddrV4, isn: u32) -> utcp::skb::Frame {
    use utcp::wire::{SackBlocks, TcpFlags, TcpRepr};
    let net = utcp::netns::Netns::new(*src.ip(), 1500, 0);
    let repr = TcpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
        flags: TcpFlags::SYN,
        seq_number: utcp::seq::SeqNum(isn),
        ack_number: utcp::seq::SeqNum(0),
        window_len: 64240,
        urgent_pointer: 0,
        max_seg_size: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        sack_ranges: SackBlocks::new(),
        timestamp: Some((isn, 0)),
        payload: &[],
    };
    utcp::ip::build_tcp_frame(&net, *src.ip(), *dst.ip(), &repr, bytes::Bytes::new())
}

#[test]
fn syns_flooding_a_listener_that_accept_owns_are_never_backlogged() {
    const SYNS: u64 = 20_000;
    const BACKLOG: i32 = 16;
    const CLIENTS: u64 = 8;
    let (ha, hb) = memlink_pair(LinkConfig::default());
    let (a, b) = (ha.stack.clone(), hb.stack.clone());
    let addr = SocketAddrV4::new(ADDR_B, 80);
    let l = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    b.bind(l, addr).unwrap();
    b.listen(l, BACKLOG).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    // The accepting thread: non-blocking accept() in a loop, and a TCP_INFO now and then,
    // each owning the listener (lock_sock) for its length.
    let acceptor = {
        let (b, stop, accepted) = (b.clone(), stop.clone(), accepted.clone());
        std::thread::spawn(move || {
            let mut calls = 0u64;
            while !stop.load(Ordering::Acquire) {
                calls += 1;
                match b.accept4(l, 0) {
                    Ok((s, _)) => {
                        accepted.fetch_add(1, Ordering::Relaxed);
                        let _ = b.close(s);
                    }
                    Err(Errno::EAGAIN) => {}
                    Err(e) => panic!("accept4: {e}"),
                }
                if calls.is_multiple_of(8) {
                    let mut info = [0u8; 256];
                    let _ = b.getsockopt(l, SOL_TCP, utcp::syscall::opt::TCP_INFO, &mut info);
                }
            }
            calls
        })
    };
    // The attacker: spoofed SYNs as fast as A's wire takes them (198.18.0.0/15).
    let port = ha.port.clone().unwrap();
    let attacker = {
        let port = port.clone();
        std::thread::spawn(move || {
            for i in 0..SYNS {
                let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
                let ip = Ipv4Addr::new(198, 18 + ((h >> 16) & 1) as u8, (h >> 8) as u8, h as u8);
                let src = SocketAddrV4::new(ip, 1024 + (i % 64_000) as u16);
                port.xmit(syn_frame(src, addr, (i as u32).wrapping_mul(2_654_435_761)));
                if i % 16 == 15 || i + 1 == SYNS {
                    port.flush_tx();
                }
            }
        })
    };
    // Real clients connect through the flood (through cookies once the SYN queue is full).
    for _ in 0..CLIENTS {
        let c = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
        a.connect(c, addr).unwrap();
        a.close(c).unwrap();
    }
    attacker.join().unwrap();
    // Every frame A's port handed over has gone through B's IP input, and then every client
    // was accepted.
    let mib = &hb.stack.core.net.mib;
    let deadline = Instant::now() + Duration::from_secs(60);
    while (mib.ip_get(IpMib::InReceives) < port.stats().delivered || accepted.load(Ordering::Relaxed) < CLIENTS)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Release);
    let calls = acceptor.join().unwrap();
    assert_eq!(accepted.load(Ordering::Relaxed), CLIENTS, "every real client was accepted");
    assert!(calls > 0);
    assert_eq!(mib.get(LinuxMib::TCPBacklogDrop), 0, "no SYN met the listener's backlog");
    // The SYN queue took BACKLOG + 1 requests; every later SYN that B's ring took got a
    // cookie (the clients' SYNs too, and any they sent again).
    let st = port.stats();
    let ring_drops = st.ring_drops + st.lost + st.unattached;
    let cookies = mib.get(LinuxMib::SyncookiesSent);
    let client_syns = CLIENTS + ha.stack.core.net.mib.get(LinuxMib::TCPSynRetrans);
    let past_queue = SYNS + client_syns - (BACKLOG as u64 + 1);
    assert!(
        cookies + ring_drops >= past_queue - client_syns && cookies + ring_drops <= past_queue,
        "cookies {cookies} + ring drops {ring_drops} vs {past_queue} SYNs past the queue"
    );
    assert!(cookies > 0);
    assert_eq!(mib.get(LinuxMib::ListenOverflows), 0);
}
