//! `tcp_collapse()`, `tcp_prune_ofo_queue()` and `tcp_prune_queue()` on hand-built queues.

use crate::mib::LinuxMib;
use crate::netns::Netns;
use crate::seq::SeqNum;
use crate::skb::{skb_truesize, Skb, SkbLayout};
use crate::tcp::{Ctx, TcpSock, TcpState};
use crate::time::Instant;
use crate::wire::TcpFlags;
use bytes::Bytes;

fn skb(seq: u32, data: &[u8]) -> Skb {
    Skb::new(SeqNum(seq), TcpFlags::ACK, Bytes::copy_from_slice(data), skb_truesize(data.len() as u32), Instant::ZERO)
}

/// A small, bloated buffer: 100 bytes charged as a 2 KiB driver buffer.
fn bloated(seq: u32, data: &[u8]) -> Skb {
    let mut s = skb(seq, data);
    s.truesize = 2304;
    s
}

fn sock(net: &Netns) -> TcpSock {
    let mut tp = TcpSock::new(net, Instant::ZERO);
    tp.state = TcpState::Established;
    tp.sack_ok = true;
    tp.advmss = 1460;
    tp
}

fn bytes_of(q: &[Skb]) -> Vec<u8> {
    let mut v = Vec::new();
    for s in q {
        let mut b = vec![0u8; s.len as usize];
        s.copy_bits(0, &mut b);
        v.extend(b);
    }
    v
}

/// Two queued skbs that overlap (1000:1010 and 1005:1015, as tcp_ofo_queue() leaves them)
/// and a first one partly read (copied_seq 1002): the collapsed buffer holds 1002:1015,
/// each byte once.
#[test]
fn collapse_copies_overlapping_buffers_once() {
    let net = Netns::new(std::net::Ipv4Addr::LOCALHOST, 1500, 1);
    let tp = sock(&net);
    let stream: Vec<u8> = (0u8..15).collect();
    let q = vec![skb(1000, &stream[0..10]), skb(1005, &stream[5..15])];
    let mut out = Vec::new();
    let ctx = Ctx::new(Instant::ZERO, &net, &mut out);
    let q = tp.tcp_collapse(&ctx, q, SeqNum(1002), SeqNum(1015));
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].seq, SeqNum(1002));
    assert_eq!(q[0].len, 13);
    assert_eq!(bytes_of(&q), &stream[2..15]);
    assert_eq!(net.mib.get(LinuxMib::TCPRcvCollapsed), 2);
}

/// Sixty bloated 100-byte buffers become two page-sized linear buffers (3776 + 2224 bytes),
/// charged as alloc_skb() charges them; the stream is unchanged.
#[test]
fn collapse_repacks_into_page_sized_buffers() {
    let net = Netns::new(std::net::Ipv4Addr::LOCALHOST, 1500, 1);
    let tp = sock(&net);
    let stream: Vec<u8> = (0..6000u32).map(|i| (i * 7) as u8).collect();
    let q: Vec<Skb> = (0..60).map(|i| bloated(1000 + i * 100, &stream[i as usize * 100..][..100])).collect();
    let before: u32 = q.iter().map(|s| s.truesize).sum();
    let mut out = Vec::new();
    let ctx = Ctx::new(Instant::ZERO, &net, &mut out);
    let q = tp.tcp_collapse(&ctx, q, SeqNum(1000), SeqNum(7000));
    assert_eq!(q.iter().map(|s| s.len).collect::<Vec<_>>(), vec![3776, 2224]);
    assert_eq!(q[0].truesize, 4096 + 256, "a 4 KiB head (3776 + skb_shared_info)");
    assert_eq!(q[1].truesize, 4096 + 256, "2224 + 320 bytes round up to 4 KiB too");
    assert_eq!(q[1].layout, SkbLayout::Linear { tailroom: 3776 - 2224 });
    assert!(q.iter().map(|s| s.truesize).sum::<u32>() * 10 < before);
    assert_eq!(bytes_of(&q), stream);
    assert_eq!(net.mib.get(LinuxMib::TCPRcvCollapsed), 60);
}

