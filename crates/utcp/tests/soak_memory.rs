//! Memory that returns: connections opened, used and closed on the virtual clock (one thread
//! drives both stacks, so the counting allocator's per-thread live bytes see every allocation
//! and free of both) leave every table as it was and the heap where it started once TIME_WAIT
//! is over and the stack's caches of emptied storage are reaped (`skb_queue::cache_reap`, which
//! the host threads run every 2 s on a real clock). What `utcp soak` checks on real threads.

#[global_allocator]
static ALLOC: utcp_alloc::Counting<std::alloc::System> = utcp_alloc::Counting::new(std::alloc::System);

use std::net::SocketAddrV4;
use utcp::api::ADDR_B;
use utcp::netdev::memlink::LinkConfig;
use utcp::sim::SimNet;
use utcp::stack::TableCounts;
use utcp::syscall::opt::SO_LINGER;
use utcp::syscall::*;
use utcp::time::Duration;
use utcp::Errno;

/// One connection from A to B's listener `l` on port 80: `len` bytes each way, then both
/// close (the client first, so the client side goes through TIME_WAIT; every fifth aborts
/// with SO_LINGER 0 instead).
fn one_connection(net: &SimNet, l: i32, len: usize, i: usize) {
    let (a, b) = (&net.a.stack, &net.b.stack);
    let c = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    let _ = a.connect(c, SocketAddrV4::new(ADDR_B, 80));
    let mut s = None;
    assert!(net.run_until(Duration::from_secs(10), || {
        s = s.or_else(|| b.accept4(l, SOCK_NONBLOCK).ok().map(|x| x.0));
        s.is_some()
    }));
    let s = s.unwrap();
    let data = vec![i as u8; len];
    let mut buf = vec![0u8; 65536];
    for (from, to, sf, tf) in [(a, b, c, s), (b, a, s, c)] {
        let (mut sent, mut got) = (0, 0);
        assert!(net.run_until(Duration::from_secs(60), || {
            while sent < len {
                match from.send(sf, Some(&data[sent..]), len - sent, 0) {
                    Ok(n) => sent += n,
                    Err(Errno::EAGAIN) => break,
                    Err(e) => panic!("send: {e}"),
                }
            }
            loop {
                match to.recv(tf, Some(&mut buf), 65536, 0) {
                    Ok(0) => panic!("EOF"),
                    Ok(n) => got += n,
                    Err(Errno::EAGAIN) => return got == len,
                    Err(e) => panic!("recv: {e}"),
                }
            }
        }));
    }
    if i % 5 == 4 {
        let lin = [1i32.to_ne_bytes(), 0i32.to_ne_bytes()].concat();
        a.setsockopt(c, SOL_SOCKET, SO_LINGER, &lin).unwrap();
    }
    a.close(c).unwrap();
    net.run_until(Duration::from_secs(1), || false);
    b.close(s).unwrap();
    net.run_until(Duration::from_secs(1), || false);
}

fn tables(net: &SimNet) -> (TableCounts, TableCounts) {
    (net.a.stack.core.table_counts(), net.b.stack.core.table_counts())
}

/// Lets TIME_WAIT end and every timer of the closed sockets run out, then reaps the caches
/// (twice: a cache is freed once a reap finds it unused since the previous one).
fn quiesce(net: &SimNet) {
    net.advance(Duration::from_secs(130));
    net.settle();
    utcp::skb_queue::cache_reap();
    utcp::skb_queue::cache_reap();
}

#[test]
fn closed_connections_leave_the_heap_and_every_table_as_they_were() {
    let net = SimNet::new(LinkConfig::default());
    let b = &net.b.stack;
    let l = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    b.bind(l, SocketAddrV4::new(ADDR_B, 80)).unwrap();
    b.listen(l, 16).unwrap();
    let (t0, h0) = (tables(&net), utcp_alloc::thread_live_bytes());
    for i in 0..40 {
        one_connection(&net, l, 256 << 10, i);
    }
    // Before TIME_WAIT ends the client sides are still there.
    let (ta, _) = tables(&net);
    assert!(ta.time_wait > 0, "{ta:?}");
    quiesce(&net);
    let (t1, h1) = (tables(&net), utcp_alloc::thread_live_bytes());
    assert_eq!(t1, t0, "tables after 40 connections closed");
    let (a, b) = t1;
    assert_eq!((a.ehash, a.time_wait, a.port_holders, a.timers_armed, a.orphans, a.tcp_mem_pages), (0, 0, 0, 0, 0, 0));
    assert_eq!((b.ehash, b.listeners, b.port_holders, b.orphans, b.tcp_mem_pages), (0, 1, 1, 0, 0));
    // What the tables' own capacity grew to (hash maps, the timer heap: 30-45 KB here, the
    // same for 10 and for 160 connections); nothing of the caches (without reaping, 280 KB).
    assert!(h1 - h0 < 64 << 10, "heap grew {} bytes over 40 connections (from {h0} to {h1})", h1 - h0);
    // And nothing per connection: 40 more, with the tables already grown, leave the heap
    // where it was.
    for i in 0..40 {
        one_connection(&net, l, 256 << 10, i);
    }
    quiesce(&net);
    let (t2, h2) = (tables(&net), utcp_alloc::thread_live_bytes());
    assert_eq!(t2, t0);
    assert!(h2 - h1 < 2 << 10, "heap grew {} bytes over 40 more connections (from {h1} to {h2})", h2 - h1);
}
