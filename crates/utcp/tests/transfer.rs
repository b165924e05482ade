//! Bulk transfers on the virtual clock under impairments: every byte arrives, once, in order.

mod common;

use common::transfer;
use utcp::mib::{LinuxMib, TcpMib};
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

/// The clean-link invariants of a virtual-clock link: nothing out of order, no DSACK, no loss
/// probe, nothing retransmitted.
fn assert_in_order(net: &SimNet) {
    assert_clean(net);
    for st in [&net.a.stack, &net.b.stack] {
        let m = &st.core.net.mib;
        for c in [LinuxMib::TCPOFOQueue, LinuxMib::TCPDSACKRecv, LinuxMib::TCPLossProbes, LinuxMib::TCPTimeouts] {
            assert_eq!(m.get(c), 0, "{c:?}");
        }
    }
}

/// GRO on memlink (`ethtool -K gro on`): the stream arrives byte for byte, in order, with
/// nothing retransmitted; the receiver's stack sees merged packets (tcp_v4_rcv counts one
/// InSegs per packet, `tcpi_segs_in` counts the wire's segments, as Linux's `tcp_segs_in()`
/// adds `gso_segs`), and it ACKs once per merged packet, so the sender gets fewer ACKs per
/// data segment than without GRO.
#[test]
fn gro_link_is_intact_and_acks_less() {
    let len = 8 << 20;
    let run = |gro: bool| {
        let (d, g, net) = transfer(LinkConfig { gro, ..LinkConfig::default() }, len, Some(u32::MAX - 1_000_000));
        assert!(d == g, "gro {gro}: stream differs");
        assert_in_order(&net);
        let wire = net.a.port.as_ref().unwrap().stats().sent;
        let in_segs = net.b.stack.core.net.mib.tcp_get(TcpMib::InSegs);
        let data = net.a.stack.core.net.mib.get(LinuxMib::TCPOrigDataSent);
        let acks = net.b.stack.core.net.mib.tcp_get(TcpMib::OutSegs);
        // tcp_segs_in(): the receiver's tcpi_data_segs_in counts wire segments either way
        // (TCPOrigDataSent also counts a FIN sent alone, which carries no data).
        let data_in = (0..16).filter_map(|fd| net.b.stack.tcp_info(fd).ok()).map(|i| i.tcpi_data_segs_in).max();
        let data_in = data_in.unwrap_or(0) as u64;
        assert!(data_in == data || data_in + 1 == data, "gro {gro}: tcpi_data_segs_in {data_in} for {data}");
        // The receive window grows by what a packet carries (tcp_grow_window()'s len): a GRO
        // packet's parts count too, so the window opens as far as without GRO.
        let ssthresh =
            (0..16).filter_map(|fd| net.b.stack.tcp_info(fd).ok()).filter_map(|i| i.field("tcpi_rcv_ssthresh")).max();
        let ssthresh = ssthresh.unwrap_or(0);
        eprintln!("gro {gro}: wire {wire} InSegs {in_segs} data {data} acks {acks} rcv_ssthresh {ssthresh}");
        (wire, in_segs, data, acks, ssthresh)
    };
    let (wire0, in0, data0, acks0, ssthresh0) = run(false);
    let (wire1, in1, data1, acks1, ssthresh1) = run(true);
    assert!(ssthresh1 >= ssthresh0, "rcv_ssthresh {ssthresh1} with GRO, {ssthresh0} without");
    assert!(data0 >= len as u64 / 1448 && data1 >= len as u64 / 1448);
    // Without GRO the receiver sees every wire frame; with it, several times fewer packets.
    assert_eq!(in0, wire0);
    assert!(in1 * 3 < wire1, "InSegs {in1} for {wire1} wire frames: nothing merged");
    // ACKs per data segment: one per two segments at most without GRO, far fewer with it.
    assert!(acks1 * data0 < acks0 * data1, "GRO {acks1}/{data1} ACKs vs {acks0}/{data0}");
    assert!(acks1 * 3 < data1, "{acks1} ACKs for {data1} data segments");
}

/// A corrupted segment inside a run is not merged: it goes up alone and is dropped and
/// counted by its checksum (TcpInCsumErrors), while its neighbours arrive; the stream is
/// intact once the sender retransmits it.
#[test]
fn gro_link_drops_a_corrupt_segment_and_keeps_its_neighbours() {
    let cfg = LinkConfig { gro: true, corrupt: 0.01, seed: 11, ..LinkConfig::default() };
    let (d, g, net) = transfer(cfg, 4 << 20, None);
    assert!(d == g);
    let corrupted = net.a.port.as_ref().unwrap().stats().corrupted + net.b.port.as_ref().unwrap().stats().corrupted;
    assert!(corrupted > 0);
    let m = &net.b.stack.core.net.mib;
    assert!(m.tcp_get(TcpMib::InCsumErrors) > 0, "a corrupted segment was counted");
    assert!(m.tcp_get(TcpMib::InSegs) * 3 < net.a.port.as_ref().unwrap().stats().sent, "runs still merged");
}
