//! The device receive path's sysctls: `net.core.netdev_budget` bounds one `net_rx_action()`
//! round of NAPI polls (`time_squeeze`), on the virtual clock and on real threads; streams stay
//! intact and nothing is dropped. `net.core.netdev_max_backlog` accepts only its default (see
//! `sysctl.rs`).

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::SocketAddrV4;
use std::sync::atomic::Ordering;
use utcp::api::{memlink_pair, Host, TcpListener, TcpStream, ADDR_B};
use utcp::mib::TcpMib;
use utcp::netdev::memlink::{Delivery, LinkConfig};
use utcp::netdev::NetDevice;

fn set(h: &Host, name: &str, v: &str) {
    h.stack.core.net.sysctl.set_by_name(name, v).unwrap();
}

#[test]
fn netdev_budget_ends_a_napi_round_on_the_virtual_clock() {
    let cfg = || LinkConfig { delivery: Delivery::Napi, ..LinkConfig::default() };
    let squeeze = |n: &utcp::sim::SimNet| n.b.stack.core.net.softnet.time_squeeze.load(Ordering::Relaxed);
    let (data, got, net) =
        transfer_with(cfg(), 300_000, Some(1), |n| set(&n.b, "net.core.netdev_budget", "2147483647"));
    assert_eq!(got, data);
    assert_eq!(squeeze(&net), 0, "an endless budget never runs out");
    let retrans = net.a.stack.core.net.mib.tcp_get(TcpMib::RetransSegs);
    // Budget 1: every round that delivers a frame spends it.
    let (data, got, net) = transfer_with(cfg(), 300_000, Some(1), |n| set(&n.b, "net.core.netdev_budget", "1"));
    assert_eq!(got, data);
    assert!(squeeze(&net) > 0);
    // The tail loss probe both runs send (zero RTT against B's delayed ACK) is all.
    assert_eq!(net.a.stack.core.net.mib.tcp_get(TcpMib::RetransSegs), retrans, "a budget delays, never drops");
    assert_eq!(net.b.port.as_ref().unwrap().dev_stats().rx_dropped, 0);
}

/// Streams `len` bytes A → B on real threads; returns whether B read them intact.
fn stream_real(a: &Host, b: &Host, port: u16, len: usize) -> bool {
    let l = TcpListener::bind(&b.stack, SocketAddrV4::new(ADDR_B, port), 4).unwrap();
    let mut c = TcpStream::connect(&a.stack, SocketAddrV4::new(ADDR_B, port)).unwrap();
    let (mut s, _) = l.accept().unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    });
    let data = pattern(len, 3);
    c.write_all(&data).unwrap();
    drop(c);
    reader.join().unwrap() == data
}

#[test]
fn netdev_budget_on_real_threads() {
    // NAPI with a budget of one frame per round: the device thread squeezes, nothing is lost.
    let (a, b) = memlink_pair(LinkConfig { delivery: Delivery::Napi, ..LinkConfig::default() });
    b.stack.core.net.sysctl.set_by_name("net.core.netdev_budget", "1").unwrap();
    assert!(stream_real(&a, &b, 5021, 1 << 20));
    assert!(b.stack.core.net.softnet.time_squeeze.load(Ordering::Relaxed) > 0);
    for p in [a.port.as_ref().unwrap().stats(), b.port.as_ref().unwrap().stats()] {
        assert_eq!((p.lost, p.ring_drops), (0, 0));
    }
}
