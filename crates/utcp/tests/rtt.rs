//! RTT measurement as `tcp_ack_update_rtt()` takes it (virtual clock, a 5 ms one-way wire, so
//! the handshake gives srtt = 10 ms): a cumulative ACK times the oldest segment it covers (the
//! newest one times min_rtt), a SACK of new data gives a sample of its own, and an ACK that only
//! covers a retransmission is timed by its timestamp echo (Karn's rule).

mod common;

use common::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use utcp::syscall::opt::TCP_NODELAY;
use utcp::syscall::*;
use utcp::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Sends `data` from `c` on A in one call.
fn send(lab: &Lab, c: i32, data: &[u8]) {
    assert_eq!(lab.a.send(c, Some(data), data.len(), 0), Ok(data.len()));
}

/// Reads on `s` (B) until `n` bytes arrived.
fn recv_all(lab: &Lab, s: i32, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    assert!(lab.run_until(Duration::from_secs(5), || {
        drain(&lab.b, s, &mut got).unwrap();
        got.len() >= n
    }));
    got
}

/// Two segments sent 50 ms apart; the ACK of the first is lost, so the ACK of the second
/// covers both, 60 ms after the first left. Linux takes that ACK's sample from the oldest
/// segment it acknowledges (`first_ackt`: 60 ms, srtt 10 → 16.25 ms) and min_rtt from the
/// newest (`last_ackt`: 10 ms). utcp used to time the newest only, leaving srtt at 10 ms.
#[test]
fn cumulative_ack_times_the_oldest_segment_it_covers() {
    let lab = Lab::new(ms(5));
    let (c, s, _l) = lab.pair();
    lab.a.setsockopt_int(c, SOL_TCP, TCP_NODELAY, 1).unwrap();
    let before = lab.a.tcp_info(c).unwrap();
    assert_eq!(before.tcpi_rtt, 10_000, "the handshake's sample");
    // The first data ACK from B is dropped (B quick-ACKs its first segments).
    let first_end = Arc::new(AtomicU32::new(0));
    let fe = first_end.clone();
    lab.drop_if(move |p| {
        if p.from_a && p.len > 0 && fe.load(Ordering::Relaxed) == 0 {
            fe.store(p.seq.wrapping_add(p.len), Ordering::Relaxed);
        }
        !p.from_a && p.len == 0 && p.ack == fe.load(Ordering::Relaxed)
    });
    send(&lab, c, &[1u8; 100]);
    lab.advance(ms(50));
    send(&lab, c, &[2u8; 100]);
    assert_eq!(recv_all(&lab, s, 200).len(), 200);
    lab.advance(ms(20));
    let log = lab.log();
    assert!(log.iter().any(|p| p.dropped && !p.from_a), "the first ACK was lost");
    assert_eq!(log.iter().filter(|p| p.from_a && p.len > 0).count(), 2, "nothing was retransmitted");
    let after = lab.a.tcp_info(c).unwrap();
    // srtt = 7/8 · 10 ms + 1/8 · 60 ms.
    assert_eq!(after.tcpi_rtt, 16_250, "srtt from the oldest segment acknowledged");
    assert_eq!(after.tcpi_min_rtt, 10_000, "min_rtt from the newest");
}

/// The first of two segments is lost and the second reaches B 150 ms late, so B's SACK for
/// it arrives 160 ms after both left. That ACK advances nothing, but Linux times the SACKed
/// segment (`sack_rtt`, Karn allows it: it was never retransmitted): srtt 10 → 28.75 ms.
/// The cumulative ACK of the retransmission that follows is timed by the timestamp it echoes
/// (the retransmission's: 10 ms; srtt → 26.41 ms). utcp used to ignore SACK timing: srtt
/// stayed at 10 ms. Loss probes are off (tcp_early_retrans 0) so that only RACK repairs the
/// hole and the sample is the SACK's.
#[test]
fn sack_of_new_data_gives_an_rtt_sample() {
    let lab = Lab::new(ms(5));
    lab.a.core.net.sysctl.set_by_name("net.ipv4.tcp_early_retrans", "0").unwrap();
    let (c, s, _l) = lab.pair();
    lab.a.setsockopt_int(c, SOL_TCP, TCP_NODELAY, 1).unwrap();
    let mut n = 0;
    lab.drop_if(move |p| {
        if p.from_a && p.len > 0 {
            n += 1;
            return n == 1;
        }
        false
    });
    // Asked only for the segments that were not dropped: the first one asked is the second.
    let mut m = 0;
    lab.delay_if(move |p| {
        if p.from_a && p.len > 0 {
            m += 1;
            if m == 1 {
                return Some(ms(150));
            }
        }
        None
    });
    send(&lab, c, &[7u8; 2 * 1448]);
    assert_eq!(recv_all(&lab, s, 2 * 1448).len(), 2 * 1448);
    lab.advance(ms(20));
    let log = lab.log();
    let data: Vec<_> = log.iter().filter(|p| p.from_a && p.len > 0).collect();
    assert_eq!(data.len(), 3, "two segments and one retransmission: {data:?}");
    assert!(data[0].dropped && data[2].seq == data[0].seq);
    let i = lab.a.tcp_info(c).unwrap();
    assert_eq!(i.tcpi_rtt, 26_406, "the SACK's 160 ms sample, then the echo's 10 ms");
    assert_eq!(i.tcpi_min_rtt, 10_000);
    assert_eq!(i.tcpi_backoff, 0);
}

/// A delayed ACK echoes the TSval of the first segment it covers, not the latest (RFC 7323
/// §4.3: ts_recent is updated only from a segment at or below rcv_wup, the left edge of the
/// window last advertised; `tcp_rcv_established()`'s fast path stores it only while
/// rcv_nxt == rcv_wup). B, with TCP_QUICKACK off, holds its ACK across two segments sent
/// 10 ms apart; the one ACK it then sends covers both and echoes the first one's TSval, so A's
/// sample spans the delay as Linux's does. utcp's fast path echoed the second's.
#[test]
fn a_delayed_ack_echoes_the_first_segment_it_covers() {
    use utcp::syscall::opt::TCP_QUICKACK;
    let lab = Lab::new(ms(5));
    let (c, s, _l) = lab.pair();
    lab.a.setsockopt_int(c, SOL_TCP, TCP_NODELAY, 1).unwrap();
    lab.b.setsockopt_int(s, SOL_TCP, TCP_QUICKACK, 0).unwrap();
    send(&lab, c, &[1u8; 100]);
    lab.advance(ms(10));
    send(&lab, c, &[2u8; 100]);
    // Both have reached B (5 ms each way) before its delayed-ACK timer (at least 40 ms).
    lab.advance(ms(6));
    assert_eq!(recv_all(&lab, s, 200).len(), 200);
    lab.advance(ms(200));
    let log = lab.log();
    let data: Vec<_> = log.iter().filter(|p| p.from_a && p.len > 0).collect();
    assert_eq!(data.len(), 2, "{data:?}");
    let (t0, t1) = (data[0].ts.unwrap().0, data[1].ts.unwrap().0);
    assert!(t1 > t0, "the two segments carry different TSvals: {t0} {t1}");
    let acks: Vec<_> = log.iter().filter(|p| !p.from_a && p.len == 0 && p.t > data[0].t).collect();
    assert_eq!(acks.len(), 1, "one delayed ACK for both: {acks:?}");
    assert_eq!(acks[0].ack, data[1].seq.wrapping_add(data[1].len), "it covers both");
    assert_eq!(acks[0].ts.unwrap().1, t0, "it echoes the first segment's TSval");
}
