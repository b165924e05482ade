//! The heap an idle established connection holds (issue 9 goal 4), counted by the counting
//! allocator on the thread that drives the virtual-clock simulation.

#[global_allocator]
static ALLOC: utcp_alloc::Counting<std::alloc::System> = utcp_alloc::Counting::new(std::alloc::System);

use std::net::SocketAddrV4;
use utcp::api::ADDR_B;
use utcp::netdev::memlink::LinkConfig;
use utcp::sim::SimNet;
use utcp::syscall::*;
use utcp::tcp::recvmsg::MSG_ERRQUEUE;
use utcp::tcp::TcpState;
use utcp::time::Duration;

/// Opens `n` connections, moves a byte each way on each and lets them go idle; returns the
/// heap bytes per socket they hold (both ends counted: 2n sockets).
fn idle_pairs(net: &SimNet, n: usize) -> (f64, Vec<(i32, i32)>) {
    let (a, b) = (&net.a.stack, &net.b.stack);
    for st in [a, b] {
        st.set_rlimit_nofile(n + 16).unwrap();
    }
    let l = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    b.bind(l, SocketAddrV4::new(ADDR_B, 80)).unwrap();
    b.listen(l, 4096).unwrap();
    let mut fds = Vec::with_capacity(n);
    let before = utcp_alloc::thread_live_bytes();
    let mut buf = [0u8; 1];
    for _ in 0..n {
        let c = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
        let _ = a.connect(c, SocketAddrV4::new(ADDR_B, 80));
        let mut s = None;
        assert!(net.run_until(Duration::from_secs(10), || {
            s = s.or_else(|| b.accept4(l, SOCK_NONBLOCK).ok().map(|x| x.0));
            s.is_some()
        }));
        let s = s.unwrap();
        assert_eq!(a.send(c, Some(&[1]), 1, 0), Ok(1));
        net.advance(Duration::from_millis(1));
        assert_eq!(b.recv(s, Some(&mut buf), 1, 0), Ok(1));
        assert_eq!(b.send(s, Some(&[2]), 1, 0), Ok(1));
        net.advance(Duration::from_millis(1));
        assert_eq!(a.recv(c, Some(&mut buf), 1, 0), Ok(1));
        fds.push((c, s));
    }
    // Delayed ACKs go out; nothing is left in flight.
    net.advance(Duration::from_secs(1));
    let after = utcp_alloc::thread_live_bytes();
    ((after - before) as f64 / (2 * n) as f64, fds)
}

#[test]
fn an_idle_established_socket_holds_no_queue_storage() {
    let net = SimNet::new(LinkConfig::default());
    let (per_socket, fds) = idle_pairs(&net, 2000);
    eprintln!("{per_socket:.0} heap bytes per idle established socket");
    // Reading an empty error queue (MSG_ERRQUEUE) finds nothing and allocates nothing.
    let mut buf = [0u8; 1];
    for &(c, s) in &fds {
        assert_eq!(net.a.stack.recv(c, Some(&mut buf), 1, MSG_ERRQUEUE), Err(utcp::Errno::EAGAIN));
        assert_eq!(net.b.stack.recv(s, Some(&mut buf), 1, MSG_ERRQUEUE), Err(utcp::Errno::EAGAIN));
    }
    let mut established = 0;
    for st in [&net.a.stack, &net.b.stack] {
        for sk in st.core.sockets() {
            sk.peek_tp(|tp| {
                if tp.state != TcpState::Established {
                    return;
                }
                established += 1;
                // Queues empty and their storage given back (Linux's sk_buff_head costs
                // nothing when empty).
                assert!(tp.receive_queue.is_empty() && tp.write_queue.is_empty() && tp.rtx_queue.is_empty());
                assert_eq!(
                    (tp.receive_queue.capacity(), tp.write_queue.capacity(), tp.rtx_queue.capacity()),
                    (0, 0, 0)
                );
                // Nothing of the rarely used part was needed, so none was allocated.
                assert!(tp.ext.is_none(), "an idle socket allocated its TcpSockExt");
            });
        }
    }
    assert_eq!(established, 2 * fds.len());
    // A regression bound, not the goal: issue 9 asks for at most 1 KiB per socket. 1,998 B
    // were held once the rarely used state moved out of line (2,366 B before; 3.4 KB before
    // the queues gave their storage back), 1,979 B once the `sk_socket` flag and the
    // timewait info took an allocation only where needed, 1,919 B with the deferred ICMP
    // queue and the test hook boxed and the bind buckets' counts `u32`, 1,903 B with the
    // epoll interests boxed (session 11); see
    // docs/PERFORMANCE.md for where they go.
    assert!(per_socket <= 1910.0, "{per_socket:.0} bytes per idle socket");
}
