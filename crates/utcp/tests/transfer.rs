//! Bulk transfers on the virtual clock under impairments: every byte arrives, once, in order.

use std::net::SocketAddrV4;
use utcp::api::ADDR_B;
use utcp::netdev::memlink::LinkConfig;
use utcp::sim::SimNet;
use utcp::syscall::*;
use utcp::time::Duration;
use utcp::Errno;

/// Sends `len` pseudo-random bytes from A to B over `cfg`; returns what B read.
pub fn transfer(cfg: LinkConfig, len: usize, isn: Option<u32>) -> (Vec<u8>, Vec<u8>, SimNet) {
    let net = SimNet::new(cfg);
    if let Some(i) = isn {
        *net.a.stack.core.net.fixed_isn.lock() = Some(i);
        *net.b.stack.core.net.fixed_isn.lock() = Some(i.wrapping_add(7));
    }
    let (a, b) = (net.a.stack.clone(), net.b.stack.clone());
    let l = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    b.bind(l, SocketAddrV4::new(ADDR_B, 80)).unwrap();
    b.listen(l, 16).unwrap();
    let c = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    let _ = a.connect(c, SocketAddrV4::new(ADDR_B, 80));
    let mut s = None;
    assert!(net.run_until(Duration::from_secs(60), || {
        if s.is_none() {
            s = b.accept4(l, SOCK_NONBLOCK).ok().map(|x| x.0);
        }
        s.is_some()
    }));
    let s = s.unwrap();
    let mut x: u64 = 0x1234_5678_9abc_def0;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut sent = 0;
    let mut got = Vec::with_capacity(len);
    let mut buf = vec![0u8; 65536];
    let mut closed = false;
    let ok = net.run_until(Duration::from_secs(600), || {
        while sent < len {
            match a.send(c, Some(&data[sent..]), len - sent, 0) {
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        if sent == len && !closed {
            a.shutdown(c, SHUT_WR).unwrap();
            closed = true;
        }
        loop {
            match b.recv(s, Some(&mut buf), 65536, 0) {
                Ok(0) => return true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(Errno::EAGAIN) => return false,
                Err(e) => panic!("recv: {e}"),
            }
        }
    });
    if !ok {
        for sk in a.core.sockets().iter().chain(b.core.sockets().iter()) {
            sk.peek_tp(|tp| eprintln!("{:?} wmem {} sndbuf {} snd_una {} snd_nxt {} write_seq {} snd_wnd {} cwnd {} pkts_out {} wq {} rtxq {} rcv_nxt {} copied {} rcv_wnd {} rmem {} rcvbuf {} timers {:?}", tp.state, tp.wmem_queued, tp.sndbuf, tp.snd_una, tp.snd_nxt, tp.write_seq, tp.snd_wnd, tp.snd_cwnd, tp.packets_out, tp.write_queue.len(), tp.rtx_queue.len(), tp.rcv_nxt, tp.copied_seq, tp.rcv_wnd, tp.rmem_alloc, tp.rcvbuf, tp.timers));
        }
    }
    assert!(
        ok,
        "transfer stalled at {} of {} bytes (sent {})\nA:\n{}\nB:\n{}",
        got.len(),
        len,
        sent,
        a.core.net.mib.nstat(false),
        b.core.net.mib.nstat(false)
    );
    (data, got, net)
}

#[test]
fn clean_link() {
    let (d, g, _) = transfer(LinkConfig::default(), 1 << 20, None);
    assert!(d == g);
}

#[test]
fn isn_wraps_mid_transfer() {
    let (d, g, _) = transfer(LinkConfig::default(), 1 << 20, Some(u32::MAX - 300_000));
    assert!(d == g);
}

#[test]
fn lossy_link() {
    let cfg = LinkConfig { loss: 0.05, reorder: 0.05, dup: 0.01, corrupt: 0.001, seed: 7, ..LinkConfig::default() };
    let (d, g, net) = transfer(cfg, 1 << 20, None);
    assert!(d == g);
    assert!(net.a.stack.core.net.mib.tcp_get(utcp::mib::TcpMib::RetransSegs) > 0);
}
