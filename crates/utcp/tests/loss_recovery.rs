//! Loss recovery under random loss: RACK marking segments lost by send order (also those sent
//! in the same instant as the delivered one, and lost retransmissions), without waiting for a
//! loss probe or an RTO; seeded-loss transfers on the virtual clock (deterministic counters);
//! and a lossy transfer on real threads.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::SocketAddrV4;
use utcp::api::{memlink_pair, TcpListener, TcpStream};
use utcp::mib::{LinuxMib, TcpMib};
use utcp::netdev::memlink::{Delivery, LinkConfig};
use utcp::syscall::opt::TCP_NODELAY;
use utcp::syscall::*;
use utcp::time::Duration;
use utcp::Errno;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn mib(st: &utcp::Stack, c: LinuxMib) -> u64 {
    st.core.net.mib.get(c)
}

/// Sends `data` from `c` (A) and reads it on `s` (B) until all of it arrived.
fn pump(lab: &Lab, c: i32, s: i32, data: &[u8]) -> Vec<u8> {
    let mut sent = 0;
    let mut got = Vec::new();
    let ok = lab.run_until(Duration::from_secs(30), || {
        while sent < data.len() {
            match lab.a.send(c, Some(&data[sent..]), data.len() - sent, 0) {
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        drain(&lab.b, s, &mut got).unwrap();
        got.len() == data.len()
    });
    assert!(ok, "stalled at {} of {}\n{}", got.len(), data.len(), lab.a.core.net.mib.nstat(false));
    got
}

/// Three segments leave in one instant (one write on an idle connection) and the first is
/// lost. The two SACKed ones were sent in the same instant as the hole, but after it: RACK
/// marks the hole lost once its reordering window (min_rtt/4, as fewer than `reordering`
/// segments are SACKed) expires. Before send order broke the tie, the hole looked "sent at
/// the same time, so not before" the delivered segments and only the RTO (Disorder state: no
/// loss probe) repaired it, 200 ms later.
#[test]
fn hole_in_a_same_instant_burst_is_repaired_by_rack_not_rto() {
    let lab = Lab::new(ms(5));
    let (c, s, _l) = lab.pair();
    lab.a.setsockopt_int(c, SOL_TCP, TCP_NODELAY, 1).unwrap();
    // Warm up: an RTT estimate, and cwnd room for three segments at once.
    let warm = pattern(20_000, 1);
    assert!(pump(&lab, c, s, &warm) == warm);
    lab.advance(ms(100));
    let mut first = true;
    lab.drop_if(move |p| {
        if p.from_a && p.len > 0 && first {
            first = false;
            return true;
        }
        false
    });
    lab.clear_log();
    let data = pattern(3 * 1448, 2);
    assert!(pump(&lab, c, s, &data) == data);
    let log = lab.log();
    let sent: Vec<_> = log.iter().filter(|p| p.from_a && p.len > 0).collect();
    assert_eq!(sent.len(), 4, "three segments and one retransmission: {sent:?}");
    assert!(sent[..3].iter().all(|p| p.t == sent[0].t), "the burst left in one instant");
    assert!(sent[0].dropped && sent[3].seq == sent[0].seq, "the hole, retransmitted once");
    // One RTT (10 ms) plus the reordering window and the timer's slack: far below an RTO.
    assert!(sent[3].t - sent[0].t < ms(40), "{:?}", sent[3].t - sent[0].t);
    assert_eq!(mib(&lab.a, LinuxMib::TCPTimeouts), 0);
    assert_eq!(mib(&lab.a, LinuxMib::TCPLossProbes), 0);
    assert_eq!(mib(&lab.a, LinuxMib::TCPSackRecovery), 1);
    assert_eq!(mib(&lab.a, LinuxMib::TCPFastRetrans), 1, "counted per retransmitted segment");
}

/// A segment is lost, and so is its first retransmission. New data sent after the
/// retransmission is SACKed, so RACK knows the retransmission should have arrived and marks it
/// lost (TCPLostRetransmit, `tcp_rack_detect_loss` comparing send times): the third copy goes
/// out about one RTT later, with no RTO.
#[test]
fn lost_retransmission_is_found_by_rack_not_rto() {
    let lab = Lab::new(ms(5));
    let (c, s, _l) = lab.pair();
    let mut target = None;
    let mut copies = 0;
    lab.drop_if(move |p| {
        if !p.from_a || p.len == 0 {
            return false;
        }
        // The 30th data segment, and its first retransmission.
        if target.is_none() {
            copies += 1;
            if copies == 30 {
                target = Some(p.seq);
                copies = 1;
                return true;
            }
            return false;
        }
        if Some(p.seq) == target {
            copies += 1;
            return copies == 2;
        }
        false
    });
    let data = pattern(400_000, 3);
    assert!(pump(&lab, c, s, &data) == data);
    let log = lab.log();
    let lost = log.iter().find(|p| p.dropped).expect("dropped").clone();
    let copies: Vec<_> = log.iter().filter(|p| p.from_a && p.len > 0 && p.seq == lost.seq).collect();
    assert_eq!(copies.len(), 3, "original, lost retransmission, retransmission: {copies:?}");
    assert!(copies[1].dropped, "the first retransmission was the second loss");
    assert!(copies[2].t - copies[1].t < ms(40), "{:?}", copies[2].t - copies[1].t);
    assert_eq!(mib(&lab.a, LinuxMib::TCPLostRetransmit), 1);
    assert_eq!(mib(&lab.a, LinuxMib::TCPTimeouts), 0);
    assert_eq!(mib(&lab.a, LinuxMib::TCPDSACKRecv), 0, "no retransmission was needless");
    assert_eq!(lab.a.core.net.mib.tcp_get(TcpMib::RetransSegs), 2);
    // Both retransmissions went out in recovery (Linux counts TCPFastRetrans per segment).
    assert_eq!(mib(&lab.a, LinuxMib::TCPFastRetrans), 2);
}

/// Seeded random loss on the virtual clock (20 µs each way, both directions lossy): the
/// counters are deterministic. At 1 % no RTO is needed, and no retransmission is needless but
/// a loss probe's (the link neither reorders nor duplicates, so a DSACK would mean a segment
/// was declared lost while it was on its way — as when a retransmission sent after new data
/// in the same instant was taken for sent before it). A tail loss probe is a guess by design:
/// when the ACKs of the tail were lost it retransmits a segment that had arrived (seed 2).
#[test]
fn seeded_one_percent_loss_needs_no_rto_and_no_needless_retransmission() {
    for seed in [1, 2] {
        let cfg = LinkConfig { loss: 0.01, seed, delay: Duration::from_micros(20), ..Default::default() };
        let (data, got, net) = transfer(cfg, 4 << 20, None);
        assert!(data == got, "seed {seed}: stream corrupted");
        let a = &net.a.stack;
        let counters = a.core.net.mib.nstat(false);
        assert!(mib(a, LinuxMib::TCPSackRecovery) > 10, "seed {seed}: losses were recovered\n{counters}");
        assert_eq!(mib(a, LinuxMib::TCPTimeouts), 0, "seed {seed}\n{counters}");
        let dsacks = mib(a, LinuxMib::TCPDSACKRecv) + mib(a, LinuxMib::TCPDSACKOfoRecv);
        assert!(dsacks <= mib(a, LinuxMib::TCPLossProbes), "seed {seed}\n{counters}");
    }
}

/// At 5 % every kind of repair happens (lost retransmissions, loss probes, some RTOs when
/// cwnd has shrunk to 2 and both the tail and its probe are lost), yet no retransmission that
/// SACK or RACK decided on is needless: a duplicate the receiver reports (DSACK) can only come
/// from a timer (a probe or an RTO whose original arrived but whose ACKs were lost: the ACK
/// path drops 5 % too).
#[test]
fn seeded_five_percent_loss_delivers_with_no_needless_retransmission() {
    let cfg = LinkConfig { loss: 0.05, seed: 1, delay: Duration::from_micros(20), ..Default::default() };
    let (data, got, net) = transfer(cfg, 2 << 20, None);
    assert!(data == got);
    let a = &net.a.stack;
    let counters = a.core.net.mib.nstat(false);
    assert!(mib(a, LinuxMib::TCPLostRetransmit) > 0, "{counters}");
    let dsacks = mib(a, LinuxMib::TCPDSACKRecv) + mib(a, LinuxMib::TCPDSACKOfoRecv);
    let timer = mib(a, LinuxMib::TCPLossProbes) + mib(a, LinuxMib::TCPTimeouts);
    assert!(dsacks <= timer, "{counters}");
}

/// Real threads, real clock, NAPI delivery, 2 % loss each way: every byte arrives, and the
/// losses were repaired by SACK recovery. Nothing about durations is asserted.
#[test]
fn lossy_link_on_real_threads_delivers_every_byte() {
    let cfg = LinkConfig { loss: 0.02, seed: 7, delivery: Delivery::Napi, ..Default::default() };
    let (a, b) = memlink_pair(cfg);
    let l = TcpListener::bind(&b.stack, SocketAddrV4::new(utcp::api::ADDR_B, 5001), 4).unwrap();
    let mut c = TcpStream::connect(&a.stack, SocketAddrV4::new(utcp::api::ADDR_B, 5001)).unwrap();
    let (mut s, _) = l.accept().unwrap();
    let data = pattern(2 << 20, 9);
    let want = data.clone();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::with_capacity(want.len());
        let mut buf = vec![0u8; 65536];
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got == want
    });
    c.write_all(&data).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(reader.join().unwrap(), "stream corrupted");
    let m = &a.stack.core.net.mib;
    assert!(a.port.as_ref().unwrap().stats().lost > 0, "the link lost frames");
    assert!(m.get(LinuxMib::TCPSackRecovery) > 0, "{}", m.nstat(false));
    assert!(m.tcp_get(TcpMib::RetransSegs) > 0);
}
