//! Bulk transfers on the virtual clock under impairments: every byte arrives, once, in order.

mod common;

use common::transfer;
use utcp::mib::TcpMib;
use utcp::netdev::memlink::LinkConfig;
use utcp::sim::SimNet;

/// A clean link: no checksum error anywhere (the sender completes its packets' checksums
/// from the sums it took while copying the data, tcp/tx_csum.rs) and nothing retransmitted.
fn assert_clean(net: &SimNet) {
    for st in [&net.a.stack, &net.b.stack] {
        assert_eq!(st.core.net.mib.tcp_get(TcpMib::InCsumErrors), 0);
        assert_eq!(st.core.net.mib.tcp_get(TcpMib::RetransSegs), 0);
    }
}

#[test]
fn clean_link() {
    let (d, g, net) = transfer(LinkConfig::default(), 1 << 20, None);
    assert!(d == g);
    assert_clean(&net);
}

#[test]
fn isn_wraps_mid_transfer() {
    let (d, g, net) = transfer(LinkConfig::default(), 1 << 20, Some(u32::MAX - 300_000));
    assert!(d == g);
    assert_clean(&net);
}

#[test]
fn lossy_link() {
    let cfg = LinkConfig { loss: 0.05, reorder: 0.05, dup: 0.01, corrupt: 0.001, seed: 7, ..LinkConfig::default() };
    let (d, g, net) = transfer(cfg, 1 << 20, None);
    assert!(d == g);
    assert!(net.a.stack.core.net.mib.tcp_get(utcp::mib::TcpMib::RetransSegs) > 0);
}
