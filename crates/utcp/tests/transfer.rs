//! Bulk transfers on the virtual clock under impairments: every byte arrives, once, in order.

mod common;

use common::transfer;
use utcp::netdev::memlink::LinkConfig;

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