/// Buffers whose payload is worth their truesize are skipped; a FIN buffer ends the
/// collapse and stays as it is.
#[test]
fn collapse_skips_compact_buffers_and_stops_at_fin() {
    let net = Netns::new(std::net::Ipv4Addr::LOCALHOST, 1500, 1);
    let tp = sock(&net);
    let big: Vec<u8> = vec![7; 60000];
    let mut compact = skb(1000, &big);
    compact.truesize = 61440; // 60000 bytes in page frags: worth the window they take
    let mut fin = bloated(61200, b"end");
    fin.tcp_flags = TcpFlags(TcpFlags::ACK.0 | TcpFlags::FIN.0);
    fin.end_seq += 1;
    let q = vec![compact, bloated(61000, &[1; 100]), bloated(61100, &[2; 100]), fin];
    let mut out = Vec::new();
    let ctx = Ctx::new(Instant::ZERO, &net, &mut out);
    let q = tp.tcp_collapse(&ctx, q, SeqNum(1000), SeqNum(61204));
    assert_eq!(q.len(), 3, "compact, collapsed 61000:61200, FIN");
    assert_eq!((q[0].seq, q[0].len, q[0].truesize), (SeqNum(1000), 60000, 61440));
    assert_eq!((q[1].seq, q[1].len), (SeqNum(61000), 200));
    assert!(q[2].tcp_flags.fin());
    assert_eq!(net.mib.get(LinuxMib::TCPRcvCollapsed), 2);
}

/// Pruning the out-of-order queue drops from the highest sequence down, never a buffer
/// starting below the incoming segment, counts OfoPruned once and resets the SACK blocks.
#[test]
fn prune_ofo_stops_below_incoming_segment() {
    let net = Netns::new(std::net::Ipv4Addr::LOCALHOST, 1500, 1);
    let mut tp = sock(&net);
    tp.rcv_nxt = SeqNum(1000);
    tp.copied_seq = SeqNum(1000);
    for i in 0..8u32 {
        tp.ofo_queue.insert_collapsed(bloated(2000 + i * 1000, &[i as u8; 100]));
    }
    tp.selective_acks = vec![(SeqNum(2000), SeqNum(2100))];
    tp.recount_rmem();
    tp.rcvbuf = 4 * 2304;
    let mut out = Vec::new();
    let ctx = Ctx::new(Instant::ZERO, &net, &mut out);
    // A segment at 5500: the buffers at 6000..9000 may go, those at 2000..5000 stay.
    assert!(tp.tcp_prune_ofo_queue(&ctx, SeqNum(5500)));
    let left: Vec<u32> = tp.ofo_queue.iter().map(|s| s.seq.0).collect();
    assert_eq!(left, vec![2000, 3000, 4000, 5000]);
    assert_eq!(tp.rmem_alloc, 4 * 2304);
    assert!(tp.selective_acks.is_empty(), "SACK state reset: what was SACKed is reneged");
    assert_eq!(net.mib.get(LinuxMib::OfoPruned), 1);
    // Nothing above the next segment: nothing pruned, nothing counted.
    assert!(!tp.tcp_prune_ofo_queue(&ctx, SeqNum(9000)));
    assert_eq!(net.mib.get(LinuxMib::OfoPruned), 1);
}

/// With empty queues there is nothing to prune: the segment is refused at once, without
/// counting PruneCalled (6.18 "do not set a zero size receive buffer").
#[test]
fn prune_queue_with_nothing_queued() {
    let net = Netns::new(std::net::Ipv4Addr::LOCALHOST, 1500, 1);
    let mut tp = sock(&net);
    tp.rcvbuf = 1000;
    let rcvbuf = tp.rcvbuf;
    let mut out = Vec::new();
    let mut ctx = Ctx::new(Instant::ZERO, &net, &mut out);
    assert_eq!(tp.tcp_prune_queue(&mut ctx, SeqNum(0)), -1);
    assert_eq!(net.mib.get(LinuxMib::PruneCalled), 0);
    assert_eq!(tp.rcvbuf, rcvbuf);
}

/// A receive queue of bloated buffers over `sk_rcvbuf`: collapsing makes room, so the
/// segment is accepted without dropping anything (PruneCalled, no RcvPruned).
#[test]
fn prune_queue_collapses_before_dropping() {
    let net = Netns::new(std::net::Ipv4Addr::LOCALHOST, 1500, 1);
    let mut tp = sock(&net);
    tp.userlocks |= crate::tcp::SOCK_RCVBUF_LOCK;
    tp.copied_seq = SeqNum(1000);
    for i in 0..20u32 {
        tp.receive_queue.push_back(bloated(1000 + i * 100, &[i as u8; 100]));
    }
    tp.rcv_nxt = SeqNum(3000);
    tp.recount_rmem();
    tp.rcvbuf = 20 * 2304 - 1;
    let mut out = Vec::new();
    let mut ctx = Ctx::new(Instant::ZERO, &net, &mut out);
    assert!(!tp.tcp_try_rmem_schedule(&mut ctx, SeqNum(3000), 2304));
    assert_eq!(tp.receive_queue.len(), 1);
    assert_eq!(tp.receive_queue[0].len, 2000);
    assert_eq!(net.mib.get(LinuxMib::PruneCalled), 1);
    assert_eq!(net.mib.get(LinuxMib::RcvPruned), 0);
    assert_eq!(tp.rcvbuf, 20 * 2304 - 1, "SO_RCVBUF locked the buffer");
}
