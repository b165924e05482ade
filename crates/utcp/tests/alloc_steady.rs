//! Heap allocations per segment in a steady bulk transfer, counted by the counting allocator
//! (`utcp-alloc`) on the one thread that drives the virtual-clock simulation: both stacks'
//! send and receive paths run there, so every allocation either side makes is seen.

#[global_allocator]
static ALLOC: utcp_alloc::Counting<std::alloc::System> = utcp_alloc::Counting::new(std::alloc::System);

mod common;

use std::net::SocketAddrV4;
use utcp::api::ADDR_B;
use utcp::netdev::memlink::LinkConfig;
use utcp::sim::SimNet;
use utcp::syscall::*;
use utcp::time::Duration;
use utcp::Errno;

/// A connection from A to B on `net`: (client fd on A, accepted fd on B).
fn connect(net: &SimNet) -> (i32, i32) {
    let (a, b) = (&net.a.stack, &net.b.stack);
    let l = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    b.bind(l, SocketAddrV4::new(ADDR_B, 80)).unwrap();
    b.listen(l, 16).unwrap();
    let c = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    let _ = a.connect(c, SocketAddrV4::new(ADDR_B, 80));
    let mut s = None;
    assert!(net.run_until(Duration::from_secs(10), || {
        s = s.or_else(|| b.accept4(l, SOCK_NONBLOCK).ok().map(|x| x.0));
        s.is_some()
    }));
    (c, s.unwrap())
}

/// Moves `len` bytes from `c` (on A) to `s` (on B), writing from `data` cyclically and reading
/// into `buf`; neither buffer grows, so the loop itself allocates nothing.
fn pump(net: &SimNet, c: i32, s: i32, len: usize, data: &[u8], buf: &mut [u8]) {
    let (a, b) = (&net.a.stack, &net.b.stack);
    let (mut sent, mut got) = (0usize, 0usize);
    let ok = net.run_until(Duration::from_secs(600), || {
        while sent < len {
            let off = sent % data.len();
            let n = (len - sent).min(data.len() - off);
            match a.send(c, Some(&data[off..off + n]), n, 0) {
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        loop {
            let cap = buf.len();
            match b.recv(s, Some(buf), cap, 0) {
                Ok(0) => panic!("EOF"),
                Ok(n) => {
                    let off = got % data.len();
                    let first = n.min(data.len() - off);
                    assert_eq!(buf[..first], data[off..off + first], "at {got}");
                    assert_eq!(buf[first..n], data[..n - first], "at {got}");
                    got += n;
                }
                Err(Errno::EAGAIN) => return got >= len,
                Err(e) => panic!("recv: {e}"),
            }
        }
    });
    assert!(ok && got == len, "stalled at {got} of {len}");
}

/// Allocations the steady state of a bulk transfer makes, and the data segments B received
/// meanwhile.
fn steady_state(cfg: LinkConfig) -> (u64, u64) {
    let net = SimNet::new(cfg);
    let (c, s) = connect(&net);
    let data = common::pattern(1 << 20, 3);
    let mut buf = vec![0u8; 65536];
    // Warm-up: windows, queues and buffers grow to their steady size (the receive queue's
    // deepest point sets how many skbs the caches must hold), caches fill.
    pump(&net, c, s, 32 << 20, &data, &mut buf);
    // Wire segments B received (with GRO, InSegs counts merged packets).
    let wire = || net.a.port.as_ref().unwrap().stats().delivered;
    let (a0, s0) = (utcp_alloc::thread_allocations(), wire());
    pump(&net, c, s, 8 << 20, &data, &mut buf);
    let (a1, s1) = (utcp_alloc::thread_allocations(), wire());
    (a1 - a0, s1 - s0)
}

#[test]
fn no_allocation_per_segment_in_steady_state() {
    let (allocs, segs) = steady_state(LinkConfig::default());
    eprintln!("{allocs} allocations over {segs} segments received");
    assert!(segs >= (8 << 20) / 1460, "{segs}");
    assert_eq!(allocs, 0, "{allocs} allocations over {segs} segments: {:.3} per segment", allocs as f64 / segs as f64);
}

/// GRO on the link: merged packets carry their segments' payloads in the pooled fragment
/// vectors, so merging allocates nothing either.
#[test]
fn no_allocation_per_segment_with_gro() {
    let (allocs, segs) = steady_state(LinkConfig { gro: true, ..LinkConfig::default() });
    eprintln!("gro: {allocs} allocations over {segs} segments received");
    assert!(segs >= (8 << 20) / 1460, "{segs}");
    assert_eq!(allocs, 0, "{allocs} allocations over {segs} segments: {:.3} per segment", allocs as f64 / segs as f64);
}
